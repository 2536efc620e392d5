/* qvet bench [--filter STR] --json F: GEMM benchmarks with baselines from the same run
 * (qv_bench_gemm, gpu/bench_gemm.cu). --filter keeps cases whose "layer M=..." name contains
 * STR (a plain substring). Without CUDA or a GPU: exit 2 with the reason. */
#include <string.h>

#include "cli.h"
#include "qvet/gpu.h"
#include "qvet/gpu_gemm.h"

int qv_cmd_bench(int argc, char **argv)
{
    const char *json = NULL, *filter = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
        else if (!strcmp(argv[i], "--filter") && i + 1 < argc) filter = argv[++i];
        else return qv_cli_usage_error("bench", "unknown or incomplete argument '%s'", argv[i]);
    }
    if (!json) return qv_cli_usage_error("bench", "--json F is required");
    if (qv_gpu_device_count() == 0)
        return qv_cli_report(qv_fail(QV_ERR_UNSUPPORTED, "bench: no GPU: %s", qv_gpu_describe()));
    qv_status st = qv_bench_gemm(json, filter);
    return st == QV_OK ? QV_EXIT_OK : qv_cli_report(st);
}
