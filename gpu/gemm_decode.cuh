// The decode (small-M) GEMM kernel of qvet's three GEMMs (device code; host launch in
// gemm_launch.cu, which routes M <= kDecodeMaxM here unless QV_GEMM_VARIANT says otherwise).
//
// Computes exactly what gemm_kernel (gemm_mma_core.cuh) computes, acc[m][n] = sum_k x[m][k] *
// b[n][k] in INT32 with b from the same Policy (W8A8: w8; per-channel: the UINT4 code; g128:
// u*s1 - sz1 dequantized in registers), then the same FP32 epilogue through the same helper
// (store_out_pair: Policy::epilogue, counted saturation), or the INT32 accumulators (_acc).
// Same inputs and layouts (gpu_gemm.h), so the two paths are interchangeable bit for bit.
//
// Why a separate kernel: at M <= 16 a GEMM is a weight stream (4-bit weights: N*K/2 bytes for
// M*N*K MACs), so the time should be bytes / HBM bandwidth. The tiled kernel runs one 16-row
// tile through a cp.async -> shared-memory ring -> ldmatrix -> mma -> store chain with 4 warps
// per block and ~0.2 waves: ncu showed ~5 % achieved occupancy and DRAM at 19 %, a fixed latency
// of 8-10 us, not bandwidth, setting the time. Here every warp streams its own weights straight
// from global memory into registers, many warps per SM, several 512-byte warp loads in flight
// each, and the shared memory holds only the activations.
//
// Structure:
//  * block = 8 warps = kDecWN (4) column warps x kDecWK (2) K warps; a column warp owns one
//    32-channel block (BN = 128 channels per block); blockIdx.z is a K slice of p.ktps "batches".
//  * batch = what one warp loads with one 16-byte load per lane per 512 bytes: W4 (chn, g128):
//    the four 32x32 packed tiles (k = 128, one g128 group) of the warp's 32 channels; W8A8: 64 k
//    of 32 channels. Loads are ld.global.nc.L1::no_allocate (read-only, streamed once), issued
//    kDecDepth batches ahead in registers (a register ring: no shared-memory ring, no barrier in
//    the mainloop); the first batches are issued BEFORE the activations are staged, so the
//    staging's latency hides under the weights'.
//  * x [M, K] int8 is staged once per block for the block's K slice into shared memory in
//    "fragment order": per k32 mma step, lane t's A registers {a0, a1, a2, a3} (16 bytes, MT 16)
//    or {a0, a2} (8 bytes, MT 8: rows 8-15 are padding, a1 = a3 = 0) contiguous, so the mainloop
//    reads the whole A fragment with one conflict-free LDS.128 / LDS.64 per step. Rows >= M and
//    k >= K are zero (K tails, padding rows: they contribute 0, whatever the weight).
//  * INT32 accumulation on mma.sync.m16n8k32.s8 with M padded to 16 (MT = 8 or 16 rows staged).
//    Chosen over __dp4a: per 16 weight bytes a lane issues 4 mma (W4) whatever M <= 16, while
//    dp4a needs 8*M IDP4A (W4) plus the per-row x operands: at M = 16 that is ~5 warp
//    instructions per clock per SM at H200 bandwidth, more than the 4 issue slots, and at M = 1
//    it saves nothing that limits (the tensor pipe stays < 1/3 busy: 128 weight bytes per
//    4096-MAC mma is ~300 TOP/s of padded mma at 4.8 TB/s, against the ~500-600 TOP/s mma.sync
//    reaches here). One instruction path for all M <= 16 and all three formats.
//  * B fragments: W4: the packed layout's lane t 16 bytes after & 0x0F0F0F0F / >> 4 ARE the B
//    registers of four n8 tiles for one k32 step (unpack_w4, shared with the tiled kernel); g128
//    then __vsub4(b*s1, sz1*0x01010101) per register (its s1/sz1 words loaded with the batch).
//    W8A8: lane (g, t) loads row n+g's 16 bytes at k = kb + 16t; mma step s of the 64-k batch
//    takes words 2s, 2s+1 as b0, b1. That is a permutation of k inside the batch (physical
//    k = kb + 16t + 8s + {0..3} for b0, +4 for b1), applied identically to A by the staging: the
//    products summed are the same set, each k exactly once, and INT32 addition is exact and
//    order-free, so the sum is bit-identical.
//  * cut-off M <= 16 (kDecodeMaxM): one m16 tile. At M = 32 the padded mma work per weight byte
//    doubles (~600 TOP/s at H200 bandwidth), at the mma.sync rate reached: no longer a pure
//    stream; the tiled kernel's 64-row tiles take over from M = 17 by default.
//    MT = 32 and 64 (QV_GEMM_VARIANT=decode64, M <= 64; stop 17): 2 or 4 m16 tiles share each
//    weight batch (each unpacked B fragment feeds MT/16 mma), for the M = 17..64 shapes where the
//    tiled kernels are latency-bound (ncu: docs/gpu-gemm.md; qkv/o/down at M = 64 reach 0.2-0.35
//    of what mma.sync reaches at large M). The staged fragment of a k32 step is then MT/4 words
//    per lane: m16 tile i's {a0, a1, a2, a3} at words 4i..4i+3.
//  * reduction, all exact INT32: the two K warps of a column add through shared memory (then
//    a linear [MT][128] tile, 2 or 1 int4 items per thread); K slices across blocks (gridDim.z,
//    chosen by the host to fill the resident block slots in ONE wave) use the same protocol as
//    the tiled kernel's split-K: each block stores its partial tile to the per-stream workspace
//    ws[z][M][N], fence, arrival counter, the last block adds the other slices (loads of all
//    slices unrolled, so one L2 round trip rather than one per slice) and runs the epilogue.
//
// Planted bugs (QV_MUTANTS builds, the gate's self-test runs them on the default path, which is
// this kernel for the targeted M = 1/3/5 cases): nibble_swap (in unpack_w4), group_boundary
// (below: the last k32 step of a group takes the next group's s1/sz1, as in the tiled kernel and
// the CPU emulation), ktail_dropped (the x staging zero-fills the last partial 128-wide K tile
// of W8A8), act_scale_token / fp16_sat_silent / zp_sign / rowsum_omitted / scale_before_sum (in
// the shared epilogue), reorder_twice (host side, before either path).
//
// Reference it must match: ref/qoq's integer GEMM + epilogues (NUMERICS.md), bit for bit
// (tests/test_gpu_gemm.c, every M <= 16 case of include/qvet/kcases.h on the default family).
// tools/gemm_decode_emu.py mirrors this file's index math on the host (keep the two in step).
#ifndef QV_GEMM_DECODE_CUH
#define QV_GEMM_DECODE_CUH

#include "gemm_w8a8.cuh"
#include "gemm_w4a8_chn.cuh"
#include "gemm_w4a8_g128.cuh"

namespace qvg {

constexpr int kDecodeMaxM = 16;
constexpr int kDecodeWideMaxM = 64; // QV_GEMM_VARIANT=decode64 (MT 32 / 64)
// m16 tiles per staged k32 step (MT 8 pads one tile)
template <int MT> __host__ __device__ constexpr int dec_tiles() { return MT <= 16 ? 1 : MT / 16; }
constexpr int kDecWN = 4, kDecWK = 2;
constexpr int kDecThreads = 32 * kDecWN * kDecWK;
constexpr int kDecBN = 32 * kDecWN;     // channels per block
constexpr int kDecDepth = 2;            // batches in flight per warp (register ring)
constexpr int kDecRRow = kDecBN + 8;    // ints per row of the reduction tile (bank spread)
// __launch_bounds__ blocks per SM (Dec<P>::MINB): 3 (24 warps, <= 80 registers) for W8A8 and per-channel; 2
// for g128 (16 warps, <= 128 registers), whose dequantization spilled 40-56 bytes under 80
// (nvcc 13.0). 16 warps x ~2 batches of 2 KB in flight per SM is still above the ~25-35 KB per
// SM that HBM latency x bandwidth asks for.
constexpr int kDecStageMax = 64 << 10;  // shared bytes for staged x per block (caps a K slice)

// 16 bytes that are read once: read-only path, not kept in L1.
__device__ __forceinline__ uint4 ldg_stream(const void *p)
{
    uint4 r;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p));
    return r;
}

// Where lane L's A registers of a k32 step sit among the step's 32 slots. The XOR keeps each
// 8-lane quarter (LDS.128 phase; LDS.64 half-warp phase) on distinct bank groups for the reads,
// and spreads the staging's 4-byte stores: there a warp writes one register of rows 0-15 x two
// k halves, lanes 4*(m & 7) + j, whose 16-byte slots would otherwise fall on 2 bank groups
// (16-way conflicts); with the XOR, rows m & 7 map onto 8 distinct groups (conflict-free for W4
// at MT 16, 2-way for W8A8 and at MT 8).
__device__ __forceinline__ int dec_slot(int L) { return L ^ ((L >> 3) & 3); }

// The A fragment of m16 tile i of one k32 step from the staged x (MT 8: rows 8-15 are zero padding).
template <int MT> __device__ __forceinline__ void dec_load_a(uint32_t (&a)[4], const uint32_t *xs, int i = 0)
{
    if constexpr (MT >= 16) {
        const uint4 v = *reinterpret_cast<const uint4 *>(xs + 4 * i);
        a[0] = v.x, a[1] = v.y, a[2] = v.z, a[3] = v.w;
    } else {
        const uint2 v = *reinterpret_cast<const uint2 *>(xs);
        a[0] = v.x, a[1] = 0u, a[2] = v.y, a[3] = 0u;
    }
}

// Per-format weight streaming of the decode kernel. nb: the warp's 32-channel block; kg: the
// batch index along K (absolute); xs: the staged A fragments of the batch's first k32 step.
template <bool G128> struct DecW4 {
    static constexpr int MINB = G128 ? 2 : 3; // see kDecStageMax
    static constexpr int KG = 128;  // k per batch: 4 packed tiles = one g128 group
    static constexpr int STEPS = 4; // k32 mma steps per batch
    static constexpr bool kPermutedK = false;
    struct Batch {
        uint4 w[4];
        uint32_t s1, sz1; // g128: the lane's four channels' group bytes
    };
    static __device__ __forceinline__ void load(Batch &b, const Params &p, int nb, int kg, int lane)
    {
        const int kt32 = p.K / 32;
        const bool nv = nb < p.N / 32;
        const uint8_t *src = p.w + ((long)nb * kt32 + (long)kg * 4) * 512 + lane * 16;
#pragma unroll
        for (int i = 0; i < 4; i++) b.w[i] = nv && kg * 4 + i < kt32 ? ldg_stream(src + i * 512) : make_uint4(0, 0, 0, 0);
        b.s1 = b.sz1 = 0;
        if (G128 && nv && kg * 128 < p.K) {
            const long o = (long)kg * p.N + nb * 32 + 4 * (lane >> 2);
            b.s1 = __ldg(reinterpret_cast<const unsigned int *>(p.s1 + o));
            b.sz1 = __ldg(reinterpret_cast<const unsigned int *>(p.sz1 + o));
        }
    }
    template <int MT>
    static __device__ __forceinline__ void compute(const Batch &b, const uint32_t *xs, int32_t (&acc)[dec_tiles<MT>()][4][4],
                                                   const Params &p, int nb, int kg, int lane)
    {
        constexpr int REGS = MT / 4;
        uint32_t s1w = b.s1, szw = b.sz1; // byte j: channel c + 8j = n8 tile j
#pragma unroll
        for (int st = 0; st < STEPS; st++) {
            uint32_t bb[4][2];
            unpack_w4(b.w[st], bb);
            if constexpr (G128) {
#ifdef QV_MUTANTS
                // the planted bug group_boundary: the group's last k32 step dequantized with the
                // next group's scales (tiled kernel: PolicyW4G128::Frag::load; CPU emulation)
                if (QV_DMUT(group_boundary) && st == STEPS - 1 && (kg + 1) * 128 < p.K && nb < p.N / 32) {
                    const long o = (long)(kg + 1) * p.N + nb * 32 + 4 * (lane >> 2);
                    s1w = __ldg(reinterpret_cast<const unsigned int *>(p.s1 + o));
                    szw = __ldg(reinterpret_cast<const unsigned int *>(p.sz1 + o));
                }
#endif
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const uint32_t s1 = (s1w >> (8 * j)) & 255u;
                    const uint32_t szx4 = __byte_perm(szw, 0u, 0x1111u * j); // byte j in all four lanes
                    bb[j][0] = __vsub4(bb[j][0] * s1, szx4);
                    bb[j][1] = __vsub4(bb[j][1] * s1, szx4);
                }
            }
#pragma unroll
            for (int i = 0; i < dec_tiles<MT>(); i++) {
                uint32_t a[4];
                dec_load_a<MT>(a, xs + (st * 32 + dec_slot(lane)) * REGS, i);
#pragma unroll
                for (int j = 0; j < 4; j++) mma_s8(acc[i][j], a, bb[j][0], bb[j][1]);
            }
        }
        (void)p, (void)nb, (void)kg;
    }
};

struct DecW8 {
    static constexpr int MINB = 3;
    static constexpr int KG = 64;  // k per batch: 16 bytes per lane of 8 rows x 64 k, 4 n8 tiles
    static constexpr int STEPS = 2;
    static constexpr bool kPermutedK = true; // see the header: k permuted inside a batch
    struct Batch {
        uint4 w[4]; // n8 tile j: row nb*32 + 8j + g, k = kg*64 + 16t .. +15
    };
    static __device__ __forceinline__ void load(Batch &b, const Params &p, int nb, int kg, int lane)
    {
        const int k = kg * 64 + 16 * (lane & 3);
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int n = nb * 32 + 8 * j + (lane >> 2);
            b.w[j] = n < p.N && k < p.K ? ldg_stream(p.w + (long)n * p.K + k) : make_uint4(0, 0, 0, 0);
        }
    }
    template <int MT>
    static __device__ __forceinline__ void compute(const Batch &b, const uint32_t *xs, int32_t (&acc)[dec_tiles<MT>()][4][4],
                                                   const Params &, int, int, int lane)
    {
        constexpr int REGS = MT / 4;
#pragma unroll
        for (int st = 0; st < STEPS; st++) {
#pragma unroll
            for (int i = 0; i < dec_tiles<MT>(); i++) {
                uint32_t a[4];
                dec_load_a<MT>(a, xs + (st * 32 + dec_slot(lane)) * REGS, i);
#pragma unroll
                for (int j = 0; j < 4; j++)
                    mma_s8(acc[i][j], a, st ? b.w[j].z : b.w[j].x, st ? b.w[j].w : b.w[j].y);
            }
        }
    }
};

template <class P> struct Dec;
template <> struct Dec<PolicyW8A8> : DecW8 {};
template <> struct Dec<PolicyW4Chn> : DecW4<false> {};
template <> struct Dec<PolicyW4G128> : DecW4<true> {};

// Stages x[0..MT) x [k0, k0 + nk) into fragment order (see the header): 16-byte reads (rows
// fastest: a warp reads 16 rows x 32 contiguous bytes, whole sectors), each 32-bit word stored
// to the (step, lane, register) that consumes it (slot: dec_slot). The reads go out
// kDecStageU at a time per thread before any is stored (a long K slice would otherwise cost one
// L2 round trip per chunk). kx: the K extent read (p.K; less only for the planted bug
// ktail_dropped).
constexpr int kDecStageU = 4;
template <class D, int MT>
__device__ __forceinline__ void dec_stage_x(uint32_t *xs, const Params &p, int k0, int nk, int kx)
{
    constexpr int REGS = MT / 4;
    const int nch = nk / 16, total = MT * nch;
    for (int base = threadIdx.x; base < total; base += kDecStageU * kDecThreads) {
        uint4 v[kDecStageU];
#pragma unroll
        for (int u = 0; u < kDecStageU; u++) {
            const int it = base + u * kDecThreads, m = it % MT, k = k0 + 16 * (it / MT);
            v[u] = make_uint4(0, 0, 0, 0);
            if (it < total && m < p.M && k < kx) v[u] = __ldg(reinterpret_cast<const uint4 *>(p.x + (long)m * p.K + k));
        }
#pragma unroll
        for (int u = 0; u < kDecStageU; u++) {
            const int it = base + u * kDecThreads, m = it % MT, c = it / MT;
            if (it >= total) break;
            const uint32_t w[4] = {v[u].x, v[u].y, v[u].z, v[u].w};
#pragma unroll
            for (int j = 0; j < 4; j++) {
                // word j of chunk c holds k = 16c + 4j .. +3 (relative to k0)
                int step, t, hi;
                if constexpr (D::kPermutedK) step = 2 * (c >> 2) + (j >> 1), t = c & 3, hi = j & 1;
                else step = c >> 1, t = j, hi = c & 1;
                // m16 tile m >> 4: a0, a1 (row + 8), a2 (k + 16), a3 at words 4 (m >> 4) + 0..3
                const int idx = MT >= 16 ? 4 * (m >> 4) + 2 * hi + ((m >> 3) & 1) : hi;
                xs[(step * 32 + dec_slot((m & 7) * 4 + t)) * REGS + idx] = w[j];
            }
        }
    }
}

// Shared bytes of one launch: the staged x of the block's K slice, then (reused) the K warps'
// partial tiles.
template <class P, int MT> struct DecSmem {
    static constexpr int BATCH = Dec<P>::STEPS * 32 * (MT / 4) * 4; // staged x bytes per batch
    static constexpr int RED = kDecWK * MT * kDecRRow * 4;
    static constexpr int MAX_BATCHES = kDecStageMax / BATCH;
    static constexpr int bytes(int ktps) { return ktps * BATCH > RED ? ktps * BATCH : RED; }
};

// Blocks per SM for __launch_bounds__: MT 32 / 64 hold 32 / 64 accumulators per thread, so 2
// (<= 128 registers) for every format there.
template <class P, int MT> constexpr int dec_minb() { return MT <= 16 ? Dec<P>::MINB : 2; }

// OUT_ACC: store the INT32 accumulators (debug entry) instead of the FP16 epilogue.
// MT: staged rows, 8 (M <= 8), 16 (M <= 16), or 32 / 64 (QV_GEMM_VARIANT=decode64).
template <class P, int MT, bool OUT_ACC>
__global__ void __launch_bounds__(kDecThreads, (dec_minb<P, MT>())) gemm_decode_kernel(const Params p)
{
    using D = Dec<P>;
    constexpr int REGS = MT / 4;
    extern __shared__ __align__(16) uint8_t smem[];
    uint32_t *xs = reinterpret_cast<uint32_t *>(smem);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int wn = warp % kDecWN, wk = warp / kDecWN;
    const int nb = blockIdx.x * kDecWN + wn; // the warp's 32-channel block
    const int kgall = (p.K + D::KG - 1) / D::KG;
    const int kg0 = blockIdx.z * p.ktps;                  // this block's first batch
    const int nkg = min(kgall, kg0 + p.ktps) - kg0;      // and how many (>= 1 by the host)
    const int per = (nkg + kDecWK - 1) / kDecWK;
    const int wb0 = min(nkg, wk * per), wb1 = min(nkg, wb0 + per); // the warp's batches

    typename D::Batch buf[kDecDepth];
#pragma unroll
    for (int d = 0; d < kDecDepth; d++)
        if (wb0 + d < wb1) D::load(buf[d], p, nb, kg0 + wb0 + d, lane);

    // x read extent; the planted bug ktail_dropped (W8A8, QV_MUTANTS builds only) drops the last
    // partial 128-wide K tile, as in the tiled kernel's load_stage
    const int kx = QV_DMUT(ktail_dropped) && !P::kPacked ? p.K - p.K % 128 : p.K;
    dec_stage_x<D, MT>(xs, p, kg0 * D::KG, nkg * D::KG, kx);
    __syncthreads();

    constexpr int TI = dec_tiles<MT>();
    int32_t acc[TI][4][4];
#pragma unroll
    for (int i = 0; i < TI; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0;
    for (int b = wb0; b < wb1; b += kDecDepth) {
#pragma unroll
        for (int d = 0; d < kDecDepth; d++) {
            if (b + d < wb1) {
                D::template compute<MT>(buf[d], xs + (b + d) * D::STEPS * 32 * REGS, acc, p, nb, kg0 + b + d, lane);
                if (b + d + kDecDepth < wb1) D::load(buf[d], p, nb, kg0 + b + d + kDecDepth, lane);
            }
        }
    }

    // the K warps' partial tiles -> red[wk][MT][kDecRRow]; accumulator (i, j, e): row 16i + g +
    // 8*(e>>1), column 8j + 2t + (e&1) of the warp's 32 channels
    __syncthreads(); // every warp is done with the staged x
    int32_t *red = reinterpret_cast<int32_t *>(smem);
    {
        const int g = lane >> 2, t = lane & 3;
#pragma unroll
        for (int i = 0; i < TI; i++)
#pragma unroll
            for (int j = 0; j < 4; j++)
#pragma unroll
                for (int h = 0; h < (MT < 16 ? MT : 16) / 8; h++)
                    *reinterpret_cast<int2 *>(red + (wk * MT + 16 * i + g + 8 * h) * kDecRRow + wn * 32 + 8 * j + 2 * t) =
                        make_int2(acc[i][j][2 * h], acc[i][j][2 * h + 1]);
    }
    __syncthreads();

    // linear phase: item = (row m, 4 consecutive channels), the block's sum over its K slice
    constexpr int PER_T = MT * kDecBN / 4 / kDecThreads;
    static_assert(PER_T * kDecThreads == MT * kDecBN / 4, "items per thread");
    const int n0 = blockIdx.x * kDecBN;
    int4 v[PER_T];
#pragma unroll
    for (int i = 0; i < PER_T; i++) {
        const int it = threadIdx.x + i * kDecThreads, m = it / (kDecBN / 4), c = (it % (kDecBN / 4)) * 4;
        v[i] = make_int4(0, 0, 0, 0);
#pragma unroll
        for (int q = 0; q < kDecWK; q++) {
            const int4 r = *reinterpret_cast<const int4 *>(red + (q * MT + m) * kDecRRow + c);
            v[i].x += r.x, v[i].y += r.y, v[i].z += r.z, v[i].w += r.w;
        }
    }
    auto item_m = [](int i) { return (int)((threadIdx.x + i * kDecThreads) / (kDecBN / 4)); };
    auto item_n = [n0](int i) { return n0 + (int)((threadIdx.x + i * kDecThreads) % (kDecBN / 4)) * 4; };

    if (gridDim.z > 1) {
        // split-K fix-up (the tiled kernel's protocol): store, fence, count; the last block to
        // arrive adds the other slices' partials. Exact and order-free (INT32 addition).
        __shared__ int s_last;
        const int z = blockIdx.z;
#pragma unroll
        for (int i = 0; i < PER_T; i++) {
            const int m = item_m(i), n = item_n(i);
            if (m < p.M && n < p.N) *reinterpret_cast<int4 *>(p.ws + ((long)z * p.M + m) * p.N + n) = v[i];
        }
        __threadfence();
        __syncthreads();
        if (threadIdx.x == 0) {
            const unsigned int old = atomicAdd(p.cnt + blockIdx.x, 1u);
            s_last = old == gridDim.z - 1;
            if (s_last) p.cnt[blockIdx.x] = 0; // every other slice of this column has counted already
        }
        __syncthreads();
        if (!s_last) return;
        __threadfence();
#pragma unroll
        for (int i = 0; i < PER_T; i++) {
            const int m = item_m(i), n = item_n(i);
            if (m >= p.M || n >= p.N) continue;
            const int4 *src = reinterpret_cast<const int4 *>(p.ws + (long)m * p.N + n);
            const long zstride = (long)p.M * p.N / 4; // int4 units (N % 8 == 0)
#pragma unroll 8
            for (int q = 0; q < (int)gridDim.z; q++) {
                if (q == z) continue;
                const int4 r = __ldcg(src + q * zstride);
                v[i].x += r.x, v[i].y += r.y, v[i].z += r.z, v[i].w += r.w;
            }
        }
    }

    unsigned int nsat = 0;
#pragma unroll
    for (int i = 0; i < PER_T; i++) {
        const int m = item_m(i), n = item_n(i);
        if (m >= p.M || n >= p.N) continue; // N % 8 == 0 and n % 4 == 0: n + 3 < N too
        if constexpr (OUT_ACC) {
            int2 *dst = reinterpret_cast<int2 *>(p.acc + (long)m * p.N + n); // acc is 8-byte aligned
            dst[0] = make_int2(v[i].x, v[i].y);
            dst[1] = make_int2(v[i].z, v[i].w);
        } else {
            store_out_pair<P>(p, m, n, v[i].x, v[i].y, nsat);
            store_out_pair<P>(p, m, n + 2, v[i].z, v[i].w, nsat);
        }
    }
    if (!OUT_ACC && nsat) atomicAdd(p.sat, nsat);
}

} // namespace qvg

#endif
