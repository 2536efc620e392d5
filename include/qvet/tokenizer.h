/* Hugging Face tokenizer.json in C: load, encode, decode, with the same ids as the `tokenizers`
 * library (checked against fixtures it generated: tests/fixtures/tokenizer, docs/tokenizer.md).
 *
 * Supported: model BPE (byte-level as in GPT-2 / Llama-3 / Qwen2 / SmolLM, and SentencePiece-style
 * with byte_fallback as in Llama-2), added/special tokens, normalizers Prepend / Replace(String) /
 * NFC (on text without code points >= U+0300 only) / Sequence, pre-tokenizers Split / ByteLevel /
 * Metaspace / Sequence, decoders ByteLevel / Replace / ByteFallback / Fuse / Strip / Metaspace /
 * Sequence, post-processors TemplateProcessing / ByteLevel / Sequence (only to find the BOS).
 * Anything else is refused at load time with QV_ERR_UNSUPPORTED naming the component, never
 * tokenized approximately.
 *
 * A qv_tok caches the BPE of words it has seen: encoding mutates it, so one tokenizer must not be
 * used by two threads at once. */
#ifndef QVET_TOKENIZER_H
#define QVET_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "qvet/status.h"

typedef struct qv_tok qv_tok;

/* Loads a tokenizer.json. Errors name the file: QV_ERR_IO (cannot read), QV_ERR_INPUT (bad JSON,
 * wrong types, merges naming unknown tokens, ...), QV_ERR_UNSUPPORTED (a component not handled). */
qv_status qv_tok_load_file(const char *path, qv_tok **tok);
/* Same from text in memory; `label` names it in error messages. */
qv_status qv_tok_load_json(const char *text, size_t len, const char *label, qv_tok **tok);
void qv_tok_free(qv_tok *tok);

/* Encodes UTF-8 text (QV_ERR_INPUT if it is not valid UTF-8) into a malloc'd id array (caller
 * frees; *ids may be NULL when *n == 0). Added/special tokens written in the text are recognised,
 * as the `tokenizers` library does even with add_special_tokens=False. add_bos != 0 prepends the
 * special tokens the post-processor's single-sequence template puts before the text (nothing if
 * it has none), i.e. what add_special_tokens=True adds in front. */
qv_status qv_tok_encode(qv_tok *tok, const char *text, size_t len, int add_bos, int32_t **ids, size_t *n);

/* Decodes ids to a malloc'd NUL-terminated UTF-8 string (special tokens included, as
 * decode(ids, skip_special_tokens=False)); invalid byte sequences become U+FFFD as the library
 * does. QV_ERR_INPUT for an id outside [0, vocab size) or with no token. */
qv_status qv_tok_decode(const qv_tok *tok, const int32_t *ids, size_t n, char **text, size_t *len);

/* 1 if id is an added token marked "special" (what decode(..., skip_special_tokens=True) drops
 * before the decoder chain runs), else 0. */
int qv_tok_is_special(const qv_tok *tok, int32_t id);

/* 1 + the largest id of the vocabulary and the added tokens. */
int32_t qv_tok_vocab_size(const qv_tok *tok);
/* The BOS id that add_bos inserts first, or -1 when the post-processor adds none. */
int32_t qv_tok_bos_id(const qv_tok *tok);
/* The end-of-text id: a special token the template appends, else the special token named
 * "</s>", "<|end_of_text|>" or "<|endoftext|>", else -1. */
int32_t qv_tok_eos_id(const qv_tok *tok);
/* The token's string as stored in tokenizer.json (NUL-terminated), or NULL for an unused id. */
const char *qv_tok_token_str(const qv_tok *tok, int32_t id);

#endif
