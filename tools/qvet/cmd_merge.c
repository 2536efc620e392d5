/* qvet merge OUT.json SHARD.json...: joins the --shard i/n results of one eval (compare, niah, ppl or longbench)
 * into the result one run would have written: the summary is recomputed from the union of the
 * stored samples in sample order. Refuses results of different runs (meta differs), duplicate
 * samples and unknown schemas (exit 2). Warns when samples are still missing ("complete": false). */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "eval_cli.h"
#include "eval_cmds.h"
#include "qvet/fileio.h"

static qv_status merge_compare(int n, char **in, const char *out, char *cmd, int *complete)
{
    qv_cmp_meta m0 = {0};
    qv_cmp_set all = {0};
    qv_status st = QV_OK;
    for (int i = 0; i < n && st == QV_OK; i++) {
        cJSON *j = NULL;
        qv_cmp_meta m;
        qv_cmp_set s;
        const char *what;
        st = qv_json_read(in[i], &j);
        if (st == QV_OK) st = qv_cmp_from_json(j, in[i], &m, &s);
        cJSON_Delete(j);
        if (st != QV_OK) break;
        if (i == 0) m0 = m;
        else {
            if (qv_cmp_meta_differs(&m0, &m, &what))
                st = qv_fail(QV_ERR_INPUT, "%s: not a shard of the same run as %s (%s differs)", in[i], in[0], what);
            qv_cmp_meta_free(&m);
        }
        for (int k = 0; st == QV_OK && k < s.n; k++) {
            st = qv_cmp_set_add(&all, &s.v[k]);
            if (st != QV_OK) qv_fail_prefix(st, "%s", in[i]);
        }
        qv_cmp_set_free(&s);
    }
    cJSON *res = NULL;
    if (st == QV_OK) {
        m0.shard_i = 0;
        m0.shard_n = 1;
        free(m0.command);
        m0.command = cmd ? strdup(cmd) : NULL;
        st = qv_cmp_to_json(&m0, &all, &res);
    }
    if (st == QV_OK) {
        *complete = cJSON_IsTrue(cJSON_GetObjectItem(res, "complete"));
        st = qv_json_write_atomic(out, res);
        qv_cmp_summary sum;
        if (st == QV_OK && qv_cmp_summarize(&all, &sum) == QV_OK) qv_compare_print(&sum, NULL);
    }
    cJSON_Delete(res);
    qv_cmp_meta_free(&m0);
    qv_cmp_set_free(&all);
    return st;
}

static qv_status merge_niah(int n, char **in, const char *out, char *cmd, int *complete)
{
    cJSON *meta0 = NULL, *k0 = NULL;
    qv_niah_cell *all = NULL;
    int na = 0;
    qv_status st = QV_OK;
    for (int i = 0; i < n && st == QV_OK; i++) {
        cJSON *m;
        qv_niah_cell *c;
        int cn;
        st = qv_niah_load(in[i], &m, &c, &cn);
        if (st != QV_OK) break;
        cJSON *k = qv_evcli_meta_key(m);
        if (i == 0) meta0 = m, k0 = k;
        else {
            if (!cJSON_Compare(k0, k, 1)) st = qv_fail(QV_ERR_INPUT, "%s: not a shard of the same run as %s (meta differs)", in[i], in[0]);
            cJSON_Delete(k);
            cJSON_Delete(m);
        }
        qv_niah_cell *v = st == QV_OK ? realloc(all, sizeof *all * (size_t)(na + cn + 1)) : NULL;
        if (st == QV_OK && !v) st = qv_fail(QV_ERR_NOMEM, "merge: out of memory");
        if (v) all = v;
        for (int q = 0; st == QV_OK && q < cn; q++) {
            for (int r = 0; r < na; r++)
                if (all[r].cell == c[q].cell) st = qv_fail(QV_ERR_INPUT, "%s: cell %d appears in two shards", in[i], c[q].cell);
            all[na++] = c[q];
        }
        free(c);
    }
    if (st == QV_OK) {
        const cJSON *L = cJSON_GetObjectItem(meta0, "lengths"), *D = cJSON_GetObjectItem(meta0, "depths");
        int nl = cJSON_GetArraySize(L), nd = cJSON_GetArraySize(D);
        for (int r = 0; r < na && st == QV_OK; r++)
            if (all[r].cell < 0 || all[r].cell >= nl * nd) st = qv_fail(QV_ERR_INPUT, "merge: cell %d outside the grid", all[r].cell);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "schema", "qvet.niah");
        cJSON_AddNumberToObject(j, "schema_version", QV_NIAH_SCHEMA_VERSION);
        cJSON *m = cJSON_Duplicate(meta0, 1);
        qv_evcli_meta_unshard(m, cmd);
        cJSON_AddItemToObject(j, "meta", m);
        *complete = na == nl * nd;
        cJSON_AddBoolToObject(j, "complete", *complete);
        cJSON *ca = cJSON_AddArrayToObject(j, "cells");
        for (int k = 0; k < nl * nd; k++)
            for (int r = 0; r < na; r++)
                if (all[r].cell == k) cJSON_AddItemToArray(ca, qv_niah_cell_json(&all[r]));
        cJSON_AddItemToObject(j, "summary", qv_niah_summary_json(all, na, nl, nd));
        if (st == QV_OK) st = qv_json_write_atomic(out, j);
        if (st == QV_OK) qv_niah_print(j);
        cJSON_Delete(j);
    }
    cJSON_Delete(meta0);
    cJSON_Delete(k0);
    free(all);
    return st;
}

/* ppl: the union of the shards' chunks; the summary is recomputed from all of them in chunk
 * order (qvet/eval_ppl.h), so it equals one run's. run.seconds is the shards' total. */
static qv_status merge_ppl(int n, char **in, const char *out, char *cmd, int *complete)
{
    static const char *const skip[] = {"shard", "command", NULL};
    cJSON *meta0 = NULL;
    qv_ppl_set all = {0};
    double seconds = 0;
    qv_status st = QV_OK;
    for (int i = 0; i < n && st == QV_OK; i++) {
        cJSON *j = NULL, *m = NULL, *run = NULL;
        qv_ppl_set s;
        st = qv_json_read(in[i], &j);
        if (st == QV_OK) st = qv_ppl_from_json(j, in[i], &m, &s, &run);
        cJSON_Delete(j);
        if (st != QV_OK) break;
        const char *what = meta0 ? qv_json_first_diff(meta0, m, skip) : NULL;
        if (what) st = qv_fail(QV_ERR_INPUT, "%s: not a shard of the same run as %s (%s differs)", in[i], in[0], what);
        for (int k = 0; st == QV_OK && k < s.n; k++) {
            st = qv_ppl_set_add(&all, &s.v[k]);
            if (st != QV_OK) qv_fail_prefix(st, "%s", in[i]);
        }
        const cJSON *sec = cJSON_GetObjectItemCaseSensitive(run, "seconds");
        if (cJSON_IsNumber(sec)) seconds += sec->valuedouble;
        if (!meta0) meta0 = m;
        else cJSON_Delete(m);
        cJSON_Delete(run);
        qv_ppl_set_free(&s);
    }
    cJSON *res = NULL, *run = cJSON_CreateObject();
    if (st == QV_OK) {
        qv_evcli_meta_unshard(meta0, cmd);
        cJSON_AddNumberToObject(run, "seconds", seconds);
        st = qv_ppl_to_json(meta0, &all, run, &res);
    }
    if (st == QV_OK) {
        *complete = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "complete"));
        st = qv_json_write_atomic(out, res);
    }
    if (st == QV_OK && all.n > 0) st = qv_ppl_print(&all, meta0, seconds);
    cJSON_Delete(res);
    cJSON_Delete(run);
    cJSON_Delete(meta0);
    qv_ppl_set_free(&all);
    return st;
}

static qv_status merge_longbench(int n, char **in, const char *out, char *cmd, int *complete)
{
    cJSON *meta0 = NULL, *k0 = NULL;
    const char **names0 = NULL;
    int nt0 = 0, na = 0;
    qv_lb_result *all = NULL;
    qv_status st = QV_OK;
    for (int i = 0; i < n && st == QV_OK; i++) {
        cJSON *m;
        const char **names;
        int nt, cn;
        qv_lb_result *c;
        st = qv_lb_load(in[i], &m, &names, &nt, &c, &cn);
        if (st != QV_OK) break;
        cJSON *k = qv_evcli_meta_key(m);
        if (i == 0) meta0 = m, k0 = k, names0 = names, nt0 = nt;
        else {
            if (!cJSON_Compare(k0, k, 1)) st = qv_fail(QV_ERR_INPUT, "%s: not a shard of the same run as %s (meta differs)", in[i], in[0]);
            cJSON_Delete(k);
            cJSON_Delete(m);
            free(names);
        }
        qv_lb_result *v = st == QV_OK ? realloc(all, sizeof *all * (size_t)(na + cn + 1)) : NULL;
        if (st == QV_OK && !v) st = qv_fail(QV_ERR_NOMEM, "merge: out of memory");
        if (v) all = v;
        for (int q = 0; q < cn; q++) {
            for (int r = 0; r < na && st == QV_OK; r++)
                if (all[r].task == c[q].task && all[r].index == c[q].index)
                    st = qv_fail(QV_ERR_INPUT, "%s: task %s sample %d appears in two shards", in[i], names0[c[q].task], c[q].index);
            if (st == QV_OK) {
                all[na++] = c[q];
                memset(&c[q], 0, sizeof c[q]);
            }
            qv_lb_result_free(&c[q]);
        }
        free(c);
    }
    if (st == QV_OK) {
        cJSON *m = cJSON_Duplicate(meta0, 1);
        qv_evcli_meta_unshard(m, cmd);
        cJSON *j = NULL;
        st = qv_lb_doc(m, names0, nt0, all, na, 1, &j);
        if (st == QV_OK) {
            *complete = cJSON_IsTrue(cJSON_GetObjectItem(j, "complete"));
            st = qv_json_write_atomic(out, j);
        }
        if (st == QV_OK) qv_lb_print(j);
        cJSON_Delete(j);
        cJSON_Delete(m);
    }
    for (int r = 0; r < na; r++) qv_lb_result_free(&all[r]);
    free(all);
    free(names0);
    cJSON_Delete(meta0);
    cJSON_Delete(k0);
    return st;
}

int qv_cmd_merge(int argc, char **argv)
{
    if (qv_cli_wants_help(argc, argv)) {
        qv_cli_print_help(qv_find_command("merge"));
        return QV_EXIT_OK;
    }
    if (argc < 3) return qv_cli_usage_error("merge", "usage: qvet merge OUT.json SHARD.json...");
    for (int i = 1; i < argc; i++)
        if (argv[i][0] == '-') return qv_cli_usage_error("merge", "unknown flag: %s", argv[i]);
    cJSON *j = NULL;
    qv_status st = qv_json_read(argv[2], &j);
    if (st != QV_OK) return qv_cli_report(st);
    const cJSON *sc = cJSON_GetObjectItem(j, "schema");
    char schema[64];
    snprintf(schema, sizeof schema, "%s", cJSON_IsString(sc) ? sc->valuestring : "");
    cJSON_Delete(j);
    char *cmd = qv_evcli_cmdline(argc, argv);
    int complete = 0;
    if (!strcmp(schema, "qvet.compare")) st = merge_compare(argc - 2, argv + 2, argv[1], cmd, &complete);
    else if (!strcmp(schema, "qvet.niah")) st = merge_niah(argc - 2, argv + 2, argv[1], cmd, &complete);
    else if (!strcmp(schema, "qvet.ppl")) st = merge_ppl(argc - 2, argv + 2, argv[1], cmd, &complete);
    else if (!strcmp(schema, QV_LB_SCHEMA)) st = merge_longbench(argc - 2, argv + 2, argv[1], cmd, &complete);
    else st = qv_fail(QV_ERR_INPUT, "%s: schema \"%s\" is not one qvet merge joins (qvet.compare, qvet.niah, qvet.ppl, qvet.longbench)", argv[2], schema);
    free(cmd);
    if (st != QV_OK) return qv_cli_report(st);
    if (!complete) fprintf(stderr, "qvet merge: warning: some samples are still missing (\"complete\": false)\n");
    printf("wrote %s\n", argv[1]);
    return QV_EXIT_OK;
}
