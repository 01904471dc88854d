// Byte-level BPE: training, encoding, decoding and the file. See bpe.h for the id layout and the
// file format, pretok.h for how text is cut before merging.
//
// Training works on distinct pre-tokens ("words") with their counts, never on the raw text: trace
// text is made of a few thousand distinct pieces repeated millions of times. A pair table holds,
// for every adjacent symbol pair, its count (summed over word occurrences) and the words it occurs
// in; an indexed max-heap orders pairs by count. A merge rewrites only the words that hold the
// pair and adjusts the counts of the pairs around it, so each merge costs what it touches, not a
// rescan of the corpus.
#include "tokenizer/bpe.h"
#include "tokenizer/pretok.h"
#include "util/progress.h"
#include "util/rng.h"
#include "util/util.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

_Static_assert(sizeof(BpeHeader) == 48, "tokenizer header is 48 bytes on disk");

void tokbuf_push(TokBuf *t, uint32_t id) {
    if (t->n == t->cap) grow((void **)&t->v, &t->cap, t->n + 1, sizeof *t->v);
    t->v[t->n++] = id;
}
static void bytebuf_append(ByteBuf *b, const void *p, size_t n) {
    if (n == 0) return;
    if (b->n + n > b->cap) grow((void **)&b->v, &b->cap, b->n + n, 1);
    memcpy(b->v + b->n, p, n);
    b->n += n;
}

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL; x ^= x >> 33;
    return x;
}
// Fast hash for short pieces (the encoder's cache key): 8 bytes at a time.
static inline uint64_t hash_piece(const unsigned char *s, size_t n) {
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ n;
    while (n >= 8) { uint64_t w; memcpy(&w, s, 8); h = mix64(h ^ w); s += 8; n -= 8; }
    uint64_t w = 0;
    memcpy(&w, s, n);
    return mix64(h ^ w ^ ((uint64_t)n << 56));
}

// ---------------------------------------------------------------------------------------------
// Derived tables: token bytes and the merge lookup. Every constructor ends here.

static uint32_t merge_find(const Bpe *b, uint32_t a, uint32_t c) {
    uint64_t key = ((uint64_t)a << 32 | c) + 1;
    for (size_t i = mix64(key) & (b->mcap - 1);; i = (i + 1) & (b->mcap - 1)) {
        if (b->mkey[i] == key) return b->mval[i];
        if (!b->mkey[i]) return UINT32_MAX;
    }
}

static uint64_t fingerprint(const Bpe *b) {
    uint64_t h = hash_bytes(b->merges, (size_t)b->n_merges * 8, PRETOK_VERSION);
    for (int k = 0; k < b->n_special; k++) h = hash_bytes(b->special[k], strlen(b->special[k]) + 1, h);
    return h;
}

static void bpe_derive(Bpe *b) {
    b->vocab_size = 256 + b->n_merges + b->n_special;
    b->tok = xcalloc(b->vocab_size, sizeof *b->tok);
    b->tok_len = xcalloc(b->vocab_size, sizeof *b->tok_len);
    for (int i = 0; i < 256; i++) { b->tok[i] = xmalloc(1); b->tok[i][0] = (unsigned char)i; b->tok_len[i] = 1; }
    b->mcap = 16;
    while (b->mcap < (size_t)b->n_merges * 2 + 2) b->mcap *= 2;
    b->mkey = xcalloc(b->mcap, sizeof *b->mkey);
    b->mval = xcalloc(b->mcap, sizeof *b->mval);
    for (int m = 0; m < b->n_merges; m++) {
        uint32_t x = b->merges[2 * m], y = b->merges[2 * m + 1], id = 256 + m;
        b->tok_len[id] = b->tok_len[x] + b->tok_len[y];
        b->tok[id] = xmalloc(b->tok_len[id]);
        memcpy(b->tok[id], b->tok[x], b->tok_len[x]);
        memcpy(b->tok[id] + b->tok_len[x], b->tok[y], b->tok_len[y]);
        uint64_t key = ((uint64_t)x << 32 | y) + 1;
        size_t i = mix64(key) & (b->mcap - 1);
        while (b->mkey[i]) i = (i + 1) & (b->mcap - 1);  // merges are distinct pairs by construction
        b->mkey[i] = key; b->mval[i] = m;
    }
    for (int k = 0; k < b->n_special; k++) {
        int id = 256 + b->n_merges + k;
        b->tok_len[id] = strlen(b->special[k]);
        b->tok[id] = (unsigned char *)xstrdup(b->special[k]);
    }
    b->fingerprint = fingerprint(b);
}

void bpe_free(Bpe *b) {
    if (b->tok) for (int i = 0; i < b->vocab_size; i++) free(b->tok[i]);
    for (int k = 0; k < b->n_special; k++) free(b->special[k]);
    free(b->tok); free(b->tok_len); free(b->mkey); free(b->mval); free(b->merges); free(b->special);
    memset(b, 0, sizeof *b);
}

int bpe_special_id(const Bpe *b, const char *name) {
    for (int k = 0; k < b->n_special; k++)
        if (!strcmp(b->special[k], name)) return 256 + b->n_merges + k;
    return -1;
}

// ---------------------------------------------------------------------------------------------
// Training, step 1: count distinct pre-tokens. Each thread counts a share of ~1 MB chunks (cut
// at pretok_safe_split, so the pieces are the same as for the whole text) into its own table;
// the tables are summed. Counts are exact integers, so the result is independent of threads.

typedef struct {
    uint64_t *hash;          // 0 = empty slot
    uint32_t *off, *len;     // piece bytes in arena
    int64_t *count;
    size_t cap, n;
    ByteBuf arena;
} WordMap;

static void wordmap_init(WordMap *m, size_t cap) {
    memset(m, 0, sizeof *m);
    m->cap = cap;
    m->hash = xcalloc(cap, sizeof *m->hash);
    m->off = xmalloc(cap * sizeof *m->off);
    m->len = xmalloc(cap * sizeof *m->len);
    m->count = xmalloc(cap * sizeof *m->count);
}
static void wordmap_free(WordMap *m) { free(m->hash); free(m->off); free(m->len); free(m->count); free(m->arena.v); }

static void wordmap_add(WordMap *m, const unsigned char *s, uint32_t n, int64_t count);
static void wordmap_grow(WordMap *m) {
    WordMap bigger;
    wordmap_init(&bigger, m->cap * 2);
    bigger.arena = m->arena;  // reuse the byte arena as is: offsets stay valid
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->hash[i]) continue;
        size_t j = m->hash[i] & (bigger.cap - 1);
        while (bigger.hash[j]) j = (j + 1) & (bigger.cap - 1);
        bigger.hash[j] = m->hash[i]; bigger.off[j] = m->off[i]; bigger.len[j] = m->len[i]; bigger.count[j] = m->count[i];
    }
    bigger.n = m->n;
    m->arena.v = NULL;
    wordmap_free(m);
    *m = bigger;
}
static void wordmap_add(WordMap *m, const unsigned char *s, uint32_t n, int64_t count) {
    uint64_t h = hash_piece(s, n) | 1;
    size_t i = h & (m->cap - 1);
    for (; m->hash[i]; i = (i + 1) & (m->cap - 1))
        if (m->hash[i] == h && m->len[i] == n && !memcmp(m->arena.v + m->off[i], s, n)) { m->count[i] += count; return; }
    if (m->arena.n + n > UINT32_MAX) fatal("bpe train: more than 4 GB of distinct pre-tokens");
    m->hash[i] = h; m->off[i] = (uint32_t)m->arena.n; m->len[i] = n; m->count[i] = count;
    bytebuf_append(&m->arena, s, n);
    if (++m->n * 2 > m->cap) wordmap_grow(m);
}

typedef struct { const unsigned char *p; size_t n; } Chunk;

static void count_words(const BpeText *texts, int n_texts, WordMap *out, bool progress) {
    Chunk *chunks = NULL; size_t nc = 0, cc = 0; double total = 0;
    for (int t = 0; t < n_texts; t++) {
        const unsigned char *s = texts[t].p;
        size_t n = texts[t].n, pos = 0;
        total += n;
        while (pos < n) {
            size_t end = pos + (1u << 20) < n ? pretok_safe_split(s, n, pos + (1u << 20)) : n;
            if (nc == cc) grow((void **)&chunks, &cc, nc + 1, sizeof *chunks);
            chunks[nc++] = (Chunk){s + pos, end - pos};
            pos = end;
        }
    }
    int nt = 1;
#ifdef _OPENMP
    nt = omp_get_max_threads();
#endif
    WordMap *maps = xcalloc(nt, sizeof *maps);
    Progress pr; progress_start(&pr, "bpe count", "MB", total / 1e6);
    double done = 0;
    #pragma omp parallel num_threads(nt)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        wordmap_init(&maps[tid], 1 << 16);
        #pragma omp for schedule(dynamic, 1)
        for (size_t c = 0; c < nc; c++) {
            const unsigned char *s = chunks[c].p;
            size_t n = chunks[c].n, i = 0;
            while (i < n) {
                size_t k = pretok_next(s + i, n - i);
                wordmap_add(&maps[tid], s + i, (uint32_t)k, 1);
                i += k;
            }
            #pragma omp critical(bpe_progress)
            { done += n; if (progress && tid == 0) progress_update(&pr, done / 1e6, done, -1); }
        }
    }
    if (progress) progress_end(&pr, done / 1e6, done);
    *out = maps[0];
    for (int t = 1; t < nt; t++) {
        for (size_t i = 0; i < maps[t].cap; i++)
            if (maps[t].hash[i]) wordmap_add(out, maps[t].arena.v + maps[t].off[i], maps[t].len[i], maps[t].count[i]);
        wordmap_free(&maps[t]);
    }
    free(maps); free(chunks);
}

// ---------------------------------------------------------------------------------------------
// Training, step 2: merges over the distinct words.

typedef struct { int32_t *v; int n, cap; } IntList;

typedef struct {
    // words: symbols in one arena, word w at sym[woff[w] .. woff[w]+wlen[w])
    uint32_t *sym; uint64_t *woff; uint32_t *wlen; int64_t *wcount; int nw;
    // pairs: open-addressing index key -> pair, and per pair its count, heap slot and words
    uint64_t *pkey; int64_t *pcount; int32_t *ppos; IntList *pocc; size_t np, pcap;
    uint64_t *tkey; int32_t *tval; size_t tcap;   // the index: key+1 -> pair
    int32_t *heap; size_t nh;                      // pair ids, max count first, then smallest key
} Trainer;

static inline bool heap_before(const Trainer *t, int32_t x, int32_t y) {
    if (t->pcount[x] != t->pcount[y]) return t->pcount[x] > t->pcount[y];
    return t->pkey[x] < t->pkey[y];  // ties: the smaller (a, b) first, so training is deterministic
}
static void heap_swap(Trainer *t, size_t i, size_t j) {
    int32_t x = t->heap[i], y = t->heap[j];
    t->heap[i] = y; t->heap[j] = x; t->ppos[y] = (int32_t)i; t->ppos[x] = (int32_t)j;
}
static void heap_fix(Trainer *t, size_t i) {
    while (i > 0 && heap_before(t, t->heap[i], t->heap[(i - 1) / 2])) { heap_swap(t, i, (i - 1) / 2); i = (i - 1) / 2; }
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < t->nh && heap_before(t, t->heap[l], t->heap[m])) m = l;
        if (r < t->nh && heap_before(t, t->heap[r], t->heap[m])) m = r;
        if (m == i) return;
        heap_swap(t, i, m); i = m;
    }
}

static void pair_index_grow(Trainer *t) {
    size_t cap = t->tcap ? t->tcap * 2 : 1 << 16;
    uint64_t *k = xcalloc(cap, sizeof *k);
    int32_t *v = xmalloc(cap * sizeof *v);
    for (size_t i = 0; i < t->tcap; i++) {
        if (!t->tkey[i]) continue;
        size_t j = mix64(t->tkey[i]) & (cap - 1);
        while (k[j]) j = (j + 1) & (cap - 1);
        k[j] = t->tkey[i]; v[j] = t->tval[i];
    }
    free(t->tkey); free(t->tval);
    t->tkey = k; t->tval = v; t->tcap = cap;
}

// Adds delta to the count of pair (a, b); with w >= 0 also records that word w holds it.
static void pair_add(Trainer *t, uint32_t a, uint32_t b, int64_t delta, int32_t w) {
    uint64_t key = ((uint64_t)a << 32 | b) + 1;
    size_t i = mix64(key) & (t->tcap - 1);
    while (t->tkey[i] && t->tkey[i] != key) i = (i + 1) & (t->tcap - 1);
    int32_t p;
    if (t->tkey[i]) p = t->tval[i];
    else {
        if (t->np == t->pcap) {
            size_t c = t->pcap;
            grow((void **)&t->pkey, &c, t->np + 1, sizeof *t->pkey);
            t->pcount = xrealloc(t->pcount, c * sizeof *t->pcount);
            t->ppos = xrealloc(t->ppos, c * sizeof *t->ppos);
            t->pocc = xrealloc(t->pocc, c * sizeof *t->pocc);
            t->heap = xrealloc(t->heap, c * sizeof *t->heap);
            t->pcap = c;
        }
        p = (int32_t)t->np++;
        t->pkey[p] = key - 1; t->pcount[p] = 0; t->pocc[p] = (IntList){0};
        t->tkey[i] = key; t->tval[i] = p;
        t->heap[t->nh] = p; t->ppos[p] = (int32_t)t->nh++;
        if (t->np * 2 > t->tcap) pair_index_grow(t);
    }
    t->pcount[p] += delta;
    heap_fix(t, t->ppos[p]);
    if (w >= 0) {
        IntList *o = &t->pocc[p];
        if (o->n == 0 || o->v[o->n - 1] != w) {
            if (o->n == o->cap) { o->cap = o->cap ? o->cap * 2 : 4; o->v = xrealloc(o->v, o->cap * sizeof *o->v); }
            o->v[o->n++] = w;
        }
    }
}

static void word_pairs(Trainer *t, int32_t w, int sign) {
    const uint32_t *s = t->sym + t->woff[w];
    for (uint32_t i = 0; i + 1 < t->wlen[w]; i++) pair_add(t, s[i], s[i + 1], sign * t->wcount[w], sign > 0 ? w : -1);
}

void bpe_train(Bpe *b, const BpeText *texts, int n_texts, int vocab_size, const char *const *specials,
               int n_special, int64_t min_count, bool progress) {
    memset(b, 0, sizeof *b);
    int target = vocab_size - 256 - n_special;
    if (target < 0 || vocab_size > BPE_MAX_VOCAB)
        fatal("vocab size %d: must be between %d (bytes + specials) and %d", vocab_size, 256 + n_special, BPE_MAX_VOCAB);
    WordMap wm;
    count_words(texts, n_texts, &wm, progress);

    Trainer t = {0};
    t.nw = (int)wm.n;
    t.sym = xmalloc((wm.arena.n + 1) * sizeof *t.sym);
    t.woff = xmalloc((wm.n + 1) * sizeof *t.woff);
    t.wlen = xmalloc((wm.n + 1) * sizeof *t.wlen);
    t.wcount = xmalloc((wm.n + 1) * sizeof *t.wcount);
    size_t nw = 0, off = 0;
    for (size_t i = 0; i < wm.cap; i++) {
        if (!wm.hash[i]) continue;
        t.woff[nw] = off; t.wlen[nw] = wm.len[i]; t.wcount[nw] = wm.count[i];
        for (uint32_t j = 0; j < wm.len[i]; j++) t.sym[off + j] = wm.arena.v[wm.off[i] + j];
        off += wm.len[i]; nw++;
    }
    wordmap_free(&wm);
    pair_index_grow(&t);
    for (int32_t w = 0; w < t.nw; w++) word_pairs(&t, w, +1);

    b->merges = xmalloc((size_t)(target > 0 ? target : 1) * 2 * sizeof *b->merges);
    int32_t *stamp = xmalloc((t.nw + 1) * sizeof *stamp);
    for (int32_t w = 0; w < t.nw; w++) stamp[w] = -1;
    Progress pr; progress_start(&pr, "bpe merges", "merges", target);
    int m = 0;
    for (; m < target; m++) {
        if (t.nh == 0) break;
        int32_t p = t.heap[0];
        if (t.pcount[p] < min_count || t.pcount[p] <= 0) break;
        uint32_t x = (uint32_t)(t.pkey[p] >> 32), y = (uint32_t)t.pkey[p], id = 256 + m;
        b->merges[2 * m] = x; b->merges[2 * m + 1] = y;
        IntList occ = t.pocc[p];  // detached: nothing appends to a merged pair
        t.pocc[p] = (IntList){0};
        for (int k = 0; k < occ.n; k++) {
            int32_t w = occ.v[k];
            if (stamp[w] == m) continue;
            stamp[w] = m;
            uint32_t *s = t.sym + t.woff[w], n = t.wlen[w];
            bool has = false;
            for (uint32_t i = 0; i + 1 < n && !has; i++) has = s[i] == x && s[i + 1] == y;
            if (!has) continue;
            word_pairs(&t, w, -1);
            uint32_t o = 0;
            for (uint32_t i = 0; i < n;) {
                if (i + 1 < n && s[i] == x && s[i + 1] == y) { s[o++] = id; i += 2; }
                else s[o++] = s[i++];
            }
            t.wlen[w] = o;
            word_pairs(&t, w, +1);
        }
        free(occ.v);
        if (progress) progress_update(&pr, m + 1, 0, -1);
    }
    if (progress) progress_end(&pr, m, 0);
    if (m < target) {
        bool exhausted = t.nh == 0 || t.pcount[t.heap[0]] == 0;
        warnf("bpe train: %s after %d merges (asked for %d): vocabulary is %d, not %d", exhausted
              ? "every distinct pre-token is already a single token" : "no pair left that occurs --min-count times",
              m, target, 256 + m + n_special, vocab_size);
    }
    b->n_merges = m;
    b->n_special = n_special;
    b->special = xcalloc(n_special + 1, sizeof *b->special);
    for (int k = 0; k < n_special; k++) b->special[k] = xstrdup(specials[k]);
    for (size_t i = 0; i < t.np; i++) free(t.pocc[i].v);
    free(t.sym); free(t.woff); free(t.wlen); free(t.wcount); free(t.pkey); free(t.pcount); free(t.ppos);
    free(t.pocc); free(t.tkey); free(t.tval); free(t.heap); free(stamp);
    bpe_derive(b);
}

// ---------------------------------------------------------------------------------------------
// Encoding: pre-tokenize, then merge each piece. A piece is merged by repeatedly joining every
// occurrence (left to right) of its lowest-ranked pair; merges only create pairs of higher rank,
// so this is exactly what training did to the same piece.

#define CACHE_CAP (1u << 16)  // slots; cleared when half full
struct BpeCache {
    uint64_t *hash;
    uint32_t *koff, *klen, *toff, *tlen;
    size_t n;
    ByteBuf keys;
    TokBuf toks;
};

BpeCache *bpe_cache_new(void) {
    BpeCache *c = xcalloc(1, sizeof *c);
    c->hash = xcalloc(CACHE_CAP, sizeof *c->hash);
    c->koff = xmalloc(CACHE_CAP * sizeof *c->koff);
    c->klen = xmalloc(CACHE_CAP * sizeof *c->klen);
    c->toff = xmalloc(CACHE_CAP * sizeof *c->toff);
    c->tlen = xmalloc(CACHE_CAP * sizeof *c->tlen);
    return c;
}
void bpe_cache_free(BpeCache *c) {
    if (!c) return;
    free(c->hash); free(c->koff); free(c->klen); free(c->toff); free(c->tlen); free(c->keys.v); free(c->toks.v);
    free(c);
}

static size_t merge_piece(const Bpe *b, const unsigned char *s, size_t n, uint32_t *sym) {
    for (size_t i = 0; i < n; i++) sym[i] = s[i];
    while (n > 1) {
        uint32_t best = UINT32_MAX;
        for (size_t i = 0; i + 1 < n; i++) {
            uint32_t r = merge_find(b, sym[i], sym[i + 1]);
            if (r < best) best = r;
        }
        if (best == UINT32_MAX) break;
        uint32_t x = b->merges[2 * best], y = b->merges[2 * best + 1], o = 0;
        for (size_t i = 0; i < n;) {
            if (i + 1 < n && sym[i] == x && sym[i + 1] == y) { sym[o++] = 256 + best; i += 2; }
            else sym[o++] = sym[i++];
        }
        n = o;
    }
    return n;
}

void bpe_encode(const Bpe *b, BpeCache *c, const unsigned char *s, size_t n, TokBuf *out) {
    uint32_t sym[PRETOK_MAX];
    size_t i = 0;
    while (i < n) {
        size_t k = pretok_next(s + i, n - i);
        const unsigned char *piece = s + i;
        i += k;
        if (k == 1) { tokbuf_push(out, piece[0]); continue; }
        uint64_t h = hash_piece(piece, k) | 1;
        size_t slot = h & (CACHE_CAP - 1);
        for (; c->hash[slot]; slot = (slot + 1) & (CACHE_CAP - 1))
            if (c->hash[slot] == h && c->klen[slot] == k && !memcmp(c->keys.v + c->koff[slot], piece, k)) break;
        if (c->hash[slot]) {
            const uint32_t *t = c->toks.v + c->toff[slot];
            if (out->n + c->tlen[slot] > out->cap) grow((void **)&out->v, &out->cap, out->n + c->tlen[slot], sizeof *out->v);
            memcpy(out->v + out->n, t, c->tlen[slot] * sizeof *t);
            out->n += c->tlen[slot];
            continue;
        }
        size_t m = merge_piece(b, piece, k, sym);
        for (size_t j = 0; j < m; j++) tokbuf_push(out, sym[j]);
        if (c->n * 2 >= CACHE_CAP) {  // full: start over (the working set of trace text is small)
            memset(c->hash, 0, CACHE_CAP * sizeof *c->hash);
            c->n = 0; c->keys.n = 0; c->toks.n = 0;
            for (slot = h & (CACHE_CAP - 1); c->hash[slot]; slot = (slot + 1) & (CACHE_CAP - 1)) {}
        }
        c->hash[slot] = h; c->koff[slot] = (uint32_t)c->keys.n; c->klen[slot] = (uint32_t)k;
        c->toff[slot] = (uint32_t)c->toks.n; c->tlen[slot] = (uint32_t)m;
        bytebuf_append(&c->keys, piece, k);
        for (size_t j = 0; j < m; j++) tokbuf_push(&c->toks, sym[j]);
        c->n++;
    }
}

bool bpe_decode(const Bpe *b, const uint32_t *ids, size_t n, ByteBuf *out, size_t *bad) {
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >= (uint32_t)b->vocab_size) { if (bad) *bad = i; return false; }
        bytebuf_append(out, b->tok[ids[i]], b->tok_len[ids[i]]);
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// The file.

static void payload(const Bpe *b, ByteBuf *p) {
    bytebuf_append(p, b->merges, (size_t)b->n_merges * 8);
    for (int k = 0; k < b->n_special; k++) {
        uint32_t len = (uint32_t)strlen(b->special[k]);
        bytebuf_append(p, &len, 4);
        bytebuf_append(p, b->special[k], len);
    }
}

void bpe_save(const Bpe *b, const char *path) {
    ByteBuf p = {0};
    payload(b, &p);
    BpeHeader h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, BPE_MAGIC, 8);
    h.version = BPE_VERSION; h.pretok_version = PRETOK_VERSION;
    h.vocab_size = b->vocab_size; h.n_merges = b->n_merges; h.n_special = b->n_special;
    h.crc32 = (uint32_t)crc32(crc32(0, Z_NULL, 0), p.v, (uInt)p.n);
    h.fingerprint = b->fingerprint;
    OutFile *o = out_open(path);
    xfwrite(&h, sizeof h, 1, o->f, path);
    if (p.n) xfwrite(p.v, 1, p.n, o->f, path);
    out_close(o);
    free(p.v);
}

static bool fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap; va_start(ap, fmt); vsnprintf(err, errlen, fmt, ap); va_end(ap);
    return false;
}

bool bpe_load_mem(Bpe *b, const void *data, size_t n, char *err, size_t errlen) {
    memset(b, 0, sizeof *b);
    BpeHeader h;
    if (n < sizeof h) return fail(err, errlen, "too short to be a tokenizer (%zu bytes, header is %zu)", n, sizeof h);
    memcpy(&h, data, sizeof h);
    if (memcmp(h.magic, BPE_MAGIC, 8)) return fail(err, errlen, "not a tracellm tokenizer (bad magic)");
    if (h.version != BPE_VERSION) return fail(err, errlen, "tokenizer file version %u, this build reads version %u", h.version, BPE_VERSION);
    if (h.pretok_version != PRETOK_VERSION)
        return fail(err, errlen, "trained with pre-tokenizer rules version %u, this build has version %u", h.pretok_version, PRETOK_VERSION);
    if (h.vocab_size > BPE_MAX_VOCAB || h.n_merges > BPE_MAX_VOCAB || h.n_special > BPE_MAX_VOCAB ||
        h.vocab_size != 256 + h.n_merges + h.n_special)
        return fail(err, errlen, "inconsistent sizes: vocab %u, merges %u, specials %u", h.vocab_size, h.n_merges, h.n_special);
    const unsigned char *p = (const unsigned char *)data + sizeof h, *end = (const unsigned char *)data + n;
    if ((size_t)(end - p) < (size_t)h.n_merges * 8) return fail(err, errlen, "truncated: %u merges do not fit", h.n_merges);
    uint32_t crc = (uint32_t)crc32(crc32(0, Z_NULL, 0), p, (uInt)(end - p));
    if (crc != h.crc32) return fail(err, errlen, "CRC32 mismatch (corrupt or truncated tokenizer file)");
    b->n_merges = h.n_merges;
    b->merges = xmalloc((size_t)h.n_merges * 8 + 8);
    memcpy(b->merges, p, (size_t)h.n_merges * 8);
    p += (size_t)h.n_merges * 8;
    for (uint32_t m = 0; m < h.n_merges; m++)
        if (b->merges[2 * m] >= 256 + m || b->merges[2 * m + 1] >= 256 + m) {
            free(b->merges); memset(b, 0, sizeof *b);
            return fail(err, errlen, "merge %u refers to a token that does not exist yet", m);
        }
    b->special = xcalloc(h.n_special + 1, sizeof *b->special);
    for (uint32_t k = 0; k < h.n_special; k++) {
        uint32_t len;
        const char *why = NULL;
        if (end - p < 4) why = "truncated special token";
        else {
            memcpy(&len, p, 4); p += 4;
            if (len == 0 || len > 256 || (size_t)(end - p) < len || memchr(p, 0, len)) why = "bad special token";
        }
        for (uint32_t j = 0; !why && j < k; j++)
            if (strlen(b->special[j]) == len && !memcmp(b->special[j], p, len)) why = "duplicate special token";
        if (why) {
            b->n_special = (int)k; bpe_free(b);
            return fail(err, errlen, "%s (number %u)", why, k);
        }
        b->special[k] = xstrndup((const char *)p, len);
        p += len;
        b->n_special = (int)k + 1;
    }
    if (p != end) { bpe_free(b); return fail(err, errlen, "%zu unexpected bytes after the special tokens", (size_t)(end - p)); }
    bpe_derive(b);
    if (b->fingerprint != h.fingerprint) { bpe_free(b); return fail(err, errlen, "fingerprint mismatch (corrupt header)"); }
    return true;
}

void bpe_load(Bpe *b, const char *path) {
    size_t n;
    char *data = read_file(path, &n), err[256];
    if (!bpe_load_mem(b, data, n, err, sizeof err)) fatal("%s: %s", path, err);
    free(data);
}
