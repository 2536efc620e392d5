/* ref-fp32 against goldens from an independent implementation (transformers' LlamaForCausalLM in
 * FP32, tools/golden_transformers.py), moved here from tests/test_golden_fp32.c so that the test
 * and `qvet golden check` run the same comparison (include/qvet/golden.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qvet/compare.h"
#include "qvet/engine.h"
#include "qvet/fileio.h"
#include "golden/lib/golden_internal.h"
#include "qvet/golden.h"
#include "qvet/safetensors.h"


qv_status qv_golden_manifest_sha(const char *gdir, char hex[65])
{
    qv_golden_manifest *man;
    QV_TRY(qv_golden_manifest_load(gdir, &man));
    qv_status st = QV_OK;
    if (!man->independent) st = qv_fail(QV_ERR_INPUT, "%s: no model.safetensors_sha256 (not an independent entry)", man->path);
    else memcpy(hex, man->model_sha256, 65);
    qv_golden_manifest_free(man);
    return st;
}

typedef struct {
    int hidden, n;
    float *embed, *residual;
} hidden_cap;

static void on_capture(void *user, const qv_capture_point *p)
{
    hidden_cap *h = user;
    size_t row = (size_t)h->hidden;
    float *dst = NULL;
    if (p->kind == QV_CAP_BLOCK_INPUT && p->layer == 0) dst = h->embed;
    else if (p->kind == QV_CAP_RESIDUAL) dst = h->residual + (size_t)p->layer * (size_t)h->n * row;
    if (dst) memcpy(dst + (size_t)p->pos0 * row, p->data, sizeof(float) * (size_t)p->n_pos * row);
}

static qv_status f32_tensor(const qv_st_file *f, const char *name, int64_t numel, const float **out)
{
    const qv_st_entry *e = qv_st_find(f, name);
    if (!e || e->t.dtype != QV_F32 || qv_tensor_numel(&e->t) != numel)
        return qv_fail(QV_ERR_INPUT, "%s: tensor '%s' missing or not F32 with %lld values", f->path, name, (long long)numel);
    *out = e->t.data;
    return QV_OK;
}

/* got vs ref within rel * max|ref|; *relerr = max|err| / max|ref|. */
static qv_status check(qv_golden_log_fn log, void *user, const char *what, const float *got, const float *ref, int64_t n,
                       double rel, double *relerr)
{
    double mx = 0;
    for (int64_t i = 0; i < n; i++) mx = fmax(mx, fabs(ref[i]));
    qv_compare_result r;
    qv_status st = qv_compare_f32(what, got, ref, n, rel * mx, &r);
    qv_golden_say(log, user, "  %-28s max|err| %.3e = %.2e of max|ref| %.4g (bound %.2e: ratio %.4f), NMSE %.2e", what, r.max_abs,
          r.max_abs / mx, mx, rel, r.ratio, r.nmse);
    *relerr = mx > 0 ? r.max_abs / mx : r.max_abs;
    return st;
}

static qv_status run_file(const char *gdir, const qv_golden_seq *seq, const qv_model *m, qv_golden_log_fn log, void *user,
                          double *worst)
{
    const qv_config *c = &m->cfg;
    const int V = c->vocab_size, H = c->hidden_size, L = c->num_layers;
    int n = seq->length, rows = seq->logits_rows; /* validated by qv_golden_manifest_parse */
    int want_hidden = seq->hidden_states;
    char *path = qv_path_join(gdir, seq->file);
    qv_st_file *f = NULL;
    qv_engine *e = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    hidden_cap hc = {H, n, NULL, NULL};
    qv_status st = path ? qv_st_open(path, &f) : QV_ERR_NOMEM;
    const float *gold = NULL;
    if (st == QV_OK) {
        const qv_st_entry *ie = qv_st_find(f, "ids"), *pe = qv_st_find(f, "logits_pos");
        if (!ie || ie->t.dtype != QV_I64 || qv_tensor_numel(&ie->t) != n || !pe || pe->t.dtype != QV_I64 ||
            qv_tensor_numel(&pe->t) != rows)
            st = qv_fail(QV_ERR_INPUT, "%s: ids not I64 [%d] or logits_pos not I64 [%d]", path, n, rows);
        if (st == QV_OK) st = f32_tensor(f, "logits", (int64_t)rows * V, &gold);
        ids = malloc(sizeof(int32_t) * (size_t)n);
        logits = malloc(sizeof(float) * (size_t)rows * V);
        if (st == QV_OK && (!ids || !logits)) st = qv_fail(QV_ERR_NOMEM, "out of memory");
        for (int i = 0; st == QV_OK && i < n; i++) {
            int64_t v = ((const int64_t *)ie->t.data)[i];
            if (v < 0 || v >= V) st = qv_fail(QV_ERR_INPUT, "%s: id %lld out of the vocabulary", path, (long long)v);
            else ids[i] = (int32_t)v;
        }
        /* the rows are the last `rows` positions, which is what prefill's last_n returns */
        for (int r = 0; st == QV_OK && r < rows; r++)
            if (((const int64_t *)pe->t.data)[r] != n - rows + r)
                st = qv_fail(QV_ERR_INPUT, "%s: logits_pos[%d] is not %d", path, r, n - rows + r);
    }
    qv_engine_opts o;
    qv_engine_opts_init(&o);
    if (st == QV_OK) st = qv_engine_open("ref-fp32", m, &o, &e);
    if (st == QV_OK && want_hidden) {
        hc.embed = malloc(sizeof(float) * (size_t)n * H);
        hc.residual = malloc(sizeof(float) * (size_t)n * H * L);
        if (!hc.embed || !hc.residual) st = qv_fail(QV_ERR_NOMEM, "out of memory");
        else qv_engine_set_capture(e, on_capture, &hc, (1u << QV_CAP_BLOCK_INPUT) | (1u << QV_CAP_RESIDUAL));
    }
    qv_seq_id sid;
    if (st == QV_OK) st = qv_engine_seq_create(e, 1, &sid);
    const int32_t *tp = ids;
    if (st == QV_OK) st = qv_engine_prefill(e, 1, &sid, &tp, &n, rows, logits);
    if (st == QV_OK) {
        qv_golden_say(log, user, "%s (%d tokens, %d logits rows):", path, n, rows);
        char what[128];
        double rel;
        snprintf(what, sizeof what, "logits (len %d)", n);
        qv_status cs = check(log, user, what, logits, gold, (int64_t)rows * V, qv_golden_bound_rel(c, L, n), &rel);
        *worst = fmax(*worst, rel);
        if (want_hidden) {
            const float *g = NULL; /* set by f32_tensor on success (-O3 cannot see it: -Wmaybe-uninitialized) */
            /* the embedding output is an exact FP16 -> FP32 copy on both sides: bit equality */
            qv_status s2 = f32_tensor(f, "embed", (int64_t)n * H, &g);
            if (s2 == QV_OK) s2 = check(log, user, "embed (exact)", hc.embed, g, (int64_t)n * H, 0, &rel);
            if (cs == QV_OK) cs = s2;
            for (int l = 0; l < L; l++) {
                char name[64];
                snprintf(name, sizeof name, "residual.%d", l);
                snprintf(what, sizeof what, "residual after layer %d", l);
                s2 = f32_tensor(f, name, (int64_t)n * H, &g);
                if (s2 == QV_OK)
                    s2 = check(log, user, what, hc.residual + (size_t)l * n * H, g, (int64_t)n * H,
                               qv_golden_bound_rel(c, l + 1, n), &rel);
                if (cs == QV_OK) cs = s2;
            }
        }
        st = cs;
    }
    free(hc.embed);
    free(hc.residual);
    free(logits);
    free(ids);
    qv_engine_close(e);
    qv_st_close(f);
    free(path);
    return st;
}

qv_status qv_golden_check_fp32_manifest(const char *gdir, const qv_golden_manifest *man, const qv_model *m,
                                        qv_golden_log_fn log, void *user, double *worst)
{
    *worst = 0;
    if (!man->independent) return qv_fail(QV_ERR_INPUT, "%s: not an independent entry (no \"files\" to compare)", man->path);
    qv_status st = QV_OK, first_check = QV_OK;
    for (int i = 0; st == QV_OK && i < man->n_seq; i++) {
        qv_status s = run_file(gdir, &man->seq[i], m, log, user, worst);
        if (s == QV_ERR_CHECK) { /* keep comparing the other files; report the first failure */
            if (first_check == QV_OK) first_check = s;
        } else {
            st = s;
        }
    }
    if (st == QV_OK) st = first_check;
    qv_golden_say(log, user, "%s: worst logits error %.2e of max|logit|", gdir, *worst);
    return st;
}

qv_status qv_golden_check_fp32(const char *gdir, const qv_model *m, qv_golden_log_fn log, void *user, double *worst)
{
    qv_golden_manifest *man;
    *worst = 0;
    QV_TRY(qv_golden_manifest_load(gdir, &man));
    qv_status st = qv_golden_check_fp32_manifest(gdir, man, m, log, user, worst);
    qv_golden_manifest_free(man);
    return st;
}
