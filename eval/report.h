// The evaluation report: report.md (tables), report.html (the same tables and inline SVG plots,
// no external assets, readable offline) and metrics.json (the headline numbers for scripts),
// plus the short table `tracellm eval` prints.
#pragma once
#include "eval/metrics.h"
#include <stdio.h>

typedef struct {
    const char *real, *syn, *train;   // input paths, shown in the report
} ReportInputs;

void report_print_table(FILE *f, const EvalResult *r);
// Writes dir/report.md, dir/report.html, dir/metrics.json (creating dir); each file atomically.
void report_write(const char *dir, const EvalResult *r, const ReportInputs *in);
