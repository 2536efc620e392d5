// Host launch code of qvet's GEMM kernels (the device code is in gemm_mma_core.cuh and the
// three policy headers). Checks the shape contract (gemm_contract.h) and pointers at entry,
// picks a tile configuration by M, launches, and turns CUDA errors into qv_status.
//
// Tile configurations (named constants, chosen by M):
//   CfgDecode  (M <= 16):   BM 16,  BN 32,  BK 256, 1x1 warps x 4-way K split, 4 stages:
//              the weights stream once; N/32 blocks fill the 132 SMs for N >= 4096, and the
//              K split gives each of the 4 warps independent mma work on the same tile.
//   CfgSmall   (M <= 64):   BM 64,  BN 32,  BK 128, 2x1 warps x 2-way K split, 4 stages.
//   CfgMedium  (M <= 256):  BM 128, BN 64,  BK 64,  2x2 warps, 4 stages (warp tile 64x32).
//   CfgLarge   (M > 256):   BM 128, BN 128, BK 64,  2x2 warps, 4 stages (warp tile 64x64).
#include <cstdint>

#include "qv_cuda_check.h"
#include "gemm_w8a8.cuh"
#include "gemm_w4a8_chn.cuh"
#include "gemm_w4a8_g128.cuh"

extern "C" {
#include "qvet/gpu_gemm.h"
#include "gemm_contract.h"
}

namespace {

using CfgDecode = qvg::Cfg<16, 32, 256, 1, 1, 4, 4>;
using CfgSmall = qvg::Cfg<64, 32, 128, 2, 1, 2, 4>;
using CfgMedium = qvg::Cfg<128, 64, 64, 2, 2, 1, 4>;
using CfgLarge = qvg::Cfg<128, 128, 64, 2, 2, 1, 4>;

template <class C, class P, bool ACC> qv_status launch_cfg(const qvg::Params &p, cudaStream_t st)
{
    constexpr int smem = qvg::Smem<C, P>::BYTES;
    auto kern = qvg::gemm_kernel<C, P, ACC>;
    static bool attr_set = false; // per instantiation; setting it twice is harmless
    if (!attr_set) {
        QV_CUDA_TRY(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        attr_set = true;
    }
    dim3 grid((p.N + C::BN - 1) / C::BN, (p.M + C::BM - 1) / C::BM);
    if (grid.y > 65535u) return qv_fail(QV_ERR_USAGE, "gemm: M=%d needs more than 65535 row tiles", p.M);
    kern<<<grid, C::THREADS, smem, st>>>(p);
    QV_CUDA_TRY(cudaGetLastError());
    return QV_OK;
}

template <class P, bool ACC> qv_status launch(const qvg::Params &p, void *stream)
{
    cudaStream_t st = static_cast<cudaStream_t>(stream);
    if (p.M <= 16) return launch_cfg<CfgDecode, P, ACC>(p, st);
    if (p.M <= 64) return launch_cfg<CfgSmall, P, ACC>(p, st);
    if (p.M <= 256) return launch_cfg<CfgMedium, P, ACC>(p, st);
    return launch_cfg<CfgLarge, P, ACC>(p, st);
}

qvg::Params make_params(const int8_t *x, const void *w, int M, int N, int K)
{
    qvg::Params p{};
    p.x = x;
    p.w = static_cast<const uint8_t *>(w);
    p.M = M;
    p.N = N;
    p.K = K;
    return p;
}

#define QV_PTR(kind, p, align) QV_TRY(qv_gemm_check_ptr(kind, p, #p, align))

} // namespace

extern "C" qv_status qv_gpu_w8a8_gemm(const int8_t *x, const float *sa, const int8_t *w8, const uint16_t *sw,
                                      uint16_t *y, unsigned int *d_sat, int M, int N, int K, void *stream)
{
    const int k = QV_GEMM_W8A8;
    QV_TRY(qv_gemm_check_shape(k, M, N, K, 0));
    QV_PTR(k, x, 16); QV_PTR(k, w8, 16); QV_PTR(k, sa, 4); QV_PTR(k, sw, 2); QV_PTR(k, y, 4); QV_PTR(k, d_sat, 4);
    qvg::Params p = make_params(x, w8, M, N, K);
    p.sa = sa;
    p.sw = reinterpret_cast<const __half *>(sw);
    p.y = reinterpret_cast<__half *>(y);
    p.sat = d_sat;
    return launch<qvg::PolicyW8A8, false>(p, stream);
}

extern "C" qv_status qv_gpu_w8a8_gemm_acc(const int8_t *x, const int8_t *w8, int32_t *acc, int M, int N, int K,
                                          void *stream)
{
    const int k = QV_GEMM_W8A8;
    QV_TRY(qv_gemm_check_shape(k, M, N, K, 0));
    QV_PTR(k, x, 16); QV_PTR(k, w8, 16); QV_PTR(k, acc, 8);
    qvg::Params p = make_params(x, w8, M, N, K);
    p.acc = acc;
    return launch<qvg::PolicyW8A8, true>(p, stream);
}

extern "C" qv_status qv_gpu_w4a8_chn_gemm(const int8_t *x, const float *sa, const int32_t *rowsum,
                                          const uint8_t *w4, const uint16_t *sw, const uint16_t *sz, uint16_t *y,
                                          unsigned int *d_sat, int M, int N, int K, void *stream)
{
    const int k = QV_GEMM_W4A8_CHN;
    QV_TRY(qv_gemm_check_shape(k, M, N, K, 0));
    QV_PTR(k, x, 16); QV_PTR(k, w4, 16); QV_PTR(k, sa, 4); QV_PTR(k, rowsum, 4); QV_PTR(k, sw, 2);
    QV_PTR(k, sz, 2); QV_PTR(k, y, 4); QV_PTR(k, d_sat, 4);
    qvg::Params p = make_params(x, w4, M, N, K);
    p.sa = sa;
    p.rowsum = rowsum;
    p.sw = reinterpret_cast<const __half *>(sw);
    p.sz = reinterpret_cast<const __half *>(sz);
    p.y = reinterpret_cast<__half *>(y);
    p.sat = d_sat;
    return launch<qvg::PolicyW4Chn, false>(p, stream);
}

extern "C" qv_status qv_gpu_w4a8_chn_gemm_acc(const int8_t *x, const uint8_t *w4, int32_t *acc, int M, int N,
                                              int K, void *stream)
{
    const int k = QV_GEMM_W4A8_CHN;
    QV_TRY(qv_gemm_check_shape(k, M, N, K, 0));
    QV_PTR(k, x, 16); QV_PTR(k, w4, 16); QV_PTR(k, acc, 8);
    qvg::Params p = make_params(x, w4, M, N, K);
    p.acc = acc;
    return launch<qvg::PolicyW4Chn, true>(p, stream);
}

extern "C" qv_status qv_gpu_w4a8_g128_gemm(const int8_t *x, const float *sa, const uint8_t *w4, const uint16_t *s0,
                                           const uint8_t *s1, const uint8_t *sz1, uint16_t *y, unsigned int *d_sat,
                                           int M, int N, int K, int group, void *stream)
{
    const int k = QV_GEMM_W4A8_G128;
    QV_TRY(qv_gemm_check_shape(k, M, N, K, group));
    QV_PTR(k, x, 16); QV_PTR(k, w4, 16); QV_PTR(k, sa, 4); QV_PTR(k, s0, 2); QV_PTR(k, s1, 1);
    QV_PTR(k, sz1, 1); QV_PTR(k, y, 4); QV_PTR(k, d_sat, 4);
    qvg::Params p = make_params(x, w4, M, N, K);
    p.sa = sa;
    p.sw = reinterpret_cast<const __half *>(s0);
    p.s1 = s1;
    p.sz1 = sz1;
    p.y = reinterpret_cast<__half *>(y);
    p.sat = d_sat;
    return launch<qvg::PolicyW4G128, false>(p, stream);
}

extern "C" qv_status qv_gpu_w4a8_g128_gemm_acc(const int8_t *x, const uint8_t *w4, const uint8_t *s1,
                                               const uint8_t *sz1, int32_t *acc, int M, int N, int K, int group,
                                               void *stream)
{
    const int k = QV_GEMM_W4A8_G128;
    QV_TRY(qv_gemm_check_shape(k, M, N, K, group));
    QV_PTR(k, x, 16); QV_PTR(k, w4, 16); QV_PTR(k, s1, 1); QV_PTR(k, sz1, 1); QV_PTR(k, acc, 8);
    qvg::Params p = make_params(x, w4, M, N, K);
    p.s1 = s1;
    p.sz1 = sz1;
    p.acc = acc;
    return launch<qvg::PolicyW4G128, true>(p, stream);
}
