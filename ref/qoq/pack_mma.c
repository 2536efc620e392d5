/* The "mma" packed UINT4 layout (contract and reason in include/qvet/qoq_pack_mma.h). */
#include "qvet/qoq_pack_mma.h"

static qv_status check_dims(const char *fn, int N, int K)
{
    if (N < 1 || K < 32 || K % 32 != 0)
        return qv_fail(QV_ERR_USAGE, "%s: N=%d K=%d, need N >= 1, K >= 32 and K %% 32 == 0", fn, N, K);
    return QV_OK;
}

qv_status qv_qoq_pack_w4_mma(const uint8_t *u, int N, int K, uint8_t *packed)
{
    QV_TRY(check_dims("qv_qoq_pack_w4_mma", N, K));
    for (long n = 0; n < N; n++) {
        const uint8_t *row = u + n * (long)K;
        uint8_t *out = packed + n * (long)(K / 2);
        for (long k = 0; k < K; k++)
            if (row[k] > 15)
                return qv_fail(QV_ERR_INPUT, "qv_qoq_pack_w4_mma: code %u at [%ld, %ld] exceeds 15", row[k], n, k);
        for (long b = 0; b < K / 32; b++)
            for (int j = 0; j < 16; j++)
                out[16 * b + j] = (uint8_t)(row[32 * b + j] | row[32 * b + 16 + j] << 4);
    }
    return QV_OK;
}

qv_status qv_qoq_unpack_w4_mma(const uint8_t *packed, int N, int K, uint8_t *u)
{
    QV_TRY(check_dims("qv_qoq_unpack_w4_mma", N, K));
    for (long n = 0; n < N; n++) {
        const uint8_t *in = packed + n * (long)(K / 2);
        uint8_t *row = u + n * (long)K;
        for (long b = 0; b < K / 32; b++)
            for (int j = 0; j < 16; j++) {
                row[32 * b + j] = in[16 * b + j] & 15u;
                row[32 * b + 16 + j] = in[16 * b + j] >> 4;
            }
    }
    return QV_OK;
}
