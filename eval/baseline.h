// The probabilistic call-graph model of the Alibaba trace authors (Luo et al., SoCC'21; the
// paper's "probabilistic" baseline, PAPER.md §6), fitted on our training graphs:
//   structure     children count of an edge given its depth and type (mc/db calls are leaves in
//                 practice and the fit learns that), communication type of a child given its depth
//                 and its number of siblings (the authors' two tables)
//   names         the service from its popularity; a callee from the callees seen for the same
//                 (service, caller microservice, type), else (caller, type), else the global
//                 popularity of callees of that type
//   times         response times sampled from the training quantiles per (type, depth); children
//                 fit inside their parent: sequential when their response times fit end to end
//                 (siblings run sequentially ~85% of the time), else each placed uniformly
// Optionally the structure tables come from the authors' published distribution files
// (Erms graphGenerator/*.csv): baseline_apply_erms.
#pragma once
#include "data/graph.h"
#include "util/rng.h"
#include <stdbool.h>
#include <stdint.h>

#define BASE_MAX_DEPTH 15      // graphs deeper than the paper's limit are never produced
#define BASE_MAX_SIB 64        // sibling counts >= 64 share the last row of the type table
#define BASE_MAX_CHILDREN 4096 // a children count above this in a model file is corrupt
#define BASE_NQ 1001           // response-time quantiles kept per (depth, type): every 0.1%
#define BASE_MAX_RT 1000000000000LL  // 1e12 ms (31 years): larger times in a model or prompt are errors

// A categorical distribution over int keys (a children count or a name id), weights >= 0.
typedef struct {
    int32_t *key;
    double *w;
    int n, cap;
    double total;
} Hist;

// Response-time inverse CDF of one (depth, type): q[i] = quantile i/(BASE_NQ-1), n samples seen.
typedef struct {
    int64_t n;
    int64_t q[BASE_NQ];
} RtTable;

// Callee histograms keyed by a packed (service, caller, type) or (caller, type).
typedef struct {
    uint64_t *keys;   // 0 = empty slot (packed keys are never 0: see callee_key)
    int *slot;        // index into hists
    size_t cap, n;
    Hist *hists;
} HistMap;

typedef struct {
    // interned names: id 0 is "USER"; services and microservices share the table
    char **names;
    int n_names, cap_names;
    int *index; size_t index_cap;   // open-addressing name -> id (rebuilt on load)
    Hist services;                  // service ids weighted by graph count
    // [d][t]: children of an edge at depth d (1..15) of type t; [d][RPC_NTYPES] any type at d
    Hist children[BASE_MAX_DEPTH + 1][RPC_NTYPES + 1];
    // [d][s][t]: weight of type t for a call at depth d with s siblings (itself included);
    // [d][0] = any sibling count at d, [0][0] = any depth
    double types[BASE_MAX_DEPTH + 1][BASE_MAX_SIB + 1][RPC_NTYPES];
    HistMap by_svc_caller_type, by_caller_type;
    Hist by_type[RPC_NTYPES], any_callee;
    // [d][t] response times; [0][t] any depth; [0][RPC_NTYPES] everything
    RtTable rt[BASE_MAX_DEPTH + 1][RPC_NTYPES + 1];
    int64_t n_graphs;               // graphs the model was fitted on
    bool erms;                      // structure tables came from the Erms files
} BaseModel;

void base_init(BaseModel *m);
void base_free(BaseModel *m);

// Fits on a graphs JSONL file (streamed; a 1M-graph file is fine). Graphs failing graph_validate,
// or with a negative time, are skipped and counted in *skipped (may be NULL). Dies on unreadable input.
void base_fit_file(BaseModel *m, const char *path, int64_t *skipped);
// Same on graphs in memory (tests).
void base_fit(BaseModel *m, const CallGraph *gs, int n, int64_t *skipped);
// Replaces the structure tables (children counts, types) with the Erms distributions in dir
// (depthDistribution.csv, leafDistribution.csv, nodeDistribution.csv, communicationParadigm.csv).
// Returns false with a message naming the file and line on a missing or malformed file.
bool base_apply_erms(BaseModel *m, const char *dir, char *err, size_t errlen);

// Model file: "TLBASE\0\0", u32 version, u32 CRC32 of the payload, u64 payload bytes, payload.
void base_save(const BaseModel *m, const char *path);           // atomic; dies on I/O errors
bool base_load(BaseModel *m, const char *path, char *err, size_t errlen);

// What a sample should satisfy; negative fields are unconstrained.
typedef struct {
    const char *service;   // NULL: drawn from the service popularity
    int num_edges, depth;
    int64_t latency;       // root edge response time
} BaseRequest;

// Draws one graph into g. With num_edges/depth requested, draws up to max_tries skeletons and
// keeps the first that matches; returns false (g holds the closest draw) when none did.
// max_edges caps any draw (the fitted branching can be supercritical).
bool base_sample(const BaseModel *m, Rng *rng, const BaseRequest *req, int max_tries, int max_edges, CallGraph *g);

// ---- internals shared by baseline.c and baseline_io.c ----
int base_intern(BaseModel *m, const char *name);   // id of name, adding it
int base_lookup(const BaseModel *m, const char *name);  // id or -1
void hist_add(Hist *h, int32_t key, double w);
void hist_free(Hist *h);
Hist *histmap_get(HistMap *hm, uint64_t key, bool create);
const Hist *histmap_find(const HistMap *hm, uint64_t key);
void histmap_free(HistMap *hm);
