/* The synthetic model's activations carry the outlier structure docs/synthetic.md promises, as
 * measured through ref-fp32's capture on real text (the first 512 tokens of
 * ../shared/data/eval.txt tokenized by the synthetic tokenizer, no BOS; without the shared assets,
 * qvet's own tokenizer training text). Per layer:
 *   residual ratio = max over hidden channels of mean_t |x_t,c|  /  median over channels of it
 *                    (residual stream after the block, QV_CAP_RESIDUAL);
 *   key ratio      = the same over the head_dim channels of each KV head's post-RoPE keys
 *                    (QV_CAP_K), reported per head; the smallest over heads is asserted.
 * Thresholds: residual > 10 (massive channels), key > 3 (outlier key channels). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qv_test_util.h"
#include "qvet/engine.h"
#include "qvet/fileio.h"
#include "qvet/synth.h"
#include "qvet/tokenizer.h"

extern const char qv_synth_training_text[]; /* ref/synth/synth_text.c */

enum { MAX_TOKENS = 512 };

typedef struct {
    int L, H, NKV, D, n;
    double *res_abs; /* [L, H]: sum over positions of |residual| */
    double *k_abs;   /* [L, NKV, D]: sum over positions of |k| */
} acts;

static void on_capture(void *user, const qv_capture_point *p)
{
    acts *a = user;
    if (p->kind == QV_CAP_RESIDUAL) {
        double *dst = a->res_abs + (size_t)p->layer * a->H;
        for (int t = 0; t < p->n_pos; t++)
            for (int c = 0; c < a->H; c++) dst[c] += fabs(p->data[(size_t)t * a->H + c]);
    } else if (p->kind == QV_CAP_K) {
        int w = a->NKV * a->D;
        double *dst = a->k_abs + (size_t)p->layer * w;
        for (int t = 0; t < p->n_pos; t++)
            for (int c = 0; c < w; c++) dst[c] += fabs(p->data[(size_t)t * w + c]);
    }
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* max / median of v[0..n) (v is not modified) */
static double max_over_median(const double *v, int n)
{
    double *s = malloc(sizeof(double) * (size_t)n);
    memcpy(s, v, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof(double), cmp_double);
    double med = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    double r = s[n - 1] / med;
    free(s);
    return r;
}

START_TEST(synthetic_activations_have_residual_and_key_outliers)
{
    qv_model *m = NULL;
    ck_assert_msg(qv_synth_open(QV_SYNTH_TINY, 0, &m) == QV_OK, "%s", qv_last_error());
    const qv_config *c = &m->cfg;

    /* text: a prefix of eval.txt (cut at a newline, so at a UTF-8 boundary) or qvet's own */
    const char *shared = qv_test_shared_dir();
    char path[4096];
    snprintf(path, sizeof path, "%s/data/eval.txt", shared ? shared : "");
    char *text = NULL;
    size_t len = 0;
    const char *source = path;
    if (shared && qv_path_exists(path)) {
        ck_assert_msg(qv_read_file(path, (size_t)1 << 26, &text, &len) == QV_OK, "%s", qv_last_error());
        if (len > 8000) {
            len = 8000;
            while (len > 0 && text[len - 1] != '\n') len--;
        }
    } else {
        printf("SKIP eval.txt (shared assets absent): using qvet's own tokenizer training text\n");
        source = "qv_synth_training_text";
        text = strdup(qv_synth_training_text);
        len = strlen(text);
    }
    int32_t *ids = NULL;
    size_t n_ids = 0;
    ck_assert_msg(qv_tok_encode(m->tok, text, len, 0, &ids, &n_ids) == QV_OK, "%s", qv_last_error());
    int n = n_ids > MAX_TOKENS ? MAX_TOKENS : (int)n_ids;
    ck_assert_msg(n >= 256, "%s: only %d tokens", source, n);
    printf("synthetic tiny seed 0, %d tokens of %s\n", n, source);

    acts a = {c->num_layers, c->hidden_size, c->num_kv_heads, c->head_dim, n, NULL, NULL};
    a.res_abs = calloc((size_t)a.L * a.H, sizeof(double));
    a.k_abs = calloc((size_t)a.L * a.NKV * a.D, sizeof(double));
    qv_engine_opts o;
    qv_engine_opts_init(&o);
    qv_engine *e = NULL;
    ck_assert_msg(qv_engine_open("ref-fp32", m, &o, &e) == QV_OK, "%s", qv_last_error());
    qv_engine_set_capture(e, on_capture, &a, (1u << QV_CAP_RESIDUAL) | (1u << QV_CAP_K));
    qv_seq_id sid;
    ck_assert(qv_engine_seq_create(e, 1, &sid) == QV_OK);
    const int32_t *tp = ids;
    ck_assert_msg(qv_engine_prefill(e, 1, &sid, &tp, &n, 1, NULL) == QV_OK, "%s", qv_last_error());

    double min_res = INFINITY, min_key = INFINITY;
    for (int l = 0; l < a.L; l++) {
        double rr = max_over_median(a.res_abs + (size_t)l * a.H, a.H);
        printf("layer %d: residual max/median channel mean|x| %.1f; post-RoPE key per KV head:", l, rr);
        min_res = fmin(min_res, rr);
        for (int h = 0; h < a.NKV; h++) {
            double kr = max_over_median(a.k_abs + ((size_t)l * a.NKV + h) * a.D, a.D);
            printf(" %.1f", kr);
            min_key = fmin(min_key, kr);
        }
        printf("\n");
    }
    printf("smallest over layers: residual %.1f (want > 10), key %.1f (want > 3)\n", min_res, min_key);
    ck_assert_msg(min_res > 10, "residual channel ratio %.2f <= 10", min_res);
    ck_assert_msg(min_key > 3, "key channel ratio %.2f <= 3", min_key);

    qv_engine_close(e);
    qv_model_close(m);
    free(a.res_abs);
    free(a.k_abs);
    free(ids);
    free(text);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("synth_acts");
    TCase *tc = tcase_create("outliers");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, synthetic_activations_have_residual_and_key_outliers);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
