/* qvet ppl [--model DIR] --engine E --text FILE [--ctx N] [--max-tokens N] [--no-bos]
 *          [--json PATH] [--threads N]
 * Perplexity as EVALS.md defines it (qv_eval_ppl): the whole text tokenized once by the model's
 * tokenizer (its BOS only at the very start, unless --no-bos), the first --max-tokens ids kept,
 * cut into non-overlapping chunks of ctx (default min(2048, max_position_embeddings)), a short
 * last chunk dropped; 95% interval from the per-chunk mean NLLs.
 * stdout: one summary line; stderr: a progress bar with ETA only when it is a TTY.
 * --json: {"schema":"qvet.ppl/1", ...}, written atomically.
 * Exit 0 ok; 2 usage or input error (empty / non-UTF-8 text, fewer ids than one chunk, ctx out of
 * range, model without a tokenizer); 1 NaN/Inf produced by the forward; 3 internal. */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "engine_opts.h"
#include "progress.h"
#include "qvet/engine.h"
#include "qvet/evals.h"
#include "qvet/fileio.h"
#include "qvet/tokenizer.h"

static int parse_long(const char *s, long lo, long hi, long *v)
{
    char *end = NULL;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (errno || end == s || *end || x < lo || x > hi) return -1;
    *v = x;
    return 0;
}

/* Offset of the first byte that breaks UTF-8 (RFC 3629: no overlongs, no surrogates, <= U+10FFFF),
 * or -1 if the text is valid. Checked here so the message names the file and the offset. */
static long long utf8_error_at(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        unsigned lo = 0x80, hi = 0xBF;
        if (c < 0x80) { i++; continue; }
        else if (c >= 0xC2 && c <= 0xDF) k = 1;
        else if (c >= 0xE0 && c <= 0xEF) { k = 2; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
        else if (c >= 0xF0 && c <= 0xF4) { k = 3; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
        else return (long long)i;
        if (i + k >= n) return (long long)i; /* truncated sequence */
        for (size_t j = 1; j <= k; j++) {
            unsigned b = s[i + j];
            if (b < (j == 1 ? lo : 0x80) || b > (j == 1 ? hi : 0xBF)) return (long long)i;
        }
        i += k + 1;
    }
    return -1;
}

/* cJSON number, or null for NaN/Inf (JSON has no NaN). */
static cJSON *num_or_null(double x) { return isfinite(x) ? cJSON_CreateNumber(x) : cJSON_CreateNull(); }

static qv_status write_json(const char *path, const char *model, const char *engine, const char *text,
                            int bos, long max_tokens, int64_t n_text_ids, int64_t n_ids, int threads,
                            double seconds, const qv_ppl_result *r)
{
    cJSON *j = cJSON_CreateObject();
    if (!j) return qv_fail(QV_ERR_NOMEM, "out of memory");
    cJSON_AddStringToObject(j, "schema", "qvet.ppl/1");
    cJSON_AddStringToObject(j, "model", model);
    cJSON_AddStringToObject(j, "engine", engine);
    cJSON_AddStringToObject(j, "text", text);
    cJSON_AddBoolToObject(j, "bos", bos);
    cJSON_AddNumberToObject(j, "ctx", r->ctx);
    if (max_tokens > 0) cJSON_AddNumberToObject(j, "max_tokens", (double)max_tokens);
    else cJSON_AddNullToObject(j, "max_tokens");
    cJSON_AddNumberToObject(j, "text_tokens", (double)n_text_ids);
    cJSON_AddNumberToObject(j, "tokens_used", (double)n_ids);
    cJSON_AddNumberToObject(j, "chunks", r->n_chunks);
    cJSON_AddNumberToObject(j, "scored_tokens", (double)r->n_scored);
    cJSON_AddItemToObject(j, "ppl", num_or_null(r->ppl));
    cJSON_AddItemToObject(j, "ppl_ci95", cJSON_CreateArray());
    cJSON *ci = cJSON_GetObjectItemCaseSensitive(j, "ppl_ci95");
    cJSON_AddItemToArray(ci, num_or_null(r->ppl_lo));
    cJSON_AddItemToArray(ci, num_or_null(r->ppl_hi));
    cJSON_AddItemToObject(j, "mean_nll", num_or_null(r->mean_nll));
    cJSON_AddItemToObject(j, "se_nll", num_or_null(r->se));
    cJSON *ch = cJSON_CreateArray();
    for (int i = 0; i < r->n_chunks; i++) cJSON_AddItemToArray(ch, num_or_null(r->chunk_nll[i]));
    cJSON_AddItemToObject(j, "chunk_nll", ch);
    cJSON_AddNumberToObject(j, "threads", threads);
    cJSON_AddNumberToObject(j, "seconds", seconds);
    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    if (!s) return qv_fail(QV_ERR_NOMEM, "out of memory");
    size_t len = strlen(s);
    s[len] = '\n'; /* replaces the NUL: the file ends with a newline */
    qv_status st = qv_write_file_atomic(path, s, len + 1);
    free(s);
    return st;
}

int qv_cmd_ppl(int argc, char **argv)
{
    const char *model_dir = NULL, *engine = NULL, *text_path = NULL, *json = NULL;
    long ctx = 0, max_tokens = 0, threads = 0;
    int bos = 1;
    qv_engine_opts eopts;
    qv_engine_opts_init(&eopts);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int eo = qv_cli_engine_opt("ppl", argc, argv, &i, &eopts);
        if (eo < 0) return QV_EXIT_USAGE;
        if (eo > 0) continue;
        if (!strcmp(a, "--no-bos")) { bos = 0; continue; }
        const char **dst = !strcmp(a, "--model") ? &model_dir : !strcmp(a, "--engine") ? &engine
                         : !strcmp(a, "--text") ? &text_path : !strcmp(a, "--json") ? &json : NULL;
        long *num = !strcmp(a, "--ctx") ? &ctx : !strcmp(a, "--max-tokens") ? &max_tokens
                  : !strcmp(a, "--threads") ? &threads : NULL;
        if (!dst && !num) return qv_cli_usage_error("ppl", "unknown option '%s'", a);
        if (i + 1 >= argc) return qv_cli_usage_error("ppl", "%s needs a value", a);
        const char *val = argv[++i];
        if (dst) {
            if (*dst) return qv_cli_usage_error("ppl", "%s given twice", a);
            *dst = val;
        } else if (parse_long(val, num == &threads ? 0 : num == &ctx ? 2 : 1, num == &max_tokens ? (1L << 40) : (1L << 24), num)) {
            return qv_cli_usage_error("ppl", "%s '%s': want an integer %s", a, val,
                                      num == &threads ? ">= 0 (0: the libraries' default)" : num == &ctx ? ">= 2" : ">= 1");
        }
    }
    if (!engine) return qv_cli_usage_error("ppl", "--engine E is required (ref-fp32|ref-qoq|gpu-fp16|gpu-qoq)");
    if (!text_path) return qv_cli_usage_error("ppl", "--text FILE is required");

    double t0 = qv_progress_now();
    qv_model *m = NULL;
    qv_engine *e = NULL;
    char *text = NULL;
    size_t len = 0;
    int32_t *ids = NULL;
    size_t n_text = 0;
    qv_ppl_result r = {0};
    qv_status st = qv_read_file(text_path, (size_t)1 << 32, &text, &len);
    if (st == QV_OK && len == 0) st = qv_fail(QV_ERR_INPUT, "%s: empty text", text_path);
    long long bad = st == QV_OK ? utf8_error_at((const unsigned char *)text, len) : -1;
    if (bad >= 0) st = qv_fail(QV_ERR_INPUT, "%s: not UTF-8 (invalid byte 0x%02x at offset %lld)", text_path,
                               (unsigned char)text[bad], bad);
    if (st == QV_OK) st = model_dir ? qv_model_open(model_dir, &m) : qv_cli_default_model(&m);
    const char *label = m ? m->dir : "";
    if (st == QV_OK && !m->tok)
        st = qv_fail(QV_ERR_INPUT, "%s: the model has no tokenizer.json: ppl needs one to tokenize %s", label, text_path);
    const qv_config *c = m ? &m->cfg : NULL;
    if (st == QV_OK && ctx == 0) ctx = c->max_position_embeddings < 2048 ? c->max_position_embeddings : 2048;
    if (st == QV_OK && ctx > c->max_position_embeddings)
        st = qv_fail(QV_ERR_USAGE, "--ctx %ld exceeds the model's max_position_embeddings %d (%s)", ctx,
                     c->max_position_embeddings, m->config_path);
    if (st == QV_OK) {
        st = qv_tok_encode(m->tok, text, len, bos, &ids, &n_text);
        if (st != QV_OK) qv_fail_prefix(st, "%s", text_path);
    }
    int64_t n = (int64_t)n_text;
    if (max_tokens > 0 && n > max_tokens) n = max_tokens;
    if (st == QV_OK && n < ctx)
        st = qv_fail(QV_ERR_INPUT, "%s: %lld tokens%s, fewer than one chunk of --ctx %ld", text_path, (long long)n,
                     n < (int64_t)n_text ? " (after --max-tokens)" : "", ctx);
    if (st == QV_OK) {
        qv_engine_opts o = eopts;
        o.threads = (int)threads;
        st = qv_engine_open(engine, m, &o, &e);
    }
    qv_progress bar;
    qv_progress_init(&bar, "ppl", "chunks");
    if (st == QV_OK) {
        qv_ppl_opts po = {.ctx = (int)ctx, .progress = qv_progress_hook, .progress_user = &bar};
        st = qv_eval_ppl(e, ids, n, &po, &r);
    }
    qv_progress_finish(&bar);
    double secs = qv_progress_now() - t0;
    if (st == QV_OK && json)
        st = write_json(json, label, engine, text_path, bos, max_tokens, (int64_t)n_text, n, (int)threads, secs, &r);
    if (st == QV_OK) {
        if (r.n_chunks >= 2)
            printf("ppl %.4f (95%% CI %.4f - %.4f)", r.ppl, r.ppl_lo, r.ppl_hi);
        else
            printf("ppl %.4f (no CI: 1 chunk)", r.ppl);
        printf(", %d chunks of %d, %lld scored tokens, %.1f s (%s on %s, %s, %s BOS)\n", r.n_chunks, r.ctx,
               (long long)r.n_scored, secs, engine, label, text_path, bos ? "with" : "no");
        if (fflush(stdout) != 0) st = qv_fail(QV_ERR_IO, "stdout: write error");
    }
    qv_ppl_result_free(&r);
    qv_engine_close(e);
    qv_model_close(m);
    free(ids);
    free(text);
    return st == QV_OK ? QV_EXIT_OK : qv_cli_report(st);
}
