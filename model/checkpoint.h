// Checkpoint files of a run directory:
//   model.bin  CkptHeader (128 bytes) | float32 params[n_params] (layout of model/gpt.h)
//   optim.bin  OptimHeader (128 bytes) | float32 m[n_params] | float32 v[n_params]
// Little-endian. crc32 (zlib) covers the header (with its crc32 field zeroed) and the payload,
// so a flipped bit anywhere or a truncated file is refused. Both are written to a temporary name,
// fsynced and renamed, so a crash leaves the previous checkpoint whole.
// model.bin is everything inference needs (config, tokenizer fingerprint, weights); optim.bin is
// what a bit-identical resume needs besides (moments, step, RNG, data-loader position).
#pragma once
#include "model/gpt.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CKPT_MAGIC "TLLMCKPT"
#define OPTIM_MAGIC "TLLMOPTM"
#define CKPT_VERSION 1u

typedef struct {
    char magic[8];
    uint32_t version;
    uint32_t header_size;  // 128
    int32_t n_layer, n_head, n_embd, max_seq_len, vocab_size, padded_vocab_size;
    uint64_t tokenizer_fingerprint;
    uint64_t step;         // optimizer steps taken
    uint64_t n_params;
    uint32_t crc32;
    uint32_t reserved0;
    uint8_t reserved[56];
} CkptHeader;

// Where training stands besides the weights: enough to continue bit-identically.
typedef struct {
    uint64_t step;
    uint64_t rng[4];                 // util/rng.h state
    uint64_t shard, offset, epoch;   // data-loader position (train/loader.h)
    uint64_t tokens_seen;
} TrainState;

typedef struct {
    char magic[8];
    uint32_t version;
    uint32_t header_size;  // 128
    uint64_t n_params;
    TrainState state;      // 72 bytes
    uint32_t crc32;
    uint32_t reserved0;
    uint8_t reserved[24];
} OptimHeader;

// Writes model.bin for m. Dies naming the file on a write error (disk full).
void checkpoint_save_model(const char *path, const GPT *m, uint64_t tokenizer_fingerprint, uint64_t step);
// Reads and checks a model file, creates *m on `be` with its weights. Returns false with a
// message naming the file and the problem (never crashes on any bytes).
bool checkpoint_load_model(const char *path, GPT *m, const Backend *be, CkptHeader *h, char *err, size_t errlen);
// The optimizer file for m (whose moments exist) and the training state.
void checkpoint_save_optim(const char *path, const GPT *m, const TrainState *st);
// Loads moments into m (allocating them) and the state; checks n_params against m.
bool checkpoint_load_optim(const char *path, GPT *m, TrainState *st, char *err, size_t errlen);
