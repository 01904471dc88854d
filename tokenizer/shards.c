// `tracellm shards`: graphs or text -> token shards for training (docs/TOKENIZER.md). In order:
//   1. documents: graphs rendered in a paper format (data/format.h), or a text file cut into
//      documents; an instruction sample has a prompt (mask 0) and an answer (mask 1);
//   2. rendering + encoding on all cores, one graph or document per iteration; a prompt and its
//      answer are encoded separately, as generation encodes a prompt on its own;
//   3. a seeded shuffle of the samples (the same seed gives the same shards, for any thread count);
//   4. packing (shards.h): end-of-text after each document, over-long documents split, never cut;
//   5. shards of at most --shard-tokens tokens, cut only between pieces, each written atomically.
#include "tokenizer/shards.h"
#include "data/format.h"
#include "data/graph.h"
#include "data/layers.h"
#include "data/stats.h"
#include "tokenizer/bpe.h"
#include "tokenizer/shard.h"
#include "util/args.h"
#include "util/progress.h"
#include "util/rng.h"
#include "util/util.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

// ---- packing ----

static void put(Packed *p, uint32_t id, uint8_t m, bool with_mask) {
    if (p->n == p->cap) {
        size_t c = p->cap;
        grow((void **)&p->tokens, &c, p->n + 1, sizeof *p->tokens);
        if (with_mask) p->mask = xrealloc(p->mask, c);
        p->cap = c;
    }
    p->tokens[p->n] = (uint16_t)id;
    if (with_mask) p->mask[p->n] = m;
    p->trained_tokens += m;
    p->n++;
}

static void start_piece(Packed *p) {
    if (p->n_docs == p->dcap) grow((void **)&p->doc_start, &p->dcap, p->n_docs + 1, sizeof *p->doc_start);
    p->doc_start[p->n_docs++] = p->n;
    p->pieces++;
}

void pack_document(Packed *p, const uint32_t *ids, const uint8_t *mask, size_t n, int seq_len, uint32_t eot,
                   uint32_t boundary, bool with_mask) {
    size_t total = n + 1;  // the document and its end-of-text
    p->documents++;
    if ((int64_t)total > p->max_doc_tokens) p->max_doc_tokens = (int64_t)total;
    if (total > (size_t)seq_len) p->split_documents++;
    start_piece(p);
    size_t room = (size_t)seq_len;
    for (size_t i = 0; i < total; i++) {
        if (room == 0) {  // piece full: the rest of this document continues after a boundary token
            start_piece(p);
            put(p, boundary, 0, with_mask);
            room = (size_t)seq_len - 1;
        }
        if (i < n) put(p, ids[i], mask ? mask[i] : 1, with_mask);
        else put(p, eot, 1, with_mask);  // the answer's end: the model must learn to stop
        room--;
    }
}

void packed_free(Packed *p) {
    free(p->tokens); free(p->mask); free(p->doc_start);
    memset(p, 0, sizeof *p);
}

// ---- documents ----

typedef struct {
    const char *prompt; size_t np;   // mask 0 (instruction data); np = 0 otherwise
    const char *text; size_t nt;     // mask 1
} Doc;
typedef struct { Doc *v; size_t n, cap; } Docs;

static void docs_push(Docs *d, Doc x) {
    if (d->n == d->cap) grow((void **)&d->v, &d->cap, d->n + 1, sizeof *d->v);
    d->v[d->n++] = x;
}

static bool only_space(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\n' && s[i] != '\t' && s[i] != '\r') return false;
    return true;
}

// Adds s[from, to) as a document unless it is only whitespace; returns 1 when it was dropped.
static size_t emit_doc(Docs *out, const char *s, size_t from, size_t to) {
    if (only_space(s + from, to - from)) return 1;
    docs_push(out, (Doc){NULL, 0, s + from, to - from});
    return 0;
}

// Cuts text into documents: a document starts at every line that begins with doc_start, or, with
// doc_sep, documents are separated by lines equal to doc_sep (those lines are dropped). With
// answer_after, each document's prompt runs through the end of the first line holding it.
// Returns how many empty (whitespace-only) documents were dropped.
static size_t split_text(const char *path, const char *s, size_t n, const char *doc_start, const char *doc_sep,
                         const char *answer_after, Docs *out) {
    size_t begin = 0, empty = 0, first = out->n;
    size_t sl = strlen(doc_sep ? doc_sep : doc_start);
    for (size_t i = 0; i < n;) {  // i: start of a line
        size_t e = i;
        while (e < n && s[e] != '\n') e++;
        size_t next = e < n ? e + 1 : n, len = e - i;
        if (len && s[e - 1] == '\r') len--;
        if (doc_sep) {
            if (len == sl && !memcmp(s + i, doc_sep, sl)) { empty += emit_doc(out, s, begin, i); begin = next; }
        } else if (i > begin && len >= sl && !memcmp(s + i, doc_start, sl)) {
            empty += emit_doc(out, s, begin, i);
            begin = i;
        }
        i = next;
    }
    if (begin < n) empty += emit_doc(out, s, begin, n);
    if (!answer_after) return empty;
    size_t al = strlen(answer_after);
    for (size_t k = first; k < out->n; k++) {
        Doc *d = &out->v[k];
        const char *m = memmem(d->text, d->nt, answer_after, al);
        if (!m) {
            size_t line = 1;
            for (const char *c = s; c < d->text; c++) line += *c == '\n';
            fatal("%s:%zu: document %zu has no '%s' marker (instruction documents need a prompt and an answer)", path, line,
                  k - first + 1, answer_after);
        }
        const char *e = memchr(m, '\n', d->text + d->nt - m);
        size_t np = e ? (size_t)(e + 1 - d->text) : d->nt;
        d->prompt = d->text; d->np = np;
        d->text += np; d->nt -= np;
    }
    return empty;
}

// ---- rendering and encoding ----
// A unit is what one loop iteration renders and encodes: one text document, or one graph (one
// sample; for instruction data one sample per layer). Samples are shuffled after encoding, so a
// graph's text depends only on the seed and its position in the input, never on threads.

typedef struct { uint16_t *ids; uint32_t n, n_prompt; } Sample;
typedef struct { Sample *v; size_t n, cap; char err[240]; } Unit;

typedef struct {
    const Docs *docs;                   // --text
    CallGraph *graphs; int64_t *lines;  // --graphs: the current batch, with each graph's input line
    size_t base;                        // input index of graphs[0] (seeds depend on it, not on batching)
    const char *path, *format;
    uint64_t seed;
    int split_threshold;
    bool canonical_order;               // recursive / instruction: fixed attribute order (docs/SFT.md)
    const Stats *stats;                 // instruction data: special instructions (may be NULL)
    double fraction;                    // instruction data: share of graphs made into samples
} Source;

typedef struct {                        // per-thread scratch
    BpeCache *cache;
    TokBuf ids;
    TextBuf text, prompt;
    Layers layers;
    LayerAnswer scratch;
} Worker;

static void add_sample(Unit *u, const TokBuf *ids, size_t n_prompt) {
    if (u->n == u->cap) grow((void **)&u->v, &u->cap, u->n + 1, sizeof *u->v);
    Sample *x = &u->v[u->n++];
    x->n = (uint32_t)ids->n; x->n_prompt = (uint32_t)n_prompt;
    x->ids = xmalloc((ids->n + 1) * sizeof *x->ids);
    for (size_t i = 0; i < ids->n; i++) x->ids[i] = (uint16_t)ids->v[i];  // vocab <= 65536
}

// Renders unit i of a --graphs source into text (false with u->err set when it cannot).
// Sorts graph i and checks it is valid (the formats need a valid tree).
static bool check_graph(const Source *src, size_t i, Unit *u) {
    CallGraph *g = &src->graphs[i];
    graph_sort(g);
    int bad = -1;
    GraphCheck c = graph_validate(g, 0, &bad);
    if (c == GRAPH_OK) return true;
    char why[300];
    snprintf(u->err, sizeof u->err, "%s:%lld: invalid call graph (%s)", src->path, (long long)src->lines[i],
             graph_check_describe(g, c, bad, why, sizeof why));
    return false;
}

static uint64_t graph_seed(const Source *src, size_t i) {
    uint64_t k = src->base + i;
    return hash_bytes(&k, sizeof k, src->seed);
}

static bool render_graph(const Source *src, size_t i, TextBuf *text, Unit *u) {
    CallGraph *g = &src->graphs[i];
    Rng rng;
    rng_seed(&rng, graph_seed(src, i));
    if (!strcmp(src->format, "tabular")) {
        TabularOpts o = {.keep_prob = 0.9};
        tabular_render(text, g, &o, &rng);
        return true;
    }
    RecursiveOpts o = {.keep_prob = 0.9, .latency_keep_prob = 0.5, .split_threshold = src->split_threshold,
                       .canonical_order = src->canonical_order};
    char err[200];
    if (!recursive_render(text, g, &o, &rng, err, sizeof err)) {
        snprintf(u->err, sizeof u->err, "%s:%lld: cannot render: %s", src->path, (long long)src->lines[i], err);
        return false;
    }
    return true;
}

// Instruction data: one sample per layer, prompt and answer encoded separately (generation
// encodes the prompt alone, so the token boundary between them must be the same here).
static bool encode_instruction(const Bpe *b, const Source *src, size_t i, Worker *w, Unit *u) {
    CallGraph *g = &src->graphs[i];
    // the same selection as `tracellm render --format instruction --seed S` (by content, not position)
    uint64_t h = graph_hash(g);
    h = hash_bytes(&h, sizeof h, src->seed);
    if ((double)(h >> 11) * 0x1.0p-53 >= src->fraction) return true;
    Rng rng;
    rng_seed(&rng, graph_seed(src, i));
    InstructOpts o;
    instruct_opts_default(&o);
    o.split_threshold = src->split_threshold;
    o.canonical_order = src->canonical_order;
    LayerOpts lo = {.split_threshold = o.split_threshold, .group_max = 5, .rng = &rng};
    char err[200];
    if (!layers_build(&w->layers, g, &lo, err, sizeof err)) {
        snprintf(u->err, sizeof u->err, "%s:%lld: cannot build layers: %s", src->path, (long long)src->lines[i], err);
        return false;
    }
    const ServiceStats *st = src->stats ? stats_find(src->stats, g->service) : NULL;
    for (int li = 0; li < w->layers.n; li++) {
        tb_clear(&w->prompt); tb_clear(&w->text);
        instruct_render_layer(&w->prompt, &w->text, &w->layers, li, st, &o, &rng, &w->scratch);
        w->ids.n = 0;
        bpe_encode(b, w->cache, (const unsigned char *)w->prompt.p, w->prompt.n, &w->ids);
        size_t np = w->ids.n;
        bpe_encode(b, w->cache, (const unsigned char *)w->text.p, w->text.n, &w->ids);
        add_sample(u, &w->ids, np);
    }
    return true;
}

static void encode_units(const Bpe *b, const Source *src, size_t n_units, Unit *units, Progress *pr, size_t *done) {
    bool instruction = !src->docs && !strcmp(src->format, "instruction");
    #pragma omp parallel
    {
        Worker w = {.cache = bpe_cache_new()};
        layers_init(&w.layers);
        answer_init(&w.scratch);
        #pragma omp for schedule(dynamic, 64)
        for (size_t i = 0; i < n_units; i++) {
            w.ids.n = 0;
            if (src->docs) {
                const Doc *x = &src->docs->v[i];
                if (x->np) bpe_encode(b, w.cache, (const unsigned char *)x->prompt, x->np, &w.ids);
                size_t np = w.ids.n;
                bpe_encode(b, w.cache, (const unsigned char *)x->text, x->nt, &w.ids);
                add_sample(&units[i], &w.ids, np);
            } else {
                if (!check_graph(src, i, &units[i])) {}
                else if (instruction) encode_instruction(b, src, i, &w, &units[i]);
                else {
                    tb_clear(&w.text);
                    if (render_graph(src, i, &w.text, &units[i])) {
                        bpe_encode(b, w.cache, (const unsigned char *)w.text.p, w.text.n, &w.ids);
                        add_sample(&units[i], &w.ids, 0);
                    }
                }
                graph_free(&src->graphs[i]);  // rendered: its memory goes back now
            }
            if ((i & 255) == 0) {
                #pragma omp critical(shards_progress)
                { *done += i + 256 <= n_units ? 256 : n_units - i; progress_update(pr, (double)*done, 0, -1); }
            }
        }
        bpe_cache_free(w.cache); free(w.ids.v); tb_free(&w.text); tb_free(&w.prompt);
        layers_free(&w.layers); answer_free(&w.scratch);
    }
}

typedef struct { Sample *v; size_t n, cap; } Samples;

// Moves the samples of units[0..n) into all; dies on the first unit that failed (input order).
static void collect(Unit *units, size_t n, Samples *all) {
    for (size_t i = 0; i < n; i++) {
        if (units[i].err[0]) fatal("%s", units[i].err);  // nothing has been written yet
        if (units[i].n == 0) continue;                    // a graph the instruction fraction left out
        if (all->n + units[i].n > all->cap) grow((void **)&all->v, &all->cap, all->n + units[i].n, sizeof *all->v);
        memcpy(all->v + all->n, units[i].v, units[i].n * sizeof *all->v);
        all->n += units[i].n;
        free(units[i].v);
        memset(&units[i], 0, sizeof units[i]);
    }
}

// ---- output ----

static void make_dir(const char *dir) {
    if (mkdir_p(dir, 0777)) fatal("cannot create directory %s: %s", dir, strerror(errno));
}

static char *shard_name(const char *dir, const char *name, int k) {
    size_t n = strlen(dir) + strlen(name) + 32;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s_%06d.bin", dir, name, k);
    return p;
}

// Shards of whole pieces, at most shard_tokens each; then removes NAME_k.bin left by an earlier,
// longer run (a loader globbing NAME_*.bin would read them as part of this one). Returns the count.
static int write_shards(const Packed *p, const Bpe *b, const char *dir, const char *name, int64_t shard_tokens) {
    make_dir(dir);
    int n_shards = 0;
    size_t d0 = 0;
    while (d0 < p->n_docs) {
        uint64_t base = p->doc_start[d0];
        size_t d1 = d0 + 1;
        while (d1 < p->n_docs && (d1 + 1 < p->n_docs ? p->doc_start[d1 + 1] : p->n) - base <= (uint64_t)shard_tokens) d1++;
        uint64_t end = d1 < p->n_docs ? p->doc_start[d1] : p->n;
        uint64_t *starts = xmalloc((d1 - d0) * sizeof *starts);
        for (size_t k = d0; k < d1; k++) starts[k - d0] = p->doc_start[k] - base;
        char *path = shard_name(dir, name, n_shards++);
        shard_write(path, (uint32_t)b->vocab_size, b->fingerprint, p->tokens + base, p->mask ? p->mask + base : NULL,
                    end - base, starts, d1 - d0);
        free(path); free(starts);
        d0 = d1;
    }
    for (int k = n_shards;; k++) {
        char *path = shard_name(dir, name, k);
        int gone = unlink(path);
        free(path);
        if (gone) break;
    }
    return n_shards;
}

int cmd_shards(int argc, char **argv) {
    const char *graphs = NULL, *text = NULL, *format = NULL, *tok_path = NULL, *out_dir = NULL, *name = "train";
    const char *doc_start = NULL, *doc_sep = NULL, *answer_after = NULL, *stats_path = NULL;
    int seq_len = 1024, threads = 0, split_threshold = 15, batch = 65536;
    int64_t shard_tokens = 100000000, seed = 1;
    bool loss_on_all = false, quiet = false, canonical = false;
    double fraction = 0.05;
    Opt opts[] = {
        {"--graphs", OPT_STR, &graphs, "FILE", "graphs JSONL to render with --format", false},
        {"--format", OPT_STR, &format, "F", "recursive | tabular | instruction (instruction: loss mask on the answer)", false},
        {"--text", OPT_STR, &text, "FILE", "or: text already rendered, cut into documents by --doc-start / --doc-sep", false},
        {"--doc-start", OPT_STR, &doc_start, "PREFIX", "--text: a line beginning with PREFIX starts a document (default '[GENERATE GRAPH]', "
                                                       "with --format instruction '### Question:')", false},
        {"--doc-sep", OPT_STR, &doc_sep, "LINE", "--text: documents are separated by lines equal to LINE instead (e.g. '%%'); "
                                                 "those lines are dropped", false},
        {"--answer-after", OPT_STR, &answer_after, "MARKER", "--text: a document's prompt ends with the line holding MARKER, the rest is the "
                                                             "answer (default '### Answer:' with --format instruction)", false},
        {"--tokenizer", OPT_STR, &tok_path, "FILE", "tokenizer file (tracellm tokenizer train)", true},
        {"--out", OPT_STR, &out_dir, "DIR", "directory for NAME_000000.bin ... and NAME.json", true},
        {"--name", OPT_STR, &name, "NAME", "shard file prefix (train, val, sft...)", false},
        {"--seq-len", OPT_INT, &seq_len, "N", "context length: longer documents are split into pieces of N tokens", false},
        {"--loss-on-all", OPT_FLAG, &loss_on_all, NULL, "instruction data: train on prompt tokens too (as the released code did)", false},
        {"--split-threshold", OPT_INT, &split_threshold, "N", "--graphs: layers with more edges become <split> layers, 0 = never "
                                                              "(release and `tracellm render`: 15)", false},
        {"--instruction-fraction", OPT_DOUBLE, &fraction, "F", "--graphs instruction: share of graphs made into samples, chosen "
                                                                "by content as `tracellm render` does (paper: 5%)", false},
        {"--stats", OPT_STR, &stats_path, "FILE", "--graphs instruction: stats.json for the special instructions (high latency, "
                                                  "uncommon edge); without it none are drawn", false},
        {"--canonical-order", OPT_FLAG, &canonical, NULL, "--graphs recursive|instruction: attributes in one fixed order instead of "
                                                          "shuffled (beyond the paper; docs/SFT.md)", false},
        {"--shard-tokens", OPT_I64, &shard_tokens, "N", "tokens per shard at most (shards are cut between pieces)", false},
        {"--seed", OPT_I64, &seed, "S", "seed of the rendering (field order, dropped fields) and of the document shuffle", false},
        {"--threads", OPT_INT, &threads, "N", "threads (0 = all cores)", false},
        {"--graph-batch", OPT_INT, &batch, "N", "--graphs: graphs read into memory at once (the output does not depend on it)", false},
        {"--quiet", OPT_FLAG, &quiet, NULL, "no summary", false},
    };
    args_parse(argc, argv,
               "tracellm shards (--graphs train.jsonl --format recursive|tabular|instruction | --text FILE) --tokenizer tok.bin --out DIR",
               "Renders or reads documents, encodes them on all cores, shuffles them (seeded) and writes token shards\n"
               "(tokenizer/shard.h): " BPE_EOT " after every document; a document longer than --seq-len is split into\n"
               "pieces that continue with " BPE_BOUNDARY ", never truncated (counted in the summary). Instruction data\n"
               "carries a loss mask: 1 on answer tokens, 0 on prompt tokens, unless --loss-on-all.\n"
               "--text FILE: documents start at every line beginning with --doc-start (so the paper's text files work\n"
               "as they are), or are separated by lines equal to --doc-sep. Writes DIR/NAME_000000.bin... and DIR/NAME.json.",
               opts, sizeof opts / sizeof *opts, NULL);
    if (!graphs == !text) fatal("give exactly one of --graphs or --text");
    bool instruction = format && !strcmp(format, "instruction");
    if (format && strcmp(format, "recursive") && strcmp(format, "tabular") && !instruction)
        fatal("--format %s: expected recursive, tabular or instruction", format);
    if (graphs && !format) fatal("--graphs needs --format recursive|tabular|instruction");
    if (batch < 1) fatal("--graph-batch %d: must be >= 1", batch);
    if (seq_len < 2) fatal("--seq-len %d: must be at least 2", seq_len);
    if (shard_tokens < seq_len) fatal("--shard-tokens %lld: must be at least --seq-len %d", (long long)shard_tokens, seq_len);
    if (split_threshold < 0) fatal("--split-threshold %d: must be >= 0", split_threshold);
    if (fraction < 0 || fraction > 1) fatal("--instruction-fraction %g: must lie in [0, 1]", fraction);
    if (stats_path && !(graphs && instruction)) fatal("--stats applies to --graphs --format instruction");
    if (canonical && !(graphs && strcmp(format, "tabular"))) fatal("--canonical-order applies to --graphs --format recursive|instruction");
    if (text && !doc_start) doc_start = instruction ? "### Question:" : "[GENERATE GRAPH]";
    if (text && instruction && !answer_after) answer_after = "### Answer:";
    if (graphs && (doc_start || doc_sep || answer_after)) fatal("--doc-start, --doc-sep and --answer-after apply to --text");
    if ((doc_sep && !doc_sep[0]) || (doc_start && !doc_start[0]) || (answer_after && !answer_after[0]))
        fatal("--doc-sep, --doc-start and --answer-after must not be empty");
    if (loss_on_all && !answer_after && !instruction) fatal("--loss-on-all applies to instruction data (--format instruction or --answer-after)");
#ifdef _OPENMP
    if (threads > 0) omp_set_num_threads(threads);
#endif
    double t0 = now_seconds();
    Bpe b;
    bpe_load(&b, tok_path);
    int eot = bpe_special_id(&b, BPE_EOT), boundary = bpe_special_id(&b, BPE_BOUNDARY);
    if (eot < 0 || boundary < 0) fatal("%s: tokenizer has no %s / %s special token", tok_path, BPE_EOT, BPE_BOUNDARY);

    // 1 + 2. the documents, rendered and encoded on all cores (graphs in batches)
    Source src = {.path = text ? text : graphs, .format = format ? format : "text", .seed = (uint64_t)seed,
                  .split_threshold = split_threshold, .fraction = fraction, .canonical_order = canonical};
    Stats stats = {0};
    if (stats_path) {
        char err[256];
        if (!stats_load(stats_path, &stats, err, sizeof err)) fatal("%s: %s", stats_path, err);
        src.stats = &stats;
    }
    Docs docs = {0};
    char *buf = NULL;
    size_t n_units = 0, empty = 0, done = 0;
    double bytes = 0;
    Samples all = {0};
    Progress pr;
    progress_start(&pr, "shards", text ? "docs" : "graphs", 0);
    double t1 = now_seconds();
    if (text) {
        size_t n;
        buf = read_file(text, &n);
        bytes = (double)n;
        empty = split_text(text, buf, n, doc_start, doc_sep, answer_after, &docs);
        src.docs = &docs;
        n_units = docs.n;
        Unit *units = xcalloc(n_units + 1, sizeof *units);
        encode_units(&b, &src, n_units, units, &pr, &done);
        collect(units, n_units, &all);
        free(units);
    } else {
        GraphReader r;
        graph_reader_open(&r, graphs);
        src.graphs = xcalloc((size_t)batch, sizeof *src.graphs);
        src.lines = xcalloc((size_t)batch, sizeof *src.lines);
        Unit *units = xcalloc((size_t)batch, sizeof *units);
        for (bool more = true; more;) {
            size_t n = 0;
            while (n < (size_t)batch) {
                graph_init(&src.graphs[n]);
                if (!graph_reader_next(&r, &src.graphs[n])) { graph_free(&src.graphs[n]); more = false; break; }
                src.lines[n++] = r.lineno;
            }
            src.base = n_units;
            encode_units(&b, &src, n, units, &pr, &done);  // frees each graph once rendered
            collect(units, n, &all);
            n_units += n;
        }
        graph_reader_close(&r);
        free(units);
    }
    double t_enc = now_seconds() - t1;
    if (n_units > 100000) progress_end(&pr, (double)n_units, 0);
    if (n_units == 0) fatal("%s: no documents", src.path);
    if (all.n == 0) fatal("%s: no samples (--instruction-fraction %g selected no graph)", src.path, fraction);
    bool with_mask = answer_after != NULL || instruction;

    // 3. seeded shuffle of the samples
    Sample *samples = all.v;
    size_t n_samples = all.n;
    Rng rng;
    rng_seed(&rng, (uint64_t)seed ^ 0x5348415244ULL);  // a stream apart from the rendering's
    for (size_t i = n_samples - 1; i > 0; i--) {          // Fisher-Yates (rng_shuffle counts in int)
        size_t j = (size_t)rng_below(&rng, i + 1);
        Sample t = samples[i]; samples[i] = samples[j]; samples[j] = t;
    }

    // 4. pack
    Packed p = {0};
    uint8_t *m = NULL;
    size_t mcap = 0;
    uint32_t *ids = NULL;
    size_t icap = 0;
    for (size_t i = 0; i < n_samples; i++) {
        Sample *x = &samples[i];
        grow((void **)&ids, &icap, x->n + 1, sizeof *ids);
        for (uint32_t k = 0; k < x->n; k++) ids[k] = x->ids[k];
        const uint8_t *mask = NULL;
        if (with_mask && !loss_on_all) {
            grow((void **)&m, &mcap, x->n + 1, 1);
            memset(m, 0, x->n_prompt);
            memset(m + x->n_prompt, 1, x->n - x->n_prompt);
            mask = m;
        }
        pack_document(&p, ids, mask, x->n, seq_len, (uint32_t)eot, (uint32_t)boundary, with_mask);
        free(x->ids);
    }
    free(m); free(ids); free(samples);
    if (!text) bytes = 0;  // rendered text is not kept; report tokens only

    // 5. shards and the summary file
    int n_shards = write_shards(&p, &b, out_dir, name, shard_tokens);
    size_t jn = strlen(out_dir) + strlen(name) + 8;
    char *jpath = xmalloc(jn);
    snprintf(jpath, jn, "%s/%s.json", out_dir, name);
    OutFile *o = out_open(jpath);
    fprintf(o->f,
            "{\"tokenizer_fingerprint\":\"%016llx\",\"vocab_size\":%d,\"format\":\"%s\",\"shards\":%d,\"tokens\":%zu,"
            "\"documents\":%lld,\"pieces\":%lld,\"split_documents\":%lld,\"max_document_tokens\":%lld,\"seq_len\":%d,"
            "\"mask\":%s,\"loss_on_all\":%s,\"trained_tokens\":%lld,\"seed\":%lld}\n",
            (unsigned long long)b.fingerprint, b.vocab_size, src.format, n_shards, p.n, (long long)p.documents,
            (long long)p.pieces, (long long)p.split_documents, (long long)p.max_doc_tokens, seq_len,
            with_mask ? "true" : "false", loss_on_all ? "true" : "false", (long long)p.trained_tokens, (long long)seed);
    out_close(o);
    free(jpath);
    if (!quiet) {
        printf("shards %s/%s_*.bin: %d shard%s, %zu tokens, %lld documents, %.1f tokens/document", out_dir, name, n_shards,
               n_shards == 1 ? "" : "s", p.n, (long long)p.documents, (double)p.n / (double)p.documents);
        if (bytes > 0) printf(", %.2f bytes/token", bytes / (double)p.n);
        printf("\n  split (longer than --seq-len %d, not truncated): %lld documents into %lld extra pieces; longest %lld tokens\n",
               seq_len, (long long)p.split_documents, (long long)(p.pieces - p.documents), (long long)p.max_doc_tokens);
        if (with_mask)
            printf("  loss mask: %lld of %zu tokens trained (%s)\n", (long long)p.trained_tokens, p.n,
                   loss_on_all ? "--loss-on-all" : "answers and end-of-text only");
        if (empty) printf("  empty documents dropped: %zu\n", empty);
        printf("  rendered+encoded %zu %s in %.2f s (%.0f/s); total %.2f s\n", n_units, text ? "documents" : "graphs", t_enc,
               n_units / (t_enc > 0 ? t_enc : 1e-9), now_seconds() - t0);
    }
    packed_free(&p);
    free(docs.v); free(buf); free(src.graphs); free(src.lines);
    if (stats_path) stats_free(&stats);
    bpe_free(&b);
    return 0;
}
