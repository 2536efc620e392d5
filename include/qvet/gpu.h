/* The GPU side's entry points that the rest of qvet may call whether or not it was built with
 * CUDA: without CUDA (or without a device) they answer QV_ERR_UNSUPPORTED / 0 devices, and
 * callers skip GPU cases *visibly* ("SKIP gpu: no device"). */
#ifndef QVET_GPU_H
#define QVET_GPU_H

#include "qvet/status.h"

/* 1 if this build contains the CUDA kernels */
int qv_gpu_built(void);
/* Number of usable CUDA devices (0 without CUDA, driver or device). Never fails. */
int qv_gpu_device_count(void);
/* One line naming device 0 ("NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB") or why there is none. */
const char *qv_gpu_describe(void);

#endif
