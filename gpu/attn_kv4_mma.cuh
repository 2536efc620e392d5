// The tensor-core KV4 attention kernels' shared device pieces (attn_kv4_mma.cu: one row per block;
// attn_kv4_tiled.cu: a tile of rows of one sequence per block): constants, the MMA and nibble
// conversion helpers, the shared-memory ring and its loaders (cp.async / sm_90 bulk copies), the
// per-record page groups. Both kernels include this one definition, so their loads and conversions
// are the same code; attn_kv4_mma.cu's header comment explains the design.
#pragma once
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

// Fills gr for the record at c0 of (slot, KV head kvh): the groups' pages (and the one after the
// record, which only the planted bug kv_page_boundary reads), one page-table load per group. All
// threads of the block; the caller's barrier publishes gr.
__device__ __forceinline__ void load_groups(const AttnParams &p, Groups &gr, int slot, int kvh, int c0, int rec)
{
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
}

// Issues the copies of item `it` of the block's stream into buf[(ib + it) & 1] (ib: the items of
// the block's earlier row groups, 0 in the one-row kernel): items 0 .. nsub-1 are the
// sub-chunks' K, nsub .. 2 nsub - 1 their V (nothing past the stream's end). cp.async (BULK false):
// every thread copies 16-byte pieces and commits one group (empty past the end, so every thread
// counts the same groups). BULK: lanes of warp 0 copy whole groups (1 KB of codes, 32 B of s, of
// mn) after lane 0 announced the bytes on the buffer's mbarrier. The planted bugs (QV_MUTANTS
// builds, which always take the cp.async path) engine_kv_swap reads V from the K pages,
// kv_page_boundary takes the codes of a page's last position from the next page.
template <bool BULK>
__device__ __forceinline__ void stage_issue(const AttnParams &p, Buf *buf, uint64_t *bars, const Groups &gr, int n,
                                            int nsub, int it, int ib = 0)
{
    const int gi = ib + it; // the block's running item count picks the buffer (the tiled kernel streams several row groups)
    if (it < 2 * nsub) {
        const int isv = it >= nsub, sub = isv ? it - nsub : it, src = QV_DMUT(engine_kv_swap) ? 0 : isv;
        Buf &b = buf[gi & 1];
        const int g0 = 16 * sub, groups = (min(kSub, n - kSub * sub) + 15) / 16;
        const size_t mn_off = (size_t)p.nkv * p.P * 2;
        if (BULK) {
            if (threadIdx.x < 32) {
                if (threadIdx.x == 0) {
                    // the buffer was last read through ordinary loads (before the caller's barrier):
                    // order them before the async proxy's writes
                    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
                    (void)mbar_expect(&bars[gi & 1], (unsigned)groups * (16 * 64 + 2 * 32));
                }
                __syncwarp();
                for (int grp = threadIdx.x; grp < groups; grp += 32) {
                    bulk_copy(&b.codes[16 * 64 * grp], gr.codes[src][g0 + grp], 16 * 64, &bars[gi & 1]);
                    bulk_copy(b.s + 16 * grp, gr.scales[src][g0 + grp], 32, &bars[gi & 1]);
                    bulk_copy(b.mn + 16 * grp, gr.scales[src][g0 + grp] + mn_off, 32, &bars[gi & 1]);
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

// The consumers' wait for item `it` (counted over the block's whole stream: ib + it): cp.async, this thread's pieces (one younger group may stay in
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

// Pass 2's B columns: G <= 4 packs the parts of p*s into the n8 tile's columns (column c = head
// c % G, part c / G), NPART of them; G = 8 fills the columns with heads and runs two MMAs (hi, lo).
template <int G> constexpr int kNPart = G == 8 ? 2 : (8 / G < 3 ? 8 / G : 3);
// the cross-warp reduction's rows, [warp][column][channel], padded
constexpr int kRld = HD + 4;
static_assert(sizeof(float) * NW * 8 * kRld <= 2 * sizeof(Buf), "reduction fits in the ring");

// q fragments of one B column (the head at q of one row; live false: a dead column, zeros, q unread): lane holds
// channels [32 tq, +32), ordered as the codes' nibble pairs: step s, reg 0 = (C0, C0 + 4), reg 1 =
// (C0 + 1, C0 + 5), C0 = 8 (s / 2) + 2 (s % 2) in the lane's 32. Returns sum(q) over the head's
// 128 channels (the lane's 32 in order, then the 4 lanes of the column by shuffles).
__device__ __forceinline__ float q_fragments(bool live, const __half *q, int tq, uint32_t (&qb)[8][2])
{
    __half qh[32];
    if (live) {
        const uint4 *src = (const uint4 *)(q + tq * 32);
#pragma unroll
        for (int k = 0; k < 4; k++) *(uint4 *)&qh[8 * k] = src[k];
    } else {
#pragma unroll
        for (int k = 0; k < 32; k++) qh[k] = __ushort_as_half(0);
    }
    float qsum = 0.0f;
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
    return __fadd_rn(qsum, __shfl_xor_sync(0xffffffffu, qsum, 2));
}

// Pass 2's B parts of x = p_j s_j for this lane's column (part pc; G = 8: hi in yh, lo in yl)
template <int G> __device__ __forceinline__ void pv_parts(float x, int pc, __nv_bfloat16 &yh, __nv_bfloat16 &yl)
{
    if (G == 8) {
        yh = __float2bfloat16_rn(x);
        yl = __float2bfloat16_rn(__fsub_rn(x, __bfloat162float(yh)));
    } else {
        yh = bf16_part(x, pc);
    }
}

// Pass 2's A operand: vc = the codes of positions 2tq, 2tq + 1, 2tq + 8, 2tq + 9, channels
// [16 gid, +16); a byte permute pairs two positions' nibbles of one channel (x01: 2tq / 2tq + 1,
// x23: + 8 / + 9), then tile i's A (row gid = channel 16 gid + i, row gid + 8 = channel
// 16 gid + 8 + i; channel c's pair is in x[c / 4] at nibble shift 4 (c % 4)) is pv_a(x01, x23, i)
__device__ __forceinline__ void pv_pairs(const uint2 (&vc)[4], uint32_t (&x01)[4], uint32_t (&x23)[4])
{
    x01[0] = __byte_perm(vc[0].x, vc[1].x, 0x5410), x01[1] = __byte_perm(vc[0].x, vc[1].x, 0x7632);
    x01[2] = __byte_perm(vc[0].y, vc[1].y, 0x5410), x01[3] = __byte_perm(vc[0].y, vc[1].y, 0x7632);
    x23[0] = __byte_perm(vc[2].x, vc[3].x, 0x5410), x23[1] = __byte_perm(vc[2].x, vc[3].x, 0x7632);
    x23[2] = __byte_perm(vc[2].y, vc[3].y, 0x5410), x23[3] = __byte_perm(vc[2].y, vc[3].y, 0x7632);
}

__device__ __forceinline__ void pv_a(const uint32_t (&x01)[4], const uint32_t (&x23)[4], int i, uint32_t (&a)[4])
{
    a[0] = nib_bf16x2(x01[i / 4], 4 * (i % 4)), a[1] = nib_bf16x2(x01[2 + i / 4], 4 * (i % 4));
    a[2] = nib_bf16x2(x23[i / 4], 4 * (i % 4)), a[3] = nib_bf16x2(x23[2 + i / 4], 4 * (i % 4));
}

// The dynamic shared memory of one block: the ring, the record's scores (rows padded by 8 floats so
// pass 1's stores, 4 heads x 4 lanes, hit distinct banks) and the groups.
constexpr int kSld = kMaxRec + 8;
template <int G> constexpr size_t smem_bytes() { return 2 * sizeof(Buf) + sizeof(float) * G * kSld + sizeof(Groups); }

// BULK (sm_90 bulk copies) only when QV_ATTN_LOADS=bulk on a device of compute capability >= 9:
// measured on the H200 (stop 17, same call) it was slower than the per-thread cp.async loader at
// every benchmark point (64 x 4096: 170.5 vs 123.0 us; 1 x 4096: 28.5 vs 17.8 us), so cp.async is
// the default everywhere and the bulk loader stays a tested knob (both loaders give the same bits).
inline bool use_bulk()
{
    int dev = 0, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess)
        return (void)cudaGetLastError(), false;
#ifdef QV_MUTANTS
    return false; // the planted bugs' sites are in the cp.async loader
#else
    const char *e = getenv("QV_ATTN_LOADS");
    return major >= 9 && e && strcmp(e, "bulk") == 0;
#endif
}

} // namespace
} // namespace qv_attn
