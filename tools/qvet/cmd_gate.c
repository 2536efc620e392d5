/* qvet gate [--config gate.json] [--junit F.xml] [--json F] [--baseline OLD.json] [--self-test]
 *           [--quick] [--only RE] [--model DIR] [--seed N]
 * qvet gate --plugin LIB.so [--config F] [--quick] [--only RE] [--seed N] [--junit F] [--json F]
 *           the kernel groups only (kernels/, the GEMM files of corpus/) on a shared library's
 *           kernels (include/qvet/kernel_plugin.h, docs/byo.md section 6)
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
#include "qvet/gate_baseline.h"
#include "qvet/gate_config.h"
#include "qvet/kcases.h"
#include "qvet/mutant.h"
#include "qvet/quant.h"
#include "qvet/synth.h"

typedef struct {
    qv_gate_config cfgv;        /* the thresholds file, checked (golden/lib/gate_config.c) */
    const cJSON *cfg;           /* its document (cfgv.doc): thresholds by key, for the baseline rules */
    const char *cfg_path, *model_dir, *golden_dir, *shared;
    unsigned long long seed;
    int quick, quiet;
    pcre2_code *only;
    pcre2_match_data *md;
    cJSON *cases;               /* JSON array of case objects */
    long n_pass, n_fail, n_skip, n_gpu_skip;
    float *fp32_logits;         /* cached reference logits of the synthetic model check */
    const char *mutant;         /* for the reproduce commands */
    qv_kplugin *plugin;         /* --plugin: the only backend, kernel groups only */
    const char *plugin_path;
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

static double thr(gate *g, const char *key)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(g->cfg, "thresholds"), key);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(t, "value");
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
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
    for (int b = g->plugin ? 2 : 0; b < (g->plugin ? 3 : 2); b++) {
        static const char *bnames[] = {"cpu-emul", "gpu", "plugin"};
        static const qv_kbackend backends[] = {QV_KB_CPU_EMUL, QV_KB_GPU, QV_KB_PLUGIN};
        char cname[300];
        snprintf(cname, sizeof cname, "%s %s", name, bnames[b]);
        if (!selected(g, cname)) continue;
        if (b == 1 && !gpu) {
            record(g, group, cname, "skip", "no GPU device", NULL, NULL, 0);
            g->n_gpu_skip++;
            continue;
        }
        qv_status st = qv_kcase_run(kc, backends[b], seed, &r);
        char rp[1600];
        if (b == 2) snprintf(rp, sizeof rp, "%s", repro); /* the plugin's command carries --plugin */
        else snprintf(rp, sizeof rp, "%s --backend %s", repro, b ? "gpu" : "cpu");
        if (st == QV_OK && r.skipped) {
            snprintf(detail, sizeof detail, "plugin '%s' does not implement %s", qv_kplugin_name(g->plugin),
                     qv_kkernel_name(kc->kernel));
            record(g, group, cname, "skip", detail, NULL, NULL, 1);
            continue;
        }
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
        cJSON_AddNumberToObject(f, "sat_mismatch", (double)labs(r.sat_got - r.sat_ref));
        if (b == 1) cJSON_AddNumberToObject(f, "seconds", r.gpu_seconds); /* the kernel's time: feeds --baseline */
        if (r.ok && (r.no_acc || r.no_out)) /* a plugin without one of the two entries */
            snprintf(detail, sizeof detail, "bit-exact (%s not implemented), sat %ld/%ld", r.no_acc ? "acc" : "out",
                     r.sat_got, r.sat_ref);
        else if (r.ok) snprintf(detail, sizeof detail, "bit-exact, sat %ld/%ld", r.sat_got, r.sat_ref);
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
        char name[160], gname[200], repro[1400];
        qv_kcase_name(&cases[i], name, sizeof name);
        snprintf(gname, sizeof gname, "kernels/%s", name);
        if (g->plugin)
            snprintf(repro, sizeof repro, "qvet kernels --plugin %s --filter '^%s$' --seed %llu", g->plugin_path, name,
                     g->seed);
        else snprintf(repro, sizeof repro, "qvet kernels --filter '^%s$' --seed %llu", name, g->seed);
        run_kernel_case(g, "kernels", gname, &cases[i], (uint64_t)g->seed ^ name_hash(name), gpu, repro);
    }
    free(cases);
    qv_kattn_case *ac;
    if (g->plugin) return; /* the ABI has no attention op (docs/byo.md section 6) */
    if (qv_kattn_matrix(&ac, &n) != QV_OK) return;
    for (int i = 0; i < n * 2; i++) {
        char name[160], gname[200], repro[600], detail[300];
        const int b = i % 2; /* each case on the CPU emulation, then on the GPU kernels */
        qv_kattn_name(&ac[i / 2], name, sizeof name);
        snprintf(gname, sizeof gname, "attn/%s %s", name, b ? "gpu" : "cpu-emul");
        if (!selected(g, gname)) continue;
        if (b && !gpu) {
            record(g, "attn", gname, "skip", "no GPU device", NULL, NULL, 0);
            g->n_gpu_skip++;
            continue;
        }
        snprintf(repro, sizeof repro, "qvet gate --only '^attn/%s %s' --seed %llu", name, b ? "gpu" : "cpu-emul", g->seed);
        qv_kattn_result r;
        qv_status st = qv_kattn_run(&ac[i / 2], b ? QV_KB_GPU : QV_KB_CPU_EMUL, (uint64_t)g->seed ^ name_hash(name), &r);
        if (st == QV_ERR_USAGE && b) { /* outside the GPU kernels' shape contract: said, not hidden */
            record(g, "attn", gname, "skip", qv_last_error(), NULL, NULL, 1);
            continue;
        }
        if (st != QV_OK) {
            record(g, "attn", gname, "error", qv_last_error(), NULL, repro, 1);
            continue;
        }
        cJSON *f = cJSON_CreateObject();
        cJSON_AddNumberToObject(f, "kv4_slot_mismatch", (double)r.code_mismatch);
        cJSON_AddNumberToObject(f, "out_beyond_bound", (double)r.out_bad);
        cJSON_AddNumberToObject(f, "nonfinite", (double)r.nonfinite);
        cJSON_AddNumberToObject(f, "worst_err_over_bound", isfinite(r.worst_ratio) ? r.worst_ratio : 1e308);
        cJSON_AddNumberToObject(f, "nmse", isfinite(r.nmse) ? r.nmse : 1e308);
        snprintf(detail, sizeof detail, "KV4 slots %s (%ld differ), out: %ld beyond the derived bound, %ld non-finite, worst err/bound %.3g, "
                 "NMSE %.3g (ceiling 2^-22 = 2.4e-7)", r.code_mismatch ? "MISMATCH" : "bit-exact", r.code_mismatch, r.out_bad,
                 r.nonfinite, r.worst_ratio, r.nmse);
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
        if (g->plugin) snprintf(repro, sizeof repro, "qvet gate --plugin %s --only '^corpus/%s'", g->plugin_path, names[i]);
        else snprintf(repro, sizeof repro, "qvet gate --only '^corpus/%s'", names[i]);
        if (!selected(g, gname)) { free(names[i]); continue; }
        /* explicit-values cases of the overflow fuzzer (docs/fuzz.md): minimized findings and
         * hand-made edges, replayed on the CPU emulation and, where present, the GPU */
        qv_fz_case fc;
        qv_status st = qv_fz_case_load(path, &fc);
        if (st != QV_OK) {
            record(g, "corpus", gname, "error", qv_last_error(), NULL, repro, 1);
        } else if (g->plugin) {
            char cname[700], why[512] = "";
            int failed = 0;
            snprintf(cname, sizeof cname, "%s plugin", gname);
            if (fc.kind != QV_FZ_GEMM) {
                record(g, "corpus", cname, "skip", "a reference-side check (no kernel op)", NULL, NULL, 1);
            } else if (!qv_kplugin_ops(g->plugin, fc.kernel)) {
                snprintf(why, sizeof why, "plugin '%s' does not implement %s", qv_kplugin_name(g->plugin),
                         qv_kkernel_name(fc.kernel));
                record(g, "corpus", cname, "skip", why, NULL, NULL, 1);
            } else {
                st = qv_fz_check(&fc, QV_KB_PLUGIN, &failed, why, sizeof why);
                if (st == QV_ERR_USAGE) /* outside the kernels' shape contract (N % 8, N % 32) */
                    record(g, "corpus", cname, "skip", qv_last_error(), NULL, NULL, 1);
                else if (st != QV_OK) record(g, "corpus", cname, "error", qv_last_error(), NULL, repro, 1);
                else record(g, "corpus", cname, failed ? "fail" : "pass", failed ? why : fc.note, NULL, repro, 1);
            }
            qv_fz_case_free(&fc);
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

/* A GPU engine against a CPU engine on the same ids. Twin checks (accuracy 0): gpu-qoq vs
 * ref-qoq, gpu-fp16 vs ref-fp32 compute the same function (gpu-qoq the QoQ numerics with ref-qoq's
 * rounding points, gpu-fp16 the FP16 model) and may differ only by A8 code ties and summation order
 * (docs/bounds.md "GPU engines"), so their KLD must stay far below the accuracy gap
 * (model_gpu_kld_max). The accuracy check (accuracy 1): gpu-qoq vs ref-fp32 under ref-qoq's own
 * limits (model_kld_max, model_top1_min); in the self-test it is what sees a planted bug of the
 * GPU engine, whose CPU twin carries the same mutant. `cache`: ref-fp32's logits of these ids
 * (NULL or *cache NULL: computed). Skipped, visibly, without a device. */
static void gpu_model_check(gate *g, const char *label, const qv_model *m, const char *gpu, const char *cpu, int n_tok,
                            int accuracy, float **cache)
{
    char gname[600], repro[900], detail[400];
    snprintf(gname, sizeof gname, "model/%s %s vs %s", label, gpu, cpu);
    if (!selected(g, gname)) return;
    if (qv_gpu_device_count() == 0) {
        record(g, "model", gname, "skip", "SKIP gpu: no device", NULL, NULL, 1);
        g->n_gpu_skip++;
        return;
    }
    snprintf(repro, sizeof repro, "qvet gate --only '^model/%s %s vs %s'%s%s", label, gpu, cpu, g->model_dir ? " --model " : "",
             g->model_dir ? g->model_dir : "");
    int V = m->cfg.vocab_size;
    long rows = (long)GATE_SEQS * n_tok;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)rows);
    int cached = cache && *cache;
    float *a = cached ? *cache : malloc(sizeof(float) * (size_t)rows * V), *b = malloc(sizeof(float) * (size_t)rows * V);
    qv_status st = ids && a && b ? QV_OK : qv_fail(QV_ERR_NOMEM, "out of memory");
    if (st == QV_OK) make_ids(m, n_tok, 20240601, ids);
    if (st == QV_OK && !cached) st = engine_logits(cpu, m, n_tok, ids, a);
    if (st == QV_OK && cache && !cached) *cache = a, cached = 1; /* ref-fp32's, for the next check */
    if (st == QV_OK) st = engine_logits(gpu, m, n_tok, ids, b);
    if (st != QV_OK) {
        record(g, "model", gname, st == QV_ERR_CHECK ? "fail" : "error", qv_last_error(), NULL, repro, 1);
    } else {
        double kld, top1, kmax, kt = thr(g, accuracy ? "model_kld_max" : "model_gpu_kld_max"), tt = thr(g, "model_top1_min");
        kld_top1(a, b, rows, V, &kld, &top1, &kmax);
        int ok = kld <= kt && (!accuracy || top1 >= tt);
        cJSON *f = cJSON_CreateObject();
        cJSON_AddNumberToObject(f, "kld", isfinite(kld) ? kld : 1e308);
        cJSON_AddNumberToObject(f, "kld_max_row", isfinite(kmax) ? kmax : 1e308);
        cJSON_AddNumberToObject(f, "top1", top1);
        cJSON_AddNumberToObject(f, "rows", (double)rows);
        if (accuracy)
            snprintf(detail, sizeof detail, "KLD %.5f (max %.4g), top-1 %.4f (min %.3g) over %ld positions", kld, kt, top1, tt, rows);
        else
            snprintf(detail, sizeof detail, "KLD %.3g (max %.3g), top-1 %.4f over %ld positions", kld, kt, top1, rows);
        record(g, "model", gname, ok ? "pass" : "fail", detail, f, repro, 1);
    }
    free(ids);
    if (!cached) free(a);
    free(b);
}

static void model_check(gate *g, const char *label, const qv_model *m, float **cache)
{
    char gname[600], repro[900], detail[400];
    snprintf(gname, sizeof gname, "model/%s ref-qoq vs ref-fp32", label);
    snprintf(repro, sizeof repro, "qvet gate --only '^model/%s ref-qoq'%s%s", label, g->model_dir ? " --model " : "",
             g->model_dir ? g->model_dir : "");
    int n_tok = g->cfgv.model_tokens; /* range-checked by the parser */
    float *local = NULL; /* ref-fp32's logits for the checks below when the caller keeps none */
    if (!cache) cache = &local;
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
            double kt = thr(g, "model_kld_max"), tt = thr(g, "model_top1_min");
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
        if (*cache != ref) free(ref);
    }
    gpu_model_check(g, label, m, "gpu-qoq", "ref-qoq", n_tok, 0, NULL);
    gpu_model_check(g, label, m, "gpu-qoq", "ref-fp32", n_tok, 1, cache);
    gpu_model_check(g, label, m, "gpu-fp16", "ref-fp32", n_tok, 0, cache);
    free(local);
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
        double rel = mx > 0 ? err / mx : err, t = thr(g, "smoothattn_logits_rel_max");
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
    if (g->plugin) return; /* --plugin: the kernel groups only */
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

static const cJSON *figs(const cJSON *c) { return cJSON_GetObjectItemCaseSensitive(c, "figures"); }

/* A case name as a PCRE2 literal (names hold '(', '+', '.'), for the reproduce command. */
static void re_quote(const char *s, char *out, size_t n)
{
    size_t k = 0;
    for (; *s && k + 3 < n; s++) {
        if (strchr("\\^$.|?*+()[]{}", *s)) out[k++] = '\\';
        out[k++] = *s;
    }
    out[k] = 0;
}

/* Every case of this run that the baseline also has gets one `baseline/<case>` case: pass when
 * no figure regressed beyond its threshold (evals/gate_baseline.c's rules), else fail naming
 * each regressed figure with its old and new value and the change. Only failures print a line. */
static void baseline_compare(gate *g, const cJSON *old, const char *path)
{
    const cJSON *oc = cJSON_GetObjectItemCaseSensitive(old, "cases");
    const cJSON *thresholds = cJSON_GetObjectItemCaseSensitive(g->cfg, "thresholds");
    int n = cJSON_GetArraySize(g->cases);
    long compared = 0, regressed = 0, not_in_old = 0, not_in_new = 0;
    const cJSON *c = g->cases->child;
    for (int i = 0; i < n; i++, c = c->next) { /* n: the cases before this loop appended any */
        const char *name = cJSON_GetObjectItemCaseSensitive(c, "case")->valuestring;
        if (!strcmp(cJSON_GetObjectItemCaseSensitive(c, "group")->valuestring, "baseline")) continue;
        const cJSON *o = find_case(oc, name);
        if (!o) {
            not_in_old++;
            continue;
        }
        qv_bl_item it[QV_BL_MAX_ITEMS];
        int k = qv_bl_compare_case(name, figs(c), figs(o), thresholds, it);
        if (!k) continue;
        compared++;
        char detail[1200] = "", bname[700], quoted[1200], repro[1600];
        cJSON *f = cJSON_CreateObject();
        int bad = 0;
        for (int j = 0; j < k; j++) {
            cJSON *e = cJSON_AddObjectToObject(f, it[j].figure);
            cJSON_AddNumberToObject(e, "old", it[j].old_v);
            cJSON_AddNumberToObject(e, "new", it[j].new_v);
            cJSON_AddNumberToObject(e, "change", isfinite(it[j].change) ? it[j].change : 1e308);
            cJSON_AddStringToObject(e, "change_is", it[j].rule == QV_BL_REL_INCREASE ? "relative" : "absolute");
            cJSON_AddNumberToObject(e, "allowed", it[j].limit);
            cJSON_AddBoolToObject(e, "regressed", it[j].regressed);
            if (!it[j].regressed) continue;
            char one[300];
            qv_bl_describe(&it[j], one, sizeof one);
            snprintf(detail + strlen(detail), sizeof detail - strlen(detail), "%sREGRESSION %s", bad ? "; " : "", one);
            bad = 1;
        }
        if (!bad) snprintf(detail, sizeof detail, "%d figure%s within the baseline thresholds", k, k == 1 ? "" : "s");
        regressed += bad;
        snprintf(bname, sizeof bname, "baseline/%s", name);
        re_quote(name, quoted, sizeof quoted);
        snprintf(repro, sizeof repro, "qvet gate --baseline %s --seed %llu --only '^%s$'", path, g->seed, quoted);
        record(g, "baseline", bname, bad ? "fail" : "pass", detail, f, repro, bad);
    }
    for (const cJSON *o = oc ? oc->child : NULL; o; o = o->next) {
        const cJSON *grp = cJSON_GetObjectItemCaseSensitive(o, "group");
        if (strcmp(grp->valuestring, "baseline") && !find_case(g->cases, cJSON_GetObjectItemCaseSensitive(o, "case")->valuestring))
            not_in_new++;
    }
    if (!g->quiet)
        printf("baseline %s: %ld cases compared, %ld regressed; %ld cases of this run not in the baseline, %ld baseline "
               "cases not in this run\n", path, compared, regressed, not_in_old, not_in_new);
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
        *out = NULL;
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

/* Which code a case's verdict is about, for the self-test's two columns: 0 the CPU side (the
 * kernels' CPU emulation, the quantizer, ref-qoq, ...), 1 the GPU kernels against a reference no
 * mutant touches (kernel / attention / corpus "gpu" cases, a GPU engine against ref-fp32), 2 a GPU
 * engine against its CPU twin, which carries the same mutant (counted in neither column). */
static int case_side(const char *name)
{
    size_t l = strlen(name);
    if (l >= 4 && !strcmp(name + l - 4, " gpu")) return 1;
    if (strstr(name, " gpu-qoq vs ref-qoq")) return 2;
    return strstr(name, " gpu-") ? 1 : 0;
}

static int self_test(gate *g, const qv_model *synth)
{
    int gpu = qv_gpu_device_count() > 0;
    printf("== self-test: the clean gate (every case must pass); gpu: %s\n", qv_gpu_describe());
    run_all(g, synth, NULL);
    long clean_fail = g->n_fail;
    printf("clean gate: %ld passed, %ld failed, %ld skipped\n", g->n_pass, clean_fail, g->n_skip);
    int n;
    const qv_mutant_info *cat = qv_mutant_catalog(&n);
    int killed = 0, cpu_killed = 0, n_gpu = 0, gpu_killed = 0;
    char survivors[4096] = "";
    g->quiet = 1;
    for (int i = 0; i < n; i++) {
        pcre2_code *re = compile_re(cat[i].targets);
        if (!re) {
            printf("mutant %-18s bad target pattern '%s'\n", cat[i].id, cat[i].targets);
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
        long ran[3] = {0}, failed[3] = {0};
        char first[2][300] = {"", ""};
        for (const cJSON *c = g->cases->child; c; c = c->next) {
            const char *r = cJSON_GetObjectItemCaseSensitive(c, "result")->valuestring;
            const char *name = cJSON_GetObjectItemCaseSensitive(c, "case")->valuestring;
            int side = case_side(name), bad = r[0] == 'f' || r[0] == 'e';
            if (r[0] == 's') continue;
            ran[side]++, failed[side] += bad;
            if (bad && side < 2 && !first[side][0]) snprintf(first[side], sizeof first[side], "%s", name);
        }
        /* killed: a CPU-side case failed and, for a mutant with a GPU site on a machine with a
         * device, a GPU case failed too */
        int kc = failed[0] > 0, kg = failed[1] > 0, k = kc && (!cat[i].gpu || !gpu || kg);
        killed += k, cpu_killed += kc;
        n_gpu += cat[i].gpu;
        gpu_killed += cat[i].gpu && gpu && kg;
        char gcol[80];
        if (!cat[i].gpu) snprintf(gcol, sizeof gcol, "gpu -        (no GPU site)");
        else if (!gpu) snprintf(gcol, sizeof gcol, "gpu NOT RUN  (no GPU device)");
        else snprintf(gcol, sizeof gcol, "gpu %-8s %ld/%ld", kg ? "KILLED" : "SURVIVED", failed[1], ran[1]);
        printf("mutant %-18s cpu-emul %-8s %ld/%ld  %-28s (%.1f s)%s%s%s%s  [%s]\n", cat[i].id, kc ? "KILLED" : "SURVIVED", failed[0],
               ran[0], gcol, now_s() - t0, first[0][0] ? "; first cpu: " : "", first[0], first[1][0] ? "; first gpu: " : "", first[1],
               cat[i].what);
        if (!k) snprintf(survivors + strlen(survivors), sizeof survivors - strlen(survivors), " %s%s", cat[i].id, kc ? "(gpu)" : "");
        set_only(g, NULL);
        pcre2_code_free(re);
    }
    if (gpu)
        printf("GPU mutants: %d of %d mutants have a GPU site; %d killed on the GPU\n", n_gpu, n, gpu_killed);
    else
        printf("GPU mutants: %d of %d mutants have a GPU site; all %d skipped (no GPU device): only their CPU emulation was checked\n",
               n_gpu, n, n_gpu);
    printf("self-test: kill rate %d/%d (cpu-emul %d/%d, gpu %d/%d%s); survivors:%s; clean gate %s\n", killed, n, cpu_killed, n,
           gpu_killed, gpu ? n_gpu : 0, gpu ? "" : ", no device", survivors[0] ? survivors : " none", clean_fail ? "FAILED" : "passed");
    return clean_fail || killed < n ? QV_EXIT_FAIL : QV_EXIT_OK;
}

int qv_cmd_gate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'}, {"junit", required_argument, 0, 'x'},   {"json", required_argument, 0, 'j'},
        {"baseline", required_argument, 0, 'b'}, {"self-test", no_argument, 0, 't'},   {"quick", no_argument, 0, 'q'},
        {"only", required_argument, 0, 'o'},   {"model", required_argument, 0, 'm'},   {"seed", required_argument, 0, 's'},
        {"golden-dir", required_argument, 0, 'g'}, {"plugin", required_argument, 0, 'p'}, {0, 0, 0, 0}};
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
        case 'p': g.plugin_path = optarg; break;
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
    if (g.plugin_path && (selftest || g.model_dir || baseline))
        return qv_cli_usage_error("gate", "--plugin runs the kernel groups on the plugin only; --self-test, --model and "
                                          "--baseline do not apply (docs/byo.md section 6: planted bugs in a plugin)");
    if (selftest && !qv_mutants_built())
        return qv_cli_usage_error("gate", "--self-test needs a build with the mutants compiled in: "
                                          "cmake -DQV_MUTANTS=ON (this build carries none)");
    qv_status st = qv_mutant_from_env();
    if (st != QV_OK) return qv_cli_report(st);
    if (qv_mutant_active() >= 0) g.mutant = getenv("QV_MUTANT");
    if ((st = qv_gate_config_load(g.cfg_path, &g.cfgv)) != QV_OK) return qv_cli_report(st);
    g.cfg = g.cfgv.doc;
    if (!seed_given) g.seed = g.cfgv.seed;
    cJSON *old = NULL;
    if (baseline && ((st = load_json(baseline, &old)) != QV_OK || (st = qv_bl_validate(baseline, old, g.seed)) != QV_OK)) {
        qv_gate_config_free(&g.cfgv), cJSON_Delete(old);
        return qv_cli_report(st);
    }
    if (only) {
        pcre2_code *re = compile_re(only);
        if (!re) {
            qv_gate_config_free(&g.cfgv), cJSON_Delete(old);
            return qv_cli_usage_error("gate", "--only: bad regular expression '%s'", only);
        }
        set_only(&g, re);
    }
    if (g.plugin_path && (st = qv_kplugin_load(g.plugin_path, &g.plugin)) != QV_OK) {
        qv_gate_config_free(&g.cfgv), cJSON_Delete(old);
        pcre2_match_data_free(g.md);
        pcre2_code_free(g.only);
        return qv_cli_report(st);
    }
    qv_kcase_set_plugin(g.plugin);
    qv_model *synth = NULL, *um = NULL;
    if ((!g.plugin && (st = qv_synth_open(QV_SYNTH_TINY, 0, &synth)) != QV_OK) || (g.model_dir && (st = qv_model_open(g.model_dir, &um)) != QV_OK)) {
        qv_model_close(synth);
        qv_gate_config_free(&g.cfgv), cJSON_Delete(old);
        qv_kcase_set_plugin(NULL);
        qv_kplugin_close(g.plugin);
        return qv_cli_report(st);
    }
    g.cases = cJSON_CreateArray();
    double t0 = now_s();
    time_t started = time(NULL);
    int rc;
    if (selftest) {
        rc = self_test(&g, synth);
    } else {
        if (g.plugin)
            printf("qvet gate: config %s, seed %llu%s; plugin '%s' (%s): kernel groups only (kernels/, corpus/)\n",
                   g.cfg_path, g.seed, g.quick ? ", quick matrix" : "", qv_kplugin_name(g.plugin), g.plugin_path);
        else
            printf("qvet gate: config %s, seed %llu%s; cpu-emul: on; gpu: %s\n", g.cfg_path, g.seed,
                   g.quick ? ", quick matrix" : "", qv_gpu_describe());
        run_all(&g, synth, um);
        if (old) baseline_compare(&g, old, baseline);
        double secs = now_s() - t0;
        if (g.n_gpu_skip) printf("GPU: %ld GPU cases skipped (no GPU device)\n", g.n_gpu_skip);
        /* --plugin with every case skipped (the plugin implements none of the selected kernels):
         * nothing was proven, which is not a pass */
        const int hollow = g.plugin && g.n_pass == 0 && g.n_fail == 0, verdict_fail = g.n_fail || hollow;
        if (hollow) printf("gate: no case ran on the plugin\n");
        printf("gate: %ld cases: %ld passed, %ld failed, %ld skipped (%.1f s) -> %s\n", g.n_pass + g.n_fail + g.n_skip, g.n_pass,
               g.n_fail, g.n_skip, secs, verdict_fail ? "FAIL" : "PASS");
        rc = verdict_fail ? QV_EXIT_FAIL : QV_EXIT_OK;
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "schema", "qvet.gate/1");
        cJSON_AddStringToObject(root, "qvet_version", QV_VERSION_STRING);
        cJSON_AddStringToObject(root, "config", g.cfg_path);
        cJSON_AddNumberToObject(root, "config_version", g.cfgv.version);
        cJSON_AddNumberToObject(root, "seed", (double)g.seed);
        cJSON_AddBoolToObject(root, "quick", g.quick);
        cJSON_AddBoolToObject(root, "gpu", qv_gpu_device_count() > 0);
        if (g.plugin) {
            cJSON *jp = cJSON_AddObjectToObject(root, "plugin");
            cJSON_AddStringToObject(jp, "name", qv_kplugin_name(g.plugin));
            cJSON_AddStringToObject(jp, "path", g.plugin_path);
        }
        cJSON *sum = cJSON_AddObjectToObject(root, "summary");
        cJSON_AddNumberToObject(sum, "passed", (double)g.n_pass);
        cJSON_AddNumberToObject(sum, "failed", (double)g.n_fail);
        cJSON_AddNumberToObject(sum, "skipped", (double)g.n_skip);
        cJSON_AddNumberToObject(sum, "gpu_skipped", (double)g.n_gpu_skip);
        cJSON_AddStringToObject(sum, "verdict", verdict_fail ? "fail" : "pass");
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
    qv_gate_config_free(&g.cfgv);
    cJSON_Delete(old);
    qv_kcase_set_plugin(NULL);
    qv_kplugin_close(g.plugin);
    return rc;
}
