// Linear layers on the CPU: out = inp @ weight^T + bias and its backward, all on cpu_gemm; and
// the MLP's pair with the GELU between them (kernels/ops.h), here simply the ops one after another.
// weight is (OC,C) like torch.nn.Linear, so the forward reads it transposed (the GEMM packs it
// into column panels anyway, so the transpose is free).
#include "kernels/cpu/cpu.h"
#include <string.h>

// out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias (OC,)
void cpu_matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC) {
    if (bias) {
        OMP(parallel for schedule(static))
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, bias, OC * sizeof *out);
    }
    cpu_gemm(out, OC, inp, C, 1, weight, 1, C, N, OC, C, bias != NULL);
}

void cpu_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                         const float *weight, int N, int C, int OC) {
    // dinp (N,C) = dout (N,OC) @ weight (OC,C), written
    cpu_gemm(dinp, C, dout, OC, 1, weight, C, 1, N, C, OC, 0);
    // dweight (OC,C) += dout^T (OC,N) @ inp (N,C)
    cpu_gemm(dweight, C, dout, 1, OC, inp, C, 1, OC, C, N, 1);
    if (dbias) {
        // each thread owns a slice of channels and sums rows in order: deterministic
        OMP(parallel for schedule(static))
        for (int o0 = 0; o0 < OC; o0 += 64) {
            int o1 = o0 + 64 < OC ? o0 + 64 : OC;
            float acc[64] = {0};
            for (int n = 0; n < N; n++) {
                const float *d = dout + (size_t)n * OC;
                for (int o = o0; o < o1; o++) acc[o - o0] += d[o];
            }
            for (int o = o0; o < o1; o++) dbias[o] += acc[o - o0];
        }
    }
}

// pre (N,OC) = inp @ weight^T + bias, out = gelu(pre)
void cpu_matmul_gelu_forward(float *pre, float *out, const float *inp, const float *weight, const float *bias, int N,
                             int C, int OC) {
    cpu_matmul_forward(pre, inp, weight, bias, N, C, OC);
    cpu_gelu_forward(out, pre, (size_t)N * OC);
}

// dpre (N,C) = gelu'(pre) * (dout @ weight), written; dweight, dbias accumulate
void cpu_matmul_backward_gelu(float *dpre, float *dweight, float *dbias, const float *dout, const float *inp,
                              const float *weight, const float *pre, int N, int C, int OC) {
    cpu_matmul_backward(dpre, dweight, dbias, dout, inp, weight, N, C, OC);
    cpu_gelu_backward(dpre, pre, dpre, (size_t)N * C);
}
