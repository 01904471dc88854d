// `tracellm prompts`: root conditions taken from real graphs, one JSON object a line
//   {"service":"S_000000001","num_edges":7,"depth":3,"latency":8}
// the file that `tracellm generate --prompts` and `tracellm baseline sample --prompts` both read,
// so the model and the baselines answer exactly the same requests (PAPER.md §6 uses prompts from
// the validation set).
#include "data/graph.h"
#include "util/args.h"
#include "util/json.h"
#include "util/rng.h"
#include "util/util.h"
#include <stdlib.h>

int cmd_prompts(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    int n = 0;
    int64_t seed = 1;
    Opt opts[] = {
        {"--graphs", OPT_STR, &in, "JSONL", "graphs to take root conditions from (e.g. val.jsonl)", true},
        {"--out", OPT_STR, &out, "JSONL", "prompts file to write", true},
        {"-n", OPT_INT, &n, "N", "prompts to write: 0 = one per graph in file order; else N graphs drawn with replacement", false},
        {"--seed", OPT_I64, &seed, "S", "seed of the draw when -n is given", false},
    };
    args_parse(argc, argv, "tracellm prompts --graphs val.jsonl --out prompts.jsonl [-n N --seed S]",
               "Writes the root condition (service, num_edges, depth, latency) of real graphs as a prompts file.", opts,
               (int)(sizeof opts / sizeof opts[0]), NULL);
    if (n < 0) fatal("-n must be >= 0 (got %d)", n);
    CallGraph *gs;
    int ng = graphs_load(in, &gs);
    if (ng == 0) fatal("%s: no graphs", in);
    int *pick = xmalloc(sizeof(int) * (size_t)(n ? n : ng));
    Rng rng;
    rng_seed(&rng, (uint64_t)seed);
    for (int i = 0; i < (n ? n : ng); i++) pick[i] = n ? (int)rng_below(&rng, (uint64_t)ng) : i;
    OutFile *o = out_open(out);
    for (int i = 0; i < (n ? n : ng); i++) {
        CallGraph *g = &gs[pick[i]];
        graph_sort(g);
        int bad;
        GraphCheck c = graph_validate(g, 0, &bad);
        if (c != GRAPH_OK) fatal("%s: graph %d (trace %s) is not a valid call graph: %s", in, pick[i] + 1, g->trace_id, graph_check_name(c));
        fputs("{\"service\":", o->f);
        json_write_string(o->f, g->service);
        // the root edge "0" sorts first in a valid graph; its response time bounds every finish
        fprintf(o->f, ",\"num_edges\":%d,\"depth\":%d,\"latency\":%lld}\n", g->n, graph_depth(g), (long long)g->edges[0].rt_ms);
    }
    out_close(o);
    printf("prompts: %d root conditions from %s -> %s\n", n ? n : ng, in, out);
    free(pick);
    graphs_free(gs, ng);
    return 0;
}
