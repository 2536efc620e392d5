/* LongBench data side (pred.py): JSONL files, the user's dataset2prompt / dataset2maxlen config,
 * str.format-style prompt filling and middle truncation. Pure functions; no engine here. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "longbench_internal.h"
#include "qvet/fileio.h"

#define QV_LB_MAX_FILE ((size_t)4 << 30)

void qv_lb_jsonl_free(cJSON **items, size_t n)
{
    if (!items) return;
    for (size_t i = 0; i < n; i++) cJSON_Delete(items[i]);
    free(items);
}

qv_status qv_lb_jsonl_load(const char *path, cJSON ***items, size_t *n)
{
    *items = NULL;
    *n = 0;
    char *buf;
    size_t size;
    QV_TRY(qv_read_file(path, QV_LB_MAX_FILE, &buf, &size));
    qv_status st = QV_OK;
    size_t cap = 0, cnt = 0, line = 0;
    cJSON **v = NULL;
    size_t pos = 0;
    while (pos < size && st == QV_OK) {
        /* Python's text mode: "\n", "\r\n" and "\r" all end a line */
        size_t e = pos;
        while (e < size && buf[e] != '\n' && buf[e] != '\r') e++;
        size_t next = e < size ? e + 1 : e;
        if (e < size && buf[e] == '\r' && e + 1 < size && buf[e + 1] == '\n') next = e + 2;
        line++;
        if (memchr(buf + pos, 0, e - pos)) {
            st = qv_fail(QV_ERR_INPUT, "%s:%zu: NUL byte in the line", path, line);
            break;
        }
        /* cJSON ends strings at a NUL; an escaped \u0000 would be cut silently, so refuse it */
        for (size_t k = pos; k + 6 <= e; k++)
            if (!memcmp(buf + k, "\\u0000", 6)) {
                st = qv_fail(QV_ERR_INPUT, "%s:%zu: a string contains \\u0000, which qvet does not support", path, line);
                break;
            }
        if (st != QV_OK) break;
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithLengthOpts(buf + pos, e - pos, &end, 0);
        if (!j) {
            size_t col = end ? (size_t)(end - (buf + pos)) + 1 : 1;
            st = qv_fail(QV_ERR_INPUT, "%s:%zu: invalid JSON near column %zu%s", path, line, col,
                         e == pos ? " (blank line: LongBench's json.loads fails on it too)" : "");
            break;
        }
        if (!cJSON_IsObject(j)) {
            cJSON_Delete(j);
            st = qv_fail(QV_ERR_INPUT, "%s:%zu: line is valid JSON but not an object", path, line);
            break;
        }
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 64;
            cJSON **p = realloc(v, nc * sizeof *p);
            if (!p) {
                cJSON_Delete(j);
                st = qv_fail(QV_ERR_NOMEM, "%s: out of memory at line %zu", path, line);
                break;
            }
            v = p;
            cap = nc;
        }
        v[cnt++] = j;
        pos = next;
    }
    free(buf);
    if (st != QV_OK) {
        qv_lb_jsonl_free(v, cnt);
        return st;
    }
    *items = v;
    *n = cnt;
    return QV_OK;
}

struct qv_lb_config {
    cJSON *prompt, *maxlen;
    char dir[1024];
};

static qv_status load_json(const char *dir, const char *name, cJSON **out)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *buf;
    size_t size;
    QV_TRY(qv_read_file(path, 64u << 20, &buf, &size));
    *out = cJSON_ParseWithLength(buf, size);
    free(buf);
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return qv_fail(QV_ERR_INPUT, "%s: not a JSON object (expected LongBench's config/%s)", path, name);
    }
    return QV_OK;
}

qv_status qv_lb_config_load(const char *dir, qv_lb_config **out)
{
    *out = NULL;
    qv_lb_config *c = calloc(1, sizeof *c);
    if (!c) return qv_fail(QV_ERR_NOMEM, "out of memory");
    snprintf(c->dir, sizeof c->dir, "%s", dir);
    qv_status st = load_json(dir, "dataset2prompt.json", &c->prompt);
    if (st == QV_OK) st = load_json(dir, "dataset2maxlen.json", &c->maxlen);
    if (st != QV_OK) {
        qv_lb_config_free(c);
        return st;
    }
    *out = c;
    return QV_OK;
}

void qv_lb_config_free(qv_lb_config *c)
{
    if (!c) return;
    cJSON_Delete(c->prompt);
    cJSON_Delete(c->maxlen);
    free(c);
}

qv_status qv_lb_config_prompt(const qv_lb_config *c, const char *task, const char **tmpl)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(c->prompt, task);
    if (!cJSON_IsString(p))
        return qv_fail(QV_ERR_INPUT, "%s/dataset2prompt.json: no string template for task '%s'", c->dir, task);
    *tmpl = p->valuestring;
    return QV_OK;
}

qv_status qv_lb_config_maxlen(const qv_lb_config *c, const char *task, int *maxlen)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(c->maxlen, task);
    if (!cJSON_IsNumber(p) || p->valuedouble != (double)(int)p->valuedouble || p->valuedouble < 1)
        return qv_fail(QV_ERR_INPUT, "%s/dataset2maxlen.json: no positive integer for task '%s'", c->dir, task);
    *maxlen = (int)p->valuedouble;
    return QV_OK;
}

typedef struct { char *p; size_t n, cap; } buf_t;
static qv_status buf_add(buf_t *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return qv_fail(QV_ERR_NOMEM, "prompt: out of memory");
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return QV_OK;
}

qv_status qv_lb_format(const char *tmpl, const char *const *names, const char *const *values,
                       size_t nfields, char **out)
{
    *out = NULL;
    buf_t b = {0};
    qv_status st = buf_add(&b, "", 0);
    for (const char *p = tmpl; *p && st == QV_OK;) {
        if (p[0] == '{' && p[1] == '{') { st = buf_add(&b, "{", 1); p += 2; continue; }
        if (p[0] == '}' && p[1] == '}') { st = buf_add(&b, "}", 1); p += 2; continue; }
        if (p[0] == '}') {
            st = qv_fail(QV_ERR_INPUT, "prompt template: single '}' at offset %zu (Python's str.format rejects it)",
                         (size_t)(p - tmpl));
            break;
        }
        if (p[0] != '{') {
            const char *q = p;
            while (*q && *q != '{' && *q != '}') q++;
            st = buf_add(&b, p, (size_t)(q - p));
            p = q;
            continue;
        }
        const char *close = strchr(p + 1, '}');
        if (!close) {
            st = qv_fail(QV_ERR_INPUT, "prompt template: '{' at offset %zu is never closed", (size_t)(p - tmpl));
            break;
        }
        size_t len = (size_t)(close - p - 1);
        if (len == 0 || memchr(p + 1, '{', len) || memchr(p + 1, ':', len) || memchr(p + 1, '!', len) ||
            memchr(p + 1, '.', len) || memchr(p + 1, '[', len)) {
            st = qv_fail(QV_ERR_UNSUPPORTED, "prompt template: field '{%.*s}' at offset %zu: only plain "
                         "{name} fields are supported", (int)len, p + 1, (size_t)(p - tmpl));
            break;
        }
        size_t f = 0;
        while (f < nfields && !(strlen(names[f]) == len && !memcmp(names[f], p + 1, len))) f++;
        if (f == nfields) {
            st = qv_fail(QV_ERR_INPUT, "prompt template: unknown field '{%.*s}' (Python raises KeyError)", (int)len, p + 1);
            break;
        }
        st = buf_add(&b, values[f], strlen(values[f]));
        p = close + 1;
    }
    if (st != QV_OK) {
        free(b.p);
        return st;
    }
    *out = b.p;
    return QV_OK;
}

void qv_lb_truncate_middle(const int32_t *ids, size_t n, size_t max_length, int32_t *out, size_t *out_n)
{
    if (n <= max_length) {
        memmove(out, ids, n * sizeof *ids);
        *out_n = n;
        return;
    }
    size_t half = max_length / 2; /* int(max_length / 2) */
    if (half == 0) { /* ids[:0] + ids[-0:]: Python's -0 is 0, so the whole list */
        memmove(out, ids, n * sizeof *ids);
        *out_n = n;
        return;
    }
    memmove(out, ids, half * sizeof *ids);
    memmove(out + half, ids + n - half, half * sizeof *ids);
    *out_n = 2 * half;
}
