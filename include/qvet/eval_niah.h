/* Needle in a haystack and passkey (EVALS.md): a sentence holding a seeded 7-digit number is
 * inserted at a depth of a context of a given length, followed by a question; per cell and
 * engine, the teacher-forced mean log-probability of the answer tokens and exact retrieval.
 *
 * Exact retrieval is computed on the teacher-forced pass: greedy decoding follows the answer
 * for as long as each argmax equals the next answer token, so "the greedy continuation's first
 * n_answer tokens are the answer's tokens" is exactly "argmax == answer token at every answer
 * position" -- one prefill per cell and engine, no separate generation. (This is stricter than
 * "the generation contains the digits": a model that first writes a preamble scores 0.) */
#ifndef QVET_EVAL_NIAH_H
#define QVET_EVAL_NIAH_H

#include <stdint.h>

#include "qvet/engine.h"
#include "qvet/evals.h"
#include "qvet/tokenizer.h"

typedef struct {
    int cell;            /* li * n_depths + di */
    int li, di;
    int length;          /* requested prompt length (tokens), before capping */
    int n_prompt;        /* actual prompt tokens (BOS, haystack, needle, question) */
    int needle_at;       /* token index where the needle starts */
    double depth;
    char number[8];      /* the 7 digits */
    int n_answer;        /* answer tokens */
    int hit[2];          /* [0] R, [1] C: greedy continuation reproduces the answer */
    int match[2];        /* leading answer tokens reproduced greedily */
    double lp[2];        /* mean ln p(answer token) teacher-forced (FP32 log-softmax) */
} qv_niah_cell;

typedef qv_status (*qv_niah_cell_fn)(void *user, const qv_niah_cell *c);

typedef struct {
    qv_tok *tok;
    const char *haystack; size_t haystack_len; /* prose; unused with passkey */
    int passkey;               /* repeated filler sentences instead of the haystack */
    const int *lengths; int n_lengths;
    const double *depths; int n_depths;
    uint64_t seed;
    int shard_i, shard_n;      /* cell k runs in shard k % n */
    const unsigned char *have; /* [n_lengths * n_depths] done already (resume); may be NULL */
    qv_niah_cell_fn on_cell;   /* required */
    void *user;
    qv_progress_fn progress;
    void *progress_user;
} qv_niah_opts;

/* The prompt of cell (li, di) followed by its answer tokens: ids[0..n_prompt+n_answer-1]
 * (malloc'd). max_pos caps the length (prompt + answer <= max_pos). The cell's number depends
 * only on (seed, li, di), not on the shard. */
qv_status qv_niah_build(const qv_niah_opts *o, const int32_t *hay, int64_t n_hay, int max_pos, int li,
                        int di, int32_t **ids, qv_niah_cell *cell);
/* Tokenized haystack (or passkey filler): what qv_niah_build takes. */
qv_status qv_niah_haystack_ids(const qv_niah_opts *o, int32_t **ids, int64_t *n);

/* Runs both engines over this shard's cells not in `have`. */
qv_status qv_eval_niah(qv_engine *r, qv_engine *c, const qv_niah_opts *o);

#define QV_NIAH_SCHEMA_VERSION 1
struct cJSON;
/* Grid summary (means, per-cell C - R deltas as [length][depth] matrices) of the cells given. */
struct cJSON *qv_niah_summary_json(const qv_niah_cell *cells, int n, int n_lengths, int n_depths);
struct cJSON *qv_niah_cell_json(const qv_niah_cell *c);
qv_status qv_niah_cell_from_json(const struct cJSON *o, const char *path, qv_niah_cell *c);

#endif
