/* The eval commands' entry points shared between them (validate runs compare and niah). */
#ifndef QVET_EVAL_CMDS_H
#define QVET_EVAL_CMDS_H

#include <cJSON.h>

#include "eval_cli.h"
#include "qvet/eval_compare.h"
#include "qvet/eval_longbench.h"
#include "qvet/eval_niah.h"
#include "qvet/eval_ppl.h"
#include "qvet/tokenizer.h"

typedef struct {
    qv_evcli_pair_opts pair;
    const char *text, *json;
    int ctx, bos, resume, shard_i, shard_n, max_chunks, quiet;
    long long max_tokens;
    char *cmd;
    const char *dump_logits;      /* hidden --dump-logits DIR: write R's and C's FP32 logits per chunk */
} qv_compare_args;

/* The token stream every eval scores (EVALS.md): the text (FILE, or the built-in text for the
 * built-in model) tokenized once, BOS at the very start when bos and the tokenizer has one,
 * cut to max_tokens (0: all). text_sha256 (may be NULL) receives the text's sha256 in hex.
 * Shared by compare, dump-ids (so an external engine runs exactly these tokens). */
qv_status qv_compare_tokenize(const qv_model *m, const char *file, int bos, int64_t max_tokens, int32_t **ids,
                              int64_t *n_ids, char text_sha256[65]);
/* compare's and dump-ids' default chunk length: 2048, or the model's maximum if smaller. */
int qv_compare_default_ctx(int max_pos);

qv_status qv_compare_exec(const qv_compare_args *a, qv_evcli_pair *p, cJSON **result, qv_cmp_summary *sum);
void qv_compare_print(const qv_cmp_summary *s, const qv_tok *tok);
int qv_evcli_common_flag(const char *cmd, int argc, char **argv, int *i, qv_evcli_pair_opts *o);
int qv_evcli_int_arg(const char *cmd, const char *flag, const char *v, long long lo, long long *out);

typedef struct {
    qv_evcli_pair_opts pair;
    const char *haystack, *json;
    int *lengths, n_lengths;
    double *depths;
    int n_depths;
    int passkey, resume, shard_i, shard_n, quiet;
    unsigned long long seed;
    char *cmd;
} qv_niah_args;

qv_status qv_niah_exec(const qv_niah_args *a, qv_evcli_pair *p, cJSON **result);
void qv_niah_print(const cJSON *result);

/* ppl's one summary line (stdout) for the chunks in set, with meta's engine, model, text and
 * shard; used by ppl and by merge. */
qv_status qv_ppl_print(qv_ppl_set *set, const cJSON *meta, double seconds);


qv_status qv_niah_load(const char *path, cJSON **meta, qv_niah_cell **cells, int *n);
int qv_evcli_niah_flag(const char *cmd, int argc, char **argv, int *i, qv_niah_args *a);
void qv_evcli_niah_defaults(qv_niah_args *a, int max_pos);
int qv_evcli_parse_list(const char *cmd, const char *flag, const char *s, int as_int, double lo, double hi,
                        double **out, int *n);

/* qvet longbench with engines (tools/qvet/longbench_exec.c). */
typedef struct {
    qv_evcli_pair_opts pair;
    const char *data, *config;   /* --data DIR --longbench-config DIR */
    const char *synthetic;       /* --synthetic CORPUS */
    const char *tasks;           /* --tasks a,b,c (NULL: every task found / all synthetic ones) */
    const char *json, *pred_dir, *write_data, *chat;
    int samples;                 /* per task; 0: all lines (data) / QV_LB_SYN_DEFAULT_SAMPLES */
    int words;                   /* synthetic context words; 0: QV_LB_SYN_DEFAULT_WORDS */
    long long max_length;        /* 0: the model's maximum minus the largest max_gen minus 16 */
    int e, english_only, resume, shard_i, shard_n, quiet;
    unsigned long long seed;
    char *cmd;
} qv_lb_args;

enum { QV_LB_SYN_DEFAULT_SAMPLES = 8, QV_LB_SYN_DEFAULT_WORDS = 300 };

qv_status qv_lb_exec(const qv_lb_args *a, qv_evcli_pair *p, cJSON **result);
void qv_lb_print(const cJSON *result);
/* A qvet.longbench result: meta, the task names of meta.tasks (malloc'd array of borrowed
 * strings into *meta) and the samples. */
qv_status qv_lb_load(const char *path, cJSON **meta, const char ***tasks, int *ntasks, qv_lb_result **res, int *n);
/* The whole document (meta, complete, samples with item scores, summary) of these results. */
qv_status qv_lb_doc(const cJSON *meta, const char *const *tasks, int ntasks, qv_lb_result *res, int n, int with_summary,
                    cJSON **out);

#endif
