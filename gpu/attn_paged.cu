// Paged attention over rows (issue 8): KV4 or FP16 cache, GQA, FP32 softmax; decode and (simple)
// prefill share it.
// What: grid (chunk, kv head, row). A block (4 warps) handles the G = nh/nkv query heads of one
// KV head for one chunk of QV_ATTN_CHUNK positions, so K/V of a chunk are read once for the whole
// GQA group. A thread owns 8 channels of one position: hd/8 lanes cover a position, a warp covers
// 32/(hd/8) positions per step; positions are loaded U = 4 steps ahead (independent loads in
// flight). KV4 is read as codes (one 32-bit word = 8 channels) + FP16 s and mn, dequantized in
// registers as u*s + mn (FP32, qv_kv4_dequant_ref's formula, no FMA); FP16 as one 16-byte load.
// Pass 1: scores (q.k) * scale into shared memory (partial dots summed over the hd/8 lanes by
// shuffles). Softmax per head over the chunk: max, p = expf(s - max), sum (FP32). Pass 2: P.V
// accumulated in FP32 registers, reduced over the positions of a warp (shuffles) and of the 4
// warps (shared memory). Each chunk writes its unnormalized output, max and sum; the combine
// kernel rescales chunks by expf(m_c - m) (flash-decoding) and writes FP16.
// Prefill is one row per query position (its causal context): K/V are re-read per row (from L2
// mostly); it is correct and simple, not a flash-tiled prefill. (The tensor-core KV4 rows have a
// tiled prefill variant, attn_kv4_tiled.cu, taken with the caller's prefill hint.) Rows in `serve` mode read their
// own batch's positions from the fresh FP16 K/V instead of the cache.
// Error: differs from an exact computation by the dot/softmax/sum roundings only; the derived
// bound is in docs/bounds.md and tests/test_gpu_kernels.c. Reference: qv_ref_attention_row.
// BF16 cache (gpu-fp16 --dtype bf16): the FP16-page kernels over T = __nv_bfloat16: q, fresh K/V,
// pages and the output are BF16 (gpu/f16_types.cuh); the arithmetic is the same FP32. AttnParams'
// `const __half *` pointers then address BF16 words (same 2-byte stride); T says how to read them.
#include <stdlib.h>
#include <string.h>

#include "attn_common.cuh"
#include "f16_types.cuh"

using namespace qv_attn;

namespace {

constexpr int kU = 4;

template <int HD, bool KV4, typename T = __half>
__device__ __forceinline__ void load8(const AttnParams &p, int slot, int fstart, int fidx, int pos, int kvh, int isv,
                                      int sub, float out[8])
{
    if (QV_DMUT(engine_kv_swap)) isv = 0; // planted bug (QV_MUTANTS builds only): V read from the K pages
    if (pos >= fstart) {
        const __half *f = (isv ? p.fresh_v : p.fresh_k) + ((size_t)(fidx + pos - fstart) * p.nkv + kvh) * HD + sub * 8;
        qv_f16t<T>::unpack8(*(const uint4 *)f, out);
        return;
    }
    // the planted bug kv_page_boundary (QV_MUTANTS builds only) takes the page of t+1
    int pg = QV_DMUT(kv_page_boundary) ? min((pos + 1) / p.P, p.max_pages - 1) : pos / p.P;
    int page = p.page_table[(size_t)slot * p.max_pages + pg], e = pos % p.P;
    const uint8_t *base = p.pool + ((size_t)page * 2 + isv) * p.page_bytes;
    size_t sidx = (size_t)kvh * p.P + e;
    if (KV4) {
        uint32_t w = *(const uint32_t *)(base + sidx * (HD / 2) + sub * 4);
        const __half *sp = (const __half *)(base + (size_t)p.nkv * p.P * (HD / 2));
        float s = __half2float(sp[sidx]), mn = __half2float(sp[(size_t)p.nkv * p.P + sidx]);
#pragma unroll
        for (int j = 0; j < 8; j++) {
            float us = __fmul_rn((float)((w >> (4 * j)) & 15u), s);
            out[j] = QV_DMUT(kv4_min_dropped) ? us : __fadd_rn(us, mn); // the mutant drops the min
        }
    } else {
        qv_f16t<T>::unpack8(*(const uint4 *)((const __half *)base + sidx * HD + sub * 8), out);
    }
}

template <int HD, int G, bool KV4, typename T = __half>
__global__ void __launch_bounds__(kWarps * 32) attn_chunk_kernel(AttnParams p)
{
    constexpr int LPT = HD / 8;          // lanes per position
    constexpr int PPW = 32 / LPT;        // positions per warp step
    constexpr int STEP = kWarps * PPW;   // positions per block step
    __shared__ float S[G][kChunk];
    __shared__ float red[kWarps][G][HD];
    int r = blockIdx.z, kvh = blockIdx.y, c = blockIdx.x;
    int ctx = p.row_ctx[r], c0 = c * kChunk;
    // planted bugs (QV_MUTANTS builds only): causal_off_by_one lets a row see the next position
    // (when one exists); gqa_map gives this block the query heads h with h % nkv == kvh
#ifdef QV_MUTANTS
    if (QV_DMUT(causal_off_by_one) && ctx < p.max_ctx) ctx++;
#endif
#ifdef QV_MUTANTS
    const bool gqa_mut = QV_DMUT(gqa_map);
#endif
    if (c0 >= ctx) return; // the combine kernel never reads this chunk
    int n = min(kChunk, ctx - c0);
    int slot = p.row_slot[r], fstart = p.row_fstart[r], fidx = p.row_fidx[r];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, sub = lane % LPT, tw = lane / LPT;

    float qf[G][8];
#pragma unroll
    for (int g = 0; g < G; g++) {
        uint4 w = *(const uint4 *)(p.q + ((size_t)r * p.nh + QV_QHEAD(kvh, g)) * HD + sub * 8);
        qv_f16t<T>::unpack8(w, qf[g]);
    }

    // pass 1: scores
    for (int b0 = warp * PPW; b0 < n; b0 += STEP * kU) {
        float kv[kU][8];
#pragma unroll
        for (int u = 0; u < kU; u++) {
            int i = b0 + u * STEP + tw;
            if (i < n) load8<HD, KV4, T>(p, slot, fstart, fidx, c0 + i, kvh, 0, sub, kv[u]);
            else
#pragma unroll
                for (int j = 0; j < 8; j++) kv[u][j] = 0.0f;
        }
#pragma unroll
        for (int u = 0; u < kU; u++) {
            int i = b0 + u * STEP + tw;
#pragma unroll
            for (int g = 0; g < G; g++) {
                float d = 0.0f;
#pragma unroll
                for (int j = 0; j < 8; j++) d = __fadd_rn(d, __fmul_rn(qf[g][j], kv[u][j]));
#pragma unroll
                for (int o = LPT / 2; o; o >>= 1) d = __fadd_rn(d, __shfl_xor_sync(0xffffffffu, d, o));
                if (sub == 0 && i < n) S[g][i] = __fmul_rn(d, p.scale);
            }
        }
    }
    __syncthreads();
    // softmax per head over the chunk (unnormalized; the combine kernel divides)
#ifndef QV_MUTANTS
    const bool gqa_mut = false;
#endif
    chunk_softmax<G, kChunk>(p, S, n, r, kvh, c, gqa_mut);
    // pass 2: P.V
    float acc[G][8];
#pragma unroll
    for (int g = 0; g < G; g++)
#pragma unroll
        for (int j = 0; j < 8; j++) acc[g][j] = 0.0f;
    for (int b0 = warp * PPW; b0 < n; b0 += STEP * kU) {
        float kv[kU][8];
#pragma unroll
        for (int u = 0; u < kU; u++) {
            int i = b0 + u * STEP + tw;
            if (i < n) load8<HD, KV4, T>(p, slot, fstart, fidx, c0 + i, kvh, 1, sub, kv[u]);
        }
#pragma unroll
        for (int u = 0; u < kU; u++) {
            int i = b0 + u * STEP + tw;
            if (i >= n) continue;
#pragma unroll
            for (int g = 0; g < G; g++) {
                float pg = S[g][i];
#pragma unroll
                for (int j = 0; j < 8; j++) acc[g][j] = __fadd_rn(acc[g][j], __fmul_rn(pg, kv[u][j]));
            }
        }
    }
#pragma unroll
    for (int g = 0; g < G; g++)
#pragma unroll
        for (int j = 0; j < 8; j++)
#pragma unroll
            for (int o = LPT; o < 32; o <<= 1) acc[g][j] = __fadd_rn(acc[g][j], __shfl_xor_sync(0xffffffffu, acc[g][j], o));
    if (tw == 0)
#pragma unroll
        for (int g = 0; g < G; g++)
#pragma unroll
            for (int j = 0; j < 8; j++) red[warp][g][sub * 8 + j] = acc[g][j];
    __syncthreads();
    for (int k = threadIdx.x; k < G * HD; k += kWarps * 32) {
        int g = k / HD, d = k % HD;
        float s = red[0][g][d];
#pragma unroll
        for (int w = 1; w < kWarps; w++) s = __fadd_rn(s, red[w][g][d]);
        p.O[(((size_t)r * p.nh + QV_QHEAD(kvh, g)) * p.n_chunks + c) * HD + d] = s;
    }
}

template <typename T>
__global__ void attn_combine_kernel(const float *O, const float *M, const float *L, const int32_t *row_ctx, int nh,
                                    int hd, int n_chunks, int rec_len, T *out)
{
    int rh = blockIdx.x, r = rh / nh;
    int nc = (row_ctx[r] + rec_len - 1) / rec_len;
    const float *m = M + (size_t)rh * n_chunks, *l = L + (size_t)rh * n_chunks;
    float mx = -INFINITY;
    for (int c = 0; c < nc; c++) mx = fmaxf(mx, m[c]);
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float num = 0.0f, den = 0.0f;
        for (int c = 0; c < nc; c++) {
            float w = expf(__fsub_rn(m[c], mx));
            den = __fadd_rn(den, __fmul_rn(w, l[c]));
            num = __fadd_rn(num, __fmul_rn(w, O[((size_t)rh * n_chunks + c) * hd + d]));
        }
        out[(size_t)rh * hd + d] = qv_f16t<T>::rn(__fdiv_rn(num, den));
    }
}

template <int HD, bool KV4, typename T = __half>
qv_status launch_g(int G, dim3 grid, const AttnParams &p, cudaStream_t s)
{
    switch (G) {
    case 1: attn_chunk_kernel<HD, 1, KV4, T><<<grid, kWarps * 32, 0, s>>>(p); break;
    case 2: attn_chunk_kernel<HD, 2, KV4, T><<<grid, kWarps * 32, 0, s>>>(p); break;
    case 3: attn_chunk_kernel<HD, 3, KV4, T><<<grid, kWarps * 32, 0, s>>>(p); break;
    case 4: attn_chunk_kernel<HD, 4, KV4, T><<<grid, kWarps * 32, 0, s>>>(p); break;
    case 8: attn_chunk_kernel<HD, 8, KV4, T><<<grid, kWarps * 32, 0, s>>>(p); break;
    default: return qv_fail(QV_ERR_UNSUPPORTED, "attention: GQA group %d (heads per KV head) not in {1,2,3,4,8}", G);
    }
    QV_CUDA_TRY(cudaGetLastError());
    return QV_OK;
}

// The BF16 cache: chunks and combine over T = __nv_bfloat16 (the FP16 cache's kernels otherwise).
qv_status attention_bf16(int hd, int G, dim3 grid, const AttnParams &p, const int32_t *row_ctx, int R, int nh,
                         void *out, cudaStream_t s)
{
    using B = __nv_bfloat16;
    qv_status st = hd == 32 ? launch_g<32, false, B>(G, grid, p, s)
                 : hd == 64 ? launch_g<64, false, B>(G, grid, p, s) : launch_g<128, false, B>(G, grid, p, s);
    if (st != QV_OK) return st;
    attn_combine_kernel<B><<<R * nh, hd, 0, s>>>(p.O, p.M, p.L, row_ctx, nh, hd, p.n_chunks, p.rec_len, (B *)out);
    QV_CUDA_TRY(cudaGetLastError());
    return QV_OK;
}

} // namespace

extern "C" size_t qv_gpu_attn_ws_bytes(int R, int nh, int head_dim, int max_ctx)
{
    size_t nc = (size_t)(max_ctx + kChunk - 1) / kChunk;
    return (size_t)R * nh * nc * ((size_t)head_dim + 2) * sizeof(float);
}

// QV_ATTN_VARIANT=chunk forces the general kernel everywhere (same-run comparisons, the test's
// second pass); a knob, not API.
static bool mma_disabled()
{
    const char *e = getenv("QV_ATTN_VARIANT"); // per call: tests switch it; a host lookup per launch
    return e && strcmp(e, "chunk") == 0;
}

// Sub-chunks per record of the tensor-core kernel: 4 (1024 positions: the block's fixed costs,
// page groups, q fragments, the cross-warp reduction and the record write, amortized over 4x the
// positions of one chunk); QV_ATTN_SPAN=1|2|4 overrides it (same-run comparisons, tests). Any
// value is correct; results depend on it bit for bit, so it must not depend on the batch.
static int mma_span()
{
    const char *e = getenv("QV_ATTN_SPAN");
    int v = e ? atoi(e) : 4;
    return v == 1 || v == 2 || v == 4 ? v : 4;
}

// QV_ATTN_PREFILL=rows|tiled: whether calls with the prefill hint (qv_gpu_attn_args.prefill) run
// the tensor-core rows on the tiled kernel (attn_kv4_tiled.cu; the default) or one row per block
// (rows). Either way every row's output is bit-identical (the tiled kernel's header argues it;
// test_gpu_kernels and test_gpu_engines compare the two on the device), so this is a speed knob.
static bool prefill_tiled()
{
    const char *e = getenv("QV_ATTN_PREFILL"); // per call, like QV_ATTN_VARIANT: tests switch it
    return !(e && strcmp(e, "rows") == 0);
}

// The tiled kernel's rows per tile for these arguments (0: not tiled): 2 by default (H200, stop
// 17, 4096-token prefill at 32/8 heads: tiles of 2 1.28x the one-row kernel, tiles of 4 only 1.12x:
// 4 rows need ~240 registers and one block per SM, 2 rows fit two blocks), QV_ATTN_TILE_ROWS=4 asks
// for 4 (a test and bench knob; the same bits either way) where the device's shared memory allows.
static int tiled_rows(const qv_gpu_attn_args *a, const qv_gpu_kv_cache *c)
{
    if (!a->prefill || !prefill_tiled() || !qv_gpu_attention_uses_mma(a, c)) return 0;
    const char *e = getenv("QV_ATTN_TILE_ROWS");
    return kv4_tiled_rows(a->nh / c->n_kv_heads, e ? atoi(e) : 2);
}

extern "C" int qv_gpu_attention_uses_mma(const qv_gpu_attn_args *a, const qv_gpu_kv_cache *c)
{
    int G = c->n_kv_heads > 0 ? a->nh / c->n_kv_heads : 0;
    return c->fmt == QV_KV_FMT_KV4 && c->head_dim == 128 && (G == 1 || G == 2 || G == 4 || G == 8) &&
           c->page_size % 16 == 0 && !a->fresh_k && !a->fresh_v && !mma_disabled();
}

extern "C" int qv_gpu_attention_uses_tiled(const qv_gpu_attn_args *a, const qv_gpu_kv_cache *c)
{
    return tiled_rows(a, c);
}

extern "C" qv_status qv_gpu_attention(const qv_gpu_attn_args *a, const qv_gpu_kv_cache *c, void *stream)
{
    int hd = c->head_dim, nkv = c->n_kv_heads;
    if (a->R < 1 || a->R > 65535 || a->nh < 1 || nkv < 1 || a->nh % nkv || (hd != 32 && hd != 64 && hd != 128) || c->page_size < 1 ||
        a->max_ctx < 1)
        return qv_fail(QV_ERR_USAGE, "attention: bad shape (rows %d in [1, 65535], heads %d/%d, head_dim %d in {32,64,128}, page %d, "
                       "max context %d)", a->R, a->nh, nkv, hd, c->page_size, a->max_ctx);
    size_t need = qv_gpu_attn_ws_bytes(a->R, a->nh, hd, a->max_ctx);
    if (a->ws_bytes < need)
        return qv_fail(QV_ERR_USAGE, "attention: workspace of %zu bytes, %zu needed", a->ws_bytes, need);
    QV_DMUT_SYNC();
    AttnParams p;
    p.q = (const __half *)a->q;
    p.row_slot = a->row_slot, p.row_ctx = a->row_ctx, p.row_fstart = a->row_fstart, p.row_fidx = a->row_fidx;
    p.fresh_k = (const __half *)a->fresh_k, p.fresh_v = (const __half *)a->fresh_v;
    p.scale = a->scale;
    p.nh = a->nh, p.nkv = nkv, p.P = c->page_size, p.max_pages = c->max_pages;
    // chunk records: kChunk positions for the general kernel; the tensor-core kernel streams a
    // span of sub-chunks per block (mma_span: fixed, so a row's result never depends on its batch)
    const bool mma = qv_gpu_attention_uses_mma(a, c);
    p.rec_len = mma ? kChunk * mma_span() : kChunk;
    p.n_chunks = (a->max_ctx + p.rec_len - 1) / p.rec_len;
#ifdef QV_MUTANTS
    p.max_ctx = a->max_ctx;
#endif
    p.page_table = c->page_table, p.pool = c->pool;
    p.page_bytes = qv_gpu_kv_page_bytes(c->fmt, nkv, hd, c->page_size);
    size_t nrc = (size_t)a->R * a->nh * p.n_chunks;
    p.O = (float *)a->ws;
    p.M = p.O + nrc * hd;
    p.L = p.M + nrc;
    dim3 grid(p.n_chunks, nkv, a->R);
    cudaStream_t s = (cudaStream_t)stream;
    int G = a->nh / nkv;
    if (c->fmt == QV_KV_FMT_BF16) return attention_bf16(hd, G, grid, p, a->row_ctx, a->R, a->nh, a->out, s);
    bool kv4 = c->fmt == QV_KV_FMT_KV4;
    qv_status st;
    const int tq = mma ? tiled_rows(a, c) : 0;
    if (tq) st = launch_kv4_tiled(G, tq, p, a->R, s);
    else if (mma) st = launch_kv4_mma(G, grid, p, s);
    else if (hd == 32) st = kv4 ? launch_g<32, true>(G, grid, p, s) : launch_g<32, false>(G, grid, p, s);
    else if (hd == 64) st = kv4 ? launch_g<64, true>(G, grid, p, s) : launch_g<64, false>(G, grid, p, s);
    else st = kv4 ? launch_g<128, true>(G, grid, p, s) : launch_g<128, false>(G, grid, p, s);
    if (st != QV_OK) return st;
    attn_combine_kernel<<<a->R * a->nh, hd, 0, s>>>(p.O, p.M, p.L, a->row_ctx, a->nh, hd, p.n_chunks, p.rec_len,
                                                   (__half *)a->out);
    QV_CUDA_TRY(cudaGetLastError());
    return QV_OK;
}
