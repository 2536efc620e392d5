/* LongBench's pred.py with an engine: the prompt (template, middle truncation, chat wrapping) and
 * greedy generation. See include/qvet/eval_longbench.h for the exact rules followed. */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qvet/eval_longbench.h"

int qv_lb_task_no_chat(const char *task)
{
    static const char *const no_chat[] = {"trec", "triviaqa", "samsum", "lsht", "lcc", "repobench-p"};
    for (size_t i = 0; i < sizeof no_chat / sizeof no_chat[0]; i++)
        if (!strcmp(task, no_chat[i])) return 1;
    return 0;
}

void qv_lb_clean_up_tokenization(char *s)
{
    static const char *const from[] = {" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've", " 're"};
    for (size_t r = 0; r < sizeof from / sizeof from[0]; r++) {
        /* str.replace: non-overlapping matches left to right; the output drops the leading space
         * (and " ' " becomes "'"), so it never grows and can be written in place */
        size_t fl = strlen(from[r]), w = 0;
        for (size_t i = 0; s[i];) {
            if (!strncmp(s + i, from[r], fl)) {
                if (r == 4) s[w++] = '\'';
                else {
                    memmove(s + w, s + i + 1, fl - 1);
                    w += fl - 1;
                }
                i += fl;
            } else s[w++] = s[i++];
        }
        s[w] = 0;
    }
}

qv_status qv_lb_decode_skip_special(const qv_tok *tok, const int32_t *ids, size_t n, int clean_up, char **text)
{
    int32_t *keep = malloc((n ? n : 1) * sizeof *keep);
    if (!keep) return qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!qv_tok_is_special(tok, ids[i])) keep[k++] = ids[i];
    qv_status st = qv_tok_decode(tok, keep, k, text, NULL);
    free(keep);
    if (st == QV_OK && clean_up) qv_lb_clean_up_tokenization(*text);
    return st;
}

/* tmpl.format(**sample): Python formats str fields as themselves and int fields as str(int);
 * other types (lists, null, floats) are not offered, so a template naming one fails clearly. */
static qv_status fill_template(const char *tmpl, const cJSON *sample, char **out)
{
    int n = cJSON_GetArraySize(sample), k = 0;
    const char **names = calloc((size_t)n + 1, sizeof *names), **vals = calloc((size_t)n + 1, sizeof *vals);
    char (*nums)[32] = calloc((size_t)n + 1, sizeof *nums);
    qv_status st = names && vals && nums ? QV_OK : qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
    for (const cJSON *f = st == QV_OK ? sample->child : NULL; f; f = f->next) {
        if (cJSON_IsString(f)) vals[k] = f->valuestring;
        else if (cJSON_IsNumber(f) && f->valuedouble == floor(f->valuedouble) && fabs(f->valuedouble) < 1e15) {
            snprintf(nums[k], sizeof nums[k], "%.0f", f->valuedouble);
            vals[k] = nums[k];
        } else continue;
        names[k++] = f->string;
    }
    if (st == QV_OK) st = qv_lb_format(tmpl, names, vals, (size_t)k, out);
    free(names), free(vals), free(nums);
    return st;
}

static qv_status wrap_chat(const char *chat, const char *prompt, char **out)
{
    const char *at = strstr(chat, "{prompt}");
    if (!at || strstr(at + 8, "{prompt}"))
        return qv_fail(QV_ERR_USAGE, "chat template '%s' must hold exactly one {prompt}", chat);
    size_t a = (size_t)(at - chat), p = strlen(prompt), b = strlen(at + 8);
    char *s = malloc(a + p + b + 1);
    if (!s) return qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
    memcpy(s, chat, a);
    memcpy(s + a, prompt, p);
    memcpy(s + a + p, at + 8, b + 1);
    *out = s;
    return QV_OK;
}

qv_status qv_lb_build_prompt(const qv_lb_prompt_opts *o, const char *task, const char *tmpl, const cJSON *sample,
                             int32_t **ids, size_t *n, size_t *n_full, int *truncated)
{
    *ids = NULL;
    *n = 0;
    *truncated = 0;
    char *prompt = NULL;
    QV_TRY(fill_template(tmpl, sample, &prompt));
    int32_t *t = NULL;
    size_t nt = 0;
    qv_status st = qv_tok_encode(o->tok, prompt, strlen(prompt), 1, &t, &nt);
    *n_full = nt;
    if (st == QV_OK && nt > o->max_length && o->max_length / 2 > 0) {
        /* pred.py: half = int(max_length/2); decode both halves (skip_special_tokens) and join the text */
        size_t half = o->max_length / 2;
        char *a = NULL, *b = NULL;
        st = qv_lb_decode_skip_special(o->tok, t, half, o->clean_up, &a);
        if (st == QV_OK) st = qv_lb_decode_skip_special(o->tok, t + nt - half, half, o->clean_up, &b);
        if (st == QV_OK) {
            size_t la = strlen(a), lb = strlen(b);
            char *j = malloc(la + lb + 1);
            if (!j) st = qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
            else {
                memcpy(j, a, la);
                memcpy(j + la, b, lb + 1);
                free(prompt);
                prompt = j;
                *truncated = 1;
            }
        }
        free(a), free(b);
    }
    if (st == QV_OK && o->chat && !qv_lb_task_no_chat(task)) {
        char *w = NULL;
        st = wrap_chat(o->chat, prompt, &w);
        if (st == QV_OK) free(prompt), prompt = w;
    }
    if (st == QV_OK && (*truncated || (o->chat && !qv_lb_task_no_chat(task)))) {
        free(t);
        t = NULL;
        st = qv_tok_encode(o->tok, prompt, strlen(prompt), 1, &t, &nt);
    }
    free(prompt);
    if (st != QV_OK) {
        free(t);
        return st;
    }
    if (nt == 0) {
        free(t);
        return qv_fail(QV_ERR_INPUT, "longbench: task %s: the prompt has no tokens", task);
    }
    *ids = t;
    *n = nt;
    return QV_OK;
}

static int is_stop(const qv_lb_gen_opts *o, int32_t id)
{
    for (int i = 0; i < o->n_stop; i++)
        if (o->stop[i] == id) return 1;
    return 0;
}

qv_status qv_lb_generate(qv_engine *e, qv_seq_id s, const int32_t *prompt, int n_prompt, const qv_lb_gen_opts *o,
                         float *logits, int32_t *out, int *n_out, int *stop)
{
    *n_out = 0;
    *stop = QV_LB_STOP_MAX;
    int V = e->model->cfg.vocab_size, maxp = e->model->cfg.max_position_embeddings;
    /* the last generated token is never fed back, so prompt + max_new - 1 positions are used */
    if ((int64_t)n_prompt + o->max_new - 1 > maxp)
        return qv_fail(QV_ERR_INPUT, "prompt of %d tokens + %d generated exceed the model's %d positions (lower --max-length)",
                       n_prompt, o->max_new, maxp);
    QV_TRY(qv_engine_seq_reset(e, s));
    QV_TRY(qv_engine_prefill(e, 1, &s, &prompt, &n_prompt, 1, logits));
    for (int k = 0; k < o->max_new; k++) {
        int32_t best = -1;
        for (int32_t v = 0; v < V; v++) {
            if (k < o->min_new && is_stop(o, v)) continue; /* MinLengthLogitsProcessor: -inf */
            if (best < 0 || logits[v] > logits[best]) best = v;
        }
        if (best < 0) return qv_fail(QV_ERR_INPUT, "longbench: every token is a stop token");
        out[(*n_out)++] = best;
        if (is_stop(o, best)) {
            *stop = QV_LB_STOP_EOS;
            break;
        }
        if (k + 1 < o->max_new) QV_TRY(qv_engine_decode(e, 1, &s, &best, logits));
    }
    return QV_OK;
}

void qv_lb_result_free(qv_lb_result *r)
{
    free(r->id);
    free(r->pred[0]);
    free(r->pred[1]);
    cJSON_Delete(r->answers);
    cJSON_Delete(r->all_classes);
    memset(r, 0, sizeof *r);
}
