/* `qvet compare --ref-logits --cand-logits` against an independent numpy computation
 * (tools/compare_logits_reference.py -> tests/fixtures/byo/expected.json) on a committed F16
 * dump (tests/fixtures/byo/{ref,cand}.safetensors: the synthetic model's ref-fp32 and ref-qoq
 * logits, 3 chunks of 16 tokens, packed as [k, ctx, V]; provenance in expected.json).
 * Tolerances: FP64 statistics (KLD, delta-p) agree to summation order (relative 1e-9); NLL goes
 * through an FP32 log-softmax on both sides, whose libm exp/log may differ by an ulp (1e-6);
 * counts, indices and tokens exactly. */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qv_test_util.h"
#include "qvet/fileio.h"

static cJSON *load(const char *path)
{
    char *txt = NULL;
    size_t n = 0;
    ck_assert_msg(qv_read_file(path, 1 << 24, &txt, &n) == QV_OK, "cannot read %s", path);
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    ck_assert_msg(j != NULL, "%s is not JSON", path);
    return j;
}

static double at(const cJSON *o, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *c = o;
    for (char *k = strtok(buf, "."); k; k = strtok(NULL, ".")) c = cJSON_GetObjectItemCaseSensitive(c, k);
    ck_assert_msg(cJSON_IsNumber(c), "%s missing", path);
    return c->valuedouble;
}

static double ex(const cJSON *e, const char *k, int i)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, k);
    if (cJSON_IsArray(c)) c = cJSON_GetArrayItem(c, i);
    ck_assert_msg(cJSON_IsNumber(c), "expected.%s missing", k);
    return c->valuedouble;
}

static void near(double got, double want, double rel, const char *what)
{
    ck_assert_msg(fabs(got - want) <= rel * fmax(fabs(want), 1e-300), "%s: got %.17g, numpy %.17g (rel tol %g)", what,
                  got, want, rel);
}

START_TEST(dump_figures_match_the_numpy_reference)
{
    char *dir = qv_test_tmpdir(), args[4096], path[1024];
    const char *src = qv_test_source_dir();
    snprintf(path, sizeof path, "%s/result.json", dir);
    snprintf(args, sizeof args,
             "compare --ref-logits %s/tests/fixtures/byo/ref.safetensors --cand-logits %s/tests/fixtures/byo/cand.safetensors "
             "--json %s", src, src, path);
    char *out = NULL, *err = NULL;
    int rc = qv_test_run_qvet(args, &out, &err);
    ck_assert_msg(rc == 0, "qvet %s: exit %d: %s", args, rc, err);
    cJSON *r = load(path);
    char fx[1024];
    snprintf(fx, sizeof fx, "%s/tests/fixtures/byo/expected.json", src);
    cJSON *f = load(fx);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(f, "expected");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(r, "summary");
    ck_assert_int_eq((int)at(s, "chunks"), (int)ex(e, "chunks", 0));
    ck_assert_int_eq((int)at(s, "positions"), (int)ex(e, "positions", 0));
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "meta"), "ids_fnv1a64")->valuestring,
                     cJSON_GetObjectItemCaseSensitive(e, "ids_fnv1a64")->valuestring);
    const char *ci[3] = {"value", "lo", "hi"};
    char k[64];
    for (int i = 0; i < 3; i++) {
        snprintf(k, sizeof k, "ppl_ref.%s", ci[i]);
        near(at(s, k), ex(e, "ppl_ref", i), 1e-6, k);
        snprintf(k, sizeof k, "ppl_cand.%s", ci[i]);
        near(at(s, k), ex(e, "ppl_cand", i), 1e-6, k);
        snprintf(k, sizeof k, "ln_ppl_ratio.%s", ci[i]);
        ck_assert_msg(fabs(at(s, k) - ex(e, "ln_ppl_ratio", i)) <= 1e-6, "%s: %.17g vs %.17g", k, at(s, k), ex(e, "ln_ppl_ratio", i));
        snprintf(k, sizeof k, "kld.mean.%s", ci[i]);
        near(at(s, k), ex(e, "kld_mean", i), 1e-9, k);
        snprintf(k, sizeof k, "top1_agreement.%s", ci[i]);
        near(at(s, k), ex(e, "top1", i), 1e-12, k);
    }
    near(at(s, "kld.median"), ex(e, "kld_median", 0), 1e-9, "kld median");
    near(at(s, "kld.p90"), ex(e, "kld_p90", 0), 1e-9, "kld p90");
    near(at(s, "kld.p99"), ex(e, "kld_p99", 0), 1e-9, "kld p99");
    near(at(s, "kld.p99_9"), ex(e, "kld_p99_9", 0), 1e-9, "kld p99.9");
    near(at(s, "kld.max"), ex(e, "kld_max", 0), 1e-9, "kld max");
    ck_assert_int_eq((int)at(s, "kld.max_chunk"), (int)ex(e, "kld_max_chunk", 0));
    ck_assert_int_eq((int)at(s, "kld.max_offset"), (int)ex(e, "kld_max_offset", 0));
    ck_assert_int_eq((int)at(s, "kld.max_token"), (int)ex(e, "kld_max_token", 0));
    near(at(s, "delta_p.mean"), ex(e, "dp_mean", 0), 1e-9, "dp mean");
    near(at(s, "delta_p.rms"), ex(e, "dp_rms", 0), 1e-9, "dp rms");
    near(at(s, "delta_p.p1"), ex(e, "dp_p1", 0), 1e-9, "dp p1");
    near(at(s, "delta_p.p99"), ex(e, "dp_p99", 0), 1e-9, "dp p99");
    cJSON_Delete(r);
    cJSON_Delete(f);
    free(out);
    free(err);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("byo_logits");
    TCase *tc = tcase_create("numpy");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, dump_figures_match_the_numpy_reference);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
