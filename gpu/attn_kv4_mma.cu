// KV4 paged attention on tensor cores (issue 8's bandwidth goal): the rows whose every position
// comes from a KV4 cache (kv4 mode: decode and prefill), head_dim 128, GQA group G in {1,2,4,8},
// page size % 16 == 0. Chunk records (O, M, L) like the general kernel's in attn_paged.cu, but
// of a record length of 1024 positions (QV_ATTN_SPAN sub-chunks of 256), the same combine kernel,
// the same softmax (attn_common.cuh); the loads and the two dot products differ.
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
// Loads: a block (8 warps; one row, KV head and record of up to 4 sub-chunks of 256 positions,
// i.e. 1024: the per-block costs, page lookups, q fragments, the cross-warp reduction and the
// record write, were ~45% of the instructions at one 256-position chunk per block) streams the
// record's items, the sub-chunks' K then their V (codes, s, mn: ~17 KB each), through a ring of
// two shared-memory buffers filled by cp.async: item i + 2 is issued as soon as item i is consumed,
// so one item lands while the block computes on the other (and the first V items while the
// softmax runs). One page-table lookup per 16-position group, once per block.
// Pass 1 (scores), per warp and step of 16 positions: A = codes of the 16 positions (rows) x 16
// channels, B = q (the G query heads of this KV head as columns, FP16 as the engine holds it:
// exact; the n8 tile holds up to 8 heads, where q as the m16 operand left 12 of 16 rows empty at
// G = 4 and took twice the MMAs). Lane t reads the 16 code bytes [16*(t%4), +16) of positions
// t/4 and t/4 + 8; a k16 step takes two nibble pairs per register, so the channel order inside a
// k step is permuted; q's fragments are built with the same permutation (a permutation of the
// summation index leaves the dot product's terms as they were). Scores s_j*acc + mn_j*sum(q),
// times scale, go to shared memory (the record's scores).
// Softmax over the whole record (exact max), attn_common.cuh (expf, FP32 sums): unchanged.
// Pass 2 (P.V) as O^T = U^T (P*s)^T: A = codes of 16 positions x 16 channels (lane t/4 owns the
// 16 channels [16*(t/4), +16) of positions 2(t%4), +1, +8, +9: four 8-byte reads; a byte permute
// pairs two positions' nibbles of one channel; BF16 128 + u minus 128, exact), B = p_j*s_j (FP32)
// split into BF16 parts (hi, lo, and a third for G <= 2: |x - sum| <= 2^-16 |x| with two parts;
// BF16 keeps FP32's exponent range, so small weights do not underflow as they would in FP16).
// For G <= 4 the parts sit in the n8 tile's columns (column c = head c % G, part c / G: G = 4 uses
// all 8 columns with two parts) and one MMA per tile does them all; G = 8 fills the columns with
// heads and runs two MMAs (hi, lo). The pass-2 B fragment needs exactly the (head, position)
// pairs that pass 1's C fragment held, read back from shared memory. sum_j p_j mn_j is FP32 on
// CUDA cores; the parts' columns are added in FP32 in the final cross-warp reduction.
// Error (docs/bounds.md "Attention, tensor-core KV4 path"): the exact dequantized values u*s + mn
// are used (the reference rounds them twice in FP32: <= 2u relative to |u s| + |mn|); tensor-core
// FP32 accumulation is modelled as <= 17 * 2^-22 of the summed magnitudes per MMA step (products
// exact; truncating alignment to the largest term), so the bound of qv_ref_attention_row_m with
// qv_attn_err_model_kv4_mma's extra terms applies, with magnitudes |u s| + |mn| in place of |k|.
#include <atomic>
#include <cstdlib>
#include <cstring>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "attn_common.cuh"

namespace qv_attn {
namespace {

// A block: NW warps over one record of up to kMaxRec positions (kMaxSpan sub-chunks of kSub),
// streamed through a two-buffer ring; a warp owns kPosWarp positions of each sub-chunk.
constexpr int HD = 128, NW = 8, kSub = 256, kMaxSpan = 4, kMaxRec = kSub * kMaxSpan;
constexpr int kPosWarp = kSub / NW, kSteps = kPosWarp / 16;
static_assert(kSub == kChunk, "a sub-chunk is one chunk of the general kernel: records are whole chunks");
static_assert(kPosWarp % 16 == 0, "a warp's share of a sub-chunk is whole 16-position steps");

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

// (x & MASK) | MAGIC in one LOP3: written as C, the compiler emits an AND and an OR (LOP3 takes
// one immediate), one instruction more per converted pair in the inner loops
template <uint32_t MASK, uint32_t MAGIC> __device__ __forceinline__ uint32_t and_or(uint32_t x)
{
    uint32_t r;
    asm("lop3.b32 %0, %1, %2, %3, 0xea;\n" : "=r"(r) : "r"(x), "n"(MASK), "n"(MAGIC));
    return r;
}

// nibbles at bits sh..sh+3 and 16+sh..16+sh+3 of x as an FP16 pair, exactly: 0x6400 | u is
// 1024 + u, minus 1024; for the odd nibbles (sh % 8 == 4) 0x6400 | u << 4 is 1024 + 16u, times
// 1/16 minus 64 in one FMA (64 + u is exact), which saves the shift
__device__ __forceinline__ uint32_t nib_f16x2(uint32_t x, int sh)
{
    __half2 r;
    if (sh % 8 == 0) {
        uint32_t h = and_or<0x000F000Fu, 0x64006400u>(x >> sh);
        r = __hsub2(*(__half2 *)&h, __half2half2(__ushort_as_half((unsigned short)0x6400u)));
    } else {
        uint32_t h = and_or<0x00F000F0u, 0x64006400u>(x >> (sh - 4));
        r = __hfma2(*(__half2 *)&h, __half2half2(__ushort_as_half((unsigned short)0x2C00u)), // 1/16
                    __half2half2(__ushort_as_half((unsigned short)0xD400u)));               // -64
    }
    return *(uint32_t *)&r;
}

// the same as a BF16 pair (exact: 128 + u - 128)
__device__ __forceinline__ uint32_t nib_bf16x2(uint32_t x, int sh)
{
    uint32_t h = and_or<0x000F000Fu, 0x43004300u>(x >> sh);
    __nv_bfloat162 r = __hsub2(*(__nv_bfloat162 *)&h, __bfloat162bfloat162(__ushort_as_bfloat16((unsigned short)0x4300u)));
    return *(uint32_t *)&r;
}

__device__ __forceinline__ uint32_t pack_bf16(__nv_bfloat16 lo, __nv_bfloat16 hi)
{
    return (uint32_t)__bfloat16_as_ushort(lo) | (uint32_t)__bfloat16_as_ushort(hi) << 16;
}

// Shared-memory staging, a ring of two buffers of one sub-chunk (256 positions of one KV head):
// the codes as they are in the page, [position][64 B] (K: a lane's 16-byte read in pass 1 takes
// whole rows per 8-lane phase, conflict-free; V: pass 2's 8-byte reads of rows 2t, 2t + 2, .. meet
// 4-way bank conflicts, which cost load-unit wavefronts, not issue slots, and keep the layout the
// page's so that a 16-position group is one contiguous copy), then the sub-chunk's s and mn FP16.
struct Buf {
    uint8_t codes[kSub * 64];
    __half s[kSub], mn[kSub];
};

__device__ __forceinline__ void cp_async16(void *smem, const void *gmem)
{
    unsigned a = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(a), "l"(gmem));
}

// sm_90 bulk copies (the TMA unit's 1-D form): one instruction moves a group's 1 KB of codes, and
// the ring's mbarriers count the bytes. Below sm_90 these compile to nothing and the kernel's BULK
// instantiation is never launched (launch_g picks by the device).
[[maybe_unused]] __device__ __forceinline__ unsigned smem_u32(const void *p) { return (unsigned)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void mbar_init(uint64_t *bar)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(smem_u32(bar)) : "memory");
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#else
    (void)bar;
#endif
}

// the issuing thread: announce `bytes` for the buffer's next phase (its one arrival); returns the
// barrier state PTX hands back (unused)
__device__ __forceinline__ uint64_t mbar_expect(uint64_t *bar, unsigned bytes)
{
    uint64_t state = 0;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 %0, [%1], %2;\n"
                 : "=l"(state) : "r"(smem_u32(bar)), "r"(bytes) : "memory");
#else
    (void)bar, (void)bytes;
#endif
    return state;
}

__device__ __forceinline__ void bulk_copy(void *dst, const void *src, unsigned bytes, uint64_t *bar)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n"
                 ::"r"(smem_u32(dst)), "l"(src), "r"(bytes), "r"(smem_u32(bar)) : "memory");
#else
    (void)dst, (void)src, (void)bytes, (void)bar;
#endif
}

// every thread: wait until the phase of the given parity has completed (its bytes have landed)
__device__ __forceinline__ void mbar_wait(uint64_t *bar, unsigned parity)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    unsigned done = 0;
    while (!done)
        asm volatile("{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done) : "r"(smem_u32(bar)), "r"(parity) : "memory");
#else
    (void)bar, (void)parity;
#endif
}

// Per 16-position group of the record (page size % 16 == 0: one page), read once per block before
// the copies: the page id and first slot (for the planted bug below) and the addresses of the
// group's codes (16 positions x 64 B, contiguous in the page) and scales (16 FP16, contiguous; the
// mins follow at a fixed offset), for K and V.
struct Groups {
    int pg[kMaxRec / 16 + 1], pe[kMaxRec / 16 + 1];
    const uint8_t *codes[2][kMaxRec / 16], *scales[2][kMaxRec / 16];
};

// Issues the copies of item `it` of the block's stream into buf[it & 1]: items 0 .. nsub-1 are the
// sub-chunks' K, nsub .. 2 nsub - 1 their V (nothing past the stream's end). cp.async (BULK false):
// every thread copies 16-byte pieces and commits one group (empty past the end, so every thread
// counts the same groups). BULK: lanes of warp 0 copy whole groups (1 KB of codes, 32 B of s, of
// mn) after lane 0 announced the bytes on the buffer's mbarrier. The planted bugs (QV_MUTANTS
// builds, which always take the cp.async path) engine_kv_swap reads V from the K pages,
// kv_page_boundary takes the codes of a page's last position from the next page.
template <bool BULK>
__device__ __forceinline__ void stage_issue(const AttnParams &p, Buf *buf, uint64_t *bars, const Groups &gr, int n,
                                            int nsub, int it)
{
    if (it < 2 * nsub) {
        const int isv = it >= nsub, sub = isv ? it - nsub : it, src = QV_DMUT(engine_kv_swap) ? 0 : isv;
        Buf &b = buf[it & 1];
        const int g0 = 16 * sub, groups = (min(kSub, n - kSub * sub) + 15) / 16;
        const size_t mn_off = (size_t)p.nkv * p.P * 2;
        if (BULK) {
            if (threadIdx.x < 32) {
                if (threadIdx.x == 0) {
                    // the buffer was last read through ordinary loads (before the caller's barrier):
                    // order them before the async proxy's writes
                    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
                    (void)mbar_expect(&bars[it & 1], (unsigned)groups * (16 * 64 + 2 * 32));
                }
                __syncwarp();
                for (int grp = threadIdx.x; grp < groups; grp += 32) {
                    bulk_copy(&b.codes[16 * 64 * grp], gr.codes[src][g0 + grp], 16 * 64, &bars[it & 1]);
                    bulk_copy(b.s + 16 * grp, gr.scales[src][g0 + grp], 32, &bars[it & 1]);
                    bulk_copy(b.mn + 16 * grp, gr.scales[src][g0 + grp] + mn_off, 32, &bars[it & 1]);
                }
            }
            return;
        }
        // thread i copies piece q = i % 64 (position q / 4, bytes 16 (q % 4)) of groups i / 64, + 4, ..
        const int q = threadIdx.x & 63, gf = threadIdx.x >> 6;
        uint8_t *dst = &b.codes[16 * 64 * gf + 16 * q];
        constexpr int kGrpStep = NW * 32 / 64;
#pragma unroll
        for (int k = 0; k < kSub / 16 / kGrpStep; k++) {
            const int grp = gf + kGrpStep * k;
            if (grp >= groups) break;
            const uint8_t *g = gr.codes[src][g0 + grp] + 16 * q;
#ifdef QV_MUTANTS
            if (QV_DMUT(kv_page_boundary) && gr.pe[g0 + grp] + q / 4 + 1 == p.P)
                g = p.pool + ((size_t)gr.pg[g0 + grp + 1] * 2 + src) * p.page_bytes +
                    (size_t)(g - p.pool) % p.page_bytes; // same offset in the next page
#endif
            cp_async16(dst + 16 * 64 * kGrpStep * k, g);
        }
        if (threadIdx.x < groups * 4) {
            int grp = threadIdx.x >> 2, k = threadIdx.x & 3; // k: s 0-7, s 8-15, mn 0-7, mn 8-15
            const uint8_t *g = gr.scales[src][g0 + grp] + (k >> 1) * mn_off + 16 * (k & 1);
            cp_async16((k >> 1 ? b.mn : b.s) + 16 * grp + 8 * (k & 1), g);
        }
    }
    if (!BULK) asm volatile("cp.async.commit_group;\n" ::);
}

// The consumers' wait for item `it`: cp.async, this thread's pieces (one younger group may stay in
// flight) then the barrier for everyone's; BULK, the buffer's mbarrier phase (it >> 1) & 1 (item
// it is the (it >> 1)-th use of buffer it & 1), which covers every byte.
template <bool BULK> __device__ __forceinline__ void stage_wait(uint64_t *bars, int it)
{
    if (BULK) mbar_wait(&bars[it & 1], (unsigned)(it >> 1) & 1u);
    else {
        asm volatile("cp.async.wait_group 1;\n" ::);
        __syncthreads();
    }
}

// Pass 2's B value of one (position, column): x = p_j s_j split into BF16 parts, part k of the
// column. x = y0 + y1 + y2 + e with each y the BF16 rounding of the remainder (exact in FP32), so
// two parts leave |e| <= 2^-16 |x| and three 2^-24 |x| (BF16 keeps FP32's exponent range: small
// weights do not underflow as they would in FP16).
__device__ __forceinline__ __nv_bfloat16 bf16_part(float x, int part)
{
    __nv_bfloat16 y = __float2bfloat16_rn(x);
    for (int k = 0; k < part; k++) {
        x = __fsub_rn(x, __bfloat162float(y));
        y = __float2bfloat16_rn(x);
    }
    return y;
}

// The dynamic shared memory of one block: the ring, the record's scores (rows padded by 8 floats so
// pass 1's stores, 4 heads x 4 lanes, hit distinct banks) and the groups.
constexpr int kSld = kMaxRec + 8;
template <int G> constexpr size_t smem_bytes() { return 2 * sizeof(Buf) + sizeof(float) * G * kSld + sizeof(Groups); }

template <int G, bool BULK>
__global__ void __launch_bounds__(NW * 32) attn_kv4_mma_kernel(AttnParams p)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
    if (BULK) return; // never launched below sm_90 (launch_g); keeps the instantiation trivial
#endif
    extern __shared__ __align__(16) uint8_t dsm[];
    Buf *buf = reinterpret_cast<Buf *>(dsm);
    float(*S)[kSld] = reinterpret_cast<float(*)[kSld]>(dsm + 2 * sizeof(Buf));
    Groups &gr = *reinterpret_cast<Groups *>(dsm + 2 * sizeof(Buf) + sizeof(float) * G * kSld);
    __shared__ float redmn[NW][G];
    __shared__ __align__(8) uint64_t bars[2]; // BULK: one mbarrier per ring buffer
    // pass 2's columns: G <= 4 packs the parts of p*s into the n8 tile's columns (column c = head
    // c % G, part c / G; NPART = min(8 / G, 3)), so one MMA per tile does all parts; G = 8 fills
    // the columns with heads and runs two MMAs (hi, lo)
    constexpr int NPART = G == 8 ? 2 : (8 / G < 3 ? 8 / G : 3);
    // after pass 2 the ring is dead: the cross-warp P.V reduction reuses it, [warp][column][channel]
    constexpr int kRld = HD + 4;
    static_assert(sizeof(float) * NW * 8 * kRld <= 2 * sizeof(Buf), "reduction fits in the ring");
    float(*red)[8][kRld] = reinterpret_cast<float(*)[8][kRld]>(dsm);
    const int r = blockIdx.z, kvh = blockIdx.y, c = blockIdx.x, rec = p.rec_len;
    int ctx = p.row_ctx[r];
    const int c0 = c * rec;
#ifdef QV_MUTANTS
    if (QV_DMUT(causal_off_by_one) && ctx < p.max_ctx) ctx++; // planted bug: sees the next position
    const bool gqa_mut = QV_DMUT(gqa_map);
#else
    const bool gqa_mut = false;
#endif
    if (c0 >= ctx) return; // the combine kernel never reads this record
    const int n = min(rec, ctx - c0), nsub = (n + kSub - 1) / kSub;
    const int slot = p.row_slot[r];
    // the groups' pages (and the one after the record, which only the planted bug
    // kv_page_boundary reads): one page-table load per group
    for (int k = threadIdx.x; k <= rec / 16; k += NW * 32) {
        int t = c0 + 16 * k, pi = min(t / p.P, p.max_pages - 1);
        int page = p.page_table[(size_t)slot * p.max_pages + pi], e = t % p.P;
        gr.pg[k] = page, gr.pe[k] = e;
        if (k < rec / 16)
            for (int isv = 0; isv < 2; isv++) {
                const uint8_t *base = p.pool + ((size_t)page * 2 + isv) * p.page_bytes;
                size_t ei = (size_t)kvh * p.P + e;
                gr.codes[isv][k] = base + ei * (HD / 2);
                gr.scales[isv][k] = base + (size_t)p.nkv * p.P * (HD / 2) + ei * 2;
            }
    }
    if (BULK && threadIdx.x == 0) mbar_init(&bars[0]), mbar_init(&bars[1]);
    __syncthreads();
    stage_issue<BULK>(p, buf, bars, gr, n, nsub, 0);
    stage_issue<BULK>(p, buf, bars, gr, n, nsub, 1);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gid = lane / 4, tq = lane % 4;
    const int w0 = warp * kPosWarp; // this warp's first position in a sub-chunk

    // q fragments (B, columns = heads g < G), built while the stage loads: lane holds channels
    // [32 tq, +32) of head gid, ordered as the codes' nibble pairs (see the header): step s, reg 0
    // = (C0, C0 + 4), reg 1 = (C0 + 1, C0 + 5), C0 = 8 (s / 2) + 2 (s % 2) in the lane's 32.
    uint32_t qb[8][2];
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
            qb[s][0] = *(uint32_t *)&x0;
            qb[s][1] = *(uint32_t *)&x2;
        }
        qsum = __fadd_rn(qsum, __shfl_xor_sync(0xffffffffu, qsum, 1));
        qsum = __fadd_rn(qsum, __shfl_xor_sync(0xffffffffu, qsum, 2));
    }
    // sum(q) of the heads of this lane's C columns, 2tq and 2tq + 1 (held by the lanes gid = head)
    const float qs0 = __shfl_sync(0xffffffffu, qsum, (8 * tq) & 31), qs1 = __shfl_sync(0xffffffffu, qsum, (8 * tq + 4) & 31);

    // ---- pass 1: scores, one K sub-chunk per ring item. Rows past n hold stale shared memory:
    // their codes are still 0..15 (finite), and their scores are never stored.
    for (int sub = 0; sub < nsub; sub++) {
        stage_wait<BULK>(bars, sub);
        const Buf &b = buf[sub & 1];
        const int J0 = sub * kSub; // the sub-chunk's first position in the record
#pragma unroll
        for (int st = 0; st < kSteps; st++) {
            const int base = w0 + 16 * st;
            if (J0 + base >= n) break;
            // A = codes of positions base + gid (w0) and base + gid + 8 (w1), bytes [16 tq, +16)
            const uint4 k0 = *(const uint4 *)&b.codes[(base + gid) * 64 + 16 * tq];
            const uint4 k1 = *(const uint4 *)&b.codes[(base + gid + 8) * 64 + 16 * tq];
            const uint32_t wa[4] = {k0.x, k0.y, k0.z, k0.w}, wb[4] = {k1.x, k1.y, k1.z, k1.w};
            float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
            for (int s = 0; s < 8; s++) {
                const int sh = 8 * (s % 2);
                const uint32_t a[4] = {nib_f16x2(wa[s / 2], sh), nib_f16x2(wb[s / 2], sh), nib_f16x2(wa[s / 2], sh + 4),
                                       nib_f16x2(wb[s / 2], sh + 4)};
                mma_f16(acc, a, qb[s][0], qb[s][1]);
            }
            // C: (position base + gid, heads 2tq, 2tq + 1) in 0, 1; (base + gid + 8, ..) in 2, 3
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int j = base + gid + 8 * h, J = J0 + j;
                if (J >= n) continue;
                const float sv = __half2float(b.s[j]);
                const float mv = QV_DMUT(kv4_min_dropped) ? 0.0f : __half2float(b.mn[j]); // planted bug: min dropped
#pragma unroll
                for (int e = 0; e < 2; e++)
                    if (2 * tq + e < G)
                        S[2 * tq + e][J] = __fmul_rn(__fadd_rn(__fmul_rn(sv, acc[2 * h + e]), __fmul_rn(mv, e ? qs1 : qs0)), p.scale);
            }
        }
        __syncthreads(); // buf[sub & 1] is free
        stage_issue<BULK>(p, buf, bars, gr, n, nsub, sub + 2);
    }
    chunk_softmax<G, kSld, NW>(p, S, n, r, kvh, c, gqa_mut);

    // ---- pass 2: P.V, one V sub-chunk per ring item
    float acc[8][4];
#pragma unroll
    for (int i = 0; i < 8; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
    // this lane's B column: head hc, part pc (G = 8: head gid, parts hi and lo in two MMAs)
    const int hc = G == 8 ? gid : gid % G, pc = G == 8 ? 0 : gid / G;
    const bool col_live = hc < G && pc < NPART;
    float pmn = 0.0f; // sum_j p_j mn_j for head hc over this lane's positions (part-0 lanes only)
    for (int sub = 0; sub < nsub; sub++) {
        const int it = nsub + sub;
        stage_wait<BULK>(bars, it);
        const Buf &b = buf[it & 1];
        const int J0 = sub * kSub;
#pragma unroll
        for (int st = 0; st < kSteps; st++) {
            const int base = w0 + 16 * st;
            if (J0 + base >= n) break;
            // B = parts of p_j s_j for column gid at positions 2tq, +1 (reg 0) and +8, +9 (reg 1)
            uint32_t bh[2], bl[2];
            uint2 vc[4]; // codes of positions 2tq, 2tq + 1, 2tq + 8, 2tq + 9: channels [16 gid, +16)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int j = base + 8 * h + 2 * tq, J = J0 + j;
                vc[2 * h] = *(const uint2 *)&b.codes[j * 64 + 8 * gid];
                vc[2 * h + 1] = *(const uint2 *)&b.codes[(j + 1) * 64 + 8 * gid];
                float2 sv = __half22float2(*(const __half2 *)&b.s[j]), mv = __half22float2(*(const __half2 *)&b.mn[j]);
                if (QV_DMUT(kv4_min_dropped)) mv = make_float2(0.0f, 0.0f);
                __nv_bfloat16 yh[2], yl[2];
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    float pj = (col_live && J + e < n) ? S[hc][J + e] : 0.0f;
                    // masked positions: select, never multiply (their s/mn words may be stale)
                    float x = pj != 0.0f ? __fmul_rn(pj, e ? sv.y : sv.x) : 0.0f;
                    if (pj != 0.0f && pc == 0) pmn = __fadd_rn(pmn, __fmul_rn(pj, e ? mv.y : mv.x));
                    if (G == 8) {
                        yh[e] = __float2bfloat16_rn(x);
                        yl[e] = __float2bfloat16_rn(__fsub_rn(x, __bfloat162float(yh[e])));
                    } else {
                        yh[e] = bf16_part(x, pc);
                    }
                }
                bh[h] = pack_bf16(yh[0], yh[1]);
                if (G == 8) bl[h] = pack_bf16(yl[0], yl[1]);
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
                if (G == 8) mma_bf16(acc[i], a, bl[0], bl[1]);
            }
        }
        __syncthreads(); // buf[it & 1] is free
        stage_issue<BULK>(p, buf, bars, gr, n, nsub, it + 2);
    }
    // C: acc[i] = O^T[channel 16 gid + i][column 2tq, 2tq + 1] (0, 1), [.. + 8 + i] (2, 3)
#pragma unroll
    for (int i = 0; i < 8; i++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            red[warp][2 * tq + e][16 * gid + i] = acc[i][e];
            red[warp][2 * tq + e][16 * gid + 8 + i] = acc[i][2 + e];
        }
    pmn = __fadd_rn(pmn, __shfl_xor_sync(0xffffffffu, pmn, 1));
    pmn = __fadd_rn(pmn, __shfl_xor_sync(0xffffffffu, pmn, 2));
    if (tq == 0 && col_live && pc == 0) redmn[warp][hc] = pmn;
    __syncthreads();
    constexpr int kCols = G == 8 ? 1 : NPART; // columns summed per head: its parts
    for (int k = threadIdx.x; k < G * HD; k += NW * 32) {
        int g = k / HD, d = k % HD;
        float s = red[0][g][d], m = redmn[0][g];
#pragma unroll
        for (int pt = 1; pt < kCols; pt++) s = __fadd_rn(s, red[0][g + G * pt][d]);
#pragma unroll
        for (int w = 1; w < NW; w++) {
            m = __fadd_rn(m, redmn[w][g]);
#pragma unroll
            for (int pt = 0; pt < kCols; pt++) s = __fadd_rn(s, red[w][g + G * pt][d]);
        }
        p.O[(((size_t)r * p.nh + QV_QHEAD(kvh, g)) * p.n_chunks + c) * HD + d] = __fadd_rn(s, m);
    }
}

// BULK (sm_90 bulk copies) on devices of compute capability >= 9 unless QV_ATTN_LOADS=cpasync
// (a test and bench knob: both loaders are checked on the same device).
inline bool use_bulk()
{
    int dev = 0, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess)
        return (void)cudaGetLastError(), false;
#ifdef QV_MUTANTS
    return false; // the planted bugs' sites are in the cp.async loader
#else
    const char *e = getenv("QV_ATTN_LOADS");
    return major >= 9 && !(e && strcmp(e, "cpasync") == 0);
#endif
}

template <int G, bool BULK> qv_status launch_gb(dim3 grid, const AttnParams &p, cudaStream_t s)
{
    // above the 48 KB default: opt in once per process and device (the attribute belongs to the
    // function; a call for another device than the last one repeats it)
    static std::atomic<int> opted{-1};
    int dev = 0;
    QV_CUDA_TRY(cudaGetDevice(&dev));
    if (opted.load(std::memory_order_relaxed) != dev) {
        QV_CUDA_TRY(cudaFuncSetAttribute(attn_kv4_mma_kernel<G, BULK>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)smem_bytes<G>()));
        opted.store(dev, std::memory_order_relaxed);
    }
    attn_kv4_mma_kernel<G, BULK><<<grid, NW * 32, smem_bytes<G>(), s>>>(p);
    return QV_OK;
}

template <int G> qv_status launch_g(dim3 grid, const AttnParams &p, cudaStream_t s)
{
    return use_bulk() ? launch_gb<G, true>(grid, p, s) : launch_gb<G, false>(grid, p, s);
}

} // namespace

qv_status launch_kv4_mma(int G, dim3 grid, const AttnParams &p, cudaStream_t s)
{
    qv_status st;
    switch (G) {
    case 1: st = launch_g<1>(grid, p, s); break;
    case 2: st = launch_g<2>(grid, p, s); break;
    case 4: st = launch_g<4>(grid, p, s); break;
    case 8: st = launch_g<8>(grid, p, s); break;
    default: return qv_fail(QV_ERR_UNSUPPORTED, "attention (KV4 tensor-core path): GQA group %d not in {1,2,4,8}", G);
    }
    if (st != QV_OK) return st;
    QV_CUDA_TRY(cudaGetLastError());
    return QV_OK;
}

} // namespace qv_attn
