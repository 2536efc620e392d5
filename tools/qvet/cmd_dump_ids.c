/* qvet dump-ids [--model DIR] --text FILE [--ctx N] [--max-tokens N] [--no-bos] --out IDS
 *
 * Writes the exact token chunks `qvet compare` and `qvet ppl` score (EVALS.md chunking, through
 * the same qv_compare_tokenize and qv_cmp_n_chunks compare uses), so an external engine runs the
 * same tokens: safetensors with `ids` I32 [n_chunks, ctx] and metadata (model, text, its sha256,
 * ctx, bos, token counts, ids hash), written atomically. Exit 0 ok, 2 usage/input, 3 internal. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "eval_cmds.h"
#include "qvet/safetensors.h"

static qv_status write_ids(const char *out, const qv_model *m, const char *text, const char *sha, int ctx, int bos,
                           long long max_tokens, const int32_t *ids, int64_t n_ids, int n_chunks, const char *cmd)
{
    qv_st_writer *w = qv_st_writer_new();
    if (!w) return QV_ERR_NOMEM;
    int64_t shape[2] = {n_chunks, ctx};
    char b[64];
    qv_status st = qv_st_writer_add(w, "ids", QV_I32, 2, shape, ids);
    if (st == QV_OK) st = qv_st_writer_meta(w, "format", "qvet.ids");
    if (st == QV_OK) st = qv_st_writer_meta(w, "model", m->dir);
    if (st == QV_OK) st = qv_st_writer_meta(w, "text", text ? text : "<built-in text>");
    if (st == QV_OK) st = qv_st_writer_meta(w, "text_sha256", sha);
    snprintf(b, sizeof b, "%d", ctx);
    if (st == QV_OK) st = qv_st_writer_meta(w, "ctx", b);
    if (st == QV_OK) st = qv_st_writer_meta(w, "bos", bos ? "true" : "false");
    snprintf(b, sizeof b, "%lld", max_tokens);
    if (st == QV_OK) st = qv_st_writer_meta(w, "max_tokens", b);
    snprintf(b, sizeof b, "%lld", (long long)n_ids);
    if (st == QV_OK) st = qv_st_writer_meta(w, "n_tokens", b);
    snprintf(b, sizeof b, "%016" PRIx64, qv_ids_hash(ids, n_ids));
    if (st == QV_OK) st = qv_st_writer_meta(w, "ids_fnv1a64", b);
    if (st == QV_OK && cmd) st = qv_st_writer_meta(w, "command", cmd);
    if (st == QV_OK) st = qv_st_writer_write(w, out);
    qv_st_writer_free(w);
    return st;
}

int qv_cmd_dump_ids(int argc, char **argv)
{
    if (qv_cli_wants_help(argc, argv)) {
        qv_cli_print_help(qv_find_command("dump-ids"));
        return QV_EXIT_OK;
    }
    const char *model = NULL, *text = NULL, *out = NULL;
    long long ctx = 0, max_tokens = 0;
    int bos = 1;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--no-bos")) bos = 0;
        else if (i + 1 >= argc) return qv_cli_usage_error("dump-ids", "unknown flag or missing value: %s", f);
        else if (!strcmp(f, "--model")) model = argv[++i];
        else if (!strcmp(f, "--text")) text = argv[++i];
        else if (!strcmp(f, "--out")) out = argv[++i];
        else if (!strcmp(f, "--ctx")) {
            if (qv_evcli_int_arg("dump-ids", f, argv[++i], 2, &ctx)) return QV_EXIT_USAGE;
        } else if (!strcmp(f, "--max-tokens")) {
            if (qv_evcli_int_arg("dump-ids", f, argv[++i], 2, &max_tokens)) return QV_EXIT_USAGE;
        } else return qv_cli_usage_error("dump-ids", "unknown flag: %s", f);
    }
    if (!out) return qv_cli_usage_error("dump-ids", "--out IDS is required");
    qv_model *m = NULL;
    qv_status st = model ? qv_model_open(model, &m) : qv_cli_default_model(&m);
    int32_t *ids = NULL;
    int64_t n_ids = 0;
    char sha[65] = {0};
    if (st == QV_OK) st = qv_compare_tokenize(m, text, bos, max_tokens, &ids, &n_ids, sha);
    int maxp = st == QV_OK ? m->cfg.max_position_embeddings : 0;
    int c = ctx > 0 ? (int)ctx : qv_compare_default_ctx(maxp);
    if (st == QV_OK && (c < 2 || c > maxp))
        st = qv_fail(QV_ERR_INPUT, "--ctx %d outside [2, %d] (the model's max_position_embeddings)", c, maxp);
    int n_chunks = st == QV_OK ? qv_cmp_n_chunks(n_ids, c) : 0;
    if (st == QV_OK && n_chunks < 1)
        st = qv_fail(QV_ERR_INPUT, "%s: %lld tokens, fewer than one chunk of %d (lower --ctx)", text ? text : "<built-in text>",
                     (long long)n_ids, c);
    if (st == QV_OK) {
        char *cmd = qv_evcli_cmdline(argc, argv);
        st = write_ids(out, m, text, sha, c, bos && m->tok && qv_tok_bos_id(m->tok) >= 0, max_tokens, ids, n_ids, n_chunks, cmd);
        free(cmd);
    }
    if (st == QV_OK)
        printf("dump-ids: %d chunks of %d tokens (%lld of %lld tokens; a short last chunk is dropped) -> %s\n", n_chunks, c,
               (long long)n_chunks * c, (long long)n_ids, out);
    free(ids);
    if (m) qv_model_close(m);
    return st == QV_OK ? QV_EXIT_OK : qv_cli_report(st);
}
