/* Runs a GEMM kernel case on the GPU kernels (gpu/): both the debug entry (INT32 accumulators)
 * and the production entry (FP16 outputs + saturation count), outputs poisoned before launch so
 * an unwritten element is a mismatch. Without CUDA or a device: r->skipped. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kcase_internal.h"
#include "qvet/gpu.h"
#include "qvet/gpu_gemm.h"
#include "qvet/gpu_mem.h"

#define NB 11

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The production entry of the case's kernel (FP16 outputs, saturation count). */
static qv_status launch(const qv_kcase *c, const qv_kdata *d, void *const *p)
{
    const int M = d->M, N = d->N, K = d->K;
    if (c->kernel == QV_KK_W8A8) return qv_gpu_w8a8_gemm(p[0], p[1], p[3], p[4], p[9], p[10], M, N, K, NULL);
    if (c->kernel == QV_KK_W4A8_CHN) return qv_gpu_w4a8_chn_gemm(p[0], p[1], p[2], p[3], p[4], p[5], p[9], p[10], M, N, K, NULL);
    return qv_gpu_w4a8_g128_gemm(p[0], p[1], p[3], p[4], p[6], p[7], p[9], p[10], M, N, K, 128, NULL);
}

qv_status qv_kcase_run_gpu(const qv_kcase *c, const qv_kdata *d, qv_kresult *r)
{
    if (qv_gpu_device_count() == 0) {
        r->skipped = 1;
        return QV_OK;
    }
    const int M = d->M, N = d->N, K = d->K, G = d->G;
    const size_t MK = (size_t)M * K, NK = (size_t)N * K, MN = (size_t)M * N;
    const int w8 = c->kernel == QV_KK_W8A8;
    size_t sizes[NB] = {MK, (size_t)M * 4, (size_t)M * 4, w8 ? NK : NK / 2, (size_t)N * 2, (size_t)N * 2,
                        G ? (size_t)N * G : 1, G ? (size_t)N * G : 1, MN * 4, MN * 2, 4};
    void *p[NB] = {0};
    qv_status st = QV_OK;
    for (int i = 0; i < NB && st == QV_OK; i++) st = qv_gpu_alloc(&p[i], sizes[i], "kernel case");
    void *dx = p[0], *dsa = p[1], *drs = p[2], *dw = p[3], *dsw = p[4], *dsz = p[5], *ds1 = p[6], *dsz1 = p[7],
         *dacc = p[8], *dy = p[9], *dsat = p[10];
    if (st == QV_OK) st = qv_gpu_upload(dx, d->x, MK);
    if (st == QV_OK) st = qv_gpu_upload(dsa, d->sa, (size_t)M * 4);
    if (st == QV_OK) st = qv_gpu_upload(drs, d->rowsum, (size_t)M * 4);
    if (st == QV_OK) st = qv_gpu_upload(dw, w8 ? (const void *)d->w8 : (const void *)d->pk, sizes[3]);
    if (st == QV_OK) st = qv_gpu_upload(dsw, d->sw, (size_t)N * 2);
    if (st == QV_OK) st = qv_gpu_upload(dsz, d->sz, (size_t)N * 2);
    if (st == QV_OK && G) st = qv_gpu_upload(ds1, d->s1p, (size_t)N * G);
    if (st == QV_OK && G) st = qv_gpu_upload(dsz1, d->sz1p, (size_t)N * G);
    if (st == QV_OK) st = qv_gpu_memset(dacc, 0xA5, MN * 4); /* poison */
    if (st == QV_OK) st = qv_gpu_memset(dy, 0xFF, MN * 2);   /* poison: FP16 NaN */
    if (st == QV_OK) st = qv_gpu_memset(dsat, 0, 4);
    if (st == QV_OK) {
        if (w8) st = qv_gpu_w8a8_gemm_acc(dx, dw, dacc, M, N, K, NULL);
        else if (c->kernel == QV_KK_W4A8_CHN) st = qv_gpu_w4a8_chn_gemm_acc(dx, dw, dacc, M, N, K, NULL);
        else st = qv_gpu_w4a8_g128_gemm_acc(dx, dw, ds1, dsz1, dacc, M, N, K, 128, NULL);
        if (st == QV_OK) st = launch(c, d, p);
    }
    if (st == QV_OK) st = qv_gpu_sync();
    int32_t *acc = malloc(MN * 4);
    qv_fp16 *y = malloc(MN * 2);
    unsigned int sat = 0;
    if (st == QV_OK && (!acc || !y)) st = qv_fail(QV_ERR_NOMEM, "out of memory");
    if (st == QV_OK) st = qv_gpu_download(acc, dacc, MN * 4);
    if (st == QV_OK) st = qv_gpu_download(y, dy, MN * 2);
    if (st == QV_OK) st = qv_gpu_download(&sat, dsat, 4);
    if (st == QV_OK) qv_kdata_compare(d, acc, y, (long)sat, r);
    /* the kernel's time for `--baseline` (after the checked run, which also warmed it up): the
     * best of a few synchronized launches, so one preempted launch does not count */
    for (int i = 0; i < QV_KCASE_TIMED_RUNS && st == QV_OK; i++) {
        double t0 = now_s();
        st = launch(c, d, p);
        if (st == QV_OK) st = qv_gpu_sync();
        double dt = now_s() - t0;
        if (st == QV_OK && (i == 0 || dt < r->gpu_seconds)) r->gpu_seconds = dt;
    }
    free(acc);
    free(y);
    for (int i = 0; i < NB; i++) qv_gpu_free(p[i]);
    return st;
}
