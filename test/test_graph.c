// The call-graph type, its JSONL form and its validity rules; plus the small utilities under it.
#include "data/graph.h"
#include "test/test.h"
#include "util/json.h"
#include "util/rng.h"
#include "util/util.h"
#include <errno.h>

static void build_chain(CallGraph *g) {
    graph_init(g);
    graph_set_ids(g, "T_1", "S_000000001");
    graph_add_edge(g, "0.1", RPC_MC, "MS_00001", "MS_00002", 1, 2);
    graph_add_edge(g, "0", RPC_HTTP, "USER", "MS_00001", 0, 10);
    graph_add_edge(g, "0.10", RPC_RPC, "MS_00001", "MS_00003", 3, 5);
    graph_add_edge(g, "0.10.1", RPC_DB, "MS_00003", "MS_00004", 4, 1);
    graph_add_edge(g, "0.2", RPC_DB, "MS_00001", "MS_00005", 2, 1);
}

static void test_rpc_order(void) {
    CHECK(rpc_id_cmp("0.9", "0.10") < 0);
    CHECK(rpc_id_cmp("0.10", "0.1") > 0);
    CHECK(rpc_id_cmp("0.1", "0.1.1") < 0);
    CHECK(rpc_id_cmp("0.1.5", "0.2") < 0);
    CHECK(rpc_id_cmp("0.01", "0.1") != 0);  // text, not numbers: 0.01 is another call
    CHECK(rpc_id_cmp("0.1", "0.1") == 0);
    CHECK(rpc_id_depth("0") == 1 && rpc_id_depth("0.1.2") == 3);
    CallGraph g;
    build_chain(&g);
    graph_sort(&g);
    const char *want[] = {"0", "0.1", "0.2", "0.10", "0.10.1"};
    for (int i = 0; i < 5; i++) CHECKF(!strcmp(g.edges[i].rpc_id, want[i]), "%d: %s", i, g.edges[i].rpc_id);
    CHECK(graph_depth(&g) == 3);
    CHECK(graph_find(&g, "0.10.1") == 4 && graph_find(&g, "0.3") == -1);
    graph_free(&g);
}

static void test_validate(void) {
    CallGraph g;
    build_chain(&g);
    graph_sort(&g);
    CHECK(graph_validate(&g, 15, NULL) == GRAPH_OK);
    CHECK(graph_validate(&g, 2, NULL) == GRAPH_TOO_DEEP);
    int bad;
    free(g.edges[4].src); g.edges[4].src = xstrdup("MS_00009");          // 0.10.1 called by someone else
    CHECK(graph_validate(&g, 15, &bad) == GRAPH_SRC_DST_MISMATCH && bad == 4);
    free(g.edges[4].src); g.edges[4].src = xstrdup("MS_00003");
    g.edges[4].rt_ms = 100;                                              // child outlives its parent
    CHECK(graph_validate(&g, 15, &bad) == GRAPH_CHILD_OUTLIVES && bad == 4);
    g.edges[4].rt_ms = 1;
    free(g.edges[3].rpc_id); g.edges[3].rpc_id = xstrdup("0.11");         // 0.10.1 loses its parent
    graph_sort(&g);
    CHECK(graph_validate(&g, 15, NULL) == GRAPH_MISSING_PARENT);
    free(g.edges[0].rpc_id); g.edges[0].rpc_id = xstrdup("0.12");
    graph_sort(&g);
    CHECK(graph_validate(&g, 15, NULL) == GRAPH_NO_ROOT);
    graph_free(&g);
    CallGraph e; graph_init(&e); graph_set_ids(&e, "", "S");
    CHECK(graph_validate(&e, 15, NULL) == GRAPH_EMPTY);
    graph_free(&e);
}

static void test_json_roundtrip(void) {
    CallGraph g, h;
    build_chain(&g);
    graph_sort(&g);
    graph_set_ids(&g, "T_\"quoted\"\n", "S_000000001");
    char *buf; size_t len;
    FILE *f = open_memstream(&buf, &len);
    graph_write_json(f, &g);
    fclose(f);
    CHECK(len > 0 && buf[len - 1] == '\n');
    graph_init(&h);
    char err[256];
    REQUIRE(graph_parse_json(buf, len, &h, err, sizeof err));
    CHECK(graph_equal(&g, &h) && !strcmp(h.trace_id, g.trace_id));
    CHECK(graph_hash(&g) == graph_hash(&h));
    h.edges[2].rt_ms++;
    CHECK(!graph_equal(&g, &h) && graph_hash(&g) != graph_hash(&h));
    const char *bad[] = {"{\"service\":\"S\",\"edges\":[[\"0\",\"tcp\",\"USER\",\"MS\",0,1]]}",
                         "{\"service\":\"S\",\"edges\":[[\"0\",\"http\",\"USER\",\"MS\",0]]}",
                         "{\"edges\":[]}", "{\"service\":\"S\",\"edges\":[", "[1,2]"};
    for (int i = 0; i < 5; i++) {
        err[0] = 0;
        CHECKF(!graph_parse_json(bad[i], strlen(bad[i]), &h, err, sizeof err) && err[0], "%s", bad[i]);
    }
    free(buf);
    graph_free(&g); graph_free(&h);
}

static void test_json_parser(void) {
    const char *t = "{\"a\":[1,-2.5e1,true,null,\"x\\u00e9\\n\"],\"b\":{\"c\":9007199254740993}}";
    char err[128];
    Json *j = json_parse(t, strlen(t), err, sizeof err);
    REQUIRE(j);
    Json *a = json_get(j, "a");
    CHECK(a && a->n == 5 && json_at(a, 1)->num == -25.0 && json_at(a, 2)->b);
    CHECK(!strcmp(json_at(a, 4)->str, "x\xc3\xa9\n"));
    int64_t big;
    CHECK(json_int(json_get(json_get(j, "b"), "c"), &big) && big == 9007199254740993LL);
    json_free(j);
    const char *bad[] = {"", "{", "[1,]", "{\"a\" 1}", "\"\\x\"", "01x", "[1] 2"};
    for (int i = 0; i < 7; i++) CHECKF(!json_parse(bad[i], strlen(bad[i]), err, sizeof err) && err[0], "%s", bad[i]);
    // a deeply nested document is refused, not a stack overflow
    char deep[4001];
    memset(deep, '[', 4000); deep[4000] = 0;
    CHECK(!json_parse(deep, 4000, err, sizeof err));
}

static void test_rng(void) {
    Rng a, b;
    rng_seed(&a, 42); rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) CHECK(rng_u64(&a) == rng_u64(&b));
    int hist[10] = {0};
    for (int i = 0; i < 100000; i++) hist[rng_below(&a, 10)]++;
    for (int i = 0; i < 10; i++) CHECKF(hist[i] > 9500 && hist[i] < 10500, "bucket %d: %d", i, hist[i]);
    CHECK(parse_size("4G") == 4LL << 30 && parse_size("512M") == 512LL << 20 && parse_size("12") == 12 && parse_size("x") < 0);
}

// mkdir_p is `mkdir -p`: every --out directory goes through it, so `--out runs/a/b` works when
// runs/ does not exist yet.
static void test_mkdir_p(void) {
    char dir[] = "/tmp/tracellm-mkdir-XXXXXX";
    REQUIRE(mkdtemp(dir));
    char p[4096], q[4096];
    snprintf(p, sizeof p, "%s/a/b/c", dir);  // two missing parents
    CHECK(mkdir_p(p, 0777) == 0 && path_is_dir(p));
    CHECK(mkdir_p(p, 0777) == 0);            // already there: still 0
    CHECK(mkdir_p(dir, 0777) == 0 && mkdir_p(".", 0777) == 0 && mkdir_p("/", 0777) == 0);
    snprintf(p, sizeof p, "%s/t/u/", dir);   // trailing slash
    snprintf(q, sizeof q, "%s/t/u", dir);
    CHECK(mkdir_p(p, 0777) == 0 && path_is_dir(q));
    snprintf(p, sizeof p, "%s/d//e///", dir);  // repeated slashes
    snprintf(q, sizeof q, "%s/d/e", dir);
    CHECK(mkdir_p(p, 0777) == 0 && path_is_dir(q));
    // a regular file where a directory should be: ENOTDIR, as a parent or as the path itself
    snprintf(q, sizeof q, "%s/f", dir);
    FILE *f = fopen(q, "w");
    REQUIRE(f);
    fclose(f);
    snprintf(p, sizeof p, "%s/f/x/y", dir);
    errno = 0;
    CHECKF(mkdir_p(p, 0777) == -1 && errno == ENOTDIR, "errno %d", errno);
    errno = 0;
    CHECKF(mkdir_p(q, 0777) == -1 && errno == ENOTDIR, "errno %d", errno);
    errno = 0;
    CHECK(mkdir_p("", 0777) == -1 && errno == ENOENT);
    // a long path (2,200 bytes in 200 levels): no fixed-size buffer inside
    int n = snprintf(p, sizeof p, "%s/long", dir);
    for (int i = 0; i < 200; i++) n += snprintf(p + n, sizeof p - n, "/level%04d", i);
    CHECK(mkdir_p(p, 0777) == 0 && path_is_dir(p));
    snprintf(p, sizeof p, "rm -rf %s", dir);
    CHECK(system(p) == 0);
}

int main(void) {
    RUN(test_rpc_order);
    RUN(test_validate);
    RUN(test_json_roundtrip);
    RUN(test_json_parser);
    RUN(test_rng);
    RUN(test_mkdir_p);
    TEST_END();
}
