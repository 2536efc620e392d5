/* GEMM entries of a build without CUDA: the shape contract is still checked (so a bad call
 * gets the same message everywhere), then QV_ERR_UNSUPPORTED. */
#include <stdio.h>

#include "qvet/gpu_gemm.h"
#include "gpu/gemm_contract.h"

#define QV_NOGPU(kind, M, N, K, g)                                                             \
    do {                                                                                       \
        QV_TRY(qv_gemm_check_shape(kind, M, N, K, g));                                         \
        return qv_fail(QV_ERR_UNSUPPORTED, "%s gemm: qvet was built without CUDA", qv_gemm_kind_name(kind)); \
    } while (0)

qv_status qv_gpu_w8a8_gemm(const int8_t *x, const float *sa, const int8_t *w8, const uint16_t *sw, uint16_t *y,
                           unsigned int *d_sat, int M, int N, int K, void *stream)
{
    (void)x; (void)sa; (void)w8; (void)sw; (void)y; (void)d_sat; (void)stream;
    QV_NOGPU(QV_GEMM_W8A8, M, N, K, 0);
}
qv_status qv_gpu_w8a8_gemm_acc(const int8_t *x, const int8_t *w8, int32_t *acc, int M, int N, int K, void *stream)
{
    (void)x; (void)w8; (void)acc; (void)stream;
    QV_NOGPU(QV_GEMM_W8A8, M, N, K, 0);
}
qv_status qv_gpu_w4a8_chn_gemm(const int8_t *x, const float *sa, const int32_t *rowsum, const uint8_t *w4,
                               const uint16_t *sw, const uint16_t *sz, uint16_t *y, unsigned int *d_sat, int M,
                               int N, int K, void *stream)
{
    (void)x; (void)sa; (void)rowsum; (void)w4; (void)sw; (void)sz; (void)y; (void)d_sat; (void)stream;
    QV_NOGPU(QV_GEMM_W4A8_CHN, M, N, K, 0);
}
qv_status qv_gpu_w4a8_chn_gemm_acc(const int8_t *x, const uint8_t *w4, int32_t *acc, int M, int N, int K,
                                   void *stream)
{
    (void)x; (void)w4; (void)acc; (void)stream;
    QV_NOGPU(QV_GEMM_W4A8_CHN, M, N, K, 0);
}
qv_status qv_gpu_w4a8_g128_gemm(const int8_t *x, const float *sa, const uint8_t *w4, const uint16_t *s0,
                                const uint8_t *s1, const uint8_t *sz1, uint16_t *y, unsigned int *d_sat, int M,
                                int N, int K, int group, void *stream)
{
    (void)x; (void)sa; (void)w4; (void)s0; (void)s1; (void)sz1; (void)y; (void)d_sat; (void)stream;
    QV_NOGPU(QV_GEMM_W4A8_G128, M, N, K, group);
}
qv_status qv_gpu_w4a8_g128_gemm_acc(const int8_t *x, const uint8_t *w4, const uint8_t *s1, const uint8_t *sz1,
                                    int32_t *acc, int M, int N, int K, int group, void *stream)
{
    (void)x; (void)w4; (void)s1; (void)sz1; (void)acc; (void)stream;
    QV_NOGPU(QV_GEMM_W4A8_G128, M, N, K, group);
}
qv_status qv_bench_gemm(const char *json_path, const char *filter)
{
    (void)json_path; (void)filter;
    return qv_fail(QV_ERR_UNSUPPORTED, "bench: qvet was built without CUDA");
}

void qv_gpu_gemm_decode_stats(unsigned long *launches, unsigned long *split)
{
    if (launches) *launches = 0;
    if (split) *split = 0;
}

void qv_gpu_gemm_wgmma_stats(unsigned long *launches)
{
    if (launches) *launches = 0;
}

void qv_gpu_gemm_wgmma_ws_stats(unsigned long *launches)
{
    if (launches) *launches = 0;
}

int qv_gpu_gemm_wgmma_ws_usable(void) { return 0; }

int qv_gpu_gemm_default_wgmma(int g128, int M, int N)
{
    (void)g128, (void)M, (void)N;
    return 0;
}

qv_status qv_gpu_wgmma_probe(char *report, size_t n, int *chosen)
{
    if (!report || !chosen) return qv_fail(QV_ERR_USAGE, "qv_gpu_wgmma_probe: NULL argument");
    *chosen = -2;
    snprintf(report, n, "wgmma path not built (qvet was built without CUDA)\n");
    return QV_OK;
}
