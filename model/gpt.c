// The GPT-2 model over the op set: layout, initialisation, forward, loss, backward, AdamW.
// Reads top to bottom like llm.c's train_gpt2.c; every tensor here is backend memory.
#include "model/gpt.h"
#include "util/rng.h"
#include "util/util.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const gpt_param_names[N_PARAM_TENSORS] = {
    "wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
    "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"};

bool gpt_param_decays(int i) {
    return i == P_WTE || i == P_WPE || i == P_QKVW || i == P_ATTPROJW || i == P_FCW || i == P_FCPROJW;
}

int gpt_padded_vocab(int vocab_size) { return (vocab_size + 63) / 64 * 64; }

bool gpt_preset(const char *name, GPTConfig *cfg) {
    static const struct { const char *name; int depth; } presets[] = {
        {"d2", 2}, {"d4", 4}, {"d6", 6}, {"d8", 8}, {"d12", 12}};
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (!strcmp(name, presets[i].name)) {
            cfg->n_layer = cfg->n_head = presets[i].depth;
            cfg->n_embd = 64 * presets[i].depth;
            return true;
        }
    return false;
}

const char *gpt_config_check(const GPTConfig *c) {
    if (c->n_layer < 1 || c->n_layer > 256) return "n_layer must be in 1..256";
    if (c->n_head < 1 || c->n_embd < 1 || c->n_embd > 65536) return "n_head and n_embd must be positive (n_embd <= 65536)";
    if (c->n_embd % c->n_head) return "n_embd must be a multiple of n_head";
    if (c->max_seq_len < 1 || c->max_seq_len > 1 << 20) return "max_seq_len must be in 1..1048576";
    if (c->vocab_size < 2 || c->vocab_size > 65536) return "vocab_size must be in 2..65536 (tokens are uint16)";
    if (c->padded_vocab_size < c->vocab_size || c->padded_vocab_size % 64) return "padded_vocab_size must be a multiple of 64 >= vocab_size";
    return NULL;
}

void gpt_param_sizes(const GPTConfig *cfg, size_t s[N_PARAM_TENSORS]) {
    size_t L = cfg->n_layer, C = cfg->n_embd;
    s[P_WTE] = (size_t)cfg->padded_vocab_size * C;
    s[P_WPE] = (size_t)cfg->max_seq_len * C;
    s[P_LN1W] = s[P_LN1B] = L * C;
    s[P_QKVW] = L * 3 * C * C;
    s[P_QKVB] = L * 3 * C;
    s[P_ATTPROJW] = L * C * C;
    s[P_ATTPROJB] = L * C;
    s[P_LN2W] = s[P_LN2B] = L * C;
    s[P_FCW] = L * 4 * C * C;
    s[P_FCB] = L * 4 * C;
    s[P_FCPROJW] = L * C * 4 * C;
    s[P_FCPROJB] = L * C;
    s[P_LNFW] = s[P_LNFB] = C;
}

// Points views[i] at consecutive slices of base, elements of `bytes` bytes.
static void point_tensors(float *base, size_t bytes, const size_t sizes[N_PARAM_TENSORS], float *views[N_PARAM_TENSORS]) {
    char *at = (char *)base;
    for (int i = 0; i < N_PARAM_TENSORS; i++) { views[i] = (float *)at; at += sizes[i] * bytes; }
}

void gpt_create(GPT *m, const GPTConfig *cfg, const Backend *be) {
    memset(m, 0, sizeof *m);
    const char *bad = gpt_config_check(cfg);
    if (bad) fatal("invalid model configuration: %s", bad);
    m->cfg = *cfg;
    m->be = be;
    gpt_param_sizes(cfg, m->param_sizes);
    for (int i = 0; i < N_PARAM_TENSORS; i++) m->n_params += m->param_sizes[i];
    m->params = be->alloc(m->n_params * sizeof(float));
    // mixed precision: the ops read a compute-type copy, AdamW updates the fp32 master
    m->params_x = be->act_bytes == sizeof(float) ? m->params : be->alloc(m->n_params * be->act_bytes);
    point_tensors(m->params_x, be->act_bytes, m->param_sizes, m->param);
}

static void free_plan(GPT *m) {
    const Backend *be = m->be;
    if (m->act_mem) be->free(m->act_mem);
    if (m->dact_mem) be->free(m->dact_mem);
    if (m->inputs) be->free(m->inputs);
    if (m->targets) be->free(m->targets);
    if (m->loss_weight) be->free(m->loss_weight);
    free(m->acts.layer); free(m->dacts.layer); free(m->losses_host); free(m->inputs_host);
    m->act_mem = m->dact_mem = m->loss_weight = m->losses_host = NULL;
    m->inputs_host = NULL;
    m->inputs = m->targets = NULL;
    m->acts.layer = m->dacts.layer = NULL;
    m->B = m->T = 0;
}

void gpt_free(GPT *m) {
    free_plan(m);
    const Backend *be = m->be;
    if (m->params_x != m->params) be->free(m->params_x);
    be->free(m->params);
    if (m->grads) be->free(m->grads);
    if (m->m) be->free(m->m);
    if (m->v) be->free(m->v);
    memset(m, 0, sizeof *m);
}

void gpt_init_random(GPT *m, uint64_t seed) {
    const GPTConfig *c = &m->cfg;
    float *host = xcalloc(m->n_params, sizeof *host);
    float *view[N_PARAM_TENSORS];
    point_tensors(host, sizeof(float), m->param_sizes, view);
    Rng r;
    rng_seed(&r, seed);
    double proj_std = 0.02 / sqrt(2.0 * c->n_layer);  // GPT-2: scale residual projections by depth
    for (int i = 0; i < N_PARAM_TENSORS; i++) {
        size_t n = m->param_sizes[i];
        if (i == P_LN1W || i == P_LN2W || i == P_LNFW) {
            for (size_t j = 0; j < n; j++) view[i][j] = 1.0f;
        } else if (gpt_param_decays(i)) {
            double std = (i == P_ATTPROJW || i == P_FCPROJW) ? proj_std : 0.02;
            // padded vocabulary rows stay 0: those tokens never occur and are never predicted
            if (i == P_WTE) n = (size_t)c->vocab_size * c->n_embd;
            for (size_t j = 0; j < n; j++) view[i][j] = (float)(std * rng_normal(&r));
        }  // biases stay 0
    }
    gpt_set_params(m, host);
    free(host);
}

void gpt_init_positions_sinusoid(GPT *m) {
    const GPTConfig *c = &m->cfg;
    float *host = xmalloc(m->n_params * sizeof *host);
    gpt_get_params(m, host);
    float *view[N_PARAM_TENSORS];
    point_tensors(host, sizeof(float), m->param_sizes, view);
    // the Transformer's encoding, pairs (sin, cos) of frequencies 1 .. 1/10000, scaled so that a
    // component has the random init's std 0.02 (amplitude 0.02 * sqrt 2): then position p + k is a
    // fixed rotation of position p for every p, which attention can use from the first step
    double amp = 0.02 * sqrt(2.0);
    for (int p = 0; p < c->max_seq_len; p++)
        for (int i = 0; i < c->n_embd; i += 2) {
            double w = pow(10000.0, -(double)i / c->n_embd);
            view[P_WPE][(size_t)p * c->n_embd + i] = (float)(amp * sin(p * w));
            if (i + 1 < c->n_embd) view[P_WPE][(size_t)p * c->n_embd + i + 1] = (float)(amp * cos(p * w));
        }
    gpt_set_params(m, host);
    free(host);
}

void gpt_params_changed(GPT *m) { m->be->round_params(m->params_x, m->params, m->n_params); }
void gpt_set_params(GPT *m, const float *host) {
    m->be->upload(m->params, host, m->n_params * sizeof(float));
    gpt_params_changed(m);
}
void gpt_get_params(const GPT *m, float *host) { m->be->download(host, m->params, m->n_params * sizeof(float)); }
void gpt_get_grads(const GPT *m, float *host) {
    if (!m->grads) { memset(host, 0, m->n_params * sizeof(float)); return; }
    m->be->download(host, m->grads, m->n_params * sizeof(float));
}

// ---- activation plan ----

// Lays out one Acts over `base` (or only counts when base is NULL); returns bytes used. TAKE is a
// compute-type tensor, TAKE32 an fp32 one; every tensor starts 64-byte aligned (vector loads).
#define TAKE_BYTES(ptr, bytes) do { (ptr) = base ? (float *)((char *)base + off) : NULL; off += ((bytes) + 63) / 64 * 64; } while (0)
#define TAKE(ptr, n) TAKE_BYTES(ptr, (n) * be->act_bytes)
#define TAKE32(ptr, n) TAKE_BYTES(ptr, (n) * sizeof(float))
static size_t layout_acts(Acts *a, float *base, const GPTConfig *c, const Backend *be, int B, int T) {
    size_t BT = (size_t)B * T, C = c->n_embd, off = 0;
    TAKE(a->encoded, BT * C);
    for (int l = 0; l < c->n_layer; l++) {
        LayerActs *la = &a->layer[l];
        TAKE(la->ln1, BT * C); TAKE32(la->ln1_mean, BT); TAKE32(la->ln1_rstd, BT);
        TAKE(la->qkv, BT * 3 * C);
        TAKE(la->atty, BT * C);
        TAKE32(la->att, be->attention_state_size(B, T, c->n_head));
        TAKE(la->attproj, BT * C);
        TAKE(la->residual2, BT * C);
        TAKE(la->ln2, BT * C); TAKE32(la->ln2_mean, BT); TAKE32(la->ln2_rstd, BT);
        TAKE(la->fch, BT * 4 * C); TAKE(la->fch_gelu, BT * 4 * C);
        TAKE(la->fcproj, BT * C);
        TAKE(la->residual3, BT * C);
    }
    TAKE(a->lnf, BT * C); TAKE32(a->lnf_mean, BT); TAKE32(a->lnf_rstd, BT);
    TAKE(a->logits, BT * c->padded_vocab_size);
    TAKE32(a->losses, BT);
    return off;
}

// The gradients of the activations need far less: the residual stream's gradient is ONE buffer
// (encoded) that both branches of every block read as their output's gradient and that the
// LayerNorm backwards add into (the gradient of a sum is the same tensor for both terms, so no
// copies into residual2 / residual3 / attproj / fcproj), and the rest of a layer's gradients
// (ln1, qkv, atty, ln2, fch) live only while that layer's backward runs, so all layers share one
// set. fch_gelu needs none: matmul_backward_gelu carries the gradient through the GELU in one op.
// dlogits are written over the logits; the LayerNorm statistics, the attention state and the
// losses have no gradient. 12 (B,T,C) tensors instead of the activations' 18 per layer plus the
// logits.
static size_t layout_dacts(Acts *d, float *base, const GPTConfig *c, const Backend *be, int B, int T) {
    size_t BT = (size_t)B * T, C = c->n_embd, off = 0;
    TAKE(d->encoded, BT * C);
    TAKE(d->lnf, BT * C);
    LayerActs s = {0};
    TAKE(s.ln1, BT * C);
    TAKE(s.qkv, BT * 3 * C);
    TAKE(s.atty, BT * C);
    TAKE(s.ln2, BT * C);
    TAKE(s.fch, BT * 4 * C);
    for (int l = 0; l < c->n_layer; l++) d->layer[l] = s;
    return off;
}
#undef TAKE32
#undef TAKE
#undef TAKE_BYTES

void gpt_plan(GPT *m, int B, int T, bool training) {
    if (T < 1 || T > m->cfg.max_seq_len) fatal("sequence length %d is outside 1..%d (the model's context)", T, m->cfg.max_seq_len);
    if (B < 1) fatal("batch size %d must be positive", B);
    if (m->act_mem && B <= m->B && T <= m->T && (!training || m->training)) return;
    int nB = B > m->B ? B : m->B, nT = T > m->T ? T : m->T;
    bool tr = training || m->training;
    free_plan(m);
    const Backend *be = m->be;
    const GPTConfig *c = &m->cfg;
    m->B = nB; m->T = nT; m->training = tr;
    m->batch_B = nB; m->batch_T = nT;
    m->acts.layer = xcalloc(c->n_layer, sizeof(LayerActs));
    m->act_mem_bytes = layout_acts(&m->acts, NULL, c, be, nB, nT);
    m->act_mem = be->alloc(m->act_mem_bytes);
    layout_acts(&m->acts, m->act_mem, c, be, nB, nT);
    m->dact_mem_bytes = 0;
    if (tr) {
        m->dacts.layer = xcalloc(c->n_layer, sizeof(LayerActs));
        m->dact_mem_bytes = layout_dacts(&m->dacts, NULL, c, be, nB, nT);
        m->dact_mem = be->alloc(m->dact_mem_bytes);
        layout_dacts(&m->dacts, m->dact_mem, c, be, nB, nT);
        if (!m->grads) {
            m->grads = be->alloc(m->n_params * sizeof(float));
            point_tensors(m->grads, sizeof(float), m->param_sizes, m->grad);
        }
    }
    size_t BT = (size_t)nB * nT;
    m->inputs = be->alloc(BT * sizeof(int32_t));
    m->targets = be->alloc(BT * sizeof(int32_t));
    m->loss_weight = be->alloc(BT * sizeof(float));
    m->losses_host = xcalloc(BT, sizeof(float));
    m->inputs_host = xcalloc(BT, sizeof(int32_t));
}

// ---- forward ----

LayerParams gpt_layer_params(const GPT *m, int l) {
    const Backend *be = m->be;
    float *const *p = m->param;
    size_t C = m->cfg.n_embd, lC = (size_t)l * C;
    return (LayerParams){
        .ln1w = act_at(be, p[P_LN1W], lC), .ln1b = act_at(be, p[P_LN1B], lC),
        .qkvw = act_at(be, p[P_QKVW], lC * 3 * C), .qkvb = act_at(be, p[P_QKVB], lC * 3),
        .attprojw = act_at(be, p[P_ATTPROJW], lC * C), .attprojb = act_at(be, p[P_ATTPROJB], lC),
        .ln2w = act_at(be, p[P_LN2W], lC), .ln2b = act_at(be, p[P_LN2B], lC),
        .fcw = act_at(be, p[P_FCW], lC * 4 * C), .fcb = act_at(be, p[P_FCB], lC * 4),
        .fcprojw = act_at(be, p[P_FCPROJW], lC * 4 * C), .fcprojb = act_at(be, p[P_FCPROJB], lC),
    };
}

// The plan may be larger than this batch; the ops see tensors of the batch's (B,T), so the
// activations are laid out again, smaller, over the same memory.
static void relayout(GPT *m, int B, int T) {
    if (B == m->batch_B && T == m->batch_T) return;
    layout_acts(&m->acts, m->act_mem, &m->cfg, m->be, B, T);
    if (m->dact_mem) layout_dacts(&m->dacts, m->dact_mem, &m->cfg, m->be, B, T);
    m->batch_B = B; m->batch_T = T;
}

void gpt_forward(GPT *m, const int32_t *inputs, int B, int T) {
    gpt_plan(m, B, T, false);
    relayout(m, B, T);
    const Backend *be = m->be;
    const GPTConfig *c = &m->cfg;
    int L = c->n_layer, NH = c->n_head, C = c->n_embd, Vp = c->padded_vocab_size, BT = B * T;
    for (int i = 0; i < BT; i++)
        if (inputs[i] < 0 || inputs[i] >= c->vocab_size) fatal("token id %d at position %d is outside the vocabulary (%d)", inputs[i], i, c->vocab_size);
    be->upload(m->inputs, inputs, (size_t)BT * sizeof(int32_t));
    memcpy(m->inputs_host, inputs, (size_t)BT * sizeof(int32_t));
    Acts *a = &m->acts;
    float **p = m->param;
    if (m->pos_offset < 0 || m->pos_offset + T > c->max_seq_len)
        fatal("positions %d..%d are outside the model's context %d", m->pos_offset, m->pos_offset + T - 1, c->max_seq_len);
    m->batch_pos = m->pos_offset;
    be->encoder_forward(a->encoded, m->inputs, p[P_WTE], act_at(be, p[P_WPE], (size_t)m->batch_pos * C), B, T, C);
    LayerParams lp = gpt_layer_params(m, 0);
    be->layernorm_forward(a->layer[0].ln1, a->layer[0].ln1_mean, a->layer[0].ln1_rstd, a->encoded, lp.ln1w, lp.ln1b,
                          BT, C);
    // every later LayerNorm comes with the residual add that makes its input (one pass over the row)
    for (int l = 0; l < L; l++) {
        LayerActs *la = &a->layer[l];
        float *residual = l == 0 ? a->encoded : a->layer[l - 1].residual3;
        lp = gpt_layer_params(m, l);

        be->matmul_forward(la->qkv, la->ln1, lp.qkvw, lp.qkvb, BT, C, 3 * C);
        be->attention_forward(la->atty, la->att, la->qkv, B, T, C, NH);
        be->matmul_forward(la->attproj, la->atty, lp.attprojw, lp.attprojb, BT, C, C);
        be->residual_layernorm_forward(la->residual2, la->ln2, la->ln2_mean, la->ln2_rstd, residual, la->attproj,
                                       lp.ln2w, lp.ln2b, BT, C);
        be->matmul_gelu_forward(la->fch, la->fch_gelu, la->ln2, lp.fcw, lp.fcb, BT, C, 4 * C);
        be->matmul_forward(la->fcproj, la->fch_gelu, lp.fcprojw, lp.fcprojb, BT, 4 * C, C);
        // residual3 and the next LayerNorm: the next layer's ln1, or lnf after the last layer
        if (l + 1 < L) {
            LayerActs *na = &a->layer[l + 1];
            LayerParams np = gpt_layer_params(m, l + 1);
            be->residual_layernorm_forward(la->residual3, na->ln1, na->ln1_mean, na->ln1_rstd, la->residual2,
                                           la->fcproj, np.ln1w, np.ln1b, BT, C);
        } else {
            be->residual_layernorm_forward(la->residual3, a->lnf, a->lnf_mean, a->lnf_rstd, la->residual2, la->fcproj,
                                           p[P_LNFW], p[P_LNFB], BT, C);
        }
    }
    // tied embedding: logits (BT,Vp) = lnf (BT,C) @ wte (Vp,C)^T
    be->matmul_forward(a->logits, a->lnf, p[P_WTE], NULL, BT, C, Vp);
}

double gpt_loss(GPT *m, const int32_t *targets, const float *weight, float dscale, int *n_counted) {
    const Backend *be = m->be;
    const GPTConfig *c = &m->cfg;
    int BT = m->batch_B * m->batch_T, count = 0;
    for (int i = 0; i < BT; i++) {
        if (targets[i] < 0 || targets[i] >= c->vocab_size) fatal("target id %d at position %d is outside the vocabulary (%d)", targets[i], i, c->vocab_size);
        count += !weight || weight[i] != 0.0f;
    }
    if (dscale != 0.0f && !m->training) fatal("gpt_loss with a gradient needs a training plan (gpt_plan(.., true))");
    be->upload(m->targets, targets, (size_t)BT * sizeof(int32_t));
    if (weight) be->upload(m->loss_weight, weight, (size_t)BT * sizeof(float));
    be->classifier(m->acts.logits, m->acts.losses, m->targets, weight ? m->loss_weight : NULL, dscale, BT,
                   c->vocab_size, c->padded_vocab_size);
    be->download(m->losses_host, m->acts.losses, (size_t)BT * sizeof(float));
    double sum = 0.0;
    for (int i = 0; i < BT; i++) sum += m->losses_host[i];
    if (n_counted) *n_counted = count;
    return sum;
}

// ---- backward ----

void gpt_zero_grad(GPT *m) {
    if (m->grads) m->be->zero(m->grads, m->n_params * sizeof(float));
}

// Tells the gradient-ready hook (if any) that these ranges are final. Offsets of the stacked
// tensors' layer-l slices come from the layout, so the hook needs no other knowledge of it.
static void grads_ready(GPT *m, const GradRange *r, int n) {
    if (m->grads_ready) m->grads_ready(m->grads_ready_ctx, r, n);
}
static size_t param_off(const GPT *m, int tensor) {
    size_t off = 0;
    for (int i = 0; i < tensor; i++) off += m->param_sizes[i];
    return off;
}
static void layer_grads_ready(GPT *m, int l) {
    if (!m->grads_ready) return;
    GradRange r[P_FCPROJB - P_LN1W + 1];
    size_t L = m->cfg.n_layer;
    for (int i = P_LN1W; i <= P_FCPROJB; i++) {
        size_t per = m->param_sizes[i] / L;
        r[i - P_LN1W] = (GradRange){param_off(m, i) + l * per, per};
    }
    grads_ready(m, r, P_FCPROJB - P_LN1W + 1);
}

void gpt_backward(GPT *m) {
    if (!m->training) fatal("gpt_backward needs a training plan");
    const Backend *be = m->be;
    const GPTConfig *c = &m->cfg;
    int B = m->batch_B, T = m->batch_T, L = c->n_layer, NH = c->n_head, C = c->n_embd, Vp = c->padded_vocab_size, BT = B * T;
    // activation gradients are per backward; parameter gradients accumulate across micro-steps
    Acts *a = &m->acts, *d = &m->dacts;
    // dres: the residual stream's gradient, (B,T,C), one buffer from the top of the stack down to
    // the embedding (layout_dacts)
    float *dres = d->encoded;
    // the residual stream's gradient is the one activation gradient that ops add into (ops.h);
    // every other one is written whole by the op that produces it
    be->zero(dres, (size_t)BT * C * be->act_bytes);
    float **p = m->param, **g = m->grad;
    // the classifier left dlogits in acts.logits
    be->matmul_backward(d->lnf, g[P_WTE], NULL, a->logits, a->lnf, p[P_WTE], BT, C, Vp);
    be->layernorm_backward(dres, g[P_LNFW], g[P_LNFB], d->lnf, a->layer[L - 1].residual3, p[P_LNFW], a->lnf_mean,
                           a->lnf_rstd, BT, C);
    grads_ready(m, &(GradRange){param_off(m, P_LNFW), m->param_sizes[P_LNFW] + m->param_sizes[P_LNFB]}, 1);
    for (int l = L - 1; l >= 0; l--) {
        LayerActs *la = &a->layer[l], *dl = &d->layer[l];
        float *residual = l == 0 ? a->encoded : a->layer[l - 1].residual3;
        size_t lC = (size_t)l * C;
        LayerParams lp = gpt_layer_params(m, l);

        // dres holds d residual3 = d fcproj (residual3 = residual2 + fcproj); through the GELU
        // straight to d fch
        be->matmul_backward_gelu(dl->fch, g[P_FCPROJW] + lC * 4 * C, g[P_FCPROJB] + lC, dres, la->fch_gelu,
                                 lp.fcprojw, la->fch, BT, 4 * C, C);
        be->matmul_backward(dl->ln2, g[P_FCW] + lC * 4 * C, g[P_FCB] + lC * 4, dl->fch, la->ln2, lp.fcw, BT, C, 4 * C);
        be->layernorm_backward(dres, g[P_LN2W] + lC, g[P_LN2B] + lC, dl->ln2, la->residual2, lp.ln2w,
                               la->ln2_mean, la->ln2_rstd, BT, C);
        // dres holds d residual2 = d attproj (residual2 = residual + attproj)
        be->matmul_backward(dl->atty, g[P_ATTPROJW] + lC * C, g[P_ATTPROJB] + lC, dres, la->atty, lp.attprojw,
                            BT, C, C);
        be->attention_backward(dl->qkv, dl->atty, la->qkv, la->atty, la->att, B, T, C, NH);
        be->matmul_backward(dl->ln1, g[P_QKVW] + lC * 3 * C, g[P_QKVB] + lC * 3, dl->qkv, la->ln1, lp.qkvw, BT, C,
                            3 * C);
        be->layernorm_backward(dres, g[P_LN1W] + lC, g[P_LN1B] + lC, dl->ln1, residual, lp.ln1w, la->ln1_mean,
                               la->ln1_rstd, BT, C);  // dres: d of the block's input
        layer_grads_ready(m, l);
    }
    be->encoder_backward(g[P_WTE], g[P_WPE] + (size_t)m->batch_pos * C, dres, m->inputs, m->inputs_host, B, T, C);
    grads_ready(m, &(GradRange){0, m->param_sizes[P_WTE] + m->param_sizes[P_WPE]}, 1);
}

// ---- optimizer ----

double gpt_grad_norm(GPT *m) { return sqrt(m->be->sumsq(m->grads, m->n_params)); }

void gpt_update(GPT *m, float lr, float beta1, float beta2, float eps, float weight_decay, int t, float grad_scale) {
    const Backend *be = m->be;
    if (!m->m) {
        m->m = be->alloc(m->n_params * sizeof(float));
        m->v = be->alloc(m->n_params * sizeof(float));
    }
    // the compute copy is refreshed inside the update (gpt_params_changed's bits, one pass less)
    float *px = m->params_x != m->params ? m->params_x : NULL;
    size_t off = 0;
    for (int i = 0; i < N_PARAM_TENSORS; i++) {
        size_t n = m->param_sizes[i];
        be->adamw(m->params + off, m->grads + off, m->m + off, m->v + off, n, lr, beta1, beta2, eps,
                  gpt_param_decays(i) ? weight_decay : 0.0f, t, grad_scale, px, off);
        off += n;
    }
}
