/* `qvet gate --baseline` rules (evals/gate_baseline.c) on hand-computed figures: the kernel-time
 * rule a GPU run uses (relative increase with an absolute floor), the accuracy rules (absolute
 * increase / drop), the twin-case thresholds chosen by case name, figures the table does not
 * name left alone, malformed baselines refused, and every threshold key present in the default
 * config with its why. The end-to-end checks (real gate JSON edited) are in tests/cli_gate_baseline.sh. */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qv_test_util.h"
#include "qvet/fileio.h"
#include "qvet/gate_baseline.h"

START_TEST(kernel_time_rule_relative_with_floor)
{
    double ch;
    /* 1.00 ms -> 1.20 ms: +20% > +10%, +200 us > 5 us */
    ck_assert_int_eq(qv_bl_regressed(QV_BL_REL_INCREASE, 1e-3, 1.2e-3, 0.1, 5e-6, &ch), 1);
    ck_assert_double_eq_tol(ch, 0.2, 1e-12);
    /* +5%: within */
    ck_assert_int_eq(qv_bl_regressed(QV_BL_REL_INCREASE, 1e-3, 1.05e-3, 0.1, 5e-6, &ch), 0);
    /* exactly +10% is allowed (the rule is "more than") */
    ck_assert_int_eq(qv_bl_regressed(QV_BL_REL_INCREASE, 1.0, 1.1, 0.1, 0, &ch), 0);
    /* 10 us -> 14 us: +40% but only +4 us, under the 5 us floor (launch jitter) */
    ck_assert_int_eq(qv_bl_regressed(QV_BL_REL_INCREASE, 1e-5, 1.4e-5, 0.1, 5e-6, &ch), 0);
    /* 10 us -> 16 us: +60% and +6 us */
    ck_assert_int_eq(qv_bl_regressed(QV_BL_REL_INCREASE, 1e-5, 1.6e-5, 0.1, 5e-6, &ch), 1);
    /* faster is never a regression */
    ck_assert_int_eq(qv_bl_regressed(QV_BL_REL_INCREASE, 1e-3, 0.5e-3, 0.1, 5e-6, &ch), 0);
    ck_assert_double_eq_tol(ch, -0.5, 1e-12);
    /* an old value of 0: any increase is infinite relative change */
    ck_assert_int_eq(qv_bl_regressed(QV_BL_REL_INCREASE, 0, 1e-7, 1.0, 0, &ch), 1);
    ck_assert(isinf(ch));
}
END_TEST

START_TEST(accuracy_rules_absolute)
{
    double ch;
    /* KLD 0.00182 -> 0.00532: +0.0035 > +0.002 */
    ck_assert_int_eq(qv_bl_regressed(QV_BL_ABS_INCREASE, 0.00182, 0.00532, 0.002, 0, &ch), 1);
    ck_assert_double_eq_tol(ch, 0.0035, 1e-12);
    ck_assert_int_eq(qv_bl_regressed(QV_BL_ABS_INCREASE, 0.00182, 0.00282, 0.002, 0, &ch), 0);
    /* top-1 0.93 -> 0.90: -0.03 beyond -0.02; 0.92 within; a rise never regresses */
    ck_assert_int_eq(qv_bl_regressed(QV_BL_ABS_DROP, 0.93, 0.90, 0.02, 0, &ch), 1);
    ck_assert_double_eq_tol(ch, -0.03, 1e-12);
    ck_assert_int_eq(qv_bl_regressed(QV_BL_ABS_DROP, 0.93, 0.92, 0.02, 0, &ch), 0);
    ck_assert_int_eq(qv_bl_regressed(QV_BL_ABS_DROP, 0.93, 1.0, 0.02, 0, &ch), 0);
    /* counts with limit 0: one more mismatch regresses, the same count does not */
    ck_assert_int_eq(qv_bl_regressed(QV_BL_ABS_INCREASE, 0, 1, 0, 0, &ch), 1);
    ck_assert_int_eq(qv_bl_regressed(QV_BL_ABS_INCREASE, 3, 3, 0, 0, &ch), 0);
    /* not measured (NaN) never regresses; a non-finite new value always does */
    ck_assert_int_eq(qv_bl_regressed(QV_BL_ABS_INCREASE, NAN, 5, 0.002, 0, &ch), 0);
    ck_assert_int_eq(qv_bl_regressed(QV_BL_ABS_INCREASE, 0.001, INFINITY, 0.002, 0, &ch), 1);
    ck_assert_int_eq(qv_bl_regressed(QV_BL_ABS_DROP, 0.9, NAN, 0.02, 0, &ch), 0);
}
END_TEST

static cJSON *thresholds(void)
{
    static const struct { const char *k; double v; } t[] = {
        {"baseline_kld_increase_max", 0.002},   {"baseline_kld_max_row_increase_max", 0.02},
        {"baseline_top1_drop_max", 0.02},       {"baseline_gpu_kld_increase_max", 1e-4},
        {"baseline_err_increase_rel", 1.0},     {"baseline_attn_err_ratio_increase_max", 0.1},
        {"baseline_count_increase_max", 0},     {"baseline_kernel_time_increase_rel", 0.1},
        {"baseline_kernel_time_floor_s", 5e-6},
    };
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        cJSON *e = cJSON_AddObjectToObject(o, t[i].k);
        cJSON_AddNumberToObject(e, "value", t[i].v);
        cJSON_AddStringToObject(e, "why", "test");
    }
    return o;
}

static const qv_bl_item *item(const qv_bl_item *it, int n, const char *fig)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(it[i].figure, fig)) return &it[i];
    return NULL;
}

START_TEST(compare_case_picks_rules_by_figure_and_case)
{
    cJSON *thr = thresholds();
    qv_bl_item it[QV_BL_MAX_ITEMS];
    /* a GPU kernel case: time 1 ms -> 2 ms and one new accumulator mismatch; rows-like inputs
     * (sat_ref) are not compared */
    cJSON *o = cJSON_Parse("{\"acc_mismatch\":0,\"out_mismatch\":0,\"sat_ref\":4,\"sat_mismatch\":0,\"seconds\":0.001}");
    cJSON *v = cJSON_Parse("{\"acc_mismatch\":1,\"out_mismatch\":0,\"sat_ref\":9,\"sat_mismatch\":0,\"seconds\":0.002}");
    int n = qv_bl_compare_case("kernels/w8a8 M=1 N=64 K=256 random gpu", v, o, thr, it);
    ck_assert_int_eq(n, 4);
    ck_assert_ptr_null(item(it, n, "sat_ref"));
    ck_assert_int_eq(item(it, n, "seconds")->regressed, 1);
    ck_assert_double_eq_tol(item(it, n, "seconds")->change, 1.0, 1e-12);
    ck_assert_int_eq(item(it, n, "acc_mismatch")->regressed, 1);
    ck_assert_int_eq(item(it, n, "out_mismatch")->regressed, 0);
    char line[300];
    qv_bl_describe(item(it, n, "seconds"), line, sizeof line);
    ck_assert_msg(strstr(line, "seconds +100%") && strstr(line, "allowed +10%"), "%s", line);
    cJSON_Delete(o), cJSON_Delete(v);
    /* the same KLD change: a regression for a GPU twin case (1e-4), not for an accuracy case (0.002) */
    o = cJSON_Parse("{\"kld\":1e-13,\"kld_max_row\":1e-12,\"top1\":1,\"rows\":128}");
    v = cJSON_Parse("{\"kld\":2e-4,\"kld_max_row\":1e-12,\"top1\":1,\"rows\":128}");
    n = qv_bl_compare_case("model/synth-tiny gpu-qoq vs ref-qoq", v, o, thr, it);
    ck_assert_int_eq(n, 3); /* kld once (the twin entry), kld_max_row, top1; not rows */
    ck_assert_int_eq(item(it, n, "kld")->regressed, 1);
    ck_assert_double_eq(item(it, n, "kld")->limit, 1e-4);
    n = qv_bl_compare_case("model/synth-tiny ref-qoq vs ref-fp32", v, o, thr, it);
    ck_assert_int_eq(item(it, n, "kld")->regressed, 0);
    ck_assert_double_eq(item(it, n, "kld")->limit, 0.002);
    cJSON_Delete(o), cJSON_Delete(v);
    /* a figure only one run has is not compared */
    o = cJSON_Parse("{\"worst_err_over_bound\":0.8}");
    v = cJSON_Parse("{\"worst_err_over_bound\":0.95,\"nonfinite\":0}");
    n = qv_bl_compare_case("attn/nh=8 nkv=2 hd=32 ctx=40 T=8 page=16 random cpu-emul", v, o, thr, it);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(it[0].regressed, 1); /* +0.15 > +0.1 */
    cJSON_Delete(o), cJSON_Delete(v);
    cJSON_Delete(thr);
}
END_TEST

static qv_status validate(const char *json, unsigned long long seed)
{
    cJSON *o = cJSON_Parse(json);
    ck_assert_ptr_nonnull(o);
    qv_status st = qv_bl_validate("old.json", o, seed);
    cJSON_Delete(o);
    return st;
}

START_TEST(malformed_baselines_refused)
{
    const char *good = "{\"schema\":\"qvet.gate/1\",\"seed\":1,\"cases\":[{\"group\":\"model\",\"case\":\"m\",\"figures\":{\"kld\":0.1,"
                       "\"independent\":true}},{\"group\":\"baseline\",\"case\":\"baseline/m\",\"figures\":{\"kld\":{\"old\":1}}}]}";
    ck_assert_int_eq(validate(good, 1), QV_OK);
    ck_assert_int_eq(validate(good, 2), QV_ERR_INPUT);
    ck_assert_msg(strstr(qv_last_error(), "old.json") && strstr(qv_last_error(), "--seed 1"), "%s", qv_last_error());
    ck_assert_int_eq(validate("{\"schema\":\"qvet.compare/1\",\"seed\":1,\"cases\":[]}", 1), QV_ERR_INPUT);
    ck_assert_msg(strstr(qv_last_error(), "qvet.compare/1"), "%s", qv_last_error());
    ck_assert_int_eq(validate("{\"schema\":\"qvet.gate/1\",\"cases\":[]}", 1), QV_ERR_INPUT);
    ck_assert_int_eq(validate("{\"schema\":\"qvet.gate/1\",\"seed\":1,\"cases\":{}}", 1), QV_ERR_INPUT);
    ck_assert_int_eq(validate("{\"schema\":\"qvet.gate/1\",\"seed\":1,\"cases\":[{\"case\":\"x\"}]}", 1), QV_ERR_INPUT);
    ck_assert_int_eq(validate("{\"schema\":\"qvet.gate/1\",\"seed\":1,\"cases\":[{\"group\":\"model\",\"case\":\"m\",\"figures\":"
                              "{\"kld\":\"0.1\"}}]}", 1), QV_ERR_INPUT);
    ck_assert_msg(strstr(qv_last_error(), "'m'") && strstr(qv_last_error(), "'kld'"), "%s", qv_last_error());
}
END_TEST

START_TEST(default_config_has_every_rule_threshold_with_why)
{
    const char *src = getenv("QV_SOURCE_DIR");
    ck_assert_ptr_nonnull(src);
    char path[4096], *txt = NULL;
    snprintf(path, sizeof path, "%s/golden/gate.default.json", src);
    ck_assert_int_eq(qv_read_file(path, 1u << 20, &txt, NULL), QV_OK);
    cJSON *cfg = cJSON_Parse(txt);
    free(txt);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(cfg, "thresholds");
    int n;
    const qv_bl_spec *sp = qv_bl_specs(&n);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 2; k++) {
            const char *key = k ? sp[i].floor_key : sp[i].limit_key;
            if (!key) continue;
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(t, key);
            ck_assert_msg(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(e, "value")), "%s: no value", key);
            const cJSON *why = cJSON_GetObjectItemCaseSensitive(e, "why");
            ck_assert_msg(cJSON_IsString(why) && strlen(why->valuestring) > 40, "%s: no why", key);
        }
    cJSON_Delete(cfg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gate_baseline");
    TCase *t = tcase_create("core");
    tcase_add_test(t, kernel_time_rule_relative_with_floor);
    tcase_add_test(t, accuracy_rules_absolute);
    tcase_add_test(t, compare_case_picks_rules_by_figure_and_case);
    tcase_add_test(t, malformed_baselines_refused);
    tcase_add_test(t, default_config_has_every_rule_threshold_with_why);
    suite_add_tcase(s, t);
    return qv_test_main(s);
}
