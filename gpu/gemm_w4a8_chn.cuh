// W4A8 per-channel GEMM policy (device code).
//
// Computes y[m][n] = fp16_sat( s_a[m] * ( s_w[n]*(float)acc[m][n] - sz[n]*(float)rowsum[m] ) ),
//          acc[m][n] = sum_k x[m][k] * u[n][k]   (u: UINT4 codes 0..15; INT32 exact),
// "subtraction after multiplication" (NUMERICS.md): the zero point never enters the integer
// GEMM; it is removed in the epilogue through the activation row sums rowsum[m] = sum_k x[m][k].
// Layout: w4 [N, K/2] bytes, the "mma" packed layout (qvet/qoq_pack_mma.h): per 32-wide K
// block, byte j = code(k=j) | code(k=j+16) << 4. s_w, sz [N] fp16 (stored values), s_a [M] fp32,
// rowsum [M] int32.
// Tricks and why: a thread's B fragment for one m16n8k32 is the codes of k = 4t..4t+3 (reg 0)
// and 16+4t..16+4t+3 (reg 1) of one row; in the packed layout those 8 codes are ONE 32-bit word
// (bytes 4t..4t+3), so unpacking is two ANDs and a shift: reg0 = w & 0x0F0F0F0F, reg1 =
// (w >> 4) & 0x0F0F0F0F, each byte a code 0..15, a valid s8 mma operand. One ldmatrix.x4 over
// 32 consecutive weight rows yields the words of four n8 tiles. Half the weight bytes of W8A8.
// Reference: NUMERICS.md "Weights, per channel", ref/qoq's per-channel epilogue, bit for bit.
// Tiles: see gemm_launch.cu; this policy needs NI % 4 == 0.
#ifndef QV_GEMM_W4A8_CHN_CUH
#define QV_GEMM_W4A8_CHN_CUH

#include "gemm_mma_core.cuh"

namespace qvg {

// The four packed words of n8 tiles 4q..4q+3 for the k32 block at byte column kk/2.
template <class C, class P>
__device__ __forceinline__ void load_w4_words(uint32_t (&w)[C::NI], const uint8_t *sb, int nbase, int kk, int lane)
{
    constexpr int ROW = Smem<C, P>::B_ROW;
    static_assert(C::NI % 4 == 0, "packed W4 loads n8 tiles in quads");
#pragma unroll
    for (int q = 0; q < C::NI / 4; q++) {
        uint32_t r[4];
        ldmatrix_x4(r, sb + (nbase + q * 32 + lane) * ROW + kk / 2);
#pragma unroll
        for (int i = 0; i < 4; i++) w[4 * q + i] = r[i];
    }
}

struct PolicyW4Chn {
    static constexpr int kBytesNum = 1;
    template <class C> struct Frag {
        __device__ __forceinline__ void stage_begin(const Params &, int, int, int) {}
        __device__ __forceinline__ void load(uint32_t (&b)[C::NI][2], const uint8_t *sb, int nbase, int kk, int lane)
        {
            uint32_t w[C::NI];
            load_w4_words<C, PolicyW4Chn>(w, sb, nbase, kk, lane);
#pragma unroll
            for (int j = 0; j < C::NI; j++) {
                b[j][0] = w[j] & 0x0F0F0F0Fu;
                b[j][1] = (w[j] >> 4) & 0x0F0F0F0Fu;
            }
        }
    };
    static __device__ __forceinline__ float epilogue(const Params &p, int32_t acc, int m, int n)
    {
        float t1 = __fmul_rn(__half2float(p.sw[n]), __int2float_rn(acc));
        float t2 = __fmul_rn(__half2float(p.sz[n]), __int2float_rn(p.rowsum[m]));
        return __fmul_rn(p.sa[m], __fsub_rn(t1, t2));
    }
};

} // namespace qvg

#endif
