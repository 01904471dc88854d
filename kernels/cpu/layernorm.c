// LayerNorm over the channel dim, eps 1e-5 (GPT-2, torch.nn.LayerNorm).
#include "kernels/cpu/cpu.h"
#include <math.h>

// out (N,C), mean (N,), rstd (N,)
void cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                           int N, int C) {
    OMP(parallel for schedule(static))
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float m = 0.0f;
        for (int i = 0; i < C; i++) m += x[i];
        m /= C;
        float v = 0.0f;
        for (int i = 0; i < C; i++) v += (x[i] - m) * (x[i] - m);
        v /= C;
        float s = 1.0f / sqrtf(v + 1e-5f);
        float *o = out + (size_t)n * C;
        for (int i = 0; i < C; i++) o[i] = (x[i] - m) * s * w[i] + b[i];
        mean[n] = m;
        rstd[n] = s;
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
