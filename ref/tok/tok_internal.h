/* Internal pieces of the tokenizer (the files of ref/tok); the public API is include/qvet/tokenizer.h. */
#ifndef QV_TOK_INTERNAL_H
#define QV_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "qvet/status.h"
#include "qvet/tokenizer.h"

/* ---- growable byte buffer and id vector ---- */
typedef struct { char *p; size_t n, cap; } qv_tbuf;
qv_status qv_tbuf_put(qv_tbuf *b, const void *s, size_t n);
typedef struct { int32_t *p; size_t n, cap; } qv_tids;
qv_status qv_tids_push(qv_tids *v, int32_t id);

/* ---- hash maps: byte string -> int64, and uint64 -> int64 (open addressing) ---- */
typedef struct { char *key; uint32_t len; uint32_t hash; int64_t val; } qv_smap_ent;
typedef struct { qv_smap_ent *e; size_t cap, count; } qv_smap;
/* Copies the key. Replaces the value if the key exists. */
qv_status qv_smap_put(qv_smap *m, const char *key, size_t len, int64_t val);
/* 1 and *val if found, else 0. */
int qv_smap_get(const qv_smap *m, const char *key, size_t len, int64_t *val);
void qv_smap_free(qv_smap *m);

typedef struct { uint64_t key; int64_t val; uint8_t used; } qv_umap_ent;
typedef struct { qv_umap_ent *e; size_t cap, count; } qv_umap;
qv_status qv_umap_put(qv_umap *m, uint64_t key, int64_t val);
int qv_umap_get(const qv_umap *m, uint64_t key, int64_t *val);
void qv_umap_free(qv_umap *m);

/* ---- UTF-8 ---- */
/* Returns the byte offset of the first invalid sequence, or len if the text is valid UTF-8. */
size_t qv_utf8_valid_prefix(const unsigned char *s, size_t len);
/* Length of the (valid) UTF-8 character starting at s. */
int qv_utf8_len(unsigned char c);
uint32_t qv_utf8_decode(const unsigned char *s, int *len);
int qv_utf8_encode(uint32_t cp, char *out);
/* Appends s to b, replacing each maximal invalid subsequence by U+FFFD (as Rust's
 * String::from_utf8_lossy, which the library uses). */
qv_status qv_utf8_lossy_append(qv_tbuf *b, const unsigned char *s, size_t len);
/* GPT-2's byte -> code point map (printable bytes map to themselves, the rest to 256 + k). */
uint32_t qv_bytelevel_cp(unsigned char byte);
/* Inverse: byte for a code point, or -1 if the code point is not in the map. */
int qv_bytelevel_byte(uint32_t cp);

/* ---- components ---- */
enum { QV_NORM_PREPEND, QV_NORM_REPLACE, QV_NORM_NFC };
typedef struct { int kind; char *a; size_t alen; char *b; size_t blen; } qv_norm_step;

enum { QV_SPLIT_REMOVED, QV_SPLIT_ISOLATED, QV_SPLIT_MERGED_PREV, QV_SPLIT_MERGED_NEXT, QV_SPLIT_CONTIGUOUS };
enum { QV_PRE_SPLIT, QV_PRE_BYTELEVEL, QV_PRE_METASPACE };
enum { QV_PREPEND_ALWAYS, QV_PREPEND_FIRST, QV_PREPEND_NEVER };
typedef struct {
    int kind;
    pcre2_code *re;              /* Split pattern; ByteLevel with use_regex: the GPT-2 pattern */
    pcre2_match_data *md;
    int behavior, invert;        /* Split */
    int add_prefix_space;        /* ByteLevel */
    char repl[8]; size_t repl_len; int prepend_scheme, split; /* Metaspace */
} qv_pre_step;

enum { QV_DEC_BYTELEVEL, QV_DEC_REPLACE, QV_DEC_BYTEFALLBACK, QV_DEC_FUSE, QV_DEC_STRIP, QV_DEC_METASPACE };
typedef struct {
    int kind;
    char *a; size_t alen; char *b; size_t blen; /* Replace: a -> b; Strip: a = content */
    int start, stop;                            /* Strip */
    int prepend_scheme;                         /* Metaspace */
} qv_dec_step;

typedef struct {
    char *content; size_t len;  /* as matched (normalized by the normalizer when normalized) */
    int32_t id;
    int special, single_word, lstrip, rstrip, normalized;
} qv_added_tok;

struct qv_tok {
    char *label;
    /* model: BPE */
    qv_smap vocab;               /* token string -> id (model vocab and added tokens) */
    char **id_str;               /* id -> string (NULL: unused id) */
    uint32_t *id_len;
    int32_t n_ids;
    qv_umap merges;              /* (left id << 32 | right id) -> (rank << 32 | merged id) */
    int byte_fallback, ignore_merges, fuse_unk;
    int32_t unk_id;              /* -1: none */
    int32_t byte_tok[256];       /* id of "<0xXX>" or -1 */
    uint8_t *is_byte_tok;        /* per id: 1 + byte value if the token is "<0xXX>" */
    qv_added_tok *added; int n_added;
    pcre2_code *word_re;         /* single_word boundaries: a Unicode word character (as regex \w) */
    pcre2_match_data *word_md;
    uint8_t added_first[256];    /* bit 1 / 2: some normalized=false / true added token starts with this byte */
    qv_norm_step *norm; int n_norm;
    qv_pre_step *pre; int n_pre;
    qv_dec_step *dec; int n_dec; int has_decoder;
    int32_t bos[8]; int n_bos;
    int32_t eos;
    /* per-word cache: word bytes -> (offset << 16 | count) into cache_ids */
    qv_smap cache;
    qv_tids cache_ids;
};

/* parsing of the pipeline components (tok_parse.c) */
struct cJSON;
qv_status qv_tok_parse_normalizer(qv_tok *t, const struct cJSON *j);
qv_status qv_tok_parse_pretok(qv_tok *t, const struct cJSON *j);
qv_status qv_tok_parse_decoder(qv_tok *t, const struct cJSON *j);
qv_status qv_tok_parse_post(qv_tok *t, const struct cJSON *j);
qv_status qv_tok_compile(const qv_tok *t, const char *pattern, size_t len, int literal, pcre2_code **re,
                         pcre2_match_data **md);

/* ---- the pieces a text goes through: spans of one buffer ---- */
typedef struct { size_t off, len; int orig0; } qv_span;
typedef struct { qv_tbuf buf; qv_span *s; size_t n, cap; } qv_pieces;
qv_status qv_pieces_add(qv_pieces *p, const char *s, size_t len, int orig0);
void qv_pieces_free(qv_pieces *p);

/* Normalizes src into out (tok_pretok.c). */
qv_status qv_tok_normalize(const qv_tok *t, const char *src, size_t len, qv_tbuf *out);
/* Pre-tokenizes one piece into words appended to `words`. */
qv_status qv_tok_pretokenize(const qv_tok *t, const char *s, size_t len, int orig0, qv_pieces *words);
/* BPE of one word (tok_bpe.c), ids appended to out. */
qv_status qv_tok_bpe_word(qv_tok *t, const char *w, size_t len, qv_tids *out);

#endif
