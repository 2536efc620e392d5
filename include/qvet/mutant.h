/* Planted bugs for the gate's self-test (evals/kernels/mutants.def, docs/gate.md). Compiled in
 * only with -DQV_MUTANTS=ON; in every other build QV_MUT(x) is the constant 0 and no mutant code
 * exists. One mutant is active at a time, chosen by id at run time (qv_mutant_set or the
 * environment variable QV_MUTANT=<id>). */
#ifndef QVET_MUTANT_H
#define QVET_MUTANT_H

#include "qvet/status.h"

typedef enum {
#define QV_MUTANT(id, what, targets, gpu) QV_MUT_##id,
#include "evals/kernels/mutants.def"
#undef QV_MUTANT
    QV_MUT_COUNT
} qv_mutant_id;

typedef struct {
    const char *id, *what, *targets;
    int gpu; /* 1: also planted in the GPU kernels (gpu/qv_mutant_dev.cuh) */
} qv_mutant_info;

/* 1 when the build carries mutants. */
int qv_mutants_built(void);
/* The catalog (always available, so the docs and --self-test can list it). */
const qv_mutant_info *qv_mutant_catalog(int *n);
/* Activates a mutant by id ("" or NULL: none). QV_ERR_USAGE for an unknown id or when the build
 * carries no mutants. */
qv_status qv_mutant_set(const char *id);
/* Reads QV_MUTANT from the environment (once per call). */
qv_status qv_mutant_from_env(void);
/* The active mutant's index, -1 when none. */
int qv_mutant_active(void);

#ifdef QV_MUTANTS
#define QV_MUT(id) (qv_mutant_active() == QV_MUT_##id)
#else
#define QV_MUT(id) 0
#endif

#endif
