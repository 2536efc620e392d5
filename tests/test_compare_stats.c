/* compare statistics (evals/compare_stats.c) against an independent numpy computation
 * (tools/compare_reference.py -> tests/fixtures/compare_stats.json: logits, targets and the
 * expected figures), plus hand-computed percentiles and intervals, and the engine loop's
 * properties (identical engines: KLD 0, agreement 1; shards partition the chunks). */
#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qv_test_util.h"
#include "qvet/eval_compare.h"
#include "qvet/fileio.h"
#include "qvet/rand_model.h"

static void near(double got, double want, double rel, const char *what)
{
    double tol = rel * fmax(1.0, fabs(want));
    ck_assert_msg(fabs(got - want) <= tol, "%s: got %.17g, numpy %.17g (tol %.3g)", what, got, want, tol);
}

static double enum_(const cJSON *e, const char *k, int i)
{
    const cJSON *v = cJSON_GetObjectItem(e, k);
    return cJSON_IsArray(v) ? cJSON_GetArrayItem(v, i)->valuedouble : v->valuedouble;
}

START_TEST(stats_match_numpy_reference)
{
    char path[4096], *txt;
    size_t n;
    snprintf(path, sizeof path, "%s/tests/fixtures/compare_stats.json", qv_test_source_dir());
    ck_assert_msg(qv_read_file(path, 1 << 24, &txt, &n) == QV_OK, "%s", qv_last_error());
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    ck_assert(j);
    int K = cJSON_GetObjectItem(j, "chunks")->valueint, N = cJSON_GetObjectItem(j, "positions")->valueint;
    int V = cJSON_GetObjectItem(j, "vocab")->valueint;
    const cJSON *R = cJSON_GetObjectItem(j, "ref_logits"), *C = cJSON_GetObjectItem(j, "cand_logits");
    const cJSON *Y = cJSON_GetObjectItem(j, "targets"), *E = cJSON_GetObjectItem(j, "expected");
    float *lr = malloc(sizeof(float) * N * V), *lc = malloc(sizeof(float) * N * V);
    qv_cmp_set set = {0};
    for (int k = K - 1; k >= 0; k--) { /* added out of order: the summary sorts by chunk index */
        qv_cmp_chunk c = {.index = k, .n = N};
        c.kld = calloc(N, sizeof(double));
        c.dp = calloc(N, sizeof(double));
        c.target = calloc(N, sizeof(int32_t));
        for (int i = 0; i < N; i++) {
            c.target[i] = cJSON_GetArrayItem(cJSON_GetArrayItem(Y, k), i)->valueint;
            for (int v = 0; v < V; v++) {
                lr[i * V + v] = (float)cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetArrayItem(R, k), i), v)->valuedouble;
                lc[i * V + v] = (float)cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetArrayItem(C, k), i), v)->valuedouble;
            }
        }
        /* in two calls, as the engine loop does across prefill pieces */
        qv_cmp_accumulate(lr, lc, 4, V, c.target, c.kld, c.dp, &c.nll_ref, &c.nll_cand, &c.top1);
        qv_cmp_accumulate(lr + 4 * V, lc + 4 * V, N - 4, V, c.target + 4, c.kld + 4, c.dp + 4, &c.nll_ref, &c.nll_cand, &c.top1);
        for (int i = 0; i < N; i++) {
            near(c.kld[i], cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(E, "kld"), k), i)->valuedouble, 1e-12, "kld[t]");
            near(c.dp[i], cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(E, "delta_p"), k), i)->valuedouble, 1e-12, "dp[t]");
        }
        ck_assert_int_eq(c.top1, cJSON_GetArrayItem(cJSON_GetObjectItem(E, "top1_count"), k)->valueint);
        ck_assert(qv_cmp_set_add(&set, &c) == QV_OK);
        qv_cmp_chunk_free(&c);
    }
    qv_cmp_summary s;
    ck_assert(qv_cmp_summarize(&set, &s) == QV_OK);
    ck_assert_double_eq(set.v[0].kld[0], 0.0); /* chunk 0, position 0: C == R gives exactly 0 */
    ck_assert_int_eq(s.n_chunks, K);
    ck_assert_int_eq(s.n_pos, K * N);
    /* NLL goes through an FP32 log-softmax: agreement to FP32 rounding only */
    near(s.ppl_ref.ppl, enum_(E, "ppl_ref", 0), 1e-6, "ppl_ref");
    near(s.ppl_ref.ppl_lo, enum_(E, "ppl_ref", 1), 1e-6, "ppl_ref lo");
    near(s.ppl_ref.ppl_hi, enum_(E, "ppl_ref", 2), 1e-6, "ppl_ref hi");
    near(s.ppl_cand.ppl, enum_(E, "ppl_cand", 0), 1e-6, "ppl_cand");
    near(s.ln_ratio, enum_(E, "ln_ppl_ratio", 0), 1e-6, "ln ratio");
    near(s.ln_ratio_lo, enum_(E, "ln_ppl_ratio", 1), 1e-6, "ln ratio lo");
    near(s.ln_ratio_hi, enum_(E, "ln_ppl_ratio", 2), 1e-6, "ln ratio hi");
    /* FP64 figures: to summation order */
    near(s.kld_mean, enum_(E, "kld_mean", 0), 1e-12, "kld mean");
    near(s.kld_mean_lo, enum_(E, "kld_mean", 1), 1e-12, "kld mean lo");
    near(s.kld_mean_hi, enum_(E, "kld_mean", 2), 1e-12, "kld mean hi");
    near(s.kld_median, enum_(E, "kld_median", 0), 1e-12, "kld median");
    near(s.kld_p90, enum_(E, "kld_p90", 0), 1e-12, "kld p90");
    near(s.kld_p99, enum_(E, "kld_p99", 0), 1e-12, "kld p99");
    near(s.kld_p999, enum_(E, "kld_p99_9", 0), 1e-12, "kld p99.9");
    near(s.kld_max, enum_(E, "kld_max", 0), 1e-12, "kld max");
    ck_assert_int_eq(s.kld_max_chunk, (int)enum_(E, "kld_max_chunk", 0));
    ck_assert_int_eq(s.kld_max_offset, (int)enum_(E, "kld_max_offset", 0));
    ck_assert_int_eq(s.kld_max_token, (int)enum_(E, "kld_max_token", 0));
    ck_assert_int_eq(s.kld_max_pos, (int64_t)s.kld_max_chunk * (N + 1) + s.kld_max_offset + 1);
    near(s.top1, enum_(E, "top1", 0), 1e-15, "top1");
    near(s.top1_lo, enum_(E, "top1", 1), 1e-12, "top1 lo");
    near(s.top1_hi, enum_(E, "top1", 2), 1e-12, "top1 hi");
    near(s.dp_mean, enum_(E, "dp_mean", 0), 1e-12, "dp mean");
    near(s.dp_rms, enum_(E, "dp_rms", 0), 1e-12, "dp rms");
    near(s.dp_p1, enum_(E, "dp_p1", 0), 1e-12, "dp p1");
    near(s.dp_p99, enum_(E, "dp_p99", 0), 1e-12, "dp p99");
    int64_t hsum = 0;
    for (int i = 0; i < QV_CMP_HIST_BINS + 2; i++) hsum += s.hist[i];
    ck_assert_int_eq(hsum, K * N);
    ck_assert_int_ge(s.hist[0], 1); /* the exact-zero KLD lands in the underflow bin */
    qv_cmp_set_free(&set);
    free(lr), free(lc);
    cJSON_Delete(j);
}
END_TEST

START_TEST(percentile_is_numpy_linear_hand_computed)
{
    double x[5] = {1, 2, 4, 8, 16};
    ck_assert_double_eq(qv_percentile_sorted(x, 5, 0), 1);
    ck_assert_double_eq(qv_percentile_sorted(x, 5, 100), 16);
    ck_assert_double_eq(qv_percentile_sorted(x, 5, 50), 4);
    ck_assert_double_eq_tol(qv_percentile_sorted(x, 5, 90), 8 + 0.6 * 8, 1e-12); /* h = 3.6 */
    ck_assert_double_eq_tol(qv_percentile_sorted(x, 5, 12.5), 1.5, 1e-12);     /* h = 0.5 */
    ck_assert(isnan(qv_percentile_sorted(x, 0, 50)));
    double one = 3;
    ck_assert_double_eq(qv_percentile_sorted(&one, 1, 99.9), 3);
}
END_TEST

START_TEST(mean_ci95_hand_computed)
{
    /* 2, 4, 6, 8: mean 5, sample sd sqrt(20/3), se = sd / 2 */
    double x[4] = {2, 4, 6, 8}, m, lo, hi, se;
    qv_mean_ci95(x, 4, &m, &lo, &hi, &se);
    ck_assert_double_eq(m, 5);
    ck_assert_double_eq_tol(se, sqrt(20.0 / 3.0) / 2, 1e-15);
    ck_assert_double_eq_tol(lo, 5 - 1.96 * se, 1e-15);
    ck_assert_double_eq_tol(hi, 5 + 1.96 * se, 1e-15);
    qv_mean_ci95(x, 1, &m, &lo, &hi, &se);
    ck_assert(m == 2 && isnan(lo) && isnan(hi) && isnan(se));
}
END_TEST

typedef struct { qv_cmp_set set; int calls; } collect;

static qv_status collect_chunk(void *u, const qv_cmp_chunk *c)
{
    collect *k = u;
    k->calls++;
    return qv_cmp_set_add(&k->set, c);
}

static qv_model *small_model(uint64_t seed)
{
    qv_rand_model_spec s = {.hidden = 32, .inter = 48, .layers = 2, .heads = 2, .kv_heads = 1, .head_dim = 16,
                            .vocab = 40, .max_pos = 64, .dtype = QV_F32, .rope_theta = 10000, .seed = seed};
    qv_model *m;
    ck_assert(qv_rand_model_create(&s, &m) == QV_OK);
    return m;
}

START_TEST(identical_engines_give_zero_kld_and_full_agreement)
{
    qv_model *m = small_model(3);
    qv_engine *a, *b;
    ck_assert(qv_engine_open("ref-fp32", m, NULL, &a) == QV_OK);
    ck_assert(qv_engine_open("ref-fp32", m, NULL, &b) == QV_OK);
    int32_t ids[100];
    qv_test_rng r = {7};
    for (int i = 0; i < 100; i++) ids[i] = (int32_t)(qv_test_next(&r) % 40);
    collect k = {0};
    qv_cmp_opts o = {.ctx = 16, .piece = 5, .on_chunk = collect_chunk, .user = &k}; /* pieces cross chunk ends */
    ck_assert_msg(qv_eval_compare(a, b, ids, 100, &o) == QV_OK, "%s", qv_last_error());
    ck_assert_int_eq(k.calls, 6); /* 100 / 16: the short last chunk dropped */
    qv_cmp_summary s;
    ck_assert(qv_cmp_summarize(&k.set, &s) == QV_OK);
    ck_assert_double_eq(s.kld_max, 0);
    ck_assert_double_eq(s.top1, 1);
    ck_assert_double_eq(s.ln_ratio, 0);
    ck_assert_double_eq(s.dp_rms, 0);
    ck_assert_int_eq(s.n_pos, 6 * 15);
    ck_assert_int_eq(k.set.v[2].target[0], ids[2 * 16 + 1]);
    qv_cmp_set_free(&k.set);
    qv_engine_close(a), qv_engine_close(b);
    qv_rand_model_free(m);
}
END_TEST

START_TEST(shards_partition_chunks_and_give_one_runs_summary)
{
    qv_model *m = small_model(3), *m2 = small_model(4);
    qv_engine *a, *b;
    ck_assert(qv_engine_open("ref-fp32", m, NULL, &a) == QV_OK);
    ck_assert(qv_engine_open("ref-fp32", m2, NULL, &b) == QV_OK);
    int32_t ids[200];
    qv_test_rng r = {9};
    for (int i = 0; i < 200; i++) ids[i] = (int32_t)(qv_test_next(&r) % 40);
    collect all = {0}, sh = {0};
    qv_cmp_opts o = {.ctx = 20, .on_chunk = collect_chunk, .user = &all};
    ck_assert(qv_eval_compare(a, b, ids, 200, &o) == QV_OK);
    for (int i = 0; i < 3; i++) {
        qv_cmp_opts os = {.ctx = 20, .shard_i = i, .shard_n = 3, .on_chunk = collect_chunk, .user = &sh};
        ck_assert(qv_eval_compare(a, b, ids, 200, &os) == QV_OK);
    }
    ck_assert_int_eq(sh.calls, 10); /* every chunk exactly once (a duplicate would fail set_add) */
    qv_cmp_summary s1, s2;
    ck_assert(qv_cmp_summarize(&all.set, &s1) == QV_OK);
    ck_assert(qv_cmp_summarize(&sh.set, &s2) == QV_OK);
    ck_assert(memcmp(&s1, &s2, sizeof s1) == 0);
    ck_assert(s1.kld_mean > 0 && s1.top1 < 1); /* different models: a non-trivial case */
    /* resume: skip chunks marked done, compute exactly the others */
    unsigned char have[10] = {1, 0, 1, 0, 0, 0, 0, 0, 0, 1};
    collect rest = {0};
    qv_cmp_opts orr = {.ctx = 20, .have = have, .on_chunk = collect_chunk, .user = &rest};
    ck_assert(qv_eval_compare(a, b, ids, 200, &orr) == QV_OK);
    ck_assert_int_eq(rest.calls, 7);
    ck_assert_ptr_null(qv_cmp_set_find(&rest.set, 0));
    /* errors: ctx beyond the model, fewer ids than one chunk */
    ck_assert_int_eq(qv_eval_compare(a, b, ids, 200, &(qv_cmp_opts){.ctx = 65, .on_chunk = collect_chunk, .user = &rest}), QV_ERR_INPUT);
    ck_assert_int_eq(qv_eval_compare(a, b, ids, 10, &(qv_cmp_opts){.ctx = 20, .on_chunk = collect_chunk, .user = &rest}), QV_ERR_INPUT);
    qv_cmp_set_free(&all.set), qv_cmp_set_free(&sh.set), qv_cmp_set_free(&rest.set);
    qv_engine_close(a), qv_engine_close(b);
    qv_rand_model_free(m), qv_rand_model_free(m2);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("compare_stats");
    TCase *t = tcase_create("core");
    tcase_add_test(t, stats_match_numpy_reference);
    tcase_add_test(t, percentile_is_numpy_linear_hand_computed);
    tcase_add_test(t, mean_ci95_hand_computed);
    tcase_add_test(t, identical_engines_give_zero_kld_and_full_agreement);
    tcase_add_test(t, shards_partition_chunks_and_give_one_runs_summary);
    suite_add_tcase(s, t);
    return qv_test_main(s);
}
