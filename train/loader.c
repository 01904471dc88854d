// Batches from token shards; see loader.h.
#include "train/loader.h"
#include "util/rng.h"
#include "util/util.h"
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static bool fits(const Loader *l, uint64_t s) { return l->shards[s].h.n_tokens >= (uint64_t)l->B * l->T + 1; }

static void shuffle_rows(Loader *l, uint64_t seed);

void loader_open(Loader *l, const char *const *paths, int n, int B, int T, bool shuffled, uint64_t seed) {
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
    if (shuffled) { shuffle_rows(l, seed); return; }   // rows, not windows: a batch may span shards
    if (!l->windows_per_epoch)
        fatal("%s%s: fewer than batch*seq_len+1 = %" PRIu64 " tokens in every shard; use a smaller --batch or --seq-len",
              paths[0], n > 1 ? " and the other shards" : "", window + 1);
    loader_rewind(l);
}

void loader_free(Loader *l) {
    for (int i = 0; i < l->n_shards; i++) shard_free(&l->shards[i]);
    free(l->shards);
    free(l->paths);
    free(l->rows);
    free(l->first_row);
    memset(l, 0, sizeof *l);
}

// The shuffled order's rows (loader.h): how many each shard holds at any offset, and where they start.
static void shuffle_rows(Loader *l, uint64_t seed) {
    uint64_t T = (uint64_t)l->T;
    l->shuffled = true;
    l->seed = seed;
    l->rows = xcalloc(l->n_shards, sizeof *l->rows);
    l->first_row = xcalloc(l->n_shards, sizeof *l->first_row);
    l->n_rows = 0;
    l->usable_tokens = 0;
    for (int i = 0; i < l->n_shards; i++) {
        uint64_t n = l->shards[i].h.n_tokens;
        // rows of T+1 tokens starting at off + k*T for any off in [0, T): k*T + 2T <= n
        l->rows[i] = n >= 2 * T ? (n - T) / T : 0;
        l->first_row[i] = l->n_rows;
        l->n_rows += l->rows[i];
        if (l->rows[i]) l->usable_tokens += n;
    }
    if (l->n_rows < (uint64_t)l->B)
        fatal("%s%s: %" PRIu64 " rows of %d tokens fit (a shard needs %" PRIu64 " tokens for one at every offset), fewer than one batch "
              "of %d; use a smaller --batch or --seq-len, or train without --shuffle",
              l->paths[0], l->n_shards > 1 ? " and the other shards" : "", l->n_rows, l->T, 2 * T, l->B);
    l->windows_per_epoch = l->n_rows / l->B;
    loader_rewind(l);
}

// A permutation of [0, n) keyed by key: a 4-round Feistel network on the smallest even number of
// bits that covers n, walking the cycle until the value lands inside [0, n) (at most ~4 steps on
// average, since the domain is under 4n). Bijective whatever the round function.
static uint64_t permute(uint64_t i, uint64_t n, uint64_t key) {
    int half = 1;
    while ((1ull << (2 * half)) < n) half++;
    const uint64_t mask = (1ull << half) - 1;
    do {
        uint64_t lo = i & mask, hi = i >> half;
        for (uint64_t r = 0; r < 4; r++) {
            uint64_t v[3] = {lo, r, key};
            uint64_t f = hash_bytes(v, sizeof v, 0x6665697374656cULL) & mask;
            uint64_t t = hi ^ f;
            hi = lo;
            lo = t;
        }
        i = (hi << half) | lo;
    } while (i >= n);
    return i;
}

// Shuffled order: the row drawn j-th in the current epoch, as a pointer to its T+1 tokens (and the
// token offset of its first one, for the mask).
static const uint16_t *shuffled_row(const Loader *l, uint64_t j, const Shard **sh, uint64_t *at) {
    uint64_t e[2] = {l->seed, l->epoch};
    uint64_t key = hash_bytes(e, sizeof e, 0x6f72646572ULL);
    uint64_t r = permute(j, l->n_rows, key);
    int lo = 0, hi = l->n_shards - 1;   // the last shard whose first row is <= r
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (l->first_row[mid] <= r) lo = mid; else hi = mid - 1;
    }
    uint64_t s[3] = {l->seed, l->epoch, (uint64_t)lo};
    uint64_t off = hash_bytes(s, sizeof s, 0x6f6666736574ULL) % (uint64_t)l->T;   // this epoch's cut of shard lo
    *sh = &l->shards[lo];
    *at = off + (r - l->first_row[lo]) * (uint64_t)l->T;
    return (*sh)->tokens + *at;
}

// Rows [lo, lo + n) of the next shuffled batch (a new epoch first when fewer than B rows remain).
static bool next_shuffled(Loader *l, size_t lo, size_t n, int32_t *inputs, int32_t *targets, float *weight) {
    bool wrapped = false;
    if (l->offset + (uint64_t)l->B > l->n_rows) { l->offset = 0; l->epoch++; wrapped = true; }
    const size_t T = (size_t)l->T;
    for (size_t b = 0; b < n; b++) {
        const Shard *sh;
        uint64_t at;
        const uint16_t *tok = shuffled_row(l, l->offset + lo + b, &sh, &at);
        for (size_t t = 0; t < T; t++) {
            inputs[b * T + t] = tok[t];
            targets[b * T + t] = tok[t + 1];
            weight[b * T + t] = sh->mask ? (float)(sh->mask[at + t + 1] != 0) : 1.0f;
        }
    }
    l->offset += (uint64_t)l->B;
    return wrapped;
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
    if (l->shuffled) { l->shard = LOADER_SHUFFLED; return; }
    // the first usable shard, without counting an epoch
    while (!fits(l, l->shard)) l->shard++;
}

bool loader_next(Loader *l, int32_t *inputs, int32_t *targets, float *weight) {
    if (l->shuffled) return next_shuffled(l, 0, (size_t)l->B, inputs, targets, weight);
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
    if (l->shuffled) return next_shuffled(l, (size_t)(rank * (l->B / world)), (size_t)(l->B / world), inputs, targets, weight);
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
