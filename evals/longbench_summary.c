/* Per-task figures of a LongBench run (R vs C), computed from the stored samples so one run, a
 * resumed run and merged shards give the same bits: LongBench's scorer() / scorer_e() for each
 * engine, the C - R differences, and agreement figures. */
#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qvet/eval_longbench.h"

static int by_index(const void *a, const void *b)
{
    const qv_lb_result *x = *(const qv_lb_result *const *)a, *y = *(const qv_lb_result *const *)b;
    return (x->index > y->index) - (x->index < y->index);
}

/* a JSON list of strings -> borrowed pointers */
static qv_status strings(const cJSON *a, const char *task, int index, const char *what, const char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!cJSON_IsArray(a)) return qv_fail(QV_ERR_INPUT, "longbench: task %s sample %d: \"%s\" is not a list of strings", task, index, what);
    size_t cnt = (size_t)cJSON_GetArraySize(a), i = 0;
    const char **v = malloc((cnt ? cnt : 1) * sizeof *v);
    if (!v) return qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
    for (const cJSON *c = a->child; c; c = c->next, i++) {
        if (!cJSON_IsString(c)) {
            free(v);
            return qv_fail(QV_ERR_INPUT, "longbench: task %s sample %d: \"%s\" item %zu is not a string", task, index, what, i);
        }
        v[i] = c->valuestring;
    }
    *out = v;
    *n = cnt;
    return QV_OK;
}

static cJSON *num(double x)
{
    return isfinite(x) ? cJSON_CreateNumber(x) : cJSON_CreateNull();
}

/* one task: v[0..n) sorted by index; item[k][w] receives the item scores */
static qv_status task_json(const char *name, qv_lb_result **v, int n, double (*item)[2], cJSON **out)
{
    const qv_lb_task *t = qv_lb_task_find(name);
    if (!t) return qv_fail(QV_ERR_INPUT, "longbench: '%s' is neither a LongBench task nor one of qvet's synthetic tasks", name);
    const char **classes = NULL, **answers = NULL;
    size_t nclasses = 0, nanswers = 0;
    qv_status st = QV_OK;
    /* eval.py overwrites all_classes on every line: the last sample's list serves them all */
    if (t->metric == QV_LB_CLASSIFICATION)
        st = strings(v[n - 1]->all_classes, name, v[n - 1]->index, "all_classes", &classes, &nclasses);
    double sum[2] = {0, 0}, dsum = 0, dsq = 0, agree_tok = 0;
    int identical = 0, item_equal = 0, truncated = 0, have_len = 1;
    double *bucket[2][QV_LB_NBUCKETS] = {{0}};
    size_t bn[QV_LB_NBUCKETS] = {0};
    for (int w = 0; w < 2 && st == QV_OK; w++)
        for (int b = 0; b < QV_LB_NBUCKETS; b++)
            if (!(bucket[w][b] = malloc(sizeof(double) * (size_t)n))) st = qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
    for (int k = 0; k < n && st == QV_OK; k++) {
        const qv_lb_result *r = v[k];
        free(answers);
        answers = NULL;
        st = strings(r->answers, name, r->index, "answers", &answers, &nanswers);
        for (int w = 0; w < 2 && st == QV_OK; w++) {
            st = qv_lb_score_item(t, r->pred[w], answers, nanswers, classes, nclasses, &item[k][w]);
            if (st != QV_OK) qv_fail_prefix(st, "longbench: task %s sample %d", name, r->index);
            else sum[w] += item[k][w]; /* eval.py's sequential float sum */
        }
        if (st != QV_OK) break;
        double d = 100 * (item[k][1] - item[k][0]);
        dsum += d, dsq += d * d;
        identical += !strcmp(r->pred[0], r->pred[1]);
        item_equal += item[k][0] == item[k][1];
        truncated += r->truncated;
        int mx = r->n_gen[0] > r->n_gen[1] ? r->n_gen[0] : r->n_gen[1];
        agree_tok += mx ? (double)r->agree / mx : 1.0;
        if (isnan(r->length)) have_len = 0;
        else {
            int b = r->length < 4000 ? 0 : r->length < 8000 ? 1 : 2; /* scorer_e's buckets */
            bucket[0][b][bn[b]] = item[k][0];
            bucket[1][b][bn[b]++] = item[k][1];
        }
    }
    if (st == QV_OK) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "metric", qv_lb_metric_name(t->metric));
        cJSON_AddNumberToObject(o, "n", n);
        double s[2];
        for (int w = 0; w < 2; w++) s[w] = qv_lb_py_round2(100 * sum[w] / n); /* scorer() */
        cJSON_AddNumberToObject(o, "ref", s[0]);
        cJSON_AddNumberToObject(o, "cand", s[1]);
        cJSON_AddNumberToObject(o, "delta", qv_lb_py_round2(s[1] - s[0]));
        /* paired per-item difference (points): mean and a normal 95% interval */
        double mean = dsum / n, var = n > 1 ? (dsq - n * mean * mean) / (n - 1) : NAN;
        double se = n > 1 ? sqrt(var > 0 ? var : 0) / sqrt((double)n) : NAN;
        cJSON *di = cJSON_AddObjectToObject(o, "delta_items");
        cJSON_AddItemToObject(di, "mean", num(mean));
        cJSON_AddItemToObject(di, "lo", num(mean - 1.96 * se));
        cJSON_AddItemToObject(di, "hi", num(mean + 1.96 * se));
        if (have_len) {
            cJSON *bo = cJSON_AddObjectToObject(o, "buckets");
            for (int b = 0; b < QV_LB_NBUCKETS; b++) {
                cJSON *x = cJSON_AddObjectToObject(bo, qv_lb_bucket_names[b]);
                double e[2];
                for (int w = 0; w < 2; w++) e[w] = qv_lb_np_round2(100 * qv_lb_np_mean(bucket[w][b], bn[b])); /* scorer_e() */
                cJSON_AddNumberToObject(x, "n", (double)bn[b]);
                cJSON_AddItemToObject(x, "ref", num(e[0]));
                cJSON_AddItemToObject(x, "cand", num(e[1]));
                cJSON_AddItemToObject(x, "delta", num(qv_lb_py_round2(e[1] - e[0])));
            }
        }
        cJSON_AddNumberToObject(o, "identical", (double)identical / n);
        cJSON_AddNumberToObject(o, "item_equal", (double)item_equal / n);
        cJSON_AddNumberToObject(o, "token_agreement", agree_tok / n);
        cJSON_AddNumberToObject(o, "truncated", truncated);
        *out = o;
    }
    for (int w = 0; w < 2; w++)
        for (int b = 0; b < QV_LB_NBUCKETS; b++) free(bucket[w][b]);
    free(answers);
    free(classes);
    return st;
}

qv_status qv_lb_summary_json(const qv_lb_result *res, int n, const char *const *tasks, int ntasks, cJSON **out,
                             double (*items)[2])
{
    *out = NULL;
    const qv_lb_result **v = malloc(sizeof *v * (size_t)(n ? n : 1));
    double (*sc)[2] = malloc(sizeof *sc * (size_t)(n ? n : 1));
    if (!v || !sc) {
        free(v), free(sc);
        return qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
    }
    cJSON *o = cJSON_CreateObject(), *to = cJSON_AddObjectToObject(o, "tasks");
    qv_status st = QV_OK;
    double tot[2] = {0, 0}, ident = 0;
    int nt = 0, ns = 0;
    for (int t = 0; t < ntasks && st == QV_OK; t++) {
        int m = 0;
        for (int k = 0; k < n; k++)
            if (res[k].task == t) v[m++] = &res[k];
        if (!m) continue;
        qsort(v, (size_t)m, sizeof *v, by_index);
        cJSON *tj = NULL;
        st = task_json(tasks[t], (qv_lb_result **)v, m, sc, &tj);
        if (st != QV_OK) break;
        cJSON_AddItemToObject(to, tasks[t], tj);
        tot[0] += cJSON_GetObjectItem(tj, "ref")->valuedouble;
        tot[1] += cJSON_GetObjectItem(tj, "cand")->valuedouble;
        ident += cJSON_GetObjectItem(tj, "identical")->valuedouble * m;
        nt++, ns += m;
        if (items)
            for (int k = 0; k < m; k++) {
                size_t at = (size_t)(v[k] - res);
                items[at][0] = sc[k][0], items[at][1] = sc[k][1];
            }
    }
    if (st == QV_OK) {
        cJSON *a = cJSON_AddObjectToObject(o, "overall");
        cJSON_AddNumberToObject(a, "tasks", nt);
        cJSON_AddNumberToObject(a, "samples", ns);
        if (nt) { /* LongBench's average over tasks */
            cJSON_AddNumberToObject(a, "ref", tot[0] / nt);
            cJSON_AddNumberToObject(a, "cand", tot[1] / nt);
            cJSON_AddNumberToObject(a, "delta", (tot[1] - tot[0]) / nt);
            cJSON_AddNumberToObject(a, "identical", ident / ns);
        }
        *out = o;
    } else cJSON_Delete(o);
    free(v), free(sc);
    return st;
}
