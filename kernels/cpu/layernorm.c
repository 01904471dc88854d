// LayerNorm over the channel dim, eps 1e-5 (GPT-2, torch.nn.LayerNorm).
#include "kernels/cpu/cpu.h"
#include <math.h>

// one row x (C,) into o, its mean and rstd
static inline void layernorm_row(float *o, float *mean, float *rstd, const float *x, const float *w, const float *b,
                                 int C) {
    float m = 0.0f;
    for (int i = 0; i < C; i++) m += x[i];
    m /= C;
    float v = 0.0f;
    for (int i = 0; i < C; i++) v += (x[i] - m) * (x[i] - m);
    v /= C;
    float s = 1.0f / sqrtf(v + 1e-5f);
    for (int i = 0; i < C; i++) o[i] = (x[i] - m) * s * w[i] + b[i];
    *mean = m;
    *rstd = s;
}

// out (N,C), mean (N,), rstd (N,)
void cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                           int N, int C) {
    OMP(parallel for schedule(static))
    for (int n = 0; n < N; n++)
        layernorm_row(out + (size_t)n * C, mean + n, rstd + n, inp + (size_t)n * C, w, b, C);
}

// res (N,C) = a + b, then its LayerNorm, row by row while the row is in cache
void cpu_residual_layernorm_forward(float *res, float *out, float *mean, float *rstd, const float *a, const float *b,
                                    const float *w, const float *bias, int N, int C) {
    OMP(parallel for schedule(static))
    for (int n = 0; n < N; n++) {
        size_t o = (size_t)n * C;
        for (int i = 0; i < C; i++) res[o + i] = a[o + i] + b[o + i];
        layernorm_row(out + o, mean + n, rstd + n, res + o, w, bias, C);
    }
}

void cpu_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                            const float *mean, const float *rstd, int N, int C) {
    // dinp: rows are independent
    OMP(parallel for schedule(static))
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
        float m = mean[n], s = rstd[n];
        // the two means that couple a row's gradient: of w*dout, and of w*dout*norm
        float dmean = 0.0f, dnorm_mean = 0.0f;
        for (int i = 0; i < C; i++) {
            float norm = (x[i] - m) * s, dn = w[i] * d[i];
            dmean += dn;
            dnorm_mean += dn * norm;
        }
        dmean /= C;
        dnorm_mean /= C;
        float *di = dinp + (size_t)n * C;
        for (int i = 0; i < C; i++) {
            float norm = (x[i] - m) * s, dn = w[i] * d[i];
            di[i] += (dn - dmean - norm * dnorm_mean) * s;
        }
    }
    // dw, db: each thread owns a slice of channels and sums the rows in order (deterministic)
    OMP(parallel for schedule(static))
    for (int c0 = 0; c0 < C; c0 += 32) {
        int c1 = c0 + 32 < C ? c0 + 32 : C;
        float aw[32] = {0}, ab[32] = {0};
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
            float m = mean[n], s = rstd[n];
            for (int i = c0; i < c1; i++) {
                aw[i - c0] += (x[i] - m) * s * d[i];
                ab[i - c0] += d[i];
            }
        }
        for (int i = c0; i < c1; i++) { dw[i] += aw[i - c0]; db[i] += ab[i - c0]; }
    }
}
