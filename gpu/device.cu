// Device discovery for qvet's GPU engines and kernel tests. A machine without a GPU (CI)
// has the CUDA runtime but no driver/device: cudaGetDeviceCount then returns an error, which
// here means "0 devices" so that callers skip visibly instead of failing.
#include <cstdio>

#include <cuda_runtime.h>

extern "C" {
#include "qvet/gpu.h"
}

static char qv_gpu_desc[512];

extern "C" int qv_gpu_built(void) { return 1; }

extern "C" int qv_gpu_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); // clear the sticky "no device" error
        return 0;
    }
    return n;
}

extern "C" const char *qv_gpu_describe(void)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        snprintf(qv_gpu_desc, sizeof qv_gpu_desc, "no device (%s)",
                 e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        cudaGetLastError();
        return qv_gpu_desc;
    }
    cudaDeviceProp p;
    cudaGetDeviceProperties(&p, 0);
    snprintf(qv_gpu_desc, sizeof qv_gpu_desc, "%.256s, sm_%d%d, %.1f GiB", p.name, p.major, p.minor,
             (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    return qv_gpu_desc;
}
