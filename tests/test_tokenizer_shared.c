/* Tokenizer on the shared model (shared/models/qvet-tiny-llama/tokenizer.json): tricky texts,
 * slices of shared/data/{eval,long}.txt and the whole eval.txt (id count + sha256 of the ids)
 * match the `tokenizers` library exactly. Skips visibly when the shared assets are absent. */
#include "tok_fixture.h"

static const char *g_shared;

START_TEST(shared_model_ids_match_hf_exactly)
{
    tf_counts c = tf_run_fixture("qvet_tiny_llama.json", g_shared);
    ck_assert_int_gt(c.cases, 0);
    ck_assert_msg(c.matched == c.cases, "%d of %d cases differ from HF", c.cases - c.matched, c.cases);
    ck_assert_msg(c.decoded_ok == c.n_decode, "%d of %d decodes differ from HF", c.n_decode - c.decoded_ok, c.n_decode);
}
END_TEST

int main(void)
{
    g_shared = qv_test_shared_dir();
    char *tp = g_shared ? qv_path_join(g_shared, "models/qvet-tiny-llama/tokenizer.json") : NULL;
    int have = tp && qv_path_exists(tp);
    free(tp);
    if (!have) {
        printf("SKIP test_tokenizer_shared: shared assets absent\n");
        return QV_TEST_SKIP;
    }
    Suite *s = suite_create("tokenizer_shared");
    TCase *tc = tcase_create("shared");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, shared_model_ids_match_hf_exactly);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
