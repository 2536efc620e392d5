/* Progress bar on stderr (progress.h). */
#define _POSIX_C_SOURCE 200809L
#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double qv_progress_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* "1h02m", "3m05s", "12s": short enough to keep the line under 80 columns */
static void fmt_duration(char *buf, int cap, double s)
{
    if (!(s >= 0) || s > 359999) {
        snprintf(buf, (size_t)cap, "--");
        return;
    }
    int t = (int)(s + 0.5); /* <= 359999: at most "99h59m" */
    if (t >= 3600) snprintf(buf, (size_t)cap, "%dh%02dm", t / 3600 % 100, t / 60 % 60);
    else if (t >= 60) snprintf(buf, (size_t)cap, "%dm%02ds", t / 60 % 60, t % 60);
    else snprintf(buf, (size_t)cap, "%ds", t % 60);
}

void qv_progress_format(char *buf, int cap, const char *label, const char *unit, int64_t done,
                        int64_t total, double elapsed)
{
    enum { WIDTH = 30 };
    char bar[WIDTH + 1];
    double f = total > 0 ? (double)done / (double)total : 0;
    if (f < 0) f = 0;
    if (f > 1) f = 1;
    int full = (int)(f * WIDTH);
    for (int i = 0; i < WIDTH; i++) bar[i] = i < full ? '#' : '.';
    bar[WIDTH] = 0;
    char el[32], eta[32];
    fmt_duration(el, sizeof el, elapsed);
    /* the ETA assumes the remaining items cost what the finished ones did on average */
    fmt_duration(eta, sizeof eta, done > 0 ? elapsed * (double)(total - done) / (double)done : -1);
    snprintf(buf, (size_t)cap, "%s [%s] %lld/%lld%s%s %3d%%  %s elapsed, ETA %s", label ? label : "", bar,
             (long long)done, (long long)total, unit && *unit ? " " : "", unit ? unit : "", (int)(f * 100), el, eta);
}

void qv_progress_init(qv_progress *p, const char *label, const char *unit)
{
    p->enabled = isatty(STDERR_FILENO);
    p->label = label;
    p->unit = unit;
    p->t0 = qv_progress_now();
    p->last_draw = -1;
    p->drawn = 0;
}

void qv_progress_update(qv_progress *p, int64_t done, int64_t total)
{
    if (!p->enabled) return;
    double now = qv_progress_now();
    if (done < total && p->last_draw >= 0 && now - p->last_draw < 0.1) return;
    p->last_draw = now;
    char line[160];
    qv_progress_format(line, sizeof line, p->label, p->unit, done, total, now - p->t0);
    fprintf(stderr, "\r%s\033[K", line); /* \033[K: erase what a longer earlier line left */
    fflush(stderr);
    p->drawn = 1;
}

void qv_progress_finish(qv_progress *p)
{
    if (!p->enabled || !p->drawn) return;
    fprintf(stderr, "\r\033[K");
    fflush(stderr);
    p->drawn = 0;
}

void qv_progress_hook(void *user, int64_t done, int64_t total)
{
    qv_progress_update((qv_progress *)user, done, total);
}
