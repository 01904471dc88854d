// The built-in demo corpus: a synthetic "world" of services and microservices whose call graphs
// follow the published shape of the Alibaba v2022 traces (PAPER.md §7; docs/SYNTH.md gives each
// parameter and the fact behind it), written in the exact raw CallGraph CSV format with the real
// quirks injected, so the demo and the tests run the same ingestion path as real data.
//
// Two layers:
//   synth_graph()  the CLEAN call graph number i, as intended (valid by construction), plus the
//                  per-edge details the CSV needs (interface, pods). Tests and the writer share it.
//   synth_write()  graph -> raw rows -> quirks -> CSV(.gz); it also derives, per trace, the graph
//                  a correct implementation of the paper's cleaning must recover from those rows.
// Everything is a pure function of (config, seed, i): the same seed gives the same bytes.
#pragma once
#include "data/graph.h"
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int64_t graphs;          // traces to write
    uint64_t seed;
    int services;            // distinct services (S_ ids)
    int microservices;       // size of the shared microservice pool (MS_ ids)
    // shape
    double single;           // share of traces that are one edge (USER -> entry)
    double tail;             // share of traces with more than 40 edges (the heavy tail)
    int max_edges;           // largest template
    int max_depth;           // deepest template (the paper's cleaning drops depth > 15)
    double seq_share;        // P(a sibling starts after its predecessor returned)
    double zipf;             // popularity exponent of microservices inside each role
    double slow;             // mean per-service probability of a slow (high-latency) trace
    // quirks (rates per trace, edge or row as named)
    double dup_rate;         // per row: an exact duplicate row
    double unknown_rate;     // per edge: dm UNKNOWN on every row of the call (call lost)
    double callee_unknown;   // per rpc/http callee-side row: um UNKNOWN (real look, harmless)
    double unknown_type_rate;// per rpc/http edge: an extra "<id>.0" self row of type UNKNOWN
    double malformed_rate;   // per row: the row is replaced by a malformed line
    double root01_rate;      // per trace: the trace is logged from "0.1" with um UNKNOWN
    int interleave;          // rows of this many consecutive traces are shuffled together
} SynthConfig;

void synth_config_default(SynthConfig *c);

// Per-edge details that live only in the raw CSV, parallel to CallGraph.edges.
typedef struct {
    int um_pod, dm_pod;      // instance numbers: MS_x_POD_<pod>; um_pod < 0 for USER
    uint32_t iface;          // interface hash (rendered as 10 base64url characters)
} SynthEdgeInfo;

typedef struct Synth Synth;
// Builds the world (pools, services, templates) from c->seed. Dies on an impossible config.
Synth *synth_new(const SynthConfig *c);
void synth_free(Synth *s);
const SynthConfig *synth_config(const Synth *s);
// Clean call graph i (0 <= i < graphs), edges in rpc_id order; `info` (may be NULL) is grown to
// g->n entries. *base_ts gets the trace's absolute start timestamp in ms (may be NULL).
void synth_graph(Synth *s, int64_t i, CallGraph *g, SynthEdgeInfo **info, int *info_cap, int64_t *base_ts);
// The template the graph came from (for tests that check within-service structure).
int synth_graph_template(Synth *s, int64_t i, int *service);
// Share of graph mass that the world intends for each size class (what the stratified template
// sizes realise), for docs and tests: single edge, more than 40 edges.
void synth_intended_shares(const Synth *s, double *single, double *tail);

// What the writer did: counts per quirk, and the cleaning it expects.
typedef struct {
    int64_t graphs, rows, bytes;
    int64_t callee_rows, callee_unknown, callee_shifted, callee_identical;
    int64_t dup_rows, unknown_edges, unknown_type_rows, malformed_rows, root01_traces;
    int64_t expected_valid;   // traces whose rows still make a valid graph after cleaning
    int64_t expected_unique;  // ... after exact-duplicate removal
    int64_t clean_unique;     // intended graphs after exact-duplicate removal (no quirks)
} SynthStats;

// Writes the corpus to `path` (gzip when it ends in .gz, at zlib `level`) through a temporary
// name renamed at the end. `truth_path` (may be NULL) receives, as graphs JSONL, every unique
// graph a correct cleaning (PAPER.md §1) recovers from the rows; `clean_path` (may be NULL) the
// intended graphs before any quirk. `progress` shows a progress line on stderr.
void synth_write(Synth *s, const char *path, int level, const char *truth_path, const char *clean_path,
                 bool progress, SynthStats *st);

int cmd_synth(int argc, char **argv);
