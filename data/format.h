// The paper's three text formats of a call graph (PAPER.md §2-§3, docs/FORMATS.md), in both
// directions. Rendering turns a CallGraph (through its layers, data/layers.h) into training text;
// parsing turns text back into graphs, and turns a model's generated layer answer — possibly cut
// off mid-edge — into edges and subgraph requests. The answer parser is the hot path of generation:
// it allocates only when a layer is larger than any seen before, accepts any attribute order, and
// is strict about everything else (every error names the line and the field).
//
//   tabular    [GENERATE GRAPH]id:S_1/num_edges:2/...\n<edges>\n(source is USER,edge_id is 0,...)\n</edges>\n
//   recursive  [GENERATE GRAPH]ROOT-CONDITION\n<layer>\n<edges>\n(...)\n</edges>\n<subgraph of edge_id K>COND</subgraph>\n</layer>\n
//              COND\n<layer>...   (one block per layer, DFS pre-order; <split>...</split> pseudo-layers)
//   instruct   ### Question: PROMPT\n ### Answer: \n<layer>\n...scratchpad...</layer>\n  (one sample per layer)
#pragma once
#include "data/graph.h"
#include "util/rng.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// ---- a growable text buffer (all renderers append to one) ----
typedef struct { char *p; size_t n, cap; } TextBuf;
void tb_reserve(TextBuf *b, size_t extra);
void tb_free(TextBuf *b);
static inline void tb_clear(TextBuf *b) { b->n = 0; }
void tb_put(TextBuf *b, const char *s, size_t n);
void tb_puts(TextBuf *b, const char *s);
void tb_putc(TextBuf *b, char c);
void tb_int(TextBuf *b, int64_t v);

// Longest microservice/service name and edge id we accept (v2021 names are 64 hex digits).
#define FMT_NAME_MAX 128
#define FMT_ID_MAX 96

// A name (service, microservice, rpc_id component) the formats can carry: non-empty, no control
// character and none of / : , ) > (they delimit fields). Renderers refuse graphs with others.
bool text_safe_name(const char *s);

// ---- condition lines: key:value pairs joined by '/' in any order ----
typedef enum {
    CF_ID,                // service                          id:S_000034483
    CF_START_NODE,        // microservice making the calls    start_node:MS_63670
    CF_CALLER,            // parent edge's source             caller:USER
    CF_NUM_EDGES,         // this layer + all descendants     num_edges:6
    CF_NUM_CURRENT_EDGES, // edges in this layer              num_current_edges:4
    CF_NUM_SUBGRAPHS,     // child layers                     num_subgraphs:1
    CF_REMAINING_DEPTH,   // levels below this layer          remaining_depth:1
    CF_START_EDGE_ID,     // local id of the first edge       start_edge_id:1
    CF_START_COMM,        // start ms of the first edge       start_communication_at:0
    CF_LATENCY,           // bound on every finish            latency:8
    CF_DEPTH,             // tabular header only: graph depth depth:3
    CF_NFIELDS
} CondField;
#define CF_BIT(f) (1u << (f))
// The ten fields of a non-root condition line and of every <subgraph> block.
#define CF_LAYER_FIELDS (CF_BIT(CF_ID) | CF_BIT(CF_START_NODE) | CF_BIT(CF_CALLER) | CF_BIT(CF_NUM_EDGES) | \
                         CF_BIT(CF_NUM_CURRENT_EDGES) | CF_BIT(CF_NUM_SUBGRAPHS) | CF_BIT(CF_REMAINING_DEPTH) | \
                         CF_BIT(CF_START_EDGE_ID) | CF_BIT(CF_START_COMM) | CF_BIT(CF_LATENCY))
const char *cond_field_name(int f);   // "num_current_edges", ...

typedef struct {
    uint32_t present;                 // CF_BIT(f) for every field given
    char id[FMT_NAME_MAX], start_node[FMT_NAME_MAX], caller[FMT_NAME_MAX];
    char start_edge_id[FMT_ID_MAX];   // text: edge ids are names, not numbers ("0.01" != "0.1")
    int64_t v[CF_NFIELDS];            // numeric fields, indexed by CondField
} Condition;
static inline bool cond_has(const Condition *c, int f) { return (c->present >> f) & 1u; }
void cond_clear(Condition *c);
void cond_set_str(Condition *c, int f, const char *s);   // id, start_node, caller, start_edge_id
void cond_set_num(Condition *c, int f, int64_t v);
// Appends the fields in `fields` that c has, joined by '/', in an order shuffled by rng
// (rng NULL: the canonical CondField order).
void cond_render(TextBuf *out, const Condition *c, uint32_t fields, Rng *rng);
// Parses "k:v/k:v..." (s[0..n), no newline). Unknown key, duplicate key, empty value, a
// non-integer number or a value too long is an error naming the field.
bool cond_parse(const char *s, size_t n, Condition *c, char *err, size_t errlen);
// True when every field in `fields` that BOTH have is equal; *diff gets the first differing field.
bool cond_agree(const Condition *a, const Condition *b, uint32_t fields, int *diff);

// ---- edge lines: "(attr,attr,...)" ----
enum { EF_ID = 1, EF_TYPE = 2, EF_SRC = 4, EF_DST = 8, EF_START = 16, EF_FINISH = 32 };
#define EF_LAYER (EF_ID | EF_TYPE | EF_DST | EF_START | EF_FINISH)   // recursive/instruction edges
#define EF_TABULAR (EF_LAYER | EF_SRC)                              // tabular edges
typedef struct {
    char id[FMT_ID_MAX];      // local id ("3") in layers; the full rpc_id ("0.1.3") in tabular
    char src[FMT_NAME_MAX];   // tabular only
    char dst[FMT_NAME_MAX];
    int type;                 // RpcType
    int64_t start, finish;    // ms
    uint8_t present;          // EF_* bits seen
    int line;                 // 1-based line in the parsed text (0 when built from a graph)
} FEdge;
// Appends "(attr,...)" (no newline) with the attributes of `fields`, shuffled by rng (NULL: canonical).
void edge_render(TextBuf *out, const FEdge *e, int fields, Rng *rng);
// The same from separate values (renderers use it straight from a CallGraph, without copies).
void edge_render_parts(TextBuf *out, const char *id, int type, const char *src, const char *dst, int64_t start,
                       int64_t finish, int fields, Rng *rng);
// Parses one edge line s[0..n) (with its parentheses). `allowed` = EF_LAYER or EF_TABULAR.
// Returns 1 when complete; 0 on a malformed line (err: "attribute 'type': ..."); -1 when the line
// stops early (no ')'): e->present tells which fields arrived, for "missing fields" reports.
int edge_parse(const char *s, size_t n, FEdge *e, int allowed, char *err, size_t errlen);
// Appends the names of the fields of `want` missing from `present` ("type, destination").
void edge_missing_names(int want, int present, char *out, size_t outlen);

// ---- one layer's body: what a model generates for one request ----
typedef struct {
    char edge_id[FMT_ID_MAX];  // <subgraph of edge_id K>
    Condition cond;
    int line;
} FSub;
typedef enum { ANS_OK, ANS_PARTIAL, ANS_ERROR } AnsStatus;
typedef struct {
    bool split;            // a <split> body (subgraph blocks only, no edges)
    bool terminated;       // saw </layer>, </split>, "finish generation" or a "##" line
    FEdge *edges; int n_edges, cap_edges;
    FSub *subs; int n_subs, cap_subs;
    AnsStatus status;
    int err_line;          // the line of the error or of the cut-off
    char msg[320];         // ANS_PARTIAL / ANS_ERROR: "line 7: cut off mid-edge, missing fields type, destination"
    FEdge partial;         // ANS_PARTIAL inside an edge: the fields that did arrive
    bool has_partial;
    size_t consumed;       // bytes read, through the terminator line
} LayerAnswer;
void answer_init(LayerAnswer *a);
void answer_free(LayerAnswer *a);
void answer_clear(LayerAnswer *a);
FEdge *answer_add_edge(LayerAnswer *a);
FSub *answer_add_sub(LayerAnswer *a);
// Parses a layer answer starting at text (optionally opening with <layer>/<split>); stops after
// the terminator line. Scratchpad lines of the instruction format are recognised and skipped;
// any other text is an error. first_line numbers the lines in messages. Returns a->status.
// A text that ends cleanly after </edges> or after a subgraph line (stop string stripped) is
// ANS_OK with terminated = false.
AnsStatus answer_parse(const char *text, size_t n, LayerAnswer *a, int first_line);

// ---- layer validity (PAPER.md §4; release error codes, plus the paper's extra rules) ----
enum {
    LC_OK = 0,
    LC_NUM_EDGES = 3,          // num_edges != layer edges + sum of subgraph num_edges
    LC_SUB_EDGE_MISSING = 4,   // <subgraph of edge_id K> names an edge not generated
    LC_SUB_START_NODE = 6,     // subgraph start_node != that edge's destination
    LC_SUB_OFFSET = 7,         // subgraph start_communication_at > its latency
    LC_SUB_LATENCY = 8,        // subgraph latency > layer latency or > its edge's finish
    LC_SUB_DEEPER = 9,         // subgraph remaining_depth > layer remaining_depth
    LC_NO_SUBGRAPH = 11,       // no subgraph although depth > 0 and edges remain
    LC_EDGE_LATENCY = 12,      // an edge finishes after the layer latency
    LC_MORE_EDGES = 13,        // more than one edge when num_edges - remaining_depth == 1
    LC_PARSE = 14,             // the answer did not parse (or a subgraph lacks a required field)
    LC_SUB_DEPTH = 16,         // subgraphs not all shallower, or none at remaining_depth - 1
    LC_SPLIT_DEPTH = 18,       // split: no subgraph at the split's remaining_depth
    LC_SPLIT_EDGES = 19,       // split: a part is not smaller than the whole
    // the paper's further rules (PAPER.md §4 "Also"), and structure the assembler relies on
    LC_START_BEFORE = 20,      // an edge starts before the condition's start_communication_at
    LC_START_AFTER_FINISH = 21,// an edge starts after it finishes
    LC_EDGE_COUNT = 22,        // edge count != num_current_edges
    LC_SUB_AT_LEAF = 23,       // a subgraph although remaining_depth == 0
    LC_FIRST_EDGE_ID = 24,     // first edge id != start_edge_id
    LC_NUM_SUBGRAPHS = 25,     // subgraph count != num_subgraphs
    LC_DUPLICATE = 26,         // two edges with one id, or two subgraphs for one edge
};
const char *layer_check_name(int code);
// Checks a parsed answer against the condition it was generated for (fields the condition lacks
// are not checked). Returns the first failing code in the order of the enum (LC_OK when valid);
// *all (may be NULL) gets a bit per failing code; detail (may be NULL) a sentence.
int layer_check(const Condition *req, const LayerAnswer *a, uint32_t *all, char *detail, size_t detail_len);

// ---- whole texts ----
// A cursor over a text in memory; line = lines consumed so far (the next line is line + 1).
typedef struct { const char *p; size_t n, pos; int line; const char *name; } TextCursor;
void cursor_init(TextCursor *c, const char *text, size_t n, const char *name);
// The next line (without '\n' or '\r'); false at the end. Afterwards c->line is that line's number.
bool cursor_line(TextCursor *c, const char **s, size_t *len);
// Skips blank lines; false when only blank lines remain.
bool cursor_skip_blank(TextCursor *c);

// Tabular (GReaT baseline).
typedef struct { double keep_prob; } TabularOpts;   // each of num_edges/latency/depth kept (release: 0.9)
void tabular_render(TextBuf *out, const CallGraph *g, const TabularOpts *o, Rng *rng);
// Next record into g (edges sorted by rpc_id) and its header into hdr. 1 = a graph, 0 = end,
// -1 = error (err names the file:line and the field).
int tabular_next(TextCursor *c, CallGraph *g, Condition *hdr, char *err, size_t errlen);

// Recursive (pre-training).
struct Layers;
struct LayerOpts;
typedef struct {
    double keep_prob;          // each optional root-condition field (release: 0.9)
    double latency_keep_prob;  // the root latency (release: 0.5)
    int split_threshold;       // layers with more edges become <split> pseudo-layers; 0 = never
    bool canonical_order;      // beyond the paper (docs/SFT.md): attributes of every condition line and
                               // edge in the fixed CondField / EF_* order instead of shuffled; off = the paper
} RecursiveOpts;
// Renders g (sorted, valid). Returns false (err set) when the graph cannot be decomposed.
bool recursive_render(TextBuf *out, const CallGraph *g, const RecursiveOpts *o, Rng *rng, char *err, size_t errlen);
// Renders the layers L already built (the text of layer list L, in its order).
void recursive_render_layers(TextBuf *out, const struct Layers *L, const RecursiveOpts *o, Rng *rng);

// Parsing recursive text (and instruction samples) back into graphs. A visitor sees every layer.
typedef struct {
    const char *prefix;         // rpc_id of the parent edge ("" for the root layer)
    const Condition *cond;      // the layer's condition line
    const LayerAnswer *ans;
    int line;                   // line of the condition
    bool root, in_split;        // root layer; parent is a <split>
} LayerVisit;
typedef void (*LayerVisitor)(void *ctx, const LayerVisit *v);
int recursive_next(TextCursor *c, CallGraph *g, LayerVisitor fn, void *ctx, char *err, size_t errlen);

// Recursive + instruction (SFT).
typedef struct {
    double keep_prob;           // root: each optional requirement field (0.9)
    double latency_keep_prob;   // root: the latency (0.5)
    double desc_prob;           // each condition sentence (0.9)
    bool combine_special;       // allow high latency AND an uncommon edge in one sample (paper: no)
    bool scratchpad;            // intermediate instructions in the answer (paper: yes)
    double high_latency_margin; // release: only when p90 - mean > 5; < 0 = paper (latency >= p90)
    int split_threshold;        // as RecursiveOpts
    bool finish_marker;         // end each answer with "\n ### Finish" as the release's SFT template does (default on)
    bool rare_subtree;          // name an uncommon call found anywhere below the layer, not only in it
                                // (release: the layer's own; subtree trains the propagation generation uses)
    double distinct_prob;       // beyond the paper (docs/SFT.md): share of layers with edges whose prompt says
                                // "Call at most K distinct microservices in this layer" (K = the layer's own
                                // count); 0 = off (default), so the paper's data is unchanged
    bool canonical_order;       // beyond the paper: conditions, edges, prompt sentences and scratchpad lines
                                // in one fixed order (the order inference prompts and constrained blocks use);
                                // dropped fields and sentences are still drawn. Off (default) = the paper
} InstructOpts;
void instruct_opts_default(InstructOpts *o);
// A special instruction for one request.
typedef struct {
    bool high_latency;          // "Build a call graph with high latency"
    bool include;               // "Include an edge from SRC to DST with TYPE type"
    char inc_src[FMT_NAME_MAX], inc_dst[FMT_NAME_MAX];
    int inc_type;
    int distinct_max;           // "Call at most K distinct microservices in this layer" (0 = not asked)
} PromptSpecial;
// Distinct destination microservices among a layer answer's edges (what distinct_max bounds).
int answer_distinct_destinations(const LayerAnswer *a);
// The prompt for a condition as shown (fields it lacks were dropped); root selects the root
// variations; split the split-layer prompt. Writes "### Question: ...\n ### Answer: \n".
void instruct_prompt(TextBuf *out, const Condition *shown, bool root, bool split, const PromptSpecial *sp,
                     const InstructOpts *o, Rng *rng);
// The answer for a layer's content with its true condition: "<layer>\n...</layer>\n", with the
// scratchpad when o->scratchpad (and "\n ### Finish\n" when o->finish_marker). content->subs carry
// the children's full conditions.
void instruct_answer(TextBuf *out, const Condition *truth, const LayerAnswer *content, const InstructOpts *o, Rng *rng);
// One training sample for layer li of L: prompt ("### Question: ... ### Answer: \n") and answer
// ("<layer>...</layer>\n") separately, so shards can mask the prompt. st (may be NULL) gives the
// service's statistics for the special instructions. scratch is reused between calls.
struct ServiceStats;
void instruct_render_layer(TextBuf *prompt, TextBuf *answer, const struct Layers *L, int li, const struct ServiceStats *st,
                           const InstructOpts *o, Rng *rng, LayerAnswer *scratch);
// One parsed sample.
typedef struct {
    Condition req;              // the Requirements line
    const char *prompt; size_t prompt_len;    // "### Question: ... ### Answer: \n" (points into the text)
    const char *answer; size_t answer_len;    // "<layer>...</layer>\n"
    const char *cond_lines[32]; int cond_len[32]; int n_conds;  // Conditions: lines (or split lines)
    LayerAnswer ans;
    int line;
} InstructSample;
void instruct_sample_init(InstructSample *s);
void instruct_sample_free(InstructSample *s);
int instruct_next(TextCursor *c, InstructSample *s, char *err, size_t errlen);

// Assembles graphs from layers in DFS pre-order (recursive text, instruction samples, generated
// layers): feed each layer's condition + answer; a graph is complete when no subgraph is pending.
typedef struct {
    char prefix[FMT_NAME_MAX * 2];  // rpc_id of the parent edge
    Condition cond;                 // the <subgraph> block the layer must answer
    int line;
    bool in_split;
} PendingLayer;
typedef struct {
    CallGraph *g;
    PendingLayer *stack;
    int n_stack, cap_stack;
    bool started;
} GraphAssembler;
void assembler_init(GraphAssembler *a, CallGraph *g);
void assembler_free(GraphAssembler *a);
bool assembler_done(const GraphAssembler *a);
// Adds one layer; fills *visit (prefix etc.). Errors name the line: a condition that disagrees
// with its <subgraph> block, an edge id that is not a number-like name, a subgraph for a missing edge.
bool assembler_add(GraphAssembler *a, const Condition *cond, const LayerAnswer *ans, int line, LayerVisit *visit,
                   char *err, size_t errlen);

// ---- text format detection (render --parse) ----
typedef enum { TEXT_UNKNOWN, TEXT_TABULAR, TEXT_RECURSIVE, TEXT_INSTRUCT } TextFormat;
TextFormat text_detect(const char *text, size_t n);
const char *text_format_name(TextFormat f);
