/* The golden store: entry listing, checks of both kinds and the regeneration of qvet's own pins
 * (include/qvet/golden.h, docs/gate.md "Golden store"). */
#include <cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "evals/kernels/kcase_internal.h"
#include "golden/lib/golden_internal.h"
#include "qvet/fileio.h"
#include "qvet/golden.h"
#include "qvet/qmodel.h"
#include "qvet/synth.h"
#include "qvet/tokenizer.h"

#define GOLDEN_TEXT "The gate exits with zero when every case passes."

void qv_golden_say(qv_golden_log_fn log, void *user, const char *fmt, ...)
{
    if (!log) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    log(user, line);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

qv_status qv_golden_list(const char *dir, char ***names, int *n)
{
    DIR *d = opendir(dir);
    if (!d) return qv_fail(QV_ERR_IO, "%s: cannot open the golden folder", dir);
    char **v = NULL;
    int k = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char *sub = qv_path_join(dir, de->d_name), *man = sub ? qv_path_join(sub, "manifest.json") : NULL;
        int ok = man && qv_path_exists(man);
        free(sub);
        free(man);
        if (!ok) continue;
        if (k == cap) {
            cap = cap ? 2 * cap : 16;
            char **nv = realloc(v, sizeof *v * (size_t)cap);
            if (!nv) break;
            v = nv;
        }
        v[k++] = strdup(de->d_name);
    }
    closedir(d);
    if (k) qsort(v, (size_t)k, sizeof *v, cmp_str);
    *names = v;
    *n = k;
    return QV_OK;
}

/* ---- the producers of qvet's pins: each fills `out` with its named values ---- */

static void add_floats(cJSON *o, const char *key, const float *v, int n)
{
    cJSON *a = cJSON_AddArrayToObject(o, key);
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
}

static qv_status produce_synth(cJSON *out)
{
    qv_synth_files sf;
    QV_TRY(qv_synth_build(QV_SYNTH_TINY, 0, &sf));
    char hex[65];
    qv_sha256_hex(sf.safetensors, sf.safetensors_size, hex);
    cJSON_AddStringToObject(out, "model.safetensors_sha256", hex);
    qv_sha256_hex(sf.config_json, strlen(sf.config_json), hex);
    cJSON_AddStringToObject(out, "config.json_sha256", hex);
    qv_sha256_hex(sf.tokenizer_json, strlen(sf.tokenizer_json), hex);
    cJSON_AddStringToObject(out, "tokenizer.json_sha256", hex);
    qv_synth_files_free(&sf);
    return QV_OK;
}

static qv_status produce_rtn(cJSON *out)
{
    qv_model *m = NULL;
    qv_qmodel *qm = NULL;
    QV_TRY(qv_synth_open(QV_SYNTH_TINY, 0, &m));
    qv_status st = qv_qmodel_quantize_rtn(m, QV_QFMT_W4A8_G128, 4, &qm);
    char path[256];
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/qvet-golden-rtn-%ld.safetensors", tmp && *tmp ? tmp : "/tmp", (long)getpid());
    if (st == QV_OK) st = qv_qmodel_write(qm, path);
    char *bytes = NULL;
    size_t len = 0;
    if (st == QV_OK) st = qv_read_file(path, (size_t)1 << 30, &bytes, &len);
    unlink(path);
    if (st == QV_OK) {
        char hex[65];
        qv_sha256_hex(bytes, len, hex);
        cJSON_AddStringToObject(out, "checkpoint_sha256", hex);
        qv_qlinear *l = qv_qmodel_linear(qm, 0, 0);
        float s0[8];
        for (int i = 0; i < 8; i++) s0[i] = qv_fp16_to_fp32(l->s0[i]);
        add_floats(out, "layer0.q_proj.s0[0:8]", s0, 8);
        float qw[8];
        for (int i = 0; i < 8; i++) qw[i] = (float)l->qweight[i];
        add_floats(out, "layer0.q_proj.qweight[0:8] (bytes)", qw, 8);
    }
    free(bytes);
    qv_qmodel_close(qm);
    qv_model_close(m);
    return st;
}

static const qv_kcase pin_cases[] = {
    {QV_KK_W8A8, QV_KV_RANDOM, 3, 64, 256}, {QV_KK_W4A8_CHN, QV_KV_RANDOM, 5, 96, 160},
    {QV_KK_W4A8_G128, QV_KV_RANDOM, 17, 64, 384}, {QV_KK_W4A8_G128, QV_KV_BIGSCALE, 1, 64, 256}};

static qv_status produce_kernels(cJSON *out)
{
    for (size_t i = 0; i < sizeof pin_cases / sizeof *pin_cases; i++) {
        qv_kdata d;
        QV_TRY(qv_kdata_make(&pin_cases[i], 20240601 + i, &d));
        char name[160], key[200], hex[65];
        qv_kcase_name(&pin_cases[i], name, sizeof name);
        long MN = (long)d.M * d.N;
        snprintf(key, sizeof key, "%s: acc sha256", name);
        qv_sha256_hex(d.acc, (size_t)MN * sizeof(int32_t), hex);
        cJSON_AddStringToObject(out, key, hex);
        snprintf(key, sizeof key, "%s: out sha256", name);
        qv_sha256_hex(d.y, (size_t)MN * sizeof(qv_fp16), hex);
        cJSON_AddStringToObject(out, key, hex);
        float y[8];
        for (int k = 0; k < 8; k++) y[k] = qv_fp16_to_fp32(d.y[k]);
        snprintf(key, sizeof key, "%s: out[0:8]", name);
        add_floats(out, key, y, 8);
        qv_kdata_free(&d);
    }
    return QV_OK;
}

static qv_status produce_tok(cJSON *out)
{
    qv_model *m = NULL;
    QV_TRY(qv_synth_open(QV_SYNTH_TINY, 0, &m));
    int32_t *ids = NULL;
    size_t n = 0;
    qv_status st = m->tok ? qv_tok_encode(m->tok, GOLDEN_TEXT, strlen(GOLDEN_TEXT), 1, &ids, &n)
                          : qv_fail(QV_ERR_INTERNAL, "synthetic model without a tokenizer");
    if (st == QV_OK) {
        cJSON_AddStringToObject(out, "text", GOLDEN_TEXT);
        cJSON *a = cJSON_AddArrayToObject(out, "ids");
        for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
    }
    free(ids);
    qv_model_close(m);
    return st;
}

static qv_status produce(const char *kind, const char *where, cJSON **out)
{
    *out = cJSON_CreateObject();
    qv_status st;
    if (strcmp(kind, "synth-bytes") == 0) st = produce_synth(*out);
    else if (strcmp(kind, "rtn-checkpoint") == 0) st = produce_rtn(*out);
    else if (strcmp(kind, "kernel-outputs") == 0) st = produce_kernels(*out);
    else if (strcmp(kind, "tokenizer-ids") == 0) st = produce_tok(*out);
    else st = qv_fail(QV_ERR_INPUT, "%s: unknown kind '%s' (synth-bytes, rtn-checkpoint, kernel-outputs, tokenizer-ids)", where, kind);
    if (st != QV_OK) {
        cJSON_Delete(*out);
        *out = NULL;
    }
    return st;
}

static qv_status check_independent(const char *gdir, const qv_golden_manifest *man, const char *shared_dir,
                                   qv_golden_log_fn log, void *user, qv_golden_result *r)
{
    const char *src = man->model, *want = man->model_sha256;
    char hex[65] = "";
    qv_status st = QV_OK;
    qv_model *m = NULL;
    if (strcmp(src, "synthetic:tiny:0") == 0) {
        qv_synth_files sf;
        st = qv_synth_build(QV_SYNTH_TINY, 0, &sf);
        if (st == QV_OK) qv_sha256_hex(sf.safetensors, sf.safetensors_size, hex), qv_synth_files_free(&sf);
        if (st == QV_OK) st = qv_synth_open(QV_SYNTH_TINY, 0, &m);
    } else if (strncmp(src, "shared:", 7) == 0) {
        char *mdir = shared_dir ? qv_path_join(shared_dir, src + 7) : NULL;
        if (!mdir || !qv_is_dir(mdir)) {
            r->skipped = 1;
            snprintf(r->detail, sizeof r->detail, "SKIP: shared model %s absent", src + 7);
            free(mdir);
            return QV_OK;
        }
        char *stp = qv_path_join(mdir, "model.safetensors");
        char *bytes = NULL;
        size_t len = 0;
        st = stp ? qv_read_file(stp, (size_t)1 << 31, &bytes, &len) : QV_ERR_NOMEM;
        if (st == QV_OK) qv_sha256_hex(bytes, len, hex);
        free(bytes);
        free(stp);
        if (st == QV_OK) st = qv_model_open(mdir, &m);
        free(mdir);
    } else {
        st = qv_fail(QV_ERR_INPUT, "%s: qvet_check.model '%s' is not synthetic:tiny:0 or shared:<path>", man->path, src);
    }
    if (st == QV_OK && strcmp(hex, want) != 0) {
        r->pass = 0;
        snprintf(r->detail, sizeof r->detail, "model bytes sha256 %.16s..., the golden was made from %.16s...", hex, want);
    } else if (st == QV_OK) {
        st = qv_golden_check_fp32_manifest(gdir, man, m, log, user, &r->worst);
        r->pass = st == QV_OK;
        if (st == QV_OK)
            snprintf(r->detail, sizeof r->detail, "ref-fp32 vs transformers: worst logits error %.2e of max|logit|, within bounds",
                     r->worst);
        else if (st == QV_ERR_CHECK)
            snprintf(r->detail, sizeof r->detail, "%s", qv_last_error()), st = QV_OK;
    }
    qv_model_close(m);
    return st;
}

qv_status qv_golden_check_entry(const char *dir, const char *name, const char *shared_dir, qv_golden_log_fn log,
                                void *user, qv_golden_result *r)
{
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    char *gdir = qv_path_join(dir, name);
    qv_golden_manifest *man = NULL;
    qv_status st = gdir ? qv_golden_manifest_load(gdir, &man) : qv_fail(QV_ERR_NOMEM, "out of memory");
    if (st != QV_OK) {
        free(gdir);
        return st;
    }
    r->independent = man->independent;
    if (r->independent) {
        st = check_independent(gdir, man, shared_dir, log, user, r);
    } else {
        const cJSON *exp = cJSON_GetObjectItemCaseSensitive(man->json, "expected");
        cJSON *got = NULL;
        if (!man->has_expected)
            st = qv_fail(QV_ERR_INPUT, "%s: needs \"independent\": true or a \"kind\" and \"expected\"", man->path);
        else
            st = produce(man->kind, name, &got);
        if (st == QV_OK) {
            int nd = qv_golden_diff(exp, got, log, user, r->detail, sizeof r->detail);
            r->pass = nd == 0;
            r->worst = nd;
            if (nd == 0) snprintf(r->detail, sizeof r->detail, "%d values identical to the pin", cJSON_GetArraySize(exp));
        } else if (st == QV_ERR_CHECK) { /* the producer itself failed a check (e.g. INT8 overflow) */
            r->pass = 0;
            snprintf(r->detail, sizeof r->detail, "producer failed: %s", qv_last_error());
            st = QV_OK;
        }
        cJSON_Delete(got);
    }
    qv_golden_manifest_free(man);
    free(gdir);
    return st;
}

qv_status qv_golden_update_entry(const char *dir, const char *name, qv_golden_log_fn log, void *user, int *changed)
{
    *changed = 0;
    char *gdir = qv_path_join(dir, name);
    qv_golden_manifest *gm = NULL;
    qv_status st = gdir ? qv_golden_manifest_load(gdir, &gm) : qv_fail(QV_ERR_NOMEM, "out of memory");
    free(gdir);
    if (st != QV_OK) return st;
    cJSON *man = gm->json;
    const char *path = gm->path;
    if (gm->independent)
        st = qv_fail(QV_ERR_USAGE, "%s: independent golden (made by another implementation): qvet never regenerates it", path);
    cJSON *got = NULL;
    if (st == QV_OK) st = produce(gm->kind, name, &got);
    if (st == QV_OK) {
        const cJSON *exp = cJSON_GetObjectItemCaseSensitive(man, "expected");
        cJSON *empty = cJSON_CreateObject();
        qv_golden_say(log, user, "%s: diff against the stored values:", name);
        *changed = qv_golden_diff(exp ? exp : empty, got, log, user, NULL, 0);
        cJSON_Delete(empty);
        if (*changed) {
            char date[32];
            time_t now = time(NULL);
            strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
            cJSON_ReplaceItemInObjectCaseSensitive(man, "expected", got);
            got = NULL;
            cJSON_DeleteItemFromObjectCaseSensitive(man, "date");
            cJSON_AddStringToObject(man, "date", date);
            cJSON_DeleteItemFromObjectCaseSensitive(man, "qvet_version");
            cJSON_AddStringToObject(man, "qvet_version", QV_VERSION_STRING);
            char *txt = cJSON_Print(man);
            st = txt ? qv_write_file_atomic(path, txt, strlen(txt)) : QV_ERR_NOMEM;
            free(txt);
            if (st == QV_OK) qv_golden_say(log, user, "%s: %d value(s) changed; %s rewritten", name, *changed, path);
        } else {
            qv_golden_say(log, user, "%s: unchanged", name);
        }
    }
    cJSON_Delete(got);
    qv_golden_manifest_free(gm);
    return st;
}
