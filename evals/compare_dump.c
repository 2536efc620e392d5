/* R vs C from logit dumps written by any engine (include/qvet/eval_compare.h, docs/byo.md).
 * Each side is a cursor over its files: one file open (memory-mapped) at a time, one chunk at a
 * time, a few rows converted to FP32 at a time; every row goes through qv_cmp_accumulate, the
 * code that scores qvet's own engines, so the figures cannot drift from `qvet compare`'s. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qvet/eval_compare.h"
#include "qvet/fp16.h"
#include "qvet/safetensors.h"

#define ROWS 16 /* rows converted per step: bounds the FP32 buffers at 2 * ROWS * V floats */

typedef struct {
    const char *label;   /* --ref-logits / --cand-logits as given */
    char **files;
    int n_files, next_file;
    qv_st_file *f;
    const qv_st_entry *ids, *logits;
    int k, in_file;      /* chunks in the open file, and the next one to hand out */
    int ctx, rows, V;    /* of the open file */
} cursor;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void cursor_free(cursor *c)
{
    if (c->f) qv_st_close(c->f);
    for (int i = 0; i < c->n_files; i++) free(c->files[i]);
    free(c->files);
    *c = (cursor){0};
}

static qv_status cursor_init(cursor *c, const char *path)
{
    *c = (cursor){.label = path};
    if (!qv_path_exists(path)) return qv_fail(QV_ERR_IO, "%s: no such file or folder", path);
    if (!qv_is_dir(path)) {
        c->files = qv_malloc(sizeof(char *));
        if (!c->files || !(c->files[0] = strdup(path))) return QV_ERR_NOMEM;
        c->n_files = 1;
        return QV_OK;
    }
    DIR *d = opendir(path);
    if (!d) return qv_fail(QV_ERR_IO, "%s: cannot open the folder", path);
    struct dirent *e;
    int cap = 0;
    qv_status st = QV_OK;
    while (st == QV_OK && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 12 || strcmp(e->d_name + n - 12, ".safetensors") != 0 || e->d_name[0] == '.') continue;
        if (c->n_files == cap) {
            cap = cap ? 2 * cap : 64;
            char **v = realloc(c->files, sizeof(char *) * (size_t)cap);
            if (!v) {
                st = QV_ERR_NOMEM;
                break;
            }
            c->files = v;
        }
        if (!(c->files[c->n_files] = qv_path_join(path, e->d_name))) st = QV_ERR_NOMEM;
        else c->n_files++;
    }
    closedir(d);
    if (st != QV_OK) return st;
    if (c->n_files == 0) return qv_fail(QV_ERR_INPUT, "%s: the folder holds no .safetensors file", path);
    qsort(c->files, (size_t)c->n_files, sizeof(char *), cmp_str);
    return QV_OK;
}

/* Opens the next file and checks its tensors' dtypes and shapes. */
static qv_status cursor_open_next(cursor *c)
{
    if (c->f) qv_st_close(c->f);
    c->f = NULL;
    const char *path = c->files[c->next_file++];
    QV_TRY(qv_st_open(path, &c->f));
    c->ids = qv_st_find(c->f, "ids");
    c->logits = qv_st_find(c->f, "logits");
    if (!c->ids || !c->logits)
        return qv_fail(QV_ERR_INPUT, "%s: needs tensors 'ids' and 'logits' (missing '%s')", path, c->ids ? "logits" : "ids");
    const qv_tensor *ti = &c->ids->t, *tl = &c->logits->t;
    if (ti->dtype != QV_I32) return qv_fail(QV_ERR_INPUT, "%s: tensor 'ids' must be I32", path);
    if (tl->dtype != QV_F32 && tl->dtype != QV_F16 && tl->dtype != QV_BF16)
        return qv_fail(QV_ERR_INPUT, "%s: tensor 'logits' must be F32, F16 or BF16", path);
    int batched = ti->ndim == 2;
    if ((ti->ndim != 1 && ti->ndim != 2) || tl->ndim != ti->ndim + 1)
        return qv_fail(QV_ERR_INPUT, "%s: 'ids' must be [ctx] with 'logits' [ctx, vocab], or [k, ctx] with [k, ctx, vocab] "
                                     "(got %d and %d dimensions)", path, ti->ndim, tl->ndim);
    int64_t k = batched ? ti->shape[0] : 1, ctx = ti->shape[batched], rows = tl->shape[batched], V = tl->shape[batched + 1];
    if (batched && tl->shape[0] != k)
        return qv_fail(QV_ERR_INPUT, "%s: 'ids' holds %lld chunks, 'logits' %lld", path, (long long)k, (long long)tl->shape[0]);
    if (k < 1 || ctx < 2 || ctx > (1 << 24)) return qv_fail(QV_ERR_INPUT, "%s: 'ids' shape: %lld chunks of %lld tokens", path, (long long)k, (long long)ctx);
    if (rows != ctx && rows != ctx - 1)
        return qv_fail(QV_ERR_INPUT, "%s: 'logits' has %lld rows per chunk; ids have ctx %lld (expected %lld or %lld)", path,
                       (long long)rows, (long long)ctx, (long long)ctx, (long long)ctx - 1);
    if (V < 1 || V > (1 << 24)) return qv_fail(QV_ERR_INPUT, "%s: 'logits' vocab %lld", path, (long long)V);
    c->k = (int)k, c->ctx = (int)ctx, c->rows = (int)rows, c->V = (int)V, c->in_file = 0;
    return QV_OK;
}

/* The next chunk: *more = 0 when the files are exhausted. */
static qv_status cursor_next(cursor *c, int *more)
{
    *more = 1;
    while (!c->f || c->in_file >= c->k) {
        if (c->next_file >= c->n_files) {
            *more = 0;
            return QV_OK;
        }
        QV_TRY(cursor_open_next(c));
    }
    c->in_file++;
    return QV_OK;
}

static const int32_t *cursor_ids(const cursor *c)
{
    return (const int32_t *)c->ids->t.data + (size_t)(c->in_file - 1) * (size_t)c->ctx;
}

/* Rows [r0, r0 + n) of the current chunk as FP32; NaN/Inf named by file, chunk, position. */
static qv_status cursor_rows(const cursor *c, int chunk, int r0, int n, float *out)
{
    size_t V = (size_t)c->V, base = ((size_t)(c->in_file - 1) * (size_t)c->rows + (size_t)r0) * V;
    const void *d = c->logits->t.data;
    for (size_t i = 0; i < (size_t)n * V; i++) {
        float x = c->logits->t.dtype == QV_F32 ? ((const float *)d)[base + i]
                : c->logits->t.dtype == QV_F16 ? qv_fp16_to_fp32(((const uint16_t *)d)[base + i])
                                               : qv_bf16_to_fp32(((const uint16_t *)d)[base + i]);
        if (!isfinite(x))
            return qv_fail(QV_ERR_INPUT, "%s: chunk %d (file chunk %d), position %d, vocab entry %d: logit is %s",
                           c->f->path, chunk, c->in_file - 1, r0 + (int)(i / V), (int)(i % V), isnan(x) ? "NaN" : "Inf");
        out[i] = x;
    }
    return QV_OK;
}

static uint64_t fnv_step(uint64_t h, const int32_t *ids, int n)
{
    for (int i = 0; i < n; i++)
        for (int b = 0; b < 4; b++) {
            h ^= ((uint32_t)ids[i] >> (8 * b)) & 0xffu;
            h *= 1099511628211ull;
        }
    return h;
}

static int first_diff(const int32_t *a, const int32_t *b, int n)
{
    for (int i = 0; i < n; i++)
        if (a[i] != b[i]) return i;
    return -1;
}

qv_status qv_eval_compare_dumps(const char *ref, const char *cand, const char *ids_path, const qv_cmp_opts *o,
                                int *n_chunks, int *ctx_out, int *vocab, uint64_t *ids_hash)
{
    if (!o->on_chunk) return qv_fail(QV_ERR_INTERNAL, "compare: no chunk callback");
    cursor R, C;
    qv_st_file *fi = NULL;
    const int32_t *want = NULL;
    int64_t want_chunks = -1, want_ctx = 0;
    float *lr = NULL, *lc = NULL;
    qv_cmp_chunk ch = {0};
    uint64_t h = 1469598103934665603ull;
    int ctx = 0, V = 0, nc = 0, more_r = 1, more_c = 1;
    qv_status st = cursor_init(&R, ref);
    if (st == QV_OK) st = cursor_init(&C, cand);
    else C = (cursor){0};
    if (st == QV_OK && ids_path) {
        st = qv_st_open(ids_path, &fi);
        const qv_st_entry *e = st == QV_OK ? qv_st_find(fi, "ids") : NULL;
        if (st == QV_OK && (!e || e->t.dtype != QV_I32 || e->t.ndim != 2 || e->t.shape[0] < 1 || e->t.shape[1] < 2))
            st = qv_fail(QV_ERR_INPUT, "%s: needs tensor 'ids' I32 [n_chunks, ctx] (as `qvet dump-ids` writes)", ids_path);
        if (st == QV_OK) want = e->t.data, want_chunks = e->t.shape[0], want_ctx = e->t.shape[1];
    }
    while (st == QV_OK) {
        st = cursor_next(&R, &more_r);
        if (st == QV_OK) st = cursor_next(&C, &more_c);
        if (st != QV_OK) break;
        if (!more_r || !more_c) {
            if (more_r || more_c)
                st = qv_fail(QV_ERR_INPUT, "chunk counts differ: %s holds %d chunks, %s holds more (%s)", more_r ? cand : ref, nc,
                             more_r ? ref : cand, (more_r ? &R : &C)->f->path);
            break;
        }
        if (want_chunks >= 0 && nc >= want_chunks) {
            st = qv_fail(QV_ERR_INPUT, "chunk counts differ: %s holds %lld chunks, the dumps hold more (%s)", ids_path,
                         (long long)want_chunks, R.f->path);
            break;
        }
        if (nc == 0) {
            ctx = R.ctx, V = R.V;
            ch.n = ctx - 1;
            lr = qv_malloc(sizeof(float) * ROWS * (size_t)V);
            lc = qv_malloc(sizeof(float) * ROWS * (size_t)V);
            ch.kld = qv_malloc(sizeof(double) * (size_t)ch.n);
            ch.dp = qv_malloc(sizeof(double) * (size_t)ch.n);
            ch.target = qv_malloc(sizeof(int32_t) * (size_t)ch.n);
            if (!lr || !lc || !ch.kld || !ch.dp || !ch.target) {
                st = QV_ERR_NOMEM;
                break;
            }
        }
        const cursor *bad = R.ctx != ctx ? &R : C.ctx != ctx ? &C : NULL;
        if (bad) {
            st = qv_fail(QV_ERR_INPUT, "%s: chunk %d has ctx %d, the first chunk of %s has %d", bad->f->path, nc, bad->ctx, ref, ctx);
            break;
        }
        bad = R.V != V ? &R : C.V != V ? &C : NULL;
        if (bad) {
            st = qv_fail(QV_ERR_INPUT, "%s: chunk %d has vocab %d, the first chunk of %s has %d", bad->f->path, nc, bad->V, ref, V);
            break;
        }
        const int32_t *ir = cursor_ids(&R), *ic = cursor_ids(&C);
        int d = first_diff(ir, ic, ctx);
        if (d >= 0) {
            st = qv_fail(QV_ERR_INPUT, "chunk %d: ids differ at position %d: %s has %d, %s has %d", nc, d, R.f->path, ir[d],
                         C.f->path, ic[d]);
            break;
        }
        if (want) {
            if (want_ctx != ctx) {
                st = qv_fail(QV_ERR_INPUT, "%s: ctx %lld, but %s has chunks of %d", ids_path, (long long)want_ctx, R.f->path, ctx);
                break;
            }
            d = first_diff(ir, want + (size_t)nc * (size_t)ctx, ctx);
            if (d >= 0) {
                st = qv_fail(QV_ERR_INPUT, "chunk %d: ids differ at position %d: %s has %d, %s has %d", nc, d, R.f->path, ir[d],
                             ids_path, want[(size_t)nc * (size_t)ctx + (size_t)d]);
                break;
            }
        }
        h = fnv_step(h, ir, ctx);
        ch.index = nc;
        ch.nll_ref = ch.nll_cand = 0;
        ch.top1 = 0;
        for (int j = 0; j < ch.n; j++) ch.target[j] = ir[j + 1];
        for (int r0 = 0; r0 < ch.n && st == QV_OK; r0 += ROWS) {
            int n = ch.n - r0 < ROWS ? ch.n - r0 : ROWS;
            st = cursor_rows(&R, nc, r0, n, lr);
            if (st == QV_OK) st = cursor_rows(&C, nc, r0, n, lc);
            if (st == QV_OK)
                qv_cmp_accumulate(lr, lc, n, V, ch.target + r0, ch.kld + r0, ch.dp + r0, &ch.nll_ref, &ch.nll_cand, &ch.top1);
        }
        if (st == QV_OK) st = o->on_chunk(o->user, &ch);
        nc++;
        if (st == QV_OK && o->progress) o->progress(o->progress_user, nc, want_chunks > 0 ? want_chunks : nc);
    }
    if (st == QV_OK && nc == 0) st = qv_fail(QV_ERR_INPUT, "%s: no chunks", ref);
    if (st == QV_OK && want_chunks >= 0 && nc != want_chunks)
        st = qv_fail(QV_ERR_INPUT, "chunk counts differ: %s holds %lld chunks, the dumps %d", ids_path, (long long)want_chunks, nc);
    if (st == QV_OK) *n_chunks = nc, *ctx_out = ctx, *vocab = V, *ids_hash = h;
    free(lr);
    free(lc);
    qv_cmp_chunk_free(&ch);
    if (fi) qv_st_close(fi);
    cursor_free(&R);
    cursor_free(&C);
    return st;
}
