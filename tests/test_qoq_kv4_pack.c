/* KV4 (per token and KV head, min-offset, paged) and W4 packing: page boundaries, constant vectors
 * exact, round trips bit exact, layout offsets as docs/layout.md draws them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qv_test_util.h"
#include "qvet/qoq.h"

START_TEST(kv4_constant_vector_exact_no_nan)
{
    float x[8] = {3.5f, 3.5f, 3.5f, 3.5f, 3.5f, 3.5f, 3.5f, 3.5f}, xh[8];
    uint8_t c[4];
    qv_fp16 s, mn;
    for (int compat = 0; compat < 2; compat++) {
        ck_assert_int_eq(qv_kv4_quant_ref(x, 8, compat, c, &s, &mn), QV_OK);
        ck_assert(qv_fp16_to_fp32(s) == 1.0f);
        ck_assert_int_eq(c[0] | c[1] | c[2] | c[3], 0);
        ck_assert_int_eq(qv_kv4_dequant_ref(c, 8, s, mn, compat, xh), QV_OK);
        for (int i = 0; i < 8; i++) ck_assert_msg(xh[i] == 3.5f, "compat=%d i=%d %g", compat, i, xh[i]);
    }
    memset(x, 0, sizeof x);
    ck_assert_int_eq(qv_kv4_quant_ref(x, 8, 0, c, &s, &mn), QV_OK);
    ck_assert_int_eq(qv_kv4_dequant_ref(c, 8, s, mn, 0, xh), QV_OK);
    for (int i = 0; i < 8; i++) ck_assert(xh[i] == 0.0f);
}
END_TEST

START_TEST(kv4_round_trip_within_half_scale_low_nibble_first)
{
    qv_test_rng rng = {21};
    int D = 128;
    float x[128], xh[128];
    uint8_t c[64];
    qv_fp16 s, mn;
    for (int t = 0; t < 200; t++) {
        for (int i = 0; i < D; i++) x[i] = qv_round_fp16((float)(qv_test_normal(&rng) * (1 + t % 5)));
        ck_assert_int_eq(qv_kv4_quant_ref(x, D, 0, c, &s, &mn), QV_OK);
        ck_assert_int_eq(qv_kv4_dequant_ref(c, D, s, mn, 0, xh), QV_OK);
        float sf = qv_fp16_to_fp32(s), lo = qv_fp16_to_fp32(mn);
        for (int i = 0; i < D; i++) {
            int code = (int)rintf((x[i] - lo) / sf);
            code = code < 0 ? 0 : code > 15 ? 15 : code;
            int stored = i % 2 ? c[i / 2] >> 4 : c[i / 2] & 15;
            ck_assert_int_eq(stored, code);
            /* within s/2, except at the top where fp16 rounding of s may push max past code 15 */
            ck_assert_msg(fabsf(xh[i] - x[i]) <= 0.5f * sf * 1.001f || code == 15, "seed 21 t=%d i=%d", t, i);
        }
    }
}
END_TEST

static void check_pages(int T, int P)
{
    qv_kv4_geom g = {2, 8, P};
    size_t pb;
    ck_assert_int_eq(qv_kv4_page_bytes(g, &pb), QV_OK);
    ck_assert_uint_eq(pb, (size_t)2 * P * 4 + (size_t)2 * 2 * P * 2);
    long n_pages = (T + P - 1) / P;
    uint8_t *pages = malloc(pb * n_pages + 64);
    memset(pages, 0xAB, pb * n_pages + 64); /* sentinel beyond the pages and in unused slots */
    qv_test_rng rng = {(uint64_t)(T * 100 + P)};
    float *X = malloc(sizeof(float) * T * 16), xh[16], ref[16];
    for (int i = 0; i < T * 16; i++) X[i] = (float)qv_test_normal(&rng);
    for (int t = 0; t < T; t++) ck_assert_int_eq(qv_kv4_write_token(pages, n_pages, g, t, X + t * 16, 0), QV_OK);
    for (int t = 0; t < T; t++) {
        ck_assert_int_eq(qv_kv4_read_token(pages, n_pages, g, t, xh, 0), QV_OK);
        for (int h = 0; h < 2; h++) {
            uint8_t c[4];
            qv_fp16 s, mn;
            ck_assert_int_eq(qv_kv4_quant_ref(X + t * 16 + h * 8, 8, 0, c, &s, &mn), QV_OK);
            ck_assert_int_eq(qv_kv4_dequant_ref(c, 8, s, mn, 0, ref), QV_OK);
            ck_assert_msg(memcmp(ref, xh + h * 8, sizeof(float) * 8) == 0, "T=%d P=%d t=%d h=%d", T, P, t, h);
        }
    }
    for (int i = 0; i < 64; i++) ck_assert_uint_eq(pages[pb * n_pages + i], 0xAB);
    ck_assert_int_eq(qv_kv4_write_token(pages, n_pages, g, n_pages * P, X, 0), QV_ERR_USAGE);
    free(pages), free(X);
}

START_TEST(kv4_page_boundaries_1_pm1_p_pp1)
{
    int P = QV_KV4_PAGE_DEFAULT;
    int lens[] = {1, P - 1, P, P + 1, 3 * P + 5};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) check_pages(lens[i], P);
    check_pages(5, 1);
    check_pages(7, 3);
}
END_TEST

START_TEST(kv4_rejects_odd_head_dim_and_nan)
{
    float x[4] = {1, 2, NAN, 4};
    uint8_t c[2];
    qv_fp16 s, mn;
    ck_assert_int_eq(qv_kv4_quant_ref(x, 3, 0, c, &s, &mn), QV_ERR_USAGE);
    ck_assert_int_eq(qv_kv4_quant_ref(x, 4, 0, c, &s, &mn), QV_ERR_INPUT);
    qv_kv4_geom g = {1, 7, 16};
    size_t b;
    ck_assert_int_eq(qv_kv4_page_bytes(g, &b), QV_ERR_USAGE);
}
END_TEST

START_TEST(w4_pack_unpack_round_trip_bit_exact)
{
    qv_test_rng rng = {31};
    int shapes[][2] = {{32, 32}, {64, 96}, {96, 4096}};
    for (int s = 0; s < 3; s++) {
        int N = shapes[s][0], K = shapes[s][1];
        uint8_t *u = malloc((size_t)N * K), *u2 = malloc((size_t)N * K), *p = malloc((size_t)N * K / 2);
        uint8_t *p2 = malloc((size_t)N * K / 2);
        for (int i = 0; i < N * K; i++) u[i] = (uint8_t)(qv_test_next(&rng) % 16);
        memset(p, 0, (size_t)N * K / 2);
        ck_assert_int_eq(qv_w4_pack(u, N, K, p), QV_OK);
        ck_assert_int_eq(qv_w4_unpack(p, N, K, u2), QV_OK);
        ck_assert_int_eq(memcmp(u, u2, (size_t)N * K), 0);
        /* packing is a bijection: packing into a buffer of other garbage gives the same bytes */
        memset(p2, 0x5A, (size_t)N * K / 2);
        ck_assert_int_eq(qv_w4_pack(u, N, K, p2), QV_OK);
        ck_assert_int_eq(memcmp(p, p2, (size_t)N * K / 2), 0);
        free(u), free(u2), free(p), free(p2);
    }
    uint8_t g1[64 * 2], g2[64 * 2], g3[64 * 2];
    for (int i = 0; i < 128; i++) g1[i] = (uint8_t)i;
    ck_assert_int_eq(qv_w4g128_pack_groupbytes(g1, 64, 256, g2), QV_OK);
    ck_assert_int_eq(qv_w4g128_unpack_groupbytes(g2, 64, 256, g3), QV_OK);
    ck_assert_int_eq(memcmp(g1, g3, 128), 0);
    /* position 1 of the first block holds channel 8 (group 0): logical index 8*2 + 0 */
    ck_assert_int_eq(g2[1], 16);
}
END_TEST

/* The layout as docs/layout.md draws it, from explicit coordinates. */
START_TEST(w4_pack_layout_offsets_match_documented_picture)
{
    int nib;
    ck_assert_uint_eq(qv_w4_packed_offset(0, 0, 64, &nib), 0); ck_assert_int_eq(nib, 0);
    ck_assert_uint_eq(qv_w4_packed_offset(16, 0, 64, &nib), 0); ck_assert_int_eq(nib, 1);
    ck_assert_uint_eq(qv_w4_packed_offset(0, 3, 64, &nib), 3);
    ck_assert_uint_eq(qv_w4_packed_offset(8, 0, 64, &nib), 4);
    ck_assert_uint_eq(qv_w4_packed_offset(0, 16, 64, &nib), 8);
    ck_assert_uint_eq(qv_w4_packed_offset(0, 4, 64, &nib), 16);  /* lane 1 */
    ck_assert_uint_eq(qv_w4_packed_offset(1, 0, 64, &nib), 64);  /* lane 4 */
    ck_assert_uint_eq(qv_w4_packed_offset(0, 32, 64, &nib), 512); /* next K tile */
    ck_assert_uint_eq(qv_w4_packed_offset(32, 0, 64, &nib), 1024); /* next N tile row */
    uint8_t u[32 * 48];
    ck_assert_int_eq(qv_w4_pack(u, 32, 48, u), QV_ERR_USAGE);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("qoq_kv4_pack");
    TCase *tc = tcase_create("kv4_pack");
    tcase_add_test(tc, kv4_constant_vector_exact_no_nan);
    tcase_add_test(tc, kv4_round_trip_within_half_scale_low_nibble_first);
    tcase_add_test(tc, kv4_page_boundaries_1_pm1_p_pp1);
    tcase_add_test(tc, kv4_rejects_odd_head_dim_and_nan);
    tcase_add_test(tc, w4_pack_unpack_round_trip_bit_exact);
    tcase_add_test(tc, w4_pack_layout_offsets_match_documented_picture);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
