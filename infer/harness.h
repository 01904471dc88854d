// Recursive generation (PAPER.md §4): a call graph is generated one layer per model request.
// The root request carries the graph's condition; each `<subgraph of edge_id K>` block of a
// generated layer becomes a child request whose prompt is that block's condition only. Global
// rpc_ids are rebuilt as parent prefix + "." + K, every edge's source is its layer's start_node,
// and when a graph has no pending request its layers are assembled (data/format.h's assembler,
// in DFS pre-order) and the whole graph validated.
//
// Each layer answer is parsed and checked against its condition (layer_check, the paper's error
// codes); a failing layer is asked again up to `retries` times with a fresh request id (so a fresh
// sample). After the last try a layer that parsed is kept as it is (the paper's behaviour with
// retries 0: the graph is then judged as a whole); one that did not parse ends its graph.
//
// The tabular format (the GReaT baseline) asks for a whole graph in one request through the
// same engine. Everything a graph generates is a function of (model, seed, graph index, prompt),
// whatever the batch size.
#pragma once
#include "data/format.h"
#include "data/graph.h"
#include "infer/constrain.h"
#include "infer/engine.h"
#include "tokenizer/bpe.h"
#include <stdbool.h>
#include <stdint.h>

typedef enum { GEN_INSTRUCT, GEN_RECURSIVE, GEN_TABULAR } GenFormat;
const char *gen_format_name(int f);
int gen_format_parse(const char *s);  // -1 when unknown

// One graph to generate: its root condition (fields it lacks are left to the model).
typedef struct {
    Condition cond;          // id, start_node USER, start_edge_id 0, start_communication_at 0, and
                             // whichever of num_edges, remaining_depth, num_subgraphs, latency are asked
    PromptSpecial special;   // instruction format: high latency / include an edge
    int64_t want_edges;      // requested num_edges, -1 = any
    int64_t want_depth;      // requested depth, -1 = any
    int64_t want_latency;    // requested latency, -1 = any
} GraphSpec;

// Builds the root condition of a graph request from its parts (-1 = not given).
void graph_spec_make(GraphSpec *s, const char *service, int64_t num_edges, int64_t depth, int64_t latency);

typedef struct {
    GenFormat format;
    int retries;             // extra tries of a failing layer (0 = the paper)
    bool constrained;        // token masks from infer/constrain.h
    int max_layer_tokens;    // per request
    // instruction format: a child with more current edges gets the split prompt (<split>, run
    // unconstrained); 0 = never; -1 (auto, the default): the release's 15, except that a layer the
    // constraint covers is asked whole when its prompt and a whole answer fit the context
    int split_threshold;
    bool keep_stops;         // keep the stop string in the answer text (default true)
    const ConNames *names;   // constrained: destinations only from this set (NULL: any name)
    // constrained, `generate --callees`: a root layer's destinations among its service's observed
    // entries (unseen service: among calls["USER"]), another layer's among what its start_node was
    // seen to call; `names` (or any name) where the table has nothing. NULL: off.
    const ConCallees *entries, *calls;
    // with the table, `generate --callee-bounds` (default on): in a layer of one edge and a given
    // num_edges, that edge's destination only among the callees seen carrying its subtree's size
    // (con_callees_fit), each call's type and callee a pair seen, its response time at most the
    // longest seen (constrain_set_bounds)
    bool callee_bounds;
    bool canonical_order;    // constrained: edge attributes only in the canonical order (constrain_set_canonical)
    // Sample-and-rank (`generate --best-of K`): each graph is generated K times from independent
    // samples and the one kept is the first by (matches the request, valid, assembled, highest
    // log-likelihood under the model: the sum over its layers' generated tokens of log p at
    // temperature 1, unmasked). 0 or 1: one sample, exactly what the harness generates without it.
    int best_of;
} HarnessConfig;
void harness_config_default(HarnessConfig *c);
// Tokens a whole instruction answer for a layer of condition c takes at most, about: its edges
// and blocks with the scratchpad, every id, time and destination at its longest (names: the set
// the destinations come from, or NULL), plus a tenth. Auto split (split_threshold -1) asks a
// layer whole when its prompt and this fit the context.
int harness_whole_answer_tokens(const Bpe *tok, BpeCache *cache, const Condition *c, const ConNames *names);

// What happened to one graph, handed to the sink in graph order.
typedef struct {
    int64_t index;
    const GraphSpec *spec;
    CallGraph *g;            // assembled graph (sorted); NULL when it could not be assembled
    bool assembled, valid, match;
    GraphCheck graph_check;  // when assembled
    int layers, requests, retried_layers;
    int first_error;         // the first layer_check code that remained after the retries (0 none)
    uint32_t errors;         // bit per layer_check code seen in any try
    char detail[320];        // the first error, in words
    int samples;             // best_of: how many samples the graph was chosen from (1 without)
    int candidate;           // which of them was kept (0-based)
    double logprob;          // samples > 1: its log-likelihood (sum over its kept layers), else 0
} GraphResult;
typedef void (*GraphSink)(void *ctx, const GraphResult *r);

typedef struct Harness Harness;
// An engine over m (its hooks are the harness's) and the tokenizer the model was trained with.
Harness *harness_new(GPT *m, const EngineConfig *ec, const Bpe *tok, const HarnessConfig *cfg);
void harness_free(Harness *h);
Engine *harness_engine(Harness *h);
// Generates the graphs of specs[0..n), indices index0.., handing each result to sink in index order.
void harness_run(Harness *h, const GraphSpec *specs, int n, int64_t index0, GraphSink sink, void *ctx);

// Statistics over everything run so far.
typedef struct {
    // graphs, assembled, valid, match: of the graphs handed to the sink; requests, layers,
    // retried, the failure counts: of every sample (best_of > 1 generates K per graph)
    int64_t graphs, assembled, valid, match, requests, layers, retried;
    int64_t layer_fail[32];  // final failures by layer_check code
    int64_t try_fail[32];    // failed tries by code (including retried ones)
    int64_t not_assembled;   // a layer never parsed
    int64_t split_layers;    // layers asked with the split prompt (instruction format)
    uint64_t answers_hash;   // every answer text of every graph, in graph order: equal runs, equal hash
} HarnessStats;
const HarnessStats *harness_stats(const Harness *h);
