/* A8: per-token symmetric INT8 activations (NUMERICS.md "Activations"). */
#include <math.h>

#include "qoq_internal.h"

qv_status qv_quant_a8_ref(const float *X, int M, int K, int8_t *q, float *s_a, float *rowsum,
                          int compat)
{
    QV_TRY(qv_qoq_check_dims("quant_a8", M, 1, K, NULL, NULL, NULL));
    QV_TRY(qv_qoq_check_finite("quant_a8", "X", X, M, K));
    for (int m = 0; m < M; m++) {
        const float *x = X + (size_t)m * (size_t)K;
        int8_t *qm = q + (size_t)m * (size_t)K;
        /* QServe starts its running max at 1e-6 (so an all-zero row gets a tiny, FP16-underflowing
         * scale); qvet starts at 0 and applies the minimum-scale rule. */
        float amax = compat ? 1e-6f : 0.0f;
        float xsum = 0.0f;
        for (int k = 0; k < K; k++) {
            float a = fabsf(x[k]);
            if (a > amax) amax = a;
            xsum += x[k];
        }
        if (amax == 0.0f) { /* only without compat: all-zero row, codes at 0, scale 1 (exact) */
            for (int k = 0; k < K; k++) qm[k] = 0;
            s_a[m] = 1.0f;
            if (rowsum) rowsum[m] = 0.0f;
            continue;
        }
        float inv = 127.0f / amax; /* both sides multiply by the reciprocal, as QServe does */
        int lo = compat ? -128 : -127; /* QServe: cvt.rni.sat.s8 */
        int32_t sum = 0;
        for (int k = 0; k < K; k++) {
            float r = qv_rne(x[k] * inv);
            int v = r < (float)lo ? lo : r > 127.0f ? 127 : (int)r;
            qm[k] = (int8_t)v;
            sum += v;
        }
        s_a[m] = compat ? qv_round_fp16(amax / 127.0f) : amax / 127.0f;
        if (rowsum) rowsum[m] = compat ? qv_round_fp16(xsum) : (float)sum;
    }
    return QV_OK;
}

qv_status qv_a8_rowsum_i32(const int8_t *q, int M, int K, int32_t *rowsum)
{
    QV_TRY(qv_qoq_check_dims("a8_rowsum", M, 1, K, NULL, NULL, NULL));
    if (K > QV_QOQ_PC_KMAX * 15)
        return qv_fail(QV_ERR_USAGE, "a8_rowsum: K=%d could overflow INT32", K);
    for (int m = 0; m < M; m++) {
        int32_t s = 0;
        for (int k = 0; k < K; k++) s += q[(size_t)m * (size_t)K + (size_t)k];
        rowsum[m] = s;
    }
    return QV_OK;
}
