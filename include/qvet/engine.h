/* Engines: one interface, four implementations (ARCHITECTURE.md "Engines").
 *
 *   ref-fp32  plain FP32 math, OpenBLAS GEMMs: the accuracy reference (ref/fp32/)
 *   ref-qoq   exact QoQ emulation (ref/qoq_engine/)
 *   gpu-fp16  cuBLAS FP16 (or, with opts.dtype BF16, BF16) baseline (gpu/engine_gpu.c)
 *   gpu-qoq   the production kernels: W4A8 GEMMs, fused A8 producers, KV4 paged attention
 *             (gpu/engine_gpu.c); both answer QV_ERR_UNSUPPORTED "no GPU" without CUDA or device
 *
 * Usage:
 *   qv_engine *e; qv_engine_opts o; qv_engine_opts_init(&o);
 *   qv_engine_open("ref-fp32", model, &o, &e);
 *   qv_seq_id s[2]; qv_engine_seq_create(e, 2, s);
 *   qv_engine_prefill(e, 2, s, tokens, n_tokens, 1, logits);   // last position of each
 *   qv_engine_decode(e, 2, s, next, logits);                    // one token each
 *   qv_engine_seq_free(e, s[0]); ... qv_engine_close(e);
 *
 * A sequence is a slot holding a KV cache; prefill appends any number of tokens to it (so a
 * prefill can continue an earlier one), decode appends exactly one. Positions are implicit:
 * the i-th token ever appended to a sequence sits at position i. Evals never know which engine
 * they hold. Errors: QV_ERR_INPUT for bad token ids, empty input, a context beyond the model's
 * max_position_embeddings; QV_ERR_CHECK when a NaN/Inf is produced mid-forward (the message
 * names the layer, the tensor, the sequence and the position). After a failed call the
 * sequences involved keep the length they had before it. */
#ifndef QVET_ENGINE_H
#define QVET_ENGINE_H

#include <stdint.h>

#include "qvet/fp16.h"
#include "qvet/model.h"
#include "qvet/status.h"

/* ---- options ---- */

typedef enum {
    QV_ATTN_KV4 = 0, /* every attention (prefill included) reads dequantized KV4 (NUMERICS.md) */
    QV_ATTN_SERVE    /* prefill attends fresh FP16 K/V, writes KV4; decode reads KV4 */
} qv_attn_mode;      /* ignored by ref-fp32 / gpu-fp16, whose caches are not quantized */

/* Per-layer bitmasks: bit (l % 64) of word (l / 64); room for 256 layers. */
#define QV_LAYER_MASK_WORDS 4
typedef struct { uint64_t w[QV_LAYER_MASK_WORDS]; } qv_layer_mask;
static inline void qv_layer_mask_set(qv_layer_mask *m, int layer)
{
    if (layer >= 0 && layer < 64 * QV_LAYER_MASK_WORDS) m->w[layer / 64] |= 1ull << (layer % 64);
}
static inline int qv_layer_mask_has(const qv_layer_mask *m, int layer)
{
    return layer >= 0 && layer < 64 * QV_LAYER_MASK_WORDS && ((m->w[layer / 64] >> (layer % 64)) & 1u);
}

typedef struct {
    qv_attn_mode attn_mode;
    int threads;              /* 0: the libraries' default (OpenBLAS / OpenMP) */
    uint64_t seed;            /* for engines that draw anything at random (none does yet) */
    /* Ablations for quantized engines: keep one component in full precision. */
    int fp_kv;                /* KV cache in FP16 instead of KV4 */
    qv_layer_mask fp_weights; /* layers whose linear weights stay FP16 */
    qv_layer_mask fp_acts;    /* layers whose activations stay FP16 */
    const char *quantized_path; /* QoQ checkpoint (ref-qoq, gpu-qoq); NULL otherwise */
    int qserve_compat;        /* QServe's numerics variants (docs/numerics-qvet.md; ref-qoq) */
    int max_seqs;             /* most live sequences at once; 0: 64 */
    qv_dtype16 dtype;         /* gpu-fp16's weight/activation/KV type (FP16 default, or BF16); any
                               * other engine with BF16 is QV_ERR_USAGE at open */
} qv_engine_opts;

void qv_engine_opts_init(qv_engine_opts *o);

/* ---- capture: per-layer tensors streamed to a callback as they are produced ---- */

typedef enum {
    QV_CAP_BLOCK_INPUT = 0, /* [n_pos, hidden]: residual stream entering layer `layer` */
    QV_CAP_Q,               /* [n_pos, n_heads, head_dim] after RoPE (and bias) */
    QV_CAP_K,               /* [n_pos, n_kv_heads, head_dim] after RoPE, as cached */
    QV_CAP_V,               /* [n_pos, n_kv_heads, head_dim] as cached */
    QV_CAP_ATTN_HEADS,      /* [n_pos, n_heads, head_dim]: softmax(qk)v per head, before o_proj */
    QV_CAP_ATTN_OUT,        /* [n_pos, hidden]: o_proj output (attention block output) */
    QV_CAP_MLP_OUT,         /* [n_pos, hidden]: down_proj output */
    QV_CAP_RESIDUAL,        /* [n_pos, hidden]: residual stream after the block */
    QV_CAP_LOGITS,          /* [n_out, vocab]: final logits (layer = -1), the rows returned */
    QV_CAP_COUNT
} qv_capture_kind;

#define QV_CAP_ALL ((1u << QV_CAP_COUNT) - 1u)

typedef int qv_seq_id;

typedef struct {
    int layer;            /* 0..num_layers-1; -1 for logits */
    qv_capture_kind kind;
    qv_seq_id seq;
    int pos0, n_pos;      /* positions [pos0, pos0 + n_pos) of that sequence */
    int ndim;
    int64_t shape[3];     /* shape[0] == n_pos */
    const float *data;    /* row-major FP32; valid only during the callback */
} qv_capture_point;

typedef void (*qv_capture_fn)(void *user, const qv_capture_point *p);

const char *qv_capture_kind_name(qv_capture_kind k);

/* ---- the engine ---- */

typedef struct qv_engine qv_engine;

/* Names: "ref-fp32", "ref-qoq", "gpu-fp16", "gpu-qoq". An unknown name is QV_ERR_USAGE; a known
 * GPU engine without a GPU is QV_ERR_UNSUPPORTED. The model must outlive the engine. */
qv_status qv_engine_open(const char *name, const qv_model *model, const qv_engine_opts *opts,
                         qv_engine **out);
void qv_engine_close(qv_engine *e);
const char *qv_engine_name(const qv_engine *e);

/* Creates n empty sequences (ids written to ids[0..n-1]); QV_ERR_USAGE when max_seqs would be
 * exceeded. Reset empties a sequence (its KV is never read again); free releases it. */
qv_status qv_engine_seq_create(qv_engine *e, int n, qv_seq_id *ids);
qv_status qv_engine_seq_reset(qv_engine *e, qv_seq_id id);
qv_status qv_engine_seq_free(qv_engine *e, qv_seq_id id);
/* Tokens held by a sequence (its next position), or -1 if it does not exist. */
int qv_engine_seq_len(const qv_engine *e, qv_seq_id id);

/* Appends tokens[i][0..n_tokens[i]-1] to sequence seqs[i], for i < n_seqs (distinct ids).
 * Logits: for each sequence, its last min(last_n, n_tokens[i]) positions (last_n <= 0: all of
 * them), written row by row into `logits` (FP32 [rows, vocab]), sequence by sequence in the
 * order given. `logits` may be NULL (no logits computed: e.g. warming a cache). */
qv_status qv_engine_prefill(qv_engine *e, int n_seqs, const qv_seq_id *seqs,
                            const int32_t *const *tokens, const int *n_tokens, int last_n,
                            float *logits);
/* Appends one token to each sequence; logits [n_seqs, vocab] (may be NULL). */
qv_status qv_engine_decode(qv_engine *e, int n_seqs, const qv_seq_id *seqs,
                           const int32_t *tokens, float *logits);
/* Rows `qv_engine_prefill` writes for these lengths. */
int64_t qv_engine_logit_rows(int n_seqs, const int *n_tokens, int last_n);

/* Capture: fn is called for every produced tensor whose kind bit is set in kind_mask
 * (1u << QV_CAP_x, or QV_CAP_ALL), once per sequence of the batch. fn NULL turns it off. */
void qv_engine_set_capture(qv_engine *e, qv_capture_fn fn, void *user, uint32_t kind_mask);

/* Time accounting since open (the benchmark reads it). */
typedef struct {
    double gemm_seconds;   /* wall time in the linear layers' GEMMs */
    double gemm_flops;     /* their 2*M*N*K summed */
    double attn_seconds;   /* wall time in attention (its two GEMMs and the softmax) */
    double attn_flops;     /* 4 * new tokens * context * head_dim per head (causal half included) */
    double forward_seconds;/* wall time inside prefill/decode */
    int64_t tokens;        /* tokens processed */
} qv_engine_stats;
void qv_engine_get_stats(const qv_engine *e, qv_engine_stats *s);

/* ---- for implementations (ref/fp32, later ref/qoq, gpu/) ---- */

/* A validated batch: tokens appended at positions start[i] .. start[i] + n_tokens[i] - 1. */
typedef struct {
    int n_seqs;
    const qv_seq_id *seqs;
    const int32_t *const *tokens;
    const int *n_tokens;
    const int *start;
    int last_n;
} qv_engine_batch;

typedef struct {
    const char *name;
    qv_status (*open)(const qv_model *m, const qv_engine_opts *o, qv_engine **out);
    void (*close)(qv_engine *e);
    /* The slot becomes an empty sequence; called by create and reset. */
    qv_status (*seq_init)(qv_engine *e, int slot);
    /* Releases what the slot holds (KV memory). */
    void (*seq_release)(qv_engine *e, int slot);
    /* Runs the batch; writes logits (rows as documented for prefill) unless NULL. */
    qv_status (*forward)(qv_engine *e, const qv_engine_batch *b, float *logits);
} qv_engine_vtable;

/* The common part; implementations embed it as their first member. */
struct qv_engine {
    const qv_engine_vtable *vt;
    const qv_model *model;
    qv_engine_opts opts;
    qv_capture_fn capture;
    void *capture_user;
    uint32_t capture_mask;
    int max_seqs;
    int *seq_len;          /* [max_seqs]; -1 = free slot */
    qv_engine_stats stats;
};

/* Sets the common part (allocates seq_len); implementations call it from open. */
qv_status qv_engine_base_init(qv_engine *e, const qv_engine_vtable *vt, const qv_model *m,
                              const qv_engine_opts *o);
void qv_engine_base_free(qv_engine *e);

#endif
