// `tracellm eval`: compares synthetic call graphs with real ones (metrics.h) and writes the report.
#include "data/stats.h"
#include "eval/metrics.h"
#include "eval/report.h"
#include "util/args.h"
#include "util/util.h"
#include <stdio.h>
#include <string.h>

int cmd_eval_grid(int argc, char **argv);   // eval/grid.c

int cmd_eval(int argc, char **argv) {
    // `tracellm eval grid ...`: the accuracy grid generates its own samples (eval/grid.c)
    if (argc >= 2 && !strcmp(argv[1], "grid")) return cmd_eval_grid(argc - 1, argv + 1);
    const char *real = NULL, *syn = NULL, *train = NULL, *out = NULL, *stats_path = NULL;
    Opt opts[] = {
        {"--real", OPT_STR, &real, "FILE", "real graphs JSONL (the validation split)", true},
        {"--synthetic", OPT_STR, &syn, "FILE", "generated graphs JSONL (lines may carry \"request\":{num_edges,depth,latency})", true},
        {"--train", OPT_STR, &train, "FILE", "training graphs JSONL: enables the memorization rate", false},
        {"--out", OPT_STR, &out, "DIR", "report folder: report.md, report.html, metrics.json", true},
        {"--stats", OPT_STR, &stats_path, "FILE", "stats.json (`tracellm stats`) defining high latency; default: from --real", false},
    };
    args_parse(argc, argv, "tracellm eval --real val.jsonl --synthetic gen.jsonl [--train train.jsonl] [--stats stats.json] --out REPORT_DIR",
               "Validity, KL of the top-100 calls, heavy hitters, normalized EMDs, per-depth shape, memorization\n"
               "and request match rates of synthetic graphs against real ones (definitions: docs/EVAL.md).\n"
               "`tracellm eval grid --help`: the paper's accuracy grid, generated from a model and scored.",
               opts, 5, NULL);
    double t0 = now_seconds();
    GraphSet r, s;
    graphset_load(&r, real);
    graphset_load(&s, syn);
    if (r.n == 0) fatal("%s: no graphs", real);
    if (s.n == 0) fatal("%s: no graphs", syn);
    Stats st;
    char err[512];
    if (stats_path && !stats_load(stats_path, &st, err, sizeof err)) fatal("%s", err);
    MemoIndex m;
    if (train) memo_index_build(&m, train);
    EvalResult res;
    eval_compute(&r, &s, train ? &m : NULL, stats_path ? &st : NULL, &res);
    if (stats_path) stats_free(&st);
    ReportInputs in = {real, syn, train};
    report_write(out, &res, &in);
    printf("eval: %d real, %d synthetic graphs%s, %.2fs\n", r.n, s.n, train ? " (+ training set)" : "", now_seconds() - t0);
    report_print_table(stdout, &res);
    printf("report: %s/report.html (tables: %s/report.md, numbers: %s/metrics.json)\n", out, out, out);
    eval_result_free(&res);
    if (train) memo_index_free(&m);
    graphset_free(&r);
    graphset_free(&s);
    return 0;
}
