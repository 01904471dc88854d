// The inference engine: a queue of token-level requests, a scheduler that keeps up to B sequences
// active in KV-cache slots, and one model call per step that decodes one token for every active
// sequence while prefilling the prompts of newly admitted ones (continuous batching: a sequence
// that finishes frees its slot at once and the next queued request takes it in the same step).
// Requests that start with the same prefix tokens (the instruction preamble) share one cached
// copy of its keys and values instead of recomputing them (model/decode.h prefix slots).
//
// What a request produces depends only on the model, its prompt, its id and the run seed: its
// sampler Rng is seeded from (seed, id), and every op computes a row the same way whatever else
// is in the batch. So results do not depend on batch size, arrival order or prefix reuse.
//
// Text-level logic stays outside: hooks see each sampled token (stop strings, grammar state), may
// restrict the next token (constrained decoding), and get the finished request, from which they
// may submit new requests (the recursive harness submits a layer's subgraphs).
#pragma once
#include "infer/sampler.h"
#include "model/decode.h"
#include "model/gpt.h"
#include <stdbool.h>
#include <stdint.h>

typedef enum {
    FIN_STOP,        // the token hook asked to stop (a stop string, a complete answer)
    FIN_EOT,         // the end-of-text token was sampled
    FIN_MAX_TOKENS,  // max_tokens reached
    FIN_CONTEXT,     // the context (cache length) is full
    FIN_MASK_EMPTY,  // the mask allowed no token (a constraint that cannot be met)
} FinishReason;
const char *finish_reason_name(int r);

typedef struct {
    uint64_t id;           // with the run seed, seeds the request's sampler
    const int32_t *prompt; // copied at submit
    int prompt_len;        // >= 1
    int prefix_len;        // the first prefix_len tokens may be shared with other requests (0: none)
    int max_tokens;        // generated tokens at most
    void *user;            // the caller's
} EngineRequest;

typedef struct EngineSeq {
    EngineRequest req;
    int32_t *tokens; int n_tokens, cap;  // prompt then generated tokens
    int n_cached;          // positions whose k,v are in the cache (own slot or prefix)
    int slot;              // cache slot
    int prefix;            // prefix entry, or -1
    int plen;              // positions read from the prefix slot
    Rng rng;
    double logprob;        // EngineConfig.score: sum of sampler_logprob over the generated tokens
    int64_t admitted_step, finished_step;  // model calls made before admission / by the finish
} EngineSeq;
static inline int engine_seq_gen(const EngineSeq *s) { return s->n_tokens - s->req.prompt_len; }

typedef struct {
    // allowed next tokens (V bytes, 1 = allowed) for s, or NULL for no restriction
    const uint8_t *(*mask)(void *ctx, EngineSeq *s);
    // token was appended to s; return true to finish s now (FIN_STOP)
    bool (*token)(void *ctx, EngineSeq *s, int token);
    // optional: is s's next token part of a numeric field? (then SamplerConfig.number_temperature
    // applies when set; NULL: never)
    bool (*in_number)(void *ctx, EngineSeq *s);
    // s is finished; its tokens stay valid during the call only. May call engine_submit.
    void (*finish)(void *ctx, EngineSeq *s, FinishReason why);
    void *ctx;
} EngineHooks;

typedef struct {
    int batch;             // B: sequences decoded together (cache slots)
    int ctx;               // positions per slot (<= the model's max_seq_len); 0 = the model's
    int prefill_chunk;     // rows per model call at most (decode rows + prompt rows); default 512
    int prefix_slots;      // cached prefixes kept at once (0 = no prefix reuse); default 4
    int eot;               // end-of-text token id, or -1
    uint64_t seed;
    SamplerConfig sampling;
    bool score;            // keep EngineSeq.logprob (one log-softmax over V per generated token)
    bool naive;            // the reference loop: one request at a time, no cache, full forward per token
} EngineConfig;
void engine_config_default(EngineConfig *c);

typedef struct PrefixEntry {
    int32_t *tokens; int n;   // the prefix
    uint64_t hash;
    int slot;
    int refs;                 // active sequences reading it
    bool ready;               // k,v computed
    int64_t used;             // step of last use (LRU eviction)
} PrefixEntry;

typedef struct {
    EngineConfig cfg;
    GPT *m;
    Decoder dec;
    Sampler sampler;
    EngineHooks hooks;
    // queue (FIFO ring of requests with their prompt copies)
    EngineRequest *q; int q_head, q_n, q_cap;
    EngineSeq *seq;           // [batch]; seq[i].req.prompt == NULL when slot i is free
    bool *active;
    PrefixEntry *pre;         // [prefix_slots]
    DecodeRow *rows; int rows_cap;
    int *row_seq;             // which seq each logits row belongs to
    int32_t *naive_buf;
    // statistics
    int64_t step, tokens_generated, prefill_rows, decode_rows, prefix_hits, prefix_rows_saved, requests_done;
    int max_active;
    double t_forward, t_mask, t_sample;  // seconds in model calls, mask hooks, the sampler
} Engine;

void engine_init(Engine *e, GPT *m, const EngineConfig *cfg, const EngineHooks *hooks);
void engine_free(Engine *e);
// Queues a request (prompt copied). Dies when the prompt cannot fit the context.
void engine_submit(Engine *e, const EngineRequest *r);
// Runs until the queue is empty and every request has finished (hooks may keep submitting).
void engine_run(Engine *e);
// One scheduling step (admit, one model call, sample); returns false when there was nothing to do.
bool engine_step(Engine *e);
int engine_active(const Engine *e);
