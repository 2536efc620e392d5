/* A growable text buffer for the HTML reports (validate, trace): printf-style appends and HTML
 * escaping. An allocation failure sets `oom` and later appends do nothing; the writer checks it
 * once at the end. */
#ifndef QV_HTML_BUF_H
#define QV_HTML_BUF_H

#include <stddef.h>

typedef struct {
    char *b;
    size_t n, cap;
    int oom;
} qv_sbuf;

void qv_sb(qv_sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends t with & < > " ' escaped (safe in text and in quoted attributes). */
void qv_sb_esc(qv_sbuf *s, const char *t);

#endif
