/* Quantize-dequantize with ref/qoq's quantizers (the formats of NUMERICS.md), for the error
 * measures of the searches: what the checkpoint will hold, as FP32. */
#include <stdlib.h>
#include <string.h>

#include "qvet/qoq.h"
#include "qvet/quant.h"

const char *qv_qfmt_name(qv_qfmt f)
{
    return f == QV_QFMT_W4A8_G128 ? "w4a8-g128" : f == QV_QFMT_W4A8_CHN ? "w4a8-chn" : "w8a8";
}

int qv_qfmt_parse(const char *s, qv_qfmt *f)
{
    if (!strcmp(s, "w4a8-g128")) *f = QV_QFMT_W4A8_G128;
    else if (!strcmp(s, "w4a8-chn")) *f = QV_QFMT_W4A8_CHN;
    else if (!strcmp(s, "w8a8")) *f = QV_QFMT_W8A8;
    else return 0;
    return 1;
}

qv_status qv_fakequant_weight(qv_qfmt f, const float *W, int N, int K, float *Wq)
{
    size_t nk = (size_t)N * K;
    qv_status st = QV_OK;
    if (f == QV_QFMT_W4A8_G128) {
        if (K % QV_QOQ_GROUP) return qv_fail(QV_ERR_INPUT, "quant: K = %d is not a multiple of %d (g128)", K, QV_QOQ_GROUP);
        int G = K / QV_QOQ_GROUP;
        uint8_t *u = qv_malloc(nk), *s1 = qv_malloc((size_t)N * G), *z = qv_malloc((size_t)N * G),
                *sz1 = qv_malloc((size_t)N * G);
        qv_fp16 *s0 = qv_malloc(sizeof(qv_fp16) * (size_t)N);
        if (!u || !s1 || !z || !sz1 || !s0) st = QV_ERR_NOMEM;
        if (st == QV_OK) st = qv_quant_w4g128_ref(W, N, K, QV_QOQ_PROTECT, u, s0, s1, z, sz1);
        for (int n = 0; st == QV_OK && n < N; n++) {
            float sc = qv_fp16_to_fp32(s0[n]);
            for (int k = 0; k < K; k++) {
                size_t g = (size_t)n * G + k / QV_QOQ_GROUP;
                Wq[(size_t)n * K + k] = sc * (float)qv_w4g128_dequant1(u[(size_t)n * K + k], s1[g], sz1[g]);
            }
        }
        free(u), free(s1), free(z), free(sz1), free(s0);
    } else if (f == QV_QFMT_W4A8_CHN) {
        uint8_t *u = qv_malloc(nk), *z = qv_malloc((size_t)N);
        qv_fp16 *sw = qv_malloc(sizeof(qv_fp16) * (size_t)N), *sz = qv_malloc(sizeof(qv_fp16) * (size_t)N);
        if (!u || !z || !sw || !sz) st = QV_ERR_NOMEM;
        if (st == QV_OK) st = qv_quant_w4pc_ref(W, N, K, u, sw, z, sz);
        for (int n = 0; st == QV_OK && n < N; n++) {
            float s = qv_fp16_to_fp32(sw[n]), szf = qv_fp16_to_fp32(sz[n]);
            for (int k = 0; k < K; k++) Wq[(size_t)n * K + k] = s * (float)u[(size_t)n * K + k] - szf;
        }
        free(u), free(z), free(sw), free(sz);
    } else {
        int8_t *w8 = qv_malloc(nk);
        qv_fp16 *sw = qv_malloc(sizeof(qv_fp16) * (size_t)N);
        if (!w8 || !sw) st = QV_ERR_NOMEM;
        if (st == QV_OK) st = qv_quant_w8_ref(W, N, K, w8, sw);
        for (int n = 0; st == QV_OK && n < N; n++) {
            float s = qv_fp16_to_fp32(sw[n]);
            for (int k = 0; k < K; k++) Wq[(size_t)n * K + k] = s * (float)w8[(size_t)n * K + k];
        }
        free(w8), free(sw);
    }
    return st == QV_ERR_NOMEM ? qv_fail(st, "quant: no memory to fake-quantize [%d, %d]", N, K) : st;
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
