/* The small device ops the GPU engines need around the kernels of gpu_kernels.h / gpu_gemm.h
 * (not a public API: only gpu/engine_gpu.c uses them). All pointers are DEVICE pointers, FP16
 * values raw IEEE bits; calls are asynchronous on the default stream. Only built with CUDA. */
#ifndef QVET_GPU_ENGINE_OPS_H
#define QVET_GPU_ENGINE_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "qvet/fp16.h"
#include "qvet/status.h"

/* dt: the 16-bit type of every uint16_t array below (FP16, or BF16 for gpu-fp16 --dtype bf16);
 * "fp16(x)" below reads "rounded to dt" (RNE). */

/* x[t, :] = (float)table[tok[t], :] (16-bit embeddings -> FP32 residual stream) */
qv_status qv_gpu_embed_rows(qv_dtype16 dt, const uint16_t *table, const int32_t *tok, int T, int H, float *x);
/* x = x + (float)y (FP32 add), then, when round16, x = fp16(x) (RNE): ref-qoq's residual rounding */
qv_status qv_gpu_residual_add(qv_dtype16 dt, float *x, const uint16_t *y, size_t n, int round16);
/* y[m, n] = fp16((float)y[m, n] + bias[n]) (ref-qoq's bias rule: FP32 add, one rounding) */
qv_status qv_gpu_bias_add(qv_dtype16 dt, uint16_t *y, const float *bias, int M, int N);
/* y[r, :] = x[rows[r], :] (FP32 rows of H) */
qv_status qv_gpu_gather_rows(const float *x, const int32_t *rows, int R, int H, float *y);
/* atomicMin(flag, code) when any of x[0..n) is NaN or Inf */
qv_status qv_gpu_flag_nonfinite(const float *x, size_t n, int code, int *flag);
qv_status qv_gpu_copy_d2d(void *dst, const void *src, size_t bytes);

/* cuBLAS: y[M, N] = x[M, K] W[N, K]^T, dt inputs (CUDA_R_16F or CUDA_R_16BF), FP32 compute
 * (cublasGemmEx, CUBLAS_COMPUTE_32F), y dt (y_f32 = 0) or FP32. */
qv_status qv_gpu_blas_create(void **handle);
void qv_gpu_blas_destroy(void *handle);
qv_status qv_gpu_gemm_f16(void *handle, qv_dtype16 dt, const uint16_t *x, const uint16_t *W, int M, int N, int K, void *y,
                          int y_f32);

#endif
