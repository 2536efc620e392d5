/* qv_tok_encode: the `tokenizers` library's pipeline for one sequence.
 *  1. split the raw text on the added tokens marked normalized=false (leftmost-longest, honouring
 *     single_word / lstrip / rstrip), as the library does even with add_special_tokens=False;
 *  2. normalize each remaining piece, split it on the added tokens marked normalized=true;
 *  3. pre-tokenize each remaining piece into words, BPE each word. */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

/* Rust's char::is_whitespace (Unicode White_Space). */
static int is_ws(uint32_t c)
{
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
           c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

/* Is the character at s[i] a word character (single_word)? */
static int word_at(const qv_tok *t, const char *s, size_t i)
{
    size_t l = (size_t)qv_utf8_len((unsigned char)s[i]);
    int rc = pcre2_match(t->word_re, (PCRE2_SPTR)(s + i), l, 0, PCRE2_ANCHORED | PCRE2_NO_UTF_CHECK, t->word_md, NULL);
    return rc >= 0;
}

static size_t prev_start(const char *s, size_t end)
{
    size_t i = end;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xc0) == 0x80) i--;
    return i > 0 ? i - 1 : 0;
}

static uint32_t last_cp(const char *s, size_t end)
{
    size_t i = end;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xc0) == 0x80) i--;
    if (i > 0) i--;
    int l;
    return qv_utf8_decode((const unsigned char *)s + i, &l);
}

typedef struct { size_t a, b; int32_t id; } match_t; /* id < 0: plain text */
typedef struct { match_t *v; size_t n, cap; } matches_t;

static qv_status mpush(matches_t *m, size_t a, size_t b, int32_t id)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        match_t *v = realloc(m->v, cap * sizeof *v);
        if (!v) return qv_fail(QV_ERR_NOMEM, "tokenizer: out of memory");
        m->v = v;
        m->cap = cap;
    }
    m->v[m->n++] = (match_t){a, b, id};
    return QV_OK;
}

/* Splits s on the added tokens whose `normalized` flag equals `normalized`. */
static qv_status split_added(const qv_tok *t, const char *s, size_t len, int normalized, matches_t *out)
{
    size_t start_off = 0, pos = 0;
    while (pos < len) {
        /* leftmost-longest: the first position where some token matches, the longest there */
        const qv_added_tok *best = NULL;
        uint8_t bit = (uint8_t)(normalized ? 2 : 1);
        for (; pos < len && !best; pos++) {
            if (!(t->added_first[(unsigned char)s[pos]] & bit)) continue;
            for (int k = 0; k < t->n_added; k++) {
                const qv_added_tok *a = &t->added[k];
                if (a->normalized != normalized || a->len == 0 || a->len > len - pos || a->content[0] != s[pos]) continue;
                if (memcmp(s + pos, a->content, a->len) == 0 && (!best || a->len > best->len)) best = a;
            }
            if (best) break;
        }
        if (!best) break;
        size_t a = pos, b = pos + best->len;
        pos = b;
        if (best->single_word && ((a > 0 && word_at(t, s, prev_start(s, a))) || (b < len && word_at(t, s, b))))
            continue;
        if (a < start_off) continue; /* inside whitespace an earlier rstrip took */
        if (best->lstrip)
            while (a > start_off && is_ws(last_cp(s, a))) a = prev_start(s, a);
        if (best->rstrip) {
            int l;
            while (b < len && is_ws(qv_utf8_decode((const unsigned char *)s + b, &l))) b += (size_t)l;
        }
        if (a > start_off) QV_TRY(mpush(out, start_off, a, -1));
        QV_TRY(mpush(out, a, b, best->id));
        start_off = b;
        if (pos < b) pos = b;
    }
    if (start_off < len || len == 0) QV_TRY(mpush(out, start_off, len, -1));
    return QV_OK;
}

static qv_status encode_normalized_piece(qv_tok *t, const char *s, size_t len, int orig0, qv_tids *out)
{
    matches_t m = {0};
    qv_pieces words = {0};
    qv_status st = split_added(t, s, len, 1, &m);
    for (size_t i = 0; i < m.n && st == QV_OK; i++) {
        if (m.v[i].id >= 0) {
            st = qv_tids_push(out, m.v[i].id);
            continue;
        }
        words.n = 0;
        words.buf.n = 0;
        st = qv_tok_pretokenize(t, s + m.v[i].a, m.v[i].b - m.v[i].a, orig0 && m.v[i].a == 0, &words);
        for (size_t k = 0; k < words.n && st == QV_OK; k++)
            st = qv_tok_bpe_word(t, words.buf.p + words.s[k].off, words.s[k].len, out);
    }
    qv_pieces_free(&words);
    free(m.v);
    return st;
}

qv_status qv_tok_encode(qv_tok *t, const char *text, size_t len, int add_bos, int32_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    if (!text && len) return qv_fail(QV_ERR_USAGE, "%s: encode: NULL text", t->label);
    size_t bad = qv_utf8_valid_prefix((const unsigned char *)text, len);
    if (bad < len) return qv_fail(QV_ERR_INPUT, "%s: text is not valid UTF-8 (byte %zu)", t->label, bad);
    qv_tids out = {0};
    qv_status st = QV_OK;
    for (int i = 0; add_bos && i < t->n_bos && st == QV_OK; i++) st = qv_tids_push(&out, t->bos[i]);
    matches_t m = {0};
    if (st == QV_OK && len) st = split_added(t, text, len, 0, &m);
    for (size_t i = 0; i < m.n && st == QV_OK; i++) {
        if (m.v[i].id >= 0) {
            st = qv_tids_push(&out, m.v[i].id);
            continue;
        }
        const char *s = text + m.v[i].a;
        size_t sl = m.v[i].b - m.v[i].a;
        if (sl == 0) continue;
        if (t->n_norm == 0) {
            st = encode_normalized_piece(t, s, sl, m.v[i].a == 0, &out);
            continue;
        }
        qv_tbuf nb = {0};
        st = qv_tok_normalize(t, s, sl, &nb);
        if (st == QV_OK) st = encode_normalized_piece(t, nb.p, nb.n, m.v[i].a == 0, &out);
        free(nb.p);
    }
    free(m.v);
    if (st != QV_OK) {
        free(out.p);
        return st;
    }
    *ids = out.p;
    *n = out.n;
    return QV_OK;
}
