/* GPTQ (Frantar et al.) for the three checkpoint formats, with the checkpoint's own quantizer.
 *
 * Scales are fixed before the sweep, as deepcompressor's QoQ configs do (docs/quant.md): the
 * format's reference quantizer (ref/qoq: qv_quant_w4g128_ref, qv_quant_w4pc_ref, qv_quant_w8_ref;
 * the same functions qv_qlinear_quantize calls) derives every scale and zero point from the
 * (pre-clipped) weight; the column sweep then chooses codes with those scales by the quantizer's
 * own formulas, and feeds each column's error into the columns not yet quantized. The checkpoint
 * linear is qv_qlinear_quantize's output with its codes replaced by the sweep's: its scale bytes are
 * the quantizer's, bit for bit.
 *
 * One addition to the quantizer's formula, for g128 only: an updated weight can leave the group's
 * original range, and a code the quantizer never emits for in-range values may dequantize outside
 * INT8 (ref/qoq/quant_w4g128.c: lo = -107, hi = 119 gives (15 - 7)*16 = 128). The sweep clamps each
 * code to the codes whose u*s1 - sz1 lies in [-128, 127]. For values inside the group's range the
 * quantizer's codes already satisfy this (the proof in quant_w4g128.c), so the clamp never acts
 * there and a sweep without error feedback reproduces the quantizer exactly (tested).
 *
 * Linear algebra: H (symmetric) is stored row-major, which for a symmetric matrix is also its
 * column-major form. LAPACK's lower Cholesky (column-major L, H = L L^T) seen row-major is the
 * upper factor U = L^T with H = U^T U, the form the sweep reads row by row. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qvet/qoq.h"
#include "qvet/quant.h"

#include <cblas.h> /* after qvet headers: it defines the macro I */
#undef I

/* OpenBLAS's built-in LAPACK (Fortran ABI: 32-bit integers by reference, the hidden length of the
 * character argument last). Declared here because Debian ships no LAPACK header with OpenBLAS
 * (LAPACKE is a separate package, liblapacke-dev); docs/quant.md says why these two. */
extern void spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info, size_t uplo_len);
extern void spotri_(const char *uplo, const int *n, float *a, const int *lda, int *info, size_t uplo_len);

void qv_gptq_opts_init(qv_gptq_opts *o)
{
    memset(o, 0, sizeof *o);
    o->percdamp = 0.01f;
    o->block = 128;
    o->act_order = 1;
    o->max_tries = 250;
}

void qv_gptq_hessian_add(float *Hs, const float *X, int M, int K)
{
    if (M > 0) cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, K, M, 1.0f, X, K, 1.0f, Hs, K);
}

void qv_gptq_hessian_finish(float *Hs, int K, long rows)
{
    float sc = rows > 0 ? 2.0f / (float)rows : 0.0f;
    for (int i = 0; i < K; i++)
        for (int j = i; j < K; j++) {
            float v = Hs[(size_t)i * K + j] * sc;
            Hs[(size_t)i * K + j] = v;
            Hs[(size_t)j * K + i] = v;
        }
}

qv_status qv_gptq_output_error(const float *Hs, int K, const float *W, const float *Wq, int N, double *err)
{
    size_t nk = (size_t)N * K;
    float *D = qv_malloc(sizeof(float) * nk), *T = qv_malloc(sizeof(float) * nk);
    if (!D || !T) {
        free(D), free(T);
        return qv_fail(QV_ERR_NOMEM, "gptq: no memory for the error of [%d, %d]", N, K);
    }
    for (size_t i = 0; i < nk; i++) D[i] = W[i] - Wq[i];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, K, K, 1.0f, D, K, Hs, K, 0.0f, T, K);
    double e = 0;
    for (size_t i = 0; i < nk; i++) e += (double)D[i] * T[i];
    *err = e;
    free(D), free(T);
    return QV_OK;
}

/* The fixed quantization grid of one linear, from the format's reference quantizer. */
typedef struct {
    qv_qformat f;
    int N, K, G;
    float *s;           /* [N] g128 s0, chn s_w, w8a8 s_w (FP16 values) */
    float *sz;          /* [N] chn: scaled zero (FP16 value) */
    uint8_t *s1, *z;    /* g128 [N][G]; chn z [N] */
} grid;

static void grid_free(grid *g)
{
    free(g->s), free(g->sz), free(g->s1), free(g->z);
}

static qv_status grid_make(qv_qformat f, const float *W, int N, int K, grid *g)
{
    memset(g, 0, sizeof *g);
    g->f = f, g->N = N, g->K = K, g->G = f == QV_QFMT_W4A8_G128 ? K / QV_QOQ_GROUP : 1;
    size_t nk = (size_t)N * K, ng = (size_t)N * g->G;
    uint8_t *u = qv_malloc(nk), *sz1 = qv_malloc(ng);
    qv_fp16 *h = qv_malloc(sizeof(qv_fp16) * N), *hz = qv_malloc(sizeof(qv_fp16) * N);
    g->s = qv_malloc(sizeof(float) * N), g->sz = qv_malloc(sizeof(float) * N);
    g->s1 = qv_malloc(ng), g->z = qv_malloc(ng);
    qv_status st = u && sz1 && h && hz && g->s && g->sz && g->s1 && g->z ? QV_OK : QV_ERR_NOMEM;
    if (st == QV_OK) {
        if (f == QV_QFMT_W4A8_G128) st = qv_quant_w4g128_ref(W, N, K, QV_QOQ_PROTECT, u, h, g->s1, g->z, sz1);
        else if (f == QV_QFMT_W4A8_CHN) st = qv_quant_w4pc_ref(W, N, K, u, h, g->z, hz);
        else st = qv_quant_w8_ref(W, N, K, (int8_t *)u, h);
    }
    for (int n = 0; st == QV_OK && n < N; n++) {
        g->s[n] = qv_fp16_to_fp32(h[n]);
        g->sz[n] = f == QV_QFMT_W4A8_CHN ? qv_fp16_to_fp32(hz[n]) : 0.0f;
    }
    free(u), free(sz1), free(h), free(hz);
    if (st != QV_OK) grid_free(g);
    return st;
}

/* Code and dequantized value of w at (n, k): the quantizer's formulas (rintf is ref/qoq's rne). */
static inline float grid_quant(const grid *g, int n, int k, float w, int *code)
{
    float s = g->s[n];
    if (g->f == QV_QFMT_W4A8_G128) {
        int w8 = (int)rintf(w / s);
        w8 = w8 < -QV_QOQ_PROTECT ? -QV_QOQ_PROTECT : w8 > QV_QOQ_PROTECT ? QV_QOQ_PROTECT : w8;
        size_t gi = (size_t)n * g->G + (size_t)(k / QV_QOQ_GROUP);
        int S = g->s1[gi], Z = g->z[gi];
        int lo = Z - 128 / S, hi = Z + 127 / S; /* codes with u*S - Z*S in [-128, 127] */
        if (lo < 0) lo = 0;
        if (hi > 15) hi = 15;
        int u = (int)rintf((float)w8 / (float)S) + Z;
        u = u < lo ? lo : u > hi ? hi : u;
        *code = u;
        return s * (float)(u * S - Z * S);
    }
    if (g->f == QV_QFMT_W4A8_CHN) {
        int u = (int)rintf(w / s) + g->z[n];
        u = u < 0 ? 0 : u > 15 ? 15 : u;
        *code = u;
        return s * (float)u - g->sz[n];
    }
    int q = (int)rintf(w / s);
    q = q < -127 ? -127 : q > 127 ? 127 : q;
    *code = q;
    return s * (float)q;
}

/* U (row-major upper, Hinv = U^T U) from the permuted, damped H; retries with more damping as
 * deepcompressor does (+0.1 percdamp x mean diagonal per try). */
static qv_status hinv_factor(const float *Hp, int K, float damp, float step, int max_tries, float *U, int *tries,
                             float *damp_used)
{
    size_t kk = (size_t)K * K;
    for (int t = 0; t < max_tries; t++) {
        memcpy(U, Hp, sizeof(float) * kk);
        float d = damp + step * (float)t;
        for (int i = 0; i < K; i++) U[(size_t)i * K + i] += d;
        int info = 0, n = K;
        spotrf_("L", &n, U, &n, &info, 1);
        if (info == 0) spotri_("L", &n, U, &n, &info, 1);
        if (info != 0) continue;
        /* column-major lower = row-major upper holds H^-1: mirror it into the other triangle */
        for (int i = 0; i < K; i++)
            for (int j = i + 1; j < K; j++) U[(size_t)j * K + i] = U[(size_t)i * K + j];
        spotrf_("L", &n, U, &n, &info, 1);
        if (info != 0) continue;
        for (int i = 0; i < K; i++)
            for (int j = 0; j < i; j++) U[(size_t)i * K + j] = 0.0f; /* stale: below the factor */
        *tries = t + 1;
        *damp_used = d;
        return QV_OK;
    }
    return qv_fail(QV_ERR_INPUT, "gptq: the damped Hessian [%d x %d] is not positive definite after %d tries", K, K,
                   max_tries);
}

typedef struct {
    int k;
    float d;
} diag_ix;

static int by_diag_desc(const void *a, const void *b)
{
    const diag_ix *x = a, *y = b;
    if (x->d != y->d) return x->d > y->d ? -1 : 1;
    return x->k - y->k; /* ties by index: a total order, so the permutation is deterministic */
}

qv_status qv_gptq_quantize(qv_qformat f, const float *W, const float *Wscale, int N, int K, const float *bias,
                           const float *Hs, const qv_gptq_opts *o, qv_qlinear *out, qv_gptq_info *info)
{
    memset(out, 0, sizeof *out);
    if (info) memset(info, 0, sizeof *info);
    if (!Wscale) Wscale = W;
    if (N <= 0 || K <= 0 || o->block < 1 || !(o->percdamp >= 0.0f) || o->max_tries < 1)
        return qv_fail(QV_ERR_USAGE, "gptq: bad arguments (N %d, K %d, block %d, percdamp %g, tries %d)", N, K, o->block,
                       (double)o->percdamp, o->max_tries);
    size_t nk = (size_t)N * K, kk = (size_t)K * K;
    grid g = {0};
    int *perm = qv_malloc(sizeof(int) * K), *code = qv_malloc(sizeof(int) * nk);
    diag_ix *dx = qv_malloc(sizeof(diag_ix) * K);
    float *Hp = qv_malloc(sizeof(float) * kk), *U = qv_malloc(sizeof(float) * kk), *Wp = qv_malloc(sizeof(float) * nk);
    float *E = qv_malloc(sizeof(float) * (size_t)N * o->block), *Wq = qv_malloc(sizeof(float) * nk);
    uint8_t *u8 = qv_malloc(nk);
    qv_qlinear rtn = {0};
    qv_status st = perm && code && dx && Hp && U && Wp && E && Wq && u8 ? QV_OK : QV_ERR_NOMEM;
    if (st == QV_ERR_NOMEM) st = qv_fail(st, "gptq: no memory for [%d, %d]", N, K);
    if (st == QV_OK) st = grid_make(f, Wscale, N, K, &g);
    /* the checkpoint linear: the quantizer's own output (scales, bias), codes replaced below */
    if (st == QV_OK) st = qv_qlinear_quantize(Wscale, N, K, f, NULL, bias, out);
    int dead = 0;
    if (st == QV_OK) {
        for (int k = 0; k < K; k++) dx[k].k = k, dx[k].d = Hs[(size_t)k * K + k];
        if (o->act_order) qsort(dx, (size_t)K, sizeof *dx, by_diag_desc);
        for (int c = 0; c < K; c++) perm[c] = dx[c].k;
        double mean = 0;
        for (int i = 0; i < K; i++)
            for (int j = 0; j < K; j++) Hp[(size_t)i * K + j] = Hs[(size_t)perm[i] * K + perm[j]];
        /* a column no calibration row touches: its weight cannot matter to the calibration error;
         * H gets 1 on the diagonal (invertible) and its error feeds nothing (zero off-diagonal) */
        for (int i = 0; i < K; i++) {
            if (Hp[(size_t)i * K + i] == 0.0f) Hp[(size_t)i * K + i] = 1.0f, dead++;
            mean += Hp[(size_t)i * K + i];
        }
        mean /= K;
        for (int n = 0; n < N; n++)
            for (int c = 0; c < K; c++) Wp[(size_t)n * K + c] = W[(size_t)n * K + perm[c]];
        int tries = 0;
        float damp_used = 0;
        st = hinv_factor(Hp, K, o->percdamp * (float)mean, 0.1f * o->percdamp * (float)mean, o->max_tries, U, &tries,
                         &damp_used);
        if (info) info->tries = tries, info->damp = damp_used, info->dead = dead;
    }
    for (int c0 = 0; st == QV_OK && c0 < K; c0 += o->block) {
        int c1 = c0 + o->block < K ? c0 + o->block : K, nb = c1 - c0;
        for (int c = c0; c < c1; c++) {
            const float *Uc = U + (size_t)c * K;
            float dinv = 1.0f / Uc[c];
            for (int n = 0; n < N; n++) {
                float *wr = Wp + (size_t)n * K;
                int q;
                float wq = grid_quant(&g, n, perm[c], wr[c], &q);
                code[(size_t)n * K + perm[c]] = q;
                Wq[(size_t)n * K + perm[c]] = wq;
                float e = (wr[c] - wq) * dinv;
                E[(size_t)n * nb + (c - c0)] = e;
                for (int j = c + 1; j < c1; j++) wr[j] -= e * Uc[j];
            }
        }
        if (c1 < K)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, K - c1, nb, -1.0f, E, nb, U + (size_t)c0 * K + c1,
                        K, 1.0f, Wp + c1, K);
    }
    if (st == QV_OK) {
        if (f == QV_QFMT_W8A8) {
            for (size_t i = 0; i < nk; i++) out->qweight[i] = (uint8_t)(int8_t)code[i];
        } else {
            for (size_t i = 0; i < nk; i++) u8[i] = (uint8_t)code[i];
            st = qv_w4_pack(u8, N, K, out->qweight);
        }
    }
    if (st == QV_OK) st = qv_qlinear_check(out, "gptq linear");
    if (st == QV_OK && info) {
        float *Wr = Wp; /* reuse: RTN dequantized weights of the same quantizer */
        st = qv_qlinear_quantize(Wscale, N, K, f, NULL, NULL, &rtn);
        if (st == QV_OK) st = qv_qlinear_dequant(&rtn, Wr);
        if (st == QV_OK) st = qv_gptq_output_error(Hs, K, W, Wr, N, &info->err_rtn);
        if (st == QV_OK) st = qv_gptq_output_error(Hs, K, W, Wq, N, &info->err_gptq);
    }
    qv_qlinear_free(&rtn);
    grid_free(&g);
    free(perm), free(code), free(dx), free(Hp), free(U), free(Wp), free(E), free(Wq), free(u8);
    if (st != QV_OK) qv_qlinear_free(out);
    return st;
}
