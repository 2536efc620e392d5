/* ref-qoq: the Llama forward of ref-fp32 (ref/fp32/llama_fwd.h) with QoQ numerics in its hooks.
 *
 * What changes against ref-fp32 (docs/numerics-qvet.md, "ref-qoq engine", records why):
 *  - every linear layer of a block: A8 per-token activations of its FP32 input (the RMSNorm or
 *    SwiGLU output is quantized directly, as QServe's fused producers do; the attention output is
 *    rounded to FP16 first, as the attention kernel writes it), then the integer GEMM and the
 *    fixed-order epilogue of ref/qoq (exact INT32 via dgemm), FP16 output; a bias is added in FP32
 *    and the sum rounded to FP16;
 *  - FP16 rounding points: q, k (after RoPE) and v, the attention output, the residual stream after
 *    each add, the final-norm output (the LM head is an FP16 GEMM with FP32 accumulation);
 *  - the KV cache: KV4 pages (qv_kv4_write_token), read back dequantized into the FP32 array
 *    attention reads; or KV16 (the FP16 values).
 * Ablations: fp_kv (no KV4), fp_weights (layer's linears use the FP weights; inputs rounded to
 * FP16 as an FP16 GEMM takes them), fp_acts (the layer computes in FP32: no A8, no rounding; with
 * dequantized weights unless fp_weights too). All three for every layer give ref-fp32's forward. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#undef I
#include "../fp32/llama_fwd.h"
#include "qvet/qmodel.h"
#include "qvet/mutant.h"
#include "qvet/qoq.h"
#include "qvet/ref_qoq.h"

typedef struct {
    uint8_t *u;        /* W4 codes [N][K] */
    uint8_t *s1, *sz1; /* g128 [N][K/128] */
    float *wdq;        /* dequantized [N][K], only for fp_acts layers without fp_weights */
} lin_rt;

typedef struct {
    uint8_t **k, **v; /* [layer] -> n_pages * page_bytes */
    long n_pages;
} kv_pages;

typedef struct {
    qv_llama f; /* first */
    qv_qmodel *qm;
    int owns_qm;
    lin_rt *rt; /* [L * 7] */
    int kv4, compat, per_tensor;
    qv_kv4_geom geom;
    size_t page_bytes;
    kv_pages *pg; /* [max_seqs] */
    /* scratch */
    int8_t *qa;
    float *sa, *rs, *xt;
    qv_fp16 *Y;
    size_t cap_qa, cap_sa, cap_rs, cap_y, cap_xt;
    qv_ref_qoq_probe_fn probe;
    void *probe_user;
} ref_qoq;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int grow(void **p, size_t *cap, size_t need)
{
    if (need <= *cap) return 0;
    void *n = realloc(*p, need);
    if (!n) return -1;
    *p = n;
    *cap = need;
    return 0;
}

static float r16(float x) { return qv_fp16_to_fp32(qv_fp32_to_fp16(x)); }

/* ---------------------------------------------------------------- rounding points */

static void round_hook(qv_llama *f, int layer, qv_llama_round_point p, float *x, size_t n)
{
    ref_qoq *e = (ref_qoq *)f;
    int l = layer < 0 ? f->L - 1 : layer; /* the final norm belongs to the last block's activations */
    (void)p;
    if (qv_layer_mask_has(&f->base.opts.fp_acts, l)) return;
    for (size_t i = 0; i < n; i++) x[i] = r16(x[i]);
    (void)e;
}

/* ---------------------------------------------------------------- A8 */

/* Per-tensor variant (ablation): one amax over all rows, otherwise NUMERICS.md's A8 rule. */
static void a8_per_tensor(const float *X, int M, int K, int8_t *q, float *s_a, float *rowsum)
{
    float amax = 0.0f;
    for (size_t i = 0; i < (size_t)M * K; i++) amax = fmaxf(amax, fabsf(X[i]));
    float s = amax == 0.0f ? 1.0f : amax / 127.0f, inv = amax == 0.0f ? 0.0f : 127.0f / amax;
    for (int m = 0; m < M; m++) {
        int32_t sum = 0;
        for (int k = 0; k < K; k++) {
            float v = rintf(X[(size_t)m * K + k] * inv);
            v = fminf(fmaxf(v, -127.0f), 127.0f);
            q[(size_t)m * K + k] = (int8_t)v;
            sum += (int8_t)v;
        }
        s_a[m] = s;
        rowsum[m] = (float)sum;
    }
}

/* ---------------------------------------------------------------- linear */

static qv_status linear_hook(qv_llama *f, int layer, int id, const float *x, int T, int K, int N, float *y)
{
    ref_qoq *e = (ref_qoq *)f;
    const float *b;
    if (id == QV_LLAMA_LM_HEAD) { /* FP16 weights, FP16 input (rounded at QV_RP_FINAL), FP32 accumulation */
        qv_llama_linear_f32(f, x, T, K, qv_llama_weight(f, layer, id, &b), N, NULL, y);
        goto done;
    }
    int fpw = qv_layer_mask_has(&f->base.opts.fp_weights, layer), fpa = qv_layer_mask_has(&f->base.opts.fp_acts, layer);
    const qv_qlinear *ql = &e->qm->lin[(size_t)layer * QV_QL_COUNT + id];
    const lin_rt *rt = &e->rt[(size_t)layer * QV_QL_COUNT + id];
    if (fpa) { /* FP32 activations: FP32 GEMM with FP or dequantized weights, no rounding */
        const float *W = fpw ? qv_llama_weight(f, layer, id, &b) : rt->wdq;
        if (!fpw) b = ql->bias;
        qv_llama_linear_f32(f, x, T, K, W, N, b, y);
        goto done;
    }
    size_t TK = (size_t)T * K, TN = (size_t)T * N;
    if (fpw) { /* FP16 GEMM: FP16 input, FP32 accumulation, FP16 output */
        if (grow((void **)&e->xt, &e->cap_xt, TK * sizeof(float))) return QV_ERR_NOMEM;
        for (size_t i = 0; i < TK; i++) e->xt[i] = r16(x[i]);
        const float *W = qv_llama_weight(f, layer, id, &b);
        qv_llama_linear_f32(f, e->xt, T, K, W, N, b, y);
        for (size_t i = 0; i < TN; i++) y[i] = r16(y[i]);
        goto done;
    }
    if (grow((void **)&e->qa, &e->cap_qa, TK) || grow((void **)&e->sa, &e->cap_sa, sizeof(float) * (size_t)T) ||
        grow((void **)&e->rs, &e->cap_rs, sizeof(float) * (size_t)T) || grow((void **)&e->Y, &e->cap_y, TN * sizeof(qv_fp16)))
        return qv_fail(QV_ERR_NOMEM, "ref-qoq: no memory for a %d x %d linear", T, N);
    double t0 = now_s();
    qv_status st;
    if (e->per_tensor) {
        a8_per_tensor(x, T, K, e->qa, e->sa, e->rs);
        st = QV_OK;
    } else {
        st = qv_quant_a8_ref(x, T, K, e->qa, e->sa, e->rs, e->compat);
        if (QV_MUT(engine_a8_token)) /* mutant (gate self-test): token t uses token t-1's scale */
            for (int t = T - 1; t > 0; t--) e->sa[t] = e->sa[t - 1];
    }
    qv_fp16_report rep;
    if (st == QV_OK) {
        if (ql->fmt == QV_QFMT_W4A8_G128)
            st = qv_ref_w4a8_g128_gemm(e->qa, e->sa, rt->u, ql->s0, rt->s1, rt->sz1, T, N, K, e->compat, QV_GEMM_BLAS, e->Y,
                                       NULL, &rep);
        else if (ql->fmt == QV_QFMT_W4A8_CHN)
            st = qv_ref_w4a8_pc_gemm(e->qa, e->sa, e->rs, rt->u, ql->scale, ql->szero, T, N, K, e->compat, QV_GEMM_BLAS,
                                     e->Y, NULL, &rep);
        else
            st = qv_ref_w8a8_gemm(e->qa, e->sa, (const int8_t *)ql->qweight, ql->scale, T, N, K, e->compat, QV_GEMM_BLAS,
                                  e->Y, NULL, &rep);
    }
    f->base.stats.gemm_seconds += now_s() - t0;
    f->base.stats.gemm_flops += 2.0 * T * (double)N * K;
    if (st != QV_OK)
        return qv_fail_prefix(st, "ref-qoq: layer %d %s (%s)", layer, qv_qlinear_module((qv_qlinear_id)id),
                              qv_qformat_name(ql->fmt));
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N; n++) {
            float v = qv_fp16_to_fp32(e->Y[(size_t)t * N + n]);
            y[(size_t)t * N + n] = ql->bias ? r16(v + ql->bias[n]) : v;
        }
done:
    if (e->probe) e->probe(e->probe_user, layer, id, x, T, K, y, N);
    return QV_OK;
}

/* ---------------------------------------------------------------- KV cache */

static qv_status pages_reserve(ref_qoq *e, kv_pages *pg, int layer_count, long need_tokens)
{
    long need = (need_tokens + e->geom.page_size - 1) / e->geom.page_size;
    if (need <= pg->n_pages) return QV_OK;
    long n = pg->n_pages ? pg->n_pages : 4;
    while (n < need) n *= 2;
    for (int l = 0; l < layer_count; l++) {
        uint8_t *k = realloc(pg->k[l], (size_t)n * e->page_bytes), *v;
        if (!k) return qv_fail(QV_ERR_NOMEM, "ref-qoq: no memory for %ld KV4 pages", n);
        pg->k[l] = k;
        if (!(v = realloc(pg->v[l], (size_t)n * e->page_bytes))) return qv_fail(QV_ERR_NOMEM, "ref-qoq: no memory for %ld KV4 pages", n);
        pg->v[l] = v;
    }
    pg->n_pages = n;
    return QV_OK;
}

static qv_status kv_hook(qv_llama *f, int layer, int phase, const qv_engine_batch *b, int T, const int *row_seq,
                         const int *row_pos, const float *k, const float *v)
{
    ref_qoq *e = (ref_qoq *)f;
    size_t D = (size_t)f->nkv * f->hd;
    int serve = f->base.opts.attn_mode == QV_ATTN_SERVE;
    if (phase == 1 && !(e->kv4 && serve)) return QV_OK;
    for (int t = 0; t < T; t++) {
        int slot = b->seqs[row_seq[t]];
        qv_llama_kv *kv = &f->kv[slot];
        float *kd = kv->k[layer] + (size_t)row_pos[t] * D, *vd = kv->v[layer] + (size_t)row_pos[t] * D;
        if (!e->kv4) { /* KV16: the values as produced (FP16 already, FP32 under fp_acts) */
            memcpy(kd, k + (size_t)t * D, sizeof(float) * D);
            memcpy(vd, v + (size_t)t * D, sizeof(float) * D);
            continue;
        }
        kv_pages *pg = &e->pg[slot];
        if (phase == 0) {
            QV_TRY(pages_reserve(e, pg, f->L, (long)row_pos[t] + 1));
            QV_TRY(qv_kv4_write_token(pg->k[layer], pg->n_pages, e->geom, row_pos[t], k + (size_t)t * D, e->compat));
            QV_TRY(qv_kv4_write_token(pg->v[layer], pg->n_pages, e->geom, row_pos[t], v + (size_t)t * D, e->compat));
            if (serve) { /* this call's tokens attend their fresh FP16 K/V */
                memcpy(kd, k + (size_t)t * D, sizeof(float) * D);
                memcpy(vd, v + (size_t)t * D, sizeof(float) * D);
                continue;
            }
        }
        /* kv4 mode before attention, serve mode after it: what later attention reads is KV4 */
        QV_TRY(qv_kv4_read_token(pg->k[layer], pg->n_pages, e->geom, row_pos[t], kd, e->compat));
        QV_TRY(qv_kv4_read_token(QV_MUT(engine_kv_swap) ? pg->k[layer] : pg->v[layer], pg->n_pages, e->geom, row_pos[t],
                                 vd, e->compat)); /* QV_MUT: gate self-test mutant, V read from the K pages */
    }
    return QV_OK;
}

static void seq_release(qv_engine *base, int slot)
{
    ref_qoq *e = (ref_qoq *)base;
    qv_llama_seq_release(base, slot);
    kv_pages *pg = &e->pg[slot];
    for (int l = 0; pg->k && l < e->f.L; l++) {
        free(pg->k[l]);
        free(pg->v[l]);
    }
    free(pg->k);
    free(pg->v);
    memset(pg, 0, sizeof *pg);
}

static qv_status seq_init(qv_engine *base, int slot)
{
    ref_qoq *e = (ref_qoq *)base;
    seq_release(base, slot);
    QV_TRY(qv_llama_seq_init(base, slot));
    kv_pages *pg = &e->pg[slot];
    pg->k = qv_calloc((size_t)e->f.L, sizeof(uint8_t *));
    pg->v = qv_calloc((size_t)e->f.L, sizeof(uint8_t *));
    return pg->k && pg->v ? QV_OK : QV_ERR_NOMEM;
}

/* ---------------------------------------------------------------- open / close */

static void close_engine(qv_engine *base)
{
    ref_qoq *e = (ref_qoq *)base;
    for (int i = 0; e->rt && i < e->f.L * QV_QL_COUNT; i++) {
        free(e->rt[i].u);
        free(e->rt[i].s1);
        free(e->rt[i].sz1);
        free(e->rt[i].wdq);
    }
    free(e->rt);
    free(e->pg);
    free(e->qa);
    free(e->sa);
    free(e->rs);
    free(e->xt);
    free(e->Y);
    qv_llama_fini(&e->f);
    if (e->owns_qm) qv_qmodel_close(e->qm);
    free(e);
}

extern const qv_engine_vtable qv_ref_qoq_vtable;

static qv_status open_with(const qv_model *m, qv_qmodel *qm, int owns, const qv_engine_opts *o, qv_engine **out)
{
    *out = NULL;
    const qv_config *a = &m->cfg, *c = &qm->model->cfg;
    if (a->hidden_size != c->hidden_size || a->num_layers != c->num_layers || a->num_heads != c->num_heads ||
        a->num_kv_heads != c->num_kv_heads || a->head_dim != c->head_dim || a->vocab_size != c->vocab_size ||
        a->intermediate_size != c->intermediate_size) {
        /* the message names qm's path: format it before the qmodel is freed (found by
         * tests/cli_malformed_all.sh: the path was read after free) */
        qv_status st = qv_fail(QV_ERR_INPUT, "ref-qoq: checkpoint %s is for another model shape (hidden %d, layers %d, "
                               "vocab %d) than %s (hidden %d, layers %d, vocab %d)", qm->path ? qm->path : "(memory)",
                               c->hidden_size, c->num_layers, c->vocab_size, m->dir, a->hidden_size, a->num_layers,
                               a->vocab_size);
        if (owns) qv_qmodel_close(qm);
        return st;
    }
    int any_fpw = 0;
    for (int l = 0; l < c->num_layers; l++) any_fpw |= qv_layer_mask_has(&o->fp_weights, l);
    if (any_fpw && !qm->model->layers[0].wq.data) {
        qv_status st = qv_fail(QV_ERR_UNSUPPORTED, "ref-qoq: fp_weights needs FP linear weights; checkpoint %s holds "
                               "only quantized ones", qm->path ? qm->path : "(memory)");
        if (owns) qv_qmodel_close(qm);
        return st;
    }
    ref_qoq *e = qv_calloc(1, sizeof *e);
    if (!e) {
        if (owns) qv_qmodel_close(qm);
        return QV_ERR_NOMEM;
    }
    e->qm = qm;
    e->owns_qm = owns;
    /* fp_weights layers take their FP linear weights from the model the qmodel was quantized
     * from by RTN (a checkpoint or a calibrated qmodel has none: refused above) */
    qv_status st = qv_llama_init(&e->f, &qv_ref_qoq_vtable, m, qm->model, o, &o->fp_weights);
    if (st != QV_OK) {
        if (owns) qv_qmodel_close(qm);
        free(e);
        return st;
    }
    e->f.hooks.linear = linear_hook;
    e->f.hooks.round = round_hook;
    e->f.hooks.kv_store = kv_hook;
    e->compat = o->qserve_compat ? 1 : 0;
    e->kv4 = qm->meta.kv_bits == 4 && !o->fp_kv;
    e->geom = (qv_kv4_geom){c->num_kv_heads, c->head_dim, QV_KV4_PAGE_DEFAULT};
    if (e->kv4) st = qv_kv4_page_bytes(e->geom, &e->page_bytes);
    e->pg = qv_calloc((size_t)e->f.base.max_seqs, sizeof(kv_pages));
    e->rt = qv_calloc((size_t)c->num_layers * QV_QL_COUNT, sizeof(lin_rt));
    if (st == QV_OK && (!e->pg || !e->rt)) st = QV_ERR_NOMEM;
    for (int l = 0; l < c->num_layers && st == QV_OK; l++)
        for (int id = 0; id < QV_QL_COUNT && st == QV_OK; id++) {
            const qv_qlinear *ql = &qm->lin[(size_t)l * QV_QL_COUNT + id];
            lin_rt *rt = &e->rt[(size_t)l * QV_QL_COUNT + id];
            size_t NK = (size_t)ql->N * ql->K, NG = (size_t)ql->N * (ql->K / QV_QOQ_GROUP);
            if (ql->fmt != QV_QFMT_W8A8 && !(rt->u = qv_malloc(NK))) st = QV_ERR_NOMEM;
            if (st == QV_OK && ql->fmt == QV_QFMT_W4A8_G128 && (!(rt->s1 = qv_malloc(NG)) || !(rt->sz1 = qv_malloc(NG))))
                st = QV_ERR_NOMEM;
            if (st == QV_OK) st = qv_qlinear_unpack(ql, rt->u, rt->s1, rt->sz1);
            if (st == QV_OK && qv_layer_mask_has(&o->fp_acts, l) && !qv_layer_mask_has(&o->fp_weights, l)) {
                if (!(rt->wdq = qv_malloc(NK * sizeof(float)))) st = QV_ERR_NOMEM;
                else st = qv_qlinear_dequant(ql, rt->wdq);
            }
        }
    if (st != QV_OK) {
        close_engine(&e->f.base);
        return st;
    }
    *out = &e->f.base;
    return QV_OK;
}

static qv_status open_engine(const qv_model *m, const qv_engine_opts *o, qv_engine **out)
{
    qv_qmodel *qm = NULL;
    if (o->quantized_path) QV_TRY(qv_qmodel_open(o->quantized_path, &qm));
    else QV_TRY(qv_qmodel_quantize_rtn(m, QV_QFMT_W4A8_G128, 4, &qm));
    return open_with(m, qm, 1, o, out);
}

qv_status qv_ref_qoq_open_qmodel(const qv_model *model, qv_qmodel *qm, const qv_engine_opts *o, qv_engine **out)
{
    qv_engine_opts d;
    qv_engine_opts_init(&d);
    return open_with(model, qm, 0, o ? o : &d, out);
}

void qv_ref_qoq_set_probe(qv_engine *base, qv_ref_qoq_probe_fn fn, void *user)
{
    ref_qoq *e = (ref_qoq *)base;
    e->probe = fn;
    e->probe_user = user;
}

const qv_qmodel *qv_ref_qoq_qmodel(const qv_engine *base) { return ((const ref_qoq *)base)->qm; }

void qv_ref_qoq_set_per_tensor_a8(qv_engine *base, int on) { ((ref_qoq *)base)->per_tensor = on ? 1 : 0; }

const qv_engine_vtable qv_ref_qoq_vtable = {"ref-qoq", open_engine, close_engine, seq_init, seq_release,
                                           qv_llama_forward};
