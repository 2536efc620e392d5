/* Parsing of the engine options shared by commands (tools/qvet/engine_opts.h). */
#include "engine_opts.h"

#include <stdlib.h>
#include <string.h>

#include "cli.h"

int qv_cli_parse_layers(const char *s, qv_layer_mask *m)
{
    memset(m, 0, sizeof *m);
    if (!strcmp(s, "all")) {
        for (int l = 0; l < 64 * QV_LAYER_MASK_WORDS; l++) qv_layer_mask_set(m, l);
        return 0;
    }
    const char *p = s;
    while (*p) {
        char *end;
        long a = strtol(p, &end, 10), b;
        if (end == p || a < 0) return -1;
        p = end;
        b = a;
        if (*p == '-') {
            p++;
            b = strtol(p, &end, 10);
            if (end == p || b < a) return -1;
            p = end;
        }
        if (b >= 64 * QV_LAYER_MASK_WORDS) return -1;
        for (long l = a; l <= b; l++) qv_layer_mask_set(m, (int)l);
        if (*p == ',') p++;
        else if (*p) return -1;
    }
    return 0;
}

int qv_cli_engine_opt(const char *cmd, int argc, char **argv, int *i, qv_engine_opts *o)
{
    const char *a = argv[*i];
    if (!strcmp(a, "--qserve-compat")) return o->qserve_compat = 1, 1;
    if (!strcmp(a, "--fp-kv")) return o->fp_kv = 1, 1;
    int has_value = !strcmp(a, "--quantized") || !strcmp(a, "--attn") || !strcmp(a, "--fp-weights") ||
                    !strcmp(a, "--fp-acts") || !strcmp(a, "--dtype");
    if (!has_value) return 0;
    if (*i + 1 >= argc) {
        qv_cli_usage_error(cmd, "%s needs a value", a);
        return -1;
    }
    const char *v = argv[++*i];
    if (!strcmp(a, "--quantized")) {
        o->quantized_path = v;
    } else if (!strcmp(a, "--attn")) {
        if (!strcmp(v, "kv4")) o->attn_mode = QV_ATTN_KV4;
        else if (!strcmp(v, "serve")) o->attn_mode = QV_ATTN_SERVE;
        else {
            qv_cli_usage_error(cmd, "--attn is kv4 or serve, not '%s'", v);
            return -1;
        }
    } else if (!strcmp(a, "--dtype")) {
        if (qv_dtype16_parse(v, &o->dtype) != 0) {
            qv_cli_usage_error(cmd, "--dtype is fp16 or bf16, not '%s'", v);
            return -1;
        }
    } else if (qv_cli_parse_layers(v, !strcmp(a, "--fp-weights") ? &o->fp_weights : &o->fp_acts) != 0) {
        qv_cli_usage_error(cmd, "%s wants layers like 3, 0-7, 1,4-5 or all, not '%s'", a, v);
        return -1;
    }
    return 1;
}

int qv_cli_engine_dtype_check(const char *cmd, const char *engine, const qv_engine_opts *o)
{
    if (o->dtype == QV_DTYPE_FP16 || (engine && !strcmp(engine, "gpu-fp16"))) return 0;
    qv_cli_usage_error(cmd, "--dtype %s is an option of gpu-fp16 only, not of %s (ref-fp32 computes in FP32, "
                       "ref-qoq and gpu-qoq in FP16)", qv_dtype16_name(o->dtype), engine ? engine : "this command");
    return -1;
}
