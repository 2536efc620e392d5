/* Tokenizer: every fixture built by tools/gen_tokenizer_fixtures.py (small tokenizer.json files
 * trained with the `tokenizers` library, with its expected ids) matches exactly; decoding matches
 * the library; malformed or unsupported tokenizer.json files are refused with a message naming the
 * file. The shared model's fixture is in test_tokenizer_shared.c (it needs the shared assets). */
#include "tok_fixture.h"

static char *g_fixtures[64];
static int g_n;

/* the fixtures whose tokenizer.json is itself a fixture (no shared assets needed) */
static void read_index(int want_shared)
{
    char *p = tf_fixture_path("index.json");
    cJSON *idx = tf_load_json(p);
    free(p);
    const cJSON *l = cJSON_GetObjectItem(idx, "fixtures");
    for (const cJSON *c = l ? l->child : NULL; c && g_n < 64; c = c->next) {
        char *fp = tf_fixture_path(c->valuestring);
        cJSON *fx = tf_load_json(fp);
        free(fp);
        int shared = cJSON_GetObjectItem(cJSON_GetObjectItem(fx, "tokenizer"), "shared") != NULL;
        if (shared == want_shared) g_fixtures[g_n++] = strdup(c->valuestring);
        cJSON_Delete(fx);
    }
    cJSON_Delete(idx);
}

START_TEST(built_fixture_ids_match_hf_exactly)
{
    tf_counts c = tf_run_fixture(g_fixtures[_i], NULL);
    ck_assert_int_gt(c.cases, 0);
    ck_assert_msg(c.matched == c.cases, "%s: %d of %d cases differ from HF", g_fixtures[_i], c.cases - c.matched, c.cases);
    ck_assert_msg(c.decoded_ok == c.n_decode, "%s: %d of %d decodes differ from HF", g_fixtures[_i], c.n_decode - c.decoded_ok, c.n_decode);
}
END_TEST

/* ---- malformed and unsupported files ---- */

static void expect_fail(const char *json, qv_status want, const char *needle)
{
    qv_tok *tok = (qv_tok *)1;
    qv_clear_error();
    qv_status st = qv_tok_load_json(json, strlen(json), "bad-tok.json", &tok);
    ck_assert_msg(st == want, "expected %s, got %s (%s) for %s", qv_status_name(want), qv_status_name(st),
                  qv_last_error(), json);
    ck_assert_ptr_null(tok);
    ck_assert_msg(strstr(qv_last_error(), "bad-tok.json") != NULL, "message does not name the file: %s", qv_last_error());
    ck_assert_msg(strstr(qv_last_error(), needle) != NULL, "message '%s' lacks '%s'", qv_last_error(), needle);
}

#define BPE_AB "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2}"

START_TEST(malformed_json_is_input_error)
{
    expect_fail("{\"model\": {", QV_ERR_INPUT, "not valid JSON");
    expect_fail("", QV_ERR_INPUT, "not valid JSON");
    expect_fail("[1, 2]", QV_ERR_INPUT, "not a JSON object");
}
END_TEST

START_TEST(wrong_types_are_input_errors)
{
    expect_fail("{}", QV_ERR_INPUT, "no \"model\"");
    expect_fail("{\"model\":{\"type\":\"BPE\",\"vocab\":[1]}}", QV_ERR_INPUT, "model.vocab");
    expect_fail("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":\"x\"},\"merges\":[]}}", QV_ERR_INPUT, "model.vocab['a']");
    expect_fail("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}}", QV_ERR_INPUT, "non-negative");
    expect_fail("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0.5},\"merges\":[]}}", QV_ERR_INPUT, "integer");
    expect_fail("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}", QV_ERR_INPUT, "id 0 is given to both");
    expect_fail("{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}", QV_ERR_INPUT, "empty");
    expect_fail("{" BPE_AB ",\"merges\":{}}}", QV_ERR_INPUT, "model.merges is not an array");
    expect_fail("{" BPE_AB ",\"merges\":[]},\"added_tokens\":{}}", QV_ERR_INPUT, "added_tokens");
    expect_fail("{" BPE_AB ",\"merges\":[]},\"added_tokens\":[{\"id\":\"x\",\"content\":\"<s>\"}]}", QV_ERR_INPUT,
                "added_tokens[0]");
    expect_fail("{" BPE_AB ",\"merges\":[],\"byte_fallback\":1}}", QV_ERR_INPUT, "booleans");
    expect_fail("{" BPE_AB ",\"merges\":[],\"unk_token\":\"<unk>\"}}", QV_ERR_INPUT, "unk_token '<unk>'");
    expect_fail("{" BPE_AB ",\"merges\":[]},\"pre_tokenizer\":{\"kind\":\"Split\"}}", QV_ERR_INPUT, "\"type\"");
    expect_fail("{" BPE_AB ",\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},"
                "\"behavior\":\"Sideways\"}}", QV_ERR_INPUT, "behavior");
}
END_TEST

START_TEST(bad_merges_are_input_errors)
{
    expect_fail("{" BPE_AB ",\"merges\":[\"a c\"]}}", QV_ERR_INPUT, "not in the vocab: 'a' 'c'");
    expect_fail("{" BPE_AB ",\"merges\":[[\"b\",\"a\"]]}}", QV_ERR_INPUT, "merged token 'ba'");
    expect_fail("{" BPE_AB ",\"merges\":[\"ab\"]}}", QV_ERR_INPUT, "merges[0]");
    expect_fail("{" BPE_AB ",\"merges\":[\"a b c\"]}}", QV_ERR_INPUT, "merges[0]");
    expect_fail("{" BPE_AB ",\"merges\":[[\"a\"]]}}", QV_ERR_INPUT, "merges[0]");
    expect_fail("{" BPE_AB ",\"merges\":[[\"a\", 3]]}}", QV_ERR_INPUT, "merges[0]");
}
END_TEST

START_TEST(unsupported_components_are_refused_by_name)
{
    expect_fail("{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"a\":0}}}", QV_ERR_UNSUPPORTED, "WordPiece");
    expect_fail("{\"model\":{\"type\":\"Unigram\",\"vocab\":[[\"a\",0.0]]}}", QV_ERR_UNSUPPORTED, "Unigram");
    expect_fail("{" BPE_AB ",\"merges\":[],\"dropout\":0.1}}", QV_ERR_UNSUPPORTED, "dropout");
    expect_fail("{" BPE_AB ",\"merges\":[],\"continuing_subword_prefix\":\"##\"}}", QV_ERR_UNSUPPORTED,
                "continuing_subword_prefix");
    expect_fail("{" BPE_AB ",\"merges\":[]},\"normalizer\":{\"type\":\"Lowercase\"}}", QV_ERR_UNSUPPORTED, "Lowercase");
    expect_fail("{" BPE_AB ",\"merges\":[]},\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"Regex\":\" +\"},"
                "\"content\":\" \"}}", QV_ERR_UNSUPPORTED, "Regex pattern");
    expect_fail("{" BPE_AB ",\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Whitespace\"}}", QV_ERR_UNSUPPORTED, "Whitespace");
    expect_fail("{" BPE_AB ",\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(a\"},"
                "\"behavior\":\"Isolated\"}}", QV_ERR_UNSUPPORTED, "does not compile");
    expect_fail("{" BPE_AB ",\"merges\":[]},\"decoder\":{\"type\":\"CTC\"}}", QV_ERR_UNSUPPORTED, "CTC");
    expect_fail("{" BPE_AB ",\"merges\":[]},\"post_processor\":{\"type\":\"BertProcessing\"}}", QV_ERR_UNSUPPORTED,
                "BertProcessing");
}
END_TEST

START_TEST(truncated_real_file_is_input_error)
{
    char *p = tf_fixture_path("gpt2_bytelevel.tokenizer.json");
    char *s = NULL;
    size_t n = 0;
    ck_assert_int_eq(qv_read_file(p, 1 << 24, &s, &n), QV_OK);
    /* every cut inside the document leaves broken JSON: sample some */
    for (size_t cut = 0; cut < n - 1; cut += n / 37 + 1) {
        qv_tok *tok = NULL;
        qv_status st = qv_tok_load_json(s, cut, "bad-tok.json", &tok);
        ck_assert_msg(st == QV_ERR_INPUT && !tok && strstr(qv_last_error(), "bad-tok.json"), "cut at %zu: %s", cut,
                      qv_last_error());
    }
    free(s);
    free(p);
}
END_TEST

START_TEST(load_file_errors_name_the_path)
{
    qv_tok *tok = NULL;
    ck_assert_int_eq(qv_tok_load_file("/nonexistent/dir/tokenizer.json", &tok), QV_ERR_IO);
    ck_assert_ptr_nonnull(strstr(qv_last_error(), "/nonexistent/dir/tokenizer.json"));
    char *dir = qv_test_tmpdir();
    char *p = qv_path_join(dir, "tokenizer.json");
    ck_assert_int_eq(qv_write_file_atomic(p, "{\"model\": 7}", 12), QV_OK);
    ck_assert_int_eq(qv_tok_load_file(p, &tok), QV_ERR_INPUT);
    ck_assert_msg(strstr(qv_last_error(), p) != NULL, "%s", qv_last_error());
    ck_assert_ptr_null(tok);
    unlink(p);
    rmdir(dir);
    free(p);
    free(dir);
}
END_TEST

/* ---- API properties on a built fixture ---- */

static qv_tok *load_fixture_tok(const char *name)
{
    char *p = tf_fixture_path(name);
    qv_tok *tok = NULL;
    ck_assert_msg(qv_tok_load_file(p, &tok) == QV_OK, "%s", qv_last_error());
    free(p);
    return tok;
}

START_TEST(invalid_utf8_text_is_refused_not_guessed)
{
    qv_tok *tok = load_fixture_tok("gpt2_bytelevel.tokenizer.json");
    static const char *bad[] = {"\xff", "ab\xc3", "\xed\xa0\x80", "\xc0\xaf", "ok \xf4\x90\x80\x80"};
    for (int i = 0; i < 5; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        ck_assert_int_eq(qv_tok_encode(tok, bad[i], strlen(bad[i]), 0, &ids, &n), QV_ERR_INPUT);
        ck_assert_ptr_nonnull(strstr(qv_last_error(), "not valid UTF-8"));
        ck_assert_ptr_null(ids);
    }
    qv_tok_free(tok);
}
END_TEST

START_TEST(decode_refuses_ids_outside_the_vocab)
{
    qv_tok *tok = load_fixture_tok("sp_llama2.tokenizer.json");
    int32_t v = qv_tok_vocab_size(tok);
    int32_t bad[][2] = {{5, -1}, {5, v}, {5, 2147483647}};
    for (int i = 0; i < 3; i++) {
        char *s = NULL;
        ck_assert_int_eq(qv_tok_decode(tok, bad[i], 2, &s, NULL), QV_ERR_INPUT);
        ck_assert_ptr_null(s);
        ck_assert_ptr_nonnull(strstr(qv_last_error(), "position 1"));
    }
    qv_tok_free(tok);
}
END_TEST

START_TEST(bos_eos_and_token_strings_follow_the_file)
{
    qv_tok *tok = load_fixture_tok("sp_llama2.tokenizer.json");
    ck_assert_int_eq(qv_tok_bos_id(tok), 1);
    ck_assert_int_eq(qv_tok_eos_id(tok), 2);
    ck_assert_str_eq(qv_tok_token_str(tok, 1), "<s>");
    ck_assert_str_eq(qv_tok_token_str(tok, 3), "<0x00>");
    ck_assert_ptr_null(qv_tok_token_str(tok, -1));
    ck_assert_ptr_null(qv_tok_token_str(tok, qv_tok_vocab_size(tok)));
    int32_t *ids = NULL;
    size_t n = 0;
    ck_assert_int_eq(qv_tok_encode(tok, "", 0, 1, &ids, &n), QV_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(ids[0], 1);
    free(ids);
    qv_tok_free(tok);
    tok = load_fixture_tok("gpt2_bytelevel.tokenizer.json");
    ck_assert_int_eq(qv_tok_bos_id(tok), -1); /* GPT-2's post-processor adds nothing */
    ck_assert_int_eq(qv_tok_eos_id(tok), 0);  /* <|endoftext|> */
    qv_tok_free(tok);
}
END_TEST

/* The per-word cache must not change results: the same text twice, and its words in another
 * order, give the same ids as a fresh tokenizer. */
START_TEST(word_cache_does_not_change_ids)
{
    const char *text = "the cache the cache the qvet cache 12345 12345 the";
    qv_tok *a = load_fixture_tok("llama3_ignore_merges.tokenizer.json");
    int32_t *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    ck_assert_int_eq(qv_tok_encode(a, text, strlen(text), 0, &x, &nx), QV_OK);
    ck_assert_int_eq(qv_tok_encode(a, text, strlen(text), 0, &y, &ny), QV_OK);
    ck_assert_uint_eq(nx, ny);
    ck_assert_mem_eq(x, y, nx * sizeof *x);
    qv_tok_free(a);
    free(x);
    free(y);
}
END_TEST

int main(void)
{
    read_index(0);
    if (g_n == 0) {
        fprintf(stderr, "test_tokenizer: no fixtures in tests/fixtures/tokenizer/index.json\n");
        return 1;
    }
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, built_fixture_ids_match_hf_exactly, 0, g_n);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_test(tc, malformed_json_is_input_error);
    tcase_add_test(tc, wrong_types_are_input_errors);
    tcase_add_test(tc, bad_merges_are_input_errors);
    tcase_add_test(tc, unsupported_components_are_refused_by_name);
    tcase_add_test(tc, truncated_real_file_is_input_error);
    tcase_add_test(tc, load_file_errors_name_the_path);
    tcase_add_test(tc, invalid_utf8_text_is_refused_not_guessed);
    tcase_add_test(tc, decode_refuses_ids_outside_the_vocab);
    tcase_add_test(tc, bos_eos_and_token_strings_follow_the_file);
    tcase_add_test(tc, word_cache_does_not_change_ids);
    suite_add_tcase(s, tc);
    int rc = qv_test_main(s);
    for (int i = 0; i < g_n; i++) free(g_fixtures[i]);
    return rc;
}
