/* The QoQ GEMMs as the kernels compute them: integer accumulation, then the FP32 epilogue in the
 * fixed order of NUMERICS.md, then FP16 with saturation (reported, never silent). */
#include <stdlib.h>

#include "qoq_internal.h"

qv_status qv_epilogue_w4a8_pc(const int32_t *acc, int M, int N, const float *s_a,
                              const float *rowsum, const qv_fp16 *s_w, const qv_fp16 *sz,
                              int compat, qv_fp16 *Y, float *V, qv_fp16_report *rep)
{
    QV_TRY(qv_qoq_check_dims("epilogue_w4a8_pc", M, N, 1, NULL, NULL, NULL));
    qv_fp16_report local;
    if (!rep) rep = &local;
    qv_qoq_report_init(rep);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            size_t i = (size_t)m * (size_t)N + (size_t)n;
            float a = (float)acc[i], sw = qv_fp16_to_fp32(s_w[n]), z = qv_fp16_to_fp32(sz[n]);
            float v;
            if (compat) {
                float t = a * sw;
                t = t * s_a[m];
                float c = z * rowsum[m];
                v = t - c;
            } else {
                /* subtraction after multiplication: s_a * (s_w*acc - sz*rowsum) */
                float t = sw * a;
                float c = z * rowsum[m];
                float d = t - c;
                v = s_a[m] * d;
            }
            if (V) V[i] = v;
            Y[i] = qv_qoq_out_fp16(v, (long)i, compat, rep);
        }
    return qv_qoq_report_status("epilogue_w4a8_pc", rep, N);
}

qv_status qv_epilogue_scaled(const int32_t *acc, int M, int N, const float *s_a, const qv_fp16 *s,
                             int compat, qv_fp16 *Y, float *V, qv_fp16_report *rep)
{
    QV_TRY(qv_qoq_check_dims("epilogue_scaled", M, N, 1, NULL, NULL, NULL));
    qv_fp16_report local;
    if (!rep) rep = &local;
    qv_qoq_report_init(rep);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            size_t i = (size_t)m * (size_t)N + (size_t)n;
            /* (s_a * s) first, then times the accumulator; QServe writes (s * s_a), the same
             * product since FP multiplication commutes */
            float sc = s_a[m] * qv_fp16_to_fp32(s[n]);
            float v = sc * (float)acc[i];
            if (V) V[i] = v;
            Y[i] = qv_qoq_out_fp16(v, (long)i, compat, rep);
        }
    return qv_qoq_report_status("epilogue_scaled", rep, N);
}

static qv_status with_acc(int M, int N, int32_t *acc_out, int32_t **acc)
{
    *acc = acc_out;
    if (!*acc) *acc = qv_malloc((size_t)M * (size_t)N * sizeof(int32_t));
    return *acc ? QV_OK : QV_ERR_NOMEM;
}

qv_status qv_ref_w4a8_pc_gemm(const int8_t *q, const float *s_a, const float *rowsum,
                              const uint8_t *u, const qv_fp16 *s_w, const qv_fp16 *sz, int M,
                              int N, int K, int compat, qv_gemm_impl impl, qv_fp16 *Y,
                              int32_t *acc_out, qv_fp16_report *rep)
{
    QV_TRY(qv_qoq_check_dims("w4a8_pc_gemm", M, N, K, NULL, NULL, NULL));
    if (K % QV_QOQ_TILE)
        return qv_fail(QV_ERR_USAGE, "w4a8_pc_gemm: K=%d is not a multiple of 32", K);
    int32_t *acc;
    QV_TRY(with_acc(M, N, acc_out, &acc));
    qv_status st = qv_gemm_acc_s8u4(q, u, M, N, K, acc, impl);
    if (st == QV_OK) st = qv_epilogue_w4a8_pc(acc, M, N, s_a, rowsum, s_w, sz, compat, Y, NULL, rep);
    if (acc != acc_out) free(acc);
    return st;
}

qv_status qv_ref_w4a8_g128_gemm(const int8_t *q, const float *s_a, const uint8_t *u,
                                const qv_fp16 *s0, const uint8_t *s1, const uint8_t *sz1, int M,
                                int N, int K, int compat, qv_gemm_impl impl, qv_fp16 *Y,
                                int32_t *acc_out, qv_fp16_report *rep)
{
    size_t nk;
    QV_TRY(qv_qoq_check_dims("w4a8_g128_gemm", M, N, K, NULL, &nk, NULL));
    if (K % QV_QOQ_GROUP)
        return qv_fail(QV_ERR_USAGE, "w4a8_g128_gemm: K=%d is not a multiple of the group size %d",
                       K, QV_QOQ_GROUP);
    if (K > QV_QOQ_G128_KMAX)
        return qv_fail(QV_ERR_USAGE, "w4a8_g128_gemm: K=%d exceeds %d (128*127*K must stay below "
                       "2^31)", K, QV_QOQ_G128_KMAX);
    int8_t *w8p = qv_malloc(nk);
    if (!w8p) return QV_ERR_NOMEM;
    int32_t *acc = NULL;
    qv_status st = qv_w4g128_dequant_ref(u, s1, sz1, N, K, w8p);
    if (st == QV_OK) st = with_acc(M, N, acc_out, &acc);
    if (st == QV_OK) st = qv_gemm_acc_s8s8(q, w8p, M, N, K, QV_QOQ_G128_KMAX, acc, impl);
    if (st == QV_OK) st = qv_epilogue_scaled(acc, M, N, s_a, s0, compat, Y, NULL, rep);
    if (acc != acc_out) free(acc);
    free(w8p);
    return st;
}

qv_status qv_ref_w8a8_gemm(const int8_t *q, const float *s_a, const int8_t *w8, const qv_fp16 *s_w,
                           int M, int N, int K, int compat, qv_gemm_impl impl, qv_fp16 *Y,
                           int32_t *acc_out, qv_fp16_report *rep)
{
    QV_TRY(qv_qoq_check_dims("w8a8_gemm", M, N, K, NULL, NULL, NULL));
    if (K % QV_QOQ_TILE)
        return qv_fail(QV_ERR_USAGE, "w8a8_gemm: K=%d is not a multiple of 32", K);
    int32_t *acc;
    QV_TRY(with_acc(M, N, acc_out, &acc));
    qv_status st = qv_gemm_acc_s8s8(q, w8, M, N, K, QV_QOQ_W8_KMAX, acc, impl);
    if (st == QV_OK) st = qv_epilogue_scaled(acc, M, N, s_a, s_w, compat, Y, NULL, rep);
    if (acc != acc_out) free(acc);
    return st;
}
