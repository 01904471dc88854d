#include "tokenizer/shard.h"
#include "util/util.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

_Static_assert(sizeof(ShardHeader) == 64, "shard header is 64 bytes on disk");

void shard_write(const char *path, uint32_t vocab_size, uint64_t tokenizer_fingerprint, const uint16_t *tokens,
                 const uint8_t *mask, uint64_t n_tokens, const uint64_t *doc_start, uint64_t n_docs) {
    ShardHeader h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, SHARD_MAGIC, 8);
    h.version = SHARD_VERSION;
    h.vocab_size = vocab_size;
    h.n_tokens = n_tokens;
    h.n_docs = n_docs;
    h.flags = mask ? SHARD_HAS_MASK : 0;
    h.tokenizer_fingerprint = tokenizer_fingerprint;
    uint32_t crc = 0;
    crc = crc32_update(crc, tokens, n_tokens * sizeof *tokens);
    if (mask) crc = crc32_update(crc, mask, n_tokens);
    crc = crc32_update(crc, doc_start, n_docs * sizeof *doc_start);
    h.crc32 = crc;
    OutFile *o = out_open(path);
    xfwrite(&h, sizeof h, 1, o->f, path);
    xfwrite(tokens, sizeof *tokens, n_tokens, o->f, path);
    if (mask) xfwrite(mask, 1, n_tokens, o->f, path);
    xfwrite(doc_start, sizeof *doc_start, n_docs, o->f, path);
    out_close(o);
}

void shard_load(const char *path, Shard *s) {
    memset(s, 0, sizeof *s);
    FILE *f = fopen(path, "rb");
    if (!f) fatal("cannot open shard %s: %s", path, strerror(errno));
    if (fread(&s->h, sizeof s->h, 1, f) != 1) fatal("%s: too short to be a shard (no 64-byte header)", path);
    if (memcmp(s->h.magic, SHARD_MAGIC, 8)) fatal("%s: not a tracellm shard (bad magic)", path);
    if (s->h.version != SHARD_VERSION) fatal("%s: shard version %u, this build reads version %u", path, s->h.version, SHARD_VERSION);
    int64_t size = file_size(path);
    uint64_t want = sizeof s->h + s->h.n_tokens * 2 + ((s->h.flags & SHARD_HAS_MASK) ? s->h.n_tokens : 0) + s->h.n_docs * 8;
    if (s->h.n_tokens > (1ULL << 40) || s->h.n_docs > s->h.n_tokens + 1 || (uint64_t)size != want)
        fatal("%s: size %lld bytes but the header describes %llu (truncated or corrupt shard)", path, (long long)size,
              (unsigned long long)want);
    s->tokens = xmalloc(s->h.n_tokens * sizeof *s->tokens);
    s->doc_start = xmalloc(s->h.n_docs * sizeof *s->doc_start);
    if (s->h.flags & SHARD_HAS_MASK) s->mask = xmalloc(s->h.n_tokens);
    if (fread(s->tokens, 2, s->h.n_tokens, f) != s->h.n_tokens || (s->mask && fread(s->mask, 1, s->h.n_tokens, f) != s->h.n_tokens) ||
        fread(s->doc_start, 8, s->h.n_docs, f) != s->h.n_docs)
        fatal("%s: read failed: %s", path, strerror(errno));
    fclose(f);
    uint32_t crc = 0;
    crc = crc32_update(crc, s->tokens, s->h.n_tokens * 2);
    if (s->mask) crc = crc32_update(crc, s->mask, s->h.n_tokens);
    crc = crc32_update(crc, s->doc_start, s->h.n_docs * 8);
    if (crc != s->h.crc32) fatal("%s: CRC32 mismatch (corrupt shard)", path);
    for (uint64_t i = 0; i < s->h.n_tokens; i++)
        if (s->tokens[i] >= s->h.vocab_size) fatal("%s: token %llu has id %u >= vocab size %u", path, (unsigned long long)i, s->tokens[i], s->h.vocab_size);
}

void shard_free(Shard *s) {
    free(s->tokens); free(s->mask); free(s->doc_start);
    memset(s, 0, sizeof *s);
}
