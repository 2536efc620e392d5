/* qvet trace: error attribution (EVALS.md "Error attribution"; docs/trace.md). Runs R, the
 * candidate and (for a quantized candidate) the candidate with an FP16 KV cache over the same
 * tokens with streaming per-layer capture; optionally an ablation sweep over a short prefix.
 * Writes DIR/report.json (+ --json F) and DIR/report.html. Exit 0 ok, 1 a NaN/Inf produced by an
 * engine, 2 usage/input, 3 internal. */
#include <cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "cli.h"
#include "eval_cmds.h"
#include "qvet/eval_trace.h"
#include "qvet/fileio.h"

#define MAX_ABL 520

typedef struct {
    char label[48];
    int fp_kv;
    qv_layer_mask w, a;
} abl_spec;

/* "3", "0-3", "1,4,6-7", "all" -> mask over L layers; -1 on a bad list */
static int parse_layers(const char *s, int L, qv_layer_mask *m)
{
    memset(m, 0, sizeof *m);
    if (!strcmp(s, "all")) {
        for (int l = 0; l < L; l++) qv_layer_mask_set(m, l);
        return 0;
    }
    const char *p = s;
    while (*p) {
        char *e;
        long a = strtol(p, &e, 10), b = a;
        if (e == p) return -1;
        p = e;
        if (*p == '-') {
            b = strtol(++p, &e, 10);
            if (e == p) return -1;
            p = e;
        }
        if (a < 0 || b < a || b >= L) return -1;
        for (long l = a; l <= b; l++) qv_layer_mask_set(m, (int)l);
        if (*p == ',') p++;
        else if (*p) return -1;
    }
    return 0;
}

/* one --ablate value -> specs appended; "auto": kv, then w:l and a:l for every layer */
static int parse_ablate(const char *v, int L, abl_spec *sp, int *n)
{
    if (!strcmp(v, "auto")) {
        if (*n + 1 + 2 * L > MAX_ABL) return -1;
        abl_spec *k = &sp[(*n)++];
        memset(k, 0, sizeof *k);
        snprintf(k->label, sizeof k->label, "kv");
        k->fp_kv = 1;
        for (int w = 0; w < 2; w++)
            for (int l = 0; l < L; l++) {
                abl_spec *x = &sp[(*n)++];
                memset(x, 0, sizeof *x);
                snprintf(x->label, sizeof x->label, "%s:%d", w ? "a" : "w", l);
                qv_layer_mask_set(w ? &x->a : &x->w, l);
            }
        return 0;
    }
    if (*n >= MAX_ABL) return -1;
    abl_spec *x = &sp[*n];
    memset(x, 0, sizeof *x);
    snprintf(x->label, sizeof x->label, "%s", v);
    if (!strcmp(v, "kv")) x->fp_kv = 1;
    else if (!strncmp(v, "w:", 2)) {
        if (parse_layers(v + 2, L, &x->w)) return -1;
    } else if (!strncmp(v, "a:", 2)) {
        if (parse_layers(v + 2, L, &x->a)) return -1;
    } else return -1;
    (*n)++;
    return 0;
}

typedef struct {
    const qv_evcli_pair_opts *po;
    const qv_model *m;
    const abl_spec *sp; /* [n]; open index 0 = the candidate as is, i >= 1 = sp[i - 1] */
} abl_ctx;

static qv_engine_opts cand_opts(const qv_evcli_pair_opts *po)
{
    qv_engine_opts o;
    qv_engine_opts_init(&o);
    o.threads = po->threads;
    o.quantized_path = po->quantized;
    return o;
}

static qv_status abl_open(void *user, int i, qv_engine **e)
{
    abl_ctx *c = user;
    qv_engine_opts o = cand_opts(c->po);
    if (i > 0) {
        const abl_spec *x = &c->sp[i - 1];
        o.fp_kv = x->fp_kv, o.fp_weights = x->w, o.fp_acts = x->a;
    }
    qv_status st = qv_engine_open(c->po->cand, c->m, &o, e);
    return st == QV_OK ? st : qv_fail_prefix(st, "trace: ablation %s", i ? c->sp[i - 1].label : "(none)");
}

static qv_status tokenize(const qv_model *m, const char *file, int bos, int32_t **ids, int64_t *n_ids)
{
    char *text = NULL;
    size_t len = 0, n = 0;
    *ids = NULL;
    if (!m->tok) return qv_fail(QV_ERR_INPUT, "%s: the model has no tokenizer.json", m->dir);
    QV_TRY(qv_evcli_text(file, strncmp(m->dir, "<synthetic", 10) == 0, &text, &len));
    qv_status st = qv_tok_encode(m->tok, text, len, bos && qv_tok_bos_id(m->tok) >= 0, ids, &n);
    free(text);
    if (st != QV_OK) return qv_fail_prefix(st, "%s", file ? file : "<built-in text>");
    *n_ids = (int64_t)n;
    return QV_OK;
}

static void print_summary(const cJSON *j)
{
    const cJSON *vs = cJSON_GetObjectItem(j, "variants");
    for (const cJSON *v = vs ? vs->child : NULL; v; v = v->next) {
        const cJSON *k = cJSON_GetObjectItem(v, "kld"), *r = cJSON_GetObjectItem(v, "layer_ranking");
        const cJSON *hr = cJSON_GetObjectItem(v, "head_ranking"), *hs = cJSON_GetObjectItem(v, "heads");
        printf("%s: KLD mean %.5g p99 %.5g max %.5g, top-1 %.4f\n", cJSON_GetObjectItem(v, "label")->valuestring,
               cJSON_GetObjectItem(k, "mean")->valuedouble, cJSON_GetObjectItem(k, "p99")->valuedouble,
               cJSON_GetObjectItem(k, "max")->valuedouble, cJSON_GetObjectItem(k, "top1_agreement")->valuedouble);
        printf("  layers by first jump:");
        for (const cJSON *x = r ? r->child : NULL; x; x = x->next) printf(" %d", x->valueint);
        printf("\n  worst heads (layer.head rel err):");
        int i = 0, nh = cJSON_GetArraySize(hs) / cJSON_GetArraySize(cJSON_GetObjectItem(v, "layers"));
        for (const cJSON *x = hr ? hr->child : NULL; x && i < 5; x = x->next, i++) {
            int l = cJSON_GetArrayItem(x, 0)->valueint, h = cJSON_GetArrayItem(x, 1)->valueint;
            const cJSON *e = cJSON_GetObjectItem(cJSON_GetArrayItem(hs, l * nh + h), "rel_err");
            printf(" %d.%d %.4g", l, h, cJSON_IsNumber(e) ? e->valuedouble : NAN);
        }
        printf("\n");
    }
    const cJSON *ab = cJSON_GetObjectItem(j, "ablation");
    if (ab) {
        printf("ablation over %d tokens (cand KLD %.5g), share of KLD removed:\n", cJSON_GetObjectItem(ab, "tokens")->valueint,
               cJSON_GetObjectItem(ab, "cand_kld")->valuedouble);
        int i = 0;
        for (const cJSON *e = cJSON_GetObjectItem(ab, "entries")->child; e && i < 10; e = e->next, i++) {
            const cJSON *s = cJSON_GetObjectItem(e, "share");
            printf("  %-10s KLD %.5g  share %.4f\n", cJSON_GetObjectItem(e, "label")->valuestring,
                   cJSON_GetObjectItem(e, "kld")->valuedouble, cJSON_IsNumber(s) ? s->valuedouble : NAN);
        }
    }
}

int qv_cmd_trace(int argc, char **argv)
{
    if (qv_cli_wants_help(argc, argv)) {
        qv_cli_print_help(qv_find_command("trace"));
        return QV_EXIT_OK;
    }
    qv_evcli_pair_opts po = {.ref = "ref-fp32", .cand = "ref-qoq", .cand_round_bits = -1};
    const char *text = NULL, *json = NULL, *report = NULL, *positions = NULL;
    const char *ablate[64];
    int n_ablate = 0, bos = 1, no_fpkv = 0;
    long long ctx = 0, top = 10, abl_tokens = 512, piece = 256;
    for (int i = 1; i < argc; i++) {
        int r = qv_evcli_common_flag("trace", argc, argv, &i, &po);
        if (r < 0) return QV_EXIT_USAGE;
        if (r) continue;
        const char *f = argv[i];
        if (!strcmp(f, "--no-bos")) bos = 0;
        else if (!strcmp(f, "--no-fp-kv")) no_fpkv = 1;
        else if (i + 1 >= argc) return qv_cli_usage_error("trace", "unknown flag or missing value: %s", f);
        else if (!strcmp(f, "--text")) text = argv[++i];
        else if (!strcmp(f, "--json")) json = argv[++i];
        else if (!strcmp(f, "--report")) report = argv[++i];
        else if (!strcmp(f, "--positions")) positions = argv[++i];
        else if (!strcmp(f, "--ablate")) {
            if (n_ablate == 64) return qv_cli_usage_error("trace", "more than 64 --ablate flags");
            ablate[n_ablate++] = argv[++i];
        } else if (!strcmp(f, "--ctx")) {
            if (qv_evcli_int_arg("trace", f, argv[++i], 2, &ctx)) return QV_EXIT_USAGE;
        } else if (!strcmp(f, "--top")) {
            if (qv_evcli_int_arg("trace", f, argv[++i], 1, &top)) return QV_EXIT_USAGE;
        } else if (!strcmp(f, "--ablate-tokens")) {
            if (qv_evcli_int_arg("trace", f, argv[++i], 2, &abl_tokens)) return QV_EXIT_USAGE;
        } else if (!strcmp(f, "--piece")) {
            if (qv_evcli_int_arg("trace", f, argv[++i], 1, &piece)) return QV_EXIT_USAGE;
        } else return qv_cli_usage_error("trace", "unknown flag: %s", f);
    }
    if (!report) return qv_cli_usage_error("trace", "--report DIR is required (report.json and report.html go there)");
    if (top > 1000) top = 1000;
    int pos_lo = 0, pos_hi = -1;
    if (positions) {
        char *e;
        long a = strtol(positions, &e, 10), b;
        if (e == positions || *e != '-' || a < 0) return qv_cli_usage_error("trace", "--positions: '%s' is not A-B", positions);
        const char *q = e + 1;
        b = strtol(q, &e, 10);
        if (e == q || *e || b < a) return qv_cli_usage_error("trace", "--positions: '%s' is not A-B with A <= B", positions);
        pos_lo = (int)a, pos_hi = (int)b;
    }
    int quantized_cand = strstr(po.cand, "-qoq") != NULL;
    if (n_ablate && !quantized_cand)
        return qv_cli_usage_error("trace", "--ablate needs a quantized candidate (ref-qoq or gpu-qoq), not '%s'", po.cand);

    double t0 = qv_evcli_now(), t_main = 0, t_abl = 0;
    char *cmd = qv_evcli_cmdline(argc, argv);
    qv_evcli_pair p;
    qv_status st = qv_evcli_pair_open(&po, &p);
    int32_t *ids = NULL;
    int64_t n_ids = 0;
    abl_spec *sp = NULL;
    int n_sp = 0;
    qv_engine *e_kv = NULL;
    qv_trace_result res = {0};
    cJSON *j = NULL;
    char *jpath = NULL, *hpath = NULL;
    double *akld = NULL;
    const char **alab = NULL;
    if (st == QV_OK) st = tokenize(p.mr, text, bos, &ids, &n_ids);
    int L = st == QV_OK ? p.mr->cfg.num_layers : 0;
    if (st == QV_OK && n_ablate) {
        sp = qv_calloc(MAX_ABL, sizeof *sp);
        if (!sp) st = QV_ERR_NOMEM;
        for (int i = 0; st == QV_OK && i < n_ablate; i++)
            if (parse_ablate(ablate[i], L, sp, &n_sp))
                st = qv_fail(QV_ERR_USAGE, "trace: --ablate '%s': expected kv, w:LAYERS, a:LAYERS or auto (LAYERS: "
                             "0-%d, lists like 1,3-5, or all)", ablate[i], L - 1);
    }
    if (st == QV_OK) {
        int maxp = p.mr->cfg.max_position_embeddings;
        if (p.mc->cfg.max_position_embeddings < maxp) maxp = p.mc->cfg.max_position_embeddings;
        if (ctx == 0) ctx = n_ids < maxp ? n_ids : maxp;
    }
    if (st == QV_OK && !no_fpkv && quantized_cand) {
        qv_engine_opts o = cand_opts(&po);
        o.fp_kv = 1;
        st = qv_engine_open(po.cand, p.mc, &o, &e_kv);
    }
    qv_evcli_progress pg;
    if (st == QV_OK) {
        char cl[64], kl[80];
        snprintf(cl, sizeof cl, "%s", po.cand);
        snprintf(kl, sizeof kl, "%s+fp_kv", po.cand);
        qv_trace_variant vars[2] = {{cl, p.ec}, {kl, e_kv}};
        qv_trace_opts o = {.ctx = (int)ctx, .pos_lo = pos_lo, .pos_hi = pos_hi, .piece = (int)piece, .top_k = (int)top,
                           .progress = qv_evcli_progress_cb, .progress_user = &pg};
        qv_evcli_progress_init(&pg, "trace");
        t_main = qv_evcli_now();
        st = qv_trace_run(p.er, vars, e_kv ? 2 : 1, ids, n_ids, &o, &res);
        qv_evcli_progress_end(&pg);
        t_main = qv_evcli_now() - t_main;
    }
    if (e_kv) qv_engine_close(e_kv);
    int atok = 0;
    if (st == QV_OK && n_sp) {
        atok = (int)(abl_tokens < ctx ? abl_tokens : ctx);
        akld = qv_calloc((size_t)n_sp + 1, sizeof(double));
        alab = qv_calloc((size_t)n_sp + 1, sizeof(char *));
        if (!akld || !alab) st = QV_ERR_NOMEM;
        for (int i = 0; alab && i < n_sp; i++) alab[i + 1] = sp[i].label;
        if (alab) alab[0] = "(none)";
        abl_ctx ac = {&po, p.mc, sp};
        qv_evcli_progress_init(&pg, "trace ablation");
        t_abl = qv_evcli_now();
        if (st == QV_OK) st = qv_trace_ablate(p.er, n_sp + 1, abl_open, &ac, ids, atok, (int)piece, qv_evcli_progress_cb, &pg, akld);
        qv_evcli_progress_end(&pg);
        t_abl = qv_evcli_now() - t_abl;
    }
    if (st == QV_OK) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        char hash[17];
        snprintf(hash, sizeof hash, "%016" PRIx64, qv_ids_hash(ids, ctx));
        qv_trace_meta m = {.model = p.mr->dir, .ref = po.ref, .cand = po.cand, .quantized = po.quantized,
                           .text = text ? text : "<built-in text>", .command = cmd, .n_tokens = ctx, .ids_hash = hash,
                           .n_abl = n_sp ? n_sp + 1 : 0, .abl_tokens = atok, .abl_label = alab, .abl_kld = akld,
                           .seconds = qv_evcli_now() - t0, .main_seconds = t_main, .ablation_seconds = t_abl, .peak_rss_kb = ru.ru_maxrss};
        st = qv_trace_to_json(&res, &m, ids, p.mr->tok, (int)top, &j);
    }
    if (st == QV_OK && mkdir(report, 0777) != 0 && !qv_is_dir(report))
        st = qv_fail(QV_ERR_IO, "%s: cannot create the report folder", report);
    if (st == QV_OK) {
        jpath = qv_path_join(report, "report.json");
        hpath = qv_path_join(report, "report.html");
        if (!jpath || !hpath) st = QV_ERR_NOMEM;
    }
    if (st == QV_OK) st = qv_json_write_atomic(jpath, j);
    if (st == QV_OK && json) st = qv_json_write_atomic(json, j);
    if (st == QV_OK) st = qv_trace_html(j, hpath);
    if (st == QV_OK) {
        print_summary(j);
        printf("time %.1f s (streaming pass %.1f s, ablation %.1f s), peak RSS %.0f MB\nwrote %s, %s%s%s\n", qv_evcli_now() - t0, t_main, t_abl,
               cJSON_GetObjectItem(cJSON_GetObjectItem(j, "timing"), "peak_rss_kb")->valuedouble / 1024.0, jpath, hpath,
               json ? ", " : "", json ? json : "");
    }
    cJSON_Delete(j);
    qv_trace_result_free(&res);
    free(ids), free(sp), free(akld), free(alab), free(jpath), free(hpath), free(cmd);
    if (p.mr || p.er) qv_evcli_pair_close(&p);
    return st == QV_OK ? QV_EXIT_OK : qv_cli_report(st);
}
