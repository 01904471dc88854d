// The cheap ops: token + position embedding, GELU (for matmul.c's fused ops), residual add.
// Memory-bound; parallel loops.
#include "kernels/cpu/cpu.h"
#include <math.h>

// out (B,T,C) = wte[inp[b,t]] + wpe[t]
void cpu_encoder_forward(float *out, const int32_t *inp, const float *wte, const float *wpe, int B, int T, int C) {
    OMP(parallel for schedule(static))
    for (int bt = 0; bt < B * T; bt++) {
        const float *e = wte + (size_t)inp[bt] * C, *p = wpe + (size_t)(bt % T) * C;
        float *o = out + (size_t)bt * C;
        for (int i = 0; i < C; i++) o[i] = e[i] + p[i];
    }
}

// Tokens repeat, so rows of dwte collide: each thread owns a slice of channels instead and walks
// the positions in order (deterministic, no atomics). inp is host memory here: inp_host adds nothing.
void cpu_encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *inp, const int32_t *inp_host, int B,
                          int T, int C) {
    (void)inp_host;
    OMP(parallel for schedule(static))
    for (int c0 = 0; c0 < C; c0 += 16) {
        int c1 = c0 + 16 < C ? c0 + 16 : C;
        for (int bt = 0; bt < B * T; bt++) {
            const float *d = dout + (size_t)bt * C;
            float *e = dwte + (size_t)inp[bt] * C, *p = dwpe + (size_t)(bt % T) * C;
            for (int i = c0; i < c1; i++) { e[i] += d[i]; p[i] += d[i]; }
        }
    }
}

#define GELU_SCALE 0.7978845608028654f  // sqrt(2/pi)

// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): 16 lanes at a time, the tail one by one
static inline float gelu1(float x) { return 0.5f * x * (1.0f + cpu_tanhf(GELU_SCALE * (x + 0.044715f * x * x * x))); }
static inline float gelu_grad1(float x) {
    float th = cpu_tanhf(GELU_SCALE * (x + 0.044715f * x * x * x));
    return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
}

void cpu_gelu_forward(float *out, const float *inp, size_t n) {
    size_t nv = n / 16;
    OMP(parallel for schedule(static))
    for (size_t j = 0; j < nv; j++) {
        v16f x, th, y;
        V16_LOAD(x, inp + 16 * j);
        V16_TANH(th, GELU_SCALE * (x + 0.044715f * x * x * x));
        y = 0.5f * x * (1.0f + th);
        V16_STORE(out + 16 * j, y);
    }
    for (size_t i = nv * 16; i < n; i++) out[i] = gelu1(inp[i]);
}

// dinp = gelu'(inp) * dout, overwritten; dinp may be dout (each element is read before written).
void cpu_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    size_t nv = n / 16;
    OMP(parallel for schedule(static))
    for (size_t j = 0; j < nv; j++) {
        v16f x, th, d, g;
        V16_LOAD(x, inp + 16 * j);
        V16_LOAD(d, dout + 16 * j);
        V16_TANH(th, GELU_SCALE * (x + 0.044715f * x * x * x));
        g = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
        d = g * d;
        V16_STORE(dinp + 16 * j, d);
    }
    for (size_t i = nv * 16; i < n; i++) dinp[i] = gelu_grad1(inp[i]) * dout[i];
}

void cpu_residual_forward(float *out, const float *a, const float *b, size_t n) {
    OMP(parallel for simd schedule(static))
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
