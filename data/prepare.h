// `tracellm prepare`: Alibaba CallGraph (v2022) / MSCallGraph (v2021) files -> clean call graphs,
// by the paper's rules (PAPER.md §1; the rules as implemented are in docs/PREPARE.md).
//
// Three passes, memory bounded by the bucket count, not the input size:
//   1. partition: stream every input, drop bad rows (counted by reason), append the rest to one of
//      B bucket files chosen by a hash of the traceid (so a trace spread over files meets itself);
//   2. assemble (threads, one bucket each): group rows by trace, keep the first row per rpc_id,
//      build and validate the graph, append valid graphs to a second set of files partitioned by
//      the top bits of the graph's CONTENT hash;
//   3. finish: per content partition drop exact duplicates (keeping the smallest trace_id), split by
//      the content hash and the seed, write train.jsonl / val.jsonl in content-hash order.
// A bucket or partition that outgrows its share of --mem-limit is split again on the fly by the next
// bits of its hash. Every step is independent of input order, thread count and bucket count: the
// outputs are byte-identical.
#pragma once
#include "data/csv.h"
#include "data/graph.h"
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *const *inputs; int n_inputs;
    const char *out_dir;
    double val_fraction;      // share of graphs held out
    uint64_t seed;            // split seed
    int max_depth;            // drop deeper graphs (0 = no limit)
    bool keep_duplicates;     // keep exact-duplicate graphs
    int threads;
    int64_t mem_limit;        // bytes; chooses the bucket count
    int buckets;              // 0 = derive from mem_limit (tests force a count)
    bool quiet;               // no summary on stdout
} PrepareOptions;

#define PREPARE_MAX_EXAMPLES 10

typedef struct {
    int64_t files, streams, streams_v2022, streams_v2021;
    int64_t bytes_in;                      // input file bytes
    // rows, each counted once, in the order the rules apply
    int64_t rows_read, rows_malformed, malformed[MAL_NREASONS];
    int64_t filtered_type, unknown_name, missing_rt, duplicate_rpc_id;
    int64_t rows_in_graphs;                // rows that reached a graph (= sum of edges built)
    int64_t rows_kept;                     // edges in train + val
    // graphs
    int64_t graphs_built, graph_drop[GRAPH_NCHECKS], duplicate_graph, graphs_kept, train, val;
    int n_examples;
    char examples[PREPARE_MAX_EXAMPLES][320];   // "file:line: reason" of the first malformed rows
    int buckets, threads;
    int split_files;                       // sub-files made when a bucket or partition outgrew its share
    double seconds, seconds_read, seconds_assemble, seconds_write;   // total and per pass
} PrepareReport;

// Runs all passes and writes DIR/train.jsonl, DIR/val.jsonl, DIR/prepare_report.json. Bad input
// files (truncated or corrupt gzip/tar, unknown header) are fatal: the error names the file and
// offset or line, and no output file is left behind.
void prepare_run(const PrepareOptions *o, PrepareReport *rep);
void prepare_print_summary(FILE *f, const PrepareReport *rep);

// The v2021 service id: "S_" + 9 digits from a hash of the root edge's callee and interface.
void prepare_v2021_service(const char *dm, const char *interface, char out[16]);

int cmd_prepare(int argc, char **argv);
