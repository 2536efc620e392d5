/* Needle-in-a-haystack and passkey grids (EVALS.md); see include/qvet/eval_niah.h. */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qvet/eval_compare.h"
#include "qvet/eval_niah.h"

static const char *NIAH_NEEDLE = " The special magic number is %s.";
static const char *NIAH_QUESTION = "\n\nQuestion: what is the special magic number mentioned in the text above?"
                                   " Answer: The special magic number is";
static const char *PK_FILLER = " The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";
static const char *PK_NEEDLE = " The pass key is %s. Remember it. %s is the pass key.";
static const char *PK_QUESTION = "\n\nWhat is the pass key? The pass key is";

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static qv_status enc(qv_tok *tok, const char *s, int bos, int32_t **ids, size_t *n)
{
    return qv_tok_encode(tok, s, strlen(s), bos, ids, n);
}

qv_status qv_niah_haystack_ids(const qv_niah_opts *o, int32_t **ids, int64_t *n)
{
    size_t k = 0;
    qv_status st;
    if (o->passkey) {
        st = enc(o->tok, PK_FILLER, 0, ids, &k);
    } else {
        if (!o->haystack || o->haystack_len == 0) return qv_fail(QV_ERR_INPUT, "niah: empty haystack");
        st = qv_tok_encode(o->tok, o->haystack, o->haystack_len, 0, ids, &k);
    }
    if (st == QV_OK && k == 0) st = qv_fail(QV_ERR_INPUT, "niah: the haystack has no tokens");
    *n = (int64_t)k;
    return st;
}

/* 1 if token id's text ends a sentence or a line (a place to insert the needle) */
static int ends_sentence(const qv_tok *tok, int32_t id)
{
    char *t = NULL;
    size_t n = 0;
    int r = 0;
    if (qv_tok_decode(tok, &id, 1, &t, &n) == QV_OK && n > 0) r = t[n - 1] == '.' || t[n - 1] == '\n';
    free(t);
    return r;
}

qv_status qv_niah_build(const qv_niah_opts *o, const int32_t *hay, int64_t n_hay, int max_pos, int li,
                        int di, int32_t **ids, qv_niah_cell *c)
{
    *ids = NULL;
    memset(c, 0, sizeof *c);
    c->li = li;
    c->di = di;
    c->cell = li * o->n_depths + di;
    c->length = o->lengths[li];
    c->depth = o->depths[di];
    uint64_t s = o->seed * 0x100000001b3ull + (uint64_t)(li * 1000 + di) + 1;
    snprintf(c->number, sizeof c->number, "%07u", (unsigned)(1000000 + splitmix(&s) % 9000000));
    char needle[256], answer[16];
    if (o->passkey) snprintf(needle, sizeof needle, PK_NEEDLE, c->number, c->number);
    else snprintf(needle, sizeof needle, NIAH_NEEDLE, c->number);
    snprintf(answer, sizeof answer, " %s", c->number);
    int32_t *bos = NULL, *nd = NULL, *q = NULL, *an = NULL;
    size_t nb = 0, nn = 0, nq = 0, na = 0;
    qv_status st = enc(o->tok, "", qv_tok_bos_id(o->tok) >= 0, &bos, &nb);
    if (st == QV_OK) st = enc(o->tok, needle, 0, &nd, &nn);
    if (st == QV_OK) st = enc(o->tok, o->passkey ? PK_QUESTION : NIAH_QUESTION, 0, &q, &nq);
    if (st == QV_OK) st = enc(o->tok, answer, 0, &an, &na);
    int64_t L = c->length;
    if (st == QV_OK && L + (int64_t)na > max_pos) L = max_pos - (int64_t)na; /* capped at the model's max */
    int64_t B = L - (int64_t)(nb + nn + nq);
    if (st == QV_OK && B < 0)
        st = qv_fail(QV_ERR_INPUT, "niah: length %d is shorter than the needle and question (%zu tokens)",
                     c->length, nb + nn + nq);
    int32_t *v = st == QV_OK ? qv_malloc(sizeof(int32_t) * (size_t)(L + (int64_t)na)) : NULL;
    if (st == QV_OK && !v) st = QV_ERR_NOMEM;
    if (st == QV_OK) {
        int64_t at = (int64_t)llround(c->depth * (double)B), k = 0;
        /* move back to just after a sentence end (at most 64 tokens), so the needle reads as a sentence */
        for (int64_t b = at; b > 0 && b > at - 64; b--)
            if (ends_sentence(o->tok, hay[(b - 1) % n_hay])) {
                at = b;
                break;
            }
        memcpy(v, bos, sizeof(int32_t) * nb);
        k = (int64_t)nb;
        for (int64_t i = 0; i < at; i++) v[k++] = hay[i % n_hay];
        c->needle_at = (int)k;
        memcpy(v + k, nd, sizeof(int32_t) * nn);
        k += (int64_t)nn;
        for (int64_t i = at; i < B; i++) v[k++] = hay[i % n_hay];
        memcpy(v + k, q, sizeof(int32_t) * nq);
        k += (int64_t)nq;
        c->n_prompt = (int)k;
        memcpy(v + k, an, sizeof(int32_t) * na);
        c->n_answer = (int)na;
        *ids = v;
    }
    free(bos), free(nd), free(q), free(an);
    return st;
}

static qv_status run_cell(qv_engine *e, qv_seq_id sq, const int32_t *ids, qv_niah_cell *c, int which, float *logits)
{
    int V = e->model->cfg.vocab_size, n = c->n_prompt + c->n_answer;
    QV_TRY(qv_engine_seq_reset(e, sq));
    QV_TRY(qv_engine_prefill(e, 1, &sq, &ids, &n, c->n_answer + 1, logits));
    double lp = 0;
    int match = 0, broken = 0;
    for (int k = 0; k < c->n_answer; k++) {
        const float *row = logits + (size_t)k * V;
        int32_t y = ids[c->n_prompt + k];
        lp -= qv_nll_fp32(row, V, y);
        int am = 0;
        for (int v = 1; v < V; v++)
            if (row[v] > row[am]) am = v;
        if (am == y && !broken) match++;
        else broken = 1;
    }
    c->lp[which] = lp / c->n_answer;
    c->match[which] = match;
    c->hit[which] = match == c->n_answer;
    return QV_OK;
}

qv_status qv_eval_niah(qv_engine *er, qv_engine *ec, const qv_niah_opts *o)
{
    if (er->model->cfg.vocab_size != ec->model->cfg.vocab_size)
        return qv_fail(QV_ERR_INPUT, "niah: reference vocab %d != candidate vocab %d", er->model->cfg.vocab_size,
                       ec->model->cfg.vocab_size);
    if (o->n_lengths < 1 || o->n_depths < 1) return qv_fail(QV_ERR_USAGE, "niah: empty grid");
    for (int d = 0; d < o->n_depths; d++)
        if (!(o->depths[d] >= 0 && o->depths[d] <= 1)) return qv_fail(QV_ERR_USAGE, "niah: depth %g outside [0, 1]", o->depths[d]);
    int sn = o->shard_n > 0 ? o->shard_n : 1, cells = o->n_lengths * o->n_depths, V = er->model->cfg.vocab_size;
    int maxp = er->model->cfg.max_position_embeddings;
    if (ec->model->cfg.max_position_embeddings < maxp) maxp = ec->model->cfg.max_position_embeddings;
    int64_t todo = 0, done = 0;
    for (int k = o->shard_i; k < cells; k += sn) todo += !(o->have && o->have[k]);
    int32_t *hay = NULL;
    int64_t n_hay = 0;
    QV_TRY(qv_niah_haystack_ids(o, &hay, &n_hay));
    float *logits = qv_malloc(sizeof(float) * 64 * (size_t)V);
    qv_seq_id sr = -1, sc = -1;
    qv_status st = logits ? qv_engine_seq_create(er, 1, &sr) : QV_ERR_NOMEM;
    if (st == QV_OK) st = qv_engine_seq_create(ec, 1, &sc);
    if (st == QV_OK && o->progress && todo) o->progress(o->progress_user, 0, todo);
    for (int k = o->shard_i; k < cells && st == QV_OK; k += sn) {
        if (o->have && o->have[k]) continue;
        int32_t *ids = NULL;
        qv_niah_cell c;
        st = qv_niah_build(o, hay, n_hay, maxp, k / o->n_depths, k % o->n_depths, &ids, &c);
        if (st == QV_OK && c.n_answer > 63) st = qv_fail(QV_ERR_INPUT, "niah: the answer has %d tokens", c.n_answer);
        if (st == QV_OK) st = run_cell(er, sr, ids, &c, 0, logits);
        if (st == QV_OK) st = run_cell(ec, sc, ids, &c, 1, logits);
        if (st == QV_OK) st = o->on_cell(o->user, &c);
        free(ids);
        if (st != QV_OK) {
            qv_fail_prefix(st, "niah: cell length %d depth %g", o->lengths[k / o->n_depths], o->depths[k % o->n_depths]);
            break;
        }
        if (o->progress) o->progress(o->progress_user, ++done, todo);
    }
    if (sr >= 0) qv_engine_seq_free(er, sr);
    if (sc >= 0) qv_engine_seq_free(ec, sc);
    free(logits);
    free(hay);
    return st;
}

cJSON *qv_niah_cell_json(const qv_niah_cell *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "cell", c->cell);
    cJSON_AddNumberToObject(o, "li", c->li);
    cJSON_AddNumberToObject(o, "di", c->di);
    cJSON_AddNumberToObject(o, "length", c->length);
    cJSON_AddNumberToObject(o, "depth", c->depth);
    cJSON_AddNumberToObject(o, "n_prompt", c->n_prompt);
    cJSON_AddNumberToObject(o, "needle_at", c->needle_at);
    cJSON_AddStringToObject(o, "number", c->number);
    cJSON_AddNumberToObject(o, "n_answer", c->n_answer);
    const char *who[2] = {"ref", "cand"};
    for (int w = 0; w < 2; w++) {
        cJSON *e = cJSON_AddObjectToObject(o, who[w]);
        cJSON_AddNumberToObject(e, "hit", c->hit[w]);
        cJSON_AddNumberToObject(e, "match", c->match[w]);
        cJSON_AddItemToObject(e, "lp", qv_json_exact(c->lp[w]));
    }
    return o;
}

static int gnum(const cJSON *o, const char *k, double *x)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v)) return -1;
    *x = v->valuedouble;
    return 0;
}

qv_status qv_niah_cell_from_json(const cJSON *o, const char *path, qv_niah_cell *c)
{
    memset(c, 0, sizeof *c);
    double x[8];
    const char *ks[8] = {"cell", "li", "di", "length", "depth", "n_prompt", "needle_at", "n_answer"};
    for (int i = 0; i < 8; i++)
        if (gnum(o, ks[i], &x[i])) return qv_fail(QV_ERR_INPUT, "%s: a cell has no number \"%s\"", path, ks[i]);
    c->cell = (int)x[0], c->li = (int)x[1], c->di = (int)x[2], c->length = (int)x[3], c->depth = x[4];
    c->n_prompt = (int)x[5], c->needle_at = (int)x[6], c->n_answer = (int)x[7];
    const cJSON *num = cJSON_GetObjectItemCaseSensitive(o, "number");
    if (!cJSON_IsString(num) || strlen(num->valuestring) != 7) return qv_fail(QV_ERR_INPUT, "%s: cell %d: bad \"number\"", path, c->cell);
    memcpy(c->number, num->valuestring, 8);
    const char *who[2] = {"ref", "cand"};
    for (int w = 0; w < 2; w++) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, who[w]);
        double h, m, lp;
        if (gnum(e, "hit", &h) || gnum(e, "match", &m) || gnum(e, "lp", &lp))
            return qv_fail(QV_ERR_INPUT, "%s: cell %d: \"%s\" needs hit, match, lp", path, c->cell, who[w]);
        c->hit[w] = (int)h, c->match[w] = (int)m, c->lp[w] = lp;
    }
    return QV_OK;
}

static cJSON *grid(int nl, int nd)
{
    cJSON *g = cJSON_CreateArray();
    for (int l = 0; l < nl; l++) {
        cJSON *r = cJSON_CreateArray();
        for (int d = 0; d < nd; d++) cJSON_AddItemToArray(r, cJSON_CreateNull());
        cJSON_AddItemToArray(g, r);
    }
    return g;
}

static void gset(cJSON *g, int l, int d, double v)
{
    cJSON_ReplaceItemInArray(cJSON_GetArrayItem(g, l), d, cJSON_CreateNumber(v));
}

cJSON *qv_niah_summary_json(const qv_niah_cell *cells, int n, int nl, int nd)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *g[6] = {grid(nl, nd), grid(nl, nd), grid(nl, nd), grid(nl, nd), grid(nl, nd), grid(nl, nd)};
    double hr = 0, hc = 0, lr = 0, lc = 0, worst = INFINITY;
    /* sums in cell order, whatever order the cells came in (resume / merge give one run's bits) */
    for (int k = 0; k < nl * nd; k++)
        for (int i = 0; i < n; i++) {
            const qv_niah_cell *c = &cells[i];
            if (c->cell != k) continue;
            hr += c->hit[0], hc += c->hit[1], lr += c->lp[0], lc += c->lp[1];
            if (c->lp[1] - c->lp[0] < worst) worst = c->lp[1] - c->lp[0];
            gset(g[0], c->li, c->di, c->hit[0]);
            gset(g[1], c->li, c->di, c->hit[1]);
            gset(g[2], c->li, c->di, c->lp[0]);
            gset(g[3], c->li, c->di, c->lp[1]);
            gset(g[4], c->li, c->di, c->lp[1] - c->lp[0]);
            gset(g[5], c->li, c->di, c->n_prompt);
        }
    cJSON_AddNumberToObject(o, "cells", n);
    if (n > 0) {
        cJSON_AddNumberToObject(o, "hit_rate_ref", hr / n);
        cJSON_AddNumberToObject(o, "hit_rate_cand", hc / n);
        cJSON_AddNumberToObject(o, "hit_rate_delta", (hc - hr) / n);
        cJSON_AddNumberToObject(o, "lp_mean_ref", lr / n);
        cJSON_AddNumberToObject(o, "lp_mean_cand", lc / n);
        cJSON_AddNumberToObject(o, "lp_delta_mean", (lc - lr) / n);
        cJSON_AddNumberToObject(o, "lp_delta_min", worst);
    }
    const char *names[6] = {"hit_ref", "hit_cand", "lp_ref", "lp_cand", "lp_delta", "n_prompt"};
    for (int i = 0; i < 6; i++) cJSON_AddItemToObject(o, names[i], g[i]);
    return o;
}
