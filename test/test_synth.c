// The synthetic corpus: clean graphs are valid, the distribution properties docs/SYNTH.md claims
// hold over thousands of graphs, the CSV has the real v2022 shape, quirks appear at their rates,
// and the same seed gives the same bytes.
#include "data/synth.h"
#include "test/test.h"
#include "util/rng.h"
#include "util/util.h"
#include <ctype.h>
#include <math.h>
#include <unistd.h>
#include <zlib.h>

static char tmpdir[256];

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}
static int64_t quantile(int64_t *v, int n, double q) {
    qsort(v, (size_t)n, sizeof *v, cmp_i64);
    int k = (int)(q * n);
    return v[k < n ? k : n - 1];
}
static bool all_digits(const char *s, size_t n) {
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++) if (!isdigit((unsigned char)s[i])) return false;
    return true;
}
static bool is_ms(const char *s) { return !strncmp(s, "MS_", 3) && all_digits(s + 3, strlen(s + 3)); }
// parent rpc_id of e, or -1 for the root (graph in rpc_id order, unique ids)
static int parent_of(const CallGraph *g, int e) {
    const char *dot = strrchr(g->edges[e].rpc_id, '.');
    if (!dot) return -1;
    char buf[256];
    size_t n = (size_t)(dot - g->edges[e].rpc_id);
    memcpy(buf, g->edges[e].rpc_id, n);
    buf[n] = 0;
    return graph_find(g, buf);
}

// Share of sibling pairs (a call and the next call of the same parent) where the next one starts
// after the first returned, over pairs where that is observable (the first call takes >= 1 ms).
static void count_siblings(const CallGraph *g, int64_t *seq, int64_t *par) {
    for (int e = 0; e < g->n; e++) {
        int p = parent_of(g, e);
        if (p < 0 || g->edges[e].rt_ms < 1) continue;
        for (int f = e + 1; f < g->n; f++)
            if (parent_of(g, f) == p) {
                if (g->edges[f].start_ms >= edge_finish(&g->edges[e])) (*seq)++; else (*par)++;
                break;
            }
    }
}

// Every intended graph passes the paper's validity rules, comes out in rpc_id order, starts its
// children no earlier than their parent, and only rpc/http calls have children.
static void test_clean_graphs_valid(void) {
    SynthConfig c;
    synth_config_default(&c);
    c.graphs = 3000;
    Synth *s = synth_new(&c);
    CallGraph g;
    graph_init(&g);
    int bad = 0, early = 0, leaf_with_children = 0, order = 0, names = 0, deep = 0;
    for (int64_t i = 0; i < c.graphs; i++) {
        synth_graph(s, i, &g, NULL, NULL, NULL);
        for (int e = 1; e < g.n; e++) order += rpc_id_cmp(g.edges[e - 1].rpc_id, g.edges[e].rpc_id) >= 0;
        GraphCheck k = graph_validate(&g, 15, NULL);
        if (k != GRAPH_OK && bad++ < 3) printf("    graph %lld: %s\n", (long long)i, graph_check_name(k));
        deep += graph_depth(&g) > c.max_depth;
        names += strncmp(g.trace_id, "T_", 2) || !all_digits(g.trace_id + 2, strlen(g.trace_id + 2)) ||
                 strncmp(g.service, "S_", 2) || strlen(g.service) != 11 || strcmp(g.edges[0].src, "USER");
        for (int e = 0; e < g.n; e++) {
            names += !is_ms(g.edges[e].dst) || (e > 0 && !is_ms(g.edges[e].src)) || g.edges[e].rt_ms < 0;
            int p = parent_of(&g, e);
            if (p < 0) continue;
            early += g.edges[e].start_ms < g.edges[p].start_ms;
            leaf_with_children += g.edges[p].type != RPC_RPC && g.edges[p].type != RPC_HTTP;
        }
    }
    CHECKF(bad == 0, "%d invalid graphs", bad);
    CHECKF(order == 0, "%d edges out of rpc_id order", order);
    CHECKF(early == 0, "%d children start before their parent", early);
    CHECKF(leaf_with_children == 0, "%d mc/db/mq calls with children", leaf_with_children);
    CHECKF(names == 0, "%d bad ids", names);
    CHECKF(deep == 0, "%d graphs deeper than --max-depth", deep);
    graph_free(&g);
    synth_free(s);
}

// Graph i is a pure function of (seed, i): the same in a fresh world, whatever was generated
// before it; another seed gives another corpus.
static void test_graph_determinism(void) {
    SynthConfig c;
    synth_config_default(&c);
    c.graphs = 500;
    Synth *a = synth_new(&c), *b = synth_new(&c);
    c.seed = 2;
    Synth *d = synth_new(&c);
    CallGraph x, y, z;
    graph_init(&x); graph_init(&y); graph_init(&z);
    int same = 0, differ = 0;
    for (int64_t i = 499; i >= 0; i--) {   // b in reverse order
        synth_graph(a, 499 - i, &x, NULL, NULL, NULL);
        synth_graph(b, 499 - i, &y, NULL, NULL, NULL);
        same += graph_equal(&x, &y) && !strcmp(x.trace_id, y.trace_id);
        synth_graph(d, 499 - i, &z, NULL, NULL, NULL);
        differ += !graph_equal(&x, &z);
    }
    SynthEdgeInfo *info = NULL;
    int cap = 0;
    int64_t ts;
    synth_graph(b, 42, &y, &info, &cap, &ts);   // asking for the CSV details changes nothing
    synth_graph(a, 42, &x, NULL, NULL, NULL);
    CHECK(graph_equal(&x, &y) && cap >= y.n);
    free(info);
    synth_graph(b, 321, &y, NULL, NULL, NULL);   // out of order
    synth_graph(a, 321, &x, NULL, NULL, NULL);
    CHECK(graph_equal(&x, &y));
    CHECKF(same == 500, "%d of 500 equal", same);
    CHECKF(differ > 300, "only %d of 500 graphs differ under another seed", differ);
    graph_free(&x); graph_free(&y); graph_free(&z);
    synth_free(a); synth_free(b); synth_free(d);
}

// The distribution properties docs/SYNTH.md claims, measured over 4000 graphs.
static void test_distributions(void) {
    SynthConfig c;
    synth_config_default(&c);
    c.graphs = 4000;
    Synth *s = synth_new(&c);
    double want_single, want_tail;
    synth_intended_shares(s, &want_single, &want_tail);
    CHECKF(fabs(want_single - c.single) < 0.01 && fabs(want_tail - c.tail) < 0.01, "intended %.3f %.3f", want_single, want_tail);
    CallGraph g;
    graph_init(&g);
    int N = (int)c.graphs;
    int64_t *sizes = xmalloc((size_t)N * sizeof *sizes), *root_rt = xmalloc((size_t)N * sizeof *root_rt);
    int64_t type_depth[4][RPC_NTYPES] = {{0}};   // depth 1, 2, 3, 4+
    int64_t seq = 0, par = 0, single = 0, tail = 0;
    int64_t *uses = xcalloc(80000, sizeof *uses);    // edges into each MS number
    int64_t edges = 0;
    for (int i = 0; i < N; i++) {
        synth_graph(s, i, &g, NULL, NULL, NULL);
        sizes[i] = g.n;
        single += g.n == 1;
        tail += g.n > 40;
        root_rt[i] = g.edges[0].rt_ms;
        for (int e = 0; e < g.n; e++) {
            int d = rpc_id_depth(g.edges[e].rpc_id);
            type_depth[d >= 4 ? 3 : d - 1][g.edges[e].type]++;
            if (e > 0) { uses[atoi(g.edges[e].dst + 3)]++; edges++; }
        }
        count_siblings(&g, &seq, &par);
    }
    double ps = (double)single / N, pt = (double)tail / N;
    int64_t median = quantile(sizes, N, 0.5);
    printf("    single %.3f, tail %.3f, median %lld, max %lld\n", ps, pt, (long long)median, (long long)sizes[N - 1]);
    CHECKF(fabs(ps - 0.34) < 0.04, "single-edge share %.3f", ps);
    CHECKF(fabs(pt - 0.10) < 0.04, "share over 40 edges %.3f", pt);
    CHECKF(median >= 2 && median <= 4, "median size %lld", (long long)median);
    CHECK(sizes[N - 1] <= c.max_edges * 3);   // repeats can stretch a template, never wildly
    // type by depth
    double share[4][RPC_NTYPES];
    for (int d = 0; d < 4; d++) {
        int64_t t = 0;
        for (int k = 0; k < RPC_NTYPES; k++) t += type_depth[d][k];
        for (int k = 0; k < RPC_NTYPES; k++) share[d][k] = t ? (double)type_depth[d][k] / t : 0;
        printf("    depth %d%s: http %.3f rpc %.3f mc %.3f db %.3f mq %.3f\n", d + 1, d == 3 ? "+" : "", share[d][RPC_HTTP],
               share[d][RPC_RPC], share[d][RPC_MC], share[d][RPC_DB], share[d][RPC_MQ]);
    }
    CHECKF(share[0][RPC_HTTP] > 0.9, "root http %.3f", share[0][RPC_HTTP]);
    // memcached dominates below the entry's first hop; depth 2 is mc and rpc (the hand-off to logic)
    for (int d = 2; d < 4; d++)
        for (int k = 0; k < RPC_NTYPES; k++)
            CHECKF(k == RPC_MC || share[d][RPC_MC] > share[d][k], "mc not dominant at depth %d", d + 1);
    CHECKF(share[2][RPC_MC] > 0.5, "mc at depth 3: %.3f", share[2][RPC_MC]);
    CHECKF(share[1][RPC_MC] > 0.2 && share[1][RPC_RPC] > 0.25 && share[1][RPC_MC] + share[1][RPC_RPC] > 0.75,
           "depth 2: mc %.3f rpc %.3f", share[1][RPC_MC], share[1][RPC_RPC]);
    // calls become more stateful with depth; mq stays rare
    CHECKF(share[3][RPC_DB] + share[3][RPC_MQ] > share[1][RPC_DB] + share[1][RPC_MQ] + 0.05, "db/mq do not grow with depth");
    CHECKF(share[1][RPC_MQ] + share[2][RPC_MQ] + share[3][RPC_MQ] < 0.1, "mq is not rare");
    // sequential siblings
    double sq = (double)seq / (double)(seq + par);
    printf("    sequential siblings %.3f of %lld observable pairs\n", sq, (long long)(seq + par));
    CHECKF(fabs(sq - c.seq_share) < 0.06, "sequential share %.3f", sq);
    // heavy-tailed latency: the 99th percentile is far above the median
    int64_t p50 = quantile(root_rt, N, 0.5), p99 = quantile(root_rt, N, 0.99);
    printf("    root latency p50 %lld ms, p99 %lld ms\n", (long long)p50, (long long)p99);
    CHECKF(p99 >= 10 * (p50 > 1 ? p50 : 1), "p50 %lld p99 %lld", (long long)p50, (long long)p99);
    // hot spots: the 5% most used microservices receive a large share of all calls
    qsort(uses, 80000, sizeof *uses, cmp_i64);
    int top = c.microservices / 20;
    int64_t hot = 0;
    for (int k = 0; k < top; k++) hot += uses[79999 - k];
    printf("    top 5%% of microservices receive %.3f of calls\n", (double)hot / edges);
    CHECKF((double)hot / edges > 0.3, "hot share %.3f", (double)hot / edges);
    graph_free(&g);
    free(sizes); free(root_rt); free(uses);
    synth_free(s);
}

// Structure is learnable: per service a few templates; per (service, template) the entry
// microservice is fixed; per service the high-latency tail exists (p99 well above p90).
static void test_service_structure(void) {
    SynthConfig c;
    synth_config_default(&c);
    c.graphs = 6000;
    c.services = 20;
    Synth *s = synth_new(&c);
    CallGraph g;
    graph_init(&g);
    enum { K = 20 };
    int64_t *lat[K];
    int n[K] = {0}, tpl_seen[K] = {0}, entry_mismatch = 0;
    char entry[K][16] = {{0}};
    for (int k = 0; k < K; k++) lat[k] = xmalloc((size_t)c.graphs * sizeof **lat);
    for (int64_t i = 0; i < c.graphs; i++) {
        int sv, t = synth_graph_template(s, i, &sv);
        synth_graph(s, i, &g, NULL, NULL, NULL);
        tpl_seen[sv] |= 1 << t;
        if (!entry[sv][0]) snprintf(entry[sv], sizeof entry[sv], "%s", g.edges[0].dst);
        entry_mismatch += strcmp(entry[sv], g.edges[0].dst) != 0;
        lat[sv][n[sv]++] = g.edges[0].rt_ms;
    }
    CHECKF(entry_mismatch == 0, "%d graphs enter their service elsewhere", entry_mismatch);
    int tails = 0, big = 0;
    for (int k = 0; k < K; k++) {
        CHECK(tpl_seen[k] < (1 << 9));   // at most 9 templates
        if (n[k] < 300) continue;
        big++;
        int64_t p90 = quantile(lat[k], n[k], 0.9), p50 = quantile(lat[k], n[k], 0.5), max = lat[k][n[k] - 1];
        tails += max >= 3 * (p90 > 1 ? p90 : 1) && p90 >= p50;
    }
    CHECKF(big >= 3 && tails >= big - 1, "%d of %d busy services have a high-latency tail", tails, big);
    for (int k = 0; k < K; k++) free(lat[k]);
    graph_free(&g);
    synth_free(s);
}

// The knobs move what they name: no graph over 40 edges without a tail, a larger tail shows;
// the sequential-sibling share follows --seq-share.
static void test_knobs(void) {
    SynthConfig c;
    synth_config_default(&c);
    c.graphs = 2000;
    for (int v = 0; v < 2; v++) {
        c.tail = v ? 0.3 : 0.0;
        Synth *s = synth_new(&c);
        CallGraph g;
        graph_init(&g);
        int over = 0;
        for (int64_t i = 0; i < c.graphs; i++) { synth_graph(s, i, &g, NULL, NULL, NULL); over += g.n > 40; }
        double share = (double)over / c.graphs;
        CHECKF(v ? fabs(share - 0.3) < 0.06 : share == 0, "tail %.2f -> %.3f", c.tail, share);
        graph_free(&g);
        synth_free(s);
    }
    synth_config_default(&c);
    c.graphs = 2000;
    c.seq_share = 0.5;
    Synth *s = synth_new(&c);
    CallGraph g;
    graph_init(&g);
    int64_t seq = 0, par = 0;
    for (int64_t i = 0; i < c.graphs; i++) { synth_graph(s, i, &g, NULL, NULL, NULL); count_siblings(&g, &seq, &par); }
    double sq = (double)seq / (double)(seq + par);
    CHECKF(fabs(sq - 0.5) < 0.08, "--seq-share 0.5 -> %.3f", sq);
    graph_free(&g);
    synth_free(s);
}

// ---- the CSV ----
static void path_in(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", tmpdir, name); }

static bool same_bytes(const char *a, const char *b) {
    size_t la, lb;
    char *x = read_file(a, &la), *y = read_file(b, &lb);
    bool same = la == lb && !memcmp(x, y, la);
    free(x); free(y);
    return same;
}

static void write_corpus(SynthConfig *c, const char *path, SynthStats *st, const char *truth) {
    Synth *s = synth_new(c);
    synth_write(s, path, 1, truth, NULL, false, st);
    synth_free(s);
}

static void test_file_determinism(void) {
    SynthConfig c;
    synth_config_default(&c);
    c.graphs = 800;
    char a[512], b[512], d[512], p[512];
    path_in(a, sizeof a, "a.csv.gz"); path_in(b, sizeof b, "b.csv.gz"); path_in(d, sizeof d, "d.csv.gz");
    path_in(p, sizeof p, "a.csv");
    SynthStats st;
    write_corpus(&c, a, &st, NULL);
    write_corpus(&c, b, &st, NULL);
    write_corpus(&c, p, &st, NULL);
    c.seed = 99;
    write_corpus(&c, d, &st, NULL);
    CHECK(same_bytes(a, b));
    CHECK(!same_bytes(a, d));
    // the plain file is the gzip file's content
    gzFile z = gzopen(a, "rb");
    REQUIRE(z);
    size_t lp;
    char *plain = read_file(p, &lp), *unz = xmalloc(lp + 1);
    int got = gzread(z, unz, (unsigned)lp + 1);
    gzclose(z);
    CHECKF(got == (int)lp && !memcmp(plain, unz, lp), "gzip content %d bytes, plain %zu", got, lp);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", a, (int)getpid());
    CHECK(access(tmp, F_OK) != 0);   // no temporary left behind
    free(plain); free(unz);
}

// Splits a line into fields; returns the count (up to max).
static int split(char *line, char **f, int max) {
    int n = 0;
    char *p = line;
    for (;;) {
        if (n < max) f[n] = p;
        n++;
        char *c = strchr(p, ',');
        if (!c) break;
        *c = 0;
        p = c + 1;
    }
    return n;
}

typedef struct {
    int64_t lines, bad_shape, malformed, rows_unknown_type, rows_dm_unknown, root01, rpc_groups, rpc_paired;
} CsvScan;

// Reads the CSV back and checks every well-formed row's fields against the real v2022 look.
static void scan_csv(const char *path, CsvScan *sc) {
    memset(sc, 0, sizeof *sc);
    gzFile z = gzopen(path, "rb");
    if (!z) { CHECK(z != NULL); return; }
    char line[1024];
    CHECK(gzgets(z, line, sizeof line) && !strcmp(line, "timestamp,traceid,service,rpc_id,rpctype,um,uminstanceid,interface,dm,dminstanceid,rt\n"));
    // per trace: did we see "0", and a "0.1" row from UNKNOWN; rpc/http (trace,rpc_id) row counts
    typedef struct { char key[96]; int n; } Group;
    size_t cap = 1 << 16, used = 0;
    Group *tab = xcalloc(cap, sizeof *tab);
    char **roots01 = NULL; size_t n01 = 0, c01 = 0;
    char **with0 = NULL; size_t n0 = 0, c0 = 0;
    while (gzgets(z, line, sizeof line)) {
        sc->lines++;
        size_t L = strlen(line);
        if (L && line[L - 1] == '\n') line[--L] = 0;
        char *f[12];
        int nf = split(line, f, 12);
        if (nf != 11 || !strcmp(f[10], "None")) { sc->malformed++; continue; }
        const char *ts = f[0], *tid = f[1], *svc = f[2], *rid = f[3], *type = f[4], *um = f[5], *umi = f[6], *iface = f[7],
                   *dm = f[8], *dmi = f[9], *rt = f[10];
        bool ok = all_digits(ts, strlen(ts)) && !strncmp(tid, "T_", 2) && all_digits(tid + 2, strlen(tid + 2)) &&
                  !strncmp(svc, "S_", 2) && all_digits(svc + 2, strlen(svc + 2)) && strlen(iface) == 10;
        // rpc_id: "0" then ".<digits>" groups
        ok = ok && rid[0] == '0';
        for (const char *p = rid + 1; ok && *p; ) {
            if (*p != '.') { ok = false; break; }
            const char *q = ++p;
            while (isdigit((unsigned char)*p)) p++;
            ok = p > q;
        }
        size_t lr = strlen(rt);
        ok = ok && lr > 2 && !strcmp(rt + lr - 2, ".0") && all_digits(rt, lr - 2);
        bool tk = !strcmp(type, "rpc") || !strcmp(type, "http") || !strcmp(type, "mc") || !strcmp(type, "db") ||
                  !strcmp(type, "mq") || !strcmp(type, "UNKNOWN");
        ok = ok && tk;
        char want[64];
        if (!strcmp(um, "USER")) ok = ok && !strcmp(umi, "USER") && !strcmp(rid, "0");
        else if (!strcmp(um, "UNKNOWN")) ok = ok && !strcmp(umi, "UNAVAILABLE");
        else { snprintf(want, sizeof want, "%s_POD_", um); ok = ok && is_ms(um) && !strncmp(umi, want, strlen(want)) && all_digits(umi + strlen(want), strlen(umi + strlen(want))); }
        if (!strcmp(dm, "UNKNOWN")) { ok = ok && !strcmp(dmi, "UNKNOWN"); sc->rows_dm_unknown++; }
        else { snprintf(want, sizeof want, "%s_POD_", dm); ok = ok && is_ms(dm) && !strncmp(dmi, want, strlen(want)); }
        if (!ok) { if (sc->bad_shape++ < 3) printf("    bad row: %s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s\n", ts, tid, svc, rid, type, um, umi, iface, dm, dmi, rt); continue; }
        if (!strcmp(type, "UNKNOWN")) sc->rows_unknown_type++;
        if (!strcmp(rid, "0")) {
            if (n0 == c0) { c0 = c0 ? 2 * c0 : 256; with0 = xrealloc(with0, c0 * sizeof *with0); }
            with0[n0++] = xstrdup(tid);
        }
        if (!strcmp(rid, "0.1") && !strcmp(um, "UNKNOWN") && !strcmp(type, "http")) {
            if (n01 == c01) { c01 = c01 ? 2 * c01 : 256; roots01 = xrealloc(roots01, c01 * sizeof *roots01); }
            roots01[n01++] = xstrdup(tid);
        }
        if ((!strcmp(type, "rpc") || !strcmp(type, "http")) && strcmp(rid, "0") != 0) {
            char key[96];
            snprintf(key, sizeof key, "%s/%s", tid, rid);
            if (2 * (used + 1) > cap) { printf("    too many rpc groups for the scan\n"); break; }
            size_t h = hash_bytes(key, strlen(key), 0) & (cap - 1);
            while (tab[h].n && strcmp(tab[h].key, key)) h = (h + 1) & (cap - 1);
            if (!tab[h].n) { snprintf(tab[h].key, sizeof tab[h].key, "%s", key); used++; }
            tab[h].n++;
        }
    }
    gzclose(z);
    for (size_t h = 0; h < cap; h++)
        if (tab[h].n) { sc->rpc_groups++; sc->rpc_paired += tab[h].n >= 2; }
    // traces logged from 0.1: an UNKNOWN-called 0.1 http row and no "0" row
    for (size_t i = 0; i < n01; i++) {
        bool dup = false, has0 = false;
        for (size_t j = 0; j < i && !dup; j++) dup = !strcmp(roots01[j], roots01[i]);
        for (size_t j = 0; j < n0 && !has0; j++) has0 = !strcmp(with0[j], roots01[i]);
        sc->root01 += !dup && !has0;
    }
    for (size_t i = 0; i < n01; i++) free(roots01[i]);
    for (size_t i = 0; i < n0; i++) free(with0[i]);
    free(roots01); free(with0); free(tab);
}

static void test_csv_shape_and_quirks(void) {
    SynthConfig c;
    synth_config_default(&c);
    c.graphs = 2000;
    c.tail = 0.02;
    c.dup_rate = 0.05; c.unknown_rate = 0.02; c.malformed_rate = 0.01; c.root01_rate = 0.05; c.unknown_type_rate = 0.1;
    char p[512];
    path_in(p, sizeof p, "q.csv.gz");
    SynthStats st;
    write_corpus(&c, p, &st, NULL);
    CsvScan sc;
    scan_csv(p, &sc);
    double rows = (double)st.rows, edges = (double)(st.rows - st.dup_rows - st.callee_rows - st.unknown_type_rows);
    printf("    rows %lld, malformed %lld, dup %lld, dm UNKNOWN calls %lld, UNKNOWN-type rows %lld, 0.1 roots %lld\n",
           (long long)st.rows, (long long)st.malformed_rows, (long long)st.dup_rows, (long long)st.unknown_edges,
           (long long)st.unknown_type_rows, (long long)st.root01_traces);
    CHECKF(sc.lines == st.rows, "file has %lld rows, writer says %lld", (long long)sc.lines, (long long)st.rows);
    CHECKF(sc.bad_shape == 0, "%lld rows do not look like v2022 rows", (long long)sc.bad_shape);
    // rates as configured (binomial noise at these counts is a few percent of the rate)
    CHECKF(fabs(st.dup_rows / rows - c.dup_rate) < 0.01, "dup %.4f", st.dup_rows / rows);
    CHECKF(fabs(st.malformed_rows / rows - c.malformed_rate) < 0.004, "malformed %.4f", st.malformed_rows / rows);
    CHECKF(fabs(st.unknown_edges / edges - c.unknown_rate) < 0.006, "unknown %.4f", st.unknown_edges / edges);
    CHECKF(fabs(st.root01_traces / (double)st.graphs - c.root01_rate) < 0.02, "root01 %.4f", st.root01_traces / (double)st.graphs);
    CHECKF(fabs(st.callee_unknown / (double)st.callee_rows - c.callee_unknown) < 0.03, "callee unknown %.3f",
           st.callee_unknown / (double)st.callee_rows);
    // and the file shows them: malformed lines (a duplicated one counts twice), UNKNOWN rows, 0.1 roots
    CHECKF(sc.malformed >= st.malformed_rows && sc.malformed <= 2 * st.malformed_rows, "file has %lld malformed lines", (long long)sc.malformed);
    CHECKF(sc.rows_unknown_type >= st.unknown_type_rows * 0.95 && sc.rows_unknown_type <= st.unknown_type_rows * 1.1,
           "file has %lld UNKNOWN-type rows", (long long)sc.rows_unknown_type);
    CHECKF(sc.rows_dm_unknown >= st.unknown_edges, "file has %lld dm UNKNOWN rows", (long long)sc.rows_dm_unknown);
    CHECKF(llabs(sc.root01 - st.root01_traces) <= 3, "file has %lld traces rooted at 0.1", (long long)sc.root01);
    // rpc/http calls appear twice (caller and callee side), except where a malformed line took one
    CHECKF(sc.rpc_paired >= 0.97 * sc.rpc_groups, "%lld of %lld rpc/http calls logged twice", (long long)sc.rpc_paired,
           (long long)sc.rpc_groups);
    // the cleaning loses only what the quirks destroy
    CHECK(st.expected_valid < st.graphs && st.expected_valid > st.graphs * 0.8);
}

// Without destructive quirks, a correct cleaning recovers every intended graph.
static void test_no_quirks_recovers_all(void) {
    SynthConfig c;
    synth_config_default(&c);
    c.graphs = 1500;
    c.dup_rate = c.unknown_rate = c.malformed_rate = c.root01_rate = 0;
    char p[512], t[512];
    path_in(p, sizeof p, "n.csv.gz");
    path_in(t, sizeof t, "n.truth.jsonl");
    SynthStats st;
    write_corpus(&c, p, &st, t);
    CHECKF(st.expected_valid == st.graphs, "%lld of %lld", (long long)st.expected_valid, (long long)st.graphs);
    CHECKF(st.expected_unique == st.clean_unique, "%lld vs %lld", (long long)st.expected_unique, (long long)st.clean_unique);
    // the truth file holds exactly the unique intended graphs
    Synth *s = synth_new(&c);
    CallGraph *gs;
    int n = graphs_load(t, &gs);
    CHECKF(n == st.expected_unique, "truth has %d graphs", n);
    CallGraph g;
    graph_init(&g);
    synth_graph(s, 0, &g, NULL, NULL, NULL);
    CHECK(n > 0 && graph_equal(&g, &gs[0]));   // graph 0 is first and unchanged by the round trip
    graph_free(&g);
    graphs_free(gs, n);
    synth_free(s);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_synth.%d", (int)getpid());
    char cmd[512];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", tmpdir);
    if (system(cmd) != 0) { printf("FAIL setup: cannot create %s\n", tmpdir); return 1; }
    RUN(test_clean_graphs_valid);
    RUN(test_graph_determinism);
    RUN(test_distributions);
    RUN(test_service_structure);
    RUN(test_knobs);
    RUN(test_file_determinism);
    RUN(test_csv_shape_and_quirks);
    RUN(test_no_quirks_recovers_all);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", tmpdir);
    TEST_END();
}
