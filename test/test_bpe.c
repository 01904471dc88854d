// The tokenizer and the shard packing: exact round trips, the pre-tokenizer's rules, the trainer
// against a from-scratch reference, special tokens, determinism, file errors, masks and splits.
#include "test/test.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretok.h"
#include "tokenizer/shards.h"
#include "tokenizer/shard.h"
#include "util/rng.h"
#include "util/util.h"
#include <stdint.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

// A trace-like corpus made here, so the core tests never depend on ../shared/data.
static char *synth_corpus(int graphs, uint64_t seed, size_t *len) {
    Rng r;
    rng_seed(&r, seed);
    ByteBuf b = {0};
    char line[512];
    static const char *types[] = {"http", "rpc", "mc", "db", "mq"};
    for (int g = 0; g < graphs; g++) {
        int n = 1 + (int)rng_below(&r, 6);
        int k = snprintf(line, sizeof line, "[GENERATE GRAPH]id:S_%09d/latency:%d/num_edges:%d/depth:%d\n<edges>\n",
                         (int)rng_below(&r, 50), (int)rng_below(&r, 3000), n, 1 + (int)rng_below(&r, 4));
        for (int e = 0; e < n; e++) {
            int st = (int)rng_below(&r, 100);
            k += snprintf(line + k, sizeof line - k,
                          "(source is MS_%05d,edge_id is 0.%d,communication starts at %d milliseconds,type is %s,"
                          "destination is MS_%05d,communication finishes at %d milliseconds)\n",
                          (int)rng_below(&r, 40), e + 1, st, types[rng_below(&r, 5)], (int)rng_below(&r, 40),
                          st + (int)rng_below(&r, 50));
            if (b.n + k + 1 > b.cap) grow((void **)&b.v, &b.cap, b.n + k + 1, 1);
            memcpy(b.v + b.n, line, k); b.n += k; k = 0;
        }
        const char *end = "</edges>\n";
        if (b.n + 16 > b.cap) grow((void **)&b.v, &b.cap, b.n + 16, 1);
        memcpy(b.v + b.n, end, strlen(end)); b.n += strlen(end);
    }
    b.v[b.n] = 0;
    *len = b.n;
    return (char *)b.v;
}

static const char *SPECIALS[] = {BPE_EOT, BPE_BOUNDARY};

static void train_on(Bpe *b, const char *s, size_t n, int vocab) {
    BpeText t = {(const unsigned char *)s, n};
    bpe_train(b, &t, 1, vocab, SPECIALS, 2, 2, false);
}

static bool round_trip(const Bpe *b, BpeCache *c, const unsigned char *s, size_t n, TokBuf *ids) {
    ids->n = 0;
    bpe_encode(b, c, s, n, ids);
    ByteBuf out = {0};
    bool ok = bpe_decode(b, ids->v, ids->n, &out, NULL) && out.n == n && (n == 0 || !memcmp(out.v, s, n));
    for (size_t i = 0; i < ids->n; i++) ok = ok && ids->v[i] < (uint32_t)(256 + b->n_merges);  // never a special
    free(out.v);
    return ok;
}

// Pieces of a string, as strings joined by '|'.
static void pieces(const char *s, char *out, size_t cap) {
    size_t n = strlen(s), i = 0, o = 0;
    while (i < n) {
        size_t k = pretok_next((const unsigned char *)s + i, n - i);
        if (o && o < cap - 1) out[o++] = '|';
        for (size_t j = 0; j < k && o < cap - 1; j++) out[o++] = s[i + j];
        i += k;
    }
    out[o] = 0;
}

static void test_pretok_rules(void) {
    struct { const char *in, *want; } cases[] = {
        {"communication starts at 12 milliseconds", "communication starts at |1|2| milliseconds"},
        {"(destination is MS_63670,type is http)", "(|destination is |MS_63670|,|type is http|)"},
        {"id:S_000034483/latency:8/caller:USER", "id|:|S_000034483|/|latency|:|8|/|caller|:|USER"},
        {"<edges>\n</layer>\n", "<edges>|\n|</layer>|\n"},
        {"<subgraph of edge_id 12>num_edges:6</subgraph>", "<subgraph of edge_id |1|2|>|num_edges|:|6|</subgraph>"},
        {"[GENERATE GRAPH]id", "[GENERATE GRAPH]|id"},
        {"T_123 and USER", "T_123| and USER"},
        {"= 0 - 0 + 1 = 1", "= |0| - |0| + |1| = |1"},
        {"requirements.\n\n ### Answer: \n", "requirements|.|\n\n| ###| Answer|:| \n"},
        {"copy caller from requirement's start_node", "copy caller from requirement's start_node"},
    };
    char got[512];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        pieces(cases[i].in, got, sizeof got);
        CHECKF(!strcmp(got, cases[i].want), "'%s' -> '%s', want '%s'", cases[i].in, got, cases[i].want);
    }
    // no piece is longer than PRETOK_MAX, whatever the text
    char *longw = xmalloc(1000);
    for (int i = 0; i < 999; i++) longw[i] = i % 7 == 6 ? ' ' : 'a';
    longw[999] = 0;
    for (size_t i = 0; i < 999;) {
        size_t k = pretok_next((unsigned char *)longw + i, 999 - i);
        CHECK(k >= 1 && k <= PRETOK_MAX);
        i += k;
    }
    free(longw);
}

// The rule that lets threads split text: pieces of the parts == pieces of the whole.
static void test_safe_split(void) {
    size_t n;
    char *s = synth_corpus(300, 7, &n);
    const unsigned char *u = (const unsigned char *)s;
    Bpe b;
    train_on(&b, s, n, 440);
    BpeCache *c = bpe_cache_new();
    TokBuf whole = {0}, parts = {0};
    bpe_encode(&b, c, u, n, &whole);
    for (size_t pos = 0; pos < n;) {
        size_t cut = pretok_safe_split(u, n, pos + 997);
        bpe_encode(&b, c, u + pos, cut - pos, &parts);
        pos = cut;
    }
    CHECKF(whole.n == parts.n && !memcmp(whole.v, parts.v, whole.n * sizeof *whole.v), "%zu vs %zu tokens", whole.n, parts.n);
    free(whole.v); free(parts.v); bpe_cache_free(c); bpe_free(&b); free(s);
}

static void test_round_trip_random_bytes(void) {
    size_t n;
    char *s = synth_corpus(200, 1, &n);
    Bpe b;
    train_on(&b, s, n, 420);
    CHECK(b.n_merges == 420 - 258);
    BpeCache *c = bpe_cache_new();
    TokBuf ids = {0};
    Rng r;
    rng_seed(&r, 42);
    unsigned char buf[4096];
    const char *alpha = "MS_0123456789 ,:/()<>[]\nabcdeis";
    int bad = 0;
    for (int it = 0; it < 3000; it++) {
        size_t len = rng_below(&r, sizeof buf);
        int mode = it % 3;
        for (size_t i = 0; i < len; i++)
            buf[i] = mode == 0 ? (unsigned char)rng_below(&r, 256)
                   : mode == 1 ? (unsigned char)alpha[rng_below(&r, strlen(alpha))]
                               : (unsigned char)s[(rng_below(&r, n - 64) + i) % n];  // corpus-like, shifted
        if (!round_trip(&b, c, buf, len, &ids)) bad++;
    }
    CHECKF(bad == 0, "%d of 3000 random strings did not round-trip", bad);
    CHECK(round_trip(&b, c, (const unsigned char *)"", 0, &ids) && ids.n == 0);
    free(ids.v); bpe_cache_free(c); bpe_free(&b); free(s);
}

static void test_round_trip_real_files(void) {
    SHARED_OR_SKIP(dir);
    const char *files[] = {"tabular_dataset.txt", "recursive_dataset.txt", "recursive_instruction_dataset.txt"};
    char path[1024];
    BpeText t[3];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/tracellm/%s", dir, files[i]);
        size_t n;
        t[i].p = (unsigned char *)read_file(path, &n);
        t[i].n = n;
    }
    Bpe b;
    bpe_train(&b, t, 3, 2048, SPECIALS, 2, 2, false);
    BpeCache *c = bpe_cache_new();
    TokBuf ids = {0};
    for (int i = 0; i < 3; i++) {
        CHECKF(round_trip(&b, c, t[i].p, t[i].n, &ids), "%s", files[i]);
        // the goal of issue 4: at least 4x fewer tokens than bytes on the recursive format
        if (i == 1) CHECKF((double)t[i].n / ids.n >= 4.0, "recursive: %.2f bytes/token", (double)t[i].n / ids.n);
    }
    free(ids.v); bpe_cache_free(c); bpe_free(&b);
    for (int i = 0; i < 3; i++) free((void *)t[i].p);
}

// A reference encoder: apply every merge, in the order learned, to each piece.
static void encode_reference(const Bpe *b, const unsigned char *s, size_t n, TokBuf *out) {
    uint32_t sym[PRETOK_MAX];
    for (size_t i = 0; i < n;) {
        size_t k = pretok_next(s + i, n - i), m = k;
        for (size_t j = 0; j < k; j++) sym[j] = s[i + j];
        for (int r = 0; r < b->n_merges && m > 1; r++) {
            size_t o = 0;
            for (size_t j = 0; j < m;) {
                if (j + 1 < m && sym[j] == b->merges[2 * r] && sym[j + 1] == b->merges[2 * r + 1]) { sym[o++] = 256 + r; j += 2; }
                else sym[o++] = sym[j++];
            }
            m = o;
        }
        for (size_t j = 0; j < m; j++) tokbuf_push(out, sym[j]);
        i += k;
    }
}

// A reference trainer: recount every pair over every piece before each merge (slow, obviously
// right); its merges must equal the incremental trainer's, including the tie-break.
static void test_trainer_matches_reference(void) {
    size_t n;
    char *s = synth_corpus(60, 3, &n);
    const unsigned char *u = (const unsigned char *)s;
    int vocab = 256 + 150 + 2;
    Bpe b;
    train_on(&b, s, n, vocab);
    // words = every piece occurrence, as symbol arrays
    size_t nw = 0;
    for (size_t i = 0; i < n; i += pretok_next(u + i, n - i)) nw++;
    uint32_t **w = xmalloc(nw * sizeof *w);
    size_t *wl = xmalloc(nw * sizeof *wl), k = 0;
    for (size_t i = 0; i < n;) {
        size_t l = pretok_next(u + i, n - i);
        w[k] = xmalloc(l * sizeof **w); wl[k] = l;
        for (size_t j = 0; j < l; j++) w[k][j] = u[i + j];
        k++; i += l;
    }
    int agree = 0;
    for (int m = 0; m < b.n_merges; m++) {
        // count pairs with a dense table over the ids seen so far
        int V = 256 + m;
        int64_t *cnt = xcalloc((size_t)V * V, sizeof *cnt);
        for (size_t i = 0; i < nw; i++)
            for (size_t j = 0; j + 1 < wl[i]; j++) cnt[(size_t)w[i][j] * V + w[i][j + 1]]++;
        size_t best = 0;
        for (size_t p = 1; p < (size_t)V * V; p++) if (cnt[p] > cnt[best]) best = p;  // first max = smallest (a, b)
        free(cnt);
        uint32_t x = (uint32_t)(best / V), y = (uint32_t)(best % V);
        if (x != b.merges[2 * m] || y != b.merges[2 * m + 1]) {
            CHECKF(0, "merge %d: reference (%u,%u), trainer (%u,%u)", m, x, y, b.merges[2 * m], b.merges[2 * m + 1]);
            break;
        }
        agree++;
        for (size_t i = 0; i < nw; i++) {
            size_t o = 0;
            for (size_t j = 0; j < wl[i];) {
                if (j + 1 < wl[i] && w[i][j] == x && w[i][j + 1] == y) { w[i][o++] = 256 + m; j += 2; }
                else w[i][o++] = w[i][j++];
            }
            wl[i] = o;
        }
    }
    CHECK(agree == 150);
    // and the encoder segments the training text exactly as training did
    TokBuf fast = {0}, ref = {0};
    BpeCache *c = bpe_cache_new();
    bpe_encode(&b, c, u, n, &fast);
    encode_reference(&b, u, n, &ref);
    size_t tr = 0;
    for (size_t i = 0; i < nw; i++) tr += wl[i];
    CHECKF(fast.n == ref.n && fast.n == tr && !memcmp(fast.v, ref.v, fast.n * 4), "encoder %zu, reference %zu, trainer %zu tokens",
           fast.n, ref.n, tr);
    for (size_t i = 0; i < nw; i++) free(w[i]);
    free(w); free(wl); free(fast.v); free(ref.v); bpe_cache_free(c); bpe_free(&b); free(s);
}

static void test_specials(void) {
    size_t n;
    char *s = synth_corpus(100, 5, &n);
    Bpe b;
    train_on(&b, s, n, 440);
    int eot = bpe_special_id(&b, BPE_EOT), bnd = bpe_special_id(&b, BPE_BOUNDARY);
    CHECK(eot == 256 + b.n_merges && bnd == eot + 1 && b.vocab_size == bnd + 1);
    CHECK(bpe_special_id(&b, "<|nope|>") == -1);
    // the special's own spelling in text is ordinary bytes
    const char *t = "<|endoftext|><|boundary|> <|endoftext|>\n";
    BpeCache *c = bpe_cache_new();
    TokBuf ids = {0};
    CHECK(round_trip(&b, c, (const unsigned char *)t, strlen(t), &ids));
    for (size_t i = 0; i < ids.n; i++) CHECK(ids.v[i] != (uint32_t)eot && ids.v[i] != (uint32_t)bnd);
    // decoding a special gives its name; an id past the vocabulary is refused with its position
    uint32_t x[3] = {'a', (uint32_t)eot, (uint32_t)b.vocab_size};
    ByteBuf out = {0};
    size_t bad = 99;
    CHECK(bpe_decode(&b, x, 2, &out, NULL) && out.n == 1 + strlen(BPE_EOT) && !memcmp(out.v + 1, BPE_EOT, out.n - 1));
    CHECK(!bpe_decode(&b, x, 3, &out, &bad) && bad == 2);
    free(out.v); free(ids.v); bpe_cache_free(c); bpe_free(&b); free(s);
}

static void test_determinism(void) {
    size_t n;
    char *s = synth_corpus(3000, 11, &n);  // > 1 MB so counting uses several chunks
    CHECK(n > (1u << 20));
    Bpe a, b;
#ifdef _OPENMP
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
    train_on(&a, s, n, 400);
#ifdef _OPENMP
    omp_set_num_threads(nt > 1 ? nt : 2);
#endif
    train_on(&b, s, n, 400);
#ifdef _OPENMP
    omp_set_num_threads(nt);
#endif
    CHECK(a.n_merges == 400 - 258 && a.n_merges == b.n_merges && !memcmp(a.merges, b.merges, (size_t)a.n_merges * 8));
    CHECK(a.fingerprint == b.fingerprint);
    bpe_free(&b);
    train_on(&b, s, n, 401);  // one more merge: same prefix, another fingerprint
    CHECK(!memcmp(a.merges, b.merges, (size_t)a.n_merges * 8) && a.fingerprint != b.fingerprint);
    bpe_free(&a); bpe_free(&b); free(s);
}

static char tmpdir[256];

static void test_file(void) {
    size_t n;
    char *s = synth_corpus(100, 9, &n);
    Bpe b, c;
    train_on(&b, s, n, 440);
    char path[300];
    snprintf(path, sizeof path, "%s/tok.bin", tmpdir);
    bpe_save(&b, path);
    bpe_load(&c, path);
    CHECK(c.vocab_size == b.vocab_size && c.fingerprint == b.fingerprint && c.n_special == 2);
    CHECK(!memcmp(c.merges, b.merges, (size_t)b.n_merges * 8) && !strcmp(c.special[1], BPE_BOUNDARY));
    bpe_free(&c);
    size_t fl;
    char *data = read_file(path, &fl), err[256];
    CHECK(bpe_load_mem(&c, data, fl, err, sizeof err));
    bpe_free(&c);
    struct { size_t off; int delta; size_t len; const char *want; } cases[] = {
        {0, 1, 0, "bad magic"},
        {8, 1, 0, "version"},
        {12, 1, 0, "pre-tokenizer"},
        {16, 1, 0, "inconsistent sizes"},
        {60, 1, 0, "CRC32"},              // a payload byte
        {32, 1, 0, "fingerprint"},
        {0, 0, 20, "too short"},
        {0, 0, fl - 3, "CRC32"},           // truncated payload
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *d = xmalloc(fl);
        memcpy(d, data, fl);
        d[cases[i].off] = (char)(d[cases[i].off] + cases[i].delta);
        size_t len = cases[i].len ? cases[i].len : fl;
        err[0] = 0;
        bool ok = bpe_load_mem(&c, d, len, err, sizeof err);
        CHECKF(!ok && strstr(err, cases[i].want), "case %zu: ok=%d err='%s', want '%s'", i, ok, err, cases[i].want);
        if (ok) bpe_free(&c);
        free(d);
    }
    free(data); bpe_free(&b); free(s);
}

// Packing: end-of-text after each document, split never truncate, doc starts, masks.
static void test_pack(void) {
    uint32_t ids[23];
    uint8_t mask[23];
    for (int i = 0; i < 23; i++) { ids[i] = 10 + i; mask[i] = i >= 5; }
    const uint32_t EOT = 1000, BND = 1001;
    Packed p = {0};
    pack_document(&p, ids, mask, 3, 8, EOT, BND, true);    // 3 + eot = 4: fits
    pack_document(&p, ids, mask, 23, 8, EOT, BND, true);   // 24 tokens: 8 + (1+7) + (1+7) + (1+2)
    pack_document(&p, ids, mask, 7, 8, EOT, BND, true);    // exactly 8: fits
    CHECK(p.documents == 3 && p.split_documents == 1 && p.pieces == 6 && p.max_doc_tokens == 24);
    uint64_t want_starts[] = {0, 4, 12, 20, 28, 31};
    CHECK(p.n_docs == 6);
    for (int i = 0; i < 6 && i < (int)p.n_docs; i++) CHECKF(p.doc_start[i] == want_starts[i], "start %d = %llu", i, (unsigned long long)p.doc_start[i]);
    CHECK(p.n == 39);
    // every piece fits, and removing boundary tokens gives back each document + eot exactly
    for (size_t d = 0; d < p.n_docs; d++) {
        uint64_t e = d + 1 < p.n_docs ? p.doc_start[d + 1] : p.n;
        CHECK(e - p.doc_start[d] <= 8);
        CHECK((p.tokens[p.doc_start[d]] == BND) == (d == 2 || d == 3 || d == 4));
    }
    size_t j = 4;
    for (int i = 0; i < 23; i++) {
        while (p.tokens[j] == BND) { CHECK(p.mask[j] == 0); j++; }
        CHECKF(p.tokens[j] == ids[i] && p.mask[j] == mask[i], "doc 2 token %d", i);
        j++;
    }
    CHECK(p.tokens[j] == EOT && p.mask[j] == 1);
    CHECK(p.tokens[3] == EOT && p.tokens[38] == EOT && p.mask[0] == 0);
    int64_t trained = 0;
    for (size_t i = 0; i < p.n; i++) trained += p.mask[i];
    CHECK(trained == p.trained_tokens);
    packed_free(&p);
    // without a mask stream
    pack_document(&p, ids, NULL, 23, 1000, EOT, BND, false);
    CHECK(p.mask == NULL && p.n == 24 && p.split_documents == 0 && p.trained_tokens == 24);
    packed_free(&p);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_bpe.%d", (int)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", tmpdir);
    if (system(cmd)) return 1;
    RUN(test_pretok_rules);
    RUN(test_safe_split);
    RUN(test_round_trip_random_bytes);
    RUN(test_round_trip_real_files);
    RUN(test_trainer_matches_reference);
    RUN(test_specials);
    RUN(test_determinism);
    RUN(test_file);
    RUN(test_pack);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) return 1;
    TEST_END();
}
