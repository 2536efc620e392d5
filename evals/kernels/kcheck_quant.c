/* Quantizer cases of `qvet kernels --check`: A8 per token (a8_quant) and KV4 (kv4_quant), on the
 * kernel's own input x, against ref/qoq's definitions (qv_ref_a8_pre, qv_kv4_quant_ref,
 * qv_kv4_write_token).
 *
 * A8 (docs/byo.md derives each rule): the reference computes pre = fl(x * fl(127/amax)), two
 * roundings of the exact x*127/amax; a kernel evaluating the same quotient in any order with at
 * most three roundings (x/s_a, x*(1/s_a), ...) lies within gamma_3 of it, so a code may differ by
 * one only where pre is within (gamma_2 + gamma_3)|pre| of the rounding boundary (the tie rule of
 * qv_ref_a8_code_check); ties are counted. s_a = amax/127: one rounding on the reference side, at
 * most two on the kernel's: |s_a - s_a_ref| <= (gamma_1 + gamma_2) s_a_ref. The INT32 row sum must
 * be the sum of the kernel's own codes. QServe layout: s_a in FP16 must be the rounding of a value
 * within gamma_2 of max(amax, 1e-6)/127; a_ssum in FP16 the rounding of a value within
 * gamma_K * sum|x| of the exact sum (any order of K - 1 additions; the double sum's own error,
 * K * 2^-53 * sum|x|, added).
 *
 * KV4: codes, scales and mins (QServe: zeros) bit for bit, or the whole pages' bytes of every
 * written slot (NUMERICS.md: KV4 codes of a given FP input match bit for bit). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcheck_internal.h"
#include "qvet/fp16.h"
#include "qvet/kernels_ref.h"
#include "qvet/qoq.h"

static void count_str(char *buf, size_t n, long bad, const char *what_bad)
{
    if (bad) snprintf(buf, n, "%s (%ld)", what_bad, bad);
    else snprintf(buf, n, "bit-exact");
}

void qv_kc_a8_verdict(qv_kcheck_result *r, cJSON *j, long code_bad, long ties, long sa_bad, long sa_differ,
                      int rs_dumped, long rs_bad, const char *rs_name, const char *rs_ok_text)
{
    r->ok = code_bad == 0 && sa_bad == 0 && rs_bad == 0;
    char cs[96], ss[96], rss[96];
    if (code_bad) snprintf(cs, sizeof cs, "MISMATCH (%ld)", code_bad);
    else snprintf(cs, sizeof cs, "%s (%ld ties)", ties ? "bit-exact but ties" : "bit-exact", ties);
    if (sa_bad) snprintf(ss, sizeof ss, "MISMATCH (%ld)", sa_bad);
    else if (sa_differ) snprintf(ss, sizeof ss, "%ld differ, within bound", sa_differ);
    else snprintf(ss, sizeof ss, "bit-exact");
    if (!rs_dumped) snprintf(rss, sizeof rss, "not dumped");
    else if (rs_bad) snprintf(rss, sizeof rss, "MISMATCH (%ld)", rs_bad);
    else snprintf(rss, sizeof rss, "%s", rs_ok_text);
    snprintf(r->summary, sizeof r->summary, "codes: %s  s_a: %s  %s: %s", cs, ss, rs_name, rss);
    cJSON_AddNumberToObject(j, "code_mismatch", (double)code_bad);
    cJSON_AddNumberToObject(j, "code_ties", (double)ties);
    cJSON_AddNumberToObject(j, "s_a_differ", (double)sa_differ);
    cJSON_AddNumberToObject(j, "s_a_beyond_bound", (double)sa_bad);
}

qv_status qv_kc_check_a8(const qv_kcheck_case *c, const qv_kc_tensors *ts, qv_kcheck_result *r, cJSON *j)
{
    const int M = c->M, K = c->K;
    const size_t MK = (size_t)M * K;
    const float *x = qv_kc_get(ts, "x")->data;
    const int8_t *gq = qv_kc_get(ts, "q")->data;
    const qv_kc_tensor *tsa = qv_kc_get(ts, "s_a"), *trs = qv_kc_get(ts, c->qserve ? "a_ssum" : "rowsum");
    int8_t *q = malloc(MK + 1);
    float *sa = malloc((size_t)M * sizeof(float)), *pre = malloc(MK * sizeof(float) + 1);
    if (!q || !sa || !pre) {
        free(q); free(sa); free(pre);
        return qv_fail(QV_ERR_NOMEM, "out of memory");
    }
    qv_status st = qv_ref_a8_pre(x, M, K, c->qserve, q, sa, pre);
    if (st != QV_OK) {
        free(q); free(sa); free(pre);
        return qv_fail_prefix(QV_ERR_INPUT, "%s: case '%s'", qv_kc_get(ts, "x")->file, c->name);
    }
    const double rel = qv_kcheck_gamma(2) + qv_kcheck_gamma(3);
    long ties = 0, code_bad = 0, sa_differ = 0, sa_bad = 0, rs_bad = 0, first = -1;
    int first_row_sa = -1, first_row_rs = -1;
    for (int m = 0; m < M; m++) {
        int32_t own = 0;
        for (int k = 0; k < K; k++) {
            size_t i = (size_t)m * K + k;
            int v = qv_ref_a8_code_check(gq[i], q[i], pre[i], rel);
            if (v > 0) ties++;
            if (v < 0 && code_bad++ == 0) first = (long)i;
            own += gq[i];
        }
        double amax = 0, sum = 0, sabs = 0;
        for (int k = 0; k < K; k++) {
            double xv = x[(size_t)m * K + k];
            amax = fmax(amax, fabs(xv)), sum += xv, sabs += fabs(xv);
        }
        int sa_ok, sa_same;
        if (c->qserve) {
            uint16_t g = ((const uint16_t *)tsa->data)[m];
            double v = fmax(amax, 1e-6) / 127.0; /* the reals QServe's FP32 scale approximates */
            sa_same = g == qv_fp32_to_fp16(sa[m]);
            sa_ok = qv_kcheck_fp16_within(g, v, qv_kcheck_gamma(2) * v, 0);
        } else {
            float g = ((const float *)tsa->data)[m];
            sa_same = memcmp(&g, &sa[m], sizeof g) == 0;
            sa_ok = fabs((double)g - (double)sa[m]) <= (qv_kcheck_gamma(1) + qv_kcheck_gamma(2)) * (double)sa[m];
        }
        if (!sa_same) sa_differ++;
        if (!sa_ok && sa_bad++ == 0) first_row_sa = m;
        if (trs) {
            int ok;
            if (c->qserve) {
                double E = qv_kcheck_gamma(K) * sabs + (double)K * 0x1p-53 * sabs;
                ok = qv_kcheck_fp16_within(((const uint16_t *)trs->data)[m], sum, E, 0);
            } else {
                ok = ((const int32_t *)trs->data)[m] == own;
            }
            if (!ok && rs_bad++ == 0) first_row_rs = m;
        }
    }
    qv_kc_a8_verdict(r, j, code_bad, ties, sa_bad, sa_differ, trs != NULL, rs_bad, c->qserve ? "a_ssum" : "rowsum",
                     c->qserve ? "within bound" : "sum of codes");
    if (first >= 0)
        snprintf(r->first, sizeof r->first, "first mismatch m=%ld k=%ld: code %d (ref %d, pre-rounding %.9g)", first / K,
                 first % K, gq[first], q[first], (double)pre[first]);
    else if (first_row_sa >= 0)
        snprintf(r->first, sizeof r->first, "first mismatch m=%d: s_a beyond its bound (ref %.9g)", first_row_sa,
                 (double)sa[first_row_sa]);
    else if (first_row_rs >= 0)
        snprintf(r->first, sizeof r->first, "first mismatch m=%d: %s", first_row_rs,
                 c->qserve ? "a_ssum beyond its bound" : "rowsum is not the sum of the row's codes");
    cJSON_AddBoolToObject(j, "rowsum_dumped", trs != NULL);
    cJSON_AddNumberToObject(j, "rowsum_mismatch", (double)rs_bad);
    free(q); free(sa); free(pre);
    return QV_OK;
}

/* Per-token arrays: codes [T][H][D/2], scales and mins (zeros) [T][H]. */
static qv_status kv4_arrays(const qv_kcheck_case *c, const qv_kc_tensors *ts, const float *x, long *bad,
                            long *first, cJSON *j)
{
    const int D = c->D;
    const long TH = (long)c->T * c->H;
    const uint8_t *gc = qv_kc_get(ts, "codes")->data;
    const qv_fp16 *gs = qv_kc_get(ts, "scales")->data, *gm = qv_kc_get(ts, c->qserve ? "zeros" : "mins")->data;
    long bc = 0, bs = 0, bm = 0;
    uint8_t *codes = malloc((size_t)D / 2);
    if (!codes) return qv_fail(QV_ERR_NOMEM, "out of memory");
    for (long i = 0; i < TH; i++) {
        qv_fp16 s, mn;
        qv_status st = qv_kv4_quant_ref(x + (size_t)i * D, D, c->qserve, codes, &s, &mn);
        if (st != QV_OK) {
            free(codes);
            return qv_fail_prefix(QV_ERR_INPUT, "%s: case '%s': token %ld head %ld", qv_kc_get(ts, "x")->file,
                                  c->name, i / c->H, i % c->H);
        }
        int b = 0;
        if (memcmp(codes, gc + (size_t)i * (D / 2), (size_t)D / 2)) bc++, b = 1;
        if (s != gs[i]) bs++, b = 1;
        if (mn != gm[i]) bm++, b = 1;
        if (b && (*bad)++ == 0) *first = i;
    }
    free(codes);
    cJSON_AddNumberToObject(j, "codes_mismatch", (double)bc);
    cJSON_AddNumberToObject(j, "scales_mismatch", (double)bs);
    cJSON_AddNumberToObject(j, c->qserve ? "zeros_mismatch" : "mins_mismatch", (double)bm);
    return QV_OK;
}

/* Paged: the reference writes every token into a copy of the kernel's pages, so the bytes of
 * slots no token was written to (the last page's tail) are the kernel's own and never differ. */
static qv_status kv4_pages(const qv_kcheck_case *c, const qv_kc_tensors *ts, const float *x, long *bad,
                           long *first)
{
    const qv_kc_tensor *tp = qv_kc_get(ts, "pages");
    const long P = qv_kc_dim(c, 'P'), B = qv_kc_dim(c, 'B');
    uint8_t *ref = malloc((size_t)(P * B));
    if (!ref) return qv_fail(QV_ERR_NOMEM, "out of memory");
    memcpy(ref, tp->data, (size_t)(P * B));
    qv_kv4_geom g = {c->H, c->D, c->page};
    for (long t = 0; t < c->T; t++) {
        qv_status st = qv_kv4_write_token(ref, P, g, t, x + (size_t)t * c->H * c->D, c->qserve);
        if (st != QV_OK) {
            free(ref);
            return qv_fail_prefix(QV_ERR_INPUT, "%s: case '%s': token %ld", qv_kc_get(ts, "x")->file, c->name, t);
        }
    }
    const uint8_t *gp = tp->data;
    for (long i = 0; i < P * B; i++)
        if (gp[i] != ref[i] && (*bad)++ == 0) *first = i;
    free(ref);
    return QV_OK;
}

qv_status qv_kc_check_kv4(const qv_kcheck_case *c, const qv_kc_tensors *ts, qv_kcheck_result *r, cJSON *j)
{
    const float *x = qv_kc_get(ts, "x")->data;
    long bad = 0, first = -1;
    if (c->page) QV_TRY(kv4_pages(c, ts, x, &bad, &first));
    else QV_TRY(kv4_arrays(c, ts, x, &bad, &first, j));
    r->ok = bad == 0;
    char s[96];
    count_str(s, sizeof s, bad, c->page ? "MISMATCH bytes" : "MISMATCH (token, head) slots");
    snprintf(r->summary, sizeof r->summary, "%s: %s", c->page ? "pages" : "codes/scales/mins", s);
    if (c->qserve && !c->page) snprintf(r->summary, sizeof r->summary, "codes/scales/zeros: %s", s);
    if (first >= 0) {
        if (c->page)
            snprintf(r->first, sizeof r->first, "first mismatch: page %ld byte %ld", first / qv_kc_dim(c, 'B'),
                     first % qv_kc_dim(c, 'B'));
        else
            snprintf(r->first, sizeof r->first, "first mismatch: token %ld head %ld", first / c->H, first % c->H);
    }
    cJSON_AddNumberToObject(j, c->page ? "byte_mismatch" : "slot_mismatch", (double)bad);
    return QV_OK;
}
