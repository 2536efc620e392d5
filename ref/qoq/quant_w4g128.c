/* W4 progressive group quantization (g = 128): level 1 per-channel INT8 with the protective
 * range, level 2 per-group UINT4 with UINT8 scale and scaled zero (NUMERICS.md).
 *
 * Why the protective range [-119, 119] keeps every dequantized value w8' = u*s1 - z*s1 in INT8:
 * Let a group's widened range be lo = min(0, min w8) <= 0 <= hi = max(0, max w8), with
 * -119 <= lo, hi <= 119, so hi - lo <= 238 and s1 = max(1, ceil((hi - lo)/15)) <= 16.
 * (a) z = rne(-lo/s1) lies in [0, 15] because 0 <= -lo/s1 <= (hi - lo)/s1 <= 15.
 * (b) For w8 in [lo, hi], let r = rne(w8/s1). rne is monotone and odd, so r >= rne(lo/s1) = -z:
 *     r + z >= 0 and the lower clamp never acts.
 * (c) If r + z <= 15 (no clamp), w8' = (r + z - z)*s1 = r*s1 and |w8' - w8| = s1*|r - w8/s1|
 *     <= s1/2.
 * (d) If r + z > 15 (the upper clamp acts; possible when both w8/s1 and -lo/s1 round up, e.g.
 *     lo = -15, hi = 15, s1 = 2, z = 8), then u = 15 and w8' = (15 - z)*s1. From r >= 16 - z,
 *     w8/s1 >= 15.5 - z, so w8 - w8' >= s1/2. From z <= -lo/s1 + 1/2 and (hi - lo)/s1 <= 15,
 *     (15 - z)*s1 >= 15*s1 + lo - s1/2 >= hi - s1/2 >= w8 - s1/2, so w8 - w8' <= s1/2.
 *     Hence |w8' - w8| = s1/2 exactly.
 * So |w8' - w8| <= s1/2 <= 8 always, and |w8'| <= |w8| + 8 <= 119 + 8 = 127.
 * The bound is tight in the sense that matters: with the range [-127, 127] instead, lo = -110,
 * hi = 127 gives s1 = 16, z = 7, and w8 = 127 -> r = 8, u = 15, w8' = 128, which wraps to -128
 * in the kernel's byte lanes. tests/test_qoq_w4g128.c checks all of this exhaustively.
 * Only codes produced from values inside [lo, hi] are covered: a code of 15 for a group whose
 * values never reach it can dequantize beyond 127 (lo = -107, hi = 119: (15 - 7)*16 = 128), which
 * is why a loaded checkpoint is checked code by code (qv_w4g128_check_codes). */
#include <math.h>
#include <stdlib.h>

#include "qoq_internal.h"
#include "qvet/mutant.h"

qv_status qv_quant_w4g128_level1_ref(const float *W, int N, int K, int protect, int8_t *w8,
                                     qv_fp16 *s0)
{
    QV_TRY(qv_qoq_check_dims("quant_w4g128_level1", 1, N, K, NULL, NULL, NULL));
    if (protect < 1 || protect > 127)
        return qv_fail(QV_ERR_USAGE, "quant_w4g128_level1: protective bound %d not in [1, 127]",
                       protect);
    QV_TRY(qv_qoq_check_finite("quant_w4g128_level1", "W", W, N, K));
    for (int n = 0; n < N; n++) {
        const float *w = W + (size_t)n * (size_t)K;
        float amax = 0.0f;
        for (int k = 0; k < K; k++)
            if (fabsf(w[k]) > amax) amax = fabsf(w[k]);
        float s = qv_round_fp16(amax / (float)protect);
        if (isinf(s))
            return qv_fail(QV_ERR_INPUT, "quant_w4g128_level1: channel %d of [%d x %d]: max|w| %g "
                           "overflows the FP16 scale", n, N, K, (double)amax);
        if (s == 0.0f) s = 1.0f;
        for (int k = 0; k < K; k++)
            w8[(size_t)n * (size_t)K + (size_t)k] =
                (int8_t)qv_clampi((int)qv_rne(w[k] / s), -protect, protect);
        s0[n] = qv_fp32_to_fp16(s);
    }
    return QV_OK;
}

qv_status qv_quant_w4g128_group_ref(const int8_t *w8, int n, uint8_t *u, uint8_t *s1, uint8_t *z,
                                    uint8_t *sz1)
{
    if (n < 1) return qv_fail(QV_ERR_USAGE, "quant_w4g128_group: group size %d < 1", n);
    int lo = 0, hi = 0;
    for (int i = 0; i < n; i++) {
        if (w8[i] < lo) lo = w8[i];
        if (w8[i] > hi) hi = w8[i];
    }
    int s = (hi - lo + 14) / 15; /* ceil((hi - lo)/15) in integers: exact */
    if (s < 1) s = 1;            /* all-zero group: scale 1, codes at z = 0 */
    if (s > 16)
        return qv_fail(QV_ERR_INPUT, "quant_w4g128_group: range [%d, %d] needs s1 = %d > 16", lo,
                       hi, s);
    /* -lo/s and w8/s are exact small rationals; in FP32 the quotient of two small integers is
     * correctly rounded, and a tie (x.5) is represented exactly, so rne decides ties as defined. */
    int zi = (int)qv_rne((float)(-lo) / (float)s);
    for (int i = 0; i < n; i++)
        u[i] = QV_MUT(missing_clamp) ? (uint8_t)((int)qv_rne((float)w8[i] / (float)s) + zi) /* self-test mutant */
                                     : (uint8_t)qv_clampi((int)qv_rne((float)w8[i] / (float)s) + zi, 0, 15);
    *s1 = (uint8_t)s;
    *z = (uint8_t)zi;
    *sz1 = (uint8_t)(zi * s);
    return QV_OK;
}

qv_status qv_quant_w4g128_ref(const float *W, int N, int K, int protect, uint8_t *u, qv_fp16 *s0,
                              uint8_t *s1, uint8_t *z, uint8_t *sz1)
{
    size_t nk;
    QV_TRY(qv_qoq_check_dims("quant_w4g128", 1, N, K, NULL, &nk, NULL));
    if (K % QV_QOQ_GROUP != 0)
        return qv_fail(QV_ERR_USAGE, "quant_w4g128: K=%d is not a multiple of the group size %d "
                       "(W is [%d x %d])", K, QV_QOQ_GROUP, N, K);
    int8_t *w8 = qv_malloc(nk);
    if (!w8) return QV_ERR_NOMEM;
    qv_status st = qv_quant_w4g128_level1_ref(W, N, K, protect, w8, s0);
    int G = K / QV_QOQ_GROUP;
    for (int n = 0; st == QV_OK && n < N; n++)
        for (int g = 0; st == QV_OK && g < G; g++) {
            size_t off = (size_t)n * (size_t)K + (size_t)g * QV_QOQ_GROUP, gi = (size_t)n * G + g;
            st = qv_quant_w4g128_group_ref(w8 + off, QV_QOQ_GROUP, u + off, s1 + gi, z + gi, sz1 + gi);
        }
    free(w8);
    return st;
}

qv_status qv_w4g128_dequant_ref(const uint8_t *u, const uint8_t *s1, const uint8_t *sz1, int N,
                                int K, int8_t *w8p)
{
    QV_TRY(qv_qoq_check_dims("w4g128_dequant", 1, N, K, NULL, NULL, NULL));
    if (K % QV_QOQ_GROUP != 0)
        return qv_fail(QV_ERR_USAGE, "w4g128_dequant: K=%d is not a multiple of %d", K, QV_QOQ_GROUP);
    int G = K / QV_QOQ_GROUP;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            size_t i = (size_t)n * (size_t)K + (size_t)k, gi = (size_t)n * G + (size_t)(k / QV_QOQ_GROUP);
            int v = qv_w4g128_dequant1(u[i], s1[gi], sz1[gi]);
            if (v < -128 || v > 127)
                return qv_fail(QV_ERR_CHECK, "w4g128_dequant: w8'[%d][%d] = %d*%d - %d = %d "
                               "leaves INT8", n, k, u[i], s1[gi], sz1[gi], v);
            w8p[i] = (int8_t)v;
        }
    return QV_OK;
}

qv_status qv_w4g128_check_codes(const uint8_t *u, const uint8_t *s1, const uint8_t *sz1, int N,
                                int K)
{
    QV_TRY(qv_qoq_check_dims("w4g128_check_codes", 1, N, K, NULL, NULL, NULL));
    if (K % QV_QOQ_GROUP != 0)
        return qv_fail(QV_ERR_INPUT, "w4g128_check_codes: K=%d is not a multiple of %d", K,
                       QV_QOQ_GROUP);
    int G = K / QV_QOQ_GROUP;
    for (int n = 0; n < N; n++)
        for (int g = 0; g < G; g++) {
            size_t gi = (size_t)n * G + (size_t)g;
            if (s1[gi] < 1 || s1[gi] > 16 || sz1[gi] > 240)
                return qv_fail(QV_ERR_INPUT, "w4g128_check_codes: channel %d group %d: s1=%d "
                               "(must be 1..16), sz1=%d (must be <= 240)", n, g, s1[gi], sz1[gi]);
            for (int k = 0; k < QV_QOQ_GROUP; k++) {
                size_t i = (size_t)n * (size_t)K + (size_t)g * QV_QOQ_GROUP + (size_t)k;
                int v = qv_w4g128_dequant1(u[i], s1[gi], sz1[gi]);
                if (u[i] > 15 || v < -128 || v > 127)
                    return qv_fail(QV_ERR_INPUT, "w4g128_check_codes: channel %d group %d element "
                                   "%d: code %d * s1 %d - sz1 %d = %d is outside INT8 [-128, 127]",
                                   n, g, k, u[i], s1[gi], sz1[gi], v);
            }
        }
    return QV_OK;
}
