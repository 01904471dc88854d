// See stats.h. Services and communications are interned in small open-addressing hash maps; a
// graph contributes each distinct (src, type, dst) once to its service's counts.
#include "data/stats.h"
#include "util/json.h"
#include "util/rng.h"
#include "util/util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- string -> int map ----
typedef struct { char **key; int *val; size_t cap, n; } StrMap;
static void map_free(StrMap *m) {
    for (size_t i = 0; i < m->cap; i++) free(m->key ? m->key[i] : NULL);
    free(m->key); free(m->val);
    memset(m, 0, sizeof *m);
}
static size_t map_slot(const StrMap *m, const char *k, size_t len) {
    size_t i = hash_bytes(k, len, 7) & (m->cap - 1);
    while (m->key[i] && (strncmp(m->key[i], k, len) || m->key[i][len])) i = (i + 1) & (m->cap - 1);
    return i;
}
// Index of key k[0..len), inserting `fresh` when absent (*added = true).
static int map_get(StrMap *m, const char *k, size_t len, int fresh, bool *added) {
    if (2 * (m->n + 1) > m->cap) {
        StrMap big = {xcalloc(m->cap ? 2 * m->cap : 64, sizeof(char *)), xcalloc(m->cap ? 2 * m->cap : 64, sizeof(int)),
                      m->cap ? 2 * m->cap : 64, m->n};
        for (size_t i = 0; i < m->cap; i++)
            if (m->key[i]) {
                size_t j = map_slot(&big, m->key[i], strlen(m->key[i]));
                big.key[j] = m->key[i];
                big.val[j] = m->val[i];
            }
        free(m->key); free(m->val);
        *m = big;
    }
    size_t i = map_slot(m, k, len);
    if (added) *added = !m->key[i];
    if (!m->key[i]) {
        m->key[i] = xstrndup(k, len);
        m->val[i] = fresh;
        m->n++;
    }
    return m->val[i];
}
// ---- accumulation ----
typedef struct {
    char *name;
    int64_t *lat; size_t nlat, caplat;
    StrMap comm_ix;                        // "src\x1ftype\x1fdst" -> index
    Comm *comm; int64_t *count; size_t ncomm, capcomm;
} SvcAcc;

typedef struct {                           // release-style merge of per-chunk results
    int64_t max, p90, graphs; double mean_sum;
    StrMap rare_ix; Comm *rare; size_t nrare, caprare;
} Merged;

struct StatsBuilder {
    StatsOpts o;
    StrMap svc_ix; SvcAcc *acc; size_t nacc, capacc;
    int64_t graphs, in_chunk, skipped;
    StrMap m_ix; Merged *m; char **m_name; size_t nm, capm;
    int *ids; size_t capids;
    char *key; size_t capkey;
};

void stats_opts_default(StatsOpts *o) { o->min_graphs = 10; o->rare_fraction = 0.1; o->merge_chunk = 0; }

StatsBuilder *stats_builder_new(const StatsOpts *o) {
    StatsBuilder *b = xcalloc(1, sizeof *b);
    if (o) b->o = *o; else stats_opts_default(&b->o);
    return b;
}

static size_t comm_key(StatsBuilder *b, const char *src, int type, const char *dst) {
    size_t ls = strlen(src), ld = strlen(dst), n = ls + ld + 3;
    grow((void **)&b->key, &b->capkey, n + 1, 1);
    memcpy(b->key, src, ls);
    b->key[ls] = 0x1f; b->key[ls + 1] = (char)('0' + type); b->key[ls + 2] = 0x1f;
    memcpy(b->key + ls + 3, dst, ld);
    b->key[n] = 0;
    return n;
}
static int int_cmp(const void *a, const void *b) { int x = *(const int *)a, y = *(const int *)b; return (x > y) - (x < y); }
static int i64_cmp(const void *a, const void *b) { int64_t x = *(const int64_t *)a, y = *(const int64_t *)b; return (x > y) - (x < y); }
static int comm_cmp(const void *a, const void *b) {
    const Comm *x = a, *y = b;
    int c = strcmp(x->src, y->src);
    if (c) return c;
    if (x->type != y->type) return x->type < y->type ? -1 : 1;
    return strcmp(x->dst, y->dst);
}

static void finish_service(const StatsBuilder *b, SvcAcc *a, ServiceStats *out) {
    qsort(a->lat, a->nlat, sizeof *a->lat, i64_cmp);
    double sum = 0;
    for (size_t i = 0; i < a->nlat; i++) sum += (double)a->lat[i];
    out->service = xstrdup(a->name);
    out->graphs = (int64_t)a->nlat;
    out->latency_max = a->lat[a->nlat - 1];
    out->latency_p90 = a->lat[(size_t)floor((double)a->nlat * 0.9)];
    out->latency_mean = sum / (double)a->nlat;
    out->rare = NULL; out->n_rare = 0;
    size_t cap = 0;
    for (size_t i = 0; i < a->ncomm; i++)
        if ((double)a->count[i] / (double)a->nlat < b->o.rare_fraction) {
            grow((void **)&out->rare, &cap, (size_t)out->n_rare + 1, sizeof *out->rare);
            out->rare[out->n_rare++] = (Comm){xstrdup(a->comm[i].src), xstrdup(a->comm[i].dst), a->comm[i].type};
        }
    if (out->n_rare) qsort(out->rare, (size_t)out->n_rare, sizeof *out->rare, comm_cmp);
}
static void free_service(ServiceStats *s) {
    for (int i = 0; i < s->n_rare; i++) { free(s->rare[i].src); free(s->rare[i].dst); }
    free(s->rare); free(s->service);
}
static void reset_acc(StatsBuilder *b) {
    for (size_t i = 0; i < b->nacc; i++) {
        SvcAcc *a = &b->acc[i];
        for (size_t j = 0; j < a->ncomm; j++) { free(a->comm[j].src); free(a->comm[j].dst); }
        free(a->name); free(a->lat); free(a->comm); free(a->count); map_free(&a->comm_ix);
    }
    b->nacc = 0;
    map_free(&b->svc_ix);
}

// Release-style merge of the current chunk into b->m: max of max, min of p90, union of rare.
static void merge_chunk(StatsBuilder *b) {
    for (size_t i = 0; i < b->nacc; i++) {
        SvcAcc *a = &b->acc[i];
        if ((int64_t)a->nlat < b->o.min_graphs) continue;
        ServiceStats s;
        finish_service(b, a, &s);
        bool added;
        int k = map_get(&b->m_ix, s.service, strlen(s.service), (int)b->nm, &added);
        if (added) {
            grow((void **)&b->m, &b->capm, b->nm + 1, sizeof *b->m);
            b->m_name = xrealloc(b->m_name, b->capm * sizeof *b->m_name);
            memset(&b->m[b->nm], 0, sizeof *b->m);
            b->m[b->nm].p90 = s.latency_p90;
            b->m[b->nm].max = s.latency_max;
            b->m_name[b->nm] = xstrdup(s.service);
            b->nm++;
        }
        Merged *m = &b->m[k];
        if (s.latency_max > m->max) m->max = s.latency_max;
        if (s.latency_p90 < m->p90) m->p90 = s.latency_p90;
        m->graphs += s.graphs;
        m->mean_sum += s.latency_mean * (double)s.graphs;
        for (int r = 0; r < s.n_rare; r++) {
            size_t n = comm_key(b, s.rare[r].src, s.rare[r].type, s.rare[r].dst);
            map_get(&m->rare_ix, b->key, n, 0, &added);
            if (added) {
                grow((void **)&m->rare, &m->caprare, m->nrare + 1, sizeof *m->rare);
                m->rare[m->nrare++] = (Comm){xstrdup(s.rare[r].src), xstrdup(s.rare[r].dst), s.rare[r].type};
            }
        }
        free_service(&s);
    }
    reset_acc(b);
    b->in_chunk = 0;
}

void stats_builder_add(StatsBuilder *b, const CallGraph *g) {
    int root = -1;
    for (int i = 0; i < g->n && root < 0; i++)
        if (!strcmp(g->edges[i].rpc_id, "0")) root = i;
    if (root < 0) { b->skipped++; return; }   // not a graph of the paper's kind; prepare never writes one
    bool added;
    const char *svc = g->service ? g->service : "";
    int s = map_get(&b->svc_ix, svc, strlen(svc), (int)b->nacc, &added);
    if (added) {
        grow((void **)&b->acc, &b->capacc, b->nacc + 1, sizeof *b->acc);
        memset(&b->acc[b->nacc], 0, sizeof *b->acc);
        b->acc[b->nacc++].name = xstrdup(svc);
    }
    SvcAcc *a = &b->acc[s];
    grow((void **)&a->lat, &a->caplat, a->nlat + 1, sizeof *a->lat);
    a->lat[a->nlat++] = edge_finish(&g->edges[root]);
    grow((void **)&b->ids, &b->capids, (size_t)g->n + 1, sizeof *b->ids);
    for (int i = 0; i < g->n; i++) {
        const Edge *e = &g->edges[i];
        size_t n = comm_key(b, e->src, e->type, e->dst);
        int c = map_get(&a->comm_ix, b->key, n, (int)a->ncomm, &added);
        if (added) {
            grow((void **)&a->comm, &a->capcomm, a->ncomm + 1, sizeof *a->comm);
            a->count = xrealloc(a->count, a->capcomm * sizeof *a->count);
            a->comm[a->ncomm] = (Comm){xstrdup(e->src), xstrdup(e->dst), e->type};
            a->count[a->ncomm++] = 0;
        }
        b->ids[i] = c;
    }
    qsort(b->ids, (size_t)g->n, sizeof *b->ids, int_cmp);
    for (int i = 0; i < g->n; i++)
        if (i == 0 || b->ids[i] != b->ids[i - 1]) a->count[b->ids[i]]++;
    b->graphs++;
    if (b->o.merge_chunk > 0 && ++b->in_chunk == b->o.merge_chunk) merge_chunk(b);
}

static int svc_cmp(const void *a, const void *b) { return strcmp(((const ServiceStats *)a)->service, ((const ServiceStats *)b)->service); }

void stats_builder_finish(StatsBuilder *b, Stats *out) {
    memset(out, 0, sizeof *out);
    out->graphs = b->graphs;
    out->skipped = b->skipped;
    out->min_graphs = b->o.min_graphs;
    out->rare_fraction = b->o.rare_fraction;
    out->merge_chunk = b->o.merge_chunk;
    size_t cap = 0;
    if (b->o.merge_chunk > 0) {
        if (b->in_chunk) merge_chunk(b);
        for (size_t i = 0; i < b->nm; i++) {
            Merged *m = &b->m[i];
            grow((void **)&out->v, &cap, (size_t)out->n + 1, sizeof *out->v);
            ServiceStats *s = &out->v[out->n++];
            *s = (ServiceStats){b->m_name[i], m->graphs, m->max, m->p90, m->mean_sum / (double)m->graphs, m->rare, (int)m->nrare};
            if (s->n_rare) qsort(s->rare, (size_t)s->n_rare, sizeof *s->rare, comm_cmp);
            map_free(&m->rare_ix);
        }
        free(b->m); free(b->m_name); map_free(&b->m_ix);
    } else {
        for (size_t i = 0; i < b->nacc; i++) {
            if ((int64_t)b->acc[i].nlat < b->o.min_graphs) continue;
            grow((void **)&out->v, &cap, (size_t)out->n + 1, sizeof *out->v);
            finish_service(b, &b->acc[i], &out->v[out->n++]);
        }
    }
    if (out->n) qsort(out->v, (size_t)out->n, sizeof *out->v, svc_cmp);
    reset_acc(b);
    free(b->acc); free(b->ids); free(b->key);
    free(b);
}

void stats_write_json(FILE *f, const Stats *s) {
    fprintf(f, "{\"format\":\"tracellm-stats\",\"version\":1,\"graphs\":%lld,\"min_graphs\":%d,\"rare_fraction\":%.17g,\"merge_chunk\":%lld,\n\"services\":[",
            (long long)s->graphs, s->min_graphs, s->rare_fraction, (long long)s->merge_chunk);
    for (int i = 0; i < s->n; i++) {
        const ServiceStats *v = &s->v[i];
        fputs(i ? ",\n{\"service\":" : "\n{\"service\":", f);
        json_write_string(f, v->service);
        fprintf(f, ",\"graphs\":%lld,\"latency_max\":%lld,\"latency_p90\":%lld,\"latency_mean\":%.17g,\"rare\":[", (long long)v->graphs,
                (long long)v->latency_max, (long long)v->latency_p90, v->latency_mean);
        for (int r = 0; r < v->n_rare; r++) {
            fputs(r ? ",[" : "[", f);
            json_write_string(f, v->rare[r].src);
            fprintf(f, ",\"%s\",", rpc_type_name(v->rare[r].type));
            json_write_string(f, v->rare[r].dst);
            fputc(']', f);
        }
        fputs("]}", f);
    }
    fputs("\n]}\n", f);
}

void stats_build_file(const char *graphs_jsonl, const char *out_json, const StatsOpts *o) {
    GraphReader r;
    graph_reader_open(&r, graphs_jsonl);
    graph_reader_progress(&r, "stats");
    StatsBuilder *b = stats_builder_new(o);
    CallGraph g;
    graph_init(&g);
    while (graph_reader_next(&r, &g)) stats_builder_add(b, &g);
    graph_free(&g);
    graph_reader_close(&r);
    Stats s;
    stats_builder_finish(b, &s);
    if (s.skipped) warnf("%s: %lld graphs without a root edge \"0\" were left out of the statistics", graphs_jsonl, (long long)s.skipped);
    OutFile *out = out_open(out_json);
    stats_write_json(out->f, &s);
    out_close(out);
    stats_free(&s);
}

void stats_free(Stats *s) {
    for (int i = 0; i < s->n; i++) free_service(&s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

bool stats_load(const char *path, Stats *s, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    size_t len;
    char *text = read_file(path, &len);
    char jerr[200];
    Json *root = json_parse(text, len, jerr, sizeof jerr);
    free(text);
    if (!root) { snprintf(err, errlen, "%s: %s", path, jerr); return false; }
    bool ok = false;
    Json *fmt = json_get(root, "format"), *svcs = json_get(root, "services");
    if (!fmt || fmt->type != JSON_STRING || strcmp(fmt->str, "tracellm-stats") || !svcs || svcs->type != JSON_ARRAY) {
        snprintf(err, errlen, "%s: not a tracellm stats.json (format/services missing)", path);
        goto done;
    }
    int64_t x;
    Json *j;
    if ((j = json_get(root, "graphs")) && json_int(j, &x)) s->graphs = x;
    if ((j = json_get(root, "min_graphs")) && json_int(j, &x)) s->min_graphs = (int)x;
    if ((j = json_get(root, "merge_chunk")) && json_int(j, &x)) s->merge_chunk = x;
    if ((j = json_get(root, "rare_fraction")) && j->type == JSON_NUMBER) s->rare_fraction = j->num;
    s->v = xcalloc((size_t)svcs->n + 1, sizeof *s->v);
    int k = 0;
    for (Json *e = svcs->child; e; e = e->next, k++) {
        Json *name = json_get(e, "service"), *g = json_get(e, "graphs"), *mx = json_get(e, "latency_max"),
             *p9 = json_get(e, "latency_p90"), *mean = json_get(e, "latency_mean"), *rare = json_get(e, "rare");
        ServiceStats *v = &s->v[s->n];
        if (!name || name->type != JSON_STRING || !g || !json_int(g, &v->graphs) || !mx || !json_int(mx, &v->latency_max) ||
            !p9 || !json_int(p9, &v->latency_p90) || !mean || mean->type != JSON_NUMBER || !rare || rare->type != JSON_ARRAY) {
            snprintf(err, errlen, "%s: services[%d]: expected service, graphs, latency_max, latency_p90, latency_mean, rare", path, k);
            goto done;
        }
        v->latency_mean = mean->num;
        v->rare = xcalloc((size_t)rare->n + 1, sizeof *v->rare);
        v->service = xstrdup(name->str);
        s->n++;
        int r = 0;
        for (Json *c = rare->child; c; c = c->next, r++) {
            Json *a = json_at(c, 0), *t = json_at(c, 1), *d = json_at(c, 2);
            int type = t && t->type == JSON_STRING ? rpc_type_parse(t->str, strlen(t->str)) : -1;
            if (c->type != JSON_ARRAY || c->n != 3 || a->type != JSON_STRING || d->type != JSON_STRING || type < 0) {
                snprintf(err, errlen, "%s: services[%d].rare[%d]: expected [src, type, dst]", path, k, r);
                goto done;
            }
            v->rare[v->n_rare++] = (Comm){xstrdup(a->str), xstrdup(d->str), type};
        }
        qsort(v->rare, (size_t)v->n_rare, sizeof *v->rare, comm_cmp);
    }
    qsort(s->v, (size_t)s->n, sizeof *s->v, svc_cmp);
    ok = true;
done:
    json_free(root);
    if (!ok) stats_free(s);
    return ok;
}

const ServiceStats *stats_find(const Stats *s, const char *service) {
    if (!s || !service) return NULL;
    int lo = 0, hi = s->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(s->v[mid].service, service);
        if (!c) return &s->v[mid];
        if (c < 0) lo = mid + 1; else hi = mid - 1;
    }
    return NULL;
}

bool stats_is_rare(const ServiceStats *st, const char *src, int type, const char *dst) {
    if (!st || st->n_rare == 0) return false;
    Comm key = {(char *)src, (char *)dst, type};
    return bsearch(&key, st->rare, (size_t)st->n_rare, sizeof *st->rare, comm_cmp) != NULL;
}

bool stats_high_latency(const ServiceStats *st, int64_t latency, double margin) {
    if (!st) return false;
    if (margin >= 0 && !((double)st->latency_p90 - st->latency_mean > margin)) return false;
    return latency >= st->latency_p90;
}
