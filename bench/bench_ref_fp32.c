/* ref-fp32 benchmark: prefill throughput against OpenBLAS sgemm peak measured in the same run,
 * decode cost per step at several contexts (linear growth shows the KV cache is reused), peak
 * RSS. Random-weight models built in memory, so it runs anywhere.
 *   bench_ref_fp32 [--preset tiny|llama3-8b-layer] [--layers N] [--vocab V] [--prefill N]
 *                  [--threads T] [--json PATH]
 * Presets: tiny = hidden 384, 8 layers, 6/2 heads of 64, inter 1024, vocab 8192 (the shape of
 * ../shared/models/qvet-tiny-llama); llama3-8b-layer = hidden 4096, 32/8 heads of 128, inter
 * 14336, 1 layer, vocab 32000 (Llama-3-8B's layer; its 128256 vocab only scales the LM head). */
#include <cJSON.h>
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "qvet/engine.h"
#include "qvet/fileio.h"
#include "qvet/rand_model.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best of `reps` runs of one sgemm of the engine's layout (x[M,K] @ W[N,K]^T), in GFLOP/s. */
static double sgemm_gflops(int M, int N, int K, int reps)
{
    float *a = malloc(sizeof(float) * (size_t)M * K), *b = malloc(sizeof(float) * (size_t)N * K),
          *c = malloc(sizeof(float) * (size_t)M * N);
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)N * K; i++) b[i] = (float)(i % 5) * 0.1f;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
        double t = now_s() - t0;
        if (t < best) best = t;
    }
    free(a), free(b), free(c);
    return 2.0 * M * (double)N * K / best / 1e9;
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static int fail(const char *what)
{
    fprintf(stderr, "bench_ref_fp32: %s: %s\n", what, qv_last_error());
    return 3;
}

int main(int argc, char **argv)
{
    const char *preset = "tiny", *json_path = NULL;
    int layers = -1, vocab = -1, prefill = -1, threads = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--preset") && i + 1 < argc) preset = argv[++i];
        else if (!strcmp(argv[i], "--layers") && i + 1 < argc) layers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--vocab") && i + 1 < argc) vocab = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--prefill") && i + 1 < argc) prefill = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
        else {
            fprintf(stderr, "usage: bench_ref_fp32 [--preset tiny|llama3-8b-layer] [--layers N] [--vocab V] "
                            "[--prefill N] [--threads T] [--json PATH]\n");
            return 2;
        }
    }
    qv_rand_model_spec s;
    if (!strcmp(preset, "tiny")) {
        s = (qv_rand_model_spec){.hidden = 384, .inter = 1024, .layers = 8, .heads = 6, .kv_heads = 2,
                                 .head_dim = 64, .vocab = 8192, .max_pos = 4096, .dtype = QV_F16,
                                 .rope_theta = 10000, .seed = 1};
        if (prefill < 0) prefill = 512;
    } else if (!strcmp(preset, "llama3-8b-layer")) {
        s = (qv_rand_model_spec){.hidden = 4096, .inter = 14336, .layers = 1, .heads = 32, .kv_heads = 8,
                                 .head_dim = 128, .vocab = 32000, .max_pos = 8192, .dtype = QV_BF16,
                                 .rope = QV_ROPE_LLAMA3, .rope_theta = 500000, .seed = 1};
        if (prefill < 0) prefill = 256;
    } else {
        fprintf(stderr, "bench_ref_fp32: unknown preset '%s'\n", preset);
        return 2;
    }
    if (layers > 0) s.layers = layers;
    if (vocab > 0) s.vocab = vocab;
    qv_model *m;
    if (qv_rand_model_create(&s, &m) != QV_OK) return fail("model");
    qv_engine_opts o;
    qv_engine_opts_init(&o);
    o.threads = threads;
    qv_engine *e;
    if (qv_engine_open("ref-fp32", m, &o, &e) != QV_OK) return fail("engine");
    long rss_loaded = peak_rss_kb();

    /* sgemm peak: the model's own largest GEMM at the prefill M, and a square one; best of both */
    int bigN = s.inter > s.vocab ? s.inter : s.vocab;
    double peak_model = sgemm_gflops(prefill, s.inter, s.hidden, 3);
    double peak_sq = sgemm_gflops(1024, 1024, 1024, 3);
    double peak = peak_model > peak_sq ? peak_model : peak_sq;
    (void)bigN;

    /* prefill */
    int32_t *tok = malloc(sizeof(int32_t) * 4096);
    for (int i = 0; i < 4096; i++) tok[i] = (int32_t)((i * 2654435761u) % (unsigned)s.vocab);
    float *logits = malloc(sizeof(float) * (size_t)s.vocab);
    qv_seq_id id;
    qv_engine_seq_create(e, 1, &id);
    const int32_t *tp = tok;
    /* warm-up: thread pools, first-touch of buffers */
    if (qv_engine_prefill(e, 1, &id, &tp, &prefill, 1, logits) != QV_OK) return fail("warm-up");
    qv_engine_seq_reset(e, id);
    qv_engine_stats before, after;
    qv_engine_get_stats(e, &before);
    double t0 = now_s();
    if (qv_engine_prefill(e, 1, &id, &tp, &prefill, 1, logits) != QV_OK) return fail("prefill");
    double t_prefill = now_s() - t0;
    qv_engine_get_stats(e, &after);
    double attn_s = after.attn_seconds - before.attn_seconds;
    double gemm_s = after.gemm_seconds - before.gemm_seconds, gemm_fl = after.gemm_flops - before.gemm_flops;

    /* decode: per-step cost at contexts 128, 512, 2048 */
    int ctxs[3] = {128, 512, 2048}, steps = 8;
    double step_ms[3], attn_ms[3];
    for (int c = 0; c < 3; c++) {
        qv_engine_seq_reset(e, id);
        int n = ctxs[c];
        if (qv_engine_prefill(e, 1, &id, &tp, &n, 1, NULL) != QV_OK) return fail("decode warm-up");
        double best = 1e30, best_attn = 1e30;
        for (int st = 0; st < steps; st++) {
            qv_engine_stats s0, s1;
            qv_engine_get_stats(e, &s0);
            double t1 = now_s();
            if (qv_engine_decode(e, 1, &id, &tok[n + st], logits) != QV_OK) return fail("decode");
            double t = now_s() - t1;
            qv_engine_get_stats(e, &s1);
            if (t < best) best = t;
            if (s1.attn_seconds - s0.attn_seconds < best_attn) best_attn = s1.attn_seconds - s0.attn_seconds;
        }
        step_ms[c] = best * 1e3;
        attn_ms[c] = best_attn * 1e3;
    }

    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "bench", "ref-fp32");
    cJSON_AddStringToObject(j, "preset", preset);
    cJSON *shape = cJSON_AddObjectToObject(j, "shape");
    cJSON_AddNumberToObject(shape, "hidden", s.hidden);
    cJSON_AddNumberToObject(shape, "intermediate", s.inter);
    cJSON_AddNumberToObject(shape, "layers", s.layers);
    cJSON_AddNumberToObject(shape, "heads", s.heads);
    cJSON_AddNumberToObject(shape, "kv_heads", s.kv_heads);
    cJSON_AddNumberToObject(shape, "head_dim", s.head_dim);
    cJSON_AddNumberToObject(shape, "vocab", s.vocab);
    cJSON_AddNumberToObject(j, "threads", threads);
    cJSON_AddNumberToObject(j, "sgemm_peak_gflops", peak);
    cJSON_AddNumberToObject(j, "sgemm_peak_model_shape_gflops", peak_model);
    cJSON_AddNumberToObject(j, "sgemm_peak_1024cube_gflops", peak_sq);
    cJSON *pf = cJSON_AddObjectToObject(j, "prefill");
    cJSON_AddNumberToObject(pf, "tokens", prefill);
    cJSON_AddNumberToObject(pf, "seconds", t_prefill);
    cJSON_AddNumberToObject(pf, "tokens_per_s", prefill / t_prefill);
    cJSON_AddNumberToObject(pf, "gemm_seconds", gemm_s);
    cJSON_AddNumberToObject(pf, "gemm_share_of_time", gemm_s / t_prefill);
    cJSON_AddNumberToObject(pf, "gemm_gflops", gemm_fl / gemm_s / 1e9);
    cJSON_AddNumberToObject(pf, "gemm_pct_of_peak", 100.0 * gemm_fl / gemm_s / 1e9 / peak);
    cJSON_AddNumberToObject(pf, "attention_seconds", attn_s);
    cJSON_AddNumberToObject(pf, "attention_share_of_time", attn_s / t_prefill);
    cJSON_AddNumberToObject(pf, "other_seconds", t_prefill - gemm_s - attn_s);
    cJSON_AddNumberToObject(pf, "overall_gflops_pct_of_peak", 100.0 * gemm_fl / t_prefill / 1e9 / peak);
    cJSON *dc = cJSON_AddArrayToObject(j, "decode");
    for (int c = 0; c < 3; c++) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddNumberToObject(d, "context", ctxs[c]);
        cJSON_AddNumberToObject(d, "ms_per_step", step_ms[c]);
        cJSON_AddNumberToObject(d, "attention_ms_per_step", attn_ms[c]);
        cJSON_AddItemToArray(dc, d);
    }
    cJSON_AddNumberToObject(j, "rss_after_open_mib", rss_loaded / 1024.0);
    cJSON_AddNumberToObject(j, "peak_rss_mib", peak_rss_kb() / 1024.0);
    char *txt = cJSON_Print(j);
    printf("%s\n", txt);
    if (json_path) {
        /* temp file + rename: an interrupted run never leaves a truncated report */
        size_t len = strlen(txt);
        txt[len] = '\n';
        qv_status wst = qv_write_file_atomic(json_path, txt, len + 1);
        txt[len] = 0;
        if (wst != QV_OK) {
            fprintf(stderr, "bench_ref_fp32: cannot write %s: %s\n", json_path, qv_last_error());
            return 2;
        }
    }
    free(txt);
    cJSON_Delete(j);
    free(tok), free(logits);
    qv_engine_close(e);
    qv_rand_model_free(m);
    return 0;
}
