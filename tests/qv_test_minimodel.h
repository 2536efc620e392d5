/* A tiny Llama-family model written for tests (header-only: included by the model and
 * malformed-input suites). hidden 16, intermediate 32, 2 layers, 4 heads / 2 KV heads of 4,
 * vocab 64; F16 weights N(0, 0.02) from a seeded generator. Mutations break one thing at a time. */
#ifndef QV_TEST_MINIMODEL_H
#define QV_TEST_MINIMODEL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qv_test_util.h"
#include "qvet/fileio.h"
#include "qvet/fp16.h"
#include "qvet/safetensors.h"

enum { MM_H = 16, MM_I = 32, MM_L = 2, MM_NH = 4, MM_NKV = 2, MM_HD = 4, MM_V = 64 };

typedef struct {
    int tie;              /* tie_word_embeddings (no lm_head.weight written) */
    int qwen2;            /* model_type qwen2, q/k/v biases */
    int bias_no_flag;     /* llama config without attention_bias, but q/k/v/o biases stored */
    const char *skip;     /* tensor left out */
    const char *reshape;  /* tensor stored with its first dim + 1 */
    const char *poison;   /* tensor with a non-finite value at index poison_at */
    float poison_value;
    long poison_at;
    const char *as_i8;    /* tensor stored as I8 */
    const char *config_override; /* whole config.json text */
} mm_opts;

static char *mm_config(const mm_opts *o)
{
    char *s = malloc(1024);
    if (o->config_override) {
        snprintf(s, 1024, "%s", o->config_override);
        return s;
    }
    snprintf(s, 1024,
             "{\"model_type\": \"%s\", \"hidden_size\": %d, \"intermediate_size\": %d, \"num_hidden_layers\": %d,"
             " \"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"vocab_size\": %d,"
             " \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, \"tie_word_embeddings\": %s,"
             " \"torch_dtype\": \"float16\", \"bos_token_id\": 1, \"eos_token_id\": 2}",
             o->qwen2 ? "qwen2" : "llama", MM_H, MM_I, MM_L, MM_NH, MM_NKV, MM_V, o->tie ? "true" : "false");
    return s;
}

static void mm_add(qv_st_writer *w, qv_test_rng *r, const mm_opts *o, const char *name, int64_t d0, int64_t d1)
{
    if (o->skip && strcmp(o->skip, name) == 0) return;
    if (o->reshape && strcmp(o->reshape, name) == 0) d0 += 1;
    int64_t shape[2] = {d0, d1};
    int ndim = d1 ? 2 : 1;
    size_t n = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    if (o->as_i8 && strcmp(o->as_i8, name) == 0) {
        signed char *q = calloc(n, 1);
        ck_assert_int_eq(qv_st_writer_add(w, name, QV_I8, ndim, shape, q), QV_OK);
        free(q);
        return;
    }
    qv_fp16 *h = malloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++) h[i] = qv_fp32_to_fp16((float)(0.02 * qv_test_normal(r)));
    if (o->poison && strcmp(o->poison, name) == 0) h[o->poison_at] = qv_fp32_to_fp16(o->poison_value);
    ck_assert_int_eq(qv_st_writer_add(w, name, QV_F16, ndim, shape, h), QV_OK);
    free(h);
}

static qv_st_writer *mm_weights(const mm_opts *o)
{
    qv_test_rng r = {777};
    qv_st_writer *w = qv_st_writer_new();
    char n[128];
    int QD = MM_NH * MM_HD, KD = MM_NKV * MM_HD;
    int bias = o->qwen2 || o->bias_no_flag;
    mm_add(w, &r, o, "model.embed_tokens.weight", MM_V, MM_H);
    for (int l = 0; l < MM_L; l++) {
#define MM(suffix, a, b) do { snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix); mm_add(w, &r, o, n, a, b); } while (0)
        MM("self_attn.q_proj.weight", QD, MM_H);
        MM("self_attn.k_proj.weight", KD, MM_H);
        MM("self_attn.v_proj.weight", KD, MM_H);
        MM("self_attn.o_proj.weight", MM_H, QD);
        if (bias) {
            MM("self_attn.q_proj.bias", QD, 0);
            MM("self_attn.k_proj.bias", KD, 0);
            MM("self_attn.v_proj.bias", KD, 0);
        }
        if (o->bias_no_flag) MM("self_attn.o_proj.bias", MM_H, 0);
        MM("mlp.gate_proj.weight", MM_I, MM_H);
        MM("mlp.up_proj.weight", MM_I, MM_H);
        MM("mlp.down_proj.weight", MM_H, MM_I);
        MM("input_layernorm.weight", MM_H, 0);
        MM("post_attention_layernorm.weight", MM_H, 0);
#undef MM
    }
    mm_add(w, &r, o, "model.norm.weight", MM_H, 0);
    if (!o->tie) mm_add(w, &r, o, "lm_head.weight", MM_V, MM_H);
    return w;
}

/* Parameters of the mini model, counted from the architecture (independently of the loader). */
static long long mm_params(const mm_opts *o)
{
    long long QD = MM_NH * MM_HD, KD = MM_NKV * MM_HD;
    long long layer = QD * MM_H + 2 * KD * MM_H + MM_H * QD + 3LL * MM_I * MM_H + 2 * MM_H;
    if (o->qwen2 || o->bias_no_flag) layer += QD + 2 * KD;
    if (o->bias_no_flag) layer += MM_H;
    return (long long)MM_V * MM_H * (o->tie ? 1 : 2) + MM_L * layer + MM_H;
}

/* Writes config.json + model.safetensors into a new temp dir; returns it (malloc'd). */
static char *mm_write_dir(const mm_opts *o)
{
    char *dir = qv_test_tmpdir();
    char *cfg = mm_config(o);
    char *p = qv_path_join(dir, "config.json");
    ck_assert_int_eq(qv_write_file_atomic(p, cfg, strlen(cfg)), QV_OK);
    free(p);
    free(cfg);
    qv_st_writer *w = mm_weights(o);
    p = qv_path_join(dir, "model.safetensors");
    ck_assert_int_eq(qv_st_writer_write(w, p), QV_OK);
    free(p);
    qv_st_writer_free(w);
    return dir;
}

static void mm_rm_rf(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

#endif
