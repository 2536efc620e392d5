/* Built instead of the gpu/ CUDA sources when nvcc is absent: no kernels, 0 devices. */
#include "qvet/gpu.h"

int qv_gpu_built(void) { return 0; }
int qv_gpu_device_count(void) { return 0; }
const char *qv_gpu_describe(void) { return "no device (qvet built without CUDA)"; }
