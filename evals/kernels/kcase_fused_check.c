/* The fused producers' output checks (include/qvet/kcases.h), shared by `qvet kernels` and
 * tests/test_gpu_kernels.c so that both apply one rule: quant_a8 (identical FP16 inputs) bit for
 * bit; RMSNorm/SiLU*mul + A8 (the kernel computes v itself, in another order) under NUMERICS.md's
 * tie rule, with s_a within the same relative bound QV_A8_PRE_REL and the row sum equal to the sum
 * of the kernel's own codes (it must be consistent with what the GEMM epilogue multiplies). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qvet/kcases.h"
#include "qvet/kernels_ref.h"

static void note(qv_kfused_result *r, const char *what, int m, int k, double got, double ref)
{
    if (r->first[0]) return;
    if (k >= 0) snprintf(r->first, sizeof r->first, "%s (%d,%d): got %.9g, ref %.9g", what, m, k, got, ref);
    else snprintf(r->first, sizeof r->first, "%s row %d: got %.9g, ref %.9g", what, m, got, ref);
}

static qv_status check_a8(int M, int K, const float *v, const int8_t *gq, const float *gsa, const int32_t *grs,
                          int exact, qv_kfused_result *r)
{
    const size_t MK = (size_t)M * K;
    int8_t *q = malloc(MK ? MK : 1);
    float *sa = malloc(sizeof(float) * (size_t)M), *pre = malloc(sizeof(float) * (MK ? MK : 1));
    int32_t *rs = malloc(sizeof(int32_t) * (size_t)M);
    qv_status st = q && sa && pre && rs ? QV_OK : qv_fail(QV_ERR_NOMEM, "fused check: out of memory");
    if (st == QV_OK) st = qv_ref_a8_with_pre(v, M, K, q, sa, rs, pre);
    r->exact = exact;
    for (int m = 0; m < M && st == QV_OK; m++) {
        int32_t sum = 0;
        for (int k = 0; k < K; k++) {
            size_t i = (size_t)m * K + k;
            sum += gq[i];
            if (gq[i] == q[i]) continue;
            int c = exact ? -1 : qv_ref_a8_code_check(gq[i], q[i], pre[i], QV_A8_PRE_REL);
            if (c > 0) {
                r->ties++;
                continue;
            }
            r->code_bad++;
            note(r, exact ? "code" : "code beyond the tie rule", m, k, gq[i], q[i]);
        }
        /* exact: the same FP32 bits; otherwise the kernel's own amax path is within PRE_REL */
        int sa_ok = exact ? memcmp(&gsa[m], &sa[m], sizeof(float)) == 0
                          : fabs((double)gsa[m] - sa[m]) <= QV_A8_PRE_REL * sa[m];
        if (!sa_ok) r->sa_bad++, note(r, "s_a", m, -1, gsa[m], sa[m]);
        /* exact: the reference's row sum; otherwise the sum of the kernel's own codes */
        int32_t want = exact ? rs[m] : sum;
        if (grs[m] != want) r->rowsum_bad++, note(r, "row sum", m, -1, grs[m], want);
    }
    r->n += (long)MK;
    r->ok = r->code_bad == 0 && r->sa_bad == 0 && r->rowsum_bad == 0 && r->byte_bad == 0;
    free(q), free(sa), free(pre), free(rs);
    return st;
}

qv_status qv_kfused_check_a8_exact(int M, int K, const float *x, const int8_t *gq, const float *gsa,
                                   const int32_t *grs, qv_kfused_result *r)
{
    return check_a8(M, K, x, gq, gsa, grs, 1, r);
}

qv_status qv_kfused_check_a8_ties(int M, int K, const float *v, const int8_t *gq, const float *gsa,
                                  const int32_t *grs, qv_kfused_result *r)
{
    return check_a8(M, K, v, gq, gsa, grs, 0, r);
}
