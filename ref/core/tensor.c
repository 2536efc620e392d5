/* Tensor views over borrowed storage (include/qvet/tensor.h). */
#include "qvet/tensor.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "qvet/fp16.h"

static const struct { const char *name; size_t size; } qv_dtypes[QV_DTYPE_COUNT] = {
    [QV_F32] = {"F32", 4}, [QV_F16] = {"F16", 2}, [QV_BF16] = {"BF16", 2}, [QV_I8] = {"I8", 1},
    [QV_U8] = {"U8", 1},   [QV_I32] = {"I32", 4}, [QV_I64] = {"I64", 8},   [QV_F64] = {"F64", 8},
};

size_t qv_dtype_size(qv_dtype dt) { return (unsigned)dt < QV_DTYPE_COUNT ? qv_dtypes[dt].size : 0; }

const char *qv_dtype_name(qv_dtype dt)
{
    return (unsigned)dt < QV_DTYPE_COUNT ? qv_dtypes[dt].name : "?";
}

int qv_dtype_from_name(const char *name, qv_dtype *dt)
{
    for (int i = 0; i < QV_DTYPE_COUNT; i++)
        if (strcmp(name, qv_dtypes[i].name) == 0) {
            *dt = (qv_dtype)i;
            return 0;
        }
    return -1;
}

qv_status qv_tensor_view(qv_tensor *t, void *data, qv_dtype dt, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > QV_MAX_DIMS)
        return qv_fail(QV_ERR_INPUT, "tensor rank %d outside [0, %d]", ndim, QV_MAX_DIMS);
    memset(t, 0, sizeof *t);
    t->data = data;
    t->dtype = dt;
    t->ndim = ndim;
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        if (shape[i] < 0) return qv_fail(QV_ERR_INPUT, "negative dimension %lld", (long long)shape[i]);
        t->shape[i] = shape[i];
        t->stride[i] = s;
        if (shape[i] != 0 && s > INT64_MAX / shape[i])
            return qv_fail(QV_ERR_INPUT, "tensor element count overflows");
        s *= shape[i];
    }
    return QV_OK;
}

int64_t qv_tensor_numel(const qv_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

int qv_tensor_is_contiguous(const qv_tensor *t)
{
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return 0;
        s *= t->shape[i];
    }
    return 1;
}

const char *qv_shape_str(const qv_tensor *t, char *buf, size_t n)
{
    size_t off = 0;
    off += (size_t)snprintf(buf + off, n > off ? n - off : 0, "[");
    for (int i = 0; i < t->ndim; i++)
        off += (size_t)snprintf(buf + off, n > off ? n - off : 0, "%s%lld", i ? ", " : "",
                                (long long)t->shape[i]);
    snprintf(buf + off, n > off ? n - off : 0, "]");
    return buf;
}

qv_status qv_tensor_to_f32(const qv_tensor *t, float *dst)
{
    if (!qv_tensor_is_contiguous(t)) return qv_fail(QV_ERR_UNSUPPORTED, "non-contiguous tensor");
    int64_t n = qv_tensor_numel(t);
    switch (t->dtype) {
    case QV_F32: memcpy(dst, t->data, (size_t)n * 4); return QV_OK;
    case QV_F16: qv_fp16_to_fp32_n((const qv_fp16 *)t->data, dst, n); return QV_OK;
    case QV_BF16: qv_bf16_to_fp32_n((const qv_bf16 *)t->data, dst, n); return QV_OK;
    default:
        return qv_fail(QV_ERR_UNSUPPORTED, "cannot convert %s tensor to F32", qv_dtype_name(t->dtype));
    }
}

int64_t qv_tensor_first_nonfinite(const qv_tensor *t)
{
    int64_t n = qv_tensor_numel(t);
    switch (t->dtype) {
    case QV_F32: {
        const float *p = t->data;
        for (int64_t i = 0; i < n; i++) if (!isfinite(p[i])) return i;
        return -1;
    }
    case QV_F64: {
        const double *p = t->data;
        for (int64_t i = 0; i < n; i++) if (!isfinite(p[i])) return i;
        return -1;
    }
    case QV_F16: {
        const uint16_t *p = t->data;
        for (int64_t i = 0; i < n; i++) if ((p[i] & 0x7c00u) == 0x7c00u) return i;
        return -1;
    }
    case QV_BF16: {
        const uint16_t *p = t->data;
        for (int64_t i = 0; i < n; i++) if ((p[i] & 0x7f80u) == 0x7f80u) return i;
        return -1;
    }
    default: return -1; /* integers are always finite */
    }
}
