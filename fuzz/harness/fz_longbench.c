/* libFuzzer: the LongBench JSONL reader, then scoring of the same file as a prediction file of
 * two tasks (qa F1 and classification: answers / all_classes lists of any shape). */
#include "fz_util.h"
#include "qvet/longbench.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = qv_fz_tmpfile(data, size, ".jsonl");
    if (!path) return 0;
    cJSON **items = NULL;
    size_t n = 0;
    if (qv_lb_jsonl_load(path, &items, &n) == QV_OK) qv_lb_jsonl_free(items, n);
    static const char *tasks[] = {"qasper", "trec", "lcc"};
    for (int t = 0; t < 3; t++) {
        qv_lb_task_score s;
        memset(&s, 0, sizeof s);
        if (qv_lb_score_file(path, tasks[t], t == 0, &s) == QV_OK) qv_lb_task_score_free(&s);
    }
    unlink(path);
    return 0;
}
