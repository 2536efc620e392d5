/* LongBench's eval.py: dataset2metric, the per-item loop, scorer() and scorer_e(). */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "longbench_internal.h"

static const qv_lb_task tasks[] = {
    {"narrativeqa", QV_LB_QA_F1, 0, 0},          {"qasper", QV_LB_QA_F1, 0, 0},
    {"multifieldqa_en", QV_LB_QA_F1, 0, 0},      {"multifieldqa_zh", QV_LB_CHINESE, 0, 0},
    {"hotpotqa", QV_LB_QA_F1, 0, 0},             {"2wikimqa", QV_LB_QA_F1, 0, 0},
    {"musique", QV_LB_QA_F1, 0, 0},              {"dureader", QV_LB_CHINESE, 0, 0},
    {"gov_report", QV_LB_ROUGE_L, 0, 0},         {"qmsum", QV_LB_ROUGE_L, 0, 0},
    {"multi_news", QV_LB_ROUGE_L, 0, 0},         {"vcsum", QV_LB_CHINESE, 0, 0},
    {"trec", QV_LB_CLASSIFICATION, 1, 0},        {"triviaqa", QV_LB_QA_F1, 1, 0},
    {"samsum", QV_LB_ROUGE_L, 1, 0},             {"lsht", QV_LB_CHINESE, 1, 0},
    {"passage_retrieval_en", QV_LB_RETRIEVAL, 0, 0}, {"passage_count", QV_LB_COUNT, 0, 0},
    {"passage_retrieval_zh", QV_LB_CHINESE, 0, 0}, {"lcc", QV_LB_CODE_SIM, 0, 0},
    {"repobench-p", QV_LB_CODE_SIM, 0, 0},
    /* qvet's own synthetic tasks (evals/longbench_synth.c), with the metric of the task they mirror */
    {"qvet_passage_retrieval", QV_LB_RETRIEVAL, 0, 1}, {"qvet_passage_count", QV_LB_COUNT, 0, 1},
    {"qvet_kv_retrieval", QV_LB_QA_F1, 0, 1},
};

const char *const qv_lb_bucket_names[QV_LB_NBUCKETS] = {"0-4k", "4-8k", "8k+"};

const qv_lb_task *qv_lb_task_find(const char *name)
{
    for (size_t i = 0; i < sizeof tasks / sizeof tasks[0]; i++)
        if (!strcmp(tasks[i].name, name)) return &tasks[i];
    return NULL;
}

const char *qv_lb_metric_name(qv_lb_metric m)
{
    switch (m) {
    case QV_LB_QA_F1: return "qa_f1";
    case QV_LB_ROUGE_L: return "rouge_l";
    case QV_LB_CLASSIFICATION: return "classification";
    case QV_LB_RETRIEVAL: return "retrieval";
    case QV_LB_COUNT: return "count";
    case QV_LB_CODE_SIM: return "code_sim";
    case QV_LB_CHINESE: return "chinese (unsupported)";
    }
    return "?";
}

qv_status qv_lb_score_item(const qv_lb_task *t, const char *pred, const char *const *answers,
                           size_t nanswers, const char *const *classes, size_t nclasses, double *score)
{
    *score = 0.0;
    if (t->metric == QV_LB_CHINESE)
        return qv_fail(QV_ERR_UNSUPPORTED,
                       "task '%s' is Chinese: LongBench scores it after jieba word segmentation, which qvet "
                       "does not implement (refused rather than scored approximately)", t->name);
    char *first = NULL;
    if (t->first_line) { /* prediction.lstrip('\n').split('\n')[0] */
        while (*pred == '\n') pred++;
        const char *e = strchr(pred, '\n');
        size_t l = e ? (size_t)(e - pred) : strlen(pred);
        first = malloc(l + 1);
        if (!first) return qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
        memcpy(first, pred, l);
        first[l] = 0;
        pred = first;
    }
    qv_status st = QV_OK;
    double best = 0.0;
    for (size_t a = 0; a < nanswers && st == QV_OK; a++) {
        double s = 0.0;
        switch (t->metric) {
        case QV_LB_QA_F1: st = qv_lb_qa_f1(pred, answers[a], &s); break;
        case QV_LB_ROUGE_L: st = qv_lb_rouge_l(pred, answers[a], &s); break;
        case QV_LB_CLASSIFICATION: st = qv_lb_classification(pred, answers[a], classes, nclasses, &s); break;
        case QV_LB_RETRIEVAL: st = qv_lb_retrieval(pred, answers[a], &s); break;
        case QV_LB_COUNT: st = qv_lb_count(pred, answers[a], &s); break;
        case QV_LB_CODE_SIM: st = qv_lb_code_sim(pred, answers[a], &s); break;
        case QV_LB_CHINESE: break;
        }
        if (s > best) best = s; /* max(score, x) keeps score unless x is larger */
    }
    free(first);
    if (st == QV_OK) *score = best;
    return st;
}

void qv_lb_task_score_free(qv_lb_task_score *s)
{
    free(s->item);
    s->item = NULL;
}

/* a JSON array of strings -> borrowed pointers; `what` names the field in errors */
static qv_status string_array(const cJSON *a, const char *path, size_t line, const char *what,
                              const char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!cJSON_IsArray(a)) return qv_fail(QV_ERR_INPUT, "%s:%zu: \"%s\" is not a list of strings", path, line, what);
    size_t cnt = (size_t)cJSON_GetArraySize(a), i = 0;
    const char **v = malloc((cnt ? cnt : 1) * sizeof *v);
    if (!v) return qv_fail(QV_ERR_NOMEM, "out of memory");
    for (const cJSON *c = a->child; c; c = c->next, i++) {
        if (!cJSON_IsString(c)) {
            free(v);
            return qv_fail(QV_ERR_INPUT, "%s:%zu: \"%s\" item %zu is not a string", path, line, what, i);
        }
        v[i] = c->valuestring;
    }
    *out = v;
    *n = cnt;
    return QV_OK;
}

qv_status qv_lb_score_file(const char *path, const char *task, int e, qv_lb_task_score *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->task, sizeof out->task, "%s", task);
    const qv_lb_task *t = qv_lb_task_find(task);
    if (!t)
        return qv_fail(QV_ERR_INPUT, "%s: '%s' is not a LongBench task (eval.py's dataset2metric has no such name) nor one of qvet's synthetic tasks",
                       path, task);
    if (t->metric == QV_LB_CHINESE)
        return qv_fail(QV_ERR_UNSUPPORTED,
                       "%s: task '%s' is Chinese: LongBench scores it after jieba word segmentation, which qvet "
                       "does not implement (refused rather than scored approximately)", path, task);
    cJSON **items = NULL;
    size_t n = 0;
    QV_TRY(qv_lb_jsonl_load(path, &items, &n));
    qv_status st = QV_OK;
    const char **classes = NULL, **answers = NULL;
    size_t nclasses = 0, nanswers = 0;
    double *bucket_v[QV_LB_NBUCKETS] = {0};
    if (n == 0) {
        st = qv_fail(QV_ERR_INPUT, "%s: no predictions (LongBench's scorer divides by zero on an empty file)", path);
        goto done;
    }
    /* eval.py overwrites all_classes on every line: the last line's list serves them all */
    const cJSON *ac = cJSON_GetObjectItemCaseSensitive(items[n - 1], "all_classes");
    if (t->metric == QV_LB_CLASSIFICATION) {
        st = string_array(ac, path, n, "all_classes", &classes, &nclasses);
        if (st != QV_OK) goto done;
    }
    out->item = malloc(n * sizeof *out->item);
    for (int b = 0; b < QV_LB_NBUCKETS; b++) bucket_v[b] = malloc(n * sizeof(double));
    if (!out->item || !bucket_v[0] || !bucket_v[1] || !bucket_v[2]) {
        st = qv_fail(QV_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    double total = 0.;
    for (size_t i = 0; i < n; i++) {
        size_t line = i + 1;
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(items[i], "pred");
        if (!cJSON_IsString(p)) {
            st = qv_fail(QV_ERR_INPUT, "%s:%zu: \"pred\" is missing or not a string", path, line);
            goto done;
        }
        free(answers);
        answers = NULL;
        st = string_array(cJSON_GetObjectItemCaseSensitive(items[i], "answers"), path, line, "answers", &answers, &nanswers);
        if (st != QV_OK) goto done;
        double s;
        st = qv_lb_score_item(t, p->valuestring, answers, nanswers, classes, nclasses, &s);
        if (st != QV_OK) {
            qv_fail_prefix(st, "%s:%zu", path, line);
            goto done;
        }
        out->item[i] = s;
        total += s;
        if (e) {
            const cJSON *l = cJSON_GetObjectItemCaseSensitive(items[i], "length");
            if (!cJSON_IsNumber(l)) {
                st = qv_fail(QV_ERR_INPUT, "%s:%zu: \"length\" is missing or not a number (needed for LongBench-E buckets)",
                             path, line);
                goto done;
            }
            double len = l->valuedouble;
            int b = len < 4000 ? 0 : (len < 8000 ? 1 : 2);
            bucket_v[b][out->bucket_n[b]++] = s;
        }
    }
    out->n = n;
    out->score = qv_lb_py_round2(100 * total / (double)n);
    for (int b = 0; b < QV_LB_NBUCKETS; b++)
        out->bucket[b] = e ? qv_lb_np_round2(100 * qv_lb_np_mean(bucket_v[b], out->bucket_n[b])) : NAN;
done:
    for (int b = 0; b < QV_LB_NBUCKETS; b++) free(bucket_v[b]);
    free(answers);
    free(classes);
    qv_lb_jsonl_free(items, n);
    if (st != QV_OK) qv_lb_task_score_free(out);
    return st;
}
