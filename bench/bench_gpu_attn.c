/* bench_gpu_attn [JSON]: KV4 vs FP16-KV decode attention vs D2D copy, fused A8 producers
 * (qv_bench_attn, gpu/bench_attn.cu). Without CUDA or a device: says so, exit 2. */
#include <stdio.h>

#include "qvet/gpu.h"
#include "qvet/gpu_kernels.h"

int main(int argc, char **argv)
{
    const char *json = argc > 1 ? argv[1] : "bench_gpu_attn.json";
    if (qv_gpu_device_count() == 0) {
        fprintf(stderr, "bench_gpu_attn: no GPU: %s\n", qv_gpu_describe());
        return 2;
    }
    qv_status st = qv_bench_attn(json);
    if (st != QV_OK) {
        fprintf(stderr, "bench_gpu_attn: %s\n", qv_last_error());
        return 3;
    }
    return 0;
}
