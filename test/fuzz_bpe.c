// libFuzzer target (make fuzz): the tokenizer on arbitrary bytes.
//   1. the input as a tokenizer file: bpe_load_mem must refuse it with a reason or load it,
//      never crash, read out of bounds or leak;
//   2. the input as text: decode(encode(x)) == x exactly, no special token ever produced, and the
//      pieces of any prefix cut at a safe split point are the pieces of the whole.
#include "tokenizer/bpe.h"
#include "tokenizer/pretok.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char *corpus =
    "[GENERATE GRAPH]id:S_000034483/latency:8/num_edges:7/depth:3\n<edges>\n"
    "(source is USER,edge_id is 0,communication finishes at 8 milliseconds,type is http,destination is MS_63670,"
    "communication starts at 0 milliseconds)\n"
    "(destination is MS_63670,type is rpc,communication starts at 0 milliseconds,edge_id is 0.1,source is MS_63670,"
    "communication finishes at 3 milliseconds)\n</edges>\n<layer>\n<subgraph of edge_id 1>num_edges:2</subgraph>\n</layer>\n";

static Bpe tok;
static BpeCache *cache;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!cache) {
        static const char *specials[] = {BPE_EOT, BPE_BOUNDARY};
        // repeat the corpus so pairs reach the minimum count
        size_t n = strlen(corpus), reps = 8;
        unsigned char *big = malloc(n * reps);
        for (size_t i = 0; i < reps; i++) memcpy(big + i * n, corpus, n);
        BpeText t = {big, n * reps};
        bpe_train(&tok, &t, 1, 256 + 2 + 120, specials, 2, 2, false);
        free(big);
        cache = bpe_cache_new();
    }
    Bpe b;
    char err[256];
    if (bpe_load_mem(&b, data, size, err, sizeof err)) {
        // a file that loads must be usable: encode and decode its own input
        BpeCache *c = bpe_cache_new();
        TokBuf ids = {0};
        ByteBuf out = {0};
        bpe_encode(&b, c, data, size, &ids);
        if (!bpe_decode(&b, ids.v, ids.n, &out, NULL) || out.n != size || (size && memcmp(out.v, data, size))) abort();
        free(ids.v); free(out.v); bpe_cache_free(c); bpe_free(&b);
    }
    if (size >= sizeof(BpeHeader)) {
        // the same bytes with a correct CRC, so mutations reach the checks behind it
        uint8_t *d = malloc(size);
        memcpy(d, data, size);
        BpeHeader h;
        memcpy(&h, d, sizeof h);
        h.crc32 = (uint32_t)crc32(crc32(0, Z_NULL, 0), d + sizeof h, (uInt)(size - sizeof h));
        memcpy(d, &h, sizeof h);
        if (bpe_load_mem(&b, d, size, err, sizeof err)) bpe_free(&b);
        free(d);
    }
    TokBuf ids = {0};
    ByteBuf out = {0};
    bpe_encode(&tok, cache, data, size, &ids);
    for (size_t i = 0; i < ids.n; i++)
        if (ids.v[i] >= (uint32_t)(256 + tok.n_merges)) abort();  // a special token from text
    if (!bpe_decode(&tok, ids.v, ids.n, &out, NULL) || out.n != size || (size && memcmp(out.v, data, size))) abort();
    size_t cut = pretok_safe_split(data, size, size / 2);
    TokBuf parts = {0};
    bpe_encode(&tok, cache, data, cut, &parts);
    bpe_encode(&tok, cache, data + cut, size - cut, &parts);
    if (parts.n != ids.n || (ids.n && memcmp(parts.v, ids.v, ids.n * sizeof *ids.v))) abort();
    free(ids.v); free(out.v); free(parts.v);
    return 0;
}
