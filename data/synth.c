// The synthetic world behind `tracellm synth` and the clean call graphs it produces.
//
// World (built once from the seed):
//   microservice pool  M microservices, each with a role (entry, logic, cache, db, mq), a pod count
//                      and a Zipf popularity inside its role: a few caches/dbs/gateways are hot spots
//                      that most services touch.
//   services           K services with a Zipf popularity; each owns an entry microservice, a small
//                      set of logic microservices, a latency scale and a slow-trace probability,
//                      and 1..9 topology templates with Zipf-like weights.
//   templates          call trees grown edge by edge; the communication type of a call depends on
//                      its depth (memcached in the middle layers, more db/mq deeper); only rpc/http
//                      calls have children. Every call carries the parameters of its variation:
//                      optional (included with some probability), repeated 1..r times, a rare
//                      alternative destination, launched in parallel with its previous sibling,
//                      and a log-normal latency of its own work.
// Graph i (a pure function of seed and i): pick a service by popularity, a template by weight,
// instantiate it (variation, pods, timing) into a CallGraph whose edges are in rpc_id order.
// Timing is built bottom-up so that every child starts after and finishes before its parent.
#include "data/synth.h"
#include "util/rng.h"
#include "util/util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ROLE_ENTRY, ROLE_LOGIC, ROLE_CACHE, ROLE_DB, ROLE_MQ, NROLES };
// Share of the pool per role. Entry/logic are the stateless services that call others; cache, db
// and mq are the stateful leaves (memcached, databases, queues).
static const double ROLE_SHARE[NROLES] = {0.08, 0.40, 0.27, 0.20, 0.05};

// Communication type of a call at depth d (root = 1) as P(mc, rpc, db, mq, http), from the cleaned
// v2022 graphs (PAPER.md §7: mc 43%, rpc 24%, http 23%, db 10%, mq 0.1%; memcached dominates the
// middle layers and calls become more stateful with depth). Rows: depth 2, 3, 4+.
static const double TYPE_BY_DEPTH[3][5] = {
    {0.46, 0.42, 0.10, 0.005, 0.015},
    {0.68, 0.15, 0.15, 0.010, 0.010},
    {0.58, 0.10, 0.29, 0.020, 0.010},
};
static const int TYPE_OF_COLUMN[5] = {RPC_MC, RPC_RPC, RPC_DB, RPC_MQ, RPC_HTTP};

// Sizes 2..40 of the small-graph body (share of the body), shaped after the cleaned real graphs
// (median 3 overall, few above 15). Single-edge graphs and the tail (> 40) are separate knobs.
static const double BODY[41] = {
    [2] = 0.25, [3] = 0.18, [4] = 0.11, [5] = 0.09, [6] = 0.07, [7] = 0.06, [8] = 0.045, [9] = 0.035, [10] = 0.025,
    [11] = 0.016, [12] = 0.016, [13] = 0.016, [14] = 0.016, [15] = 0.016,
    [16] = 0.004, [17] = 0.004, [18] = 0.004, [19] = 0.004, [20] = 0.004, [21] = 0.004, [22] = 0.004, [23] = 0.004,
    [24] = 0.004, [25] = 0.004, [26] = 0.001, [27] = 0.001, [28] = 0.001, [29] = 0.001, [30] = 0.001, [31] = 0.001,
    [32] = 0.001, [33] = 0.001, [34] = 0.001, [35] = 0.001, [36] = 0.001, [37] = 0.001, [38] = 0.001, [39] = 0.001,
    [40] = 0.001,
};
#define TAIL_MIN 45   // tail templates start a little above 40 so variation keeps them above it

typedef struct {
    int parent, first_child, next_sibling;  // tree links; children in call order
    int depth, type;
    int dst, alt_dst;        // microservice index; alt_dst -1 when the call has no rare variant
    float p_include, p_alt;  // p_include 1 for core calls
    float mu, sigma;         // log-ms of the call's own work (leaf: whole call; rpc/http: after children)
    uint32_t iface;
    uint8_t repeat_max;      // called 1..repeat_max times in a row
    uint8_t par;             // launched before its previous sibling returns
} TNode;

typedef struct { TNode *nodes; int n; } Template;

typedef struct {
    uint32_t id;             // S_<id>
    int entry;
    int logic[6], n_logic;
    double speed;            // log-latency offset of the whole service
    double p_slow;
    Template *tpl;
    double *tpl_cum;         // cumulative template weights
    int n_tpl;
} Service;

typedef struct { int *ms; double *cum; int n; } Pool;

struct Synth {
    SynthConfig c;
    int n_ms;
    char (*ms_name)[16];     // "MS_12345"
    int *ms_pods;
    Pool pool[NROLES];
    Service *svc;
    double *svc_cum;
    double share_single, share_tail;
};

// ---- sampling helpers ----
static int pick_cum(const double *cum, int n, double u) {  // first index with cum > u*total
    double x = u * cum[n - 1];
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (cum[mid] > x) hi = mid; else lo = mid + 1;
    }
    return lo;
}
static int pool_pick(const Pool *p, Rng *r) { return p->ms[pick_cum(p->cum, p->n, rng_uniform(r))]; }
static double lognormal(Rng *r, double mu, double sigma) { return exp(mu + sigma * rng_normal(r)); }
static int64_t ms_round(double x) { return x > 1e9 ? (int64_t)1e9 : (int64_t)floor(x + 0.5); }

// Size classes: one edge, the small-graph body (2..40) and the heavy tail (> 40).
enum { CLASS_SINGLE, CLASS_BODY, CLASS_TAIL, NCLASSES };
// Size at quantile v in [0, 1) of a class's own distribution.
static int class_quantile(const SynthConfig *c, int cls, double v) {
    if (cls == CLASS_SINGLE) return 1;
    if (cls == CLASS_BODY) {
        double acc = 0;
        int k = 2;
        for (; k < 40; k++) { acc += BODY[k]; if (v < acc) break; }
        return k < c->max_edges ? k : c->max_edges;
    }
    if (v > 0.999) v = 0.999;
    double x = TAIL_MIN + 15.0 * (pow(1.0 - v, -1.0 / 1.3) - 1.0);  // Pareto, alpha 1.3
    return x > c->max_edges ? c->max_edges : (int)x;
}

void synth_config_default(SynthConfig *c) {
    memset(c, 0, sizeof *c);
    c->graphs = 5000;
    c->seed = 1;
    c->services = 50;
    c->microservices = 500;
    c->single = 0.34;
    c->tail = 0.10;
    c->max_edges = 150;
    c->max_depth = 10;
    c->seq_share = 0.85;
    c->zipf = 1.1;
    c->slow = 0.08;
    c->dup_rate = 0.01;
    c->unknown_rate = 0.003;
    c->callee_unknown = 0.35;
    c->unknown_type_rate = 0.02;
    c->malformed_rate = 0.0005;
    c->root01_rate = 0.01;
    c->interleave = 64;
}

// ---- world ----
static void build_pools(Synth *s, Rng *r) {
    int M = s->c.microservices;
    s->n_ms = M;
    s->ms_name = xmalloc((size_t)M * sizeof *s->ms_name);
    s->ms_pods = xmalloc((size_t)M * sizeof *s->ms_pods);
    // distinct 5-digit ids like the release (MS_10000..MS_79999): a random sample without repeats
    int span = 70000;
    char *used = xcalloc((size_t)span, 1);
    for (int i = 0; i < M; i++) {
        int id;
        do id = (int)rng_below(r, (uint64_t)span); while (used[id]);
        used[id] = 1;
        snprintf(s->ms_name[i], sizeof s->ms_name[i], "MS_%d", 10000 + id);
    }
    free(used);
    // roles: consecutive blocks of the (random) id order, at least one microservice each
    int start = 0;
    for (int k = 0; k < NROLES; k++) {
        int n = k == NROLES - 1 ? M - start : (int)(ROLE_SHARE[k] * M + 0.5);
        if (n < 1) n = 1;
        if (start + n > M - (NROLES - 1 - k)) n = M - (NROLES - 1 - k) - start;
        Pool *p = &s->pool[k];
        p->n = n;
        p->ms = xmalloc((size_t)n * sizeof *p->ms);
        p->cum = xmalloc((size_t)n * sizeof *p->cum);
        double acc = 0;
        for (int j = 0; j < n; j++) {
            p->ms[j] = start + j;
            acc += 1.0 / pow(j + 1.0, s->c.zipf);   // rank j: hot spots first
            p->cum[j] = acc;
            // pods: heavy-tailed, the hot microservices run on many instances
            double pods = 2.0 + 400.0 / pow(j + 1.0, 1.2) * rng_uniform(r) + 8.0 * rng_uniform(r);
            s->ms_pods[start + j] = (int)pods;
        }
        start += n;
    }
}

// Grows one template of n calls for service sv. The chain step (continue under the newest rpc
// call) makes the 3-4 level chains that dominate the real graphs; the uniform step makes fan-out.
static void build_template(Synth *s, Service *sv, Template *t, int n, Rng *r) {
    const SynthConfig *c = &s->c;
    t->n = n;
    t->nodes = xcalloc((size_t)n, sizeof *t->nodes);
    int *expand = xmalloc((size_t)n * sizeof *expand), n_expand = 0;
    int *last_child = xmalloc((size_t)n * sizeof *last_child);
    for (int k = 0; k < n; k++) {
        TNode *nd = &t->nodes[k];
        nd->first_child = nd->next_sibling = last_child[k] = -1;
        nd->alt_dst = -1;
        nd->p_include = 1.0f;
        nd->repeat_max = 1;
        nd->iface = (uint32_t)rng_u64(r);
        if (k == 0) {
            nd->parent = -1;
            nd->depth = 1;
            nd->type = rng_uniform(r) < 0.98 ? RPC_HTTP : RPC_RPC;  // the root call is http 98% of the time
            nd->dst = sv->entry;
        } else {
            int p = rng_uniform(r) < 0.6 ? expand[n_expand - 1] : expand[rng_below(r, (uint64_t)n_expand)];
            TNode *pn = &t->nodes[p];
            nd->parent = p;
            nd->depth = pn->depth + 1;
            const double *row = TYPE_BY_DEPTH[nd->depth >= 4 ? 2 : nd->depth - 2];
            double u = rng_uniform(r), acc = 0;
            int col = 0;
            for (; col < 4; col++) { acc += row[col]; if (u < acc) break; }
            nd->type = TYPE_OF_COLUMN[col];
            // the entry usually hands the request to a logic service first (USER -> http -> rpc ->
            // mc/db chains make depth 3 the most common depth of multi-call graphs)
            if (p == 0 && pn->first_child < 0 && rng_uniform(r) < 0.6) nd->type = RPC_RPC;
            switch (nd->type) {
            case RPC_MC: nd->dst = pool_pick(&s->pool[ROLE_CACHE], r); break;
            case RPC_DB: nd->dst = pool_pick(&s->pool[ROLE_DB], r); break;
            case RPC_MQ: nd->dst = pool_pick(&s->pool[ROLE_MQ], r); break;
            default: {
                // rpc/http: a self call on another pod (common in Alibaba), the service's own logic
                // microservices, or now and then a shared one
                double v = rng_uniform(r);
                nd->dst = v < 0.25 ? pn->dst : v < 0.85 ? sv->logic[rng_below(r, (uint64_t)sv->n_logic)]
                                                         : pool_pick(&s->pool[ROLE_LOGIC], r);
            }
            }
            nd->par = rng_uniform(r) >= c->seq_share;
            if (last_child[p] < 0) pn->first_child = k; else t->nodes[last_child[p]].next_sibling = k;
            last_child[p] = k;
        }
        if ((nd->type == RPC_RPC || nd->type == RPC_HTTP) && nd->depth < c->max_depth) expand[n_expand++] = k;
    }
    // variation and latency, now that leaves are known. Templates of 1-3 calls stay exact so the
    // smallest size classes are exactly what the size mix asks for.
    for (int k = 0; k < n; k++) {
        TNode *nd = &t->nodes[k];
        bool leaf = nd->first_child < 0;
        double mu, sigma;
        if (!leaf) { mu = log(0.6); sigma = 1.0; }
        else switch (nd->type) {
            case RPC_MC: mu = log(0.35); sigma = 0.9; break;
            case RPC_DB: mu = log(1.2); sigma = 1.0; break;
            case RPC_MQ: mu = log(0.5); sigma = 0.8; break;
            default: mu = log(1.5); sigma = 1.0; break;
            }
        nd->mu = (float)(mu + sv->speed + 0.3 * rng_normal(r));
        nd->sigma = (float)sigma;
        if (k == 0 || n < 4) continue;
        if (leaf) {
            if (rng_uniform(r) < 0.2) nd->p_include = (float)(0.05 + 0.9 * rng_uniform(r));
            if (nd->type != RPC_MQ && rng_uniform(r) < 0.1) nd->repeat_max = (uint8_t)(2 + rng_below(r, 3));
            if (rng_uniform(r) < 0.2) {  // a rare communication: same role, another microservice
                int role = nd->type == RPC_MC ? ROLE_CACHE : nd->type == RPC_DB ? ROLE_DB : nd->type == RPC_MQ ? ROLE_MQ : ROLE_LOGIC;
                int alt = pool_pick(&s->pool[role], r);
                if (alt != nd->dst) { nd->alt_dst = alt; nd->p_alt = (float)(0.02 + 0.06 * rng_uniform(r)); }
            }
        } else if (rng_uniform(r) < 0.05) {
            nd->p_include = (float)(0.7 + 0.27 * rng_uniform(r));
        }
    }
    free(expand);
    free(last_child);
}

typedef struct { double mass; int svc, tpl, cls; } TplMass;
static int mass_desc(const void *a, const void *b) {
    double x = ((const TplMass *)a)->mass, y = ((const TplMass *)b)->mass;
    return x > y ? -1 : x < y;
}

Synth *synth_new(const SynthConfig *cfg) {
    const SynthConfig *c = cfg;
    if (c->services < 1 || c->services > 1000000 || c->microservices < 20 || c->microservices > 70000 || c->graphs < 1)
        fatal("synth: need --graphs >= 1, --services in 1..1000000 and --microservices in 20..70000");
    if (c->single < 0 || c->tail < 0 || c->single + c->tail > 0.95)
        fatal("synth: --single and --tail must be >= 0 with a sum <= 0.95");
    if (c->max_edges < 2 || c->max_edges > 5000) fatal("synth: --max-edges must be in 2..5000");
    if (c->max_depth < 2 || c->max_depth > 15) fatal("synth: --max-depth must be in 2..15 (the cleaning drops deeper graphs)");
    if (c->tail > 0 && c->max_edges <= TAIL_MIN) fatal("synth: --tail > 0 needs --max-edges > %d", TAIL_MIN);
    double rates[] = {c->seq_share, c->slow, c->dup_rate, c->unknown_rate, c->callee_unknown, c->unknown_type_rate,
                      c->malformed_rate, c->root01_rate};
    for (size_t i = 0; i < sizeof rates / sizeof *rates; i++)
        if (!(rates[i] >= 0 && rates[i] <= 1)) fatal("synth: rates and shares must be in [0, 1]");
    if (c->zipf < 0 || c->zipf > 4) fatal("synth: --zipf must be in [0, 4]");

    Synth *s = xcalloc(1, sizeof *s);
    s->c = *c;
    if (s->c.interleave < 1) s->c.interleave = 1;
    Rng r;
    rng_seed(&r, c->seed ^ 0x5157a11d5eedULL);
    build_pools(s, &r);

    int K = c->services;
    s->svc = xcalloc((size_t)K, sizeof *s->svc);
    s->svc_cum = xmalloc((size_t)K * sizeof *s->svc_cum);
    // distinct 9-digit S_ ids: one per stride of the id space, shuffled so id order says nothing
    uint32_t *ids = xmalloc((size_t)K * sizeof *ids), stride = 100000000u / (uint32_t)K;
    for (int k = 0; k < K; k++) ids[k] = 100000000u + (uint32_t)k * stride + (uint32_t)rng_below(&r, stride);
    rng_shuffle(&r, ids, K, sizeof *ids);
    double acc = 0;
    int n_tpl_all = 0;
    for (int k = 0; k < K; k++) {
        Service *sv = &s->svc[k];
        sv->id = ids[k];
        acc += 1.0 / pow(k + 1.0, 0.9);   // service popularity: a few services make most traces
        s->svc_cum[k] = acc;
        sv->entry = pool_pick(&s->pool[ROLE_ENTRY], &r);
        sv->n_logic = 2 + (int)rng_below(&r, 5);
        for (int j = 0; j < sv->n_logic; j++) sv->logic[j] = pool_pick(&s->pool[ROLE_LOGIC], &r);
        sv->speed = 0.5 * rng_normal(&r);
        sv->p_slow = c->slow * (0.4 + 1.2 * rng_uniform(&r));
        // 1..9 topology classes (PAPER.md §7: up to 9 per service), geometric with mean ~3
        int nt = 1;
        while (nt < 9 && rng_uniform(&r) < 0.65) nt++;
        sv->n_tpl = nt;
        sv->tpl = xcalloc((size_t)nt, sizeof *sv->tpl);
        sv->tpl_cum = xmalloc((size_t)nt * sizeof *sv->tpl_cum);
        double ta = 0;
        for (int j = 0; j < nt; j++) { ta += 1.0 / pow(j + 1.0, 1.3) * (0.5 + rng_uniform(&r)); sv->tpl_cum[j] = ta; }
        n_tpl_all += nt;
    }
    free(ids);
    // Template sizes. Each template will produce a known share of the traces (service popularity
    // x template weight). Largest first, a template joins the size class that most lacks share, so
    // the class mix (single / body / tail) holds for the corpus even with few services; inside a
    // class, templates in random order take the class distribution's quantile at the middle of
    // their accumulated share (stratified sampling).
    TplMass *tm = xmalloc((size_t)n_tpl_all * sizeof *tm);
    int m = 0;
    for (int k = 0; k < K; k++) {
        Service *sv = &s->svc[k];
        double ps = (s->svc_cum[k] - (k ? s->svc_cum[k - 1] : 0)) / s->svc_cum[K - 1];
        for (int j = 0; j < sv->n_tpl; j++) {
            double pt = (sv->tpl_cum[j] - (j ? sv->tpl_cum[j - 1] : 0)) / sv->tpl_cum[sv->n_tpl - 1];
            tm[m++] = (TplMass){ps * pt, k, j, 0};
        }
    }
    rng_shuffle(&r, tm, m, sizeof *tm);   // ties in mass broken at random, then largest first
    qsort(tm, (size_t)m, sizeof *tm, mass_desc);
    double want[NCLASSES] = {c->single, 1.0 - c->single - c->tail, c->tail}, have[NCLASSES] = {0};
    for (int i = 0; i < m; i++) {
        int best = -1;
        for (int k = 0; k < NCLASSES; k++)
            if (want[k] > 0 && (best < 0 || want[k] - have[k] > want[best] - have[best])) best = k;
        tm[i].cls = best;
        have[best] += tm[i].mass;
    }
    s->share_single = have[CLASS_SINGLE];
    s->share_tail = have[CLASS_TAIL];
    rng_shuffle(&r, tm, m, sizeof *tm);
    double cum[NCLASSES] = {0};
    for (int i = 0; i < m; i++) {
        int k = tm[i].cls;
        int n = class_quantile(c, k, (cum[k] + tm[i].mass / 2) / have[k]);
        cum[k] += tm[i].mass;
        Service *sv = &s->svc[tm[i].svc];
        build_template(s, sv, &sv->tpl[tm[i].tpl], n, &r);
    }
    free(tm);
    return s;
}

void synth_free(Synth *s) {
    if (!s) return;
    for (int k = 0; k < s->c.services; k++) {
        for (int j = 0; j < s->svc[k].n_tpl; j++) free(s->svc[k].tpl[j].nodes);
        free(s->svc[k].tpl);
        free(s->svc[k].tpl_cum);
    }
    free(s->svc);
    free(s->svc_cum);
    for (int k = 0; k < NROLES; k++) { free(s->pool[k].ms); free(s->pool[k].cum); }
    free(s->ms_name);
    free(s->ms_pods);
    free(s);
}
const SynthConfig *synth_config(const Synth *s) { return &s->c; }
void synth_intended_shares(const Synth *s, double *single, double *tail) {
    if (single) *single = s->share_single;
    if (tail) *tail = s->share_tail;
}

// ---- one graph ----
typedef struct {
    Synth *s;
    const Service *sv;
    const Template *t;
    Rng *r;
    CallGraph *g;
    SynthEdgeInfo **info;
    int *info_cap;
    int slow_node;           // template node whose own work is slowed down in this trace, or -1
    double slow_factor;
    char id[256];            // rpc_id being built
} Inst;

// Instantiates template node k as the call `id` starting at `start`, called from microservice
// `src` on pod `src_pod`; returns the call's finish time. The edge is appended before its
// children so edges come out in rpc_id (DFS) order; rt is patched once the children are timed.
static int64_t instantiate(Inst *in, int k, int idlen, const char *src, int src_pod, int64_t start) {
    const TNode *nd = &in->t->nodes[k];
    Synth *s = in->s;
    int dst = nd->dst;
    if (nd->alt_dst >= 0 && rng_uniform(in->r) < nd->p_alt) dst = nd->alt_dst;
    int pods = s->ms_pods[dst];
    int pod = (int)rng_below(in->r, (uint64_t)pods);
    if (src_pod >= 0 && pod == src_pod && !strcmp(src, s->ms_name[dst]) && pods > 1) pod = (pod + 1) % pods;  // self call: another pod
    int e = in->g->n;
    graph_add_edge(in->g, in->id, nd->type, src, s->ms_name[dst], start, 0);
    if (in->info) {
        if (*in->info_cap < in->g->n) {
            *in->info_cap = in->g->n < 8 ? 16 : in->g->n * 2;
            *in->info = xrealloc(*in->info, (size_t)*in->info_cap * sizeof **in->info);
        }
        (*in->info)[e] = (SynthEdgeInfo){src_pod, pod, nd->iface};
    }
    double own = lognormal(in->r, nd->mu, nd->sigma);
    if (k == in->slow_node) own *= in->slow_factor;
    int64_t finish;
    if (nd->first_child < 0) {
        finish = start + ms_round(own);
    } else {
        // children: a short set-up gap, then each call either after all earlier ones returned
        // (sequential) or right after its predecessor started (parallel)
        double u = rng_uniform(in->r);
        int64_t cursor = start + (u < 0.55 ? 0 : u < 0.9 ? 1 : 2 + (int64_t)rng_below(in->r, 2));
        int64_t prev_start = cursor, max_finish = cursor;
        int local = 0, first = 1;
        for (int c = nd->first_child; c >= 0; c = in->t->nodes[c].next_sibling) {
            const TNode *cn = &in->t->nodes[c];
            if (cn->p_include < 1.0f && rng_uniform(in->r) >= cn->p_include) continue;
            int reps = cn->repeat_max > 1 ? 1 + (int)rng_below(in->r, cn->repeat_max) : 1;
            for (int rep = 0; rep < reps; rep++) {
                int64_t cs;
                if (!first && cn->par && rep == 0) cs = prev_start;
                else {
                    double v = rng_uniform(in->r);
                    cs = max_finish + (first ? 0 : v < 0.7 ? 0 : v < 0.95 ? 1 : 2);
                }
                first = 0;
                int n = snprintf(in->id + idlen, sizeof in->id - (size_t)idlen, ".%d", ++local);
                int64_t cf = instantiate(in, c, idlen + n, s->ms_name[dst], pod, cs);
                in->id[idlen] = 0;
                prev_start = cs;
                if (cf > max_finish) max_finish = cf;
            }
        }
        finish = max_finish + ms_round(own);
    }
    in->g->edges[e].rt_ms = finish - start;
    return finish;
}

// Per-graph random stream: graph i's content depends on (seed, i) only, so any subset of the
// corpus can be regenerated (tests) and the writer's order never changes a graph.
static void graph_rng(const Synth *s, int64_t i, Rng *r) {
    uint64_t key[2] = {s->c.seed, (uint64_t)i};
    rng_seed(r, hash_bytes(key, sizeof key, 0x67a9c3));
}

int synth_graph_template(Synth *s, int64_t i, int *service) {
    Rng r;
    graph_rng(s, i, &r);
    int k = pick_cum(s->svc_cum, s->c.services, rng_uniform(&r));
    const Service *sv = &s->svc[k];
    if (service) *service = k;
    return pick_cum(sv->tpl_cum, sv->n_tpl, rng_uniform(&r));
}

void synth_graph(Synth *s, int64_t i, CallGraph *g, SynthEdgeInfo **info, int *info_cap, int64_t *base_ts) {
    Rng r;
    graph_rng(s, i, &r);
    int k = pick_cum(s->svc_cum, s->c.services, rng_uniform(&r));
    const Service *sv = &s->svc[k];
    int j = pick_cum(sv->tpl_cum, sv->n_tpl, rng_uniform(&r));
    char tid[32], sid[32];
    // trace ids grow with i and never repeat; about 1.4 traces start per millisecond
    snprintf(tid, sizeof tid, "T_%lld", (long long)(1000000000LL + i * 7 + (int64_t)rng_below(&r, 7)));
    snprintf(sid, sizeof sid, "S_%u", sv->id);
    graph_clear(g);
    graph_set_ids(g, tid, sid);
    int64_t ts = 1000000 + i * 7 / 10 + (int64_t)rng_below(&r, 4);   // drawn always: the stream must not depend on the caller
    if (base_ts) *base_ts = ts;
    Inst in = {.s = s, .sv = sv, .t = &sv->tpl[j], .r = &r, .g = g, .info = info, .info_cap = info_cap, .slow_node = -1};
    if (rng_uniform(&r) < sv->p_slow) {
        in.slow_node = (int)rng_below(&r, (uint64_t)in.t->n);
        in.slow_factor = lognormal(&r, log(15.0), 0.8);  // a slow dependency: the service's high-latency tail
    }
    strcpy(in.id, "0");
    instantiate(&in, 0, 1, "USER", -1, 0);
}
