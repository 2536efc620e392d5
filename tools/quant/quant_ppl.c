/* Perplexity of a model or a quantized checkpoint for docs/quant.md's accuracy table (no `qvet
 * ppl` yet): PPL64K protocol of EVALS.md (no BOS, the first N ids of the text, chunks of ctx).
 * Usage: quant_ppl MODEL_DIR TEXT N_TOKENS CTX ENGINE [CKPT|-] [kv16|fpacts|kv16,fpacts|-] [NLL_OUT]
 * NLL_OUT: the per-chunk mean NLLs, one per line (for paired comparisons, tools/quant/paired.py).
 * Built by tools/quant/quant_ppl.sh against build/libqvet.a. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qvet/engine.h"
#include "qvet/evals.h"
#include "qvet/fileio.h"
#include "qvet/model.h"
#include "qvet/tokenizer.h"

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: %s MODEL TEXT N CTX ENGINE [CKPT|-] [kv16]\n", argv[0]);
        return 2;
    }
    qv_model *m;
    char *text;
    size_t len, n;
    int32_t *ids;
    if (qv_model_open(argv[1], &m) || qv_read_file(argv[2], (size_t)1 << 31, &text, &len) ||
        qv_tok_encode(m->tok, text, len, 0, &ids, &n)) {
        fprintf(stderr, "%s\n", qv_last_error());
        return 2;
    }
    long N = atol(argv[3]);
    if ((size_t)N > n) N = (long)n;
    qv_engine_opts o;
    qv_engine_opts_init(&o);
    if (argc > 6 && strcmp(argv[6], "-")) o.quantized_path = argv[6];
    if (argc > 7 && strstr(argv[7], "kv16")) o.fp_kv = 1;
    if (argc > 7 && strstr(argv[7], "fpacts")) /* activations FP16 in every layer (A8 ablation) */
        for (int l = 0; l < m->cfg.num_layers; l++) qv_layer_mask_set(&o.fp_acts, l);
    qv_engine *e;
    if (qv_engine_open(argv[5], m, &o, &e)) {
        fprintf(stderr, "%s\n", qv_last_error());
        return 2;
    }
    qv_ppl_opts po = {0};
    po.ctx = atoi(argv[4]);
    qv_ppl_result r;
    if (qv_eval_ppl(e, ids, N, &po, &r)) {
        fprintf(stderr, "%s\n", qv_last_error());
        return 1;
    }
    if (argc > 8) {
        FILE *f = fopen(argv[8], "w");
        if (!f) {
            fprintf(stderr, "cannot write %s\n", argv[8]);
            return 2;
        }
        for (int i = 0; i < r.n_chunks; i++) fprintf(f, "%.17g\n", r.chunk_nll[i]);
        fclose(f);
    }
    printf("ppl %.4f [%.4f, %.4f] tokens %ld ctx %d chunks %d engine %s ckpt %s%s%s\n", r.ppl, r.ppl_lo, r.ppl_hi, N,
           po.ctx, r.n_chunks, argv[5], o.quantized_path ? o.quantized_path : "-", o.fp_kv ? " kv16" : "", argc > 7 && strstr(argv[7], "fpacts") ? " fpacts" : "");
    qv_ppl_result_free(&r);
    qv_engine_close(e);
    free(ids), free(text);
    qv_model_close(m);
    return 0;
}
