// One checking macro for CUDA / cuBLAS calls in qvet's host code: a failure becomes a qv_status
// (QV_ERR_CUDA) whose message names the file:line, the call and the runtime's own words.
// Library code never aborts (STYLE.md), so these return from the enclosing function.
#ifndef QV_CUDA_CHECK_H
#define QV_CUDA_CHECK_H

#include <cuda_runtime.h>

extern "C" {
#include "qvet/status.h"
}

#define QV_CUDA_TRY(call)                                                                          \
    do {                                                                                           \
        cudaError_t qv_e_ = (call);                                                                \
        if (qv_e_ != cudaSuccess)                                                                  \
            return qv_fail(QV_ERR_CUDA, "%s:%d: %s: %s", __FILE__, __LINE__, #call,                \
                           cudaGetErrorString(qv_e_));                                             \
    } while (0)

// cuBLAS / cuBLASLt status (an int-like enum; 0 is success for both)
#define QV_CUBLAS_TRY(call)                                                                        \
    do {                                                                                           \
        int qv_s_ = (int)(call);                                                                   \
        if (qv_s_ != 0)                                                                            \
            return qv_fail(QV_ERR_CUDA, "%s:%d: %s: cuBLAS status %d", __FILE__, __LINE__, #call,  \
                           qv_s_);                                                                 \
    } while (0)

#endif
