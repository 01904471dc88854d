// Recursive + instruction format (SFT): one sample per layer,
//   ### Question: You are a trace generator that creates traces based on given requirements.
//   Requirements:
//   CONDITION-LINE
//   Conditions:
//   one sentence per line (each kept with desc_prob, shuffled)
//   <blank>
//    ### Answer: 
//   <layer>\n<edges>...</edges>\nSCRATCHPAD + <subgraph> blocks ... finish generation</layer>
// with the sentence templates, scratchpad and split-layer prompts of the released code
// (PAPER.md §3; the released data in ../shared/data/tracellm/ is the reference for every byte).
#include "data/format.h"
#include "data/layers.h"
#include "data/stats.h"
#include "util/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIT(p, n, lit) ((n) >= sizeof(lit) - 1 && !memcmp((p), lit, sizeof(lit) - 1))
#define IS(p, n, lit) ((n) == sizeof(lit) - 1 && !memcmp((p), lit, sizeof(lit) - 1))

static const char SYSTEM[] = "You are a trace generator that creates traces based on given requirements.";

void instruct_opts_default(InstructOpts *o) {
    o->keep_prob = 0.9;
    o->latency_keep_prob = 0.5;
    o->desc_prob = 0.9;
    o->combine_special = false;
    o->scratchpad = true;
    o->high_latency_margin = -1;
    o->split_threshold = 15;
    o->finish_marker = true;
    o->rare_subtree = false;
    o->distinct_prob = 0;
    o->canonical_order = false;
}

int answer_distinct_destinations(const LayerAnswer *a) {
    int k = 0;
    for (int i = 0; i < a->n_edges; i++) {
        int j = 0;
        while (j < i && strcmp(a->edges[j].dst, a->edges[i].dst)) j++;
        k += j == i;
    }
    return k;
}

static bool draw(Rng *rng, double p) { return !rng || rng_uniform(rng) < p; }

// Sentences are collected in one buffer and emitted in shuffled order.
typedef struct { TextBuf b; size_t off[40]; int n; } Sentences;
static void s_begin(Sentences *s) {
    if (s->n >= 39) return;
    s->off[s->n++] = s->b.n;
}
static void s_add(Sentences *s, const char *txt) { s_begin(s); tb_puts(&s->b, txt); }
// The first `fixed` sentences keep their place; the rest are shuffled.
static void s_emit(TextBuf *out, Sentences *s, Rng *rng, int fixed) {
    int order[40];
    s->off[s->n] = s->b.n;
    for (int i = 0; i < s->n; i++) order[i] = i;
    if (rng)
        for (int i = s->n - 1; i > fixed; i--) {
            int j = fixed + (int)rng_below(rng, (uint64_t)(i - fixed + 1)), t = order[i];
            order[i] = order[j]; order[j] = t;
        }
    for (int i = 0; i < s->n; i++) {
        tb_put(out, s->b.p + s->off[order[i]], s->off[order[i] + 1] - s->off[order[i]]);
        tb_putc(out, '\n');
    }
}

void instruct_prompt(TextBuf *out, const Condition *c, bool root, bool split, const PromptSpecial *sp,
                     const InstructOpts *o, Rng *rng) {
    static _Thread_local Sentences S;
    InstructOpts def;
    if (!o) { instruct_opts_default(&def); o = &def; }
    double dp = o->desc_prob;
    // orders (requirement fields, sentences) draw from `ord`, which sentences are kept from rng
    Rng *ord = o->canonical_order ? NULL : rng;
    S.n = 0;
    tb_clear(&S.b);
    tb_put(out, "### Question: ", 14);
    tb_puts(out, SYSTEM);
    tb_puts(out, "\nRequirements:\n");
    cond_render(out, c, c->present, ord);
    tb_putc(out, '\n');
    const char *start_node = cond_has(c, CF_START_NODE) ? c->start_node : "USER";
    if (split) {
        s_add(&S, "num_current_edges is over the threshold, so split the subgraph instructions into smaller subgraph instructions");
        s_begin(&S);
        tb_puts(&S.b, "When splitting the subgraph instructions, copy start_node:");
        tb_puts(&S.b, start_node);
        tb_puts(&S.b, " from the requirement");
        s_add(&S, "for all subgraph instructions, latency should not be larger than the requirement's latency");
        s_add(&S, "for all subgraph instructions, start_communication_at <= latency");
        s_emit(out, &S, ord, 1);
        tb_put(out, "\n ### Answer: \n", 15);
        return;
    }
    if (root && !cond_has(c, CF_NUM_EDGES) && draw(rng, dp)) s_add(&S, "The total number of edges is not provided");
    if (cond_has(c, CF_START_EDGE_ID) && draw(rng, dp)) {
        s_begin(&S); tb_puts(&S.b, "the first edge_id should be start_edge_id "); tb_puts(&S.b, c->start_edge_id);
    }
    if (cond_has(c, CF_START_COMM) && draw(rng, dp)) {
        s_begin(&S); tb_puts(&S.b, "the first start_communication_at should be requirement's start_communication_at ");
        tb_int(&S.b, c->v[CF_START_COMM]);
    }
    if (cond_has(c, CF_LATENCY)) {
        if (draw(rng, dp)) {
            s_begin(&S); tb_puts(&S.b, "In each edge, communication start time should NOT be greater than latency ");
            tb_int(&S.b, c->v[CF_LATENCY]); tb_puts(&S.b, " milliseconds");
        }
        if (draw(rng, dp)) {
            s_begin(&S); tb_puts(&S.b, "Also, communication should finish before latency ");
            tb_int(&S.b, c->v[CF_LATENCY]); tb_puts(&S.b, " milliseconds");
        }
    } else if (root && !(sp && sp->high_latency) && draw(rng, 0.5)) {
        s_add(&S, "Build a call graph with latencies based on distributions");
    }
    if (cond_has(c, CF_NUM_SUBGRAPHS)) {
        if (!root && draw(rng, dp)) {
            if (c->v[CF_NUM_SUBGRAPHS] == 0) s_add(&S, "no subgraph to generate");
            else { s_begin(&S); tb_puts(&S.b, "generate "); tb_int(&S.b, c->v[CF_NUM_SUBGRAPHS]); tb_puts(&S.b, " number of subgraphs"); }
        }
    } else if (root && draw(rng, dp)) {
        s_add(&S, "Generate subgraph instructions if necessary");
    }
    if (root && !cond_has(c, CF_REMAINING_DEPTH) && draw(rng, dp)) s_add(&S, "The depth information is not provided");
    if (cond_has(c, CF_NUM_CURRENT_EDGES) && draw(rng, dp)) {
        s_begin(&S); tb_puts(&S.b, "generate "); tb_int(&S.b, c->v[CF_NUM_CURRENT_EDGES]); tb_puts(&S.b, " edges following num_current_edges");
    }
    if (sp && sp->high_latency) s_add(&S, "Build a call graph with high latency");
    if (sp && sp->include) {
        s_begin(&S);
        tb_puts(&S.b, "Include an edge from "); tb_puts(&S.b, sp->inc_src); tb_puts(&S.b, " to "); tb_puts(&S.b, sp->inc_dst);
        tb_puts(&S.b, " with "); tb_puts(&S.b, rpc_type_name(sp->inc_type)); tb_puts(&S.b, " type");
    }
    if (sp && sp->distinct_max > 0) {
        s_begin(&S); tb_puts(&S.b, "Call at most "); tb_int(&S.b, sp->distinct_max); tb_puts(&S.b, " distinct microservices in this layer");
    }
    if (draw(rng, dp)) s_add(&S, "for all edges, communication start time <= communication finish time");
    if (draw(rng, dp)) { s_begin(&S); tb_puts(&S.b, "copy caller from requirement's start_node:"); tb_puts(&S.b, start_node); }
    tb_puts(out, "Conditions:\n");
    s_emit(out, &S, ord, 0);
    tb_put(out, "\n ### Answer: \n", 15);
}

void instruct_answer(TextBuf *out, const Condition *t, const LayerAnswer *a, const InstructOpts *o, Rng *rng) {
    static _Thread_local Sentences S;
    bool pad = o ? o->scratchpad : true;
    Rng *ord = o && o->canonical_order ? NULL : rng;   // the answer draws nothing but orders
    int64_t N = t->v[CF_NUM_EDGES], rd = t->v[CF_REMAINING_DEPTH];
    int n = a->split ? 0 : a->n_edges;
    if (a->split) tb_put(out, "<split>\n", 8);
    else {
        tb_put(out, "<layer>\n<edges>\n", 16);
        for (int i = 0; i < a->n_edges; i++) {
            edge_render(out, &a->edges[i], EF_LAYER, ord);
            tb_putc(out, '\n');
        }
        tb_put(out, "</edges>\n", 9);
        if (pad && n > 0) {
            tb_puts(out, "num generated edges = the last edge id - the first edge id + 1 = ");
            tb_puts(out, a->edges[n - 1].id); tb_put(out, " - ", 3); tb_puts(out, a->edges[0].id);
            tb_put(out, " + 1 = ", 7); tb_int(out, n); tb_putc(out, '\n');
            tb_int(out, n); tb_puts(out, " edges generated out of num_edges:"); tb_int(out, N); tb_putc(out, '\n');
            tb_puts(out, "num_remaining_edges = num_edges:"); tb_int(out, N); tb_puts(out, " - generated:"); tb_int(out, n);
            tb_put(out, " = ", 3); tb_int(out, N - n); tb_putc(out, '\n');
            if (N - n == 0) tb_puts(out, "finish generation");
            tb_putc(out, '\n');
        }
    }
    int64_t R = N - n;
    if (a->n_subs && pad && !a->split) {
        tb_puts(out, "generate subgraphs of edge:");
        for (int i = 0; i < a->n_subs; i++) {
            if (i) tb_puts(out, ",edge_id:");
            tb_puts(out, a->subs[i].edge_id);
        }
        tb_putc(out, '\n');
    }
    for (int i = 0; i < a->n_subs; i++) {
        const FSub *s = &a->subs[i];
        int64_t cn = s->cond.v[CF_NUM_EDGES], crd = s->cond.v[CF_REMAINING_DEPTH];
        if (pad) {
            tb_puts(out, "Subgraph constraints:\n");
            S.n = 0;
            tb_clear(&S.b);
            s_begin(&S); tb_puts(&S.b, "num_edges <= num_remaining_edges:"); tb_int(&S.b, R);
            if (a->split) {
                if (crd == rd - 1) { s_begin(&S); tb_puts(&S.b, "copy 'remaining_depth:"); tb_int(&S.b, rd); tb_puts(&S.b, "' from the requirement"); }
            } else {
                if (crd == rd - 1) {
                    s_begin(&S); tb_puts(&S.b, "remaining_depth should be the requirement's remaining_depth:"); tb_int(&S.b, rd);
                    tb_puts(&S.b, " - 1 = "); tb_int(&S.b, rd - 1);
                }
                const char *dst = "";
                for (int j = 0; j < a->n_edges; j++)
                    if (!strcmp(a->edges[j].id, s->edge_id)) { dst = a->edges[j].dst; break; }
                s_begin(&S); tb_puts(&S.b, "copy start_node from edge "); tb_puts(&S.b, s->edge_id);
                tb_puts(&S.b, " destination: "); tb_puts(&S.b, dst);
            }
            s_emit(out, &S, ord, 0);
        }
        tb_put(out, "<subgraph of edge_id ", 21);
        tb_puts(out, s->edge_id);
        tb_putc(out, '>');
        cond_render(out, &s->cond, CF_LAYER_FIELDS, ord);
        tb_put(out, "</subgraph>\n", 12);
        if (pad) {
            tb_puts(out, "now, num_remaining_edges is "); tb_int(out, R); tb_put(out, " - ", 3); tb_int(out, cn);
            tb_put(out, " = ", 3); tb_int(out, R - cn); tb_putc(out, '\n');
        }
        R -= cn;
        if (R == 0 && pad) tb_puts(out, "finish generation");
    }
    tb_puts(out, a->split ? "</split>\n" : "</layer>\n");
    if (o && o->finish_marker) tb_puts(out, "\n ### Finish\n");
}

void instruct_render_layer(TextBuf *prompt, TextBuf *answer, const Layers *L, int li, const ServiceStats *st,
                           const InstructOpts *o, Rng *rng, LayerAnswer *content) {
    InstructOpts def;
    if (!o) { instruct_opts_default(&def); o = &def; }
    const Layer *l = &L->v[li];
    bool root = li == 0;
    layers_answer(L, li, content);
    PromptSpecial sp;
    memset(&sp, 0, sizeof sp);
    if (st) {
        // the released builder names the first uncommon call of the layer itself; rare_subtree
        // looks through the layer's whole subtree (pre-order: a contiguous run of layers)
        for (int j = li; j < L->n && !sp.include; j++) {
            if (j > li) {
                if (!o->rare_subtree) break;
                int a = L->v[j].parent;
                while (a > li) a = L->v[a].parent;
                if (a != li) break;
            }
            const Layer *lj = &L->v[j];
            if (lj->split) continue;
            int n;
            const int *es = layers_edges(L, lj, &n);
            for (int i = 0; i < n; i++) {
                const Edge *e = &L->g->edges[es[i]];
                if (stats_is_rare(st, e->src, e->type, e->dst)) {
                    sp.include = true;
                    snprintf(sp.inc_src, sizeof sp.inc_src, "%s", e->src);
                    snprintf(sp.inc_dst, sizeof sp.inc_dst, "%s", e->dst);
                    sp.inc_type = e->type;
                    break;
                }
            }
        }
        sp.high_latency = root && stats_high_latency(st, l->cond.v[CF_LATENCY], o->high_latency_margin);
        if (sp.high_latency && sp.include && !o->combine_special) {
            if (draw(rng, 0.5)) sp.include = false;
            else sp.high_latency = false;
        }
    }
    // the worked example of docs/SFT.md; drawn only when enabled, so the default rng stream is the paper's
    if (o->distinct_prob > 0 && !l->split && content->n_edges > 0 && draw(rng, o->distinct_prob))
        sp.distinct_max = answer_distinct_destinations(content);
    Condition shown = l->cond;
    if (root) {
        static const int opt[] = {CF_START_NODE, CF_NUM_EDGES, CF_START_EDGE_ID, CF_START_COMM, CF_NUM_SUBGRAPHS,
                                  CF_REMAINING_DEPTH, CF_NUM_CURRENT_EDGES};
        shown.present = CF_BIT(CF_ID);
        for (size_t i = 0; i < sizeof opt / sizeof opt[0]; i++)
            if (draw(rng, o->keep_prob)) shown.present |= CF_BIT(opt[i]);
        if (!sp.high_latency && draw(rng, o->latency_keep_prob)) shown.present |= CF_BIT(CF_LATENCY);
    } else {
        shown.present &= CF_LAYER_FIELDS;
    }
    instruct_prompt(prompt, &shown, root, l->split, &sp, o, rng);
    instruct_answer(answer, &l->cond, content, o, rng);
}

// ---- parsing samples ----
void instruct_sample_init(InstructSample *s) { memset(s, 0, sizeof *s); answer_init(&s->ans); }
void instruct_sample_free(InstructSample *s) { answer_free(&s->ans); memset(s, 0, sizeof *s); }

// The sentence templates a prompt may hold (fixed beginnings; the rest is a value).
static bool known_sentence(const char *s, size_t n) {
    static const char *const FIXED[] = {
        "for all edges, communication start time <= communication finish time", "no subgraph to generate",
        "The total number of edges is not provided", "The depth information is not provided",
        "Generate subgraph instructions if necessary", "Build a call graph with latencies based on distributions",
        "Build a call graph with high latency",
        "num_current_edges is over the threshold, so split the subgraph instructions into smaller subgraph instructions",
        "for all subgraph instructions, start_communication_at <= latency",
        "for all subgraph instructions, latency should not be larger than the requirement's latency"};
    static const char *const PREFIX[] = {
        "generate ", "the first edge_id should be start_edge_id ",
        "the first start_communication_at should be requirement's start_communication_at ",
        "In each edge, communication start time should NOT be greater than latency ",
        "Also, communication should finish before latency ", "copy caller from requirement's start_node:",
        "Include an edge from ", "When splitting the subgraph instructions, copy start_node:", "Call at most "};
    for (size_t i = 0; i < sizeof FIXED / sizeof FIXED[0]; i++)
        if (strlen(FIXED[i]) == n && !memcmp(FIXED[i], s, n)) return true;
    for (size_t i = 0; i < sizeof PREFIX / sizeof PREFIX[0]; i++) {
        size_t k = strlen(PREFIX[i]);
        if (n > k && !memcmp(PREFIX[i], s, k)) return true;
    }
    return false;
}

int instruct_next(TextCursor *c, InstructSample *s, char *err, size_t errlen) {
    if (!cursor_skip_blank(c)) return 0;
    const char *l;
    size_t n;
    char e2[400];
    size_t start = c->pos;
    cursor_line(c, &l, &n);
    s->line = c->line;
    s->n_conds = 0;
    if (!LIT(l, n, "### Question: ") || n - 14 != sizeof SYSTEM - 1 || memcmp(l + 14, SYSTEM, n - 14)) {
        snprintf(err, errlen, "%s:%d: expected '### Question: %s'", c->name, c->line, SYSTEM);
        return -1;
    }
    if (!cursor_line(c, &l, &n) || !IS(l, n, "Requirements:")) { snprintf(err, errlen, "%s:%d: expected 'Requirements:'", c->name, c->line); return -1; }
    if (!cursor_line(c, &l, &n) || !cond_parse(l, n, &s->req, e2, sizeof e2)) {
        snprintf(err, errlen, "%s:%d: requirements: %s", c->name, c->line, n ? e2 : "empty line");
        return -1;
    }
    for (;;) {
        if (!cursor_line(c, &l, &n)) { snprintf(err, errlen, "%s:%d: sample of line %d has no ' ### Answer: '", c->name, c->line, s->line); return -1; }
        if (IS(l, n, " ### Answer: ") || IS(l, n, " ### Answer:")) break;
        if (n == 0 || IS(l, n, "Conditions:")) continue;
        if (!known_sentence(l, n)) {
            snprintf(err, errlen, "%s:%d: unknown condition sentence '%.*s'", c->name, c->line, (int)(n < 80 ? n : 80), l);
            return -1;
        }
        if (s->n_conds < 32) { s->cond_lines[s->n_conds] = l; s->cond_len[s->n_conds++] = (int)n; }
    }
    s->prompt = c->p + start;
    s->prompt_len = c->pos - start;
    AnsStatus st = answer_parse(c->p + c->pos, c->n - c->pos, &s->ans, c->line + 1);
    if (st != ANS_OK || !s->ans.terminated) {
        if (st != ANS_OK) snprintf(err, errlen, "%s: %s", c->name, s->ans.msg);
        else snprintf(err, errlen, "%s: the answer of the sample at line %d ends without </layer>", c->name, s->line);
        return -1;
    }
    s->answer = c->p + c->pos;
    s->answer_len = s->ans.consumed;
    for (const char *q = s->answer; (q = memchr(q, '\n', (size_t)(s->answer + s->answer_len - q))); q++) c->line++;
    c->pos += s->ans.consumed;
    // the training template closes a sample with "\n ### Finish"
    size_t save = c->pos;
    int save_line = c->line;
    if (!cursor_skip_blank(c) || !cursor_line(c, &l, &n) || !(IS(l, n, " ### Finish") || IS(l, n, "### Finish"))) {
        c->pos = save;
        c->line = save_line;
    }
    return 1;
}
