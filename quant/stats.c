/* Calibration statistics from one ref-fp32 pass (engine capture callbacks), one sequence per
 * prefill so the callbacks of a layer arrive in order: block input, K, attention heads, o_proj
 * output. The down_proj input is not captured by the engine; it is recomputed here from the
 * captured stream with the same formulas (RMSNorm with the mean of squares in double, SwiGLU). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qvet/engine.h"
#include "qvet/quant.h"

#include <cblas.h> /* after qvet headers: it defines the macro I */
#undef I

typedef struct {
    qv_quant_stats *s;
    const qv_qwork *w;
    int seqlen, rps, sample; /* rows kept per sequence, current sample */
    float *x;                /* [seqlen][H]: block input of the current layer */
    float *n2, *g, *u;       /* [seqlen][H], [seqlen][I] x2 */
    float *nr;               /* [seqlen][H]: RMS-normalized rows without the norm weight (Hessians) */
    int hess;                /* accumulate the GPTQ Hessians */
    qv_status st;
} collector;

/* Row r of this sequence is kept if it is one of rps evenly spaced positions (offset varies with
 * the sample so positions differ across samples). Returns the slot or -1. */
static int keep_slot(const collector *c, int pos)
{
    int stride = c->seqlen / c->rps, off = (c->sample * 7) % stride;
    if (pos < off || (pos - off) % stride) return -1;
    int i = (pos - off) / stride;
    return i < c->rps ? c->sample * c->rps + i : -1;
}

static void upd_max(float *mx, const float *x, int n_pos, int C)
{
    for (int t = 0; t < n_pos; t++)
        for (int j = 0; j < C; j++) {
            float a = fabsf(x[(size_t)t * C + j]);
            if (a > mx[j]) mx[j] = a;
        }
}

static void keep_rows(collector *c, float *dst, const float *x, int pos0, int n_pos, int C)
{
    for (int t = 0; t < n_pos; t++) {
        int slot = keep_slot(c, pos0 + t);
        if (slot >= 0 && slot < c->s->rows) memcpy(dst + (size_t)slot * C, x + (size_t)t * C, sizeof(float) * (size_t)C);
    }
}

/* nr = x / rms(x) (ref-fp32's RMSNorm arithmetic without the weight), rows of H */
static void rms_rows(const float *x, int n, int H, float eps, float *nr)
{
    for (int t = 0; t < n; t++) {
        const float *xr = x + (size_t)t * H;
        double ss = 0;
        for (int i = 0; i < H; i++) ss += (double)xr[i] * xr[i];
        float r = 1.0f / sqrtf((float)(ss / H) + eps);
        for (int i = 0; i < H; i++) nr[(size_t)t * H + i] = xr[i] * r;
    }
}

static void on_capture(void *user, const qv_capture_point *p)
{
    collector *c = user;
    qv_quant_stats *s = c->s;
    int l = p->layer, n = p->n_pos, H = s->H, I = s->I;
    if (c->st != QV_OK || l < 0 || p->pos0 + n > c->seqlen) return;
    size_t R = (size_t)s->rows;
    switch (p->kind) {
    case QV_CAP_BLOCK_INPUT:
        memcpy(c->x + (size_t)p->pos0 * H, p->data, sizeof(float) * (size_t)n * H);
        keep_rows(c, s->x_in + (size_t)l * R * H, p->data, p->pos0, n, H);
        if (c->hess) {
            rms_rows(p->data, n, H, c->w->cfg.rms_norm_eps, c->nr);
            qv_gptq_hessian_add(s->h_in + (size_t)l * H * H, c->nr, n, H);
        }
        break;
    case QV_CAP_K: upd_max(s->kmax + (size_t)l * s->Dkv, p->data, n, s->Dkv); break;
    case QV_CAP_ATTN_HEADS:
        upd_max(s->omax + (size_t)l * s->Dq, p->data, n, s->Dq);
        keep_rows(c, s->x_o + (size_t)l * R * s->Dq, p->data, p->pos0, n, s->Dq);
        if (c->hess) qv_gptq_hessian_add(s->h_o + (size_t)l * s->Dq * s->Dq, p->data, n, s->Dq);
        break;
    case QV_CAP_ATTN_OUT: {
        const qv_qwork_layer *w = &c->w->layers[l];
        float *h = c->x + (size_t)p->pos0 * H;
        for (size_t i = 0; i < (size_t)n * H; i++) h[i] = h[i] + p->data[i];
        keep_rows(c, s->x_mid + (size_t)l * R * H, h, p->pos0, n, H);
        rms_rows(h, n, H, c->w->cfg.rms_norm_eps, c->nr);
        for (int t = 0; t < n; t++)
            for (int i = 0; i < H; i++) c->n2[(size_t)t * H + i] = w->post_norm[i] * c->nr[(size_t)t * H + i];
        if (c->hess) qv_gptq_hessian_add(s->h_mid + (size_t)l * H * H, c->nr, n, H);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, I, H, 1.0f, c->n2, H, w->w_gate, H, 0.0f, c->g, I);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, I, H, 1.0f, c->n2, H, w->w_up, H, 0.0f, c->u, I);
        for (size_t i = 0; i < (size_t)n * I; i++) c->g[i] = c->g[i] / (1.0f + expf(-c->g[i])) * c->u[i];
        upd_max(s->dmax + (size_t)l * I, c->g, n, I);
        keep_rows(c, s->x_d + (size_t)l * R * I, c->g, p->pos0, n, I);
        if (c->hess) qv_gptq_hessian_add(s->h_d + (size_t)l * I * I, c->g, n, I);
        break;
    }
    default: break;
    }
}

void qv_quant_stats_free(qv_quant_stats *s)
{
    free(s->kmax), free(s->omax), free(s->dmax), free(s->x_in), free(s->x_mid), free(s->x_o), free(s->x_d);
    free(s->h_in), free(s->h_mid), free(s->h_o), free(s->h_d);
    memset(s, 0, sizeof *s);
}

qv_status qv_quant_collect(const qv_model *m, const qv_qwork *w0, const int32_t *samples, int n_samples,
                           int seqlen, int sub_rows, int hessians, int threads, qv_quant_stats *s)
{
    memset(s, 0, sizeof *s);
    if (n_samples <= 0 || seqlen <= 0 || sub_rows <= 0)
        return qv_fail(QV_ERR_USAGE, "quant: samples (%d), seqlen (%d) and rows (%d) must be positive", n_samples, seqlen,
                       sub_rows);
    int rps = sub_rows / n_samples;
    if (rps < 1) rps = 1;
    if (rps > seqlen) rps = seqlen;
    s->L = w0->L, s->H = w0->H, s->I = w0->I, s->Dq = w0->nh * w0->hd, s->Dkv = w0->nkv * w0->hd;
    s->rows = rps * n_samples;
    size_t L = (size_t)s->L, R = (size_t)s->rows;
    s->kmax = qv_calloc(L * s->Dkv, sizeof(float));
    s->omax = qv_calloc(L * s->Dq, sizeof(float));
    s->dmax = qv_calloc(L * s->I, sizeof(float));
    s->x_in = qv_calloc(L * R * s->H, sizeof(float));
    s->x_mid = qv_calloc(L * R * s->H, sizeof(float));
    s->x_o = qv_calloc(L * R * s->Dq, sizeof(float));
    s->x_d = qv_calloc(L * R * s->I, sizeof(float));
    if (hessians) {
        size_t HH = (size_t)s->H * s->H;
        s->h_in = qv_calloc(L * HH, sizeof(float));
        s->h_mid = qv_calloc(L * HH, sizeof(float));
        s->h_o = qv_calloc(L * s->Dq * s->Dq, sizeof(float));
        s->h_d = qv_calloc(L * s->I * s->I, sizeof(float));
    }
    collector c = {s, w0, seqlen, rps, 0, NULL, NULL, NULL, NULL, NULL, hessians, QV_OK};
    c.nr = qv_malloc(sizeof(float) * (size_t)seqlen * s->H);
    c.x = qv_malloc(sizeof(float) * (size_t)seqlen * s->H);
    c.n2 = qv_malloc(sizeof(float) * (size_t)seqlen * s->H);
    c.g = qv_malloc(sizeof(float) * (size_t)seqlen * s->I);
    c.u = qv_malloc(sizeof(float) * (size_t)seqlen * s->I);
    qv_status st = QV_OK;
    if (!s->kmax || !s->omax || !s->dmax || !s->x_in || !s->x_mid || !s->x_o || !s->x_d || !c.x || !c.n2 || !c.g || !c.u || !c.nr ||
        (hessians && (!s->h_in || !s->h_mid || !s->h_o || !s->h_d)))
        st = qv_fail(QV_ERR_NOMEM, "quant: no memory for calibration statistics (%d rows)", s->rows);
    qv_engine *e = NULL;
    qv_engine_opts o;
    qv_engine_opts_init(&o);
    o.threads = threads;
    o.max_seqs = 1;
    if (st == QV_OK) st = qv_engine_open("ref-fp32", m, &o, &e);
    qv_seq_id sid = 0;
    if (st == QV_OK) st = qv_engine_seq_create(e, 1, &sid);
    if (st == QV_OK)
        qv_engine_set_capture(e, on_capture, &c,
                              (1u << QV_CAP_BLOCK_INPUT) | (1u << QV_CAP_K) | (1u << QV_CAP_ATTN_HEADS) | (1u << QV_CAP_ATTN_OUT));
    for (int i = 0; st == QV_OK && i < n_samples; i++) {
        c.sample = i;
        const int32_t *tok = samples + (size_t)i * seqlen;
        st = qv_engine_seq_reset(e, sid);
        if (st == QV_OK) st = qv_engine_prefill(e, 1, &sid, &tok, &seqlen, 1, NULL);
        if (st == QV_OK) st = c.st;
    }
    if (e) qv_engine_close(e);
    free(c.x), free(c.n2), free(c.g), free(c.u), free(c.nr);
    if (st == QV_OK && hessians) {
        s->h_rows = (long)n_samples * seqlen;
        for (size_t l = 0; l < L; l++) {
            qv_gptq_hessian_finish(s->h_in + l * s->H * s->H, s->H, s->h_rows);
            qv_gptq_hessian_finish(s->h_mid + l * s->H * s->H, s->H, s->h_rows);
            qv_gptq_hessian_finish(s->h_o + l * s->Dq * s->Dq, s->Dq, s->h_rows);
            qv_gptq_hessian_finish(s->h_d + l * s->I * s->I, s->I, s->h_rows);
        }
    }
    if (st != QV_OK) qv_quant_stats_free(s);
    return st;
}
