/* Small helpers shared by the JSON-based parsers in ref/io (safetensors header, index,
 * config.json): UTF-8 validation and strict integer reads from cJSON numbers. Internal. */
#ifndef QV_IO_JSON_UTIL_H
#define QV_IO_JSON_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

/* Returns -1 if s[0..n) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF),
 * else the byte offset of the first bad sequence. */
long qv_utf8_first_invalid(const unsigned char *s, size_t n);

/* 0 and *out if item is a JSON number holding an integer in [0, 2^53] (beyond that a double
 * no longer represents every integer, so the value read may not be the value written). */
int qv_json_get_u53(const cJSON *item, uint64_t *out);

/* "string", "number", "object", ... for messages */
const char *qv_json_type_name(const cJSON *item);

/* Line and column (1-based) of byte offset `off` in text, for parse-error messages. */
void qv_json_line_col(const char *text, size_t off, int *line, int *col);

#endif
