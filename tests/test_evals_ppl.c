/* Perplexity statistics on hand-computed cases, and the chunking protocol of EVALS.md on a
 * model whose every prediction is uniform (so every NLL is ln V, known in advance). */
#include <math.h>
#include <string.h>

#include "qv_test_util.h"
#include "qvet/evals.h"
#include "qvet/rand_model.h"

START_TEST(ppl_stats_hand_computed)
{
    /* chunks 1, 2, 3: mean 2, sample sd 1, se = 1/sqrt(3) */
    double nll[3] = {1, 2, 3};
    qv_ppl_result r = {0};
    qv_ppl_stats(nll, 3, &r);
    ck_assert_double_eq_tol(r.mean_nll, 2.0, 1e-15);
    ck_assert_double_eq_tol(r.se, 0.5773502691896258, 1e-15);
    ck_assert_double_eq_tol(r.ppl, 7.38905609893065, 1e-12);
    ck_assert_double_eq_tol(r.ppl_lo, exp(2 - 1.96 * 0.5773502691896258), 1e-12);
    ck_assert_double_eq_tol(r.ppl_hi, exp(2 + 1.96 * 0.5773502691896258), 1e-12);
    /* identical chunks: se 0, a degenerate interval at ppl */
    double same[4] = {0.5, 0.5, 0.5, 0.5};
    qv_ppl_stats(same, 4, &r);
    ck_assert_double_eq(r.se, 0);
    ck_assert_double_eq(r.ppl_lo, r.ppl);
    /* one chunk: no standard error, the interval is undefined (NaN), never a fake zero width */
    qv_ppl_stats(nll, 1, &r);
    ck_assert_double_eq_tol(r.ppl, exp(1.0), 1e-15);
    ck_assert(isnan(r.se) && isnan(r.ppl_lo) && isnan(r.ppl_hi));
}
END_TEST

START_TEST(nll_fp32_hand_computed)
{
    /* p = (1/4, 3/4): -ln(1/4) = ln 4, -ln(3/4) */
    float lg[2] = {0.0f, logf(3.0f)};
    ck_assert_double_eq_tol(qv_nll_fp32(lg, 2, 0), log(4.0), 4e-7);
    ck_assert_double_eq_tol(qv_nll_fp32(lg, 2, 1), log(4.0 / 3.0), 4e-7);
    /* shift invariance with large logits (the max subtraction keeps exp finite) */
    float big[2] = {1000.0f, 1000.0f + logf(3.0f)};
    ck_assert_double_eq_tol(qv_nll_fp32(big, 2, 0), log(4.0), 1e-4);
}
END_TEST

static void count_progress(void *user, int64_t done, int64_t total)
{
    int *calls = user;
    ck_assert_int_eq(done, ++calls[0]);
    ck_assert_int_eq(total, 2);
}

START_TEST(ppl_uniform_model_is_vocab_size_and_drops_short_chunk)
{
    qv_rand_model_spec s = {.hidden = 32, .inter = 48, .layers = 2, .heads = 2, .kv_heads = 1, .head_dim = 16,
                            .vocab = 50, .max_pos = 64, .dtype = QV_F32, .rope_theta = 10000, .seed = 5};
    qv_model *m;
    ck_assert(qv_rand_model_create(&s, &m) == QV_OK);
    memset(m->lm_head.data, 0, sizeof(float) * 50 * 32); /* every logit 0: p = 1/V everywhere */
    qv_engine *e;
    ck_assert(qv_engine_open("ref-fp32", m, NULL, &e) == QV_OK);
    int32_t ids[2 * 20 + 7];
    for (int i = 0; i < 47; i++) ids[i] = (i * 7) % 50;
    int calls[1] = {0};
    qv_ppl_opts o = {.ctx = 20, .piece = 6, .progress = count_progress, .progress_user = calls};
    qv_ppl_result r;
    ck_assert_msg(qv_eval_ppl(e, ids, 47, &o, &r) == QV_OK, "%s", qv_last_error());
    ck_assert_int_eq(r.n_chunks, 2);
    ck_assert_int_eq(r.n_scored, 2 * 19);
    ck_assert_int_eq(calls[0], 2);
    /* NLL = logf(50) in FP32: within u * ln 50 of ln 50; ppl within 2u ln 50 relative of 50 */
    ck_assert_double_le(fabs(r.mean_nll - log(50.0)), 0x1p-24 * log(50.0));
    ck_assert_double_le(fabs(r.ppl - 50.0), 50.0 * 2 * 0x1p-24 * log(50.0));
    ck_assert_double_eq(r.se, 0);
    qv_ppl_result_free(&r);
    /* fewer ids than one chunk; ctx beyond the model */
    ck_assert_int_eq(qv_eval_ppl(e, ids, 19, &o, &r), QV_ERR_INPUT);
    o.ctx = 65;
    ck_assert_int_eq(qv_eval_ppl(e, ids, 47, &o, &r), QV_ERR_INPUT);
    ck_assert_msg(strstr(qv_last_error(), "max_position_embeddings"), "%s", qv_last_error());
    qv_engine_close(e);
    qv_rand_model_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("evals_ppl");
    TCase *tc = tcase_create("ppl");
    tcase_add_test(tc, ppl_stats_hand_computed);
    tcase_add_test(tc, nll_fp32_hand_computed);
    tcase_add_test(tc, ppl_uniform_model_is_vocab_size_and_drops_short_chunk);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
