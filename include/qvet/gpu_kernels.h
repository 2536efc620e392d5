/* qvet's GPU fused kernels and paged attention (issue 8). CPU references: include/qvet/kernels_ref.h
 * (which reuses ref/qoq's A8 and KV4 functions where the contract is the same); tests:
 * tests/test_gpu_kernels.c; docs/gpu-engines.md.
 *
 * All pointers are DEVICE pointers. FP16 values are raw IEEE bits (uint16_t). `stream` is a
 * cudaStream_t (NULL: default stream); calls are asynchronous. Without CUDA every entry returns
 * QV_ERR_UNSUPPORTED ("no GPU") after its argument check.
 *
 * ---- A8 producers (NUMERICS.md "Activations: A8"): per row m of K values v,
 *   amax = max|v|; amax == 0: codes 0, s_a = 1; else inv = 127/amax, q = clamp(rne(v*inv), -127, 127),
 *   s_a = amax/127 (FP32), rowsum = sum q (INT32, exact). rowsum may be NULL.
 * qv_gpu_quant_a8:      v = x (FP16 input [M, K]); bit-exact vs qv_quant_a8_ref.
 * qv_gpu_rmsnorm_a8:    v = w[k] * (x[k] * r), r = 1/sqrtf((float)(sum_k x^2 / K) + eps), the sum
 *                       in FP64 (x FP32 [M, K] residual stream, w FP32 [K]): as ref-fp32's rmsnorm.
 * qv_gpu_silu_mul_a8:   v = g / (1 + expf(-g)) * u with g = gu[m, k], u = gu[m, I + k] (FP16 [M, 2I]).
 * The _f16 variants write v rounded to FP16 instead (gpu-fp16's path); the _bf16 variants round
 * to BF16 (RNE), and silu_mul_bf16 reads gu as BF16 (gpu-fp16 --dtype bf16). gpu/fused_f16.cu.
 *
 * ---- RoPE + cache write: qkv FP16 [T, (nh + 2 nkv) * hd] (q heads, then k, then v), positions
 * pos[T], cos/sin FP32 tables [max_pos][hd/2] (computed on the host by qv_ref_rope_table, so the
 * rotation is bit-identical to the reference). Rotate-half: out[i] = a*c + (-b)*s, out[i+hd/2] =
 * b*c + a*s (a = x[i], b = x[i+hd/2]). Writes q_out FP16 [T, nh*hd], k_out / v_out FP16
 * [T, nkv*hd] (the fresh K/V, as cached before quantization) and the cache entry of each token
 * (KV4: qv_kv4_quant_ref on the FP16 K/V; FP16: the values).
 *
 * ---- Paged KV cache (per layer): pool of pages; page p holds K at pool + (2p) * page_bytes and V
 * at pool + (2p+1) * page_bytes. A page is ref/qoq's KV4 page (qv_kv4_write_token's layout: codes
 * [nkv][P][hd/2] | s FP16 [nkv][P] | mn FP16 [nkv][P]) or, for the FP16 cache, [nkv][P][hd] FP16.
 * page_table [n_slots][max_pages] INT32: page of position t of slot s is page_table[s*max_pages +
 * t/P], entry t % P.
 *
 * ---- Attention over rows: row r is one query position with nh heads q[r] (FP16 [R, nh, hd]) of
 * cache slot row_slot[r], attending positions 0 .. row_ctx[r]-1. Positions >= row_fstart[r] are
 * read from the fresh FP16 K/V (k_out/v_out above) at row row_fidx[r] + (t - row_fstart[r])
 * (`serve` mode's prefill); the others from the cache. Decode = one row per sequence; prefill =
 * one row per new token (causal). GQA: head h reads KV head h / (nh/nkv). Scores in FP32:
 * (q.k) * scale, softmax with the running max, P.V accumulated in FP32, output FP16 [R, nh, hd].
 * Split over chunks of QV_ATTN_CHUNK positions, combined by a second kernel (flash-decoding).
 *
 * ---- BF16 (gpu-fp16 --dtype bf16): a cache of format QV_KV_FMT_BF16 makes *every* 16-bit value of
 * rope_kv_write and attention BF16 instead of FP16: qkv, q_out, k_out, v_out, the pages
 * ([nkv][P][hd] BF16, the FP16 page's layout), q, fresh K/V and out; roundings are RNE to BF16 where
 * the FP16 formats round to FP16. (KV4 and FP16 caches keep FP16 activations.)
 * hd in {32, 64, 128} (32: the synthetic tiny model); nh/nkv in {1, 2, 3, 4, 8}. */
#ifndef QVET_GPU_KERNELS_H
#define QVET_GPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "qvet/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QV_ATTN_CHUNK 256

typedef enum { QV_KV_FMT_KV4 = 0, QV_KV_FMT_FP16 = 1, QV_KV_FMT_BF16 = 2 } qv_kv_fmt;

qv_status qv_gpu_quant_a8(const uint16_t *x, int M, int K, int8_t *q, float *s_a, int32_t *rowsum,
                          void *stream);
qv_status qv_gpu_rmsnorm_a8(const float *x, const float *w, float eps, int M, int K, int8_t *q,
                            float *s_a, int32_t *rowsum, void *stream);
qv_status qv_gpu_rmsnorm_f16(const float *x, const float *w, float eps, int M, int K, uint16_t *y,
                             void *stream);
qv_status qv_gpu_silu_mul_a8(const uint16_t *gu, int M, int I, int8_t *q, float *s_a,
                             int32_t *rowsum, void *stream);
qv_status qv_gpu_silu_mul_f16(const uint16_t *gu, int M, int I, uint16_t *y, void *stream);
qv_status qv_gpu_rmsnorm_bf16(const float *x, const float *w, float eps, int M, int K, uint16_t *y,
                              void *stream);
qv_status qv_gpu_silu_mul_bf16(const uint16_t *gu, int M, int I, uint16_t *y, void *stream);

typedef struct {
    qv_kv_fmt fmt;
    int n_kv_heads, head_dim, page_size;
    int max_pages;          /* columns of page_table */
    const int32_t *page_table;
    uint8_t *pool;          /* this layer's pages */
} qv_gpu_kv_cache;

/* Bytes of one K (or V) page. */
size_t qv_gpu_kv_page_bytes(qv_kv_fmt fmt, int n_kv_heads, int head_dim, int page_size);

qv_status qv_gpu_rope_kv_write(const uint16_t *qkv, int T, int nh, const int32_t *pos,
                               const int32_t *slot, const float *cos_t, const float *sin_t,
                               uint16_t *q_out, uint16_t *k_out, uint16_t *v_out,
                               const qv_gpu_kv_cache *cache, void *stream);

typedef struct {
    int R, nh;
    const uint16_t *q;
    const int32_t *row_slot, *row_ctx, *row_fstart, *row_fidx;
    const uint16_t *fresh_k, *fresh_v; /* may be NULL when no row reads fresh positions */
    float scale;
    int max_ctx;                        /* >= every row_ctx: sizes the chunk grid */
    uint16_t *out;
    void *ws;                           /* qv_gpu_attn_ws_bytes(R, nh, hd, max_ctx) bytes */
    size_t ws_bytes;
    int prefill;                        /* optional hint, 0 when unset (an initializer without it) */
} qv_gpu_attn_args;

/* prefill (a hint; results never depend on it): 1 when the rows come mostly as runs of consecutive
 * positions of one slot (row r + 1 is the same slot's next position), as a prefill's rows do. Rows
 * on the tensor-core KV4 kernel (qv_gpu_attention_uses_mma) then run on its tiled variant
 * (gpu/attn_kv4_tiled.cu: one block per 2 (QV_ATTN_TILE_ROWS=4: 4) consecutive rows; rows of one
 * slot share each K/V load and conversion) unless QV_ATTN_PREFILL=rows, where the device's shared
 * memory allows (both knobs are for tests and benchmarks). Every
 * row's output is bit-identical to the one-row kernel's for any rows: only speed depends on the
 * hint (a tile of rows of 4 different slots runs them one after another). */
size_t qv_gpu_attn_ws_bytes(int R, int nh, int head_dim, int max_ctx);
qv_status qv_gpu_attention(const qv_gpu_attn_args *a, const qv_gpu_kv_cache *cache, void *stream);
/* 1 when qv_gpu_attention runs these arguments on the tensor-core KV4 kernel (gpu/attn_kv4_mma.cu:
 * KV4 cache, head_dim 128, nh/nkv in {1,2,4,8}, page size % 16 == 0, fresh_k and fresh_v NULL, and
 * QV_ATTN_VARIANT is not "chunk"). Its error model differs (qv_attn_err_model_kv4_mma in
 * qvet/kernels_ref.h), so checks pick the bound by this. 0 without CUDA. */
int qv_gpu_attention_uses_mma(const qv_gpu_attn_args *a, const qv_gpu_kv_cache *cache);
/* The rows per tile (2 or 4) when qv_gpu_attention runs these arguments on the tiled prefill variant
 * of that kernel, else 0: it uses the tensor-core kernel, a->prefill is set, QV_ATTN_PREFILL is
 * not "rows" and a tile size's shared memory fits the current device. Tests report it (the variants'
 * outputs are bit-identical). 0 without CUDA. */
int qv_gpu_attention_uses_tiled(const qv_gpu_attn_args *a, const qv_gpu_kv_cache *cache);

/* The A8 producers' configurations for the QV_A8_VARIANT knob (gpu/fused_a8_rows.cuh; a bench and
 * test knob, not a tuning API): their number (1 without CUDA) and names (index 0 is "default";
 * NULL out of range). Every variant gives the same codes, scales and row sums. */
int qv_gpu_a8_variant_count(void);
const char *qv_gpu_a8_variant_name(int i);

/* Benchmarks (KV4 vs FP16-KV decode attention, fused producers, D2D copy) -> JSON + table. */
qv_status qv_bench_attn(const char *json_path);
/* The same rows added to root (a cJSON object) as the arrays "attention" and "fused" (plus
 * "copy_GBps", and "device" when absent), keeping rows whose "name" ("attn_kv4 batch=64
 * ctx=4096", "rmsnorm_a8 K=4096 M=1024") contains filter (NULL or "": all); `qvet bench`. */
struct cJSON;
qv_status qv_bench_attn_into(struct cJSON *root, const char *filter);

#ifdef __cplusplus
}
#endif

#endif
