// Shared by the two paged-attention kernels (attn_paged.cu: the general chunk kernel; attn_kv4_mma.cu:
// the tensor-core KV4 kernel; attn_kv4_tiled.cu: its tiled prefill variant): their parameters, the query-head map with its planted bug,
// and the per-chunk softmax, so both kernels write the same (O, M, L) chunk records for the one
// combine kernel and the softmax numerics (and its mutant) exist once.
#pragma once
#include <cuda_fp16.h>

#include "qv_cuda_check.h"
#include "qv_mutant_dev.cuh"

extern "C" {
#include "qvet/gpu_kernels.h"
}

namespace qv_attn {

constexpr int kWarps = 4, kChunk = QV_ATTN_CHUNK;

struct AttnParams {
    const __half *q;
    const int32_t *row_slot, *row_ctx, *row_fstart, *row_fidx;
    const __half *fresh_k, *fresh_v;
    float scale;
    int nh, nkv, P, max_pages, n_chunks;
    int rec_len; // positions per chunk record (the general kernel: kChunk; the tensor-core kernel: a span of sub-chunks)
#ifdef QV_MUTANTS
    int max_ctx; // the planted bug causal_off_by_one never reads past it
#endif
    const int32_t *page_table;
    const uint8_t *pool;
    size_t page_bytes;
    float *O, *M, *L; // [R][nh][n_chunks][hd], [R][nh][n_chunks]
};

// Query head g of KV head kvh's group: kvh*G + g (GQA: head h reads KV head h / G); the planted
// bug gqa_map (QV_MUTANTS builds only) pairs KV head kvh with the heads h = g*nkv + kvh instead.
// Without mutants the macro is deliberately unparenthesized: `(size_t)r * p.nh + QV_QHEAD(kvh, g)`
// then parses exactly as the expression it replaced, so the release kernels' PTX is unchanged.
// A kernel using it declares `const bool gqa_mut = QV_DMUT(gqa_map);` in QV_MUTANTS builds.
#ifdef QV_MUTANTS
#define QV_QHEAD(kvh, g) (gqa_mut ? (g) * p.nkv + (kvh) : (kvh) * G + (g))
#else
#define QV_QHEAD(kvh, g) kvh * G + g
#endif

// Softmax of one head's n scores Sg[0..n) in place (unnormalized: exp(s - max)) by one warp,
// writing the chunk's max and sum at index mi of M and L for the combine kernel. One function for
// every kernel (the tiled prefill kernel calls it per (row, head)), so a row's softmax is the same
// code and order whichever kernel runs it.
__device__ __forceinline__ void head_softmax(const AttnParams &p, float *Sg, int n, size_t mi)
{
    int lane = threadIdx.x % 32;
    float mx = -INFINITY;
    for (int i = lane; i < n; i += 32) mx = fmaxf(mx, Sg[i]);
    for (int o = 16; o; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    if (QV_DMUT(softmax_no_max)) mx = 0.0f; // planted bug: no max subtraction
    float sum = 0.0f;
    for (int i = lane; i < n; i += 32) {
        float e = expf(__fsub_rn(Sg[i], mx));
        Sg[i] = e;
        sum = __fadd_rn(sum, e);
    }
    for (int o = 16; o; o >>= 1) sum = __fadd_rn(sum, __shfl_xor_sync(0xffffffffu, sum, o));
    if (lane == 0) {
        p.M[mi] = mx;
        p.L[mi] = sum;
    }
}

// Softmax of each of the G heads over the chunk's n scores S[g][0..n) (head_softmax per head). Called
// by all threads of a block of NW warps after the scores are in shared memory; ends with __syncthreads.
template <int G, int LD, int NW = kWarps>
__device__ __forceinline__ void chunk_softmax(const AttnParams &p, float (*S)[LD], int n, int r, int kvh, int c,
                                              bool gqa_mut)
{
    (void)gqa_mut;
    int warp = threadIdx.x / 32;
    for (int g = warp; g < G; g += NW) head_softmax(p, S[g], n, ((size_t)r * p.nh + QV_QHEAD(kvh, g)) * p.n_chunks + c);
    __syncthreads();
}

// The tensor-core KV4 kernel (attn_kv4_mma.cu): hd 128, G in {1, 2, 4, 8}, page size % 16 == 0,
// every position from the cache. Returns QV_ERR_UNSUPPORTED for other G.
qv_status launch_kv4_mma(int G, dim3 grid, const AttnParams &p, cudaStream_t s);

// The tiled prefill variant (attn_kv4_tiled.cu): same rows, same records bit for bit, one block per
// (record, KV head, tile of TQ = 2 or 4 rows); grid from p.n_chunks, p.nkv and R. kv4_tiled_rows:
// the tile size to run for GQA group G on this device (want = 2 asks for 2; else 4 where its shared
// memory fits the device's opt-in limit, then 2), 0 if none fits (the caller keeps launch_kv4_mma).
qv_status launch_kv4_tiled(int G, int TQ, const AttnParams &p, int R, cudaStream_t s);
int kv4_tiled_rows(int G, int want);

} // namespace qv_attn
