/* qvet trace: the result as JSON (schema "qvet.trace"; docs/trace.md). */
#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qvet/eval_compare.h"
#include "qvet/eval_trace.h"

/* Real number items (not raw text) so the HTML writer and the CLI read them back in memory;
 * cJSON prints doubles so they read back bit for bit. NaN/Inf -> null. */
static cJSON *NUM(double x) { return isfinite(x) ? cJSON_CreateNumber(x) : cJSON_CreateNull(); }

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static cJSON *str_or_null(const char *s) { return s ? cJSON_CreateString(s) : cJSON_CreateNull(); }

/* printable text of ids[a..b) (control bytes as '?'), or NULL without a tokenizer */
static cJSON *decode(const qv_tok *tok, const int32_t *ids, int a, int b)
{
    char *txt = NULL;
    size_t n = 0;
    if (!tok || b <= a || qv_tok_decode(tok, ids + a, (size_t)(b - a), &txt, &n) != QV_OK) return cJSON_CreateNull();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)txt[i] < 0x20) txt[i] = '?';
    cJSON *s = cJSON_CreateString(txt ? txt : "");
    free(txt);
    return s;
}

static double sum_rel(const double *e2, const double *r2, int n)
{
    double a = 0, b = 0;
    for (int i = 0; i < n; i++) a += e2[i], b += r2[i];
    return qv_trace_rel(a, b);
}

static cJSON *heat(const qv_trace_result *t, const double *e2, const double *r2)
{
    cJSON *a = cJSON_CreateArray();
    for (int l = 0; l < t->L; l++) {
        cJSON *row = cJSON_CreateArray();
        for (int b = 0; b < t->nb; b++) cJSON_AddItemToArray(row, NUM(qv_trace_rel(e2[l * t->nb + b], r2[l * t->nb + b])));
        cJSON_AddItemToArray(a, row);
    }
    return a;
}

static int max_growth_layer(const qv_trace_result *t, const float *r)
{
    int best = 0;
    double bg = -1, prev = 0;
    for (int l = 0; l < t->L; l++) {
        double g = r[l] / (prev > t->jump_floor ? prev : t->jump_floor);
        if (g > bg) bg = g, best = l;
        prev = r[l];
    }
    return best;
}

static int cmp_flt(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* per-layer medians over the analyzed positions of the residual relative error */
static float *layer_medians(const qv_trace_result *t, const qv_trace_var *v)
{
    float *med = qv_malloc(sizeof(float) * (size_t)t->L), *col = qv_malloc(sizeof(float) * (size_t)t->n_pos);
    for (int l = 0; med && col && l < t->L; l++) {
        for (int p = 0; p < t->n_pos; p++) col[p] = v->res_pos[(size_t)p * t->L + l];
        qsort(col, (size_t)t->n_pos, sizeof(float), cmp_flt);
        med[l] = t->n_pos % 2 ? col[t->n_pos / 2] : 0.5f * (col[t->n_pos / 2 - 1] + col[t->n_pos / 2]);
    }
    free(col);
    return med;
}

/* first layer where this position's residual error is >= QV_TRACE_ANOMALY_RATIO x the layer's
 * median over positions (and above the jump floor): where a bad position departs from the
 * typical one, which the jump layer cannot show when every position picks up error at layer 0 */
static int anomaly_layer(const qv_trace_result *t, const float *r, const float *med)
{
    for (int l = 0; med && l < t->L; l++)
        if (r[l] >= t->jump_floor && r[l] >= QV_TRACE_ANOMALY_RATIO * med[l]) return l;
    return -1;
}

static cJSON *variant_json(const qv_trace_result *t, int vi, const int32_t *ids, const qv_tok *tok, int top_k)
{
    const qv_trace_var *v = &t->var[vi];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "label", v->label);
    /* KLD */
    cJSON *k = cJSON_AddObjectToObject(o, "kld");
    double *s = qv_malloc(sizeof(double) * (size_t)t->n_pos), sum = 0;
    for (int p = 0; p < t->n_pos; p++) sum += v->kld[p];
    cJSON_AddItemToObject(k, "mean", NUM(sum / t->n_pos));
    if (s) {
        memcpy(s, v->kld, sizeof(double) * (size_t)t->n_pos);
        qsort(s, (size_t)t->n_pos, sizeof(double), cmp_dbl);
        cJSON_AddItemToObject(k, "median", NUM(qv_percentile_sorted(s, t->n_pos, 50)));
        cJSON_AddItemToObject(k, "p99", NUM(qv_percentile_sorted(s, t->n_pos, 99)));
        cJSON_AddItemToObject(k, "max", NUM(s[t->n_pos - 1]));
        free(s);
    }
    cJSON_AddItemToObject(k, "top1_agreement", NUM((double)v->top1 / t->n_pos));
    cJSON_AddItemToObject(k, "ln_ppl_ratio", NUM((v->nll_cand - v->nll_ref) / t->n_pos));
    cJSON *bb = cJSON_AddArrayToObject(k, "by_bucket");
    for (int b = 0; b < t->nb; b++) {
        int a0 = b * t->bucket_width, a1 = a0 + t->bucket_width < t->n_pos ? a0 + t->bucket_width : t->n_pos;
        double m = 0;
        for (int p = a0; p < a1; p++) m += v->kld[p];
        cJSON_AddItemToArray(bb, NUM(m / (a1 - a0)));
    }
    cJSON *bc = cJSON_AddArrayToObject(k, "by_context_length");
    for (int len = 512;; len *= 2) {
        int L = len < t->ctx ? len : t->ctx;
        double m = qv_trace_kld_prefix(t, vi, L);
        if (!isnan(m)) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "length", L);
            cJSON_AddItemToObject(e, "mean", m == m ? NUM(m) : cJSON_CreateNull());
            cJSON_AddItemToArray(bc, e);
        }
        if (len >= t->ctx) break;
    }
    /* layers */
    int *rank = qv_malloc(sizeof(int) * (size_t)t->L);
    int64_t *cnt = qv_malloc(sizeof(int64_t) * (size_t)t->L);
    if (rank && cnt) qv_trace_layer_ranking(t, vi, rank, cnt);
    cJSON *ls = cJSON_AddArrayToObject(o, "layers");
    double prev = 0;
    for (int l = 0; l < t->L; l++) {
        cJSON *e = cJSON_CreateObject();
        double res = sum_rel(v->res_e2 + l * t->nb, v->res_r2 + l * t->nb, t->nb);
        cJSON_AddNumberToObject(e, "layer", l);
        cJSON_AddItemToObject(e, "residual", NUM(res));
        cJSON_AddItemToObject(e, "attn_out", NUM(sum_rel(v->attn_e2 + l * t->nb, v->attn_r2 + l * t->nb, t->nb)));
        cJSON_AddItemToObject(e, "mlp_out", NUM(sum_rel(v->mlp_e2 + l * t->nb, v->mlp_r2 + l * t->nb, t->nb)));
        cJSON_AddItemToObject(e, "residual_added", NUM(res - prev));
        cJSON_AddNumberToObject(e, "jump_count", cnt ? (double)cnt[l] : 0);
        cJSON_AddItemToArray(ls, e);
        prev = res;
    }
    cJSON *lr = cJSON_AddArrayToObject(o, "layer_ranking");
    for (int i = 0; rank && i < t->L; i++) cJSON_AddItemToArray(lr, cJSON_CreateNumber(rank[i]));
    free(rank), free(cnt);
    cJSON *h = cJSON_AddObjectToObject(o, "heatmap");
    cJSON_AddItemToObject(h, "residual", heat(t, v->res_e2, v->res_r2));
    cJSON_AddItemToObject(h, "attn_out", heat(t, v->attn_e2, v->attn_r2));
    cJSON_AddItemToObject(h, "mlp_out", heat(t, v->mlp_e2, v->mlp_r2));
    /* heads, in (layer, head) order and ranked */
    int nhl = t->L * t->nh, g = t->nh / t->nkv;
    cJSON *hs = cJSON_AddArrayToObject(o, "heads");
    int *hr = qv_malloc(sizeof(int) * (size_t)nhl);
    for (int i = 0; i < nhl; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "layer", i / t->nh);
        cJSON_AddNumberToObject(e, "head", i % t->nh);
        cJSON_AddNumberToObject(e, "kv_head", (i % t->nh) / g);
        cJSON_AddItemToObject(e, "rel_err", NUM(qv_trace_rel(v->head_e2[i], v->head_r2[i])));
        cJSON_AddItemToArray(hs, e);
        if (hr) hr[i] = i;
    }
    cJSON *hk = cJSON_AddArrayToObject(o, "head_ranking"); /* [layer, head] pairs, worst first */
    for (int i = 1; hr && i < nhl; i++)
        for (int j = i; j > 0; j--) {
            double a = qv_trace_rel(v->head_e2[hr[j - 1]], v->head_r2[hr[j - 1]]), b = qv_trace_rel(v->head_e2[hr[j]], v->head_r2[hr[j]]);
            if (!(b > a)) break;
            int x = hr[j];
            hr[j] = hr[j - 1], hr[j - 1] = x;
        }
    for (int i = 0; hr && i < nhl; i++) {
        cJSON *pr = cJSON_CreateArray();
        cJSON_AddItemToArray(pr, cJSON_CreateNumber(hr[i] / t->nh));
        cJSON_AddItemToArray(pr, cJSON_CreateNumber(hr[i] % t->nh));
        cJSON_AddItemToArray(hk, pr);
    }
    free(hr);
    cJSON *kv = cJSON_AddArrayToObject(o, "kv_heads");
    for (int l = 0; l < t->L; l++)
        for (int j = 0; j < t->nkv; j++) {
            double e2 = 0, r2 = 0;
            for (int q = j * g; q < (j + 1) * g; q++) e2 += v->head_e2[l * t->nh + q], r2 += v->head_r2[l * t->nh + q];
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "layer", l);
            cJSON_AddNumberToObject(e, "kv_head", j);
            cJSON_AddItemToObject(e, "attn_rel_err", NUM(qv_trace_rel(e2, r2)));
            cJSON_AddItemToObject(e, "k_rel_err", NUM(qv_trace_rel(v->k_e2[l * t->nkv + j], v->k_r2[l * t->nkv + j])));
            cJSON_AddItemToObject(e, "v_rel_err", NUM(qv_trace_rel(v->v_e2[l * t->nkv + j], v->v_r2[l * t->nkv + j])));
            cJSON_AddItemToArray(kv, e);
        }
    /* worst positions */
    int *wp = qv_malloc(sizeof(int) * (size_t)(top_k > 0 ? top_k : 1));
    int nw = wp ? qv_trace_worst(t, vi, top_k, wp) : 0;
    cJSON *ws = cJSON_AddArrayToObject(o, "worst");
    float *med = layer_medians(t, v);
    cJSON *mj = cJSON_AddArrayToObject(o, "residual_median_by_layer");
    for (int l = 0; med && l < t->L; l++) cJSON_AddItemToArray(mj, NUM(med[l]));
    for (int i = 0; i < nw; i++) {
        int p = wp[i];
        const float *r = v->res_pos + (size_t)(p - t->pos_lo) * t->L;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "pos", p);
        cJSON_AddItemToObject(e, "kld", NUM(v->kld[p - t->pos_lo]));
        cJSON_AddNumberToObject(e, "token_id", ids[p]);
        cJSON_AddItemToObject(e, "token", decode(tok, ids, p, p + 1));
        cJSON_AddNumberToObject(e, "next_id", ids[p + 1]);
        cJSON_AddItemToObject(e, "next", decode(tok, ids, p + 1, p + 2));
        cJSON_AddItemToObject(e, "context", decode(tok, ids, p >= 16 ? p - 15 : 0, p + 1));
        cJSON_AddNumberToObject(e, "jump_layer", qv_trace_jump_layer(t, vi, p));
        cJSON_AddNumberToObject(e, "max_growth_layer", max_growth_layer(t, r));
        cJSON_AddNumberToObject(e, "anomaly_layer", anomaly_layer(t, r, med));
        cJSON *ra = cJSON_AddArrayToObject(e, "residual_rel_err");
        for (int l = 0; l < t->L; l++) cJSON_AddItemToArray(ra, NUM(r[l]));
        cJSON_AddItemToArray(ws, e);
    }
    free(wp);
    free(med);
    return o;
}

qv_status qv_trace_to_json(const qv_trace_result *t, const qv_trace_meta *m, const int32_t *ids, const qv_tok *tok,
                           int top_k, cJSON **out)
{
    cJSON *j = cJSON_CreateObject();
    if (!j) return QV_ERR_NOMEM;
    if (top_k <= 0) top_k = 10;
    cJSON_AddStringToObject(j, "schema", "qvet.trace");
    cJSON_AddNumberToObject(j, "schema_version", QV_TRACE_SCHEMA_VERSION);
    cJSON *me = cJSON_AddObjectToObject(j, "meta");
    cJSON_AddItemToObject(me, "model", str_or_null(m->model));
    cJSON_AddItemToObject(me, "ref", str_or_null(m->ref));
    cJSON_AddItemToObject(me, "cand", str_or_null(m->cand));
    cJSON_AddItemToObject(me, "quantized", str_or_null(m->quantized));
    cJSON_AddItemToObject(me, "text", str_or_null(m->text));
    cJSON_AddItemToObject(me, "command", str_or_null(m->command));
    cJSON_AddNumberToObject(me, "n_tokens", (double)m->n_tokens);
    cJSON_AddItemToObject(me, "ids_hash", str_or_null(m->ids_hash));
    cJSON_AddNumberToObject(me, "ctx", t->ctx);
    cJSON *ps = cJSON_AddArrayToObject(me, "positions");
    cJSON_AddItemToArray(ps, cJSON_CreateNumber(t->pos_lo));
    cJSON_AddItemToArray(ps, cJSON_CreateNumber(t->pos_hi));
    cJSON_AddNumberToObject(me, "n_buckets", t->nb);
    cJSON_AddNumberToObject(me, "bucket_width", t->bucket_width);
    cJSON_AddNumberToObject(me, "layers", t->L);
    cJSON_AddNumberToObject(me, "heads", t->nh);
    cJSON_AddNumberToObject(me, "kv_heads", t->nkv);
    cJSON *jp = cJSON_AddObjectToObject(me, "jump");
    cJSON_AddItemToObject(jp, "ratio", NUM(t->jump_ratio));
    cJSON_AddItemToObject(jp, "floor", NUM(t->jump_floor));
    cJSON_AddStringToObject(jp, "definition", "first layer l with r_l >= floor and r_l >= ratio * r_(l-1), r_(-1) = 0; "
                                              "r_l = ||C-R|| / ||R|| of the residual stream after block l at that position");
    cJSON_AddItemToObject(jp, "anomaly_ratio", NUM(QV_TRACE_ANOMALY_RATIO));
    cJSON_AddStringToObject(jp, "anomaly_definition", "first layer l with r_l >= floor and r_l >= anomaly_ratio * (median over "
                                                      "the analyzed positions of r_l)");
    cJSON *tm = cJSON_AddObjectToObject(j, "timing");
    cJSON_AddItemToObject(tm, "seconds", NUM(m->seconds));
    cJSON_AddItemToObject(tm, "main_pass_seconds", NUM(m->main_seconds));
    cJSON_AddItemToObject(tm, "ablation_seconds", NUM(m->ablation_seconds));
    cJSON_AddNumberToObject(tm, "peak_rss_kb", (double)m->peak_rss_kb);
    cJSON *vs = cJSON_AddArrayToObject(j, "variants");
    for (int i = 0; i < t->n_var; i++) cJSON_AddItemToArray(vs, variant_json(t, i, ids, tok, top_k));
    if (m->n_abl > 0) {
        cJSON *ab = cJSON_AddObjectToObject(j, "ablation");
        cJSON_AddNumberToObject(ab, "tokens", m->abl_tokens);
        cJSON_AddStringToObject(ab, "share_definition", "(KLD_cand - KLD_ablated) / KLD_cand: the part of the candidate's "
                                                        "KLD that keeping that component in full precision removes");
        double base = m->abl_kld[0];
        cJSON_AddItemToObject(ab, "cand_kld", NUM(base));
        int *ord = qv_malloc(sizeof(int) * (size_t)m->n_abl);
        int n = 0;
        for (int i = 1; ord && i < m->n_abl; i++) { /* by share desc = ablated KLD asc; ties: given order */
            int at = n++;
            while (at > 0 && m->abl_kld[i] < m->abl_kld[ord[at - 1]]) ord[at] = ord[at - 1], at--;
            ord[at] = i;
        }
        cJSON *es = cJSON_AddArrayToObject(ab, "entries");
        for (int i = 0; i < n; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "label", m->abl_label[ord[i]]);
            cJSON_AddItemToObject(e, "kld", NUM(m->abl_kld[ord[i]]));
            cJSON_AddItemToObject(e, "share", NUM(base > 0 ? (base - m->abl_kld[ord[i]]) / base : NAN));
            cJSON_AddItemToArray(es, e);
        }
        free(ord);
    }
    *out = j;
    return QV_OK;
}
