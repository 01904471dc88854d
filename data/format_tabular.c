// The tabular format (the GReaT baseline of the paper): one record per graph, a header with the
// service id and (each kept with probability keep_prob, as the released code does) num_edges,
// latency (the root edge's rt) and depth, then every edge with its full rpc_id and source:
//   [GENERATE GRAPH]id:S_000034483/latency:8/num_edges:7/depth:3
//   <edges>
//   (source is USER,edge_id is 0,communication finishes at 8 milliseconds,type is http,...)
//   </edges>
#include "data/format.h"
#include "util/util.h"
#include <stdio.h>
#include <string.h>

#define LIT(p, n, lit) ((n) >= sizeof(lit) - 1 && !memcmp((p), lit, sizeof(lit) - 1))
#define IS(p, n, lit) ((n) == sizeof(lit) - 1 && !memcmp((p), lit, sizeof(lit) - 1))

void tabular_render(TextBuf *out, const CallGraph *g, const TabularOpts *o, Rng *rng) {
    double keep = o ? o->keep_prob : 0.9;
    Condition h;
    cond_clear(&h);
    cond_set_str(&h, CF_ID, g->service);
    uint32_t fields = CF_BIT(CF_ID);
    int root = -1;
    for (int i = 0; i < g->n && root < 0; i++)
        if (!strcmp(g->edges[i].rpc_id, "0")) root = i;
    cond_set_num(&h, CF_NUM_EDGES, g->n);
    if (root >= 0) cond_set_num(&h, CF_LATENCY, g->edges[root].rt_ms);
    cond_set_num(&h, CF_DEPTH, graph_depth(g));
    // draw in a fixed order so a seed gives the same text everywhere
    const int opt[3] = {CF_NUM_EDGES, CF_LATENCY, CF_DEPTH};
    for (int i = 0; i < 3; i++)
        if (!rng || rng_uniform(rng) < keep) fields |= CF_BIT(opt[i]);
    tb_put(out, "[GENERATE GRAPH]", 16);
    cond_render(out, &h, fields, rng);
    tb_put(out, "\n<edges>\n", 9);
    for (int i = 0; i < g->n; i++) {
        const Edge *e = &g->edges[i];
        edge_render_parts(out, e->rpc_id, e->type, e->src, e->dst, e->start_ms, edge_finish(e), EF_TABULAR, rng);
        tb_putc(out, '\n');
    }
    tb_put(out, "</edges>\n", 9);
}

int tabular_next(TextCursor *c, CallGraph *g, Condition *hdr, char *err, size_t errlen) {
    if (!cursor_skip_blank(c)) return 0;
    const char *s;
    size_t n;
    char e2[400];
    cursor_line(c, &s, &n);
    int head = c->line;
    if (!LIT(s, n, "[GENERATE GRAPH]")) {
        snprintf(err, errlen, "%s:%d: expected a record starting with [GENERATE GRAPH]", c->name, c->line);
        return -1;
    }
    if (!cond_parse(s + 16, n - 16, hdr, e2, sizeof e2)) { snprintf(err, errlen, "%s:%d: header: %s", c->name, c->line, e2); return -1; }
    if (!cond_has(hdr, CF_ID)) { snprintf(err, errlen, "%s:%d: header: missing field 'id'", c->name, c->line); return -1; }
    const uint32_t allowed = CF_BIT(CF_ID) | CF_BIT(CF_NUM_EDGES) | CF_BIT(CF_LATENCY) | CF_BIT(CF_DEPTH);
    for (int f = 0; f < CF_NFIELDS; f++)
        if (cond_has(hdr, f) && !(allowed >> f & 1u)) {
            snprintf(err, errlen, "%s:%d: header: field '%s' does not belong to the tabular format", c->name, c->line, cond_field_name(f));
            return -1;
        }
    if (!cursor_line(c, &s, &n) || !IS(s, n, "<edges>")) {
        snprintf(err, errlen, "%s:%d: expected <edges> after the header at line %d", c->name, c->line, head);
        return -1;
    }
    graph_clear(g);
    graph_set_ids(g, "", hdr->id);
    FEdge e;
    for (;;) {
        if (!cursor_line(c, &s, &n)) { snprintf(err, errlen, "%s:%d: record of line %d ends without </edges>", c->name, c->line, head); return -1; }
        if (IS(s, n, "</edges>")) break;
        int r = edge_parse(s, n, &e, EF_TABULAR, e2, sizeof e2);
        if (r <= 0) {
            snprintf(err, errlen, "%s:%d: edge: %s", c->name, c->line, r < 0 ? "missing ')'" : e2);
            return -1;
        }
        graph_add_edge(g, e.id, e.type, e.src, e.dst, e.start, e.finish - e.start);
    }
    graph_sort(g);
    return 1;
}
