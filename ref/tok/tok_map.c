/* Hash maps for the tokenizer: vocabulary (string -> id), merge ranks (id pair -> rank), and the
 * per-word cache. Open addressing, linear probing, power-of-two capacity, load <= 1/2. */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

static uint32_t hash_bytes(const char *s, size_t n)
{
    /* FNV-1a: short keys, good enough spread for linear probing at load 1/2 */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static qv_status smap_grow(qv_smap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    qv_smap_ent *e = calloc(cap, sizeof *e);
    if (!e) return qv_fail(QV_ERR_NOMEM, "tokenizer: out of memory (hash map of %zu entries)", cap);
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->e[i].key) continue;
        size_t j = m->e[i].hash & (cap - 1);
        while (e[j].key) j = (j + 1) & (cap - 1);
        e[j] = m->e[i];
    }
    free(m->e);
    m->e = e;
    m->cap = cap;
    return QV_OK;
}

qv_status qv_smap_put(qv_smap *m, const char *key, size_t len, int64_t val)
{
    if ((m->count + 1) * 2 > m->cap) QV_TRY(smap_grow(m));
    uint32_t h = hash_bytes(key, len);
    size_t j = h & (m->cap - 1);
    while (m->e[j].key) {
        if (m->e[j].hash == h && m->e[j].len == len && memcmp(m->e[j].key, key, len) == 0) {
            m->e[j].val = val;
            return QV_OK;
        }
        j = (j + 1) & (m->cap - 1);
    }
    char *k = malloc(len + 1);
    if (!k) return qv_fail(QV_ERR_NOMEM, "tokenizer: out of memory");
    memcpy(k, key, len);
    k[len] = '\0';
    m->e[j] = (qv_smap_ent){k, (uint32_t)len, h, val};
    m->count++;
    return QV_OK;
}

int qv_smap_get(const qv_smap *m, const char *key, size_t len, int64_t *val)
{
    if (!m->cap) return 0;
    uint32_t h = hash_bytes(key, len);
    size_t j = h & (m->cap - 1);
    while (m->e[j].key) {
        if (m->e[j].hash == h && m->e[j].len == len && memcmp(m->e[j].key, key, len) == 0) {
            if (val) *val = m->e[j].val;
            return 1;
        }
        j = (j + 1) & (m->cap - 1);
    }
    return 0;
}

void qv_smap_free(qv_smap *m)
{
    for (size_t i = 0; i < m->cap; i++) free(m->e[i].key);
    free(m->e);
    memset(m, 0, sizeof *m);
}

static size_t hash_u64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (size_t)k;
}

qv_status qv_umap_put(qv_umap *m, uint64_t key, int64_t val)
{
    if ((m->count + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        qv_umap_ent *e = calloc(cap, sizeof *e);
        if (!e) return qv_fail(QV_ERR_NOMEM, "tokenizer: out of memory (merge map of %zu entries)", cap);
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->e[i].used) continue;
            size_t j = hash_u64(m->e[i].key) & (cap - 1);
            while (e[j].used) j = (j + 1) & (cap - 1);
            e[j] = m->e[i];
        }
        free(m->e);
        m->e = e;
        m->cap = cap;
    }
    size_t j = hash_u64(key) & (m->cap - 1);
    while (m->e[j].used) {
        if (m->e[j].key == key) {
            m->e[j].val = val;
            return QV_OK;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->e[j] = (qv_umap_ent){key, val, 1};
    m->count++;
    return QV_OK;
}

int qv_umap_get(const qv_umap *m, uint64_t key, int64_t *val)
{
    if (!m->cap) return 0;
    size_t j = hash_u64(key) & (m->cap - 1);
    while (m->e[j].used) {
        if (m->e[j].key == key) {
            *val = m->e[j].val;
            return 1;
        }
        j = (j + 1) & (m->cap - 1);
    }
    return 0;
}

void qv_umap_free(qv_umap *m)
{
    free(m->e);
    memset(m, 0, sizeof *m);
}

qv_status qv_tbuf_put(qv_tbuf *b, const void *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return qv_fail(QV_ERR_NOMEM, "tokenizer: out of memory (buffer of %zu bytes)", cap);
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return QV_OK;
}

qv_status qv_tids_push(qv_tids *v, int32_t id)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *p = realloc(v->p, cap * sizeof *p);
        if (!p) return qv_fail(QV_ERR_NOMEM, "tokenizer: out of memory (%zu ids)", cap);
        v->p = p;
        v->cap = cap;
    }
    v->p[v->n++] = id;
    return QV_OK;
}

qv_status qv_pieces_add(qv_pieces *p, const char *s, size_t len, int orig0)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        qv_span *n = realloc(p->s, cap * sizeof *n);
        if (!n) return qv_fail(QV_ERR_NOMEM, "tokenizer: out of memory");
        p->s = n;
        p->cap = cap;
    }
    size_t off = p->buf.n;
    QV_TRY(qv_tbuf_put(&p->buf, s, len));
    p->s[p->n++] = (qv_span){off, len, orig0};
    return QV_OK;
}

void qv_pieces_free(qv_pieces *p)
{
    free(p->buf.p);
    free(p->s);
    memset(p, 0, sizeof *p);
}
