/* Runs a GEMM kernel case on an external implementation loaded through the qv_kernel_plugin ABI
 * (include/qvet/kernel_plugin.h). As for the GPU backend: the debug entry's INT32 accumulators and
 * the GEMM entry's FP16 outputs and overflow count against the reference, bit for bit. The plugin
 * gets its own 64-byte-aligned copies of the inputs, exactly sized (so ASan builds catch overreads),
 * checked unchanged afterwards; its outputs are poisoned first so an unwritten element is a
 * mismatch. An op returning an error makes the case an error (r->impl_error), not a crash. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/gemm_contract.h"
#include "kcase_internal.h"

static const qv_kplugin *current;

void qv_kcase_set_plugin(const qv_kplugin *p) { current = p; }

qv_status qv_kcase_plugin_check(qv_kkernel k, qv_kresult *r)
{
    if (!current) return qv_fail(QV_ERR_USAGE, "kernel case: the plugin backend was chosen but no plugin is loaded");
    if (!qv_kplugin_ops(current, k)) r->skipped = 1;
    return QV_OK;
}

enum { IN_X, IN_SA, IN_RS, IN_W, IN_SW, IN_SZ, IN_S1, IN_SZ1, N_IN };
static const char *in_names[N_IN] = {"x", "sa", "rowsum", "w", "sw/s0", "sz", "s1", "sz1"};

static void *aligned_copy(const void *src, size_t n, int fill)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 1) != 0) return NULL;
    if (src) memcpy(p, src, n);
    else memset(p, fill, n);
    return p;
}

qv_status qv_kcase_run_plugin(const qv_kcase *c, const qv_kdata *d, qv_kresult *r)
{
    QV_TRY(qv_kcase_plugin_check(c->kernel, r));
    if (r->skipped) return QV_OK;
    /* the plugin contract is the GPU kernels' shape contract: QV_ERR_USAGE (a skip for the corpus,
     * as on the GPU) for shapes outside it, which the plugin is never asked to handle */
    QV_TRY(qv_gemm_check_shape((int)c->kernel, d->M, d->N, d->K, 128));
    const qv_kernel_plugin *api = qv_kplugin_api(current);
    const int M = d->M, N = d->N, K = d->K, G = d->G, ops = qv_kplugin_ops(current, c->kernel);
    const size_t MK = (size_t)M * K, NK = (size_t)N * K, MN = (size_t)M * N, NG = (size_t)N * G;
    const int w8 = c->kernel == QV_KK_W8A8;
    const void *src[N_IN] = {d->x, d->sa, d->rowsum, w8 ? (const void *)d->w8 : (const void *)d->pk, d->sw, d->sz,
                             d->s1p, d->sz1p};
    const size_t len[N_IN] = {MK, (size_t)M * 4, (size_t)M * 4, w8 ? NK : NK / 2, (size_t)N * 2, (size_t)N * 2, NG, NG};
    void *in[N_IN] = {0};
    int32_t *acc = aligned_copy(NULL, MN * 4, 0xA5); /* poison */
    uint16_t *y = aligned_copy(NULL, MN * 2, 0xFF);  /* poison: FP16 NaN */
    qv_status st = acc && y ? QV_OK : qv_fail(QV_ERR_NOMEM, "out of memory");
    for (int i = 0; i < N_IN && st == QV_OK; i++)
        if (!(in[i] = aligned_copy(src[i], len[i], 0))) st = qv_fail(QV_ERR_NOMEM, "out of memory");
    char err[512] = "";
    uint32_t sat = 0;
    const char *op = "";
    int rc = QV_KP_OK;
    const int8_t *x = in[IN_X];
    const float *sa = in[IN_SA];
    const uint8_t *w = in[IN_W], *s1 = in[IN_S1], *sz1 = in[IN_SZ1];
    const uint16_t *sw = in[IN_SW], *sz = in[IN_SZ];
    void *ctx = api->ctx;
    /* step 0 the debug entry (accumulators), step 1 the GEMM; inputs checked after each */
    for (int step = 0; step < 2 && st == QV_OK; step++) {
        if (!(ops & (step ? 1 : 2))) continue;
        if (w8) {
            op = step ? "w8a8_gemm" : "w8a8_gemm_acc";
            rc = step ? api->w8a8_gemm(ctx, x, sa, (const int8_t *)w, sw, y, &sat, M, N, K, err, sizeof err)
                      : api->w8a8_gemm_acc(ctx, x, (const int8_t *)w, acc, M, N, K, err, sizeof err);
        } else if (c->kernel == QV_KK_W4A8_CHN) {
            op = step ? "w4a8_chn_gemm" : "w4a8_chn_gemm_acc";
            rc = step ? api->w4a8_chn_gemm(ctx, x, sa, in[IN_RS], w, sw, sz, y, &sat, M, N, K, err, sizeof err)
                      : api->w4a8_chn_gemm_acc(ctx, x, w, acc, M, N, K, err, sizeof err);
        } else {
            op = step ? "w4a8_g128_gemm" : "w4a8_g128_gemm_acc";
            rc = step ? api->w4a8_g128_gemm(ctx, x, sa, w, sw, s1, sz1, y, &sat, M, N, K, 128, err, sizeof err)
                      : api->w4a8_g128_gemm_acc(ctx, x, w, s1, sz1, acc, M, N, K, 128, err, sizeof err);
        }
        err[sizeof err - 1] = 0;
        if (rc != QV_KP_OK) {
            r->impl_error = 1;
            st = qv_fail(QV_ERR_CHECK, "plugin '%s': %s returned %d (%s): %s", qv_kplugin_name(current), op, rc,
                         qv_kplugin_code_name(rc), err[0] ? err : "no message");
        }
        for (int i = 0; i < N_IN && st == QV_OK; i++)
            if (memcmp(in[i], src[i], len[i]) != 0) {
                r->impl_error = 1;
                st = qv_fail(QV_ERR_CHECK, "plugin '%s': %s wrote into its input '%s' (inputs are const)",
                             qv_kplugin_name(current), op, in_names[i]);
            }
    }
    if (st == QV_OK) {
        r->no_acc = !(ops & 2);
        r->no_out = !(ops & 1);
        qv_kdata_compare(d, r->no_acc ? NULL : acc, r->no_out ? NULL : y, (long)sat, r);
        if (r->no_out) r->sat_got = 0;
    }
    for (int i = 0; i < N_IN; i++) free(in[i]);
    free(acc);
    free(y);
    return st;
}
