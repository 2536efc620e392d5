// Warp-specialized sm_90a W4A8 GEMM (QV_GEMM_VARIANT=wgmma_ws; opt-in, never the default rule):
// the same INT32 accumulators and FP16 outputs as gemm_wgmma.cu (bit for bit: the same
// unpack_w4 / __vsub4 dequantization, integer sums in any order are exact, the same each_acc /
// store_tile epilogue from wgmma_common.cuh), with the work split by role so the tensor pipe is
// fed while other warps convert weights. WRITTEN WITHOUT A DEVICE: checked with ptxas and the host
// emulator tools/gemm_wgmma_ws_emu.py only (docs/gpu-gemm.md, "Warp-specialized variant").
//
// Why: ncu of gemm_wgmma.cu (qkv M=4096) showed it latency-bound: the same 8 warps load weights,
// dequantize them (ALU) and issue / wait on their own wgmma (A from registers), 2 warps per
// scheduler, tensor pipe 36% busy. Here the dequantization runs in its own warpgroup and the
// consumers' wgmma read BOTH operands from shared memory, so they only wait on barriers.
//
// Block = 3 warpgroups (384 threads), tile 256 channels x 128 tokens x (K in stages of 128), as
// gemm_wgmma.cu, one block per SM:
//  * warpgroup 0, producer (setmaxnreg.dec to kProdRegs): per stage, streams the packed UINT4
//    weights of the tile's eight 32-channel blocks (producer warp pw: blocks pw and pw + 4, one
//    uint4 per lane per k32 step: the layout of docs/layout.md, read as gemm_wgmma.cu reads it)
//    and g128's s1 / sz1 words, dequantizes them with dequant_w4 (unpack_w4 + __vsub4) and stores
//    the INT8 weights into the A part of a ring slot; issues the cp.async copies of x (128 tokens
//    x 128 k, zero-filled outside [M) x [K)) into the B part. Weights are prefetched one stage
//    ahead in registers (8 uint4 + 4 group words per thread).
//  * warpgroups 1 and 2, consumers (setmaxnreg.inc to kConsRegs): consumer c owns channels
//    128c..128c+127 of the tile as two m64 tiles (acc0, acc1: 64 INT32 per thread each, as
//    gemm_wgmma.cu's warpgroups); per stage: wait "full", 8 x wgmma.mma_async m64n128k32
//    .s32.s8.s8 with A and B descriptors, commit, wait_group 1, release the PREVIOUS stage's slot
//    through "empty" (its wgmma have completed: their shared-memory reads are done).
//
// Shared memory (dynamic, base rounded up to 1024 bytes: the 128-byte swizzle atoms are 1024-byte
// aligned, descriptor base offset 0):
//   ring slot s (kWsStages = 4): [A 256 rows x 128 B = 32 KB][B 128 rows x 128 B = 16 KB] = 48 KB
//   barriers: full[4], empty[4] (8 bytes each) after the ring
//   total 4 * 48 KB + 64 B + 1024 B alignment slack = 197696 B (<= 227 KB; a 5th slot does not fit)
//
// Layout and descriptors (the self-test's candidate 0 of gemm_wgmma.cu, bit-exact on the H200
// for B; the kernel runs only where the device's chosen layout is that one: wgmma_sw128_layout).
// PTX ISA, "Shared Memory Matrix Layout" / "Matrix Descriptor Format": for 8-bit types both A and
// B must be K-major (the transpose bits exist for .f16/.bf16 only), and a K-major operand with the
// 128-byte swizzle is a sequence of 8-row x 128-byte atoms: row r of an atom holds 128 bytes of K
// for one M (A) or N (B) index, and its 16-byte chunk c is stored at chunk c ^ (r & 7). The
// descriptor's start address is the operand's first row (+32 bytes per k32 step inside the row:
// the swizzle is applied to the address bits, so a k offset inside the atom is a start-address
// offset), the stride byte offset (SBO) is the distance between consecutive 8-row atoms along M
// / N, and the leading byte offset is unused for a swizzled K-major operand whose K extent per
// instruction (32 bytes) lies inside one 128-byte row. B here is exactly gemm_wgmma.cu's x stage
// (128 rows = tokens). A is the same geometry with rows = channels: 64 rows per m64 tile = eight
// atoms at SBO 1024, so A's descriptor for m64 tile (c, h) of a slot is that of B with start
// address = slot + (128c + 64h) * 128 (a multiple of 8192: atom-aligned) + 32 * ks: the same
// field values as the B descriptor the device accepted (mode 1, LBO 16, SBO 1024).
//
// A's row order (why the epilogue is literally gemm_wgmma.cu's): channel 32q + 8i + g of the tile
// (32-channel block q = 4c + w, w = warp in consumer warpgroup c) is stored in row
//   a_row(q, i, g) = 128 (q >> 2) + 64 (i >> 1) + 16 (q & 3) + 8 (i & 1) + g,
// so m64 tile h of consumer c has in its row 16w + 8hh + g the channel 32(4c+w) + 16h + 8hh + g:
// wgmma's accumulator row 16w + g + 8hh (warp w, lane 4g + e) is then the channel gemm_wgmma.cu's
// thread (warp 4c + w, lane 4g + e) holds in acc_h: nrow = 32 nb + g (+16 for acc1), the same
// each_acc / store_tile / split-K fix-up indices. row & 7 == g, so the swizzle XOR is g.
// Producer lane (g, e) stores b[i][hk] (k = 32ks + 16hk + 4e..+3 of the stage) as one 32-bit word
// at a_row * 128 + (((2ks + hk) ^ g) << 4) + 4e: the 32 lanes of a store hit 32 different banks
// (bank = 4 ((2ks + hk) ^ g) + e mod 32), conflict-free.
//
// Barriers, counts and phases (mirrored by tools/gemm_wgmma_ws_emu.py, which runs random
// interleavings of the roles against these rules):
//  * full[s]: init count kProdThreads = 128. Every producer thread arrives exactly once per stage
//    that uses slot s, after (a) its cp.async copies of that stage have landed (cp.async.wait_group)
//    and (b) fence.proxy.async.shared::cta (its generic-proxy writes -- the A stores and the
//    cp.async data -- ordered before the async-proxy reads of wgmma), with release semantics (the
//    default of mbarrier.arrive). No transaction bytes (no TMA). Stage k uses slot k % 4 and
//    completes phase k / 4 of full[k % 4]; consumers wait with parity (k / 4) & 1.
//  * empty[s]: init count kConsWarps = 8. Lane 0 of every consumer warp arrives once per stage
//    k of slot s after its warp's wgmma.wait_group showed stage k's wgmma complete. The producer,
//    before writing stage k >= 4 into slot k % 4, waits for stage k - 4's release: phase
//    (k - 4) / 4 = k / 4 - 1 of empty[k % 4], parity ((k / 4) & 1) ^ 1. Stages 0..3 need no wait
//    (fresh slots).
//  * parity waits only tell two phases apart; neither side can run two phases ahead: the producer
//    refills slot s only after both consumers released its previous stage, which they do only
//    after waiting on its full phase, and vice versa.
//  * the producer publishes stage k one iteration late (at the END of its iteration k + 1, or
//    after its loop for the last stage): its copies then have a whole iteration to land before it
//    waits for them. Deadlock freedom needs kWsStages = S >= 3: at the START of iteration k the
//    producer waits for the release of stage k - S, which the consumers give after waiting on
//    stage k - S + 1, which the producer publishes at the end of iteration k - S + 2: earlier than
//    the start of iteration k exactly when k - S + 2 <= k - 1 (the emulator deadlocks with S = 2).
//  * the consumers release stage k at their iteration k + 1; the last stage is never released
//    (nothing waits for it): the producer only waits for stages < KT - 4.
//  * short slices (split-K: KT = 1 or 2 stages) touch only fresh slots: no empty wait at all; the
//    producer's last (here: only) arrivals come after its loop. Blocks whose token tile is partly
//    (or, never, wholly) beyond M run the same barrier sequence: the copies of rows >= M are
//    zero-filling cp.async (src-size 0) issued and waited like the others, and the epilogue skips
//    those rows (each_acc). Channel blocks beyond N are dequantized from zero words (zero rows)
//    and skipped by the epilogue. No thread leaves before its last arrival; the producer returns
//    after it, the consumers' later barrier (split-K fix-up) is a named barrier of 256 threads.
//  * a wait that lasts more than 10 s (%globaltimer) traps (the launch fails with an error
//    instead of hanging the device call): every legal wait ends in microseconds.
//
// Registers: __launch_bounds__(384, 1) gives every thread 168 at launch; the producer drops to
// kProdRegs = 104, the consumers take kConsRegs = 200: 128 * 104 + 256 * 200 = 64512 = 384 * 168
// (setmaxnreg only redistributes the CTA's own registers: the sum may not exceed the launch
// allocation, or the consumers' increase waits forever). ptxas -v (CUDA 13.0): 168 registers,
// no C7512/C7513/C7519 (wgmma not serialized; one warpgroup.arrive per stage: ours), 24-56
// bytes of stack; in the SASS the consumers' main loop has no local memory traffic (their split-K
// / epilogue code after it spills a few words), the producer none for chn and 14 local loads +
// stores per stage for g128. 56 / 224 (the sizes first tried) spilled the producer heavily: its
// w[2][4] prefetch is 32 registers and its x copies 16 more of addresses. No out-of-line calls in
// either role: a __noinline__ helper made ptxas fail register allocation at 200 (C7600) and
// serialize the wgmma (C7512).
// Reference and tests: as gemm_wgmma.cu (tests/test_gpu_wgmma.c runs its _acc and FP16 shapes
// through this kernel too; tests/test_gpu_gemm.c family "wgmma_ws").
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "../qv_cuda_check.h"
#include "../gemm_wgmma.h"
#include "wgmma_common.cuh"

namespace qvg {
namespace {

constexpr int kWsStages = 4;
static_assert(kWsStages >= 3, "the producer's late publication needs >= 3 slots (file comment)");
constexpr int kProdThreads = 128, kConsWarps = 8;
constexpr int kWsThreads = kProdThreads + 32 * kConsWarps; // 384
constexpr int kWsA = kBC * kBK;                          // 32 KB: INT8 weights of one stage
constexpr int kWsB = kBT * kBK;                          // 16 KB: x of one stage
constexpr int kWsStage = kWsA + kWsB;                    // 48 KB, a multiple of 1024
constexpr int kWsBar = kWsStages * kWsStage;             // barriers after the ring
constexpr int kWsSmem = kWsBar + 2 * kWsStages * 8 + 1024; // + alignment slack for the 1024-byte atoms
static_assert(kWsStage % 1024 == 0 && kWsSmem <= 227 * 1024, "ring slots atom-aligned, within 227 KB");
#ifndef QV_WS_PROD_REGS // (overridable only for register experiments with ptxas -v)
#define QV_WS_PROD_REGS 104
#define QV_WS_CONS_REGS 200
#endif
constexpr int kProdRegs = QV_WS_PROD_REGS, kConsRegs = QV_WS_CONS_REGS;
// setmaxnreg moves registers inside the CTA's own pool (SASS: USETMAXREG.TRY_ALLOC.CTAPOOL): the
// consumers' increase is granted only from what the producer released, so the two sizes must fit
// in what the launch allocated, 384 x 168 (65536 / 384 rounded down to a multiple of 8; ptxas
// reports 168 for every instantiation). More would make TRY_ALLOC spin forever: a hang. The host
// also checks the allocation of the loaded image (ws_image_loads) before the first launch.
constexpr int kLaunchRegs = 168;
static_assert(kProdRegs % 8 == 0 && kConsRegs % 8 == 0 && kProdRegs >= 24 && kConsRegs <= 256, "setmaxnreg operands");
static_assert(kProdThreads * kProdRegs + 32 * kConsWarps * kConsRegs <= kWsThreads * kLaunchRegs,
              "setmaxnreg: producer + consumer registers must fit the CTA's launch allocation");

// ---- mbarrier, named barrier, setmaxnreg, wgmma with both operands in shared memory ----

__device__ __forceinline__ void mbar_init(uint32_t a, uint32_t count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(a), "r"(count) : "memory");
}
// arrive (release, CTA scope): one of the barrier's expected arrivals of the current phase
__device__ __forceinline__ void mbar_arrive(uint32_t a)
{
    asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.shared::cta.b64 st, [%0];\n}\n" ::"r"(a) : "memory");
}
// waits (acquire, CTA scope) until the phase with this parity has completed. Watchdog: after
// kWaitTrapNs of waiting it traps, so a wrong phase fails the launch (an error the test reports)
// instead of hanging the device call. Time, not a poll count: try_wait may suspend the thread for
// a system-dependent time per poll, and sanitizers slow the other warps down.
constexpr unsigned long long kWaitTrapNs = 10ull * 1000 * 1000 * 1000; // 10 s; legal waits: microseconds
__device__ __forceinline__ unsigned long long globaltimer_ns()
{
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(t));
    return t;
}
__device__ __forceinline__ void mbar_wait_slow(uint32_t a, uint32_t parity)
{
    const unsigned long long t0 = globaltimer_ns();
    for (uint32_t polls = 0;; polls++) {
        uint32_t done;
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done)
                     : "r"(a), "r"(parity)
                     : "memory");
        if (done) return;
        if ((polls & 255u) == 255u && globaltimer_ns() - t0 > kWaitTrapNs) __trap();
    }
}
__device__ __forceinline__ void mbar_wait(uint32_t a, uint32_t parity)
{
    uint32_t done;
    asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(done)
                 : "r"(a), "r"(parity)
                 : "memory");
    if (!done) mbar_wait_slow(a, parity); // (the timer only once the first poll failed)
}
// the consumers' own barrier (named barrier 1, 256 threads): the producer has returned by then
__device__ __forceinline__ void bar_consumers() { asm volatile("bar.sync 1, %0;\n" ::"n"(32 * kConsWarps) : "memory"); }
template <int N> __device__ __forceinline__ void setmaxnreg_dec() { asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N)); }
template <int N> __device__ __forceinline__ void setmaxnreg_inc() { asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N)); }

// Descriptor of a K-major operand in the 128-byte swizzle: start address, LBO 16 (unused), SBO
// 1024 (8-row atoms), mode 1 (gemm_wgmma.cu make_desc with its candidate 0).
__device__ __forceinline__ uint64_t desc_sw128(uint32_t saddr)
{
    return (uint64_t)((saddr & 0x3FFFFu) >> 4) | (uint64_t)(16u >> 4) << 16 | (uint64_t)(1024u >> 4) << 32 |
           (uint64_t)1u << 62;
}

// D (64 INT32 per thread) += A (64 rows x k32, shared memory) * B (k32 x 128 tokens, shared memory).
// scale-d = 1: accumulate into d.
__device__ __forceinline__ void wgmma_ss_m64n128k32_s8(int32_t (&d)[64], uint64_t da, uint64_t db)
{
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k32.s32.s8.s8 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
        "%64, %65, p;\n}\n"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]),
          "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]),
          "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]),
          "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31]),
          "+r"(d[32]), "+r"(d[33]), "+r"(d[34]), "+r"(d[35]), "+r"(d[36]), "+r"(d[37]), "+r"(d[38]), "+r"(d[39]),
          "+r"(d[40]), "+r"(d[41]), "+r"(d[42]), "+r"(d[43]), "+r"(d[44]), "+r"(d[45]), "+r"(d[46]), "+r"(d[47]),
          "+r"(d[48]), "+r"(d[49]), "+r"(d[50]), "+r"(d[51]), "+r"(d[52]), "+r"(d[53]), "+r"(d[54]), "+r"(d[55]),
          "+r"(d[56]), "+r"(d[57]), "+r"(d[58]), "+r"(d[59]), "+r"(d[60]), "+r"(d[61]), "+r"(d[62]), "+r"(d[63])
        : "l"(da), "l"(db), "r"(1));
}

// ---- the producer ----

// x of stage kt (128 tokens x 128 k) into a slot's B part: 1024 16-byte chunks, 8 per producer
// thread; consecutive threads fill consecutive chunks of a row (conflict-free under the swizzle).
__device__ __forceinline__ void ws_load_x(const Params &p, uint8_t *b, int m0, int kt, int pt)
{
#pragma unroll
    for (int i = 0; i < kBT * (kBK / 16) / kProdThreads; i++) {
        const int c = pt + i * kProdThreads, r = c >> 3, ch = c & 7;
        const int gm = m0 + r, gk = kt * kBK + ch * 16;
        const bool v = gm < p.M && gk < p.K; // K % 32 == 0: a chunk is wholly inside or outside
        cp_async16(b + r * 128 + ((ch ^ (r & 7)) << 4), v ? p.x + (long)gm * p.K + gk : p.x, v);
    }
}

// A row (0..255) of channel 8i + g of the tile's 32-channel block q (file comment)
__device__ __forceinline__ int a_row(int q, int i, int g)
{
    return 128 * (q >> 2) + 64 * (i >> 1) + 16 * (q & 3) + 8 * (i & 1) + g;
}

template <bool G128>
__device__ __forceinline__ void produce(const Params &p, uint8_t *sgen, uint32_t bar, int ct, int m0, int kt0, int KT)
{
    const int pt = threadIdx.x, pw = pt >> 5, lane = pt & 31, g = lane >> 2, e = lane & 3;
    const int kt32 = p.K / 32;
    const uint4 *wp[2];
    bool nv[2];
    long goff[2];
#pragma unroll
    for (int j = 0; j < 2; j++) { // blocks q = pw + 4j of the tile
        const int nb = ct * (kBC / 32) + pw + 4 * j;
        nv[j] = nb < p.N / 32;
        wp[j] = reinterpret_cast<const uint4 *>(p.w) + (nv[j] ? (long)nb * kt32 * 32 : 0) + lane;
        goff[j] = (long)nb * 32 + 4 * g;
    }
    uint4 w[2][4];
    uint32_t s1w[2] = {0, 0}, szw[2] = {0, 0};
    auto load_stage = [&](int kt) { // weights (and g128 group words) of absolute stage kt
#pragma unroll
        for (int j = 0; j < 2; j++) {
            load_w(w[j], wp[j], nv[j], kt, kt32);
            if constexpr (G128) {
                if (nv[j]) { // group kt's word: [K/128][N] bytes, this lane's four channels
                    s1w[j] = __ldg(reinterpret_cast<const unsigned int *>(p.s1 + goff[j]) + (long)kt * (p.N / 4));
                    szw[j] = __ldg(reinterpret_cast<const unsigned int *>(p.sz1 + goff[j]) + (long)kt * (p.N / 4));
                }
            }
        }
    };
    load_stage(kt0);
    for (int k = 0; k < KT; k++) {
        const int slot = k % kWsStages;
        // slot reuse: stage k - 4's wgmma (both consumers, all 8 warps) completed
        if (k >= kWsStages) mbar_wait(bar + 8 * (kWsStages + slot), (uint32_t)((k / kWsStages) & 1) ^ 1u);
        uint8_t *const a = sgen + slot * kWsStage;
        ws_load_x(p, a + kWsA, m0, kt0 + k, pt);
        cp_async_commit(); // one group per stage: group k
#pragma unroll
        for (int j = 0; j < 2; j++) {
            const int q = pw + 4 * j;
#pragma unroll
            for (int ks = 0; ks < 4; ks++) {
                uint32_t b[4][2];
                dequant_w4<G128>(b, w[j][ks], s1w[j], szw[j]);
#pragma unroll
                for (int i = 0; i < 4; i++)
#pragma unroll
                    for (int hk = 0; hk < 2; hk++)
                        *reinterpret_cast<uint32_t *>(a + a_row(q, i, g) * 128 + (((2 * ks + hk) ^ g) << 4) + 4 * e) = b[i][hk];
            }
        }
        if (k + 1 < KT) load_stage(kt0 + k + 1); // the registers of stage k are free now
        if (k >= 1) { // publish stage k - 1: its copies landed (all groups but group k), then fence
            cp_async_wait<1>();
            fence_proxy_async();
            mbar_arrive(bar + 8 * ((k - 1) % kWsStages));
        }
    }
    cp_async_wait<0>(); // the last stage (KT >= 1)
    fence_proxy_async();
    mbar_arrive(bar + 8 * ((KT - 1) % kWsStages));
}

// ---- the kernel ----

template <bool G128, bool OUT_ACC>
__global__ void __launch_bounds__(kWsThreads, 1) wgmma_ws_kernel(const Params p)
{
    using P = typename WgFmt<G128>::P;
    extern __shared__ uint8_t smem_raw[];
    const uint32_t raw = smem_u32(smem_raw);
    const uint32_t sbase = (raw + 1023u) & ~1023u; // 128-byte swizzle atoms start on 1024 bytes
    uint8_t *const sgen = smem_raw + (sbase - raw);
    const uint32_t bar = sbase + kWsBar; // full[s] at bar + 8s, empty[s] at bar + 8 (kWsStages + s)
    int ct, tt;
    block_tile(p.M, p.N, ct, tt);
    // split-K (gridDim.y > 1): this block's stages are [kt0, kt0 + KT) of the K_all stages
    const int KTALL = (p.K + kBK - 1) / kBK, kt0 = blockIdx.y * p.ktps;
    const int KT = min(KTALL, kt0 + p.ktps) - kt0; // >= 1: the host makes every slice non-empty
    const int m0 = tt * kBT;
    if (threadIdx.x == 0) {
#pragma unroll
        for (int s = 0; s < kWsStages; s++) {
            mbar_init(bar + 8 * s, kProdThreads);
            mbar_init(bar + 8 * (kWsStages + s), kConsWarps);
        }
    }
    __syncthreads(); // the barriers initialized before any thread uses them (the only block-wide barrier)
    const int wg = threadIdx.x >> 7;
    if (wg == 0) {
        setmaxnreg_dec<kProdRegs>();
        produce<G128>(p, sgen, bar, ct, m0, kt0, KT);
        return; // after its last arrival and with its copies landed
    }
    setmaxnreg_inc<kConsRegs>();
    const int c = wg - 1, warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
    int32_t acc0[64], acc1[64];
#pragma unroll
    for (int i = 0; i < 64; i++) acc0[i] = 0, acc1[i] = 0;
    for (int k = 0; k < KT; k++) {
        const int slot = k % kWsStages;
        mbar_wait(bar + 8 * slot, (uint32_t)(k / kWsStages) & 1u); // stage k published
        const uint32_t st = sbase + (uint32_t)(slot * kWsStage);
        const uint32_t a0 = st + (uint32_t)(128 * c) * 128, a1 = a0 + 64 * 128, b = st + kWsA;
        wgmma_fence();
#pragma unroll
        for (int ks = 0; ks < 4; ks++) {
            const uint64_t db = desc_sw128(b + 32 * ks);
            wgmma_ss_m64n128k32_s8(acc0, desc_sw128(a0 + 32 * ks), db);
            wgmma_ss_m64n128k32_s8(acc1, desc_sw128(a1 + 32 * ks), db);
        }
        wgmma_commit();
        wgmma_wait<1>(); // stage k - 1's wgmma (this warp's view of its warpgroup) complete
        if (k >= 1) {
            __syncwarp();
            if (lane == 0) mbar_arrive(bar + 8 * (kWsStages + (k - 1) % kWsStages)); // release stage k - 1
        }
    }
    wgmma_wait<0>();
    fence_acc(acc0);
    fence_acc(acc1);

    const int nb = ct * (kBC / 32) + 4 * c + warp; // the 32-channel block this warp's rows hold
    const bool nvalid = nb < p.N / 32;
    const int nrow = nb * 32 + (lane >> 2);
    // split-K fix-up and epilogue (wgmma_common.cuh) among the 256 consumer threads (named
    // barrier; the producer has returned), thread 128 counting for the block
    finish_block<P, OUT_ACC>(p, acc0, acc1, nrow, m0, lane, nvalid, ct, tt, threadIdx.x == kProdThreads, [] { bar_consumers(); });
}

// ---- host ----

std::atomic<unsigned long> g_ws_launches{0};

template <bool G128, bool OUT_ACC> qv_status ws_launch(const Params &p, cudaStream_t st)
{
    auto kern = wgmma_ws_kernel<G128, OUT_ACC>;
    static int configured = 0; // per instantiation: the dynamic shared memory limit raised once
    if (!configured) {
        QV_CUDA_TRY(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, kWsSmem));
        configured = 1;
    }
    const long blocks = (long)((p.N + kBC - 1) / kBC) * ((p.M + kBT - 1) / kBT); // block_tile() maps them
    if (blocks > 0x7FFFFFFFL) return qv_fail(QV_ERR_USAGE, "gemm (wgmma_ws): M=%d N=%d needs too many blocks", p.M, p.N);
    const int KTALL = (p.K + kBK - 1) / kBK;
    Params q = p;
    if (q.ktps <= 0 || q.ktps > KTALL) q.ktps = KTALL; // unsplit unless the caller sliced K
    const int splits = (KTALL + q.ktps - 1) / q.ktps;
    if (splits > 1 && (!q.ws || !q.cnt)) return qv_fail(QV_ERR_USAGE, "gemm (wgmma_ws): split-K without a workspace");
    kern<<<dim3((unsigned)blocks, (unsigned)splits, 1), kWsThreads, kWsSmem, st>>>(q);
    QV_CUDA_TRY(cudaGetLastError());
    g_ws_launches++;
    return QV_OK;
}

// Per device: 0 = not decided, 1 = the sm_90a image of this kernel loads, -1 = it does not
std::mutex g_ws_mu;
int g_ws_img[64];

qv_status ws_image_loads(bool *ok)
{
    *ok = false;
    int dev = 0;
    QV_CUDA_TRY(cudaGetDevice(&dev));
    if (dev < 0 || dev >= (int)(sizeof g_ws_img / sizeof *g_ws_img)) return QV_OK;
    std::lock_guard<std::mutex> lock(g_ws_mu);
    if (!g_ws_img[dev]) {
        // every instantiation loads and was allocated the registers setmaxnreg redistributes (a
        // smaller allocation would make the consumers' increase wait forever: not launched)
        const void *const kerns[] = {(const void *)wgmma_ws_kernel<false, false>, (const void *)wgmma_ws_kernel<false, true>,
                                     (const void *)wgmma_ws_kernel<true, false>, (const void *)wgmma_ws_kernel<true, true>};
        g_ws_img[dev] = 1;
        for (const void *k : kerns) {
            cudaFuncAttributes fa;
            if (cudaFuncGetAttributes(&fa, k) != cudaSuccess) {
                (void)cudaGetLastError(); // leave no CUDA error pending
                g_ws_img[dev] = -1;
            } else if ((long)fa.numRegs * kWsThreads < (long)kProdThreads * kProdRegs + 32L * kConsWarps * kConsRegs) {
                fprintf(stderr, "qvet: gemm (wgmma_ws): the kernel was allocated %d registers per thread, fewer than "
                                "setmaxnreg redistributes: not used\n", fa.numRegs);
                g_ws_img[dev] = -1;
            }
        }
    }
    *ok = g_ws_img[dev] == 1;
    return QV_OK;
}

} // namespace

qv_status wgmma_ws_ready(bool *ok)
{
    *ok = false;
    bool lay = false, img = false;
    QV_TRY(wgmma_sw128_layout(&lay)); // sm_90 device, the wgmma self-test chose the sw128 layout
    if (lay) QV_TRY(ws_image_loads(&img));
    *ok = lay && img;
    return QV_OK;
}

qv_status wgmma_ws_gemm(const Params &p, WgFormat fmt, bool out_acc, cudaStream_t st, bool *done)
{
    *done = false;
    if (p.M < kWgMinM) return QV_OK;
    bool ok = false;
    QV_TRY(wgmma_ws_ready(&ok));
    if (!ok) return QV_OK;
    QV_DMUT_SYNC(); // QV_MUTANTS builds: this file's copy of the planted-bug selection
    const bool g = fmt == kWgG128;
    QV_TRY(g ? (out_acc ? ws_launch<true, true>(p, st) : ws_launch<true, false>(p, st))
             : (out_acc ? ws_launch<false, true>(p, st) : ws_launch<false, false>(p, st)));
    *done = true;
    return QV_OK;
}

unsigned long wgmma_ws_launches() { return g_ws_launches.load(); }

} // namespace qvg
