/* qvet longbench --score PRED_DIR [--json F] [--e] [--english-only]
 *   scores prediction files in LongBench's own format (<task>.jsonl with pred, answers,
 *   all_classes, length) exactly as LongBench's eval.py does (docs/longbench.md);
 * qvet longbench [--model DIR] --ref E1 --cand E2 (--data DIR --longbench-config DIR | --synthetic CORPUS) ...
 *   runs LongBench's pred.py with both engines and scores both (tools/qvet/longbench_exec.c).
 * Exit 0 ok; 1 NaN/Inf from an engine; 2 usage or input error (missing directory or config,
 * malformed line, unknown or Chinese task); 3 internal. */
#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "engine_opts.h"
#include "eval_cmds.h"
#include "qvet/fileio.h"
#include "qvet/longbench.h"

#define SCHEMA "qvet.longbench.score/1"

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* the *.jsonl names in dir, sorted (eval.py takes os.listdir order; the scores do not depend on it) */
static qv_status list_jsonl(const char *dir, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return qv_fail(QV_ERR_IO, "%s: cannot open prediction directory: %s", dir, strerror(errno));
    size_t cap = 0, cnt = 0;
    char **v = NULL;
    qv_status st = QV_OK;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 5, "jsonl") != 0) continue; /* eval.py: endswith("jsonl") */
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 32;
            char **p = realloc(v, nc * sizeof *p);
            if (!p) { st = qv_fail(QV_ERR_NOMEM, "out of memory"); break; }
            v = p;
            cap = nc;
        }
        if (!(v[cnt] = strdup(e->d_name))) { st = qv_fail(QV_ERR_NOMEM, "out of memory"); break; }
        cnt++;
    }
    closedir(d);
    if (st != QV_OK) {
        for (size_t i = 0; i < cnt; i++) free(v[i]);
        free(v);
        return st;
    }
    if (cnt) qsort(v, cnt, sizeof *v, name_cmp);
    *names = v;
    *n = cnt;
    return QV_OK;
}

static cJSON *num_or_null(double x)
{
    return isnan(x) ? cJSON_CreateNull() : cJSON_CreateNumber(x);
}

static void fmt_score(char *buf, size_t n, double x)
{
    if (isnan(x)) snprintf(buf, n, "nan");
    else snprintf(buf, n, "%.2f", x);
}

static int score_dir(const char *dir, const char *json_path, int e, int english_only)
{
    char **names;
    size_t nfiles;
    qv_status st = list_jsonl(dir, &names, &nfiles);
    if (st != QV_OK) return qv_cli_report(st);
    if (nfiles == 0) {
        free(names);
        qv_fail(QV_ERR_INPUT, "%s: no *.jsonl prediction files", dir);
        return qv_cli_report(QV_ERR_INPUT);
    }
    cJSON *root = cJSON_CreateObject(), *tasks = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "schema", SCHEMA);
    cJSON_AddStringToObject(root, "mode", e ? "longbench-e" : "longbench");
    cJSON_AddStringToObject(root, "pred_dir", dir);
    cJSON_AddItemToObject(root, "tasks", tasks);
    cJSON *skipped = cJSON_AddArrayToObject(root, "skipped");
    if (e) printf("%-22s %-15s %5s %8s %8s %8s\n", "task", "metric", "n", "0-4k", "4-8k", "8k+");
    else printf("%-22s %-15s %5s %8s\n", "task", "metric", "n", "score");
    int rc = QV_EXIT_OK;
    for (size_t f = 0; f < nfiles; f++) {
        char task[64];
        size_t dot = strcspn(names[f], "."); /* eval.py: filename.split('.')[0] */
        snprintf(task, sizeof task, "%.*s", (int)(dot < 63 ? dot : 63), names[f]);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[f]);
        const qv_lb_task *t = qv_lb_task_find(task);
        if (t && t->metric == QV_LB_CHINESE && english_only) {
            fprintf(stderr, "qvet longbench: skipping %s: Chinese task '%s' (needs jieba; not scored)\n", path, task);
            cJSON_AddItemToArray(skipped, cJSON_CreateString(task));
            continue;
        }
        qv_lb_task_score s;
        st = qv_lb_score_file(path, task, e, &s);
        if (st != QV_OK) {
            rc = qv_cli_report(st);
            break;
        }
        cJSON *o = cJSON_AddObjectToObject(tasks, task);
        cJSON_AddStringToObject(o, "metric", qv_lb_metric_name(t->metric));
        cJSON_AddNumberToObject(o, "n", (double)s.n);
        if (e) {
            char b[3][32];
            cJSON *bk = cJSON_AddObjectToObject(o, "buckets");
            for (int k = 0; k < QV_LB_NBUCKETS; k++) {
                fmt_score(b[k], sizeof b[k], s.bucket[k]);
                cJSON *bo = cJSON_AddObjectToObject(bk, qv_lb_bucket_names[k]);
                cJSON_AddNumberToObject(bo, "n", (double)s.bucket_n[k]);
                cJSON_AddItemToObject(bo, "score", num_or_null(s.bucket[k]));
            }
            printf("%-22s %-15s %5zu %8s %8s %8s\n", task, qv_lb_metric_name(t->metric), s.n, b[0], b[1], b[2]);
        } else {
            cJSON_AddNumberToObject(o, "score", s.score);
            printf("%-22s %-15s %5zu %8.2f\n", task, qv_lb_metric_name(t->metric), s.n, s.score);
        }
        qv_lb_task_score_free(&s);
    }
    if (rc == QV_EXIT_OK && json_path) {
        char *txt = cJSON_Print(root);
        if (!txt) {
            qv_fail(QV_ERR_NOMEM, "out of memory writing %s", json_path);
            rc = qv_cli_report(QV_ERR_NOMEM);
        } else {
            size_t l = strlen(txt);
            txt[l] = '\n'; /* cJSON_Print's buffer has room for the terminator we overwrite */
            st = qv_write_file_atomic(json_path, txt, l + 1);
            free(txt);
            if (st != QV_OK) rc = qv_cli_report(st);
        }
    }
    cJSON_Delete(root);
    for (size_t f = 0; f < nfiles; f++) free(names[f]);
    free(names);
    return rc;
}

static int score_mode(int argc, char **argv)
{
    const char *score = NULL, *json = NULL;
    int e = 0, english_only = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--e")) e = 1;
        else if (!strcmp(a, "--english-only")) english_only = 1;
        else if (!strcmp(a, "--score") || !strcmp(a, "--json")) {
            if (i + 1 >= argc) return qv_cli_usage_error("longbench", "%s needs a value", a);
            const char **dst = !strcmp(a, "--score") ? &score : &json;
            if (*dst) return qv_cli_usage_error("longbench", "%s given twice", a);
            *dst = argv[++i];
        } else {
            return qv_cli_usage_error("longbench", "'%s' does not go with --score (--score PRED_DIR [--json F] [--e] "
                                      "[--english-only])", a);
        }
    }
    struct stat sb;
    if (stat(score, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        qv_fail(QV_ERR_IO, "%s: prediction directory not found", score);
        return qv_cli_report(QV_ERR_IO);
    }
    return score_dir(score, json, e, english_only);
}

/* the engine-driven mode's options beyond the pair and the engine options */
static int lb_flag(int argc, char **argv, int *i, qv_lb_args *a)
{
    const char *f = argv[*i];
    if (!strcmp(f, "--e")) return a->e = 1, 1;
    if (!strcmp(f, "--english-only")) return a->english_only = 1, 1;
    if (!strcmp(f, "--resume")) return a->resume = 1, 1;
    static const char *const val[] = {"--data", "--longbench-config", "--synthetic", "--tasks", "--json", "--pred-dir",
                                      "--write-data", "--chat", "--samples", "--words", "--max-length", "--seed",
                                      "--shard", NULL};
    int k = 0;
    while (val[k] && strcmp(f, val[k])) k++;
    if (!val[k]) return 0;
    if (*i + 1 >= argc) {
        qv_cli_usage_error("longbench", "%s needs a value", f);
        return -1;
    }
    const char *v = argv[++*i];
    long long x;
    const char **str[] = {&a->data, &a->config, &a->synthetic, &a->tasks, &a->json, &a->pred_dir, &a->write_data, &a->chat};
    if (k < 8) {
        if (*str[k]) {
            qv_cli_usage_error("longbench", "%s given twice", f);
            return -1;
        }
        *str[k] = v;
    } else if (k == 8 || k == 9 || k == 10) {
        if (qv_evcli_int_arg("longbench", f, v, k == 10 ? 2 : 1, &x) || x > 100000000) return -1;
        if (k == 8) a->samples = (int)x;
        else if (k == 9) a->words = (int)x;
        else a->max_length = x;
    } else if (k == 11) {
        if (qv_evcli_int_arg("longbench", f, v, 0, &x)) return -1;
        a->seed = (unsigned long long)x;
    } else if (qv_evcli_parse_shard(v, &a->shard_i, &a->shard_n)) {
        qv_cli_usage_error("longbench", "--shard: '%s' is not i/n with 0 <= i < n", v);
        return -1;
    }
    return 1;
}

int qv_cmd_longbench(int argc, char **argv)
{
    if (qv_cli_wants_help(argc, argv)) {
        qv_cli_print_help(qv_find_command("longbench"));
        return QV_EXIT_OK;
    }
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--score")) return score_mode(argc, argv);
    qv_engine_opts eo;
    qv_engine_opts_init(&eo);
    qv_lb_args a = {.pair = {.ref = "ref-fp32", .cand = "ref-qoq", .cand_round_bits = -1}, .shard_n = 1, .seed = 1234};
    int rc = QV_EXIT_OK, have_eo = 0;
    for (int i = 1; i < argc && rc == QV_EXIT_OK; i++) {
        int r = qv_evcli_common_flag("longbench", argc, argv, &i, &a.pair);
        if (!r && (r = qv_cli_engine_opt("longbench", argc, argv, &i, &eo)) > 0) have_eo = 1;
        if (!r) r = lb_flag(argc, argv, &i, &a);
        if (r < 0) rc = QV_EXIT_USAGE;
        else if (!r) rc = qv_cli_usage_error("longbench", "unknown flag: %s", argv[i]);
    }
    if (rc != QV_EXIT_OK) return rc;
    /* the engine options go to the pair's *-qoq engine (eval_cli.c), which has no --dtype */
    if (qv_cli_engine_dtype_check("longbench", "the pair's *-qoq engine (longbench's engine options go there)", &eo))
        return QV_EXIT_USAGE;
    if (have_eo) a.pair.qoq_opts = &eo;
    if (!a.data == !a.synthetic)
        return qv_cli_usage_error("longbench", "give either --data DIR --longbench-config DIR (LongBench's files) or "
                                  "--synthetic CORPUS (qvet's offline tasks), or --score PRED_DIR");
    if (a.data && !a.config)
        return qv_cli_usage_error("longbench", "--data needs --longbench-config DIR (the folder with LongBench's "
                                  "dataset2prompt.json and dataset2maxlen.json; qvet ships none of LongBench's text)");
    if (a.synthetic && (a.config || a.e))
        return qv_cli_usage_error("longbench", "--longbench-config and --e go with --data, not --synthetic");
    if (a.data && (a.words || a.write_data))
        return qv_cli_usage_error("longbench", "--words and --write-data go with --synthetic");
    if (a.resume && !a.json) return qv_cli_usage_error("longbench", "--resume needs --json FILE");
    qv_evcli_pair p = {0};
    cJSON *res = NULL;
    a.cmd = qv_evcli_cmdline(argc, argv);
    qv_status st = qv_evcli_pair_open(&a.pair, &p);
    if (st == QV_OK) st = qv_lb_exec(&a, &p, &res);
    if (st == QV_OK) {
        qv_lb_print(res);
        if (a.json) printf("wrote %s\n", a.json);
        if (a.pred_dir) printf("wrote %s/ref/*.jsonl and %s/cand/*.jsonl (score with: qvet longbench --score DIR)\n", a.pred_dir, a.pred_dir);
    }
    rc = st == QV_OK ? QV_EXIT_OK : qv_cli_report(st);
    cJSON_Delete(res);
    qv_evcli_pair_close(&p);
    free(a.cmd);
    return rc;
}
