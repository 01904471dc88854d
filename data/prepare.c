// See prepare.h for the three passes and docs/PREPARE.md for the rules. Temporary files live in
// DIR/.prepare.tmp.<pid>/ and are removed at the end, on error (atexit) and on SIGINT/SIGTERM.
#include "data/prepare.h"
#include "data/stats.h"
#include "data/reader.h"
#include "util/args.h"
#include "util/json.h"
#include "util/progress.h"
#include "util/rng.h"
#include "util/util.h"
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// ---- records in the bucket files ----
// A kept row: this head, then six NUL-terminated strings (trace, service, rpc_id, um, dm, interface).
// Names are already zero-padded; interface is only kept for v2021 (it names the service there).
typedef struct {
    uint32_t len;          // bytes of the whole record
    uint8_t type, version;
    uint16_t n[6];
    int64_t ts, rt;
} RecHead;
enum { F_TID, F_SVC, F_RPC, F_UM, F_DM, F_IF, NFIELDS };
#define HASH_TRACE 0x7ace5eedULL   // bucket choice (low bits) and group order (all bits)
#define HASH_SPLIT 0x5b117ULL

static const char *rec_str(const char *rec, int f) {
    const RecHead *h = (const RecHead *)rec;
    const char *p = rec + sizeof(RecHead);
    for (int i = 0; i < f; i++) p += h->n[i] + 1;
    return p;
}

// A growable byte buffer (per-thread staging for bucket and partition files).
typedef struct { char *p; size_t n, cap; } Buf;
static void buf_need(Buf *b, size_t extra) { grow((void **)&b->p, &b->cap, b->n + extra, 1); }
static void buf_put(Buf *b, const void *p, size_t n) { buf_need(b, n); memcpy(b->p + b->n, p, n); b->n += n; }
static void buf_str(Buf *b, const char *s) { buf_put(b, s, strlen(s)); }
static void buf_json_string(Buf *b, const char *s) {
    size_t need = json_escape(NULL, 0, s);
    buf_need(b, need + 1);
    json_escape(b->p + b->n, need + 1, s);
    b->n += need;
}

// ---- the run ----
typedef struct {
    int64_t streams, v2022, v2021, rows, mal[MAL_NREASONS], filtered, unknown, missing_rt, kept;
    int n_ex;
    char ex[PREPARE_MAX_EXAMPLES][320];
} FileStats;

typedef struct {
    const PrepareOptions *o;
    char tmpdir[4096];
    int B, logB;                // buckets = content partitions, a power of two
    size_t stage;               // per-thread staging bytes per bucket in pass 1
    int *fd; pthread_mutex_t *mu;       // bucket files (pass 1 -> 2)
    int *pfd; pthread_mutex_t *pmu;     // content partitions (pass 2 -> 3)
    char **files; int n_files;
    FileStats *fs;
    atomic_int next, warned;
    atomic_llong rows_done, bytes_done;
    int64_t bytes_total, rows_total;
    Progress prog; pthread_mutex_t prog_mu;
} Prep;

// ---- cleanup of the temporary folder ----
static char g_tmpdir[4096];
static int g_nbuckets;
static atomic_int g_nsub;   // sub-bucket files made by split_fd
// "<dir>/<c><5 digits>", the names of the temporary files; no snprintf, as a signal handler calls it.
static void tmp_name(char *out, const char *dir, char c, int i) {
    size_t n = strlen(dir);
    memcpy(out, dir, n);
    out[n++] = '/';
    out[n++] = c;
    for (int d = 4; d >= 0; d--, i /= 10) out[n + (size_t)d] = (char)('0' + i % 10);
    out[n + 5] = 0;
}
static void remove_tmpdir(void) {
    if (!g_tmpdir[0]) return;
    char p[sizeof g_tmpdir + 16];
    for (int i = 0; i < g_nbuckets; i++) {
        tmp_name(p, g_tmpdir, 'b', i); unlink(p);
        tmp_name(p, g_tmpdir, 'p', i); unlink(p);
    }
    for (int i = 0, n = atomic_load(&g_nsub); i < n; i++) { tmp_name(p, g_tmpdir, 's', i); unlink(p); }
    rmdir(g_tmpdir);
    g_tmpdir[0] = 0;
}
static void on_signal(int sig) {
    remove_tmpdir();               // unlink/rmdir are async-signal-safe
    install_cleanup_signals();     // then util's handler removes the registered outputs and re-raises
    raise(sig);
}

static void write_all(int fd, const char *p, size_t n, const char *what) {
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) fatal("write failed on temporary %s: %s (is the output disk full?)", what, strerror(errno));
        p += k;
        n -= (size_t)k;
    }
}
static void flush_to(int fd, pthread_mutex_t *mu, Buf *b, const char *what) {
    if (!b->n) return;
    pthread_mutex_lock(mu);
    write_all(fd, b->p, b->n, what);
    pthread_mutex_unlock(mu);
    b->n = 0;
}

// Memory planned for the bucket one assembling thread holds (see choose_buckets).
static double bucket_budget(const PrepareOptions *o) { return 0.6 * (double)o->mem_limit / o->threads; }

static void tick(Prep *P, int64_t rows, int64_t bytes, double frac) {
    if (P->o->quiet || pthread_mutex_trylock(&P->prog_mu) != 0) return;
    progress_update(&P->prog, (double)rows, (double)bytes, frac);
    pthread_mutex_unlock(&P->prog_mu);
}

// ============ pass 1: partition rows into buckets by traceid ============
typedef struct { Prep *P; int id; Buf *stage; } Worker;

static void emit_row(Prep *P, Worker *w, int version, const CsvRow *r) {
    char svc[CSV_MAX_LINE + 16], um[CSV_MAX_LINE + 16], dm[CSV_MAX_LINE + 16];
    int nsvc = csv_pad_id(r->service.p, r->service.n, svc, sizeof svc);
    int num = csv_pad_id(r->um.p, r->um.n, um, sizeof um);
    int ndm = csv_pad_id(r->dm.p, r->dm.n, dm, sizeof dm);
    int nif = version == TRACE_V2021 ? r->interface.n : 0;
    RecHead h = {0};
    h.type = (uint8_t)r->type;
    h.version = (uint8_t)version;
    h.ts = r->ts;
    h.rt = r->rt_ms;
    const char *s[NFIELDS] = {r->traceid.p, svc, r->rpc_id.p, um, dm, r->interface.p};
    int n[NFIELDS] = {r->traceid.n, nsvc, r->rpc_id.n, num, ndm, nif};
    size_t len = sizeof h;
    for (int i = 0; i < NFIELDS; i++) { h.n[i] = (uint16_t)n[i]; len += (size_t)n[i] + 1; }
    size_t pad = (8 - len % 8) % 8;  // records stay 8-byte aligned in the file and in memory
    len += pad;
    h.len = (uint32_t)len;
    int b = (int)(hash_bytes(r->traceid.p, (size_t)r->traceid.n, HASH_TRACE) & (uint64_t)(P->B - 1));
    Buf *st = &w->stage[b];
    if (st->n + len > P->stage) flush_to(P->fd[b], &P->mu[b], st, "bucket file");
    buf_put(st, &h, sizeof h);
    for (int i = 0; i < NFIELDS; i++) { buf_put(st, s[i], (size_t)n[i]); buf_put(st, "", 1); }
    buf_put(st, "\0\0\0\0\0\0\0", pad);
}

static void partition_file(Prep *P, Worker *w, int fi) {
    FileStats *fs = &P->fs[fi];
    char err[1024];
    Reader *r = reader_open(P->files[fi], err, sizeof err);
    if (!r) fatal("%s", err);
    const char *name, *line;
    size_t len;
    bool too_long;
    int k;
    int64_t rows_since = 0;
    uint64_t raw_seen = 0;
    while ((k = reader_next_stream(r, &name)) == 1) {
        fs->streams++;
        int got = reader_next_line(r, &line, &len, CSV_MAX_LINE, &too_long);
        if (got < 0) fatal("%s", reader_error(r));
        if (got == 0) { warnf("%s: empty file (no header), skipped", name); continue; }
        CsvSchema s;
        if (too_long) fatal("%s:1: unknown header (a first line longer than %d bytes)", name, CSV_MAX_LINE);
        if (!csv_schema_parse(line, len, &s, err, sizeof err)) fatal("%s:1: %s", name, err);
        if (s.version == TRACE_V2022) fs->v2022++; else fs->v2021++;
        while ((got = reader_next_line(r, &line, &len, CSV_MAX_LINE, &too_long)) == 1) {
            fs->rows++;
            CsvRow row;
            CsvRowStatus st = too_long ? ROW_MALFORMED : csv_parse_row(&s, line, len, &row);
            if (too_long) row.malformed = MAL_LINE_TOO_LONG;
            switch (st) {
            case ROW_OK: fs->kept++; emit_row(P, w, s.version, &row); break;
            case ROW_FILTERED_TYPE: fs->filtered++; break;
            case ROW_UNKNOWN_NAME: fs->unknown++; break;
            case ROW_MISSING_RT: fs->missing_rt++; break;
            case ROW_MALFORMED:
                fs->mal[row.malformed]++;
                if (fs->n_ex < PREPARE_MAX_EXAMPLES)
                    snprintf(fs->ex[fs->n_ex++], sizeof fs->ex[0], "%s:%lld: %s", name, (long long)reader_lineno(r),
                             csv_malformed_name(row.malformed));
                break;
            }
            if (++rows_since == 65536) {
                uint64_t raw = reader_raw_offset(r);
                int64_t rows = atomic_fetch_add(&P->rows_done, rows_since) + rows_since;
                int64_t bytes = atomic_fetch_add(&P->bytes_done, (long long)(raw - raw_seen)) + (int64_t)(raw - raw_seen);
                raw_seen = raw;
                rows_since = 0;
                tick(P, rows, bytes, P->bytes_total > 0 ? (double)bytes / (double)P->bytes_total : -1);
            }
        }
        if (got < 0) fatal("%s", reader_error(r));
    }
    if (k < 0) fatal("%s", reader_error(r));
    atomic_fetch_add(&P->rows_done, rows_since);
    atomic_fetch_add(&P->bytes_done, (long long)(reader_raw_offset(r) - raw_seen));
    reader_close(r);
}

static void *partition_worker(void *arg) {
    Worker *w = arg;
    Prep *P = w->P;
    for (int fi; (fi = atomic_fetch_add(&P->next, 1)) < P->n_files;) partition_file(P, w, fi);
    for (int b = 0; b < P->B; b++) flush_to(P->fd[b], &P->mu[b], &w->stage[b], "bucket file");
    return NULL;
}

// ============ pass 2: assemble the traces of one bucket ============
typedef struct { uint64_t h; const char *rec; } Row;   // h: hash of the traceid

// Order of the rows of one trace.
static int row_cmp_in_trace(const void *pa, const void *pb) {
    const Row *a = pa, *b = pb;
    int c;
    const RecHead *x = (const RecHead *)a->rec, *y = (const RecHead *)b->rec;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    // "first row per rpc_id" needs a total order: ties on (timestamp, rpc_id) are broken by the
    // rest of the row, never by input position, so the result does not depend on file order.
    if ((c = strcmp(rec_str(a->rec, F_RPC), rec_str(b->rec, F_RPC)))) return c;
    if (x->type != y->type) return strcmp(rpc_type_name(x->type), rpc_type_name(y->type));
    if ((c = strcmp(rec_str(a->rec, F_UM), rec_str(b->rec, F_UM)))) return c;
    if ((c = strcmp(rec_str(a->rec, F_DM), rec_str(b->rec, F_DM)))) return c;
    if (x->rt != y->rt) return x->rt < y->rt ? -1 : 1;
    if ((c = strcmp(rec_str(a->rec, F_SVC), rec_str(b->rec, F_SVC)))) return c;
    return strcmp(rec_str(a->rec, F_IF), rec_str(b->rec, F_IF));
}
// Order of rows whose traceids share a hash: by traceid, then within the trace.
static int row_cmp(const void *pa, const void *pb) {
    const Row *a = pa, *b = pb;
    int c = strcmp(rec_str(a->rec, F_TID), rec_str(b->rec, F_TID));
    return c ? c : row_cmp_in_trace(pa, pb);
}
// Within one trace: by rpc_id, then by position in the (timestamp, rpc_id, ...) order.
typedef struct { const char *rpc; int pos; } RpcPos;
static int rpcpos_cmp(const void *pa, const void *pb) {
    const RpcPos *a = pa, *b = pb;
    int c = strcmp(a->rpc, b->rpc);
    return c ? c : a->pos - b->pos;
}

void prepare_v2021_service(const char *dm, const char *interface, char out[16]) {
    uint64_t h = hash_bytes(dm, strlen(dm), 0x2021);
    h = hash_bytes(interface, strlen(interface), h);
    snprintf(out, 16, "S_%09llu", (unsigned long long)(h % 1000000000ULL));
}

// One graph line, byte-identical to graph_write_json, split as {"trace_id":...}{tail}: the tail
// (service and edges) is the graph's content, the key of exact-duplicate removal.
static void json_tail(Buf *b, const CallGraph *g) {
    buf_str(b, ",\"service\":");
    buf_json_string(b, g->service);
    buf_str(b, ",\"edges\":[");
    for (int i = 0; i < g->n; i++) {
        const Edge *e = &g->edges[i];
        char num[64];
        buf_str(b, i ? ",[" : "[");
        buf_json_string(b, e->rpc_id);
        buf_str(b, ",\"");
        buf_str(b, rpc_type_name(e->type));
        buf_str(b, "\",");
        buf_json_string(b, e->src);
        buf_put(b, ",", 1);
        buf_json_string(b, e->dst);
        snprintf(num, sizeof num, ",%lld,%lld]", (long long)e->start_ms, (long long)e->rt_ms);
        buf_str(b, num);
    }
    buf_str(b, "]}\n");
}

// A content-partition record: head, raw trace id (NUL-terminated), then the JSON tail.
typedef struct { uint32_t len, n_edges, tid_len, tail_len; uint64_t chash; } PartHead;

typedef struct {
    Buf *stage;               // per content partition
    Buf tail, data;
    Row *rows, *tmp; size_t rows_cap, tmp_cap;
    RpcPos *rp; size_t rp_cap;
    Edge *edges; size_t edges_cap;
    int64_t dup_rpc, in_graphs, built, drop[GRAPH_NCHECKS];
} Assembler;

static void assemble_trace(Prep *P, Assembler *A, const Row *rows, int n) {
    grow((void **)&A->rp, &A->rp_cap, (size_t)n, sizeof *A->rp);
    grow((void **)&A->edges, &A->edges_cap, (size_t)n, sizeof *A->edges);
    const char *svc = rec_str(rows[0].rec, F_SVC);
    for (int i = 0; i < n; i++) {
        A->rp[i] = (RpcPos){rec_str(rows[i].rec, F_RPC), i};
        const char *s = rec_str(rows[i].rec, F_SVC);
        if (strcmp(s, svc) < 0) svc = s;  // v2022: a trace's service is the smallest one among its rows
    }
    qsort(A->rp, (size_t)n, sizeof *A->rp, rpcpos_cmp);
    CallGraph g;
    graph_init(&g);
    g.edges = A->edges;
    int root = -1;
    for (int i = 0; i < n; i++) {
        if (i > 0 && !strcmp(A->rp[i].rpc, A->rp[i - 1].rpc)) { A->dup_rpc++; continue; }
        const char *rec = rows[A->rp[i].pos].rec;
        const RecHead *h = (const RecHead *)rec;
        Edge *e = &g.edges[g.n++];
        e->rpc_id = (char *)rec_str(rec, F_RPC);
        e->src = (char *)rec_str(rec, F_UM);
        e->dst = (char *)rec_str(rec, F_DM);
        e->type = h->type;
        e->start_ms = h->ts - ((const RecHead *)rows[0].rec)->ts;
        e->rt_ms = h->rt;
        if (!strcmp(e->rpc_id, "0")) root = A->rp[i].pos;
    }
    char svc21[16] = "";
    if (((const RecHead *)rows[0].rec)->version == TRACE_V2021) {
        if (root >= 0) prepare_v2021_service(rec_str(rows[root].rec, F_DM), rec_str(rows[root].rec, F_IF), svc21);
        svc = svc21;
    }
    g.trace_id = (char *)rec_str(rows[0].rec, F_TID);
    g.service = (char *)svc;
    A->built++;
    A->in_graphs += g.n;
    graph_sort(&g);
    GraphCheck c = graph_validate(&g, P->o->max_depth, NULL);
    if (c != GRAPH_OK) { A->drop[c]++; return; }
    A->tail.n = 0;
    json_tail(&A->tail, &g);
    uint64_t ch = graph_hash(&g);
    int p = P->logB ? (int)(ch >> (64 - P->logB)) : 0;
    PartHead ph = {0, (uint32_t)g.n, (uint32_t)strlen(g.trace_id), (uint32_t)A->tail.n, ch};
    size_t len = sizeof ph + ph.tid_len + 1 + ph.tail_len, pad = (8 - len % 8) % 8;
    ph.len = (uint32_t)(len + pad);
    Buf *st = &A->stage[p];
    buf_put(st, &ph, sizeof ph);
    buf_put(st, g.trace_id, ph.tid_len + 1);
    buf_put(st, A->tail.p, A->tail.n);
    buf_put(st, "\0\0\0\0\0\0\0", pad);
    if (st->n > P->stage) flush_to(P->pfd[p], &P->pmu[p], st, "partition file");
}

// Reads a whole temporary file (it was written through fd) into *buf, which is reused from file to
// file (one buffer of the largest size, not a new one each time: no heap fragmentation), and
// truncates the file to free the disk early.
static char *slurp_fd(int fd, Buf *buf, size_t *n, const char *what) {
    struct stat st;
    if (fstat(fd, &st) != 0) fatal("cannot stat temporary %s: %s", what, strerror(errno));
    buf->n = 0;
    buf_need(buf, (size_t)st.st_size + 1);
    char *data = buf->p;
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t k = pread(fd, data + got, (size_t)st.st_size - got, (off_t)got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) fatal("cannot read temporary %s: %s", what, k < 0 ? strerror(errno) : "short read");
        got += (size_t)k;
    }
    if (ftruncate(fd, 0) != 0) { /* only frees disk early; the file is removed at the end anyway */ }
    *n = got;
    return data;
}

// LSD radix sort of rows by h, 8 bits a pass; a pass where every row has the same byte (the low
// bits chose the bucket, so they are all equal) is skipped. Stable; the result ends up in rows.
static void radix_sort_by_hash(Row *rows, Row *tmp, size_t n) {
    Row *src = rows, *dst = tmp;
    for (int shift = 0; shift < 64; shift += 8) {
        size_t count[257] = {0};
        for (size_t i = 0; i < n; i++) count[((src[i].h >> shift) & 255) + 1]++;
        bool one = false;
        for (int k = 1; k <= 256; k++) one |= count[k] == n;
        if (one) continue;
        for (int k = 1; k <= 256; k++) count[k] += count[k - 1];
        for (size_t i = 0; i < n; i++) dst[count[(src[i].h >> shift) & 255]++] = src[i];
        Row *t = src; src = dst; dst = t;
    }
    if (src != rows) memcpy(rows, src, n * sizeof *rows);
}

// A temporary file bigger than its share of --mem-limit (the input was bigger than estimated, or
// skewed) is split again into k smaller files by the next bits of the same hash, which are then
// processed one after the other. Records of both kinds start with their uint32 length; `key` picks
// the sub-file. Rows of one trace share their hash, so traces stay whole (a single trace bigger
// than the share cannot be split: it is processed anyway, with a warning).
#define MAX_SPLIT_LEVELS 3
typedef int (*SplitKey)(const char *rec, int shift, int logk);
static int bucket_key(const char *rec, int shift, int logk) {  // next bits above the bucket's low bits
    const RecHead *h = (const RecHead *)rec;
    return (int)((hash_bytes(rec + sizeof *h, h->n[F_TID], HASH_TRACE) >> shift) & ((1u << logk) - 1));
}
static int part_key(const char *rec, int shift, int logk);  // next bits below the partition's top bits

static int split_count(size_t n, double budget, int *logk) {
    int k = 2;
    while (k < 256 && 1.6 * (double)n / k > budget) k *= 2;
    for (*logk = 0; (1 << *logk) < k; (*logk)++) {}
    return k;
}
// Returns k descriptors of new files "s<first+i>" holding fd's records split by key.
static int *split_records(Prep *P, int fd, size_t n, int shift, int logk, SplitKey key, double budget, int *first) {
    int k = 1 << logk;
    *first = atomic_fetch_add(&g_nsub, k);
    if (*first + k > 99999) fatal("too many temporary sub-buckets; rerun with a larger --buckets");
    int *sub = xmalloc((size_t)k * sizeof *sub);
    char path[sizeof g_tmpdir + 16];
    for (int i = 0; i < k; i++) {
        tmp_name(path, P->tmpdir, 's', *first + i);
        if ((sub[i] = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600)) < 0) fatal("cannot create %s: %s", path, strerror(errno));
    }
    size_t stage = (size_t)(budget / 4 / k), win = 1 << 20;
    if (stage < 8192) stage = 8192;
    Buf *st = xcalloc((size_t)k, sizeof *st), in = {0};
    buf_need(&in, win + 65536);  // a window plus the record cut at its end (records are < 64 KiB)
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;  // the sub files belong to this thread alone
    for (size_t off = 0, have = 0; off < n;) {
        ssize_t got = pread(fd, in.p + have, win, (off_t)(off + have));
        if (got <= 0) fatal("cannot read a temporary file: %s", got < 0 ? strerror(errno) : "short read");
        have += (size_t)got;
        size_t used = 0;
        for (uint32_t len; used + 4 <= have && used + (len = *(const uint32_t *)(in.p + used)) <= have; used += len) {
            int s = key(in.p + used, shift, logk);
            buf_put(&st[s], in.p + used, len);
            if (st[s].n > stage) flush_to(sub[s], &mu, &st[s], "sub-bucket file");
        }
        memmove(in.p, in.p + used, have - used);
        have -= used;
        off += used;
    }
    if (ftruncate(fd, 0) != 0) { /* frees disk early only */ }
    for (int i = 0; i < k; i++) { flush_to(sub[i], &mu, &st[i], "sub-bucket file"); free(st[i].p); }
    free(st); free(in.p);
    return sub;
}
static void drop_sub(Prep *P, int fd, int index) {
    char path[sizeof g_tmpdir + 16];
    close(fd);
    tmp_name(path, P->tmpdir, 's', index);
    unlink(path);
}
// Whether a file of n bytes must be split before it is loaded; warns once when it cannot be.
static bool needs_split(Prep *P, size_t n, double budget, int shift_left, int level) {
    if (1.6 * (double)n <= budget) return false;
    if (level < MAX_SPLIT_LEVELS && shift_left >= 8) return true;
    if (!atomic_exchange(&P->warned, 1))
        warnf("%.0f MB of records share one hash range after %d splits (one enormous trace?): peak memory may "
              "exceed --mem-limit (planned %.0f MB)", n / 1e6, level, budget / 1e6);
    return false;
}

static void assemble_fd(Prep *P, Assembler *A, int fd, int shift, int level) {
    struct stat sb;
    if (fstat(fd, &sb) != 0) fatal("cannot stat a temporary bucket file: %s", strerror(errno));
    size_t n = (size_t)sb.st_size;
    if (needs_split(P, n, bucket_budget(P->o), 64 - shift, level)) {
        int logk, first, k = split_count(n, bucket_budget(P->o), &logk);
        int *sub = split_records(P, fd, n, shift, logk, bucket_key, bucket_budget(P->o), &first);
        for (int i = 0; i < k; i++) { assemble_fd(P, A, sub[i], shift + logk, level + 1); drop_sub(P, sub[i], first + i); }
        free(sub);
        return;
    }
    char *data = slurp_fd(fd, &A->data, &n, "bucket file");
    size_t nrows = 0;
    for (size_t off = 0; off < n; nrows++) {
        const RecHead *h = (const RecHead *)(data + off);
        grow((void **)&A->rows, &A->rows_cap, nrows + 1, sizeof *A->rows);
        A->rows[nrows] = (Row){hash_bytes(data + off + sizeof *h, h->n[F_TID], HASH_TRACE), data + off};
        off += h->len;
    }
    // Group by trace: a radix sort on the traceid hash (linear, no string compares), then each run
    // of equal hashes (one trace, or rarely a few colliding ones) in the full row order.
    grow((void **)&A->tmp, &A->tmp_cap, nrows, sizeof *A->tmp);
    radix_sort_by_hash(A->rows, A->tmp, nrows);
    for (size_t i = 0, j; i < nrows; i = j) {
        const char *tid = rec_str(A->rows[i].rec, F_TID);
        bool one_trace = true;
        for (j = i + 1; j < nrows && A->rows[j].h == A->rows[i].h; j++)
            one_trace = one_trace && !strcmp(rec_str(A->rows[j].rec, F_TID), tid);
        if (one_trace) {
            qsort(A->rows + i, j - i, sizeof *A->rows, row_cmp_in_trace);
            assemble_trace(P, A, A->rows + i, (int)(j - i));
            continue;
        }
        qsort(A->rows + i, j - i, sizeof *A->rows, row_cmp);  // a hash collision: split by traceid
        for (size_t k = i, m; k < j; k = m) {
            const char *t = rec_str(A->rows[k].rec, F_TID);
            for (m = k + 1; m < j && !strcmp(rec_str(A->rows[m].rec, F_TID), t); m++) {}
            assemble_trace(P, A, A->rows + k, (int)(m - k));
        }
    }
    int64_t done = atomic_fetch_add(&P->rows_done, (long long)nrows) + (int64_t)nrows;
    tick(P, done, 0, P->rows_total ? (double)done / (double)P->rows_total : -1);
}

typedef struct { Prep *P; Assembler A; } AsmWorker;
static void *assemble_worker(void *arg) {
    AsmWorker *w = arg;
    Prep *P = w->P;
    for (int b; (b = atomic_fetch_add(&P->next, 1)) < P->B;) assemble_fd(P, &w->A, P->fd[b], P->logB, 0);
    for (int p = 0; p < P->B; p++) flush_to(P->pfd[p], &P->pmu[p], &w->A.stage[p], "partition file");
    return NULL;
}

// ============ pass 3: duplicates, split, outputs ============
typedef struct { const PartHead *h; const char *tid, *tail; } Part;
static int part_cmp(const void *pa, const void *pb) {
    const Part *a = pa, *b = pb;
    if (a->h->chash != b->h->chash) return a->h->chash < b->h->chash ? -1 : 1;
    size_t m = a->h->tail_len < b->h->tail_len ? a->h->tail_len : b->h->tail_len;
    int c = memcmp(a->tail, b->tail, m);
    if (c || a->h->tail_len != b->h->tail_len) return c ? c : (a->h->tail_len < b->h->tail_len ? -1 : 1);
    return strcmp(a->tid, b->tid);
}
static bool same_content(const Part *a, const Part *b) {
    return a->h->chash == b->h->chash && a->h->tail_len == b->h->tail_len && !memcmp(a->tail, b->tail, a->h->tail_len);
}
// A graph's side depends only on its content and the seed: input order and duplicates never move it.
static bool goes_to_val(uint64_t chash, uint64_t seed, double frac) {
    uint64_t u = hash_bytes(&chash, sizeof chash, seed ^ HASH_SPLIT);
    return (double)(u >> 11) * 0x1.0p-53 < frac;
}

static int part_key(const char *rec, int shift, int logk) {
    return (int)((((const PartHead *)rec)->chash << shift) >> (64 - logk));
}

typedef struct { Part *parts; size_t cap; Buf buf; } Finisher;

// One content partition (or a piece of one): `shift` top bits of the content hash are fixed.
static void finish_fd(Prep *P, Finisher *F, PrepareReport *rep, OutFile *train, OutFile *val, int fd, int shift, int level) {
    struct stat sb;
    if (fstat(fd, &sb) != 0) fatal("cannot stat a temporary partition file: %s", strerror(errno));
    size_t n = (size_t)sb.st_size, np = 0;
    double budget = 0.6 * (double)P->o->mem_limit;  // one thread here
    if (needs_split(P, n, budget, 64 - shift, level)) {
        int logk, first, k = split_count(n, budget, &logk);
        int *sub = split_records(P, fd, n, shift, logk, part_key, budget, &first);
        for (int i = 0; i < k; i++) { finish_fd(P, F, rep, train, val, sub[i], shift + logk, level + 1); drop_sub(P, sub[i], first + i); }
        free(sub);
        return;
    }
    char *data = slurp_fd(fd, &F->buf, &n, "partition file");
    for (size_t off = 0; off < n; np++) {
        grow((void **)&F->parts, &F->cap, np + 1, sizeof *F->parts);
        const PartHead *h = (const PartHead *)(data + off);
        F->parts[np] = (Part){h, data + off + sizeof *h, data + off + sizeof *h + h->tid_len + 1};
        off += h->len;
    }
    Part *parts = F->parts;
    if (np) qsort(parts, np, sizeof *parts, part_cmp);
    for (size_t i = 0; i < np; i++) {
        if (i > 0 && same_content(&parts[i], &parts[i - 1]) && !P->o->keep_duplicates) {
            rep->duplicate_graph++;
            continue;
        }
        bool v = goes_to_val(parts[i].h->chash, P->o->seed, P->o->val_fraction);
        OutFile *o = v ? val : train;
        fputs("{\"trace_id\":", o->f);
        json_write_string(o->f, parts[i].tid);
        xfwrite(parts[i].tail, 1, parts[i].h->tail_len, o->f, o->path);
        if (v) rep->val++; else rep->train++;
        rep->graphs_kept++;
        rep->rows_kept += parts[i].h->n_edges;
    }
}

static void finish_partitions(Prep *P, PrepareReport *rep, OutFile *train, OutFile *val) {
    Finisher F = {0};
    for (int p = 0; p < P->B; p++) finish_fd(P, &F, rep, train, val, P->pfd[p], P->logB, 0);
    free(F.parts);
    free(F.buf.p);
}

// ============ driver ============
static int64_t estimate_decoded(const char *path) {
    // gzip keeps the decoded size mod 2^32 in its last 4 bytes; a CallGraph tarball is ~1.7 GB.
    int64_t size = file_size(path);
    int fd = open(path, O_RDONLY);
    unsigned char m[2], t[4];
    int64_t est = size;
    if (fd >= 0 && pread(fd, m, 2, 0) == 2 && m[0] == 0x1f && m[1] == 0x8b && size >= 24 && pread(fd, t, 4, size - 4) == 4) {
        int64_t isize = (int64_t)t[0] | (int64_t)t[1] << 8 | (int64_t)t[2] << 16 | (int64_t)t[3] << 24;
        while (isize < 2 * size) isize += (int64_t)1 << 32;
        est = isize > 4 * size ? isize : 4 * size;
    }
    if (fd >= 0) close(fd);
    return est;
}

static int choose_buckets(const PrepareOptions *o, int64_t decoded) {
    if (o->buckets > 0) return o->buckets;
    // Pass 2 holds one bucket per thread: its records (about the CSV bytes: a 40-byte head replaces
    // the instance ids) plus a 24-byte index per record, graphs and growth slack: ~1.6x the bucket.
    // Budget 60% of the limit for that; the staging buffers take at most another 25%.
    double need = 1.6 * (double)decoded / bucket_budget(o);
    int b = 2 * o->threads;
    while (b < need && b < 4096) b *= 2;
    return b;
}

void prepare_run(const PrepareOptions *o, PrepareReport *rep) {
    double t0 = now_seconds();
    memset(rep, 0, sizeof *rep);
    // Big buffers (buckets, staging) are mmap'ed and go back to the system when freed: glibc's
    // default raises this threshold after the first free, and the freed memory then stays resident.
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    Prep *P = xcalloc(1, sizeof *P);
    P->o = o;
    char err[1024];
    P->n_files = reader_expand(o->inputs, o->n_inputs, &P->files, err, sizeof err);
    if (P->n_files < 0) fatal("%s", err);
    if (P->n_files == 0) fatal("no input files (directories are searched for .csv, .gz, .tgz and .tar files)");
    int64_t decoded = 0;
    for (int i = 0; i < P->n_files; i++) {
        P->bytes_total += file_size(P->files[i]);
        decoded += estimate_decoded(P->files[i]);
    }
    P->B = choose_buckets(o, decoded);
    if (P->B & (P->B - 1)) fatal("--buckets must be a power of two (got %d)", P->B);
    while ((1 << P->logB) < P->B) P->logB++;
    // Pass-1 staging: a quarter of the limit over all threads' buffers, 8 KiB..1 MiB each.
    double st = 0.25 * (double)o->mem_limit / ((double)o->threads * P->B);
    P->stage = st < 8192 ? 8192 : st > (1 << 20) ? (1 << 20) : (size_t)st;
    rep->files = P->n_files;
    rep->bytes_in = P->bytes_total;
    rep->buckets = P->B;
    rep->threads = o->threads;

    if (mkdir_p(o->out_dir, 0777) != 0) fatal("cannot create %s: %s", o->out_dir, strerror(errno));
    if (strlen(o->out_dir) > sizeof P->tmpdir - 64) fatal("output path too long: %.80s...", o->out_dir);
    snprintf(P->tmpdir, sizeof P->tmpdir, "%s/.prepare.tmp.%d", o->out_dir, (int)getpid());
    if (mkdir(P->tmpdir, 0700) != 0) fatal("cannot create %s: %s", P->tmpdir, strerror(errno));
    snprintf(g_tmpdir, sizeof g_tmpdir, "%s", P->tmpdir);
    g_nbuckets = P->B;
    atomic_store(&g_nsub, 0);
    static bool hooked;
    if (!hooked) { atexit(remove_tmpdir); hooked = true; }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    P->fd = xmalloc(P->B * sizeof *P->fd);
    P->pfd = xmalloc(P->B * sizeof *P->pfd);
    P->mu = xmalloc(P->B * sizeof *P->mu);
    P->pmu = xmalloc(P->B * sizeof *P->pmu);
    for (int b = 0; b < P->B; b++) {
        char path[sizeof g_tmpdir + 16];
        tmp_name(path, P->tmpdir, 'b', b);
        if ((P->fd[b] = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600)) < 0) fatal("cannot create %s: %s", path, strerror(errno));
        tmp_name(path, P->tmpdir, 'p', b);
        if ((P->pfd[b] = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600)) < 0) fatal("cannot create %s: %s", path, strerror(errno));
        pthread_mutex_init(&P->mu[b], NULL);
        pthread_mutex_init(&P->pmu[b], NULL);
    }
    pthread_mutex_init(&P->prog_mu, NULL);
    P->fs = xcalloc((size_t)P->n_files, sizeof *P->fs);
    int T = o->threads;
    pthread_t *tids = xmalloc((size_t)T * sizeof *tids);

    // pass 1
    if (!o->quiet) progress_start(&P->prog, "prepare: read", "rows", 0);
    Worker *ws = xcalloc((size_t)T, sizeof *ws);
    for (int t = 0; t < T; t++) {
        ws[t] = (Worker){P, t, xcalloc((size_t)P->B, sizeof(Buf))};
        if (pthread_create(&tids[t], NULL, partition_worker, &ws[t]) != 0) fatal("cannot start a thread");
    }
    for (int t = 0; t < T; t++) pthread_join(tids[t], NULL);
    for (int t = 0; t < T; t++) {
        for (int b = 0; b < P->B; b++) free(ws[t].stage[b].p);
        free(ws[t].stage);
    }
    free(ws);
    if (!o->quiet) progress_end(&P->prog, (double)P->rows_done, (double)P->bytes_done);
    for (int i = 0; i < P->n_files; i++) {  // in file order, so the examples are the first ones
        FileStats *f = &P->fs[i];
        rep->streams += f->streams; rep->streams_v2022 += f->v2022; rep->streams_v2021 += f->v2021;
        rep->rows_read += f->rows;
        for (int m = 0; m < MAL_NREASONS; m++) { rep->malformed[m] += f->mal[m]; rep->rows_malformed += f->mal[m]; }
        rep->filtered_type += f->filtered; rep->unknown_name += f->unknown; rep->missing_rt += f->missing_rt;
        P->rows_total += f->kept;
        for (int e = 0; e < f->n_ex && rep->n_examples < PREPARE_MAX_EXAMPLES; e++)
            memcpy(rep->examples[rep->n_examples++], f->ex[e], sizeof f->ex[e]);
    }

    rep->seconds_read = now_seconds() - t0;

    // pass 2
    atomic_store(&P->next, 0);
    atomic_store(&P->rows_done, 0);
    if (!o->quiet) progress_start(&P->prog, "prepare: assemble", "rows", (double)P->rows_total);
    AsmWorker *aw = xcalloc((size_t)T, sizeof *aw);
    for (int t = 0; t < T; t++) {
        aw[t].P = P;
        aw[t].A.stage = xcalloc((size_t)P->B, sizeof(Buf));
        if (pthread_create(&tids[t], NULL, assemble_worker, &aw[t]) != 0) fatal("cannot start a thread");
    }
    for (int t = 0; t < T; t++) pthread_join(tids[t], NULL);
    for (int t = 0; t < T; t++) {
        Assembler *A = &aw[t].A;
        rep->duplicate_rpc_id += A->dup_rpc;
        rep->rows_in_graphs += A->in_graphs;
        rep->graphs_built += A->built;
        for (int c = 0; c < GRAPH_NCHECKS; c++) rep->graph_drop[c] += A->drop[c];
        for (int p = 0; p < P->B; p++) free(A->stage[p].p);
        free(A->stage); free(A->tail.p); free(A->data.p); free(A->rows); free(A->tmp); free(A->rp); free(A->edges);
    }
    free(aw);
    if (!o->quiet) progress_end(&P->prog, (double)P->rows_done, 0);

    rep->seconds_assemble = now_seconds() - t0 - rep->seconds_read;

    // pass 3
    char path[4200];
    snprintf(path, sizeof path, "%s/train.jsonl", o->out_dir);
    OutFile *train = out_open(path);
    snprintf(path, sizeof path, "%s/val.jsonl", o->out_dir);
    OutFile *val = out_open(path);
    finish_partitions(P, rep, train, val);
    rep->split_files = atomic_load(&g_nsub);
    rep->seconds = now_seconds() - t0;
    rep->seconds_write = rep->seconds - rep->seconds_read - rep->seconds_assemble;

    snprintf(path, sizeof path, "%s/prepare_report.json", o->out_dir);
    OutFile *rj = out_open(path);
    FILE *f = rj->f;
    fprintf(f, "{\n  \"inputs\": [");
    for (int i = 0; i < P->n_files; i++) { fputs(i ? ", " : "", f); json_write_string(f, P->files[i]); }
    fprintf(f, "],\n  \"files\": %lld, \"streams\": %lld, \"streams_v2022\": %lld, \"streams_v2021\": %lld, \"bytes_in\": %lld,\n",
            (long long)rep->files, (long long)rep->streams, (long long)rep->streams_v2022, (long long)rep->streams_v2021,
            (long long)rep->bytes_in);
    fprintf(f, "  \"settings\": {\"val_fraction\": %g, \"seed\": %llu, \"max_depth\": %d, \"keep_duplicates\": %s, "
               "\"threads\": %d, \"buckets\": %d, \"split_files\": %d, \"mem_limit\": %lld},\n",
            o->val_fraction, (unsigned long long)o->seed, o->max_depth, o->keep_duplicates ? "true" : "false", rep->threads,
            rep->buckets, rep->split_files, (long long)o->mem_limit);
    fprintf(f, "  \"rows\": {\"read\": %lld, \"malformed\": %lld, \"filtered_type\": %lld, \"unknown_name\": %lld, "
               "\"missing_rt\": %lld, \"duplicate_rpc_id\": %lld, \"in_graphs\": %lld, \"kept\": %lld},\n",
            (long long)rep->rows_read, (long long)rep->rows_malformed, (long long)rep->filtered_type, (long long)rep->unknown_name,
            (long long)rep->missing_rt, (long long)rep->duplicate_rpc_id, (long long)rep->rows_in_graphs, (long long)rep->rows_kept);
    fprintf(f, "  \"malformed\": {");
    for (int m = 0; m < MAL_NREASONS; m++) fprintf(f, "%s\"%s\": %lld", m ? ", " : "", csv_malformed_name(m), (long long)rep->malformed[m]);
    fprintf(f, "},\n  \"malformed_examples\": [");
    for (int e = 0; e < rep->n_examples; e++) { fputs(e ? ", " : "", f); json_write_string(f, rep->examples[e]); }
    fprintf(f, "],\n  \"graphs\": {\"built\": %lld", (long long)rep->graphs_built);
    for (int c = GRAPH_EMPTY; c < GRAPH_NCHECKS; c++)
        if (c != GRAPH_EMPTY && c != GRAPH_DUPLICATE_RPC_ID)  // impossible here: traces have rows, rpc_ids are unique
            fprintf(f, ", \"%s\": %lld", graph_check_name(c), (long long)rep->graph_drop[c]);
    fprintf(f, ", \"duplicate_graph\": %lld, \"kept\": %lld, \"train\": %lld, \"val\": %lld},\n", (long long)rep->duplicate_graph,
            (long long)rep->graphs_kept, (long long)rep->train, (long long)rep->val);
    fprintf(f, "  \"seconds\": %.3f, \"seconds_read\": %.3f, \"seconds_assemble\": %.3f, \"seconds_write\": %.3f\n}\n",
            rep->seconds, rep->seconds_read, rep->seconds_assemble, rep->seconds_write);
    out_close(train);
    out_close(val);
    out_close(rj);

    for (int b = 0; b < P->B; b++) { close(P->fd[b]); close(P->pfd[b]); pthread_mutex_destroy(&P->mu[b]); pthread_mutex_destroy(&P->pmu[b]); }
    remove_tmpdir();
    signal(SIGINT, SIG_DFL);
    install_cleanup_signals();
    for (int i = 0; i < P->n_files; i++) free(P->files[i]);
    free(P->files); free(P->fs); free(P->fd); free(P->pfd); free(P->mu); free(P->pmu); free(tids);
    pthread_mutex_destroy(&P->prog_mu);
    free(P);
}

void prepare_print_summary(FILE *f, const PrepareReport *r) {
    double rate = r->seconds > 0 ? r->rows_read / r->seconds : 0;
    fprintf(f, "prepare: %lld files (%lld v2022 and %lld v2021 csv streams), %.1f MB in %.2fs (read %.2f, assemble %.2f, "
               "write %.2f): %.0f rows/s, %.1f MB/s, %d threads, %d buckets\n",
            (long long)r->files, (long long)r->streams_v2022, (long long)r->streams_v2021, r->bytes_in / 1e6, r->seconds,
            r->seconds_read, r->seconds_assemble, r->seconds_write, rate, r->seconds > 0 ? r->bytes_in / 1e6 / r->seconds : 0,
            r->threads, r->buckets);
    fprintf(f, "rows read                %12lld\n", (long long)r->rows_read);
    fprintf(f, "  malformed              %12lld", (long long)r->rows_malformed);
    for (int m = 0; m < MAL_NREASONS; m++)
        if (r->malformed[m]) fprintf(f, "  %s %lld", csv_malformed_name(m), (long long)r->malformed[m]);
    fprintf(f, "\n  filtered_type          %12lld\n  unknown_name           %12lld\n  missing_rt             %12lld\n  duplicate_rpc_id       %12lld\n",
            (long long)r->filtered_type, (long long)r->unknown_name, (long long)r->missing_rt, (long long)r->duplicate_rpc_id);
    fprintf(f, "  in graphs              %12lld\n  kept (edges)           %12lld\n", (long long)r->rows_in_graphs, (long long)r->rows_kept);
    fprintf(f, "graphs built             %12lld\n", (long long)r->graphs_built);
    for (int c = GRAPH_NO_ROOT; c < GRAPH_NCHECKS; c++)
        if (c != GRAPH_DUPLICATE_RPC_ID) fprintf(f, "  %-22s %12lld\n", graph_check_name(c), (long long)r->graph_drop[c]);
    fprintf(f, "  duplicate_graph        %12lld\n  kept                   %12lld  (train %lld, val %lld)\n", (long long)r->duplicate_graph,
            (long long)r->graphs_kept, (long long)r->train, (long long)r->val);
    for (int e = 0; e < r->n_examples; e++) fprintf(f, "%s %s\n", e ? "                " : "first malformed:", r->examples[e]);
}

int cmd_prepare(int argc, char **argv) {
    StrList inputs = {0};
    const char *out = NULL, *mem = "4G";
    double val_fraction = 0.1;
    int64_t seed = 1337;
    int max_depth = 15, threads = (int)sysconf(_SC_NPROCESSORS_ONLN), buckets = 0;
    bool keep_dup = false, quiet = false;
    if (threads < 1) threads = 1;
    Opt opts[] = {
        {"--input", OPT_STRS, &inputs, "PATH...", "CallGraph/MSCallGraph .csv, .csv.gz, .tar.gz files or directories", true},
        {"--out", OPT_STR, &out, "DIR", "output folder: train.jsonl, val.jsonl, stats.json, prepare_report.json", true},
        {"--val-fraction", OPT_DOUBLE, &val_fraction, "F", "share of graphs held out for validation", false},
        {"--seed", OPT_I64, &seed, "S", "seed of the train/val split", false},
        {"--max-depth", OPT_INT, &max_depth, "N", "drop graphs deeper than N rpc levels (0 = no limit)", false},
        {"--keep-duplicates", OPT_FLAG, &keep_dup, NULL, "keep exact-duplicate graphs", false},
        {"--threads", OPT_INT, &threads, "N", "worker threads (reading: one file each; assembly: one bucket each)", false},
        {"--mem-limit", OPT_STR, &mem, "SIZE", "peak memory to plan for (chooses the bucket count), e.g. 512M, 4G", false},
        {"--buckets", OPT_INT, &buckets, "N", "bucket count, a power of two (0 = from --mem-limit)", false},
        {"--quiet", OPT_FLAG, &quiet, NULL, "no progress line and no summary", false},
    };
    args_parse(argc, argv, "tracellm prepare --input PATH... --out DIR [options]",
               "Builds clean call graphs from Alibaba call-graph traces (v2022 CallGraph, v2021 MSCallGraph) by the\n"
               "TraceLLM paper's rules, and writes a train/val split plus a report of every dropped row and graph.\n"
               "The rules and each drop reason are documented in docs/PREPARE.md.",
               opts, (int)(sizeof opts / sizeof opts[0]), NULL);
    int64_t mem_limit = parse_size(mem);
    if (mem_limit < (64 << 20)) fatal("--mem-limit must be a size of at least 64M (got %s)", mem);
    if (!(val_fraction >= 0 && val_fraction <= 1)) fatal("--val-fraction must be within [0, 1] (got %g)", val_fraction);
    if (threads < 1 || threads > 256) fatal("--threads must be within 1..256 (got %d)", threads);
    if (buckets < 0 || buckets > 65536 || (buckets & (buckets - 1))) fatal("--buckets must be a power of two up to 65536 (got %d)", buckets);
    if (max_depth < 0) fatal("--max-depth must be >= 0");
    PrepareOptions o = {inputs.v, inputs.n, out, val_fraction, (uint64_t)seed, max_depth, keep_dup, threads, mem_limit, buckets, quiet};
    PrepareReport rep;
    prepare_run(&o, &rep);
    // Per-service statistics over the TRAINING graphs (PAPER.md §1: p90 latency, rare communications):
    // the instruction builder and generation read them; validation graphs must not leak into them.
    char train_path[4096], stats_path[4096];
    snprintf(train_path, sizeof train_path, "%s/train.jsonl", out);
    snprintf(stats_path, sizeof stats_path, "%s/stats.json", out);
    stats_build_file(train_path, stats_path, NULL);
    if (!quiet) {
        prepare_print_summary(stdout, &rep);
        printf("wrote %s/{train.jsonl,val.jsonl,stats.json,prepare_report.json}\n", out);
    }
    free(inputs.v);
    return 0;
}
