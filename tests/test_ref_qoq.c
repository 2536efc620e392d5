/* ref-qoq: its linear layers are ref/qoq's integer GEMMs bit for bit; per-token A8 makes every
 * row independent of the others (prefill vs decode, batch vs alone); the fp_* ablations turn it
 * into ref-fp32 exactly; a checkpoint runs as the in-memory quantized model; per-tensor A8 and
 * KV4 cost accuracy on the synthetic model (KLD figures printed). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qv_test_util.h"
#include "qvet/engine.h"
#include "qvet/qmodel.h"
#include "qvet/qoq.h"
#include "qvet/ref_qoq.h"
#include "qvet/synth.h"

/* qv_test_tmpdir() returns a fresh malloc'd name per call: keep one per process */
static const char *tmpdir(void)
{
    static char *d;
    if (!d) d = qv_test_tmpdir();
    return d;
}

static qv_model *synth(void)
{
    qv_model *m = NULL;
    ck_assert_msg(qv_synth_open(QV_SYNTH_TINY, 3, &m) == QV_OK, "%s", qv_last_error());
    return m;
}

static void rand_tokens(int32_t *t, int n, int V, uint64_t seed)
{
    qv_test_rng r = {seed};
    for (int i = 0; i < n; i++) t[i] = (int32_t)(qv_test_next(&r) % (uint64_t)V);
}

static qv_engine *open_qoq(const qv_model *m, qv_qmodel *qm, const qv_engine_opts *o)
{
    qv_engine *e = NULL;
    ck_assert_msg(qv_ref_qoq_open_qmodel(m, qm, o, &e) == QV_OK, "%s", qv_last_error());
    return e;
}

/* logits of every position of one sequence */
static float *run_all(qv_engine *e, const int32_t *tok, int n, int V)
{
    float *lg = malloc(sizeof(float) * (size_t)n * V);
    qv_seq_id id;
    ck_assert(qv_engine_seq_create(e, 1, &id) == QV_OK);
    ck_assert_msg(qv_engine_prefill(e, 1, &id, &tok, &n, 0, lg) == QV_OK, "%s", qv_last_error());
    qv_engine_seq_free(e, id);
    return lg;
}

/* mean over positions of KL(p_ref || p) */
static double mean_kld(const float *ref, const float *q, int n, int V)
{
    double tot = 0;
    for (int t = 0; t < n; t++) {
        const float *a = ref + (size_t)t * V, *b = q + (size_t)t * V;
        double ma = -INFINITY, mb = -INFINITY, sa = 0, sb = 0, kl = 0;
        for (int v = 0; v < V; v++) ma = fmax(ma, a[v]), mb = fmax(mb, b[v]);
        for (int v = 0; v < V; v++) sa += exp(a[v] - ma), sb += exp(b[v] - mb);
        for (int v = 0; v < V; v++) {
            double la = a[v] - ma - log(sa), lb = b[v] - mb - log(sb);
            kl += exp(la) * (la - lb);
        }
        tot += kl;
    }
    return tot / n;
}

/* ---- every linear layer = the ref/qoq GEMM emulation on its captured input ---- */

typedef struct {
    int layer;
    float *x[8], *y[8];
    int T, K[8], N[8];
} probe_store;

static void on_linear(void *user, int layer, int id, const float *x, int T, int K, const float *y, int N)
{
    probe_store *s = user;
    if (layer != s->layer || id >= 7) return;
    s->T = T, s->K[id] = K, s->N[id] = N;
    free(s->x[id]);
    free(s->y[id]);
    s->x[id] = malloc(sizeof(float) * (size_t)T * K);
    s->y[id] = malloc(sizeof(float) * (size_t)T * N);
    memcpy(s->x[id], x, sizeof(float) * (size_t)T * K);
    memcpy(s->y[id], y, sizeof(float) * (size_t)T * N);
}

START_TEST(each_linear_layer_is_the_qoq_gemm_bit_for_bit)
{
    qv_model *m = synth();
    int n = 19;
    int32_t tok[19];
    rand_tokens(tok, n, m->cfg.vocab_size, 5);
    for (int f = 0; f < QV_QFMT_COUNT; f++)
        for (int compat = 0; compat < 2; compat++) {
            qv_qmodel *qm = NULL;
            ck_assert(qv_qmodel_quantize_rtn(m, (qv_qformat)f, 4, &qm) == QV_OK);
            qv_engine_opts o;
            qv_engine_opts_init(&o);
            o.qserve_compat = compat;
            qv_engine *e = open_qoq(m, qm, &o);
            probe_store s = {.layer = 2};
            qv_ref_qoq_set_probe(e, on_linear, &s);
            free(run_all(e, tok, n, m->cfg.vocab_size));
            long checked = 0;
            for (int id = 0; id < 7; id++) {
                const qv_qlinear *l = qv_qmodel_linear(qm, 2, (qv_qlinear_id)id);
                int T = s.T, K = s.K[id], N = s.N[id], G = K / 128;
                ck_assert_int_eq(K, l->K);
                ck_assert_int_eq(N, l->N);
                int8_t *q = malloc((size_t)T * K);
                float *sa = malloc(sizeof(float) * T), *rs = malloc(sizeof(float) * T);
                uint8_t *u = malloc((size_t)N * K), *s1 = malloc((size_t)N * (G ? G : 1)), *sz1 = malloc((size_t)N * (G ? G : 1));
                qv_fp16 *Y = malloc(sizeof(qv_fp16) * (size_t)T * N);
                ck_assert(qv_quant_a8_ref(s.x[id], T, K, q, sa, rs, compat) == QV_OK);
                ck_assert(qv_qlinear_unpack(l, u, G ? s1 : NULL, G ? sz1 : NULL) == QV_OK);
                qv_status st;
                if (f == QV_QFMT_W4A8_G128)
                    st = qv_ref_w4a8_g128_gemm(q, sa, u, l->s0, s1, sz1, T, N, K, compat, QV_GEMM_LOOP, Y, NULL, NULL);
                else if (f == QV_QFMT_W4A8_CHN)
                    st = qv_ref_w4a8_pc_gemm(q, sa, rs, u, l->scale, l->szero, T, N, K, compat, QV_GEMM_LOOP, Y, NULL, NULL);
                else
                    st = qv_ref_w8a8_gemm(q, sa, (const int8_t *)l->qweight, l->scale, T, N, K, compat, QV_GEMM_LOOP, Y, NULL, NULL);
                ck_assert_int_eq(st, QV_OK);
                for (size_t i = 0; i < (size_t)T * N; i++, checked++)
                    ck_assert_msg(qv_fp32_to_fp16(s.y[id][i]) == Y[i] && qv_fp16_to_fp32(Y[i]) == s.y[id][i],
                                  "format %d compat %d linear %d element %zu: engine %g, ref/qoq %g", f, compat, id, i,
                                  (double)s.y[id][i], (double)qv_fp16_to_fp32(Y[i]));
                free(q), free(sa), free(rs), free(u), free(s1), free(sz1), free(Y);
                free(s.x[id]), free(s.y[id]);
            }
            printf("%s%s: layer 2, 7 linears, %ld outputs equal ref/qoq's loop GEMM bit for bit\n",
                   qv_qformat_name((qv_qformat)f), compat ? " (qserve-compat)" : "", checked);
            qv_engine_close(e);
            qv_qmodel_close(qm);
        }
    qv_model_close(m);
}
END_TEST

/* ---- per-token A8: a row's result never depends on the other rows ---- */

typedef struct {
    float *rows; /* layer-0 q_proj outputs, last row */
    int N;
} lastrow;

static void keep_last_q(void *user, int layer, int id, const float *x, int T, int K, const float *y, int N)
{
    (void)x, (void)K;
    lastrow *s = user;
    if (layer != 0 || id != QV_QL_Q) return;
    s->N = N;
    free(s->rows);
    s->rows = malloc(sizeof(float) * N);
    memcpy(s->rows, y + (size_t)(T - 1) * N, sizeof(float) * N);
}

START_TEST(prefill_n_equals_prefill_n_minus_1_then_decode_kv4)
{
    qv_model *m = synth();
    int V = m->cfg.vocab_size;
    for (int mode = 0; mode < 2; mode++) {
        qv_engine_opts o;
        qv_engine_opts_init(&o);
        o.attn_mode = mode ? QV_ATTN_SERVE : QV_ATTN_KV4;
        qv_engine *e = NULL;
        ck_assert_msg(qv_engine_open("ref-qoq", m, &o, &e) == QV_OK, "%s", qv_last_error());
        for (int n = 2; n <= 40; n += 19) {
            int32_t tok[48];
            rand_tokens(tok, n, V, 50 + n);
            float *a = malloc(sizeof(float) * V), *b = malloc(sizeof(float) * V);
            lastrow ra = {0}, rb = {0};
            qv_seq_id id[2];
            ck_assert(qv_engine_seq_create(e, 2, id) == QV_OK);
            const int32_t *tp = tok;
            qv_ref_qoq_set_probe(e, keep_last_q, &ra);
            ck_assert(qv_engine_prefill(e, 1, &id[0], &tp, &n, 1, a) == QV_OK);
            qv_ref_qoq_set_probe(e, NULL, NULL);
            int n1 = n - 1;
            ck_assert(qv_engine_prefill(e, 1, &id[1], &tp, &n1, 1, NULL) == QV_OK);
            qv_ref_qoq_set_probe(e, keep_last_q, &rb);
            ck_assert(qv_engine_decode(e, 1, &id[1], &tok[n - 1], b) == QV_OK);
            qv_ref_qoq_set_probe(e, NULL, NULL);
            ck_assert_int_eq(qv_engine_seq_len(e, id[1]), n);
            /* the last token's layer-0 q_proj row: same input row, so the same integers and outputs */
            ck_assert_int_eq(memcmp(ra.rows, rb.rows, sizeof(float) * ra.N), 0);
            double maxd = 0, maxl = 0, kl = mean_kld(a, b, 1, V);
            for (int v = 0; v < V; v++) maxd = fmax(maxd, fabs(a[v] - b[v])), maxl = fmax(maxl, fabs(a[v]));
            printf("%s mode: prefill %d vs prefill %d + decode: layer-0 q row identical; last logits differ by %.3g x "
                   "max|logit|, KLD %.3g\n", mode ? "serve" : "kv4", n, n - 1, maxd / maxl, kl);
            qv_engine_seq_free(e, id[0]);
            qv_engine_seq_free(e, id[1]);
            free(a), free(b), free(ra.rows), free(rb.rows);
        }
        qv_engine_close(e);
    }
    qv_model_close(m);
}
END_TEST

START_TEST(ragged_batch_rows_equal_alone_rows)
{
    qv_model *m = synth();
    int V = m->cfg.vocab_size, lens[3] = {9, 1, 33};
    int32_t tok[3][40];
    const int32_t *tp[3];
    for (int i = 0; i < 3; i++) rand_tokens(tok[i], lens[i], V, 70 + i), tp[i] = tok[i];
    qv_engine *e = NULL;
    ck_assert(qv_engine_open("ref-qoq", m, NULL, &e) == QV_OK);
    float *batch = malloc(sizeof(float) * 3 * V), *alone = malloc(sizeof(float) * V);
    qv_seq_id id[3];
    probe_store pb = {.layer = 0}, pa = {.layer = 0};
    ck_assert(qv_engine_seq_create(e, 3, id) == QV_OK);
    qv_ref_qoq_set_probe(e, on_linear, &pb);
    ck_assert(qv_engine_prefill(e, 3, id, tp, lens, 1, batch) == QV_OK);
    int row0 = 0;
    for (int i = 0; i < 3; i++) {
        qv_seq_id one;
        ck_assert(qv_engine_seq_create(e, 1, &one) == QV_OK);
        qv_ref_qoq_set_probe(e, on_linear, &pa);
        ck_assert(qv_engine_prefill(e, 1, &one, &tp[i], &lens[i], 1, alone) == QV_OK);
        /* layer 0's linears see the same rows (embeddings, row-wise RMSNorm), so with per-token A8
         * and exact integer GEMMs their outputs are the same bits, whatever the batch holds */
        for (int id2 = 0; id2 < 3; id2++)
            ck_assert_int_eq(memcmp(pa.y[id2], pb.y[id2] + (size_t)row0 * pb.N[id2],
                                    sizeof(float) * (size_t)lens[i] * pb.N[id2]), 0);
        double maxd = 0, kl = mean_kld(alone, batch + (size_t)i * V, 1, V);
        for (int v = 0; v < V; v++) maxd = fmax(maxd, fabs(batch[(size_t)i * V + v] - alone[v]));
        printf("ragged batch seq %d (len %d) vs alone: layer-0 q/k/v rows identical; logits max |diff| %.3g, KLD %.3g\n",
               i, lens[i], maxd, kl);
        row0 += lens[i];
        qv_engine_seq_free(e, one);
    }
    qv_ref_qoq_set_probe(e, NULL, NULL);
    for (int k = 0; k < 8; k++) free(pa.x[k]), free(pa.y[k]), free(pb.x[k]), free(pb.y[k]);
    free(batch), free(alone);
    qv_engine_close(e);
    qv_model_close(m);
}
END_TEST

/* ---- ablations ---- */

START_TEST(all_fp_flags_give_ref_fp32_logits_exactly)
{
    qv_model *m = synth();
    int V = m->cfg.vocab_size, n = 24;
    int32_t tok[24];
    rand_tokens(tok, n, V, 9);
    qv_engine *ef = NULL, *eq = NULL;
    ck_assert(qv_engine_open("ref-fp32", m, NULL, &ef) == QV_OK);
    float *ref = run_all(ef, tok, n, V);
    qv_engine_opts o;
    qv_engine_opts_init(&o);
    o.fp_kv = 1;
    for (int l = 0; l < m->cfg.num_layers; l++) qv_layer_mask_set(&o.fp_weights, l), qv_layer_mask_set(&o.fp_acts, l);
    ck_assert_msg(qv_engine_open("ref-qoq", m, &o, &eq) == QV_OK, "%s", qv_last_error());
    float *q = run_all(eq, tok, n, V);
    ck_assert_int_eq(memcmp(ref, q, sizeof(float) * (size_t)n * V), 0);
    qv_engine_close(eq);
    free(q);
    /* each flag alone moves the engine toward ref-fp32 */
    double kl[4];
    for (int k = 0; k < 4; k++) {
        qv_engine_opts_init(&o);
        if (k == 1) o.fp_kv = 1;
        for (int l = 0; l < m->cfg.num_layers; l++) {
            if (k == 2) qv_layer_mask_set(&o.fp_weights, l);
            if (k == 3) qv_layer_mask_set(&o.fp_weights, l), qv_layer_mask_set(&o.fp_acts, l);
        }
        ck_assert_msg(qv_engine_open("ref-qoq", m, &o, &eq) == QV_OK, "%s", qv_last_error());
        q = run_all(eq, tok, n, V);
        kl[k] = mean_kld(ref, q, n, V);
        qv_engine_close(eq);
        free(q);
    }
    printf("KLD vs ref-fp32: W4A8KV4 g128 RTN %.4g; fp_kv (W4A8KV16) %.4g; fp_weights (W16A8KV4) %.4g; fp_weights+fp_acts (KV4 only) %.4g\n",
           kl[0], kl[1], kl[2], kl[3]);
    ck_assert(kl[1] < kl[0] && kl[2] < kl[0] && kl[3] < kl[0]);
    qv_engine_close(ef);
    free(ref);
    qv_model_close(m);
}
END_TEST

START_TEST(per_tensor_a8_and_kv4_cost_accuracy_on_the_synthetic_model)
{
    qv_model *m = synth();
    int V = m->cfg.vocab_size, n = 64;
    int32_t tok[64];
    rand_tokens(tok, n, V, 11);
    qv_engine *ef = NULL;
    ck_assert(qv_engine_open("ref-fp32", m, NULL, &ef) == QV_OK);
    float *ref = run_all(ef, tok, n, V);
    qv_engine_close(ef);
    qv_qmodel *qm = NULL;
    ck_assert(qv_qmodel_quantize_rtn(m, QV_QFMT_W8A8, 16, &qm) == QV_OK);
    double kl[2];
    for (int pt = 0; pt < 2; pt++) {
        qv_engine *e = open_qoq(m, qm, NULL);
        qv_ref_qoq_set_per_tensor_a8(e, pt);
        float *q = run_all(e, tok, n, V);
        kl[pt] = mean_kld(ref, q, n, V);
        free(q);
        qv_engine_close(e);
    }
    printf("W8A8 KV16: KLD vs ref-fp32, per-token A8 %.4g, per-tensor A8 %.4g (%.1fx)\n", kl[0], kl[1], kl[1] / kl[0]);
    ck_assert_msg(kl[1] > 2 * kl[0], "per-tensor %g vs per-token %g", kl[1], kl[0]);
    qv_qmodel_close(qm);
    /* KV4 (no SmoothAttention) vs KV16, weights and activations in FP so only the cache differs */
    qv_engine_opts o;
    double kk[2];
    for (int kv16 = 0; kv16 < 2; kv16++) {
        qv_engine_opts_init(&o);
        o.fp_kv = kv16;
        for (int l = 0; l < m->cfg.num_layers; l++) qv_layer_mask_set(&o.fp_weights, l);
        qv_engine *e = NULL;
        ck_assert(qv_engine_open("ref-qoq", m, &o, &e) == QV_OK);
        float *q = run_all(e, tok, n, V);
        kk[kv16] = mean_kld(ref, q, n, V);
        free(q);
        qv_engine_close(e);
    }
    printf("W16A8: KLD vs ref-fp32, KV4 (no SmoothAttention) %.4g, KV16 %.4g (%.1fx)\n", kk[0], kk[1], kk[0] / kk[1]);
    ck_assert_msg(kk[0] > kk[1], "KV4 %g vs KV16 %g", kk[0], kk[1]);
    free(ref);
    qv_model_close(m);
}
END_TEST

/* ---- a checkpoint runs exactly as the quantized model it was written from ---- */

START_TEST(checkpoint_engine_equals_in_memory_engine)
{
    qv_model *m = synth();
    int V = m->cfg.vocab_size, n = 17;
    int32_t tok[17];
    rand_tokens(tok, n, V, 13);
    char path[512];
    snprintf(path, sizeof path, "%s/ck.safetensors", tmpdir());
    for (int f = 0; f < QV_QFMT_COUNT; f++) {
        qv_qmodel *qm = NULL;
        ck_assert(qv_qmodel_quantize_rtn(m, (qv_qformat)f, f == 2 ? 16 : 4, &qm) == QV_OK);
        ck_assert(qv_qmodel_write(qm, path) == QV_OK);
        qv_engine *a = open_qoq(m, qm, NULL), *b = NULL;
        qv_engine_opts o;
        qv_engine_opts_init(&o);
        o.quantized_path = path;
        ck_assert_msg(qv_engine_open("ref-qoq", m, &o, &b) == QV_OK, "%s", qv_last_error());
        ck_assert_int_eq(qv_ref_qoq_qmodel(b)->meta.kv_bits, f == 2 ? 16 : 4);
        float *la = run_all(a, tok, n, V), *lb = run_all(b, tok, n, V);
        ck_assert_int_eq(memcmp(la, lb, sizeof(float) * (size_t)n * V), 0);
        free(la), free(lb);
        qv_engine_close(a);
        qv_engine_close(b);
        qv_qmodel_close(qm);
    }
    /* fp_weights needs FP weights, which a checkpoint lacks */
    qv_engine_opts o;
    qv_engine_opts_init(&o);
    o.quantized_path = path;
    qv_layer_mask_set(&o.fp_weights, 0);
    qv_engine *e = NULL;
    ck_assert_int_eq(qv_engine_open("ref-qoq", m, &o, &e), QV_ERR_UNSUPPORTED);
    unlink(path);
    qv_model_close(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ref_qoq");
    TCase *tc = tcase_create("ref_qoq");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, each_linear_layer_is_the_qoq_gemm_bit_for_bit);
    tcase_add_test(tc, prefill_n_equals_prefill_n_minus_1_then_decode_kv4);
    tcase_add_test(tc, ragged_batch_rows_equal_alone_rows);
    tcase_add_test(tc, all_fp_flags_give_ref_fp32_logits_exactly);
    tcase_add_test(tc, per_tensor_a8_and_kv4_cost_accuracy_on_the_synthetic_model);
    tcase_add_test(tc, checkpoint_engine_equals_in_memory_engine);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
