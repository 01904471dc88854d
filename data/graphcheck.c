// `tracellm graphcheck`: reads graphs JSONL and reports how many pass each structural rule.
// Useful on generated output and on corpora users bring; exits 1 when any graph is invalid.
#include "data/graph.h"
#include "util/args.h"
#include "util/util.h"
#include <stdio.h>

int cmd_graphcheck(int argc, char **argv) {
    const char *in = NULL;
    int max_depth = 15;
    Opt opts[] = {
        {"--in", OPT_STR, &in, "FILE", "graphs JSONL ('-' for stdin)", true},
        {"--max-depth", OPT_INT, &max_depth, "N", "deepest allowed graph (0 = no limit)", false},
    };
    args_parse(argc, argv, "tracellm graphcheck --in graphs.jsonl", "Checks every graph against the validity rules.",
               opts, 2, NULL);
    GraphReader r;
    graph_reader_open(&r, in);
    CallGraph g;
    graph_init(&g);
    int64_t counts[GRAPH_NCHECKS] = {0}, total = 0;
    while (graph_reader_next(&r, &g)) {
        graph_sort(&g);
        GraphCheck c = graph_validate(&g, max_depth, NULL);
        if (c != GRAPH_OK && counts[c] == 0)
            fprintf(stderr, "%s:%lld: first graph failing %s (trace %s)\n", in, (long long)r.lineno, graph_check_name(c), g.trace_id);
        counts[c]++;
        total++;
    }
    graph_free(&g);
    graph_reader_close(&r);
    printf("graphs: %lld\n", (long long)total);
    for (int c = 0; c < GRAPH_NCHECKS; c++)
        if (counts[c] || c == GRAPH_OK) printf("  %-24s %lld\n", c == GRAPH_OK ? "valid" : graph_check_name(c), (long long)counts[c]);
    return counts[GRAPH_OK] == total ? 0 : 1;
}
