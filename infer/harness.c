// The recursive generation harness (infer/harness.h): layer jobs, prompts, the engine's hooks,
// retries, assembly, validation, results in graph order.
#include "infer/harness.h"
#include "util/util.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_JOBS_PER_GRAPH 4096   // a model that keeps asking for subgraphs is stopped here
#define MAX_DEPTH 16

const char *gen_format_name(int f) {
    static const char *const names[] = {"instruct", "recursive", "tabular"};
    return f >= 0 && f <= GEN_TABULAR ? names[f] : "?";
}
int gen_format_parse(const char *s) {
    for (int f = 0; f <= GEN_TABULAR; f++) if (!strcmp(s, gen_format_name(f))) return f;
    return -1;
}

void harness_config_default(HarnessConfig *c) {
    memset(c, 0, sizeof *c);
    c->format = GEN_INSTRUCT;
    c->retries = 2;
    c->constrained = true;
    c->max_layer_tokens = 2048;
    c->split_threshold = -1;   // auto
    c->keep_stops = true;
    c->callee_bounds = true;
}

void graph_spec_make(GraphSpec *s, const char *service, int64_t num_edges, int64_t depth, int64_t latency) {
    memset(s, 0, sizeof *s);
    Condition *c = &s->cond;
    cond_clear(c);
    cond_set_str(c, CF_ID, service);
    cond_set_str(c, CF_START_NODE, "USER");
    cond_set_str(c, CF_START_EDGE_ID, "0");
    cond_set_num(c, CF_START_COMM, 0);
    // the root layer is the one root edge; training roots say so (data/layers.c), and a prompt
    // without it reads like the few roots that lost the field to --keep-prob
    cond_set_num(c, CF_NUM_CURRENT_EDGES, 1);
    if (num_edges > 0) cond_set_num(c, CF_NUM_EDGES, num_edges);
    if (depth > 0) {
        cond_set_num(c, CF_REMAINING_DEPTH, depth - 1);
        cond_set_num(c, CF_NUM_SUBGRAPHS, depth > 1 ? 1 : 0);
    }
    if (latency >= 0) cond_set_num(c, CF_LATENCY, latency);
    s->want_edges = num_edges > 0 ? num_edges : -1;
    s->want_depth = depth > 0 ? depth : -1;
    s->want_latency = latency;
}

typedef struct {
    int graph;                    // slot in h->gs
    int parent, ordinal;          // parent job (-1 root) and the block's position in it
    char prefix[FMT_NAME_MAX * 2];// rpc_id of the parent edge ("" for the root layer)
    int depth;                    // layer depth (root 1)
    Condition cond;
    bool root, split;
    bool split_auto;              // split decided at submit: only when the whole layer does not fit
    char edge_id[FMT_ID_MAX];     // "<subgraph of edge_id K>" that asked for this layer (a split's parts repeat it)
    int attempt;
    uint64_t base, id;            // request id = f(base, attempt)
    TextBuf text;
    LayerAnswer ans;
    int *kids; int n_kids;
    Constraint *con;              // when constrained
    ConNames *fit;                // --callees: this layer's callees that can carry its one edge's subtree
                                  // (on the heap like con: con->names points at it, and jobs move)
    int too_long;                 // prompt tokens, when the prompt does not fit the context
} Job;

typedef struct {
    bool live, done;
    int64_t index;
    int cand;                     // which of the best_of samples of graph `index`
    double logprob;               // scored: sum of the kept layers' token log-likelihoods
    const GraphSpec *spec;
    int root;                     // job
    int pending;                  // requests not finished
    bool dead;                    // a layer that never parsed, or a runaway
    int *jobs; int n_jobs, cap_jobs;
    CallGraph g;
    GraphResult res;
    uint64_t answers;             // sum of hash(request id, answer) over the graph's requests
} GState;

struct Harness {
    HarnessConfig cfg;
    Engine e;
    const Bpe *tok;
    BpeCache *cache;
    int eot;
    Job *jobs; int n_jobs, cap_jobs;
    int *free_jobs; int n_free, cap_free;
    GState *gs; int n_gs;
    int window;                   // graphs in flight at most
    const GraphSpec *specs; int n_specs; int64_t index0;
    int best_of;                  // samples per graph (>= 1)
    int64_t next_spec;            // the next sample to start: graph next_spec / best_of
    int next_emit;                // the next graph to hand to the sink
    GraphSink sink; void *sink_ctx;
    StopSet stops;
    uint8_t *mask;
    TextBuf prompt;
    TokBuf ptoks;
    TokBuf pre_tokens[3];         // the shared preamble of each prompt kind, tokenized
    int32_t *req_tokens; int req_cap;
    HarnessStats st;
    bool debug;                   // TRACELLM_DEBUG_LAYERS=1: every answer to stderr
};

static const char *LAYER_STOPS[] = {"</layer>", "</split>", "finish generation", "##"};
static const char *TABULAR_STOPS[] = {"</edges>"};
static const char PREAMBLE_INSTRUCT[] = "### Question: You are a trace generator that creates traces based on given requirements.\nRequirements:\n";
static const char PREAMBLE_ROOT[] = "[GENERATE GRAPH]";
// A child layer's prompt in the recursive format. A training document is a whole graph: the root
// prompt after end-of-text, then every layer in DFS order, so a child's condition line always
// follows the "</layer>\n" of the layer before it and never end-of-text (which only ever precedes
// a root prompt). Asked after end-of-text, a trained model answers a child as if it were a root
// (measured: a wrong "type is http" or "type is rpc" first, 77-88%, where its training layers
// open with "type is mc").
static const char PREAMBLE_CHILD[] = "</layer>\n";
// Prompt kinds (prompt_text): 0 instruct, 1 root (and tabular), 2 recursive child; all but the
// child open with end-of-text, as their training documents do.
static bool kind_opens_with_eot(int kind) { return kind != 2; }

// ---- jobs ----

static int job_new(Harness *h) {
    int j;
    if (h->n_free) j = h->free_jobs[--h->n_free];
    else {
        if (h->n_jobs == h->cap_jobs) {
            h->cap_jobs = h->cap_jobs ? 2 * h->cap_jobs : 256;
            h->jobs = xrealloc(h->jobs, h->cap_jobs * sizeof *h->jobs);
        }
        j = h->n_jobs++;
        memset(&h->jobs[j], 0, sizeof h->jobs[j]);
        answer_init(&h->jobs[j].ans);
    }
    Job *b = &h->jobs[j];
    TextBuf t = b->text; LayerAnswer a = b->ans; Constraint *con = b->con; ConNames *fit = b->fit;
    memset(b, 0, sizeof *b);
    b->text = t; tb_clear(&b->text); b->ans = a; b->con = con; b->fit = fit;
    return j;
}
static void job_release(Harness *h, int j) {
    Job *b = &h->jobs[j];
    free(b->kids); b->kids = NULL; b->n_kids = 0;
    if (h->n_free == h->cap_free) {
        h->cap_free = h->cap_free ? 2 * h->cap_free : 256;
        h->free_jobs = xrealloc(h->free_jobs, h->cap_free * sizeof *h->free_jobs);
    }
    h->free_jobs[h->n_free++] = j;
}

static uint64_t mix2(uint64_t a, uint64_t b, uint64_t salt) { uint64_t v[2] = {a, b}; return hash_bytes(v, sizeof v, salt); }

// ---- prompts ----

// Appends the prompt text of job b to h->prompt; returns which preamble kind it starts with.
static int prompt_text(Harness *h, const Job *b) {
    TextBuf *p = &h->prompt;
    tb_clear(p);
    const GState *g = &h->gs[b->graph];
    if (h->cfg.format == GEN_TABULAR) {
        const Condition *c = &g->spec->cond;
        Condition t;
        cond_clear(&t);
        cond_set_str(&t, CF_ID, c->id);
        if (g->spec->want_latency >= 0) cond_set_num(&t, CF_LATENCY, g->spec->want_latency);
        if (g->spec->want_edges > 0) cond_set_num(&t, CF_NUM_EDGES, g->spec->want_edges);
        if (g->spec->want_depth > 0) cond_set_num(&t, CF_DEPTH, g->spec->want_depth);
        tb_puts(p, PREAMBLE_ROOT);
        // the release's header order: id, then latency, num_edges, depth when present
        tb_puts(p, "id:"); tb_puts(p, t.id);
        const int order[3] = {CF_LATENCY, CF_NUM_EDGES, CF_DEPTH};
        for (int i = 0; i < 3; i++)
            if (cond_has(&t, order[i])) { tb_putc(p, '/'); tb_puts(p, cond_field_name(order[i])); tb_putc(p, ':'); tb_int(p, t.v[order[i]]); }
        tb_puts(p, "\n<edges>\n");   // every record opens its edges here: part of the prompt
        return 1;
    }
    if (h->cfg.format == GEN_INSTRUCT) {
        PromptSpecial sp = g->spec->special;
        if (!b->root) sp.high_latency = false;  // the include-edge instruction propagates to children
        Condition c = b->cond;
        // the instruction data's root requirement says num_current_edges:1 (the one root edge)
        if (b->root && !cond_has(&c, CF_NUM_CURRENT_EDGES)) cond_set_num(&c, CF_NUM_CURRENT_EDGES, 1);
        instruct_prompt(p, &c, b->root, b->split, &sp, NULL, NULL);
        return 0;
    }
    tb_puts(p, b->root ? PREAMBLE_ROOT : PREAMBLE_CHILD);
    cond_render(p, &b->cond, b->cond.present, NULL);
    tb_putc(p, '\n');
    return b->root ? 1 : 2;
}

// The names a layer's destinations may take: --callees narrows --names per layer (HarnessConfig).
// With --callee-bounds: in a layer of one edge whose num_edges is given, that edge carries the
// other num_edges - 1, so its destination must be a callee the training graphs show carrying that
// many (con_callees_fit): a service whose big graphs start at another entry than its small ones
// gets the big one's entry. (The set's types and response times bound each call: constrain_set_bounds.)
static const ConNames *layer_names(const Harness *h, Job *b) {
    const ConNames *s = NULL;
    const char *from = cond_has(&b->cond, CF_START_NODE) ? b->cond.start_node : b->root ? "USER" : NULL;
    bool one = b->root || (cond_has(&b->cond, CF_NUM_CURRENT_EDGES) && b->cond.v[CF_NUM_CURRENT_EDGES] == 1);
    int64_t need = one && h->cfg.callee_bounds && cond_has(&b->cond, CF_NUM_EDGES) ? b->cond.v[CF_NUM_EDGES] - 1 : 0;
    if (!h->cfg.entries && !h->cfg.calls) return h->cfg.names;
    if (!b->fit) b->fit = xcalloc(1, sizeof *b->fit);
    if (b->root && h->cfg.entries && cond_has(&b->cond, CF_ID)) s = con_callees_fit(h->cfg.entries, b->cond.id, need, b->fit);
    if (!s && h->cfg.calls && from) s = con_callees_fit(h->cfg.calls, from, need, b->fit);
    return s ? s : h->cfg.names;
}

// The prompt of b, tokenized into h->ptoks; returns its kind (prompt_text).
static int encode_prompt(Harness *h, const Job *b) {
    int kind = prompt_text(h, b);
    h->ptoks.n = 0;
    if (h->eot >= 0 && kind_opens_with_eot(kind)) tokbuf_push(&h->ptoks, (uint32_t)h->eot);
    bpe_encode(h->tok, h->cache, (const unsigned char *)h->prompt.p, h->prompt.n, &h->ptoks);
    return kind;
}

// ---- split layers (instruction format) ----
// The release cuts a layer of more than 15 current edges into <split> pseudo-layers of 13..15
// edges (PAPER.md §2), and the instruction data teaches the split prompt for them. Left free, a
// split answer's parts were most of the demo's invalid graphs ("num_edges:18 but 1 edges", or a
// leaf condition that cannot be met); constrained (constrain_set_split) they partition the layer.
// Auto (split_threshold -1, the default): a constrained layer is asked whole when it fits the
// context, in parts otherwise.
#define RELEASE_SPLIT 15

int harness_whole_answer_tokens(const Bpe *tok, BpeCache *cache, const Condition *c, const ConNames *names) {
    // blocks: num_subgraphs, none in a leaf layer (whatever num_subgraphs says: a split's counts parts)
    int64_t nc = c->v[CF_NUM_CURRENT_EDGES], ns = cond_has(c, CF_NUM_SUBGRAPHS) ? c->v[CF_NUM_SUBGRAPHS] : 0;
    if (cond_has(c, CF_REMAINING_DEPTH) && c->v[CF_REMAINING_DEPTH] == 0) ns = 0;
    int64_t id0 = cond_has(c, CF_START_EDGE_ID) ? c->v[CF_START_EDGE_ID] : 0;
    int64_t t = cond_has(c, CF_LATENCY) ? c->v[CF_LATENCY] : 99999;
    // a destination: the longest name of the set; without one, digits as long as the longest name
    // the condition shows (free names are written digit by digit at worst)
    char dst[FMT_NAME_MAX] = "MS_99999";
    if (names && names->n) {
        for (int i = 0; i < names->n; i++)
            if ((int)strlen(names->v[i]) == names->max_len) { snprintf(dst, sizeof dst, "%s", names->v[i]); break; }
    } else {
        size_t n = strlen(dst);
        if (cond_has(c, CF_START_NODE) && strlen(c->start_node) > n) n = strlen(c->start_node);
        if (cond_has(c, CF_CALLER) && strlen(c->caller) > n) n = strlen(c->caller);
        memset(dst + 3, '9', n - 3);
        dst[n] = 0;
    }
    LayerAnswer a;
    answer_init(&a);
    for (int64_t i = 0; i < nc; i++) {
        FEdge *e = answer_add_edge(&a);
        snprintf(e->id, sizeof e->id, "%lld", (long long)(id0 + nc - 1));
        snprintf(e->dst, sizeof e->dst, "%s", dst);
        e->type = RPC_HTTP;
        e->start = e->finish = t;
        e->present = EF_LAYER;
    }
    for (int64_t i = 0; i < ns && i < nc; i++) {
        FSub *s = answer_add_sub(&a);
        snprintf(s->edge_id, sizeof s->edge_id, "%lld", (long long)(id0 + nc - 1));
        s->cond = *c;
        cond_set_str(&s->cond, CF_CALLER, dst);
        cond_set_str(&s->cond, CF_START_NODE, dst);
    }
    InstructOpts o;
    instruct_opts_default(&o);
    o.canonical_order = true;
    TextBuf text = {0};
    instruct_answer(&text, c, &a, &o, NULL);
    TokBuf toks = {0};
    bpe_encode(tok, cache, (const unsigned char *)text.p, text.n, &toks);
    int n = (int)toks.n;
    free(toks.v);
    tb_free(&text);
    answer_free(&a);
    return n + n / 10;   // a tenth more: a name's tokens do not grow with its length alone
}

// num_subgraphs of a layer over 15 edges means two things: a split's parts (the release cuts 13..15
// edges a part) or a whole layer's child layers, and the block that asked for the layer was
// written before anyone knew how it would be asked (the automaton allows either). Once the
// harness knows, the number takes that meaning: a split gets the fewest parts of at most 15 edges
// (2..5; more make a nested split, left free), a whole layer a count of child layers its size
// allows (none in a leaf). In the request and in the asking block: the assembler holds the two
// to agree.
static void reconcile_subgraphs(Harness *h, Job *b) {
    Condition *c = &b->cond;
    const uint32_t need = CF_BIT(CF_NUM_CURRENT_EDGES) | CF_BIT(CF_NUM_EDGES) | CF_BIT(CF_NUM_SUBGRAPHS) | CF_BIT(CF_REMAINING_DEPTH);
    if ((c->present & need) != need || c->v[CF_NUM_CURRENT_EDGES] <= RELEASE_SPLIT) return;
    int64_t nc = c->v[CF_NUM_CURRENT_EDGES], ne = c->v[CF_NUM_EDGES], rd = c->v[CF_REMAINING_DEPTH], ns = c->v[CF_NUM_SUBGRAPHS];
    if (b->split) {
        int64_t parts = (nc + RELEASE_SPLIT - 1) / RELEASE_SPLIT;
        if (parts > 5) return;
        ns = parts;
    } else if (rd == 0 || ne <= nc) ns = 0;
    else {
        int64_t hi = nc < ne - nc - rd + 1 ? nc : ne - nc - rd + 1;   // room for the deepest child's rd edges
        if (hi < 1) hi = 1;
        ns = ns < 1 ? 1 : ns > hi ? hi : ns;
    }
    if (ns == c->v[CF_NUM_SUBGRAPHS]) return;
    cond_set_num(c, CF_NUM_SUBGRAPHS, ns);
    if (b->parent >= 0) cond_set_num(&h->jobs[b->parent].ans.subs[b->ordinal].cond, CF_NUM_SUBGRAPHS, ns);
}

static void submit(Harness *h, int j) {
    Job *b = &h->jobs[j];
    b->id = mix2(b->base, (uint64_t)b->attempt, 0x7265717565737421ULL);
    if (b->split_auto) {  // once per layer: its retries are asked the same way
        b->split_auto = false;
        encode_prompt(h, b);
        int whole = harness_whole_answer_tokens(h->tok, h->cache, &b->cond, h->cfg.names);
        b->split = (int)h->ptoks.n + whole > h->e.cfg.ctx;
        h->st.split_layers += b->split;
        if (h->debug)
            fprintf(stderr, "---- layer of %lld edges: prompt %zu + whole answer <= %d tokens, context %d: %s\n",
                    (long long)b->cond.v[CF_NUM_CURRENT_EDGES], h->ptoks.n, whole, h->e.cfg.ctx, b->split ? "split" : "whole");
    }
    if (h->cfg.constrained) reconcile_subgraphs(h, b);
    int kind = encode_prompt(h, b);
    if ((int)h->ptoks.n > h->req_cap) { h->req_cap = (int)h->ptoks.n; h->req_tokens = xrealloc(h->req_tokens, h->req_cap * sizeof(int32_t)); }
    for (size_t i = 0; i < h->ptoks.n; i++) h->req_tokens[i] = (int32_t)h->ptoks.v[i];
    // the shared prefix: as many leading tokens as agree with the tokenized preamble
    const TokBuf *pre = &h->pre_tokens[kind];
    int plen = 0;
    while ((size_t)plen < pre->n && (size_t)plen < h->ptoks.n && pre->v[plen] == h->ptoks.v[plen]) plen++;
    tb_clear(&b->text);
    if (h->cfg.constrained && h->cfg.format != GEN_TABULAR && !b->split) {
        if (!b->con) b->con = xmalloc(sizeof *b->con);
        constrain_init(b->con, &b->cond, b->root, h->cfg.format == GEN_INSTRUCT);
        constrain_set_names(b->con, layer_names(h, b));
        constrain_set_bounds(b->con, h->cfg.callee_bounds);
        constrain_set_canonical(b->con, h->cfg.canonical_order);
    } else if (h->cfg.constrained && b->split) {
        // a <split>: its parts partition the layer (constrain_set_split; a nested split stays free)
        if (!b->con) b->con = xmalloc(sizeof *b->con);
        constrain_init(b->con, &b->cond, false, true);
        constrain_set_split(b->con, &b->cond, b->edge_id);
    } else if (b->con) b->con->active = false;
    int room = h->e.cfg.ctx - (int)h->ptoks.n;
    b->too_long = 0;
    if (room < 1) {
        // cannot be asked: run a one-token stand-in so the failure takes the normal path
        // (hook_finish) instead of re-entering the harness from here
        b->too_long = (int)h->ptoks.n;
        h->ptoks.n = 1;
        room = 1;
        plen = 0;
        if (b->con) b->con->active = false;
    }
    EngineRequest r = {.id = b->id, .prompt = h->req_tokens, .prompt_len = (int)h->ptoks.n, .prefix_len = plen,
                       .max_tokens = room < h->cfg.max_layer_tokens ? room : h->cfg.max_layer_tokens,
                       .user = (void *)(intptr_t)j};
    if (r.max_tokens < 1) r.max_tokens = 1;
    h->st.requests++;
    h->gs[b->graph].res.requests++;
    engine_submit(&h->e, &r);
}

// ---- engine hooks ----

static const uint8_t *hook_mask(void *ctx, EngineSeq *s) {
    Harness *h = ctx;
    Job *b = &h->jobs[(intptr_t)s->req.user];
    if (!b->con || !b->con->active) return NULL;
    constrain_mask(b->con, h->tok, h->mask);
    return h->mask;
}

static bool hook_in_number(void *ctx, EngineSeq *s) {
    Harness *h = ctx;
    const Job *b = &h->jobs[(intptr_t)s->req.user];
    return b->con && constrain_in_number(b->con);
}

static bool hook_token(void *ctx, EngineSeq *s, int tok) {
    Harness *h = ctx;
    Job *b = &h->jobs[(intptr_t)s->req.user];
    if (b->too_long) return true;
    const unsigned char *bytes = h->tok->tok[tok];
    size_t n = h->tok->tok_len[tok];
    tb_put(&b->text, (const char *)bytes, n);
    if (b->con && b->con->active) {
        // the mask allowed only what the automaton accepts: the answer ends when it is complete
        if (!constrain_feed(b->con, bytes, n)) fatal("internal: constrained decoding accepted a token its automaton rejects");
        return b->con->complete;
    }
    int which;
    long at = stop_find(&h->stops, b->text.p, (long)b->text.n, (long)n, &which);
    if (at < 0) return false;
    b->text.n = h->cfg.keep_stops ? (size_t)at + strlen(h->stops.s[which]) : (size_t)at;
    return true;
}

static void finalize(Harness *h, int gi);
static void emit_ready(Harness *h);
static void start_graphs(Harness *h);

static void note_error(GState *g, int code, uint32_t all, const char *detail) {
    g->res.errors |= all;
    if (!g->res.first_error && code) {
        g->res.first_error = code;
        size_t n = strlen(detail);
        if (n >= sizeof g->res.detail) n = sizeof g->res.detail - 1;
        memcpy(g->res.detail, detail, n);
        g->res.detail[n] = 0;
    }
}

static void add_kid_job(Harness *h, int pj, int ordinal, const FSub *sub) {
    int j = job_new(h);
    Job *p = &h->jobs[pj], *b = &h->jobs[j];   // p is valid again after job_new's realloc
    GState *g = &h->gs[p->graph];
    b->graph = p->graph; b->parent = pj; b->ordinal = ordinal;
    b->cond = sub->cond;
    snprintf(b->edge_id, sizeof b->edge_id, "%s", sub->edge_id);
    char pre[sizeof b->prefix];
    memcpy(pre, p->prefix, sizeof pre);
    if (p->ans.split) memcpy(b->prefix, pre, sizeof b->prefix);
    else if (pre[0]) snprintf(b->prefix, sizeof b->prefix, "%.*s.%s", (int)(sizeof b->prefix - FMT_ID_MAX - 2), pre, sub->edge_id);
    else snprintf(b->prefix, sizeof b->prefix, "%s", sub->edge_id);
    b->depth = p->ans.split ? p->depth : p->depth + 1;
    if (!cond_has(&b->cond, CF_START_NODE))
        for (int i = 0; i < p->ans.n_edges; i++)
            if (!strcmp(p->ans.edges[i].id, sub->edge_id)) cond_set_str(&b->cond, CF_START_NODE, p->ans.edges[i].dst);
    int thr = h->cfg.split_threshold < 0 ? RELEASE_SPLIT : h->cfg.split_threshold;
    b->split = h->cfg.format == GEN_INSTRUCT && thr > 0 && cond_has(&b->cond, CF_NUM_CURRENT_EDGES) &&
               b->cond.v[CF_NUM_CURRENT_EDGES] > thr;
    // auto: a layer the constraint covers is asked whole if it fits (decided in submit)
    b->split_auto = b->split && h->cfg.split_threshold < 0 && h->cfg.constrained &&
                    b->cond.v[CF_NUM_CURRENT_EDGES] <= CON_MAX_EDGES;
    if (b->split && !b->split_auto) h->st.split_layers++;
    b->base = mix2(p->id, (uint64_t)ordinal, 0x6b6964ULL);
    if (g->n_jobs == g->cap_jobs) { g->cap_jobs = g->cap_jobs ? 2 * g->cap_jobs : 16; g->jobs = xrealloc(g->jobs, g->cap_jobs * sizeof *g->jobs); }
    g->jobs[g->n_jobs++] = j;
    p = &h->jobs[pj];
    p->kids[p->n_kids++] = j;
    g->pending++;
    submit(h, j);
}

static void finish_tabular(Harness *h, Job *b, GState *g) {
    // the record is the prompt's header line followed by the generated body
    prompt_text(h, b);
    if (b->text.n) tb_put(&h->prompt, b->text.p, b->text.n);   // an empty answer may have no buffer yet
    TextCursor c;
    cursor_init(&c, h->prompt.p, h->prompt.n, "generated");
    Condition hdr;
    char err[400];
    int r = tabular_next(&c, &g->g, &hdr, err, sizeof err);
    if (r == 1) { g->res.layers = 1; return; }
    g->dead = true;
    note_error(g, LC_PARSE, 1u << LC_PARSE, r == 0 ? "empty answer" : err);
}

static void hook_finish(void *ctx, EngineSeq *s, FinishReason why) {
    Harness *h = ctx;
    int j = (int)(intptr_t)s->req.user;
    Job *b = &h->jobs[j];
    GState *g = &h->gs[b->graph];
    g->answers += hash_bytes(b->text.p, b->text.n, b->id);   // order-free: layers finish in any order
    if (h->cfg.format == GEN_TABULAR) {
        if (b->too_long) tb_clear(&b->text);
        finish_tabular(h, b, g);
        if (h->debug)
            fprintf(stderr, "---- graph %lld tabular try %d: %s, %s\n%.*s\n", (long long)g->index, b->attempt, finish_reason_name(why),
                    g->dead ? g->res.detail : "parsed", (int)b->text.n, b->text.p);
        if (b->too_long) b->attempt = h->cfg.retries;
        // counted as the layer path counts: every failed try, and the final failure
        if (g->dead) h->st.try_fail[LC_PARSE]++;
        if (g->dead && b->attempt < h->cfg.retries) {
            g->dead = false; g->res.first_error = 0; g->res.errors = 0;
            b->attempt++;
            if (b->attempt == 1) { g->res.retried_layers++; h->st.retried++; }
            submit(h, j);
            return;
        }
        if (g->dead) h->st.layer_fail[LC_PARSE]++;
        g->logprob += s->logprob;
        if (--g->pending == 0) finalize(h, b->graph);
        return;
    }
    answer_parse(b->text.p, b->text.n, &b->ans, 1);
    uint32_t all = 0;
    char detail[320];
    int code = layer_check(&b->cond, &b->ans, &all, detail, sizeof detail);
    if (b->too_long) {
        b->ans.status = ANS_ERROR;
        code = LC_PARSE; all = 1u << LC_PARSE;
        snprintf(detail, sizeof detail, "the prompt of %d tokens does not fit the context of %d tokens", b->too_long, h->e.cfg.ctx);
        b->attempt = h->cfg.retries;   // another try cannot help
    }
    if (h->debug) {
        h->prompt.n = 0;
        cond_render(&h->prompt, &b->cond, b->cond.present, NULL);
        fprintf(stderr, "---- graph %lld layer '%s' try %d: %s, check %d (%s) %s\nCONDITION %.*s\n%.*s\n", (long long)g->index,
                b->prefix, b->attempt, finish_reason_name(why), code, layer_check_name(code), detail, (int)h->prompt.n,
                h->prompt.p, (int)b->text.n, b->text.p);
    }
    bool cut = (why == FIN_MAX_TOKENS || why == FIN_CONTEXT) &&
               (b->con && b->con->active ? !b->con->complete : !b->ans.terminated);
    if (cut && b->ans.status == ANS_OK) {
        // a clean cut (after </edges> or a block) parses, but the layer is unfinished: say so
        // rather than report the missing blocks as a wrong num_edges
        b->ans.status = ANS_PARTIAL;
        code = LC_PARSE; all = 1u << LC_PARSE;
        snprintf(detail, sizeof detail, "cut off by %s after %d tokens, before the layer was complete",
                 why == FIN_CONTEXT ? "the context" : "--max-tokens", engine_seq_gen(s));
    }
    if (why == FIN_MASK_EMPTY && code == LC_OK) { code = LC_PARSE; all |= 1u << LC_PARSE; snprintf(detail, sizeof detail, "constrained decoding found no allowed token"); }
    if (code != LC_OK) {
        h->st.try_fail[code < 32 ? code : 0]++;
        if (b->attempt < h->cfg.retries) {
            b->attempt++;
            if (b->attempt == 1) { g->res.retried_layers++; h->st.retried++; }
            submit(h, j);
            return;
        }
        h->st.layer_fail[code < 32 ? code : 0]++;
        char where[sizeof b->prefix + sizeof detail + 16];
        snprintf(where, sizeof where, "layer %s: %s", b->prefix[0] ? b->prefix : "(root)", detail);
        note_error(g, code, all, where);
    }
    g->res.layers++;
    g->logprob += s->logprob;
    h->st.layers++;
    if (b->ans.status != ANS_OK) g->dead = true;
    else if (!g->dead) {
        if (b->ans.n_subs && (b->depth >= MAX_DEPTH || g->n_jobs + b->ans.n_subs > MAX_JOBS_PER_GRAPH)) {
            g->dead = true;
            note_error(g, LC_SUB_DEEPER, 1u << LC_SUB_DEEPER, "the model kept asking for subgraphs past the depth / size limit");
        } else {
            b->kids = xmalloc((b->ans.n_subs ? b->ans.n_subs : 1) * sizeof *b->kids);
            b->n_kids = 0;
            for (int i = 0; i < b->ans.n_subs; i++) {
                FSub sub = h->jobs[j].ans.subs[i];   // copied: submitting may move the job table
                add_kid_job(h, j, i, &sub);
            }
        }
    }
    g = &h->gs[h->jobs[j].graph];
    if (--g->pending == 0) finalize(h, h->jobs[j].graph);
}

// ---- assembly ----

static bool assemble_dfs(Harness *h, GraphAssembler *as, int j, char *err, size_t errlen) {
    Job *b = &h->jobs[j];
    LayerVisit v;
    if (!assembler_add(as, &b->cond, &b->ans, 0, &v, err, errlen)) return false;
    for (int i = 0; i < b->n_kids; i++)
        if (!assemble_dfs(h, as, h->jobs[j].kids[i], err, errlen)) return false;
    return true;
}

static void finalize(Harness *h, int gi) {
    GState *g = &h->gs[gi];
    GraphResult *r = &g->res;
    r->index = g->index;
    r->spec = g->spec;
    if (!g->dead && h->cfg.format != GEN_TABULAR) {
        GraphAssembler as;
        assembler_init(&as, &g->g);
        char err[400];
        if (!assemble_dfs(h, &as, g->root, err, sizeof err) || !assembler_done(&as)) {
            g->dead = true;
            note_error(g, LC_PARSE, 1u << LC_PARSE, err);
        }
        assembler_free(&as);
    }
    if (!g->dead) {
        graph_sort(&g->g);
        r->assembled = true;
        r->g = &g->g;
        r->graph_check = graph_validate(&g->g, 15, NULL);
        r->valid = r->graph_check == GRAPH_OK && r->first_error == 0;
        r->match = r->valid && (g->spec->want_edges < 0 || g->g.n == g->spec->want_edges) &&
                   (g->spec->want_depth < 0 || graph_depth(&g->g) == g->spec->want_depth);
    }
    for (int i = 0; i < g->n_jobs; i++) job_release(h, g->jobs[i]);
    g->n_jobs = 0;
    g->done = true;
    r->samples = h->best_of;
    r->candidate = g->cand;
    r->logprob = h->best_of > 1 ? g->logprob : 0;
    emit_ready(h);
    start_graphs(h);
}

// What the request asked for comes first: 3 = matches, 2 = valid, 1 = assembled, 0 = none.
static int tier(const GState *g) { return g->res.match ? 3 : g->res.valid ? 2 : g->res.assembled ? 1 : 0; }

// The sample of a graph to keep among its K finished ones (harness.h: best_of): the highest tier,
// then the highest log-likelihood; ties keep the earlier sample.
static GState *choose(const Harness *h, GState **c, int K) {
    GState *best = c[0];
    for (int k = 1; k < K; k++)
        if (tier(c[k]) > tier(best) || (tier(c[k]) == tier(best) && c[k]->logprob > best->logprob)) best = c[k];
    if (h->debug && K > 1)
        for (int k = 0; k < K; k++)
            fprintf(stderr, "---- graph %lld sample %d%s: %s, logprob %.3f, root call to %s\n", (long long)c[k]->index, k,
                    c[k] == best ? " (kept)" : "",
                    c[k]->res.match ? "matches" : c[k]->res.valid ? "valid" : c[k]->res.assembled ? "assembled" : "not assembled",
                    c[k]->logprob, c[k]->res.assembled && c[k]->g.n ? c[k]->g.edges[0].dst : "-");
    return best;
}

// Hands finished graphs to the sink in index order: graph i once all its samples are done, the
// best of them (harness.h: best_of).
static void emit_ready(Harness *h) {
    const int K = h->best_of;
    while (h->next_emit < h->n_specs) {
        GState *cand[K];
        for (int c = 0; c < K; c++) {
            GState *g = &h->gs[((int64_t)h->next_emit * K + c) % h->window];
            if (!g->live || !g->done || g->index != h->index0 + h->next_emit) return;
            cand[c] = g;
        }
        const GraphResult *r = &choose(h, cand, K)->res;
        h->sink(h->sink_ctx, r);
        h->st.graphs++;
        h->st.assembled += r->assembled;
        h->st.valid += r->valid;
        h->st.match += r->match;
        h->st.not_assembled += !r->assembled;
        for (int c = 0; c < K; c++) {
            uint64_t v[2] = {h->st.answers_hash, cand[c]->answers};
            h->st.answers_hash = hash_bytes(v, sizeof v, 0);
            cand[c]->live = false;
        }
        h->next_emit++;
    }
}

static void start_graphs(Harness *h) {
    const int K = h->best_of;
    while (h->next_spec < (int64_t)h->n_specs * K && h->next_spec - (int64_t)h->next_emit * K < h->window) {
        int64_t k = h->next_spec++;
        GState *g = &h->gs[k % h->window];
        if (g->live) fatal("internal: graph window slot still in use");
        g->live = true; g->done = false; g->dead = false;
        g->index = h->index0 + k / K;
        g->cand = (int)(k % K);
        g->spec = &h->specs[k / K];
        g->pending = 1;
        g->answers = 0;
        g->logprob = 0;
        memset(&g->res, 0, sizeof g->res);
        graph_clear(&g->g);
        int j = job_new(h);
        Job *b = &h->jobs[j];
        b->graph = (int)(k % h->window); b->parent = -1; b->root = true; b->depth = 1;
        b->cond = g->spec->cond;
        // sample 0 is the graph's only sample without best_of: the same request ids, the same graph
        b->base = hash_bytes(&g->index, sizeof g->index, 0x726f6f74ULL);
        if (g->cand) b->base = mix2(b->base, (uint64_t)g->cand, 0x63616e64ULL);
        g->root = j;
        if (g->n_jobs == g->cap_jobs) { g->cap_jobs = g->cap_jobs ? 2 * g->cap_jobs : 16; g->jobs = xrealloc(g->jobs, g->cap_jobs * sizeof *g->jobs); }
        g->jobs[g->n_jobs++] = j;
        submit(h, j);
    }
}

// ---- public ----

Harness *harness_new(GPT *m, const EngineConfig *ec, const Bpe *tok, const HarnessConfig *cfg) {
    Harness *h = xcalloc(1, sizeof *h);
    h->cfg = *cfg;
    h->tok = tok;
    h->debug = getenv("TRACELLM_DEBUG_LAYERS") != NULL;
    if (tok->vocab_size != m->cfg.vocab_size)
        fatal("the tokenizer has %d tokens but the model was trained with a vocabulary of %d", tok->vocab_size, m->cfg.vocab_size);
    h->cache = bpe_cache_new();
    h->eot = bpe_special_id(tok, BPE_EOT);
    EngineConfig c = *ec;
    c.eot = h->eot;
    h->best_of = cfg->best_of > 1 ? cfg->best_of : 1;
    c.score = c.score || h->best_of > 1;
    EngineHooks hooks = {.mask = hook_mask, .in_number = hook_in_number, .token = hook_token, .finish = hook_finish, .ctx = h};
    engine_init(&h->e, m, &c, &hooks);
    // graphs in flight, in samples: a whole number of graphs' worth, at least one graph
    h->window = (4 * h->e.cfg.batch + h->best_of - 1) / h->best_of * h->best_of;
    h->gs = xcalloc(h->window, sizeof *h->gs);
    for (int i = 0; i < h->window; i++) graph_init(&h->gs[i].g);
    h->mask = xmalloc(tok->vocab_size);
    if (cfg->format == GEN_TABULAR) stopset_init(&h->stops, TABULAR_STOPS, 1);
    else stopset_init(&h->stops, LAYER_STOPS, 4);
    const char *pre[3] = {PREAMBLE_INSTRUCT, PREAMBLE_ROOT, PREAMBLE_CHILD};
    for (int k = 0; k < 3; k++) {
        if (h->eot >= 0 && kind_opens_with_eot(k)) tokbuf_push(&h->pre_tokens[k], (uint32_t)h->eot);
        bpe_encode(tok, h->cache, (const unsigned char *)pre[k], strlen(pre[k]), &h->pre_tokens[k]);
    }
    return h;
}

void harness_free(Harness *h) {
    if (!h) return;
    engine_free(&h->e);
    for (int i = 0; i < h->n_jobs; i++) {
        Job *b = &h->jobs[i];
        tb_free(&b->text); answer_free(&b->ans); free(b->kids); free(b->con);
        if (b->fit) con_names_view_free(b->fit);
        free(b->fit);
    }
    free(h->jobs); free(h->free_jobs);
    for (int i = 0; i < h->window; i++) { graph_free(&h->gs[i].g); free(h->gs[i].jobs); }
    free(h->gs); free(h->mask); tb_free(&h->prompt); free(h->ptoks.v); free(h->req_tokens);
    for (int k = 0; k < 3; k++) free(h->pre_tokens[k].v);
    bpe_cache_free(h->cache);
    free(h);
}

Engine *harness_engine(Harness *h) { return &h->e; }
const HarnessStats *harness_stats(const Harness *h) { return &h->st; }

void harness_run(Harness *h, const GraphSpec *specs, int n, int64_t index0, GraphSink sink, void *ctx) {
    h->specs = specs; h->n_specs = n; h->next_spec = 0; h->next_emit = 0; h->index0 = index0;
    h->sink = sink; h->sink_ctx = ctx;
    start_graphs(h);
    engine_run(&h->e);
    if (h->next_emit != n) fatal("internal: %d of %d graphs finished", h->next_emit, n);
}
