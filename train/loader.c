// Batches from token shards; see loader.h.
#include "train/loader.h"
#include "util/util.h"
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static bool fits(const Loader *l, uint64_t s) { return l->shards[s].h.n_tokens >= (uint64_t)l->B * l->T + 1; }

void loader_open(Loader *l, const char *const *paths, int n, int B, int T) {
    memset(l, 0, sizeof *l);
    if (n < 1) fatal("no shard files given");
    l->n_shards = n;
    l->shards = xcalloc(n, sizeof *l->shards);
    l->paths = xcalloc(n, sizeof *l->paths);
    l->B = B; l->T = T;
    uint64_t window = (uint64_t)B * T;
    for (int i = 0; i < n; i++) {
        l->paths[i] = paths[i];
        shard_load(paths[i], &l->shards[i]);
        ShardHeader *h = &l->shards[i].h;
        if (i == 0) {
            l->vocab_size = h->vocab_size;
            l->fingerprint = h->tokenizer_fingerprint;
        } else if (h->tokenizer_fingerprint != l->fingerprint || h->vocab_size != l->vocab_size) {
            fatal("%s was made by another tokenizer than %s (fingerprint %016" PRIx64 " vocab %u vs %016" PRIx64
                  " vocab %u): all shards of a run must share one tokenizer",
                  paths[i], paths[0], h->tokenizer_fingerprint, h->vocab_size, l->fingerprint, l->vocab_size);
        }
        if (l->shards[i].mask) l->has_mask = true;
        if (fits(l, i)) {
            l->usable_tokens += h->n_tokens;
            l->windows_per_epoch += (h->n_tokens - 1) / window;
        }
    }
    if (!l->windows_per_epoch)
        fatal("%s%s: fewer than batch*seq_len+1 = %" PRIu64 " tokens in every shard; use a smaller --batch or --seq-len",
              paths[0], n > 1 ? " and the other shards" : "", window + 1);
    loader_rewind(l);
}

void loader_free(Loader *l) {
    for (int i = 0; i < l->n_shards; i++) shard_free(&l->shards[i]);
    free(l->shards);
    free(l->paths);
    memset(l, 0, sizeof *l);
}

// Moves to the first shard at or after the current one that fits a window (wrapping: new epoch).
static bool settle(Loader *l) {
    bool wrapped = false;
    while (l->shard >= (uint64_t)l->n_shards || !fits(l, l->shard) ||
           l->offset + (uint64_t)l->B * l->T + 1 > l->shards[l->shard].h.n_tokens) {
        l->offset = 0;
        if (++l->shard >= (uint64_t)l->n_shards) { l->shard = 0; l->epoch++; wrapped = true; }
    }
    return wrapped;
}

void loader_rewind(Loader *l) {
    l->shard = 0; l->offset = 0; l->epoch = 0;
    // the first usable shard, without counting an epoch
    while (!fits(l, l->shard)) l->shard++;
}

bool loader_next(Loader *l, int32_t *inputs, int32_t *targets, float *weight) {
    bool wrapped = settle(l);
    const Shard *s = &l->shards[l->shard];
    size_t BT = (size_t)l->B * l->T;
    const uint16_t *tok = s->tokens + l->offset;
    for (size_t i = 0; i < BT; i++) {
        inputs[i] = tok[i];
        targets[i] = tok[i + 1];
        weight[i] = s->mask ? (float)(s->mask[l->offset + i + 1] != 0) : 1.0f;
    }
    l->offset += BT;
    return wrapped;
}

// Data parallelism (train/dist.h): the loader is opened with the GLOBAL batch (B = ranks x rows
// per rank) so every rank walks the same windows, and rank r keeps rows [r*B/W, (r+1)*B/W) of
// each. W ranks together read exactly the tokens one process with the global batch reads: no
// sample twice in an epoch, none skipped, and the same position to checkpoint on every rank.
bool loader_next_rank(Loader *l, int rank, int world, int32_t *inputs, int32_t *targets, float *weight) {
    if (world < 1 || rank < 0 || rank >= world || l->B % world)
        fatal("internal: rank %d of %d cannot take an equal share of a batch of %d rows", rank, world, l->B);
    bool wrapped = settle(l);
    const Shard *s = &l->shards[l->shard];
    size_t rows = (size_t)(l->B / world) * l->T, lo = rank * rows;
    const uint16_t *tok = s->tokens + l->offset + lo;
    for (size_t i = 0; i < rows; i++) {
        inputs[i] = tok[i];
        targets[i] = tok[i + 1];
        weight[i] = s->mask ? (float)(s->mask[l->offset + lo + i + 1] != 0) : 1.0f;
    }
    l->offset += (size_t)l->B * l->T;
    return wrapped;
}
