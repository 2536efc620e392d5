/* `qvet kernels --check DIR`: an external kernel's dumped inputs and outputs (DIR/manifest.json
 * plus safetensors files, docs/byo.md "Kernel level") recomputed by qvet's reference functions
 * (ref/qoq) and compared as NUMERICS.md says: INT32 accumulators, KV4 bytes bit for bit; A8
 * codes bit for bit modulo the tie rule (docs/bounds.md); FP16 GEMM outputs within the bound
 * derived for any FP32 evaluation order of the epilogue (docs/byo.md). One result per case.
 *
 * Errors: a bad manifest, a missing file or tensor, a wrong dtype or shape, NaN/Inf in an input
 * tensor, inputs the format forbids (a code > 15, a g128 group that leaves INT8) are QV_ERR_INPUT
 * with a message naming the file (and tensor); a mismatch is a result (ok = 0), not an error. */
#ifndef QVET_KCHECK_H
#define QVET_KCHECK_H

#include <stdint.h>

#include "qvet/status.h"

typedef enum {
    QV_KC_W8A8 = 0,  /* the `qvet kernels` catalogue's GEMMs ... */
    QV_KC_W4A8_CHN,
    QV_KC_W4A8_G128,
    QV_KC_A8_QUANT,  /* ... and the quantizers of the GPU fused kernels */
    QV_KC_KV4_QUANT,
    QV_KC_RMSNORM_A8, /* fused producers: the kernel computes the values it quantizes */
    QV_KC_SILU_MUL_A8,
    QV_KC_OP_COUNT
} qv_kcheck_op;

#define QV_KC_MAX_ROLES 12

typedef struct {
    char role[24];  /* "x", "s_a", "w", "y", ... (docs/byo.md tables) */
    char file[256]; /* relative to DIR */
    char name[128]; /* tensor name inside the file */
} qv_kcheck_map;

typedef struct {
    char name[128];
    qv_kcheck_op op;
    int qserve;   /* layout "qserve": QServe's conventions where ref-qoq's compat emulates them */
    int unpacked; /* GEMM weights "unpacked" (codes one per byte) instead of "packed" */
    int M, N, K;  /* GEMMs; a8_quant uses M, K */
    int T, H, D;  /* kv4_quant: tokens, KV heads, head_dim */
    int page;     /* kv4_quant: page size, 0 = per-token arrays */
    /* rmsnorm_a8 uses M, K; silu_mul_a8 M and K = I (the intermediate size) */
    double eps;     /* rmsnorm_a8: the kernel's epsilon (manifest "eps", required) */
    int sumsq_fp64; /* rmsnorm_a8: "sumsq": "fp64" (the kernel sums x^2 in FP64), else FP32 any order */
    qv_kcheck_map map[QV_KC_MAX_ROLES];
    int n_map;
} qv_kcheck_case;

typedef struct {
    char *dir;
    char *manifest_path;
    qv_kcheck_case *cases;
    int n_cases;
} qv_kcheck_set;

typedef struct {
    int ok;
    char summary[320]; /* the details column of the report line */
    char first[320];   /* where the first mismatch is, "" when none */
    void *json;        /* cJSON object with the case's figures (caller frees with cJSON_Delete) */
} qv_kcheck_result;

const char *qv_kcheck_op_name(qv_kcheck_op op);
/* Reads and validates DIR/manifest.json (schema "qvet.kernel-check/1"). */
qv_status qv_kcheck_open(const char *dir, qv_kcheck_set **out);
void qv_kcheck_close(qv_kcheck_set *s);
/* Loads case c's tensors, recomputes the reference and compares. QV_OK with r->ok set, or an
 * error (QV_ERR_INPUT naming the file and tensor) when the inputs cannot be checked. */
qv_status qv_kcheck_run(const qv_kcheck_set *s, const qv_kcheck_case *c, qv_kcheck_result *r);

/* ---- the FP16 output bound (evals/kernels/kcheck_fp.c; tested in tests/test_kcheck.c) ----
 * 1 when the FP16 value y can be the round-to-nearest FP16 image of some real in
 * [v - E, v + E]: its rounding interval (half the gap to each neighbour; Inf covers beyond
 * 65520; with `sat`, 65504 covers everything beyond) meets that range. NaN never passes. */
int qv_kcheck_fp16_within(uint16_t y, double v, double E, int sat);
/* Distance in FP16 units in the last place between two FP16 values (ordered bit patterns;
 * -0 == +0); a NaN gives 65535. */
int qv_kcheck_fp16_ulps(uint16_t a, uint16_t b);
/* gamma_n = n u / (1 - n u), u = 2^-24 (FP32). */
double qv_kcheck_gamma(int n);

#endif
