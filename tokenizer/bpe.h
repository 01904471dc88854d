// Byte-level BPE for trace text: a trainer (incremental pair counts + a priority queue), an
// encoder, a decoder and the tokenizer file. Ids 0..255 are the bytes, 256..256+n_merges-1 the
// merges in the order they were learned, then the special tokens. Specials are never produced by
// encoding text (the encoder only ever emits bytes and merges), so a document boundary in the
// token stream cannot be forged by the text inside a document.
//
// File layout (little-endian):
//   BpeHeader (48 bytes) | uint32 merges[n_merges][2] | n_special x (uint32 len, bytes)
// crc32 (zlib) covers everything after the header; the fingerprint is a 64-bit hash of the
// pre-tokenizer version and the payload: shards and checkpoints record it so tokens are never
// decoded with a different tokenizer than the one that made them.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BPE_MAGIC "TLLMBPE\0"
#define BPE_VERSION 1u
#define BPE_MAX_VOCAB 65536  // shards store uint16 ids
#define BPE_EOT "<|endoftext|>"
// Starts the continuation of a sample that was longer than the context and had to be split,
// so the model never takes the middle of a sample for the beginning of a new one.
#define BPE_BOUNDARY "<|boundary|>"

typedef struct {
    char magic[8];
    uint32_t version;
    uint32_t pretok_version;
    uint32_t vocab_size;   // 256 + n_merges + n_special
    uint32_t n_merges;
    uint32_t n_special;
    uint32_t crc32;
    uint64_t fingerprint;
    uint8_t reserved[8];
} BpeHeader;

typedef struct {
    int vocab_size, n_merges, n_special;
    uint32_t *merges;        // (n_merges, 2): merge i joins merges[2i], merges[2i+1] into id 256+i
    char **special;          // (n_special) names; id of special k = 256 + n_merges + k
    uint64_t fingerprint;
    // derived from the above by every constructor
    unsigned char **tok;     // (vocab_size) the bytes each id stands for (a special: its name)
    uint32_t *tok_len;       // (vocab_size)
    uint64_t *mkey;          // merge lookup, open addressing: key (a<<32|b)+1, 0 = empty
    uint32_t *mval;          // merge index
    size_t mcap;
} Bpe;

typedef struct { uint32_t *v; size_t n, cap; } TokBuf;      // growable token ids
typedef struct { unsigned char *v; size_t n, cap; } ByteBuf; // growable bytes
void tokbuf_push(TokBuf *t, uint32_t id);

typedef struct { const unsigned char *p; size_t n; } BpeText;

// Learns vocab_size - 256 - n_special merges (fewer when no pair occurs min_count times, with a
// warning). Deterministic: the same texts give the same tokenizer for any thread count.
void bpe_train(Bpe *b, const BpeText *texts, int n_texts, int vocab_size, const char *const *specials,
               int n_special, int64_t min_count, bool progress);
void bpe_free(Bpe *b);
int bpe_special_id(const Bpe *b, const char *name);  // -1 when absent

// Encoding. A cache maps recently seen pre-tokens to their tokens (trace text repeats a few
// thousand pieces), one per thread.
typedef struct BpeCache BpeCache;
BpeCache *bpe_cache_new(void);
void bpe_cache_free(BpeCache *c);
// Appends the tokens of s[0..n) to out.
void bpe_encode(const Bpe *b, BpeCache *c, const unsigned char *s, size_t n, TokBuf *out);
// Appends the bytes of ids to out (a special as its name). Returns false, and *bad the
// position, when an id is >= vocab_size.
bool bpe_decode(const Bpe *b, const uint32_t *ids, size_t n, ByteBuf *out, size_t *bad);

// Files. bpe_save writes atomically; bpe_load exits with an error naming the file; bpe_load_mem
// is the checked parser underneath (returns false with a reason, never crashes on any bytes).
void bpe_save(const Bpe *b, const char *path);
void bpe_load(Bpe *b, const char *path);
bool bpe_load_mem(Bpe *b, const void *data, size_t n, char *err, size_t errlen);
