/* The kernel case matrix on the CPU emulation of the kernels' packed data path: every case
 * bit-exact against the reference definition, and planted corruptions of the packed data
 * (the bugs the emulation exists to catch) detected. */
#include <stdlib.h>
#include <string.h>

#include "evals/kernels/kcase_internal.h"
#include "qv_test_util.h"
#include "qvet/kcases.h"

START_TEST(kernel_matrix_cpu_emulation_bit_exact)
{
    qv_kcase *c;
    int n;
    ck_assert_int_eq(qv_kcase_matrix(1, &c, &n), QV_OK);
    ck_assert_int_gt(n, 60);
    int sat_cases = 0;
    for (int i = 0; i < n; i++) {
        qv_kresult r;
        char name[160];
        qv_kcase_name(&c[i], name, sizeof name);
        ck_assert_msg(qv_kcase_run(&c[i], QV_KB_CPU_EMUL, 1000 + (uint64_t)i, &r) == QV_OK, "%s: %s", name, qv_last_error());
        ck_assert_msg(r.ok, "%s: %ld acc, %ld out, %ld w mismatches, sat %ld/%ld", name, r.acc_mismatch,
                      r.out_mismatch, r.w_mismatch, r.sat_got, r.sat_ref);
        sat_cases += r.sat_ref > 0;
    }
    /* the max-scales cases must actually overflow, or they prove nothing */
    ck_assert_int_ge(sat_cases, 9);
    free(c);
}
END_TEST

/* Corrupts the packed data the way a kernel bug would read it and checks the comparison fails. */
static qv_kresult run_corrupted(qv_kkernel k, int what)
{
    qv_kcase c = {k, QV_KV_RANDOM, 5, 64, 256};
    qv_kdata d;
    ck_assert_int_eq(qv_kdata_make(&c, 77, &d), QV_OK);
    if (what == 0) { /* swapped nibbles in one packed byte */
        for (int i = 0; i < 512; i++)
            if ((d.pk[i] & 15) != (d.pk[i] >> 4)) { d.pk[i] = (uint8_t)((d.pk[i] << 4) | (d.pk[i] >> 4)); break; }
    } else if (what == 1) { /* group scale bytes not reordered (logical instead of packed order) */
        memcpy(d.s1p, d.s1, (size_t)d.N * d.G);
        memcpy(d.sz1p, d.sz1, (size_t)d.N * d.G);
    } else { /* K tiles of a channel block swapped (layout applied in the wrong tile order) */
        uint8_t tmp[512];
        memcpy(tmp, d.pk, 512);
        memcpy(d.pk, d.pk + 512, 512);
        memcpy(d.pk + 512, tmp, 512);
    }
    qv_kresult r;
    memset(&r, 0, sizeof r);
    ck_assert_int_eq(qv_kcase_run_cpu_emul(&c, &d, &r), QV_OK);
    qv_kdata_free(&d);
    return r;
}

START_TEST(planted_layout_bugs_are_detected)
{
    for (int k = QV_KK_W4A8_CHN; k <= QV_KK_W4A8_G128; k++) {
        qv_kresult r = run_corrupted((qv_kkernel)k, 0);
        ck_assert_msg(!r.ok && r.w_mismatch > 0, "swapped nibbles not detected (%s)", qv_kkernel_name(k));
        r = run_corrupted((qv_kkernel)k, 2);
        ck_assert_msg(!r.ok && r.out_mismatch > 0, "swapped K tiles not detected (%s)", qv_kkernel_name(k));
    }
    qv_kresult r = run_corrupted(QV_KK_W4A8_G128, 1);
    ck_assert_msg(!r.ok && r.w_mismatch > 0, "unreordered group bytes not detected");
}
END_TEST

START_TEST(kernels_cli_filter_seed_and_exit_codes)
{
    char *out, *err;
    int rc = qv_test_run_qvet("kernels --quick --filter '^w4a8_g128 M=17 ' --seed 9", &out, &err);
    ck_assert_msg(rc == 0, "rc %d: %s", rc, err);
    ck_assert_ptr_nonnull(strstr(out, "w4a8_g128 M=17 N=96 K=384 random"));
    ck_assert_ptr_null(strstr(out, "w8a8 M="));
    ck_assert_ptr_nonnull(strstr(out, "bit-exact"));
    free(out);
    free(err);
    rc = qv_test_run_qvet("kernels --filter '(' ", &out, &err);
    ck_assert_int_eq(rc, 2);
    ck_assert_ptr_nonnull(strstr(err, "bad regular expression"));
    free(out);
    free(err);
    rc = qv_test_run_qvet("kernels --backend tpu", &out, &err);
    ck_assert_int_eq(rc, 2);
    free(out);
    free(err);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("matrix");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, kernel_matrix_cpu_emulation_bit_exact);
    tcase_add_test(tc, planted_layout_bugs_are_detected);
    tcase_add_test(tc, kernels_cli_filter_seed_and_exit_codes);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
