/* ref-fp32 internals that tests and other engines reuse. The engine itself is reached through
 * qv_engine_open("ref-fp32", ...) (include/qvet/engine.h). */
#ifndef QVET_REF_FP32_H
#define QVET_REF_FP32_H

#include "qvet/model.h"

/* RoPE inverse frequencies [head_dim / 2] as transformers computes them in FP32 (default,
 * linear and llama3 rope_scaling). */
void qv_ref_fp32_rope_inv_freq(const qv_config *c, float *inv_freq);

#endif
