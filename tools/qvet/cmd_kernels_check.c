/* qvet kernels --check DIR [--filter RE] [--json F]: an external kernel's dumped cases
 * (DIR/manifest.json, docs/byo.md "Kernel level") against the reference, one line per case as
 * `qvet kernels` prints them. Exit 0 all pass, 1 a mismatch (or an overflow finding), 2 a bad
 * manifest or bad input in any case (the line and stderr name the file). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <cJSON.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qvet/fileio.h"
#include "qvet/kcheck.h"

int qv_cmd_kernels_check(const char *dir, const void *filter_re, const char *json_path)
{
    const pcre2_code *re = filter_re;
    qv_kcheck_set *set;
    qv_status st = qv_kcheck_open(dir, &set);
    if (st != QV_OK) return qv_cli_report(st);
    printf("qvet kernels --check: %d cases in %s\n", set->n_cases, set->manifest_path);
    pcre2_match_data *md = re ? pcre2_match_data_create_from_pattern(re, NULL) : NULL;
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "cases");
    cJSON_AddStringToObject(root, "schema", "qvet.kernels-check/1");
    cJSON_AddStringToObject(root, "dir", dir);
    long passed = 0, failed = 0, errors = 0;
    for (int i = 0; i < set->n_cases; i++) {
        const qv_kcheck_case *c = &set->cases[i];
        if (re && pcre2_match(re, (PCRE2_SPTR)c->name, PCRE2_ZERO_TERMINATED, 0, 0, md, NULL) < 0) continue;
        const char *op = qv_kcheck_op_name(c->op);
        qv_kcheck_result r;
        st = qv_kcheck_run(set, c, &r);
        cJSON *jc = st == QV_OK ? r.json : cJSON_CreateObject();
        cJSON_AddStringToObject(jc, "case", c->name);
        cJSON_AddStringToObject(jc, "op", op);
        cJSON_AddStringToObject(jc, "layout", c->qserve ? "qserve" : "qvet");
        if (st != QV_OK) {
            printf("%-44s %-9s ERROR %s\n", c->name, op, qv_last_error());
            fprintf(stderr, "qvet: %s\n", qv_last_error());
            cJSON_AddStringToObject(jc, "result", "error");
            cJSON_AddStringToObject(jc, "error", qv_last_error());
            errors++;
        } else {
            printf("%-44s %-9s %s  %s\n", c->name, op, r.summary, r.ok ? "OK" : "FAIL");
            if (r.first[0]) printf("    %s\n", r.first);
            cJSON_AddStringToObject(jc, "result", r.ok ? "pass" : "fail");
            if (r.ok) passed++;
            else failed++;
        }
        cJSON_AddItemToArray(arr, jc);
    }
    printf("kernels --check: %ld checked, %ld passed, %ld failed, %ld input errors\n", passed + failed + errors, passed,
           failed, errors);
    cJSON_AddNumberToObject(root, "passed", (double)passed);
    cJSON_AddNumberToObject(root, "failed", (double)failed);
    cJSON_AddNumberToObject(root, "errors", (double)errors);
    int rc = errors ? QV_EXIT_USAGE : failed ? QV_EXIT_FAIL : QV_EXIT_OK;
    if (json_path) {
        char *txt = cJSON_Print(root);
        st = txt ? qv_write_file_atomic(json_path, txt, strlen(txt)) : qv_fail(QV_ERR_NOMEM, "out of memory");
        free(txt);
        if (st != QV_OK) rc = qv_cli_report(st);
    }
    cJSON_Delete(root);
    pcre2_match_data_free(md);
    qv_kcheck_close(set);
    return rc;
}
