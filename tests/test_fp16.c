/* FP16/BF16 conversions: exhaustive over all 65,536 bit patterns and every rounding midpoint,
 * checked against the compiler's _Float16 (an independent implementation) where available. */
#include <math.h>
#include <string.h>

#include "qv_test_util.h"
#include "qvet/fp16.h"

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static int is_nan16(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu); }

START_TEST(fp16_to_fp32_exact_all_65536)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = qv_fp16_to_fp32((qv_fp16)h);
        if (is_nan16((uint16_t)h)) {
            ck_assert_msg(isnan(f), "0x%04x should be NaN", h);
            continue;
        }
        /* independent decode: (-1)^s * 2^(e-15) * (1 + m/1024), or subnormal m * 2^-24 */
        int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
        double v = e == 0 ? ldexp(m, -24) : e == 31 ? INFINITY : ldexp(1024 + m, e - 25);
        if (s) v = -v;
        ck_assert_msg(f == (float)v && !!signbit(f) == !!signbit(v), "0x%04x -> %a, expected %a", h, f, v);
#ifdef __FLT16_MAX__
        _Float16 x;
        uint16_t hh = (uint16_t)h;
        memcpy(&x, &hh, 2);
        ck_assert_msg(f2u(f) == f2u((float)x), "0x%04x differs from _Float16", h);
#endif
    }
}
END_TEST

START_TEST(fp16_round_trip_bit_exact_all_65536)
{
    for (uint32_t h = 0; h < 65536; h++) {
        if (is_nan16((uint16_t)h)) {
            ck_assert(is_nan16(qv_fp32_to_fp16(qv_fp16_to_fp32((qv_fp16)h))));
            continue;
        }
        qv_fp16 back = qv_fp32_to_fp16(qv_fp16_to_fp32((qv_fp16)h));
        ck_assert_msg(back == h, "0x%04x -> 0x%04x", h, back);
    }
}
END_TEST

/* Every midpoint between adjacent FP16 values (exact in FP32) rounds to the even neighbour;
 * one FP32 ulp either side rounds to the nearer one. Covers subnormals and the 65504 -> Inf edge. */
START_TEST(fp32_to_fp16_rne_every_midpoint)
{
    for (uint32_t a = 0; a < 0x7c00u; a++) {
        uint32_t b = a + 1;
        float fa = qv_fp16_to_fp32((qv_fp16)a);
        float fb = b == 0x7c00u ? 65536.0f : qv_fp16_to_fp32((qv_fp16)b); /* beyond max: 2^16 */
        float mid = (fa + fb) * 0.5f;
        ck_assert(mid > fa && mid < fb);
        uint16_t even = (a & 1u) ? (uint16_t)b : (uint16_t)a;
        for (int sgn = 0; sgn < 2; sgn++) {
            uint16_t sb = sgn ? 0x8000u : 0;
            float m = sgn ? -mid : mid;
            ck_assert_msg(qv_fp32_to_fp16(m) == (even | sb), "midpoint of 0x%04x: got 0x%04x", a,
                          qv_fp32_to_fp16(m));
            float below = nextafterf(mid, 0.0f), above = nextafterf(mid, INFINITY);
            ck_assert_uint_eq(qv_fp32_to_fp16(sgn ? -below : below), a | sb);
            ck_assert_uint_eq(qv_fp32_to_fp16(sgn ? -above : above), b | sb);
        }
    }
}
END_TEST

START_TEST(fp32_to_fp16_matches_Float16_random)
{
#ifdef __FLT16_MAX__
    qv_test_rng r = {12345};
    for (int i = 0; i < 4000000; i++) {
        uint32_t u = (uint32_t)qv_test_next(&r);
        /* concentrate on the FP16 range: exponents 100..150 */
        if (i & 1) u = (u & 0x807fffffu) | ((uint32_t)(100 + (u >> 23) % 51) << 23);
        float f = u2f(u);
        if (isnan(f)) continue;
        _Float16 x = (_Float16)f;
        uint16_t want;
        memcpy(&want, &x, 2);
        ck_assert_msg(qv_fp32_to_fp16(f) == want, "seed 12345 i=%d: %a -> 0x%04x, _Float16 0x%04x", i,
                      f, qv_fp32_to_fp16(f), want);
    }
#else
    fprintf(stderr, "SKIP fp32_to_fp16_matches_Float16_random: compiler has no _Float16\n");
#endif
}
END_TEST

START_TEST(fp16_specials_and_saturation)
{
    ck_assert_uint_eq(qv_fp32_to_fp16(INFINITY), 0x7c00u);
    ck_assert_uint_eq(qv_fp32_to_fp16(-INFINITY), 0xfc00u);
    ck_assert(is_nan16(qv_fp32_to_fp16(NAN)));
    ck_assert_uint_eq(qv_fp32_to_fp16(-0.0f), 0x8000u);
    ck_assert_uint_eq(qv_fp32_to_fp16(1e-10f), 0x0000u);
    ck_assert_uint_eq(qv_fp32_to_fp16(65519.99f), 0x7bffu);
    ck_assert_uint_eq(qv_fp32_to_fp16(65520.0f), 0x7c00u);
    ck_assert_uint_eq(qv_fp32_to_fp16_sat(65520.0f), 0x7bffu);
    ck_assert_uint_eq(qv_fp32_to_fp16_sat(-1e30f), 0xfbffu);
    ck_assert_uint_eq(qv_fp32_to_fp16_sat(INFINITY), 0x7bffu);
    ck_assert(is_nan16(qv_fp32_to_fp16_sat(NAN)));
    ck_assert(qv_round_fp16(0.1f) == qv_fp16_to_fp32(0x2e66u));
}
END_TEST

START_TEST(bf16_round_trip_and_rne_all_65536)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = qv_bf16_to_fp32((qv_bf16)h);
        ck_assert_uint_eq(f2u(f), h << 16);
        if (isnan(f)) {
            ck_assert(isnan(qv_bf16_to_fp32(qv_fp32_to_bf16(f))));
            continue;
        }
        ck_assert_uint_eq(qv_fp32_to_bf16(f), h);
        if ((h & 0x7f80u) == 0x7f80u) continue; /* Inf has no upper neighbour */
        /* midpoint to the next magnitude: ties to even; ±1 ulp to nearest */
        uint32_t mid = (h << 16) | 0x8000u;
        uint16_t even = (h & 1u) ? (uint16_t)(h + 1) : (uint16_t)h;
        ck_assert_uint_eq(qv_fp32_to_bf16(u2f(mid)), even);
        ck_assert_uint_eq(qv_fp32_to_bf16(u2f(mid - 1)), h);
        ck_assert_uint_eq(qv_fp32_to_bf16(u2f(mid + 1)), (h + 1) & 0xffffu);
    }
}
END_TEST

/* qv_round_bf16 and the dtype16 helpers the BF16 GPU tests round with */
START_TEST(round_bf16_and_dtype16_helpers)
{
    ck_assert(qv_round_bf16(1.0f + ldexpf(1.0f, -8)) == 1.0f);                         /* tie to even (down) */
    ck_assert(qv_round_bf16(1.0f + 3 * ldexpf(1.0f, -8)) == 1.0f + ldexpf(1.0f, -6)); /* tie to even (up) */
    ck_assert(qv_round_bf16(1.0f + ldexpf(1.0f, -8) + ldexpf(1.0f, -20)) == 1.0f + ldexpf(1.0f, -7));
    ck_assert(isnan(qv_round_bf16(NAN)) && isnan(qv_round_bf16(-NAN)));
    ck_assert(isinf(qv_round_bf16(3.4e38f)) && qv_round_bf16(3.4e38f) > 0); /* beyond the largest BF16: Inf */
    ck_assert(qv_round_bf16(65520.0f) == 65536.0f);                          /* FP16 would overflow here */
    ck_assert_uint_eq(qv_fp32_to_dtype16(QV_DTYPE_BF16, 0.1f), qv_fp32_to_bf16(0.1f));
    ck_assert_uint_eq(qv_fp32_to_dtype16(QV_DTYPE_FP16, 0.1f), qv_fp32_to_fp16(0.1f));
    ck_assert(qv_dtype16_to_fp32(QV_DTYPE_BF16, 0x3f80u) == 1.0f && qv_dtype16_to_fp32(QV_DTYPE_FP16, 0x3c00u) == 1.0f);
    qv_dtype16 t = QV_DTYPE_FP16;
    ck_assert(qv_dtype16_parse("bf16", &t) == 0 && t == QV_DTYPE_BF16);
    ck_assert(qv_dtype16_parse("fp16", &t) == 0 && t == QV_DTYPE_FP16);
    ck_assert(qv_dtype16_parse("fp32", &t) == -1 && qv_dtype16_parse("BF16", &t) == -1);
    ck_assert_str_eq(qv_dtype16_name(QV_DTYPE_BF16), "bf16");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fp16");
    TCase *tc = tcase_create("conversions");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, fp16_to_fp32_exact_all_65536);
    tcase_add_test(tc, fp16_round_trip_bit_exact_all_65536);
    tcase_add_test(tc, fp32_to_fp16_rne_every_midpoint);
    tcase_add_test(tc, fp32_to_fp16_matches_Float16_random);
    tcase_add_test(tc, fp16_specials_and_saturation);
    tcase_add_test(tc, bf16_round_trip_and_rne_all_65536);
    tcase_add_test(tc, round_bf16_and_dtype16_helpers);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
