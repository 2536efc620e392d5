/* The FP32 working copy of a model's weights (include/qvet/quant.h) and its in-memory qv_model
 * view, so ref-fp32 (or the quantized-model builder) can run on transformed weights. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qvet/quant.h"

static qv_status copy_f32(const qv_tensor *t, size_t n, const char *what, int layer, float **out)
{
    *out = NULL;
    if (!t->data) return QV_OK;
    if (qv_tensor_numel(t) != (int64_t)n)
        return qv_fail(QV_ERR_INPUT, "quant: layer %d: tensor %s has %lld elements, expected %zu", layer, what,
                       (long long)qv_tensor_numel(t), n);
    if (!(*out = qv_malloc(n * sizeof(float)))) return qv_fail(QV_ERR_NOMEM, "quant: no memory for %s", what);
    qv_status st = qv_tensor_to_f32(t, *out);
    return st == QV_OK ? QV_OK : qv_fail_prefix(st, "quant: layer %d: tensor %s", layer, what);
}

static qv_status need(const float *p, const char *what, int layer)
{
    return p ? QV_OK : qv_fail(QV_ERR_INPUT, "quant: layer %d: tensor %s missing", layer, what);
}

qv_status qv_qwork_from_model(const qv_model *m, qv_qwork **out)
{
    *out = NULL;
    const qv_config *c = &m->cfg;
    if (c->mlp_bias) return qv_fail(QV_ERR_UNSUPPORTED, "quant: mlp_bias models are not supported");
    if (c->head_dim % 2 || c->num_kv_heads <= 0 || c->num_heads % c->num_kv_heads)
        return qv_fail(QV_ERR_INPUT, "quant: inconsistent heads (%d/%d, head_dim %d)", c->num_heads,
                       c->num_kv_heads, c->head_dim);
    qv_qwork *w = qv_calloc(1, sizeof *w);
    if (!w) return QV_ERR_NOMEM;
    w->cfg = *c;
    w->cfg.tie_word_embeddings = 0;
    w->H = c->hidden_size, w->I = c->intermediate_size, w->nh = c->num_heads, w->nkv = c->num_kv_heads;
    w->hd = c->head_dim, w->V = c->vocab_size, w->L = c->num_layers;
    size_t H = (size_t)w->H, I = (size_t)w->I, Dq = (size_t)w->nh * w->hd, Dkv = (size_t)w->nkv * w->hd,
           V = (size_t)w->V;
    qv_status st = QV_OK;
    w->layers = qv_calloc((size_t)w->L, sizeof *w->layers);
    if (!w->layers) st = QV_ERR_NOMEM;
    if (st == QV_OK) st = copy_f32(&m->embed, V * H, "embed_tokens", -1, &w->embed);
    if (st == QV_OK) st = copy_f32(&m->lm_head, V * H, "lm_head", -1, &w->lm_head);
    if (st == QV_OK) st = copy_f32(&m->final_norm, H, "norm", -1, &w->final_norm);
    if (st == QV_OK) st = need(w->embed, "embed_tokens", -1);
    if (st == QV_OK) st = need(w->lm_head, "lm_head", -1);
    if (st == QV_OK) st = need(w->final_norm, "norm", -1);
    for (int l = 0; st == QV_OK && l < w->L; l++) {
        const qv_layer_weights *s = &m->layers[l];
        qv_qwork_layer *d = &w->layers[l];
        struct { const qv_tensor *t; size_t n; const char *name; float **dst; int req; } f[] = {
            {&s->wq, Dq * H, "q_proj", &d->wq, 1},          {&s->wk, Dkv * H, "k_proj", &d->wk, 1},
            {&s->wv, Dkv * H, "v_proj", &d->wv, 1},         {&s->wo, H * Dq, "o_proj", &d->wo, 1},
            {&s->w_gate, I * H, "gate_proj", &d->w_gate, 1}, {&s->w_up, I * H, "up_proj", &d->w_up, 1},
            {&s->w_down, H * I, "down_proj", &d->w_down, 1}, {&s->bq, Dq, "q_proj.bias", &d->bq, 0},
            {&s->bk, Dkv, "k_proj.bias", &d->bk, 0},         {&s->bv, Dkv, "v_proj.bias", &d->bv, 0},
            {&s->bo, H, "o_proj.bias", &d->bo, 0},           {&s->input_norm, H, "input_layernorm", &d->input_norm, 1},
            {&s->post_norm, H, "post_attention_layernorm", &d->post_norm, 1}};
        for (size_t i = 0; st == QV_OK && i < sizeof f / sizeof f[0]; i++) {
            st = copy_f32(f[i].t, f[i].n, f[i].name, l, f[i].dst);
            if (st == QV_OK && f[i].req) st = need(*f[i].dst, f[i].name, l);
        }
    }
    if (st != QV_OK) {
        qv_qwork_free(w);
        return st;
    }
    *out = w;
    return QV_OK;
}

void qv_qwork_free(qv_qwork *w)
{
    if (!w) return;
    for (int l = 0; w->layers && l < w->L; l++) {
        qv_qwork_layer *d = &w->layers[l];
        float *all[] = {d->wq, d->wk, d->wv, d->wo, d->w_gate, d->w_up, d->w_down,
                        d->bq, d->bk, d->bv, d->bo, d->input_norm, d->post_norm};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    }
    for (size_t i = 0; w->gptq && i < (size_t)w->L * QV_QL_COUNT; i++) qv_qlinear_free(&w->gptq[i]);
    free(w->gptq);
    free(w->layers);
    free(w->embed);
    free(w->lm_head);
    free(w->final_norm);
    free(w);
}

static qv_status view(qv_tensor *t, const float *p, int64_t d0, int64_t d1)
{
    int64_t shape[2] = {d0, d1};
    if (!p) {
        memset(t, 0, sizeof *t);
        return QV_OK;
    }
    return qv_tensor_view(t, (void *)p, QV_F32, d1 ? 2 : 1, shape);
}

qv_status qv_qwork_to_model(const qv_qwork *w, const qv_model *like, qv_model **out)
{
    *out = NULL;
    qv_model *m = qv_calloc(1, sizeof *m);
    if (!m) return QV_ERR_NOMEM;
    m->layers = qv_calloc((size_t)w->L, sizeof *m->layers);
    m->dir = malloc(32);
    if (!m->layers || !m->dir) {
        qv_qwork_model_free(m);
        return QV_ERR_NOMEM;
    }
    strcpy(m->dir, "<quant:working-copy>");
    m->cfg = w->cfg;
    m->cfg.torch_dtype = QV_F32;
    m->tok = like ? like->tok : NULL; /* borrowed: qv_qwork_model_free never frees it */
    int64_t H = w->H, I = w->I, Dq = (int64_t)w->nh * w->hd, Dkv = (int64_t)w->nkv * w->hd, V = w->V;
    qv_status st = view(&m->embed, w->embed, V, H);
    if (st == QV_OK) st = view(&m->lm_head, w->lm_head, V, H);
    if (st == QV_OK) st = view(&m->final_norm, w->final_norm, H, 0);
    for (int l = 0; st == QV_OK && l < w->L; l++) {
        const qv_qwork_layer *s = &w->layers[l];
        qv_layer_weights *d = &m->layers[l];
        st = view(&d->wq, s->wq, Dq, H);
        if (st == QV_OK) st = view(&d->wk, s->wk, Dkv, H);
        if (st == QV_OK) st = view(&d->wv, s->wv, Dkv, H);
        if (st == QV_OK) st = view(&d->wo, s->wo, H, Dq);
        if (st == QV_OK) st = view(&d->w_gate, s->w_gate, I, H);
        if (st == QV_OK) st = view(&d->w_up, s->w_up, I, H);
        if (st == QV_OK) st = view(&d->w_down, s->w_down, H, I);
        if (st == QV_OK) st = view(&d->bq, s->bq, Dq, 0);
        if (st == QV_OK) st = view(&d->bk, s->bk, Dkv, 0);
        if (st == QV_OK) st = view(&d->bv, s->bv, Dkv, 0);
        if (st == QV_OK) st = view(&d->bo, s->bo, H, 0);
        if (st == QV_OK) st = view(&d->input_norm, s->input_norm, H, 0);
        if (st == QV_OK) st = view(&d->post_norm, s->post_norm, H, 0);
    }
    if (st != QV_OK) {
        qv_qwork_model_free(m);
        return st;
    }
    *out = m;
    return QV_OK;
}

void qv_qwork_model_free(qv_model *m)
{
    if (!m) return;
    free(m->layers);
    free(m->dir);
    free(m);
}

qv_status qv_quant_install_gptq(qv_qwork *w, qv_qmodel *qm)
{
    if (!w->gptq) return QV_OK;
    if (qm->n_layers != w->L)
        return qv_fail(QV_ERR_USAGE, "quant: GPTQ linears for %d layers, quantized model has %d", w->L, qm->n_layers);
    for (int l = 0; l < w->L; l++)
        for (int id = 0; id < QV_QL_COUNT; id++) {
            qv_qlinear *src = &w->gptq[(size_t)l * QV_QL_COUNT + id], *dst = qv_qmodel_linear(qm, l, (qv_qlinear_id)id);
            if (!src->qweight) continue;
            if (src->N != dst->N || src->K != dst->K || src->fmt != dst->fmt)
                return qv_fail(QV_ERR_USAGE, "quant: layer %d %s: GPTQ linear [%d, %d] %s does not match [%d, %d] %s", l,
                               qv_qlinear_module((qv_qlinear_id)id), src->N, src->K, qv_qformat_name(src->fmt), dst->N,
                               dst->K, qv_qformat_name(dst->fmt));
            char what[96];
            snprintf(what, sizeof what, "layer %d %s (GPTQ)", l, qv_qlinear_module((qv_qlinear_id)id));
            QV_TRY(qv_qlinear_check(src, what));
            qv_qlinear_free(dst);
            *dst = *src;
            memset(src, 0, sizeof *src);
        }
    return QV_OK;
}
