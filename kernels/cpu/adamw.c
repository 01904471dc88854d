// The optimizer ops: the squared norm for global-norm clipping and the AdamW update.
#include "kernels/cpu/cpu.h"
#include "util/util.h"
#include <math.h>
#include <stdlib.h>

// Fixed chunks summed in order: the same bits whatever the thread count.
#define CHUNK 8192
double cpu_sumsq(const float *g, size_t n) {
    size_t n_chunks = (n + CHUNK - 1) / CHUNK;
    double *part = xmalloc((n_chunks + 1) * sizeof *part);
    OMP(parallel for schedule(static))
    for (size_t c = 0; c < n_chunks; c++) {
        size_t i1 = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
        double s = 0.0;
        for (size_t i = c * CHUNK; i < i1; i++) s += (double)g[i] * g[i];
        part[c] = s;
    }
    double total = 0.0;
    for (size_t c = 0; c < n_chunks; c++) total += part[c];
    free(part);
    return total;
}

// Exactly torch.optim.AdamW's arithmetic (foreach=False), so the reference losses match. The
// compute type is fp32 here, so the compute copy (px, when given) is a plain copy.
void cpu_adamw(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2, float eps,
               float wd, int t, float grad_scale, float *px, size_t at) {
    // bias corrections in double, as torch computes them in Python floats
    double bc1 = 1.0 - pow(beta1, t), bc2 = 1.0 - pow(beta2, t);
    float step = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2), decay = 1.0f - lr * wd;
    OMP(parallel for schedule(static))
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * grad_scale;
        float pi = p[i] * decay;
        float mi = m[i] * beta1 + gi * (1.0f - beta1);
        float vi = v[i] * beta2 + gi * gi * (1.0f - beta2);
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - step * (mi / (sqrtf(vi) / bc2_sqrt + eps));
        if (px) px[at + i] = p[i];
    }
}
