// Device helpers shared by the two sm_90a W4A8 kernels (gemm_wgmma.cu: register-A wgmma;
// gemm_wgmma_ws.cu: warp-specialized, both operands from shared memory). Moved here verbatim from
// gemm_wgmma.cu so that both kernels run literally the same accumulator-to-(m, n) map, epilogue
// (P::epilogue, sat_half, same order), block raster and wgmma fences. Included inside no other
// namespace; everything is in an anonymous namespace (no relocatable device code: each .cu has its
// own copy, as with the other device headers).
#ifndef QV_SM90A_WGMMA_COMMON_CUH
#define QV_SM90A_WGMMA_COMMON_CUH

#include "../gemm_w4a8_chn.cuh"
#include "../gemm_w4a8_g128.cuh"
#include "../gemm_wgmma.h"

namespace qvg {
namespace {

constexpr int kBT = kWgBT;            // tokens per block (wgmma N)
constexpr int kBC = kWgBC;            // channels per block
constexpr int kBK = kWgBK;            // k per stage: one 128-byte swizzle row per token; one g128 group

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// Ties the accumulators to this point of the program (the compiler must not move their uses
// across the wgmma wait).
__device__ __forceinline__ void fence_acc(int32_t (&d)[64])
{
#pragma unroll
    for (int i = 0; i < 64; i++) asm volatile("" : "+r"(d[i])::"memory");
}

template <bool G128> struct WgFmt;
template <> struct WgFmt<false> { using P = PolicyW4Chn; };
template <> struct WgFmt<true> { using P = PolicyW4G128; };

// The four k32 steps' weights of stage kt for this warp's channel block (zero past K or N: the
// zero-filled x makes their products 0 anyway; the guard keeps the loads in bounds).
__device__ __forceinline__ void load_w(uint4 (&w)[4], const uint4 *wp, bool nvalid, int kt, int kt32)
{
#pragma unroll
    for (int ks = 0; ks < 4; ks++) {
        const int j = kt * 4 + ks;
        w[ks] = nvalid && j < kt32 ? __ldg(wp + (long)j * 32) : make_uint4(0, 0, 0, 0);
    }
}

// One lane's 16 packed bytes of one k32 step -> INT8 weights b[i][0..1] = channel c0 + 8i + g at
// k = 4e..4e+3 and 16+4e..16+4e+3 (unpack_w4); g128 also applies the level-2 dequantization
// u*s1 - sz1 by one multiply and __vsub4 per word (gemm_w4a8_g128.cuh: byte i of the lane's group
// words s1w / szw belongs to channel c0 + 8i + g). Both kernels call exactly this.
template <bool G128>
__device__ __forceinline__ void dequant_w4(uint32_t (&b)[4][2], uint4 w, uint32_t s1w, uint32_t szw)
{
    unpack_w4(w, b);
    if constexpr (G128) {
#pragma unroll
        for (int i = 0; i < 4; i++) { // byte i of the group words: channel c0 + 8i + g
            const uint32_t s = (s1w >> (8 * i)) & 255u, z = ((szw >> (8 * i)) & 255u) * 0x01010101u;
            b[i][0] = __vsub4(b[i][0] * s, z);
            b[i][1] = __vsub4(b[i][1] * s, z);
        }
    }
}

// Calls f(d[i], m, o = m * N + n) for every accumulator of one m64 tile whose token is < M:
// thread (warp w, g, e) holds channel nrow + 8h (h = 0, 1) for tokens m0 + 8j + 2e + e'.
template <class F>
__device__ __forceinline__ void each_acc(const Params &p, int32_t (&d)[64], int nrow, int m0, int lane, F &&f)
{
#pragma unroll
    for (int j = 0; j < 16; j++)
#pragma unroll
        for (int h = 0; h < 2; h++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int m = m0 + 8 * j + 2 * (lane & 3) + e;
                if (m < p.M) f(d[4 * j + 2 * h + e], m, (long)m * p.N + nrow + 8 * h);
            }
}

// Epilogue of one m64 accumulator tile: per element the Policy's epilogue, as the mma.sync
// kernels (or the accumulator itself for the _acc entries).
template <class P, bool OUT_ACC>
__device__ __forceinline__ void store_tile(const Params &p, int32_t (&d)[64], int nrow, int m0, int lane, unsigned int &nsat)
{
    each_acc(p, d, nrow, m0, lane, [&](int32_t &v, int m, long o) {
        if constexpr (OUT_ACC) p.acc[o] = v;
        else p.y[o] = sat_half(P::epilogue(p, v, m, (int)(o - (long)m * p.N)), nsat);
    });
}

// The end of a block, shared by both wgmma kernels: the split-K fix-up (gridDim.y > 1), the
// tiled kernel's protocol (gemm_mma_core.cuh): every block stores its INT32 partial tiles to
// ws[z][M][N], fence, count; the last block to arrive at the tile adds the other slices'
// partials to its own and runs the epilogue. Integer addition is exact and associative: the
// result equals the unsplit sum bit for bit in any arrival order. Then the epilogue of the
// thread's two m64 tiles (acc0: channels nrow + 8h, acc1: nrow + 16 + 8h). sync() is a barrier
// over every thread holding this tile's accumulators (none of them returns before it), and the
// thread with `counter` set counts for the block.
template <class P, bool OUT_ACC, class Sync>
__device__ __forceinline__ void finish_block(const Params &p, int32_t (&acc0)[64], int32_t (&acc1)[64], int nrow, int m0,
                                             int lane, bool nvalid, int ct, int tt, bool counter, Sync &&sync)
{
    if (gridDim.y > 1) {
        __shared__ int s_last;
        const int z = blockIdx.y;
        int32_t *const wz = p.ws + (long)z * p.M * p.N;
        if (nvalid) {
            each_acc(p, acc0, nrow, m0, lane, [&](int32_t &v, int, long o) { wz[o] = v; });
            each_acc(p, acc1, nrow + 16, m0, lane, [&](int32_t &v, int, long o) { wz[o] = v; });
        }
        __threadfence();
        sync(); // every warp, valid or not: no early return above
        if (counter) {
            const unsigned int tile = (unsigned int)(ct * ((p.M + kBT - 1) / kBT) + tt);
            const unsigned int old = atomicAdd(p.cnt + tile, 1u);
            s_last = old == gridDim.y - 1;
            if (s_last) p.cnt[tile] = 0; // every other slice of this tile has counted already
        }
        sync();
        if (!s_last) return;
        __threadfence();
        if (!nvalid) return;
        for (int q = 0; q < (int)gridDim.y; q++) {
            if (q == z) continue;
            const int32_t *const wq = p.ws + (long)q * p.M * p.N;
            each_acc(p, acc0, nrow, m0, lane, [&](int32_t &v, int, long o) { v += __ldcg(wq + o); });
            each_acc(p, acc1, nrow + 16, m0, lane, [&](int32_t &v, int, long o) { v += __ldcg(wq + o); });
        }
    }
    if (!nvalid) return;
    unsigned int nsat = 0;
    store_tile<P, OUT_ACC>(p, acc0, nrow, m0, lane, nsat);
    store_tile<P, OUT_ACC>(p, acc1, nrow + 16, m0, lane, nsat);
    if (!OUT_ACC && nsat) atomicAdd(p.sat, nsat);
}

// Block -> (channel tile, token tile), grouped: kGroup channel tiles side by side, token tiles
// down, so one wave of ~132 blocks covers about 12 x 11 tiles: the unique weights and x it reads
// are ~minimal (12*256 channels + 11*128 tokens per k), and whichever operand fits in L2 is
// re-read from L2, not HBM (gate_up: x, 32 MB at M = 8192; down: its 29 MB of weights).
constexpr int kGroup = 12;
__device__ __forceinline__ void block_tile(int M, int N, int &ct, int &tt)
{
    const int CT = (N + kBC - 1) / kBC, TT = (M + kBT - 1) / kBT;
    const int b = blockIdx.x, per = kGroup * TT, g = b / per, r = b % per;
    const int w = min(kGroup, CT - g * kGroup);
    ct = g * kGroup + r % w;
    tt = r / w;
}

} // namespace
} // namespace qvg

#endif
