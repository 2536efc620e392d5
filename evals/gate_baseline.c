/* The comparison rules of `qvet gate --baseline` (include/qvet/gate_baseline.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "qvet/gate_baseline.h"

/* Why each threshold has its value: golden/gate.default.json. Twin cases (a GPU engine against
 * the CPU engine computing the same function) sit at summation-order level, far below the
 * accuracy cases' KLD, so they get their own, tighter limit; they come first because the first
 * matching entry wins. */
static const qv_bl_spec specs[] = {
    {"kld", " gpu-qoq vs ref-qoq", QV_BL_ABS_INCREASE, "baseline_gpu_kld_increase_max", NULL},
    {"kld", " gpu-fp16 vs ref-fp32", QV_BL_ABS_INCREASE, "baseline_gpu_kld_increase_max", NULL},
    {"kld_max_row", " gpu-qoq vs ref-qoq", QV_BL_ABS_INCREASE, "baseline_gpu_kld_increase_max", NULL},
    {"kld_max_row", " gpu-fp16 vs ref-fp32", QV_BL_ABS_INCREASE, "baseline_gpu_kld_increase_max", NULL},
    {"kld", NULL, QV_BL_ABS_INCREASE, "baseline_kld_increase_max", NULL},
    {"kld_max_row", NULL, QV_BL_ABS_INCREASE, "baseline_kld_max_row_increase_max", NULL},
    {"top1", NULL, QV_BL_ABS_DROP, "baseline_top1_drop_max", NULL},
    {"worst_err_over_bound", NULL, QV_BL_ABS_INCREASE, "baseline_attn_err_ratio_increase_max", NULL},
    {"worst_logits_rel_err", NULL, QV_BL_REL_INCREASE, "baseline_err_increase_rel", NULL},
    {"logits_rel_change", NULL, QV_BL_REL_INCREASE, "baseline_err_increase_rel", NULL},
    {"acc_mismatch", NULL, QV_BL_ABS_INCREASE, "baseline_count_increase_max", NULL},
    {"out_mismatch", NULL, QV_BL_ABS_INCREASE, "baseline_count_increase_max", NULL},
    {"weight_mismatch", NULL, QV_BL_ABS_INCREASE, "baseline_count_increase_max", NULL},
    {"sat_mismatch", NULL, QV_BL_ABS_INCREASE, "baseline_count_increase_max", NULL},
    {"kv4_slot_mismatch", NULL, QV_BL_ABS_INCREASE, "baseline_count_increase_max", NULL},
    {"out_beyond_bound", NULL, QV_BL_ABS_INCREASE, "baseline_count_increase_max", NULL},
    {"nonfinite", NULL, QV_BL_ABS_INCREASE, "baseline_count_increase_max", NULL},
    {"values_changed", NULL, QV_BL_ABS_INCREASE, "baseline_count_increase_max", NULL},
    {"seconds", NULL, QV_BL_REL_INCREASE, "baseline_kernel_time_increase_rel", "baseline_kernel_time_floor_s"},
};

const qv_bl_spec *qv_bl_specs(int *n)
{
    *n = (int)(sizeof specs / sizeof *specs);
    return specs;
}

int qv_bl_regressed(qv_bl_rule rule, double old_v, double new_v, double limit, double floor, double *change)
{
    *change = NAN;
    if (isnan(old_v) || isnan(new_v) || isnan(limit)) return 0;
    switch (rule) {
    case QV_BL_ABS_INCREASE:
        *change = new_v - old_v;
        return !(new_v <= old_v + limit);
    case QV_BL_ABS_DROP:
        *change = new_v - old_v;
        return !(new_v >= old_v - limit);
    case QV_BL_REL_INCREASE:
        *change = old_v > 0 ? new_v / old_v - 1 : new_v > old_v ? INFINITY : 0;
        return new_v > old_v * (1 + limit) && new_v - old_v > (isnan(floor) ? 0 : floor);
    }
    return 0;
}

static double number(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static double threshold(const cJSON *thresholds, const char *key)
{
    return key ? number(cJSON_GetObjectItemCaseSensitive(thresholds, key), "value") : NAN;
}

int qv_bl_compare_case(const char *case_name, const cJSON *new_figs, const cJSON *old_figs, const cJSON *thresholds,
                       qv_bl_item *items)
{
    int n = 0;
    const char *done[QV_BL_MAX_ITEMS];
    for (size_t i = 0; i < sizeof specs / sizeof *specs && n < QV_BL_MAX_ITEMS; i++) {
        const qv_bl_spec *s = &specs[i];
        if (s->case_contains && !strstr(case_name, s->case_contains)) continue;
        int seen = 0;
        for (int j = 0; j < n; j++) seen |= !strcmp(done[j], s->figure);
        if (seen) continue; /* an earlier, more specific entry already compared this figure */
        double o = number(old_figs, s->figure), v = number(new_figs, s->figure);
        if (isnan(o) || isnan(v)) continue;
        qv_bl_item *it = &items[n];
        it->figure = s->figure;
        it->rule = s->rule;
        it->old_v = o, it->new_v = v;
        it->limit = threshold(thresholds, s->limit_key);
        it->floor = s->floor_key ? threshold(thresholds, s->floor_key) : 0;
        it->regressed = qv_bl_regressed(s->rule, o, v, it->limit, it->floor, &it->change);
        done[n++] = s->figure;
    }
    return n;
}

qv_status qv_bl_validate(const char *path, const cJSON *old, unsigned long long seed)
{
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(old, "schema");
    if (!cJSON_IsString(schema) || strcmp(schema->valuestring, "qvet.gate/1"))
        return qv_fail(QV_ERR_INPUT, "%s: not a qvet gate report (schema %s%s%s, want \"qvet.gate/1\")", path,
                       cJSON_IsString(schema) ? "\"" : "", cJSON_IsString(schema) ? schema->valuestring : "missing",
                       cJSON_IsString(schema) ? "\"" : "");
    const cJSON *sd = cJSON_GetObjectItemCaseSensitive(old, "seed");
    if (!cJSON_IsNumber(sd) || sd->valuedouble < 0)
        return qv_fail(QV_ERR_INPUT, "%s: \"seed\" missing or not a non-negative number", path);
    if ((unsigned long long)sd->valuedouble != seed)
        return qv_fail(QV_ERR_INPUT,
                       "%s: baseline seed %llu, this run's %llu: kernel inputs are drawn from the seed, so figures "
                       "compare only at equal seeds (run with --seed %llu)",
                       path, (unsigned long long)sd->valuedouble, seed, (unsigned long long)sd->valuedouble);
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(old, "cases");
    if (!cJSON_IsArray(cases)) return qv_fail(QV_ERR_INPUT, "%s: \"cases\" missing or not an array", path);
    int i = 0;
    for (const cJSON *c = cases->child; c; c = c->next, i++) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(c, "case"), *group = cJSON_GetObjectItemCaseSensitive(c, "group");
        if (!cJSON_IsObject(c) || !cJSON_IsString(name) || !cJSON_IsString(group))
            return qv_fail(QV_ERR_INPUT, "%s: cases[%d] is not an object with string \"case\" and \"group\"", path, i);
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(c, "figures");
        if (!f || !strcmp(group->valuestring, "baseline")) continue;
        if (!cJSON_IsObject(f)) return qv_fail(QV_ERR_INPUT, "%s: case '%s': \"figures\" is not an object", path, name->valuestring);
        for (const cJSON *v = f->child; v; v = v->next)
            if (!cJSON_IsNumber(v) && !cJSON_IsBool(v))
                return qv_fail(QV_ERR_INPUT, "%s: case '%s': figure '%s' is not a number", path, name->valuestring,
                               v->string ? v->string : "?");
    }
    return QV_OK;
}

void qv_bl_describe(const qv_bl_item *it, char *buf, int n)
{
    if (it->rule == QV_BL_REL_INCREASE) {
        char fl[64] = "";
        if (it->floor > 0) snprintf(fl, sizeof fl, " and more than +%.3g", it->floor);
        snprintf(buf, (size_t)n, "%s %+.3g%% (%.4g -> %.4g, allowed +%.3g%%%s)", it->figure, it->change * 100, it->old_v,
                 it->new_v, it->limit * 100, fl);
    } else {
        snprintf(buf, (size_t)n, "%s %+.4g (%.6g -> %.6g, allowed %s%.3g)", it->figure, it->change, it->old_v, it->new_v,
                 it->rule == QV_BL_ABS_DROP ? "-" : "+", it->limit);
    }
}
