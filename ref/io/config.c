/* config.json of a Llama-family model (Llama-2/3, Mistral, Qwen2, SmolLM). Unknown fields are
 * ignored; a field that is present must have the right type (a string where a number belongs is
 * an error, not a default); sizes must be in [1, 2^24] and consistent with each other. */
#include "qvet/model.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <cJSON.h>

#include "ref/io/json_util.h"

#define QV_CFG_MAX_DIM (1 << 24)

typedef struct { const char *path; const cJSON *root; } cfgctx;

/* Reads an integer field in [lo, hi]. Missing (or null when null_ok): *out = dflt, or an error
 * when required. */
static qv_status get_int(const cfgctx *c, const cJSON *obj, const char *where, const char *key, int required,
                         int dflt, long lo, long hi, int *out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j || cJSON_IsNull(j)) {
        if (required) return qv_fail(QV_ERR_INPUT, "%s: missing required field \"%s%s\"", c->path, where, key);
        *out = dflt;
        return QV_OK;
    }
    if (!cJSON_IsNumber(j))
        return qv_fail(QV_ERR_INPUT, "%s: \"%s%s\" must be an integer, got %s", c->path, where, key,
                       qv_json_type_name(j));
    double v = j->valuedouble;
    if (!isfinite(v) || floor(v) != v)
        return qv_fail(QV_ERR_INPUT, "%s: \"%s%s\" must be an integer, got %g", c->path, where, key, v);
    if (v < (double)lo || v > (double)hi)
        return qv_fail(QV_ERR_INPUT, "%s: \"%s%s\" = %.0f is outside [%ld, %ld]", c->path, where, key, v, lo, hi);
    *out = (int)v;
    return QV_OK;
}

static qv_status get_num(const cfgctx *c, const cJSON *obj, const char *where, const char *key, int required,
                         double dflt, double lo_excl, double hi, double *out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j || cJSON_IsNull(j)) {
        if (required) return qv_fail(QV_ERR_INPUT, "%s: missing required field \"%s%s\"", c->path, where, key);
        *out = dflt;
        return QV_OK;
    }
    if (!cJSON_IsNumber(j))
        return qv_fail(QV_ERR_INPUT, "%s: \"%s%s\" must be a number, got %s", c->path, where, key,
                       qv_json_type_name(j));
    double v = j->valuedouble;
    if (!isfinite(v) || v <= lo_excl || v > hi)
        return qv_fail(QV_ERR_INPUT, "%s: \"%s%s\" = %g is outside (%g, %g]", c->path, where, key, v, lo_excl, hi);
    *out = v;
    return QV_OK;
}

static qv_status get_bool(const cfgctx *c, const char *key, int dflt, int *out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(c->root, key);
    if (!j || cJSON_IsNull(j)) {
        *out = dflt;
        return QV_OK;
    }
    if (!cJSON_IsBool(j))
        return qv_fail(QV_ERR_INPUT, "%s: \"%s\" must be true or false, got %s", c->path, key, qv_json_type_name(j));
    *out = cJSON_IsTrue(j);
    return QV_OK;
}

/* bos/eos: an integer, an array of integers (the first is used), or null/absent (-1). */
static qv_status get_token_id(const cfgctx *c, const char *key, int vocab, int *out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(c->root, key);
    *out = -1;
    if (!j || cJSON_IsNull(j)) return QV_OK;
    if (cJSON_IsArray(j)) {
        if (cJSON_GetArraySize(j) == 0) return QV_OK;
        for (const cJSON *x = j->child; x; x = x->next)
            if (!cJSON_IsNumber(x))
                return qv_fail(QV_ERR_INPUT, "%s: \"%s\" must hold integers, got %s", c->path, key,
                               qv_json_type_name(x));
        j = j->child;
    }
    if (!cJSON_IsNumber(j))
        return qv_fail(QV_ERR_INPUT, "%s: \"%s\" must be an integer, an array of integers or null, got %s", c->path,
                       key, qv_json_type_name(j));
    double v = j->valuedouble;
    if (!isfinite(v) || floor(v) != v || v < 0 || v >= vocab)
        return qv_fail(QV_ERR_INPUT, "%s: \"%s\" = %g is not a token id in [0, vocab_size %d)", c->path, key, v,
                       vocab);
    *out = (int)v;
    return QV_OK;
}

static qv_status parse_rope(const cfgctx *c, qv_config *cfg)
{
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(c->root, "rope_scaling");
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(c->root, "rope_parameters");
    if (rs && !cJSON_IsNull(rs) && !cJSON_IsObject(rs))
        return qv_fail(QV_ERR_INPUT, "%s: \"rope_scaling\" must be an object or null, got %s", c->path,
                       qv_json_type_name(rs));
    if (rp && !cJSON_IsNull(rp) && !cJSON_IsObject(rp))
        return qv_fail(QV_ERR_INPUT, "%s: \"rope_parameters\" must be an object or null, got %s", c->path,
                       qv_json_type_name(rp));
    /* rope_theta: top level (transformers < 5) or inside rope_parameters (>= 5); both -> equal */
    double top = 0, inner = 0;
    QV_TRY(get_num(c, c->root, "", "rope_theta", 0, 0, 0, 1e12, &top));
    if (cJSON_IsObject(rp)) QV_TRY(get_num(c, rp, "rope_parameters.", "rope_theta", 0, 0, 0, 1e12, &inner));
    if (top > 0 && inner > 0 && top != inner)
        return qv_fail(QV_ERR_INPUT, "%s: \"rope_theta\" = %g disagrees with \"rope_parameters.rope_theta\" = %g",
                       c->path, top, inner);
    cfg->rope_theta = top > 0 ? top : inner > 0 ? inner : 10000.0;
    const cJSON *sc = cJSON_IsObject(rs) ? rs : cJSON_IsObject(rp) ? rp : NULL;
    const char *where = sc == rs ? "rope_scaling." : "rope_parameters.";
    cfg->rope_type = QV_ROPE_DEFAULT;
    cfg->rope_factor = 1.0;
    if (!sc) return QV_OK;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(sc, "rope_type");
    if (!t) t = cJSON_GetObjectItemCaseSensitive(sc, "type");
    if (!t || cJSON_IsNull(t)) return QV_OK;
    if (!cJSON_IsString(t))
        return qv_fail(QV_ERR_INPUT, "%s: \"%srope_type\" must be a string, got %s", c->path, where,
                       qv_json_type_name(t));
    const char *ty = t->valuestring;
    if (strcmp(ty, "default") == 0) return QV_OK;
    if (strcmp(ty, "linear") == 0) {
        cfg->rope_type = QV_ROPE_LINEAR;
        return get_num(c, sc, where, "factor", 1, 0, 0, 1e6, &cfg->rope_factor);
    }
    if (strcmp(ty, "llama3") == 0) {
        cfg->rope_type = QV_ROPE_LLAMA3;
        QV_TRY(get_num(c, sc, where, "factor", 1, 0, 0, 1e6, &cfg->rope_factor));
        QV_TRY(get_num(c, sc, where, "low_freq_factor", 1, 0, 0, 1e6, &cfg->rope_low_freq_factor));
        QV_TRY(get_num(c, sc, where, "high_freq_factor", 1, 0, 0, 1e6, &cfg->rope_high_freq_factor));
        QV_TRY(get_int(c, sc, where, "original_max_position_embeddings", 1, 0, 1, QV_CFG_MAX_DIM,
                       &cfg->rope_original_max_pos));
        /* the llama3 wavelength bands divide by (high - low) */
        if (cfg->rope_high_freq_factor <= cfg->rope_low_freq_factor)
            return qv_fail(QV_ERR_INPUT, "%s: llama3 rope scaling needs high_freq_factor (%g) > low_freq_factor (%g)",
                           c->path, cfg->rope_high_freq_factor, cfg->rope_low_freq_factor);
        return QV_OK;
    }
    return qv_fail(QV_ERR_UNSUPPORTED, "%s: rope scaling type \"%s\" is not supported (default, linear, llama3)",
                   c->path, ty);
}

static qv_status parse_dtype(const cfgctx *c, qv_config *cfg)
{
    /* "dtype" (transformers >= 5) wins over the older "torch_dtype" */
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(c->root, "dtype");
    const char *key = "dtype";
    if (!j || cJSON_IsNull(j)) {
        j = cJSON_GetObjectItemCaseSensitive(c->root, "torch_dtype");
        key = "torch_dtype";
    }
    cfg->torch_dtype = QV_F32; /* transformers' default when unspecified */
    if (!j || cJSON_IsNull(j)) return QV_OK;
    if (!cJSON_IsString(j))
        return qv_fail(QV_ERR_INPUT, "%s: \"%s\" must be a string, got %s", c->path, key, qv_json_type_name(j));
    const char *s = j->valuestring;
    if (strcmp(s, "float16") == 0 || strcmp(s, "torch.float16") == 0) cfg->torch_dtype = QV_F16;
    else if (strcmp(s, "bfloat16") == 0 || strcmp(s, "torch.bfloat16") == 0) cfg->torch_dtype = QV_BF16;
    else if (strcmp(s, "float32") == 0 || strcmp(s, "torch.float32") == 0) cfg->torch_dtype = QV_F32;
    else
        return qv_fail(QV_ERR_UNSUPPORTED, "%s: \"%s\" = \"%s\" is not supported (float16, bfloat16, float32)",
                       c->path, key, s);
    return QV_OK;
}

static qv_status parse_root(const cfgctx *c, qv_config *cfg)
{
    const cJSON *r = c->root;
    memset(cfg, 0, sizeof *cfg);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(r, "model_type");
    if (mt && !cJSON_IsString(mt))
        return qv_fail(QV_ERR_INPUT, "%s: \"model_type\" must be a string, got %s", c->path, qv_json_type_name(mt));
    const char *type = mt ? mt->valuestring : "llama";
    if (strcmp(type, "llama") != 0 && strcmp(type, "mistral") != 0 && strcmp(type, "qwen2") != 0)
        return qv_fail(QV_ERR_UNSUPPORTED, "%s: model_type \"%.64s\" is not supported (llama, mistral, qwen2)",
                       c->path, type);
    snprintf(cfg->model_type, sizeof cfg->model_type, "%s", type);
    QV_TRY(get_int(c, r, "", "hidden_size", 1, 0, 1, QV_CFG_MAX_DIM, &cfg->hidden_size));
    QV_TRY(get_int(c, r, "", "intermediate_size", 1, 0, 1, QV_CFG_MAX_DIM, &cfg->intermediate_size));
    QV_TRY(get_int(c, r, "", "num_hidden_layers", 1, 0, 1, 65536, &cfg->num_layers));
    QV_TRY(get_int(c, r, "", "num_attention_heads", 1, 0, 1, 65536, &cfg->num_heads));
    QV_TRY(get_int(c, r, "", "num_key_value_heads", 0, cfg->num_heads, 1, 65536, &cfg->num_kv_heads));
    QV_TRY(get_int(c, r, "", "vocab_size", 1, 0, 1, QV_CFG_MAX_DIM, &cfg->vocab_size));
    QV_TRY(get_int(c, r, "", "max_position_embeddings", 0, 2048, 1, QV_CFG_MAX_DIM, &cfg->max_position_embeddings));
    if (cfg->num_heads % cfg->num_kv_heads != 0)
        return qv_fail(QV_ERR_INPUT, "%s: num_attention_heads (%d) is not a multiple of num_key_value_heads (%d)",
                       c->path, cfg->num_heads, cfg->num_kv_heads);
    const cJSON *hd = cJSON_GetObjectItemCaseSensitive(r, "head_dim");
    if (!hd || cJSON_IsNull(hd)) {
        if (cfg->hidden_size % cfg->num_heads != 0)
            return qv_fail(QV_ERR_INPUT, "%s: hidden_size (%d) is not a multiple of num_attention_heads (%d) "
                           "and no head_dim is given", c->path, cfg->hidden_size, cfg->num_heads);
        cfg->head_dim = cfg->hidden_size / cfg->num_heads;
    } else
        QV_TRY(get_int(c, r, "", "head_dim", 1, 0, 1, 65536, &cfg->head_dim));
    if (cfg->head_dim % 2 != 0)
        return qv_fail(QV_ERR_INPUT, "%s: head_dim (%d) must be even (RoPE rotates pairs)", c->path, cfg->head_dim);
    if ((long long)cfg->head_dim * cfg->num_heads > QV_CFG_MAX_DIM)
        return qv_fail(QV_ERR_INPUT, "%s: head_dim (%d) x num_attention_heads (%d) exceeds %d", c->path,
                       cfg->head_dim, cfg->num_heads, QV_CFG_MAX_DIM);
    double eps;
    QV_TRY(get_num(c, r, "", "rms_norm_eps", 0, 1e-6, 0, 0.1, &eps));
    cfg->rms_norm_eps = (float)eps;
    QV_TRY(parse_rope(c, cfg));
    QV_TRY(get_bool(c, "tie_word_embeddings", 0, &cfg->tie_word_embeddings));
    QV_TRY(get_bool(c, "attention_bias", 0, &cfg->attention_bias));
    QV_TRY(get_bool(c, "mlp_bias", 0, &cfg->mlp_bias));
    /* Llama's attention_bias covers q, k, v and o; Qwen2 always has q/k/v biases and no o bias */
    cfg->o_bias = cfg->attention_bias;
    if (strcmp(type, "qwen2") == 0) {
        cfg->attention_bias = 1;
        cfg->o_bias = 0;
    }
    QV_TRY(parse_dtype(c, cfg));
    QV_TRY(get_token_id(c, "bos_token_id", cfg->vocab_size, &cfg->bos_token_id));
    QV_TRY(get_token_id(c, "eos_token_id", cfg->vocab_size, &cfg->eos_token_id));
    return QV_OK;
}

qv_status qv_config_parse(const char *json, size_t len, const char *path, qv_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    if (!path) path = "config.json";
    if (len == 0) return qv_fail(QV_ERR_INPUT, "%s: empty file, expected a JSON object", path);
    long bad = qv_utf8_first_invalid((const unsigned char *)json, len);
    if (bad >= 0) return qv_fail(QV_ERR_INPUT, "%s: not valid UTF-8 (byte %ld)", path, bad);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        int line, col;
        size_t off = end && end >= json && end <= json + len ? (size_t)(end - json) : 0;
        qv_json_line_col(json, off, &line, &col);
        return qv_fail(QV_ERR_INPUT, "%s: not valid JSON (error near line %d, column %d)", path, line, col);
    }
    for (const char *p = end; p && p < json + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\0') {
            cJSON_Delete(root);
            return qv_fail(QV_ERR_INPUT, "%s: trailing characters after the JSON object", path);
        }
    qv_status st;
    if (!cJSON_IsObject(root))
        st = qv_fail(QV_ERR_INPUT, "%s: must be a JSON object, got %s", path, qv_json_type_name(root));
    else {
        cfgctx c = {path, root};
        st = parse_root(&c, cfg);
    }
    cJSON_Delete(root);
    return st;
}

qv_status qv_config_load(const char *path, qv_config *cfg)
{
    char *text = NULL;
    size_t len = 0;
    QV_TRY(qv_read_file(path, (size_t)16 << 20, &text, &len));
    qv_status st = qv_config_parse(text, len, path, cfg);
    free(text);
    return st;
}
