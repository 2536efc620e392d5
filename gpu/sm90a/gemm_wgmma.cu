// The sm_90a W4A8 GEMM path (issue 7): warpgroup MMA (wgmma.mma_async m64n128k32 .s32.s8.s8) with
// the dequantized weights as the register operand A and the activations as the shared-memory
// operand B. Built for sm_90a only (CMakeLists.txt: its own object library); gemm_launch.cu
// calls it through gemm_wgmma.h for M >= kWgMinM when QV_GEMM_VARIANT=wgmma, and under the default
// rule on the shapes where it was measured faster (wgmma_by_default in gemm_launch.cu), and falls
// back to the mma.sync kernels when it does not apply (other device, image does not load, no
// layout passed the self-test).
//
// Computes exactly what gemm_kernel (gemm_mma_core.cuh) computes for the two W4 policies:
// acc[m][n] = sum_k x[m][k] * b[n][k] in INT32 (chn: b = u, the code 0..15; g128: b = u*s1 - sz1
// by the same __vsub4 trick, gemm_w4a8_g128.cuh), then the Policy's FP32 epilogue (P::epilogue,
// sat_half: same operations, same order, --fmad=false) or the accumulators (_acc).
//
// Orientation: Y^T = W . X^T. wgmma's M (64 rows) = output channels, its N (128) = tokens, K = k.
// Block = 2 warpgroups = 8 warps; block tile = 256 channels x 128 tokens; warpgroup g owns
// channels 128g..128g+127 of the block, as two m64 wgmma per k32 step (acc0, acc1: 64 INT32
// each per thread).
//
// The A mapping (why no shuffles are needed): warp w of the block owns one 32-channel block of
// the packed layout (docs/layout.md), c0 = 32 * (8 * ct + w) (ct: block_tile). Lane t = 4g + e reads 16
// bytes of the 512-byte tile of each k32 step; unpack_w4 turns them into b[i][0..1] = channel
// c0 + 8i + g at k = 4e..4e+3 (b[i][0]) and 16+4e..16+4e+3 (b[i][1]). wgmma's A fragment for
// 8-bit types (per warp: 16 rows of the m64 tile, rows 16*(w%4)..; the same register order as
// mma.m16n8k32's A) is {a0: row g, k 4e..; a1: row g+8, k 4e..; a2: row g, k 16+4e..; a3: row
// g+8, k 16+4e..}. Hence
//   wgmma 0 (acc0): a = {b[0][0], b[1][0], b[0][1], b[1][1]}: its row 16(w%4) + r = channel c0 + r
//   wgmma 1 (acc1): a = {b[2][0], b[3][0], b[2][1], b[3][1]}: its row 16(w%4) + r = channel c0 + 16 + r
// (r = 0..15): the low nibbles are channels c0..c0+15, the high nibbles c0+16..c0+31, in order.
// Accumulator layout (m64nN .s32): d[4j + 2h + e'] = (row g + 8h of the warp's 16, token
// 8j + 2e + e'). So thread (w, g, e) holds channels c0 + 16*wg + g + 8h, tokens m0 + 8j + 2e + e'.
//
// Data movement:
//  * x: cp.async 16-byte chunks (zero-filled outside [M) x [K): K tails and the last token tile
//    need no special code) into a kStages-deep shared-memory ring, 128 tokens x 128 k (16 KB) per
//    stage. Layout and descriptor are a RUN-TIME choice (WgLayout): the preferred one is the
//    128-byte swizzle (each token's 128 bytes one row, 16-byte chunk c stored at c ^ (token & 7):
//    conflict-free cp.async writes, descriptor SBO = 1024 = one 8-token atom, k32 step = +32
//    bytes of start address inside the atom); alternatives exist because this file was written
//    without a device to run it: the self-test (wgmma_probe_report) runs each candidate on known
//    data and the first bit-exact one is used on that device.
//  * async proxy: cp.async writes through the generic proxy, wgmma reads through the async proxy,
//    so every thread fences (fence.proxy.async.shared::cta) after its copies land and before the
//    barrier that publishes the stage.
//  * weights: straight from global memory into registers (as the decode kernel), one uint4 per
//    lane per k32 step, the next stage's four loads issued before this stage's wgmma (register
//    prefetch of one stage: 16 registers); g128's s1/sz1 word per lane per stage (group = stage:
//    BK = 128) with them.
//  * each stage: dequantize the four k32 steps' A fragments (32 registers), wgmma.fence, 8 wgmma,
//    commit, then wait: PIPE 0 for all of them (wait_group 0: simplest), PIPE 1 for all but this
//    stage's (A double-buffered, wait_group 1: the next stage's barrier, copies and dequantization
//    overlap this stage's wgmma). The self-test uses PIPE 1 only where it is bit-exact.
//  * blocks rastered in groups of 12 channel tiles (block_tile) for L2 reuse; split-K across
//    blocks (gridDim.y) when the tiles cannot fill the SMs, with the tiled kernels' exact fix-up.
//
// Planted bugs (QV_MUTANTS): nibble_swap (unpack_w4) and the epilogue ones (P::epilogue, sat_half)
// act here too; group_boundary and ktail_dropped have no site in this path (the gate's self-test
// runs the default path, where this kernel is not used at the mutants' M).
//
// Reference: ref/qoq qv_gemm_acc_s8u4 / qv_w4g128_dequant_ref + qv_gemm_acc_s8s8 and the
// epilogues of NUMERICS.md, bit for bit (tests/test_gpu_wgmma.c, tests/test_gpu_gemm.c family
// "wgmma").
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <type_traits>
#include <vector>

#include "../qv_cuda_check.h"
#include "../gemm_w4a8_chn.cuh"
#include "../gemm_w4a8_g128.cuh"
#include "../gemm_wgmma.h"
#include "wgmma_common.cuh"

extern "C" {
#include "qvet/qoq.h"
}

namespace qvg {
namespace {

constexpr int kWGs = 2;               // warpgroups per block
static_assert(128 * kWGs == kBC && kBT == 128 && kBK == 128, "the tile the host and the layouts assume");
constexpr int kStages = 5;                 // 80 KB: one block of 8 warps per SM
constexpr int kThreads = 128 * kWGs;
constexpr int kStageBytes = kBT * kBK; // 16 KB
constexpr int kSmem = kStages * kStageBytes + 1024; // + alignment slack for the 1024-byte atoms

// How x is laid out in a stage and described to wgmma (see the file comment).
struct WgLayout {
    int swz;        // 1: 128-byte swizzle (descriptor mode 1); 0: no swizzle, 8x16-byte core matrices
    uint32_t lbo;   // descriptor "leading dimension byte offset"
    uint32_t sbo;   // descriptor "stride dimension byte offset"
    uint32_t kstep; // start-address advance per k32 step, bytes
    int swap_a;     // 1: A registers ordered {row g k0, row g k16, row g+8 k0, row g+8 k16}
};

// The candidates the self-test tries, most likely first (PTX ISA "Matrix Descriptor Format":
// 14-bit fields of (bytes & 0x3FFFF) >> 4; for K-major 128-byte swizzle the leading offset is
// unused and the stride offset is the distance between 8-row atoms).
// Order: most likely first; the probe stops at the first bit-exact one (a wrong descriptor could
// fault and end the process), so the riskiest (SBO 16) come last.
const WgLayout kCands[] = {
    {1, 16, 1024, 32, 0},
    {1, 16, 1024, 32, 1},
    {0, kBT * 16, 128, 2 * kBT * 16, 0},
    {0, 128, kBT * 16, 2 * kBT * 16, 0},
    {0, kBT * 16, 128, 2 * kBT * 16, 1},
    {0, 128, kBT * 16, 2 * kBT * 16, 1},
    {1, 1024, 16, 32, 0},
    {1, 1024, 16, 32, 1},
};
constexpr int kNCands = (int)(sizeof kCands / sizeof *kCands);
const char *const kCandNames[kNCands] = {
    "sw128: LBO 16 (unused), SBO 1024 (8-token atom), k32 +32 B; A as mma.m16n8k32",
    "sw128: LBO 16, SBO 1024; A regs 1 and 2 swapped",
    "no swizzle, [k16][token][16 B]: LBO 2048 (k), SBO 128 (tokens); A as mma.m16n8k32",
    "no swizzle, [k16][token][16 B]: LBO 128 (tokens), SBO 2048 (k); A as mma.m16n8k32",
    "no swizzle: LBO 2048, SBO 128; A regs 1 and 2 swapped",
    "no swizzle: LBO 128, SBO 2048; A regs 1 and 2 swapped",
    "sw128: LBO 1024, SBO 16 (fields swapped); A as mma.m16n8k32",
    "sw128: LBO 1024, SBO 16; A regs 1 and 2 swapped",
};


// Byte offset of token r's 16-byte chunk c (k = 16c..16c+15 of the stage) inside a stage.
__device__ __forceinline__ uint32_t x_off(const WgLayout &L, int r, int c)
{
    return L.swz ? (uint32_t)(r * 128 + ((c ^ (r & 7)) << 4)) : (uint32_t)((c * kBT + r) * 16);
}

__device__ __forceinline__ uint64_t make_desc(const WgLayout &L, uint32_t saddr)
{
    return (uint64_t)((saddr & 0x3FFFFu) >> 4) | (uint64_t)((L.lbo & 0x3FFFFu) >> 4) << 16 |
           (uint64_t)((L.sbo & 0x3FFFFu) >> 4) << 32 | (uint64_t)(L.swz ? 1u : 0u) << 62;
}

// A real use of a retired A buffer (folded into `sink`, stored only under a never-true
// condition): an empty asm would vanish before ptxas, which then gives both buffers the same
// registers and serializes every wgmma (ptxas C7513).
__device__ __forceinline__ void use_a(const uint32_t (&a)[4][2][4], uint32_t &sink)
{
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int h = 0; h < 2; h++)
#pragma unroll
            for (int r = 0; r < 4; r++) sink ^= a[i][h][r];
}

// D (64 INT32 per thread) += A (4 registers: this warp's 16 rows x k32) * B (k32 x 128 tokens,
// shared memory through the descriptor). scale-d = 1: accumulate into d.
__device__ __forceinline__ void wgmma_m64n128k32_s8(int32_t (&d)[64], const uint32_t (&a)[4], uint64_t desc)
{
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k32.s32.s8.s8 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
        "{%64, %65, %66, %67}, %68, p;\n}\n"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]),
          "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]),
          "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]),
          "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31]),
          "+r"(d[32]), "+r"(d[33]), "+r"(d[34]), "+r"(d[35]), "+r"(d[36]), "+r"(d[37]), "+r"(d[38]), "+r"(d[39]),
          "+r"(d[40]), "+r"(d[41]), "+r"(d[42]), "+r"(d[43]), "+r"(d[44]), "+r"(d[45]), "+r"(d[46]), "+r"(d[47]),
          "+r"(d[48]), "+r"(d[49]), "+r"(d[50]), "+r"(d[51]), "+r"(d[52]), "+r"(d[53]), "+r"(d[54]), "+r"(d[55]),
          "+r"(d[56]), "+r"(d[57]), "+r"(d[58]), "+r"(d[59]), "+r"(d[60]), "+r"(d[61]), "+r"(d[62]), "+r"(d[63])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(1));
}


__device__ __forceinline__ void load_x(const Params &p, const WgLayout &L, uint8_t *stage, int m0, int kt)
{
#pragma unroll
    for (int i = 0; i < kBT * (kBK / 16) / kThreads; i++) {
        const int c = threadIdx.x + i * kThreads, r = c >> 3, ch = c & 7;
        const int gm = m0 + r, gk = kt * kBK + ch * 16;
        const bool v = gm < p.M && gk < p.K; // K % 32 == 0: a chunk is wholly inside or outside
        cp_async16(stage + x_off(L, r, ch), v ? p.x + (long)gm * p.K + gk : p.x, v);
    }
}


// Dequantizes the four k32 steps of one stage into the two wgmma A fragments per step.
template <bool G128>
__device__ __forceinline__ void make_a(uint32_t (&a)[4][2][4], const uint4 (&w)[4], uint32_t s1w, uint32_t szw, int swap_a)
{
#pragma unroll
    for (int ks = 0; ks < 4; ks++) {
        uint32_t b[4][2];
        dequant_w4<G128>(b, w[ks], s1w, szw);
#pragma unroll
        for (int h = 0; h < 2; h++) {
            a[ks][h][0] = b[2 * h][0];
            a[ks][h][1] = swap_a ? b[2 * h][1] : b[2 * h + 1][0];
            a[ks][h][2] = swap_a ? b[2 * h + 1][0] : b[2 * h][1];
            a[ks][h][3] = b[2 * h + 1][1];
        }
    }
}


// PIPE 0: each stage's 8 wgmma are waited for before the next stage (simplest; the other
// warpgroup overlaps the gap). PIPE 1: double-buffered A fragments and wait_group 1: the next
// stage's barrier, copies and dequantization overlap this stage's wgmma; x is then prefetched
// kStages - 2 stages ahead (one slot stays with the stage in flight). The self-test checks PIPE 1
// against PIPE 0 on the device and uses PIPE 0 if they differ (QV_WGMMA_PIPE=0 forces it).
template <bool G128, bool OUT_ACC, int PIPE>
__global__ void __launch_bounds__(kThreads, 1) wgmma_kernel(const Params p, const WgLayout L)
{
    using P = typename WgFmt<G128>::P;
    constexpr int DIST = PIPE ? kStages - 2 : kStages - 1; // x stages loaded ahead
    extern __shared__ uint8_t smem_raw[];
    const uint32_t raw = smem_u32(smem_raw);
    const uint32_t sbase = (raw + 1023u) & ~1023u; // 128-byte swizzle atoms start on 1024 bytes
    uint8_t *const sgen = smem_raw + (sbase - raw);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int ct, tt;
    block_tile(p.M, p.N, ct, tt);
    // split-K (gridDim.y > 1): this block's stages are [kt0, kt0 + KT) of the K_all stages
    const int KTALL = (p.K + kBK - 1) / kBK, kt0 = blockIdx.y * p.ktps;
    const int KT = min(KTALL, kt0 + p.ktps) - kt0; // >= 1: the host makes every slice non-empty
    const int m0 = tt * kBT;
    const int nb = ct * (kBC / 32) + warp; // this warp's 32-channel block
    const int kt32 = p.K / 32;
    const bool nvalid = nb < p.N / 32;
    const uint4 *wp = reinterpret_cast<const uint4 *>(p.w) + (nvalid ? (long)nb * kt32 * 32 : 0) + lane;

    int32_t acc0[64], acc1[64];
#pragma unroll
    for (int i = 0; i < 64; i++) acc0[i] = 0, acc1[i] = 0;

#pragma unroll
    for (int s = 0; s < DIST; s++) {
        if (s < KT) load_x(p, L, sgen + s * kStageBytes, m0, kt0 + s);
        cp_async_commit();
    }
    uint4 wcur[4], wnxt[4];
    load_w(wcur, wp, nvalid, kt0, kt32);
    // g128: this lane's s1 / sz1 bytes of its four channels c0 + 8i + g (one word each per group)
    uint32_t s1c = 0, szc = 0, s1n = 0, szn = 0;
    const long goff = (long)nb * 32 + 4 * (lane >> 2);
    if constexpr (G128) {
        if (nvalid) {
            s1c = __ldg(reinterpret_cast<const unsigned int *>(p.s1 + (long)kt0 * p.N + goff));
            szc = __ldg(reinterpret_cast<const unsigned int *>(p.sz1 + (long)kt0 * p.N + goff));
        }
    }
    uint32_t a[PIPE ? 2 : 1][4][2][4] = {}; // (PIPE 1 reads buffer 1 in its first stage: defined)
    uint32_t sink = 0;

    // one stage; buf: the A buffer (static after unrolling by two)
    auto stage = [&](int kt, auto bufc) {
        constexpr int buf = decltype(bufc)::value;
        // next stage's weights (and group bytes) first: their latency hides under this stage
        if (kt + 1 < KT) {
            load_w(wnxt, wp, nvalid, kt0 + kt + 1, kt32);
            if constexpr (G128) {
                if (nvalid) {
                    s1n = __ldg(reinterpret_cast<const unsigned int *>(p.s1 + (long)(kt0 + kt + 1) * p.N + goff));
                    szn = __ldg(reinterpret_cast<const unsigned int *>(p.sz1 + (long)(kt0 + kt + 1) * p.N + goff));
                }
            }
        }
        cp_async_wait<DIST - 1>();
        fence_proxy_async(); // this thread's copies -> visible to wgmma's async-proxy reads
        __syncthreads();     // every copy of stage kt landed; the wgmma that read the slot refilled
                             // next (stage kt-1, PIPE 1: kt-2) completed in both warpgroups
        {
            const int nk = kt + DIST;
            if (nk < KT) load_x(p, L, sgen + (nk % kStages) * kStageBytes, m0, kt0 + nk);
            cp_async_commit();
        }
        make_a<G128>(a[buf], wcur, s1c, szc, L.swap_a);
        const uint32_t st = sbase + (uint32_t)((kt % kStages) * kStageBytes);
        wgmma_fence();
#pragma unroll
        for (int ks = 0; ks < 4; ks++) {
            const uint64_t desc = make_desc(L, st + ks * L.kstep);
            wgmma_m64n128k32_s8(acc0, a[buf][ks][0], desc);
            wgmma_m64n128k32_s8(acc1, a[buf][ks][1], desc);
        }
        wgmma_commit();
        if constexpr (PIPE) {
            wgmma_wait<1>(); // stage kt-1 done: its A buffer and slot are free
            // the previous stage's A registers are "used" here, after its wgmma retired: their
            // live range then spans this stage's A definitions, so ptxas keeps the two buffers in
            // different registers (else it may share them and serialize every wgmma)
            use_a(a[buf ^ 1], sink);
        } else {
            wgmma_wait<0>();
        }
#pragma unroll
        for (int ks = 0; ks < 4; ks++) wcur[ks] = wnxt[ks];
        s1c = s1n;
        szc = szn;
    };
    for (int kt = 0; kt < KT; kt += 2) {
        stage(kt, std::integral_constant<int, 0>{});
        if (kt + 1 < KT) stage(kt + 1, std::integral_constant<int, PIPE ? 1 : 0>{});
    }
    wgmma_wait<0>();
    if constexpr (PIPE) {
        use_a(a[0], sink);
        use_a(a[1], sink);
        if (p.M < 0) p.sat[0] = sink; // never (M >= 64 here); keeps the uses above
    }
    fence_acc(acc0);
    fence_acc(acc1);
    cp_async_wait<0>();

    const int nrow = nb * 32 + (lane >> 2);
    // split-K fix-up and epilogue (wgmma_common.cuh); all 256 threads hold this tile
    finish_block<P, OUT_ACC>(p, acc0, acc1, nrow, m0, lane, nvalid, ct, tt, threadIdx.x == 0, [] { __syncthreads(); });
}

// ---- host ----

std::atomic<unsigned long> g_launches{0};

template <bool G128, bool OUT_ACC, int PIPE>
qv_status launch_kernel(const Params &p, const WgLayout &L, cudaStream_t st, int smem)
{
    auto kern = wgmma_kernel<G128, OUT_ACC, PIPE>;
    static int configured = 0; // per instantiation: the dynamic shared memory limit raised once
    if (configured < smem) {
        QV_CUDA_TRY(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        configured = smem;
    }
    const long blocks = (long)((p.N + kBC - 1) / kBC) * ((p.M + kBT - 1) / kBT); // block_tile() maps them
    if (blocks > 0x7FFFFFFFL) return qv_fail(QV_ERR_USAGE, "gemm (wgmma): M=%d N=%d needs too many blocks", p.M, p.N);
    const int KTALL = (p.K + kBK - 1) / kBK;
    Params q = p;
    if (q.ktps <= 0 || q.ktps > KTALL) q.ktps = KTALL; // unsplit unless the caller sliced K
    const int splits = (KTALL + q.ktps - 1) / q.ktps;
    if (splits > 1 && (!q.ws || !q.cnt)) return qv_fail(QV_ERR_USAGE, "gemm (wgmma): split-K without a workspace");
    kern<<<dim3((unsigned)blocks, (unsigned)splits, 1), kThreads, smem, st>>>(q, L);
    QV_CUDA_TRY(cudaGetLastError());
    g_launches++;
    return QV_OK;
}

// Probe problem: one block row of 128 tokens, 256 channels (one block), K = 1024 (8 stages: the
// ring wraps, so slot advance and reuse are exercised too), per-channel codes, _acc entry.
constexpr int kPM = 128, kPN = 256, kPK = 1024;
// Shared memory for probe launches: a wrong candidate's footprint (e.g. SBO 2048 read as the
// token stride) may reach ~43 KB past a stage's start; the probe gives every launch room for it,
// so a wrong interpretation reads wrong bytes rather than faulting.
constexpr int kProbeSmem = kSmem + 48 * 1024;

struct ProbeOut {
    int cand, pipe; // what ran
    long mismatches;
    long first; // m * N + n, -1 if none
    int32_t got, want;
};

// Runs the probe problem with PIPE 0 under the layout candidates in order until one is bit-exact
// (all of them with QV_WGMMA_PROBE_ALL=1), then PIPE 1 with that one. One ProbeOut per launch.
qv_status probe_run(std::vector<ProbeOut> &res)
{
    // known data: x in [-127, 127], codes 0..15, a fixed LCG (same bytes on every run)
    std::vector<int8_t> x((size_t)kPM * kPK);
    std::vector<uint8_t> u((size_t)kPN * kPK), pk((size_t)kPN * kPK / 2);
    uint32_t s = 12345u;
    auto next = [&s]() { s = s * 1664525u + 1013904223u; return s >> 8; };
    for (auto &v : x) v = (int8_t)((int)(next() % 255u) - 127);
    for (auto &v : u) v = (uint8_t)(next() % 16u);
    QV_TRY(qv_w4_pack(u.data(), kPN, kPK, pk.data()));
    std::vector<int32_t> want((size_t)kPM * kPN), got((size_t)kPM * kPN);
    QV_TRY(qv_gemm_acc_s8u4(x.data(), u.data(), kPM, kPN, kPK, want.data(), QV_GEMM_LOOP));

    int8_t *dx = nullptr;
    uint8_t *dw = nullptr;
    int32_t *dacc = nullptr;
    qv_status st = QV_OK;
    auto fail = [&](cudaError_t e, const char *what) {
        st = qv_fail(QV_ERR_CUDA, "gemm (wgmma) self-test: %s: %s", what, cudaGetErrorString(e));
    };
    cudaError_t e;
    if ((e = cudaMalloc(&dx, x.size())) != cudaSuccess || (e = cudaMalloc(&dw, pk.size())) != cudaSuccess ||
        (e = cudaMalloc(&dacc, got.size() * 4)) != cudaSuccess)
        fail(e, "cudaMalloc");
    else if ((e = cudaMemcpy(dx, x.data(), x.size(), cudaMemcpyHostToDevice)) != cudaSuccess ||
             (e = cudaMemcpy(dw, pk.data(), pk.size(), cudaMemcpyHostToDevice)) != cudaSuccess)
        fail(e, "upload");
    const char *all_e = getenv("QV_WGMMA_PROBE_ALL");
    const bool all = all_e && *all_e == '1';
    // QV_WGMMA_PROBE_SKIP=mask: candidates (bit i = candidate i) not launched. A candidate whose
    // descriptor faults ends the CUDA context and so the whole self-test; the next process skips
    // it to learn what the later candidates do (tools/gpu_wgmma_run.sh does this itself).
    const char *skip_e = getenv("QV_WGMMA_PROBE_SKIP");
    const unsigned long skip = skip_e && *skip_e ? strtoul(skip_e, nullptr, 0) : 0ul;
    // QV_WGMMA_TRACE=1: a line on stderr (unbuffered) before and after every probe launch, so a
    // run killed by a timeout or a fault still shows which launch it was in
    const char *tr_e = getenv("QV_WGMMA_TRACE");
    const bool trace = tr_e && *tr_e == '1';
    // QV_WGMMA_PIPE=0 (the path then never runs PIPE 1): no PIPE 1 check either, so a PIPE 1 kernel
    // that faults can be kept out of a rerun
    const char *pipe_e = getenv("QV_WGMMA_PIPE");
    const bool no_pipe = pipe_e && *pipe_e == '0';
    int first_ok = -1;
    for (int run = 0; st == QV_OK && run <= kNCands; run++) {
        const bool pipe_check = run == kNCands; // the last run: PIPE 1 with the first good layout
        if (pipe_check ? first_ok < 0 || no_pipe : (first_ok >= 0 && !all) || (skip >> run & 1ul)) continue;
        const int c = pipe_check ? first_ok : run;
        if (trace) fprintf(stderr, "wgmma probe: cand %d PIPE %d: launch\n", c, pipe_check ? 1 : 0);
        Params p{};
        p.x = dx;
        p.w = dw;
        p.M = kPM;
        p.N = kPN;
        p.K = kPK;
        p.acc = dacc;
        if ((e = cudaMemset(dacc, 0x5A, got.size() * 4)) != cudaSuccess) { fail(e, "memset"); break; }
        if (pipe_check) st = launch_kernel<false, true, 1>(p, kCands[c], 0, kProbeSmem);
        else st = launch_kernel<false, true, 0>(p, kCands[c], 0, kProbeSmem);
        if (st != QV_OK) break;
        if ((e = cudaDeviceSynchronize()) != cudaSuccess) {
            char what[64];
            snprintf(what, sizeof what, "kernel, candidate %d%s", c, pipe_check ? " pipelined" : "");
            fail(e, what);
            break;
        }
        if ((e = cudaMemcpy(got.data(), dacc, got.size() * 4, cudaMemcpyDeviceToHost)) != cudaSuccess) { fail(e, "download"); break; }
        ProbeOut o{c, pipe_check ? 1 : 0, 0, -1, 0, 0};
        for (size_t i = 0; i < got.size(); i++)
            if (got[i] != want[i]) {
                if (o.first < 0) o.first = (long)i, o.got = got[i], o.want = want[i];
                o.mismatches++;
            }
        if (trace) fprintf(stderr, "wgmma probe: cand %d PIPE %d: %ld wrong\n", c, o.pipe, o.mismatches);
        res.push_back(o);
        if (!pipe_check && first_ok < 0 && o.mismatches == 0) first_ok = c;
    }
    cudaFree(dx);
    cudaFree(dw);
    cudaFree(dacc);
    return st;
}

// QV_WGMMA_LAYOUT=i (debugging): candidate i on every launch, whatever the self-test said (for
// diagnosing a device where none passed: tests/test_gpu_wgmma.c then runs its shapes on 0).
int forced_cand()
{
    const char *e = getenv("QV_WGMMA_LAYOUT");
    if (!e || !*e) return -1;
    const int c = atoi(e);
    return c >= 0 && c < kNCands ? c : -1;
}

// Per device: 0 = not yet decided, 1 = usable with layout cand, -1 = not usable (and why).
struct DevState {
    int state = 0, cand = -1, hw = 0; // hw: compute capability 9.0 and the image loads
    int pipe = 0;                     // 1: the pipelined kernel matched too
    char why[160] = "";
};
std::mutex g_mu;
DevState g_dev[64];

// Decides (once per device) whether the path applies here, running the self-test if needed.
// Called with g_mu held. Never leaves a CUDA error pending.
qv_status dev_init(int dev, DevState &d, std::vector<ProbeOut> *res)
{
    int major = 0, minor = 0;
    QV_CUDA_TRY(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    QV_CUDA_TRY(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
    d.state = -1;
    if (major != 9 || minor != 0) {
        snprintf(d.why, sizeof d.why, "device is sm_%d%d, the wgmma image is sm_90a only", major, minor);
        return QV_OK;
    }
    cudaFuncAttributes fa;
    if (cudaFuncGetAttributes(&fa, wgmma_kernel<false, true, 0>) != cudaSuccess ||
        cudaFuncGetAttributes(&fa, wgmma_kernel<true, false, 1>) != cudaSuccess) {
        snprintf(d.why, sizeof d.why, "the sm_90a image does not load: %s", cudaGetErrorString(cudaGetLastError()));
        return QV_OK;
    }
    d.hw = 1;
    if (forced_cand() >= 0 && !res) { // wgmma_gemm uses the forced candidate; decide again later
        d.state = 0;
        return QV_OK;
    }
    std::vector<ProbeOut> local;
    std::vector<ProbeOut> &r = res ? *res : local;
    QV_TRY(probe_run(r));
    for (const ProbeOut &o : r)
        if (!o.pipe && o.mismatches == 0) {
            d.state = 1, d.cand = o.cand;
            for (const ProbeOut &q : r)
                if (q.pipe && q.cand == o.cand) d.pipe = q.mismatches == 0;
            return QV_OK;
        }
    snprintf(d.why, sizeof d.why, "no layout candidate passed the self-test (test_gpu_wgmma prints them)");
    return QV_OK;
}

// Runs f(state) for the calling device, under g_mu, its self-test run on first use; nothing
// (QV_OK) for a device index beyond g_dev.
template <class F> qv_status with_dev(F &&f)
{
    int dev = 0;
    QV_CUDA_TRY(cudaGetDevice(&dev));
    if (dev < 0 || dev >= (int)(sizeof g_dev / sizeof *g_dev)) return QV_OK;
    std::lock_guard<std::mutex> lock(g_mu);
    DevState &d = g_dev[dev];
    if (d.state == 0) QV_TRY(dev_init(dev, d, nullptr));
    f(d);
    return QV_OK;
}

// The layout the path uses on a device (QV_WGMMA_LAYOUT where the device can run the kernel,
// else the self-test's choice), or nullptr: the path does not apply. *forced: QV_WGMMA_LAYOUT.
const WgLayout *path_layout(const DevState &d, bool *forced)
{
    const int f = d.hw ? forced_cand() : -1;
    *forced = f >= 0;
    return f >= 0 ? &kCands[f] : d.state == 1 ? &kCands[d.cand] : nullptr;
}

} // namespace

qv_status wgmma_ready(bool *ok)
{
    *ok = false;
    bool forced;
    return with_dev([&](const DevState &d) { *ok = path_layout(d, &forced) != nullptr; });
}

qv_status wgmma_sw128_layout(bool *ok)
{
    *ok = false;
    bool forced;
    return with_dev([&](const DevState &d) {
        // the descriptor fields gemm_wgmma_ws.cu hard-codes for both operands (swap_a: a
        // register-A detail, irrelevant to a shared-memory A)
        const WgLayout *L = path_layout(d, &forced);
        *ok = L && L->swz == 1 && L->lbo == 16 && L->sbo == 1024 && L->kstep == 32;
    });
}

qv_status wgmma_gemm(const Params &p, WgFormat fmt, bool out_acc, cudaStream_t st, bool *done)
{
    *done = false;
    if (p.M < kWgMinM) return QV_OK;
    WgLayout L;
    int pipe = 0;
    bool usable = false;
    QV_TRY(with_dev([&](const DevState &d) {
        bool forced;
        const WgLayout *l = path_layout(d, &forced);
        if (!l) return;
        usable = true, L = *l;
        const char *pe = getenv("QV_WGMMA_PIPE"); // debugging: 0 or 1 forces the pipeline
        pipe = pe && *pe ? *pe == '1' : forced ? 1 : d.pipe;
    }));
    if (!usable) return QV_OK;
    QV_DMUT_SYNC(); // QV_MUTANTS builds: this file's copy of the planted-bug selection (only now:
                    // the sm_90a module loads on this device)
    const bool g = fmt == kWgG128;
    qv_status r;
    if (pipe) r = g ? (out_acc ? launch_kernel<true, true, 1>(p, L, st, kSmem) : launch_kernel<true, false, 1>(p, L, st, kSmem))
                    : (out_acc ? launch_kernel<false, true, 1>(p, L, st, kSmem) : launch_kernel<false, false, 1>(p, L, st, kSmem));
    else r = g ? (out_acc ? launch_kernel<true, true, 0>(p, L, st, kSmem) : launch_kernel<true, false, 0>(p, L, st, kSmem))
               : (out_acc ? launch_kernel<false, true, 0>(p, L, st, kSmem) : launch_kernel<false, false, 0>(p, L, st, kSmem));
    QV_TRY(r);
    *done = true;
    return QV_OK;
}

qv_status wgmma_probe_report(char *report, size_t n, int *chosen)
{
    *chosen = -2;
    if (n) report[0] = '\0';
    size_t at = 0;
    auto put = [&](const char *fmt, auto... a) {
        if (at < n) {
            int w = snprintf(report + at, n - at, fmt, a...);
            if (w > 0) at += (size_t)w;
        }
    };
    int dev = 0;
    QV_CUDA_TRY(cudaGetDevice(&dev));
    if (dev < 0 || dev >= (int)(sizeof g_dev / sizeof *g_dev)) return QV_OK;
    std::lock_guard<std::mutex> lock(g_mu);
    DevState &d = g_dev[dev];
    d = DevState{};
    std::vector<ProbeOut> res;
    const qv_status st = dev_init(dev, d, &res);
    if (st != QV_OK) { // e.g. a candidate faulted: what ran before it, then the error
        put("wgmma self-test FAILED: %s\n", qv_last_error());
        for (const ProbeOut &o : res)
            put("  cand %d%s: %ld wrong\n", o.cand, o.pipe ? " (pipelined)" : "", o.mismatches);
        put("  (a fault ends this process's CUDA context: QV_WGMMA_PROBE_SKIP=<mask> skips candidates in a new one)\n");
        return st;
    }
    if (res.empty()) {
        put("wgmma path not applicable: %s\n", d.why);
        return QV_OK;
    }
    put("wgmma self-test: chn _acc, M=%d N=%d K=%d (%d outputs), one launch per layout candidate\n", kPM, kPN, kPK,
        kPM * kPN);
    for (const ProbeOut &o : res) {
        if (!o.pipe) put("  cand %d [%s]: %s", o.cand, kCandNames[o.cand], o.mismatches ? "MISMATCH" : "bit-exact");
        else put("  pipelined kernel (double-buffered A, wait_group 1) with cand %d: %s", o.cand,
                 o.mismatches ? "MISMATCH (the path uses the unpipelined kernel)" : "bit-exact");
        if (o.mismatches)
            put(" (%ld of %d wrong; first m=%ld n=%ld got %d want %d)", o.mismatches, kPM * kPN, o.first / kPN,
                o.first % kPN, (int)o.got, (int)o.want);
        put("\n");
    }
    *chosen = d.state == 1 ? d.cand : -1;
    const char *skip_e = getenv("QV_WGMMA_PROBE_SKIP");
    if (skip_e && *skip_e && strtoul(skip_e, nullptr, 0))
        put("  (QV_WGMMA_PROBE_SKIP=%s: those candidates were not launched)\n", skip_e);
    if ((int)res.size() < kNCands + 1)
        put("  (the candidates after the first bit-exact one were not run: a wrong descriptor could fault;\n"
            "   QV_WGMMA_PROBE_ALL=1 runs them all)\n");
    put("chosen: %d%s, pipelined: %s\n", *chosen, *chosen < 0 ? " (none: the wgmma path stays off, mma.sync is used)" : "",
        d.pipe ? "yes" : "no");
    return QV_OK;
}

unsigned long wgmma_launches() { return g_launches.load(); }

} // namespace qvg
