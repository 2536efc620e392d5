/* The rounding and averaging LongBench's eval.py relies on. scorer() rounds a Python float
 * (round(x, 2): correctly rounded, ties to even on the exact binary value); scorer_e() rounds a
 * numpy float64 (np.round: rint(x * 100) / 100, which differs, e.g. 99.975 -> 99.98 vs 99.97),
 * and averages with np.mean (pairwise summation, as numpy's add.reduce does it, then / n). */
#include <fenv.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "longbench_internal.h"

double qv_lb_py_round(double x)
{
    /* round-to-nearest-even in the default rounding mode; exact like CPython's float.__round__ */
    return nearbyint(x);
}

double qv_lb_py_round2(double x)
{
    if (!isfinite(x)) return x;
    /* glibc printf rounds the exact binary value correctly (ties to even), as CPython's dtoa
     * mode 3 does; strtod reads the decimal back to the nearest double, as CPython does. */
    char buf[512];
    snprintf(buf, sizeof buf, "%.2f", x);
    return strtod(buf, NULL);
}

double qv_lb_np_round2(double x)
{
    return nearbyint(x * 100.0) / 100.0;
}

/* numpy's pairwise_sum for float64 (umath loops, PW_BLOCKSIZE 128, unrolled by 8) */
static double pairwise(const double *a, size_t n)
{
    if (n < 8) {
        double res = 0.;
        for (size_t i = 0; i < n; i++) res += a[i];
        return res;
    }
    if (n <= 128) {
        double r[8];
        size_t i;
        for (int j = 0; j < 8; j++) r[j] = a[j];
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += a[i];
        return res;
    }
    size_t n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise(a, n2) + pairwise(a + n2, n - n2);
}

double qv_lb_np_mean(const double *v, size_t n)
{
    if (n == 0) return NAN; /* numpy warns "Mean of empty slice" and returns nan */
    return pairwise(v, n) / (double)n;
}
