// Device-memory helpers for C callers (include/qvet/gpu_mem.h).
#include "qv_cuda_check.h"

extern "C" {
#include "qvet/gpu_mem.h"
}

extern "C" qv_status qv_gpu_alloc(void **dptr, size_t bytes, const char *what)
{
    *dptr = nullptr;
    cudaError_t e = cudaMalloc(dptr, bytes ? bytes : 1);
    if (e != cudaSuccess)
        return qv_fail(QV_ERR_CUDA, "%s:%d: cudaMalloc(%zu bytes for %s): %s", __FILE__, __LINE__, bytes, what,
                       cudaGetErrorString(e));
    return QV_OK;
}
extern "C" void qv_gpu_free(void *dptr)
{
    if (dptr) cudaFree(dptr);
}
extern "C" qv_status qv_gpu_upload(void *dst, const void *src, size_t bytes)
{
    QV_CUDA_TRY(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
    return QV_OK;
}
extern "C" qv_status qv_gpu_download(void *dst, const void *src, size_t bytes)
{
    QV_CUDA_TRY(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
    return QV_OK;
}
extern "C" qv_status qv_gpu_memset(void *dst, int byte, size_t bytes)
{
    QV_CUDA_TRY(cudaMemset(dst, byte, bytes));
    return QV_OK;
}
extern "C" qv_status qv_gpu_sync(void)
{
    QV_CUDA_TRY(cudaDeviceSynchronize());
    QV_CUDA_TRY(cudaGetLastError());
    return QV_OK;
}
