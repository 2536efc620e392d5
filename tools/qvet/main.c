/* qvet: one binary, subcommands (CLI.md). Only this file and the cmd_*.c files exit. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

int qv_cli_report(qv_status st)
{
    const char *msg = qv_last_error();
    fprintf(stderr, "qvet: %s\n", msg && *msg ? msg : qv_status_name(st));
    return qv_status_exit_code(st);
}

int qv_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "qvet %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see qvet %s --help)\n", cmd);
    return QV_EXIT_USAGE;
}

void qv_cli_print_help(const qv_command *c)
{
    printf("usage: qvet %s\n\n%s\n", c->usage, c->summary);
    if (!c->fn) printf("\n(not implemented yet)\n");
}

int qv_cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) return 1;
    return 0;
}

static void print_usage(FILE *fp)
{
    fprintf(fp, "usage: qvet <command> [options]   (qvet <command> --help for its options)\n\ncommands:\n");
    for (const qv_command *c = qv_commands; c->name; c++)
        fprintf(fp, "  %-10s %s%s\n", c->name, c->summary, c->fn ? "" : " (not implemented yet)");
    fprintf(fp, "\nexit codes: 0 pass, 1 a check failed, 2 usage or input error, 3 internal error\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return QV_EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        print_usage(stdout);
        return QV_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("qvet %s\n", QV_VERSION_STRING);
        return QV_EXIT_OK;
    }
    const qv_command *c = qv_find_command(argv[1]);
    if (!c) {
        fprintf(stderr, "qvet: unknown command '%s'\n", argv[1]);
        print_usage(stderr);
        return QV_EXIT_USAGE;
    }
    if (qv_cli_wants_help(argc - 1, argv + 1)) {
        qv_cli_print_help(c);
        return QV_EXIT_OK;
    }
    if (!c->fn) {
        fprintf(stderr, "qvet %s: not implemented yet\n", c->name);
        return QV_EXIT_USAGE;
    }
    return c->fn(argc - 1, argv + 1);
}
