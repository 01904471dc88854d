// Deterministic random numbers: xoshiro256** seeded through splitmix64. The same seed gives the
// same stream on every machine, which is what makes splits, shuffles and sampling reproducible.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct { uint64_t s[4]; } Rng;

void rng_seed(Rng *r, uint64_t seed);
uint64_t rng_u64(Rng *r);
double rng_uniform(Rng *r);                 // [0, 1)
uint64_t rng_below(Rng *r, uint64_t n);     // [0, n), unbiased; n > 0
double rng_normal(Rng *r);                  // standard normal (Box-Muller)
void rng_shuffle(Rng *r, void *base, int n, int elem_size);
// A stable 64-bit hash of bytes (FNV-1a then a splitmix finaliser): used where a decision must
// depend only on a record's content, never on input order (the train/val split).
uint64_t hash_bytes(const void *p, size_t n, uint64_t seed);
