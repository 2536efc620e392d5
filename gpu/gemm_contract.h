/* The GEMM entries' shape contract, shared by the CUDA build (gpu/gemm_launch.cu) and the
 * build without CUDA (gpu/nogpu/gemm_nogpu.c), so a bad shape gets the same QV_ERR_USAGE
 * message everywhere. Plain C, no CUDA. */
#ifndef QV_GPU_GEMM_CONTRACT_H
#define QV_GPU_GEMM_CONTRACT_H

#include <stdint.h>

#include "qvet/qoq.h"
#include "qvet/status.h"

enum { QV_GEMM_W8A8 = 0, QV_GEMM_W4A8_CHN = 1, QV_GEMM_W4A8_G128 = 2 };

static inline const char *qv_gemm_kind_name(int kind)
{
    return kind == QV_GEMM_W8A8 ? "w8a8" : kind == QV_GEMM_W4A8_CHN ? "w4a8_chn" : "w4a8_g128";
}

/* Largest K for which every |acc| < 2^31: ref/qoq's bounds (qvet/qoq.h). */
static inline long qv_gemm_max_k(int kind)
{
    return kind == QV_GEMM_W8A8 ? QV_QOQ_W8_KMAX : kind == QV_GEMM_W4A8_CHN ? QV_QOQ_PC_KMAX : QV_QOQ_G128_KMAX;
}

static inline qv_status qv_gemm_check_shape(int kind, int M, int N, int K, int group)
{
    const char *k = qv_gemm_kind_name(kind);
    if (M < 1) return qv_fail(QV_ERR_USAGE, "%s gemm: M=%d, need M >= 1", k, M);
    if (N < 8 || N % 8 != 0) return qv_fail(QV_ERR_USAGE, "%s gemm: N=%d, need N >= 8 and N %% 8 == 0", k, N);
    if (kind != QV_GEMM_W8A8 && N % 32 != 0)
        return qv_fail(QV_ERR_USAGE, "%s gemm: N=%d, the packed W4 layout needs N %% 32 == 0", k, N);
    if (K < 32 || K % 32 != 0) return qv_fail(QV_ERR_USAGE, "%s gemm: K=%d, need K >= 32 and K %% 32 == 0", k, K);
    if ((long)K > qv_gemm_max_k(kind))
        return qv_fail(QV_ERR_USAGE, "%s gemm: K=%d exceeds %ld, where the INT32 accumulator could overflow", k, K,
                       qv_gemm_max_k(kind));
    if (kind == QV_GEMM_W4A8_G128) {
        if (group != 128) return qv_fail(QV_ERR_USAGE, "%s gemm: group=%d, only 128 is supported", k, group);
        if (K % 128 != 0) return qv_fail(QV_ERR_USAGE, "%s gemm: K=%d, need K %% 128 == 0 (whole groups)", k, K);
    }
    return QV_OK;
}

static inline qv_status qv_gemm_check_ptr(int kind, const void *p, const char *name, int align)
{
    if (!p) return qv_fail(QV_ERR_USAGE, "%s gemm: %s is NULL", qv_gemm_kind_name(kind), name);
    if (((uintptr_t)p) % (uintptr_t)align != 0)
        return qv_fail(QV_ERR_USAGE, "%s gemm: %s is not %d-byte aligned", qv_gemm_kind_name(kind), name, align);
    return QV_OK;
}

#endif
