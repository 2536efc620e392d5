/* The CPU emulation of the GEMM kernels' data path (include/qvet/kcases.h): weights are read
 * from the packed layout 16 bytes per lane, exactly as a warp loads a 32x32 tile, split into
 * nibbles and (g128) dequantized by the 4-lanes-per-register emulation with the scale bytes read
 * from their packed group-major arrays; the INT32 GEMM runs on BLAS dgemm (exact); the
 * epilogue uses the kernel's operands (INT32 row sums converted to FP32). A bug in the packing,
 * the nibble order, the scale reorder or the level-2 arithmetic shows up here without a GPU. */
#include <stdlib.h>
#include <string.h>

#include "kcase_internal.h"
#include "qvet/mutant.h"
#include "qvet/qoq.h"

/* Rebuilds the INT8 weight operand [N][K] the kernel feeds its tensor cores. g128: dequantized
 * w8'; per channel: the raw codes (s1 = 1, sz1 = 0 makes the emulation an identity on codes). */
static void emulate_operand(const qv_kdata *d, int g128, int8_t *wop)
{
    const int N = d->N, K = d->K;
    static const uint8_t ones[4] = {1, 1, 1, 1}, zeros[4] = {0, 0, 0, 0};
    for (int n0 = 0; n0 < N / 32; n0++)
        for (int k0 = 0; k0 < K / 32; k0++) {
            const uint8_t *tile = d->pk + ((size_t)n0 * (K / 32) + k0) * 512;
            for (int t = 0; t < 32; t++) {
                int c = t / 4, e = t % 4;
                const uint8_t *s1x4 = ones, *sz1x4 = zeros;
                if (g128) {
                    size_t g = (size_t)(k0 * 32) / 128;
                    if (QV_MUT(group_boundary) && (k0 * 32 + 32) % 128 == 0 && (size_t)(k0 * 32 + 32) / 128 < (size_t)(K / 128))
                        g++; /* mutant: the last 32-wide block of a group reads the next group's scales */
                    s1x4 = d->s1p + g * N + (size_t)n0 * 32 + 4 * c;
                    sz1x4 = d->sz1p + g * N + (size_t)n0 * 32 + 4 * c;
                }
                uint32_t out[8];
                const uint8_t *lane = tile + 16 * t;
#ifdef QV_MUTANTS
                uint8_t swapped[16];
                if (QV_MUT(nibble_swap)) { /* mutant: high nibble read first */
                    for (int b = 0; b < 16; b++) swapped[b] = (uint8_t)((lane[b] >> 4) | (lane[b] << 4));
                    lane = swapped;
                }
#endif
                qv_w4g128_dequant_simd_emul(lane, s1x4, sz1x4, out);
                for (int j = 0; j < 8; j++) {
                    int n = n0 * 32 + c + 8 * (j / 2);
                    int kb = k0 * 32 + 16 * (j % 2) + 4 * e;
                    for (int f = 0; f < 4; f++) wop[(size_t)n * K + kb + f] = (int8_t)((out[j] >> (8 * f)) & 0xffu);
                }
            }
        }
}

#ifdef QV_MUTANTS
/* Mutants of the epilogue stage: each rewrites the operands (or the result) the way the planted
 * kernel bug would, so the shared fixed-order epilogue runs on what the buggy kernel computes. */
static void mutate_scaled_epilogue(const qv_kcase *c, const qv_kdata *d, const int32_t *acc, qv_fp16 *y, long *sat)
{
    const int M = d->M, N = d->N, K = d->K;
    if (QV_MUT(scale_before_sum) && c->kernel == QV_KK_W8A8) {
        /* one INT32 partial sum per 32-wide K tile, each scaled in FP32, then summed in FP32 */
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                float s = d->sa[m] * qv_fp16_to_fp32(d->sw[n]), v = 0;
                for (int k0 = 0; k0 < K; k0 += 32) {
                    int32_t part = 0;
                    for (int k = k0; k < K && k < k0 + 32; k++) part += (int32_t)d->x[(long)m * K + k] * d->w8[(long)n * K + k];
                    v += (float)part * s;
                }
                y[(long)m * N + n] = qv_fp32_to_fp16(v);
            }
        (void)acc;
    }
    if (QV_MUT(fp16_sat_silent)) {
        for (long i = 0; i < (long)M * N; i++)
            if ((y[i] & 0x7fffu) == 0x7c00u) y[i] = (qv_fp16)((y[i] & 0x8000u) | 0x7bffu);
        *sat = 0;
    }
}
#endif
int qv_kcase_emul_plant = 0;

qv_status qv_kcase_run_cpu_emul(const qv_kcase *c, const qv_kdata *d, qv_kresult *r)
{
    const int M = d->M, N = d->N, K = d->K;
    const long NK = (long)N * K, MN = (long)M * N;
    int8_t *wop = malloc((size_t)NK);
    int32_t *acc = malloc((size_t)MN * sizeof(int32_t));
    qv_fp16 *y = malloc((size_t)MN * sizeof(qv_fp16));
    float *rs = malloc((size_t)M * sizeof(float));
    float *V = malloc((size_t)MN * sizeof(float));
    if (!wop || !acc || !y || !rs || !V) {
        free(wop); free(acc); free(y); free(rs); free(V);
        return qv_fail(QV_ERR_NOMEM, "out of memory");
    }
    qv_status st;
    if (c->kernel == QV_KK_W8A8) {
        memcpy(wop, d->w8, (size_t)NK);
        if (QV_MUT(ktail_dropped) && K % 128) /* mutant: the last partial K tile is not accumulated */
            for (long n = 0; n < N; n++) memset(wop + n * K + (K - K % 128), 0, (size_t)(K % 128));
        st = qv_gemm_acc_s8s8(d->x, wop, M, N, K, QV_QOQ_W8_KMAX, acc, QV_GEMM_BLAS);
    } else {
        int g128 = c->kernel == QV_KK_W4A8_G128;
#ifdef QV_MUTANTS
        qv_kdata dm = *d;
        uint8_t *u2 = NULL, *pk2 = NULL;
        if (QV_MUT(reorder_twice)) { /* mutant: the packed bytes, read as row-major codes, packed again */
            u2 = malloc((size_t)NK);
            pk2 = malloc((size_t)NK / 2 + 1);
            if (u2 && pk2) {
                for (long i = 0; i < NK; i++) u2[i] = (uint8_t)((d->pk[i / 2] >> (4 * (i % 2))) & 15u);
                if (qv_w4_pack(u2, N, K, pk2) == QV_OK) dm.pk = pk2;
            }
        }
        emulate_operand(&dm, g128, wop);
        free(u2);
        free(pk2);
#else
        emulate_operand(d, g128, wop);
#endif
        /* the operand itself against the definition (codes for chn, w8' for g128) */
        for (long i = 0; i < NK; i++)
            if (wop[i] != (g128 ? d->w8[i] : (int8_t)d->u[i])) r->w_mismatch++;
        /* per channel: the operand holds codes 0..15, so the UINT4 GEMM (bound QV_QOQ_PC_KMAX)
         * applies; the INT8 one would refuse K beyond the W8A8 bound (found by qvet fuzz) */
        st = g128 ? qv_gemm_acc_s8s8(d->x, wop, M, N, K, QV_QOQ_G128_KMAX, acc, QV_GEMM_BLAS)
                  : qv_gemm_acc_s8u4(d->x, (const uint8_t *)wop, M, N, K, acc, QV_GEMM_BLAS);
    }
    qv_fp16_report rep;
    memset(&rep, 0, sizeof rep);
    const float *sa = d->sa;
    const qv_fp16 *sz = d->sz;
    float *sa_m = NULL;
    qv_fp16 *sz_m = NULL;
#ifdef QV_MUTANTS
    if (QV_MUT(act_scale_token) && M > 1 && (sa_m = malloc((size_t)M * sizeof(float)))) {
        for (int m = 0; m < M; m++) sa_m[m] = d->sa[m > 0 ? m - 1 : 0]; /* mutant: previous token's scale */
        sa = sa_m;
    }
    if (QV_MUT(zp_sign) && (sz_m = malloc((size_t)N * sizeof(qv_fp16)))) {
        for (int n = 0; n < N; n++) sz_m[n] = (qv_fp16)(d->sz[n] ^ 0x8000u); /* mutant: zero point sign */
        sz = sz_m;
    }
#endif
    if (st == QV_OK) {
        if (c->kernel == QV_KK_W4A8_CHN) {
            for (int m = 0; m < M; m++) rs[m] = QV_MUT(rowsum_omitted) ? 0.0f : (float)d->rowsum[m]; /* __int2float_rn of the INT32 sum */
            if (qv_kcase_emul_plant == 2) /* planted bug: row sum through FP16 */
                for (int m = 0; m < M; m++) rs[m] = qv_fp16_to_fp32(qv_fp32_to_fp16(rs[m]));
            st = qv_epilogue_w4a8_pc(acc, M, N, sa, rs, d->sw, sz, 0, y, V, &rep);
        } else {
            st = qv_epilogue_scaled(acc, M, N, sa, d->sw, 0, y, V, &rep);
        }
        if (st == QV_ERR_CHECK && rep.count > 0 && rep.nonfinite == 0) st = QV_OK;
        if (st == QV_OK && qv_kcase_emul_plant == 1) { /* planted bug: overflow counted only at Inf */
            rep.count = 0;
            for (long i = 0; i < MN; i++)
                if (V[i] >= 65520.0f || V[i] <= -65520.0f) rep.count++;
        }
    }
    long sat = (long)rep.count;
#ifdef QV_MUTANTS
    if (st == QV_OK) mutate_scaled_epilogue(c, d, acc, y, &sat);
#endif
    free(sa_m);
    free(sz_m);
    if (st == QV_OK) qv_kdata_compare(d, acc, y, sat, r);
    free(wop); free(acc); free(y); free(rs); free(V);
    return st;
}
