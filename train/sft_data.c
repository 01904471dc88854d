// `tracellm sft data`: instruction samples as text, one per layer, with the paper's templates
// (data/format_instruct.c) and the options that switch on templates beyond the paper (docs/SFT.md).
// The text goes to `tracellm shards --text FILE --format instruction`, which masks each prompt.
// The graph selection is the one `tracellm shards --graphs --format instruction` makes (by content:
// a hash of the graph and the seed against --fraction), so with the new templates off the samples
// are drawn from the same graphs.
#include "data/format.h"
#include "data/layers.h"
#include "data/stats.h"
#include "util/args.h"
#include "util/rng.h"
#include "util/util.h"
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int sft_data_main(int argc, char **argv) {
    const char *graphs = NULL, *stats_path = NULL, *out = NULL;
    double fraction = 0.05, distinct_prob = 0;
    int split_threshold = 15;
    int64_t seed = 1;
    bool no_scratchpad = false, canonical = false;
    Opt opts[] = {
        {"--graphs", OPT_STR, &graphs, "FILE", "training graphs JSONL", true},
        {"--out", OPT_STR, &out, "FILE", "instruction text (### Question: ... ### Answer: ... ### Finish per layer)", true},
        {"--stats", OPT_STR, &stats_path, "FILE", "stats.json: the special instructions (high latency, uncommon edge)", false},
        {"--fraction", OPT_DOUBLE, &fraction, "F", "share of graphs made into samples (paper: 0.05)", false},
        {"--distinct-prob", OPT_DOUBLE, &distinct_prob, "P", "new template (docs/SFT.md): share of layers whose prompt says "
                                                             "'Call at most K distinct microservices in this layer'", false},
        {"--split-threshold", OPT_INT, &split_threshold, "N", "layers with more edges become <split> layers (0 = never)", false},
        {"--no-scratchpad", OPT_FLAG, &no_scratchpad, NULL, "answers without the intermediate instructions (ablation)", false},
        {"--canonical-order", OPT_FLAG, &canonical, NULL, "conditions, edges, sentences and scratchpad lines in one fixed order, "
                                                          "the order of inference prompts (beyond the paper; docs/SFT.md)", false},
        {"--seed", OPT_I64, &seed, "S", "graph selection and rendering (field order, dropped sentences)", false},
    };
    args_parse(argc, argv, "tracellm sft data --graphs train.jsonl --out sft.txt [--stats stats.json] [--distinct-prob P]",
               "Writes instruction-tuning samples (one per layer of the selected graphs) as text for\n"
               "`tracellm shards --text FILE --format instruction`.",
               opts, sizeof opts / sizeof opts[0], NULL);
    if (!(fraction > 0 && fraction <= 1)) fatal("--fraction %g: must lie in (0, 1]", fraction);
    if (!(distinct_prob >= 0 && distinct_prob <= 1)) fatal("--distinct-prob %g: must lie in [0, 1]", distinct_prob);
    if (split_threshold < 0) fatal("--split-threshold must be >= 0");
    Stats stats = {0};
    char err[400];
    if (stats_path && !stats_load(stats_path, &stats, err, sizeof err)) fatal("%s: %s", stats_path, err);
    InstructOpts o;
    instruct_opts_default(&o);
    o.split_threshold = split_threshold;
    o.distinct_prob = distinct_prob;
    o.scratchpad = !no_scratchpad;
    o.canonical_order = canonical;

    GraphReader r;
    graph_reader_open(&r, graphs);
    graph_reader_progress(&r, "sft data");
    OutFile *of = out_open(out);
    CallGraph g;
    graph_init(&g);
    Layers L;
    layers_init(&L);
    LayerAnswer scratch;
    answer_init(&scratch);
    TextBuf prompt = {0}, answer = {0};
    int64_t n_graphs = 0, n_used = 0, n_samples = 0, n_distinct = 0;
    while (graph_reader_next_valid(&r, &g)) {
        int64_t index = n_graphs++;
        uint64_t h = graph_hash(&g);
        h = hash_bytes(&h, sizeof h, (uint64_t)seed);
        if ((double)(h >> 11) * 0x1.0p-53 >= fraction) continue;
        n_used++;
        Rng rng;
        uint64_t k = (uint64_t)index;
        rng_seed(&rng, hash_bytes(&k, sizeof k, (uint64_t)seed));
        LayerOpts lo = {.split_threshold = split_threshold, .group_max = 5, .rng = &rng};
        if (!layers_build(&L, &g, &lo, err, sizeof err)) fatal("%s:%" PRId64 ": cannot build layers: %s", graphs, r.lineno, err);
        const ServiceStats *st = stats_path ? stats_find(&stats, g.service) : NULL;
        for (int li = 0; li < L.n; li++) {
            tb_clear(&prompt); tb_clear(&answer);
            instruct_render_layer(&prompt, &answer, &L, li, st, &o, &rng, &scratch);
            n_distinct += memmem(prompt.p, prompt.n, "\nCall at most ", 14) != NULL;
            xfwrite(prompt.p, 1, prompt.n, of->f, out);
            xfwrite(answer.p, 1, answer.n, of->f, out);
            n_samples++;
        }
    }
    graph_reader_close(&r);
    if (n_samples == 0) fatal("%s: no samples (--fraction %g selected none of its %" PRId64 " graphs)", graphs, fraction, n_graphs);
    out_close(of);
    fprintf(stderr, "sft data: %" PRId64 " of %" PRId64 " graphs -> %" PRId64 " samples (%" PRId64 " with the distinct-microservices "
                    "template) in %s\n", n_used, n_graphs, n_samples, n_distinct, out);
    tb_free(&prompt); tb_free(&answer);
    answer_free(&scratch);
    layers_free(&L);
    graph_free(&g);
    if (stats_path) stats_free(&stats);
    return 0;
}
