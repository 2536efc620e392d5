/* difflib.SequenceMatcher(None, a, b).ratio() and fuzzywuzzy's fuzz.ratio, as LongBench's
 * code_sim_score runs them (fuzzywuzzy without python-Levenshtein falls back to difflib).
 * Same algorithm as CPython 3.11's difflib, so the matching blocks, hence the ratio, are equal:
 *  - b2j: positions of each element of b; with autojunk and len(b) >= 200, elements occurring more
 *    than len(b)//100 + 1 times are "popular" and dropped from b2j (never start a match), but the
 *    extension step after the search may still walk over them (they are not in bjunk);
 *  - find_longest_match: earliest-in-a, then earliest-in-b longest block among b2j hits, then
 *    extended by equal non-junk neighbours (bjunk is empty without isjunk);
 *  - get_matching_blocks recurses left and right of each block; ratio = 2.0*M/T (1.0 if T == 0). */
#include <stdlib.h>
#include <string.h>

#include "longbench_internal.h"

typedef struct { uint32_t cp; uint32_t j; } pos;

typedef struct {
    const uint32_t *a, *b;
    size_t na, nb;
    pos *b2j;       /* (element, index in b) sorted by element then index; popular ones removed */
    size_t nb2j;
    size_t *len_a, *len_b;     /* two rows of j2len values, indexed by j */
    uint64_t *stamp_a, *stamp_b; /* row id that wrote each value (a value is live iff its stamp is the previous row) */
    uint64_t row;
} matcher;

static int pos_cmp(const void *x, const void *y)
{
    const pos *p = x, *q = y;
    if (p->cp != q->cp) return p->cp < q->cp ? -1 : 1;
    return p->j < q->j ? -1 : (p->j > q->j);
}

/* first b2j entry for element c, and how many */
static const pos *lookup(const matcher *m, uint32_t c, size_t *cnt)
{
    size_t lo = 0, hi = m->nb2j;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->b2j[mid].cp < c) lo = mid + 1;
        else hi = mid;
    }
    size_t e = lo;
    while (e < m->nb2j && m->b2j[e].cp == c) e++;
    *cnt = e - lo;
    return m->b2j + lo;
}

static void longest(matcher *m, size_t alo, size_t ahi, size_t blo, size_t bhi, size_t *oi, size_t *oj,
                    size_t *ok)
{
    size_t besti = alo, bestj = blo, bestsize = 0;
    size_t *prev_len = m->len_a, *cur_len = m->len_b;
    uint64_t *prev_st = m->stamp_a, *cur_st = m->stamp_b;
    m->row++; /* a gap: the first row of this call sees no live previous row */
    for (size_t i = alo; i < ahi; i++) {
        uint64_t row = ++m->row;
        size_t cnt;
        const pos *p = lookup(m, m->a[i], &cnt);
        for (size_t t = 0; t < cnt; t++) {
            size_t j = p[t].j;
            if (j < blo) continue;
            if (j >= bhi) break;
            size_t k = (j > 0 && prev_st[j - 1] == row - 1) ? prev_len[j - 1] + 1 : 1;
            cur_len[j] = k;
            cur_st[j] = row;
            if (k > bestsize) {
                besti = i - k + 1;
                bestj = j - k + 1;
                bestsize = k;
            }
        }
        size_t *tl = prev_len; prev_len = cur_len; cur_len = tl;
        uint64_t *ts = prev_st; prev_st = cur_st; cur_st = ts;
    }
    while (besti > alo && bestj > blo && m->a[besti - 1] == m->b[bestj - 1]) {
        besti--;
        bestj--;
        bestsize++;
    }
    while (besti + bestsize < ahi && bestj + bestsize < bhi && m->a[besti + bestsize] == m->b[bestj + bestsize])
        bestsize++;
    *oi = besti;
    *oj = bestj;
    *ok = bestsize;
}

qv_status qv_lb_seqmatch_ratio(const uint32_t *a, size_t na, const uint32_t *b, size_t nb, double *ratio)
{
    if (na + nb == 0) {
        *ratio = 1.0;
        return QV_OK;
    }
    matcher m = {.a = a, .b = b, .na = na, .nb = nb};
    size_t nbb = nb ? nb : 1;
    m.b2j = malloc(nbb * sizeof *m.b2j);
    m.len_a = calloc(nbb, sizeof(size_t));
    m.len_b = calloc(nbb, sizeof(size_t));
    m.stamp_a = calloc(nbb, sizeof(uint64_t));
    m.stamp_b = calloc(nbb, sizeof(uint64_t));
    /* explicit work stack of (alo, ahi, blo, bhi): at most one entry per matching block + 1 */
    size_t stack_cap = (na < nb ? na : nb) + 2;
    size_t (*stack)[4] = malloc(stack_cap * sizeof *stack);
    qv_status st = QV_OK;
    if (!m.b2j || !m.len_a || !m.len_b || !m.stamp_a || !m.stamp_b || !stack) {
        st = qv_fail(QV_ERR_NOMEM, "longbench: out of memory (SequenceMatcher on %zu x %zu)", na, nb);
        goto done;
    }
    for (size_t j = 0; j < nb; j++) {
        m.b2j[j].cp = b[j];
        m.b2j[j].j = (uint32_t)j;
    }
    qsort(m.b2j, nb, sizeof *m.b2j, pos_cmp);
    m.nb2j = nb;
    if (nb >= 200) { /* autojunk */
        size_t ntest = nb / 100 + 1, w = 0;
        for (size_t r = 0; r < nb;) {
            size_t e = r;
            while (e < nb && m.b2j[e].cp == m.b2j[r].cp) e++;
            if (e - r <= ntest)
                for (size_t t = r; t < e; t++) m.b2j[w++] = m.b2j[t];
            r = e;
        }
        m.nb2j = w;
    }
    size_t matches = 0, sp = 0;
    stack[sp][0] = 0; stack[sp][1] = na; stack[sp][2] = 0; stack[sp][3] = nb; sp++;
    while (sp > 0) {
        sp--;
        size_t alo = stack[sp][0], ahi = stack[sp][1], blo = stack[sp][2], bhi = stack[sp][3];
        size_t i, j, k;
        longest(&m, alo, ahi, blo, bhi, &i, &j, &k);
        if (k) {
            matches += k;
            if (alo < i && blo < j) {
                stack[sp][0] = alo; stack[sp][1] = i; stack[sp][2] = blo; stack[sp][3] = j; sp++;
            }
            if (i + k < ahi && j + k < bhi) {
                stack[sp][0] = i + k; stack[sp][1] = ahi; stack[sp][2] = j + k; stack[sp][3] = bhi; sp++;
            }
        }
    }
    *ratio = 2.0 * (double)matches / (double)(na + nb);
done:
    free(m.b2j);
    free(m.len_a);
    free(m.len_b);
    free(m.stamp_a);
    free(m.stamp_b);
    free(stack);
    return st;
}

qv_status qv_lb_fuzz_ratio(const char *s1, const char *s2, int *out)
{
    /* decorators of fuzz.ratio, outermost first: check_for_none, check_for_equivalence (equal
     * strings, both empty included, give 100), check_empty_string (one empty gives 0) */
    if (!strcmp(s1, s2)) {
        *out = 100;
        return QV_OK;
    }
    if (!*s1 || !*s2) {
        *out = 0;
        return QV_OK;
    }
    qv_lb_str a, b;
    QV_TRY(qv_lb_decode(s1, strlen(s1), "code_sim prediction", &a));
    qv_status st = qv_lb_decode(s2, strlen(s2), "code_sim answer", &b);
    if (st != QV_OK) {
        qv_lb_str_free(&a);
        return st;
    }
    double r = 0;
    st = qv_lb_seqmatch_ratio(a.cp, a.n, b.cp, b.n, &r);
    qv_lb_str_free(&a);
    qv_lb_str_free(&b);
    if (st != QV_OK) return st;
    *out = (int)qv_lb_py_round(100 * r); /* utils.intr: int(round(n)) */
    return QV_OK;
}
