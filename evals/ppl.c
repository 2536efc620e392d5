/* Perplexity as EVALS.md defines it (the QServe paper's protocol), over any engine. */
#include <math.h>
#include <stdlib.h>

#include "qvet/evals.h"

double qv_nll_fp32(const float *logits, int vocab, int target)
{
    float mx = logits[0];
    for (int v = 1; v < vocab; v++) mx = logits[v] > mx ? logits[v] : mx;
    double s = 0;
    for (int v = 0; v < vocab; v++) s += expf(logits[v] - mx);
    float lse = mx + logf((float)s);
    return -(double)(logits[target] - lse);
}

void qv_ppl_stats(const double *chunk_nll, int n, qv_ppl_result *r)
{
    double sum = 0;
    for (int i = 0; i < n; i++) sum += chunk_nll[i];
    r->mean_nll = n > 0 ? sum / n : NAN;
    r->ppl = exp(r->mean_nll);
    r->se = r->ppl_lo = r->ppl_hi = NAN;
    if (n < 2) return;
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (chunk_nll[i] - r->mean_nll) * (chunk_nll[i] - r->mean_nll);
    r->se = sqrt(ss / (n - 1)) / sqrt((double)n); /* sample sd (n - 1) over sqrt(n) */
    r->ppl_lo = exp(r->mean_nll - 1.96 * r->se);
    r->ppl_hi = exp(r->mean_nll + 1.96 * r->se);
}

void qv_ppl_result_free(qv_ppl_result *r)
{
    free(r->chunk_nll);
    r->chunk_nll = NULL;
}

qv_status qv_eval_ppl(qv_engine *e, const int32_t *ids, int64_t n_ids, const qv_ppl_opts *o,
                      qv_ppl_result *r)
{
    const qv_config *c = &e->model->cfg;
    int ctx = o->ctx, piece = o->piece > 0 ? o->piece : 512, V = c->vocab_size;
    *r = (qv_ppl_result){0};
    if (ctx < 2 || ctx > c->max_position_embeddings)
        return qv_fail(QV_ERR_INPUT, "ppl: ctx %d outside [2, %d] (the model's max_position_embeddings)",
                       ctx, c->max_position_embeddings);
    if (n_ids < ctx)
        return qv_fail(QV_ERR_INPUT, "ppl: %lld tokens, fewer than one chunk of %d", (long long)n_ids, ctx);
    int n_chunks = (int)(n_ids / ctx); /* the short last chunk is dropped */
    int sn = o->shard_n > 0 ? o->shard_n : 1, si = o->shard_i;
    if (si < 0 || si >= sn) return qv_fail(QV_ERR_USAGE, "ppl: shard %d/%d out of range", si, sn);
    int todo = 0;
    for (int ch = si; ch < n_chunks; ch += sn) todo += !(o->have && o->have[ch]);
    if (piece > ctx) piece = ctx;
    r->ctx = ctx;
    r->chunk_nll = qv_calloc((size_t)(todo > 0 ? todo : 1), sizeof(double));
    float *logits = qv_malloc(sizeof(float) * (size_t)piece * (size_t)V);
    qv_seq_id id = -1;
    qv_status st = r->chunk_nll && logits ? qv_engine_seq_create(e, 1, &id) : QV_ERR_NOMEM;
    for (int ch = si; ch < n_chunks && st == QV_OK; ch += sn) {
        if (o->have && o->have[ch]) continue;
        const int32_t *chunk = ids + (int64_t)ch * ctx;
        double nll = 0;
        st = qv_engine_seq_reset(e, id);
        for (int a = 0; a < ctx && st == QV_OK; a += piece) {
            int n = ctx - a < piece ? ctx - a : piece;
            const int32_t *tp = chunk + a;
            st = qv_engine_prefill(e, 1, &id, &tp, &n, 0, logits);
            /* the logits at position i score token i + 1 of the chunk */
            for (int j = 0; j < n && st == QV_OK; j++)
                if (a + j + 1 < ctx) nll += qv_nll_fp32(logits + (size_t)j * V, V, chunk[a + j + 1]);
        }
        if (st == QV_OK && o->on_chunk) st = o->on_chunk(o->chunk_user, ch, ctx - 1, nll);
        if (st != QV_OK) {
            qv_fail_prefix(st, "ppl: chunk %d (tokens %lld..%lld)", ch, (long long)ch * ctx, (long long)(ch + 1) * ctx - 1);
            break;
        }
        /* the chunk's mean NLL: the one formula resume and merge re-apply to stored sums */
        r->chunk_nll[r->n_chunks++] = nll / (ctx - 1);
        if (o->progress) o->progress(o->progress_user, r->n_chunks, todo);
    }
    if (id >= 0) qv_engine_seq_free(e, id);
    free(logits);
    if (st != QV_OK) {
        qv_ppl_result_free(r);
        return st;
    }
    r->n_scored = (int64_t)r->n_chunks * (ctx - 1);
    qv_ppl_stats(r->chunk_nll, r->n_chunks, r);
    return QV_OK;
}
