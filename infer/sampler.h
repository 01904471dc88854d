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
