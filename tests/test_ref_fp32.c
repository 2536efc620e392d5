/* ref-fp32 against an independent forward pass written here: plain loops in double that also
 * carry, for every value, a first-order bound on how far ANY FP32 evaluation of the same
 * formulas may lie from it (a running error analysis; docs/bounds.md derives each rule). The
 * engine must sit inside that bound at every captured tensor of every layer and at the logits.
 * The same bound, doubled, covers two FP32 evaluations of one quantity in different orders
 * (prefill vs prefill + decode, batch vs alone). Models are built in memory with random
 * weights: F32/F16/BF16, GQA, tied/untied, q/k/v biases, default/llama3/linear RoPE. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qv_test_util.h"
#include "qvet/engine.h"
#include "qvet/gpu.h"
#include "qvet/rand_model.h"
#include "qvet/ref_fp32.h"

#define U 0x1p-24 /* unit roundoff of FP32 */
static double gam(double n) { return n * U / (1 - n * U); }

static double *wt(const qv_tensor *t) /* weights to double, exactly */
{
    if (!t->data) return NULL;
    int64_t n = qv_tensor_numel(t);
    float *f = malloc(sizeof(float) * (size_t)n);
    double *d = malloc(sizeof(double) * (size_t)n);
    ck_assert(qv_tensor_to_f32(t, f) == QV_OK);
    for (int64_t i = 0; i < n; i++) d[i] = f[i];
    free(f);
    return d;
}

static double *dalloc(size_t n) { return calloc(n, sizeof(double)); }

/* y = w * x / sqrt(mean x^2 + eps). Bound: the input's error propagated to first order,
 * |dy_i| <= |w_i| (E_i / r + |x_i| sum_k |x_k| E_k / (H r^3)), plus FP32 rounding gamma_6 |y_i|. */
static void nv_rmsnorm(const double *x, const double *Ex, const double *w, int H, double eps,
                       double *y, double *Ey)
{
    double ss = 0, s = 0;
    for (int i = 0; i < H; i++) ss += x[i] * x[i], s += fabs(x[i]) * Ex[i];
    double r = sqrt(ss / H + eps);
    for (int i = 0; i < H; i++) {
        y[i] = w[i] * x[i] / r;
        Ey[i] = fabs(w[i]) * (Ex[i] / r + fabs(x[i]) * s / (H * r * r * r)) + gam(6) * fabs(y[i]);
    }
}

/* y[N] = W[N,K] x + b. Bound: sum |w| E_x + gamma_K sum |w| (|x| + E_x), + u |y| for the bias add. */
static void nv_linear(const double *x, const double *Ex, const double *W, int N, int K,
                      const double *b, double *y, double *Ey)
{
    for (int o = 0; o < N; o++) {
        double acc = 0, prop = 0, mag = 0;
        for (int i = 0; i < K; i++) {
            double w = W[(size_t)o * K + i];
            acc += w * x[i];
            prop += fabs(w) * Ex[i];
            mag += fabs(w) * (fabs(x[i]) + Ex[i]);
        }
        y[o] = acc + (b ? b[o] : 0);
        Ey[o] = prop + gam(K) * mag + (b ? U * (fabs(y[o]) + prop + gam(K) * mag) : 0);
    }
}

/* Rotate-half RoPE, written from the HF formula q*cos + rotate_half(q)*sin with
 * rotate_half(q) = cat(-q[d/2:], q[:d/2]). Bound: inputs' errors, the angle fl(pos*inv) (u|theta|)
 * and cosf/sinf (1 ulp <= 2u), and two roundings on the result. */
static void nv_rope(double *x, double *Ex, int pos, int heads, int hd, const double *inv_freq)
{
    int half = hd / 2;
    double *tmp = malloc(sizeof(double) * (size_t)hd), *te = malloc(sizeof(double) * (size_t)hd);
    for (int h = 0; h < heads; h++) {
        double *v = x + (size_t)h * hd, *e = Ex + (size_t)h * hd;
        for (int d = 0; d < hd; d++) {
            int i = d % half;
            double th = pos * inv_freq[i], c = cos(th), s = sin(th), dc = U * fabs(th) + 2 * U;
            double rot = d < half ? -v[d + half] : v[d - half];
            double er = d < half ? e[d + half] : e[d - half];
            tmp[d] = v[d] * c + rot * s;
            double A = fabs(v[d]) + e[d], B = fabs(rot) + er;
            te[d] = e[d] + er + (A + B) * dc + gam(2) * (A + B) * (1 + dc);
        }
        memcpy(v, tmp, sizeof(double) * (size_t)hd);
        memcpy(e, te, sizeof(double) * (size_t)hd);
    }
    free(tmp);
    free(te);
}

/* silu(g) * up; |silu'| <= 1.0998, silu's own rounding (exp 2u, add, divide) gamma_4. */
static void nv_swiglu(const double *g, const double *Eg, const double *up, const double *Eu, int n,
                      double *y, double *Ey)
{
    for (int i = 0; i < n; i++) {
        double s = g[i] / (1 + exp(-g[i]));
        double Es = 1.0998 * Eg[i] + gam(4) * (fabs(s) + 1.0998 * Eg[i]);
        y[i] = s * up[i];
        Ey[i] = fabs(up[i]) * Es + fabs(s) * Eu[i] + Es * Eu[i] + U * (fabs(s) + Es) * (fabs(up[i]) + Eu[i]);
    }
}

/* The bounds are first order; second-order terms are O(bound^2), below 1e-6 of them here. */
#define SECOND_ORDER (1 + 1e-6)

/* ---------------------------------------------------------------- models and capture */

static qv_rand_model_spec spec_small(qv_dtype dt, int tied, int bias, qv_rope_type rope, uint64_t seed)
{
    qv_rand_model_spec s = {.hidden = 64, .inter = 96, .layers = 3, .heads = 4, .kv_heads = 2,
                            .head_dim = 16, .vocab = 97, .max_pos = 48, .dtype = dt, .tied = tied,
                            .qkv_bias = bias, .rope = rope, .rope_theta = 10000, .seed = seed};
    return s;
}

static qv_model *make_model(const qv_rand_model_spec *s)
{
    qv_model *m;
    qv_status st = qv_rand_model_create(s, &m);
    ck_assert_msg(st == QV_OK, "%s", qv_last_error());
    return m;
}

static qv_engine *open_ref(const qv_model *m)
{
    qv_engine *e;
    qv_status st = qv_engine_open("ref-fp32", m, NULL, &e);
    ck_assert_msg(st == QV_OK, "%s", qv_last_error());
    return e;
}

static void rand_tokens(int32_t *t, int n, int vocab, uint64_t seed)
{
    qv_test_rng r = {seed};
    for (int i = 0; i < n; i++) t[i] = (int32_t)(qv_test_next(&r) % (uint64_t)vocab);
}

/* Captured tensors of one sequence, [layer][kind] -> FP32 rows placed at their positions. */
typedef struct {
    int L, max_pos, calls;
    float *t[64][QV_CAP_COUNT];
    int64_t width[QV_CAP_COUNT];
    int shape_bad;
    const qv_config *c;
} capture_store;

static void on_capture(void *user, const qv_capture_point *p)
{
    capture_store *cs = user;
    const qv_config *c = cs->c;
    int64_t w = 1;
    for (int d = 1; d < p->ndim; d++) w *= p->shape[d];
    int64_t want[QV_CAP_COUNT] = {c->hidden_size, (int64_t)c->num_heads * c->head_dim,
                                  (int64_t)c->num_kv_heads * c->head_dim, (int64_t)c->num_kv_heads * c->head_dim,
                                  (int64_t)c->num_heads * c->head_dim, c->hidden_size, c->hidden_size,
                                  c->hidden_size, c->vocab_size};
    int hd_ok = p->ndim == 2 || p->shape[2] == c->head_dim;
    if (p->shape[0] != p->n_pos || w != want[p->kind] || !hd_ok ||
        (p->kind == QV_CAP_LOGITS) != (p->layer == -1))
        cs->shape_bad++;
    int l = p->layer < 0 ? 0 : p->layer;
    if (!cs->t[l][p->kind]) cs->t[l][p->kind] = calloc((size_t)cs->max_pos * w, sizeof(float));
    memcpy(cs->t[l][p->kind] + (size_t)p->pos0 * w, p->data, sizeof(float) * (size_t)(p->n_pos * w));
    cs->width[p->kind] = w;
    cs->calls++;
}

static void free_store(capture_store *cs)
{
    for (int l = 0; l < 64; l++)
        for (int k = 0; k < QV_CAP_COUNT; k++) free(cs->t[l][k]);
}

/* max over elements of |got - ref| / bound; fails when above 1 */
/* Routes each sequence's captures to its own store (ids 0, 1, 2 are the first three slots). */
static void on_capture_by_seq(void *user, const qv_capture_point *p)
{
    capture_store *cs = user;
    on_capture(&cs[p->seq], p);
}

/* max over elements of |got - ref| / bound; fails when above 1 */
static double check_within(const float *got, const double *ref, const double *bound, size_t n,
                           const char *what, int layer, int t)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]), b = bound[i] * SECOND_ORDER;
        ck_assert_msg(d <= b, "%s layer %d position %d index %zu: engine %.9g, naive %.9g, |diff| %.3g > bound %.3g",
                      what, layer, t, i, got[i], ref[i], d, b);
        if (b > 0 && d / b > worst) worst = d / b;
    }
    return worst;
}

/* Checks every stage of every layer of one sequence (all of whose tensors were captured, over
 * one or several engine calls) against the formulas above evaluated in double ON THE ENGINE'S
 * OWN FP32 INPUTS to that stage, so the bound is the stage's local rounding error only
 * (docs/bounds.md: a worst-case bound carried through the depth grows like prod ||W|| and
 * e^(score error); on these 3-layer models it reached 1e96). Exact where the engine does one
 * FP32 operation the test can repeat: block input of layer 0 = embedding row, block input of
 * l = residual of l-1, residual = fl(fl(x + attn_out) + mlp_out). Returns the worst
 * |engine - naive| / bound; *logit_rel gets max |engine - naive| / max |naive| over the logits
 * rows given (positions logit_pos0 ..). */
static double check_stages(const qv_model *m, const float *inv_freq_f, const int32_t *tok, int n,
                           const capture_store *cs, const float *logits, int logit_pos0, int n_logits,
                           double *logit_rel)
{
    const qv_config *c = &m->cfg;
    int H = c->hidden_size, I = c->intermediate_size, nh = c->num_heads, nkv = c->num_kv_heads;
    int hd = c->head_dim, V = c->vocab_size, L = c->num_layers, Dq = nh * hd, Dkv = nkv * hd;
    double eps = (double)c->rms_norm_eps, scale = (double)(float)pow(hd, -0.5); /* HF: head_dim**-0.5, an FP32 scalar */
    double inv[512], worst = 0;
    for (int i = 0; i < hd / 2; i++) inv[i] = inv_freq_f[i];
    double *emb = wt(&m->embed), *lm = wt(&m->lm_head), *fn = wt(&m->final_norm);
    int wmax = H > Dq ? H : Dq;
    double *zero = dalloc((size_t)wmax), *x = dalloc((size_t)wmax), *xn = dalloc(H), *Exn = dalloc(H);
    double *y = dalloc((size_t)Dq + I + V), *Ey = dalloc((size_t)Dq + I + V);
    double *g = dalloc(I), *Eg = dalloc(I), *u = dalloc(I), *Eu = dalloc(I), *pr = dalloc(I), *Epr = dalloc(I);
    double *p = dalloc((size_t)n), *D = dalloc((size_t)n);
    float *hf = malloc(sizeof(float) * (size_t)H);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < H; i++)
            ck_assert_msg(cs->t[0][QV_CAP_BLOCK_INPUT][(size_t)t * H + i] == (float)emb[(size_t)tok[t] * H + i],
                          "block input of layer 0 is not the embedding row at position %d", t);
    for (int l = 0; l < L; l++) {
        const qv_layer_weights *lw = &m->layers[l];
        double *wq = wt(&lw->wq), *wk = wt(&lw->wk), *wv = wt(&lw->wv), *wo = wt(&lw->wo);
        double *wg = wt(&lw->w_gate), *wu = wt(&lw->w_up), *wd = wt(&lw->w_down);
        double *bq = wt(&lw->bq), *bk = wt(&lw->bk), *bv = wt(&lw->bv), *bo = wt(&lw->bo);
        double *n1 = wt(&lw->input_norm), *n2 = wt(&lw->post_norm);
        float *const *ct = cs->t[l];
        for (int k = 0; k <= QV_CAP_RESIDUAL; k++)
            ck_assert_msg(ct[k], "no capture of %s at layer %d", qv_capture_kind_name(k), l);
        if (l > 0)
            ck_assert_mem_eq(ct[QV_CAP_BLOCK_INPUT], cs->t[l - 1][QV_CAP_RESIDUAL], sizeof(float) * (size_t)n * H);
        for (int t = 0; t < n; t++) {
            /* q, k, v (after RoPE) from the block input */
            for (int i = 0; i < H; i++) x[i] = ct[QV_CAP_BLOCK_INPUT][(size_t)t * H + i];
            nv_rmsnorm(x, zero, n1, H, eps, xn, Exn);
            const double *pw[3] = {wq, wk, wv}, *pb[3] = {bq, bk, bv};
            int rows[3] = {Dq, Dkv, Dkv}, heads[3] = {nh, nkv, 0}, kind[3] = {QV_CAP_Q, QV_CAP_K, QV_CAP_V};
            for (int j = 0; j < 3; j++) {
                nv_linear(xn, Exn, pw[j], rows[j], H, pb[j], y, Ey);
                if (heads[j]) nv_rope(y, Ey, t, heads[j], hd, inv);
                worst = fmax(worst, check_within(ct[kind[j]] + (size_t)t * rows[j], y, Ey, rows[j],
                                                 qv_capture_kind_name(kind[j]), l, t));
            }
            /* attention of position t over the captured k, v of positions 0..t (causal, GQA) */
            for (int h = 0; h < nh; h++) {
                int kvh = h / (nh / nkv), cnt = t + 1;
                const float *q = ct[QV_CAP_Q] + (size_t)t * Dq + h * hd;
                double M = -INFINITY, Dmax = 0;
                for (int j = 0; j < cnt; j++) {
                    const float *k = ct[QV_CAP_K] + (size_t)j * Dkv + kvh * hd;
                    double sc = 0, mag = 0;
                    for (int d = 0; d < hd; d++) sc += (double)q[d] * k[d], mag += fabs((double)q[d] * k[d]);
                    p[j] = sc * scale;
                    D[j] = scale * gam(hd + 1) * mag; /* the dot (gamma_hd), then the scale (u) */
                    M = fmax(M, p[j]), Dmax = fmax(Dmax, D[j]);
                }
                double sum = 0, dp = 0;
                for (int j = 0; j < cnt; j++) {
                    dp = fmax(dp, D[j] + U * (M - p[j] + D[j] + Dmax)); /* score error + the subtraction */
                    p[j] = exp(p[j] - M);
                    sum += p[j];
                }
                /* p_j: argument shifts <= dp each (factor e^(+-2dp)); exp 2u twice, sum, divide */
                double rho = expm1(2 * dp) + gam(cnt + 4) + expm1(2 * dp) * gam(cnt + 4);
                for (int d = 0; d < hd; d++) {
                    double o = 0, mag = 0;
                    for (int j = 0; j < cnt; j++) {
                        double vv = ct[QV_CAP_V][(size_t)j * Dkv + kvh * hd + d];
                        o += p[j] / sum * vv;
                        mag += p[j] / sum * fabs(vv);
                    }
                    y[d] = o;
                    Ey[d] = (rho + gam(cnt) * (1 + rho)) * mag;
                }
                worst = fmax(worst, check_within(ct[QV_CAP_ATTN_HEADS] + (size_t)t * Dq + h * hd, y, Ey, hd,
                                                 "attn_heads", l, t));
            }
            /* o_proj from the captured per-head outputs */
            for (int i = 0; i < Dq; i++) x[i] = ct[QV_CAP_ATTN_HEADS][(size_t)t * Dq + i];
            nv_linear(x, zero, wo, H, Dq, bo, y, Ey);
            worst = fmax(worst, check_within(ct[QV_CAP_ATTN_OUT] + (size_t)t * H, y, Ey, H, "attn_out", l, t));
            /* MLP from h = fl(x + attn_out), the one FP32 add the engine does */
            for (int i = 0; i < H; i++) {
                hf[i] = ct[QV_CAP_BLOCK_INPUT][(size_t)t * H + i] + ct[QV_CAP_ATTN_OUT][(size_t)t * H + i];
                x[i] = hf[i];
            }
            nv_rmsnorm(x, zero, n2, H, eps, xn, Exn);
            nv_linear(xn, Exn, wg, I, H, NULL, g, Eg);
            nv_linear(xn, Exn, wu, I, H, NULL, u, Eu);
            nv_swiglu(g, Eg, u, Eu, I, pr, Epr);
            nv_linear(pr, Epr, wd, H, I, NULL, y, Ey);
            worst = fmax(worst, check_within(ct[QV_CAP_MLP_OUT] + (size_t)t * H, y, Ey, H, "mlp_out", l, t));
            for (int i = 0; i < H; i++)
                ck_assert_msg(ct[QV_CAP_RESIDUAL][(size_t)t * H + i] == hf[i] + ct[QV_CAP_MLP_OUT][(size_t)t * H + i],
                              "layer %d position %d: residual is not (x + attn_out) + mlp_out", l, t);
        }
        double *all[] = {wq, wk, wv, wo, wg, wu, wd, bq, bk, bv, bo, n1, n2};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    }
    /* logits from the last residual */
    double maxl = 0, maxe = 0;
    for (int r = 0; r < n_logits; r++) {
        int t = logit_pos0 + r;
        for (int i = 0; i < H; i++) x[i] = cs->t[L - 1][QV_CAP_RESIDUAL][(size_t)t * H + i];
        nv_rmsnorm(x, zero, fn, H, eps, xn, Exn);
        nv_linear(xn, Exn, lm, V, H, NULL, y, Ey);
        worst = fmax(worst, check_within(logits + (size_t)r * V, y, Ey, V, "logits", -1, t));
        for (int v = 0; v < V; v++)
            maxl = fmax(maxl, fabs(y[v])), maxe = fmax(maxe, fabs(logits[(size_t)r * V + v] - y[v]));
    }
    if (logit_rel) *logit_rel = maxl > 0 ? maxe / maxl : 0;
    double *all[] = {emb, lm, fn, zero, x, xn, Exn, y, Ey, g, Eg, u, Eu, pr, Epr, p, D};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    free(hf);
    return worst;
}

/* ---------------------------------------------------------------- (a) against the naive forward */

static void engine_matches_naive(const qv_rand_model_spec *s, int n)
{
    qv_model *m = make_model(s);
    qv_engine *e = open_ref(m);
    capture_store cs = {.L = m->cfg.num_layers, .max_pos = n, .c = &m->cfg};
    qv_engine_set_capture(e, on_capture, &cs, QV_CAP_ALL);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)n);
    rand_tokens(tok, n, m->cfg.vocab_size, s->seed + 1);
    float *logits = malloc(sizeof(float) * (size_t)n * m->cfg.vocab_size);
    qv_seq_id id;
    ck_assert(qv_engine_seq_create(e, 1, &id) == QV_OK);
    const int32_t *tp = tok;
    ck_assert_msg(qv_engine_prefill(e, 1, &id, &tp, &n, 0, logits) == QV_OK, "%s", qv_last_error());
    ck_assert_int_eq(cs.shape_bad, 0);
    ck_assert_mem_eq(logits, cs.t[0][QV_CAP_LOGITS], sizeof(float) * (size_t)n * m->cfg.vocab_size);
    float inv[512];
    qv_ref_fp32_rope_inv_freq(&m->cfg, inv);
    double rel, worst = check_stages(m, inv, tok, n, &cs, logits, 0, n, &rel);
    printf("stages dtype %s tied %d bias %d rope %d n %d: worst |diff|/bound %.3g; logits max err %.3g x max|logit|\n",
           qv_dtype_name(s->dtype), s->tied, s->qkv_bias, (int)s->rope, n, worst, rel);
    free_store(&cs);
    free(tok), free(logits);
    qv_engine_close(e);
    qv_rand_model_free(m);
}

START_TEST(matches_naive_double_forward_within_derived_bound_f32_untied)
{
    qv_rand_model_spec s = spec_small(QV_F32, 0, 0, QV_ROPE_DEFAULT, 11);
    engine_matches_naive(&s, 40);
}
END_TEST

START_TEST(matches_naive_double_forward_within_derived_bound_f16_tied_bias_llama3)
{
    qv_rand_model_spec s = spec_small(QV_F16, 1, 1, QV_ROPE_LLAMA3, 12);
    s.kv_heads = 1; /* GQA group of 4 */
    engine_matches_naive(&s, 33);
}
END_TEST

START_TEST(matches_naive_double_forward_within_derived_bound_bf16_linear_rope)
{
    qv_rand_model_spec s = spec_small(QV_BF16, 0, 1, QV_ROPE_LINEAR, 13);
    s.kv_heads = 4; /* plain MHA */
    engine_matches_naive(&s, 17);
}
END_TEST

/* inv_freq in FP32 vs the formula in double: powf (< 1 ulp), the exponent 2i/d (u, times
 * ln(base) * expo in the power's relative error), the division: relative error <= (3 + ln(base)) u
 * for default; llama3's blend adds at most 8 more roundings, each relative to the terms. */
START_TEST(rope_inv_freq_matches_formula)
{
    for (int type = 0; type < 3; type++) {
        qv_config c = {0};
        c.head_dim = 128, c.rope_theta = 500000, c.rope_type = (qv_rope_type)type;
        c.rope_factor = 8, c.rope_low_freq_factor = 1, c.rope_high_freq_factor = 4, c.rope_original_max_pos = 8192;
        float inv[64];
        qv_ref_fp32_rope_inv_freq(&c, inv);
        double tol = (3 + log(c.rope_theta) + 2 + (type == QV_ROPE_LLAMA3 ? 16 : 0)) * U;
        for (int i = 0; i < 64; i++) {
            double f = 1.0 / pow(c.rope_theta, 2.0 * i / 128);
            if (type == QV_ROPE_LINEAR) f /= 8;
            if (type == QV_ROPE_LLAMA3) {
                double wl = 2 * M_PI / f, lo = 8192 / 1.0, hi = 8192 / 4.0;
                if (wl > lo) f = f / 8;
                else if (wl >= hi) {
                    double sm = (8192 / wl - 1) / (4 - 1);
                    f = (1 - sm) * f / 8 + sm * f;
                }
            }
            ck_assert_msg(fabs(inv[i] - f) <= tol * f, "type %d i %d: %.9g vs %.9g", type, i, inv[i], f);
        }
    }
}
END_TEST

/* ---------------------------------------------------------------- (b), (c): consistency */

/* Prefill n-1 then decode one: every stage of every position, the decoded one included (it
 * reads the KV written by the earlier call, at the right positions, with RoPE at position n-1),
 * must pass the same local checks as a single prefill of n. The two runs differ only in GEMM
 * summation order (M = n vs M = 1), so each is within its stage bounds of the exact stage
 * function of its own inputs; the logits' difference is printed (docs/bounds.md). */
START_TEST(prefill_n_equals_prefill_n_minus_1_then_decode)
{
    qv_rand_model_spec s = spec_small(QV_F16, 0, 1, QV_ROPE_DEFAULT, 21);
    qv_model *m = make_model(&s);
    qv_engine *e = open_ref(m);
    int V = m->cfg.vocab_size;
    float inv[512];
    qv_ref_fp32_rope_inv_freq(&m->cfg, inv);
    for (int n = 1; n <= 40; n += 13) {
        int32_t tok[48];
        rand_tokens(tok, n, V, 100 + n);
        float *a = malloc(sizeof(float) * V), *b = malloc(sizeof(float) * V);
        capture_store ca = {.max_pos = n, .c = &m->cfg}, cb = {.max_pos = n, .c = &m->cfg};
        qv_seq_id id[2];
        ck_assert(qv_engine_seq_create(e, 2, id) == QV_OK);
        const int32_t *tp = tok;
        qv_engine_set_capture(e, on_capture, &ca, QV_CAP_ALL);
        ck_assert(qv_engine_prefill(e, 1, &id[0], &tp, &n, 1, a) == QV_OK);
        qv_engine_set_capture(e, on_capture, &cb, QV_CAP_ALL);
        if (n > 1) {
            int n1 = n - 1;
            ck_assert(qv_engine_prefill(e, 1, &id[1], &tp, &n1, 1, NULL) == QV_OK);
        }
        ck_assert(qv_engine_decode(e, 1, &id[1], &tok[n - 1], b) == QV_OK);
        ck_assert_int_eq(qv_engine_seq_len(e, id[1]), n);
        double ra, rb;
        double wa = check_stages(m, inv, tok, n, &ca, a, n - 1, 1, &ra);
        double wb = check_stages(m, inv, tok, n, &cb, b, n - 1, 1, &rb);
        double maxd = 0, maxl = 0;
        for (int v = 0; v < V; v++) maxd = fmax(maxd, fabs(a[v] - b[v])), maxl = fmax(maxl, fabs(a[v]));
        printf("prefill %d vs prefill %d + decode: worst stage ratio %.3g / %.3g; last logits differ by %.3g x max|logit|\n",
               n, n - 1, wa, wb, maxd / maxl);
        free_store(&ca), free_store(&cb);
        qv_engine_seq_free(e, id[0]);
        qv_engine_seq_free(e, id[1]);
        free(a), free(b);
    }
    qv_engine_close(e);
    qv_rand_model_free(m);
}
END_TEST

/* A ragged batch: each sequence's tensors (attending only to its own KV) pass the stage checks
 * as when run alone; batch and alone differ only by GEMM summation order (printed). A batched
 * decode continues every sequence. */
START_TEST(ragged_batch_gives_each_sequence_its_alone_logits)
{
    qv_rand_model_spec s = spec_small(QV_F32, 1, 0, QV_ROPE_LLAMA3, 31);
    qv_model *m = make_model(&s);
    qv_engine *e = open_ref(m);
    int V = m->cfg.vocab_size, lens[3] = {7, 1, 30}, last = 4;
    int32_t tok[3][32];
    const int32_t *tp[3];
    for (int i = 0; i < 3; i++) rand_tokens(tok[i], lens[i], V, 200 + i), tp[i] = tok[i];
    int64_t rows = qv_engine_logit_rows(3, lens, last);
    ck_assert_int_eq(rows, 4 + 1 + 4);
    float *batch = malloc(sizeof(float) * rows * V), *alone = malloc(sizeof(float) * 4 * V);
    capture_store cs[3];
    memset(cs, 0, sizeof cs);
    for (int i = 0; i < 3; i++) cs[i].max_pos = 32, cs[i].c = &m->cfg;
    qv_seq_id id[3];
    ck_assert(qv_engine_seq_create(e, 3, id) == QV_OK);
    qv_engine_set_capture(e, on_capture_by_seq, cs, QV_CAP_ALL);
    ck_assert_msg(qv_engine_prefill(e, 3, id, tp, lens, last, batch) == QV_OK, "%s", qv_last_error());
    qv_engine_set_capture(e, NULL, NULL, 0);
    float inv[512];
    qv_ref_fp32_rope_inv_freq(&m->cfg, inv);
    int off = 0;
    for (int i = 0; i < 3; i++) {
        int keep = lens[i] < last ? lens[i] : last;
        double rel, w = check_stages(m, inv, tok[i], lens[i], &cs[i], batch + (size_t)off * V, lens[i] - keep, keep, &rel);
        qv_seq_id one;
        ck_assert(qv_engine_seq_create(e, 1, &one) == QV_OK);
        ck_assert(qv_engine_prefill(e, 1, &one, &tp[i], &lens[i], last, alone) == QV_OK);
        double maxd = 0;
        for (int r = 0; r < keep * V; r++) maxd = fmax(maxd, fabs(batch[(size_t)off * V + r] - alone[r]));
        printf("batch seq %d (len %d): worst stage ratio %.3g, batch vs alone max |diff| %.3g\n", i, lens[i], w, maxd);
        off += keep;
        qv_engine_seq_free(e, one);
        free_store(&cs[i]);
    }
    /* decode: the batch of three single tokens vs three single decodes */
    int32_t nxt[3] = {1, 2, 3};
    float *d = malloc(sizeof(float) * 3 * V), *d1 = malloc(sizeof(float) * V);
    qv_seq_id twin[3];
    ck_assert(qv_engine_seq_create(e, 3, twin) == QV_OK);
    for (int i = 0; i < 3; i++) ck_assert(qv_engine_prefill(e, 1, &twin[i], &tp[i], &lens[i], 1, NULL) == QV_OK);
    ck_assert(qv_engine_decode(e, 3, id, nxt, d) == QV_OK);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(qv_engine_seq_len(e, id[i]), lens[i] + 1);
        ck_assert(qv_engine_decode(e, 1, &twin[i], &nxt[i], d1) == QV_OK);
        double maxd = 0;
        for (int v = 0; v < V; v++) maxd = fmax(maxd, fabs(d[(size_t)i * V + v] - d1[v]));
        printf("batched decode seq %d vs alone: max |diff| %.3g\n", i, maxd);
    }
    free(batch), free(alone), free(d), free(d1);
    qv_engine_close(e);
    qv_rand_model_free(m);
}
END_TEST

START_TEST(reset_and_reused_slots_hold_no_stale_kv)
{
    qv_rand_model_spec s = spec_small(QV_F32, 0, 0, QV_ROPE_DEFAULT, 41);
    qv_model *m = make_model(&s);
    qv_engine *e = open_ref(m);
    int V = m->cfg.vocab_size, n = 9, n2 = 20;
    int32_t a[9], b[20];
    rand_tokens(a, n, V, 1), rand_tokens(b, n2, V, 2);
    const int32_t *pa = a, *pb = b;
    float *r1 = malloc(sizeof(float) * n * V), *r2 = malloc(sizeof(float) * n * V);
    qv_seq_id id;
    ck_assert(qv_engine_seq_create(e, 1, &id) == QV_OK);
    ck_assert(qv_engine_prefill(e, 1, &id, &pa, &n, 0, r1) == QV_OK);
    ck_assert(qv_engine_seq_reset(e, id) == QV_OK);
    ck_assert_int_eq(qv_engine_seq_len(e, id), 0);
    ck_assert(qv_engine_prefill(e, 1, &id, &pb, &n2, 0, NULL) == QV_OK);
    ck_assert(qv_engine_seq_free(e, id) == QV_OK);
    ck_assert(qv_engine_seq_create(e, 1, &id) == QV_OK);
    ck_assert(qv_engine_prefill(e, 1, &id, &pa, &n, 0, r2) == QV_OK);
    ck_assert_mem_eq(r1, r2, sizeof(float) * n * V);
    free(r1), free(r2);
    qv_engine_close(e);
    qv_rand_model_free(m);
}
END_TEST

/* ---------------------------------------------------------------- (d), (e): errors */

START_TEST(bad_input_is_an_input_error_with_a_clear_message)
{
    qv_rand_model_spec s = spec_small(QV_F32, 0, 0, QV_ROPE_DEFAULT, 51);
    qv_model *m = make_model(&s);
    qv_engine *e = open_ref(m);
    qv_seq_id id;
    ck_assert(qv_engine_seq_create(e, 1, &id) == QV_OK);
    int32_t tok[64] = {0};
    const int32_t *tp = tok;
    int n = 3;
    tok[1] = 97;
    ck_assert_int_eq(qv_engine_prefill(e, 1, &id, &tp, &n, 0, NULL), QV_ERR_INPUT);
    ck_assert_msg(strstr(qv_last_error(), "token id 97 at position 1 out of range [0, 97)"), "%s", qv_last_error());
    tok[1] = -1;
    ck_assert_int_eq(qv_engine_prefill(e, 1, &id, &tp, &n, 0, NULL), QV_ERR_INPUT);
    tok[1] = 0;
    n = 0;
    ck_assert_int_eq(qv_engine_prefill(e, 1, &id, &tp, &n, 0, NULL), QV_ERR_INPUT);
    ck_assert_msg(strstr(qv_last_error(), "empty input"), "%s", qv_last_error());
    ck_assert_int_eq(qv_engine_prefill(e, 0, &id, &tp, &n, 0, NULL), QV_ERR_INPUT);
    n = 49; /* max_pos 48 */
    ck_assert_int_eq(qv_engine_prefill(e, 1, &id, &tp, &n, 0, NULL), QV_ERR_INPUT);
    ck_assert_msg(strstr(qv_last_error(), "exceeds the model's max_position_embeddings 48"), "%s", qv_last_error());
    n = 48; /* exactly the maximum is fine; one more decode is not */
    ck_assert(qv_engine_prefill(e, 1, &id, &tp, &n, 1, NULL) == QV_OK);
    ck_assert_int_eq(qv_engine_decode(e, 1, &id, tok, NULL), QV_ERR_INPUT);
    ck_assert_int_eq(qv_engine_seq_len(e, id), 48);
    ck_assert_int_eq(qv_engine_decode(e, 1, (qv_seq_id[]){7}, tok, NULL), QV_ERR_USAGE);
    qv_engine *other;
    if (qv_gpu_device_count() == 0) { /* a known engine that cannot run here says why */
        ck_assert_int_eq(qv_engine_open("gpu-qoq", m, NULL, &other), QV_ERR_UNSUPPORTED);
        ck_assert_msg(strstr(qv_last_error(), "no GPU"), "%s", qv_last_error());
    }
    ck_assert_int_eq(qv_engine_open("ref-fp64", m, NULL, &other), QV_ERR_USAGE);
    qv_engine_close(e);
    qv_rand_model_free(m);
}
END_TEST

START_TEST(nan_in_a_weight_is_a_check_failure_naming_layer_tensor_position)
{
    qv_rand_model_spec s = spec_small(QV_F32, 0, 0, QV_ROPE_DEFAULT, 61);
    qv_model *m = make_model(&s);
    /* layer 1's up_proj row 5: every token's MLP output becomes NaN, first in layer 1 */
    ((float *)m->layers[1].w_up.data)[5 * m->cfg.hidden_size + 3] = NAN;
    qv_engine *e = open_ref(m);
    qv_seq_id id[2];
    ck_assert(qv_engine_seq_create(e, 2, id) == QV_OK);
    int32_t t0[2] = {1, 2}, t1[3] = {4, 5, 6};
    const int32_t *tp[2] = {t0, t1};
    int n[2] = {2, 3};
    ck_assert_int_eq(qv_engine_prefill(e, 2, id, tp, n, 0, NULL), QV_ERR_CHECK);
    ck_assert_msg(strstr(qv_last_error(), "NaN produced in layer 1, tensor mlp_out, sequence 0, position 0"),
                  "%s", qv_last_error());
    ck_assert_int_eq(qv_engine_seq_len(e, id[0]), 0);
    qv_engine_close(e);
    /* an Inf in layer 2's k_proj reaches k at layer 2 */
    ((float *)m->layers[1].w_up.data)[5 * m->cfg.hidden_size + 3] = 0;
    ((float *)m->layers[2].wk.data)[7] = INFINITY;
    e = open_ref(m);
    ck_assert(qv_engine_seq_create(e, 1, id) == QV_OK);
    ck_assert_int_eq(qv_engine_prefill(e, 1, id, tp, n, 0, NULL), QV_ERR_CHECK);
    ck_assert_msg(strstr(qv_last_error(), "layer 2, tensor k, sequence 0, position 0"), "%s", qv_last_error());
    qv_engine_close(e);
    qv_rand_model_free(m);
}
END_TEST

/* ---------------------------------------------------------------- (f): capture */

static void count_capture(void *user, const qv_capture_point *p)
{
    int *counts = user;
    counts[p->kind]++;
    /* decode: one position, at the sequence's current length */
    ck_assert_int_eq(p->n_pos, 1);
    ck_assert_int_eq(p->pos0, 5);
    ck_assert_int_eq(p->shape[0], 1);
    if (p->kind == QV_CAP_Q || p->kind == QV_CAP_ATTN_HEADS) {
        ck_assert_int_eq(p->ndim, 3);
        ck_assert_int_eq(p->shape[1], 4);
        ck_assert_int_eq(p->shape[2], 16);
    }
    if (p->kind == QV_CAP_K) ck_assert_int_eq(p->shape[1], 2);
    if (p->kind == QV_CAP_LOGITS) ck_assert_int_eq(p->shape[1], 97);
}

START_TEST(capture_delivers_selected_kinds_with_expected_shapes)
{
    qv_rand_model_spec s = spec_small(QV_F32, 0, 0, QV_ROPE_DEFAULT, 71);
    qv_model *m = make_model(&s);
    qv_engine *e = open_ref(m);
    qv_seq_id id[2];
    ck_assert(qv_engine_seq_create(e, 2, id) == QV_OK);
    int32_t tok[5] = {1, 2, 3, 4, 5};
    const int32_t *tp[2] = {tok, tok};
    int n[2] = {5, 5}, counts[QV_CAP_COUNT] = {0};
    ck_assert(qv_engine_prefill(e, 2, id, tp, n, 1, NULL) == QV_OK);
    qv_engine_set_capture(e, count_capture, counts, (1u << QV_CAP_Q) | (1u << QV_CAP_K) | (1u << QV_CAP_ATTN_HEADS) | (1u << QV_CAP_LOGITS));
    float logits[2 * 97];
    ck_assert(qv_engine_decode(e, 2, id, tok, logits) == QV_OK);
    ck_assert_int_eq(counts[QV_CAP_Q], 2 * 3); /* per sequence, per layer */
    ck_assert_int_eq(counts[QV_CAP_K], 2 * 3);
    ck_assert_int_eq(counts[QV_CAP_ATTN_HEADS], 2 * 3);
    ck_assert_int_eq(counts[QV_CAP_LOGITS], 2);
    ck_assert_int_eq(counts[QV_CAP_V] + counts[QV_CAP_RESIDUAL] + counts[QV_CAP_BLOCK_INPUT], 0);
    qv_engine_close(e);
    qv_rand_model_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ref_fp32");
    TCase *tc = tcase_create("ref_fp32");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, matches_naive_double_forward_within_derived_bound_f32_untied);
    tcase_add_test(tc, matches_naive_double_forward_within_derived_bound_f16_tied_bias_llama3);
    tcase_add_test(tc, matches_naive_double_forward_within_derived_bound_bf16_linear_rope);
    tcase_add_test(tc, rope_inv_freq_matches_formula);
    tcase_add_test(tc, prefill_n_equals_prefill_n_minus_1_then_decode);
    tcase_add_test(tc, ragged_batch_gives_each_sequence_its_alone_logits);
    tcase_add_test(tc, reset_and_reused_slots_hold_no_stale_kv);
    tcase_add_test(tc, bad_input_is_an_input_error_with_a_clear_message);
    tcase_add_test(tc, nan_in_a_weight_is_a_check_failure_naming_layer_tensor_position);
    tcase_add_test(tc, capture_delivers_selected_kinds_with_expected_shapes);
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
