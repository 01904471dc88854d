// The data loader over token shards (tokenizer/shard.h): batches of B rows of T+1 tokens taken as
// one contiguous window of B*T+1 tokens, walking the shards in the order given and wrapping
// around (the next epoch) at the end, like llm.c. A shard too small for one window is skipped.
// Its position (shard, offset, epoch) is all the state there is, so a checkpoint can restore it.
#pragma once
#include "tokenizer/shard.h"
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int n_shards;
    Shard *shards;
    const char **paths;
    uint32_t vocab_size;          // common to all shards
    uint64_t fingerprint;         // common to all shards
    bool has_mask;                // any shard carries a loss mask
    int B, T;
    uint64_t usable_tokens;       // tokens of shards that hold at least one window
    uint64_t windows_per_epoch;   // batches per pass over the data
    // position
    uint64_t shard, offset, epoch;
} Loader;

// Loads every shard (each verified by shard_load), checks they agree on vocabulary and tokenizer
// fingerprint (dies naming the two files otherwise) and that at least one batch fits.
void loader_open(Loader *l, const char *const *paths, int n, int B, int T);
void loader_free(Loader *l);
void loader_rewind(Loader *l);
// Next batch: inputs (B,T), targets (B,T), weight (B,T) = loss mask of each target (1 without a
// mask). Advances the position; returns true when it had to wrap around to a new epoch first.
bool loader_next(Loader *l, int32_t *inputs, int32_t *targets, float *weight);
// The rows of rank `rank` of `world` (B/world of them) of the next global batch of B rows: every
// rank calls it with the same loader state and all advance together (data parallelism, dist.h).
bool loader_next_rank(Loader *l, int rank, int world, int32_t *inputs, int32_t *targets, float *weight);
