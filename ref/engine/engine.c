/* The engine interface's common part: the name table, sequence slots, and the input checks
 * every engine shares (so no engine can forget one). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qvet/engine.h"

extern const qv_engine_vtable qv_ref_fp32_vtable;
extern const qv_engine_vtable qv_ref_qoq_vtable;
/* gpu/engine_gpu.c with CUDA; gpu/nogpu/engine_nogpu.c (open: "no GPU") without */
extern const qv_engine_vtable qv_gpu_fp16_vtable;
extern const qv_engine_vtable qv_gpu_qoq_vtable;

static const struct {
    const char *name;
    const qv_engine_vtable *vt;
} engines[] = {
    {"ref-fp32", &qv_ref_fp32_vtable},
    {"ref-qoq", &qv_ref_qoq_vtable},
    {"gpu-fp16", &qv_gpu_fp16_vtable},
    {"gpu-qoq", &qv_gpu_qoq_vtable},
};

void qv_engine_opts_init(qv_engine_opts *o)
{
    memset(o, 0, sizeof *o);
    o->attn_mode = QV_ATTN_KV4;
}

const char *qv_capture_kind_name(qv_capture_kind k)
{
    static const char *names[QV_CAP_COUNT] = {"block_input", "q", "k", "v", "attn_heads",
                                              "attn_out", "mlp_out", "residual", "logits"};
    return (unsigned)k < QV_CAP_COUNT ? names[k] : "?";
}

qv_status qv_engine_open(const char *name, const qv_model *model, const qv_engine_opts *opts,
                         qv_engine **out)
{
    *out = NULL;
    if (!name || !model) return qv_fail(QV_ERR_USAGE, "engine: name and model are required");
    for (size_t i = 0; i < sizeof engines / sizeof engines[0]; i++) {
        if (strcmp(engines[i].name, name) != 0) continue;
        qv_engine_opts dflt;
        qv_engine_opts_init(&dflt);
        if (opts && opts->dtype != QV_DTYPE_FP16) {
            /* checked here, before any engine (or "no GPU") answers, so a wrong pairing is always a usage error */
            if (opts->dtype != QV_DTYPE_BF16)
                return qv_fail(QV_ERR_USAGE, "engine %s: unknown 16-bit type %d (fp16, bf16)", name, (int)opts->dtype);
            if (strcmp(name, "gpu-fp16") != 0)
                return qv_fail(QV_ERR_USAGE, "engine %s: --dtype %s applies to gpu-fp16 only (the other engines' "
                               "types are fixed: ref-fp32 FP32, ref-qoq and gpu-qoq FP16)", name,
                               qv_dtype16_name(opts->dtype));
        }
        return engines[i].vt->open(model, opts ? opts : &dflt, out);
    }
    return qv_fail(QV_ERR_USAGE, "unknown engine '%s' (ref-fp32, ref-qoq, gpu-fp16, gpu-qoq)", name);
}

qv_status qv_engine_base_init(qv_engine *e, const qv_engine_vtable *vt, const qv_model *m,
                              const qv_engine_opts *o)
{
    e->vt = vt;
    e->model = m;
    e->opts = *o;
    e->max_seqs = o->max_seqs > 0 ? o->max_seqs : 64;
    e->seq_len = qv_malloc(sizeof(int) * (size_t)e->max_seqs);
    if (!e->seq_len) return QV_ERR_NOMEM;
    for (int i = 0; i < e->max_seqs; i++) e->seq_len[i] = -1;
    return QV_OK;
}

void qv_engine_base_free(qv_engine *e) { free(e->seq_len); }

void qv_engine_close(qv_engine *e)
{
    if (!e) return;
    for (int i = 0; i < e->max_seqs; i++)
        if (e->seq_len[i] >= 0) e->vt->seq_release(e, i);
    e->vt->close(e);
}

const char *qv_engine_name(const qv_engine *e) { return e->vt->name; }

static int seq_ok(const qv_engine *e, qv_seq_id id)
{
    return id >= 0 && id < e->max_seqs && e->seq_len[id] >= 0;
}

qv_status qv_engine_seq_create(qv_engine *e, int n, qv_seq_id *ids)
{
    int free_slots = 0;
    for (int i = 0; i < e->max_seqs; i++) free_slots += e->seq_len[i] < 0;
    if (n < 0 || n > free_slots)
        return qv_fail(QV_ERR_USAGE, "%s: cannot create %d sequences (%d of %d slots free)",
                       e->vt->name, n, free_slots, e->max_seqs);
    int made = 0;
    for (int i = 0; i < e->max_seqs && made < n; i++) {
        if (e->seq_len[i] >= 0) continue;
        qv_status st = e->vt->seq_init(e, i);
        if (st != QV_OK) {
            while (made > 0) qv_engine_seq_free(e, ids[--made]);
            return st;
        }
        e->seq_len[i] = 0;
        ids[made++] = i;
    }
    return QV_OK;
}

qv_status qv_engine_seq_reset(qv_engine *e, qv_seq_id id)
{
    if (!seq_ok(e, id)) return qv_fail(QV_ERR_USAGE, "%s: no sequence %d", e->vt->name, id);
    QV_TRY(e->vt->seq_init(e, id));
    e->seq_len[id] = 0;
    return QV_OK;
}

qv_status qv_engine_seq_free(qv_engine *e, qv_seq_id id)
{
    if (!seq_ok(e, id)) return qv_fail(QV_ERR_USAGE, "%s: no sequence %d", e->vt->name, id);
    e->vt->seq_release(e, id);
    e->seq_len[id] = -1;
    return QV_OK;
}

int qv_engine_seq_len(const qv_engine *e, qv_seq_id id) { return seq_ok(e, id) ? e->seq_len[id] : -1; }

int64_t qv_engine_logit_rows(int n_seqs, const int *n_tokens, int last_n)
{
    int64_t rows = 0;
    for (int i = 0; i < n_seqs; i++)
        rows += last_n <= 0 || last_n > n_tokens[i] ? n_tokens[i] : last_n;
    return rows;
}

void qv_engine_set_capture(qv_engine *e, qv_capture_fn fn, void *user, uint32_t kind_mask)
{
    e->capture = fn;
    e->capture_user = user;
    e->capture_mask = fn ? kind_mask : 0;
}

void qv_engine_get_stats(const qv_engine *e, qv_engine_stats *s) { *s = e->stats; }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Checks the batch against the model and the sequences, then runs it. */
static qv_status run_batch(qv_engine *e, int n_seqs, const qv_seq_id *seqs,
                           const int32_t *const *tokens, const int *n_tokens, int last_n,
                           float *logits)
{
    const qv_config *c = &e->model->cfg;
    const char *en = e->vt->name;
    if (n_seqs <= 0) return qv_fail(QV_ERR_INPUT, "%s: empty batch (no sequences)", en);
    if (!seqs || !tokens || !n_tokens) return qv_fail(QV_ERR_USAGE, "%s: NULL batch arrays", en);
    int *start = qv_malloc(sizeof(int) * (size_t)n_seqs);
    if (!start) return QV_ERR_NOMEM;
    qv_status st = QV_OK;
    int64_t total = 0;
    for (int i = 0; i < n_seqs && st == QV_OK; i++) {
        qv_seq_id id = seqs[i];
        if (!seq_ok(e, id)) {
            st = qv_fail(QV_ERR_USAGE, "%s: batch entry %d: no sequence %d", en, i, id);
            break;
        }
        for (int j = 0; j < i; j++)
            if (seqs[j] == id) st = qv_fail(QV_ERR_USAGE, "%s: sequence %d twice in one batch", en, id);
        if (st != QV_OK) break;
        if (n_tokens[i] <= 0 || !tokens[i]) {
            st = qv_fail(QV_ERR_INPUT, "%s: sequence %d: empty input (%d tokens)", en, id, n_tokens[i]);
            break;
        }
        start[i] = e->seq_len[id];
        if ((int64_t)start[i] + n_tokens[i] > c->max_position_embeddings) {
            st = qv_fail(QV_ERR_INPUT,
                         "%s: sequence %d: context of %lld tokens exceeds the model's "
                         "max_position_embeddings %d",
                         en, id, (long long)start[i] + n_tokens[i], c->max_position_embeddings);
            break;
        }
        for (int t = 0; t < n_tokens[i]; t++) {
            int32_t tok = tokens[i][t];
            if (tok < 0 || tok >= c->vocab_size) {
                st = qv_fail(QV_ERR_INPUT, "%s: sequence %d: token id %d at position %d out of range [0, %d)",
                             en, id, (int)tok, start[i] + t, c->vocab_size);
                break;
            }
        }
        total += n_tokens[i];
    }
    if (st == QV_OK) {
        qv_engine_batch b = {n_seqs, seqs, tokens, n_tokens, start, last_n};
        double t0 = now_s();
        st = e->vt->forward(e, &b, logits);
        e->stats.forward_seconds += now_s() - t0;
        if (st == QV_OK) {
            for (int i = 0; i < n_seqs; i++) e->seq_len[seqs[i]] += n_tokens[i];
            e->stats.tokens += total;
        }
    }
    free(start);
    return st;
}

qv_status qv_engine_prefill(qv_engine *e, int n_seqs, const qv_seq_id *seqs,
                            const int32_t *const *tokens, const int *n_tokens, int last_n,
                            float *logits)
{
    return run_batch(e, n_seqs, seqs, tokens, n_tokens, last_n, logits);
}

qv_status qv_engine_decode(qv_engine *e, int n_seqs, const qv_seq_id *seqs,
                           const int32_t *tokens, float *logits)
{
    if (n_seqs <= 0) return qv_fail(QV_ERR_INPUT, "%s: empty batch (no sequences)", e->vt->name);
    if (!tokens) return qv_fail(QV_ERR_USAGE, "%s: NULL tokens", e->vt->name);
    const int32_t **ptr = qv_malloc(sizeof(*ptr) * (size_t)n_seqs);
    int *ones = qv_malloc(sizeof(int) * (size_t)n_seqs);
    qv_status st = QV_ERR_NOMEM;
    if (ptr && ones) {
        for (int i = 0; i < n_seqs; i++) {
            ptr[i] = tokens + i;
            ones[i] = 1;
        }
        st = run_batch(e, n_seqs, seqs, (const int32_t *const *)ptr, ones, 1, logits);
    }
    free(ptr);
    free(ones);
    return st;
}
