/* Internals of `qvet kernels --check` (include/qvet/kcheck.h): the role tables (which tensor each
 * op reads and writes, its dtype and shape in each layout) and the loaded tensors. */
#ifndef QV_KCHECK_INTERNAL_H
#define QV_KCHECK_INTERNAL_H

#include <cJSON.h>

#include "qvet/kcheck.h"
#include "qvet/tensor.h"

/* Shape symbols of a role: M N K as given (silu_mul_a8: K = I, 'J' 2I), 'h' K/2, 'G' K/128, T H D, 'd' D/2, 'P' pages
 * (ceil(T/page)), 'B' bytes of one page. */
typedef struct {
    const char *role;
    qv_dtype dt;    /* QV_DTYPE_COUNT: any of F32, F16, BF16 (converted exactly to FP32) */
    const char *dims; /* one symbol per dimension */
    int out;        /* written by the kernel under test */
    int optional;
} qv_kc_role;

/* The roles of case c (its op, layout, weights, page), NULL-terminated by role == NULL. */
const qv_kc_role *qv_kc_roles(const qv_kcheck_case *c);
/* Value of a shape symbol for case c; -1 for an unknown symbol. */
long qv_kc_dim(const qv_kcheck_case *c, char sym);

/* A loaded tensor: a private copy of the data (FP32 for the any-float roles), or absent. */
typedef struct {
    const qv_kc_role *spec;
    int present;
    qv_dtype dt;  /* the stored dtype */
    void *data;   /* dt's element type, or float for any-float roles */
    long numel;
    char file[512]; /* path, for messages */
    char name[128];
} qv_kc_tensor;

typedef struct {
    qv_kc_tensor t[QV_KC_MAX_ROLES];
    int n;
} qv_kc_tensors;

/* Loads every role of c from DIR, checking presence, dtype, shape and (inputs) finiteness. */
qv_status qv_kc_load(const qv_kcheck_set *s, const qv_kcheck_case *c, qv_kc_tensors *ts);
void qv_kc_free(qv_kc_tensors *ts);
/* The tensor of a role, or NULL when absent (optional and not dumped). */
const qv_kc_tensor *qv_kc_get(const qv_kc_tensors *ts, const char *role);

qv_status qv_kc_check_gemm(const qv_kcheck_case *c, const qv_kc_tensors *ts, qv_kcheck_result *r, cJSON *j);
qv_status qv_kc_check_a8(const qv_kcheck_case *c, const qv_kc_tensors *ts, qv_kcheck_result *r, cJSON *j);
/* The A8 outputs' verdict shared by a8_quant and the fused producers: r->ok, the summary line
 * ("codes: ..  s_a: ..  <rowsum name>: ..", rs_ok_text when the row sums pass) and the JSON counts
 * code_mismatch, code_ties, s_a_differ, s_a_beyond_bound. */
void qv_kc_a8_verdict(qv_kcheck_result *r, cJSON *j, long code_bad, long ties, long sa_bad, long sa_differ,
                      int rs_dumped, long rs_bad, const char *rs_name, const char *rs_ok_text);
/* rmsnorm_a8 and silu_mul_a8 (kcheck_fused.c) */
qv_status qv_kc_check_fused(const qv_kcheck_case *c, const qv_kc_tensors *ts, qv_kcheck_result *r, cJSON *j);
qv_status qv_kc_check_kv4(const qv_kcheck_case *c, const qv_kc_tensors *ts, qv_kcheck_result *r, cJSON *j);

#endif
