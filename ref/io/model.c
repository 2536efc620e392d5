/* Loads a Llama-family model (include/qvet/model.h): config.json, then every tensor the config
 * implies, by its Hugging Face name, checked for presence, shape, a floating dtype and finite
 * values. Weights stay in the memory-mapped files in their stored dtype. */
#include "qvet/model.h"

#include "qvet/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *config_json;
    unsigned char *st_buf;
} model_owned;

void qv_model_close(qv_model *m)
{
    if (!m) return;
    qv_tok_free(m->tok);
    free(m->layers);
    qv_st_set_close(m->weights);
    model_owned *o = m->owned;
    if (o) {
        free(o->config_json);
        free(o->st_buf);
        free(o);
    }
    free(m->tokenizer_json);
    free(m->tokenizer_path);
    free(m->config_path);
    free(m->dir);
    free(m);
}

typedef struct {
    qv_model *m;
    const char *where; /* the weights, for "missing tensor" messages */
} binder;

static int is_float(qv_dtype dt) { return dt == QV_F16 || dt == QV_BF16 || dt == QV_F32; }

/* Binds tensor `name` of shape [d0] or [d0, d1] (`dims` says in config terms) into *out.
 * Absent and !required: leaves *out zeroed (data NULL). */
static qv_status bind(binder *b, const char *name, int required, int ndim, int64_t d0, int64_t d1,
                      const char *dims, qv_tensor *out)
{
    qv_model *m = b->m;
    const char *file = NULL;
    const qv_st_entry *e = qv_st_set_find(m->weights, name, &file);
    memset(out, 0, sizeof *out);
    if (!e) {
        if (!required) return QV_OK;
        if (ndim == 1)
            return qv_fail(QV_ERR_INPUT, "%s: missing tensor '%s' (expected [%lld] = %s from %s)", b->where, name,
                           (long long)d0, dims, m->config_path);
        return qv_fail(QV_ERR_INPUT, "%s: missing tensor '%s' (expected [%lld, %lld] = %s from %s)", b->where, name,
                       (long long)d0, (long long)d1, dims, m->config_path);
    }
    if (!is_float(e->t.dtype))
        return qv_fail(QV_ERR_INPUT, "%s: tensor '%s': dtype %s is not a floating type (F16, BF16 or F32)", file,
                       name, qv_dtype_name(e->t.dtype));
    int ok = e->t.ndim == ndim && e->t.shape[0] == d0 && (ndim == 1 || e->t.shape[1] == d1);
    if (!ok) {
        char have[128];
        qv_shape_str(&e->t, have, sizeof have);
        if (ndim == 1)
            return qv_fail(QV_ERR_INPUT, "%s: tensor '%s': shape %s does not match [%lld] = %s from %s", file, name,
                           have, (long long)d0, dims, m->config_path);
        return qv_fail(QV_ERR_INPUT, "%s: tensor '%s': shape %s does not match [%lld, %lld] = %s from %s", file,
                       name, have, (long long)d0, (long long)d1, dims, m->config_path);
    }
    int64_t bad = qv_tensor_first_nonfinite(&e->t);
    if (bad >= 0) {
        uint16_t h = 0;
        int nan;
        if (e->t.dtype == QV_F32) {
            float v;
            memcpy(&v, (const float *)e->t.data + bad, 4);
            nan = v != v;
        } else {
            memcpy(&h, (const uint16_t *)e->t.data + bad, 2);
            nan = e->t.dtype == QV_F16 ? (h & 0x3ffu) != 0 : (h & 0x7fu) != 0;
        }
        if (ndim == 2)
            return qv_fail(QV_ERR_INPUT, "%s: tensor '%s': %s at index %lld (row %lld, column %lld)", file, name,
                           nan ? "NaN" : "Inf", (long long)bad, (long long)(bad / d1), (long long)(bad % d1));
        return qv_fail(QV_ERR_INPUT, "%s: tensor '%s': %s at index %lld", file, name, nan ? "NaN" : "Inf",
                       (long long)bad);
    }
    *out = e->t;
    m->n_params += qv_tensor_numel(&e->t);
    m->n_used_tensors++;
    return QV_OK;
}

static qv_status bind_all(qv_model *m, const char *where)
{
    binder b = {m, where};
    qv_config *c = &m->cfg;
    int64_t H = c->hidden_size, I = c->intermediate_size, V = c->vocab_size;
    int64_t QD = (int64_t)c->num_heads * c->head_dim, KD = (int64_t)c->num_kv_heads * c->head_dim;
    char name[256];
    /* Biases: the config may not say (Qwen2 has q/k/v biases by architecture), so layer 0 is
     * the evidence; once present they are required in every layer. */
    if (qv_st_set_find(m->weights, "model.layers.0.self_attn.q_proj.bias", NULL)) c->attention_bias = 1;
    if (qv_st_set_find(m->weights, "model.layers.0.self_attn.o_proj.bias", NULL)) c->o_bias = 1;
    if (c->mlp_bias || qv_st_set_find(m->weights, "model.layers.0.mlp.up_proj.bias", NULL))
        return qv_fail(QV_ERR_UNSUPPORTED, "%s: MLP biases (mlp_bias) are not supported", m->config_path);
    m->layers = qv_calloc((size_t)c->num_layers, sizeof(qv_layer_weights));
    if (!m->layers) return QV_ERR_NOMEM;
    QV_TRY(bind(&b, "model.embed_tokens.weight", 1, 2, V, H, "[vocab_size, hidden_size]", &m->embed));
    for (int l = 0; l < c->num_layers; l++) {
        qv_layer_weights *L = &m->layers[l];
#define QV_BIND(suffix, req, nd, a, bb, dims, dst)                                  \
        do {                                                                         \
            snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix);            \
            QV_TRY(bind(&b, name, req, nd, a, bb, dims, dst));                       \
        } while (0)
        QV_BIND("self_attn.q_proj.weight", 1, 2, QD, H, "[num_attention_heads*head_dim, hidden_size]", &L->wq);
        QV_BIND("self_attn.k_proj.weight", 1, 2, KD, H, "[num_key_value_heads*head_dim, hidden_size]", &L->wk);
        QV_BIND("self_attn.v_proj.weight", 1, 2, KD, H, "[num_key_value_heads*head_dim, hidden_size]", &L->wv);
        QV_BIND("self_attn.o_proj.weight", 1, 2, H, QD, "[hidden_size, num_attention_heads*head_dim]", &L->wo);
        if (c->attention_bias) {
            QV_BIND("self_attn.q_proj.bias", 1, 1, QD, 0, "[num_attention_heads*head_dim]", &L->bq);
            QV_BIND("self_attn.k_proj.bias", 1, 1, KD, 0, "[num_key_value_heads*head_dim]", &L->bk);
            QV_BIND("self_attn.v_proj.bias", 1, 1, KD, 0, "[num_key_value_heads*head_dim]", &L->bv);
        }
        if (c->o_bias) QV_BIND("self_attn.o_proj.bias", 1, 1, H, 0, "[hidden_size]", &L->bo);
        QV_BIND("mlp.gate_proj.weight", 1, 2, I, H, "[intermediate_size, hidden_size]", &L->w_gate);
        QV_BIND("mlp.up_proj.weight", 1, 2, I, H, "[intermediate_size, hidden_size]", &L->w_up);
        QV_BIND("mlp.down_proj.weight", 1, 2, H, I, "[hidden_size, intermediate_size]", &L->w_down);
        QV_BIND("input_layernorm.weight", 1, 1, H, 0, "[hidden_size]", &L->input_norm);
        QV_BIND("post_attention_layernorm.weight", 1, 1, H, 0, "[hidden_size]", &L->post_norm);
#undef QV_BIND
    }
    QV_TRY(bind(&b, "model.norm.weight", 1, 1, H, 0, "[hidden_size]", &m->final_norm));
    if (c->tie_word_embeddings) {
        /* transformers ignores a stored lm_head.weight when tied; so do we */
        m->lm_head = m->embed;
    } else {
        QV_TRY(bind(&b, "lm_head.weight", 1, 2, V, H, "[vocab_size, hidden_size]", &m->lm_head));
    }
    return QV_OK;
}

static qv_model *model_new(const char *dir)
{
    qv_model *m = qv_calloc(1, sizeof *m);
    if (!m) return NULL;
    m->dir = strdup(dir);
    m->config_path = qv_path_join(dir, "config.json");
    if (!m->dir || !m->config_path) {
        qv_model_close(m);
        qv_fail(QV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    return m;
}

/* The weights' location for messages about tensors that are not there. */
static char *weights_where(const qv_model *m)
{
    if (m->weights->n_files == 1) return strdup(m->weights->files[0]->path);
    return qv_path_join(m->dir, "model.safetensors.index.json");
}

/* The tokenizer is part of the model: a broken tokenizer.json fails the open, and a tokenizer
 * with more ids than the embedding has rows could index past it. */
static qv_status load_tokenizer(qv_model *m)
{
    qv_status st = QV_OK;
    const char *label = m->tokenizer_path;
    if (m->tokenizer_json) {
        char *l = qv_path_join(m->dir, "tokenizer.json");
        if (!l) return QV_ERR_NOMEM;
        st = qv_tok_load_json(m->tokenizer_json, strlen(m->tokenizer_json), l, &m->tok);
        free(l);
    } else if (m->tokenizer_path) {
        st = qv_tok_load_file(m->tokenizer_path, &m->tok);
    } else {
        return QV_OK;
    }
    if (st != QV_OK) return st;
    if (qv_tok_vocab_size(m->tok) > m->cfg.vocab_size)
        return qv_fail(QV_ERR_INPUT, "%s: tokenizer has %d ids but config.json vocab_size is %d",
                       label ? label : m->dir, qv_tok_vocab_size(m->tok), m->cfg.vocab_size);
    return QV_OK;
}

static qv_status finish(qv_model *m, qv_model **out)
{
    char *where = weights_where(m);
    if (!where) {
        qv_model_close(m);
        return qv_fail(QV_ERR_NOMEM, "out of memory");
    }
    qv_status st = bind_all(m, where);
    free(where);
    if (st == QV_OK) st = load_tokenizer(m);
    if (st != QV_OK) {
        qv_model_close(m);
        return st;
    }
    *out = m;
    return QV_OK;
}

qv_status qv_model_open(const char *dir, qv_model **out)
{
    *out = NULL;
    if (!qv_path_exists(dir)) return qv_fail(QV_ERR_IO, "%s: no such model folder", dir);
    if (!qv_is_dir(dir)) return qv_fail(QV_ERR_INPUT, "%s: not a folder (--model takes a Hugging Face model folder)", dir);
    qv_model *m = model_new(dir);
    if (!m) return QV_ERR_NOMEM;
    qv_status st;
    if (!qv_path_exists(m->config_path))
        st = qv_fail(QV_ERR_INPUT, "%s: no config.json in this folder (not a Hugging Face model folder)", dir);
    else if ((st = qv_config_load(m->config_path, &m->cfg)) == QV_OK)
        st = qv_st_set_open_dir(dir, &m->weights);
    if (st != QV_OK) {
        qv_model_close(m);
        return st;
    }
    char *tp = qv_path_join(dir, "tokenizer.json");
    if (tp && qv_path_exists(tp)) m->tokenizer_path = tp;
    else free(tp);
    return finish(m, out);
}

qv_status qv_model_open_buffers(const char *label, char *config_json, unsigned char *st_buf, size_t st_size,
                                char *tokenizer_json, qv_model **out)
{
    *out = NULL;
    if (!label) label = "<memory>";
    qv_model *m = model_new(label);
    model_owned *o = m ? qv_calloc(1, sizeof *o) : NULL;
    if (!o) {
        qv_model_close(m);
        free(config_json);
        free(st_buf);
        free(tokenizer_json);
        return QV_ERR_NOMEM;
    }
    m->owned = o;
    o->config_json = config_json;
    o->st_buf = st_buf;
    m->tokenizer_json = tokenizer_json;
    if (!config_json || !st_buf) {
        qv_model_close(m);
        return qv_fail(QV_ERR_INTERNAL, "%s: qv_model_open_buffers needs a config and a safetensors buffer", label);
    }
    qv_status st = qv_config_parse(config_json, strlen(config_json), m->config_path, &m->cfg);
    if (st == QV_OK) {
        char *stlabel = qv_path_join(label, "model.safetensors");
        qv_st_file *f = NULL;
        st = stlabel ? qv_st_open_buffer(st_buf, st_size, stlabel, &f) : QV_ERR_NOMEM;
        free(stlabel);
        if (st == QV_OK) st = qv_st_set_from_file(f, &m->weights);
    }
    if (st != QV_OK) {
        qv_model_close(m);
        return st;
    }
    return finish(m, out);
}
