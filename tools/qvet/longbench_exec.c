/* qvet longbench with engines: the tasks (LongBench data + the user's config, or qvet's synthetic
 * tasks from a corpus), resume, the run through evals/longbench_run.c, the JSON result
 * (schema qvet.longbench, version 1), LongBench-format prediction files, the printed table. */
#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "eval_cmds.h"
#include "qvet/fileio.h"
#include "qvet/golden.h"

/* ---- tasks ---- */

typedef struct {
    qv_lb_task_data *td;
    int n;
    char **names;          /* owned */
    char **tmpls;          /* owned copies */
    size_t *n_file;        /* samples in the file / built, before --samples */
    char (*sha)[65];       /* sha256 of the task's data file (data) or of its template (synthetic) */
    cJSON **skipped;       /* Chinese tasks skipped by --english-only */
} lb_tasks;

static void tasks_free(lb_tasks *T)
{
    for (int t = 0; t < T->n; t++) {
        qv_lb_jsonl_free(T->td[t].items, T->n_file ? T->n_file[t] : 0);
        free(T->names[t]);
        free(T->tmpls[t]);
    }
    free(T->td), free(T->names), free(T->tmpls), free(T->n_file), free(T->sha);
    memset(T, 0, sizeof *T);
}

static qv_status tasks_push(lb_tasks *T, const char *name)
{
    int n = T->n + 1;
    qv_lb_task_data *td = realloc(T->td, sizeof *td * (size_t)n);
    if (td) T->td = td;
    char **nm = realloc(T->names, sizeof *nm * (size_t)n), **tp = realloc(T->tmpls, sizeof *tp * (size_t)n);
    if (nm) T->names = nm;
    if (tp) T->tmpls = tp;
    size_t *nf = realloc(T->n_file, sizeof *nf * (size_t)n);
    if (nf) T->n_file = nf;
    char(*sh)[65] = realloc(T->sha, sizeof *sh * (size_t)n);
    if (sh) T->sha = sh;
    if (!td || !nm || !tp || !nf || !sh) return qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
    memset(&T->td[T->n], 0, sizeof T->td[0]);
    T->names[T->n] = strdup(name);
    T->tmpls[T->n] = NULL;
    T->n_file[T->n] = 0;
    T->sha[T->n][0] = 0;
    T->td[T->n].name = T->names[T->n];
    T->n++;
    return T->names[T->n - 1] ? QV_OK : qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* --tasks a,b or, from DIR, every <task>.jsonl (<task>_e.jsonl with --e), sorted */
static qv_status task_names(const qv_lb_args *a, char ***out, int *n)
{
    *out = NULL;
    *n = 0;
    int cap = 64, k = 0;
    char **v = calloc((size_t)cap, sizeof *v);
    if (!v) return qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
    qv_status st = QV_OK;
    if (a->tasks) {
        const char *p = a->tasks;
        while (*p && st == QV_OK) {
            size_t l = strcspn(p, ",");
            if (l == 0 || l > 63) st = qv_fail(QV_ERR_USAGE, "--tasks: '%s' is not a comma-separated list of task names", a->tasks);
            else if (k == cap) st = qv_fail(QV_ERR_USAGE, "--tasks: more than %d tasks", cap);
            else if (!(v[k++] = strndup(p, l))) st = qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
            p += l + (p[l] == ',');
        }
    } else if (a->synthetic) {
        for (int t = 0; t < QV_LB_SYN_NTASKS && st == QV_OK; t++)
            if (!(v[k++] = strdup(qv_lb_syn_tasks[t]))) st = qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
    } else {
        DIR *d = opendir(a->data);
        if (!d) st = qv_fail(QV_ERR_IO, "%s: cannot open the LongBench data directory: %s", a->data, strerror(errno));
        for (struct dirent *e; st == QV_OK && (e = readdir(d)) != NULL;) {
            size_t l = strlen(e->d_name);
            const char *suf = a->e ? "_e.jsonl" : ".jsonl";
            size_t sl = strlen(suf);
            if (l <= sl || strcmp(e->d_name + l - sl, suf)) continue;
            if (!a->e && l > 8 && !strcmp(e->d_name + l - 8, "_e.jsonl")) continue; /* LongBench-E files */
            if (k == cap) st = qv_fail(QV_ERR_INPUT, "%s: more than %d task files", a->data, cap);
            else if (!(v[k++] = strndup(e->d_name, l - sl))) st = qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
        }
        if (d) closedir(d);
        if (st == QV_OK && k == 0)
            st = qv_fail(QV_ERR_INPUT, "%s: no %s files (LongBench's data: one <task>%s per task)", a->data,
                         a->e ? "*_e.jsonl" : "*.jsonl", a->e ? "_e.jsonl" : ".jsonl");
        if (st == QV_OK) qsort(v, (size_t)k, sizeof *v, cmp_name);
    }
    for (int i = 0; i < k && st == QV_OK; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(v[i], v[j])) st = qv_fail(QV_ERR_USAGE, "--tasks: '%s' given twice", v[i]);
    if (st != QV_OK) {
        for (int i = 0; i < k; i++) free(v[i]);
        free(v);
        return st;
    }
    *out = v;
    *n = k;
    return QV_OK;
}

static qv_status load_tasks(const qv_lb_args *a, lb_tasks *T, cJSON *skipped)
{
    memset(T, 0, sizeof *T);
    char **names = NULL;
    int nn = 0;
    QV_TRY(task_names(a, &names, &nn));
    qv_lb_config *cfg = NULL;
    char *corpus = NULL;
    size_t clen = 0;
    qv_status st = QV_OK;
    if (a->synthetic) st = qv_read_file(a->synthetic, (size_t)1 << 31, &corpus, &clen);
    else st = qv_lb_config_load(a->config, &cfg);
    for (int i = 0; i < nn && st == QV_OK; i++) {
        const char *name = names[i];
        const qv_lb_task *t = qv_lb_task_find(name);
        if (a->synthetic && !qv_lb_syn_is(name)) {
            st = qv_fail(QV_ERR_USAGE, "--tasks: '%s' is not one of qvet's synthetic tasks (qvet_passage_retrieval, "
                         "qvet_passage_count, qvet_kv_retrieval)", name);
            break;
        }
        if (!t) {
            st = qv_fail(QV_ERR_INPUT, "%s%s'%s' is not a LongBench task (eval.py's dataset2metric has no such name) nor one "
                         "of qvet's synthetic tasks", a->tasks ? "" : a->data, a->tasks ? "" : ": ", name);
            break;
        }
        if (t->metric == QV_LB_CHINESE) {
            if (a->english_only) {
                fprintf(stderr, "qvet longbench: skipping Chinese task '%s' (needs jieba; not scored)\n", name);
                cJSON_AddItemToArray(skipped, cJSON_CreateString(name));
                continue;
            }
            st = qv_fail(QV_ERR_UNSUPPORTED, "%s: task '%s' is Chinese: LongBench scores it after jieba word segmentation, "
                         "which qvet does not implement (refused rather than scored approximately; --english-only skips it)",
                         a->synthetic ? a->synthetic : a->data, name);
            break;
        }
        st = tasks_push(T, name);
        if (st != QV_OK) break;
        int k = T->n - 1;
        qv_lb_task_data *td = &T->td[k];
        if (a->synthetic) {
            qv_lb_syn_opts so = {.samples = a->samples ? a->samples : QV_LB_SYN_DEFAULT_SAMPLES,
                                 .words = a->words ? a->words : QV_LB_SYN_DEFAULT_WORDS, .seed = a->seed};
            st = qv_lb_syn_build(name, corpus, clen, a->synthetic, &so, &td->items, &td->n);
            T->n_file[k] = td->n;
            T->tmpls[k] = strdup(qv_lb_syn_prompt(name));
            td->max_gen = qv_lb_syn_maxlen(name);
            if (st == QV_OK && !T->tmpls[k]) st = qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
            if (st == QV_OK) qv_sha256_hex(T->tmpls[k], strlen(T->tmpls[k]), T->sha[k]);
        } else {
            char file[1024];
            snprintf(file, sizeof file, "%s/%s%s.jsonl", a->data, name, a->e ? "_e" : "");
            const char *tmpl;
            st = qv_lb_config_prompt(cfg, name, &tmpl);
            if (st == QV_OK) st = qv_lb_config_maxlen(cfg, name, &td->max_gen);
            if (st == QV_OK && !(T->tmpls[k] = strdup(tmpl))) st = qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
            char *raw = NULL;
            size_t rl = 0;
            if (st == QV_OK) st = qv_read_file(file, (size_t)4 << 30, &raw, &rl);
            if (st == QV_OK) qv_sha256_hex(raw, rl, T->sha[k]);
            free(raw);
            if (st == QV_OK) st = qv_lb_jsonl_load(file, &td->items, &td->n);
            T->n_file[k] = td->n;
            if (st == QV_OK && td->n == 0) st = qv_fail(QV_ERR_INPUT, "%s: no samples", file);
            for (size_t j = 0; j < td->n && st == QV_OK; j++) {
                const cJSON *ans = cJSON_GetObjectItemCaseSensitive(td->items[j], "answers");
                if (!cJSON_IsArray(ans)) st = qv_fail(QV_ERR_INPUT, "%s:%zu: \"answers\" is missing or not a list", file, j + 1);
            }
        }
        if (st == QV_OK && a->samples && (size_t)a->samples < td->n) td->n = (size_t)a->samples; /* the first N */
        td->tmpl = T->tmpls[k];
    }
    for (int i = 0; i < nn; i++) free(names[i]);
    free(names);
    free(corpus);
    qv_lb_config_free(cfg);
    if (st == QV_OK && T->n == 0) st = qv_fail(QV_ERR_INPUT, "longbench: no task left to run");
    if (st != QV_OK) tasks_free(T);
    return st;
}

/* Appends line (cJSON's output, owned and freed here; NULL when cJSON ran out of memory) and a
 * newline to the JSONL text buf[0, len). */
static qv_status jsonl_append(char **buf, size_t *len, size_t *cap, char *line)
{
    size_t l = line ? strlen(line) : 0;
    if (line && *len + l + 2 > *cap) {
        size_t nc = 2 * (*len + l + 2);
        char *nb = realloc(*buf, nc);
        if (!nb) free(line), line = NULL;
        else *buf = nb, *cap = nc;
    }
    if (!line) return qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
    memcpy(*buf + *len, line, l);
    *len += l;
    (*buf)[(*len)++] = '\n';
    free(line);
    return QV_OK;
}

/* LongBench-format data of the synthetic tasks: DIR/<task>.jsonl + dataset2prompt.json +
 * dataset2maxlen.json, so `--data DIR --longbench-config DIR` runs the very same samples */
static qv_status write_data(const char *dir, const lb_tasks *T)
{
    if (mkdir(dir, 0777) != 0 && !qv_is_dir(dir)) return qv_fail(QV_ERR_IO, "%s: cannot create the folder", dir);
    cJSON *pr = cJSON_CreateObject(), *ml = cJSON_CreateObject();
    qv_status st = QV_OK;
    for (int t = 0; t < T->n && st == QV_OK; t++) {
        cJSON_AddStringToObject(pr, T->names[t], T->tmpls[t]);
        cJSON_AddNumberToObject(ml, T->names[t], T->td[t].max_gen);
        size_t cap = 0, len = 0;
        char *buf = NULL;
        for (size_t i = 0; i < T->td[t].n && st == QV_OK; i++) {
            char *line = cJSON_PrintUnformatted(T->td[t].items[i]);
            st = jsonl_append(&buf, &len, &cap, line);
        }
        char file[1024];
        snprintf(file, sizeof file, "%s/%s.jsonl", dir, T->names[t]);
        if (st == QV_OK) st = qv_write_file_atomic(file, buf, len);
        free(buf);
    }
    char *p1 = qv_path_join(dir, "dataset2prompt.json"), *p2 = qv_path_join(dir, "dataset2maxlen.json");
    if (st == QV_OK) st = qv_json_write_atomic(p1, pr);
    if (st == QV_OK) st = qv_json_write_atomic(p2, ml);
    free(p1), free(p2);
    cJSON_Delete(pr), cJSON_Delete(ml);
    return st;
}

/* ---- the result document ---- */

typedef struct {
    qv_lb_result *v;
    int n, cap;
    const cJSON *meta;
    const char *const *names;
    int ntasks;
    const char *json;
    int64_t committed;
} lb_state;

static qv_status add_result(lb_state *s, qv_lb_result *r, const char *path)
{
    for (int i = 0; i < s->n; i++)
        if (s->v[i].task == r->task && s->v[i].index == r->index)
            return qv_fail(QV_ERR_INPUT, "%s: task %s sample %d appears twice", path, s->names[r->task], r->index);
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        qv_lb_result *v = realloc(s->v, sizeof *v * (size_t)cap);
        if (!v) return qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
        s->v = v, s->cap = cap;
    }
    s->v[s->n++] = *r;
    memset(r, 0, sizeof *r);
    return QV_OK;
}

static int cmp_result(const void *a, const void *b)
{
    const qv_lb_result *x = a, *y = b;
    if (x->task != y->task) return (x->task > y->task) - (x->task < y->task);
    return (x->index > y->index) - (x->index < y->index);
}

qv_status qv_lb_doc(const cJSON *meta, const char *const *tasks, int ntasks, qv_lb_result *res, int n, int with_summary,
                    cJSON **out)
{
    *out = NULL;
    qsort(res, (size_t)n, sizeof *res, cmp_result);
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(meta, "shard"), *mt = cJSON_GetObjectItemCaseSensitive(meta, "tasks");
    int si = cJSON_GetObjectItemCaseSensitive(sh, "i")->valueint, sn = cJSON_GetObjectItemCaseSensitive(sh, "n")->valueint;
    int64_t expect = 0, k = 0;
    for (const cJSON *t = mt->child; t; t = t->next)
        for (int i = 0; i < cJSON_GetObjectItemCaseSensitive(t, "n")->valueint; i++, k++) expect += k % sn == si;
    double (*items)[2] = NULL;
    cJSON *sum = NULL;
    if (with_summary && n > 0) {
        items = malloc(sizeof *items * (size_t)n);
        if (!items) return qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
        qv_status st = qv_lb_summary_json(res, n, tasks, ntasks, &sum, items);
        if (st != QV_OK) {
            free(items);
            return st;
        }
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "schema", QV_LB_SCHEMA);
    cJSON_AddNumberToObject(j, "schema_version", QV_LB_SCHEMA_VERSION);
    cJSON_AddItemToObject(j, "meta", cJSON_Duplicate(meta, 1));
    cJSON_AddBoolToObject(j, "complete", n == expect);
    cJSON *sa = cJSON_AddArrayToObject(j, "samples");
    for (int i = 0; i < n; i++) {
        cJSON *o = qv_lb_result_json(&res[i], tasks[res[i].task]);
        if (items) {
            cJSON *sc = cJSON_AddObjectToObject(o, "score");
            cJSON_AddItemToObject(sc, "ref", qv_json_exact(items[i][0]));
            cJSON_AddItemToObject(sc, "cand", qv_json_exact(items[i][1]));
        }
        cJSON_AddItemToArray(sa, o);
    }
    if (sum) cJSON_AddItemToObject(j, "summary", sum);
    free(items);
    *out = j;
    return QV_OK;
}

static qv_status on_result(void *user, qv_lb_result *r)
{
    lb_state *s = user;
    QV_TRY(add_result(s, r, "longbench"));
    if (!s->json) return QV_OK;
    /* a checkpoint after every sample (resume restarts from here); the summary comes at the end */
    cJSON *j;
    QV_TRY(qv_lb_doc(s->meta, s->names, s->ntasks, s->v, s->n, 0, &j));
    qv_status st = qv_json_write_atomic(s->json, j);
    cJSON_Delete(j);
    if (st == QV_OK) qv_evcli_test_kill_hook(++s->committed);
    return st;
}

qv_status qv_lb_load(const char *path, cJSON **meta, const char ***tasks, int *ntasks, qv_lb_result **res, int *n)
{
    *meta = NULL, *tasks = NULL, *ntasks = 0, *res = NULL, *n = 0;
    cJSON *j = NULL;
    QV_TRY(qv_json_read(path, &j));
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(j, "schema"), *ver = cJSON_GetObjectItemCaseSensitive(j, "schema_version");
    const cJSON *sa = cJSON_GetObjectItemCaseSensitive(j, "samples"), *me = cJSON_GetObjectItemCaseSensitive(j, "meta");
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(me, "tasks"), *sh = cJSON_GetObjectItemCaseSensitive(me, "shard");
    qv_status st = QV_OK;
    if (!cJSON_IsString(sc) || strcmp(sc->valuestring, QV_LB_SCHEMA) || !cJSON_IsNumber(ver) ||
        ver->valueint != QV_LB_SCHEMA_VERSION || !cJSON_IsArray(sa) || !cJSON_IsArray(mt) || !cJSON_IsObject(sh) ||
        !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(sh, "i")) || !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(sh, "n")))
        st = qv_fail(QV_ERR_INPUT, "%s: not a qvet longbench result of schema_version %d", path, QV_LB_SCHEMA_VERSION);
    cJSON *m = st == QV_OK ? cJSON_Duplicate(me, 1) : NULL;
    int nt = m ? cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(m, "tasks")) : 0, ns = st == QV_OK ? cJSON_GetArraySize(sa) : 0;
    const char **names = st == QV_OK ? calloc((size_t)nt + 1, sizeof *names) : NULL;
    if (st == QV_OK && (!m || !names)) st = qv_fail(QV_ERR_NOMEM, "%s: out of memory", path);
    int k = 0;
    for (const cJSON *t = st == QV_OK ? cJSON_GetObjectItemCaseSensitive(m, "tasks")->child : NULL; t && st == QV_OK; t = t->next) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(t, "name"), *cnt = cJSON_GetObjectItemCaseSensitive(t, "n");
        if (!cJSON_IsString(nm) || !cJSON_IsNumber(cnt) || cnt->valueint < 0)
            st = qv_fail(QV_ERR_INPUT, "%s: meta.tasks[%d] needs \"name\" and \"n\"", path, k);
        else names[k++] = nm->valuestring;
    }
    lb_state s = {.names = names, .ntasks = nt};
    for (int i = 0; i < ns && st == QV_OK; i++) {
        qv_lb_result r;
        st = qv_lb_result_from_json(cJSON_GetArrayItem(sa, i), path, names, nt, &r);
        if (st == QV_OK) {
            int cnt = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(m, "tasks"), r.task), "n")->valueint;
            if (r.index >= cnt) st = qv_fail(QV_ERR_INPUT, "%s: task %s sample %d is beyond the task's %d samples", path, names[r.task], r.index, cnt);
            if (st == QV_OK) st = add_result(&s, &r, path);
            qv_lb_result_free(&r);
        }
    }
    cJSON_Delete(j);
    if (st != QV_OK) {
        for (int i = 0; i < s.n; i++) qv_lb_result_free(&s.v[i]);
        free(s.v);
        free(names);
        cJSON_Delete(m);
        return st;
    }
    *meta = m, *tasks = names, *ntasks = nt, *res = s.v, *n = s.n;
    return QV_OK;
}

/* ---- prediction files (LongBench's pred/<model>/<task>.jsonl format) ---- */

static qv_status write_preds(const char *dir, const char *const *tasks, int ntasks, qv_lb_result *res, int n)
{
    const char *who[2] = {"ref", "cand"};
    if (mkdir(dir, 0777) != 0 && !qv_is_dir(dir)) return qv_fail(QV_ERR_IO, "%s: cannot create the folder", dir);
    qsort(res, (size_t)n, sizeof *res, cmp_result);
    qv_status st = QV_OK;
    for (int w = 0; w < 2 && st == QV_OK; w++) {
        char sub[1100];
        snprintf(sub, sizeof sub, "%s/%s", dir, who[w]);
        if (mkdir(sub, 0777) != 0 && !qv_is_dir(sub)) return qv_fail(QV_ERR_IO, "%s: cannot create the folder", sub);
        for (int t = 0; t < ntasks && st == QV_OK; t++) {
            size_t len = 0, cap = 0;
            char *buf = NULL;
            for (int i = 0; i < n && st == QV_OK; i++) {
                if (res[i].task != t) continue;
                /* pred.py's line: pred, answers, all_classes, length (+ _id, which eval.py ignores) */
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "pred", res[i].pred[w]);
                cJSON_AddItemToObject(o, "answers", cJSON_Duplicate(res[i].answers, 1));
                cJSON_AddItemToObject(o, "all_classes", cJSON_Duplicate(res[i].all_classes, 1));
                if (isnan(res[i].length)) cJSON_AddNullToObject(o, "length");
                else cJSON_AddNumberToObject(o, "length", res[i].length);
                if (res[i].id) cJSON_AddStringToObject(o, "_id", res[i].id);
                char *line = cJSON_PrintUnformatted(o);
                cJSON_Delete(o);
                st = jsonl_append(&buf, &len, &cap, line);
            }
            char file[1200];
            snprintf(file, sizeof file, "%s/%s.jsonl", sub, tasks[t]);
            if (st == QV_OK && len) st = qv_write_file_atomic(file, buf, len);
            free(buf);
        }
    }
    return st;
}

/* ---- exec ---- */

/* the model's eos_token_id(s): DIR/generation_config.json when present (what model.generate
 * stops on), else config.json's */
static qv_status stop_ids(const qv_evcli_pair *p, const char *dir, int32_t *ids, int *n)
{
    *n = 0;
    char *gp = dir ? qv_path_join(dir, "generation_config.json") : NULL;
    if (gp && qv_path_exists(gp)) {
        cJSON *j = NULL;
        qv_status st = qv_json_read(gp, &j);
        if (st != QV_OK) {
            free(gp);
            return st;
        }
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "eos_token_id");
        if (cJSON_IsNumber(e)) ids[(*n)++] = e->valueint;
        for (const cJSON *c = cJSON_IsArray(e) ? e->child : NULL; c && *n < 8; c = c->next)
            if (cJSON_IsNumber(c)) ids[(*n)++] = c->valueint;
        cJSON_Delete(j);
        for (int i = 0; i < *n; i++)
            if (ids[i] < 0 || ids[i] >= p->mr->cfg.vocab_size) {
                qv_status bad = qv_fail(QV_ERR_INPUT, "%s: eos_token_id %d outside the vocabulary", gp, ids[i]);
                free(gp);
                return bad;
            }
    }
    free(gp);
    if (*n == 0 && p->mr->cfg.eos_token_id >= 0) ids[(*n)++] = p->mr->cfg.eos_token_id;
    if (*n == 0 && qv_tok_eos_id(p->mr->tok) >= 0) ids[(*n)++] = qv_tok_eos_id(p->mr->tok);
    return QV_OK;
}

/* transformers' clean_up_tokenization_spaces: tokenizer_config.json's value; absent (or no
 * model folder): true, the default of transformers 4.31, the version LongBench pins */
static qv_status clean_up_flag(const char *dir, int *out)
{
    *out = 1;
    char *tp = dir ? qv_path_join(dir, "tokenizer_config.json") : NULL;
    qv_status st = QV_OK;
    if (tp && qv_path_exists(tp)) {
        cJSON *j = NULL;
        st = qv_json_read(tp, &j);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "clean_up_tokenization_spaces");
        if (st == QV_OK && c && !cJSON_IsBool(c))
            st = qv_fail(QV_ERR_INPUT, "%s: \"clean_up_tokenization_spaces\" is not a boolean", tp);
        if (st == QV_OK && c) *out = cJSON_IsTrue(c);
        cJSON_Delete(j);
    }
    free(tp);
    return st;
}


qv_status qv_lb_exec(const qv_lb_args *a, qv_evcli_pair *p, cJSON **result)
{
    *result = NULL;
    if (!p->mr->tok) return qv_fail(QV_ERR_INPUT, "%s: the model has no tokenizer.json", p->mr->dir);
    cJSON *m = cJSON_CreateObject(), *skipped = cJSON_CreateArray();
    lb_tasks T;
    qv_status st = load_tasks(a, &T, skipped);
    if (st != QV_OK) {
        cJSON_Delete(m), cJSON_Delete(skipped);
        return st;
    }
    if (a->write_data) st = write_data(a->write_data, &T);
    int maxp = p->mr->cfg.max_position_embeddings, max_gen = 0;
    if (p->mc->cfg.max_position_embeddings < maxp) maxp = p->mc->cfg.max_position_embeddings;
    for (int t = 0; t < T.n; t++)
        if (T.td[t].max_gen > max_gen) max_gen = T.td[t].max_gen;
    /* LongBench sets max_length per model (model2maxlen: 3500 for a 4k Llama-2); qvet's default
     * leaves room for the longest generation and 16 tokens of re-tokenization drift */
    long long max_length = a->max_length ? a->max_length : (long long)maxp - max_gen - 16;
    if (st == QV_OK && max_length < 2)
        st = qv_fail(QV_ERR_USAGE, "--max-length %lld: the model's %d positions leave no room for prompts", max_length, maxp);
    int32_t stop[8];
    int nstop = 0;
    if (st == QV_OK) st = stop_ids(p, a->pair.model_dir, stop, &nstop);
    int clean = 1;
    if (st == QV_OK) st = clean_up_flag(a->pair.model_dir, &clean);
    int32_t nl = -1, *nlids = NULL;
    size_t nnl = 0;
    if (st == QV_OK) st = qv_tok_encode(p->mr->tok, "\n", 1, 0, &nlids, &nnl); /* tokenizer.encode("\n")[-1] */
    if (st == QV_OK && nnl) nl = nlids[nnl - 1];
    free(nlids);
    /* meta: everything that decides the samples' results (resume and merge compare it) */
    cJSON_AddStringToObject(m, "model", p->mr->dir);
    if (p->mc != p->mr) cJSON_AddStringToObject(m, "cand_model", p->mc->dir);
    cJSON_AddStringToObject(m, "ref", a->pair.ref);
    cJSON_AddStringToObject(m, "cand", a->pair.cand);
    if (a->pair.quantized) cJSON_AddStringToObject(m, "quantized", a->pair.quantized);
    if (a->pair.cand_round_bits >= 0) cJSON_AddNumberToObject(m, "cand_round_bits", a->pair.cand_round_bits);
    if (a->pair.qoq_opts) {
        const qv_engine_opts *q = a->pair.qoq_opts;
        char eo[512];
        snprintf(eo, sizeof eo, "attn=%s fp_kv=%d qserve_compat=%d fp_weights=%016llx%016llx%016llx%016llx "
                 "fp_acts=%016llx%016llx%016llx%016llx", q->attn_mode == QV_ATTN_SERVE ? "serve" : "kv4", q->fp_kv,
                 q->qserve_compat, (unsigned long long)q->fp_weights.w[3], (unsigned long long)q->fp_weights.w[2],
                 (unsigned long long)q->fp_weights.w[1], (unsigned long long)q->fp_weights.w[0],
                 (unsigned long long)q->fp_acts.w[3], (unsigned long long)q->fp_acts.w[2],
                 (unsigned long long)q->fp_acts.w[1], (unsigned long long)q->fp_acts.w[0]);
        cJSON_AddStringToObject(m, "qoq_engine_opts", eo);
    }
    cJSON_AddStringToObject(m, "source", a->synthetic ? "synthetic" : "data");
    if (a->synthetic) {
        cJSON_AddStringToObject(m, "corpus", a->synthetic);
        cJSON_AddNumberToObject(m, "words", a->words ? a->words : QV_LB_SYN_DEFAULT_WORDS);
    } else {
        cJSON_AddStringToObject(m, "data", a->data);
        cJSON_AddStringToObject(m, "longbench_config", a->config);
        cJSON_AddBoolToObject(m, "e", a->e);
    }
    cJSON_AddNumberToObject(m, "seed", (double)a->seed);
    cJSON_AddNumberToObject(m, "max_length", (double)max_length);
    if (a->chat) cJSON_AddStringToObject(m, "chat", a->chat);
    else cJSON_AddNullToObject(m, "chat");
    cJSON *sj = cJSON_AddArrayToObject(m, "stop_ids");
    for (int i = 0; i < nstop; i++) cJSON_AddItemToArray(sj, cJSON_CreateNumber(stop[i]));
    cJSON_AddNumberToObject(m, "newline_id", nl);
    cJSON_AddBoolToObject(m, "clean_up_tokenization_spaces", clean);
    cJSON *tj = cJSON_AddArrayToObject(m, "tasks");
    for (int t = 0; t < T.n; t++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", T.names[t]);
        cJSON_AddStringToObject(o, "metric", qv_lb_metric_name(qv_lb_task_find(T.names[t])->metric));
        cJSON_AddNumberToObject(o, "n", (double)T.td[t].n);
        cJSON_AddNumberToObject(o, "n_available", (double)T.n_file[t]);
        cJSON_AddNumberToObject(o, "max_gen", T.td[t].max_gen);
        cJSON_AddStringToObject(o, a->synthetic ? "prompt_sha256" : "data_sha256", T.sha[t]);
        cJSON_AddItemToArray(tj, o);
    }
    cJSON_AddItemToObject(m, "skipped", skipped);
    skipped = NULL;
    cJSON *sh = cJSON_AddObjectToObject(m, "shard");
    cJSON_AddNumberToObject(sh, "i", a->shard_i);
    cJSON_AddNumberToObject(sh, "n", a->shard_n);
    if (a->cmd) cJSON_AddStringToObject(m, "command", a->cmd);

    const char **names = calloc((size_t)T.n, sizeof *names);
    unsigned char **have = calloc((size_t)T.n, sizeof *have);
    if (st == QV_OK && (!names || !have)) st = qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
    for (int t = 0; t < T.n && st == QV_OK; t++) {
        names[t] = T.names[t];
        if (!(have[t] = calloc(T.td[t].n + 1, 1))) st = qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
    }
    lb_state s = {.meta = m, .names = names, .ntasks = T.n, .json = a->json};
    if (st == QV_OK && a->resume && a->json && qv_path_exists(a->json)) {
        cJSON *om = NULL;
        const char **on = NULL;
        int ont = 0, onr = 0;
        qv_lb_result *orr = NULL;
        st = qv_lb_load(a->json, &om, &on, &ont, &orr, &onr);
        if (st == QV_OK) {
            cJSON *k1 = qv_evcli_meta_key(om), *k2 = qv_evcli_meta_key(m);
            if (!cJSON_Compare(k1, k2, 1) || !cJSON_Compare(cJSON_GetObjectItem(om, "shard"), sh, 1))
                st = qv_fail(QV_ERR_INPUT, "%s: --resume: the file is from a different run (its meta differs)", a->json);
            cJSON_Delete(k1), cJSON_Delete(k2);
        }
        for (int i = 0; i < onr; i++) {
            if (st == QV_OK) {
                have[orr[i].task][orr[i].index] = 1; /* same meta: same task order */
                st = add_result(&s, &orr[i], a->json);
            }
            qv_lb_result_free(&orr[i]);
        }
        if (st == QV_OK && onr && !a->quiet) fprintf(stderr, "qvet longbench: resuming: %d samples already in %s\n", onr, a->json);
        free(orr);
        free(on);
        cJSON_Delete(om);
    }
    if (st == QV_OK) {
        qv_evcli_progress pg;
        qv_evcli_progress_init(&pg, "longbench");
        qv_lb_run_opts o = {.tasks = T.td, .n_tasks = T.n,
                            .prompt = {.tok = p->mr->tok, .max_length = (size_t)max_length, .chat = a->chat, .clean_up = clean},
                            .stop = stop, .n_stop = nstop, .newline_id = nl, .shard_i = a->shard_i,
                            .shard_n = a->shard_n, .have = (const unsigned char *const *)have, .on_result = on_result,
                            .user = &s, .progress = qv_evcli_progress_cb, .progress_user = &pg};
        st = qv_eval_longbench(p->er, p->ec, &o);
        qv_evcli_progress_end(&pg);
    }
    if (st == QV_OK) st = qv_lb_doc(m, names, T.n, s.v, s.n, 1, result);
    if (st == QV_OK && a->json) st = qv_json_write_atomic(a->json, *result);
    if (st == QV_OK && a->pred_dir) st = write_preds(a->pred_dir, names, T.n, s.v, s.n);
    if (st != QV_OK && *result) {
        cJSON_Delete(*result);
        *result = NULL;
    }
    for (int i = 0; i < s.n; i++) qv_lb_result_free(&s.v[i]);
    free(s.v);
    for (int t = 0; have && t < T.n; t++) free(have[t]);
    free(have);
    free(names);
    tasks_free(&T);
    cJSON_Delete(m);
    cJSON_Delete(skipped);
    return st;
}

static double lbnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

void qv_lb_print(const cJSON *r)
{
    const cJSON *m = cJSON_GetObjectItem(r, "meta"), *s = cJSON_GetObjectItem(r, "summary");
    printf("longbench (%s): ref %s, cand %s, max_length %.0f\n", cJSON_GetObjectItem(m, "source")->valuestring,
           cJSON_GetObjectItem(m, "ref")->valuestring, cJSON_GetObjectItem(m, "cand")->valuestring, lbnum(m, "max_length"));
    printf("%-24s %-14s %4s %8s %8s %8s  %-23s %6s %6s %5s\n", "task", "metric", "n", "ref", "cand", "C-R", "C-R per item [95% CI]",
           "ident", "tokagr", "trunc");
    const cJSON *tasks = cJSON_GetObjectItem(s, "tasks");
    for (const cJSON *t = tasks ? tasks->child : NULL; t; t = t->next) {
        const cJSON *di = cJSON_GetObjectItem(t, "delta_items");
        char ci[64];
        snprintf(ci, sizeof ci, "%+.2f [%+.2f, %+.2f]", lbnum(di, "mean"), lbnum(di, "lo"), lbnum(di, "hi"));
        printf("%-24s %-14s %4.0f %8.2f %8.2f %+8.2f  %-23s %6.3f %6.3f %5.0f\n", t->string,
               cJSON_GetObjectItem(t, "metric")->valuestring, lbnum(t, "n"), lbnum(t, "ref"), lbnum(t, "cand"), lbnum(t, "delta"), ci,
               lbnum(t, "identical"), lbnum(t, "token_agreement"), lbnum(t, "truncated"));
        const cJSON *b = cJSON_GetObjectItem(t, "buckets");
        if (b) {
            printf("%-24s", "  LongBench-E buckets:");
            for (const cJSON *x = b->child; x; x = x->next)
                if (lbnum(x, "n") > 0) printf("  %s n=%.0f ref %.2f cand %.2f (%+.2f)", x->string, lbnum(x, "n"), lbnum(x, "ref"), lbnum(x, "cand"), lbnum(x, "delta"));
            printf("\n");
        }
    }
    const cJSON *o = cJSON_GetObjectItem(s, "overall");
    if (o && lbnum(o, "tasks") > 0)
        printf("average over %.0f tasks (%.0f samples): ref %.2f, cand %.2f, C-R %+.2f; identical predictions %.3f\n", lbnum(o, "tasks"),
               lbnum(o, "samples"), lbnum(o, "ref"), lbnum(o, "cand"), lbnum(o, "delta"), lbnum(o, "identical"));
}
