/* qvet's GPU GEMM kernels (issue 7): W8A8, W4A8 per-channel and W4A8 progressive g128, on INT8
 * tensor cores (mma.sync m16n8k32, sm_80+), INT32 accumulation, FP32 epilogues in exactly the
 * order NUMERICS.md writes them, FP16 output with counted saturation.
 *
 * All pointers are DEVICE pointers (cudaMalloc'd; x and w 16-byte aligned). Row-major shapes:
 *   x      [M, K] int8   activations, per-token symmetric codes in [-127, 127]
 *   sa     [M]    fp32   per-token activation scale s_a
 *   rowsum [M]    int32  sum_k x[m, k] (per-channel W4 only: the zero-point correction)
 *   w8     [N, K] int8   W8A8 weights
 *   w4     N*K/2 u8      UINT4 codes packed by qv_w4_pack (qvet/qoq.h, docs/layout.md:
 *                        QServe's compute-aware reorder, 32x32 tiles of 512 bytes)
 *   sw, sz [N]    fp16   per-channel scale and scaled zero (sz = fp16(s_w * z)); W8A8: sw only
 *   s0     [N]    fp16   g128 level-1 scale
 *   s1,sz1 [K/128, N] u8 g128 level-2 scale (1..16) and scaled zero z*s1 (<= 240), packed by
 *                        qv_w4g128_pack_groupbytes (group-major, 32-channel blocks reordered)
 *   y      [M, N] fp16   output (raw IEEE bits)
 *   acc    [M, N] int32  debug entries (_acc): the integer accumulators, no epilogue
 *   d_sat  one device unsigned int: each call ADDS the number of outputs whose pre-rounding
 *          FP32 value had |v| > 65504 (written as +-65504); the caller zeroes and reads it.
 * Shape contract (checked at entry, QV_ERR_USAGE naming the violated rule): M >= 1; N >= 8 and
 * N % 8 == 0 (W4 kernels: N % 32 == 0, the packed layout's tile); K >= 32 and K % 32 == 0 (W8A8, per-channel: so K tails inside a tile exist);
 * g128: group == 128 and K % 128 == 0. K is bounded so the INT32 accumulator cannot overflow
 * (QV_QOQ_W8_KMAX, QV_QOQ_PC_KMAX, QV_QOQ_G128_KMAX of qvet/qoq.h).
 * `stream` is a cudaStream_t (NULL: the default stream). The calls are asynchronous: launch
 * errors are reported here, execution errors at the caller's next synchronization.
 * Without CUDA in the build every entry returns QV_ERR_UNSUPPORTED (after the shape check). */
#ifndef QVET_GPU_GEMM_H
#define QVET_GPU_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "qvet/status.h"

#ifdef __cplusplus
extern "C" {
#endif

qv_status qv_gpu_w8a8_gemm(const int8_t *x, const float *sa, const int8_t *w8, const uint16_t *sw,
                           uint16_t *y, unsigned int *d_sat, int M, int N, int K, void *stream);
qv_status qv_gpu_w8a8_gemm_acc(const int8_t *x, const int8_t *w8, int32_t *acc, int M, int N, int K,
                               void *stream);

qv_status qv_gpu_w4a8_chn_gemm(const int8_t *x, const float *sa, const int32_t *rowsum,
                               const uint8_t *w4, const uint16_t *sw, const uint16_t *sz, uint16_t *y,
                               unsigned int *d_sat, int M, int N, int K, void *stream);
qv_status qv_gpu_w4a8_chn_gemm_acc(const int8_t *x, const uint8_t *w4, int32_t *acc, int M, int N, int K,
                                   void *stream);

qv_status qv_gpu_w4a8_g128_gemm(const int8_t *x, const float *sa, const uint8_t *w4, const uint16_t *s0,
                                const uint8_t *s1, const uint8_t *sz1, uint16_t *y, unsigned int *d_sat,
                                int M, int N, int K, int group, void *stream);
qv_status qv_gpu_w4a8_g128_gemm_acc(const int8_t *x, const uint8_t *w4, const uint8_t *s1,
                                    const uint8_t *sz1, int32_t *acc, int M, int N, int K, int group,
                                    void *stream);

/* Test hook: launches (this process, all entries) that went to the decode kernel (M <= 16,
 * gpu/gemm_decode.cuh) and, of those, the ones split across blocks along K. Lets a test check
 * which path ran. Without CUDA both are 0. */
void qv_gpu_gemm_decode_stats(unsigned long *launches, unsigned long *split);

/* Test hooks of the sm_90a wgmma path (gpu/sm90a/gemm_wgmma.cu; QV_GEMM_VARIANT=wgmma, W4 formats,
 * M >= 64): launches of its kernel so far (this process), and its self-test: runs the kernel on
 * one known problem under each candidate shared-memory layout / descriptor interpretation, writes
 * a readable table to report (n bytes, NUL-terminated) and sets *chosen to the candidate the path
 * uses on this device (-1: none passed, the path stays off; -2: not applicable here: no sm_90
 * device or not built; report says why). Without CUDA: 0 launches, *chosen = -2. */
void qv_gpu_gemm_wgmma_stats(unsigned long *launches);
/* 1 when the default launch rule (QV_GEMM_VARIANT unset) runs a W4 GEMM of this shape (g128: 1 for
 * the progressive format, 0 for per-channel) on the wgmma kernel on this device: the shapes where
 * it was measured faster (gpu/gemm_launch.cu, docs/gpu-gemm.md), an sm_90 device and a layout that
 * passed its self-test. Tests check the path that ran against it. 0 without CUDA. */
int qv_gpu_gemm_default_wgmma(int g128, int M, int N);
/* Test hooks of the warp-specialized sm_90a kernel (gpu/sm90a/gemm_wgmma_ws.cu; opt-in
 * QV_GEMM_VARIANT=wgmma_ws, W4 formats, M >= 64): launches of it so far (this process; not
 * counted by qv_gpu_gemm_wgmma_stats), and 1 when that variant would run it on this device (an
 * sm_90 device whose wgmma self-test chose the 128-byte-swizzle layout the kernel hard-codes;
 * runs the self-test on first use). Without CUDA: 0 and 0. */
void qv_gpu_gemm_wgmma_ws_stats(unsigned long *launches);
int qv_gpu_gemm_wgmma_ws_usable(void);
qv_status qv_gpu_wgmma_probe(char *report, size_t n, int *chosen);

/* Benchmarks (issue 7): every Llama-3-8B layer shape x M in {1,16,64,256,1024,4096,8192}: the
 * three kernels above vs cuBLAS FP16 (cublasGemmEx) and cuBLASLt INT8, plus a device-to-device
 * copy, weights rotated through enough buffers to exceed L2. Cases whose "kernel layer M=..."
 * name does not contain `filter` (NULL: all) are skipped. Prints a table to stdout and writes
 * JSON to json_path. */
qv_status qv_bench_gemm(const char *json_path, const char *filter);

#ifdef __cplusplus
}
#endif

#endif
