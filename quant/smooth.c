/* Smoothing of o_proj / down_proj inputs (NUMERICS.md): s_j = max|X_j|^beta / max|W_j|^(1-beta);
 * the input is divided by s (folded into the producing rows: v_proj, up_proj) and W's columns are
 * multiplied by it, so X W^T is unchanged. The search measures the output error with both sides
 * quantized as the engine runs them, because moving range between activations and weights is the
 * whole point (a weight-only error would always prefer no smoothing). */
#include <math.h>
#include <stdlib.h>

#include "qvet/quant.h"

#include <cblas.h> /* after qvet headers: it defines the macro I */
#undef I

void qv_col_absmax(const float *W, int N, int K, float *wmax)
{
    for (int k = 0; k < K; k++) wmax[k] = 0.0f;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) wmax[k] = fmaxf(wmax[k], fabsf(W[(size_t)n * K + k]));
}

void qv_smooth_factors(const float *xmax, const float *wmax, int K, float beta, float *s)
{
    for (int k = 0; k < K; k++) {
        float v = powf(xmax[k], beta) / powf(wmax[k], 1.0f - beta);
        s[k] = isfinite(v) && v > 0.0f ? v : 1.0f;
    }
}

qv_status qv_smooth_error(qv_qformat f, const float *X, int M, const float *W, int N, int K,
                          const float *s, double *err)
{
    size_t mk = (size_t)M * K, nk = (size_t)N * K, mn = (size_t)M * N;
    float *Xs = qv_malloc(sizeof(float) * mk), *Ws = qv_malloc(sizeof(float) * nk), *Y = qv_malloc(sizeof(float) * mn),
          *Yq = qv_malloc(sizeof(float) * mn);
    qv_status st = Xs && Ws && Y && Yq ? QV_OK : qv_fail(QV_ERR_NOMEM, "quant: no memory for smoothing [%d, %d]", N, K);
    if (st == QV_OK) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, X, K, W, K, 0.0f, Y, N);
        for (size_t i = 0; i < mk; i++) Xs[i] = s ? X[i] / s[i % (size_t)K] : X[i];
        for (size_t i = 0; i < nk; i++) Ws[i] = s ? W[i] * s[i % (size_t)K] : W[i];
        st = qv_fakequant_act(Xs, M, K, Xs); /* in place: it reads all of X first */
    }
    if (st == QV_OK) {
        float *tmpw = qv_malloc(sizeof(float) * nk);
        if (!tmpw) st = QV_ERR_NOMEM;
        if (st == QV_OK) st = qv_fakequant_weight(f, Ws, N, K, tmpw);
        if (st == QV_OK) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, Xs, K, tmpw, K, 0.0f, Yq, N);
            double e = 0;
            for (size_t i = 0; i < mn; i++) {
                double d = (double)Y[i] - Yq[i];
                e += d * d;
            }
            *err = e;
        }
        free(tmpw);
    }
    free(Xs), free(Ws), free(Y), free(Yq);
    return st;
}
