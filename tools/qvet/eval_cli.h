/* Pieces shared by the eval commands (compare, niah, validate, merge): models and engines for R
 * and C, the text, the TTY progress bar, --shard parsing. */
#ifndef QVET_EVAL_CLI_H
#define QVET_EVAL_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "progress.h"
#include "qvet/engine.h"
#include "qvet/model.h"

typedef struct {
    const char *model_dir;      /* NULL: built-in synthetic */
    const char *cand_model_dir; /* NULL: the same model as R */
    int cand_round_bits;        /* < 0: off; else C's float weights rounded to this many mantissa bits */
    const char *ref, *cand;     /* engine names */
    const char *quantized;      /* for *-qoq engines */
    int threads;
    const qv_engine_opts *qoq_opts; /* NULL: defaults; else the engine options (engine_opts.c) given
                                       to the *-qoq engines (quantized / threads set from the fields above) */
} qv_evcli_pair_opts;

typedef struct {
    qv_model *mr, *mc;          /* mc == mr when C shares R's model */
    qv_engine *er, *ec;
} qv_evcli_pair;

qv_status qv_evcli_pair_open(const qv_evcli_pair_opts *o, qv_evcli_pair *p);
void qv_evcli_pair_close(qv_evcli_pair *p);

/* The text: FILE, or (file NULL and the built-in model) qvet's own built-in text. */
qv_status qv_evcli_text(const char *file, int builtin_ok, char **text, size_t *len);
/* "i/n" -> 0 <= i < n */
int qv_evcli_parse_shard(const char *s, int *i, int *n);

struct cJSON;
/* A copy of an eval's JSON meta without what may differ between shards of one run ("shard",
 * "command"): two results belong to one run iff their keys compare equal. Caller deletes. */
struct cJSON *qv_evcli_meta_key(const struct cJSON *meta);
/* Makes meta that of a whole run: shard 0/1, command replaced by cmd (removed when NULL). */
void qv_evcli_meta_unshard(struct cJSON *meta, const char *cmd);
/* The command line, space-joined (malloc'd), for "the command that reproduces it". */
char *qv_evcli_cmdline(int argc, char **argv);

/* Progress with ETA on stderr, only when stderr is a TTY (CLI.md): progress.c's bar, so every
 * command draws the same one; the callback has the evals' qv_progress_fn signature. */
typedef struct {
    qv_progress bar;
} qv_evcli_progress;
void qv_evcli_progress_init(qv_evcli_progress *p, const char *label);
void qv_evcli_progress_cb(void *user, int64_t done, int64_t total);
void qv_evcli_progress_end(qv_evcli_progress *p);
double qv_evcli_now(void);

/* Test hook (undocumented for users; tests/cli_compare.sh): QVET_TEST_KILL_AFTER=k makes the
 * eval SIGKILL itself right after its k-th result has been committed to --json. */
void qv_evcli_test_kill_hook(int64_t committed);

#endif
