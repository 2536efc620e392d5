/* QoQ calibration (quant/): from an FP model to transformed FP32 weights that the quantized-model
 * builder (include/qvet/qmodel.h) turns into a checkpoint. docs/quant.md describes the algorithm,
 * the facts it follows (deepcompressor / QServe) and where qvet differs.
 *
 * Pipeline (qv_quant_calibrate), each step switchable:
 *   1. statistics: one ref-fp32 pass over the calibration samples (capture callbacks) collects
 *      per-channel max |K| after RoPE, max |x| of the o_proj and down_proj inputs, and a
 *      deterministic subsample of token rows of every linear layer's input;
 *   2. SmoothAttention (alpha 0.5, RoPE-pair-shared lambda) folded into W_q / W_k (+ biases);
 *   3. rotation: RMSNorm weights folded into the next linears, W <- W H (q/k/v/gate/up/lm_head),
 *      W <- H^T W (o/down), E <- E H; H = block-diagonal normalized Hadamard with random signs;
 *   4. smoothing of o_proj / down_proj inputs, beta searched on a grid (identity included);
 *   5. clipping: per output channel ratio from a grid (1.0 included) minimizing the layer output
 *      error on the subsample; applied by clamping the FP32 weights, so the quantizer of the
 *      format (ref/qoq) sees the shrunk range.
 * All transforms except clipping leave the FP32 forward unchanged up to rounding (tests). */
#ifndef QVET_QUANT_H
#define QVET_QUANT_H

#include <stdint.h>

#include "qvet/model.h"
#include "qvet/qmodel.h"
#include "qvet/status.h"

/* ---- the FP32 working copy ---- */
typedef struct {
    float *wq, *wk, *wv, *wo, *w_gate, *w_up, *w_down; /* [out, in] */
    float *bq, *bk, *bv, *bo;                          /* NULL when absent */
    float *input_norm, *post_norm;                     /* [H] */
} qv_qwork_layer;

typedef struct {
    qv_config cfg;          /* tie_word_embeddings is 0 once lm_head is separate (always here) */
    int H, I, nh, nkv, hd, V, L;
    float *embed;           /* [V, H] */
    float *lm_head;         /* [V, H], always its own copy */
    float *final_norm;      /* [H] */
    qv_qwork_layer *layers;
    qv_qlinear *gptq;       /* [L * QV_QL_COUNT] GPTQ linears (owned), or NULL when GPTQ did not run */
} qv_qwork;

/* FP32 copy of every weight of m (tied embeddings are copied twice). */
qv_status qv_qwork_from_model(const qv_model *m, qv_qwork **out);
void qv_qwork_free(qv_qwork *w);
/* Moves w's GPTQ linears (if any) into qm, replacing the round-to-nearest ones qv_qmodel_from_fp32
 * built; checks shapes and format, and every range (qv_qlinear_check). */
qv_status qv_quant_install_gptq(qv_qwork *w, qv_qmodel *qm);
/* An in-memory qv_model whose tensors (F32) are views of w's arrays: w must outlive it and not
 * be reallocated. tok (may be NULL) is borrowed, not owned. Free with qv_qwork_model_free. */
qv_status qv_qwork_to_model(const qv_qwork *w, const qv_model *like, qv_model **out);
void qv_qwork_model_free(qv_model *m);

/* ---- rotation ---- */
/* Block size of the block-diagonal Hadamard for width n: the largest power of two dividing n
 * (n = 384 -> 128: three blocks). */
int qv_hadamard_block(int n);
/* v <- v H (= H^T v: the same vector operation) for one vector of n: signs (+-1, [n]) then a
 * normalized Walsh-Hadamard transform of each block. */
void qv_hadamard_apply(float *v, int n, const float *signs);
/* Random +-1 signs from a seed (splitmix64). */
void qv_hadamard_signs(uint64_t seed, int n, float *signs);
/* Folds every RMSNorm weight into the linears that read it (final norm into lm_head) and sets the
 * norms to 1. */
void qv_quant_fold_norms(qv_qwork *w);
/* Rotates the residual stream by H (norms must be folded first: QV_ERR_USAGE otherwise). */
qv_status qv_quant_rotate(qv_qwork *w, uint64_t seed);

/* v/o head rotation of one layer (quant/rotate.c): V rows per KV head and o_proj input columns
 * per query head by the normalized head-size Hadamard (no signs). scratch: 2 * head_dim floats. */
void qv_quant_rotate_v(qv_qwork *w, int layer, float *scratch);

/* ---- SmoothAttention ---- */
/* lambda [nkv * hd] from kmax [nkv * hd] (post-RoPE max |K|): max(kmax, 1e-5)^alpha, then each
 * RoPE pair (j, j + hd/2) takes the larger of its two. */
void qv_smooth_attn_lambda(const float *kmax, int nkv, int hd, float alpha, float *lambda);
/* K rows of layer l (W_k, b_k) divided by lambda, Q rows of every query head of the group
 * (W_q, b_q) multiplied. */
void qv_smooth_attn_apply(qv_qwork *w, int layer, const float *lambda);

/* ---- formats and fake quantization (ref/qoq's quantizers, dequantized to FP32) ---- */
/* Formats: qv_qformat of include/qvet/qmodel.h.
 * Wq[N][K] = dequant(quant(W)) with the checkpoint's own quantizer (qv_qlinear_quantize, then
 * qv_qlinear_dequant), so the searches measure exactly what the checkpoint will hold. */
qv_status qv_fakequant_weight(qv_qformat f, const float *W, int N, int K, float *Wq);
/* Xq[M][K] = dequant(A8(X)), per token. */
qv_status qv_fakequant_act(const float *X, int M, int K, float *Xq);

/* ---- clipping ---- */
/* Clamps row n of W to ratio[n] times its range (per group of 128 along K for g128, per row for
 * the other formats; per-channel ranges include 0 as the quantizer widens them). */
void qv_clip_apply(qv_qformat f, float *W, int N, int K, const float *ratio);
/* For each row, the ratio of grid[0..n_grid-1] minimizing sum_t (y_tn - yq_tn)^2 with
 * y = X W^T (FP) and yq = A8(X) Q(clip(W))^T over the rows X [M][K]; ties keep the earlier grid
 * entry. err_best / err_one [N] (may be NULL): the chosen error and the error at ratio 1.0. */
qv_status qv_clip_search(qv_qformat f, const float *X, int M, const float *W, int N, int K,
                         const float *grid, int n_grid, float *ratio, double *err_best,
                         double *err_one);

/* ---- smoothing of o_proj / down_proj inputs ---- */
/* wmax[k] = max_n |W[n][k]| (column maxima of W [N][K]). */
void qv_col_absmax(const float *W, int N, int K, float *wmax);
/* s_j = xmax_j^beta / wmax_j^(1-beta) for j < K; a zero or non-finite factor is 1. */
void qv_smooth_factors(const float *xmax, const float *wmax, int K, float beta, float *s);
/* The error of a candidate s (NULL: identity): sum (X W^T - A8(X/s) Q(W s)^T)^2. */
qv_status qv_smooth_error(qv_qformat f, const float *X, int M, const float *W, int N, int K,
                          const float *s, double *err);

/* ---- GPTQ (quant/gptq.c; docs/quant.md) ---- */
typedef struct {
    float percdamp;   /* damping: percdamp x mean(diag H) added to the diagonal (0.01) */
    int block;        /* columns per lazy-update block (128) */
    int act_order;    /* 1: columns swept by decreasing H diagonal (deepcompressor: always) */
    int max_tries;    /* Cholesky retries, each adding 0.1 percdamp x mean diag (250) */
} qv_gptq_opts;
void qv_gptq_opts_init(qv_gptq_opts *o);

typedef struct {
    int dead;          /* columns with H_kk = 0 */
    int tries;         /* Cholesky attempts used */
    float damp;        /* damping added to the diagonal */
    double err_rtn;    /* sum_n (w_n - q_n)^T H (w_n - q_n): RTN with the same scales */
    double err_gptq;   /* the same for the GPTQ codes (H undamped: = 2/M ||X W^T - X Wq^T||^2) */
} qv_gptq_info;

/* Hs [K][K] += X^T X (upper triangle only) for X [M][K]. */
void qv_gptq_hessian_add(float *Hs, const float *X, int M, int K);
/* Hs <- 2/rows Hs, mirrored into the lower triangle. */
void qv_gptq_hessian_finish(float *Hs, int K, long rows);
/* sum_n (W - Wq)_n^T Hs (W - Wq)_n over the N rows of [N][K] weights. */
qv_status qv_gptq_output_error(const float *Hs, int K, const float *W, const float *Wq, int N, double *err);
/* GPTQ of W [N][K] into format f. The scales and zero points are the format's quantizer's
 * (qv_qlinear_quantize) for Wscale (NULL: W), e.g. pre-clipped weights; the column sweep starts
 * from W with error feedback through the Cholesky factor of (Hs + damping)^-1. out is the linear
 * qv_qlinear_quantize(Wscale, bias) builds, with the sweep's codes (it passes qv_qlinear_check).
 * info (may be NULL) also gets the RTN and GPTQ errors under Hs. */
qv_status qv_gptq_quantize(qv_qformat f, const float *W, const float *Wscale, int N, int K, const float *bias,
                           const float *Hs, const qv_gptq_opts *o, qv_qlinear *out, qv_gptq_info *info);

/* ---- the whole calibration ---- */
typedef void (*qv_quant_progress_fn)(void *user, int done, int total, const char *what);

typedef struct {
    qv_qformat format;
    int smooth_attn, rotate, smooth, clip; /* 1 = on */
    int gptq;                              /* 1 = GPTQ codes instead of round-to-nearest */
    int rotate_v;                          /* 1 = v/o head rotation (then no o_proj smoothing); default 0 */
    qv_gptq_opts gptq_opts;
    float alpha;                           /* SmoothAttention exponent (0.5) */
    int samples, seqlen;                   /* calibration sequences and their length */
    int sub_rows;                          /* token rows kept per layer input for searches */
    uint64_t seed;                         /* sampling and Hadamard signs */
    int threads;                           /* 0: library default */
    qv_quant_progress_fn progress;         /* may be NULL */
    void *progress_user;
} qv_quant_opts;
void qv_quant_opts_init(qv_quant_opts *o); /* defaults: g128, all on, 0.5, 32 x 512, 512 rows */

/* What ran, for the checkpoint metadata and the report. */
typedef struct {
    int n_samples, seqlen;
    int64_t n_tokens_text;    /* tokens of the calibration text */
    double beta_o_mean, beta_down_mean; /* mean chosen beta (identity counts as -1, excluded) */
    int n_identity_o, n_identity_down;  /* layers where no smoothing won */
    double clip_ratio_mean;   /* over every output channel of every linear */
    double clip_err_gain;     /* sum err(best) / sum err(1.0), over all linears */
    double seconds_stats, seconds_search, seconds_total;
    float *beta_o, *beta_down; /* [L] chosen beta, -1 = identity (owned) */
    long gptq_rows;            /* calibration rows behind each Hessian (0: no GPTQ) */
    double seconds_gptq;       /* Hessian transforms + sweeps (the accumulation is in stats) */
    double gptq_err_rtn, gptq_err; /* summed over all linears (qv_gptq_info) */
    double *err_rtn, *err_gptq;    /* [L * QV_QL_COUNT] per linear (owned; NULL without GPTQ) */
    int gptq_max_tries, gptq_dead; /* worst Cholesky tries, dead columns in all */
} qv_quant_report;
void qv_quant_report_free(qv_quant_report *r);

/* Tokens of the calibration text -> samples. Deterministic for seed: sample i starts at a
 * position drawn uniformly from [0, n - seqlen]. QV_ERR_INPUT if n < seqlen. ids_out is
 * [samples][seqlen] (malloc'd). */
qv_status qv_quant_sample(const int32_t *ids, int64_t n, int samples, int seqlen, uint64_t seed,
                          int32_t **ids_out);

/* Runs the calibration on m with the given samples; w receives the transformed, clipped FP32
 * weights (the caller frees with qv_qwork_free). */
qv_status qv_quant_calibrate(const qv_model *m, const int32_t *samples, const qv_quant_opts *o,
                             qv_qwork **w, qv_quant_report *rep);

/* ---- calibration statistics (quant/stats.c) ---- */
typedef struct {
    int L, H, I, Dq, Dkv, rows; /* rows actually kept per layer (<= sub_rows) */
    float *kmax;   /* [L][Dkv] post-RoPE max |K| */
    float *omax;   /* [L][Dq] max |o_proj input| */
    float *dmax;   /* [L][I]  max |down_proj input| */
    float *x_in;   /* [L][rows][H] residual stream entering the layer (subsample) */
    float *x_mid;  /* [L][rows][H] stream after attention (subsample) */
    float *x_o;    /* [L][rows][Dq] o_proj inputs */
    float *x_d;    /* [L][rows][I] down_proj inputs */
    /* GPTQ Hessians 2/T sum x^T x over EVERY calibration position (T = h_rows), of the original
     * model's inputs: h_in/h_mid of the RMS-normalized stream WITHOUT the norm weight (the
     * calibration maps them: rotation, norm weights, smoothing), h_o / h_d of the o_proj and
     * down_proj inputs. NULL unless requested. */
    float *h_in, *h_mid;  /* [L][H][H] */
    float *h_o;           /* [L][Dq][Dq] */
    float *h_d;           /* [L][I][I] */
    long h_rows;
} qv_quant_stats;
/* m is run by ref-fp32; w0 is its FP32 copy (for the down_proj inputs, which the engine does
 * not capture: silu(gate(n2)) * up(n2) recomputed from the captured stream). */
qv_status qv_quant_collect(const qv_model *m, const qv_qwork *w0, const int32_t *samples,
                           int n_samples, int seqlen, int sub_rows, int hessians, int threads,
                           qv_quant_stats *s);
void qv_quant_stats_free(qv_quant_stats *s);

#endif
