// Attention over a KV cache on the CPU (the inference op of kernels/ops.h): N new tokens, each at
// its own (slot, position), attend causally over their sequence's cached keys and values.
// The math is attention_forward's, term for term in the same order (scores, max, exp, sum, scale,
// weighted sum of v), so cached decoding reproduces the full forward's outputs.
// kcache, vcache (S,maxT,C); qkv (N,3C); out (N,C).
#include "kernels/cpu/cpu.h"
#include "util/util.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

void cpu_attention_decode(float *out, float *kcache, float *vcache, const float *qkv, const int32_t *slot,
                          const int32_t *pos, const int32_t *pslot, const int32_t *plen, int N, int C, int NH,
                          int maxT);

static inline float dot(const float *a, const float *b, int n) {
    float s = 0.0f;
    OMP(simd reduction(+ : s))
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

void cpu_attention_decode(float *out, float *kcache, float *vcache, const float *qkv, const int32_t *slot,
                          const int32_t *pos, const int32_t *pslot, const int32_t *plen, int N, int C, int NH,
                          int maxT) {
    if (N <= 0) return;
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    // 1. store: every row's k and v go to their cache cell before anyone reads
    OMP(parallel for schedule(static))
    for (int i = 0; i < N; i++) {
        size_t cell = ((size_t)slot[i] * maxT + pos[i]) * C;
        memcpy(kcache + cell, qkv + (size_t)i * C3 + C, C * sizeof(float));
        memcpy(vcache + cell, qkv + (size_t)i * C3 + 2 * C, C * sizeof(float));
    }
    // 2. attend: (row, head) pairs are independent; the score buffer is per thread
    int maxlen = 0;
    for (int i = 0; i < N; i++) if (pos[i] + 1 > maxlen) maxlen = pos[i] + 1;
    OMP(parallel)
    {
        float *a = xmalloc((size_t)maxlen * sizeof *a);
        OMP(for collapse(2) schedule(dynamic, 4))
        for (int i = 0; i < N; i++)
            for (int h = 0; h < NH; h++) {
                const float *q = qkv + (size_t)i * C3 + h * hs;
                int t = pos[i], pl = plen[i];
                // position t2 lives in the prefix slot below plen, in the row's own slot above
                const float *kp = kcache + (size_t)pslot[i] * maxT * C + h * hs;
                const float *ks = kcache + (size_t)slot[i] * maxT * C + h * hs;
                const float *vp = vcache + (size_t)pslot[i] * maxT * C + h * hs;
                const float *vs = vcache + (size_t)slot[i] * maxT * C + h * hs;
                float mx = -INFINITY;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *k = (t2 < pl ? kp : ks) + (size_t)t2 * C;
                    a[t2] = dot(q, k, hs) * scale;
                    if (a[t2] > mx) mx = a[t2];
                }
                float sum = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) { a[t2] = expf(a[t2] - mx); sum += a[t2]; }
                float inv = 1.0f / sum;
                for (int t2 = 0; t2 <= t; t2++) a[t2] *= inv;
                float *o = out + (size_t)i * C + h * hs;
                memset(o, 0, hs * sizeof *o);
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *v = (t2 < pl ? vp : vs) + (size_t)t2 * C;
                    float w = a[t2];
                    OMP(simd)
                    for (int j = 0; j < hs; j++) o[j] += w * v[j];
                }
            }
        free(a);
    }
}
