/* CPU references of the GPU fused kernels and paged attention (include/qvet/gpu_kernels.h), and
 * the derived error bounds the differential test applies (docs/bounds.md, "GPU kernels").
 * A8 and KV4 are ref/qoq's functions (qv_quant_a8_ref, qv_kv4_write_token); these add the parts
 * the kernels fuse in front of them, in ref-fp32's formulas. */
#ifndef QVET_KERNELS_REF_H
#define QVET_KERNELS_REF_H

#include <stdint.h>

#include "qvet/fp16.h"
#include "qvet/model.h"
#include "qvet/qoq.h"
#include "qvet/status.h"

/* FP32 unit roundoff, and the relative error bound of an A8 kernel's pre-rounding value v*inv
 * vs the reference's when the kernel computes v itself (RMSNorm: FP64 sum in another order;
 * SiLU: CUDA expf <= 2 ulp vs glibc): 32u (derivation in docs/bounds.md). */
#define QV_U32 (1.0 / 16777216.0)
#define QV_A8_PRE_REL (32.0 * QV_U32)

/* Rounding an FP32 value to the 16-bit type t (RNE): relative error <= qv_dtype16_u(t) for normal
 * results (FP16 2^-11, BF16 2^-8: 11 and 8 significand bits), absolute <= qv_dtype16_sub(t) in the
 * subnormal range (half the smallest subnormal: FP16 2^-25, BF16 2^-134). */
static inline double qv_dtype16_u(qv_dtype16 t) { return t == QV_DTYPE_BF16 ? 1.0 / 256.0 : 1.0 / 2048.0; }
static inline double qv_dtype16_sub(qv_dtype16 t)
{
    return t == QV_DTYPE_BF16 ? 4.6e-41 /* 2^-134 = 4.59e-41, rounded up */ : 1.0 / 33554432.0;
}

/* cos/sin of (float)pos * inv_freq[i] for pos < max_pos, i < head_dim/2 ([max_pos][hd/2] each),
 * as ref-fp32's rope() computes them. */
qv_status qv_ref_rope_table(const qv_config *c, int max_pos, float *cos_t, float *sin_t);

/* ref-fp32's RMSNorm: y = w * (x * r), r = 1/sqrtf((float)(sum x^2 (double) / K) + eps). */
void qv_ref_rmsnorm_rows(const float *x, const float *w, float eps, int M, int K, float *y);
/* silu(g) * u = g / (1 + expf(-g)) * u from gu FP16 [M, 2I] (gate | up) -> y FP32 [M, I]. */
void qv_ref_silu_mul_rows(const uint16_t *gu, int M, int I, float *y);
/* The same with gu of 16-bit type t (BF16: gpu-fp16 --dtype bf16). */
void qv_ref_silu_mul_rows_dt(qv_dtype16 t, const uint16_t *gu, int M, int I, float *y);
/* A8 of v [M, K] via qv_quant_a8_ref plus the INT32 row sums and the pre-rounding values
 * pre = v * (127/amax) (0 for an all-zero row). pre/rowsum may be NULL. */
qv_status qv_ref_a8_with_pre(const float *v, int M, int K, int8_t *q, float *s_a, int32_t *rowsum, float *pre);
/* The same with ref-qoq's compat option (QServe's A8: amax floored at 1e-6, FP16 s_a, codes
 * saturated to [-128, 127]); no row sums. */
qv_status qv_ref_a8_pre(const float *v, int M, int K, int compat, int8_t *q, float *s_a, float *pre);
/* NUMERICS.md tie rule for one code: equal codes pass; a differing code passes (as a tie) only when
 * it differs by one and the reference's pre-rounding value lies within rel*|pre| of the rounding
 * boundary between them. Returns 0 ok, 1 tie, -1 violation. */
int qv_ref_a8_code_check(int gpu, int ref, float pre, double rel);

/* RoPE of one token's q and k heads (rotate-half, table rows of position pos) and FP16 rounding of
 * q, k, v: qkv FP16 [(nh + 2 nkv) * hd] -> q FP16 [nh*hd], k, v FP16 [nkv*hd]. */
void qv_ref_rope_qkv(const uint16_t *qkv, int nh, int nkv, int hd, const float *cos_row, const float *sin_row,
                     uint16_t *q, uint16_t *k, uint16_t *v);
/* The same with every 16-bit value (qkv, q, k, v) of type t, rounded to t (RNE). */
void qv_ref_rope_qkv_dt(qv_dtype16 t, const uint16_t *qkv, int nh, int nkv, int hd, const float *cos_row,
                        const float *sin_row, uint16_t *q, uint16_t *k, uint16_t *v);

/* Attention of one query row in FP64: q [nh][hd] (FP16 values), K, V [ctx][nkv][hd] FP32 (the
 * values the kernel reads: FP16 or dequantized KV4), scale as the kernel's FP32 value. out
 * [nh][hd] is the exact-arithmetic result on those inputs, bound [nh][hd] the derived bound on
 * |kernel output (FP16) - out| (docs/bounds.md). */
void qv_ref_attention_row(const float *q, const float *K, const float *V, int ctx, int nh, int nkv, int hd,
                          float scale, double *out, double *bound);
/* The same for a kernel whose output is of 16-bit type t (the bound's output-rounding term is t's). */
void qv_ref_attention_row_dt(qv_dtype16 t, const float *q, const float *K, const float *V, int ctx, int nh, int nkv,
                             int hd, float scale, double *out, double *bound);

/* The error model behind a bound: magnitudes standing in for |k| and |v| in the error sums (NULL:
 * |K| and |V| themselves) and relative terms added to gamma_hd (the score dot) and to
 * gamma_{ctx+8} (the P.V and P sums). The general kernel's model is all zero/NULL. */
typedef struct {
    const float *Kmag, *Vmag; /* [ctx][nkv][hd] like K, V; each >= |K|, |V| elementwise */
    double dot_extra, pv_extra;
} qv_attn_err_model;

/* The tensor-core KV4 kernel's model (gpu/attn_kv4_mma.cu, docs/bounds.md): magnitudes u*s + |mn|
 * of each dequantized element (the kernel sums the factored terms s*(q.u) and mn*sum(q)), tensor-core
 * accumulation <= 17 * 2^-22 of the summed magnitudes per MMA step (8 steps for hd 128; 12 for a
 * warp's 64 positions in three BF16 parts), the exact vs twice-rounded dequantization (2u), and
 * the extra FP32 roundings of the factored forms. Kmag/Vmag are left for the caller to set. */
void qv_attn_err_model_kv4_mma(int hd, qv_attn_err_model *m);

/* qv_ref_attention_row under error model m (NULL: the general kernel's). */
void qv_ref_attention_row_m(const float *q, const float *K, const float *V, int ctx, int nh, int nkv, int hd,
                            float scale, const qv_attn_err_model *m, double *out, double *bound);

#endif
