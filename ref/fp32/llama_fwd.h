/* The Llama forward of ref-fp32, shared with ref-qoq (not a public API).
 *
 * ref-fp32 runs it with no hooks: plain FP32. ref-qoq embeds a qv_llama as its first member and
 * sets hooks for what QoQ changes: the linear layers (A8 activations, integer GEMMs, epilogues),
 * the FP16 rounding points of the kernels, and the KV cache (KV4 pages). Everything else (RMSNorm,
 * RoPE, attention, SwiGLU, capture, checks) is the one code path of ref/fp32/ref_fp32.c. */
#ifndef QVET_LLAMA_FWD_H
#define QVET_LLAMA_FWD_H

#include "qvet/engine.h"

typedef struct {
    float *wq, *wk, *wv, *wo, *w_gate, *w_up, *w_down; /* [out, in]; NULL when not loaded */
    float *bq, *bk, *bv, *bo;                          /* NULL when absent */
    float *input_norm, *post_norm;                     /* [H] */
} qv_llama_layer;

typedef struct {
    float **k, **v; /* [layer] -> [cap, nkv*hd]: the values attention reads */
    int cap;        /* positions allocated */
} qv_llama_kv;

/* Rounding points (where the kernels hold a tensor in FP16). */
typedef enum {
    QV_RP_RESIDUAL = 0, /* residual stream after each add (layer = the block) */
    QV_RP_QKV,          /* q, k (after RoPE) and v before caching */
    QV_RP_ATTN,         /* attention heads output (o_proj input) */
    QV_RP_FINAL         /* final-norm output (lm_head input), layer = -1 */
} qv_llama_round_point;

/* Linear ids 0..6 are q, k, v, o, gate, up, down (qv_qlinear_id); the LM head is this. */
#define QV_LLAMA_LM_HEAD 7

typedef struct qv_llama qv_llama;
typedef struct {
    /* y[T, N] = x[T, K] W^T (+ bias) for linear `id` of `layer` (layer -1 with QV_LLAMA_LM_HEAD). */
    qv_status (*linear)(qv_llama *e, int layer, int id, const float *x, int T, int K, int N, float *y);
    void (*round)(qv_llama *e, int layer, qv_llama_round_point p, float *x, size_t n);
    /* Stores this batch's K/V rows into the caches attention reads (phase 0, before attention)
     * and finishes after it (phase 1). NULL: the FP32 copy of ref-fp32. */
    qv_status (*kv_store)(qv_llama *e, int layer, int phase, const qv_engine_batch *b, int T, const int *row_seq,
                          const int *row_pos, const float *k, const float *v);
} qv_llama_hooks;

struct qv_llama {
    qv_engine base; /* first: the common part */
    qv_config c;
    int H, I, nh, nkv, hd, V, L;
    float *embed, *lm_head, *final_norm; /* lm_head == embed when tied */
    qv_llama_layer *layers;
    float *inv_freq; /* [hd/2] */
    qv_llama_kv *kv; /* [max_seqs] */
    qv_llama_hooks hooks;
    const char *tag; /* engine name in messages */
};

/* Sets up e (allocated by the caller, zeroed, at least sizeof(qv_llama)): base from (vt, model, o),
 * the FP weights from fp_model (embeddings, norms, LM head; the linear weights of the layers in
 * lin_mask, or of all layers when lin_mask is NULL). On failure e is cleaned up (not freed). */
qv_status qv_llama_init(qv_llama *e, const qv_engine_vtable *vt, const qv_model *model, const qv_model *fp_model,
                        const qv_engine_opts *o, const qv_layer_mask *lin_mask);
void qv_llama_fini(qv_llama *e);
qv_status qv_llama_seq_init(qv_engine *base, int slot);
void qv_llama_seq_release(qv_engine *base, int slot);
qv_status qv_llama_forward(qv_engine *base, const qv_engine_batch *b, float *logits);
/* The plain FP32 linear of ref-fp32 (sgemm + bias), for hooks that fall back to it. */
void qv_llama_linear_f32(qv_llama *e, const float *x, int T, int K, const float *W, int N, const float *b, float *y);
/* W and bias of linear `id` of `layer` (NULL W when not loaded). */
const float *qv_llama_weight(const qv_llama *e, int layer, int id, const float **bias);

#endif
