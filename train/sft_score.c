// The instruction-following score (train/sft_score.h) and `tracellm sft-score`.
#include "train/sft_score.h"
#include "data/layers.h"
#include "infer/constrain.h"
#include "infer/engine.h"
#include "infer/sampler.h"
#include "model/checkpoint.h"
#include "util/args.h"
#include "util/json.h"
#include "util/progress.h"
#include "util/rng.h"
#include "util/util.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPLIT_THRESHOLD 15   // as `tracellm shards` builds instruction data

// ---- the held-out set ----

SftEvalSet *sft_evalset_load_opts(const char *path, int n, const Bpe *tok, bool distinct, uint64_t seed) {
    SftEvalSet *s = xcalloc(1, sizeof *s);
    s->v = xcalloc((size_t)n, sizeof *s->v);
    GraphReader r;
    graph_reader_open(&r, path);
    CallGraph g;
    graph_init(&g);
    Layers L;
    layers_init(&L);
    LayerAnswer content;
    answer_init(&content);
    TextBuf prompt = {0};
    TokBuf ids = {0};
    BpeCache *cache = bpe_cache_new();
    int eot = bpe_special_id(tok, BPE_EOT);
    InstructOpts o;
    instruct_opts_default(&o);
    Rng rng;
    rng_seed(&rng, seed);
    char err[300];
    int *cand = NULL, cap = 0;
    while (s->n < n && graph_reader_next_valid(&r, &g)) {
        Rng lr;
        rng_seed(&lr, rng_u64(&rng));
        LayerOpts lo = {.split_threshold = SPLIT_THRESHOLD, .group_max = 5, .rng = &lr};
        if (!layers_build(&L, &g, &lo, err, sizeof err)) fatal("%s:%" PRId64 ": cannot build layers: %s", path, r.lineno, err);
        // one layer per graph, uniformly among the real (non-split) layers: roots and inner layers
        // in the proportion the data has them
        int nc = 0;
        if (cap < L.n) { cap = L.n; cand = xrealloc(cand, (size_t)cap * sizeof *cand); }
        for (int i = 0; i < L.n; i++)
            if (!L.v[i].split) cand[nc++] = i;
        if (!nc) continue;
        int li = cand[rng_below(&rng, (uint64_t)nc)];
        const Layer *l = &L.v[li];
        bool root = li == 0;
        SftItem *it = &s->v[s->n++];
        it->req = l->cond;
        // the root shows what a generation request gives (no caller); inner layers their ten fields
        it->req.present &= root ? ~CF_BIT(CF_CALLER) & ~CF_BIT(CF_DEPTH) : CF_LAYER_FIELDS;
        layers_answer(&L, li, &content);
        PromptSpecial sp;
        memset(&sp, 0, sizeof sp);
        if (distinct && content.n_edges > 0) sp.distinct_max = answer_distinct_destinations(&content);
        it->distinct_max = sp.distinct_max;
        tb_clear(&prompt);
        instruct_prompt(&prompt, &it->req, root, false, &sp, &o, NULL);   // NULL rng: every sentence, canonical order
        ids.n = 0;
        if (eot >= 0) tokbuf_push(&ids, (uint32_t)eot);   // documents start after an end-of-text, as in the shards
        bpe_encode(tok, cache, (const unsigned char *)prompt.p, prompt.n, &ids);
        it->prompt = xmalloc(ids.n * sizeof *it->prompt);
        for (size_t i = 0; i < ids.n; i++) it->prompt[i] = (int32_t)ids.v[i];
        it->prompt_len = (int)ids.n;
        it->line = r.lineno;
        it->layer = li;
    }
    graph_reader_close(&r);
    if (s->n == 0) fatal("%s: no call graph with a layer to score", path);
    free(cand);
    free(ids.v);
    tb_free(&prompt);
    bpe_cache_free(cache);
    answer_free(&content);
    layers_free(&L);
    graph_free(&g);
    return s;
}

SftEvalSet *sft_evalset_load(const char *path, int n, const Bpe *tok) { return sft_evalset_load_opts(path, n, tok, false, 1); }

void sft_evalset_free(SftEvalSet *s) {
    for (int i = 0; i < s->n; i++) free(s->v[i].prompt);
    free(s->v);
    free(s);
}

// ---- judging one answer ----

void sft_judge(const Condition *req, int distinct_max, const char *text, size_t n, LayerAnswer *a, SftVerdict *v) {
    memset(v, 0, sizeof *v);
    // partial credit that moves before whole layers do: how many edge lines are well-formed
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(text + i, '\n', n - i);
        size_t len = nl ? (size_t)(nl - text - i) : n - i;
        if (len && text[i] == '(') {
            FEdge e;
            char err[200];
            v->edge_lines++;
            v->edge_lines_ok += edge_parse(text + i, len, &e, EF_LAYER, err, sizeof err) == 1 && e.present == EF_LAYER;
        }
        i += len + 1;
    }
    answer_clear(a);
    // an answer cut off by the token limit is not a layer, however well it started: it must end
    // with a terminator (the stop strings are kept in the text)
    v->parsed = answer_parse(text, n, a, 1) == ANS_OK && a->terminated;
    if (!v->parsed || a->split) {
        v->parsed = false;
        v->code = LC_PARSE;
        return;
    }
    int64_t total = a->n_edges;
    bool subs_complete = true;
    for (int i = 0; i < a->n_subs; i++) {
        if (cond_has(&a->subs[i].cond, CF_NUM_EDGES)) total += a->subs[i].cond.v[CF_NUM_EDGES];
        else subs_complete = false;
    }
    v->counts = (!cond_has(req, CF_NUM_CURRENT_EDGES) || a->n_edges == req->v[CF_NUM_CURRENT_EDGES]) &&
                (!cond_has(req, CF_NUM_SUBGRAPHS) || a->n_subs == req->v[CF_NUM_SUBGRAPHS]) &&
                (!cond_has(req, CF_NUM_EDGES) || (subs_complete && total == req->v[CF_NUM_EDGES]));
    char detail[320];
    v->code = layer_check(req, a, NULL, detail, sizeof detail);
    v->valid = v->code == LC_OK;
    v->distinct = answer_distinct_destinations(a);
    v->distinct_ok = distinct_max > 0 && v->distinct <= distinct_max;
}

void sft_score_add(SftScore *s, const SftItem *it, const SftVerdict *v) {
    s->n++;
    s->parsed += v->parsed;
    s->counts += v->counts;
    s->valid += v->valid;
    s->ok += v->parsed && v->counts && v->valid;
    if (it->distinct_max > 0) {
        s->distinct_asked++;
        s->distinct_ok += v->parsed && v->distinct_ok;
        s->distinct_exact += v->parsed && v->distinct == it->distinct_max;
        if (cond_has(&it->req, CF_NUM_CURRENT_EDGES) && it->distinct_max < it->req.v[CF_NUM_CURRENT_EDGES]) {
            s->distinct_tight++;
            s->distinct_tight_ok += v->parsed && v->distinct_ok;
        }
    }
    s->first_code[v->code & 31]++;
    s->edge_lines += v->edge_lines;
    s->edge_lines_ok += v->edge_lines_ok;
}

void sft_score_line(const SftScore *s, char *out, size_t n) {
    int k = snprintf(out, n, "score %.3f (%d/%d) | parsed %.3f | counts %.3f | valid %.3f", sft_share(s, s->ok), s->ok, s->n,
                     sft_share(s, s->parsed), sft_share(s, s->counts), sft_share(s, s->valid));
    if (s->distinct_asked && k > 0 && (size_t)k < n)
        k += snprintf(out + k, n - (size_t)k, " | distinct-bound kept %.3f (%d/%d), exactly K %.3f", (double)s->distinct_ok / s->distinct_asked,
                      s->distinct_ok, s->distinct_asked, (double)s->distinct_exact / s->distinct_asked);
    if (s->distinct_tight && k > 0 && (size_t)k < n)
        k += snprintf(out + k, n - (size_t)k, ", tight bounds %.3f (%d/%d)", (double)s->distinct_tight_ok / s->distinct_tight,
                      s->distinct_tight_ok, s->distinct_tight);
    if (s->edge_lines && k > 0 && (size_t)k < n)
        k += snprintf(out + k, n - (size_t)k, " | edge lines well-formed %.3f (%" PRId64 "/%" PRId64 ")",
                      (double)s->edge_lines_ok / (double)s->edge_lines, s->edge_lines_ok, s->edge_lines);
    if (s->too_long && k > 0 && (size_t)k < n) snprintf(out + k, n - (size_t)k, " | %d prompts longer than the context", s->too_long);
}

// ---- answering through the engine ----

typedef struct {
    const Bpe *tok;
    StopSet stops;
    TextBuf *text;   // [n items]
    Constraint *con; // [n items] with --constrained, else NULL
    uint8_t *mask;   // (V,)
} Run;

static const char *STOPS[] = {"</layer>", "</split>", "finish generation", "##"};

static const uint8_t *on_mask(void *ctx, EngineSeq *s) {
    Run *r = ctx;
    Constraint *k = r->con ? &r->con[(intptr_t)s->req.user] : NULL;
    if (!k || !k->active) return NULL;
    constrain_mask(k, r->tok, r->mask);
    return r->mask;
}

static bool on_token(void *ctx, EngineSeq *s, int t) {
    Run *r = ctx;
    TextBuf *b = &r->text[(intptr_t)s->req.user];
    size_t n = r->tok->tok_len[t];
    tb_put(b, (const char *)r->tok->tok[t], n);
    Constraint *k = r->con ? &r->con[(intptr_t)s->req.user] : NULL;
    if (k && k->active) {
        // the mask let only what the automaton accepts through: the answer ends when it is complete
        if (!constrain_feed(k, r->tok->tok[t], n)) fatal("internal: constrained decoding accepted a token its automaton rejects");
        return k->complete;
    }
    int which;
    long at = stop_find(&r->stops, b->p, (long)b->n, (long)n, &which);
    if (at < 0) return false;
    b->n = (size_t)at + strlen(STOPS[which]);   // the parser reads the terminator
    return true;
}
static void on_finish(void *ctx, EngineSeq *s, FinishReason why) {}

void sft_score_model(GPT *m, const Bpe *tok, const SftEvalSet *set, int max_tokens, SftScore *out, FILE *answers, bool progress) {
    sft_score_model_ex(m, tok, set, max_tokens, false, out, answers, progress);
}

void sft_score_model_ex(GPT *m, const Bpe *tok, const SftEvalSet *set, int max_tokens, bool constrained, SftScore *out,
                        FILE *answers, bool progress) {
    memset(out, 0, sizeof *out);
    Run r = {.tok = tok, .text = xcalloc((size_t)set->n, sizeof(TextBuf))};
    if (constrained) {
        r.con = xcalloc((size_t)set->n, sizeof *r.con);
        r.mask = xmalloc((size_t)tok->vocab_size);
        for (int i = 0; i < set->n; i++) constrain_init(&r.con[i], &set->v[i].req, set->v[i].layer == 0, true);
    }
    stopset_init(&r.stops, STOPS, 4);
    EngineConfig ec;
    engine_config_default(&ec);
    ec.batch = set->n < 16 ? set->n : 16;
    ec.prefix_slots = 0;
    ec.eot = bpe_special_id(tok, BPE_EOT);
    ec.sampling = (SamplerConfig){.temperature = 0.0f, .top_k = 0, .top_p = 1.0f};   // greedy: one answer per model
    EngineHooks hooks = {.mask = constrained ? on_mask : NULL, .token = on_token, .finish = on_finish, .ctx = &r};
    Engine e;
    engine_init(&e, m, &ec, &hooks);
    int ctx = m->cfg.max_seq_len;
    bool *skipped = xcalloc((size_t)set->n, sizeof *skipped);
    for (int i = 0; i < set->n; i++) {
        const SftItem *it = &set->v[i];
        int room = ctx - it->prompt_len;
        if (room < 1) { skipped[i] = true; continue; }
        EngineRequest q = {.id = (uint64_t)i, .prompt = it->prompt, .prompt_len = it->prompt_len,
                           .max_tokens = room < max_tokens ? room : max_tokens, .user = (void *)(intptr_t)i};
        engine_submit(&e, &q);
    }
    Progress pg;
    if (progress) progress_start(&pg, "sft score", "layers", set->n);
    while (engine_step(&e))
        if (progress) progress_update(&pg, (double)e.requests_done, 0, -1);
    if (progress) progress_end(&pg, (double)e.requests_done, 0);
    engine_free(&e);
    LayerAnswer a;
    answer_init(&a);
    for (int i = 0; i < set->n; i++) {
        SftVerdict v;
        if (skipped[i]) {
            memset(&v, 0, sizeof v);
            v.code = LC_PARSE;
            out->too_long++;
        } else {
            sft_judge(&set->v[i].req, set->v[i].distinct_max, r.text[i].p ? r.text[i].p : "", r.text[i].n, &a, &v);
        }
        sft_score_add(out, &set->v[i], &v);
        if (answers) {
            tb_putc(&r.text[i], 0);
            fprintf(answers, "{\"line\":%" PRId64 ",\"layer\":%d,\"parsed\":%s,\"counts\":%s,\"valid\":%s,\"code\":%d,",
                    set->v[i].line, set->v[i].layer, v.parsed ? "true" : "false", v.counts ? "true" : "false",
                    v.valid ? "true" : "false", v.code);
            if (set->v[i].distinct_max > 0)
                fprintf(answers, "\"distinct_max\":%d,\"num_current_edges\":%" PRId64 ",\"distinct\":%d,", set->v[i].distinct_max,
                        set->v[i].req.v[CF_NUM_CURRENT_EDGES], v.parsed ? v.distinct : -1);
            fprintf(answers, "\"answer\":");
            json_write_string(answers, r.text[i].p);
            fprintf(answers, "}\n");
        }
        tb_free(&r.text[i]);
    }
    answer_free(&a);
    free(skipped);
    free(r.text);
    free(r.con);
    free(r.mask);
}

// ---- tracellm sft-score ----

static int sft_score_main(int argc, char **argv) {
    const char *model = NULL, *graphs = NULL, *tok_path = NULL, *json = NULL, *device = "cpu", *answers = NULL;
    int n = 200, max_tokens = 512, threads = 0;
    int64_t seed = 1;
    bool distinct = false, constrained = false;
    Opt opts[] = {
        {"--model", OPT_STR, &model, "RUN", "run directory (RUN/model.bin) or a model.bin file: pretrained or SFT", true},
        {"--graphs", OPT_STR, &graphs, "FILE", "held-out graphs JSONL (e.g. prepared/val.jsonl): one layer is drawn per graph", true},
        {"--tokenizer", OPT_STR, &tok_path, "FILE", "the tokenizer the model was trained with (checked)", true},
        {"-n", OPT_INT, &n, "N", "layers to score", false},
        {"--max-tokens", OPT_INT, &max_tokens, "N", "generated tokens per answer at most", false},
        {"--distinct", OPT_FLAG, &distinct, NULL, "add the docs/SFT.md worked example 'Call at most K distinct microservices "
                                                   "in this layer' to every prompt and score it", false},
        {"--constrained", OPT_FLAG, &constrained, NULL, "decode through infer/constrain.h: grammar and counts are enforced, so "
                                                         "the score shows what the constraint leaves to the model (e.g. --distinct)", false},
        {"--seed", OPT_I64, &seed, "S", "which layer of each graph is drawn", false},
        {"--json", OPT_STR, &json, "FILE", "also write the score as JSON", false},
        {"--answers", OPT_STR, &answers, "FILE", "write every generated answer with its verdict (JSONL)", false},
        {"--threads", OPT_INT, &threads, "N", "CPU threads (0 = all)", false},
        {"--device", OPT_STR, &device, "NAME", "backend: cpu; with nvcc also cuda (bf16 mixed precision) and cuda-fp32", false},
    };
    args_parse(argc, argv, "tracellm sft score --model RUN --graphs val.jsonl --tokenizer tok.bin [-n 200]",
               "Instruction following of a model (train/sft_score.h): one layer per held-out graph, its full instruction\n"
               "prompt answered greedily; prints the share that parses, matches the requested counts and passes\n"
               "layer_check. Works for pretrained and instruction-tuned runs alike (before/after SFT).",
               opts, sizeof opts / sizeof opts[0], NULL);
    if (n < 1 || max_tokens < 1) fatal("-n and --max-tokens must be >= 1");
    const Backend *be = backend_get(device);
    if (!be) fatal("--device %s: not built into this binary", device);
    be->set_threads(threads);
    char path[4200], err[8192];
    if (path_is_dir(model)) snprintf(path, sizeof path, "%s/model.bin", model);
    else snprintf(path, sizeof path, "%s", model);
    GPT m;
    CkptHeader h;
    if (!checkpoint_load_model(path, &m, be, &h, err, sizeof err)) fatal("%s", err);
    Bpe tok;
    bpe_load(&tok, tok_path);
    if (tok.fingerprint != h.tokenizer_fingerprint || tok.vocab_size != m.cfg.vocab_size)
        fatal("tokenizer mismatch: %s was trained with tokenizer %016" PRIx64 " (vocab %d), %s is %016" PRIx64 " (vocab %d)", path,
              h.tokenizer_fingerprint, m.cfg.vocab_size, tok_path, tok.fingerprint, tok.vocab_size);
    SftEvalSet *set = sft_evalset_load_opts(graphs, n, &tok, distinct, (uint64_t)seed);
    double t0 = now_seconds();
    SftScore sc;
    OutFile *ao = answers ? out_open(answers) : NULL;
    sft_score_model_ex(&m, &tok, set, max_tokens, constrained, &sc, ao ? ao->f : NULL, true);
    if (ao) out_close(ao);
    double dt = now_seconds() - t0;
    char line[512];
    sft_score_line(&sc, line, sizeof line);
    printf("sft score %s: %s\n", model, line);
    fprintf(stderr, "sft score: %d layers in %.1f s (%.1f layers/s)\n", sc.n, dt, sc.n / (dt > 0 ? dt : 1e-9));
    if (sc.n > sc.ok) {
        fprintf(stderr, "sft score: first layer_check code of the failing layers:");
        for (int c = 1; c < 32; c++)
            if (sc.first_code[c]) fprintf(stderr, " %s(%d)=%d", layer_check_name(c), c, sc.first_code[c]);
        fprintf(stderr, "\n");
    }
    if (json) {
        OutFile *o = out_open(json);
        fprintf(o->f, "{\"model\":");
        json_write_string(o->f, model);
        fprintf(o->f, ",\"layers\":%d,\"score\":%.6g,\"parsed\":%.6g,\"counts\":%.6g,\"valid\":%.6g", sc.n,
                sft_share(&sc, sc.ok), sft_share(&sc, sc.parsed), sft_share(&sc, sc.counts), sft_share(&sc, sc.valid));
        if (sc.distinct_asked)
            fprintf(o->f, ",\"distinct_asked\":%d,\"distinct_kept\":%d,\"distinct_exact\":%d,\"distinct_tight\":%d,\"distinct_tight_kept\":%d",
                    sc.distinct_asked, sc.distinct_ok, sc.distinct_exact, sc.distinct_tight, sc.distinct_tight_ok);
        fprintf(o->f, ",\"edge_lines\":%" PRId64 ",\"edge_lines_ok\":%" PRId64 ",\"too_long\":%d}\n", sc.edge_lines,
                sc.edge_lines_ok, sc.too_long);
        out_close(o);
    }
    sft_evalset_free(set);
    bpe_free(&tok);
    gpt_free(&m);
    return 0;
}

// ---- tracellm sft: score | data ----
int sft_data_main(int argc, char **argv);   // train/sft_data.c

int cmd_sft(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "score")) return sft_score_main(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "data")) return sft_data_main(argc - 1, argv + 1);
    FILE *f = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) ? stdout : stderr;
    fprintf(f, "usage: tracellm sft score|data [options]   (tracellm sft score --help)\n"
               "  score  instruction following of a pretrained or SFT run on held-out graphs (docs/SFT.md)\n"
               "  data   instruction samples as text, with the paper's templates and optional new ones (docs/SFT.md)\n"
               "Training itself is `tracellm train --sft --init PRETRAINED_RUN --data SHARDS ...`.\n");
    if (f == stdout) return 0;
    if (argc >= 2) fprintf(stderr, "tracellm sft: unknown subcommand '%s'\n", argv[1]);
    return 2;
}
