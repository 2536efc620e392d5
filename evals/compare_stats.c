/* R vs C statistics (EVALS.md): per-position KLD / delta-p / top-1 in FP64, and the summary
 * recomputed from stored chunks in chunk-index order (so resume and merge give one run's bits). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qvet/eval_compare.h"

/* log-sum-exp of an FP32 row in FP64 (max subtracted first, so exp never overflows) */
static double lse_f64(const float *x, int V)
{
    float mx = x[0];
    for (int v = 1; v < V; v++) mx = x[v] > mx ? x[v] : mx;
    double s = 0;
    for (int v = 0; v < V; v++) s += exp((double)x[v] - (double)mx);
    return (double)mx + log(s);
}

static int argmax_f32(const float *x, int V)
{
    int a = 0;
    for (int v = 1; v < V; v++)
        if (x[v] > x[a]) a = v; /* first index on ties, as numpy's argmax */
    return a;
}

void qv_cmp_accumulate(const float *lr, const float *lc, int rows, int V, const int32_t *targets,
                       double *kld, double *dp, double *nll_ref, double *nll_cand, int64_t *top1)
{
    for (int i = 0; i < rows; i++) {
        const float *r = lr + (size_t)i * V, *c = lc + (size_t)i * V;
        double zr = lse_f64(r, V), zc = lse_f64(c, V), k = 0;
        for (int v = 0; v < V; v++) {
            double a = (double)r[v] - zr, b = (double)c[v] - zc;
            k += exp(a) * (a - b);
        }
        int y = targets[i];
        kld[i] = k;
        dp[i] = exp((double)c[y] - zc) - exp((double)r[y] - zr);
        *nll_ref += qv_nll_fp32(r, V, y);
        *nll_cand += qv_nll_fp32(c, V, y);
        *top1 += argmax_f32(r, V) == argmax_f32(c, V);
    }
}

void qv_cmp_chunk_free(qv_cmp_chunk *c)
{
    free(c->kld);
    free(c->dp);
    free(c->target);
    c->kld = c->dp = NULL;
    c->target = NULL;
}

const qv_cmp_chunk *qv_cmp_set_find(const qv_cmp_set *s, int index)
{
    for (int i = 0; i < s->n; i++)
        if (s->v[i].index == index) return &s->v[i];
    return NULL;
}

qv_status qv_cmp_set_add(qv_cmp_set *s, const qv_cmp_chunk *c)
{
    if (qv_cmp_set_find(s, c->index)) return qv_fail(QV_ERR_INPUT, "chunk %d appears twice", c->index);
    if (c->n < 1) return qv_fail(QV_ERR_INPUT, "chunk %d: %d scored positions", c->index, c->n);
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 16;
        qv_cmp_chunk *v = realloc(s->v, sizeof *v * (size_t)cap);
        if (!v) return qv_fail(QV_ERR_NOMEM, "compare: out of memory");
        s->v = v;
        s->cap = cap;
    }
    qv_cmp_chunk d = *c;
    d.kld = qv_malloc(sizeof(double) * (size_t)c->n);
    d.dp = qv_malloc(sizeof(double) * (size_t)c->n);
    d.target = qv_malloc(sizeof(int32_t) * (size_t)c->n);
    if (!d.kld || !d.dp || !d.target) {
        qv_cmp_chunk_free(&d);
        return QV_ERR_NOMEM;
    }
    memcpy(d.kld, c->kld, sizeof(double) * (size_t)c->n);
    memcpy(d.dp, c->dp, sizeof(double) * (size_t)c->n);
    memcpy(d.target, c->target, sizeof(int32_t) * (size_t)c->n);
    s->v[s->n++] = d;
    return QV_OK;
}

static int cmp_chunk_index(const void *a, const void *b)
{
    int x = ((const qv_cmp_chunk *)a)->index, y = ((const qv_cmp_chunk *)b)->index;
    return (x > y) - (x < y);
}

void qv_cmp_set_sort(qv_cmp_set *s)
{
    if (s->n > 1) qsort(s->v, (size_t)s->n, sizeof *s->v, cmp_chunk_index);
}

void qv_cmp_set_free(qv_cmp_set *s)
{
    for (int i = 0; i < s->n; i++) qv_cmp_chunk_free(&s->v[i]);
    free(s->v);
    *s = (qv_cmp_set){0};
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double qv_percentile_sorted(const double *x, int64_t n, double q)
{
    if (n <= 0) return NAN;
    double h = (double)(n - 1) * (q / 100.0);
    int64_t k = (int64_t)floor(h);
    if (k >= n - 1) return x[n - 1];
    double f = h - (double)k;
    return x[k] + f * (x[k + 1] - x[k]);
}

void qv_mean_ci95(const double *x, int n, double *mean, double *lo, double *hi, double *se)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = n > 0 ? s / n : NAN;
    *lo = *hi = *se = NAN;
    if (n < 2) return;
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (x[i] - *mean) * (x[i] - *mean);
    *se = sqrt(ss / (n - 1)) / sqrt((double)n);
    *lo = *mean - 1.96 * *se;
    *hi = *mean + 1.96 * *se;
}

qv_status qv_cmp_summarize(qv_cmp_set *s, qv_cmp_summary *o)
{
    *o = (qv_cmp_summary){0};
    if (s->n < 1) return qv_fail(QV_ERR_INPUT, "compare: no chunks to summarize");
    qv_cmp_set_sort(s);
    int K = s->n;
    int64_t N = 0;
    for (int i = 0; i < K; i++) N += s->v[i].n;
    double *cr = qv_malloc(sizeof(double) * (size_t)K), *cc = qv_malloc(sizeof(double) * (size_t)K);
    double *cd = qv_malloc(sizeof(double) * (size_t)K), *ck = qv_malloc(sizeof(double) * (size_t)K);
    double *ct = qv_malloc(sizeof(double) * (size_t)K);
    double *allk = qv_malloc(sizeof(double) * (size_t)N), *alld = qv_malloc(sizeof(double) * (size_t)N);
    if (!cr || !cc || !cd || !ck || !ct || !allk || !alld) {
        free(cr), free(cc), free(cd), free(ck), free(ct), free(allk), free(alld);
        return QV_ERR_NOMEM;
    }
    o->n_chunks = K;
    o->n_pos = N;
    o->kld_max = -INFINITY;
    o->hist_lo_log10 = -8;
    o->hist_hi_log10 = 2;
    int maxn = 0;
    for (int i = 0; i < K; i++) maxn = s->v[i].n > maxn ? s->v[i].n : maxn;
    o->pos_bucket_width = (maxn + QV_CMP_POS_BUCKETS - 1) / QV_CMP_POS_BUCKETS;
    double bsum[QV_CMP_POS_BUCKETS] = {0};
    int64_t bcnt[QV_CMP_POS_BUCKETS] = {0};
    double ksum = 0, dsum = 0, dsq = 0;
    int64_t at = 0, top1 = 0;
    for (int i = 0; i < K; i++) {
        const qv_cmp_chunk *c = &s->v[i];
        double kc = 0;
        for (int j = 0; j < c->n; j++) {
            double k = c->kld[j];
            kc += k;
            dsum += c->dp[j];
            dsq += c->dp[j] * c->dp[j];
            if (k > o->kld_max) {
                o->kld_max = k;
                o->kld_max_chunk = c->index;
                o->kld_max_offset = j;
                o->kld_max_token = c->target[j];
            }
            int b = j / o->pos_bucket_width;
            bsum[b] += k;
            bcnt[b]++;
            int h;
            if (!(k > 0) || log10(k) < o->hist_lo_log10) h = 0;
            else if (log10(k) >= o->hist_hi_log10) h = QV_CMP_HIST_BINS + 1;
            else {
                h = 1 + (int)floor((log10(k) - o->hist_lo_log10) / (o->hist_hi_log10 - o->hist_lo_log10) * QV_CMP_HIST_BINS);
                if (h > QV_CMP_HIST_BINS) h = QV_CMP_HIST_BINS;
            }
            o->hist[h]++;
            allk[at] = k;
            alld[at] = c->dp[j];
            at++;
        }
        ksum += kc;
        top1 += c->top1;
        cr[i] = c->nll_ref / c->n;
        cc[i] = c->nll_cand / c->n;
        cd[i] = cc[i] - cr[i];
        ck[i] = kc / c->n;
        ct[i] = (double)c->top1 / c->n;
    }
    qv_ppl_stats(cr, K, &o->ppl_ref);
    qv_ppl_stats(cc, K, &o->ppl_cand);
    qv_mean_ci95(cd, K, &o->ln_ratio, &o->ln_ratio_lo, &o->ln_ratio_hi, &o->ln_ratio_se);
    double m;
    qv_mean_ci95(ck, K, &m, &o->kld_mean_lo, &o->kld_mean_hi, &o->kld_se);
    o->kld_mean = ksum / (double)N; /* = mean of chunk means when chunks are equal */
    qv_mean_ci95(ct, K, &m, &o->top1_lo, &o->top1_hi, &o->top1_se);
    o->top1 = (double)top1 / (double)N;
    o->kld_max_pos = (int64_t)o->kld_max_chunk * (s->v[0].n + 1) + o->kld_max_offset + 1;
    o->dp_mean = dsum / (double)N;
    o->dp_rms = sqrt(dsq / (double)N);
    for (int b = 0; b < QV_CMP_POS_BUCKETS; b++) o->kld_by_pos[b] = bcnt[b] ? bsum[b] / (double)bcnt[b] : NAN;
    qsort(allk, (size_t)N, sizeof(double), cmp_double);
    qsort(alld, (size_t)N, sizeof(double), cmp_double);
    o->kld_median = qv_percentile_sorted(allk, N, 50);
    o->kld_p90 = qv_percentile_sorted(allk, N, 90);
    o->kld_p99 = qv_percentile_sorted(allk, N, 99);
    o->kld_p999 = qv_percentile_sorted(allk, N, 99.9);
    o->dp_p1 = qv_percentile_sorted(alld, N, 1);
    o->dp_p99 = qv_percentile_sorted(alld, N, 99);
    free(cr), free(cc), free(cd), free(ck), free(ct), free(allk), free(alld);
    return QV_OK;
}

uint64_t qv_ids_hash(const int32_t *ids, int64_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (int64_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)ids[i];
        for (int b = 0; b < 4; b++) {
            h ^= (v >> (8 * b)) & 0xffu;
            h *= 1099511628211ull;
        }
    }
    return h;
}
