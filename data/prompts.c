// `tracellm prompts`: root conditions taken from real graphs, one JSON object a line
//   {"service":"S_000000001","num_edges":7,"depth":3,"latency":8}
// the file that `tracellm generate --prompts` and `tracellm baseline sample --prompts` both read,
// so the model and the baselines answer exactly the same requests (PAPER.md §6 uses prompts from
// the validation set).
#include "data/prompts.h"
#include "data/graph.h"
#include "util/args.h"
#include "util/json.h"
#include "util/rng.h"
#include "util/util.h"
#include <stdlib.h>

int64_t prompts_write(const char *in, const char *out, int64_t n, uint64_t seed, bool verbose) {
    // one pass to count (a draw with replacement needs the population size), one to write
    CallGraph g;
    graph_init(&g);
    GraphReader r;
    int64_t ng = 0;
    graph_reader_open(&r, in);
    while (graph_reader_next_valid(&r, &g)) ng++;
    graph_reader_close(&r);
    if (ng == 0) fatal("%s: no graphs", in);
    int64_t total = n ? n : ng;
    int64_t *want = xcalloc((size_t)ng, sizeof *want);  // how many prompts each graph gives
    Rng rng;
    rng_seed(&rng, seed);
    for (int64_t i = 0; i < total; i++) want[n ? (int64_t)rng_below(&rng, (uint64_t)ng) : i]++;
    OutFile *o = out_open(out);
    graph_reader_open(&r, in);
    for (int64_t k = 0; graph_reader_next_valid(&r, &g); k++)
        for (int64_t c = 0; c < want[k]; c++) {
            fputs("{\"service\":", o->f);
            json_write_string(o->f, g.service);
            // the root edge "0" sorts first in a valid graph; its response time bounds every finish
            fprintf(o->f, ",\"num_edges\":%d,\"depth\":%d,\"latency\":%lld}\n", g.n, graph_depth(&g), (long long)g.edges[0].rt_ms);
        }
    graph_reader_close(&r);
    out_close(o);
    if (verbose) printf("prompts: %lld root conditions from %s -> %s\n", (long long)total, in, out);
    free(want);
    graph_free(&g);
    return total;
}

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
    prompts_write(in, out, n, (uint64_t)seed, true);
    return 0;
}
