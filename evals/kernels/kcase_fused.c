/* Fused-producer cases of the kernel matrix (include/qvet/kcases.h): seeded inputs through the GPU
 * producers (gpu/fused_quant.cu, gpu/rope_kv.cu) and through their definitions, compared by
 * kcase_fused_check.c's rules. Shapes: decode (M = 1), a small odd M, an M past a warp's rows;
 * K = 4096 (Llama-3-8B hidden), 14336 (its intermediate) and 4100 (K % 8 != 0: the kernels' element
 * path). rope_kv_write: tokens of two slots at positions that cross page edges, the page table
 * reversed (a wrong page index writes another page), the whole pool compared (stray writes fail). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcase_internal.h"
#include "qvet/fp16.h"
#include "qvet/gpu.h"
#include "qvet/gpu_kernels.h"
#include "qvet/gpu_mem.h"
#include "qvet/kcases.h"
#include "qvet/kernels_ref.h"

static const char *fused_names[QV_KF_COUNT] = {"quant_a8", "rmsnorm_a8", "silu_mul_a8", "rope_kv_write"};

const char *qv_kfused_kernel_name(qv_kfused_kernel k) { return (unsigned)k < QV_KF_COUNT ? fused_names[k] : "?"; }

void qv_kfused_name(const qv_kfused_case *c, char *buf, int n)
{
    if (c->kernel == QV_KF_ROPE_KV_WRITE)
        snprintf(buf, (size_t)n, "rope_kv_write T=%d nh=%d nkv=%d hd=%d page=16 kv4", c->M, c->nh, c->nkv, c->K);
    else snprintf(buf, (size_t)n, "%s M=%d K=%d", qv_kfused_kernel_name(c->kernel), c->M, c->K);
}

qv_status qv_kfused_matrix(qv_kfused_case **cases, int *n)
{
    static const int Ms[] = {1, 7, 33}, Ks[] = {4096, 14336, 4100};
    static const int rope[][4] = {{1, 32, 8, 128}, {7, 32, 8, 128}, {33, 6, 2, 64}}; /* T, nh, nkv, hd */
    qv_kfused_case *c = calloc(3 * 9 + 3, sizeof *c);
    if (!c) return qv_fail(QV_ERR_NOMEM, "out of memory");
    int k = 0;
    for (int ker = 0; ker < QV_KF_ROPE_KV_WRITE; ker++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) c[k].kernel = (qv_kfused_kernel)ker, c[k].M = Ms[i], c[k++].K = Ks[j];
    for (int i = 0; i < 3; i++)
        c[k].kernel = QV_KF_ROPE_KV_WRITE, c[k].M = rope[i][0], c[k].nh = rope[i][1], c[k].nkv = rope[i][2],
        c[k++].K = rope[i][3];
    *cases = c;
    *n = k;
    return QV_OK;
}

static float fnormal(qv_krng *r) { return (float)(sqrt(-2.0 * log(1.0 - qv_krng_unif(r))) * cos(6.283185307179586 * qv_krng_unif(r))); }

/* Device buffers of one case, freed together. */
enum { NBUF = 10 };
typedef struct { void *p[NBUF]; } dbufs;
static qv_status dget(dbufs *d, int i, size_t bytes) { return qv_gpu_alloc(&d->p[i], bytes ? bytes : 1, "fused case"); }
static void dfree(dbufs *d)
{
    for (int i = 0; i < NBUF; i++) qv_gpu_free(d->p[i]);
}

/* quant_a8 / rmsnorm_a8 / silu_mul_a8: host inputs, the kernel, the check. */
static qv_status run_a8(const qv_kfused_case *c, qv_krng *rg, qv_kfused_result *r)
{
    const int M = c->M, K = c->K, silu = c->kernel == QV_KF_SILU_MUL_A8, rms = c->kernel == QV_KF_RMSNORM_A8;
    const size_t MK = (size_t)M * K, in_n = silu ? 2 * MK : MK;
    float *xf = malloc(sizeof(float) * in_n), *w = malloc(sizeof(float) * (size_t)K), *v = malloc(sizeof(float) * MK);
    uint16_t *x16 = malloc(2 * in_n);
    int8_t *gq = malloc(MK);
    float *gsa = malloc(sizeof(float) * (size_t)M);
    int32_t *grs = malloc(sizeof(int32_t) * (size_t)M);
    dbufs d = {{0}};
    qv_status st = xf && w && v && x16 && gq && gsa && grs ? QV_OK : qv_fail(QV_ERR_NOMEM, "fused case: out of memory");
    if (st == QV_OK) {
        /* outliers every 97th element (rmsnorm), an all-zero row and a constant row when M > 2 */
        for (size_t i = 0; i < in_n; i++) {
            float s = silu ? 4.0f : rms ? (i % 97 == 3 ? 40.0f : 1.0f) : 3.0f;
            x16[i] = qv_fp32_to_fp16(fnormal(rg) * s);
            xf[i] = rms ? fnormal(rg) * s : qv_fp16_to_fp32(x16[i]);
        }
        if (M > 2 && !silu)
            for (int k = 0; k < K; k++) xf[k] = 0.0f, xf[K + k] = -2.5f, x16[k] = 0, x16[K + k] = qv_fp32_to_fp16(-2.5f);
        for (int k = 0; k < K; k++) w[k] = (float)(0.5 + qv_krng_unif(rg));
        if (rms) qv_ref_rmsnorm_rows(xf, w, 1e-5f, M, K, v);
        else if (silu) qv_ref_silu_mul_rows(x16, M, K, v);
        else memcpy(v, xf, sizeof(float) * MK);
        st = dget(&d, 0, rms ? 4 * MK : 2 * in_n);
    }
    if (st == QV_OK) st = dget(&d, 1, 4 * (size_t)K);
    if (st == QV_OK) st = dget(&d, 2, MK);
    if (st == QV_OK) st = dget(&d, 3, 4 * (size_t)M);
    if (st == QV_OK) st = dget(&d, 4, 4 * (size_t)M);
    if (st == QV_OK) st = rms ? qv_gpu_upload(d.p[0], xf, 4 * MK) : qv_gpu_upload(d.p[0], x16, 2 * in_n);
    if (st == QV_OK) st = qv_gpu_upload(d.p[1], w, 4 * (size_t)K);
    if (st == QV_OK) st = qv_gpu_memset(d.p[2], 0x55, MK); /* unwritten codes show */
    if (st == QV_OK) {
        if (rms) st = qv_gpu_rmsnorm_a8(d.p[0], d.p[1], 1e-5f, M, K, d.p[2], d.p[3], d.p[4], NULL);
        else if (silu) st = qv_gpu_silu_mul_a8(d.p[0], M, K, d.p[2], d.p[3], d.p[4], NULL);
        else st = qv_gpu_quant_a8(d.p[0], M, K, d.p[2], d.p[3], d.p[4], NULL);
    }
    if (st == QV_OK) st = qv_gpu_sync();
    if (st == QV_OK) st = qv_gpu_download(gq, d.p[2], MK);
    if (st == QV_OK) st = qv_gpu_download(gsa, d.p[3], 4 * (size_t)M);
    if (st == QV_OK) st = qv_gpu_download(grs, d.p[4], 4 * (size_t)M);
    if (st == QV_OK)
        st = c->kernel == QV_KF_QUANT_A8 ? qv_kfused_check_a8_exact(M, K, v, gq, gsa, grs, r)
                                         : qv_kfused_check_a8_ties(M, K, v, gq, gsa, grs, r);
    dfree(&d);
    free(xf), free(w), free(v), free(x16), free(gq), free(gsa), free(grs);
    return st;
}

static long count_diff(const void *a, const void *b, size_t n, const char *what, qv_kfused_result *r)
{
    const uint8_t *x = a, *y = b;
    long bad = 0;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i]) {
            if (!bad && !r->first[0])
                snprintf(r->first, sizeof r->first, "%s byte %zu: got 0x%02x, ref 0x%02x", what, i, y[i], x[i]);
            bad++;
        }
    r->n += (long)n;
    return bad;
}

/* rope_kv_write into a KV4 cache: token t of slot t % 2 at position (t / 2) * 3 + t % 2 (unique per
 * slot, crossing the 16-token page edges), RoPE tables of Llama-3 (theta 500000). */
static qv_status run_rope(const qv_kfused_case *c, qv_krng *rg, qv_kfused_result *r)
{
    const int T = c->M, nh = c->nh, nkv = c->nkv, hd = c->K, P = 16, W = (nh + 2 * nkv) * hd;
    const int max_ctx = (T / 2) * 3 + 2, max_pages = (max_ctx + P - 1) / P, n_pages = 2 * max_pages;
    const size_t PB = qv_gpu_kv_page_bytes(QV_KV_FMT_KV4, nkv, hd, P), pool_n = (size_t)n_pages * 2 * PB;
    const size_t qn = (size_t)T * nh * hd, kn = (size_t)T * nkv * hd, tab = (size_t)max_ctx * hd / 2;
    uint16_t *qkv = malloc(2 * (size_t)T * W), *ref = malloc(2 * (qn + 2 * kn)), *got = malloc(2 * (qn + 2 * kn));
    int32_t *pos = malloc(4 * (size_t)T), *slot = malloc(4 * (size_t)T), *pt = malloc(4 * (size_t)n_pages);
    float *cs = malloc(sizeof(float) * 2 * tab), *xf = malloc(sizeof(float) * (size_t)nkv * hd);
    uint8_t *pool = calloc(pool_n, 1), *gpool = malloc(pool_n);
    dbufs d = {{0}};
    qv_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.head_dim = hd, cfg.rope_theta = 500000.0, cfg.rope_type = QV_ROPE_DEFAULT;
    qv_status st = qkv && ref && got && pos && slot && pt && cs && xf && pool && gpool
                       ? QV_OK : qv_fail(QV_ERR_NOMEM, "fused case: out of memory");
    if (st == QV_OK) st = qv_ref_rope_table(&cfg, max_ctx, cs, cs + tab);
    qv_kv4_geom g = {nkv, hd, P};
    for (int i = 0; st == QV_OK && i < n_pages; i++) pt[i] = n_pages - 1 - i;
    for (int t = 0; t < T && st == QV_OK; t++) {
        uint16_t *row = qkv + (size_t)t * W, *q = ref + (size_t)t * nh * hd, *k = ref + qn + (size_t)t * nkv * hd,
                 *v = ref + qn + kn + (size_t)t * nkv * hd;
        slot[t] = t % 2, pos[t] = (t / 2) * 3 + t % 2;
        for (int i = 0; i < W; i++) row[i] = qv_fp32_to_fp16(t == 0 ? 0.75f : fnormal(rg) * 2.0f); /* token 0: constant */
        qv_ref_rope_qkv(row, nh, nkv, hd, cs + (size_t)pos[t] * hd / 2, cs + tab + (size_t)pos[t] * hd / 2, q, k, v);
        int page = pt[slot[t] * max_pages + pos[t] / P];
        for (int isv = 0; isv < 2 && st == QV_OK; isv++) {
            for (int i = 0; i < nkv * hd; i++) xf[i] = qv_fp16_to_fp32((isv ? v : k)[i]);
            st = qv_kv4_write_token(pool + ((size_t)page * 2 + isv) * PB, 1, g, pos[t] % P, xf, 0);
        }
    }
    /* qkv, q, k, v, pos, slot, cos, sin, page table, pool */
    const size_t sz[NBUF] = {2 * (size_t)T * W, 2 * qn, 2 * kn, 2 * kn, 4 * (size_t)T, 4 * (size_t)T, 4 * tab, 4 * tab,
                             4 * (size_t)n_pages, pool_n};
    for (int i = 0; i < NBUF && st == QV_OK; i++) st = dget(&d, i, sz[i]);
    if (st == QV_OK) st = qv_gpu_upload(d.p[0], qkv, 2 * (size_t)T * W);
    if (st == QV_OK) st = qv_gpu_upload(d.p[4], pos, 4 * (size_t)T);
    if (st == QV_OK) st = qv_gpu_upload(d.p[5], slot, 4 * (size_t)T);
    if (st == QV_OK) st = qv_gpu_upload(d.p[6], cs, 4 * tab);
    if (st == QV_OK) st = qv_gpu_upload(d.p[7], cs + tab, 4 * tab);
    if (st == QV_OK) st = qv_gpu_upload(d.p[8], pt, 4 * (size_t)n_pages);
    if (st == QV_OK) st = qv_gpu_memset(d.p[9], 0, pool_n);
    if (st == QV_OK) {
        qv_gpu_kv_cache cache = {QV_KV_FMT_KV4, nkv, hd, P, max_pages, d.p[8], d.p[9]};
        st = qv_gpu_rope_kv_write(d.p[0], T, nh, d.p[4], d.p[5], d.p[6], d.p[7], d.p[1], d.p[2], d.p[3], &cache, NULL);
    }
    if (st == QV_OK) st = qv_gpu_sync();
    for (int i = 0; i < 3 && st == QV_OK; i++)
        st = qv_gpu_download(got + (i ? qn + (size_t)(i - 1) * kn : 0), d.p[1 + i], 2 * (i ? kn : qn));
    if (st == QV_OK) st = qv_gpu_download(gpool, d.p[9], pool_n);
    if (st == QV_OK) {
        r->exact = 1;
        r->byte_bad = count_diff(ref, got, 2 * (qn + 2 * kn), "q/k/v", r) + count_diff(pool, gpool, pool_n, "KV4 pool", r);
        r->ok = r->byte_bad == 0;
    }
    dfree(&d);
    free(qkv), free(ref), free(got), free(pos), free(slot), free(pt), free(cs), free(xf), free(pool), free(gpool);
    return st;
}

qv_status qv_kfused_run(const qv_kfused_case *c, qv_kbackend b, uint64_t seed, qv_kfused_result *r)
{
    memset(r, 0, sizeof *r);
    if (b != QV_KB_GPU)
        return qv_fail(QV_ERR_USAGE, "fused-producer cases run on the GPU only (the reference is the definition)");
    if ((unsigned)c->kernel >= QV_KF_COUNT || c->M < 1 || c->K < 1 ||
        (c->kernel == QV_KF_ROPE_KV_WRITE && (c->nh < 1 || c->nkv < 1 || c->nh % c->nkv || c->K % 2)))
        return qv_fail(QV_ERR_USAGE, "fused-producer case: bad shape");
    if (qv_gpu_device_count() == 0) {
        r->skipped = 1;
        return QV_OK;
    }
    qv_krng rg = {seed};
    return c->kernel == QV_KF_ROPE_KV_WRITE ? run_rope(c, &rg, r) : run_a8(c, &rg, r);
}
