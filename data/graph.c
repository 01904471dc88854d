// See graph.h. Strings are owned per edge: graphs are small (median 3 edges, max ~100), so
// simple ownership beats an arena here.
#include "data/graph.h"
#include "util/json.h"
#include "util/rng.h"
#include "util/util.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *TYPE_NAMES[RPC_NTYPES] = {"http", "rpc", "mc", "db", "mq"};
const char *rpc_type_name(int type) { return type >= 0 && type < RPC_NTYPES ? TYPE_NAMES[type] : "?"; }
int rpc_type_parse(const char *s, size_t n) {
    for (int t = 0; t < RPC_NTYPES; t++)
        if (strlen(TYPE_NAMES[t]) == n && !memcmp(TYPE_NAMES[t], s, n)) return t;
    return -1;
}

void graph_init(CallGraph *g) { memset(g, 0, sizeof *g); }
void graph_clear(CallGraph *g) {
    for (int i = 0; i < g->n; i++) {
        free(g->edges[i].rpc_id); free(g->edges[i].src); free(g->edges[i].dst);
    }
    g->n = 0;
    free(g->trace_id); free(g->service);
    g->trace_id = g->service = NULL;
}
void graph_free(CallGraph *g) {
    graph_clear(g);
    free(g->edges);
    graph_init(g);
}
void graph_set_ids(CallGraph *g, const char *trace_id, const char *service) {
    free(g->trace_id); free(g->service);
    g->trace_id = xstrdup(trace_id ? trace_id : "");
    g->service = xstrdup(service ? service : "");
}
void graph_add_edge(CallGraph *g, const char *rpc_id, int type, const char *src, const char *dst,
                    int64_t start_ms, int64_t rt_ms) {
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 8;
        g->edges = xrealloc(g->edges, g->cap * sizeof *g->edges);
    }
    Edge *e = &g->edges[g->n++];
    e->rpc_id = xstrdup(rpc_id); e->src = xstrdup(src); e->dst = xstrdup(dst);
    e->type = type; e->start_ms = start_ms; e->rt_ms = rt_ms;
}
void graph_copy(CallGraph *dst, const CallGraph *src) {
    graph_clear(dst);
    graph_set_ids(dst, src->trace_id, src->service);
    for (int i = 0; i < src->n; i++) {
        const Edge *e = &src->edges[i];
        graph_add_edge(dst, e->rpc_id, e->type, e->src, e->dst, e->start_ms, e->rt_ms);
    }
}

int rpc_id_cmp(const char *a, const char *b) {
    const char *pa = a, *pb = b;
    for (;;) {
        // compare one component numerically: skip leading zeros, longer digit run is larger
        const char *sa = pa, *sb = pb;
        while (*sa == '0' && sa[1] >= '0' && sa[1] <= '9') sa++;
        while (*sb == '0' && sb[1] >= '0' && sb[1] <= '9') sb++;
        const char *ea = sa, *eb = sb;
        while (*ea && *ea != '.') ea++;
        while (*eb && *eb != '.') eb++;
        if (ea - sa != eb - sb) return ea - sa < eb - sb ? -1 : 1;
        int c = memcmp(sa, sb, ea - sa);
        if (c) return c < 0 ? -1 : 1;
        if (!*ea || !*eb) {
            if (!*ea && *eb) return -1;   // a is a prefix (ancestor) of b
            if (*ea && !*eb) return 1;
            break;
        }
        pa = ea + 1; pb = eb + 1;
    }
    int c = strcmp(a, b);  // same numbers, different text (leading zeros)
    return c < 0 ? -1 : c > 0;
}
int rpc_id_depth(const char *rpc_id) {
    int d = 1;
    for (const char *p = rpc_id; *p; p++) d += *p == '.';
    return d;
}
static int edge_cmp(const void *a, const void *b) {
    return rpc_id_cmp(((const Edge *)a)->rpc_id, ((const Edge *)b)->rpc_id);
}
void graph_sort(CallGraph *g) {
    if (g->n > 1) qsort(g->edges, g->n, sizeof *g->edges, edge_cmp);
}
int graph_depth(const CallGraph *g) {
    int d = 0;
    for (int i = 0; i < g->n; i++) {
        int k = rpc_id_depth(g->edges[i].rpc_id);
        if (k > d) d = k;
    }
    return d;
}
int graph_find(const CallGraph *g, const char *rpc_id) {
    int lo = 0, hi = g->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = rpc_id_cmp(g->edges[mid].rpc_id, rpc_id);
        if (c == 0) return mid;
        if (c < 0) lo = mid + 1; else hi = mid - 1;
    }
    return -1;
}

static const char *CHECK_NAMES[GRAPH_NCHECKS] = {
    "ok", "empty", "no_root", "duplicate_rpc_id", "missing_parent", "src_dst_mismatch", "child_outlives_parent", "too_deep"};
const char *graph_check_name(GraphCheck c) { return c < GRAPH_NCHECKS ? CHECK_NAMES[c] : "?"; }
const char *graph_check_describe(const CallGraph *g, GraphCheck c, int bad_edge, char *buf, size_t len) {
    if (bad_edge >= 0 && bad_edge < g->n) snprintf(buf, len, "%s at edge %s", graph_check_name(c), g->edges[bad_edge].rpc_id);
    else snprintf(buf, len, "%s", graph_check_name(c));
    return buf;
}

GraphCheck graph_validate(const CallGraph *g, int max_depth, int *bad_edge) {
    int dummy;
    if (!bad_edge) bad_edge = &dummy;
    *bad_edge = -1;
    if (g->n == 0) return GRAPH_EMPTY;
    if (graph_find(g, "0") < 0) return GRAPH_NO_ROOT;
    for (int i = 1; i < g->n; i++)
        if (rpc_id_cmp(g->edges[i - 1].rpc_id, g->edges[i].rpc_id) == 0) { *bad_edge = i; return GRAPH_DUPLICATE_RPC_ID; }
    // Parents are checked in order: missing parent, then src/dst, then timing, per edge in rpc order.
    char buf[256];
    for (int i = 0; i < g->n; i++) {
        const Edge *e = &g->edges[i];
        const char *dot = strrchr(e->rpc_id, '.');
        if (!dot) {
            if (strcmp(e->rpc_id, "0") != 0) { *bad_edge = i; return GRAPH_MISSING_PARENT; }  // a second root-level id
            continue;
        }
        size_t plen = (size_t)(dot - e->rpc_id);
        if (plen >= sizeof buf) { *bad_edge = i; return GRAPH_TOO_DEEP; }
        memcpy(buf, e->rpc_id, plen);
        buf[plen] = 0;
        int p = graph_find(g, buf);
        if (p < 0) { *bad_edge = i; return GRAPH_MISSING_PARENT; }
        if (strcmp(g->edges[p].dst, e->src) != 0) { *bad_edge = i; return GRAPH_SRC_DST_MISMATCH; }
        if (edge_finish(e) > edge_finish(&g->edges[p])) { *bad_edge = i; return GRAPH_CHILD_OUTLIVES; }
    }
    if (max_depth > 0 && graph_depth(g) > max_depth) return GRAPH_TOO_DEEP;
    return GRAPH_OK;
}

uint64_t graph_hash(const CallGraph *g) {
    uint64_t h = hash_bytes(g->service, strlen(g->service), 0x5eed);
    for (int i = 0; i < g->n; i++) {
        const Edge *e = &g->edges[i];
        h = hash_bytes(e->rpc_id, strlen(e->rpc_id), h);
        h = hash_bytes(e->src, strlen(e->src), h);
        h = hash_bytes(e->dst, strlen(e->dst), h);
        int64_t nums[3] = {e->type, e->start_ms, e->rt_ms};
        h = hash_bytes(nums, sizeof nums, h);
    }
    return h;
}
bool graph_equal(const CallGraph *a, const CallGraph *b) {
    if (a->n != b->n || strcmp(a->service, b->service)) return false;
    for (int i = 0; i < a->n; i++) {
        const Edge *x = &a->edges[i], *y = &b->edges[i];
        if (x->type != y->type || x->start_ms != y->start_ms || x->rt_ms != y->rt_ms || strcmp(x->rpc_id, y->rpc_id) ||
            strcmp(x->src, y->src) || strcmp(x->dst, y->dst))
            return false;
    }
    return true;
}

// ---- JSONL ----
void graph_write_json(FILE *f, const CallGraph *g) {
    fputs("{\"trace_id\":", f);
    json_write_string(f, g->trace_id ? g->trace_id : "");
    fputs(",\"service\":", f);
    json_write_string(f, g->service ? g->service : "");
    fputs(",\"edges\":[", f);
    for (int i = 0; i < g->n; i++) {
        const Edge *e = &g->edges[i];
        fputs(i ? ",[" : "[", f);
        json_write_string(f, e->rpc_id);
        fprintf(f, ",\"%s\",", rpc_type_name(e->type));
        json_write_string(f, e->src);
        fputc(',', f);
        json_write_string(f, e->dst);
        fprintf(f, ",%lld,%lld]", (long long)e->start_ms, (long long)e->rt_ms);
    }
    fputs("]}\n", f);
}

bool graph_parse_json(const char *line, size_t len, CallGraph *g, char *err, size_t errlen) {
    graph_clear(g);
    Json *root = json_parse(line, len, err, errlen);
    if (!root) return false;
    bool ok = false;
    Json *tid = json_get(root, "trace_id"), *svc = json_get(root, "service"), *edges = json_get(root, "edges");
    if (root->type != JSON_OBJECT) { snprintf(err, errlen, "expected a JSON object"); goto done; }
    if (!svc || svc->type != JSON_STRING) { snprintf(err, errlen, "missing string field \"service\""); goto done; }
    if (tid && tid->type != JSON_STRING) { snprintf(err, errlen, "\"trace_id\" must be a string"); goto done; }
    if (!edges || edges->type != JSON_ARRAY) { snprintf(err, errlen, "missing array field \"edges\""); goto done; }
    graph_set_ids(g, tid ? tid->str : "", svc->str);
    int k = 0;
    for (Json *e = edges->child; e; e = e->next, k++) {
        Json *f[6];
        for (int i = 0; i < 6; i++) f[i] = json_at(e, i);
        int64_t start, rt;
        if (e->type != JSON_ARRAY || e->n != 6 || f[0]->type != JSON_STRING || f[1]->type != JSON_STRING ||
            f[2]->type != JSON_STRING || f[3]->type != JSON_STRING || !json_int(f[4], &start) || !json_int(f[5], &rt)) {
            snprintf(err, errlen, "edge %d: expected [rpc_id, type, src, dst, start_ms, rt_ms]", k);
            goto done;
        }
        int type = rpc_type_parse(f[1]->str, strlen(f[1]->str));
        if (type < 0) { snprintf(err, errlen, "edge %d: unknown type \"%s\"", k, f[1]->str); goto done; }
        if (!f[0]->str[0]) { snprintf(err, errlen, "edge %d: empty rpc_id", k); goto done; }
        graph_add_edge(g, f[0]->str, type, f[2]->str, f[3]->str, start, rt);
    }
    ok = true;
done:
    json_free(root);
    return ok;
}

void graph_reader_open(GraphReader *r, const char *path) {
    memset(r, 0, sizeof *r);
    r->path = path;
    r->f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!r->f) fatal("cannot open %s: %s", path, strerror(errno));
}
bool graph_reader_next(GraphReader *r, CallGraph *g) {
    for (;;) {
        ssize_t n = getline(&r->line, &r->cap, r->f);
        if (n < 0) {
            if (ferror(r->f)) fatal("read failed on %s: %s", r->path, strerror(errno));
            return false;
        }
        r->lineno++;
        while (n > 0 && (r->line[n - 1] == '\n' || r->line[n - 1] == '\r')) n--;
        if (n == 0) continue;  // blank lines are allowed
        char err[256];
        if (!graph_parse_json(r->line, (size_t)n, g, err, sizeof err))
            fatal("%s:%lld: not a call graph: %s", r->path, (long long)r->lineno, err);
        if ((++r->graphs & 4095) == 0 && r->progress) {
            double pos = (double)ftell(r->f);
            progress_update(r->progress, (double)r->graphs, pos, r->size > 0 ? pos / r->size : -1);
        }
        return true;
    }
}
bool graph_reader_next_valid(GraphReader *r, CallGraph *g) {
    if (!graph_reader_next(r, g)) return false;
    graph_sort(g);
    int bad;
    GraphCheck c = graph_validate(g, 0, &bad);
    char why[300];
    if (c != GRAPH_OK)
        fatal("%s:%lld: invalid call graph (%s)", r->path, (long long)r->lineno, graph_check_describe(g, c, bad, why, sizeof why));
    return true;
}
void graph_reader_progress(GraphReader *r, const char *label) {
    r->progress = xmalloc(sizeof *r->progress);
    int64_t size = strcmp(r->path, "-") ? file_size(r->path) : -1;
    r->size = size > 0 ? (double)size : 0;
    progress_start(r->progress, label, "graphs", 0);
}
void graph_reader_close(GraphReader *r) {
    if (r->progress) {
        progress_end(r->progress, (double)r->graphs, r->size);
        free(r->progress);
    }
    if (r->f && r->f != stdin) fclose(r->f);
    free(r->line);
    memset(r, 0, sizeof *r);
}
int graphs_load(const char *path, CallGraph **out) {
    GraphReader r;
    graph_reader_open(&r, path);
    int n = 0;
    size_t cap = 0;
    CallGraph *gs = NULL;
    for (;;) {
        grow((void **)&gs, &cap, (size_t)n + 1, sizeof *gs);
        graph_init(&gs[n]);
        if (!graph_reader_next(&r, &gs[n])) { graph_free(&gs[n]); break; }
        n++;
    }
    graph_reader_close(&r);
    *out = gs;
    return n;
}
void graphs_free(CallGraph *gs, int n) {
    for (int i = 0; i < n; i++) graph_free(&gs[i]);
    free(gs);
}
