/* qvet ppl results that can be resumed and merged (EVALS.md "Perplexity"; docs/evals.md).
 *
 * Why chunks are stored rather than a summary: the interval is exp(mean +- 1.96 se) over the
 * per-chunk mean NLLs x_c = S_c / n_c (S_c the FP64 sum of the chunk's n_c = ctx - 1 token NLLs).
 * Shards' (mean_k, se_k, N_k) do determine the union's figures: mean = sum_k N_k mean_k / N,
 * M2 = sum_k [se_k^2 N_k (N_k - 1) + N_k (mean_k - mean)^2] (0 for the first term of a one-chunk
 * shard, whose se is undefined), se = sqrt(M2 / (N - 1)) / sqrt(N). But only up to rounding: the
 * pooled form differs from one run's in the last bits. So each
 * result keeps every chunk's (index, n_c, S_c), S_c printed with 17 significant digits (reads back
 * bit for bit), and the summary is always recomputed from all chunks in chunk order with
 * qv_ppl_stats: a resumed or merged result is identical to one run's, figure for figure. */
#ifndef QVET_EVAL_PPL_H
#define QVET_EVAL_PPL_H

#include "qvet/evals.h"

#define QV_PPL_SCHEMA_VERSION 2 /* 1 was "qvet.ppl/1": summary and chunk means only, no resume */

typedef struct {
    int index;      /* chunk number in the token stream */
    int n;          /* scored positions: ctx - 1 */
    double nll_sum; /* FP64 sum of their NLLs */
} qv_ppl_chunk;

typedef struct {
    qv_ppl_chunk *v;
    int n, cap;
} qv_ppl_set;

/* Adds a chunk; QV_ERR_INPUT if its index is already there or n < 1. */
qv_status qv_ppl_set_add(qv_ppl_set *s, const qv_ppl_chunk *c);
void qv_ppl_set_free(qv_ppl_set *s);
/* Sorts the set by index and fills r (ctx from the chunks' n + 1; chunk_nll[k] = nll_sum / n,
 * malloc'd) with qv_ppl_stats over all of them. QV_ERR_INPUT when empty or when chunks differ
 * in n. */
qv_status qv_ppl_set_stats(qv_ppl_set *s, qv_ppl_result *r);

struct cJSON;
/* {"schema":"qvet.ppl","schema_version":2,"meta":M,"complete":..,"chunks":[..],"summary":{..},
 * "run":R}. meta must hold "ctx", "n_chunks_total" and "shard" {"i","n"} (the caller adds
 * everything else that identifies the run); complete = the set holds every chunk of the shard;
 * run (may be NULL) is copied as is. */
qv_status qv_ppl_to_json(const struct cJSON *meta, qv_ppl_set *s, const struct cJSON *run, struct cJSON **out);
/* Reads a result (path names it in messages): schema and version, meta fields, every chunk
 * inside [0, n_chunks_total), of this shard, with n = ctx - 1. *meta and *run are copies (run
 * NULL when absent). */
qv_status qv_ppl_from_json(const struct cJSON *j, const char *path, struct cJSON **meta, qv_ppl_set *s,
                           struct cJSON **run);
/* The first key of object a or b, not named in skip (NULL-terminated), whose values differ;
 * NULL when they agree. Used to refuse resuming or merging results of another run. */
const char *qv_json_first_diff(const struct cJSON *a, const struct cJSON *b, const char *const *skip);

#endif
