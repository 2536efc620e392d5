/* qvet bench [--filter RE] --json F: GEMM benchmarks with baselines from the same run
 * (qv_bench_gemm, gpu/bench_gemm.cu), then the KV4 decode attention and fused-producer
 * benchmarks (qv_bench_attn_into, gpu/bench_attn.cu) added to the same JSON as the arrays
 * "attention" and "fused". --filter keeps cases whose name matches RE (a POSIX extended regex searched in the name,
 * so a plain string is a substring; gpu/bench_filter.h):
 * GEMM "layer M=...", attention "attn_kv4 batch=B ctx=C", producers "rmsnorm_a8 K=4096 M=1024".
 * The GEMM half goes to F.gemm-part first and F is written once, atomically, with both halves.
 * Without CUDA or a GPU: exit 2 with the reason. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qvet/fileio.h"
#include "qvet/gpu.h"
#include "qvet/gpu_gemm.h"
#include "qvet/gpu_kernels.h"

/* The GEMM JSON qv_bench_gemm wrote to part, with the attention and producer rows added, written
 * to json in one atomic step: a failure in either half leaves an earlier json untouched. */
static qv_status add_attention(const char *part, const char *json, const char *filter)
{
    char *text;
    QV_TRY(qv_read_file(part, 256u << 20, &text, NULL));
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return qv_fail(QV_ERR_INTERNAL, "bench: %s: the GEMM results are not a JSON object", part);
    }
    qv_status st = qv_bench_attn_into(root, filter);
    char *txt = st == QV_OK ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (st != QV_OK) return st;
    if (!txt) return qv_fail(QV_ERR_NOMEM, "bench: out of memory");
    st = qv_write_file_atomic(json, txt, strlen(txt));
    free(txt);
    return st;
}

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
    size_t n = strlen(json) + sizeof ".gemm-part";
    char *part = malloc(n);
    if (!part) return qv_cli_report(qv_fail(QV_ERR_NOMEM, "bench: out of memory"));
    snprintf(part, n, "%s.gemm-part", json);
    qv_status st = qv_bench_gemm(part, filter);
    if (st == QV_OK) st = add_attention(part, json, filter);
    remove(part);
    free(part);
    return st == QV_OK ? QV_EXIT_OK : qv_cli_report(st);
}
