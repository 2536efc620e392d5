/* ref-fp32 against goldens from an independent implementation: Hugging Face transformers'
 * LlamaForCausalLM in FP32 (tools/golden_transformers.py), stored in golden/<name>/ as
 * safetensors + manifest.json. For every stored sequence (lengths 1, 5, 64, 512, 2048) the logits
 * rows, and for the sequence with per-layer states the embedding output and the residual stream
 * after every layer, must lie within docs/bounds.md §4's depth bound (qv_golden_bound_rel) times
 * max|golden|. Before comparing, the test proves the golden applies to the model it runs: the
 * manifest's model.safetensors sha256 must be that of the model's bytes (the shared file; the
 * synthetic model's in-memory build, whose preset and seed the manifest records).
 *   golden/tiny-llama: ../shared/models/qvet-tiny-llama (skipped visibly when absent)
 *   golden/synth-tiny: the built-in synthetic model (qv_synth_open(QV_SYNTH_TINY, 0)) */
#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qv_test_util.h"
#include "qvet/compare.h"
#include "qvet/engine.h"
#include "qvet/fileio.h"
#include "qvet/safetensors.h"
#include "qvet/synth.h"

/* tok_fixture.h carries the tests' SHA-256; its other helpers are unused here. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "tok_fixture.h"
#pragma GCC diagnostic pop

static cJSON *load_manifest(const char *gdir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/manifest.json", gdir);
    char *text = NULL;
    size_t len = 0;
    ck_assert_msg(qv_read_file(path, 1 << 20, &text, &len) == QV_OK, "%s", qv_last_error());
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    ck_assert_msg(cJSON_IsObject(j), "%s: not a JSON object", path);
    return j;
}

static const char *manifest_sha(const cJSON *man)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(man, "model");
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(model, "model.safetensors_sha256");
    ck_assert_msg(cJSON_IsString(sha) && strlen(sha->valuestring) == 64, "manifest lacks model.safetensors_sha256");
    return sha->valuestring;
}

typedef struct {
    int hidden, n, n_layers;
    float *embed;     /* [n, hidden]: block input of layer 0 */
    float *residual;  /* [n_layers, n, hidden] */
} hidden_cap;

static void on_capture(void *user, const qv_capture_point *p)
{
    hidden_cap *h = user;
    size_t row = (size_t)h->hidden;
    float *dst = NULL;
    if (p->kind == QV_CAP_BLOCK_INPUT && p->layer == 0) dst = h->embed;
    else if (p->kind == QV_CAP_RESIDUAL) dst = h->residual + (size_t)p->layer * (size_t)h->n * row;
    if (dst) memcpy(dst + (size_t)p->pos0 * row, p->data, sizeof(float) * (size_t)p->n_pos * row);
}

static const float *f32_tensor(const qv_st_file *f, const char *name, int64_t want_numel)
{
    const qv_st_entry *e = qv_st_find(f, name);
    ck_assert_msg(e != NULL, "%s: no tensor '%s'", f->path, name);
    ck_assert_msg(e->t.dtype == QV_F32 && qv_tensor_numel(&e->t) == want_numel,
                  "%s: tensor '%s' is not F32 with %lld values", f->path, name, (long long)want_numel);
    return e->t.data;
}

/* Compares got vs ref within rel * max|ref|; prints the error relative to max|ref|. Returns the
 * relative error. */
static double check(const char *what, const float *got, const float *ref, int64_t n, double rel)
{
    double mx = 0;
    for (int64_t i = 0; i < n; i++) mx = fmax(mx, fabs(ref[i]));
    qv_compare_result r;
    qv_status st = qv_compare_f32(what, got, ref, n, rel * mx, &r);
    printf("  %-28s max|err| %.3e = %.2e of max|ref| %.4g (bound %.2e: ratio %.4f), NMSE %.2e\n", what,
           r.max_abs, r.max_abs / mx, mx, rel, r.ratio, r.nmse);
    ck_assert_msg(st == QV_OK, "%s", qv_last_error());
    return r.max_abs / mx;
}

/* Runs every sequence of the golden folder through ref-fp32 on model m. */
static void run_golden(const char *gdir, const qv_model *m)
{
    cJSON *man = load_manifest(gdir);
    const qv_config *c = &m->cfg;
    const int V = c->vocab_size, H = c->hidden_size, L = c->num_layers;
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(man, "files");
    ck_assert_msg(cJSON_GetArraySize(files) >= 1, "%s/manifest.json: no files", gdir);
    int hidden_seen = 0;
    double worst = 0;
    for (const cJSON *it = files->child; it; it = it->next) {
        const char *fname = cJSON_GetObjectItemCaseSensitive(it, "file")->valuestring;
        int n = cJSON_GetObjectItemCaseSensitive(it, "length")->valueint;
        int rows = cJSON_GetObjectItemCaseSensitive(it, "logits_rows")->valueint;
        int want_hidden = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "hidden_states"));
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", gdir, fname);
        qv_st_file *f = NULL;
        ck_assert_msg(qv_st_open(path, &f) == QV_OK, "%s", qv_last_error());
        const qv_st_entry *ie = qv_st_find(f, "ids"), *pe = qv_st_find(f, "logits_pos");
        ck_assert_msg(ie && ie->t.dtype == QV_I64 && qv_tensor_numel(&ie->t) == n, "%s: ids not I64 [%d]", path, n);
        ck_assert_msg(pe && pe->t.dtype == QV_I64 && qv_tensor_numel(&pe->t) == rows, "%s: logits_pos not I64 [%d]", path, rows);
        const float *gold = f32_tensor(f, "logits", (int64_t)rows * V);
        int32_t *ids = malloc(sizeof(int32_t) * (size_t)n);
        for (int i = 0; i < n; i++) {
            int64_t v = ((const int64_t *)ie->t.data)[i];
            ck_assert_msg(v >= 0 && v < V, "%s: id %lld out of the vocabulary", path, (long long)v);
            ids[i] = (int32_t)v;
        }
        /* the rows are the last `rows` positions, which is what prefill's last_n returns */
        for (int r = 0; r < rows; r++)
            ck_assert_int_eq(((const int64_t *)pe->t.data)[r], n - rows + r);

        qv_engine_opts o;
        qv_engine_opts_init(&o);
        qv_engine *e = NULL;
        ck_assert_msg(qv_engine_open("ref-fp32", m, &o, &e) == QV_OK, "%s", qv_last_error());
        hidden_cap hc = {H, n, L, NULL, NULL};
        if (want_hidden) {
            hc.embed = malloc(sizeof(float) * (size_t)n * H);
            hc.residual = malloc(sizeof(float) * (size_t)n * H * L);
            qv_engine_set_capture(e, on_capture, &hc, (1u << QV_CAP_BLOCK_INPUT) | (1u << QV_CAP_RESIDUAL));
        }
        qv_seq_id sid;
        ck_assert(qv_engine_seq_create(e, 1, &sid) == QV_OK);
        float *logits = malloc(sizeof(float) * (size_t)rows * V);
        const int32_t *tp = ids;
        ck_assert_msg(qv_engine_prefill(e, 1, &sid, &tp, &n, rows, logits) == QV_OK, "%s", qv_last_error());
        printf("%s (%d tokens, %d logits rows):\n", path, n, rows);
        char what[128];
        snprintf(what, sizeof what, "logits (len %d)", n);
        double rel = check(what, logits, gold, (int64_t)rows * V, qv_golden_bound_rel(c, L, n));
        worst = fmax(worst, rel);
        if (want_hidden) {
            hidden_seen = 1;
            /* the embedding output is an exact FP16 -> FP32 copy on both sides: bit equality */
            check("embed (exact)", hc.embed, f32_tensor(f, "embed", (int64_t)n * H), (int64_t)n * H, 0);
            for (int l = 0; l < L; l++) {
                char name[64];
                snprintf(name, sizeof name, "residual.%d", l);
                snprintf(what, sizeof what, "residual after layer %d", l);
                check(what, hc.residual + (size_t)l * n * H, f32_tensor(f, name, (int64_t)n * H), (int64_t)n * H,
                      qv_golden_bound_rel(c, l + 1, n));
            }
        }
        free(hc.embed);
        free(hc.residual);
        free(logits);
        free(ids);
        qv_engine_close(e);
        qv_st_close(f);
    }
    printf("%s: worst logits error %.2e of max|logit| (issue 4 expects well below 1e-4)\n", gdir, worst);
    ck_assert_msg(hidden_seen, "%s: no sequence with per-layer states", gdir);
    cJSON_Delete(man);
}

START_TEST(ref_fp32_matches_transformers_on_shared_tiny_llama)
{
    char gdir[4200], mdir[4200];
    snprintf(gdir, sizeof gdir, "%s/golden/tiny-llama", qv_test_source_dir());
    snprintf(mdir, sizeof mdir, "%s/models/qvet-tiny-llama", qv_test_shared_dir());
    cJSON *man = load_manifest(gdir);
    /* the golden is for these exact weights */
    char *st_path = qv_path_join(mdir, "model.safetensors");
    char *bytes = NULL;
    size_t len = 0;
    ck_assert_msg(qv_read_file(st_path, (size_t)1 << 31, &bytes, &len) == QV_OK, "%s", qv_last_error());
    char hex[65];
    tf_sha256_hex((const unsigned char *)bytes, len, hex);
    ck_assert_msg(strcmp(hex, manifest_sha(man)) == 0, "%s: sha256 %s, the golden was made from %s", st_path, hex,
                  manifest_sha(man));
    free(bytes);
    free(st_path);
    cJSON_Delete(man);
    qv_model *m = NULL;
    ck_assert_msg(qv_model_open(mdir, &m) == QV_OK, "%s", qv_last_error());
    run_golden(gdir, m);
    qv_model_close(m);
}
END_TEST

START_TEST(ref_fp32_matches_transformers_on_synthetic_tiny)
{
    char gdir[4200];
    snprintf(gdir, sizeof gdir, "%s/golden/synth-tiny", qv_test_source_dir());
    cJSON *man = load_manifest(gdir);
    /* the manifest says which synthetic model it ran on (qvet synth writes preset and seed into
     * the safetensors metadata; the golden script copies them) ... */
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(man, "model"), "safetensors_metadata");
    const cJSON *preset = cJSON_GetObjectItemCaseSensitive(meta, "qvet_synthetic_preset");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(meta, "qvet_synthetic_seed");
    ck_assert_msg(cJSON_IsString(preset) && cJSON_IsString(seed), "%s/manifest.json: no synthetic preset/seed", gdir);
    ck_assert_str_eq(preset->valuestring, "tiny");
    ck_assert_str_eq(seed->valuestring, "0");
    /* ... and the bytes the in-memory build opens are the bytes it ran on (a libm difference on
     * another platform could change an FP16 weight: docs/synthetic.md "Determinism") */
    qv_synth_files sf;
    ck_assert_msg(qv_synth_build(QV_SYNTH_TINY, 0, &sf) == QV_OK, "%s", qv_last_error());
    char hex[65];
    tf_sha256_hex(sf.safetensors, sf.safetensors_size, hex);
    ck_assert_msg(strcmp(hex, manifest_sha(man)) == 0, "synthetic tiny seed 0: sha256 %s, the golden was made from %s",
                  hex, manifest_sha(man));
    qv_synth_files_free(&sf);
    cJSON_Delete(man);
    qv_model *m = NULL;
    ck_assert_msg(qv_synth_open(QV_SYNTH_TINY, 0, &m) == QV_OK, "%s", qv_last_error());
    run_golden(gdir, m);
    qv_model_close(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("golden_fp32");
    TCase *tc = tcase_create("golden");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, ref_fp32_matches_transformers_on_synthetic_tiny);
    const char *shared = qv_test_shared_dir();
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/models/qvet-tiny-llama", shared ? shared : "");
    if (shared && qv_is_dir(dir))
        tcase_add_test(tc, ref_fp32_matches_transformers_on_shared_tiny_llama);
    else
        printf("SKIP golden tiny-llama (ref_fp32_matches_transformers_on_shared_tiny_llama): shared assets absent\n");
    suite_add_tcase(s, tc);
    return qv_test_main(s);
}
