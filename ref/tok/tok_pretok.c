/* Normalizers and pre-tokenizers: text -> normalized text -> words for the BPE model. Each step
 * follows the `tokenizers` library's definition (named in the comment of each case). */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

/* ---------------- normalizers ---------------- */

static qv_status replace_all(const char *s, size_t len, const char *a, size_t alen, const char *b, size_t blen,
                             qv_tbuf *out)
{
    size_t run = 0;
    for (size_t i = 0; i + alen <= len;) {
        if (memcmp(s + i, a, alen) == 0) {
            QV_TRY(qv_tbuf_put(out, s + run, i - run));
            QV_TRY(qv_tbuf_put(out, b, blen));
            i += alen;
            run = i;
        } else {
            i++;
        }
    }
    return qv_tbuf_put(out, s + run, len - run);
}

qv_status qv_tok_normalize(const qv_tok *t, const char *src, size_t len, qv_tbuf *out)
{
    qv_tbuf cur = {0};
    QV_TRY(qv_tbuf_put(&cur, src, len));
    for (int k = 0; k < t->n_norm; k++) {
        const qv_norm_step *n = &t->norm[k];
        qv_tbuf nx = {0};
        qv_status st = QV_OK;
        switch (n->kind) {
        case QV_NORM_PREPEND: /* Prepend: only a non-empty string gets the prefix */
            if (cur.n) st = qv_tbuf_put(&nx, n->a, n->alen);
            if (st == QV_OK) st = qv_tbuf_put(&nx, cur.p, cur.n);
            break;
        case QV_NORM_REPLACE:
            st = replace_all(cur.p, cur.n, n->a, n->alen, n->b, n->blen, &nx);
            break;
        case QV_NORM_NFC:
            /* Every code point below U+0300 has NFC_Quick_Check=Yes and none of them composes
             * with a preceding character, so such text is already NFC. Beyond it we would need
             * the Unicode composition tables, which qvet does not carry: refuse rather than guess. */
            for (size_t i = 0; i < cur.n && st == QV_OK; i++)
                if ((unsigned char)cur.p[i] >= 0xcc)
                    st = qv_fail(QV_ERR_UNSUPPORTED, "%s: normalizer NFC: text has a character at or above U+0300 "
                                 "(byte %zu); NFC of such text is not implemented", t->label, i);
            if (st == QV_OK) st = qv_tbuf_put(&nx, cur.p, cur.n);
            break;
        default:
            st = qv_fail(QV_ERR_INTERNAL, "%s: unknown normalizer step %d", t->label, n->kind);
        }
        free(cur.p);
        if (st != QV_OK) {
            free(nx.p);
            return st;
        }
        cur = nx;
        if (!cur.p) QV_TRY(qv_tbuf_put(&cur, "", 0));
    }
    *out = cur;
    if (!out->p) return qv_tbuf_put(out, "", 0);
    return QV_OK;
}

/* ---------------- pre-tokenizers ---------------- */

typedef struct { size_t a, b; int match; } seg_t;
typedef struct { seg_t *v; size_t n, cap; } segs_t;

static qv_status seg_push(segs_t *s, size_t a, size_t b, int match)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        seg_t *v = realloc(s->v, cap * sizeof *v);
        if (!v) return qv_fail(QV_ERR_NOMEM, "tokenizer: out of memory");
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (seg_t){a, b, match};
    return QV_OK;
}

/* All matches of re in s, with the gaps between them: the library's find_matches. */
static qv_status find_matches(const qv_tok *t, const qv_pre_step *p, const char *s, size_t len, segs_t *out)
{
    size_t prev = 0, pos = 0;
    while (pos <= len) {
        int rc = pcre2_match(p->re, (PCRE2_SPTR)s, len, pos, PCRE2_NO_UTF_CHECK, p->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return qv_fail(QV_ERR_INPUT, "%s: pre_tokenizer regex failed on the text at byte %zu: %s", t->label, pos,
                           (char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(p->md);
        size_t ms = ov[0], me = ov[1];
        if (ms > prev) QV_TRY(seg_push(out, prev, ms, 0));
        QV_TRY(seg_push(out, ms, me, 1));
        prev = me;
        if (me > ms) pos = me;
        else if (me < len) pos = me + (size_t)qv_utf8_len((unsigned char)s[me]);
        else break;
    }
    if (prev < len) QV_TRY(seg_push(out, prev, len, 0));
    return QV_OK;
}

/* Applies a SplitDelimiterBehavior to matches, then emits the non-empty pieces. */
static qv_status split_behavior(const char *s, const segs_t *m, int behavior, int orig0, qv_pieces *out)
{
    segs_t r = {0};
    qv_status st = QV_OK;
    int prev_match = 0;
    switch (behavior) {
    case QV_SPLIT_REMOVED:
    case QV_SPLIT_ISOLATED:
        for (size_t i = 0; i < m->n && st == QV_OK; i++)
            if (behavior == QV_SPLIT_ISOLATED || !m->v[i].match) st = seg_push(&r, m->v[i].a, m->v[i].b, 0);
        break;
    case QV_SPLIT_MERGED_PREV: /* a delimiter joins the piece before it */
        for (size_t i = 0; i < m->n && st == QV_OK; i++) {
            if (m->v[i].match && !prev_match && r.n) r.v[r.n - 1].b = m->v[i].b;
            else st = seg_push(&r, m->v[i].a, m->v[i].b, 0);
            prev_match = m->v[i].match;
        }
        break;
    case QV_SPLIT_MERGED_NEXT: /* a delimiter joins the piece after it: the same, right to left */
        for (size_t i = m->n; i-- > 0 && st == QV_OK;) {
            if (m->v[i].match && !prev_match && r.n) r.v[r.n - 1].a = m->v[i].a;
            else st = seg_push(&r, m->v[i].a, m->v[i].b, 0);
            prev_match = m->v[i].match;
        }
        for (size_t i = 0; i < r.n / 2; i++) {
            seg_t x = r.v[i];
            r.v[i] = r.v[r.n - 1 - i];
            r.v[r.n - 1 - i] = x;
        }
        break;
    case QV_SPLIT_CONTIGUOUS: /* runs of delimiters become one piece */
        for (size_t i = 0; i < m->n && st == QV_OK; i++) {
            if (m->v[i].match == prev_match && r.n) r.v[r.n - 1].b = m->v[i].b;
            else st = seg_push(&r, m->v[i].a, m->v[i].b, 0);
            prev_match = m->v[i].match;
        }
        break;
    }
    for (size_t i = 0; i < r.n && st == QV_OK; i++)
        if (r.v[i].b > r.v[i].a) st = qv_pieces_add(out, s + r.v[i].a, r.v[i].b - r.v[i].a, orig0 && r.v[i].a == 0);
    free(r.v);
    return st;
}

static qv_status regex_split(const qv_tok *t, const qv_pre_step *p, const char *s, size_t len, int orig0, int behavior,
                             int invert, qv_pieces *out)
{
    segs_t m = {0};
    qv_status st = find_matches(t, p, s, len, &m);
    if (invert)
        for (size_t i = 0; i < m.n; i++) m.v[i].match = !m.v[i].match;
    if (st == QV_OK) st = split_behavior(s, &m, behavior, orig0, out);
    free(m.v);
    return st;
}

/* ByteLevel: optional leading space, GPT-2 regex split when use_regex, then every byte becomes
 * its printable code point. */
static qv_status bytelevel(const qv_tok *t, const qv_pre_step *p, const char *s, size_t len, int orig0, qv_pieces *out)
{
    qv_tbuf tmp = {0};
    qv_status st = QV_OK;
    if (p->add_prefix_space && (len == 0 || s[0] != ' ')) {
        st = qv_tbuf_put(&tmp, " ", 1);
        if (st == QV_OK) st = qv_tbuf_put(&tmp, s, len);
        s = tmp.p;
        len = tmp.n;
    }
    qv_pieces parts = {0};
    if (st == QV_OK) {
        if (p->re) st = regex_split(t, p, s, len, orig0, QV_SPLIT_ISOLATED, 0, &parts);
        else if (len) st = qv_pieces_add(&parts, s, len, orig0);
    }
    qv_tbuf mapped = {0};
    for (size_t i = 0; i < parts.n && st == QV_OK; i++) {
        mapped.n = 0;
        const unsigned char *w = (const unsigned char *)parts.buf.p + parts.s[i].off;
        for (size_t k = 0; k < parts.s[i].len && st == QV_OK; k++) {
            char u[4];
            int ul = qv_utf8_encode(qv_bytelevel_cp(w[k]), u);
            st = qv_tbuf_put(&mapped, u, (size_t)ul);
        }
        if (st == QV_OK) st = qv_pieces_add(out, mapped.p, mapped.n, parts.s[i].orig0);
    }
    free(mapped.p);
    qv_pieces_free(&parts);
    free(tmp.p);
    return st;
}

/* Metaspace: spaces become the replacement character, which is prepended per prepend_scheme
 * ("first": only to the piece that starts the original text), then (split) every replacement
 * character starts a new piece. */
static qv_status metaspace(const qv_tok *t, const qv_pre_step *p, const char *s, size_t len, int orig0, qv_pieces *out)
{
    (void)t;
    qv_tbuf b = {0};
    qv_status st = QV_OK;
    int starts = len >= p->repl_len && memcmp(s, p->repl, p->repl_len) == 0;
    int starts_space = len && s[0] == ' ';
    if (!starts && !starts_space &&
        (p->prepend_scheme == QV_PREPEND_ALWAYS || (p->prepend_scheme == QV_PREPEND_FIRST && orig0)))
        st = qv_tbuf_put(&b, p->repl, p->repl_len);
    if (st == QV_OK) st = replace_all(s, len, " ", 1, p->repl, p->repl_len, &b);
    if (st != QV_OK || !b.n) goto out;
    if (!p->split) {
        st = qv_pieces_add(out, b.p, b.n, orig0);
        goto out;
    }
    size_t start = 0;
    for (size_t i = 0; i <= b.n && st == QV_OK; i++) {
        int at_repl = i < b.n && i + p->repl_len <= b.n && memcmp(b.p + i, p->repl, p->repl_len) == 0;
        if ((at_repl && i > start) || i == b.n) {
            if (i > start) st = qv_pieces_add(out, b.p + start, i - start, orig0 && start == 0);
            start = i;
        }
    }
out:
    free(b.p);
    return st;
}

qv_status qv_tok_pretokenize(const qv_tok *t, const char *s, size_t len, int orig0, qv_pieces *words)
{
    if (len == 0) return QV_OK;
    if (t->n_pre == 0) return qv_pieces_add(words, s, len, orig0);
    qv_pieces cur = {0};
    QV_TRY(qv_pieces_add(&cur, s, len, orig0));
    qv_status st = QV_OK;
    for (int k = 0; k < t->n_pre && st == QV_OK; k++) {
        const qv_pre_step *p = &t->pre[k];
        qv_pieces nx = {0};
        for (size_t i = 0; i < cur.n && st == QV_OK; i++) {
            const char *w = cur.buf.p + cur.s[i].off;
            size_t wl = cur.s[i].len;
            int o0 = cur.s[i].orig0;
            if (p->kind == QV_PRE_SPLIT) st = regex_split(t, p, w, wl, o0, p->behavior, p->invert, &nx);
            else if (p->kind == QV_PRE_BYTELEVEL) st = bytelevel(t, p, w, wl, o0, &nx);
            else st = metaspace(t, p, w, wl, o0, &nx);
        }
        qv_pieces_free(&cur);
        cur = nx;
    }
    for (size_t i = 0; i < cur.n && st == QV_OK; i++)
        st = qv_pieces_add(words, cur.buf.p + cur.s[i].off, cur.s[i].len, cur.s[i].orig0);
    qv_pieces_free(&cur);
    return st;
}
