/* The kernel case matrix and its runner (include/qvet/kcases.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcase_internal.h"
#include "qvet/gpu.h"

static const char *kernel_names[QV_KK_COUNT] = {"w8a8", "w4a8_chn", "w4a8_g128"};
static const char *value_names[QV_KV_COUNT] = {"random", "x=+127,codes=15", "x=-127,codes=0",
                                               "x=+-127,codes=0/15", "max-scales"};

const char *qv_kkernel_name(qv_kkernel k) { return (unsigned)k < QV_KK_COUNT ? kernel_names[k] : "?"; }
const char *qv_kvalues_name(qv_kvalues v) { return (unsigned)v < QV_KV_COUNT ? value_names[v] : "?"; }

void qv_kcase_name(const qv_kcase *c, char *buf, int n)
{
    snprintf(buf, (size_t)n, "%s M=%d N=%d K=%d %s", qv_kkernel_name(c->kernel), c->M, c->N, c->K,
             qv_kvalues_name(c->values));
}

/* Shapes valid for every kernel (K % 128 == 0; N a multiple of 32 for the packed W4 tile).
 * M crosses each tile configuration's boundary (16/17, 64/65, 256/257) and is odd; the decode
 * kernel's (gpu/gemm_decode.cuh: M <= 8 stages 8 rows, M <= 16 16, M >= 17 the tiled kernels)
 * at 1, 2, 3, 8, 9, 15, 16, 17. */
static const int shapes_all[][3] = {
    {1, 64, 128},   {3, 160, 256},   {16, 512, 512},  {17, 96, 384},    {33, 224, 256}, {64, 128, 1024},
    {65, 288, 512}, {127, 160, 256}, {256, 256, 640}, {257, 416, 384},  {300, 1056, 1152},
    {2, 96, 384},   {8, 128, 640},   {9, 64, 256},    {15, 192, 1152},
};
/* K tails: K % 32 == 0 but not a multiple of 128 (W8A8 and per-channel only) */
static const int shapes_tail[][3] = {{1, 64, 32}, {5, 64, 96}, {17, 160, 160}, {64, 96, 288}, {200, 224, 416}, {1, 4096, 4000},
                                     {8, 96, 160}, {16, 128, 4000}};
/* W8A8 only: N % 32 != 0 (the last 8-channel tiles of a 32/128-channel block), small M */
static const int shapes_w8n[][3] = {{1, 40, 96}, {13, 72, 224}, {16, 136, 288}};
/* Llama-3-8B layer shapes (qkv, o, gate_up, down) at M = 1 and a small odd M */
static const int shapes_llama[][2] = {{6144, 4096}, {4096, 4096}, {28672, 4096}, {4096, 14336}};
/* and the decode kernel's 16-row staging on two of them (M = 12 and 16) */
static const int shapes_llama16[][3] = {{12, 4096, 4096}, {16, 4096, 14336}};
/* a prefill shape the default launch rule sends to the sm_90a wgmma kernel on an sm_90 device
 * (gpu/gemm_launch.cu wgmma_by_default: 8 x 14 tiles of 128 x 256 >= 0.8 x 132 SMs), with M not
 * a multiple of its 128-token tile, so the default path's wgmma launch is in the matrix */
static const int shapes_wg[][3] = {{1000, 3584, 384}};
/* small shapes for the adversarial value modes */
static const int shapes_adv[][3] = {{1, 64, 256}, {17, 160, 384}, {130, 96, 512}};

qv_status qv_kcase_matrix(int quick, qv_kcase **cases, int *n)
{
    int cap = 512, k = 0;
    qv_kcase *c = malloc((size_t)cap * sizeof *c);
    if (!c) return qv_fail(QV_ERR_NOMEM, "out of memory");
#define ADD(KER, VAL, MM, NN, KK) do { c[k].kernel = (KER); c[k].values = (VAL); c[k].M = (MM); c[k].N = (NN); c[k].K = (KK); k++; } while (0)
    for (int ker = 0; ker < QV_KK_COUNT; ker++) {
        for (size_t i = 0; i < sizeof shapes_all / sizeof *shapes_all; i++)
            if (!quick || shapes_all[i][0] * shapes_all[i][1] <= 64 * 1024)
                ADD(ker, QV_KV_RANDOM, shapes_all[i][0], shapes_all[i][1], shapes_all[i][2]);
        if (ker != QV_KK_W4A8_G128)
            for (size_t i = 0; i < sizeof shapes_tail / sizeof *shapes_tail; i++)
                if (!quick || shapes_tail[i][1] < 1024)
                    ADD(ker, QV_KV_RANDOM, shapes_tail[i][0], shapes_tail[i][1], shapes_tail[i][2]);
        if (ker == QV_KK_W8A8)
            for (size_t i = 0; i < sizeof shapes_w8n / sizeof *shapes_w8n; i++)
                ADD(ker, QV_KV_RANDOM, shapes_w8n[i][0], shapes_w8n[i][1], shapes_w8n[i][2]);
        if (!quick) {
            for (size_t i = 0; i < sizeof shapes_llama / sizeof *shapes_llama; i++) {
                ADD(ker, QV_KV_RANDOM, 1, shapes_llama[i][0], shapes_llama[i][1]);
                ADD(ker, QV_KV_RANDOM, 3, shapes_llama[i][0], shapes_llama[i][1]);
            }
            for (size_t i = 0; i < sizeof shapes_llama16 / sizeof *shapes_llama16; i++)
                ADD(ker, QV_KV_RANDOM, shapes_llama16[i][0], shapes_llama16[i][1], shapes_llama16[i][2]);
            for (size_t i = 0; i < sizeof shapes_wg / sizeof *shapes_wg; i++)
                ADD(ker, QV_KV_RANDOM, shapes_wg[i][0], shapes_wg[i][1], shapes_wg[i][2]);
        }
        for (int v = 1; v < QV_KV_COUNT; v++)
            for (size_t i = 0; i < sizeof shapes_adv / sizeof *shapes_adv; i++)
                ADD(ker, v, shapes_adv[i][0], shapes_adv[i][1], shapes_adv[i][2]);
    }
#undef ADD
    *cases = c;
    *n = k;
    return QV_OK;
}

static qv_status run_backend(const qv_kcase *c, qv_kbackend b, const qv_kdata *d, qv_kresult *r)
{
    if (b == QV_KB_GPU) return qv_kcase_run_gpu(c, d, r);
    if (b == QV_KB_PLUGIN) return qv_kcase_run_plugin(c, d, r);
    return qv_kcase_run_cpu_emul(c, d, r);
}

qv_status qv_kcase_run(const qv_kcase *c, qv_kbackend b, uint64_t seed, qv_kresult *r)
{
    memset(r, 0, sizeof *r);
    r->first = -1;
    if (b == QV_KB_GPU) {
        if (qv_gpu_device_count() == 0) {
            r->skipped = 1;
            return QV_OK;
        }
    }
    if (b == QV_KB_PLUGIN) { /* before the (costly) reference: skip what the plugin lacks */
        QV_TRY(qv_kcase_plugin_check(c->kernel, r));
        if (r->skipped) return QV_OK;
    }
    qv_kdata d;
    QV_TRY(qv_kdata_make(c, seed, &d));
    qv_status st = run_backend(c, b, &d, r);
    qv_kdata_free(&d);
    return st;
}

qv_status qv_kcase_run_explicit(const qv_kexplicit *e, qv_kbackend b, qv_kresult *r)
{
    memset(r, 0, sizeof *r);
    r->first = -1;
    const int M = e->M, N = e->N, K = e->K, g128 = e->kernel == QV_KK_W4A8_G128;
    const int w4 = e->kernel != QV_KK_W8A8;
    if ((unsigned)e->kernel >= QV_KK_COUNT || M < 1 || N < 1 || K < 32 || K % 32 || (w4 && N % 32) ||
        (g128 && K % 128))
        return qv_fail(QV_ERR_USAGE, "explicit kernel case %s M=%d N=%d K=%d: bad shape",
                       qv_kkernel_name(e->kernel), M, N, K);
    if (!e->x || !e->sa || !e->sw || (w4 ? !e->u : !e->w8) || (e->kernel == QV_KK_W4A8_CHN && !e->sz) ||
        (g128 && (!e->s1 || !e->sz1)))
        return qv_fail(QV_ERR_USAGE, "explicit kernel case %s: missing input array", qv_kkernel_name(e->kernel));
    if (b == QV_KB_GPU && qv_gpu_device_count() == 0) {
        r->skipped = 1;
        return QV_OK;
    }
    if (b == QV_KB_PLUGIN) {
        QV_TRY(qv_kcase_plugin_check(e->kernel, r));
        if (r->skipped) return QV_OK;
    }
    const size_t MK = (size_t)M * K, NK = (size_t)N * K, NG = (size_t)N * (g128 ? K / 128 : 1);
    qv_kdata d;
    QV_TRY(qv_kdata_alloc(&d, M, N, K, g128 ? K / 128 : 0));
    memcpy(d.x, e->x, MK);
    memcpy(d.sa, e->sa, (size_t)M * sizeof(float));
    for (int m = 0; m < M; m++) {
        int32_t s = 0;
        for (int k = 0; k < K; k++) s += d.x[(size_t)m * K + k];
        d.rowsum[m] = s;
    }
    if (w4) memcpy(d.u, e->u, NK);
    else memcpy(d.w8, e->w8, NK);
    memcpy(d.sw, e->sw, (size_t)N * sizeof(qv_fp16));
    if (e->sz) memcpy(d.sz, e->sz, (size_t)N * sizeof(qv_fp16));
    else memset(d.sz, 0, (size_t)N * sizeof(qv_fp16));
    if (g128) {
        memcpy(d.s1, e->s1, NG);
        memcpy(d.sz1, e->sz1, NG);
    }
    for (size_t i = 0; w4 && i < NK; i++)
        if (d.u[i] > 15) {
            qv_kdata_free(&d);
            return qv_fail(QV_ERR_INPUT, "explicit kernel case: code u[%zu][%zu] = %d is not UINT4", i / K,
                           i % K, d.u[i]);
        }
    qv_kcase c = {e->kernel, QV_KV_RANDOM, M, N, K};
    QV_TRY(qv_kdata_finish(&c, &d));
    qv_status st = run_backend(&c, b, &d, r);
    qv_kdata_free(&d);
    return st;
}
