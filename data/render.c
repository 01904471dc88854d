// `tracellm render`: graphs JSONL -> training text in one of the paper's formats, or (--parse)
// any such text -> graphs JSONL. `tracellm stats`: graphs JSONL -> stats.json.
#include "data/format.h"
#include "data/layers.h"
#include "data/stats.h"
#include "util/args.h"
#include "util/json.h"
#include "util/progress.h"
#include "util/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void write_json_pair(FILE *f, const char *name, const TextBuf *p, const TextBuf *a) {
    fputs("{\"prompt\":", f);
    json_write_string(f, p->p ? p->p : "");
    fputs(",\"answer\":", f);
    json_write_string(f, a->p ? a->p : "");
    fputs("}\n", f);
    if (ferror(f)) fatal("write failed on %s", name);
}

// Text -> graphs. Every graph is checked against the validity rules unless no_check.
static int parse_text(const char *in, const char *out_path, bool check) {
    size_t len;
    char *text = read_file(in, &len);
    TextFormat fmt = text_detect(text, len);
    if (fmt == TEXT_UNKNOWN)
        fatal("%s: not a tabular, recursive or instruction text (it should start with '[GENERATE GRAPH]' or '### Question:')", in);
    OutFile *out = out_open(out_path);
    TextCursor c;
    cursor_init(&c, text, len, in);
    CallGraph g;
    graph_init(&g);
    char err[600];
    int64_t graphs = 0, layers = 0;
    Progress p;
    progress_start(&p, "parse", "graphs", 0);
    InstructSample s;
    instruct_sample_init(&s);
    GraphAssembler as;
    assembler_init(&as, &g);
    for (;;) {
        int line0 = c.line + 1, r;
        if (fmt == TEXT_TABULAR) {
            Condition hdr;
            r = tabular_next(&c, &g, &hdr, err, sizeof err);
            if (r > 0 && check) {
                int root = graph_find(&g, "0");
                if (cond_has(&hdr, CF_NUM_EDGES) && hdr.v[CF_NUM_EDGES] != g.n)
                    fatal("%s:%d: header num_edges:%lld but the record has %d edges", in, line0, (long long)hdr.v[CF_NUM_EDGES], g.n);
                if (cond_has(&hdr, CF_DEPTH) && hdr.v[CF_DEPTH] != graph_depth(&g))
                    fatal("%s:%d: header depth:%lld but the record is %d deep", in, line0, (long long)hdr.v[CF_DEPTH], graph_depth(&g));
                if (cond_has(&hdr, CF_LATENCY) && root >= 0 && hdr.v[CF_LATENCY] != g.edges[root].rt_ms)
                    fatal("%s:%d: header latency:%lld but the root edge takes %lld ms", in, line0, (long long)hdr.v[CF_LATENCY],
                          (long long)g.edges[root].rt_ms);
            }
        } else if (fmt == TEXT_RECURSIVE) {
            r = recursive_next(&c, &g, NULL, NULL, err, sizeof err);
        } else {
            // instruction samples: one per layer, a graph's layers in DFS pre-order
            as.started = false;
            as.n_stack = 0;
            r = 0;
            for (;;) {
                int k = instruct_next(&c, &s, err, sizeof err);
                if (k < 0) { r = -1; break; }
                if (k == 0) {
                    if (as.started) { snprintf(err, sizeof err, "%s:%d: the text ends inside the graph of line %d", in, c.line, line0); r = -1; }
                    break;
                }
                if (!as.started && cond_has(&s.req, CF_CALLER)) {
                    snprintf(err, sizeof err, "%s:%d: a graph must start with its root layer (this sample has a caller)", in, s.line);
                    r = -1;
                    break;
                }
                char e2[400];
                if (!assembler_add(&as, &s.req, &s.ans, s.line, NULL, e2, sizeof e2)) { snprintf(err, sizeof err, "%s: %s", in, e2); r = -1; break; }
                layers++;
                if (assembler_done(&as)) { graph_sort(&g); r = 1; break; }
            }
        }
        if (r < 0) { out_abort(out); fatal("%s", err); }
        if (r == 0) break;
        if (check) {
            int bad;
            GraphCheck gc = graph_validate(&g, 0, &bad);
            char why[300];
            if (gc != GRAPH_OK)
                fatal("%s: graph starting at line %d is invalid: %s (use --no-check to keep it)", in, line0,
                      graph_check_describe(&g, gc, bad, why, sizeof why));
        }
        graph_write_json(out->f, &g);
        graphs++;
        if ((graphs & 1023) == 0) progress_update(&p, (double)graphs, (double)c.pos, len ? (double)c.pos / (double)len : -1);
    }
    progress_end(&p, (double)graphs, (double)len);
    out_close(out);
    fprintf(stderr, "render: %lld graphs (%s format%s) from %s -> %s\n", (long long)graphs, text_format_name(fmt),
            fmt == TEXT_INSTRUCT ? ", assembled from layer samples" : "", in, out_path);
    (void)layers;
    assembler_free(&as);
    instruct_sample_free(&s);
    graph_free(&g);
    free(text);
    return 0;
}

// --bench: every format rendered into memory and parsed back, single-threaded, so the numbers
// are per core and exclude JSON and disk. The answer parser (generation's hot path) is timed on
// the instruction answers alone.
static int bench(const char *in, int repeat, int split) {
    CallGraph *gs;
    int n = graphs_load(in, &gs);
    if (n == 0) fatal("%s: no graphs", in);
    for (int i = 0; i < n; i++) graph_sort(&gs[i]);
    Rng rng;
    rng_seed(&rng, 1);
    TextBuf t = {0}, p = {0};
    CallGraph g;
    graph_init(&g);
    char err[400];
    printf("%d graphs from %s, best of %d runs, one thread\n", n, in, repeat);
    printf("%-12s %10s %12s %12s\n", "format", "text MB", "render MB/s", "parse MB/s");
    static const char *names[] = {"tabular", "recursive", "instruction"};
    for (int f = 0; f < 3; f++) {
        double best_r = 1e30, best_p = 1e30;
        Layers L;
        layers_init(&L);
        LayerAnswer scratch;
        answer_init(&scratch);
        InstructOpts io;
        instruct_opts_default(&io);
        io.split_threshold = split;
        RecursiveOpts ro = {0.9, 0.5, split, false};
        TabularOpts to = {0.9};
        for (int rep = 0; rep < repeat; rep++) {
            tb_clear(&t);
            double t0 = now_seconds();
            for (int i = 0; i < n; i++) {
                if (f == 0) tabular_render(&t, &gs[i], &to, &rng);
                else if (f == 1) { if (!recursive_render(&t, &gs[i], &ro, &rng, err, sizeof err)) fatal("%s: graph %d: %s", in, i, err); }
                else {
                    LayerOpts lo = {.split_threshold = split, .group_max = 5, .rng = &rng};
                    if (!layers_build(&L, &gs[i], &lo, err, sizeof err)) fatal("%s: graph %d: %s", in, i, err);
                    for (int li = 0; li < L.n; li++) {
                        tb_clear(&p);
                        instruct_render_layer(&p, &t, &L, li, NULL, &io, &rng, &scratch);
                        tb_put(&t, p.p, p.n);   // order does not matter for speed
                    }
                }
            }
            double t1 = now_seconds();
            if (t1 - t0 < best_r) best_r = t1 - t0;
        }
        // parse the text back (instruction text must be prompt-first: re-render it that way)
        int64_t want = n;  // records the parse must read back: a graph each, or a layer each
        if (f == 2) {
            tb_clear(&t);
            want = 0;
            for (int i = 0; i < n; i++) {
                LayerOpts lo = {.split_threshold = split, .group_max = 5, .rng = &rng};
                layers_build(&L, &gs[i], &lo, err, sizeof err);
                want += L.n;
                for (int li = 0; li < L.n; li++) {
                    TextBuf a = {0};
                    tb_clear(&p);
                    instruct_render_layer(&p, &a, &L, li, NULL, &io, &rng, &scratch);
                    tb_put(&t, p.p, p.n);
                    tb_put(&t, a.p, a.n);
                    tb_free(&a);
                }
            }
        }
        InstructSample s;
        instruct_sample_init(&s);
        int64_t count = 0;
        for (int rep = 0; rep < repeat; rep++) {
            TextCursor c;
            cursor_init(&c, t.p, t.n, "bench");
            Condition h;
            int rc;
            count = 0;
            double t0 = now_seconds();
            if (f == 0) while ((rc = tabular_next(&c, &g, &h, err, sizeof err)) == 1) count++;
            else if (f == 1) while ((rc = recursive_next(&c, &g, NULL, NULL, err, sizeof err)) == 1) count++;
            else while ((rc = instruct_next(&c, &s, err, sizeof err)) == 1) count++;
            double t1 = now_seconds();
            if (rc < 0) fatal("bench: %s", err);
            if (count != want)  // the parse stopped early: its speed would be of less work
                fatal("bench: %s: %lld records parsed back, %lld rendered", names[f], (long long)count, (long long)want);
            if (t1 - t0 < best_p) best_p = t1 - t0;
        }
        printf("%-12s %10.2f %12.1f %12.1f\n", names[f], (double)t.n / 1e6, (double)t.n / 1e6 / best_r, (double)t.n / 1e6 / best_p);
        if (f == 2) {
            // the hot path: answer_parse + layer_check over every layer answer, as generation runs
            // them; the answers and their requirements are collected first so only they are timed
            TextCursor c;
            cursor_init(&c, t.p, t.n, "bench");
            size_t cap = 0, na = 0;
            struct Ans { const char *p; size_t n; Condition req; } *as = NULL;
            while (instruct_next(&c, &s, err, sizeof err) == 1) {
                grow((void **)&as, &cap, na + 1, sizeof *as);
                as[na++] = (struct Ans){s.answer, s.answer_len, s.req};
            }
            double ta = 1e30;
            int64_t bytes = 0, layers = (int64_t)na, bad = 0;
            for (size_t i = 0; i < na; i++) bytes += (int64_t)as[i].n;
            for (int rep = 0; rep < repeat; rep++) {
                bad = 0;
                double t0 = now_seconds();
                for (size_t i = 0; i < na; i++) {
                    answer_parse(as[i].p, as[i].n, &scratch, 1);
                    bad += layer_check(&as[i].req, &scratch, NULL, NULL, 0) != LC_OK;
                }
                double t1 = now_seconds();
                if (t1 - t0 < ta) ta = t1 - t0;
            }
            free(as);
            printf("%-12s %10.2f %12s %12.1f   (answer_parse + layer_check alone: %.0f layers/s, %lld invalid)\n", "answers",
                   (double)bytes / 1e6, "-", (double)bytes / 1e6 / ta, (double)layers / ta, (long long)bad);
        }
        instruct_sample_free(&s);
        layers_free(&L);
        answer_free(&scratch);
    }
    tb_free(&t); tb_free(&p);
    graph_free(&g);
    graphs_free(gs, n);
    return 0;
}

int cmd_render(int argc, char **argv) {
    const char *in = NULL, *format = NULL, *out_path = NULL, *parse = NULL, *stats_path = NULL;
    int64_t seed = 1;
    int split = 15;
    double keep = 0.9, lkeep = 0.5, desc = 0.9, fraction = 0.05, margin = -1;
    bool combine = false, no_pad = false, jsonl = false, no_check = false, no_finish = false, rare_subtree = false, canonical = false;
    int bench_repeat = 0;
    Opt opts[] = {
        {"--in", OPT_STR, &in, "FILE", "graphs JSONL to render ('-' for stdin)", false},
        {"--format", OPT_STR, &format, "F", "tabular | recursive | instruction", false},
        {"--out", OPT_STR, &out_path, "FILE", "output text (or graphs JSONL with --parse); required", false},
        {"--parse", OPT_STR, &parse, "FILE", "read a text in any of the three formats back into graphs JSONL", false},
        {"--seed", OPT_I64, &seed, "N", "seed for attribute orders, dropped fields, chunk sizes, selection", false},
        {"--split-threshold", OPT_INT, &split, "N", "layers with more edges become <split> pseudo-layers (release: 15; 0 = never)", false},
        {"--keep-prob", OPT_DOUBLE, &keep, "P", "keep each optional root/header field with this probability (release: 0.9)", false},
        {"--latency-keep-prob", OPT_DOUBLE, &lkeep, "P", "keep the root latency (recursive, instruction) with this probability", false},
        {"--desc-prob", OPT_DOUBLE, &desc, "P", "instruction: keep each condition sentence with this probability", false},
        {"--instruction-fraction", OPT_DOUBLE, &fraction, "F", "instruction: share of graphs made into samples (paper: 5%)", false},
        {"--stats", OPT_STR, &stats_path, "FILE", "instruction: stats.json for the high-latency and uncommon-edge instructions", false},
        {"--combine-special", OPT_FLAG, &combine, NULL, "instruction: allow both special instructions in one sample (paper: never)", false},
        {"--high-latency-margin", OPT_DOUBLE, &margin, "MS", "instruction: also require p90 - mean > MS (release: 5; < 0 = paper)", false},
        {"--no-scratchpad", OPT_FLAG, &no_pad, NULL, "instruction: answers without the intermediate instructions", false},
        {"--no-finish-marker", OPT_FLAG, &no_finish, NULL, "instruction: no \"\\n ### Finish\" after each answer (as the released example file)", false},
        {"--rare-subtree", OPT_FLAG, &rare_subtree, NULL, "instruction: an uncommon call anywhere below a layer may be named in its prompt", false},
        {"--canonical-order", OPT_FLAG, &canonical, NULL, "recursive, instruction: attributes, sentences and scratchpad lines in one fixed "
                                                          "order instead of shuffled (beyond the paper; docs/SFT.md)", false},
        {"--jsonl", OPT_FLAG, &jsonl, NULL, "instruction: write {\"prompt\",\"answer\"} JSON lines instead of text", false},
        {"--no-check", OPT_FLAG, &no_check, NULL, "--parse: keep graphs that break the validity rules", false},
        {"--bench", OPT_INT, &bench_repeat, "N", "benchmark: render and parse --in in memory, best of N runs, print MB/s", false},
    };
    args_parse(argc, argv,
               "tracellm render --in train.jsonl --format tabular|recursive|instruction --out FILE [options]\n"
               "       tracellm render --parse FILE --out graphs.jsonl",
               "Renders call graphs as the paper's training text, or parses such text back into graphs.", opts,
               (int)(sizeof opts / sizeof opts[0]), NULL);
    if (bench_repeat > 0) {
        if (!in) fatal("render --bench needs --in graphs.jsonl");
        return bench(in, bench_repeat, split);
    }
    if (!out_path) fatal("render: --out is required");
    if (parse) return parse_text(parse, out_path, !no_check);
    if (!in || !format) fatal("render: --in and --format are required (or --parse FILE)");
    enum { TAB, REC, INS } kind;
    if (!strcmp(format, "tabular")) kind = TAB;
    else if (!strcmp(format, "recursive")) kind = REC;
    else if (!strcmp(format, "instruction")) kind = INS;
    else fatal("render: --format must be tabular, recursive or instruction, not '%s'", format);
    if (keep < 0 || keep > 1 || lkeep < 0 || lkeep > 1 || desc < 0 || desc > 1 || fraction < 0 || fraction > 1)
        fatal("render: probabilities and --instruction-fraction must lie in [0, 1]");
    if (split < 0) fatal("render: --split-threshold must be >= 0");
    if (jsonl && kind != INS) fatal("render: --jsonl applies to --format instruction");
    if (canonical && kind == TAB) fatal("render: --canonical-order applies to --format recursive or instruction");
    Stats stats = {0};
    bool have_stats = false;
    if (stats_path) {
        char err[400];
        if (!stats_load(stats_path, &stats, err, sizeof err)) fatal("%s", err);
        have_stats = true;
    } else if (kind == INS) {
        warnf("render: no --stats given: samples get no high-latency or uncommon-edge instructions");
    }
    TabularOpts to = {keep};
    RecursiveOpts ro = {keep, lkeep, split, canonical};
    InstructOpts io;
    instruct_opts_default(&io);
    io.canonical_order = canonical;
    io.keep_prob = keep; io.latency_keep_prob = lkeep; io.desc_prob = desc; io.combine_special = combine;
    io.scratchpad = !no_pad; io.high_latency_margin = margin; io.split_threshold = split;
    io.finish_marker = !no_finish; io.rare_subtree = rare_subtree;

    GraphReader r;
    graph_reader_open(&r, in);
    OutFile *out = out_open(out_path);
    Rng rng;
    rng_seed(&rng, (uint64_t)seed);
    CallGraph g;
    graph_init(&g);
    TextBuf text = {0}, prompt = {0};
    Layers L;
    layers_init(&L);
    LayerAnswer scratch;
    answer_init(&scratch);
    int64_t graphs = 0, samples = 0, bytes = 0;
    char err[400];
    Progress p;
    int64_t total = file_size(in);
    progress_start(&p, "render", "graphs", 0);
    while (graph_reader_next(&r, &g)) {
        graph_sort(&g);
        tb_clear(&text);
        graphs++;
        if (kind == TAB) {
            if (graph_find(&g, "0") < 0) fatal("%s:%lld: graph without a root edge \"0\"", in, (long long)r.lineno);
            bool safe = text_safe_name(g.service);
            for (int i = 0; i < g.n && safe; i++) safe = text_safe_name(g.edges[i].src) && text_safe_name(g.edges[i].dst) && text_safe_name(g.edges[i].rpc_id);
            if (!safe) fatal("%s:%lld: graph %s: a name with a character the text formats cannot carry (empty, control, / : , ) >)", in, (long long)r.lineno, g.trace_id);
            tabular_render(&text, &g, &to, &rng);
            samples++;
        } else if (kind == REC) {
            if (!recursive_render(&text, &g, &ro, &rng, err, sizeof err))
                fatal("%s:%lld: graph %s: %s", in, (long long)r.lineno, g.trace_id, err);
            samples++;
        } else {
            // a graph's selection depends on its content and the seed only, never on input order
            uint64_t h = graph_hash(&g);
            h = hash_bytes(&h, sizeof h, (uint64_t)seed);
            if ((double)(h >> 11) * 0x1.0p-53 >= fraction) continue;
            LayerOpts lo = {.split_threshold = split, .group_max = 5, .rng = &rng};
            if (!layers_build(&L, &g, &lo, err, sizeof err)) fatal("%s:%lld: graph %s: %s", in, (long long)r.lineno, g.trace_id, err);
            const ServiceStats *st = have_stats ? stats_find(&stats, g.service) : NULL;
            for (int li = 0; li < L.n; li++) {
                tb_clear(&prompt);
                size_t mark = text.n;
                if (jsonl) {
                    TextBuf ans = {0};
                    instruct_render_layer(&prompt, &ans, &L, li, st, &io, &rng, &scratch);
                    write_json_pair(out->f, out_path, &prompt, &ans);
                    bytes += (int64_t)(prompt.n + ans.n);
                    tb_free(&ans);
                } else {
                    instruct_render_layer(&prompt, &text, &L, li, st, &io, &rng, &scratch);
                    // prompt first: move the answer behind it
                    size_t an = text.n - mark;
                    tb_reserve(&text, prompt.n);
                    memmove(text.p + mark + prompt.n, text.p + mark, an);
                    memcpy(text.p + mark, prompt.p, prompt.n);
                    text.n += prompt.n;
                }
                samples++;
            }
        }
        if (text.n) xfwrite(text.p, 1, text.n, out->f, out_path);
        bytes += (int64_t)text.n;
        if ((graphs & 1023) == 0) progress_update(&p, (double)graphs, (double)bytes, total > 0 ? (double)ftell(r.f) / (double)total : -1);
    }
    progress_end(&p, (double)graphs, (double)bytes);
    out_close(out);
    fprintf(stderr, "render: %lld graphs -> %lld %s (%lld bytes) in %s\n", (long long)graphs, (long long)samples,
            kind == INS ? "layer samples" : "graphs", (long long)bytes, out_path);
    graph_reader_close(&r);
    graph_free(&g);
    tb_free(&text); tb_free(&prompt);
    layers_free(&L);
    answer_free(&scratch);
    if (have_stats) stats_free(&stats);
    return 0;
}

int cmd_stats(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    StatsOpts o;
    stats_opts_default(&o);
    Opt opts[] = {
        {"--graphs", OPT_STR, &in, "FILE", "graphs JSONL (the training split)", true},
        {"--out", OPT_STR, &out, "FILE", "stats.json to write", true},
        {"--min-graphs", OPT_INT, &o.min_graphs, "N", "services with fewer graphs get no statistics", false},
        {"--rare-fraction", OPT_DOUBLE, &o.rare_fraction, "F", "a communication in fewer than this share of a service's graphs is rare", false},
        {"--merge-chunk", OPT_I64, &o.merge_chunk, "N", "release behaviour: statistics per N graphs merged by max/min-p90/union (0 = paper)", false},
    };
    args_parse(argc, argv, "tracellm stats --graphs train.jsonl --out stats.json",
               "Per-service latency statistics (max, p90, mean) and rare communications.", opts, (int)(sizeof opts / sizeof opts[0]), NULL);
    if (o.min_graphs < 1) fatal("stats: --min-graphs must be >= 1");
    if (o.rare_fraction <= 0 || o.rare_fraction > 1) fatal("stats: --rare-fraction must lie in (0, 1]");
    if (o.merge_chunk < 0) fatal("stats: --merge-chunk must be >= 0");
    stats_build_file(in, out, &o);
    Stats s;
    char err[400];
    if (!stats_load(out, &s, err, sizeof err)) fatal("%s", err);
    fprintf(stderr, "stats: %lld graphs, %d services with >= %d graphs -> %s\n", (long long)s.graphs, s.n, o.min_graphs, out);
    stats_free(&s);
    return 0;
}
