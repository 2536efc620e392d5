/* Tensor comparison (include/qvet/compare.h). */
#include <math.h>

#include "qvet/compare.h"

qv_status qv_compare_f32(const char *name, const float *got, const float *ref, int64_t n,
                         double bound_abs, qv_compare_result *r)
{
    *r = (qv_compare_result){.bound = bound_abs, .argmax = -1};
    double se = 0, sr = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(ref[i]))
            return qv_fail(QV_ERR_INPUT, "%s: reference holds %g at index %lld", name, ref[i], (long long)i);
        if (!isfinite(got[i]))
            return qv_fail(QV_ERR_CHECK, "%s: %s at index %lld (reference %.9g)", name,
                           isnan(got[i]) ? "NaN" : "Inf", (long long)i, ref[i]);
        double d = fabs((double)got[i] - ref[i]);
        if (d > r->max_abs || r->argmax < 0) r->max_abs = d, r->argmax = i, r->got_at = got[i], r->ref_at = ref[i];
        r->max_ref = fmax(r->max_ref, fabs(ref[i]));
        se += d * d, sr += (double)ref[i] * ref[i];
    }
    r->nmse = sr > 0 ? se / sr : (se > 0 ? INFINITY : 0);
    r->ratio = bound_abs > 0 ? r->max_abs / bound_abs : (r->max_abs > 0 ? INFINITY : 0);
    r->pass = r->max_abs <= bound_abs;
    if (!r->pass)
        return qv_fail(QV_ERR_CHECK, "%s: max |diff| %.3g at index %lld (got %.9g, reference %.9g) exceeds the bound %.3g",
                       name, r->max_abs, (long long)r->argmax, r->got_at, r->ref_at, bound_abs);
    return QV_OK;
}

double qv_golden_bound_rel(const qv_config *c, int depth, int n_ctx)
{
    double K = c->hidden_size;
    if (c->intermediate_size > K) K = c->intermediate_size;
    if ((double)c->num_heads * c->head_dim > K) K = (double)c->num_heads * c->head_dim;
    if (n_ctx > K) K = n_ctx;
    double stages = 4.0 * depth + (depth >= c->num_layers ? 2 : 0);
    return 2 * 6.0 * sqrt(K) * 0x1p-24 * stages;
}
