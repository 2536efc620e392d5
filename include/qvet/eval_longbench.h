/* LongBench driven by two engines (EVALS.md "LongBench"; docs/longbench.md): LongBench's pred.py
 * (prompt from the user's dataset2prompt.json, middle truncation to max_length, chat wrapping
 * except on its no-chat tasks, greedy decoding up to dataset2maxlen or EOS) run by R and C on the
 * same prompts, both scored with the exact scorer of longbench.h; plus qvet's own synthetic tasks
 * built from a text corpus (passage retrieval, passage count, key-value retrieval) so the
 * pipeline runs offline.
 *
 * Library only: the CLI (tools/qvet/cmd_longbench.c, longbench_exec.c) reads files, writes JSON
 * and prediction files, draws progress. */
#ifndef QVET_EVAL_LONGBENCH_H
#define QVET_EVAL_LONGBENCH_H

#include <stddef.h>
#include <stdint.h>

#include "qvet/engine.h"
#include "qvet/evals.h"
#include "qvet/longbench.h"
#include "qvet/tokenizer.h"

typedef struct cJSON cJSON;

/* ---- prompts (pred.py) ---- */

/* 1 for pred.py's tasks that never get the chat template: trec, triviaqa, samsum, lsht, lcc,
 * repobench-p ("chat models are better off without build prompts on these tasks"). */
int qv_lb_task_no_chat(const char *task);

typedef struct {
    qv_tok *tok;
    size_t max_length;  /* pred.py's max_length (its model2maxlen) */
    const char *chat;   /* NULL: no chat wrapping (pred.py's build_chat for a model it does not
                           name returns the prompt unchanged); else a template holding exactly one
                           "{prompt}", applied to tasks not in the no-chat list */
    int clean_up;       /* the tokenizer's clean_up_tokenization_spaces: every decode (the
                           truncated halves, the predictions) is cleaned up as transformers does */
} qv_lb_prompt_opts;

/* The prompt of one sample as pred.py builds it:
 *   prompt = tmpl.format(**sample)           (string fields, and integer fields as str(int))
 *   ids = tokenize(prompt) with the tokenizer's BOS (add_special_tokens=True)
 *   if len(ids) > max_length: half = max_length // 2;
 *       prompt = decode(ids[:half], skip_special) + decode(ids[-half:], skip_special)
 *   if task not no-chat and chat: prompt = chat.replace("{prompt}", prompt)
 *   ids = tokenize(prompt) with BOS
 * n_full: tokens of the first tokenization; *truncated: 1 if the middle was cut. */
qv_status qv_lb_build_prompt(const qv_lb_prompt_opts *o, const char *task, const char *tmpl, const cJSON *sample,
                             int32_t **ids, size_t *n, size_t *n_full, int *truncated);

/* decode(ids, skip_special_tokens=True): special added tokens dropped, then the decoder chain;
 * with clean_up, then transformers' clean_up_tokenization. */
qv_status qv_lb_decode_skip_special(const qv_tok *tok, const int32_t *ids, size_t n, int clean_up, char **text);
/* transformers' clean_up_tokenization, in place: str.replace of " ." -> ".", " ?" -> "?",
 * " !" -> "!", " ," -> ",", " ' " -> "'", " n't" -> "n't", " 'm" -> "'m", " 's" -> "'s",
 * " 've" -> "'ve", " 're" -> "'re", one after the other over the whole string. */
void qv_lb_clean_up_tokenization(char *s);

/* ---- greedy generation (model.generate(num_beams=1, do_sample=False)) ---- */

typedef struct {
    int max_new;            /* max_new_tokens: dataset2maxlen[task] */
    const int32_t *stop;    /* eos_token_id(s): generation ends after one of them is produced */
    int n_stop;
    int min_new;            /* min_length = context + min_new: the stop ids get -inf while fewer than
                               min_new tokens were generated (pred.py's samsum: 1) */
} qv_lb_gen_opts;

enum { QV_LB_STOP_MAX = 0, QV_LB_STOP_EOS = 1 };

/* Prefills `prompt` into sequence s (reset first), then decodes greedily (argmax, first index of
 * the maximum as torch.argmax) one token at a time. out[0..*n_out) are the new tokens, the stop
 * token included when one ended the generation (as HF's output holds it). out holds max_new ids.
 * logits: scratch of vocab floats. prompt + max_new beyond the model's maximum position is
 * QV_ERR_INPUT (before anything runs). */
qv_status qv_lb_generate(qv_engine *e, qv_seq_id s, const int32_t *prompt, int n_prompt, const qv_lb_gen_opts *o,
                         float *logits, int32_t *out, int *n_out, int *stop);

/* ---- qvet's synthetic tasks (its own text, prompts and lengths; docs/longbench.md) ---- */

#define QV_LB_SYN_NTASKS 3
extern const char *const qv_lb_syn_tasks[QV_LB_SYN_NTASKS]; /* qvet_passage_retrieval, qvet_passage_count, qvet_kv_retrieval */
/* 1 if `task` is one of them */
int qv_lb_syn_is(const char *task);
/* Their prompt templates ({context}, {input}) and maximum generation lengths. */
const char *qv_lb_syn_prompt(const char *task);
int qv_lb_syn_maxlen(const char *task);

typedef struct {
    int samples;    /* per task */
    int words;      /* about this many words of context per sample */
    uint64_t seed;
} qv_lb_syn_opts;

/* Builds `samples` LongBench-format objects (input, context, answers, all_classes, length,
 * dataset, language, _id) of `task` from the corpus (UTF-8 text, paragraphs separated by blank
 * lines); sample i depends only on (seed, task, i) and the corpus. `label` names the corpus in
 * errors (too few usable paragraphs or words: QV_ERR_INPUT). */
qv_status qv_lb_syn_build(const char *task, const char *corpus, size_t len, const char *label, const qv_lb_syn_opts *o,
                          cJSON ***items, size_t *n);

/* ---- the run ---- */

/* One sample, both engines. */
typedef struct {
    int task;              /* index into the run's task list */
    int index;             /* the sample's line in its task file (0-based) */
    char *id;              /* "_id" (may be NULL) */
    double length;         /* LongBench's "length" (NaN when absent) */
    int n_full, n_prompt;  /* prompt tokens before truncation / as fed */
    int truncated;
    char *pred[2];         /* R, C: the decoded generations (pred.py's "pred") */
    int n_gen[2], stop[2];
    int agree;             /* length of the common prefix of R's and C's generated ids */
    cJSON *answers;        /* the sample's "answers" and "all_classes" (owned copies) */
    cJSON *all_classes;
} qv_lb_result;

void qv_lb_result_free(qv_lb_result *r);

typedef qv_status (*qv_lb_result_fn)(void *user, qv_lb_result *r); /* takes ownership of *r's pointers */

typedef struct {
    const char *name;      /* task (metric by qv_lb_task_find) */
    const char *tmpl;      /* prompt template */
    int max_gen;
    cJSON **items;         /* the samples (borrowed) */
    size_t n;
} qv_lb_task_data;

typedef struct {
    const qv_lb_task_data *tasks;
    int n_tasks;
    qv_lb_prompt_opts prompt;
    const int32_t *stop;   /* stop ids (the model's eos_token_id list) */
    int n_stop;
    int32_t newline_id;    /* samsum's extra stop: tokenizer.encode("\n")[-1]; -1: none */
    int shard_i, shard_n;  /* global sample ordinal k (tasks in order, then lines) runs in shard k % n */
    const unsigned char *const *have; /* have[t][i]: done already (resume); may be NULL */
    qv_lb_result_fn on_result;
    void *user;
    qv_progress_fn progress;
    void *progress_user;
} qv_lb_run_opts;

/* Runs R and C over this shard's samples not in `have`. */
qv_status qv_eval_longbench(qv_engine *r, qv_engine *c, const qv_lb_run_opts *o);

/* ---- results as JSON (schema qvet.longbench, version 1) ---- */

#define QV_LB_SCHEMA "qvet.longbench"
#define QV_LB_SCHEMA_VERSION 1

cJSON *qv_lb_result_json(const qv_lb_result *r, const char *task);
/* `ntasks` names: the meta's task list (the result's "task" must be one of them). */
qv_status qv_lb_result_from_json(const cJSON *o, const char *path, const char *const *tasks, int ntasks,
                                 qv_lb_result *r);

/* Per-task figures of the results given (any order; sorted by index inside): LongBench's scorer()
 * for R and C and their difference, the paired per-item difference with a 95% interval, the
 * LongBench-E buckets, and agreement (identical predictions, equal item scores, common prefix of
 * generated tokens). Item scores use the all_classes of the task's last sample, as eval.py does.
 * Also writes the item scores back into `items` ([n][2], may be NULL). A scoring error (a Chinese
 * task, a retrieval answer without "Paragraph N") is QV_ERR_INPUT / QV_ERR_UNSUPPORTED. */
qv_status qv_lb_summary_json(const qv_lb_result *res, int n, const char *const *tasks, int ntasks, cJSON **out,
                             double (*items)[2]);

#endif
