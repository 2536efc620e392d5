/* GPTQ (quant/gptq.c): on a random layer with correlated inputs, GPTQ's output error on the
 * calibration rows is strictly below round-to-nearest's with the same quantizer (all three
 * formats); it keeps the quantizer's scales bit for bit; with a diagonal Hessian (no error to feed
 * anywhere) its codes ARE the quantizer's; it is deterministic; the checkpoint built from a GPTQ
 * calibration passes qv_qmodel_open's range checks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qv_test_util.h"
#include "qvet/qmodel.h"
#include "qvet/quant.h"
#include "qvet/rand_model.h"

#define N_ 64
#define K_ 256
#define M_ 1024

/* X = Z A + noise: rank-32 structure (correlated channels, as real activations), channel scales
 * spread over 2 decades, two outlier channels x8. W ~ N(0, 0.02^2) with a few large weights. */
static void make_layer(uint64_t seed, float *X, float *W)
{
    qv_test_rng r = {seed};
    enum { R = 32 };
    float *A = malloc(sizeof(float) * R * K_), cs[K_];
    for (int i = 0; i < R * K_; i++) A[i] = (float)qv_test_normal(&r);
    for (int k = 0; k < K_; k++) cs[k] = (float)pow(10.0, 2.0 * qv_test_uniform(&r) - 1.0) * (k == 7 || k == 200 ? 8.0f : 1.0f);
    for (int m = 0; m < M_; m++) {
        float z[R];
        for (int j = 0; j < R; j++) z[j] = (float)qv_test_normal(&r);
        for (int k = 0; k < K_; k++) {
            float v = 0.3f * (float)qv_test_normal(&r);
            for (int j = 0; j < R; j++) v += z[j] * A[j * K_ + k] / 6.0f;
            X[(size_t)m * K_ + k] = v * cs[k];
        }
    }
    for (int i = 0; i < N_ * K_; i++) W[i] = 0.02f * (float)qv_test_normal(&r) * (qv_test_uniform(&r) < 0.01 ? 6.0f : 1.0f);
    free(A);
}

/* ||X W^T - X Wq^T||_F^2 computed directly (double) */
static double out_err(const float *X, const float *W, const float *Wq)
{
    double e = 0;
    for (int m = 0; m < M_; m++)
        for (int n = 0; n < N_; n++) {
            double d = 0;
            for (int k = 0; k < K_; k++) d += (double)X[(size_t)m * K_ + k] * ((double)W[n * K_ + k] - Wq[n * K_ + k]);
            e += d * d;
        }
    return e;
}

static float *hessian_of(const float *X)
{
    float *Hs = calloc((size_t)K_ * K_, sizeof(float));
    qv_gptq_hessian_add(Hs, X, M_ / 2, K_); /* in two calls: the accumulation adds up */
    qv_gptq_hessian_add(Hs, X + (size_t)(M_ / 2) * K_, M_ / 2, K_);
    qv_gptq_hessian_finish(Hs, K_, M_);
    return Hs;
}

static size_t code_bytes(qv_qformat f)
{
    return f == QV_QFMT_W8A8 ? (size_t)N_ * K_ : (size_t)N_ * K_ / 2;
}

static void assert_same_scales(const qv_qlinear *a, const qv_qlinear *b)
{
    int G = K_ / 128;
    if (a->fmt == QV_QFMT_W4A8_G128) {
        ck_assert(!memcmp(a->s0, b->s0, sizeof(qv_fp16) * N_));
        ck_assert(!memcmp(a->s1, b->s1, (size_t)N_ * G));
        ck_assert(!memcmp(a->sz1, b->sz1, (size_t)N_ * G));
    } else {
        ck_assert(!memcmp(a->scale, b->scale, sizeof(qv_fp16) * N_));
        if (a->fmt == QV_QFMT_W4A8_CHN) ck_assert(!memcmp(a->szero, b->szero, sizeof(qv_fp16) * N_));
    }
}

START_TEST(gptq_output_error_is_below_rtn_with_the_same_quantizer)
{
    float *X = malloc(sizeof(float) * M_ * K_), *W = malloc(sizeof(float) * N_ * K_);
    float *Wq = malloc(sizeof(float) * N_ * K_), *Wr = malloc(sizeof(float) * N_ * K_);
    make_layer(11, X, W);
    float *Hs = hessian_of(X);
    qv_gptq_opts o;
    qv_gptq_opts_init(&o);
    o.block = 64; /* K_ = 256: four blocks, so the lazy block update is exercised */
    for (int f = 0; f < QV_QFMT_COUNT; f++) {
        qv_qlinear g, r;
        qv_gptq_info info;
        ck_assert_msg(qv_gptq_quantize((qv_qformat)f, W, NULL, N_, K_, NULL, Hs, &o, &g, &info) == QV_OK, "%s",
                      qv_last_error());
        ck_assert(qv_qlinear_quantize(W, N_, K_, (qv_qformat)f, NULL, NULL, &r) == QV_OK);
        assert_same_scales(&g, &r);
        ck_assert(qv_qlinear_dequant(&g, Wq) == QV_OK);
        ck_assert(qv_qlinear_dequant(&r, Wr) == QV_OK);
        double eg = out_err(X, W, Wq), er = out_err(X, W, Wr);
        printf("%s: ||XW^T - XQ^T||^2 RTN %.5g, GPTQ %.5g (ratio %.3f); info %.5g / %.5g\n",
               qv_qformat_name((qv_qformat)f), er, eg, eg / er, info.err_rtn * M_ / 2, info.err_gptq * M_ / 2);
        ck_assert_msg(eg < er, "%s: GPTQ error %.6g is not below RTN's %.6g", qv_qformat_name((qv_qformat)f), eg, er);
        /* the reported errors are the same quantities through H = 2/M_ X^T X (FP32 sums: 1e-3) */
        ck_assert(fabs(info.err_gptq * M_ / 2 - eg) <= 1e-3 * eg);
        ck_assert(fabs(info.err_rtn * M_ / 2 - er) <= 1e-3 * er);
        ck_assert(qv_qlinear_check(&g, "gptq test") == QV_OK);
        /* determinism */
        qv_qlinear g2;
        ck_assert(qv_gptq_quantize((qv_qformat)f, W, NULL, N_, K_, NULL, Hs, &o, &g2, NULL) == QV_OK);
        ck_assert(!memcmp(g.qweight, g2.qweight, code_bytes((qv_qformat)f)));
        qv_qlinear_free(&g), qv_qlinear_free(&g2), qv_qlinear_free(&r);
    }
    free(X), free(W), free(Wq), free(Wr), free(Hs);
}
END_TEST

/* With a diagonal H the inverse's Cholesky factor is diagonal: every column's error feeds
 * nothing, and the codes must be exactly the quantizer's (act order permutes the sweep only). */
START_TEST(diagonal_hessian_gives_exactly_the_quantizer_codes)
{
    float *X = malloc(sizeof(float) * M_ * K_), *W = malloc(sizeof(float) * N_ * K_), *Hs = calloc((size_t)K_ * K_, sizeof(float));
    make_layer(12, X, W);
    qv_test_rng r = {5};
    for (int k = 0; k < K_; k++) Hs[(size_t)k * K_ + k] = (float)(0.1 + qv_test_uniform(&r));
    qv_gptq_opts o;
    qv_gptq_opts_init(&o);
    for (int f = 0; f < QV_QFMT_COUNT; f++) {
        qv_qlinear g, q;
        ck_assert(qv_gptq_quantize((qv_qformat)f, W, NULL, N_, K_, NULL, Hs, &o, &g, NULL) == QV_OK);
        ck_assert(qv_qlinear_quantize(W, N_, K_, (qv_qformat)f, NULL, NULL, &q) == QV_OK);
        ck_assert_msg(!memcmp(g.qweight, q.qweight, code_bytes((qv_qformat)f)), "%s codes differ",
                      qv_qformat_name((qv_qformat)f));
        assert_same_scales(&g, &q);
        qv_qlinear_free(&g), qv_qlinear_free(&q);
    }
    free(X), free(W), free(Hs);
}
END_TEST

/* Scales from weights clipped hard (ratio 0.5) while the sweep starts from the unclipped ones:
 * the updated weights leave the groups' ranges, and every code must still dequantize into INT8
 * (g128) — the linear passes the checkpoint's checks. */
START_TEST(clipped_scales_keep_codes_in_range)
{
    float *X = malloc(sizeof(float) * M_ * K_), *W = malloc(sizeof(float) * N_ * K_), *Wc = malloc(sizeof(float) * N_ * K_);
    make_layer(13, X, W);
    float *Hs = hessian_of(X), ratio[N_];
    for (int n = 0; n < N_; n++) ratio[n] = 0.5f;
    qv_gptq_opts o;
    qv_gptq_opts_init(&o);
    for (int f = 0; f < QV_QFMT_COUNT; f++) {
        memcpy(Wc, W, sizeof(float) * N_ * K_);
        qv_clip_apply((qv_qformat)f, Wc, N_, K_, ratio);
        qv_qlinear g, q;
        ck_assert_msg(qv_gptq_quantize((qv_qformat)f, W, Wc, N_, K_, NULL, Hs, &o, &g, NULL) == QV_OK, "%s",
                      qv_last_error());
        ck_assert(qv_qlinear_check(&g, "gptq clipped") == QV_OK);
        ck_assert(qv_qlinear_quantize(Wc, N_, K_, (qv_qformat)f, NULL, NULL, &q) == QV_OK);
        assert_same_scales(&g, &q);
        qv_qlinear_free(&g), qv_qlinear_free(&q);
    }
    free(X), free(W), free(Wc), free(Hs);
}
END_TEST

/* The whole calibration with GPTQ on a random model: deterministic, and the checkpoint holding
 * the GPTQ linears round-trips through qv_qmodel_write / qv_qmodel_open (all range checks). */
START_TEST(gptq_calibration_checkpoint_opens_and_is_deterministic)
{
    qv_rand_model_spec sp = {384, 256, 2, 6, 2, 64, 300, 256, QV_F32, 0, 1, QV_ROPE_DEFAULT, 10000.0, 21};
    qv_model *m = NULL;
    ck_assert(qv_rand_model_create(&sp, &m) == QV_OK);
    int32_t text[2000], *samples;
    qv_test_rng rr = {7};
    for (int i = 0; i < 2000; i++) text[i] = (int32_t)(qv_test_next(&rr) % 300);
    qv_quant_opts o;
    qv_quant_opts_init(&o);
    o.samples = 4, o.seqlen = 128, o.sub_rows = 128, o.threads = 1;
    ck_assert(qv_quant_sample(text, 2000, o.samples, o.seqlen, o.seed, &samples) == QV_OK);
    qv_qwork *w, *w2;
    qv_quant_report rep, rep2;
    ck_assert_msg(qv_quant_calibrate(m, samples, &o, &w, &rep) == QV_OK, "%s", qv_last_error());
    ck_assert(qv_quant_calibrate(m, samples, &o, &w2, &rep2) == QV_OK);
    ck_assert(w->gptq && rep.gptq_rows == 4 * 128);
    printf("random model: GPTQ error / RTN error %.3f over %d linears\n", rep.gptq_err / rep.gptq_err_rtn, 2 * 7);
    ck_assert(rep.gptq_err < rep.gptq_err_rtn);
    for (int i = 0; i < w->L * QV_QL_COUNT; i++) {
        const qv_qlinear *a = &w->gptq[i], *b = &w2->gptq[i];
        ck_assert(a->qweight && a->N == b->N && a->K == b->K);
        ck_assert(!memcmp(a->qweight, b->qweight, (size_t)a->N * a->K / 2));
    }
    /* install into the qmodel built from the same FP32 weights, write, reopen */
    const float *W[2 * 7], *B[2 * 7], *in[2], *post[2];
    for (int l = 0; l < 2; l++) {
        qv_qwork_layer *d = &w->layers[l];
        const float **Wl = W + l * 7, **Bl = B + l * 7;
        Wl[0] = d->wq, Wl[1] = d->wk, Wl[2] = d->wv, Wl[3] = d->wo, Wl[4] = d->w_gate, Wl[5] = d->w_up, Wl[6] = d->w_down;
        Bl[0] = d->bq, Bl[1] = d->bk, Bl[2] = d->bv, Bl[3] = d->bo, Bl[4] = Bl[5] = Bl[6] = NULL;
        in[l] = d->input_norm, post[l] = d->post_norm;
    }
    qv_qmodel_fp32_src src = {w->embed, w->lm_head, w->final_norm, in, post, W, B, NULL};
    qv_qmodel *qm = NULL, *back = NULL;
    ck_assert(qv_qmodel_from_fp32(m, &src, QV_QFMT_W4A8_G128, 4, NULL, &qm) == QV_OK);
    ck_assert(qv_quant_install_gptq(w2, qm) == QV_OK);
    ck_assert(!memcmp(qv_qmodel_linear(qm, 1, QV_QL_DOWN)->qweight, w->gptq[7 + QV_QL_DOWN].qweight, 384 * 256 / 2));
    char *dir = qv_test_tmpdir(), path[4096];
    ck_assert(dir);
    snprintf(path, sizeof path, "%s/gptq.st", dir);
    ck_assert(qv_qmodel_write(qm, path) == QV_OK);
    ck_assert_msg(qv_qmodel_open(path, &back) == QV_OK, "%s", qv_last_error());
    ck_assert(!memcmp(qv_qmodel_linear(back, 1, QV_QL_DOWN)->qweight, w->gptq[7 + QV_QL_DOWN].qweight, 384 * 256 / 2));
    qv_qmodel_close(back), qv_qmodel_close(qm);
    qv_qwork_free(w), qv_qwork_free(w2), qv_quant_report_free(&rep), qv_quant_report_free(&rep2);
    unlink(path), rmdir(dir);
    free(samples), free(dir);
    qv_rand_model_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gptq");
    TCase *tc = tcase_create("gptq");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, gptq_output_error_is_below_rtn_with_the_same_quantizer);
    tcase_add_test(tc, diagonal_hessian_gives_exactly_the_quantizer_codes);
    tcase_add_test(tc, clipped_scales_keep_codes_in_range);
    tcase_add_test(tc, gptq_calibration_checkpoint_opens_and_is_deterministic);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
