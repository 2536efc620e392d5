/* BPE of one pre-tokenized word, as the `tokenizers` library's BPE model does it:
 * characters -> ids (unknown ones: <0xXX> byte tokens with byte_fallback, else the unk token,
 * fused when fuse_unk, else dropped), then repeatedly merge the adjacent pair of lowest rank,
 * leftmost first on ties, until no pair has a merge. A binary heap of candidate pairs keeps this
 * O(n log n): a Llama-2-style tokenizer without a pre-tokenizer hands whole paragraphs here. */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

/* words up to this many bytes are cached (longer ones are rare and would bloat the cache) */
#define QV_TOK_CACHE_MAX_WORD 64
#define QV_TOK_CACHE_MAX_ENTRIES (1u << 20)

typedef struct { int32_t id; int32_t prev, next; } sym_t;
typedef struct { int64_t rank; int32_t left, right; int32_t new_id; } cand_t;

static int cand_less(const cand_t *a, const cand_t *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

typedef struct { cand_t *h; size_t n, cap; } heap_t;

static qv_status heap_push(heap_t *hp, cand_t c)
{
    if (hp->n == hp->cap) {
        size_t cap = hp->cap ? hp->cap * 2 : 32;
        cand_t *h = realloc(hp->h, cap * sizeof *h);
        if (!h) return qv_fail(QV_ERR_NOMEM, "tokenizer: out of memory (BPE heap)");
        hp->h = h;
        hp->cap = cap;
    }
    size_t i = hp->n++;
    while (i && cand_less(&c, &hp->h[(i - 1) / 2])) {
        hp->h[i] = hp->h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    hp->h[i] = c;
    return QV_OK;
}

static cand_t heap_pop(heap_t *hp)
{
    cand_t top = hp->h[0], last = hp->h[--hp->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const cand_t *best = &last;
        if (l < hp->n && cand_less(&hp->h[l], best)) m = l, best = &hp->h[l];
        if (r < hp->n && cand_less(&hp->h[r], best)) m = r;
        if (m == i) break;
        hp->h[i] = hp->h[m];
        i = m;
    }
    if (hp->n) hp->h[i] = last;
    return top;
}

static qv_status push_pair(const qv_tok *t, heap_t *hp, const sym_t *s, int32_t left)
{
    int32_t right = s[left].next;
    if (left < 0 || right < 0) return QV_OK;
    int64_t v;
    uint64_t key = (uint64_t)(uint32_t)s[left].id << 32 | (uint32_t)s[right].id;
    if (!qv_umap_get(&t->merges, key, &v)) return QV_OK;
    return heap_push(hp, (cand_t){v >> 32, left, right, (int32_t)(v & 0xffffffff)});
}

static qv_status add_sym(sym_t **s, size_t *n, size_t *cap, int32_t id)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 32;
        sym_t *p = realloc(*s, c * sizeof *p);
        if (!p) return qv_fail(QV_ERR_NOMEM, "tokenizer: out of memory (BPE symbols)");
        *s = p;
        *cap = c;
    }
    (*s)[*n] = (sym_t){id, (int32_t)*n - 1, (int32_t)*n + 1};
    (*n)++;
    return QV_OK;
}

static qv_status bpe(const qv_tok *t, const char *w, size_t len, qv_tids *out)
{
    sym_t *s = NULL;
    size_t n = 0, cap = 0;
    heap_t hp = {0};
    qv_status st = QV_OK;
    int32_t pending_unk = -1; /* an unk not yet emitted (fuse_unk extends it) */
    for (size_t i = 0; i < len && st == QV_OK;) {
        size_t cl = (size_t)qv_utf8_len((unsigned char)w[i]);
        if (cl > len - i) cl = len - i;
        int64_t id;
        if (qv_smap_get(&t->vocab, w + i, cl, &id)) {
            if (pending_unk >= 0) st = add_sym(&s, &n, &cap, pending_unk);
            pending_unk = -1;
            if (st == QV_OK) st = add_sym(&s, &n, &cap, (int32_t)id);
            i += cl;
            continue;
        }
        int all_bytes = t->byte_fallback;
        for (size_t k = 0; k < cl && all_bytes; k++) all_bytes = t->byte_tok[(unsigned char)w[i + k]] >= 0;
        if (all_bytes) {
            /* as the library: byte tokens do not flush a pending unk */
            for (size_t k = 0; k < cl && st == QV_OK; k++) st = add_sym(&s, &n, &cap, t->byte_tok[(unsigned char)w[i + k]]);
        } else if (t->unk_id >= 0) {
            if (pending_unk >= 0 && !t->fuse_unk) st = add_sym(&s, &n, &cap, pending_unk);
            pending_unk = t->unk_id;
        }
        /* no unk token: the library drops the character */
        i += cl;
    }
    if (st == QV_OK && pending_unk >= 0) st = add_sym(&s, &n, &cap, pending_unk);
    if (st != QV_OK || n == 0) goto out;
    s[n - 1].next = -1;

    for (size_t i = 0; i + 1 < n && st == QV_OK; i++) st = push_pair(t, &hp, s, (int32_t)i);
    while (st == QV_OK && hp.n) {
        cand_t c = heap_pop(&hp);
        /* stale candidate: one side was merged away or changed since it was pushed */
        if (s[c.left].id < 0 || s[c.left].next != c.right || s[c.right].id < 0) continue;
        int64_t v;
        uint64_t key = (uint64_t)(uint32_t)s[c.left].id << 32 | (uint32_t)s[c.right].id;
        if (!qv_umap_get(&t->merges, key, &v) || (v >> 32) != c.rank) continue;
        s[c.left].id = c.new_id;
        s[c.right].id = -1;
        s[c.left].next = s[c.right].next;
        if (s[c.left].next >= 0) s[s[c.left].next].prev = c.left;
        if (s[c.left].prev >= 0) st = push_pair(t, &hp, s, s[c.left].prev);
        if (st == QV_OK) st = push_pair(t, &hp, s, c.left);
    }
    for (int32_t i = 0; st == QV_OK && i >= 0; i = s[i].next) st = qv_tids_push(out, s[i].id);
out:
    free(s);
    free(hp.h);
    return st;
}

qv_status qv_tok_bpe_word(qv_tok *t, const char *w, size_t len, qv_tids *out)
{
    if (len == 0) return QV_OK;
    int64_t v;
    if (t->ignore_merges && qv_smap_get(&t->vocab, w, len, &v)) return qv_tids_push(out, (int32_t)v);
    int cacheable = len <= QV_TOK_CACHE_MAX_WORD;
    if (cacheable && qv_smap_get(&t->cache, w, len, &v)) {
        size_t off = (size_t)(v >> 16), cnt = (size_t)(v & 0xffff);
        for (size_t i = 0; i < cnt; i++) QV_TRY(qv_tids_push(out, t->cache_ids.p[off + i]));
        return QV_OK;
    }
    size_t before = out->n;
    QV_TRY(bpe(t, w, len, out));
    if (cacheable && t->cache.count < QV_TOK_CACHE_MAX_ENTRIES) {
        size_t off = t->cache_ids.n, cnt = out->n - before;
        for (size_t i = 0; i < cnt; i++) QV_TRY(qv_tids_push(&t->cache_ids, out->p[before + i]));
        QV_TRY(qv_smap_put(&t->cache, w, len, (int64_t)off << 16 | (int64_t)cnt));
    }
    return QV_OK;
}
