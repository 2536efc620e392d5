/* Quantize-dequantize with the checkpoint's quantizer (include/qvet/qmodel.h, built on ref/qoq's
 * NUMERICS.md rules), for the error measures of the searches: what the checkpoint will hold, as
 * FP32. */
#include <stdlib.h>
#include <string.h>

#include "qvet/qoq.h"
#include "qvet/quant.h"

qv_status qv_fakequant_weight(qv_qformat f, const float *W, int N, int K, float *Wq)
{
    qv_qlinear l;
    memset(&l, 0, sizeof l);
    qv_status st = qv_qlinear_quantize(W, N, K, f, NULL, NULL, &l);
    if (st == QV_OK) st = qv_qlinear_dequant(&l, Wq);
    qv_qlinear_free(&l);
    return st;
}

qv_status qv_fakequant_act(const float *X, int M, int K, float *Xq)
{
    int8_t *q = qv_malloc((size_t)M * K);
    float *sa = qv_malloc(sizeof(float) * (size_t)M);
    qv_status st = q && sa ? qv_quant_a8_ref(X, M, K, q, sa, NULL, 0) : QV_ERR_NOMEM;
    for (int m = 0; st == QV_OK && m < M; m++)
        for (int k = 0; k < K; k++) Xq[(size_t)m * K + k] = (float)q[(size_t)m * K + k] * sa[m];
    free(q);
    free(sa);
    return st;
}
