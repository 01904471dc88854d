// See layers.h. One pass finds every edge's parent (edges are sorted by rpc_id, which is a DFS
// pre-order of the call tree, so a stack of open ancestors suffices), a reverse pass sums subtree
// sizes and heights, and a recursive walk emits layers in pre-order. A layer is only a range of
// sibling edges, so every condition field is a fold over that range.
#include "data/layers.h"
#include "util/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void layers_init(Layers *L) { memset(L, 0, sizeof *L); }
void layers_free(Layers *L) {
    free(L->v); free(L->child); free(L->kid_start); free(L->kid); free(L->sub); free(L->ht); free(L->tmp);
    memset(L, 0, sizeof *L);
}

const char *edge_local_id(const Edge *e) {
    const char *dot = strrchr(e->rpc_id, '.');
    return dot ? dot + 1 : e->rpc_id;
}

static int nkids(const Layers *L, int p) { return L->kid_start[p + 1] - L->kid_start[p]; }
static const int *kids(const Layers *L, int p) { return L->kid + L->kid_start[p]; }
const int *layers_edges(const Layers *L, const Layer *l, int *n) {
    int p = l->parent_edge < 0 ? L->g->n : l->parent_edge;
    *n = l->b - l->a;
    return kids(L, p) + l->a;
}

static void push_tmp(Layers *L, int v) {
    if (L->n_tmp == L->cap_tmp) {
        L->cap_tmp = L->cap_tmp ? 2 * L->cap_tmp : 64;
        L->tmp = xrealloc(L->tmp, (size_t)L->cap_tmp * sizeof *L->tmp);
    }
    L->tmp[L->n_tmp++] = v;
}

// A new layer over kids(p)[a, b); every field is a fold over that range.
static int new_layer(Layers *L, int p, int a, int b, bool split, int n_split_children, int parent) {
    if (L->n == L->cap) {
        L->cap = L->cap ? 2 * L->cap : 16;
        L->v = xrealloc(L->v, (size_t)L->cap * sizeof *L->v);
    }
    const CallGraph *g = L->g;
    int idx = L->n++;
    Layer *l = &L->v[idx];
    memset(l, 0, offsetof(Layer, cond));
    l->parent = parent;
    l->parent_edge = p == g->n ? -1 : p;
    l->a = a; l->b = b; l->split = split;
    const int *k = kids(L, p);
    int64_t num_edges = 0, rd = 0, nsub = 0;
    // latency: the release passes the parent edge's finish — but the root edge's rt for the root
    // layer and the layers right under it (they differ when the root starts after 0) — and takes
    // the max with every finish in the layer, so a layer's latency always bounds its edges.
    int64_t latency = p == g->n ? g->edges[k[0]].rt_ms
                      : !strchr(g->edges[p].rpc_id, '.') ? g->edges[p].rt_ms : edge_finish(&g->edges[p]);
    for (int i = a; i < b; i++) {
        int e = k[i];
        num_edges += 1 + L->sub[e];
        if (L->ht[e] > rd) rd = L->ht[e];
        if (nkids(L, e) > 0) nsub++;
        int64_t f = edge_finish(&g->edges[e]);
        if (f > latency) latency = f;
    }
    Condition *c = &l->cond;
    cond_clear(c);
    const Edge *first = &g->edges[k[a]];
    cond_set_str(c, CF_ID, g->service);
    cond_set_str(c, CF_START_NODE, first->src);
    if (p != g->n) cond_set_str(c, CF_CALLER, g->edges[p].src);
    cond_set_num(c, CF_NUM_EDGES, num_edges);
    cond_set_num(c, CF_NUM_CURRENT_EDGES, b - a);
    cond_set_num(c, CF_NUM_SUBGRAPHS, split ? n_split_children : nsub);
    cond_set_num(c, CF_REMAINING_DEPTH, rd);
    cond_set_str(c, CF_START_EDGE_ID, edge_local_id(first));
    cond_set_num(c, CF_START_COMM, first->start_ms);
    cond_set_num(c, CF_LATENCY, latency);
    return idx;
}

static void set_children(Layers *L, int idx, int base) {
    int cnt = L->n_tmp - base;
    if (L->n_child + cnt > L->cap_child) {
        L->cap_child = L->n_child + cnt + L->cap_child + 16;
        L->child = xrealloc(L->child, (size_t)L->cap_child * sizeof *L->child);
    }
    L->v[idx].first_child = L->n_child;
    L->v[idx].n_children = cnt;
    if (cnt) memcpy(L->child + L->n_child, L->tmp + base, (size_t)cnt * sizeof *L->tmp);
    L->n_child += cnt;
    L->n_tmp = base;
}

static int emit_layer(Layers *L, int p, int parent, const LayerOpts *o);

// A plain layer over kids(p)[a, b), then each child layer (of edges with children) in order.
static int emit_plain(Layers *L, int p, int a, int b, int parent, const LayerOpts *o) {
    int idx = new_layer(L, p, a, b, false, 0, parent);
    int base = L->n_tmp;
    for (int i = a; i < b; i++) {
        int e = kids(L, p)[i];
        if (nkids(L, e) > 0) {
            int c = emit_layer(L, e, idx, o);
            push_tmp(L, c);
        }
    }
    set_children(L, idx, base);
    return idx;
}

// The split tree of the release: chunks, grouped by group_max, regrouped while there are more
// than group_max groups, under one top split layer.
typedef struct { int a, b; bool chunk; int first, cnt; } SplitNode;
typedef struct { SplitNode *v; int n, cap; int *kid; int nk, capk; } SplitTree;
static int split_node(SplitTree *t, int a, int b, bool chunk) {
    if (t->n == t->cap) { t->cap = t->cap ? 2 * t->cap : 16; t->v = xrealloc(t->v, (size_t)t->cap * sizeof *t->v); }
    t->v[t->n] = (SplitNode){a, b, chunk, 0, 0};
    return t->n++;
}
static int split_group(SplitTree *t, const int *ids, int n) {  // a merged node over ids[0..n)
    int id = split_node(t, t->v[ids[0]].a, t->v[ids[n - 1]].b, false);
    if (t->nk + n > t->capk) { t->capk = t->nk + n + t->capk + 16; t->kid = xrealloc(t->kid, (size_t)t->capk * sizeof *t->kid); }
    t->v[id].first = t->nk; t->v[id].cnt = n;
    memcpy(t->kid + t->nk, ids, (size_t)n * sizeof *ids);
    t->nk += n;
    return id;
}
static int split_merge(SplitTree *t, const int *ids, int n, int gmax) {
    int ng = (n + gmax - 1) / gmax;
    int *groups = xmalloc((size_t)ng * sizeof *groups);
    for (int i = 0; i < ng; i++) {
        int lo = i * gmax, cnt = n - lo < gmax ? n - lo : gmax;
        // the release wraps even a lone leftover in its own split layer, which its validator then
        // rejects (code 19: a part not smaller than the whole); a lone node stands for itself here
        groups[i] = cnt == 1 ? ids[lo] : split_group(t, ids + lo, cnt);
    }
    int top = ng == 1 ? groups[0] : ng > gmax ? split_merge(t, groups, ng, gmax) : split_group(t, groups, ng);
    free(groups);
    return top;
}
static int emit_split_node(Layers *L, const SplitTree *t, int node, int p, int parent, const LayerOpts *o) {
    const SplitNode *s = &t->v[node];
    if (s->chunk) return emit_plain(L, p, s->a, s->b, parent, o);
    int idx = new_layer(L, p, s->a, s->b, true, s->cnt, parent);
    int base = L->n_tmp;
    for (int i = 0; i < s->cnt; i++) {
        int c = emit_split_node(L, t, t->kid[s->first + i], p, idx, o);
        push_tmp(L, c);
    }
    set_children(L, idx, base);
    return idx;
}

static int emit_layer(Layers *L, int p, int parent, const LayerOpts *o) {
    int m = nkids(L, p), T = o ? o->split_threshold : 0;
    if (T <= 0 || m <= T) return emit_plain(L, p, 0, m, parent, o);
    int len;
    if (o->chunk_len) len = o->chunk_len(o->ctx, p == L->g->n ? "" : L->g->edges[p].rpc_id, m);
    else if (o->rng) { int lo = T * 4 / 5; len = lo + 1 + (int)rng_below(o->rng, (uint64_t)(T - lo)); }
    else len = T;
    if (len < 1) len = 1;
    if (len > T) len = T;
    int gmax = o->group_max > 1 ? o->group_max : 5;
    SplitTree t = {0};
    int nch = (m + len - 1) / len;
    int *chunks = xmalloc((size_t)nch * sizeof *chunks);
    for (int i = 0; i < nch; i++) chunks[i] = split_node(&t, i * len, (i + 1) * len < m ? (i + 1) * len : m, true);
    int top = split_merge(&t, chunks, nch, gmax);
    int idx = emit_split_node(L, &t, top, p, parent, o);
    free(chunks); free(t.v); free(t.kid);
    return idx;
}

bool layers_build(Layers *L, const CallGraph *g, const LayerOpts *o, char *err, size_t errlen) {
    L->g = g; L->n = 0; L->n_child = 0; L->n_tmp = 0;
    int n = g->n, bad;
    for (int i = 1; i < n; i++)
        if (rpc_id_cmp(g->edges[i - 1].rpc_id, g->edges[i].rpc_id) >= 0) {
            snprintf(err, errlen, "edges not sorted by rpc_id (or duplicate) at edge %d (%s)", i, g->edges[i].rpc_id);
            return false;
        }
    GraphCheck gc = graph_validate(g, 0, &bad);
    if (gc != GRAPH_OK) {
        snprintf(err, errlen, "invalid graph (%s%s%s)", graph_check_name(gc), bad >= 0 ? " at rpc_id " : "",
                 bad >= 0 ? g->edges[bad].rpc_id : "");
        return false;
    }
    if (!g->service || strlen(g->service) >= FMT_NAME_MAX || !text_safe_name(g->service)) {
        snprintf(err, errlen, "service name missing, too long or with a character the text formats cannot carry");
        return false;
    }
    for (int i = 0; i < n; i++) {
        const Edge *e = &g->edges[i];
        if (strlen(e->src) >= FMT_NAME_MAX || strlen(e->dst) >= FMT_NAME_MAX || strlen(e->rpc_id) >= FMT_ID_MAX) {
            snprintf(err, errlen, "edge %s: a name or rpc_id longer than %d bytes", e->rpc_id, FMT_NAME_MAX - 1);
            return false;
        }
        if (!text_safe_name(e->src) || !text_safe_name(e->dst) || !text_safe_name(edge_local_id(e))) {
            snprintf(err, errlen, "edge %s: a name or id with a character the text formats cannot carry (empty, control, / : , ) >)", e->rpc_id);
            return false;
        }
    }
    if ((size_t)n + 2 > L->cap_edges) {
        L->cap_edges = (size_t)n + 2 + L->cap_edges;
        L->kid_start = xrealloc(L->kid_start, L->cap_edges * sizeof(int));
        L->kid = xrealloc(L->kid, L->cap_edges * sizeof(int));
        L->sub = xrealloc(L->sub, L->cap_edges * sizeof(int));
        L->ht = xrealloc(L->ht, L->cap_edges * sizeof(int));
    }
    // parents through a stack of open ancestors; parent n = the virtual parent of the root edge.
    // L->sub doubles as the parent array until the counts are needed.
    int *par = L->sub, *stack = L->ht, top = 0;
    for (int i = 0; i < n; i++) {
        const char *id = g->edges[i].rpc_id;
        while (top > 0) {
            const char *s = g->edges[stack[top - 1]].rpc_id;
            size_t k = strlen(s);
            if (!strncmp(s, id, k) && id[k] == '.') break;
            top--;
        }
        par[i] = top ? stack[top - 1] : n;
        stack[top++] = i;
    }
    memset(L->kid_start, 0, ((size_t)n + 2) * sizeof(int));
    for (int i = 0; i < n; i++) L->kid_start[par[i] + 1]++;
    for (int p = 0; p <= n; p++) L->kid_start[p + 1] += L->kid_start[p];
    // fill in rpc order; kid_start[p] is used as a cursor, then restored by shifting
    for (int i = 0; i < n; i++) L->kid[L->kid_start[par[i]]++] = i;
    for (int p = n; p > 0; p--) L->kid_start[p] = L->kid_start[p - 1];
    L->kid_start[0] = 0;
    // subtree sizes and heights, children before parents (reverse rpc order)
    for (int i = 0; i <= n; i++) { L->sub[i] = 0; L->ht[i] = 0; }
    for (int p = n - 1; p >= 0; p--) {
        const int *k = kids(L, p);
        for (int j = 0; j < nkids(L, p); j++) {
            L->sub[p] += 1 + L->sub[k[j]];
            if (1 + L->ht[k[j]] > L->ht[p]) L->ht[p] = 1 + L->ht[k[j]];
        }
    }
    if (nkids(L, n) != 1) { snprintf(err, errlen, "expected one root edge, found %d", nkids(L, n)); return false; }
    LayerOpts none = {0};
    emit_layer(L, n, -1, o ? o : &none);
    return true;
}

void layers_answer(const Layers *L, int li, LayerAnswer *a) {
    const Layer *l = &L->v[li];
    answer_clear(a);
    a->split = l->split;
    a->terminated = true;
    if (!l->split) {
        int n;
        const int *es = layers_edges(L, l, &n);
        for (int i = 0; i < n; i++) {
            const Edge *e = &L->g->edges[es[i]];
            FEdge *f = answer_add_edge(a);
            strcpy(f->id, edge_local_id(e));
            f->src[0] = 0;
            strcpy(f->dst, e->dst);
            f->type = e->type;
            f->start = e->start_ms;
            f->finish = edge_finish(e);
            f->present = EF_LAYER;
            f->line = 0;
        }
    }
    for (int i = 0; i < l->n_children; i++) {
        const Layer *c = &L->v[L->child[l->first_child + i]];
        FSub *s = answer_add_sub(a);
        strcpy(s->edge_id, edge_local_id(&L->g->edges[c->parent_edge]));
        s->cond = c->cond;
        s->line = 0;
    }
}
