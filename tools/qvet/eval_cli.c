/* Shared pieces of the eval commands: see eval_cli.h. */
#include <cJSON.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "eval_cli.h"
#include "qvet/fileio.h"
#include "qvet/safetensors.h"
#include "qvet/synth.h"

extern const char qv_synth_training_text[]; /* ref/synth/synth_text.c: qvet's own prose */

double qv_evcli_now(void)
{
    return qv_progress_now();
}

/* Round a float weight's mantissa to `bits` bits (nearest, ties away: add half an ulp, mask):
 * a deterministic, controllable perturbation standing in for a quantized candidate. */
static void round_tensor(unsigned char *p, int64_t n, qv_dtype dt, int bits)
{
    int mant = dt == QV_F16 ? 10 : dt == QV_BF16 ? 7 : 23;
    int drop = mant - bits;
    if (drop <= 0) return;
    for (int64_t i = 0; i < n; i++) {
        if (dt == QV_F32) {
            uint32_t u;
            memcpy(&u, p + 4 * i, 4);
            if (((u >> 23) & 0xffu) == 0xffu) continue;
            u = (u + (1u << (drop - 1))) & ~((1u << drop) - 1u);
            memcpy(p + 4 * i, &u, 4);
        } else {
            uint16_t u;
            memcpy(&u, p + 2 * i, 2);
            unsigned emask = dt == QV_F16 ? 0x7c00u : 0x7f80u;
            if ((u & emask) == emask) continue;
            u = (uint16_t)((u + (1u << (drop - 1))) & ~((1u << drop) - 1u));
            memcpy(p + 2 * i, &u, 2);
        }
    }
}

static qv_status open_rounded(const char *dir, int bits, qv_model **out)
{
    char *cfg = NULL, *tok = NULL;
    unsigned char *st = NULL;
    size_t st_size = 0, n;
    char label[512];
    if (!dir) {
        qv_synth_files f;
        QV_TRY(qv_synth_build(QV_SYNTH_TINY, 0, &f));
        cfg = f.config_json, st = f.safetensors, st_size = f.safetensors_size, tok = f.tokenizer_json;
        snprintf(label, sizeof label, "<synthetic:tiny:0 rounded to %d bits>", bits);
    } else {
        char *pc = qv_path_join(dir, "config.json"), *ps = qv_path_join(dir, "model.safetensors");
        char *pt = qv_path_join(dir, "tokenizer.json");
        qv_status s = pc && ps && pt ? QV_OK : QV_ERR_NOMEM;
        if (s == QV_OK) s = qv_read_file(pc, (size_t)1 << 24, &cfg, &n);
        if (s == QV_OK && !qv_path_exists(ps))
            s = qv_fail(QV_ERR_UNSUPPORTED, "%s: --cand-round-bits needs a single-file model.safetensors", ps);
        if (s == QV_OK) s = qv_read_file(ps, (size_t)1 << 34, (char **)&st, &st_size);
        if (s == QV_OK && qv_path_exists(pt)) s = qv_read_file(pt, (size_t)1 << 28, &tok, &n);
        free(pc), free(ps), free(pt);
        if (s != QV_OK) {
            free(cfg), free(st), free(tok);
            return s;
        }
        snprintf(label, sizeof label, "%s (rounded to %d bits)", dir, bits);
    }
    qv_st_file *f = NULL;
    qv_status s = qv_st_open_buffer(st, st_size, label, &f);
    if (s == QV_OK) {
        for (int i = 0; i < f->n_entries; i++) {
            qv_tensor *t = &f->entries[i].t;
            if (t->dtype == QV_F16 || t->dtype == QV_BF16 || t->dtype == QV_F32)
                round_tensor(st + ((const unsigned char *)t->data - f->base), qv_tensor_numel(t), t->dtype, bits);
        }
        qv_st_close(f);
        return qv_model_open_buffers(label, cfg, st, st_size, tok, out);
    }
    free(cfg), free(st), free(tok);
    return s;
}

static qv_status open_model(const char *dir, qv_model **m)
{
    return dir ? qv_model_open(dir, m) : qv_cli_default_model(m);
}

static qv_status open_engine(const char *name, const qv_model *m, const qv_evcli_pair_opts *o, qv_engine **e)
{
    qv_engine_opts eo;
    qv_engine_opts_init(&eo);
    if (strstr(name, "-qoq") && o->qoq_opts) eo = *o->qoq_opts;
    eo.threads = o->threads;
    eo.quantized_path = strstr(name, "-qoq") ? o->quantized : NULL;
    qv_status st = qv_engine_open(name, m, &eo, e);
    if (st == QV_ERR_UNSUPPORTED)
        return qv_fail(st, "engine '%s' is not available in this build yet (%s); to exercise the evals "
                           "meanwhile, compare ref-fp32 with a perturbed ref-fp32: --cand ref-fp32 --cand-round-bits 4",
                       name, qv_last_error());
    return st;
}

qv_status qv_evcli_pair_open(const qv_evcli_pair_opts *o, qv_evcli_pair *p)
{
    *p = (qv_evcli_pair){0};
    qv_status st = open_model(o->model_dir, &p->mr);
    if (st == QV_OK) {
        if (o->cand_round_bits >= 0) st = open_rounded(o->cand_model_dir ? o->cand_model_dir : o->model_dir, o->cand_round_bits, &p->mc);
        else if (o->cand_model_dir) st = qv_model_open(o->cand_model_dir, &p->mc);
        else p->mc = p->mr;
    }
    if (st == QV_OK) st = open_engine(o->ref, p->mr, o, &p->er);
    if (st == QV_OK) st = open_engine(o->cand, p->mc, o, &p->ec);
    if (st != QV_OK) qv_evcli_pair_close(p);
    return st;
}

void qv_evcli_pair_close(qv_evcli_pair *p)
{
    if (p->er) qv_engine_close(p->er);
    if (p->ec) qv_engine_close(p->ec);
    if (p->mc && p->mc != p->mr) qv_model_close(p->mc);
    if (p->mr) qv_model_close(p->mr);
    *p = (qv_evcli_pair){0};
}

qv_status qv_evcli_text(const char *file, int builtin_ok, char **text, size_t *len)
{
    if (file) return qv_read_file(file, (size_t)1 << 31, text, len);
    if (!builtin_ok) return qv_fail(QV_ERR_USAGE, "--text FILE is required (a built-in text is only for the built-in synthetic model)");
    /* qvet's own prose repeated: enough tokens for the default budgets on the synthetic model */
    size_t one = strlen(qv_synth_training_text), reps = 40;
    char *t = qv_malloc(one * reps + 1);
    if (!t) return QV_ERR_NOMEM;
    for (size_t r = 0; r < reps; r++) memcpy(t + r * one, qv_synth_training_text, one);
    t[one * reps] = 0;
    *text = t;
    *len = one * reps;
    return QV_OK;
}

int qv_evcli_parse_shard(const char *s, int *i, int *n)
{
    char *e1, *e2;
    long a = strtol(s, &e1, 10);
    if (e1 == s || *e1 != '/') return -1;
    long b = strtol(e1 + 1, &e2, 10);
    if (e2 == e1 + 1 || *e2 || b < 1 || a < 0 || a >= b || b > 1000000) return -1;
    *i = (int)a;
    *n = (int)b;
    return 0;
}

char *qv_evcli_cmdline(int argc, char **argv)
{
    size_t n = 5;
    for (int i = 0; i < argc; i++) n += strlen(argv[i]) + 3;
    char *s = malloc(n);
    if (!s) return NULL;
    strcpy(s, "qvet");
    for (int i = 0; i < argc; i++) {
        strcat(s, " ");
        int q = argv[i][0] == 0 || strpbrk(argv[i], " \t'\"$") != NULL;
        if (q) strcat(s, "'");
        strcat(s, argv[i]);
        if (q) strcat(s, "'");
    }
    return s;
}

void qv_evcli_progress_init(qv_evcli_progress *p, const char *label)
{
    qv_progress_init(&p->bar, label, NULL);
}

void qv_evcli_progress_cb(void *user, int64_t done, int64_t total)
{
    qv_progress_update(&((qv_evcli_progress *)user)->bar, done, total);
}

void qv_evcli_progress_end(qv_evcli_progress *p)
{
    qv_progress_finish(&p->bar);
}

void qv_evcli_test_kill_hook(int64_t committed)
{
    const char *k = getenv("QVET_TEST_KILL_AFTER");
    if (k && *k && committed >= atoll(k)) raise(SIGKILL);
}

cJSON *qv_evcli_meta_key(const cJSON *meta)
{
    cJSON *k = cJSON_Duplicate(meta, 1);
    cJSON_DeleteItemFromObjectCaseSensitive(k, "shard");
    cJSON_DeleteItemFromObjectCaseSensitive(k, "command");
    return k;
}

void qv_evcli_meta_unshard(cJSON *meta, const char *cmd)
{
    cJSON *sh = cJSON_GetObjectItemCaseSensitive(meta, "shard");
    cJSON_ReplaceItemInObjectCaseSensitive(sh, "i", cJSON_CreateNumber(0));
    cJSON_ReplaceItemInObjectCaseSensitive(sh, "n", cJSON_CreateNumber(1));
    cJSON_DeleteItemFromObjectCaseSensitive(meta, "command");
    if (cmd) cJSON_AddStringToObject(meta, "command", cmd);
}
