// Token shards: what training reads. One file holds a stream of uint16 token ids, documents
// separated by the end-of-text token, optionally a per-token loss mask (instruction tuning:
// 1 = answer token that is trained on, 0 = instruction token), and the token offset where each
// document (sample) starts. Layout, little-endian:
//   ShardHeader (64 bytes) | uint16 tokens[n_tokens] | uint8 mask[n_tokens] if SHARD_HAS_MASK
//   | uint64 doc_start[n_docs]
// crc32 (zlib) covers everything after the header, so a truncated or corrupt shard is refused.
#pragma once
#include <stdbool.h>
#include <stdint.h>

#define SHARD_MAGIC "TLLMSHRD"
#define SHARD_VERSION 1u
#define SHARD_HAS_MASK 1u

typedef struct {
    char magic[8];
    uint32_t version;
    uint32_t vocab_size;
    uint64_t n_tokens;
    uint64_t n_docs;
    uint32_t flags;
    uint32_t crc32;
    uint64_t tokenizer_fingerprint;  // must match the tokenizer used for training and generation
    uint8_t reserved[16];
} ShardHeader;

typedef struct {
    ShardHeader h;
    uint16_t *tokens;     // (n_tokens,)
    uint8_t *mask;        // (n_tokens,) or NULL
    uint64_t *doc_start;  // (n_docs,)
} Shard;

// Writes atomically (temporary name, fsync, rename). mask may be NULL.
void shard_write(const char *path, uint32_t vocab_size, uint64_t tokenizer_fingerprint, const uint16_t *tokens,
                 const uint8_t *mask, uint64_t n_tokens, const uint64_t *doc_start, uint64_t n_docs);
// Loads and verifies a shard; on any problem prints an error naming the file and what is wrong
// and exits. Free with shard_free.
void shard_load(const char *path, Shard *s);
void shard_free(Shard *s);
