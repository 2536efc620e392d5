/* The GPU engines behind the engine interface (include/qvet/engine.h):
 *
 *   gpu-fp16  FP16 weights and activations: cuBLAS GEMMs (FP16 in, FP32 compute, FP16 out), the
 *             fused FP16 RMSNorm / SiLU·mul kernels, RoPE + FP16 paged cache, paged attention.
 *             opts.dtype BF16 (--dtype bf16): the same pipeline with BF16 in place of FP16
 *             everywhere (weights rounded RNE at open, every FP16 rounding point below rounds to
 *             BF16, BF16 KV pages, cuBLAS CUDA_R_16BF with FP32 compute).
 *   gpu-qoq   the production W4A8KV4 pipeline: fused RMSNorm+A8 -> W4A8 (g128 / per-channel) or
 *             W8A8 GEMM -> RoPE + KV4 (or KV16) paged cache -> paged attention (kv4 / serve) ->
 *             A8 of the heads -> o_proj -> residual -> RMSNorm+A8 -> gate|up -> SiLU·mul+A8 -> down.
 *
 * Read top to bottom: weights (uploaded once at open), the paged KV cache, scratch, capture, then
 * forward(), which follows ref-fp32's forward (ref/fp32/ref_fp32.c) step by step:
 *   h   = x + o_proj(attn(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1)))   n1 = rmsnorm(x)
 *   out = h + down_proj(silu(gate_proj(n2)) * up_proj(n2))                   n2 = rmsnorm(h)
 *   logits = lm_head(rmsnorm(x_last))
 * Differences in form, not in the model: q|k|v and gate|up are one GEMM each (weights
 * concatenated along the output dimension at open: every output element is the same dot product),
 * and each step is a kernel on the device (all calls on the default stream, so in order).
 *
 * FP16 rounding points are ref-qoq's (docs/numerics-qvet.md; ref/qoq_engine/ref_qoq.c) in both
 * engines: linear outputs, q / k (after RoPE) / v, attention heads, the residual stream after each
 * add (held as FP32 numbers that are FP16 values), the final-norm output; the LM head is an FP16
 * GEMM with FP32 accumulation and FP32 logits. gpu-qoq's A8 inputs are the FP32 RMSNorm / SiLU·mul
 * values (fused producers) and the FP16 attention heads, exactly where ref-qoq quantizes, so the
 * two differ only by summation order (RMSNorm's FP64 sum, attention, LM head) and expf, and the
 * A8 code ties those cause (docs/bounds.md, "GPU engines"). gpu-fp16 is ref-qoq with every layer in
 * fp_weights and fp_kv (the FP16-GEMM emulation), up to the same orders.
 *
 * Not supported (QV_ERR_UNSUPPORTED at open): gpu-qoq's fp_weights / fp_acts ablations and
 * qserve_compat (ref-qoq has them); head_dim other than 32/64/128, GQA groups outside
 * {1,2,3,4,8} (the attention kernel's instantiations).
 * Stats: flops are counted; gemm/attn seconds are not (the calls are asynchronous: timing them
 * would need a synchronization per GEMM); forward_seconds (the common part) is wall time, which
 * includes the final logits download. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_ops.h"
#include "qvet/engine.h"
#include "qvet/fp16.h"
#include "qvet/gpu.h"
#include "qvet/gpu_gemm.h"
#include "qvet/gpu_kernels.h"
#include "qvet/gpu_mem.h"
#include "qvet/kernels_ref.h"
#include "qvet/qmodel.h"
#include "qvet/qoq.h"

/* The four GEMMs of a block after fusion. */
enum { L_QKV = 0, L_O, L_GU, L_DOWN, L_COUNT };

typedef struct { /* one quantized (fused) linear on the device, formats of include/qvet/gpu_gemm.h */
    qv_qformat fmt;
    int N, K;
    uint8_t *w;          /* W4 packed codes, or W8 [N][K] */
    uint16_t *s0;        /* g128 level-1 scale [N] */
    uint8_t *s1, *sz1;   /* g128 packed group bytes */
    uint16_t *sw, *sz;   /* chn: s_w, sz; w8a8: s_w */
} qlin;

typedef struct {
    uint16_t *w16[L_COUNT]; /* gpu-fp16: FP16 [N][K] */
    qlin q[L_COUNT];        /* gpu-qoq */
    float *bias[L_COUNT];   /* FP32 [N] (qkv, o only), NULL when the model has none */
    float *input_norm, *post_norm;
} glayer;

typedef struct {
    qv_engine base; /* first: the common part */
    int qoq;
    qv_dtype16 dt; /* the 16-bit type of weights, activations and the 16-bit KV cache (gpu-qoq: FP16) */
    const char *tag;
    qv_config c;
    int H, I, nh, nkv, hd, V, L, Dq, Dkv;
    qv_qmodel *qm; /* gpu-qoq: owned */
    uint16_t *embed, *lm_head; /* lm_head == embed when tied */
    float *final_norm;
    glayer *layers;
    float *cos_t, *sin_t; /* [max_pos][hd/2] */
    void *blas;
    unsigned int *d_sat;
    int *d_flag;
    /* paged KV cache: page ids are shared by all layers (page p of layer l lives in pool[l]) */
    qv_kv_fmt kv_fmt;
    int P, max_pages, pool_pages;
    size_t page_bytes;
    uint8_t **pool;        /* [L] */
    int *free_pages, n_free;
    int32_t *pt_host, *pt_dev; /* [max_seqs][max_pages] */
    int pt_dirty;
    int *seq_pages;        /* [max_seqs] pages held */
    /* scratch */
    void *scr;
    size_t scr_cap;
    void *ws;
    size_t ws_cap;
    void *host;
    size_t host_cap;
} gpu_eng;

/* ---------------------------------------------------------------- weights */

static qv_status shape_ok(const gpu_eng *e, const qv_tensor *t, const char *what, int layer, int64_t d0, int64_t d1)
{
    if (!t->data) return qv_fail(QV_ERR_INPUT, "%s: layer %d: tensor %s missing", e->tag, layer, what);
    int ok = d1 ? (t->ndim == 2 && t->shape[0] == d0 && t->shape[1] == d1) : (t->ndim == 1 && t->shape[0] == d0);
    if (ok) return QV_OK;
    char buf[96];
    return qv_fail(QV_ERR_INPUT, "%s: layer %d: tensor %s has shape %s, expected [%lld%s%lld]", e->tag, layer, what,
                   qv_shape_str(t, buf, sizeof buf), (long long)d0, d1 ? ", " : "", d1 ? (long long)d1 : 0LL);
}

/* Host FP32 copy of a model tensor (checked shape). */
static qv_status host_f32(const gpu_eng *e, const qv_tensor *t, const char *what, int layer, int64_t d0, int64_t d1,
                          float **out)
{
    *out = NULL;
    QV_TRY(shape_ok(e, t, what, layer, d0, d1));
    size_t n = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    if (!(*out = qv_malloc(n * sizeof(float)))) return qv_fail(QV_ERR_NOMEM, "%s: no memory for %s", e->tag, what);
    qv_status st = qv_tensor_to_f32(t, *out);
    if (st != QV_OK) {
        free(*out);
        *out = NULL;
        return qv_fail_prefix(st, "%s: layer %d: tensor %s", e->tag, layer, what);
    }
    return QV_OK;
}

static qv_status upload_f32(float **dst, const float *src, size_t n, const char *what)
{
    QV_TRY(qv_gpu_alloc((void **)dst, n * sizeof(float), what));
    return qv_gpu_upload(*dst, src, n * sizeof(float));
}

/* Concatenates tensors [d0_i, K] (rows) into one 16-bit (e->dt, RNE) device matrix: the fused weight. */
static qv_status upload_f16_rows(gpu_eng *e, const qv_tensor *const *t, const char *const *what, const int *d0, int n,
                                 int K, int layer, uint16_t **dst)
{
    size_t rows = 0;
    for (int i = 0; i < n; i++) rows += (size_t)d0[i];
    uint16_t *h = qv_malloc(rows * (size_t)K * sizeof(uint16_t));
    if (!h) return qv_fail(QV_ERR_NOMEM, "%s: no memory for %s", e->tag, what[0]);
    qv_status st = QV_OK;
    size_t off = 0;
    for (int i = 0; i < n && st == QV_OK; i++) {
        float *f;
        st = host_f32(e, t[i], what[i], layer, d0[i], K, &f);
        if (st != QV_OK) break;
        size_t m = (size_t)d0[i] * (size_t)K;
        for (size_t j = 0; j < m; j++) h[off + j] = qv_fp32_to_dtype16(e->dt, f[j]);
        off += m;
        free(f);
    }
    if (st == QV_OK) st = qv_gpu_alloc((void **)dst, rows * (size_t)K * 2, what[0]);
    if (st == QV_OK) st = qv_gpu_upload(*dst, h, rows * (size_t)K * 2);
    free(h);
    return st;
}

/* Concatenated biases (FP32 values), or NULL on the device when no part has one. */
static qv_status upload_bias(gpu_eng *e, const float *const *b, const int *N, int n, float **dst)
{
    int any = 0, tot = 0;
    for (int i = 0; i < n; i++) any |= b[i] != NULL, tot += N[i];
    *dst = NULL;
    if (!any) return QV_OK;
    float *h = qv_calloc((size_t)tot, sizeof(float));
    if (!h) return qv_fail(QV_ERR_NOMEM, "%s: no memory for a bias", e->tag);
    for (int i = 0, off = 0; i < n; off += N[i], i++)
        if (b[i]) memcpy(h + off, b[i], sizeof(float) * (size_t)N[i]);
    qv_status st = upload_f32(dst, h, (size_t)tot, "bias");
    free(h);
    return st;
}

static qv_status upload_bytes(void **dst, const void *src, size_t n, const char *what)
{
    QV_TRY(qv_gpu_alloc(dst, n, what));
    return qv_gpu_upload(*dst, src, n);
}

/* Fuses quantized linears along N (q|k|v, gate|up): their logical arrays (codes [N][K], group bytes
 * [N][K/128], per-channel scales) are concatenated and packed again, so the fused GEMM computes
 * exactly the separate GEMMs' outputs side by side. */
static qv_status upload_qlin(gpu_eng *e, const qv_qlinear *const *p, int n, int layer, qlin *out)
{
    int K = p[0]->K, N = 0, G = K / QV_QOQ_GROUP;
    qv_qformat fmt = p[0]->fmt;
    for (int i = 0; i < n; i++) {
        if (p[i]->K != K || p[i]->fmt != fmt)
            return qv_fail(QV_ERR_INPUT, "%s: layer %d: %s is %s with K %d, %s is %s with K %d: cannot fuse", e->tag,
                           layer, qv_qlinear_module(QV_QL_Q), qv_qformat_name(fmt), K, "another part",
                           qv_qformat_name(p[i]->fmt), p[i]->K);
        N += p[i]->N;
    }
    out->fmt = fmt, out->N = N, out->K = K;
    size_t NK = (size_t)N * (size_t)K, NG = (size_t)N * (size_t)G;
    uint8_t *u = qv_malloc(NK), *pk = qv_malloc(NK), *g1 = qv_malloc(NG + 1), *g2 = qv_malloc(NG + 1),
            *pg = qv_malloc(NG + 1);
    uint16_t *a = qv_malloc(sizeof(uint16_t) * (size_t)N), *b = qv_malloc(sizeof(uint16_t) * (size_t)N);
    qv_status st = (u && pk && g1 && g2 && pg && a && b) ? QV_OK : qv_fail(QV_ERR_NOMEM, "%s: no memory to fuse", e->tag);
    size_t off = 0;
    for (int i = 0; i < n && st == QV_OK; i++) {
        const qv_qlinear *l = p[i];
        size_t nk = (size_t)l->N * (size_t)K, ng = (size_t)l->N * (size_t)G, o = off / (size_t)K;
        if (fmt == QV_QFMT_W8A8) {
            memcpy(u + off, l->qweight, nk);
            memcpy(a + o, l->scale, sizeof(uint16_t) * (size_t)l->N);
        } else {
            st = qv_qlinear_unpack(l, u + off, fmt == QV_QFMT_W4A8_G128 ? g1 + o * G : NULL,
                                   fmt == QV_QFMT_W4A8_G128 ? g2 + o * G : NULL);
            if (fmt == QV_QFMT_W4A8_G128) {
                memcpy(a + o, l->s0, sizeof(uint16_t) * (size_t)l->N);
            } else {
                memcpy(a + o, l->scale, sizeof(uint16_t) * (size_t)l->N);
                memcpy(b + o, l->szero, sizeof(uint16_t) * (size_t)l->N);
            }
        }
        (void)ng;
        off += nk;
    }
    if (st == QV_OK) {
        if (fmt == QV_QFMT_W8A8) {
            st = upload_bytes((void **)&out->w, u, NK, "w8");
            if (st == QV_OK) st = upload_bytes((void **)&out->sw, a, (size_t)N * 2, "s_w");
        } else {
            st = qv_w4_pack(u, N, K, pk);
            if (st == QV_OK) st = upload_bytes((void **)&out->w, pk, NK / 2, "w4");
            if (st == QV_OK && fmt == QV_QFMT_W4A8_G128) {
                st = upload_bytes((void **)&out->s0, a, (size_t)N * 2, "s0");
                if (st == QV_OK) st = qv_w4g128_pack_groupbytes(g1, N, K, pg);
                if (st == QV_OK) st = upload_bytes((void **)&out->s1, pg, NG, "s1");
                if (st == QV_OK) st = qv_w4g128_pack_groupbytes(g2, N, K, pg);
                if (st == QV_OK) st = upload_bytes((void **)&out->sz1, pg, NG, "sz1");
            } else if (st == QV_OK) {
                st = upload_bytes((void **)&out->sw, a, (size_t)N * 2, "s_w");
                if (st == QV_OK) st = upload_bytes((void **)&out->sz, b, (size_t)N * 2, "sz");
            }
        }
    }
    free(u), free(pk), free(g1), free(g2), free(pg), free(a), free(b);
    if (st != QV_OK) return qv_fail_prefix(st, "%s: layer %d", e->tag, layer);
    return QV_OK;
}

static qv_status load_weights(gpu_eng *e, const qv_model *m)
{
    int H = e->H, I = e->I, Dq = e->Dq, Dkv = e->Dkv;
    float *f = NULL;
    {
        const qv_tensor *t[] = {&m->embed};
        const char *w[] = {"embed_tokens"};
        int d0[] = {e->V};
        QV_TRY(upload_f16_rows(e, t, w, d0, 1, H, -1, &e->embed));
        if (m->lm_head.data == m->embed.data) {
            e->lm_head = e->embed; /* tied */
        } else {
            const qv_tensor *t2[] = {&m->lm_head};
            const char *w2[] = {"lm_head"};
            QV_TRY(upload_f16_rows(e, t2, w2, d0, 1, H, -1, &e->lm_head));
        }
    }
    QV_TRY(host_f32(e, &m->final_norm, "norm", -1, H, 0, &f));
    qv_status st = upload_f32(&e->final_norm, f, (size_t)H, "final norm");
    free(f);
    QV_TRY(st);
    if (!(e->layers = qv_calloc((size_t)e->L, sizeof(glayer)))) return QV_ERR_NOMEM;
    for (int l = 0; l < e->L; l++) {
        const qv_layer_weights *s = &m->layers[l];
        glayer *g = &e->layers[l];
        QV_TRY(host_f32(e, &s->input_norm, "input_layernorm", l, H, 0, &f));
        st = upload_f32(&g->input_norm, f, (size_t)H, "norm");
        free(f);
        QV_TRY(st);
        QV_TRY(host_f32(e, &s->post_norm, "post_attention_layernorm", l, H, 0, &f));
        st = upload_f32(&g->post_norm, f, (size_t)H, "norm");
        free(f);
        QV_TRY(st);
        int nqkv[] = {Dq, Dkv, Dkv}, no[] = {H}, ngu[] = {I, I}, nd[] = {H};
        if (e->qoq) {
            qv_qlinear *ql = &e->qm->lin[(size_t)l * QV_QL_COUNT];
            const qv_qlinear *qkv[] = {&ql[QV_QL_Q], &ql[QV_QL_K], &ql[QV_QL_V]}, *o[] = {&ql[QV_QL_O]},
                             *gu[] = {&ql[QV_QL_GATE], &ql[QV_QL_UP]}, *d[] = {&ql[QV_QL_DOWN]};
            QV_TRY(upload_qlin(e, qkv, 3, l, &g->q[L_QKV]));
            QV_TRY(upload_qlin(e, o, 1, l, &g->q[L_O]));
            QV_TRY(upload_qlin(e, gu, 2, l, &g->q[L_GU]));
            QV_TRY(upload_qlin(e, d, 1, l, &g->q[L_DOWN]));
            const float *bq[] = {ql[QV_QL_Q].bias, ql[QV_QL_K].bias, ql[QV_QL_V].bias}, *bo[] = {ql[QV_QL_O].bias};
            QV_TRY(upload_bias(e, bq, nqkv, 3, &g->bias[L_QKV]));
            QV_TRY(upload_bias(e, bo, no, 1, &g->bias[L_O]));
            continue;
        }
        const qv_tensor *tq[] = {&s->wq, &s->wk, &s->wv}, *to[] = {&s->wo}, *tg[] = {&s->w_gate, &s->w_up},
                        *td[] = {&s->w_down};
        const char *wq[] = {"q_proj", "k_proj", "v_proj"}, *wo[] = {"o_proj"}, *wg[] = {"gate_proj", "up_proj"},
                   *wd[] = {"down_proj"};
        QV_TRY(upload_f16_rows(e, tq, wq, nqkv, 3, H, l, &g->w16[L_QKV]));
        QV_TRY(upload_f16_rows(e, to, wo, no, 1, Dq, l, &g->w16[L_O]));
        QV_TRY(upload_f16_rows(e, tg, wg, ngu, 2, H, l, &g->w16[L_GU]));
        QV_TRY(upload_f16_rows(e, td, wd, nd, 1, I, l, &g->w16[L_DOWN]));
        /* biases: 16-bit (FP16 or BF16) values as FP32, as ref-qoq keeps them (FP16) */
        const qv_tensor *bt[] = {&s->bq, &s->bk, &s->bv, &s->bo};
        const char *bw[] = {"q_proj.bias", "k_proj.bias", "v_proj.bias", "o_proj.bias"};
        int bn[] = {Dq, Dkv, Dkv, H};
        float *bh[4] = {NULL, NULL, NULL, NULL};
        st = QV_OK;
        for (int i = 0; i < 4 && st == QV_OK; i++)
            if (bt[i]->data) {
                st = host_f32(e, bt[i], bw[i], l, bn[i], 0, &bh[i]);
                for (int j = 0; st == QV_OK && j < bn[i]; j++)
                    bh[i][j] = qv_dtype16_to_fp32(e->dt, qv_fp32_to_dtype16(e->dt, bh[i][j]));
            }
        if (st == QV_OK) st = upload_bias(e, (const float *const *)bh, nqkv, 3, &g->bias[L_QKV]);
        if (st == QV_OK) st = upload_bias(e, (const float *const *)(bh + 3), no, 1, &g->bias[L_O]);
        for (int i = 0; i < 4; i++) free(bh[i]);
        QV_TRY(st);
    }
    return QV_OK;
}

static void free_qlin(qlin *q)
{
    void *p[] = {q->w, q->s0, q->s1, q->sz1, q->sw, q->sz};
    for (int i = 0; i < 6; i++) qv_gpu_free(p[i]);
}

/* ---------------------------------------------------------------- paged KV cache */

/* Grows every layer's pool to `n` pages (copying the pages in use) and frees the new ids. */
static qv_status pool_grow(gpu_eng *e, int n)
{
    size_t old = (size_t)e->pool_pages * 2 * e->page_bytes, nb = (size_t)n * 2 * e->page_bytes;
    int *fl = realloc(e->free_pages, sizeof(int) * (size_t)n);
    if (!fl) return QV_ERR_NOMEM;
    e->free_pages = fl;
    for (int l = 0; l < e->L; l++) {
        uint8_t *p;
        qv_status st = qv_gpu_alloc((void **)&p, nb, "KV cache pages");
        if (st != QV_OK) return qv_fail_prefix(st, "%s: KV cache of %d pages (%zu bytes per layer)", e->tag, n, nb);
        if (old) QV_TRY(qv_gpu_copy_d2d(p, e->pool[l], old));
        qv_gpu_free(e->pool[l]);
        e->pool[l] = p;
    }
    for (int i = n - 1; i >= e->pool_pages; i--) e->free_pages[e->n_free++] = i; /* low ids first */
    e->pool_pages = n;
    return QV_OK;
}

/* Pages so that positions 0 .. tokens-1 of the slot are mapped. */
static qv_status pages_reserve(gpu_eng *e, int slot, int tokens)
{
    int need = (tokens + e->P - 1) / e->P;
    while (e->seq_pages[slot] < need) {
        if (!e->n_free) QV_TRY(pool_grow(e, e->pool_pages ? 2 * e->pool_pages : 64));
        e->pt_host[(size_t)slot * e->max_pages + e->seq_pages[slot]++] = e->free_pages[--e->n_free];
        e->pt_dirty = 1;
    }
    return QV_OK;
}

static void seq_release(qv_engine *base, int slot)
{
    gpu_eng *e = (gpu_eng *)base;
    for (int j = e->seq_pages[slot] - 1; j >= 0; j--)
        e->free_pages[e->n_free++] = e->pt_host[(size_t)slot * e->max_pages + j];
    e->seq_pages[slot] = 0;
}

/* A fresh sequence holds no pages; the length (common part) makes old entries unreachable. */
static qv_status seq_init(qv_engine *base, int slot)
{
    seq_release(base, slot);
    return QV_OK;
}

/* ---------------------------------------------------------------- scratch */

/* Device scratch of a batch of T tokens, carved from one allocation (256-byte aligned pieces). */
typedef struct {
    int32_t *tok, *pos, *slot, *rslot, *rctx, *rfs, *rfi, *orow;
    float *x, *xo, *sa, *logits;
    int32_t *rs;
    int8_t *qa;
    uint16_t *a16, *qkv, *q, *k, *v, *att, *tmp, *gu;
} scratch;

static size_t carve(char *base, size_t *off, size_t bytes, void **p)
{
    *off = (*off + 255) & ~(size_t)255;
    if (base) *p = base + *off;
    *off += bytes;
    return *off;
}

static size_t layout(const gpu_eng *e, int T, int R, char *base, scratch *s)
{
    size_t o = 0, t = (size_t)T, wide = (size_t)e->H;
    if ((size_t)e->Dq > wide) wide = (size_t)e->Dq;
    if ((size_t)e->I > wide) wide = (size_t)e->I;
    int32_t **ints[] = {&s->tok, &s->pos, &s->slot, &s->rslot, &s->rctx, &s->rfs, &s->rfi, &s->orow};
    for (int i = 0; i < 8; i++) carve(base, &o, t * 4, (void **)ints[i]);
    carve(base, &o, t * e->H * 4, (void **)&s->x);
    carve(base, &o, (size_t)R * e->H * 4, (void **)&s->xo);
    carve(base, &o, t * 4, (void **)&s->sa);
    carve(base, &o, t * 4, (void **)&s->rs);
    carve(base, &o, (size_t)R * e->V * 4, (void **)&s->logits);
    carve(base, &o, t * wide, (void **)&s->qa);
    carve(base, &o, t * wide * 2, (void **)&s->a16);
    carve(base, &o, t * (size_t)(e->Dq + 2 * e->Dkv) * 2, (void **)&s->qkv);
    carve(base, &o, t * e->Dq * 2, (void **)&s->q);
    carve(base, &o, t * e->Dkv * 2, (void **)&s->k);
    carve(base, &o, t * e->Dkv * 2, (void **)&s->v);
    carve(base, &o, t * e->Dq * 2, (void **)&s->att);
    carve(base, &o, t * e->H * 2, (void **)&s->tmp);
    return carve(base, &o, t * (size_t)e->I * 4, (void **)&s->gu);
}

static qv_status dev_reserve(void **p, size_t *cap, size_t need, const char *what)
{
    if (need <= *cap) return QV_OK;
    qv_gpu_free(*p);
    *p = NULL;
    *cap = 0;
    QV_TRY(qv_gpu_alloc(p, need, what));
    *cap = need;
    return QV_OK;
}

static void *host_scratch(gpu_eng *e, size_t need)
{
    if (need > e->host_cap) {
        void *p = realloc(e->host, need);
        if (!p) return NULL;
        e->host = p;
        e->host_cap = need;
    }
    return e->host;
}

/* ---------------------------------------------------------------- capture */

/* Downloads x (T rows of d1 (* d2) values; FP16 or FP32) as FP32 and calls the callback once per
 * sequence. Only when the kind is captured: otherwise nothing leaves the device. */
static qv_status emit(gpu_eng *e, const qv_engine_batch *b, qv_capture_kind kind, int layer, const void *x, int f16,
                      int T, int64_t d1, int64_t d2)
{
    if (!(e->base.capture_mask & (1u << kind))) return QV_OK;
    int64_t row = d1 * (d2 ? d2 : 1), off = 0;
    size_t n = (size_t)T * (size_t)row;
    float *h = host_scratch(e, n * (sizeof(float) + 2));
    if (!h) return qv_fail(QV_ERR_NOMEM, "%s: no memory to capture %s", e->tag, qv_capture_kind_name(kind));
    if (f16) { /* 16-bit: e->dt */
        uint16_t *h16 = (uint16_t *)(h + n);
        QV_TRY(qv_gpu_download(h16, x, n * 2));
        if (e->dt == QV_DTYPE_BF16) qv_bf16_to_fp32_n(h16, h, (long)n);
        else qv_fp16_to_fp32_n(h16, h, (long)n);
    } else {
        QV_TRY(qv_gpu_download(h, x, n * sizeof(float)));
    }
    for (int i = 0; i < b->n_seqs; i++) {
        qv_capture_point p = {layer, kind, b->seqs[i], b->start[i], b->n_tokens[i], d2 ? 3 : 2,
                              {b->n_tokens[i], d1, d2}, h + off * row};
        e->base.capture(e->base.capture_user, &p);
        off += b->n_tokens[i];
    }
    return QV_OK;
}

/* ---------------------------------------------------------------- forward */

/* The 16-bit producers of e->dt (gpu/fused_f16.cu). */
static qv_status rmsnorm16(const gpu_eng *e, const float *x, const float *w, float eps, int M, int K, uint16_t *y)
{
    return e->dt == QV_DTYPE_BF16 ? qv_gpu_rmsnorm_bf16(x, w, eps, M, K, y, NULL)
                                  : qv_gpu_rmsnorm_f16(x, w, eps, M, K, y, NULL);
}

static qv_status silu_mul16(const gpu_eng *e, const uint16_t *gu, int M, int I, uint16_t *y)
{
    return e->dt == QV_DTYPE_BF16 ? qv_gpu_silu_mul_bf16(gu, M, I, y, NULL) : qv_gpu_silu_mul_f16(gu, M, I, y, NULL);
}

/* y16[M, N] = linear `id` of layer l on the block's input: gpu-qoq takes the A8 codes (qa, sa,
 * rs), gpu-fp16 the 16-bit activations a16. Bias (qkv, o): FP32 add, one 16-bit rounding. */
static qv_status linear(gpu_eng *e, int l, int id, const scratch *s, const uint16_t *a16, int M, uint16_t *y)
{
    glayer *g = &e->layers[l];
    int N, K;
    if (e->qoq) {
        const qlin *q = &g->q[id];
        N = q->N, K = q->K;
        qv_status st;
        if (q->fmt == QV_QFMT_W4A8_G128)
            st = qv_gpu_w4a8_g128_gemm(s->qa, s->sa, q->w, q->s0, q->s1, q->sz1, y, e->d_sat, M, N, K, QV_QOQ_GROUP, NULL);
        else if (q->fmt == QV_QFMT_W4A8_CHN)
            st = qv_gpu_w4a8_chn_gemm(s->qa, s->sa, s->rs, q->w, q->sw, q->sz, y, e->d_sat, M, N, K, NULL);
        else
            st = qv_gpu_w8a8_gemm(s->qa, s->sa, (const int8_t *)q->w, q->sw, y, e->d_sat, M, N, K, NULL);
        if (st != QV_OK) return qv_fail_prefix(st, "%s: layer %d GEMM %d (%s)", e->tag, l, id, qv_qformat_name(q->fmt));
    } else {
        int Nqkv = e->Dq + 2 * e->Dkv;
        N = id == L_QKV ? Nqkv : id == L_O ? e->H : id == L_GU ? 2 * e->I : e->H;
        K = id == L_O ? e->Dq : id == L_DOWN ? e->I : e->H;
        QV_TRY(qv_gpu_gemm_f16(e->blas, e->dt, a16, g->w16[id], M, N, K, y, 0));
    }
    e->base.stats.gemm_flops += 2.0 * M * (double)N * K;
    if (g->bias[id]) QV_TRY(qv_gpu_bias_add(e->dt, y, g->bias[id], M, N));
    return QV_OK;
}

static qv_status forward(qv_engine *base, const qv_engine_batch *b, float *logits)
{
    gpu_eng *e = (gpu_eng *)base;
    int H = e->H, I = e->I, nh = e->nh, nkv = e->nkv, hd = e->hd, V = e->V, Dq = e->Dq;
    float eps = (float)e->c.rms_norm_eps;
    int T = 0, R = 0, max_ctx = 0;
    for (int i = 0; i < b->n_seqs; i++) {
        int n = b->n_tokens[i], ctx = b->start[i] + n;
        T += n;
        R += b->last_n <= 0 || b->last_n > n ? n : b->last_n;
        if (ctx > max_ctx) max_ctx = ctx;
        QV_TRY(pages_reserve(e, b->seqs[i], ctx));
    }
    if (T > 65535) return qv_fail(QV_ERR_INPUT, "%s: a batch of %d tokens (at most 65535 per call)", e->tag, T);
    if (!logits) R = 0;
    if (e->pt_dirty) {
        QV_TRY(qv_gpu_upload(e->pt_dev, e->pt_host, sizeof(int32_t) * (size_t)e->base.max_seqs * e->max_pages));
        e->pt_dirty = 0;
    }
    scratch s;
    QV_TRY(dev_reserve(&e->scr, &e->scr_cap, layout(e, T, R > 0 ? R : 1, NULL, &s), "batch scratch"));
    layout(e, T, R > 0 ? R : 1, e->scr, &s);
    size_t wsb = qv_gpu_attn_ws_bytes(T, nh, hd, max_ctx);
    QV_TRY(dev_reserve(&e->ws, &e->ws_cap, wsb, "attention workspace"));

    /* per token: id, position, cache slot; per attention row (= token): slot, causal context,
     * where its fresh K/V start (serve mode: this call's positions; else never) and its row */
    int32_t *meta = host_scratch(e, sizeof(int32_t) * 8 * (size_t)T);
    if (!meta) return QV_ERR_NOMEM;
    int serve = e->qoq && e->kv_fmt == QV_KV_FMT_KV4 && e->base.opts.attn_mode == QV_ATTN_SERVE;
    int t = 0, r = 0;
    for (int i = 0; i < b->n_seqs; i++) {
        int n = b->n_tokens[i], keep = b->last_n <= 0 || b->last_n > n ? n : b->last_n, t0 = t;
        for (int j = 0; j < n; j++, t++) {
            meta[t] = b->tokens[i][j];
            meta[T + t] = b->start[i] + j;
            meta[2 * T + t] = b->seqs[i];
            meta[3 * T + t] = b->seqs[i];
            meta[4 * T + t] = b->start[i] + j + 1;
            meta[5 * T + t] = serve ? b->start[i] : INT_MAX;
            meta[6 * T + t] = t0;
            if (j >= n - keep) meta[7 * T + r++] = t;
        }
        e->base.stats.attn_flops += 4.0 * nh * hd * (double)n * (b->start[i] + n); /* as ref-fp32 counts */
    }
    /* the eight int arrays are consecutive pieces of T*4 bytes rounded to 256: upload each */
    int32_t *dst[] = {s.tok, s.pos, s.slot, s.rslot, s.rctx, s.rfs, s.rfi, s.orow};
    for (int i = 0; i < 8; i++) QV_TRY(qv_gpu_upload(dst[i], meta + (size_t)i * T, sizeof(int32_t) * (size_t)T));
    QV_TRY(qv_gpu_upload(e->d_flag, &(int){INT_MAX}, sizeof(int)));

    /* token embeddings */
    QV_TRY(qv_gpu_embed_rows(e->dt, e->embed, s.tok, T, H, s.x));
    for (int l = 0; l < e->L; l++) {
        glayer *g = &e->layers[l];
        qv_gpu_kv_cache cache = {e->kv_fmt, nkv, hd, e->P, e->max_pages, e->pt_dev, e->pool[l]};
        QV_TRY(emit(e, b, QV_CAP_BLOCK_INPUT, l, s.x, 0, T, H, 0));

        /* attention block: n1 = rmsnorm(x) (A8 codes or 16-bit), q|k|v, RoPE + cache write */
        if (e->qoq) QV_TRY(qv_gpu_rmsnorm_a8(s.x, g->input_norm, eps, T, H, s.qa, s.sa, s.rs, NULL));
        else QV_TRY(rmsnorm16(e, s.x, g->input_norm, eps, T, H, s.a16));
        QV_TRY(linear(e, l, L_QKV, &s, s.a16, T, s.qkv));
        QV_TRY(qv_gpu_rope_kv_write(s.qkv, T, nh, s.pos, s.slot, e->cos_t, e->sin_t, s.q, s.k, s.v, &cache, NULL));
        QV_TRY(emit(e, b, QV_CAP_Q, l, s.q, 1, T, nh, hd));
        QV_TRY(emit(e, b, QV_CAP_K, l, s.k, 1, T, nkv, hd));
        QV_TRY(emit(e, b, QV_CAP_V, l, s.v, 1, T, nkv, hd));
        /* fresh K/V only in serve mode (NULL lets KV4 rows take the tensor-core kernel) */
        qv_gpu_attn_args a = {T, nh, s.q, s.rslot, s.rctx, s.rfs, s.rfi, serve ? s.k : NULL, serve ? s.v : NULL,
                              (float)pow((double)hd, -0.5), max_ctx, s.att, e->ws, e->ws_cap,
                              /* prefill hint: >= 2 rows per sequence on average (decode: 1) */
                              T >= 2 * b->n_seqs};
        QV_TRY(qv_gpu_attention(&a, &cache, NULL));
        QV_TRY(emit(e, b, QV_CAP_ATTN_HEADS, l, s.att, 1, T, nh, hd));
        if (e->qoq) QV_TRY(qv_gpu_quant_a8(s.att, T, Dq, s.qa, s.sa, s.rs, NULL));
        QV_TRY(linear(e, l, L_O, &s, s.att, T, s.tmp));
        QV_TRY(emit(e, b, QV_CAP_ATTN_OUT, l, s.tmp, 1, T, H, 0));
        QV_TRY(qv_gpu_residual_add(e->dt, s.x, s.tmp, (size_t)T * H, 1));

        /* MLP block: n2 = rmsnorm(h), gate|up, silu(g)*u (A8 or 16-bit), down */
        if (e->qoq) QV_TRY(qv_gpu_rmsnorm_a8(s.x, g->post_norm, eps, T, H, s.qa, s.sa, s.rs, NULL));
        else QV_TRY(rmsnorm16(e, s.x, g->post_norm, eps, T, H, s.a16));
        QV_TRY(linear(e, l, L_GU, &s, s.a16, T, s.gu));
        if (e->qoq) QV_TRY(qv_gpu_silu_mul_a8(s.gu, T, I, s.qa, s.sa, s.rs, NULL));
        else QV_TRY(silu_mul16(e, s.gu, T, I, s.a16));
        QV_TRY(linear(e, l, L_DOWN, &s, s.a16, T, s.tmp));
        QV_TRY(emit(e, b, QV_CAP_MLP_OUT, l, s.tmp, 1, T, H, 0));
        QV_TRY(qv_gpu_residual_add(e->dt, s.x, s.tmp, (size_t)T * H, 1));
        QV_TRY(qv_gpu_flag_nonfinite(s.x, (size_t)T * H, l, e->d_flag));
        QV_TRY(emit(e, b, QV_CAP_RESIDUAL, l, s.x, 0, T, H, 0));
    }
    int flag;
    QV_TRY(qv_gpu_download(&flag, e->d_flag, sizeof flag)); /* also waits for the layers */
    if (flag != INT_MAX)
        return qv_fail(QV_ERR_CHECK, "%s: NaN or Inf produced in layer %d, tensor residual (batch of %d sequences)",
                       e->tag, flag, b->n_seqs);
    if (!logits) return QV_OK;

    /* final norm and LM head on the rows asked for (16-bit input, FP32 accumulation and logits) */
    QV_TRY(qv_gpu_gather_rows(s.x, s.orow, R, H, s.xo));
    QV_TRY(rmsnorm16(e, s.xo, e->final_norm, eps, R, H, s.a16));
    QV_TRY(qv_gpu_gemm_f16(e->blas, e->dt, s.a16, e->lm_head, R, V, H, s.logits, 1));
    e->base.stats.gemm_flops += 2.0 * R * (double)V * H;
    QV_TRY(qv_gpu_download(logits, s.logits, sizeof(float) * (size_t)R * V));
    QV_TRY(qv_gpu_sync());
    int off = 0;
    for (int i = 0; i < b->n_seqs; i++) {
        int n = b->n_tokens[i], keep = b->last_n <= 0 || b->last_n > n ? n : b->last_n;
        for (size_t j = 0; j < (size_t)keep * V; j++)
            if (!isfinite(logits[(size_t)off * V + j]))
                return qv_fail(QV_ERR_CHECK, "%s: %s produced in final, tensor logits, sequence %d, position %d (index %d)",
                               e->tag, isnan(logits[(size_t)off * V + j]) ? "NaN" : "Inf", b->seqs[i],
                               b->start[i] + n - keep + (int)(j / V), (int)(j % V));
        if (e->base.capture_mask & (1u << QV_CAP_LOGITS)) {
            qv_capture_point p = {-1, QV_CAP_LOGITS, b->seqs[i], b->start[i] + n - keep, keep, 2, {keep, V, 0},
                                  logits + (size_t)off * V};
            e->base.capture(e->base.capture_user, &p);
        }
        off += keep;
    }
    return QV_OK;
}

/* ---------------------------------------------------------------- open / close */

static void close_engine(qv_engine *base)
{
    gpu_eng *e = (gpu_eng *)base;
    for (int l = 0; e->layers && l < e->L; l++) {
        glayer *g = &e->layers[l];
        for (int i = 0; i < L_COUNT; i++) {
            qv_gpu_free(g->w16[i]);
            qv_gpu_free(g->bias[i]);
            free_qlin(&g->q[i]);
        }
        qv_gpu_free(g->input_norm);
        qv_gpu_free(g->post_norm);
    }
    free(e->layers);
    if (e->lm_head != e->embed) qv_gpu_free(e->lm_head);
    qv_gpu_free(e->embed);
    qv_gpu_free(e->final_norm);
    qv_gpu_free(e->cos_t);
    qv_gpu_free(e->sin_t);
    qv_gpu_free(e->d_sat);
    qv_gpu_free(e->d_flag);
    for (int l = 0; e->pool && l < e->L; l++) qv_gpu_free(e->pool[l]);
    free(e->pool);
    free(e->free_pages);
    free(e->pt_host);
    qv_gpu_free(e->pt_dev);
    free(e->seq_pages);
    qv_gpu_free(e->scr);
    qv_gpu_free(e->ws);
    free(e->host);
    qv_gpu_blas_destroy(e->blas);
    if (e->qm) qv_qmodel_close(e->qm);
    if (e->base.seq_len) qv_engine_base_free(&e->base);
    free(e);
}

static qv_status setup(gpu_eng *e, const qv_engine_vtable *vt, const qv_model *model, const qv_model *fp,
                       const qv_engine_opts *o)
{
    const qv_config *c = &fp->cfg;
    e->tag = vt->name;
    if (qv_gpu_device_count() < 1)
        return qv_fail(QV_ERR_UNSUPPORTED, "%s: no GPU (%s)", vt->name, qv_gpu_describe());
    if (c->num_layers <= 0 || c->hidden_size <= 0 || c->num_heads <= 0 || c->num_kv_heads <= 0 ||
        c->num_heads % c->num_kv_heads || c->vocab_size <= 0 || c->intermediate_size <= 0 ||
        c->max_position_embeddings <= 0)
        return qv_fail(QV_ERR_INPUT, "%s: inconsistent config (layers %d, hidden %d, heads %d/%d)", vt->name,
                       c->num_layers, c->hidden_size, c->num_heads, c->num_kv_heads);
    int G = c->num_heads / c->num_kv_heads;
    if ((c->head_dim != 32 && c->head_dim != 64 && c->head_dim != 128) || (G != 1 && G != 2 && G != 3 && G != 4 && G != 8))
        return qv_fail(QV_ERR_UNSUPPORTED, "%s: head_dim %d (32, 64, 128) or GQA group %d (1, 2, 3, 4, 8) not supported "
                       "by the attention kernel", vt->name, c->head_dim, G);
    if (c->mlp_bias) return qv_fail(QV_ERR_UNSUPPORTED, "%s: mlp_bias is not supported", vt->name);
    QV_TRY(qv_engine_base_init(&e->base, vt, model, o));
    e->c = *c;
    e->H = c->hidden_size, e->I = c->intermediate_size, e->nh = c->num_heads, e->nkv = c->num_kv_heads;
    e->hd = c->head_dim, e->V = c->vocab_size, e->L = c->num_layers;
    e->Dq = e->nh * e->hd, e->Dkv = e->nkv * e->hd;
    QV_TRY(qv_gpu_blas_create(&e->blas));
    QV_TRY(qv_gpu_alloc((void **)&e->d_sat, sizeof(unsigned int), "saturation counter"));
    QV_TRY(qv_gpu_alloc((void **)&e->d_flag, sizeof(int), "non-finite flag"));
    QV_TRY(qv_gpu_memset(e->d_sat, 0, sizeof(unsigned int)));
    /* RoPE table of every position, as ref-fp32 computes cos/sin */
    size_t nt = (size_t)c->max_position_embeddings * (size_t)(e->hd / 2);
    float *ct = qv_malloc(nt * sizeof(float)), *st_ = qv_malloc(nt * sizeof(float));
    qv_status st = ct && st_ ? qv_ref_rope_table(c, c->max_position_embeddings, ct, st_) : QV_ERR_NOMEM;
    if (st == QV_OK) st = upload_f32(&e->cos_t, ct, nt, "rope cos");
    if (st == QV_OK) st = upload_f32(&e->sin_t, st_, nt, "rope sin");
    free(ct);
    free(st_);
    QV_TRY(st);
    /* cache geometry and page tables */
    e->P = QV_KV4_PAGE_DEFAULT;
    e->max_pages = (c->max_position_embeddings + e->P - 1) / e->P;
    e->pool = qv_calloc((size_t)e->L, sizeof(uint8_t *));
    e->pt_host = qv_calloc((size_t)e->base.max_seqs * e->max_pages, sizeof(int32_t));
    e->seq_pages = qv_calloc((size_t)e->base.max_seqs, sizeof(int));
    if (!e->pool || !e->pt_host || !e->seq_pages) return QV_ERR_NOMEM;
    QV_TRY(qv_gpu_alloc((void **)&e->pt_dev, sizeof(int32_t) * (size_t)e->base.max_seqs * e->max_pages, "page table"));
    e->pt_dirty = 1;
    return load_weights(e, fp);
}

static qv_status open_common(const qv_engine_vtable *vt, int qoq, const qv_model *m, const qv_engine_opts *o,
                             qv_engine **out)
{
    *out = NULL;
    gpu_eng *e = qv_calloc(1, sizeof *e);
    if (!e) return QV_ERR_NOMEM;
    e->qoq = qoq;
    e->tag = vt->name;
    qv_status st = QV_OK;
    const qv_model *fp = m;
    e->dt = o->dtype;
    if (o->dtype != QV_DTYPE_FP16 && (qoq || o->dtype != QV_DTYPE_BF16))
        st = qv_fail(QV_ERR_USAGE, "%s: --dtype %s is not supported (gpu-fp16 only: fp16, bf16)", vt->name,
                     qv_dtype16_name(o->dtype));
    else if (qoq) {
        int any = 0;
        for (int w = 0; w < QV_LAYER_MASK_WORDS; w++) any |= o->fp_weights.w[w] != 0 || o->fp_acts.w[w] != 0;
        if (any || o->qserve_compat)
            st = qv_fail(QV_ERR_UNSUPPORTED, "gpu-qoq: the fp_weights / fp_acts ablations and qserve_compat are ref-qoq "
                         "only (use ref-qoq for them)");
        else if (qv_gpu_device_count() < 1)
            st = qv_fail(QV_ERR_UNSUPPORTED, "gpu-qoq: no GPU (%s)", qv_gpu_describe());
        else if (o->quantized_path)
            st = qv_qmodel_open(o->quantized_path, &e->qm);
        else
            st = qv_qmodel_quantize_rtn(m, QV_QFMT_W4A8_G128, 4, &e->qm); /* as ref-qoq does */
        if (st == QV_OK) {
            const qv_config *a = &m->cfg, *c = &e->qm->model->cfg;
            if (a->hidden_size != c->hidden_size || a->num_layers != c->num_layers || a->num_heads != c->num_heads ||
                a->num_kv_heads != c->num_kv_heads || a->head_dim != c->head_dim || a->vocab_size != c->vocab_size ||
                a->intermediate_size != c->intermediate_size)
                st = qv_fail(QV_ERR_INPUT, "gpu-qoq: checkpoint %s is for another model shape (hidden %d, layers %d, "
                             "vocab %d) than %s (hidden %d, layers %d, vocab %d)",
                             e->qm->path ? e->qm->path : "(memory)", c->hidden_size, c->num_layers, c->vocab_size,
                             m->dir, a->hidden_size, a->num_layers, a->vocab_size);
            fp = e->qm->model; /* FP parts after calibration transforms */
            e->kv_fmt = e->qm->meta.kv_bits == 4 && !o->fp_kv ? QV_KV_FMT_KV4 : QV_KV_FMT_FP16;
        }
    } else {
        if (o->quantized_path)
            st = qv_fail(QV_ERR_USAGE, "gpu-fp16 runs the FP model; it takes no quantized checkpoint (%s)",
                         o->quantized_path);
        e->kv_fmt = e->dt == QV_DTYPE_BF16 ? QV_KV_FMT_BF16 : QV_KV_FMT_FP16;
    }
    if (st == QV_OK) st = setup(e, vt, m, fp, o);
    if (st == QV_OK) e->page_bytes = qv_gpu_kv_page_bytes(e->kv_fmt, e->nkv, e->hd, e->P);
    if (st != QV_OK) {
        close_engine(&e->base);
        return st;
    }
    *out = &e->base;
    return QV_OK;
}

extern const qv_engine_vtable qv_gpu_fp16_vtable, qv_gpu_qoq_vtable;

static qv_status open_fp16(const qv_model *m, const qv_engine_opts *o, qv_engine **out)
{
    return open_common(&qv_gpu_fp16_vtable, 0, m, o, out);
}

static qv_status open_qoq(const qv_model *m, const qv_engine_opts *o, qv_engine **out)
{
    return open_common(&qv_gpu_qoq_vtable, 1, m, o, out);
}

const qv_engine_vtable qv_gpu_fp16_vtable = {"gpu-fp16", open_fp16, close_engine, seq_init, seq_release, forward};
const qv_engine_vtable qv_gpu_qoq_vtable = {"gpu-qoq", open_qoq, close_engine, seq_init, seq_release, forward};
