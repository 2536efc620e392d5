/* The LongBench run: every sample of this shard through R and C on the same prompt ids, and the
 * per-sample result as JSON (include/qvet/eval_longbench.h). */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qvet/eval_longbench.h"

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static qv_status run_one(qv_engine *er, qv_engine *ec, qv_seq_id sr, qv_seq_id sc, const qv_lb_run_opts *o,
                         const qv_lb_task_data *td, int t, size_t i, float *logits, int32_t *gen[2], qv_lb_result *r)
{
    const cJSON *it = td->items[i];
    memset(r, 0, sizeof *r);
    r->task = t;
    r->index = (int)i;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "_id"), *len = cJSON_GetObjectItemCaseSensitive(it, "length");
    r->id = cJSON_IsString(id) ? strdup(id->valuestring) : NULL;
    r->length = cJSON_IsNumber(len) ? len->valuedouble : NAN;
    const cJSON *ans = cJSON_GetObjectItemCaseSensitive(it, "answers");
    if (!cJSON_IsArray(ans)) return qv_fail(QV_ERR_INPUT, "\"answers\" is missing or not a list");
    r->answers = cJSON_Duplicate(ans, 1);
    const cJSON *ac = cJSON_GetObjectItemCaseSensitive(it, "all_classes");
    r->all_classes = ac ? cJSON_Duplicate(ac, 1) : cJSON_CreateNull();
    int32_t *ids = NULL;
    size_t n = 0, n_full = 0;
    QV_TRY(qv_lb_build_prompt(&o->prompt, td->name, td->tmpl, it, &ids, &n, &n_full, &r->truncated));
    r->n_full = (int)n_full;
    r->n_prompt = (int)n;
    /* pred.py's samsum: "\n" also stops, and at least one token is generated */
    int samsum = !strcmp(td->name, "samsum");
    int32_t stop[17];
    int ns = 0;
    for (int k = 0; k < o->n_stop && ns < 16; k++) stop[ns++] = o->stop[k];
    if (samsum && o->newline_id >= 0) stop[ns++] = o->newline_id;
    qv_lb_gen_opts g = {.max_new = td->max_gen, .stop = stop, .n_stop = ns, .min_new = samsum ? 1 : 0};
    qv_engine *e[2] = {er, ec};
    qv_seq_id s[2] = {sr, sc};
    qv_status st = QV_OK;
    for (int w = 0; w < 2 && st == QV_OK; w++) {
        st = qv_lb_generate(e[w], s[w], ids, (int)n, &g, logits, gen[w], &r->n_gen[w], &r->stop[w]);
        if (st == QV_OK) st = qv_lb_decode_skip_special(o->prompt.tok, gen[w], (size_t)r->n_gen[w], o->prompt.clean_up, &r->pred[w]);
        if (st != QV_OK) qv_fail_prefix(st, "%s", w ? "cand" : "ref");
    }
    while (st == QV_OK && r->agree < r->n_gen[0] && r->agree < r->n_gen[1] && gen[0][r->agree] == gen[1][r->agree]) r->agree++;
    free(ids);
    return st;
}

qv_status qv_eval_longbench(qv_engine *er, qv_engine *ec, const qv_lb_run_opts *o)
{
    int V = er->model->cfg.vocab_size;
    if (V != ec->model->cfg.vocab_size)
        return qv_fail(QV_ERR_INPUT, "longbench: reference vocab %d != candidate vocab %d", V, ec->model->cfg.vocab_size);
    int sn = o->shard_n > 0 ? o->shard_n : 1, max_gen = 1;
    int64_t todo = 0, done = 0, k = 0;
    for (int t = 0; t < o->n_tasks; t++) {
        if (o->tasks[t].max_gen < 1) return qv_fail(QV_ERR_INPUT, "longbench: task %s: max generation length < 1", o->tasks[t].name);
        if (o->tasks[t].max_gen > max_gen) max_gen = o->tasks[t].max_gen;
        for (size_t i = 0; i < o->tasks[t].n; i++, k++)
            if (k % sn == o->shard_i && !(o->have && o->have[t][i])) todo++;
    }
    float *logits = malloc(sizeof(float) * (size_t)V);
    int32_t *gen[2] = {malloc(sizeof(int32_t) * (size_t)max_gen), malloc(sizeof(int32_t) * (size_t)max_gen)};
    qv_seq_id sr = -1, sc = -1;
    qv_status st = logits && gen[0] && gen[1] ? QV_OK : qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
    if (st == QV_OK) st = qv_engine_seq_create(er, 1, &sr);
    if (st == QV_OK) st = qv_engine_seq_create(ec, 1, &sc);
    if (st == QV_OK && o->progress && todo) o->progress(o->progress_user, 0, todo);
    k = 0;
    for (int t = 0; t < o->n_tasks && st == QV_OK; t++) {
        const qv_lb_task_data *td = &o->tasks[t];
        for (size_t i = 0; i < td->n && st == QV_OK; i++, k++) {
            if (k % sn != o->shard_i || (o->have && o->have[t][i])) continue;
            qv_lb_result r;
            st = run_one(er, ec, sr, sc, o, td, t, i, logits, gen, &r);
            if (st == QV_OK) st = o->on_result(o->user, &r);
            qv_lb_result_free(&r);
            if (st != QV_OK) {
                qv_fail_prefix(st, "longbench: task %s sample %zu", td->name, i);
                break;
            }
            if (o->progress) o->progress(o->progress_user, ++done, todo);
        }
    }
    if (sr >= 0) qv_engine_seq_free(er, sr);
    if (sc >= 0) qv_engine_seq_free(ec, sc);
    free(logits);
    free(gen[0]), free(gen[1]);
    return st;
}

cJSON *qv_lb_result_json(const qv_lb_result *r, const char *task)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task", task);
    cJSON_AddNumberToObject(o, "index", r->index);
    if (r->id) cJSON_AddStringToObject(o, "_id", r->id);
    else cJSON_AddNullToObject(o, "_id");
    if (isnan(r->length)) cJSON_AddNullToObject(o, "length");
    else cJSON_AddNumberToObject(o, "length", r->length);
    cJSON_AddNumberToObject(o, "n_full", r->n_full);
    cJSON_AddNumberToObject(o, "n_prompt", r->n_prompt);
    cJSON_AddBoolToObject(o, "truncated", r->truncated);
    cJSON_AddItemToObject(o, "answers", cJSON_Duplicate(r->answers, 1));
    cJSON_AddItemToObject(o, "all_classes", r->all_classes ? cJSON_Duplicate(r->all_classes, 1) : cJSON_CreateNull());
    const char *who[2] = {"ref", "cand"};
    for (int w = 0; w < 2; w++) {
        cJSON *e = cJSON_AddObjectToObject(o, who[w]);
        cJSON_AddStringToObject(e, "pred", r->pred[w] ? r->pred[w] : "");
        cJSON_AddNumberToObject(e, "n_gen", r->n_gen[w]);
        cJSON_AddStringToObject(e, "stop", r->stop[w] == QV_LB_STOP_EOS ? "eos" : "max");
    }
    cJSON_AddNumberToObject(o, "agree_tokens", r->agree);
    return o;
}

static int get_int(const cJSON *o, const char *k, int lo, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo || v->valuedouble > 1e9) return -1;
    *out = (int)v->valuedouble;
    return 0;
}

qv_status qv_lb_result_from_json(const cJSON *o, const char *path, const char *const *tasks, int ntasks, qv_lb_result *r)
{
    memset(r, 0, sizeof *r);
    r->length = NAN;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "task");
    if (!cJSON_IsString(t)) return qv_fail(QV_ERR_INPUT, "%s: a sample has no \"task\"", path);
    r->task = -1;
    for (int k = 0; k < ntasks; k++)
        if (!strcmp(tasks[k], t->valuestring)) r->task = k;
    if (r->task < 0) return qv_fail(QV_ERR_INPUT, "%s: sample of task '%s', which the run's meta does not list", path, t->valuestring);
    int tr = 0;
    if (get_int(o, "index", 0, &r->index) || get_int(o, "n_full", 0, &r->n_full) || get_int(o, "n_prompt", 0, &r->n_prompt) ||
        get_int(o, "agree_tokens", 0, &r->agree))
        return qv_fail(QV_ERR_INPUT, "%s: task %s: a sample lacks index / n_full / n_prompt / agree_tokens", path, t->valuestring);
    const cJSON *trn = cJSON_GetObjectItemCaseSensitive(o, "truncated");
    if (!cJSON_IsBool(trn)) return qv_fail(QV_ERR_INPUT, "%s: task %s sample %d: \"truncated\" is not a bool", path, t->valuestring, r->index);
    tr = cJSON_IsTrue(trn);
    r->truncated = tr;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "_id"), *len = cJSON_GetObjectItemCaseSensitive(o, "length");
    if (cJSON_IsNumber(len)) r->length = len->valuedouble;
    const cJSON *ans = cJSON_GetObjectItemCaseSensitive(o, "answers"), *ac = cJSON_GetObjectItemCaseSensitive(o, "all_classes");
    if (!cJSON_IsArray(ans)) return qv_fail(QV_ERR_INPUT, "%s: task %s sample %d: \"answers\" is not a list", path, t->valuestring, r->index);
    const char *who[2] = {"ref", "cand"};
    for (int w = 0; w < 2; w++) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, who[w]);
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "pred"), *s = cJSON_GetObjectItemCaseSensitive(e, "stop");
        if (!cJSON_IsString(p) || !cJSON_IsString(s) || get_int(e, "n_gen", 0, &r->n_gen[w])) {
            qv_lb_result_free(r);
            return qv_fail(QV_ERR_INPUT, "%s: task %s sample %d: \"%s\" needs pred, n_gen, stop", path, t->valuestring,
                           r->index, who[w]);
        }
        r->pred[w] = strdup(p->valuestring);
        r->stop[w] = !strcmp(s->valuestring, "eos") ? QV_LB_STOP_EOS : QV_LB_STOP_MAX;
    }
    r->id = cJSON_IsString(id) ? dup_or_null(id->valuestring) : NULL;
    r->answers = cJSON_Duplicate(ans, 1);
    r->all_classes = ac ? cJSON_Duplicate(ac, 1) : cJSON_CreateNull();
    if (!r->pred[0] || !r->pred[1] || !r->answers || !r->all_classes) {
        qv_lb_result_free(r);
        return qv_fail(QV_ERR_NOMEM, "%s: out of memory", path);
    }
    return QV_OK;
}
