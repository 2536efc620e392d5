/* The overflow fuzzer's generators, minimizer, driver and corpus replay (include/qvet/fuzz.h).
 * Generators aim at the edges of each format: activation rows of all +-127 and outlier tokens,
 * W4 codes 0/15, g128 groups with s1 = 16 and extreme zero points (every legal (s1, sz1) and
 * code combination: u*s1 - sz1 in [-128, 127]), maximal K for each format's INT32 bound, scales
 * chosen so outputs land just around 65504, subnormal and near-zero scales, and KV vectors that are
 * constant, near-constant (a range below FP16's smallest step), subnormal or span +-65504. */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qvet/fileio.h"
#include "qvet/fp16.h"
#include "qvet/fuzz.h"
#include "qvet/qoq.h"

typedef struct { uint64_t s; } rng_t;
static uint64_t nx(rng_t *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static int rint_(rng_t *r, int n) { return (int)(nx(r) % (uint64_t)n); }
static double unif(rng_t *r) { return (double)(nx(r) >> 11) * 0x1p-53; }
static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- GEMM cases ---- */

static qv_status gemm_alloc(qv_fz_case *c)
{
    size_t MK = (size_t)c->M * c->K, NK = (size_t)c->N * c->K, NG = (size_t)c->N * (c->K / 128) + 1;
    c->x = malloc(MK);
    c->sa = malloc((size_t)c->M * sizeof(float));
    c->sw = malloc((size_t)c->N * 2);
    c->sz = calloc((size_t)c->N, 2);
    c->w8 = c->kernel == QV_KK_W8A8 ? malloc(NK) : NULL;
    c->u = c->kernel != QV_KK_W8A8 ? malloc(NK) : NULL;
    c->s1 = c->kernel == QV_KK_W4A8_G128 ? malloc(NG) : NULL;
    c->sz1 = c->kernel == QV_KK_W4A8_G128 ? malloc(NG) : NULL;
    if (c->kernel != QV_KK_W4A8_CHN) free(c->sz), c->sz = NULL;
    if (!c->x || !c->sa || !c->sw || (c->kernel == QV_KK_W4A8_CHN && !c->sz) || (!c->w8 && !c->u) ||
        (c->kernel == QV_KK_W4A8_G128 && (!c->s1 || !c->sz1))) {
        qv_fz_case_free(c);
        return qv_fail(QV_ERR_NOMEM, "fuzz: out of memory");
    }
    return QV_OK;
}

/* Largest K (a multiple of the kernel's K granularity) within the format's INT32 bound. */
static int kmax_of(qv_kkernel k)
{
    return k == QV_KK_W8A8 ? QV_QOQ_W8_KMAX / 32 * 32 : k == QV_KK_W4A8_CHN ? QV_QOQ_PC_KMAX / 32 * 32
                                                                           : QV_QOQ_G128_KMAX / 128 * 128;
}

/* A legal (s1, sz1) pair and the code range [ulo, uhi] with u*s1 - sz1 in [-128, 127]. */
static void pick_group(rng_t *r, int extreme, uint8_t *s1, uint8_t *sz1, int *ulo, int *uhi)
{
    int s, sz;
    for (;;) {
        s = extreme ? (rint_(r, 2) ? 16 : 1 + rint_(r, 16)) : 1 + rint_(r, 16);
        sz = extreme ? (rint_(r, 3) == 0 ? 240 : rint_(r, 2) ? s * rint_(r, 16) : rint_(r, 241)) : s * rint_(r, 16);
        if (sz > 240) continue;
        int lo = 0, hi = 15;
        while (lo * s - sz < -128) lo++;
        while (hi * s - sz > 127) hi--;
        if (lo <= hi) {
            *ulo = lo, *uhi = hi;
            break;
        }
    }
    *s1 = (uint8_t)s, *sz1 = (uint8_t)sz;
}

static float fp16f(uint16_t h) { return qv_fp16_to_fp32(h); }

static qv_status gen_gemm(rng_t *r, qv_fz_case *c)
{
    c->kind = QV_FZ_GEMM;
    c->kernel = (qv_kkernel)rint_(r, QV_KK_COUNT);
    const int g128 = c->kernel == QV_KK_W4A8_G128, w4 = c->kernel != QV_KK_W8A8;
    static const int Ms[] = {1, 1, 2, 3, 5, 17};
    int maxk = rint_(r, 40) == 0;
    c->M = maxk ? 1 : Ms[rint_(r, 6)];
    c->N = maxk ? 32 : (w4 ? 32 * (1 + rint_(r, 2)) : 1 + rint_(r, 40));
    c->K = maxk ? kmax_of(c->kernel) : g128 ? 128 * (1 + rint_(r, 3)) : 32 * (1 + rint_(r, 12));
    int xmode = rint_(r, 6), wmode = rint_(r, 3), smode = rint_(r, 5);
    snprintf(c->note, sizeof c->note, "generated: x mode %d, w mode %d, scale mode %d%s", xmode, wmode, smode,
             maxk ? ", maximal K" : "");
    QV_TRY(gemm_alloc(c));
    const int M = c->M, N = c->N, K = c->K, G = K / 128;
    int outlier = rint_(r, M);
    for (int m = 0; m < M; m++)
        for (int k = 0; k < K; k++) {
            int v;
            switch (xmode) {
            case 0: v = rint_(r, 255) - 127; break;
            case 1: v = 127; break;
            case 2: v = -127; break;
            case 3: v = k % 2 ? -127 : 127; break;
            case 4: v = m == outlier ? (rint_(r, 8) ? 127 : 126) : rint_(r, 9) - 4; break; /* outlier token */
            default: v = rint_(r, 16) == 0 ? (rint_(r, 2) ? 127 : -127) : 0; break;   /* sparse extremes */
            }
            c->x[(size_t)m * K + k] = (int8_t)v;
        }
    for (int n = 0; n < N; n++) {
        uint8_t s1 = 1, sz1 = 0;
        int ulo = 0, uhi = 15;
        for (int k = 0; k < K; k++) {
            size_t i = (size_t)n * K + k;
            if (g128 && k % 128 == 0) {
                pick_group(r, wmode != 0, &s1, &sz1, &ulo, &uhi);
                c->s1[(size_t)n * G + k / 128] = s1, c->sz1[(size_t)n * G + k / 128] = sz1;
            }
            if (w4) {
                int u = wmode == 0 ? ulo + rint_(r, uhi - ulo + 1) : wmode == 1 ? (rint_(r, 2) ? uhi : ulo) : (k % 2 ? uhi : ulo);
                c->u[i] = (uint8_t)u;
            } else {
                c->w8[i] = (int8_t)(wmode == 0 ? rint_(r, 255) - 127 : wmode == 1 ? (rint_(r, 2) ? 127 : -127) : (k % 2 ? -127 : 127));
            }
        }
        /* s_w: moderate, maximal, subnormal or near zero */
        uint16_t sw;
        switch (smode) {
        case 1: sw = 0x7bff; break;                                /* 65504 */
        case 2: sw = (uint16_t)(1 + rint_(r, 0x3ff)); break;       /* subnormal */
        default: sw = qv_fp32_to_fp16((float)(0.0005 + 0.01 * unif(r))); break;
        }
        c->sw[n] = sw;
        if (c->kernel == QV_KK_W4A8_CHN) {
            /* a quantizer's sz = fp16(s_w*z) approximates -lo, which is finite: keep it finite */
            int z = rint_(r, 16);
            while (z > 0 && isinf(fp16f(qv_fp32_to_fp16(fp16f(sw) * (float)z)))) z--;
            c->sz[n] = qv_fp32_to_fp16(fp16f(sw) * (float)z);
        }
    }
    for (int m = 0; m < M; m++) c->sa[m] = smode == 2 ? (float)ldexp(1.0, -rint_(r, 120)) : (float)(0.001 + 0.02 * unif(r));
    if (smode == 3 || smode == 4) {
        /* scales that put the largest output just around 65504: the overflow threshold */
        for (int m = 0; m < M; m++) {
            double big = 0;
            int64_t rs = 0;
            for (int k = 0; k < K; k++) rs += c->x[(size_t)m * K + k];
            for (int n = 0; n < N; n++) {
                int64_t acc = 0;
                for (int k = 0; k < K; k++) {
                    size_t i = (size_t)n * K + k;
                    int w = !w4 ? c->w8[i] : !g128 ? c->u[i] : qv_w4g128_dequant1(c->u[i], c->s1[(size_t)n * G + k / 128], c->sz1[(size_t)n * G + k / 128]);
                    acc += (int64_t)c->x[(size_t)m * K + k] * w;
                }
                double v = (double)fp16f(c->sw[n]) * (double)acc;
                if (c->kernel == QV_KK_W4A8_CHN) v -= (double)fp16f(c->sz[n]) * (double)rs;
                if (fabs(v) > big) big = fabs(v);
            }
            double target = smode == 3 ? 65504.0 + 32.0 * (unif(r) - 0.5) : 65504.0 * (1.0 + 1e-3 * (unif(r) - 0.5));
            c->sa[m] = big > 0 ? (float)(target / big) : 1.0f;
        }
    }
    return QV_OK;
}

/* ---- level-2 groups ---- */
static qv_status gen_group(rng_t *r, qv_fz_case *c)
{
    c->kind = QV_FZ_GROUP;
    c->n = 128;
    if (!(c->w8 = malloc(128))) return qv_fail(QV_ERR_NOMEM, "fuzz: out of memory");
    int mode = rint_(r, 4);
    int lo = -rint_(r, QV_QOQ_PROTECT + 1), hi = rint_(r, QV_QOQ_PROTECT + 1);
    if (mode == 1) lo = -QV_QOQ_PROTECT, hi = QV_QOQ_PROTECT;
    if (mode == 2) lo = hi = rint_(r, 2 * QV_QOQ_PROTECT + 1) - QV_QOQ_PROTECT;
    snprintf(c->note, sizeof c->note, "generated group: mode %d range [%d, %d]", mode, lo, hi);
    for (int i = 0; i < 128; i++) {
        int v = lo + rint_(r, hi - lo + 1);
        if (mode == 3) v = rint_(r, 2) ? lo : hi;
        c->w8[i] = (int8_t)v;
    }
    if (mode != 2) c->w8[rint_(r, 128)] = (int8_t)lo, c->w8[rint_(r, 128)] = (int8_t)hi;
    return QV_OK;
}

/* ---- KV4 vectors ---- */
static qv_status gen_kv4(rng_t *r, qv_fz_case *c)
{
    c->kind = QV_FZ_KV4;
    static const int Ds[] = {2, 8, 64, 128};
    c->D = Ds[rint_(r, 4)];
    if (!(c->v = malloc((size_t)c->D * sizeof(float)))) return qv_fail(QV_ERR_NOMEM, "fuzz: out of memory");
    int mode = rint_(r, 6);
    snprintf(c->note, sizeof c->note, "generated KV vector: mode %d", mode);
    float base = (float)((unif(r) - 0.5) * 20.0);
    for (int i = 0; i < c->D; i++) {
        float v;
        switch (mode) {
        case 0: v = (float)((unif(r) - 0.5) * 8.0); break;
        case 1: v = base; break;                                              /* constant: zero scale */
        case 2: v = fp16f(qv_fp32_to_fp16(base)) + (float)(rint_(r, 2) * ldexp(fabs(base) + 1e-3, -12)); break; /* near constant */
        case 3: v = (float)(ldexp(1.0, -24) * rint_(r, 16)) * (rint_(r, 2) ? 1 : -1); break; /* subnormals */
        case 4: v = rint_(r, 2) ? 65504.0f : -65504.0f; break;                /* FP16 range ends */
        default: v = (float)((unif(r) - 0.5) * 1e-3); if (i == 0) v = 60000.0f; break; /* one outlier */
        }
        c->v[i] = v;
    }
    return QV_OK;
}

/* ---- minimization ---- */

static int still_fails(const qv_fz_case *c, qv_kbackend b, int *tries)
{
    int failed = 0;
    char why[512];
    (*tries)++;
    qv_status st = qv_fz_check(c, b, &failed, why, sizeof why);
    return st == QV_OK && failed;
}

/* Sub-GEMM: rows [m0, m0+M), columns [n0, n0+N), K range [k0, k0+K) of c. */
static qv_status gemm_sub(const qv_fz_case *c, int m0, int M, int n0, int N, int k0, int K, qv_fz_case *d)
{
    memset(d, 0, sizeof *d);
    d->kind = QV_FZ_GEMM;
    d->kernel = c->kernel;
    d->expect_reject = c->expect_reject;
    memcpy(d->note, c->note, sizeof d->note);
    d->M = M, d->N = N, d->K = K;
    QV_TRY(gemm_alloc(d));
    const int G = K / 128, Gc = c->K / 128;
    for (int m = 0; m < M; m++) {
        memcpy(d->x + (size_t)m * K, c->x + (size_t)(m0 + m) * c->K + k0, (size_t)K);
        d->sa[m] = c->sa[m0 + m];
    }
    for (int n = 0; n < N; n++) {
        size_t src = (size_t)(n0 + n) * c->K + k0, dst = (size_t)n * K;
        if (d->u) memcpy(d->u + dst, c->u + src, (size_t)K);
        if (d->w8) memcpy(d->w8 + dst, c->w8 + src, (size_t)K);
        d->sw[n] = c->sw[n0 + n];
        if (d->sz) d->sz[n] = c->sz[n0 + n];
        for (int g = 0; g < G && d->s1; g++) {
            d->s1[(size_t)n * G + g] = c->s1[(size_t)(n0 + n) * Gc + k0 / 128 + g];
            d->sz1[(size_t)n * G + g] = c->sz1[(size_t)(n0 + n) * Gc + k0 / 128 + g];
        }
    }
    return QV_OK;
}

static int try_replace(qv_fz_case *c, qv_fz_case *cand, qv_kbackend b, int *tries)
{
    if (still_fails(cand, b, tries)) {
        qv_fz_case_free(c);
        *c = *cand;
        return 1;
    }
    qv_fz_case_free(cand);
    return 0;
}

static qv_status minimize_gemm(qv_fz_case *c, qv_kbackend b, int max_tries, int *tries)
{
    const int w4 = c->kernel != QV_KK_W8A8, kq = c->kernel == QV_KK_W4A8_G128 ? 128 : 32, nq = w4 ? 32 : 1;
    int changed = 1;
    while (changed && *tries < max_tries) {
        changed = 0;
        /* one row */
        for (int m = 0; c->M > 1 && m < c->M && *tries < max_tries; m++) {
            qv_fz_case d;
            QV_TRY(gemm_sub(c, m, 1, 0, c->N, 0, c->K, &d));
            if (try_replace(c, &d, b, tries)) { changed = 1; break; }
        }
        /* halves of N, then halves of K */
        for (int half = 0; c->N >= 2 * nq && half < 2 && *tries < max_tries; half++) {
            int n2 = (c->N / 2 + nq - 1) / nq * nq;
            if (n2 >= c->N) break;
            qv_fz_case d;
            QV_TRY(gemm_sub(c, 0, c->M, half ? c->N - n2 : 0, n2, 0, c->K, &d));
            if (try_replace(c, &d, b, tries)) { changed = 1; break; }
        }
        for (int half = 0; c->K >= 2 * kq && half < 2 && *tries < max_tries; half++) {
            int k2 = (c->K / 2 + kq - 1) / kq * kq;
            if (k2 >= c->K) break;
            qv_fz_case d;
            QV_TRY(gemm_sub(c, 0, c->M, 0, c->N, half ? c->K - k2 : 0, k2, &d));
            if (try_replace(c, &d, b, tries)) { changed = 1; break; }
        }
    }
    /* values: zero activation chunks, halving the chunk size */
    size_t MK = (size_t)c->M * c->K;
    for (size_t chunk = MK; chunk >= 1 && *tries < max_tries; chunk /= 2) {
        for (size_t s = 0; s < MK && *tries < max_tries; s += chunk) {
            int nz = 0;
            for (size_t i = s; i < s + chunk && i < MK; i++) nz |= c->x[i] != 0;
            if (!nz) continue;
            qv_fz_case d;
            QV_TRY(qv_fz_case_copy(c, &d));
            memset(d.x + s, 0, (s + chunk <= MK ? chunk : MK - s));
            try_replace(c, &d, b, tries);
        }
        if (chunk == 1) break;
    }
    return QV_OK;
}

static qv_status minimize_values(qv_fz_case *c, qv_kbackend b, int max_tries, int *tries)
{
    /* kv4: halve D; both: reset chunks of values to the first value */
    while (c->kind == QV_FZ_KV4 && c->D > 2 && *tries < max_tries) {
        int done = 0;
        for (int half = 0; half < 2 && !done; half++) {
            qv_fz_case d;
            QV_TRY(qv_fz_case_copy(c, &d));
            int D2 = (c->D / 2 + 1) / 2 * 2;
            if (half) memmove(d.v, d.v + (c->D - D2), (size_t)D2 * sizeof(float));
            d.D = D2;
            done = try_replace(c, &d, b, tries);
        }
        if (!done) break;
    }
    int n = c->kind == QV_FZ_KV4 ? c->D : c->n;
    for (int chunk = n / 2; chunk >= 1 && *tries < max_tries; chunk /= 2)
        for (int s = 1; s < n && *tries < max_tries; s += chunk) {
            qv_fz_case d;
            QV_TRY(qv_fz_case_copy(c, &d));
            for (int i = s; i < s + chunk && i < n; i++) {
                if (c->kind == QV_FZ_KV4) d.v[i] = d.v[0];
                else d.w8[i] = d.w8[0];
            }
            try_replace(c, &d, b, tries);
        }
    return QV_OK;
}

qv_status qv_fz_minimize(qv_fz_case *c, qv_kbackend b, int max_tries)
{
    int tries = 0;
    if (c->kind == QV_FZ_GEMM) return minimize_gemm(c, b, max_tries, &tries);
    return minimize_values(c, b, max_tries, &tries);
}

/* ---- driver ---- */

qv_status qv_fz_overflow(const qv_fz_opts *o, qv_fz_summary *s)
{
    memset(s, 0, sizeof *s);
    rng_t r = {o->seed};
    double t0 = now_s();
    qv_status st = QV_OK;
    while (st == QV_OK) {
        if (o->max_cases && s->cases >= o->max_cases) break;
        if (!o->max_cases && now_s() - t0 >= o->time_s) break;
        if (o->max_cases && o->time_s > 0 && now_s() - t0 >= o->time_s) break;
        qv_fz_case c;
        memset(&c, 0, sizeof c);
        int pick = rint_(&r, 10);
        st = pick < 6 ? gen_gemm(&r, &c) : pick < 8 ? gen_group(&r, &c) : gen_kv4(&r, &c);
        if (st != QV_OK) break;
        s->cases++;
        s->per_kind[c.kind]++;
        int failed = 0;
        char why[512];
        st = qv_fz_check(&c, o->backend, &failed, why, sizeof why);
        if (st == QV_OK && failed) {
            s->findings++;
            char path[1024] = "";
            if (o->log) fprintf(o->log, "finding %ld (case %ld): %s\n", s->findings, s->cases, why);
            st = qv_fz_minimize(&c, o->backend, 400);
            if (st == QV_OK) {
                qv_fz_check(&c, o->backend, &failed, why, sizeof why);
                char note[160];
                snprintf(note, sizeof note, "fuzz finding (seed %llu): %.100s", (unsigned long long)o->seed, why);
                memcpy(c.note, note, sizeof c.note);
            }
            if (st == QV_OK && o->corpus) st = qv_fz_case_save(&c, o->corpus, path, sizeof path);
            if (st == QV_OK && o->log)
                fprintf(o->log, "  minimized to %s%s%s: %s\n",
                        c.kind == QV_FZ_GEMM ? qv_kkernel_name(c.kernel) : c.kind == QV_FZ_GROUP ? "group" : "kv4",
                        path[0] ? " -> " : "", path, why);
        }
        qv_fz_case_free(&c);
        if (o->stop_after && s->findings >= o->stop_after) break;
    }
    s->seconds = now_s() - t0;
    return st;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

qv_status qv_fz_replay(const char *dir, qv_kbackend b, FILE *log, int *n, int *failed)
{
    *n = 0, *failed = 0;
    DIR *d = opendir(dir);
    if (!d) return qv_fail(QV_ERR_INPUT, "%s: cannot open corpus folder", dir);
    char **names = NULL;
    int cnt = 0, cap = 0;
    qv_status st = QV_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".json")) continue;
        if (cnt == cap) {
            char **nn = realloc(names, (size_t)(cap = cap ? 2 * cap : 32) * sizeof *nn);
            if (!nn) { st = qv_fail(QV_ERR_NOMEM, "out of memory"); break; }
            names = nn;
        }
        if (!(names[cnt] = qv_path_join(dir, e->d_name))) { st = qv_fail(QV_ERR_NOMEM, "out of memory"); break; }
        cnt++;
    }
    closedir(d);
    if (st == QV_OK) qsort(names, (size_t)cnt, sizeof *names, cmp_str);
    for (int i = 0; st == QV_OK && i < cnt; i++) {
        qv_fz_case c;
        st = qv_fz_case_load(names[i], &c);
        if (st != QV_OK) break;
        int f = 0;
        char why[512];
        st = qv_fz_check(&c, b, &f, why, sizeof why);
        if (st != QV_OK) st = qv_fail_prefix(st, "%s", names[i]);
        (*n)++;
        if (st == QV_OK && f) (*failed)++;
        if (st == QV_OK && log) fprintf(log, "%s %s%s%s\n", f ? "FAIL" : "ok  ", names[i], f ? ": " : "", f ? why : "");
        qv_fz_case_free(&c);
    }
    for (int i = 0; i < cnt; i++) free(names[i]);
    free(names);
    return st;
}
