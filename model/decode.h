// Inference over the GPT of model/gpt.h with a KV cache: the same parameters, the same ops (through
// the Backend table, so every backend that implements attention_decode runs it), no activations
// kept for backward. One call, decoder_forward, serves both phases of generation:
//   prefill  the rows are prompt tokens (many per sequence, a prompt may span several calls)
//   decode   the rows are the newest token of every active sequence (one each)
// and any mix of the two, which is what continuous batching needs.
//
// The cache: per layer l, k[l] and v[l] are (S, maxT, C): slot s, position t, channels (head h at
// h*hs). A slot holds one sequence; a row names its slot and position. A row may also name a
// prefix slot pslot and length plen: its positions < plen are read from pslot instead (a shared
// prompt prefix, e.g. the instruction preamble, computed once and never copied), the rest from
// its own slot. Position embeddings are absolute, so a prefix is valid for any sequence that
// starts with exactly its tokens.
#pragma once
#include "model/gpt.h"
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int32_t token;      // input token at this position
    int32_t slot, pos;  // where its k,v go; pos < maxT
    int32_t pslot, plen;// positions < plen come from slot pslot (plen 0: no prefix)
    bool logits;        // return the logits predicting the NEXT token
} DecodeRow;

typedef struct {
    GPT *m;                       // the weights (not owned)
    int S, maxT, maxN;            // slots, positions per slot, rows per forward
    float **k, **v;               // [L] each (S,maxT,C), backend memory
    // per-forward scratch, backend memory, maxN rows
    float *x, *ln, *mean, *rstd, *qkv, *atty, *proj, *res2, *fch, *fchg, *logits, *zeros;
    int32_t *d_tok, *d_pos, *d_slot, *d_pslot, *d_plen;  // (maxN,)
    // host
    DecodeRow *order;             // rows of one chunk, logits rows first
    int32_t *h_tok, *h_pos, *h_slot, *h_pslot, *h_plen;
    float *out; int out_cap;      // (out_cap, Vp) logits handed back
    int64_t rows_done;            // rows run so far (statistics)
} Decoder;

// slots S, positions per slot maxT (<= the model's max_seq_len), at most maxN rows per forward
// (larger calls are cut into chunks). Memory: 2*L*S*maxT*C floats of cache plus ~20*maxN*C + maxN*Vp.
void decoder_init(Decoder *d, GPT *m, int S, int maxT, int maxN);
void decoder_free(Decoder *d);
size_t decoder_cache_bytes(const GPT *m, int S, int maxT);
// Runs rows[0..n) through the model, storing their k,v in the cache. The one rule on order: a
// row's earlier positions (and the prefix it reads) must come from an earlier call or an EARLIER
// index of this call (calls of more than maxN rows run as consecutive chunks). Returns host logits (n_logits, Vp) in the order the rows with
// .logits appear (valid until the next call); *n_logits (may be NULL) gets their count.
const float *decoder_forward(Decoder *d, const DecodeRow *rows, int n, int *n_logits);
