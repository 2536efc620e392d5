/* CPU-only part of the GPU GEMM work (runs everywhere, CI included): the GEMM entries' shape
 * contract, checked before any device work (so the messages are the same with and without CUDA
 * or a GPU). The packed layout the W4 kernels load is ref/qoq's, tested there. */
#include <string.h>

#include "qv_test_util.h"
#include "qvet/gpu.h"
#include "qvet/gpu_gemm.h"

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
    expect_usage(qv_gpu_w4a8_chn_gemm_acc(NULL, NULL, NULL, 1, 72, 64, NULL), "N % 32 == 0");
    expect_usage(qv_gpu_w4a8_g128_gemm_acc(NULL, NULL, NULL, NULL, NULL, 1, 48, 128, 128, NULL), "N % 32 == 0");
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
    Suite *s = suite_create("gemm_contract");
    TCase *tc = tcase_create("cpu");
    tcase_add_test(tc, gemm_entries_reject_shapes_outside_the_contract);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return qv_test_main(suite()); }
