/* qvet gate [--config gate.json] [--junit F.xml] [--json F] [--baseline OLD.json] [--self-test]
 *           [--quick] [--only RE] [--model DIR] [--seed N]
 * The CI gate (docs/gate.md): the kernel case matrix (CPU emulation; GPU where present), the
 * attention cases, the overflow corpus replay (fuzz/corpus/ JSON files), `qvet golden check`, the
 * SmoothAttention transform check and model-level checks (ref-qoq vs ref-fp32: KLD, top-1). It
 * never stops at the first failure; every failure prints one command reproducing just that case.
 * --self-test (QV_MUTANTS builds only) runs the clean gate, then every mutant of
 * evals/kernels/mutants.def on its targeted cases, and reports the kill rate. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <cJSON.h>
#include <dirent.h>
#include <getopt.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "qvet/engine.h"
#include "qvet/fileio.h"
#include "qvet/golden.h"
#include "qvet/gpu.h"
#include "qvet/fuzz.h"
#include "qvet/gate_config.h"
#include "qvet/kcases.h"
#include "qvet/mutant.h"
#include "qvet/quant.h"
#include "qvet/synth.h"

typedef struct {
    qv_gate_config cfg;         /* the thresholds file */
    const char *cfg_path, *model_dir, *golden_dir, *shared;
    unsigned long long seed;
    int quick, quiet;
    pcre2_code *only;
    pcre2_match_data *md;
    cJSON *cases;               /* JSON array of case objects */
    long n_pass, n_fail, n_skip, n_gpu_skip;
    float *fp32_logits;         /* cached reference logits of the synthetic model check */
    const char *mutant;         /* for the reproduce commands */
} gate;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t name_hash(const char *s) /* as qvet kernels: a case reproduces alone */
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int selected(gate *g, const char *name)
{
    return !g->only || pcre2_match(g->only, (PCRE2_SPTR)name, PCRE2_ZERO_TERMINATED, 0, 0, g->md, NULL) >= 0;
}

/* Records one case: result "pass" | "fail" | "skip" | "error"; figures (owned) may be NULL. */
static void record(gate *g, const char *group, const char *name, const char *result, const char *detail, cJSON *figures,
                   const char *repro, int print)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "group", group);
    cJSON_AddStringToObject(c, "case", name);
    cJSON_AddStringToObject(c, "result", result);
    cJSON_AddStringToObject(c, "detail", detail ? detail : "");
    if (figures) cJSON_AddItemToObject(c, "figures", figures);
    int bad = strcmp(result, "fail") == 0 || strcmp(result, "error") == 0;
    char full[1400] = "";
    if (bad && repro) {
        if (g->mutant) snprintf(full, sizeof full, "QV_MUTANT=%s %s", g->mutant, repro);
        else snprintf(full, sizeof full, "%s", repro);
        cJSON_AddStringToObject(c, "reproduce", full);
    }
    cJSON_AddItemToArray(g->cases, c);
    if (bad) g->n_fail++;
    else if (strcmp(result, "skip") == 0) g->n_skip++;
    else g->n_pass++;
    if (print && !g->quiet) {
        printf("%-62s %-5s %s\n", name, bad ? (result[0] == 'e' ? "ERROR" : "FAIL") : result[0] == 's' ? "SKIP" : "OK",
               detail ? detail : "");
        if (bad && full[0]) printf("    reproduce: %s\n", full);
    }
}

/* ---- kernels ---- */
static void run_kernel_case(gate *g, const char *group, const char *name, const qv_kcase *kc, uint64_t seed, int gpu,
                            const char *repro)
{
    qv_kresult r;
    char detail[400];
    for (int b = 0; b < 2; b++) {
        char cname[300];
        snprintf(cname, sizeof cname, "%s %s", name, b ? "gpu" : "cpu-emul");
        if (!selected(g, cname)) continue;
        if (b == 1 && !gpu) {
            record(g, group, cname, "skip", "no GPU device", NULL, NULL, 0);
            g->n_gpu_skip++;
            continue;
        }
        double t0 = now_s();
        qv_status st = qv_kcase_run(kc, b ? QV_KB_GPU : QV_KB_CPU_EMUL, seed, &r);
        double dt = now_s() - t0;
        char rp[900];
        snprintf(rp, sizeof rp, "%s --backend %s", repro, b ? "gpu" : "cpu");
        if (st != QV_OK) {
            record(g, group, cname, "error", qv_last_error(), NULL, rp, 1);
            continue;
        }
        cJSON *f = cJSON_CreateObject();
        cJSON_AddNumberToObject(f, "acc_mismatch", (double)r.acc_mismatch);
        cJSON_AddNumberToObject(f, "out_mismatch", (double)r.out_mismatch);
        cJSON_AddNumberToObject(f, "weight_mismatch", (double)r.w_mismatch);
        cJSON_AddNumberToObject(f, "sat_ref", (double)r.sat_ref);
        cJSON_AddNumberToObject(f, "sat_got", (double)r.sat_got);
        if (b) cJSON_AddNumberToObject(f, "seconds", dt); /* GPU times feed --baseline */
        if (r.ok) snprintf(detail, sizeof detail, "bit-exact, sat %ld/%ld", r.sat_got, r.sat_ref);
        else
            snprintf(detail, sizeof detail, "%ld acc, %ld out, %ld weight mismatches, sat %ld (ref %ld); first at m=%ld n=%ld",
                     r.acc_mismatch, r.out_mismatch, r.w_mismatch, r.sat_got, r.sat_ref, r.first >= 0 ? r.first / kc->N : -1,
                     r.first >= 0 ? r.first % kc->N : -1);
        record(g, group, cname, r.ok ? "pass" : "fail", detail, f, rp, 1);
    }
}

static void run_kernels(gate *g, int gpu)
{
    qv_kcase *cases;
    int n;
    if (qv_kcase_matrix(g->quick, &cases, &n) != QV_OK) {
        record(g, "kernels", "kernels/matrix", "error", qv_last_error(), NULL, NULL, 1);
        return;
    }
    for (int i = 0; i < n; i++) {
        char name[160], gname[200], repro[600];
        qv_kcase_name(&cases[i], name, sizeof name);
        snprintf(gname, sizeof gname, "kernels/%s", name);
        snprintf(repro, sizeof repro, "qvet kernels --filter '^%s$' --seed %llu", name, g->seed);
        run_kernel_case(g, "kernels", gname, &cases[i], (uint64_t)g->seed ^ name_hash(name), gpu, repro);
    }
    free(cases);
    qv_kattn_case *ac;
    if (qv_kattn_matrix(&ac, &n) != QV_OK) return;
    for (int i = 0; i < n; i++) {
        char name[160], gname[200], repro[600], detail[300];
        qv_kattn_name(&ac[i], name, sizeof name);
        snprintf(gname, sizeof gname, "attn/%s cpu-emul", name);
        if (!selected(g, gname)) continue;
        snprintf(repro, sizeof repro, "qvet gate --only '^attn/%s' --seed %llu", name, g->seed);
        qv_kattn_result r;
        qv_status st = qv_kattn_run(&ac[i], (uint64_t)g->seed ^ name_hash(name), &r);
        if (st != QV_OK) {
            record(g, "attn", gname, "error", qv_last_error(), NULL, repro, 1);
            continue;
        }
        cJSON *f = cJSON_CreateObject();
        cJSON_AddNumberToObject(f, "kv4_slot_mismatch", (double)r.code_mismatch);
        cJSON_AddNumberToObject(f, "out_beyond_bound", (double)r.out_bad);
        cJSON_AddNumberToObject(f, "nonfinite", (double)r.nonfinite);
        cJSON_AddNumberToObject(f, "worst_err_over_bound", isfinite(r.worst_ratio) ? r.worst_ratio : 1e308);
        snprintf(detail, sizeof detail, "KV4 slots %s (%ld differ), out: %ld beyond the derived bound, %ld non-finite, worst err/bound %.3g",
                 r.code_mismatch ? "MISMATCH" : "bit-exact", r.code_mismatch, r.out_bad, r.nonfinite, r.worst_ratio);
        record(g, "attn", gname, r.ok ? "pass" : "fail", detail, f, repro, 1);
    }
    free(ac);
}

/* ---- the overflow corpus (docs/gate.md "Corpus format") ---- */
static void run_corpus(gate *g, int gpu)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/fuzz/corpus", QV_SOURCE_DIR);
    DIR *d = opendir(dir);
    int nfiles = 0;
    char **names = NULL;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".json")) continue;
        char **nv = realloc(names, sizeof *names * (size_t)(nfiles + 1));
        if (!nv) break;
        names = nv;
        names[nfiles++] = strdup(de->d_name);
    }
    if (d) closedir(d);
    for (int i = 0; i + 1 < nfiles; i++) /* sorted: deterministic order */
        for (int j = i + 1; j < nfiles; j++)
            if (strcmp(names[i], names[j]) > 0) { char *t = names[i]; names[i] = names[j]; names[j] = t; }
    if (!g->quiet && selected(g, "corpus/")) printf("corpus: %d corpus files in fuzz/corpus\n", nfiles);
    for (int i = 0; i < nfiles; i++) {
        char gname[600], path[4500], repro[5000];
        snprintf(gname, sizeof gname, "corpus/%s", names[i]);
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        snprintf(repro, sizeof repro, "qvet gate --only '^corpus/%s'", names[i]);
        if (!selected(g, gname)) { free(names[i]); continue; }
        /* explicit-values cases of the overflow fuzzer (docs/fuzz.md): minimized findings and
         * hand-made edges, replayed on the CPU emulation and, where present, the GPU */
        qv_fz_case fc;
        qv_status st = qv_fz_case_load(path, &fc);
        if (st != QV_OK) {
            record(g, "corpus", gname, "error", qv_last_error(), NULL, repro, 1);
        } else {
            for (int b = 0; b < (gpu ? 2 : 1); b++) {
                char cname[700], why[512] = "";
                int failed = 0;
                snprintf(cname, sizeof cname, "%s %s", gname, b ? "gpu" : "cpu-emul");
                st = qv_fz_check(&fc, b ? QV_KB_GPU : QV_KB_CPU_EMUL, &failed, why, sizeof why);
                if (st == QV_ERR_USAGE && b) /* outside the GPU kernel's shape contract (N % 8, N % 32) */
                    record(g, "corpus", cname, "skip", qv_last_error(), NULL, NULL, 1);
                else if (st != QV_OK) record(g, "corpus", cname, "error", qv_last_error(), NULL, repro, 1);
                else record(g, "corpus", cname, failed ? "fail" : "pass", failed ? why : fc.note, NULL, repro, 1);
            }
            qv_fz_case_free(&fc);
        }
        free(names[i]);
    }
    free(names);
}

/* ---- golden ---- */
static void run_golden(gate *g)
{
    char **names;
    int n;
    if (qv_golden_list(g->golden_dir, &names, &n) != QV_OK) {
        record(g, "golden", "golden/", "error", qv_last_error(), NULL, "qvet golden check", 1);
        return;
    }
    for (int i = 0; i < n; i++) {
        char gname[300], repro[400];
        snprintf(gname, sizeof gname, "golden/%s", names[i]);
        snprintf(repro, sizeof repro, "qvet golden check --only %s --verbose", names[i]);
        if (selected(g, gname)) {
            qv_golden_result r;
            qv_status st = qv_golden_check_entry(g->golden_dir, names[i], g->shared, NULL, NULL, &r);
            if (st != QV_OK) record(g, "golden", gname, "error", qv_last_error(), NULL, repro, 1);
            else {
                cJSON *f = cJSON_CreateObject();
                cJSON_AddBoolToObject(f, "independent", r.independent);
                if (r.independent) cJSON_AddNumberToObject(f, "worst_logits_rel_err", r.worst);
                else cJSON_AddNumberToObject(f, "values_changed", r.worst);
                record(g, "golden", gname, r.skipped ? "skip" : r.pass ? "pass" : "fail", r.detail, f, repro, 1);
            }
        }
        free(names[i]);
    }
    free(names);
}

/* ---- logits of an engine on fixed sequences ---- */
#define GATE_SEQS 2
static qv_status engine_logits(const char *engine, const qv_model *m, int n_tok, const int32_t *ids, float *logits)
{
    qv_engine_opts o;
    qv_engine_opts_init(&o);
    o.threads = 0;
    qv_engine *e = NULL;
    QV_TRY(qv_engine_open(engine, m, &o, &e));
    qv_seq_id sid[GATE_SEQS];
    qv_status st = qv_engine_seq_create(e, GATE_SEQS, sid);
    const int32_t *tp[GATE_SEQS];
    int nt[GATE_SEQS];
    for (int s = 0; s < GATE_SEQS; s++) tp[s] = ids + (size_t)s * n_tok, nt[s] = n_tok;
    if (st == QV_OK) st = qv_engine_prefill(e, GATE_SEQS, sid, tp, nt, n_tok, logits);
    qv_engine_close(e);
    return st;
}

static void make_ids(const qv_model *m, int n_tok, uint64_t seed, int32_t *ids)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    int V = m->cfg.vocab_size;
    for (int i = 0; i < GATE_SEQS * n_tok; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        ids[i] = 2 + (int32_t)(x % (uint64_t)(V - 2));
    }
}

/* mean KL(p_ref || p_got) over rows, top-1 agreement */
static void kld_top1(const float *ref, const float *got, long rows, int V, double *kld, double *top1, double *kld_max)
{
    double sum = 0, agree = 0;
    *kld_max = 0;
    for (long r = 0; r < rows; r++) {
        const float *a = ref + r * V, *b = got + r * V;
        double ma = -INFINITY, mb = -INFINITY, za = 0, zb = 0, kl = 0;
        int ia = 0, ib = 0;
        for (int i = 0; i < V; i++) {
            if (a[i] > ma) ma = a[i], ia = i;
            if (b[i] > mb) mb = b[i], ib = i;
        }
        for (int i = 0; i < V; i++) za += exp(a[i] - ma), zb += exp(b[i] - mb);
        for (int i = 0; i < V; i++) {
            double la = a[i] - ma - log(za), lb = b[i] - mb - log(zb);
            kl += exp(la) * (la - lb);
        }
        if (!isfinite(kl)) kl = INFINITY;
        sum += kl;
        if (kl > *kld_max) *kld_max = kl;
        agree += ia == ib;
    }
    *kld = sum / (double)rows;
    *top1 = agree / (double)rows;
}

/* A GPU engine against its CPU twin on the same ids: they compute the same function (gpu-qoq
 * the QoQ numerics with ref-qoq's rounding points, gpu-fp16 the FP16 model) and may differ only
 * by A8 code ties and summation order (docs/bounds.md "GPU engines"), so the KLD between them
 * must stay far below the accuracy gap. Skipped, visibly, without a device. */
static void gpu_model_check(gate *g, const char *label, const qv_model *m, const char *gpu, const char *cpu, int n_tok)
{
    char gname[600], repro[900], detail[400];
    snprintf(gname, sizeof gname, "model/%s %s vs %s", label, gpu, cpu);
    if (!selected(g, gname)) return;
    if (qv_gpu_device_count() == 0) {
        record(g, "model", gname, "skip", "SKIP gpu: no device", NULL, NULL, 1);
        return;
    }
    snprintf(repro, sizeof repro, "qvet gate --only '^model/%s %s'%s%s", label, gpu, g->model_dir ? " --model " : "",
             g->model_dir ? g->model_dir : "");
    int V = m->cfg.vocab_size;
    long rows = (long)GATE_SEQS * n_tok;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)rows);
    float *a = malloc(sizeof(float) * (size_t)rows * V), *b = malloc(sizeof(float) * (size_t)rows * V);
    qv_status st = ids && a && b ? QV_OK : qv_fail(QV_ERR_NOMEM, "out of memory");
    if (st == QV_OK) make_ids(m, n_tok, 20240601, ids);
    if (st == QV_OK) st = engine_logits(cpu, m, n_tok, ids, a);
    if (st == QV_OK) st = engine_logits(gpu, m, n_tok, ids, b);
    if (st != QV_OK) {
        record(g, "model", gname, st == QV_ERR_CHECK ? "fail" : "error", qv_last_error(), NULL, repro, 1);
    } else {
        double kld, top1, kmax, kt = g->cfg.model_gpu_kld_max;
        kld_top1(a, b, rows, V, &kld, &top1, &kmax);
        cJSON *f = cJSON_CreateObject();
        cJSON_AddNumberToObject(f, "kld", isfinite(kld) ? kld : 1e308);
        cJSON_AddNumberToObject(f, "kld_max_row", isfinite(kmax) ? kmax : 1e308);
        cJSON_AddNumberToObject(f, "top1", top1);
        cJSON_AddNumberToObject(f, "rows", (double)rows);
        snprintf(detail, sizeof detail, "KLD %.3g (max %.3g), top-1 %.4f over %ld positions", kld, kt, top1, rows);
        record(g, "model", gname, kld <= kt ? "pass" : "fail", detail, f, repro, 1);
    }
    free(ids);
    free(a);
    free(b);
}

static void model_check(gate *g, const char *label, const qv_model *m, float **cache)
{
    char gname[600], repro[900], detail[400];
    snprintf(gname, sizeof gname, "model/%s ref-qoq vs ref-fp32", label);
    snprintf(repro, sizeof repro, "qvet gate --only '^model/%s ref-qoq'%s%s", label, g->model_dir ? " --model " : "",
             g->model_dir ? g->model_dir : "");
    int n_tok = g->cfg.model_tokens;
    if (selected(g, gname)) {
        int V = m->cfg.vocab_size;
        long rows = (long)GATE_SEQS * n_tok;
        int32_t *ids = malloc(sizeof(int32_t) * (size_t)rows);
        float *ref = cache && *cache ? *cache : malloc(sizeof(float) * (size_t)rows * V);
        float *got = malloc(sizeof(float) * (size_t)rows * V);
        qv_status st = ids && ref && got ? QV_OK : qv_fail(QV_ERR_NOMEM, "out of memory");
        if (st == QV_OK) make_ids(m, n_tok, 20240601, ids);
        if (st == QV_OK && !(cache && *cache)) st = engine_logits("ref-fp32", m, n_tok, ids, ref);
        if (st == QV_OK && cache) *cache = ref;
        if (st == QV_OK) st = engine_logits("ref-qoq", m, n_tok, ids, got);
        if (st != QV_OK) {
            record(g, "model", gname, st == QV_ERR_CHECK ? "fail" : "error", qv_last_error(), NULL, repro, 1);
        } else {
            double kld, top1, kmax;
            kld_top1(ref, got, rows, V, &kld, &top1, &kmax);
            double kt = g->cfg.model_kld_max, tt = g->cfg.model_top1_min;
            int ok = kld <= kt && top1 >= tt;
            cJSON *f = cJSON_CreateObject();
            cJSON_AddNumberToObject(f, "kld", isfinite(kld) ? kld : 1e308);
            cJSON_AddNumberToObject(f, "kld_max_row", isfinite(kmax) ? kmax : 1e308);
            cJSON_AddNumberToObject(f, "top1", top1);
            cJSON_AddNumberToObject(f, "rows", (double)rows);
            snprintf(detail, sizeof detail, "KLD %.5f (max %.4g), top-1 %.4f over %ld positions", kld, kt, top1, rows);
            record(g, "model", gname, ok ? "pass" : "fail", detail, f, repro, 1);
        }
        free(ids);
        free(got);
        if (!cache) free(ref);
    }
    gpu_model_check(g, label, m, "gpu-qoq", "ref-qoq", n_tok);
    gpu_model_check(g, label, m, "gpu-fp16", "ref-fp32", n_tok);
}

/* ---- SmoothAttention transform: logits preserved ---- */
static void smoothattn_check(gate *g, const qv_model *m)
{
    const char *gname = "quant/smoothattn logits preserved (synthetic tiny)";
    const char *repro = "qvet gate --only '^quant/smoothattn'";
    if (!selected(g, gname)) return;
    qv_qwork *w = NULL;
    qv_model *tm = NULL;
    int n_tok = 32, V = m->cfg.vocab_size;
    int32_t *ids = malloc(sizeof(int32_t) * GATE_SEQS * n_tok);
    float *a = malloc(sizeof(float) * GATE_SEQS * n_tok * V), *b = malloc(sizeof(float) * GATE_SEQS * n_tok * V);
    qv_status st = ids && a && b ? QV_OK : qv_fail(QV_ERR_NOMEM, "out of memory");
    if (st == QV_OK) st = qv_qwork_from_model(m, &w);
    if (st == QV_OK) {
        /* key channel maxima spread over two decades (deterministic), alpha 0.5: lambda in [0.3, 3.2] */
        int D = w->nkv * w->hd;
        float *kmax = malloc(sizeof(float) * D), *lam = malloc(sizeof(float) * D);
        if (!kmax || !lam) st = qv_fail(QV_ERR_NOMEM, "out of memory");
        for (int i = 0; st == QV_OK && i < D; i++) kmax[i] = 0.1f * powf(100.0f, (float)((i * 37) % D) / (float)D);
        if (st == QV_OK) {
            qv_smooth_attn_lambda(kmax, w->nkv, w->hd, 0.5f, lam);
            for (int l = 0; l < w->L; l++) qv_smooth_attn_apply(w, l, lam);
            st = qv_qwork_to_model(w, m, &tm);
        }
        free(kmax);
        free(lam);
    }
    if (st == QV_OK) make_ids(m, n_tok, 7, ids);
    if (st == QV_OK) st = engine_logits("ref-fp32", m, n_tok, ids, a);
    if (st == QV_OK) st = engine_logits("ref-fp32", tm, n_tok, ids, b);
    if (st != QV_OK) {
        record(g, "quant", gname, "error", qv_last_error(), NULL, repro, 1);
    } else {
        double mx = 0, err = 0;
        for (long i = 0; i < (long)GATE_SEQS * n_tok * V; i++) mx = fmax(mx, fabs(a[i])), err = fmax(err, fabs(a[i] - b[i]));
        if (!(err == err)) err = INFINITY;
        double rel = mx > 0 ? err / mx : err, t = g->cfg.smoothattn_logits_rel_max;
        char detail[300];
        snprintf(detail, sizeof detail, "max|logits change| %.3g of max|logit| (max %.3g)", rel, t);
        cJSON *f = cJSON_CreateObject();
        cJSON_AddNumberToObject(f, "logits_rel_change", isfinite(rel) ? rel : 1e308);
        record(g, "quant", gname, rel <= t ? "pass" : "fail", detail, f, repro, 1);
    }
    if (tm) qv_qwork_model_free(tm);
    qv_qwork_free(w);
    free(ids);
    free(a);
    free(b);
}

/* ---- one gate pass over the selected cases ---- */
static void run_all(gate *g, const qv_model *synth, const qv_model *user_model)
{
    int gpu = qv_gpu_device_count() > 0;
    run_kernels(g, gpu);
    run_corpus(g, gpu);
    run_golden(g);
    smoothattn_check(g, synth);
    model_check(g, "synth-tiny", synth, &g->fp32_logits);
    if (user_model) model_check(g, g->model_dir, user_model, NULL);
}

/* ---- --baseline: regressions against an earlier run ---- */
static const cJSON *find_case(const cJSON *cases, const char *name)
{
    for (const cJSON *c = cases ? cases->child : NULL; c; c = c->next) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(c, "case");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name)) return c;
    }
    return NULL;
}

static double fig(const cJSON *c, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "figures"), k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void baseline_compare(gate *g, const cJSON *old)
{
    const cJSON *oc = cJSON_GetObjectItemCaseSensitive(old, "cases");
    int n = cJSON_GetArraySize(g->cases);
    for (int i = 0; i < n; i++) {
        const cJSON *c = cJSON_GetArrayItem(g->cases, i);
        const char *name = cJSON_GetObjectItemCaseSensitive(c, "case")->valuestring;
        const cJSON *o = find_case(oc, name);
        if (!o) continue;
        char bname[700], detail[300];
        double nk = fig(c, "kld"), ok = fig(o, "kld"), nt = fig(c, "top1"), ot = fig(o, "top1");
        if (isfinite(nk) && isfinite(ok)) {
            double dk = g->cfg.baseline_kld_increase_max, dt = g->cfg.baseline_top1_drop_max;
            int bad = nk > ok + dk || nt < ot - dt;
            snprintf(bname, sizeof bname, "baseline/%s", name);
            snprintf(detail, sizeof detail, "KLD %.5f (was %.5f, +%.3g allowed), top-1 %.4f (was %.4f, -%.3g allowed)", nk, ok, dk, nt,
                     ot, dt);
            cJSON *f = cJSON_CreateObject();
            cJSON_AddNumberToObject(f, "kld_delta", nk - ok);
            cJSON_AddNumberToObject(f, "top1_delta", nt - ot);
            record(g, "baseline", bname, bad ? "fail" : "pass", detail, f, "qvet gate --baseline OLD.json", 1);
        }
        double ns = fig(c, "seconds"), os = fig(o, "seconds");
        if (isfinite(ns) && isfinite(os) && os > 0) { /* only GPU cases carry kernel times */
            double tr = g->cfg.baseline_kernel_time_increase_rel;
            snprintf(bname, sizeof bname, "baseline/%s time", name);
            snprintf(detail, sizeof detail, "%.4g s (was %.4g s, +%.0f%% allowed)", ns, os, tr * 100);
            record(g, "baseline", bname, ns > os * (1 + tr) ? "fail" : "pass", detail, NULL, "qvet gate --baseline OLD.json", 1);
        }
    }
}

/* ---- reports ---- */
static void xml_escape(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\n' || *s == '\t') fputc(*s, f);
        }
    }
}

static qv_status write_junit(const char *path, const cJSON *cases, double seconds)
{
    qv_atomic_file af;
    QV_TRY(qv_atomic_open(path, &af));
    FILE *f = af.fp;
    static const char *groups[] = {"kernels", "attn", "corpus", "golden", "quant", "model", "baseline"};
    long tot = 0, fail = 0, skip = 0;
    for (const cJSON *c = cases->child; c; c = c->next) {
        const char *r = cJSON_GetObjectItemCaseSensitive(c, "result")->valuestring;
        tot++, fail += r[0] == 'f' || r[0] == 'e', skip += r[0] == 's';
    }
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"qvet gate\" tests=\"%ld\" failures=\"%ld\" skipped=\"%ld\" time=\"%.3f\">\n",
            tot, fail, skip, seconds);
    for (size_t gi = 0; gi < sizeof groups / sizeof *groups; gi++) {
        long t = 0, fl = 0, sk = 0;
        for (const cJSON *c = cases->child; c; c = c->next) {
            if (strcmp(cJSON_GetObjectItemCaseSensitive(c, "group")->valuestring, groups[gi])) continue;
            const char *r = cJSON_GetObjectItemCaseSensitive(c, "result")->valuestring;
            t++, fl += r[0] == 'f' || r[0] == 'e', sk += r[0] == 's';
        }
        if (!t) continue;
        fprintf(f, "  <testsuite name=\"%s\" tests=\"%ld\" failures=\"%ld\" errors=\"0\" skipped=\"%ld\">\n", groups[gi], t, fl, sk);
        for (const cJSON *c = cases->child; c; c = c->next) {
            if (strcmp(cJSON_GetObjectItemCaseSensitive(c, "group")->valuestring, groups[gi])) continue;
            const char *r = cJSON_GetObjectItemCaseSensitive(c, "result")->valuestring;
            const char *d = cJSON_GetObjectItemCaseSensitive(c, "detail")->valuestring;
            const cJSON *rp = cJSON_GetObjectItemCaseSensitive(c, "reproduce");
            fprintf(f, "    <testcase classname=\"qvet.gate.%s\" name=\"", groups[gi]);
            xml_escape(f, cJSON_GetObjectItemCaseSensitive(c, "case")->valuestring);
            fputs("\">", f);
            if (r[0] == 'f' || r[0] == 'e') {
                fputs("<failure message=\"", f);
                xml_escape(f, d);
                fputs("\">", f);
                xml_escape(f, d);
                if (cJSON_IsString(rp)) fputs("\nreproduce: ", f), xml_escape(f, rp->valuestring);
                fputs("</failure>", f);
            } else if (r[0] == 's') {
                fputs("<skipped message=\"", f);
                xml_escape(f, d);
                fputs("\"/>", f);
            }
            fputs("</testcase>\n", f);
        }
        fputs("  </testsuite>\n", f);
    }
    fputs("</testsuites>\n", f);
    return qv_atomic_commit(&af);
}

static qv_status load_json(const char *path, cJSON **out)
{
    char *text = NULL;
    QV_TRY(qv_read_file(path, 64u << 20, &text, NULL));
    *out = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        return qv_fail(QV_ERR_INPUT, "%s: not a JSON object", path);
    }
    return QV_OK;
}

static pcre2_code *compile_re(const char *re)
{
    int err;
    PCRE2_SIZE off;
    return pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &err, &off, NULL);
}

static void set_only(gate *g, pcre2_code *re)
{
    pcre2_match_data_free(g->md);
    g->only = re;
    g->md = re ? pcre2_match_data_create_from_pattern(re, NULL) : NULL;
}

static int self_test(gate *g, const qv_model *synth)
{
    printf("== self-test: the clean gate (every case must pass)\n");
    run_all(g, synth, NULL);
    long clean_fail = g->n_fail;
    printf("clean gate: %ld passed, %ld failed, %ld skipped\n", g->n_pass, clean_fail, g->n_skip);
    int n;
    const qv_mutant_info *cat = qv_mutant_catalog(&n);
    int killed = 0;
    char survivors[4096] = "";
    g->quiet = 1;
    for (int i = 0; i < n; i++) {
        pcre2_code *re = compile_re(cat[i].targets);
        if (!re) {
            printf("mutant %-20s bad target pattern '%s'\n", cat[i].id, cat[i].targets);
            continue;
        }
        cJSON_Delete(g->cases);
        g->cases = cJSON_CreateArray();
        g->n_pass = g->n_fail = g->n_skip = 0;
        set_only(g, re);
        qv_mutant_set(cat[i].id);
        g->mutant = cat[i].id;
        double t0 = now_s();
        run_all(g, synth, NULL);
        qv_mutant_set(NULL);
        g->mutant = NULL;
        long ran = g->n_pass + g->n_fail;
        int k = g->n_fail > 0;
        killed += k;
        char first[300] = "";
        for (const cJSON *c = g->cases->child; c && !first[0]; c = c->next) {
            const char *r = cJSON_GetObjectItemCaseSensitive(c, "result")->valuestring;
            if (r[0] == 'f' || r[0] == 'e') snprintf(first, sizeof first, "%s", cJSON_GetObjectItemCaseSensitive(c, "case")->valuestring);
        }
        printf("mutant %-20s %-8s %ld/%ld targeted cases failed (%.1f s)%s%s  [%s]\n", cat[i].id, k ? "KILLED" : "SURVIVED",
               g->n_fail, ran, now_s() - t0, first[0] ? "; first: " : "", first, cat[i].what);
        if (!k) snprintf(survivors + strlen(survivors), sizeof survivors - strlen(survivors), " %s", cat[i].id);
        set_only(g, NULL);
        pcre2_code_free(re);
    }
    printf("self-test: kill rate %d/%d; survivors:%s; clean gate %s\n", killed, n, survivors[0] ? survivors : " none",
           clean_fail ? "FAILED" : "passed");
    return clean_fail || killed < n ? QV_EXIT_FAIL : QV_EXIT_OK;
}

int qv_cmd_gate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'}, {"junit", required_argument, 0, 'x'},   {"json", required_argument, 0, 'j'},
        {"baseline", required_argument, 0, 'b'}, {"self-test", no_argument, 0, 't'},   {"quick", no_argument, 0, 'q'},
        {"only", required_argument, 0, 'o'},   {"model", required_argument, 0, 'm'},   {"seed", required_argument, 0, 's'},
        {"golden-dir", required_argument, 0, 'g'}, {0, 0, 0, 0}};
    gate g;
    memset(&g, 0, sizeof g);
    g.cfg_path = QV_SOURCE_DIR "/golden/gate.default.json";
    g.golden_dir = QV_SOURCE_DIR "/golden";
    g.shared = getenv("QV_SHARED_DIR") ? getenv("QV_SHARED_DIR") : QV_SOURCE_DIR "/../shared";
    const char *junit = NULL, *json = NULL, *baseline = NULL, *only = NULL;
    int selftest = 0, c, seed_given = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c': g.cfg_path = optarg; break;
        case 'x': junit = optarg; break;
        case 'j': json = optarg; break;
        case 'b': baseline = optarg; break;
        case 't': selftest = 1; break;
        case 'q': g.quick = 1; break;
        case 'o': only = optarg; break;
        case 'm': g.model_dir = optarg; break;
        case 'g': g.golden_dir = optarg; break;
        case 's': {
            char *end;
            g.seed = strtoull(optarg, &end, 10);
            if (!*optarg || *end || *optarg == '-') return qv_cli_usage_error("gate", "--seed wants a non-negative integer");
            seed_given = 1;
            break;
        }
        default: return qv_cli_usage_error("gate", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return qv_cli_usage_error("gate", "unexpected argument '%s'", argv[optind]);
    if (selftest && !qv_mutants_built())
        return qv_cli_usage_error("gate", "--self-test needs a build with the mutants compiled in: "
                                          "cmake -DQV_MUTANTS=ON (this build carries none)");
    qv_status st = qv_mutant_from_env();
    if (st != QV_OK) return qv_cli_report(st);
    if (qv_mutant_active() >= 0) g.mutant = getenv("QV_MUTANT");
    if ((st = qv_gate_config_load(g.cfg_path, &g.cfg)) != QV_OK) return qv_cli_report(st);
    if (!seed_given) g.seed = g.cfg.seed;
    cJSON *old = NULL;
    if (baseline && (st = load_json(baseline, &old)) != QV_OK) return qv_cli_report(st);
    if (only) {
        pcre2_code *re = compile_re(only);
        if (!re) {
            cJSON_Delete(old);
            return qv_cli_usage_error("gate", "--only: bad regular expression '%s'", only);
        }
        set_only(&g, re);
    }
    qv_model *synth = NULL, *um = NULL;
    if ((st = qv_synth_open(QV_SYNTH_TINY, 0, &synth)) != QV_OK || (g.model_dir && (st = qv_model_open(g.model_dir, &um)) != QV_OK)) {
        qv_model_close(synth);
        cJSON_Delete(old);
        return qv_cli_report(st);
    }
    g.cases = cJSON_CreateArray();
    double t0 = now_s();
    time_t started = time(NULL);
    int rc;
    if (selftest) {
        rc = self_test(&g, synth);
    } else {
        printf("qvet gate: config %s, seed %llu%s; cpu-emul: on; gpu: %s\n", g.cfg_path, g.seed, g.quick ? ", quick matrix" : "",
               qv_gpu_describe());
        run_all(&g, synth, um);
        if (old) baseline_compare(&g, old);
        double secs = now_s() - t0;
        if (g.n_gpu_skip) printf("GPU: %ld GPU cases skipped (no GPU device)\n", g.n_gpu_skip);
        printf("gate: %ld cases: %ld passed, %ld failed, %ld skipped (%.1f s) -> %s\n", g.n_pass + g.n_fail + g.n_skip, g.n_pass,
               g.n_fail, g.n_skip, secs, g.n_fail ? "FAIL" : "PASS");
        rc = g.n_fail ? QV_EXIT_FAIL : QV_EXIT_OK;
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "schema", "qvet.gate/1");
        cJSON_AddStringToObject(root, "qvet_version", QV_VERSION_STRING);
        cJSON_AddStringToObject(root, "config", g.cfg_path);
        cJSON_AddNumberToObject(root, "config_version", g.cfg.version);
        cJSON_AddNumberToObject(root, "seed", (double)g.seed);
        cJSON_AddBoolToObject(root, "quick", g.quick);
        cJSON_AddBoolToObject(root, "gpu", qv_gpu_device_count() > 0);
        cJSON *sum = cJSON_AddObjectToObject(root, "summary");
        cJSON_AddNumberToObject(sum, "passed", (double)g.n_pass);
        cJSON_AddNumberToObject(sum, "failed", (double)g.n_fail);
        cJSON_AddNumberToObject(sum, "skipped", (double)g.n_skip);
        cJSON_AddNumberToObject(sum, "gpu_skipped", (double)g.n_gpu_skip);
        cJSON_AddStringToObject(sum, "verdict", g.n_fail ? "fail" : "pass");
        cJSON *tm = cJSON_AddObjectToObject(root, "timing"); /* the only run-dependent fields */
        char ts[32];
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", gmtime(&started));
        cJSON_AddStringToObject(tm, "started_at", ts);
        cJSON_AddNumberToObject(tm, "seconds", secs);
        cJSON_AddItemReferenceToObject(root, "cases", g.cases);
        if (json) {
            char *txt = cJSON_Print(root);
            st = txt ? qv_write_file_atomic(json, txt, strlen(txt)) : QV_ERR_NOMEM;
            free(txt);
            if (st != QV_OK) rc = qv_cli_report(st);
        }
        if (junit && (st = write_junit(junit, g.cases, secs)) != QV_OK) rc = qv_cli_report(st);
        cJSON_Delete(root);
    }
    cJSON_Delete(g.cases);
    free(g.fp32_logits);
    pcre2_match_data_free(g.md);
    pcre2_code_free(g.only);
    qv_model_close(synth);
    qv_model_close(um);
    cJSON_Delete(old);
    return rc;
}
