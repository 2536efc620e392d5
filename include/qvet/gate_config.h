/* The gate's thresholds file (golden/gate.default.json, `qvet gate --config`; docs/gate.md
 * "Thresholds"). Every threshold is {"value": number, "why": string}; the parser checks that each
 * one the gate reads is present, so a gate run never compares against a missing value. */
#ifndef QVET_GATE_CONFIG_H
#define QVET_GATE_CONFIG_H

#include <stddef.h>

#include "qvet/status.h"

struct cJSON;

typedef struct {
    double version;                 /* "version" (0 when absent) */
    unsigned long long seed;        /* "seed" (1 when absent) */
    int model_tokens;               /* tokens per model-check sequence, in [2, 4096] */
    double model_kld_max, model_top1_min, smoothattn_logits_rel_max, model_gpu_kld_max;
    struct cJSON *doc;              /* the parsed file (owned): the --baseline rules read their
                                     * thresholds by key (evals/gate_baseline.c), all checked here */
} qv_gate_config;

/* Parses the text (len bytes, need not be NUL-terminated) of a thresholds file; path names it in
 * messages. QV_ERR_INPUT naming the file and the key for anything missing or malformed (out->doc
 * is then NULL); on success the caller frees with qv_gate_config_free. */
qv_status qv_gate_config_parse(const char *text, size_t len, const char *path, qv_gate_config *out);

/* Reads and parses the file at path. */
qv_status qv_gate_config_load(const char *path, qv_gate_config *out);

/* Frees doc; safe on a zeroed or already freed config. */
void qv_gate_config_free(qv_gate_config *c);

#endif
