/* Overflow-fuzz cases: checks against the reference and the implementation under test, and the
 * JSON corpus format (docs/fuzz.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "qvet/fileio.h"
#include "qvet/fp16.h"
#include "qvet/fuzz.h"
#include "qvet/qoq.h"

static const char *kind_names[QV_FZ_KIND_COUNT] = {"gemm", "w4g128_group", "kv4"};

void qv_fz_case_free(qv_fz_case *c)
{
    free(c->x); free(c->w8); free(c->sa); free(c->u); free(c->s1); free(c->sz1);
    free(c->sw); free(c->sz); free(c->v);
    memset(c, 0, sizeof *c);
}

static void *dup_mem(const void *p, size_t n, int *bad)
{
    if (!p) return NULL;
    void *q = malloc(n ? n : 1);
    if (!q) *bad = 1;
    else memcpy(q, p, n);
    return q;
}

qv_status qv_fz_case_copy(const qv_fz_case *s, qv_fz_case *d)
{
    int bad = 0;
    *d = *s;
    size_t MK = (size_t)s->M * s->K, NK = (size_t)s->N * s->K, NG = (size_t)s->N * (s->K / 128 ? s->K / 128 : 1);
    d->x = dup_mem(s->x, MK, &bad);
    d->w8 = dup_mem(s->w8, s->kind == QV_FZ_GROUP ? (size_t)s->n : NK, &bad);
    d->sa = dup_mem(s->sa, (size_t)s->M * sizeof(float), &bad);
    d->u = dup_mem(s->u, NK, &bad);
    d->s1 = dup_mem(s->s1, NG, &bad);
    d->sz1 = dup_mem(s->sz1, NG, &bad);
    d->sw = dup_mem(s->sw, (size_t)s->N * 2, &bad);
    d->sz = dup_mem(s->sz, (size_t)s->N * 2, &bad);
    d->v = dup_mem(s->v, (size_t)s->D * sizeof(float), &bad);
    if (bad) {
        qv_fz_case_free(d);
        return qv_fail(QV_ERR_NOMEM, "fuzz case copy: out of memory");
    }
    return QV_OK;
}

/* ---- checks ---- */

/* The exact accumulators in INT64 from the definition's INT8 operand (g128: u*s1 - sz1). Fails
 * when one leaves INT32: the format's K bound must make that impossible for legal input. */
static int check_acc_range(const qv_fz_case *c, char *why, size_t nwhy)
{
    const int M = c->M, N = c->N, K = c->K, G = K / 128;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            int64_t s = 0;
            for (int k = 0; k < K; k++) {
                size_t i = (size_t)n * K + k;
                int w = c->kernel == QV_KK_W8A8 ? c->w8[i]
                        : c->kernel == QV_KK_W4A8_CHN ? c->u[i]
                        : qv_w4g128_dequant1(c->u[i], c->s1[(size_t)n * G + k / 128], c->sz1[(size_t)n * G + k / 128]);
                s += (int64_t)c->x[(size_t)m * K + k] * w;
            }
            if (s > INT32_MAX || s < INT32_MIN) {
                snprintf(why, nwhy, "INT32 accumulator overflow at [%d][%d]: exact sum %lld (K=%d)", m, n,
                         (long long)s, K);
                return 1;
            }
        }
    return 0;
}

static qv_status check_gemm(const qv_fz_case *c, qv_kbackend b, int *failed, char *why, size_t nwhy)
{
    qv_kexplicit e = {c->kernel, c->M, c->N, c->K, c->x, c->sa, c->w8, c->u, c->sw, c->sz, c->s1, c->sz1};
    qv_kresult r;
    qv_status st = qv_kcase_run_explicit(&e, b, &r);
    if (st == QV_ERR_NOMEM || st == QV_ERR_USAGE || (st != QV_OK && r.impl_error)) return st; /* a plugin op failed */
    if (c->expect_reject) {
        if (st == QV_OK) *failed = 1, snprintf(why, nwhy, "reference accepted input it must reject");
        return QV_OK;
    }
    if (st != QV_OK) {
        *failed = 1;
        snprintf(why, nwhy, "reference refused legal input: %s", qv_last_error());
        return QV_OK;
    }
    if (r.skipped) return QV_OK;
    if (!r.ok) {
        *failed = 1;
        if (r.w_mismatch)
            snprintf(why, nwhy, "%ld dequantized weights differ from the definition", r.w_mismatch);
        else if (r.first >= 0)
            snprintf(why, nwhy, "%ld acc / %ld output mismatches, first [%ld][%ld]: acc %d vs %d, out 0x%04x vs 0x%04x",
                     r.acc_mismatch, r.out_mismatch, r.first / c->N, r.first % c->N, (int)r.first_acc_ref,
                     (int)r.first_acc_got, r.first_out_ref, r.first_out_got);
        else
            snprintf(why, nwhy, "FP16 overflow count differs: reference %ld, implementation %ld", r.sat_ref, r.sat_got);
        return QV_OK;
    }
    if (check_acc_range(c, why, nwhy)) *failed = 1;
    return QV_OK;
}

/* Level 2 of one group: legal level-1 codes (|w| <= 119) must quantize to codes that dequantize
 * into INT8 within s1/2 of w (z is rounded, so the offset can add up to s1/2 more: bound s1);
 * codes outside the protective range must be refused by the dequantization or the checkpoint
 * check, never silently wrap. */
static qv_status check_group(const qv_fz_case *c, int *failed, char *why, size_t nwhy)
{
    uint8_t u[128], s1, z, sz1;
    int legal = 1;
    for (int i = 0; i < c->n; i++)
        if (c->w8[i] < -QV_QOQ_PROTECT || c->w8[i] > QV_QOQ_PROTECT) legal = 0;
    qv_status st = qv_quant_w4g128_group_ref(c->w8, c->n, u, &s1, &z, &sz1);
    if (st == QV_ERR_NOMEM || st == QV_ERR_USAGE) return st;
    int refused = st != QV_OK;
    if (!refused) {
        int8_t w8p[128];
        qv_status a = qv_w4g128_dequant_ref(u, &s1, &sz1, 1, 128, w8p);
        qv_status b = qv_w4g128_check_codes(u, &s1, &sz1, 1, 128);
        if ((a == QV_OK) != (b == QV_OK)) {
            *failed = 1;
            snprintf(why, nwhy, "dequantization and checkpoint check disagree (s1 %d sz1 %d)", s1, sz1);
            return QV_OK;
        }
        refused = a != QV_OK;
        for (int i = 0; !refused && i < c->n; i++) {
            int d = qv_w4g128_dequant1(u[i], s1, sz1), err = abs(d - c->w8[i]);
            if (d < -128 || d > 127 || err > s1) {
                *failed = 1;
                snprintf(why, nwhy, "group code %d: w8 %d -> u %d s1 %d sz1 %d -> %d (error %d > s1)", i, c->w8[i],
                         u[i], s1, sz1, d, err);
                return QV_OK;
            }
        }
    }
    if (legal && refused) *failed = 1, snprintf(why, nwhy, "legal group refused: %s", qv_last_error());
    if (c->expect_reject && !refused) *failed = 1, snprintf(why, nwhy, "group outside the protective range accepted (s1 %d sz1 %d)", s1, sz1);
    return QV_OK;
}

/* KV4 of one vector: finite scale and minimum, every value within s/2 (plus the FP32 rounding of
 * u*s + mn) of its FP16 rounding, and the paged write/read equal to the direct definition. Input
 * that overflows FP16 must be refused. */
static qv_status check_kv4(const qv_fz_case *c, int *failed, char *why, size_t nwhy)
{
    const int D = c->D;
    uint8_t *codes = malloc((size_t)D / 2 + 1);
    float *xh = malloc((size_t)D * sizeof(float)), *xp = malloc((size_t)D * sizeof(float));
    qv_kv4_geom g = {1, D, 4};
    size_t pb = 0;
    qv_status st = qv_kv4_page_bytes(g, &pb);
    uint8_t *pages = st == QV_OK ? calloc(2, pb) : NULL;
    if (!codes || !xh || !xp || !pages) {
        free(codes); free(xh); free(xp); free(pages);
        return st != QV_OK ? st : qv_fail(QV_ERR_NOMEM, "out of memory");
    }
    qv_fp16 s, mn;
    int ovf = 0;
    for (int i = 0; i < D; i++)
        if (isinf(qv_fp16_to_fp32(qv_fp32_to_fp16(c->v[i])))) ovf = 1;
    st = qv_kv4_quant_ref(c->v, D, 0, codes, &s, &mn);
    if (st == QV_ERR_NOMEM || st == QV_ERR_USAGE) goto out;
    if (st != QV_OK) {
        if (!ovf && !c->expect_reject) *failed = 1, snprintf(why, nwhy, "legal KV vector refused: %s", qv_last_error());
        st = QV_OK;
        goto out;
    }
    if (ovf || c->expect_reject) {
        *failed = 1;
        snprintf(why, nwhy, "KV vector overflowing FP16 accepted");
        goto out;
    }
    float sf = qv_fp16_to_fp32(s), mf = qv_fp16_to_fp32(mn);
    if (!(sf > 0.0f) || !isfinite(sf) || !isfinite(mf)) {
        *failed = 1;
        snprintf(why, nwhy, "KV4 scale %g / min %g not finite positive", (double)sf, (double)mf);
        goto out;
    }
    st = qv_kv4_dequant_ref(codes, D, s, mn, 0, xh);
    if (st == QV_OK) st = qv_kv4_write_token(pages, 2, g, 5, c->v, 0);
    if (st == QV_OK) st = qv_kv4_read_token(pages, 2, g, 5, xp, 0);
    if (st != QV_OK) goto out;
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < D; i++) {
        double x16 = qv_fp16_to_fp32(qv_fp32_to_fp16(c->v[i]));
        lo = x16 < lo ? x16 : lo, hi = x16 > hi ? x16 : hi;
    }
    /* s/2 from the code's rounding, plus what the clamp at 15 cuts off when fp16 rounded s below
     * (max - mn)/15 (only FP16 subnormal scales round by more than s/30: a fuzz finding, see
     * docs/fuzz.md), plus the FP32 rounding of u*s + mn */
    double clip = hi - lo - 15.0 * sf > 0 ? hi - lo - 15.0 * sf : 0.0;
    for (int i = 0; i < D; i++) {
        float x16 = qv_fp16_to_fp32(qv_fp32_to_fp16(c->v[i]));
        double err = fabs((double)xh[i] - x16);
        double bound = 0.5 * sf + clip + ldexp(fabs((double)mf) + 15.0 * sf, -23);
        if (!isfinite(xh[i]) || err > bound) {
            *failed = 1;
            snprintf(why, nwhy, "KV4 value %d: %.9g -> %.9g (error %g > bound %g, s %g, mn %g)", i, (double)x16,
                     (double)xh[i], err, bound, (double)sf, (double)mf);
            break;
        }
        if (memcmp(&xh[i], &xp[i], sizeof(float))) {
            *failed = 1;
            snprintf(why, nwhy, "KV4 paged read of value %d: %.9g vs direct %.9g", i, (double)xp[i], (double)xh[i]);
            break;
        }
    }
out:
    free(codes); free(xh); free(xp); free(pages);
    return st;
}

qv_status qv_fz_check(const qv_fz_case *c, qv_kbackend b, int *failed, char *why, size_t nwhy)
{
    *failed = 0;
    why[0] = 0;
    switch (c->kind) {
    case QV_FZ_GEMM: return check_gemm(c, b, failed, why, nwhy);
    case QV_FZ_GROUP: return check_group(c, failed, why, nwhy);
    case QV_FZ_KV4: return check_kv4(c, failed, why, nwhy);
    default: return qv_fail(QV_ERR_USAGE, "fuzz case: unknown kind %d", (int)c->kind);
    }
}

/* ---- JSON ----
 * Byte arrays: a hex string (two digits per byte; UINT4 codes one digit each), or {"fill": v}
 * (every element v), or {"repeat": [v, ...]} (the list repeated). Numbers arrays: a JSON list,
 * or the same objects. */

static cJSON *bytes_json(const uint8_t *p, size_t n, int nibble)
{
    int same = 1;
    for (size_t i = 1; i < n && same; i++) same = p[i] == p[0];
    if (same && n > 1) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "fill", nibble ? p[0] : (double)p[0]);
        return o;
    }
    char *s = malloc(n * 2 + 1);
    if (!s) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (nibble) s[k++] = "0123456789abcdef"[p[i] & 15];
        else k += (size_t)snprintf(s + k, 3, "%02x", p[i]);
    }
    s[k] = 0;
    cJSON *j = cJSON_CreateString(s);
    free(s);
    return j;
}

static cJSON *nums_json(const double *v, size_t n)
{
    int same = 1;
    for (size_t i = 1; i < n && same; i++) same = v[i] == v[0];
    if (same && n > 1) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "fill", v[0]);
        return o;
    }
    return cJSON_CreateDoubleArray(v, (int)n);
}

static cJSON *f32_json(const float *f, size_t n)
{
    double *v = malloc((n ? n : 1) * sizeof(double));
    if (!v) return NULL;
    for (size_t i = 0; i < n; i++) v[i] = f[i];
    cJSON *j = nums_json(v, n);
    free(v);
    return j;
}

static cJSON *u16_json(const uint16_t *h, size_t n)
{
    double *v = malloc((n ? n : 1) * sizeof(double));
    if (!v) return NULL;
    for (size_t i = 0; i < n; i++) v[i] = h[i];
    cJSON *j = nums_json(v, n);
    free(v);
    return j;
}

char *qv_fz_case_to_json(const qv_fz_case *c)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "qvet_fuzz_case", 1);
    cJSON_AddStringToObject(o, "kind", kind_names[c->kind]);
    cJSON_AddStringToObject(o, "expect", c->expect_reject ? "reject" : "pass");
    cJSON_AddStringToObject(o, "note", c->note);
    if (c->kind == QV_FZ_GEMM) {
        size_t MK = (size_t)c->M * c->K, NK = (size_t)c->N * c->K, NG = (size_t)c->N * (c->K / 128);
        cJSON_AddStringToObject(o, "kernel", qv_kkernel_name(c->kernel));
        cJSON_AddNumberToObject(o, "M", c->M);
        cJSON_AddNumberToObject(o, "N", c->N);
        cJSON_AddNumberToObject(o, "K", c->K);
        cJSON_AddItemToObject(o, "x", bytes_json((const uint8_t *)c->x, MK, 0));
        cJSON_AddItemToObject(o, "sa", f32_json(c->sa, (size_t)c->M));
        cJSON_AddItemToObject(o, "sw", u16_json(c->sw, (size_t)c->N));
        if (c->kernel == QV_KK_W8A8) cJSON_AddItemToObject(o, "w8", bytes_json((const uint8_t *)c->w8, NK, 0));
        else cJSON_AddItemToObject(o, "u", bytes_json(c->u, NK, 1));
        if (c->kernel == QV_KK_W4A8_CHN) cJSON_AddItemToObject(o, "sz", u16_json(c->sz, (size_t)c->N));
        if (c->kernel == QV_KK_W4A8_G128) {
            cJSON_AddItemToObject(o, "s1", bytes_json(c->s1, NG, 0));
            cJSON_AddItemToObject(o, "sz1", bytes_json(c->sz1, NG, 0));
        }
    } else if (c->kind == QV_FZ_GROUP) {
        double v[128];
        for (int i = 0; i < c->n; i++) v[i] = c->w8[i];
        cJSON_AddItemToObject(o, "w8", cJSON_CreateDoubleArray(v, c->n));
    } else {
        cJSON_AddItemToObject(o, "x", f32_json(c->v, (size_t)c->D));
    }
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Reads n doubles from a list / fill / repeat object, or (hex != 0) bytes from a hex string. */
static qv_status read_vals(const cJSON *o, const char *path, const char *key, size_t n, int nibble, double *out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j) return qv_fail(QV_ERR_INPUT, "%s: missing \"%s\"", path, key);
    if (cJSON_IsString(j)) {
        const char *s = j->valuestring;
        size_t len = strlen(s), per = nibble ? 1 : 2;
        if (len != n * per)
            return qv_fail(QV_ERR_INPUT, "%s: \"%s\" has %zu hex digits, expected %zu", path, key, len, n * per);
        for (size_t i = 0; i < n; i++) {
            int a = hexval(s[i * per]), b = nibble ? 0 : hexval(s[i * per + 1]);
            if (a < 0 || b < 0) return qv_fail(QV_ERR_INPUT, "%s: \"%s\": bad hex digit at element %zu", path, key, i);
            out[i] = nibble ? a : a * 16 + b;
        }
        return QV_OK;
    }
    const cJSON *fill = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "fill") : NULL;
    const cJSON *rep = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "repeat") : NULL;
    const cJSON *list = cJSON_IsArray(j) ? j : cJSON_IsArray(rep) ? rep : NULL;
    if (cJSON_IsNumber(fill)) {
        for (size_t i = 0; i < n; i++) out[i] = fill->valuedouble;
        return QV_OK;
    }
    if (!list) return qv_fail(QV_ERR_INPUT, "%s: \"%s\" is not a hex string, list, fill or repeat", path, key);
    size_t len = (size_t)cJSON_GetArraySize(list);
    if (len == 0 || (list == j && len != n) || (list != j && n % len))
        return qv_fail(QV_ERR_INPUT, "%s: \"%s\" has %zu values for %zu elements", path, key, len, n);
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, list) {
        if (!cJSON_IsNumber(e)) return qv_fail(QV_ERR_INPUT, "%s: \"%s\"[%zu] is not a number", path, key, i);
        for (size_t r = i; r < n; r += len) out[r] = e->valuedouble;
        i++;
    }
    return QV_OK;
}

static qv_status get_int(const cJSON *o, const char *path, const char *key, int lo, int hi, int *v)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    /* range first: converting an out-of-range double to int is UB (found by fz_corpus_case) */
    if (!cJSON_IsNumber(j) || !(j->valuedouble >= lo && j->valuedouble <= hi) || j->valuedouble != floor(j->valuedouble))
        return qv_fail(QV_ERR_INPUT, "%s: \"%s\" must be an integer in [%d, %d]", path, key, lo, hi);
    *v = (int)j->valuedouble;
    return QV_OK;
}

/* Reads an integer array into a typed buffer with a range check. */
static qv_status read_ints(const cJSON *o, const char *path, const char *key, size_t n, int nibble, double lo,
                           double hi, int type, void *dst, double *tmp)
{
    QV_TRY(read_vals(o, path, key, n, nibble, tmp));
    for (size_t i = 0; i < n; i++) {
        double v = tmp[i];
        if (type == 0 && !nibble && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, key)) && lo < 0) v = v >= 128 ? v - 256 : v;
        if (v != floor(v) || v < lo || v > hi)
            return qv_fail(QV_ERR_INPUT, "%s: \"%s\"[%zu] = %g outside [%g, %g]", path, key, i, v, lo, hi);
        if (type == 0) ((int8_t *)dst)[i] = (int8_t)v;
        else if (type == 1) ((uint8_t *)dst)[i] = (uint8_t)v;
        else ((uint16_t *)dst)[i] = (uint16_t)v;
    }
    return QV_OK;
}

#define FZ_MAX_ELEMS (40L << 20) /* the per-channel maximal K case has 36M codes */

qv_status qv_fz_case_from_json(const char *text, size_t len, const char *path, qv_fz_case *c)
{
    return qv_fz_case_from_json_limit(text, len, path, FZ_MAX_ELEMS, c);
}

qv_status qv_fz_case_from_json_limit(const char *text, size_t len, const char *path, long max_elems, qv_fz_case *c)
{
    memset(c, 0, sizeof *c);
    cJSON *o = cJSON_ParseWithLength(text, len);
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return qv_fail(QV_ERR_INPUT, "%s: not a JSON object", path);
    }
    qv_status st = QV_OK;
    double *tmp = NULL;
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(o, "qvet_fuzz_case");
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    const cJSON *expect = cJSON_GetObjectItemCaseSensitive(o, "expect");
    const cJSON *note = cJSON_GetObjectItemCaseSensitive(o, "note");
    if (!cJSON_IsNumber(ver) || ver->valuedouble != 1) {
        st = qv_fail(QV_ERR_INPUT, "%s: \"qvet_fuzz_case\" must be 1", path);
        goto out;
    }
    c->kind = QV_FZ_KIND_COUNT;
    for (int k = 0; k < QV_FZ_KIND_COUNT && cJSON_IsString(kind); k++)
        if (!strcmp(kind->valuestring, kind_names[k])) c->kind = (qv_fz_kind)k;
    if (c->kind == QV_FZ_KIND_COUNT) {
        st = qv_fail(QV_ERR_INPUT, "%s: \"kind\" must be gemm, w4g128_group or kv4", path);
        goto out;
    }
    if (!cJSON_IsString(expect) || (strcmp(expect->valuestring, "pass") && strcmp(expect->valuestring, "reject"))) {
        st = qv_fail(QV_ERR_INPUT, "%s: \"expect\" must be \"pass\" or \"reject\"", path);
        goto out;
    }
    c->expect_reject = !strcmp(expect->valuestring, "reject");
    if (cJSON_IsString(note)) snprintf(c->note, sizeof c->note, "%s", note->valuestring);
    if (c->kind == QV_FZ_GEMM) {
        const cJSON *ker = cJSON_GetObjectItemCaseSensitive(o, "kernel");
        c->kernel = QV_KK_COUNT;
        for (int k = 0; k < QV_KK_COUNT && cJSON_IsString(ker); k++)
            if (!strcmp(ker->valuestring, qv_kkernel_name((qv_kkernel)k))) c->kernel = (qv_kkernel)k;
        if (c->kernel == QV_KK_COUNT) {
            st = qv_fail(QV_ERR_INPUT, "%s: \"kernel\" must be w8a8, w4a8_chn or w4a8_g128", path);
            goto out;
        }
        if ((st = get_int(o, path, "M", 1, 4096, &c->M)) || (st = get_int(o, path, "N", 1, 65536, &c->N)) ||
            (st = get_int(o, path, "K", 32, 1 << 21, &c->K)))
            goto out;
        size_t MK = (size_t)c->M * c->K, NK = (size_t)c->N * c->K, NG = (size_t)c->N * (c->K / 128);
        if ((long)MK > max_elems || (long)NK > max_elems) {
            st = qv_fail(QV_ERR_INPUT, "%s: shape M=%d N=%d K=%d too large for a corpus case", path, c->M, c->N, c->K);
            goto out;
        }
        tmp = malloc((MK > NK ? MK : NK) * sizeof(double) + 64);
        c->x = malloc(MK);
        c->sa = malloc((size_t)c->M * sizeof(float));
        c->sw = malloc((size_t)c->N * 2);
        c->sz = c->kernel == QV_KK_W4A8_CHN ? malloc((size_t)c->N * 2) : NULL;
        c->w8 = c->kernel == QV_KK_W8A8 ? malloc(NK) : NULL;
        c->u = c->kernel != QV_KK_W8A8 ? malloc(NK) : NULL;
        c->s1 = c->kernel == QV_KK_W4A8_G128 ? malloc(NG + 1) : NULL;
        c->sz1 = c->kernel == QV_KK_W4A8_G128 ? malloc(NG + 1) : NULL;
        if (!tmp || !c->x || !c->sa || !c->sw || (c->kernel == QV_KK_W4A8_CHN && !c->sz) || (!c->w8 && !c->u) ||
            (c->kernel == QV_KK_W4A8_G128 && (!c->s1 || !c->sz1))) {
            st = qv_fail(QV_ERR_NOMEM, "%s: out of memory", path);
            goto out;
        }
        if ((st = read_ints(o, path, "x", MK, 0, -128, 127, 0, c->x, tmp))) goto out;
        if ((st = read_vals(o, path, "sa", (size_t)c->M, 0, tmp))) goto out;
        for (int m = 0; m < c->M; m++) c->sa[m] = (float)tmp[m];
        if ((st = read_ints(o, path, "sw", (size_t)c->N, 0, 0, 65535, 2, c->sw, tmp))) goto out;
        if (c->sz && (st = read_ints(o, path, "sz", (size_t)c->N, 0, 0, 65535, 2, c->sz, tmp))) goto out;
        if (c->w8 && (st = read_ints(o, path, "w8", NK, 0, -128, 127, 0, c->w8, tmp))) goto out;
        if (c->u && (st = read_ints(o, path, "u", NK, 1, 0, 15, 1, c->u, tmp))) goto out;
        if (c->s1 && (st = read_ints(o, path, "s1", NG, 0, 0, 255, 1, c->s1, tmp))) goto out;
        if (c->sz1 && (st = read_ints(o, path, "sz1", NG, 0, 0, 255, 1, c->sz1, tmp))) goto out;
    } else if (c->kind == QV_FZ_GROUP) {
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(o, "w8");
        c->n = cJSON_IsArray(w) ? cJSON_GetArraySize(w) : 0;
        if (c->n != 128) {
            st = qv_fail(QV_ERR_INPUT, "%s: \"w8\" must be a list of 128 integers", path);
            goto out;
        }
        tmp = malloc(128 * sizeof(double));
        c->w8 = malloc(128);
        if (!tmp || !c->w8) {
            st = qv_fail(QV_ERR_NOMEM, "%s: out of memory", path);
            goto out;
        }
        st = read_ints(o, path, "w8", 128, 0, -128, 127, 0, c->w8, tmp);
    } else {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, "x");
        c->D = cJSON_IsArray(x) ? cJSON_GetArraySize(x) : 0;
        if (c->D < 2 || c->D % 2 || c->D > 4096) {
            st = qv_fail(QV_ERR_INPUT, "%s: \"x\" must be a list of an even number (2..4096) of values", path);
            goto out;
        }
        tmp = malloc((size_t)c->D * sizeof(double));
        c->v = malloc((size_t)c->D * sizeof(float));
        if (!tmp || !c->v) {
            st = qv_fail(QV_ERR_NOMEM, "%s: out of memory", path);
            goto out;
        }
        st = read_vals(o, path, "x", (size_t)c->D, 0, tmp);
        for (int i = 0; st == QV_OK && i < c->D; i++) c->v[i] = (float)tmp[i];
    }
out:
    free(tmp);
    cJSON_Delete(o);
    if (st != QV_OK) qv_fz_case_free(c);
    return st;
}

qv_status qv_fz_case_load(const char *path, qv_fz_case *c)
{
    char *text = NULL;
    size_t n = 0;
    memset(c, 0, sizeof *c);
    QV_TRY(qv_read_file(path, 256u << 20, &text, &n));
    qv_status st = qv_fz_case_from_json(text, n, path, c);
    free(text);
    return st;
}

/* FNV-1a of the JSON text names the file: the same finding saved twice is one file. */
qv_status qv_fz_case_save(const qv_fz_case *c, const char *dir, char *path_out, size_t npath)
{
    char *s = qv_fz_case_to_json(c);
    if (!s) return qv_fail(QV_ERR_NOMEM, "fuzz case: out of memory");
    uint64_t h = 1469598103934665603ull;
    for (const char *p = s; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
    char name[96];
    snprintf(name, sizeof name, "%s-%s-%016llx.json", kind_names[c->kind],
             c->kind == QV_FZ_GEMM ? qv_kkernel_name(c->kernel) : "x", (unsigned long long)h);
    char *path = qv_path_join(dir, name);
    qv_status st = path ? qv_write_file_atomic(path, s, strlen(s)) : qv_fail(QV_ERR_NOMEM, "out of memory");
    if (st == QV_OK && path_out) snprintf(path_out, npath, "%s", path);
    free(path);
    free(s);
    return st;
}
