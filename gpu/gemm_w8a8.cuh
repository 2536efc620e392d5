// W8A8 GEMM policy (device code): the INT8 baseline of issue 7.
//
// Computes y[m][n] = fp16_sat( (s_a[m] * s_w[n]) * (float)acc[m][n] ),
//          acc[m][n] = sum_k x[m][k] * w8[n][k]   (INT32, exact for K <= 133144).
// Layout: w8 [N, K] int8 row-major (per output channel, K contiguous); s_w [N] fp16 stored
// values (NUMERICS.md: s_w = fp16(max|w| / 127)); s_a [M] fp32.
// Trick: the weight rows are already the mma "col" operand, so one ldmatrix.x4 yields the B
// fragments (k 0-15 and 16-31) of two n8 tiles; no conversion at all.
// Reference: NUMERICS.md "W8A8", ref/qoq's W8A8 epilogue, bit for bit.
// Tiles: see gemm_launch.cu (the Cfg chosen by M); this policy needs NI (warp n8 tiles) even.
#ifndef QV_GEMM_W8A8_CUH
#define QV_GEMM_W8A8_CUH

#include "gemm_mma_core.cuh"

namespace qvg {

struct PolicyW8A8 {
    static constexpr int kBytesNum = 2; // weight bytes per k = kBytesNum / 2
    static constexpr bool kPacked = false;
    template <class C> struct Frag {
        static_assert(C::NI % 2 == 0, "W8A8 loads n8 tiles in pairs");
        __device__ __forceinline__ void stage_begin(const Params &, int, int, int) {}
        __device__ __forceinline__ void load(uint32_t (&b)[C::NI][2], const uint8_t *sb, int nbase, int kk, int lane)
        {
            constexpr int ROW = Smem<C, PolicyW8A8>::B_ROW;
#pragma unroll
            for (int j = 0; j < C::NI / 2; j++) {
                uint32_t r[4];
                const int row = nbase + j * 16 + (lane & 7) + ((lane >> 4) << 3);
                ldmatrix_x4(r, sb + row * ROW + kk + ((lane >> 3) & 1) * 16);
                b[2 * j][0] = r[0];
                b[2 * j][1] = r[1];
                b[2 * j + 1][0] = r[2];
                b[2 * j + 1][1] = r[3];
            }
        }
    };
    static __device__ __forceinline__ float epilogue(const Params &p, int32_t acc, int m, int n)
    {
#ifdef QV_MUTANTS
        if (QV_DMUT(scale_before_sum)) return scale_each_tile(p, m, n);
#endif
        return __fmul_rn(__fmul_rn(row_scale(p, m), __half2float(p.sw[n])), __int2float_rn(acc));
    }
#ifdef QV_MUTANTS
    // The planted bug scale_before_sum: each 32-wide K tile's INT32 partial sum scaled in FP32 and
    // the partials summed in FP32, as the CPU emulation's mutant (recomputed from global memory:
    // a bug's arithmetic, not a fast path).
    static __device__ float scale_each_tile(const Params &p, int m, int n)
    {
        const int8_t *w = reinterpret_cast<const int8_t *>(p.w);
        float s = __fmul_rn(p.sa[m], __half2float(p.sw[n])), v = 0.0f;
        for (int k0 = 0; k0 < p.K; k0 += 32) {
            int32_t part = 0;
            for (int k = k0; k < p.K && k < k0 + 32; k++) part += (int32_t)p.x[(long)m * p.K + k] * w[(long)n * p.K + k];
            v = __fadd_rn(v, __fmul_rn(__int2float_rn(part), s));
        }
        return v;
    }
#endif
};

} // namespace qvg

#endif
