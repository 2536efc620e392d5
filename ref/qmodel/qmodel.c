/* Quantized models: round-to-nearest from an FP model, from calibrated FP32 weights, and the
 * in-memory FP16 model that holds the parts which stay in floating point. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "qmodel_internal.h"
#include "qvet/qoq.h"
#include "qvet/tokenizer.h"

void qv_qmodel_close(qv_qmodel *qm)
{
    if (!qm) return;
    for (int i = 0; qm->lin && i < qm->n_layers * QV_QL_COUNT; i++) qv_qlinear_free(&qm->lin[i]);
    free(qm->lin);
    if (qm->owns_model) qv_model_close(qm->model);
    free(qm->fp_buf);
    free(qm->meta.transforms_json);
    free(qm->path);
    free(qm);
}

void qv_qmodel_hash_text(const void *data, size_t n, char out[17])
{
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

qv_status qv_qmodel_new(int n_layers, qv_qformat fmt, int kv_bits, qv_qmodel **out)
{
    *out = NULL;
    if (kv_bits != 4 && kv_bits != 16) return qv_fail(QV_ERR_USAGE, "KV cache bits must be 4 or 16 (got %d)", kv_bits);
    if ((unsigned)fmt >= QV_QFMT_COUNT) return qv_fail(QV_ERR_USAGE, "bad quantization format %d", (int)fmt);
    qv_qmodel *qm = qv_calloc(1, sizeof *qm);
    if (!qm) return QV_ERR_NOMEM;
    qm->n_layers = n_layers;
    qm->lin = qv_calloc((size_t)n_layers * QV_QL_COUNT, sizeof(qv_qlinear));
    qm->meta.transforms_json = strdup("{}");
    if (!qm->lin || !qm->meta.transforms_json) {
        qv_qmodel_close(qm);
        return QV_ERR_NOMEM;
    }
    qm->meta.format_version = QV_QMODEL_FORMAT_VERSION;
    qm->meta.fmt = fmt;
    qm->meta.group_size = fmt == QV_QFMT_W4A8_G128 ? QV_QOQ_GROUP : 0;
    qm->meta.kv_bits = kv_bits;
    snprintf(qm->meta.qvet_version, sizeof qm->meta.qvet_version, "%s", QV_VERSION_STRING);
    snprintf(qm->meta.method, sizeof qm->meta.method, "rtn");
    *out = qm;
    return QV_OK;
}

/* [N, K] of linear `id` from the config. */
void qv_qmodel_linear_shape(const qv_config *c, qv_qlinear_id id, int *N, int *K)
{
    int H = c->hidden_size, I = c->intermediate_size, Dq = c->num_heads * c->head_dim,
        Dkv = c->num_kv_heads * c->head_dim;
    static const int pick[QV_QL_COUNT][2] = {{0, 1}, {2, 1}, {2, 1}, {1, 0}, {3, 1}, {3, 1}, {1, 3}};
    int dims[4] = {Dq, H, Dkv, I};
    *N = dims[pick[id][0]];
    *K = dims[pick[id][1]];
}

static const qv_tensor *linear_tensor(const qv_layer_weights *w, qv_qlinear_id id, const qv_tensor **bias)
{
    const qv_tensor *t[QV_QL_COUNT] = {&w->wq, &w->wk, &w->wv, &w->wo, &w->w_gate, &w->w_up, &w->w_down};
    const qv_tensor *b[QV_QL_COUNT] = {&w->bq, &w->bk, &w->bv, &w->bo, NULL, NULL, NULL};
    *bias = b[id] && b[id]->data ? b[id] : NULL;
    return t[id];
}

static qv_status tensor_f32(const qv_tensor *t, float **out)
{
    size_t n = (size_t)qv_tensor_numel(t);
    *out = qv_malloc(n * sizeof(float));
    if (!*out) return qv_fail(QV_ERR_NOMEM, "out of memory converting a weight");
    qv_status st = qv_tensor_to_f32(t, *out);
    if (st != QV_OK) {
        free(*out);
        *out = NULL;
    }
    return st;
}

qv_status qv_qmodel_quantize_rtn(const qv_model *model, qv_qformat fmt, int kv_bits, qv_qmodel **out)
{
    *out = NULL;
    const qv_config *c = &model->cfg;
    qv_qmodel *qm;
    QV_TRY(qv_qmodel_new(c->num_layers, fmt, kv_bits, &qm));
    qm->model = (qv_model *)model;
    qm->owns_model = 0;
    qv_status st = QV_OK;
    for (int l = 0; l < c->num_layers && st == QV_OK; l++)
        for (int id = 0; id < QV_QL_COUNT && st == QV_OK; id++) {
            const qv_tensor *bt, *wt = linear_tensor(&model->layers[l], (qv_qlinear_id)id, &bt);
            int N, K;
            qv_qmodel_linear_shape(c, (qv_qlinear_id)id, &N, &K);
            if (!wt->data || wt->ndim != 2 || wt->shape[0] != N || wt->shape[1] != K) {
                st = qv_fail(QV_ERR_INPUT, "%s: layer %d %s: weight missing or not [%d, %d]", model->dir, l,
                             qv_qlinear_module((qv_qlinear_id)id), N, K);
                break;
            }
            float *W = NULL, *b = NULL;
            st = tensor_f32(wt, &W);
            if (st == QV_OK && bt) st = tensor_f32(bt, &b);
            if (st == QV_OK) st = qv_qlinear_quantize(W, N, K, fmt, NULL, b, qv_qmodel_linear(qm, l, (qv_qlinear_id)id));
            if (st != QV_OK)
                qv_fail_prefix(st, "%s: layer %d %s", model->dir, l, qv_qlinear_module((qv_qlinear_id)id));
            free(W);
            free(b);
        }
    if (st != QV_OK) {
        qv_qmodel_close(qm);
        return st;
    }
    *out = qm;
    return QV_OK;
}

/* ---------------------------------------------------------------- config text */

char *qv_qmodel_config_json(const qv_config *c)
{
    cJSON *r = cJSON_CreateObject();
    if (!r) return NULL;
    cJSON_AddStringToObject(r, "model_type", c->model_type[0] ? c->model_type : "llama");
    cJSON_AddNumberToObject(r, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(r, "intermediate_size", c->intermediate_size);
    cJSON_AddNumberToObject(r, "num_hidden_layers", c->num_layers);
    cJSON_AddNumberToObject(r, "num_attention_heads", c->num_heads);
    cJSON_AddNumberToObject(r, "num_key_value_heads", c->num_kv_heads);
    cJSON_AddNumberToObject(r, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(r, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(r, "max_position_embeddings", c->max_position_embeddings);
    cJSON_AddNumberToObject(r, "rms_norm_eps", (double)c->rms_norm_eps);
    cJSON_AddNumberToObject(r, "rope_theta", c->rope_theta);
    if (c->rope_type != QV_ROPE_DEFAULT) {
        cJSON *s = cJSON_AddObjectToObject(r, "rope_scaling");
        cJSON_AddStringToObject(s, "rope_type", c->rope_type == QV_ROPE_LLAMA3 ? "llama3" : "linear");
        cJSON_AddNumberToObject(s, "factor", c->rope_factor);
        if (c->rope_type == QV_ROPE_LLAMA3) {
            cJSON_AddNumberToObject(s, "low_freq_factor", c->rope_low_freq_factor);
            cJSON_AddNumberToObject(s, "high_freq_factor", c->rope_high_freq_factor);
            cJSON_AddNumberToObject(s, "original_max_position_embeddings", c->rope_original_max_pos);
        }
    }
    cJSON_AddBoolToObject(r, "tie_word_embeddings", c->tie_word_embeddings);
    /* qwen2 implies its biases; llama's attention_bias covers q/k/v/o */
    cJSON_AddBoolToObject(r, "attention_bias", strcmp(c->model_type, "qwen2") ? c->attention_bias : 0);
    cJSON_AddBoolToObject(r, "mlp_bias", c->mlp_bias);
    cJSON_AddStringToObject(r, "torch_dtype", c->torch_dtype == QV_BF16 ? "bfloat16" : c->torch_dtype == QV_F32 ? "float32" : "float16");
    if (c->bos_token_id >= 0) cJSON_AddNumberToObject(r, "bos_token_id", c->bos_token_id);
    if (c->eos_token_id >= 0) cJSON_AddNumberToObject(r, "eos_token_id", c->eos_token_id);
    char *s = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    return s;
}

/* The model's tokenizer.json text (malloc'd), or NULL when it has none (*st says if that is an
 * error). */
char *qv_qmodel_tokenizer_text(const qv_model *m, qv_status *st)
{
    *st = QV_OK;
    if (m->tokenizer_json) {
        char *t = strdup(m->tokenizer_json);
        if (!t) *st = QV_ERR_NOMEM;
        return t;
    }
    if (!m->tokenizer_path) return NULL;
    char *text = NULL;
    size_t n = 0;
    *st = qv_read_file(m->tokenizer_path, (size_t)1 << 30, &text, &n);
    return *st == QV_OK ? text : NULL;
}

/* ---------------------------------------------------------------- an FP16 model without linears */

static qv_status bind_fp16(qv_model *m, const char *name, int64_t d0, int64_t d1, int required, qv_tensor *out)
{
    memset(out, 0, sizeof *out);
    const qv_st_entry *e = qv_st_set_find(m->weights, name, NULL);
    if (!e) {
        if (!required) return QV_OK;
        return qv_fail(QV_ERR_INPUT, "%s: missing tensor '%s'", m->dir, name);
    }
    char have[96];
    int ok = e->t.ndim == (d1 ? 2 : 1) && e->t.shape[0] == d0 && (!d1 || e->t.shape[1] == d1);
    if (e->t.dtype != QV_F16)
        return qv_fail(QV_ERR_INPUT, "%s: tensor '%s': dtype %s, expected F16", m->dir, name, qv_dtype_name(e->t.dtype));
    if (!ok)
        return qv_fail(QV_ERR_INPUT, "%s: tensor '%s': shape %s, expected [%lld%s%lld] from the config", m->dir, name,
                       qv_shape_str(&e->t, have, sizeof have), (long long)d0, d1 ? ", " : "", d1 ? (long long)d1 : 0LL);
    int64_t bad = qv_tensor_first_nonfinite(&e->t);
    if (bad >= 0) return qv_fail(QV_ERR_INPUT, "%s: tensor '%s': NaN or Inf at index %lld", m->dir, name, (long long)bad);
    *out = e->t;
    m->n_params += qv_tensor_numel(&e->t);
    m->n_used_tensors++;
    return QV_OK;
}

qv_status qv_qmodel_build_fp_model(const char *label, qv_st_file *f, const char *config_json, const char *tok_json,
                                   qv_model **out)
{
    *out = NULL;
    qv_model *m = qv_calloc(1, sizeof *m);
    if (!m) {
        qv_st_close(f);
        return QV_ERR_NOMEM;
    }
    size_t ll = strlen(label);
    m->dir = strdup(label);
    m->config_path = qv_malloc(ll + 32);
    if (m->config_path) snprintf(m->config_path, ll + 32, "%s (metadata \"config\")", label);
    qv_status st = (m->dir && m->config_path) ? qv_st_set_from_file(f, &m->weights) : QV_ERR_NOMEM;
    if (st == QV_OK) st = qv_config_parse(config_json, strlen(config_json), m->config_path, &m->cfg);
    const qv_config *c = &m->cfg;
    if (st == QV_OK && !(m->layers = qv_calloc((size_t)c->num_layers, sizeof(qv_layer_weights)))) st = QV_ERR_NOMEM;
    if (st == QV_OK) st = bind_fp16(m, "model.embed_tokens.weight", c->vocab_size, c->hidden_size, 1, &m->embed);
    if (st == QV_OK) st = bind_fp16(m, "model.norm.weight", c->hidden_size, 0, 1, &m->final_norm);
    if (st == QV_OK) st = bind_fp16(m, "lm_head.weight", c->vocab_size, c->hidden_size, 0, &m->lm_head);
    if (st == QV_OK && !m->lm_head.data) {
        if (!c->tie_word_embeddings)
            st = qv_fail(QV_ERR_INPUT, "%s: missing tensor 'lm_head.weight' (the config does not tie embeddings)", label);
        m->lm_head = m->embed;
    }
    for (int l = 0; l < c->num_layers && st == QV_OK; l++) {
        char name[96];
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
        st = bind_fp16(m, name, c->hidden_size, 0, 1, &m->layers[l].input_norm);
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
        if (st == QV_OK) st = bind_fp16(m, name, c->hidden_size, 0, 1, &m->layers[l].post_norm);
    }
    if (st == QV_OK && tok_json) {
        if (!(m->tokenizer_json = strdup(tok_json))) st = QV_ERR_NOMEM;
        else if ((st = qv_tok_load_json(tok_json, strlen(tok_json), label, &m->tok)) != QV_OK)
            qv_fail_prefix(st, "%s: metadata \"tokenizer\"", label);
        else if (qv_tok_vocab_size(m->tok) > c->vocab_size)
            st = qv_fail(QV_ERR_INPUT, "%s: tokenizer has %d ids but vocab_size is %d", label,
                         (int)qv_tok_vocab_size(m->tok), c->vocab_size);
    }
    if (st != QV_OK) {
        if (!m->weights) qv_st_close(f);
        qv_model_close(m);
        return st;
    }
    *out = m;
    return QV_OK;
}

/* ---------------------------------------------------------------- from calibrated FP32 weights */

static qv_status add_f16(qv_st_writer *w, const char *name, const float *src, const qv_tensor *fallback, int64_t d0,
                         int64_t d1)
{
    size_t n = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    qv_fp16 *h = qv_malloc(n * sizeof(qv_fp16));
    float *tmp = NULL;
    qv_status st = h ? QV_OK : QV_ERR_NOMEM;
    if (st == QV_OK && !src) {
        st = tensor_f32(fallback, &tmp);
        src = tmp;
    }
    if (st == QV_OK) {
        for (size_t i = 0; i < n; i++) h[i] = qv_fp32_to_fp16(src[i]);
        int64_t shape[2] = {d0, d1};
        st = qv_st_writer_add(w, name, QV_F16, d1 ? 2 : 1, shape, h);
    }
    free(h);
    free(tmp);
    return st;
}

qv_status qv_qmodel_from_fp32(const qv_model *base, const qv_qmodel_fp32_src *src, qv_qformat fmt, int kv_bits,
                              const qv_qmodel_meta *meta, qv_qmodel **out)
{
    *out = NULL;
    const qv_config *c = &base->cfg;
    int H = c->hidden_size, V = c->vocab_size, L = c->num_layers;
    if (!src || !src->W) return qv_fail(QV_ERR_USAGE, "qv_qmodel_from_fp32: no weights given");
    qv_qmodel *qm;
    QV_TRY(qv_qmodel_new(L, fmt, kv_bits, &qm));
    if (meta) {
        free(qm->meta.transforms_json);
        qm->meta.transforms_json = strdup(meta->transforms_json ? meta->transforms_json : "{}");
        memcpy(qm->meta.calib_hash, meta->calib_hash, sizeof qm->meta.calib_hash);
        memcpy(qm->meta.calib_hash_algo, meta->calib_hash_algo, sizeof qm->meta.calib_hash_algo);
        qm->meta.calib_samples = meta->calib_samples;
        qm->meta.calib_seqlen = meta->calib_seqlen;
        memcpy(qm->meta.method, meta->method[0] ? meta->method : "qoq", sizeof qm->meta.method);
        qm->meta.method[sizeof qm->meta.method - 1] = '\0';
    } else {
        snprintf(qm->meta.method, sizeof qm->meta.method, "qoq");
    }
    qv_status st = qm->meta.transforms_json ? QV_OK : QV_ERR_NOMEM;
    for (int l = 0; l < L && st == QV_OK; l++)
        for (int id = 0; id < QV_QL_COUNT && st == QV_OK; id++) {
            size_t i = (size_t)l * QV_QL_COUNT + id;
            int N, K;
            qv_qmodel_linear_shape(c, (qv_qlinear_id)id, &N, &K);
            if (!src->W[i]) {
                st = qv_fail(QV_ERR_USAGE, "qv_qmodel_from_fp32: layer %d %s: no weight", l, qv_qlinear_module((qv_qlinear_id)id));
                break;
            }
            st = qv_qlinear_quantize(src->W[i], N, K, fmt, src->clip ? src->clip[i] : NULL, src->bias ? src->bias[i] : NULL,
                                     &qm->lin[i]);
            if (st != QV_OK) qv_fail_prefix(st, "layer %d %s", l, qv_qlinear_module((qv_qlinear_id)id));
        }
    /* FP parts as an F16 safetensors buffer, opened like a checkpoint's */
    qv_st_writer *w = st == QV_OK ? qv_st_writer_new() : NULL;
    if (st == QV_OK && !w) st = QV_ERR_NOMEM;
    int tied = !src->lm_head && base->lm_head.data == base->embed.data;
    if (st == QV_OK) st = add_f16(w, "model.embed_tokens.weight", src->embed, &base->embed, V, H);
    if (st == QV_OK && !tied) st = add_f16(w, "lm_head.weight", src->lm_head, &base->lm_head, V, H);
    if (st == QV_OK) st = add_f16(w, "model.norm.weight", src->final_norm, &base->final_norm, H, 0);
    for (int l = 0; l < L && st == QV_OK; l++) {
        char name[96];
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
        st = add_f16(w, name, src->input_norm ? src->input_norm[l] : NULL, &base->layers[l].input_norm, H, 0);
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
        if (st == QV_OK) st = add_f16(w, name, src->post_norm ? src->post_norm[l] : NULL, &base->layers[l].post_norm, H, 0);
    }
    size_t size = 0;
    if (st == QV_OK) st = qv_st_writer_to_buffer(w, &qm->fp_buf, &size);
    qv_st_writer_free(w);
    qv_st_file *f = NULL;
    if (st == QV_OK) st = qv_st_open_buffer(qm->fp_buf, size, "<calibrated model>", &f);
    qv_config cc = *c;
    if (!tied) cc.tie_word_embeddings = 0; /* untied by the transforms */
    char *cj = st == QV_OK ? qv_qmodel_config_json(&cc) : NULL;
    if (st == QV_OK && !cj) st = QV_ERR_NOMEM;
    char *tok = st == QV_OK ? qv_qmodel_tokenizer_text(base, &st) : NULL;
    if (st == QV_OK) {
        st = qv_qmodel_build_fp_model("<calibrated model>", f, cj, tok, &qm->model);
        f = NULL;
        qm->owns_model = 1;
    }
    qv_st_close(f);
    free(cj);
    free(tok);
    if (st != QV_OK) {
        qv_qmodel_close(qm);
        return st;
    }
    *out = qm;
    return QV_OK;
}
