/* Helpers shared by the ref/qoq sources (not part of the public API). */
#ifndef QV_QOQ_INTERNAL_H
#define QV_QOQ_INTERNAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "qvet/qoq.h"

/* rne: round half to even. rintf rounds in the current mode, which qvet never changes from the
 * default (to nearest even); NUMERICS.md names rintf as the definition. */
static inline float qv_rne(float x) { return rintf(x); }

static inline int qv_clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Positive dims and an element count that fits size_t; `what` names the operation. */
qv_status qv_qoq_check_dims(const char *what, int M, int N, int K, size_t *count_mk,
                            size_t *count_nk, size_t *count_mn);
/* First non-finite element of a [rows][cols] float array -> QV_ERR_INPUT naming it. */
qv_status qv_qoq_check_finite(const char *what, const char *tensor, const float *x, int rows,
                              int cols);
/* FP16 output conversion as the kernels do it, with the overflow / non-finite report. */
qv_fp16 qv_qoq_out_fp16(float v, long idx, int compat, qv_fp16_report *rep);
void qv_qoq_report_init(qv_fp16_report *rep);
qv_status qv_qoq_report_status(const char *what, const qv_fp16_report *rep, int N);

#endif
