/* ppl results as JSON, resumable and mergeable (qvet/eval_ppl.h says why chunks are stored). */
#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qvet/eval_compare.h"
#include "qvet/eval_ppl.h"

qv_status qv_ppl_set_add(qv_ppl_set *s, const qv_ppl_chunk *c)
{
    for (int i = 0; i < s->n; i++)
        if (s->v[i].index == c->index) return qv_fail(QV_ERR_INPUT, "chunk %d appears twice", c->index);
    if (c->n < 1) return qv_fail(QV_ERR_INPUT, "chunk %d: %d scored positions", c->index, c->n);
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 32;
        qv_ppl_chunk *v = realloc(s->v, sizeof *v * (size_t)cap);
        if (!v) return qv_fail(QV_ERR_NOMEM, "ppl: out of memory");
        s->v = v, s->cap = cap;
    }
    s->v[s->n++] = *c;
    return QV_OK;
}

void qv_ppl_set_free(qv_ppl_set *s)
{
    free(s->v);
    *s = (qv_ppl_set){0};
}

static int by_index(const void *a, const void *b)
{
    int x = ((const qv_ppl_chunk *)a)->index, y = ((const qv_ppl_chunk *)b)->index;
    return (x > y) - (x < y);
}

qv_status qv_ppl_set_stats(qv_ppl_set *s, qv_ppl_result *r)
{
    *r = (qv_ppl_result){0};
    if (s->n < 1) return qv_fail(QV_ERR_INPUT, "ppl: no chunks to summarize");
    qsort(s->v, (size_t)s->n, sizeof *s->v, by_index);
    for (int i = 1; i < s->n; i++)
        if (s->v[i].n != s->v[0].n)
            return qv_fail(QV_ERR_INPUT, "ppl: chunk %d scores %d positions, chunk %d %d", s->v[i].index, s->v[i].n,
                           s->v[0].index, s->v[0].n);
    r->chunk_nll = qv_malloc(sizeof(double) * (size_t)s->n);
    if (!r->chunk_nll) return QV_ERR_NOMEM;
    /* the same division qv_eval_ppl does, on the same double: the same chunk means */
    for (int i = 0; i < s->n; i++) r->chunk_nll[i] = s->v[i].nll_sum / s->v[i].n;
    r->ctx = s->v[0].n + 1;
    r->n_chunks = s->n;
    r->n_scored = (int64_t)s->n * s->v[0].n;
    qv_ppl_stats(r->chunk_nll, s->n, r);
    return QV_OK;
}

static cJSON *num(double x) { return isfinite(x) ? cJSON_CreateNumber(x) : cJSON_CreateNull(); }

static int meta_int(const cJSON *o, const char *k, int *v)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(x) || x->valuedouble != (double)(int)x->valuedouble) return -1;
    *v = (int)x->valuedouble;
    return 0;
}

/* ctx, n_chunks_total, shard i/n of a meta; -1 if one is missing or out of range */
static int meta_shape(const cJSON *meta, int *ctx, int *total, int *si, int *sn)
{
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(meta, "shard");
    if (!cJSON_IsObject(meta) || meta_int(meta, "ctx", ctx) || meta_int(meta, "n_chunks_total", total) ||
        meta_int(sh, "i", si) || meta_int(sh, "n", sn))
        return -1;
    return *ctx >= 2 && *total >= 1 && *sn >= 1 && *si >= 0 && *si < *sn ? 0 : -1;
}

qv_status qv_ppl_to_json(const cJSON *meta, qv_ppl_set *s, const cJSON *run, cJSON **out)
{
    int ctx, total, si, sn;
    *out = NULL;
    if (meta_shape(meta, &ctx, &total, &si, &sn))
        return qv_fail(QV_ERR_INTERNAL, "ppl: meta lacks ctx, n_chunks_total or shard");
    qsort(s->v, (size_t)s->n, sizeof *s->v, by_index);
    cJSON *j = cJSON_CreateObject();
    if (!j) return QV_ERR_NOMEM;
    cJSON_AddStringToObject(j, "schema", "qvet.ppl");
    cJSON_AddNumberToObject(j, "schema_version", QV_PPL_SCHEMA_VERSION);
    cJSON_AddItemToObject(j, "meta", cJSON_Duplicate(meta, 1));
    int expect = 0;
    for (int c = si; c < total; c += sn) expect++;
    cJSON_AddBoolToObject(j, "complete", s->n == expect);
    cJSON *ca = cJSON_AddArrayToObject(j, "chunks");
    for (int i = 0; i < s->n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", s->v[i].index);
        cJSON_AddNumberToObject(o, "n", s->v[i].n);
        cJSON_AddItemToObject(o, "nll_sum", qv_json_exact(s->v[i].nll_sum));
        cJSON_AddItemToArray(ca, o);
    }
    if (s->n > 0) {
        qv_ppl_result r;
        qv_status st = qv_ppl_set_stats(s, &r);
        if (st != QV_OK) {
            cJSON_Delete(j);
            return st;
        }
        cJSON *su = cJSON_AddObjectToObject(j, "summary");
        cJSON_AddNumberToObject(su, "chunks", r.n_chunks);
        cJSON_AddNumberToObject(su, "scored_tokens", (double)r.n_scored);
        cJSON_AddItemToObject(su, "ppl", num(r.ppl));
        cJSON *ci = cJSON_AddArrayToObject(su, "ppl_ci95");
        cJSON_AddItemToArray(ci, num(r.ppl_lo));
        cJSON_AddItemToArray(ci, num(r.ppl_hi));
        cJSON_AddItemToObject(su, "mean_nll", num(r.mean_nll));
        cJSON_AddItemToObject(su, "se_nll", num(r.se));
        qv_ppl_result_free(&r);
    }
    if (run) cJSON_AddItemToObject(j, "run", cJSON_Duplicate(run, 1));
    *out = j;
    return QV_OK;
}

qv_status qv_ppl_from_json(const cJSON *j, const char *path, cJSON **meta, qv_ppl_set *s, cJSON **run)
{
    *meta = NULL, *run = NULL;
    *s = (qv_ppl_set){0};
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(j, "schema"), *ver = cJSON_GetObjectItemCaseSensitive(j, "schema_version");
    if (!cJSON_IsString(sc) || strcmp(sc->valuestring, "qvet.ppl") != 0)
        return qv_fail(QV_ERR_INPUT, "%s: not a qvet ppl result (schema is not \"qvet.ppl\")", path);
    if (!cJSON_IsNumber(ver) || ver->valuedouble != QV_PPL_SCHEMA_VERSION)
        return qv_fail(QV_ERR_INPUT, "%s: schema_version %g, this qvet reads %d", path,
                       cJSON_IsNumber(ver) ? ver->valuedouble : 0.0, QV_PPL_SCHEMA_VERSION);
    const cJSON *me = cJSON_GetObjectItemCaseSensitive(j, "meta"), *ca = cJSON_GetObjectItemCaseSensitive(j, "chunks");
    int ctx, total, si, sn;
    if (meta_shape(me, &ctx, &total, &si, &sn))
        return qv_fail(QV_ERR_INPUT, "%s: meta is missing a field or has one out of range (ctx >= 2, n_chunks_total >= 1, "
                                     "shard {i, n} with 0 <= i < n)", path);
    if (!cJSON_IsArray(ca)) return qv_fail(QV_ERR_INPUT, "%s: no \"chunks\" array", path);
    qv_status st = QV_OK;
    int k = 0;
    for (const cJSON *o = ca->child; o && st == QV_OK; o = o->next, k++) {
        qv_ppl_chunk c;
        const cJSON *ns = cJSON_GetObjectItemCaseSensitive(o, "nll_sum");
        if (meta_int(o, "index", &c.index) || meta_int(o, "n", &c.n) || !cJSON_IsNumber(ns) || c.index < 0 ||
            c.index >= total || c.index % sn != si || c.n != ctx - 1 || !isfinite(ns->valuedouble)) {
            st = qv_fail(QV_ERR_INPUT, "%s: chunks[%d] is malformed (needs an index < n_chunks_total %d of shard %d/%d, "
                                       "n = ctx - 1 = %d, a finite nll_sum)", path, k, total, si, sn, ctx - 1);
            break;
        }
        c.nll_sum = ns->valuedouble;
        st = qv_ppl_set_add(s, &c);
        if (st != QV_OK) qv_fail_prefix(st, "%s", path);
    }
    if (st != QV_OK) {
        qv_ppl_set_free(s);
        return st;
    }
    const cJSON *rn = cJSON_GetObjectItemCaseSensitive(j, "run");
    *meta = cJSON_Duplicate(me, 1);
    *run = cJSON_IsObject(rn) ? cJSON_Duplicate(rn, 1) : NULL;
    if (!*meta) {
        qv_ppl_set_free(s);
        return QV_ERR_NOMEM;
    }
    return QV_OK;
}

static int skipped(const char *k, const char *const *skip)
{
    for (; skip && *skip; skip++)
        if (!strcmp(k, *skip)) return 1;
    return 0;
}

const char *qv_json_first_diff(const cJSON *a, const cJSON *b, const char *const *skip)
{
    for (const cJSON *x = a ? a->child : NULL; x; x = x->next) {
        if (skipped(x->string, skip)) continue;
        const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, x->string);
        if (!y || !cJSON_Compare(x, y, 1)) return x->string;
    }
    for (const cJSON *y = b ? b->child : NULL; y; y = y->next)
        if (!skipped(y->string, skip) && !cJSON_GetObjectItemCaseSensitive(a, y->string)) return y->string;
    return NULL;
}
