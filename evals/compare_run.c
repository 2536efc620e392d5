/* Runs R and C over the same chunks (EVALS.md chunking), one prefill piece at a time, and hands
 * each finished chunk's sufficient statistics to the caller. */
#include <stdlib.h>

#include "qvet/eval_compare.h"

int qv_cmp_n_chunks(int64_t n_ids, int ctx)
{
    return ctx >= 2 ? (int)(n_ids / ctx) : 0;
}

qv_status qv_eval_compare(qv_engine *er, qv_engine *ec, const int32_t *ids, int64_t n_ids,
                          const qv_cmp_opts *o)
{
    const qv_config *a = &er->model->cfg, *b = &ec->model->cfg;
    int ctx = o->ctx, V = a->vocab_size;
    int maxp = a->max_position_embeddings < b->max_position_embeddings ? a->max_position_embeddings
                                                                         : b->max_position_embeddings;
    if (a->vocab_size != b->vocab_size)
        return qv_fail(QV_ERR_INPUT, "compare: reference vocab %d != candidate vocab %d", a->vocab_size, b->vocab_size);
    if (ctx < 2 || ctx > maxp)
        return qv_fail(QV_ERR_INPUT, "compare: ctx %d outside [2, %d] (the models' max_position_embeddings)", ctx, maxp);
    if (n_ids < ctx)
        return qv_fail(QV_ERR_INPUT, "compare: %lld tokens, fewer than one chunk of %d", (long long)n_ids, ctx);
    int sn = o->shard_n > 0 ? o->shard_n : 1, si = o->shard_i;
    if (si < 0 || si >= sn) return qv_fail(QV_ERR_USAGE, "compare: shard %d/%d out of range", si, sn);
    if (!o->on_chunk) return qv_fail(QV_ERR_INTERNAL, "compare: no chunk callback");
    int n_chunks = qv_cmp_n_chunks(n_ids, ctx), piece = o->piece > 0 ? o->piece : 512;
    if (piece > ctx) piece = ctx;
    int64_t todo = 0, done = 0;
    for (int ch = si; ch < n_chunks; ch += sn) todo += !(o->have && o->have[ch]);
    if (o->max_new_chunks > 0 && todo > o->max_new_chunks) todo = o->max_new_chunks;
    float *lr = qv_malloc(sizeof(float) * (size_t)piece * (size_t)V);
    float *lc = qv_malloc(sizeof(float) * (size_t)piece * (size_t)V);
    qv_cmp_chunk c = {0};
    c.n = ctx - 1;
    c.kld = qv_malloc(sizeof(double) * (size_t)c.n);
    c.dp = qv_malloc(sizeof(double) * (size_t)c.n);
    c.target = qv_malloc(sizeof(int32_t) * (size_t)c.n);
    qv_seq_id sr = -1, sc = -1;
    qv_status st = lr && lc && c.kld && c.dp && c.target ? QV_OK : QV_ERR_NOMEM;
    if (st == QV_OK) st = qv_engine_seq_create(er, 1, &sr);
    if (st == QV_OK) st = qv_engine_seq_create(ec, 1, &sc);
    if (st == QV_OK && o->progress && todo > 0) o->progress(o->progress_user, 0, todo);
    for (int ch = si; ch < n_chunks && st == QV_OK && done < todo; ch += sn) {
        if (o->have && o->have[ch]) continue;
        const int32_t *chunk = ids + (int64_t)ch * ctx;
        c.index = ch;
        c.nll_ref = c.nll_cand = 0;
        c.top1 = 0;
        st = qv_engine_seq_reset(er, sr);
        if (st == QV_OK) st = qv_engine_seq_reset(ec, sc);
        for (int p = 0; p < ctx && st == QV_OK; p += piece) {
            int n = ctx - p < piece ? ctx - p : piece;
            const int32_t *tp = chunk + p;
            st = qv_engine_prefill(er, 1, &sr, &tp, &n, 0, lr);
            if (st == QV_OK) st = qv_engine_prefill(ec, 1, &sc, &tp, &n, 0, lc);
            if (st == QV_OK && o->on_logits) st = o->on_logits(o->logits_user, ch, chunk, ctx, p, n, V, lr, lc);
            /* logits at chunk position p + j score token p + j + 1; the last position scores nothing */
            int rows = p + n < ctx ? n : n - 1;
            if (st == QV_OK && rows > 0) {
                for (int j = 0; j < rows; j++) c.target[p + j] = chunk[p + j + 1];
                qv_cmp_accumulate(lr, lc, rows, V, c.target + p, c.kld + p, c.dp + p, &c.nll_ref,
                                  &c.nll_cand, &c.top1);
            }
        }
        if (st == QV_OK) st = o->on_chunk(o->user, &c);
        if (st != QV_OK) {
            qv_fail_prefix(st, "compare: chunk %d (tokens %lld..%lld)", ch, (long long)ch * ctx,
                           (long long)(ch + 1) * ctx - 1);
            break;
        }
        done++;
        if (o->progress) o->progress(o->progress_user, done, todo);
    }
    if (sr >= 0) qv_engine_seq_free(er, sr);
    if (sc >= 0) qv_engine_seq_free(ec, sc);
    free(lr);
    free(lc);
    qv_cmp_chunk_free(&c);
    return st;
}
