// The GPT-2 model, defined once: configuration, parameter and activation layout, forward,
// backward and the optimizer step, all through the op set of kernels/ops.h. The model never
// knows which backend runs; every buffer below is backend memory.
//
// Architecture (GPT-2): token + learned position embeddings, n_layer pre-LayerNorm blocks
// (causal multi-head attention, then a 4x GELU MLP, each added to the residual stream), a final
// LayerNorm, logits through the tied token embedding. Vocabulary padded to a multiple of 64
// (rows past vocab_size are zero and never predicted).
#pragma once
#include "kernels/ops.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int n_layer;            // L
    int n_head;             // NH
    int n_embd;             // C (a multiple of NH)
    int max_seq_len;        // maxT: rows of the position embedding
    int vocab_size;         // V, from the tokenizer
    int padded_vocab_size;  // Vp = V rounded up to a multiple of 64
} GPTConfig;

// Presets by depth, like llm.c: dN has n_layer = N, n_head = N, n_embd = 64*N (head size 64).
// d12 is GPT-2 124M's shape. Returns false for an unknown name. Sets L, NH, C only.
bool gpt_preset(const char *name, GPTConfig *cfg);
// Checks a configuration (positive sizes, C % NH == 0, Vp a multiple of 64 >= V, V <= 65536);
// returns NULL when valid, else a static message naming the problem.
const char *gpt_config_check(const GPTConfig *cfg);
int gpt_padded_vocab(int vocab_size);

// The parameter tensors, in the order they sit in the one contiguous buffer.
enum {
    P_WTE,       // (Vp, C)
    P_WPE,       // (maxT, C)
    P_LN1W,      // (L, C)
    P_LN1B,      // (L, C)
    P_QKVW,      // (L, 3C, C)
    P_QKVB,      // (L, 3C)
    P_ATTPROJW,  // (L, C, C)
    P_ATTPROJB,  // (L, C)
    P_LN2W,      // (L, C)
    P_LN2B,      // (L, C)
    P_FCW,       // (L, 4C, C)
    P_FCB,       // (L, 4C)
    P_FCPROJW,   // (L, C, 4C)
    P_FCPROJB,   // (L, C)
    P_LNFW,      // (C,)
    P_LNFB,      // (C,)
    N_PARAM_TENSORS
};
extern const char *const gpt_param_names[N_PARAM_TENSORS];
// Weight decay applies to matrices only (the 2-D tensors), never to biases or LayerNorm.
bool gpt_param_decays(int i);
void gpt_param_sizes(const GPTConfig *cfg, size_t sizes[N_PARAM_TENSORS]);

// Activations of one layer for a (B,T) plan; `l` indexes layers. The same struct describes their
// gradients, where only ln1, qkv, atty, ln2 and fch exist, shared by all layers, and the
// residual stream's gradient is dacts.encoded (gpt.c: layout_dacts).
// Compute type (kernels/ops.h) except the LayerNorm statistics, the attention state and the
// losses, which are fp32.
typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd;  // (B,T,C) (B,T) (B,T)
    float *qkv;                        // (B,T,3C)
    float *atty;                       // (B,T,C)
    float *att;                        // backend attention state: attention_state_size(B,T,NH)
    float *attproj;                    // (B,T,C)
    float *residual2;                  // (B,T,C)
    float *ln2, *ln2_mean, *ln2_rstd;  // (B,T,C) (B,T) (B,T)
    float *fch, *fch_gelu;             // (B,T,4C)
    float *fcproj;                     // (B,T,C)
    float *residual3;                  // (B,T,C): the block's output
} LayerActs;

typedef struct {
    float *encoded;                    // (B,T,C)
    LayerActs *layer;                  // [L]
    float *lnf, *lnf_mean, *lnf_rstd;  // (B,T,C) (B,T) (B,T)
    float *logits;                     // (B,T,Vp); dlogits after a loss with a gradient
    float *losses;                     // (B,T)
} Acts;

// A range of the flat parameter (and gradient) buffer, in floats.
typedef struct { size_t off, n; } GradRange;
// The gradient-ready hook: gpt_backward calls it as soon as the gradients of `ranges` are final
// for this backward pass (nothing later in the pass writes them), in this order: lnfw+lnfb (one
// range, right after the final LayerNorm), then each layer from the last to the first (12 ranges,
// its slice of every stacked tensor: the layout groups parameters by kind, so a layer is not
// contiguous), then wte+wpe (one range, after the encoder: wte also gets the logits' gradient
// at the start). Every parameter is in exactly one call. Data parallelism (train/dist.h) starts
// reducing them while the earlier layers are still being computed. The model stays
// backend-agnostic: the hook runs on the host thread between ops (on a GPU, after the layer's
// kernels were queued, not finished).
typedef void (*GptGradsReady)(void *ctx, const GradRange *ranges, int n);

// Element n of a tensor in the backend's compute type (kernels/ops.h): activations, their
// gradients and the parameter copy the ops read. Never `p + n` on those: bf16 elements are 2 bytes.
static inline float *act_at(const Backend *be, const float *p, size_t n) {
    return (float *)((char *)p + n * be->act_bytes);
}

typedef struct {
    GPTConfig cfg;
    const Backend *be;
    size_t param_sizes[N_PARAM_TENSORS];
    size_t n_params;
    float *params;                      // fp32 master weights, one contiguous buffer (n_params)
    float *params_x;                    // the compute-type copy the ops read (== params when fp32)
    float *param[N_PARAM_TENSORS];      // views into params_x (compute type)
    float *grads;                       // fp32, layout of params, allocated on the first gpt_plan(.., training)
    float *grad[N_PARAM_TENSORS];
    float *m, *v;                       // AdamW moments, allocated by gpt_update's first call
    // the activation plan
    int B, T;
    int batch_B, batch_T;               // shape of the last forward (<= the plan's)
    bool training;
    Acts acts, dacts;                   // dacts only when training
    float *act_mem, *dact_mem;
    size_t act_mem_bytes, dact_mem_bytes;  // of act_mem, dact_mem (gpt.c: layout_dacts)
    int32_t *inputs, *targets;          // (B,T) backend copies
    int32_t *inputs_host;               // (B,T) the last forward's ids, for encoder_backward
    float *loss_weight;                 // (B,T)
    float *losses_host;                 // (B,T)
    GptGradsReady grads_ready;          // NULL: no hook (the default)
    void *grads_ready_ctx;
    // Position of the next forward's first token (`train --pos-offsets`): token t of every row
    // takes wpe[pos_offset + t], so short rows can train every row of a longer context. 0 by default;
    // the backward uses the offset its forward had.
    int pos_offset, batch_pos;
} GPT;

// Allocates parameters (zeroed) for a valid config on a backend.
void gpt_create(GPT *m, const GPTConfig *cfg, const Backend *be);
void gpt_free(GPT *m);
// GPT-2 initialisation from a seed: N(0, 0.02), residual projections N(0, 0.02/sqrt(2L)),
// LayerNorm weight 1, biases 0, padded vocabulary rows 0. Same seed, same weights, any machine.
void gpt_init_random(GPT *m, uint64_t seed);
// Overwrites the position embeddings with sinusoids (`train --pos-init sinusoid`): learned rows
// start as random vectors that only ~B*steps tokens each ever update, so a short run ends with
// positions the model cannot tell apart; sinusoids give every offset the same geometry at step 0.
void gpt_init_positions_sinusoid(GPT *m);
void gpt_set_params(GPT *m, const float *host);  // n_params floats in layout order
void gpt_get_params(const GPT *m, float *host);   // the fp32 master weights
// After anything but gpt_set_params / gpt_update wrote m->params (data parallelism's broadcast
// and all-gather): refreshes the compute-type copy the ops read.
void gpt_params_changed(GPT *m);
void gpt_get_grads(const GPT *m, float *host);

// One layer's slices of the stacked (L, ...) parameters, in the compute type: what the ops read.
typedef struct {
    float *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb, *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb;
} LayerParams;
LayerParams gpt_layer_params(const GPT *m, int l);

// Plans activations for batches of up to B sequences of up to T tokens (T <= maxT);
// `training` also plans their gradients. Replans only when the shape grows or training turns on.
void gpt_plan(GPT *m, int B, int T, bool training);

// Forward only: logits (B,T,Vp) for inputs (B,T) host token ids into m->acts.logits.
// This is the path inference reuses (docs/MODEL.md: KV cache plan).
void gpt_forward(GPT *m, const int32_t *inputs, int B, int T);
// Loss over the last forward: per-token cross-entropy against targets (B,T), weight (B,T) is
// the loss mask (NULL = all ones). Returns the SUM of per-token losses; *n_counted gets the
// number of tokens with nonzero weight. When dscale != 0 it also turns logits into dlogits for
// gpt_backward, scaled by dscale (1 / unmasked tokens of the whole optimizer step).
double gpt_loss(GPT *m, const int32_t *targets, const float *weight, float dscale, int *n_counted);
// Backward of the last forward + gpt_loss(dscale != 0): ADDS into m->grads.
void gpt_backward(GPT *m);
void gpt_zero_grad(GPT *m);
double gpt_grad_norm(GPT *m);  // global L2 norm of all gradients
// One AdamW step on every tensor (no decay on biases / LayerNorm); t is the 1-based step.
void gpt_update(GPT *m, float lr, float beta1, float beta2, float eps, float weight_decay, int t, float grad_scale);
