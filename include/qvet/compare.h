/* Tensor comparison against a reference (goldens, another engine): per-tensor max abs error,
 * where, NMSE, and the ratio to a bound the caller derives (docs/bounds.md). */
#ifndef QVET_COMPARE_H
#define QVET_COMPARE_H

#include <stdint.h>

#include "qvet/model.h"

typedef struct {
    double max_abs;       /* max |got - ref| */
    int64_t argmax;       /* its index */
    double got_at, ref_at;/* the values there */
    double max_ref;       /* max |ref| */
    double nmse;          /* sum (got - ref)^2 / sum ref^2 */
    double bound;         /* the absolute bound used */
    double ratio;         /* max_abs / bound */
    int pass;             /* max_abs <= bound and everything finite */
} qv_compare_result;

/* Compares n floats; bound_abs is the allowed max |got - ref|. Returns QV_OK when within it,
 * QV_ERR_CHECK (message naming `name`, the index and both values) when not or when `got`
 * holds a NaN/Inf, QV_ERR_INPUT when `ref` does. The result is filled in every case. */
qv_status qv_compare_f32(const char *name, const float *got, const float *ref, int64_t n,
                         double bound_abs, qv_compare_result *r);

/* The golden bound of docs/bounds.md, relative to max |ref|, for two FP32 evaluations of the
 * model's forward up to layer `depth` (num_layers for logits): 2 * lambda * sqrt(K) * u *
 * stages, K = the longest dot product (hidden, intermediate, heads*head_dim or the context n),
 * stages = 4 per layer (+2 for the final norm and LM head), lambda = 6 (Higham-Mary probabilistic
 * rounding; each stage's bound fails with probability <= 2K exp(-18)). */
double qv_golden_bound_rel(const qv_config *c, int depth, int n_ctx);

#endif
