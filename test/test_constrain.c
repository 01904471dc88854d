// Constrained decoding (infer/constrain.h): the automaton accepts every real layer answer (synthetic
// graphs and the paper's released recursive data, in both answer styles), and a "model" that
// samples uniformly among the allowed tokens of a trained BPE writes only answers that parse and
// pass layer_check: the guarantee `--constrained on` gives.
#include "data/format.h"
#include "data/layers.h"
#include "data/synth.h"
#include "infer/constrain.h"
#include "test/test.h"
#include "tokenizer/bpe.h"
#include "util/rng.h"
#include "util/util.h"

// Feeds text byte by byte until the automaton says the answer is complete.
// Returns the bytes consumed, or -(offset+1) where it refused.
static long feed_until_complete(Constraint *k, const char *t, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!constrain_try(k, (const unsigned char *)t + i, 1)) return -(long)i - 1;
        if (!constrain_feed(k, (const unsigned char *)t + i, 1)) return -(long)i - 1;
        if (k->complete) return (long)i + 1;
    }
    return (long)n;
}

static int accept_layer(const Condition *cond, const LayerAnswer *content, bool root, bool pad, Rng *rng, TextBuf *tb,
                        const char *what, const ConNames *names) {
    InstructOpts o;
    instruct_opts_default(&o);
    o.scratchpad = pad;
    tb_clear(tb);
    instruct_answer(tb, cond, content, &o, NULL);   // canonical order: the one the automaton takes
    Constraint k;
    constrain_init(&k, cond, root, pad);
    constrain_set_names(&k, names);
    long r = feed_until_complete(&k, tb->p, tb->n);
    if (r < 0 || !k.complete) {
        long at = r < 0 ? -r - 1 : (long)tb->n;
        printf("    %s: refused at byte %ld: ...%.*s|%.*s\n", what, at, (int)(at < 60 ? at : 60), tb->p + (at < 60 ? 0 : at - 60),
               (int)(tb->n - at < 30 ? tb->n - at : 30), tb->p + at);
        return 0;
    }
    return 1;
}

// Every layer of the first n synthetic graphs with its answer, one at a time: what the tests that
// feed whole synthetic layers share. f.i is the graph, f.li the layer (f.L.v[f.li]), f.a its answer;
// f.tb is a scratch buffer for the test.
typedef struct {
    Synth *s;
    CallGraph g;
    Layers L;
    LayerAnswer a;
    TextBuf tb;
    int n, i, li;
} SynthLayers;
static void synth_layers_open(SynthLayers *f, int graphs) {
    memset(f, 0, sizeof *f);
    SynthConfig sc;
    synth_config_default(&sc);
    sc.graphs = graphs;
    f->s = synth_new(&sc);
    graph_init(&f->g);
    layers_init(&f->L);
    answer_init(&f->a);
    f->n = graphs;
    f->i = -1;
}
static bool synth_layers_next(SynthLayers *f) {
    while (f->i < 0 || ++f->li >= f->L.n) {
        if (++f->i >= f->n) return false;
        synth_graph(f->s, f->i, &f->g, NULL, NULL, NULL);
        LayerOpts lo = {0};
        char err[200];
        bool built = layers_build(&f->L, &f->g, &lo, err, sizeof err);
        CHECKF(built, "synthetic graph %d: %s", f->i, err);
        if (!built) return false;
        f->li = -1;
    }
    layers_answer(&f->L, f->li, &f->a);
    return true;
}
static void synth_layers_close(SynthLayers *f) {
    tb_free(&f->tb); answer_free(&f->a); layers_free(&f->L); graph_free(&f->g); synth_free(f->s);
}

static void test_accepts_synthetic_layers(void) {
    SynthLayers f;
    synth_layers_open(&f, 300);
    Rng rng;
    rng_seed(&rng, 5);
    int layers = 0, ok = 0;
    ConNames names;   // every microservice of these graphs: the answers stay accepted under --names
    con_names_init(&names);
    for (int i = 0; i < 300; i++) {
        synth_graph(f.s, i, &f.g, NULL, NULL, NULL);
        for (int e = 0; e < f.g.n; e++) { con_names_add(&names, f.g.edges[e].src); con_names_add(&names, f.g.edges[e].dst); }
    }
    con_names_finish(&names);
    while (synth_layers_next(&f))
        for (int pad = 0; pad < 4; pad++) {
            layers++;
            ok += accept_layer(&f.L.v[f.li].cond, &f.a, f.li == 0, pad & 1, &rng, &f.tb, pad & 1 ? "instruct" : "recursive",
                               pad >= 2 ? &names : NULL);
        }
    CHECKF(ok == layers, "%d of %d layer answers accepted", ok, layers);
    synth_layers_close(&f);
    con_names_free(&names);
}

typedef struct { int layers, ok, ids_gap; TextBuf tb; Rng rng; } RealCtx;
static void visit_real(void *ctx, const LayerVisit *v) {
    RealCtx *r = ctx;
    if (v->ans->split || v->in_split) return;
    // the recursive data writes child conditions in full; the root's is the one line
    r->layers++;
    r->ok += accept_layer(v->cond, v->ans, v->root, false, &r->rng, &r->tb, "released", NULL);
}

static void test_accepts_released_layers(void) {
    SHARED_OR_SKIP(dir);
    char path[1024];
    snprintf(path, sizeof path, "%s/tracellm/recursive_dataset.txt", dir);
    size_t len;
    char *text = read_file(path, &len);
    TextCursor c;
    cursor_init(&c, text, len, path);
    CallGraph g;
    graph_init(&g);
    RealCtx r = {0};
    rng_seed(&r.rng, 9);
    char err[400];
    int graphs = 0, rc;
    while (graphs < 300 && (rc = recursive_next(&c, &g, visit_real, &r, err, sizeof err)) == 1) graphs++;
    CHECKF(graphs > 50, "%d graphs read (%s)", graphs, err);
    CHECKF(r.ok == r.layers, "%d of %d released layers accepted", r.ok, r.layers);
    tb_free(&r.tb); graph_free(&g); free(text);
}

// A uniform random walk over the allowed tokens must end in an answer that passes layer_check.
// With a names set (the training graphs' microservices, as `--names train.jsonl`) every destination
// it writes must also be one of those names, and every block's start_node its edge's destination.
// With the names encoded (con_names_encode, as generate does), every destination must be written in
static int strcmp_p(const char **a, const char **b) { return strcmp(*a, *b); }

// exactly the tokens the tokenizer gives it.
static void random_walks(bool with_names, bool encoded) {
    SynthConfig sc;
    synth_config_default(&sc);
    sc.graphs = 200;
    Synth *s = synth_new(&sc);
    CallGraph g;
    graph_init(&g);
    Layers L;
    layers_init(&L);
    // a tokenizer trained on recursive text of these graphs
    TextBuf corpus = {0};
    Rng rng;
    rng_seed(&rng, 11);
    RecursiveOpts ro = {0.9, 0.5, 0, false};
    char err[200];
    for (int i = 0; i < 200; i++) {
        synth_graph(s, i, &g, NULL, NULL, NULL);
        REQUIRE(recursive_render(&corpus, &g, &ro, &rng, err, sizeof err));
    }
    Bpe tok;
    BpeText t = {(const unsigned char *)corpus.p, corpus.n};
    const char *specials[] = {BPE_EOT, BPE_BOUNDARY};
    bpe_train(&tok, &t, 1, 600, specials, 2, 2, false);
    ConNames names;
    con_names_init(&names);
    for (int i = 0; with_names && i < 200; i++) {
        synth_graph(s, i, &g, NULL, NULL, NULL);
        for (int e = 0; e < g.n; e++) if (strcmp(g.edges[e].src, "USER")) con_names_add(&names, g.edges[e].src);
        for (int e = 0; e < g.n; e++) con_names_add(&names, g.edges[e].dst);
    }
    con_names_finish(&names);
    if (with_names) REQUIRE(names.n > 20);
    int unencoded = 0;
    if (encoded) {
        con_names_encode(&names, &tok);
        for (int j = 0; j < names.n; j++) unencoded += !names.enc[j];
    }
    int *starts = xmalloc(50001 * sizeof *starts), n_starts = 0, canonical = 0, off_tokens = 0;
    uint8_t *mask = xmalloc(tok.vocab_size);
    LayerAnswer ans;
    answer_init(&ans);
    TextBuf out = {0};
    int walks = 0, valid = 0, dead = 0, dsts = 0, foreign = 0, bad_start = 0, multi = 0, bad_time = 0;
    int pad_lines = 0, bad_pad = 0;
    for (int i = 0; i < 200 && walks < 80; i++) {
        synth_graph(s, 1000 + i, &g, NULL, NULL, NULL);
        LayerOpts lo = {0};
        REQUIRE(layers_build(&L, &g, &lo, err, sizeof err));
        for (int li = 0; li < L.n && li < 3; li++) {
            const Condition *cond = &L.v[li].cond;
            for (int pad = 0; pad < 2; pad++) {
                Constraint k;
                constrain_init(&k, cond, li == 0, pad);
                constrain_set_names(&k, with_names ? &names : NULL);
                tb_clear(&out);
                walks++;
                n_starts = 0;
                for (int step = 0; step < 50000 && !k.complete; step++) {
                    starts[n_starts++] = (int)out.n;
                    int n = constrain_mask(&k, &tok, mask);
                    if (n == 0) { dead++; if (dead < 4) printf("    dead end:\n%.*s\n", (int)(out.n < 400 ? out.n : 400), out.p + (out.n < 400 ? 0 : out.n - 400)); break; }
                    int pick = (int)rng_below(&rng, (uint64_t)n), v = 0;
                    for (;; v++) if (mask[v] && pick-- == 0) break;
                    REQUIRE(constrain_feed(&k, tok.tok[v], tok.tok_len[v]));
                    tb_put(&out, (const char *)tok.tok[v], tok.tok_len[v]);
                }
                if (!k.complete) continue;
                starts[n_starts++] = (int)out.n;
                // each destination's tokens: from "destination is " to the separator
                for (const char *d = out.p; encoded && (d = strstr(d, "destination is ")) && d < out.p + out.n; d++) {
                    int a = (int)(d - out.p) + 15, b = a;
                    while (b < (int)out.n && out.p[b] != ',' && out.p[b] != ')') b++;
                    char name[FMT_NAME_MAX] = {0};
                    memcpy(name, out.p + a, (size_t)(b - a < FMT_NAME_MAX - 1 ? b - a : FMT_NAME_MAX - 1));
                    const char *key = name;
                    char **hit = bsearch(&key, names.v, names.n, sizeof *names.v, (int (*)(const void *, const void *))strcmp_p);
                    if (!hit || !names.enc[hit - names.v]) continue;   // no encoding: the general mask
                    int j = (int)(hit - names.v), i = 0, t = 0;
                    while (i < n_starts && starts[i] < a) i++;
                    bool ok = i < n_starts && starts[i] == a;
                    for (int at = a; ok && t < names.enc_n[j]; t++) {
                        uint32_t v = names.enc[j][t];
                        ok = starts[i] == at && i + 1 < n_starts && starts[i + 1] - at == (int)tok.tok_len[v] &&
                             !memcmp(out.p + at, tok.tok[v], tok.tok_len[v]);
                        at += (int)tok.tok_len[v]; i++;
                    }
                    if (ok) canonical++;
                    else if (off_tokens++ < 3) {   // show the tokens around it
                        printf("    walk %d: destination '%s' not in its own tokens:", walks, name);
                        for (int q = 0; q + 1 < n_starts; q++)
                            if (starts[q + 1] > a - 18 && starts[q] < b + 2) printf(" [%.*s]", starts[q + 1] - starts[q], out.p + starts[q]);
                        printf("\n");
                    }
                }
                answer_parse(out.p, out.n, &ans, 1);
                for (int e = 0; e < ans.n_edges; e++) {
                    dsts++;
                    const char *d = ans.edges[e].dst;
                    // a name of more than one token: the walk went through the trie, not one vocab entry
                    int v = 0;
                    while (v < tok.vocab_size && !(strlen(d) == tok.tok_len[v] && !memcmp(tok.tok[v], d, tok.tok_len[v]))) v++;
                    multi += v == tok.vocab_size;
                    if (with_names ? !con_names_has(&names, d) : (strlen(d) > CON_NAME_MAX || strstr(d, "latency") || strstr(d, "num_"))) {
                        if (foreign++ < 3) printf("    walk %d: destination '%s' not allowed\n", walks, d);
                    }
                }
                for (int b = 0; b < ans.n_subs; b++) {
                    const FSub *sb = &ans.subs[b];
                    int e = 0;
                    while (e < ans.n_edges && strcmp(ans.edges[e].id, sb->edge_id)) e++;
                    if (e == ans.n_edges || strcmp(sb->cond.start_node, ans.edges[e].dst)) bad_start++;
                    // a child's latency is its edge's finish (the root edge's: its rt), as data/layers.c defines it
                    else if (sb->cond.v[CF_LATENCY] != (li == 0 ? ans.edges[e].finish - ans.edges[e].start : ans.edges[e].finish)) bad_time++;
                }
                // the root edge finishes at the requested latency
                if (li == 0 && ans.n_edges > 0 && ans.edges[0].finish != cond->v[CF_LATENCY]) bad_time++;
                // the scratchpad's arithmetic is the layer's (the automaton forces the values), and
                // the blocks come for the edges it names: the list's, in order, and each copy line's
                char listed[CON_MAX_EDGES][32], copy[32] = "";
                int n_listed = 0, block = 0;
                for (const char *ln = out.p; pad && ln < out.p + out.n;) {
                    const char *nl = memchr(ln, '\n', (size_t)(out.p + out.n - ln));
                    int len = nl ? (int)(nl - ln) : (int)(out.p + out.n - ln);
                    char line[512], id1[32], id2[32];
                    snprintf(line, sizeof line, "%.*s", len < 511 ? len : 511, ln);
                    long long a, b, c, x;
                    int n = ans.n_edges;
                    int64_t N = cond->v[CF_NUM_EDGES];
                    bool seen = true, ok = true;
                    if (sscanf(line, "num generated edges = the last edge id - the first edge id + 1 = %31s - %31s + 1 = %lld", id1, id2, &x) == 3)
                        ok = n > 0 && !strcmp(id1, ans.edges[n - 1].id) && !strcmp(id2, ans.edges[0].id) && x == n;
                    else if (sscanf(line, "num_remaining_edges = num_edges:%lld - generated:%lld = %lld", &a, &b, &c) == 3)
                        ok = a == N && b == n && c == a - b;
                    else if (sscanf(line, "%lld edges generated out of num_edges:%lld", &a, &b) == 2) ok = a == n && b == N;
                    else if (sscanf(line, "now, num_remaining_edges is %lld - %lld = %lld", &a, &b, &c) == 3) ok = c == a - b && c >= 0;
                    else if (sscanf(line, "remaining_depth should be the requirement's remaining_depth:%lld - 1 = %lld", &a, &b) == 2)
                        ok = a == cond->v[CF_REMAINING_DEPTH] && b == a - 1;
                    else if (sscanf(line, "copy start_node from edge %31s destination: ", id1) == 1 && strstr(line, " destination: ")) {
                        const char *dst = strstr(line, " destination: ") + 14;
                        ok = false;
                        for (int e = 0; e < n; e++) ok |= !strcmp(ans.edges[e].id, id1) && !strcmp(ans.edges[e].dst, dst);
                    } else if (!strncmp(line, "generate subgraphs of edge:", 27)) {
                        for (char *tok = strtok(line + 27, ","); tok && n_listed < CON_MAX_EDGES; tok = strtok(NULL, ","))
                            snprintf(listed[n_listed++], 32, "%s", !strncmp(tok, "edge_id:", 8) ? tok + 8 : tok);
                        ok = n_listed == ans.n_subs;
                    } else if (sscanf(line, "<subgraph of edge_id %31[^>]>", id1) == 1) {
                        ok = (!copy[0] || !strcmp(copy, id1)) && (!n_listed || (block < n_listed && !strcmp(listed[block], id1)));
                        copy[0] = 0;
                        block++;
                    } else seen = false;
                    if (seen && !strncmp(line, "copy start_node from edge ", 26)) snprintf(copy, sizeof copy, "%s", id1);
                    pad_lines += seen;
                    if (seen && !ok && bad_pad++ < 3) printf("    walk %d: scratchpad line off the layer: %s\n%.*s\n", walks, line, (int)out.n, out.p);
                    ln += len + 1;
                }
                char detail[300];
                int code = layer_check(cond, &ans, NULL, detail, sizeof detail);
                if (code == LC_OK) valid++;
                else printf("    walk %d: code %d %s\n%.*s\n", walks, code, detail, (int)out.n, out.p);
            }
        }
    }
    printf("    %s: %d walks, %d destinations (%d of several tokens), %d/%d valid\n", with_names ? "names set" : "free names",
           walks, dsts, multi, valid, walks);
    CHECKF(valid == walks && dead == 0, "%s: %d of %d random constrained answers valid (%d dead ends)",
           with_names ? "names" : "free names", valid, walks, dead);
    CHECKF(dsts > 100 && foreign == 0, "%d of %d destinations outside the %s", foreign, dsts,
           with_names ? "names set" : "identifier rule");
    CHECKF(!with_names || multi > 0, "%d of %d destinations spanned several tokens", multi, dsts);
    CHECKF(bad_start == 0, "%d subgraph blocks whose start_node is not their edge's destination", bad_start);
    CHECKF(bad_time == 0, "%d root edges off the requested latency or blocks whose latency is not their edge's finish", bad_time);
    CHECKF(pad_lines > 50 && bad_pad == 0, "%d of %d scratchpad lines with numbers off the layer", bad_pad, pad_lines);
    CHECKF(!encoded || (off_tokens == 0 && canonical > 100 && unencoded == 0), "%d destinations in their own tokens, %d not; %d names unencoded",
           canonical, off_tokens, unencoded);
    free(starts);
    con_names_free(&names);
    free(mask); tb_free(&out); tb_free(&corpus); answer_free(&ans); bpe_free(&tok);
    layers_free(&L); graph_free(&g); synth_free(s);
}

static void test_random_walk_is_valid(void) { random_walks(false, false); }
static void test_random_walk_names(void) { random_walks(true, false); }
static void test_random_walk_names_encoded(void) { random_walks(true, true); }

// Feeds the root layer's first edge up to "destination is " and returns the constraint there.
static void at_destination(Constraint *k, const ConNames *names) {
    Condition c;
    cond_clear(&c);
    cond_set_str(&c, CF_ID, "S_1");
    cond_set_str(&c, CF_START_NODE, "USER");
    cond_set_str(&c, CF_START_EDGE_ID, "0");
    cond_set_num(&c, CF_START_COMM, 0);
    constrain_init(k, &c, true, false);
    constrain_set_names(k, names);
    const char *pre = "<layer>\n<edges>\n(edge_id is 0,type is rpc,destination is ";
    REQUIRE(constrain_feed(k, (const unsigned char *)pre, strlen(pre)));
}
static bool dst_ok(const ConNames *names, const char *name_and_sep) {
    Constraint k;
    at_destination(&k, names);
    return constrain_try(&k, (const unsigned char *)name_and_sep, strlen(name_and_sep));
}

static void test_destination_rules(void) {
    ConNames s;
    con_names_init(&s);
    const char *in[] = {"MS_2", "MS_12", "MS_1", "MS_12", "UNKNOWN"};
    for (int i = 0; i < 5; i++) CHECK(con_names_add(&s, in[i]));
    CHECK(!con_names_add(&s, "") && !con_names_add(&s, "MS 1") && !con_names_add(&s, "a,b"));
    con_names_finish(&s);
    CHECKF(s.n == 4 && s.max_len == 7, "%d names, longest %d", s.n, s.max_len);
    CHECK(con_names_has(&s, "MS_12") && !con_names_has(&s, "MS_123") && !con_names_has(&s, "MS_"));
    // names set: exactly the names, prefixes of each other included, nothing else
    CHECK(dst_ok(&s, "MS_1,") && dst_ok(&s, "MS_12,") && dst_ok(&s, "MS_2,") && dst_ok(&s, "UNKNOWN,"));
    CHECK(!dst_ok(&s, "MS_,") && !dst_ok(&s, "MS_3") && !dst_ok(&s, "MS_123") && !dst_ok(&s, "MS_2x") && !dst_ok(&s, "UNK,"));
    CHECK(!dst_ok(&s, ","));
    // free names: the identifier alphabet, at most CON_NAME_MAX characters, no keyword inside
    CHECK(dst_ok(NULL, "MS_5168811,") && dst_ok(NULL, "3x,") && dst_ok(NULL, "UNAVAILABLE,"));
    CHECK(!dst_ok(NULL, "3latency01139MS_5168811num_remaining_edges14349MS_67047"));
    CHECK(dst_ok(NULL, "3latenc") && !dst_ok(NULL, "3latency"));
    CHECK(!dst_ok(NULL, "MS_1num_") && !dst_ok(NULL, "MS_1edge_id") && !dst_ok(NULL, "MS-1"));
    char long_name[CON_NAME_MAX + 3];
    memset(long_name, 'A', CON_NAME_MAX);
    strcpy(long_name + CON_NAME_MAX, ",");
    CHECK(dst_ok(NULL, long_name));
    memset(long_name, 'A', CON_NAME_MAX + 1);
    strcpy(long_name + CON_NAME_MAX + 1, ",");
    CHECK(!dst_ok(NULL, long_name));
    con_names_free(&s);
}

// constrain_in_number against an independent reading of the text: a numeric value starts after
// one of these keys, and "in a number" holds from its first digit up to and including the byte
// that ends it (the number's length is chosen there too). Everything else (names, copied fields,
// "<subgraph of edge_id K>", the markup) is outside.
static const char *const NUM_KEYS[] = {"edge_id is ", "communication starts at ", "communication finishes at ", "num_edges:",
    "num_current_edges:", "num_subgraphs:", "remaining_depth:", "start_edge_id:", "start_communication_at:", "latency:"};
static bool ends_with_num_key(const char *t, size_t end) {
    for (size_t i = 0; i < sizeof NUM_KEYS / sizeof NUM_KEYS[0]; i++) {
        size_t n = strlen(NUM_KEYS[i]);
        if (n <= end && !memcmp(t + end - n, NUM_KEYS[i], n)) return true;
    }
    return false;
}

static void test_in_number(void) {
    SynthLayers f;
    synth_layers_open(&f, 60);
    TextBuf *tb = &f.tb;
    InstructOpts o;
    instruct_opts_default(&o);
    o.scratchpad = false;   // scratchpad lines hold numbers the automaton leaves free: not numeric fields
    long inside = 0, outside = 0, wrong = 0, blocks = 0;
    while (synth_layers_next(&f)) {
        tb_clear(tb);
        instruct_answer(tb, &f.L.v[f.li].cond, &f.a, &o, NULL);
        Constraint k;
        constrain_init(&k, &f.L.v[f.li].cond, f.li == 0, false);
        bool in_val = false;
        size_t line = 0;
        for (size_t p = 0; p < tb->n && !k.complete; p++) {
            bool got = constrain_in_number(&k);
            if (got != in_val && wrong++ < 3)
                printf("    layer %d/%d byte %zu: in_number %d, expected %d: ...%.*s|%.20s\n", f.i, f.li, p, got, in_val,
                       (int)(p < 50 ? p : 50), tb->p + (p < 50 ? 0 : p - 50), tb->p + p);
            got ? inside++ : outside++;
            if (got && !memcmp(tb->p + line, "<subgraph", 9)) blocks++;   // the block conditions' numbers too
            if (tb->p[p] == '\n') line = p + 1;
            if (in_val && !(tb->p[p] >= '0' && tb->p[p] <= '9')) in_val = false;   // the byte that ended it
            REQUIRE(constrain_feed(&k, (const unsigned char *)tb->p + p, 1));
            if (ends_with_num_key(tb->p, p + 1)) in_val = true;
        }
        CHECK(k.complete);
        CHECK(!constrain_in_number(&k));
    }
    CHECKF(wrong == 0, "%ld bytes misjudged", wrong);
    CHECKF(inside > 1000 && blocks > 100 && outside > 5 * inside, "%ld bytes inside numbers (%ld in blocks), %ld outside", inside,
           blocks, outside);
    Constraint off;   // an inactive constraint (split layers, --constrained off) knows no numbers
    memset(&off, 0, sizeof off);
    CHECK(!constrain_in_number(&off));
    synth_layers_close(&f);
}

// constrain_set_canonical: the canonical edge line is accepted, the same line with two attributes
// swapped is refused at the swapped key (and accepted without the option).
static void test_canonical_edges(void) {
    SynthLayers f;
    synth_layers_open(&f, 40);
    TextBuf *tb = &f.tb;
    InstructOpts o;
    instruct_opts_default(&o);
    o.scratchpad = false;
    int tried = 0;
    while (synth_layers_next(&f)) {
        tb_clear(tb);
        instruct_answer(tb, &f.L.v[f.li].cond, &f.a, &o, NULL);
        for (int canonical = 0; canonical < 2; canonical++) {
            Constraint k;
            constrain_init(&k, &f.L.v[f.li].cond, f.li == 0, false);
            constrain_set_canonical(&k, canonical);
            CHECKF(feed_until_complete(&k, tb->p, tb->n) > 0 && k.complete, "graph %d layer %d canonical %d", f.i, f.li, canonical);
        }
        // "(edge_id is N,type is T," -> "(type is T,edge_id is N,"
        char *e = strstr(tb->p, "(edge_id is ");
        REQUIRE(e);
        char *c1 = strchr(e, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
        REQUIRE(c2 && !memcmp(c1 + 1, "type is ", 8));
        char swapped[128];
        int n1 = (int)(c1 - e - 1), n2 = (int)(c2 - c1 - 1);
        REQUIRE(n1 + n2 + 4 < (int)sizeof swapped);
        snprintf(swapped, sizeof swapped, "(%.*s,%.*s,", n2, c1 + 1, n1, e + 1);
        memcpy(e, swapped, (size_t)(n1 + n2 + 3));
        long bad_at = (long)(e - tb->p) + 1;   // the 't' of "type is": refused only when canonical
        for (int canonical = 0; canonical < 2; canonical++) {
            Constraint k;
            constrain_init(&k, &f.L.v[f.li].cond, f.li == 0, false);
            constrain_set_canonical(&k, canonical);
            long r = feed_until_complete(&k, tb->p, tb->n);
            if (canonical) CHECKF(r == -bad_at - 1, "graph %d layer %d: refused at %ld, expected %ld", f.i, f.li, -r - 1, bad_at);
            else CHECKF(r > 0 && k.complete, "graph %d layer %d: a shuffled edge refused without --canonical-order", f.i, f.li);
        }
        tried++;
    }
    CHECKF(tried > 40, "%d layers", tried);
    synth_layers_close(&f);
}

// The observed-callees table of `generate --callees`: pairs grouped by key, each set sorted and
// unique, unknown keys NULL, names the automaton could not write refused.
static void test_callees_table(void) {
    ConCallees c;
    con_callees_init(&c);
    CHECK(con_callees_find(&c, "MS_1") == NULL);
    const char *pairs[][2] = {{"MS_2", "MS_9"}, {"MS_1", "MS_5"}, {"MS_2", "MS_3"}, {"MS_1", "MS_5"}, {"USER", "MS_1"}, {"MS_2", "MS_9"}};
    for (int i = 0; i < 6; i++) CHECK(con_callees_add(&c, pairs[i][0], pairs[i][1], RPC_RPC, 0, 0));
    CHECK(!con_callees_add(&c, "MS_1", "a,b", RPC_RPC, 0, 0) && !con_callees_add(&c, "MS_1", "", RPC_RPC, 0, 0));
    con_callees_finish(&c);
    REQUIRE(c.n == 3);
    CHECK(!strcmp(c.keys[0], "MS_1") && !strcmp(c.keys[1], "MS_2") && !strcmp(c.keys[2], "USER"));
    const ConNames *s = con_callees_find(&c, "MS_2");
    REQUIRE(s);
    CHECKF(s->n == 2 && !strcmp(s->v[0], "MS_3") && !strcmp(s->v[1], "MS_9"), "%d names", s->n);
    s = con_callees_find(&c, "MS_1");
    CHECK(s && s->n == 1 && con_names_has(s, "MS_5") && !con_names_has(s, "MS_9"));
    CHECK(con_callees_find(&c, "MS_3") == NULL && con_callees_find(&c, "MS_") == NULL);
    // a set narrows destinations exactly as a names set does
    CHECK(dst_ok(con_callees_find(&c, "MS_2"), "MS_9,") && !dst_ok(con_callees_find(&c, "MS_2"), "MS_5,"));
    con_callees_free(&c);
}

// Subtree sizes (`generate --callee-bounds`): per (key, name) the most edges seen below; a layer's one
// edge that must carry `need` edges may go only to names seen carrying that many, clamped to the
// most any name carried, and a name with an unknown count always qualifies.
static void test_callees_fit(void) {
    ConCallees c;
    con_callees_init(&c);
    // S_1's small graphs start at MS_a (1-3 edges below), its big ones at MS_b (4-60); S_2's MS_d is unsized
    CHECK(con_callees_add(&c, "S_1", "MS_a", RPC_HTTP, 1, 1) && con_callees_add(&c, "S_1", "MS_a", RPC_HTTP, 3, 1) && con_callees_add(&c, "S_1", "MS_b", RPC_HTTP, 60, 1));
    CHECK(con_callees_add(&c, "S_1", "MS_b", RPC_HTTP, 4, 1) && con_callees_add(&c, "S_1", "MS_c", RPC_HTTP, 2, 1));
    CHECK(con_callees_add(&c, "S_2", "MS_a", RPC_HTTP, 5, 1) && con_callees_add(&c, "S_2", "MS_d", RPC_HTTP, -1, 1) && con_callees_add(&c, "S_2", "MS_d", RPC_HTTP, 9, 1));
    CHECK(con_callees_add(&c, "S_2", "MS_e", RPC_HTTP, 1, 1));
    con_callees_finish(&c);
    ConNames view = {0};
    const ConNames *all = con_callees_find(&c, "S_1"), *s;
    REQUIRE(all && all->n == 3);
    CHECK(con_callees_fit(&c, "S_1", 0, &view) == all && con_callees_fit(&c, "S_1", 1, &view) == all);
    s = con_callees_fit(&c, "S_1", 3, &view);   // MS_c carried at most 2
    CHECKF(s == &view && s->n == 2 && !strcmp(s->v[0], "MS_a") && !strcmp(s->v[1], "MS_b"), "%d names", s->n);
    s = con_callees_fit(&c, "S_1", 59, &view);  // only MS_b carried that many
    CHECKF(s->n == 1 && !strcmp(s->v[0], "MS_b") && s->max_len == 4, "%d names", s->n);
    CHECK(dst_ok(s, "MS_b,") && !dst_ok(s, "MS_a,"));
    s = con_callees_fit(&c, "S_1", 500, &view); // more than anything seen: the closest
    CHECK(s->n == 1 && !strcmp(s->v[0], "MS_b"));
    s = con_callees_fit(&c, "S_2", 7, &view);   // MS_a came closest (5), MS_d has an unknown count
    CHECKF(s == &view && s->n == 2 && !strcmp(s->v[0], "MS_a") && !strcmp(s->v[1], "MS_d"), "%d names", s->n);
    CHECK(con_callees_fit(&c, "S_3", 7, &view) == NULL);
    con_names_view_free(&view);
    con_callees_free(&c);
}

// A callee set's bounds (`generate --callee-bounds`): an edge's type and destination only as a pair
// the set shows, whichever comes first; a call finishes at most its start plus the longest response
// time the set shows for that callee. Off, the set narrows the names only.
static void test_callee_bounds(void) {
    ConCallees c;
    con_callees_init(&c);
    // MS_x calls MS_a by mc (rt 3, 7), MS_ab by rpc, MS_b by db with an unknown response time
    CHECK(con_callees_add(&c, "MS_x", "MS_a", RPC_MC, 0, 3) && con_callees_add(&c, "MS_x", "MS_a", RPC_MC, 0, 7));
    CHECK(con_callees_add(&c, "MS_x", "MS_ab", RPC_RPC, 0, 1) && con_callees_add(&c, "MS_x", "MS_b", RPC_DB, 0, -1));
    con_callees_finish(&c);
    Condition q;
    cond_clear(&q);
    cond_set_str(&q, CF_ID, "S_1");
    cond_set_str(&q, CF_START_NODE, "MS_x");
    cond_set_str(&q, CF_CALLER, "USER");
    cond_set_str(&q, CF_START_EDGE_ID, "1");
    cond_set_num(&q, CF_NUM_EDGES, 2); cond_set_num(&q, CF_NUM_CURRENT_EDGES, 2);
    cond_set_num(&q, CF_NUM_SUBGRAPHS, 0); cond_set_num(&q, CF_REMAINING_DEPTH, 0);
    cond_set_num(&q, CF_START_COMM, 0); cond_set_num(&q, CF_LATENCY, 5000);
    const char *first = "<layer>\n<edges>\n(edge_id is 1,type is mc,destination is MS_a,communication starts at 0 milliseconds,"
                        "communication finishes at 0 milliseconds)\n(edge_id is 2,";
    for (int on = 0; on < 2; on++) {
        Constraint k;
        constrain_init(&k, &q, false, false);
        constrain_set_names(&k, con_callees_find(&c, "MS_x"));
        constrain_set_bounds(&k, on);
        REQUIRE(constrain_feed(&k, (const unsigned char *)first, strlen(first)));
#define TRY(s) constrain_try(&k, (const unsigned char *)(s), strlen(s))
        // types: only those seen (http, mq never); then the names seen with that type
        CHECKF(TRY("type is mc,") && TRY("type is rpc,") && TRY("type is db,"), "on %d", on);
        CHECKF(TRY("type is http,") == !on && TRY("type is mq,") == !on, "on %d", on);
        CHECKF(TRY("type is mc,destination is MS_a,") && TRY("type is rpc,destination is MS_ab,"), "on %d", on);
        CHECKF(TRY("type is rpc,destination is MS_a,") == !on && TRY("type is db,destination is MS_a") == !on, "on %d", on);
        CHECKF(TRY("type is mc,destination is MS_b") == !on, "on %d", on);
        // destination first: the type follows it
        CHECKF(TRY("destination is MS_ab,type is rpc,") && TRY("destination is MS_ab,type is mc,") == !on, "on %d", on);
        // response time: MS_a at most 7 ms; MS_b unknown (the latency only)
        const char *t = "type is mc,destination is MS_a,communication starts at 10 milliseconds,communication finishes at ";
        char buf[256];
        snprintf(buf, sizeof buf, "%s17 ", t); CHECKF(TRY(buf), "on %d", on);
        snprintf(buf, sizeof buf, "%s18 ", t); CHECKF(TRY(buf) == !on, "on %d", on);
        snprintf(buf, sizeof buf, "%s1010 ", t); CHECKF(TRY(buf) == !on, "on %d", on);
        snprintf(buf, sizeof buf, "%s5001 ", t); CHECK(!TRY(buf));   // the latency, always
        CHECKF(TRY("type is db,destination is MS_b,communication starts at 10 milliseconds,communication finishes at 4000 "), "on %d", on);
#undef TRY
    }
    con_callees_free(&c);
}

// <split> answers (constrain_set_split): every flat split layer of wide synthetic graphs (the
// release's cut: parts of 13..15 edges, at most 5 a split) has its real answer accepted, with and
// without the scratchpad; and random walks over the allowed bytes always finish in an answer
// that passes layer_check and whose parts partition the layer: current edges summing to
// num_current_edges, 1..15 each, start_edge_id running on, each part's fields consistent (a leaf
// part has num_edges = num_current_edges; a deeper one room for its depth and subgraphs).
static void test_split_layers(void) {
    SynthConfig sc;
    synth_config_default(&sc);
    sc.graphs = 400;
    sc.tail = 0.3;   // many big graphs: wide layers
    Synth *sy = synth_new(&sc);
    CallGraph g;
    graph_init(&g);
    Layers L;
    layers_init(&L);
    LayerAnswer a, ans;
    answer_init(&a);
    answer_init(&ans);
    TextBuf tb = {0}, out = {0};
    Rng rng;
    rng_seed(&rng, 21);
    int splits = 0, nested = 0, accepted = 0, walks = 0, valid = 0, bad_parts = 0, dead = 0;
    for (int i = 0; i < 400 && splits < 40; i++) {
        synth_graph(sy, i, &g, NULL, NULL, NULL);
        LayerOpts lo = {.split_threshold = 15, .group_max = 5, .rng = &rng};
        char err[200];
        REQUIRE(layers_build(&L, &g, &lo, err, sizeof err));
        for (int li = 0; li < L.n; li++) {
            const Layer *l = &L.v[li];
            if (!l->split) continue;
            const char *edge = edge_local_id(&g.edges[l->parent_edge]);
            Constraint k;
            constrain_init(&k, &l->cond, false, true);
            if (!constrain_set_split(&k, &l->cond, edge)) { nested++; continue; }
            splits++;
            layers_answer(&L, li, &a);
            for (int pad = 0; pad < 2; pad++) {   // the real answer, canonical order
                InstructOpts o;
                instruct_opts_default(&o);
                o.scratchpad = pad;
                o.canonical_order = true;
                tb_clear(&tb);
                instruct_answer(&tb, &l->cond, &a, &o, NULL);
                constrain_init(&k, &l->cond, false, pad);
                constrain_set_split(&k, &l->cond, edge);
                long r = feed_until_complete(&k, tb.p, tb.n);
                if (r > 0 && k.complete) accepted++;
                else if (accepted < 3) {
                    long at = r < 0 ? -r - 1 : (long)tb.n;
                    printf("    split refused at byte %ld: ...%.*s|%.*s\n", at, (int)(at < 80 ? at : 80), tb.p + (at < 80 ? 0 : at - 80),
                           (int)(tb.n - at < 30 ? tb.n - at : 30), tb.p + at);
                }
            }
            for (int w = 0; w < 3; w++) {   // random walks, byte by byte
                constrain_init(&k, &l->cond, false, w != 2);
                constrain_set_split(&k, &l->cond, edge);
                tb_clear(&out);
                walks++;
                for (int step = 0; step < 20000 && !k.complete; step++) {
                    unsigned char ok[256];
                    int n = 0;
                    for (int b = 1; b < 256; b++) {
                        unsigned char ch = (unsigned char)b;
                        if (constrain_try(&k, &ch, 1)) ok[n++] = ch;
                    }
                    if (!n) { dead++; break; }
                    unsigned char ch = ok[rng_below(&rng, (uint64_t)n)];
                    REQUIRE(constrain_feed(&k, &ch, 1));
                    tb_putc(&out, (char)ch);
                }
                if (!k.complete) continue;
                answer_parse(out.p, out.n, &ans, 1);
                char detail[300];
                int code = layer_check(&l->cond, &ans, NULL, detail, sizeof detail);
                if (code == LC_OK && ans.split) valid++;
                else if (valid + 3 > walks) printf("    split walk: code %d %s\n%.*s\n", code, detail, (int)out.n, out.p);
                int64_t cur = 0, next_id = k.first_id;
                for (int b = 0; b < ans.n_subs; b++) {
                    const int64_t *v = ans.subs[b].cond.v;
                    int64_t ne = v[CF_NUM_EDGES], nc = v[CF_NUM_CURRENT_EDGES], ns = v[CF_NUM_SUBGRAPHS], d = v[CF_REMAINING_DEPTH];
                    bool part_ok = nc >= 1 && nc <= 15 && ne >= nc && atoll(ans.subs[b].cond.start_edge_id) == next_id &&
                                   ((ne == nc) == (ns == 0)) && ((ne == nc) == (d == 0)) && (d == 0 || ne - nc >= d + ns - 1);
                    bad_parts += !part_ok;
                    cur += nc;
                    next_id += nc;
                }
                bad_parts += cur != l->cond.v[CF_NUM_CURRENT_EDGES];
            }
        }
    }
    printf("    %d flat split layers (%d nested left free): %d of %d real answers accepted, %d of %d walks valid\n", splits,
           nested, accepted, 2 * splits, valid, walks);
    CHECKF(splits >= 10, "only %d split layers", splits);
    CHECKF(accepted == 2 * splits, "%d of %d real split answers accepted", accepted, 2 * splits);
    CHECKF(valid == walks && dead == 0, "%d of %d split walks valid, %d dead ends", valid, walks, dead);
    CHECKF(bad_parts == 0, "%d parts off the layer's partition", bad_parts);
    tb_free(&tb); tb_free(&out); answer_free(&a); answer_free(&ans); layers_free(&L); graph_free(&g); synth_free(sy);
}

int main(void) {
    RUN(test_destination_rules);
    RUN(test_accepts_synthetic_layers);
    RUN(test_accepts_released_layers);
    RUN(test_random_walk_is_valid);
    RUN(test_random_walk_names);
    RUN(test_random_walk_names_encoded);
    RUN(test_in_number);
    RUN(test_canonical_edges);
    RUN(test_callees_table);
    RUN(test_callees_fit);
    RUN(test_callee_bounds);
    RUN(test_split_layers);
    TEST_END();
}
