/* CPU emulation of the g128 kernel's level-2 dequantization with register-level parallelism:
 * four INT8 lanes per 32-bit word, one 32-bit multiply by s1 and one per-byte subtraction of sz1.
 * The multiply is exact per byte because every lane holds u <= 15 and u*s1 <= 15*16 = 240 < 256,
 * so no partial product carries into the next byte. The subtraction is modulo 256 per byte, which
 * equals the INT8 value of u*s1 - sz1 exactly when that value lies in [-128, 127]; the protective
 * range guarantees it does (quant_w4g128.c). */
#include "qoq_internal.h"

uint32_t qv_vsub4_emul(uint32_t a, uint32_t b)
{
    uint32_t r = 0;
    for (int i = 0; i < 4; i++) {
        uint32_t d = (((a >> (8 * i)) & 0xffu) - ((b >> (8 * i)) & 0xffu)) & 0xffu;
        r |= d << (8 * i);
    }
    return r;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void qv_w4g128_dequant_simd_emul(const uint8_t packed16[16], const uint8_t s1x4[4],
                                 const uint8_t sz1x4[4], uint32_t out[8])
{
    /* words: x = k 0-3 of channels c (low) / c+16 (high), y = the same for c+8 / c+24,
     * z and w = k 16-19 likewise */
    uint32_t x = le32(packed16), y = le32(packed16 + 4), z = le32(packed16 + 8), w = le32(packed16 + 12);
    uint32_t lanes[8] = {x & 0x0f0f0f0fu,        z & 0x0f0f0f0fu,        y & 0x0f0f0f0fu,
                         w & 0x0f0f0f0fu,        (x >> 4) & 0x0f0f0f0fu, (z >> 4) & 0x0f0f0f0fu,
                         (y >> 4) & 0x0f0f0f0fu, (w >> 4) & 0x0f0f0f0fu};
    for (int j = 0; j < 8; j++) {
        uint32_t s = s1x4[j / 2], zz = sz1x4[j / 2];
        uint32_t zb = zz * 0x01010101u; /* broadcast to 4 bytes, as __byte_perm does */
        out[j] = qv_vsub4_emul(lanes[j] * s, zb);
    }
}
