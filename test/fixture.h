// The PyTorch reference fixture (test/fixtures/gpt_small.bin, written by
// scripts/reference/gpt_ref.py fixture): a tiny GPT's weights, a batch, its logits, loss, every
// gradient, the masked loss and gradients, and the losses of 10 AdamW steps. Read by the CPU model
// test and the CUDA model test alike.
#pragma once
#include "model/gpt.h"
#include "util/util.h"
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define FIXTURE "test/fixtures/gpt_small.bin"

typedef struct {
    GPTConfig cfg;
    int B, T, n_steps;
    size_t n;
    float *params, *logits, *grads, *mgrads, *step_losses, *mask;
    int32_t *inputs, *targets;
    float loss, mloss;
} Fixture;

static const char *fx_p;  // read cursor
static void take(void *dst, size_t bytes) { memcpy(dst, fx_p, bytes); fx_p += bytes; }
static float *take_floats(size_t n) { float *p = xmalloc(n * sizeof *p); take(p, n * sizeof *p); return p; }

static int load_fixture(Fixture *f) {
    size_t len;
    FILE *probe = fopen(FIXTURE, "rb");
    if (!probe) return 0;
    fclose(probe);
    char *buf = read_file(FIXTURE, &len);
    fx_p = buf;
    if (len < 44 || memcmp(buf, "TLLMFIXT", 8)) { free(buf); return 0; }
    fx_p += 8;
    int32_t h[9];
    take(h, sizeof h);
    f->cfg = (GPTConfig){.n_layer = h[0], .n_head = h[1], .n_embd = h[2], .max_seq_len = h[3], .vocab_size = h[4],
                         .padded_vocab_size = h[5]};
    f->B = h[6]; f->T = h[7]; f->n_steps = h[8];
    size_t sizes[N_PARAM_TENSORS];
    gpt_param_sizes(&f->cfg, sizes);
    f->n = 0;
    for (int i = 0; i < N_PARAM_TENSORS; i++) f->n += sizes[i];
    size_t BT = (size_t)f->B * f->T;
    size_t want = 8 + sizeof h + 4 * (3 * f->n + 3 * BT + BT * f->cfg.padded_vocab_size + 2 + f->n_steps);
    if (len != want) { free(buf); return 0; }
    f->params = take_floats(f->n);
    f->inputs = xmalloc(BT * 4); take(f->inputs, BT * 4);
    f->targets = xmalloc(BT * 4); take(f->targets, BT * 4);
    f->mask = take_floats(BT);
    f->logits = take_floats(BT * f->cfg.padded_vocab_size);
    take(&f->loss, 4);
    f->grads = take_floats(f->n);
    take(&f->mloss, 4);
    f->mgrads = take_floats(f->n);
    f->step_losses = take_floats(f->n_steps);
    free(buf);
    return 1;
}

static void free_fixture(Fixture *f) {
    free(f->params); free(f->logits); free(f->grads); free(f->mgrads); free(f->step_losses); free(f->mask);
    free(f->inputs); free(f->targets);
}

