/* Integer GEMM emulation and epilogues: dgemm path == plain loop bit for bit on odd shapes, the
 * epilogues equal independently written expressions bit for bit, FP16 overflow is reported, K
 * contracts are enforced; A8 and W4 per-channel quantizers (round trip, zero-range rule). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qv_test_util.h"
#include "qvet/qoq.h"

static void rand_s8(qv_test_rng *r, int8_t *x, size_t n) { for (size_t i = 0; i < n; i++) x[i] = (int8_t)((int)(qv_test_next(r) % 255) - 127); }
static void rand_u4(qv_test_rng *r, uint8_t *x, size_t n) { for (size_t i = 0; i < n; i++) x[i] = (uint8_t)(qv_test_next(r) % 16); }

START_TEST(gemm_int32_blas_equals_loop_odd_shapes)
{
    static const int shapes[][3] = {{1, 1, 1}, {1, 7, 33}, {3, 5, 129}, {17, 33, 97}, {1, 64, 4096},
                                    {31, 13, 1000}, {2, 1, 131}};
    qv_test_rng rng = {99};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        int8_t *q = malloc((size_t)M * K), *w = malloc((size_t)N * K);
        uint8_t *u = malloc((size_t)N * K);
        int32_t *a = malloc(sizeof(int32_t) * M * N), *b = malloc(sizeof(int32_t) * M * N);
        rand_s8(&rng, q, (size_t)M * K), rand_s8(&rng, w, (size_t)N * K), rand_u4(&rng, u, (size_t)N * K);
        if (s == 0) q[0] = -127, u[0] = 15;
        ck_assert_int_eq(qv_gemm_acc_s8u4(q, u, M, N, K, a, QV_GEMM_LOOP), QV_OK);
        ck_assert_int_eq(qv_gemm_acc_s8u4(q, u, M, N, K, b, QV_GEMM_BLAS), QV_OK);
        ck_assert_msg(memcmp(a, b, sizeof(int32_t) * M * N) == 0, "s8u4 M=%d N=%d K=%d", M, N, K);
        ck_assert_int_eq(qv_gemm_acc_s8s8(q, w, M, N, K, 0, a, QV_GEMM_LOOP), QV_OK);
        ck_assert_int_eq(qv_gemm_acc_s8s8(q, w, M, N, K, 0, b, QV_GEMM_BLAS), QV_OK);
        ck_assert_msg(memcmp(a, b, sizeof(int32_t) * M * N) == 0, "s8s8 M=%d N=%d K=%d", M, N, K);
        /* one element by a third, independent sum */
        int64_t want = 0;
        for (int k = 0; k < K; k++) want += q[(size_t)(M - 1) * K + k] * w[(size_t)(N - 1) * K + k];
        ck_assert_int_eq(a[(size_t)M * N - 1], want);
        free(q), free(w), free(u), free(a), free(b);
    }
}
END_TEST

START_TEST(gemm_int32_extreme_values_exact)
{
    /* all q = -127, all w = -128/127 extremes: the largest accumulators the K limits allow */
    int M = 1, N = 2, K = 8192;
    int8_t *q = malloc(K), *w = malloc(2 * K);
    int32_t a[2], b[2];
    for (int k = 0; k < K; k++) q[k] = -127, w[k] = -128, w[K + k] = 127;
    ck_assert_int_eq(qv_gemm_acc_s8s8(q, w, M, N, K, QV_QOQ_G128_KMAX, a, QV_GEMM_LOOP), QV_OK);
    ck_assert_int_eq(qv_gemm_acc_s8s8(q, w, M, N, K, QV_QOQ_G128_KMAX, b, QV_GEMM_BLAS), QV_OK);
    ck_assert_int_eq(a[0], 127 * 128 * K);
    ck_assert_int_eq(a[1], -127 * 127 * K);
    ck_assert_int_eq(b[0], a[0]);
    ck_assert_int_eq(b[1], a[1]);
    free(q), free(w);
}
END_TEST

START_TEST(gemm_k_contracts_rejected_with_clear_error)
{
    int8_t q[256] = {0}, w[256] = {0};
    uint8_t u[256] = {0}, s1[2] = {1, 1}, sz1[2] = {0, 0};
    float sa[1] = {1}, rs[1] = {0};
    qv_fp16 s[1] = {0x3c00}, Y[1];
    ck_assert_int_eq(qv_ref_w4a8_g128_gemm(q, sa, u, s, s1, sz1, 1, 1, 160, 0, QV_GEMM_LOOP, Y, NULL, NULL), QV_ERR_USAGE);
    ck_assert_ptr_nonnull(strstr(qv_last_error(), "K=160 is not a multiple"));
    ck_assert_int_eq(qv_ref_w4a8_g128_gemm(q, sa, u, s, s1, sz1, 1, 1, 132224, 0, QV_GEMM_LOOP, Y, NULL, NULL), QV_ERR_USAGE);
    ck_assert_ptr_nonnull(strstr(qv_last_error(), "exceeds 132104"));
    ck_assert_int_eq(qv_ref_w4a8_pc_gemm(q, sa, rs, u, s, s, 1, 1, 100, 0, QV_GEMM_LOOP, Y, NULL, NULL), QV_ERR_USAGE);
    ck_assert_int_eq(qv_ref_w8a8_gemm(q, sa, w, s, 0, 1, 32, 0, QV_GEMM_LOOP, Y, NULL, NULL), QV_ERR_USAGE);
    /* K tail for per-channel / W8A8: K = 96 is accepted */
    ck_assert_int_eq(qv_ref_w4a8_pc_gemm(q, sa, rs, u, s, s, 1, 1, 96, 0, QV_GEMM_BLAS, Y, NULL, NULL), QV_OK);
}
END_TEST

/* The epilogues against expressions written out here, with volatile temporaries forcing each FP32
 * rounding (independent of the library's code). */
START_TEST(epilogues_bit_exact_vs_independent_expression)
{
    qv_test_rng rng = {5};
    int M = 9, N = 33;
    int32_t acc[9 * 33];
    float sa[9], rs[9];
    qv_fp16 sw[33], sz[33], Y[9 * 33], Y2[9 * 33], Y3[9 * 33];
    float V[9 * 33], V2[9 * 33], V3[9 * 33];
    for (int i = 0; i < M * N; i++) acc[i] = (int32_t)(qv_test_next(&rng) % 4000001) - 2000000;
    acc[0] = 16777217; /* not exact in FP32: both sides round it the same way */
    for (int m = 0; m < M; m++) sa[m] = (float)(qv_test_uniform(&rng) * 0.05), rs[m] = (float)((int)(qv_test_next(&rng) % 20001) - 10000);
    for (int n = 0; n < N; n++) {
        sw[n] = qv_fp32_to_fp16((float)(qv_test_uniform(&rng) * 0.01));
        sz[n] = qv_fp32_to_fp16(qv_fp16_to_fp32(sw[n]) * (float)(qv_test_next(&rng) % 16));
    }
    ck_assert_int_eq(qv_epilogue_w4a8_pc(acc, M, N, sa, rs, sw, sz, 0, Y, V, NULL), QV_OK);
    ck_assert_int_eq(qv_epilogue_w4a8_pc(acc, M, N, sa, rs, sw, sz, 1, Y2, V2, NULL), QV_OK);
    ck_assert_int_eq(qv_epilogue_scaled(acc, M, N, sa, sw, 0, Y3, V3, NULL), QV_OK);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            int i = m * N + n;
            volatile float a = (float)acc[i], w = qv_fp16_to_fp32(sw[n]), z = qv_fp16_to_fp32(sz[n]);
            volatile float p1 = w * a, p2 = z * rs[m], d = p1 - p2, y = sa[m] * d;
            ck_assert_uint_eq(Y[i], qv_fp32_to_fp16_sat(y));
            ck_assert_msg(V[i] == y, "pc [%d][%d]: %a vs %a", m, n, V[i], y);
            volatile float c1 = a * w, c2 = c1 * sa[m], yc = c2 - p2;
            ck_assert_uint_eq(Y2[i], qv_fp32_to_fp16(yc));
            ck_assert(V2[i] == yc);
            volatile float sc = sa[m] * w, y3 = sc * a;
            ck_assert_uint_eq(Y3[i], qv_fp32_to_fp16_sat(y3));
            ck_assert(V3[i] == y3);
        }
}
END_TEST

START_TEST(epilogue_fp16_overflow_reported_with_first_index)
{
    int32_t acc[6] = {1, 2, 3, 70000, 5, -80000};
    float sa[2] = {1.0f, 1.0f};
    qv_fp16 s[3] = {0x3c00, 0x3c00, 0x3c00}, Y[6]; /* scale 1 */
    qv_fp16_report rep;
    ck_assert_int_eq(qv_epilogue_scaled(acc, 2, 3, sa, s, 0, Y, NULL, &rep), QV_ERR_CHECK);
    ck_assert_int_eq(rep.count, 2);
    ck_assert_int_eq(rep.first, 3);
    ck_assert(rep.first_val == 70000.0f);
    ck_assert_uint_eq(Y[3], 0x7bff); /* saturated as the kernel writes it, and reported */
    ck_assert_uint_eq(Y[5], 0xfbff);
    ck_assert_ptr_nonnull(strstr(qv_last_error(), "[1][0]"));
    /* 65504 itself and values rounding to it are not overflows; 65519 rounds to 65504 but is
     * > 65504 before rounding: reported */
    int32_t acc2[2] = {65504, 65519};
    ck_assert_int_eq(qv_epilogue_scaled(acc2, 1, 2, sa, s, 0, Y, NULL, &rep), QV_ERR_CHECK);
    ck_assert_int_eq(rep.count, 1);
    ck_assert_int_eq(rep.first, 1);
}
END_TEST

START_TEST(a8_round_trip_within_half_scale_and_zero_row)
{
    qv_test_rng rng = {11};
    int M = 5, K = 300;
    float *X = malloc(sizeof(float) * M * K), sa[5], rs[5];
    int8_t *q = malloc((size_t)M * K);
    int32_t rsi[5];
    for (int i = 0; i < M * K; i++) X[i] = (float)(qv_test_normal(&rng) * 3);
    for (int k = 0; k < K; k++) X[2 * K + k] = 0.0f; /* all-zero row */
    X[4 * K + 7] = 1e30f;                            /* an outlier row */
    ck_assert_int_eq(qv_quant_a8_ref(X, M, K, q, sa, rs, 0), QV_OK);
    ck_assert_int_eq(qv_a8_rowsum_i32(q, M, K, rsi), QV_OK);
    ck_assert(sa[2] == 1.0f);
    for (int m = 0; m < M; m++) {
        ck_assert(rs[m] == (float)rsi[m]);
        for (int k = 0; k < K; k++) {
            float x = X[m * K + k], xh = (float)q[m * K + k] * sa[m];
            ck_assert(q[m * K + k] >= -127);
            ck_assert_msg(fabs((double)xh - x) <= 0.5 * sa[m] * (1 + 1e-5), "m=%d k=%d", m, k);
            if (m == 2) ck_assert(q[m * K + k] == 0 && xh == 0.0f);
        }
    }
    /* compat: FP16 scale, zero row gets QServe's floored (FP16-underflowing) scale, no NaN */
    ck_assert_int_eq(qv_quant_a8_ref(X, M, K, q, sa, rs, 1), QV_OK);
    ck_assert(sa[2] == 0.0f && rs[2] == 0.0f && !isnan(sa[2]));
    ck_assert(sa[0] == qv_fp16_to_fp32(qv_fp32_to_fp16(sa[0])));
    X[3] = NAN;
    ck_assert_int_eq(qv_quant_a8_ref(X, M, K, q, sa, rs, 0), QV_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(qv_last_error(), "X[0][3]"));
    free(X), free(q);
}
END_TEST

START_TEST(w4pc_round_trip_within_half_scale_dead_channel_exact)
{
    qv_test_rng rng = {12};
    int N = 4, K = 256;
    float *W = malloc(sizeof(float) * N * K);
    uint8_t *u = malloc((size_t)N * K), z[4];
    qv_fp16 sw[4], sz[4];
    for (int i = 0; i < N * K; i++) W[i] = (float)qv_test_normal(&rng);
    for (int k = 0; k < K; k++) W[K + k] = 0.0f, W[2 * K + k] = 0.25f + (float)(k % 2) * 0.0f;
    ck_assert_int_eq(qv_quant_w4pc_ref(W, N, K, u, sw, z, sz), QV_OK);
    ck_assert(qv_fp16_to_fp32(sw[1]) == 1.0f && z[1] == 0);
    for (int n = 0; n < N; n++) {
        float s = qv_fp16_to_fp32(sw[n]);
        ck_assert_uint_eq(sz[n], qv_fp32_to_fp16(s * (float)z[n]));
        for (int k = 0; k < K; k++) {
            float wh = ((float)u[n * K + k] - (float)z[n]) * s;
            ck_assert_msg(fabsf(wh - W[n * K + k]) <= 0.5f * s * 1.0001f, "n=%d k=%d", n, k);
            if (n == 1) ck_assert(wh == 0.0f);
        }
    }
    free(W), free(u);
}
END_TEST

/* End to end: quantize, pack, unpack, GEMM; W4A8 per channel y tracks the FP32 product. */
START_TEST(w4a8_g128_and_pc_gemm_blas_equals_loop_end_to_end)
{
    qv_test_rng rng = {13};
    int M = 3, N = 64, K = 256, G = K / 128;
    float *X = malloc(sizeof(float) * M * K), *W = malloc(sizeof(float) * N * K), sa[3], rs[3];
    int8_t *q = malloc((size_t)M * K);
    uint8_t *u = malloc((size_t)N * K), *u2 = malloc((size_t)N * K), *pk = malloc((size_t)N * K / 2);
    uint8_t s1[128], z1[128], sz1[128], z[64];
    qv_fp16 s0[64], sw[64], sz[64], Ya[192], Yb[192];
    int32_t A[192], B[192];
    for (int i = 0; i < M * K; i++) X[i] = (float)qv_test_normal(&rng);
    for (int i = 0; i < N * K; i++) W[i] = (float)(qv_test_normal(&rng) * 0.05);
    ck_assert_int_eq(qv_quant_a8_ref(X, M, K, q, sa, rs, 0), QV_OK);
    ck_assert_int_eq(qv_quant_w4g128_ref(W, N, K, QV_QOQ_PROTECT, u, s0, s1, z1, sz1), QV_OK);
    ck_assert_int_eq(qv_w4_pack(u, N, K, pk), QV_OK);
    ck_assert_int_eq(qv_w4_unpack(pk, N, K, u2), QV_OK);
    ck_assert_int_eq(memcmp(u, u2, (size_t)N * K), 0);
    ck_assert_int_eq(qv_ref_w4a8_g128_gemm(q, sa, u2, s0, s1, sz1, M, N, K, 0, QV_GEMM_LOOP, Ya, A, NULL), QV_OK);
    ck_assert_int_eq(qv_ref_w4a8_g128_gemm(q, sa, u2, s0, s1, sz1, M, N, K, 0, QV_GEMM_BLAS, Yb, B, NULL), QV_OK);
    ck_assert_int_eq(memcmp(A, B, sizeof A), 0);
    ck_assert_int_eq(memcmp(Ya, Yb, sizeof Ya), 0);
    (void)G;
    ck_assert_int_eq(qv_quant_w4pc_ref(W, N, K, u, sw, z, sz), QV_OK);
    ck_assert_int_eq(qv_ref_w4a8_pc_gemm(q, sa, rs, u, sw, sz, M, N, K, 0, QV_GEMM_LOOP, Ya, A, NULL), QV_OK);
    ck_assert_int_eq(qv_ref_w4a8_pc_gemm(q, sa, rs, u, sw, sz, M, N, K, 0, QV_GEMM_BLAS, Yb, B, NULL), QV_OK);
    ck_assert_int_eq(memcmp(A, B, sizeof A), 0);
    ck_assert_int_eq(memcmp(Ya, Yb, sizeof Ya), 0);
    /* the per-channel result approximates X W^T: NMSE well below 1 (a sanity check, not a bound) */
    double num = 0, den = 0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double ref = 0;
            for (int k = 0; k < K; k++) ref += (double)X[m * K + k] * W[n * K + k];
            double d = qv_fp16_to_fp32(Ya[m * N + n]) - ref;
            num += d * d, den += ref * ref;
        }
    fprintf(stderr, "w4a8 per-channel NMSE vs FP64: %.3g\n", num / den);
    ck_assert(num / den < 0.05);
    free(X), free(W), free(q), free(u), free(u2), free(pk);
}
END_TEST

/* The performance figure of the task: W4A8 per-channel emulation of [2048 x 4096] x [4096 x 4096]. */
START_TEST(w4a8_pc_gemm_2048x4096x4096_timing)
{
    if (!getenv("QV_QOQ_BENCH")) {
        fprintf(stderr, "SKIP w4a8 timing: set QV_QOQ_BENCH=1\n");
        return;
    }
    int M = 2048, N = 4096, K = 4096;
    qv_test_rng rng = {1};
    int8_t *q = malloc((size_t)M * K);
    uint8_t *u = malloc((size_t)N * K);
    float *sa = malloc(sizeof(float) * M), *rs = malloc(sizeof(float) * M);
    qv_fp16 *sw = malloc(2 * N), *sz = malloc(2 * N), *Y = malloc((size_t)2 * M * N);
    rand_s8(&rng, q, (size_t)M * K), rand_u4(&rng, u, (size_t)N * K);
    for (int m = 0; m < M; m++) sa[m] = 1e-3f, rs[m] = 0;
    for (int n = 0; n < N; n++) sw[n] = 0x1400, sz[n] = 0x1800;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(qv_ref_w4a8_pc_gemm(q, sa, rs, u, sw, sz, M, N, K, 0, QV_GEMM_BLAS, Y, NULL, NULL), QV_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "w4a8 per-channel emulation M=%d N=%d K=%d (dgemm): %.2f s\n", M, N, K,
            (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec));
    free(q), free(u), free(sa), free(rs), free(sw), free(sz), free(Y);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("qoq_gemm");
    TCase *tc = tcase_create("gemm");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, gemm_int32_blas_equals_loop_odd_shapes);
    tcase_add_test(tc, gemm_int32_extreme_values_exact);
    tcase_add_test(tc, gemm_k_contracts_rejected_with_clear_error);
    tcase_add_test(tc, epilogues_bit_exact_vs_independent_expression);
    tcase_add_test(tc, epilogue_fp16_overflow_reported_with_first_index);
    tcase_add_test(tc, a8_round_trip_within_half_scale_and_zero_row);
    tcase_add_test(tc, w4pc_round_trip_within_half_scale_dead_channel_exact);
    tcase_add_test(tc, w4a8_g128_and_pc_gemm_blas_equals_loop_end_to_end);
    tcase_add_test(tc, w4a8_pc_gemm_2048x4096x4096_timing);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
