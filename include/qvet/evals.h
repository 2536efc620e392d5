/* Evaluations over any engine (EVALS.md). Library only: the CLI (tools/qvet/cmd_*.c) parses
 * flags, tokenizes, draws progress and writes JSON. */
#ifndef QVET_EVALS_H
#define QVET_EVALS_H

#include <stdint.h>

#include "qvet/engine.h"

/* Called after each chunk: done of total chunks. The CLI draws a bar on a TTY. */
typedef void (*qv_progress_fn)(void *user, int64_t done, int64_t total);

/* Receives each scored chunk of qv_eval_ppl: its index in the token stream, the FP64 sum of
 * its n = ctx - 1 token NLLs. A non-OK return stops the eval with that status. */
typedef qv_status (*qv_ppl_chunk_fn)(void *user, int index, int n, double nll_sum);

typedef struct {
    int ctx;                  /* chunk length (EVALS.md: default 2048, or the model's maximum) */
    int piece;                /* tokens per prefill call within a chunk (bounds logits memory:
                                 piece * vocab floats); 0: 512 */
    qv_progress_fn progress;  /* may be NULL; done/total over the chunks this call scores */
    void *progress_user;
    /* Sharding and resume (same rule as compare): chunk c is scored iff c % shard_n == shard_i
     * and !have[c]. shard_n 0 means 1; have (length n_ids / ctx) may be NULL. */
    int shard_i, shard_n;
    const unsigned char *have;
    qv_ppl_chunk_fn on_chunk; /* may be NULL */
    void *chunk_user;
} qv_ppl_opts;

typedef struct {
    int ctx;
    int n_chunks;             /* full chunks scored by this call (a short last chunk is dropped;
                                 with a shard or `have`, only those this call ran) */
    int64_t n_scored;         /* n_chunks * (ctx - 1) positions */
    double *chunk_nll;        /* [n_chunks] mean NLL per chunk (malloc'd; qv_ppl_result_free) */
    double mean_nll;          /* mean over chunks (= over scored tokens: chunks are equal) */
    double se;                /* standard error of the mean of chunk NLLs (NaN if < 2 chunks) */
    double ppl, ppl_lo, ppl_hi; /* exp(mean), exp(mean -+ 1.96 se) (lo/hi NaN if < 2 chunks) */
} qv_ppl_result;

/* Perplexity of `ids` (already tokenized, BOS as the caller wants it) with EVALS.md's protocol:
 * contiguous non-overlapping chunks of ctx tokens, each scored at every position after its
 * first (no BOS inserted per chunk); log-softmax in FP32, NLL summed in FP64. r holds the
 * chunks this call scored, in chunk order (all of them without shard/have). Errors: fewer
 * than ctx ids, ctx < 2 or above the model's maximum -> QV_ERR_INPUT; a shard outside
 * 0 <= i < n -> QV_ERR_USAGE; engine and on_chunk errors pass through (chunk named). */
qv_status qv_eval_ppl(qv_engine *e, const int32_t *ids, int64_t n_ids, const qv_ppl_opts *o,
                      qv_ppl_result *r);
/* The statistics alone, from per-chunk mean NLLs (r->chunk_nll is not touched). */
void qv_ppl_stats(const double *chunk_nll, int n_chunks, qv_ppl_result *r);
void qv_ppl_result_free(qv_ppl_result *r);

/* -ln softmax(logits)[target] : max subtracted, exp in FP32, sum accumulated in FP64 and
 * rounded to FP32, log in FP32; returned as a double. */
double qv_nll_fp32(const float *logits, int vocab, int target);

#endif
