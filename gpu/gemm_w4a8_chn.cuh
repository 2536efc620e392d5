// W4A8 per-channel GEMM policy (device code).
//
// Computes y[m][n] = fp16_sat( s_a[m] * ( s_w[n]*(float)acc[m][n] - sz[n]*(float)rowsum[m] ) ),
//          acc[m][n] = sum_k x[m][k] * u[n][k]   (u: UINT4 codes 0..15; INT32 exact),
// "subtraction after multiplication" (NUMERICS.md): the zero point never enters the integer
// GEMM; it is removed in the epilogue through the activation row sums rowsum[m] = sum_k x[m][k].
// Layout: w4 = N*K/2 bytes in ref/qoq's packed layout (docs/layout.md, QServe's compute-aware
// reorder): 32x32 (channel x k) tiles of 512 bytes, tile (n/32, k/32) at ((n/32)*(K/32) + k/32)*512;
// lane t = 4c+e owns bytes 16t..16t+15 of a tile: words 0/1 = channels c|c+16 and c+8|c+24
// (low|high nibble) at k = 4e..4e+3, words 2/3 the same channels at k = 16+4e..16+4e+3.
// s_w, sz [N] fp16 (stored values), s_a [M] fp32, rowsum [M] int32 (converted with
// __int2float_rn: the reference's (float)sum, exact below 2^24). Needs N % 32 == 0.
// Tricks and why: the 16 bytes of one lane are, after w & 0x0F0F0F0F and (w >> 4) & 0x0F0F0F0F,
// exactly the eight B-fragment registers of four n8 tiles (channels c, c+8, c+16, c+24) for one
// m16n8k32 step: one conflict-free 128-bit shared load (consecutive lanes, consecutive 16-byte
// chunks), two ANDs and a shift per word, no shuffles or transposes. Each byte is a code 0..15,
// a valid s8 mma operand. Half the weight bytes of W8A8; the 512-byte tiles of one channel block
// are contiguous along K, so a stage's copy is 16*BK contiguous bytes per 32 channels.
// Reference: NUMERICS.md "Weights, per channel"; ref/qoq qv_gemm_acc_s8u4 + qv_epilogue_w4a8_pc
// (compat 0), bit for bit.
// Tiles: see gemm_launch.cu; needs the warp's N extent TN % 32 == 0.
#ifndef QV_GEMM_W4A8_CHN_CUH
#define QV_GEMM_W4A8_CHN_CUH

#include "gemm_mma_core.cuh"

namespace qvg {

// One lane's 16 packed bytes of a 32x32 tile -> the B registers of four n8 tiles for one k32
// step: b[i] = channels 8i + c of the 32-channel block (docs/layout.md). Shared by the tiled
// kernel (from shared memory) and the decode kernel (gemm_decode.cuh, straight from global).
__device__ __forceinline__ void unpack_w4(uint4 w, uint32_t (*b)[2])
{
    const uint32_t m = 0x0F0F0F0Fu;
    if (QV_DMUT(nibble_swap)) { // planted bug (QV_MUTANTS builds only): high nibble read first
        w.x = ((w.x >> 4) & m) | ((w.x & m) << 4), w.y = ((w.y >> 4) & m) | ((w.y & m) << 4);
        w.z = ((w.z >> 4) & m) | ((w.z & m) << 4), w.w = ((w.w >> 4) & m) | ((w.w & m) << 4);
    }
    b[0][0] = w.x & m;        b[0][1] = w.z & m;        // channel c
    b[1][0] = w.y & m;        b[1][1] = w.w & m;        // channel c+8
    b[2][0] = (w.x >> 4) & m; b[2][1] = (w.z >> 4) & m; // channel c+16
    b[3][0] = (w.y >> 4) & m; b[3][1] = (w.w >> 4) & m; // channel c+24
}

// The B registers of the warp's NI n8 tiles for the k32 step at k offset kk of the stage:
// tile 4q+i = channels 8i + c of the warp's 32-channel block q (docs/layout.md).
template <class C>
__device__ __forceinline__ void load_w4_frags(uint32_t (&b)[C::NI][2], const uint8_t *sb, int nbase, int kk, int lane)
{
    static_assert(C::TN % 32 == 0, "packed W4 loads 32-channel blocks");
#pragma unroll
    for (int q = 0; q < C::NI / 4; q++)
        unpack_w4(*reinterpret_cast<const uint4 *>(sb + (((nbase / 32 + q) * (C::BK / 32)) + kk / 32) * 512 + lane * 16),
                  &b[4 * q]);
}

struct PolicyW4Chn {
    static constexpr int kBytesNum = 1;
    static constexpr bool kPacked = true;
    template <class C> struct Frag {
        __device__ __forceinline__ void stage_begin(const Params &, int, int, int) {}
        __device__ __forceinline__ void load(uint32_t (&b)[C::NI][2], const uint8_t *sb, int nbase, int kk, int lane)
        {
            load_w4_frags<C>(b, sb, nbase, kk, lane);
        }
    };
    static __device__ __forceinline__ float epilogue(const Params &p, int32_t acc, int m, int n)
    {
        float t1 = __fmul_rn(__half2float(p.sw[n]), __int2float_rn(acc));
        // planted bugs (QV_MUTANTS builds only): rowsum_omitted, zp_sign
        float t2 = __fmul_rn(__half2float(p.sz[n]), QV_DMUT(rowsum_omitted) ? 0.0f : __int2float_rn(p.rowsum[m]));
        return __fmul_rn(row_scale(p, m), QV_DMUT(zp_sign) ? __fadd_rn(t1, t2) : __fsub_rn(t1, t2));
    }
};

} // namespace qvg

#endif
