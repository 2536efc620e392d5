/* Differential test of the GPU GEMM kernels (issue 7) against the CPU reference of NUMERICS.md,
 * over the kernel case matrix (include/qvet/kcases.h, the same cases `qvet kernels` runs):
 * INT32 accumulators (debug entries) bit-exact, FP16 outputs bit-exact (fixed-order FP32
 * epilogues with identical inputs), saturation counts equal to the reference's overflow count,
 * outputs poisoned before every launch. QV_GPU_GEMM_SMALL=1 runs the quick matrix (for
 * compute-sanitizer). The matrix runs under each launch-configuration family of gpu/gemm_launch.cu
 * (QV_GEMM_VARIANT unset = the shape rule; "wide" and "narrowsplit" = each tile family with
 * split-K for every shape, so the small shapes reach the split-K fix-up of every tile;
 * "legacy" = the first configurations).
 * Without a GPU: prints "SKIP gpu: no device" and exits 77. */
#include <stdlib.h>
#include <string.h>

#include "qv_test_util.h"
#include "qvet/gpu.h"
#include "qvet/kcases.h"

START_TEST(gpu_gemm_matches_reference_bit_exact)
{
    const char *e = getenv("QV_GPU_GEMM_SMALL");
    static const char *variants[] = {NULL, "wide", "narrowsplit", "legacy"};
    qv_kcase *c;
    int n, exact = 0, failed = 0;
    ck_assert_int_eq(qv_kcase_matrix(e && *e == '1', &c, &n), QV_OK);
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
        if (variants[v]) setenv("QV_GEMM_VARIANT", variants[v], 1);
        else unsetenv("QV_GEMM_VARIANT");
        printf("-- launch configurations: %s\n", variants[v] ? variants[v] : "default (shape rule)");
        for (int i = 0; i < n; i++) {
            char name[160];
            qv_kcase_name(&c[i], name, sizeof name);
            qv_kresult r;
            ck_assert_msg(qv_kcase_run(&c[i], QV_KB_GPU, 20251101 + (uint64_t)i, &r) == QV_OK, "%s: %s", name,
                          qv_last_error());
            printf("%-44s acc: %s  out: %s  sat %ld/%ld  %s\n", name, r.acc_mismatch ? "MISMATCH" : "bit-exact",
                   r.out_mismatch ? "MISMATCH" : "bit-exact", r.sat_got, r.sat_ref, r.ok ? "OK" : "FAIL");
            if (!r.ok && r.first >= 0)
                printf("    first mismatch m=%ld n=%ld: acc gpu %d ref %d, y gpu 0x%04x ref 0x%04x\n", r.first / c[i].N,
                       r.first % c[i].N, r.first_acc_got, r.first_acc_ref, r.first_out_got, r.first_out_ref);
            if (r.ok) exact++;
            else failed++;
        }
    }
    unsetenv("QV_GEMM_VARIANT");
    printf("gpu gemm cases: %d bit-exact, %d failed\n", exact, failed);
    free(c);
    ck_assert_int_eq(failed, 0);
}
END_TEST

int main(void)
{
    if (qv_gpu_device_count() == 0) {
        printf("SKIP gpu: no device (%s)\n", qv_gpu_describe());
        return QV_TEST_SKIP;
    }
    printf("device: %s\n", qv_gpu_describe());
    Suite *s = suite_create("gpu_gemm");
    TCase *tc = tcase_create("gpu");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, gpu_gemm_matches_reference_bit_exact);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
