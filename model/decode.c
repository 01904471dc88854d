// KV-cache inference over the GPT's parameters: model/decode.h. Reads like gpt_forward, with the
// batch flattened into rows and attention_decode in place of attention_forward.
#include "model/decode.h"
#include "util/util.h"
#include <stdlib.h>
#include <string.h>

size_t decoder_cache_bytes(const GPT *m, int S, int maxT) {
    return 2 * (size_t)m->cfg.n_layer * S * maxT * m->cfg.n_embd * m->be->act_bytes;
}

void decoder_init(Decoder *d, GPT *m, int S, int maxT, int maxN) {
    memset(d, 0, sizeof *d);
    const GPTConfig *c = &m->cfg;
    if (!m->be->attention_decode) fatal("the %s backend has no attention_decode op: it cannot run inference yet", m->be->name);
    if (S < 1 || maxN < 1) fatal("decoder: %d slots and %d rows per forward must be positive", S, maxN);
    if (maxT < 1 || maxT > c->max_seq_len) fatal("decoder: context %d is outside 1..%d (the model's max_seq_len)", maxT, c->max_seq_len);
    const Backend *be = m->be;
    d->m = m; d->S = S; d->maxT = maxT; d->maxN = maxN;
    // the cache and the activations are in the backend's compute type, the LayerNorm statistics fp32
    size_t C = c->n_embd, N = maxN, f = be->act_bytes, cell = (size_t)S * maxT * C * f;
    d->k = xcalloc(c->n_layer, sizeof *d->k);
    d->v = xcalloc(c->n_layer, sizeof *d->v);
    for (int l = 0; l < c->n_layer; l++) { d->k[l] = be->alloc(cell); d->v[l] = be->alloc(cell); }
    d->x = be->alloc(N * C * f);   d->ln = be->alloc(N * C * f);
    d->mean = be->alloc(N * sizeof(float)); d->rstd = be->alloc(N * sizeof(float));
    d->qkv = be->alloc(N * 3 * C * f);
    d->atty = be->alloc(N * C * f); d->proj = be->alloc(N * C * f); d->res2 = be->alloc(N * C * f);
    d->fch = be->alloc(N * 4 * C * f); d->fchg = be->alloc(N * 4 * C * f);
    d->logits = be->alloc(N * c->padded_vocab_size * f);
    d->zeros = be->alloc(C * f);   // a zero "position embedding" row: encoder_forward as a gather
    d->d_tok = be->alloc(N * 4); d->d_pos = be->alloc(N * 4); d->d_slot = be->alloc(N * 4);
    d->d_pslot = be->alloc(N * 4); d->d_plen = be->alloc(N * 4);
    d->order = xmalloc(N * sizeof *d->order);
    d->h_tok = xmalloc(N * 4); d->h_pos = xmalloc(N * 4); d->h_slot = xmalloc(N * 4);
    d->h_pslot = xmalloc(N * 4); d->h_plen = xmalloc(N * 4);
    d->out_cap = maxN;
    d->out = xmalloc((size_t)d->out_cap * c->padded_vocab_size * sizeof(float));
}

void decoder_free(Decoder *d) {
    if (!d->m) return;
    const Backend *be = d->m->be;
    for (int l = 0; l < d->m->cfg.n_layer; l++) { be->free(d->k[l]); be->free(d->v[l]); }
    free(d->k); free(d->v);
    float *dev[] = {d->x, d->ln, d->mean, d->rstd, d->qkv, d->atty, d->proj, d->res2, d->fch, d->fchg, d->logits, d->zeros};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) be->free(dev[i]);
    int32_t *idev[] = {d->d_tok, d->d_pos, d->d_slot, d->d_pslot, d->d_plen};
    for (size_t i = 0; i < 5; i++) be->free(idev[i]);
    free(d->order); free(d->h_tok); free(d->h_pos); free(d->h_slot); free(d->h_pslot); free(d->h_plen);
    free(d->out);
    memset(d, 0, sizeof *d);
}

// One chunk of N <= maxN rows. Rows that want logits are moved to the front, so the final
// LayerNorm and the (C -> Vp) classifier run on those rows only: every other op is per row, and
// attention stores all k,v before reading, so the order of rows inside a chunk is free.
static void forward_chunk(Decoder *d, const DecodeRow *rows, int N, int out_base) {
    GPT *m = d->m;
    const Backend *be = m->be;
    const GPTConfig *c = &m->cfg;
    int L = c->n_layer, NH = c->n_head, C = c->n_embd, Vp = c->padded_vocab_size;
    int nl = 0;
    for (int i = 0; i < N; i++) if (rows[i].logits) d->order[nl++] = rows[i];
    int j = nl;
    for (int i = 0; i < N; i++) if (!rows[i].logits) d->order[j++] = rows[i];
    for (int i = 0; i < N; i++) {
        const DecodeRow *r = &d->order[i];
        if (r->token < 0 || r->token >= c->vocab_size) fatal("decoder: token id %d is outside the vocabulary (%d)", r->token, c->vocab_size);
        if (r->slot < 0 || r->slot >= d->S || r->pslot < 0 || r->pslot >= d->S) fatal("decoder: slot %d / prefix slot %d outside 0..%d", r->slot, r->pslot, d->S - 1);
        if (r->pos < 0 || r->pos >= d->maxT) fatal("decoder: position %d is outside the context (%d)", r->pos, d->maxT);
        if (r->plen < 0 || r->plen > r->pos) fatal("decoder: prefix length %d must be in 0..position %d", r->plen, r->pos);
        d->h_tok[i] = r->token; d->h_pos[i] = r->pos; d->h_slot[i] = r->slot;
        d->h_pslot[i] = r->pslot; d->h_plen[i] = r->plen;
    }
    be->upload(d->d_tok, d->h_tok, (size_t)N * 4);
    be->upload(d->d_pos, d->h_pos, (size_t)N * 4);
    be->upload(d->d_slot, d->h_slot, (size_t)N * 4);
    be->upload(d->d_pslot, d->h_pslot, (size_t)N * 4);
    be->upload(d->d_plen, d->h_plen, (size_t)N * 4);
    float **p = m->param;
    // x (N,C) = wte[token] + wpe[pos]: two gathers through encoder_forward with a zero position row
    // (adding +0 is exact, so this is bit-identical to the training encoder), then one add.
    be->encoder_forward(d->proj, d->d_tok, p[P_WTE], d->zeros, N, 1, C);
    be->encoder_forward(d->atty, d->d_pos, p[P_WPE], d->zeros, N, 1, C);
    // x = the sum, fused with layer 0's first LayerNorm; every residual add comes with the
    // LayerNorm after it, as in the training forward (gpt.c)
    LayerParams lp = gpt_layer_params(m, 0);
    be->residual_layernorm_forward(d->x, d->ln, d->mean, d->rstd, d->proj, d->atty, lp.ln1w, lp.ln1b, N, C);
    for (int l = 0; l < L; l++) {
        lp = gpt_layer_params(m, l);
        be->matmul_forward(d->qkv, d->ln, lp.qkvw, lp.qkvb, N, C, 3 * C);
        be->attention_decode(d->atty, d->k[l], d->v[l], d->qkv, d->d_slot, d->d_pos, d->d_pslot, d->d_plen, N, C, NH,
                             d->maxT);
        be->matmul_forward(d->proj, d->atty, lp.attprojw, lp.attprojb, N, C, C);
        be->residual_layernorm_forward(d->res2, d->ln, d->mean, d->rstd, d->x, d->proj, lp.ln2w, lp.ln2b, N, C);
        be->matmul_gelu_forward(d->fch, d->fchg, d->ln, lp.fcw, lp.fcb, N, C, 4 * C);
        be->matmul_forward(d->proj, d->fchg, lp.fcprojw, lp.fcprojb, N, 4 * C, C);
        if (l + 1 < L) {
            LayerParams np = gpt_layer_params(m, l + 1);
            be->residual_layernorm_forward(d->x, d->ln, d->mean, d->rstd, d->res2, d->proj, np.ln1w, np.ln1b, N, C);
        } else {
            be->residual_forward(d->x, d->res2, d->proj, (size_t)N * C);
        }
    }
    if (nl == 0) return;
    be->layernorm_forward(d->ln, d->mean, d->rstd, d->x, p[P_LNFW], p[P_LNFB], nl, C);
    be->matmul_forward(d->logits, d->ln, p[P_WTE], NULL, nl, C, Vp);
    be->download_act(d->out + (size_t)out_base * Vp, d->logits, (size_t)nl * Vp);
}

const float *decoder_forward(Decoder *d, const DecodeRow *rows, int n, int *n_logits) {
    int total = 0;
    for (int i = 0; i < n; i++) total += rows[i].logits;
    if (total > d->out_cap) {
        d->out_cap = total;
        free(d->out);
        d->out = xmalloc((size_t)total * d->m->cfg.padded_vocab_size * sizeof(float));
    }
    int done = 0;
    for (int at = 0; at < n; at += d->maxN) {
        int N = n - at < d->maxN ? n - at : d->maxN;
        forward_chunk(d, rows + at, N, done);
        for (int i = 0; i < N; i++) done += rows[at + i].logits;
    }
    d->rows_done += n;
    if (n_logits) *n_logits = total;
    return d->out;
}
