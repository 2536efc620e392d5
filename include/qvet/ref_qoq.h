/* ref-qoq internals that tests and benchmarks reach (the engine itself is opened by name:
 * qv_engine_open("ref-qoq", model, &opts, &e); include/qvet/engine.h). */
#ifndef QVET_REF_QOQ_H
#define QVET_REF_QOQ_H

#include "qvet/engine.h"
#include "qvet/qmodel.h"

/* Called after every linear layer with its FP32 input x [T, K] (as the engine holds it before
 * quantizing) and its output y [T, N] (FP16 values). id: qv_qlinear_id, 7 = LM head (layer -1). */
typedef void (*qv_ref_qoq_probe_fn)(void *user, int layer, int id, const float *x, int T, int K, const float *y,
                                    int N);
void qv_ref_qoq_set_probe(qv_engine *e, qv_ref_qoq_probe_fn fn, void *user);
/* The quantized model the engine runs (owned by the engine). */
const qv_qmodel *qv_ref_qoq_qmodel(const qv_engine *e);
/* Ablation: A8 scales per tensor (one amax over the whole batch's rows) instead of per token. */
void qv_ref_qoq_set_per_tensor_a8(qv_engine *e, int on);
/* Opens ref-qoq over a caller's qmodel (not owned; must outlive the engine) instead of
 * opts->quantized_path or RTN. */
qv_status qv_ref_qoq_open_qmodel(const qv_model *model, qv_qmodel *qm, const qv_engine_opts *o, qv_engine **out);

#endif
