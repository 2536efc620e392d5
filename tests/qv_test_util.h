/* Helpers shared by the Check suites: seeded RNG, paths to fixtures, running the qvet binary. */
#ifndef QV_TEST_UTIL_H
#define QV_TEST_UTIL_H

#include <check.h>
#include <stdint.h>
#include <stdio.h>

/* Exit code ctest reads as "skipped" (SKIP_RETURN_CODE). */
#define QV_TEST_SKIP 77

/* splitmix64: seeded, portable, printed on failure */
typedef struct { uint64_t s; } qv_test_rng;
uint64_t qv_test_next(qv_test_rng *r);
double qv_test_uniform(qv_test_rng *r); /* [0,1) */
double qv_test_normal(qv_test_rng *r);

/* $QV_SOURCE_DIR (set by ctest), or "." */
const char *qv_test_source_dir(void);
/* ../shared next to the checkout, or NULL if absent (tests that need it skip visibly) */
const char *qv_test_shared_dir(void);
/* path to the qvet binary ($QVET) */
const char *qv_test_qvet(void);
/* Runs `qvet <args>` through sh; returns its exit code; stdout/stderr go into malloc'd strings
 * (caller frees) when out/err are non-NULL. */
int qv_test_run_qvet(const char *args, char **out, char **err);
/* A fresh temp directory (malloc'd path). */
char *qv_test_tmpdir(void);

/* Runs a suite, prints results, returns the process exit code (0 ok, 1 failures). */
int qv_test_main(Suite *s);

#endif
