// Small device ops of the GPU engines (gpu/engine_ops.h): embedding gather, residual add with
// ref-qoq's FP16 rounding, bias add, row gather, a non-finite flag, and the cuBLAS FP16 GEMM.
// Each is elementwise or a copy: memory-bound, one thread per element; every FP32 operation is
// the one the CPU engines do (explicit _rn intrinsics, no contraction), so they are bit-exact.
// The 16-bit ones are templates over T (__half, or __nv_bfloat16 for gpu-fp16 --dtype bf16,
// gpu/f16_types.cuh): the same FP32 operation, rounded to T.
#include <cublas_v2.h>
#include <cuda_fp16.h>

#include "f16_types.cuh"

#include "qv_cuda_check.h"

extern "C" {
#include "engine_ops.h"
}

namespace {

constexpr int kThreads = 256;

unsigned blocks_for(size_t n) { return (unsigned)((n + kThreads - 1) / kThreads); }

template <typename T> __global__ void embed_kernel(const T *table, const int32_t *tok, int T_, int H, float *x)
{
    size_t i = (size_t)blockIdx.x * kThreads + threadIdx.x;
    if (i >= (size_t)T_ * H) return;
    size_t t = i / H, c = i % H;
    x[i] = qv_f16t<T>::to_f(table[(size_t)tok[t] * H + c]);
}

template <typename T> __global__ void residual_kernel(float *x, const T *y, size_t n, int round16)
{
    size_t i = (size_t)blockIdx.x * kThreads + threadIdx.x;
    if (i >= n) return;
    float v = __fadd_rn(x[i], qv_f16t<T>::to_f(y[i]));
    x[i] = round16 ? qv_round16<T>(v) : v;
}

template <typename T> __global__ void bias_kernel(T *y, const float *b, int M, int N)
{
    size_t i = (size_t)blockIdx.x * kThreads + threadIdx.x;
    if (i >= (size_t)M * N) return;
    y[i] = qv_f16t<T>::rn(__fadd_rn(qv_f16t<T>::to_f(y[i]), b[i % N]));
}

__global__ void gather_kernel(const float *x, const int32_t *rows, int R, int H, float *y)
{
    size_t i = (size_t)blockIdx.x * kThreads + threadIdx.x;
    if (i >= (size_t)R * H) return;
    y[i] = x[(size_t)rows[i / H] * H + i % H];
}

__global__ void nonfinite_kernel(const float *x, size_t n, int code, int *flag)
{
    size_t i = (size_t)blockIdx.x * kThreads + threadIdx.x;
    if (i < n && !isfinite(x[i])) atomicMin(flag, code);
}

} // namespace

#define QV_LAUNCH_CHECK(what)                                                                      \
    do {                                                                                           \
        cudaError_t e_ = cudaGetLastError();                                                       \
        if (e_ != cudaSuccess) return qv_fail(QV_ERR_CUDA, "%s: launch: %s", what, cudaGetErrorString(e_)); \
    } while (0)

extern "C" qv_status qv_gpu_embed_rows(qv_dtype16 dt, const uint16_t *table, const int32_t *tok, int T, int H, float *x)
{
    if (dt == QV_DTYPE_BF16)
        embed_kernel<<<blocks_for((size_t)T * H), kThreads>>>((const __nv_bfloat16 *)table, tok, T, H, x);
    else
        embed_kernel<<<blocks_for((size_t)T * H), kThreads>>>((const __half *)table, tok, T, H, x);
    QV_LAUNCH_CHECK("embed_rows");
    return QV_OK;
}

extern "C" qv_status qv_gpu_residual_add(qv_dtype16 dt, float *x, const uint16_t *y, size_t n, int round16)
{
    if (dt == QV_DTYPE_BF16) residual_kernel<<<blocks_for(n), kThreads>>>(x, (const __nv_bfloat16 *)y, n, round16);
    else residual_kernel<<<blocks_for(n), kThreads>>>(x, (const __half *)y, n, round16);
    QV_LAUNCH_CHECK("residual_add");
    return QV_OK;
}

extern "C" qv_status qv_gpu_bias_add(qv_dtype16 dt, uint16_t *y, const float *bias, int M, int N)
{
    if (dt == QV_DTYPE_BF16) bias_kernel<<<blocks_for((size_t)M * N), kThreads>>>((__nv_bfloat16 *)y, bias, M, N);
    else bias_kernel<<<blocks_for((size_t)M * N), kThreads>>>((__half *)y, bias, M, N);
    QV_LAUNCH_CHECK("bias_add");
    return QV_OK;
}

extern "C" qv_status qv_gpu_gather_rows(const float *x, const int32_t *rows, int R, int H, float *y)
{
    gather_kernel<<<blocks_for((size_t)R * H), kThreads>>>(x, rows, R, H, y);
    QV_LAUNCH_CHECK("gather_rows");
    return QV_OK;
}

extern "C" qv_status qv_gpu_flag_nonfinite(const float *x, size_t n, int code, int *flag)
{
    nonfinite_kernel<<<blocks_for(n), kThreads>>>(x, n, code, flag);
    QV_LAUNCH_CHECK("flag_nonfinite");
    return QV_OK;
}

extern "C" qv_status qv_gpu_copy_d2d(void *dst, const void *src, size_t bytes)
{
    QV_CUDA_TRY(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice));
    return QV_OK;
}

extern "C" qv_status qv_gpu_blas_create(void **handle)
{
    cublasHandle_t h = nullptr;
    *handle = nullptr;
    QV_CUBLAS_TRY(cublasCreate(&h));
    *handle = h;
    return QV_OK;
}

extern "C" void qv_gpu_blas_destroy(void *handle)
{
    if (handle) cublasDestroy((cublasHandle_t)handle);
}

// Row-major y[M,N] = x[M,K] W[N,K]^T is, column-major, y^T[N,M] = W^T... i.e. op(A) = W (A = the
// column-major [K,N] view of W, transposed), op(B) = x^T (the [K,M] view of x), C = y^T [N,M].
extern "C" qv_status qv_gpu_gemm_f16(void *handle, qv_dtype16 dt, const uint16_t *x, const uint16_t *W, int M, int N,
                                     int K, void *y, int y_f32)
{
    float one = 1.0f, zero = 0.0f;
    cudaDataType_t t16 = dt == QV_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    QV_CUBLAS_TRY(cublasGemmEx((cublasHandle_t)handle, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, W, t16, K, x, t16, K,
                               &zero, y, y_f32 ? CUDA_R_32F : t16, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return QV_OK;
}
