// A call graph as layers (PAPER.md §2): a layer is the set of calls one microservice makes for
// one incoming call, i.e. the children of one edge; the root layer holds edge "0". Layers come in
// DFS pre-order, the order in which the recursive format writes them and generation produces them.
//
// Every condition field is computed from the graph:
//   num_edges          = edges of the layer + all their descendants
//   num_current_edges  = edges of the layer
//   num_subgraphs      = child layers
//   remaining_depth    = levels below the layer (0 = leaf layer)
//   start_edge_id      = local id (last rpc_id component) of the first edge
//   start_communication_at = start of the first edge
//   latency            = max(parent edge finish, latest finish in the layer), as the released code
//                        computes it; for the root layer and the layers under the root edge the
//                        root edge's rt stands for the parent finish (PAPER.md §2)
//   caller             = parent edge's source (absent for the root layer)
//   start_node         = the layer's source microservice
//
// Optional <split> pseudo-layers (the released code; PAPER.md §2): a layer with more than
// `split_threshold` edges is cut into consecutive chunks of 13..15 edges (for threshold 15),
// grouped under split layers of at most 5 children, recursively. A split layer has no edges of
// its own; its num_current_edges counts the edges it covers and its children partition num_edges.
#pragma once
#include "data/format.h"
#include "data/graph.h"

typedef struct Layer {
    int parent;                  // index of the parent layer (-1 for the root layer)
    int parent_edge;             // graph edge whose children these are (-1 for the root layer)
    int a, b;                    // its edges: kids of parent_edge, positions [a, b)
    bool split;                  // a <split> pseudo-layer
    int first_child, n_children; // children layer indices: Layers.child[first_child ...]
    Condition cond;              // every field (the root layer has no caller)
} Layer;

typedef struct LayerOpts {
    int split_threshold;         // 0 = never split; the release uses 15
    int group_max;               // children per split layer (release: 5)
    // Chunk length for a layer of n edges under parent edge `parent_rpc_id` ("" = root). NULL:
    // uniform in [threshold*4/5 + 1, threshold] from rng, as the release draws it.
    int (*chunk_len)(void *ctx, const char *parent_rpc_id, int n);
    void *ctx;
    Rng *rng;
} LayerOpts;

typedef struct Layers {
    const CallGraph *g;
    Layer *v; int n, cap;        // layers in DFS pre-order; v[0] is the root layer
    int *child; int n_child, cap_child;
    // per edge (index g->n is a virtual parent of the root edge): children in rpc_id order (CSR)
    int *kid_start, *kid, *sub, *ht;
    size_t cap_edges;
    // scratch for building split trees
    int *tmp; int n_tmp, cap_tmp;
} Layers;

void layers_init(Layers *L);
void layers_free(Layers *L);
// Decomposes g, which must be sorted by rpc_id and valid (graph_validate == GRAPH_OK).
// Returns false with err set when it is not (or a name is longer than FMT_NAME_MAX).
bool layers_build(Layers *L, const CallGraph *g, const LayerOpts *o, char *err, size_t errlen);
// The graph edge indices of layer l, in order; *n gets the count.
const int *layers_edges(const Layers *L, const Layer *l, int *n);
// Local id of an edge (last component of its rpc_id).
const char *edge_local_id(const Edge *e);
// The content of layer li as a generated answer would hold it: its edges (local ids, dst, type,
// start, finish) and one subgraph block (full condition) per child layer.
void layers_answer(const Layers *L, int li, LayerAnswer *a);
