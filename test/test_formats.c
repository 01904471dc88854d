// The text formats: graph -> text -> graph is the identity for every format over thousands of
// random valid graphs (random attribute orders, dropped fields, split layers); every layer of a
// real decomposition passes layer_check; partial model output is reported precisely; malformed
// text fails with the line and the field named.
#include "data/format.h"
#include "data/layers.h"
#include "data/stats.h"
#include "test/test.h"
#include "util/rng.h"
#include "util/util.h"

// A random valid call graph: a tree grown top-down so every child lies inside its parent's time,
// with wide layers now and then (to exercise <split>) and depth up to 7.
static void random_graph(Rng *r, CallGraph *g, int max_edges) {
    graph_clear(g);
    char svc[32], name[32], rpc[256];
    snprintf(svc, sizeof svc, "S_%09d", (int)rng_below(r, 1000000));
    graph_set_ids(g, "T_x", svc);
    int n = 1 + (int)rng_below(r, (uint64_t)max_edges);
    if (rng_below(r, 10) == 0) n = 1;
    int64_t rt = (int64_t)rng_below(r, 2000);
    snprintf(name, sizeof name, "MS_%05d", (int)rng_below(r, 100000));
    graph_add_edge(g, "0", RPC_HTTP, "USER", name, 0, rt);
    int *nkids = xcalloc((size_t)n, sizeof *nkids);
    int64_t *last = xcalloc((size_t)n, sizeof *last);
    bool wide = rng_below(r, 4) == 0;   // one parent collects most children
    int hub = 0;
    for (int i = 1; i < n; i++) {
        int p;
        do {
            p = wide && rng_below(r, 3) ? hub : (int)rng_below(r, (uint64_t)g->n);
        } while (rpc_id_depth(g->edges[p].rpc_id) >= 7);
        const Edge *pe = &g->edges[p];
        // siblings start in call order (rpc ids are handed out as calls are made)
        if (nkids[p] == 0) last[p] = pe->start_ms;
        int64_t start = last[p] + (int64_t)rng_below(r, (uint64_t)(edge_finish(pe) - last[p]) + 1);
        last[p] = start;
        int64_t len = (int64_t)rng_below(r, (uint64_t)(edge_finish(pe) - start) + 1);
        snprintf(rpc, sizeof rpc, "%s.%d", pe->rpc_id, ++nkids[p]);
        snprintf(name, sizeof name, "MS_%05d", (int)rng_below(r, 300));
        char src[FMT_NAME_MAX];
        snprintf(src, sizeof src, "%s", pe->dst);
        graph_add_edge(g, rpc, (int)rng_below(r, RPC_NTYPES), src, name, start, len);
        if (wide && i == 1) hub = 1;
    }
    free(nkids); free(last);
    graph_sort(g);
}

typedef struct { int layers, bad; char first[400]; } CheckCtx;
static void check_visit(void *ctx, const LayerVisit *v) {
    CheckCtx *c = ctx;
    char detail[300];
    int code = layer_check(v->cond, v->ans, NULL, detail, sizeof detail);
    c->layers++;
    if (code != LC_OK && !c->bad++) snprintf(c->first, sizeof c->first, "line %d: %s (%s)", v->line, layer_check_name(code), detail);
}

static void test_roundtrip_tabular(void) {
    Rng r;
    rng_seed(&r, 11);
    CallGraph g, h;
    graph_init(&g); graph_init(&h);
    TextBuf t = {0};
    TabularOpts o = {0.9};
    int bad = 0;
    for (int k = 0; k < 3000; k++) {
        random_graph(&r, &g, k % 10 == 0 ? 60 : 12);
        REQUIRE(graph_validate(&g, 0, NULL) == GRAPH_OK);
        tb_clear(&t);
        tabular_render(&t, &g, &o, &r);
        TextCursor c;
        cursor_init(&c, t.p, t.n, "mem");
        Condition hdr;
        char err[400];
        int rc = tabular_next(&c, &h, &hdr, err, sizeof err);
        if (rc != 1 || !graph_equal(&g, &h) || !cond_has(&hdr, CF_ID) || (cond_has(&hdr, CF_NUM_EDGES) && hdr.v[CF_NUM_EDGES] != g.n)) {
            if (!bad++) printf("    graph %d: rc %d %s\n%s", k, rc, rc < 0 ? err : "", t.p);
        }
        CHECK(tabular_next(&c, &h, &hdr, err, sizeof err) == 0);
    }
    CHECKF(bad == 0, "%d of 3000 graphs changed", bad);
    graph_free(&g); graph_free(&h); tb_free(&t);
}

static void roundtrip_recursive(int split_threshold) {
    Rng r;
    rng_seed(&r, 12 + split_threshold);
    CallGraph g, h;
    graph_init(&g); graph_init(&h);
    TextBuf t = {0};
    RecursiveOpts o = {0.9, 0.5, split_threshold, false};
    int bad = 0, splits = 0;
    CheckCtx cc = {0};
    char err[400];
    // many graphs in ONE text: the parser must find every graph boundary
    for (int k = 0; k < 3000; k++) {
        random_graph(&r, &g, k % 5 == 0 ? 80 : 12);
        tb_clear(&t);
        REQUIRE(recursive_render(&t, &g, &o, &r, err, sizeof err));
        if (strstr(t.p, "<split>")) splits++;
        TextCursor c;
        cursor_init(&c, t.p, t.n, "mem");
        int rc = recursive_next(&c, &h, check_visit, &cc, err, sizeof err);
        if (rc != 1 || !graph_equal(&g, &h)) {
            if (!bad++) printf("    graph %d: rc %d %s\n%s", k, rc, rc < 0 ? err : "", t.p);
        }
    }
    CHECKF(bad == 0, "%d of 3000 graphs changed", bad);
    CHECKF(cc.bad == 0, "%d of %d layers fail layer_check; first: %s", cc.bad, cc.layers, cc.first);
    if (split_threshold) CHECKF(splits > 50, "only %d graphs had a <split>", splits);
    else CHECK(splits == 0);
    graph_free(&g); graph_free(&h); tb_free(&t);
}
static void test_roundtrip_recursive(void) { roundtrip_recursive(0); }
static void test_roundtrip_recursive_split(void) { roundtrip_recursive(15); }

static void test_roundtrip_instruction(void) {
    Rng r;
    rng_seed(&r, 13);
    CallGraph g, h;
    graph_init(&g); graph_init(&h);
    TextBuf text = {0}, p = {0}, a = {0};
    Layers L;
    layers_init(&L);
    LayerAnswer scratch;
    answer_init(&scratch);
    InstructOpts o;
    instruct_opts_default(&o);
    o.desc_prob = 0.7;
    // per graph, stats in which every communication is rare and the latency high, so the
    // special sentences appear in the prompts (on odd graphs)
    StatsOpts so = {1, 0.99, 0};
    CallGraph root_only;
    graph_init(&root_only);
    int specials = 0, subtree_named = 0, subtree_wrong = 0;
    int bad = 0, samples = 0, checked_bad = 0;
    char err[400];
    InstructSample s;
    instruct_sample_init(&s);
    GraphAssembler as;
    for (int k = 0; k < 2000; k++) {
        random_graph(&r, &g, k % 5 == 0 ? 70 : 10);
        LayerOpts lo = {.split_threshold = 15, .group_max = 5, .rng = &r};
        REQUIRE(layers_build(&L, &g, &lo, err, sizeof err));
        tb_clear(&text);
        Stats stats;
        StatsBuilder *sb = stats_builder_new(&so);
        // g twice and its root edge alone: the root call is common, every other call rare
        graph_clear(&root_only);
        graph_set_ids(&root_only, "", g.service);
        graph_add_edge(&root_only, "0", g.edges[0].type, g.edges[0].src, g.edges[0].dst, 0, g.edges[0].rt_ms);
        stats_builder_add(sb, &g);
        stats_builder_add(sb, &g);
        stats_builder_add(sb, &root_only);
        stats_builder_finish(sb, &stats);
        const ServiceStats *st = k % 2 ? stats_find(&stats, g.service) : NULL;
        o.rare_subtree = k % 4 == 3;
        o.finish_marker = k % 3 != 0;
        for (int li = 0; li < L.n; li++) {
            tb_clear(&p); tb_clear(&a);
            instruct_render_layer(&p, &a, &L, li, st, &o, &r, &scratch);
            if (strstr(p.p, "Include an edge from ") || strstr(p.p, "with high latency")) specials++;
            // the root layer only holds USER -> x: naming another call needs the subtree scope
            if (li == 0 && strstr(p.p, "Include an edge from MS_")) { if (o.rare_subtree) subtree_named++; else subtree_wrong++; }
            CHECK(o.finish_marker == has_suffix(a.p, ">\n\n ### Finish\n"));
            CHECK(p.n > 0 && has_suffix(p.p, "\n ### Answer: \n"));
            tb_put(&text, p.p, p.n);
            tb_put(&text, a.p, a.n);
            samples++;
        }
        TextCursor c;
        cursor_init(&c, text.p, text.n, "mem");
        assembler_init(&as, &h);
        int rc;
        while ((rc = instruct_next(&c, &s, err, sizeof err)) == 1) {
            if (layer_check(&s.req, &s.ans, NULL, NULL, 0) != LC_OK) checked_bad++;
            if (!assembler_add(&as, &s.req, &s.ans, s.line, NULL, err, sizeof err)) { rc = -1; break; }
        }
        graph_sort(&h);
        if (rc < 0 || !assembler_done(&as) || !graph_equal(&g, &h)) {
            if (!bad++) printf("    graph %d: rc %d %s\n%s", k, rc, rc < 0 ? err : "", text.p);
        }
        assembler_free(&as);
        stats_free(&stats);
    }
    CHECKF(specials > 1000, "only %d prompts with a special instruction", specials);
    graph_free(&root_only);
    CHECKF(subtree_named > 50 && subtree_wrong == 0, "root prompts naming a deeper call: %d with --rare-subtree, %d without", subtree_named, subtree_wrong);
    CHECKF(bad == 0, "%d of 2000 graphs changed", bad);
    CHECKF(checked_bad == 0, "%d of %d samples fail layer_check", checked_bad, samples);
    instruct_sample_free(&s);
    layers_free(&L); answer_free(&scratch);
    graph_free(&g); graph_free(&h); tb_free(&text); tb_free(&p); tb_free(&a);
}

// Layer fields against their definitions, split partitions included.
static void test_layer_fields(void) {
    Rng r;
    rng_seed(&r, 14);
    CallGraph g;
    graph_init(&g);
    Layers L;
    layers_init(&L);
    char err[300];
    int bad = 0;
    for (int k = 0; k < 1000; k++) {
        random_graph(&r, &g, k % 10 == 0 ? 250 : 90);
        LayerOpts lo = {.split_threshold = 15, .group_max = 5, .rng = &r};
        REQUIRE(layers_build(&L, &g, &lo, err, sizeof err));
        CHECK(L.v[0].cond.v[CF_NUM_EDGES] == g.n && L.v[0].cond.v[CF_REMAINING_DEPTH] == graph_depth(&g) - 1);
        int plain_edges = 0;
        for (int i = 0; i < L.n; i++) {
            const Layer *l = &L.v[i];
            int64_t sum = l->split ? 0 : l->b - l->a, rdmax = -1;
            for (int j = 0; j < l->n_children; j++) {
                const Layer *c = &L.v[L.child[l->first_child + j]];
                sum += c->cond.v[CF_NUM_EDGES];
                if (c->cond.v[CF_REMAINING_DEPTH] > rdmax) rdmax = c->cond.v[CF_REMAINING_DEPTH];
                if (c->parent != i) bad++;
                if (L.child[l->first_child + j] <= i) bad++;   // pre-order: children after parents
            }
            if (sum != l->cond.v[CF_NUM_EDGES]) bad++;
            if (!l->split) {
                plain_edges += l->b - l->a;
                if (l->b - l->a > 15) bad++;
                if (l->n_children && rdmax + 1 != l->cond.v[CF_REMAINING_DEPTH]) bad++;
            } else if (rdmax != l->cond.v[CF_REMAINING_DEPTH] || l->n_children > 5 || l->n_children < 2) bad++;
        }
        if (plain_edges != g.n) bad++;
    }
    CHECKF(bad == 0, "%d violated layer invariants", bad);
    layers_free(&L);
    graph_free(&g);
}

static void test_partial_answers(void) {
    const char *full =
        "<layer>\n<edges>\n"
        "(edge_id is 1,type is rpc,destination is MS_00002,communication starts at 0 milliseconds,communication finishes at 5 milliseconds)\n"
        "(type is mc,edge_id is 2,destination is MS_00003,communication starts at 5 milliseconds,communication finishes at 6 milliseconds)\n"
        "</edges>\n"
        "<subgraph of edge_id 1>id:S_1/start_node:MS_00002/caller:MS_00001/num_edges:1/num_current_edges:1/num_subgraphs:0/remaining_depth:0/start_edge_id:1/start_communication_at:1/latency:5</subgraph>\n"
        "</layer>\n";
    LayerAnswer a;
    answer_init(&a);
    CHECK(answer_parse(full, strlen(full), &a, 1) == ANS_OK && a.terminated && a.n_edges == 2 && a.n_subs == 1);
    CHECK(a.consumed == strlen(full));
    CHECK(!strcmp(a.edges[1].id, "2") && a.edges[1].type == RPC_MC && a.edges[1].finish == 6 && !strcmp(a.subs[0].cond.start_node, "MS_00002"));
    // cut mid-edge: the second edge's third attribute is incomplete
    const char *cut = strstr(full, "destination is MS_00003") + 18;
    CHECK(answer_parse(full, (size_t)(cut - full), &a, 1) == ANS_PARTIAL);
    CHECKF(strstr(a.msg, "line 4") && strstr(a.msg, "mid-edge") && strstr(a.msg, "missing fields destination, communication starts at, communication finishes at"), "%s", a.msg);
    CHECK(a.n_edges == 1 && a.has_partial && (a.partial.present & EF_TYPE) && !strcmp(a.partial.id, "2"));
    // cut inside the subgraph block
    cut = strstr(full, "num_subgraphs:0") + 3;
    CHECK(answer_parse(full, (size_t)(cut - full), &a, 10) == ANS_PARTIAL);
    CHECKF(strstr(a.msg, "line 15") && strstr(a.msg, "subgraph") && strstr(a.msg, "num_subgraphs") && strstr(a.msg, "latency") && !strstr(a.msg, "caller"), "%s", a.msg);
    // cut between lines inside <edges>, and before <edges>
    cut = strstr(full, "</edges>");
    CHECK(answer_parse(full, (size_t)(cut - full), &a, 1) == ANS_PARTIAL && strstr(a.msg, "after 2 edges"));
    CHECK(answer_parse(full, 3, &a, 1) == ANS_PARTIAL);
    cut = strstr(full, "<subgraph") + 5;
    CHECK(answer_parse(full, (size_t)(cut - full), &a, 1) == ANS_PARTIAL && strstr(a.msg, "line 6") && strstr(a.msg, "subgraph block 1"));
    // a stop string stripped after the subgraph line: fine, but not terminated
    cut = strstr(full, "</layer>");
    CHECK(answer_parse(full, (size_t)(cut - full), &a, 1) == ANS_OK && !a.terminated && a.n_subs == 1);
    // every prefix: never a crash, never an error, only OK or PARTIAL
    int errors = 0;
    for (size_t k = 0; k <= strlen(full); k++)
        if (answer_parse(full, k, &a, 1) == ANS_ERROR) errors++;
    CHECKF(errors == 0, "%d prefixes were reported as errors", errors);
    // stop strings: "finish generation" and "##"
    const char *fin = "<layer>\n<edges>\n(edge_id is 0,type is http,destination is MS_1,communication starts at 0 milliseconds,communication finishes at 1 milliseconds)\n</edges>\nnum generated edges = the last edge id - the first edge id + 1 = 0 - 0 + 1 = 1\nfinish generation";
    CHECK(answer_parse(fin, strlen(fin), &a, 1) == ANS_OK && a.terminated && a.n_edges == 1);
    answer_free(&a);
}

static void test_errors_name_line_and_field(void) {
    LayerAnswer a;
    answer_init(&a);
    const char *bad_type = "<layer>\n<edges>\n(edge_id is 1,type is tcp,destination is MS_1,communication starts at 0 milliseconds,communication finishes at 1 milliseconds)\n</edges>\n</layer>\n";
    CHECK(answer_parse(bad_type, strlen(bad_type), &a, 1) == ANS_ERROR);
    CHECKF(strstr(a.msg, "line 3") && strstr(a.msg, "'type'") && strstr(a.msg, "tcp"), "%s", a.msg);
    const char *dup = "<layer>\n<edges>\n(edge_id is 1,edge_id is 2)\n</edges>\n";
    CHECK(answer_parse(dup, strlen(dup), &a, 1) == ANS_ERROR && strstr(a.msg, "line 3") && strstr(a.msg, "twice"));
    const char *missing = "<layer>\n<edges>\n(edge_id is 1,type is db,communication starts at 0 milliseconds,communication finishes at 1 milliseconds)\n</edges>\n";
    CHECK(answer_parse(missing, strlen(missing), &a, 1) == ANS_ERROR);
    CHECKF(strstr(a.msg, "line 3") && strstr(a.msg, "missing destination"), "%s", a.msg);
    const char *ms = "<layer>\n<edges>\n(edge_id is 1,type is db,destination is MS_1,communication starts at 0 ms,communication finishes at 1 milliseconds)\n</edges>\n";
    CHECK(answer_parse(ms, strlen(ms), &a, 1) == ANS_ERROR && strstr(a.msg, "communication starts at"));
    const char *junk = "<layer>\n<edges>\n</edges>\nhello world\n</layer>\n";
    CHECK(answer_parse(junk, strlen(junk), &a, 7) == ANS_ERROR && strstr(a.msg, "line 10") && strstr(a.msg, "hello world"));
    const char *wrong_close = "<split>\n<subgraph of edge_id 0>id:S_1/num_edges:1</subgraph>\n</layer>\n";
    CHECK(answer_parse(wrong_close, strlen(wrong_close), &a, 1) == ANS_ERROR && strstr(a.msg, "line 3"));
    const char *bad_sub = "<layer>\n<edges>\n</edges>\n<subgraph of edge_id 0>id:S_1/latency:x</subgraph>\n</layer>\n";
    CHECK(answer_parse(bad_sub, strlen(bad_sub), &a, 1) == ANS_ERROR);
    CHECKF(strstr(a.msg, "line 4") && strstr(a.msg, "'latency'"), "%s", a.msg);
    Condition c;
    char err[300];
    CHECK(!cond_parse("id:S_1/colour:red", 17, &c, err, sizeof err) && strstr(err, "colour"));
    CHECK(!cond_parse("id:S_1/id:S_2", 13, &c, err, sizeof err) && strstr(err, "twice"));
    CHECK(!cond_parse("id:S_1/num_edges:", 17, &c, err, sizeof err) && strstr(err, "num_edges"));
    CHECK(cond_parse("num_edges:-3/id:S_1", 19, &c, err, sizeof err) && c.v[CF_NUM_EDGES] == -3 && !strcmp(c.id, "S_1"));
    // whole texts: file and line named
    const char *tab = "[GENERATE GRAPH]id:S_1\n<edges>\n(source is USER,edge_id is 0,type is http,destination is MS_1,communication starts at 0 milliseconds,communication finishes at 1 milliseconds)\n(source is MS_1,edge_id is 0.1,type is http,destination is MS_2,communication starts at 0 milliseconds)\n</edges>\n";
    TextCursor cur;
    cursor_init(&cur, tab, strlen(tab), "x.txt");
    CallGraph g;
    graph_init(&g);
    CHECK(tabular_next(&cur, &g, &c, err, sizeof err) < 0);
    CHECKF(strstr(err, "x.txt:4") && strstr(err, "communication finishes at"), "%s", err);
    const char *rec = "[GENERATE GRAPH]id:S_1/start_node:USER\n<layer>\n<edges>\n(edge_id is 0,type is http,destination is MS_1,communication starts at 0 milliseconds,communication finishes at 9 milliseconds)\n</edges>\n"
                      "<subgraph of edge_id 0>id:S_1/start_node:MS_1/caller:USER/num_edges:1/num_current_edges:1/num_subgraphs:0/remaining_depth:0/start_edge_id:1/start_communication_at:1/latency:9</subgraph>\n</layer>\n"
                      "id:S_1/start_node:MS_1/caller:USER/num_edges:1/num_current_edges:1/num_subgraphs:0/remaining_depth:0/start_edge_id:1/start_communication_at:1/latency:8\n<layer>\n<edges>\n"
                      "(edge_id is 1,type is db,destination is MS_2,communication starts at 1 milliseconds,communication finishes at 2 milliseconds)\n</edges>\n</layer>\n";
    cursor_init(&cur, rec, strlen(rec), "r.txt");
    CHECK(recursive_next(&cur, &g, NULL, NULL, err, sizeof err) < 0);
    CHECKF(strstr(err, "line 8") && strstr(err, "'latency'") && strstr(err, "line 6"), "%s", err);
    graph_free(&g);
    answer_free(&a);
}

// Each release error code from a hand-made violation.
static void test_layer_check_codes(void) {
    Condition q;
    char err[300];
    const char *qs = "id:S_1/start_node:MS_1/caller:USER/num_edges:4/num_current_edges:2/num_subgraphs:1/remaining_depth:1/start_edge_id:1/start_communication_at:10/latency:50";
    REQUIRE(cond_parse(qs, strlen(qs), &q, err, sizeof err));
    const char *good =
        "<layer>\n<edges>\n"
        "(edge_id is 1,type is rpc,destination is MS_2,communication starts at 10 milliseconds,communication finishes at 30 milliseconds)\n"
        "(edge_id is 2,type is mc,destination is MS_3,communication starts at 30 milliseconds,communication finishes at 40 milliseconds)\n"
        "</edges>\n"
        "<subgraph of edge_id 1>id:S_1/start_node:MS_2/caller:MS_1/num_edges:2/num_current_edges:2/num_subgraphs:0/remaining_depth:0/start_edge_id:1/start_communication_at:11/latency:30</subgraph>\n"
        "</layer>\n";
    LayerAnswer a;
    answer_init(&a);
    REQUIRE(answer_parse(good, strlen(good), &a, 1) == ANS_OK);
    char detail[300];
    CHECKF(layer_check(&q, &a, NULL, detail, sizeof detail) == LC_OK, "%s", detail);
    struct { const char *from, *to; int code; } cases[] = {
        {"num_edges:2/num_current", "num_edges:3/num_current", LC_NUM_EDGES},
        {"of edge_id 1>", "of edge_id 7>", LC_SUB_EDGE_MISSING},
        {"start_node:MS_2", "start_node:MS_9", LC_SUB_START_NODE},
        {"start_communication_at:11", "start_communication_at:31", LC_SUB_OFFSET},
        {"latency:30<", "latency:35<", LC_SUB_LATENCY},
        {"remaining_depth:0/start", "remaining_depth:2/start", LC_SUB_DEEPER},
        {"finishes at 40", "finishes at 60", LC_EDGE_LATENCY},
        {"starts at 10 milliseconds", "starts at 5 milliseconds", LC_START_BEFORE},
        {"edge_id is 2,", "edge_id is 1,", LC_DUPLICATE},
        {"starts at 30 milliseconds,communication finishes at 40", "starts at 45 milliseconds,communication finishes at 40", LC_START_AFTER_FINISH},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[2048];
        const char *at = strstr(good, cases[i].from);
        REQUIRE(at);
        snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - good), good, cases[i].to, at + strlen(cases[i].from));
        REQUIRE(answer_parse(buf, strlen(buf), &a, 1) == ANS_OK);
        uint32_t all;
        layer_check(&q, &a, &all, detail, sizeof detail);
        CHECKF(all >> cases[i].code & 1u, "case %zu: wanted %s, got mask %x (%s)", i, layer_check_name(cases[i].code), all, detail);
    }
    // no subgraph while depth and edges remain (11), a leaf layer with a subgraph (23), too many edges (13, 22)
    const char *leaf = "<layer>\n<edges>\n(edge_id is 1,type is rpc,destination is MS_2,communication starts at 10 milliseconds,communication finishes at 30 milliseconds)\n"
                       "(edge_id is 2,type is rpc,destination is MS_2,communication starts at 10 milliseconds,communication finishes at 30 milliseconds)\n</edges>\n</layer>\n";
    REQUIRE(answer_parse(leaf, strlen(leaf), &a, 1) == ANS_OK);
    uint32_t all;
    layer_check(&q, &a, &all, NULL, 0);
    CHECK(all >> LC_NO_SUBGRAPH & 1u);
    Condition q2 = q;
    q2.v[CF_NUM_EDGES] = 2; q2.v[CF_REMAINING_DEPTH] = 1;  // num_edges - remaining_depth == 1 -> one edge only
    layer_check(&q2, &a, &all, NULL, 0);
    CHECK(all >> LC_MORE_EDGES & 1u);
    q2 = q; q2.v[CF_NUM_CURRENT_EDGES] = 3;
    layer_check(&q2, &a, &all, NULL, 0);
    CHECK(all >> LC_EDGE_COUNT & 1u);
    REQUIRE(answer_parse(good, strlen(good), &a, 1) == ANS_OK);
    q2 = q; q2.v[CF_REMAINING_DEPTH] = 0;
    layer_check(&q2, &a, &all, NULL, 0);
    CHECK(all >> LC_SUB_AT_LEAF & 1u);
    q2 = q; q2.v[CF_REMAINING_DEPTH] = 3;   // the only subgraph is two levels too shallow
    layer_check(&q2, &a, &all, NULL, 0);
    CHECK(all >> LC_SUB_DEPTH & 1u);
    REQUIRE(answer_parse(good, 40, &a, 1) == ANS_PARTIAL);
    CHECK(layer_check(&q, &a, NULL, NULL, 0) == LC_PARSE);
    answer_free(&a);
}

static void test_stats(void) {
    // 20 graphs of one service: latencies 1..20; MS_1 -> MS_9 in one graph only (5% < 10%)
    StatsOpts o;
    stats_opts_default(&o);
    StatsBuilder *b = stats_builder_new(&o);
    CallGraph g;
    graph_init(&g);
    for (int i = 1; i <= 20; i++) {
        graph_clear(&g);
        graph_set_ids(&g, "", "S_1");
        graph_add_edge(&g, "0", RPC_HTTP, "USER", "MS_1", 0, i);
        graph_add_edge(&g, "0.1", RPC_RPC, "MS_1", i == 7 ? "MS_9" : "MS_2", 0, 1);
        graph_add_edge(&g, "0.2", RPC_RPC, "MS_1", "MS_2", 0, 1);   // twice in a graph counts once
        stats_builder_add(b, &g);
    }
    graph_clear(&g);
    graph_set_ids(&g, "", "S_2");   // a service with one graph gets no statistics
    graph_add_edge(&g, "0", RPC_HTTP, "USER", "MS_1", 0, 3);
    stats_builder_add(b, &g);
    Stats s;
    stats_builder_finish(b, &s);
    REQUIRE(s.n == 1 && s.graphs == 21);
    const ServiceStats *st = stats_find(&s, "S_1");
    REQUIRE(st);
    CHECK(st->latency_max == 20 && st->latency_p90 == 19 && st->latency_mean == 10.5);   // sorted[floor(0.9*20)] = 19
    CHECK(st->n_rare == 1 && stats_is_rare(st, "MS_1", RPC_RPC, "MS_9") && !stats_is_rare(st, "MS_1", RPC_RPC, "MS_2"));
    CHECK(stats_high_latency(st, 19, -1) && !stats_high_latency(st, 18, -1));
    CHECK(!stats_find(&s, "S_2"));
    // JSON round trip through a file
    char path[] = "/tmp/tracellm-stats-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    FILE *f = fdopen(fd, "w");
    stats_write_json(f, &s);
    fclose(f);
    Stats t;
    char err[300];
    REQUIRE(stats_load(path, &t, err, sizeof err));
    const ServiceStats *u = stats_find(&t, "S_1");
    CHECK(u && u->latency_p90 == 19 && u->latency_mean == 10.5 && u->n_rare == 1 && stats_is_rare(u, "MS_1", RPC_RPC, "MS_9"));
    stats_free(&t);
    remove(path);
    stats_free(&s);
    // release merge: per chunk of 10 graphs, p90 = min over chunks
    o.merge_chunk = 10;
    b = stats_builder_new(&o);
    for (int i = 1; i <= 20; i++) {
        graph_clear(&g);
        graph_set_ids(&g, "", "S_1");
        graph_add_edge(&g, "0", RPC_HTTP, "USER", "MS_1", 0, i);
        stats_builder_add(b, &g);
    }
    stats_builder_finish(b, &s);
    REQUIRE(s.n == 1);
    CHECK(s.v[0].latency_p90 == 10 && s.v[0].latency_max == 20);   // chunk 1..10 -> 10, chunk 11..20 -> 20
    stats_free(&s);
    graph_free(&g);
}

int main(void) {
    RUN(test_roundtrip_tabular);
    RUN(test_roundtrip_recursive);
    RUN(test_roundtrip_recursive_split);
    RUN(test_roundtrip_instruction);
    RUN(test_layer_fields);
    RUN(test_partial_answers);
    RUN(test_errors_name_line_and_field);
    RUN(test_layer_check_codes);
    RUN(test_stats);
    TEST_END();
}
