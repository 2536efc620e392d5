/* W4 per channel (g = 0): asymmetric UINT4 with FP16 scale and stored scaled zero. */
#include <math.h>

#include "qoq_internal.h"

qv_status qv_quant_w4pc_ref(const float *W, int N, int K, uint8_t *u, qv_fp16 *s_w, uint8_t *z,
                            qv_fp16 *sz)
{
    QV_TRY(qv_qoq_check_dims("quant_w4pc", 1, N, K, NULL, NULL, NULL));
    QV_TRY(qv_qoq_check_finite("quant_w4pc", "W", W, N, K));
    for (int n = 0; n < N; n++) {
        const float *w = W + (size_t)n * (size_t)K;
        uint8_t *un = u + (size_t)n * (size_t)K;
        float lo = 0.0f, hi = 0.0f; /* range widened to include 0, so 0 is on the grid */
        for (int k = 0; k < K; k++) {
            if (w[k] < lo) lo = w[k];
            if (w[k] > hi) hi = w[k];
        }
        float s = qv_round_fp16((hi - lo) / 15.0f);
        if (isinf(s))
            return qv_fail(QV_ERR_INPUT, "quant_w4pc: channel %d of [%d x %d]: range %g overflows "
                           "the FP16 scale", n, N, K, (double)(hi - lo));
        if (s == 0.0f) s = 1.0f; /* dead channel (or a range below FP16's smallest scale) */
        int zi = qv_clampi((int)qv_rne(-lo / s), 0, 15);
        for (int k = 0; k < K; k++)
            un[k] = (uint8_t)qv_clampi((int)qv_rne(w[k] / s) + zi, 0, 15);
        s_w[n] = qv_fp32_to_fp16(s);
        z[n] = (uint8_t)zi;
        sz[n] = qv_fp32_to_fp16(s * (float)zi);
    }
    return QV_OK;
}
