/* INT32 accumulators of the integer GEMMs: acc[m][n] = sum_k q[m][k] * w[n][k].
 * QV_GEMM_LOOP is the definition (plain loops, INT64 sums checked against INT32 range).
 * QV_GEMM_BLAS computes the same numbers with OpenBLAS dgemm on the integer values: every product
 * and partial sum is an integer of magnitude < 2^31 < 2^53, so double arithmetic is exact in any
 * summation order, and the result converts to INT32 without rounding. Tests check equality. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>

#include "qoq_internal.h"

static qv_status acc_blas(const int8_t *q, const uint8_t *wu, const int8_t *ws, int M, int N,
                          int K, int32_t *acc)
{
    size_t mk = (size_t)M * (size_t)K, nk = (size_t)N * (size_t)K, mn = (size_t)M * (size_t)N;
    double *A = qv_malloc(mk * sizeof(double));
    double *B = qv_malloc(nk * sizeof(double));
    double *C = qv_malloc(mn * sizeof(double));
    if (!A || !B || !C) {
        free(A), free(B), free(C);
        return QV_ERR_NOMEM;
    }
    for (size_t i = 0; i < mk; i++) A[i] = q[i];
    if (wu)
        for (size_t i = 0; i < nk; i++) B[i] = wu[i];
    else
        for (size_t i = 0; i < nk; i++) B[i] = ws[i];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0, A, K, B, K, 0.0, C, N);
    qv_status st = QV_OK;
    for (size_t i = 0; i < mn; i++) {
        /* exact by construction; a non-integer here would mean a broken BLAS */
        if (C[i] != floor(C[i]) || fabs(C[i]) > 2147483647.0) {
            st = qv_fail(QV_ERR_INTERNAL, "gemm_acc (blas): acc[%zu] = %.17g is not an INT32", i, C[i]);
            break;
        }
        acc[i] = (int32_t)C[i];
    }
    free(A), free(B), free(C);
    return st;
}

static qv_status acc_loop(const int8_t *q, const uint8_t *wu, const int8_t *ws, int M, int N,
                          int K, int32_t *acc)
{
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            int64_t s = 0;
            const int8_t *qm = q + (size_t)m * (size_t)K;
            if (wu) {
                const uint8_t *w = wu + (size_t)n * (size_t)K;
                for (int k = 0; k < K; k++) s += (int32_t)qm[k] * (int32_t)w[k];
            } else {
                const int8_t *w = ws + (size_t)n * (size_t)K;
                for (int k = 0; k < K; k++) s += (int32_t)qm[k] * (int32_t)w[k];
            }
            if (s > INT32_MAX || s < INT32_MIN)
                return qv_fail(QV_ERR_INTERNAL, "gemm_acc: acc[%d][%d] = %lld overflows INT32 "
                               "despite the K limit", m, n, (long long)s);
            acc[(size_t)m * (size_t)N + (size_t)n] = (int32_t)s;
        }
    return QV_OK;
}

qv_status qv_gemm_acc_s8u4(const int8_t *q, const uint8_t *u, int M, int N, int K, int32_t *acc,
                           qv_gemm_impl impl)
{
    QV_TRY(qv_qoq_check_dims("gemm_acc_s8u4", M, N, K, NULL, NULL, NULL));
    if (K > QV_QOQ_PC_KMAX)
        return qv_fail(QV_ERR_USAGE, "gemm_acc_s8u4: K=%d exceeds %d (127*15*K must stay below "
                       "2^31)", K, QV_QOQ_PC_KMAX);
    return impl == QV_GEMM_BLAS ? acc_blas(q, u, NULL, M, N, K, acc) : acc_loop(q, u, NULL, M, N, K, acc);
}

qv_status qv_gemm_acc_s8s8(const int8_t *q, const int8_t *w, int M, int N, int K, int kmax,
                           int32_t *acc, qv_gemm_impl impl)
{
    QV_TRY(qv_qoq_check_dims("gemm_acc_s8s8", M, N, K, NULL, NULL, NULL));
    if (kmax < 1 || kmax > QV_QOQ_W8_KMAX) kmax = QV_QOQ_W8_KMAX;
    if (K > kmax)
        return qv_fail(QV_ERR_USAGE, "gemm_acc_s8s8: K=%d exceeds %d (the INT32 accumulator could "
                       "overflow)", K, kmax);
    return impl == QV_GEMM_BLAS ? acc_blas(q, NULL, w, M, N, K, acc) : acc_loop(q, NULL, w, M, N, K, acc);
}
