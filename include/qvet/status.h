/* qv_status: every library function reports errors by return code, never by abort (STYLE.md).
 * The message, naming the file / tensor / shape at fault, goes to a thread-local buffer read by
 * qv_last_error(); only main() decides to exit. The CLI maps statuses to exit codes (CLI.md):
 * QV_ERR_CHECK -> 1, QV_ERR_USAGE / QV_ERR_INPUT / QV_ERR_IO / QV_ERR_UNSUPPORTED -> 2,
 * QV_ERR_NOMEM / QV_ERR_INTERNAL / QV_ERR_CUDA -> 3. */
#ifndef QVET_STATUS_H
#define QVET_STATUS_H

#include <stddef.h>

typedef enum {
    QV_OK = 0,
    QV_ERR_USAGE,       /* bad flag or argument combination */
    QV_ERR_INPUT,       /* malformed or inconsistent input file / data (incl. NaN/Inf in inputs) */
    QV_ERR_IO,          /* file cannot be opened, read, mapped or written */
    QV_ERR_UNSUPPORTED, /* valid but not handled (a dtype, an architecture, no GPU) */
    QV_ERR_CHECK,       /* a computation failed a check: mismatch, overflow, NaN/Inf produced */
    QV_ERR_NOMEM,       /* allocation failed */
    QV_ERR_CUDA,        /* CUDA / cuBLAS runtime error */
    QV_ERR_INTERNAL     /* a bug in qvet */
} qv_status;

/* Sets the thread's error message (printf-style) and returns `st`, so callers can write
 * `return qv_fail(QV_ERR_INPUT, "%s: tensor '%s': ...", path, name);`. */
qv_status qv_fail(qv_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to the current message (adds context as an error travels up). */
qv_status qv_fail_prefix(qv_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

const char *qv_last_error(void);
void qv_clear_error(void);
const char *qv_status_name(qv_status st);
/* CLI exit code for a status (CLI.md). */
int qv_status_exit_code(qv_status st);

/* Allocation helpers that set QV_ERR_NOMEM with a message; sizes are checked for overflow. */
void *qv_malloc(size_t n);
void *qv_calloc(size_t count, size_t size);
/* a*b with overflow detection: returns 0 and sets *out, or -1 on overflow. */
int qv_mul_size(size_t a, size_t b, size_t *out);

#define QV_TRY(expr)                          \
    do {                                      \
        qv_status qv_try_st_ = (expr);        \
        if (qv_try_st_ != QV_OK) return qv_try_st_; \
    } while (0)

#endif
