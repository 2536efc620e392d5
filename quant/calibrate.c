/* The QoQ calibration pipeline (include/qvet/quant.h; docs/quant.md). Statistics come from one
 * ref-fp32 pass on the original model; every transform before clipping preserves the FP32
 * function, so the captured inputs stay valid after it once mapped into the transformed space:
 * rows of the residual stream are rotated (x H) and normalized with the (folded) norm weights,
 * o_proj inputs are unchanged by SmoothAttention and rotation, and smoothing divides inputs by s. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qvet/quant.h"

#undef I

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void qv_quant_opts_init(qv_quant_opts *o)
{
    memset(o, 0, sizeof *o);
    o->format = QV_QFMT_W4A8_G128;
    o->smooth_attn = o->rotate = o->smooth = o->clip = o->gptq = 1;
    o->rotate_v = 0; /* measured neutral on qvet-tiny-llama (docs/quant.md): opt-in */
    qv_gptq_opts_init(&o->gptq_opts);
    o->alpha = 0.5f;
    o->samples = 32;
    o->seqlen = 512;
    o->sub_rows = 512;
    o->seed = 1;
}

void qv_quant_report_free(qv_quant_report *r)
{
    free(r->beta_o);
    free(r->beta_down);
    free(r->err_rtn);
    free(r->err_gptq);
    r->beta_o = r->beta_down = NULL;
    r->err_rtn = r->err_gptq = NULL;
}

/* Inputs of q/k/v (from x_in) or gate/up (from x_mid) in the transformed space. */
static void norm_rows(const float *x, int R, int H, const float *signs, const float *g, float eps, float *out)
{
    for (int t = 0; t < R; t++) {
        float *y = out + (size_t)t * H;
        memcpy(y, x + (size_t)t * H, sizeof(float) * (size_t)H);
        if (signs) qv_hadamard_apply(y, H, signs);
        double ss = 0;
        for (int i = 0; i < H; i++) ss += (double)y[i] * y[i];
        float r = 1.0f / sqrtf((float)(ss / H) + eps);
        for (int i = 0; i < H; i++) y[i] = g[i] * (y[i] * r);
    }
}

#define N_BETA 19 /* 0.05 .. 0.95 (deepcompressor's grid with num_grids 20), plus identity */

/* Searches beta for one smoothing site; returns the chosen s (all 1 for identity) in s and the
 * beta (-1 identity). xmax/wmax already shared as the site requires. */
static qv_status search_beta(qv_qformat f, const float *X, int R, const float *W, int N, int K, const float *xmax,
                             const float *wmax, float *s, float *beta_out)
{
    float *cand = qv_malloc(sizeof(float) * (size_t)K);
    if (!cand) return QV_ERR_NOMEM;
    double best;
    qv_status st = qv_smooth_error(f, X, R, W, N, K, NULL, &best);
    *beta_out = -1.0f;
    for (int k = 0; k < K; k++) s[k] = 1.0f;
    for (int i = 1; st == QV_OK && i <= N_BETA; i++) {
        float beta = (float)i / (N_BETA + 1);
        double e;
        qv_smooth_factors(xmax, wmax, K, beta, cand);
        st = qv_smooth_error(f, X, R, W, N, K, cand, &e);
        if (st == QV_OK && e < best) {
            best = e;
            *beta_out = beta;
            memcpy(s, cand, sizeof(float) * (size_t)K);
        }
    }
    free(cand);
    return st;
}

static void scale_cols(float *W, int N, int K, const float *s)
{
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) W[(size_t)n * K + k] = W[(size_t)n * K + k] * s[k];
}

static void div_rows(float *W, int N, int K, const float *s, float *b)
{
    for (int n = 0; n < N; n++) {
        for (int k = 0; k < K; k++) W[(size_t)n * K + k] = W[(size_t)n * K + k] / s[n];
        if (b) b[n] = b[n] / s[n];
    }
}

static void div_input_rows(float *X, int R, int K, const float *s)
{
    for (size_t i = 0; i < (size_t)R * K; i++) X[i] = X[i] / s[i % (size_t)K];
}

#define N_CLIP 11 /* 1.00, 0.98, ..., 0.80: deepcompressor's max_shrink 0.2 */

typedef struct {
    double err_best, err_one, ratio_sum;
    long n_ratio;
} clip_tally;

static qv_status clip_one(qv_qformat f, const float *X, int R, float *W, int N, int K, clip_tally *t)
{
    float grid[N_CLIP], *ratio = qv_malloc(sizeof(float) * (size_t)N);
    double *eb = qv_malloc(sizeof(double) * (size_t)N), *e1 = qv_malloc(sizeof(double) * (size_t)N);
    for (int i = 0; i < N_CLIP; i++) grid[i] = 1.0f - 0.02f * (float)i;
    grid[0] = 1.0f;
    qv_status st = ratio && eb && e1 ? qv_clip_search(f, X, R, W, N, K, grid, N_CLIP, ratio, eb, e1) : QV_ERR_NOMEM;
    if (st == QV_OK) {
        qv_clip_apply(f, W, N, K, ratio);
        for (int n = 0; n < N; n++) {
            t->err_best += eb[n], t->err_one += e1[n], t->ratio_sum += ratio[n];
            t->n_ratio++;
        }
    }
    free(ratio), free(eb), free(e1);
    return st;
}

/* One linear: clipping (in place on W: the FP32 the qwork keeps), then GPTQ from the unclipped
 * weights with the clipped weights' scales (deepcompressor's gchn config: the range calibration
 * fixes the scales, the GPTQ kernel sweeps the original weights, saturating). */
static qv_status lin_one(const qv_quant_opts *o, const float *X, int R, float *W, int N, int K, const float *Hs,
                         const float *bias, clip_tally *ct, qv_qwork *w, int l, qv_qlinear_id id, qv_quant_report *rep)
{
    float *W0 = NULL;
    qv_status st = QV_OK;
    if (o->gptq) {
        W0 = qv_malloc(sizeof(float) * (size_t)N * K);
        if (!W0) return qv_fail(QV_ERR_NOMEM, "quant: no memory for GPTQ of [%d, %d]", N, K);
        memcpy(W0, W, sizeof(float) * (size_t)N * K);
    }
    if (o->clip) st = clip_one(o->format, X, R, W, N, K, ct);
    if (st == QV_OK && o->gptq) {
        double t = now_s();
        qv_gptq_info gi;
        size_t i = (size_t)l * QV_QL_COUNT + id;
        st = qv_gptq_quantize(o->format, W0, W, N, K, bias, Hs, &o->gptq_opts, &w->gptq[i], &gi);
        if (st == QV_OK) {
            rep->err_rtn[i] = gi.err_rtn, rep->err_gptq[i] = gi.err_gptq;
            rep->gptq_err_rtn += gi.err_rtn, rep->gptq_err += gi.err_gptq;
            if (gi.tries > rep->gptq_max_tries) rep->gptq_max_tries = gi.tries;
            rep->gptq_dead += gi.dead;
        } else st = qv_fail_prefix(st, "%s", qv_qlinear_module(id));
        rep->seconds_gptq += now_s() - t;
    }
    free(W0);
    return st;
}

/* A <- M^T A M for the map M of a normalized block input: x -> (x H) * g (rotation, then the norm
 * weight; signs NULL: no rotation). A is symmetric, so rows twice with a transpose between. */
static void map_norm_hessian(float *A, int H, const float *signs, const float *g)
{
    if (signs) {
        for (int pass = 0; pass < 2; pass++) {
            for (int i = 0; i < H; i++) qv_hadamard_apply(A + (size_t)i * H, H, signs);
            for (int i = 0; i < H; i++)
                for (int j = i + 1; j < H; j++) {
                    float t = A[(size_t)i * H + j];
                    A[(size_t)i * H + j] = A[(size_t)j * H + i];
                    A[(size_t)j * H + i] = t;
                }
        }
    }
    for (int i = 0; i < H; i++)
        for (int j = 0; j < H; j++) A[(size_t)i * H + j] = g[i] * A[(size_t)i * H + j] * g[j];
}

/* A <- diag(1/s) A diag(1/s): the inputs were divided by the smoothing factors */
static void div_hessian(float *A, int K, const float *s)
{
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) A[(size_t)i * K + j] = A[(size_t)i * K + j] / s[i] / s[j];
}

static qv_status calibrate_layer(qv_qwork *w, qv_quant_stats *s, int l, const qv_quant_opts *o,
                                 const float *signs, float *buf, qv_quant_report *rep, clip_tally *ct)
{
    qv_qwork_layer *d = &w->layers[l];
    int H = w->H, I = w->I, R = s->rows, hd = w->hd, group = w->nh / w->nkv, Dq = w->nh * hd, Dkv = w->nkv * hd;
    size_t RH = (size_t)R * H;
    float *n1 = buf, *n2 = n1 + RH, *xo = n2 + RH, *xd = xo + (size_t)R * Dq;
    float *xmax = xd + (size_t)R * I, *wmax = xmax + (I > Dq ? I : Dq), *sf = wmax + (I > Dq ? I : Dq);
    norm_rows(s->x_in + (size_t)l * RH, R, H, signs, d->input_norm, w->cfg.rms_norm_eps, n1);
    norm_rows(s->x_mid + (size_t)l * RH, R, H, signs, d->post_norm, w->cfg.rms_norm_eps, n2);
    memcpy(xo, s->x_o + (size_t)l * R * Dq, sizeof(float) * (size_t)R * Dq);
    memcpy(xd, s->x_d + (size_t)l * R * I, sizeof(float) * (size_t)R * I);
    float *h_in = NULL, *h_mid = NULL, *h_o = NULL, *h_d = NULL;
    if (o->gptq) {
        h_in = s->h_in + (size_t)l * H * H, h_mid = s->h_mid + (size_t)l * H * H;
        h_o = s->h_o + (size_t)l * Dq * Dq, h_d = s->h_d + (size_t)l * I * I;
        map_norm_hessian(h_in, H, signs, d->input_norm);
        map_norm_hessian(h_mid, H, signs, d->post_norm);
    }
    qv_status st = QV_OK;
    rep->beta_o[l] = rep->beta_down[l] = -1.0f;
    if (o->rotate_v) {
        float *sc = qv_malloc(sizeof(float) * 2 * (size_t)hd);
        if (!sc) return qv_fail(QV_ERR_NOMEM, "quant: layer %d: no memory", l);
        qv_quant_rotate_v(w, l, sc);
        /* the o_proj inputs rotate with the values: every head segment of every row */
        for (int t = 0; t < R; t++)
            for (int h = 0; h < w->nh; h++) qv_hadamard_apply(xo + (size_t)t * Dq + (size_t)h * hd, hd, sc);
        if (h_o)
            for (int pass = 0; pass < 2; pass++) {
                for (int i = 0; i < Dq; i++)
                    for (int h = 0; h < w->nh; h++) qv_hadamard_apply(h_o + (size_t)i * Dq + (size_t)h * hd, hd, sc);
                for (int i = 0; i < Dq; i++)
                    for (int j = i + 1; j < Dq; j++) {
                        float t = h_o[(size_t)i * Dq + j];
                        h_o[(size_t)i * Dq + j] = h_o[(size_t)j * Dq + i];
                        h_o[(size_t)j * Dq + i] = t;
                    }
            }
        free(sc);
    }
    /* o_proj smoothing needs max |x| over every token, which the v rotation changes (only the
     * subsample is rotated): skipped then, as deepcompressor's QoQ configs skip out_proj */
    if (o->smooth && !o->rotate_v) {
        /* o_proj: channel (h, j) reads v channel (h / group, j); one factor per v channel, so
         * maxima are shared over the query heads of a group. */
        const float *om = s->omax + (size_t)l * Dq;
        qv_col_absmax(d->wo, H, Dq, wmax);
        for (int kv = 0; kv < w->nkv; kv++)
            for (int j = 0; j < hd; j++) {
                float xm = 0, wm = 0;
                for (int h = kv * group; h < (kv + 1) * group; h++) {
                    xm = fmaxf(xm, om[(size_t)h * hd + j]);
                    wm = fmaxf(wm, wmax[(size_t)h * hd + j]);
                }
                for (int h = kv * group; h < (kv + 1) * group; h++) xmax[(size_t)h * hd + j] = xm, wmax[(size_t)h * hd + j] = wm;
            }
        st = search_beta(o->format, xo, R, d->wo, H, Dq, xmax, wmax, sf, &rep->beta_o[l]);
        if (st == QV_OK && rep->beta_o[l] >= 0) {
            scale_cols(d->wo, H, Dq, sf);
            float *sv = wmax; /* per v channel: the group's shared factor */
            for (int kv = 0; kv < w->nkv; kv++)
                for (int j = 0; j < hd; j++) sv[(size_t)kv * hd + j] = sf[(size_t)kv * group * hd + j];
            div_rows(d->wv, Dkv, H, sv, d->bv);
            div_input_rows(xo, R, Dq, sf);
            if (h_o) div_hessian(h_o, Dq, sf);
        }
    }
    if (o->smooth) {
        if (st == QV_OK) {
            qv_col_absmax(d->w_down, H, I, wmax);
            st = search_beta(o->format, xd, R, d->w_down, H, I, s->dmax + (size_t)l * I, wmax, sf, &rep->beta_down[l]);
        }
        if (st == QV_OK && rep->beta_down[l] >= 0) {
            scale_cols(d->w_down, H, I, sf);
            div_rows(d->w_up, I, H, sf, NULL);
            div_input_rows(xd, R, I, sf);
            if (h_d) div_hessian(h_d, I, sf);
        }
    }
    if (st == QV_OK && (o->clip || o->gptq)) {
        st = lin_one(o, n1, R, d->wq, Dq, H, h_in, d->bq, ct, w, l, QV_QL_Q, rep);
        if (st == QV_OK) st = lin_one(o, n1, R, d->wk, Dkv, H, h_in, d->bk, ct, w, l, QV_QL_K, rep);
        if (st == QV_OK) st = lin_one(o, n1, R, d->wv, Dkv, H, h_in, d->bv, ct, w, l, QV_QL_V, rep);
        if (st == QV_OK) st = lin_one(o, xo, R, d->wo, H, Dq, h_o, d->bo, ct, w, l, QV_QL_O, rep);
        if (st == QV_OK) st = lin_one(o, n2, R, d->w_gate, I, H, h_mid, NULL, ct, w, l, QV_QL_GATE, rep);
        if (st == QV_OK) st = lin_one(o, n2, R, d->w_up, I, H, h_mid, NULL, ct, w, l, QV_QL_UP, rep);
        if (st == QV_OK) st = lin_one(o, xd, R, d->w_down, H, I, h_d, NULL, ct, w, l, QV_QL_DOWN, rep);
    }
    return st == QV_OK ? QV_OK : qv_fail_prefix(st, "quant: layer %d", l);
}

qv_status qv_quant_calibrate(const qv_model *m, const int32_t *samples, const qv_quant_opts *o, qv_qwork **out,
                             qv_quant_report *rep)
{
    *out = NULL;
    memset(rep, 0, sizeof *rep);
    double t0 = now_s();
    qv_qwork *w = NULL;
    QV_TRY(qv_qwork_from_model(m, &w));
    rep->n_samples = o->samples, rep->seqlen = o->seqlen;
    rep->beta_o = qv_malloc(sizeof(float) * (size_t)w->L);
    rep->beta_down = qv_malloc(sizeof(float) * (size_t)w->L);
    qv_quant_stats s = {0};
    float *signs = NULL, *buf = NULL;
    qv_status st = rep->beta_o && rep->beta_down ? QV_OK : QV_ERR_NOMEM;
    for (int l = 0; st == QV_OK && l < w->L; l++) rep->beta_o[l] = rep->beta_down[l] = -1.0f;
    int need_stats = o->smooth_attn || o->smooth || o->clip || o->gptq || o->rotate_v;
    if (st == QV_OK && o->gptq) {
        size_t n = (size_t)w->L * QV_QL_COUNT;
        w->gptq = qv_calloc(n, sizeof(qv_qlinear));
        rep->err_rtn = qv_calloc(n, sizeof(double));
        rep->err_gptq = qv_calloc(n, sizeof(double));
        if (!w->gptq || !rep->err_rtn || !rep->err_gptq) st = qv_fail(QV_ERR_NOMEM, "quant: no memory for GPTQ");
    }
    if (st == QV_OK && need_stats) {
        if (o->progress) o->progress(o->progress_user, 0, w->L, "statistics");
        st = qv_quant_collect(m, w, samples, o->samples, o->seqlen, o->sub_rows, o->gptq, o->threads, &s);
        rep->gptq_rows = o->gptq ? s.h_rows : 0;
    }
    rep->seconds_stats = now_s() - t0;
    double t1 = now_s();
    if (st == QV_OK && o->smooth_attn) {
        float *lam = qv_malloc(sizeof(float) * (size_t)w->nkv * w->hd);
        if (!lam) st = QV_ERR_NOMEM;
        for (int l = 0; st == QV_OK && l < w->L; l++) {
            qv_smooth_attn_lambda(s.kmax + (size_t)l * w->nkv * w->hd, w->nkv, w->hd, o->alpha, lam);
            qv_smooth_attn_apply(w, l, lam);
        }
        free(lam);
    }
    if (st == QV_OK && o->rotate) {
        qv_quant_fold_norms(w);
        st = qv_quant_rotate(w, o->seed);
        signs = qv_malloc(sizeof(float) * (size_t)w->H);
        if (st == QV_OK && !signs) st = QV_ERR_NOMEM;
        if (st == QV_OK) qv_hadamard_signs(o->seed, w->H, signs);
    }
    clip_tally ct = {0};
    if (st == QV_OK && (o->smooth || o->clip || o->gptq || o->rotate_v)) {
        int R = s.rows, Dq = w->nh * w->hd, mx = w->I > Dq ? w->I : Dq;
        size_t n = (size_t)R * (2 * (size_t)w->H + Dq + w->I) + 3 * (size_t)mx;
        buf = qv_malloc(sizeof(float) * n);
        if (!buf) st = qv_fail(QV_ERR_NOMEM, "quant: no memory for the search buffers");
        for (int l = 0; st == QV_OK && l < w->L; l++) {
            st = calibrate_layer(w, &s, l, o, signs, buf, rep, &ct);
            if (o->progress) o->progress(o->progress_user, l + 1, w->L, "search");
        }
    }
    rep->seconds_search = now_s() - t1;
    rep->seconds_total = now_s() - t0;
    int no = 0, nd = 0;
    double so = 0, sd = 0;
    for (int l = 0; rep->beta_o && l < w->L; l++) {
        if (rep->beta_o[l] >= 0) so += rep->beta_o[l], no++;
        else rep->n_identity_o++;
        if (rep->beta_down[l] >= 0) sd += rep->beta_down[l], nd++;
        else rep->n_identity_down++;
    }
    rep->beta_o_mean = no ? so / no : NAN;
    rep->beta_down_mean = nd ? sd / nd : NAN;
    rep->clip_ratio_mean = ct.n_ratio ? ct.ratio_sum / (double)ct.n_ratio : 1.0;
    rep->clip_err_gain = ct.err_one > 0 ? ct.err_best / ct.err_one : 1.0;
    free(signs);
    free(buf);
    qv_quant_stats_free(&s);
    if (st != QV_OK) {
        qv_qwork_free(w);
        qv_quant_report_free(rep);
        return st;
    }
    *out = w;
    return QV_OK;
}
