/* The "mma" packed layout of UINT4 weight codes that qvet's GPU W4A8 kernels load
 * (gpu/gemm_w4a8_chn.cuh, gpu/gemm_w4a8_g128.cuh). Codes u [N, K] (one code 0..15 per byte,
 * row-major, K contiguous per output channel) become packed [N, K/2] bytes where, for every
 * 32-wide K block b of row n:
 *     packed[n][16*b + j] = u[n][32*b + j] | u[n][32*b + 16 + j] << 4,   j = 0..15.
 * Why: the m16n8k32 INT8 mma's B fragment gives lane t of a quad the codes k = 4t..4t+3 and
 * 16+4t..16+4t+3 of one row; here those 8 codes are the 32-bit word at bytes 4t..4t+3, so the
 * kernel unpacks with w & 0x0F0F0F0F and (w >> 4) & 0x0F0F0F0F and nothing else.
 * This layout is qvet's own (see docs/gpu-gemm.md for how it relates to QServe's reorder).
 * Requires K % 32 == 0. */
#ifndef QVET_QOQ_PACK_MMA_H
#define QVET_QOQ_PACK_MMA_H

#include <stdint.h>

#include "qvet/status.h"

/* u: N*K codes (each must be <= 15, else QV_ERR_INPUT naming the first offender);
 * packed: N*K/2 bytes. */
qv_status qv_qoq_pack_w4_mma(const uint8_t *u, int N, int K, uint8_t *packed);
/* Inverse: packed N*K/2 bytes -> u N*K codes. */
qv_status qv_qoq_unpack_w4_mma(const uint8_t *packed, int N, int K, uint8_t *u);

#endif
