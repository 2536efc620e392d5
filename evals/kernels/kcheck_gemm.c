/* GEMM cases of `qvet kernels --check` (w8a8, w4a8_chn, w4a8_g128): the external kernel's inputs
 * are turned into the reference's logical operands (unpacking docs/layout.md's packed weights
 * and group bytes, QServe's -z*s1 zeros into sz1), then ref/qoq's own pieces recompute the INT32
 * accumulators and the fixed-order FP32 epilogue, keeping the pre-rounding value v of each output.
 *
 * Contract (docs/byo.md): the accumulators, when dumped, bit for bit; each FP16 output y must be
 * the round-to-nearest image of some real within E of v, where E bounds the difference of two
 * FP32 evaluations of the epilogue in any order (FMA or not): with at most k roundings on each
 * product path (acc -> float, the scale products, the final subtraction), each evaluation is
 * within gamma_k * T of the exact real r, T the sum of the absolute values of the terms, so
 * |v_kernel - v_ref| <= E = 2 gamma_k T (+ FP32 underflow, 2k * 2^-150). k = 3 for
 * s_a*s*acc (conversion + 2 products), k = 4 for the per-channel s_a*(s_w*acc - sz*rowsum) (and
 * QServe's s_a*s_w*acc - sz*a_ssum). A reference value beyond 65504 is an overflow finding: the
 * case fails whatever the kernel wrote (NUMERICS.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcheck_internal.h"
#include "qvet/fp16.h"
#include "qvet/qoq.h"

#define TWO_M150 (1.0 / 1427247692705959881058285969449495136382746624.0) /* 2^-150 */

typedef struct {
    int8_t *w8;      /* [N][K] W8A8 weights or g128's dequantized w8' */
    uint8_t *u;      /* [N][K] W4 codes */
    uint8_t *s1, *sz1; /* logical [N][G] */
    float *sa, *rs;  /* [M] */
    int32_t *acc;    /* [M][N] reference */
    float *V;        /* [M][N] pre-rounding reference */
    qv_fp16 *Y;      /* [M][N] reference */
} gemm_ref;

static void ref_free(gemm_ref *g)
{
    free(g->w8); free(g->u); free(g->s1); free(g->sz1); free(g->sa); free(g->rs); free(g->acc); free(g->V); free(g->Y);
}

/* FP32 view of an F32 or F16 [n] input */
static float *to_f32(const qv_kc_tensor *t, long n)
{
    float *f = malloc((size_t)n * sizeof(float) + 1);
    if (!f) return NULL;
    if (t->dt == QV_F16) qv_fp16_to_fp32_n(t->data, f, n);
    else memcpy(f, t->data, (size_t)n * sizeof(float));
    return f;
}

/* The W4 codes [N][K], from the packed layout or the unpacked tensor (codes must be UINT4). */
static qv_status load_codes(const qv_kcheck_case *c, const qv_kc_tensor *w, uint8_t *u)
{
    const long NK = (long)c->N * c->K;
    if (!c->unpacked) {
        QV_TRY(qv_w4_unpack(w->data, c->N, c->K, u));
        return QV_OK;
    }
    memcpy(u, w->data, (size_t)NK);
    for (long i = 0; i < NK; i++)
        if (u[i] > 15)
            return qv_fail(QV_ERR_INPUT, "%s: case '%s': tensor '%s' (w, unpacked): code [%ld][%ld] = %d is not UINT4",
                           w->file, c->name, w->name, i / c->K, i % c->K, u[i]);
    return QV_OK;
}

/* g128 group bytes to logical [N][G] s1 and sz1 (QServe: s2_zeros holds -z*s1 modulo 256). */
static qv_status load_groups(const qv_kcheck_case *c, const qv_kc_tensors *ts, gemm_ref *g)
{
    const qv_kc_tensor *ts1 = qv_kc_get(ts, "s1"), *tz = qv_kc_get(ts, c->qserve ? "s2_zeros" : "sz1");
    const long NG = (long)c->N * (c->K / QV_QOQ_GROUP);
    uint8_t *b1 = malloc((size_t)NG), *bz = malloc((size_t)NG);
    if (!b1 || !bz) {
        free(b1); free(bz);
        return qv_fail(QV_ERR_NOMEM, "out of memory");
    }
    for (long i = 0; i < NG; i++) {
        b1[i] = ((const uint8_t *)ts1->data)[i];
        uint8_t z = ((const uint8_t *)tz->data)[i];
        bz[i] = c->qserve ? (uint8_t)(256 - z) : z; /* -(-z*s1) mod 256 */
    }
    qv_status st = QV_OK;
    if (c->unpacked) {
        memcpy(g->s1, b1, (size_t)NG);
        memcpy(g->sz1, bz, (size_t)NG);
    } else {
        st = qv_w4g128_unpack_groupbytes(b1, c->N, c->K, g->s1);
        if (st == QV_OK) st = qv_w4g128_unpack_groupbytes(bz, c->N, c->K, g->sz1);
    }
    free(b1);
    free(bz);
    if (st == QV_OK && (st = qv_w4g128_check_codes(g->u, g->s1, g->sz1, c->N, c->K)) != QV_OK)
        st = qv_fail_prefix(QV_ERR_INPUT, "%s: case '%s': tensors '%s', '%s', '%s'", ts1->file, c->name,
                            qv_kc_get(ts, "w")->name, ts1->name, tz->name);
    return st;
}

/* The row-sum operand: qvet's INT32 sum of the codes (computed when not dumped; when dumped it
 * must be that sum), QServe's FP16 sum of the unquantized activations as given. */
static qv_status load_rowsum(const qv_kcheck_case *c, const qv_kc_tensors *ts, float *rs)
{
    const int M = c->M, K = c->K;
    const int8_t *x = qv_kc_get(ts, "x")->data;
    if (c->qserve) {
        qv_fp16_to_fp32_n(qv_kc_get(ts, "a_ssum")->data, rs, M);
        return QV_OK;
    }
    const qv_kc_tensor *t = qv_kc_get(ts, "rowsum");
    for (int m = 0; m < M; m++) {
        int32_t s = 0;
        for (int k = 0; k < K; k++) s += x[(size_t)m * K + k];
        if (t && ((const int32_t *)t->data)[m] != s)
            return qv_fail(QV_ERR_INPUT, "%s: case '%s': tensor '%s' (rowsum) [%d] = %d, but the codes of row %d sum to "
                           "%d (qvet's row sum is the INT32 sum of x)", t->file, c->name, t->name, m,
                           ((const int32_t *)t->data)[m], m, s);
        rs[m] = (float)s; /* __int2float_rn of the INT32 sum, as the epilogue takes it */
    }
    return QV_OK;
}

static qv_status reference(const qv_kcheck_case *c, const qv_kc_tensors *ts, gemm_ref *g, qv_fp16_report *rep)
{
    const int M = c->M, N = c->N, K = c->K, G = c->K / QV_QOQ_GROUP;
    const long NK = (long)N * K, MN = (long)M * N;
    const int8_t *x = qv_kc_get(ts, "x")->data;
    g->sa = to_f32(qv_kc_get(ts, "s_a"), M);
    g->acc = malloc((size_t)MN * sizeof(int32_t));
    g->V = malloc((size_t)MN * sizeof(float));
    g->Y = malloc((size_t)MN * sizeof(qv_fp16));
    if (!g->sa || !g->acc || !g->V || !g->Y) return qv_fail(QV_ERR_NOMEM, "out of memory");
    qv_status st;
    if (c->op == QV_KC_W8A8) {
        st = qv_gemm_acc_s8s8(x, qv_kc_get(ts, "w")->data, M, N, K, QV_QOQ_W8_KMAX, g->acc, QV_GEMM_BLAS);
    } else {
        if (!(g->u = malloc((size_t)NK))) return qv_fail(QV_ERR_NOMEM, "out of memory");
        QV_TRY(load_codes(c, qv_kc_get(ts, "w"), g->u));
        if (c->op == QV_KC_W4A8_CHN) {
            if (!(g->rs = malloc((size_t)M * sizeof(float)))) return qv_fail(QV_ERR_NOMEM, "out of memory");
            QV_TRY(load_rowsum(c, ts, g->rs));
            st = qv_gemm_acc_s8u4(x, g->u, M, N, K, g->acc, QV_GEMM_BLAS);
        } else {
            g->s1 = malloc((size_t)N * G);
            g->sz1 = malloc((size_t)N * G);
            g->w8 = malloc((size_t)NK);
            if (!g->s1 || !g->sz1 || !g->w8) return qv_fail(QV_ERR_NOMEM, "out of memory");
            QV_TRY(load_groups(c, ts, g));
            QV_TRY(qv_w4g128_dequant_ref(g->u, g->s1, g->sz1, N, K, g->w8));
            st = qv_gemm_acc_s8s8(x, g->w8, M, N, K, QV_QOQ_G128_KMAX, g->acc, QV_GEMM_BLAS);
        }
    }
    QV_TRY(st);
    memset(rep, 0, sizeof *rep);
    if (c->op == QV_KC_W4A8_CHN)
        st = qv_epilogue_w4a8_pc(g->acc, M, N, g->sa, g->rs, qv_kc_get(ts, "s_w")->data, qv_kc_get(ts, "sz")->data,
                                 c->qserve, g->Y, g->V, rep);
    else
        st = qv_epilogue_scaled(g->acc, M, N, g->sa, qv_kc_get(ts, c->op == QV_KC_W8A8 ? "s_w" : "s0")->data, c->qserve,
                                g->Y, g->V, rep);
    /* an overflow or a non-finite reference value is a finding reported with the case */
    return st == QV_ERR_CHECK ? (qv_clear_error(), QV_OK) : st;
}

/* E for output (m, n): 2 gamma_k T + 2k * 2^-150, T from the reference's operands in double. */
static double bound_at(const qv_kcheck_case *c, const qv_kc_tensors *ts, const gemm_ref *g, int m, int n)
{
    const double a = fabs((double)g->acc[(size_t)m * c->N + n]), sa = fabs((double)g->sa[m]);
    if (c->op == QV_KC_W4A8_CHN) {
        double sw = fabs((double)qv_fp16_to_fp32(((const qv_fp16 *)qv_kc_get(ts, "s_w")->data)[n]));
        double sz = fabs((double)qv_fp16_to_fp32(((const qv_fp16 *)qv_kc_get(ts, "sz")->data)[n]));
        double rs = fabs((double)g->rs[m]);
        double T = c->qserve ? sa * sw * a + sz * rs : sa * (sw * a + sz * rs);
        return 2.0 * qv_kcheck_gamma(4) * T + 8.0 * TWO_M150;
    }
    double s = fabs((double)qv_fp16_to_fp32(((const qv_fp16 *)qv_kc_get(ts, c->op == QV_KC_W8A8 ? "s_w" : "s0")->data)[n]));
    return 2.0 * qv_kcheck_gamma(3) * sa * s * a + 6.0 * TWO_M150;
}

qv_status qv_kc_check_gemm(const qv_kcheck_case *c, const qv_kc_tensors *ts, qv_kcheck_result *r, cJSON *j)
{
    gemm_ref g;
    memset(&g, 0, sizeof g);
    qv_fp16_report rep;
    qv_status st = reference(c, ts, &g, &rep);
    if (st != QV_OK) {
        ref_free(&g);
        return st;
    }
    const int N = c->N;
    const long MN = (long)c->M * N;
    const qv_kc_tensor *ta = qv_kc_get(ts, "acc"), *ty = qv_kc_get(ts, "y");
    const int32_t *acc = ta ? ta->data : NULL;
    const qv_fp16 *y = ty->data;
    long acc_bad = 0, differ = 0, beyond = 0, first = -1;
    int max_ulp = 0;
    for (long i = 0; i < MN; i++) {
        int bad = 0;
        if (acc && acc[i] != g.acc[i]) acc_bad++, bad = 1;
        if (y[i] != g.Y[i]) {
            differ++;
            int ul = qv_kcheck_fp16_ulps(y[i], g.Y[i]);
            if (ul > max_ulp) max_ulp = ul;
            double E = bound_at(c, ts, &g, (int)(i / N), (int)(i % N));
            if (!qv_kcheck_fp16_within(y[i], (double)g.V[i], E, !c->qserve)) beyond++, bad = 1;
        }
        if (bad && first < 0) first = i;
    }
    const long overflow = rep.count + rep.nonfinite;
    r->ok = acc_bad == 0 && beyond == 0 && overflow == 0;
    char accs[64], outs[96] = "", ovs[96] = "";
    if (!acc) snprintf(accs, sizeof accs, "not dumped");
    else if (acc_bad) snprintf(accs, sizeof accs, "MISMATCH (%ld)", acc_bad);
    else snprintf(accs, sizeof accs, "bit-exact");
    if (!differ) snprintf(outs, sizeof outs, "bit-exact");
    else if (!beyond) snprintf(outs, sizeof outs, "%ld differ, max %d ulp, within bound", differ, max_ulp);
    else snprintf(outs, sizeof outs, "%ld beyond bound, max %d ulp", beyond, max_ulp);
    if (overflow)
        snprintf(ovs, sizeof ovs, "  FP16 overflow: %ld reference values beyond 65504, first [%ld][%ld]", overflow,
                 (rep.count ? rep.first : rep.first_nonfinite) / N, (rep.count ? rep.first : rep.first_nonfinite) % N);
    snprintf(r->summary, sizeof r->summary, "acc: %s  out: %s%s", accs, outs, ovs);
    if (first >= 0) {
        char as[64];
        if (acc) snprintf(as, sizeof as, "acc %d (ref %d)", acc[first], g.acc[first]);
        else snprintf(as, sizeof as, "acc not dumped (ref %d)", g.acc[first]);
        snprintf(r->first, sizeof r->first,
                 "first mismatch m=%ld n=%ld: %s, out 0x%04x (ref 0x%04x, pre-rounding %.9g, bound %.3g)", first / N,
                 first % N, as, y[first], g.Y[first], (double)g.V[first], bound_at(c, ts, &g, (int)(first / N), (int)(first % N)));
    }
    cJSON_AddBoolToObject(j, "acc_dumped", acc != NULL);
    cJSON_AddNumberToObject(j, "acc_mismatch", (double)acc_bad);
    cJSON_AddNumberToObject(j, "out_differ", (double)differ);
    cJSON_AddNumberToObject(j, "out_beyond_bound", (double)beyond);
    cJSON_AddNumberToObject(j, "out_max_ulp", max_ulp);
    cJSON_AddNumberToObject(j, "overflow_ref", (double)overflow);
    if (first >= 0) {
        cJSON_AddNumberToObject(j, "first_m", (double)(first / N));
        cJSON_AddNumberToObject(j, "first_n", (double)(first % N));
    }
    ref_free(&g);
    return QV_OK;
}
