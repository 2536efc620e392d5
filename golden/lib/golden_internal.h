/* Shared inside golden/lib (and with the libFuzzer harness): not part of the public API. */
#ifndef QV_GOLDEN_INTERNAL_H
#define QV_GOLDEN_INTERNAL_H

#include <cJSON.h>
#include <stddef.h>

#include "qvet/golden.h"

/* Compares a pin's stored values exp with freshly produced ones got, key by key (strings exactly,
 * arrays value by value); logs each difference and copies the first into first (may be NULL).
 * Returns how many keys differ (new, changed or no longer produced). */
int qv_golden_diff(const cJSON *exp, const cJSON *got, qv_golden_log_fn log, void *user, char *first, size_t nfirst);

/* qv_golden_check_fp32 on an already parsed manifest of the entry in gdir. */
qv_status qv_golden_check_fp32_manifest(const char *gdir, const qv_golden_manifest *man, const qv_model *m,
                                        qv_golden_log_fn log, void *user, double *worst);

/* printf-style line to log (nothing when log is NULL); lines are cut at 1023 bytes. */
void qv_golden_say(qv_golden_log_fn log, void *user, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
