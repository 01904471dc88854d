// Causal multi-head self-attention on the CPU. qkv (B,T,3C): per position q (C) | k (C) | v (C),
// head h at offset h*hs inside each. The softmax probabilities att (B,NH,T,T) are kept for
// backward (entries above the diagonal are 0).
//
// Every product runs on cpu_gemm, one (b,h) pair per task. The rows are taken in blocks of 64:
// rows t0..t0+63 only ever see keys 0..t0+63, so each block multiplies just that many columns and
// the causal half of the T x T square is skipped (the diagonal block is computed whole and
// masked). Inside this parallel loop the GEMM's own parallel regions run on the calling thread
// alone (OpenMP does not nest), and each pair owns its slices of out / dqkv, summed in a fixed
// order, so the result is the same for any number of threads.
#include "kernels/cpu/cpu.h"
#include "util/util.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BLK 64  // query rows per block

size_t cpu_attention_state_size(int B, int T, int NH) { return (size_t)B * NH * T * T; }

// out (B,T,C), att (B,NH,T,T)
void cpu_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH) {
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    OMP(parallel for collapse(2) schedule(dynamic))
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)b * T * C3 + h * hs, *k = q + C, *v = q + 2 * C;
            float *a = att + ((size_t)b * NH + h) * T * T, *o = out + (size_t)b * T * C + h * hs;
            for (int t0 = 0; t0 < T; t0 += BLK) {
                int rows = T - t0 < BLK ? T - t0 : BLK, cols = t0 + rows;
                float *ab = a + (size_t)t0 * T;
                // scores (rows,cols) = q rows (rows,hs) @ k^T (hs,cols): k read transposed
                cpu_gemm(ab, T, q + (size_t)t0 * C3, C3, 1, k, 1, C3, rows, cols, hs, 0);
                for (int t = t0; t < t0 + rows; t++) {
                    float *row = a + (size_t)t * T;
                    OMP(simd)
                    for (int u = 0; u <= t; u++) row[u] *= scale;
                    float inv = 1.0f / cpu_exp_sum(row, t + 1, cpu_max(row, t + 1));
                    OMP(simd)
                    for (int u = 0; u <= t; u++) row[u] *= inv;
                    memset(row + t + 1, 0, (size_t)(T - t - 1) * sizeof *row);
                }
                // out rows (rows,hs), row stride C = att (rows,cols) @ v (cols,hs)
                cpu_gemm(o + (size_t)t0 * C, C, ab, T, 1, v, C3, 1, rows, hs, cols, 0);
            }
        }
}

// A (T,T) scratch per thread, kept between calls: allocating it per task would page-fault and
// clear fresh pages every time.
static float *scratch_tt(int T) {
    static _Thread_local float *buf;
    static _Thread_local size_t cap;
    if ((size_t)T * T > cap) {
        free(buf);
        cap = (size_t)T * T;
        buf = xmalloc(cap * sizeof *buf);
    }
    return buf;
}

// dqkv (B,T,3C) = gradient of out wrt qkv, written: each (b, h) task clears its slices of dq, dk,
// dv, then its GEMMs add the row blocks' parts into them.
void cpu_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out, const float *att, int B,
                            int T, int C,
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
            for (int t = 0; t < T; t++)
                for (int part = 0; part < 3; part++) memset(dq + (size_t)t * C3 + (size_t)part * C, 0, hs * sizeof *dq);
            float *ds = scratch_tt(T);
            for (int t0 = 0; t0 < T; t0 += BLK) {
                int rows = T - t0 < BLK ? T - t0 : BLK, cols = t0 + rows;
                const float *ab = a + (size_t)t0 * T, *db = d + (size_t)t0 * C;
                float *sb = ds + (size_t)t0 * T;
                // through out = att @ v: datt (rows,cols) = dout rows @ v^T, dv (cols) += att^T @ dout rows
                cpu_gemm(sb, T, db, C, 1, v, 1, C3, rows, cols, hs, 0);
                cpu_gemm(dv, C3, ab, 1, T, db, C, 1, cols, hs, rows, 1);
                // through the softmax: dpre = att * (datt - sum(att * datt)), times the score scale
                for (int t = t0; t < t0 + rows; t++) {
                    const float *ar = a + (size_t)t * T;
                    float *r = ds + (size_t)t * T, s = 0.0f;
                    OMP(simd reduction(+ : s))
                    for (int u = 0; u <= t; u++) s += ar[u] * r[u];
                    OMP(simd)
                    for (int u = 0; u <= t; u++) r[u] = ar[u] * (r[u] - s) * scale;
                    for (int u = t + 1; u < cols; u++) r[u] = 0.0f;
                }
                // through scores = q @ k^T: dq rows += dpre @ k, dk (cols) += dpre^T @ q rows
                cpu_gemm(dq + (size_t)t0 * C3, C3, sb, T, 1, k, C3, 1, rows, hs, cols, 1);
                cpu_gemm(dk, C3, sb, 1, T, q + (size_t)t0 * C3, C3, 1, cols, hs, rows, 1);
            }
        }
}
