// Fidelity to the paper's released data (../shared/data/tracellm/): our parsers read all three
// files, our layer decomposition reproduces the released recursive text layer for layer, and our
// scratchpad equals the released instruction samples'. Skips when ../shared/data is absent.
#include "data/format.h"
#include "data/layers.h"
#include "test/test.h"
#include "util/util.h"

static char *load(const char *dir, const char *name, size_t *len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tracellm/%s", dir, name);
    return read_file(path, len);
}

static CallGraph *tab_graphs;
static int n_tab;

static void test_tabular_dataset(void) {
    SHARED_OR_SKIP(dir);
    size_t len;
    char *text = load(dir, "tabular_dataset.txt", &len);
    TextCursor c;
    cursor_init(&c, text, len, "tabular_dataset.txt");
    CallGraph g;
    graph_init(&g);
    Condition h;
    char err[400];
    int rc, invalid = 0, inconsistent = 0;
    size_t cap = 0;
    while ((rc = tabular_next(&c, &g, &h, err, sizeof err)) == 1) {
        if (graph_validate(&g, 15, NULL) != GRAPH_OK) invalid++;
        int root = graph_find(&g, "0");
        if ((cond_has(&h, CF_NUM_EDGES) && h.v[CF_NUM_EDGES] != g.n) || (cond_has(&h, CF_DEPTH) && h.v[CF_DEPTH] != graph_depth(&g)) ||
            (cond_has(&h, CF_LATENCY) && h.v[CF_LATENCY] != g.edges[root].rt_ms))
            inconsistent++;
        grow((void **)&tab_graphs, &cap, (size_t)n_tab + 1, sizeof *tab_graphs);
        graph_init(&tab_graphs[n_tab]);
        graph_copy(&tab_graphs[n_tab++], &g);
    }
    CHECKF(rc == 0, "%s", err);
    CHECKF(n_tab == 1089, "%d graphs", n_tab);
    CHECKF(invalid == 0, "%d invalid graphs", invalid);
    CHECKF(inconsistent == 0, "%d headers disagree with their edges", inconsistent);
    graph_free(&g);
    free(text);
}

// ---- recursive_dataset.txt, layer for layer ----
typedef struct { Condition cond; LayerAnswer ans; char prefix[256]; bool in_split; int line; } FileLayer;
typedef struct { FileLayer *v; int n, cap; } FileLayers;
static void copy_answer(LayerAnswer *dst, const LayerAnswer *src) {
    answer_init(dst);
    dst->split = src->split;
    for (int i = 0; i < src->n_edges; i++) *answer_add_edge(dst) = src->edges[i];
    for (int i = 0; i < src->n_subs; i++) *answer_add_sub(dst) = src->subs[i];
}
static void collect(void *ctx, const LayerVisit *v) {
    FileLayers *f = ctx;
    if (f->n == f->cap) { f->cap = f->cap ? 2 * f->cap : 16; f->v = xrealloc(f->v, (size_t)f->cap * sizeof *f->v); }
    FileLayer *l = &f->v[f->n++];
    l->cond = *v->cond;
    copy_answer(&l->ans, v->ans);
    snprintf(l->prefix, sizeof l->prefix, "%s", v->prefix);
    l->in_split = v->in_split;
    l->line = v->line;
}
// The release draws each split's chunk length at random; read it back from the file: the first
// chunk under a parent edge is a full one.
static int file_chunk_len(void *ctx, const char *parent_rpc_id, int n) {
    FileLayers *f = ctx;
    for (int i = 0; i < f->n; i++)
        if (f->v[i].in_split && !f->v[i].ans.split && !strcmp(f->v[i].prefix, parent_rpc_id)) return (int)f->v[i].cond.v[CF_NUM_CURRENT_EDGES];
    return 15;
}
static bool same_edges(const LayerAnswer *a, const LayerAnswer *b) {
    if (a->n_edges != b->n_edges) return false;
    for (int i = 0; i < a->n_edges; i++) {
        const FEdge *x = &a->edges[i], *y = &b->edges[i];
        if (strcmp(x->id, y->id) || strcmp(x->dst, y->dst) || x->type != y->type || x->start != y->start || x->finish != y->finish) return false;
    }
    return true;
}

static void test_recursive_dataset(void) {
    SHARED_OR_SKIP(dir);
    if (n_tab != 1089) SKIP("needs test_tabular_dataset");
    size_t len;
    char *text = load(dir, "recursive_dataset.txt", &len);
    TextCursor c;
    cursor_init(&c, text, len, "recursive_dataset.txt");
    CallGraph g;
    graph_init(&g);
    Layers L;
    layers_init(&L);
    LayerAnswer ours;
    answer_init(&ours);
    FileLayers f = {0};
    char err[400];
    int rc, k = 0, layers = 0, mismatch = 0, splits = 0, check_fail = 0;
    while ((rc = recursive_next(&c, &g, collect, &f, err, sizeof err)) == 1) {
        REQUIRE(k < n_tab);
        CHECKF(graph_equal(&g, &tab_graphs[k]), "graph %d differs from tabular graph %d", k, k);
        LayerOpts lo = {.split_threshold = 15, .group_max = 5, .chunk_len = file_chunk_len, .ctx = &f};
        REQUIRE(layers_build(&L, &tab_graphs[k], &lo, err, sizeof err));
        if (L.n != f.n) { if (!mismatch++) printf("    graph %d: %d layers, file has %d\n", k, L.n, f.n); }
        for (int i = 0; i < L.n && i < f.n; i++) {
            const FileLayer *fl = &f.v[i];
            const Layer *l = &L.v[i];
            layers_answer(&L, i, &ours);
            int diff = -1;
            bool ok = cond_agree(&l->cond, &fl->cond, ~0u, &diff) && (fl->cond.present & ~l->cond.present) == 0 &&
                      (i == 0 || fl->cond.present == CF_LAYER_FIELDS) && l->split == fl->ans.split && same_edges(&ours, &fl->ans) &&
                      ours.n_subs == fl->ans.n_subs;
            for (int s = 0; ok && s < ours.n_subs; s++)
                ok = !strcmp(ours.subs[s].edge_id, fl->ans.subs[s].edge_id) && fl->ans.subs[s].cond.present == CF_LAYER_FIELDS &&
                     cond_agree(&ours.subs[s].cond, &fl->ans.subs[s].cond, ~0u, &diff);
            if (!ok && !mismatch++) printf("    graph %d layer %d (file line %d) differs%s%s\n", k, i, fl->line, diff >= 0 ? " in " : "", diff >= 0 ? cond_field_name(diff) : "");
            splits += l->split;
            layers++;
            if (layer_check(&fl->cond, &fl->ans, NULL, err, sizeof err) != LC_OK && !check_fail++) printf("    file line %d: %s\n", fl->line, err);
        }
        for (int i = 0; i < f.n; i++) answer_free(&f.v[i].ans);
        f.n = 0;
        k++;
    }
    CHECKF(rc == 0, "%s", err);
    CHECKF(k == 489, "%d graphs", k);
    CHECKF(mismatch == 0, "%d layers differ (of %d)", mismatch, layers);
    CHECKF(splits == 6, "%d split layers (the file has 6)", splits);
    CHECKF(check_fail == 0, "%d released layers fail layer_check", check_fail);
    free(f.v);
    answer_free(&ours);
    layers_free(&L);
    graph_free(&g);
    free(text);
}

// ---- recursive_instruction_dataset.txt: the scratchpad ----
// Lines of an answer, with edges and subgraph blocks in canonical attribute order and each
// "Subgraph constraints:" group sorted (both are shuffled in the release).
typedef struct { char **v; int n, cap; } Lines;
static void lines_add(Lines *l, const char *s, size_t n) {
    if (l->n == l->cap) { l->cap = l->cap ? 2 * l->cap : 64; l->v = xrealloc(l->v, (size_t)l->cap * sizeof *l->v); }
    l->v[l->n++] = xstrndup(s, n);
}
static void lines_free(Lines *l) { for (int i = 0; i < l->n; i++) free(l->v[i]); free(l->v); memset(l, 0, sizeof *l); }
static int str_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
static void normalize(const char *t, size_t n, Lines *out) {
    TextBuf b = {0};
    char err[300];
    int group = -1;
    for (size_t pos = 0; pos < n;) {
        const char *nl = memchr(t + pos, '\n', n - pos);
        size_t len = nl ? (size_t)(nl - (t + pos)) : n - pos;
        const char *s = t + pos;
        pos += len + 1;
        tb_clear(&b);
        if (len && s[0] == '(') {
            FEdge e;
            if (edge_parse(s, len, &e, EF_LAYER, err, sizeof err) == 1) { edge_render(&b, &e, EF_LAYER, NULL); s = b.p; len = b.n; }
        } else if (len > 21 && !memcmp(s, "<subgraph of edge_id ", 21)) {
            const char *gt = memchr(s, '>', len);
            Condition c;
            if (gt && cond_parse(gt + 1, len - (size_t)(gt + 1 - s) - 11, &c, err, sizeof err)) {
                tb_put(&b, s, (size_t)(gt + 1 - s));
                cond_render(&b, &c, c.present, NULL);
                tb_puts(&b, "</subgraph>");
                s = b.p; len = b.n;
            }
            if (group >= 0) qsort(out->v + group, (size_t)(out->n - group), sizeof *out->v, str_cmp);
            group = -1;
        }
        lines_add(out, s, len);
        if (len == 21 && !memcmp(s, "Subgraph constraints:", 21)) group = out->n;
    }
    tb_free(&b);
}

static void test_instruction_dataset(void) {
    SHARED_OR_SKIP(dir);
    size_t len;
    char *text = load(dir, "recursive_instruction_dataset.txt", &len);
    TextCursor c;
    cursor_init(&c, text, len, "recursive_instruction_dataset.txt");
    InstructSample s;
    instruct_sample_init(&s);
    TextBuf ours = {0};
    InstructOpts o;
    instruct_opts_default(&o);
    o.finish_marker = false;   // the released example file has no "### Finish" lines
    char err[400];
    int rc, k = 0, differ = 0, check_fail = 0, splits = 0;
    while ((rc = instruct_next(&c, &s, err, sizeof err)) == 1) {
        k++;
        // the truth behind the (possibly partial) requirement line
        Condition t = s.req;
        int64_t sub_edges = 0, max_rd = -1;
        for (int i = 0; i < s.ans.n_subs; i++) {
            sub_edges += s.ans.subs[i].cond.v[CF_NUM_EDGES];
            if (s.ans.subs[i].cond.v[CF_REMAINING_DEPTH] > max_rd) max_rd = s.ans.subs[i].cond.v[CF_REMAINING_DEPTH];
        }
        if (!cond_has(&t, CF_NUM_EDGES)) cond_set_num(&t, CF_NUM_EDGES, (s.ans.split ? 0 : s.ans.n_edges) + sub_edges);
        if (!cond_has(&t, CF_REMAINING_DEPTH)) cond_set_num(&t, CF_REMAINING_DEPTH, s.ans.split ? max_rd : max_rd + 1);
        tb_clear(&ours);
        instruct_answer(&ours, &t, &s.ans, &o, NULL);
        Lines a = {0}, b = {0};
        normalize(s.answer, s.answer_len, &a);
        normalize(ours.p, ours.n, &b);
        bool same = a.n == b.n;
        for (int i = 0; same && i < a.n; i++) same = !strcmp(a.v[i], b.v[i]);
        if (!same && !differ++) {
            printf("    sample %d (line %d) differs:\n--- file\n%.*s--- ours\n%s", k, s.line, (int)s.answer_len, s.answer, ours.p);
        }
        lines_free(&a); lines_free(&b);
        splits += s.ans.split;
        if (layer_check(&s.req, &s.ans, NULL, err, sizeof err) != LC_OK && !check_fail++) printf("    sample %d: %s\n", k, err);
    }
    CHECKF(rc == 0, "%s", err);
    CHECKF(k == 301, "%d samples", k);
    CHECKF(differ == 0, "%d of %d scratchpads differ", differ, k);
    CHECKF(check_fail == 0, "%d released samples fail layer_check", check_fail);
    CHECK(splits == 3);
    tb_free(&ours);
    instruct_sample_free(&s);
    free(text);
}

// Every real graph through every format and back, with shuffled attributes and dropped fields.
static void test_real_roundtrip(void) {
    SHARED_OR_SKIP(dir);
    if (n_tab != 1089) SKIP("needs test_tabular_dataset");
    Rng r;
    rng_seed(&r, 21);
    TextBuf t = {0}, p = {0};
    CallGraph h;
    graph_init(&h);
    Layers L;
    layers_init(&L);
    LayerAnswer scratch;
    answer_init(&scratch);
    InstructSample s;
    instruct_sample_init(&s);
    InstructOpts io;
    instruct_opts_default(&io);
    TabularOpts to = {0.9};
    RecursiveOpts ro = {0.9, 0.5, 15, false};
    char err[400];
    int bad[3] = {0, 0, 0};
    for (int k = 0; k < n_tab; k++) {
        const CallGraph *g = &tab_graphs[k];
        for (int f = 0; f < 3; f++) {
            tb_clear(&t);
            if (f == 0) tabular_render(&t, g, &to, &r);
            else if (f == 1) REQUIRE(recursive_render(&t, g, &ro, &r, err, sizeof err));
            else {
                LayerOpts lo = {.split_threshold = 15, .group_max = 5, .rng = &r};
                REQUIRE(layers_build(&L, g, &lo, err, sizeof err));
                for (int li = 0; li < L.n; li++) {
                    tb_clear(&p);
                    size_t mark = t.n;
                    instruct_render_layer(&p, &t, &L, li, NULL, &io, &r, &scratch);
                    TextBuf tmp = {0};   // prompt before answer
                    tb_put(&tmp, t.p + mark, t.n - mark);
                    t.n = mark;
                    tb_put(&t, p.p, p.n);
                    tb_put(&t, tmp.p, tmp.n);
                    tb_free(&tmp);
                }
            }
            TextCursor c;
            cursor_init(&c, t.p, t.n, "mem");
            Condition hdr;
            int rc = 1;
            if (f == 0) rc = tabular_next(&c, &h, &hdr, err, sizeof err);
            else if (f == 1) rc = recursive_next(&c, &h, NULL, NULL, err, sizeof err);
            else {
                GraphAssembler as;
                assembler_init(&as, &h);
                while (rc == 1 && !assembler_done(&as) && (rc = instruct_next(&c, &s, err, sizeof err)) == 1)
                    if (!assembler_add(&as, &s.req, &s.ans, s.line, NULL, err, sizeof err)) rc = -1;
                graph_sort(&h);
                assembler_free(&as);
            }
            if (rc != 1 || !graph_equal(g, &h)) {
                if (!bad[f]++) printf("    format %d graph %d: %s\n", f, k, rc < 0 ? err : "differs");
            }
        }
    }
    CHECKF(!bad[0] && !bad[1] && !bad[2], "changed graphs: tabular %d, recursive %d, instruction %d of %d", bad[0], bad[1], bad[2], n_tab);
    instruct_sample_free(&s);
    answer_free(&scratch);
    layers_free(&L);
    graph_free(&h);
    tb_free(&t); tb_free(&p);
}

int main(void) {
    RUN(test_tabular_dataset);
    RUN(test_recursive_dataset);
    RUN(test_instruction_dataset);
    RUN(test_real_roundtrip);
    if (tab_graphs) graphs_free(tab_graphs, n_tab);
    TEST_END();
}
