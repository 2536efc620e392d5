/* Differential test of the GPU GEMM kernels (issue 7) against the CPU reference of NUMERICS.md,
 * over the kernel case matrix (include/qvet/kcases.h, the same cases `qvet kernels` runs):
 * INT32 accumulators (debug entries) bit-exact, FP16 outputs bit-exact (fixed-order FP32
 * epilogues with identical inputs), saturation counts equal to the reference's overflow count,
 * outputs poisoned before every launch. QV_GPU_GEMM_SMALL=1 runs the quick matrix (for
 * compute-sanitizer). The matrix runs under each launch-configuration family of gpu/gemm_launch.cu
 * (QV_GEMM_VARIANT unset = the shape rule, which runs every M <= 16 case on the decode kernel,
 * gpu/gemm_decode.cuh; "decodesplit" = the same with the decode kernel sliced to one K batch per
 * block, so every small shape goes through its split-K fix-up; "wide" and "narrowsplit" = each
 * tile family with split-K for every shape, so the small shapes reach the split-K fix-up of
 * every tile, M <= 16 included; "legacy" = the first configurations; "wgmma" = the shape rule
 * with the sm_90a wgmma kernel for the W4 formats at M >= 64, checked to have run for each such
 * case where its self-test chose a layout; the default family uses it exactly where
 * qv_gpu_gemm_default_wgmma says, and no other family ever does; "decode64" = the decode
 * kernel for every M <= 64, MT 32 / 64 from M = 17, checked to have run there; "wgmma_ws" = the
 * shape rule with the warp-specialized sm_90a kernel, gpu/sm90a/gemm_wgmma_ws.cu, for the W4
 * formats at M >= 64, checked to have run for each such case where it is usable on the device and
 * never elsewhere). QV_GPU_GEMM_FAMILIES
 * (a comma list of those names, "default" for the shape rule) runs a subset, for device-time
 * budgets; unset: all.
 * Without a GPU: prints "SKIP gpu: no device" and exits 77. */
#include <stdlib.h>
#include <string.h>

#include "qv_test_util.h"
#include "qvet/gpu.h"
#include "qvet/gpu_gemm.h"
#include "qvet/kcases.h"

/* name is one entry of the comma list */
static int family_listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; p; p = strchr(p, ',')) {
        if (*p == ',') p++;
        if (!strncmp(p, name, n) && (p[n] == ',' || p[n] == '\0')) return 1;
    }
    return 0;
}

START_TEST(gpu_gemm_matches_reference_bit_exact)
{
    const char *e = getenv("QV_GPU_GEMM_SMALL");
    static const char *variants[] = {NULL, "decodesplit", "wide", "narrowsplit", "legacy", "wgmma", "decode64", "wgmma_ws"};
    const size_t v_wgmma = 5, v_dec64 = 6, v_ws = 7;
    qv_kcase *c;
    int n, exact = 0, failed = 0, path_bad = 0;
    /* whether the wgmma family can run its kernel here (sm_90 device, a layout passed its
     * self-test); -2 (not applicable): the family is the shape rule alone, checked as such;
     * -1 (none passed): a failure, the family would silently test the fallback */
    char wrep[4096] = "";
    int wchosen = -2; /* probed only when the wgmma or wgmma_ws family runs (below) */
    int ws_usable = 0; /* the wgmma_ws family can run its kernel here (probed with it) */
    unsigned long split_launches[sizeof variants / sizeof *variants] = {0};
    ck_assert_int_eq(qv_kcase_matrix(e && *e == '1', &c, &n), QV_OK);
    const char *fam = getenv("QV_GPU_GEMM_FAMILIES");
    int ran[sizeof variants / sizeof *variants] = {0};
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
        if (fam && *fam && !family_listed(fam, variants[v] ? variants[v] : "default")) continue;
        ran[v] = 1;
        if (variants[v]) setenv("QV_GEMM_VARIANT", variants[v], 1);
        else unsetenv("QV_GEMM_VARIANT");
        printf("-- launch configurations: %s\n", variants[v] ? variants[v] : "default (shape rule)");
        if (v == v_wgmma || v == v_ws) {
            const qv_status ps = qv_gpu_wgmma_probe(wrep, sizeof wrep, &wchosen);
            printf("%s", wrep);
            ck_assert_msg(ps == QV_OK, "wgmma self-test: %s", qv_last_error());
            if (wchosen == -1) path_bad++;
            if (v == v_ws) {
                ws_usable = qv_gpu_gemm_wgmma_ws_usable();
                printf("wgmma_ws kernel %s\n", ws_usable ? "usable: checked to run for W4 at M >= 64"
                                                         : "not usable here: the family is the shape rule");
            }
        }
        for (int i = 0; i < n; i++) {
            char name[160];
            qv_kcase_name(&c[i], name, sizeof name);
            qv_kresult r;
            unsigned long d0, s0, d1, s1, w0, w1, x0, x1;
            qv_gpu_gemm_decode_stats(&d0, &s0);
            qv_gpu_gemm_wgmma_stats(&w0);
            qv_gpu_gemm_wgmma_ws_stats(&x0);
            ck_assert_msg(qv_kcase_run(&c[i], QV_KB_GPU, 20251101 + (uint64_t)i, &r) == QV_OK, "%s: %s", name,
                          qv_last_error());
            qv_gpu_gemm_decode_stats(&d1, &s1);
            qv_gpu_gemm_wgmma_stats(&w1);
            qv_gpu_gemm_wgmma_ws_stats(&x1);
            /* the path that ran: the decode kernel for every M <= 16 case of the default,
             * decodesplit and wgmma families (both entries, _acc and FP16), never elsewhere; the
             * wgmma kernel for every W4 case with M >= 64 of the wgmma family (where usable) */
            const int want_dec = ((v < 2 || v == v_wgmma || v == v_ws) && c[i].M <= 16) || (v == v_dec64 && c[i].M <= 64);
            if (want_dec ? d1 - d0 < 2 : d1 != d0) {
                printf("%-44s PATH: %lu decode launches, expected %s\n", name, d1 - d0, want_dec ? ">= 2" : "0");
                path_bad++;
            }
            const int is_w4 = c[i].kernel != QV_KK_W8A8;
            const int want_wg = (v == v_wgmma && wchosen >= 0 && is_w4 && c[i].M >= 64) ||
                                (v == 0 && is_w4 && qv_gpu_gemm_default_wgmma(c[i].kernel == QV_KK_W4A8_G128, c[i].M, c[i].N));
            if (want_wg ? w1 - w0 < 2 : w1 != w0) {
                printf("%-44s PATH: %lu wgmma launches, expected %s\n", name, w1 - w0, want_wg ? ">= 2" : "0");
                path_bad++;
            }
            const int want_ws = v == v_ws && ws_usable && is_w4 && c[i].M >= 64; /* _acc and FP16 entries */
            if (want_ws ? x1 - x0 < 2 : x1 != x0) {
                printf("%-44s PATH: %lu wgmma_ws launches, expected %s\n", name, x1 - x0, want_ws ? ">= 2" : "0");
                path_bad++;
            }
            split_launches[v] += s1 - s0;
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
    printf("decode kernel launches split along K: %lu (default), %lu (decodesplit)\n", split_launches[0],
           split_launches[1]);
    printf("gpu gemm cases: %d bit-exact, %d failed, %d on the wrong path\n", exact, failed, path_bad);
    free(c);
    ck_assert_int_eq(failed, 0);
    ck_assert_int_eq(path_bad, 0);
    /* the decode kernel's split-K fix-up must have run (decodesplit slices every case with K
     * beyond one batch; the default slices e.g. M=16 N=512 K=512) */
    if (ran[0]) ck_assert_uint_gt(split_launches[0], 0);
    if (ran[1]) ck_assert_uint_gt(split_launches[1], 0);
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
