/* LongBench's English metrics (metrics.py), on Python str semantics (longbench_text.c). */
#include <stdlib.h>
#include <string.h>

#include "longbench_internal.h"

/* string.punctuation */
static int is_ascii_punct(uint32_t c)
{
    return c < 0x80 && strchr("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", (int)c) && c != 0;
}

/* normalize_answer(s).split(): lower, remove_punc, remove_articles, white_space_fix, split.
 * remove_articles replaces every \b(a|an|the)\b by " ": a maximal run of \w characters that is
 * exactly one of the three words (the \b on both sides forces the run to be maximal). */
static qv_status normalize_tokens(const char *text, const char *what, qv_lb_str *out, qv_lb_tok **toks, size_t *nt)
{
    qv_lb_str raw, low, np = {0};
    memset(out, 0, sizeof *out);
    QV_TRY(qv_lb_decode(text, strlen(text), what, &raw));
    qv_status st = qv_lb_lower(&raw, &low);
    qv_lb_str_free(&raw);
    QV_TRY(st);
    for (size_t i = 0; i < low.n && st == QV_OK; i++)
        if (!is_ascii_punct(low.cp[i])) st = qv_lb_str_push(&np, low.cp[i]);
    qv_lb_str_free(&low);
    for (size_t i = 0; i < np.n && st == QV_OK;) {
        if (!qv_lb_is_word(np.cp[i])) {
            st = qv_lb_str_push(out, np.cp[i++]);
            continue;
        }
        size_t s = i;
        while (i < np.n && qv_lb_is_word(np.cp[i])) i++;
        size_t len = i - s;
        const uint32_t *w = np.cp + s;
        int article = (len == 1 && w[0] == 'a') || (len == 2 && w[0] == 'a' && w[1] == 'n') ||
                      (len == 3 && w[0] == 't' && w[1] == 'h' && w[2] == 'e');
        if (article) st = qv_lb_str_push(out, ' ');
        else
            for (size_t k = s; k < i && st == QV_OK; k++) st = qv_lb_str_push(out, np.cp[k]);
    }
    qv_lb_str_free(&np);
    if (st == QV_OK) st = qv_lb_split_ws(out->cp, out->n, toks, nt);
    if (st != QV_OK) qv_lb_str_free(out);
    return st;
}

static const uint32_t *g_cmp_base; /* qsort context, used only inside qv_lb_qa_f1 */
static int tok_cmp(const void *x, const void *y)
{
    const qv_lb_tok *a = x, *b = y;
    size_t n = a->len < b->len ? a->len : b->len;
    for (size_t i = 0; i < n; i++) {
        uint32_t p = g_cmp_base[a->off + i], q = g_cmp_base[b->off + i];
        if (p != q) return p < q ? -1 : 1;
    }
    return a->len < b->len ? -1 : (a->len > b->len);
}

qv_status qv_lb_qa_f1(const char *pred, const char *truth, double *score)
{
    *score = 0.0;
    qv_lb_str ps, ts;
    qv_lb_tok *pt, *tt;
    size_t np, nt;
    QV_TRY(normalize_tokens(pred, "qa_f1 prediction", &ps, &pt, &np));
    qv_status st = normalize_tokens(truth, "qa_f1 answer", &ts, &tt, &nt);
    if (st != QV_OK) {
        qv_lb_str_free(&ps);
        free(pt);
        return st;
    }
    /* Counter(pred) & Counter(truth): tokens of both re-based on one array, sorted, merged */
    qv_lb_str all = {0};
    qv_lb_tok *both = malloc((np + nt + 1) * sizeof *both);
    if (!both) st = qv_fail(QV_ERR_NOMEM, "qa_f1: out of memory");
    for (size_t i = 0; i < ps.n && st == QV_OK; i++) st = qv_lb_str_push(&all, ps.cp[i]);
    for (size_t i = 0; i < ts.n && st == QV_OK; i++) st = qv_lb_str_push(&all, ts.cp[i]);
    if (st == QV_OK) {
        for (size_t i = 0; i < np; i++) both[i] = pt[i];
        for (size_t i = 0; i < nt; i++) both[np + i] = (qv_lb_tok){tt[i].off + ps.n, tt[i].len};
        g_cmp_base = all.cp;
        qsort(both, np, sizeof *both, tok_cmp);
        qsort(both + np, nt, sizeof *both, tok_cmp);
        size_t i = 0, j = 0, same = 0;
        while (i < np && j < nt) {
            int c = tok_cmp(&both[i], &both[np + j]);
            if (c == 0) { same++; i++; j++; }
            else if (c < 0) i++;
            else j++;
        }
        if (same > 0) {
            double precision = 1.0 * (double)same / (double)np;
            double recall = 1.0 * (double)same / (double)nt;
            *score = (2 * precision * recall) / (precision + recall);
        }
    }
    free(both);
    qv_lb_str_free(&all);
    qv_lb_str_free(&ps);
    qv_lb_str_free(&ts);
    free(pt);
    free(tt);
    return st;
}

static int contains(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL; /* UTF-8 byte substring == code-point substring */
}

qv_status qv_lb_classification(const char *pred, const char *truth, const char *const *classes,
                               size_t nclasses, double *score)
{
    const char **list = malloc((nclasses ? nclasses : 1) * sizeof *list);
    if (!list) return qv_fail(QV_ERR_NOMEM, "classification: out of memory");
    size_t n = 0;
    for (size_t i = 0; i < nclasses; i++)
        if (contains(pred, classes[i])) list[n++] = classes[i];
    /* for match_term in em_match_list: ... em_match_list.remove(match_term)
     * Removing while iterating makes Python's list iterator skip the element after each removal;
     * remove() drops the FIRST equal element. Both kept as-is. */
    for (size_t it = 0; it < n; it++) {
        const char *term = list[it];
        if (contains(truth, term) && strcmp(term, truth) != 0) {
            size_t k = 0;
            while (strcmp(list[k], term) != 0) k++;
            memmove(list + k, list + k + 1, (n - k - 1) * sizeof *list);
            n--;
        }
    }
    int found = 0;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(list[i], truth)) found = 1;
    *score = found ? 1.0 / (double)n : 0.0;
    free(list);
    return QV_OK;
}

/* re.findall(r"\d+", s) compared with `want` (code points): counts (matches, total) */
static void count_numbers(const qv_lb_str *s, const uint32_t *want, size_t nwant, size_t *right, size_t *total)
{
    *right = *total = 0;
    for (size_t i = 0; i < s->n;) {
        if (!qv_lb_is_digit(s->cp[i])) { i++; continue; }
        size_t st = i;
        while (i < s->n && qv_lb_is_digit(s->cp[i])) i++;
        (*total)++;
        if (i - st == nwant && !memcmp(s->cp + st, want, nwant * sizeof *want)) (*right)++;
    }
}

static qv_status number_score(const char *pred, const uint32_t *want, size_t nwant, double *score)
{
    qv_lb_str p;
    QV_TRY(qv_lb_decode(pred, strlen(pred), "prediction", &p));
    size_t right, total;
    count_numbers(&p, want, nwant, &right, &total);
    qv_lb_str_free(&p);
    *score = total == 0 ? 0.0 : (double)right / (double)total;
    return QV_OK;
}

qv_status qv_lb_retrieval(const char *pred, const char *truth, double *score)
{
    qv_lb_str t;
    QV_TRY(qv_lb_decode(truth, strlen(truth), "retrieval answer", &t));
    static const char pat[] = "Paragraph ";
    const size_t pl = sizeof pat - 1;
    for (size_t i = 0; i + pl < t.n; i++) {
        size_t k = 0;
        while (k < pl && t.cp[i + k] == (uint32_t)(unsigned char)pat[k]) k++;
        if (k < pl || !qv_lb_is_digit(t.cp[i + pl])) continue;
        size_t e = i + pl;
        while (e < t.n && qv_lb_is_digit(t.cp[e])) e++;
        qv_status st = number_score(pred, t.cp + i + pl, e - i - pl, score);
        qv_lb_str_free(&t);
        return st;
    }
    qv_lb_str_free(&t);
    return qv_fail(QV_ERR_INPUT, "retrieval answer '%.80s' has no 'Paragraph <number>' (LongBench's retrieval_score raises IndexError on it)", truth);
}

qv_status qv_lb_count(const char *pred, const char *truth, double *score)
{
    qv_lb_str t;
    QV_TRY(qv_lb_decode(truth, strlen(truth), "count answer", &t));
    qv_status st = number_score(pred, t.cp, t.n, score);
    qv_lb_str_free(&t);
    return st;
}

qv_status qv_lb_code_sim(const char *pred, const char *truth, double *score)
{
    while (*pred == '\n') pred++; /* lstrip('\n') */
    const char *line = "";
    size_t len = 0;
    for (const char *p = pred;;) {
        const char *e = strchr(p, '\n');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        int bad = 0;
        for (size_t i = 0; i < l && !bad; i++)
            bad = p[i] == '`' || p[i] == '#' || (p[i] == '/' && i + 1 < l && p[i + 1] == '/');
        if (!bad) {
            line = p;
            len = l;
            break;
        }
        if (!e) break;
        p = e + 1;
    }
    char *first = malloc(len + 1);
    if (!first) return qv_fail(QV_ERR_NOMEM, "code_sim: out of memory");
    memcpy(first, line, len);
    first[len] = 0;
    int r = 0;
    qv_status st = qv_lb_fuzz_ratio(first, truth, &r);
    free(first);
    if (st == QV_OK) *score = (double)r / 100.0;
    return st;
}
