// The probabilistic baseline (see baseline.h): fitting from graphs and sampling graphs.
// The model file and the Erms loader are in baseline_io.c, the command in cmd_baseline.c.
#include "eval/baseline.h"
#include "eval/metrics.h"
#include "util/util.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// Small containers

void hist_add(Hist *h, int32_t key, double w) {
    // most histograms are short (children counts, callees of one caller): a scan from the end
    // finds the recently added keys first
    for (int i = h->n - 1; i >= 0; i--)
        if (h->key[i] == key) { h->w[i] += w; h->total += w; return; }
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 4;
        h->key = xrealloc(h->key, h->cap * sizeof *h->key);
        h->w = xrealloc(h->w, h->cap * sizeof *h->w);
    }
    h->key[h->n] = key;
    h->w[h->n++] = w;
    h->total += w;
}
void hist_free(Hist *h) {
    free(h->key);
    free(h->w);
    memset(h, 0, sizeof *h);
}
// Draws a key with probability w/total; -1 when empty. Linear in n: the long histograms
// (services, callees of a type) are sorted by weight at fit time so the scan usually stops early.
static int hist_sample(const Hist *h, Rng *rng) {
    if (h->n == 0 || h->total <= 0) return -1;
    double u = rng_uniform(rng) * h->total, c = 0;
    for (int i = 0; i < h->n; i++) {
        c += h->w[i];
        if (u < c) return h->key[i];
    }
    for (int i = h->n - 1; i >= 0; i--)  // rounding left u at the very top: take the last nonzero
        if (h->w[i] > 0) return h->key[i];
    return -1;
}
typedef struct { double w; int32_t k; } WK;
static int cmp_wk(const void *a, const void *b) {
    const WK *x = a, *y = b;
    if (x->w != y->w) return x->w > y->w ? -1 : 1;
    return x->k < y->k ? -1 : x->k > y->k;
}
// Heaviest keys first (ties by key), so sampling scans are short and the order is deterministic.
static void hist_sort(Hist *h) {
    WK *v = xmalloc((h->n ? h->n : 1) * sizeof *v);
    for (int i = 0; i < h->n; i++) { v[i].w = h->w[i]; v[i].k = h->key[i]; }
    qsort(v, h->n, sizeof *v, cmp_wk);
    for (int i = 0; i < h->n; i++) { h->w[i] = v[i].w; h->key[i] = v[i].k; }
    free(v);
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL; x ^= x >> 33;
    return x;
}
Hist *histmap_get(HistMap *hm, uint64_t key, bool create) {
    if (create && 2 * (hm->n + 1) > hm->cap) {
        size_t cap = hm->cap ? hm->cap * 2 : 256;
        uint64_t *keys = xcalloc(cap, sizeof *keys);
        int *slot = xcalloc(cap, sizeof *slot);
        for (size_t i = 0; i < hm->cap; i++) {
            if (!hm->keys[i]) continue;
            size_t h = mix64(hm->keys[i]) & (cap - 1);
            while (keys[h]) h = (h + 1) & (cap - 1);
            keys[h] = hm->keys[i];
            slot[h] = hm->slot[i];
        }
        free(hm->keys); free(hm->slot);
        hm->keys = keys; hm->slot = slot; hm->cap = cap;
        hm->hists = xrealloc(hm->hists, cap / 2 * sizeof *hm->hists);
    }
    if (!hm->cap) return NULL;
    size_t h = mix64(key) & (hm->cap - 1);
    while (hm->keys[h] && hm->keys[h] != key) h = (h + 1) & (hm->cap - 1);
    if (hm->keys[h]) return &hm->hists[hm->slot[h]];
    if (!create) return NULL;
    hm->keys[h] = key;
    hm->slot[h] = (int)hm->n;
    memset(&hm->hists[hm->n], 0, sizeof hm->hists[hm->n]);
    return &hm->hists[hm->n++];
}
const Hist *histmap_find(const HistMap *hm, uint64_t key) { return histmap_get((HistMap *)hm, key, false); }
void histmap_free(HistMap *hm) {
    for (size_t i = 0; i < hm->n; i++) hist_free(&hm->hists[i]);
    free(hm->keys); free(hm->slot); free(hm->hists);
    memset(hm, 0, sizeof *hm);
}

// Packed callee keys. Ids are < 2^28; the top bit marks the key as used so it is never 0.
static uint64_t key_sct(int svc, int caller, int type) {
    return 1ULL << 63 | (uint64_t)(uint32_t)svc << 32 | (uint64_t)(uint32_t)caller << 3 | (uint64_t)type;
}
static uint64_t key_ct(int caller, int type) { return 1ULL << 62 | (uint64_t)(uint32_t)caller << 3 | (uint64_t)type; }

// ---------------------------------------------------------------------------------------------
// Names

static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return mix64(h);
}
int base_lookup(const BaseModel *m, const char *name) {
    if (!m->index_cap) return -1;
    size_t h = name_hash(name) & (m->index_cap - 1);
    while (m->index[h] >= 0) {
        if (!strcmp(m->names[m->index[h]], name)) return m->index[h];
        h = (h + 1) & (m->index_cap - 1);
    }
    return -1;
}
int base_intern(BaseModel *m, const char *name) {
    int id = base_lookup(m, name);
    if (id >= 0) return id;
    if (2 * (size_t)(m->n_names + 1) > m->index_cap) {
        size_t cap = m->index_cap ? m->index_cap * 2 : 1024;
        free(m->index);
        m->index = xmalloc(cap * sizeof *m->index);
        for (size_t i = 0; i < cap; i++) m->index[i] = -1;
        m->index_cap = cap;
        for (int i = 0; i < m->n_names; i++) {
            size_t h = name_hash(m->names[i]) & (cap - 1);
            while (m->index[h] >= 0) h = (h + 1) & (cap - 1);
            m->index[h] = i;
        }
    }
    if (m->n_names == m->cap_names) {
        m->cap_names = m->cap_names ? m->cap_names * 2 : 256;
        m->names = xrealloc(m->names, m->cap_names * sizeof *m->names);
    }
    id = m->n_names++;
    m->names[id] = xstrdup(name);
    size_t h = name_hash(name) & (m->index_cap - 1);
    while (m->index[h] >= 0) h = (h + 1) & (m->index_cap - 1);
    m->index[h] = id;
    return id;
}

void base_init(BaseModel *m) {
    memset(m, 0, sizeof *m);
    base_intern(m, "USER");  // id 0: the caller of every root edge
}
void base_free(BaseModel *m) {
    for (int i = 0; i < m->n_names; i++) free(m->names[i]);
    free(m->names); free(m->index);
    hist_free(&m->services);
    for (int d = 0; d <= BASE_MAX_DEPTH; d++)
        for (int t = 0; t <= RPC_NTYPES; t++) hist_free(&m->children[d][t]);
    histmap_free(&m->by_svc_caller_type);
    histmap_free(&m->by_caller_type);
    for (int t = 0; t < RPC_NTYPES; t++) hist_free(&m->by_type[t]);
    hist_free(&m->any_callee);
    memset(m, 0, sizeof *m);
}

// ---------------------------------------------------------------------------------------------
// Fitting

#define RESERVOIR 65536  // response-time samples kept per (depth, type) for the quantiles

typedef struct {
    int64_t *v;
    int64_t n, seen;
} Reservoir;

typedef struct {
    BaseModel *m;
    Reservoir res[BASE_MAX_DEPTH + 1][RPC_NTYPES + 1];
    // dense per-name accumulators for the long histograms (a scan per add would be quadratic)
    double *svc_w, *type_w[RPC_NTYPES];
    size_t dense_cap;
    Rng rng;  // reservoir replacement; fixed seed so a fit is deterministic
    int64_t skipped;
} Fitter;

static void reservoir_add(Fitter *f, Reservoir *r, int64_t x) {
    if (!r->v) r->v = xmalloc(RESERVOIR * sizeof *r->v);
    r->seen++;
    if (r->n < RESERVOIR) { r->v[r->n++] = x; return; }
    uint64_t j = rng_below(&f->rng, (uint64_t)r->seen);
    if (j < RESERVOIR) r->v[j] = x;
}

static void dense_grow(Fitter *f, int id) {
    if ((size_t)id < f->dense_cap) return;
    size_t cap = f->dense_cap ? f->dense_cap : 1024;
    while (cap <= (size_t)id) cap *= 2;
    f->svc_w = xrealloc(f->svc_w, cap * sizeof *f->svc_w);
    memset(f->svc_w + f->dense_cap, 0, (cap - f->dense_cap) * sizeof *f->svc_w);
    for (int t = 0; t < RPC_NTYPES; t++) {
        f->type_w[t] = xrealloc(f->type_w[t], cap * sizeof *f->type_w[t]);
        memset(f->type_w[t] + f->dense_cap, 0, (cap - f->dense_cap) * sizeof *f->type_w[t]);
    }
    f->dense_cap = cap;
}

static void fit_one(Fitter *f, const CallGraph *g) {
    BaseModel *m = f->m;
    if (graph_validate(g, BASE_MAX_DEPTH, NULL) != GRAPH_OK) { f->skipped++; return; }
    for (int i = 0; i < g->n; i++)  // negative or absurd times would break the quantile tables
        if (g->edges[i].rt_ms < 0 || g->edges[i].rt_ms > BASE_MAX_RT || g->edges[i].start_ms < 0) { f->skipped++; return; }
    m->n_graphs++;
    int svc = base_intern(m, g->service);
    dense_grow(f, svc);
    f->svc_w[svc] += 1;
    // children per edge: in a sorted valid graph the children of edge i are the edges whose
    // parent rpc_id is edge i's; count them by looking each edge's parent up
    int *nchild = xcalloc(g->n, sizeof *nchild), *parent = xmalloc(g->n * sizeof *parent);
    char buf[256];
    for (int i = 0; i < g->n; i++) {
        const char *dot = strrchr(g->edges[i].rpc_id, '.');
        parent[i] = -1;
        if (!dot) continue;
        size_t len = (size_t)(dot - g->edges[i].rpc_id);
        memcpy(buf, g->edges[i].rpc_id, len);  // len < 256: graph_validate rejects longer ids
        buf[len] = 0;
        parent[i] = graph_find(g, buf);
        nchild[parent[i]]++;
    }
    for (int i = 0; i < g->n; i++) {
        const Edge *e = &g->edges[i];
        int d = rpc_id_depth(e->rpc_id), t = e->type;
        int sib = parent[i] < 0 ? 1 : nchild[parent[i]];
        int s = sib < BASE_MAX_SIB ? sib : BASE_MAX_SIB;
        hist_add(&m->children[d][t], nchild[i], 1);
        hist_add(&m->children[d][RPC_NTYPES], nchild[i], 1);
        m->types[d][s][t] += 1;
        m->types[d][0][t] += 1;
        m->types[0][0][t] += 1;
        int caller = base_intern(m, e->src), callee = base_intern(m, e->dst);
        dense_grow(f, callee > caller ? callee : caller);
        hist_add(histmap_get(&m->by_svc_caller_type, key_sct(svc, caller, t), true), callee, 1);
        hist_add(histmap_get(&m->by_caller_type, key_ct(caller, t), true), callee, 1);
        f->type_w[t][callee] += 1;
        reservoir_add(f, &f->res[d][t], e->rt_ms);
        reservoir_add(f, &f->res[0][t], e->rt_ms);
        reservoir_add(f, &f->res[0][RPC_NTYPES], e->rt_ms);
    }
    free(nchild);
    free(parent);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void fit_finish(Fitter *f) {
    BaseModel *m = f->m;
    for (int id = 0; id < m->n_names && (size_t)id < f->dense_cap; id++) {
        if (f->svc_w[id] > 0) hist_add(&m->services, id, f->svc_w[id]);
        for (int t = 0; t < RPC_NTYPES; t++)
            if (f->type_w[t][id] > 0) {
                hist_add(&m->by_type[t], id, f->type_w[t][id]);
                hist_add(&m->any_callee, id, f->type_w[t][id]);
            }
    }
    hist_sort(&m->services);
    hist_sort(&m->any_callee);
    for (int t = 0; t < RPC_NTYPES; t++) hist_sort(&m->by_type[t]);
    for (size_t i = 0; i < m->by_caller_type.n; i++) hist_sort(&m->by_caller_type.hists[i]);
    for (size_t i = 0; i < m->by_svc_caller_type.n; i++) hist_sort(&m->by_svc_caller_type.hists[i]);
    for (int d = 0; d <= BASE_MAX_DEPTH; d++)
        for (int t = 0; t <= RPC_NTYPES; t++) {
            hist_sort(&m->children[d][t]);
            Reservoir *r = &f->res[d][t];
            RtTable *q = &m->rt[d][t];
            q->n = r->seen;
            if (r->n) {
                qsort(r->v, r->n, sizeof *r->v, cmp_i64);
                for (int i = 0; i < BASE_NQ; i++) q->q[i] = r->v[(int64_t)((double)i / (BASE_NQ - 1) * (r->n - 1) + 0.5)];
            }
            free(r->v);
        }
    free(f->svc_w);
    for (int t = 0; t < RPC_NTYPES; t++) free(f->type_w[t]);
}

static void fitter_init(Fitter *f, BaseModel *m) {
    memset(f, 0, sizeof *f);
    f->m = m;
    rng_seed(&f->rng, 0x6a5e11e);
}

void base_fit(BaseModel *m, const CallGraph *gs, int n, int64_t *skipped) {
    Fitter f;
    fitter_init(&f, m);
    CallGraph g;
    graph_init(&g);
    for (int i = 0; i < n; i++) {
        graph_copy(&g, &gs[i]);
        graph_sort(&g);
        fit_one(&f, &g);
    }
    graph_free(&g);
    fit_finish(&f);
    if (skipped) *skipped = f.skipped;
}

void base_fit_file(BaseModel *m, const char *path, int64_t *skipped) {
    Fitter f;
    fitter_init(&f, m);
    GraphReader r;
    graph_reader_open(&r, path);
    graph_reader_progress(&r, "baseline fit");
    CallGraph g;
    graph_init(&g);
    while (graph_reader_next(&r, &g)) {
        graph_sort(&g);
        fit_one(&f, &g);
    }
    graph_free(&g);
    graph_reader_close(&r);
    fit_finish(&f);
    if (skipped) *skipped = f.skipped;
}

// ---------------------------------------------------------------------------------------------
// Sampling. First a skeleton (parent, depth, type per edge) that is cheap to redraw when a size
// or depth is requested, then names and times.

typedef struct {
    int parent, depth, type, index;  // index: 1-based position among its siblings
} Node;

static int sample_type(const BaseModel *m, Rng *rng, int d, int sib) {
    int s = sib < BASE_MAX_SIB ? sib : BASE_MAX_SIB;
    const double *rows[3] = {m->types[d][s], m->types[d][0], m->types[0][0]};
    for (int k = 0; k < 3; k++) {
        double tot = 0;
        for (int t = 0; t < RPC_NTYPES; t++) tot += rows[k][t];
        if (tot <= 0) continue;
        double u = rng_uniform(rng) * tot, c = 0;
        for (int t = 0; t < RPC_NTYPES; t++) {
            c += rows[k][t];
            if (u < c && rows[k][t] > 0) return t;
        }
        for (int t = RPC_NTYPES - 1; t >= 0; t--)
            if (rows[k][t] > 0) return t;
    }
    return RPC_HTTP;
}

static int sample_children(const BaseModel *m, Rng *rng, int d, int t) {
    if (d >= BASE_MAX_DEPTH) return 0;
    const Hist *h = m->children[d][t].n ? &m->children[d][t] : &m->children[d][RPC_NTYPES];
    int k = hist_sample(h, rng);
    return k < 0 ? 0 : k;
}

// Grows a skeleton breadth first. Stops early (returns false) once it can no longer meet the
// request: more edges than asked, deeper than asked. *n_out nodes are valid either way.
static bool draw_skeleton(const BaseModel *m, Rng *rng, const BaseRequest *q, int max_edges, Node *nodes, int *n_out,
                          int *depth_out) {
    int n = 0, depth = 1;
    nodes[n++] = (Node){-1, 1, sample_type(m, rng, 1, 1), 0};
    bool ok = true;
    for (int i = 0; i < n; i++) {
        int k = sample_children(m, rng, nodes[i].depth, nodes[i].type);
        if (n + k > max_edges) k = max_edges - n;
        for (int c = 1; c <= k; c++) {
            int d = nodes[i].depth + 1;
            nodes[n++] = (Node){i, d, sample_type(m, rng, d, k), c};
            if (d > depth) depth = d;
        }
        if ((q->num_edges > 0 && n > q->num_edges) || (q->depth > 0 && depth > q->depth)) { ok = false; break; }
    }
    *n_out = n;
    *depth_out = depth;
    return ok && (q->num_edges <= 0 || n == q->num_edges) && (q->depth <= 0 || depth == q->depth);
}

static int64_t sample_rt(const BaseModel *m, Rng *rng, int d, int t) {
    const RtTable *r = m->rt[d][t].n ? &m->rt[d][t] : m->rt[0][t].n ? &m->rt[0][t] : &m->rt[0][RPC_NTYPES];
    if (!r->n) return 0;
    double pos = rng_uniform(rng) * (BASE_NQ - 1);
    int i = (int)pos;
    double f = pos - i;
    double v = i + 1 < BASE_NQ ? r->q[i] * (1 - f) + r->q[i + 1] * f : (double)r->q[i];
    return (int64_t)llround(v);
}

static int sample_callee(const BaseModel *m, Rng *rng, int svc, int caller, int t) {
    const Hist *h = svc >= 0 ? histmap_find(&m->by_svc_caller_type, key_sct(svc, caller, t)) : NULL;
    if (!h || !h->n) h = histmap_find(&m->by_caller_type, key_ct(caller, t));
    if (!h || !h->n) h = &m->by_type[t];
    if (!h->n) h = &m->any_callee;
    return hist_sample(h, rng);
}

bool base_sample(const BaseModel *m, Rng *rng, const BaseRequest *q, int max_tries, int max_edges, CallGraph *g) {
    if (max_edges < 1) max_edges = 1;
    if (q->num_edges > max_edges) max_edges = q->num_edges;
    Node *nodes = xmalloc(max_edges * sizeof *nodes), *best = xmalloc(max_edges * sizeof *best);
    int n = 0, nbest = 0, depth, bestdist = -1;
    bool met = false;
    bool constrained = q->num_edges > 0 || q->depth > 0;
    for (int tries = 0; tries < (constrained ? max_tries : 1) && !met; tries++) {
        met = draw_skeleton(m, rng, q, max_edges, nodes, &n, &depth);
        if (!constrained) met = true;
        int dist = (q->num_edges > 0 ? abs(n - q->num_edges) : 0) + (q->depth > 0 ? abs(depth - q->depth) : 0);
        if (met || bestdist < 0 || dist < bestdist) {
            memcpy(best, nodes, n * sizeof *nodes);
            nbest = n;
            bestdist = dist;
        }
    }
    // names
    int svc = -1;
    const char *svc_name = q->service;
    if (svc_name) svc = base_lookup(m, svc_name);
    else {
        svc = hist_sample(&m->services, rng);
        svc_name = svc >= 0 ? m->names[svc] : "S_unknown";
    }
    graph_clear(g);
    graph_set_ids(g, "", svc_name);
    int *dst = xmalloc(nbest * sizeof *dst);
    int64_t *start = xmalloc(nbest * sizeof *start), *rt = xmalloc(nbest * sizeof *rt);
    char **ids = xmalloc(nbest * sizeof *ids);
    for (int i = 0; i < nbest; i++) {
        const Node *v = &best[i];
        int caller = v->parent < 0 ? 0 : dst[v->parent];
        dst[i] = caller < 0 ? -1 : sample_callee(m, rng, svc, caller, v->type);
        if (v->parent < 0) ids[i] = xstrdup("0");
        else {
            size_t len = strlen(ids[v->parent]) + 12;
            ids[i] = xmalloc(len);
            snprintf(ids[i], len, "%s.%d", ids[v->parent], v->index);
        }
    }
    // times, top down: the root from the request or the (depth 1, type) quantiles; then each
    // edge's children inside it. Children are consecutive in `best` (breadth-first growth).
    start[0] = 0;
    rt[0] = q->latency >= 0 ? q->latency : sample_rt(m, rng, 1, best[0].type);
    for (int i = 0, c = 1; i < nbest; i++) {
        int first = c;
        while (c < nbest && best[c].parent == i) c++;
        int k = c - first;
        if (!k) continue;
        int64_t dur = rt[i], sum = 0;
        for (int j = first; j < c; j++) {
            // redraw a few times for a time that fits; a parent shorter than every draw gets a
            // uniform share of its own duration (the model has no better information there)
            int64_t x = -1;
            for (int tries = 0; tries < 8 && (x < 0 || x > dur); tries++) x = sample_rt(m, rng, best[j].depth, best[j].type);
            if (x < 0 || x > dur) x = (int64_t)rng_below(rng, (uint64_t)dur + 1);
            rt[j] = x;
            sum += x;
        }
        if (sum <= dur) {
            // sequential: spread the slack into k+1 random gaps
            int64_t slack = dur - sum, t = start[i];
            double *w = xmalloc((k + 1) * sizeof *w), wt = 0;
            for (int j = 0; j <= k; j++) { w[j] = rng_uniform(rng) + 1e-9; wt += w[j]; }
            double acc = 0;
            for (int j = 0; j < k; j++) {
                acc += w[j];
                int64_t gap_end = (int64_t)floor(slack * (acc / wt));
                start[first + j] = t + gap_end;
                t += rt[first + j];
            }
            free(w);
        } else {
            for (int j = first; j < c; j++) start[j] = start[i] + (int64_t)rng_below(rng, (uint64_t)(dur - rt[j]) + 1);
        }
    }
    for (int i = 0; i < nbest; i++) {
        const char *src = best[i].parent < 0 ? "USER" : (dst[best[i].parent] >= 0 ? m->names[dst[best[i].parent]] : "MS_unknown");
        const char *d = dst[i] >= 0 ? m->names[dst[i]] : "MS_unknown";
        graph_add_edge(g, ids[i], best[i].type, src, d, start[i], rt[i]);
        free(ids[i]);
    }
    graph_sort(g);
    free(ids); free(dst); free(start); free(rt); free(nodes); free(best);
    return met;
}
