/* The built-in synthetic Llama: a small deterministic model (seeded) whose weights and
 * activations carry the outlier structure QoQ exists for, so every command runs on a bare
 * machine. How the outliers are made: docs/synthetic.md. */
#ifndef QVET_SYNTH_H
#define QVET_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "qvet/model.h"

typedef enum { QV_SYNTH_TINY = 0, QV_SYNTH_SMALL, QV_SYNTH_LLAMA3_8B_SHAPE } qv_synth_preset;

/* "tiny" | "small" | "llama3-8b-shape" -> preset; -1 if unknown */
int qv_synth_preset_from_name(const char *name, qv_synth_preset *p);
const char *qv_synth_preset_name(qv_synth_preset p);

/* The three files of the HF folder, in memory (malloc'd; caller frees with qv_synth_files_free). */
typedef struct {
    char *config_json;
    unsigned char *safetensors; size_t safetensors_size;
    char *tokenizer_json;
} qv_synth_files;

qv_status qv_synth_build(qv_synth_preset p, uint64_t seed, qv_synth_files *out);
void qv_synth_files_free(qv_synth_files *f);
/* Writes config.json, model.safetensors, tokenizer.json into dir (created if needed; atomic). */
qv_status qv_synth_write(qv_synth_preset p, uint64_t seed, const char *dir);
/* Opens the synthetic model directly from memory. */
qv_status qv_synth_open(qv_synth_preset p, uint64_t seed, qv_model **out);

/* The byte-level BPE shipped with the synthetic model: trained deterministically on qvet's own
 * text (ref/synth/synth_text.c) to `vocab_size` ids (0 = bos, 1 = eos, 2..257 bytes). */
qv_status qv_synth_tokenizer_json(int vocab_size, char **out);

#endif
