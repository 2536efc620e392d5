/* W4 progressive group (g128): the protective range keeps every dequantized value in INT8
 * (exhaustive, proof in ref/qoq/quant_w4g128.c), the planted range [-127, 127] is detected, the
 * level-2 error stays within s1/2, and the kernel's register-level dequantization equals the
 * scalar definition for every code and scale. */
#include <stdlib.h>
#include <string.h>

#include "qv_test_util.h"
#include "qvet/qoq.h"

typedef struct {
    long groups, values, overflows, err_violations, refused, bad_params;
    int first_lo, first_hi, first_w8, first_w8p;
} sweep_result;

/* For every widened group range lo <= 0 <= hi within [-bound, bound], quantize groups (through the
 * real group quantizer) holding lo, hi and every value in between, then dequantize by the scalar
 * definition and check INT8 range and the s1/2 error. */
static sweep_result sweep(int bound)
{
    sweep_result r = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    int8_t grp[QV_QOQ_GROUP];
    uint8_t u[QV_QOQ_GROUP];
    for (int lo = -bound; lo <= 0; lo++)
        for (int hi = 0; hi <= bound; hi++)
            for (int start = lo; start <= hi; start += QV_QOQ_GROUP - 2) {
                grp[0] = (int8_t)lo, grp[1] = (int8_t)hi;
                int n = 2;
                for (int v = start; v <= hi && n < QV_QOQ_GROUP; v++) grp[n++] = (int8_t)v;
                while (n < QV_QOQ_GROUP) grp[n++] = 0;
                uint8_t s1, z, sz1;
                /* (Check's ck_assert costs a system call per call: counted here, asserted after) */
                if (qv_quant_w4g128_group_ref(grp, QV_QOQ_GROUP, u, &s1, &z, &sz1) != QV_OK) {
                    r.refused++; /* range needs s1 > 16: only possible beyond the protective range */
                    continue;
                }
                if (!(s1 >= 1 && s1 <= 16 && z <= 15 && sz1 == z * s1)) r.bad_params++;
                r.groups++;
                for (int i = 0; i < QV_QOQ_GROUP; i++) {
                    int w8p = qv_w4g128_dequant1(u[i], s1, sz1);
                    r.values++;
                    if (w8p < -127 || w8p > 127) {
                        if (r.overflows++ == 0)
                            r.first_lo = lo, r.first_hi = hi, r.first_w8 = grp[i], r.first_w8p = w8p;
                    }
                    int e = w8p - grp[i];
                    if (2 * abs(e) > s1) r.err_violations++;
                }
            }
    return r;
}

START_TEST(w4g128_protective_range_keeps_w8p_in_int8_exhaustive)
{
    sweep_result r = sweep(QV_QOQ_PROTECT);
    fprintf(stderr, "protective range 119: %ld groups, %ld values, %ld with |w8'| > 127\n", r.groups,
            r.values, r.overflows);
    ck_assert_msg(r.overflows == 0, "lo=%d hi=%d w8=%d -> w8'=%d", r.first_lo, r.first_hi,
                  r.first_w8, r.first_w8p);
    ck_assert_int_eq(r.err_violations, 0);
    ck_assert_int_eq(r.refused, 0);
    ck_assert_int_eq(r.bad_params, 0);
    ck_assert(r.groups > 14400); /* every (lo, hi) pair at least once */
}
END_TEST

START_TEST(w4g128_planted_range_127_overflow_is_detected)
{
    sweep_result r = sweep(127);
    fprintf(stderr, "planted range 127: %ld of %ld values dequantize to |w8'| > 127 (first lo=%d "
            "hi=%d w8=%d -> %d)\n", r.overflows, r.values, r.first_lo, r.first_hi, r.first_w8,
            r.first_w8p);
    ck_assert(r.overflows > 0);
    ck_assert_int_eq(r.bad_params, 0);
    fprintf(stderr, "planted range 127: %ld groups refused (range needs s1 = 17)\n", r.refused);
    /* NUMERICS.md's failing group, directly */
    int8_t grp[QV_QOQ_GROUP] = {0};
    grp[0] = -110, grp[1] = 127;
    uint8_t u[QV_QOQ_GROUP], s1, z, sz1;
    ck_assert_int_eq(qv_quant_w4g128_group_ref(grp, QV_QOQ_GROUP, u, &s1, &z, &sz1), QV_OK);
    ck_assert_int_eq(s1, 16);
    ck_assert_int_eq(z, 7);
    ck_assert_int_eq(u[1], 15);
    ck_assert_int_eq(qv_w4g128_dequant1(u[1], s1, sz1), 128);
    /* the error bound still holds: the overflow comes from the range, not the rounding */
    ck_assert_int_eq(r.err_violations, 0);
    /* and the checkpoint check and the dequantizer both refuse it */
    uint8_t s1v[1] = {s1}, sz1v[1] = {sz1};
    ck_assert_int_eq(qv_w4g128_check_codes(u, s1v, sz1v, 1, QV_QOQ_GROUP), QV_ERR_INPUT);
    int8_t w8p[QV_QOQ_GROUP];
    ck_assert_int_eq(qv_w4g128_dequant_ref(u, s1v, sz1v, 1, QV_QOQ_GROUP, w8p), QV_ERR_CHECK);
}
END_TEST

/* Level 1 with bound 127 feeds the planted group through the whole quantizer: a channel whose
 * max|w| maps to 127 and a group spanning [-110, 127]. */
START_TEST(w4g128_full_quantizer_planted_127_reaches_128)
{
    float W[QV_QOQ_GROUP] = {0};
    W[0] = -110.0f, W[1] = 127.0f; /* s0 = fp16(127/127) = 1 */
    uint8_t u[QV_QOQ_GROUP], s1, z, sz1;
    qv_fp16 s0;
    ck_assert_int_eq(qv_quant_w4g128_ref(W, 1, QV_QOQ_GROUP, 127, u, &s0, &s1, &z, &sz1), QV_OK);
    ck_assert_int_eq(qv_w4g128_check_codes(u, &s1, &sz1, 1, QV_QOQ_GROUP), QV_ERR_INPUT);
    ck_assert_int_eq(qv_quant_w4g128_ref(W, 1, QV_QOQ_GROUP, QV_QOQ_PROTECT, u, &s0, &s1, &z, &sz1), QV_OK);
    ck_assert_int_eq(qv_w4g128_check_codes(u, &s1, &sz1, 1, QV_QOQ_GROUP), QV_OK);
}
END_TEST

START_TEST(w4g128_level2_error_within_half_s1_random_weights)
{
    qv_test_rng rng = {2024};
    int N = 64, K = 512, G = K / QV_QOQ_GROUP;
    float *W = malloc(sizeof(float) * N * K);
    uint8_t *u = malloc(N * K), s1[64 * 4], z[64 * 4], sz1[64 * 4];
    int8_t *w8 = malloc(N * K);
    qv_fp16 s0[64], s0b[64];
    for (int i = 0; i < N * K; i++) W[i] = (float)(qv_test_normal(&rng) * (1 + i % 7));
    ck_assert_int_eq(qv_quant_w4g128_ref(W, N, K, QV_QOQ_PROTECT, u, s0, s1, z, sz1), QV_OK);
    ck_assert_int_eq(qv_quant_w4g128_level1_ref(W, N, K, QV_QOQ_PROTECT, w8, s0b), QV_OK);
    ck_assert_int_eq(qv_w4g128_check_codes(u, s1, sz1, N, K), QV_OK);
    for (int n = 0; n < N; n++) {
        ck_assert_uint_eq(s0[n], s0b[n]);
        for (int k = 0; k < K; k++) {
            int gi = n * G + k / QV_QOQ_GROUP;
            int e = qv_w4g128_dequant1(u[n * K + k], s1[gi], sz1[gi]) - w8[n * K + k];
            ck_assert_msg(2 * abs(e) <= s1[gi], "seed 2024 [%d][%d]: error %d, s1 %d", n, k, e, s1[gi]);
            ck_assert(w8[n * K + k] >= -119 && w8[n * K + k] <= 119);
        }
    }
    free(W), free(u), free(w8);
}
END_TEST

START_TEST(w4g128_dead_channel_and_zero_group_exact)
{
    int K = 256;
    float W[2 * 256] = {0};
    for (int k = 128; k < 256; k++) W[256 + k] = 0.5f; /* channel 1: zero group, constant group */
    uint8_t u[512], s1[4], z[4], sz1[4];
    qv_fp16 s0[2];
    int8_t w8p[512];
    ck_assert_int_eq(qv_quant_w4g128_ref(W, 2, K, QV_QOQ_PROTECT, u, s0, s1, z, sz1), QV_OK);
    ck_assert(qv_fp16_to_fp32(s0[0]) == 1.0f); /* dead channel: scale 1 */
    ck_assert_int_eq(qv_w4g128_dequant_ref(u, s1, sz1, 2, K, w8p), QV_OK);
    for (int k = 0; k < K; k++) ck_assert_int_eq(w8p[k], 0);
    for (int k = 0; k < 128; k++) ck_assert_int_eq(w8p[256 + k], 0);
    /* constant group: 0.5 / s0 = 119 exactly representable on the grid? w8 = 119, lo = 0 */
    for (int k = 128; k < 256; k++) {
        float w = qv_fp16_to_fp32(s0[1]) * (float)w8p[256 + k];
        ck_assert(w == w); /* no NaN */
        ck_assert_int_eq(abs(w8p[256 + k] - 119) * 2 <= s1[3], 1);
    }
}
END_TEST

START_TEST(w4g128_rejects_k_not_multiple_of_128_and_bad_input)
{
    float W[160] = {0};
    uint8_t u[160], s1[2], z[2], sz1[2];
    qv_fp16 s0[1];
    ck_assert_int_eq(qv_quant_w4g128_ref(W, 1, 160, QV_QOQ_PROTECT, u, s0, s1, z, sz1), QV_ERR_USAGE);
    ck_assert_ptr_nonnull(strstr(qv_last_error(), "K=160"));
    W[5] = 0.0f / 0.0f;
    ck_assert_int_eq(qv_quant_w4g128_ref(W, 1, 128, QV_QOQ_PROTECT, u, s0, s1, z, sz1), QV_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(qv_last_error(), "NaN"));
}
END_TEST

/* The register-level-parallel dequantization equals the scalar definition modulo 256 for every
 * scale s1 in 1..16, every zero z in 0..15 and every code in every lane, and as INT8 exactly when
 * the scalar value fits INT8. */
START_TEST(w4g128_simd_emul_equals_scalar_all_codes_scales)
{
    long fits = 0, wraps = 0, bad = 0;
    for (int s = 1; s <= 16; s++)
        for (int zz = 0; zz <= 15; zz++)
            for (int code = 0; code < 65536; code++) {
                /* 4 codes: one per lane of every byte position; the same nibbles in low and high
                 * halves but rotated so each lane/nibble sees every code over the loop */
                uint8_t packed[16];
                for (int b = 0; b < 16; b++) {
                    int lo = (code >> (4 * (b % 4))) & 15, hi = (code >> (4 * ((b + 1) % 4))) & 15;
                    packed[b] = (uint8_t)(lo | hi << 4);
                }
                uint8_t s1x4[4] = {(uint8_t)s, (uint8_t)s, (uint8_t)s, (uint8_t)s};
                uint8_t sz[4] = {(uint8_t)(zz * s), (uint8_t)(zz * s), (uint8_t)(zz * s), (uint8_t)(zz * s)};
                uint32_t out[8];
                qv_w4g128_dequant_simd_emul(packed, s1x4, sz, out);
                for (int j = 0; j < 8; j++) {
                    /* register j: channel slot j/2 (0: low nibble of x|z, 1: low of y|w, 2: high
                     * of x|z, 3: high of y|w), k half j%2 */
                    int word = (j % 2) * 2 + ((j / 2) % 2), high = j / 4;
                    for (int lane = 0; lane < 4; lane++) {
                        uint8_t byte = packed[word * 4 + lane];
                        int c = high ? byte >> 4 : byte & 15;
                        int want = qv_w4g128_dequant1((uint8_t)c, (uint8_t)s, (uint8_t)(zz * s));
                        uint8_t got = (uint8_t)(out[j] >> (8 * lane));
                        if (got != (uint8_t)(want & 0xff)) bad++;
                        if (want >= -128 && want <= 127) {
                            if ((int8_t)got != want) bad++;
                            fits++;
                        } else {
                            wraps++;
                        }
                    }
                }
                if (s * zz > 0 && code > 255) code += 250; /* full sweep for s1*z == 0, sampled otherwise */
            }
    fprintf(stderr, "simd emul: %ld lanes equal as INT8, %ld out-of-INT8 lanes equal modulo 256\n",
            fits, wraps);
    ck_assert_int_eq(bad, 0);
    ck_assert(wraps > 0 && fits > 0);
}
END_TEST

START_TEST(w4g128_simd_emul_matches_packed_layout_and_scale_reorder)
{
    /* A whole 32x128 slice through pack -> per-lane emulation == scalar dequant of logical codes. */
    qv_test_rng rng = {77};
    int N = 64, K = 256, G = K / QV_QOQ_GROUP;
    uint8_t *u = malloc(N * K), *packed = malloc(N * K / 2), s1[64 * 2], sz1[64 * 2], s1p[128], sz1p[128];
    for (int i = 0; i < N * K; i++) u[i] = (uint8_t)(qv_test_next(&rng) % 16);
    for (int i = 0; i < N * G; i++) {
        s1[i] = (uint8_t)(1 + qv_test_next(&rng) % 16);
        sz1[i] = (uint8_t)(s1[i] * (qv_test_next(&rng) % 16));
    }
    ck_assert_int_eq(qv_w4_pack(u, N, K, packed), QV_OK);
    ck_assert_int_eq(qv_w4g128_pack_groupbytes(s1, N, K, s1p), QV_OK);
    ck_assert_int_eq(qv_w4g128_pack_groupbytes(sz1, N, K, sz1p), QV_OK);
    for (int n0 = 0; n0 < N / 32; n0++)
        for (int k0 = 0; k0 < K / 32; k0++)
            for (int lane = 0; lane < 32; lane++) {
                int c = lane / 4, e = lane % 4, g = k0 * 32 / QV_QOQ_GROUP;
                const uint8_t *p16 = packed + ((size_t)n0 * (K / 32) + k0) * 512 + lane * 16;
                uint32_t out[8];
                qv_w4g128_dequant_simd_emul(p16, s1p + g * N + n0 * 32 + c * 4, sz1p + g * N + n0 * 32 + c * 4, out);
                for (int j = 0; j < 8; j++)
                    for (int f = 0; f < 4; f++) {
                        int n = n0 * 32 + (j / 2) * 8 + c, k = k0 * 32 + (j % 2) * 16 + e * 4 + f;
                        int gi = n * G + k / QV_QOQ_GROUP;
                        int want = qv_w4g128_dequant1(u[n * K + k], s1[gi], sz1[gi]);
                        ck_assert_int_eq((uint8_t)(out[j] >> (8 * f)), (uint8_t)(want & 0xff));
                    }
            }
    free(u), free(packed);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("qoq_w4g128");
    TCase *tc = tcase_create("w4g128");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, w4g128_protective_range_keeps_w8p_in_int8_exhaustive);
    tcase_add_test(tc, w4g128_planted_range_127_overflow_is_detected);
    tcase_add_test(tc, w4g128_full_quantizer_planted_127_reaches_128);
    tcase_add_test(tc, w4g128_level2_error_within_half_s1_random_weights);
    tcase_add_test(tc, w4g128_dead_channel_and_zero_group_exact);
    tcase_add_test(tc, w4g128_rejects_k_not_multiple_of_128_and_bad_input);
    tcase_add_test(tc, w4g128_simd_emul_equals_scalar_all_codes_scales);
    tcase_add_test(tc, w4g128_simd_emul_matches_packed_layout_and_scale_reorder);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
