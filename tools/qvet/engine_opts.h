/* The engine options every command that opens an engine takes (CLI.md "Common options"):
 * --quantized CKPT, --attn kv4|serve, --qserve-compat, --fp-kv, --fp-weights LAYERS,
 * --fp-acts LAYERS (LAYERS: "3", "0-7", "1,4-5" or "all"), --dtype fp16|bf16 (gpu-fp16 only). */
#ifndef QVET_ENGINE_OPTS_H
#define QVET_ENGINE_OPTS_H

#include "qvet/engine.h"

/* If argv[*i] is one of those options, applies it to o (consuming its value, advancing *i) and
 * returns 1; returns 0 if it is not one; on a bad value prints a usage error and returns -1. */
int qv_cli_engine_opt(const char *cmd, int argc, char **argv, int *i, qv_engine_opts *o);
/* --dtype other than fp16 with an engine other than gpu-fp16: prints a usage error and returns -1
 * (the command exits 2 before loading anything); 0 otherwise. */
int qv_cli_engine_dtype_check(const char *cmd, const char *engine, const qv_engine_opts *o);
/* "0-3,7" / "all" into a layer mask; -1 if malformed or a layer >= 256. */
int qv_cli_parse_layers(const char *s, qv_layer_mask *m);

#endif
