/* W8 per channel, symmetric INT8 (the W8A8 baseline). */
#include <math.h>

#include "qoq_internal.h"

qv_status qv_quant_w8_ref(const float *W, int N, int K, int8_t *w8, qv_fp16 *s_w)
{
    QV_TRY(qv_qoq_check_dims("quant_w8", 1, N, K, NULL, NULL, NULL));
    QV_TRY(qv_qoq_check_finite("quant_w8", "W", W, N, K));
    for (int n = 0; n < N; n++) {
        const float *w = W + (size_t)n * (size_t)K;
        float amax = 0.0f;
        for (int k = 0; k < K; k++)
            if (fabsf(w[k]) > amax) amax = fabsf(w[k]);
        float s = qv_round_fp16(amax / 127.0f);
        if (isinf(s))
            return qv_fail(QV_ERR_INPUT, "quant_w8: channel %d of [%d x %d]: max|w| %g overflows "
                           "the FP16 scale", n, N, K, (double)amax);
        if (s == 0.0f) s = 1.0f;
        for (int k = 0; k < K; k++)
            w8[(size_t)n * (size_t)K + (size_t)k] = (int8_t)qv_clampi((int)qv_rne(w[k] / s), -127, 127);
        s_w[n] = qv_fp32_to_fp16(s);
    }
    return QV_OK;
}
