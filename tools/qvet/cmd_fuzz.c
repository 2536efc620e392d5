/* qvet fuzz overflow [--time S] [--corpus DIR] [--seed N] [--cases N] [--gpu]
 * qvet fuzz replay [--corpus DIR] [--gpu]
 * Overflow fuzzing of the kernels against the reference (include/qvet/fuzz.h, docs/fuzz.md).
 * Backend: the GPU kernels with --gpu (a device required), else the CPU emulation of the kernels'
 * packed path. Exit 0 no finding / all corpus cases pass, 1 findings / failing cases, 2 usage or
 * a malformed corpus file. Test-only: QVET_FUZZ_PLANT=k plants bug k in the CPU emulation
 * (include/qvet/kcases.h) so that tests can show the fuzzer finds it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qvet/fileio.h"
#include "qvet/fuzz.h"
#include "qvet/gpu.h"

int qv_cmd_fuzz(int argc, char **argv)
{
    if (argc < 2 || qv_cli_wants_help(argc, argv)) {
        qv_cli_print_help(qv_find_command("fuzz"));
        return argc < 2 ? QV_EXIT_USAGE : QV_EXIT_OK;
    }
    const char *sub = argv[1];
    int replay = !strcmp(sub, "replay");
    if (!replay && strcmp(sub, "overflow")) return qv_cli_usage_error("fuzz", "unknown subcommand '%s' (overflow or replay)", sub);
    qv_fz_opts o;
    memset(&o, 0, sizeof o);
    o.time_s = 60;
    o.seed = 1;
    o.corpus = QV_SOURCE_DIR "/fuzz/corpus";
    o.log = stdout;
    int gpu = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!strcmp(a, "--gpu")) { gpu = 1; continue; }
        if (!v) return qv_cli_usage_error("fuzz", "option '%s' needs a value (or is unknown)", a);
        i++;
        if (!strcmp(a, "--corpus")) o.corpus = v;
        else if (!strcmp(a, "--time") && !replay) {
            o.time_s = strtod(v, &end);
            if (*end || !(o.time_s > 0) || o.time_s > 1e7) return qv_cli_usage_error("fuzz", "--time: '%s' is not a positive number of seconds", v);
        } else if (!strcmp(a, "--seed") && !replay) {
            o.seed = strtoull(v, &end, 10);
            if (*end || !*v) return qv_cli_usage_error("fuzz", "--seed: '%s' is not an unsigned integer", v);
        } else if (!strcmp(a, "--stop-after") && !replay) {
            o.stop_after = (int)strtol(v, &end, 10);
            if (*end || o.stop_after < 1) return qv_cli_usage_error("fuzz", "--stop-after: '%s' is not a positive integer", v);
        } else if (!strcmp(a, "--cases") && !replay) {
            o.max_cases = strtol(v, &end, 10);
            if (*end || o.max_cases < 1) return qv_cli_usage_error("fuzz", "--cases: '%s' is not a positive integer", v);
        } else
            return qv_cli_usage_error("fuzz", "unknown option '%s'", a);
    }
    if (gpu && qv_gpu_device_count() == 0) return qv_cli_usage_error("fuzz", "--gpu: no CUDA device");
    o.backend = gpu ? QV_KB_GPU : QV_KB_CPU_EMUL;
    const char *plant = getenv("QVET_FUZZ_PLANT");
    if (plant && *plant) qv_kcase_emul_plant = atoi(plant);
    if (replay) {
        int n = 0, failed = 0;
        qv_status st = qv_fz_replay(o.corpus, o.backend, stdout, &n, &failed);
        if (st != QV_OK) return qv_cli_report(st);
        printf("replay %s: %d cases, %d failed (%s)\n", o.corpus, n, failed, gpu ? "GPU kernels" : "CPU emulation");
        return failed ? QV_EXIT_FAIL : QV_EXIT_OK;
    }
    if (!qv_is_dir(o.corpus)) return qv_cli_usage_error("fuzz", "--corpus: '%s' is not a folder", o.corpus);
    qv_fz_summary s;
    qv_status st = qv_fz_overflow(&o, &s);
    if (st != QV_OK) return qv_cli_report(st);
    printf("fuzz overflow: %ld cases (gemm %ld, g128 groups %ld, kv4 %ld) in %.1f s, seed %llu, %s: %ld findings\n",
           s.cases, s.per_kind[QV_FZ_GEMM], s.per_kind[QV_FZ_GROUP], s.per_kind[QV_FZ_KV4], s.seconds,
           (unsigned long long)o.seed, gpu ? "GPU kernels" : "CPU emulation", s.findings);
    return s.findings ? QV_EXIT_FAIL : QV_EXIT_OK;
}
