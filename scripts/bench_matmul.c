// Matmul throughput of the CPU backend against the machine's measured FMA peak.
// Built and run by scripts/bench_train_cpu.sh:
//   cc -std=c11 -O2 -march=native -fopenmp -I. -D_GNU_SOURCE scripts/bench_matmul.c kernels/cpu/*.c util/util.c -lz -lm
//   ./bench_matmul [threads]
// The peak is measured, not looked up: every thread runs 24 independent 16-wide FMA chains
// (enough to hide the FMA latency), which is the most any fp32 kernel can do on this machine.
#include "kernels/ops.h"
#include "util/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

// count fused multiply-adds, as the GEMM micro-kernel does (kernels/cpu/gemm.c)
#if defined(__clang__)
#pragma clang fp contract(fast)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=fast")
#endif

typedef float v16 __attribute__((vector_size(64)));

static double peak_gflops(void) {
    long iters = 20000000;  // best of 3 runs below
    double t0 = now_seconds();
    float sink = 0;
#pragma omp parallel reduction(+ : sink)
    {
        v16 acc[24], x, y;
        for (int i = 0; i < 24; i++) acc[i] = (v16){0} + (float)i * 1e-3f;
        x = (v16){0} + 0.999999f;
        y = (v16){0} + 1e-7f;
        for (long it = 0; it < iters / 24; it++) {
#pragma GCC unroll 24
            for (int i = 0; i < 24; i++) acc[i] = acc[i] * x + y;
            __asm__ volatile("" : "+v"(x));  // keep the compiler from folding the loop
        }
        for (int i = 0; i < 24; i++) sink += acc[i][0];
    }
    double dt = now_seconds() - t0;
    int nt = 1;
#ifdef _OPENMP
    nt = omp_get_max_threads();
#endif
    if (sink == 12345.0f) printf("%g\n", sink);
    return (double)nt * (iters / 24) * 24 * 16 * 2 / dt / 1e9;
}

int main(int argc, char **argv) {
    const Backend *be = &backend_cpu;
    if (argc > 1) be->set_threads(atoi(argv[1]));
    double peak = 0;
    for (int r = 0; r < 3; r++) {
        double p = peak_gflops();
        if (p > peak) peak = p;
    }
    printf("measured fp32 FMA peak: %.1f GFLOP/s\n", peak);
    // the d4 training shapes at B=8, T=256 (N = 2048 rows): qkv, attproj, fc, fcproj, lm head
    struct { const char *name; int N, C, OC; } shapes[] = {
        {"qkv     2048x256 -> 768", 2048, 256, 768},   {"attproj 2048x256 -> 256", 2048, 256, 256},
        {"fc      2048x256 -> 1024", 2048, 256, 1024}, {"fcproj  2048x1024 -> 256", 2048, 1024, 256},
        {"lm head 2048x256 -> 4096", 2048, 256, 4096}, {"square  1024x1024 -> 1024", 1024, 1024, 1024}};
    double fw_flops = 0, fw_time = 0, bw_flops = 0, bw_time = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s].N, C = shapes[s].C, OC = shapes[s].OC;
        float *inp = be->alloc((size_t)N * C * 4), *w = be->alloc((size_t)OC * C * 4), *b = be->alloc((size_t)OC * 4);
        float *out = be->alloc((size_t)N * OC * 4), *dinp = be->alloc((size_t)N * C * 4), *dw = be->alloc((size_t)OC * C * 4);
        float *db = be->alloc((size_t)OC * 4);
        for (size_t i = 0; i < (size_t)N * C; i++) inp[i] = (float)(i % 7) * 0.1f;
        for (size_t i = 0; i < (size_t)OC * C; i++) w[i] = (float)(i % 5) * 0.1f;
        be->matmul_forward(out, inp, w, b, N, C, OC);  // warm up
        // best of 7: the machine is shared, and the fastest run is the one nobody interrupted
        double tf = 1e30, tb = 1e30;
        for (int r = 0; r < 7; r++) {
            double t0 = now_seconds();
            be->matmul_forward(out, inp, w, b, N, C, OC);
            double t1 = now_seconds();
            be->matmul_backward(dinp, dw, db, out, inp, w, N, C, OC);
            double t2 = now_seconds();
            if (t1 - t0 < tf) tf = t1 - t0;
            if (t2 - t1 < tb) tb = t2 - t1;
        }
        double f = 2.0 * N * C * OC;
        printf("  %-28s forward %6.1f GFLOP/s   backward %6.1f GFLOP/s\n", shapes[s].name, f / tf / 1e9, 2 * f / tb / 1e9);
        if (s < 5) { fw_flops += f; fw_time += tf; bw_flops += 2 * f; bw_time += tb; }
        be->free(inp); be->free(w); be->free(b); be->free(out); be->free(dinp); be->free(dw); be->free(db);
    }
    double all = (fw_flops + bw_flops) / (fw_time + bw_time) / 1e9;
    printf("d4 matmuls, forward+backward: %.1f GFLOP/s = %.0f%% of the measured peak\n", all, 100 * all / peak);
    return 0;
}
