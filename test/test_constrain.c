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
                        const char *what) {
    InstructOpts o;
    instruct_opts_default(&o);
    o.scratchpad = pad;
    tb_clear(tb);
    instruct_answer(tb, cond, content, &o, NULL);   // canonical order: the one the automaton takes
    Constraint k;
    constrain_init(&k, cond, root, pad);
    long r = feed_until_complete(&k, tb->p, tb->n);
    if (r < 0 || !k.complete) {
        long at = r < 0 ? -r - 1 : (long)tb->n;
        printf("    %s: refused at byte %ld: ...%.*s|%.*s\n", what, at, (int)(at < 60 ? at : 60), tb->p + (at < 60 ? 0 : at - 60),
               (int)(tb->n - at < 30 ? tb->n - at : 30), tb->p + at);
        return 0;
    }
    return 1;
}

static void test_accepts_synthetic_layers(void) {
    SynthConfig sc;
    synth_config_default(&sc);
    sc.graphs = 300;
    Synth *s = synth_new(&sc);
    CallGraph g;
    graph_init(&g);
    Layers L;
    layers_init(&L);
    LayerAnswer a;
    answer_init(&a);
    TextBuf tb = {0};
    Rng rng;
    rng_seed(&rng, 5);
    int layers = 0, ok = 0;
    for (int i = 0; i < 300; i++) {
        synth_graph(s, i, &g, NULL, NULL, NULL);
        LayerOpts lo = {0};
        char err[200];
        REQUIRE(layers_build(&L, &g, &lo, err, sizeof err));
        for (int li = 0; li < L.n; li++) {
            layers_answer(&L, li, &a);
            for (int pad = 0; pad < 2; pad++) {
                layers++;
                ok += accept_layer(&L.v[li].cond, &a, li == 0, pad, &rng, &tb, pad ? "instruct" : "recursive");
            }
        }
    }
    CHECKF(ok == layers, "%d of %d layer answers accepted", ok, layers);
    tb_free(&tb); answer_free(&a); layers_free(&L); graph_free(&g); synth_free(s);
}

typedef struct { int layers, ok, ids_gap; TextBuf tb; Rng rng; } RealCtx;
static void visit_real(void *ctx, const LayerVisit *v) {
    RealCtx *r = ctx;
    if (v->ans->split || v->in_split) return;
    // the recursive data writes child conditions in full; the root's is the one line
    r->layers++;
    r->ok += accept_layer(v->cond, v->ans, v->root, false, &r->rng, &r->tb, "released");
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
static void test_random_walk_is_valid(void) {
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
    RecursiveOpts ro = {0.9, 0.5, 0};
    char err[200];
    for (int i = 0; i < 200; i++) {
        synth_graph(s, i, &g, NULL, NULL, NULL);
        REQUIRE(recursive_render(&corpus, &g, &ro, &rng, err, sizeof err));
    }
    Bpe tok;
    BpeText t = {(const unsigned char *)corpus.p, corpus.n};
    const char *specials[] = {BPE_EOT, BPE_BOUNDARY};
    bpe_train(&tok, &t, 1, 600, specials, 2, 2, false);
    uint8_t *mask = xmalloc(tok.vocab_size);
    LayerAnswer ans;
    answer_init(&ans);
    TextBuf out = {0};
    int walks = 0, valid = 0, dead = 0;
    for (int i = 0; i < 200 && walks < 80; i++) {
        synth_graph(s, 1000 + i, &g, NULL, NULL, NULL);
        LayerOpts lo = {0};
        REQUIRE(layers_build(&L, &g, &lo, err, sizeof err));
        for (int li = 0; li < L.n && li < 3; li++) {
            const Condition *cond = &L.v[li].cond;
            for (int pad = 0; pad < 2; pad++) {
                Constraint k;
                constrain_init(&k, cond, li == 0, pad);
                tb_clear(&out);
                walks++;
                for (int step = 0; step < 50000 && !k.complete; step++) {
                    int n = constrain_mask(&k, &tok, mask);
                    if (n == 0) { dead++; if (dead < 4) printf("    dead end:\n%.*s\n", (int)(out.n < 400 ? out.n : 400), out.p + (out.n < 400 ? 0 : out.n - 400)); break; }
                    int pick = (int)rng_below(&rng, (uint64_t)n), v = 0;
                    for (;; v++) if (mask[v] && pick-- == 0) break;
                    REQUIRE(constrain_feed(&k, tok.tok[v], tok.tok_len[v]));
                    tb_put(&out, (const char *)tok.tok[v], tok.tok_len[v]);
                }
                if (!k.complete) continue;
                answer_parse(out.p, out.n, &ans, 1);
                char detail[300];
                int code = layer_check(cond, &ans, NULL, detail, sizeof detail);
                if (code == LC_OK) valid++;
                else printf("    walk %d: code %d %s\n%.*s\n", walks, code, detail, (int)out.n, out.p);
            }
        }
    }
    CHECKF(valid == walks && dead == 0, "%d of %d random constrained answers valid (%d dead ends)", valid, walks, dead);
    free(mask); tb_free(&out); tb_free(&corpus); answer_free(&ans); bpe_free(&tok);
    layers_free(&L); graph_free(&g); synth_free(s);
}

int main(void) {
    RUN(test_accepts_synthetic_layers);
    RUN(test_accepts_released_layers);
    RUN(test_random_walk_is_valid);
    TEST_END();
}
