/* The comparison of a pin's stored values with freshly produced ones (golden/lib/golden_internal.h),
 * shared by `qvet golden check` (a verdict) and `qvet golden update` (the diff shown before the
 * manifest is rewritten). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "golden/lib/golden_internal.h"


int qv_golden_diff(const cJSON *exp, const cJSON *got, qv_golden_log_fn log, void *user, char *first, size_t nfirst)
{
    int changed = 0;
    if (first && nfirst) first[0] = 0;
    for (const cJSON *g = got->child; g; g = g->next) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(exp, g->string);
        char line[900] = "";
        if (!e) snprintf(line, sizeof line, "%s: new (not in the stored golden)", g->string);
        else if (cJSON_IsString(g)) {
            if (!cJSON_IsString(e) || strcmp(e->valuestring, g->valuestring))
                snprintf(line, sizeof line, "%s: %.20s... -> %.20s...", g->string, cJSON_IsString(e) ? e->valuestring : "?",
                         g->valuestring);
        } else if (cJSON_IsArray(g)) {
            int n = cJSON_GetArraySize(g), ne = cJSON_GetArraySize(e), nd = 0, at = -1;
            double mx = 0;
            /* walk both lists together: cJSON_GetArrayItem(i) would make this quadratic */
            const cJSON *a = cJSON_IsArray(e) ? e->child : NULL, *b = g->child;
            for (int i = 0; i < n; i++, b = b->next, a = a ? a->next : NULL) {
                double d = cJSON_IsNumber(a) && cJSON_IsNumber(b) ? fabs(a->valuedouble - b->valuedouble) : INFINITY;
                if (!(d == 0)) {
                    nd++;
                    if (!(d <= mx)) mx = d, at = i;
                }
            }
            if (nd || n != ne)
                snprintf(line, sizeof line, "%s: %d of %d values changed (stored %d), max change %.6g at [%d]", g->string, nd, n,
                         ne, mx, at);
        }
        if (line[0]) {
            changed++;
            qv_golden_say(log, user, "  changed %s", line);
            if (first && !first[0]) snprintf(first, nfirst, "%s", line);
        }
    }
    for (const cJSON *e = exp->child; e; e = e->next)
        if (!cJSON_GetObjectItemCaseSensitive(got, e->string)) {
            changed++;
            qv_golden_say(log, user, "  changed %s: no longer produced", e->string);
        }
    return changed;
}

