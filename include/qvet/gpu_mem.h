/* Minimal device-memory helpers so that C code (tests, the CLI) can drive the GPU kernels
 * without including CUDA headers. Without CUDA every call returns QV_ERR_UNSUPPORTED. */
#ifndef QVET_GPU_MEM_H
#define QVET_GPU_MEM_H

#include <stddef.h>

#include "qvet/status.h"

#ifdef __cplusplus
extern "C" {
#endif

qv_status qv_gpu_alloc(void **dptr, size_t bytes, const char *what);
void qv_gpu_free(void *dptr); /* NULL is fine */
qv_status qv_gpu_upload(void *dst, const void *src, size_t bytes);
qv_status qv_gpu_download(void *dst, const void *src, size_t bytes);
qv_status qv_gpu_memset(void *dst, int byte, size_t bytes);
/* Waits for the device and reports any asynchronous kernel error. */
qv_status qv_gpu_sync(void);

#ifdef __cplusplus
}
#endif

#endif
