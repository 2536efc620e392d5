/* qvet logits [--model DIR] --engine E (--ids 1,2,3 | --ids-file F.json) [--last N] --out F.json
 *   [--threads N]
 * One prefill of the ids on a fresh sequence; writes {"ids":[...],"logits":[[...],...]} with the
 * logits of the last N positions (default all), atomically. Floats are written with 9 significant
 * digits, enough to round-trip FP32 exactly, so another tool can compare bit for bit.
 * Exit 0 ok; 2 usage or input error (bad flag, ids empty / out of range / longer than the model's
 * max_position_embeddings, unreadable ids file); 1 a NaN/Inf produced by the forward (the
 * engine's message names layer, tensor and position); 3 internal. */
#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "engine_opts.h"
#include "qvet/engine.h"
#include "qvet/fileio.h"

/* Strict decimal integer in [lo, hi]; 0 on success. */
static int parse_long(const char *s, long lo, long hi, long *v)
{
    char *end = NULL;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (errno || end == s || *end || x < lo || x > hi) return -1;
    *v = x;
    return 0;
}

/* "1,2,3" -> ids (spaces around commas allowed). */
static qv_status parse_id_list(const char *s, int32_t **ids, int64_t *n)
{
    *ids = NULL;
    *n = 0;
    size_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    int32_t *v = qv_malloc(cap * sizeof *v);
    if (!v) return QV_ERR_NOMEM;
    int64_t k = 0;
    const char *p = s;
    while (*p) {
        while (*p == ' ') p++;
        char *end = NULL;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (end == p || errno || x < INT32_MIN || x > INT32_MAX) {
            free(v);
            return qv_fail(QV_ERR_USAGE, "--ids: item %lld ('%.20s') is not an integer", (long long)k, p);
        }
        v[k++] = (int32_t)x;
        p = end;
        while (*p == ' ') p++;
        if (*p == ',') {
            p++;
            if (!*p) break; /* a trailing comma ends the list */
        } else if (*p) {
            free(v);
            return qv_fail(QV_ERR_USAGE, "--ids: unexpected '%c' after item %lld (want 1,2,3)", *p, (long long)k - 1);
        }
    }
    *ids = v;
    *n = k;
    return QV_OK;
}

/* A JSON array of integers, or an object whose "ids" is one (so a logits file feeds back in). */
static qv_status read_ids_file(const char *path, int32_t **ids, int64_t *n)
{
    *ids = NULL;
    *n = 0;
    char *text = NULL;
    size_t len = 0;
    QV_TRY(qv_read_file(path, (size_t)1 << 30, &text, &len));
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *arr = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "ids") : j;
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(j);
        return qv_fail(QV_ERR_INPUT, "%s: expected a JSON array of token ids or an object with \"ids\"", path);
    }
    int64_t cnt = cJSON_GetArraySize(arr), i = 0;
    int32_t *v = qv_malloc((size_t)(cnt ? cnt : 1) * sizeof *v);
    if (!v) {
        cJSON_Delete(j);
        return QV_ERR_NOMEM;
    }
    for (const cJSON *c = arr->child; c; c = c->next, i++) {
        double d = cJSON_IsNumber(c) ? c->valuedouble : 0.5;
        if (d != (double)(long long)d || d < -2147483648.0 || d > 2147483647.0) {
            free(v);
            cJSON_Delete(j);
            return qv_fail(QV_ERR_INPUT, "%s: item %lld of the id array is not an integer", path, (long long)i);
        }
        v[i] = (int32_t)d;
    }
    cJSON_Delete(j);
    *ids = v;
    *n = cnt;
    return QV_OK;
}

static qv_status write_logits(const char *path, const int32_t *ids, int64_t n, const float *logits,
                              int64_t rows, int vocab)
{
    qv_atomic_file af;
    QV_TRY(qv_atomic_open(path, &af));
    FILE *f = af.fp;
    fputs("{\"ids\":[", f);
    for (int64_t i = 0; i < n; i++) fprintf(f, i ? ",%d" : "%d", ids[i]);
    fputs("],\"logits\":[", f);
    for (int64_t r = 0; r < rows; r++) {
        fputs(r ? ",\n[" : "\n[", f);
        const float *row = logits + r * vocab;
        for (int v = 0; v < vocab; v++) fprintf(f, v ? ",%.9g" : "%.9g", (double)row[v]);
        fputc(']', f);
    }
    fputs("]}\n", f);
    if (ferror(f)) {
        qv_atomic_abort(&af);
        return qv_fail(QV_ERR_IO, "%s: write error", path);
    }
    return qv_atomic_commit(&af);
}

int qv_cmd_logits(int argc, char **argv)
{
    const char *model_dir = NULL, *engine = NULL, *ids_arg = NULL, *ids_file = NULL, *out = NULL;
    long last = 0, threads = 0;
    qv_engine_opts eopts;
    qv_engine_opts_init(&eopts);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int eo = qv_cli_engine_opt("logits", argc, argv, &i, &eopts);
        if (eo < 0) return QV_EXIT_USAGE;
        if (eo > 0) continue;
        const char **dst = !strcmp(a, "--model") ? &model_dir : !strcmp(a, "--engine") ? &engine
                         : !strcmp(a, "--ids") ? &ids_arg : !strcmp(a, "--ids-file") ? &ids_file
                         : !strcmp(a, "--out") ? &out : NULL;
        int is_num = !strcmp(a, "--last") || !strcmp(a, "--threads");
        if (!dst && !is_num) return qv_cli_usage_error("logits", "unknown option '%s'", a);
        if (i + 1 >= argc) return qv_cli_usage_error("logits", "%s needs a value", a);
        const char *val = argv[++i];
        if (dst) {
            if (*dst) return qv_cli_usage_error("logits", "%s given twice", a);
            *dst = val;
        } else if (parse_long(val, a[2] == 'l' ? 1 : 0, 1 << 24, a[2] == 'l' ? &last : &threads)) {
            return qv_cli_usage_error("logits", "%s '%s': want an integer %s", a, val,
                                      a[2] == 'l' ? ">= 1" : ">= 0 (0: the libraries' default)");
        }
    }
    if (!engine) return qv_cli_usage_error("logits", "--engine E is required (ref-fp32|ref-qoq|gpu-fp16|gpu-qoq)");
    if (qv_cli_engine_dtype_check("logits", engine, &eopts)) return QV_EXIT_USAGE;
    if (!out) return qv_cli_usage_error("logits", "--out F.json is required");
    if (!ids_arg == !ids_file) return qv_cli_usage_error("logits", "give exactly one of --ids 1,2,3 and --ids-file F.json");

    int32_t *ids = NULL;
    int64_t n = 0;
    qv_status st = ids_arg ? parse_id_list(ids_arg, &ids, &n) : read_ids_file(ids_file, &ids, &n);
    if (st != QV_OK) return qv_cli_report(st);
    const char *src = ids_arg ? "--ids" : ids_file;

    qv_model *m = NULL;
    qv_engine *e = NULL;
    float *logits = NULL;
    st = model_dir ? qv_model_open(model_dir, &m) : qv_cli_default_model(&m);
    const qv_config *c = st == QV_OK ? &m->cfg : NULL;
    /* Checked here as well as in the engine so the message names where the ids came from. */
    if (st == QV_OK && n == 0) st = qv_fail(QV_ERR_INPUT, "%s: no token ids (empty input)", src);
    if (st == QV_OK && n > c->max_position_embeddings)
        st = qv_fail(QV_ERR_INPUT, "%s: %lld ids, longer than the model's max_position_embeddings %d (%s)",
                     src, (long long)n, c->max_position_embeddings, m->config_path);
    for (int64_t i = 0; st == QV_OK && i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            st = qv_fail(QV_ERR_INPUT, "%s: id %d at index %lld outside the vocabulary [0, %d) of %s",
                         src, ids[i], (long long)i, c->vocab_size, m->config_path);
    if (st == QV_OK) {
        qv_engine_opts o = eopts;
        o.threads = (int)threads;
        st = qv_engine_open(engine, m, &o, &e);
    }
    int nt = (int)n;
    int64_t rows = st == QV_OK ? qv_engine_logit_rows(1, &nt, (int)last) : 0;
    if (st == QV_OK) {
        size_t cnt = 0;
        if (qv_mul_size((size_t)rows, (size_t)c->vocab_size * sizeof(float), &cnt))
            st = qv_fail(QV_ERR_INPUT, "%s: %lld logits rows of %d do not fit in memory", src, (long long)rows, c->vocab_size);
        else if (!(logits = qv_malloc(cnt))) st = QV_ERR_NOMEM;
    }
    qv_seq_id sid = -1;
    if (st == QV_OK) st = qv_engine_seq_create(e, 1, &sid);
    if (st == QV_OK) {
        const int32_t *tp = ids;
        st = qv_engine_prefill(e, 1, &sid, &tp, &nt, (int)last, logits);
    }
    if (st == QV_OK) st = write_logits(out, ids, n, logits, rows, c->vocab_size);
    if (st == QV_OK)
        printf("%s: %lld ids, logits of the last %lld positions (vocab %d) from %s\n", out, (long long)n,
               (long long)rows, c->vocab_size, qv_engine_name(e));
    free(logits);
    qv_engine_close(e);
    qv_model_close(m);
    free(ids);
    return st == QV_OK ? QV_EXIT_OK : qv_cli_report(st);
}
