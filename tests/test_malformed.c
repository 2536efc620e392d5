/* Malformed-input catalog for model I/O (issue 11): each case builds a broken model folder in
 * a temp dir, runs `qvet info --model DIR --json OUT` and asserts exit code 2, a message naming
 * the file at fault and the problem, and that no JSON report was written. Under the ASan+UBSan
 * build the same cases also prove there is no crash or leak-free-use error. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "qv_test_minimodel.h"

/* A raw safetensors file: explicit 8-byte length (hl_override if nonzero), header bytes, data. */
static void write_raw_st(const char *dir, const char *header, uint64_t hl_override, size_t data_bytes)
{
    char *p = qv_path_join(dir, "model.safetensors");
    FILE *fp = fopen(p, "wb");
    ck_assert_ptr_nonnull(fp);
    uint64_t hl = hl_override ? hl_override : strlen(header);
    for (int i = 0; i < 8; i++) fputc((int)((hl >> (8 * i)) & 0xff), fp);
    fwrite(header, 1, strlen(header), fp);
    for (size_t i = 0; i < data_bytes; i++) fputc(0, fp);
    fclose(fp);
    free(p);
}

static void write_text(const char *dir, const char *name, const char *text, size_t len)
{
    char *p = qv_path_join(dir, name);
    FILE *fp = fopen(p, "wb");
    ck_assert_ptr_nonnull(fp);
    if (len) fwrite(text, 1, len, fp);
    fclose(fp);
    free(p);
}

static void rm_file(const char *dir, const char *name)
{
    char *p = qv_path_join(dir, name);
    unlink(p);
    free(p);
}

/* Runs info on dir; asserts exit 2, every `want` substring in stderr, and no report written. */
static void expect_fail(const char *label, const char *dir, const char *const *want)
{
    char args[8400];
    char *json = qv_path_join(dir, "report.json");
    snprintf(args, sizeof args, "info --model '%s' --json '%s'", dir, json);
    char *out, *err;
    int rc = qv_test_run_qvet(args, &out, &err);
    ck_assert_msg(rc == 2, "%s: exit %d (want 2); stderr: %s", label, rc, err);
    ck_assert_msg(strncmp(err, "qvet: ", 6) == 0, "%s: stderr '%s'", label, err);
    for (int i = 0; want[i]; i++)
        ck_assert_msg(strstr(err, want[i]) != NULL, "%s: stderr '%s' lacks '%s'", label, err, want[i]);
    ck_assert_msg(!qv_path_exists(json), "%s: a report was written", label);
    free(json);
    free(out);
    free(err);
}

#define WANT(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ---- safetensors container ---- */
typedef struct { const char *label, *header; uint64_t hl; size_t data; const char *const *want; } raw_case;

START_TEST(broken_safetensors_files_exit_2_naming_file_and_problem)
{
    static const char *T = "model.safetensors";
    raw_case cases[] = {
        {"truncated header", "{\"a\": {\"dtype\": \"F16\", \"sha", 200, 0, WANT(T, "header length 200 runs past the end of the file")},
        {"header length past EOF", "{}", (uint64_t)1 << 26, 0, WANT(T, "runs past the end of the file")},
        {"absurd header length", "{}", (uint64_t)1 << 40, 0, WANT(T, "exceeds the 100 MB limit")},
        {"header length zero", "", 0, 16, WANT(T, "header length is 0")},
        {"garbage JSON", "{\"a\": [1, 2,, }", 0, 0, WANT(T, "header is not valid JSON (error near line 1")},
        {"header not an object", "[1, 2, 3]", 0, 0, WANT(T, "header must be a JSON object, got an array")},
        {"header not UTF-8", "{\"caf\xe9\": 1}", 0, 0, WANT(T, "header is not valid UTF-8")},
        {"tensor entry not an object", "{\"model.norm.weight\": \"F16\"}", 0, 0,
         WANT(T, "tensor 'model.norm.weight': entry must be an object, got a string")},
        {"unknown dtype", "{\"w\": {\"dtype\": \"F17\", \"shape\": [2], \"data_offsets\": [0, 4]}}", 0, 4,
         WANT(T, "tensor 'w': unknown dtype \"F17\"")},
        {"negative shape", "{\"w\": {\"dtype\": \"F16\", \"shape\": [2, -3], \"data_offsets\": [0, 4]}}", 0, 4,
         WANT(T, "tensor 'w': shape[1] is negative (-3)")},
        {"shape overflow (huge dims)",
         "{\"w\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296], \"data_offsets\": [0, 4]}}", 0, 4,
         WANT(T, "tensor 'w': shape [4294967296, 4294967296] of F32 overflows")},
        {"fractional shape", "{\"w\": {\"dtype\": \"F16\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}", 0, 4,
         WANT(T, "tensor 'w': shape[0] = 1.5 is not an integer")},
        {"offsets past EOF", "{\"model.layers.3.mlp.up_proj.weight\": {\"dtype\": \"F16\", \"shape\": [4500], \"data_offsets\": [0, 9000]}}",
         0, 8192, WANT(T, "tensor 'model.layers.3.mlp.up_proj.weight': data offsets [0, 9000) exceed data size 8192")},
        {"overlapping tensors",
         "{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}, \"b\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [8, 24]}}",
         0, 24, WANT(T, "tensors 'a' [0, 16) and 'b' [8, 24) overlap")},
        {"begin after end", "{\"w\": {\"dtype\": \"U8\", \"shape\": [0], \"data_offsets\": [8, 4]}}", 0, 8,
         WANT(T, "tensor 'w': data offsets [8, 4): begin is after end")},
        {"size mismatch", "{\"w\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 0, 8,
         WANT(T, "tensor 'w': data offsets [0, 8) hold 8 bytes but F32 [3] needs 12")},
        {"duplicate tensor name",
         "{\"w\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [0, 2]}, \"w\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [2, 4]}}",
         0, 4, WANT(T, "tensor 'w' appears twice in the header")},
        {"bad data_offsets form", "{\"w\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [0, 1, 2]}}", 0, 2,
         WANT(T, "tensor 'w': \"data_offsets\" must be two non-negative integers")},
        {"metadata not strings", "{\"__metadata__\": {\"format\": 7}}", 0, 0,
         WANT(T, "__metadata__ key 'format' must be a string, got a number")},
        {"trailing bytes after header JSON", "{}garbage", 0, 0, WANT(T, "trailing bytes after the JSON object")},
    };
    mm_opts o = {0};
    char *dir = mm_write_dir(&o);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_raw_st(dir, cases[i].header, cases[i].hl, cases[i].data);
        expect_fail(cases[i].label, dir, cases[i].want);
    }
    /* empty file, and a file shorter than the length field */
    write_text(dir, "model.safetensors", "", 0);
    expect_fail("empty file", dir, WANT(T, "empty file (0 bytes)"));
    write_text(dir, "model.safetensors", "\x10\0\0", 3);
    expect_fail("shorter than 8 bytes", dir, WANT(T, "file of 3 bytes is too short"));
    /* the same container checks guard --quantized */
    char args[8400], *out, *err;
    snprintf(args, sizeof args, "info --quantized '%s/model.safetensors'", dir);
    ck_assert_int_eq(qv_test_run_qvet(args, &out, &err), 2);
    ck_assert_msg(strstr(err, "model.safetensors: file of 3 bytes is too short"), "%s", err);
    free(out);
    free(err);
    mm_rm_rf(dir);
    free(dir);
}
END_TEST

/* ---- tensors against the config ---- */
START_TEST(broken_weights_exit_2_naming_tensor)
{
    struct { const char *label; mm_opts o; const char *const *want; } cases[] = {
        {"missing tensor", {.skip = "model.layers.1.mlp.up_proj.weight"},
         WANT("model.safetensors: missing tensor 'model.layers.1.mlp.up_proj.weight' (expected [32, 16]")},
        {"missing lm_head untied", {.skip = "lm_head.weight"}, WANT("missing tensor 'lm_head.weight'")},
        {"wrong shape vs config", {.reshape = "model.layers.0.mlp.down_proj.weight"},
         WANT("model.safetensors: tensor 'model.layers.0.mlp.down_proj.weight': shape [17, 32] does not match [16, 32]",
              "[hidden_size, intermediate_size]", "config.json")},
        {"NaN in weights", {.poison = "model.layers.1.mlp.gate_proj.weight", .poison_value = NAN, .poison_at = 100},
         WANT("model.safetensors: tensor 'model.layers.1.mlp.gate_proj.weight': NaN at index 100 (row 6, column 4)")},
        {"Inf in weights", {.poison = "model.embed_tokens.weight", .poison_value = -INFINITY, .poison_at = 5},
         WANT("model.safetensors: tensor 'model.embed_tokens.weight': Inf at index 5 (row 0, column 5)")},
        {"integer weight", {.as_i8 = "model.layers.0.self_attn.q_proj.weight"},
         WANT("tensor 'model.layers.0.self_attn.q_proj.weight': dtype I8 is not a floating type")},
        {"qwen2 missing bias", {.qwen2 = 1, .skip = "model.layers.0.self_attn.k_proj.bias"},
         WANT("missing tensor 'model.layers.0.self_attn.k_proj.bias'")},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *dir = mm_write_dir(&cases[i].o);
        expect_fail(cases[i].label, dir, cases[i].want);
        mm_rm_rf(dir);
        free(dir);
    }
}
END_TEST

/* ---- config.json ---- */
START_TEST(broken_configs_exit_2_naming_field)
{
    static const char *C = "config.json";
    struct { const char *label, *cfg; const char *const *want; } cases[] = {
        {"config missing hidden_size",
         "{\"intermediate_size\": 32, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 64}",
         WANT(C, "missing required field \"hidden_size\"")},
        {"config wrong type",
         "{\"hidden_size\": \"16\", \"intermediate_size\": 32, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 64}",
         WANT(C, "\"hidden_size\" must be an integer, got a string")},
        {"config absurd value",
         "{\"hidden_size\": 16, \"intermediate_size\": 32, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 1e12}",
         WANT(C, "\"vocab_size\" = 1000000000000 is outside [1, 16777216]")},
        {"config negative layers",
         "{\"hidden_size\": 16, \"intermediate_size\": 32, \"num_hidden_layers\": -2, \"num_attention_heads\": 4, \"vocab_size\": 64}",
         WANT(C, "\"num_hidden_layers\" = -2 is outside")},
        {"config garbage JSON", "{\"hidden_size\": 16,\n \"oops\" }", WANT(C, "not valid JSON (error near line 2")},
        {"config not an object", "\"llama\"", WANT(C, "must be a JSON object, got a string")},
        {"config heads vs kv heads",
         "{\"hidden_size\": 16, \"intermediate_size\": 32, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 3, \"vocab_size\": 64}",
         WANT(C, "num_attention_heads (4) is not a multiple of num_key_value_heads (3)")},
        {"config unsupported rope",
         "{\"hidden_size\": 16, \"intermediate_size\": 32, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"vocab_size\": 64, \"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2}}",
         WANT(C, "rope scaling type \"dynamic\" is not supported")},
        {"config unsupported architecture",
         "{\"model_type\": \"gpt2\", \"hidden_size\": 16, \"intermediate_size\": 32, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 64}",
         WANT(C, "model_type \"gpt2\" is not supported")},
        {"config for another model (shapes differ)",
         "{\"hidden_size\": 32, \"intermediate_size\": 32, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"vocab_size\": 64}",
         WANT("model.safetensors: tensor 'model.embed_tokens.weight': shape [64, 16] does not match [64, 32]")},
        {"config more layers than weights",
         "{\"hidden_size\": 16, \"intermediate_size\": 32, \"num_hidden_layers\": 3, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"vocab_size\": 64}",
         WANT("missing tensor 'model.layers.2.self_attn.q_proj.weight'")},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mm_opts o = {.config_override = cases[i].cfg};
        char *dir = mm_write_dir(&o);
        expect_fail(cases[i].label, dir, cases[i].want);
        mm_rm_rf(dir);
        free(dir);
    }
}
END_TEST

/* ---- folder layout and shard index ---- */
START_TEST(broken_folders_exit_2)
{
    mm_opts o = {0};
    char *dir = mm_write_dir(&o);
    /* index naming a missing shard (the index wins over model.safetensors) */
    const char *idx = "{\"weight_map\": {\"model.embed_tokens.weight\": \"model-00001-of-00002.safetensors\"}}";
    write_text(dir, "model.safetensors.index.json", idx, strlen(idx));
    expect_fail("index naming a missing shard", dir,
                WANT("model.safetensors.index.json: shard 'model-00001-of-00002.safetensors'",
                     "holding tensor 'model.embed_tokens.weight'", "is missing"));
    /* index naming a shard that lacks the tensor */
    const char *idx2 = "{\"weight_map\": {\"model.embed_tokens.weight\": \"model.safetensors\", \"no.such.tensor\": \"model.safetensors\"}}";
    write_text(dir, "model.safetensors.index.json", idx2, strlen(idx2));
    expect_fail("index tensor absent from shard", dir,
                WANT("model.safetensors: tensor 'no.such.tensor' is not in its shard", "model.safetensors.index.json"));
    write_text(dir, "model.safetensors.index.json", "{\"weight_map\": 3}", 17);
    expect_fail("index without weight_map object", dir,
                WANT("model.safetensors.index.json: must be a JSON object with a \"weight_map\" object"));
    rm_file(dir, "model.safetensors.index.json");
    /* no weights at all */
    rm_file(dir, "model.safetensors");
    expect_fail("folder without weights", dir, WANT(dir, "no model.safetensors or model.safetensors.index.json"));
    /* no config.json */
    rm_file(dir, "config.json");
    expect_fail("directory without config.json", dir, WANT(dir, "no config.json in this folder"));
    /* empty config.json */
    write_text(dir, "config.json", "", 0);
    expect_fail("empty config.json", dir, WANT("config.json: empty file"));
    mm_rm_rf(dir);
    /* a folder that does not exist; a file given as the folder */
    expect_fail("nonexistent folder", dir, WANT(dir, "no such model folder"));
    free(dir);
}
END_TEST

/* The catalog fails only when it should: the unbroken mini model passes, JSON written. */
START_TEST(unbroken_mini_model_passes_and_writes_report)
{
    mm_opts o = {0};
    char *dir = mm_write_dir(&o);
    char args[8400];
    char *json = qv_path_join(dir, "report.json");
    snprintf(args, sizeof args, "info --model '%s' --json '%s'", dir, json);
    char *out, *err;
    int rc = qv_test_run_qvet(args, &out, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    long long n = mm_params(&o);
    ck_assert(n >= 1000 && n < 1000000); /* one separator */
    char want[64];
    snprintf(want, sizeof want, "parameters: %lld,%03lld\n", n / 1000, n % 1000);
    ck_assert_msg(strstr(out, want), "'%s' lacks '%s'", out, want);
    ck_assert(qv_path_exists(json));
    free(json);
    free(out);
    free(err);
    mm_rm_rf(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("malformed");
    TCase *tc = tcase_create("catalog");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, unbroken_mini_model_passes_and_writes_report);
    tcase_add_test(tc, broken_safetensors_files_exit_2_naming_file_and_problem);
    tcase_add_test(tc, broken_weights_exit_2_naming_tensor);
    tcase_add_test(tc, broken_configs_exit_2_naming_field);
    tcase_add_test(tc, broken_folders_exit_2);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
