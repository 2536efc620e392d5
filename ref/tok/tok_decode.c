/* qv_tok_decode: ids -> token strings -> the decoder chain -> text, as the `tokenizers` library's
 * decode(ids, skip_special_tokens=False). Each decoder maps a list of strings to a list of
 * strings; the result is their concatenation (without a decoder: joined with spaces). */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

typedef struct { qv_tbuf *v; size_t n; } toks_t;

static void toks_free(toks_t *t)
{
    for (size_t i = 0; i < t->n; i++) free(t->v[i].p);
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

static qv_status toks_alloc(toks_t *t, size_t n)
{
    t->v = calloc(n ? n : 1, sizeof *t->v);
    t->n = 0;
    return t->v ? QV_OK : qv_fail(QV_ERR_NOMEM, "tokenizer: out of memory");
}

/* one output string per input string, or one string for all (fuse) */
static qv_status dec_bytelevel(const toks_t *in, toks_t *out)
{
    /* a token whose characters are all in the byte map gives those bytes, any other token its
     * UTF-8 as is; the bytes of all tokens are then decoded lossily */
    qv_tbuf bytes = {0}, txt = {0};
    qv_status st = QV_OK;
    for (size_t i = 0; i < in->n && st == QV_OK; i++) {
        const unsigned char *s = (const unsigned char *)in->v[i].p;
        size_t n = in->v[i].n, before = bytes.n;
        int ok = 1;
        for (size_t k = 0; k < n && ok && st == QV_OK;) {
            int l;
            int b = qv_bytelevel_byte(qv_utf8_decode(s + k, &l));
            if (b < 0) ok = 0;
            else {
                unsigned char c = (unsigned char)b;
                st = qv_tbuf_put(&bytes, &c, 1);
            }
            k += (size_t)l;
        }
        if (!ok && st == QV_OK) {
            bytes.n = before;
            st = qv_tbuf_put(&bytes, s, n);
        }
    }
    if (st == QV_OK) st = qv_utf8_lossy_append(&txt, (const unsigned char *)bytes.p, bytes.n);
    if (st == QV_OK && !txt.p) st = qv_tbuf_put(&txt, "", 0);
    free(bytes.p);
    if (st == QV_OK) st = toks_alloc(out, 1);
    if (st != QV_OK) {
        free(txt.p);
        return st;
    }
    out->v[0] = txt;
    out->n = 1;
    return QV_OK;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static qv_status flush_bytes(qv_tbuf *pend, toks_t *out)
{
    if (!pend->n) return QV_OK;
    qv_tbuf *o = &out->v[out->n++];
    /* valid UTF-8 as one string; otherwise one U+FFFD per byte (the library's ByteFallback) */
    if (qv_utf8_valid_prefix((const unsigned char *)pend->p, pend->n) == pend->n) QV_TRY(qv_tbuf_put(o, pend->p, pend->n));
    else
        for (size_t i = 0; i < pend->n; i++) QV_TRY(qv_tbuf_put(o, "\xef\xbf\xbd", 3));
    pend->n = 0;
    return QV_OK;
}

static qv_status dec_bytefallback(const toks_t *in, toks_t *out)
{
    QV_TRY(toks_alloc(out, in->n));
    qv_tbuf pend = {0};
    qv_status st = QV_OK;
    for (size_t i = 0; i < in->n && st == QV_OK; i++) {
        const char *s = in->v[i].p;
        int hi = -1, lo = -1;
        if (in->v[i].n == 6 && !memcmp(s, "<0x", 3) && s[5] == '>') hi = hexval(s[3]), lo = hexval(s[4]);
        if (hi >= 0 && lo >= 0) {
            unsigned char c = (unsigned char)(hi * 16 + lo);
            st = qv_tbuf_put(&pend, &c, 1);
            continue;
        }
        st = flush_bytes(&pend, out);
        if (st == QV_OK) st = qv_tbuf_put(&out->v[out->n++], in->v[i].p, in->v[i].n);
    }
    if (st == QV_OK) st = flush_bytes(&pend, out);
    free(pend.p);
    return st;
}

static qv_status dec_each(const qv_tok *t, const qv_dec_step *d, const toks_t *in, toks_t *out)
{
    (void)t;
    QV_TRY(toks_alloc(out, in->n));
    for (size_t i = 0; i < in->n; i++) {
        const char *s = in->v[i].p;
        size_t n = in->v[i].n;
        qv_tbuf *o = &out->v[out->n++];
        QV_TRY(qv_tbuf_put(o, "", 0));
        if (d->kind == QV_DEC_REPLACE || d->kind == QV_DEC_METASPACE) {
            const char *a = d->a, *b = d->kind == QV_DEC_REPLACE ? d->b : " ";
            size_t al = d->alen, bl = d->kind == QV_DEC_REPLACE ? d->blen : 1;
            /* Metaspace: the replacement becomes a space, except in the first token where the
             * prepended one is dropped (unless prepend_scheme is never) */
            int drop = d->kind == QV_DEC_METASPACE && i == 0 && d->prepend_scheme != QV_PREPEND_NEVER;
            size_t run = 0;
            for (size_t k = 0; k + al <= n;) {
                if (memcmp(s + k, a, al) == 0) {
                    QV_TRY(qv_tbuf_put(o, s + run, k - run));
                    if (!drop) QV_TRY(qv_tbuf_put(o, b, bl));
                    k += al;
                    run = k;
                } else {
                    k++;
                }
            }
            QV_TRY(qv_tbuf_put(o, s + run, n - run));
        } else { /* Strip: up to `start` leading and `stop` trailing copies of one character */
            size_t a = 0, b = n;
            for (int k = 0; k < d->start && a < b && s[a] == d->a[0]; k++) a++;
            for (int k = 0; k < d->stop && b > a && s[b - 1] == d->a[0]; k++) b--;
            QV_TRY(qv_tbuf_put(o, s + a, b - a));
        }
    }
    return QV_OK;
}

static qv_status dec_fuse(const toks_t *in, toks_t *out, const char *sep)
{
    QV_TRY(toks_alloc(out, 1));
    out->n = 1;
    QV_TRY(qv_tbuf_put(&out->v[0], "", 0));
    for (size_t i = 0; i < in->n; i++) {
        if (i && sep) QV_TRY(qv_tbuf_put(&out->v[0], sep, strlen(sep)));
        QV_TRY(qv_tbuf_put(&out->v[0], in->v[i].p, in->v[i].n));
    }
    return QV_OK;
}

qv_status qv_tok_decode(const qv_tok *t, const int32_t *ids, size_t n, char **text, size_t *len)
{
    *text = NULL;
    if (len) *len = 0;
    toks_t cur = {0};
    QV_TRY(toks_alloc(&cur, n));
    qv_status st = QV_OK;
    for (size_t i = 0; i < n && st == QV_OK; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_ids || !t->id_str[ids[i]]) {
            st = qv_fail(QV_ERR_INPUT, "%s: decode: id %d at position %zu is not a token (vocab size %d)", t->label,
                         ids[i], i, t->n_ids);
            break;
        }
        st = qv_tbuf_put(&cur.v[cur.n++], t->id_str[ids[i]], t->id_len[ids[i]]);
    }
    for (int k = 0; k < t->n_dec && st == QV_OK; k++) {
        const qv_dec_step *d = &t->dec[k];
        toks_t nx = {0};
        switch (d->kind) {
        case QV_DEC_BYTELEVEL: st = dec_bytelevel(&cur, &nx); break;
        case QV_DEC_BYTEFALLBACK: st = dec_bytefallback(&cur, &nx); break;
        case QV_DEC_FUSE: st = dec_fuse(&cur, &nx, NULL); break;
        default: st = dec_each(t, d, &cur, &nx); break;
        }
        toks_free(&cur);
        cur = nx;
    }
    toks_t joined = {0};
    if (st == QV_OK) st = dec_fuse(&cur, &joined, t->has_decoder ? NULL : " ");
    toks_free(&cur);
    if (st != QV_OK) {
        toks_free(&joined);
        return st;
    }
    *text = joined.v[0].p;
    if (len) *len = joined.v[0].n;
    free(joined.v);
    return QV_OK;
}
