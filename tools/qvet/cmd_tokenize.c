/* qvet tokenize: text -> token ids (a JSON array on stdout), or with --decode ids -> text.
 * Exit 0 ok, 2 usage or input error (missing/corrupt tokenizer.json, unsupported component, text
 * not UTF-8, bad id list, id out of range). */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qvet/fileio.h"
#include "qvet/tokenizer.h"

static qv_status read_stdin(char **out, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return qv_fail(QV_ERR_NOMEM, "stdin: out of memory");
    for (;;) {
        if (n == cap) {
            char *p = realloc(buf, cap * 2);
            if (!p) {
                free(buf);
                return qv_fail(QV_ERR_NOMEM, "stdin: out of memory");
            }
            buf = p;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, stdin);
        n += r;
        if (r == 0) break;
    }
    if (ferror(stdin)) {
        free(buf);
        return qv_fail(QV_ERR_IO, "stdin: read error");
    }
    *out = buf;
    *len = n;
    return QV_OK;
}

/* Parses a JSON array of integer ids (--decode input). */
static qv_status parse_ids(const char *src, const char *text, size_t len, int32_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    cJSON *j = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsArray(j)) {
        cJSON_Delete(j);
        return qv_fail(QV_ERR_INPUT, "%s: --decode expects a JSON array of token ids", src);
    }
    size_t cnt = (size_t)cJSON_GetArraySize(j), i = 0;
    int32_t *v = malloc((cnt ? cnt : 1) * sizeof *v);
    if (!v) {
        cJSON_Delete(j);
        return qv_fail(QV_ERR_NOMEM, "out of memory");
    }
    for (const cJSON *c = j->child; c; c = c->next, i++) {
        double d = cJSON_IsNumber(c) ? c->valuedouble : -1;
        if (!cJSON_IsNumber(c) || d != (double)(long long)d || d < -2147483648.0 || d > 2147483647.0) {
            free(v);
            cJSON_Delete(j);
            return qv_fail(QV_ERR_INPUT, "%s: item %zu of the id array is not an integer", src, i);
        }
        v[i] = (int32_t)d;
    }
    cJSON_Delete(j);
    *ids = v;
    *n = cnt;
    return QV_OK;
}

int qv_cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *tokfile = NULL, *text = NULL;
    int bos = 0, decode = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--bos")) bos = 1;
        else if (!strcmp(a, "--decode")) decode = 1;
        else if (!strcmp(a, "--model") || !strcmp(a, "--tokenizer") || !strcmp(a, "--text")) {
            if (i + 1 >= argc) return qv_cli_usage_error("tokenize", "%s needs a value", a);
            const char **dst = a[2] == 'm' ? &model : a[3] == 'o' ? &tokfile : &text;
            if (*dst) return qv_cli_usage_error("tokenize", "%s given twice", a);
            *dst = argv[++i];
        } else {
            return qv_cli_usage_error("tokenize", "unknown option '%s'", a);
        }
    }
    if (model && tokfile) return qv_cli_usage_error("tokenize", "give --model or --tokenizer, not both");
    if (decode && bos) return qv_cli_usage_error("tokenize", "--bos applies to encoding, not to --decode");

    qv_tok *tok = NULL;
    qv_status st;
    if (tokfile) {
        st = qv_tok_load_file(tokfile, &tok);
    } else if (model) {
        char *path = qv_path_join(model, "tokenizer.json");
        if (!path) return qv_cli_report(qv_fail(QV_ERR_NOMEM, "out of memory"));
        st = qv_tok_load_file(path, &tok);
        free(path);
    } else {
        st = qv_cli_default_tokenizer(&tok);
    }
    if (st != QV_OK) return qv_cli_report(st);

    char *owned = NULL;
    size_t len = text ? strlen(text) : 0;
    if (!text) {
        st = read_stdin(&owned, &len);
        if (st != QV_OK) {
            qv_tok_free(tok);
            return qv_cli_report(st);
        }
        text = owned;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    if (decode) {
        char *out = NULL;
        size_t olen = 0;
        st = parse_ids(owned ? "stdin" : "--text", text, len, &ids, &n);
        if (st == QV_OK) st = qv_tok_decode(tok, ids, n, &out, &olen);
        if (st == QV_OK) fwrite(out, 1, olen, stdout);
        free(out);
    } else {
        st = qv_tok_encode(tok, text, len, bos, &ids, &n);
        if (st == QV_OK) {
            putchar('[');
            for (size_t i = 0; i < n; i++) printf(i ? ",%d" : "%d", ids[i]);
            puts("]");
        }
    }
    free(ids);
    free(owned);
    qv_tok_free(tok);
    if (st != QV_OK) return qv_cli_report(st);
    if (fflush(stdout) != 0) return qv_cli_report(qv_fail(QV_ERR_IO, "stdout: write error"));
    return QV_EXIT_OK;
}
