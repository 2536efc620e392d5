/* Parser of golden/<name>/manifest.json (include/qvet/golden.h): every field the store and the
 * FP32 check read is validated here, once, so a harness (fuzz/harness/fz_golden_manifest.c) can
 * reach all of it without running a model. */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qvet/fileio.h"
#include "qvet/golden.h"

#define MANIFEST_MAX_BYTES (1 << 20)

/* A JSON number that is an integer in [lo, hi] (valueint would silently truncate 1.5 or 1e300). */
static int int_in(const cJSON *v, int lo, int hi, int *out)
{
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi) || v->valuedouble != floor(v->valuedouble))
        return 0;
    *out = (int)v->valuedouble;
    return 1;
}

static int copy_str(const cJSON *v, char *dst, size_t cap)
{
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap) return 0;
    memcpy(dst, v->valuestring, strlen(v->valuestring) + 1);
    return 1;
}

static qv_status parse_independent(const cJSON *r, qv_golden_manifest *m)
{
    const char *path = m->path;
    if (!copy_str(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "qvet_check"), "model"), m->model,
                  sizeof m->model))
        return qv_fail(QV_ERR_INPUT, "%s: independent entry without qvet_check.model", path);
    if (!copy_str(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "model"), "model.safetensors_sha256"),
                  m->model_sha256, sizeof m->model_sha256) ||
        strlen(m->model_sha256) != 64)
        return qv_fail(QV_ERR_INPUT, "%s: no model.safetensors_sha256", path);
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(r, "files");
    int n = cJSON_IsArray(files) ? cJSON_GetArraySize(files) : 0;
    if (n < 1) return qv_fail(QV_ERR_INPUT, "%s: no files", path);
    if (!(m->seq = qv_calloc((size_t)n, sizeof *m->seq))) return QV_ERR_NOMEM;
    int hidden = 0;
    for (const cJSON *it = files->child; it; it = it->next, m->n_seq++) {
        qv_golden_seq *s = &m->seq[m->n_seq];
        if (!copy_str(cJSON_GetObjectItemCaseSensitive(it, "file"), s->file, sizeof s->file) || strchr(s->file, '/') ||
            !s->file[0] || !int_in(cJSON_GetObjectItemCaseSensitive(it, "length"), 1, QV_GOLDEN_MAX_LEN, &s->length) ||
            !int_in(cJSON_GetObjectItemCaseSensitive(it, "logits_rows"), 1, s->length, &s->logits_rows))
            return qv_fail(QV_ERR_INPUT,
                           "%s: \"files\" entry #%d needs a \"file\" name without '/', an integer \"length\" in [1, %d] "
                           "and an integer \"logits_rows\" in [1, length]",
                           path, m->n_seq, QV_GOLDEN_MAX_LEN);
        s->hidden_states = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "hidden_states"));
        hidden |= s->hidden_states;
    }
    if (!hidden) return qv_fail(QV_ERR_INPUT, "%s: no sequence with per-layer states", path);
    return QV_OK;
}

qv_status qv_golden_manifest_parse(const char *text, size_t len, const char *path, qv_golden_manifest **out)
{
    *out = NULL;
    qv_golden_manifest *m = qv_calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        free(m);
        return qv_fail(QV_ERR_NOMEM, "out of memory");
    }
    cJSON *r = cJSON_ParseWithLength(text, len);
    m->json = r;
    qv_status st = QV_OK;
    if (!cJSON_IsObject(r)) {
        st = qv_fail(QV_ERR_INPUT, "%s: not a JSON object", path);
    } else if ((m->independent = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "independent")))) {
        st = parse_independent(r, m);
    } else {
        const cJSON *exp = cJSON_GetObjectItemCaseSensitive(r, "expected");
        if (!copy_str(cJSON_GetObjectItemCaseSensitive(r, "kind"), m->kind, sizeof m->kind) || (exp && !cJSON_IsObject(exp)))
            st = qv_fail(QV_ERR_INPUT, "%s: needs \"independent\": true or a \"kind\" and an \"expected\" object", path);
        m->has_expected = exp != NULL;
    }
    if (st != QV_OK) qv_golden_manifest_free(m);
    else *out = m;
    return st;
}

qv_status qv_golden_manifest_load(const char *gdir, qv_golden_manifest **out)
{
    *out = NULL;
    char *path = qv_path_join(gdir, "manifest.json");
    if (!path) return qv_fail(QV_ERR_NOMEM, "out of memory");
    char *text = NULL;
    size_t len = 0;
    qv_status st = qv_read_file(path, MANIFEST_MAX_BYTES, &text, &len);
    if (st == QV_OK) st = qv_golden_manifest_parse(text, len, path, out);
    free(text);
    free(path);
    return st;
}

void qv_golden_manifest_free(qv_golden_manifest *m)
{
    if (!m) return;
    cJSON_Delete(m->json);
    free(m->seq);
    free(m->path);
    free(m);
}
