/* QoQ calibration (quant/): each FP-preserving transform keeps the ref-fp32 logits within the
 * bound of docs/quant.md §Bounds; SmoothAttention's lambda is pair-shared; clipping never
 * increases the error it minimizes; the calibration is deterministic for a seed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qv_test_util.h"
#include "qvet/compare.h"
#include "qvet/engine.h"
#include "qvet/quant.h"
#include "qvet/rand_model.h"

/* hidden 384 = 3 x 128 exercises the block-diagonal Hadamard; 6 query heads over 2 KV heads the
 * GQA sharing; q/k/v biases the bias folding. */
static qv_model *rand_model(int bias, uint64_t seed)
{
    qv_rand_model_spec s = {384, 256, 2, 6, 2, 64, 300, 256, QV_F32, 0, bias, QV_ROPE_DEFAULT, 10000.0, seed};
    qv_model *m = NULL;
    ck_assert(qv_rand_model_create(&s, &m) == QV_OK);
    return m;
}

#define NTOK 24
static void tokens(int32_t *t, int vocab, uint64_t seed)
{
    qv_test_rng r = {seed};
    for (int i = 0; i < NTOK; i++) t[i] = (int32_t)(qv_test_next(&r) % (uint64_t)vocab);
}

/* all positions' logits [NTOK][V] */
static float *logits_of(const qv_model *m, const int32_t *tok)
{
    qv_engine *e;
    qv_engine_opts o;
    qv_engine_opts_init(&o);
    ck_assert(qv_engine_open("ref-fp32", m, &o, &e) == QV_OK);
    qv_seq_id id;
    ck_assert(qv_engine_seq_create(e, 1, &id) == QV_OK);
    float *lg = malloc(sizeof(float) * NTOK * (size_t)m->cfg.vocab_size);
    int n = NTOK;
    ck_assert(qv_engine_prefill(e, 1, &id, &tok, &n, 0, lg) == QV_OK);
    qv_engine_close(e);
    return lg;
}

/* docs/quant.md §Bounds: the original and the transformed forward are two FP32 evaluations of one
 * function; the transformed one also carries the rounding of its transformed weights (one more
 * dot-product-like stage per linear group, embeddings and LM head): 3/2 of the golden bound,
 * relative to max |logit|. */
static double bound_for(const qv_model *m, const float *ref)
{
    float mx = 0;
    for (size_t i = 0; i < (size_t)NTOK * m->cfg.vocab_size; i++) mx = fmaxf(mx, fabsf(ref[i]));
    return 1.5 * qv_golden_bound_rel(&m->cfg, m->cfg.num_layers, NTOK) * mx;
}

/* max |a - b| / bound */
static double ratio_to_bound(const qv_model *m, const qv_qwork *w, const float *ref, const int32_t *tok)
{
    qv_model *mt;
    ck_assert(qv_qwork_to_model(w, m, &mt) == QV_OK);
    float *got = logits_of(mt, tok);
    double mx = 0;
    for (size_t i = 0; i < (size_t)NTOK * m->cfg.vocab_size; i++) mx = fmax(mx, fabs((double)got[i] - ref[i]));
    double r = mx / bound_for(m, ref);
    free(got);
    qv_qwork_model_free(mt);
    return r;
}

START_TEST(rotation_preserves_fp32_logits_within_bound)
{
    qv_model *m = rand_model(1, 11);
    int32_t tok[NTOK];
    tokens(tok, m->cfg.vocab_size, 5);
    float *ref = logits_of(m, tok);
    qv_qwork *w;
    ck_assert(qv_qwork_from_model(m, &w) == QV_OK);
    /* the working copy itself reproduces the model bit for bit */
    ck_assert(ratio_to_bound(m, w, ref, tok) == 0.0);
    qv_quant_fold_norms(w);
    ck_assert(qv_quant_rotate(w, 3) == QV_OK);
    double r = ratio_to_bound(m, w, ref, tok);
    printf("rotation: max|diff| / bound = %.3g\n", r);
    ck_assert_msg(r <= 1.0, "rotated logits differ by %.3g x the bound", r);
    qv_qwork_free(w);
    free(ref);
    qv_rand_model_free(m);
}
END_TEST

START_TEST(hadamard_is_orthogonal_block_diagonal)
{
    ck_assert_int_eq(qv_hadamard_block(384), 128);
    ck_assert_int_eq(qv_hadamard_block(1024), 1024);
    int n = 384;
    float signs[384], e[384];
    qv_hadamard_signs(7, n, signs);
    int neg = 0;
    for (int i = 0; i < n; i++) neg += signs[i] < 0;
    ck_assert(neg > n / 4 && neg < 3 * n / 4); /* random signs, not all one way */
    /* columns of H: images of unit vectors; their dot products are delta_ij within rounding, and
     * e_i's image stays inside its own 128-block */
    static float img[384][384];
    for (int i = 0; i < n; i++) {
        memset(e, 0, sizeof e);
        e[i] = 1.0f;
        qv_hadamard_apply(e, n, signs);
        memcpy(img[i], e, sizeof e);
        for (int j = 0; j < n; j++)
            if (j / 128 != i / 128) ck_assert(e[j] == 0.0f);
    }
    for (int i = 0; i < n; i += 7)
        for (int j = 0; j < n; j += 5) {
            double d = 0;
            for (int k = 0; k < n; k++) d += (double)img[i][k] * img[j][k];
            ck_assert(fabs(d - (i == j)) < 1e-6);
        }
}
END_TEST

static void kmax_of(const qv_model *m, const int32_t *tok, float *kmax);

typedef struct { float *kmax; int Dkv; } kcap;
static void on_k(void *u, const qv_capture_point *p)
{
    kcap *c = u;
    if (p->kind != QV_CAP_K || p->layer != 0) return;
    for (int t = 0; t < p->n_pos; t++)
        for (int j = 0; j < c->Dkv; j++) c->kmax[j] = fmaxf(c->kmax[j], fabsf(p->data[(size_t)t * c->Dkv + j]));
}

static void kmax_of(const qv_model *m, const int32_t *tok, float *kmax)
{
    qv_engine *e;
    qv_engine_opts o;
    qv_engine_opts_init(&o);
    ck_assert(qv_engine_open("ref-fp32", m, &o, &e) == QV_OK);
    kcap c = {kmax, m->cfg.num_kv_heads * m->cfg.head_dim};
    memset(kmax, 0, sizeof(float) * (size_t)c.Dkv);
    qv_engine_set_capture(e, on_k, &c, 1u << QV_CAP_K);
    qv_seq_id id;
    ck_assert(qv_engine_seq_create(e, 1, &id) == QV_OK);
    int n = NTOK;
    ck_assert(qv_engine_prefill(e, 1, &id, &tok, &n, 1, NULL) == QV_OK);
    qv_engine_close(e);
}

START_TEST(smooth_attention_lambda_is_pair_shared_and_preserves_logits)
{
    qv_model *m = rand_model(1, 12);
    int32_t tok[NTOK];
    tokens(tok, m->cfg.vocab_size, 6);
    float *ref = logits_of(m, tok);
    int hd = m->cfg.head_dim, nkv = m->cfg.num_kv_heads, Dkv = nkv * hd;
    float *kmax = malloc(sizeof(float) * Dkv), *lam = malloc(sizeof(float) * Dkv);
    kmax_of(m, tok, kmax);
    qv_smooth_attn_lambda(kmax, nkv, hd, 0.5f, lam);
    int unequal_pairs = 0;
    for (int h = 0; h < nkv; h++)
        for (int j = 0; j < hd / 2; j++) {
            float a = kmax[h * hd + j], b = kmax[h * hd + j + hd / 2];
            float want = powf(fmaxf(fmaxf(a, b), 1e-5f), 0.5f);
            ck_assert_float_eq(lam[h * hd + j], want);
            ck_assert_float_eq(lam[h * hd + j + hd / 2], want);
            unequal_pairs += a != b;
        }
    ck_assert(unequal_pairs > 0); /* the pairing is exercised */
    qv_qwork *w;
    ck_assert(qv_qwork_from_model(m, &w) == QV_OK);
    qv_smooth_attn_apply(w, 0, lam);
    double r = ratio_to_bound(m, w, ref, tok);
    printf("smooth-attn: max|diff| / bound = %.3g\n", r);
    ck_assert_msg(r <= 1.0, "SmoothAttention changed logits by %.3g x the bound", r);
    qv_qwork_free(w);
    free(kmax), free(lam), free(ref);
    qv_rand_model_free(m);
}
END_TEST

/* The checks above would catch the two classic mistakes: a lambda that is not shared by the RoPE
 * pair, and a lambda applied to K only. Both must move the logits far outside the bound. */
START_TEST(unshared_lambda_or_k_only_breaks_the_logits_check)
{
    qv_model *m = rand_model(0, 13);
    int32_t tok[NTOK];
    tokens(tok, m->cfg.vocab_size, 7);
    float *ref = logits_of(m, tok);
    int hd = m->cfg.head_dim, nkv = m->cfg.num_kv_heads, Dkv = nkv * hd;
    float *kmax = malloc(sizeof(float) * Dkv), *lam = malloc(sizeof(float) * Dkv), *one = malloc(sizeof(float) * Dkv);
    kmax_of(m, tok, kmax);
    for (int j = 0; j < Dkv; j++) lam[j] = powf(fmaxf(kmax[j], 1e-5f), 0.5f), one[j] = 1.0f; /* not paired */
    qv_qwork *w;
    ck_assert(qv_qwork_from_model(m, &w) == QV_OK);
    qv_smooth_attn_apply(w, 0, lam);
    double r1 = ratio_to_bound(m, w, ref, tok);
    qv_qwork_free(w);
    /* K only: divide K rows, leave Q */
    ck_assert(qv_qwork_from_model(m, &w) == QV_OK);
    qv_smooth_attn_lambda(kmax, nkv, hd, 0.5f, lam);
    for (int r = 0; r < Dkv; r++)
        for (int k = 0; k < w->H; k++) w->layers[0].wk[(size_t)r * w->H + k] /= lam[r];
    double r2 = ratio_to_bound(m, w, ref, tok);
    printf("planted: unshared lambda %.3g x bound, K-only %.3g x bound\n", r1, r2);
    ck_assert(r1 > 10.0);
    ck_assert(r2 > 10.0);
    qv_qwork_free(w);
    free(kmax), free(lam), free(one), free(ref);
    qv_rand_model_free(m);
}
END_TEST

/* The whole pipeline without clipping (the only step that changes the function) keeps the FP32
 * logits: SmoothAttention + rotation + searched smoothing, on calibration samples. */
START_TEST(calibration_without_clip_preserves_logits_and_is_deterministic)
{
    qv_model *m = rand_model(1, 14);
    int32_t tok[NTOK];
    tokens(tok, m->cfg.vocab_size, 8);
    float *ref = logits_of(m, tok);
    int32_t text[2000], *samples;
    qv_test_rng rr = {99};
    for (int i = 0; i < 2000; i++) text[i] = (int32_t)(qv_test_next(&rr) % 300);
    qv_quant_opts o;
    qv_quant_opts_init(&o);
    o.samples = 4, o.seqlen = 64, o.sub_rows = 128, o.clip = 0, o.threads = 1;
    o.rotate_v = 1; /* every FP-preserving step, the optional v/o head rotation included */
    ck_assert(qv_quant_sample(text, 2000, o.samples, o.seqlen, o.seed, &samples) == QV_OK);
    qv_qwork *w, *w2;
    qv_quant_report rep, rep2;
    ck_assert(qv_quant_calibrate(m, samples, &o, &w, &rep) == QV_OK);
    double r = ratio_to_bound(m, w, ref, tok);
    printf("pipeline (no clip): max|diff| / bound = %.3g; beta_o %.2f (%d identity), beta_down %.2f (%d identity)\n",
           r, rep.beta_o_mean, rep.n_identity_o, rep.beta_down_mean, rep.n_identity_down);
    ck_assert_msg(r <= 1.0, "calibrated FP32 logits differ by %.3g x the bound", r);
    /* determinism: same seed and threads -> the same bits; with clipping too */
    ck_assert(qv_quant_calibrate(m, samples, &o, &w2, &rep2) == QV_OK);
    size_t nq = (size_t)w->nh * w->hd * w->H, nd = (size_t)w->H * w->I;
    ck_assert(!memcmp(w->layers[1].wq, w2->layers[1].wq, nq * sizeof(float)));
    ck_assert(!memcmp(w->layers[1].w_down, w2->layers[1].w_down, nd * sizeof(float)));
    ck_assert(!memcmp(w->embed, w2->embed, (size_t)w->V * w->H * sizeof(float)));
    qv_qwork_free(w2), qv_quant_report_free(&rep2);
    o.seed = 2; /* another seed: other samples and signs -> other weights */
    free(samples);
    ck_assert(qv_quant_sample(text, 2000, o.samples, o.seqlen, o.seed, &samples) == QV_OK);
    ck_assert(qv_quant_calibrate(m, samples, &o, &w2, &rep2) == QV_OK);
    ck_assert(memcmp(w->embed, w2->embed, (size_t)w->V * w->H * sizeof(float)));
    qv_qwork_free(w2), qv_quant_report_free(&rep2);
    qv_qwork_free(w), qv_quant_report_free(&rep);
    free(samples), free(ref);
    qv_rand_model_free(m);
}
END_TEST

START_TEST(smoothing_factors_fold_exactly_into_the_forward)
{
    qv_model *m = rand_model(1, 15);
    int32_t tok[NTOK];
    tokens(tok, m->cfg.vocab_size, 9);
    float *ref = logits_of(m, tok);
    qv_qwork *w;
    ck_assert(qv_qwork_from_model(m, &w) == QV_OK);
    /* arbitrary positive factors from the formula (maxima from a seeded draw): o/v with GQA
     * sharing, down/up */
    int hd = w->hd, group = w->nh / w->nkv, Dq = w->nh * hd, Dkv = w->nkv * hd;
    float *xm = malloc(sizeof(float) * w->I), *wm = malloc(sizeof(float) * w->I), *s = malloc(sizeof(float) * w->I);
    qv_test_rng rr = {3};
    for (int l = 0; l < w->L; l++) {
        qv_qwork_layer *d = &w->layers[l];
        for (int j = 0; j < Dkv; j++) xm[j] = (float)(0.1 + 5 * qv_test_uniform(&rr));
        for (int j = 0; j < Dkv; j++) wm[j] = (float)(0.05 + qv_test_uniform(&rr));
        qv_smooth_factors(xm, wm, Dkv, 0.5f, s); /* per v channel */
        for (int n = 0; n < w->H; n++)
            for (int c = 0; c < Dq; c++) {
                int kv = c / hd / group, j = c % hd;
                d->wo[(size_t)n * Dq + c] *= s[kv * hd + j];
            }
        for (int r = 0; r < Dkv; r++) {
            for (int k = 0; k < w->H; k++) d->wv[(size_t)r * w->H + k] /= s[r];
            if (d->bv) d->bv[r] /= s[r];
        }
        for (int j = 0; j < w->I; j++) xm[j] = (float)(0.1 + 5 * qv_test_uniform(&rr)), wm[j] = (float)(0.05 + qv_test_uniform(&rr));
        qv_smooth_factors(xm, wm, w->I, 0.3f, s);
        for (int n = 0; n < w->H; n++)
            for (int j = 0; j < w->I; j++) d->w_down[(size_t)n * w->I + j] *= s[j];
        for (int j = 0; j < w->I; j++)
            for (int k = 0; k < w->H; k++) d->w_up[(size_t)j * w->H + k] /= s[j];
    }
    double r = ratio_to_bound(m, w, ref, tok);
    printf("smoothing: max|diff| / bound = %.3g\n", r);
    ck_assert_msg(r <= 1.0, "smoothing changed logits by %.3g x the bound", r);
    qv_qwork_free(w);
    free(xm), free(wm), free(s), free(ref);
    qv_rand_model_free(m);
}
END_TEST

/* Per channel, the chosen ratio's error is the grid minimum, hence <= the error at 1.0; and the
 * reported error is recomputed independently (clip, fake-quantize, outputs in double). */
START_TEST(clipping_never_increases_the_error_it_minimizes)
{
    int M = 64, N = 64, K = 256;
    qv_test_rng rr = {21};
    float *X = malloc(sizeof(float) * M * K), *W = malloc(sizeof(float) * N * K), *Wc = malloc(sizeof(float) * N * K),
          *Wq = malloc(sizeof(float) * N * K), *Xq = malloc(sizeof(float) * M * K), ratio[64];
    double eb[64], e1[64];
    for (int i = 0; i < M * K; i++) X[i] = (float)qv_test_normal(&rr) * (i % K == 3 ? 20.0f : 1.0f);
    for (int i = 0; i < N * K; i++) { /* heavy tails: clipping pays */
        double z = qv_test_normal(&rr);
        W[i] = (float)(z * z * z * 0.02);
    }
    float grid[] = {1.0f, 0.95f, 0.9f, 0.85f, 0.8f};
    for (int f = 0; f < 3; f++) {
        ck_assert(qv_clip_search((qv_qformat)f, X, M, W, N, K, grid, 5, ratio, eb, e1) == QV_OK);
        double sb = 0, s1 = 0;
        int shrunk = 0;
        for (int n = 0; n < N; n++) {
            ck_assert(eb[n] <= e1[n]);
            sb += eb[n], s1 += e1[n], shrunk += ratio[n] < 1.0f;
        }
        memcpy(Wc, W, sizeof(float) * N * K);
        qv_clip_apply((qv_qformat)f, Wc, N, K, ratio);
        ck_assert(qv_fakequant_weight((qv_qformat)f, Wc, N, K, Wq) == QV_OK);
        ck_assert(qv_fakequant_act(X, M, K, Xq) == QV_OK);
        double indep = 0;
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                double y = 0, yq = 0;
                for (int k = 0; k < K; k++) y += (double)X[m * K + k] * W[n * K + k], yq += (double)Xq[m * K + k] * Wq[n * K + k];
                indep += (y - yq) * (y - yq);
            }
        printf("clip %s: error %.4g -> %.4g (independent %.4g), %d/%d channels shrunk\n", qv_qformat_name((qv_qformat)f), s1,
               sb, indep, shrunk, N);
        ck_assert(sb <= s1);
        ck_assert(fabs(indep - sb) <= 1e-3 * sb); /* FP32 GEMM vs double: rounding only */
        ck_assert(shrunk > 0);
    }
    free(X), free(W), free(Wc), free(Wq), free(Xq);
}
END_TEST

START_TEST(bad_sampling_input_is_rejected)
{
    int32_t ids[10] = {0}, *out;
    ck_assert(qv_quant_sample(ids, 10, 2, 11, 1, &out) == QV_ERR_INPUT);
    ck_assert(strstr(qv_last_error(), "fewer than --seqlen"));
    ck_assert(qv_quant_sample(ids, 10, 0, 5, 1, &out) == QV_ERR_USAGE);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("quant");
    TCase *tc = tcase_create("quant");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, hadamard_is_orthogonal_block_diagonal);
    tcase_add_test(tc, rotation_preserves_fp32_logits_within_bound);
    tcase_add_test(tc, smooth_attention_lambda_is_pair_shared_and_preserves_logits);
    tcase_add_test(tc, unshared_lambda_or_k_only_breaks_the_logits_check);
    tcase_add_test(tc, smoothing_factors_fold_exactly_into_the_forward);
    tcase_add_test(tc, calibration_without_clip_preserves_logits_and_is_deterministic);
    tcase_add_test(tc, clipping_never_increases_the_error_it_minimizes);
    tcase_add_test(tc, bad_sampling_input_is_rejected);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
