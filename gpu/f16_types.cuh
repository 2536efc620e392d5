// The two 16-bit float types of the 16-bit kernels (gpu-fp16's FP16 and BF16 paths): one traits
// struct per type, so each kernel is written once as a template over T (__half or __nv_bfloat16)
// and stays the same IEEE expression in both; only the storage type and its rounding change.
// to_f: exact widening; rn: FP32 -> T round to nearest even (IEEE overflow to +-Inf, as the CPU
// references' qv_fp32_to_fp16 / qv_fp32_to_bf16); unpack8: eight values from one 16-byte load.
#ifndef QV_GPU_F16_TYPES_CUH
#define QV_GPU_F16_TYPES_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>

template <typename T> struct qv_f16t;

template <> struct qv_f16t<__half> {
    static __device__ __forceinline__ float to_f(__half h) { return __half2float(h); }
    static __device__ __forceinline__ __half rn(float f) { return __float2half_rn(f); }
    static __device__ __forceinline__ void unpack8(uint4 w, float out[8])
    {
        const __half2 *h = (const __half2 *)&w;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            float2 f2 = __half22float2(h[j]);
            out[2 * j] = f2.x, out[2 * j + 1] = f2.y;
        }
    }
};

template <> struct qv_f16t<__nv_bfloat16> {
    static __device__ __forceinline__ float to_f(__nv_bfloat16 h) { return __bfloat162float(h); }
    static __device__ __forceinline__ __nv_bfloat16 rn(float f) { return __float2bfloat16_rn(f); }
    static __device__ __forceinline__ void unpack8(uint4 w, float out[8])
    {
        const __nv_bfloat162 *h = (const __nv_bfloat162 *)&w;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            float2 f2 = __bfloat1622float2(h[j]);
            out[2 * j] = f2.x, out[2 * j + 1] = f2.y;
        }
    }
};

// FP32 value rounded through T and back.
template <typename T> __device__ __forceinline__ float qv_round16(float f)
{
    return qv_f16t<T>::to_f(qv_f16t<T>::rn(f));
}

#endif
