/* qv_compare_f32: figures on hand-made vectors, pass/fail at the bound, NaN handling. */
#include <math.h>
#include <string.h>

#include "qv_test_util.h"
#include "qvet/compare.h"

START_TEST(compare_reports_max_abs_nmse_and_ratio)
{
    float ref[4] = {1, -2, 3, -4}, got[4] = {1, -2.5f, 3, -4};
    qv_compare_result r;
    ck_assert_int_eq(qv_compare_f32("t", got, ref, 4, 0.5, &r), QV_OK);
    ck_assert_double_eq(r.max_abs, 0.5);
    ck_assert_int_eq(r.argmax, 1);
    ck_assert_double_eq(r.max_ref, 4);
    ck_assert_double_eq_tol(r.nmse, 0.25 / 30, 1e-15);
    ck_assert_double_eq(r.ratio, 1);
    ck_assert_int_eq(qv_compare_f32("logits", got, ref, 4, 0.25, &r), QV_ERR_CHECK);
    ck_assert_msg(strstr(qv_last_error(), "logits: max |diff| 0.5 at index 1"), "%s", qv_last_error());
    got[2] = NAN;
    ck_assert_int_eq(qv_compare_f32("x", got, ref, 4, 1, &r), QV_ERR_CHECK);
    ref[0] = INFINITY;
    ck_assert_int_eq(qv_compare_f32("x", got, ref, 4, 1, &r), QV_ERR_INPUT);
}
END_TEST

START_TEST(golden_bound_formula)
{
    qv_config c = {0};
    c.hidden_size = 384, c.intermediate_size = 1024, c.num_heads = 6, c.head_dim = 64, c.num_layers = 8;
    /* K = 1024 (intermediate), 34 stages for the logits: 2 * 6 * 32 * 2^-24 * 34 */
    ck_assert_double_eq_tol(qv_golden_bound_rel(&c, 8, 64), 2 * 6.0 * 32 * 34 / 16777216.0, 1e-18);
    /* a context of 2048 is the longest dot product (P V) */
    ck_assert_double_eq_tol(qv_golden_bound_rel(&c, 1, 2048), 2 * 6.0 * sqrt(2048.0) * 4 / 16777216.0, 1e-18);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("compare");
    TCase *tc = tcase_create("compare");
    tcase_add_test(tc, compare_reports_max_abs_nmse_and_ratio);
    tcase_add_test(tc, golden_bound_formula);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
