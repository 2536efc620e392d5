/* The HTML reports' text buffer (evals/html_buf.h). */
#include "html_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void qv_sb(qv_sbuf *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0 || s->oom) return;
    if (s->n + (size_t)k + 1 > s->cap) {
        size_t cap = (s->cap + (size_t)k + 1) * 2;
        char *b = realloc(s->b, cap);
        if (!b) {
            s->oom = 1;
            return;
        }
        s->b = b, s->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(s->b + s->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    s->n += (size_t)k;
}

void qv_sb_esc(qv_sbuf *s, const char *t)
{
    for (; t && *t; t++) {
        if (*t == '<') qv_sb(s, "&lt;");
        else if (*t == '>') qv_sb(s, "&gt;");
        else if (*t == '&') qv_sb(s, "&amp;");
        else if (*t == '"') qv_sb(s, "&quot;");
        else if (*t == '\'') qv_sb(s, "&#39;");
        else qv_sb(s, "%c", *t);
    }
}
