/* Norm folding and rotation of the residual stream (NUMERICS.md "Rotation and smoothing").
 * Folding: y = (x * r) * g then W y = W diag(g) (x r), so W's columns take g and the norm becomes
 * 1 (the final norm goes into lm_head). Rotation by H (quant/hadamard.c): the stream x becomes
 * x H; readers W <- W H (each row rotated), writers W <- H^T W (each column rotated) with their
 * bias b <- b H, embeddings E <- E H (each row). RMSNorm commutes with H (orthogonal: the norm of
 * x H is that of x) once its weight is 1, which is why the fold comes first. */
#include <stdlib.h>
#include <string.h>

#include "qvet/quant.h"

static void scale_cols(float *W, int N, int K, const float *g)
{
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) W[(size_t)n * K + k] = W[(size_t)n * K + k] * g[k];
}

void qv_quant_fold_norms(qv_qwork *w)
{
    int H = w->H, I = w->I, Dq = w->nh * w->hd, Dkv = w->nkv * w->hd;
    for (int l = 0; l < w->L; l++) {
        qv_qwork_layer *d = &w->layers[l];
        scale_cols(d->wq, Dq, H, d->input_norm);
        scale_cols(d->wk, Dkv, H, d->input_norm);
        scale_cols(d->wv, Dkv, H, d->input_norm);
        scale_cols(d->w_gate, I, H, d->post_norm);
        scale_cols(d->w_up, I, H, d->post_norm);
        for (int i = 0; i < H; i++) d->input_norm[i] = d->post_norm[i] = 1.0f;
    }
    scale_cols(w->lm_head, w->V, H, w->final_norm);
    for (int i = 0; i < H; i++) w->final_norm[i] = 1.0f;
}

static void rot_rows(float *W, int N, int K, const float *signs)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) qv_hadamard_apply(W + (size_t)n * K, K, signs);
}

/* Columns of W [N][K] (N = the rotated width). */
static qv_status rot_cols(float *W, int N, int K, const float *signs)
{
    float *col = qv_malloc(sizeof(float) * (size_t)N * (size_t)K);
    if (!col) return qv_fail(QV_ERR_NOMEM, "quant: no memory to rotate a [%d, %d] matrix", N, K);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) col[(size_t)k * N + n] = W[(size_t)n * K + k];
    rot_rows(col, K, N, signs);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) W[(size_t)n * K + k] = col[(size_t)k * N + n];
    free(col);
    return QV_OK;
}

qv_status qv_quant_rotate(qv_qwork *w, uint64_t seed)
{
    int H = w->H, I = w->I, Dq = w->nh * w->hd, Dkv = w->nkv * w->hd;
    for (int i = 0; i < H; i++)
        if (w->final_norm[i] != 1.0f)
            return qv_fail(QV_ERR_USAGE, "quant: rotation needs folded norms (final norm[%d] = %g)", i, w->final_norm[i]);
    for (int l = 0; l < w->L; l++)
        for (int i = 0; i < H; i++)
            if (w->layers[l].input_norm[i] != 1.0f || w->layers[l].post_norm[i] != 1.0f)
                return qv_fail(QV_ERR_USAGE, "quant: rotation needs folded norms (layer %d, channel %d)", l, i);
    float *signs = qv_malloc(sizeof(float) * (size_t)H);
    if (!signs) return QV_ERR_NOMEM;
    qv_hadamard_signs(seed, H, signs);
    qv_status st = QV_OK;
    rot_rows(w->embed, w->V, H, signs);
    rot_rows(w->lm_head, w->V, H, signs);
    for (int l = 0; st == QV_OK && l < w->L; l++) {
        qv_qwork_layer *d = &w->layers[l];
        rot_rows(d->wq, Dq, H, signs);
        rot_rows(d->wk, Dkv, H, signs);
        rot_rows(d->wv, Dkv, H, signs);
        rot_rows(d->w_gate, I, H, signs);
        rot_rows(d->w_up, I, H, signs);
        st = rot_cols(d->wo, H, Dq, signs);
        if (st == QV_OK) st = rot_cols(d->w_down, H, I, signs);
        if (st == QV_OK && d->bo) qv_hadamard_apply(d->bo, H, signs);
    }
    free(signs);
    return st;
}

/* v/o head rotation (deepcompressor's `rotation.transforms: [out_proj]`): each KV head's values
 * v -> v Hh (Hh the normalized Hadamard of the head size, block-diagonal when head_dim is not a
 * power of two, no random signs: deepcompressor's QoQ configs leave rotation.random off), and the
 * o_proj input channels of every query head of its group by the same Hh. Exact: o reads
 * attention-weighted sums of V rows, (A V Hh)(W_o,h Hh)^T = A V W_o,h^T. The V cache then holds
 * rotated values, which spreads a head's outlier channels before KV4 (per token and head) sees
 * them. */
void qv_quant_rotate_v(qv_qwork *w, int layer, float *ones)
{
    qv_qwork_layer *d = &w->layers[layer];
    int H = w->H, hd = w->hd, Dq = w->nh * w->hd, Dkv = w->nkv * w->hd;
    float *col = ones + hd; /* caller's scratch: hd ones, then hd floats */
    for (int j = 0; j < hd; j++) ones[j] = 1.0f;
    for (int g = 0; g < w->nkv; g++) {
        for (int k = 0; k < H; k++) {
            for (int j = 0; j < hd; j++) col[j] = d->wv[(size_t)(g * hd + j) * H + k];
            qv_hadamard_apply(col, hd, ones);
            for (int j = 0; j < hd; j++) d->wv[(size_t)(g * hd + j) * H + k] = col[j];
        }
        if (d->bv) qv_hadamard_apply(d->bv + (size_t)g * hd, hd, ones);
    }
    for (int n = 0; n < H; n++)
        for (int h = 0; h < Dq / hd; h++) qv_hadamard_apply(d->wo + (size_t)n * Dq + (size_t)h * hd, hd, ones);
    (void)Dkv;
}
