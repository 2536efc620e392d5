/* qvet validate: go/no-go for a candidate (usually a calibration run by ref-qoq / gpu-qoq):
 * compare + niah (EVALS.md default budget) + LongBench when asked (--longbench DIR
 * --longbench-config DIR, or qvet's synthetic tasks with --longbench-synthetic CORPUS),
 * thresholds from a versioned JSON file, a table on stdout, DIR/report.json and DIR/report.html
 * (+ compare.json, niah.json, longbench.json, longbench-pred/). Exit 0 go, 1 no-go, 2 usage/input
 * (incl. an engine not available yet), 3 internal. */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "eval_cmds.h"
#include "qvet/eval_report.h"
#include "qvet/fileio.h"

static double jnum(const cJSON *j, const char *a, const char *b)
{
    const cJSON *v = cJSON_GetObjectItem(j, a);
    if (b) v = cJSON_GetObjectItem(v, b);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* a row of the go/no-go table: threshold entry t (skipped when absent: a thresholds file may
 * leave a figure out) applied to value */
static void add_row(cJSON *rows, const cJSON *t, const char *name, const char *figure, double value, const char *cmd,
                    int *nogo)
{
    if (!t) return;
    const cJSON *mx = cJSON_GetObjectItem(t, "max"), *mn = cJSON_GetObjectItem(t, "min");
    double lim = cJSON_IsNumber(mx) ? mx->valuedouble : mn->valuedouble;
    /* NaN (e.g. a CI from one chunk) never passes */
    int pass = cJSON_IsNumber(mx) ? value <= lim : value >= lim;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "name", name);
    cJSON_AddStringToObject(r, "figure", figure);
    if (isfinite(value)) cJSON_AddNumberToObject(r, "value", value);
    else cJSON_AddNullToObject(r, "value");
    cJSON_AddStringToObject(r, "op", cJSON_IsNumber(mx) ? "<=" : ">=");
    cJSON_AddNumberToObject(r, "threshold", lim);
    cJSON_AddBoolToObject(r, "pass", pass);
    const cJSON *why = cJSON_GetObjectItem(t, "why");
    if (cJSON_IsString(why)) cJSON_AddStringToObject(r, "why", why->valuestring);
    cJSON_AddStringToObject(r, "command", cmd);
    cJSON_AddItemToArray(rows, r);
    if (!pass) *nogo = 1;
}

static void add_check(cJSON *rows, const cJSON *th, const char *name, const char *figure, double value,
                      const char *cmd, int *nogo)
{
    add_row(rows, cJSON_GetObjectItem(th, name), name, figure, value, cmd, nogo);
}

/* one row per LongBench task: "longbench_delta.<task>" when the file has it, else the default
 * "longbench_delta" */
static void add_longbench_checks(cJSON *rows, const cJSON *th, const cJSON *summary, const char *cmd, int *nogo)
{
    const cJSON *tasks = cJSON_GetObjectItem(summary, "tasks");
    for (const cJSON *t = tasks ? tasks->child : NULL; t; t = t->next) {
        char name[128], figure[256];
        snprintf(name, sizeof name, "longbench_delta.%s", t->string);
        const cJSON *e = cJSON_GetObjectItem(th, name);
        if (!e) e = cJSON_GetObjectItem(th, "longbench_delta");
        snprintf(figure, sizeof figure, "LongBench %s (%s, n=%d): score C - R (points)", t->string,
                 cJSON_GetObjectItem(t, "metric")->valuestring, cJSON_GetObjectItem(t, "n")->valueint);
        add_row(rows, e, name, figure, jnum(t, "delta", NULL), cmd, nogo);
    }
}

/* "qvet compare ..." / "qvet niah ..." with the options that reproduce the figure */
static char *sub_cmd(const char *eval, const qv_evcli_pair_opts *p, const char *extra)
{
    char b[4096];
    int n = snprintf(b, sizeof b, "qvet %s", eval);
    if (p->model_dir) n += snprintf(b + n, sizeof b - (size_t)n, " --model %s", p->model_dir);
    if (p->cand_model_dir) n += snprintf(b + n, sizeof b - (size_t)n, " --cand-model %s", p->cand_model_dir);
    n += snprintf(b + n, sizeof b - (size_t)n, " --ref %s --cand %s", p->ref, p->cand);
    if (p->quantized) n += snprintf(b + n, sizeof b - (size_t)n, " --quantized %s", p->quantized);
    if (p->cand_round_bits >= 0) n += snprintf(b + n, sizeof b - (size_t)n, " --cand-round-bits %d", p->cand_round_bits);
    snprintf(b + n, sizeof b - (size_t)n, " %s", extra);
    return strdup(b);
}

int qv_cmd_validate(int argc, char **argv)
{
    if (qv_cli_wants_help(argc, argv)) {
        qv_cli_print_help(qv_find_command("validate"));
        return QV_EXIT_OK;
    }
    qv_compare_args ca = {.pair = {.ref = "ref-fp32", .cand = "ref-qoq", .cand_round_bits = -1}, .bos = 1, .shard_n = 1, .quiet = 1};
    qv_niah_args na = {.shard_n = 1, .seed = 1234, .quiet = 1};
    const char *report = NULL, *thr_path = NULL, *lb = NULL, *lbc = NULL, *lbs = NULL, *lbt = NULL;
    long long lb_samples = 0;
    int rc = QV_EXIT_OK, print_thr = 0;
    for (int i = 1; i < argc && rc == QV_EXIT_OK; i++) {
        int r = qv_evcli_common_flag("validate", argc, argv, &i, &ca.pair);
        if (!r) r = qv_evcli_niah_flag("validate", argc, argv, &i, &na);
        if (r < 0) rc = QV_EXIT_USAGE;
        if (r) continue;
        const char *f = argv[i];
        long long x;
        if (!strcmp(f, "--print-thresholds")) print_thr = 1;
        else if (!strcmp(f, "--no-bos")) ca.bos = 0;
        else if (i + 1 >= argc) rc = qv_cli_usage_error("validate", "unknown flag or missing value: %s", f);
        else if (!strcmp(f, "--text")) ca.text = argv[++i];
        else if (!strcmp(f, "--report")) report = argv[++i];
        else if (!strcmp(f, "--thresholds")) thr_path = argv[++i];
        else if (!strcmp(f, "--longbench")) lb = argv[++i];
        else if (!strcmp(f, "--longbench-config")) lbc = argv[++i];
        else if (!strcmp(f, "--longbench-synthetic")) lbs = argv[++i];
        else if (!strcmp(f, "--longbench-tasks")) lbt = argv[++i];
        else if (!strcmp(f, "--longbench-samples")) {
            if (qv_evcli_int_arg("validate", f, argv[++i], 1, &lb_samples)) rc = QV_EXIT_USAGE;
        }
        else if (!strcmp(f, "--ctx")) {
            if (qv_evcli_int_arg("validate", f, argv[++i], 2, &x)) rc = QV_EXIT_USAGE;
            ca.ctx = (int)x;
        } else if (!strcmp(f, "--max-tokens")) {
            if (qv_evcli_int_arg("validate", f, argv[++i], 2, &x)) rc = QV_EXIT_USAGE;
            ca.max_tokens = x;
        } else rc = qv_cli_usage_error("validate", "unknown flag: %s", f);
    }
    if (rc != QV_EXIT_OK) goto out0;
    if (print_thr) {
        fputs(qv_thresholds_default_json, stdout);
        goto out0;
    }
    if (!report) {
        rc = qv_cli_usage_error("validate", "--report DIR is required");
        goto out0;
    }
    if (ca.text == NULL && ca.pair.model_dir) {
        rc = qv_cli_usage_error("validate", "--text FILE is required with --model (a built-in text is only for the built-in synthetic model)");
        goto out0;
    }
    if (!lb != !lbc) {
        rc = qv_cli_usage_error("validate", "--longbench DIR and --longbench-config DIR go together (LongBench's data "
                                "and the folder with its dataset2prompt.json / dataset2maxlen.json)");
        goto out0;
    }
    if (lb && lbs) {
        rc = qv_cli_usage_error("validate", "--longbench and --longbench-synthetic exclude each other");
        goto out0;
    }
    if ((lb_samples || lbt) && !lb && !lbs) {
        rc = qv_cli_usage_error("validate", "--longbench-samples / --longbench-tasks need --longbench or --longbench-synthetic");
        goto out0;
    }
    if (lb || lbs) { /* bad LongBench inputs fail now, not after compare and niah have run */
        qv_lb_config *lc = NULL;
        qv_status ls = QV_OK;
        if (lb && !qv_is_dir(lb)) ls = qv_fail(QV_ERR_IO, "%s: LongBench data directory not found", lb);
        else if (lb) ls = qv_lb_config_load(lbc, &lc);
        else if (!qv_path_exists(lbs)) ls = qv_fail(QV_ERR_IO, "%s: corpus for the synthetic LongBench tasks not found", lbs);
        qv_lb_config_free(lc);
        if (ls != QV_OK) {
            rc = qv_cli_report(ls);
            goto out0;
        }
    }
    char *thr_text = NULL;
    size_t tl;
    cJSON *thr = NULL;
    qv_status st = thr_path ? qv_read_file(thr_path, 1 << 20, &thr_text, &tl) : QV_OK;
    if (st == QV_OK) st = qv_thresholds_load(thr_text, thr_path, &thr);
    free(thr_text);
    if (st == QV_OK && mkdir(report, 0777) != 0 && !qv_is_dir(report)) st = qv_fail(QV_ERR_IO, "%s: cannot create the report folder", report);
    if (st != QV_OK) {
        rc = qv_cli_report(st);
        goto out0;
    }
    double t0 = qv_evcli_now();
    qv_evcli_pair p;
    na.pair = ca.pair;
    st = qv_evcli_pair_open(&ca.pair, &p);
    int maxp = st == QV_OK ? p.mr->cfg.max_position_embeddings : 0;
    if (st == QV_OK) {
        if (maxp > p.mc->cfg.max_position_embeddings) maxp = p.mc->cfg.max_position_embeddings;
        if (ca.ctx == 0) ca.ctx = maxp < 2048 ? maxp : 2048;
        if (ca.max_tokens == 0) { /* EVALS.md budget: 32k scored tokens */
            long long ch = (32768 + ca.ctx - 2) / (ca.ctx - 1);
            ca.max_tokens = (ch < 2 ? 2 : ch) * ca.ctx;
        }
        qv_evcli_niah_defaults(&na, maxp);
        if (!na.lengths || !na.depths) st = QV_ERR_NOMEM;
    }
    char *cpath = qv_path_join(report, "compare.json"), *npath = qv_path_join(report, "niah.json");
    char *lpath = qv_path_join(report, "longbench.json"), *lpred = qv_path_join(report, "longbench-pred");
    qv_lb_args la = {.pair = ca.pair, .data = lb, .config = lbc, .synthetic = lbs, .tasks = lbt, .json = lpath,
                     .pred_dir = lpred, .samples = (int)lb_samples, .shard_n = 1, .seed = na.seed, .quiet = 1};
    cJSON *lres = NULL;
    double tlb = 0;
    ca.json = cpath;
    na.json = npath;
    cJSON *cres = NULL, *nres = NULL;
    qv_cmp_summary sum;
    double tc = 0, tn = 0;
    /* stage names on a TTY only, beside the bars: in CI stderr stays empty (CLI.md) */
    const int tty = isatty(fileno(stderr));
    if (st == QV_OK) {
        if (tty) fprintf(stderr, "qvet validate: compare (%lld tokens, ctx %d)...\n", ca.max_tokens, ca.ctx);
        st = qv_compare_exec(&ca, &p, &cres, &sum);
        tc = qv_evcli_now() - t0;
    }
    if (st == QV_OK) {
        if (tty) fprintf(stderr, "qvet validate: niah (%d x %d cells)...\n", na.n_lengths, na.n_depths);
        st = qv_niah_exec(&na, &p, &nres);
        tn = qv_evcli_now() - t0 - tc;
    }
    if (st == QV_OK && (lb || lbs)) {
        if (tty) fprintf(stderr, "qvet validate: longbench (%s)...\n", lb ? lb : lbs);
        st = qv_lb_exec(&la, &p, &lres);
        tlb = qv_evcli_now() - t0 - tc - tn;
    }
    int nogo = 0;
    cJSON *rep = NULL;
    if (st == QV_OK) {
        char extra[2048], ls[512] = "", ds[512] = "";
        for (int i = 0; i < na.n_lengths; i++) snprintf(ls + strlen(ls), sizeof ls - strlen(ls), "%s%d", i ? "," : "", na.lengths[i]);
        for (int i = 0; i < na.n_depths; i++) snprintf(ds + strlen(ds), sizeof ds - strlen(ds), "%s%g", i ? "," : "", na.depths[i]);
        snprintf(extra, sizeof extra, "%s%s%s--ctx %d --max-tokens %lld%s --json compare.json",
                 ca.text ? "--text " : "", ca.text ? ca.text : "", ca.text ? " " : "", ca.ctx, ca.max_tokens, ca.bos ? "" : " --no-bos");
        char *c1 = sub_cmd("compare", &ca.pair, extra);
        const cJSON *nm = cJSON_GetObjectItem(nres, "meta");
        snprintf(extra, sizeof extra, "--haystack %s --lengths %s --depths %s --seed %llu%s --json niah.json",
                 cJSON_GetObjectItem(nm, "haystack")->valuestring, ls, ds, na.seed, na.passkey ? " --passkey" : "");
        char *c2 = sub_cmd("niah", &ca.pair, extra);
        const cJSON *th = cJSON_GetObjectItem(thr, "thresholds"), *ns = cJSON_GetObjectItem(nres, "summary");
        rep = cJSON_CreateObject();
        cJSON_AddStringToObject(rep, "schema", "qvet.validate");
        cJSON_AddNumberToObject(rep, "schema_version", 1);
        cJSON *m = cJSON_AddObjectToObject(rep, "meta");
        cJSON_AddStringToObject(m, "model", p.mr->dir);
        cJSON_AddStringToObject(m, "ref", ca.pair.ref);
        cJSON_AddStringToObject(m, "cand", ca.pair.cand);
        if (p.mc != p.mr) cJSON_AddStringToObject(m, "cand_model", p.mc->dir);
        if (ca.pair.quantized) cJSON_AddStringToObject(m, "quantized", ca.pair.quantized);
        cJSON_AddStringToObject(m, "text", ca.text ? ca.text : "<built-in text>");
        cJSON_AddStringToObject(m, "haystack", cJSON_GetObjectItem(nm, "haystack")->valuestring);
        char tdesc[1024];
        snprintf(tdesc, sizeof tdesc, "%s (%s)", thr_path ? thr_path : "<default>", cJSON_GetObjectItem(thr, "name") ? cJSON_GetObjectItem(thr, "name")->valuestring : "");
        cJSON_AddStringToObject(m, "thresholds", tdesc);
        char *cl = qv_evcli_cmdline(argc, argv);
        cJSON_AddStringToObject(m, "command", cl ? cl : "");
        free(cl);
        cJSON *rows = cJSON_AddArrayToObject(rep, "checks");
        add_check(rows, th, "ln_ppl_ratio_hi", "ln(ppl_C/ppl_R), upper 95% bound", sum.ln_ratio_hi, c1, &nogo);
        add_check(rows, th, "kld_mean", "KLD mean (nats)", sum.kld_mean, c1, &nogo);
        add_check(rows, th, "kld_p99", "KLD p99 (nats)", sum.kld_p99, c1, &nogo);
        add_check(rows, th, "top1_lo", "top-1 agreement, lower 95% bound", sum.top1_lo, c1, &nogo);
        add_check(rows, th, "needle_lp_delta_mean", "needle: mean log p(answer), C - R", jnum(ns, "lp_delta_mean", NULL), c2, &nogo);
        add_check(rows, th, "needle_hit_delta", "needle: exact retrieval rate, C - R", jnum(ns, "hit_rate_delta", NULL), c2, &nogo);
        char *c3 = NULL;
        if (lres) {
            const cJSON *lm = cJSON_GetObjectItem(lres, "meta");
            char samp[64] = "", tsk[600] = "";
            if (lb_samples) snprintf(samp, sizeof samp, " --samples %lld", lb_samples);
            if (lbt) snprintf(tsk, sizeof tsk, " --tasks %s", lbt);
            if (lb) snprintf(extra, sizeof extra, "--data %s --longbench-config %s%s%s --max-length %.0f --json longbench.json --pred-dir longbench-pred",
                             lb, lbc, samp, tsk, jnum(lm, "max_length", NULL));
            else snprintf(extra, sizeof extra, "--synthetic %s%s%s --seed %llu --json longbench.json --pred-dir longbench-pred",
                          lbs, samp, tsk, na.seed);
            c3 = sub_cmd("longbench", &ca.pair, extra);
            add_longbench_checks(rows, th, cJSON_GetObjectItem(lres, "summary"), c3, &nogo);
        }
        cJSON_AddStringToObject(rep, "verdict", nogo ? "no-go" : "go");
        cJSON_AddItemToObject(rep, "compare", cJSON_Duplicate(cJSON_GetObjectItem(cres, "summary"), 1));
        cJSON *nn = cJSON_AddObjectToObject(rep, "niah");
        cJSON_AddItemToObject(nn, "meta", cJSON_Duplicate(nm, 1));
        cJSON_AddItemToObject(nn, "summary", cJSON_Duplicate(ns, 1));
        if (lres) {
            cJSON *lo = cJSON_AddObjectToObject(rep, "longbench");
            cJSON_AddItemToObject(lo, "meta", cJSON_Duplicate(cJSON_GetObjectItem(lres, "meta"), 1));
            cJSON_AddItemToObject(lo, "summary", cJSON_Duplicate(cJSON_GetObjectItem(lres, "summary"), 1));
            cJSON_AddStringToObject(lo, "command", c3);
        }
        cJSON *tm = cJSON_AddObjectToObject(rep, "timing_s");
        cJSON_AddNumberToObject(tm, "compare", tc);
        cJSON_AddNumberToObject(tm, "niah", tn);
        if (lres) cJSON_AddNumberToObject(tm, "longbench", tlb);
        cJSON_AddNumberToObject(m, "elapsed_s", qv_evcli_now() - t0);
        free(c1), free(c2), free(c3);
        char *rj = qv_path_join(report, "report.json"), *rh = qv_path_join(report, "report.html");
        st = qv_json_write_atomic(rj, rep);
        if (st == QV_OK) st = qv_report_html(rep, rh);
        if (st == QV_OK) {
            qv_compare_print(&sum, p.mr->tok);
            qv_niah_print(nres);
            if (lres) qv_lb_print(lres);
            printf("\n%-40s %12s %4s %10s  %s\n", "figure", "value", "", "threshold", "result");
            for (const cJSON *r = rows->child; r; r = r->next) {
                const cJSON *v = cJSON_GetObjectItem(r, "value");
                printf("%-40s %12.5g %4s %10.4g  %s\n", cJSON_GetObjectItem(r, "figure")->valuestring,
                       cJSON_IsNumber(v) ? v->valuedouble : NAN, cJSON_GetObjectItem(r, "op")->valuestring,
                       cJSON_GetObjectItem(r, "threshold")->valuedouble, cJSON_IsTrue(cJSON_GetObjectItem(r, "pass")) ? "pass" : "FAIL");
                printf("    reproduce: %s\n", cJSON_GetObjectItem(r, "command")->valuestring);
            }
            printf("verdict: %s  (%.1f s: compare %.1f s, niah %.1f s, longbench %.1f s)\nwrote %s, %s\n", nogo ? "NO-GO" : "GO",
                   qv_evcli_now() - t0, tc, tn, tlb, rj, rh);
        }
        free(rj), free(rh);
    }
    rc = st != QV_OK ? qv_cli_report(st) : nogo ? QV_EXIT_FAIL : QV_EXIT_OK;
    cJSON_Delete(rep), cJSON_Delete(cres), cJSON_Delete(nres), cJSON_Delete(lres), cJSON_Delete(thr);
    free(cpath), free(npath), free(lpath), free(lpred);
    qv_evcli_pair_close(&p);
out0:
    free(na.lengths), free(na.depths);
    return rc;
}
