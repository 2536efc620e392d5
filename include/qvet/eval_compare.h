/* R vs C on the same tokens (EVALS.md "Perplexity" and "Distribution shift"): both engines run
 * the same chunks; per chunk we keep exactly what every statistic needs (NLL sums, top-1 count,
 * the per-position KLD and delta-p doubles), so a summary recomputed from stored chunks -- after
 * --resume, or `qvet merge` of shards -- is bit-identical to one run's. Logits are never held
 * beyond one prefill piece. */
#ifndef QVET_EVAL_COMPARE_H
#define QVET_EVAL_COMPARE_H

#include <stdint.h>

#include "qvet/engine.h"
#include "qvet/evals.h"

/* One chunk's sufficient statistics. */
typedef struct {
    int index;           /* chunk number in the whole token stream (0-based) */
    int n;               /* scored positions (ctx - 1) */
    double nll_ref;      /* sum over positions of -ln p_R(y) (FP32 log-softmax, FP64 sum) */
    double nll_cand;
    int64_t top1;        /* positions where argmax_R == argmax_C (first index on ties) */
    double *kld;         /* [n] KLD_t = sum_v p_R (ln p_R - ln p_C), FP64 */
    double *dp;          /* [n] p_C(y) - p_R(y), FP64 */
    int32_t *target;     /* [n] the correct next token y at each position */
} qv_cmp_chunk;

/* The per-position statistics of `rows` positions: logits R and C [rows, V] (FP32), targets y.
 * Writes kld[i], dp[i] and adds to the chunk's nll/top1 sums (call repeatedly along a chunk). */
void qv_cmp_accumulate(const float *lr, const float *lc, int rows, int V, const int32_t *targets,
                       double *kld, double *dp, double *nll_ref, double *nll_cand, int64_t *top1);

/* A growable set of chunks (deep copies), summarized in chunk-index order. */
typedef struct {
    qv_cmp_chunk *v;
    int n, cap;
} qv_cmp_set;

qv_status qv_cmp_set_add(qv_cmp_set *s, const qv_cmp_chunk *c); /* copies; QV_ERR_INPUT on a duplicate index */
const qv_cmp_chunk *qv_cmp_set_find(const qv_cmp_set *s, int index);
void qv_cmp_set_sort(qv_cmp_set *s);
void qv_cmp_set_free(qv_cmp_set *s);
void qv_cmp_chunk_free(qv_cmp_chunk *c);

#define QV_CMP_HIST_BINS 40   /* KLD histogram: log10 bins over [1e-8, 1e2), plus under/over */
#define QV_CMP_POS_BUCKETS 32 /* KLD vs position inside the chunk */

typedef struct {
    int n_chunks;
    int64_t n_pos;
    qv_ppl_result ppl_ref, ppl_cand;   /* chunk_nll NULL; stats only */
    double ln_ratio, ln_ratio_lo, ln_ratio_hi, ln_ratio_se; /* paired chunk difference of mean NLL */
    double kld_mean, kld_mean_lo, kld_mean_hi, kld_se;
    double kld_median, kld_p90, kld_p99, kld_p999, kld_max;
    int kld_max_chunk, kld_max_offset; /* position offset inside the chunk (scores token offset+1) */
    int64_t kld_max_pos;               /* index in the token stream of the token being predicted */
    int32_t kld_max_token;             /* that token (y) */
    double top1, top1_lo, top1_hi, top1_se;
    double dp_mean, dp_rms, dp_p1, dp_p99;
    double hist_lo_log10, hist_hi_log10;           /* bin edges: lo + k (hi - lo) / BINS */
    int64_t hist[QV_CMP_HIST_BINS + 2];            /* [0] below lo (incl. 0), [BINS+1] at/above hi */
    int pos_bucket_width;                          /* positions per bucket */
    double kld_by_pos[QV_CMP_POS_BUCKETS];         /* mean KLD per bucket of chunk offsets (NaN: empty) */
} qv_cmp_summary;

/* Summary of the set's chunks (sorts the set). Needs >= 1 chunk (QV_ERR_INPUT otherwise). CIs
 * are NaN with a single chunk. */
qv_status qv_cmp_summarize(qv_cmp_set *s, qv_cmp_summary *out);

/* numpy's default ("linear") percentile of sorted x[0..n-1], q in [0, 100]. */
double qv_percentile_sorted(const double *x, int64_t n, double q);
/* Mean of x with the 95% interval mean -+ 1.96 * sd/sqrt(n) (sd with n - 1); NaN bounds if n < 2. */
void qv_mean_ci95(const double *x, int n, double *mean, double *lo, double *hi, double *se);

/* Chunking and sharding. Chunk c is run by shard i of n iff c % n == i (round robin: balanced,
 * deterministic, independent of n_chunks). */
typedef qv_status (*qv_cmp_chunk_fn)(void *user, const qv_cmp_chunk *c);
/* Optional: sees the FP32 logits of rows [p, p + n) of chunk `index` (ids: the chunk's ctx
 * tokens), R's in lr and C's in lc ([n, V] each), before they are scored (`--dump-logits`). */
typedef qv_status (*qv_cmp_logits_fn)(void *user, int index, const int32_t *ids, int ctx, int p, int n,
                                      int V, const float *lr, const float *lc);

typedef struct {
    int ctx;                   /* chunk length */
    int piece;                 /* tokens per prefill call (bounds logits memory); 0: 512 */
    int shard_i, shard_n;      /* 0/1 for everything */
    const unsigned char *have; /* [n_chunks]: nonzero = already done (resume); may be NULL */
    int max_new_chunks;        /* stop after this many newly computed chunks; 0: no limit */
    qv_cmp_chunk_fn on_chunk;  /* required: receives each finished chunk (valid during the call) */
    void *user;
    qv_progress_fn progress;   /* done / total over this shard's chunks still to run */
    void *progress_user;
    qv_cmp_logits_fn on_logits; /* may be NULL */
    void *logits_user;
} qv_cmp_opts;

/* Number of full chunks of ctx tokens in n_ids (a short last chunk is dropped). */
int qv_cmp_n_chunks(int64_t n_ids, int ctx);

/* Runs R and C over this shard's chunks not in `have`. Errors: ctx outside [2, max_pos] of
 * either model, fewer ids than one chunk, vocab sizes that differ -> QV_ERR_INPUT; engine and
 * callback errors pass through (with the chunk named). */
qv_status qv_eval_compare(qv_engine *r, qv_engine *c, const int32_t *ids, int64_t n_ids,
                          const qv_cmp_opts *o);

/* R vs C from logit dumps (docs/byo.md): `ref` and `cand` are each a safetensors file or a
 * folder of them (read in name order); every file holds `ids` (I32 [ctx], or [k, ctx] for k
 * chunks) and `logits` (F16, BF16 or F32, [ctx, V] or [k, ctx, V]; ctx - 1 rows are accepted,
 * the last position scores nothing). Chunk c is the c-th chunk across the files. Files are
 * memory-mapped and opened one at a time, rows converted to FP32 a few at a time, and scored by
 * qv_cmp_accumulate exactly as qv_eval_compare scores an engine's logits, so FP32 dumps of the
 * same logits give the same bits. `ids_path` (may be NULL): a `qvet dump-ids` file whose
 * chunks both dumps must match. Only o->on_chunk, o->user, o->progress are used. Errors
 * (QV_ERR_INPUT, naming file, chunk and position): ids differing between R and C or from
 * ids_path, different ctx or vocab, different chunk counts, NaN/Inf in a dump, bad shapes or
 * dtypes. On success *n_chunks, *ctx, *vocab and *ids_hash (FNV-1a of all chunks' ids) are set. */
qv_status qv_eval_compare_dumps(const char *ref, const char *cand, const char *ids_path, const qv_cmp_opts *o,
                                int *n_chunks, int *ctx, int *vocab, uint64_t *ids_hash);

/* FNV-1a 64 of the ids (little-endian int32 bytes): identifies the token stream in results. */
uint64_t qv_ids_hash(const int32_t *ids, int64_t n);

/* ---- JSON (schema "qvet.compare", version QV_CMP_SCHEMA_VERSION; docs/evals.md) ---- */
#define QV_CMP_SCHEMA_VERSION 1

/* What identifies a run: resume and merge refuse results whose meta differs (except shard). */
typedef struct {
    char *model, *cand_model, *ref, *cand, *quantized, *text; /* cand_model/quantized may be NULL */
    int ctx, bos;
    int64_t max_tokens, n_tokens;   /* max_tokens 0: whole text */
    int n_chunks_total;
    char ids_hash[17];              /* hex qv_ids_hash */
    int shard_i, shard_n;
    char *command;                  /* the command line that reproduces it (informative) */
} qv_cmp_meta;

void qv_cmp_meta_free(qv_cmp_meta *m);
struct cJSON;
/* The whole result: meta, chunks (per-chunk sufficient statistics), summary (when s->n > 0). */
qv_status qv_cmp_to_json(const qv_cmp_meta *m, qv_cmp_set *s, struct cJSON **out);
/* The summary alone (also used by validate's report). */
struct cJSON *qv_cmp_summary_json(const qv_cmp_summary *sum);
/* Reads a result written by qv_cmp_to_json; `path` names it in messages. */
qv_status qv_cmp_from_json(const struct cJSON *j, const char *path, qv_cmp_meta *m, qv_cmp_set *s);
/* 0 when a and b describe the same run (shards aside); else writes the differing field to *what. */
int qv_cmp_meta_differs(const qv_cmp_meta *a, const qv_cmp_meta *b, const char **what);
/* A number item printed with %.17g (reads back bit for bit; null for NaN/Inf). */
struct cJSON *qv_json_exact(double x);
/* Writes JSON text atomically. */
qv_status qv_json_write_atomic(const char *path, const struct cJSON *j);
/* Reads and parses a JSON file (QV_ERR_IO / QV_ERR_INPUT naming the path). */
qv_status qv_json_read(const char *path, struct cJSON **out);

#endif
