/* Random-weight models in memory (include/qvet/rand_model.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qvet/fp16.h"
#include "qvet/rand_model.h"

typedef struct { uint64_t s; } rng;

static uint64_t rng_next(rng *r) /* splitmix64 */
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_normal(rng *r)
{
    double u1 = ((double)(rng_next(r) >> 11) + 0.5) * 0x1p-53, u2 = (double)(rng_next(r) >> 11) * 0x1p-53;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

typedef struct {
    unsigned char *base;
    size_t used, size;
} arena;

static qv_status fill(arena *a, rng *r, qv_dtype dt, int ndim, int64_t d0, int64_t d1, double mean,
                      double sd, qv_tensor *t)
{
    int64_t shape[2] = {d0, d1}, n = d0 * (ndim == 2 ? d1 : 1);
    size_t es = qv_dtype_size(dt), bytes = (size_t)n * es;
    if (a->base) {
        void *p = a->base + a->used;
        QV_TRY(qv_tensor_view(t, p, dt, ndim, shape));
        for (int64_t i = 0; i < n; i++) {
            float v = (float)(mean + sd * rng_normal(r));
            if (dt == QV_F32) ((float *)p)[i] = v;
            else if (dt == QV_F16) ((uint16_t *)p)[i] = qv_fp32_to_fp16(v);
            else ((uint16_t *)p)[i] = qv_fp32_to_bf16(v);
        }
    }
    a->used += (bytes + 63) & ~(size_t)63;
    return QV_OK;
}

static qv_status build(const qv_rand_model_spec *s, arena *a, qv_model *m)
{
    rng r = {s->seed};
    qv_dtype dt = s->dtype;
    int H = s->hidden, I = s->inter, Dq = s->heads * s->head_dim, Dkv = s->kv_heads * s->head_dim;
    QV_TRY(fill(a, &r, dt, 2, s->vocab, H, 0, 1, &m->embed));
    QV_TRY(fill(a, &r, dt, 1, H, 0, 1, 0.1, &m->final_norm));
    if (s->tied) m->lm_head = m->embed;
    else QV_TRY(fill(a, &r, dt, 2, s->vocab, H, 0, 1 / sqrt(H), &m->lm_head));
    for (int l = 0; l < s->layers; l++) {
        qv_layer_weights *w = &m->layers[l];
        QV_TRY(fill(a, &r, dt, 2, Dq, H, 0, 1 / sqrt(H), &w->wq));
        QV_TRY(fill(a, &r, dt, 2, Dkv, H, 0, 1 / sqrt(H), &w->wk));
        QV_TRY(fill(a, &r, dt, 2, Dkv, H, 0, 1 / sqrt(H), &w->wv));
        QV_TRY(fill(a, &r, dt, 2, H, Dq, 0, 1 / sqrt(Dq), &w->wo));
        QV_TRY(fill(a, &r, dt, 2, I, H, 0, 1 / sqrt(H), &w->w_gate));
        QV_TRY(fill(a, &r, dt, 2, I, H, 0, 1 / sqrt(H), &w->w_up));
        QV_TRY(fill(a, &r, dt, 2, H, I, 0, 1 / sqrt(I), &w->w_down));
        if (s->qkv_bias) {
            QV_TRY(fill(a, &r, dt, 1, Dq, 0, 0, 0.1, &w->bq));
            QV_TRY(fill(a, &r, dt, 1, Dkv, 0, 0, 0.1, &w->bk));
            QV_TRY(fill(a, &r, dt, 1, Dkv, 0, 0, 0.1, &w->bv));
        }
        QV_TRY(fill(a, &r, dt, 1, H, 0, 1, 0.1, &w->input_norm));
        QV_TRY(fill(a, &r, dt, 1, H, 0, 1, 0.1, &w->post_norm));
    }
    return QV_OK;
}

qv_status qv_rand_model_create(const qv_rand_model_spec *s, qv_model **out)
{
    *out = NULL;
    if (s->hidden <= 0 || s->inter <= 0 || s->layers <= 0 || s->heads <= 0 || s->kv_heads <= 0 ||
        s->head_dim <= 0 || s->vocab <= 0 || s->max_pos <= 0 || s->heads % s->kv_heads ||
        (s->dtype != QV_F32 && s->dtype != QV_F16 && s->dtype != QV_BF16))
        return qv_fail(QV_ERR_USAGE, "random model: bad spec");
    qv_model *m = qv_calloc(1, sizeof *m);
    if (!m) return QV_ERR_NOMEM;
    m->layers = qv_calloc((size_t)s->layers, sizeof *m->layers);
    m->dir = malloc(64);
    if (!m->layers || !m->dir) {
        qv_rand_model_free(m);
        return QV_ERR_NOMEM;
    }
    snprintf(m->dir, 64, "<random:%llu>", (unsigned long long)s->seed);
    arena a = {0};
    build(s, &a, m); /* sizing pass */
    a.size = a.used;
    a.used = 0;
    a.base = qv_malloc(a.size);
    m->owned = a.base;
    qv_status st = a.base ? build(s, &a, m) : QV_ERR_NOMEM;
    if (st != QV_OK) {
        qv_rand_model_free(m);
        return st;
    }
    qv_config *c = &m->cfg;
    snprintf(c->model_type, sizeof c->model_type, "llama");
    c->hidden_size = s->hidden, c->intermediate_size = s->inter, c->num_layers = s->layers;
    c->num_heads = s->heads, c->num_kv_heads = s->kv_heads, c->head_dim = s->head_dim;
    c->vocab_size = s->vocab, c->max_position_embeddings = s->max_pos;
    c->rms_norm_eps = 1e-5f;
    c->rope_theta = s->rope_theta > 0 ? s->rope_theta : 10000.0;
    c->rope_type = s->rope;
    if (s->rope == QV_ROPE_LLAMA3) {
        c->rope_factor = 8, c->rope_low_freq_factor = 1, c->rope_high_freq_factor = 4;
        c->rope_original_max_pos = s->max_pos / 4 > 0 ? s->max_pos / 4 : 1;
    } else if (s->rope == QV_ROPE_LINEAR) {
        c->rope_factor = 2;
    }
    c->tie_word_embeddings = s->tied;
    c->attention_bias = s->qkv_bias;
    c->torch_dtype = s->dtype;
    c->bos_token_id = c->eos_token_id = -1;
    *out = m;
    return QV_OK;
}

void qv_rand_model_free(qv_model *m)
{
    if (!m) return;
    free(m->owned);
    free(m->layers);
    free(m->dir);
    free(m);
}
