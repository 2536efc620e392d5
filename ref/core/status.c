/* Thread-local error message behind qv_status (see include/qvet/status.h). */
#include "qvet/status.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QV_ERRMSG_MAX 2048
static _Thread_local char qv_errmsg[QV_ERRMSG_MAX];

qv_status qv_fail(qv_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(qv_errmsg, sizeof qv_errmsg, fmt, ap);
    va_end(ap);
    return st;
}

qv_status qv_fail_prefix(qv_status st, const char *fmt, ...)
{
    char prefix[512], old[QV_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, qv_errmsg, sizeof old);
    /* truncation of an over-long message is acceptable; build it piecewise to say so */
    size_t n = strlen(prefix);
    if (n > sizeof qv_errmsg - 3) n = sizeof qv_errmsg - 3;
    memcpy(qv_errmsg, prefix, n);
    memcpy(qv_errmsg + n, ": ", 2);
    size_t m = strlen(old);
    if (m > sizeof qv_errmsg - n - 3) m = sizeof qv_errmsg - n - 3;
    memcpy(qv_errmsg + n + 2, old, m);
    qv_errmsg[n + 2 + m] = '\0';
    return st;
}

const char *qv_last_error(void) { return qv_errmsg; }
void qv_clear_error(void) { qv_errmsg[0] = '\0'; }

const char *qv_status_name(qv_status st)
{
    switch (st) {
    case QV_OK: return "ok";
    case QV_ERR_USAGE: return "usage error";
    case QV_ERR_INPUT: return "input error";
    case QV_ERR_IO: return "i/o error";
    case QV_ERR_UNSUPPORTED: return "unsupported";
    case QV_ERR_CHECK: return "check failed";
    case QV_ERR_NOMEM: return "out of memory";
    case QV_ERR_CUDA: return "cuda error";
    case QV_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

int qv_status_exit_code(qv_status st)
{
    switch (st) {
    case QV_OK: return 0;
    case QV_ERR_CHECK: return 1;
    case QV_ERR_USAGE:
    case QV_ERR_INPUT:
    case QV_ERR_IO:
    case QV_ERR_UNSUPPORTED: return 2;
    default: return 3;
    }
}

int qv_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}

void *qv_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) qv_fail(QV_ERR_NOMEM, "out of memory allocating %zu bytes", n);
    return p;
}

void *qv_calloc(size_t count, size_t size)
{
    size_t n;
    if (qv_mul_size(count, size, &n) != 0) {
        qv_fail(QV_ERR_NOMEM, "allocation size overflow: %zu x %zu", count, size);
        return NULL;
    }
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) qv_fail(QV_ERR_NOMEM, "out of memory allocating %zu bytes", n);
    return p;
}
