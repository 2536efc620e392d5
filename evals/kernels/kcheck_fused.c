/* Fused A8 producers of `qvet kernels --check`: rmsnorm_a8 (RMSNorm of the residual stream x with
 * weight w, then A8 per token) and silu_mul_a8 (SiLU(gate) * up, then A8), recomputed with the
 * reference's formulas (qv_ref_rmsnorm_rows, ref-fp32's SiLU) and judged as qvet's own GPU
 * producers are (evals/kernels/kcase_fused_check.c): codes under the tie rule with
 * QV_A8_PRE_REL, the row sum equal to the sum of the kernel's own codes, s_a within its bound.
 *
 * The bounds are derived in docs/byo.md ("Fused producers") for a foreign kernel, which need not
 * share qvet's choices. Codes: RMSNorm's 1/rms is one factor common to a row, so it cancels from
 * v*127/amax; what is left is each side's own few roundings (13u RMSNorm, 31u SiLU*mul with an
 * expf of <= 2 ulp), within QV_A8_PRE_REL = 32u whatever the kernel's summation order, sqrt or eps
 * handling. s_a does not cancel: for rmsnorm_a8 it is compared with the exact value (FP64 here)
 * under a bound that grows with K when the sum of squares is FP32 in any order (gamma_K / 2), or
 * is fixed when the manifest declares an FP64 sum ("sumsq": "fp64"); silu_mul_a8's s_a is within
 * QV_A8_PRE_REL of the reference's, as for qvet's kernel. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcheck_internal.h"
#include "qvet/kcheck.h"
#include "qvet/kernels_ref.h"

/* The file a role would be read from (also for an absent optional role), for messages. */
static const char *role_file(const qv_kc_tensors *ts, const char *role)
{
    for (int i = 0; i < ts->n; i++)
        if (strcmp(ts->t[i].spec->role, role) == 0) return ts->t[i].file;
    return "?";
}

/* Reference values v [M, K] of silu_mul_a8: g / (1 + expf(-g)) * u as ref-fp32 (and
 * qv_ref_silu_mul_rows) computes it, from split gate/up or one gate_up [M, 2I]. */
static qv_status silu_values(const qv_kcheck_case *c, const qv_kc_tensors *ts, float *v)
{
    const qv_kc_tensor *tg = qv_kc_get(ts, "gate"), *tu = qv_kc_get(ts, "up"), *tgu = qv_kc_get(ts, "gate_up");
    if (tgu && (tg || tu))
        return qv_fail(QV_ERR_INPUT, "%s: case '%s': both gate_up and %s given: dump one gate_up [M, 2I] or gate "
                       "and up [M, I]", tgu->file, c->name, tg ? "gate" : "up");
    if (!tgu && !(tg && tu))
        return qv_fail(QV_ERR_INPUT, "%s: case '%s': silu_mul_a8 needs gate and up [M, I], or gate_up [M, 2I] (gate "
                       "first); %s", role_file(ts, tg ? "up" : "gate"), c->name,
                       tg ? "no tensor for up" : tu ? "no tensor for gate" : "found none of them");
    const int M = c->M, I = c->K;
    for (int m = 0; m < M; m++)
        for (int k = 0; k < I; k++) {
            const float *gr = tgu ? (const float *)tgu->data + (size_t)m * 2 * I : (const float *)tg->data + (size_t)m * I;
            const float *ur = tgu ? gr + I : (const float *)tu->data + (size_t)m * I;
            float g = gr[k], u = ur[k];
            v[(size_t)m * I + k] = g / (1.0f + expf(-g)) * u;
        }
    return QV_OK;
}

/* Relative bound on a kernel's FP32 s_a against the exact s = r * max|w x| / 127 (docs/byo.md):
 * the mean of squares to mu (FP32 any order: gamma_K, FP64: K 2^-53 and one rounding to FP32;
 * both + 2u for the division by K), + eps and eps's FP32 rounding (2u), half of that through the
 * square root, 4u for the reciprocal square root (2 ulp: rsqrtf; sqrtf then 1/x is 2u), 2u for
 * amax (the two products of y = w x r), 2u for amax/127 (or amax * (1/127)). Plus the FP64 error of
 * this checker's exact value, (K + 8) 2^-53. */
static double rms_sa_rel(const qv_kcheck_case *c)
{
    const double u = QV_U32, d = 0x1p-53;
    double mu = (c->sumsq_fp64 ? c->K * d + u : qv_kcheck_gamma(c->K)) + 2 * u;
    return (mu + 2 * u) / 2 + 4 * u + 2 * u + 2 * u + (c->K + 8) * d;
}

/* The exact s_a of row m of rmsnorm_a8 (FP64; products of two FP32 values are exact in FP64), and
 * whether max|w x| is 0 (an all-zero row: qvet's rule gives s_a = 1). */
static double rms_sa_exact(const qv_kcheck_case *c, const float *x, const float *w, int m, int *zero)
{
    const int K = c->K;
    const float *xr = x + (size_t)m * K;
    double ss = 0, A = 0;
    for (int k = 0; k < K; k++) {
        ss += (double)xr[k] * xr[k];
        A = fmax(A, fabs((double)w[k] * xr[k]));
    }
    *zero = A == 0;
    return A / sqrt(ss / K + c->eps) / 127.0;
}

qv_status qv_kc_check_fused(const qv_kcheck_case *c, const qv_kc_tensors *ts, qv_kcheck_result *r, cJSON *j)
{
    const int M = c->M, K = c->K, rms = c->op == QV_KC_RMSNORM_A8;
    const size_t MK = (size_t)M * K;
    const int8_t *gq = qv_kc_get(ts, "q")->data;
    const float *gsa = qv_kc_get(ts, "s_a")->data;
    const qv_kc_tensor *trs = qv_kc_get(ts, "rowsum");
    const float *x = rms ? qv_kc_get(ts, "x")->data : NULL, *w = rms ? qv_kc_get(ts, "w")->data : NULL;
    float *v = malloc(MK * sizeof(float) + 1), *pre = malloc(MK * sizeof(float) + 1), *sa = malloc((size_t)M * sizeof(float));
    int8_t *q = malloc(MK + 1);
    if (!v || !pre || !sa || !q) {
        free(v); free(pre); free(sa); free(q);
        return qv_fail(QV_ERR_NOMEM, "out of memory");
    }
    qv_status st = QV_OK;
    if (rms) qv_ref_rmsnorm_rows(x, w, (float)c->eps, M, K, v);
    else st = silu_values(c, ts, v);
    /* finite inputs can still give a value beyond FP32 (a huge w or up): the reference refuses it */
    if (st == QV_OK && qv_ref_a8_with_pre(v, M, K, q, sa, NULL, pre) != QV_OK)
        st = qv_fail_prefix(QV_ERR_INPUT, "%s: case '%s'", role_file(ts, rms ? "x" : qv_kc_get(ts, "gate_up") ? "gate_up" : "gate"),
                            c->name);
    if (st != QV_OK) {
        free(v); free(pre); free(sa); free(q);
        return st;
    }
    const double sa_rel = rms ? rms_sa_rel(c) : QV_A8_PRE_REL;
    long ties = 0, code_bad = 0, sa_differ = 0, sa_bad = 0, rs_bad = 0, first = -1;
    int first_row_sa = -1, first_row_rs = -1;
    double first_sa_want = 0, worst_sa = 0; /* worst |s_a - want| / (bound) over the rows */
    for (int m = 0; m < M; m++) {
        int32_t own = 0;
        for (int k = 0; k < K; k++) {
            size_t i = (size_t)m * K + k;
            int t = qv_ref_a8_code_check(gq[i], q[i], pre[i], QV_A8_PRE_REL);
            if (t > 0) ties++;
            if (t < 0 && code_bad++ == 0) first = (long)i;
            own += gq[i];
        }
        /* s_a: against the exact value (rmsnorm) or the reference's FP32 value (silu, as for qvet's
         * own kernel); an all-zero row must give the reference's 1 exactly */
        int zero = 0;
        double want = rms ? rms_sa_exact(c, x, w, m, &zero) : (double)sa[m], bound;
        float amax_ref = 0;
        for (int k = 0; k < K; k++) amax_ref = fmaxf(amax_ref, fabsf(v[(size_t)m * K + k]));
        if (zero || amax_ref == 0) want = sa[m], bound = 0;
        else bound = sa_rel * want + 0x1p-149; /* + the smallest subnormal: FP32 underflow of tiny rows */
        double err = fabs((double)gsa[m] - want);
        int sa_ok = err <= bound; /* false for NaN */
        if (bound > 0 && err / bound > worst_sa) worst_sa = err / bound;
        if (memcmp(&gsa[m], &sa[m], sizeof(float))) sa_differ++;
        if (!sa_ok && sa_bad++ == 0) first_row_sa = m, first_sa_want = want;
        if (trs && ((const int32_t *)trs->data)[m] != own && rs_bad++ == 0) first_row_rs = m;
    }
    qv_kc_a8_verdict(r, j, code_bad, ties, sa_bad, sa_differ, trs != NULL, rs_bad, "rowsum", "sum of codes");
    if (first >= 0)
        snprintf(r->first, sizeof r->first, "first mismatch m=%ld k=%ld: code %d (ref %d, pre-rounding %.9g)", first / K,
                 first % K, gq[first], q[first], (double)pre[first]);
    else if (first_row_sa >= 0)
        snprintf(r->first, sizeof r->first, "first mismatch m=%d: s_a %.9g beyond its bound (%s %.9g, relative bound %.3g)",
                 first_row_sa, (double)gsa[first_row_sa], rms ? "exact" : "ref", first_sa_want, sa_rel);
    else if (first_row_rs >= 0)
        snprintf(r->first, sizeof r->first, "first mismatch m=%d: rowsum %d is not the sum of the row's codes",
                 first_row_rs, ((const int32_t *)trs->data)[first_row_rs]);
    cJSON_AddNumberToObject(j, "s_a_bound_rel", sa_rel);
    cJSON_AddNumberToObject(j, "s_a_worst_ratio", worst_sa);
    cJSON_AddBoolToObject(j, "rowsum_dumped", trs != NULL);
    cJSON_AddNumberToObject(j, "rowsum_mismatch", (double)rs_bad);
    if (rms) cJSON_AddStringToObject(j, "sumsq", c->sumsq_fp64 ? "fp64" : "fp32");
    else cJSON_AddStringToObject(j, "input", qv_kc_get(ts, "gate_up") ? "gate_up" : "gate,up");
    free(v); free(pre); free(sa); free(q);
    return QV_OK;
}
