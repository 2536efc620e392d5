/* Attention cases of the kernel matrix (include/qvet/kcases.h): a CPU emulation of the paged
 * KV4 attention kernel's data path (KV4 write into pages in QServe's placement, paged read with
 * dequantization, GQA head mapping, causal mask, softmax with max subtraction, FP16 output),
 * compared with the definitions: the KV4 pages bit for bit with qv_kv4_write_token, the output
 * within qv_ref_attention_row's derived bound on the definition's dequantized K/V (docs/bounds.md
 * "GPU kernels"). Two sequences run through one cache slot, the second shorter than the first's
 * cache is long, so a slot that is not reset shows. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcase_internal.h"
#include "qvet/fp16.h"
#include "qvet/gpu.h"
#include "qvet/gpu_kernels.h"
#include "qvet/kcases.h"
#include "qvet/kernels_ref.h"
#include "qvet/mutant.h"
#include "qvet/qoq.h"

int qv_kattn_emul_plant = 0;
/* A bug site of the emulation: the gate's mutant by id, or the test hook by number (kcases.h). */
#define PLANT(id, n) (QV_MUT(id) || qv_kattn_emul_plant == (n))

static const char *attn_value_names[QV_KA_COUNT] = {"random", "ties", "large"};

const char *qv_kattn_values_name(qv_kattn_values v) { return (unsigned)v < QV_KA_COUNT ? attn_value_names[v] : "?"; }

void qv_kattn_name(const qv_kattn_case *c, char *buf, int n)
{
    snprintf(buf, (size_t)n, "nh=%d nkv=%d hd=%d ctx=%d T=%d page=%d %s", c->nh, c->nkv, c->hd, c->ctx, c->T, c->page,
             qv_kattn_values_name(c->values));
}

/* GQA groups 4, 1 (MHA) and 8; contexts across page boundaries (16, 32; 8-token pages to 70),
 * a one-token decode, a full prefill; KV4 ties (x - mn an odd multiple of s/2) and large scores
 * (|s| >> 88: exp overflows FP32 without the max subtraction). */
static const qv_kattn_case attn_cases[] = {
    {8, 2, 32, 40, 8, 16, QV_KA_RANDOM}, {4, 4, 64, 17, 17, 16, QV_KA_RANDOM}, {8, 1, 32, 1, 1, 16, QV_KA_RANDOM},
    {6, 2, 16, 70, 3, 8, QV_KA_RANDOM},  {8, 2, 32, 40, 4, 16, QV_KA_TIES},    {8, 2, 32, 40, 4, 16, QV_KA_LARGE},
    /* head_dim 128: on a GPU these run the tensor-core KV4 kernel (gpu/attn_kv4_mma.cu): GQA 4
     * across two chunks, GQA 1 with large scores, GQA 8 with ties */
    {32, 8, 128, 300, 3, 16, QV_KA_RANDOM}, {8, 8, 128, 40, 4, 16, QV_KA_LARGE}, {16, 2, 128, 40, 4, 16, QV_KA_TIES},
};

qv_status qv_kattn_matrix(qv_kattn_case **cases, int *n)
{
    int k = (int)(sizeof attn_cases / sizeof *attn_cases);
    *cases = malloc(sizeof attn_cases);
    if (!*cases) return qv_fail(QV_ERR_NOMEM, "out of memory");
    memcpy(*cases, attn_cases, sizeof attn_cases);
    *n = k;
    return QV_OK;
}

static float r16(float v) { return qv_fp16_to_fp32(qv_fp32_to_fp16(v)); }
static float aunif(qv_krng *r, float a) { return r16((float)((qv_krng_unif(r) * 2 - 1) * a)); }

/* One token's K or V [nkv][hd] of the case's value mode. */
static void draw_kv(const qv_kattn_case *c, qv_krng *r, float *x)
{
    for (int h = 0; h < c->nkv; h++) {
        float *v = x + (size_t)h * c->hd;
        for (int i = 0; i < c->hd; i++) {
            if (c->values == QV_KA_TIES) v[i] = (float)(qv_krng_next(r) % 31) * 0.0625f; /* (x - 0)/0.125 = k/2 */
            else v[i] = aunif(r, c->values == QV_KA_LARGE ? 16.0f : 2.0f);
        }
        if (c->values == QV_KA_TIES) v[0] = 0.0f, v[1] = 1.875f; /* mn 0, s = 1.875/15 = 0.125 exactly */
    }
}

/* ---- the emulated kernel ---- */

static size_t page_bytes(const qv_kattn_case *c) { return (size_t)c->nkv * c->page * (c->hd / 2 + 4); }

static void emul_write(const qv_kattn_case *c, uint8_t *pages, long t, const float *x)
{
    const int P = c->page, D = c->hd, H = c->nkv, slot = (int)(t % P);
    uint8_t *page = pages + (size_t)(t / P) * page_bytes(c);
    size_t codes_bytes = (size_t)H * P * (D / 2);
    for (int h = 0; h < H; h++) {
        const float *v = x + (size_t)h * D;
        float lo = r16(v[0]), hi = lo;
        for (int i = 1; i < D; i++) lo = fminf(lo, r16(v[i])), hi = fmaxf(hi, r16(v[i]));
        float sc = r16((hi - lo) / 15.0f);
        uint8_t *cd = page + ((size_t)h * P + slot) * (D / 2);
        memset(cd, 0, (size_t)D / 2);
        if (sc == 0.0f) sc = 1.0f;
        else
            for (int i = 0; i < D; i++) {
                float q = (r16(v[i]) - lo) / sc;
                int u = (int)(QV_MUT(kv4_round_away) ? roundf(q) : rintf(q));
                u = u < 0 ? 0 : u > 15 ? 15 : u;
                cd[i / 2] |= (uint8_t)(i % 2 ? u << 4 : u);
            }
        qv_fp16 s = qv_fp32_to_fp16(sc), m = qv_fp32_to_fp16(lo);
        size_t sidx = (size_t)h * P + slot;
        uint8_t *sp = page + codes_bytes + sidx * 2, *mp = page + codes_bytes + ((size_t)H * P + sidx) * 2;
        sp[0] = (uint8_t)(s & 0xff), sp[1] = (uint8_t)(s >> 8);
        mp[0] = (uint8_t)(m & 0xff), mp[1] = (uint8_t)(m >> 8);
    }
}

static void emul_read(const qv_kattn_case *c, const uint8_t *pages, long n_pages, long t, int h, float *x)
{
    const int P = c->page, D = c->hd, H = c->nkv;
    long pg = PLANT(kv_page_boundary, 4) ? (t + 1) / P : t / P;
    if (pg >= n_pages) pg = n_pages - 1;
    const uint8_t *page = pages + (size_t)pg * page_bytes(c);
    size_t codes_bytes = (size_t)H * P * (D / 2), sidx = (size_t)h * P + (size_t)(t % P);
    const uint8_t *cd = page + sidx * (D / 2), *sp = page + codes_bytes + sidx * 2,
                  *mp = page + codes_bytes + ((size_t)H * P + sidx) * 2;
    float s = qv_fp16_to_fp32((qv_fp16)(sp[0] | sp[1] << 8)), m = qv_fp16_to_fp32((qv_fp16)(mp[0] | mp[1] << 8));
    for (int i = 0; i < D; i++) {
        int u = i % 2 ? cd[i / 2] >> 4 : cd[i / 2] & 15;
        x[i] = PLANT(kv4_min_dropped, 1) ? (float)u * s : (float)u * s + m;
    }
}

/* Output rows [T][nh][hd] (FP16 values) for the last T positions of a ctx-token sequence. */
static void emul_attention(const qv_kattn_case *c, const uint8_t *kp, const uint8_t *vp, long n_pages, const float *q,
                           float *out, float *kbuf, float *vbuf, float *sbuf)
{
    const int nh = c->nh, nkv = c->nkv, hd = c->hd, ctx = c->ctx, group = nh / nkv;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int i = 0; i < c->T; i++) {
        int pos = ctx - c->T + i, last = pos;
        if (PLANT(causal_off_by_one, 3) && pos + 1 < ctx) last = pos + 1;
        for (int h = 0; h < nh; h++) {
            int kvh = PLANT(gqa_map, 2) ? h % nkv : h / group;
            const float *qh = q + ((size_t)i * nh + h) * hd;
            float mx = -INFINITY;
            for (int j = 0; j <= last; j++) {
                emul_read(c, kp, n_pages, j, kvh, kbuf);
                float d = 0;
                for (int e = 0; e < hd; e++) d += qh[e] * kbuf[e];
                sbuf[j] = d * scale;
                mx = fmaxf(mx, sbuf[j]);
            }
            if (PLANT(softmax_no_max, 5)) mx = 0;
            float den = 0;
            for (int j = 0; j <= last; j++) den += sbuf[j] = expf(sbuf[j] - mx);
            float *o = out + ((size_t)i * nh + h) * hd;
            for (int e = 0; e < hd; e++) o[e] = 0;
            for (int j = 0; j <= last; j++) {
                emul_read(c, vp, n_pages, j, kvh, vbuf);
                for (int e = 0; e < hd; e++) o[e] += sbuf[j] * vbuf[e];
            }
            for (int e = 0; e < hd; e++) o[e] = r16(o[e] / den);
        }
    }
}

qv_status qv_kattn_run(const qv_kattn_case *c, qv_kbackend b, uint64_t seed, qv_kattn_result *r)
{
    memset(r, 0, sizeof *r);
    if (b == QV_KB_GPU && qv_gpu_device_count() == 0) {
        r->skipped = 1;
        return QV_OK;
    }
    if (c->nh < 1 || c->nkv < 1 || c->nh % c->nkv || c->hd < 2 || c->hd % 2 || c->ctx < 1 || c->T < 1 ||
        c->T > c->ctx || c->page < 1 || (unsigned)c->values >= QV_KA_COUNT)
        return qv_fail(QV_ERR_USAGE, "attention case: bad geometry (nh %% nkv == 0, even hd, 1 <= T <= ctx, page >= 1)");
    const int nh = c->nh, nkv = c->nkv, hd = c->hd, ctx = c->ctx, T = c->T;
    const int ctx_a = ctx / 2 + 3 > ctx ? ctx : ctx / 2 + 3; /* the first sequence in the slot */
    const long n_pages = (ctx + c->page - 1) / c->page;
    const size_t D = (size_t)nkv * hd, pb = page_bytes(c);
    qv_kv4_geom g = {nkv, hd, c->page};
    size_t pb_ref;
    QV_TRY(qv_kv4_page_bytes(g, &pb_ref));
    if (pb_ref != pb) return qv_fail(QV_ERR_INTERNAL, "attention case: page size %zu, the definition's %zu", pb, pb_ref);
    float *ka = malloc(sizeof(float) * D * ctx), *va = malloc(sizeof(float) * D * ctx);
    float *kb = malloc(sizeof(float) * D * ctx), *vb = malloc(sizeof(float) * D * ctx);
    float *q = malloc(sizeof(float) * (size_t)T * nh * hd), *out = malloc(sizeof(float) * (size_t)T * nh * hd);
    float *kd = malloc(sizeof(float) * D * ctx), *vd = malloc(sizeof(float) * D * ctx);
    float *kmag = malloc(sizeof(float) * D * ctx), *vmag = malloc(sizeof(float) * D * ctx);
    float *tmp = malloc(sizeof(float) * (size_t)(hd * 2 + ctx));
    uint8_t *kp = calloc((size_t)n_pages, pb), *vp = calloc((size_t)n_pages, pb);
    uint8_t *kpr = calloc((size_t)n_pages, pb), *vpr = calloc((size_t)n_pages, pb);
    double *ro = malloc(sizeof(double) * (size_t)nh * hd * 2);
    qv_status st = QV_OK;
    if (!ka || !va || !kb || !vb || !q || !out || !kd || !vd || !kmag || !vmag || !tmp || !kp || !vp || !kpr || !vpr || !ro)
        st = qv_fail(QV_ERR_NOMEM, "attention case: out of memory");
    if (st == QV_OK) {
        qv_krng rg = {seed};
        for (int t = 0; t < ctx_a; t++) draw_kv(c, &rg, ka + t * D), draw_kv(c, &rg, va + t * D);
        for (int t = 0; t < ctx; t++) draw_kv(c, &rg, kb + t * D), draw_kv(c, &rg, vb + t * D);
        for (size_t i = 0; i < (size_t)T * nh * hd; i++) q[i] = aunif(&rg, c->values == QV_KA_LARGE ? 16.0f : 2.0f);
        if (b == QV_KB_GPU) {
            st = qv_kattn_run_gpu(c, ctx_a, ka, va, kb, vb, q, kp, vp, out);
        } else {
            /* the emulated kernel: sequence A fills the slot, then sequence B reuses it */
            for (int t = 0; t < ctx_a; t++) emul_write(c, kp, t, ka + t * D), emul_write(c, vp, t, va + t * D);
            int start = QV_MUT(stale_kv) ? ctx_a : 0; /* mutant: the slot's length is not reset */
            for (int t = start; t < ctx; t++) emul_write(c, kp, t, kb + t * D), emul_write(c, vp, t, vb + t * D);
            emul_attention(c, kp, vp, n_pages, q, out, tmp, tmp + hd, tmp + 2 * hd);
        }
        /* the definition: pages of B through qv_kv4_write_token, K/V read back */
        for (int t = 0; t < ctx && st == QV_OK; t++) {
            st = qv_kv4_write_token(kpr, n_pages, g, t, kb + t * D, 0);
            if (st == QV_OK) st = qv_kv4_write_token(vpr, n_pages, g, t, vb + t * D, 0);
            if (st == QV_OK) st = qv_kv4_read_token(kpr, n_pages, g, t, kd + t * D, 0);
            if (st == QV_OK) st = qv_kv4_read_token(vpr, n_pages, g, t, vd + t * D, 0);
        }
    }
    if (st == QV_OK) {
        /* KV4 pages bit for bit (only the slots of B's tokens: the tail of the last page is unused) */
        for (int t = 0; t < ctx; t++)
            for (int h = 0; h < nkv; h++) {
                size_t off = (size_t)(t / c->page) * pb, sidx = (size_t)h * c->page + (size_t)(t % c->page);
                size_t cb = (size_t)nkv * c->page * (hd / 2);
                int bad = memcmp(kp + off + sidx * (hd / 2), kpr + off + sidx * (hd / 2), (size_t)hd / 2) ||
                          memcmp(vp + off + sidx * (hd / 2), vpr + off + sidx * (hd / 2), (size_t)hd / 2) ||
                          memcmp(kp + off + cb + sidx * 2, kpr + off + cb + sidx * 2, 2) ||
                          memcmp(vp + off + cb + sidx * 2, vpr + off + cb + sidx * 2, 2) ||
                          memcmp(kp + off + cb + ((size_t)nkv * c->page + sidx) * 2, kpr + off + cb + ((size_t)nkv * c->page + sidx) * 2, 2) ||
                          memcmp(vp + off + cb + ((size_t)nkv * c->page + sidx) * 2, vpr + off + cb + ((size_t)nkv * c->page + sidx) * 2, 2);
                if (bad) r->code_mismatch++;
            }
        /* the GPU's tensor-core KV4 kernel has its own error model (magnitudes u*s + |mn|) */
        qv_gpu_attn_args ga = {.R = T, .nh = nh};
        qv_gpu_kv_cache gc = {QV_KV_FMT_KV4, nkv, hd, c->page, (int)n_pages, NULL, NULL};
        qv_attn_err_model em, *emp = NULL;
        if (b == QV_KB_GPU && qv_gpu_attention_uses_mma(&ga, &gc)) {
            qv_attn_err_model_kv4_mma(hd, &em);
            em.Kmag = kmag, em.Vmag = vmag, emp = &em;
            for (int t = 0; t < ctx && st == QV_OK; t++) {
                st = qv_kv4_read_token_mag(kpr, n_pages, g, t, kmag + t * D);
                if (st == QV_OK) st = qv_kv4_read_token_mag(vpr, n_pages, g, t, vmag + t * D);
            }
        }
        double se = 0, ss = 0;
        for (int i = 0; i < T && st == QV_OK; i++) {
            int pos = ctx - T + i;
            qv_ref_attention_row_m(q + (size_t)i * nh * hd, kd, vd, pos + 1, nh, nkv, hd, 1.0f / sqrtf((float)hd), emp, ro,
                                   ro + (size_t)nh * hd);
            for (int e = 0; e < nh * hd; e++) {
                double got = out[(size_t)i * nh * hd + e], err = fabs(got - ro[e]), b = ro[(size_t)nh * hd + e];
                if (!isfinite(got)) r->nonfinite++;
                if (!(err <= b)) r->out_bad++;
                if (isfinite(err) && b > 0 && err / b > r->worst_ratio) r->worst_ratio = err / b;
                if (!isfinite(err)) r->worst_ratio = INFINITY;
                se += err * err, ss += ro[e] * ro[e];
            }
        }
        /* the aggregate check beside the element bounds (docs/bounds.md "NMSE ceiling"): the FP16
         * output rounding alone gives NMSE <= 2^-22; a kernel whose arithmetic is far below the
         * rounding, as both attention kernels' is, stays under it, while a precision bug inside
         * the (worst-case, loose) element bound of the tensor-core kernel does not */
        r->nmse = ss > 0 ? se / ss : 0;
        int nmse_over = !(r->nmse <= ldexp(1.0, -22));
        r->ok = r->code_mismatch == 0 && r->out_bad == 0 && r->nonfinite == 0 && !nmse_over;
    }
    free(ka); free(va); free(kb); free(vb); free(q); free(out); free(kd); free(vd); free(kmag); free(vmag); free(tmp);
    free(kp); free(vp); free(kpr); free(vpr); free(ro);
    return st;
}
