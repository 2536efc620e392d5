/* NaN/Inf produced mid-forward is a check failure (CLI.md exit 1), not an input error: qvet
 * logits and qvet ppl on a model whose weights are all finite but whose layer-0 o_proj (F32,
 * every entry 3e38) overflows FP32 as soon as the attention output sums past ~1.1. The message
 * names the layer and tensor; no output file is left behind. */
#include <stdlib.h>
#include <string.h>

#include "qv_test_util.h"
#include "qvet/fileio.h"
#include "qvet/safetensors.h"
#include "qvet/synth.h"

/* The synthetic tiny model with layer 0's o_proj replaced; returns the folder (malloc'd). */
static char *write_overflowing_model(void)
{
    char *dir = qv_test_tmpdir();
    ck_assert_ptr_nonnull(dir);
    qv_synth_files sf;
    ck_assert_msg(qv_synth_build(QV_SYNTH_TINY, 0, &sf) == QV_OK, "%s", qv_last_error());
    qv_st_file *f = NULL;
    ck_assert(qv_st_open_buffer(sf.safetensors, sf.safetensors_size, "<synth>", &f) == QV_OK);
    qv_st_writer *w = qv_st_writer_new();
    const char *target = "model.layers.0.self_attn.o_proj.weight";
    for (int i = 0; i < f->n_entries; i++) {
        const qv_st_entry *e = &f->entries[i];
        if (strcmp(e->name, target) == 0) {
            int64_t n = qv_tensor_numel(&e->t);
            float *big = malloc(sizeof(float) * (size_t)n);
            for (int64_t k = 0; k < n; k++) big[k] = 3e38f; /* finite: the loader accepts it */
            ck_assert(qv_st_writer_add(w, e->name, QV_F32, e->t.ndim, e->t.shape, big) == QV_OK);
            free(big);
        } else {
            ck_assert(qv_st_writer_add(w, e->name, e->t.dtype, e->t.ndim, e->t.shape, e->t.data) == QV_OK);
        }
    }
    char *p = qv_path_join(dir, "model.safetensors");
    ck_assert_msg(qv_st_writer_write(w, p) == QV_OK, "%s", qv_last_error());
    free(p);
    p = qv_path_join(dir, "config.json");
    ck_assert(qv_write_file_atomic(p, sf.config_json, strlen(sf.config_json)) == QV_OK);
    free(p);
    p = qv_path_join(dir, "tokenizer.json");
    ck_assert(qv_write_file_atomic(p, sf.tokenizer_json, strlen(sf.tokenizer_json)) == QV_OK);
    free(p);
    qv_st_writer_free(w);
    qv_st_close(f);
    qv_synth_files_free(&sf);
    return dir;
}

START_TEST(overflow_mid_forward_exits_1_naming_layer_and_tensor)
{
    char *dir = write_overflowing_model();
    char args[8192], *out = NULL, *err = NULL;
    snprintf(args, sizeof args, "logits --model '%s' --engine ref-fp32 --ids 5,6,7,8 --out '%s/l.json'", dir, dir);
    int rc = qv_test_run_qvet(args, &out, &err);
    ck_assert_msg(rc == 1, "logits: exit %d, want 1 (stderr: %s)", rc, err);
    ck_assert_msg(strstr(err, "produced in layer 0") != NULL, "logits: message lacks the layer: %s", err);
    printf("logits: %s", err);
    char path[4200];
    snprintf(path, sizeof path, "%s/l.json", dir);
    ck_assert_msg(!qv_path_exists(path), "an output file was written after the failure");
    free(out);
    free(err);

    snprintf(path, sizeof path, "%s/text.txt", dir);
    const char *text = "Every report is written to a temporary file first and then renamed, so that a reader "
                       "never sees half of a report.";
    ck_assert(qv_write_file_atomic(path, text, strlen(text)) == QV_OK);
    snprintf(args, sizeof args, "ppl --model '%s' --engine ref-fp32 --text '%s' --ctx 8 --json '%s/p.json'", dir,
             path, dir);
    rc = qv_test_run_qvet(args, &out, &err);
    ck_assert_msg(rc == 1, "ppl: exit %d, want 1 (stderr: %s)", rc, err);
    ck_assert_msg(strstr(err, "produced in layer 0") && strstr(err, "ppl: chunk 0"), "ppl: message: %s", err);
    printf("ppl: %s", err);
    snprintf(path, sizeof path, "%s/p.json", dir);
    ck_assert_msg(!qv_path_exists(path), "a JSON file was written after the failure");
    free(out);
    free(err);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cli_nonfinite");
    TCase *tc = tcase_create("overflow");
    tcase_add_test(tc, overflow_mid_forward_exits_1_naming_layer_and_tensor);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
