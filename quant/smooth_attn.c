/* SmoothAttention (NUMERICS.md): per KV head and channel, lambda_j = max(max_t |K_tj|, 1e-5)^alpha;
 * RoPE (rotate-half) mixes channels j and j + hd/2 of a head, so the pair shares one factor (the
 * larger): then RoPE(q * lambda) . RoPE(k / lambda) = RoPE(q) . RoPE(k) exactly, since RoPE on a
 * pair is a rotation and a common scalar factor commutes with it. deepcompressor takes the same
 * pair maximum (its span viewed as [heads, 2, hd/2], max over the 2). */
#include <math.h>

#include "qvet/mutant.h"
#include "qvet/quant.h"

void qv_smooth_attn_lambda(const float *kmax, int nkv, int hd, float alpha, float *lambda)
{
    int half = hd / 2;
    for (int h = 0; h < nkv; h++) {
        const float *km = kmax + (size_t)h * hd;
        float *lam = lambda + (size_t)h * hd;
        for (int j = 0; j < hd; j++) lam[j] = powf(fmaxf(km[j], 1e-5f), alpha);
        for (int j = 0; j < half && !QV_MUT(rope_pair_lambda); j++) { /* QV_MUT: self-test mutant */
            float m = fmaxf(lam[j], lam[j + half]);
            lam[j] = lam[j + half] = m;
        }
    }
}

void qv_smooth_attn_apply(qv_qwork *w, int layer, const float *lambda)
{
    qv_qwork_layer *d = &w->layers[layer];
    int H = w->H, hd = w->hd, group = w->nh / w->nkv;
    for (int r = 0; r < w->nkv * hd; r++) {
        float lam = lambda[r];
        for (int k = 0; k < H; k++) d->wk[(size_t)r * H + k] = d->wk[(size_t)r * H + k] / lam;
        if (d->bk) d->bk[r] = d->bk[r] / lam;
    }
    for (int h = 0; h < w->nh && !QV_MUT(smooth_k_only); h++) { /* QV_MUT: self-test mutant */
        const float *lam = lambda + (size_t)(h / group) * hd;
        for (int j = 0; j < hd; j++) {
            size_t r = (size_t)h * hd + j;
            for (int k = 0; k < H; k++) d->wq[r * H + k] = d->wq[r * H + k] * lam[j];
            if (d->bq) d->bq[r] = d->bq[r] * lam[j];
        }
    }
}
