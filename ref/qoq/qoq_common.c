/* Entry checks and the FP16 output rule shared by the QoQ reference functions. */
#include <math.h>

#include "qoq_internal.h"

qv_status qv_qoq_check_dims(const char *what, int M, int N, int K, size_t *count_mk,
                            size_t *count_nk, size_t *count_mn)
{
    if (M < 1 || N < 1 || K < 1)
        return qv_fail(QV_ERR_USAGE, "%s: dimensions must be >= 1 (M=%d N=%d K=%d)", what, M, N, K);
    size_t a, b, c;
    if (qv_mul_size((size_t)M, (size_t)K, &a) || qv_mul_size((size_t)N, (size_t)K, &b) ||
        qv_mul_size((size_t)M, (size_t)N, &c))
        return qv_fail(QV_ERR_USAGE, "%s: M=%d N=%d K=%d overflows size_t", what, M, N, K);
    if (count_mk) *count_mk = a;
    if (count_nk) *count_nk = b;
    if (count_mn) *count_mn = c;
    return QV_OK;
}

qv_status qv_qoq_check_finite(const char *what, const char *tensor, const float *x, int rows,
                              int cols)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            float v = x[(size_t)r * (size_t)cols + (size_t)c];
            if (!isfinite(v))
                return qv_fail(QV_ERR_INPUT, "%s: %s[%d][%d] of [%d x %d] is %s", what, tensor, r,
                               c, rows, cols, isnan(v) ? "NaN" : "Inf");
        }
    return QV_OK;
}

void qv_qoq_report_init(qv_fp16_report *rep)
{
    rep->count = 0;
    rep->first = -1;
    rep->first_val = 0.0f;
    rep->nonfinite = 0;
    rep->first_nonfinite = -1;
}

/* qvet's kernels convert with saturation to +-65504 (NUMERICS.md) and the reference reports every
 * |v| > 65504 before rounding as an overflow. QServe converts with __float2half_rn (overflow to
 * Inf); compat emulates that, and it is still reported. */
qv_fp16 qv_qoq_out_fp16(float v, long idx, int compat, qv_fp16_report *rep)
{
    if (!isfinite(v)) {
        if (rep->nonfinite++ == 0) rep->first_nonfinite = idx;
    } else if (fabsf(v) > 65504.0f) {
        if (rep->count++ == 0) {
            rep->first = idx;
            rep->first_val = v;
        }
    }
    return compat ? qv_fp32_to_fp16(v) : qv_fp32_to_fp16_sat(v);
}

qv_status qv_qoq_report_status(const char *what, const qv_fp16_report *rep, int N)
{
    if (rep->nonfinite)
        return qv_fail(QV_ERR_CHECK, "%s: %ld outputs NaN/Inf before rounding, first at [%ld][%ld]",
                       what, rep->nonfinite, rep->first_nonfinite / N, rep->first_nonfinite % N);
    if (rep->count)
        return qv_fail(QV_ERR_CHECK,
                       "%s: %ld outputs overflow FP16 (|v| > 65504 before rounding), first at "
                       "[%ld][%ld] = %g",
                       what, rep->count, rep->first / N, rep->first % N, (double)rep->first_val);
    return QV_OK;
}
