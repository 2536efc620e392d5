/* FP16/BF16 conversions by integer bit manipulation, so the result is exact RNE whatever the
 * FPU's rounding mode or the compiler's _Float16 support (tests/test_fp16.c checks every one of
 * the 65,536 FP16 values and every rounding midpoint against an independent path). */
#include "qvet/fp16.h"

#include <string.h>

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float qv_fp16_to_fp32(qv_fp16 h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) /* Inf / NaN: keep the payload, force quiet */
        return u2f(sign | 0x7f800000u | (man << 13) | (man ? 0x00400000u : 0));
    if (exp == 0) {
        if (man == 0) return u2f(sign);
        /* subnormal: man * 2^-24, exact in FP32 */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    return u2f(sign | ((exp + 112u) << 23) | (man << 13));
}

qv_fp16 qv_fp32_to_fp16(float f)
{
    uint32_t u = f2u(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t exp = (u >> 23) & 0xffu;
    uint32_t man = u & 0x7fffffu;
    if (exp == 0xff) /* Inf or NaN (NaN kept quiet, top payload bits kept) */
        return (qv_fp16)(sign | 0x7c00u | (man ? (0x200u | (man >> 13)) : 0));
    int e = (int)exp - 127 + 15; /* biased FP16 exponent */
    if (e >= 0x1f) return (qv_fp16)(sign | 0x7c00u);
    if (e <= 0) {
        /* result is subnormal (or zero): value = m * 2^(exp-150), with the implicit bit */
        if (e < -10) return sign; /* below half the smallest subnormal: rounds to 0 */
        uint32_t m = man | 0x800000u;
        int shift = 14 - e; /* 24-bit m -> 10-bit subnormal mantissa: shift by 13 + (1 - e) */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (qv_fp16)(sign | q); /* q may carry into the exponent field: correct */
    }
    uint32_t q = ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) q++; /* may carry to Inf: correct */
    return (qv_fp16)(sign | q);
}

qv_fp16 qv_fp32_to_fp16_sat(float f)
{
    qv_fp16 h = qv_fp32_to_fp16(f);
    if ((h & 0x7fffu) == 0x7c00u && f == f) /* rounded to Inf from a finite or infinite input */
        return (qv_fp16)((h & 0x8000u) | 0x7bffu);
    return h;
}

float qv_bf16_to_fp32(qv_bf16 h) { return u2f((uint32_t)h << 16); }

qv_bf16 qv_fp32_to_bf16(float f)
{
    uint32_t u = f2u(f);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu)) /* NaN: quiet, keep sign */
        return (qv_bf16)((u >> 16) | 0x40u);
    uint32_t lsb = (u >> 16) & 1u;
    u += 0x7fffu + lsb; /* RNE; overflow of the largest finite correctly rounds to Inf */
    return (qv_bf16)(u >> 16);
}

float qv_round_fp16(float f) { return qv_fp16_to_fp32(qv_fp32_to_fp16(f)); }

float qv_round_bf16(float f) { return qv_bf16_to_fp32(qv_fp32_to_bf16(f)); }

uint16_t qv_fp32_to_dtype16(qv_dtype16 t, float f) { return t == QV_DTYPE_BF16 ? qv_fp32_to_bf16(f) : qv_fp32_to_fp16(f); }

float qv_dtype16_to_fp32(qv_dtype16 t, uint16_t h) { return t == QV_DTYPE_BF16 ? qv_bf16_to_fp32(h) : qv_fp16_to_fp32(h); }

const char *qv_dtype16_name(qv_dtype16 t) { return t == QV_DTYPE_FP16 ? "fp16" : t == QV_DTYPE_BF16 ? "bf16" : "?"; }

int qv_dtype16_parse(const char *s, qv_dtype16 *t)
{
    if (!strcmp(s, "fp16")) return *t = QV_DTYPE_FP16, 0;
    if (!strcmp(s, "bf16")) return *t = QV_DTYPE_BF16, 0;
    return -1;
}

void qv_fp16_to_fp32_n(const qv_fp16 *src, float *dst, long n)
{
    for (long i = 0; i < n; i++) dst[i] = qv_fp16_to_fp32(src[i]);
}

void qv_bf16_to_fp32_n(const qv_bf16 *src, float *dst, long n)
{
    for (long i = 0; i < n; i++) dst[i] = qv_bf16_to_fp32(src[i]);
}

void qv_fp32_to_fp16_n(const float *src, qv_fp16 *dst, long n)
{
    for (long i = 0; i < n; i++) dst[i] = qv_fp32_to_fp16(src[i]);
}
