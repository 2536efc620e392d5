/* validate's HTML report: one page, inline SVG plots, readable offline. */
#include <cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "html_buf.h"
#include "qvet/eval_report.h"
#include "qvet/fileio.h"

qv_status qv_thresholds_load(const char *text, const char *label, cJSON **out)
{
    *out = NULL;
    cJSON *j = cJSON_Parse(text ? text : qv_thresholds_default_json);
    if (!label) label = "<default thresholds>";
    if (!j) return qv_fail(QV_ERR_INPUT, "%s: not valid JSON", label);
    const cJSON *sc = cJSON_GetObjectItem(j, "schema"), *v = cJSON_GetObjectItem(j, "schema_version");
    const cJSON *t = cJSON_GetObjectItem(j, "thresholds");
    qv_status st = QV_OK;
    if (!cJSON_IsString(sc) || strcmp(sc->valuestring, "qvet.thresholds") || !cJSON_IsNumber(v) || v->valueint != 1 ||
        !cJSON_IsObject(t))
        st = qv_fail(QV_ERR_INPUT, "%s: not a qvet thresholds file (schema \"qvet.thresholds\", schema_version 1, \"thresholds\" object)", label);
    for (const cJSON *e = st == QV_OK ? t->child : NULL; e && st == QV_OK; e = e->next) {
        const cJSON *mx = cJSON_GetObjectItem(e, "max"), *mn = cJSON_GetObjectItem(e, "min");
        if (!cJSON_IsObject(e) || (cJSON_IsNumber(mx) == cJSON_IsNumber(mn)))
            st = qv_fail(QV_ERR_INPUT, "%s: threshold \"%s\" needs exactly one of \"max\" or \"min\" (a number)", label, e->string);
    }
    if (st != QV_OK) cJSON_Delete(j);
    else *out = j;
    return st;
}


static const cJSON *path(const cJSON *j, const char *p)
{
    char k[64];
    while (j && *p) {
        size_t n = strcspn(p, ".");
        snprintf(k, sizeof k, "%.*s", (int)n, p);
        j = cJSON_GetObjectItemCaseSensitive(j, k);
        p += n + (p[n] == '.');
    }
    return j;
}

static double num(const cJSON *j, const char *p)
{
    const cJSON *v = path(j, p);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* KLD histogram: counts per log10 bin; under/overflow bins drawn at the ends */
static void svg_hist(qv_sbuf *s, const cJSON *kld)
{
    const cJSON *c = path(kld, "histogram.counts");
    double lo = num(kld, "histogram.log10_lo"), hi = num(kld, "histogram.log10_hi");
    int n = cJSON_GetArraySize(c);
    if (n < 3) return;
    double mx = 1;
    for (int i = 0; i < n; i++) mx = fmax(mx, cJSON_GetArrayItem(c, i)->valuedouble);
    int W = 500, H = 220, L = 50, B = 30, pw = W - L - 10, ph = H - B - 10;
    qv_sb(s, "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' role='img'><title>KLD histogram</title>", W, H);
    qv_sb(s, "<rect x='%d' y='10' width='%d' height='%d' fill='#fafafa' stroke='#ccc'/>", L, pw, ph);
    double bw = (double)pw / n;
    for (int i = 0; i < n; i++) {
        double v = cJSON_GetArrayItem(c, i)->valuedouble, h = v > 0 ? ph * log10(1 + v) / log10(1 + mx) : 0;
        const char *col = i == 0 ? "#9e9e9e" : i == n - 1 ? "#c62828" : "#3f6fb5";
        qv_sb(s, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='%s'><title>%.0f</title></rect>", L + i * bw + 0.5,
           10 + ph - h, bw - 1, h, col, v);
    }
    for (int e = (int)lo; e <= (int)hi; e += 2) {
        double x = L + bw * (1 + (e - lo) / (hi - lo) * (n - 2));
        qv_sb(s, "<line x1='%.1f' x2='%.1f' y1='%d' y2='%d' stroke='#666'/><text x='%.1f' y='%d' font-size='11' text-anchor='middle'>1e%d</text>",
           x, x, 10 + ph, 14 + ph, x, H - 8, e);
    }
    qv_sb(s, "<text x='12' y='%d' font-size='11' transform='rotate(-90 12 %d)' text-anchor='middle'>positions (log scale)</text>", 10 + ph / 2, 10 + ph / 2);
    qv_sb(s, "</svg>");
}

/* mean KLD per bucket of positions inside the chunk */
static void svg_pos(qv_sbuf *s, const cJSON *kld)
{
    const cJSON *m = path(kld, "by_position.mean");
    double w = num(kld, "by_position.bucket_width");
    int n = cJSON_GetArraySize(m);
    double mx = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetArrayItem(m, i);
        if (cJSON_IsNumber(v)) mx = fmax(mx, v->valuedouble);
    }
    if (n < 1) return;
    if (!(mx > 0)) mx = 1;
    int W = 500, H = 220, L = 60, B = 30, pw = W - L - 10, ph = H - B - 10;
    qv_sb(s, "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' role='img'><title>KLD vs position</title>", W, H);
    qv_sb(s, "<rect x='%d' y='10' width='%d' height='%d' fill='#fafafa' stroke='#ccc'/><polyline fill='none' stroke='#3f6fb5' stroke-width='2' points='", L, pw, ph);
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetArrayItem(m, i);
        if (cJSON_IsNumber(v)) qv_sb(s, "%.1f,%.1f ", L + (i + 0.5) * pw / n, 10 + ph - ph * v->valuedouble / mx);
    }
    qv_sb(s, "'/>");
    for (int q = 0; q <= 4; q++)
        qv_sb(s, "<text x='%d' y='%.1f' font-size='11' text-anchor='end'>%.3g</text>", L - 4, 14 + ph - ph * q / 4.0, mx * q / 4);
    for (int q = 0; q <= 4; q++)
        qv_sb(s, "<text x='%.1f' y='%d' font-size='11' text-anchor='%s'>%.0f</text>", L + pw * q / 4.0, H - 8,
              q == 4 ? "end" : "middle", w * n * q / 4); /* the last label ends at the plot's edge, not past it */
    qv_sb(s, "</svg>");
}

static void color(double t, int diverging, char *out)
{
    if (!isfinite(t)) {
        strcpy(out, "#eeeeee");
        return;
    }
    t = fmin(1, fmax(0, t));
    int r, g, b;
    if (diverging) { /* 0 red, .5 white, 1 blue */
        if (t < 0.5) r = 255, g = b = (int)(255 * t * 2);
        else b = 255, r = g = (int)(255 * (1 - t) * 2);
    } else { /* viridis-like ramp, dark purple -> yellow */
        r = (int)(68 + t * (253 - 68)), g = (int)(1 + t * (231 - 1)), b = (int)(84 + t * (37 - 84));
    }
    sprintf(out, "#%02x%02x%02x", r, g, b);
}

/* Text on a cell of colour "#rrggbb": white where the cell is dark (luma below half), else black;
 * one rule for both ramps, so strong red or blue cells of the C - R map stay readable. */
static const char *text_on(const char *col)
{
    unsigned r = 0, g = 0, b = 0;
    if (sscanf(col, "#%2x%2x%2x", &r, &g, &b) != 3) return "#000";
    return 0.299 * r + 0.587 * g + 0.114 * b < 128 ? "#fff" : "#000";
}

static void svg_grid(qv_sbuf *s, const char *title, const cJSON *meta, const cJSON *g, const cJSON *hits, double lo, double hi, int diverging)
{
    const cJSON *L = cJSON_GetObjectItem(meta, "lengths"), *D = cJSON_GetObjectItem(meta, "depths");
    int nl = cJSON_GetArraySize(L), nd = cJSON_GetArraySize(D), cw = 52, ch = 28, X = 60, Y = 24;
    int W = X + nd * cw + 10, H = Y + nl * ch + 34;
    qv_sb(s, "<figure><svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' role='img'><title>", W, H);
    qv_sb_esc(s, title);
    qv_sb(s, "</title>");
    for (int d = 0; d < nd; d++)
        qv_sb(s, "<text x='%d' y='%d' font-size='11' text-anchor='middle'>%.2g</text>", X + d * cw + cw / 2, Y - 8,
           cJSON_GetArrayItem(D, d)->valuedouble);
    for (int l = 0; l < nl; l++) {
        qv_sb(s, "<text x='%d' y='%d' font-size='11' text-anchor='end'>%d</text>", X - 6, Y + l * ch + ch / 2 + 4,
           cJSON_GetArrayItem(L, l)->valueint);
        for (int d = 0; d < nd; d++) {
            const cJSON *v = cJSON_GetArrayItem(cJSON_GetArrayItem(g, l), d);
            double x = cJSON_IsNumber(v) ? v->valuedouble : NAN;
            char col[8];
            color(hi > lo ? (x - lo) / (hi - lo) : 0.5, diverging, col);
            qv_sb(s, "<rect x='%d' y='%d' width='%d' height='%d' fill='%s' stroke='#fff'/>", X + d * cw, Y + l * ch, cw, ch, col);
            const cJSON *h = hits ? cJSON_GetArrayItem(cJSON_GetArrayItem(hits, l), d) : NULL;
            qv_sb(s, "<text x='%d' y='%d' font-size='10' text-anchor='middle' fill='%s'>", X + d * cw + cw / 2, Y + l * ch + ch / 2 + 4,
               text_on(col));
            if (isfinite(x)) qv_sb(s, "%.2f%s", x, h && cJSON_IsNumber(h) && h->valuedouble > 0 ? "&#10003;" : "");
            else qv_sb(s, "-");
            qv_sb(s, "</text>");
        }
    }
    qv_sb(s, "<text x='%d' y='%d' font-size='11' text-anchor='middle'>depth &#8594; (rows: context length, tokens)</text>", X + nd * cw / 2, H - 6);
    qv_sb(s, "</svg><figcaption>");
    qv_sb_esc(s, title);
    qv_sb(s, "</figcaption></figure>");
}

static void grid_range(const cJSON *a, const cJSON *b, double *lo, double *hi)
{
    *lo = INFINITY, *hi = -INFINITY;
    const cJSON *gs[2] = {a, b};
    for (int k = 0; k < 2; k++)
        for (const cJSON *r = gs[k] ? gs[k]->child : NULL; r; r = r->next)
            for (const cJSON *v = r->child; v; v = v->next)
                if (cJSON_IsNumber(v)) *lo = fmin(*lo, v->valuedouble), *hi = fmax(*hi, v->valuedouble);
}

static void fmt_num(qv_sbuf *s, const cJSON *v)
{
    if (cJSON_IsNumber(v)) qv_sb(s, "%.5g", v->valuedouble);
    else qv_sb(s, "n/a");
}

/* the go/no-go row of a LongBench task ("longbench_delta.<task>"), NULL if none */
static const cJSON *lb_row(const cJSON *rows, const char *task)
{
    char name[128];
    snprintf(name, sizeof name, "longbench_delta.%s", task);
    for (const cJSON *c = rows ? rows->child : NULL; c; c = c->next) {
        const cJSON *n = cJSON_GetObjectItem(c, "name");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name)) return c;
    }
    return NULL;
}

/* per task: R and C scores as bars on 0..100, and C - R as a bar from zero with the task's
 * threshold drawn as a dashed line */
static void svg_lb_bars(qv_sbuf *s, const cJSON *tasks, const cJSON *rows)
{
    int n = cJSON_GetArraySize(tasks);
    if (n < 1) return;
    double dm = 1;
    for (const cJSON *t = tasks->child; t; t = t->next) {
        dm = fmax(dm, fabs(num(t, "delta")));
        const cJSON *row = lb_row(rows, t->string);
        if (row) dm = fmax(dm, fabs(num(row, "threshold")));
    }
    dm *= 1.15;
    int rowh = 34, L = 190, pw = 300, gap = 30, dw = 220, W = L + pw + gap + dw + 20, H = 30 + n * rowh + 30;
    qv_sb(s, "<figure><svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' role='img'><title>LongBench per task</title>", W, H);
    qv_sb(s, "<text x='%d' y='14' font-size='11' text-anchor='middle'>score (0-100): <tspan fill='#7a7a7a'>R</tspan> / <tspan fill='#3f6fb5'>C</tspan></text>", L + pw / 2);
    int dx0 = L + pw + gap;
    double zx = dx0 + dw / 2.0;
    qv_sb(s, "<text x='%.1f' y='14' font-size='11' text-anchor='middle'>C &#8722; R (points); dashed: threshold</text>", zx);
    int y = 24, i = 0;
    for (const cJSON *t = tasks->child; t; t = t->next, i++, y += rowh) {
        double r = num(t, "ref"), c = num(t, "cand"), d = num(t, "delta");
        const cJSON *row = lb_row(rows, t->string);
        int pass = !row || cJSON_IsTrue(cJSON_GetObjectItem(row, "pass"));
        qv_sb(s, "<text x='%d' y='%d' font-size='11' text-anchor='end'>", L - 6, y + rowh / 2 + 4);
        qv_sb_esc(s, t->string);
        qv_sb(s, "</text><rect x='%d' y='%d' width='%d' height='%d' fill='#fafafa' stroke='#ddd'/>", L, y + 2, pw, rowh - 6);
        qv_sb(s, "<rect x='%d' y='%d' width='%.1f' height='12' fill='#7a7a7a'><title>R %.2f</title></rect>", L, y + 4,
              isfinite(r) ? pw * fmin(fmax(r, 0), 100) / 100 : 0, r);
        qv_sb(s, "<rect x='%d' y='%d' width='%.1f' height='12' fill='#3f6fb5'><title>C %.2f</title></rect>", L, y + 16,
              isfinite(c) ? pw * fmin(fmax(c, 0), 100) / 100 : 0, c);
        qv_sb(s, "<text x='%d' y='%d' font-size='10'>%.2f / %.2f</text>", L + pw + 3, y + rowh / 2 + 4, r, c);
        double w = isfinite(d) ? d / dm * (dw / 2.0) : 0;
        qv_sb(s, "<rect x='%.1f' y='%d' width='%.1f' height='%d' fill='%s'><title>C - R %+.2f</title></rect>", w < 0 ? zx + w : zx,
              y + 8, fabs(w), rowh - 18, pass ? (d < 0 ? "#e0a030" : "#3f9f5f") : "#c62828", d);
        if (row) {
            double tx = zx + num(row, "threshold") / dm * (dw / 2.0);
            qv_sb(s, "<line x1='%.1f' x2='%.1f' y1='%d' y2='%d' stroke='#c62828' stroke-dasharray='3,2'/>", tx, tx, y + 2, y + rowh - 4);
        }
        qv_sb(s, "<text x='%.1f' y='%d' font-size='10' text-anchor='%s'>%+.2f</text>", w < 0 ? zx + 4 : zx - 4, y + rowh / 2 + 4,
              w < 0 ? "start" : "end", d);
    }
    qv_sb(s, "<line x1='%.1f' x2='%.1f' y1='20' y2='%d' stroke='#444'/>", zx, zx, y);
    for (int q = 0; q <= 4; q++)
        qv_sb(s, "<text x='%d' y='%d' font-size='10' text-anchor='middle'>%d</text>", L + pw * q / 4, y + 14, 25 * q);
    qv_sb(s, "<text x='%d' y='%d' font-size='10' text-anchor='start'>%.3g</text><text x='%d' y='%d' font-size='10' text-anchor='end'>+%.3g</text>",
          dx0, y + 14, -dm, dx0 + dw, y + 14, dm);
    qv_sb(s, "</svg><figcaption>LongBench per task: scores of R and C (LongBench's scorer, 0-100) and C &#8722; R with the "
             "task's threshold (red bar: below it)</figcaption></figure>");
}

static void longbench_section(qv_sbuf *s, const cJSON *lb, const cJSON *rows)
{
    const cJSON *sum = cJSON_GetObjectItem(lb, "summary"), *meta = cJSON_GetObjectItem(lb, "meta");
    const cJSON *tasks = cJSON_GetObjectItem(sum, "tasks"), *ov = cJSON_GetObjectItem(sum, "overall");
    const cJSON *src = cJSON_GetObjectItem(meta, "source");
    int syn = cJSON_IsString(src) && !strcmp(src->valuestring, "synthetic");
    qv_sb(s, "<h2>LongBench%s</h2><p>", syn ? " (qvet's synthetic tasks)" : "");
    if (syn) {
        qv_sb(s, "qvet's own offline tasks built from ");
        qv_sb_esc(s, cJSON_GetObjectItem(meta, "corpus") ? cJSON_GetObjectItem(meta, "corpus")->valuestring : "?");
        qv_sb(s, ", scored with LongBench's metrics (docs/longbench.md). ");
    } else {
        qv_sb(s, "LongBench data ");
        qv_sb_esc(s, cJSON_GetObjectItem(meta, "data") ? cJSON_GetObjectItem(meta, "data")->valuestring : "?");
        qv_sb(s, " with the prompts of ");
        qv_sb_esc(s, cJSON_GetObjectItem(meta, "longbench_config") ? cJSON_GetObjectItem(meta, "longbench_config")->valuestring : "?");
        qv_sb(s, ". ");
    }
    qv_sb(s, "Greedy decoding, max_length %.0f. Average over %.0f tasks: R %.2f, C %.2f, C&#8722;R %+.2f; identical predictions %.3f.</p>",
          num(meta, "max_length"), num(ov, "tasks"), num(ov, "ref"), num(ov, "cand"), num(ov, "delta"), num(ov, "identical"));
    svg_lb_bars(s, tasks, rows);
    qv_sb(s, "<table><tr><th>task</th><th>metric</th><th>n</th><th>R</th><th>C</th><th>C&#8722;R</th><th>per item C&#8722;R [95%% CI]</th>"
             "<th>identical</th><th>token agreement</th><th>truncated</th><th>threshold</th><th>result</th></tr>");
    for (const cJSON *t = tasks ? tasks->child : NULL; t; t = t->next) {
        const cJSON *row = lb_row(rows, t->string), *di = cJSON_GetObjectItem(t, "delta_items");
        int pass = !row || cJSON_IsTrue(cJSON_GetObjectItem(row, "pass"));
        qv_sb(s, "<tr class='%s'><td>", row ? (pass ? "pass" : "fail") : "");
        qv_sb_esc(s, t->string);
        qv_sb(s, "</td><td>%s</td><td>%.0f</td><td>%.2f</td><td>%.2f</td><td>%+.2f</td><td>%+.2f [%+.2f, %+.2f]</td><td>%.3f</td>"
                 "<td>%.3f</td><td>%.0f</td><td>", cJSON_GetObjectItem(t, "metric")->valuestring, num(t, "n"), num(t, "ref"),
              num(t, "cand"), num(t, "delta"), num(di, "mean"), num(di, "lo"), num(di, "hi"), num(t, "identical"),
              num(t, "token_agreement"), num(t, "truncated"));
        if (row) qv_sb(s, "&#8805; %.4g</td><td>%s</td></tr>", num(row, "threshold"), pass ? "pass" : "FAIL");
        else qv_sb(s, "none</td><td>-</td></tr>");
    }
    qv_sb(s, "</table><p>Reproduce: <code>");
    const cJSON *cmd = cJSON_GetObjectItem(lb, "command");
    if (cJSON_IsString(cmd)) qv_sb_esc(s, cmd->valuestring);
    qv_sb(s, "</code>; the prediction files in longbench-pred/ref and longbench-pred/cand give the same scores with "
             "<code>qvet longbench --score</code>.</p>");
}

qv_status qv_report_html(const cJSON *r, const char *out)
{
    qv_sbuf s = {0};
    const cJSON *verdict = cJSON_GetObjectItem(r, "verdict"), *rows = cJSON_GetObjectItem(r, "checks");
    const cJSON *cmp = cJSON_GetObjectItem(r, "compare"), *niah = cJSON_GetObjectItem(r, "niah");
    int go = cJSON_IsString(verdict) && !strcmp(verdict->valuestring, "go");
    qv_sb(&s, "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>qvet validate report</title><style>"
           "body{font-family:sans-serif;max-width:1160px;margin:24px auto;color:#222;padding:0 16px}"
           "table{border-collapse:collapse;margin:8px 0 18px}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;vertical-align:top}"
           "th{background:#f0f0f0;text-align:left}.pass{background:#e3f4e1}.fail{background:#fbe0e0}"
           ".verdict{font-size:28px;font-weight:bold;padding:10px 16px;display:inline-block;border-radius:6px}"
           ".go{background:#2e7d32;color:#fff}.nogo{background:#c62828;color:#fff}code{font-size:12px;overflow-wrap:anywhere}"
           "figure{display:inline-block;margin:0 18px 12px 0;vertical-align:top}figcaption{font-size:12px;color:#555}"
           ".why{font-size:11px;color:#555}</style></head><body>");
    qv_sb(&s, "<h1>qvet validate</h1><div class='verdict %s'>%s</div>", go ? "go" : "nogo", go ? "GO" : "NO-GO");
    const cJSON *meta = cJSON_GetObjectItem(r, "meta");
    qv_sb(&s, "<table>");
    const char *mk[] = {"model", "ref", "cand", "quantized", "text", "haystack", "thresholds", "command", "elapsed_s"};
    for (int i = 0; i < 9; i++) {
        const cJSON *v = cJSON_GetObjectItem(meta, mk[i]);
        if (!v) continue;
        qv_sb(&s, "<tr><th>%s</th><td>", mk[i]);
        if (cJSON_IsString(v)) qv_sb_esc(&s, v->valuestring);
        else fmt_num(&s, v);
        qv_sb(&s, "</td></tr>");
    }
    qv_sb(&s, "</table><h2>Go / no-go</h2><table><tr><th>figure</th><th>value</th><th>threshold</th><th>result</th><th>reproduce</th></tr>");
    for (const cJSON *c = rows ? rows->child : NULL; c; c = c->next) {
        const cJSON *pass = cJSON_GetObjectItem(c, "pass");
        qv_sb(&s, "<tr class='%s'><td><b>", cJSON_IsTrue(pass) ? "pass" : "fail");
        qv_sb_esc(&s, cJSON_GetObjectItem(c, "figure")->valuestring);
        qv_sb(&s, "</b><div class='why'>");
        const cJSON *why = cJSON_GetObjectItem(c, "why");
        if (cJSON_IsString(why)) qv_sb_esc(&s, why->valuestring);
        qv_sb(&s, "</div></td><td>");
        fmt_num(&s, cJSON_GetObjectItem(c, "value"));
        qv_sb(&s, "</td><td>%s ", cJSON_IsString(cJSON_GetObjectItem(c, "op")) ? cJSON_GetObjectItem(c, "op")->valuestring : "");
        fmt_num(&s, cJSON_GetObjectItem(c, "threshold"));
        qv_sb(&s, "</td><td>%s</td><td><code>", cJSON_IsTrue(pass) ? "pass" : "FAIL");
        const cJSON *cmd = cJSON_GetObjectItem(c, "command");
        if (cJSON_IsString(cmd)) qv_sb_esc(&s, cmd->valuestring);
        qv_sb(&s, "</code></td></tr>");
    }
    qv_sb(&s, "</table>");
    if (cmp) {
        const cJSON *k = cJSON_GetObjectItem(cmp, "kld");
        qv_sb(&s, "<h2>Compare (%g chunks, %g positions)</h2><table><tr><th>figure</th><th>value</th><th>95%% CI</th></tr>",
           num(cmp, "chunks"), num(cmp, "positions"));
        const char *ci[][2] = {{"ppl R", "ppl_ref"}, {"ppl C", "ppl_cand"}, {"ln(ppl_C/ppl_R)", "ln_ppl_ratio"},
                               {"KLD mean", "kld.mean"}, {"top-1 agreement", "top1_agreement"}};
        for (int i = 0; i < 5; i++) {
            const cJSON *o = path(cmp, ci[i][1]);
            qv_sb(&s, "<tr><td>%s</td><td>", ci[i][0]);
            fmt_num(&s, cJSON_GetObjectItem(o, "value"));
            qv_sb(&s, "</td><td>[");
            fmt_num(&s, cJSON_GetObjectItem(o, "lo"));
            qv_sb(&s, ", ");
            fmt_num(&s, cJSON_GetObjectItem(o, "hi"));
            qv_sb(&s, "]</td></tr>");
        }
        qv_sb(&s, "<tr><td>KLD median / p90 / p99 / p99.9</td><td colspan='2'>%.4g / %.4g / %.4g / %.4g</td></tr>",
           num(k, "median"), num(k, "p90"), num(k, "p99"), num(k, "p99_9"));
        qv_sb(&s, "<tr><td>KLD max</td><td colspan='2'>%.4g at token %g (chunk %g, offset %g), token id %g</td></tr>", num(k, "max"),
           num(k, "max_pos"), num(k, "max_chunk"), num(k, "max_offset"), num(k, "max_token"));
        qv_sb(&s, "<tr><td>&#916;p = p_C(y) &#8722; p_R(y): mean / rms / p1 / p99</td><td colspan='2'>%.4g / %.4g / %.4g / %.4g</td></tr></table>",
           num(cmp, "delta_p.mean"), num(cmp, "delta_p.rms"), num(cmp, "delta_p.p1"), num(cmp, "delta_p.p99"));
        qv_sb(&s, "<figure>");
        svg_hist(&s, k);
        qv_sb(&s, "<figcaption>KLD per position: histogram over log10 bins [1e-8, 1e2); grey: below 1e-8 (incl. 0), red: 1e2 and above</figcaption></figure><figure>");
        svg_pos(&s, k);
        qv_sb(&s, "<figcaption>mean KLD vs position inside the chunk (tokens)</figcaption></figure>");
    }
    if (niah) {
        const cJSON *ns = cJSON_GetObjectItem(niah, "summary"), *nm = cJSON_GetObjectItem(niah, "meta");
        qv_sb(&s, "<h2>Needle in a haystack</h2><p>Cells: mean log-probability of the answer tokens (teacher-forced); &#10003; = exact "
               "greedy retrieval. Retrieval R %.3f, C %.3f; mean log p R %.4f, C %.4f, C&#8722;R %.4f (worst cell %.4f).</p>",
           num(ns, "hit_rate_ref"), num(ns, "hit_rate_cand"), num(ns, "lp_mean_ref"), num(ns, "lp_mean_cand"),
           num(ns, "lp_delta_mean"), num(ns, "lp_delta_min"));
        double lo, hi, dlo, dhi;
        grid_range(cJSON_GetObjectItem(ns, "lp_ref"), cJSON_GetObjectItem(ns, "lp_cand"), &lo, &hi);
        grid_range(cJSON_GetObjectItem(ns, "lp_delta"), NULL, &dlo, &dhi);
        double m = fmax(fabs(dlo), fabs(dhi));
        if (!(m > 0)) m = 1;
        svg_grid(&s, "R: mean log p(answer)", nm, cJSON_GetObjectItem(ns, "lp_ref"), cJSON_GetObjectItem(ns, "hit_ref"), lo, hi, 0);
        svg_grid(&s, "C: mean log p(answer)", nm, cJSON_GetObjectItem(ns, "lp_cand"), cJSON_GetObjectItem(ns, "hit_cand"), lo, hi, 0);
        svg_grid(&s, "C - R (red: C worse, blue: C better)", nm, cJSON_GetObjectItem(ns, "lp_delta"), NULL, -m, m, 1);
    }
    const cJSON *lb = cJSON_GetObjectItem(r, "longbench");
    if (lb) longbench_section(&s, lb, rows);
    qv_sb(&s, "<p class='why'>Written by qvet validate. Definitions: docs/evals.md. Every figure is recomputed by the command beside it.</p></body></html>\n");
    if (s.oom) {
        free(s.b);
        return qv_fail(QV_ERR_NOMEM, "%s: out of memory", out);
    }
    qv_status st = qv_write_file_atomic(out, s.b, s.n);
    free(s.b);
    return st;
}
