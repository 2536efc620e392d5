// W4A8 progressive-group (g = 128) GEMM policy (device code).
//
// Computes y[m][n] = fp16_sat( (s_a[m] * s0[n]) * (float)acc[m][n] ),
//          acc[m][n] = sum_k x[m][k] * w8'[n][k],  w8' = u * s1[n][k/128] - sz1[n][k/128]
// (level-2 dequantization to INT8 in registers; INT32 exact for K <= 132104).
// Layout: w4 in ref/qoq's packed layout (docs/layout.md, as gemm_w4a8_chn.cuh); s1, sz1 in
// ref/qoq's packed group-byte layout: [K/128][N] (group-major) with each 32-channel block
// reordered so byte 4c + i holds channel 8i + c (scale 1..16, scaled zero z*s1 <= 240): lane
// group c reads the s1 (and sz1) of its four channels c, c+8, c+16, c+24 as one 32-bit word.
// s0 [N] fp16; s_a [M] fp32. Needs N % 32 == 0 and K % 128 == 0.
// Tricks and why (register-level parallelism, QServe section 5):
//  * a lane's 16-byte load holds the codes of four n8 tiles for one mma step (see
//    gemm_w4a8_chn.cuh); w & 0x0F0F0F0F and (w >> 4) & 0x0F0F0F0F hold four codes each.
//  * ONE 32-bit multiply lo * s1 scales all four lanes: each byte's product u*s1 <= 15*16 = 240
//    < 256, so no lane carries into the next. Then __vsub4(prod, sz1 * 0x01010101) subtracts
//    per byte modulo 256. The true value u*s1 - sz1 lies in [-128, 127] (the protective range:
//    |w8'| <= 119 + s1/2 <= 127 for quantizer-made codes, NUMERICS.md), so the byte modulo 256
//    IS its two's-complement INT8: multiply then subtract, exact, 2 instructions per 4 weights.
//    (Codes whose u*s1 - sz1 leaves [-128, 127] would wrap: the loader rejects such groups.)
//  * a warp's K slice of one stage never crosses a group boundary (static_assert), so s1/sz1
//    are loaded once per stage per n8 tile (read-only path, L1-resident: N*K/128 bytes each).
// Reference: NUMERICS.md "Weights, progressive group"; ref/qoq qv_w4g128_dequant_ref +
// qv_gemm_acc_s8s8 + qv_epilogue_scaled (compat 0), bit for bit.
// Tiles: see gemm_launch.cu; needs NI % 4 == 0 and 128 % (warp K slice) == 0.
#ifndef QV_GEMM_W4A8_G128_CUH
#define QV_GEMM_W4A8_G128_CUH

#include "gemm_w4a8_chn.cuh"

namespace qvg {

struct PolicyW4G128 {
    static constexpr int kBytesNum = 1;
    static constexpr bool kPacked = true;
    template <class C> struct Frag {
        static_assert(128 % (C::KSTEPS * 32) == 0, "a warp's K slice must stay inside one group");
        uint32_t s1[C::NI], szx4[C::NI];
#ifdef QV_MUTANTS
        // the planted bug group_boundary: the next group's scales, the warp's first k, K / 128
        uint32_t s1n[C::NI], szx4n[C::NI];
        int k0w, ngroups;
#endif
        __device__ __forceinline__ void stage_begin(const Params &p, int nbase, int k0, int lane)
        {
            const int g = k0 / 128;
#pragma unroll
            for (int q = 0; q < C::NI / 4; q++) {
                const int nb = nbase + 32 * q;
                uint32_t s = 0, z = 0;
                if (nb < p.N && k0 < p.K) {
                    const long o = (long)g * p.N + nb + 4 * (lane >> 2);
                    s = __ldg(reinterpret_cast<const unsigned int *>(p.s1 + o));
                    z = __ldg(reinterpret_cast<const unsigned int *>(p.sz1 + o));
                }
#pragma unroll
                for (int i = 0; i < 4; i++) { // byte i: channel c + 8i = n8 tile 4q+i
                    s1[4 * q + i] = (s >> (8 * i)) & 255u;
                    szx4[4 * q + i] = ((z >> (8 * i)) & 255u) * 0x01010101u;
                }
#ifdef QV_MUTANTS
                if (QV_DMUT(group_boundary) && nb < p.N && (g + 1) * 128 < p.K) {
                    const long o = (long)(g + 1) * p.N + nb + 4 * (lane >> 2);
                    s = __ldg(reinterpret_cast<const unsigned int *>(p.s1 + o));
                    z = __ldg(reinterpret_cast<const unsigned int *>(p.sz1 + o));
                }
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    s1n[4 * q + i] = (s >> (8 * i)) & 255u;
                    szx4n[4 * q + i] = ((z >> (8 * i)) & 255u) * 0x01010101u;
                }
#endif
            }
#ifdef QV_MUTANTS
            k0w = k0;
            ngroups = p.K / 128;
#endif
        }
        __device__ __forceinline__ void load(uint32_t (&b)[C::NI][2], const uint8_t *sb, int nbase, int kk, int lane)
        {
            load_w4_frags<C>(b, sb, nbase, kk, lane);
#ifdef QV_MUTANTS
            // this mma step's first k is k0w + ks*32 (kk = (wk*KSTEPS + ks)*32); the mutant reads
            // the next group's scales for the last 32-wide block of a group, as the CPU emulation's
            const int gk = k0w + ((kk / 32) % C::KSTEPS) * 32;
            if (QV_DMUT(group_boundary) && (gk + 32) % 128 == 0 && (gk + 32) / 128 < ngroups) {
#pragma unroll
                for (int j = 0; j < C::NI; j++) {
                    b[j][0] = __vsub4(b[j][0] * s1n[j], szx4n[j]);
                    b[j][1] = __vsub4(b[j][1] * s1n[j], szx4n[j]);
                }
                return;
            }
#endif
#pragma unroll
            for (int j = 0; j < C::NI; j++) {
                b[j][0] = __vsub4(b[j][0] * s1[j], szx4[j]);
                b[j][1] = __vsub4(b[j][1] * s1[j], szx4[j]);
            }
        }
    };
    static __device__ __forceinline__ float epilogue(const Params &p, int32_t acc, int m, int n)
    {
        return __fmul_rn(__fmul_rn(row_scale(p, m), __half2float(p.sw[n])), __int2float_rn(acc));
    }
};

} // namespace qvg

#endif
