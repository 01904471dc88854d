// `tracellm generate`: call graphs from a trained model, recursively (one request per layer) or
// in the tabular baseline format, through the batched KV-cache engine. Writes graphs JSONL (with
// the request and the checks of each graph) and optionally Alibaba v2022 CallGraph CSV rows.
#include "data/format.h"
#include "data/graph.h"
#include "data/layers.h"
#include "infer/generate.h"
#include "infer/harness.h"
#include "model/checkpoint.h"
#include "util/args.h"
#include "util/json.h"
#include "util/progress.h"
#include "util/rng.h"
#include "util/util.h"
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *model, *tokenizer, *format, *service, *include_edge, *prompts, *from_graphs, *out, *csv, *constrained,
        *device, *summary, *names, *callees, *callee_bounds, *split,
        *number_temperature;   // a string: absent means "as --temperature", which no number can say
    int64_t n, num_edges, depth, latency, seed;
    bool high_latency, naive, valid_only, canonical;
    double temperature, top_p;
    int top_k, batch, retries, max_tokens, ctx, prefix_slots, chunk, threads, best_of;
} GenOpts;

// ---- root conditions ----

static bool parse_include(const char *s, PromptSpecial *sp, char *err, size_t errlen) {
    const char *a = strchr(s, ','), *b = a ? strchr(a + 1, ',') : NULL;
    if (!a || !b || a == s || b == a + 1 || !b[1] || strchr(b + 1, ',')) { snprintf(err, errlen, "include edge '%s' is not SRC,DST,TYPE", s); return false; }
    int t = rpc_type_parse(b + 1, strlen(b + 1));
    if (t < 0) { snprintf(err, errlen, "include edge '%s': unknown type '%s'", s, b + 1); return false; }
    if ((size_t)(a - s) >= FMT_NAME_MAX || (size_t)(b - a - 1) >= FMT_NAME_MAX) { snprintf(err, errlen, "include edge '%s': name too long", s); return false; }
    sp->include = true;
    snprintf(sp->inc_src, sizeof sp->inc_src, "%.*s", (int)(a - s), s);
    snprintf(sp->inc_dst, sizeof sp->inc_dst, "%.*s", (int)(b - a - 1), a + 1);
    sp->inc_type = t;
    return true;
}

static void apply_high_latency(GraphSpec *s) {
    // "Build a call graph with high latency": the numeric latency is left out (PAPER.md §3)
    s->special.high_latency = true;
    s->cond.present &= ~CF_BIT(CF_LATENCY);
    s->want_latency = -1;
}

// A condition line as the paper's prompts give it: "### Question: [GENERATE GRAPH]k:v/k:v".
static bool spec_from_condition(GraphSpec *s, const char *line, size_t n, char *err, size_t errlen) {
    while (n && (line[n - 1] == '\r' || line[n - 1] == ' ')) n--;
    static const char q[] = "### Question:", gg[] = "[GENERATE GRAPH]";
    if (n >= sizeof q - 1 && !memcmp(line, q, sizeof q - 1)) { line += sizeof q - 1; n -= sizeof q - 1; }
    while (n && *line == ' ') { line++; n--; }
    if (n >= sizeof gg - 1 && !memcmp(line, gg, sizeof gg - 1)) { line += sizeof gg - 1; n -= sizeof gg - 1; }
    Condition c;
    if (!cond_parse(line, n, &c, err, errlen)) return false;
    if (!cond_has(&c, CF_ID)) { snprintf(err, errlen, "the condition has no 'id' (service)"); return false; }
    int64_t depth = cond_has(&c, CF_DEPTH) ? c.v[CF_DEPTH] : cond_has(&c, CF_REMAINING_DEPTH) ? c.v[CF_REMAINING_DEPTH] + 1 : -1;
    graph_spec_make(s, c.id, cond_has(&c, CF_NUM_EDGES) ? c.v[CF_NUM_EDGES] : -1, depth,
                    cond_has(&c, CF_LATENCY) ? c.v[CF_LATENCY] : -1);
    // keep what the prompt said exactly (e.g. a start_communication_at other than 0)
    for (int f = 0; f < CF_NFIELDS; f++)
        if (f != CF_DEPTH && cond_has(&c, f)) {
            if (f == CF_ID || f == CF_START_NODE || f == CF_CALLER || f == CF_START_EDGE_ID)
                cond_set_str(&s->cond, f, f == CF_ID ? c.id : f == CF_START_NODE ? c.start_node : f == CF_CALLER ? c.caller : c.start_edge_id);
            else cond_set_num(&s->cond, f, c.v[f]);
        }
    return true;
}

static bool spec_from_json(GraphSpec *s, const char *line, size_t n, char *err, size_t errlen) {
    Json *j = json_parse(line, n, err, errlen);
    if (!j) return false;
    bool ok = false;
    int64_t v[3] = {-1, -1, -1};
    const char *keys[3] = {"num_edges", "depth", "latency"};
    Json *svc = json_get(j, "service"), *hl = json_get(j, "high_latency"), *inc = json_get(j, "include_edge");
    if (j->type != JSON_OBJECT) { snprintf(err, errlen, "expected a JSON object"); goto done; }
    for (Json *m = j->child; m; m = m->next) {
        bool known = !strcmp(m->key, "service") || !strcmp(m->key, "high_latency") || !strcmp(m->key, "include_edge");
        for (int k = 0; k < 3; k++) known |= !strcmp(m->key, keys[k]);
        if (!known) { snprintf(err, errlen, "unknown key \"%s\" (expected service, num_edges, depth, latency, high_latency, include_edge)", m->key); goto done; }
    }
    if (!svc || svc->type != JSON_STRING || !svc->str[0] || strlen(svc->str) >= FMT_NAME_MAX) { snprintf(err, errlen, "missing string \"service\""); goto done; }
    for (int k = 0; k < 3; k++) {
        Json *x = json_get(j, keys[k]);
        if (!x || x->type == JSON_NULL) continue;
        if (!json_int(x, &v[k]) || v[k] < (k == 2 ? 0 : 1)) { snprintf(err, errlen, "\"%s\" must be a %s integer", keys[k], k == 2 ? "non-negative" : "positive"); goto done; }
    }
    graph_spec_make(s, svc->str, v[0], v[1], v[2]);
    if (hl && hl->type != JSON_NULL) {
        if (hl->type != JSON_BOOL) { snprintf(err, errlen, "\"high_latency\" must be true or false"); goto done; }
        if (hl->b) apply_high_latency(s);
    }
    if (inc && inc->type != JSON_NULL) {
        char buf[3 * FMT_NAME_MAX + 8];
        if (inc->type == JSON_STRING) snprintf(buf, sizeof buf, "%s", inc->str);
        else if (inc->type == JSON_ARRAY && inc->n == 3 && json_at(inc, 0)->type == JSON_STRING && json_at(inc, 1)->type == JSON_STRING && json_at(inc, 2)->type == JSON_STRING)
            snprintf(buf, sizeof buf, "%s,%s,%s", json_at(inc, 0)->str, json_at(inc, 1)->str, json_at(inc, 2)->str);
        else { snprintf(err, errlen, "\"include_edge\" must be \"SRC,DST,TYPE\" or [SRC, DST, TYPE]"); goto done; }
        if (!parse_include(buf, &s->special, err, errlen)) goto done;
    }
    ok = true;
done:
    json_free(j);
    return ok;
}

// Reads a prompts file: JSONL root conditions, or the paper's "### Question: COND" / bare COND lines.
static int load_prompts(const char *path, GraphSpec **out) {
    size_t len;
    char *buf = read_file(path, &len);
    int n = 0, cap = 0, lineno = 0;
    GraphSpec *v = NULL;
    for (size_t pos = 0; pos < len;) {
        char *nl = memchr(buf + pos, '\n', len - pos);
        size_t n_line = nl ? (size_t)(nl - (buf + pos)) : len - pos;
        const char *line = buf + pos;
        pos += n_line + 1;
        lineno++;
        size_t k = 0;
        while (k < n_line && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r')) k++;
        if (k == n_line) continue;
        if (n == cap) { cap = cap ? 2 * cap : 64; v = xrealloc(v, cap * sizeof *v); }
        char err[400];
        bool ok = line[k] == '{' ? spec_from_json(&v[n], line + k, n_line - k, err, sizeof err)
                                 : spec_from_condition(&v[n], line + k, n_line - k, err, sizeof err);
        if (!ok) fatal("%s:%d: %s", path, lineno, err);
        n++;
    }
    free(buf);
    if (n == 0) fatal("%s: no prompts in the file", path);
    *out = v;
    return n;
}

// ---- the training corpus as root conditions (RUN/conditions.jsonl, `train --corpus`) ----

void gen_conditions_path(const char *model, char *buf, size_t n) {
    if (path_is_dir(model)) snprintf(buf, n, "%s/conditions.jsonl", model);
    else {
        const char *slash = strrchr(model, '/');
        snprintf(buf, n, "%.*s/conditions.jsonl", slash ? (int)(slash - model) : 1, slash ? model : ".");
    }
}

int gen_load_conditions(const char *path, const char *only_service, CondRecord **out) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fclose(f);
    size_t len;
    char *buf = read_file(path, &len);
    int n = 0, cap = 0, lineno = 0;
    CondRecord *v = NULL;
    const char *keys[3] = {"num_edges", "depth", "latency"};
    for (size_t pos = 0; pos < len;) {
        char *nl = memchr(buf + pos, '\n', len - pos);
        size_t n_line = nl ? (size_t)(nl - (buf + pos)) : len - pos;
        const char *line = buf + pos;
        pos += n_line + 1;
        lineno++;
        if (n_line == 0) continue;
        char err[300];
        Json *j = json_parse(line, n_line, err, sizeof err);
        if (!j) fatal("%s:%d: %s", path, lineno, err);
        Json *svc = json_get(j, "service");
        if (!svc || svc->type != JSON_STRING || strlen(svc->str) >= FMT_NAME_MAX) fatal("%s:%d: missing string \"service\"", path, lineno);
        if (!only_service || !strcmp(only_service, svc->str)) {
            if (n == cap) { cap = cap ? 2 * cap : 256; v = xrealloc(v, cap * sizeof *v); }
            snprintf(v[n].service, sizeof v[n].service, "%s", svc->str);
            for (int k = 0; k < 3; k++)
                if (!json_int(json_get(j, keys[k]), &v[n].v[k])) fatal("%s:%d: missing integer \"%s\"", path, lineno, keys[k]);
            n++;
        }
        json_free(j);
    }
    free(buf);
    *out = v;
    return n;
}

// ---- the microservice names destinations may take (--names) ----

// From a graphs JSONL (every src and dst but USER) or a stats.json with a "microservices" list.
void gen_load_names(const char *path, ConNames *s, const Bpe *tok) {
    // the first line tells a stats.json ({"format":"tracellm-stats",...) from a graphs JSONL
    FILE *f = fopen(path, "rb");
    if (!f) fatal("%s: cannot open: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    bool is_stats = getline(&line, &cap, f) > 0 && strstr(line, "\"tracellm-stats\"");
    free(line);
    fclose(f);
    int skipped = 0;
    con_names_init(s);
    if (is_stats) {
        // stats.json: its rare communications are not every name, so only an explicit list will do
        size_t len;
        char *buf = read_file(path, &len);
        char err[300];
        Json *j = json_parse(buf, len, err, sizeof err);
        if (!j) fatal("%s: %s", path, err);
        Json *ms = json_get(j, "microservices");
        if (!ms || ms->type != JSON_ARRAY)
            fatal("%s: this stats.json has no \"microservices\" list (its rare communications name only some "
                  "microservices); give --names the graphs JSONL it was built from (train.jsonl)", path);
        for (int i = 0; i < ms->n; i++) {
            Json *x = json_at(ms, i);
            if (x->type != JSON_STRING) fatal("%s: microservices[%d] is not a string", path, i);
            if (strcmp(x->str, "USER") && !con_names_add(s, x->str)) skipped++;
        }
        json_free(j);
        free(buf);
    } else {
        CallGraph *gs;
        int n = graphs_load(path, &gs);
        for (int i = 0; i < n; i++)
            for (int e = 0; e < gs[i].n; e++) {
                const char *nm[2] = {gs[i].edges[e].src, gs[i].edges[e].dst};
                for (int t = 0; t < 2; t++)
                    if (strcmp(nm[t], "USER") && !con_names_add(s, nm[t])) skipped++;
            }
        graphs_free(gs, n);
    }
    con_names_finish(s);
    con_names_encode(s, tok);
    if (s->n == 0) fatal("%s: no microservice names (every src/dst but USER) to constrain destinations to", path);
    fprintf(stderr, "generate: %d microservice names from %s (longest %d)", s->n, path, s->max_len);
    if (skipped) fprintf(stderr, "; %d occurrences of names outside [A-Za-z0-9_] left out", skipped);
    fputc('\n', stderr);
}

// ---- outputs ----

typedef struct {
    OutFile *out, *csv;
    bool valid_only;
    int64_t written, tokens;
    int examples;                 // failures shown on stderr
    Progress prog;
    int64_t total;
    Engine *e;
} Sink;

static void write_csv_rows(FILE *f, const GraphResult *r) {
    const CallGraph *g = r->g;
    for (int i = 0; i < g->n; i++) {
        const Edge *e = &g->edges[i];
        // v2022 CallGraph: timestamp,traceid,service,rpc_id,rpctype,um,uminstanceid,interface,dm,dminstanceid,rt
        fprintf(f, "%" PRId64 ",T_%" PRId64 ",%s,%s,%s,%s,UNAVAILABLE,UNKNOWN,%s,UNAVAILABLE,%" PRId64 "\n", e->start_ms,
                r->index, g->service, e->rpc_id, rpc_type_name(e->type), e->src, e->dst, e->rt_ms);
    }
}

static void num_or_null(FILE *f, const char *key, int64_t v) {
    if (v >= 0) fprintf(f, "\"%s\":%" PRId64, key, v);
    else fprintf(f, "\"%s\":null", key);
}

// The request and the checks, appended inside a graph's JSON object: eval scores them.
static void write_request_and_check(FILE *f, const GraphResult *r) {
    const GraphSpec *sp = r->spec;
    fputs(",\"request\":{\"service\":", f);
    json_write_string(f, sp->cond.id);
    fputc(',', f); num_or_null(f, "num_edges", sp->want_edges);
    fputc(',', f); num_or_null(f, "depth", sp->want_depth);
    fputc(',', f); num_or_null(f, "latency", sp->want_latency);
    fprintf(f, ",\"high_latency\":%s", sp->special.high_latency ? "true" : "false");
    if (sp->special.include) {
        fputs(",\"include_edge\":[", f);
        json_write_string(f, sp->special.inc_src); fputc(',', f);
        json_write_string(f, sp->special.inc_dst);
        fprintf(f, ",\"%s\"]", rpc_type_name(sp->special.inc_type));
    }
    fprintf(f, "},\"check\":{\"assembled\":%s,\"valid\":%s,\"match\":%s,\"graph\":\"%s\",\"layer_error\":%d,\"layer_error_name\":\"%s\",\"layers\":%d,\"requests\":%d",
            r->assembled ? "true" : "false", r->valid ? "true" : "false", r->match ? "true" : "false",
            r->assembled ? graph_check_name(r->graph_check) : "not_assembled", r->first_error, layer_check_name(r->first_error),
            r->layers, r->requests);
    // --best-of: which sample was kept and its log-likelihood (nats)
    if (r->samples > 1) fprintf(f, ",\"samples\":%d,\"kept\":%d,\"logprob\":%.3f", r->samples, r->candidate, r->logprob);
    fputs("}}\n", f);
}

void gen_write_result(FILE *f, const GraphResult *r) {
    char tid[32];
    snprintf(tid, sizeof tid, "T_%" PRId64, r->index);
    if (r->assembled) {
        char *buf = NULL;
        size_t blen = 0;
        FILE *m = open_memstream(&buf, &blen);
        CallGraph g = *r->g;
        g.trace_id = tid;
        graph_write_json(m, &g);
        fclose(m);
        // graph_write_json ends with "]}\n": add the request and the checks inside the object
        if (blen < 2) fatal("internal: empty graph line");
        fwrite(buf, 1, blen - 2, f);
        free(buf);
    } else {
        fputs("{\"trace_id\":", f);
        json_write_string(f, tid);
        fputs(",\"service\":", f);
        json_write_string(f, r->spec->cond.id);
        fputs(",\"edges\":[]", f);
    }
    write_request_and_check(f, r);
}

// Every request gets a line, in request order: an assembled graph, or (unless --valid-only) a line
// with no edges for a request that could not be answered, so that validity and match rates
// computed from the file count the failures too.
static void sink_graph(void *ctx, const GraphResult *r) {
    Sink *s = ctx;
    if (r->assembled ? r->valid || !s->valid_only : !s->valid_only) {
        gen_write_result(s->out->f, r);
        if (r->assembled && s->csv) write_csv_rows(s->csv->f, r);
        s->written++;
    }
    if ((!r->assembled || !r->valid) && s->examples < 3) {
        s->examples++;
        fprintf(stderr, "generate: graph %" PRId64 " %s: %s\n", r->index, r->assembled ? "is not valid" : "was not assembled",
                r->detail[0] ? r->detail : graph_check_name(r->graph_check));
    }
    progress_update(&s->prog, (double)r->index + 1, 0, -1);
}

// ---- observed callees (--callees) ----

void gen_load_callees(const char *path, ConCallees *entries, ConCallees *calls, const Bpe *tok) {
    con_callees_init(entries);
    con_callees_init(calls);
    CallGraph *gs;
    int n = graphs_load(path, &gs), skipped = 0, unsized = 0;
    Layers L;
    layers_init(&L);
    for (int i = 0; i < n; i++) {
        // the edges under each call (Layers.sub) need a sorted, valid graph; an invalid one still
        // gives its callees, with their bounds unknown
        graph_sort(&gs[i]);
        char err[256];
        LayerOpts lo = {.split_threshold = 0};
        bool sized = layers_build(&L, &gs[i], &lo, err, sizeof err);   // validates first
        unsized += !sized;
        for (int e = 0; e < gs[i].n; e++) {
            const Edge *x = &gs[i].edges[e];
            int64_t below = sized ? L.sub[e] : -1, rt = sized ? x->rt_ms : -1;
            bool root = !strchr(x->rpc_id, '.');
            if (root && gs[i].service && gs[i].service[0] && !con_callees_add(entries, gs[i].service, x->dst, x->type, below, rt)) skipped++;
            if (!con_callees_add(calls, x->src, x->dst, x->type, below, rt)) skipped++;
        }
    }
    layers_free(&L);
    graphs_free(gs, n);
    con_callees_finish(entries);
    con_callees_finish(calls);
    con_callees_encode(entries, tok);
    con_callees_encode(calls, tok);
    if (calls->n == 0) fatal("%s: no calls to take callees from", path);
    fprintf(stderr, "generate: callees of %d services' roots and %d callers from %s", entries->n, calls->n, path);
    if (skipped) fprintf(stderr, "; %d calls to names outside [A-Za-z0-9_] left out", skipped);
    if (unsized) fprintf(stderr, "; %d graphs not valid (their calls' bounds unknown)", unsized);
    fputc('\n', stderr);
}

void gen_load_model(const char *model, const char *tokenizer, const Backend *be, GPT *m, Bpe *tok) {
    char path[4096];
    if (path_is_dir(model)) snprintf(path, sizeof path, "%s/model.bin", model);
    else snprintf(path, sizeof path, "%s", model);
    CkptHeader hdr;
    char err[512];
    if (!checkpoint_load_model(path, m, be, &hdr, err, sizeof err)) fatal("%s", err);
    bpe_load(tok, tokenizer);
    if (tok->fingerprint != hdr.tokenizer_fingerprint)
        fatal("tokenizer mismatch: %s has fingerprint %016" PRIx64 " but %s was trained with %016" PRIx64, tokenizer,
              tok->fingerprint, path, hdr.tokenizer_fingerprint);
}

// ---- the command ----

int cmd_generate(int argc, char **argv) {
    GenOpts o = {.format = "instruct", .constrained = "on", .callee_bounds = "on", .split = "auto", .device = "cpu", .n = 0, .num_edges = -1, .depth = -1,
                 .latency = -1, .seed = 1, .temperature = 0.8, .top_k = 50, .top_p = 1.0, .batch = 64, .retries = 2,
                 .best_of = 1, .max_tokens = 2048, .prefix_slots = 4, .chunk = 512};
    Opt opts[] = {
        {"--model", OPT_STR, &o.model, "RUN", "run directory of tracellm train (RUN/model.bin) or a model.bin file", true},
        {"--tokenizer", OPT_STR, &o.tokenizer, "PATH", "the tokenizer the model was trained with (checked by fingerprint)", true},
        {"--format", OPT_STR, &o.format, "NAME", "instruct | recursive (one request per layer) | tabular (whole graph)", false},
        {"-n", OPT_I64, &o.n, "N", "graphs to generate (with --prompts: default one per prompt, cycling when larger)", false},
        {"--service", OPT_STR, &o.service, "S", "service id of the root condition (S_000034483); absent: drawn from RUN/conditions.jsonl (train --corpus)", false},
        {"--num-edges", OPT_I64, &o.num_edges, "E", "requested edges (absent: drawn from the service's training graphs when the run recorded them, else left to the model)", false},
        {"--depth", OPT_I64, &o.depth, "D", "requested depth (one edge = 1)", false},
        {"--latency", OPT_I64, &o.latency, "MS", "latency bound of the root edge", false},
        {"--high-latency", OPT_FLAG, &o.high_latency, NULL, "instruction: \"Build a call graph with high latency\"", false},
        {"--include-edge", OPT_STR, &o.include_edge, "SRC,DST,TYPE", "instruction: include this communication", false},
        {"--prompts", OPT_STR, &o.prompts, "FILE", "root conditions: JSONL {service,num_edges,depth,latency,high_latency,include_edge} or '### Question: COND' lines", false},
        {"--from-graphs", OPT_STR, &o.from_graphs, "JSONL", "draw root conditions from these graphs (e.g. the validation split)", false},
        {"--temperature", OPT_DOUBLE, &o.temperature, "T", "sampling temperature (0 = greedy)", false},
        {"--number-temperature", OPT_STR, &o.number_temperature, "T", "temperature of the tokens of numeric fields (times, latencies, counts; default: --temperature); only with --constrained on, recursive or instruct format", false},
        {"--top-k", OPT_INT, &o.top_k, "K", "sample among the K most likely tokens (0 = all)", false},
        {"--top-p", OPT_DOUBLE, &o.top_p, "P", "nucleus sampling mass (1 = off)", false},
        {"--seed", OPT_I64, &o.seed, "S", "run seed: with the graph index it decides every sample", false},
        {"--batch", OPT_INT, &o.batch, "B", "sequences decoded together (KV-cache slots)", false},
        {"--retries", OPT_INT, &o.retries, "N", "extra tries of a layer that fails its checks (0 = the paper)", false},
        {"--split-threshold", OPT_STR, &o.split, "auto|N", "instruct: a layer of more than N current edges is asked as <split> chunks, "
         "which run unconstrained (15 = the paper; 0 = never); auto: 15, except that a constrained layer is asked whole when it fits the context", false},
        {"--best-of", OPT_INT, &o.best_of, "K", "sample each graph K times and keep the most likely under the model (among those that "
                                                "match the request): K times the work; 1 = off (beyond the paper, docs/GENERATE.md)", false},
        {"--constrained", OPT_STR, &o.constrained, "on|off", "token masks that keep layers well-formed and consistent (docs/GENERATE.md)", false},
        {"--names", OPT_STR, &o.names, "FILE", "constrained: destinations only among the microservices of this graphs JSONL (e.g. train.jsonl)", false},
        {"--canonical-order", OPT_FLAG, &o.canonical, NULL, "constrained: edge attributes only in the canonical order (edge_id, type, destination, "
                                                            "starts, finishes), for a model trained on `--canonical-order` text (beyond the paper)", false},
        {"--callees", OPT_STR, &o.callees, "FILE", "constrained: each layer's destinations only among the callees this graphs JSONL shows for it "
                                                   "(root: the service's entry microservices; else: what the layer's start_node calls), "
                                                   "--names where it shows none; the model picks among them (beyond the paper)", false},
        {"--callee-bounds", OPT_STR, &o.callee_bounds, "on|off", "with --callees: hold choices to what the graphs show: in a layer of one edge (a root "
                                                                 "layer) of a requested size, only callees seen carrying a subtree that large (or the "
                                                                 "closest); a call's type among those seen for its caller and callee, its response time at "
                                                                 "most the longest seen", false},
        {"--max-tokens", OPT_INT, &o.max_tokens, "N", "tokens per layer request at most", false},
        {"--ctx", OPT_INT, &o.ctx, "T", "positions per cache slot (0 = the model's context)", false},
        {"--prefix-cache", OPT_INT, &o.prefix_slots, "N", "shared prompt prefixes kept cached (0 = no prefix reuse)", false},
        {"--prefill-chunk", OPT_INT, &o.chunk, "N", "token rows per model call at most", false},
        {"--naive", OPT_FLAG, &o.naive, NULL, "reference loop: one request at a time, no KV cache, full forward per token", false},
        {"--threads", OPT_INT, &o.threads, "N", "CPU threads (0 = all)", false},
        {"--device", OPT_STR, &o.device, "NAME", "backend: cpu; with nvcc also cuda (bf16 mixed precision) and cuda-fp32", false},
        {"--out", OPT_STR, &o.out, "JSONL", "one line per request: the graph with \"request\" and \"check\" objects (no edges when it could not be assembled)", true},
        {"--csv", OPT_STR, &o.csv, "CSV", "also write the graphs as Alibaba v2022 CallGraph rows", false},
        {"--valid-only", OPT_FLAG, &o.valid_only, NULL, "write only graphs that pass every check", false},
        {"--summary", OPT_STR, &o.summary, "JSON", "write the summary (counts, failures by code, speed) here too", false},
    };
    args_parse(argc, argv,
               "tracellm generate --model RUN --tokenizer TOK -n N [--service S --num-edges E --depth D | --prompts FILE | --from-graphs JSONL] --out graphs.jsonl",
               "Generates call graphs with a trained model: one request per layer (instruct, recursive) or per\n"
               "graph (tabular), batched with a KV cache. Layers are checked with the paper's error codes and\n"
               "retried; whole graphs are assembled and validated. See docs/GENERATE.md.",
               opts, sizeof opts / sizeof opts[0], NULL);
    int fmt = gen_format_parse(o.format);
    if (fmt < 0) fatal("--format %s: expected instruct, recursive or tabular", o.format);
    if (strcmp(o.constrained, "on") && strcmp(o.constrained, "off")) fatal("--constrained %s: expected on or off", o.constrained);
    if (strcmp(o.callee_bounds, "on") && strcmp(o.callee_bounds, "off")) fatal("--callee-bounds %s: expected on or off", o.callee_bounds);
    if (o.batch < 1 || o.batch > 4096) fatal("--batch %d: expected 1..4096", o.batch);
    if (o.best_of < 1 || o.best_of > 1024) fatal("--best-of %d: expected 1..1024", o.best_of);
    int split_threshold = -1;
    if (strcmp(o.split, "auto")) {
        char *end;
        long v = strtol(o.split, &end, 10);
        if (end == o.split || *end || v < 0 || v > 100000) fatal("--split-threshold %s: expected auto or a number >= 0", o.split);
        split_threshold = (int)v;
    }
    if (o.retries < 0 || o.max_tokens < 1 || o.top_k < 0 || o.temperature < 0 || o.top_p <= 0 || o.top_p > 1)
        fatal("--retries, --max-tokens, --top-k, --temperature must be >= 0 (max-tokens >= 1) and --top-p in (0, 1]");
    double number_temperature = 0;
    if (o.number_temperature) {
        char *end;
        number_temperature = strtod(o.number_temperature, &end);
        if (end == o.number_temperature || *end || !(number_temperature >= 0))
            fatal("--number-temperature %s: must be a number >= 0 (0 = greedy)", o.number_temperature);
    }
    const Backend *be = backend_get(o.device);
    if (!be) fatal("--device %s: not built into this binary", o.device);
    if (o.threads > 0) be->set_threads(o.threads);

    // ---- what to generate ----
    GraphSpec *specs = NULL;
    int n_specs = 0;
    Rng rng;
    rng_seed(&rng, (uint64_t)o.seed ^ 0x67656e6572617465ULL);
    if (o.prompts) {
        GraphSpec *base;
        int nb = load_prompts(o.prompts, &base);
        n_specs = o.n > 0 ? (int)o.n : nb;
        specs = xmalloc(n_specs * sizeof *specs);
        for (int i = 0; i < n_specs; i++) specs[i] = base[i % nb];
        free(base);
    } else {
        if (o.n < 1) fatal("-n N: how many graphs to generate (or --prompts FILE)");
        if (o.n > 100000000) fatal("-n %" PRId64 ": too many", o.n);
        n_specs = (int)o.n;
        specs = xcalloc(n_specs, sizeof *specs);
        CallGraph *pool = NULL;
        int n_pool = 0;
        CondRecord *rec = NULL;
        int n_rec = 0;
        if (o.from_graphs) {
            n_pool = graphs_load(o.from_graphs, &pool);
            if (n_pool == 0) fatal("%s: no graphs to draw conditions from", o.from_graphs);
        } else if (!o.service || o.num_edges < 0 || o.depth < 0 || o.latency < 0) {
            // what the request leaves out comes from the training corpus the run recorded
            char cpath[4200];
            gen_conditions_path(o.model, cpath, sizeof cpath);
            n_rec = gen_load_conditions(cpath, o.service, &rec);
            if (n_rec < 0 && !o.service)
                fatal("give --service S (with --num-edges/--depth/--latency), --prompts FILE or --from-graphs JSONL; or train "
                      "with --corpus train.jsonl so that the run records its corpus (%s is missing)", cpath);
            if (n_rec == 0) fatal("%s: no training graph of service %s to draw the missing conditions from", cpath, o.service);
            if (n_rec > 0)
                fprintf(stderr, "generate: conditions left out are drawn from %d training graphs (%s)\n", n_rec, cpath);
        }
        Layers L;
        layers_init(&L);
        for (int i = 0; i < n_specs; i++) {
            int64_t ne = o.num_edges, d = o.depth, lat = o.latency;
            const char *svc = o.service;
            if (n_rec > 0) {
                const CondRecord *c = &rec[rng_below(&rng, (uint64_t)n_rec)];
                if (!svc) svc = c->service;
                if (ne < 0) ne = c->v[0];
                if (d < 0) d = c->v[1];
                if (lat < 0) lat = c->v[2];
            }
            if (pool) {
                int k = (int)rng_below(&rng, (uint64_t)n_pool);
                CallGraph *g = &pool[k];
                graph_sort(g);
                char err[300];
                LayerOpts lo = {0};
                if (!layers_build(&L, g, &lo, err, sizeof err)) fatal("%s: graph %d: %s", o.from_graphs, k + 1, err);
                if (!svc) svc = g->service;
                if (ne < 0) ne = g->n;
                if (d < 0) d = graph_depth(g);
                if (lat < 0) lat = L.v[0].cond.v[CF_LATENCY];
            }
            graph_spec_make(&specs[i], svc, ne, d, lat);
            if (o.high_latency) apply_high_latency(&specs[i]);
            if (o.include_edge) {
                char err[300];
                if (!parse_include(o.include_edge, &specs[i].special, err, sizeof err)) fatal("--include-edge: %s", err);
            }
        }
        layers_free(&L);
        if (pool) graphs_free(pool, n_pool);
        free(rec);
    }

    // ---- model and tokenizer ----
    GPT m;
    Bpe tok;
    gen_load_model(o.model, o.tokenizer, be, &m, &tok);

    EngineConfig ec;
    engine_config_default(&ec);
    ec.batch = o.batch; ec.ctx = o.ctx; ec.prefill_chunk = o.chunk; ec.prefix_slots = o.prefix_slots;
    ec.seed = (uint64_t)o.seed; ec.naive = o.naive;
    ec.sampling = (SamplerConfig){.temperature = (float)o.temperature, .top_k = o.top_k, .top_p = (float)o.top_p};
    HarnessConfig hc;
    harness_config_default(&hc);
    // the tabular format has no automaton (docs/GENERATE.md): its summary says unconstrained
    hc.format = fmt; hc.retries = o.retries; hc.constrained = !strcmp(o.constrained, "on") && fmt != GEN_TABULAR; hc.max_layer_tokens = o.max_tokens;
    hc.canonical_order = o.canonical;
    hc.callee_bounds = !strcmp(o.callee_bounds, "on");
    hc.best_of = o.best_of;
    hc.split_threshold = split_threshold;
    if (o.canonical && !hc.constrained) fprintf(stderr, "generate: --canonical-order is ignored: it works through --constrained on (recursive or instruct format)\n");
    // numeric fields are known only to the automaton (constrain_in_number)
    if (o.number_temperature) {
        if (!hc.constrained)
            fprintf(stderr, "generate: --number-temperature is ignored: it works through --constrained on (recursive or instruct format)\n");
        else { ec.sampling.number_temperature_set = true; ec.sampling.number_temperature = (float)number_temperature; }
    }
    ConNames ms_names;
    con_names_init(&ms_names);
    if (o.names) {
        if (!hc.constrained || fmt == GEN_TABULAR)
            fprintf(stderr, "generate: --names is ignored: it works through --constrained on (recursive or instruct format)\n");
        else { gen_load_names(o.names, &ms_names, &tok); hc.names = &ms_names; }
    }
    ConCallees entries, calls;
    con_callees_init(&entries);
    con_callees_init(&calls);
    if (o.callees) {
        if (!hc.constrained || fmt == GEN_TABULAR)
            fprintf(stderr, "generate: --callees is ignored: it works through --constrained on (recursive or instruct format)\n");
        else { gen_load_callees(o.callees, &entries, &calls, &tok); hc.entries = &entries; hc.calls = &calls; }
    }
    Harness *h = harness_new(&m, &ec, &tok, &hc);
    {
        const Engine *e = harness_engine(h);
        fprintf(stderr, "generate: %s format, %s, %d graphs%s, batch %d, context %d, KV cache %.0f MB\n", gen_format_name(fmt),
                hc.constrained ? "constrained" : "unconstrained", n_specs, o.best_of > 1 ? " (each the best of several samples)" : "", e->cfg.batch, e->cfg.ctx,
                o.naive ? 0.0 : decoder_cache_bytes(&m, e->dec.S, e->cfg.ctx) / 1e6);
    }

    Sink s = {.out = out_open(o.out), .valid_only = o.valid_only, .total = n_specs, .e = harness_engine(h)};
    if (o.csv) {
        s.csv = out_open(o.csv);
        fputs("timestamp,traceid,service,rpc_id,rpctype,um,uminstanceid,interface,dm,dminstanceid,rt\n", s.csv->f);
    }
    progress_start(&s.prog, "generate", "graphs", n_specs);
    double t0 = now_seconds();
    harness_run(h, specs, n_specs, 0, sink_graph, &s);
    double dt = now_seconds() - t0;
    progress_end(&s.prog, n_specs, 0);
    out_close(s.out);
    if (s.csv) out_close(s.csv);

    // ---- summary ----
    const HarnessStats *st = harness_stats(h);
    const Engine *e = harness_engine(h);
    char *sum = NULL;
    size_t sum_len = 0;
    FILE *f = open_memstream(&sum, &sum_len);
    fprintf(f, "{\"format\":\"%s\",\"constrained\":%s,\"requested\":%d,\"assembled\":%" PRId64 ",\"valid\":%" PRId64
               ",\"match\":%" PRId64 ",\"written\":%" PRId64 ",\"requests\":%" PRId64 ",\"layers\":%" PRId64
               ",\"retried_layers\":%" PRId64 ",\"not_assembled\":%" PRId64 ",\"split_layers\":%" PRId64,
            gen_format_name(fmt), hc.constrained ? "true" : "false", n_specs, st->assembled, st->valid, st->match,
            s.written, st->requests, st->layers, st->retried, st->not_assembled, st->split_layers);
    const char *names[2] = {"layer_failures", "failed_tries"};
    const int64_t *arr[2] = {st->layer_fail, st->try_fail};
    for (int k = 0; k < 2; k++) {
        fprintf(f, ",\"%s\":{", names[k]);
        int first = 1;
        for (int c = 1; c < 32; c++)
            if (arr[k][c]) { fprintf(f, "%s\"%d_%s\":%" PRId64, first ? "" : ",", c, layer_check_name(c), arr[k][c]); first = 0; }
        fputc('}', f);
    }
    fprintf(f, ",\"seconds\":%.3f,\"graphs_per_s\":%.3f,\"tokens_generated\":%" PRId64 ",\"tokens_per_s\":%.1f,"
               "\"prefill_rows\":%" PRId64 ",\"prefix_rows_saved\":%" PRId64 ",\"model_calls\":%" PRId64 ",\"batch\":%d,\"best_of\":%d,\"naive\":%s,\"answers_hash\":\"%016" PRIx64 "\",\"forward_s\":%.3f,\"mask_s\":%.3f,\"sample_s\":%.3f}\n",
            dt, n_specs / (dt > 0 ? dt : 1e-9), e->tokens_generated, e->tokens_generated / (dt > 0 ? dt : 1e-9),
            e->prefill_rows, e->prefix_rows_saved, e->step, e->cfg.batch, o.best_of, o.naive ? "true" : "false", st->answers_hash, e->t_forward, e->t_mask, e->t_sample);
    fclose(f);
    fprintf(stderr, "generate: %d requested, %" PRId64 " assembled, %" PRId64 " valid, %" PRId64 " matching the request; %.1f graphs/s, %.0f tokens/s\n",
            n_specs, st->assembled, st->valid, st->match, n_specs / (dt > 0 ? dt : 1e-9), e->tokens_generated / (dt > 0 ? dt : 1e-9));
    fputs(sum, stdout);
    if (o.summary) {
        OutFile *so = out_open(o.summary);
        fputs(sum, so->f);
        out_close(so);
    }
    free(sum);
    harness_free(h);
    con_names_free(&ms_names);
    con_callees_free(&entries);
    con_callees_free(&calls);
    bpe_free(&tok);
    gpt_free(&m);
    free(specs);
    return 0;
}
