/* Seeded inputs and the reference definition's outputs for a GEMM kernel case. Value modes
 * reach the edges of each format: the protective range (g128 groups spanning [-119, 119]),
 * codes 0/15 with activations +-127, level-2 s1 = 16 with z = 8 (w8' spans [-128, 112]), and
 * scales large enough that the FP16 output overflows (a finding the implementation must count). */
#include <stdlib.h>
#include <string.h>

#include "kcase_internal.h"
#include "qvet/qoq.h"


void qv_kdata_free(qv_kdata *d)
{
    free(d->x); free(d->sa); free(d->rowsum); free(d->w8); free(d->u); free(d->pk);
    free(d->sw); free(d->sz); free(d->s1); free(d->sz1); free(d->s1p); free(d->sz1p);
    free(d->acc); free(d->y);
    memset(d, 0, sizeof *d);
}

static int8_t edge_x(qv_kvalues v, long k) { return v == QV_KV_MAXPOS ? 127 : v == QV_KV_MAXNEG ? -127 : (k % 2 ? -127 : 127); }
static uint8_t edge_u(qv_kvalues v, long k) { return v == QV_KV_MAXPOS ? 15 : v == QV_KV_MAXNEG ? 0 : (k % 2 ? 0 : 15); }

qv_status qv_kdata_alloc(qv_kdata *d, int M, int N, int K, int G)
{
    memset(d, 0, sizeof *d);
    const long MK = (long)M * K, NK = (long)N * K, MN = (long)M * N;
    d->M = M, d->N = N, d->K = K, d->G = G;
    d->x = malloc((size_t)MK);
    d->sa = malloc((size_t)M * sizeof(float));
    d->rowsum = malloc((size_t)M * sizeof(int32_t));
    d->w8 = malloc((size_t)NK);
    d->u = malloc((size_t)NK);
    d->pk = malloc((size_t)NK / 2 + 1);
    d->sw = malloc((size_t)N * sizeof(qv_fp16));
    d->sz = malloc((size_t)N * sizeof(qv_fp16));
    d->s1 = malloc((size_t)N * (G ? G : 1));
    d->sz1 = malloc((size_t)N * (G ? G : 1));
    d->s1p = malloc((size_t)N * (G ? G : 1));
    d->sz1p = malloc((size_t)N * (G ? G : 1));
    d->acc = malloc((size_t)MN * sizeof(int32_t));
    d->y = malloc((size_t)MN * sizeof(qv_fp16));
    if (!d->x || !d->sa || !d->rowsum || !d->w8 || !d->u || !d->pk || !d->sw || !d->sz || !d->s1 ||
        !d->sz1 || !d->s1p || !d->sz1p || !d->acc || !d->y) {
        qv_kdata_free(d);
        return qv_fail(QV_ERR_NOMEM, "kernel case M=%d N=%d K=%d: out of memory", M, N, K);
    }
    return QV_OK;
}

qv_status qv_kdata_make(const qv_kcase *c, uint64_t seed, qv_kdata *d)
{
    memset(d, 0, sizeof *d);
    const int M = c->M, N = c->N, K = c->K;
    if (M < 1 || N < 1 || K < 1) return qv_fail(QV_ERR_USAGE, "kernel case: bad shape M=%d N=%d K=%d", M, N, K);
    const long MK = (long)M * K, NK = (long)N * K;
    const int G = c->kernel == QV_KK_W4A8_G128 ? K / 128 : 0;
    QV_TRY(qv_kdata_alloc(d, M, N, K, G));
    qv_krng r = {seed};
    const qv_kvalues v = c->values;
    const int edge = v == QV_KV_MAXPOS || v == QV_KV_MAXNEG || v == QV_KV_ALTERNATE;
    for (long i = 0; i < MK; i++) d->x[i] = edge ? edge_x(v, i % K) : (int8_t)((int)(qv_krng_next(&r) % 255) - 127);
    for (int m = 0; m < M; m++) {
        int32_t s = 0;
        for (int k = 0; k < K; k++) s += d->x[(long)m * K + k];
        d->rowsum[m] = s;
        d->sa[m] = v == QV_KV_BIGSCALE ? 1.0f : (float)(0.001 + 0.02 * qv_krng_unif(&r));
    }
    for (int n = 0; n < N; n++) {
        float s = v == QV_KV_BIGSCALE ? 65504.0f : (float)(0.0005 + 0.01 * qv_krng_unif(&r));
        d->sw[n] = qv_fp32_to_fp16(s);
        int z = v == QV_KV_BIGSCALE ? 1 : (int)(qv_krng_next(&r) % 16);
        d->sz[n] = qv_fp32_to_fp16(qv_fp16_to_fp32(d->sw[n]) * (float)z); /* sz = fp16(s_w * z) */
    }
    for (long i = 0; i < NK; i++) {
        d->u[i] = edge ? edge_u(v, i % K) : (uint8_t)(qv_krng_next(&r) % 16);
        d->w8[i] = edge ? edge_x(v, i % K) : (int8_t)((int)(qv_krng_next(&r) % 255) - 127);
    }
    qv_status st = QV_OK;
    if (G) {
        for (int n = 0; n < N && st == QV_OK; n++)
            for (int g = 0; g < G && st == QV_OK; g++) {
                long o = (long)n * K + (long)g * 128;
                if (!edge) {
                    /* level-1 values in the protective range, a random range per group; every
                     * third group spans the whole range [-119, 119] */
                    int a = (int)(qv_krng_next(&r) % 120), b = (int)(qv_krng_next(&r) % 120);
                    int8_t w[128];
                    uint8_t z;
                    for (int i = 0; i < 128; i++) w[i] = (int8_t)((int)(qv_krng_next(&r) % (uint64_t)(a + b + 1)) - a);
                    if (g % 3 == 0) w[0] = -119, w[1] = 119;
                    st = qv_quant_w4g128_group_ref(w, 128, d->u + o, &d->s1[n * G + g], &z, &d->sz1[n * G + g]);
                } else {
                    d->s1[n * G + g] = 16; /* u*s1 - sz1 spans [-128, 112] */
                    d->sz1[n * G + g] = 128;
                }
            }
    }
    if (st == QV_OK) return qv_kdata_finish(c, d);
    if (st != QV_OK) {
        qv_kdata_free(d);
        return qv_fail_prefix(st, "kernel case %s M=%d N=%d K=%d", qv_kkernel_name(c->kernel), M, N, K);
    }
    return QV_OK;
}

/* From the inputs (x, sa, rowsum, w8 or u, sw, sz, s1, sz1), the derived operands (w8' for g128,
 * packed codes and group bytes) and the reference outputs. Frees d on failure. */
qv_status qv_kdata_finish(const qv_kcase *c, qv_kdata *d)
{
    const int M = d->M, N = d->N, K = d->K, G = d->G;
    qv_status st = QV_OK;
    if (G) {
        if (st == QV_OK) st = qv_w4g128_dequant_ref(d->u, d->s1, d->sz1, N, K, d->w8);
        if (st == QV_OK) st = qv_w4g128_pack_groupbytes(d->s1, N, K, d->s1p);
        if (st == QV_OK) st = qv_w4g128_pack_groupbytes(d->sz1, N, K, d->sz1p);
    }
    if (st == QV_OK && c->kernel != QV_KK_W8A8) st = qv_w4_pack(d->u, N, K, d->pk);
    /* the reference: plain-loop INT32 GEMM and the fixed-order epilogue */
    if (st == QV_OK) {
        if (c->kernel == QV_KK_W4A8_CHN)
            st = qv_gemm_acc_s8u4(d->x, d->u, M, N, K, d->acc, QV_GEMM_LOOP);
        else
            st = qv_gemm_acc_s8s8(d->x, d->w8, M, N, K, G ? QV_QOQ_G128_KMAX : QV_QOQ_W8_KMAX, d->acc, QV_GEMM_LOOP);
    }
    if (st == QV_OK) {
        qv_fp16_report rep;
        memset(&rep, 0, sizeof rep);
        if (c->kernel == QV_KK_W4A8_CHN) {
            float *rs = malloc((size_t)M * sizeof(float));
            if (!rs) st = qv_fail(QV_ERR_NOMEM, "out of memory");
            for (int m = 0; rs && m < M; m++) rs[m] = (float)d->rowsum[m];
            if (rs) st = qv_epilogue_w4a8_pc(d->acc, M, N, d->sa, rs, d->sw, d->sz, 0, d->y, NULL, &rep);
            free(rs);
        } else {
            st = qv_epilogue_scaled(d->acc, M, N, d->sa, d->sw, 0, d->y, NULL, &rep);
        }
        if (st == QV_ERR_CHECK && rep.count > 0 && rep.nonfinite == 0) st = QV_OK; /* counted overflow */
        d->nsat = rep.count;
    }
    if (st != QV_OK) {
        qv_kdata_free(d);
        return qv_fail_prefix(st, "kernel case %s M=%d N=%d K=%d", qv_kkernel_name(c->kernel), M, N, K);
    }
    return QV_OK;
}

void qv_kdata_compare(const qv_kdata *d, const int32_t *acc, const qv_fp16 *y, long sat, qv_kresult *r)
{
    long MN = (long)d->M * d->N;
    r->first = -1;
    for (long i = 0; i < MN; i++) {
        int bad = 0;
        if (acc && acc[i] != d->acc[i]) r->acc_mismatch++, bad = 1;
        if (y && y[i] != d->y[i]) r->out_mismatch++, bad = 1;
        if (bad && r->first < 0) {
            r->first = i;
            r->first_acc_ref = d->acc[i];
            r->first_acc_got = acc ? acc[i] : 0;
            r->first_out_ref = d->y[i];
            r->first_out_got = y ? y[i] : 0;
        }
    }
    r->sat_ref = d->nsat;
    r->sat_got = sat;
    r->ok = r->acc_mismatch == 0 && r->out_mismatch == 0 && r->w_mismatch == 0 && (!y || sat == d->nsat);
}
