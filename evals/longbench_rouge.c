/* LongBench's rouge_score: Rouge().get_scores([pred], [truth], avg=True)["rouge-l"]["f"] of the
 * `rouge` package 1.0.1 (pip), inside LongBench's bare `except: return 0.0`. What that computes:
 *  - each text is cut at every '.', empty pieces dropped, each piece re-joined as
 *    " ".join(piece.split()) and split again on " " (so a whitespace-only piece is one word "");
 *  - no sentences on either side -> ValueError -> 0.0;
 *  - m / n = number of DISTINCT words of the truth / prediction (exclusive=True: sets);
 *  - for every truth sentence r and prediction sentence c, the LCS of (r, c) is reconstructed by
 *    _recon (ties step along c) and its words join a set shared over all pairs; llcs = its size;
 *  - f = 2.0 * ((p * r) / (p + r + 1e-8)) with r = llcs / m, p = llcs / n;
 *  - _recon is recursive: a chain longer than Python's recursion limit raises RecursionError,
 *    which LongBench's except turns into 0.0. QV_LB_ROUGE_MAX_RECON_FRAMES is the longest chain
 *    that still succeeds under eval.py's call stack (CPython 3.11, limit 1000), measured by
 *    tools/longbench_reference.py. */
#include <stdlib.h>
#include <string.h>

#include "longbench_internal.h"

#define QV_LB_ROUGE_MAX_RECON_FRAMES 991

typedef struct { const uint32_t *s; size_t off, len; } word;
typedef struct { size_t first, count; } sentence; /* words[first .. first+count) */

typedef struct {
    word *w;
    size_t nw, capw;
    sentence *s;
    size_t ns, caps;
} doc;

static qv_status doc_add_word(doc *d, const uint32_t *s, size_t off, size_t len)
{
    if (d->nw == d->capw) {
        size_t cap = d->capw ? d->capw * 2 : 64;
        word *p = realloc(d->w, cap * sizeof *p);
        if (!p) return qv_fail(QV_ERR_NOMEM, "rouge: out of memory");
        d->w = p;
        d->capw = cap;
    }
    d->w[d->nw++] = (word){s, off, len};
    return QV_OK;
}

static qv_status doc_build(const qv_lb_str *t, doc *d)
{
    memset(d, 0, sizeof *d);
    size_t start = 0;
    for (size_t i = 0; i <= t->n; i++) {
        if (i < t->n && t->cp[i] != '.') continue;
        if (i > start) { /* a non-empty piece [start, i) */
            if (d->ns == d->caps) {
                size_t cap = d->caps ? d->caps * 2 : 16;
                sentence *p = realloc(d->s, cap * sizeof *p);
                if (!p) return qv_fail(QV_ERR_NOMEM, "rouge: out of memory");
                d->s = p;
                d->caps = cap;
            }
            qv_lb_tok *toks;
            size_t nt;
            QV_TRY(qv_lb_split_ws(t->cp + start, i - start, &toks, &nt));
            sentence se = {d->nw, nt ? nt : 1};
            qv_status st = QV_OK;
            if (nt == 0) st = doc_add_word(d, t->cp, start, 0); /* "".split(" ") == [""] */
            for (size_t k = 0; k < nt && st == QV_OK; k++) st = doc_add_word(d, t->cp, start + toks[k].off, toks[k].len);
            free(toks);
            QV_TRY(st);
            d->s[d->ns++] = se;
        }
        start = i + 1;
    }
    return QV_OK;
}

static void doc_free(doc *d)
{
    free(d->w);
    free(d->s);
}

static int word_cmp(const word *a, const word *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    for (size_t i = 0; i < n; i++) {
        uint32_t x = a->s[a->off + i], y = b->s[b->off + i];
        if (x != y) return x < y ? -1 : 1;
    }
    return a->len < b->len ? -1 : (a->len > b->len);
}

static word *g_sort_words; /* qsort has no context argument; used only inside assign_ids */
static int idx_cmp(const void *x, const void *y)
{
    return word_cmp(&g_sort_words[*(const size_t *)x], &g_sort_words[*(const size_t *)y]);
}

qv_status qv_lb_rouge_l(const char *pred, const char *truth, double *score)
{
    *score = 0.0;
    qv_lb_str hs = {0}, rs = {0};
    doc h = {0}, r = {0};
    word *all = NULL;
    size_t *idx = NULL, *id = NULL;
    uint32_t *table = NULL;
    unsigned char *in_union = NULL, *seen = NULL;
    qv_status st = qv_lb_decode(pred, strlen(pred), "rouge prediction", &hs);
    if (st == QV_OK) st = qv_lb_decode(truth, strlen(truth), "rouge answer", &rs);
    if (st == QV_OK) st = doc_build(&hs, &h);
    if (st == QV_OK) st = doc_build(&rs, &r);
    if (st != QV_OK) goto done;
    if (h.ns == 0 || r.ns == 0) goto done; /* ValueError("Hypothesis is empty.") -> 0.0 */

    /* word ids: equal words share an id (words of the truth first, then of the prediction) */
    size_t nall = r.nw + h.nw;
    all = malloc(nall * sizeof *all);
    idx = malloc(nall * sizeof *idx);
    id = malloc(nall * sizeof *id);
    in_union = calloc(nall, 1);
    seen = calloc(nall, 1);
    if (!all || !idx || !id || !in_union || !seen) {
        st = qv_fail(QV_ERR_NOMEM, "rouge: out of memory");
        goto done;
    }
    memcpy(all, r.w, r.nw * sizeof *all);
    memcpy(all + r.nw, h.w, h.nw * sizeof *all);
    for (size_t i = 0; i < nall; i++) idx[i] = i;
    g_sort_words = all;
    qsort(idx, nall, sizeof *idx, idx_cmp);
    size_t next = 0;
    for (size_t k = 0; k < nall; k++) {
        if (k > 0 && word_cmp(&all[idx[k]], &all[idx[k - 1]]) != 0) next++;
        id[idx[k]] = next;
    }
    size_t m = 0, n = 0;
    for (size_t i = 0; i < r.nw; i++)
        if (!(seen[id[i]] & 1)) { seen[id[i]] |= 1; m++; }
    for (size_t i = 0; i < h.nw; i++)
        if (!(seen[id[r.nw + i]] & 2)) { seen[id[r.nw + i]] |= 2; n++; }

    size_t llcs = 0;
    for (size_t rsn = 0; rsn < r.ns; rsn++) {
        const size_t *x = id + r.s[rsn].first;
        size_t nx = r.s[rsn].count;
        for (size_t hsn = 0; hsn < h.ns; hsn++) {
            const size_t *y = id + r.nw + h.s[hsn].first;
            size_t ny = h.s[hsn].count;
            size_t cols = ny + 1, cells;
            if (qv_mul_size(nx + 1, cols, &cells) != 0) {
                st = qv_fail(QV_ERR_NOMEM, "rouge: sentences too long (%zu x %zu words)", nx, ny);
                goto done;
            }
            uint32_t *t2 = realloc(table, cells * sizeof *t2);
            if (!t2) {
                st = qv_fail(QV_ERR_NOMEM, "rouge: out of memory (%zu x %zu words)", nx, ny);
                goto done;
            }
            table = t2;
            for (size_t i = 0; i <= nx; i++)
                for (size_t j = 0; j <= ny; j++) {
                    uint32_t v;
                    if (i == 0 || j == 0) v = 0;
                    else if (x[i - 1] == y[j - 1]) v = table[(i - 1) * cols + j - 1] + 1;
                    else {
                        uint32_t up = table[(i - 1) * cols + j], left = table[i * cols + j - 1];
                        v = up > left ? up : left;
                    }
                    table[i * cols + j] = v;
                }
            /* _recon(i, j), walked iteratively; frames = calls in the recursive chain */
            size_t i = nx, j = ny, frames = 1;
            while (i > 0 && j > 0) {
                if (x[i - 1] == y[j - 1]) {
                    if (!in_union[x[i - 1]]) { in_union[x[i - 1]] = 1; llcs++; }
                    i--;
                    j--;
                } else if (table[(i - 1) * cols + j] > table[i * cols + j - 1]) i--;
                else j--;
                frames++;
            }
            if (frames > QV_LB_ROUGE_MAX_RECON_FRAMES) { /* RecursionError -> 0.0 */
                *score = 0.0;
                goto done;
            }
        }
    }
    double rl = (double)llcs / (double)m, pl = (double)llcs / (double)n;
    *score = 2.0 * ((pl * rl) / (pl + rl + 1e-8));
done:
    free(all);
    free(idx);
    free(id);
    free(table);
    free(in_union);
    free(seen);
    doc_free(&h);
    doc_free(&r);
    qv_lb_str_free(&hs);
    qv_lb_str_free(&rs);
    return st;
}
