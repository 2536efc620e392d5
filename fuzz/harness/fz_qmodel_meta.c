/* libFuzzer: the "qvet" metadata JSON of a quantized checkpoint (qv_qmodel_meta_parse), directly:
 * inside a checkpoint it is a string in the safetensors header, which byte-level mutations of a
 * whole file (fz_qmodel) rarely reach intact. An accepted metadata must survive the writer's
 * qv_qmodel_meta_json and a second parse unchanged. */
#include "fz_util.h"
#include "qvet/qmodel.h"

static int same(const qv_qmodel_meta *a, const qv_qmodel_meta *b)
{
    return a->format_version == b->format_version && a->fmt == b->fmt && a->group_size == b->group_size &&
           a->kv_bits == b->kv_bits && !strcmp(a->transforms_json, b->transforms_json) && !strcmp(a->calib_hash, b->calib_hash) &&
           !strcmp(a->calib_hash_algo, b->calib_hash_algo) && a->calib_samples == b->calib_samples &&
           a->calib_seqlen == b->calib_seqlen && !strcmp(a->qvet_version, b->qvet_version) && !strcmp(a->method, b->method);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    qv_qmodel_meta m, m2;
    if (qv_qmodel_meta_parse(text, "<fuzz>.qckpt", &m) == QV_OK) {
        char *json = qv_qmodel_meta_json(&m);
        if (!json || qv_qmodel_meta_parse(json, "<fuzz>.qckpt (rewritten)", &m2) != QV_OK) __builtin_trap();
        if (!same(&m, &m2)) __builtin_trap();
        free(m2.transforms_json);
        free(json);
    }
    free(m.transforms_json);
    free(text);
    return 0;
}
