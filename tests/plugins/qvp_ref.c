/* A kernel plugin written only from include/qvet/kernel_plugin.h and docs/layout.md: plain-loop
 * W8A8, W4A8 per-channel and W4A8 g128 GEMMs on the packed layouts, with their _acc entries. It
 * uses nothing of qvet's (its own FP16 conversions, its own unpacking), so passing the case matrix
 * checks the ABI and the documented contract, not qvet against itself. It is also the smallest
 * complete example for a team writing a plugin.
 *
 * Built several times (tests/plugins/CMakeLists.txt); a compile definition plants one bug:
 *   QVP_PLANT_ZP_SIGN  per-channel epilogue adds sz*rowsum instead of subtracting it
 *   QVP_PLANT_NIBBLE   the W4 code of channel n%32 < 16 is read from the high nibble
 *   QVP_PLANT_ERROR    the g128 GEMM fails with QV_KP_ERR_DEVICE
 *   QVP_PLANT_ABI      registers ABI version + 1
 *   QVP_PLANT_NOSYM    exports its entry under a misspelled name
 *   QVP_PARTIAL        W8A8 GEMM without _acc, per-channel, and no g128 (its cases are skipped)
 *   QVP_PLANT_SCRIBBLE the W8A8 _acc entry writes into its const input x (casting const away)
 * Compile with -ffp-contract=off: the epilogue's order is part of the contract. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qvet/kernel_plugin.h"

typedef struct {
    long calls; /* ops run: a ctx the plugin owns, freed by destroy */
} qvp_ctx;

static int fail(char *err, size_t cap, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return code;
}

/* ---- IEEE binary16 <-> binary32, round to nearest even ---- */
static float h2f(uint16_t h)
{
    uint32_t s = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 31u, m = h & 0x3ffu, u;
    if (e == 0) { /* zero or subnormal: m * 2^-24, exact in FP32 */
        float f = (float)m * 0x1p-24f;
        return s ? -f : f;
    }
    u = e == 31 ? s | 0x7f800000u | (m << 13) : s | ((e + 112u) << 23) | (m << 13);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint16_t f2h(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint16_t s = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(s | 0x7e00u | ((a >> 13) & 0x3ffu)); /* NaN, quiet */
    if (a >= 0x477ff000u) return (uint16_t)(s | 0x7c00u); /* >= 65520: the tie above 65504 rounds to Inf */
    if (a < 0x38800000u) { /* below 2^-14: subnormal, value * 2^24 rounded to an integer */
        float v;
        memcpy(&v, &a, sizeof v);
        v *= 0x1p24f; /* exact: a power-of-two scaling inside the normal range */
        uint32_t i = (uint32_t)v;
        float frac = v - (float)i;
        if (frac > 0.5f || (frac == 0.5f && (i & 1u))) i++;
        return (uint16_t)(s | i);
    }
    uint32_t h = (((a >> 23) - 112u) << 10) | ((a & 0x7fffffu) >> 13), rest = a & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++; /* a carry moves into the exponent */
    return (uint16_t)(s | h);
}

/* The output rule: finite beyond +-65504 is written as +-65504 and counted. */
static uint16_t out_fp16(float v, uint32_t *n_sat)
{
    uint16_t h = f2h(v);
    if (v == v && (v > 65504.0f || v < -65504.0f)) {
        ++*n_sat;
        if ((h & 0x7fffu) == 0x7c00u && v - v == 0.0f) h = (uint16_t)((h & 0x8000u) | 0x7bffu);
    }
    return h;
}

/* ---- the packed layouts (docs/layout.md) ---- */
static int w4_code(const uint8_t *w4, int K, int n, int k)
{
    int nn = n % 32, kk = k % 32;
    int a = nn / 16, b = (nn / 8) % 2, c = nn % 8, d = kk / 16, e = (kk / 4) % 4, f = kk % 4;
    size_t tile = ((size_t)(n / 32) * (size_t)(K / 32) + (size_t)(k / 32)) * 512u;
    uint8_t byte = w4[tile + (size_t)(64 * c + 16 * e + 8 * d + 4 * b + f)];
#ifdef QVP_PLANT_NIBBLE
    a = !a;
#endif
    return a ? byte >> 4 : byte & 15;
}

/* s1 / sz1 of channel n, group g: [K/128][N], block of 32 channels reordered (4c + j <- 8j + c) */
static uint8_t group_byte(const uint8_t *p, int N, int g, int n)
{
    int nn = n % 32;
    return p[(size_t)g * (size_t)N + (size_t)(n - nn) + (size_t)(4 * (nn % 8) + nn / 8)];
}

static int check_shape(const char *op, int M, int N, int K, int n_mult, int k_mult, char *err, size_t cap)
{
    if (M < 1 || N < n_mult || N % n_mult || K < 32 || K % k_mult)
        return fail(err, cap, QV_KP_ERR_ARGS, "%s: shape M=%d N=%d K=%d outside the contract (N %% %d, K %% %d)", op, M,
                    N, K, n_mult, k_mult);
    return QV_KP_OK;
}

/* The integer part: acc = x . w^T with w built row by row from the layout. */
enum { W_INT8, W_CODES, W_G128 };
static int gemm_acc(int kind, const int8_t *x, const void *w, const uint8_t *s1, const uint8_t *sz1, int32_t *acc,
                    int M, int N, int K, char *err, size_t cap)
{
    int8_t *wn = malloc((size_t)K); /* one weight row as INT8 operand */
    if (!wn) return fail(err, cap, QV_KP_ERR_NOMEM, "out of memory (K=%d)", K);
    for (int n = 0; n < N; n++) {
        for (int k = 0; k < K; k++) {
            if (kind == W_INT8) wn[k] = ((const int8_t *)w)[(size_t)n * (size_t)K + (size_t)k];
            else if (kind == W_CODES) wn[k] = (int8_t)w4_code(w, K, n, k);
            else wn[k] = (int8_t)(w4_code(w, K, n, k) * group_byte(s1, N, k / 128, n) - group_byte(sz1, N, k / 128, n));
        }
        for (int m = 0; m < M; m++) {
            const int8_t *xm = x + (size_t)m * (size_t)K;
            int32_t s = 0;
            for (int k = 0; k < K; k++) s += (int32_t)xm[k] * wn[k];
            acc[(size_t)m * (size_t)N + (size_t)n] = s;
        }
    }
    free(wn);
    return QV_KP_OK;
}

/* y = (sa*s) * acc (W8A8, g128) */
static void epilogue_scaled(const int32_t *acc, const float *sa, const uint16_t *s, uint16_t *y, uint32_t *n_sat, int M,
                            int N)
{
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            size_t i = (size_t)m * (size_t)N + (size_t)n;
            float sc = sa[m] * h2f(s[n]);
            y[i] = out_fp16(sc * (float)acc[i], n_sat);
        }
}

static int scaled_gemm(int kind, const int8_t *x, const float *sa, const void *w, const uint16_t *s, const uint8_t *s1,
                       const uint8_t *sz1, uint16_t *y, uint32_t *n_sat, int M, int N, int K, char *err, size_t cap)
{
    int32_t *acc = malloc((size_t)M * (size_t)N * sizeof *acc);
    if (!acc) return fail(err, cap, QV_KP_ERR_NOMEM, "out of memory (M=%d N=%d)", M, N);
    int rc = gemm_acc(kind, x, w, s1, sz1, acc, M, N, K, err, cap);
    if (rc == QV_KP_OK) epilogue_scaled(acc, sa, s, y, n_sat, M, N);
    free(acc);
    return rc;
}

/* ---- the ops ---- */
static int w8a8_gemm_acc(void *ctx, const int8_t *x, const int8_t *w8, int32_t *acc, int M, int N, int K, char *err,
                         size_t cap)
{
    ((qvp_ctx *)ctx)->calls++;
    int rc = check_shape("w8a8_gemm_acc", M, N, K, 8, 32, err, cap);
    if (!rc) rc = gemm_acc(W_INT8, x, w8, NULL, NULL, acc, M, N, K, err, cap);
#ifdef QVP_PLANT_SCRIBBLE
    ((int8_t *)(uintptr_t)x)[M * K - 1] ^= 1; /* the bug: scratch use of an input buffer */
#endif
    return rc;
}

static int w8a8_gemm(void *ctx, const int8_t *x, const float *sa, const int8_t *w8, const uint16_t *sw, uint16_t *y,
                     uint32_t *n_sat, int M, int N, int K, char *err, size_t cap)
{
    ((qvp_ctx *)ctx)->calls++;
    int rc = check_shape("w8a8_gemm", M, N, K, 8, 32, err, cap);
    return rc ? rc : scaled_gemm(W_INT8, x, sa, w8, sw, NULL, NULL, y, n_sat, M, N, K, err, cap);
}

static int w4a8_chn_gemm_acc(void *ctx, const int8_t *x, const uint8_t *w4, int32_t *acc, int M, int N, int K,
                             char *err, size_t cap)
{
    ((qvp_ctx *)ctx)->calls++;
    int rc = check_shape("w4a8_chn_gemm_acc", M, N, K, 32, 32, err, cap);
    return rc ? rc : gemm_acc(W_CODES, x, w4, NULL, NULL, acc, M, N, K, err, cap);
}

static int w4a8_chn_gemm(void *ctx, const int8_t *x, const float *sa, const int32_t *rowsum, const uint8_t *w4,
                         const uint16_t *sw, const uint16_t *sz, uint16_t *y, uint32_t *n_sat, int M, int N, int K,
                         char *err, size_t cap)
{
    ((qvp_ctx *)ctx)->calls++;
    int rc = check_shape("w4a8_chn_gemm", M, N, K, 32, 32, err, cap);
    if (rc) return rc;
    int32_t *acc = malloc((size_t)M * (size_t)N * sizeof *acc);
    if (!acc) return fail(err, cap, QV_KP_ERR_NOMEM, "out of memory (M=%d N=%d)", M, N);
    rc = gemm_acc(W_CODES, x, w4, NULL, NULL, acc, M, N, K, err, cap);
    for (int m = 0; rc == QV_KP_OK && m < M; m++)
        for (int n = 0; n < N; n++) {
            size_t i = (size_t)m * (size_t)N + (size_t)n;
            float t = h2f(sw[n]) * (float)acc[i];
            float c = h2f(sz[n]) * (float)rowsum[m];
#ifdef QVP_PLANT_ZP_SIGN
            float d = t + c;
#else
            float d = t - c;
#endif
            y[i] = out_fp16(sa[m] * d, n_sat);
        }
    free(acc);
    return rc;
}

static int w4a8_g128_gemm_acc(void *ctx, const int8_t *x, const uint8_t *w4, const uint8_t *s1, const uint8_t *sz1,
                              int32_t *acc, int M, int N, int K, int group, char *err, size_t cap)
{
    ((qvp_ctx *)ctx)->calls++;
    int rc = check_shape("w4a8_g128_gemm_acc", M, N, K, 32, 128, err, cap);
    if (!rc && group != 128) rc = fail(err, cap, QV_KP_ERR_ARGS, "w4a8_g128_gemm_acc: group=%d, only 128", group);
    return rc ? rc : gemm_acc(W_G128, x, w4, s1, sz1, acc, M, N, K, err, cap);
}

static int w4a8_g128_gemm(void *ctx, const int8_t *x, const float *sa, const uint8_t *w4, const uint16_t *s0,
                          const uint8_t *s1, const uint8_t *sz1, uint16_t *y, uint32_t *n_sat, int M, int N, int K,
                          int group, char *err, size_t cap)
{
    ((qvp_ctx *)ctx)->calls++;
#ifdef QVP_PLANT_ERROR
    (void)x, (void)sa, (void)w4, (void)s0, (void)s1, (void)sz1, (void)y, (void)n_sat, (void)M, (void)N, (void)K, (void)group;
    return fail(err, cap, QV_KP_ERR_DEVICE, "planted failure: device lost (QVP_PLANT_ERROR)");
#else
    int rc = check_shape("w4a8_g128_gemm", M, N, K, 32, 128, err, cap);
    if (!rc && group != 128) rc = fail(err, cap, QV_KP_ERR_ARGS, "w4a8_g128_gemm: group=%d, only 128", group);
    return rc ? rc : scaled_gemm(W_G128, x, sa, w4, s0, s1, sz1, y, n_sat, M, N, K, err, cap);
#endif
}

static void destroy(void *ctx) { free(ctx); }

#ifdef QVP_PLANT_NOSYM
QV_KP_EXPORT int qv_kernel_plugin_register_v1(uint32_t host_abi_version, qv_kernel_plugin *p, char *err, size_t cap);
QV_KP_EXPORT int qv_kernel_plugin_register_v1(uint32_t host_abi_version, qv_kernel_plugin *p, char *err, size_t cap)
#else
QV_KP_EXPORT int qv_kernel_plugin_register(uint32_t host_abi_version, qv_kernel_plugin *p, char *err, size_t cap)
#endif
{
    if (host_abi_version != QV_KERNEL_PLUGIN_ABI_VERSION)
        return fail(err, cap, QV_KP_ERR_ABI, "built for ABI %u, qvet offers %u", QV_KERNEL_PLUGIN_ABI_VERSION,
                    (unsigned)host_abi_version);
#ifdef QVP_PLANT_ABI
    p->abi_version = QV_KERNEL_PLUGIN_ABI_VERSION + 1;
    p->name = "qvp-ref";
    return QV_KP_OK; /* qvet refuses it before any op or destroy could run: allocate nothing */
#endif
    qvp_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return fail(err, cap, QV_KP_ERR_NOMEM, "out of memory");
    p->abi_version = QV_KERNEL_PLUGIN_ABI_VERSION;
    p->name = "qvp-ref";
    p->ctx = ctx;
    p->destroy = destroy;
    p->w8a8_gemm = w8a8_gemm;
    p->w4a8_chn_gemm = w4a8_chn_gemm;
    p->w4a8_chn_gemm_acc = w4a8_chn_gemm_acc;
#ifndef QVP_PARTIAL
    p->w8a8_gemm_acc = w8a8_gemm_acc;
    p->w4a8_g128_gemm = w4a8_g128_gemm;
    p->w4a8_g128_gemm_acc = w4a8_g128_gemm_acc;
#else
    (void)w8a8_gemm_acc, (void)w4a8_g128_gemm, (void)w4a8_g128_gemm_acc;
#endif
    return QV_KP_OK;
}
