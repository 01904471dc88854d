// Where a training step's time goes on the GPU: every op of the Backend table timed alone at the
// shapes of one d12 step (GPT-2 124M: B=16, T=1024, C=768, 12 heads, vocab 50257), with the count
// of calls per step, so the table adds up to an estimate of the step and says which op to fix
// first. Each op's achieved rate is printed against the floor it cannot beat: FLOPs over the
// measured GEMM ceiling for the matmuls and attention, bytes over the measured copy bandwidth for
// the rest (both from scripts/gpu_ceiling.cu, passed on the command line).
// Run by scripts/gpu_check.sh:
//   cc -std=c11 -O2 -I. -D_GNU_SOURCE scripts/bench_ops_gpu.c BUILD/libtracellm.a ... -o bench_ops_gpu
//   ./bench_ops_gpu [backend=cuda|cuda-fp32|cpu] [gemm_tflops=400] [copy_gbs=3000] [batch=16] [only=PREFIX]
// (only: time just the ops whose names start with PREFIX, e.g. "attention", to compare variants.)
// Inputs are random (never zeros); every call is timed between two synchronisations (a 4-byte
// download), median of 9 after 2 warm-ups.
#include "kernels/ops.h"
#include "util/rng.h"
#include "util/util.h"
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T = 1024, C = 768, NH = 12, L = 12, V = 50257, Vp = 50304, REPS = 9 };
static int B = 16, N = 16 * T;  // batch: argv[4] (a CPU run wants 1)
static const char *only = "";    // argv[5]: the prefix of the ops to time

static const Backend *be;
static float sync_sink;

static void sync_backend(const void *p) { be->download(&sync_sink, p, sizeof(float)); }

// n random elements: of the backend's compute type when `act` (kernels/ops.h), else fp32
static float *rand_buf(size_t n, float scale, uint64_t seed, bool act) {
    float *h = xmalloc(n * sizeof(float));
    Rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) h[i] = scale * ((float)(2.0 * rng_uniform(&r) - 1.0));
    float *d = be->alloc(n * (act ? be->act_bytes : sizeof(float)));
    if (act) be->upload_act(d, h, n);
    else be->upload(d, h, n * sizeof(float));
    free(h);
    return d;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct { const char *name; int per_step; double flops, bytes, ms; } Row;
static Row rows[32];
static int nrows;

// TIME(name, calls per step, FLOPs, bytes, statement): median wall time of the statement in ms
#define TIME(NAME, PER_STEP, FLOPS, BYTES, STMT)                                            \
    do {                                                                                     \
        if (strncmp(NAME, only, strlen(only))) break;                                        \
        double ts[REPS];                                                                     \
        for (int warm_ = 0; warm_ < 2; warm_++) { STMT; }                                          \
        sync_backend(sink);                                                                  \
        for (int rep_ = 0; rep_ < REPS; rep_++) {                                                   \
            double t0 = now_seconds();                                                       \
            STMT;                                                                            \
            sync_backend(sink);                                                              \
            ts[rep_] = (now_seconds() - t0) * 1e3;                                              \
        }                                                                                    \
        qsort(ts, REPS, sizeof(double), cmp_double);                                         \
        rows[nrows++] = (Row){NAME, PER_STEP, (double)(FLOPS), (double)(BYTES), ts[REPS / 2]}; \
    } while (0)

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "cuda";
    double gemm_tflops = argc > 2 ? atof(argv[2]) : 400, copy_gbs = argc > 3 ? atof(argv[3]) : 3000;
    if (argc > 4) B = atoi(argv[4]), N = B * T;
    if (argc > 5) only = argv[5];
    be = backend_get(name);
    if (!be) fatal("backend %s is not built in", name);
    // bytes per element: the compute type for activations and weight copies, fp32 for the optimizer
    const double fx = (double)be->act_bytes, f4 = sizeof(float);
    size_t nparams = (size_t)Vp * C + (size_t)T * C + (size_t)L * 12 * C * C + (size_t)L * 13 * C + 2 * C;

    // activations and parameters of one layer (reused by every op of that kind)
    float *x = rand_buf((size_t)N * 4 * C, 1.0f, 1, true), *y = rand_buf((size_t)N * 4 * C, 1.0f, 2, true);
    float *dx = rand_buf((size_t)N * 4 * C, 0.01f, 3, true), *dy = rand_buf((size_t)N * 4 * C, 0.01f, 4, true);
    float *qkv = rand_buf((size_t)N * 3 * C, 1.0f, 5, true), *dqkv = rand_buf((size_t)N * 3 * C, 0.01f, 6, true);
    float *w = rand_buf((size_t)4 * C * C, 0.02f, 7, true), *dw = rand_buf((size_t)4 * C * C, 0.0f, 8, false);
    float *bias = rand_buf(4 * C, 0.02f, 9, true), *dbias = rand_buf(4 * C, 0.0f, 10, false);
    float *mean = rand_buf(N, 0.1f, 11, false), *rstd = rand_buf(N, 0.1f, 12, false);
    float *res = rand_buf((size_t)N * C, 1.0f, 24, true);  // the residual stream the fused LayerNorm writes
    float *state = be->alloc(be->attention_state_size(B, T, NH) * sizeof(float));
    float *wte = rand_buf((size_t)Vp * C, 0.02f, 13, true), *dwte = rand_buf((size_t)Vp * C, 0.0f, 14, false);
    float *wpe = rand_buf((size_t)T * C, 0.02f, 15, true), *dwpe = rand_buf((size_t)T * C, 0.0f, 16, false);
    float *logits = rand_buf((size_t)N * Vp, 1.0f, 17, true), *losses = rand_buf(N, 0.0f, 18, false);
    float *p = rand_buf(nparams, 0.02f, 19, false), *g = rand_buf(nparams, 0.01f, 20, false);
    float *m = rand_buf(nparams, 0.0f, 21, false), *v = rand_buf(nparams, 0.0f, 22, false);
    int32_t *tok_h = xmalloc(N * sizeof(int32_t));
    Rng r;
    rng_seed(&r, 23);
    for (int i = 0; i < N; i++) tok_h[i] = (int32_t)rng_below(&r, V);
    int32_t *tok = be->alloc(N * sizeof(int32_t));
    be->upload(tok, tok_h, N * sizeof(int32_t));
    float *sink = x;

    double nc = (double)N * C;
    TIME("encoder fwd", 1, 0, fx * 3 * nc, be->encoder_forward(x, tok, wte, wpe, B, T, C));
    TIME("encoder bwd", 1, 0, fx * 3 * nc, be->encoder_backward(dwte, dwpe, dx, tok, tok_h, B, T, C));
    // the model's forward: one plain LayerNorm (layer 0's ln1), the other 2L with their residual add
    TIME("layernorm fwd", 1, 0, fx * 2 * nc, be->layernorm_forward(y, mean, rstd, x, w, bias, N, C));
    TIME("residual+layernorm fwd", 2 * L, 0, fx * 4 * nc,
         be->residual_layernorm_forward(res, y, mean, rstd, x, dx, w, bias, N, C));
    TIME("layernorm bwd", 2 * L + 1, 0, fx * 4 * nc,
         be->layernorm_backward(dx, dw, dbias, dy, x, w, mean, rstd, N, C));
    // the MLP's GELU rides its linear layers (kernels/ops.h): the fc forward writes pre and gelu(pre),
    // the fcproj backward carries its dinp through the GELU (reading pre)
    static const struct { const char *f, *b; int ic, oc, gelu; } mm[] = {
        {"matmul qkv fwd", "matmul qkv bwd", C, 3 * C, 0},
        {"matmul attproj fwd", "matmul attproj bwd", C, C, 0},
        {"matmul+gelu fc fwd", "matmul fc bwd", C, 4 * C, 1},
        {"matmul fcproj fwd", "matmul+gelu fcproj bwd", 4 * C, C, 2},
    };
    for (int i = 0; i < 4; i++) {
        int ic = mm[i].ic, oc = mm[i].oc;
        double fl = 2.0 * N * ic * oc, by = fx * ((double)N * ic + (double)N * oc + (double)ic * oc);
        if (mm[i].gelu == 1)
            TIME(mm[i].f, L, fl, by + fx * N * oc, be->matmul_gelu_forward(y, dy, x, w, bias, N, ic, oc));
        else
            TIME(mm[i].f, L, fl, by, be->matmul_forward(y, x, w, bias, N, ic, oc));
        if (mm[i].gelu == 2)
            TIME(mm[i].b, L, 2 * fl, 2 * by + fx * N * ic,
                 be->matmul_backward_gelu(dx, dw, dbias, dy, x, w, y, N, ic, oc));
        else
            TIME(mm[i].b, L, 2 * fl, 2 * by, be->matmul_backward(dx, dw, dbias, dy, x, w, N, ic, oc));
    }
    TIME("matmul lm_head fwd", 1, 2.0 * N * C * Vp, fx * ((double)N * Vp + nc + (double)Vp * C),
         be->matmul_forward(logits, x, wte, NULL, N, C, Vp));
    TIME("matmul lm_head bwd", 1, 4.0 * N * C * Vp, fx * 2 * ((double)N * Vp + nc + (double)Vp * C),
         be->matmul_backward(dx, dwte, NULL, logits, x, wte, N, C, Vp));
    // causal attention: QK^T and PV, each 2*T*T*hs per head, half of it under the mask
    double afl = 2.0 * B * NH * (double)T * T * (C / NH);
    TIME("attention fwd", L, afl, fx * 4 * nc, be->attention_forward(y, state, qkv, B, T, C, NH));
    TIME("attention bwd", L, 2.5 * afl, fx * 8 * nc, be->attention_backward(dqkv, dx, qkv, y, state, B, T, C, NH));
    TIME("classifier", 1, 0, fx * 2 * (double)N * Vp,
         be->classifier(logits, losses, tok, NULL, 1.0f / N, N, V, Vp));
    sink = p;
    TIME("sumsq (grad norm)", 1, 0, f4 * nparams, sync_sink += (float)be->sumsq(g, nparams));
    if (be->act_bytes == sizeof(float)) {  // the compute copy is the master
        TIME("adamw", 1, 0, f4 * 7 * nparams,
             be->adamw(p, g, m, v, nparams, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1, 1.0f, NULL, 0));
    } else {  // mixed precision: the compute copy written in the same pass, as the train step does
        float *px = be->alloc(nparams * be->act_bytes);
        TIME("adamw + round params", 1, 0, (f4 * 7 + fx) * nparams,
             be->adamw(p, g, m, v, nparams, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1, 1.0f, px, 0));
        TIME("round params alone", 0, 0, (f4 + fx) * nparams, be->round_params(px, p, nparams));
    }

    double total = 0;
    for (int i = 0; i < nrows; i++) total += rows[i].ms * rows[i].per_step;
    printf("d12 step, backend %s: B=%d T=%d C=%d NH=%d vocab %d, %zu parameters\n", name, B, T, C, NH, V, nparams);
    printf("floors from the measured ceilings: GEMM %.0f TFLOP/s, copy %.0f GB/s\n", gemm_tflops, copy_gbs);
    printf("%-22s %6s %9s %9s %9s %8s %6s\n", "op", "calls", "ms/call", "ms/step", "floor ms", "x floor", "share");
    for (int i = 0; i < nrows; i++) {
        Row *q = &rows[i];
        double floor_ms = 1e3 * (q->flops > 0 ? q->flops / (gemm_tflops * 1e12) : q->bytes / (copy_gbs * 1e9));
        printf("%-22s %6d %9.3f %9.2f %9.3f %8.1f %5.1f%%\n", q->name, q->per_step, q->ms, q->ms * q->per_step,
               floor_ms, q->ms / floor_ms, 100 * q->ms * q->per_step / total);
    }
    printf("RESULT ops_step_ms=%.1f\n", total);
    printf("RESULT ops_tokens_per_s=%.0f\n", N / (total / 1e3));
    return 0;
}
