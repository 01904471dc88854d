// Packing encoded documents into the token stream that shards hold (tokenizer/shard.h), used by
// `tracellm shards`. Every document ends with <|endoftext|>. A document (plus its end-of-text)
// longer than seq_len tokens is split into pieces of at most seq_len tokens, never truncated:
// every piece after the first starts with <|boundary|>. Each piece's first token is recorded as a
// document start, so a loader can align sequences to samples. Mask (instruction data only):
// 1 = the model is trained to predict this token (answer tokens and the answer's end-of-text),
// 0 = prompt tokens and <|boundary|>.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint16_t *tokens; uint8_t *mask;      // (n,) ; mask NULL when packing without masks
    uint64_t *doc_start;                  // (n_docs,) offsets into tokens
    size_t n, cap, n_docs, dcap;
    int64_t documents, split_documents, pieces, max_doc_tokens, trained_tokens;
} Packed;

// Appends one document: ids (n,), mask (n,) or NULL (then every token has mask 1).
// with_mask decides whether the stream carries a mask at all; it must be the same for every call.
void pack_document(Packed *p, const uint32_t *ids, const uint8_t *mask, size_t n, int seq_len, uint32_t eot,
                   uint32_t boundary, bool with_mask);
void packed_free(Packed *p);

int cmd_shards(int argc, char **argv);
