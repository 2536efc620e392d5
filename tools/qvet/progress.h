/* A progress bar on stderr with an ETA, for long commands (ppl, compare, quantize, ...).
 * CLI.md: drawn only when stderr is a TTY; otherwise every call is a no-op, so logs and CI
 * output never hold carriage returns. Not thread-safe: call from the thread that drives work. */
#ifndef QVET_PROGRESS_H
#define QVET_PROGRESS_H

#include <stdint.h>

typedef struct {
    int enabled;        /* stderr is a TTY */
    const char *label;  /* printed before the bar, e.g. "ppl" */
    const char *unit;   /* what is counted, e.g. "chunks" */
    double t0;          /* monotonic seconds at init */
    double last_draw;   /* throttles redraws to ~10 per second */
    int drawn;          /* a line is on screen (finish clears it) */
} qv_progress;

/* Starts the clock; enables drawing iff isatty(stderr). */
void qv_progress_init(qv_progress *p, const char *label, const char *unit);
/* Redraws "label [#####.....] done/total unit  elapsed  ETA" (always at done == total). */
void qv_progress_update(qv_progress *p, int64_t done, int64_t total);
/* Clears the bar's line so the command's summary starts on a clean line. */
void qv_progress_finish(qv_progress *p);
/* Adapter with the signature of the evals' progress hook (qv_progress_fn): user is a qv_progress. */
void qv_progress_hook(void *user, int64_t done, int64_t total);

/* Monotonic clock in seconds (for the commands' timings). */
double qv_progress_now(void);
/* Pure formatting, exposed for tests: writes the bar line (no "\r") into buf. */
void qv_progress_format(char *buf, int cap, const char *label, const char *unit, int64_t done,
                        int64_t total, double elapsed);

#endif
