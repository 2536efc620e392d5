/* CPU references of the GPU fused kernels and attention (include/qvet/kernels_ref.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qvet/fp16.h"
#include "qvet/kernels_ref.h"
#include "qvet/ref_fp32.h"

qv_status qv_ref_rope_table(const qv_config *c, int max_pos, float *cos_t, float *sin_t)
{
    int half = c->head_dim / 2;
    if (half < 1 || max_pos < 1)
        return qv_fail(QV_ERR_USAGE, "rope_table: head_dim %d, positions %d", c->head_dim, max_pos);
    float *inv = malloc(sizeof(float) * (size_t)half);
    if (!inv) return QV_ERR_NOMEM;
    qv_ref_fp32_rope_inv_freq(c, inv);
    for (int p = 0; p < max_pos; p++)
        for (int i = 0; i < half; i++) {
            float ang = (float)p * inv[i]; /* as ref-fp32's rope(): FP32 product */
            cos_t[(size_t)p * half + i] = cosf(ang);
            sin_t[(size_t)p * half + i] = sinf(ang);
        }
    free(inv);
    return QV_OK;
}

void qv_ref_rmsnorm_rows(const float *x, const float *w, float eps, int M, int K, float *y)
{
    for (int m = 0; m < M; m++) {
        const float *xr = x + (size_t)m * K;
        double ss = 0;
        for (int i = 0; i < K; i++) ss += (double)xr[i] * xr[i];
        float ms = (float)(ss / K);
        float r = 1.0f / sqrtf(ms + eps);
        for (int i = 0; i < K; i++) y[(size_t)m * K + i] = w[i] * (xr[i] * r);
    }
}

void qv_ref_silu_mul_rows(const uint16_t *gu, int M, int I, float *y) { qv_ref_silu_mul_rows_dt(QV_DTYPE_FP16, gu, M, I, y); }

void qv_ref_silu_mul_rows_dt(qv_dtype16 t, const uint16_t *gu, int M, int I, float *y)
{
    for (int m = 0; m < M; m++)
        for (int k = 0; k < I; k++) {
            float g = qv_dtype16_to_fp32(t, gu[(size_t)m * 2 * I + k]), u = qv_dtype16_to_fp32(t, gu[(size_t)m * 2 * I + I + k]);
            y[(size_t)m * I + k] = g / (1.0f + expf(-g)) * u;
        }
}

qv_status qv_ref_a8_pre(const float *v, int M, int K, int compat, int8_t *q, float *s_a, float *pre)
{
    QV_TRY(qv_quant_a8_ref(v, M, K, q, s_a, NULL, compat));
    if (!pre) return QV_OK;
    for (int m = 0; m < M; m++) {
        float amax = compat ? 1e-6f : 0.0f; /* qv_quant_a8_ref's running max (QServe floors it) */
        for (int k = 0; k < K; k++) amax = fmaxf(amax, fabsf(v[(size_t)m * K + k]));
        float inv = amax == 0.0f ? 0.0f : 127.0f / amax;
        for (int k = 0; k < K; k++) pre[(size_t)m * K + k] = v[(size_t)m * K + k] * inv;
    }
    return QV_OK;
}

qv_status qv_ref_a8_with_pre(const float *v, int M, int K, int8_t *q, float *s_a, int32_t *rowsum, float *pre)
{
    QV_TRY(qv_ref_a8_pre(v, M, K, 0, q, s_a, pre));
    if (rowsum) QV_TRY(qv_a8_rowsum_i32(q, M, K, rowsum));
    return QV_OK;
}

int qv_ref_a8_code_check(int gpu, int ref, float pre, double rel)
{
    if (gpu == ref) return 0;
    if (abs(gpu - ref) != 1) return -1;
    double boundary = 0.5 * ((double)gpu + (double)ref); /* x.5 between the two codes */
    return fabs((double)pre - boundary) <= rel * fabs((double)pre) ? 1 : -1;
}

void qv_ref_rope_qkv(const uint16_t *qkv, int nh, int nkv, int hd, const float *cos_row, const float *sin_row,
                     uint16_t *q, uint16_t *k, uint16_t *v)
{
    qv_ref_rope_qkv_dt(QV_DTYPE_FP16, qkv, nh, nkv, hd, cos_row, sin_row, q, k, v);
}

void qv_ref_rope_qkv_dt(qv_dtype16 t, const uint16_t *qkv, int nh, int nkv, int hd, const float *cos_row,
                        const float *sin_row, uint16_t *q, uint16_t *k, uint16_t *v)
{
    int half = hd / 2;
    for (int h = 0; h < nh + 2 * nkv; h++) {
        const uint16_t *x = qkv + (size_t)h * hd;
        uint16_t *dst = h < nh ? q + (size_t)h * hd : h < nh + nkv ? k + (size_t)(h - nh) * hd : v + (size_t)(h - nh - nkv) * hd;
        if (h >= nh + nkv) {
            memcpy(dst, x, sizeof(uint16_t) * (size_t)hd);
            continue;
        }
        for (int i = 0; i < half; i++) {
            float a = qv_dtype16_to_fp32(t, x[i]), b = qv_dtype16_to_fp32(t, x[i + half]), c = cos_row[i], s = sin_row[i];
            dst[i] = qv_fp32_to_dtype16(t, a * c + (-b) * s); /* ref-fp32's rope(), then the cached 16-bit */
            dst[i + half] = qv_fp32_to_dtype16(t, b * c + a * s);
        }
    }
}

/* Bound (docs/bounds.md): per score s_j = scale*(q.k_j), the kernel's FP32 error is at most
 * E_j = scale*gamma_hd*A_j + u|s_j| (A_j = sum |q_i k_ji|). The unnormalized weight exp(s_j - m)
 * then carries a relative error <= rho = 2 max E_j + 2u max|s_j - m| + 16u (argument errors, expf's
 * 2 ulp, chunk rescaling and products), so each normalized p_j moves by <= 2 rho p_j; the sums of
 * p_j v_j and of p_j (any order, <= ctx + 8 terms) add gamma_{ctx+8} each, the division u, and the
 * FP16 output 2^-11 relative plus 2^-25 absolute (subnormals); a BF16 output 2^-8 and 2^-134. */
void qv_ref_attention_row(const float *q, const float *K, const float *V, int ctx, int nh, int nkv, int hd,
                          float scale, double *out, double *bound)
{
    qv_ref_attention_row_m(q, K, V, ctx, nh, nkv, hd, scale, NULL, out, bound);
}

static void attention_row(qv_dtype16 t, const float *q, const float *K, const float *V, int ctx, int nh, int nkv,
                          int hd, float scale, const qv_attn_err_model *m, double *out, double *bound);

void qv_ref_attention_row_dt(qv_dtype16 t, const float *q, const float *K, const float *V, int ctx, int nh, int nkv,
                             int hd, float scale, double *out, double *bound)
{
    attention_row(t, q, K, V, ctx, nh, nkv, hd, scale, NULL, out, bound);
}

/* Tensor-core accumulation of n products in MMA steps of k = 16 (plus the accumulator): with exact
 * products and truncating alignment to the largest of the 17 addends, each step's result is off by
 * < 17 ulps of its largest addend at the running magnitude, <= 17 * 2^-22 of the sum of the
 * magnitudes so far (2^-23 per ulp, one more for a carry-out). NVIDIA does not publish the exact
 * rule; this is the truncation model measured on earlier tensor cores (Fasi et al., PeerJ CS 2021),
 * taken with margin. */
static double gamma_tc(int n_terms)
{
    return ((n_terms + 15) / 16) * 17.0 * ldexp(1.0, -22);
}

void qv_attn_err_model_kv4_mma(int hd, qv_attn_err_model *m)
{
    const double u = QV_U32;
    m->Kmag = m->Vmag = NULL;
    /* score: s*(q.u) + mn*sum(q), then *scale: gamma_tc(hd) on q.u; the FP32 sum(q) is covered by
     * gamma_hd on the |mn| part; 3 roundings (two products, the sum) plus 2u for the exact vs
     * twice-rounded dequantized k, each relative to sum |q| (u s + |mn|): 8u with margin. */
    m->dot_extra = gamma_tc(hd) + 8 * u;
    /* P.V: a warp accumulates up to 128 positions of a record (4 sub-chunks x 32) on tensor cores
     * with p*s rounded (u) and split into BF16 parts, at worst two (GQA groups of 4 and 8; 1 and 2
     * use three): the parts' residual <= 2^-16 |p s|; for G = 8 hi and lo go through the same
     * accumulator (256 products, 16 MMA steps), else each part has its own column (128). Then 2u
     * for the exact vs rounded dequantized v. The FP32 sums that follow (parts, 8 warps, records,
     * the mn part sum_j p_j mn_j) add at most 3 * 8 + 1 nonzero partials per record beyond the
     * gamma_{ctx+8} already in the bound: 24u more, with the 4u margin of before. */
    m->pv_extra = gamma_tc(2 * 128) + ldexp(1.0, -16) + (4 + 24) * u;
}

void qv_ref_attention_row_m(const float *q, const float *K, const float *V, int ctx, int nh, int nkv, int hd,
                            float scale, const qv_attn_err_model *m, double *out, double *bound)
{
    attention_row(QV_DTYPE_FP16, q, K, V, ctx, nh, nkv, hd, scale, m, out, bound);
}

/* The bound above with the output rounding of type t (FP16: 2^-11 relative + 2^-25; BF16: 2^-8 and
 * 2^-134) and, when m is given, the tensor-core kernel's error model. */
static void attention_row(qv_dtype16 t, const float *q, const float *K, const float *V, int ctx, int nh, int nkv,
                          int hd, float scale, const qv_attn_err_model *m, double *out, double *bound)
{
    const double u = QV_U32;
    const float *Km = m && m->Kmag ? m->Kmag : K, *Vm = m && m->Vmag ? m->Vmag : V;
    double dot_extra = m ? m->dot_extra : 0, pv_extra = m ? m->pv_extra : 0;
    int group = nh / nkv;
    double *s = malloc(sizeof(double) * (size_t)ctx);
    if (!s) { /* cannot happen in the test sizes; make every comparison fail loudly */
        for (int i = 0; i < nh * hd; i++) out[i] = NAN, bound[i] = 0;
        return;
    }
    double g_hd = hd * u / (1 - hd * u) + dot_extra, g_ctx = (ctx + 8) * u / (1 - (ctx + 8) * u) + pv_extra;
    for (int h = 0; h < nh; h++) {
        const float *qh = q + (size_t)h * hd;
        int kvh = h / group;
        double mx = -INFINITY, Emax = 0, smin = INFINITY;
        for (int j = 0; j < ctx; j++) {
            const float *k = K + ((size_t)j * nkv + kvh) * hd, *km = Km + ((size_t)j * nkv + kvh) * hd;
            double d = 0, a = 0;
            for (int i = 0; i < hd; i++) d += (double)qh[i] * k[i], a += fabs((double)qh[i]) * fabs((double)km[i]);
            s[j] = d * scale;
            double E = scale * g_hd * a + u * fabs(s[j]);
            if (E > Emax) Emax = E;
            if (s[j] > mx) mx = s[j];
            if (s[j] < smin) smin = s[j];
        }
        double rho = 2 * Emax + 2 * u * (mx - smin) + 16 * u, den = 0;
        for (int j = 0; j < ctx; j++) den += exp(s[j] - mx);
        for (int d = 0; d < hd; d++) {
            double o = 0, pv = 0;
            for (int j = 0; j < ctx; j++) {
                size_t vi = ((size_t)j * nkv + kvh) * hd + d;
                double p = exp(s[j] - mx) / den;
                o += p * V[vi];
                pv += p * fabs((double)Vm[vi]);
            }
            out[(size_t)h * hd + d] = o;
            double b = (2 * rho + 2 * g_ctx + 4 * u) * pv;
            bound[(size_t)h * hd + d] = b + qv_dtype16_u(t) * (fabs(o) + b) + qv_dtype16_sub(t);
        }
    }
    free(s);
}
