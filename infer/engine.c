// The inference engine (infer/engine.h): queue, scheduler, prefix cache, one model call per step.
#include "infer/engine.h"
#include "util/util.h"
#include <stdlib.h>
#include <string.h>

const char *finish_reason_name(int r) {
    static const char *const names[] = {"stop", "eot", "max_tokens", "context", "mask_empty"};
    return r >= 0 && r <= FIN_MASK_EMPTY ? names[r] : "?";
}

void engine_config_default(EngineConfig *c) {
    memset(c, 0, sizeof *c);
    c->batch = 64;
    c->prefill_chunk = 512;
    c->prefix_slots = 4;
    c->eot = -1;
    c->sampling = (SamplerConfig){.temperature = 0.8f, .top_k = 50, .top_p = 1.0f};
}

void engine_init(Engine *e, GPT *m, const EngineConfig *cfg, const EngineHooks *hooks) {
    memset(e, 0, sizeof *e);
    e->cfg = *cfg;
    e->m = m;
    if (hooks) e->hooks = *hooks;
    EngineConfig *c = &e->cfg;
    if (c->ctx <= 0 || c->ctx > m->cfg.max_seq_len) c->ctx = m->cfg.max_seq_len;
    if (c->naive) { c->batch = 1; c->prefix_slots = 0; }
    // the reference loop samples straight from m->acts.logits: host fp32 memory
    if (c->naive && m->be != &backend_cpu) fatal("engine: the naive reference loop runs on the cpu backend only (this is %s)", m->be->name);
    if (c->batch < 1) fatal("engine: batch %d must be positive", c->batch);
    if (c->prefill_chunk < c->batch) c->prefill_chunk = c->batch;  // every decode row fits one call
    if (c->prefix_slots < 0) c->prefix_slots = 0;
    if (!c->naive) decoder_init(&e->dec, m, c->batch + c->prefix_slots, c->ctx, c->prefill_chunk);
    sampler_init(&e->sampler, m->cfg.vocab_size);
    e->seq = xcalloc(c->batch, sizeof *e->seq);
    e->active = xcalloc(c->batch, sizeof *e->active);
    e->pre = xcalloc(c->prefix_slots ? c->prefix_slots : 1, sizeof *e->pre);
    for (int i = 0; i < c->prefix_slots; i++) e->pre[i].slot = c->batch + i;
    e->rows_cap = c->prefill_chunk * 2;
    e->rows = xmalloc(e->rows_cap * sizeof *e->rows);
    e->row_seq = xmalloc(e->rows_cap * sizeof *e->row_seq);
}

void engine_free(Engine *e) {
    if (!e->m) return;
    if (!e->cfg.naive) decoder_free(&e->dec);
    sampler_free(&e->sampler);
    for (int i = 0; i < e->q_n; i++) free((void *)e->q[(e->q_head + i) % e->q_cap].prompt);
    free(e->q);
    for (int i = 0; i < e->cfg.batch; i++) free(e->seq[i].tokens);
    for (int i = 0; i < e->cfg.prefix_slots; i++) free(e->pre[i].tokens);
    free(e->seq); free(e->active); free(e->pre); free(e->rows); free(e->row_seq); free(e->naive_buf);
    memset(e, 0, sizeof *e);
}

int engine_active(const Engine *e) {
    int n = 0;
    for (int i = 0; i < e->cfg.batch; i++) n += e->active[i];
    return n;
}

void engine_submit(Engine *e, const EngineRequest *r) {
    if (r->prompt_len < 1 || r->prompt_len > e->cfg.ctx)
        fatal("request %llu: prompt of %d tokens does not fit the context of %d tokens", (unsigned long long)r->id,
              r->prompt_len, e->cfg.ctx);
    for (int i = 0; i < r->prompt_len; i++)
        if (r->prompt[i] < 0 || r->prompt[i] >= e->m->cfg.vocab_size)
            fatal("request %llu: prompt token %d at %d is outside the vocabulary (%d)", (unsigned long long)r->id,
                  r->prompt[i], i, e->m->cfg.vocab_size);
    if (e->q_n == e->q_cap) {  // grow the ring, unrolling it
        int cap = e->q_cap ? e->q_cap * 2 : 64;
        EngineRequest *q = xmalloc(cap * sizeof *q);
        for (int i = 0; i < e->q_n; i++) q[i] = e->q[(e->q_head + i) % e->q_cap];
        free(e->q);
        e->q = q; e->q_cap = cap; e->q_head = 0;
    }
    EngineRequest c = *r;
    int32_t *p = xmalloc(r->prompt_len * sizeof *p);
    memcpy(p, r->prompt, r->prompt_len * sizeof *p);
    c.prompt = p;
    if (c.prefix_len < 0 || c.prefix_len > c.prompt_len) c.prefix_len = 0;
    e->q[(e->q_head + e->q_n++) % e->q_cap] = c;
}

// ---- prefix cache ----

// The entry holding exactly prompt[0..n), creating it (evicting the least recently used free
// entry) when absent; *hit tells whether it existed (its rows are then not run again).
// -1 when every entry is in use by active sequences.
static int prefix_acquire(Engine *e, const int32_t *prompt, int n, bool *hit) {
    uint64_t h = hash_bytes(prompt, n * sizeof *prompt, 0x7072656669785ULL);
    int victim = -1;
    for (int i = 0; i < e->cfg.prefix_slots; i++) {
        PrefixEntry *p = &e->pre[i];
        if (p->tokens && p->hash == h && p->n == n && !memcmp(p->tokens, prompt, n * sizeof *prompt)) {
            p->refs++; p->used = e->step; *hit = true;
            return i;
        }
        if (p->refs == 0 && (victim < 0 || !p->tokens || (e->pre[victim].tokens && p->used < e->pre[victim].used))) victim = i;
    }
    *hit = false;
    if (victim < 0) return -1;
    PrefixEntry *p = &e->pre[victim];
    p->tokens = xrealloc(p->tokens, n * sizeof *prompt);
    memcpy(p->tokens, prompt, n * sizeof *prompt);
    p->n = n; p->hash = h; p->refs = 1; p->ready = false; p->used = e->step;
    return victim;
}

// ---- admission and release ----

static void admit(Engine *e) {
    for (int s = 0; s < e->cfg.batch && e->q_n > 0; s++) {
        if (e->active[s]) continue;
        EngineRequest r = e->q[e->q_head];
        e->q_head = (e->q_head + 1) % e->q_cap;
        e->q_n--;
        EngineSeq *q = &e->seq[s];
        int32_t *keep = q->tokens; int cap = q->cap;
        memset(q, 0, sizeof *q);
        q->tokens = keep; q->cap = cap;
        q->req = r;
        if (q->cap < r.prompt_len + 16) {
            q->cap = r.prompt_len + 256;
            q->tokens = xrealloc(q->tokens, q->cap * sizeof *q->tokens);
        }
        memcpy(q->tokens, r.prompt, r.prompt_len * sizeof *q->tokens);
        free((void *)r.prompt);
        q->req.prompt = q->tokens;  // the queue's copy is gone; point at the sequence's own
        q->n_tokens = r.prompt_len;
        q->slot = s;
        q->prefix = -1;
        // the last prompt token always runs in the sequence's own slot: its logits are needed
        int plen = r.prefix_len < r.prompt_len ? r.prefix_len : r.prompt_len - 1;
        if (e->cfg.prefix_slots > 0 && plen >= 1) {
            bool hit;
            int p = prefix_acquire(e, q->tokens, r.prefix_len, &hit);
            if (p >= 0) {
                q->prefix = p; q->plen = plen; q->n_cached = plen;
                if (hit) { e->prefix_hits++; e->prefix_rows_saved += plen; }
            }
        }
        uint64_t id = r.id;
        rng_seed(&q->rng, hash_bytes(&id, sizeof id, e->cfg.seed));
        q->admitted_step = e->step;
        e->active[s] = true;
    }
    int a = engine_active(e);
    if (a > e->max_active) e->max_active = a;
}

static void finish(Engine *e, EngineSeq *q, FinishReason why) {
    q->finished_step = e->step;
    e->requests_done++;
    if (e->hooks.finish) e->hooks.finish(e->hooks.ctx, q, why);
    if (q->prefix >= 0) e->pre[q->prefix].refs--;
    e->active[q->slot] = false;
}

// Samples the next token of q from its logits (Vp,) and applies every stop rule.
static void advance(Engine *e, EngineSeq *q, const float *logits) {
    double t0 = now_seconds();
    const uint8_t *mask = e->hooks.mask ? e->hooks.mask(e->hooks.ctx, q) : NULL;
    double t1 = now_seconds();
    e->t_mask += t1 - t0;
    t0 = t1;
    // the same grammar state the mask was computed from (the token hook advances it)
    bool in_number = e->cfg.sampling.number_temperature_set && e->hooks.in_number && e->hooks.in_number(e->hooks.ctx, q);
    int tok = sampler_pick_field(&e->sampler, logits, e->m->cfg.vocab_size, mask, &e->cfg.sampling, in_number, &q->rng);
    if (e->cfg.score && tok >= 0) q->logprob += sampler_logprob(logits, e->m->cfg.vocab_size, tok);
    e->t_sample += now_seconds() - t0;
    if (tok < 0) { finish(e, q, FIN_MASK_EMPTY); return; }
    if (tok == e->cfg.eot) { finish(e, q, FIN_EOT); return; }
    if (q->n_tokens == q->cap) {
        q->cap *= 2;
        q->tokens = xrealloc(q->tokens, q->cap * sizeof *q->tokens);
        q->req.prompt = q->tokens;
    }
    q->tokens[q->n_tokens++] = tok;
    e->tokens_generated++;
    if (e->hooks.token && e->hooks.token(e->hooks.ctx, q, tok)) finish(e, q, FIN_STOP);
    else if (engine_seq_gen(q) >= q->req.max_tokens) finish(e, q, FIN_MAX_TOKENS);
    else if (q->n_tokens >= e->cfg.ctx) finish(e, q, FIN_CONTEXT);
}

static void push_row(Engine *e, int *n, DecodeRow r, int seq) {
    if (*n == e->rows_cap) {
        e->rows_cap *= 2;
        e->rows = xrealloc(e->rows, e->rows_cap * sizeof *e->rows);
        e->row_seq = xrealloc(e->row_seq, e->rows_cap * sizeof *e->row_seq);
    }
    e->row_seq[*n] = seq;
    e->rows[(*n)++] = r;
}

// The reference loop: the whole sequence through gpt_forward for every token.
static bool naive_step(Engine *e) {
    admit(e);
    EngineSeq *q = &e->seq[0];
    if (!e->active[0]) return false;
    double t0 = now_seconds();
    gpt_forward(e->m, q->tokens, 1, q->n_tokens);
    e->t_forward += now_seconds() - t0;
    e->prefill_rows += q->n_tokens;
    e->step++;
    advance(e, q, e->m->acts.logits + (size_t)(q->n_tokens - 1) * e->m->cfg.padded_vocab_size);
    return true;
}

bool engine_step(Engine *e) {
    if (e->cfg.naive) return naive_step(e);
    admit(e);
    int n = 0, B = e->cfg.batch;
    // 1. prefixes in use but not computed yet: their rows go first, so the sequences reading them
    //    can do so in this very call
    for (int i = 0; i < e->cfg.prefix_slots; i++) {
        PrefixEntry *p = &e->pre[i];
        if (p->refs == 0 || p->ready) continue;
        for (int t = 0; t < p->n; t++) push_row(e, &n, (DecodeRow){.token = p->tokens[t], .slot = p->slot, .pos = t}, -1);
        e->prefill_rows += p->n;
    }
    // 2. one decode row per sequence whose prompt is cached, then prompt rows up to the budget
    int n_decode = 0;
    for (int s = 0; s < B; s++) {
        EngineSeq *q = &e->seq[s];
        if (!e->active[s] || q->n_tokens - q->n_cached != 1) continue;
        PrefixEntry *p = q->prefix >= 0 ? &e->pre[q->prefix] : NULL;
        push_row(e, &n, (DecodeRow){.token = q->tokens[q->n_cached], .slot = s, .pos = q->n_cached,
                                    .pslot = p ? p->slot : 0, .plen = q->plen, .logits = true}, s);
        n_decode++;
    }
    int budget = e->cfg.prefill_chunk - n_decode;
    for (int s = 0; s < B && budget > 0; s++) {
        EngineSeq *q = &e->seq[s];
        int rem = q->n_tokens - q->n_cached;
        if (!e->active[s] || rem <= 1) continue;
        int take = rem < budget ? rem : budget;
        PrefixEntry *p = q->prefix >= 0 ? &e->pre[q->prefix] : NULL;
        for (int k = 0; k < take; k++) {
            int t = q->n_cached + k;
            push_row(e, &n, (DecodeRow){.token = q->tokens[t], .slot = s, .pos = t, .pslot = p ? p->slot : 0,
                                        .plen = q->plen, .logits = t == q->n_tokens - 1}, s);
        }
        budget -= take;
        e->prefill_rows += take;
    }
    if (n == 0) return false;
    e->decode_rows += n_decode;
    double t0 = now_seconds();
    int nl;
    const float *logits = decoder_forward(&e->dec, e->rows, n, &nl);
    e->t_forward += now_seconds() - t0;
    e->step++;
    for (int i = 0; i < e->cfg.prefix_slots; i++)
        if (e->pre[i].refs > 0) e->pre[i].ready = true;
    // 3. account what got cached, then sample every sequence that has logits (in row order, which
    //    is slot order: sampling is per sequence, so the order changes nothing but the hook calls)
    for (int i = 0; i < n; i++)
        if (e->row_seq[i] >= 0) e->seq[e->row_seq[i]].n_cached++;
    int li = 0;
    size_t Vp = e->m->cfg.padded_vocab_size;
    for (int i = 0; i < n; i++) {
        if (!e->rows[i].logits) continue;
        advance(e, &e->seq[e->row_seq[i]], logits + li * Vp);
        li++;
    }
    return true;
}

void engine_run(Engine *e) {
    while (engine_step(e)) {}
}
