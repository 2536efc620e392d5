// Device side of the gate's planted bugs (evals/kernels/mutants.def, include/qvet/mutant.h,
// docs/gate.md "Mutation self-test"). Only in -DQV_MUTANTS=ON builds: there QV_DMUT(id) reads a
// __constant__ copy of the host's selection (qv_mutant_set / QV_MUTANT=<id>, one id at a time), so
// one build carries every mutant and a run picks one. In every other build QV_DMUT(id) is the
// constant false and QV_DMUT_SYNC() nothing: the branches compile away and the release kernels are
// the same code as without this header.
//
// The build has no relocatable device code, so each .cu that plants a mutant has its own copy of
// the constant and must call QV_DMUT_SYNC() in its host entry before launching (a copy to the
// device only when the selection changed since that file's last launch; device 0's context).
#ifndef QV_MUTANT_DEV_CUH
#define QV_MUTANT_DEV_CUH

#ifdef QV_MUTANTS
#include "qv_cuda_check.h"

extern "C" {
#include "qvet/mutant.h"
}

static __constant__ int qv_dmut_active = -1; // -1: none (0 is the first catalog entry)
#define QV_DMUT(id) (qv_dmut_active == QV_MUT_##id)

static inline qv_status qv_dmut_sync(void)
{
    static int on_device = -1; // what this file's constant holds
    int a = qv_mutant_active();
    if (a != on_device) {
        QV_CUDA_TRY(cudaMemcpyToSymbol(qv_dmut_active, &a, sizeof a));
        on_device = a;
    }
    return QV_OK;
}
#define QV_DMUT_SYNC() QV_TRY(qv_dmut_sync())
#else
#define QV_DMUT(id) false
#define QV_DMUT_SYNC() ((void)0)
#endif

#endif
