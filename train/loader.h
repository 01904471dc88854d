// The data loader over token shards (tokenizer/shard.h): batches of B rows of T+1 tokens.
//
// Sequential (the default): a batch is one contiguous window of B*T+1 tokens, walking the shards
// in the order given and wrapping around (the next epoch) at the end, like llm.c's first loader.
// Every epoch sees the same windows with the same row boundaries. A shard too small for one window
// is skipped.
//
// Shuffled (`train --shuffle`, loader_open(..., true, seed)): every epoch cuts each shard into rows of T+1 tokens
// at a fresh offset in [0, T) and draws them in a fresh order, so a document split by a row
// boundary in one epoch is seen whole in another and batches mix differently. The order is a
// keyed permutation of the row indices (a Feistel network, no table), a function of (seed, epoch):
// the position is still (epoch, rows drawn), so a checkpoint restores it exactly. When fewer than B
// rows remain, the epoch ends without them (a different few each epoch: each has its own order).
//
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
    uint64_t usable_tokens;       // tokens of shards that hold at least one window (shuffled: one row)
    uint64_t windows_per_epoch;   // batches per pass over the data
    // shuffled order: rows[s] rows of shard s at most (room for any offset), first_row[s]
    // the index of shard s's first row, n_rows = their sum; the permutation's key
    bool shuffled;
    uint64_t seed, n_rows, *rows, *first_row;
    // position. Sequential: shard and token offset. Shuffled: shard = LOADER_SHUFFLED, offset = rows
    // of this epoch already drawn.
    uint64_t shard, offset, epoch;
} Loader;
#define LOADER_SHUFFLED UINT64_MAX

// Loads every shard (each verified by shard_load), checks they agree on vocabulary and tokenizer
// fingerprint (dies naming the two files otherwise) and that at least one batch fits: in one shard
// (sequential), or in rows of all shards together (shuffled, keyed by seed; a shard needs 2*T
// tokens for a row at every offset).
void loader_open(Loader *l, const char *const *paths, int n, int B, int T, bool shuffled, uint64_t seed);
void loader_free(Loader *l);
void loader_rewind(Loader *l);
// Next batch: inputs (B,T), targets (B,T), weight (B,T) = loss mask of each target (1 without a
// mask). Advances the position; returns true when it had to wrap around to a new epoch first.
bool loader_next(Loader *l, int32_t *inputs, int32_t *targets, float *weight);
// The rows of rank `rank` of `world` (B/world of them) of the next global batch of B rows: every
// rank calls it with the same loader state and all advance together (data parallelism, dist.h).
bool loader_next_rank(Loader *l, int rank, int world, int32_t *inputs, int32_t *targets, float *weight);
