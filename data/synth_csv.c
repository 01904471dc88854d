// `tracellm synth`: clean graphs (synth.c) -> raw Alibaba v2022 CallGraph rows -> real quirks ->
// CSV(.gz). For every trace it also works out what a correct implementation of the paper's
// cleaning (PAPER.md §1) must recover from exactly those rows, so prepare can be checked against
// a known answer (--truth).
//
// Row model, after what the real file shows:
//   mc/db/mq calls       one row, logged by the caller.
//   rpc/http calls       two rows with the same rpc_id: the caller's, and the callee's, which is
//                        either identical, has um UNKNOWN / uminstanceid UNAVAILABLE, or was
//                        stamped 1 ms later with an rt 2 ms shorter (the callee sees less of the call).
//   root call "0"        one row, um and uminstanceid USER.
// Quirks: exact duplicate rows; a call whose dm is UNKNOWN on every row (lost: its subtree then
// misses a parent); "<id>.0" self rows of type UNKNOWN; malformed lines (extra comma, rt None,
// a missing column, a cut line); whole traces logged from "0.1" with um UNKNOWN (no root).
#include "data/synth.h"
#include "util/args.h"
#include "util/progress.h"
#include "util/rng.h"
#include "util/util.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char HEADER[] = "timestamp,traceid,service,rpc_id,rpctype,um,uminstanceid,interface,dm,dminstanceid,rt\n";

// ---- a set of 64-bit content hashes (exact-duplicate graphs) ----
typedef struct { uint64_t *k; size_t cap, n; } HashSet;
static bool hashset_add(HashSet *h, uint64_t key) {   // true when key was new
    if (!key) key = 1;
    if (2 * (h->n + 1) > h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 1024;
        uint64_t *nk = xcalloc(nc, sizeof *nk);
        for (size_t i = 0; i < h->cap; i++)
            if (h->k[i]) {
                size_t j = h->k[i] & (nc - 1);
                while (nk[j]) j = (j + 1) & (nc - 1);
                nk[j] = h->k[i];
            }
        free(h->k);
        h->k = nk;
        h->cap = nc;
    }
    size_t j = key & (h->cap - 1);
    while (h->k[j]) {
        if (h->k[j] == key) return false;
        j = (j + 1) & (h->cap - 1);
    }
    h->k[j] = key;
    h->n++;
    return true;
}

// ---- the output: a window of formatted lines, shuffled before writing ----
typedef struct {
    const char *path;
    gzFile gz;
    OutFile *plain;
    char *buf; size_t len, cap;          // line bytes of the current window
    size_t *off; size_t n_lines, cap_lines;
    int64_t bytes;
} Sink;

static void sink_write(Sink *k, const char *p, size_t n) {
    k->bytes += (int64_t)n;
    if (k->gz) {
        if (gzwrite(k->gz, p, (unsigned)n) != (int)n) {
            int zerr;
            const char *msg = gzerror(k->gz, &zerr);
            fatal("cannot write %s: %s", k->path, zerr == Z_ERRNO ? strerror(errno) : msg);
        }
    } else {
        xfwrite(p, 1, n, k->plain->f, k->path);
    }
}
static void sink_line(Sink *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sink_line(Sink *k, const char *fmt, ...) {
    if (!k->buf) { k->cap = 1 << 20; k->buf = xmalloc(k->cap); }
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(k->buf + k->len, k->cap - k->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < k->cap - k->len) {
            grow((void **)&k->off, &k->cap_lines, k->n_lines + 1, sizeof *k->off);
            k->off[k->n_lines++] = k->len;
            k->len += (size_t)n;
            return;
        }
        k->cap *= 2;
        k->buf = xrealloc(k->buf, k->cap);
    }
}
static void sink_flush(Sink *k, Rng *r) {
    // shuffle line order (rows of the window's traces interleave, as in a real file)
    for (size_t i = k->n_lines; i > 1; i--) {
        size_t j = rng_below(r, i);
        size_t t = k->off[i - 1]; k->off[i - 1] = k->off[j]; k->off[j] = t;
    }
    // lines are contiguous in buf; each ends at its '\n'
    for (size_t i = 0; i < k->n_lines; i++) {
        const char *p = k->buf + k->off[i];
        const char *e = memchr(p, '\n', k->len - k->off[i]);
        sink_write(k, p, (size_t)(e - p) + 1);
    }
    k->len = 0;
    k->n_lines = 0;
}

static void iface_text(uint32_t h, char out[11]) {
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint64_t x = hash_bytes(&h, sizeof h, 0x1f);
    for (int i = 0; i < 10; i++, x >>= 6) out[i] = A[x & 63];
    out[10] = 0;
}

// One raw row before formatting. valid = survives the cleaning's row filters (rule 1).
typedef struct {
    int64_t ts, rt;
    const char *type;
    char um[16], umi[32], dm[16], dmi[32], iface[11];
    char rpc_id[160];
    bool valid;
} Row;

typedef struct {
    Synth *s;
    Sink *sink;
    Rng q;                   // quirk stream of the current trace
    SynthStats *st;
    const CallGraph *g;
    int64_t ts0;
    // per edge: the row a correct cleaning keeps (lowest timestamp among valid rows)
    int64_t *keep_ts, *keep_rt;
    bool *kept;
} Emit;

static void emit_row(Emit *em, const Row *rw) {
    const SynthConfig *c = synth_config(em->s);
    const char *tid = em->g->trace_id, *sid = em->g->service;
    int copies = 1 + (rng_uniform(&em->q) < c->dup_rate);
    em->st->dup_rows += copies - 1;
    if (rng_uniform(&em->q) < c->malformed_rate) {
        // a malformed line instead of the row: the row is lost to the cleaning
        em->st->malformed_rows++;
        char line[512];
        int kind = (int)rng_below(&em->q, 4), n;
        switch (kind) {
        case 0:  // an extra comma inside the interface: 12 fields
            n = snprintf(line, sizeof line, "%lld,%s,%s,%s,%s,%s,%s,%.5s,%s,%s,%s,%lld.0", (long long)rw->ts, tid, sid,
                         rw->rpc_id, rw->type, rw->um, rw->umi, rw->iface, rw->iface + 5, rw->dm, rw->dmi, (long long)rw->rt);
            break;
        case 1:  // rt missing
            n = snprintf(line, sizeof line, "%lld,%s,%s,%s,%s,%s,%s,%s,%s,%s,None", (long long)rw->ts, tid, sid, rw->rpc_id,
                         rw->type, rw->um, rw->umi, rw->iface, rw->dm, rw->dmi);
            break;
        case 2:  // a column missing, the rest shifted left: 10 fields
            n = snprintf(line, sizeof line, "%lld,%s,%s,%s,%s,%s,%s,%s,%s,%lld.0", (long long)rw->ts, tid, sid, rw->rpc_id,
                         rw->type, rw->um, rw->umi, rw->dm, rw->dmi, (long long)rw->rt);
            break;
        default: {  // a line cut short before its 8th comma: at most 8 fields
            n = snprintf(line, sizeof line, "%lld,%s,%s,%s,%s,%s,%s,%s,%s,%s,%lld.0", (long long)rw->ts, tid, sid, rw->rpc_id,
                         rw->type, rw->um, rw->umi, rw->iface, rw->dm, rw->dmi, (long long)rw->rt);
            int commas = 0, cut = 0;
            for (int i = 0; i < n; i++)
                if (line[i] == ',' && ++commas == 8) { cut = i; break; }
            n = 1 + (int)rng_below(&em->q, (uint64_t)cut);
            line[n] = 0;
        }
        }
        (void)n;
        for (int k = 0; k < copies; k++) sink_line(em->sink, "%s\n", line);
        em->st->rows += copies;
        return;
    }
    for (int k = 0; k < copies; k++)
        sink_line(em->sink, "%lld,%s,%s,%s,%s,%s,%s,%s,%s,%s,%lld.0\n", (long long)rw->ts, tid, sid, rw->rpc_id, rw->type,
                  rw->um, rw->umi, rw->iface, rw->dm, rw->dmi, (long long)rw->rt);
    em->st->rows += copies;
}

// The row a correct cleaning keeps for edge e: sort by (timestamp, rpc_id), first valid row wins.
static void offer(Emit *em, int e, const Row *rw, bool malformed_free) {
    if (!rw->valid || !malformed_free) return;
    if (!em->kept[e] || rw->ts < em->keep_ts[e]) {
        em->kept[e] = true;
        em->keep_ts[e] = rw->ts;
        em->keep_rt[e] = rw->rt;
    }
}

// Formats, quirks and writes every row of trace g; fills the cleaning's expected graph in `exp`.
static void emit_trace(Emit *em, const CallGraph *g, const SynthEdgeInfo *info, int64_t ts0, CallGraph *exp) {
    Synth *s = em->s;
    const SynthConfig *c = synth_config(s);
    SynthStats *st = em->st;
    em->g = g;
    bool root01 = rng_uniform(&em->q) < c->root01_rate;
    st->root01_traces += root01;
    for (int e = 0; e < g->n; e++) {
        const Edge *ed = &g->edges[e];
        const SynthEdgeInfo *in = &info[e];
        Row rw;
        rw.ts = ts0 + ed->start_ms;
        rw.rt = ed->rt_ms;
        rw.type = rpc_type_name(ed->type);
        rw.valid = true;
        if (root01) snprintf(rw.rpc_id, sizeof rw.rpc_id, "0.1%s", ed->rpc_id + 1);  // "0" -> "0.1", "0.x" -> "0.1.x"
        else snprintf(rw.rpc_id, sizeof rw.rpc_id, "%s", ed->rpc_id);
        if (in->um_pod < 0) {
            if (root01) { strcpy(rw.um, "UNKNOWN"); strcpy(rw.umi, "UNAVAILABLE"); rw.valid = false; }
            else { strcpy(rw.um, "USER"); strcpy(rw.umi, "USER"); }
        } else {
            snprintf(rw.um, sizeof rw.um, "%s", ed->src);
            snprintf(rw.umi, sizeof rw.umi, "%s_POD_%d", ed->src, in->um_pod);
        }
        snprintf(rw.dm, sizeof rw.dm, "%s", ed->dst);
        snprintf(rw.dmi, sizeof rw.dmi, "%s_POD_%d", ed->dst, in->dm_pod);
        iface_text(in->iface, rw.iface);
        if (rng_uniform(&em->q) < c->unknown_rate) {   // the callee was never resolved: call lost
            strcpy(rw.dm, "UNKNOWN"); strcpy(rw.dmi, "UNKNOWN");
            rw.valid = false;
            st->unknown_edges++;
        }
        int64_t mal0 = st->malformed_rows;
        emit_row(em, &rw);
        offer(em, e, &rw, st->malformed_rows == mal0);
        bool twice = (ed->type == RPC_RPC || ed->type == RPC_HTTP) && (in->um_pod >= 0 || root01);  // a USER call is logged once
        if (twice) {
            Row cr = rw;
            double u = rng_uniform(&em->q);
            st->callee_rows++;
            if (u < c->callee_unknown) {
                strcpy(cr.um, "UNKNOWN"); strcpy(cr.umi, "UNAVAILABLE");
                cr.valid = false;
                st->callee_unknown++;
            } else if (rw.rt >= 2 && rng_uniform(&em->q) < 0.3) {
                cr.ts += 1; cr.rt -= 2;
                st->callee_shifted++;
            } else {
                st->callee_identical++;
            }
            mal0 = st->malformed_rows;
            emit_row(em, &cr);
            offer(em, e, &cr, st->malformed_rows == mal0);
            if (rng_uniform(&em->q) < c->unknown_type_rate && strcmp(rw.dm, "UNKNOWN") != 0) {  // "<id>.0" self row, type UNKNOWN: filtered
                Row xr = rw;
                snprintf(xr.rpc_id, sizeof xr.rpc_id, "%.150s.0", rw.rpc_id);
                xr.type = "UNKNOWN";
                memcpy(xr.um, rw.dm, sizeof xr.um);
                memcpy(xr.umi, rw.dmi, sizeof xr.umi);
                iface_text(in->iface ^ 0x9e3779b9u, xr.iface);
                xr.rt = rw.rt > 0 ? rw.rt - (int64_t)rng_below(&em->q, 2) : 0;
                xr.valid = false;
                st->unknown_type_rows++;
                emit_row(em, &xr);
            }
        }
    }
    // the expected graph: kept rows, times relative to the trace's first kept row
    graph_clear(exp);
    graph_set_ids(exp, g->trace_id, g->service);
    int64_t t_min = INT64_MAX;
    for (int e = 0; e < g->n; e++)
        if (em->kept[e] && em->keep_ts[e] < t_min) t_min = em->keep_ts[e];
    char id[160];
    for (int e = 0; e < g->n; e++) {
        if (!em->kept[e]) continue;
        const Edge *ed = &g->edges[e];
        if (root01) snprintf(id, sizeof id, "0.1%s", ed->rpc_id + 1); else snprintf(id, sizeof id, "%s", ed->rpc_id);
        graph_add_edge(exp, id, ed->type, ed->src, ed->dst, em->keep_ts[e] - t_min, em->keep_rt[e]);
    }
}

void synth_write(Synth *s, const char *path, int level, const char *truth_path, const char *clean_path, bool progress,
                 SynthStats *st) {
    const SynthConfig *c = synth_config(s);
    memset(st, 0, sizeof *st);
    Sink sink = {.path = path};
    char *tmp = NULL;
    if (has_suffix(path, ".gz")) {
        tmp = tmp_path_for(path);
        tmp_register(tmp);
        char mode[8];
        snprintf(mode, sizeof mode, "wb%d", level < 0 ? 1 : level > 9 ? 9 : level);
        sink.gz = gzopen(tmp, mode);
        if (!sink.gz) fatal("cannot create %s: %s", tmp, strerror(errno));
        gzbuffer(sink.gz, 1 << 20);
    } else {
        sink.plain = out_open(path);
    }
    OutFile *truth = truth_path ? out_open(truth_path) : NULL;
    OutFile *clean = clean_path ? out_open(clean_path) : NULL;
    sink_write(&sink, HEADER, sizeof HEADER - 1);

    CallGraph g, exp;
    graph_init(&g);
    graph_init(&exp);
    SynthEdgeInfo *info = NULL;
    int info_cap = 0, flags_cap = 0;
    Emit em = {.s = s, .sink = &sink, .st = st};
    HashSet seen_exp = {0}, seen_clean = {0};
    Rng shuffle;
    rng_seed(&shuffle, c->seed ^ 0x5a0ff1eULL);
    Progress pr;
    if (progress) progress_start(&pr, "synth", "graphs", (double)c->graphs);
    for (int64_t i = 0; i < c->graphs; i++) {
        int64_t ts0;
        synth_graph(s, i, &g, &info, &info_cap, &ts0);
        if (g.n > flags_cap) {
            flags_cap = g.n * 2;
            em.keep_ts = xrealloc(em.keep_ts, (size_t)flags_cap * sizeof *em.keep_ts);
            em.keep_rt = xrealloc(em.keep_rt, (size_t)flags_cap * sizeof *em.keep_rt);
            em.kept = xrealloc(em.kept, (size_t)flags_cap * sizeof *em.kept);
        }
        memset(em.kept, 0, (size_t)g.n * sizeof *em.kept);
        uint64_t key[3] = {c->seed, (uint64_t)i, 0x9013c5};
        rng_seed(&em.q, hash_bytes(key, sizeof key, 0));
        emit_trace(&em, &g, info, ts0, &exp);
        st->graphs++;
        if (hashset_add(&seen_clean, graph_hash(&g))) st->clean_unique++;
        if (clean) graph_write_json(clean->f, &g);
        if (graph_validate(&exp, 15, NULL) == GRAPH_OK) {
            st->expected_valid++;
            if (hashset_add(&seen_exp, graph_hash(&exp))) {
                st->expected_unique++;
                if (truth) graph_write_json(truth->f, &exp);
            }
        }
        if ((i + 1) % c->interleave == 0 || i + 1 == c->graphs) sink_flush(&sink, &shuffle);
        if (progress && (i & 1023) == 0) progress_update(&pr, (double)i, (double)sink.bytes, -1);
    }
    if (progress) progress_end(&pr, (double)c->graphs, (double)sink.bytes);
    st->bytes = sink.bytes;
    if (sink.gz) {
        int rc = gzclose(sink.gz);
        if (rc != Z_OK) fatal("cannot write %s: %s", path, rc == Z_ERRNO ? strerror(errno) : "zlib error");
        tmp_commit(tmp, path);
        free(tmp);
    } else {
        out_close(sink.plain);
    }
    if (truth) out_close(truth);
    if (clean) out_close(clean);
    graph_free(&g);
    graph_free(&exp);
    free(info);
    free(em.keep_ts); free(em.keep_rt); free(em.kept);
    free(seen_exp.k); free(seen_clean.k);
    free(sink.buf); free(sink.off);
}

int cmd_synth(int argc, char **argv) {
    SynthConfig c;
    synth_config_default(&c);
    const char *out = NULL, *truth = NULL, *clean = NULL;
    int64_t graphs = c.graphs, seed = (int64_t)c.seed;
    int level = 1;
    bool quiet = false;
    Opt opts[] = {
        {"--graphs", OPT_I64, &graphs, "N", "traces (call graphs) to write", false},
        {"--seed", OPT_I64, &seed, "S", "seed: the same seed and options give byte-identical output", false},
        {"--out", OPT_STR, &out, "FILE", "output CSV, gzip-compressed when it ends in .gz", true},
        {"--services", OPT_INT, &c.services, "K", "distinct services (S_ ids)", false},
        {"--microservices", OPT_INT, &c.microservices, "M", "shared microservice pool (MS_ ids)", false},
        {"--single", OPT_DOUBLE, &c.single, "F", "share of single-edge traces (real: 34%)", false},
        {"--tail", OPT_DOUBLE, &c.tail, "F", "share of traces with > 40 edges (real raw: ~10%; cleaned sample: <1%)", false},
        {"--max-edges", OPT_INT, &c.max_edges, "N", "largest call graph", false},
        {"--max-depth", OPT_INT, &c.max_depth, "N", "deepest call graph (2..15)", false},
        {"--seq-share", OPT_DOUBLE, &c.seq_share, "F", "P(a sibling call starts after the previous one returned) (real: ~85%)", false},
        {"--zipf", OPT_DOUBLE, &c.zipf, "A", "Zipf exponent of microservice popularity (hot spots)", false},
        {"--slow", OPT_DOUBLE, &c.slow, "F", "mean share of slow traces per service (the high-latency tail)", false},
        {"--dup-rate", OPT_DOUBLE, &c.dup_rate, "F", "quirk, per row: exact duplicate row", false},
        {"--unknown-rate", OPT_DOUBLE, &c.unknown_rate, "F", "quirk, per call: dm UNKNOWN on every row (call lost)", false},
        {"--callee-unknown", OPT_DOUBLE, &c.callee_unknown, "F", "per rpc/http callee row: um UNKNOWN (as in the release)", false},
        {"--unknown-type-rate", OPT_DOUBLE, &c.unknown_type_rate, "F", "quirk, per rpc/http call: extra '<id>.0' row of type UNKNOWN", false},
        {"--malformed-rate", OPT_DOUBLE, &c.malformed_rate, "F", "quirk, per row: replaced by a malformed line", false},
        {"--root01-rate", OPT_DOUBLE, &c.root01_rate, "F", "quirk, per trace: logged from rpc_id 0.1 with um UNKNOWN", false},
        {"--interleave", OPT_INT, &c.interleave, "N", "rows of N consecutive traces are shuffled together", false},
        {"--level", OPT_INT, &level, "L", "gzip level 1..9 (1 is fastest)", false},
        {"--truth", OPT_STR, &truth, "FILE", "also write the unique graphs a correct cleaning recovers (graphs JSONL)", false},
        {"--clean-out", OPT_STR, &clean, "FILE", "also write every intended graph before quirks (graphs JSONL)", false},
        {"--quiet", OPT_FLAG, &quiet, NULL, "no progress line", false},
    };
    args_parse(argc, argv, "tracellm synth --graphs N --seed S --out FILE.csv.gz [options]",
               "Writes a synthetic corpus in the exact Alibaba v2022 CallGraph CSV format: services with a few\n"
               "topology templates, a shared microservice pool with hot spots, depth-dependent communication\n"
               "types, heavy-tailed sizes and latencies, and the real quirks at small rates (docs/SYNTH.md).",
               opts, (int)(sizeof opts / sizeof *opts), NULL);
    // the duplicate bookkeeping keeps 8-byte hashes of unique graphs: ~2 GB at the limit
    if (graphs < 1 || graphs > 100000000LL) fatal("synth: --graphs must be in 1..100000000 (got %lld)", (long long)graphs);
    if (level < 1 || level > 9) fatal("synth: --level must be in 1..9 (got %d)", level);
    c.graphs = graphs;
    c.seed = (uint64_t)seed;
    double t0 = now_seconds();
    Synth *s = synth_new(&c);
    SynthStats st;
    synth_write(s, out, level, truth, clean, !quiet, &st);
    double dt = now_seconds() - t0;
    double single, tail;
    synth_intended_shares(s, &single, &tail);
    printf("synth: wrote %s: %lld traces, %lld rows, %.1f MB of CSV in %.2f s (%.2f M rows/s)\n", out, (long long)st.graphs,
           (long long)st.rows, st.bytes / 1e6, dt, st.rows / dt / 1e6);
    printf("  world: %d services, %d microservices; size mix: %.1f%% single-edge, %.1f%% over 40 edges\n", c.services,
           c.microservices, 100 * single, 100 * tail);
    printf("  quirks: %lld duplicate rows, %lld lost calls (dm UNKNOWN), %lld UNKNOWN-type rows, %lld malformed lines,"
           " %lld traces rooted at 0.1\n", (long long)st.dup_rows, (long long)st.unknown_edges, (long long)st.unknown_type_rows,
           (long long)st.malformed_rows, (long long)st.root01_traces);
    printf("  callee rows: %lld (%lld um UNKNOWN, %lld stamped 1 ms later)\n", (long long)st.callee_rows,
           (long long)st.callee_unknown, (long long)st.callee_shifted);
    printf("  intended graphs: %lld (%lld unique); a correct cleaning recovers %lld valid graphs, %lld unique\n",
           (long long)st.graphs, (long long)st.clean_unique, (long long)st.expected_valid, (long long)st.expected_unique);
    synth_free(s);
    return 0;
}
