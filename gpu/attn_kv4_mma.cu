// KV4 paged attention on tensor cores (issue 8's bandwidth goal): the rows whose every position
// comes from a KV4 cache (kv4 mode: decode and prefill), head_dim 128, GQA group G in {1,2,4,8},
// page size % 16 == 0. Same grid and chunk records (O, M, L) as the general kernel in
// attn_paged.cu, same combine kernel, same softmax (attn_common.cuh); the loads and the two dot
// products differ.
//
// Why: the FP32 kernel dequantizes every element (u*s + mn) and spends G multiply-adds per element
// per pass on CUDA cores: ~12-20 FP32 operations per 4-bit code, more than the code's memory time,
// so it ran at 11-13% of copy bandwidth on an H100. Factoring the per-token scale and minimum out
// of the sums,
//     q.k_j         = s_j * (q . u_j) + mn_j * sum(q)
//     sum_j p_j v_j = sum_j (p_j s_j) u_j + sum_j p_j mn_j,
// leaves two products of a small dense matrix with the raw 4-bit codes u (integers 0..15, exact in
// FP16 and BF16), which mma.sync m16n8k16 does after ~1.2-1.5 integer ops per code of conversion.
//
// Loads: a block (one row, KV head and chunk of 256 positions) first issues cp.async for the
// chunk's K and V pages (codes, s, mn: 34 KB, one page-table lookup per 16-byte piece) into
// shared memory, K and V as two groups, so all of it is in flight at once and pass 1 starts when
// K has landed while V still streams.
// Pass 1 (scores), per warp and step of 16 positions: A = q (the G query heads of this KV head as
// rows, FP16 as the engine holds it: exact), B = codes of 8 positions (two n8 tiles). Lane t reads
// the 16 code bytes [16*(t%4), +16) of position t/4; a k16 step takes two nibble pairs per
// register, so the channel order inside a k step is permuted; the A fragments of q are built with
// the same permutation (a permutation of the summation index leaves the dot product's terms as
// they were). Scores s_j*acc + mn_j*sum(q), times scale, go to shared memory.
// Softmax: attn_common.cuh (exact max over the chunk, expf, FP32 sums): unchanged.
// Pass 2 (P.V) as O^T = U^T (P*s)^T: A = codes of 16 positions x 16 channels (lane t/4 owns the
// 16 channels [16*(t/4), +16) of positions 2(t%4), +1, +8, +9: four 8-byte reads; a byte permute
// pairs two positions' nibbles of one channel; BF16 128 + u minus 128, exact), B = p_j*s_j (FP32)
// split into three BF16 parts hi + mid + lo (|x - sum| <= 2^-27 |x|; BF16 keeps FP32's exponent
// range, so small weights do not underflow as they would in FP16), three MMAs. The pass-2 B
// fragment needs exactly the (head, position) pairs that pass 1's C fragment held, read back from
// shared memory. sum_j p_j mn_j is FP32 on CUDA cores.
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

// nibbles at bits sh..sh+3 and 16+sh..16+sh+3 of x as an FP16 pair, exactly: 0x6400 | u is
// 1024 + u, minus 1024; for the odd nibbles (sh % 8 == 4) 0x6400 | u << 4 is 1024 + 16u, times
// 1/16 minus 64 in one FMA (64 + u is exact), which saves the shift
__device__ __forceinline__ uint32_t nib_f16x2(uint32_t x, int sh)
{
    __half2 r;
    if (sh % 8 == 0) {
        uint32_t h = ((x >> sh) & 0x000F000Fu) | 0x64006400u;
        r = __hsub2(*(__half2 *)&h, __half2half2(__ushort_as_half((unsigned short)0x6400u)));
    } else {
        uint32_t h = ((x >> (sh - 4)) & 0x00F000F0u) | 0x64006400u;
        r = __hfma2(*(__half2 *)&h, __half2half2(__ushort_as_half((unsigned short)0x2C00u)), // 1/16
                    __half2half2(__ushort_as_half((unsigned short)0xD400u)));               // -64
    }
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

// Shared-memory staging of one chunk (256 positions of one KV head): K codes [256][64 B] (a
// lane's 16-byte read in pass 1 takes whole rows per 8-lane phase: conflict-free at stride 64),
// V codes [256][80 B] (pass 2's 8-byte reads take rows 2t, 2t + 2, .. in one phase: the 80-byte
// stride puts them on different banks), K/V s and mn [256] FP16 each. 16-byte cp.async pieces:
// per 16 positions 64 + 4 for K then for V.
constexpr int kVStride = 80;
struct Stage {
    uint8_t kc[kChunk][64];
    uint8_t vc[kChunk][kVStride];
    __half ks[kChunk], km[kChunk], vs[kChunk], vm[kChunk];
};

__device__ __forceinline__ void cp_async16(void *smem, const void *gmem)
{
    unsigned a = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(a), "l"(gmem));
}

// Per 16-position group (page size % 16 == 0: one page), read once per block before the copies:
// the page id and first slot (for the planted bug below) and the addresses of the group's codes
// (16 positions x 64 B, contiguous in the page) and scales (16 FP16, contiguous; the mins follow
// at a fixed offset), for K and V.
struct Groups {
    int pg[kChunk / 16 + 1], pe[kChunk / 16 + 1];
    const uint8_t *codes[2][kChunk / 16], *scales[2][kChunk / 16];
};

// Issues the cp.async copies of K (isv 0) or V (isv 1) for the chunk's groups covering [0, n):
// 64 pieces of 16 B of codes per group, then 4 pieces of s / mn. The planted bugs (QV_MUTANTS
// builds only) engine_kv_swap reads V from the K pages, kv_page_boundary takes the codes of a
// page's last position from the next page.
__device__ __forceinline__ void stage_issue(const AttnParams &p, Stage &sm, const Groups &gr, int n, int isv)
{
    int src = QV_DMUT(engine_kv_swap) ? 0 : isv;
    int groups = (n + 15) / 16;
    size_t mn_off = (size_t)p.nkv * p.P * 2;
#pragma unroll 4
    for (int i = threadIdx.x; i < groups * 64; i += kWarps * 32) {
        int grp = i >> 6, q = i & 63; // piece q: position q / 4, bytes 16 (q % 4)
        const uint8_t *g = gr.codes[src][grp] + 16 * q;
#ifdef QV_MUTANTS
        if (QV_DMUT(kv_page_boundary) && gr.pe[grp] + q / 4 + 1 == p.P)
            g = p.pool + ((size_t)gr.pg[grp + 1] * 2 + src) * p.page_bytes +
                (size_t)(g - p.pool) % p.page_bytes; // same offset in the next page
#endif
        cp_async16(isv ? &sm.vc[16 * grp + q / 4][16 * (q % 4)] : &sm.kc[16 * grp][0] + 16 * q, g);
    }
    if (threadIdx.x < groups * 4) {
        int grp = threadIdx.x >> 2, k = threadIdx.x & 3; // k: s 0-7, s 8-15, mn 0-7, mn 8-15
        const uint8_t *g = gr.scales[src][grp] + (k >> 1) * mn_off + 16 * (k & 1);
        __half *dst = isv ? (k >> 1 ? sm.vm : sm.vs) : (k >> 1 ? sm.km : sm.ks);
        cp_async16(dst + 16 * grp + 8 * (k & 1), g);
    }
    asm volatile("cp.async.commit_group;\n" ::);
}

template <int G>
__global__ void __launch_bounds__(kWarps * 32) attn_kv4_mma_kernel(AttnParams p)
{
    __shared__ __align__(16) Stage sm;
    // scores; rows padded by 8 floats so pass 1's stores (4 heads x 4 lanes) hit distinct banks
    constexpr int kSld = kChunk + 8;
    __shared__ float S[G][kSld];
    __shared__ float redmn[kWarps][G];
    // after pass 1 the K codes are dead: the cross-warp P.V reduction reuses their space, rows
    // padded by 4 floats where it fits (4-way instead of 16-way bank conflicts on the stores)
    constexpr int kRld = sizeof(float) * kWarps * G * (HD + 4) <= sizeof(Stage::kc) ? HD + 4 : HD;
    static_assert(sizeof(float) * kWarps * G * kRld <= sizeof(Stage::kc), "reduction fits in the K stage");
    float(*red)[G][kRld] = (float(*)[G][kRld])&sm.kc[0][0];
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
    // the groups' pages (and the one after the chunk, which only the planted bug
    // kv_page_boundary reads): one page-table load per group
    __shared__ Groups gr;
    for (int k = threadIdx.x; k <= kChunk / 16; k += kWarps * 32) {
        int t = c0 + 16 * k, pi = min(t / p.P, p.max_pages - 1);
        int page = p.page_table[(size_t)slot * p.max_pages + pi], e = t % p.P;
        gr.pg[k] = page, gr.pe[k] = e;
        if (k < kChunk / 16)
            for (int isv = 0; isv < 2; isv++) {
                const uint8_t *base = p.pool + ((size_t)page * 2 + isv) * p.page_bytes;
                size_t ei = (size_t)kvh * p.P + e;
                gr.codes[isv][k] = base + ei * (HD / 2);
                gr.scales[isv][k] = base + (size_t)p.nkv * p.P * (HD / 2) + ei * 2;
            }
    }
    __syncthreads();
    stage_issue(p, sm, gr, n, 0);
    stage_issue(p, sm, gr, n, 1);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gid = lane / 4, tq = lane % 4;
    int w0 = warp * kPosWarp; // this warp's first position in the chunk

    // q fragments (A, rows = heads g < G), built while the stage loads: lane holds channels
    // [32 tq, +32) of head gid, ordered as the codes' nibble pairs (see the header): step s, reg 0
    // = (C0, C0 + 4), reg 2 = (C0 + 1, C0 + 5), C0 = 8 (s / 2) + 2 (s % 2) in the lane's 32.
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
    asm volatile("cp.async.wait_group 1;\n" ::); // this thread's K pieces
    __syncthreads();                              // everyone's

    // ---- pass 1: scores. Rows past n hold stale shared memory: their codes are still 0..15
    // (finite), and their scores are never stored.
#pragma unroll
    for (int st = 0; st < kSteps; st++)
#pragma unroll
        for (int t = 0; t < 2; t++) {
            int base = w0 + 16 * st + 8 * t;
            if (base >= n) break;
            uint4 kv = *(const uint4 *)&sm.kc[base + gid][16 * tq];
            const uint32_t w[4] = {kv.x, kv.y, kv.z, kv.w};
            float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
            for (int s = 0; s < 8; s++) {
                uint32_t a[4] = {qa[s][0], 0u, qa[s][1], 0u};
                int sh = 8 * (s % 2);
                mma_f16(acc, a, nib_f16x2(w[s / 2], sh), nib_f16x2(w[s / 2], sh + 4));
            }
            int j = base + 2 * tq; // the C fragment's positions j, j + 1
            if (gid < G) {
                float2 sv = __half22float2(*(const __half2 *)&sm.ks[j]), mv = __half22float2(*(const __half2 *)&sm.km[j]);
                if (QV_DMUT(kv4_min_dropped)) mv = make_float2(0.0f, 0.0f); // planted bug: min dropped
                if (j < n) S[gid][j] = __fmul_rn(__fadd_rn(__fmul_rn(sv.x, acc[0]), __fmul_rn(mv.x, qsum)), p.scale);
                if (j + 1 < n) S[gid][j + 1] = __fmul_rn(__fadd_rn(__fmul_rn(sv.y, acc[1]), __fmul_rn(mv.y, qsum)), p.scale);
            }
        }
    asm volatile("cp.async.wait_group 0;\n" ::); // V pieces
    __syncthreads();
    chunk_softmax<G, kSld>(p, S, n, r, kvh, c, gqa_mut);

    // ---- pass 2: P.V
    float acc[8][4];
#pragma unroll
    for (int i = 0; i < 8; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
    float pmn = 0.0f; // sum_j p_j mn_j for head gid over this lane's positions
#pragma unroll
    for (int st = 0; st < kSteps; st++) {
        int base = w0 + 16 * st;
        if (base >= n) break;
        // B = (p_j s_j) for head gid (the n index) at positions 2tq, +1 (reg 0) and +8, +9 (reg 1)
        uint32_t bh[2], bm[2], bl[2];
        uint2 vc[4]; // codes of positions 2tq, 2tq + 1, 2tq + 8, 2tq + 9: channels [16 gid, +16)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int j = base + 8 * h + 2 * tq;
            vc[2 * h] = *(const uint2 *)&sm.vc[j][8 * gid];
            vc[2 * h + 1] = *(const uint2 *)&sm.vc[j + 1][8 * gid];
            float2 sv = __half22float2(*(const __half2 *)&sm.vs[j]), mv = __half22float2(*(const __half2 *)&sm.vm[j]);
            if (QV_DMUT(kv4_min_dropped)) mv = make_float2(0.0f, 0.0f);
            __nv_bfloat16 hi[2], mi[2], lo[2];
#pragma unroll
            for (int e = 0; e < 2; e++) {
                float pj = (gid < G && j + e < n) ? S[gid][j + e] : 0.0f;
                // masked positions: select, never multiply (their s/mn words may be stale)
                float x = pj != 0.0f ? __fmul_rn(pj, e ? sv.y : sv.x) : 0.0f;
                if (pj != 0.0f) pmn = __fadd_rn(pmn, __fmul_rn(pj, e ? mv.y : mv.x));
                split3(x, hi[e], mi[e], lo[e]);
            }
            bh[h] = pack_bf16(hi[0], hi[1]), bm[h] = pack_bf16(mi[0], mi[1]), bl[h] = pack_bf16(lo[0], lo[1]);
        }
        // A: for channel c of the lane's 16, the pair (position 2tq, 2tq + 1) and (+8, +9)
        uint32_t x01[4], x23[4];
        x01[0] = __byte_perm(vc[0].x, vc[1].x, 0x5410), x01[1] = __byte_perm(vc[0].x, vc[1].x, 0x7632);
        x01[2] = __byte_perm(vc[0].y, vc[1].y, 0x5410), x01[3] = __byte_perm(vc[0].y, vc[1].y, 0x7632);
        x23[0] = __byte_perm(vc[2].x, vc[3].x, 0x5410), x23[1] = __byte_perm(vc[2].x, vc[3].x, 0x7632);
        x23[2] = __byte_perm(vc[2].y, vc[3].y, 0x5410), x23[3] = __byte_perm(vc[2].y, vc[3].y, 0x7632);
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
