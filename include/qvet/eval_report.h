/* validate's report: thresholds (versioned JSON) applied to compare + niah summaries, and one
 * self-contained HTML page (inline SVG, no scripts, no external resources). */
#ifndef QVET_EVAL_REPORT_H
#define QVET_EVAL_REPORT_H

#include "qvet/status.h"

struct cJSON;
extern const char qv_thresholds_default_json[];

/* Parses and checks a thresholds file (schema "qvet.thresholds", version 1; each entry an object
 * with "max" or "min" and "why"). text NULL: the shipped defaults. */
qv_status qv_thresholds_load(const char *text, const char *label, struct cJSON **out);

/* Writes report.html for a validate report (the object written as report.json). */
qv_status qv_report_html(const struct cJSON *report, const char *path);

#endif
