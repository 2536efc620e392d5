/* qvet compare: R vs C on the same chunks (EVALS.md): perplexities with CIs, the paired ln ppl
 * ratio, KLD statistics, top-1 agreement, delta-p. --shard i/n runs chunks c with c % n == i;
 * --resume keeps the chunks already in --json (same run: meta must match) and computes the rest;
 * the JSON is rewritten atomically after every chunk, so an interrupted run leaves a valid
 * partial result. Exit 0 ok, 1 a NaN/Inf produced by an engine, 2 usage/input, 3 internal. */
#include <cJSON.h>
#include <errno.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "eval_cmds.h"
#include "qvet/fileio.h"
#include "qvet/golden.h"
#include "qvet/safetensors.h"
#include "qvet/tokenizer.h"

qv_status qv_compare_tokenize(const qv_model *m, const char *file, int bos, int64_t max_tokens, int32_t **ids,
                              int64_t *n_ids, char text_sha256[65])
{
    char *text = NULL;
    size_t len = 0, n = 0;
    *ids = NULL;
    if (!m->tok) return qv_fail(QV_ERR_INPUT, "%s: the model has no tokenizer.json", m->dir);
    QV_TRY(qv_evcli_text(file, strncmp(m->dir, "<synthetic", 10) == 0, &text, &len));
    if (text_sha256) qv_sha256_hex(text, len, text_sha256);
    qv_status st = qv_tok_encode(m->tok, text, len, bos && qv_tok_bos_id(m->tok) >= 0, ids, &n);
    free(text);
    if (st != QV_OK) return qv_fail_prefix(st, "%s", file ? file : "<built-in text>");
    *n_ids = max_tokens > 0 && (int64_t)n > max_tokens ? max_tokens : (int64_t)n;
    return QV_OK;
}

int qv_compare_default_ctx(int max_pos)
{
    return max_pos < 2048 ? max_pos : 2048;
}

typedef struct {
    qv_cmp_set *set;
    const qv_cmp_meta *meta;
    const char *json;
    int64_t committed;
} run_ctx;

static qv_status on_chunk(void *user, const qv_cmp_chunk *c)
{
    run_ctx *r = user;
    QV_TRY(qv_cmp_set_add(r->set, c));
    if (!r->json) return QV_OK;
    cJSON *j = NULL;
    QV_TRY(qv_cmp_to_json(r->meta, r->set, &j));
    qv_status st = qv_json_write_atomic(r->json, j);
    cJSON_Delete(j);
    if (st == QV_OK) qv_evcli_test_kill_hook(++r->committed);
    return st;
}

/* Hidden --dump-logits DIR (tests, docs/byo.md): the FP32 logits both engines produced, one
 * file per chunk and side, in the dump format `compare --ref-logits/--cand-logits` reads. Holds
 * one chunk's [ctx, V] logits per side in memory: meant for small models. */
typedef struct {
    const char *dir;
    float *r, *c;
    int ctx, V;
} dump_ctx;

static qv_status dump_side(const char *dir, const char *side, int index, const int32_t *ids, int ctx, int V, const float *l)
{
    char name[64];
    snprintf(name, sizeof name, "%s/chunk_%06d.safetensors", side, index);
    char *path = qv_path_join(dir, name);
    if (!path) return QV_ERR_NOMEM;
    qv_st_writer *w = qv_st_writer_new();
    int64_t si[1] = {ctx}, sl[2] = {ctx, V};
    qv_status st = w ? QV_OK : QV_ERR_NOMEM;
    if (st == QV_OK) st = qv_st_writer_add(w, "ids", QV_I32, 1, si, ids);
    if (st == QV_OK) st = qv_st_writer_add(w, "logits", QV_F32, 2, sl, l);
    if (st == QV_OK) st = qv_st_writer_meta(w, "writer", "qvet compare --dump-logits");
    if (st == QV_OK) st = qv_st_writer_write(w, path);
    qv_st_writer_free(w);
    free(path);
    return st;
}

static qv_status on_logits(void *user, int index, const int32_t *ids, int ctx, int p, int n, int V, const float *lr,
                           const float *lc)
{
    dump_ctx *d = user;
    if (!d->r) {
        d->r = qv_malloc(sizeof(float) * (size_t)ctx * (size_t)V);
        d->c = qv_malloc(sizeof(float) * (size_t)ctx * (size_t)V);
        if (!d->r || !d->c) return QV_ERR_NOMEM;
        d->ctx = ctx, d->V = V;
    }
    memcpy(d->r + (size_t)p * V, lr, sizeof(float) * (size_t)n * V);
    memcpy(d->c + (size_t)p * V, lc, sizeof(float) * (size_t)n * V);
    if (p + n < ctx) return QV_OK;
    QV_TRY(dump_side(d->dir, "ref", index, ids, ctx, V, d->r));
    return dump_side(d->dir, "cand", index, ids, ctx, V, d->c);
}

static qv_status make_dir(const char *path)
{
    if (mkdir(path, 0777) != 0 && errno != EEXIST) return qv_fail(QV_ERR_IO, "%s: cannot create the folder: %s", path, strerror(errno));
    return QV_OK;
}

static void print_ci(const char *name, double v, double lo, double hi)
{
    if (isnan(lo)) printf("  %-22s %.6g  (95%% CI: needs >= 2 chunks)\n", name, v);
    else printf("  %-22s %.6g  [%.6g, %.6g]\n", name, v, lo, hi);
}

void qv_compare_print(const qv_cmp_summary *s, const qv_tok *tok)
{
    printf("compare: %d chunks, %" PRId64 " scored positions\n", s->n_chunks, s->n_pos);
    print_ci("ppl ref", s->ppl_ref.ppl, s->ppl_ref.ppl_lo, s->ppl_ref.ppl_hi);
    print_ci("ppl cand", s->ppl_cand.ppl, s->ppl_cand.ppl_lo, s->ppl_cand.ppl_hi);
    print_ci("ln(ppl_C/ppl_R)", s->ln_ratio, s->ln_ratio_lo, s->ln_ratio_hi);
    print_ci("KLD mean", s->kld_mean, s->kld_mean_lo, s->kld_mean_hi);
    printf("  %-22s median %.4g  p90 %.4g  p99 %.4g  p99.9 %.4g\n", "KLD", s->kld_median, s->kld_p90, s->kld_p99, s->kld_p999);
    char *txt = NULL;
    size_t tl = 0;
    if (tok && qv_tok_decode(tok, &s->kld_max_token, 1, &txt, &tl) != QV_OK) txt = NULL;
    printf("  %-22s %.6g at token %" PRId64 " (chunk %d, offset %d): id %d", "KLD max", s->kld_max, s->kld_max_pos,
           s->kld_max_chunk, s->kld_max_offset, s->kld_max_token);
    if (txt) {
        printf(" \"");
        for (size_t i = 0; i < tl; i++) putchar((unsigned char)txt[i] < 0x20 ? '?' : txt[i]);
        printf("\"");
    }
    printf("\n");
    free(txt);
    print_ci("top-1 agreement", s->top1, s->top1_lo, s->top1_hi);
    printf("  %-22s mean %.4g  rms %.4g  p1 %.4g  p99 %.4g\n", "delta p (C-R, y)", s->dp_mean, s->dp_rms, s->dp_p1, s->dp_p99);
}

qv_status qv_compare_exec(const qv_compare_args *a, qv_evcli_pair *p, cJSON **result, qv_cmp_summary *sum)
{
    int32_t *ids = NULL;
    int64_t n_ids = 0;
    *result = NULL;
    QV_TRY(qv_compare_tokenize(p->mr, a->text, a->bos, a->max_tokens, &ids, &n_ids, NULL));
    int maxp = p->mr->cfg.max_position_embeddings;
    if (p->mc->cfg.max_position_embeddings < maxp) maxp = p->mc->cfg.max_position_embeddings;
    int ctx = a->ctx > 0 ? a->ctx : qv_compare_default_ctx(maxp);
    qv_cmp_meta meta = {0};
    meta.model = (char *)p->mr->dir;
    meta.cand_model = p->mc != p->mr ? (char *)p->mc->dir : NULL;
    meta.ref = (char *)a->pair.ref;
    meta.cand = (char *)a->pair.cand;
    meta.quantized = (char *)a->pair.quantized;
    meta.text = (char *)(a->text ? a->text : "<built-in text>");
    meta.command = a->cmd;
    meta.ctx = ctx;
    meta.bos = a->bos;
    meta.max_tokens = a->max_tokens;
    meta.n_tokens = n_ids;
    meta.n_chunks_total = qv_cmp_n_chunks(n_ids, ctx);
    snprintf(meta.ids_hash, sizeof meta.ids_hash, "%016" PRIx64, qv_ids_hash(ids, n_ids));
    meta.shard_i = a->shard_i;
    meta.shard_n = a->shard_n;
    qv_cmp_set set = {0};
    unsigned char *have = NULL;
    qv_status st = QV_OK;
    if (meta.n_chunks_total < 1)
        st = qv_fail(QV_ERR_INPUT, "%s: %lld tokens, fewer than one chunk of %d (lower --ctx)",
                     meta.text, (long long)n_ids, ctx);
    if (st == QV_OK && a->resume && a->json && qv_path_exists(a->json)) {
        cJSON *old = NULL;
        qv_cmp_meta om;
        const char *what = NULL;
        st = qv_json_read(a->json, &old);
        if (st == QV_OK) st = qv_cmp_from_json(old, a->json, &om, &set);
        cJSON_Delete(old);
        if (st == QV_OK) {
            if (qv_cmp_meta_differs(&om, &meta, &what) || om.shard_i != meta.shard_i || om.shard_n != meta.shard_n)
                st = qv_fail(QV_ERR_INPUT, "%s: --resume: the file is from a different run (%s differs)", a->json,
                             what ? what : "shard");
            qv_cmp_meta_free(&om);
        }
        if (st == QV_OK) {
            have = qv_calloc((size_t)meta.n_chunks_total, 1);
            if (!have) st = QV_ERR_NOMEM;
            for (int i = 0; st == QV_OK && i < set.n; i++) have[set.v[i].index] = 1;
            if (st == QV_OK && !a->quiet && set.n > 0)
                fprintf(stderr, "qvet compare: resuming: %d chunks already in %s\n", set.n, a->json);
        }
    }
    if (st == QV_OK) {
        run_ctx rc = {.set = &set, .meta = &meta, .json = a->json};
        qv_evcli_progress pg;
        qv_evcli_progress_init(&pg, "compare");
        qv_cmp_opts o = {.ctx = ctx, .shard_i = a->shard_i, .shard_n = a->shard_n, .have = have,
                         .max_new_chunks = a->max_chunks, .on_chunk = on_chunk, .user = &rc,
                         .progress = qv_evcli_progress_cb, .progress_user = &pg};
        dump_ctx dc = {.dir = a->dump_logits};
        if (a->dump_logits) {
            char *r = qv_path_join(a->dump_logits, "ref"), *c = qv_path_join(a->dump_logits, "cand");
            st = r && c ? QV_OK : QV_ERR_NOMEM;
            if (st == QV_OK) st = make_dir(a->dump_logits);
            if (st == QV_OK) st = make_dir(r);
            if (st == QV_OK) st = make_dir(c);
            free(r), free(c);
            o.on_logits = on_logits, o.logits_user = &dc;
        }
        if (st == QV_OK) st = qv_eval_compare(p->er, p->ec, ids, n_ids, &o);
        free(dc.r), free(dc.c);
        qv_evcli_progress_end(&pg);
    }
    if (st == QV_OK && set.n == 0)
        st = qv_fail(QV_ERR_INPUT, "compare: shard %d/%d holds none of the %d chunks", a->shard_i, a->shard_n, meta.n_chunks_total);
    if (st == QV_OK) st = qv_cmp_to_json(&meta, &set, result);
    if (st == QV_OK && sum) st = qv_cmp_summarize(&set, sum);
    if (st == QV_OK && a->json) st = qv_json_write_atomic(a->json, *result);
    if (st != QV_OK && *result) {
        cJSON_Delete(*result);
        *result = NULL;
    }
    free(have);
    free(ids);
    qv_cmp_set_free(&set);
    return st;
}

/* Flags shared by compare, niah and validate: returns 1 if argv[*i] was one of them, -1 on a
 * bad value (message printed), 0 if not ours. */
int qv_evcli_common_flag(const char *cmd, int argc, char **argv, int *i, qv_evcli_pair_opts *o)
{
    const char *a = argv[*i];
    const char *names[] = {"--model", "--cand-model", "--ref", "--cand", "--quantized", "--threads", "--cand-round-bits", NULL};
    int k = 0;
    while (names[k] && strcmp(a, names[k]) != 0) k++;
    if (!names[k]) return 0;
    if (*i + 1 >= argc) {
        qv_cli_usage_error(cmd, "%s needs a value", a);
        return -1;
    }
    const char *v = argv[++*i];
    char *end;
    switch (k) {
    case 0: o->model_dir = v; break;
    case 1: o->cand_model_dir = v; break;
    case 2: o->ref = v; break;
    case 3: o->cand = v; break;
    case 4: o->quantized = v; break;
    case 5:
        o->threads = (int)strtol(v, &end, 10);
        if (*end || o->threads < 0) {
            qv_cli_usage_error(cmd, "--threads: '%s' is not a count", v);
            return -1;
        }
        break;
    default:
        o->cand_round_bits = (int)strtol(v, &end, 10);
        if (*end || o->cand_round_bits < 0 || o->cand_round_bits > 23) {
            qv_cli_usage_error(cmd, "--cand-round-bits: '%s' is not in 0..23", v);
            return -1;
        }
    }
    return 1;
}

int qv_evcli_int_arg(const char *cmd, const char *flag, const char *v, long long lo, long long *out)
{
    char *end;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || x < lo) {
        qv_cli_usage_error(cmd, "%s: '%s' is not an integer >= %lld", flag, v, lo);
        return -1;
    }
    *out = x;
    return 0;
}

/* compare --ref-logits R --cand-logits C [--ids IDS] [--json F]: the same statistics from dumps. */
static int compare_dumps(const char *R, const char *C, const char *ids, const char *json, char *cmd)
{
    qv_cmp_set set = {0};
    run_ctx rc = {.set = &set};
    qv_evcli_progress pg;
    qv_evcli_progress_init(&pg, "compare");
    qv_cmp_opts o = {.on_chunk = on_chunk, .user = &rc, .progress = qv_evcli_progress_cb, .progress_user = &pg};
    int n_chunks = 0, ctx = 0, V = 0;
    uint64_t h = 0;
    qv_status st = qv_eval_compare_dumps(R, C, ids, &o, &n_chunks, &ctx, &V, &h);
    qv_evcli_progress_end(&pg);
    cJSON *res = NULL;
    qv_cmp_summary sum;
    if (st == QV_OK) {
        qv_cmp_meta meta = {.model = (char *)R, .cand_model = (char *)C, .ref = "logits", .cand = "logits",
                            .text = (char *)(ids ? ids : "<ids in the dumps>"), .command = cmd, .ctx = ctx, .bos = 0,
                            .n_tokens = (int64_t)n_chunks * ctx, .n_chunks_total = n_chunks, .shard_n = 1};
        snprintf(meta.ids_hash, sizeof meta.ids_hash, "%016" PRIx64, h);
        st = qv_cmp_to_json(&meta, &set, &res);
    }
    if (st == QV_OK) st = qv_cmp_summarize(&set, &sum);
    if (st == QV_OK && json) st = qv_json_write_atomic(json, res);
    if (st == QV_OK) {
        printf("compare: logit dumps %s (ref) vs %s (cand), ctx %d, vocab %d\n", R, C, ctx, V);
        qv_compare_print(&sum, NULL);
        if (json) printf("wrote %s\n", json);
    }
    cJSON_Delete(res);
    qv_cmp_set_free(&set);
    return st == QV_OK ? QV_EXIT_OK : qv_cli_report(st);
}

int qv_cmd_compare(int argc, char **argv)
{
    if (qv_cli_wants_help(argc, argv)) {
        qv_cli_print_help(qv_find_command("compare"));
        return QV_EXIT_OK;
    }
    qv_compare_args a = {.pair = {.ref = "ref-fp32", .cand = "ref-qoq", .cand_round_bits = -1}, .bos = 1, .shard_n = 1};
    const char *ref_logits = NULL, *cand_logits = NULL, *ids_file = NULL;
    int engine_flags = 0;
    for (int i = 1; i < argc; i++) {
        const char *f0 = argv[i];
        if (i + 1 < argc && (!strcmp(f0, "--ref-logits") || !strcmp(f0, "--cand-logits") || !strcmp(f0, "--ids"))) {
            const char **dst = f0[2] == 'r' ? &ref_logits : f0[2] == 'c' ? &cand_logits : &ids_file;
            *dst = argv[++i];
            continue;
        }
        if (strcmp(f0, "--json") != 0) engine_flags++;
        int r = qv_evcli_common_flag("compare", argc, argv, &i, &a.pair);
        if (r < 0) return QV_EXIT_USAGE;
        if (r) continue;
        const char *f = argv[i];
        long long x;
        if (!strcmp(f, "--no-bos")) a.bos = 0;
        else if (!strcmp(f, "--resume")) a.resume = 1;
        else if (i + 1 >= argc) return qv_cli_usage_error("compare", "unknown flag or missing value: %s", f);
        else if (!strcmp(f, "--text")) a.text = argv[++i];
        else if (!strcmp(f, "--json")) a.json = argv[++i];
        else if (!strcmp(f, "--dump-logits")) a.dump_logits = argv[++i];
        else if (!strcmp(f, "--ctx")) {
            if (qv_evcli_int_arg("compare", f, argv[++i], 2, &x)) return QV_EXIT_USAGE;
            a.ctx = (int)x;
        } else if (!strcmp(f, "--max-tokens")) {
            if (qv_evcli_int_arg("compare", f, argv[++i], 2, &x)) return QV_EXIT_USAGE;
            a.max_tokens = x;
        } else if (!strcmp(f, "--max-chunks")) { /* stop after N new chunks (partial result) */
            if (qv_evcli_int_arg("compare", f, argv[++i], 1, &x)) return QV_EXIT_USAGE;
            a.max_chunks = (int)x;
        } else if (!strcmp(f, "--shard")) {
            if (qv_evcli_parse_shard(argv[++i], &a.shard_i, &a.shard_n))
                return qv_cli_usage_error("compare", "--shard: '%s' is not i/n with 0 <= i < n", argv[i]);
        } else return qv_cli_usage_error("compare", "unknown flag: %s", f);
    }
    if (ref_logits || cand_logits || ids_file) {
        if (!ref_logits || !cand_logits)
            return qv_cli_usage_error("compare", "logit dumps need both --ref-logits R and --cand-logits C");
        if (engine_flags)
            return qv_cli_usage_error("compare", "with --ref-logits/--cand-logits only --ids and --json apply (the dumps fix "
                                                 "the model, engines, text and chunks)");
        char *cmd = qv_evcli_cmdline(argc, argv);
        int rc = compare_dumps(ref_logits, cand_logits, ids_file, a.json, cmd);
        free(cmd);
        return rc;
    }
    if (a.resume && !a.json) return qv_cli_usage_error("compare", "--resume needs --json FILE (the results to resume)");
    a.cmd = qv_evcli_cmdline(argc, argv);
    qv_evcli_pair p;
    qv_status st = qv_evcli_pair_open(&a.pair, &p);
    cJSON *res = NULL;
    qv_cmp_summary sum;
    if (st == QV_OK) st = qv_compare_exec(&a, &p, &res, &sum);
    if (st == QV_OK) {
        qv_compare_print(&sum, p.mr->tok);
        if (a.json) printf("wrote %s\n", a.json);
    }
    cJSON_Delete(res);
    qv_evcli_pair_close(&p);
    free(a.cmd);
    return st == QV_OK ? QV_EXIT_OK : qv_cli_report(st);
}
