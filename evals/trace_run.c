/* qvet trace: the streaming pass (include/qvet/eval_trace.h) and the ablation sweep. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qvet/eval_compare.h"
#include "qvet/eval_trace.h"

enum { S_RES, S_ATTN, S_MLP, S_HEADS, S_K, S_V, S_COUNT };

typedef struct {
    qv_trace_result *t;
    int mode;        /* -1: R stores its tensors; v >= 0: variant v compares with them */
    int piece0, piece_n;
    int width[S_COUNT];
    float **store;   /* [S_COUNT * L] -> [piece * width] */
} cap_ctx;

static int slot_of(qv_capture_kind k)
{
    switch (k) {
    case QV_CAP_RESIDUAL: return S_RES;
    case QV_CAP_ATTN_OUT: return S_ATTN;
    case QV_CAP_MLP_OUT: return S_MLP;
    case QV_CAP_ATTN_HEADS: return S_HEADS;
    case QV_CAP_K: return S_K;
    case QV_CAP_V: return S_V;
    default: return -1;
    }
}

#define CAP_MASK ((1u << QV_CAP_RESIDUAL) | (1u << QV_CAP_ATTN_OUT) | (1u << QV_CAP_MLP_OUT) | \
                  (1u << QV_CAP_ATTN_HEADS) | (1u << QV_CAP_K) | (1u << QV_CAP_V))

/* sum (c - r)^2 and sum r^2 over n floats, in FP64 */
static void sq(const float *c, const float *r, int n, double *e2, double *r2)
{
    double a = 0, b = 0;
    for (int i = 0; i < n; i++) {
        double d = (double)c[i] - (double)r[i];
        a += d * d;
        b += (double)r[i] * (double)r[i];
    }
    *e2 = a;
    *r2 = b;
}

double qv_trace_rel(double e2, double r2)
{
    if (e2 == 0) return 0;
    return r2 > 0 ? sqrt(e2 / r2) : INFINITY;
}

static void on_capture(void *user, const qv_capture_point *p)
{
    cap_ctx *c = user;
    int s = slot_of(p->kind);
    if (s < 0 || p->layer < 0) return;
    qv_trace_result *t = c->t;
    int w = c->width[s], l = p->layer, off = p->pos0 - c->piece0;
    if (off < 0 || off + p->n_pos > c->piece_n) return; /* not this piece's rows: cannot happen */
    float *ref = c->store[s * t->L + l];
    if (c->mode < 0) {
        memcpy(ref + (size_t)off * w, p->data, sizeof(float) * (size_t)p->n_pos * w);
        return;
    }
    qv_trace_var *v = &t->var[c->mode];
    for (int i = 0; i < p->n_pos; i++) {
        int pos = p->pos0 + i;
        if (pos < t->pos_lo || pos > t->pos_hi) continue;
        int b = (pos - t->pos_lo) / t->bucket_width;
        const float *cr = p->data + (size_t)i * w, *rr = ref + (size_t)(off + i) * w;
        double e2, r2;
        if (s == S_HEADS || s == S_K || s == S_V) {
            int nh = s == S_HEADS ? t->nh : t->nkv, hd = w / nh;
            double *E = s == S_HEADS ? v->head_e2 : s == S_K ? v->k_e2 : v->v_e2;
            double *R = s == S_HEADS ? v->head_r2 : s == S_K ? v->k_r2 : v->v_r2;
            for (int h = 0; h < nh; h++) {
                sq(cr + h * hd, rr + h * hd, hd, &e2, &r2);
                E[l * nh + h] += e2;
                R[l * nh + h] += r2;
            }
            continue;
        }
        sq(cr, rr, w, &e2, &r2);
        double *E = s == S_RES ? v->res_e2 : s == S_ATTN ? v->attn_e2 : v->mlp_e2;
        double *R = s == S_RES ? v->res_r2 : s == S_ATTN ? v->attn_r2 : v->mlp_r2;
        E[l * t->nb + b] += e2;
        R[l * t->nb + b] += r2;
        if (s == S_RES) v->res_pos[(size_t)(pos - t->pos_lo) * t->L + l] = (float)qv_trace_rel(e2, r2);
    }
}

void qv_trace_result_free(qv_trace_result *t)
{
    for (int i = 0; t->var && i < t->n_var; i++) {
        qv_trace_var *v = &t->var[i];
        free(v->label);
        free(v->res_e2), free(v->res_r2), free(v->attn_e2), free(v->attn_r2), free(v->mlp_e2), free(v->mlp_r2);
        free(v->head_e2), free(v->head_r2), free(v->k_e2), free(v->k_r2), free(v->v_e2), free(v->v_r2);
        free(v->res_pos), free(v->kld);
    }
    free(t->var);
    memset(t, 0, sizeof *t);
}

static char *dup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static qv_status var_alloc(qv_trace_result *t, qv_trace_var *v, const char *label)
{
    size_t lb = (size_t)t->L * t->nb, lh = (size_t)t->L * t->nh, lk = (size_t)t->L * t->nkv;
    v->label = dup(label);
    double **lbs[] = {&v->res_e2, &v->res_r2, &v->attn_e2, &v->attn_r2, &v->mlp_e2, &v->mlp_r2};
    for (int i = 0; i < 6; i++) *lbs[i] = qv_calloc(lb, sizeof(double));
    v->head_e2 = qv_calloc(lh, sizeof(double));
    v->head_r2 = qv_calloc(lh, sizeof(double));
    double **lks[] = {&v->k_e2, &v->k_r2, &v->v_e2, &v->v_r2};
    for (int i = 0; i < 4; i++) *lks[i] = qv_calloc(lk, sizeof(double));
    v->res_pos = qv_calloc((size_t)t->n_pos * t->L, sizeof(float));
    v->kld = qv_calloc((size_t)t->n_pos, sizeof(double));
    int ok = v->label && v->head_e2 && v->head_r2 && v->res_pos && v->kld;
    for (int i = 0; i < 6; i++) ok = ok && *lbs[i];
    for (int i = 0; i < 4; i++) ok = ok && *lks[i];
    return ok ? QV_OK : qv_fail(QV_ERR_NOMEM, "trace: out of memory for variant %s", label);
}

static int same_shape(const qv_config *a, const qv_config *b)
{
    return a->hidden_size == b->hidden_size && a->num_layers == b->num_layers && a->num_heads == b->num_heads &&
           a->num_kv_heads == b->num_kv_heads && a->head_dim == b->head_dim && a->vocab_size == b->vocab_size;
}

qv_status qv_trace_run(qv_engine *r, const qv_trace_variant *vars, int n_var, const int32_t *ids, int64_t n_ids,
                       const qv_trace_opts *o, qv_trace_result *out)
{
    memset(out, 0, sizeof *out);
    const qv_config *a = &r->model->cfg;
    if (n_var < 1) return qv_fail(QV_ERR_USAGE, "trace: no candidate");
    int maxp = a->max_position_embeddings;
    for (int i = 0; i < n_var; i++) {
        const qv_config *b = &vars[i].e->model->cfg;
        if (!same_shape(a, b))
            return qv_fail(QV_ERR_INPUT, "trace: %s's model (%s) has another shape than the reference's (%s)",
                           vars[i].label, vars[i].e->model->dir, r->model->dir);
        if (b->max_position_embeddings < maxp) maxp = b->max_position_embeddings;
    }
    int ctx = o->ctx;
    if (ctx < 2 || ctx > maxp)
        return qv_fail(QV_ERR_INPUT, "trace: ctx %d outside [2, %d] (the models' max_position_embeddings)", ctx, maxp);
    if (n_ids < ctx)
        return qv_fail(QV_ERR_INPUT, "trace: the text has %lld tokens, fewer than ctx %d (lower --ctx)", (long long)n_ids, ctx);
    int lo = o->pos_lo, hi = o->pos_hi < 0 ? ctx - 2 : o->pos_hi;
    if (lo < 0 || hi > ctx - 2 || lo > hi)
        return qv_fail(QV_ERR_INPUT, "trace: positions %d-%d outside the run's scored positions 0-%d (ctx %d: position "
                       "t is scored by token t+1)", lo, hi, ctx - 2, ctx);
    qv_trace_result *t = out;
    t->L = a->num_layers, t->nh = a->num_heads, t->nkv = a->num_kv_heads, t->V = a->vocab_size;
    t->ctx = ctx, t->pos_lo = lo, t->pos_hi = hi, t->n_pos = hi - lo + 1;
    int nb = o->n_buckets > 0 ? o->n_buckets : 32;
    if (nb > t->n_pos) nb = t->n_pos;
    t->bucket_width = (t->n_pos + nb - 1) / nb;
    t->nb = (t->n_pos + t->bucket_width - 1) / t->bucket_width;
    t->jump_ratio = o->jump_ratio > 0 ? o->jump_ratio : QV_TRACE_JUMP_RATIO;
    t->jump_floor = o->jump_floor > 0 ? o->jump_floor : QV_TRACE_JUMP_FLOOR;
    t->n_var = n_var;
    t->var = qv_calloc((size_t)n_var, sizeof *t->var);
    qv_status st = t->var ? QV_OK : QV_ERR_NOMEM;
    for (int i = 0; i < n_var && st == QV_OK; i++) st = var_alloc(t, &t->var[i], vars[i].label);

    int run_to = hi + 2; /* tokens needed: the last scored position plus its target */
    int piece = o->piece > 0 ? o->piece : 256, H = a->hidden_size, hd = a->head_dim, V = a->vocab_size;
    if (piece > run_to) piece = run_to;
    cap_ctx cc = {.t = t, .width = {H, H, H, t->nh * hd, t->nkv * hd, t->nkv * hd}};
    cc.store = qv_calloc((size_t)S_COUNT * t->L, sizeof(float *));
    if (st == QV_OK && !cc.store) st = QV_ERR_NOMEM;
    for (int s = 0; s < S_COUNT && st == QV_OK; s++)
        for (int l = 0; l < t->L && st == QV_OK; l++)
            if (!(cc.store[s * t->L + l] = qv_malloc(sizeof(float) * (size_t)piece * cc.width[s]))) st = QV_ERR_NOMEM;
    float *lr = qv_malloc(sizeof(float) * (size_t)piece * V), *lc = qv_malloc(sizeof(float) * (size_t)piece * V);
    double *dp = qv_malloc(sizeof(double) * (size_t)piece);
    if (st == QV_OK && (!lr || !lc || !dp)) st = qv_fail(QV_ERR_NOMEM, "trace: out of memory for %d logit rows", piece);
    qv_seq_id sr = -1, *sv = qv_malloc(sizeof(qv_seq_id) * (size_t)n_var);
    if (!sv && st == QV_OK) st = QV_ERR_NOMEM;
    for (int i = 0; sv && i < n_var; i++) sv[i] = -1;
    if (st == QV_OK) st = qv_engine_seq_create(r, 1, &sr);
    for (int i = 0; i < n_var && st == QV_OK; i++) st = qv_engine_seq_create(vars[i].e, 1, &sv[i]);
    int64_t total = (int64_t)run_to * (n_var + 1), done = 0;
    if (st == QV_OK && o->progress) o->progress(o->progress_user, 0, total);
    for (int p = 0; p < run_to && st == QV_OK; p += piece) {
        int n = run_to - p < piece ? run_to - p : piece;
        const int32_t *tp = ids + p;
        cc.piece0 = p, cc.piece_n = n, cc.mode = -1;
        qv_engine_set_capture(r, on_capture, &cc, CAP_MASK);
        st = qv_engine_prefill(r, 1, &sr, &tp, &n, 0, lr);
        qv_engine_set_capture(r, NULL, NULL, 0);
        if (st != QV_OK) {
            qv_fail_prefix(st, "trace: reference, tokens %d..%d", p, p + n - 1);
            break;
        }
        if (o->progress) o->progress(o->progress_user, done += n, total);
        /* rows j of this piece score position p + j; keep those in [lo, hi] */
        int j0 = lo > p ? lo - p : 0, j1 = hi < p + n - 1 ? hi - p : n - 1;
        for (int i = 0; i < n_var && st == QV_OK; i++) {
            qv_trace_var *v = &t->var[i];
            cc.mode = i;
            qv_engine_set_capture(vars[i].e, on_capture, &cc, CAP_MASK);
            st = qv_engine_prefill(vars[i].e, 1, &sv[i], &tp, &n, 0, lc);
            qv_engine_set_capture(vars[i].e, NULL, NULL, 0);
            if (st != QV_OK) {
                qv_fail_prefix(st, "trace: %s, tokens %d..%d", vars[i].label, p, p + n - 1);
                break;
            }
            if (j1 >= j0)
                qv_cmp_accumulate(lr + (size_t)j0 * V, lc + (size_t)j0 * V, j1 - j0 + 1, V, ids + p + j0 + 1,
                                  v->kld + (p + j0 - lo), dp, &v->nll_ref, &v->nll_cand, &v->top1);
            if (o->progress) o->progress(o->progress_user, done += n, total);
        }
    }
    if (sr >= 0) qv_engine_seq_free(r, sr);
    for (int i = 0; sv && i < n_var; i++)
        if (sv[i] >= 0) qv_engine_seq_free(vars[i].e, sv[i]);
    for (int s = 0; cc.store && s < S_COUNT * t->L; s++) free(cc.store[s]);
    free(cc.store), free(lr), free(lc), free(dp), free(sv);
    if (st != QV_OK) qv_trace_result_free(t);
    return st;
}

/* ---------------------------------------------------------------- derived figures */

int qv_trace_jump_layer(const qv_trace_result *t, int v, int pos)
{
    const float *r = t->var[v].res_pos + (size_t)(pos - t->pos_lo) * t->L;
    double prev = 0;
    for (int l = 0; l < t->L; l++) {
        if (r[l] >= t->jump_floor && r[l] >= t->jump_ratio * prev) return l;
        prev = r[l];
    }
    return -1;
}

void qv_trace_layer_ranking(const qv_trace_result *t, int v, int *rank, int64_t *count)
{
    const qv_trace_var *x = &t->var[v];
    double *added = qv_calloc((size_t)t->L, sizeof(double));
    for (int l = 0; l < t->L; l++) count[l] = 0, rank[l] = l;
    for (int p = t->pos_lo; p <= t->pos_hi; p++) {
        int j = qv_trace_jump_layer(t, v, p);
        if (j >= 0) count[j]++;
    }
    double prev = 0;
    for (int l = 0; l < t->L; l++) {
        double e2 = 0, r2 = 0;
        for (int b = 0; b < t->nb; b++) e2 += x->res_e2[l * t->nb + b], r2 += x->res_r2[l * t->nb + b];
        double rel = qv_trace_rel(e2, r2);
        if (added) added[l] = rel - prev;
        prev = rel;
    }
    for (int i = 1; i < t->L; i++) /* insertion sort: count desc, added desc, layer asc */
        for (int k = i; k > 0; k--) {
            int a = rank[k - 1], b = rank[k];
            int swap = count[b] > count[a] ||
                       (count[b] == count[a] && added && (added[b] > added[a] || (added[b] == added[a] && b < a)));
            if (!swap) break;
            rank[k - 1] = b, rank[k] = a;
        }
    free(added);
}

int qv_trace_worst(const qv_trace_result *t, int v, int k, int *pos)
{
    const double *kld = t->var[v].kld;
    int n = 0;
    for (int p = 0; p < t->n_pos; p++) { /* keep the top k sorted: kld desc, position asc */
        int at = n;
        while (at > 0 && kld[p] > kld[pos[at - 1] - t->pos_lo]) at--;
        if (at >= k) continue;
        if (n < k) n++;
        for (int i = n - 1; i > at; i--) pos[i] = pos[i - 1];
        pos[at] = p + t->pos_lo;
    }
    return n;
}

double qv_trace_kld_prefix(const qv_trace_result *t, int v, int len)
{
    if (len > t->ctx || len < 2 || t->pos_lo != 0 || len - 2 > t->pos_hi) return NAN;
    double s = 0;
    for (int p = 0; p < len - 1; p++) s += t->var[v].kld[p];
    return s / (len - 1);
}

/* ---------------------------------------------------------------- ablation sweep */

qv_status qv_trace_ablate(qv_engine *r, int n_var, qv_trace_open_fn open_fn, void *user, const int32_t *ids, int n,
                          int piece, qv_progress_fn progress, void *progress_user, double *kld)
{
    int V = r->model->cfg.vocab_size;
    if (n < 2) return qv_fail(QV_ERR_INPUT, "trace: ablation needs >= 2 tokens, got %d", n);
    if (n > r->model->cfg.max_position_embeddings)
        return qv_fail(QV_ERR_INPUT, "trace: ablation over %d tokens exceeds max_position_embeddings %d", n,
                       r->model->cfg.max_position_embeddings);
    if (piece <= 0) piece = 256;
    if (piece > n) piece = n;
    float *lr = qv_malloc(sizeof(float) * (size_t)n * V), *lc = qv_malloc(sizeof(float) * (size_t)piece * V);
    double *k = qv_malloc(sizeof(double) * (size_t)n), *dp = qv_malloc(sizeof(double) * (size_t)n);
    qv_status st = lr && lc && k && dp ? QV_OK : qv_fail(QV_ERR_NOMEM, "trace: out of memory for %d x %d logits", n, V);
    qv_seq_id s = -1;
    int64_t total = (int64_t)n * (n_var + 1), done = 0;
    if (st == QV_OK) st = qv_engine_seq_create(r, 1, &s);
    for (int p = 0; p < n && st == QV_OK; p += piece) {
        int m = n - p < piece ? n - p : piece;
        const int32_t *tp = ids + p;
        st = qv_engine_prefill(r, 1, &s, &tp, &m, 0, lr + (size_t)p * V);
        if (progress) progress(progress_user, done += m, total);
    }
    if (s >= 0) qv_engine_seq_free(r, s);
    for (int i = 0; i < n_var && st == QV_OK; i++) {
        qv_engine *e = NULL;
        st = open_fn(user, i, &e);
        s = -1;
        if (st == QV_OK) st = qv_engine_seq_create(e, 1, &s);
        double nr = 0, nc = 0, sum = 0;
        int64_t top1 = 0;
        for (int p = 0; p < n && st == QV_OK; p += piece) {
            int m = n - p < piece ? n - p : piece, rows = p + m < n ? m : m - 1;
            const int32_t *tp = ids + p;
            st = qv_engine_prefill(e, 1, &s, &tp, &m, 0, lc);
            if (st == QV_OK && rows > 0)
                qv_cmp_accumulate(lr + (size_t)p * V, lc, rows, V, ids + p + 1, k + p, dp + p, &nr, &nc, &top1);
            if (progress) progress(progress_user, done += m, total);
        }
        if (st != QV_OK) qv_fail_prefix(st, "trace: ablation variant %d", i);
        for (int p = 0; p < n - 1; p++) sum += k[p];
        kld[i] = sum / (n - 1);
        if (e && s >= 0) qv_engine_seq_free(e, s);
        if (e) qv_engine_close(e);
    }
    free(lr), free(lc), free(k), free(dp);
    return st;
}
