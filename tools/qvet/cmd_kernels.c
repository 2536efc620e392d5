/* qvet kernels [--filter RE] [--seed N] [--cases matrix.json] [--quick] [--backend cpu|gpu|all]
 *              [--json F]
 * qvet kernels --plugin LIB.so [--filter RE] [--seed N] [--cases F] [--quick] [--json F]
 *              the matrix on an external implementation (include/qvet/kernel_plugin.h) instead
 * qvet kernels --check DIR [--filter RE] [--json F]   (cmd_kernels_check.c)
 * Differential tests of every kernel over the case matrix, one line per case and backend
 * (include/qvet/kcases.h): the GEMMs here, then (default matrix, no plugin) the paged KV4
 * attention cases "attn/..." and the GPU fused producers "fused/..." (cmd_kernels_extra.c).
 * A case's inputs are drawn from seed ^ hash(case name), so a case
 * reproduces alone with the printed --filter/--seed command. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <cJSON.h>
#include <getopt.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qvet/fileio.h"
#include "qvet/gpu.h"
#include "kernels_run.h"
#include "qvet/kcases.h"

static int parse_kernel(const char *s, qv_kkernel *k)
{
    for (int i = 0; i < QV_KK_COUNT; i++)
        if (strcmp(s, qv_kkernel_name((qv_kkernel)i)) == 0) return *k = (qv_kkernel)i, 0;
    return -1;
}

static int parse_values(const char *s, qv_kvalues *v)
{
    for (int i = 0; i < QV_KV_COUNT; i++)
        if (strcmp(s, qv_kvalues_name((qv_kvalues)i)) == 0) return *v = (qv_kvalues)i, 0;
    return -1;
}

/* [{"kernel": "w4a8_g128", "M": 1, "N": 4096, "K": 4096, "values": "random"}, ...] */
static qv_status load_cases(const char *path, qv_kcase **out, int *n)
{
    char *text;
    QV_TRY(qv_read_file(path, 16u << 20, &text, NULL));
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsArray(root)) {
        cJSON_Delete(root);
        return qv_fail(QV_ERR_INPUT, "%s: expected a JSON array of cases", path);
    }
    int cnt = cJSON_GetArraySize(root), i = 0;
    qv_kcase *c = calloc((size_t)(cnt ? cnt : 1), sizeof *c);
    if (!c) {
        cJSON_Delete(root);
        return qv_fail(QV_ERR_NOMEM, "out of memory");
    }
    for (cJSON *e = root->child; e; e = e->next, i++) {
        cJSON *k = cJSON_GetObjectItemCaseSensitive(e, "kernel"), *v = cJSON_GetObjectItemCaseSensitive(e, "values");
        cJSON *M = cJSON_GetObjectItemCaseSensitive(e, "M"), *N = cJSON_GetObjectItemCaseSensitive(e, "N"),
              *K = cJSON_GetObjectItemCaseSensitive(e, "K");
        c[i].values = QV_KV_RANDOM;
        if (!cJSON_IsString(k) || parse_kernel(k->valuestring, &c[i].kernel) != 0 || !cJSON_IsNumber(M) ||
            !cJSON_IsNumber(N) || !cJSON_IsNumber(K) || M->valuedouble < 1 || N->valuedouble < 1 ||
            K->valuedouble < 1 || M->valuedouble > 65536 || N->valuedouble > 262144 || K->valuedouble > 262144 ||
            (v && (!cJSON_IsString(v) || parse_values(v->valuestring, &c[i].values) != 0))) {
            free(c);
            cJSON_Delete(root);
            return qv_fail(QV_ERR_INPUT, "%s: case %d: needs \"kernel\" (w8a8|w4a8_chn|w4a8_g128), integer "
                           "\"M\" (1..65536), \"N\", \"K\" (1..262144), optional \"values\"", path, i);
        }
        c[i].M = M->valueint, c[i].N = N->valueint, c[i].K = K->valueint;
    }
    cJSON_Delete(root);
    *out = c;
    *n = cnt;
    return QV_OK;
}

int qv_cmd_kernels(int argc, char **argv)
{
    static const struct option opts[] = {
        {"filter", required_argument, 0, 'f'}, {"seed", required_argument, 0, 's'},
        {"cases", required_argument, 0, 'c'},  {"quick", no_argument, 0, 'q'},
        {"backend", required_argument, 0, 'b'}, {"json", required_argument, 0, 'j'},
        {"check", required_argument, 0, 'k'},  {"plugin", required_argument, 0, 'p'}, {0, 0, 0, 0},
    };
    const char *filter = NULL, *cases_path = NULL, *json_path = NULL, *backend = NULL, *check_dir = NULL,
               *plugin_path = NULL;
    unsigned long long seed = 1;
    int quick = 0, seed_given = 0, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'f': filter = optarg; break;
        case 's': {
            char *end;
            seed = strtoull(optarg, &end, 10);
            if (!*optarg || *end || *optarg == '-') return qv_cli_usage_error("kernels", "--seed wants a non-negative integer");
            seed_given = 1;
            break;
        }
        case 'c': cases_path = optarg; break;
        case 'q': quick = 1; break;
        case 'b': backend = optarg; break;
        case 'j': json_path = optarg; break;
        case 'k': check_dir = optarg; break;
        case 'p': plugin_path = optarg; break;
        default: return qv_cli_usage_error("kernels", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return qv_cli_usage_error("kernels", "unexpected argument '%s'", argv[optind]);
    if (check_dir && (cases_path || quick || backend || seed_given))
        return qv_cli_usage_error("kernels", "--check DIR takes only --filter and --json (the cases come from the manifest)");
    if (check_dir && plugin_path)
        return qv_cli_usage_error("kernels", "--check DIR judges dumped outputs; --plugin LIB runs a library: one or the other");
    if (plugin_path && backend)
        return qv_cli_usage_error("kernels", "--plugin LIB is the backend; --backend does not go with it");
    if (!backend) backend = "all";
    int use_cpu = strcmp(backend, "cpu") == 0 || strcmp(backend, "all") == 0;
    int use_gpu = strcmp(backend, "gpu") == 0 || strcmp(backend, "all") == 0;
    if (!use_cpu && !use_gpu) return qv_cli_usage_error("kernels", "--backend is cpu, gpu or all, not '%s'", backend);
    pcre2_code *re = NULL;
    if (filter) {
        int err;
        PCRE2_SIZE off;
        re = pcre2_compile((PCRE2_SPTR)filter, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &err, &off, NULL);
        if (!re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            return qv_cli_usage_error("kernels", "--filter: bad regular expression at offset %zu: %s", (size_t)off, msg);
        }
    }
    if (check_dir) {
        int rc = qv_cmd_kernels_check(check_dir, re, json_path);
        pcre2_code_free(re);
        return rc;
    }
    qv_kcase *cases;
    int n;
    qv_kplugin *plugin = NULL;
    qv_status st = cases_path ? load_cases(cases_path, &cases, &n) : qv_kcase_matrix(quick, &cases, &n);
    if (st == QV_OK && plugin_path && (st = qv_kplugin_load(plugin_path, &plugin)) != QV_OK) free(cases);
    if (st != QV_OK) {
        pcre2_code_free(re);
        return qv_cli_report(st);
    }
    if (plugin) {
        use_cpu = use_gpu = 0;
        qv_kcase_set_plugin(plugin);
    }
    int gpu = use_gpu && qv_gpu_device_count() > 0;
    /* the attention and fused-producer cases: default matrix only (--cases lists GEMMs), and not
     * on a plugin (the ABI has no attention or producer op: docs/byo.md section 6) */
    qv_kattn_case *acases = NULL;
    qv_kfused_case *fcases = NULL;
    int na = 0, nf = 0;
    if (!plugin && !cases_path && ((st = qv_kattn_matrix(&acases, &na)) != QV_OK ||
                                   (st = qv_kfused_matrix(&fcases, &nf)) != QV_OK)) {
        free(acases), free(cases), pcre2_code_free(re);
        return qv_cli_report(st);
    }
    if (plugin) {
        char have[128] = "";
        for (int k = 0; k < QV_KK_COUNT; k++) {
            int o = qv_kplugin_ops(plugin, (qv_kkernel)k);
            if (o) snprintf(have + strlen(have), sizeof have - strlen(have), "%s%s%s", have[0] ? ", " : "",
                            qv_kkernel_name((qv_kkernel)k), o == 1 ? " (no _acc)" : o == 2 ? " (_acc only)" : "");
        }
        printf("qvet kernels: %d cases in the matrix, seed %llu; plugin '%s' (%s): %s\n", n, seed,
               qv_kplugin_name(plugin), plugin_path, have);
    } else {
        printf("qvet kernels: %d cases in the matrix (+ %d attention, %d fused-producer), seed %llu; cpu-emul: %s; "
               "gpu: %s\n", n, na, nf, seed, use_cpu ? "on" : "off", use_gpu ? qv_gpu_describe() : "off");
    }
    pcre2_match_data *md = re ? pcre2_match_data_create_from_pattern(re, NULL) : NULL;
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "cases");
    cJSON_AddStringToObject(root, "schema", "qvet.kernels/1");
    cJSON_AddNumberToObject(root, "seed", (double)seed);
    if (plugin) {
        cJSON *jp = cJSON_AddObjectToObject(root, "plugin");
        cJSON_AddStringToObject(jp, "name", qv_kplugin_name(plugin));
        cJSON_AddStringToObject(jp, "path", plugin_path);
    }
    qv_kernels_run kr = {.seed = seed, .use_cpu = use_cpu, .use_gpu = use_gpu, .gpu = gpu, .re = re, .md = md, .arr = arr};
    long passed = 0, failed = 0, skipped = 0, errors = 0, run = 0;
    char *first_fail = kr.first_fail;
    for (int i = 0; i < n; i++) {
        char name[160];
        qv_kcase_name(&cases[i], name, sizeof name);
        if (re && pcre2_match(re, (PCRE2_SPTR)name, PCRE2_ZERO_TERMINATED, 0, 0, md, NULL) < 0) continue;
        uint64_t cseed = (uint64_t)seed ^ qv_kernels_name_hash(name);
        for (int b = 0; b < 3; b++) {
            if ((b == 0 && !use_cpu) || (b == 1 && !use_gpu) || (b == 2 && !plugin)) continue;
            const qv_kbackend kb = b == 0 ? QV_KB_CPU_EMUL : b == 1 ? QV_KB_GPU : QV_KB_PLUGIN;
            const char *bn = b == 0 ? "cpu-emul" : b == 1 ? "gpu" : "plugin";
            cJSON *jc = cJSON_CreateObject();
            cJSON_AddStringToObject(jc, "case", name);
            cJSON_AddStringToObject(jc, "backend", bn);
            if (b == 1 && !gpu) {
                printf("%-44s %-8s SKIP gpu: no device\n", name, bn);
                cJSON_AddStringToObject(jc, "result", "skip");
                cJSON_AddItemToArray(arr, jc);
                skipped++;
                continue;
            }
            qv_kresult r;
            st = qv_kcase_run(&cases[i], kb, cseed, &r);
            if (st == QV_OK && r.skipped) { /* the plugin leaves this kernel's ops NULL */
                printf("%-44s %-8s SKIP plugin '%s' does not implement %s\n", name, bn, qv_kplugin_name(plugin),
                       qv_kkernel_name(cases[i].kernel));
                cJSON_AddStringToObject(jc, "result", "skip");
                cJSON_AddItemToArray(arr, jc);
                skipped++;
                continue;
            }
            run++;
            if (st != QV_OK) {
                printf("%-44s %-8s ERROR %s\n", name, bn, qv_last_error());
                cJSON_AddStringToObject(jc, "result", "error");
                cJSON_AddStringToObject(jc, "error", qv_last_error());
                errors++;
            } else {
                char sat[64];
                if (r.no_out) snprintf(sat, sizeof sat, "sat n/a");
                else snprintf(sat, sizeof sat, "sat %ld/%ld", r.sat_got, r.sat_ref);
                printf("%-44s %-8s acc: %s  out: %s%s  %s  %s\n", name, bn,
                       r.no_acc ? "n/a" : r.acc_mismatch ? "MISMATCH" : "bit-exact",
                       r.no_out ? "n/a" : r.out_mismatch ? "MISMATCH" : "bit-exact",
                       r.w_mismatch ? "  w: MISMATCH" : "", sat, r.ok ? "OK" : "FAIL");
                if (!r.ok && r.first >= 0)
                    printf("    first mismatch m=%ld n=%ld: acc %d (ref %d), out 0x%04x (ref 0x%04x); %ld acc, %ld out, %ld weight mismatches\n",
                           r.first / cases[i].N, r.first % cases[i].N, r.first_acc_got, r.first_acc_ref,
                           r.first_out_got, r.first_out_ref, r.acc_mismatch, r.out_mismatch, r.w_mismatch);
                cJSON_AddStringToObject(jc, "result", r.ok ? "pass" : "fail");
                cJSON_AddNumberToObject(jc, "acc_mismatch", (double)r.acc_mismatch);
                cJSON_AddNumberToObject(jc, "out_mismatch", (double)r.out_mismatch);
                cJSON_AddNumberToObject(jc, "weight_mismatch", (double)r.w_mismatch);
                cJSON_AddNumberToObject(jc, "sat_ref", (double)r.sat_ref);
                cJSON_AddNumberToObject(jc, "sat_got", (double)r.sat_got);
                if (r.ok) passed++;
                else failed++;
            }
            if ((st != QV_OK || !r.ok) && !first_fail[0]) {
                if (plugin)
                    snprintf(first_fail, sizeof kr.first_fail, "qvet kernels --plugin %s --filter '^%s$' --seed %llu",
                             plugin_path, name, seed);
                else
                    snprintf(first_fail, sizeof kr.first_fail, "qvet kernels --filter '^%s$' --seed %llu --backend %s",
                             name, seed, b == 0 ? "cpu" : "gpu");
            }
            cJSON_AddItemToArray(arr, jc);
        }
    }
    kr.bit_exact = passed, kr.failed = failed, kr.errors = errors, kr.run = run, kr.skip_nodev = plugin ? 0 : skipped;
    qv_kernels_run_attn(&kr, acases, na);
    qv_kernels_run_fused(&kr, fcases, nf);
    passed = kr.bit_exact + kr.bounded, failed = kr.failed, errors = kr.errors, run = kr.run;
    if (!plugin) skipped = kr.skip_nodev + kr.skip_other;
    if (plugin) {
        printf("kernels: %ld run, %ld bit-exact, %ld failed, %ld errors; %ld cases skipped (ops the plugin lacks)\n",
               run, passed, failed, errors, skipped);
    } else {
        char other[160] = "";
        if (kr.skip_other)
            snprintf(other, sizeof other, "; %ld skipped for another reason (no CPU emulation, outside a GPU kernel's contract)",
                     kr.skip_other);
        printf("kernels: %ld run, %ld bit-exact, %ld bounded, %ld failed, %ld errors; %ld GPU cases skipped%s%s\n", run,
               kr.bit_exact, kr.bounded, failed, errors, kr.skip_nodev, kr.skip_nodev ? " (no device)" : "", other);
    }
    if (first_fail[0]) printf("reproduce the first failure: %s\n", first_fail);
    cJSON_AddNumberToObject(root, "passed", (double)passed);
    cJSON_AddNumberToObject(root, "failed", (double)failed);
    cJSON_AddNumberToObject(root, "errors", (double)errors);
    cJSON_AddNumberToObject(root, "skipped", (double)skipped);
    cJSON_AddNumberToObject(root, "bit_exact", (double)kr.bit_exact);
    cJSON_AddNumberToObject(root, "bounded", (double)kr.bounded);
    /* a plugin that skips every selected case has proven nothing: that is not a pass */
    int rc = failed || errors || (plugin && run == 0) ? QV_EXIT_FAIL : QV_EXIT_OK;
    if (plugin && run == 0) printf("kernels: no case ran on the plugin -> FAIL\n");
    if (json_path) {
        char *txt = cJSON_Print(root);
        st = txt ? qv_write_file_atomic(json_path, txt, strlen(txt)) : QV_ERR_NOMEM;
        free(txt);
        if (st != QV_OK) rc = qv_cli_report(st);
    }
    cJSON_Delete(root);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    free(cases), free(acases), free(fcases);
    qv_kcase_set_plugin(NULL);
    qv_kplugin_close(plugin);
    return rc;
}
