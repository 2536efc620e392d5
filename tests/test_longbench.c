/* LongBench scoring against tests/fixtures/longbench/expected.json, written by
 * tools/longbench_reference.py from LongBench's own eval.py / metrics.py and the real rouge,
 * fuzzywuzzy (no python-Levenshtein) and numpy packages. Every score is compared EXACTLY (==):
 * qvet performs the same IEEE double operations in the same order as the Python code, so the
 * values must be bit-identical, not merely close. Hand-derived cases check the basics too. */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qv_test_util.h"
#include "qvet/fileio.h"
#include "qvet/longbench.h"

static cJSON *expected(void)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/longbench/expected.json", qv_test_source_dir());
    char *buf;
    size_t n;
    ck_assert_msg(qv_read_file(path, 64u << 20, &buf, &n) == QV_OK, "%s: %s", path, qv_last_error());
    cJSON *j = cJSON_ParseWithLength(buf, n);
    free(buf);
    ck_assert_msg(j != NULL, "%s: bad JSON", path);
    return j;
}

static char *pred_path(const char *task)
{
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/tests/fixtures/longbench/pred/%s.jsonl", qv_test_source_dir(), task);
    return p;
}

START_TEST(every_item_and_task_score_equals_longbench_eval_py)
{
    cJSON *e = expected();
    const cJSON *items = cJSON_GetObjectItem(e, "items"), *scores = cJSON_GetObjectItem(e, "scores");
    int ntasks = 0;
    for (const cJSON *t = items->child; t; t = t->next, ntasks++) {
        char *path = pred_path(t->string);
        qv_lb_task_score s;
        ck_assert_msg(qv_lb_score_file(path, t->string, 0, &s) == QV_OK, "%s", qv_last_error());
        ck_assert_uint_eq(s.n, (size_t)cJSON_GetArraySize(t));
        size_t i = 0;
        for (const cJSON *c = t->child; c; c = c->next, i++) {
            double want = cJSON_GetObjectItem(c, "score")->valuedouble;
            ck_assert_msg(s.item[i] == want, "%s case %s: qvet %.17g, LongBench %.17g", t->string,
                          cJSON_GetObjectItem(c, "case")->valuestring, s.item[i], want);
        }
        double want = cJSON_GetObjectItem(scores, t->string)->valuedouble;
        ck_assert_msg(s.score == want, "%s total: qvet %.17g, LongBench %.17g", t->string, s.score, want);
        qv_lb_task_score_free(&s);
        free(path);
    }
    ck_assert_int_ge(ntasks, 10);
    cJSON_Delete(e);
}
END_TEST

START_TEST(longbench_e_buckets_equal_scorer_e)
{
    cJSON *e = expected();
    const cJSON *se = cJSON_GetObjectItem(e, "scores_e");
    for (const cJSON *t = se->child; t; t = t->next) {
        char *path = pred_path(t->string);
        qv_lb_task_score s;
        ck_assert_msg(qv_lb_score_file(path, t->string, 1, &s) == QV_OK, "%s", qv_last_error());
        for (int b = 0; b < QV_LB_NBUCKETS; b++) {
            const cJSON *w = cJSON_GetObjectItem(t, qv_lb_bucket_names[b]);
            if (cJSON_IsNull(w)) ck_assert_msg(isnan(s.bucket[b]), "%s %s: want NaN (empty bucket)", t->string, qv_lb_bucket_names[b]);
            else
                ck_assert_msg(s.bucket[b] == w->valuedouble, "%s %s: qvet %.17g, LongBench %.17g", t->string,
                              qv_lb_bucket_names[b], s.bucket[b], w->valuedouble);
        }
        qv_lb_task_score_free(&s);
        free(path);
    }
    cJSON_Delete(e);
}
END_TEST

/* code points of a UTF-8 string (test helper; fixture strings are valid UTF-8) */
static uint32_t *cps(const char *s, size_t *n)
{
    size_t len = strlen(s), k = 0;
    uint32_t *v = malloc((len + 1) * sizeof *v);
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        uint32_t c = p[i];
        int extra = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
        c &= extra == 3 ? 0x07 : extra == 2 ? 0x0F : extra == 1 ? 0x1F : 0x7F;
        for (int t = 1; t <= extra; t++) c = (c << 6) | (p[i + t] & 0x3F);
        v[k++] = c;
        i += (size_t)extra + 1;
    }
    *n = k;
    return v;
}

START_TEST(sequence_matcher_ratio_and_fuzz_ratio_equal_python)
{
    cJSON *e = expected();
    int n = 0, long_cases = 0;
    for (const cJSON *c = cJSON_GetObjectItem(e, "seqmatch")->child; c; c = c->next, n++) {
        const char *a = cJSON_GetObjectItem(c, "a")->valuestring, *b = cJSON_GetObjectItem(c, "b")->valuestring;
        size_t na, nb;
        uint32_t *ca = cps(a, &na), *cb = cps(b, &nb);
        long_cases += nb >= 200;
        double r;
        ck_assert(qv_lb_seqmatch_ratio(ca, na, cb, nb, &r) == QV_OK);
        double want = cJSON_GetObjectItem(c, "ratio")->valuedouble;
        ck_assert_msg(r == want, "ratio('%.40s'[%zu], '%.40s'[%zu]) = %.17g, difflib %.17g", a, na, b, nb, r, want);
        int f;
        ck_assert(qv_lb_fuzz_ratio(a, b, &f) == QV_OK);
        ck_assert_int_eq(f, cJSON_GetObjectItem(c, "fuzz")->valueint);
        free(ca);
        free(cb);
    }
    ck_assert_int_ge(n, 50);
    ck_assert_int_ge(long_cases, 5); /* autojunk only acts when len(b) >= 200 */
    cJSON_Delete(e);
}
END_TEST

START_TEST(autojunk_popular_element_changes_the_ratio)
{
    /* b = 'a'*250 + 'b': 'a' occurs 250 > 250//100+1 times, so it is popular and cannot start a
     * match; only 'b' can, and the extension walks back over equal 'a's: a = 'a'*10 + 'b' gives
     * one block of 11 -> 2*11/(11+251). With a = 'a'*10 no match starts anywhere, yet difflib
     * extends the EMPTY match at (alo, blo) forward over equal elements: a block of 10 at (0, 0)
     * -> 2*10/(10+251) (checked against Python: 0.07662835249042145). */
    uint32_t b[251], a[11];
    for (int i = 0; i < 250; i++) b[i] = 'a';
    b[250] = 'b';
    for (int i = 0; i < 10; i++) a[i] = 'a';
    a[10] = 'b';
    double r;
    ck_assert(qv_lb_seqmatch_ratio(a, 11, b, 251, &r) == QV_OK);
    ck_assert(r == 2.0 * 11 / 262);
    ck_assert(qv_lb_seqmatch_ratio(a, 10, b, 251, &r) == QV_OK);
    ck_assert(r == 2.0 * 10 / 261);
    ck_assert(qv_lb_seqmatch_ratio(a, 10, b, 199, &r) == QV_OK); /* short b: no autojunk */
    ck_assert(r == 2.0 * 10 / 209);
}
END_TEST

START_TEST(numpy_mean_and_roundings_equal_python)
{
    cJSON *e = expected();
    for (const cJSON *c = cJSON_GetObjectItem(e, "np_mean")->child; c; c = c->next) {
        const cJSON *v = cJSON_GetObjectItem(c, "values");
        size_t n = (size_t)cJSON_GetArraySize(v), i = 0;
        double *x = malloc(n * sizeof *x);
        for (const cJSON *k = v->child; k; k = k->next) x[i++] = k->valuedouble;
        double m = qv_lb_np_mean(x, n), want = cJSON_GetObjectItem(c, "mean")->valuedouble;
        ck_assert_msg(m == want, "np.mean of %zu values: qvet %.17g numpy %.17g", n, m, want);
        free(x);
    }
    int differ = 0;
    for (const cJSON *c = cJSON_GetObjectItem(e, "round")->child; c; c = c->next) {
        double x = cJSON_GetObjectItem(c, "x")->valuedouble;
        double pr = cJSON_GetObjectItem(c, "py_round")->valuedouble;
        double p2 = cJSON_GetObjectItem(c, "py_round2")->valuedouble;
        double n2 = cJSON_GetObjectItem(c, "np_round2")->valuedouble;
        ck_assert_msg(qv_lb_py_round(x) == pr, "round(%.17g)", x);
        ck_assert_msg(qv_lb_py_round2(x) == p2, "round(%.17g, 2): qvet %.17g python %.17g", x, qv_lb_py_round2(x), p2);
        ck_assert_msg(qv_lb_np_round2(x) == n2, "np.round(%.17g, 2): qvet %.17g numpy %.17g", x, qv_lb_np_round2(x), n2);
        differ += p2 != n2;
    }
    ck_assert_int_ge(differ, 1); /* the fixture holds a case (99.975) where the two roundings differ */
    ck_assert(isnan(qv_lb_np_mean(NULL, 0)));
    cJSON_Delete(e);
}
END_TEST

START_TEST(hand_checked_metric_values)
{
    double s;
    /* pred {cat, sat} vs truth {cat, sat, on, mat} after dropping 'the': P=1, R=1/2, F1=2/3 */
    ck_assert(qv_lb_qa_f1("The cat sat.", "the cat sat on a mat", &s) == QV_OK);
    ck_assert(s == (2 * 1.0 * 0.5) / (1.0 + 0.5));
    ck_assert(qv_lb_qa_f1("", "x", &s) == QV_OK && s == 0.0);
    /* 'an' inside 'Anna' is not an article: tokens anna|answer vs anna */
    ck_assert(qv_lb_qa_f1("Anna an answer", "anna", &s) == QV_OK);
    ck_assert(s == (2 * 0.5 * 1.0) / (0.5 + 1.0));
    ck_assert(qv_lb_count("7 or 8", "7", &s) == QV_OK && s == 0.5);
    ck_assert(qv_lb_retrieval("Paragraph 3, not 30", "Paragraph 3", &s) == QV_OK && s == 0.5);
    const char *cls[] = {"Other", "Oth", "Other location"};
    /* matches [Other, Oth, Other location]; "Other" is inside the truth and removed, which makes
     * the list iterator skip "Oth" (LongBench's remove-while-iterating): 2 left -> 1/2, where a
     * loop without the quirk would give 1/1 */
    ck_assert(qv_lb_classification("Other location", "Other location", cls, 3, &s) == QV_OK && s == 0.5);
    /* code_sim: the '#' line is skipped, the next line is identical -> 100 -> 1.0 */
    ck_assert(qv_lb_code_sim("# x\nreturn 1", "return 1", &s) == QV_OK && s == 1.0);
    ck_assert(qv_lb_rouge_l("", "a b", &s) == QV_OK && s == 0.0);
    /* rouge: identical one-sentence texts: llcs = m = n = 2 -> 2*(1*1/(2+1e-8)) */
    ck_assert(qv_lb_rouge_l("a b", "a b", &s) == QV_OK && s == 2.0 * ((1.0 * 1.0) / (1.0 + 1.0 + 1e-8)));
}
END_TEST

START_TEST(bad_inputs_are_refused_with_the_reason)
{
    double s;
    ck_assert(qv_lb_retrieval("3", "no paragraph here", &s) == QV_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(qv_last_error(), "Paragraph"));
    ck_assert(qv_lb_qa_f1("\xff\xfe", "x", &s) == QV_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(qv_last_error(), "UTF-8"));
    ck_assert(qv_lb_qa_f1("\xc0\xaf", "x", &s) == QV_ERR_INPUT); /* overlong '/' */
    ck_assert(qv_lb_qa_f1("\xed\xa0\x80", "x", &s) == QV_ERR_INPUT); /* surrogate */
    const char *ans[] = {"x"};
    const qv_lb_task *t = qv_lb_task_find("lsht");
    ck_assert_ptr_nonnull(t);
    ck_assert(qv_lb_score_item(t, "x", ans, 1, NULL, 0, &s) == QV_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(qv_last_error(), "jieba"));
    ck_assert_ptr_null(qv_lb_task_find("not_a_task"));
}
END_TEST

static char *write_tmp(const char *dir, const char *name, const char *text)
{
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return p;
}

START_TEST(jsonl_errors_name_file_and_line)
{
    char *d = qv_test_tmpdir();
    cJSON **it;
    size_t n;
    char *p = write_tmp(d, "a.jsonl", "{\"pred\":\"x\"}\n{\"pred\": \n{\"pred\":\"y\"}\n");
    ck_assert(qv_lb_jsonl_load(p, &it, &n) == QV_ERR_INPUT);
    ck_assert_msg(strstr(qv_last_error(), "a.jsonl:2:") != NULL, "%s", qv_last_error());
    free(p);
    p = write_tmp(d, "b.jsonl", "{\"pred\":\"x\"}\n\n");
    ck_assert(qv_lb_jsonl_load(p, &it, &n) == QV_ERR_INPUT);
    ck_assert_msg(strstr(qv_last_error(), "b.jsonl:2:") && strstr(qv_last_error(), "blank"), "%s", qv_last_error());
    free(p);
    p = write_tmp(d, "c.jsonl", "[1]\n");
    ck_assert(qv_lb_jsonl_load(p, &it, &n) == QV_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(qv_last_error(), "c.jsonl:1:"));
    free(p);
    p = write_tmp(d, "d.jsonl", "{\"a\":1}\r\n{\"a\":2}\r{\"a\":3}");
    ck_assert(qv_lb_jsonl_load(p, &it, &n) == QV_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(cJSON_GetObjectItem(it[2], "a")->valueint, 3);
    qv_lb_jsonl_free(it, n);
    free(p);
    p = write_tmp(d, "e.jsonl", "{\"pred\":\"a\\u0000b\"}\n");
    ck_assert(qv_lb_jsonl_load(p, &it, &n) == QV_ERR_INPUT);
    free(p);
    /* a line without "answers" fails scoring with its line number */
    p = write_tmp(d, "narrativeqa.jsonl", "{\"pred\":\"x\",\"answers\":[\"x\"],\"all_classes\":null}\n{\"pred\":\"x\"}\n");
    qv_lb_task_score s;
    ck_assert(qv_lb_score_file(p, "narrativeqa", 0, &s) == QV_ERR_INPUT);
    ck_assert_msg(strstr(qv_last_error(), "narrativeqa.jsonl:2:") != NULL, "%s", qv_last_error());
    free(p);
    ck_assert(qv_lb_jsonl_load("/nonexistent/x.jsonl", &it, &n) == QV_ERR_IO);
    free(d);
}
END_TEST

START_TEST(template_filling_follows_str_format)
{
    const char *names[] = {"context", "input"}, *vals[] = {"C {x}", "Q?"};
    char *out;
    ck_assert(qv_lb_format("Read: {context}\n{{literal}} Q: {input}{input}", names, vals, 2, &out) == QV_OK);
    ck_assert_str_eq(out, "Read: C {x}\n{literal} Q: Q?Q?"); /* values are not re-expanded */
    free(out);
    ck_assert(qv_lb_format("{other}", names, vals, 2, &out) == QV_ERR_INPUT);
    ck_assert(qv_lb_format("a } b", names, vals, 2, &out) == QV_ERR_INPUT);
    ck_assert(qv_lb_format("{context", names, vals, 2, &out) == QV_ERR_INPUT);
    ck_assert(qv_lb_format("{context:>9}", names, vals, 2, &out) == QV_ERR_UNSUPPORTED);
    ck_assert(qv_lb_format("", names, vals, 2, &out) == QV_OK);
    ck_assert_str_eq(out, "");
    free(out);
}
END_TEST

START_TEST(middle_truncation_keeps_first_and_last_half)
{
    int32_t ids[10], out[10];
    size_t n;
    for (int i = 0; i < 10; i++) ids[i] = i;
    qv_lb_truncate_middle(ids, 10, 5, out, &n); /* half = int(5/2) = 2: [0,1] + [8,9] */
    ck_assert_uint_eq(n, 4);
    ck_assert(out[0] == 0 && out[1] == 1 && out[2] == 8 && out[3] == 9);
    qv_lb_truncate_middle(ids, 10, 6, out, &n);
    ck_assert_uint_eq(n, 6);
    ck_assert(out[2] == 2 && out[3] == 7 && out[5] == 9);
    qv_lb_truncate_middle(ids, 10, 10, out, &n); /* not longer than max_length: unchanged */
    ck_assert_uint_eq(n, 10);
    qv_lb_truncate_middle(ids, 10, 1, out, &n); /* half 0: ids[:0] + ids[-0:] is the whole list */
    ck_assert_uint_eq(n, 10);
    ck_assert(out[9] == 9);
    for (int i = 0; i < 10; i++) out[i] = i;
    qv_lb_truncate_middle(out, 10, 4, out, &n); /* in place */
    ck_assert(n == 4 && out[0] == 0 && out[1] == 1 && out[2] == 8 && out[3] == 9);
}
END_TEST

START_TEST(config_reader_reads_prompt_and_maxlen)
{
    char *d = qv_test_tmpdir();
    free(write_tmp(d, "dataset2prompt.json", "{\"narrativeqa\": \"Story: {context}\\nQ: {input}\"}"));
    free(write_tmp(d, "dataset2maxlen.json", "{\"narrativeqa\": 128, \"bad\": 1.5}"));
    qv_lb_config *c;
    ck_assert_msg(qv_lb_config_load(d, &c) == QV_OK, "%s", qv_last_error());
    const char *t;
    int m;
    ck_assert(qv_lb_config_prompt(c, "narrativeqa", &t) == QV_OK);
    ck_assert_str_eq(t, "Story: {context}\nQ: {input}");
    ck_assert(qv_lb_config_maxlen(c, "narrativeqa", &m) == QV_OK && m == 128);
    ck_assert(qv_lb_config_maxlen(c, "bad", &m) == QV_ERR_INPUT);
    ck_assert(qv_lb_config_prompt(c, "qasper", &t) == QV_ERR_INPUT);
    qv_lb_config_free(c);
    char *e = qv_test_tmpdir();
    ck_assert(qv_lb_config_load(e, &c) == QV_ERR_IO);
    free(d);
    free(e);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("longbench");
    TCase *tc = tcase_create("longbench");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, every_item_and_task_score_equals_longbench_eval_py);
    tcase_add_test(tc, longbench_e_buckets_equal_scorer_e);
    tcase_add_test(tc, sequence_matcher_ratio_and_fuzz_ratio_equal_python);
    tcase_add_test(tc, autojunk_popular_element_changes_the_ratio);
    tcase_add_test(tc, numpy_mean_and_roundings_equal_python);
    tcase_add_test(tc, hand_checked_metric_values);
    tcase_add_test(tc, bad_inputs_are_refused_with_the_reason);
    tcase_add_test(tc, jsonl_errors_name_file_and_line);
    tcase_add_test(tc, template_filling_follows_str_format);
    tcase_add_test(tc, middle_truncation_keeps_first_and_last_half);
    tcase_add_test(tc, config_reader_reads_prompt_and_maxlen);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
