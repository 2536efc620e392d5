/* qvet synth --out DIR [--preset tiny|small|llama3-8b-shape] [--seed N] */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "qvet/synth.h"

int qv_cmd_synth(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'},
        {"preset", required_argument, 0, 'p'},
        {"seed", required_argument, 0, 's'},
        {0, 0, 0, 0},
    };
    const char *out = NULL;
    qv_synth_preset preset = QV_SYNTH_TINY;
    unsigned long long seed = 0;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'p':
            if (qv_synth_preset_from_name(optarg, &preset) != 0)
                return qv_cli_usage_error("synth", "unknown preset '%s' (tiny, small, llama3-8b-shape)", optarg);
            break;
        case 's': {
            char *end;
            seed = strtoull(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || *optarg == '-')
                return qv_cli_usage_error("synth", "--seed wants a non-negative integer, got '%s'", optarg);
            break;
        }
        default: return qv_cli_usage_error("synth", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return qv_cli_usage_error("synth", "unexpected argument '%s'", argv[optind]);
    if (!out) return qv_cli_usage_error("synth", "--out DIR is required");
    qv_status st = qv_synth_write(preset, seed, out);
    if (st != QV_OK) return qv_cli_report(st);
    printf("wrote synthetic Llama (preset %s, seed %llu) to %s\n", qv_synth_preset_name(preset), seed, out);
    return QV_EXIT_OK;
}
