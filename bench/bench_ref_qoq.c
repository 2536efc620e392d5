/* ref-qoq vs ref-fp32 on one model in one run.
 *   bench_ref_qoq prefill [MODEL_DIR] [T]      prefill time of T tokens (default 1024), each engine
 *   bench_ref_qoq ppl MODEL_DIR TEXT [CTX]     PPL64K protocol (no BOS, first 65,536 ids, ctx 1024):
 *                                             ref-fp32 and ref-qoq RTN in four formats
 * MODEL_DIR "-" (or absent) is the built-in synthetic tiny model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qvet/engine.h"
#include "qvet/evals.h"
#include "qvet/fileio.h"
#include "qvet/qmodel.h"
#include "qvet/ref_qoq.h"
#include "qvet/synth.h"
#include "qvet/tokenizer.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int die(const char *what)
{
    fprintf(stderr, "bench_ref_qoq: %s: %s\n", what, qv_last_error());
    return 3;
}

static double time_prefill(qv_engine *e, const int32_t *tok, int T, int V)
{
    float *lg = malloc(sizeof(float) * V);
    double best = 1e30;
    for (int rep = 0; rep < 2; rep++) {
        qv_seq_id id;
        qv_engine_seq_create(e, 1, &id);
        double t0 = now_s();
        if (qv_engine_prefill(e, 1, &id, &tok, &T, 1, lg) != QV_OK) fprintf(stderr, "prefill: %s\n", qv_last_error());
        double t = now_s() - t0;
        if (t < best) best = t;
        qv_engine_seq_free(e, id);
    }
    free(lg);
    return best;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "prefill";
    const char *dir = argc > 2 ? argv[2] : "-";
    qv_model *m = NULL;
    qv_status st = strcmp(dir, "-") == 0 ? qv_synth_open(QV_SYNTH_TINY, 1, &m) : qv_model_open(dir, &m);
    if (st != QV_OK) return die("model");
    int V = m->cfg.vocab_size;
    if (strcmp(mode, "prefill") == 0) {
        int T = argc > 3 ? atoi(argv[3]) : 1024;
        int32_t *tok = malloc(sizeof(int32_t) * T);
        for (int i = 0; i < T; i++) tok[i] = (int32_t)((i * 7919u + 13u) % (unsigned)V);
        qv_engine *ef = NULL, *eq = NULL;
        if (qv_engine_open("ref-fp32", m, NULL, &ef) != QV_OK) return die("ref-fp32");
        if (qv_engine_open("ref-qoq", m, NULL, &eq) != QV_OK) return die("ref-qoq");
        double tf = time_prefill(ef, tok, T, V), tq = time_prefill(eq, tok, T, V);
        printf("{\"model\": \"%s\", \"tokens\": %d, \"ref_fp32_prefill_s\": %.4f, \"ref_qoq_prefill_s\": %.4f, "
               "\"ratio\": %.3f, \"format\": \"w4a8-g128 KV4 RTN\"}\n", m->dir, T, tf, tq, tq / tf);
        qv_engine_close(ef);
        qv_engine_close(eq);
        free(tok);
    } else if (strcmp(mode, "ppl") == 0 && argc > 3) {
        int ctx = argc > 4 ? atoi(argv[4]) : 1024;
        char *text = NULL;
        size_t n = 0, nid = 0;
        int32_t *ids = NULL;
        if (qv_read_file(argv[3], (size_t)1 << 30, &text, &n) != QV_OK) return die("text");
        if (!m->tok || qv_tok_encode(m->tok, text, n, 0, &ids, &nid) != QV_OK) return die("tokenize");
        if (nid > 65536) nid = 65536;
        static const struct { const char *name; int fp; qv_qformat f; int kv; } cfgs[] = {
            {"ref-fp32", 1, 0, 16},
            {"ref-qoq RTN w4a8-g128 KV4", 0, QV_QFMT_W4A8_G128, 4},
            {"ref-qoq RTN w4a8-chn KV4", 0, QV_QFMT_W4A8_CHN, 4},
            {"ref-qoq RTN w8a8 KV16", 0, QV_QFMT_W8A8, 16},
            {"ref-qoq RTN w4a8-g128 KV16", 0, QV_QFMT_W4A8_G128, 16},
        };
        for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
            qv_engine *e = NULL;
            qv_qmodel *qm = NULL;
            if (cfgs[c].fp) st = qv_engine_open("ref-fp32", m, NULL, &e);
            else if ((st = qv_qmodel_quantize_rtn(m, cfgs[c].f, cfgs[c].kv, &qm)) == QV_OK)
                st = qv_ref_qoq_open_qmodel(m, qm, NULL, &e);
            if (st != QV_OK) return die(cfgs[c].name);
            qv_ppl_opts o = {.ctx = ctx};
            qv_ppl_result r;
            double t0 = now_s();
            if (qv_eval_ppl(e, ids, (int64_t)nid, &o, &r) != QV_OK) return die("ppl");
            printf("%-30s ppl %.4f  95%% CI [%.4f, %.4f]  (%d chunks x %d%s, %.0f s)\n", cfgs[c].name, r.ppl, r.ppl_lo,
                   r.ppl_hi, r.n_chunks, r.ctx, cfgs[c].fp ? "" : ", attn mode kv4", now_s() - t0);
            fflush(stdout);
            qv_ppl_result_free(&r);
            qv_engine_close(e);
            qv_qmodel_close(qm);
        }
        free(ids);
        free(text);
    } else {
        fprintf(stderr, "usage: bench_ref_qoq prefill [MODEL_DIR|-] [T] | ppl MODEL_DIR TEXT [CTX]\n");
        return 2;
    }
    qv_model_close(m);
    return 0;
}
