/* An attention case of the kernel matrix on the GPU kernels (include/qvet/kcases.h): the same
 * inputs as the CPU emulation (kcase_attn.c), written into a paged KV4 cache by
 * qv_gpu_rope_kv_write (sequence A, then sequence B reusing the slot) and read by
 * qv_gpu_attention, one row per query position of B's last T. The RoPE tables are the identity
 * (cos 1, sin 0: out = a*1 + (-b)*0 = a), so the cached K is the drawn K, as in the definition the
 * case compares with. The page table maps logical page i to physical page n_pages-1-i, so a wrong
 * page index reads another page's data. The pages come back in logical order for the comparison.
 * Shapes outside the kernels' contract (head_dim in {32, 64, 128}, heads per KV head in
 * {1, 2, 3, 4, 8}) return QV_ERR_USAGE, which the gate reports as a skip with the reason. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kcase_internal.h"
#include "qvet/fp16.h"
#include "qvet/gpu_kernels.h"
#include "qvet/gpu_mem.h"

enum { D_QKV, D_POS, D_SLOT, D_PT, D_COS, D_SIN, D_QO, D_KO, D_VO, D_POOL, D_Q, D_RS, D_RC, D_RF, D_RI, D_OUT, D_WS, D_N };

qv_status qv_kattn_run_gpu(const qv_kattn_case *c, int ctx_a, const float *ka, const float *va, const float *kb,
                           const float *vb, const float *q, uint8_t *kp, uint8_t *vp, float *out)
{
    const int nh = c->nh, nkv = c->nkv, hd = c->hd, ctx = c->ctx, T = c->T, P = c->page, G = nh / nkv;
    if ((hd != 32 && hd != 64 && hd != 128) || (G != 1 && G != 2 && G != 3 && G != 4 && G != 8))
        return qv_fail(QV_ERR_USAGE, "attention case outside the GPU kernels' contract (head_dim %d not in {32, 64, 128} "
                       "or %d heads per KV head not in {1, 2, 3, 4, 8})", hd, G);
    const int n_pages = (ctx + P - 1) / P, W = (nh + 2 * nkv) * hd, D = nkv * hd;
    const size_t pb = qv_gpu_kv_page_bytes(QV_KV_FMT_KV4, nkv, hd, P), qn = (size_t)T * nh * hd;
    size_t sz[D_N] = {(size_t)ctx * W * 2, (size_t)ctx * 4, (size_t)ctx * 4, (size_t)n_pages * 4, (size_t)ctx * hd / 2 * 4,
                      (size_t)ctx * hd / 2 * 4, (size_t)ctx * nh * hd * 2, (size_t)ctx * D * 2, (size_t)ctx * D * 2,
                      2 * (size_t)n_pages * pb, qn * 2, (size_t)T * 4, (size_t)T * 4, (size_t)T * 4, (size_t)T * 4, qn * 2,
                      qv_gpu_attn_ws_bytes(T, nh, hd, ctx)};
    void *d[D_N] = {0};
    uint16_t *qkv = calloc((size_t)ctx * W, 2), *q16 = malloc(qn * 2), *o16 = malloc(qn * 2);
    int32_t *pos = malloc((size_t)ctx * 4), *slot = calloc((size_t)ctx, 4), *pt = malloc((size_t)n_pages * 4);
    int32_t *rows = malloc((size_t)T * 4 * 4);
    float *cs = malloc((size_t)ctx * hd / 2 * 4 * 2);
    uint8_t *pool = malloc(2 * (size_t)n_pages * pb);
    qv_status st = qkv && q16 && o16 && pos && slot && pt && rows && cs && pool ? QV_OK
                                                                                : qv_fail(QV_ERR_NOMEM, "attention case: out of memory");
    for (int i = 0; st == QV_OK && i < D_N; i++) st = qv_gpu_alloc(&d[i], sz[i], "attention case");
    if (st == QV_OK) {
        for (int t = 0; t < ctx; t++) pos[t] = t;
        for (int i = 0; i < n_pages; i++) pt[i] = n_pages - 1 - i;
        for (size_t i = 0; i < (size_t)ctx * hd / 2; i++) cs[i] = 1.0f, cs[(size_t)ctx * hd / 2 + i] = 0.0f;
        for (size_t i = 0; i < qn; i++) q16[i] = qv_fp32_to_fp16(q[i]);
        for (int i = 0; i < T; i++) {
            rows[i] = 0;                            /* slot */
            rows[T + i] = ctx - T + i + 1;          /* causal context */
            rows[2 * T + i] = INT_MAX;              /* every position from the cache */
            rows[3 * T + i] = 0;
        }
        st = qv_gpu_upload(d[D_POS], pos, sz[D_POS]);
    }
    if (st == QV_OK) st = qv_gpu_upload(d[D_SLOT], slot, sz[D_SLOT]);
    if (st == QV_OK) st = qv_gpu_upload(d[D_PT], pt, sz[D_PT]);
    if (st == QV_OK) st = qv_gpu_upload(d[D_COS], cs, sz[D_COS]);
    if (st == QV_OK) st = qv_gpu_upload(d[D_SIN], cs + (size_t)ctx * hd / 2, sz[D_SIN]);
    if (st == QV_OK) st = qv_gpu_upload(d[D_Q], q16, sz[D_Q]);
    for (int i = 0; st == QV_OK && i < 4; i++) st = qv_gpu_upload(d[D_RS + i], rows + (size_t)i * T, (size_t)T * 4);
    if (st == QV_OK) st = qv_gpu_memset(d[D_POOL], 0, sz[D_POOL]);
    if (st == QV_OK) st = qv_gpu_memset(d[D_OUT], 0xFF, sz[D_OUT]); /* poison: FP16 NaN */
    qv_gpu_kv_cache cache = {QV_KV_FMT_KV4, nkv, hd, P, n_pages, d[D_PT], d[D_POOL]};
    /* sequence A fills the slot, then sequence B reuses it from position 0 */
    for (int s = 0; s < 2 && st == QV_OK; s++) {
        const float *k = s ? kb : ka, *v = s ? vb : va;
        int n = s ? ctx : ctx_a;
        for (int t = 0; t < n; t++)
            for (int i = 0; i < D; i++) {
                qkv[(size_t)t * W + (size_t)nh * hd + i] = qv_fp32_to_fp16(k[(size_t)t * D + i]);
                qkv[(size_t)t * W + (size_t)(nh + nkv) * hd + i] = qv_fp32_to_fp16(v[(size_t)t * D + i]);
            }
        st = qv_gpu_upload(d[D_QKV], qkv, (size_t)n * W * 2);
        if (st == QV_OK)
            st = qv_gpu_rope_kv_write(d[D_QKV], n, nh, d[D_POS], d[D_SLOT], d[D_COS], d[D_SIN], d[D_QO], d[D_KO], d[D_VO], &cache,
                                      NULL);
        if (st == QV_OK) st = qv_gpu_sync(); /* the next upload reuses the qkv buffer */
    }
    if (st == QV_OK) {
        qv_gpu_attn_args a = {T,      nh,   d[D_Q], d[D_RS], d[D_RC], d[D_RF], d[D_RI], NULL, NULL, 1.0f / sqrtf((float)hd),
                              ctx,    d[D_OUT], d[D_WS], sz[D_WS], 0};
        st = qv_gpu_attention(&a, &cache, NULL);
    }
    if (st == QV_OK) st = qv_gpu_sync();
    if (st == QV_OK) st = qv_gpu_download(pool, d[D_POOL], sz[D_POOL]);
    if (st == QV_OK) st = qv_gpu_download(o16, d[D_OUT], sz[D_OUT]);
    if (st == QV_OK) {
        for (int i = 0; i < n_pages; i++) { /* physical page pt[i]: K at 2*pt[i], V at 2*pt[i] + 1 */
            memcpy(kp + (size_t)i * pb, pool + (size_t)(2 * pt[i]) * pb, pb);
            memcpy(vp + (size_t)i * pb, pool + (size_t)(2 * pt[i] + 1) * pb, pb);
        }
        for (size_t i = 0; i < qn; i++) out[i] = qv_fp16_to_fp32(o16[i]);
    }
    for (int i = 0; i < D_N; i++) qv_gpu_free(d[i]);
    free(qkv), free(q16), free(o16), free(pos), free(slot), free(pt), free(rows), free(cs), free(pool);
    return st;
}
