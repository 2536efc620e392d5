/* Model loading: in-memory and folder models, tied
 * embeddings, bias detection, and the library-level errors (missing / misshapen / non-finite). */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "qv_test_minimodel.h"
#include "qvet/model.h"

static qv_model *open_mm_buffers(const mm_opts *o, qv_status *st)
{
    qv_st_writer *w = mm_weights(o);
    unsigned char *buf;
    size_t size;
    ck_assert_int_eq(qv_st_writer_to_buffer(w, &buf, &size), QV_OK);
    qv_st_writer_free(w);
    qv_model *m = NULL;
    *st = qv_model_open_buffers("<mini>", mm_config(o), buf, size, NULL, &m);
    return m;
}

START_TEST(buffers_model_params_and_views)
{
    mm_opts o = {0};
    qv_status st;
    qv_model *m = open_mm_buffers(&o, &st);
    ck_assert_msg(st == QV_OK, "%s", qv_last_error());
    ck_assert_int_eq(m->n_params, mm_params(&o));
    ck_assert_int_eq(m->layers[1].wq.shape[0], MM_NH * MM_HD);
    ck_assert_int_eq(m->layers[1].wk.shape[0], MM_NKV * MM_HD);
    ck_assert_ptr_null(m->tokenizer_json);
    ck_assert_ptr_null(m->tok);
    ck_assert_str_eq(m->dir, "<mini>");
    qv_model_close(m);
}
END_TEST

START_TEST(tied_lm_head_is_embed_counted_once)
{
    mm_opts o = {.tie = 1};
    qv_status st;
    qv_model *m = open_mm_buffers(&o, &st);
    ck_assert_msg(st == QV_OK, "%s", qv_last_error());
    ck_assert_ptr_eq(m->lm_head.data, m->embed.data);
    ck_assert_int_eq(m->n_params, mm_params(&o));
    ck_assert_int_eq(m->n_params, mm_params(&(mm_opts){0}) - MM_V * MM_H);
    qv_model_close(m);
}
END_TEST

START_TEST(qwen2_and_stored_biases_are_detected)
{
    mm_opts q = {.qwen2 = 1};
    qv_status st;
    qv_model *m = open_mm_buffers(&q, &st);
    ck_assert_msg(st == QV_OK, "%s", qv_last_error());
    ck_assert_ptr_nonnull(m->layers[1].bq.data);
    ck_assert_int_eq(m->layers[1].bk.shape[0], MM_NKV * MM_HD);
    ck_assert_ptr_null(m->layers[1].bo.data);
    ck_assert_int_eq(m->n_params, mm_params(&q));
    qv_model_close(m);
    /* llama config without attention_bias, biases in the file: found from the tensors */
    mm_opts b = {.bias_no_flag = 1};
    m = open_mm_buffers(&b, &st);
    ck_assert_msg(st == QV_OK, "%s", qv_last_error());
    ck_assert_int_eq(m->cfg.attention_bias, 1);
    ck_assert_int_eq(m->cfg.o_bias, 1);
    ck_assert_ptr_nonnull(m->layers[0].bo.data);
    ck_assert_int_eq(m->n_params, mm_params(&b));
    qv_model_close(m);
}
END_TEST

START_TEST(model_errors_name_tensor_and_shape)
{
    struct { mm_opts o; const char *want[3]; } cases[] = {
        {{.skip = "model.layers.1.mlp.up_proj.weight"},
         {"<mini>/model.safetensors: missing tensor 'model.layers.1.mlp.up_proj.weight'", "[32, 16]", "<mini>/config.json"}},
        {{.reshape = "model.layers.0.self_attn.k_proj.weight"},
         {"tensor 'model.layers.0.self_attn.k_proj.weight': shape [9, 16] does not match [8, 16]",
          "num_key_value_heads*head_dim", NULL}},
        {{.poison = "model.layers.1.self_attn.o_proj.weight", .poison_value = INFINITY, .poison_at = 37},
         {"tensor 'model.layers.1.self_attn.o_proj.weight': Inf at index 37 (row 2, column 5)", NULL, NULL}},
        {{.poison = "model.norm.weight", .poison_value = NAN, .poison_at = 3},
         {"tensor 'model.norm.weight': NaN at index 3", NULL, NULL}},
        {{.as_i8 = "lm_head.weight"}, {"tensor 'lm_head.weight': dtype I8 is not a floating type", NULL, NULL}},
        {{.qwen2 = 1, .skip = "model.layers.1.self_attn.v_proj.bias"},
         {"missing tensor 'model.layers.1.self_attn.v_proj.bias'", NULL, NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qv_status st;
        qv_model *m = open_mm_buffers(&cases[i].o, &st);
        ck_assert_msg(st == QV_ERR_INPUT && m == NULL, "case %zu: status %d", i, st);
        for (int k = 0; k < 3 && cases[i].want[k]; k++)
            ck_assert_msg(strstr(qv_last_error(), cases[i].want[k]), "case %zu: '%s' lacks '%s'", i, qv_last_error(),
                          cases[i].want[k]);
    }
}
END_TEST

START_TEST(folder_model_matches_buffer_model)
{
    mm_opts o = {0};
    char *dir = mm_write_dir(&o);
    qv_model *m;
    ck_assert_msg(qv_model_open(dir, &m) == QV_OK, "%s", qv_last_error());
    qv_status st;
    qv_model *b = open_mm_buffers(&o, &st);
    ck_assert_int_eq(st, QV_OK);
    ck_assert_int_eq(m->n_params, b->n_params);
    size_t n = MM_V * MM_H * 2;
    ck_assert_int_eq(memcmp(m->embed.data, b->embed.data, n), 0);
    ck_assert_int_eq(memcmp(m->layers[1].w_down.data, b->layers[1].w_down.data, MM_H * MM_I * 2), 0);
    ck_assert_ptr_null(m->tokenizer_path);
    qv_model_close(b);
    qv_model_close(m);
    mm_rm_rf(dir);
    free(dir);
}
END_TEST

/* info --quantized prints a checkpoint's metadata and tensors and writes the same as JSON. */
START_TEST(info_quantized_prints_metadata_and_tensors)
{
    char *dir = qv_test_tmpdir();
    char *ck = qv_path_join(dir, "ckpt.safetensors"), *json = qv_path_join(dir, "info.json");
    qv_st_writer *w = qv_st_writer_new();
    int64_t shape[2] = {4, 8};
    unsigned char codes[32] = {7};
    ck_assert_int_eq(qv_st_writer_add(w, "model.layers.0.mlp.up_proj.qweight", QV_U8, 2, shape, codes), QV_OK);
    ck_assert_int_eq(qv_st_writer_meta(w, "qvet.format", "w4a8-g128"), QV_OK);
    ck_assert_int_eq(qv_st_writer_write(w, ck), QV_OK);
    qv_st_writer_free(w);
    char args[8400];
    snprintf(args, sizeof args, "info --quantized '%s' --json '%s'", ck, json);
    char *out, *err;
    int rc = qv_test_run_qvet(args, &out, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    ck_assert_ptr_nonnull(strstr(out, "  qvet.format = w4a8-g128\n"));
    ck_assert_ptr_nonnull(strstr(out, "model.layers.0.mlp.up_proj.qweight"));
    ck_assert_ptr_nonnull(strstr(out, "U8    [4, 8]"));
    char *text;
    ck_assert_int_eq(qv_read_file(json, 1 << 20, &text, NULL), QV_OK);
    ck_assert_ptr_nonnull(strstr(text, "\"qvet.format\":\t\"w4a8-g128\""));
    ck_assert_ptr_nonnull(strstr(text, "\"n_tensors\":\t1"));
    free(text);
    free(out);
    free(err);
    /* without --model: the built-in synthetic model */
    rc = qv_test_run_qvet("info", &out, &err);
    ck_assert_int_eq(rc, 0);
    ck_assert_ptr_nonnull(strstr(out, "model: <synthetic:tiny:0>"));
    free(out);
    free(err);
    /* both sources at once is a usage error */
    rc = qv_test_run_qvet("info --model a --quantized b", &out, &err);
    ck_assert_int_eq(rc, 2);
    ck_assert_ptr_nonnull(strstr(err, "not both"));
    free(out);
    free(err);
    unlink(ck);
    unlink(json);
    rmdir(dir);
    free(ck);
    free(json);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("load");
    tcase_add_test(tc, buffers_model_params_and_views);
    tcase_add_test(tc, tied_lm_head_is_embed_counted_once);
    tcase_add_test(tc, qwen2_and_stored_biases_are_detected);
    tcase_add_test(tc, model_errors_name_tensor_and_shape);
    tcase_add_test(tc, folder_model_matches_buffer_model);
    tcase_add_test(tc, info_quantized_prints_metadata_and_tensors);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
