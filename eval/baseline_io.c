// The baseline model file and the loader of the Erms distribution files (see baseline.h).
// File layout (little-endian, as written by x86-64 and ARM64 hosts):
//   char magic[8] = "TLBASE\0\0"; u32 version; u32 crc32(payload); u64 payload bytes; payload
// payload: i64 n_graphs; u8 erms; names (u32 count, then u32 length + bytes each);
//   services hist; children hists [16][6]; types f64 [16][65][5]; callee maps (u32 count, then
//   u64 key + hist each) by (service, caller, type) then by (caller, type); by_type hists [5];
//   any_callee hist; rt tables [16][6] (i64 n, then BASE_NQ i64 quantiles when n > 0).
// A hist is u32 n, then n x (i32 key, f64 weight).
#include "eval/baseline.h"
#include "util/util.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define BASE_MAGIC "TLBASE\0\0"
#define BASE_VERSION 1u

// ---------------------------------------------------------------------------------------------
// Writing

typedef struct { unsigned char *p; size_t n, cap; } Buf;
static void put(Buf *b, const void *p, size_t n) {
    grow((void **)&b->p, &b->cap, b->n + n, 1);
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void put_u32(Buf *b, uint32_t x) { put(b, &x, 4); }
static void put_i64(Buf *b, int64_t x) { put(b, &x, 8); }
static void put_hist(Buf *b, const Hist *h) {
    put_u32(b, (uint32_t)h->n);
    for (int i = 0; i < h->n; i++) { put(b, &h->key[i], 4); put(b, &h->w[i], 8); }
}
static void put_map(Buf *b, const HistMap *hm) {
    put_u32(b, (uint32_t)hm->n);
    // in slot order of the table: deterministic for a given fit, and load rebuilds the table
    for (size_t i = 0; i < hm->cap; i++) {
        if (!hm->keys[i]) continue;
        put(b, &hm->keys[i], 8);
        put_hist(b, &hm->hists[hm->slot[i]]);
    }
}

void base_save(const BaseModel *m, const char *path) {
    Buf b = {0};
    put_i64(&b, m->n_graphs);
    unsigned char erms = m->erms;
    put(&b, &erms, 1);
    put_u32(&b, (uint32_t)m->n_names);
    for (int i = 0; i < m->n_names; i++) {
        uint32_t len = (uint32_t)strlen(m->names[i]);
        put_u32(&b, len);
        put(&b, m->names[i], len);
    }
    put_hist(&b, &m->services);
    for (int d = 0; d <= BASE_MAX_DEPTH; d++)
        for (int t = 0; t <= RPC_NTYPES; t++) put_hist(&b, &m->children[d][t]);
    put(&b, m->types, sizeof m->types);
    put_map(&b, &m->by_svc_caller_type);
    put_map(&b, &m->by_caller_type);
    for (int t = 0; t < RPC_NTYPES; t++) put_hist(&b, &m->by_type[t]);
    put_hist(&b, &m->any_callee);
    for (int d = 0; d <= BASE_MAX_DEPTH; d++)
        for (int t = 0; t <= RPC_NTYPES; t++) {
            put_i64(&b, m->rt[d][t].n);
            if (m->rt[d][t].n) put(&b, m->rt[d][t].q, sizeof m->rt[d][t].q);
        }
    uint32_t crc = crc32_update(0, b.p, b.n);
    OutFile *o = out_open(path);
    uint32_t version = BASE_VERSION;
    uint64_t len = b.n;
    xfwrite(BASE_MAGIC, 1, 8, o->f, path);
    xfwrite(&version, 4, 1, o->f, path);
    xfwrite(&crc, 4, 1, o->f, path);
    xfwrite(&len, 8, 1, o->f, path);
    xfwrite(b.p, 1, b.n, o->f, path);
    out_close(o);
    free(b.p);
}

// ---------------------------------------------------------------------------------------------
// Reading: every count is checked against the bytes left, every key against its range, so a
// corrupt file that slipped past the CRC (or a crafted one) is an error, never a crash.

typedef struct {
    const unsigned char *p;
    size_t n, off;
    char *err; size_t errlen;
    const char *path;
    bool bad;
} Rd;
static bool get(Rd *r, void *dst, size_t n, const char *what) {
    if (r->bad) return false;
    if (r->n - r->off < n) {
        snprintf(r->err, r->errlen, "%s: truncated model (reading %s at byte %zu)", r->path, what, r->off + 24);
        r->bad = true;
        return false;
    }
    memcpy(dst, r->p + r->off, n);
    r->off += n;
    return true;
}
static bool rd_fail(Rd *r, const char *what) {
    if (!r->bad) snprintf(r->err, r->errlen, "%s: corrupt model: %s (byte %zu)", r->path, what, r->off + 24);
    r->bad = true;
    return false;
}
// key_max: keys must lie in [0, key_max]
static bool get_hist(Rd *r, Hist *h, int32_t key_max, const char *what) {
    uint32_t n;
    if (!get(r, &n, 4, what)) return false;
    if ((uint64_t)n * 12 > r->n - r->off) return rd_fail(r, what);
    for (uint32_t i = 0; i < n; i++) {
        int32_t k;
        double w;
        get(r, &k, 4, what);
        get(r, &w, 8, what);
        if (k < 0 || k > key_max || !(w >= 0) || isinf(w)) return rd_fail(r, what);
        hist_add(h, k, w);
    }
    return true;
}
static bool get_map(Rd *r, HistMap *hm, int32_t key_max, const char *what) {
    uint32_t n;
    if (!get(r, &n, 4, what)) return false;
    if ((uint64_t)n * 12 > r->n - r->off) return rd_fail(r, what);
    for (uint32_t i = 0; i < n && !r->bad; i++) {
        uint64_t key;
        if (!get(r, &key, 8, what)) return false;
        if (!(key >> 62)) return rd_fail(r, what);
        Hist *h = histmap_get(hm, key, true);
        if (h->n) return rd_fail(r, "duplicate callee key");
        get_hist(r, h, key_max, what);
    }
    return !r->bad;
}

bool base_load(BaseModel *m, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno)); return false; }
    fclose(f);
    base_init(m);
    size_t len;
    unsigned char *data = (unsigned char *)read_file(path, &len);
    bool ok = false;
    Rd r = {data + 24, 0, 0, err, errlen, path, false};
    uint32_t version, crc;
    uint64_t plen;
    if (len < 24 || memcmp(data, BASE_MAGIC, 8)) {
        snprintf(err, errlen, "%s: not a tracellm baseline model (bad magic)", path);
        goto done;
    }
    memcpy(&version, data + 8, 4);
    memcpy(&crc, data + 12, 4);
    memcpy(&plen, data + 16, 8);
    if (version != BASE_VERSION) {
        snprintf(err, errlen, "%s: baseline model version %u, this program reads version %u", path, version, BASE_VERSION);
        goto done;
    }
    if (plen != len - 24) {
        snprintf(err, errlen, "%s: payload is %zu bytes, header says %llu (truncated?)", path, len - 24, (unsigned long long)plen);
        goto done;
    }
    uint32_t got = crc32_update(0, data + 24, plen);
    if (got != crc) {
        snprintf(err, errlen, "%s: CRC32 mismatch (file %08x, computed %08x): the model file is corrupt", path, crc, got);
        goto done;
    }
    r.n = plen;
    unsigned char erms;
    uint32_t n_names;
    get(&r, &m->n_graphs, 8, "header");
    get(&r, &erms, 1, "header");
    m->erms = erms != 0;
    if (!get(&r, &n_names, 4, "names")) goto done;
    if (n_names < 1 || (uint64_t)n_names * 4 > r.n - r.off || n_names > (1u << 28)) { rd_fail(&r, "name count"); goto done; }
    for (uint32_t i = 0; i < n_names; i++) {
        uint32_t l;
        if (!get(&r, &l, 4, "names")) goto done;
        if (l > r.n - r.off || l > 4096) { rd_fail(&r, "name length"); goto done; }
        char *s = xstrndup((const char *)r.p + r.off, l);
        r.off += l;
        bool dup = strlen(s) != l || base_lookup(m, s) >= 0;
        if (i == 0) dup = strcmp(s, "USER") != 0;  // id 0 is USER, already interned by base_init
        else if (!dup) base_intern(m, s);
        free(s);
        if (dup) { rd_fail(&r, "duplicate or invalid name"); goto done; }
    }
    int32_t maxid = (int32_t)m->n_names - 1;
    get_hist(&r, &m->services, maxid, "services");
    for (int d = 0; d <= BASE_MAX_DEPTH; d++)
        for (int t = 0; t <= RPC_NTYPES; t++) get_hist(&r, &m->children[d][t], BASE_MAX_CHILDREN, "children counts");
    get(&r, m->types, sizeof m->types, "types");
    for (int d = 0; d <= BASE_MAX_DEPTH; d++)
        for (int s = 0; s <= BASE_MAX_SIB; s++)
            for (int t = 0; t < RPC_NTYPES; t++)
                if (!(m->types[d][s][t] >= 0) || isinf(m->types[d][s][t])) rd_fail(&r, "type weights");
    get_map(&r, &m->by_svc_caller_type, maxid, "callees by service");
    get_map(&r, &m->by_caller_type, maxid, "callees by caller");
    for (int t = 0; t < RPC_NTYPES; t++) get_hist(&r, &m->by_type[t], maxid, "callees by type");
    get_hist(&r, &m->any_callee, maxid, "callees");
    for (int d = 0; d <= BASE_MAX_DEPTH; d++)
        for (int t = 0; t <= RPC_NTYPES; t++) {
            RtTable *q = &m->rt[d][t];
            if (!get(&r, &q->n, 8, "response times")) goto done;
            if (q->n < 0) { rd_fail(&r, "response-time count"); goto done; }
            if (q->n && !get(&r, q->q, sizeof q->q, "response times")) goto done;
            for (int i = 0; i < BASE_NQ && q->n; i++)
                if (q->q[i] < 0 || q->q[i] > BASE_MAX_RT || (i && q->q[i] < q->q[i - 1])) { rd_fail(&r, "response-time quantiles"); goto done; }
        }
    if (r.bad) goto done;
    if (r.off != r.n) { rd_fail(&r, "trailing bytes"); goto done; }
    ok = true;
done:
    free(data);
    if (!ok) base_free(m);
    return ok;
}

// ---------------------------------------------------------------------------------------------
// Erms distribution files (Cloud-and-Distributed-Systems/Erms, graphGenerator/). Their generator
// (microservice_graph_generator.py) reads them as follows, and so do we:
//   depthDistribution.csv   depth,num,percentage: the number of calls an expanded call at rpc
//                           depth `depth` makes; at depth 1 the generator adds 1 to `num`
//   leafDistribution.csv    depth,percentage: P(leaf) for a call whose child depth is depth+1
//   nodeDistribution.csv    depth,percentage: P(medium | not leaf) likewise; a call expands with
//                           probability (1 - leaf) * medium, and only rpc, mq and http calls expand
//   communicationParadigm.csv  depth,num,rpc_type,percentage: type of each of `num` children of a
//                           call at depth `depth` (memcached = mc); the remainder is http

typedef struct { char **col; int ncol; } CsvHeader;

// Reads a CSV with a header; calls row(ctx, values by wanted column, lineno) per line.
static bool erms_csv(const char *dir, const char *name, const char **want, int nwant,
                     bool (*row)(void *ctx, char **v, char *err, size_t errlen), void *ctx, char *err, size_t errlen) {
    char *path = path_join(dir, name);
    FILE *f = fopen(path, "r");
    if (!f) { snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno)); free(path); return false; }
    char *line = NULL;
    size_t cap = 0;
    int idx[8], lineno = 0;
    bool ok = false;
    char *cells[64];
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        int nc = 0;
        for (char *p = line, *tok; nc < 64 && (tok = strsep(&p, ",")) != NULL;) cells[nc++] = tok;
        if (lineno == 1) {
            for (int w = 0; w < nwant; w++) {
                idx[w] = -1;
                for (int c = 0; c < nc; c++)
                    if (!strcmp(cells[c], want[w])) idx[w] = c;
                if (idx[w] < 0) { snprintf(err, errlen, "%s:1: no column \"%s\" in the header", path, want[w]); goto done; }
            }
            continue;
        }
        if (!line[0]) continue;
        char *v[8];
        for (int w = 0; w < nwant; w++) {
            if (idx[w] >= nc) { snprintf(err, errlen, "%s:%d: expected at least %d columns", path, lineno, idx[w] + 1); goto done; }
            v[w] = cells[idx[w]];
        }
        char rerr[200];
        if (!row(ctx, v, rerr, sizeof rerr)) { snprintf(err, errlen, "%s:%d: %s", path, lineno, rerr); goto done; }
    }
    if (lineno < 2) { snprintf(err, errlen, "%s: no data rows", path); goto done; }
    ok = true;
done:
    free(line);
    free(path);
    fclose(f);
    return ok;
}

static bool num(const char *s, double *x) {
    char *end;
    errno = 0;
    *x = strtod(s, &end);
    return end != s && !*end && !errno && isfinite(*x);
}

#define ERMS_MAXD 64
typedef struct {
    double count[ERMS_MAXD][BASE_MAX_CHILDREN + 1];  // [depth][num] probability
    double leaf[ERMS_MAXD], medium[ERMS_MAXD];
    bool have_leaf[ERMS_MAXD], have_medium[ERMS_MAXD];
    double comm[ERMS_MAXD][BASE_MAX_SIB + 1][RPC_NTYPES];
    bool have_comm[ERMS_MAXD][BASE_MAX_SIB + 1];
} Erms;

static bool row_depth(void *ctx, char **v, char *err, size_t errlen) {
    Erms *e = ctx;
    double d, k, p;
    if (!num(v[0], &d) || !num(v[1], &k) || !num(v[2], &p) || d < 0 || k < 0 || p < 0 || p > 1 + 1e-9) {
        snprintf(err, errlen, "expected depth,num,percentage numbers");
        return false;
    }
    if (d == 1) k += 1;  // as the authors' generator does at depth 1
    if (d < ERMS_MAXD && k <= BASE_MAX_CHILDREN) e->count[(int)d][(int)k] += p;
    return true;
}
static bool row_leaf(void *ctx, char **v, char *err, size_t errlen, bool leaf) {
    Erms *e = ctx;
    double d, p;
    if (!num(v[0], &d) || !num(v[1], &p) || d < 0 || p < 0 || p > 1 + 1e-9) {
        snprintf(err, errlen, "expected depth,percentage numbers");
        return false;
    }
    if (d < ERMS_MAXD) {
        if (leaf) { e->leaf[(int)d] = p; e->have_leaf[(int)d] = true; }
        else { e->medium[(int)d] = p; e->have_medium[(int)d] = true; }
    }
    return true;
}
static bool row_leafp(void *ctx, char **v, char *err, size_t errlen) { return row_leaf(ctx, v, err, errlen, true); }
static bool row_medium(void *ctx, char **v, char *err, size_t errlen) { return row_leaf(ctx, v, err, errlen, false); }
static bool row_comm(void *ctx, char **v, char *err, size_t errlen) {
    Erms *e = ctx;
    double d, k, p;
    if (!num(v[0], &d) || !num(v[1], &k) || !num(v[3], &p) || d < 0 || k < 1 || p < 0 || p > 1 + 1e-9) {
        snprintf(err, errlen, "expected depth,num,rpc_type,percentage");
        return false;
    }
    int t = !strcmp(v[2], "memcached") ? RPC_MC : rpc_type_parse(v[2], strlen(v[2]));
    if (t < 0) { snprintf(err, errlen, "unknown rpc_type \"%s\"", v[2]); return false; }
    if (t == RPC_HTTP) return true;  // the generator ignores http rows: http is the remainder
    int s = k < BASE_MAX_SIB ? (int)k : BASE_MAX_SIB;
    if (d < ERMS_MAXD) {
        e->comm[(int)d][s][t] += p;
        e->have_comm[(int)d][s] = true;
    }
    return true;
}

bool base_apply_erms(BaseModel *m, const char *dir, char *err, size_t errlen) {
    Erms *e = xcalloc(1, sizeof *e);
    const char *wd[] = {"depth", "num", "percentage"}, *wl[] = {"depth", "percentage"},
               *wc[] = {"depth", "num", "rpc_type", "percentage"};
    bool ok = erms_csv(dir, "depthDistribution.csv", wd, 3, row_depth, e, err, errlen) &&
              erms_csv(dir, "leafDistribution.csv", wl, 2, row_leafp, e, err, errlen) &&
              erms_csv(dir, "nodeDistribution.csv", wl, 2, row_medium, e, err, errlen) &&
              erms_csv(dir, "communicationParadigm.csv", wc, 4, row_comm, e, err, errlen);
    if (!ok) { free(e); return false; }
    // children[d][t] of a call at depth d: leaf with probability 1 - p_expand(d - 1), else a count
    // from depthDistribution[d]; mc and db calls never expand in the authors' generator
    for (int d = 1; d <= BASE_MAX_DEPTH; d++) {
        double pexp = 0;
        if (e->have_leaf[d - 1] && e->have_medium[d - 1]) pexp = (1 - e->leaf[d - 1]) * e->medium[d - 1];
        double tot = 0;
        for (int k = 0; k <= BASE_MAX_CHILDREN; k++) tot += e->count[d][k];
        if (tot <= 0) pexp = 0;
        for (int t = 0; t <= RPC_NTYPES; t++) {
            hist_free(&m->children[d][t]);
            if (t == RPC_NTYPES) continue;  // the mix of types at d is not in the files: no "any type" row
            bool expands = t == RPC_RPC || t == RPC_MQ || t == RPC_HTTP;
            hist_add(&m->children[d][t], 0, expands ? 1 - pexp : 1);
            if (expands && pexp > 0)
                for (int k = 1; k <= BASE_MAX_CHILDREN; k++)
                    if (e->count[d][k] > 0) hist_add(&m->children[d][t], k, pexp * e->count[d][k] / tot);
        }
    }
    // types[d][s]: a child at depth d has a parent at depth d - 1, the key of the Erms table
    memset(m->types, 0, sizeof m->types);
    for (int d = 2; d <= BASE_MAX_DEPTH; d++)
        for (int s = 1; s <= BASE_MAX_SIB; s++) {
            if (!e->have_comm[d - 1][s]) continue;
            double sum = 0;
            for (int t = 0; t < RPC_NTYPES; t++) { m->types[d][s][t] = e->comm[d - 1][s][t]; sum += e->comm[d - 1][s][t]; }
            m->types[d][s][RPC_HTTP] += sum < 1 ? 1 - sum : 0;
            for (int t = 0; t < RPC_NTYPES; t++) { m->types[d][0][t] += m->types[d][s][t]; m->types[0][0][t] += m->types[d][s][t]; }
        }
    m->types[1][1][RPC_HTTP] = 1;  // the generator's root is always http
    m->types[1][0][RPC_HTTP] = 1;
    m->erms = true;
    free(e);
    return true;
}
