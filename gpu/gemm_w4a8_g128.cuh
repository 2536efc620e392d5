// W4A8 progressive-group (g = 128) GEMM policy (device code).
//
// Computes y[m][n] = fp16_sat( (s_a[m] * s0[n]) * (float)acc[m][n] ),
//          acc[m][n] = sum_k x[m][k] * w8'[n][k],  w8' = u * s1[n][k/128] - sz1[n][k/128]
// (level-2 dequantization to INT8 in registers; INT32 exact for K <= 132104).
// Layout: w4 [N, K/2] bytes in the "mma" packed layout (as gemm_w4a8_chn.cuh); s1, sz1
// [N, K/128] uint8 row-major (scale 1..16, scaled zero z*s1 <= 240); s0 [N] fp16; s_a [M] fp32.
// Tricks and why (register-level parallelism, QServe section 5):
//  * the 8 codes a thread needs for one mma are one 32-bit word (see gemm_w4a8_chn.cuh);
//    lo = w & 0x0F0F0F0F and hi = (w >> 4) & 0x0F0F0F0F hold four codes each, one per byte.
//  * ONE 32-bit multiply lo * s1 scales all four lanes: each byte's product u*s1 <= 15*16 = 240
//    < 256, so no lane carries into the next. Then __vsub4(prod, sz1 * 0x01010101) subtracts
//    per byte modulo 256. The true value u*s1 - sz1 lies in [-128, 127] (the protective range:
//    |w8'| <= 119 + s1/2 <= 127 for quantizer-made codes, NUMERICS.md), so the byte modulo 256
//    IS its two's-complement INT8: multiply then subtract, exact, 2 instructions per 4 weights.
//    (Codes whose u*s1 - sz1 leaves [-128, 127] would wrap: the loader rejects such groups.)
//  * a warp's K slice of one stage never crosses a group boundary (static_assert), so s1/sz1
//    are loaded once per stage per n8 tile (read-only path, L1-resident: N*K/128 bytes each).
// Reference: NUMERICS.md "Weights, progressive group", ref/qoq's g128 GEMM, bit for bit.
// Tiles: see gemm_launch.cu; needs NI % 4 == 0 and 128 % (warp K slice) == 0.
#ifndef QV_GEMM_W4A8_G128_CUH
#define QV_GEMM_W4A8_G128_CUH

#include "gemm_w4a8_chn.cuh"

namespace qvg {

struct PolicyW4G128 {
    static constexpr int kBytesNum = 1;
    template <class C> struct Frag {
        static_assert(128 % (C::KSTEPS * 32) == 0, "a warp's K slice must stay inside one group");
        uint32_t s1[C::NI], szx4[C::NI];
        __device__ __forceinline__ void stage_begin(const Params &p, int nbase, int k0, int lane)
        {
            const int groups = p.K / 128, g = k0 / 128;
#pragma unroll
            for (int j = 0; j < C::NI; j++) {
                const int n = nbase + j * 8 + (lane >> 2);
                uint32_t s = 0, z = 0;
                if (n < p.N && k0 < p.K) {
                    s = __ldg(p.s1 + (long)n * groups + g);
                    z = __ldg(p.sz1 + (long)n * groups + g);
                }
                s1[j] = s;
                szx4[j] = z * 0x01010101u;
            }
        }
        __device__ __forceinline__ void load(uint32_t (&b)[C::NI][2], const uint8_t *sb, int nbase, int kk, int lane)
        {
            uint32_t w[C::NI];
            load_w4_words<C, PolicyW4G128>(w, sb, nbase, kk, lane);
#pragma unroll
            for (int j = 0; j < C::NI; j++) {
                b[j][0] = __vsub4((w[j] & 0x0F0F0F0Fu) * s1[j], szx4[j]);
                b[j][1] = __vsub4(((w[j] >> 4) & 0x0F0F0F0Fu) * s1[j], szx4[j]);
            }
        }
    };
    static __device__ __forceinline__ float epilogue(const Params &p, int32_t acc, int m, int n)
    {
        return __fmul_rn(__fmul_rn(p.sa[m], __half2float(p.sw[n])), __int2float_rn(acc));
    }
};

} // namespace qvg

#endif
