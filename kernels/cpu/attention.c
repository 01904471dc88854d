// Causal multi-head self-attention on the CPU. qkv (B,T,3C): per position q (C) | k (C) | v (C),
// head h at offset h*hs inside each. The softmax probabilities att (B,NH,T,T) are kept for
// backward (entries above the diagonal are 0).
//
// Every product runs on cpu_gemm, one (b,h) pair per task: the GEMM does the full T x T square
// although the causal half would do, but at several times the speed of dot-product loops. Inside
// this parallel loop the GEMM's own parallel regions run on the calling thread alone (OpenMP does
// not nest), and each pair owns its slices of out / dqkv, so the result is the same for any number
// of threads.
#include "kernels/cpu/cpu.h"
#include "util/util.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

size_t cpu_attention_state_size(int B, int T, int NH) { return (size_t)B * NH * T * T; }

// out (B,T,C), att (B,NH,T,T)
void cpu_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH) {
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    OMP(parallel for collapse(2) schedule(dynamic))
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)b * T * C3 + h * hs, *k = q + C, *v = q + 2 * C;
            float *a = att + ((size_t)b * NH + h) * T * T;
            // scores (T,T) = q (T,hs) @ k^T: k read transposed (row stride 3C)
            cpu_gemm(a, T, q, C3, 1, k, 1, C3, T, T, hs, 0);
            for (int t = 0; t < T; t++) {
                float *row = a + (size_t)t * T;
                OMP(simd)
                for (int u = 0; u <= t; u++) row[u] *= scale;
                float inv = 1.0f / cpu_exp_sum(row, t + 1, cpu_max(row, t + 1));
                OMP(simd)
                for (int u = 0; u <= t; u++) row[u] *= inv;
                memset(row + t + 1, 0, (size_t)(T - t - 1) * sizeof *row);
            }
            // out (T,hs) with row stride C = att (T,T) @ v (T,hs)
            cpu_gemm(out + (size_t)b * T * C + h * hs, C, a, T, 1, v, C3, 1, T, hs, T, 0);
        }
}

// dqkv (B,T,3C) += gradient of out wrt qkv.
void cpu_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int T, int C,
                            int NH) {
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    OMP(parallel for collapse(2) schedule(dynamic))
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            size_t o3 = (size_t)b * T * C3 + h * hs;
            const float *q = qkv + o3, *k = q + C, *v = q + 2 * C;
            float *dq = dqkv + o3, *dk = dq + C, *dv = dq + 2 * C;
            const float *a = att + ((size_t)b * NH + h) * T * T;
            const float *d = dout + (size_t)b * T * C + h * hs;  // (T,hs), row stride C
            float *ds = xmalloc((size_t)T * T * sizeof *ds);
            // through out = att @ v: datt (T,T) = dout @ v^T, dv += att^T @ dout
            cpu_gemm(ds, T, d, C, 1, v, 1, C3, T, T, hs, 0);
            cpu_gemm(dv, C3, a, 1, T, d, C, 1, T, hs, T, 1);
            // through the softmax: dpre = att * (datt - sum(att * datt)), times the score scale
            for (int t = 0; t < T; t++) {
                const float *ar = a + (size_t)t * T;
                float *r = ds + (size_t)t * T, s = 0.0f;
                OMP(simd reduction(+ : s))
                for (int u = 0; u <= t; u++) s += ar[u] * r[u];
                OMP(simd)
                for (int u = 0; u <= t; u++) r[u] = ar[u] * (r[u] - s) * scale;
                memset(r + t + 1, 0, (size_t)(T - t - 1) * sizeof *r);
            }
            // through scores = q @ k^T: dq += dpre @ k, dk += dpre^T @ q
            cpu_gemm(dq, C3, ds, T, 1, k, C3, 1, T, hs, T, 1);
            cpu_gemm(dk, C3, ds, 1, T, q, C3, 1, T, hs, T, 1);
            free(ds);
        }
}
