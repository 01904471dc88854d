// `tracellm baseline fit|sample`: the probabilistic baseline of the paper (baseline.h), so its
// graphs go through the same `tracellm eval` as the model's.
#include "eval/baseline.h"
#include "util/args.h"
#include "util/json.h"
#include "util/progress.h"
#include "util/util.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int baseline_fit(int argc, char **argv) {
    const char *graphs = NULL, *out = NULL, *erms = NULL;
    Opt opts[] = {
        {"--graphs", OPT_STR, &graphs, "FILE", "training graphs JSONL (names, callees, response times; structure too unless --erms)", true},
        {"--out", OPT_STR, &out, "FILE", "model file to write", true},
        {"--erms", OPT_STR, &erms, "DIR", "take children counts and types from the Erms distribution CSVs in DIR", false},
    };
    args_parse(argc, argv, "tracellm baseline fit --graphs train.jsonl --out base.model [--erms DIR]",
               "Fits the Alibaba authors' probabilistic call-graph model on training graphs.", opts, 3, NULL);
    double t0 = now_seconds();
    BaseModel m;
    base_init(&m);
    int64_t skipped = 0;
    base_fit_file(&m, graphs, &skipped);
    if (m.n_graphs == 0) fatal("%s: no valid graph to fit on (%lld invalid skipped)", graphs, (long long)skipped);
    if (erms) {
        char err[512];
        if (!base_apply_erms(&m, erms, err, sizeof err)) fatal("%s", err);
    }
    base_save(&m, out);
    printf("baseline fit: %lld graphs (%lld invalid skipped), %d names, %d services, structure from %s, %.2fs -> %s\n",
           (long long)m.n_graphs, (long long)skipped, m.n_names - 1, m.services.n, erms ? "Erms files" : "the graphs",
           now_seconds() - t0, out);
    printf("  depth  edges  mean children\n");
    for (int d = 1; d <= BASE_MAX_DEPTH; d++) {
        double w = 0, s = 0;
        for (int t = 0; t < RPC_NTYPES; t++)
            for (int i = 0; i < m.children[d][t].n; i++) { w += m.children[d][t].w[i]; s += m.children[d][t].w[i] * m.children[d][t].key[i]; }
        if (w > 0 && erms) printf("  %5d      -  %.3f\n", d, s / w);  // Erms weights are probabilities
        else if (w > 0) printf("  %5d  %5.0f  %.3f\n", d, w, s / w);
    }
    base_free(&m);
    return 0;
}

// One root condition: JSON {"service","num_edges","depth","latency",...} or a paper condition line
// ("[GENERATE GRAPH]id:S_1/num_edges:7/depth:3/latency:8", optionally after "### Question:").
// high_latency and include_edge are not honoured by the baseline (the authors' model has no notion
// of them) but are copied into each line's "request", so `eval` measures how often the baseline
// meets them by chance: the floor an instruction-following model is compared against.
typedef struct {
    char *service;
    int num_edges, depth;
    int64_t latency;
    bool high_latency;
    char *inc[3];  // include_edge src, dst, type (all NULL when absent)
} Prompt;

static void prompt_free(Prompt *p) {
    free(p->service);
    for (int k = 0; k < 3; k++) free(p->inc[k]);
    memset(p, 0, sizeof *p);
}

// include_edge as [src, dst, type] or "src,dst,type"
static bool parse_include_edge(const Json *v, Prompt *p) {
    char *parts[3] = {NULL, NULL, NULL};
    if (v->type == JSON_ARRAY && v->n == 3) {
        for (int k = 0; k < 3; k++) {
            Json *e = json_at(v, k);
            if (e->type != JSON_STRING) return false;
            parts[k] = xstrdup(e->str);
        }
    } else if (v->type == JSON_STRING) {
        char *copy = xstrdup(v->str), *q = copy;
        for (int k = 0; k < 3; k++) {
            char *tok = strsep(&q, ",");
            parts[k] = tok ? xstrdup(tok) : NULL;
        }
        bool extra = q != NULL;
        free(copy);
        if (extra) { for (int k = 0; k < 3; k++) free(parts[k]); return false; }
    }
    if (!parts[0] || !parts[1] || !parts[2] || rpc_type_parse(parts[2], strlen(parts[2])) < 0) {
        for (int k = 0; k < 3; k++) free(parts[k]);
        return false;
    }
    for (int k = 0; k < 3; k++) p->inc[k] = parts[k];
    return true;
}

static bool int_field(const Json *v, int64_t *x) { return v && v->type != JSON_NULL && json_int(v, x); }

static bool parse_prompt(char *line, Prompt *p, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    p->latency = -1;
    if (line[0] == '{') {
        Json *j = json_parse(line, strlen(line), err, errlen);
        if (!j) return false;
        bool ok = j->type == JSON_OBJECT;
        if (!ok) snprintf(err, errlen, "expected a JSON object");
        Json *s = ok ? json_get(j, "service") : NULL;
        if (ok && s && s->type != JSON_NULL) {
            if (s->type != JSON_STRING) { snprintf(err, errlen, "\"service\" must be a string"); ok = false; }
            else p->service = xstrdup(s->str);
        }
        const char *keys[3] = {"num_edges", "depth", "latency"};
        for (int k = 0; ok && k < 3; k++) {
            Json *v = json_get(j, keys[k]);
            int64_t x;
            if (!v || v->type == JSON_NULL) continue;
            if (!int_field(v, &x) || x < 0 || (k < 2 && x > 100000) || x > BASE_MAX_RT) {
                snprintf(err, errlen, "\"%s\" must be a non-negative integer", keys[k]);
                ok = false;
                break;
            }
            if (k == 0) p->num_edges = (int)x;
            if (k == 1) p->depth = (int)x;
            if (k == 2) p->latency = x;
        }
        Json *hl = ok ? json_get(j, "high_latency") : NULL;
        if (hl && hl->type != JSON_NULL) {
            if (hl->type != JSON_BOOL) { snprintf(err, errlen, "\"high_latency\" must be true or false"); ok = false; }
            else p->high_latency = hl->b;
        }
        Json *ie = ok ? json_get(j, "include_edge") : NULL;
        if (ie && ie->type != JSON_NULL && !parse_include_edge(ie, p)) {
            snprintf(err, errlen, "\"include_edge\" must be [src, dst, type] or \"src,dst,type\" with a known type");
            ok = false;
        }
        json_free(j);
        if (!ok) prompt_free(p);
        return ok;
    }
    char *s = line;
    if (!strncmp(s, "### Question:", 13)) s += 13;
    while (*s == ' ') s++;
    if (!strncmp(s, "[GENERATE GRAPH]", 16)) s += 16;
    int remaining = -1;
    bool any = false;
    for (char *tok; (tok = strsep(&s, "/")) != NULL;) {
        char *colon = strchr(tok, ':');
        if (!colon) continue;
        *colon = 0;
        const char *k = tok, *v = colon + 1;
        char *end;
        long long x = strtoll(v, &end, 10);
        bool isnum = end != v && !*end && x >= 0;
        if (!strcmp(k, "id")) { free(p->service); p->service = xstrdup(v); any = true; }
        else if (!strcmp(k, "num_edges") && isnum && x <= 100000) { p->num_edges = (int)x; any = true; }
        else if (!strcmp(k, "depth") && isnum && x <= 100000) { p->depth = (int)x; any = true; }
        else if (!strcmp(k, "remaining_depth") && isnum && x < 100000) { remaining = (int)x; any = true; }
        else if (!strcmp(k, "latency") && isnum && x <= BASE_MAX_RT) { p->latency = x; any = true; }
    }
    if (!p->depth && remaining >= 0) p->depth = remaining + 1;  // recursive root conditions
    if (!any) snprintf(err, errlen, "expected a JSON object or a condition line like id:S_1/num_edges:7/depth:3");
    return any;
}

static Prompt *load_prompts(const char *path, int *n_out) {
    FILE *f = fopen(path, "r");
    if (!f) fatal("cannot open %s: %s", path, strerror(errno));
    Prompt *ps = NULL;
    size_t cap = 0;
    int n = 0, lineno = 0;
    char *line = NULL, err[256];
    size_t lcap = 0;
    while (getline(&line, &lcap, f) >= 0) {
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0]) continue;
        grow((void **)&ps, &cap, (size_t)n + 1, sizeof *ps);
        if (!parse_prompt(line, &ps[n], err, sizeof err)) fatal("%s:%d: bad prompt: %s", path, lineno, err);
        if (ps[n].num_edges > 0 && ps[n].depth > ps[n].num_edges)
            fatal("%s:%d: depth %d cannot be reached with %d edges", path, lineno, ps[n].depth, ps[n].num_edges);
        if (ps[n].depth > BASE_MAX_DEPTH) fatal("%s:%d: depth %d is above the limit %d", path, lineno, ps[n].depth, BASE_MAX_DEPTH);
        n++;
    }
    free(line);
    fclose(f);
    if (n == 0) fatal("%s: no prompts", path);
    *n_out = n;
    return ps;
}

static int baseline_sample(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *prompts = NULL;
    int n = 0, max_tries = 1000, max_edges = 1000;
    int64_t seed = 1;
    Opt opts[] = {
        {"--model", OPT_STR, &model, "FILE", "model written by `baseline fit`", true},
        {"-n", OPT_INT, &n, "N", "number of graphs (unconditioned; or use --prompts)", false},
        {"--prompts", OPT_STR, &prompts, "FILE", "root conditions, one a line: JSON {service,num_edges,depth,latency,high_latency,include_edge} or a condition line", false},
        {"--seed", OPT_I64, &seed, "S", "random seed (same seed, same graphs)", false},
        {"--out", OPT_STR, &out, "FILE", "graphs JSONL to write", true},
        {"--max-tries", OPT_INT, &max_tries, "N", "draws per prompt to meet num_edges/depth before giving up", false},
        {"--max-edges", OPT_INT, &max_edges, "N", "cap on the edges of one draw", false},
    };
    args_parse(argc, argv, "tracellm baseline sample --model base.model (-n N | --prompts FILE) [--seed S] --out gen.jsonl",
               "Samples call graphs from the probabilistic baseline. With --prompts, each output line carries the\n"
               "\"request\" it answered, which `tracellm eval` scores.", opts, 7, NULL);
    if ((n > 0) == (prompts != NULL)) fatal("baseline sample: give exactly one of -n N (N > 0) or --prompts FILE");
    if (max_tries < 1 || max_edges < 1) fatal("baseline sample: --max-tries and --max-edges must be >= 1");
    BaseModel m;
    char err[512];
    if (!base_load(&m, model, err, sizeof err)) fatal("%s", err);
    int np = 0;
    Prompt *ps = prompts ? load_prompts(prompts, &np) : NULL;
    int total = prompts ? np : n;
    Rng rng;
    rng_seed(&rng, (uint64_t)seed);
    OutFile *o = out_open(out);
    CallGraph g;
    graph_init(&g);
    Progress pr;
    progress_start(&pr, "baseline sample", "graphs", total);
    int failed = 0, first_failed = -1;
    char *buf = NULL;
    size_t blen = 0;
    for (int i = 0; i < total; i++) {
        BaseRequest q = {NULL, 0, 0, -1};
        if (ps) q = (BaseRequest){ps[i].service, ps[i].num_edges, ps[i].depth, ps[i].latency};
        bool met = base_sample(&m, &rng, &q, max_tries, max_edges, &g);
        if (!met) { failed++; if (first_failed < 0) first_failed = i; }
        char tid[32];
        snprintf(tid, sizeof tid, "base_%d", i);
        char *svc = xstrdup(g.service);  // graph_set_ids frees the old strings first
        graph_set_ids(&g, tid, svc);
        free(svc);
        if (!ps) { graph_write_json(o->f, &g); }
        else {
            // the graph line plus "request": what this graph was asked to satisfy
            FILE *mf = open_memstream(&buf, &blen);
            graph_write_json(mf, &g);
            fclose(mf);
            blen -= 2;  // drop "}\n"
            fwrite(buf, 1, blen, o->f);
            fputs(",\"request\":{", o->f);
            const char *sep = "";
            if (q.num_edges > 0) { fprintf(o->f, "\"num_edges\":%d", q.num_edges); sep = ","; }
            if (q.depth > 0) { fprintf(o->f, "%s\"depth\":%d", sep, q.depth); sep = ","; }
            if (q.latency >= 0) { fprintf(o->f, "%s\"latency\":%lld", sep, (long long)q.latency); sep = ","; }
            if (ps[i].high_latency) { fprintf(o->f, "%s\"high_latency\":true", sep); sep = ","; }
            if (ps[i].inc[0]) {
                fprintf(o->f, "%s\"include_edge\":[", sep);
                for (int k = 0; k < 3; k++) { if (k) fputc(',', o->f); json_write_string(o->f, ps[i].inc[k]); }
                fputc(']', o->f);
            }
            fputs("}}\n", o->f);
            free(buf);
            buf = NULL;
        }
        if ((i & 255) == 0) progress_update(&pr, i + 1, 0, -1);
    }
    progress_end(&pr, total, 0);
    out_close(o);
    graph_free(&g);
    if (ps) {
        for (int i = 0; i < np; i++) prompt_free(&ps[i]);
        free(ps);
    }
    base_free(&m);
    printf("baseline sample: %d graphs -> %s", total, out);
    if (prompts)
        printf("; %d of %d prompts not met after %d draws each (closest draw written)", failed, total, max_tries);
    printf("\n");
    if (failed) fprintf(stderr, "tracellm: warning: first unmet prompt is prompt #%d of %s\n", first_failed + 1, prompts);
    return 0;
}

int cmd_baseline(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "fit")) return baseline_fit(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "sample")) return baseline_sample(argc - 1, argv + 1);
    FILE *f = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) ? stdout : stderr;
    fprintf(f, "usage: tracellm baseline fit --graphs train.jsonl --out base.model [--erms DIR]\n"
               "       tracellm baseline sample --model base.model (-n N | --prompts FILE) [--seed S] --out gen.jsonl\n\n"
               "The Alibaba trace authors' probabilistic call-graph model (the paper's baseline), fitted on our\n"
               "training graphs. `tracellm baseline fit --help` and `sample --help` list the options.\n");
    return f == stdout ? 0 : 2;
}
