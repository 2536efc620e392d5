/* The quantized checkpoint (docs/checkpoint.md): one safetensors file with HF-named F16 tensors
 * for the FP parts, per linear `<prefix>.qweight` plus its scale tensors, and __metadata__
 * {"qvet": JSON, "config": config.json text, "tokenizer": tokenizer.json text (optional)}.
 * Opening checks every shape against the config and every range the kernels rely on. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "qmodel_internal.h"
#include "qvet/qoq.h"

char *qv_qmodel_meta_json(const qv_qmodel_meta *m)
{
    cJSON *r = cJSON_CreateObject();
    if (!r) return NULL;
    cJSON_AddNumberToObject(r, "format_version", m->format_version);
    cJSON_AddStringToObject(r, "format", qv_qformat_name(m->fmt));
    cJSON_AddNumberToObject(r, "group_size", m->group_size);
    cJSON_AddNumberToObject(r, "kv_bits", m->kv_bits);
    cJSON_AddStringToObject(r, "method", m->method);
    cJSON *t = cJSON_Parse(m->transforms_json ? m->transforms_json : "{}");
    cJSON_AddItemToObject(r, "transforms", t ? t : cJSON_CreateObject());
    cJSON *c = cJSON_AddObjectToObject(r, "calibration");
    cJSON_AddStringToObject(c, "text_hash", m->calib_hash);
    cJSON_AddStringToObject(c, "hash_algo", m->calib_hash_algo);
    cJSON_AddNumberToObject(c, "samples", (double)m->calib_samples);
    cJSON_AddNumberToObject(c, "seqlen", m->calib_seqlen);
    cJSON_AddStringToObject(r, "qvet_version", m->qvet_version);
    char *s = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    return s;
}

/* ---------------------------------------------------------------- write */

static qv_status add_fp(qv_st_writer *w, const char *name, const qv_tensor *t)
{
    int64_t n = qv_tensor_numel(t);
    float *f = qv_malloc((size_t)n * sizeof(float));
    qv_fp16 *h = qv_malloc((size_t)n * sizeof(qv_fp16));
    qv_status st = f && h ? qv_tensor_to_f32(t, f) : QV_ERR_NOMEM;
    if (st == QV_OK) {
        for (int64_t i = 0; i < n; i++) h[i] = qv_fp32_to_fp16(f[i]);
        st = qv_st_writer_add(w, name, QV_F16, t->ndim, t->shape, h);
    }
    free(f);
    free(h);
    return st;
}

static qv_status add_linear(qv_st_writer *w, const char *prefix, const qv_qlinear *l)
/* prefix is at most 127 characters (the caller's buffer) */
{
    char name[256];
    int64_t N = l->N, K = l->K, G = K / QV_QOQ_GROUP;
    snprintf(name, sizeof name, "%s.qweight", prefix);
    if (l->fmt == QV_QFMT_W8A8) {
        int64_t sh[2] = {N, K};
        QV_TRY(qv_st_writer_add(w, name, QV_I8, 2, sh, l->qweight));
        snprintf(name, sizeof name, "%s.scale", prefix);
        QV_TRY(qv_st_writer_add(w, name, QV_F16, 1, &N, l->scale));
    } else {
        int64_t sh[2] = {N, K / 2};
        QV_TRY(qv_st_writer_add(w, name, QV_U8, 2, sh, l->qweight));
        if (l->fmt == QV_QFMT_W4A8_CHN) {
            snprintf(name, sizeof name, "%s.scale", prefix);
            QV_TRY(qv_st_writer_add(w, name, QV_F16, 1, &N, l->scale));
            snprintf(name, sizeof name, "%s.szero", prefix);
            QV_TRY(qv_st_writer_add(w, name, QV_F16, 1, &N, l->szero));
        } else {
            int64_t gs[2] = {G, N};
            snprintf(name, sizeof name, "%s.s0", prefix);
            QV_TRY(qv_st_writer_add(w, name, QV_F16, 1, &N, l->s0));
            snprintf(name, sizeof name, "%s.s1", prefix);
            QV_TRY(qv_st_writer_add(w, name, QV_U8, 2, gs, l->s1));
            snprintf(name, sizeof name, "%s.sz1", prefix);
            QV_TRY(qv_st_writer_add(w, name, QV_U8, 2, gs, l->sz1));
        }
    }
    if (l->bias) {
        qv_fp16 *h = qv_malloc(sizeof(qv_fp16) * (size_t)N);
        if (!h) return QV_ERR_NOMEM;
        for (int64_t n = 0; n < N; n++) h[n] = qv_fp32_to_fp16(l->bias[n]);
        snprintf(name, sizeof name, "%s.bias", prefix);
        qv_status st = qv_st_writer_add(w, name, QV_F16, 1, &N, h);
        free(h);
        QV_TRY(st);
    }
    return QV_OK;
}

qv_status qv_qmodel_write(const qv_qmodel *qm, const char *path)
{
    const qv_model *m = qm->model;
    const qv_config *c = &m->cfg;
    qv_st_writer *w = qv_st_writer_new();
    if (!w) return QV_ERR_NOMEM;
    char *meta = qv_qmodel_meta_json(&qm->meta), *cfg = NULL, *tok = NULL;
    qv_config cc = *c;
    int tied = m->lm_head.data == m->embed.data;
    if (!tied) cc.tie_word_embeddings = 0;
    cfg = qv_qmodel_config_json(&cc);
    qv_status st = meta && cfg ? QV_OK : QV_ERR_NOMEM;
    if (st == QV_OK) tok = qv_qmodel_tokenizer_text(m, &st);
    if (st == QV_OK) st = add_fp(w, "model.embed_tokens.weight", &m->embed);
    if (st == QV_OK && !tied) st = add_fp(w, "lm_head.weight", &m->lm_head);
    if (st == QV_OK) st = add_fp(w, "model.norm.weight", &m->final_norm);
    for (int l = 0; l < qm->n_layers && st == QV_OK; l++) {
        char name[160];
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
        st = add_fp(w, name, &m->layers[l].input_norm);
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
        if (st == QV_OK) st = add_fp(w, name, &m->layers[l].post_norm);
        for (int id = 0; id < QV_QL_COUNT && st == QV_OK; id++) {
            char prefix[128];
            snprintf(prefix, sizeof prefix, "model.layers.%d.%s", l, qv_qlinear_module((qv_qlinear_id)id));
            st = add_linear(w, prefix, &qm->lin[(size_t)l * QV_QL_COUNT + id]);
        }
    }
    if (st == QV_OK) st = qv_st_writer_meta(w, "format", "pt");
    if (st == QV_OK) st = qv_st_writer_meta(w, "qvet", meta);
    if (st == QV_OK) st = qv_st_writer_meta(w, "config", cfg);
    if (st == QV_OK && tok) st = qv_st_writer_meta(w, "tokenizer", tok);
    if (st == QV_OK) st = qv_st_writer_write(w, path);
    if (st != QV_OK) qv_fail_prefix(st, "%s: writing the quantized checkpoint", path);
    qv_st_writer_free(w);
    free(meta);
    free(cfg);
    free(tok);
    return st;
}

/* ---------------------------------------------------------------- open */

static int nonneg_int(double v, double max) { return v >= 0 && v <= max && v == floor(v); }

qv_status qv_qmodel_meta_parse(const char *text, const char *path, qv_qmodel_meta *m)
{
    memset(m, 0, sizeof *m);
    if (!text) return qv_fail(QV_ERR_INPUT, "%s: not a qvet quantized checkpoint (no \"qvet\" entry in __metadata__)", path);
    cJSON *r = cJSON_Parse(text);
    if (!cJSON_IsObject(r)) {
        cJSON_Delete(r);
        return qv_fail(QV_ERR_INPUT, "%s: __metadata__ \"qvet\" is not a JSON object", path);
    }
    qv_status st = QV_OK;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, "format_version");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(r, "format");
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(r, "group_size");
    const cJSON *kv = cJSON_GetObjectItemCaseSensitive(r, "kv_bits");
    if (!cJSON_IsNumber(v))
        st = qv_fail(QV_ERR_INPUT, "%s: metadata qvet.format_version missing or not a number", path);
    else if (v->valuedouble != QV_QMODEL_FORMAT_VERSION)
        st = qv_fail(QV_ERR_INPUT, "%s: checkpoint format version %g is not supported (this qvet reads version %d)", path,
                     v->valuedouble, QV_QMODEL_FORMAT_VERSION);
    else if (!cJSON_IsString(f) || qv_qformat_parse(f->valuestring, &m->fmt) != QV_OK)
        st = qv_fail(QV_ERR_INPUT, "%s: metadata qvet.format is not one of w4a8-g128, w4a8-chn, w8a8", path);
    else if (!cJSON_IsNumber(kv) || (kv->valuedouble != 4 && kv->valuedouble != 16))
        st = qv_fail(QV_ERR_INPUT, "%s: metadata qvet.kv_bits must be 4 or 16", path);
    else if (!cJSON_IsNumber(g) || g->valuedouble != (m->fmt == QV_QFMT_W4A8_G128 ? QV_QOQ_GROUP : 0))
        st = qv_fail(QV_ERR_INPUT, "%s: metadata qvet.group_size must be %d for %s", path,
                     m->fmt == QV_QFMT_W4A8_G128 ? QV_QOQ_GROUP : 0, qv_qformat_name(m->fmt));
    if (st == QV_OK) {
        m->format_version = (int)v->valuedouble;
        m->group_size = (int)g->valuedouble;
        m->kv_bits = (int)kv->valuedouble;
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(r, "method");
        snprintf(m->method, sizeof m->method, "%s", cJSON_IsString(s) ? s->valuestring : "");
        s = cJSON_GetObjectItemCaseSensitive(r, "qvet_version");
        snprintf(m->qvet_version, sizeof m->qvet_version, "%s", cJSON_IsString(s) ? s->valuestring : "");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "transforms");
        m->transforms_json = cJSON_IsObject(t) ? cJSON_PrintUnformatted(t) : strdup("{}");
        if (!m->transforms_json) st = QV_ERR_NOMEM;
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(r, "calibration");
        if (cJSON_IsObject(c)) {
            s = cJSON_GetObjectItemCaseSensitive(c, "text_hash");
            snprintf(m->calib_hash, sizeof m->calib_hash, "%s", cJSON_IsString(s) ? s->valuestring : "");
            s = cJSON_GetObjectItemCaseSensitive(c, "hash_algo");
            snprintf(m->calib_hash_algo, sizeof m->calib_hash_algo, "%s", cJSON_IsString(s) ? s->valuestring : "");
            /* range-checked before the conversion: a double outside long/int is undefined
             * behaviour (found by fz_qmodel_meta: samples 6.7e77; then, in the first version of this
             * check, seqlen 1e10 converted when samples was already refused) */
            const cJSON *ns = cJSON_GetObjectItemCaseSensitive(c, "samples"), *nl = cJSON_GetObjectItemCaseSensitive(c, "seqlen");
            if (cJSON_IsNumber(ns) && !nonneg_int(ns->valuedouble, 9007199254740992.0))
                st = qv_fail(QV_ERR_INPUT, "%s: metadata qvet.calibration.samples must be an integer in [0, 2^53]", path);
            else if (cJSON_IsNumber(nl) && !nonneg_int(nl->valuedouble, INT_MAX))
                st = qv_fail(QV_ERR_INPUT, "%s: metadata qvet.calibration.seqlen must be an integer in [0, %d]", path, INT_MAX);
            else {
                m->calib_samples = cJSON_IsNumber(ns) ? (long)ns->valuedouble : 0;
                m->calib_seqlen = cJSON_IsNumber(nl) ? (int)nl->valuedouble : 0;
            }
        }
    }
    cJSON_Delete(r);
    if (st != QV_OK) {
        free(m->transforms_json);
        m->transforms_json = NULL;
    }
    return st;
}

/* Finds `prefix.suffix` with dtype dt and shape [d0] or [d0, d1]; copies it into *dst. */
static qv_status take(const qv_st_file *f, const char *prefix, const char *suffix, qv_dtype dt, int64_t d0, int64_t d1,
                      int required, void **dst)
{
    char name[192];
    snprintf(name, sizeof name, "%s.%s", prefix, suffix);
    const qv_st_entry *e = qv_st_find(f, name);
    *dst = NULL;
    if (!e) return required ? qv_fail(QV_ERR_INPUT, "%s: missing tensor '%s'", f->path, name) : QV_OK;
    char have[96];
    if (e->t.dtype != dt)
        return qv_fail(QV_ERR_INPUT, "%s: tensor '%s': dtype %s, expected %s", f->path, name, qv_dtype_name(e->t.dtype),
                       qv_dtype_name(dt));
    if (e->t.ndim != (d1 ? 2 : 1) || e->t.shape[0] != d0 || (d1 && e->t.shape[1] != d1))
        return qv_fail(QV_ERR_INPUT, "%s: tensor '%s': shape %s, expected [%lld%s%lld] from the config", f->path, name,
                       qv_shape_str(&e->t, have, sizeof have), (long long)d0, d1 ? ", " : "", d1 ? (long long)d1 : 0LL);
    size_t n = (size_t)d0 * (size_t)(d1 ? d1 : 1) * qv_dtype_size(dt);
    if (!(*dst = qv_malloc(n))) return QV_ERR_NOMEM;
    memcpy(*dst, e->t.data, n);
    return QV_OK;
}

static qv_status load_linear(const qv_st_file *f, const char *prefix, qv_qformat fmt, int N, int K, qv_qlinear *l)
{
    memset(l, 0, sizeof *l);
    l->N = N;
    l->K = K;
    l->fmt = fmt;
    if (fmt != QV_QFMT_W8A8 && (N % QV_QOQ_TILE || K % QV_QOQ_TILE || (fmt == QV_QFMT_W4A8_G128 && K % QV_QOQ_GROUP)))
        return qv_fail(QV_ERR_INPUT, "%s: %s: shape [%d, %d] from the config cannot be stored as %s", f->path, prefix, N, K,
                       qv_qformat_name(fmt));
    void *p;
    if (fmt == QV_QFMT_W8A8) {
        QV_TRY(take(f, prefix, "qweight", QV_I8, N, K, 1, &p));
        l->qweight = p;
        QV_TRY(take(f, prefix, "scale", QV_F16, N, 0, 1, &p));
        l->scale = p;
    } else {
        QV_TRY(take(f, prefix, "qweight", QV_U8, N, K / 2, 1, &p));
        l->qweight = p;
        if (fmt == QV_QFMT_W4A8_CHN) {
            QV_TRY(take(f, prefix, "scale", QV_F16, N, 0, 1, &p));
            l->scale = p;
            QV_TRY(take(f, prefix, "szero", QV_F16, N, 0, 1, &p));
            l->szero = p;
        } else {
            QV_TRY(take(f, prefix, "s0", QV_F16, N, 0, 1, &p));
            l->s0 = p;
            QV_TRY(take(f, prefix, "s1", QV_U8, K / QV_QOQ_GROUP, N, 1, &p));
            l->s1 = p;
            QV_TRY(take(f, prefix, "sz1", QV_U8, K / QV_QOQ_GROUP, N, 1, &p));
            l->sz1 = p;
        }
    }
    QV_TRY(take(f, prefix, "bias", QV_F16, N, 0, 0, &p));
    if (p) {
        qv_fp16 *h = p;
        l->bias = qv_malloc(sizeof(float) * (size_t)N);
        if (!l->bias) {
            free(p);
            return QV_ERR_NOMEM;
        }
        for (int n = 0; n < N; n++) l->bias[n] = qv_fp16_to_fp32(h[n]);
        free(p);
    }
    char what[256];
    snprintf(what, sizeof what, "%s: %s", f->path, prefix);
    return qv_qlinear_check(l, what);
}

qv_status qv_qmodel_open(const char *path, qv_qmodel **out)
{
    *out = NULL;
    qv_st_file *f = NULL;
    QV_TRY(qv_st_open(path, &f));
    qv_qmodel_meta meta;
    qv_status st = qv_qmodel_meta_parse(qv_st_meta(f, "qvet"), f->path, &meta);
    const char *cfg_text = qv_st_meta(f, "config");
    qv_config c;
    if (st == QV_OK && !cfg_text) st = qv_fail(QV_ERR_INPUT, "%s: no \"config\" entry in __metadata__", f->path);
    if (st == QV_OK) {
        char label[512];
        snprintf(label, sizeof label, "%s (metadata \"config\")", f->path);
        st = qv_config_parse(cfg_text, strlen(cfg_text), label, &c);
    }
    qv_qmodel *qm = NULL;
    if (st == QV_OK) st = qv_qmodel_new(c.num_layers, meta.fmt, meta.kv_bits, &qm);
    if (st != QV_OK) {
        free(meta.transforms_json);
        qv_st_close(f);
        return st;
    }
    free(qm->meta.transforms_json);
    qm->meta = meta;
    for (int l = 0; l < c.num_layers && st == QV_OK; l++)
        for (int id = 0; id < QV_QL_COUNT && st == QV_OK; id++) {
            char prefix[128];
            int N, K;
            snprintf(prefix, sizeof prefix, "model.layers.%d.%s", l, qv_qlinear_module((qv_qlinear_id)id));
            qv_qmodel_linear_shape(&c, (qv_qlinear_id)id, &N, &K);
            st = load_linear(f, prefix, meta.fmt, N, K, &qm->lin[(size_t)l * QV_QL_COUNT + id]);
        }
    if (st == QV_OK && !(qm->path = strdup(path))) st = QV_ERR_NOMEM;
    if (st == QV_OK) {
        char *label = strdup(f->path);
        char *cfg_copy = strdup(cfg_text), *tok = qv_st_meta(f, "tokenizer") ? strdup(qv_st_meta(f, "tokenizer")) : NULL;
        if (!label || !cfg_copy) st = QV_ERR_NOMEM;
        else st = qv_qmodel_build_fp_model(label, f, cfg_copy, tok, &qm->model);
        f = NULL; /* taken */
        qm->owns_model = 1;
        free(label);
        free(cfg_copy);
        free(tok);
    }
    qv_st_close(f);
    if (st != QV_OK) {
        qv_qmodel_close(qm);
        return st;
    }
    *out = qm;
    return QV_OK;
}
