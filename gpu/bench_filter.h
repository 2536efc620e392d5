/* The case selection of `qvet bench --filter RE` (gpu/bench_gemm.cu, gpu/bench_attn.cu): one rule
 * for both. RE is a POSIX extended regular expression searched anywhere in the case name ("gate_up
 * M=1024", "attn_kv4 batch=1 ctx=4096", ...), so a plain string keeps its old substring meaning
 * ("M=1" keeps M = 1, 16 and 1024) and an alternation selects several ("M=(64|256|1024)$").
 * A filter that is not a valid expression is used as a plain substring. NULL or "" keeps all. */
#ifndef QV_BENCH_FILTER_H
#define QV_BENCH_FILTER_H

#ifdef __cplusplus
extern "C" {
#endif

int qv_bench_keep(const char *name, const char *filter);

#ifdef __cplusplus
}
#endif

#endif
