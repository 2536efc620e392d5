/* Weight clipping: per output channel, one ratio r from a grid (1.0 included) shrinking the
 * range the quantizer sees. Applied by clamping the FP32 weights, so the format's own quantizer
 * (which derives its scales from the range) produces the clipped scales: per group of 128 for g128
 * (then level 1's per-channel max shrinks by r too), per row for per-channel W4 (range including
 * 0, as the quantizer widens it) and W8 (symmetric).
 * The error is that of the layer's outputs on calibration rows, with activations A8-quantized as
 * the engine runs them: e_n = sum_t (y_tn - yq_tn)^2. Each output channel's error depends only on
 * its own row of W, so choosing the grid minimum per row can never give a larger total than
 * ratio 1.0 (deepcompressor: GridSearch, OutputsError of degree 2, shrink up to 0.2; it chooses
 * per group, qvet per channel, which keeps this guarantee exact). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qvet/qoq.h"
#include "qvet/quant.h"

#include <cblas.h> /* after qvet headers: it defines the macro I */
#undef I

static void clamp_range(float *w, int n, float r, int widen0, int symmetric)
{
    float lo = w[0], hi = w[0];
    for (int i = 1; i < n; i++) {
        if (w[i] < lo) lo = w[i];
        if (w[i] > hi) hi = w[i];
    }
    if (symmetric) {
        float a = fmaxf(fabsf(lo), fabsf(hi));
        lo = -a, hi = a;
    } else if (widen0) {
        lo = fminf(lo, 0.0f), hi = fmaxf(hi, 0.0f);
    }
    lo = lo * r, hi = hi * r;
    for (int i = 0; i < n; i++) w[i] = fminf(fmaxf(w[i], lo), hi);
}

void qv_clip_apply(qv_qformat f, float *W, int N, int K, const float *ratio)
{
    for (int n = 0; n < N; n++) {
        if (ratio[n] == 1.0f) continue;
        float *row = W + (size_t)n * K;
        if (f == QV_QFMT_W4A8_G128)
            for (int g = 0; g + QV_QOQ_GROUP <= K; g += QV_QOQ_GROUP) clamp_range(row + g, QV_QOQ_GROUP, ratio[n], 1, 0);
        else clamp_range(row, K, ratio[n], f == QV_QFMT_W4A8_CHN, f == QV_QFMT_W8A8);
    }
}

/* err[n] = sum_t (Y - Xq Wq^T)^2 over column n */
static void col_err(const float *Y, const float *Xq, const float *Wq, int M, int N, int K, float *tmp, double *err)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, Xq, K, Wq, K, 0.0f, tmp, N);
    for (int n = 0; n < N; n++) err[n] = 0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double d = (double)Y[(size_t)m * N + n] - tmp[(size_t)m * N + n];
            err[n] += d * d;
        }
}

qv_status qv_clip_search(qv_qformat f, const float *X, int M, const float *W, int N, int K,
                         const float *grid, int n_grid, float *ratio, double *err_best, double *err_one)
{
    size_t nk = (size_t)N * K, mn = (size_t)M * N;
    float *Xq = qv_malloc(sizeof(float) * (size_t)M * K), *Wc = qv_malloc(sizeof(float) * nk),
          *Wq = qv_malloc(sizeof(float) * nk), *Y = qv_malloc(sizeof(float) * mn), *tmp = qv_malloc(sizeof(float) * mn),
          *rr = qv_malloc(sizeof(float) * (size_t)N);
    double *err = qv_malloc(sizeof(double) * (size_t)N), *best = qv_malloc(sizeof(double) * (size_t)N);
    qv_status st = Xq && Wc && Wq && Y && tmp && rr && err && best ? QV_OK : QV_ERR_NOMEM;
    if (st == QV_OK) st = qv_fakequant_act(X, M, K, Xq);
    if (st == QV_OK) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, X, K, W, K, 0.0f, Y, N);
    for (int n = 0; n < N; n++) {
        if (best) best[n] = DBL_MAX;
        ratio[n] = 1.0f;
        if (err_one) err_one[n] = NAN;
    }
    for (int gi = 0; st == QV_OK && gi < n_grid; gi++) {
        memcpy(Wc, W, sizeof(float) * nk);
        for (int n = 0; n < N; n++) rr[n] = grid[gi];
        qv_clip_apply(f, Wc, N, K, rr);
        st = qv_fakequant_weight(f, Wc, N, K, Wq);
        if (st != QV_OK) break;
        col_err(Y, Xq, Wq, M, N, K, tmp, err);
        for (int n = 0; n < N; n++) {
            if (grid[gi] == 1.0f && err_one) err_one[n] = err[n];
            if (err[n] < best[n]) best[n] = err[n], ratio[n] = grid[gi];
        }
    }
    if (st == QV_OK && err_best) memcpy(err_best, best, sizeof(double) * (size_t)N);
    free(Xq), free(Wc), free(Wq), free(Y), free(tmp), free(rr), free(err), free(best);
    return st == QV_ERR_NOMEM ? qv_fail(st, "quant: no memory for the clip search of [%d, %d]", N, K) : st;
}
