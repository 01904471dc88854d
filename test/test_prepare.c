// Ingestion: CSV headers and rows (data/csv.h), the plain/gzip/tar reader (data/reader.h) and the
// whole prepare run on fixtures written here. The comparison with the pandas reference on real and
// synthetic data lives in test/e2e_prepare.sh.
#include "data/csv.h"
#include "data/graph.h"
#include "data/prepare.h"
#include "data/reader.h"
#include "test/test.h"
#include "util/util.h"
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static const char *H22 = "timestamp,traceid,service,rpc_id,rpctype,um,uminstanceid,interface,dm,dminstanceid,rt";

static void test_schema(void) {
    CsvSchema s;
    char err[1024];
    REQUIRE(csv_schema_parse(H22, strlen(H22), &s, err, sizeof err));
    CHECK(s.version == TRACE_V2022 && s.ncols == 11);
    CHECK(s.col[COL_TIMESTAMP] == 0 && s.col[COL_RPCID] == 3 && s.col[COL_DM] == 8 && s.col[COL_RT] == 10);
    // the column order of Alibaba's README (wrong for the real files) parses by name just as well
    const char *readme = "traceid,timestamp,rpc_id,um,rpctype,dm,service,interface,rt,uminstanceid,dminstanceid\r";
    REQUIRE(csv_schema_parse(readme, strlen(readme), &s, err, sizeof err));
    CHECK(s.version == TRACE_V2022 && s.col[COL_TIMESTAMP] == 1 && s.col[COL_SERVICE] == 6);
    const char *v21 = ",traceid,timestamp,rpcid,um,rpctype,dm,interface,rt";
    REQUIRE(csv_schema_parse(v21, strlen(v21), &s, err, sizeof err));
    CHECK(s.version == TRACE_V2021 && s.ncols == 9 && s.col[COL_TRACEID] == 1 && s.col[COL_SERVICE] == -1);
    REQUIRE(csv_schema_parse(v21 + 1, strlen(v21) - 1, &s, err, sizeof err));  // copies without the index
    CHECK(s.version == TRACE_V2021 && s.ncols == 8 && s.col[COL_TRACEID] == 0);
    const char *bom = "\xEF\xBB\xBFtimestamp,traceid,service,rpc_id,rpctype,um,dm,rt";
    CHECK(csv_schema_parse(bom, strlen(bom), &s, err, sizeof err) && s.version == TRACE_V2022);
    const char *bad = "time,trace,foo";
    CHECK(!csv_schema_parse(bad, strlen(bad), &s, err, sizeof err));
    CHECKF(strstr(err, "unknown header") && strstr(err, "time,trace,foo"), "%s", err);
    const char *partial = "timestamp,traceid,rpc_id,rpctype,um,dm";  // no rt
    CHECK(!csv_schema_parse(partial, strlen(partial), &s, err, sizeof err) && strstr(err, partial));
    const char *twice = "timestamp,traceid,service,rpc_id,rpctype,um,dm,rt,rt";
    CHECK(!csv_schema_parse(twice, strlen(twice), &s, err, sizeof err) && strstr(err, "twice"));
}

static CsvRowStatus row22(const char *line, CsvRow *r) {
    CsvSchema s;
    char err[256];
    csv_schema_parse(H22, strlen(H22), &s, err, sizeof err);
    return csv_parse_row(&s, line, strlen(line), r);
}
static bool slice_eq(Slice s, const char *lit) { return (size_t)s.n == strlen(lit) && !memcmp(s.p, lit, (size_t)s.n); }

static void test_rows(void) {
    CsvRow r;
    REQUIRE(row22("3766594,T_1,S_559,0.10,rpc,MS_45753,MS_45753_POD_425,Jo7,MS_1,MS_1_POD_3,4.9", &r) == ROW_OK);
    CHECK(r.ts == 3766594 && r.rt_ms == 4 && r.type == RPC_RPC);  // int(4.9) == 4
    CHECK(slice_eq(r.rpc_id, "0.10") && slice_eq(r.traceid, "T_1") && slice_eq(r.service, "S_559"));
    CHECK(slice_eq(r.um, "MS_45753") && slice_eq(r.dm, "MS_1"));
    struct { const char *rt; int64_t want; } rts[] = {{"0.0", 0}, {"7", 7}, {"-0.5", 0}, {"-3.7", -3}, {"1e2", 100},
                                                      {"2.5E1", 25}, {".9", 0}, {"12.", 12}, {"0000000000000000001", 1},
                                                      // 19 significant digits: the double rounds up first
                                                      {"12345678901234.99999", 12345678901235},
                                                      {"1.00000000000000000000000000000000000000000000000000000000000000000e2", 100}};
    for (size_t i = 0; i < sizeof rts / sizeof rts[0]; i++) {
        char line[256];
        snprintf(line, sizeof line, "1,T_1,S_1,0,http,USER,USER,i,MS_1,MS_1_POD_0,%s", rts[i].rt);
        CHECKF(row22(line, &r) == ROW_OK && r.rt_ms == rts[i].want, "rt %s -> %lld", rts[i].rt, (long long)r.rt_ms);
    }
    struct { const char *line; CsvRowStatus st; int mal; } cases[] = {
        {"1,T_1,S_1,0,http,USER,USER,i,MS_1,MS_1_POD_0,None", ROW_MISSING_RT, 0},
        {"1,T_1,S_1,0,http,USER,USER,i,MS_1,MS_1_POD_0,", ROW_MISSING_RT, 0},
        {"1,T_1,S_1,0,http,USER,USER,i,MS_1,MS_1_POD_0,abc", ROW_MALFORMED, MAL_BAD_RT},
        {"1,T_1,S_1,0,http,USER,USER,i,MS_1,MS_1_POD_0,inf", ROW_MALFORMED, MAL_BAD_RT},
        {"1,T_1,S_1,0,http,USER,USER,i,MS_1,MS_1_POD_0,1e400", ROW_MALFORMED, MAL_BAD_RT},
        {"1,T_1,S_1,0,http,USER,USER,i,x,MS_1,MS_1_POD_0,3.0", ROW_MALFORMED, MAL_FIELD_COUNT},  // extra comma
        {"1,T_1,S_1,0,http,USER,USER,MS_1,MS_1_POD_0,3.0", ROW_MALFORMED, MAL_FIELD_COUNT},       // a field short
        {"T_1,1,S_1,0,http,USER,USER,i,MS_1,MS_1_POD_0,3.0", ROW_MALFORMED, MAL_BAD_TIMESTAMP},   // shifted
        {"1.5,T_1,S_1,0,http,USER,USER,i,MS_1,MS_1_POD_0,3.0", ROW_MALFORMED, MAL_BAD_TIMESTAMP},
        {"1,T_1,S_1,0..1,http,USER,USER,i,MS_1,MS_1_POD_0,3.0", ROW_MALFORMED, MAL_BAD_RPC_ID},
        {"1,T_1,S_1,0.1.,http,USER,USER,i,MS_1,MS_1_POD_0,3.0", ROW_MALFORMED, MAL_BAD_RPC_ID},
        {"1,T_1,S_1,,http,USER,USER,i,MS_1,MS_1_POD_0,3.0", ROW_MALFORMED, MAL_BAD_RPC_ID},
        {"1,,S_1,0,http,USER,USER,i,MS_1,MS_1_POD_0,3.0", ROW_MALFORMED, MAL_EMPTY_TRACEID},
        {"1,T_1,S_1,0,http,USER,USER,i\xff,MS_1,MS_1_POD_0,3.0", ROW_MALFORMED, MAL_NON_UTF8},
        {"1,T_1,S_1,0,http,USER,USER,\xc3\xa9t\xc3\xa9,MS_1,MS_1_POD_0,3.0", ROW_OK, 0},      // UTF-8 is fine
        {"1,T_1,S_1,0,UNKNOWN,USER,USER,i,MS_1,MS_1_POD_0,3.0", ROW_FILTERED_TYPE, 0},
        {"1,T_1,S_1,0,UNKNOWN,USER,USER,i,MS_1,MS_1_POD_0,None", ROW_FILTERED_TYPE, 0},       // type rule first
        {"1,T_1,S_1,0,userDefined,USER,USER,i,MS_1,MS_1_POD_0,3", ROW_FILTERED_TYPE, 0},
        {"1,T_1,S_1,0.1,http,UNKNOWN,UNAVAILABLE,i,MS_1,MS_1_POD_0,3.0", ROW_UNKNOWN_NAME, 0},
        {"1,T_1,S_1,0.1,rpc,UNAVAILABLE,UNAVAILABLE,i,MS_1,MS_1_POD_0,3.0", ROW_UNKNOWN_NAME, 0},
        {"1,T_1,S_1,0.1,rpc,MS_2,x,i,UNKNOWN,x,None", ROW_UNKNOWN_NAME, 0},                     // names before rt
        {"1,T_1,S_1,0,UNKNOWN,USER,USER,i,MS_1,MS_1_POD_0,abc", ROW_MALFORMED, MAL_BAD_RT},    // malformed first
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(&r, 0, sizeof r);
        CsvRowStatus st = row22(cases[i].line, &r);
        CHECKF(st == cases[i].st && (st != ROW_MALFORMED || r.malformed == cases[i].mal), "case %zu '%s': status %d reason %s",
               i, cases[i].line, st, st == ROW_MALFORMED ? csv_malformed_name(r.malformed) : "-");
    }
    // v2021: the entry call has no caller (it is the user), and a negative rt is the callee's record
    CsvSchema s;
    char err[256];
    const char *h = ",traceid,timestamp,rpcid,um,rpctype,dm,interface,rt";
    REQUIRE(csv_schema_parse(h, strlen(h), &s, err, sizeof err));
    const char *root = "0,0b1,219678,0,,http,abc,iface,-74";
    REQUIRE(csv_parse_row(&s, root, strlen(root), &r) == ROW_OK);
    CHECK(slice_eq(r.um, "USER") && slice_eq(r.dm, "abc") && r.rt_ms == 74 && slice_eq(r.interface, "iface"));
    const char *child = "1,0b1,219679,0.1,(?),rpc,abc,iface,-3";
    CHECK(csv_parse_row(&s, child, strlen(child), &r) == ROW_UNKNOWN_NAME);
    const char *mc = "2,0b1,219679,0.2,abc,mc,def,,1";
    CHECK(csv_parse_row(&s, mc, strlen(mc), &r) == ROW_OK && r.type == RPC_MC && r.rt_ms == 1);
}

static void test_pad(void) {
    char out[64];
    struct { const char *in, *want; } c[] = {{"MS_123", "MS_00123"}, {"MS_63670", "MS_63670"}, {"MS_123456", "MS_123456"},
                                             {"S_42", "S_000000042"}, {"S_159584723", "S_159584723"}, {"USER", "USER"},
                                             {"MS_12a", "MS_12a"}, {"MS_", "MS_"}, {"S_", "S_"}, {"ab", "ab"}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        int n = csv_pad_id(c[i].in, (int)strlen(c[i].in), out, sizeof out);
        out[n] = 0;
        CHECKF(!strcmp(out, c[i].want), "%s -> %s", c[i].in, out);
    }
    CHECK(csv_is_utf8("abc\xe2\x82\xac", 6) && !csv_is_utf8("\xc0\xaf", 2) && !csv_is_utf8("\xed\xa0\x80", 3));
    CHECK(!csv_is_utf8("12345678\xe2\x82", 10));
}

// ---- in-memory archives, built here without the reader's code ----
typedef struct { unsigned char *p; size_t n, cap; } Bytes;
static void put(Bytes *b, const void *p, size_t n) {
    grow((void **)&b->p, &b->cap, b->n + n, 1);
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void tar_add(Bytes *b, const char *name, const char *data, size_t n, char type) {
    unsigned char h[512] = {0};
    snprintf((char *)h, 100, "%s", name);
    memcpy(h + 100, "0000644", 8);
    memcpy(h + 108, "0000000", 8);
    memcpy(h + 116, "0000000", 8);
    snprintf((char *)h + 124, 12, "%011o", (unsigned)n);
    memcpy(h + 136, "00000000000", 12);
    h[156] = (unsigned char)type;
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    put(b, h, 512);
    put(b, data, n);
    static const char zero[512];
    put(b, zero, (512 - n % 512) % 512);
}
static void tar_end(Bytes *b) { static const char zero[1024]; put(b, zero, 1024); }
static Bytes gzip_bytes(const void *p, size_t n) {
    z_stream z = {0};
    deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    Bytes out = {0};
    out.cap = deflateBound(&z, n) + 64;
    out.p = xmalloc(out.cap);
    z.next_in = (unsigned char *)p; z.avail_in = (unsigned)n;
    z.next_out = out.p; z.avail_out = (unsigned)out.cap;
    deflate(&z, Z_FINISH);
    out.n = out.cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

// Reads every stream and line; returns a "name|line|line...\n" transcript, or the error text.
static char *slurp(const void *data, size_t n, int *rc) {
    Reader *r = reader_open_mem(data, n, "mem");
    Bytes t = {0};
    const char *name, *line;
    size_t len;
    bool too_long;
    int k;
    *rc = 0;
    while ((k = reader_next_stream(r, &name)) == 1) {
        put(&t, name, strlen(name));
        while ((k = reader_next_line(r, &line, &len, 4096, &too_long)) == 1) {
            put(&t, "|", 1);
            if (too_long) put(&t, "<LONG>", 6);
            else put(&t, line, len);
        }
        if (k < 0) break;
        put(&t, "\n", 1);
    }
    if (k < 0) { *rc = -1; t.n = 0; put(&t, reader_error(r), strlen(reader_error(r))); }
    put(&t, "", 1);
    reader_close(r);
    return (char *)t.p;
}

static void test_reader_plain_gzip(void) {
    const char *csv = "a,b\r\nc,d\n\nlast";
    int rc;
    char *t = slurp(csv, strlen(csv), &rc);
    CHECKF(rc == 0 && !strcmp(t, "mem|a,b|c,d||last\n"), "%s", t);
    free(t);
    Bytes gz = gzip_bytes(csv, strlen(csv));
    t = slurp(gz.p, gz.n, &rc);
    CHECKF(rc == 0 && !strcmp(t, "mem|a,b|c,d||last\n"), "%s", t);
    free(t);
    // concatenated gzip members read as one stream (pigz, bgzip)
    Bytes two = {0};
    put(&two, gz.p, gz.n);
    put(&two, gz.p, gz.n);
    t = slurp(two.p, two.n, &rc);
    CHECKF(rc == 0 && !strcmp(t, "mem|a,b|c,d||lasta,b|c,d||last\n"), "%s", t);
    free(t); free(two.p);
    // every truncation of a gzip stream is an error naming the file and an offset
    int bad = 0;
    for (size_t cut = 2; cut < gz.n; cut++) {  // (one byte is not yet a gzip magic)
        t = slurp(gz.p, cut, &rc);
        if (rc != -1 || !strstr(t, "mem: ") || !strstr(t, "offset") || !strstr(t, "gzip")) { bad++; if (bad < 3) printf("    cut %zu: %s\n", cut, t); }
        free(t);
    }
    CHECKF(bad == 0, "%d truncations not reported", bad);
    // a flipped byte inside the compressed data is caught (by inflate or by the CRC)
    gz.p[gz.n / 2] ^= 0x55;
    t = slurp(gz.p, gz.n, &rc);
    CHECKF(rc == -1 && strstr(t, "corrupt gzip"), "%s", t);
    free(t); free(gz.p);
}

static void test_reader_long_lines(void) {
    // a 5000-byte line and a 3 MiB line (over the 1 MiB window) are skipped whole
    size_t big = 3u << 20;
    Bytes b = {0};
    put(&b, "h\n", 2);
    char *x = xmalloc(big);
    memset(x, 'x', big);
    put(&b, x, 5000); put(&b, "\nok1\n", 5);
    put(&b, x, big); put(&b, "\nok2\n", 5);
    put(&b, x, 4096); put(&b, "\r\n", 2);   // exactly the limit plus CR: kept
    put(&b, x, big);                         // too long and unterminated at the end
    int rc;
    char *t = slurp(b.p, b.n, &rc);
    REQUIRE(rc == 0);
    CHECKF(!strncmp(t, "mem|h|<LONG>|ok1|<LONG>|ok2|xxx", 31) && has_suffix(t, "x|<LONG>\n") && strlen(t) == 28 + 4096 + 8,
           "%.60s... (%zu)", t, strlen(t));
    free(t);
    Bytes gz = gzip_bytes(b.p, b.n);
    t = slurp(gz.p, gz.n, &rc);
    CHECK(rc == 0 && !strncmp(t, "mem|h|<LONG>|ok1|<LONG>|ok2|xxx", 31) && has_suffix(t, "x|<LONG>\n"));
    free(t); free(gz.p); free(b.p); free(x);
}

static void test_reader_tar(void) {
    Bytes tar = {0};
    tar_add(&tar, "CallGraph/", "", 0, '5');
    tar_add(&tar, "CallGraph/readme.txt", "not csv\n", 8, '0');
    tar_add(&tar, "CallGraph/a.csv", "h\n1\n2\n", 6, '0');
    tar_add(&tar, "CallGraph/._a.csv", "junk", 4, '0');      // macOS resource fork: skipped
    tar_add(&tar, "CallGraph/b.csv", "h\n3", 3, '0');        // last line without newline
    tar_end(&tar);
    int rc;
    char *t = slurp(tar.p, tar.n, &rc);
    CHECKF(rc == 0 && !strcmp(t, "mem:CallGraph/a.csv|h|1|2\nmem:CallGraph/b.csv|h|3\n"), "%s", t);
    free(t);
    Bytes gz = gzip_bytes(tar.p, tar.n);
    t = slurp(gz.p, gz.n, &rc);
    CHECKF(rc == 0 && !strcmp(t, "mem:CallGraph/a.csv|h|1|2\nmem:CallGraph/b.csv|h|3\n"), "%s", t);
    free(t);
    // truncated inside a member's data: an error naming the member
    t = slurp(tar.p, 512 * 5 + 3, &rc);
    CHECKF(rc == -1 && strstr(t, "truncated tar") && strstr(t, "offset"), "%s", t);
    free(t);
    t = slurp(gz.p, gz.n - 9, &rc);
    CHECKF(rc == -1 && strstr(t, "truncated gzip"), "%s", t);
    free(t);
    // a damaged header block
    tar.p[512 * 3 + 10] ^= 1;  // the name in a.csv's header (dir, readme + its data come first)
    t = slurp(tar.p, tar.n, &rc);
    CHECKF(rc == -1 && strstr(t, "corrupt tar header") && strstr(t, "tar offset 1536"), "%s", t);
    free(t); free(gz.p); free(tar.p);
}

// ---- a whole run on fixtures ----
static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}
static const char *FIX_A =
    "timestamp,traceid,service,rpc_id,rpctype,um,uminstanceid,interface,dm,dminstanceid,rt\n"
    // T_1: a valid 3-edge graph; its callee-side duplicate of 0.1 comes later and is dropped
    "100,T_1,S_7,0,http,USER,USER,i,MS_1,MS_1_POD_0,10.9\n"
    "101,T_1,S_7,0.1,rpc,MS_1,p,i,MS_2,q,4.0\n"
    "102,T_1,S_7,0.1,rpc,UNKNOWN,UNAVAILABLE,i,MS_2,q,3.0\n"
    "102,T_1,S_7,0.1,rpc,MS_1,p,i,MS_2,q,3.0\n"
    // T_2: the same content as T_1 (an exact duplicate graph)
    "500,T_2,S_7,0,http,USER,USER,i,MS_1,MS_1_POD_0,10.2\n"
    "501,T_2,S_7,0.1,rpc,MS_1,p,i,MS_2,q,4\n"
    "503,T_2,S_7,0.1.1,db,MS_2,p,i,MS_10,q,2.9\n"
    // T_3: rooted at 0.1 only
    "7,T_3,S_8,0.1,http,MS_5,p,i,MS_6,q,1\n"
    // malformed rows
    "1,T_9,S_1,0,http,USER,USER,i,x,MS_1,MS_1_POD_0,3.0\n"
    "1,T_9,S_1,0,http,USER,USER,i,MS_1,MS_1_POD_0,None\n";
static const char *FIX_B =  // T_4 spans both files: its child rows are here
    "traceid,timestamp,service,rpc_id,rpctype,um,dm,rt\n"
    "T_4,1001,S_9,0.2,mc,MS_3,MS_4,1.0\n"
    "T_1,103,S_7,0.1.1,db,MS_2,MS_10,2.0\n";
static const char *FIX_C = "timestamp,traceid,service,rpc_id,rpctype,um,dm,rt\n1000,T_4,S_9,0,http,USER,MS_3,5\n";

static char *file_text(const char *path) { return read_file(path, NULL); }

static void test_prepare_run(void) {
    char dir[] = "/tmp/tracellm-prep-XXXXXX";
    REQUIRE(mkdtemp(dir));
    char a[256], b[256], c[256], out1[256], out2[256], p[300];
    snprintf(a, sizeof a, "%s/a.csv", dir); write_text(a, FIX_A);
    snprintf(b, sizeof b, "%s/b.csv", dir); write_text(b, FIX_B);
    snprintf(c, sizeof c, "%s/c.csv", dir); write_text(c, FIX_C);
    snprintf(out1, sizeof out1, "%s/out1", dir);
    snprintf(out2, sizeof out2, "%s/out2", dir);
    const char *in1[] = {a, b, c}, *in2[] = {c, b, a};
    PrepareOptions o = {in1, 3, out1, 0.5, 7, 15, false, 2, 1 << 30, 4, true};
    PrepareReport r;
    prepare_run(&o, &r);
    CHECK(r.files == 3 && r.rows_read == 13 && r.rows_malformed == 1 && r.malformed[MAL_FIELD_COUNT] == 1);
    CHECK(r.missing_rt == 1 && r.unknown_name == 1 && r.filtered_type == 0 && r.duplicate_rpc_id == 1);
    CHECKF(r.graphs_built == 4 && r.graph_drop[GRAPH_NO_ROOT] == 1 && r.duplicate_graph == 1 && r.graphs_kept == 2,
           "built %lld no_root %lld dup %lld kept %lld", (long long)r.graphs_built, (long long)r.graph_drop[GRAPH_NO_ROOT],
           (long long)r.duplicate_graph, (long long)r.graphs_kept);
    CHECK(r.n_examples == 1 && strstr(r.examples[0], "a.csv:10: field_count"));
    // the kept graphs, read back with the shared JSONL reader: T_1 (3 edges, first row per rpc_id,
    // rt truncated, ids padded) and T_4 assembled from two files; T_2 was T_1's duplicate
    CallGraph gs[4];
    int n = 0;
    for (int side = 0; side < 2; side++) {
        snprintf(p, sizeof p, "%s/%s.jsonl", out1, side ? "val" : "train");
        CallGraph *g;
        int k = graphs_load(p, &g);
        for (int i = 0; i < k && n < 4; i++) gs[n++] = g[i];
        free(g);
    }
    REQUIRE(n == 2);
    CallGraph *t1 = !strcmp(gs[0].trace_id, "T_1") ? &gs[0] : &gs[1], *t4 = t1 == &gs[0] ? &gs[1] : &gs[0];
    REQUIRE(!strcmp(t1->trace_id, "T_1") && !strcmp(t4->trace_id, "T_4"));
    CHECK(!strcmp(t1->service, "S_000000007") && t1->n == 3);
    CHECK(!strcmp(t1->edges[0].dst, "MS_00001") && t1->edges[0].rt_ms == 10 && t1->edges[0].start_ms == 0);
    CHECK(!strcmp(t1->edges[1].rpc_id, "0.1") && !strcmp(t1->edges[1].src, "MS_00001") && t1->edges[1].rt_ms == 4 &&
          t1->edges[1].start_ms == 1);
    CHECK(!strcmp(t1->edges[2].rpc_id, "0.1.1") && t1->edges[2].type == RPC_DB && t1->edges[2].start_ms == 3);
    CHECK(t4->n == 2 && !strcmp(t4->edges[1].rpc_id, "0.2") && t4->edges[1].start_ms == 1);
    graph_free(&gs[0]); graph_free(&gs[1]);
    // lines are byte-identical to graph_write_json's
    snprintf(p, sizeof p, "%s/train.jsonl", out1);
    char *train1 = file_text(p);
    snprintf(p, sizeof p, "%s/val.jsonl", out1);
    char *val1 = file_text(p);
    for (char *line = train1[0] ? train1 : val1, *nl; line && *line; line = nl + 1) {
        nl = strchr(line, '\n');
        CallGraph g; graph_init(&g);
        char err[256], *buf; size_t bn;
        REQUIRE(graph_parse_json(line, (size_t)(nl - line), &g, err, sizeof err));
        FILE *m = open_memstream(&buf, &bn);
        graph_write_json(m, &g);
        fclose(m);
        CHECKF(bn == (size_t)(nl - line) + 1 && !memcmp(buf, line, bn), "%.*s", (int)bn, buf);
        free(buf); graph_free(&g);
    }
    // reversed input order, one thread, one bucket: byte-identical outputs
    PrepareOptions o2 = {in2, 3, out2, 0.5, 7, 15, false, 1, 1 << 30, 1, true};
    prepare_run(&o2, &r);
    snprintf(p, sizeof p, "%s/train.jsonl", out2);
    char *train2 = file_text(p);
    snprintf(p, sizeof p, "%s/val.jsonl", out2);
    char *val2 = file_text(p);
    CHECK(!strcmp(train1, train2) && !strcmp(val1, val2));
    // no temporary folder is left behind
    snprintf(p, sizeof p, "%s/.prepare.tmp.%d", out1, (int)getpid());
    CHECK(!path_is_dir(p));
    // --keep-duplicates keeps T_2
    o2.keep_duplicates = true;
    prepare_run(&o2, &r);
    CHECK(r.graphs_kept == 3 && r.duplicate_graph == 0);
    free(train1); free(val1); free(train2); free(val2);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

// A memory limit far below the input: oversized buckets and partitions are split again on the fly
// (pass 2 and pass 3), and the outputs stay byte-identical to a run with plenty of memory.
static void test_prepare_split_small_memory(void) {
    char dir[] = "/tmp/tracellm-prep-XXXXXX";
    REQUIRE(mkdtemp(dir));
    char in[256], out1[256], out2[256], p[300];
    snprintf(in, sizeof in, "%s/many.csv", dir);
    FILE *f = fopen(in, "wb");
    REQUIRE(f);
    fprintf(f, "timestamp,traceid,service,rpc_id,rpctype,um,dm,rt\n");
    for (int t = 0; t < 3000; t++) {  // every 7th trace repeats an earlier one's content
        int c = t % 7 == 6 ? t - 1 : t;
        fprintf(f, "%d,T_%d,S_%d,0,http,USER,MS_%d,%d.5\n", 1000 * t, t, c % 40, c % 90, 20 + c % 13);
        fprintf(f, "%d,T_%d,S_%d,0.1,rpc,MS_%d,MS_%d,%d\n", 1000 * t + 1, t, c % 40, c % 90, c % 77, 3 + c % 5);
        fprintf(f, "%d,T_%d,S_%d,0.1.1,mc,MS_%d,MS_%d,1\n", 1000 * t + 2, t, c % 40, c % 77, c % 55);
    }
    fclose(f);
    snprintf(out1, sizeof out1, "%s/big", dir);
    snprintf(out2, sizeof out2, "%s/small", dir);
    const char *ins[] = {in};
    PrepareOptions big = {ins, 1, out1, 0.2, 3, 15, false, 2, 1 << 30, 4, true};
    PrepareOptions small = {ins, 1, out2, 0.2, 3, 15, false, 2, 256 << 10, 1, true};
    PrepareReport r1, r2;
    prepare_run(&big, &r1);
    prepare_run(&small, &r2);
    CHECKF(r1.graphs_kept > 2000 && r1.duplicate_graph > 300, "kept %lld dup %lld", (long long)r1.graphs_kept,
           (long long)r1.duplicate_graph);
    CHECK(r2.graphs_kept == r1.graphs_kept && r2.duplicate_graph == r1.duplicate_graph && r2.val == r1.val);
    CHECKF(r1.split_files == 0 && r2.split_files >= 16, "split files: %d and %d", r1.split_files, r2.split_files);
    for (int side = 0; side < 2; side++) {
        const char *name = side ? "val" : "train";
        snprintf(p, sizeof p, "%s/%s.jsonl", out1, name);
        char *a = file_text(p);
        snprintf(p, sizeof p, "%s/%s.jsonl", out2, name);
        char *b = file_text(p);
        CHECKF(!strcmp(a, b), "%s.jsonl differs", name);
        free(a); free(b);
    }
    snprintf(p, sizeof p, "%s/.prepare.tmp.%d", out2, (int)getpid());
    CHECK(!path_is_dir(p));
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

static void test_v2021_service(void) {
    char s1[16], s2[16], s3[16];
    prepare_v2021_service("abc", "i1", s1);
    prepare_v2021_service("abc", "i1", s2);
    prepare_v2021_service("abc", "i2", s3);
    CHECK(!strcmp(s1, s2) && strcmp(s1, s3) && strlen(s1) == 11 && !strncmp(s1, "S_", 2));
}

int main(void) {
    RUN(test_schema);
    RUN(test_rows);
    RUN(test_pad);
    RUN(test_reader_plain_gzip);
    RUN(test_reader_long_lines);
    RUN(test_reader_tar);
    RUN(test_prepare_run);
    RUN(test_prepare_split_small_memory);
    RUN(test_v2021_service);
    TEST_END();
}
