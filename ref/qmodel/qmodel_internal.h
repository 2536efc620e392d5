/* Shared between the files of ref/qmodel (not a public API). */
#ifndef QVET_QMODEL_INTERNAL_H
#define QVET_QMODEL_INTERNAL_H

#include "qvet/qmodel.h"
#include "qvet/safetensors.h"

qv_status qv_qmodel_new(int n_layers, qv_qformat fmt, int kv_bits, qv_qmodel **out);
void qv_qmodel_linear_shape(const qv_config *c, qv_qlinear_id id, int *N, int *K);
/* config.json text of a config (malloc'd), parseable by qv_config_parse. */
char *qv_qmodel_config_json(const qv_config *c);
char *qv_qmodel_tokenizer_text(const qv_model *m, qv_status *st);
/* A qv_model over f (taken, also on failure) holding the F16 FP parts only. */
qv_status qv_qmodel_build_fp_model(const char *label, qv_st_file *f, const char *config_json, const char *tok_json,
                                   qv_model **out);

#endif
