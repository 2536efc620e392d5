/* The kernel case matrix (`qvet kernels`, the gate, tests): kernel x value mode x shape, each case
 * a seeded input set run through the reference definition (ref/qoq, plain loops) and through an
 * implementation under test, compared bit for bit where the contract is integer or fixed-order
 * FP32 (NUMERICS.md), ggml's test-backend-ops style.
 *
 * Backends:
 *   QV_KB_CPU_EMUL  the CPU emulation of the kernels' own data path: weights read from the packed
 *                   layout lane by lane as a warp loads them, level-2 dequantization by the
 *                   4-lanes-per-register emulation (u*s1 then per-byte subtraction), INT32
 *                   accumulation on BLAS dgemm (exact), the epilogue from those accumulators.
 *                   Runs everywhere: this is what the gate checks without a GPU.
 *   QV_KB_GPU       the CUDA kernels (gpu/), INT32 accumulators via their debug entries; skipped
 *                   (visibly) where no device exists.
 *   QV_KB_PLUGIN    an external implementation loaded through the qv_kernel_plugin ABI
 *                   (include/qvet/kernel_plugin.h) by qv_kplugin_load and made current by
 *                   qv_kcase_set_plugin; ops it leaves NULL are skipped. */
#ifndef QVET_KCASES_H
#define QVET_KCASES_H

#include <stdint.h>

#include "qvet/status.h"

typedef enum { QV_KK_W8A8 = 0, QV_KK_W4A8_CHN, QV_KK_W4A8_G128, QV_KK_COUNT } qv_kkernel;
typedef enum {
    QV_KV_RANDOM = 0, /* random codes and scales */
    QV_KV_MAXPOS,     /* x = +127, codes 15 (g128: s1 16, sz1 128) */
    QV_KV_MAXNEG,     /* x = -127, codes 0 */
    QV_KV_ALTERNATE,  /* x = +-127, codes 0/15 alternating along k */
    QV_KV_BIGSCALE,   /* maximal scales: outputs overflow FP16 and must be reported */
    QV_KV_COUNT
} qv_kvalues;
typedef enum { QV_KB_CPU_EMUL = 0, QV_KB_GPU, QV_KB_PLUGIN } qv_kbackend;

typedef struct {
    qv_kkernel kernel;
    qv_kvalues values;
    int M, N, K;
} qv_kcase;

typedef struct {
    int skipped;          /* backend unavailable (no GPU; the plugin lacks the kernel) */
    int no_acc, no_out;   /* plugin: the _acc entry / the GEMM entry is absent, so not compared */
    int impl_error;       /* the implementation (a plugin op) returned an error: the status says */
    long acc_mismatch;    /* INT32 accumulators that differ */
    long out_mismatch;    /* FP16 outputs whose bits differ */
    long w_mismatch;      /* CPU emulation: dequantized INT8 weights that differ from the definition */
    long first;           /* flat m*N+n of the first mismatch, -1 if none */
    int32_t first_acc_ref, first_acc_got;
    uint16_t first_out_ref, first_out_got;
    long sat_ref, sat_got; /* outputs whose pre-rounding |v| > 65504: reference / implementation */
    double gpu_seconds;   /* GPU backend: the production kernel's time (best of QV_KCASE_TIMED_RUNS
                           * launches, each synchronized, host clock); 0 otherwise */
    int ok;
} qv_kresult;
#define QV_KCASE_TIMED_RUNS 5

const char *qv_kkernel_name(qv_kkernel k);
const char *qv_kvalues_name(qv_kvalues v);
/* One line naming the case: "w4a8_g128 M=1 N=4096 K=4096 random" (used by --filter). */
void qv_kcase_name(const qv_kcase *c, char *buf, int n);

/* The default matrix: M = 1, odd M, M across tile boundaries (the decode kernel's 8/16 and the
 * tiled kernels' 16/17, 64/65, 256/257); K tails (K % 32 == 0, not a stage multiple) for W8A8
 * and per-channel; last N tile partial (W8A8 also N % 32 != 0); several g128 groups; the
 * Llama-3-8B layer shapes (qkv 6144x4096, o 4096x4096, gate_up 28672x4096, down 4096x14336) at
 * small M;
 * adversarial value modes on small shapes. `quick` keeps the small shapes only. Returns a
 * malloc'd array. */
qv_status qv_kcase_matrix(int quick, qv_kcase **cases, int *n);

/* Runs one case on a backend with inputs drawn from `seed`. QV_OK when the comparison ran
 * (r->ok says whether it matched); an error status when it could not run. */
qv_status qv_kcase_run(const qv_kcase *c, qv_kbackend b, uint64_t seed, qv_kresult *r);

/* ---- attention cases (evals/kernels/kcase_attn.c): the paged KV4 attention kernel's CPU
 * emulation (QV_KB_CPU_EMUL) or the GPU kernels themselves (QV_KB_GPU: gpu/rope_kv.cu writes the
 * pages, gpu/attn_paged.cu reads them) against the definitions (KV4 pages bit for bit; output
 * within the derived bound) ---- */
typedef enum { QV_KA_RANDOM = 0, QV_KA_TIES, QV_KA_LARGE, QV_KA_COUNT } qv_kattn_values;
typedef struct {
    int nh, nkv, hd, ctx, T, page; /* heads, KV heads, head_dim, context, query rows (last T), page size */
    qv_kattn_values values;
} qv_kattn_case;
typedef struct {
    long code_mismatch; /* (token, head) KV4 slots whose codes/scale/min bytes differ */
    long out_bad;       /* outputs beyond the derived bound */
    long nonfinite;     /* NaN/Inf outputs */
    double worst_ratio; /* max |err| / bound */
    double nmse;        /* sum err^2 / sum out^2; must stay <= u16^2 = 2^-22 (docs/bounds.md "NMSE ceiling") */
    int skipped;        /* QV_KB_GPU without a device */
    int ok;
} qv_kattn_result;
const char *qv_kattn_values_name(qv_kattn_values v);
/* "nh=8 nkv=2 hd=32 ctx=40 T=8 page=16 random" */
void qv_kattn_name(const qv_kattn_case *c, char *buf, int n);
qv_status qv_kattn_matrix(qv_kattn_case **cases, int *n);
/* QV_KB_GPU: QV_ERR_USAGE for a shape outside the GPU kernels' contract (head_dim in
 * {32, 64, 128}, heads per KV head in {1, 2, 3, 4, 8}); r->skipped without a device. */
qv_status qv_kattn_run(const qv_kattn_case *c, qv_kbackend b, uint64_t seed, qv_kattn_result *r);
/* Test hook (tests/test_kernels.c): a nonzero value plants a known bug in the attention CPU
 * emulation only (never in the definition), so a test can show the attention cases catch it:
 * 1 KV4 min not added back, 2 GQA head map h % nkv, 3 causal mask off by one, 4 page index from
 * t+1, 5 softmax without max subtraction. 0 in production. (The gate's QV_MUTANTS build plants
 * the same bugs by id.) */
extern int qv_kattn_emul_plant;

/* ---- fused-producer cases (evals/kernels/kcase_fused.c, kcase_fused_gpu.c): the GPU fused
 * producers against their definitions (include/qvet/kernels_ref.h), checked as
 * tests/test_gpu_kernels.c checks them: quant_a8 codes, s_a, row sums bit-exact; rmsnorm_a8 and
 * silu_mul_a8 under the NUMERICS.md tie rule (QV_A8_PRE_REL, ties counted), s_a within the same
 * relative bound, row sums equal to the sum of the kernel's own codes; rope_kv_write (KV4 cache)
 * q/k/v and the whole page pool bit-exact. GPU only: there is no separate CPU emulation of these
 * kernels (the reference is the definition). ---- */
typedef enum { QV_KF_QUANT_A8 = 0, QV_KF_RMSNORM_A8, QV_KF_SILU_MUL_A8, QV_KF_ROPE_KV_WRITE, QV_KF_COUNT } qv_kfused_kernel;
typedef struct {
    qv_kfused_kernel kernel;
    int M, K; /* rows x row length (silu_mul: K = I, input [M, 2I]); rope_kv_write: M tokens, K = head_dim */
    int nh, nkv; /* rope_kv_write only */
} qv_kfused_case;
typedef struct {
    long n;          /* codes (A8) or bytes (rope: q/k/v + pool) compared */
    long code_bad;   /* A8 codes beyond the tie rule (exact kernels: any difference) */
    long ties;       /* A8 codes one apart at a rounding boundary (allowed; 0 for the exact kernels) */
    long sa_bad;     /* s_a beyond the bound (exact kernels: any difference) */
    long rowsum_bad; /* row sums that differ */
    long byte_bad;   /* rope_kv_write: q/k/v elements and pool bytes that differ */
    int exact;       /* 1: the contract is bit-exact; 0: the tie rule */
    int skipped;     /* no device */
    int ok;
    char first[240]; /* the first violation, "" if none */
} qv_kfused_result;
const char *qv_kfused_kernel_name(qv_kfused_kernel k);
/* "quant_a8 M=7 K=4096", "rope_kv_write T=33 nh=8 nkv=2 hd=128 page=16 kv4" */
void qv_kfused_name(const qv_kfused_case *c, char *buf, int n);
qv_status qv_kfused_matrix(qv_kfused_case **cases, int *n);
/* QV_KB_GPU only (QV_ERR_USAGE otherwise); r->skipped without a device. */
qv_status qv_kfused_run(const qv_kfused_case *c, qv_kbackend b, uint64_t seed, qv_kfused_result *r);
/* The checks themselves, on host copies of a kernel's outputs (also tests/test_gpu_kernels.c):
 * quant_a8 of FP32 values x (FP16-representable) bit for bit; a fused producer's codes for values
 * v under the tie rule. They fill r's counts (adding to r->n) and set r->ok. */
qv_status qv_kfused_check_a8_exact(int M, int K, const float *x, const int8_t *gq, const float *gsa,
                                   const int32_t *grs, qv_kfused_result *r);
qv_status qv_kfused_check_a8_ties(int M, int K, const float *v, const int8_t *gq, const float *gsa,
                                  const int32_t *grs, qv_kfused_result *r);

/* ---- explicit values (the overflow fuzzer, fuzz/corpus replay) ----
 * Every input given by the caller instead of drawn from a seed. Shapes: N % 32 == 0 for the W4
 * kernels, K % 32 == 0 (g128: K % 128 == 0). The row sums are computed here (INT32, as a fused
 * producer emits them). Unused pointers may be NULL (w8 for W4; u, sz for W8A8; s1, sz1 unless
 * g128). QV_ERR_INPUT/QV_ERR_CHECK when the reference rejects the values (a g128 group that
 * dequantizes outside [-128, 127], K beyond the format's INT32 bound, NaN/Inf outputs); the
 * message says which. */
typedef struct {
    qv_kkernel kernel;
    int M, N, K;
    const int8_t *x;          /* [M][K] activation codes */
    const float *sa;          /* [M] */
    const int8_t *w8;         /* W8A8: [N][K] */
    const uint8_t *u;         /* W4: [N][K] UINT4 codes, one per byte */
    const uint16_t *sw, *sz;  /* [N] FP16 bits: s_w (g128: s0); chn: scaled zero */
    const uint8_t *s1, *sz1;  /* g128: logical [N][K/128] */
} qv_kexplicit;
/* Runs explicit values on a backend (r as for qv_kcase_run). */
qv_status qv_kcase_run_explicit(const qv_kexplicit *e, qv_kbackend b, qv_kresult *r);

/* Test hook for the fuzzer's own test (tests/test_fuzz_overflow.c): a nonzero value plants a
 * known bug in the CPU emulation only (never in the reference), so that the test can show the
 * overflow fuzzer finds and minimizes it. 1: the emulation counts an FP16 overflow only when the
 * rounded value is Inf (|v| >= 65520), missing (65504, 65520); 2: the emulation's per-channel row
 * sum goes through FP16 (wrong once |rowsum| > 2048 and not representable). 0 in production. */
extern int qv_kcase_emul_plant;

/* ---- external implementations: the qv_kernel_plugin ABI (evals/kernels/kplugin.c) ---- */
typedef struct qv_kplugin qv_kplugin;
/* dlopens path (a name without '/' is taken in the current directory, never searched in the
 * library path), looks up qv_kernel_plugin_register, registers and checks the ABI version, the
 * name and that at least one op is set. QV_ERR_INPUT naming the library otherwise. */
qv_status qv_kplugin_load(const char *path, qv_kplugin **out);
/* Calls the plugin's destroy, then dlcloses it. NULL is allowed. */
void qv_kplugin_close(qv_kplugin *p);
const char *qv_kplugin_name(const qv_kplugin *p);
const char *qv_kplugin_path(const qv_kplugin *p);
/* Bit 1: the kernel's GEMM entry is set; bit 2: its _acc entry. 0: kernel not implemented. */
int qv_kplugin_ops(const qv_kplugin *p, qv_kkernel k);
/* The plugin QV_KB_PLUGIN runs (one per process: the CLI sets it). NULL: none, QV_KB_PLUGIN then
 * fails with QV_ERR_USAGE. */
void qv_kcase_set_plugin(const qv_kplugin *p);

#endif
