/* The shared tiny model (../shared/models/qvet-tiny-llama) loads with every check passing and
 * the exact parameter count its config implies; `qvet info` prints that count. Skips (exit 77)
 * when the shared assets are absent. */
#include <stdlib.h>
#include <string.h>

#include "qv_test_util.h"
#include "qvet/fileio.h"
#include "qvet/model.h"

START_TEST(shared_tiny_llama_has_exact_param_count)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/models/qvet-tiny-llama", qv_test_shared_dir());
    qv_model *m;
    ck_assert_msg(qv_model_open(dir, &m) == QV_OK, "%s", qv_last_error());
    /* from its config: 2 * 8192*384 (embed, lm_head) + 8 * (q 384*384 + k,v 128*384 + o 384*384
     * + 3 * 1024*384 + 2 * 384) + 384 */
    long long want = 2LL * 8192 * 384 + 8LL * (384 * 384 * 2 + 128 * 384 * 2 + 3LL * 1024 * 384 + 2 * 384) + 384;
    ck_assert_int_eq(want, 18880896);
    ck_assert_int_eq(m->n_params, want);
    ck_assert_int_eq(m->n_used_tensors, 2 + 8 * 9 + 1);
    ck_assert_int_eq(m->cfg.num_kv_heads, 2);
    ck_assert_int_eq(m->cfg.head_dim, 64);
    ck_assert_int_eq(m->layers[7].wk.shape[0], 128);
    ck_assert_int_eq(m->layers[7].w_down.shape[1], 1024);
    ck_assert_int_eq(m->embed.dtype, QV_F16);
    ck_assert_ptr_null(m->layers[0].bq.data);
    ck_assert_ptr_ne(m->lm_head.data, m->embed.data);
    ck_assert_ptr_nonnull(m->tokenizer_path);
    qv_model_close(m);
}
END_TEST

START_TEST(qvet_info_prints_param_count_with_separators)
{
    char args[4200];
    snprintf(args, sizeof args, "info --model '%s/models/qvet-tiny-llama' --tensors", qv_test_shared_dir());
    char *out, *err;
    int rc = qv_test_run_qvet(args, &out, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    ck_assert_ptr_nonnull(strstr(out, "parameters: 18,880,896\n"));
    ck_assert_ptr_nonnull(strstr(out, "tensors: 75 (75 used by the model), 37,761,792 bytes"));
    ck_assert_ptr_nonnull(strstr(out, "model.layers.3.mlp.up_proj.weight"));
    free(out);
    free(err);
}
END_TEST

int main(void)
{
    const char *shared = qv_test_shared_dir();
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/models/qvet-tiny-llama", shared ? shared : "");
    if (!shared || !qv_is_dir(dir)) {
        printf("SKIP test_model_shared: shared assets absent\n");
        return QV_TEST_SKIP;
    }
    Suite *s = suite_create("model_shared");
    TCase *tc = tcase_create("tiny_llama");
    tcase_add_test(tc, shared_tiny_llama_has_exact_param_count);
    tcase_add_test(tc, qvet_info_prints_param_count_with_separators);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
