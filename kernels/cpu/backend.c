// The CPU backend's table: host memory, OpenMP threads, and the fp32 ops of kernels/cpu/*.c.
// This is the reference every other backend is tested against.
#include "kernels/ops.h"
#include "kernels/cpu/cpu.h"
#include "util/util.h"
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

// the ops, defined in this folder
void cpu_encoder_forward(float *out, const int32_t *inp, const float *wte, const float *wpe, int B, int T, int C);
void cpu_encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *inp, const int32_t *inp_host, int B,
                          int T, int C);
void cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                           int N, int C);
void cpu_residual_layernorm_forward(float *res, float *out, float *mean, float *rstd, const float *a, const float *b,
                                    const float *w, const float *bias, int N, int C);
void cpu_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                            const float *mean, const float *rstd, int N, int C);
void cpu_matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC);
void cpu_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                         const float *weight, int N, int C, int OC);
void cpu_matmul_gelu_forward(float *pre, float *out, const float *inp, const float *weight, const float *bias, int N,
                             int C, int OC);
void cpu_matmul_backward_gelu(float *dpre, float *dweight, float *dbias, const float *dout, const float *inp,
                              const float *weight, const float *pre, int N, int C, int OC);
size_t cpu_attention_state_size(int B, int T, int NH);
void cpu_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH);
void cpu_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out, const float *att, int B,
                            int T, int C,
                            int NH);
void cpu_residual_forward(float *out, const float *a, const float *b, size_t n);
void cpu_classifier(float *logits, float *losses, const int32_t *targets, const float *weight, float dscale, int N,
                    int V, int Vp);
double cpu_sumsq(const float *g, size_t n);
void cpu_adamw(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2, float eps,
               float wd, int t, float grad_scale, float *px, size_t at);
void cpu_attention_decode(float *out, float *kcache, float *vcache, const float *qkv, const int32_t *slot, const int32_t *pos, const int32_t *pslot, const int32_t *plen, int N, int C, int NH, int maxT);

static void *cpu_alloc(size_t bytes) {
    // 64-byte aligned for full-width vector loads; zero-filled like every backend's alloc
    size_t n = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, n ? n : 64);
    if (!p) fatal("out of memory allocating %zu bytes", bytes);
    memset(p, 0, n);
    return p;
}
static void cpu_free(void *p) { free(p); }
static void cpu_copy(void *dst, const void *src, size_t bytes) { if (bytes) memmove(dst, src, bytes); }
// Activation gradients are hundreds of MB: zero them with every thread.
static void cpu_zero(void *p, size_t bytes) {
    size_t chunk = 1 << 20, n = (bytes + chunk - 1) / chunk;
    OMP(parallel for schedule(static))
    for (size_t i = 0; i < n; i++) memset((char *)p + i * chunk, 0, i == n - 1 ? bytes - i * chunk : chunk);
}
// fp32 is the compute type here: the act copies are plain copies and the parameter copy is the
// master itself.
static void cpu_copy_act(float *dst, const float *src, size_t n) { cpu_copy(dst, src, n * sizeof(float)); }
static void cpu_round_params(float *dst, const float *src, size_t n) {
    if (dst != src) cpu_copy(dst, src, n * sizeof(float));
}
static void cpu_set_threads(int n) {
#ifdef _OPENMP
    if (n > 0) omp_set_num_threads(n);
#endif
}

const Backend backend_cpu = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .zero = cpu_zero,
    .set_threads = cpu_set_threads,
    .act_bytes = sizeof(float),
    .upload_act = cpu_copy_act,
    .download_act = cpu_copy_act,
    .round_params = cpu_round_params,
    .encoder_forward = cpu_encoder_forward,
    .encoder_backward = cpu_encoder_backward,
    .layernorm_forward = cpu_layernorm_forward,
    .layernorm_backward = cpu_layernorm_backward,
    .residual_layernorm_forward = cpu_residual_layernorm_forward,
    .matmul_forward = cpu_matmul_forward,
    .matmul_backward = cpu_matmul_backward,
    .attention_state_size = cpu_attention_state_size,
    .attention_forward = cpu_attention_forward,
    .attention_backward = cpu_attention_backward,
    .matmul_gelu_forward = cpu_matmul_gelu_forward,
    .matmul_backward_gelu = cpu_matmul_backward_gelu,
    .residual_forward = cpu_residual_forward,
    .classifier = cpu_classifier,
    .sumsq = cpu_sumsq,
    .adamw = cpu_adamw,
    .attention_decode = cpu_attention_decode,
};

#ifdef TRACELLM_CUDA
extern const Backend backend_cuda, backend_cuda_fp32;
#endif

const Backend *backend_get(const char *name) {
    if (!strcmp(name, "cpu")) return &backend_cpu;
#ifdef TRACELLM_CUDA
    if (!strcmp(name, "cuda")) return &backend_cuda;
    if (!strcmp(name, "cuda-fp32")) return &backend_cuda_fp32;
#endif
    return NULL;
}
