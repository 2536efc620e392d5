/* qvet quantize: QoQ calibration (quant/) -> quantized checkpoint (qmodel). With every transform
 * switched off it is plain round-to-nearest (method "rtn" in the metadata). Progress per layer
 * with ETA on stderr when it is a TTY. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "qvet/fileio.h"
#include "qvet/qmodel.h"
#include "qvet/quant.h"
#include "qvet/tokenizer.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct { double t0; } progress;

static void on_progress(void *user, int done, int total, const char *what)
{
    progress *p = user;
    double el = now_s() - p->t0, eta = done > 0 ? el / done * (total - done) : 0;
    fprintf(stderr, "\rquantize: %-10s layer %d/%d  %.1fs elapsed  ETA %.1fs   ", what, done, total, el, eta);
    if (done == total && !strcmp(what, "search")) fputc('\n', stderr);
}

static int parse_int(const char *cmd, const char *flag, const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi)
        return qv_cli_usage_error(cmd, "%s expects an integer in [%ld, %ld], got '%s'", flag, lo, hi, v);
    *out = x;
    return 0;
}

static qv_status run(const char *model_dir, const char *calib, const char *out_path, qv_qformat fmt, int kv,
                     const qv_quant_opts *o, int verbose)
{
    qv_model *m = NULL;
    QV_TRY(model_dir ? qv_model_open(model_dir, &m) : qv_cli_default_model(&m));
    char *text = NULL;
    size_t text_len = 0;
    int32_t *ids = NULL, *samples = NULL;
    size_t n_ids = 0;
    qv_qwork *w = NULL;
    qv_qmodel *qm = NULL;
    qv_quant_report rep = {0};
    qv_status st = QV_OK;
    if (!m->tok) st = qv_fail(QV_ERR_INPUT, "quantize: model %s has no tokenizer to read the calibration text", m->dir);
    if (st == QV_OK) st = qv_read_file(calib, (size_t)1 << 31, &text, &text_len);
    if (st == QV_OK) {
        st = qv_tok_encode(m->tok, text, text_len, 0, &ids, &n_ids);
        if (st != QV_OK) st = qv_fail_prefix(st, "quantize: tokenizing %s", calib);
    }
    if (st == QV_OK) {
        st = qv_quant_sample(ids, (int64_t)n_ids, o->samples, o->seqlen, o->seed, &samples);
        if (st != QV_OK) st = qv_fail_prefix(st, "%s", calib);
    }
    if (st == QV_OK) st = qv_quant_calibrate(m, samples, o, &w, &rep);
    if (st == QV_OK) {
        int L = w->L;
        const float **W = qv_calloc((size_t)L * QV_QL_COUNT, sizeof(float *));
        const float **B = qv_calloc((size_t)L * QV_QL_COUNT, sizeof(float *));
        const float **in = qv_calloc((size_t)L, sizeof(float *)), **post = qv_calloc((size_t)L, sizeof(float *));
        if (!W || !B || !in || !post) st = QV_ERR_NOMEM;
        for (int l = 0; st == QV_OK && l < L; l++) {
            qv_qwork_layer *d = &w->layers[l];
            const float **Wl = W + (size_t)l * QV_QL_COUNT, **Bl = B + (size_t)l * QV_QL_COUNT;
            Wl[QV_QL_Q] = d->wq, Wl[QV_QL_K] = d->wk, Wl[QV_QL_V] = d->wv, Wl[QV_QL_O] = d->wo;
            Wl[QV_QL_GATE] = d->w_gate, Wl[QV_QL_UP] = d->w_up, Wl[QV_QL_DOWN] = d->w_down;
            Bl[QV_QL_Q] = d->bq, Bl[QV_QL_K] = d->bk, Bl[QV_QL_V] = d->bv, Bl[QV_QL_O] = d->bo;
            in[l] = d->input_norm, post[l] = d->post_norm;
        }
        char transforms[2048], beta_o[256] = "", beta_d[256] = "", gptq[320] = "false";
        if (o->gptq)
            snprintf(gptq, sizeof gptq,
                     "{\"percdamp\":%g,\"block\":%d,\"act_order\":%s,\"hessian_rows\":%ld,"
                     "\"scales\":\"fixed before the sweep by the format's quantizer (clipped weights)\","
                     "\"err_ratio\":%.4f}",
                     (double)o->gptq_opts.percdamp, o->gptq_opts.block, o->gptq_opts.act_order ? "true" : "false",
                     rep.gptq_rows, rep.gptq_err_rtn > 0 ? rep.gptq_err / rep.gptq_err_rtn : 1.0);
        for (int l = 0; st == QV_OK && l < L; l++) {
            size_t a = strlen(beta_o), b = strlen(beta_d);
            snprintf(beta_o + a, sizeof beta_o - a, "%s%.2f", l ? "," : "", rep.beta_o[l]);
            snprintf(beta_d + b, sizeof beta_d - b, "%s%.2f", l ? "," : "", rep.beta_down[l]);
        }
        snprintf(transforms, sizeof transforms,
                 "{\"smooth_attn\":%s,\"rotate\":%s,\"smooth\":%s,\"clip\":%s,\"gptq\":%s,\"rotate_v\":%s,\"seed\":%llu,"
                 "\"calib_tokens_text\":%zu}",
                 o->smooth_attn ? "{\"alpha\":0.5,\"lambda\":\"max(max|K|,1e-5)^alpha, RoPE-pair max\"}" : "false",
                 o->rotate ? "{\"kind\":\"block-diagonal normalized Hadamard, random signs\",\"norms_folded\":true}" : "false",
                 o->smooth ? "{\"sites\":[\"o_proj<-v_proj\",\"down_proj<-up_proj\"],\"beta_grid\":\"0.05..0.95 step 0.05 + identity\"}" : "false",
                 o->clip ? "{\"granularity\":\"output channel (g128: each group's range)\",\"grid\":\"1.00..0.80 step 0.02\",\"error\":\"sum (XW^T - A8(X)Q(W)^T)^2\"}" : "false",
                 gptq,
                 o->rotate_v ? "{\"kind\":\"v rows per KV head, o_proj inputs per query head: normalized head-size Hadamard, no signs\",\"o_proj_smoothing\":false}" : "false",
                 (unsigned long long)o->seed, n_ids);
        /* the per-layer betas are long; append when they fit */
        if (o->smooth && strlen(transforms) + strlen(beta_o) + strlen(beta_d) + 40 < sizeof transforms) {
            transforms[strlen(transforms) - 1] = '\0';
            size_t a = strlen(transforms);
            snprintf(transforms + a, sizeof transforms - a, ",\"beta_o\":[%s],\"beta_down\":[%s]}", beta_o, beta_d);
        }
        qv_qmodel_meta meta;
        memset(&meta, 0, sizeof meta);
        meta.transforms_json = transforms;
        char hash[17];
        qv_qmodel_hash_text(text, text_len, hash);
        snprintf(meta.calib_hash, sizeof meta.calib_hash, "%s", hash);
        snprintf(meta.calib_hash_algo, sizeof meta.calib_hash_algo, "fnv1a64");
        meta.calib_samples = o->samples;
        meta.calib_seqlen = o->seqlen;
        int any = o->smooth_attn || o->rotate || o->smooth || o->clip || o->gptq || o->rotate_v;
        snprintf(meta.method, sizeof meta.method, "%s", any ? "qoq" : "rtn");
        qv_qmodel_fp32_src src = {w->embed, w->lm_head, w->final_norm, in, post, W, B, NULL};
        if (st == QV_OK) st = qv_qmodel_from_fp32(m, &src, fmt, kv, &meta, &qm);
        if (st == QV_OK) st = qv_quant_install_gptq(w, qm);
        if (st == QV_OK) st = qv_qmodel_write(qm, out_path);
        free(W), free(B), free(in), free(post);
    }
    if (st == QV_OK && verbose && rep.err_rtn) {
        fprintf(stderr, "quantize: GPTQ output error per linear (sum over rows of (XW^T - XQ^T)^2 x 2/T; RTN -> GPTQ)\n");
        for (int l = 0; l < w->L; l++) {
            fprintf(stderr, "  layer %d:", l);
            for (int id = 0; id < QV_QL_COUNT; id++) {
                size_t i = (size_t)l * QV_QL_COUNT + id;
                fprintf(stderr, " %s %.4g->%.4g (%.2f)", strchr(qv_qlinear_module((qv_qlinear_id)id), '.') + 1, rep.err_rtn[i],
                        rep.err_gptq[i], rep.err_rtn[i] > 0 ? rep.err_gptq[i] / rep.err_rtn[i] : 1.0);
            }
            fputc('\n', stderr);
        }
    }
    if (st == QV_OK && o->gptq)
        printf("quantize: GPTQ (percdamp %g, block %d, act-order %s): %ld Hessian rows, %.1fs, output error vs RTN %.3f, "
               "max Cholesky tries %d, dead columns %d\n",
               (double)o->gptq_opts.percdamp, o->gptq_opts.block, o->gptq_opts.act_order ? "on" : "off", rep.gptq_rows,
               rep.seconds_gptq, rep.gptq_err_rtn > 0 ? rep.gptq_err / rep.gptq_err_rtn : 1.0, rep.gptq_max_tries,
               rep.gptq_dead);
    if (st == QV_OK)
        printf("quantize: %s -> %s (%s, KV%d, %s): %d samples x %d tokens; stats %.1fs, search %.1fs, total %.1fs; "
               "clip error ratio %.3f, mean clip ratio %.3f; smoothing beta o %.2f (%d identity), down %.2f (%d identity)\n",
               m->dir, out_path, qv_qformat_name(fmt), kv, qm->meta.method, o->samples, o->seqlen, rep.seconds_stats,
               rep.seconds_search, rep.seconds_total, rep.clip_err_gain, rep.clip_ratio_mean, rep.beta_o_mean,
               rep.n_identity_o, rep.beta_down_mean, rep.n_identity_down);
    qv_qmodel_close(qm);
    qv_qwork_free(w);
    qv_quant_report_free(&rep);
    free(samples), free(ids), free(text);
    qv_model_close(m);
    return st;
}

int qv_cmd_quantize(int argc, char **argv)
{
    const char *cmd = argv[0], *model = NULL, *calib = NULL, *out = NULL;
    if (qv_cli_wants_help(argc, argv)) {
        qv_cli_print_help(qv_find_command(cmd));
        return QV_EXIT_OK;
    }
    qv_quant_opts o;
    qv_quant_opts_init(&o);
    qv_qformat fmt = QV_QFMT_W4A8_G128;
    int kv = 4, verbose = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long v = 0;
        int has = i + 1 < argc;
        if (!strcmp(a, "--no-smooth-attn")) o.smooth_attn = 0;
        else if (!strcmp(a, "--no-rotate")) o.rotate = 0;
        else if (!strcmp(a, "--no-smooth")) o.smooth = 0;
        else if (!strcmp(a, "--no-clip")) o.clip = 0;
        else if (!strcmp(a, "--no-gptq")) o.gptq = 0;
        else if (!strcmp(a, "--rotate-v")) o.rotate_v = 1;
        else if (!strcmp(a, "--verbose")) verbose = 1;
        else if (!has && (!strcmp(a, "--model") || !strcmp(a, "--calib") || !strcmp(a, "--out") || !strcmp(a, "--format") ||
                          !strcmp(a, "--kv") || !strcmp(a, "--samples") || !strcmp(a, "--seqlen") || !strcmp(a, "--seed") ||
                          !strcmp(a, "--threads")))
            return qv_cli_usage_error(cmd, "%s needs a value", a);
        else if (!strcmp(a, "--model")) model = argv[++i];
        else if (!strcmp(a, "--calib")) calib = argv[++i];
        else if (!strcmp(a, "--out")) out = argv[++i];
        else if (!strcmp(a, "--format")) {
            if (qv_qformat_parse(argv[++i], &fmt) != QV_OK) return qv_cli_usage_error(cmd, "%s", qv_last_error());
        } else if (!strcmp(a, "--kv")) {
            if (parse_int(cmd, a, argv[++i], 4, 16, &v)) return QV_EXIT_USAGE;
            if (v != 4 && v != 16) return qv_cli_usage_error(cmd, "--kv expects 4 or 16, got %ld", v);
            kv = (int)v;
        } else if (!strcmp(a, "--samples")) {
            if (parse_int(cmd, a, argv[++i], 1, 1 << 20, &v)) return QV_EXIT_USAGE;
            o.samples = (int)v;
        } else if (!strcmp(a, "--seqlen")) {
            if (parse_int(cmd, a, argv[++i], 2, 1 << 20, &v)) return QV_EXIT_USAGE;
            o.seqlen = (int)v;
        } else if (!strcmp(a, "--seed")) {
            if (parse_int(cmd, a, argv[++i], 0, LONG_MAX, &v)) return QV_EXIT_USAGE;
            o.seed = (uint64_t)v;
        } else if (!strcmp(a, "--threads")) {
            if (parse_int(cmd, a, argv[++i], 0, 1024, &v)) return QV_EXIT_USAGE;
            o.threads = (int)v;
        } else return qv_cli_usage_error(cmd, "unknown argument '%s'", a);
    }
    if (!calib) return qv_cli_usage_error(cmd, "--calib TEXT is required");
    if (!out) return qv_cli_usage_error(cmd, "--out CKPT is required");
    o.format = fmt;
    o.sub_rows = o.samples * o.seqlen < 512 ? o.samples * o.seqlen : 512;
    progress p = {now_s()};
    if (isatty(2)) o.progress = on_progress, o.progress_user = &p;
    return qv_cli_report(run(model, calib, out, fmt, kv, &o, verbose));
}
