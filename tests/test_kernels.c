/* The kernel case matrix on the CPU emulation of the kernels' packed data path: every case
 * bit-exact against the reference definition, and planted corruptions of the packed data
 * (the bugs the emulation exists to catch) detected. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "evals/kernels/kcase_internal.h"
#include "qv_test_util.h"
#include "qvet/fileio.h"
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

/* The attention cases on the CPU emulation: all pass clean; each planted emulation bug
 * (qv_kattn_emul_plant, include/qvet/kcases.h) fails at least one of them. */
START_TEST(attention_cases_pass_and_catch_planted_bugs)
{
    qv_kattn_case *c;
    int n;
    ck_assert_int_eq(qv_kattn_matrix(&c, &n), QV_OK);
    ck_assert_int_ge(n, 9);
    for (int plant = 0; plant <= 5; plant++) {
        qv_kattn_emul_plant = plant;
        int failed = 0;
        for (int i = 0; i < n; i++) {
            char name[160];
            qv_kattn_name(&c[i], name, sizeof name);
            qv_kattn_result r;
            ck_assert_msg(qv_kattn_run(&c[i], QV_KB_CPU_EMUL, 500 + (uint64_t)i, &r) == QV_OK, "%s: %s", name, qv_last_error());
            ck_assert_msg(plant || r.ok, "%s: %ld slots, %ld beyond bound, %ld non-finite", name, r.code_mismatch, r.out_bad,
                          r.nonfinite);
            failed += !r.ok;
        }
        ck_assert_msg(plant == 0 || failed > 0, "planted attention bug %d not caught by any case", plant);
    }
    qv_kattn_emul_plant = 0;
    free(c);
}
END_TEST

/* `qvet kernels` prints one cpu-emul line per attention case (and a visible skip for the GPU-only
 * fused producers), counts them in the summary and the JSON. */
START_TEST(kernels_cli_attention_lines)
{
    char *out, *err, json[256], cmd[400];
    snprintf(json, sizeof json, "%s/kernels_attn_%d.json", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    snprintf(cmd, sizeof cmd, "kernels --quick --backend cpu --filter '^(attn|fused/quant_a8 M=1 K=4096)' --json %s", json);
    int rc = qv_test_run_qvet(cmd, &out, &err);
    ck_assert_msg(rc == 0, "rc %d: %s", rc, err);
    qv_kattn_case *c;
    int n;
    ck_assert_int_eq(qv_kattn_matrix(&c, &n), QV_OK);
    for (int i = 0; i < n; i++) {
        char name[160], line[300];
        qv_kattn_name(&c[i], name, sizeof name);
        snprintf(line, sizeof line, "attn/%s cpu-emul kv4: bit-exact  out: within bound", name);
        ck_assert_msg(strstr(out, line), "no line '%s' in:\n%s", line, out);
    }
    ck_assert_ptr_nonnull(strstr(out, "fused/quant_a8 M=1 K=4096                    cpu-emul SKIP cpu-emul: no CPU emulation"));
    char summary[200];
    snprintf(summary, sizeof summary, "kernels: %d run, 0 bit-exact, %d bounded, 0 failed, 0 errors;", n, n);
    ck_assert_msg(strstr(out, summary), "no summary '%s' in:\n%s", summary, out);
    ck_assert_ptr_null(strstr(out, "w8a8 M="));
    char *txt = NULL;
    ck_assert_int_eq(qv_read_file(json, 1 << 20, &txt, NULL), QV_OK);
    cJSON *root = cJSON_Parse(txt), *cases = cJSON_GetObjectItem(root, "cases");
    ck_assert_ptr_nonnull(root);
    ck_assert_int_eq(cJSON_GetObjectItem(root, "bounded")->valueint, n);
    ck_assert_int_eq(cJSON_GetObjectItem(root, "passed")->valueint, n);
    ck_assert_int_eq(cJSON_GetObjectItem(root, "skipped")->valueint, 1);
    ck_assert_int_eq(cJSON_GetArraySize(cases), n + 1);
    cJSON *first = cJSON_GetArrayItem(cases, 0);
    ck_assert_str_eq(cJSON_GetObjectItem(first, "case")->valuestring, "attn/nh=8 nkv=2 hd=32 ctx=40 T=8 page=16 random");
    ck_assert_str_eq(cJSON_GetObjectItem(first, "result")->valuestring, "pass");
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(first, "worst_err_over_bound")));
    cJSON_Delete(root);
    remove(json);
    free(txt), free(out), free(err), free(c);
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
    tcase_add_test(tc, attention_cases_pass_and_catch_planted_bugs);
    tcase_add_test(tc, kernels_cli_attention_lines);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
