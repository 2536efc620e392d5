/* The rotation H = D * blockdiag(Hb, ..., Hb) / sqrt(b): D random +-1 signs, Hb the Sylvester
 * Hadamard matrix of size b = largest power of two dividing n. H is orthogonal and Hb symmetric,
 * so both v H (a row vector) and H^T v (a column) are the same vector operation:
 * u = Hb (D v) / sqrt(b) per block. deepcompressor builds K * 2^m Hadamard matrices (K = 12 for
 * 384) and, in its QoQ configs, no random signs; qvet uses the block-diagonal form
 * (NUMERICS.md) with signs (docs/quant.md). */
#include <math.h>

#include "qvet/quant.h"

int qv_hadamard_block(int n)
{
    if (n <= 0) return 1;
    return n & -n;
}

void qv_hadamard_signs(uint64_t seed, int n, float *signs)
{
    uint64_t s = seed ^ 0x51ed2701f3a5c9b7ull;
    for (int i = 0; i < n; i++) {
        uint64_t z = (s += 0x9e3779b97f4a7c15ull); /* splitmix64 */
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        signs[i] = (z >> 63) ? -1.0f : 1.0f;
    }
}

void qv_hadamard_apply(float *v, int n, const float *signs)
{
    int b = qv_hadamard_block(n);
    float norm = (float)(1.0 / sqrt((double)b));
    if (signs)
        for (int i = 0; i < n; i++) v[i] = v[i] * signs[i];
    for (int off = 0; off < n; off += b) {
        float *x = v + off;
        for (int len = 1; len < b; len <<= 1)
            for (int i = 0; i < b; i += 2 * len)
                for (int j = i; j < i + len; j++) {
                    float a = x[j], c = x[j + len];
                    x[j] = a + c;
                    x[j + len] = a - c;
                }
        for (int i = 0; i < b; i++) x[i] = x[i] * norm;
    }
}
