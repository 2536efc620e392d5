/* libFuzzer: golden/<name>/manifest.json (qv_golden_manifest_parse, `qvet golden check|update`),
 * then, for a pin, the key-by-key comparison of its stored values with themselves (the code path
 * of `qvet golden check`, without running the producers). */
#include "fz_util.h"
#include "golden/lib/golden_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qv_golden_manifest *m;
    if (qv_golden_manifest_parse((const char *)data, size, "<fuzz>/manifest.json", &m) != QV_OK) return 0;
    if (m->independent) {
        /* what the FP32 check relies on without re-checking */
        if (m->n_seq < 1 || strlen(m->model_sha256) != 64) __builtin_trap();
        for (int i = 0; i < m->n_seq; i++)
            if (m->seq[i].length < 1 || m->seq[i].length > QV_GOLDEN_MAX_LEN || m->seq[i].logits_rows < 1 ||
                m->seq[i].logits_rows > m->seq[i].length || strchr(m->seq[i].file, '/'))
                __builtin_trap();
    } else if (m->has_expected) {
        const cJSON *exp = cJSON_GetObjectItemCaseSensitive(m->json, "expected");
        char first[256];
        qv_golden_diff(exp, exp, NULL, NULL, first, sizeof first);
    }
    qv_golden_manifest_free(m);
    return 0;
}
