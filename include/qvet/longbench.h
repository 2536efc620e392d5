/* LongBench (v1, English tasks) scoring exactly as LongBench's own eval.py / metrics.py compute it,
 * quirks included, plus the pure pieces of its generation side (JSONL loading, prompt templates,
 * middle truncation). See docs/longbench.md for what matches bit for bit and the known limits.
 *
 * All text is UTF-8 and is handled as Python str would be (code points; str.lower() with the
 * final-sigma rule; str.split() on Unicode whitespace; re's Unicode \w and \d), using tables
 * generated from CPython (tools/gen_longbench_unicode.py). Invalid UTF-8 is an input error. */
#ifndef QVET_LONGBENCH_H
#define QVET_LONGBENCH_H
#include <stddef.h>
#include <stdint.h>

#include "qvet/status.h"

typedef struct cJSON cJSON;

/* ---- metrics (metrics.py); each writes the score of one prediction vs one ground truth ---- */
/* qa_f1_score: token F1 after normalize_answer (lower, drop string.punctuation, drop the words
 * a/an/the as re's \b(a|an|the)\b does, collapse whitespace). */
qv_status qv_lb_qa_f1(const char *pred, const char *truth, double *score);
/* rouge_score: Rouge().get_scores([pred], [truth], avg=True)["rouge-l"]["f"] of the `rouge`
 * package (1.0.1), 0.0 where that call raises (empty text, Python recursion limit). */
qv_status qv_lb_rouge_l(const char *pred, const char *truth, double *score);
/* classification_score, its remove-while-iterating loop included. */
qv_status qv_lb_classification(const char *pred, const char *truth, const char *const *classes,
                               size_t nclasses, double *score);
/* retrieval_score: the truth must contain "Paragraph <digits>" (LongBench raises otherwise:
 * QV_ERR_INPUT here). */
qv_status qv_lb_retrieval(const char *pred, const char *truth, double *score);
qv_status qv_lb_count(const char *pred, const char *truth, double *score);
/* code_sim_score: fuzz.ratio(first line without '`', '#', "//", truth) / 100. */
qv_status qv_lb_code_sim(const char *pred, const char *truth, double *score);

/* fuzzywuzzy 0.18.0 fuzz.ratio without python-Levenshtein: 100 if equal, 0 if one is empty, else
 * int(round(100 * difflib.SequenceMatcher(None, s1, s2).ratio())). */
qv_status qv_lb_fuzz_ratio(const char *s1, const char *s2, int *out);
/* difflib.SequenceMatcher(None, a, b).ratio() on code points (autojunk on), bit for bit. */
qv_status qv_lb_seqmatch_ratio(const uint32_t *a, size_t na, const uint32_t *b, size_t nb, double *ratio);

/* ---- rounding and averaging as Python / numpy do them ---- */
double qv_lb_py_round(double x);   /* round(x): nearest integer, ties to even */
double qv_lb_py_round2(double x);  /* round(x, 2) on a Python float: correctly rounded */
double qv_lb_np_round2(double x);  /* round(np.float64(x), 2) = rint(x * 100) / 100 */
double qv_lb_np_mean(const double *v, size_t n); /* np.mean: pairwise summation / n; NaN if n == 0 */

/* ---- tasks (eval.py's dataset2metric) ---- */
typedef enum {
    QV_LB_QA_F1, QV_LB_ROUGE_L, QV_LB_CLASSIFICATION, QV_LB_RETRIEVAL, QV_LB_COUNT, QV_LB_CODE_SIM,
    QV_LB_CHINESE /* multifieldqa_zh, dureader, vcsum, lsht, passage_retrieval_zh: need jieba */
} qv_lb_metric;
typedef struct {
    const char *name;
    qv_lb_metric metric;
    int first_line; /* trec, triviaqa, samsum, lsht: prediction.lstrip('\n').split('\n')[0] */
    int qvet_own;   /* qvet's synthetic tasks (eval_longbench.h), scored with LongBench's metrics */
} qv_lb_task;
/* NULL when `name` is neither one of LongBench's 21 tasks nor one of qvet's 3 synthetic ones
 * (qvet_passage_retrieval: retrieval, qvet_passage_count: count, qvet_kv_retrieval: qa_f1). */
const qv_lb_task *qv_lb_task_find(const char *name);
const char *qv_lb_metric_name(qv_lb_metric m);
/* One prediction vs its answers: eval.py's per-item loop (post-processing, max over answers).
 * Chinese tasks: QV_ERR_UNSUPPORTED. */
qv_status qv_lb_score_item(const qv_lb_task *t, const char *pred, const char *const *answers,
                           size_t nanswers, const char *const *classes, size_t nclasses, double *score);

enum { QV_LB_NBUCKETS = 3 };
extern const char *const qv_lb_bucket_names[QV_LB_NBUCKETS]; /* "0-4k", "4-8k", "8k+" */
typedef struct {
    char task[64];
    size_t n;
    double score;                      /* scorer(): round(100 * sum / n, 2) */
    size_t bucket_n[QV_LB_NBUCKETS];
    double bucket[QV_LB_NBUCKETS];     /* scorer_e(): round(100 * np.mean(bucket), 2); NaN if empty */
    double *item;                      /* per-prediction scores (malloc'd, n of them) */
} qv_lb_task_score;
/* Scores one prediction file (<task>.jsonl, LongBench's pred format: pred, answers, all_classes
 * and, for LongBench-E, length). `task` is eval.py's filename.split('.')[0]. With `e`, every
 * line must carry "length". The all_classes of the LAST line serve every line, as in eval.py. */
qv_status qv_lb_score_file(const char *path, const char *task, int e, qv_lb_task_score *out);
void qv_lb_task_score_free(qv_lb_task_score *s);

/* ---- data and prompts (pred.py) ---- */
/* Reads a JSONL file: one JSON object per line (CR/CRLF taken as line ends, as Python's text mode
 * does); a blank or malformed line is an error naming file and line. Caller frees with
 * qv_lb_jsonl_free. */
qv_status qv_lb_jsonl_load(const char *path, cJSON ***items, size_t *n);
void qv_lb_jsonl_free(cJSON **items, size_t n);

typedef struct qv_lb_config qv_lb_config;
/* DIR/dataset2prompt.json and DIR/dataset2maxlen.json of the user's LongBench checkout. */
qv_status qv_lb_config_load(const char *dir, qv_lb_config **out);
void qv_lb_config_free(qv_lb_config *c);
qv_status qv_lb_config_prompt(const qv_lb_config *c, const char *task, const char **tmpl);
qv_status qv_lb_config_maxlen(const qv_lb_config *c, const char *task, int *maxlen);

/* Python str.format(**fields) for templates whose fields are plain names: "{{" and "}}" are
 * literal braces; "{name}" takes the field's value; an unknown name, a format spec or conversion,
 * or an unmatched brace is an error (Python raises too). Caller frees *out. */
qv_status qv_lb_format(const char *tmpl, const char *const *names, const char *const *values,
                       size_t nfields, char **out);
/* pred.py's middle truncation of a token id list longer than max_length:
 * ids[:half] + ids[-half:] with half = int(max_length / 2); shorter lists are copied unchanged.
 * Python quirk kept: half == 0 makes ids[-0:] the whole list. `out` holds at least n ids. */
void qv_lb_truncate_middle(const int32_t *ids, size_t n, size_t max_length, int32_t *out, size_t *out_n);

#endif
