// The call graph: one trace after cleaning, as a list of edges (calls). Every folder speaks this
// type: prepare builds it, the text formats render and parse it, generation assembles it, eval
// measures it. On disk it is one JSON object a line:
//   {"trace_id":"T_1","service":"S_000000001","edges":[["0","http","USER","MS_00001",0,8],...]}
// with edges [rpc_id, type, src, dst, start_ms, rt_ms] in rpc_id order.
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "util/progress.h"

// Communication types kept by the paper's cleaning (PAPER.md §1, rule 1).
typedef enum { RPC_HTTP, RPC_RPC, RPC_MC, RPC_DB, RPC_MQ, RPC_NTYPES } RpcType;
const char *rpc_type_name(int type);              // "http", ...
int rpc_type_parse(const char *s, size_t n);       // RpcType, or -1 for anything else

typedef struct {
    char *rpc_id;       // dotted path naming the call, read as text: "0", "0.1", "0.1.10"
    char *src, *dst;    // caller and callee microservice ("USER" for the root caller)
    int type;           // RpcType
    int64_t start_ms;   // start relative to the first call of the trace
    int64_t rt_ms;      // response time; the call finishes at start_ms + rt_ms
} Edge;

typedef struct {
    char *trace_id;     // "T_123" (may be empty for generated graphs)
    char *service;      // "S_000000123"
    Edge *edges;
    int n, cap;
} CallGraph;

void graph_init(CallGraph *g);
void graph_free(CallGraph *g);           // frees contents; g can be reused after graph_init
void graph_clear(CallGraph *g);          // drops edges and ids, keeps the allocation
void graph_set_ids(CallGraph *g, const char *trace_id, const char *service);
void graph_add_edge(CallGraph *g, const char *rpc_id, int type, const char *src, const char *dst,
                    int64_t start_ms, int64_t rt_ms);
void graph_copy(CallGraph *dst, const CallGraph *src);
static inline int64_t edge_finish(const Edge *e) { return e->start_ms + e->rt_ms; }

// rpc_id order: component by component, numerically ("0.9" < "0.10"); equal numbers with
// different text ("0.01" vs "0.1") are ordered by text so the order stays total.
int rpc_id_cmp(const char *a, const char *b);
int rpc_id_depth(const char *rpc_id);                 // "0" -> 1, "0.1.2" -> 3
void graph_sort(CallGraph *g);                        // edges into rpc_id order
int graph_depth(const CallGraph *g);                  // max rpc_id depth (one edge = 1)
int graph_find(const CallGraph *g, const char *rpc_id); // index in a SORTED graph, or -1

// Structural validity (PAPER.md §1 rule 4), checked on a sorted graph with unique rpc_ids.
typedef enum {
    GRAPH_OK = 0,
    GRAPH_EMPTY,             // no edges at all
    GRAPH_NO_ROOT,           // no edge "0"
    GRAPH_DUPLICATE_RPC_ID,  // two edges with the same rpc_id
    GRAPH_MISSING_PARENT,    // an intermediate edge is missing
    GRAPH_SRC_DST_MISMATCH,  // child's src != parent's dst
    GRAPH_CHILD_OUTLIVES,    // child finishes after its parent finishes
    GRAPH_TOO_DEEP,          // depth > max_depth
    GRAPH_NCHECKS
} GraphCheck;
const char *graph_check_name(GraphCheck c);   // "no_root", ... (the keys of prepare_report.json)
// "missing_parent at edge 0.1.1" (just the rule's name when no single edge is at fault); returns buf.
const char *graph_check_describe(const CallGraph *g, GraphCheck c, int bad_edge, char *buf, size_t len);
// Returns the first rule broken; *bad_edge (may be NULL) gets the offending edge index.
GraphCheck graph_validate(const CallGraph *g, int max_depth, int *bad_edge);

// Content identity for exact-duplicate removal: service and every edge field.
uint64_t graph_hash(const CallGraph *g);
bool graph_equal(const CallGraph *a, const CallGraph *b);

// ---- JSONL ----
void graph_write_json(FILE *f, const CallGraph *g);   // one line, with '\n'
// Parses one JSON line into g (cleared first). On error returns false with a message in err.
bool graph_parse_json(const char *line, size_t len, CallGraph *g, char *err, size_t errlen);

// Streams graphs from a JSONL file ('-' = stdin); errors name the file and line and exit.
typedef struct {
    FILE *f;
    const char *path;
    char *line; size_t cap;
    int64_t lineno;
    int64_t graphs;           // graphs returned so far
    Progress *progress;       // set by graph_reader_progress, ended by graph_reader_close
    double size;              // file size in bytes (the progress line's fraction), 0 when unknown
} GraphReader;
void graph_reader_open(GraphReader *r, const char *path);
// Turns on a progress line ("LABEL: N graphs, rate, MB/s, ETA") that graph_reader_next keeps up to
// date from the file position; graph_reader_close prints its last state.
void graph_reader_progress(GraphReader *r, const char *label);
bool graph_reader_next(GraphReader *r, CallGraph *g);  // false at end of file
// graph_reader_next, then sort and validate (no depth limit): consumers that need a valid tree
// (layers, text formats) stop on an invalid graph with an error naming the file, line and rule.
bool graph_reader_next_valid(GraphReader *r, CallGraph *g);
void graph_reader_close(GraphReader *r);
// Reads a whole JSONL file; returns the count, *out an array the caller frees with graphs_free.
int graphs_load(const char *path, CallGraph **out);
void graphs_free(CallGraph *gs, int n);
