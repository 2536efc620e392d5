/* UTF-8 validation, lossy decoding (as Rust's String::from_utf8_lossy) and GPT-2's byte map. */
#include "tok_internal.h"

/* Length of a valid sequence starting at s[i] (1..4), or 0 if invalid; *bad is then the number of
 * bytes making up the maximal invalid subpart (Unicode 3.9 "substitution of maximal subparts"). */
static int seq_len(const unsigned char *s, size_t n, size_t *bad)
{
    unsigned char c = s[0];
    int need;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else {
        *bad = 1;
        return 0;
    }
    size_t k = 1;
    for (; k <= (size_t)need; k++) {
        if (k >= n) break;
        unsigned char lo_k = k == 1 ? lo : 0x80, hi_k = k == 1 ? hi : 0xbf;
        if (s[k] < lo_k || s[k] > hi_k) break;
    }
    if (k == (size_t)need + 1) return need + 1;
    *bad = k;
    return 0;
}

size_t qv_utf8_valid_prefix(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t bad;
        int l = seq_len(s + i, len - i, &bad);
        if (!l) return i;
        i += (size_t)l;
    }
    return len;
}

int qv_utf8_len(unsigned char c)
{
    return c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
}

uint32_t qv_utf8_decode(const unsigned char *s, int *len)
{
    int l = qv_utf8_len(s[0]);
    *len = l;
    if (l == 1) return s[0];
    uint32_t cp = s[0] & (0x3f >> (l - 1));
    for (int k = 1; k < l; k++) cp = (cp << 6) | (s[k] & 0x3f);
    return cp;
}

int qv_utf8_encode(uint32_t cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

qv_status qv_utf8_lossy_append(qv_tbuf *b, const unsigned char *s, size_t len)
{
    /* s is NULL when a decode produced no bytes; s + 0 on NULL is undefined (found by fz_tokenizer) */
    if (len == 0) return QV_OK;
    size_t i = 0, run = 0;
    while (i < len) {
        size_t bad = 0;
        int l = s[i] < 0x80 ? 1 : seq_len(s + i, len - i, &bad);
        if (l) {
            i += (size_t)l;
            continue;
        }
        QV_TRY(qv_tbuf_put(b, s + run, i - run));
        QV_TRY(qv_tbuf_put(b, "\xef\xbf\xbd", 3));
        i += bad;
        run = i;
    }
    return qv_tbuf_put(b, s + run, len - run);
}

static int printable_byte(unsigned b)
{
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

/* The non-printable bytes are 0..32 (k = 0..32), 127..160 (k = 33..66) and 173 (k = 67); the k-th
 * of them (in byte order) maps to code point 256 + k. */
uint32_t qv_bytelevel_cp(unsigned char byte)
{
    if (printable_byte(byte)) return byte;
    if (byte <= 32) return 256u + byte;
    if (byte <= 160) return 256u + 33u + (byte - 127u);
    return 256u + 67u;
}

int qv_bytelevel_byte(uint32_t cp)
{
    if (cp < 256) return printable_byte(cp) ? (int)cp : -1;
    if (cp <= 256 + 32) return (int)(cp - 256);
    if (cp <= 256 + 66) return (int)(cp - 256 - 33 + 127);
    if (cp == 256 + 67) return 173;
    return -1;
}
