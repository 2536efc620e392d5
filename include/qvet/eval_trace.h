/* Error attribution (EVALS.md "Error attribution"; docs/trace.md): where in the network, at which
 * positions and in which heads a candidate C departs from a reference R on the same tokens.
 *
 * Streaming: R and every candidate variant run interleaved, one prefill piece at a time. R's
 * captured tensors are kept only for the current piece (per layer: residual, attention output,
 * per-head attention, MLP output, K, V); each variant's tensors are compared with them as the
 * engine emits them and reduced at once to sums of squares. What survives a piece is scalars:
 * per (layer, position bucket) and per (layer, head) sums of ||C-R||^2 and ||R||^2, one residual
 * relative error per (position, layer), one KLD per position. Memory is O(piece * layer width +
 * ctx * layers), never O(ctx * tensor width). */
#ifndef QVET_EVAL_TRACE_H
#define QVET_EVAL_TRACE_H

#include <stdint.h>

#include "qvet/engine.h"
#include "qvet/evals.h"
#include "qvet/tokenizer.h"

#define QV_TRACE_SCHEMA_VERSION 1

/* Where a position's residual error "first jumps" (docs/trace.md): with r_l the relative
 * residual error after block l and r_{-1} = 0 (the embeddings are exact in both engines), the
 * first l with r_l >= floor and r_l >= ratio * r_{l-1}. -1 when no layer qualifies. */
#define QV_TRACE_JUMP_RATIO 2.0
#define QV_TRACE_JUMP_FLOOR 1e-3
/* A worst position's "anomaly layer": the first l where r_l >= floor and r_l >= this times the
 * median of r_l over the analyzed positions (where it departs from the typical position). */
#define QV_TRACE_ANOMALY_RATIO 1.5

typedef struct {
    const char *label; /* e.g. "cand", "cand+fp_kv" */
    qv_engine *e;
} qv_trace_variant;

typedef struct {
    int ctx;            /* tokens run: positions 0..ctx-1 of ids */
    int pos_lo, pos_hi; /* analyzed positions, inclusive (hi < ctx - 1: position t is scored by
                           token t+1); pos_hi < 0: ctx - 2 */
    int piece;          /* tokens per prefill call; 0: 256 */
    int n_buckets;      /* position buckets; 0: min(32, analyzed positions) */
    int top_k;          /* worst positions listed; 0: 10 */
    double jump_ratio, jump_floor; /* 0: the defaults above */
    qv_progress_fn progress; /* done/total in tokens of the pass */
    void *progress_user;
} qv_trace_opts;

/* One variant's statistics. Arrays: [L*nb] indexed l*nb+b; heads [L*nh]; kv [L*nkv];
 * res_pos [n_pos*L] indexed (t-pos_lo)*L+l; kld [n_pos]. */
typedef struct {
    char *label;
    double *res_e2, *res_r2, *attn_e2, *attn_r2, *mlp_e2, *mlp_r2; /* per (layer, bucket) */
    double *head_e2, *head_r2;                                   /* attention heads (o_proj inputs) */
    double *k_e2, *k_r2, *v_e2, *v_r2;                           /* K, V as cached, per KV head */
    float *res_pos;  /* relative residual error per (position, layer) */
    double *kld;     /* per position: KLD(p_R || p_C) of the next-token distributions, nats */
    int64_t top1;    /* positions where the argmaxes agree */
    double nll_ref, nll_cand;
} qv_trace_var;

typedef struct {
    int L, nh, nkv, nb, ctx, pos_lo, pos_hi, n_pos, bucket_width, V;
    double jump_ratio, jump_floor;
    int n_var;
    qv_trace_var *var;
} qv_trace_result;

/* Runs R and the variants (n_var >= 1; variant 0 is "the candidate") over ids[0..ctx-1].
 * Errors: ctx outside [2, max_position_embeddings], fewer ids than ctx, positions outside the
 * run, engines with different shapes -> QV_ERR_INPUT; engine errors pass through naming the
 * variant. On error *out is freed and zeroed. */
qv_status qv_trace_run(qv_engine *r, const qv_trace_variant *vars, int n_var, const int32_t *ids, int64_t n_ids,
                       const qv_trace_opts *o, qv_trace_result *out);
void qv_trace_result_free(qv_trace_result *t);

/* Derived figures (pure functions of a result). */
double qv_trace_rel(double e2, double r2); /* sqrt(e2 / r2); 0 when both are 0; +Inf when only r2 is */
/* Jump layer of analyzed position t (absolute) in variant v (definition above). */
int qv_trace_jump_layer(const qv_trace_result *t, int v, int pos);
/* Layers ranked by how many analyzed positions first jump there (ties: larger error added
 * r_l - r_{l-1} over the whole run first). rank[0..L-1] = layer ids; count[l] the counts. */
void qv_trace_layer_ranking(const qv_trace_result *t, int v, int *rank, int64_t *count);
/* The k worst analyzed positions by KLD (ties: earlier position first); returns how many. */
int qv_trace_worst(const qv_trace_result *t, int v, int k, int *pos);
/* Mean KLD over positions [0, len-1) of the run: the KLD of the text truncated at len tokens
 * (identical for causal engines with per-token quantization, docs/trace.md). NaN if len > ctx. */
double qv_trace_kld_prefix(const qv_trace_result *t, int v, int len);

/* Ablation sweep: R's logits for ids[0..n-1] are computed once and held (n * vocab floats, so
 * n is a short prefix); each variant is run alone over the same tokens and its mean KLD
 * against R returned in kld[i] (positions 0..n-2). Variants with e == NULL are opened lazily
 * through open_fn(user, i, &e) and closed after use, so one engine is alive at a time. */
typedef qv_status (*qv_trace_open_fn)(void *user, int i, qv_engine **e);
qv_status qv_trace_ablate(qv_engine *r, int n_var, qv_trace_open_fn open_fn, void *user, const int32_t *ids, int n,
                          int piece, qv_progress_fn progress, void *progress_user, double *kld);

/* ---- output ---- */
typedef struct {
    const char *model, *ref, *cand, *quantized, *text, *command;
    int64_t n_tokens;
    const char *ids_hash;
    /* ablation (n_abl 0: none) */
    int n_abl, abl_tokens;
    const char *const *abl_label;
    const double *abl_kld; /* [n_abl]; entry 0 is the candidate itself */
    double seconds, main_seconds, ablation_seconds; /* whole command; the streaming pass; the sweep */
    long peak_rss_kb;
} qv_trace_meta;

struct cJSON;
/* JSON (schema "qvet.trace", version QV_TRACE_SCHEMA_VERSION; docs/trace.md). ids/tok give the
 * worst positions' tokens and context (tok may be NULL). Run-dependent figures (seconds, RSS)
 * sit under "timing" only, so two runs' JSON minus "timing" compare equal. */
qv_status qv_trace_to_json(const qv_trace_result *t, const qv_trace_meta *m, const int32_t *ids, const qv_tok *tok,
                           int top_k, struct cJSON **out);
/* report.html from that JSON: self-contained, inline SVG, no scripts. */
qv_status qv_trace_html(const struct cJSON *j, const char *path);

#endif
