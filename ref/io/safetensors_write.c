/* safetensors writer. Layout, chosen so that the reference implementation (which rejects gaps
 * between tensors) reads our files and every view we hand out is aligned for its dtype:
 *  - the header is padded with spaces so the data starts at a multiple of 8 bytes;
 *  - tensors are stored back to back, ordered by decreasing dtype size and then by name, so each
 *    tensor's offset is a multiple of its dtype size (all earlier sizes are multiples of it);
 *  - the header lists "__metadata__" first (keys sorted), then tensors in storage order.
 * The output depends only on the set of tensors and metadata, never on the order of the
 * qv_st_writer_add calls, so the same tensors give the same bytes. */
#include "qvet/safetensors.h"

#include <stdlib.h>
#include <string.h>

#include "ref/io/json_util.h"

typedef struct {
    char *name;
    qv_dtype dt;
    int ndim;
    int64_t shape[QV_MAX_DIMS];
    void *data;
    size_t nbytes;
} wentry;

struct qv_st_writer {
    wentry *e; int n, cap;
    char **mk, **mv; int nm, capm;
};

typedef struct { char *s; size_t n, cap; int oom; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) { b->oom = 1; return; }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_json_string(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') { esc[0] = '\\'; esc[1] = (char)*p; sb_put(b, esc, 2); }
        else if (*p < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", *p); sb_put(b, esc, 6); }
        else sb_put(b, (const char *)p, 1);
    }
    sb_put(b, "\"", 1);
}

qv_st_writer *qv_st_writer_new(void) { return qv_calloc(1, sizeof(qv_st_writer)); }

void qv_st_writer_free(qv_st_writer *w)
{
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        free(w->e[i].name);
        free(w->e[i].data);
    }
    for (int i = 0; i < w->nm; i++) {
        free(w->mk[i]);
        free(w->mv[i]);
    }
    free(w->e);
    free(w->mk);
    free(w->mv);
    free(w);
}

static int valid_text(const char *s) { return qv_utf8_first_invalid((const unsigned char *)s, strlen(s)) < 0; }

qv_status qv_st_writer_add(qv_st_writer *w, const char *name, qv_dtype dt, int ndim, const int64_t *shape,
                           const void *data)
{
    if (!w || !name) return qv_fail(QV_ERR_INTERNAL, "qv_st_writer_add: NULL argument");
    if (!*name || strcmp(name, "__metadata__") == 0 || !valid_text(name))
        return qv_fail(QV_ERR_INPUT, "safetensors writer: invalid tensor name '%s'", name);
    if ((unsigned)dt >= QV_DTYPE_COUNT)
        return qv_fail(QV_ERR_INPUT, "safetensors writer: tensor '%s': invalid dtype %d", name, (int)dt);
    if (ndim < 0 || ndim > QV_MAX_DIMS)
        return qv_fail(QV_ERR_INPUT, "safetensors writer: tensor '%s': rank %d outside [0, %d]", name, ndim,
                       QV_MAX_DIMS);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->e[i].name, name) == 0)
            return qv_fail(QV_ERR_INPUT, "safetensors writer: tensor '%s' added twice", name);
    size_t nbytes = qv_dtype_size(dt);
    for (int i = 0; i < ndim; i++) {
        /* 2^53: the largest dim a JSON reader holding numbers as doubles reads back exactly */
        if (shape[i] < 0 || shape[i] > ((int64_t)1 << 53) || qv_mul_size(nbytes, (size_t)shape[i], &nbytes) != 0)
            return qv_fail(QV_ERR_INPUT, "safetensors writer: tensor '%s': bad or overflowing shape[%d] = %lld",
                           name, i, (long long)shape[i]);
    }
    if (nbytes && !data) return qv_fail(QV_ERR_INPUT, "safetensors writer: tensor '%s': no data", name);
    if (w->n == w->cap) {
        int cap = w->cap ? w->cap * 2 : 16;
        wentry *p = realloc(w->e, (size_t)cap * sizeof *p);
        if (!p) return qv_fail(QV_ERR_NOMEM, "out of memory");
        w->e = p;
        w->cap = cap;
    }
    wentry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    e->data = nbytes ? malloc(nbytes) : NULL;
    if (!e->name || (nbytes && !e->data)) {
        free(e->name);
        free(e->data);
        return qv_fail(QV_ERR_NOMEM, "safetensors writer: tensor '%s': out of memory (%zu bytes)", name, nbytes);
    }
    if (nbytes) memcpy(e->data, data, nbytes);
    e->dt = dt;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->nbytes = nbytes;
    w->n++;
    return QV_OK;
}

qv_status qv_st_writer_meta(qv_st_writer *w, const char *key, const char *value)
{
    if (!w || !key || !value) return qv_fail(QV_ERR_INTERNAL, "qv_st_writer_meta: NULL argument");
    if (!valid_text(key) || !valid_text(value))
        return qv_fail(QV_ERR_INPUT, "safetensors writer: metadata '%s' is not valid UTF-8", key);
    for (int i = 0; i < w->nm; i++)
        if (strcmp(w->mk[i], key) == 0) {
            char *v = strdup(value);
            if (!v) return qv_fail(QV_ERR_NOMEM, "out of memory");
            free(w->mv[i]);
            w->mv[i] = v;
            return QV_OK;
        }
    if (w->nm == w->capm) {
        int cap = w->capm ? w->capm * 2 : 8;
        char **a = realloc(w->mk, (size_t)cap * sizeof *a);
        if (!a) return qv_fail(QV_ERR_NOMEM, "out of memory");
        w->mk = a;
        char **b = realloc(w->mv, (size_t)cap * sizeof *b);
        if (!b) return qv_fail(QV_ERR_NOMEM, "out of memory");
        w->mv = b;
        w->capm = cap;
    }
    w->mk[w->nm] = strdup(key);
    w->mv[w->nm] = strdup(value);
    if (!w->mk[w->nm] || !w->mv[w->nm]) {
        free(w->mk[w->nm]);
        free(w->mv[w->nm]);
        return qv_fail(QV_ERR_NOMEM, "out of memory");
    }
    w->nm++;
    return QV_OK;
}

static int cmp_storage(const void *a, const void *b)
{
    const wentry *x = *(wentry *const *)a, *y = *(wentry *const *)b;
    size_t sx = qv_dtype_size(x->dt), sy = qv_dtype_size(y->dt);
    if (sx != sy) return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}


/* Builds the padded header (length field included) and the storage order. */
static qv_status build_header(qv_st_writer *w, sbuf *h, wentry ***order_out, size_t *data_size)
{
    wentry **order = qv_calloc((size_t)w->n, sizeof(wentry *));
    int *mo = qv_calloc((size_t)w->nm, sizeof(int));
    if (!order || !mo) {
        free(order);
        free(mo);
        return QV_ERR_NOMEM;
    }
    for (int i = 0; i < w->n; i++) order[i] = &w->e[i];
    qsort(order, (size_t)w->n, sizeof(wentry *), cmp_storage);
    for (int i = 0; i < w->nm; i++) mo[i] = i;
    /* insertion sort of metadata keys (few of them) */
    for (int i = 1; i < w->nm; i++)
        for (int j = i; j > 0 && strcmp(w->mk[mo[j - 1]], w->mk[mo[j]]) > 0; j--) {
            int t = mo[j]; mo[j] = mo[j - 1]; mo[j - 1] = t;
        }
    sb_put(h, "\0\0\0\0\0\0\0\0", 8);
    sb_str(h, "{");
    int first = 1;
    if (w->nm) {
        sb_str(h, "\"__metadata__\":{");
        for (int i = 0; i < w->nm; i++) {
            if (i) sb_str(h, ",");
            sb_json_string(h, w->mk[mo[i]]);
            sb_str(h, ":");
            sb_json_string(h, w->mv[mo[i]]);
        }
        sb_str(h, "}");
        first = 0;
    }
    size_t off = 0;
    char num[64];
    for (int i = 0; i < w->n; i++) {
        const wentry *e = order[i];
        if (!first) sb_str(h, ",");
        first = 0;
        sb_json_string(h, e->name);
        sb_str(h, ":{\"dtype\":\"");
        sb_str(h, qv_dtype_name(e->dt));
        sb_str(h, "\",\"shape\":[");
        for (int d = 0; d < e->ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)e->shape[d]);
            sb_str(h, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%zu,%zu]}", off, off + e->nbytes);
        sb_str(h, num);
        off += e->nbytes;
    }
    sb_str(h, "}");
    while (h->n % 8) sb_str(h, " ");
    free(mo);
    if (h->oom) {
        free(order);
        return qv_fail(QV_ERR_NOMEM, "out of memory building a safetensors header");
    }
    uint64_t n = (uint64_t)h->n - 8;
    for (int i = 0; i < 8; i++) h->s[i] = (char)((n >> (8 * i)) & 0xff);
    *order_out = order;
    *data_size = off;
    return QV_OK;
}

qv_status qv_st_writer_to_buffer(qv_st_writer *w, unsigned char **buf, size_t *size)
{
    *buf = NULL;
    *size = 0;
    sbuf h = {0};
    wentry **order = NULL;
    size_t dsize = 0, total;
    qv_status st = build_header(w, &h, &order, &dsize);
    if (st != QV_OK) {
        free(h.s);
        return st;
    }
    total = h.n + dsize;
    unsigned char *out = qv_malloc(total);
    if (!out) {
        free(h.s);
        free(order);
        return QV_ERR_NOMEM;
    }
    memcpy(out, h.s, h.n);
    size_t off = h.n;
    for (int i = 0; i < w->n; i++) {
        if (order[i]->nbytes) memcpy(out + off, order[i]->data, order[i]->nbytes);
        off += order[i]->nbytes;
    }
    free(h.s);
    free(order);
    *buf = out;
    *size = total;
    return QV_OK;
}

qv_status qv_st_writer_write(qv_st_writer *w, const char *path)
{
    sbuf h = {0};
    wentry **order = NULL;
    size_t dsize = 0;
    qv_status st = build_header(w, &h, &order, &dsize);
    if (st != QV_OK) {
        free(h.s);
        return st;
    }
    qv_atomic_file af;
    st = qv_atomic_open(path, &af);
    if (st == QV_OK) {
        int bad = fwrite(h.s, 1, h.n, af.fp) != h.n;
        for (int i = 0; i < w->n && !bad; i++)
            if (order[i]->nbytes) bad = fwrite(order[i]->data, 1, order[i]->nbytes, af.fp) != order[i]->nbytes;
        if (bad) {
            qv_atomic_abort(&af);
            st = qv_fail(QV_ERR_IO, "%s: write failed", path);
        } else
            st = qv_atomic_commit(&af);
    }
    free(h.s);
    free(order);
    return st;
}
