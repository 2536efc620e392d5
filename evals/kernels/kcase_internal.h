/* Inputs and reference outputs of one GEMM kernel case (evals/kernels/). */
#ifndef QV_KCASE_INTERNAL_H
#define QV_KCASE_INTERNAL_H

#include "qvet/fp16.h"
#include "qvet/kcases.h"
#include "qvet/kernel_plugin.h"

/* The case files' one seeded generator (splitmix64): a case's inputs are a function of its seed
 * (the gate's and `qvet kernels`' repro lines rely on it). */
typedef struct {
    uint64_t s;
} qv_krng;
static inline uint64_t qv_krng_next(qv_krng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
/* uniform in [0, 1) with 53 random bits */
static inline double qv_krng_unif(qv_krng *r) { return (double)(qv_krng_next(r) >> 11) * 0x1p-53; }

typedef struct {
    int M, N, K, G;
    int8_t *x;          /* [M,K] activation codes */
    float *sa;          /* [M] */
    int32_t *rowsum;    /* [M] INT32 (what a fused producer emits) */
    int8_t *w8;         /* [N,K] W8A8 weights, or g128's w8' by the definition */
    uint8_t *u;         /* [N,K] UINT4 codes */
    uint8_t *pk;        /* packed [N*K/2] */
    qv_fp16 *sw, *sz;   /* [N] s_w (or s0) and scaled zero */
    uint8_t *s1, *sz1;  /* logical [N][G] */
    uint8_t *s1p, *sz1p;/* packed [G][N] */
    int32_t *acc;       /* reference accumulators [M,N] */
    qv_fp16 *y;         /* reference outputs [M,N] */
    long nsat;          /* reference overflow count */
} qv_kdata;

/* Draws inputs for case c from seed and computes the reference (plain loops, NUMERICS.md). */
qv_status qv_kdata_make(const qv_kcase *c, uint64_t seed, qv_kdata *d);
void qv_kdata_free(qv_kdata *d);
/* Allocates every array of d for the shape (G = K/128 for g128, else 0); zeroes d first. */
qv_status qv_kdata_alloc(qv_kdata *d, int M, int N, int K, int G);
/* From the inputs (x, sa, rowsum, w8 or u, sw, sz, s1, sz1): derived operands and the reference
 * outputs; frees d on failure. */
qv_status qv_kdata_finish(const qv_kcase *c, qv_kdata *d);
/* Fills r's mismatch fields comparing (acc, y, sat) with the reference; acc or y NULL: not compared. */
void qv_kdata_compare(const qv_kdata *d, const int32_t *acc, const qv_fp16 *y, long sat, qv_kresult *r);

qv_status qv_kcase_run_cpu_emul(const qv_kcase *c, const qv_kdata *d, qv_kresult *r);
qv_status qv_kcase_run_gpu(const qv_kcase *c, const qv_kdata *d, qv_kresult *r);
qv_status qv_kcase_run_plugin(const qv_kcase *c, const qv_kdata *d, qv_kresult *r);
/* The loaded plugin's registered struct, and a QV_KP_ERR_* code's name (kplugin.c). */
const qv_kernel_plugin *qv_kplugin_api(const qv_kplugin *p);
const char *qv_kplugin_code_name(int rc);
/* QV_ERR_USAGE without a current plugin; r->skipped when it does not implement kernel k. */
qv_status qv_kcase_plugin_check(qv_kkernel k, qv_kresult *r);

/* An attention case on the GPU kernels (kcase_attn_gpu.c): sequence A (ctx_a tokens of ka/va,
 * [t][nkv*hd]) then B (ctx tokens of kb/vb) through one cache slot, attention for B's last T
 * positions (q [T][nh*hd]); returns B's pages in logical order (kp, vp: n_pages * page bytes each)
 * and the outputs (out [T][nh*hd]). QV_ERR_USAGE for a shape outside the kernels' contract. */
qv_status qv_kattn_run_gpu(const qv_kattn_case *c, int ctx_a, const float *ka, const float *va, const float *kb,
                           const float *vb, const float *q, uint8_t *kp, uint8_t *vp, float *out);

#endif
