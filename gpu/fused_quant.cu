// Fused row producers (issue 8): RMSNorm + A8, SiLU*mul + A8, standalone A8, and their FP16
// variants for gpu-fp16.
// What: the A8 producers keep each row in registers, spread over up to 1024 threads (kernels and
// design: fused_a8_rows.cuh). The _f16 variants: one block (256 threads) per row, the row's FP32
// values v produced once into dynamic shared memory (K floats, opted in above 48 KiB). Either way
// the row is read from global memory once and the codes written once (memory-bound: the
// benchmark reports it against the D2D copy).
// Numerics (NUMERICS.md, A8): inv = 127/amax, q = clamp(rne(v*inv), -127, 127) (__float2int_rn),
// s_a = amax/127 (IEEE division), rowsum = exact INT32 sum of the codes; all-zero row: codes 0,
// s_a = 1. The file is compiled with --fmad=false and every product/sum below is a plain
// IEEE-rounded op in the reference's order, so given the same v the codes are bit-identical.
// RMSNorm's sum of squares is accumulated in FP64 (as ref-fp32 does): its order differs from the
// reference's sequential loop, but the FP64 error (~K*2^-53) rarely moves the FP32 rounding of
// the mean; the test counts the rare code that differs under NUMERICS.md's tie rule.
// SiLU uses expf (CUDA: <= 2 ulp), the reference glibc's expf: v may differ by a few ulp, again
// counted as ties when a code differs. Reference: include/qvet/kernels_ref.h.
#include <cuda_fp16.h>

#include "qv_cuda_check.h"
#ifdef QV_MUTANTS
extern "C" {
#include "qvet/mutant.h"
}
#endif

extern "C" {
#include "qvet/gpu_kernels.h"
}

namespace {

constexpr int kThreads = 256;

__device__ float block_max(float v, float *red)
{
    for (int o = 16; o; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    int w = threadIdx.x / 32, l = threadIdx.x % 32;
    __syncthreads();
    if (l == 0) red[w] = v;
    __syncthreads();
    v = l < kThreads / 32 ? red[l] : 0.0f;
    for (int o = 16; o; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ int block_sum_i(int v, int *red)
{
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int w = threadIdx.x / 32, l = threadIdx.x % 32;
    __syncthreads();
    if (l == 0) red[w] = v;
    __syncthreads();
    v = l < kThreads / 32 ? red[l] : 0;
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ double block_sum_d(double v, double *red)
{
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int w = threadIdx.x / 32, l = threadIdx.x % 32;
    __syncthreads();
    if (l == 0) red[w] = v;
    __syncthreads();
    v = l < kThreads / 32 ? red[l] : 0.0;
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// The A8 tail shared by all producers: v[0..K) in shared memory.
__device__ void a8_from_smem(const float *v, int K, int8_t *q, float *s_a, int32_t *rowsum, float *redf, int *redi)
{
    float amax = 0.0f;
    for (int k = threadIdx.x; k < K; k += kThreads) amax = fmaxf(amax, fabsf(v[k]));
    amax = block_max(amax, redf);
    int sum = 0;
    if (amax == 0.0f) {
        for (int k = threadIdx.x; k < K; k += kThreads) q[k] = 0;
    } else {
        float inv = __fdiv_rn(127.0f, amax);
        for (int k = threadIdx.x; k < K; k += kThreads) {
            int c = __float2int_rn(__fmul_rn(v[k], inv));
            c = c < -127 ? -127 : c > 127 ? 127 : c;
            q[k] = (int8_t)c;
            sum += c;
        }
    }
    sum = block_sum_i(sum, redi);
    if (threadIdx.x == 0) {
        s_a[0] = amax == 0.0f ? 1.0f : __fdiv_rn(amax, 127.0f);
        if (rowsum) rowsum[0] = sum;
    }
}

template <bool A8>
__global__ void rmsnorm_kernel(const float *x, const float *w, float eps, int K, int8_t *q, float *s_a,
                               int32_t *rowsum, __half *y)
{
    extern __shared__ float v[];
    __shared__ double redd[kThreads / 32];
    __shared__ float redf[kThreads / 32];
    __shared__ int redi[kThreads / 32];
    size_t m = blockIdx.x;
    const float *xr = x + m * K;
    double ss = 0.0;
    for (int k = threadIdx.x; k < K; k += kThreads) {
        float a = xr[k];
        v[k] = a;
        ss += (double)a * (double)a;
    }
    ss = block_sum_d(ss, redd);
    float ms = (float)(ss / K);
    float r = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(ms, eps)));
    for (int k = threadIdx.x; k < K; k += kThreads) {
        float t = __fmul_rn(w[k], __fmul_rn(v[k], r));
        if (A8) v[k] = t;
        else y[m * K + k] = __float2half_rn(t);
    }
    if (!A8) return;
    __syncthreads();
    a8_from_smem(v, K, q + m * K, s_a + m, rowsum ? rowsum + m : nullptr, redf, redi);
}

__device__ __forceinline__ float silu_mul(float g, float u)
{
    return __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u);
}

template <bool A8>
__global__ void silu_mul_kernel(const __half *gu, int I, int8_t *q, float *s_a, int32_t *rowsum, __half *y)
{
    extern __shared__ float v[];
    __shared__ float redf[kThreads / 32];
    __shared__ int redi[kThreads / 32];
    size_t m = blockIdx.x;
    const __half *g = gu + m * 2 * I, *u = g + I;
    for (int k = threadIdx.x; k < I; k += kThreads) {
        float t = silu_mul(__half2float(g[k]), __half2float(u[k]));
        if (A8) v[k] = t;
        else y[m * I + k] = __float2half_rn(t);
    }
    if (!A8) return;
    __syncthreads();
    a8_from_smem(v, I, q + m * I, s_a + m, rowsum ? rowsum + m : nullptr, redf, redi);
}

constexpr int kMaxK = 48 * 1024; // 192 KiB of shared memory per row at most

qv_status check_mk(const char *what, int M, int K)
{
    if (M < 1 || K < 1 || K > kMaxK)
        return qv_fail(QV_ERR_USAGE, "%s: rows %d and width %d must be >= 1 (width <= %d)", what, M, K, kMaxK);
    return QV_OK;
}

#ifdef QV_MUTANTS
// The planted bug engine_a8_token (QV_MUTANTS builds only; gpu-qoq's counterpart of ref-qoq's):
// row t's A8 scale replaced by row t-1's after the producer ran. One thread: a bug, not a path.
__global__ void mut_shift_scales(float *s_a, int M)
{
    for (int t = M - 1; t > 0; t--) s_a[t] = s_a[t - 1];
}
#endif

// After an A8 producer: nothing, except in a mutants build with engine_a8_token selected.
qv_status a8_scales_done(float *s_a, int M, cudaStream_t s)
{
#ifdef QV_MUTANTS
    if (QV_MUT(engine_a8_token)) {
        mut_shift_scales<<<1, 1, 0, s>>>(s_a, M);
        QV_CUDA_TRY(cudaGetLastError());
    }
#else
    (void)s_a, (void)M, (void)s;
#endif
    return QV_OK;
}

template <typename F, typename... A>
qv_status launch_rows(F kernel, const char *what, int M, int K, cudaStream_t s, size_t smem_per_k, A... args)
{
    size_t smem = smem_per_k * (size_t)K;
    if (smem > 48 * 1024) QV_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    kernel<<<M, kThreads, smem, s>>>(args...);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return qv_fail(QV_ERR_CUDA, "%s: launch (M %d, K %d): %s", what, M, K, cudaGetErrorString(e));
    return QV_OK;
}

} // namespace

#include "fused_a8_rows.cuh"

extern "C" qv_status qv_gpu_quant_a8(const uint16_t *x, int M, int K, int8_t *q, float *s_a, int32_t *rowsum,
                                     void *stream)
{
    QV_TRY(check_mk("quant_a8", M, K));
    QV_TRY(a8rows::launch("quant_a8", a8rows::SrcF16{(const __half *)x}, a8rows::aligned(x, 16), M, K, q, s_a,
                          rowsum, (cudaStream_t)stream));
    return a8_scales_done(s_a, M, (cudaStream_t)stream);
}

extern "C" qv_status qv_gpu_rmsnorm_a8(const float *x, const float *w, float eps, int M, int K, int8_t *q,
                                       float *s_a, int32_t *rowsum, void *stream)
{
    QV_TRY(check_mk("rmsnorm_a8", M, K));
    QV_TRY(a8rows::launch("rmsnorm_a8", a8rows::SrcRms{x, w, eps}, a8rows::aligned(x, 16), M, K, q, s_a, rowsum,
                          (cudaStream_t)stream));
    return a8_scales_done(s_a, M, (cudaStream_t)stream);
}

extern "C" qv_status qv_gpu_rmsnorm_f16(const float *x, const float *w, float eps, int M, int K, uint16_t *y,
                                        void *stream)
{
    QV_TRY(check_mk("rmsnorm_f16", M, K));
    return launch_rows(rmsnorm_kernel<false>, "rmsnorm_f16", M, K, (cudaStream_t)stream, sizeof(float), x, w, eps,
                       K, (int8_t *)nullptr, (float *)nullptr, (int32_t *)nullptr, (__half *)y);
}

extern "C" qv_status qv_gpu_silu_mul_a8(const uint16_t *gu, int M, int I, int8_t *q, float *s_a, int32_t *rowsum,
                                        void *stream)
{
    QV_TRY(check_mk("silu_mul_a8", M, I));
    QV_TRY(a8rows::launch("silu_mul_a8", a8rows::SrcSilu{(const __half *)gu}, a8rows::aligned(gu, 16), M, I, q, s_a,
                          rowsum, (cudaStream_t)stream));
    return a8_scales_done(s_a, M, (cudaStream_t)stream);
}

extern "C" qv_status qv_gpu_silu_mul_f16(const uint16_t *gu, int M, int I, uint16_t *y, void *stream)
{
    QV_TRY(check_mk("silu_mul_f16", M, I));
    return launch_rows(silu_mul_kernel<false>, "silu_mul_f16", M, I, (cudaStream_t)stream, 0, (const __half *)gu, I,
                       (int8_t *)nullptr, (float *)nullptr, (int32_t *)nullptr, (__half *)y);
}
