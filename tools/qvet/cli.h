/* Shared pieces of the qvet command line (CLI.md): the command table, exit codes, help. */
#ifndef QVET_CLI_H
#define QVET_CLI_H

#include "qvet/model.h"
#include "qvet/status.h"
#include "qvet/tokenizer.h"

enum { QV_EXIT_OK = 0, QV_EXIT_FAIL = 1, QV_EXIT_USAGE = 2, QV_EXIT_INTERNAL = 3 };

typedef int (*qv_cmd_fn)(int argc, char **argv);

typedef struct {
    const char *name;
    const char *usage;   /* synopsis after "qvet " */
    const char *summary; /* one line */
    qv_cmd_fn fn;        /* NULL: not implemented yet (answers exit 2, never a fake result) */
} qv_command;

extern const qv_command qv_commands[];
const qv_command *qv_find_command(const char *name);

/* Prints "qvet: <last error>" on stderr and returns the exit code of `st`. */
int qv_cli_report(qv_status st);
int qv_cmd_gate(int argc, char **argv);
int qv_cmd_golden(int argc, char **argv);
/* Prints "qvet <cmd>: <message>" on stderr and returns QV_EXIT_USAGE. */
int qv_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the command's usage (its table entry) to stdout. */
void qv_cli_print_help(const qv_command *c);
/* 1 if argv has -h or --help */
int qv_cli_wants_help(int argc, char **argv);

/* The built-in synthetic model every --model defaults to (tools/qvet/default_model_*.c). */
qv_status qv_cli_default_model(qv_model **out);

/* Implemented commands (one file each: cmd_<name>.c). */
int qv_cmd_info(int argc, char **argv);
int qv_cmd_kernels(int argc, char **argv);
/* `kernels --check DIR` (cmd_kernels_check.c); filter_re is a compiled pcre2_code or NULL. */
int qv_cmd_kernels_check(const char *dir, const void *filter_re, const char *json_path);
int qv_cmd_synth(int argc, char **argv);
int qv_cmd_tokenize(int argc, char **argv);
int qv_cmd_bench(int argc, char **argv);
int qv_cmd_longbench(int argc, char **argv);
int qv_cmd_logits(int argc, char **argv);
int qv_cmd_ppl(int argc, char **argv);
int qv_cmd_quantize(int argc, char **argv);
int qv_cmd_compare(int argc, char **argv);
int qv_cmd_dump_ids(int argc, char **argv);
int qv_cmd_niah(int argc, char **argv);
int qv_cmd_merge(int argc, char **argv);
int qv_cmd_validate(int argc, char **argv);
int qv_cmd_fuzz(int argc, char **argv);
int qv_cmd_trace(int argc, char **argv);

/* The tokenizer of the built-in synthetic model (used when no --model is given). */
qv_status qv_cli_default_tokenizer(qv_tok **tok);

#endif
