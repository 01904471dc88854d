// KV-cache decoding (model/decode.h) against the full forward of model/gpt.h: the cached path must
// give the same logits at every position, for a batch of sequences of different lengths whose
// prompts are prefilled together (and cut into chunks), and reusing a cached prompt prefix must
// give exactly what recomputing it gives.
#include "model/decode.h"
#include "model/gpt.h"
#include "test/test.h"
#include "util/rng.h"
#include "util/util.h"
#include <math.h>

static GPT model;
static const GPTConfig cfg = {.n_layer = 2, .n_head = 4, .n_embd = 32, .max_seq_len = 48, .vocab_size = 91,
                              .padded_vocab_size = 128};

// Full-forward logits of one sequence: (T, Vp) copied out of the model's activations.
static float *full_logits(const int32_t *toks, int T) {
    gpt_forward(&model, toks, 1, T);
    size_t n = (size_t)T * cfg.padded_vocab_size;
    float *out = xmalloc(n * sizeof *out);
    memcpy(out, model.acts.logits, n * sizeof *out);
    return out;
}

static float max_diff(const float *a, const float *b, int n) {
    float m = 0;
    for (int i = 0; i < n; i++) { float d = fabsf(a[i] - b[i]); if (d > m || d != d) m = d != d ? INFINITY : d; }
    return m;
}

#define NSEQ 4
static int32_t seq[NSEQ][48];
static const int len[NSEQ] = {7, 23, 48, 2};     // whole sequences
static const int prompt[NSEQ] = {3, 15, 40, 1};  // prefilled part; the rest is decoded token by token

static void make_sequences(void) {
    Rng r;
    rng_seed(&r, 7);
    for (int s = 0; s < NSEQ; s++)
        for (int t = 0; t < len[s]; t++) seq[s][t] = (int32_t)rng_below(&r, cfg.vocab_size);
}

// Prefill all prompts in one call (chunks of maxN rows), then decode every sequence in lockstep
// feeding its true next token; compare each step's logits with the full forward's.
static void check_against_full(int maxN) {
    Decoder d;
    decoder_init(&d, &model, NSEQ + 1, cfg.max_seq_len, maxN);
    float *full[NSEQ];
    for (int s = 0; s < NSEQ; s++) full[s] = full_logits(seq[s], len[s]);
    int Vp = cfg.padded_vocab_size;
    DecodeRow rows[200];
    int n = 0;
    // slots in reverse order of sequences, so slot != sequence index
    for (int s = 0; s < NSEQ; s++)
        for (int t = 0; t < prompt[s]; t++)
            rows[n++] = (DecodeRow){.token = seq[s][t], .slot = NSEQ - s, .pos = t, .logits = t == prompt[s] - 1};
    int nl = 0;
    const float *lg = decoder_forward(&d, rows, n, &nl);
    CHECKF(nl == NSEQ, "%d logits rows", nl);
    float worst = 0;
    for (int s = 0; s < NSEQ; s++) {
        float e = max_diff(lg + (size_t)s * Vp, full[s] + (size_t)(prompt[s] - 1) * Vp, Vp);
        if (e > worst) worst = e;
    }
    int pos[NSEQ];
    for (int s = 0; s < NSEQ; s++) pos[s] = prompt[s];
    for (;;) {  // one decode row a sequence until each reaches its length
        int idx[NSEQ];
        n = 0;
        for (int s = 0; s < NSEQ; s++)
            if (pos[s] < len[s]) {
                idx[n] = s;
                rows[n++] = (DecodeRow){.token = seq[s][pos[s]], .slot = NSEQ - s, .pos = pos[s], .logits = true};
            }
        if (!n) break;
        lg = decoder_forward(&d, rows, n, &nl);
        REQUIRE(nl == n);
        for (int i = 0; i < n; i++) {
            int s = idx[i];
            float e = max_diff(lg + (size_t)i * Vp, full[s] + (size_t)pos[s] * Vp, Vp);
            if (e > worst) worst = e;
            pos[s]++;
        }
    }
    CHECKF(worst <= 1e-5f, "max |cached - full| = %g (maxN %d)", worst, maxN);
    for (int s = 0; s < NSEQ; s++) free(full[s]);
    decoder_free(&d);
}

static void test_cached_equals_full(void) { check_against_full(256); }
static void test_chunked_prefill_equals_full(void) { check_against_full(5); }  // prompts cut mid-sequence

// Three sequences share their first P tokens. Reuse: the prefix is run once in slot 0 and every
// sequence reads it from there (rows of the prefix and of its readers in the SAME call). Without
// reuse every sequence recomputes it. The logits must be bit-identical, and match the full forward.
static void test_prefix_reuse_identical(void) {
    enum { P = 11, NS = 3 };
    const int tot[NS] = {20, 14, 30};
    int32_t toks[NS][30];
    Rng r;
    rng_seed(&r, 99);
    for (int t = 0; t < P; t++) toks[0][t] = (int32_t)rng_below(&r, cfg.vocab_size);
    for (int s = 0; s < NS; s++) {
        memcpy(toks[s], toks[0], P * sizeof(int32_t));
        for (int t = P; t < tot[s]; t++) toks[s][t] = (int32_t)rng_below(&r, cfg.vocab_size);
    }
    int Vp = cfg.padded_vocab_size;
    Decoder reuse, plain;
    decoder_init(&reuse, &model, NS + 1, cfg.max_seq_len, 64);
    decoder_init(&plain, &model, NS + 1, cfg.max_seq_len, 64);
    DecodeRow rows[128];
    int n = 0, nl;
    for (int t = 0; t < P; t++) rows[n++] = (DecodeRow){.token = toks[0][t], .slot = 0, .pos = t};
    for (int s = 0; s < NS; s++)
        for (int t = P; t < tot[s]; t++)
            rows[n++] = (DecodeRow){.token = toks[s][t], .slot = s + 1, .pos = t, .pslot = 0, .plen = P, .logits = true};
    const float *lg = decoder_forward(&reuse, rows, n, &nl);
    int nr = nl;
    float *a = xmalloc((size_t)nl * Vp * sizeof *a);
    memcpy(a, lg, (size_t)nl * Vp * sizeof *a);
    n = 0;
    for (int s = 0; s < NS; s++)
        for (int t = 0; t < tot[s]; t++)
            rows[n++] = (DecodeRow){.token = toks[s][t], .slot = s + 1, .pos = t, .logits = t >= P};
    lg = decoder_forward(&plain, rows, n, &nl);
    REQUIRE(nl == nr);
    CHECKF(!memcmp(a, lg, (size_t)nl * Vp * sizeof *a), "prefix reuse changed logits by %g", max_diff(a, lg, nl * Vp));
    // and both agree with the full forward
    int at = 0;
    float worst = 0;
    for (int s = 0; s < NS; s++) {
        float *full = full_logits(toks[s], tot[s]);
        for (int t = P; t < tot[s]; t++, at++) {
            float e = max_diff(a + (size_t)at * Vp, full + (size_t)t * Vp, Vp);
            if (e > worst) worst = e;
        }
        free(full);
    }
    CHECKF(worst <= 1e-5f, "max |prefix-reuse - full| = %g", worst);
    // a later decode step reading the prefix in a separate call still agrees
    DecodeRow one = {.token = 5, .slot = 2, .pos = tot[1], .pslot = 0, .plen = P, .logits = true};
    lg = decoder_forward(&reuse, &one, 1, &nl);
    int32_t ext[31];
    memcpy(ext, toks[1], tot[1] * sizeof(int32_t));
    ext[tot[1]] = 5;
    float *full = full_logits(ext, tot[1] + 1);
    CHECKF(max_diff(lg, full + (size_t)tot[1] * Vp, Vp) <= 1e-5f, "decode after prefix differs");
    free(full); free(a);
    decoder_free(&reuse); decoder_free(&plain);
}

// A slot reused by a new, shorter sequence must not see the old one's keys.
static void test_slot_reuse(void) {
    Decoder d;
    decoder_init(&d, &model, 1, cfg.max_seq_len, 64);
    int Vp = cfg.padded_vocab_size, nl;
    DecodeRow rows[48];
    for (int t = 0; t < len[2]; t++) rows[t] = (DecodeRow){.token = seq[2][t], .slot = 0, .pos = t};
    decoder_forward(&d, rows, len[2], &nl);
    for (int t = 0; t < len[0]; t++) rows[t] = (DecodeRow){.token = seq[0][t], .slot = 0, .pos = t, .logits = t == len[0] - 1};
    const float *lg = decoder_forward(&d, rows, len[0], &nl);
    float *full = full_logits(seq[0], len[0]);
    CHECK(nl == 1);
    CHECKF(max_diff(lg, full + (size_t)(len[0] - 1) * Vp, Vp) <= 1e-5f, "stale cache leaked into a reused slot");
    free(full);
    decoder_free(&d);
}

int main(void) {
    // tiny tensors: one thread, so a loaded machine's OpenMP barriers do not dominate the run
    backend_cpu.set_threads(1);
    gpt_create(&model, &cfg, &backend_cpu);
    gpt_init_random(&model, 1234);
    make_sequences();
    RUN(test_cached_equals_full);
    RUN(test_chunked_prefill_equals_full);
    RUN(test_prefix_reuse_identical);
    RUN(test_slot_reuse);
    gpt_free(&model);
    TEST_END();
}
