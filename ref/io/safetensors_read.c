/* safetensors reader (include/qvet/safetensors.h): every header field is validated before a
 * single tensor byte is looked at, and every message names the file and the tensor.
 *
 * Alignment: views must be aligned for their dtype (a float* read from an odd address is UB in
 * C). Files written by the reference implementation pad the header so that the data starts on
 * an 8-byte boundary and order tensors by decreasing dtype size, so their views are aligned and
 * zero-copy. A tensor that nevertheless sits at a misaligned address (older writers that did not
 * pad the header) is copied once into an aligned heap buffer owned by the file object; the data
 * is identical, only the address differs. */
#include "qvet/safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "ref/io/json_util.h"

/* Same limit as the reference implementation: a larger header is a corrupt length field. */
#define QV_ST_MAX_HEADER 100000000ull

typedef struct {
    qv_st_file pub;   /* first: the public object is a pointer to this */
    void **copies;    /* aligned copies of misaligned tensors */
    int n_copies;
} st_impl;

static const char *hf_dtypes_unsupported[] = {"BOOL", "U16", "I16", "U32", "U64", "F8_E4M3",
                                              "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2",
                                              "C64", NULL};

static int cmp_entry_name(const void *a, const void *b)
{
    return strcmp(((const qv_st_entry *)a)->name, ((const qv_st_entry *)b)->name);
}

typedef struct { uint64_t begin, end; const char *name; } span;

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

static void shape_str(char *buf, size_t n, int ndim, const uint64_t *shape)
{
    size_t off = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, "%s%llu", i ? ", " : "", (unsigned long long)shape[i]);
    if (off < n) snprintf(buf + off, n - off, "]");
}

static qv_status parse_metadata(st_impl *f, const cJSON *meta)
{
    const char *path = f->pub.path;
    if (!cJSON_IsObject(meta))
        return qv_fail(QV_ERR_INPUT, "%s: __metadata__ must be an object of strings, got %s", path,
                       qv_json_type_name(meta));
    int n = cJSON_GetArraySize(meta);
    f->pub.meta_keys = qv_calloc((size_t)n, sizeof(char *));
    f->pub.meta_values = qv_calloc((size_t)n, sizeof(char *));
    if (!f->pub.meta_keys || !f->pub.meta_values) return QV_ERR_NOMEM;
    for (const cJSON *kv = meta->child; kv; kv = kv->next) {
        if (!cJSON_IsString(kv))
            return qv_fail(QV_ERR_INPUT, "%s: __metadata__ key '%s' must be a string, got %s", path,
                           kv->string, qv_json_type_name(kv));
        for (int i = 0; i < f->pub.n_meta; i++)
            if (strcmp(f->pub.meta_keys[i], kv->string) == 0)
                return qv_fail(QV_ERR_INPUT, "%s: __metadata__ key '%s' appears twice", path, kv->string);
        int i = f->pub.n_meta;
        f->pub.meta_keys[i] = strdup(kv->string);
        f->pub.meta_values[i] = strdup(kv->valuestring);
        f->pub.n_meta++;
        if (!f->pub.meta_keys[i] || !f->pub.meta_values[i]) return qv_fail(QV_ERR_NOMEM, "out of memory");
    }
    return QV_OK;
}

/* Validates one tensor entry and fills *e (except the view, built once all entries are known). */
static qv_status parse_entry(st_impl *f, const cJSON *item, uint64_t data_size, qv_st_entry *e,
                             int *ndim_out, uint64_t *shape_out)
{
    const char *path = f->pub.path, *name = item->string;
    if (!cJSON_IsObject(item))
        return qv_fail(QV_ERR_INPUT, "%s: tensor '%s': entry must be an object, got %s", path, name,
                       qv_json_type_name(item));
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(jd))
        return qv_fail(QV_ERR_INPUT, "%s: tensor '%s': \"dtype\" must be a string, got %s", path, name,
                       qv_json_type_name(jd));
    qv_dtype dt;
    if (qv_dtype_from_name(jd->valuestring, &dt) != 0) {
        for (const char **u = hf_dtypes_unsupported; *u; u++)
            if (strcmp(*u, jd->valuestring) == 0)
                return qv_fail(QV_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s is not supported by qvet", path,
                               name, jd->valuestring);
        return qv_fail(QV_ERR_INPUT,
                       "%s: tensor '%s': unknown dtype \"%.40s\" (expected F32, F16, BF16, I8, U8, I32, I64 or F64)",
                       path, name, jd->valuestring);
    }
    if (!cJSON_IsArray(js))
        return qv_fail(QV_ERR_INPUT, "%s: tensor '%s': \"shape\" must be an array of non-negative integers, got %s",
                       path, name, qv_json_type_name(js));
    int ndim = cJSON_GetArraySize(js);
    if (ndim > QV_MAX_DIMS)
        return qv_fail(QV_ERR_INPUT, "%s: tensor '%s': rank %d exceeds the maximum of %d", path, name, ndim,
                       QV_MAX_DIMS);
    uint64_t bytes = qv_dtype_size(dt);
    int overflow = 0;
    int d = 0;
    for (const cJSON *x = js->child; x; x = x->next, d++) {
        if (!cJSON_IsNumber(x))
            return qv_fail(QV_ERR_INPUT, "%s: tensor '%s': shape[%d] must be a non-negative integer, got %s", path,
                           name, d, qv_json_type_name(x));
        if (x->valuedouble < 0)
            return qv_fail(QV_ERR_INPUT, "%s: tensor '%s': shape[%d] is negative (%g)", path, name, d,
                           x->valuedouble);
        if (qv_json_get_u53(x, &shape_out[d]) != 0)
            return qv_fail(QV_ERR_INPUT, "%s: tensor '%s': shape[%d] = %g is not an integer in [0, 2^53]", path,
                           name, d, x->valuedouble);
        if (shape_out[d] != 0 && bytes > UINT64_MAX / shape_out[d]) overflow = 1;
        else bytes *= shape_out[d];
    }
    char sbuf[256];
    shape_str(sbuf, sizeof sbuf, ndim, shape_out);
    /* a zero dim makes the product 0 whatever came before; only a real overflow is an error */
    int has_zero = 0;
    for (int i = 0; i < ndim; i++) has_zero |= shape_out[i] == 0;
    if (overflow && !has_zero)
        return qv_fail(QV_ERR_INPUT, "%s: tensor '%s': shape %s of %s overflows: its size in bytes exceeds 2^64",
                       path, name, sbuf, qv_dtype_name(dt));
    if (has_zero) bytes = 0;
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 || qv_json_get_u53(jo->child, &e->begin) != 0 ||
        qv_json_get_u53(jo->child->next, &e->end) != 0)
        return qv_fail(QV_ERR_INPUT, "%s: tensor '%s': \"data_offsets\" must be two non-negative integers [begin, end]",
                       path, name);
    if (e->begin > e->end)
        return qv_fail(QV_ERR_INPUT, "%s: tensor '%s': data offsets [%llu, %llu): begin is after end", path, name,
                       (unsigned long long)e->begin, (unsigned long long)e->end);
    if (e->end - e->begin != bytes)
        return qv_fail(QV_ERR_INPUT,
                       "%s: tensor '%s': data offsets [%llu, %llu) hold %llu bytes but %s %s needs %llu", path, name,
                       (unsigned long long)e->begin, (unsigned long long)e->end,
                       (unsigned long long)(e->end - e->begin), qv_dtype_name(dt), sbuf, (unsigned long long)bytes);
    if (e->end > data_size)
        return qv_fail(QV_ERR_INPUT, "%s: tensor '%s': data offsets [%llu, %llu) exceed data size %llu", path, name,
                       (unsigned long long)e->begin, (unsigned long long)e->end, (unsigned long long)data_size);
    e->t.dtype = dt;
    *ndim_out = ndim;
    return QV_OK;
}

static qv_status st_parse(st_impl *f)
{
    const char *path = f->pub.path;
    const unsigned char *base = f->pub.base;
    size_t size = f->pub.size;
    if (size == 0) return qv_fail(QV_ERR_INPUT, "%s: empty file (0 bytes), not a safetensors file", path);
    if (size < 8)
        return qv_fail(QV_ERR_INPUT, "%s: file of %zu bytes is too short for the 8-byte header length", path, size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | base[i];
    if (n == 0) return qv_fail(QV_ERR_INPUT, "%s: header length is 0 (a safetensors header is a JSON object)", path);
    if (n > QV_ST_MAX_HEADER)
        return qv_fail(QV_ERR_INPUT, "%s: header length %llu exceeds the 100 MB limit (corrupt length field?)", path,
                       (unsigned long long)n);
    if (n > size - 8)
        return qv_fail(QV_ERR_INPUT, "%s: header length %llu runs past the end of the file (%zu bytes)", path,
                       (unsigned long long)n, size);
    const char *hdr = (const char *)base + 8;
    long bad = qv_utf8_first_invalid((const unsigned char *)hdr, (size_t)n);
    if (bad >= 0) return qv_fail(QV_ERR_INPUT, "%s: header is not valid UTF-8 (byte %ld of the header)", path, bad);
    if (memchr(hdr, 0, (size_t)n))
        return qv_fail(QV_ERR_INPUT, "%s: header contains a NUL byte (not JSON text)", path);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)n, &end, 0);
    if (!root) {
        int line, col;
        size_t off = end && end >= hdr && end <= hdr + n ? (size_t)(end - hdr) : 0;
        qv_json_line_col(hdr, off, &line, &col);
        return qv_fail(QV_ERR_INPUT, "%s: header is not valid JSON (error near line %d, column %d)", path, line, col);
    }
    for (const char *p = end; p && p < hdr + n; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return qv_fail(QV_ERR_INPUT, "%s: header has trailing bytes after the JSON object (offset %ld)", path,
                           (long)(p - hdr));
        }
    qv_status st = QV_OK;
    uint64_t data_size = (uint64_t)size - 8 - n;
    const unsigned char *data = base + 8 + n;
    span *spans = NULL;
    int64_t (*shapes)[QV_MAX_DIMS] = NULL;
    int *ndims = NULL;
    if (!cJSON_IsObject(root)) {
        st = qv_fail(QV_ERR_INPUT, "%s: header must be a JSON object, got %s", path, qv_json_type_name(root));
        goto done;
    }
    int n_items = cJSON_GetArraySize(root);
    f->pub.entries = qv_calloc((size_t)n_items, sizeof(qv_st_entry));
    spans = qv_calloc((size_t)n_items, sizeof(span));
    shapes = qv_calloc((size_t)n_items, sizeof *shapes);
    ndims = qv_calloc((size_t)n_items, sizeof(int));
    if (!f->pub.entries || !spans || !shapes || !ndims) { st = QV_ERR_NOMEM; goto done; }
    int seen_meta = 0;
    for (const cJSON *item = root->child; item; item = item->next) {
        if (strcmp(item->string, "__metadata__") == 0) {
            if (seen_meta++) {
                st = qv_fail(QV_ERR_INPUT, "%s: __metadata__ appears twice in the header", path);
                goto done;
            }
            if ((st = parse_metadata(f, item)) != QV_OK) goto done;
            continue;
        }
        int k = f->pub.n_entries;
        qv_st_entry *e = &f->pub.entries[k];
        uint64_t sh[QV_MAX_DIMS];
        if ((st = parse_entry(f, item, data_size, e, &ndims[k], sh)) != QV_OK) goto done;
        for (int d = 0; d < ndims[k]; d++) shapes[k][d] = (int64_t)sh[d];
        e->name = strdup(item->string);
        if (!e->name) { st = qv_fail(QV_ERR_NOMEM, "out of memory"); goto done; }
        f->pub.n_entries++;
    }
    /* duplicates: cJSON keeps every occurrence of a repeated key, so sort and compare
     * neighbours (shapes/ndims travel with their entries through the index in t.data) */
    int ne = f->pub.n_entries;
    for (int k = 0; k < ne; k++) f->pub.entries[k].t.data = (void *)(intptr_t)k;
    qsort(f->pub.entries, (size_t)ne, sizeof(qv_st_entry), cmp_entry_name);
    for (int k = 1; k < ne; k++)
        if (strcmp(f->pub.entries[k].name, f->pub.entries[k - 1].name) == 0) {
            st = qv_fail(QV_ERR_INPUT, "%s: tensor '%s' appears twice in the header", path, f->pub.entries[k].name);
            goto done;
        }
    int ns = 0;
    for (int k = 0; k < ne; k++) {
        qv_st_entry *e = &f->pub.entries[k];
        if (e->end > e->begin) spans[ns++] = (span){e->begin, e->end, e->name};
    }
    qsort(spans, (size_t)ns, sizeof(span), cmp_span);
    for (int k = 1, prev = 0; k < ns; k++) {
        if (spans[k].begin < spans[prev].end) {
            st = qv_fail(QV_ERR_INPUT, "%s: tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) overlap", path,
                         spans[prev].name, (unsigned long long)spans[prev].begin,
                         (unsigned long long)spans[prev].end, spans[k].name, (unsigned long long)spans[k].begin,
                         (unsigned long long)spans[k].end);
            goto done;
        }
        if (spans[k].end > spans[prev].end) prev = k;
    }
    for (int k = 0; k < ne; k++) {
        qv_st_entry *e = &f->pub.entries[k];
        int orig = (int)(intptr_t)e->t.data;
        size_t esz = qv_dtype_size(e->t.dtype);
        const unsigned char *p = data + e->begin;
        void *ptr = (void *)p;
        if (((uintptr_t)p % esz) != 0) {
            size_t nb = (size_t)(e->end - e->begin);
            void *copy = NULL;
            void **grown = realloc(f->copies, (size_t)(f->n_copies + 1) * sizeof(void *));
            if (grown) f->copies = grown;
            if (!grown || !(copy = qv_malloc(nb))) { st = qv_fail(QV_ERR_NOMEM, "out of memory"); goto done; }
            memcpy(copy, p, nb);
            f->copies[f->n_copies++] = copy;
            ptr = copy;
        }
        if ((st = qv_tensor_view(&e->t, ptr, e->t.dtype, ndims[orig], shapes[orig])) != QV_OK) {
            qv_fail_prefix(st, "%s: tensor '%s'", path, e->name);
            goto done;
        }
    }
done:
    free(spans);
    free(shapes);
    free(ndims);
    cJSON_Delete(root);
    return st;
}

static qv_status st_open_common(st_impl *f, const char *label, qv_st_file **out)
{
    f->pub.path = strdup(label);
    if (!f->pub.path) {
        qv_st_close(&f->pub);
        return qv_fail(QV_ERR_NOMEM, "out of memory");
    }
    qv_status st = st_parse(f);
    if (st != QV_OK) {
        qv_st_close(&f->pub);
        return st;
    }
    *out = &f->pub;
    return QV_OK;
}

qv_status qv_st_open(const char *path, qv_st_file **out)
{
    *out = NULL;
    st_impl *f = qv_calloc(1, sizeof *f);
    if (!f) return QV_ERR_NOMEM;
    qv_status st = qv_mmap_open(path, &f->pub.map);
    if (st != QV_OK) {
        free(f);
        return st;
    }
    f->pub.base = f->pub.map.data;
    f->pub.size = f->pub.map.size;
    return st_open_common(f, path, out);
}

qv_status qv_st_open_buffer(const void *buf, size_t size, const char *label, qv_st_file **out)
{
    *out = NULL;
    st_impl *f = qv_calloc(1, sizeof *f);
    if (!f) return QV_ERR_NOMEM;
    f->pub.base = buf;
    f->pub.size = buf ? size : 0;
    return st_open_common(f, label ? label : "<memory>", out);
}

void qv_st_close(qv_st_file *pub)
{
    if (!pub) return;
    st_impl *f = (st_impl *)pub;
    for (int i = 0; i < pub->n_entries; i++) free(pub->entries[i].name);
    free(pub->entries);
    for (int i = 0; i < pub->n_meta; i++) {
        free(pub->meta_keys[i]);
        free(pub->meta_values[i]);
    }
    free(pub->meta_keys);
    free(pub->meta_values);
    for (int i = 0; i < f->n_copies; i++) free(f->copies[i]);
    free(f->copies);
    if (pub->map.path) qv_mmap_close(&pub->map);
    free(pub->path);
    free(f);
}

const qv_st_entry *qv_st_find(const qv_st_file *f, const char *name)
{
    if (!f || !name) return NULL;
    int lo = 0, hi = f->n_entries - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(f->entries[mid].name, name);
        if (c == 0) return &f->entries[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

const char *qv_st_meta(const qv_st_file *f, const char *key)
{
    for (int i = 0; f && i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

int qv_st_misaligned_copies(const qv_st_file *f) { return f ? ((const st_impl *)f)->n_copies : 0; }
