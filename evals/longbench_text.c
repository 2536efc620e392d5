/* Python str semantics on UTF-8 text for LongBench's scorer: strict decoding, str.lower() (with
 * the final-sigma rule CPython applies), str.isspace() splitting and re's \w / \d classes, from
 * tables generated out of CPython itself (tools/gen_longbench_unicode.py). */
#include <stdlib.h>
#include <string.h>

#include "longbench_internal.h"

qv_status qv_lb_str_push(qv_lb_str *s, uint32_t c)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        uint32_t *p = realloc(s->cp, cap * sizeof *p);
        if (!p) return qv_fail(QV_ERR_NOMEM, "longbench: out of memory (text of %zu characters)", s->n);
        s->cp = p;
        s->cap = cap;
    }
    s->cp[s->n++] = c;
    return QV_OK;
}

void qv_lb_str_free(qv_lb_str *s)
{
    free(s->cp);
    s->cp = NULL;
    s->n = s->cap = 0;
}

qv_status qv_lb_decode(const char *utf8, size_t len, const char *what, qv_lb_str *out)
{
    const unsigned char *p = (const unsigned char *)utf8;
    memset(out, 0, sizeof *out);
    size_t i = 0;
    while (i < len) {
        uint32_t c = p[i];
        size_t k;
        uint32_t min;
        if (c < 0x80) { k = 0; min = 0; }
        else if ((c & 0xE0) == 0xC0) { c &= 0x1F; k = 1; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { c &= 0x0F; k = 2; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { c &= 0x07; k = 3; min = 0x10000; }
        else goto bad;
        if (i + k >= len) goto bad; /* truncated sequence */
        for (size_t t = 1; t <= k; t++) {
            if ((p[i + t] & 0xC0) != 0x80) goto bad;
            c = (c << 6) | (p[i + t] & 0x3F);
        }
        /* overlong forms, surrogates and values past U+10FFFF are rejected, as Python does */
        if (c < min || (c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF) goto bad;
        qv_status st = qv_lb_str_push(out, c);
        if (st != QV_OK) {
            qv_lb_str_free(out);
            return st;
        }
        i += k + 1;
        continue;
    bad:
        qv_lb_str_free(out);
        return qv_fail(QV_ERR_INPUT, "%s: invalid UTF-8 at byte %zu", what, i);
    }
    return QV_OK;
}

static int in_ranges(const qv_lb_range *r, size_t n, uint32_t c)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c < r[mid].lo) hi = mid;
        else if (c > r[mid].hi) lo = mid + 1;
        else return 1;
    }
    return 0;
}

int qv_lb_is_space(uint32_t c) { return in_ranges(qv_lb_space_ranges, qv_lb_space_count, c); }
int qv_lb_is_word(uint32_t c) { return in_ranges(qv_lb_word_ranges, qv_lb_word_count, c); }
int qv_lb_is_digit(uint32_t c) { return in_ranges(qv_lb_digit_ranges, qv_lb_digit_count, c); }
static int is_ignorable(uint32_t c) { return in_ranges(qv_lb_case_ignorable_ranges, qv_lb_case_ignorable_count, c); }
static int is_cased(uint32_t c) { return in_ranges(qv_lb_cased_ranges, qv_lb_cased_count, c); }

static const qv_lb_lower_entry *lower_entry(uint32_t c)
{
    size_t lo = 0, hi = qv_lb_lower_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c < qv_lb_lower_table[mid].cp) hi = mid;
        else if (c > qv_lb_lower_table[mid].cp) lo = mid + 1;
        else return &qv_lb_lower_table[mid];
    }
    return NULL;
}

/* CPython's Final_Sigma test: cased (case-ignorable)* Σ, not followed by (case-ignorable)* cased. */
static int final_sigma(const uint32_t *s, size_t n, size_t i)
{
    size_t j = i;
    uint32_t c = 0;
    int found = 0;
    while (j > 0) {
        c = s[--j];
        if (!is_ignorable(c)) { found = 1; break; }
    }
    int fs = found && is_cased(c);
    if (fs && i + 1 < n) {
        size_t k;
        for (k = i + 1; k < n; k++) {
            c = s[k];
            if (!is_ignorable(c)) break;
        }
        fs = k == n || !is_cased(c);
    }
    return fs;
}

qv_status qv_lb_lower(const qv_lb_str *in, qv_lb_str *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < in->n; i++) {
        uint32_t c = in->cp[i];
        qv_status st = QV_OK;
        if (c == 0x3A3) {
            st = qv_lb_str_push(out, final_sigma(in->cp, in->n, i) ? 0x3C2 : 0x3C3);
        } else if (c < 0x80) {
            st = qv_lb_str_push(out, (c >= 'A' && c <= 'Z') ? c + 32 : c);
        } else {
            const qv_lb_lower_entry *e = lower_entry(c);
            if (!e) st = qv_lb_str_push(out, c);
            else
                for (unsigned t = 0; t < e->n && st == QV_OK; t++) st = qv_lb_str_push(out, e->out[t]);
        }
        if (st != QV_OK) {
            qv_lb_str_free(out);
            return st;
        }
    }
    return QV_OK;
}

qv_status qv_lb_split_ws(const uint32_t *s, size_t n, qv_lb_tok **toks, size_t *ntok)
{
    size_t cnt = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && qv_lb_is_space(s[i])) i++;
        if (i == n) break;
        cnt++;
        while (i < n && !qv_lb_is_space(s[i])) i++;
    }
    *ntok = cnt;
    *toks = malloc((cnt ? cnt : 1) * sizeof **toks);
    if (!*toks) return qv_fail(QV_ERR_NOMEM, "longbench: out of memory (%zu tokens)", cnt);
    size_t t = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && qv_lb_is_space(s[i])) i++;
        if (i == n) break;
        size_t st = i;
        while (i < n && !qv_lb_is_space(s[i])) i++;
        (*toks)[t].off = st;
        (*toks)[t].len = i - st;
        t++;
    }
    return QV_OK;
}
