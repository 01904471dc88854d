// The layer-answer automaton of infer/constrain.h. One function, step(), advances a cursor by one
// byte; it reads the committed layer (edges, blocks) and writes it only in a real feed (w != NULL),
// at the newline that ends an edge or a block. constrain_try runs step() on a copy of the cursor.
#include "infer/constrain.h"
#include "util/util.h"
#include <stdlib.h>
#include <string.h>

#define INF ((int64_t)1 << 50)
#define SPLIT_EDGES 15   // the release's split threshold
enum {
    P_LIT,         // typing c->lit, then c->next_phase
    P_EDGE_LINE,   // start of a line inside <edges>
    P_EDGE_KEY, P_EDGE_VAL, P_EDGE_SEP, P_EDGE_END,
    P_BODY,        // start of a line after </edges>
    P_SUB_ID, P_COND_KEY, P_COND_VAL,
    P_FREE_KEY,    // the start of a scratchpad line: one of SCRATCH
    P_FREE_DIG,    // "N edges generated out of num_edges:..."
    P_FREE,        // the rest of a scratchpad line
    P_DONE,
    P_BODY_LT,     // after '<' at a body line start
    P_FORCED,      // typing c->fbuf (a scratchpad line's value), then c->next_phase
    P_COPY_ID,     // "copy start_node from edge " + an edge id of the layer
    P_LIST,        // "generate subgraphs of edge:" + edge ids joined by ",edge_id:"
};
enum { A_ID, A_TYPE, A_DST, A_START, A_FINISH, N_ATTR };
static const char *const ATTR_KEY[N_ATTR] = {"edge_id is ", "type is ", "destination is ",
                                             "communication starts at ", "communication finishes at "};
static const char *const TYPES[RPC_NTYPES] = {"http", "rpc", "mc", "db", "mq"};
// The scratchpad lines answer_parse recognises (data/format_answer.c), by their beginnings.
static const char *const SCRATCH[] = {"num generated edges = ", "num_remaining_edges = ", "generate subgraphs of edge:",
    "Subgraph constraints:", "num_edges <= num_remaining_edges:", "copy start_node from edge ",
    "remaining_depth should be the requirement's remaining_depth:", "copy 'remaining_depth:",
    "now, num_remaining_edges is ", "finish generation"};
enum { S_GENERATED = 0, S_REMAINING = 1, S_LIST = 2, S_CONSTRAINTS = 3, S_LE_REMAINING = 4, S_COPY_START = 5, S_RD_SHOULD = 6,
       S_COPY_RD = 7, S_NOW = 8, S_FINISH = 9, N_SCRATCH = 10 };

// Words of the format that no microservice name contains: a destination that runs into one is the
// model writing the rest of the line (or the next lines) into the name. Case-sensitive: the format
// is lowercase, Alibaba's names are MS_<digits>, USER, UNKNOWN, UNAVAILABLE.
static const char *const CON_KEYWORDS[] = {"edge_id", "destination", "communication", "starts", "finishes",
    "milliseconds", "latency", "num_", "remaining", "depth", "start_node", "caller", "subgraph", "layer",
    "edges", "generat", "constraint"};
#define N_KEYWORDS (int)(sizeof CON_KEYWORDS / sizeof CON_KEYWORDS[0])

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static bool is_name(unsigned char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_';
}

// ---- the names set ----

// What a destination can be: 1..FMT_NAME_MAX-1 characters of [A-Za-z0-9_].
static bool name_ok(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n >= FMT_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) if (!is_name((unsigned char)name[i])) return false;
    return true;
}

void con_names_init(ConNames *s) { memset(s, 0, sizeof *s); }
bool con_names_add(ConNames *s, const char *name) {
    if (!name_ok(name)) return false;
    size_t n = strlen(name);
    if (s->n == s->cap) { s->cap = s->cap ? 2 * s->cap : 256; s->v = xrealloc(s->v, s->cap * sizeof *s->v); }
    s->v[s->n++] = xstrdup(name);
    if ((int)n > s->max_len) s->max_len = (int)n;
    return true;
}
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
void con_names_finish(ConNames *s) {
    if (s->n) qsort(s->v, s->n, sizeof *s->v, cmp_str);
    int w = 0;
    for (int i = 0; i < s->n; i++) {
        if (w && !strcmp(s->v[w - 1], s->v[i])) { free(s->v[i]); continue; }
        s->v[w++] = s->v[i];
    }
    s->n = w;
}
void con_names_free(ConNames *s) {
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    free(s->enc_pool);
    con_names_view_free(s);
}
void con_names_view_free(ConNames *s) {
    free(s->v); free(s->below); free(s->rt); free(s->types); free(s->enc); free(s->enc_n);
    memset(s, 0, sizeof *s);
}
static void names_encode(ConNames *s, const Bpe *tok, BpeCache *cache) {
    static const char pre[] = "destination is ";
    free(s->enc_pool); free(s->enc); free(s->enc_n);
    s->enc = xcalloc(s->n + 1, sizeof *s->enc);
    s->enc_n = xcalloc(s->n + 1, sizeof *s->enc_n);
    size_t *off = xmalloc((s->n + 1) * sizeof *off), pool = 0, cap = 64;
    s->enc_pool = xmalloc(cap * sizeof *s->enc_pool);
    TokBuf t = {0};
    char line[FMT_NAME_MAX + 32];
    for (int j = 0; j < s->n; j++) {
        // in context, then keep the tokens that cover exactly the name's bytes
        size_t a = sizeof pre - 1, b = a + strlen(s->v[j]), at = 0;
        snprintf(line, sizeof line, "%s%s,", pre, s->v[j]);
        t.n = 0;
        bpe_encode(tok, cache, (const unsigned char *)line, strlen(line), &t);
        size_t first = t.n, last = t.n;
        bool aligned = false;
        for (size_t i = 0; i < t.n; i++) {
            if (at == a) first = i;
            at += tok->tok_len[t.v[i]];
            if (at == b) { last = i + 1; aligned = first < t.n; }
        }
        off[j] = pool;
        s->enc_n[j] = aligned ? (int)(last - first) : 0;
        if (pool + s->enc_n[j] > cap) { cap = 2 * (pool + s->enc_n[j]); s->enc_pool = xrealloc(s->enc_pool, cap * sizeof *s->enc_pool); }
        for (int i = 0; i < s->enc_n[j]; i++) s->enc_pool[pool++] = t.v[first + i];
    }
    for (int j = 0; j < s->n; j++) s->enc[j] = s->enc_n[j] ? s->enc_pool + off[j] : NULL;
    free(t.v); free(off);
}
void con_names_encode(ConNames *s, const Bpe *tok) {
    BpeCache *cache = bpe_cache_new();
    names_encode(s, tok, cache);
    bpe_cache_free(cache);
}
bool con_names_has(const ConNames *s, const char *name) {
    return s->n && bsearch(&name, s->v, s->n, sizeof *s->v, cmp_str);
}
// The first index in [lo, hi) whose character at pos is >= ch (names in [lo, hi) share their first
// pos characters and are sorted, so by their character at pos, '\0' first).
static int names_lower(const ConNames *s, int lo, int hi, int pos, unsigned ch) {
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if ((unsigned char)s->v[mid][pos] < ch) lo = mid + 1; else hi = mid;
    }
    return lo;
}

// ---- observed callees ----

void con_callees_init(ConCallees *c) { memset(c, 0, sizeof *c); }
bool con_callees_add(ConCallees *c, const char *key, const char *name, int type, int64_t below, int64_t rt) {
    if (!name_ok(name)) return false;   // the names set's rule: its sets get only names it accepts
    if (c->np == c->pcap) {
        c->pcap = c->pcap ? 2 * c->pcap : 256;
        c->pk = xrealloc(c->pk, c->pcap * sizeof *c->pk);
        c->pv = xrealloc(c->pv, c->pcap * sizeof *c->pv);
        c->pb = xrealloc(c->pb, c->pcap * sizeof *c->pb);
        c->pr = xrealloc(c->pr, c->pcap * sizeof *c->pr);
        c->pt = xrealloc(c->pt, c->pcap * sizeof *c->pt);
    }
    c->pt[c->np] = type >= 0 && type < RPC_NTYPES ? type : -1;
    c->pk[c->np] = xstrdup(key);
    c->pb[c->np] = below < 0 ? -1 : below;
    c->pr[c->np] = rt < 0 ? -1 : rt;
    c->pv[c->np++] = xstrdup(name);
    return true;
}
static const ConCallees *sort_pairs;   // qsort has no context argument; finishing is single-threaded
static int cmp_pair(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    int d = strcmp(sort_pairs->pk[i], sort_pairs->pk[j]);
    return d ? d : i - j;
}
// *m = the larger of *m and v, where -1 (unknown) on either side stays unknown
static void bound_max(int64_t *m, int64_t v) {
    if (*m >= 0) *m = v < 0 ? -1 : v > *m ? v : *m;
}
void con_callees_finish(ConCallees *c) {
    int *ord = xmalloc((c->np + 1) * sizeof *ord);
    for (int i = 0; i < c->np; i++) ord[i] = i;
    sort_pairs = c;
    if (c->np) qsort(ord, c->np, sizeof *ord, cmp_pair);
    for (int a = 0; a < c->np;) {
        int b = a;
        while (b < c->np && !strcmp(c->pk[ord[a]], c->pk[ord[b]])) b++;
        if (c->n == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 64;
            c->keys = xrealloc(c->keys, c->cap * sizeof *c->keys);
            c->sets = xrealloc(c->sets, c->cap * sizeof *c->sets);
        }
        c->keys[c->n] = xstrdup(c->pk[ord[a]]);
        ConNames *s = &c->sets[c->n++];
        con_names_init(s);
        for (int k = a; k < b; k++) con_names_add(s, c->pv[ord[k]]);
        con_names_finish(s);
        // per name the types seen, the most edges below it and the longest response time; one
        // unknown makes that bound unknown for good (every type; -1)
        s->below = xmalloc((s->n + 1) * sizeof *s->below);
        s->rt = xmalloc((s->n + 1) * sizeof *s->rt);
        s->types = xmalloc(s->n + 1);
        for (int j = 0; j < s->n; j++) { s->below[j] = s->rt[j] = 0; s->types[j] = 0; }
        for (int k = a; k < b; k++) {
            const char *name = c->pv[ord[k]];
            int j = (int)((char **)bsearch(&name, s->v, s->n, sizeof *s->v, cmp_str) - s->v);
            bound_max(&s->below[j], c->pb[ord[k]]);
            bound_max(&s->rt[j], c->pr[ord[k]]);
            s->types[j] |= c->pt[ord[k]] < 0 ? (1u << RPC_NTYPES) - 1 : 1u << c->pt[ord[k]];
        }
        a = b;
    }
    for (int i = 0; i < c->np; i++) { free(c->pk[i]); free(c->pv[i]); }
    free(c->pk); free(c->pv); free(c->pb); free(c->pr); free(c->pt); free(ord);
    c->pk = c->pv = NULL; c->pb = c->pr = NULL; c->pt = NULL; c->np = c->pcap = 0;
}
void con_callees_free(ConCallees *c) {
    for (int i = 0; i < c->n; i++) { free(c->keys[i]); con_names_free(&c->sets[i]); }
    for (int i = 0; i < c->np; i++) { free(c->pk[i]); free(c->pv[i]); }
    free(c->keys); free(c->sets); free(c->pk); free(c->pv); free(c->pb); free(c->pr); free(c->pt);
    memset(c, 0, sizeof *c);
}
static int callees_index(const ConCallees *c, const char *key) {
    if (!c->n) return -1;
    char **k = bsearch(&key, c->keys, c->n, sizeof *c->keys, cmp_str);
    return k ? (int)(k - c->keys) : -1;
}
const ConNames *con_callees_find(const ConCallees *c, const char *key) {
    int i = callees_index(c, key);
    return i < 0 ? NULL : &c->sets[i];
}
void con_callees_encode(ConCallees *c, const Bpe *tok) {
    BpeCache *cache = bpe_cache_new();   // one for every set: a callee recurs under many callers
    for (int i = 0; i < c->n; i++) names_encode(&c->sets[i], tok, cache);
    bpe_cache_free(cache);
}
const ConNames *con_callees_fit(const ConCallees *c, const char *key, int64_t need, ConNames *view) {
    int i = callees_index(c, key);
    if (i < 0) return NULL;
    const ConNames *s = &c->sets[i];
    int64_t most = 0;
    for (int j = 0; j < s->n; j++) if (s->below[j] > most) most = s->below[j];
    if (need > most) need = most;
    int fit = 0;
    for (int j = 0; j < s->n; j++) fit += s->below[j] < 0 || s->below[j] >= need;
    if (fit == s->n) return s;
    if (view->cap < fit) {
        view->cap = fit;
        view->v = xrealloc(view->v, fit * sizeof *view->v);
        view->below = xrealloc(view->below, fit * sizeof *view->below);
        view->rt = xrealloc(view->rt, fit * sizeof *view->rt);
        view->types = xrealloc(view->types, fit);
        view->enc = xrealloc(view->enc, fit * sizeof *view->enc);
        view->enc_n = xrealloc(view->enc_n, fit * sizeof *view->enc_n);
    }
    view->n = 0; view->max_len = 0;
    for (int j = 0; j < s->n; j++)
        if (s->below[j] < 0 || s->below[j] >= need) {
            view->v[view->n] = s->v[j]; view->below[view->n] = s->below[j]; view->rt[view->n] = s->rt[j];
            view->types[view->n] = s->types[j];
            view->enc[view->n] = s->enc ? s->enc[j] : NULL; view->enc_n[view->n++] = s->enc ? s->enc_n[j] : 0;
            int len = (int)strlen(s->v[j]);
            if (len > view->max_len) view->max_len = len;
        }
    return view;
}

void constrain_set_names(Constraint *k, const ConNames *s) { k->names = s && s->n ? s : NULL; }
void constrain_set_canonical(Constraint *k, bool on) { k->canonical = on; }
void constrain_set_bounds(Constraint *k, bool on) { k->bounds = on; }

void constrain_init(Constraint *k, const Condition *q, bool root, bool scratchpad) {
    memset(k, 0, sizeof *k);
    k->scratchpad = scratchpad;
    k->root = root;
    int64_t *f[] = {&k->n_cur, &k->ne, &k->rd, &k->nsub, &k->start_comm, &k->latency};
    const int fields[] = {CF_NUM_CURRENT_EDGES, CF_NUM_EDGES, CF_REMAINING_DEPTH, CF_NUM_SUBGRAPHS, CF_START_COMM, CF_LATENCY};
    for (int i = 0; i < 6; i++) *f[i] = cond_has(q, fields[i]) && q->v[fields[i]] >= 0 ? q->v[fields[i]] : -1;
    if (root) k->n_cur = 1;   // the root layer is the one edge USER -> entry
    k->first_id = -1;
    k->copy_for = -1;   // no "copy start_node from edge K" yet
    if (cond_has(q, CF_START_EDGE_ID)) {
        const char *s = q->start_edge_id;
        int64_t v = 0;
        bool ok = *s && strlen(s) < 15 && (s[0] != '0' || !s[1]);
        for (; ok && *s; s++) { if (*s < '0' || *s > '9') ok = false; else v = v * 10 + (*s - '0'); }
        if (ok) k->first_id = v;
    }
    if (cond_has(q, CF_ID)) snprintf(k->id, sizeof k->id, "%s", q->id);
    snprintf(k->caller, sizeof k->caller, "%s", cond_has(q, CF_START_NODE) ? q->start_node : "USER");
    // a free name may be as long as the longest the condition shows (names are one alphabet)
    k->name_max = CON_NAME_MAX;
    if ((int)strlen(k->id) > k->name_max) k->name_max = (int)strlen(k->id);
    if ((int)strlen(k->caller) > k->name_max) k->name_max = (int)strlen(k->caller);
    k->active = k->n_cur <= CON_MAX_EDGES;
    k->c.phase = P_LIT;
    k->c.lit = "<layer>\n<edges>\n";
    k->c.next_phase = P_EDGE_LINE;
}

bool constrain_set_split(Constraint *k, const Condition *q, const char *edge_id) {
    // flat splits only: 2..5 parts of at most 15 current edges each (more are nested splits), and
    // every field a part's range needs
    int64_t S = k->nsub, NC = k->n_cur, N = k->ne, rd = k->rd;
    bool ok = S >= 2 && NC >= S && NC <= SPLIT_EDGES * S && N >= NC && rd >= 0 && k->latency >= 0 &&
              k->start_comm >= 0 && k->first_id >= 0 && cond_has(q, CF_CALLER) && edge_id && *edge_id &&
              strlen(edge_id) < sizeof k->split_edge && (rd == 0 ? N == NC : N - NC >= rd);
    if (!ok) { k->active = false; return false; }
    k->split = true;
    snprintf(k->split_edge, sizeof k->split_edge, "%s", edge_id);
    snprintf(k->split_caller, sizeof k->split_caller, "%s", q->caller);
    k->c.lit = "<split>\n";
    k->c.next_phase = P_BODY;
    return true;
}

// ---- what the layer allows at a line start ----

static bool layer_complete(const Constraint *k) {
    if (k->split) return k->n_subs == k->nsub;   // the last part takes what is left (split_range)
    if (k->n_cur >= 0 ? k->n_edges != k->n_cur : k->n_edges < 1) return false;
    if (k->nsub >= 0 && k->n_subs != k->nsub) return false;
    if (k->ne >= 0 && k->n_cur >= 0 && k->sub_edges != k->ne - k->n_cur) return false;
    if (k->rd > 0 && k->n_subs > 0 && !k->any_deep) return false;
    if (k->rd > 0 && k->n_subs == 0 && k->ne >= 0 && k->ne > k->n_edges) return false;
    return true;
}
static bool can_sub(const Constraint *k) {
    if (k->split) return k->n_subs < k->nsub;
    if (k->rd == 0 || (k->nsub >= 0 && k->n_subs >= k->nsub)) return false;
    if (k->ne >= 0 && k->n_cur >= 0 && k->sub_edges >= k->ne - k->n_cur) return false;
    for (int i = 0; i < k->n_edges; i++) if (!k->e[i].used) return true;
    return false;
}

// ---- numbers: a digit prefix must extend to a value in [lo, hi] ----
static bool extendable1(int64_t v, int ndig, int64_t lo, int64_t hi) {
    if (lo > hi) return false;
    if (v == 0 && ndig == 1) return lo <= 0 && 0 <= hi;   // "0" takes no more digits
    int64_t p = 1;
    for (int extra = 0; ndig + extra <= 16; extra++, p *= 10) {
        if (v > INF / p) break;
        int64_t a = v * p, b = a + p - 1;
        if (b >= lo && a <= hi) return true;
    }
    return false;
}
static bool num_extendable(const ConCursor *c, int64_t v, int ndig) {
    return extendable1(v, ndig, c->lo, c->hi) || extendable1(v, ndig, c->lo2, c->hi2);
}
static bool num_digit(ConCursor *c, unsigned char ch) {
    if (ch < '0' || ch > '9') return false;
    if (c->ndig == 1 && c->num == 0) return false;   // no leading zeros
    if (c->ndig >= 16) return false;
    int64_t v = c->num * 10 + (ch - '0');
    if (!num_extendable(c, v, c->ndig + 1)) return false;
    c->num = v; c->ndig++;
    return true;
}
static bool num_complete(const ConCursor *c) {
    return c->ndig > 0 && ((c->num >= c->lo && c->num <= c->hi) || (c->num >= c->lo2 && c->num <= c->hi2));
}
static void num_start(ConCursor *c, int64_t lo, int64_t hi) { c->num = 0; c->ndig = 0; c->lo = max64(lo, 0); c->hi = hi; c->lo2 = 1; c->hi2 = 0; }

// ---- subgraph block fields ----
// Block fields are written in the canonical order of CondField (id, start_node, caller,
// num_edges, num_current_edges, num_subgraphs, remaining_depth, start_edge_id,
// start_communication_at, latency): training shuffles the order, so every order is as likely to
// the model, and a fixed one lets each range depend only on fields already written, which makes
// the ranges exact: no value allowed here can leave a later field without a value.
// A value must fall in [lo, hi] or in [lo2, hi2] (the second range is empty unless needed).
typedef struct { int64_t lo, hi, lo2, hi2; } Range;

// A part of a <split> (constrain_set_split): the parts partition the layer's num_edges and
// num_current_edges, each takes 1..15 current edges, their edge ids run on (start_edge_id), their
// start_node, caller and latency are the layer's, the first starts when the layer does, and one
// keeps the layer's remaining_depth (a subtree of rd edges at least). Ranges over what is left:
// Nl edges, Cl current ones (so Sl = Nl - Cl below the parts), L parts after this one.
static void split_range(const Constraint *k, const ConCursor *c, int fld, Range *out) {
    const int64_t *f = c->f;
    int64_t lo = 0, hi = INF, lo2 = 1, hi2 = 0;
    int64_t Nl = k->ne - k->sub_edges, Cl = k->n_cur - k->sub_cur, Sl = Nl - Cl, L = k->nsub - k->n_subs - 1, rd = k->rd;
    int64_t c_lo = max64(1, Cl - SPLIT_EDGES * L), c_hi = min64(SPLIT_EDGES, Cl - L);   // this part's current edges
    bool need_deep = rd > 0 && !k->any_deep;
    int64_t NE = f[CF_NUM_EDGES], NC = f[CF_NUM_CURRENT_EDGES], NS = f[CF_NUM_SUBGRAPHS];
    int64_t sub = NE - NC;   // (after both are known) edges below this part
    // must this part be the deep one (no later part can take a subtree of rd edges)?
    bool must_deep = need_deep && (L == 0 || Sl - sub < rd);
    switch (fld) {
    case CF_NUM_EDGES:
        if (L == 0) { lo = hi = Nl; break; }
        if (rd == 0) { lo = c_lo; hi = c_hi; break; }   // leaves: num_edges = num_current_edges
        // s edges below this part: any in [0, Sl], but with a deep part still to come, s >= rd
        // (this one is deep) or Sl - s >= rd (a later one can be)
        lo = c_lo; hi = c_hi + Sl;
        if (need_deep && Sl - rd + 1 <= rd - 1) {   // the s in (Sl - rd, rd) are out
            hi = c_hi + max64(Sl - rd, -1);
            lo2 = c_lo + rd; hi2 = c_hi + Sl;
            if (Sl - rd < 0) { lo = lo2; hi = hi2; lo2 = 1; hi2 = 0; }
        }
        break;
    case CF_NUM_CURRENT_EDGES:
        if (L == 0) { lo = hi = Cl; break; }
        lo = max64(c_lo, NE - Sl); hi = min64(c_hi, NE);
        if (rd == 0) { lo = hi = NE; break; }
        if (need_deep && Sl - rd + 1 <= rd - 1) {   // s = NE - NC must avoid (Sl - rd, rd)
            int64_t a_hi = min64(hi, NE - rd), b_lo = max64(lo, NE - Sl + rd);
            lo2 = b_lo; hi2 = hi;
            hi = a_hi;
        }
        break;
    case CF_NUM_SUBGRAPHS:
        if (sub == 0) { lo = hi = 0; break; }
        lo = 1; hi = min64(NC, sub);
        if (must_deep) hi = min64(hi, sub - rd + 1);   // room for its depth-rd child
        break;
    case CF_REMAINING_DEPTH:
        if (sub == 0) { lo = hi = 0; break; }
        lo = 1; hi = min64(rd, sub - NS + 1);
        if (must_deep) lo = hi = rd;
        break;
    case CF_START_EDGE_ID:
        lo = hi = k->first_id + k->sub_cur;
        break;
    case CF_START_COMM:
        lo = k->start_comm;
        hi = k->n_subs == 0 ? k->start_comm : k->latency;
        break;
    case CF_LATENCY:
        lo = hi = k->latency;
        break;
    default:
        break;
    }
    *out = (Range){lo, hi, lo2, hi2};
}

static void cond_range(const Constraint *k, const ConCursor *c, int fld, Range *out) {
    if (k->split) { split_range(k, c, fld, out); return; }
    const int64_t *f = c->f;
    int64_t lo = 0, hi = INF, lo2 = 1, hi2 = 0;
    int64_t R = k->ne >= 0 && k->n_cur >= 0 ? k->ne - k->n_cur - k->sub_edges : -1;  // edges still to place
    int64_t after = k->nsub >= 0 ? k->nsub - k->n_subs - 1 : -1;                   // blocks after this one
    int64_t rd = k->rd;
    bool need_deep = rd > 0 && !k->any_deep;  // some block must still take remaining_depth rd - 1
    // the most edges this block can take (the later blocks keep one each) ...
    int64_t ne_max = R < 0 ? INF : R - (after > 0 ? after : 0);
    // ... and when it is not the deep one (a later block then needs rd - 1 edges at least)
    int64_t ne_max_shallow = !need_deep ? ne_max : after > 0 ? R - after - (rd - 1) : -1;
    if (R < 0) ne_max_shallow = need_deep && after == 0 ? -1 : INF;
    int64_t NE = f[CF_NUM_EDGES], NC = f[CF_NUM_CURRENT_EDGES], NS = f[CF_NUM_SUBGRAPHS];
    bool can_shallow = !need_deep || NE <= ne_max_shallow;   // (after num_edges is known)
    const ConEdge *e = &k->e[c->sub_edge];
    switch (fld) {
    case CF_NUM_EDGES:
        lo = 1;
        if (R >= 0 && after == 0) { lo = hi = R; break; }   // the last block takes the rest
        if (need_deep) {
            // shallow: small enough to leave a later block its deep tree; deep: >= rd edges
            hi = ne_max_shallow;
            lo2 = rd; hi2 = ne_max;
        } else hi = ne_max;
        break;
    case CF_NUM_CURRENT_EDGES:
        // a depth-d tree under NC current edges has NE >= NC + d edges
        lo = 1; hi = NE;
        if (rd == 1) lo = NE;                               // children of a depth-1 layer are leaves
        if (!can_shallow) hi = NE - (rd - 1);               // this must be the deep block
        break;
    case CF_NUM_SUBGRAPHS:
        if (NC <= SPLIT_EDGES) {
            lo = hi = 0;
            if (NC < NE) { lo = 1; hi = min64(NC, NE - NC); }
            if (NC < NE && !can_shallow) hi = min64(hi, NE - NC - (rd - 1) + 1);  // room for the deep child
        } else {
            // maybe a split layer: its num_subgraphs counts chunks of the current edges (the release)
            lo = NC < NE ? 1 : 0; hi = NC;
        }
        break;
    case CF_REMAINING_DEPTH:
        if (NC == NE) { lo = hi = 0; break; }
        // the deepest child needs remaining_depth edges, the other NS - 1 children one each
        lo = 1; hi = NE - NC - (NS > 0 && NC <= SPLIT_EDGES ? NS - 1 : 0);
        if (rd >= 0) hi = min64(hi, rd - 1);
        if (need_deep) {
            int64_t d = rd - 1;
            lo2 = d; hi2 = d <= hi && d >= 1 ? d : -1;
            hi = can_shallow ? min64(hi, d - 1) : -1;
        }
        break;
    case CF_START_COMM:
        hi = e->finish;
        if (k->latency >= 0) hi = min64(hi, k->latency);
        break;
    case CF_LATENCY:
        hi = e->finish;
        if (k->latency >= 0) hi = min64(hi, k->latency);
        lo = f[CF_START_COMM] >= 0 ? f[CF_START_COMM] : 0;
        // a child layer's latency IS its parent edge's finish (the root edge's: its rt), as
        // data/layers.c defines it: a smaller one would squeeze every time below it
        lo = max64(lo, min64(hi, k->root ? e->finish - e->start : e->finish));
        break;
    default:  // start_edge_id: any number of up to 6 digits (local ids count a layer's calls)
        hi = 999999;
        break;
    }
    *out = (Range){lo, hi, lo2, hi2};
}

// The next field of a block in canonical order, as a key_mask bit (0 when all are written).
static uint32_t next_field(uint32_t done) {
    for (int f = 0; f < CF_NFIELDS; f++)
        if ((CF_LAYER_FIELDS >> f & 1u) && !(done >> f & 1u)) return 1u << f;
    return 0;
}

// ---- scratchpad values ----
// The instruction format's scratchpad is arithmetic on the layer (data/format_instruct.c writes it
// from the answer): its numbers follow from what is committed, so after a line's beginning the
// rest of the line is forced to what the renderer would write. A model left to it writes wrong
// numbers ("num_remaining_edges = num_edges:3 - generated:1 = 20") and then reads them back; a weak
// one also runs on in free lines until the context ends. A value the condition does not give (no
// num_edges) leaves its line free, as is the list after "generate subgraphs of edge:".

// Edges still to place below the layer (before the next block), or -1 when unknown.
static int64_t remaining(const Constraint *k) { return k->ne >= 0 ? k->ne - k->n_edges - k->sub_edges : -1; }

// Which scratchpad beginnings may start a line now: those the renderer writes at this point of
// the layer, each at most once: the lines about the edges once a layer, the lines about a block
// once before it (and "now, ..." once after it). Unbounded, a weak model repeats a line (or a
// blank one) until the context ends.
#define PAD_DIGITS (1u << N_SCRATCH)   // "n edges generated out of num_edges:N", in pad_layer
#define PAD_ONCE_A_LAYER (1u << S_GENERATED | 1u << S_REMAINING | 1u << S_LIST | PAD_DIGITS)
static uint32_t scratch_keys(const Constraint *k, const ConCursor *c) {
    uint32_t m = ((1u << N_SCRATCH) - 1) & ~(c->pad_layer | c->pad_block);
    if (k->split)   // a split writes no edges: only the lines about its parts
        m &= 1u << S_CONSTRAINTS | 1u << S_LE_REMAINING | 1u << S_COPY_RD | 1u << S_NOW | 1u << S_FINISH;
    else m &= ~(1u << S_COPY_RD);                    // a split answer's line
    if (!layer_complete(k)) m &= ~(1u << S_FINISH);   // never a dead end
    if (k->n_subs == 0) m &= ~(1u << S_NOW);          // it follows a block
    bool block_next = can_sub(k);
    // the blocks to come, before the first one and its lines
    if (k->n_subs > 0 || c->pad_block || !block_next) m &= ~(1u << S_LIST);
    if (!block_next)   // the lines about a block come before one
        m &= ~(1u << S_CONSTRAINTS | 1u << S_LE_REMAINING | 1u << S_COPY_START | 1u << S_RD_SHOULD | 1u << S_COPY_RD);
    if (k->rd < 1) m &= ~(1u << S_RD_SHOULD);
    return m;
}
// The rest of the line after beginning `key`, into c->fbuf (with its newline); false when it stays
// free (a value is not known).
static bool scratch_value(const Constraint *k, ConCursor *c, int key) {
    int64_t N = k->ne, n = k->n_edges, R = remaining(k);
    char *b = c->fbuf;
    size_t cap = sizeof c->fbuf;
    int w = -1;
    switch (key) {
    case S_GENERATED:
        w = snprintf(b, cap, "the last edge id - the first edge id + 1 = %s - %s + 1 = %lld\n", k->e[n - 1].id, k->e[0].id,
                     (long long)n);
        break;
    case S_REMAINING:
        if (N >= 0) w = snprintf(b, cap, "num_edges:%lld - generated:%lld = %lld\n", (long long)N, (long long)n, (long long)(N - n));
        break;
    case S_LE_REMAINING:
        if (R >= 0) w = snprintf(b, cap, "%lld\n", (long long)R);
        break;
    case S_RD_SHOULD:
        w = snprintf(b, cap, "%lld - 1 = %lld\n", (long long)k->rd, (long long)(k->rd - 1));
        break;
    case S_COPY_RD:
        if (k->rd >= 0) w = snprintf(b, cap, "%lld' from the requirement\n", (long long)k->rd);
        break;
    case S_NOW:
        if (R >= 0) w = snprintf(b, cap, "%lld - %lld = %lld\n", (long long)(R + k->last_sub), (long long)k->last_sub, (long long)R);
        break;
    default:
        break;
    }
    if (w < 0 || (size_t)w >= cap) return false;
    c->fpos = 0;
    return true;
}

// The edge the next block is for, when the scratchpad named it ("generate subgraphs of edge:..."
// lists the blocks in order; "copy start_node from edge K" names the next one), else -1.
static int next_block_edge(const Constraint *k) {
    if (k->n_list > k->n_subs) return k->list[k->n_subs];
    return k->copy_for == k->n_subs ? k->copy_edge : -1;
}
// Edge i as what an id being typed may name: in the list (P_LIST) an edge without a block that is
// not listed yet; in a copy line or a block (P_COPY_ID, P_SUB_ID) the next block's edge when the
// scratchpad named it, else any edge without a block.
static bool id_candidate(const Constraint *k, int i, int which) {
    if (k->e[i].used) return false;
    if (which == P_LIST) {
        for (int j = 0; j < k->n_list; j++) if (k->list[j] == i) return false;
        return true;
    }
    int next = next_block_edge(k);
    return next < 0 || next == i;
}
// The candidate whose id is exactly c->sub_id, or -1; and whether ch continues some candidate's id.
static int id_typed(const Constraint *k, const ConCursor *c, int which) {
    for (int i = 0; i < k->n_edges; i++)
        if (id_candidate(k, i, which) && (int)strlen(k->e[i].id) == c->sub_len && !memcmp(k->e[i].id, c->sub_id, c->sub_len))
            return i;
    return -1;
}
static bool id_char(const Constraint *k, ConCursor *c, unsigned char ch, int which) {
    if (c->sub_len >= 20) return false;
    for (int i = 0; i < k->n_edges; i++)
        if (id_candidate(k, i, which) && (int)strlen(k->e[i].id) > c->sub_len && !memcmp(k->e[i].id, c->sub_id, c->sub_len) &&
            k->e[i].id[c->sub_len] == (char)ch) {
            c->sub_id[c->sub_len++] = (char)ch;
            return true;
        }
    return false;
}

// ---- the step ----

static void enter_lit(ConCursor *c, const char *lit, int pos, int next) { c->phase = P_LIT; c->lit = lit; c->lit_pos = pos; c->next_phase = next; }

// With a callee set's bounds: may this edge's destination be name j of the set, given its type
// if typed?
static bool pair_seen(const Constraint *k, const ConCursor *c, int j) {
    return !k->bounds || !k->names || !k->names->types || c->e_type < 0 || (k->names->types[j] >> c->e_type & 1u);
}
// The types this edge may take: with a callee set's bounds, those seen for its destination if
// typed, else for any name of the set.
static uint32_t types_allowed(const Constraint *k, const ConCursor *c) {
    uint32_t all = (1u << RPC_NTYPES) - 1, m = 0;
    if (!k->bounds || !k->names || !k->names->types) return all;
    if (c->dst_ix >= 0) m = k->names->types[c->dst_ix];
    else for (int j = 0; j < k->names->n; j++) m |= k->names->types[j];
    return m & all ? m & all : all;
}

static void begin_edge_value(const Constraint *k, ConCursor *c) {
    c->forced = NULL; c->forced_pos = 0; c->name_len = 0; c->type_len = 0; c->type_mask = types_allowed(k, c);
    c->sub_len = 0;
    c->nm_lo = 0; c->nm_hi = k->names ? k->names->n : 0;
    int64_t lo = k->start_comm >= 0 ? k->start_comm : 0, hi = k->latency >= 0 ? k->latency : INF;
    if (c->attr == A_START) {
        if (c->e_finish >= 0) hi = min64(hi, c->e_finish);
        if (k->n_edges == 0 && k->start_comm >= 0) hi = min64(hi, k->start_comm);  // the first edge starts there
        num_start(c, lo, hi);
    } else if (c->attr == A_FINISH) {
        if (c->e_start >= 0) lo = max64(lo, c->e_start);
        if (k->root && k->latency >= 0 && lo <= k->latency) lo = k->latency;   // the requested latency, exactly
        // the callee's longest observed response time (lo is the start here, so the range stays non-empty)
        if (k->bounds && !k->root && k->names && k->names->rt && c->dst_ix >= 0 && c->e_start >= 0 && k->names->rt[c->dst_ix] >= 0)
            hi = min64(hi, c->e_start + k->names->rt[c->dst_ix]);
        num_start(c, lo, hi);
    } else if (c->attr == A_ID) {
        num_start(c, k->first_id >= 0 ? k->first_id + k->n_edges : 0, k->first_id >= 0 ? k->first_id + k->n_edges : INF);
    }
}

static bool edge_value_done(const Constraint *k, const ConCursor *c) {
    switch (c->attr) {
    case A_ID: case A_START: case A_FINISH: return num_complete(c);
    case A_TYPE: for (int t = 0; t < RPC_NTYPES; t++) if ((c->type_mask >> t & 1u) && (int)strlen(TYPES[t]) == c->type_len) return true; return false;
    default: return c->name_len > 0 && (!k->names || (!k->names->v[c->nm_lo][c->name_len] && pair_seen(k, c, c->nm_lo)));
    }
}

// One more character of a destination: with a names set, some name must go on with it; without,
// the name stays short enough and free of keywords (checked as suffixes: one is caught the
// character it would complete).
static bool dst_char(const Constraint *k, ConCursor *c, unsigned char ch) {
    if (!is_name(ch)) return false;
    if (k->names) {
        if (c->name_len >= k->names->max_len) return false;
        int lo = names_lower(k->names, c->nm_lo, c->nm_hi, c->name_len, ch);
        int hi = names_lower(k->names, lo, c->nm_hi, c->name_len, ch + 1u);
        if (lo == hi) return false;
        if (c->e_type >= 0 && k->bounds && k->names->types) {   // some name seen with this edge's type goes on
            int j = lo;
            while (j < hi && !pair_seen(k, c, j)) j++;
            if (j == hi) return false;
        }
        c->nm_lo = lo; c->nm_hi = hi;
        c->name_len++;
        return true;
    }
    if (c->name_len >= k->name_max) return false;
    c->name[c->name_len++] = (char)ch;
    c->name[c->name_len] = 0;
    for (int i = 0; i < N_KEYWORDS; i++) {
        int n = (int)strlen(CON_KEYWORDS[i]);
        if (n <= c->name_len && !memcmp(c->name + c->name_len - n, CON_KEYWORDS[i], n)) return false;
    }
    return true;
}

// ',' or ')' after a value
// The attributes an edge's next key may name: any not written yet, or with k->canonical only the
// first of them in enum order (the canonical order).
static uint32_t edge_keys(const Constraint *k, uint32_t done) {
    uint32_t left = ~done & ((1u << N_ATTR) - 1);
    return k->canonical ? left & (~left + 1u) : left;
}

static bool edge_sep(const Constraint *k, ConCursor *c, unsigned char ch) {
    bool all = c->done == (1u << N_ATTR) - 1;
    if (ch == ',' && !all) { c->phase = P_EDGE_KEY; c->key_len = 0; c->key_mask = edge_keys(k, c->done); return true; }
    if (ch == ')' && all) { c->phase = P_EDGE_END; return true; }
    return false;
}

static void begin_cond_value(const Constraint *k, ConCursor *c) {
    c->forced = NULL; c->forced_pos = 0; c->name_len = 0;
    if (c->attr == CF_ID && k->id[0]) c->forced = k->id;
    else if (c->attr == CF_CALLER) c->forced = k->split ? k->split_caller : k->caller;
    else if (c->attr == CF_START_NODE) c->forced = k->split ? k->caller : k->e[c->sub_edge].dst;
    if (c->attr != CF_ID && c->attr != CF_CALLER && c->attr != CF_START_NODE) {
        Range r;
        cond_range(k, c, c->attr, &r);
        num_start(c, r.lo, r.hi);
        c->lo2 = max64(r.lo2, 0); c->hi2 = r.hi2;
    }
}
static bool cond_value_done(const ConCursor *c) {
    if (c->forced) return !c->forced[c->forced_pos];
    if (c->attr == CF_ID) return c->name_len > 0;
    return num_complete(c);
}

// Matches ch against the keys in *mask (strings keys[i]), given key_len typed; returns the key
// completed by ch, -1 when ch continues some key, -2 when it matches none.
static int key_step(ConCursor *c, unsigned char ch, const char *const *keys, int n) {
    uint32_t m = 0;
    int full = -1;
    for (int i = 0; i < n; i++)
        if ((c->key_mask >> i & 1u) && keys[i][c->key_len] == (char)ch) {
            m |= 1u << i;
            if (!keys[i][c->key_len + 1]) full = i;
        }
    if (!m) return -2;
    c->key_mask = m; c->key_len++;
    return full >= 0 ? full : -1;
}

static const char *cond_key(int f) {
    static char keys[CF_NFIELDS][40];
    if (!keys[f][0]) snprintf(keys[f], sizeof keys[f], "%s:", cond_field_name(f));
    return keys[f];
}

static bool step(const Constraint *k, Constraint *w, ConCursor *c, unsigned char ch) {
    switch (c->phase) {
    case P_LIT:
        if (c->lit[c->lit_pos] != (char)ch) return false;
        if (!c->lit[++c->lit_pos]) {
            c->phase = c->next_phase;
            if (c->phase == P_DONE && w) w->complete = true;
            bool block_end = c->phase == P_BODY && c->lit[0] == '<' && c->lit[1] == '/' && c->lit[2] == 's';
            if (block_end) c->pad_block = 0;   // the next block's lines (and this one's "now, ...")
            if (block_end && w) {
                // "</subgraph>\n": commit the block
                if (!k->split) w->e[c->sub_edge].used = true;
                w->n_subs++;
                w->sub_edges += c->f[CF_NUM_EDGES];
                w->sub_cur += c->f[CF_NUM_CURRENT_EDGES];
                w->last_sub = c->f[CF_NUM_EDGES];
                if (k->rd > 0 && c->f[CF_REMAINING_DEPTH] == (k->split ? k->rd : k->rd - 1)) w->any_deep = true;
            }
        }
        return true;
    case P_EDGE_LINE:
        if (ch == '(' && (k->n_cur < 0 || k->n_edges < k->n_cur) && k->n_edges < CON_MAX_EDGES) {
            c->phase = P_EDGE_KEY; c->key_len = 0; c->key_mask = edge_keys(k, 0); c->done = 0;
            c->e_start = c->e_finish = -1; c->dst_ix = c->e_type = -1;
            if (w) w->dst[0] = 0;
            return true;
        }
        if (ch == '<' && (k->n_cur >= 0 ? k->n_edges == k->n_cur : k->n_edges >= 1)) { enter_lit(c, "</edges>\n", 1, P_BODY); return true; }
        return false;
    case P_EDGE_KEY: {
        int r = key_step(c, ch, ATTR_KEY, N_ATTR);
        if (r == -2) return false;
        if (r >= 0) { c->attr = r; c->done |= 1u << r; c->phase = P_EDGE_VAL; begin_edge_value(k, c); }
        return true;
    }
    case P_EDGE_VAL:
        switch (c->attr) {
        case A_ID: case A_START: case A_FINISH:
            if (ch >= '0' && ch <= '9') {
                if (!num_digit(c, ch)) return false;
                if (c->attr == A_ID && c->sub_len < 20) c->sub_id[c->sub_len++] = (char)ch;
                return true;
            }
            if (!num_complete(c)) return false;
            if (c->attr == A_ID) return edge_sep(k, c, ch) && (c->sub_id[c->sub_len] = 0, true);
            if (ch != ' ') return false;
            if (c->attr == A_START) c->e_start = c->num; else c->e_finish = c->num;
            enter_lit(c, " milliseconds", 1, P_EDGE_SEP);
            return true;
        case A_TYPE: {
            if (edge_value_done(k, c)) {
                for (int t = 0; t < RPC_NTYPES; t++)   // no type is a prefix of another: one matches
                    if ((c->type_mask >> t & 1u) && (int)strlen(TYPES[t]) == c->type_len) c->e_type = t;
                return edge_sep(k, c, ch);
            }
            uint32_t m = 0;
            for (int t = 0; t < RPC_NTYPES; t++)
                if ((c->type_mask >> t & 1u) && TYPES[t][c->type_len] == (char)ch) m |= 1u << t;
            if (!m) return false;
            c->type_mask = m; c->type_len++;
            return true;
        }
        default:  // destination
            if (is_name(ch)) {
                int at = c->name_len;
                if (!dst_char(k, c, ch)) return false;
                if (w) { w->dst[at] = (char)ch; w->dst[at + 1] = 0; }
                return true;
            }
            if (!edge_value_done(k, c)) return false;
            if (k->names) c->dst_ix = c->nm_lo;
            return edge_sep(k, c, ch);
        }
    case P_EDGE_SEP:
        return edge_sep(k, c, ch);
    case P_EDGE_END:
        if (ch != '\n') return false;
        if (w) {
            ConEdge *e = &w->e[w->n_edges++];
            memcpy(e->id, c->sub_id, sizeof e->id);
            memcpy(e->dst, w->dst, sizeof e->dst);
            e->start = c->e_start; e->finish = c->e_finish; e->used = false;
        }
        c->phase = P_EDGE_LINE;
        return true;
    case P_BODY:
        if (ch == '<') {  // "<subgraph of edge_id " or "</layer>\n"
            c->phase = P_BODY_LT; c->last = 0;
            return can_sub(k) || layer_complete(k);
        }
        if (!k->scratchpad) return false;
        if (ch == '\n') {   // the instruction answers have blank lines, never two in a row
            if (c->last == '\n') return false;
            c->last = '\n';
            return true;
        }
        c->last = 0;
        if (ch >= '0' && ch <= '9') {
            // "n edges generated ...": once, and a split has no edges
            if (k->split || (c->pad_layer & PAD_DIGITS)) return false;
            c->pad_layer |= PAD_DIGITS;
            if (k->ne >= 0) {  // "n edges generated out of num_edges:N"
                snprintf(c->fbuf, sizeof c->fbuf, "%d edges generated out of num_edges:%lld\n", k->n_edges, (long long)k->ne);
                c->fpos = 0; c->phase = P_FORCED; c->next_phase = P_BODY;
                return step(k, w, c, ch);
            }
            c->phase = P_FREE_DIG; c->line_len = 1;
            return true;
        }
        c->phase = P_FREE_KEY; c->key_len = 0; c->key_mask = scratch_keys(k, c);
        /* fallthrough */
    case P_FREE_KEY: {
        int r = key_step(c, ch, SCRATCH, N_SCRATCH);
        if (r == -2) return false;
        if (r >= 0) {
            if (PAD_ONCE_A_LAYER >> r & 1u) c->pad_layer |= 1u << r;
            else c->pad_block |= 1u << r;
        }
        if (r == S_FINISH) {
            if (!layer_complete(k)) return false;
            c->phase = P_DONE;
            if (w) w->complete = true;
        } else if (r == S_CONSTRAINTS) enter_lit(c, "\n", 0, P_BODY);
        else if (r == S_COPY_START) { c->phase = P_COPY_ID; c->sub_len = 0; }
        else if (r == S_LIST) { c->phase = P_LIST; c->sub_len = 0; }
        else if (r >= 0 && scratch_value(k, c, r)) { c->phase = P_FORCED; c->next_phase = P_BODY; }
        else if (r >= 0) { c->phase = P_FREE; c->last = ch; c->line_len = c->key_len; }
        return true;
    }
    case P_FORCED:
        if (c->fbuf[c->fpos] != (char)ch) return false;
        if (!c->fbuf[++c->fpos]) c->phase = c->next_phase;
        return true;
    case P_COPY_ID: {
        // an edge id of the layer (the next block's), then " destination: " and its destination
        if (ch != ' ') return id_char(k, c, ch, P_COPY_ID);
        int i = id_typed(k, c, P_COPY_ID);
        if (i < 0) return false;
        if (w) { w->copy_edge = i; w->copy_for = k->n_subs; }   // the next block is this edge's
        snprintf(c->fbuf, sizeof c->fbuf, "destination: %s\n", k->e[i].dst);
        c->fpos = 0; c->phase = P_FORCED; c->next_phase = P_BODY;
        return true;
    }
    case P_LIST: {
        // the edges whose blocks follow, in their order: num_subgraphs of them when it is given
        if (ch != ',' && ch != '\n') return id_char(k, c, ch, P_LIST);
        int i = id_typed(k, c, P_LIST), listed = k->n_list + 1, open = 0;
        if (i < 0) return false;
        for (int e = 0; e < k->n_edges; e++) open += !k->e[e].used;
        bool more = k->nsub >= 0 ? listed < k->nsub : listed < open;
        if (ch == ',' ? !more : k->nsub >= 0 && listed != k->nsub) return false;
        if (w) w->list[w->n_list++] = i;
        c->sub_len = 0;
        if (ch == ',') enter_lit(c, ",edge_id:", 1, P_LIST);
        else c->phase = P_BODY;
        return true;
    }
    case P_FREE_DIG:
        if (ch >= '0' && ch <= '9') return ++c->line_len < 18;
        if (ch != ' ') return false;
        enter_lit(c, " edges generated out of num_edges:", 1, P_FREE);
        c->last = 0; c->line_len = 40;
        return true;
    case P_BODY_LT:
        if (ch == 's' && can_sub(k)) { enter_lit(c, "<subgraph of edge_id ", 2, P_SUB_ID); c->sub_len = 0; return true; }
        if (ch == '/' && layer_complete(k)) { enter_lit(c, k->split ? "</split>\n" : "</layer>\n", 2, P_DONE); return true; }
        return false;
    case P_SUB_ID: {
        int i = -1;   // the edge the block is for (a split's parts: -1, the layer's own edge)
        if (k->split) {   // every part hangs from the layer's own edge
            if (ch != '>') {
                if (c->sub_len >= (int)strlen(k->split_edge) || k->split_edge[c->sub_len] != (char)ch) return false;
                c->sub_id[c->sub_len++] = (char)ch;
                return true;
            }
            if (c->sub_len != (int)strlen(k->split_edge)) return false;
        } else {
            if (ch != '>') return id_char(k, c, ch, P_SUB_ID);
            if ((i = id_typed(k, c, P_SUB_ID)) < 0) return false;
        }
        c->sub_edge = i;
        c->phase = P_COND_KEY; c->key_len = 0; c->done = 0;
        c->key_mask = next_field(0);
        for (int f = 0; f < CF_NFIELDS; f++) c->f[f] = -1;
        return true;
    }
    case P_COND_KEY: {
        const char *keys[CF_NFIELDS];
        for (int f = 0; f < CF_NFIELDS; f++) keys[f] = cond_key(f);
        int r = key_step(c, ch, keys, CF_NFIELDS);
        if (r == -2) return false;
        if (r >= 0) { c->attr = r; c->done |= 1u << r; c->phase = P_COND_VAL; begin_cond_value(k, c); }
        return true;
    }
    case P_COND_VAL:
        if (c->forced && c->forced[c->forced_pos]) {
            if (c->forced[c->forced_pos] != (char)ch) return false;
            c->forced_pos++;
            return true;
        }
        if (!c->forced && c->attr == CF_ID && is_name(ch) && c->name_len < FMT_NAME_MAX - 1) { c->name_len++; return true; }
        if (!c->forced && c->attr != CF_ID && ch >= '0' && ch <= '9') return num_digit(c, ch);
        if (!cond_value_done(c)) return false;
        if (!c->forced && c->attr != CF_ID) c->f[c->attr] = c->num;
        if (ch == '/' && c->done != CF_LAYER_FIELDS) { c->phase = P_COND_KEY; c->key_len = 0; c->key_mask = next_field(c->done); return true; }
        if (ch == '<' && c->done == CF_LAYER_FIELDS) { enter_lit(c, "</subgraph>\n", 1, P_BODY); return true; }
        return false;
    case P_FREE:
        if (ch == '\n') { c->phase = P_BODY; return true; }
        // no "</" and no '#': no closing tag or "##" hides inside a scratchpad line
        if (ch < 0x20 || ch > 0x7e || ch == '#' || (ch == '/' && c->last == '<') || c->line_len >= 400) return false;
        c->last = ch;
        c->line_len++;
        return true;
    default:
        return false;
    }
}

bool constrain_feed(Constraint *k, const unsigned char *s, size_t n) {
    if (!k->active) return true;
    for (size_t i = 0; i < n; i++)
        if (!step(k, k, &k->c, s[i])) return false;
    return true;
}

bool constrain_try(const Constraint *k, const unsigned char *s, size_t n) {
    if (!k->active) return true;
    ConCursor c = k->c;
    for (size_t i = 0; i < n; i++)
        if (!step(k, NULL, &c, s[i])) return false;
    return true;
}

bool constrain_in_number(const Constraint *k) {
    if (!k->active) return false;
    const ConCursor *c = &k->c;
    if (c->phase == P_EDGE_VAL) return c->attr == A_ID || c->attr == A_START || c->attr == A_FINISH;
    // forced: id / caller / start_node copied; an unforced CF_ID is a free service name
    if (c->phase == P_COND_VAL) return !c->forced && c->attr != CF_ID;
    return false;
}

// At a destination with encoded names (con_names_encode): the tokens that go on some name of the
// typed range in its own tokens. Returns 1 when a name of the range is complete here (what may
// follow it is for the general mask), 0 when none is, -1 (use the general mask alone) when this is
// no such destination, a name of the range has no encoding, or what was typed is off every name's
// tokens (a token across "destination is " and the name).
static int names_mask(const Constraint *k, const Bpe *tok, uint8_t *mask, int *count) {
    const ConCursor *c = &k->c;
    const ConNames *s = k->names;
    if (!s || !s->enc || c->phase != P_EDGE_VAL || c->attr != A_DST) return -1;
    for (int j = c->nm_lo; j < c->nm_hi; j++) if (!s->enc[j]) return -1;
    bool complete = false, on_path = false;
    int n = 0;
    memset(mask, 0, (size_t)tok->vocab_size);
    for (int j = c->nm_lo; j < c->nm_hi; j++) {
        int at = 0, i = 0;
        while (i < s->enc_n[j] && at < c->name_len) at += (int)tok->tok_len[s->enc[j][i++]];
        if (at != c->name_len) continue;   // what was typed is not a start of this name's tokens
        on_path = true;
        if (i == s->enc_n[j]) { complete = true; continue; }
        uint32_t v = s->enc[j][i];
        if (!mask[v] && constrain_try(k, tok->tok[v], tok->tok_len[v])) { mask[v] = 1; n++; }
    }
    if (!on_path) return -1;
    *count = n;
    return complete;
}

int constrain_mask(const Constraint *k, const Bpe *tok, uint8_t *mask) {
    int n = 0, names = names_mask(k, tok, mask, &n);
    if (names == 0) return n;   // inside a name, only its own tokens go on
    // first bytes: one try each, then only tokens whose first byte passes are tried in full; after
    // a complete encoded name, the tokens that start with a name byte were names_mask's to decide
    uint8_t first[256];
    for (int b = 0; b < 256; b++) {
        unsigned char ch = (unsigned char)b;
        first[b] = !(names == 1 && is_name(ch)) && constrain_try(k, &ch, 1);
    }
    int specials = tok->vocab_size - tok->n_special;
    for (int v = 0; v < tok->vocab_size; v++) {
        if (names == 1 && tok->tok_len[v] && is_name(tok->tok[v][0])) continue;
        mask[v] = 0;
        if (v >= specials || !tok->tok_len[v] || !first[tok->tok[v][0]]) continue;
        if (tok->tok_len[v] == 1 || constrain_try(k, tok->tok[v], tok->tok_len[v])) { mask[v] = 1; n++; }
    }
    return n;
}
