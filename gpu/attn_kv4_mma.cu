// KV4 paged attention on tensor cores (issue 8's bandwidth goal): the rows whose every position
// comes from a KV4 cache (kv4 mode: decode and prefill), head_dim 128, GQA group G in {1,2,4,8},
// even page size. Same grid and chunk records (O, M, L) as the general kernel in attn_paged.cu,
// same combine kernel, same softmax (attn_common.cuh); only the two dot products change.
//
// Why: the FP32 kernel dequantizes every element (u*s + mn) and spends G multiply-adds per element
// per pass on CUDA cores: ~12-20 FP32 operations per 4-bit code, more than the code's memory time
// on an H100, so it ran at 11-13% of copy bandwidth. Factoring the per-token scale and minimum out
// of the sums,
//     q.k_j        = s_j * (q . u_j) + mn_j * sum(q)
//     sum_j p_j v_j = sum_j (p_j s_j) u_j + sum_j p_j mn_j,
// leaves two products of a small dense matrix with the raw 4-bit codes u (integers 0..15, exact in
// FP16 and BF16), which mma.sync m16n8k16 does at ~1.5 integer ops per code for the conversion.
//
// Pass 1 (scores), per warp and step of 16 positions: A = q (the G query heads of this KV head as
// rows, FP16 as the engine holds it: exact), B = codes of 8 positions (two n8 tiles). Lane t loads
// the 16 code bytes [16*(t%4), +16) of position t/4 in one 16-byte load; a k16 step takes two
// nibble pairs per register (`(w >> sh) & 0x000F000F | 0x6400 6400` is the FP16 pair 1024 + u,
// minus 1024 exactly), so the channel order inside a k step is permuted; the A fragments of q are
// built with the same permutation (any permutation of the summation index leaves the dot product's
// terms unchanged). Scores s_j*acc + mn_j*sum(q), times scale, go to shared memory.
// Softmax: attn_common.cuh (exact max over the chunk, expf, FP32 sums): unchanged.
// Pass 2 (P.V) as O^T = U^T (P*s)^T: A = codes of 16 positions x 16 channels (lane t/4 owns the
// 16 channels [16*(t/4), +16) of positions 2(t%4), +1, +8, +9: four 8-byte loads; a byte permute
// pairs two positions' nibbles of one channel; BF16 1 128 + u minus 128, exact), B = p_j*s_j
// (FP32) split into three BF16 parts hi + mid + lo (|x - sum| <= 2^-27 |x|; BF16 keeps FP32's
// exponent range, so small weights do not underflow as they would in FP16), three MMAs. The
// pass-2 B fragment needs exactly the (head, position) pairs that pass 1's C fragment held, read
// back from shared memory. sum_j p_j mn_j is FP32 on CUDA cores.
//
// Error (docs/bounds.md "Attention, tensor-core KV4 path"): the exact dequantized values u*s + mn
// are used (the reference rounds them twice in FP32: <= 2u relative to |u s| + |mn|); tensor-core
// FP32 accumulation is modelled as <= 17 * 2^-22 of the summed magnitudes per MMA step (products
// exact; truncating alignment to the largest term), so the bound of qv_ref_attention_row_m with
// qv_attn_err_model_kv4_mma's extra terms applies, with magnitudes |u s| + |mn| in place of |k|.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "attn_common.cuh"

namespace qv_attn {
namespace {

constexpr int HD = 128, kPosWarp = kChunk / kWarps, kSteps = kPosWarp / 16;
static_assert(kPosWarp % 16 == 0, "a warp's share of the chunk is whole 16-position steps");

__device__ __forceinline__ void mma_f16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void mma_bf16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// nibbles at bits sh..sh+3 and 16+sh..16+sh+3 of x as an FP16 pair (exact: 1024 + u - 1024)
__device__ __forceinline__ uint32_t nib_f16x2(uint32_t x, int sh)
{
    uint32_t h = ((x >> sh) & 0x000F000Fu) | 0x64006400u;
    __half2 r = __hsub2(*(__half2 *)&h, __half2half2(__ushort_as_half((unsigned short)0x6400u)));
    return *(uint32_t *)&r;
}

// the same as a BF16 pair (exact: 128 + u - 128)
__device__ __forceinline__ uint32_t nib_bf16x2(uint32_t x, int sh)
{
    uint32_t h = ((x >> sh) & 0x000F000Fu) | 0x43004300u;
    __nv_bfloat162 r = __hsub2(*(__nv_bfloat162 *)&h, __bfloat162bfloat162(__ushort_as_bfloat16((unsigned short)0x4300u)));
    return *(uint32_t *)&r;
}

__device__ __forceinline__ uint32_t pack_bf16(__nv_bfloat16 lo, __nv_bfloat16 hi)
{
    return (uint32_t)__bfloat16_as_ushort(lo) | (uint32_t)__bfloat16_as_ushort(hi) << 16;
}

// x = hi + mid + lo, each BF16 (round to nearest); x - hi and (x - hi) - mid are exact in FP32
__device__ __forceinline__ void split3(float x, __nv_bfloat16 &hi, __nv_bfloat16 &mid, __nv_bfloat16 &lo)
{
    hi = __float2bfloat16_rn(x);
    float r = __fsub_rn(x, __bfloat162float(hi));
    mid = __float2bfloat16_rn(r);
    lo = __float2bfloat16_rn(__fsub_rn(r, __bfloat162float(mid)));
}

// Page base of position pos of the row's slot (K: isv 0, V: 1). The planted bug kv_page_boundary
// (QV_MUTANTS builds only) takes the page of pos + 1, as in the general kernel.
__device__ __forceinline__ const uint8_t *page_of(const AttnParams &p, int slot, int pos, int isv)
{
    if (QV_DMUT(engine_kv_swap)) isv = 0; // planted bug: V read from the K pages
    int pg = QV_DMUT(kv_page_boundary) ? min((pos + 1) / p.P, p.max_pages - 1) : pos / p.P;
    int page = p.page_table[(size_t)slot * p.max_pages + pg];
    return p.pool + ((size_t)page * 2 + isv) * p.page_bytes;
}

// s and mn of positions pos, pos + 1 (pos even, P even: one page, one 4-byte load each)
__device__ __forceinline__ void scale_pair(const AttnParams &p, const uint8_t *base, int pos, int kvh, float2 &s,
                                           float2 &mn)
{
    size_t sidx = (size_t)kvh * p.P + pos % p.P;
    const __half *sp = (const __half *)(base + (size_t)p.nkv * p.P * (HD / 2));
    s = __half22float2(*(const __half2 *)(sp + sidx));
    mn = __half22float2(*(const __half2 *)(sp + (size_t)p.nkv * p.P + sidx));
    if (QV_DMUT(kv4_min_dropped)) mn = make_float2(0.0f, 0.0f); // planted bug: the min is dropped
}

template <int G>
__global__ void __launch_bounds__(kWarps * 32) attn_kv4_mma_kernel(AttnParams p)
{
    __shared__ float S[G][kChunk];
    __shared__ float red[kWarps][G][HD];
    __shared__ float redmn[kWarps][G];
    int r = blockIdx.z, kvh = blockIdx.y, c = blockIdx.x;
    int ctx = p.row_ctx[r], c0 = c * kChunk;
#ifdef QV_MUTANTS
    if (QV_DMUT(causal_off_by_one) && ctx < p.max_ctx) ctx++; // planted bug: sees the next position
    const bool gqa_mut = QV_DMUT(gqa_map);
#else
    const bool gqa_mut = false;
#endif
    if (c0 >= ctx) return; // the combine kernel never reads this chunk
    int n = min(kChunk, ctx - c0);
    int slot = p.row_slot[r];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gid = lane / 4, tq = lane % 4;
    int w0 = warp * kPosWarp; // this warp's first position in the chunk

    // q fragments (A, rows = heads g < G): lane holds channels [32 tq, +32) of head gid, ordered
    // as the codes' nibble pairs (see the header): step s, reg 0 = (C0, C0 + 4), reg 2 = (C0 + 1,
    // C0 + 5), C0 = 8 (s / 2) + 2 (s % 2) within the lane's 32 channels.
    uint32_t qa[8][2];
    float qsum = 0.0f;
    {
        __half qh[32];
        if (gid < G) {
            const uint4 *src = (const uint4 *)(p.q + ((size_t)r * p.nh + QV_QHEAD(kvh, gid)) * HD + tq * 32);
#pragma unroll
            for (int k = 0; k < 4; k++) *(uint4 *)&qh[8 * k] = src[k];
        } else {
#pragma unroll
            for (int k = 0; k < 32; k++) qh[k] = __ushort_as_half(0);
        }
#pragma unroll
        for (int k = 0; k < 32; k++) qsum = __fadd_rn(qsum, __half2float(qh[k]));
#pragma unroll
        for (int s = 0; s < 8; s++) {
            int C0 = 8 * (s / 2) + 2 * (s % 2);
            __half2 x0 = __halves2half2(qh[C0], qh[C0 + 4]), x2 = __halves2half2(qh[C0 + 1], qh[C0 + 5]);
            qa[s][0] = *(uint32_t *)&x0;
            qa[s][1] = *(uint32_t *)&x2;
        }
        qsum = __fadd_rn(qsum, __shfl_xor_sync(0xffffffffu, qsum, 1));
        qsum = __fadd_rn(qsum, __shfl_xor_sync(0xffffffffu, qsum, 2));
    }

    // ---- pass 1: scores. All of the warp's code loads first (independent, in flight together).
    uint4 kc[kSteps][2];
    float2 ks[kSteps][2], km[kSteps][2];
#pragma unroll
    for (int st = 0; st < kSteps; st++)
#pragma unroll
        for (int t = 0; t < 2; t++) {
            int i = w0 + 16 * st + 8 * t + gid; // codes of this position
            kc[st][t] = make_uint4(0, 0, 0, 0);
            if (i < n) {
                const uint8_t *b = page_of(p, slot, c0 + i, 0);
                kc[st][t] = *(const uint4 *)(b + ((size_t)kvh * p.P + (c0 + i) % p.P) * (HD / 2) + 16 * tq);
            }
            int j = w0 + 16 * st + 8 * t + 2 * tq; // scales of positions j, j + 1 (the C fragment's)
            ks[st][t] = km[st][t] = make_float2(0.0f, 0.0f);
            if (j < n) scale_pair(p, page_of(p, slot, c0 + j, 0), c0 + j, kvh, ks[st][t], km[st][t]);
        }
#pragma unroll
    for (int st = 0; st < kSteps; st++)
#pragma unroll
        for (int t = 0; t < 2; t++) {
            float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            const uint32_t *w = (const uint32_t *)&kc[st][t];
#pragma unroll
            for (int s = 0; s < 8; s++) {
                uint32_t a[4] = {qa[s][0], 0u, qa[s][1], 0u};
                int sh = 8 * (s % 2);
                mma_f16(acc, a, nib_f16x2(w[s / 2], sh), nib_f16x2(w[s / 2], sh + 4));
            }
            int j = w0 + 16 * st + 8 * t + 2 * tq;
            if (gid < G) {
                float2 sv = ks[st][t], mv = km[st][t];
                float mq0 = __fmul_rn(mv.x, qsum), mq1 = __fmul_rn(mv.y, qsum);
                if (j < n) S[gid][j] = __fmul_rn(__fadd_rn(__fmul_rn(sv.x, acc[0]), mq0), p.scale);
                if (j + 1 < n) S[gid][j + 1] = __fmul_rn(__fadd_rn(__fmul_rn(sv.y, acc[1]), mq1), p.scale);
            }
        }

    // ---- V loads for pass 2 before the softmax, so their latency overlaps it. Lane owns the
    // channels [16 gid, +16) (8 bytes) of positions 2 tq, +1, +8, +9 of each 16-position step.
    uint2 vc[kSteps][4];
    float2 vs[kSteps][2], vm[kSteps][2];
#pragma unroll
    for (int st = 0; st < kSteps; st++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int j = w0 + 16 * st + 8 * h + 2 * tq;
            vc[st][2 * h] = vc[st][2 * h + 1] = make_uint2(0, 0);
            vs[st][h] = vm[st][h] = make_float2(0.0f, 0.0f);
            if (j < n) {
                const uint8_t *b = page_of(p, slot, c0 + j, 1);
                const uint8_t *cp = b + ((size_t)kvh * p.P + (c0 + j) % p.P) * (HD / 2) + 8 * gid;
                vc[st][2 * h] = *(const uint2 *)cp;
                if (j + 1 < n) vc[st][2 * h + 1] = *(const uint2 *)(cp + HD / 2);
                scale_pair(p, b, c0 + j, kvh, vs[st][h], vm[st][h]);
            }
        }
    __syncthreads();
    chunk_softmax<G>(p, S, n, r, kvh, c, gqa_mut);

    // ---- pass 2: P.V
    float acc[8][4];
#pragma unroll
    for (int i = 0; i < 8; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
    float pmn = 0.0f; // sum_j p_j mn_j for head gid over this lane's positions
#pragma unroll
    for (int st = 0; st < kSteps; st++) {
        // B = (p_j s_j) for head gid (the n index) at positions 2tq, +1 (reg 0) and +8, +9 (reg 1)
        uint32_t bh[2], bm[2], bl[2];
#pragma unroll
        for (int h = 0; h < 2; h++) {
            __nv_bfloat16 hi[2], mi[2], lo[2];
#pragma unroll
            for (int e = 0; e < 2; e++) {
                int j = w0 + 16 * st + 8 * h + 2 * tq + e;
                float pj = (gid < G && j < n) ? S[gid][j] : 0.0f;
                float sj = e ? vs[st][h].y : vs[st][h].x, mj = e ? vm[st][h].y : vm[st][h].x;
                // masked positions: select, never multiply (their s/mn words may be garbage)
                float x = pj != 0.0f ? __fmul_rn(pj, sj) : 0.0f;
                if (pj != 0.0f) pmn = __fadd_rn(pmn, __fmul_rn(pj, mj));
                split3(x, hi[e], mi[e], lo[e]);
            }
            bh[h] = pack_bf16(hi[0], hi[1]), bm[h] = pack_bf16(mi[0], mi[1]), bl[h] = pack_bf16(lo[0], lo[1]);
        }
        // A: for channel c of the lane's 16, the pair (position 2tq, 2tq + 1) and (+8, +9)
        uint32_t x01[4], x23[4];
        x01[0] = __byte_perm(vc[st][0].x, vc[st][1].x, 0x5410), x01[1] = __byte_perm(vc[st][0].x, vc[st][1].x, 0x7632);
        x01[2] = __byte_perm(vc[st][0].y, vc[st][1].y, 0x5410), x01[3] = __byte_perm(vc[st][0].y, vc[st][1].y, 0x7632);
        x23[0] = __byte_perm(vc[st][2].x, vc[st][3].x, 0x5410), x23[1] = __byte_perm(vc[st][2].x, vc[st][3].x, 0x7632);
        x23[2] = __byte_perm(vc[st][2].y, vc[st][3].y, 0x5410), x23[3] = __byte_perm(vc[st][2].y, vc[st][3].y, 0x7632);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            // tile i: row gid = channel 16 gid + i, row gid + 8 = channel 16 gid + 8 + i; channel
            // c's pair is in x[c / 4] at nibble shift 4 (c % 4)
            uint32_t a[4] = {nib_bf16x2(x01[i / 4], 4 * (i % 4)), nib_bf16x2(x01[2 + i / 4], 4 * (i % 4)),
                             nib_bf16x2(x23[i / 4], 4 * (i % 4)), nib_bf16x2(x23[2 + i / 4], 4 * (i % 4))};
            mma_bf16(acc[i], a, bh[0], bh[1]);
            mma_bf16(acc[i], a, bm[0], bm[1]);
            mma_bf16(acc[i], a, bl[0], bl[1]);
        }
    }
    // C: acc[i] = O[g = 2tq, 2tq + 1][channel 16 gid + i] (0, 1), [.. + 8 + i] (2, 3)
#pragma unroll
    for (int i = 0; i < 8; i++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            int g = 2 * tq + e;
            if (g < G) {
                red[warp][g][16 * gid + i] = acc[i][e];
                red[warp][g][16 * gid + 8 + i] = acc[i][2 + e];
            }
        }
    pmn = __fadd_rn(pmn, __shfl_xor_sync(0xffffffffu, pmn, 1));
    pmn = __fadd_rn(pmn, __shfl_xor_sync(0xffffffffu, pmn, 2));
    if (tq == 0 && gid < G) redmn[warp][gid] = pmn;
    __syncthreads();
    for (int k = threadIdx.x; k < G * HD; k += kWarps * 32) {
        int g = k / HD, d = k % HD;
        float s = red[0][g][d], m = redmn[0][g];
#pragma unroll
        for (int w = 1; w < kWarps; w++) s = __fadd_rn(s, red[w][g][d]), m = __fadd_rn(m, redmn[w][g]);
        p.O[(((size_t)r * p.nh + QV_QHEAD(kvh, g)) * p.n_chunks + c) * HD + d] = __fadd_rn(s, m);
    }
}

} // namespace

qv_status launch_kv4_mma(int G, dim3 grid, const AttnParams &p, cudaStream_t s)
{
    switch (G) {
    case 1: attn_kv4_mma_kernel<1><<<grid, kWarps * 32, 0, s>>>(p); break;
    case 2: attn_kv4_mma_kernel<2><<<grid, kWarps * 32, 0, s>>>(p); break;
    case 4: attn_kv4_mma_kernel<4><<<grid, kWarps * 32, 0, s>>>(p); break;
    case 8: attn_kv4_mma_kernel<8><<<grid, kWarps * 32, 0, s>>>(p); break;
    default: return qv_fail(QV_ERR_UNSUPPORTED, "attention (KV4 tensor-core path): GQA group %d not in {1,2,4,8}", G);
    }
    QV_CUDA_TRY(cudaGetLastError());
    return QV_OK;
}

} // namespace qv_attn
