/* Packing of UINT4 weight codes into the compute-aware reordered layout the GEMM kernels load
 * (QServe's layout, adopted unchanged; docs/layout.md has the picture). In one 32x32 tile
 * (32 output channels n, 32 k), code (n, k) with
 *   n = 16a + 8b + c   (a, b in {0,1}, c in 0..7),   k = 16d + 4e + f   (d in {0,1}, e, f in 0..3)
 * goes to byte 64c + 16e + 8d + 4b + f of the tile, low nibble for a = 0, high for a = 1.
 * Lane t = 4c + e of a warp loads bytes 16t..16t+15 in one 128-bit load: exactly the INT8 B
 * fragments of mma.m16n8k32 (column n = groupID c, rows k = 4*threadID_in_group + f and + 16) for
 * the four channels c, c+8, c+16, c+24, after a mask (low nibbles) or a shift and mask (high). */
#include "qoq_internal.h"

static qv_status check_tiles(const char *what, int N, int K)
{
    QV_TRY(qv_qoq_check_dims(what, 1, N, K, NULL, NULL, NULL));
    if (N % QV_QOQ_TILE || K % QV_QOQ_TILE)
        return qv_fail(QV_ERR_USAGE, "%s: [N=%d x K=%d] must have N %% 32 == 0 and K %% 32 == 0 "
                       "(packed tiles are 32 x 32)", what, N, K);
    return QV_OK;
}

size_t qv_w4_packed_offset(int n, int k, int K, int *nibble)
{
    size_t tile = (size_t)(n / 32) * (size_t)(K / 32) + (size_t)(k / 32);
    int a = (n % 32) / 16, b = (n % 16) / 8, c = n % 8;
    int d = (k % 32) / 16, e = (k % 16) / 4, f = k % 4;
    *nibble = a;
    return tile * QV_QOQ_TILE_BYTES + (size_t)(64 * c + 16 * e + 8 * d + 4 * b + f);
}

qv_status qv_w4_pack(const uint8_t *u, int N, int K, uint8_t *packed)
{
    QV_TRY(check_tiles("w4_pack", N, K));
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            uint8_t v = u[(size_t)n * (size_t)K + (size_t)k];
            if (v > 15)
                return qv_fail(QV_ERR_INPUT, "w4_pack: code [%d][%d] = %d is not UINT4", n, k, v);
            int nib;
            size_t off = qv_w4_packed_offset(n, k, K, &nib);
            if (nib) packed[off] = (uint8_t)((packed[off] & 0x0f) | (v << 4));
            else packed[off] = (uint8_t)((packed[off] & 0xf0) | v);
        }
    return QV_OK;
}

qv_status qv_w4_unpack(const uint8_t *packed, int N, int K, uint8_t *u)
{
    QV_TRY(check_tiles("w4_unpack", N, K));
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            int nib;
            size_t off = qv_w4_packed_offset(n, k, K, &nib);
            u[(size_t)n * (size_t)K + (size_t)k] = nib ? (uint8_t)(packed[off] >> 4) : (uint8_t)(packed[off] & 0x0f);
        }
    return QV_OK;
}

/* Level-2 bytes: [N][G] -> [G][N], block of 32 channels reordered p = 4c + j <- channel 8j + c, so
 * lane group c reads its four channels' s1 (or sz1) with one 32-bit load. */
static qv_status groupbytes(const uint8_t *src, int N, int K, uint8_t *dst, int pack)
{
    QV_TRY(qv_qoq_check_dims(pack ? "w4g128_pack_groupbytes" : "w4g128_unpack_groupbytes", 1, N, K,
                             NULL, NULL, NULL));
    if (N % QV_QOQ_TILE || K % QV_QOQ_GROUP)
        return qv_fail(QV_ERR_USAGE, "w4g128 group bytes: [N=%d x K=%d] must have N %% 32 == 0 "
                       "and K %% 128 == 0", N, K);
    int G = K / QV_QOQ_GROUP;
    for (int g = 0; g < G; g++)
        for (int nb = 0; nb < N; nb += 32)
            for (int p = 0; p < 32; p++) {
                int n = nb + (p % 4) * 8 + p / 4;
                size_t logical = (size_t)n * (size_t)G + (size_t)g;
                size_t phys = (size_t)g * (size_t)N + (size_t)(nb + p);
                if (pack) dst[phys] = src[logical];
                else dst[logical] = src[phys];
            }
    return QV_OK;
}

qv_status qv_w4g128_pack_groupbytes(const uint8_t *src, int N, int K, uint8_t *dst)
{
    return groupbytes(src, N, K, dst, 1);
}

qv_status qv_w4g128_unpack_groupbytes(const uint8_t *src, int N, int K, uint8_t *dst)
{
    return groupbytes(src, N, K, dst, 0);
}
