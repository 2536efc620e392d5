/* Device-memory helpers of a build without CUDA: nothing to allocate. */
#include "qvet/gpu_mem.h"

qv_status qv_gpu_alloc(void **dptr, size_t bytes, const char *what)
{
    (void)bytes;
    *dptr = NULL;
    return qv_fail(QV_ERR_UNSUPPORTED, "cannot allocate device memory for %s: qvet was built without CUDA", what);
}
void qv_gpu_free(void *dptr) { (void)dptr; }
qv_status qv_gpu_upload(void *dst, const void *src, size_t bytes)
{
    (void)dst; (void)src; (void)bytes;
    return qv_fail(QV_ERR_UNSUPPORTED, "qvet was built without CUDA");
}
qv_status qv_gpu_download(void *dst, const void *src, size_t bytes)
{
    (void)dst; (void)src; (void)bytes;
    return qv_fail(QV_ERR_UNSUPPORTED, "qvet was built without CUDA");
}
qv_status qv_gpu_memset(void *dst, int byte, size_t bytes)
{
    (void)dst; (void)byte; (void)bytes;
    return qv_fail(QV_ERR_UNSUPPORTED, "qvet was built without CUDA");
}
qv_status qv_gpu_sync(void) { return qv_fail(QV_ERR_UNSUPPORTED, "qvet was built without CUDA"); }
