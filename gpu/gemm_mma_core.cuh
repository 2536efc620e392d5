// The shared INT8 tensor-core GEMM mainloop of qvet's three GEMM kernels (device code only; the
// host launchers are in gemm_launch.cu).
//
// Computes, per output tile, acc[m][n] = sum_k x[m][k] * b[n][k] in INT32 (exact; the entry
// points bound K so no partial sum overflows), where b is produced per mma fragment by a
// Policy (gemm_w8a8.cuh: b = w8 as stored; gemm_w4a8_chn.cuh: b = u, the UINT4 code;
// gemm_w4a8_g128.cuh: b = u*s1 - sz1, dequantized in registers), then either stores acc
// (debug entries) or applies the Policy's FP32 epilogue and stores FP16 with counted saturation.
//
// Layout contract: x [M, K] int8 row-major; weights [N, K * Policy::kBytesNum / 2] bytes
// row-major (K-contiguous per output channel: the "col" operand of mma.row.col, so a thread's
// four consecutive k bytes are one 32-bit word, no transposition anywhere); y / acc [M, N].
//
// Tricks and why:
//  * mma.sync.m16n8k32.s8 (sm_80+): the INT8 tensor-core instruction common to sm_80/89/90.
//  * cp.async 16-byte copies into a STAGES-deep shared-memory ring, zero-filled (src-size 0)
//    outside [M) x [K) and [N): zeros in x make any b contribute 0, so K tails, the last M tile
//    and the last N tile need no special mainloop, and nothing is read out of bounds.
//  * rows padded by 16 bytes in shared memory: the 8 row addresses of one ldmatrix phase then
//    fall on distinct bank quads (row stride = 4 mod 32 words for 80/144/272-byte rows, a
//    permutation of 12 mod 32 for 48-byte rows), so ldmatrix is conflict-free.
//  * ldmatrix.x4 for both operands: for int8 the 8x8 b16 matrices map exactly onto the m16n8k32
//    A fragment (rows g, g+8; k 0-15, 16-31) and onto the B fragment of a K-contiguous weight
//    row (thread t gets bytes 4t..4t+3 of row g).
//  * WKS warps may split one stage's K range (small M: a block of 16 rows has too little
//    work per warp otherwise); their INT32 partial tiles are added through shared memory at
//    the end (integer addition: order-independent, so still bit-exact).
//  * Split-K across blocks (gridDim.z > 1, chosen by the host when the output tiles alone
//    cannot fill the SMs: small M, N = 4096 layers): each block streams its own slice of K,
//    stores its INT32 partial tile to a workspace, and the last block to arrive at a tile sums
//    the partials and runs the epilogue (one launch, no second pass). Exact for the same reason.
//  * The epilogue runs in FP32 with explicit __fmul_rn/__fsub_rn in NUMERICS.md's order (the
//    file is also compiled with --fmad=false), so it equals the CPU reference bit for bit.
//  * Saturation: |v| > 65504 is written as +-65504 and COUNTED (one atomicAdd per thread
//    that saw any), never silent. NaN passes through as NaN.
//
// Reference it must match: the CPU integer GEMM + epilogues of ref/qoq (NUMERICS.md), checked
// bit for bit (accumulators and FP16 outputs) by tests/test_gpu_gemm.c.
#ifndef QV_GEMM_MMA_CORE_CUH
#define QV_GEMM_MMA_CORE_CUH

#include <cstdint>
#include <cuda_fp16.h>

#include "qv_mutant_dev.cuh"

namespace qvg {

struct Params {
    const int8_t *x;
    const uint8_t *w; // int8 (W8A8) or packed UINT4 bytes
    int M, N, K;
    const float *sa;
    const int32_t *rowsum;
    const __half *sw; // W8A8 / chn: s_w; g128: s0
    const __half *sz; // chn: scaled zero
    const uint8_t *s1, *sz1;
    __half *y;
    int32_t *acc;
    unsigned int *sat;
    // split-K across blocks (gridDim.z > 1): block z covers stage tiles [z*ktps, (z+1)*ktps);
    // ws [gridDim.z][M][N] INT32 partial tiles, cnt [gridDim.x * gridDim.y] arrival counters
    // (zero before the launch; the last block of each tile resets its counter to zero).
    int ktps;
    int32_t *ws;
    unsigned int *cnt;
};

__device__ __forceinline__ uint32_t smem_u32(const void *p)
{
    return (uint32_t)__cvta_generic_to_shared(p);
}

__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, bool valid)
{
    int n = valid ? 16 : 0; // src-size 0: the 16 bytes are zero-filled, gmem is not read
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(smem)), "l"(gmem), "r"(n));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}

__device__ __forceinline__ void mma_s8(int32_t (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// FP32 -> FP16 with counted saturation (NUMERICS.md: finite |v| > 65504 -> +-65504).
__device__ __forceinline__ __half sat_half(float v, unsigned int &nsat)
{
    if (fabsf(v) > 65504.0f) {
        if (!QV_DMUT(fp16_sat_silent)) nsat++; // the mutant saturates without counting
        v = v > 0.0f ? 65504.0f : -65504.0f;
    }
    return __float2half_rn(v);
}

// s_a of output row m (the planted bug act_scale_token, QV_MUTANTS builds only, reads the
// previous token's).
__device__ __forceinline__ float row_scale(const Params &p, int m)
{
    return p.sa[QV_DMUT(act_scale_token) && m > 0 ? m - 1 : m];
}

// The FP16 outputs (m, n) and (m, n + 1) from their INT32 accumulators: the Policy's FP32
// epilogue, counted saturation, one half2 store (n even, N % 8 == 0). The one epilogue store of
// both kernels (gemm_kernel here, gemm_decode_kernel in gemm_decode.cuh).
template <class P>
__device__ __forceinline__ void store_out_pair(const Params &p, int m, int n, int32_t a0, int32_t a1, unsigned int &nsat)
{
    __half2 v;
    v.x = sat_half(P::epilogue(p, a0, m, n), nsat);
    v.y = sat_half(P::epilogue(p, a1, m, n + 1), nsat);
    *reinterpret_cast<__half2 *>(p.y + (long)m * p.N + n) = v;
}

// Tile configuration. BK is the K extent of one pipeline stage, in elements.
// MINB_: resident blocks per SM asked of the compiler (__launch_bounds__), 0 = by block size.
template <int BM_, int BN_, int BK_, int WM_, int WN_, int WKS_, int STAGES_, int MINB_ = 0> struct Cfg {
    static constexpr int BM = BM_, BN = BN_, BK = BK_, WM = WM_, WN = WN_, WKS = WKS_, STAGES = STAGES_;
    static constexpr int THREADS = 32 * WM * WN * WKS;
    static constexpr int TM = BM / WM, TN = BN / WN; // warp tile
    static constexpr int MI = TM / 16, NI = TN / 8;  // mma tiles per warp
    static constexpr int KSTEPS = BK / WKS / 32;     // k32 steps per warp per stage
    // 8-warp blocks: ask for 2 resident blocks (caps registers at 128), so 16 warps per SM
    static constexpr int MINB = MINB_ ? MINB_ : THREADS >= 256 ? 2 : 1;
    static_assert(TM % 16 == 0 && TN % 16 == 0 && (BK / WKS) % 32 == 0, "bad tile");
};

template <class C, class P> struct Smem {
    static constexpr int A_ROW = C::BK + 16;                        // bytes, padded
    static constexpr int B_ROW = C::BK * P::kBytesNum / 2 + 16;     // bytes, padded (W8A8)
    // packed W4 (docs/layout.md): [BN/32 channel blocks][BK/32 k tiles][512 bytes], unpadded:
    // lane t reads bytes 16t..16t+15 of a tile, consecutive lanes consecutive chunks.
    static constexpr int A_STAGE = C::BM * A_ROW;
    static constexpr int B_STAGE = P::kPacked ? C::BN * C::BK / 2 : C::BN * B_ROW;
    static constexpr int STAGE = A_STAGE + B_STAGE;
    static constexpr int PIPE = C::STAGES * STAGE;
    static constexpr int RED = (C::WKS - 1) * C::WM * C::WN * C::MI * C::NI * 4 * 32 * 4;
    static constexpr int BYTES = PIPE > RED ? PIPE : RED;
};

template <class C, class P>
__device__ __forceinline__ void load_stage(const Params &p, uint8_t *sa_, uint8_t *sb_, int m0, int n0, int kt)
{
    using S = Smem<C, P>;
    constexpr int ACH = C::BK / 16;                         // 16-byte chunks per A row
    constexpr int BKB = C::BK * P::kBytesNum / 2;           // weight bytes per row per stage
    constexpr int BCH = BKB / 16;
    const long wrow = (long)p.K * P::kBytesNum / 2;          // weight bytes per row
    const int k0 = kt * C::BK, kb0 = kt * BKB;
    // K extent of x that is read; the planted bug ktail_dropped (W8A8, QV_MUTANTS builds only)
    // zero-fills the last partial 128-wide K tile, so it is not accumulated
    const int kx = QV_DMUT(ktail_dropped) && !P::kPacked ? p.K - p.K % 128 : p.K;
#pragma unroll
    for (int c = threadIdx.x; c < C::BM * ACH; c += C::THREADS) {
        int r = c / ACH, cc = c % ACH;
        int gm = m0 + r, gk = k0 + cc * 16;
        bool v = gm < p.M && gk < kx;
        const int8_t *src = v ? p.x + (long)gm * p.K + gk : p.x;
        cp_async16(sa_ + r * S::A_ROW + cc * 16, src, v);
    }
    if constexpr (P::kPacked) {
        // the BK/32 tiles of one 32-channel block are contiguous in global memory (16*BK bytes)
        constexpr int TCH = C::BK / 32 * 32; // 16-byte chunks per channel block per stage
        const int kt32 = p.K / 32, nb32 = p.N / 32;
#pragma unroll
        for (int c = threadIdx.x; c < C::BN / 32 * TCH; c += C::THREADS) {
            int j = c / TCH, cc = c % TCH;
            int nb = n0 / 32 + j, ktile = kt * (C::BK / 32) + cc / 32;
            bool v = nb < nb32 && ktile < kt32;
            const uint8_t *src = v ? p.w + ((long)nb * kt32 + ktile) * 512 + (cc % 32) * 16 : p.w;
            cp_async16(sb_ + c * 16, src, v);
        }
    } else {
#pragma unroll
        for (int c = threadIdx.x; c < C::BN * BCH; c += C::THREADS) {
            int r = c / BCH, cc = c % BCH;
            int gn = n0 + r, gkb = kb0 + cc * 16;
            bool v = gn < p.N && gkb < wrow;
            const uint8_t *src = v ? p.w + (long)gn * wrow + gkb : p.w;
            cp_async16(sb_ + r * S::B_ROW + cc * 16, src, v);
        }
    }
}

// OUT_ACC: store INT32 accumulators (debug entry) instead of the FP16 epilogue.
template <class C, class P, bool OUT_ACC>
__global__ void __launch_bounds__(C::THREADS, C::MINB) gemm_kernel(const Params p)
{
    using S = Smem<C, P>;
    extern __shared__ __align__(16) uint8_t smem[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int wm = warp % C::WM, wn = (warp / C::WM) % C::WN, wk = warp / (C::WM * C::WN);
    const int n0 = blockIdx.x * C::BN, m0 = blockIdx.y * C::BM;
    const int KTALL = (p.K + C::BK - 1) / C::BK;
    const int kt0 = blockIdx.z * p.ktps;                      // this block's first stage tile
    const int KT = min(KTALL, kt0 + p.ktps) - kt0;            // and how many (>= 1 by the host)

    int32_t acc[C::MI][C::NI][4];
#pragma unroll
    for (int i = 0; i < C::MI; i++)
#pragma unroll
        for (int j = 0; j < C::NI; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0;

#pragma unroll
    for (int s = 0; s < C::STAGES - 1; s++) {
        if (s < KT) load_stage<C, P>(p, smem + s * S::STAGE, smem + s * S::STAGE + S::A_STAGE, m0, n0, kt0 + s);
        cp_async_commit();
    }

    // per-thread ldmatrix offsets (bytes within a stage)
    const int a_row = wm * C::TM + (lane & 15), a_col = (lane >> 4) * 16;
    typename P::template Frag<C> frag;

    for (int kt = 0; kt < KT; kt++) {
        cp_async_wait<C::STAGES - 2>();
        __syncthreads();
        {
            int nk = kt + C::STAGES - 1;
            int slot = nk % C::STAGES;
            if (nk < KT) load_stage<C, P>(p, smem + slot * S::STAGE, smem + slot * S::STAGE + S::A_STAGE, m0, n0, kt0 + nk);
            cp_async_commit();
        }
        const uint8_t *sa_ = smem + (kt % C::STAGES) * S::STAGE;
        const uint8_t *sb_ = sa_ + S::A_STAGE;
        frag.stage_begin(p, n0 + wn * C::TN, (kt0 + kt) * C::BK + wk * C::KSTEPS * 32, lane);
#pragma unroll
        for (int ks = 0; ks < C::KSTEPS; ks++) {
            const int kk = (wk * C::KSTEPS + ks) * 32; // k offset within the stage
            uint32_t a[C::MI][4];
#pragma unroll
            for (int mi = 0; mi < C::MI; mi++) ldmatrix_x4(a[mi], sa_ + (a_row + mi * 16) * S::A_ROW + kk + a_col);
            uint32_t b[C::NI][2];
            frag.load(b, sb_, wn * C::TN, kk, lane);
#pragma unroll
            for (int mi = 0; mi < C::MI; mi++)
#pragma unroll
                for (int ni = 0; ni < C::NI; ni++) mma_s8(acc[mi][ni], a[mi], b[ni][0], b[ni][1]);
        }
    }
    cp_async_wait<0>();

    if constexpr (C::WKS > 1) {
        __syncthreads(); // every warp is done with the pipeline buffers
        int32_t *red = reinterpret_cast<int32_t *>(smem);
        constexpr int PER_WARP = C::MI * C::NI * 4 * 32;
        const int wmn = warp % (C::WM * C::WN);
        if (wk > 0) {
            int32_t *dst = red + ((wk - 1) * C::WM * C::WN + wmn) * PER_WARP;
#pragma unroll
            for (int i = 0; i < C::MI; i++)
#pragma unroll
                for (int j = 0; j < C::NI; j++)
#pragma unroll
                    for (int e = 0; e < 4; e++) dst[((i * C::NI + j) * 4 + e) * 32 + lane] = acc[i][j][e];
        }
        __syncthreads();
        if (wk > 0) return;
#pragma unroll
        for (int q = 0; q < C::WKS - 1; q++) {
            const int32_t *src = red + (q * C::WM * C::WN + wmn) * PER_WARP;
#pragma unroll
            for (int i = 0; i < C::MI; i++)
#pragma unroll
                for (int j = 0; j < C::NI; j++)
#pragma unroll
                    for (int e = 0; e < 4; e++) acc[i][j][e] += src[((i * C::NI + j) * 4 + e) * 32 + lane];
        }
    }

    // accumulator (i, j, e): row = g + 8*(e>>1), col = 2*t + (e&1) within the m16n8 tile
    if (gridDim.z > 1) {
        // Split-K fix-up (only the WKS == 0 warps are left, hence the named barrier): every block
        // stores its INT32 partial tile, the last block to arrive at the tile adds the others'
        // partials to its own and runs the epilogue. Integer addition is exact and associative,
        // so the result equals the unsplit sum bit for bit whatever the arrival order.
        // (threadFenceReduction pattern: store, fence, count; the last block fences, then reads
        // through L2 with __ldcg.)
        constexpr int NT = 32 * C::WM * C::WN;
        __shared__ int s_last;
        const int z = blockIdx.z;
#pragma unroll
        for (int i = 0; i < C::MI; i++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int m = m0 + wm * C::TM + i * 16 + (lane >> 2) + 8 * h;
                if (m >= p.M) continue;
#pragma unroll
                for (int j = 0; j < C::NI; j++) {
                    const int n = n0 + wn * C::TN + j * 8 + 2 * (lane & 3);
                    if (n >= p.N) continue;
                    *reinterpret_cast<int2 *>(p.ws + ((long)z * p.M + m) * p.N + n) =
                        make_int2(acc[i][j][2 * h], acc[i][j][2 * h + 1]);
                }
            }
        __threadfence();
        asm volatile("bar.sync 1, %0;\n" ::"n"(NT));
        if (threadIdx.x == 0) {
            const unsigned int tile = blockIdx.y * gridDim.x + blockIdx.x;
            const unsigned int old = atomicAdd(p.cnt + tile, 1u);
            s_last = old == gridDim.z - 1;
            if (s_last) p.cnt[tile] = 0; // every other block of this tile has counted already
        }
        asm volatile("bar.sync 1, %0;\n" ::"n"(NT));
        if (!s_last) return;
        __threadfence();
        for (int q = 0; q < (int)gridDim.z; q++) {
            if (q == z) continue;
#pragma unroll
            for (int i = 0; i < C::MI; i++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const int m = m0 + wm * C::TM + i * 16 + (lane >> 2) + 8 * h;
                    if (m >= p.M) continue;
#pragma unroll
                    for (int j = 0; j < C::NI; j++) {
                        const int n = n0 + wn * C::TN + j * 8 + 2 * (lane & 3);
                        if (n >= p.N) continue;
                        const int2 v = __ldcg(reinterpret_cast<const int2 *>(p.ws + ((long)q * p.M + m) * p.N + n));
                        acc[i][j][2 * h] += v.x;
                        acc[i][j][2 * h + 1] += v.y;
                    }
                }
        }
    }
    unsigned int nsat = 0;
#pragma unroll
    for (int i = 0; i < C::MI; i++) {
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int m = m0 + wm * C::TM + i * 16 + (lane >> 2) + 8 * h;
            if (m >= p.M) continue;
#pragma unroll
            for (int j = 0; j < C::NI; j++) {
                const int n = n0 + wn * C::TN + j * 8 + 2 * (lane & 3);
                if (n >= p.N) continue; // N % 8 == 0, so n + 1 < N too
                const long o = (long)m * p.N + n;
                if constexpr (OUT_ACC) {
                    int2 v = make_int2(acc[i][j][2 * h], acc[i][j][2 * h + 1]);
                    *reinterpret_cast<int2 *>(p.acc + o) = v;
                } else {
                    store_out_pair<P>(p, m, n, acc[i][j][2 * h], acc[i][j][2 * h + 1], nsat);
                }
            }
        }
    }
    if (!OUT_ACC && nsat) atomicAdd(p.sat, nsat);
}

} // namespace qvg

#endif
