/* config.json parsing for the Llama family. The configs below are written for this test with
 * the field names and values of the public model cards (sizes of Llama-2-7B, Llama-3.1-8B,
 * Mistral-7B-v0.1, Qwen2-0.5B, SmolLM-135M); only the fields qvet reads matter. */
#include <math.h>
#include <string.h>

#include "qv_test_util.h"
#include "qvet/model.h"

static qv_config parse_ok(const char *json)
{
    qv_config c;
    qv_status st = qv_config_parse(json, strlen(json), "cfg.json", &c);
    ck_assert_msg(st == QV_OK, "%s", qv_last_error());
    return c;
}

START_TEST(llama2_7b_defaults_kv_heads_and_head_dim)
{
    qv_config c = parse_ok("{\"architectures\": [\"LlamaForCausalLM\"], \"bos_token_id\": 1, \"eos_token_id\": 2,"
                           "\"hidden_act\": \"silu\", \"hidden_size\": 4096, \"intermediate_size\": 11008,"
                           "\"max_position_embeddings\": 4096, \"model_type\": \"llama\", \"num_attention_heads\": 32,"
                           "\"num_hidden_layers\": 32, \"pad_token_id\": 0, \"rms_norm_eps\": 1e-05,"
                           "\"rope_scaling\": null, \"tie_word_embeddings\": false, \"torch_dtype\": \"float16\","
                           "\"vocab_size\": 32000}");
    ck_assert_str_eq(c.model_type, "llama");
    ck_assert_int_eq(c.hidden_size, 4096);
    ck_assert_int_eq(c.intermediate_size, 11008);
    ck_assert_int_eq(c.num_layers, 32);
    ck_assert_int_eq(c.num_heads, 32);
    ck_assert_int_eq(c.num_kv_heads, 32); /* absent -> num_attention_heads */
    ck_assert_int_eq(c.head_dim, 128);    /* absent -> 4096 / 32 */
    ck_assert_int_eq(c.vocab_size, 32000);
    ck_assert_int_eq(c.max_position_embeddings, 4096);
    ck_assert(c.rms_norm_eps == 1e-5f);
    ck_assert(c.rope_theta == 10000.0); /* absent -> 10000 */
    ck_assert_int_eq(c.rope_type, QV_ROPE_DEFAULT);
    ck_assert_int_eq(c.tie_word_embeddings, 0);
    ck_assert_int_eq(c.attention_bias, 0);
    ck_assert_int_eq(c.o_bias, 0);
    ck_assert_int_eq(c.torch_dtype, QV_F16);
    ck_assert_int_eq(c.bos_token_id, 1);
    ck_assert_int_eq(c.eos_token_id, 2);
}
END_TEST

START_TEST(llama3_8b_llama3_rope_scaling_and_eos_array)
{
    qv_config c = parse_ok("{\"architectures\": [\"LlamaForCausalLM\"], \"attention_bias\": false,"
                           "\"bos_token_id\": 128000, \"eos_token_id\": [128001, 128008, 128009],"
                           "\"hidden_size\": 4096, \"intermediate_size\": 14336, \"max_position_embeddings\": 131072,"
                           "\"mlp_bias\": false, \"model_type\": \"llama\", \"num_attention_heads\": 32,"
                           "\"num_hidden_layers\": 32, \"num_key_value_heads\": 8, \"rms_norm_eps\": 1e-05,"
                           "\"rope_scaling\": {\"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
                           "\"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"},"
                           "\"rope_theta\": 500000.0, \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\","
                           "\"vocab_size\": 128256}");
    ck_assert_int_eq(c.num_kv_heads, 8);
    ck_assert_int_eq(c.head_dim, 128);
    ck_assert(c.rope_theta == 500000.0);
    ck_assert_int_eq(c.rope_type, QV_ROPE_LLAMA3);
    ck_assert(c.rope_factor == 8.0);
    ck_assert(c.rope_low_freq_factor == 1.0);
    ck_assert(c.rope_high_freq_factor == 4.0);
    ck_assert_int_eq(c.rope_original_max_pos, 8192);
    ck_assert_int_eq(c.torch_dtype, QV_BF16);
    ck_assert_int_eq(c.bos_token_id, 128000);
    ck_assert_int_eq(c.eos_token_id, 128001); /* the first of the array */
    ck_assert_int_eq(c.max_position_embeddings, 131072);
}
END_TEST

START_TEST(mistral_7b_sliding_window_ignored_null_head_dim)
{
    qv_config c = parse_ok("{\"architectures\": [\"MistralForCausalLM\"], \"bos_token_id\": 1, \"eos_token_id\": 2,"
                           "\"head_dim\": null, \"hidden_size\": 4096, \"intermediate_size\": 14336,"
                           "\"max_position_embeddings\": 32768, \"model_type\": \"mistral\","
                           "\"num_attention_heads\": 32, \"num_hidden_layers\": 32, \"num_key_value_heads\": 8,"
                           "\"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, \"sliding_window\": 4096,"
                           "\"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\", \"vocab_size\": 32000}");
    ck_assert_str_eq(c.model_type, "mistral");
    ck_assert_int_eq(c.head_dim, 128);
    ck_assert_int_eq(c.num_kv_heads, 8);
    ck_assert_int_eq(c.attention_bias, 0);
}
END_TEST

START_TEST(qwen2_has_qkv_bias_without_the_flag_and_ties)
{
    qv_config c = parse_ok("{\"architectures\": [\"Qwen2ForCausalLM\"], \"bos_token_id\": 151643,"
                           "\"eos_token_id\": 151643, \"hidden_size\": 896, \"intermediate_size\": 4864,"
                           "\"max_position_embeddings\": 131072, \"max_window_layers\": 24, \"model_type\": \"qwen2\","
                           "\"num_attention_heads\": 14, \"num_hidden_layers\": 24, \"num_key_value_heads\": 2,"
                           "\"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000.0, \"sliding_window\": 131072,"
                           "\"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\", \"use_sliding_window\": false,"
                           "\"vocab_size\": 151936}");
    ck_assert_str_eq(c.model_type, "qwen2");
    ck_assert_int_eq(c.head_dim, 64);
    ck_assert_int_eq(c.attention_bias, 1);
    ck_assert_int_eq(c.o_bias, 0);
    ck_assert_int_eq(c.tie_word_embeddings, 1);
    ck_assert(c.rms_norm_eps == 1e-6f);
    ck_assert(c.rope_theta == 1e6);
}
END_TEST

START_TEST(smollm_tied_llama_with_float32)
{
    qv_config c = parse_ok("{\"architectures\": [\"LlamaForCausalLM\"], \"bos_token_id\": 0, \"eos_token_id\": 0,"
                           "\"hidden_size\": 576, \"intermediate_size\": 1536, \"max_position_embeddings\": 2048,"
                           "\"model_type\": \"llama\", \"num_attention_heads\": 9, \"num_hidden_layers\": 30,"
                           "\"num_key_value_heads\": 3, \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0,"
                           "\"tie_word_embeddings\": true, \"torch_dtype\": \"float32\", \"vocab_size\": 49152}");
    ck_assert_int_eq(c.head_dim, 64);
    ck_assert_int_eq(c.num_kv_heads, 3);
    ck_assert_int_eq(c.tie_word_embeddings, 1);
    ck_assert_int_eq(c.torch_dtype, QV_F32);
    ck_assert_int_eq(c.bos_token_id, 0);
}
END_TEST

/* transformers >= 5 writes "dtype" and "rope_parameters"; explicit head_dim may differ from
 * hidden/heads; linear scaling via the old "type" key. */
START_TEST(rope_parameters_dtype_and_linear_scaling)
{
    qv_config c = parse_ok("{\"hidden_size\": 384, \"intermediate_size\": 1024, \"num_hidden_layers\": 2,"
                           "\"num_attention_heads\": 6, \"num_key_value_heads\": 2, \"head_dim\": 32,"
                           "\"vocab_size\": 100, \"dtype\": \"float16\", \"torch_dtype\": \"float32\","
                           "\"rope_parameters\": {\"rope_theta\": 250000.0, \"rope_type\": \"llama3\", \"factor\": 32,"
                           "\"low_freq_factor\": 1, \"high_freq_factor\": 4, \"original_max_position_embeddings\": 8192},"
                           "\"eos_token_id\": null}");
    ck_assert_str_eq(c.model_type, "llama"); /* absent -> llama */
    ck_assert_int_eq(c.head_dim, 32);
    ck_assert_int_eq(c.torch_dtype, QV_F16); /* "dtype" wins */
    ck_assert(c.rope_theta == 250000.0);
    ck_assert_int_eq(c.rope_type, QV_ROPE_LLAMA3);
    ck_assert(c.rope_factor == 32.0);
    ck_assert_int_eq(c.eos_token_id, -1);
    ck_assert_int_eq(c.bos_token_id, -1);
    c = parse_ok("{\"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 1,"
                 "\"num_attention_heads\": 4, \"vocab_size\": 10, \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}}");
    ck_assert_int_eq(c.rope_type, QV_ROPE_LINEAR);
    ck_assert(c.rope_factor == 2.0);
    ck_assert_int_eq(c.torch_dtype, QV_F32); /* absent -> float32 */
}
END_TEST

START_TEST(bad_configs_fail_with_field_named)
{
    static const char *base = "\"intermediate_size\": 128, \"num_hidden_layers\": 1, \"vocab_size\": 10";
    struct { const char *extra; const char *want; qv_status st; } cases[] = {
        {"\"hidden_size\": 64, \"num_attention_heads\": 4, \"model_type\": \"gpt2\"", "model_type \"gpt2\" is not supported", QV_ERR_UNSUPPORTED},
        {"\"hidden_size\": 64, \"num_attention_heads\": 4, \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4}", "rope scaling type \"yarn\"", QV_ERR_UNSUPPORTED},
        {"\"hidden_size\": 64, \"num_attention_heads\": 4, \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8}", "missing required field \"rope_scaling.low_freq_factor\"", QV_ERR_INPUT},
        {"\"hidden_size\": 64, \"num_attention_heads\": 4, \"rope_theta\": 10000, \"rope_parameters\": {\"rope_theta\": 500000}", "disagrees", QV_ERR_INPUT},
        {"\"hidden_size\": 64, \"num_attention_heads\": 4, \"num_key_value_heads\": 3", "not a multiple of num_key_value_heads", QV_ERR_INPUT},
        {"\"hidden_size\": 66, \"num_attention_heads\": 4", "hidden_size (66) is not a multiple", QV_ERR_INPUT},
        {"\"hidden_size\": 64, \"num_attention_heads\": 4, \"head_dim\": 15", "must be even", QV_ERR_INPUT},
        {"\"hidden_size\": 64.5, \"num_attention_heads\": 4", "\"hidden_size\" must be an integer", QV_ERR_INPUT},
        {"\"hidden_size\": 0, \"num_attention_heads\": 4", "\"hidden_size\" = 0 is outside", QV_ERR_INPUT},
        {"\"hidden_size\": 64, \"num_attention_heads\": 4, \"rms_norm_eps\": -1", "\"rms_norm_eps\" = -1 is outside", QV_ERR_INPUT},
        {"\"hidden_size\": 64, \"num_attention_heads\": 4, \"tie_word_embeddings\": 1", "must be true or false", QV_ERR_INPUT},
        {"\"hidden_size\": 64, \"num_attention_heads\": 4, \"eos_token_id\": 10", "not a token id", QV_ERR_INPUT},
        {"\"hidden_size\": 64, \"num_attention_heads\": 4, \"torch_dtype\": \"int8\"", "\"torch_dtype\" = \"int8\" is not supported", QV_ERR_UNSUPPORTED},
        {"\"num_attention_heads\": 4", "missing required field \"hidden_size\"", QV_ERR_INPUT},
    };
    char json[1024];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(json, sizeof json, "{%s, %s}", base, cases[i].extra);
        qv_config c;
        qv_status st = qv_config_parse(json, strlen(json), "cfg.json", &c);
        ck_assert_msg(st == cases[i].st, "case %zu: status %d, message '%s'", i, st, qv_last_error());
        ck_assert_msg(strstr(qv_last_error(), "cfg.json") && strstr(qv_last_error(), cases[i].want),
                      "case %zu: '%s' lacks '%s'", i, qv_last_error(), cases[i].want);
    }
    const char *texts[][2] = {{"[1, 2]", "must be a JSON object, got an array"},
                              {"{\"hidden_size\": }", "not valid JSON (error near line 1"},
                              {"", "empty file"},
                              {"{\"a\": \"\xc3\x28\"}", "not valid UTF-8"},
                              {"{} {}", "trailing characters"}};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        qv_config c;
        ck_assert_int_eq(qv_config_parse(texts[i][0], strlen(texts[i][0]), "cfg.json", &c), QV_ERR_INPUT);
        ck_assert_msg(strstr(qv_last_error(), texts[i][1]), "text %zu: '%s'", i, qv_last_error());
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, llama2_7b_defaults_kv_heads_and_head_dim);
    tcase_add_test(tc, llama3_8b_llama3_rope_scaling_and_eos_array);
    tcase_add_test(tc, mistral_7b_sliding_window_ignored_null_head_dim);
    tcase_add_test(tc, qwen2_has_qkv_bias_without_the_flag_and_ties);
    tcase_add_test(tc, smollm_tied_llama_with_float32);
    tcase_add_test(tc, rope_parameters_dtype_and_linear_scaling);
    tcase_add_test(tc, bad_configs_fail_with_field_named);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
