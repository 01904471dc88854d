// `tracellm eval grid`: the paper's accuracy grid (PAPER.md §6) run end to end. For every feasible
// (num_edges, depth) cell -- num_edges 1..30, depth 1..6, depth <= num_edges, depth 1 only with one
// edge: 136 cells -- ask the model for N graphs of exactly that size and depth, greedy and at each
// temperature, through the generation harness `tracellm generate` uses (infer/harness.h, loaded
// and written by infer/generate.h), then score every sample with eval's request logic
// (eval_add_request: valid AND exact num_edges AND exact depth). Writes DIR/grid.md, grid.json,
// grid.html (a heatmap per temperature) and DIR/samples_<label>.jsonl (generate's lines, so
// `tracellm eval` can take them up again).
//
// Greedy decoding is a function of the prompt alone: samples of a cell whose prompts are equal
// (same service, same latency) are the same graph. They are generated once and counted with their
// multiplicity, and the report says how many distinct prompts and graphs a cell had.
#include "eval/metrics.h"
#include "eval/report.h"
#include "infer/generate.h"
#include "infer/harness.h"
#include "util/args.h"
#include "util/json.h"
#include "util/progress.h"
#include "util/rng.h"
#include "util/util.h"
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GRID_MAX_TEMPS 16

// The paper's cells: depth d needs d edges (one per level), and depth 1 is the single root edge.
static bool cell_feasible(int e, int d) { return d <= e && (d > 1 || e == 1); }

typedef struct {
    const char *model, *tokenizer, *out, *temps, *format, *names, *callees, *service, *latency, *constrained, *device;
    int samples, max_edges, retries, top_k, batch, max_tokens, threads;
    double top_p;
    int64_t seed;
} GridOpts;

// One decoding setting (greedy or a temperature) and what its samples scored.
typedef struct {
    double temperature;
    char label[32];           // "greedy", "t0.8": the samples file's name
    EvalResult res;           // request counters and the per-cell grid (eval_add_request)
    int64_t generated;        // graphs asked of the model (greedy: distinct prompts only)
    int64_t assembled, valid; // over all samples, valid = graph_validate (as eval counts it)
    double distinct_graphs;   // mean over cells of distinct assembled graphs among its samples
    double seconds;
} GridRun;

// What the sink needs while one setting runs.
typedef struct {
    GridRun *run;
    OutFile *out;
    const GraphSpec *specs;      // every sample, cell-major
    const int *first, *next;     // greedy: the samples sharing a prompt, as linked lists (-1 ends)
    bool shared;                 // results stand for every sample of their list
    uint64_t *hash;              // per sample: graph hash, 0 when not assembled
    Progress *prog;
    int64_t *done;
} GridSink;

static void score_one(GridSink *s, const GraphResult *r, int sample) {
    const GraphSpec *sp = &s->specs[sample];
    GraphResult c = *r;
    c.index = sample;
    c.spec = sp;
    gen_write_result(s->out->f, &c);
    CallGraph empty;
    graph_init(&empty);
    const CallGraph *g = r->assembled ? r->g : &empty;
    GraphRequest q = {.has_edges = true, .has_depth = true, .num_edges = (int)sp->want_edges, .depth = (int)sp->want_depth,
                      .has_latency = sp->want_latency >= 0, .latency = sp->want_latency};
    eval_add_request(&s->run->res, g, &q, NULL);
    s->run->assembled += r->assembled;
    s->run->valid += r->assembled && graph_validate(r->g, 15, NULL) == GRAPH_OK;
    s->hash[sample] = r->assembled ? graph_hash_exact(r->g) | 1 : 0;
}

static void grid_sink(void *ctx, const GraphResult *r) {
    GridSink *s = ctx;
    if (!s->shared) score_one(s, r, (int)r->index);
    else
        for (int i = s->first[r->index]; i >= 0; i = s->next[i]) score_one(s, r, i);
    ++*s->done;
    progress_update(s->prog, (double)*s->done, 0, -1);
}

// "0,0.5,0.8,1" -> temperatures (0 = greedy), each once.
static int parse_temps(const char *s, double *t) {
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno || v < 0 || v > 10 || (*end && *end != ','))
            fatal("--temperatures %s: expected comma-separated numbers in [0, 10] (0 = greedy)", s);
        for (int k = 0; k < n; k++)
            if (t[k] == v) fatal("--temperatures %s: %g is given twice", s, v);
        if (n == GRID_MAX_TEMPS) fatal("--temperatures %s: at most %d values", s, GRID_MAX_TEMPS);
        t[n++] = v;
        p = *end ? end + 1 : end;
        if (*end && !*p) fatal("--temperatures %s: ends with a comma", s);
    }
    if (n == 0) fatal("--temperatures: no value");
    return n;
}

// Greedy: samples with equal prompts (service, num_edges, depth, latency) share one generation.
typedef struct { const GraphSpec *s; int i; } SpecRef;
static int spec_cmp(const void *a, const void *b) {
    const GraphSpec *x = ((const SpecRef *)a)->s, *y = ((const SpecRef *)b)->s;
    if (x->want_edges != y->want_edges) return x->want_edges < y->want_edges ? -1 : 1;
    if (x->want_depth != y->want_depth) return x->want_depth < y->want_depth ? -1 : 1;
    if (x->want_latency != y->want_latency) return x->want_latency < y->want_latency ? -1 : 1;
    int c = strcmp(x->cond.id, y->cond.id);
    if (c) return c;
    return ((const SpecRef *)a)->i - ((const SpecRef *)b)->i;   // keep sample order: the lowest index leads
}

static int u64_cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

// ---- the report ----


// accuracy over the cells with e in [lo, hi] (all depths), or of one depth when d > 0
static void acc_over(const EvalResult *r, int d, int lo, int hi, int64_t *n, int64_t *ok) {
    *n = *ok = 0;
    for (int e = lo; e <= hi && e <= EVAL_GRID_EDGES; e++)
        for (int dd = 1; dd <= EVAL_GRID_DEPTH; dd++)
            if (!d || dd == d) { *n += r->grid_n[e][dd]; *ok += r->grid_ok[e][dd]; }
}
static void fmt_acc(char *buf, size_t len, int64_t n, int64_t ok) {
    if (n) snprintf(buf, len, "%.1f%%", pct(ok, n));
    else snprintf(buf, len, "-");
}
// The three accuracies every summary shows: all cells, num_edges <= 15, num_edges > 15 (the
// paper's split between the sizes LLM baselines manage and those they do not).
typedef struct { int64_t n[3], ok[3]; } Acc3;
static Acc3 acc3(const EvalResult *r) {
    Acc3 a;
    acc_over(r, 0, 1, EVAL_GRID_EDGES, &a.n[0], &a.ok[0]);
    acc_over(r, 0, 1, 15, &a.n[1], &a.ok[1]);
    acc_over(r, 0, 16, EVAL_GRID_EDGES, &a.n[2], &a.ok[2]);
    return a;
}

typedef struct {
    const GridOpts *o;
    int n_cells, n_samples;
    int64_t n_prompts_greedy;    // distinct greedy prompts (0 when greedy was not run)
} GridInfo;

static void report_tables(FILE *f, bool html, const GridInfo *gi, const GridRun *runs, int n_runs) {
    const GridOpts *o = gi->o;
    ReportTable t = {f, html, 0};
    report_para(f, html,
                "Model %s (tokenizer %s), %s format, %s decoding, %d retries, top-k %d, top-p %g, seed %" PRId64
                ". %d cells (num_edges 1..%d x depth 1..%d, depth <= num_edges, depth 1 only with one edge; the paper's grid is "
                "the 136 cells up to 30 edges), %d samples a cell. Root conditions: service %s, latency %s.",
                o->model, o->tokenizer, o->format, strcmp(o->constrained, "on") || !strcmp(o->format, "tabular") ? "unconstrained" : "constrained",
                o->retries, o->top_k, o->top_p, o->seed, gi->n_cells, o->max_edges, EVAL_GRID_DEPTH, gi->n_samples,
                o->service ? o->service : "drawn from the run's training conditions (RUN/conditions.jsonl)",
                !strcmp(o->latency, "drawn") ? "drawn with the service" : "not given");
    report_para(f, html,
                "Accuracy = the graph is valid AND has exactly the requested num_edges AND depth (PAPER.md §6, scored as "
                "`tracellm eval` scores requests). Paper: tabular baseline (GReaT) < 25%% for edges > 15 and ~0 for depth > 4; "
                "recursive +30..35 points; instruction tuning +23..36 more; TraceLLM > 75%% at every depth.");
    if (gi->n_prompts_greedy)
        report_para(f, html,
                    "Greedy decoding depends on the prompt only, so samples of a cell with the same prompt are the same graph: "
                    "the %d greedy samples had %" PRId64 " distinct prompts (%.1f a cell), each generated once and counted with its "
                    "multiplicity. This is the paper's protocol too; the column \"distinct graphs a cell\" shows the diversity.",
                    gi->n_cells * gi->n_samples, gi->n_prompts_greedy, (double)gi->n_prompts_greedy / gi->n_cells);

    report_heading(f, html, 2, "Overall");
    report_row(&t, "decoding\tsamples\tgenerated\tassembled\tvalid\tnum_edges met\tdepth met\taccuracy\tedges <= 15\tedges > 15\tdistinct graphs a cell\tseconds");
    for (int k = 0; k < n_runs; k++) {
        const GridRun *r = &runs[k];
        Acc3 c = acc3(&r->res);
        char a[3][32];
        for (int i = 0; i < 3; i++) fmt_acc(a[i], 32, c.n[i], c.ok[i]);
        report_row(&t, "%s\t%" PRId64 "\t%" PRId64 "\t%.1f%%\t%.1f%%\t%.1f%%\t%.1f%%\t%s\t%s\t%s\t%.1f\t%.1f", r->label, r->res.req_n,
                   r->generated, pct(r->assembled, r->res.req_n), pct(r->valid, r->res.req_n), pct(r->res.req_edges_ok, r->res.req_edges_n),
                   pct(r->res.req_depth_ok, r->res.req_depth_n), a[0], a[1], a[2], r->distinct_graphs, r->seconds);
    }
    report_table_end(&t);

    report_heading(f, html, 2, "Accuracy by depth");
    char hdr[512] = "depth\tcells";
    for (int k = 0; k < n_runs; k++) snprintf(hdr + strlen(hdr), sizeof hdr - strlen(hdr), "\t%s", runs[k].label);
    report_row(&t, "%s", hdr);
    for (int d = 1; d <= EVAL_GRID_DEPTH; d++) {
        int cells = 0;
        for (int e = 1; e <= o->max_edges; e++) cells += cell_feasible(e, d);
        if (!cells) continue;
        char row[512];
        snprintf(row, sizeof row, "%d\t%d", d, cells);
        for (int k = 0; k < n_runs; k++) {
            int64_t n, ok;
            char a[32];
            acc_over(&runs[k].res, d, 1, EVAL_GRID_EDGES, &n, &ok);
            fmt_acc(a, sizeof a, n, ok);
            snprintf(row + strlen(row), sizeof row - strlen(row), "\t%s", a);
        }
        report_row(&t, "%s", row);
    }
    report_table_end(&t);
}

// The cells as a depth x num_edges table of percentages (markdown has no heatmap).
static void cell_matrix(FILE *f, const GridRun *r, int max_edges) {
    ReportTable t = {f, false, 0};
    char row[1024] = "depth \\ num_edges";
    for (int e = 1; e <= max_edges; e++) snprintf(row + strlen(row), sizeof row - strlen(row), "\t%d", e);
    report_row(&t, "%s", row);
    for (int d = EVAL_GRID_DEPTH; d >= 1; d--) {
        snprintf(row, sizeof row, "%d", d);
        for (int e = 1; e <= max_edges; e++) {
            int64_t n = r->res.grid_n[e][d];
            if (n) snprintf(row + strlen(row), sizeof row - strlen(row), "\t%.0f", pct(r->res.grid_ok[e][d], n));
            else snprintf(row + strlen(row), sizeof row - strlen(row), "\t");
        }
        report_row(&t, "%s", row);
    }
    report_table_end(&t);
}

static void write_json(FILE *f, const GridInfo *gi, const GridRun *runs, int n_runs) {
    const GridOpts *o = gi->o;
    fputs("{\n  \"model\": ", f); json_write_string(f, o->model);
    fputs(",\n  \"tokenizer\": ", f); json_write_string(f, o->tokenizer);
    fprintf(f, ",\n  \"format\": \"%s\",\n  \"constrained\": %s,\n  \"retries\": %d,\n  \"top_k\": %d,\n  \"top_p\": %g,\n  \"seed\": %" PRId64
               ",\n  \"cells\": %d,\n  \"max_edges\": %d,\n  \"samples_per_cell\": %d,\n  \"service\": ",
            o->format, !strcmp(o->constrained, "on") && strcmp(o->format, "tabular") ? "true" : "false", o->retries, o->top_k, o->top_p,
            o->seed, gi->n_cells, o->max_edges, gi->n_samples);
    if (o->service) json_write_string(f, o->service);
    else fputs("null", f);
    fprintf(f, ",\n  \"latency\": \"%s\",\n  \"runs\": [", o->latency);
    for (int k = 0; k < n_runs; k++) {
        const GridRun *r = &runs[k];
        Acc3 c = acc3(&r->res);
        int64_t n = c.n[0], ok = c.ok[0];
        // a share over no samples (edges > 15 when --max-edges <= 15) is null, not 0
        char a1[32], a2[32];
        if (c.n[1]) snprintf(a1, sizeof a1, "%.6f", pct(c.ok[1], c.n[1]) / 100); else snprintf(a1, sizeof a1, "null");
        if (c.n[2]) snprintf(a2, sizeof a2, "%.6f", pct(c.ok[2], c.n[2]) / 100); else snprintf(a2, sizeof a2, "null");
        fprintf(f, "%s\n    {\"temperature\": %g, \"label\": \"%s\", \"samples\": %" PRId64 ", \"generated\": %" PRId64
                   ", \"assembled\": %" PRId64 ", \"valid\": %" PRId64 ", \"accurate\": %" PRId64 ", \"accuracy\": %.6f"
                   ", \"accuracy_edges_le15\": %s, \"accuracy_edges_gt15\": %s, \"num_edges_match\": %.6f, \"depth_match\": %.6f"
                   ", \"distinct_graphs_per_cell\": %.4f, \"seconds\": %.3f,\n     \"accuracy_by_depth\": {",
                k ? "," : "", r->temperature, r->label, r->res.req_n, r->generated, r->assembled, r->valid, ok, pct(ok, n) / 100,
                a1, a2, pct(r->res.req_edges_ok, r->res.req_edges_n) / 100,
                pct(r->res.req_depth_ok, r->res.req_depth_n) / 100, r->distinct_graphs, r->seconds);
        const char *sep = "";
        for (int d = 1; d <= EVAL_GRID_DEPTH; d++) {
            int64_t dn, dok;
            acc_over(&r->res, d, 1, EVAL_GRID_EDGES, &dn, &dok);
            if (dn) { fprintf(f, "%s\"%d\": %.6f", sep, d, pct(dok, dn) / 100); sep = ", "; }
        }
        fputs("},\n     \"grid\": [", f);
        sep = "";
        for (int e = 1; e <= EVAL_GRID_EDGES; e++)
            for (int d = 1; d <= EVAL_GRID_DEPTH; d++)
                if (r->res.grid_n[e][d]) {
                    fprintf(f, "%s[%d, %d, %" PRId64 ", %" PRId64 "]", sep, e, d, r->res.grid_n[e][d], r->res.grid_ok[e][d]);
                    sep = ", ";
                }
        fputs("]}", f);
    }
    fputs("\n  ]\n}\n", f);
}

static void write_reports(const char *dir, const GridInfo *gi, const GridRun *runs, int n_runs) {
    char *p = path_join(dir, "grid.md");
    OutFile *o = out_open(p);
    fputs("# tracellm accuracy grid\n\n", o->f);
    report_tables(o->f, false, gi, runs, n_runs);
    for (int k = 0; k < n_runs; k++) {
        char h[96];
        snprintf(h, sizeof h, "Cells, %s (%% accurate)", runs[k].label);
        report_heading(o->f, false, 2, h);
        cell_matrix(o->f, &runs[k], gi->o->max_edges);
        report_grid_table(o->f, false, &runs[k].res);
    }
    fputs("Heatmaps: grid.html. Numbers: grid.json. Samples: samples_<decoding>.jsonl (`tracellm eval` reads them).\n", o->f);
    out_close(o);
    free(p);

    p = path_join(dir, "grid.html");
    o = out_open(p);
    FILE *f = o->f;
    report_html_begin(f, "tracellm accuracy grid", false);
    report_tables(f, true, gi, runs, n_runs);
    for (int k = 0; k < n_runs; k++) {
        char h[128];
        int64_t n, ok;
        acc_over(&runs[k].res, 0, 1, EVAL_GRID_EDGES, &n, &ok);
        snprintf(h, sizeof h, "%s: accuracy %.1f%% over %" PRId64 " samples", runs[k].label, pct(ok, n), n);
        report_heading(f, true, 2, h);
        snprintf(h, sizeof h, "Accuracy by requested num_edges and depth, %s", runs[k].label);
        report_grid_svg(f, &runs[k].res, h);
        report_grid_table(f, true, &runs[k].res);
    }
    fputs("<p>Definitions: docs/EVAL.md (accuracy grid) in the tracellm repository.</p>\n</body></html>\n", f);
    out_close(o);
    free(p);

    p = path_join(dir, "grid.json");
    o = out_open(p);
    write_json(o->f, gi, runs, n_runs);
    out_close(o);
    free(p);
}

// ---- the command ----

int cmd_eval_grid(int argc, char **argv) {
    GridOpts o = {.temps = "0,0.5,0.8,1.0", .format = "instruct", .latency = "none", .constrained = "off", .device = "cpu",
                  .samples = 50, .max_edges = EVAL_GRID_EDGES, .retries = 0, .top_k = 50, .top_p = 1.0, .batch = 64,
                  .max_tokens = 2048, .seed = 1};
    Opt opts[] = {
        {"--model", OPT_STR, &o.model, "RUN", "run directory of tracellm train (RUN/model.bin) or a model.bin file", true},
        {"--tokenizer", OPT_STR, &o.tokenizer, "PATH", "the tokenizer the model was trained with (checked by fingerprint)", true},
        {"--out", OPT_STR, &o.out, "DIR", "folder for grid.md, grid.json, grid.html and samples_<decoding>.jsonl", true},
        {"--samples", OPT_INT, &o.samples, "N", "samples per cell (the paper: 50)", false},
        {"--temperatures", OPT_STR, &o.temps, "LIST", "decodings, comma-separated; 0 = greedy", false},
        {"--format", OPT_STR, &o.format, "NAME", "instruct (SFT run) | recursive (pretrained run) | tabular (the GReaT baseline run)", false},
        {"--names", OPT_STR, &o.names, "FILE", "with --constrained on: destinations only among the microservices of this graphs JSONL (train.jsonl)", false},
        {"--callees", OPT_STR, &o.callees, "FILE", "with --constrained on: each layer's destinations only among the callees this graphs JSONL shows "
                                                   "for it, as `generate --callees` (beyond the paper)", false},
        {"--service", OPT_STR, &o.service, "S", "service id of every root condition (default: each sample draws one from RUN/conditions.jsonl)", false},
        {"--latency", OPT_STR, &o.latency, "none|drawn", "root latency: not given (the grid asks size and depth only), or that of the training graph the service was drawn from", false},
        {"--max-edges", OPT_INT, &o.max_edges, "E", "only cells with num_edges <= E (a quick grid; the paper: 30, 136 cells)", false},
        {"--constrained", OPT_STR, &o.constrained, "on|off", "constrained decoding (docs/GENERATE.md); off = the paper's protocol", false},
        {"--retries", OPT_INT, &o.retries, "N", "extra tries of a failing layer (0 = the paper)", false},
        {"--top-k", OPT_INT, &o.top_k, "K", "sample among the K most likely tokens (0 = all; the paper: 50)", false},
        {"--top-p", OPT_DOUBLE, &o.top_p, "P", "nucleus sampling mass (1 = off)", false},
        {"--seed", OPT_I64, &o.seed, "S", "seed of the drawn conditions and of sampling", false},
        {"--batch", OPT_INT, &o.batch, "B", "sequences decoded together (KV-cache slots)", false},
        {"--max-tokens", OPT_INT, &o.max_tokens, "N", "tokens per request at most (a layer; tabular: a whole graph)", false},
        {"--device", OPT_STR, &o.device, "NAME", "backend: cpu; with nvcc also cuda (bf16 mixed precision) and cuda-fp32", false},
        {"--threads", OPT_INT, &o.threads, "N", "CPU threads (0 = all)", false},
    };
    args_parse(argc, argv,
               "tracellm eval grid --model RUN --tokenizer TOK --out DIR [--samples 50] [--temperatures 0,0.5,0.8,1.0] [--format instruct|recursive|tabular]",
               "The paper's accuracy grid (PAPER.md §6): for each of the 136 feasible (num_edges 1..30, depth 1..6) cells,\n"
               "N graphs are generated through `tracellm generate`'s harness, greedy and at each temperature, and scored as\n"
               "`tracellm eval` scores requests: valid AND exact num_edges AND exact depth. Writes grid.md, grid.json,\n"
               "grid.html (a heatmap per temperature) and the samples. See docs/EVAL.md.",
               opts, sizeof opts / sizeof opts[0], NULL);
    int fmt = gen_format_parse(o.format);
    if (fmt < 0) fatal("--format %s: expected instruct, recursive or tabular", o.format);
    if (strcmp(o.constrained, "on") && strcmp(o.constrained, "off")) fatal("--constrained %s: expected on or off", o.constrained);
    if (strcmp(o.latency, "none") && strcmp(o.latency, "drawn")) fatal("--latency %s: expected none or drawn", o.latency);
    if (o.samples < 1 || o.samples > 100000) fatal("--samples %d: expected 1..100000", o.samples);
    if (o.max_edges < 1 || o.max_edges > EVAL_GRID_EDGES) fatal("--max-edges %d: expected 1..%d", o.max_edges, EVAL_GRID_EDGES);
    if (o.batch < 1 || o.batch > 4096) fatal("--batch %d: expected 1..4096", o.batch);
    if (o.retries < 0 || o.max_tokens < 1 || o.top_k < 0 || o.top_p <= 0 || o.top_p > 1)
        fatal("--retries, --top-k must be >= 0, --max-tokens >= 1 and --top-p in (0, 1]");
    if (o.service && (!o.service[0] || strlen(o.service) >= FMT_NAME_MAX)) fatal("--service '%s': expected a service id", o.service);
    double temps[GRID_MAX_TEMPS];
    int n_runs = parse_temps(o.temps, temps);
    const Backend *be = backend_get(o.device);
    if (!be) fatal("--device %s: not built into this binary", o.device);
    if (o.threads > 0) be->set_threads(o.threads);
    if (mkdir_p(o.out, 0777)) fatal("cannot create %s: %s", o.out, strerror(errno));

    // ---- root conditions: the services (and latencies) the run was trained on, as generate draws them ----
    char cpath[4200];
    gen_conditions_path(o.model, cpath, sizeof cpath);
    CondRecord *rec = NULL;
    int n_rec = gen_load_conditions(cpath, o.service, &rec);
    if (n_rec < 0 && !o.service)
        fatal("give --service S, or train with --corpus train.jsonl so that the run records its training conditions (%s is missing)", cpath);
    if (n_rec == 0 && !o.service) fatal("%s: no training conditions", cpath);
    if (n_rec <= 0 && !strcmp(o.latency, "drawn"))
        fatal("--latency drawn: %s has no training graph%s%s to draw a latency from", cpath, o.service ? " of service " : "",
              o.service ? o.service : "");

    int n_cells = 0;
    for (int e = 1; e <= o.max_edges; e++)
        for (int d = 1; d <= EVAL_GRID_DEPTH; d++) n_cells += cell_feasible(e, d);
    int n = n_cells * o.samples;
    GraphSpec *specs = xcalloc(n, sizeof *specs);
    Rng rng;
    rng_seed(&rng, (uint64_t)o.seed ^ 0x6772696467726964ULL);
    int k = 0;
    for (int e = 1; e <= o.max_edges; e++)
        for (int d = 1; d <= EVAL_GRID_DEPTH; d++) {
            if (!cell_feasible(e, d)) continue;
            for (int s = 0; s < o.samples; s++, k++) {
                const CondRecord *c = n_rec > 0 ? &rec[rng_below(&rng, (uint64_t)n_rec)] : NULL;
                const char *svc = o.service ? o.service : c->service;
                int64_t lat = !strcmp(o.latency, "drawn") ? c->v[2] : -1;
                graph_spec_make(&specs[k], svc, e, d, lat);
            }
        }
    free(rec);

    // greedy: which samples share a prompt. The first sample of each prompt leads: first[lead] = lead
    // and next[] links the others, so one generation stands for all of them.
    int *first = xmalloc(n * sizeof *first), *next = xmalloc(n * sizeof *next);
    int n_leaders = 0;
    {
        SpecRef *refs = xmalloc(n * sizeof *refs);
        for (int i = 0; i < n; i++) { refs[i] = (SpecRef){&specs[i], i}; first[i] = next[i] = -1; }
        qsort(refs, n, sizeof *refs, spec_cmp);   // equal prompts together, in sample order
        for (int i = 0, last = -1; i < n; i++) {
            int s = refs[i].i;
            if (i == 0 || spec_cmp(&(SpecRef){refs[i - 1].s, 0}, &(SpecRef){refs[i].s, 0})) { first[s] = s; n_leaders++; }
            else next[last] = s;
            last = s;
        }
        free(refs);
    }

    GPT m;
    Bpe tok;
    gen_load_model(o.model, o.tokenizer, be, &m, &tok);
    ConNames names;
    con_names_init(&names);
    if (o.names) {
        if (strcmp(o.constrained, "on") || fmt == GEN_TABULAR)
            fprintf(stderr, "eval grid: --names is ignored: it works through --constrained on (recursive or instruct format)\n");
        else gen_load_names(o.names, &names, &tok);
    }
    ConCallees entries, calls;
    con_callees_init(&entries);
    con_callees_init(&calls);
    if (o.callees) {
        if (strcmp(o.constrained, "on") || fmt == GEN_TABULAR)
            fprintf(stderr, "eval grid: --callees is ignored: it works through --constrained on (recursive or instruct format)\n");
        else gen_load_callees(o.callees, &entries, &calls, &tok);
    }

    GridRun *runs = xcalloc(n_runs, sizeof *runs);
    int64_t total = 0;
    for (int r = 0; r < n_runs; r++) total += temps[r] == 0 ? n_leaders : n;
    fprintf(stderr, "eval grid: %s format, %d cells x %d samples, %d decodings (%s): %" PRId64 " graphs to generate\n",
            gen_format_name(fmt), n_cells, o.samples, n_runs, o.temps, total);
    Progress prog;
    progress_start(&prog, "eval grid", "graphs", (double)total);
    int64_t done = 0;
    uint64_t *hash = xmalloc(n * sizeof *hash);
    GraphSpec *lead_specs = xmalloc(n_leaders * sizeof *lead_specs);
    for (int r = 0; r < n_runs; r++) {
        GridRun *run = &runs[r];
        run->temperature = temps[r];
        if (temps[r] == 0) snprintf(run->label, sizeof run->label, "greedy");
        else snprintf(run->label, sizeof run->label, "t%g", temps[r]);
        EngineConfig ec;
        engine_config_default(&ec);
        ec.batch = o.batch; ec.seed = (uint64_t)o.seed;
        ec.sampling = (SamplerConfig){.temperature = (float)temps[r], .top_k = o.top_k, .top_p = (float)o.top_p};
        HarnessConfig hc;
        harness_config_default(&hc);
        hc.format = fmt; hc.retries = o.retries; hc.max_layer_tokens = o.max_tokens;
        hc.constrained = !strcmp(o.constrained, "on") && fmt != GEN_TABULAR;
        if (hc.constrained && names.n) hc.names = &names;
        if (hc.constrained && calls.n) { hc.entries = &entries; hc.calls = &calls; }
        Harness *h = harness_new(&m, &ec, &tok, &hc);
        char fname[64];
        snprintf(fname, sizeof fname, "samples_%s.jsonl", run->label);
        char *path = path_join(o.out, fname);
        GridSink s = {.run = run, .out = out_open(path), .specs = specs, .first = first, .next = next, .hash = hash,
                      .prog = &prog, .done = &done};
        double t0 = now_seconds();
        if (temps[r] == 0) {
            // the leaders' prompts in sample order; the sink's index is a leader's position here
            int *lfirst = xmalloc(n_leaders * sizeof *lfirst), nl = 0;
            for (int i = 0; i < n; i++)
                if (first[i] == i) { lead_specs[nl] = specs[i]; lfirst[nl++] = i; }
            s.shared = true;
            s.first = lfirst;
            harness_run(h, lead_specs, n_leaders, 0, grid_sink, &s);
            free(lfirst);
        } else harness_run(h, specs, n, 0, grid_sink, &s);
        run->seconds = now_seconds() - t0;
        run->generated = temps[r] == 0 ? n_leaders : n;
        out_close(s.out);
        free(path);
        harness_free(h);
        // distinct assembled graphs per cell
        double sum = 0;
        for (int c = 0; c < n_cells; c++) {
            uint64_t *v = hash + (size_t)c * o.samples;
            qsort(v, o.samples, sizeof *v, u64_cmp);
            int distinct = 0;
            for (int i = 0; i < o.samples; i++) distinct += v[i] && (i == 0 || v[i] != v[i - 1]);
            sum += distinct;
        }
        run->distinct_graphs = sum / n_cells;
        int64_t an, aok;
        acc_over(&run->res, 0, 1, EVAL_GRID_EDGES, &an, &aok);
        char eta[32];
        fmt_duration(eta, sizeof eta, run->seconds);
        fprintf(stderr, "eval grid: %s: %" PRId64 " samples (%" PRId64 " generated), %.1f%% valid, accuracy %.1f%%, %s (%.1f graphs/s)\n",
                run->label, run->res.req_n, run->generated, pct(run->valid, run->res.req_n), pct(aok, an), eta,
                run->generated / (run->seconds > 0 ? run->seconds : 1e-9));
    }
    progress_end(&prog, (double)done, 0);

    GridInfo gi = {&o, n_cells, o.samples, 0};
    for (int r = 0; r < n_runs; r++)
        if (temps[r] == 0) gi.n_prompts_greedy = n_leaders;
    write_reports(o.out, &gi, runs, n_runs);
    printf("%-10s %10s %10s %10s %12s %12s\n", "decoding", "samples", "valid", "accuracy", "edges<=15", "edges>15");
    for (int r = 0; r < n_runs; r++) {
        Acc3 c = acc3(&runs[r].res);
        char c1[32], c2[32];
        fmt_acc(c1, sizeof c1, c.n[1], c.ok[1]);
        fmt_acc(c2, sizeof c2, c.n[2], c.ok[2]);
        printf("%-10s %10" PRId64 " %9.1f%% %9.1f%% %12s %12s\n", runs[r].label, runs[r].res.req_n, pct(runs[r].valid, runs[r].res.req_n),
               pct(c.ok[0], c.n[0]), c1, c2);
    }
    printf("grid: %s/grid.html (tables: %s/grid.md, numbers: %s/grid.json)\n", o.out, o.out, o.out);

    for (int r = 0; r < n_runs; r++) eval_result_free(&runs[r].res);
    free(runs); free(hash); free(lead_specs); free(first); free(next); free(specs);
    con_names_free(&names);
    con_callees_free(&entries);
    con_callees_free(&calls);
    bpe_free(&tok);
    gpt_free(&m);
    return 0;
}
