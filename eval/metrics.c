// See metrics.h and docs/EVAL.md. Reads top to bottom: loading, the primitives (EMD, KL, heavy
// hitters, hashes), then eval_compute gathering everything for the report.
#include "eval/metrics.h"
#include "data/stats.h"
#include "util/json.h"
#include "util/progress.h"
#include "util/rng.h"
#include "util/util.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const int EVAL_HH_K[EVAL_N_HH] = {10, 20, 50, 100, 200, 500};

// ---------------------------------------------------------------------------------------------
// Loading

bool request_parse_json(const char *line, size_t len, GraphRequest *r, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    Json *root = json_parse(line, len, err, errlen);
    if (!root) return false;
    bool ok = true;
    Json *q = root->type == JSON_OBJECT ? json_get(root, "request") : NULL;
    if (q && q->type != JSON_NULL) {
        if (q->type != JSON_OBJECT) { snprintf(err, errlen, "\"request\" must be an object"); ok = false; goto done; }
        const char *keys[3] = {"num_edges", "depth", "latency"};
        for (int k = 0; k < 3; k++) {
            Json *v = json_get(q, keys[k]);
            if (!v || v->type == JSON_NULL) continue;
            int64_t x;
            if (!json_int(v, &x) || x < 0 || (k < 2 && x > 1000000)) {
                snprintf(err, errlen, "request.%s must be a non-negative integer", keys[k]);
                ok = false;
                goto done;
            }
            if (k == 0) { r->has_edges = true; r->num_edges = (int)x; }
            if (k == 1) { r->has_depth = true; r->depth = (int)x; }
            if (k == 2) { r->has_latency = true; r->latency = x; }
        }
        Json *hl = json_get(q, "high_latency");
        if (hl && hl->type != JSON_NULL) {
            if (hl->type != JSON_BOOL) { snprintf(err, errlen, "request.high_latency must be true or false"); ok = false; goto done; }
            r->high_latency = hl->b;
        }
        // include_edge: [src, dst, type] or {"src":..,"dst":..,"type":..}
        Json *ie = json_get(q, "include_edge");
        if (ie && ie->type != JSON_NULL) {
            Json *f[3] = {NULL, NULL, NULL};
            if (ie->type == JSON_ARRAY && ie->n == 3) for (int k = 0; k < 3; k++) f[k] = json_at(ie, k);
            if (ie->type == JSON_OBJECT) { f[0] = json_get(ie, "src"); f[1] = json_get(ie, "dst"); f[2] = json_get(ie, "type"); }
            int t = f[2] && f[2]->type == JSON_STRING ? rpc_type_parse(f[2]->str, strlen(f[2]->str)) : -1;
            if (!f[0] || f[0]->type != JSON_STRING || !f[1] || f[1]->type != JSON_STRING || t < 0) {
                snprintf(err, errlen, "request.include_edge must be [src, dst, type] with a known type");
                ok = false;
                goto done;
            }
            r->has_include_edge = true;
            r->inc_src = xstrdup(f[0]->str);
            r->inc_dst = xstrdup(f[1]->str);
            r->inc_type = t;
        }
    }
done:
    json_free(root);
    if (!ok) request_free(r);
    return ok;
}

void request_free(GraphRequest *r) {
    free(r->inc_src);
    free(r->inc_dst);
    memset(r, 0, sizeof *r);
}

void graphset_load(GraphSet *s, const char *path) {
    memset(s, 0, sizeof *s);
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) fatal("cannot open %s: %s", path, strerror(errno));
    char *line = NULL, err[256];
    size_t cap = 0, gcap = 0, rcap = 0;
    int64_t lineno = 0;
    ssize_t n;
    Progress pr;
    double size = (double)file_size(path), bytes = 0;
    progress_start(&pr, "eval: reading graphs", "graphs", 0);
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        bytes += (double)n;
        if ((lineno & 4095) == 0) progress_update(&pr, (double)s->n, bytes, size > 0 ? bytes / size : -1);
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
        if (n == 0) continue;
        grow((void **)&s->g, &gcap, (size_t)s->n + 1, sizeof *s->g);
        grow((void **)&s->req, &rcap, (size_t)s->n + 1, sizeof *s->req);
        CallGraph *g = &s->g[s->n];
        graph_init(g);
        if (!graph_parse_json(line, (size_t)n, g, err, sizeof err))
            fatal("%s:%lld: not a call graph: %s", path, (long long)lineno, err);
        // a second parse for the request: graph_parse_json ignores unknown keys by design
        if (memmem(line, (size_t)n, "\"request\"", 9)) {
            if (!request_parse_json(line, (size_t)n, &s->req[s->n], err, sizeof err))
                fatal("%s:%lld: bad request: %s", path, (long long)lineno, err);
        } else memset(&s->req[s->n], 0, sizeof s->req[s->n]);
        s->n_requests += request_any(&s->req[s->n]);
        graph_sort(g);
        s->n++;
    }
    if (ferror(f)) fatal("read failed on %s: %s", path, strerror(errno));
    progress_end(&pr, (double)s->n, bytes);
    free(line);
    if (f != stdin) fclose(f);
}

void graphset_wrap(GraphSet *s, CallGraph *g, int n, GraphRequest *req) {
    memset(s, 0, sizeof *s);
    s->g = g;
    s->n = n;
    s->req = req ? req : xcalloc(n > 0 ? n : 1, sizeof *s->req);
    for (int i = 0; i < n; i++) {
        graph_sort(&g[i]);
        s->n_requests += request_any(&s->req[i]);
    }
}

void graphset_free(GraphSet *s) {
    for (int i = 0; i < s->n; i++) request_free(&s->req[i]);
    graphs_free(s->g, s->n);
    free(s->req);
    memset(s, 0, sizeof *s);
}

// ---------------------------------------------------------------------------------------------
// Earth mover's distance in one dimension

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// W1 = ∫ |F_a(x) - F_b(x)| dx. Walk both sorted arrays; between consecutive distinct values the
// two CDFs are constant, so the integral is a sum of |Fa - Fb| * gap.
double emd_1d(double *a, int na, double *b, int nb) {
    if (na == 0 || nb == 0) return 0;
    qsort(a, na, sizeof *a, cmp_double);
    qsort(b, nb, sizeof *b, cmp_double);
    int i = 0, j = 0;
    double w = 0, x = a[0] < b[0] ? a[0] : b[0];
    while (i < na || j < nb) {
        // advance past every value equal to x on both sides, then integrate to the next value
        while (i < na && a[i] <= x) i++;
        while (j < nb && b[j] <= x) j++;
        if (i == na && j == nb) break;
        double next = i == na ? b[j] : j == nb ? a[i] : (a[i] < b[j] ? a[i] : b[j]);
        w += fabs((double)i / na - (double)j / nb) * (next - x);
        x = next;
    }
    return w;
}

double mad_median(double *x, int n) {
    if (n == 0) return 0;
    qsort(x, n, sizeof *x, cmp_double);
    double med = n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
    double s = 0;
    for (int i = 0; i < n; i++) s += fabs(x[i] - med);
    return s / n;
}

// ---------------------------------------------------------------------------------------------
// A string -> (real count, synthetic count) table, open addressing. Keys are copied.

typedef struct { char *key; int64_t c[2]; int mark; } Cell;
typedef struct { Cell *cells; size_t cap, n; } Counter;

static uint64_t str_hash(const char *s) { return hash_bytes(s, strlen(s), 0x9e3779b97f4a7c15ULL); }
static void counter_add(Counter *t, const char *key, int side, int64_t k) {
    if (2 * (t->n + 1) > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 1024;
        Cell *cells = xcalloc(cap, sizeof *cells);
        for (size_t i = 0; i < t->cap; i++) {
            if (!t->cells[i].key) continue;
            size_t h = str_hash(t->cells[i].key) & (cap - 1);
            while (cells[h].key) h = (h + 1) & (cap - 1);
            cells[h] = t->cells[i];
        }
        free(t->cells);
        t->cells = cells;
        t->cap = cap;
    }
    size_t h = str_hash(key) & (t->cap - 1);
    while (t->cells[h].key && strcmp(t->cells[h].key, key)) h = (h + 1) & (t->cap - 1);
    if (!t->cells[h].key) { t->cells[h].key = xstrdup(key); t->n++; }
    t->cells[h].c[side] += k;
}
static void counter_free(Counter *t) {
    for (size_t i = 0; i < t->cap; i++) free(t->cells[i].key);
    free(t->cells);
    memset(t, 0, sizeof *t);
}
// Cells with a nonzero count on `side`, most frequent first, ties by key so results never depend
// on hash order.
static int g_rank_side;
static int cmp_rank(const void *a, const void *b) {
    const Cell *x = *(Cell *const *)a, *y = *(Cell *const *)b;
    if (x->c[g_rank_side] != y->c[g_rank_side]) return x->c[g_rank_side] > y->c[g_rank_side] ? -1 : 1;
    return strcmp(x->key, y->key);
}
static Cell **counter_ranked(const Counter *t, int side, int *n_out) {
    Cell **v = xmalloc((t->n ? t->n : 1) * sizeof *v);
    int n = 0;
    for (size_t i = 0; i < t->cap; i++)
        if (t->cells[i].key && t->cells[i].c[side] > 0) v[n++] = &t->cells[i];
    g_rank_side = side;
    qsort(v, n, sizeof *v, cmp_rank);
    *n_out = n;
    return v;
}

// ---------------------------------------------------------------------------------------------
// KL divergence of the top calls

static void call_key(char *buf, size_t cap, const Edge *e) {
    snprintf(buf, cap, "%s\x1f%s\x1f%s", e->src, e->dst, rpc_type_name(e->type));
}

// KL(P || Q) = Σ_i p_i ln(p_i / q_i) over the `top` most frequent real calls i (ties by name), with
//   p_i = r_i / Σ_top r,   q_i = (s_i + α·[s_i = 0]) / (Σ_top s + α·Z),   α = EVAL_KL_ALPHA,
// Z = calls of the set the synthetic side never made. Restricting both sides to the same support
// makes KL comparable across runs; the pseudo-count only for ABSENT calls keeps KL finite (a
// generator missing a call pays about p_i ln(p_i S / α)) while identical sets still give exactly 0.
// Synthetic calls outside the set are not in Q; their share is reported as syn_mass.
double kl_top_calls(const GraphSet *real, const GraphSet *syn, int top, int *n_calls, double *real_mass,
                    double *syn_mass) {
    Counter t = {0};
    char key[1024];
    int64_t tot[2] = {0, 0};
    const GraphSet *sets[2] = {real, syn};
    for (int side = 0; side < 2; side++)
        for (int i = 0; i < sets[side]->n; i++)
            for (int k = 0; k < sets[side]->g[i].n; k++) {
                call_key(key, sizeof key, &sets[side]->g[i].edges[k]);
                counter_add(&t, key, side, 1);
                tot[side]++;
            }
    int n;
    Cell **rank = counter_ranked(&t, 0, &n);
    int K = n < top ? n : top;
    double R = 0, S = 0;
    for (int i = 0; i < K; i++) { R += rank[i]->c[0]; S += rank[i]->c[1]; }
    int Z = 0;
    for (int i = 0; i < K; i++) Z += rank[i]->c[1] == 0;
    double kl = 0;
    for (int i = 0; i < K; i++) {
        double s = rank[i]->c[1] ? (double)rank[i]->c[1] : EVAL_KL_ALPHA;
        double p = rank[i]->c[0] / R, q = s / (S + EVAL_KL_ALPHA * Z);
        kl += p * log(p / q);
    }
    if (n_calls) *n_calls = K;
    if (real_mass) *real_mass = tot[0] ? R / tot[0] : 0;
    if (syn_mass) *syn_mass = tot[1] ? S / tot[1] : 0;
    free(rank);
    counter_free(&t);
    return kl;
}

// ---------------------------------------------------------------------------------------------
// Heavy hitters: microservices ranked by the calls they receive (edges whose dst they are).

void heavy_hitters(const GraphSet *real, const GraphSet *syn, const int *ks, int nk, double *recovery, int *keff) {
    Counter t = {0};
    const GraphSet *sets[2] = {real, syn};
    for (int side = 0; side < 2; side++)
        for (int i = 0; i < sets[side]->n; i++)
            for (int k = 0; k < sets[side]->g[i].n; k++) counter_add(&t, sets[side]->g[i].edges[k].dst, side, 1);
    int nr, ns;
    Cell **rr = counter_ranked(&t, 0, &nr);
    Cell **rs = counter_ranked(&t, 1, &ns);
    for (int q = 0; q < nk; q++) {
        int K = ks[q] < nr ? ks[q] : nr;
        keff[q] = K;
        int ksyn = ks[q] < ns ? ks[q] : ns;
        for (int i = 0; i < ns; i++) rs[i]->mark = i < ksyn;  // in the synthetic top-K
        int hit = 0;
        for (int i = 0; i < K; i++) hit += rr[i]->mark;
        recovery[q] = K ? (double)hit / K : 0;
    }
    free(rr);
    free(rs);
    counter_free(&t);
}

// ---------------------------------------------------------------------------------------------
// Memorization hashes

static uint64_t hash_graph(const CallGraph *g, bool times) {
    uint64_t h = hash_bytes(g->service, strlen(g->service), times ? 0x3e : 0x57);
    for (int i = 0; i < g->n; i++) {
        const Edge *e = &g->edges[i];
        // field lengths go in too, so ("a","bc") never collides with ("ab","c")
        const char *f[3] = {e->rpc_id, e->src, e->dst};
        for (int k = 0; k < 3; k++) {
            uint64_t len = strlen(f[k]);
            h = hash_bytes(&len, sizeof len, h);
            h = hash_bytes(f[k], len, h);
        }
        int64_t nums[3] = {e->type, times ? e->start_ms : 0, times ? e->rt_ms : 0};
        h = hash_bytes(nums, sizeof nums, h);
    }
    return h;
}
uint64_t graph_hash_exact(const CallGraph *g) { return hash_graph(g, true); }
uint64_t graph_hash_structure(const CallGraph *g) { return hash_graph(g, false); }

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}
static void memo_push(MemoIndex *m, size_t *cap, const CallGraph *g) {
    if ((size_t)m->n == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        m->exact = xrealloc(m->exact, *cap * sizeof *m->exact);
        m->structure = xrealloc(m->structure, *cap * sizeof *m->structure);
    }
    m->exact[m->n] = graph_hash_exact(g);
    m->structure[m->n] = graph_hash_structure(g);
    m->n++;
}
static void memo_finish(MemoIndex *m) {
    if (!m->n) return;  // an empty training set: arrays stay NULL, memo_has answers false
    qsort(m->exact, m->n, sizeof *m->exact, cmp_u64);
    qsort(m->structure, m->n, sizeof *m->structure, cmp_u64);
}
void memo_index_build(MemoIndex *m, const char *train_path) {
    memset(m, 0, sizeof *m);
    size_t cap = 0;
    GraphReader r;
    graph_reader_open(&r, train_path);
    graph_reader_progress(&r, "eval: indexing training graphs");
    CallGraph g;
    graph_init(&g);
    while (graph_reader_next(&r, &g)) {
        graph_sort(&g);
        memo_push(m, &cap, &g);
    }
    graph_free(&g);
    graph_reader_close(&r);
    memo_finish(m);
}
void memo_index_from(MemoIndex *m, const GraphSet *train) {
    memset(m, 0, sizeof *m);
    size_t cap = 0;
    for (int i = 0; i < train->n; i++) memo_push(m, &cap, &train->g[i]);
    memo_finish(m);
}
void memo_index_free(MemoIndex *m) {
    free(m->exact);
    free(m->structure);
    memset(m, 0, sizeof *m);
}
static bool memo_has(const uint64_t *v, int64_t n, uint64_t h) { return n > 0 && bsearch(&h, v, n, sizeof *v, cmp_u64) != NULL; }

// ---------------------------------------------------------------------------------------------
// Per-graph quantities

typedef struct { double *v; int n, cap; } Vec;
static void vec_push(Vec *v, double x) {
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 256;
        v->v = xrealloc(v->v, v->cap * sizeof *v->v);
    }
    v->v[v->n++] = x;
}

typedef struct { const char *a, *b; } Pair;
static int cmp_pair_ab(const void *x, const void *y) {
    const Pair *p = x, *q = y;
    int c = strcmp(p->a, q->a);
    return c ? c : strcmp(p->b, q->b);
}
static int cmp_str(const void *x, const void *y) { return strcmp(*(char *const *)x, *(char *const *)y); }

// In- and out-degree of every microservice of g over its microservice graph: nodes are the
// distinct microservices (USER excluded as a node but counted as a caller), edges the distinct
// (src, dst) pairs, so repeated calls between the same two services count once.
static void graph_degrees(const CallGraph *g, Vec *indeg, Vec *outdeg) {
    if (g->n == 0) return;
    Pair *p = xmalloc(g->n * sizeof *p);
    const char **nodes = xmalloc(2 * g->n * sizeof *nodes);
    int nn = 0;
    for (int i = 0; i < g->n; i++) {
        p[i].a = g->edges[i].src;
        p[i].b = g->edges[i].dst;
        if (strcmp(p[i].a, "USER")) nodes[nn++] = p[i].a;
        if (strcmp(p[i].b, "USER")) nodes[nn++] = p[i].b;
    }
    qsort(p, g->n, sizeof *p, cmp_pair_ab);
    int np = 0;
    for (int i = 0; i < g->n; i++)
        if (np == 0 || cmp_pair_ab(&p[np - 1], &p[i])) p[np++] = p[i];
    qsort(nodes, nn, sizeof *nodes, cmp_str);
    int nu = 0;
    for (int i = 0; i < nn; i++)
        if (nu == 0 || strcmp(nodes[nu - 1], nodes[i])) nodes[nu++] = nodes[i];
    int *in = xcalloc(nu ? nu : 1, sizeof *in), *out = xcalloc(nu ? nu : 1, sizeof *out);
    for (int i = 0; i < np; i++) {
        const char **a = bsearch(&p[i].a, nodes, nu, sizeof *nodes, cmp_str);
        const char **b = bsearch(&p[i].b, nodes, nu, sizeof *nodes, cmp_str);
        if (a) out[a - nodes]++;
        if (b) in[b - nodes]++;
    }
    for (int i = 0; i < nu; i++) { vec_push(indeg, in[i]); vec_push(outdeg, out[i]); }
    free(in); free(out); free(p); free(nodes);
}

// Everything per set that the report needs besides the cross-set metrics.
static void gather(const GraphSet *s, Vec v[S_N], int64_t checks[GRAPH_NCHECKS], int64_t depth_hist[EVAL_MAX_DEPTH],
                   double width[EVAL_MAX_DEPTH], int64_t types[EVAL_MAX_DEPTH][RPC_NTYPES]) {
    int64_t width_sum[EVAL_MAX_DEPTH] = {0}, reach[EVAL_MAX_DEPTH] = {0};
    for (int i = 0; i < s->n; i++) {
        const CallGraph *g = &s->g[i];
        checks[graph_validate(g, 15, NULL)]++;
        // a request the generator could not answer is a line without edges: it counts against
        // validity and the request match rates, but has no shape to compare
        if (g->n == 0) continue;
        int depth = graph_depth(g);
        int dcap = depth < EVAL_MAX_DEPTH ? depth : EVAL_MAX_DEPTH;
        if (depth > 0) depth_hist[dcap - 1]++;
        for (int d = 0; d < dcap; d++) reach[d]++;
        for (int k = 0; k < g->n; k++) {
            const Edge *e = &g->edges[k];
            int d = rpc_id_depth(e->rpc_id);
            d = (d < EVAL_MAX_DEPTH ? d : EVAL_MAX_DEPTH) - 1;
            width_sum[d]++;
            types[d][e->type]++;
            vec_push(&v[S_RT], (double)e->rt_ms);
        }
        vec_push(&v[S_SIZE], g->n);
        vec_push(&v[S_DEPTH], depth);
        graph_degrees(g, &v[S_INDEG], &v[S_OUTDEG]);
    }
    for (int d = 0; d < EVAL_MAX_DEPTH; d++) width[d] = reach[d] ? (double)width_sum[d] / reach[d] : 0;
}

// Scores one generated graph against what it was asked for (the "request" of its line) into r's
// request counters and accuracy grid. eval_compute calls it for every line; `tracellm eval grid`
// for every sample it generates, so both score alike. stats: for the high-latency instruction.
void eval_add_request(EvalResult *r, const CallGraph *g, const GraphRequest *q, const Stats *stats) {
    if (!request_any(q)) return;
    r->req_n++;
    bool e_ok = q->has_edges && g->n == q->num_edges, d_ok = q->has_depth && graph_depth(g) == q->depth;
    if (q->has_edges) { r->req_edges_n++; r->req_edges_ok += e_ok; }
    if (q->has_depth) { r->req_depth_n++; r->req_depth_ok += d_ok; }
    // the paper's accuracy: valid AND exactly the requested size AND depth
    if (q->has_edges && q->has_depth) {
        bool ok = e_ok && d_ok && graph_validate(g, 15, NULL) == GRAPH_OK;
        r->req_both_n++;
        r->req_both_ok += ok;
        if (q->num_edges >= 1 && q->num_edges <= EVAL_GRID_EDGES && q->depth >= 1 && q->depth <= EVAL_GRID_DEPTH) {
            r->grid_n[q->num_edges][q->depth]++;
            r->grid_ok[q->num_edges][q->depth] += ok;
        }
    }
    if (q->has_latency) {
        int root = graph_find(g, "0");
        r->req_lat_n++;
        if (root >= 0) {
            int64_t got = edge_finish(&g->edges[root]), want = q->latency;
            r->req_lat_exact += got == want;
            r->req_lat_10pct += llabs(got - want) <= (want / 10 > 1 ? want / 10 : 1);
        }
    }
    bool hl_ok = false, ie_ok = false, hl_scored = false;
    if (q->high_latency) {
        const ServiceStats *st = stats_find(stats, g->service);
        int root = graph_find(g, "0");
        if (!st) r->req_hl_unscored++;
        else {
            hl_scored = true;
            hl_ok = root >= 0 && stats_high_latency(st, edge_finish(&g->edges[root]), -1);
            r->req_hl_n++;
            r->req_hl_ok += hl_ok;
        }
    }
    if (q->has_include_edge) {
        for (int k = 0; k < g->n && !ie_ok; k++) {
            const Edge *e = &g->edges[k];
            ie_ok = e->type == q->inc_type && !strcmp(e->src, q->inc_src) && !strcmp(e->dst, q->inc_dst);
        }
        r->req_ie_n++;
        r->req_ie_ok += ie_ok;
    }
    if (hl_scored && q->has_include_edge) {
        r->req_hlie_n++;
        r->req_hlie_ok += hl_ok && ie_ok;
    }
}

void eval_compute(const GraphSet *real, const GraphSet *syn, const MemoIndex *train, const Stats *stats, EvalResult *r) {
    memset(r, 0, sizeof *r);
    r->n_real = real->n;
    r->n_syn = syn->n;
    Vec vr[S_N] = {{0}}, vs[S_N] = {{0}};
    gather(real, vr, r->real_checks, r->depth_real, r->width_real, r->type_real);
    gather(syn, vs, r->syn_checks, r->depth_syn, r->width_syn, r->type_syn);
    r->validity = syn->n ? (double)r->syn_checks[GRAPH_OK] / syn->n : 0;

    r->kl = kl_top_calls(real, syn, EVAL_KL_TOP, &r->kl_calls, &r->kl_real_mass, &r->kl_syn_mass);
    heavy_hitters(real, syn, EVAL_HH_K, EVAL_N_HH, r->hh_recovery, r->hh_keff);

    static const char *names[S_N] = {"in-degree", "out-degree", "response time (ms)", "graph size (edges)", "depth"};
    for (int k = 0; k < S_N; k++) {
        Sample *s = &r->s[k];
        s->name = names[k];
        s->real = vr[k].v; s->n_real = vr[k].n;
        s->syn = vs[k].v; s->n_syn = vs[k].n;
        // sorted for the report's quantiles and plots (emd_1d skips sorting when a side is empty)
        if (s->n_real) qsort(s->real, s->n_real, sizeof *s->real, cmp_double);
        if (s->n_syn) qsort(s->syn, s->n_syn, sizeof *s->syn, cmp_double);
        s->emd = emd_1d(s->real, s->n_real, s->syn, s->n_syn);
        double scale = mad_median(s->real, s->n_real);
        s->scale = scale > 0 ? scale : 1;
        s->emd_norm = s->emd / s->scale;
    }

    if (train) {
        r->have_train = true;
        r->n_train = train->n;
        for (int i = 0; i < syn->n; i++) {
            r->memo_exact += memo_has(train->exact, train->n, graph_hash_exact(&syn->g[i]));
            r->memo_structure += memo_has(train->structure, train->n, graph_hash_structure(&syn->g[i]));
        }
    }

    Stats own;
    bool built = false, want_hl = false;
    for (int i = 0; i < syn->n && !want_hl; i++) want_hl = syn->req[i].high_latency;
    if (!stats && want_hl) {
        StatsOpts o;
        stats_opts_default(&o);
        StatsBuilder *b = stats_builder_new(&o);
        for (int i = 0; i < real->n; i++) stats_builder_add(b, &real->g[i]);
        stats_builder_finish(b, &own);
        stats = &own;
        built = true;
    }
    for (int i = 0; i < syn->n; i++) eval_add_request(r, &syn->g[i], &syn->req[i], stats);
    if (built) stats_free(&own);
}

void eval_result_free(EvalResult *r) {
    for (int k = 0; k < S_N; k++) { free(r->s[k].real); free(r->s[k].syn); }
    memset(r, 0, sizeof *r);
}
