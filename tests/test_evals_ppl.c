/* Perplexity statistics on hand-computed cases, and the chunking protocol of EVALS.md on a
 * model whose every prediction is uniform (so every NLL is ln V, known in advance). */
#include <math.h>
#include <string.h>

#include "qv_test_util.h"
#include "qvet/eval_ppl.h"
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

typedef struct {
    int n_calls, index[8], n[8];
    double sum[8];
} chunk_log;

static qv_status log_chunk(void *user, int index, int n, double nll_sum)
{
    chunk_log *l = user;
    l->index[l->n_calls] = index, l->n[l->n_calls] = n, l->sum[l->n_calls] = nll_sum;
    l->n_calls++;
    return QV_OK;
}

/* --shard / --resume at the library level: 5 chunks of 8 on a random model. Shard 1/2 scores
 * chunks 1 and 3 only, skipping those in `have`; every chunk's sum is the same whichever call
 * scored it, and the set of all chunks summarizes to exactly (bit for bit) one run's result. */
START_TEST(ppl_shards_and_have_give_one_runs_chunks)
{
    qv_rand_model_spec sp = {.hidden = 32, .inter = 48, .layers = 2, .heads = 2, .kv_heads = 1, .head_dim = 16,
                             .vocab = 50, .max_pos = 64, .dtype = QV_F32, .rope_theta = 10000, .seed = 9};
    qv_model *m;
    ck_assert(qv_rand_model_create(&sp, &m) == QV_OK);
    qv_engine *e;
    ck_assert(qv_engine_open("ref-fp32", m, NULL, &e) == QV_OK);
    int32_t ids[43];
    for (int i = 0; i < 43; i++) ids[i] = (i * 13 + 5) % 50;
    chunk_log all = {0}, sh = {0}, rest = {0};
    qv_ppl_result one, r;
    qv_ppl_opts o = {.ctx = 8, .piece = 3, .on_chunk = log_chunk, .chunk_user = &all};
    ck_assert_msg(qv_eval_ppl(e, ids, 43, &o, &one) == QV_OK, "%s", qv_last_error());
    ck_assert_int_eq(all.n_calls, 5);
    unsigned char have[5] = {0, 0, 0, 1, 0};
    o = (qv_ppl_opts){.ctx = 8, .piece = 3, .shard_i = 1, .shard_n = 2, .have = have, .on_chunk = log_chunk, .chunk_user = &sh};
    ck_assert(qv_eval_ppl(e, ids, 43, &o, &r) == QV_OK);
    ck_assert_int_eq(sh.n_calls, 1); /* chunk 3 is "done already" */
    ck_assert_int_eq(sh.index[0], 1);
    ck_assert_int_eq(r.n_chunks, 1);
    ck_assert(sh.sum[0] == all.sum[1]); /* the same logits, summed in the same order */
    qv_ppl_result_free(&r);
    o.shard_i = 2;
    ck_assert_int_eq(qv_eval_ppl(e, ids, 43, &o, &r), QV_ERR_USAGE);
    /* chunks of every other call, added in a scrambled order, summarize as one run */
    o = (qv_ppl_opts){.ctx = 8, .piece = 3, .shard_i = 0, .shard_n = 2, .on_chunk = log_chunk, .chunk_user = &rest};
    ck_assert(qv_eval_ppl(e, ids, 43, &o, &r) == QV_OK);
    qv_ppl_result_free(&r);
    ck_assert_int_eq(rest.n_calls, 3);
    qv_ppl_set set = {0};
    qv_ppl_chunk c3 = {.index = 3, .n = all.n[3], .nll_sum = all.sum[3]};
    ck_assert(qv_ppl_set_add(&set, &c3) == QV_OK);
    for (int i = rest.n_calls - 1; i >= 0; i--) {
        qv_ppl_chunk c = {.index = rest.index[i], .n = rest.n[i], .nll_sum = rest.sum[i]};
        ck_assert(qv_ppl_set_add(&set, &c) == QV_OK);
    }
    qv_ppl_chunk c1 = {.index = 1, .n = sh.n[0], .nll_sum = sh.sum[0]};
    ck_assert(qv_ppl_set_add(&set, &c1) == QV_OK);
    ck_assert_int_eq(qv_ppl_set_add(&set, &c1), QV_ERR_INPUT); /* a duplicate chunk */
    ck_assert(qv_ppl_set_stats(&set, &r) == QV_OK);
    ck_assert_int_eq(r.n_chunks, 5);
    ck_assert_int_eq(r.n_scored, one.n_scored);
    ck_assert(r.mean_nll == one.mean_nll && r.se == one.se && r.ppl == one.ppl);
    ck_assert(r.ppl_lo == one.ppl_lo && r.ppl_hi == one.ppl_hi);
    for (int i = 0; i < 5; i++) ck_assert(r.chunk_nll[i] == one.chunk_nll[i]);
    qv_ppl_result_free(&r);
    qv_ppl_result_free(&one);
    qv_ppl_set_free(&set);
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
    tcase_add_test(tc, ppl_shards_and_have_give_one_runs_chunks);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
