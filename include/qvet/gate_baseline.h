/* `qvet gate --baseline OLD.json` (docs/gate.md "Baseline"): compares each case's figures with the
 * same case of an earlier run's JSON (qvet.gate/1) and flags regressions beyond the thresholds of
 * the gate config (golden/gate.default.json, each with its why). The rules are a table: one
 * entry per figure (optionally per kind of case), so every accuracy figure the gate writes is
 * compared, and a figure the table does not name (inputs such as `rows`) is not.
 *
 * Pure functions (no I/O): tests/test_gate_baseline.c checks them without a GPU, including the
 * kernel-time rule that only a GPU run exercises end to end. */
#ifndef QVET_GATE_BASELINE_H
#define QVET_GATE_BASELINE_H

#include <cJSON.h>

#include "qvet/status.h"

typedef enum {
    QV_BL_ABS_INCREASE, /* lower is better: regressed when new > old + limit */
    QV_BL_ABS_DROP,     /* higher is better: regressed when new < old - limit */
    QV_BL_REL_INCREASE  /* lower is better: regressed when new > old * (1 + limit) and new - old > floor */
} qv_bl_rule;

typedef struct {
    const char *figure;        /* key in a case's "figures" */
    const char *case_contains; /* NULL: every case; else only cases whose name contains this */
    qv_bl_rule rule;
    const char *limit_key;     /* threshold key in the config's "thresholds" */
    const char *floor_key;     /* REL_INCREASE: absolute floor key, or NULL (floor 0) */
} qv_bl_spec;

/* One compared figure. change: new - old (absolute rules) or new / old - 1 (relative; +inf when
 * old is 0 and new is not). */
typedef struct {
    const char *figure;
    qv_bl_rule rule;
    double old_v, new_v, change, limit, floor;
    int regressed;
} qv_bl_item;

#define QV_BL_MAX_ITEMS 16

/* The rule table (first matching entry per figure wins). */
const qv_bl_spec *qv_bl_specs(int *n);

/* The rule itself: 1 when new_v regresses against old_v. NaN figures never regress (not
 * measured); a non-finite new value against a finite old one always does. *change as above. */
int qv_bl_regressed(qv_bl_rule rule, double old_v, double new_v, double limit, double floor, double *change);

/* Compares the figures of one case (new_figs, old_figs: the "figures" objects; either may be
 * NULL) under the config's thresholds object. Fills up to QV_BL_MAX_ITEMS items; returns how many
 * figures were compared. */
int qv_bl_compare_case(const char *case_name, const cJSON *new_figs, const cJSON *old_figs, const cJSON *thresholds,
                       qv_bl_item *items);

/* Checks that `old` (read from `path`) is a qvet.gate/1 report this run can be compared with:
 * schema, a "seed" equal to `seed` (kernel inputs are drawn from it), a "cases" array of objects
 * with string "case" and "group", "figures" (when present) an object of numbers / booleans.
 * QV_ERR_INPUT naming the file and what is wrong. Cases of group "baseline" (an earlier
 * comparison) are accepted and ignored. */
qv_status qv_bl_validate(const char *path, const cJSON *old, unsigned long long seed);

/* One line "kld +0.0035 (0.00182 -> 0.00532, allowed +0.002)" for an item. */
void qv_bl_describe(const qv_bl_item *it, char *buf, int n);

#endif
