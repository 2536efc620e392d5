/* The built-in synthetic Llama: deterministic, loadable as a HF folder, and carrying the
 * outlier structure docs/synthetic.md describes (measured here on the weights; the activation
 * figures are measured through the engine in test_synth_acts.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qv_test_util.h"
#include "qvet/fp16.h"
#include "qvet/synth.h"

START_TEST(synth_same_seed_same_bytes_other_seed_differs)
{
    qv_synth_files a, b, c;
    ck_assert_int_eq(qv_synth_build(QV_SYNTH_TINY, 7, &a), QV_OK);
    ck_assert_int_eq(qv_synth_build(QV_SYNTH_TINY, 7, &b), QV_OK);
    ck_assert_int_eq(qv_synth_build(QV_SYNTH_TINY, 8, &c), QV_OK);
    ck_assert_uint_eq(a.safetensors_size, b.safetensors_size);
    ck_assert(memcmp(a.safetensors, b.safetensors, a.safetensors_size) == 0);
    ck_assert_str_eq(a.tokenizer_json, b.tokenizer_json);
    ck_assert_str_eq(a.config_json, b.config_json);
    ck_assert_uint_eq(a.safetensors_size, c.safetensors_size);
    ck_assert(memcmp(a.safetensors, c.safetensors, a.safetensors_size) != 0);
    qv_synth_files_free(&a);
    qv_synth_files_free(&b);
    qv_synth_files_free(&c);
}
END_TEST

START_TEST(synth_folder_loads_and_equals_in_memory_model)
{
    char *dir = qv_test_tmpdir();
    ck_assert_int_eq(qv_synth_write(QV_SYNTH_TINY, 3, dir), QV_OK);
    qv_model *disk = NULL, *mem = NULL;
    ck_assert_msg(qv_model_open(dir, &disk) == QV_OK, "%s", qv_last_error());
    ck_assert_msg(qv_synth_open(QV_SYNTH_TINY, 3, &mem) == QV_OK, "%s", qv_last_error());
    ck_assert_int_eq(disk->cfg.hidden_size, 256);
    ck_assert_int_eq(disk->cfg.num_layers, 4);
    ck_assert_int_eq(disk->cfg.num_heads, 8);
    ck_assert_int_eq(disk->cfg.num_kv_heads, 2);
    ck_assert_int_eq(disk->cfg.vocab_size, 512);
    ck_assert_int_eq(disk->n_params, mem->n_params);
    /* parameters from the preset's shapes: embed + lm_head + layers * (q,k,v,o,gate,up,down,2 norms) + norm */
    long long H = 256, I = 768, V = 512, qd = 8 * 32, kvd = 2 * 32;
    long long per_layer = H * qd + 2 * H * kvd + qd * H + 3 * H * I + 2 * H;
    ck_assert_int_eq(disk->n_params, 2 * V * H + 4 * per_layer + H);
    ck_assert(memcmp(disk->layers[2].w_down.data, mem->layers[2].w_down.data, (size_t)(H * I * 2)) == 0);
    qv_model_close(disk);
    qv_model_close(mem);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
}
END_TEST

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Ratio of the largest to the median of n values. */
static double max_over_median(double *v, int n)
{
    double mx = 0;
    for (int i = 0; i < n; i++) mx = v[i] > mx ? v[i] : mx;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return mx / v[n / 2];
}

START_TEST(synth_weights_carry_outlier_structure)
{
    qv_model *m = NULL;
    ck_assert(qv_synth_open(QV_SYNTH_TINY, 0, &m) == QV_OK);
    const int H = m->cfg.hidden_size, V = m->cfg.vocab_size, D = m->cfg.head_dim;
    /* 1. massive channels: mean |embedding| per channel */
    double *ch = calloc((size_t)H, sizeof *ch);
    const qv_fp16 *e = m->embed.data;
    for (int v = 0; v < V; v++)
        for (int j = 0; j < H; j++) ch[j] += fabs(qv_fp16_to_fp32(e[(size_t)v * H + j])) / V;
    double r_embed = max_over_median(ch, H);
    /* 3. key outliers: row norms of W_k (rows = key channels) */
    int kr = m->cfg.num_kv_heads * D;
    double *rn = calloc((size_t)kr, sizeof *rn);
    const qv_fp16 *wk = m->layers[0].wk.data;
    for (int r = 0; r < kr; r++) {
        for (int j = 0; j < H; j++) rn[r] += pow(qv_fp16_to_fp32(wk[(size_t)r * H + j]), 2);
        rn[r] = sqrt(rn[r]);
    }
    double r_key = max_over_median(rn, kr);
    /* 2. heavy tails: excess kurtosis of a projection's entries (Gaussian: 0) */
    const qv_fp16 *wu = m->layers[1].w_up.data;
    long n = (long)m->cfg.intermediate_size * H;
    double s2 = 0, s4 = 0;
    for (long i = 0; i < n; i++) {
        double x = qv_fp16_to_fp32(wu[i]);
        s2 += x * x;
        s4 += x * x * x * x;
    }
    double kurt = (s4 / n) / ((s2 / n) * (s2 / n)) - 3.0;
    printf("synthetic tiny seed 0: embedding channel max/median %.1f, W_k row-norm max/median %.1f, "
           "up_proj excess kurtosis %.1f\n", r_embed, r_key, kurt);
    ck_assert_msg(r_embed > 20.0, "massive channels too weak: %.1f", r_embed);
    ck_assert_msg(r_key > 8.0, "key outlier rows too weak: %.1f", r_key);
    ck_assert_msg(kurt > 3.0, "weights not heavy-tailed: excess kurtosis %.2f", kurt);
    free(ch);
    free(rn);
    qv_model_close(m);
}
END_TEST

START_TEST(synth_tokenizer_vocab_is_full_and_starts_with_specials)
{
    char *json = NULL;
    ck_assert_int_eq(qv_synth_tokenizer_json(512, &json), QV_OK);
    ck_assert(strstr(json, "\"<|begin_of_text|>\":0") != NULL);
    ck_assert(strstr(json, "\"<|end_of_text|>\":1") != NULL);
    ck_assert(strstr(json, "\"merges\":[") != NULL);
    free(json);
    ck_assert_int_eq(qv_synth_tokenizer_json(100, &json), QV_ERR_USAGE);
}
END_TEST

START_TEST(synth_cli_writes_folder_and_rejects_bad_flags)
{
    char *dir = qv_test_tmpdir(), args[4200], *out = NULL, *err = NULL;
    snprintf(args, sizeof args, "synth --out '%s/m' --seed 5", dir);
    ck_assert_int_eq(qv_test_run_qvet(args, &out, &err), 0);
    ck_assert(strstr(out, "seed 5") != NULL);
    free(out);
    free(err);
    snprintf(args, sizeof args, "info --model '%s/m'", dir);
    ck_assert_int_eq(qv_test_run_qvet(args, &out, &err), 0);
    ck_assert_msg(strstr(out, "3,279,104") != NULL, "%s", out);
    free(out);
    free(err);
    ck_assert_int_eq(qv_test_run_qvet("synth --out /tmp/x --preset huge", &out, &err), 2);
    ck_assert(strstr(err, "unknown preset 'huge'") != NULL);
    free(out);
    free(err);
    ck_assert_int_eq(qv_test_run_qvet("synth --seed 3", &out, &err), 2);
    ck_assert(strstr(err, "--out DIR is required") != NULL);
    free(out);
    free(err);
    snprintf(args, sizeof args, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(args), 0);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("synth");
    TCase *tc = tcase_create("synth");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, synth_same_seed_same_bytes_other_seed_differs);
    tcase_add_test(tc, synth_folder_loads_and_equals_in_memory_model);
    tcase_add_test(tc, synth_weights_carry_outlier_structure);
    tcase_add_test(tc, synth_tokenizer_vocab_is_full_and_starts_with_specials);
    tcase_add_test(tc, synth_cli_writes_folder_and_rejects_bad_flags);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
