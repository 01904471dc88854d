// Fused softmax + cross-entropy with a per-token loss mask. The gradient overwrites the logits
// in place, so probabilities (B,T,Vp) are never stored: the CUDA backend does the same.
#include "kernels/cpu/cpu.h"
#include <math.h>
#include <string.h>

// logits (N,Vp) -> losses (N,); when dscale != 0 logits become dlogits.
void cpu_classifier(float *logits, float *losses, const int32_t *targets, const float *weight, float dscale, int N,
                    int V, int Vp) {
    OMP(parallel for schedule(static))
    for (int n = 0; n < N; n++) {
        float *l = logits + (size_t)n * Vp;
        float w = weight ? weight[n] : 1.0f;
        if (w == 0.0f) {  // masked: exactly no loss and no gradient
            losses[n] = 0.0f;
            if (dscale != 0.0f) memset(l, 0, (size_t)Vp * sizeof *l);
            continue;
        }
        float mx = cpu_max(l, V);
        int i;
        // sum of exps: 16 lanes, then the lanes in a fixed order, then the tail (deterministic)
        v16f acc = {0};
        for (i = 0; i + 16 <= V; i += 16) {
            v16f x, e;
            V16_LOAD(x, l + i);
            V16_EXP(e, x - mx);
            acc += e;
        }
        float sum = 0.0f;
        for (int j = 0; j < 16; j++) sum += acc[j];
        for (; i < V; i++) sum += cpu_expf(l[i] - mx);
        int y = targets[n];
        losses[n] = w * (logf(sum) + mx - l[y]);
        if (dscale == 0.0f) continue;
        float inv = 1.0f / sum, g = w * dscale;
        for (i = 0; i + 16 <= V; i += 16) {
            v16f x, e;
            V16_LOAD(x, l + i);
            V16_EXP(e, x - mx);
            e = g * (e * inv);
            V16_STORE(l + i, e);
        }
        for (; i < V; i++) l[i] = g * (cpu_expf(l[i] - mx) * inv);
        l[y] -= g;  // the one-hot part
        for (int i = V; i < Vp; i++) l[i] = 0.0f;
    }
}
