// The evaluation report: report.md (tables), report.html (the same tables and inline SVG plots,
// no external assets, readable offline) and metrics.json (the headline numbers for scripts),
// plus the short table `tracellm eval` prints.
#pragma once
#include "eval/metrics.h"
#include <stdio.h>
#include <stdbool.h>

typedef struct {
    const char *real, *syn, *train;   // input paths, shown in the report
} ReportInputs;

void report_print_table(FILE *f, const EvalResult *r);
// Writes dir/report.md, dir/report.html, dir/metrics.json (creating dir); each file atomically.
void report_write(const char *dir, const EvalResult *r, const ReportInputs *in);

// Pieces shared with `tracellm eval grid` (eval/grid.c).
// A table in either syntax: report_row(&t, "a\tb\tc") per row (the first row is the header),
// then report_table_end. Cells are escaped for the syntax.
typedef struct {
    FILE *f;
    bool html;
    int row;
} ReportTable;
void report_row(ReportTable *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void report_table_end(ReportTable *t);
// a as a percentage of b (0 when b is 0): every share the reports print
static inline double pct(int64_t a, int64_t b) { return b ? 100.0 * a / b : 0; }
void report_heading(FILE *f, bool html, int level, const char *text);
// <!DOCTYPE html> ... <h1>title</h1>: the head of report.html and grid.html
void report_html_begin(FILE *f, const char *title, bool inline_figures);
void report_para(FILE *f, bool html, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
// The accuracy grid of r by depth (all edges, <= 15, > 15); nothing when r has no grid request.
void report_grid_table(FILE *f, bool html, const EvalResult *r);
// The accuracy grid of r as an inline SVG heatmap (one cell per requested num_edges x depth).
void report_grid_svg(FILE *f, const EvalResult *r, const char *title);
