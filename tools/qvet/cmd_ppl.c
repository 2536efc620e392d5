/* qvet ppl [--model DIR] --engine E --text FILE [--ctx N] [--max-tokens N] [--no-bos]
 *          [--json PATH] [--shard i/n] [--resume] [--threads N]
 * Perplexity as EVALS.md defines it (qv_eval_ppl): the whole text tokenized once by the model's
 * tokenizer (its BOS only at the very start, unless --no-bos), the first --max-tokens ids kept,
 * cut into non-overlapping chunks of ctx (default min(2048, max_position_embeddings)), a short
 * last chunk dropped; 95% interval from the per-chunk mean NLLs.
 * --shard i/n scores chunks c with c % n == i; --json is rewritten atomically after every chunk
 * (schema "qvet.ppl", version 2, qvet/eval_ppl.h), so --resume keeps the chunks already there
 * (same run: meta must match) and `qvet merge` joins shards into one run's result.
 * stdout: one summary line; stderr: a progress bar with ETA only when it is a TTY.
 * Exit 0 ok; 2 usage or input error (empty / non-UTF-8 text, fewer ids than one chunk, ctx out of
 * range, model without a tokenizer, a shard holding no chunk, a --resume file of another run);
 * 1 NaN/Inf produced by the forward; 3 internal. */
#include <cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "engine_opts.h"
#include "eval_cmds.h"
#include "progress.h"
#include "qvet/engine.h"
#include "qvet/eval_compare.h"
#include "qvet/eval_ppl.h"
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

typedef struct {
    qv_ppl_set set;
    const cJSON *meta;
    cJSON *run;          /* {"threads", "seconds"}: how the result was computed, not what it is */
    const char *json;
    double t0, seconds_before; /* seconds_before: what a resumed file had already spent */
    int64_t committed;
} ppl_state;

static qv_status write_result(ppl_state *s)
{
    cJSON_ReplaceItemInObjectCaseSensitive(s->run, "seconds",
                                           cJSON_CreateNumber(s->seconds_before + qv_progress_now() - s->t0));
    cJSON *j = NULL;
    QV_TRY(qv_ppl_to_json(s->meta, &s->set, s->run, &j));
    qv_status st = qv_json_write_atomic(s->json, j);
    cJSON_Delete(j);
    return st;
}

/* Each chunk is committed to --json as it finishes (atomically), so a run killed at any moment
 * leaves a valid result that --resume completes. */
static qv_status on_chunk(void *user, int index, int n, double nll_sum)
{
    ppl_state *s = user;
    qv_ppl_chunk c = {.index = index, .n = n, .nll_sum = nll_sum};
    QV_TRY(qv_ppl_set_add(&s->set, &c));
    if (!s->json) return QV_OK;
    QV_TRY(write_result(s));
    qv_evcli_test_kill_hook(++s->committed);
    return QV_OK;
}

static int meta_int(const cJSON *meta, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, k);
    return cJSON_IsNumber(v) ? v->valueint : 0;
}

static const char *meta_str(const cJSON *meta, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, k);
    return cJSON_IsString(v) ? v->valuestring : "?";
}

qv_status qv_ppl_print(qv_ppl_set *set, const cJSON *meta, double seconds)
{
    qv_ppl_result r;
    QV_TRY(qv_ppl_set_stats(set, &r));
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(meta, "shard");
    int si = meta_int(sh, "i"), sn = meta_int(sh, "n"), total = meta_int(meta, "n_chunks_total");
    if (r.n_chunks >= 2)
        printf("ppl %.4f (95%% CI %.4f - %.4f)", r.ppl, r.ppl_lo, r.ppl_hi);
    else
        printf("ppl %.4f (no CI: 1 chunk)", r.ppl);
    printf(", %d chunks of %d, %lld scored tokens, %.1f s (%s on %s, %s, %s BOS)", r.n_chunks, r.ctx,
           (long long)r.n_scored, seconds, meta_str(meta, "engine"), meta_str(meta, "model"), meta_str(meta, "text"),
           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(meta, "bos")) ? "with" : "no");
    if (sn > 1) printf(" [shard %d/%d of %d chunks]", si, sn, total);
    else if (r.n_chunks < total) printf(" [%d of %d chunks: incomplete]", r.n_chunks, total);
    printf("\n");
    qv_ppl_result_free(&r);
    return fflush(stdout) == 0 ? QV_OK : qv_fail(QV_ERR_IO, "stdout: write error");
}

static const char *layers_arg(int argc, char **argv, const char *flag)
{
    const char *v = NULL;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], flag)) v = argv[i + 1];
    return v;
}

/* Everything that decides the figures: resume and merge refuse a result whose meta differs
 * (the command line and, for merge, the shard aside). */
static cJSON *make_meta(const char *model, const char *engine, const qv_engine_opts *eo, int argc, char **argv,
                        const char *text, int bos, int ctx, long max_tokens, int64_t n_text, int64_t n,
                        const int32_t *ids, int si, int sn, const char *cmd)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "model", model);
    cJSON_AddStringToObject(m, "engine", engine);
    cJSON *o = cJSON_AddObjectToObject(m, "engine_opts");
    if (eo->quantized_path) cJSON_AddStringToObject(o, "quantized", eo->quantized_path);
    else cJSON_AddNullToObject(o, "quantized");
    cJSON_AddStringToObject(o, "attn", eo->attn_mode == QV_ATTN_SERVE ? "serve" : "kv4");
    cJSON_AddBoolToObject(o, "qserve_compat", eo->qserve_compat);
    cJSON_AddBoolToObject(o, "fp_kv", eo->fp_kv);
    /* only when not the default, so results written before --dtype existed still resume / merge */
    if (eo->dtype != QV_DTYPE_FP16) cJSON_AddStringToObject(o, "dtype", qv_dtype16_name(eo->dtype));
    const char *fw = layers_arg(argc, argv, "--fp-weights"), *fa = layers_arg(argc, argv, "--fp-acts");
    if (fw) cJSON_AddStringToObject(o, "fp_weights", fw);
    else cJSON_AddNullToObject(o, "fp_weights");
    if (fa) cJSON_AddStringToObject(o, "fp_acts", fa);
    else cJSON_AddNullToObject(o, "fp_acts");
    cJSON_AddStringToObject(m, "text", text);
    cJSON_AddBoolToObject(m, "bos", bos);
    cJSON_AddNumberToObject(m, "ctx", ctx);
    if (max_tokens > 0) cJSON_AddNumberToObject(m, "max_tokens", (double)max_tokens);
    else cJSON_AddNullToObject(m, "max_tokens");
    cJSON_AddNumberToObject(m, "text_tokens", (double)n_text);
    cJSON_AddNumberToObject(m, "tokens_used", (double)n);
    cJSON_AddNumberToObject(m, "n_chunks_total", (double)(n / ctx));
    char h[17];
    snprintf(h, sizeof h, "%016" PRIx64, qv_ids_hash(ids, n));
    cJSON_AddStringToObject(m, "ids_fnv1a64", h);
    cJSON *sh = cJSON_AddObjectToObject(m, "shard");
    cJSON_AddNumberToObject(sh, "i", si);
    cJSON_AddNumberToObject(sh, "n", sn);
    if (cmd) cJSON_AddStringToObject(m, "command", cmd);
    return m;
}

/* --resume: loads the chunks already in `path` (same run, same shard) into s and marks them. */
static qv_status load_resume(const char *path, ppl_state *s, unsigned char *have)
{
    cJSON *j = NULL, *old = NULL, *run = NULL;
    qv_ppl_set set;
    QV_TRY(qv_json_read(path, &j));
    qv_status st = qv_ppl_from_json(j, path, &old, &set, &run);
    cJSON_Delete(j);
    if (st != QV_OK) return st;
    static const char *const skip[] = {"command", NULL};
    const char *what = qv_json_first_diff(old, s->meta, skip);
    if (what) st = qv_fail(QV_ERR_INPUT, "%s: --resume: the file is from a different run (%s differs)", path, what);
    for (int i = 0; st == QV_OK && i < set.n; i++) {
        st = qv_ppl_set_add(&s->set, &set.v[i]);
        have[set.v[i].index] = 1;
    }
    const cJSON *sec = cJSON_GetObjectItemCaseSensitive(run, "seconds");
    if (cJSON_IsNumber(sec)) s->seconds_before = sec->valuedouble;
    if (st == QV_OK && set.n > 0) fprintf(stderr, "qvet ppl: resuming: %d chunks already in %s\n", set.n, path);
    qv_ppl_set_free(&set);
    cJSON_Delete(old);
    cJSON_Delete(run);
    return st;
}

int qv_cmd_ppl(int argc, char **argv)
{
    const char *model_dir = NULL, *engine = NULL, *text_path = NULL, *json = NULL;
    long ctx = 0, max_tokens = 0, threads = 0;
    int bos = 1, resume = 0, si = 0, sn = 1;
    qv_engine_opts eopts;
    qv_engine_opts_init(&eopts);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int eo = qv_cli_engine_opt("ppl", argc, argv, &i, &eopts);
        if (eo < 0) return QV_EXIT_USAGE;
        if (eo > 0) continue;
        if (!strcmp(a, "--no-bos")) { bos = 0; continue; }
        if (!strcmp(a, "--resume")) { resume = 1; continue; }
        if (!strcmp(a, "--shard")) {
            if (i + 1 >= argc) return qv_cli_usage_error("ppl", "--shard needs a value i/n");
            if (qv_evcli_parse_shard(argv[++i], &si, &sn))
                return qv_cli_usage_error("ppl", "--shard: '%s' is not i/n with 0 <= i < n", argv[i]);
            continue;
        }
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
    if (qv_cli_engine_dtype_check("ppl", engine, &eopts)) return QV_EXIT_USAGE;
    if (!text_path) return qv_cli_usage_error("ppl", "--text FILE is required");
    if (resume && !json) return qv_cli_usage_error("ppl", "--resume needs --json FILE (the results to resume)");

    ppl_state ps = {.json = json, .t0 = qv_progress_now()};
    qv_model *m = NULL;
    qv_engine *e = NULL;
    char *text = NULL, *cmd = NULL;
    size_t len = 0;
    int32_t *ids = NULL;
    size_t n_text = 0;
    unsigned char *have = NULL;
    cJSON *meta = NULL;
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
    int n_chunks = st == QV_OK ? (int)(n / ctx) : 0;
    if (st == QV_OK && si >= n_chunks)
        st = qv_fail(QV_ERR_USAGE, "--shard %d/%d: holds none of the %d chunks of %s", si, sn, n_chunks, text_path);
    if (st == QV_OK) {
        cmd = qv_evcli_cmdline(argc, argv);
        meta = make_meta(label, engine, &eopts, argc, argv, text_path, bos, (int)ctx, max_tokens, (int64_t)n_text, n,
                         ids, si, sn, cmd);
        ps.meta = meta;
        ps.run = cJSON_CreateObject();
        have = qv_calloc((size_t)n_chunks, 1);
        if (!meta || !ps.run || !have) st = QV_ERR_NOMEM;
    }
    if (st == QV_OK) {
        cJSON_AddNumberToObject(ps.run, "threads", (double)threads);
        cJSON_AddNumberToObject(ps.run, "seconds", 0);
    }
    if (st == QV_OK && resume && qv_path_exists(json)) st = load_resume(json, &ps, have);
    if (st == QV_OK) {
        qv_engine_opts o = eopts;
        o.threads = (int)threads;
        st = qv_engine_open(engine, m, &o, &e);
    }
    qv_progress bar;
    qv_progress_init(&bar, "ppl", "chunks");
    if (st == QV_OK) {
        qv_ppl_result r;
        qv_ppl_opts po = {.ctx = (int)ctx, .progress = qv_progress_hook, .progress_user = &bar, .shard_i = si,
                          .shard_n = sn, .have = have, .on_chunk = on_chunk, .chunk_user = &ps};
        st = qv_eval_ppl(e, ids, n, &po, &r);
        if (st == QV_OK) qv_ppl_result_free(&r); /* the figures come from ps.set, resumed chunks included */
    }
    qv_progress_finish(&bar);
    if (st == QV_OK && json) st = write_result(&ps); /* also when resuming found nothing left to run */
    if (st == QV_OK) st = qv_ppl_print(&ps.set, meta, ps.seconds_before + qv_progress_now() - ps.t0);
    qv_ppl_set_free(&ps.set);
    cJSON_Delete(ps.run);
    cJSON_Delete(meta);
    free(have);
    free(cmd);
    qv_engine_close(e);
    qv_model_close(m);
    free(ids);
    free(text);
    return st == QV_OK ? QV_EXIT_OK : qv_cli_report(st);
}
