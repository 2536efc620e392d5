/* Shared by test_tokenizer.c and test_tokenizer_shared.c: replays one fixture file written by
 * tools/gen_tokenizer_fixtures.py (expected ids from the Hugging Face `tokenizers` library)
 * through qvet's tokenizer and counts exact matches. Header-only: each test is one .c file. */
#ifndef QV_TOK_FIXTURE_H
#define QV_TOK_FIXTURE_H

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qv_test_util.h"
#include "qvet/fileio.h"
#include "qvet/tokenizer.h"

/* ---- SHA-256 (FIPS 180-4), for the id digest of whole files ---- */
static const uint32_t tf_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
    0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
    0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
    0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};
#define TF_ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void tf_sha256_block(uint32_t h[8], const unsigned char *p)
{
    uint32_t w[64], a[8];
    for (int i = 0; i < 16; i++) w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = TF_ROR(w[i - 15], 7) ^ TF_ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = TF_ROR(w[i - 2], 17) ^ TF_ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(a, h, sizeof a);
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = a[7] + (TF_ROR(a[4], 6) ^ TF_ROR(a[4], 11) ^ TF_ROR(a[4], 25)) + ((a[4] & a[5]) ^ (~a[4] & a[6])) + tf_k[i] + w[i];
        uint32_t t2 = (TF_ROR(a[0], 2) ^ TF_ROR(a[0], 13) ^ TF_ROR(a[0], 22)) + ((a[0] & a[1]) ^ (a[0] & a[2]) ^ (a[1] & a[2]));
        memmove(a + 1, a, 7 * sizeof *a);
        a[4] += t1;
        a[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++) h[i] += a[i];
}

static void tf_sha256_hex(const unsigned char *d, size_t n, char out[65])
{
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    size_t i = 0;
    for (; i + 64 <= n; i += 64) tf_sha256_block(h, d + i);
    unsigned char last[128] = {0};
    size_t r = n - i;
    memcpy(last, d + i, r);
    last[r] = 0x80;
    size_t L = r + 9 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int k = 0; k < 8; k++) last[L - 1 - k] = (unsigned char)(bits >> (8 * k));
    tf_sha256_block(h, last);
    if (L == 128) tf_sha256_block(h, last + 64);
    for (int k = 0; k < 8; k++) snprintf(out + 8 * k, 9, "%08x", h[k]);
}

/* ids as little-endian int32, hashed */
static void tf_ids_sha256(const int32_t *ids, size_t n, char out[65])
{
    unsigned char *b = malloc(n * 4 + 1);
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++) b[4 * i + k] = (unsigned char)((uint32_t)ids[i] >> (8 * k));
    tf_sha256_hex(b, n * 4, out);
    free(b);
}

/* ---- fixture replay ---- */
typedef struct { int cases, matched, n_decode, decoded_ok, roundtrips; } tf_counts;

static cJSON *tf_load_json(const char *path)
{
    char *s = NULL;
    size_t n = 0;
    if (qv_read_file(path, (size_t)64 << 20, &s, &n) != QV_OK) return NULL;
    cJSON *j = cJSON_ParseWithLength(s, n);
    free(s);
    return j;
}

static char *tf_fixture_path(const char *name)
{
    char *dir = qv_path_join(qv_test_source_dir(), "tests/fixtures/tokenizer");
    char *p = qv_path_join(dir, name);
    free(dir);
    return p;
}

static int tf_ids_equal(const int32_t *got, size_t n, const cJSON *want)
{
    if ((size_t)cJSON_GetArraySize(want) != n) return 0;
    size_t i = 0;
    for (const cJSON *c = want->child; c; c = c->next, i++)
        if (got[i] != (int32_t)c->valuedouble) return 0;
    return 1;
}

static void tf_print_ids(const char *what, const int32_t *ids, size_t n)
{
    fprintf(stderr, "  %s (%zu):", what, n);
    for (size_t i = 0; i < n && i < 64; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 64 ? " ...\n" : "\n");
}

/* Encodes text and compares with want; returns 1 on an exact match (prints a diff otherwise). */
static int tf_check_encode(qv_tok *tok, const char *fx, const char *name, const char *text, size_t len, int bos,
                           const cJSON *want)
{
    int32_t *ids = NULL;
    size_t n = 0;
    qv_status st = qv_tok_encode(tok, text, len, bos, &ids, &n);
    int ok = st == QV_OK && tf_ids_equal(ids, n, want);
    if (!ok) {
        fprintf(stderr, "MISMATCH %s / %s%s: %s\n", fx, name, bos ? " (bos)" : "", st == QV_OK ? "" : qv_last_error());
        tf_print_ids("got ", ids, n);
        size_t wn = (size_t)cJSON_GetArraySize(want), i = 0;
        int32_t *w = malloc((wn + 1) * sizeof *w);
        for (const cJSON *c = want->child; c; c = c->next) w[i++] = (int32_t)c->valuedouble;
        tf_print_ids("want", w, wn);
        free(w);
    }
    free(ids);
    return ok;
}

/* Replays every case of one fixture file. shared: the shared-assets dir (NULL if absent). */
static tf_counts tf_run_fixture(const char *fname, const char *shared)
{
    tf_counts c = {0};
    char *path = tf_fixture_path(fname);
    cJSON *fx = tf_load_json(path);
    ck_assert_msg(fx != NULL, "%s: cannot read or parse the fixture", path);
    const cJSON *tj = cJSON_GetObjectItem(fx, "tokenizer");
    const cJSON *local = cJSON_GetObjectItem(tj, "fixture"), *sh = cJSON_GetObjectItem(tj, "shared");
    char *tpath = NULL;
    if (cJSON_IsString(local)) tpath = tf_fixture_path(local->valuestring);
    else if (cJSON_IsString(sh) && shared) tpath = qv_path_join(shared, sh->valuestring);
    ck_assert_msg(tpath != NULL, "%s: no tokenizer to load", fname);
    qv_tok *tok = NULL;
    qv_status st = qv_tok_load_file(tpath, &tok);
    ck_assert_msg(st == QV_OK, "%s: %s", tpath, qv_last_error());

    const cJSON *cases = cJSON_GetObjectItem(fx, "cases");
    for (const cJSON *k = cases ? cases->child : NULL; k; k = k->next) {
        const char *name = cJSON_GetObjectItem(k, "name")->valuestring;
        const char *text = cJSON_GetObjectItem(k, "text")->valuestring;
        const cJSON *ids = cJSON_GetObjectItem(k, "ids");
        c.cases++;
        c.matched += tf_check_encode(tok, fname, name, text, strlen(text), 0, ids);
        /* decoding HF's ids gives HF's decoded text; and the text itself where HF round-trips */
        size_t n = (size_t)cJSON_GetArraySize(ids), i = 0;
        int32_t *v = malloc((n + 1) * sizeof *v);
        for (const cJSON *x = ids->child; x; x = x->next) v[i++] = (int32_t)x->valuedouble;
        char *dec = NULL;
        size_t dl = 0;
        st = qv_tok_decode(tok, v, n, &dec, &dl);
        c.n_decode++;
        const char *want = cJSON_GetObjectItem(k, "decoded")->valuestring;
        if (st == QV_OK && dl == strlen(want) && memcmp(dec, want, dl) == 0) c.decoded_ok++;
        else fprintf(stderr, "DECODE MISMATCH %s / %s: got '%s' want '%s' %s\n", fname, name, dec ? dec : "",
                     want, st == QV_OK ? "" : qv_last_error());
        if (cJSON_IsTrue(cJSON_GetObjectItem(k, "roundtrip"))) {
            ck_assert_msg(dec && strcmp(dec, text) == 0, "%s / %s: decode(encode(s)) != s", fname, name);
            c.roundtrips++;
        }
        free(dec);
        free(v);
    }
    const cJSON *bos = cJSON_GetObjectItem(fx, "bos");
    for (const cJSON *k = bos ? bos->child : NULL; k; k = k->next) {
        const char *text = cJSON_GetObjectItem(k, "text")->valuestring;
        c.cases++;
        c.matched += tf_check_encode(tok, fname, cJSON_GetObjectItem(k, "name")->valuestring, text, strlen(text), 1,
                                     cJSON_GetObjectItem(k, "ids"));
    }
    const cJSON *slices = cJSON_GetObjectItem(fx, "slices");
    for (const cJSON *k = slices ? slices->child : NULL; k && shared; k = k->next) {
        char *fp = qv_path_join(shared, cJSON_GetObjectItem(k, "file")->valuestring);
        char *data = NULL;
        size_t len = 0;
        ck_assert_msg(qv_read_file(fp, (size_t)1 << 30, &data, &len) == QV_OK, "%s", qv_last_error());
        size_t a = (size_t)cJSON_GetObjectItem(k, "start")->valuedouble, b = (size_t)cJSON_GetObjectItem(k, "end")->valuedouble;
        ck_assert_msg(a <= b && b <= len, "%s: slice [%zu, %zu) outside the file of %zu bytes", fp, a, b, len);
        char name[64];
        snprintf(name, sizeof name, "slice [%zu, %zu)", a, b);
        c.cases++;
        c.matched += tf_check_encode(tok, fname, name, data + a, b - a, 0, cJSON_GetObjectItem(k, "ids"));
        free(data);
        free(fp);
    }
    const cJSON *whole = cJSON_GetObjectItem(fx, "whole");
    for (const cJSON *k = whole ? whole->child : NULL; k && shared; k = k->next) {
        char *fp = qv_path_join(shared, cJSON_GetObjectItem(k, "file")->valuestring);
        char *data = NULL;
        size_t len = 0;
        ck_assert_msg(qv_read_file(fp, (size_t)1 << 30, &data, &len) == QV_OK, "%s", qv_last_error());
        int32_t *ids = NULL;
        size_t n = 0;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        st = qv_tok_encode(tok, data, len, 0, &ids, &n);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ck_assert_msg(st == QV_OK, "%s", qv_last_error());
        double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        char hex[65];
        tf_ids_sha256(ids, n, hex);
        size_t want_n = (size_t)cJSON_GetObjectItem(k, "count")->valuedouble;
        int ok = n == want_n && strcmp(hex, cJSON_GetObjectItem(k, "sha256_ids_le32")->valuestring) == 0;
        printf("%s: whole %s: %zu bytes -> %zu ids in %.3f s (%.1f MB/s), %s HF (%zu ids, sha256 %s)\n", fname,
               cJSON_GetObjectItem(k, "file")->valuestring, len, n, secs, (double)len / secs / 1e6,
               ok ? "matches" : "DIFFERS FROM", want_n, hex);
        c.cases++;
        c.matched += ok;
        free(ids);
        free(data);
        free(fp);
    }
    printf("%s: %d/%d cases match HF ids; %d decodes match HF; %d round trips\n", fname, c.matched, c.cases,
           c.decoded_ok, c.roundtrips);
    qv_tok_free(tok);
    free(tpath);
    free(path);
    cJSON_Delete(fx);
    return c;
}

#endif
