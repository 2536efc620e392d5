/* qvet niah: needle-in-a-haystack / passkey grid for R and C (EVALS.md; eval_niah.h says how
 * exact retrieval is decided). --shard i/n runs cells k with k % n == i; --resume keeps the cells
 * already in --json. Exit 0 ok, 1 NaN/Inf from an engine, 2 usage/input, 3 internal. */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "eval_cmds.h"
#include "qvet/fileio.h"

static const char *QV_NIAH_BUILTIN =
    "The reference engine is slow and plain. It reads the weights, multiplies matrices in single precision, "
    "and keeps a cache of keys and values for every token it has seen. The fast engine is clever: it packs "
    "two weights into each byte and reorders them so that each thread loads sixteen bytes at once. Clever code "
    "is where silent errors hide, so the two engines are compared on thousands of shapes. A river runs past the "
    "old mill, and in spring the water is high and brown. The miller's daughter counts the sacks of grain each "
    "evening and writes the number in a ledger with a green cover. Nobody has read the ledger for years.\n";

typedef struct {
    qv_niah_cell *v;
    int n, cap;
    cJSON *meta;
    const char *json;
    int nl, nd;
    int64_t committed;
} niah_state;

static qv_status niah_json(const niah_state *s, cJSON **out)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "schema", "qvet.niah");
    cJSON_AddNumberToObject(j, "schema_version", QV_NIAH_SCHEMA_VERSION);
    cJSON_AddItemToObject(j, "meta", cJSON_Duplicate(s->meta, 1));
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(s->meta, "shard");
    int si = cJSON_GetObjectItemCaseSensitive(sh, "i")->valueint, sn = cJSON_GetObjectItemCaseSensitive(sh, "n")->valueint;
    int expect = 0;
    for (int k = si; k < s->nl * s->nd; k += sn) expect++;
    cJSON_AddBoolToObject(j, "complete", s->n == expect);
    cJSON *ca = cJSON_AddArrayToObject(j, "cells");
    for (int k = 0; k < s->nl * s->nd; k++)
        for (int i = 0; i < s->n; i++)
            if (s->v[i].cell == k) cJSON_AddItemToArray(ca, qv_niah_cell_json(&s->v[i]));
    cJSON_AddItemToObject(j, "summary", qv_niah_summary_json(s->v, s->n, s->nl, s->nd));
    *out = j;
    return QV_OK;
}

static qv_status add_cell(niah_state *s, const qv_niah_cell *c)
{
    for (int i = 0; i < s->n; i++)
        if (s->v[i].cell == c->cell) return qv_fail(QV_ERR_INPUT, "niah: cell %d appears twice", c->cell);
    if (c->cell < 0 || c->cell >= s->nl * s->nd || c->li != c->cell / s->nd || c->di != c->cell % s->nd)
        return qv_fail(QV_ERR_INPUT, "niah: cell %d is outside the %d x %d grid", c->cell, s->nl, s->nd);
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 32;
        qv_niah_cell *v = realloc(s->v, sizeof *v * (size_t)cap);
        if (!v) return qv_fail(QV_ERR_NOMEM, "niah: out of memory");
        s->v = v, s->cap = cap;
    }
    s->v[s->n++] = *c;
    return QV_OK;
}

static qv_status on_cell(void *user, const qv_niah_cell *c)
{
    niah_state *s = user;
    QV_TRY(add_cell(s, c));
    if (!s->json) return QV_OK;
    cJSON *j;
    QV_TRY(niah_json(s, &j));
    qv_status st = qv_json_write_atomic(s->json, j);
    cJSON_Delete(j);
    if (st == QV_OK) qv_evcli_test_kill_hook(++s->committed);
    return st;
}


qv_status qv_niah_load(const char *path, cJSON **meta, qv_niah_cell **cells, int *n)
{
    cJSON *j = NULL;
    *meta = NULL, *cells = NULL, *n = 0;
    QV_TRY(qv_json_read(path, &j));
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(j, "schema"), *ver = cJSON_GetObjectItemCaseSensitive(j, "schema_version");
    const cJSON *ca = cJSON_GetObjectItemCaseSensitive(j, "cells"), *me = cJSON_GetObjectItemCaseSensitive(j, "meta");
    qv_status st = QV_OK;
    if (!cJSON_IsString(sc) || strcmp(sc->valuestring, "qvet.niah") || !cJSON_IsNumber(ver) ||
        ver->valueint != QV_NIAH_SCHEMA_VERSION || !cJSON_IsArray(ca) || !cJSON_IsObject(me))
        st = qv_fail(QV_ERR_INPUT, "%s: not a qvet niah result of schema_version %d", path, QV_NIAH_SCHEMA_VERSION);
    int cnt = st == QV_OK ? cJSON_GetArraySize(ca) : 0, i = 0;
    qv_niah_cell *v = st == QV_OK ? qv_calloc((size_t)(cnt ? cnt : 1), sizeof *v) : NULL;
    if (st == QV_OK && !v) st = QV_ERR_NOMEM;
    for (const cJSON *c = st == QV_OK ? ca->child : NULL; c && st == QV_OK; c = c->next) st = qv_niah_cell_from_json(c, path, &v[i++]);
    if (st == QV_OK) {
        *meta = cJSON_Duplicate(me, 1);
        *cells = v;
        *n = cnt;
    } else free(v);
    cJSON_Delete(j);
    return st;
}

qv_status qv_niah_exec(const qv_niah_args *a, qv_evcli_pair *p, cJSON **result)
{
    *result = NULL;
    char *hay = NULL;
    size_t hlen = 0;
    const char *hpath = a->haystack;
    if (!hpath && !a->passkey && qv_path_exists("/work/shared/data/long.txt")) hpath = "/work/shared/data/long.txt";
    if (!a->passkey) {
        if (hpath) QV_TRY(qv_read_file(hpath, (size_t)1 << 30, &hay, &hlen));
        else {
            hay = strdup(QV_NIAH_BUILTIN);
            hlen = strlen(QV_NIAH_BUILTIN);
        }
    }
    if (!p->mr->tok) {
        free(hay);
        return qv_fail(QV_ERR_INPUT, "%s: the model has no tokenizer.json", p->mr->dir);
    }
    niah_state s = {.json = a->json, .nl = a->n_lengths, .nd = a->n_depths};
    cJSON *m = s.meta = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "model", p->mr->dir);
    if (p->mc != p->mr) cJSON_AddStringToObject(m, "cand_model", p->mc->dir);
    cJSON_AddStringToObject(m, "ref", a->pair.ref);
    cJSON_AddStringToObject(m, "cand", a->pair.cand);
    if (a->pair.quantized) cJSON_AddStringToObject(m, "quantized", a->pair.quantized);
    cJSON_AddStringToObject(m, "mode", a->passkey ? "passkey" : "needle");
    cJSON_AddStringToObject(m, "haystack", a->passkey ? "<passkey filler>" : hpath ? hpath : "<built-in text>");
    cJSON_AddNumberToObject(m, "seed", (double)a->seed);
    cJSON_AddNumberToObject(m, "max_position_embeddings", p->mr->cfg.max_position_embeddings);
    cJSON *L = cJSON_AddArrayToObject(m, "lengths"), *D = cJSON_AddArrayToObject(m, "depths");
    for (int i = 0; i < a->n_lengths; i++) cJSON_AddItemToArray(L, cJSON_CreateNumber(a->lengths[i]));
    for (int i = 0; i < a->n_depths; i++) cJSON_AddItemToArray(D, cJSON_CreateNumber(a->depths[i]));
    cJSON *sh = cJSON_AddObjectToObject(m, "shard");
    cJSON_AddNumberToObject(sh, "i", a->shard_i);
    cJSON_AddNumberToObject(sh, "n", a->shard_n);
    if (a->cmd) cJSON_AddStringToObject(m, "command", a->cmd);
    unsigned char *have = qv_calloc((size_t)(a->n_lengths * a->n_depths), 1);
    qv_status st = have ? QV_OK : QV_ERR_NOMEM;
    if (st == QV_OK && a->resume && a->json && qv_path_exists(a->json)) {
        cJSON *om = NULL;
        qv_niah_cell *oc = NULL;
        int on = 0;
        st = qv_niah_load(a->json, &om, &oc, &on);
        if (st == QV_OK) {
            cJSON *k1 = qv_evcli_meta_key(om), *k2 = qv_evcli_meta_key(m);
            if (!cJSON_Compare(k1, k2, 1) || !cJSON_Compare(cJSON_GetObjectItem(om, "shard"), sh, 1))
                st = qv_fail(QV_ERR_INPUT, "%s: --resume: the file is from a different run (its meta differs)", a->json);
            cJSON_Delete(k1), cJSON_Delete(k2);
        }
        for (int i = 0; st == QV_OK && i < on; i++) {
            st = add_cell(&s, &oc[i]);
            if (st == QV_OK) have[oc[i].cell] = 1;
        }
        if (st == QV_OK && on && !a->quiet) fprintf(stderr, "qvet niah: resuming: %d cells already in %s\n", on, a->json);
        cJSON_Delete(om);
        free(oc);
    }
    if (st == QV_OK) {
        qv_evcli_progress pg;
        qv_evcli_progress_init(&pg, a->passkey ? "passkey" : "niah");
        qv_niah_opts o = {.tok = p->mr->tok, .haystack = hay, .haystack_len = hlen, .passkey = a->passkey,
                          .lengths = a->lengths, .n_lengths = a->n_lengths, .depths = a->depths,
                          .n_depths = a->n_depths, .seed = a->seed, .shard_i = a->shard_i, .shard_n = a->shard_n,
                          .have = have, .on_cell = on_cell, .user = &s, .progress = qv_evcli_progress_cb,
                          .progress_user = &pg};
        st = qv_eval_niah(p->er, p->ec, &o);
        qv_evcli_progress_end(&pg);
    }
    if (st == QV_OK) st = niah_json(&s, result);
    if (st == QV_OK && a->json) st = qv_json_write_atomic(a->json, *result);
    if (st != QV_OK && *result) {
        cJSON_Delete(*result);
        *result = NULL;
    }
    free(have);
    free(hay);
    free(s.v);
    cJSON_Delete(s.meta);
    return st;
}

void qv_niah_print(const cJSON *r)
{
    const cJSON *m = cJSON_GetObjectItem(r, "meta"), *s = cJSON_GetObjectItem(r, "summary");
    const cJSON *L = cJSON_GetObjectItem(m, "lengths"), *D = cJSON_GetObjectItem(m, "depths");
    printf("%s: %d cells (ref %s, cand %s)\n", cJSON_GetObjectItem(m, "mode")->valuestring,
           cJSON_GetObjectItem(s, "cells")->valueint, cJSON_GetObjectItem(m, "ref")->valuestring,
           cJSON_GetObjectItem(m, "cand")->valuestring);
    const char *names[3] = {"lp_ref", "lp_cand", "lp_delta"};
    const char *titles[3] = {"mean log p(answer), R (* = exact retrieval)", "mean log p(answer), C (* = exact retrieval)",
                             "C - R"};
    for (int g = 0; g < 3; g++) {
        printf("  %s\n  %8s", titles[g], "len\\depth");
        for (const cJSON *d = D->child; d; d = d->next) printf(" %8.2f", d->valuedouble);
        printf("\n");
        int li = 0;
        for (const cJSON *l = L->child; l; l = l->next, li++) {
            printf("  %9d", l->valueint);
            const cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItem(s, names[g]), li);
            const cJSON *hit = g < 2 ? cJSON_GetArrayItem(cJSON_GetObjectItem(s, g ? "hit_cand" : "hit_ref"), li) : NULL;
            int di = 0;
            for (const cJSON *v = row->child; v; v = v->next, di++) {
                if (!cJSON_IsNumber(v)) printf(" %8s", "-");
                else printf(" %7.3f%s", v->valuedouble, hit && cJSON_GetArrayItem(hit, di)->valuedouble > 0 ? "*" : " ");
            }
            printf("\n");
        }
    }
    if (cJSON_GetObjectItem(s, "hit_rate_ref"))
        printf("  retrieval R %.3f  C %.3f  (C-R %+.3f);  mean log p R %.4f  C %.4f  (C-R %+.4f, worst cell %+.4f)\n",
               cJSON_GetObjectItem(s, "hit_rate_ref")->valuedouble, cJSON_GetObjectItem(s, "hit_rate_cand")->valuedouble,
               cJSON_GetObjectItem(s, "hit_rate_delta")->valuedouble, cJSON_GetObjectItem(s, "lp_mean_ref")->valuedouble,
               cJSON_GetObjectItem(s, "lp_mean_cand")->valuedouble, cJSON_GetObjectItem(s, "lp_delta_mean")->valuedouble,
               cJSON_GetObjectItem(s, "lp_delta_min")->valuedouble);
}

int qv_evcli_parse_list(const char *cmd, const char *flag, const char *s, int as_int, double lo, double hi,
                        double **out, int *n)
{
    int cap = 1;
    for (const char *c = s; *c; c++) cap += *c == ',';
    double *v = malloc(sizeof(double) * (size_t)cap);
    int k = 0;
    const char *c = s;
    while (v) {
        char *e;
        double x = strtod(c, &e);
        if (e == c || (*e && *e != ',') || !(x >= lo && x <= hi) || (as_int && x != floor(x))) {
            free(v);
            qv_cli_usage_error(cmd, "%s: '%s' is not a comma-separated list of %s in [%g, %g]", flag, s,
                               as_int ? "integers" : "numbers", lo, hi);
            return -1;
        }
        v[k++] = x;
        if (!*e) break;
        c = e + 1;
    }
    *out = v;
    *n = k;
    return v ? 0 : -1;
}

int qv_evcli_niah_flag(const char *cmd, int argc, char **argv, int *i, qv_niah_args *a)
{
    const char *f = argv[*i];
    if (!strcmp(f, "--passkey")) {
        a->passkey = 1;
        return 1;
    }
    int isl = !strcmp(f, "--lengths"), isd = !strcmp(f, "--depths"), iss = !strcmp(f, "--seed");
    int ish = !strcmp(f, "--haystack");
    if (!isl && !isd && !iss && !ish) return 0;
    if (*i + 1 >= argc) {
        qv_cli_usage_error(cmd, "%s needs a value", f);
        return -1;
    }
    const char *v = argv[++*i];
    if (ish) a->haystack = v;
    else if (iss) {
        long long x;
        if (qv_evcli_int_arg(cmd, f, v, 0, &x)) return -1;
        a->seed = (unsigned long long)x;
    } else if (isd) {
        free(a->depths);
        a->depths = NULL;
        if (qv_evcli_parse_list(cmd, f, v, 0, 0, 1, &a->depths, &a->n_depths)) return -1;
    } else {
        double *d;
        int n;
        if (qv_evcli_parse_list(cmd, f, v, 1, 16, 1e7, &d, &n)) return -1;
        free(a->lengths);
        a->lengths = malloc(sizeof(int) * (size_t)n);
        for (int k = 0; a->lengths && k < n; k++) a->lengths[k] = (int)d[k];
        a->n_lengths = n;
        free(d);
    }
    return 1;
}

/* Default grid (EVALS.md validate budget): {512, 1k, 2k, 3k, 4k} x {0, .2, .4, .6, .8, 1}, lengths
 * above the model's maximum dropped (one capped cell at the maximum kept). */
void qv_evcli_niah_defaults(qv_niah_args *a, int max_pos)
{
    static const int L[5] = {512, 1024, 2048, 3072, 4096};
    if (!a->lengths) {
        a->lengths = malloc(sizeof(int) * 5);
        a->n_lengths = 0;
        for (int i = 0; a->lengths && i < 5; i++)
            if (L[i] <= max_pos) a->lengths[a->n_lengths++] = L[i];
        if (a->lengths && a->n_lengths == 0) a->lengths[a->n_lengths++] = max_pos;
    }
    if (!a->depths) {
        a->depths = malloc(sizeof(double) * 6);
        for (int i = 0; a->depths && i < 6; i++) a->depths[i] = 0.2 * i;
        a->n_depths = 6;
    }
}

int qv_cmd_niah(int argc, char **argv)
{
    if (qv_cli_wants_help(argc, argv)) {
        qv_cli_print_help(qv_find_command("niah"));
        return QV_EXIT_OK;
    }
    qv_niah_args a = {.pair = {.ref = "ref-fp32", .cand = "ref-qoq", .cand_round_bits = -1}, .shard_n = 1, .seed = 1234};
    int rc = QV_EXIT_OK;
    for (int i = 1; i < argc && rc == QV_EXIT_OK; i++) {
        int r = qv_evcli_common_flag("niah", argc, argv, &i, &a.pair);
        if (!r) r = qv_evcli_niah_flag("niah", argc, argv, &i, &a);
        if (r < 0) rc = QV_EXIT_USAGE;
        if (r) continue;
        const char *f = argv[i];
        if (!strcmp(f, "--resume")) a.resume = 1;
        else if (!strcmp(f, "--json") && i + 1 < argc) a.json = argv[++i];
        else if (!strcmp(f, "--shard") && i + 1 < argc) {
            if (qv_evcli_parse_shard(argv[++i], &a.shard_i, &a.shard_n))
                rc = qv_cli_usage_error("niah", "--shard: '%s' is not i/n with 0 <= i < n", argv[i]);
        } else rc = qv_cli_usage_error("niah", "unknown flag or missing value: %s", f);
    }
    if (rc == QV_EXIT_OK && a.resume && !a.json) rc = qv_cli_usage_error("niah", "--resume needs --json FILE");
    qv_evcli_pair p = {0};
    qv_status st = QV_OK;
    cJSON *res = NULL;
    if (rc == QV_EXIT_OK) {
        a.cmd = qv_evcli_cmdline(argc, argv);
        st = qv_evcli_pair_open(&a.pair, &p);
        if (st == QV_OK) qv_evcli_niah_defaults(&a, p.mr->cfg.max_position_embeddings);
        if (st == QV_OK && (!a.lengths || !a.depths)) st = QV_ERR_NOMEM;
        if (st == QV_OK) st = qv_niah_exec(&a, &p, &res);
        if (st == QV_OK) {
            qv_niah_print(res);
            if (a.json) printf("wrote %s\n", a.json);
        }
        rc = st == QV_OK ? QV_EXIT_OK : qv_cli_report(st);
    }
    cJSON_Delete(res);
    qv_evcli_pair_close(&p);
    free(a.lengths), free(a.depths), free(a.cmd);
    return rc;
}
