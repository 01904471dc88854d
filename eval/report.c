// See report.h. The markdown and the HTML share one table emitter (a tiny Table builder that
// prints either syntax); the plots are hand-written SVG: CDFs, grouped histograms, stacked bars.
#include "eval/report.h"
#include "util/util.h"
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// Numbers from sorted samples

static double quantile(const double *v, int n, double q) {
    if (n == 0) return 0;
    double pos = q * (n - 1);
    int i = (int)pos;
    return i + 1 < n ? v[i] + (v[i + 1] - v[i]) * (pos - i) : v[n - 1];
}
static double mean(const double *v, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += v[i];
    return n ? s / n : 0;
}

// ---------------------------------------------------------------------------------------------
// Tables: one builder, two syntaxes

typedef ReportTable Table;

static void esc(FILE *f, bool html, const char *s) {
    for (; *s; s++) {
        if (html && *s == '<') fputs("&lt;", f);
        else if (html && *s == '>') fputs("&gt;", f);
        else if (html && *s == '&') fputs("&amp;", f);
        else if (!html && *s == '|') fputs("\\|", f);
        else fputc(*s, f);
    }
}
// cells separated by '\t' in a printf-style format
void report_row(Table *t, const char *fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    int ncell = 1;
    for (char *p = buf; *p; p++) ncell += *p == '\t';
    const char *cell_open = t->row == 0 ? "<th>" : "<td>", *cell_close = t->row == 0 ? "</th>" : "</td>";
    if (t->html) fputs(t->row == 0 ? "<table>\n<tr>" : "<tr>", t->f);
    else fputs("|", t->f);
    for (char *p = buf, *c; (c = strsep(&p, "\t")) != NULL;) {
        if (t->html) { fputs(cell_open, t->f); esc(t->f, true, c); fputs(cell_close, t->f); }
        else { fputc(' ', t->f); esc(t->f, false, c); fputs(" |", t->f); }
    }
    fputs(t->html ? "</tr>\n" : "\n", t->f);
    if (!t->html && t->row == 0) {
        fputs("|", t->f);
        for (int i = 0; i < ncell; i++) fputs("---|", t->f);
        fputs("\n", t->f);
    }
    t->row++;
}
void report_table_end(Table *t) { fputs(t->html ? "</table>\n" : "\n", t->f); t->row = 0; }
// The page head both reports share (offline, no scripts): title, style, <h1>. Figures flow side by
// side (inline) or one per line.
void report_html_begin(FILE *f, const char *title, bool inline_figures) {
    fprintf(f, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%s</title>\n"
               "<style>body{font-family:sans-serif;max-width:1200px;margin:1em auto;padding:0 1em}"
               "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:2px 8px;text-align:right}"
               "th{background:#eee}td:first-child{text-align:left}figure{display:%s;margin:6px}</style>\n"
               "</head><body>\n<h1>%s</h1>\n",
            title, inline_figures ? "inline-block" : "block", title);
}

void report_heading(FILE *f, bool html, int level, const char *text) {
    if (html) fprintf(f, "<h%d>%s</h%d>\n", level, text, level);
    else fprintf(f, "%.*s %s\n\n", level, "####", text);
}
void report_para(FILE *f, bool html, const char *fmt, ...) {
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (html) { fputs("<p>", f); esc(f, true, buf); fputs("</p>\n", f); }
    else fprintf(f, "%s\n\n", buf);
}

static int64_t grid_requests(const EvalResult *r) {
    int64_t n = 0;
    for (int e = 1; e <= EVAL_GRID_EDGES; e++)
        for (int d = 1; d <= EVAL_GRID_DEPTH; d++) n += r->grid_n[e][d];
    return n;
}

// The tables, shared by report.md and report.html.
static void tables(FILE *f, bool html, const EvalResult *r, const ReportInputs *in) {
    Table t = {f, html, 0};
    report_para(f, html, "Real: %s (%d graphs). Synthetic: %s (%d graphs).%s%s%s", in->real, r->n_real, in->syn, r->n_syn,
         in->train ? " Training set for memorization: " : "", in->train ? in->train : "", in->train ? "." : "");
    report_heading(f, html, 2, "Summary");
    report_row(&t, "metric\tvalue\tpaper (PAPER.md §6)");
    report_row(&t, "validity\t%.2f%%\t-", 100 * r->validity);
    report_row(&t, "KL top-%d calls (nats)\t%.4f\tTraceLLM 0.16, GReaT 0.11, TVAE 0.74, probabilistic 3.84", r->kl_calls, r->kl);
    for (int i = 0; i < EVAL_N_HH; i++)
        report_row(&t, "heavy hitters top-%d%s\t%.1f%%\t%s", EVAL_HH_K[i], r->hh_keff[i] < EVAL_HH_K[i] ? " (fewer real microservices)" : "",
             100 * r->hh_recovery[i],
             EVAL_HH_K[i] == 10 ? "TraceLLM > 90%, probabilistic 59%" : EVAL_HH_K[i] == 500 ? "TraceLLM 65%, probabilistic 23%" : EVAL_HH_K[i] <= 50 ? "TraceLLM > 90%" : "-");
    const char *paper_emd = "TraceLLM 2.6x-10x lower than baselines";
    for (int k = 0; k < S_N; k++)
        report_row(&t, "normalized EMD, %s\t%.4f\t%s", r->s[k].name, r->s[k].emd_norm, k <= S_RT ? paper_emd : "-");
    if (r->have_train) {
        report_row(&t, "memorization, exact (structure + times)\t%.2f%%\tbaselines 16-24%%, TraceLLM 3-5%%", pct(r->memo_exact, r->n_syn));
        report_row(&t, "memorization, structure only\t%.2f%%\t-", pct(r->memo_structure, r->n_syn));
    }
    if (r->req_n) {
        report_row(&t, "requested num_edges met\t%.2f%% of %lld\t-", pct(r->req_edges_ok, r->req_edges_n), (long long)r->req_edges_n);
        report_row(&t, "requested depth met\t%.2f%% of %lld\t-", pct(r->req_depth_ok, r->req_depth_n), (long long)r->req_depth_n);
        report_row(&t, "accuracy (valid, num_edges and depth met)\t%.2f%% of %lld\tTraceLLM > 75%% at every depth", pct(r->req_both_ok, r->req_both_n), (long long)r->req_both_n);
        report_row(&t, "requested latency: exact / within 10%%\t%.2f%% / %.2f%% of %lld\t-", pct(r->req_lat_exact, r->req_lat_n),
             pct(r->req_lat_10pct, r->req_lat_n), (long long)r->req_lat_n);
        if (r->req_hl_n || r->req_hl_unscored)
            report_row(&t, "high latency met (root finish >= the service's p90)\t%.2f%% of %lld (%lld unscored: service without statistics)\t-",
                 pct(r->req_hl_ok, r->req_hl_n), (long long)r->req_hl_n, (long long)r->req_hl_unscored);
        if (r->req_ie_n) report_row(&t, "requested edge included\t%.2f%% of %lld\t-", pct(r->req_ie_ok, r->req_ie_n), (long long)r->req_ie_n);
        if (r->req_hlie_n)
            report_row(&t, "high latency and edge together\t%.2f%% of %lld\t-", pct(r->req_hlie_ok, r->req_hlie_n), (long long)r->req_hlie_n);
    }
    report_table_end(&t);
    report_para(f, html, "KL support: the top-%d real calls cover %.1f%% of real calls; %.1f%% of synthetic calls fall in them.",
         r->kl_calls, 100 * r->kl_real_mass, 100 * r->kl_syn_mass);

    report_heading(f, html, 2, "Validity by rule");
    report_row(&t, "rule\treal\tsynthetic");
    for (int c = 0; c < GRAPH_NCHECKS; c++)
        report_row(&t, "%s\t%lld (%.2f%%)\t%lld (%.2f%%)", c == GRAPH_OK ? "valid" : graph_check_name(c), (long long)r->real_checks[c],
             pct(r->real_checks[c], r->n_real), (long long)r->syn_checks[c], pct(r->syn_checks[c], r->n_syn));
    report_table_end(&t);

    report_heading(f, html, 2, "Distributions");
    report_para(f, html, "EMD = Wasserstein-1 distance between the real and synthetic empirical distributions; "
                  "normalized EMD = EMD / (mean absolute deviation of the real values around their median).");
    report_row(&t, "quantity\tset\tn\tmean\tp50\tp90\tp99\tmax\tEMD\tscale\tnormalized EMD");
    for (int k = 0; k < S_N; k++) {
        const Sample *s = &r->s[k];
        report_row(&t, "%s\treal\t%d\t%.3f\t%.1f\t%.1f\t%.1f\t%.0f\t%.4f\t%.4f\t%.4f", s->name, s->n_real, mean(s->real, s->n_real),
             quantile(s->real, s->n_real, .5), quantile(s->real, s->n_real, .9), quantile(s->real, s->n_real, .99),
             s->n_real ? s->real[s->n_real - 1] : 0, s->emd, s->scale, s->emd_norm);
        report_row(&t, "\tsynthetic\t%d\t%.3f\t%.1f\t%.1f\t%.1f\t%.0f\t\t\t", s->n_syn, mean(s->syn, s->n_syn), quantile(s->syn, s->n_syn, .5),
             quantile(s->syn, s->n_syn, .9), quantile(s->syn, s->n_syn, .99), s->n_syn ? s->syn[s->n_syn - 1] : 0);
    }
    report_table_end(&t);

    report_heading(f, html, 2, "Per depth");
    report_para(f, html, "Graphs by depth; mean width = mean number of calls at that depth over graphs reaching it; "
                  "types = share of calls at that depth (http/rpc/mc/db/mq).");
    report_row(&t, "depth\tgraphs real\tgraphs synthetic\tmean width real\tmean width synthetic\ttypes real\ttypes synthetic");
    for (int d = 0; d < EVAL_MAX_DEPTH; d++) {
        int64_t cr = 0, cs = 0;
        for (int ty = 0; ty < RPC_NTYPES; ty++) { cr += r->type_real[d][ty]; cs += r->type_syn[d][ty]; }
        if (!cr && !cs) continue;
        char tr[128] = "", ts[128] = "";
        for (int ty = 0, pr = 0, ps = 0; ty < RPC_NTYPES; ty++) {
            pr += snprintf(tr + pr, sizeof tr - pr, "%s%.0f", ty ? "/" : "", pct(r->type_real[d][ty], cr));
            ps += snprintf(ts + ps, sizeof ts - ps, "%s%.0f", ty ? "/" : "", pct(r->type_syn[d][ty], cs));
        }
        report_row(&t, "%d%s\t%lld\t%lld\t%.2f\t%.2f\t%s\t%s", d + 1, d + 1 == EVAL_MAX_DEPTH ? "+" : "", (long long)r->depth_real[d],
             (long long)r->depth_syn[d], r->width_real[d], r->width_syn[d], tr, ts);
    }
    report_table_end(&t);

    if (!grid_requests(r)) return;
    report_heading(f, html, 2, "Accuracy grid");
    report_para(f, html, "Requests with num_edges 1..%d and depth 1..%d (PAPER.md §6): accuracy = valid AND exactly the "
                  "requested num_edges AND depth. Paper: tabular baseline < 25%% for edges > 15 and ~0 for depth > 4; "
                  "TraceLLM > 75%% at every depth.", EVAL_GRID_EDGES, EVAL_GRID_DEPTH);
    report_grid_table(f, html, r);
}

// The accuracy grid by depth (all edges, <= 15, > 15: the paper's split); nothing without grid requests.
void report_grid_table(FILE *f, bool html, const EvalResult *r) {
    Table t = {f, html, 0};
    if (!grid_requests(r)) return;
    report_row(&t, "depth\tcells\trequests\taccuracy\taccuracy, edges <= 15\taccuracy, edges > 15");
    for (int d = 1; d <= EVAL_GRID_DEPTH; d++) {
        int64_t n[3] = {0}, ok[3] = {0}, cells = 0;
        for (int e = 1; e <= EVAL_GRID_EDGES; e++) {
            cells += r->grid_n[e][d] > 0;
            n[0] += r->grid_n[e][d]; ok[0] += r->grid_ok[e][d];
            n[e > 15 ? 2 : 1] += r->grid_n[e][d]; ok[e > 15 ? 2 : 1] += r->grid_ok[e][d];
        }
        if (!n[0]) continue;
        char c[3][32];
        for (int k = 0; k < 3; k++) {
            if (n[k]) snprintf(c[k], sizeof c[k], "%.1f%%", pct(ok[k], n[k]));
            else snprintf(c[k], sizeof c[k], "-");
        }
        report_row(&t, "%d\t%lld\t%lld\t%s\t%s\t%s", d, (long long)cells, (long long)n[0], c[0], c[1], c[2]);
    }
    report_table_end(&t);
}

// ---------------------------------------------------------------------------------------------
// SVG plots

#define W 560
#define H 300
#define ML 56   // margins: left, right, top, bottom
#define MR 16
#define MT 28
#define MB 44
static const char *COLOR_REAL = "#1f77b4", *COLOR_SYN = "#d62728";
static const char *TYPE_COLORS[RPC_NTYPES] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1"};

static void svg_open(FILE *f, const char *title, const char *xlabel, const char *ylabel) {
    fprintf(f, "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n", W, H, W, H);
    fprintf(f, "<title>%s</title><rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", title, W, H);
    fprintf(f, "<text x=\"%d\" y=\"18\" font-size=\"14\" font-family=\"sans-serif\">%s</text>\n", ML, title);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" font-family=\"sans-serif\" text-anchor=\"middle\">%s</text>\n", ML + (W - ML - MR) / 2, H - 6, xlabel);
    fprintf(f, "<text x=\"14\" y=\"%d\" font-size=\"12\" font-family=\"sans-serif\" text-anchor=\"middle\" transform=\"rotate(-90 14 %d)\">%s</text>\n",
            MT + (H - MT - MB) / 2, MT + (H - MT - MB) / 2, ylabel);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/><line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n",
            ML, H - MB, W - MR, H - MB, ML, MT, ML, H - MB);
}
static void svg_close(FILE *f) { fputs("</svg></figure>\n", f); }
static double px(double fx) { return ML + fx * (W - ML - MR); }
static double py(double fy) { return H - MB - fy * (H - MT - MB); }
static void tick_x(FILE *f, double fx, const char *label) {
    fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"black\"/>"
               "<text x=\"%.1f\" y=\"%d\" font-size=\"10\" font-family=\"sans-serif\" text-anchor=\"middle\">%s</text>\n",
            px(fx), H - MB, px(fx), H - MB + 4, px(fx), H - MB + 15, label);
}
static void tick_y(FILE *f, double fy, const char *label) {
    fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>"
               "<text x=\"%d\" y=\"%.1f\" font-size=\"10\" font-family=\"sans-serif\" text-anchor=\"end\">%s</text>\n",
            ML, py(fy), W - MR, py(fy), ML - 4, py(fy) + 3, label);
}
static void legend(FILE *f, int i, const char *color, const char *label) {
    int x = W - MR - 150, y = MT + 4 + 16 * i;
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"10\" fill=\"%s\"/>"
               "<text x=\"%d\" y=\"%d\" font-size=\"11\" font-family=\"sans-serif\">%s</text>\n", x, y, color, x + 16, y + 9, label);
}

// CDF of both samples on a log10(1 + x) axis (response times and sizes are heavy-tailed).
static void plot_cdf(FILE *f, const Sample *s, const char *title) {
    double hi = 0;
    if (s->n_real) hi = fmax(hi, s->real[s->n_real - 1]);
    if (s->n_syn) hi = fmax(hi, s->syn[s->n_syn - 1]);
    double lhi = log10(1 + fmax(hi, 1));
    svg_open(f, title, "value (log scale: log10(1 + x))", "fraction &lt;= x");
    for (int k = 0; k <= 4; k++) { char l[16]; snprintf(l, sizeof l, "%.2f", k / 4.0); tick_y(f, k / 4.0, l); }
    for (double v = 0; v <= hi; v = v == 0 ? 1 : v * 10) {
        char l[32];
        snprintf(l, sizeof l, "%g", v);
        tick_x(f, log10(1 + v) / lhi, l);
    }
    const double *vals[2] = {s->real, s->syn};
    int ns[2] = {s->n_real, s->n_syn};
    const char *colors[2] = {COLOR_REAL, COLOR_SYN};
    for (int side = 0; side < 2; side++) {
        if (!ns[side]) continue;
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", colors[side]);
        // step CDF at up to 400 points: (value at quantile q, q) then the next jump
        int steps = ns[side] < 400 ? ns[side] : 400;
        double prev_y = 0;
        for (int i = 0; i < steps; i++) {
            int idx = (int)((double)(i + 1) / steps * ns[side]) - 1;
            double x = log10(1 + fmax(vals[side][idx], 0)) / lhi, y = (double)(idx + 1) / ns[side];
            fprintf(f, "%.1f,%.1f %.1f,%.1f ", px(x), py(prev_y), px(x), py(y));
            prev_y = y;
        }
        fprintf(f, "%.1f,%.1f\"/>\n", px(1), py(prev_y));
    }
    legend(f, 0, COLOR_REAL, "real");
    legend(f, 1, COLOR_SYN, "synthetic");
    svg_close(f);
}

// Histogram of integer values 0..maxv (last bucket collects >= maxv), as fractions, bars side by side.
static void plot_hist(FILE *f, const Sample *s, const char *title, int lo, int maxv) {
    int nb = maxv - lo + 1;
    double *fr[2] = {xcalloc(nb, sizeof(double)), xcalloc(nb, sizeof(double))};
    const double *vals[2] = {s->real, s->syn};
    int ns[2] = {s->n_real, s->n_syn};
    double top = 0;
    for (int side = 0; side < 2; side++) {
        for (int i = 0; i < ns[side]; i++) {
            int b = (int)vals[side][i] - lo;
            b = b < 0 ? 0 : b >= nb ? nb - 1 : b;
            fr[side][b] += 1.0 / ns[side];
        }
        for (int b = 0; b < nb; b++) top = fmax(top, fr[side][b]);
    }
    if (top <= 0) top = 1;
    svg_open(f, title, "value", "fraction");
    for (int k = 0; k <= 4; k++) { char l[16]; snprintf(l, sizeof l, "%.2f", top * k / 4); tick_y(f, k / 4.0, l); }
    double bw = 1.0 / nb;
    for (int b = 0; b < nb; b++) {
        char l[16];
        snprintf(l, sizeof l, b == nb - 1 ? "%d+" : "%d", b + lo);
        if (nb <= 20 || b % ((nb + 19) / 20) == 0 || b == nb - 1) tick_x(f, (b + 0.5) * bw, l);
        for (int side = 0; side < 2; side++) {
            double x0 = px(b * bw + bw * (0.1 + 0.4 * side)), x1 = px(b * bw + bw * (0.5 + 0.4 * side));
            double h = fr[side][b] / top;
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>%s %s: %.4f</title></rect>\n",
                    x0, py(h), x1 - x0, py(0) - py(h), side ? COLOR_SYN : COLOR_REAL, l, side ? "synthetic" : "real", fr[side][b]);
        }
    }
    legend(f, 0, COLOR_REAL, "real");
    legend(f, 1, COLOR_SYN, "synthetic");
    svg_close(f);
    free(fr[0]);
    free(fr[1]);
}

// For each depth, two stacked bars (real, synthetic) of the type shares.
static void plot_types(FILE *f, const EvalResult *r) {
    int nd = 0;
    for (int d = 0; d < EVAL_MAX_DEPTH; d++)
        for (int t = 0; t < RPC_NTYPES; t++)
            if (r->type_real[d][t] || r->type_syn[d][t]) nd = d + 1;
    if (!nd) return;
    // no x label: the legend of types takes the bottom line
    svg_open(f, "Communication type per depth (left bar real, right bar synthetic)", "", "share of calls");
    for (int k = 0; k <= 4; k++) { char l[16]; snprintf(l, sizeof l, "%.2f", k / 4.0); tick_y(f, k / 4.0, l); }
    double bw = 1.0 / nd;
    for (int d = 0; d < nd; d++) {
        char l[16];
        snprintf(l, sizeof l, "%d", d + 1);
        tick_x(f, (d + 0.5) * bw, l);
        for (int side = 0; side < 2; side++) {
            const int64_t *c = side ? r->type_syn[d] : r->type_real[d];
            int64_t tot = 0;
            for (int t = 0; t < RPC_NTYPES; t++) tot += c[t];
            double y = 0, x0 = px(d * bw + bw * (0.1 + 0.42 * side)), x1 = px(d * bw + bw * (0.48 + 0.42 * side));
            for (int t = 0; t < RPC_NTYPES && tot; t++) {
                double h = (double)c[t] / tot;
                fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>depth %d %s %s: %.3f</title></rect>\n",
                        x0, py(y + h), x1 - x0, py(y) - py(y + h), TYPE_COLORS[t], d + 1, side ? "synthetic" : "real", rpc_type_name(t), h);
                y += h;
            }
        }
    }
    for (int t = 0; t < RPC_NTYPES; t++) {
        int x = ML + 8 + 60 * t;
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"10\" fill=\"%s\"/><text x=\"%d\" y=\"%d\" font-size=\"11\" font-family=\"sans-serif\">%s</text>\n",
                x, H - 16, TYPE_COLORS[t], x + 15, H - 7, rpc_type_name(t));
    }
    svg_close(f);
}

// The accuracy grid as a heatmap: num_edges across, depth up; red 0% .. green 100%, grey = no request.
void report_grid_svg(FILE *f, const EvalResult *r, const char *title) {
    if (!grid_requests(r)) return;
    const int cw = 26, ch = 26, gl = 56, gt = 30, gw = cw * EVAL_GRID_EDGES, gh = ch * EVAL_GRID_DEPTH;
    int w = gl + gw + 16, h = gt + gh + 44;
    fprintf(f, "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n", w, h, w, h);
    fprintf(f, "<title>Accuracy grid</title><rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", w, h);
    fputs("<text x=\"", f);
    fprintf(f, "%d\" y=\"18\" font-size=\"14\" font-family=\"sans-serif\">", gl);
    esc(f, true, title);
    fputs("</text>\n", f);
    for (int d = 1; d <= EVAL_GRID_DEPTH; d++) {
        int y = gt + (EVAL_GRID_DEPTH - d) * ch;
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" font-family=\"sans-serif\" text-anchor=\"end\">%d</text>\n", gl - 6, y + ch / 2 + 4, d);
        for (int e = 1; e <= EVAL_GRID_EDGES; e++) {
            int x = gl + (e - 1) * cw;
            int64_t n = r->grid_n[e][d];
            if (!n) {
                fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#eee\" stroke=\"white\"/>\n", x, y, cw, ch);
                continue;
            }
            double a = (double)r->grid_ok[e][d] / n;
            fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"hsl(%.0f,70%%,55%%)\" stroke=\"white\">"
                       "<title>num_edges %d, depth %d: %lld of %lld</title></rect>"
                       "<text x=\"%d\" y=\"%d\" font-size=\"9\" font-family=\"sans-serif\" text-anchor=\"middle\">%.0f</text>\n",
                    x, y, cw, ch, 120 * a, e, d, (long long)r->grid_ok[e][d], (long long)n, x + cw / 2, y + ch / 2 + 3, 100 * a);
        }
    }
    for (int e = 1; e <= EVAL_GRID_EDGES; e += e == 1 ? 4 : 5)
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" font-family=\"sans-serif\" text-anchor=\"middle\">%d</text>\n",
                gl + (e - 1) * cw + cw / 2, gt + gh + 14, e);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" font-family=\"sans-serif\" text-anchor=\"middle\">requested num_edges (cells: %% accurate)</text>\n",
            gl + gw / 2, h - 8);
    fprintf(f, "<text x=\"14\" y=\"%d\" font-size=\"12\" font-family=\"sans-serif\" text-anchor=\"middle\" transform=\"rotate(-90 14 %d)\">depth</text>\n",
            gt + gh / 2, gt + gh / 2);
    svg_close(f);
}

// ---------------------------------------------------------------------------------------------
// Files

static void write_json(FILE *f, const EvalResult *r) {
    fprintf(f, "{\n  \"n_real\": %d,\n  \"n_synthetic\": %d,\n  \"validity\": %.6f,\n", r->n_real, r->n_syn, r->validity);
    fprintf(f, "  \"invalid_by_rule\": {");
    for (int c = 1; c < GRAPH_NCHECKS; c++) fprintf(f, "%s\"%s\": %lld", c > 1 ? ", " : "", graph_check_name(c), (long long)r->syn_checks[c]);
    fprintf(f, "},\n  \"kl_top100\": %.6f,\n  \"kl_calls\": %d,\n  \"kl_real_mass\": %.6f,\n  \"kl_syn_mass\": %.6f,\n  \"heavy_hitters\": {",
            r->kl, r->kl_calls, r->kl_real_mass, r->kl_syn_mass);
    for (int i = 0; i < EVAL_N_HH; i++) fprintf(f, "%s\"%d\": %.6f", i ? ", " : "", EVAL_HH_K[i], r->hh_recovery[i]);
    fprintf(f, "},\n  \"heavy_hitters_k_effective\": {");
    for (int i = 0; i < EVAL_N_HH; i++) fprintf(f, "%s\"%d\": %d", i ? ", " : "", EVAL_HH_K[i], r->hh_keff[i]);
    static const char *keys[S_N] = {"in_degree", "out_degree", "response_time", "graph_size", "depth"};
    fprintf(f, "},\n  \"emd_normalized\": {");
    for (int k = 0; k < S_N; k++) fprintf(f, "%s\"%s\": %.6f", k ? ", " : "", keys[k], r->s[k].emd_norm);
    fprintf(f, "},\n  \"emd\": {");
    for (int k = 0; k < S_N; k++) fprintf(f, "%s\"%s\": %.6f", k ? ", " : "", keys[k], r->s[k].emd);
    fprintf(f, "}");
    if (r->have_train)
        fprintf(f, ",\n  \"memorization_exact\": %.6f,\n  \"memorization_structure\": %.6f", r->n_syn ? (double)r->memo_exact / r->n_syn : 0,
                r->n_syn ? (double)r->memo_structure / r->n_syn : 0);
    if (r->req_n)
        fprintf(f, ",\n  \"requests\": %lld,\n  \"num_edges_match\": %.6f,\n  \"depth_match\": %.6f,\n  \"accuracy\": %.6f,\n  \"latency_exact\": %.6f",
                (long long)r->req_n, pct(r->req_edges_ok, r->req_edges_n) / 100, pct(r->req_depth_ok, r->req_depth_n) / 100,
                pct(r->req_both_ok, r->req_both_n) / 100, pct(r->req_lat_exact, r->req_lat_n) / 100);
    if (r->req_n)
        fprintf(f, ",\n  \"high_latency_met\": %.6f,\n  \"high_latency_scored\": %lld,\n  \"include_edge_met\": %.6f,\n  \"include_edge_asked\": %lld",
                pct(r->req_hl_ok, r->req_hl_n) / 100, (long long)r->req_hl_n, pct(r->req_ie_ok, r->req_ie_n) / 100, (long long)r->req_ie_n);
    // the accuracy grid as [num_edges, depth, requests, accurate] for every requested cell
    const char *sep = ",\n  \"grid\": [";
    for (int e = 1; e <= EVAL_GRID_EDGES; e++)
        for (int d = 1; d <= EVAL_GRID_DEPTH; d++)
            if (r->grid_n[e][d]) {
                fprintf(f, "%s[%d, %d, %lld, %lld]", sep, e, d, (long long)r->grid_n[e][d], (long long)r->grid_ok[e][d]);
                sep = ", ";
            }
    if (sep[0] == ',' && sep[1] == ' ') fputs("]", f);
    fprintf(f, "\n}\n");
}

void report_write(const char *dir, const EvalResult *r, const ReportInputs *in) {
    if (mkdir_p(dir, 0777)) fatal("cannot create %s: %s", dir, strerror(errno));
    char *p = path_join(dir, "report.md");
    OutFile *o = out_open(p);
    fprintf(o->f, "# tracellm evaluation report\n\n");
    tables(o->f, false, r, in);
    fprintf(o->f, "Plots: report.html. Metric definitions: docs/EVAL.md.\n");
    out_close(o);
    free(p);

    p = path_join(dir, "report.html");
    o = out_open(p);
    FILE *f = o->f;
    report_html_begin(f, "tracellm evaluation report", true);
    tables(f, true, r, in);
    fputs("<h2>Plots</h2>\n", f);
    plot_cdf(f, &r->s[S_RT], "CDF of per-call response time (ms)");
    plot_cdf(f, &r->s[S_SIZE], "CDF of graph size (edges)");
    plot_hist(f, &r->s[S_INDEG], "In-degree per microservice per graph", 0, 10);
    plot_hist(f, &r->s[S_OUTDEG], "Out-degree per microservice per graph", 0, 20);
    plot_hist(f, &r->s[S_DEPTH], "Graph depth", 1, 15);
    plot_types(f, r);
    report_grid_svg(f, r, "Accuracy by requested num_edges and depth");
    fputs("<p>Metric definitions: docs/EVAL.md in the tracellm repository.</p>\n</body></html>\n", f);
    out_close(o);
    free(p);

    p = path_join(dir, "metrics.json");
    o = out_open(p);
    write_json(o->f, r);
    out_close(o);
    free(p);
}

void report_print_table(FILE *f, const EvalResult *r) {
    fprintf(f, "%-44s %12s\n", "metric", "value");
    fprintf(f, "%-44s %11.2f%%\n", "validity", 100 * r->validity);
    fprintf(f, "%-44s %12.4f\n", "KL top-100 calls (nats)", r->kl);
    // beside KL, what it was computed on: with few synthetic calls the smoothing decides the KL
    fprintf(f, "%-44s %12d\n", "  synthetic graphs", r->n_syn);
    fprintf(f, "%-44s %11.1f%%\n", "  synthetic calls in the top-100 real calls", 100 * r->kl_syn_mass);
    char name[64];
    for (int i = 0; i < EVAL_N_HH; i++) {
        snprintf(name, sizeof name, "heavy hitters top-%d", EVAL_HH_K[i]);
        fprintf(f, "%-44s %11.1f%%\n", name, 100 * r->hh_recovery[i]);
    }
    for (int k = 0; k < S_N; k++) {
        snprintf(name, sizeof name, "normalized EMD %s", r->s[k].name);
        fprintf(f, "%-44s %12.4f\n", name, r->s[k].emd_norm);
    }
    if (r->have_train) {
        fprintf(f, "%-44s %11.2f%%\n", "memorization (exact)", pct(r->memo_exact, r->n_syn));
        fprintf(f, "%-44s %11.2f%%\n", "memorization (structure only)", pct(r->memo_structure, r->n_syn));
    }
    if (r->req_n) {
        fprintf(f, "%-44s %11.2f%%\n", "requested num_edges met", pct(r->req_edges_ok, r->req_edges_n));
        fprintf(f, "%-44s %11.2f%%\n", "requested depth met", pct(r->req_depth_ok, r->req_depth_n));
        fprintf(f, "%-44s %11.2f%%\n", "accuracy (valid + num_edges + depth)", pct(r->req_both_ok, r->req_both_n));
        if (r->req_lat_n) fprintf(f, "%-44s %11.2f%%\n", "requested latency met exactly", pct(r->req_lat_exact, r->req_lat_n));
        if (r->req_hl_n) fprintf(f, "%-44s %11.2f%%\n", "high latency met", pct(r->req_hl_ok, r->req_hl_n));
        if (r->req_ie_n) fprintf(f, "%-44s %11.2f%%\n", "requested edge included", pct(r->req_ie_ok, r->req_ie_n));
    }
}
