/* Parser of the gate's thresholds file (include/qvet/gate_config.h). Kept out of the CLI so the
 * libFuzzer harness fuzz/harness/fz_gate_config.c can call it. */
#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qvet/fileio.h"
#include "qvet/gate_baseline.h"
#include "qvet/gate_config.h"

#define GATE_CONFIG_MAX_BYTES (64u << 20)

static qv_status threshold(const char *path, const cJSON *t, const char *key, double *v)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(t, key);
    const cJSON *val = cJSON_GetObjectItemCaseSensitive(e, "value");
    if (!cJSON_IsNumber(val) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "why")))
        return qv_fail(QV_ERR_INPUT, "%s: thresholds.%s needs a numeric \"value\" and a \"why\" string", path, key);
    *v = val->valuedouble;
    return QV_OK;
}

qv_status qv_gate_config_parse(const char *text, size_t len, const char *path, qv_gate_config *out)
{
    memset(out, 0, sizeof *out);
    cJSON *cfg = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return qv_fail(QV_ERR_INPUT, "%s: not a JSON object", path);
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(cfg, "thresholds");
    double tokens = 0;
    qv_status st = QV_OK;
    struct {
        const char *key;
        double *v;
    } keys[] = {{"model_tokens", &tokens},
                {"model_kld_max", &out->model_kld_max},
                {"model_top1_min", &out->model_top1_min},
                {"smoothattn_logits_rel_max", &out->smoothattn_logits_rel_max},
                {"model_gpu_kld_max", &out->model_gpu_kld_max}};
    for (size_t i = 0; st == QV_OK && i < sizeof keys / sizeof *keys; i++) st = threshold(path, t, keys[i].key, keys[i].v);
    /* every threshold a --baseline rule reads, with its why */
    int nspec = 0;
    const qv_bl_spec *sp = qv_bl_specs(&nspec);
    for (int i = 0; st == QV_OK && i < nspec; i++) {
        double unused;
        st = threshold(path, t, sp[i].limit_key, &unused);
        if (st == QV_OK && sp[i].floor_key) st = threshold(path, t, sp[i].floor_key, &unused);
    }
    /* range checks before the conversions: a double outside the integer type is undefined
     * behaviour (found by fz_gate_config: model_tokens 2e77, seed -1) */
    if (st == QV_OK && !(tokens >= 2 && tokens <= 4096 && tokens == floor(tokens)))
        st = qv_fail(QV_ERR_INPUT, "%s: thresholds.model_tokens.value must be an integer in [2, 4096], got %g", path, tokens);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(cfg, "seed"), *v = cJSON_GetObjectItemCaseSensitive(cfg, "version");
    if (st == QV_OK && s && !(cJSON_IsNumber(s) && s->valuedouble >= 0 && s->valuedouble <= 9007199254740992.0 &&
                              s->valuedouble == floor(s->valuedouble)))
        st = qv_fail(QV_ERR_INPUT, "%s: \"seed\" must be an integer in [0, 2^53]", path);
    if (st == QV_OK) {
        out->model_tokens = (int)tokens;
        out->seed = s ? (unsigned long long)s->valuedouble : 1;
        out->version = cJSON_IsNumber(v) ? v->valuedouble : 0;
        out->doc = cfg;
    } else {
        cJSON_Delete(cfg);
    }
    return st;
}

void qv_gate_config_free(qv_gate_config *c)
{
    cJSON_Delete(c->doc);
    c->doc = NULL;
}

qv_status qv_gate_config_load(const char *path, qv_gate_config *out)
{
    char *text = NULL;
    size_t len = 0;
    QV_TRY(qv_read_file(path, GATE_CONFIG_MAX_BYTES, &text, &len));
    qv_status st = qv_gate_config_parse(text, len, path, out);
    free(text);
    return st;
}
