/* FP16 comparison helpers of `qvet kernels --check` (include/qvet/kcheck.h): whether an FP16
 * output can be the rounding of a value within a derived bound of the reference's pre-rounding
 * value, and the ULP distance reported beside it. */
#include <math.h>

#include "qvet/fp16.h"
#include "qvet/kcheck.h"

/* FP16 bit patterns in value order: -0 and +0 both map to 0; Inf to +-0x7c00. */
static int ord16(uint16_t b) { return (b & 0x8000u) ? -(int)(b & 0x7fffu) : (int)b; }
static double val_ord(int o) { return (double)qv_fp16_to_fp32((uint16_t)(o >= 0 ? o : (0x8000 | -o))); }
static int is_nan16(uint16_t b) { return (b & 0x7c00u) == 0x7c00u && (b & 0x3ffu); }

double qv_kcheck_gamma(int n)
{
    const double nu = (double)n / 16777216.0;
    return nu / (1.0 - nu);
}

int qv_kcheck_fp16_ulps(uint16_t a, uint16_t b)
{
    if (is_nan16(a) || is_nan16(b)) return 65535;
    int d = ord16(a) - ord16(b);
    return d < 0 ? -d : d;
}

int qv_kcheck_fp16_within(uint16_t y, double v, double E, int sat)
{
    if (is_nan16(y) || isnan(v) || !(E >= 0)) return 0;
    const int o = ord16(y), top = 0x7bff; /* 65504 */
    if (o > top) return v + E >= 65520.0;   /* +Inf: what RNE gives from 65520 up */
    if (o < -top) return v - E <= -65520.0;
    /* the reals that round to y: half the gap to each neighbour (RNE ties go either way here,
     * which can only widen the set by its two end points) */
    const double yv = val_ord(o);
    double lo = o == -top ? (sat ? -INFINITY : -65520.0) : 0.5 * (yv + val_ord(o - 1));
    double hi = o == top ? (sat ? INFINITY : 65520.0) : 0.5 * (yv + val_ord(o + 1));
    return lo <= v + E && hi >= v - E;
}
