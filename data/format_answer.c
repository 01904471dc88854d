// A layer's answer — what the model generates for one request — parsed line by line:
//   [<layer>|<split>]
//   <edges>\n(edge)\n...</edges>                   (a <layer> only)
//   scratchpad lines | <subgraph of edge_id K>CONDITION</subgraph>
//   [finish generation][</layer>|</split>]
// Generation stops at a stop string and may cut the text anywhere, so running out of text is not
// an error but ANS_PARTIAL with what is missing; text that breaks the grammar is ANS_ERROR.
// Then layer_check: the answer against the condition it was asked for (PAPER.md §4).
#include "data/format.h"
#include "util/util.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void answer_init(LayerAnswer *a) { memset(a, 0, sizeof *a); }
void answer_free(LayerAnswer *a) { free(a->edges); free(a->subs); memset(a, 0, sizeof *a); }
void answer_clear(LayerAnswer *a) {
    a->split = a->terminated = a->has_partial = false;
    a->n_edges = a->n_subs = 0;
    a->status = ANS_OK;
    a->err_line = 0;
    a->msg[0] = 0;
    a->consumed = 0;
}
FEdge *answer_add_edge(LayerAnswer *a) {
    if (a->n_edges == a->cap_edges) {
        a->cap_edges = a->cap_edges ? 2 * a->cap_edges : 16;
        a->edges = xrealloc(a->edges, (size_t)a->cap_edges * sizeof *a->edges);
    }
    return &a->edges[a->n_edges++];
}
FSub *answer_add_sub(LayerAnswer *a) {
    if (a->n_subs == a->cap_subs) {
        a->cap_subs = a->cap_subs ? 2 * a->cap_subs : 8;
        a->subs = xrealloc(a->subs, (size_t)a->cap_subs * sizeof *a->subs);
    }
    return &a->subs[a->n_subs++];
}

#define LIT(p, n, lit) ((n) >= sizeof(lit) - 1 && !memcmp((p), lit, sizeof(lit) - 1))
#define IS(p, n, lit) ((n) == sizeof(lit) - 1 && !memcmp((p), lit, sizeof(lit) - 1))

__attribute__((format(printf, 4, 5)))
static AnsStatus fail(LayerAnswer *a, AnsStatus st, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = snprintf(a->msg, sizeof a->msg, "line %d: ", line);
    vsnprintf(a->msg + k, sizeof a->msg - (size_t)k, fmt, ap);
    va_end(ap);
    a->status = st;
    a->err_line = line;
    return st;
}

// Scratchpad lines of the instruction format: recognised by their fixed beginnings and skipped
// (their numbers are derived from the content, so the content is what we keep).
static bool scratchpad_line(const char *s, size_t n) {
    if (n == 0) return true;
    if (s[0] >= '0' && s[0] <= '9') {   // "4 edges generated out of num_edges:56"
        size_t i = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        return LIT(s + i, n - i, " edges generated out of num_edges:");
    }
    return LIT(s, n, "num generated edges = ") || LIT(s, n, "num_remaining_edges = ") ||
           LIT(s, n, "generate subgraphs of edge:") || IS(s, n, "Subgraph constraints:") ||
           LIT(s, n, "num_edges <= num_remaining_edges:") || LIT(s, n, "copy start_node from edge ") ||
           LIT(s, n, "remaining_depth should be the requirement's remaining_depth:") ||
           LIT(s, n, "copy 'remaining_depth:") || LIT(s, n, "now, num_remaining_edges is ");
}

// "<subgraph of edge_id K>COND</subgraph>" in s[0..n). 1 ok, 0 error (msg), -1 cut off.
static int parse_sub(const char *s, size_t n, FSub *sub, bool at_end, char *err, size_t errlen) {
    static const char open[] = "<subgraph of edge_id ";
    const size_t ol = sizeof open - 1;
    const char *gt = n > ol ? memchr(s + ol, '>', n - ol) : NULL;
    if (!gt) {
        if (at_end) { snprintf(err, errlen, "edge id of the subgraph block"); return -1; }
        snprintf(err, errlen, "subgraph block: expected '<subgraph of edge_id K>'");
        return 0;
    }
    size_t kl = (size_t)(gt - s) - ol;
    if (kl == 0 || kl >= FMT_ID_MAX) { snprintf(err, errlen, "subgraph block: bad edge id"); return 0; }
    memcpy(sub->edge_id, s + ol, kl);
    sub->edge_id[kl] = 0;
    const char *c = gt + 1;
    size_t cn = n - (size_t)(c - s);
    static const char close[] = "</subgraph>";
    if (cn < sizeof close - 1 || memcmp(c + cn - (sizeof close - 1), close, sizeof close - 1)) {
        if (at_end) {
            // report which condition fields arrived: parse the complete key:value pairs
            const char *slash = NULL;
            for (size_t i = cn; i-- > 0;) if (c[i] == '/') { slash = c + i; break; }
            Condition tmp;
            char e2[160];
            cond_clear(&tmp);
            if (slash) cond_parse(c, (size_t)(slash - c), &tmp, e2, sizeof e2);
            char miss[400];
            size_t k = 0;
            miss[0] = 0;
            for (int f = 0; f < CF_NFIELDS; f++)
                if ((CF_LAYER_FIELDS >> f & 1u) && !cond_has(&tmp, f)) {
                    int w = snprintf(miss + k, sizeof miss - k, "%s%s", k ? ", " : "", cond_field_name(f));
                    if (w < 0 || (size_t)w >= sizeof miss - k) break;
                    k += (size_t)w;
                }
            snprintf(err, errlen, "%s", miss);
            sub->cond = tmp;
            return -1;
        }
        snprintf(err, errlen, "subgraph block of edge_id %s: missing '</subgraph>'", sub->edge_id);
        return 0;
    }
    char e2[200];
    if (!cond_parse(c, cn - (sizeof close - 1), &sub->cond, e2, sizeof e2)) {
        snprintf(err, errlen, "subgraph block of edge_id %s: %s", sub->edge_id, e2);
        return 0;
    }
    return 1;
}

AnsStatus answer_parse(const char *text, size_t n, LayerAnswer *a, int first_line) {
    answer_clear(a);
    enum { START, IN_EDGES, AFTER } st = START;
    bool opened = false;
    size_t pos = 0;
    int line = first_line - 1;
    char err[480];
    while (pos < n) {
        const char *s = text + pos;
        const char *nl = memchr(s, '\n', n - pos);
        bool at_end = !nl;  // the last line has no newline: generation may have stopped inside it
        size_t len = nl ? (size_t)(nl - s) : n - pos;
        size_t next = nl ? pos + len + 1 : n;
        line++;
        if (len && s[len - 1] == '\r') len--;
        if (st == START) {
            if (!opened && IS(s, len, "<layer>")) { opened = true; pos = next; continue; }
            if (!opened && IS(s, len, "<split>")) { opened = true; a->split = true; st = AFTER; pos = next; continue; }
            if (!a->split && IS(s, len, "<edges>")) { st = IN_EDGES; pos = next; continue; }
            if (at_end && len < 7 && (!memcmp(s, "<layer>", len) || !memcmp(s, "<split>", len) || !memcmp(s, "<edges>", len)))
                return fail(a, ANS_PARTIAL, line, "cut off before <edges>");
            return fail(a, ANS_ERROR, line, "expected <edges>, got '%.*s'", (int)(len < 60 ? len : 60), s);
        }
        if (st == IN_EDGES) {
            if (IS(s, len, "</edges>")) { st = AFTER; pos = next; continue; }
            if (len && s[0] == '(') {
                FEdge *e = answer_add_edge(a);
                int r = edge_parse(s, len, e, EF_LAYER, err, sizeof err);
                e->line = line;
                if (r == 1) { pos = next; continue; }
                a->n_edges--;
                if (r < 0 && at_end) {
                    a->partial = *e;
                    a->has_partial = true;
                    char miss[200];
                    edge_missing_names(EF_LAYER, e->present, miss, sizeof miss);
                    return fail(a, ANS_PARTIAL, line, "cut off mid-edge (edge %d), missing fields %s", a->n_edges + 1, miss);
                }
                if (r < 0) return fail(a, ANS_ERROR, line, "edge: missing ')'");
                return fail(a, ANS_ERROR, line, "edge: %s", err);
            }
            if (at_end && len < 8 && !memcmp(s, "</edges>", len))
                return fail(a, ANS_PARTIAL, line, "cut off inside </edges> after %d edges", a->n_edges);
            return fail(a, ANS_ERROR, line, "expected an edge line '(...)' or </edges>, got '%.*s'", (int)(len < 60 ? len : 60), s);
        }
        // AFTER: subgraph blocks, scratchpad, terminators
        if (LIT(s, len, "<subgraph")) {
            FSub *sub = answer_add_sub(a);
            sub->line = line;
            int r = parse_sub(s, len, sub, at_end, err, sizeof err);
            if (r == 1) { pos = next; continue; }
            a->n_subs--;
            if (r < 0) return fail(a, ANS_PARTIAL, line, "cut off inside a subgraph block, missing fields %s", err);
            return fail(a, ANS_ERROR, line, "%s", err);
        }
        const char *t = s;
        size_t tl = len;
        if (LIT(t, tl, "finish generation")) { t += 17; tl -= 17; a->terminated = true; }
        if (IS(t, tl, "</layer>") || IS(t, tl, "</split>")) {
            if ((t[2] == 's') != a->split)
                return fail(a, ANS_ERROR, line, "'%.*s' closes a %s", (int)tl, t, a->split ? "<split>" : "<layer>");
            a->terminated = true;
            a->consumed = next;
            return a->status = ANS_OK;
        }
        if (tl == 0 && a->terminated) {
            // "finish generation" alone: a closing tag may follow on the next line
            pos = next;
            if (pos < n) {
                const char *u = text + pos;
                const char *nl2 = memchr(u, '\n', n - pos);
                size_t ul = nl2 ? (size_t)(nl2 - u) : n - pos;
                if (IS(u, ul, "</layer>") || IS(u, ul, "</split>")) { line++; pos = nl2 ? pos + ul + 1 : n; }
            }
            a->consumed = pos;
            return a->status = ANS_OK;
        }
        if (LIT(s, len, "##") || LIT(s, len, " ##")) { a->terminated = true; a->consumed = next; return a->status = ANS_OK; }
        if (at_end && len < 21 && !memcmp(s, "<subgraph of edge_id ", len))
            return fail(a, ANS_PARTIAL, line, "cut off at the start of subgraph block %d", a->n_subs + 1);
        if (scratchpad_line(s, len) || at_end) { pos = next; continue; }   // an unfinished last line is scratchpad at worst
        return fail(a, ANS_ERROR, line, "unexpected text '%.*s'", (int)(len < 60 ? len : 60), s);
    }
    a->consumed = n;
    if (st == START) return fail(a, ANS_PARTIAL, line < first_line ? first_line : line, "cut off before <edges>");
    if (st == IN_EDGES) return fail(a, ANS_PARTIAL, line, "cut off inside <edges> after %d edges (no </edges>)", a->n_edges);
    if (a->split && a->n_subs == 0) return fail(a, ANS_PARTIAL, line, "cut off: a <split> without subgraph blocks");
    return a->status = ANS_OK;   // ended cleanly (stop string stripped): terminated stays false
}

// ---- validity of a layer against its condition ----
static const struct { int code; const char *name; } CHECK_NAMES[] = {
    {LC_OK, "ok"}, {LC_NUM_EDGES, "wrong_num_edges"}, {LC_SUB_EDGE_MISSING, "subgraph_edge_not_generated"},
    {LC_SUB_START_NODE, "subgraph_start_node"}, {LC_SUB_OFFSET, "subgraph_start_after_latency"},
    {LC_SUB_LATENCY, "subgraph_latency"}, {LC_SUB_DEEPER, "subgraph_deeper"}, {LC_NO_SUBGRAPH, "no_subgraph"},
    {LC_EDGE_LATENCY, "edge_after_latency"}, {LC_MORE_EDGES, "more_edges"}, {LC_PARSE, "parse_error"},
    {LC_SUB_DEPTH, "subgraph_depths"}, {LC_SPLIT_DEPTH, "split_depth"}, {LC_SPLIT_EDGES, "split_not_smaller"},
    {LC_START_BEFORE, "start_before_condition"}, {LC_START_AFTER_FINISH, "start_after_finish"},
    {LC_EDGE_COUNT, "wrong_num_current_edges"}, {LC_SUB_AT_LEAF, "subgraph_at_leaf"},
    {LC_FIRST_EDGE_ID, "wrong_start_edge_id"}, {LC_NUM_SUBGRAPHS, "wrong_num_subgraphs"}, {LC_DUPLICATE, "duplicate_id"},
};
const char *layer_check_name(int code) {
    for (size_t i = 0; i < sizeof CHECK_NAMES / sizeof CHECK_NAMES[0]; i++)
        if (CHECK_NAMES[i].code == code) return CHECK_NAMES[i].name;
    return "?";
}

typedef struct { uint32_t all; int first; char *detail; size_t len; } Fails;
__attribute__((format(printf, 3, 4)))
static void flag(Fails *f, int code, const char *fmt, ...) {
    if (f->all >> code & 1u) return;
    f->all |= 1u << code;
    if (f->first == LC_OK || code < f->first) {
        f->first = code;
        if (f->detail && f->len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(f->detail, f->len, fmt, ap);
            va_end(ap);
        }
    }
}

static int find_edge(const LayerAnswer *a, const char *id) {
    for (int i = 0; i < a->n_edges; i++)
        if (!strcmp(a->edges[i].id, id)) return i;
    return -1;
}

int layer_check(const Condition *q, const LayerAnswer *a, uint32_t *all, char *detail, size_t detail_len) {
    Fails f = {0, LC_OK, detail, detail_len};
    if (detail && detail_len) detail[0] = 0;
    if (a->status != ANS_OK) {
        flag(&f, LC_PARSE, "%s", a->msg);
        if (all) *all = f.all;
        return f.first;
    }
    const int64_t *v = q->v;
    bool has_ne = cond_has(q, CF_NUM_EDGES), has_rd = cond_has(q, CF_REMAINING_DEPTH), has_lat = cond_has(q, CF_LATENCY);
    const uint32_t need = CF_BIT(CF_ID) | CF_BIT(CF_START_NODE) | CF_BIT(CF_NUM_EDGES) | CF_BIT(CF_REMAINING_DEPTH) | CF_BIT(CF_START_COMM);
    int64_t sub_edges = 0;
    for (int i = 0; i < a->n_subs; i++) {
        const FSub *s = &a->subs[i];
        if ((s->cond.present & need) != need)
            flag(&f, LC_PARSE, "line %d: subgraph block of edge_id %s lacks id, start_node, num_edges, remaining_depth or start_communication_at", s->line, s->edge_id);
        sub_edges += s->cond.v[CF_NUM_EDGES] > 0 ? s->cond.v[CF_NUM_EDGES] : 0;
    }
    int n = a->split ? 0 : a->n_edges;
    if (has_ne && v[CF_NUM_EDGES] > 0 && v[CF_NUM_EDGES] != n + sub_edges)
        flag(&f, LC_NUM_EDGES, "num_edges:%lld but %d edges + %lld in subgraphs", (long long)v[CF_NUM_EDGES], n, (long long)sub_edges);
    for (int i = 0; i < a->n_subs; i++) {
        const FSub *s = &a->subs[i];
        const Condition *c = &s->cond;
        int e = a->split ? -1 : find_edge(a, s->edge_id);
        if (!a->split && e < 0 && n > 0)
            flag(&f, LC_SUB_EDGE_MISSING, "line %d: <subgraph of edge_id %s> but no edge %s was generated", s->line, s->edge_id, s->edge_id);
        if (e >= 0 && cond_has(c, CF_START_NODE) && strcmp(a->edges[e].dst, c->start_node))
            flag(&f, LC_SUB_START_NODE, "line %d: subgraph start_node:%s but edge %s calls %s", s->line, c->start_node, s->edge_id, a->edges[e].dst);
        if (cond_has(c, CF_START_COMM) && cond_has(c, CF_LATENCY) && c->v[CF_START_COMM] > c->v[CF_LATENCY])
            flag(&f, LC_SUB_OFFSET, "line %d: subgraph starts at %lld after its latency %lld", s->line, (long long)c->v[CF_START_COMM], (long long)c->v[CF_LATENCY]);
        if (cond_has(c, CF_LATENCY) && has_lat && c->v[CF_LATENCY] > v[CF_LATENCY])
            flag(&f, LC_SUB_LATENCY, "line %d: subgraph latency %lld > layer latency %lld", s->line, (long long)c->v[CF_LATENCY], (long long)v[CF_LATENCY]);
        if (e >= 0 && cond_has(c, CF_LATENCY) && c->v[CF_LATENCY] > a->edges[e].finish)
            flag(&f, LC_SUB_LATENCY, "line %d: subgraph latency %lld > edge %s finish %lld", s->line, (long long)c->v[CF_LATENCY], s->edge_id, (long long)a->edges[e].finish);
        if (has_rd && cond_has(c, CF_REMAINING_DEPTH) && c->v[CF_REMAINING_DEPTH] > v[CF_REMAINING_DEPTH])
            flag(&f, LC_SUB_DEEPER, "line %d: subgraph remaining_depth %lld > %lld", s->line, (long long)c->v[CF_REMAINING_DEPTH], (long long)v[CF_REMAINING_DEPTH]);
        for (int j = 0; j < i && !a->split; j++)
            if (!strcmp(a->subs[j].edge_id, s->edge_id)) flag(&f, LC_DUPLICATE, "line %d: a second subgraph for edge_id %s", s->line, s->edge_id);
    }
    if (a->n_subs > 0 && has_rd) {
        int64_t d = v[CF_REMAINING_DEPTH];
        bool all_less = true, any_next = false, any_same = false, all_smaller = true;
        for (int i = 0; i < a->n_subs; i++) {
            int64_t cd = a->subs[i].cond.v[CF_REMAINING_DEPTH];
            all_less &= cd < d; any_next |= cd == d - 1; any_same |= cd == d;
            if (has_ne) all_smaller &= a->subs[i].cond.v[CF_NUM_EDGES] < v[CF_NUM_EDGES];
        }
        if (!a->split && (!all_less || !any_next)) flag(&f, LC_SUB_DEPTH, "subgraph depths do not step down from remaining_depth %lld", (long long)d);
        if (a->split && !any_same) flag(&f, LC_SPLIT_DEPTH, "no part of the split keeps remaining_depth %lld", (long long)d);
        if (a->split && !all_smaller) flag(&f, LC_SPLIT_EDGES, "a part of the split is not smaller than num_edges %lld", (long long)v[CF_NUM_EDGES]);
    }
    if (a->n_subs == 0 && has_rd && v[CF_REMAINING_DEPTH] > 0 && has_ne && v[CF_NUM_EDGES] > n)
        flag(&f, LC_NO_SUBGRAPH, "remaining_depth %lld and %lld edges left, but no subgraph", (long long)v[CF_REMAINING_DEPTH], (long long)(v[CF_NUM_EDGES] - n));
    for (int i = 0; i < n; i++) {
        const FEdge *e = &a->edges[i];
        if (has_lat && e->finish > v[CF_LATENCY])
            flag(&f, LC_EDGE_LATENCY, "line %d: edge %s finishes at %lld after latency %lld", e->line, e->id, (long long)e->finish, (long long)v[CF_LATENCY]);
        if (cond_has(q, CF_START_COMM) && e->start < v[CF_START_COMM])
            flag(&f, LC_START_BEFORE, "line %d: edge %s starts at %lld before start_communication_at %lld", e->line, e->id, (long long)e->start, (long long)v[CF_START_COMM]);
        if (e->start > e->finish)
            flag(&f, LC_START_AFTER_FINISH, "line %d: edge %s starts at %lld after it finishes at %lld", e->line, e->id, (long long)e->start, (long long)e->finish);
        for (int j = 0; j < i; j++)
            if (!strcmp(a->edges[j].id, e->id)) flag(&f, LC_DUPLICATE, "line %d: edge_id %s generated twice", e->line, e->id);
    }
    if (has_ne && has_rd && v[CF_NUM_EDGES] > 0 && v[CF_NUM_EDGES] - v[CF_REMAINING_DEPTH] == 1 && n != 1 && !a->split)
        flag(&f, LC_MORE_EDGES, "num_edges - remaining_depth == 1 but %d edges", n);
    if (!a->split && cond_has(q, CF_NUM_CURRENT_EDGES) && v[CF_NUM_CURRENT_EDGES] != n)
        flag(&f, LC_EDGE_COUNT, "num_current_edges:%lld but %d edges", (long long)v[CF_NUM_CURRENT_EDGES], n);
    if (has_rd && v[CF_REMAINING_DEPTH] == 0 && a->n_subs > 0 && !a->split)
        flag(&f, LC_SUB_AT_LEAF, "remaining_depth:0 but %d subgraph blocks", a->n_subs);
    if (!a->split && n > 0 && cond_has(q, CF_START_EDGE_ID) && strcmp(a->edges[0].id, q->start_edge_id))
        flag(&f, LC_FIRST_EDGE_ID, "first edge_id %s, start_edge_id:%s", a->edges[0].id, q->start_edge_id);
    if (cond_has(q, CF_NUM_SUBGRAPHS) && v[CF_NUM_SUBGRAPHS] != a->n_subs)
        flag(&f, LC_NUM_SUBGRAPHS, "num_subgraphs:%lld but %d subgraph blocks", (long long)v[CF_NUM_SUBGRAPHS], a->n_subs);
    if (all) *all = f.all;
    return f.first;
}
