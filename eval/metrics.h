// Distribution metrics: how close a set of synthetic call graphs is to a set of real ones.
// Every definition here is written out in docs/EVAL.md; the short version:
//   validity      share of synthetic graphs passing graph_validate, with the count per broken rule
//   KL top-100    KL(P_real || Q_syn) over the 100 most frequent real (src, dst, type) calls, both
//                 renormalised over those 100 calls; a call the synthetic side never made gets
//                 a pseudo-count of 0.5 so KL stays finite
//   heavy hitters |topK_real ∩ topK_syn| / K over microservices ranked by calls received
//   EMD           1-D Wasserstein-1 between the two empirical distributions, divided by the
//                 real distribution's mean absolute deviation around its median
//   memorization  share of synthetic graphs equal to a training graph (exact, and structure only)
//   requests      for lines carrying "request":{num_edges, depth, latency}: the share matched
#pragma once
#include "data/graph.h"
#include "data/stats.h"
#include <stdbool.h>
#include <stdint.h>

#define EVAL_MAX_DEPTH 16   // per-depth tables: depth 1..15 and a last row for anything deeper
#define EVAL_N_HH 6         // heavy-hitter K values: 10, 20, 50, 100, 200, 500
extern const int EVAL_HH_K[EVAL_N_HH];
#define EVAL_GRID_EDGES 30  // the accuracy grid: num_edges 1..30 x depth 1..6
#define EVAL_GRID_DEPTH 6
#define EVAL_KL_TOP 100
#define EVAL_KL_ALPHA 0.5   // pseudo-count of a top call absent from the synthetic side (kl_top_calls)

// What a conditioned generation asked for, read from the optional "request" object of a line:
//   "request":{"num_edges":7,"depth":3,"latency":8,"high_latency":true,
//              "include_edge":["MS_1","MS_2","rpc"]}     (every key optional)
typedef struct {
    bool has_edges, has_depth, has_latency;
    int num_edges, depth;
    int64_t latency;
    bool high_latency;        // "Build a call graph with high latency": root finish >= the service's p90
    bool has_include_edge;    // "Include an edge from SRC to DST with TYPE type"
    char *inc_src, *inc_dst;  // owned (request_free)
    int inc_type;
} GraphRequest;

// Graphs of one JSONL file, edges sorted into rpc_id order.
typedef struct {
    CallGraph *g;
    GraphRequest *req;  // one per graph (all false when the line had no "request")
    int n;
    int n_requests;     // lines that carried a request
} GraphSet;

// Reads a graphs JSONL file; a bad line is fatal with file:line and the reason.
void graphset_load(GraphSet *s, const char *path);
// Wraps graphs built in memory (takes ownership of g, sorts every graph); req may be NULL.
void graphset_wrap(GraphSet *s, CallGraph *g, int n, GraphRequest *req);
void graphset_free(GraphSet *s);
// Parses the optional "request" member of one JSONL line. Returns false with a message on a
// malformed request (wrong types, negative values); a line without "request" is fine.
bool request_parse_json(const char *line, size_t len, GraphRequest *r, char *err, size_t errlen);
void request_free(GraphRequest *r);
static inline bool request_any(const GraphRequest *q) {
    return q->has_edges || q->has_depth || q->has_latency || q->high_latency || q->has_include_edge;
}

// ---- primitives (exposed for tests) ----
// Wasserstein-1 between the empirical distributions of a[0..na) and b[0..nb): the area between
// the two CDFs. Sorts a and b in place. 0 when either is empty.
double emd_1d(double *a, int na, double *b, int nb);
// mean |x - median(x)| of x[0..n) (x sorted in place): W1 between x and a point mass at its median,
// i.e. how far the best constant "generator" is from the real data. The EMD normaliser.
double mad_median(double *x, int n);

// Hashes that identify a graph for memorization, independent of trace_id. Graph must be sorted.
uint64_t graph_hash_exact(const CallGraph *g);      // service + every edge field incl. times
uint64_t graph_hash_structure(const CallGraph *g);  // service + rpc_id, type, src, dst (no times)

// Training-set index for the memorization metric: sorted hash arrays, built by streaming the file
// so a 1M-graph training set costs 16 bytes a graph.
typedef struct {
    uint64_t *exact, *structure;
    int64_t n;
} MemoIndex;
void memo_index_build(MemoIndex *m, const char *train_path);
void memo_index_from(MemoIndex *m, const GraphSet *train);
void memo_index_free(MemoIndex *m);

// ---- the full comparison ----
// A sample of one quantity for real and synthetic (sorted after eval_compute), with its EMD.
typedef struct {
    const char *name;      // "response time (ms)"
    double *real, *syn;    // sorted values
    int n_real, n_syn;
    double emd;            // raw W1, in the quantity's unit
    double scale;          // the normaliser: mad_median(real) (1 when that is 0, see EVAL.md)
    double emd_norm;       // emd / scale
} Sample;
enum { S_INDEG, S_OUTDEG, S_RT, S_SIZE, S_DEPTH, S_N };

typedef struct {
    int n_real, n_syn;
    // validity: counts per GraphCheck over the synthetic set (and the real set for reference)
    int64_t syn_checks[GRAPH_NCHECKS], real_checks[GRAPH_NCHECKS];
    double validity;
    // KL of the top-100 real calls
    double kl;
    int kl_calls;          // calls in the top set (min(100, distinct real calls))
    double kl_real_mass;   // share of all real calls that the top set covers
    double kl_syn_mass;    // share of all synthetic calls that fall in the top set
    // heavy hitters
    int hh_keff[EVAL_N_HH];     // min(K, distinct real microservices)
    double hh_recovery[EVAL_N_HH];
    // EMDs and the samples behind them
    Sample s[S_N];
    // per depth (index d-1; the last row collects depth >= EVAL_MAX_DEPTH)
    int64_t depth_real[EVAL_MAX_DEPTH], depth_syn[EVAL_MAX_DEPTH];  // graphs by depth
    double width_real[EVAL_MAX_DEPTH], width_syn[EVAL_MAX_DEPTH];   // mean edges at depth d, over graphs reaching d
    int64_t type_real[EVAL_MAX_DEPTH][RPC_NTYPES], type_syn[EVAL_MAX_DEPTH][RPC_NTYPES];
    // memorization (when a training index is given)
    bool have_train;
    int64_t n_train, memo_exact, memo_structure;
    // conditioned generation (synthetic lines with a request)
    int64_t req_n, req_edges_n, req_edges_ok, req_depth_n, req_depth_ok, req_both_n, req_both_ok,
        req_lat_n, req_lat_exact, req_lat_10pct;
    // special instructions: high latency (scored only for services with a real p90), an included
    // edge, and both together
    int64_t req_hl_n, req_hl_ok, req_hl_unscored, req_ie_n, req_ie_ok, req_hlie_n, req_hlie_ok;
    // the paper's accuracy grid (PAPER.md §6) over requests with num_edges 1..30 and depth 1..6:
    // [e][d] counts and successes (valid AND exact num_edges AND exact depth)
    int64_t grid_n[EVAL_GRID_EDGES + 1][EVAL_GRID_DEPTH + 1], grid_ok[EVAL_GRID_EDGES + 1][EVAL_GRID_DEPTH + 1];
} EvalResult;

// stats (may be NULL): per-service statistics (data/stats.h, `tracellm stats`) for the high-latency
// instruction; NULL computes them from the real set with the same definition (>= 10 graphs,
// p90 = sorted[floor(0.9 n)]), so eval and the instruction data agree on what "high" means.
void eval_compute(const GraphSet *real, const GraphSet *syn, const MemoIndex *train, const Stats *stats, EvalResult *r);
// Scores one generated graph against its request (no-op without one) into r's request counters and
// accuracy grid: what eval_compute does for every line, and `tracellm eval grid` for every sample.
// g must be sorted (graph_sort); stats as for eval_compute, may be NULL when no high latency is asked.
void eval_add_request(EvalResult *r, const CallGraph *g, const GraphRequest *q, const Stats *stats);
void eval_result_free(EvalResult *r);

// Pieces of eval_compute, exposed so tests can check each definition by hand.
double kl_top_calls(const GraphSet *real, const GraphSet *syn, int top, int *n_calls,
                    double *real_mass, double *syn_mass);
// recovery[i] for K = ks[i]; keff[i] = min(K, distinct real microservices)
void heavy_hitters(const GraphSet *real, const GraphSet *syn, const int *ks, int nk, double *recovery, int *keff);
