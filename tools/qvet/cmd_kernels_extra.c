/* `qvet kernels`: the attention cases (qv_kattn_*: KV4 pages bit for bit, the output within the
 * derived bound) and the fused-producer cases (qv_kfused_*: GPU only) of the matrix, one line per
 * case and backend in the GEMM lines' layout (cmd_kernels.c). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "kernels_run.h"

static int selected(qv_kernels_run *k, const char *name)
{
    return !k->re || pcre2_match(k->re, (PCRE2_SPTR)name, PCRE2_ZERO_TERMINATED, 0, 0, k->md, NULL) >= 0;
}

/* A skipped line: printed, recorded, counted (no device, or another reason). */
static void skip(qv_kernels_run *k, const char *name, const char *bn, int nodev, const char *why)
{
    printf("%-44s %-8s SKIP %s\n", name, bn, why);
    cJSON *jc = cJSON_CreateObject();
    cJSON_AddStringToObject(jc, "case", name);
    cJSON_AddStringToObject(jc, "backend", bn);
    cJSON_AddStringToObject(jc, "result", "skip");
    cJSON_AddStringToObject(jc, "reason", why);
    cJSON_AddItemToArray(k->arr, jc);
    if (nodev) k->skip_nodev++;
    else k->skip_other++;
}

static cJSON *error_line(qv_kernels_run *k, const char *name, const char *bn)
{
    printf("%-44s %-8s ERROR %s\n", name, bn, qv_last_error());
    cJSON *jc = cJSON_CreateObject();
    cJSON_AddStringToObject(jc, "case", name);
    cJSON_AddStringToObject(jc, "backend", bn);
    cJSON_AddStringToObject(jc, "result", "error");
    cJSON_AddStringToObject(jc, "error", qv_last_error());
    k->errors++;
    return jc;
}

static void note_fail(qv_kernels_run *k, const char *name, int gpu)
{
    if (!k->first_fail[0])
        snprintf(k->first_fail, sizeof k->first_fail, "qvet kernels --filter '^%s$' --seed %llu --backend %s", name,
                 k->seed, gpu ? "gpu" : "cpu");
}

void qv_kernels_run_attn(qv_kernels_run *k, const qv_kattn_case *c, int n)
{
    for (int i = 0; i < n; i++) {
        char base[160], name[180];
        qv_kattn_name(&c[i], base, sizeof base);
        snprintf(name, sizeof name, "attn/%s", base);
        if (!selected(k, name)) continue;
        /* the gate's seed for the same case: seed ^ hash of the name without "attn/" */
        uint64_t cseed = (uint64_t)k->seed ^ qv_kernels_name_hash(base);
        for (int b = 0; b < 2; b++) {
            const char *bn = b ? "gpu" : "cpu-emul";
            if (!(b ? k->use_gpu : k->use_cpu)) continue;
            if (b && !k->gpu) {
                skip(k, name, bn, 1, "gpu: no device");
                continue;
            }
            qv_kattn_result r;
            qv_status st = qv_kattn_run(&c[i], b ? QV_KB_GPU : QV_KB_CPU_EMUL, cseed, &r);
            if (st == QV_ERR_USAGE && b) { /* outside the GPU kernels' shape contract: said, not hidden */
                skip(k, name, bn, 0, qv_last_error());
                continue;
            }
            k->run++;
            cJSON *jc;
            if (st != QV_OK) {
                jc = error_line(k, name, bn);
            } else {
                printf("%-44s %-8s kv4: %s  out: %s (worst err/bound %.3g)  %s\n", name, bn,
                       r.code_mismatch ? "MISMATCH" : "bit-exact", r.out_bad || r.nonfinite ? "BEYOND BOUND" : "within bound",
                       r.worst_ratio, r.ok ? "OK" : "FAIL");
                if (!r.ok)
                    printf("    %ld KV4 slots differ, %ld outputs beyond the derived bound, %ld non-finite, NMSE %.3g "
                           "(ceiling 2^-22 = 2.4e-7)\n", r.code_mismatch, r.out_bad, r.nonfinite, r.nmse);
                jc = cJSON_CreateObject();
                cJSON_AddStringToObject(jc, "case", name);
                cJSON_AddStringToObject(jc, "backend", bn);
                cJSON_AddStringToObject(jc, "result", r.ok ? "pass" : "fail");
                cJSON_AddStringToObject(jc, "check", "bounded");
                cJSON_AddNumberToObject(jc, "kv4_slot_mismatch", (double)r.code_mismatch);
                cJSON_AddNumberToObject(jc, "out_beyond_bound", (double)r.out_bad);
                cJSON_AddNumberToObject(jc, "nonfinite", (double)r.nonfinite);
                cJSON_AddNumberToObject(jc, "worst_err_over_bound", isfinite(r.worst_ratio) ? r.worst_ratio : 1e308);
                cJSON_AddNumberToObject(jc, "nmse", isfinite(r.nmse) ? r.nmse : 1e308);
                if (r.ok) k->bounded++;
                else k->failed++;
            }
            if (st != QV_OK || !r.ok) note_fail(k, name, b);
            cJSON_AddItemToArray(k->arr, jc);
        }
    }
}

void qv_kernels_run_fused(qv_kernels_run *k, const qv_kfused_case *c, int n)
{
    for (int i = 0; i < n; i++) {
        char base[160], name[180];
        qv_kfused_name(&c[i], base, sizeof base);
        snprintf(name, sizeof name, "fused/%s", base);
        if (!selected(k, name)) continue;
        if (k->use_cpu) skip(k, name, "cpu-emul", 0, "cpu-emul: no CPU emulation of this kernel (its reference is the definition)");
        if (!k->use_gpu) continue;
        if (!k->gpu) {
            skip(k, name, "gpu", 1, "gpu: no device");
            continue;
        }
        qv_kfused_result r;
        qv_status st = qv_kfused_run(&c[i], QV_KB_GPU, (uint64_t)k->seed ^ qv_kernels_name_hash(name), &r);
        k->run++;
        cJSON *jc;
        if (st != QV_OK) {
            jc = error_line(k, name, "gpu");
        } else {
            if (c[i].kernel == QV_KF_ROPE_KV_WRITE)
                printf("%-44s %-8s q/k/v+pages: %s (%ld bytes)  %s\n", name, "gpu", r.byte_bad ? "MISMATCH" : "bit-exact",
                       r.n, r.ok ? "OK" : "FAIL");
            else if (r.exact)
                printf("%-44s %-8s codes/s_a/rowsum: %s  %s\n", name, "gpu",
                       r.code_bad || r.sa_bad || r.rowsum_bad ? "MISMATCH" : "bit-exact", r.ok ? "OK" : "FAIL");
            else
                printf("%-44s %-8s codes: %s (%ld ties of %ld)  s_a: %s  rowsum: %s  %s\n", name, "gpu",
                       r.code_bad ? "BEYOND TIE RULE" : "within tie rule", r.ties, r.n, r.sa_bad ? "BEYOND BOUND" : "ok",
                       r.rowsum_bad ? "MISMATCH" : "ok", r.ok ? "OK" : "FAIL");
            if (!r.ok)
                printf("    %ld codes, %ld s_a, %ld row sums, %ld bytes bad; first: %s\n", r.code_bad, r.sa_bad,
                       r.rowsum_bad, r.byte_bad, r.first);
            jc = cJSON_CreateObject();
            cJSON_AddStringToObject(jc, "case", name);
            cJSON_AddStringToObject(jc, "backend", "gpu");
            cJSON_AddStringToObject(jc, "result", r.ok ? "pass" : "fail");
            cJSON_AddStringToObject(jc, "check", r.exact ? "bit-exact" : "tie-rule");
            cJSON_AddNumberToObject(jc, "compared", (double)r.n);
            cJSON_AddNumberToObject(jc, "code_bad", (double)r.code_bad);
            cJSON_AddNumberToObject(jc, "ties", (double)r.ties);
            cJSON_AddNumberToObject(jc, "sa_bad", (double)r.sa_bad);
            cJSON_AddNumberToObject(jc, "rowsum_bad", (double)r.rowsum_bad);
            cJSON_AddNumberToObject(jc, "byte_bad", (double)r.byte_bad);
            if (r.first[0]) cJSON_AddStringToObject(jc, "first", r.first);
            if (!r.ok) k->failed++;
            else if (r.exact) k->bit_exact++;
            else k->bounded++;
        }
        if (st != QV_OK || !r.ok) note_fail(k, name, 1);
        cJSON_AddItemToArray(k->arr, jc);
    }
}
