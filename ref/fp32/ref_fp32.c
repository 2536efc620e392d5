/* ref-fp32: the Llama-family forward pass in plain FP32, the accuracy reference of qvet.
 *
 * Read top to bottom: weights (converted to FP32 once, at open), the KV cache (per sequence, per
 * layer, grown on demand), the small ops (RMSNorm, RoPE, attention, SwiGLU), then forward().
 * Every formula follows Hugging Face transformers' LlamaForCausalLM in FP32 ("eager" attention),
 * because its outputs are the goldens this engine is checked against:
 *   h   = x + o_proj(attn(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1)))   n1 = rmsnorm(x)
 *   out = h + down_proj(silu(gate_proj(n2)) * up_proj(n2))                   n2 = rmsnorm(h)
 *   logits = lm_head(rmsnorm(x_last))
 * Shapes: T tokens in the batch (all sequences' new tokens, concatenated), H hidden, I
 * intermediate, nh / nkv query / KV heads of hd channels, V vocab. Linear weights are [out, in]
 * (HF layout), so y[T, out] = x[T, in] @ W^T is one cblas_sgemm (RowMajor, NoTrans, Trans).
 * Determinism: GEMMs come from OpenBLAS (fixed for a given thread count); every other output
 * element is computed by one thread in a fixed order, whatever the thread count. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "qvet/engine.h"
#include "qvet/ref_fp32.h"

#undef I /* <cblas.h> pulls in <complex.h>; here I is the intermediate size */
#include "llama_fwd.h"

/* The engine state is qv_llama (llama_fwd.h), shared with ref-qoq, which sets hooks. */
typedef qv_llama_layer layer_f32;
typedef qv_llama_kv kv_cache;
typedef qv_llama ref_fp32;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------- RoPE frequencies */

/* As transformers computes them (rope_utils.py), every step in FP32 as torch does it:
 *   default: inv_freq[i] = 1 / base^((2i) / d)
 *   linear:  inv_freq / factor
 *   llama3:  wavelen = 2*pi / inv_freq; wavelen > L/low -> inv_freq / factor (low frequencies);
 *            wavelen < L/high -> unchanged; between: (1 - s) * inv/factor + s * inv with
 *            s = (L / wavelen - low) / (high - low), L = original_max_position_embeddings.
 * Python-float constants (L/low, 2*pi) enter torch ops as double scalars, which torch casts to
 * the tensor's FP32 before the op; we do the same. */
void qv_ref_fp32_rope_inv_freq(const qv_config *c, float *inv_freq)
{
    int d = c->head_dim;
    float base = (float)c->rope_theta;
    for (int i = 0; i < d / 2; i++) {
        float expo = (float)(2 * i) / (float)d;
        inv_freq[i] = 1.0f / powf(base, expo);
    }
    if (c->rope_type == QV_ROPE_LINEAR) {
        for (int i = 0; i < d / 2; i++) inv_freq[i] = inv_freq[i] / (float)c->rope_factor;
    } else if (c->rope_type == QV_ROPE_LLAMA3) {
        double L = c->rope_original_max_pos, lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor;
        float factor = (float)c->rope_factor;
        float low_wl = (float)(L / lo), high_wl = (float)(L / hi);
        for (int i = 0; i < d / 2; i++) {
            float inv = inv_freq[i];
            float wl = (float)(2.0 * M_PI) / inv;
            float scaled = wl > low_wl ? inv / factor : inv;
            if (!(wl < high_wl) && !(wl > low_wl)) {
                float s = ((float)L / wl - (float)lo) / (float)(hi - lo);
                scaled = (1.0f - s) * scaled / factor + s * scaled;
            }
            inv_freq[i] = scaled;
        }
    }
}

/* ---------------------------------------------------------------- weights */

static qv_status to_f32(const qv_tensor *t, const char *what, int layer, int64_t d0, int64_t d1,
                        float **out)
{
    *out = NULL;
    if (!t->data) return qv_fail(QV_ERR_INPUT, "ref-fp32: layer %d: tensor %s missing", layer, what);
    int ok = d1 ? (t->ndim == 2 && t->shape[0] == d0 && t->shape[1] == d1) : (t->ndim == 1 && t->shape[0] == d0);
    if (!ok) {
        char buf[96];
        return qv_fail(QV_ERR_INPUT, "ref-fp32: layer %d: tensor %s has shape %s, expected [%lld%s%lld]",
                       layer, what, qv_shape_str(t, buf, sizeof buf), (long long)d0, d1 ? ", " : "",
                       d1 ? (long long)d1 : 0LL);
    }
    size_t n;
    if (qv_mul_size((size_t)d0, d1 ? (size_t)d1 : 1, &n) || !(*out = qv_malloc(n * sizeof(float))))
        return qv_fail(QV_ERR_NOMEM, "ref-fp32: no memory for %s", what);
    qv_status st = qv_tensor_to_f32(t, *out);
    if (st != QV_OK) return qv_fail_prefix(st, "ref-fp32: layer %d: tensor %s", layer, what);
    return QV_OK;
}

static qv_status opt_f32(const qv_tensor *t, const char *what, int layer, int64_t d0, float **out)
{
    *out = NULL;
    return t->data ? to_f32(t, what, layer, d0, 0, out) : QV_OK;
}

static void free_weights(ref_fp32 *e)
{
    if (e->lm_head != e->embed) free(e->lm_head);
    free(e->embed);
    free(e->final_norm);
    for (int l = 0; e->layers && l < e->L; l++) {
        layer_f32 *w = &e->layers[l];
        float *all[] = {w->wq, w->wk, w->wv, w->wo, w->w_gate, w->w_up, w->w_down,
                        w->bq, w->bk, w->bv, w->bo, w->input_norm, w->post_norm};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    }
    free(e->layers);
}

static qv_status load_weights(ref_fp32 *e, const qv_model *m, const qv_layer_mask *lin_mask)
{
    int H = e->H, I = e->I, Dq = e->nh * e->hd, Dkv = e->nkv * e->hd;
    QV_TRY(to_f32(&m->embed, "embed_tokens", -1, e->V, H, &e->embed));
    QV_TRY(to_f32(&m->final_norm, "norm", -1, H, 0, &e->final_norm));
    if (m->lm_head.data == m->embed.data) e->lm_head = e->embed; /* tied */
    else QV_TRY(to_f32(&m->lm_head, "lm_head", -1, e->V, H, &e->lm_head));
    e->layers = qv_calloc((size_t)e->L, sizeof(layer_f32));
    if (!e->layers) return QV_ERR_NOMEM;
    for (int l = 0; l < e->L; l++) {
        const qv_layer_weights *s = &m->layers[l];
        layer_f32 *w = &e->layers[l];
        QV_TRY(to_f32(&s->input_norm, "input_layernorm", l, H, 0, &w->input_norm));
        QV_TRY(to_f32(&s->post_norm, "post_attention_layernorm", l, H, 0, &w->post_norm));
        if (lin_mask && !qv_layer_mask_has(lin_mask, l)) continue; /* quantized elsewhere */
        QV_TRY(to_f32(&s->wq, "q_proj", l, Dq, H, &w->wq));
        QV_TRY(to_f32(&s->wk, "k_proj", l, Dkv, H, &w->wk));
        QV_TRY(to_f32(&s->wv, "v_proj", l, Dkv, H, &w->wv));
        QV_TRY(to_f32(&s->wo, "o_proj", l, H, Dq, &w->wo));
        QV_TRY(to_f32(&s->w_gate, "gate_proj", l, I, H, &w->w_gate));
        QV_TRY(to_f32(&s->w_up, "up_proj", l, I, H, &w->w_up));
        QV_TRY(to_f32(&s->w_down, "down_proj", l, H, I, &w->w_down));
        QV_TRY(opt_f32(&s->bq, "q_proj.bias", l, Dq, &w->bq));
        QV_TRY(opt_f32(&s->bk, "k_proj.bias", l, Dkv, &w->bk));
        QV_TRY(opt_f32(&s->bv, "v_proj.bias", l, Dkv, &w->bv));
        QV_TRY(opt_f32(&s->bo, "o_proj.bias", l, H, &w->bo));
    }
    return QV_OK;
}

/* ---------------------------------------------------------------- KV cache */

static qv_status kv_reserve(ref_fp32 *e, kv_cache *kv, int need)
{
    if (need <= kv->cap) return QV_OK;
    int cap = kv->cap ? kv->cap : 256;
    while (cap < need) cap *= 2;
    size_t row = (size_t)e->nkv * (size_t)e->hd * sizeof(float);
    for (int l = 0; l < e->L; l++) {
        float *k = realloc(kv->k[l], (size_t)cap * row), *v;
        if (!k) return qv_fail(QV_ERR_NOMEM, "ref-fp32: no memory for a KV cache of %d positions", cap);
        kv->k[l] = k;
        v = realloc(kv->v[l], (size_t)cap * row);
        if (!v) return qv_fail(QV_ERR_NOMEM, "ref-fp32: no memory for a KV cache of %d positions", cap);
        kv->v[l] = v;
    }
    kv->cap = cap;
    return QV_OK;
}

void qv_llama_seq_release(qv_engine *base, int slot)
{
    ref_fp32 *e = (ref_fp32 *)base;
    kv_cache *kv = &e->kv[slot];
    for (int l = 0; kv->k && l < e->L; l++) {
        free(kv->k[l]);
        free(kv->v[l]);
    }
    free(kv->k);
    free(kv->v);
    memset(kv, 0, sizeof *kv);
}

/* A fresh sequence holds no KV memory; the length (kept by the common part) is what makes old
 * entries unreachable, and reset frees them too so nothing stale survives. */
qv_status qv_llama_seq_init(qv_engine *base, int slot)
{
    ref_fp32 *e = (ref_fp32 *)base;
    qv_llama_seq_release(base, slot);
    kv_cache *kv = &e->kv[slot];
    kv->k = qv_calloc((size_t)e->L, sizeof(float *));
    kv->v = qv_calloc((size_t)e->L, sizeof(float *));
    return kv->k && kv->v ? QV_OK : QV_ERR_NOMEM;
}

/* ---------------------------------------------------------------- ops */

/* y[T, N] = x[T, K] @ W[N, K]^T (+ b) */
void qv_llama_linear_f32(ref_fp32 *e, const float *x, int T, int K, const float *W, int N, const float *b, float *y)
{
    double t0 = now_s();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, N, K, 1.0f, x, K, W, K, 0.0f, y, N);
    e->base.stats.gemm_seconds += now_s() - t0;
    e->base.stats.gemm_flops += 2.0 * T * (double)N * K;
    if (b)
        for (int t = 0; t < T; t++)
            for (int n = 0; n < N; n++) y[(size_t)t * N + n] += b[n];
}

/* HF LlamaRMSNorm in FP32: ms = mean(x^2); y = w * (x * rsqrt(ms + eps)). The mean of squares is
 * summed in double and rounded once, so it is the FP32 value torch's pairwise sum approximates. */
static void rmsnorm(float *y, const float *x, const float *w, int T, int H, float eps)
{
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * H;
        double ss = 0;
        for (int i = 0; i < H; i++) ss += (double)xr[i] * xr[i];
        float ms = (float)(ss / H);
        float r = 1.0f / sqrtf(ms + eps);
        for (int i = 0; i < H; i++) y[(size_t)t * H + i] = w[i] * (xr[i] * r);
    }
}

/* Rotate-half RoPE on n_heads heads of hd channels per row: channel i pairs with i + hd/2,
 *   out[i]        = x[i] * cos - x[i + hd/2] * sin
 *   out[i + hd/2] = x[i + hd/2] * cos + x[i] * sin,   angle = pos * inv_freq[i] (FP32 product). */
static void rope(float *x, const int *pos, int T, int n_heads, int hd, const float *inv_freq)
{
    int half = hd / 2;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < half; i++) {
            float ang = (float)pos[t] * inv_freq[i];
            float c = cosf(ang), s = sinf(ang);
            for (int h = 0; h < n_heads; h++) {
                float *v = x + (size_t)t * n_heads * hd + (size_t)h * hd;
                float a = v[i], b = v[i + half];
                v[i] = a * c + (-b) * s;
                v[i + half] = b * c + a * s;
            }
        }
    }
}

/* Causal GQA attention of each sequence's new tokens over its cache (which already holds this
 * batch's K/V); query head h reads KV head h / (nh / nkv). Per sequence and head, as HF's eager
 * attention does it: S = (Q K^T) * head_dim^-0.5 (one sgemm, then the scale), softmax over
 * positions 0..pos of each row in FP32 with the row maximum subtracted (columns beyond pos,
 * the future, get probability 0), then O = P V (one sgemm). Rows of S are independent:
 * deterministic for a given thread count. */
static qv_status attention(ref_fp32 *e, int layer, const qv_engine_batch *b, int T, const float *q, float *out)
{
    int nh = e->nh, hd = e->hd, group = e->nh / e->nkv, Dq = nh * hd, Dkv = e->nkv * e->hd;
    float scale = (float)pow((double)hd, -0.5);
    int max_ctx = 0;
    for (int i = 0; i < b->n_seqs; i++)
        if (b->start[i] + b->n_tokens[i] > max_ctx) max_ctx = b->start[i] + b->n_tokens[i];
    size_t n_s;
    float *S = NULL;
    if (!qv_mul_size((size_t)T, (size_t)max_ctx, &n_s) && !qv_mul_size(n_s, sizeof(float), &n_s)) S = malloc(n_s);
    if (!S) return qv_fail(QV_ERR_NOMEM, "ref-fp32: no memory for %d x %d attention scores", T, max_ctx);
    double t0 = now_s();
    int row0 = 0;
    for (int i = 0; i < b->n_seqs; i++) {
        const kv_cache *kv = &e->kv[b->seqs[i]];
        int n = b->n_tokens[i], ctx = b->start[i] + n;
        for (int h = 0; h < nh; h++) {
            int kvh = h / group;
            const float *Q = q + (size_t)row0 * Dq + (size_t)h * hd;     /* [n, hd], row stride Dq */
            const float *K = kv->k[layer] + (size_t)kvh * hd;              /* [ctx, hd], stride Dkv */
            const float *Vv = kv->v[layer] + (size_t)kvh * hd;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, ctx, hd, 1.0f, Q, Dq, K, Dkv, 0.0f, S, ctx);
#pragma omp parallel for schedule(static)
            for (int r = 0; r < n; r++) {
                float *p = S + (size_t)r * ctx;
                int len = b->start[i] + r + 1; /* causal: positions 0..pos */
                float mx = -INFINITY, sum = 0.0f;
                for (int j = 0; j < len; j++) {
                    p[j] = p[j] * scale;
                    if (p[j] > mx) mx = p[j];
                }
                for (int j = 0; j < len; j++) {
                    p[j] = expf(p[j] - mx);
                    sum += p[j];
                }
                for (int j = 0; j < len; j++) p[j] = p[j] / sum;
                for (int j = len; j < ctx; j++) p[j] = 0.0f;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hd, ctx, 1.0f, S, ctx, Vv, Dkv, 0.0f,
                        out + (size_t)row0 * Dq + (size_t)h * hd, Dq);
            e->base.stats.attn_flops += 4.0 * n * (double)ctx * hd;
        }
        row0 += n;
    }
    e->base.stats.attn_seconds += now_s() - t0;
    free(S);
    return QV_OK;
}

const float *qv_llama_weight(const qv_llama *e, int layer, int id, const float **bias)
{
    if (id == QV_LLAMA_LM_HEAD) {
        *bias = NULL;
        return e->lm_head;
    }
    const layer_f32 *w = &e->layers[layer];
    const float *W[] = {w->wq, w->wk, w->wv, w->wo, w->w_gate, w->w_up, w->w_down};
    const float *B[] = {w->bq, w->bk, w->bv, w->bo, NULL, NULL, NULL};
    *bias = B[id];
    return W[id];
}

/* Linear `id` of `layer`: the hook when one is set, else the FP32 sgemm. */
static qv_status linear(ref_fp32 *e, int layer, int id, const float *x, int T, int K, int N, float *y)
{
    if (e->hooks.linear) return e->hooks.linear(e, layer, id, x, T, K, N, y);
    const float *b, *W = qv_llama_weight(e, layer, id, &b);
    qv_llama_linear_f32(e, x, T, K, W, N, b, y);
    return QV_OK;
}

static void round_at(ref_fp32 *e, int layer, qv_llama_round_point p, float *x, size_t n)
{
    if (e->hooks.round) e->hooks.round(e, layer, p, x, n);
}

/* SwiGLU: g <- silu(g) * u, silu(x) = x / (1 + exp(-x)) as torch computes it. */
static void swiglu(float *g, const float *u, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* ---------------------------------------------------------------- checks and capture */

/* NaN/Inf produced by the forward is a check failure naming where it appeared. */
static qv_status check_finite(const ref_fp32 *e, const float *x, int T, int C, const int *row_seq, const int *row_pos,
                              const qv_engine_batch *b, int layer, const char *tensor)
{
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) {
            float v = x[(size_t)t * C + c];
            if (isfinite(v)) continue;
            char where[32];
            if (layer >= 0) snprintf(where, sizeof where, "layer %d", layer);
            else snprintf(where, sizeof where, "final");
            return qv_fail(QV_ERR_CHECK, "%s: %s produced in %s, tensor %s, sequence %d, position %d (index %d)",
                           e->tag, isnan(v) ? "NaN" : "Inf", where, tensor, b->seqs[row_seq[t]], row_pos[t], c);
        }
    return QV_OK;
}

/* Calls the capture callback once per sequence with its rows of x [T, d1 (* d2)]. */
static void emit(ref_fp32 *e, const qv_engine_batch *b, qv_capture_kind kind, int layer,
                 const float *x, int64_t d1, int64_t d2)
{
    if (!(e->base.capture_mask & (1u << kind))) return;
    int64_t row = d1 * (d2 ? d2 : 1), off = 0;
    for (int i = 0; i < b->n_seqs; i++) {
        qv_capture_point p = {layer, kind, b->seqs[i], b->start[i], b->n_tokens[i], d2 ? 3 : 2,
                              {b->n_tokens[i], d1, d2}, x + off * row};
        e->base.capture(e->base.capture_user, &p);
        off += b->n_tokens[i];
    }
}

/* ---------------------------------------------------------------- forward */

#define CHECK(x, C, layer, name) QV_TRY(check_finite(e, x, T, C, row_seq, row_pos, b, layer, name))

static qv_status forward_rows(ref_fp32 *e, const qv_engine_batch *b, int T, const int *row_seq,
                              const int *row_pos, float *buf, float *logits)
{
    const qv_config *c = &e->c;
    int H = e->H, I = e->I, nh = e->nh, nkv = e->nkv, hd = e->hd, V = e->V;
    int Dq = nh * hd, Dkv = nkv * hd;
    float *x = buf, *xn = x + (size_t)T * H, *q = xn + (size_t)T * H, *k = q + (size_t)T * Dq,
          *v = k + (size_t)T * Dkv, *att = v + (size_t)T * Dkv, *tmp = att + (size_t)T * Dq,
          *g = tmp + (size_t)T * H, *u = g + (size_t)T * I;
    /* token embeddings */
    int t0 = 0;
    for (int i = 0; i < b->n_seqs; i++)
        for (int j = 0; j < b->n_tokens[i]; j++, t0++)
            memcpy(x + (size_t)t0 * H, e->embed + (size_t)b->tokens[i][j] * H, sizeof(float) * (size_t)H);

    for (int l = 0; l < e->L; l++) {
        const layer_f32 *w = &e->layers[l];
        emit(e, b, QV_CAP_BLOCK_INPUT, l, x, H, 0);

        /* attention block */
        rmsnorm(xn, x, w->input_norm, T, H, c->rms_norm_eps);
        QV_TRY(linear(e, l, 0, xn, T, H, Dq, q));
        QV_TRY(linear(e, l, 1, xn, T, H, Dkv, k));
        QV_TRY(linear(e, l, 2, xn, T, H, Dkv, v));
        rope(q, row_pos, T, nh, hd, e->inv_freq);
        rope(k, row_pos, T, nkv, hd, e->inv_freq);
        round_at(e, l, QV_RP_QKV, q, (size_t)T * Dq);
        round_at(e, l, QV_RP_QKV, k, (size_t)T * Dkv);
        round_at(e, l, QV_RP_QKV, v, (size_t)T * Dkv);
        CHECK(q, Dq, l, "q");
        CHECK(k, Dkv, l, "k");
        CHECK(v, Dkv, l, "v");
        emit(e, b, QV_CAP_Q, l, q, nh, hd);
        emit(e, b, QV_CAP_K, l, k, nkv, hd);
        emit(e, b, QV_CAP_V, l, v, nkv, hd);
        if (e->hooks.kv_store) {
            QV_TRY(e->hooks.kv_store(e, l, 0, b, T, row_seq, row_pos, k, v));
        } else {
            for (int t = 0; t < T; t++) { /* append this batch's K/V to each sequence's cache */
                kv_cache *kv = &e->kv[b->seqs[row_seq[t]]];
                memcpy(kv->k[l] + (size_t)row_pos[t] * Dkv, k + (size_t)t * Dkv, sizeof(float) * (size_t)Dkv);
                memcpy(kv->v[l] + (size_t)row_pos[t] * Dkv, v + (size_t)t * Dkv, sizeof(float) * (size_t)Dkv);
            }
        }
        QV_TRY(attention(e, l, b, T, q, att));
        if (e->hooks.kv_store) QV_TRY(e->hooks.kv_store(e, l, 1, b, T, row_seq, row_pos, k, v));
        round_at(e, l, QV_RP_ATTN, att, (size_t)T * Dq);
        CHECK(att, Dq, l, "attn_heads");
        emit(e, b, QV_CAP_ATTN_HEADS, l, att, nh, hd);
        QV_TRY(linear(e, l, 3, att, T, Dq, H, tmp));
        CHECK(tmp, H, l, "attn_out");
        emit(e, b, QV_CAP_ATTN_OUT, l, tmp, H, 0);
        for (size_t i = 0; i < (size_t)T * H; i++) x[i] = x[i] + tmp[i];
        round_at(e, l, QV_RP_RESIDUAL, x, (size_t)T * H);

        /* MLP block */
        rmsnorm(xn, x, w->post_norm, T, H, c->rms_norm_eps);
        QV_TRY(linear(e, l, 4, xn, T, H, I, g));
        QV_TRY(linear(e, l, 5, xn, T, H, I, u));
        swiglu(g, u, (size_t)T * I);
        QV_TRY(linear(e, l, 6, g, T, I, H, tmp));
        CHECK(tmp, H, l, "mlp_out");
        emit(e, b, QV_CAP_MLP_OUT, l, tmp, H, 0);
        for (size_t i = 0; i < (size_t)T * H; i++) x[i] = x[i] + tmp[i];
        round_at(e, l, QV_RP_RESIDUAL, x, (size_t)T * H);
        CHECK(x, H, l, "residual");
        emit(e, b, QV_CAP_RESIDUAL, l, x, H, 0);
    }
    if (!logits) return QV_OK;

    /* final norm and LM head, only on the rows asked for (gathered into xn, seq by seq) */
    int R = 0, *out_pos;
    int *rs = malloc(sizeof(int) * 2 * (size_t)T);
    if (!rs) return QV_ERR_NOMEM;
    out_pos = rs + T;
    int row0 = 0;
    for (int i = 0; i < b->n_seqs; i++) {
        int n = b->n_tokens[i], keep = b->last_n <= 0 || b->last_n > n ? n : b->last_n;
        for (int j = n - keep; j < n; j++, R++) {
            memcpy(tmp + (size_t)R * H, x + (size_t)(row0 + j) * H, sizeof(float) * (size_t)H);
            rs[R] = i;
            out_pos[R] = b->start[i] + j;
        }
        row0 += n;
    }
    rmsnorm(xn, tmp, e->final_norm, R, H, c->rms_norm_eps);
    round_at(e, -1, QV_RP_FINAL, xn, (size_t)R * H);
    qv_status st = linear(e, -1, QV_LLAMA_LM_HEAD, xn, R, H, V, logits);
    if (st != QV_OK) {
        free(rs);
        return st;
    }
    st = check_finite(e, logits, R, V, rs, out_pos, b, -1, "logits");
    if (st == QV_OK && (e->base.capture_mask & (1u << QV_CAP_LOGITS))) {
        int off = 0;
        for (int i = 0; i < b->n_seqs; i++) {
            int n = b->n_tokens[i], keep = b->last_n <= 0 || b->last_n > n ? n : b->last_n;
            qv_capture_point p = {-1, QV_CAP_LOGITS, b->seqs[i], b->start[i] + n - keep, keep, 2,
                                  {keep, V, 0}, logits + (size_t)off * V};
            e->base.capture(e->base.capture_user, &p);
            off += keep;
        }
    }
    free(rs);
    return st;
}

qv_status qv_llama_forward(qv_engine *base, const qv_engine_batch *b, float *logits)
{
    ref_fp32 *e = (ref_fp32 *)base;
    int T = 0;
    for (int i = 0; i < b->n_seqs; i++) {
        T += b->n_tokens[i];
        QV_TRY(kv_reserve(e, &e->kv[b->seqs[i]], b->start[i] + b->n_tokens[i]));
    }
    int *row_seq = qv_malloc(sizeof(int) * 2 * (size_t)T);
    /* x, xn, tmp: T*H each; q, att: T*Dq; k, v: T*Dkv; g, u: T*I */
    size_t per_row = 3 * (size_t)e->H + 2 * (size_t)e->nh * e->hd + 2 * (size_t)e->nkv * e->hd + 2 * (size_t)e->I;
    size_t n;
    float *buf = NULL;
    if (row_seq && !qv_mul_size(per_row, (size_t)T, &n) && !qv_mul_size(n, sizeof(float), &n))
        buf = qv_malloc(n);
    qv_status st = QV_ERR_NOMEM;
    if (buf) {
        int *row_pos = row_seq + T, t = 0;
        for (int i = 0; i < b->n_seqs; i++)
            for (int j = 0; j < b->n_tokens[i]; j++, t++) {
                row_seq[t] = i;
                row_pos[t] = b->start[i] + j;
            }
        st = forward_rows(e, b, T, row_seq, row_pos, buf, logits);
    } else {
        qv_fail(QV_ERR_NOMEM, "%s: no memory for a batch of %d tokens", e->tag, T);
    }
    free(buf);
    free(row_seq);
    return st;
}

/* ---------------------------------------------------------------- open / close */

void qv_llama_fini(qv_llama *e)
{
    free_weights(e);
    free(e->inv_freq);
    free(e->kv);
    qv_engine_base_free(&e->base);
}

static void close_engine(qv_engine *base)
{
    qv_llama_fini((qv_llama *)base);
    free(base);
}

qv_status qv_llama_init(qv_llama *e, const qv_engine_vtable *vt, const qv_model *model, const qv_model *fp_model,
                        const qv_engine_opts *o, const qv_layer_mask *lin_mask)
{
    const qv_config *c = &fp_model->cfg;
    e->tag = vt->name;
    if (c->num_layers <= 0 || c->hidden_size <= 0 || c->num_heads <= 0 || c->num_kv_heads <= 0 ||
        c->head_dim <= 0 || c->head_dim % 2 || c->num_heads % c->num_kv_heads || c->vocab_size <= 0 ||
        c->intermediate_size <= 0 || c->max_position_embeddings <= 0)
        return qv_fail(QV_ERR_INPUT, "%s: inconsistent config (layers %d, hidden %d, heads %d/%d, head_dim %d)",
                       vt->name, c->num_layers, c->hidden_size, c->num_heads, c->num_kv_heads, c->head_dim);
    if (c->mlp_bias) return qv_fail(QV_ERR_UNSUPPORTED, "%s: mlp_bias is not supported", vt->name);
    qv_status st = qv_engine_base_init(&e->base, vt, model, o);
    if (st != QV_OK) return st;
    e->c = *c;
    e->H = c->hidden_size, e->I = c->intermediate_size, e->nh = c->num_heads, e->nkv = c->num_kv_heads;
    e->hd = c->head_dim, e->V = c->vocab_size, e->L = c->num_layers;
    e->kv = qv_calloc((size_t)e->base.max_seqs, sizeof(kv_cache));
    e->inv_freq = qv_malloc(sizeof(float) * (size_t)(e->hd / 2));
    if (!e->kv || !e->inv_freq) st = QV_ERR_NOMEM;
    if (st == QV_OK) st = load_weights(e, fp_model, lin_mask);
    if (st != QV_OK) {
        qv_llama_fini(e);
        return st;
    }
    qv_ref_fp32_rope_inv_freq(c, e->inv_freq);
    if (o->threads > 0) {
        openblas_set_num_threads(o->threads);
#ifdef _OPENMP
        omp_set_num_threads(o->threads);
#endif
    }
    return QV_OK;
}

extern const qv_engine_vtable qv_ref_fp32_vtable;

static qv_status open_engine(const qv_model *m, const qv_engine_opts *o, qv_engine **out)
{
    if (o->quantized_path)
        return qv_fail(QV_ERR_USAGE, "ref-fp32 runs the FP model; it takes no quantized checkpoint (%s)", o->quantized_path);
    ref_fp32 *e = qv_calloc(1, sizeof *e);
    if (!e) return QV_ERR_NOMEM;
    qv_status st = qv_llama_init(e, &qv_ref_fp32_vtable, m, m, o, NULL);
    if (st != QV_OK) {
        free(e);
        return st;
    }
    *out = &e->base;
    return QV_OK;
}

const qv_engine_vtable qv_ref_fp32_vtable = {"ref-fp32", open_engine, close_engine, qv_llama_seq_init,
                                            qv_llama_seq_release, qv_llama_forward};
