/* Internals shared by evals/longbench_*.c: code-point strings and the Python character classes
 * (generated into longbench_unicode.c by tools/gen_longbench_unicode.py). */
#ifndef QVET_LONGBENCH_INTERNAL_H
#define QVET_LONGBENCH_INTERNAL_H
#include <stddef.h>
#include <stdint.h>

#include "qvet/longbench.h"

typedef struct { uint32_t lo, hi; } qv_lb_range;
typedef struct { uint32_t cp; uint8_t n; uint32_t out[3]; } qv_lb_lower_entry;

extern const qv_lb_range qv_lb_space_ranges[], qv_lb_word_ranges[], qv_lb_digit_ranges[],
    qv_lb_case_ignorable_ranges[], qv_lb_cased_ranges[];
extern const size_t qv_lb_space_count, qv_lb_word_count, qv_lb_digit_count,
    qv_lb_case_ignorable_count, qv_lb_cased_count;
extern const qv_lb_lower_entry qv_lb_lower_table[];
extern const size_t qv_lb_lower_count;

/* A Python str: a growable array of code points. */
typedef struct { uint32_t *cp; size_t n, cap; } qv_lb_str;

qv_status qv_lb_str_push(qv_lb_str *s, uint32_t c);
void qv_lb_str_free(qv_lb_str *s);
/* Strict UTF-8 -> code points (what Python's utf-8 codec accepts). `what` names the text in errors. */
qv_status qv_lb_decode(const char *utf8, size_t len, const char *what, qv_lb_str *out);

int qv_lb_is_space(uint32_t c); /* str.isspace(): str.split() separators */
int qv_lb_is_word(uint32_t c);  /* re's \w on str patterns */
int qv_lb_is_digit(uint32_t c); /* re's \d on str patterns */

/* Python str.lower(), final-sigma rule included. */
qv_status qv_lb_lower(const qv_lb_str *in, qv_lb_str *out);

/* A token: a slice [off, off+len) of some code-point array. */
typedef struct { size_t off, len; } qv_lb_tok;
/* str.split() with no argument: runs of whitespace separate, no empty tokens. Caller frees *toks. */
qv_status qv_lb_split_ws(const uint32_t *s, size_t n, qv_lb_tok **toks, size_t *ntok);

/* Python's round(x) on a float (ties to even), and difflib-based fuzz.ratio pieces. */
#endif
