/* Calibration samples: seqlen-token windows of the tokenized calibration text, starts drawn
 * uniformly with a seeded splitmix64 (deterministic for a seed). */
#include <string.h>

#include "qvet/quant.h"

qv_status qv_quant_sample(const int32_t *ids, int64_t n, int samples, int seqlen, uint64_t seed, int32_t **ids_out)
{
    *ids_out = NULL;
    if (samples <= 0 || seqlen <= 0)
        return qv_fail(QV_ERR_USAGE, "quant: --samples (%d) and --seqlen (%d) must be positive", samples, seqlen);
    if (n < seqlen)
        return qv_fail(QV_ERR_INPUT, "quant: the calibration text has %lld tokens, fewer than --seqlen %d", (long long)n,
                       seqlen);
    int32_t *out = qv_malloc(sizeof(int32_t) * (size_t)samples * (size_t)seqlen);
    if (!out) return qv_fail(QV_ERR_NOMEM, "quant: no memory for %d samples of %d tokens", samples, seqlen);
    uint64_t s = seed;
    uint64_t span = (uint64_t)(n - seqlen) + 1;
    for (int i = 0; i < samples; i++) {
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        memcpy(out + (size_t)i * seqlen, ids + z % span, sizeof(int32_t) * (size_t)seqlen);
    }
    *ids_out = out;
    return QV_OK;
}
