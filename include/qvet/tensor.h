/* Tensor views: a pointer, a dtype, a shape and strides (in elements) over storage owned by
 * someone else (a memory-mapped file, a model, an arena). Views never free. */
#ifndef QVET_TENSOR_H
#define QVET_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "qvet/status.h"

typedef enum {
    QV_F32 = 0,
    QV_F16,
    QV_BF16,
    QV_I8,
    QV_U8,
    QV_I32,
    QV_I64,
    QV_F64,
    QV_DTYPE_COUNT
} qv_dtype;

#define QV_MAX_DIMS 8

typedef struct {
    void *data;
    qv_dtype dtype;
    int ndim;
    int64_t shape[QV_MAX_DIMS];
    int64_t stride[QV_MAX_DIMS]; /* in elements */
} qv_tensor;

size_t qv_dtype_size(qv_dtype dt);
/* safetensors spelling: "F32", "F16", "BF16", "I8", "U8", "I32", "I64", "F64" */
const char *qv_dtype_name(qv_dtype dt);
/* returns 0 and sets *dt, or -1 if the name is not one of the above */
int qv_dtype_from_name(const char *name, qv_dtype *dt);

/* Builds a contiguous (row-major) view; returns QV_ERR_INPUT on a negative dim or overflow. */
qv_status qv_tensor_view(qv_tensor *t, void *data, qv_dtype dt, int ndim, const int64_t *shape);
int64_t qv_tensor_numel(const qv_tensor *t);
int qv_tensor_is_contiguous(const qv_tensor *t);
/* "[384, 1024]" into buf */
const char *qv_shape_str(const qv_tensor *t, char *buf, size_t n);
/* Converts a contiguous F32/F16/BF16 tensor to FP32 (dst holds numel floats). */
qv_status qv_tensor_to_f32(const qv_tensor *t, float *dst);
/* Index of the first NaN/Inf of a contiguous floating tensor, or -1 if all finite. */
int64_t qv_tensor_first_nonfinite(const qv_tensor *t);

#endif
