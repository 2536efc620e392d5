/* bench_gpu_engines [JSON]: end-to-end decode tokens/s of gpu-qoq vs gpu-fp16 (FP16, and BF16 as
 * with --dtype bf16) on the llama3-8b-shape synthetic preset (two Llama-3-8B layers, vocab 512)
 * at batch 1, 16, 64.
 * Protocol: B sequences of 128 prompt tokens prefilled in one call, 2 decode steps of warm-up, then
 * 16 timed decode steps (each: one token per sequence, logits [B, vocab] downloaded to the host,
 * as an eval loop does). tokens/s = B * 16 / wall time. Without CUDA or a device: exit 2. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "qvet/engine.h"
#include "qvet/gpu.h"
#include "qvet/synth.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

enum { PROMPT = 128, WARM = 2, STEPS = 16 };

static qv_status one(const qv_model *m, const char *name, qv_dtype16 type, int B, double *tps, double *ms_step)
{
    qv_engine *e;
    qv_engine_opts o;
    qv_engine_opts_init(&o);
    o.dtype = type;
    QV_TRY(qv_engine_open(name, m, &o, &e));
    int V = m->cfg.vocab_size;
    qv_seq_id s[64];
    int32_t *tok[64], n[64], nx[64];
    float *lg = malloc(sizeof(float) * (size_t)B * V);
    qv_status st = qv_engine_seq_create(e, B, s);
    for (int i = 0; i < B; i++) {
        tok[i] = malloc(sizeof(int32_t) * PROMPT);
        for (int p = 0; p < PROMPT; p++) tok[i][p] = 2 + (i * 131 + p * 17) % (V - 2);
        n[i] = PROMPT;
        nx[i] = 2 + i % (V - 2);
    }
    if (st == QV_OK) st = qv_engine_prefill(e, B, s, (const int32_t *const *)tok, n, 1, lg);
    for (int k = 0; k < WARM && st == QV_OK; k++) st = qv_engine_decode(e, B, s, nx, lg);
    double t0 = now_s();
    for (int k = 0; k < STEPS && st == QV_OK; k++) st = qv_engine_decode(e, B, s, nx, lg);
    double dt = now_s() - t0;
    *tps = (double)B * STEPS / dt;
    *ms_step = 1e3 * dt / STEPS;
    for (int i = 0; i < B; i++) free(tok[i]);
    free(lg);
    qv_engine_close(e);
    return st;
}

int main(int argc, char **argv)
{
    const char *json = argc > 1 ? argv[1] : "bench_gpu_engines.json";
    if (qv_gpu_device_count() == 0) {
        fprintf(stderr, "bench_gpu_engines: no GPU: %s\n", qv_gpu_describe());
        return 2;
    }
    qv_model *m;
    if (qv_synth_open(QV_SYNTH_LLAMA3_8B_SHAPE, 1, &m) != QV_OK) {
        fprintf(stderr, "bench_gpu_engines: %s\n", qv_last_error());
        return 3;
    }
    FILE *f = fopen(json, "w");
    if (!f) {
        fprintf(stderr, "bench_gpu_engines: cannot write %s\n", json);
        return 2;
    }
    fprintf(f, "{\"device\": \"%s\", \"model\": \"synthetic llama3-8b-shape (2 layers, vocab 512)\", \"prompt\": %d, "
               "\"timed_steps\": %d, \"cases\": [",
            qv_gpu_describe(), PROMPT, STEPS);
    printf("%-9s %5s %5s %12s %10s\n", "engine", "dtype", "batch", "tokens/s", "ms/step");
    const char *names[] = {"gpu-fp16", "gpu-fp16", "gpu-qoq"};
    const qv_dtype16 dts[] = {QV_DTYPE_FP16, QV_DTYPE_BF16, QV_DTYPE_FP16};
    int Bs[] = {1, 16, 64}, first = 1, rc = 0;
    for (int b = 0; b < 3; b++)
        for (int i = 0; i < 3; i++) {
            double tps = 0, ms = 0;
            const char *dn = qv_dtype16_name(dts[i]);
            qv_status st = one(m, names[i], dts[i], Bs[b], &tps, &ms);
            if (st != QV_OK) {
                fprintf(stderr, "bench_gpu_engines: %s %s batch %d: %s\n", names[i], dn, Bs[b], qv_last_error());
                rc = 3;
                continue;
            }
            printf("%-9s %5s %5d %12.1f %10.3f\n", names[i], dn, Bs[b], tps, ms);
            fprintf(f,
                    "%s{\"engine\": \"%s\", \"dtype\": \"%s\", \"batch\": %d, \"tokens_per_s\": %.2f, "
                    "\"ms_per_step\": %.4f}",
                    first ? "" : ", ", names[i], dn, Bs[b], tps, ms);
            first = 0;
        }
    fprintf(f, "]}\n");
    fclose(f);
    qv_model_close(m);
    return rc;
}
