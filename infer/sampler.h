// Turning logits into the next token: greedy, temperature, top-k, top-p, and an optional mask of
// allowed tokens (constrained decoding). Each request owns its Rng, seeded from the run seed and
// the request's id, so a request samples the same tokens whatever the batch size or arrival order.
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "util/rng.h"

typedef struct {
    float temperature;  // 0 = greedy (argmax)
    int top_k;          // 0 = no limit
    float top_p;        // 1 = no limit
    // A second temperature for the tokens of numeric fields (times, latencies, counts), which the
    // caller recognises (constrained decoding: constrain_in_number). Real response times are a
    // number copied or nudged from the one before it, which wants a low temperature, while names
    // want the model's own distribution (docs/PERF.md "Quality (real data)" has the sweep).
    // Unset (zero-initialised configs): every token uses `temperature`.
    bool number_temperature_set;
    float number_temperature;   // 0 = greedy inside numbers
} SamplerConfig;

typedef struct {
    int cap;
    float *prob;  // (cap,) scratch
    int *idx;     // (cap,) scratch
} Sampler;

void sampler_init(Sampler *s, int vocab_size);
void sampler_free(Sampler *s);
// logits: (V,). allowed: (V,) 1 = may be sampled, or NULL for all. Returns the token id, or -1 when
// the mask allows nothing. Ties in greedy mode go to the lowest id (deterministic).
int sampler_pick(Sampler *s, const float *logits, int V, const uint8_t *allowed, const SamplerConfig *cfg, Rng *rng);
// The same for a token that is (in_number) or is not part of a numeric field: the step's
// temperature is sampler_temperature(cfg, in_number); everything else is sampler_pick's.
int sampler_pick_field(Sampler *s, const float *logits, int V, const uint8_t *allowed, const SamplerConfig *cfg, bool in_number,
                       Rng *rng);
// log p(tok) under softmax(logits) at temperature 1 with no mask: how likely the model itself finds
// the token, whatever the sampling settings (`generate --best-of` ranks samples by its sum).
double sampler_logprob(const float *logits, int V, int tok);
static inline float sampler_temperature(const SamplerConfig *cfg, bool in_number) {
    return in_number && cfg->number_temperature_set ? cfg->number_temperature : cfg->temperature;
}

// Stop strings: after each decoded piece is appended to a request's text, stop_find reports the
// earliest stop string that now occurs, looking only at the new tail (O(piece + longest stop)).
typedef struct {
    const char **s;
    int n;
    int max_len;
} StopSet;
void stopset_init(StopSet *ss, const char **stops, int n);
// text[0..len) is the whole generated text, of which the last `added` bytes are new. Returns the
// offset where the first stop string starts (the text to keep ends there, or after the stop when
// the caller keeps it), or -1. *which gets the stop's index.
long stop_find(const StopSet *ss, const char *text, long len, long added, int *which);
