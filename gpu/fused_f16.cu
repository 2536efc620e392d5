// The 16-bit-float row producers of gpu-fp16 (issue 8): RMSNorm -> FP16/BF16 and SiLU*mul ->
// FP16/BF16, one template over the element type T (gpu/f16_types.cuh). The A8 producers are
// gpu/fused_quant.cu.
// What: one block (256 threads) per row. RMSNorm: y = rn_T(w[k] * (x[k] * r)), r = 1/sqrtf((float)
// (sum_k x^2 / K) + eps) with the sum of squares in FP64 (as ref-fp32), reduced over the block
// (warp shuffles, then one value per warp); SiLU*mul: y = rn_T(g / (1 + expf(-g)) * u) with g, u
// read as T from gu [M, 2I] (gate | up). Every product/sum is an explicit IEEE-rounded op in the
// reference's order (the file is compiled with --fmad=false), so the only differences from the
// CPU references (qv_ref_rmsnorm_rows / qv_ref_silu_mul_rows, then qv_round_fp16 / qv_round_bf16)
// are the FP64 sum's order and expf (CUDA <= 2 ulp vs glibc): the bound is the FP16 one with
// T's unit roundoff (docs/bounds.md, "GPU kernels").
#include "f16_types.cuh"
#include "producer_contract.cuh"
#include "qv_cuda_check.h"

extern "C" {
#include "qvet/gpu_kernels.h"
}

namespace {

constexpr int kThreads = 256;

__device__ double row_sum(double v, double *red)
{
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int w = threadIdx.x / 32, l = threadIdx.x % 32;
    if (l == 0) red[w] = v;
    __syncthreads();
    v = l < kThreads / 32 ? red[l] : 0.0;
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) rmsnorm16_kernel(const float *x, const float *w, float eps, int K, T *y)
{
    __shared__ double red[kThreads / 32];
    size_t m = blockIdx.x;
    const float *xr = x + m * K;
    double ss = 0.0;
    for (int k = threadIdx.x; k < K; k += kThreads) ss += (double)xr[k] * (double)xr[k];
    ss = row_sum(ss, red);
    float ms = (float)(ss / K);
    float r = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(ms, eps)));
    for (int k = threadIdx.x; k < K; k += kThreads) y[m * K + k] = qv_f16t<T>::rn(__fmul_rn(w[k], __fmul_rn(xr[k], r)));
}

template <typename T>
__global__ void __launch_bounds__(kThreads) silu_mul16_kernel(const T *gu, int I, T *y)
{
    size_t m = blockIdx.x;
    const T *g = gu + m * 2 * I, *u = g + I;
    for (int k = threadIdx.x; k < I; k += kThreads) {
        float gf = qv_f16t<T>::to_f(g[k]), uf = qv_f16t<T>::to_f(u[k]);
        y[m * I + k] = qv_f16t<T>::rn(__fmul_rn(__fdiv_rn(gf, __fadd_rn(1.0f, expf(-gf))), uf));
    }
}

qv_status launched(const char *what, int M, int K)
{
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return qv_fail(QV_ERR_CUDA, "%s: launch (M %d, K %d): %s", what, M, K, cudaGetErrorString(e));
    return QV_OK;
}

template <typename T>
qv_status rmsnorm16(const char *what, const float *x, const float *w, float eps, int M, int K, uint16_t *y,
                    void *stream)
{
    QV_TRY(qv_producer_check_mk(what, M, K));
    rmsnorm16_kernel<T><<<M, kThreads, 0, (cudaStream_t)stream>>>(x, w, eps, K, (T *)y);
    return launched(what, M, K);
}

template <typename T>
qv_status silu_mul16(const char *what, const uint16_t *gu, int M, int I, uint16_t *y, void *stream)
{
    QV_TRY(qv_producer_check_mk(what, M, I));
    silu_mul16_kernel<T><<<M, kThreads, 0, (cudaStream_t)stream>>>((const T *)gu, I, (T *)y);
    return launched(what, M, I);
}

} // namespace

extern "C" qv_status qv_gpu_rmsnorm_f16(const float *x, const float *w, float eps, int M, int K, uint16_t *y,
                                        void *stream)
{
    return rmsnorm16<__half>("rmsnorm_f16", x, w, eps, M, K, y, stream);
}

extern "C" qv_status qv_gpu_rmsnorm_bf16(const float *x, const float *w, float eps, int M, int K, uint16_t *y,
                                         void *stream)
{
    return rmsnorm16<__nv_bfloat16>("rmsnorm_bf16", x, w, eps, M, K, y, stream);
}

extern "C" qv_status qv_gpu_silu_mul_f16(const uint16_t *gu, int M, int I, uint16_t *y, void *stream)
{
    return silu_mul16<__half>("silu_mul_f16", gu, M, I, y, stream);
}

extern "C" qv_status qv_gpu_silu_mul_bf16(const uint16_t *gu, int M, int I, uint16_t *y, void *stream)
{
    return silu_mul16<__nv_bfloat16>("silu_mul_bf16", gu, M, I, y, stream);
}
