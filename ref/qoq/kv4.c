/* KV4: per token and KV head, asymmetric 4-bit in the min-offset form, paged (NUMERICS.md). */
#include <math.h>
#include <string.h>

#include "qoq_internal.h"

/* double -> FP16 with one RNE rounding (emulates an FP16 fma, whose exact result is a double
 * here): the FP32 detour may round twice, so pick the nearest of the neighbouring FP16 values. */
static qv_fp16 d2h_rne(double v)
{
    qv_fp16 h0 = qv_fp32_to_fp16((float)v);
    qv_fp16 best = h0;
    double bd = fabs((double)qv_fp16_to_fp32(h0) - v);
    for (int dlt = -1; dlt <= 1; dlt += 2) {
        int hb = (int)(h0 & 0x7fffu) + dlt;
        if (hb < 0 || hb > 0x7bff) continue;
        qv_fp16 h = (qv_fp16)((h0 & 0x8000u) | (unsigned)hb);
        double d = fabs((double)qv_fp16_to_fp32(h) - v);
        if (d < bd || (d == bd && !(h & 1u) && (best & 1u))) best = h, bd = d;
    }
    return best;
}

qv_status qv_kv4_quant_ref(const float *x, int D, int compat, uint8_t *codes, qv_fp16 *s,
                           qv_fp16 *mn)
{
    if (D < 2 || D % 2)
        return qv_fail(QV_ERR_USAGE, "kv4_quant: head_dim %d must be even and >= 2", D);
    QV_TRY(qv_qoq_check_finite("kv4_quant", "x", x, 1, D));
    float lo = qv_round_fp16(x[0]), hi = lo;
    for (int i = 1; i < D; i++) {
        float v = qv_round_fp16(x[i]);
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    float sc = qv_round_fp16((hi - lo) / 15.0f);
    if (isinf(sc) || isinf(lo) || isinf(hi))
        return qv_fail(QV_ERR_INPUT, "kv4_quant: range [%g, %g] overflows FP16", (double)lo, (double)hi);
    memset(codes, 0, (size_t)D / 2);
    if (sc == 0.0f) {
        /* constant vector (or a range below FP16's smallest step): scale 1, codes 0, and the
         * dequantized value is mn exactly. QServe would divide by zero here (NaN); compat keeps
         * the rule, storing its zero as -mn so that fp16(0*1 + fp16(-1*zf)) = mn. */
        *s = qv_fp32_to_fp16(1.0f);
        *mn = qv_fp32_to_fp16(compat ? -lo : lo);
        return QV_OK;
    }
    float zf = 0.0f, inv = 0.0f;
    if (compat) {
        zf = qv_round_fp16(-15.0f * lo / (hi - lo));
        inv = 1.0f / sc;
    }
    for (int i = 0; i < D; i++) {
        float v = qv_round_fp16(x[i]);
        int c;
        if (compat) {
            float r = qv_rne(v * inv + zf); /* QServe: cvt.rni.sat.u8, then & 0xF */
            int sat = r < 0.0f ? 0 : r > 255.0f ? 255 : (int)r;
            c = sat & 15;
        } else {
            c = qv_clampi((int)qv_rne((v - lo) / sc), 0, 15);
        }
        codes[i / 2] |= (uint8_t)(i % 2 ? c << 4 : c); /* low nibble first */
    }
    *s = qv_fp32_to_fp16(sc);
    *mn = qv_fp32_to_fp16(compat ? zf : lo);
    return QV_OK;
}

qv_status qv_kv4_dequant_ref(const uint8_t *codes, int D, qv_fp16 s, qv_fp16 mn, int compat,
                             float *x_hat)
{
    if (D < 2 || D % 2)
        return qv_fail(QV_ERR_USAGE, "kv4_dequant: head_dim %d must be even and >= 2", D);
    float sf = qv_fp16_to_fp32(s), m = qv_fp16_to_fp32(mn);
    if (!isfinite(sf) || !isfinite(m))
        return qv_fail(QV_ERR_INPUT, "kv4_dequant: scale %g / min %g is not finite", (double)sf,
                       (double)m);
    for (int i = 0; i < D; i++) {
        int c = i % 2 ? codes[i / 2] >> 4 : codes[i / 2] & 15;
        if (compat) {
            /* QServe: __hfma2(u, fp16(s), fp16(-s*zf)), one FP16 rounding */
            qv_fp16 h = qv_fp32_to_fp16(-sf * m);
            x_hat[i] = qv_fp16_to_fp32(d2h_rne((double)c * (double)sf + (double)qv_fp16_to_fp32(h)));
        } else {
            float t = (float)c * sf;
            x_hat[i] = t + m;
        }
    }
    return QV_OK;
}

static qv_status geom_check(const char *what, qv_kv4_geom g, size_t *bytes)
{
    if (g.n_kv_heads < 1 || g.head_dim < 2 || g.head_dim % 2 || g.page_size < 1)
        return qv_fail(QV_ERR_USAGE, "%s: bad KV4 geometry (kv heads %d, head_dim %d (even), page "
                       "size %d)", what, g.n_kv_heads, g.head_dim, g.page_size);
    size_t hp, codes;
    if (qv_mul_size((size_t)g.n_kv_heads, (size_t)g.page_size, &hp) ||
        qv_mul_size(hp, (size_t)g.head_dim / 2, &codes))
        return qv_fail(QV_ERR_USAGE, "%s: KV4 page size overflows", what);
    *bytes = codes + hp * 2 * sizeof(qv_fp16);
    return QV_OK;
}

qv_status qv_kv4_page_bytes(qv_kv4_geom g, size_t *bytes) { return geom_check("kv4_page_bytes", g, bytes); }

/* Pointers into the page of token t for head h. */
static qv_status locate(const char *what, long n_pages, qv_kv4_geom g, long t, size_t *page_off,
                        size_t *bytes)
{
    QV_TRY(geom_check(what, g, bytes));
    if (t < 0 || t / g.page_size >= n_pages)
        return qv_fail(QV_ERR_USAGE, "%s: token %ld is outside %ld pages of %d tokens", what, t,
                       n_pages, g.page_size);
    *page_off = (size_t)(t / g.page_size) * *bytes;
    return QV_OK;
}

qv_status qv_kv4_write_token(uint8_t *pages, long n_pages, qv_kv4_geom g, long t, const float *x,
                             int compat)
{
    size_t off = 0, bytes = 0;
    QV_TRY(locate("kv4_write_token", n_pages, g, t, &off, &bytes));
    int P = g.page_size, D = g.head_dim, H = g.n_kv_heads, slot = (int)(t % P);
    uint8_t *page = pages + off;
    size_t codes_bytes = (size_t)H * (size_t)P * (size_t)(D / 2);
    for (int h = 0; h < H; h++) {
        /* set by qv_kv4_quant_ref (QV_TRY returns first on error); the zeros only quiet GCC 12's
         * -Wmaybe-uninitialized, an error in the CPU-only Release build */
        qv_fp16 s = 0, m = 0;
        uint8_t *c = page + ((size_t)h * (size_t)P + (size_t)slot) * (size_t)(D / 2);
        QV_TRY(qv_kv4_quant_ref(x + (size_t)h * (size_t)D, D, compat, c, &s, &m));
        size_t sidx = (size_t)h * (size_t)P + (size_t)slot;
        /* FP16 bytes stored little-endian, scales then mins, as QServe places scale and zero */
        uint8_t *sp = page + codes_bytes + sidx * 2, *mp = page + codes_bytes + ((size_t)H * P + sidx) * 2;
        sp[0] = (uint8_t)(s & 0xff), sp[1] = (uint8_t)(s >> 8);
        mp[0] = (uint8_t)(m & 0xff), mp[1] = (uint8_t)(m >> 8);
    }
    return QV_OK;
}

/* Token t's entry of KV head h in its page (page: the token's page, as locate() found it): codes,
 * scale and min; the one place that knows where a token's bytes sit, for the readers below. */
typedef struct {
    const uint8_t *codes;
    qv_fp16 s, mn;
} kv4_entry;

static kv4_entry entry_of(const uint8_t *page, qv_kv4_geom g, long t, int h)
{
    int P = g.page_size, D = g.head_dim, H = g.n_kv_heads;
    size_t codes_bytes = (size_t)H * (size_t)P * (size_t)(D / 2), sidx = (size_t)h * (size_t)P + (size_t)(t % P);
    const uint8_t *sp = page + codes_bytes + sidx * 2, *mp = page + codes_bytes + ((size_t)H * P + sidx) * 2;
    kv4_entry e = {page + sidx * (size_t)(D / 2), (qv_fp16)(sp[0] | sp[1] << 8), (qv_fp16)(mp[0] | mp[1] << 8)};
    return e;
}

qv_status qv_kv4_read_token(const uint8_t *pages, long n_pages, qv_kv4_geom g, long t, float *x_hat,
                            int compat)
{
    size_t off = 0, bytes = 0;
    QV_TRY(locate("kv4_read_token", n_pages, g, t, &off, &bytes));
    for (int h = 0; h < g.n_kv_heads; h++) {
        kv4_entry e = entry_of(pages + off, g, t, h);
        QV_TRY(qv_kv4_dequant_ref(e.codes, g.head_dim, e.s, e.mn, compat, x_hat + (size_t)h * (size_t)g.head_dim));
    }
    return QV_OK;
}

qv_status qv_kv4_read_token_mag(const uint8_t *pages, long n_pages, qv_kv4_geom g, long t, float *mag)
{
    size_t off = 0, bytes = 0;
    QV_TRY(locate("kv4_read_token_mag", n_pages, g, t, &off, &bytes));
    int D = g.head_dim;
    for (int h = 0; h < g.n_kv_heads; h++) {
        kv4_entry e = entry_of(pages + off, g, t, h);
        double s = qv_fp16_to_fp32(e.s), m = fabs(qv_fp16_to_fp32(e.mn));
        for (int i = 0; i < D; i++) {
            int u = i % 2 ? e.codes[i / 2] >> 4 : e.codes[i / 2] & 15;
            mag[(size_t)h * D + i] = nextafterf((float)(u * s + m), INFINITY);
        }
    }
    return QV_OK;
}
