/* qvet trace (evals/trace_*.c): planted faults must be found, ablation must attribute the KLD to
 * the quantizer that causes it, and results are deterministic and independent of streaming. */
#include <check.h>
#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qv_test_util.h"
#include "qvet/eval_trace.h"
#include "qvet/rand_model.h"

static qv_rand_model_spec spec(uint64_t seed)
{
    /* hidden, inter multiples of 128 so ref-qoq's W4 g128 quantization applies */
    qv_rand_model_spec s = {.hidden = 128, .inter = 256, .layers = 4, .heads = 4, .kv_heads = 2, .head_dim = 32,
                            .vocab = 64, .max_pos = 256, .dtype = QV_F32, .rope_theta = 10000, .seed = seed};
    return s;
}

static qv_model *make(uint64_t seed)
{
    qv_model *m;
    qv_rand_model_spec s = spec(seed);
    ck_assert_msg(qv_rand_model_create(&s, &m) == QV_OK, "%s", qv_last_error());
    return m;
}

static qv_engine *open_e(const char *name, const qv_model *m, int fp_kv)
{
    qv_engine_opts o;
    qv_engine_opts_init(&o);
    o.threads = 1;
    o.fp_kv = fp_kv;
    qv_engine *e;
    ck_assert_msg(qv_engine_open(name, m, &o, &e) == QV_OK, "%s", qv_last_error());
    return e;
}

static int32_t *tokens(int n, uint64_t seed)
{
    qv_test_rng r = {seed};
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++) ids[i] = (int32_t)(qv_test_next(&r) % 64);
    return ids;
}

/* scales every other weight of the layer's tensor by 1.5: a damaged layer */
static void damage(qv_model *m, int layer, int which)
{
    qv_layer_weights *w = &m->layers[layer];
    qv_tensor *t = which ? &w->wq : &w->w_down;
    float *d = t->data;
    int64_t n = qv_tensor_numel(t);
    for (int64_t i = 0; i < n; i += 2) d[i] *= 1.5f;
}

static void run(qv_engine *r, qv_engine *c, const int32_t *ids, int ctx, int piece, qv_trace_result *t)
{
    qv_trace_variant v = {"cand", c};
    qv_trace_opts o = {.ctx = ctx, .pos_hi = -1, .piece = piece};
    ck_assert_msg(qv_trace_run(r, &v, 1, ids, ctx, &o, t) == QV_OK, "%s", qv_last_error());
}

static void planted_layer_is_ranked_first(int layer, int which)
{
    qv_model *mr = make(5), *mc = make(5);
    damage(mc, layer, which);
    qv_engine *r = open_e("ref-fp32", mr, 0), *c = open_e("ref-fp32", mc, 0);
    int32_t *ids = tokens(96, 9);
    qv_trace_result t;
    run(r, c, ids, 96, 40, &t);
    int rank[4];
    int64_t cnt[4];
    qv_trace_layer_ranking(&t, 0, rank, cnt);
    ck_assert_msg(rank[0] == layer, "damaged layer %d, ranked first: %d", layer, rank[0]);
    /* the layers before it run identical weights on identical inputs: exactly no error */
    for (int l = 0; l < layer; l++)
        for (int b = 0; b < t.nb; b++) ck_assert(t.var[0].res_e2[l * t.nb + b] == 0.0);
    ck_assert(t.var[0].res_e2[layer * t.nb] > 0);
    int worst[3];
    ck_assert_int_eq(qv_trace_worst(&t, 0, 3, worst), 3);
    for (int i = 0; i < 3; i++) ck_assert_int_eq(qv_trace_jump_layer(&t, 0, worst[i]), layer);
    ck_assert(t.var[0].kld[0] >= 0);
    qv_trace_result_free(&t);
    free(ids);
    qv_engine_close(r), qv_engine_close(c);
    qv_rand_model_free(mr), qv_rand_model_free(mc);
}

START_TEST(damaged_mlp_of_layer_2_is_ranked_first_and_is_where_worst_positions_jump)
{
    planted_layer_is_ranked_first(2, 0);
}
END_TEST

START_TEST(damaged_q_proj_of_layer_1_is_ranked_first_and_is_where_worst_positions_jump)
{
    planted_layer_is_ranked_first(1, 1);
}
END_TEST

typedef struct {
    const qv_model *m;
    int fp_kv[8];
    int w_layer[8], a_layer[8];
} abl_user;

static qv_status abl_open(void *user, int i, qv_engine **e)
{
    abl_user *u = user;
    qv_engine_opts o;
    qv_engine_opts_init(&o);
    o.threads = 1;
    o.fp_kv = u->fp_kv[i];
    if (u->w_layer[i] >= 0) qv_layer_mask_set(&o.fp_weights, u->w_layer[i]);
    if (u->a_layer[i] >= 0) qv_layer_mask_set(&o.fp_acts, u->a_layer[i]);
    return qv_engine_open("ref-qoq", u->m, &o, e);
}

START_TEST(kv4_vs_kv16_ablation_attributes_the_kld_to_the_kv_cache)
{
    /* R: ref-qoq with an FP16 KV cache; C: the same with KV4. All of C's KLD comes from KV4, so
     * keeping the KV cache in full precision must remove all of it, and no other single
     * component may remove as much. */
    qv_model *m = make(7);
    qv_engine *r = open_e("ref-qoq", m, 1);
    int32_t *ids = tokens(80, 3);
    /* 0: C as is; 1: kv; 2..5: w:0, w:2, a:0, a:3 */
    abl_user u = {.m = m, .fp_kv = {0, 1, 0, 0, 0, 0}, .w_layer = {-1, -1, 0, 2, -1, -1}, .a_layer = {-1, -1, -1, -1, 0, 3}};
    double kld[6];
    ck_assert_msg(qv_trace_ablate(r, 6, abl_open, &u, ids, 80, 32, NULL, NULL, kld) == QV_OK, "%s", qv_last_error());
    ck_assert_msg(kld[0] > 1e-6, "KV4 must change the logits: KLD %g", kld[0]);
    double share_kv = (kld[0] - kld[1]) / kld[0];
    ck_assert_msg(share_kv > 0.9, "kv share %g", share_kv);
    for (int i = 2; i < 6; i++)
        ck_assert_msg((kld[0] - kld[i]) / kld[0] < share_kv, "ablation %d share %g >= kv share %g", i, (kld[0] - kld[i]) / kld[0],
                      share_kv);
    /* and in the main pass, the fp_kv variant of C is R itself */
    qv_engine *c = open_e("ref-qoq", m, 0), *ck = open_e("ref-qoq", m, 1);
    qv_trace_variant v[2] = {{"cand", c}, {"cand+fp_kv", ck}};
    qv_trace_opts o = {.ctx = 80, .pos_hi = -1, .piece = 32};
    qv_trace_result t;
    ck_assert_msg(qv_trace_run(r, v, 2, ids, 80, &o, &t) == QV_OK, "%s", qv_last_error());
    double s0 = 0, s1 = 0, k0 = 0;
    for (int i = 0; i < t.L * t.nkv; i++) s0 += t.var[0].k_e2[i], s1 += t.var[1].k_e2[i];
    for (int p = 0; p < t.n_pos; p++) {
        k0 += t.var[0].kld[p];
        ck_assert(t.var[1].kld[p] == 0.0);
    }
    ck_assert(s0 > 0 && s1 == 0);
    ck_assert(k0 > 0);
    qv_trace_result_free(&t);
    qv_engine_close(c), qv_engine_close(ck), qv_engine_close(r);
    free(ids);
    qv_rand_model_free(m);
}
END_TEST

static cJSON *json_of(const qv_trace_result *t, const int32_t *ids)
{
    qv_trace_meta m = {.model = "rand", .ref = "ref-fp32", .cand = "ref-qoq", .n_tokens = t->ctx, .ids_hash = "0"};
    cJSON *j;
    ck_assert(qv_trace_to_json(t, &m, ids, NULL, 5, &j) == QV_OK);
    cJSON_DeleteItemFromObject(j, "timing");
    return j;
}

START_TEST(two_runs_give_identical_results)
{
    qv_model *m = make(11);
    int32_t *ids = tokens(100, 4);
    cJSON *js[2];
    for (int k = 0; k < 2; k++) {
        qv_engine *r = open_e("ref-fp32", m, 0), *c = open_e("ref-qoq", m, 0);
        qv_trace_result t;
        run(r, c, ids, 100, 48, &t);
        js[k] = json_of(&t, ids);
        qv_trace_result_free(&t);
        qv_engine_close(r), qv_engine_close(c);
    }
    ck_assert(cJSON_Compare(js[0], js[1], 1));
    char *a = cJSON_PrintUnformatted(js[0]), *b = cJSON_PrintUnformatted(js[1]);
    ck_assert_str_eq(a, b);
    free(a), free(b);
    cJSON_Delete(js[0]), cJSON_Delete(js[1]);
    free(ids);
    qv_rand_model_free(m);
}
END_TEST

START_TEST(kld_of_a_truncated_run_equals_the_prefix_figure_of_the_long_run)
{
    /* same pieces over the common prefix: the truncated run computes exactly what the long one
     * did for those positions (causal engines, per-token A8) */
    qv_model *m = make(13);
    int32_t *ids = tokens(96, 6);
    qv_trace_result t64, t96;
    qv_engine *r = open_e("ref-fp32", m, 0), *c = open_e("ref-qoq", m, 0);
    run(r, c, ids, 96, 32, &t96);
    run(r, c, ids, 64, 32, &t64);
    double s = 0;
    for (int p = 0; p < t64.n_pos; p++) s += t64.var[0].kld[p];
    ck_assert_int_eq(t64.n_pos, 63);
    ck_assert(qv_trace_kld_prefix(&t96, 0, 64) == s / 63);
    ck_assert(isnan(qv_trace_kld_prefix(&t96, 0, 97)));
    /* the residual error of shared positions is the same too */
    for (int i = 0; i < 63 * t64.L; i++) ck_assert(t64.var[0].res_pos[i] == t96.var[0].res_pos[i]);
    qv_trace_result_free(&t64), qv_trace_result_free(&t96);
    qv_engine_close(r), qv_engine_close(c);
    free(ids);
    qv_rand_model_free(m);
}
END_TEST

START_TEST(jump_layer_follows_its_definition)
{
    float rp[2 * 4] = {0, 0, 0.01f, 0.015f,   /* pos 0: first >= floor and >= 2x previous: layer 2 */
                       0.0005f, 0.0009f, 0.0012f, 0.0016f}; /* pos 1: floor reached at 2 but 0.0012 < 2 * 0.0009 */
    qv_trace_var v = {.res_pos = rp};
    qv_trace_result t = {.L = 4, .pos_lo = 0, .pos_hi = 1, .n_pos = 2, .jump_ratio = 2, .jump_floor = 1e-3, .var = &v};
    ck_assert_int_eq(qv_trace_jump_layer(&t, 0, 0), 2);
    ck_assert_int_eq(qv_trace_jump_layer(&t, 0, 1), -1);
    double kld[5] = {0.1, 0.5, 0.2, 0.5, 0.05};
    v.kld = kld;
    t.n_pos = 5, t.pos_lo = 10, t.pos_hi = 14;
    int w[3];
    ck_assert_int_eq(qv_trace_worst(&t, 0, 3, w), 3);
    ck_assert_int_eq(w[0], 11); /* ties: earlier first */
    ck_assert_int_eq(w[1], 13);
    ck_assert_int_eq(w[2], 12);
}
END_TEST

START_TEST(bad_context_or_positions_are_input_errors)
{
    qv_model *m = make(1);
    int32_t *ids = tokens(300, 1);
    qv_engine *r = open_e("ref-fp32", m, 0), *c = open_e("ref-fp32", m, 0);
    qv_trace_variant v = {"cand", c};
    qv_trace_result t;
    qv_trace_opts o = {.ctx = 300, .pos_hi = -1};
    ck_assert_int_eq(qv_trace_run(r, &v, 1, ids, 300, &o, &t), QV_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(qv_last_error(), "max_position_embeddings"));
    o.ctx = 64, o.pos_lo = 10, o.pos_hi = 63;
    ck_assert_int_eq(qv_trace_run(r, &v, 1, ids, 300, &o, &t), QV_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(qv_last_error(), "positions 10-63"));
    o.pos_hi = 20;
    ck_assert_int_eq(qv_trace_run(r, &v, 1, ids, 50, &o, &t), QV_ERR_INPUT);
    qv_engine_close(r), qv_engine_close(c);
    free(ids);
    qv_rand_model_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("trace");
    TCase *tc = tcase_create("trace");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, damaged_mlp_of_layer_2_is_ranked_first_and_is_where_worst_positions_jump);
    tcase_add_test(tc, damaged_q_proj_of_layer_1_is_ranked_first_and_is_where_worst_positions_jump);
    tcase_add_test(tc, kv4_vs_kv16_ablation_attributes_the_kld_to_the_kv_cache);
    tcase_add_test(tc, two_runs_give_identical_results);
    tcase_add_test(tc, kld_of_a_truncated_run_equals_the_prefix_figure_of_the_long_run);
    tcase_add_test(tc, jump_layer_follows_its_definition);
    tcase_add_test(tc, bad_context_or_positions_are_input_errors);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
