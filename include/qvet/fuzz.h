/* Overflow fuzzing of the QoQ kernels and formats (`qvet fuzz overflow|replay`, docs/fuzz.md).
 *
 * A case is adversarial yet legal input for one kernel or format, run through the reference
 * (ref/qoq) and the implementation under test (the GPU kernels where a device exists, the CPU
 * emulation of the kernels' packed path otherwise: include/qvet/kcases.h). A case fails on INT32
 * accumulator overflow, an FP16 output that overflows without being counted (or differs from the
 * reference's saturated value), NaN/Inf, a quantization error beyond the contract or any bit
 * mismatch. "reject" cases hold illegal input the reference must refuse (a g128 group outside the
 * protective range). Findings are minimized and saved as JSON files (format in docs/fuzz.md). */
#ifndef QVET_FUZZ_H
#define QVET_FUZZ_H

#include <stdint.h>
#include <stdio.h>

#include "qvet/kcases.h"
#include "qvet/status.h"

typedef enum { QV_FZ_GEMM = 0, QV_FZ_GROUP, QV_FZ_KV4, QV_FZ_KIND_COUNT } qv_fz_kind;

typedef struct {
    qv_fz_kind kind;
    int expect_reject;      /* the reference must refuse this input */
    char note[160];         /* what the case exercises */
    /* gemm (arrays as in qv_kexplicit; owned) */
    qv_kkernel kernel;
    int M, N, K;
    int8_t *x, *w8;
    float *sa;
    uint8_t *u, *s1, *sz1;
    uint16_t *sw, *sz;
    /* group: n level-1 INT8 codes of one g128 group (w8 reused); kv4: D values (v) */
    int n, D;
    float *v;
} qv_fz_case;

void qv_fz_case_free(qv_fz_case *c);
/* Deep copy (dst is overwritten). */
qv_status qv_fz_case_copy(const qv_fz_case *src, qv_fz_case *dst);

/* Runs the case. *failed = 1 with a one-line reason in why when it fails; the status is an error
 * only when the check itself could not run (out of memory, bad case). */
qv_status qv_fz_check(const qv_fz_case *c, qv_kbackend b, int *failed, char *why, size_t nwhy);

/* JSON corpus files (docs/fuzz.md). Loading validates every field and names the file. */
char *qv_fz_case_to_json(const qv_fz_case *c);
qv_status qv_fz_case_from_json(const char *text, size_t len, const char *path, qv_fz_case *c);
qv_status qv_fz_case_load(const char *path, qv_fz_case *c);
/* Same with a smaller bound on M*K and N*K (the libFuzzer harness keeps executions short). */
qv_status qv_fz_case_from_json_limit(const char *text, size_t len, const char *path, long max_elems,
                                     qv_fz_case *c);
qv_status qv_fz_case_save(const qv_fz_case *c, const char *dir, char *path_out, size_t npath);

/* Shrinks a failing case (shape, then values) while it still fails; at most max_tries checks. */
qv_status qv_fz_minimize(qv_fz_case *c, qv_kbackend b, int max_tries);

typedef struct {
    double time_s;          /* wall-clock budget */
    long max_cases;         /* 0: unlimited (time bound only) */
    uint64_t seed;
    const char *corpus;     /* where findings go (NULL: not saved) */
    qv_kbackend backend;
    FILE *log;              /* progress and findings (may be NULL) */
    int stop_after;         /* stop after this many findings (0: never) */
} qv_fz_opts;

typedef struct {
    long cases, findings, per_kind[QV_FZ_KIND_COUNT];
    double seconds;
} qv_fz_summary;

/* Generates cases until the budget is spent; each finding minimized and saved. */
qv_status qv_fz_overflow(const qv_fz_opts *o, qv_fz_summary *s);
/* Replays every *.json in dir; *n and *failed receive counts; failures are printed to log. */
qv_status qv_fz_replay(const char *dir, qv_kbackend b, FILE *log, int *n, int *failed);

#endif
