/* qvet's own synthetic LongBench-format tasks, built from any text corpus so the LongBench
 * pipeline (prompts, truncation, generation, scoring, shards) runs offline. They mirror the
 * shape of LongBench's passage_retrieval_en and passage_count and of a key-value retrieval task;
 * the texts of their prompts are qvet's, not LongBench's (docs/longbench.md).
 *
 * Paragraphs: the corpus split at blank lines, whitespace collapsed, kept when 25..150 words.
 * Sample i of a task draws from splitmix64 seeded by (seed, task, i) only, so a sample does not
 * depend on --samples, on the shard, or on the other tasks. */
#include <cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qvet/eval_longbench.h"

const char *const qv_lb_syn_tasks[QV_LB_SYN_NTASKS] = {"qvet_passage_retrieval", "qvet_passage_count",
                                                      "qvet_kv_retrieval"};

/* each prompt in parentheses: one element of several literals (clang's -Wstring-concatenation) */
static const char *const syn_prompt[QV_LB_SYN_NTASKS] = {
    ("Below are numbered paragraphs and an excerpt copied word for word from one of them. Find the paragraph "
    "the excerpt comes from.\n\n{context}\n\nThe excerpt:\n\n{input}\n\nWhich paragraph is the excerpt from? "
    "Answer like \"Paragraph 1\".\n\nThe answer is: Paragraph"),
    ("Below are numbered paragraphs; some of them are repeated word for word. Count how many different "
    "paragraphs there are.\n\n{context}\n\nHow many different paragraphs are there above? Answer with a "
    "number only.\n\nThe number of different paragraphs is"),
    ("Each line below pairs a key word with its value word.\n\n{context}\n\nWhat is the value of the key "
     "\"{input}\"? Give only the value.\n\n{input}:"),
};
/* Enough for the answer and a little more (the metrics look at the numbers / words produced). */
static const int syn_maxlen[QV_LB_SYN_NTASKS] = {8, 6, 8};

enum { PAR_MIN_WORDS = 25, PAR_MAX_WORDS = 150, MAX_PARAGRAPHS = 40, EXCERPT_WORDS = 16 };

static int syn_index(const char *task)
{
    for (int i = 0; i < QV_LB_SYN_NTASKS; i++)
        if (!strcmp(task, qv_lb_syn_tasks[i])) return i;
    return -1;
}

int qv_lb_syn_is(const char *task) { return syn_index(task) >= 0; }
const char *qv_lb_syn_prompt(const char *task) { return syn_index(task) >= 0 ? syn_prompt[syn_index(task)] : NULL; }
int qv_lb_syn_maxlen(const char *task) { return syn_index(task) >= 0 ? syn_maxlen[syn_index(task)] : 0; }

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in [0, n) (n small: the modulo bias is below 2^-50) */
static size_t draw(uint64_t *s, size_t n) { return (size_t)(splitmix(s) % n); }

typedef struct {
    char **p;      /* paragraphs, whitespace collapsed */
    int *words;
    size_t n;
} paragraphs;

static void par_free(paragraphs *P)
{
    for (size_t i = 0; i < P->n; i++) free(P->p[i]);
    free(P->p);
    free(P->words);
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* paragraphs = runs of non-blank lines; one space between words */
static qv_status split_paragraphs(const char *t, size_t len, paragraphs *P)
{
    memset(P, 0, sizeof *P);
    size_t cap = 0, i = 0;
    while (i < len) {
        /* skip blank lines */
        size_t s = i;
        while (s < len) {
            size_t e = s;
            while (e < len && t[e] != '\n' && is_ws(t[e])) e++;
            if (e < len && t[e] != '\n') break;
            s = e + 1;
        }
        if (s >= len) break;
        /* the paragraph ends at a blank line (or the end) */
        size_t e = s;
        while (e < len) {
            size_t nl = e;
            while (nl < len && t[nl] != '\n') nl++;
            size_t q = nl + 1;
            while (q < len && t[q] != '\n' && is_ws(t[q])) q++;
            e = nl;
            if (nl >= len || q >= len || t[q] == '\n') break;
            e = nl + 1;
        }
        char *p = malloc(e - s + 1);
        if (!p) return qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
        size_t k = 0;
        int words = 0, in = 0;
        for (size_t c = s; c < e; c++) {
            if (is_ws(t[c])) in = 0;
            else {
                if (!in) {
                    if (k) p[k++] = ' ';
                    words++;
                    in = 1;
                }
                p[k++] = t[c];
            }
        }
        p[k] = 0;
        i = e;
        if (words < PAR_MIN_WORDS || words > PAR_MAX_WORDS) {
            free(p);
            continue;
        }
        if (P->n == cap) {
            cap = cap ? 2 * cap : 256;
            char **np = realloc(P->p, cap * sizeof *np);
            int *nw = realloc(P->words, cap * sizeof *nw);
            if (np) P->p = np;
            if (nw) P->words = nw;
            if (!np || !nw) {
                free(p);
                return qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
            }
        }
        P->p[P->n] = p;
        P->words[P->n++] = words;
    }
    return QV_OK;
}

/* drops paragraphs whose text repeats an earlier one (a duplicate would make the count and the
 * retrieval answer ambiguous), keeping corpus order */
typedef struct { const char *p; size_t i; } par_ref;
static int cmp_par(const void *a, const void *b)
{
    const par_ref *x = a, *y = b;
    int c = strcmp(x->p, y->p);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

static qv_status dedupe(paragraphs *P)
{
    if (P->n < 2) return QV_OK;
    par_ref *ord = malloc(P->n * sizeof *ord);
    unsigned char *drop = calloc(P->n, 1);
    if (!ord || !drop) {
        free(ord), free(drop);
        return qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
    }
    for (size_t i = 0; i < P->n; i++) ord[i] = (par_ref){P->p[i], i};
    qsort(ord, P->n, sizeof *ord, cmp_par);
    for (size_t i = 1; i < P->n; i++) drop[ord[i].i] = !strcmp(ord[i].p, ord[i - 1].p);
    size_t k = 0;
    for (size_t i = 0; i < P->n; i++) {
        if (drop[i]) free(P->p[i]);
        else P->p[k] = P->p[i], P->words[k++] = P->words[i];
    }
    P->n = k;
    free(ord), free(drop);
    return QV_OK;
}

/* distinct lowercase ASCII words of 5..10 letters, sorted (a stable vocabulary for kv pairs) */
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static qv_status word_list(const char *t, size_t len, char ***out, size_t *n)
{
    size_t cap = 0, cnt = 0;
    char **v = NULL;
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && isalpha((unsigned char)t[e])) e++;
        size_t wl = e - i;
        int edge_ok = (i == 0 || is_ws(t[i - 1])) && (e == len || !isalnum((unsigned char)t[e]));
        if (wl >= 5 && wl <= 10 && edge_ok) {
            if (cnt == cap) {
                cap = cap ? 2 * cap : 1024;
                char **nv = realloc(v, cap * sizeof *nv);
                if (!nv) goto oom;
                v = nv;
            }
            char *w = malloc(wl + 1);
            if (!w) goto oom;
            for (size_t k = 0; k < wl; k++) w[k] = (char)tolower((unsigned char)t[i + k]);
            w[wl] = 0;
            v[cnt++] = w;
        }
        i = e > i ? e : i + 1;
    }
    if (cnt) qsort(v, cnt, sizeof *v, cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < cnt; i++) {
        if (u && !strcmp(v[u - 1], v[i])) free(v[i]);
        else v[u++] = v[i];
    }
    *out = v;
    *n = u;
    return QV_OK;
oom:
    for (size_t i = 0; i < cnt; i++) free(v[i]);
    free(v);
    return qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
}

typedef struct { char *p; size_t n, cap; int oom; } sbuf;
static void sb_add(sbuf *b, const char *s)
{
    size_t l = strlen(s);
    if (b->oom) return;
    if (b->n + l + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + l + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->n, s, l + 1);
    b->n += l;
}

static int count_words(const char *s)
{
    int w = 0, in = 0;
    for (; *s; s++) {
        if (is_ws(*s)) in = 0;
        else if (!in) in = 1, w++;
    }
    return w;
}

static cJSON *sample_obj(const char *task, uint64_t seed, size_t i, const char *context, const char *input,
                         const char *answer)
{
    cJSON *o = cJSON_CreateObject();
    char id[128];
    snprintf(id, sizeof id, "qvet-%s-%llu-%zu", task, (unsigned long long)seed, i);
    cJSON_AddStringToObject(o, "input", input);
    cJSON_AddStringToObject(o, "context", context);
    cJSON *a = cJSON_AddArrayToObject(o, "answers");
    cJSON_AddItemToArray(a, cJSON_CreateString(answer));
    /* LongBench's README: "total length of the first three items" (input, context, answers), in
     * words for English */
    cJSON_AddNumberToObject(o, "length", count_words(input) + count_words(context) + count_words(answer));
    cJSON_AddStringToObject(o, "dataset", task);
    cJSON_AddStringToObject(o, "language", "en");
    cJSON_AddNullToObject(o, "all_classes");
    cJSON_AddStringToObject(o, "_id", id);
    return o;
}

/* P distinct paragraph indices until `words` is reached (at least min_n, at most max_n) */
static size_t pick_distinct(uint64_t *s, const paragraphs *P, int words, size_t min_n, size_t max_n, size_t *idx)
{
    size_t k = 0;
    long total = 0;
    while (k < max_n && (k < min_n || total < words)) {
        size_t j;
        int again;
        do { /* rejection: at most max_n of >= 2 * MAX_PARAGRAPHS paragraphs are taken */
            j = draw(s, P->n);
            again = 0;
            for (size_t q = 0; q < k; q++) again |= idx[q] == j;
        } while (again);
        idx[k++] = j;
        total += P->words[j];
    }
    return k;
}

static qv_status build_retrieval(const paragraphs *P, uint64_t s, const qv_lb_syn_opts *o, size_t i, cJSON **out)
{
    size_t idx[MAX_PARAGRAPHS];
    size_t np = pick_distinct(&s, P, o->words, 3, 30, idx), k = draw(&s, np);
    sbuf c = {0}, in = {0};
    char lab[64];
    for (size_t q = 0; q < np; q++) {
        snprintf(lab, sizeof lab, "%sParagraph %zu: ", q ? "\n\n" : "", q + 1);
        sb_add(&c, lab);
        sb_add(&c, P->p[idx[q]]);
    }
    /* the excerpt: EXCERPT_WORDS consecutive words of paragraph k from a drawn start */
    const char *p = P->p[idx[k]];
    int nw = P->words[idx[k]], m = nw < EXCERPT_WORDS ? nw : EXCERPT_WORDS;
    int start = (int)draw(&s, (size_t)(nw - m + 1)), w = 0;
    for (const char *q = p; *q && w < start + m; w++) {
        const char *e = strchr(q, ' ');
        size_t l = e ? (size_t)(e - q) : strlen(q);
        if (w >= start) {
            char word[256];
            snprintf(word, sizeof word, "%s%.*s", w > start ? " " : "", (int)(l < 200 ? l : 200), q);
            sb_add(&in, word);
        }
        q = e ? e + 1 : q + l;
    }
    snprintf(lab, sizeof lab, "Paragraph %zu", k + 1);
    qv_status st = c.oom || in.oom ? qv_fail(QV_ERR_NOMEM, "longbench: out of memory") : QV_OK;
    if (st == QV_OK) *out = sample_obj(qv_lb_syn_tasks[0], o->seed, i, c.p, in.p, lab);
    free(c.p), free(in.p);
    return st;
}

static qv_status build_count(const paragraphs *P, uint64_t s, const qv_lb_syn_opts *o, size_t i, cJSON **out)
{
    size_t uniq[MAX_PARAGRAPHS], slot[MAX_PARAGRAPHS], nu = 0, ns = 0;
    long total = 0;
    /* each slot repeats an earlier paragraph with probability 1/3 (once two exist), else a new one */
    while (ns < MAX_PARAGRAPHS && (ns < 3 || total < o->words)) {
        size_t j;
        if (nu >= 2 && draw(&s, 3) == 0) j = uniq[draw(&s, nu)];
        else {
            pick_distinct(&s, P, 0, 1, 1, &j);
            int dup = 0;
            for (size_t q = 0; q < nu; q++) dup |= uniq[q] == j;
            if (!dup) uniq[nu++] = j;
        }
        slot[ns++] = j;
        total += P->words[j];
    }
    for (size_t q = ns; q > 1; q--) { /* Fisher-Yates */
        size_t r = draw(&s, q), t = slot[q - 1];
        slot[q - 1] = slot[r];
        slot[r] = t;
    }
    sbuf c = {0};
    char lab[64];
    for (size_t q = 0; q < ns; q++) {
        snprintf(lab, sizeof lab, "%sParagraph %zu: ", q ? "\n\n" : "", q + 1);
        sb_add(&c, lab);
        sb_add(&c, P->p[slot[q]]);
    }
    snprintf(lab, sizeof lab, "%zu", nu);
    qv_status st = c.oom ? qv_fail(QV_ERR_NOMEM, "longbench: out of memory") : QV_OK;
    if (st == QV_OK) *out = sample_obj(qv_lb_syn_tasks[1], o->seed, i, c.p, "", lab);
    free(c.p);
    return st;
}

static qv_status build_kv(char **words, size_t nwords, uint64_t s, const qv_lb_syn_opts *o, size_t i, cJSON **out)
{
    /* a kv line "key: value" is ~6 tokens where prose is ~1.3 per word: words/6 pairs give a
     * prompt of about the same token count as the other tasks */
    size_t np = (size_t)(o->words / 6 < 4 ? 4 : o->words / 6);
    size_t *pick = malloc(2 * np * sizeof *pick);
    if (!pick) return qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
    /* 2*np distinct words: a partial Fisher-Yates over an index permutation would need nwords
     * memory; rejection is cheap because nwords >= 8 * np (checked by the caller) */
    for (size_t k = 0; k < 2 * np; k++) {
        int again;
        do {
            pick[k] = draw(&s, nwords);
            again = 0;
            for (size_t q = 0; q < k; q++) again |= pick[q] == pick[k];
        } while (again);
    }
    size_t q = draw(&s, np);
    sbuf c = {0};
    for (size_t k = 0; k < np; k++) {
        if (k) sb_add(&c, "\n");
        sb_add(&c, words[pick[2 * k]]);
        sb_add(&c, ": ");
        sb_add(&c, words[pick[2 * k + 1]]);
    }
    qv_status st = c.oom ? qv_fail(QV_ERR_NOMEM, "longbench: out of memory") : QV_OK;
    if (st == QV_OK) *out = sample_obj(qv_lb_syn_tasks[2], o->seed, i, c.p, words[pick[2 * q]], words[pick[2 * q + 1]]);
    free(c.p);
    free(pick);
    return st;
}

qv_status qv_lb_syn_build(const char *task, const char *corpus, size_t len, const char *label, const qv_lb_syn_opts *o,
                          cJSON ***items, size_t *n)
{
    *items = NULL;
    *n = 0;
    int t = syn_index(task);
    if (t < 0) return qv_fail(QV_ERR_USAGE, "'%s' is not one of qvet's synthetic tasks", task);
    if (o->samples < 1 || o->words < 1) return qv_fail(QV_ERR_USAGE, "synthetic tasks: samples and words must be >= 1");
    paragraphs P = {0};
    char **words = NULL;
    size_t nwords = 0;
    qv_status st = QV_OK;
    if (t < 2) {
        st = split_paragraphs(corpus, len, &P);
        if (st == QV_OK) st = dedupe(&P);
        if (st == QV_OK && P.n < 2 * MAX_PARAGRAPHS)
            st = qv_fail(QV_ERR_INPUT, "%s: %zu paragraphs of %d-%d words (blank-line separated); task %s needs at least %d",
                         label, P.n, PAR_MIN_WORDS, PAR_MAX_WORDS, task, 2 * MAX_PARAGRAPHS);
    } else {
        st = word_list(corpus, len, &words, &nwords);
        size_t need = 8 * (size_t)(o->words / 6 < 4 ? 4 : o->words / 6);
        if (st == QV_OK && nwords < need)
            st = qv_fail(QV_ERR_INPUT, "%s: %zu distinct words of 5-10 letters; task %s with --words %d needs %zu",
                         label, nwords, task, o->words, need);
    }
    cJSON **v = st == QV_OK ? calloc((size_t)o->samples, sizeof *v) : NULL;
    if (st == QV_OK && !v) st = qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
    for (size_t i = 0; st == QV_OK && i < (size_t)o->samples; i++) {
        /* seed of sample i: (seed, task, i) through one splitmix step each */
        uint64_t s = o->seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull * (uint64_t)(t + 1);
        splitmix(&s);
        s ^= (uint64_t)i * 0xd1b54a32d192ed03ull;
        splitmix(&s);
        if (t == 0) st = build_retrieval(&P, s, o, i, &v[i]);
        else if (t == 1) st = build_count(&P, s, o, i, &v[i]);
        else st = build_kv(words, nwords, s, o, i, &v[i]);
        if (st == QV_OK && !v[i]) st = qv_fail(QV_ERR_NOMEM, "longbench: out of memory");
    }
    par_free(&P);
    for (size_t k = 0; k < nwords; k++) free(words[k]);
    free(words);
    if (st != QV_OK) {
        for (size_t i = 0; v && i < (size_t)o->samples; i++) cJSON_Delete(v[i]);
        free(v);
        return st;
    }
    *items = v;
    *n = (size_t)o->samples;
    return QV_OK;
}
