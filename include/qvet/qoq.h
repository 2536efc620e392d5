/* QoQ (W4A8KV4) numerics: the executable definition of every format the GPU kernels implement
 * (/work/shared/design/NUMERICS.md is the prose; docs/numerics-qvet.md records what qvet adopts
 * and where QServe differs; docs/layout.md pictures the packed weight layout).
 *
 * Conventions. X activations [M][K] row-major (M tokens); W weights [N][K] row-major (N output
 * channels); codes are kept one per byte in the logical (unpacked) arrays; packed arrays are the
 * layout the kernels load. `rne` is round-half-to-even. Every function checks its dimensions at
 * entry and returns a qv_status with a message naming the shape at fault; none aborts.
 *
 * `compat` (int, 0 or 1) selects QServe's variant where it differs (ref-qoq --qserve-compat). */
#ifndef QVET_QOQ_H
#define QVET_QOQ_H

#include <stddef.h>
#include <stdint.h>

#include "qvet/fp16.h"
#include "qvet/status.h"

#define QV_QOQ_GROUP 128        /* level-2 group size along K */
#define QV_QOQ_PROTECT 119      /* level-1 protective range [-119, 119] */
#define QV_QOQ_TILE 32          /* packed W4 tile: 32 output channels x 32 K */
#define QV_QOQ_TILE_BYTES 512   /* 32 x 32 nibbles */
#define QV_KV4_PAGE_DEFAULT 16  /* tokens per KV page */

/* Largest K whose INT32 accumulator cannot overflow: |q| <= 127 and |w8'| <= 128 (a loaded
 * checkpoint may dequantize to -128), so 128*127*K < 2^31. */
#define QV_QOQ_G128_KMAX 132104
/* per channel: |q| <= 127, u <= 15 */
#define QV_QOQ_PC_KMAX 1127288
/* W8A8: |q| <= 127, |w| <= 127 */
#define QV_QOQ_W8_KMAX 133144

/* ---- FP16 outputs: overflow is a finding, never a silent saturation (NUMERICS.md) ---- */
typedef struct {
    long count;      /* outputs whose pre-rounding FP32 value has |v| > 65504 */
    long first;      /* flat index m*N+n of the first one, -1 if none */
    float first_val; /* its pre-rounding value */
    long nonfinite;  /* NaN/Inf produced (first index in first_nonfinite) */
    long first_nonfinite;
} qv_fp16_report;

/* ---- A8: per token, symmetric INT8 ----
 * s_a[m] = amax/127 (FP32) and q = clamp(rne(x*(127/amax)), -127, 127); amax == 0: codes 0,
 * s_a = 1. rowsum[m] is the row-sum operand of the per-channel epilogue in FP32: (float)sum_k q
 * (exact while |sum| < 2^24, always so for K <= QV_QOQ_G128_KMAX). compat: amax floored at 1e-6,
 * s_a = fp16(amax/127), rowsum = fp16(sum_k x) (QServe sums the unquantized values). X must be
 * finite (QV_ERR_INPUT naming the element otherwise). rowsum may be NULL. */
qv_status qv_quant_a8_ref(const float *X, int M, int K, int8_t *q, float *s_a, float *rowsum,
                          int compat);
/* The INT32 row sums a fused producer emits, for bit-exact comparison. */
qv_status qv_a8_rowsum_i32(const int8_t *q, int M, int K, int32_t *rowsum);

/* ---- W4 per channel (g = 0): asymmetric UINT4 ----
 * lo = min(0, min w), hi = max(0, max w), s_w = fp16((hi-lo)/15) (0 -> 1), z = clamp(rne(-lo/s_w),
 * 0, 15), u = clamp(rne(w/s_w) + z, 0, 15), sz = fp16(s_w*z). u is [N][K], one code per byte. */
qv_status qv_quant_w4pc_ref(const float *W, int N, int K, uint8_t *u, qv_fp16 *s_w, uint8_t *z,
                            qv_fp16 *sz);

/* ---- W4 progressive group (g = 128) ----
 * Level 1 (per channel): s0 = fp16(max|w|/protect) (0 -> 1), w8 = clamp(rne(w/s0), -protect,
 * protect). protect is QV_QOQ_PROTECT in production; a test plants 127 to show the overflow. */
qv_status qv_quant_w4g128_level1_ref(const float *W, int N, int K, int protect, int8_t *w8,
                                     qv_fp16 *s0);
/* Level 2 of ONE group of n INT8 values: lo/hi widened to include 0, s1 = max(1, ceil((hi-lo)/15)),
 * z = rne(-lo/s1), u = clamp(rne(w8/s1) + z, 0, 15), sz1 = z*s1. Fails (QV_ERR_INPUT) when the
 * range needs s1 > 16 (|w8| up to 127 never does). */
qv_status qv_quant_w4g128_group_ref(const int8_t *w8, int n, uint8_t *u, uint8_t *s1, uint8_t *z,
                                    uint8_t *sz1);
/* Both levels over [N][K]: K % 128 == 0. s1, z, sz1 are [N][K/128]. */
qv_status qv_quant_w4g128_ref(const float *W, int N, int K, int protect, uint8_t *u, qv_fp16 *s0,
                              uint8_t *s1, uint8_t *z, uint8_t *sz1);
/* The scalar definition of the run-time dequantization: w8' = u*s1 - sz1, as an int (it may lie
 * outside INT8 for a bad checkpoint: qv_w4g128_check_codes finds that). */
static inline int qv_w4g128_dequant1(uint8_t u, uint8_t s1, uint8_t sz1)
{
    return (int)u * (int)s1 - (int)sz1;
}
/* [N][K] codes -> [N][K] INT8; QV_ERR_CHECK naming (n, k) if a value leaves [-128, 127]. */
qv_status qv_w4g128_dequant_ref(const uint8_t *u, const uint8_t *s1, const uint8_t *sz1, int N,
                                int K, int8_t *w8p);
/* A loaded checkpoint's check: every code of every group dequantizes into [-128, 127], s1 in
 * [1, 16], sz1 <= 240. QV_ERR_INPUT naming the first bad (n, group, code). */
qv_status qv_w4g128_check_codes(const uint8_t *u, const uint8_t *s1, const uint8_t *sz1, int N,
                                int K);
/* The kernel's register-level-parallel dequantization, emulated on the CPU for one thread's
 * 16-byte load of the packed layout (docs/layout.md): the four 32-bit words are split into low and
 * high nibbles (8 words of 4 one-byte codes), each multiplied by its channel's s1 as a 32-bit
 * integer (u*s1 <= 240 < 256: no carry into the next byte), then sz1 is subtracted per byte
 * (__vsub4, modulo 256). s1x4/sz1x4 are the 4 bytes the thread loads from the reordered scale
 * arrays (channels c, c+8, c+16, c+24). out[j] holds four INT8 lanes, in the order of the mma B
 * fragment registers: out[0],out[1] channel c (k 0-3 | k 16-19), out[2],out[3] channel c+8,
 * out[4],out[5] channel c+16, out[6],out[7] channel c+24. */
void qv_w4g128_dequant_simd_emul(const uint8_t packed16[16], const uint8_t s1x4[4],
                                 const uint8_t sz1x4[4], uint32_t out[8]);
/* Per-byte subtraction modulo 256 (what __vsub4 does). */
uint32_t qv_vsub4_emul(uint32_t a, uint32_t b);

/* ---- W8 per channel, symmetric: s_w = fp16(max|w|/127) (0 -> 1), w8 = clamp(rne(w/s_w)) ---- */
qv_status qv_quant_w8_ref(const float *W, int N, int K, int8_t *w8, qv_fp16 *s_w);

/* ---- Packing (docs/layout.md). N % 32 == 0, K % 32 == 0. u [N][K] codes <-> packed N*K/2 ---- */
qv_status qv_w4_pack(const uint8_t *u, int N, int K, uint8_t *packed);
qv_status qv_w4_unpack(const uint8_t *packed, int N, int K, uint8_t *u);
/* Byte offset and nibble (0 low, 1 high) of code (n, k) in the packed layout. */
size_t qv_w4_packed_offset(int n, int k, int K, int *nibble);
/* Level-2 per-group bytes (s1 or sz1): logical [N][K/128] -> packed [K/128][N] with each block of
 * 32 channels reordered so position p = c*4 + j holds channel j*8 + c. N % 32 == 0. */
qv_status qv_w4g128_pack_groupbytes(const uint8_t *src, int N, int K, uint8_t *dst);
qv_status qv_w4g128_unpack_groupbytes(const uint8_t *src, int N, int K, uint8_t *dst);

/* ---- Integer GEMM emulation: acc[M][N] = sum_k q[m][k] * w[n][k] (INT32, exact) ---- */
typedef enum { QV_GEMM_LOOP = 0, QV_GEMM_BLAS = 1 } qv_gemm_impl;
/* INT8 x UINT4 codes (per channel). */
qv_status qv_gemm_acc_s8u4(const int8_t *q, const uint8_t *u, int M, int N, int K, int32_t *acc,
                           qv_gemm_impl impl);
/* INT8 x INT8 (W8A8, and g128 after level-2 dequantization). kmax bounds K (the caller's format). */
qv_status qv_gemm_acc_s8s8(const int8_t *q, const int8_t *w, int M, int N, int K, int kmax,
                           int32_t *acc, qv_gemm_impl impl);

/* ---- Epilogues (FP32, in exactly the written order; FP16 output with saturation reported) ----
 * per channel: y = fp16(s_a[m] * (s_w[n]*(float)acc - sz[n]*rowsum[m]));
 *   compat (QServe): y = fp16(((float)acc*s_w[n])*s_a[m] - sz[n]*rowsum[m]), overflow -> Inf.
 * g128 / W8A8: y = fp16((s_a[m]*s[n]) * (float)acc).
 * V (may be NULL) receives the pre-rounding FP32 values: overflow findings and bit-exact FP32
 * comparisons are made on them. */
qv_status qv_epilogue_w4a8_pc(const int32_t *acc, int M, int N, const float *s_a,
                              const float *rowsum, const qv_fp16 *s_w, const qv_fp16 *sz,
                              int compat, qv_fp16 *Y, float *V, qv_fp16_report *rep);
qv_status qv_epilogue_scaled(const int32_t *acc, int M, int N, const float *s_a, const qv_fp16 *s,
                             int compat, qv_fp16 *Y, float *V, qv_fp16_report *rep);

/* ---- Whole GEMMs (the kernels' contracts). acc_out (debug entry: the INT32 accumulators) and
 * rep may be NULL. Returns QV_ERR_CHECK when an output overflows FP16 or is NaN/Inf (Y is still
 * written, saturated as the kernel writes it; rep says where). ---- */
qv_status qv_ref_w4a8_pc_gemm(const int8_t *q, const float *s_a, const float *rowsum,
                              const uint8_t *u, const qv_fp16 *s_w, const qv_fp16 *sz, int M,
                              int N, int K, int compat, qv_gemm_impl impl, qv_fp16 *Y,
                              int32_t *acc_out, qv_fp16_report *rep);
qv_status qv_ref_w4a8_g128_gemm(const int8_t *q, const float *s_a, const uint8_t *u,
                                const qv_fp16 *s0, const uint8_t *s1, const uint8_t *sz1, int M,
                                int N, int K, int compat, qv_gemm_impl impl, qv_fp16 *Y,
                                int32_t *acc_out, qv_fp16_report *rep);
qv_status qv_ref_w8a8_gemm(const int8_t *q, const float *s_a, const int8_t *w8, const qv_fp16 *s_w,
                           int M, int N, int K, int compat, qv_gemm_impl impl, qv_fp16 *Y,
                           int32_t *acc_out, qv_fp16_report *rep);

/* ---- KV4: per token and KV head, min-offset form ----
 * x is rounded to FP16 first (as cached); mn = min x, s = fp16((max-mn)/15) (0 -> 1, codes 0),
 * u = clamp(rne((x-mn)/s), 0, 15), dequantized u*s + mn (FP32). Codes two per byte, low nibble
 * first. D (head_dim) must be even. compat: QServe's form (docs/numerics-qvet.md): zf =
 * fp16(-15*mn/(max-mn)) stored in place of mn, u = sat_u8(rne(x*(1/s) + zf)) & 15. */
qv_status qv_kv4_quant_ref(const float *x, int D, int compat, uint8_t *codes, qv_fp16 *s,
                           qv_fp16 *mn);
qv_status qv_kv4_dequant_ref(const uint8_t *codes, int D, qv_fp16 s, qv_fp16 mn, int compat,
                             float *x_hat);

/* A page holds page_size tokens of all KV heads of one layer's K (or V):
 *   codes [H][page_size][D/2] bytes | s [H][page_size] FP16 | mn [H][page_size] FP16
 * (QServe's placement: docs/numerics-qvet.md). Pages are consecutive in one buffer here; token t
 * lives in page t / page_size, slot t % page_size. */
typedef struct {
    int n_kv_heads; /* H */
    int head_dim;   /* D, even */
    int page_size;  /* tokens per page, >= 1 */
} qv_kv4_geom;
qv_status qv_kv4_page_bytes(qv_kv4_geom g, size_t *bytes);
/* x: [H][D] values of token t; pages: n_pages * page_bytes. */
qv_status qv_kv4_write_token(uint8_t *pages, long n_pages, qv_kv4_geom g, long t, const float *x,
                             int compat);
qv_status qv_kv4_read_token(const uint8_t *pages, long n_pages, qv_kv4_geom g, long t, float *x_hat,
                            int compat);
/* Error-bound magnitudes of token t's dequantized values (qvet form): u*s + |mn| per element,
 * rounded up (>= |u*s + mn|). The tensor-core attention kernel sums s*u and mn separately, so its
 * errors scale with these, not with |x_hat| (qv_attn_err_model in qvet/kernels_ref.h). */
qv_status qv_kv4_read_token_mag(const uint8_t *pages, long n_pages, qv_kv4_geom g, long t, float *mag);

#endif
