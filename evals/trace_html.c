/* qvet trace: report.html from the trace JSON. One page, inline SVG, no scripts, readable offline. */
#include <cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "html_buf.h"
#include "qvet/eval_trace.h"
#include "qvet/fileio.h"


static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static double at(const cJSON *a, int i)
{
    const cJSON *v = cJSON_GetArrayItem(a, i);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *PAL[] = {"#3f6fb5", "#c62828", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f"};

/* log10 range of the positive values of an array of arrays (or a flat array) */
static void log_range(const cJSON *a, double *lo, double *hi)
{
    for (const cJSON *e = a ? a->child : NULL; e; e = e->next) {
        if (cJSON_IsArray(e)) log_range(e, lo, hi);
        else if (cJSON_IsNumber(e) && e->valuedouble > 0 && isfinite(e->valuedouble)) {
            double l = log10(e->valuedouble);
            *lo = fmin(*lo, l), *hi = fmax(*hi, l);
        }
    }
}

/* layer x position-bucket heatmap, log color scale (white -> dark red) */
static void svg_heat(qv_sbuf *s, const char *title, const cJSON *rows, int bw, int pos0, int pos1)
{
    int L = cJSON_GetArraySize(rows), nb = L ? cJSON_GetArraySize(cJSON_GetArrayItem(rows, 0)) : 0;
    if (L < 1 || nb < 1) return;
    double lo = INFINITY, hi = -INFINITY;
    log_range(rows, &lo, &hi);
    if (!(hi >= lo)) lo = -6, hi = 0;
    if (hi - lo < 1e-9) lo = hi - 1;
    int W = 560, ml = 60, mt = 24, cw = (W - ml - 20) / nb < 3 ? 3 : (W - ml - 20) / nb, ch = 18;
    int H = mt + L * ch + 40;
    W = ml + nb * cw + 20;
    qv_sb(s, "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' role='img'><title>", W, H);
    qv_sb_esc(s, title);
    qv_sb(s, "</title><text x='%d' y='14' font-size='12'>", ml);
    qv_sb_esc(s, title);
    qv_sb(s, " (log color: 1e%.1f white .. 1e%.1f dark)</text>", lo, hi);
    for (int l = 0; l < L; l++) {
        const cJSON *r = cJSON_GetArrayItem(rows, l);
        qv_sb(s, "<text x='%d' y='%d' font-size='10' text-anchor='end'>L%d</text>", ml - 4, mt + l * ch + 13, l);
        for (int b = 0; b < nb; b++) {
            double v = at(r, b), f = v > 0 ? (log10(v) - lo) / (hi - lo) : 0;
            if (!(f >= 0)) f = 0;
            if (f > 1) f = 1;
            int R = 255 - (int)(f * 120), G = 255 - (int)(f * 230), B = 255 - (int)(f * 230);
            qv_sb(s, "<rect x='%d' y='%d' width='%d' height='%d' fill='rgb(%d,%d,%d)'><title>layer %d, positions %d-%d: %.4g</title></rect>",
               ml + b * cw, mt + l * ch, cw, ch - 1, R, G, B, l, pos0 + b * bw, pos0 + (b + 1) * bw - 1 < pos1 ? pos0 + (b + 1) * bw - 1 : pos1, v);
        }
    }
    qv_sb(s, "<text x='%d' y='%d' font-size='10'>position %d</text><text x='%d' y='%d' font-size='10' text-anchor='end'>%d</text>",
       ml, mt + L * ch + 14, pos0, ml + nb * cw, mt + L * ch + 14, pos1);
    qv_sb(s, "</svg>");
}

/* lines: series[i] arrays of y over x = 0..n-1 (or xs), log y when logy */
static void svg_lines(qv_sbuf *s, const char *title, const char *xlabel, const cJSON *const *ys, const char *const *names,
                      int n_series, const double *xs, int logy)
{
    int n = 0;
    double lo = INFINITY, hi = -INFINITY;
    for (int k = 0; k < n_series; k++) {
        int m = cJSON_GetArraySize(ys[k]);
        n = m > n ? m : n;
        for (int i = 0; i < m; i++) {
            double v = at(ys[k], i);
            if (!isfinite(v) || (logy && !(v > 0))) continue;
            v = logy ? log10(v) : v;
            lo = fmin(lo, v), hi = fmax(hi, v);
        }
    }
    if (n < 1) return;
    if (!(hi >= lo)) lo = 0, hi = 1;
    if (!logy) lo = fmin(lo, 0);
    if (hi - lo < 1e-12) hi = lo + 1;
    double x0 = xs ? xs[0] : 0, x1 = xs ? xs[n - 1] : n - 1;
    if (x1 <= x0) x1 = x0 + 1;
    int W = 520, H = 240, L = 64, B = 34, pw = W - L - 12, ph = H - B - 24;
    qv_sb(s, "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' role='img'><title>", W, H);
    qv_sb_esc(s, title);
    qv_sb(s, "</title><text x='%d' y='14' font-size='12'>", L);
    qv_sb_esc(s, title);
    qv_sb(s, "</text><rect x='%d' y='20' width='%d' height='%d' fill='#fafafa' stroke='#ccc'/>", L, pw, ph);
    for (int k = 0; k < n_series; k++) {
        int m = cJSON_GetArraySize(ys[k]);
        qv_sb(s, "<polyline fill='none' stroke='%s' stroke-width='2' points='", PAL[k % 6]);
        for (int i = 0; i < m; i++) {
            double v = at(ys[k], i), x = xs ? xs[i] : i;
            if (!isfinite(v) || (logy && !(v > 0))) continue;
            v = logy ? log10(v) : v;
            qv_sb(s, "%.1f,%.1f ", L + pw * (x - x0) / (x1 - x0), 20 + ph - ph * (v - lo) / (hi - lo));
        }
        qv_sb(s, "'/>");
        for (int i = 0; i < m; i++) {
            double v = at(ys[k], i), x = xs ? xs[i] : i;
            if (!isfinite(v) || (logy && !(v > 0))) continue;
            qv_sb(s, "<circle cx='%.1f' cy='%.1f' r='2.5' fill='%s'><title>%s %g: %.4g</title></circle>", L + pw * (x - x0) / (x1 - x0),
               20 + ph - ph * ((logy ? log10(v) : v) - lo) / (hi - lo), PAL[k % 6], xlabel, x, v);
        }
        qv_sb(s, "<text x='%d' y='%d' font-size='11' fill='%s'>", L + 8 + 130 * k, H - 4, PAL[k % 6]);
        qv_sb_esc(s, names[k]);
        qv_sb(s, "</text>");
    }
    qv_sb(s, "<text x='%d' y='%d' font-size='10' text-anchor='end'>%s%.3g</text>", L - 3, 24, logy ? "1e" : "", hi);
    qv_sb(s, "<text x='%d' y='%d' font-size='10' text-anchor='end'>%s%.3g</text>", L - 3, 20 + ph, logy ? "1e" : "", lo);
    qv_sb(s, "<text x='%d' y='%d' font-size='10'>%s %g</text><text x='%d' y='%d' font-size='10' text-anchor='end'>%g</text>", L,
       20 + ph + 12, xlabel, x0, L + pw, 20 + ph + 12, x1);
    qv_sb(s, "</svg>");
}

/* grouped bars: for each item i, one bar per series (vals[k][i]); labels under groups */
static void svg_bars(qv_sbuf *s, const char *title, int n, int n_series, const double *const *vals, const char *const *names,
                     char (*labels)[24])
{
    if (n < 1) return;
    double mx = 0;
    for (int k = 0; k < n_series; k++)
        for (int i = 0; i < n; i++)
            if (isfinite(vals[k][i])) mx = fmax(mx, vals[k][i]);
    if (!(mx > 0)) mx = 1;
    int gw = n_series * 7 + 4, L = 56, W = L + n * gw + 16, H = 250, ph = 170;
    if (W < 400) W = 400;
    qv_sb(s, "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' role='img'><title>", W, H);
    qv_sb_esc(s, title);
    qv_sb(s, "</title><text x='%d' y='14' font-size='12'>", L);
    qv_sb_esc(s, title);
    qv_sb(s, "</text><line x1='%d' x2='%d' y1='%d' y2='%d' stroke='#999'/>", L, L + n * gw, 20 + ph, 20 + ph);
    qv_sb(s, "<text x='%d' y='28' font-size='10' text-anchor='end'>%.3g</text>", L - 3, mx);
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < n_series; k++) {
            double v = isfinite(vals[k][i]) ? vals[k][i] : 0, h = ph * fmax(v, 0) / mx;
            qv_sb(s, "<rect x='%d' y='%.1f' width='6' height='%.1f' fill='%s'><title>%s %s: %.4g</title></rect>", L + i * gw + k * 7,
               20 + ph - h, h, PAL[k % 6], labels[i], names[k], vals[k][i]);
        }
        qv_sb(s, "<text x='%d' y='%d' font-size='9' transform='rotate(60 %d %d)'>%s</text>", L + i * gw, 20 + ph + 10, L + i * gw,
           20 + ph + 10, labels[i]);
    }
    for (int k = 0; k < n_series; k++) {
        qv_sb(s, "<text x='%d' y='%d' font-size='11' fill='%s'>", L + 8 + 150 * k, H - 4, PAL[k % 6]);
        qv_sb_esc(s, names[k]);
        qv_sb(s, "</text>");
    }
    qv_sb(s, "</svg>");
}

static void cell(qv_sbuf *s, double v)
{
    if (isnan(v)) qv_sb(s, "<td>-</td>");
    else qv_sb(s, "<td>%.4g</td>", v);
}

qv_status qv_trace_html(const cJSON *j, const char *path)
{
    qv_sbuf s = {0};
    const cJSON *me = cJSON_GetObjectItem(j, "meta"), *vs = cJSON_GetObjectItem(j, "variants");
    const cJSON *tm = cJSON_GetObjectItem(j, "timing"), *ab = cJSON_GetObjectItem(j, "ablation");
    int nv = cJSON_GetArraySize(vs), L = (int)num(me, "layers"), nh = (int)num(me, "heads");
    int bw = (int)num(me, "bucket_width"), p0 = (int)at(cJSON_GetObjectItem(me, "positions"), 0);
    int p1 = (int)at(cJSON_GetObjectItem(me, "positions"), 1);
    if (nv < 1 || L < 1 || nh < 1) return qv_fail(QV_ERR_INPUT, "trace report: the JSON has no variants or layers");
    if (nv > 6) nv = 6;
    qv_sb(&s, "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>qvet trace report</title><style>"
           "body{font-family:sans-serif;max-width:1200px;margin:24px auto;color:#222;padding:0 16px}"
           "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 7px;font-size:13px;text-align:right}"
           "th{background:#f0f0f0}td.t{text-align:left;font-family:monospace;white-space:pre-wrap}.plots{display:flex;flex-wrap:wrap;gap:12px}"
           ".why{font-size:11px;color:#555}</style></head><body><h1>qvet trace</h1><p>");
    const char *keys[] = {"model", "ref", "cand", "quantized", "text"};
    for (int i = 0; i < 5; i++) {
        const cJSON *v = cJSON_GetObjectItem(me, keys[i]);
        if (!cJSON_IsString(v)) continue;
        qv_sb(&s, "<b>%s</b>: ", keys[i]);
        qv_sb_esc(&s, v->valuestring);
        qv_sb(&s, "<br>");
    }
    qv_sb(&s, "<b>ctx</b>: %g, positions %g-%g in %g buckets of %d<br><b>time</b>: %.1f s, <b>peak RSS</b>: %.0f MB</p>",
       num(me, "ctx"), at(cJSON_GetObjectItem(me, "positions"), 0), at(cJSON_GetObjectItem(me, "positions"), 1),
       num(me, "n_buckets"), bw, num(tm, "seconds"), num(tm, "peak_rss_kb") / 1024.0);
    const cJSON *cmd = cJSON_GetObjectItem(me, "command");
    if (cJSON_IsString(cmd)) {
        qv_sb(&s, "<p class='why'>Reproduce: <code>");
        qv_sb_esc(&s, cmd->valuestring);
        qv_sb(&s, "</code></p>");
    }
    /* summary table */
    qv_sb(&s, "<h2>Variants</h2><table><tr><th>variant</th><th>KLD mean</th><th>median</th><th>p99</th><th>max</th><th>top-1</th>"
           "<th>ln ppl ratio</th><th>layers ranked by first jump</th></tr>");
    for (int v = 0; v < nv; v++) {
        const cJSON *x = cJSON_GetArrayItem(vs, v), *k = cJSON_GetObjectItem(x, "kld");
        qv_sb(&s, "<tr><td class='t'>");
        qv_sb_esc(&s, cJSON_GetObjectItem(x, "label")->valuestring);
        qv_sb(&s, "</td>");
        cell(&s, num(k, "mean")), cell(&s, num(k, "median")), cell(&s, num(k, "p99")), cell(&s, num(k, "max"));
        cell(&s, num(k, "top1_agreement")), cell(&s, num(k, "ln_ppl_ratio"));
        qv_sb(&s, "<td class='t'>");
        const cJSON *r = cJSON_GetObjectItem(x, "layer_ranking");
        for (int i = 0; i < cJSON_GetArraySize(r); i++) qv_sb(&s, "%sL%g", i ? " " : "", at(r, i));
        qv_sb(&s, "</td></tr>");
    }
    qv_sb(&s, "</table>");
    /* ablation */
    if (ab) {
        const cJSON *es = cJSON_GetObjectItem(ab, "entries");
        int n = cJSON_GetArraySize(es);
        qv_sb(&s, "<h2>Ablation: which quantizer causes the KLD</h2><p>Candidate KLD over the first %g tokens: %.4g. "
               "Share = (KLD_cand - KLD_ablated) / KLD_cand (can exceed 1 or go negative: components interact).</p>",
           num(ab, "tokens"), num(ab, "cand_kld"));
        double *sh = qv_calloc((size_t)(n ? n : 1), sizeof(double));
        char (*lab)[24] = qv_calloc((size_t)(n ? n : 1), sizeof *lab);
        qv_sb(&s, "<table><tr><th>kept in full precision</th><th>KLD</th><th>share</th></tr>");
        for (int i = 0; i < n; i++) {
            const cJSON *e = cJSON_GetArrayItem(es, i);
            qv_sb(&s, "<tr><td class='t'>");
            qv_sb_esc(&s, cJSON_GetObjectItem(e, "label")->valuestring);
            qv_sb(&s, "</td>");
            cell(&s, num(e, "kld")), cell(&s, num(e, "share"));
            qv_sb(&s, "</tr>");
            if (sh && lab) {
                sh[i] = num(e, "share");
                snprintf(lab[i], sizeof lab[i], "%s", cJSON_GetObjectItem(e, "label")->valuestring);
            }
        }
        qv_sb(&s, "</table>");
        if (sh && lab) {
            const double *vals[1] = {sh};
            const char *nm[1] = {"share of the candidate's KLD"};
            svg_bars(&s, "ablation: share of KLD removed", n, 1, vals, nm, lab);
        }
        free(sh), free(lab);
    }
    /* KLD plots over all variants */
    const cJSON *kb[6], *kc[6], *cur[6];
    const char *names[6];
    double xs_b[4096], xs_c[64];
    int ncl = 0;
    for (int v = 0; v < nv; v++) {
        const cJSON *x = cJSON_GetArrayItem(vs, v), *k = cJSON_GetObjectItem(x, "kld");
        names[v] = cJSON_GetObjectItem(x, "label")->valuestring;
        kb[v] = cJSON_GetObjectItem(k, "by_bucket");
        const cJSON *bc = cJSON_GetObjectItem(k, "by_context_length");
        cJSON *arr = cJSON_CreateArray();
        ncl = cJSON_GetArraySize(bc) < 64 ? cJSON_GetArraySize(bc) : 64;
        for (int i = 0; i < ncl; i++) {
            const cJSON *e = cJSON_GetArrayItem(bc, i);
            xs_c[i] = num(e, "length");
            cJSON_AddItemToArray(arr, cJSON_CreateNumber(num(e, "mean")));
        }
        kc[v] = arr;
    }
    int nbk = cJSON_GetArraySize(kb[0]);
    for (int i = 0; i < nbk && i < 4096; i++) xs_b[i] = p0 + (i + 0.5) * bw;
    qv_sb(&s, "<h2>KLD vs position and context length</h2><div class='plots'>");
    if (nbk <= 4096) svg_lines(&s, "mean KLD per position bucket", "position", kb, names, nv, xs_b, 0);
    if (ncl > 0) svg_lines(&s, "mean KLD of the text truncated at length", "length", kc, names, nv, xs_c, 0);
    qv_sb(&s, "</div>");
    for (int v = 0; v < nv; v++) cJSON_Delete((cJSON *)kc[v]);
    /* per-variant: heatmaps, layer curves, worst positions */
    for (int v = 0; v < nv; v++) {
        const cJSON *x = cJSON_GetArrayItem(vs, v), *h = cJSON_GetObjectItem(x, "heatmap"), *ls = cJSON_GetObjectItem(x, "layers");
        qv_sb(&s, "<h2>");
        qv_sb_esc(&s, names[v]);
        qv_sb(&s, ": where the error is</h2><div class='plots'>");
        svg_heat(&s, "residual rel. error, layer x position", cJSON_GetObjectItem(h, "residual"), bw, p0, p1);
        svg_heat(&s, "MLP output rel. error", cJSON_GetObjectItem(h, "mlp_out"), bw, p0, p1);
        svg_heat(&s, "attention output rel. error", cJSON_GetObjectItem(h, "attn_out"), bw, p0, p1);
        const char *cn[3] = {"residual", "attn_out", "mlp_out"};
        cJSON *c3[3];
        for (int k = 0; k < 3; k++) {
            c3[k] = cJSON_CreateArray();
            for (int l = 0; l < cJSON_GetArraySize(ls); l++) cJSON_AddItemToArray(c3[k], cJSON_CreateNumber(num(cJSON_GetArrayItem(ls, l), cn[k])));
            cur[k] = c3[k];
        }
        svg_lines(&s, "relative error per layer (log)", "layer", cur, cn, 3, NULL, 1);
        for (int k = 0; k < 3; k++) cJSON_Delete(c3[k]);
        qv_sb(&s, "</div><h3>Layers</h3><table><tr><th>layer</th><th>residual</th><th>added</th><th>attn out</th><th>MLP out</th><th>positions first jumping here</th></tr>");
        for (int l = 0; l < cJSON_GetArraySize(ls); l++) {
            const cJSON *e = cJSON_GetArrayItem(ls, l);
            qv_sb(&s, "<tr><td>%d</td>", l);
            cell(&s, num(e, "residual")), cell(&s, num(e, "residual_added")), cell(&s, num(e, "attn_out")), cell(&s, num(e, "mlp_out"));
            qv_sb(&s, "<td>%.0f</td></tr>", num(e, "jump_count"));
        }
        qv_sb(&s, "</table><h3>Worst positions (by KLD)</h3><table><tr><th>pos</th><th>KLD</th><th>context ... token</th><th>next</th>"
               "<th>jump layer</th><th>max growth layer</th><th>anomaly layer</th><th>residual rel. error by layer</th></tr>");
        const cJSON *ws = cJSON_GetObjectItem(x, "worst");
        for (int i = 0; i < cJSON_GetArraySize(ws); i++) {
            const cJSON *e = cJSON_GetArrayItem(ws, i), *c = cJSON_GetObjectItem(e, "context"), *nx = cJSON_GetObjectItem(e, "next");
            qv_sb(&s, "<tr><td>%.0f</td>", num(e, "pos"));
            cell(&s, num(e, "kld"));
            qv_sb(&s, "<td class='t'>");
            if (cJSON_IsString(c)) qv_sb_esc(&s, c->valuestring);
            else qv_sb(&s, "id %.0f", num(e, "token_id"));
            qv_sb(&s, "</td><td class='t'>");
            if (cJSON_IsString(nx)) qv_sb_esc(&s, nx->valuestring);
            else qv_sb(&s, "id %.0f", num(e, "next_id"));
            qv_sb(&s, "</td><td>%.0f</td><td>%.0f</td><td>%.0f</td><td class='t'>", num(e, "jump_layer"), num(e, "max_growth_layer"),
               num(e, "anomaly_layer"));
            const cJSON *r = cJSON_GetObjectItem(e, "residual_rel_err");
            for (int l = 0; l < cJSON_GetArraySize(r); l++) qv_sb(&s, "%s%.2g", l ? " " : "", at(r, l));
            qv_sb(&s, "</td></tr>");
        }
        qv_sb(&s, "</table>");
    }
    /* per-head bars, all variants side by side */
    int nhl = cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(vs, 0), "heads"));
    double *hv[6] = {0};
    char (*hl)[24] = qv_calloc((size_t)(nhl ? nhl : 1), sizeof *hl);
    int ok = hl != NULL;
    for (int v = 0; v < nv && ok; v++) {
        const cJSON *hs = cJSON_GetObjectItem(cJSON_GetArrayItem(vs, v), "heads");
        if (!(hv[v] = qv_calloc((size_t)(nhl ? nhl : 1), sizeof(double)))) ok = 0;
        for (int i = 0; ok && i < nhl; i++) {
            const cJSON *e = cJSON_GetArrayItem(hs, i);
            hv[v][i] = num(e, "rel_err");
            snprintf(hl[i], sizeof hl[i], "L%.0f.h%.0f/kv%.0f", num(e, "layer"), num(e, "head"), num(e, "kv_head"));
        }
    }
    if (ok) {
        qv_sb(&s, "<h2>Attention heads: output rel. error per query head (kv = its KV head)</h2>");
        svg_bars(&s, "per-head attention output rel. error", nhl, nv, (const double *const *)hv, names, hl);
        qv_sb(&s, "<table><tr><th>layer</th><th>KV head</th>");
        for (int v = 0; v < nv; v++) {
            qv_sb(&s, "<th>attn (");
            qv_sb_esc(&s, names[v]);
            qv_sb(&s, ")</th><th>K</th><th>V</th>");
        }
        qv_sb(&s, "</tr>");
        int nkv = cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(vs, 0), "kv_heads"));
        for (int i = 0; i < nkv; i++) {
            const cJSON *e0 = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(vs, 0), "kv_heads"), i);
            qv_sb(&s, "<tr><td>%.0f</td><td>%.0f</td>", num(e0, "layer"), num(e0, "kv_head"));
            for (int v = 0; v < nv; v++) {
                const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(vs, v), "kv_heads"), i);
                cell(&s, num(e, "attn_rel_err")), cell(&s, num(e, "k_rel_err")), cell(&s, num(e, "v_rel_err"));
            }
            qv_sb(&s, "</tr>");
        }
        qv_sb(&s, "</table>");
    }
    for (int v = 0; v < 6; v++) free(hv[v]);
    free(hl);
    qv_sb(&s, "<p class='why'>Written by qvet trace. Relative errors are ||C-R|| / ||R|| over the positions of a bucket "
           "(norms summed over positions); definitions in docs/trace.md.</p></body></html>\n");
    if (s.oom) {
        free(s.b);
        return qv_fail(QV_ERR_NOMEM, "%s: out of memory writing the report", path);
    }
    qv_status st = qv_write_file_atomic(path, s.b, s.n);
    free(s.b);
    return st;
}
