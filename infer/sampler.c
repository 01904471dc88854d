#include "infer/sampler.h"
#include "util/util.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

void sampler_init(Sampler *s, int vocab_size) {
    s->cap = vocab_size;
    s->prob = xmalloc(sizeof(float) * vocab_size);
    s->idx = xmalloc(sizeof(int) * vocab_size);
}
void sampler_free(Sampler *s) { free(s->prob); free(s->idx); memset(s, 0, sizeof *s); }

// Moves the k largest logits (by index list) to idx[0..k) in no particular order: quickselect,
// O(V) on average, which matters because V is a few thousand and k is ~50.
static void select_top(int *idx, int n, int k, const float *logits) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = logits[idx[(lo + hi) / 2]];
        int i = lo, j = hi;
        while (i <= j) {
            while (logits[idx[i]] > pivot) i++;
            while (logits[idx[j]] < pivot) j--;
            if (i <= j) { int t = idx[i]; idx[i] = idx[j]; idx[j] = t; i++; j--; }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
}

// qsort_r (GNU) rather than qsort + a global, so requests can be sampled from several threads.
static int by_logit_desc(const void *a, const void *b, void *ctx) {
    const float *logits = ctx;
    float x = logits[*(const int *)a], y = logits[*(const int *)b];
    if (x != y) return x > y ? -1 : 1;
    return *(const int *)a - *(const int *)b;  // stable order for equal logits
}

int sampler_pick(Sampler *s, const float *logits, int V, const uint8_t *allowed, const SamplerConfig *cfg, Rng *rng) {
    return sampler_pick_field(s, logits, V, allowed, cfg, false, rng);
}

int sampler_pick_field(Sampler *s, const float *logits, int V, const uint8_t *allowed, const SamplerConfig *cfg, bool in_number,
                       Rng *rng) {
    const float T = sampler_temperature(cfg, in_number);
    if (V > s->cap) fatal("sampler: vocabulary %d larger than its buffers (%d)", V, s->cap);
    int n = 0;
    for (int v = 0; v < V; v++)
        if (!allowed || allowed[v]) s->idx[n++] = v;
    if (n == 0) return -1;
    if (T <= 0) {
        int best = s->idx[0];
        for (int i = 1; i < n; i++)
            if (logits[s->idx[i]] > logits[best]) best = s->idx[i];
        return best;
    }
    if (cfg->top_k > 0 && cfg->top_k < n) {
        select_top(s->idx, n, cfg->top_k, logits);
        n = cfg->top_k;
    }
    // sort the candidates so top-p cuts the most likely first and the draw is order-independent
    qsort_r(s->idx, n, sizeof *s->idx, by_logit_desc, (void *)logits);
    float maxl = logits[s->idx[0]], sum = 0;
    for (int i = 0; i < n; i++) sum += s->prob[i] = expf((logits[s->idx[i]] - maxl) / T);
    if (cfg->top_p > 0 && cfg->top_p < 1) {
        float cum = 0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            cum += s->prob[i] / sum;
            if (cum >= cfg->top_p) { keep = i + 1; break; }
        }
        n = keep;
        sum = 0;
        for (int i = 0; i < n; i++) sum += s->prob[i];
    }
    float r = (float)rng_uniform(rng) * sum, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += s->prob[i];
        if (r < acc) return s->idx[i];
    }
    return s->idx[n - 1];  // rounding: r landed on the total
}

double sampler_logprob(const float *logits, int V, int tok) {
    float maxl = logits[0];
    for (int v = 1; v < V; v++) if (logits[v] > maxl) maxl = logits[v];
    double sum = 0;
    for (int v = 0; v < V; v++) sum += exp((double)logits[v] - maxl);
    return (double)logits[tok] - maxl - log(sum);
}

void stopset_init(StopSet *ss, const char **stops, int n) {
    ss->s = stops;
    ss->n = n;
    ss->max_len = 0;
    for (int i = 0; i < n; i++) {
        int l = (int)strlen(stops[i]);
        if (l > ss->max_len) ss->max_len = l;
    }
}

long stop_find(const StopSet *ss, const char *text, long len, long added, int *which) {
    long from = len - added - ss->max_len + 1;  // a stop may straddle the old and new text
    if (from < 0) from = 0;
    long best = -1;
    for (int k = 0; k < ss->n; k++) {
        long l = (long)strlen(ss->s[k]);
        for (long p = from; p + l <= len; p++)
            if (text[p] == ss->s[k][0] && !memcmp(text + p, ss->s[k], l)) {
                if (best < 0 || p < best) { best = p; if (which) *which = k; }
                break;
            }
    }
    return best;
}
