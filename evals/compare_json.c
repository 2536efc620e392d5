/* compare results as JSON: every chunk's sufficient statistics (doubles printed so they read
 * back bit for bit), so resume and merge recompute one run's summary exactly. */
#include <cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qvet/eval_compare.h"
#include "qvet/fileio.h"

void qv_cmp_meta_free(qv_cmp_meta *m)
{
    free(m->model), free(m->cand_model), free(m->ref), free(m->cand), free(m->quantized), free(m->text);
    free(m->command);
    *m = (qv_cmp_meta){0};
}

/* NaN/Inf are not JSON: written as null */
static cJSON *num(double x)
{
    return isfinite(x) ? cJSON_CreateNumber(x) : cJSON_CreateNull();
}

static void add_num(cJSON *o, const char *k, double x)
{
    cJSON_AddItemToObject(o, k, num(x));
}

static void add_str(cJSON *o, const char *k, const char *s)
{
    if (s) cJSON_AddStringToObject(o, k, s);
    else cJSON_AddNullToObject(o, k);
}

static cJSON *ci(double v, double lo, double hi)
{
    cJSON *o = cJSON_CreateObject();
    add_num(o, "value", v);
    add_num(o, "lo", lo);
    add_num(o, "hi", hi);
    return o;
}

cJSON *qv_cmp_summary_json(const qv_cmp_summary *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "chunks", s->n_chunks);
    cJSON_AddNumberToObject(o, "positions", (double)s->n_pos);
    cJSON_AddItemToObject(o, "ppl_ref", ci(s->ppl_ref.ppl, s->ppl_ref.ppl_lo, s->ppl_ref.ppl_hi));
    cJSON_AddItemToObject(o, "ppl_cand", ci(s->ppl_cand.ppl, s->ppl_cand.ppl_lo, s->ppl_cand.ppl_hi));
    cJSON_AddItemToObject(o, "ln_ppl_ratio", ci(s->ln_ratio, s->ln_ratio_lo, s->ln_ratio_hi));
    cJSON *k = cJSON_AddObjectToObject(o, "kld");
    cJSON_AddItemToObject(k, "mean", ci(s->kld_mean, s->kld_mean_lo, s->kld_mean_hi));
    add_num(k, "median", s->kld_median);
    add_num(k, "p90", s->kld_p90);
    add_num(k, "p99", s->kld_p99);
    add_num(k, "p99_9", s->kld_p999);
    add_num(k, "max", s->kld_max);
    cJSON_AddNumberToObject(k, "max_chunk", s->kld_max_chunk);
    cJSON_AddNumberToObject(k, "max_offset", s->kld_max_offset);
    cJSON_AddNumberToObject(k, "max_pos", (double)s->kld_max_pos);
    cJSON_AddNumberToObject(k, "max_token", s->kld_max_token);
    cJSON *h = cJSON_AddObjectToObject(k, "histogram");
    cJSON_AddNumberToObject(h, "log10_lo", s->hist_lo_log10);
    cJSON_AddNumberToObject(h, "log10_hi", s->hist_hi_log10);
    cJSON *hc = cJSON_AddArrayToObject(h, "counts");
    for (int i = 0; i < QV_CMP_HIST_BINS + 2; i++) cJSON_AddItemToArray(hc, cJSON_CreateNumber((double)s->hist[i]));
    cJSON *bp = cJSON_AddObjectToObject(k, "by_position");
    cJSON_AddNumberToObject(bp, "bucket_width", s->pos_bucket_width);
    cJSON *bm = cJSON_AddArrayToObject(bp, "mean");
    for (int i = 0; i < QV_CMP_POS_BUCKETS; i++) cJSON_AddItemToArray(bm, num(s->kld_by_pos[i]));
    cJSON_AddItemToObject(o, "top1_agreement", ci(s->top1, s->top1_lo, s->top1_hi));
    cJSON *d = cJSON_AddObjectToObject(o, "delta_p");
    add_num(d, "mean", s->dp_mean);
    add_num(d, "rms", s->dp_rms);
    add_num(d, "p1", s->dp_p1);
    add_num(d, "p99", s->dp_p99);
    return o;
}

/* cJSON prints 15 significant digits whenever they read back within an epsilon, which is not
 * exact: samples are printed with %.17g, which reads back bit for bit (C11 7.21.6.1 and a
 * correctly rounding strtod), so a resumed or merged summary equals one run's. */
cJSON *qv_json_exact(double x)
{
    char b[40];
    if (!isfinite(x)) return cJSON_CreateNull();
    snprintf(b, sizeof b, "%.17g", x);
    return cJSON_CreateRaw(b);
}

static cJSON *darr(const double *x, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, qv_json_exact(x[i]));
    return a;
}

qv_status qv_cmp_to_json(const qv_cmp_meta *m, qv_cmp_set *s, cJSON **out)
{
    *out = NULL;
    qv_cmp_set_sort(s);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "schema", "qvet.compare");
    cJSON_AddNumberToObject(j, "schema_version", QV_CMP_SCHEMA_VERSION);
    cJSON *me = cJSON_AddObjectToObject(j, "meta");
    add_str(me, "model", m->model);
    add_str(me, "cand_model", m->cand_model);
    add_str(me, "ref", m->ref);
    add_str(me, "cand", m->cand);
    add_str(me, "quantized", m->quantized);
    add_str(me, "text", m->text);
    cJSON_AddNumberToObject(me, "ctx", m->ctx);
    cJSON_AddBoolToObject(me, "bos", m->bos);
    cJSON_AddNumberToObject(me, "max_tokens", (double)m->max_tokens);
    cJSON_AddNumberToObject(me, "n_tokens", (double)m->n_tokens);
    cJSON_AddNumberToObject(me, "n_chunks_total", m->n_chunks_total);
    cJSON_AddStringToObject(me, "ids_fnv1a64", m->ids_hash);
    cJSON *sh = cJSON_AddObjectToObject(me, "shard");
    cJSON_AddNumberToObject(sh, "i", m->shard_i);
    cJSON_AddNumberToObject(sh, "n", m->shard_n);
    add_str(me, "command", m->command);
    int expect = 0;
    for (int c = m->shard_i; c < m->n_chunks_total; c += m->shard_n > 0 ? m->shard_n : 1) expect++;
    cJSON_AddBoolToObject(j, "complete", s->n == expect);
    cJSON *ca = cJSON_AddArrayToObject(j, "chunks");
    for (int i = 0; i < s->n; i++) {
        const qv_cmp_chunk *c = &s->v[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", c->index);
        cJSON_AddNumberToObject(o, "n", c->n);
        cJSON_AddItemToObject(o, "nll_ref_sum", qv_json_exact(c->nll_ref));
        cJSON_AddItemToObject(o, "nll_cand_sum", qv_json_exact(c->nll_cand));
        cJSON_AddNumberToObject(o, "top1", (double)c->top1);
        cJSON_AddItemToObject(o, "kld", darr(c->kld, c->n));
        cJSON_AddItemToObject(o, "delta_p", darr(c->dp, c->n));
        cJSON *t = cJSON_AddArrayToObject(o, "target");
        for (int q = 0; q < c->n; q++) cJSON_AddItemToArray(t, cJSON_CreateNumber(c->target[q]));
        cJSON_AddItemToArray(ca, o);
    }
    if (s->n > 0) {
        qv_cmp_summary sum;
        qv_status st = qv_cmp_summarize(s, &sum);
        if (st != QV_OK) {
            cJSON_Delete(j);
            return st;
        }
        cJSON_AddItemToObject(j, "summary", qv_cmp_summary_json(&sum));
    }
    *out = j;
    return QV_OK;
}

static char *dupstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
}

static int getnum(const cJSON *o, const char *k, double *x)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v)) return -1;
    *x = v->valuedouble;
    return 0;
}

qv_status qv_cmp_from_json(const cJSON *j, const char *path, qv_cmp_meta *m, qv_cmp_set *s)
{
    *m = (qv_cmp_meta){0};
    *s = (qv_cmp_set){0};
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(j, "schema");
    double ver = 0;
    if (!cJSON_IsString(sc) || strcmp(sc->valuestring, "qvet.compare") != 0)
        return qv_fail(QV_ERR_INPUT, "%s: not a qvet compare result (schema is not \"qvet.compare\")", path);
    if (getnum(j, "schema_version", &ver) || ver != QV_CMP_SCHEMA_VERSION)
        return qv_fail(QV_ERR_INPUT, "%s: schema_version %g, this qvet reads %d", path, ver, QV_CMP_SCHEMA_VERSION);
    const cJSON *me = cJSON_GetObjectItemCaseSensitive(j, "meta");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(me, "shard");
    double ctx, mt, nt, nct, si, sn;
    if (!cJSON_IsObject(me) || getnum(me, "ctx", &ctx) || getnum(me, "max_tokens", &mt) ||
        getnum(me, "n_tokens", &nt) || getnum(me, "n_chunks_total", &nct) || getnum(sh, "i", &si) ||
        getnum(sh, "n", &sn) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(me, "ids_fnv1a64")))
        return qv_fail(QV_ERR_INPUT, "%s: meta is missing a field (ctx, max_tokens, n_tokens, n_chunks_total, shard, ids_fnv1a64)", path);
    m->model = dupstr(me, "model");
    m->cand_model = dupstr(me, "cand_model");
    m->ref = dupstr(me, "ref");
    m->cand = dupstr(me, "cand");
    m->quantized = dupstr(me, "quantized");
    m->text = dupstr(me, "text");
    m->command = dupstr(me, "command");
    m->ctx = (int)ctx;
    m->bos = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(me, "bos"));
    m->max_tokens = (int64_t)mt;
    m->n_tokens = (int64_t)nt;
    m->n_chunks_total = (int)nct;
    m->shard_i = (int)si;
    m->shard_n = (int)sn;
    snprintf(m->ids_hash, sizeof m->ids_hash, "%s", cJSON_GetObjectItemCaseSensitive(me, "ids_fnv1a64")->valuestring);
    const cJSON *ca = cJSON_GetObjectItemCaseSensitive(j, "chunks");
    if (!cJSON_IsArray(ca)) {
        qv_cmp_meta_free(m);
        return qv_fail(QV_ERR_INPUT, "%s: no \"chunks\" array", path);
    }
    qv_status st = QV_OK;
    int k = 0;
    for (const cJSON *o = ca->child; o && st == QV_OK; o = o->next, k++) {
        double idx, n, nr, nc, t1;
        const cJSON *kl = cJSON_GetObjectItemCaseSensitive(o, "kld"), *dp = cJSON_GetObjectItemCaseSensitive(o, "delta_p");
        const cJSON *tg = cJSON_GetObjectItemCaseSensitive(o, "target");
        if (getnum(o, "index", &idx) || getnum(o, "n", &n) || getnum(o, "nll_ref_sum", &nr) ||
            getnum(o, "nll_cand_sum", &nc) || getnum(o, "top1", &t1) || !cJSON_IsArray(kl) ||
            !cJSON_IsArray(dp) || !cJSON_IsArray(tg) || n < 1 || n != m->ctx - 1 ||
            cJSON_GetArraySize(kl) != (int)n || cJSON_GetArraySize(dp) != (int)n || cJSON_GetArraySize(tg) != (int)n ||
            idx < 0 || idx >= m->n_chunks_total) {
            st = qv_fail(QV_ERR_INPUT, "%s: chunks[%d] is malformed (needs index < n_chunks_total, n = ctx - 1, and kld/delta_p/target arrays of n numbers)", path, k);
            break;
        }
        qv_cmp_chunk c = {.index = (int)idx, .n = (int)n, .nll_ref = nr, .nll_cand = nc, .top1 = (int64_t)t1};
        c.kld = qv_malloc(sizeof(double) * (size_t)n);
        c.dp = qv_malloc(sizeof(double) * (size_t)n);
        c.target = qv_malloc(sizeof(int32_t) * (size_t)n);
        if (!c.kld || !c.dp || !c.target) st = QV_ERR_NOMEM;
        int q = 0;
        for (const cJSON *a = kl->child, *b = dp->child, *t = tg->child; st == QV_OK && a; a = a->next, b = b->next, t = t->next, q++) {
            if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b) || !cJSON_IsNumber(t))
                st = qv_fail(QV_ERR_INPUT, "%s: chunks[%d]: item %d is not a number", path, k, q);
            else {
                c.kld[q] = a->valuedouble;
                c.dp[q] = b->valuedouble;
                c.target[q] = (int32_t)t->valuedouble;
            }
        }
        if (st == QV_OK) {
            st = qv_cmp_set_add(s, &c);
            if (st != QV_OK) qv_fail_prefix(st, "%s", path);
        }
        qv_cmp_chunk_free(&c);
    }
    if (st != QV_OK) {
        qv_cmp_meta_free(m);
        qv_cmp_set_free(s);
    }
    return st;
}

static int strdiff(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

int qv_cmp_meta_differs(const qv_cmp_meta *a, const qv_cmp_meta *b, const char **what)
{
#define QV_DIFF(cond, name) \
    if (cond) {             \
        *what = name;       \
        return 1;           \
    }
    QV_DIFF(strdiff(a->model, b->model), "model");
    QV_DIFF(strdiff(a->cand_model, b->cand_model), "cand_model");
    QV_DIFF(strdiff(a->ref, b->ref), "ref");
    QV_DIFF(strdiff(a->cand, b->cand), "cand");
    QV_DIFF(strdiff(a->quantized, b->quantized), "quantized");
    QV_DIFF(a->ctx != b->ctx, "ctx");
    QV_DIFF(a->bos != b->bos, "bos");
    QV_DIFF(a->n_tokens != b->n_tokens, "n_tokens");
    QV_DIFF(a->n_chunks_total != b->n_chunks_total, "n_chunks_total");
    QV_DIFF(strcmp(a->ids_hash, b->ids_hash) != 0, "ids_fnv1a64 (the token stream)");
#undef QV_DIFF
    return 0;
}

qv_status qv_json_write_atomic(const char *path, const cJSON *j)
{
    char *txt = cJSON_PrintUnformatted(j);
    if (!txt) return qv_fail(QV_ERR_NOMEM, "%s: out of memory printing JSON", path);
    qv_status st = qv_write_file_atomic(path, txt, strlen(txt));
    free(txt);
    return st;
}

qv_status qv_json_read(const char *path, cJSON **out)
{
    char *txt = NULL;
    size_t n = 0;
    *out = NULL;
    QV_TRY(qv_read_file(path, (size_t)1 << 31, &txt, &n));
    cJSON *j = cJSON_ParseWithLength(txt, n);
    free(txt);
    if (!j) return qv_fail(QV_ERR_INPUT, "%s: not valid JSON", path);
    *out = j;
    return QV_OK;
}
