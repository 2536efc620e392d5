/* One quantized linear layer: quantization by NUMERICS.md's round-to-nearest rules (ref/qoq's
 * quantizers), packing into the kernels' layout, unpacking, dequantization, and the range checks a
 * loaded checkpoint must pass (docs/checkpoint.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qvet/qmodel.h"
#include "qvet/mutant.h"
#include "qvet/qoq.h"

const char *qv_qformat_name(qv_qformat f)
{
    static const char *names[QV_QFMT_COUNT] = {"w4a8-g128", "w4a8-chn", "w8a8"};
    return (unsigned)f < QV_QFMT_COUNT ? names[f] : "?";
}

qv_status qv_qformat_parse(const char *s, qv_qformat *f)
{
    for (int i = 0; i < QV_QFMT_COUNT; i++)
        if (s && strcmp(s, qv_qformat_name((qv_qformat)i)) == 0) {
            *f = (qv_qformat)i;
            return QV_OK;
        }
    return qv_fail(QV_ERR_USAGE, "unknown quantization format '%s' (w4a8-g128, w4a8-chn, w8a8)", s ? s : "(null)");
}

const char *qv_qlinear_module(qv_qlinear_id id)
{
    static const char *names[QV_QL_COUNT] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                             "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                             "mlp.down_proj"};
    return (unsigned)id < QV_QL_COUNT ? names[id] : "?";
}

void qv_qlinear_free(qv_qlinear *l)
{
    if (!l) return;
    free(l->qweight);
    free(l->s0);
    free(l->s1);
    free(l->sz1);
    free(l->scale);
    free(l->szero);
    free(l->bias);
    memset(l, 0, sizeof *l);
}

static qv_status check_shape(int N, int K, qv_qformat fmt)
{
    if (N <= 0 || K <= 0) return qv_fail(QV_ERR_INPUT, "quantized linear: bad shape [%d, %d]", N, K);
    if (fmt == QV_QFMT_W8A8) return QV_OK;
    if (N % QV_QOQ_TILE || K % QV_QOQ_TILE)
        return qv_fail(QV_ERR_INPUT, "quantized linear [%d, %d]: %s needs N and K multiples of %d (packed tiles)", N,
                       K, qv_qformat_name(fmt), QV_QOQ_TILE);
    if (fmt == QV_QFMT_W4A8_G128 && K % QV_QOQ_GROUP)
        return qv_fail(QV_ERR_INPUT, "quantized linear [%d, %d]: w4a8-g128 needs K a multiple of %d", N, K, QV_QOQ_GROUP);
    return QV_OK;
}

/* Clipping by a per-channel ratio r is clamping the channel to r times its range: every
 * quantizer derives its scale from the (widened) range, so the clamped row yields exactly the
 * scale of the clipped range, and the clamped values saturate at the end codes. */
static void clip_rows(float *W, int N, int K, qv_qformat fmt, const float *clip)
{
    for (int n = 0; n < N; n++) {
        float r = clip[n], *w = W + (size_t)n * K;
        float lo = 0.0f, hi = 0.0f;
        for (int k = 0; k < K; k++) {
            if (w[k] < lo) lo = w[k];
            if (w[k] > hi) hi = w[k];
        }
        if (fmt != QV_QFMT_W4A8_CHN) { /* symmetric: max|w| */
            float m = fmaxf(-lo, hi);
            lo = -m;
            hi = m;
        }
        lo = lo * r;
        hi = hi * r;
        for (int k = 0; k < K; k++) w[k] = fminf(fmaxf(w[k], lo), hi);
    }
}

qv_status qv_qlinear_quantize(const float *W, int N, int K, qv_qformat fmt, const float *clip, const float *bias,
                              qv_qlinear *out)
{
    memset(out, 0, sizeof *out);
    QV_TRY(check_shape(N, K, fmt));
    size_t NK = (size_t)N * (size_t)K, G = fmt == QV_QFMT_W4A8_G128 ? (size_t)(K / QV_QOQ_GROUP) : 0;
    for (size_t i = 0; i < NK; i++)
        if (!isfinite(W[i]))
            return qv_fail(QV_ERR_INPUT, "quantized linear [%d, %d]: non-finite weight at (%zu, %zu)", N, K,
                           i / (size_t)K, i % (size_t)K);
    if (clip)
        for (int n = 0; n < N; n++)
            if (!(clip[n] > 0.0f && clip[n] <= 1.0f))
                return qv_fail(QV_ERR_INPUT, "quantized linear [%d, %d]: clip ratio %g of channel %d outside (0, 1]", N,
                               K, (double)clip[n], n);
    out->N = N;
    out->K = K;
    out->fmt = fmt;
    float *Wc = NULL;
    uint8_t *u = NULL, *z = NULL, *s1 = NULL, *sz1 = NULL;
    qv_status st = QV_ERR_NOMEM;
    if (clip) {
        if (!(Wc = qv_malloc(NK * sizeof(float)))) goto fail;
        memcpy(Wc, W, NK * sizeof(float));
        clip_rows(Wc, N, K, fmt, clip);
        W = Wc;
    }
    if (bias) {
        if (!(out->bias = qv_malloc(sizeof(float) * (size_t)N))) goto fail;
        for (int n = 0; n < N; n++) out->bias[n] = qv_fp16_to_fp32(qv_fp32_to_fp16(bias[n]));
    }
    if (fmt == QV_QFMT_W8A8) {
        out->qweight = qv_malloc(NK);
        out->scale = qv_malloc(sizeof(qv_fp16) * (size_t)N);
        if (!out->qweight || !out->scale) goto fail;
        if ((st = qv_quant_w8_ref(W, N, K, (int8_t *)out->qweight, out->scale)) != QV_OK) goto fail;
    } else {
        u = qv_malloc(NK);
        z = qv_malloc(G ? (size_t)N * G : (size_t)N);
        out->qweight = qv_malloc(NK / 2);
        if (!u || !z || !out->qweight) goto fail;
        if (fmt == QV_QFMT_W4A8_CHN) {
            out->scale = qv_malloc(sizeof(qv_fp16) * (size_t)N);
            out->szero = qv_malloc(sizeof(qv_fp16) * (size_t)N);
            if (!out->scale || !out->szero) goto fail;
            if ((st = qv_quant_w4pc_ref(W, N, K, u, out->scale, z, out->szero)) != QV_OK) goto fail;
        } else {
            out->s0 = qv_malloc(sizeof(qv_fp16) * (size_t)N);
            s1 = qv_malloc((size_t)N * G);
            sz1 = qv_malloc((size_t)N * G);
            out->s1 = qv_malloc((size_t)N * G);
            out->sz1 = qv_malloc((size_t)N * G);
            if (!out->s0 || !s1 || !sz1 || !out->s1 || !out->sz1) goto fail;
            if ((st = qv_quant_w4g128_ref(W, N, K, QV_MUT(protect127) ? 127 : QV_QOQ_PROTECT, u, out->s0, s1, z, sz1)) != QV_OK) goto fail;
            if ((st = qv_w4g128_pack_groupbytes(s1, N, K, out->s1)) != QV_OK) goto fail;
            if ((st = qv_w4g128_pack_groupbytes(sz1, N, K, out->sz1)) != QV_OK) goto fail;
        }
        if ((st = qv_w4_pack(u, N, K, out->qweight)) != QV_OK) goto fail;
    }
    st = QV_OK;
fail:
    if (st == QV_ERR_NOMEM) qv_fail(st, "quantized linear [%d, %d]: out of memory", N, K);
    if (st != QV_OK) qv_qlinear_free(out);
    free(Wc);
    free(u);
    free(z);
    free(s1);
    free(sz1);
    return st;
}

qv_status qv_qlinear_unpack(const qv_qlinear *l, uint8_t *u, uint8_t *s1, uint8_t *sz1)
{
    if (l->fmt == QV_QFMT_W8A8) return QV_OK;
    if (u) QV_TRY(qv_w4_unpack(l->qweight, l->N, l->K, u));
    if (l->fmt == QV_QFMT_W4A8_G128) {
        if (s1) QV_TRY(qv_w4g128_unpack_groupbytes(l->s1, l->N, l->K, s1));
        if (sz1) QV_TRY(qv_w4g128_unpack_groupbytes(l->sz1, l->N, l->K, sz1));
    }
    return QV_OK;
}

qv_status qv_qlinear_dequant(const qv_qlinear *l, float *W)
{
    int N = l->N, K = l->K, G = K / QV_QOQ_GROUP;
    size_t NK = (size_t)N * (size_t)K;
    if (l->fmt == QV_QFMT_W8A8) {
        const int8_t *w8 = (const int8_t *)l->qweight;
        for (int n = 0; n < N; n++) {
            float s = qv_fp16_to_fp32(l->scale[n]);
            for (int k = 0; k < K; k++) W[(size_t)n * K + k] = s * (float)w8[(size_t)n * K + k];
        }
        return QV_OK;
    }
    uint8_t *u = qv_malloc(NK), *s1 = NULL, *sz1 = NULL;
    qv_status st = QV_ERR_NOMEM;
    if (!u) return st;
    if (l->fmt == QV_QFMT_W4A8_G128) {
        s1 = qv_malloc((size_t)N * G);
        sz1 = qv_malloc((size_t)N * G);
        if (!s1 || !sz1) goto done;
    }
    if ((st = qv_qlinear_unpack(l, u, s1, sz1)) != QV_OK) goto done;
    for (int n = 0; n < N; n++) {
        if (l->fmt == QV_QFMT_W4A8_G128) {
            float s0 = qv_fp16_to_fp32(l->s0[n]);
            for (int k = 0; k < K; k++) {
                size_t g = (size_t)n * G + k / QV_QOQ_GROUP;
                W[(size_t)n * K + k] = s0 * (float)qv_w4g128_dequant1(u[(size_t)n * K + k], s1[g], sz1[g]);
            }
        } else {
            float s = qv_fp16_to_fp32(l->scale[n]), sz = qv_fp16_to_fp32(l->szero[n]);
            for (int k = 0; k < K; k++) W[(size_t)n * K + k] = s * (float)u[(size_t)n * K + k] - sz;
        }
    }
    st = QV_OK;
done:
    free(u);
    free(s1);
    free(sz1);
    return st;
}

static int fp16_finite(qv_fp16 h) { return (h & 0x7c00u) != 0x7c00u; }

qv_status qv_qlinear_check(const qv_qlinear *l, const char *what)
{
    int N = l->N, K = l->K;
    qv_status st = check_shape(N, K, l->fmt);
    if (st != QV_OK) return qv_fail_prefix(st, "%s", what);
    if (l->bias)
        for (int n = 0; n < N; n++)
            if (!isfinite(l->bias[n])) return qv_fail(QV_ERR_INPUT, "%s.bias: non-finite value at channel %d", what, n);
    if (l->fmt == QV_QFMT_W8A8 || l->fmt == QV_QFMT_W4A8_CHN) {
        for (int n = 0; n < N; n++) {
            qv_fp16 h = l->scale[n];
            float s = qv_fp16_to_fp32(h);
            if (!fp16_finite(h))
                return qv_fail(QV_ERR_INPUT, "%s.scale: %s at channel %d", what, (h & 0x3ffu) ? "NaN" : "Inf", n);
            if (!(s > 0.0f)) return qv_fail(QV_ERR_INPUT, "%s.scale: channel %d has scale %g (must be > 0)", what, n, (double)s);
            if (l->fmt == QV_QFMT_W8A8) {
                const int8_t *w8 = (const int8_t *)l->qweight;
                for (int k = 0; k < K; k++)
                    if (w8[(size_t)n * K + k] == -128)
                        return qv_fail(QV_ERR_INPUT, "%s.qweight: code -128 at (%d, %d) (symmetric INT8 is [-127, 127])",
                                       what, n, k);
                continue;
            }
            /* sz must be fp16(s_w * z) for an integer zero point z in [0, 15]; s_w * z is exact in
             * FP32 (11 + 4 significant bits), so the test is an exact comparison of the rounding. */
            qv_fp16 sz = l->szero[n];
            int found = 0;
            for (int zp = 0; zp <= 15 && !found; zp++) found = qv_fp32_to_fp16(s * (float)zp) == sz;
            if (!found) {
                if (!fp16_finite(sz))
                    return qv_fail(QV_ERR_INPUT, "%s.szero: %s at channel %d", what, (sz & 0x3ffu) ? "NaN" : "Inf", n);
                return qv_fail(QV_ERR_INPUT,
                               "%s.szero: channel %d has scaled zero %g, not fp16(scale * z) for any zero point z in "
                               "[0, 15] (scale %g)",
                               what, n, (double)qv_fp16_to_fp32(sz), (double)s);
            }
        }
        return QV_OK;
    }
    /* g128 */
    for (int n = 0; n < N; n++) {
        qv_fp16 h = l->s0[n];
        float s = qv_fp16_to_fp32(h);
        if (!fp16_finite(h)) return qv_fail(QV_ERR_INPUT, "%s.s0: %s at channel %d", what, (h & 0x3ffu) ? "NaN" : "Inf", n);
        if (!(s > 0.0f)) return qv_fail(QV_ERR_INPUT, "%s.s0: channel %d has scale %g (must be > 0)", what, n, (double)s);
    }
    size_t G = (size_t)(K / QV_QOQ_GROUP), NG = (size_t)N * G;
    uint8_t *u = qv_malloc((size_t)N * K), *s1 = qv_malloc(NG), *sz1 = qv_malloc(NG);
    st = QV_ERR_NOMEM;
    if (!u || !s1 || !sz1) goto done;
    if ((st = qv_qlinear_unpack(l, u, s1, sz1)) != QV_OK) goto done;
    for (int n = 0; n < N; n++)
        for (size_t g = 0; g < G; g++) {
            int a = s1[(size_t)n * G + g], b = sz1[(size_t)n * G + g];
            if (a < 1 || a > 16) {
                st = qv_fail(QV_ERR_INPUT, "%s.s1: channel %d group %zu has s1 = %d (must be in [1, 16])", what, n, g, a);
                goto done;
            }
            if (b % a || b > 15 * a) {
                st = qv_fail(QV_ERR_INPUT,
                             "%s.sz1: channel %d group %zu has sz1 = %d, not z * s1 for a zero point z in [0, 15] (s1 = %d)",
                             what, n, g, b, a);
                goto done;
            }
        }
    st = qv_w4g128_check_codes(u, s1, sz1, N, K);
    if (st != QV_OK) qv_fail_prefix(st, "%s.qweight", what);
done:
    free(u);
    free(s1);
    free(sz1);
    return st;
}
