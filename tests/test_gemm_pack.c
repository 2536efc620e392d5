/* CPU-only part of the GPU GEMM work (runs everywhere, CI included): the "mma" packed UINT4
 * layout the kernels load, and the GEMM entries' shape contract, which is checked before any
 * device work (so the messages are the same with and without CUDA or a GPU). */
#include <string.h>

#include "qv_test_util.h"
#include "qvet/gpu.h"
#include "qvet/gpu_gemm.h"
#include "qvet/qoq_pack_mma.h"

START_TEST(pack_places_k_and_k_plus_16_in_one_byte)
{
    /* derived from the contract: byte 16b+j = u[32b+j] | u[32b+16+j] << 4 */
    uint8_t u[64], pk[32];
    for (int k = 0; k < 64; k++) u[k] = (uint8_t)((k * 7 + 3) % 16);
    ck_assert_int_eq(qv_qoq_pack_w4_mma(u, 1, 64, pk), QV_OK);
    for (int b = 0; b < 2; b++)
        for (int j = 0; j < 16; j++) {
            int lo = pk[16 * b + j] & 15, hi = pk[16 * b + j] >> 4;
            ck_assert_int_eq(lo, u[32 * b + j]);
            ck_assert_int_eq(hi, u[32 * b + 16 + j]);
        }
    /* the word of lane t (bytes 4t..4t+3) unpacks to codes 4t..4t+3 and 16+4t..16+4t+3 */
    for (int t = 0; t < 4; t++) {
        uint32_t w = (uint32_t)pk[4 * t] | (uint32_t)pk[4 * t + 1] << 8 | (uint32_t)pk[4 * t + 2] << 16 |
                     (uint32_t)pk[4 * t + 3] << 24;
        uint32_t lo = w & 0x0F0F0F0Fu, hi = (w >> 4) & 0x0F0F0F0Fu;
        for (int i = 0; i < 4; i++) {
            ck_assert_uint_eq((lo >> (8 * i)) & 255u, u[4 * t + i]);
            ck_assert_uint_eq((hi >> (8 * i)) & 255u, u[16 + 4 * t + i]);
        }
    }
}
END_TEST

START_TEST(pack_unpack_round_trip_random_and_extreme_codes)
{
    qv_test_rng r = {12345};
    const int N = 7, K = 160;
    uint8_t u[7 * 160], back[7 * 160], pk[7 * 80];
    for (int mode = 0; mode < 3; mode++) {
        for (int i = 0; i < N * K; i++) u[i] = mode == 0 ? (uint8_t)(qv_test_next(&r) & 15) : mode == 1 ? 0 : 15;
        ck_assert_int_eq(qv_qoq_pack_w4_mma(u, N, K, pk), QV_OK);
        memset(back, 0xAA, sizeof back);
        ck_assert_int_eq(qv_qoq_unpack_w4_mma(pk, N, K, back), QV_OK);
        ck_assert_mem_eq(u, back, sizeof u);
    }
}
END_TEST

START_TEST(pack_rejects_bad_code_and_k_not_multiple_of_32)
{
    uint8_t u[64] = {0}, pk[32];
    u[37] = 16;
    ck_assert_int_eq(qv_qoq_pack_w4_mma(u, 1, 64, pk), QV_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(qv_last_error(), "[0, 37]"));
    u[37] = 0;
    ck_assert_int_eq(qv_qoq_pack_w4_mma(u, 1, 48, pk), QV_ERR_USAGE);
    ck_assert_ptr_nonnull(strstr(qv_last_error(), "K % 32 == 0"));
}
END_TEST

static void expect_usage(qv_status st, const char *needle)
{
    ck_assert_int_eq(st, QV_ERR_USAGE);
    ck_assert_msg(strstr(qv_last_error(), needle) != NULL, "message '%s' lacks '%s'", qv_last_error(), needle);
}

START_TEST(gemm_entries_reject_shapes_outside_the_contract)
{
    /* NULL pointers: the shape is checked first, so these never touch a device */
    expect_usage(qv_gpu_w8a8_gemm_acc(NULL, NULL, NULL, 0, 64, 64, NULL), "M=0");
    expect_usage(qv_gpu_w8a8_gemm_acc(NULL, NULL, NULL, 1, 12, 64, NULL), "N=12");
    expect_usage(qv_gpu_w4a8_chn_gemm_acc(NULL, NULL, NULL, 1, 64, 48, NULL), "K=48");
    expect_usage(qv_gpu_w4a8_chn_gemm_acc(NULL, NULL, NULL, 1, 64, 16, NULL), "K=16");
    expect_usage(qv_gpu_w4a8_g128_gemm_acc(NULL, NULL, NULL, NULL, NULL, 1, 64, 160, 128, NULL), "K=160");
    expect_usage(qv_gpu_w4a8_g128_gemm_acc(NULL, NULL, NULL, NULL, NULL, 1, 64, 256, 64, NULL), "group=64");
    expect_usage(qv_gpu_w8a8_gemm_acc(NULL, NULL, NULL, 1, 64, 133152, NULL), "overflow");
    expect_usage(qv_gpu_w4a8_g128_gemm_acc(NULL, NULL, NULL, NULL, NULL, 1, 64, 132224, 128, NULL), "overflow");
    /* a valid shape with NULL data: a usage error with CUDA, "unsupported" without */
    qv_status st = qv_gpu_w8a8_gemm_acc(NULL, NULL, NULL, 1, 64, 64, NULL);
    if (qv_gpu_built())
        expect_usage(st, "x is NULL");
    else
        ck_assert_int_eq(st, QV_ERR_UNSUPPORTED);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("gemm_pack");
    TCase *tc = tcase_create("cpu");
    tcase_add_test(tc, pack_places_k_and_k_plus_16_in_one_byte);
    tcase_add_test(tc, pack_unpack_round_trip_random_and_extreme_codes);
    tcase_add_test(tc, pack_rejects_bad_code_and_k_not_multiple_of_32);
    tcase_add_test(tc, gemm_entries_reject_shapes_outside_the_contract);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return qv_test_main(suite()); }
