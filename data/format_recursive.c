// The recursive format (pre-training): a graph is its layers in DFS pre-order, each a condition
// line and a body. The root's condition starts with [GENERATE GRAPH] and keeps each optional field
// with probability keep_prob (latency: latency_keep_prob); every other condition line and every
// <subgraph> block carries all ten fields. Edges carry their LOCAL id and no source: the source
// is the layer's start_node and the global rpc_id is the parent's rpc_id + "." + local id.
// Parsing rebuilds the graph with a GraphAssembler, which generation can use the same way.
#include "data/format.h"
#include "data/layers.h"
#include "util/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIT(p, n, lit) ((n) >= sizeof(lit) - 1 && !memcmp((p), lit, sizeof(lit) - 1))

static void render_subs(TextBuf *out, const Layers *L, const Layer *l, Rng *rng) {
    for (int i = 0; i < l->n_children; i++) {
        const Layer *c = &L->v[L->child[l->first_child + i]];
        tb_put(out, "<subgraph of edge_id ", 21);
        tb_puts(out, edge_local_id(&L->g->edges[c->parent_edge]));
        tb_putc(out, '>');
        cond_render(out, &c->cond, CF_LAYER_FIELDS, rng);
        tb_put(out, "</subgraph>\n", 12);
    }
}

// The root condition as the released code shows it: id always, the rest each with keep_prob,
// latency with latency_keep_prob (drawn in a fixed field order, so a seed fixes the text).
static uint32_t recursive_root_fields(double keep, double latency_keep, Rng *rng) {
    static const int opt[] = {CF_START_NODE, CF_NUM_EDGES, CF_START_EDGE_ID, CF_START_COMM, CF_LATENCY,
                              CF_NUM_SUBGRAPHS, CF_REMAINING_DEPTH, CF_NUM_CURRENT_EDGES};
    uint32_t fields = CF_BIT(CF_ID);
    for (size_t i = 0; i < sizeof opt / sizeof opt[0]; i++) {
        double p = opt[i] == CF_LATENCY ? latency_keep : keep;
        if (!rng || rng_uniform(rng) < p) fields |= CF_BIT(opt[i]);
    }
    return fields;
}

void recursive_render_layers(TextBuf *out, const Layers *L, const RecursiveOpts *o, Rng *rng) {
    double keep = o ? o->keep_prob : 0.9, lkeep = o ? o->latency_keep_prob : 0.5;
    // attribute orders draw from `ord`; with canonical_order they are fixed while the dropped root
    // fields are still drawn from rng
    Rng *ord = o && o->canonical_order ? NULL : rng;
    for (int li = 0; li < L->n; li++) {
        const Layer *l = &L->v[li];
        if (li == 0) {
            tb_put(out, "[GENERATE GRAPH]", 16);
            cond_render(out, &l->cond, recursive_root_fields(keep, lkeep, rng), ord);
        } else {
            cond_render(out, &l->cond, CF_LAYER_FIELDS, ord);
        }
        if (l->split) {
            tb_put(out, "\n<split>\n", 9);
            render_subs(out, L, l, ord);
            tb_put(out, "</split>\n", 9);
            continue;
        }
        tb_put(out, "\n<layer>\n<edges>\n", 17);
        int n;
        const int *es = layers_edges(L, l, &n);
        for (int i = 0; i < n; i++) {
            const Edge *e = &L->g->edges[es[i]];
            edge_render_parts(out, edge_local_id(e), e->type, NULL, e->dst, e->start_ms, edge_finish(e), EF_LAYER, ord);
            tb_putc(out, '\n');
        }
        tb_put(out, "</edges>\n", 9);
        render_subs(out, L, l, ord);
        tb_put(out, "</layer>\n", 9);
    }
}

bool recursive_render(TextBuf *out, const CallGraph *g, const RecursiveOpts *o, Rng *rng, char *err, size_t errlen) {
    static _Thread_local Layers L;   // reused: rendering allocates only while graphs grow
    LayerOpts lo = {.split_threshold = o ? o->split_threshold : 0, .group_max = 5, .rng = rng};
    if (!layers_build(&L, g, &lo, err, errlen)) return false;
    recursive_render_layers(out, &L, o, rng);
    return true;
}

// ---- assembling graphs from layers ----
void assembler_init(GraphAssembler *a, CallGraph *g) {
    memset(a, 0, sizeof *a);
    a->g = g;
}
void assembler_free(GraphAssembler *a) { free(a->stack); memset(a, 0, sizeof *a); }
bool assembler_done(const GraphAssembler *a) { return a->started && a->n_stack == 0; }

bool assembler_add(GraphAssembler *a, const Condition *cond, const LayerAnswer *ans, int line, LayerVisit *visit,
                   char *err, size_t errlen) {
    // what the layer inherits: its rpc prefix, the source of its edges, the block it answers
    char prefix[sizeof a->stack[0].prefix];
    const char *src;
    bool in_split = false, root = !a->started;
    int e_diff;
    if (root) {
        if (!cond_has(cond, CF_ID)) { snprintf(err, errlen, "line %d: root condition without 'id'", line); return false; }
        if (ans->split) { snprintf(err, errlen, "line %d: the root layer cannot be a <split>", line); return false; }
        graph_clear(a->g);
        graph_set_ids(a->g, "", cond->id);
        a->started = true;
        prefix[0] = 0;
        src = cond_has(cond, CF_START_NODE) ? cond->start_node : "USER";
    } else {
        if (a->n_stack == 0) { snprintf(err, errlen, "line %d: a layer that no <subgraph> block asked for", line); return false; }
        a->n_stack--;
        const Condition *want = &a->stack[a->n_stack].cond;
        if (!cond_agree(cond, want, CF_LAYER_FIELDS, &e_diff)) {
            snprintf(err, errlen, "line %d: field '%s' disagrees with its <subgraph> block at line %d", line,
                     cond_field_name(e_diff), a->stack[a->n_stack].line);
            return false;
        }
        memcpy(prefix, a->stack[a->n_stack].prefix, sizeof prefix);
        in_split = a->stack[a->n_stack].in_split;
        src = cond_has(cond, CF_START_NODE) ? cond->start_node : want->start_node;
        if (!src[0]) { snprintf(err, errlen, "line %d: layer without start_node", line); return false; }
    }
    size_t pl = strlen(prefix);
    char rpc[sizeof prefix + FMT_ID_MAX + 2];
    if (!ans->split)
        for (int i = 0; i < ans->n_edges; i++) {
            const FEdge *e = &ans->edges[i];
            if (pl) snprintf(rpc, sizeof rpc, "%s.%s", prefix, e->id);
            else snprintf(rpc, sizeof rpc, "%s", e->id);
            if (strchr(e->id, '.')) { snprintf(err, errlen, "line %d: edge_id %s is not a local id", e->line, e->id); return false; }
            graph_add_edge(a->g, rpc, e->type, src, e->dst, e->start, e->finish - e->start);
        }
    // children are pushed last-first so the first block is the next layer (pre-order)
    for (int i = ans->n_subs - 1; i >= 0; i--) {
        const FSub *s = &ans->subs[i];
        if (a->n_stack == a->cap_stack) {
            a->cap_stack = a->cap_stack ? 2 * a->cap_stack : 16;
            a->stack = xrealloc(a->stack, (size_t)a->cap_stack * sizeof *a->stack);
        }
        PendingLayer *t = &a->stack[a->n_stack];
        if (ans->split) {
            const char *dot = strrchr(prefix, '.');
            const char *last = dot ? dot + 1 : prefix;
            if (strcmp(last, s->edge_id)) {
                snprintf(err, errlen, "line %d: a <split> of edge %s holds a block for edge_id %s", s->line, last, s->edge_id);
                return false;
            }
            memcpy(t->prefix, prefix, sizeof prefix);
        } else {
            int k = -1;
            for (int j = 0; j < ans->n_edges && k < 0; j++)
                if (!strcmp(ans->edges[j].id, s->edge_id)) k = j;
            if (k < 0) { snprintf(err, errlen, "line %d: <subgraph of edge_id %s> but the layer has no edge %s", s->line, s->edge_id, s->edge_id); return false; }
            int w = pl ? snprintf(t->prefix, sizeof t->prefix, "%s.%s", prefix, s->edge_id)
                       : snprintf(t->prefix, sizeof t->prefix, "%s", s->edge_id);
            if (w < 0 || (size_t)w >= sizeof t->prefix) { snprintf(err, errlen, "line %d: rpc_id too long", s->line); return false; }
            if (cond_has(&s->cond, CF_START_NODE) && strcmp(s->cond.start_node, ans->edges[k].dst)) {
                snprintf(err, errlen, "line %d: subgraph start_node:%s but edge %s calls %s", s->line, s->cond.start_node, s->edge_id, ans->edges[k].dst);
                return false;
            }
        }
        t->cond = s->cond;
        if (!cond_has(&t->cond, CF_START_NODE)) cond_set_str(&t->cond, CF_START_NODE, src);
        t->line = s->line;
        t->in_split = ans->split;
        a->n_stack++;
    }
    if (visit) {
        static _Thread_local char vprefix[sizeof a->stack[0].prefix];
        memcpy(vprefix, prefix, sizeof prefix);
        *visit = (LayerVisit){vprefix, cond, ans, line, root, in_split};
    }
    return true;
}

// ---- parsing recursive text ----
static int count_lines(const char *p, size_t n) {
    int k = 0;
    for (const char *q = p; (q = memchr(q, '\n', (size_t)(p + n - q))); q++) k++;
    return k;
}

int recursive_next(TextCursor *c, CallGraph *g, LayerVisitor fn, void *ctx, char *err, size_t errlen) {
    if (!cursor_skip_blank(c)) return 0;
    static _Thread_local LayerAnswer ans;
    static _Thread_local GraphAssembler as;
    if (as.g != g) { assembler_free(&as); assembler_init(&as, g); }
    as.started = false;
    as.n_stack = 0;
    char e2[400];
    const char *s;
    size_t n;
    Condition cond;
    int head = c->line + 1;
    do {
        if (!cursor_line(c, &s, &n)) {
            snprintf(err, errlen, "%s:%d: the text ends inside the graph of line %d: the layer under edge %s (asked for at line %d) is missing",
                     c->name, c->line, head, as.stack[as.n_stack - 1].prefix, as.stack[as.n_stack - 1].line);
            return -1;
        }
        int cline = c->line;
        bool is_root = LIT(s, n, "[GENERATE GRAPH]");
        if (is_root != !as.started) {
            if (is_root)
                snprintf(err, errlen, "%s:%d: a new graph starts but the graph of line %d still lacks the layer of <subgraph> at line %d",
                         c->name, cline, head, as.stack[as.n_stack - 1].line);
            else
                snprintf(err, errlen, "%s:%d: expected a graph starting with [GENERATE GRAPH]", c->name, cline);
            return -1;
        }
        if (is_root) { s += 16; n -= 16; }
        if (!cond_parse(s, n, &cond, e2, sizeof e2)) { snprintf(err, errlen, "%s:%d: condition: %s", c->name, cline, e2); return -1; }
        AnsStatus st = answer_parse(c->p + c->pos, c->n - c->pos, &ans, cline + 1);
        if (st != ANS_OK || !ans.terminated) {
            if (st != ANS_OK) snprintf(err, errlen, "%s: %s", c->name, ans.msg);
            else snprintf(err, errlen, "%s:%d: the layer of line %d ends without </layer>", c->name, c->line + count_lines(c->p + c->pos, ans.consumed), cline);
            return -1;
        }
        c->line += count_lines(c->p + c->pos, ans.consumed);
        c->pos += ans.consumed;
        LayerVisit v;
        if (!assembler_add(&as, &cond, &ans, cline, &v, e2, sizeof e2)) { snprintf(err, errlen, "%s: %s", c->name, e2); return -1; }
        if (fn) fn(ctx, &v);
    } while (!assembler_done(&as));
    graph_sort(g);
    return 1;
}
