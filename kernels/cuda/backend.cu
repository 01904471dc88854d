// The CUDA backend's table (kernels/ops.h), device memory, initialisation and error reporting.
// Every op runs on the legacy default stream, in issue order, so upload/download (cudaMemcpy)
// synchronise with everything queued before them and no op needs its own fence.
#include "kernels/cuda/common.cuh"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- errors ----

void cuda_die(cudaError_t e, const char *what, const char *fmt, ...) {
    char ctx[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    fatal("cuda: %s: %s failed: %s (%s)", ctx, what, cudaGetErrorString(e), cudaGetErrorName(e));
}

static int sync_each_launch = -1;  // TRACELLM_CUDA_SYNC=1: synchronise after every launch

void cuda_after_launch(const char *file, int line, const char *fmt, ...) {
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess && sync_each_launch == 1) e = cudaDeviceSynchronize();
    if (e == cudaSuccess) return;
    char ctx[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    fatal("cuda: %s: kernel failed: %s (%s) [%s:%d]%s", ctx, cudaGetErrorString(e), cudaGetErrorName(e), file, line,
          sync_each_launch == 1 ? "" : " (the fault may belong to an earlier op: rerun with TRACELLM_CUDA_SYNC=1)");
}

// ---- device ----

static int initialised, matmul_mode = -1;

int cuda_device_check(char *why, size_t n) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        if (why) snprintf(why, n, "cudaGetDeviceCount: %s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
        cudaGetLastError();  // clear the sticky-free error so a later probe reports afresh
        return 0;
    }
    if (count < 1) {
        if (why) snprintf(why, n, "cudaGetDeviceCount: no CUDA device found");
        return 0;
    }
    return 1;
}

void cuda_init(void) {
    if (initialised) return;
    char why[256];
    if (!cuda_device_check(why, sizeof why))
        fatal("--device cuda: no usable GPU (%s); use --device cpu on this machine", why);
    const char *s = getenv("TRACELLM_CUDA_SYNC");
    sync_each_launch = s && !strcmp(s, "1");
    if (matmul_mode < 0) {
        const char *m = getenv("TRACELLM_CUDA_MATMUL");
        if (!m || !*m || !strcmp(m, "tf32")) matmul_mode = CUDA_MATMUL_TF32;
        else if (!strcmp(m, "fp32")) matmul_mode = CUDA_MATMUL_FP32;
        else if (!strcmp(m, "bf16")) matmul_mode = CUDA_MATMUL_BF16;
        else fatal("TRACELLM_CUDA_MATMUL=%s: expected tf32, fp32 or bf16", m);
    }
    CUDA_CHECK(cudaSetDevice(0), "init");
    initialised = 1;
}

void cuda_set_matmul_mode(int mode) {
    if (mode < CUDA_MATMUL_TF32 || mode > CUDA_MATMUL_BF16) fatal("cuda_set_matmul_mode: unknown mode %d", mode);
    matmul_mode = mode;
}
int cuda_matmul_mode(void) { return matmul_mode < 0 ? CUDA_MATMUL_TF32 : matmul_mode; }

void cuda_synchronize(void) {
    cuda_init();
    CUDA_CHECK(cudaDeviceSynchronize(), "synchronize");
}

// ---- memory ----

static void *cu_alloc(size_t bytes) {
    cuda_init();
    void *p = NULL;
    size_t n = bytes ? bytes : 16;
    CUDA_CHECK(cudaMalloc(&p, n), "alloc %zu bytes", bytes);
    CUDA_CHECK(cudaMemset(p, 0, n), "alloc %zu bytes (zero fill)", bytes);
    return p;
}
static void cu_free(void *p) {
    if (!p) return;
    CUDA_CHECK(cudaFree(p), "free %p", p);
}
static void cu_upload(void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    cuda_init();
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "upload %zu bytes", bytes);
}
static void cu_download(void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    cuda_init();
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "download %zu bytes", bytes);
}
static void cu_zero(void *p, size_t bytes) {
    if (!bytes) return;
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, 0), "zero %zu bytes", bytes);
}
static void cu_set_threads(int n) { (void)n; }  // host threads do not matter here

// Scratch buffers reused across calls (attention's row statistics, the encoder's token lists).
void *cuda_scratch(int slot, size_t bytes) {
    static void *buf[8];
    static size_t cap[8];
    if (slot < 0 || slot >= 8) fatal("cuda_scratch: slot %d", slot);
    if (bytes > cap[slot]) {
        if (buf[slot]) CUDA_CHECK(cudaFree(buf[slot]), "scratch free");
        size_t n = bytes + bytes / 4;
        CUDA_CHECK(cudaMalloc(&buf[slot], n), "scratch alloc %zu bytes", n);
        cap[slot] = n;
    }
    return buf[slot];
}

// ---- the ops, one file each ----
void cu_encoder_forward(float *out, const int32_t *inp, const float *wte, const float *wpe, int B, int T, int C);
void cu_encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *inp, int B, int T, int C);
void cu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                          int N, int C);
void cu_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                           const float *mean, const float *rstd, int N, int C);
void cu_matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC);
void cu_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, int N, int C, int OC);
size_t cu_attention_state_size(int B, int T, int NH);
void cu_attention_forward(float *out, float *state, const float *qkv, int B, int T, int C, int NH);
void cu_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out, const float *state, int B,
                           int T, int C,
                           int NH);
void cu_gelu_forward(float *out, const float *inp, size_t n);
void cu_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
void cu_residual_forward(float *out, const float *a, const float *b, size_t n);
void cu_residual_backward(float *da, float *db, const float *dout, size_t n);
void cu_classifier(float *logits, float *losses, const int32_t *targets, const float *weight, float dscale, int N,
                   int V, int Vp);
double cu_sumsq(const float *g, size_t n);
void cu_adamw(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2, float eps,
              float wd, int t, float grad_scale);
void cu_attention_decode(float *out, float *kcache, float *vcache, const float *qkv, const int32_t *slot,
                         const int32_t *pos, const int32_t *pslot, const int32_t *plen, int N, int C, int NH, int maxT);

// Field by field in ops.h's order (C++17 has no designated initialisers); fields ops.h may gain
// at its end are zero here, which every caller treats as "not provided".
static Backend make_table() {
    Backend b;
    memset(&b, 0, sizeof b);
    b.name = "cuda";
    b.alloc = cu_alloc;
    b.free = cu_free;
    b.upload = cu_upload;
    b.download = cu_download;
    b.zero = cu_zero;
    b.set_threads = cu_set_threads;
    b.encoder_forward = cu_encoder_forward;
    b.encoder_backward = cu_encoder_backward;
    b.layernorm_forward = cu_layernorm_forward;
    b.layernorm_backward = cu_layernorm_backward;
    b.matmul_forward = cu_matmul_forward;
    b.matmul_backward = cu_matmul_backward;
    b.attention_state_size = cu_attention_state_size;
    b.attention_forward = cu_attention_forward;
    b.attention_backward = cu_attention_backward;
    b.gelu_forward = cu_gelu_forward;
    b.gelu_backward = cu_gelu_backward;
    b.residual_forward = cu_residual_forward;
    b.residual_backward = cu_residual_backward;
    b.classifier = cu_classifier;
    b.sumsq = cu_sumsq;
    b.adamw = cu_adamw;
    b.attention_decode = cu_attention_decode;
    return b;
}

extern "C" const Backend backend_cuda = make_table();
