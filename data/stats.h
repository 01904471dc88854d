// Per-service statistics (PAPER.md §1): for every service with at least min_graphs graphs, the
// latency of its graphs (max, p90, mean; a graph's latency is its root edge's finish) and its
// rare communications: (src, type, dst) present in fewer than rare_fraction of its graphs.
// The instruction data builder uses them for "Build a call graph with high latency" and
// "Include an edge from ... with ... type"; generation and eval load them from stats.json.
#pragma once
#include "data/graph.h"
#include <stdbool.h>
#include <stdint.h>

typedef struct { char *src, *dst; int type; } Comm;

typedef struct ServiceStats {
    char *service;
    int64_t graphs;
    int64_t latency_max, latency_p90;  // p90 = sorted[floor(0.9 n)], as the released code takes it
    double latency_mean;
    Comm *rare; int n_rare;            // sorted by (src, type, dst)
} ServiceStats;

typedef struct {
    ServiceStats *v; int n;            // sorted by service name
    int64_t graphs;                    // graphs counted
    int64_t skipped;                   // graphs without a root edge "0" (not counted)
    int min_graphs; double rare_fraction;
    int64_t merge_chunk;               // 0 = paper; else per-chunk statistics merged like the release
} Stats;

typedef struct {
    int min_graphs;          // 10
    double rare_fraction;    // 0.1
    // The released code computes statistics per input file and merges them: max of max, MIN of
    // p90, union of rare sets. merge_chunk = N reproduces that over consecutive chunks of N graphs.
    int64_t merge_chunk;
} StatsOpts;
void stats_opts_default(StatsOpts *o);

// Streaming construction.
typedef struct StatsBuilder StatsBuilder;
StatsBuilder *stats_builder_new(const StatsOpts *o);
void stats_builder_add(StatsBuilder *b, const CallGraph *g);   // any edge order
void stats_builder_finish(StatsBuilder *b, Stats *out);         // frees b
// graphs JSONL -> stats.json (atomic output); dies naming the file on errors. o NULL = defaults.
void stats_build_file(const char *graphs_jsonl, const char *out_json, const StatsOpts *o);

void stats_write_json(FILE *f, const Stats *s);
bool stats_load(const char *path, Stats *s, char *err, size_t errlen);
void stats_free(Stats *s);
const ServiceStats *stats_find(const Stats *s, const char *service);   // NULL when not covered
bool stats_is_rare(const ServiceStats *st, const char *src, int type, const char *dst);
// "high latency" for a graph of this service: latency >= p90 (paper); margin >= 0 adds the
// released code's requirement p90 - mean > margin (it used 5).
bool stats_high_latency(const ServiceStats *st, int64_t latency, double margin);
