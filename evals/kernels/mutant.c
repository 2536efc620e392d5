/* The mutant selector (include/qvet/mutant.h). */
#include <stdlib.h>
#include <string.h>

#include "qvet/mutant.h"

static const qv_mutant_info catalog[] = {
#define QV_MUTANT(id, what, targets, gpu) {#id, what, targets, gpu},
#include "evals/kernels/mutants.def"
#undef QV_MUTANT
};

static int active = -1;

int qv_mutants_built(void)
{
#ifdef QV_MUTANTS
    return 1;
#else
    return 0;
#endif
}

const qv_mutant_info *qv_mutant_catalog(int *n)
{
    *n = QV_MUT_COUNT;
    return catalog;
}

qv_status qv_mutant_set(const char *id)
{
    if (!id || !*id) {
        active = -1;
        return QV_OK;
    }
    if (!qv_mutants_built())
        return qv_fail(QV_ERR_USAGE, "mutant '%s': this build carries no mutants (configure with -DQV_MUTANTS=ON)", id);
    for (int i = 0; i < QV_MUT_COUNT; i++)
        if (strcmp(catalog[i].id, id) == 0) {
            active = i;
            return QV_OK;
        }
    return qv_fail(QV_ERR_USAGE, "unknown mutant '%s' (see evals/kernels/mutants.def)", id);
}

qv_status qv_mutant_from_env(void)
{
    return qv_mutant_set(getenv("QV_MUTANT"));
}

int qv_mutant_active(void) { return active; }
