// The CUDA backend's two tables (kernels/ops.h), "cuda" (bf16 compute type) and "cuda-fp32", device
// memory, initialisation and error reporting.
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

int cuda_env_choice(const char *var, const char *const *choices) {
    const char *v = getenv(var);
    if (!v || !*v) return 0;
    for (int i = 0; choices[i]; i++)
        if (!strcmp(v, choices[i])) return i;
    char list[256] = "";
    for (int i = 0; choices[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? (choices[i + 1] ? ", " : " or ") : "",
                 choices[i]);
    fatal("%s=%s: expected %s", var, v, list);
}

void cuda_init(void) {
    if (initialised) return;
    char why[256];
    if (!cuda_device_check(why, sizeof why))
        fatal("--device cuda: no usable GPU (%s); use --device cpu on this machine", why);
    const char *s = getenv("TRACELLM_CUDA_SYNC");
    sync_each_launch = s && !strcmp(s, "1");
    if (matmul_mode < 0) {  // in the order of CUDA_MATMUL_*
        static const char *const modes[] = {"tf32", "fp32", "bf16", NULL};
        matmul_mode = cuda_env_choice("TRACELLM_CUDA_MATMUL", modes);
    }
    // one process per GPU: a launcher that leaves every GPU visible (plain mpirun, srun, torchrun
    // style) gives each process its local rank, which picks the device; a launcher that narrows
    // CUDA_VISIBLE_DEVICES to one GPU per process (scripts/launch/) leaves count 1 and device 0
    int count = 1, dev = 0;
    cudaGetDeviceCount(&count);
    static const char *local_rank_vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID",
                                            "LOCAL_RANK"};
    for (int i = 0; i < 4 && count > 1; i++) {
        const char *v = getenv(local_rank_vars[i]);
        if (v && *v) { dev = atoi(v) % count; break; }
    }
    CUDA_CHECK(cudaSetDevice(dev), "init (device %d of %d)", dev, count);
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

// ---- the compute type on the host side: fp32 <-> X, converted on the host around one copy ----

static uint16_t host_bf16(float f) {  // round to nearest even, NaN stays NaN
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}
template <class X> static void cu_upload_act(float *dst, const float *host, size_t n) {
    if (!n) return;
    if (sizeof(X) == 4) { cu_upload(dst, host, n * 4); return; }
    uint16_t *h = (uint16_t *)xmalloc(n * 2);
    for (size_t i = 0; i < n; i++) h[i] = host_bf16(host[i]);
    cu_upload(dst, h, n * 2);
    free(h);
}
template <class X> static void cu_download_act(float *host, const float *src, size_t n) {
    if (!n) return;
    if (sizeof(X) == 4) { cu_download(host, src, n * 4); return; }
    uint16_t *h = (uint16_t *)xmalloc(n * 2);
    cu_download(h, src, n * 2);
    for (size_t i = 0; i < n; i++) { uint32_t u = (uint32_t)h[i] << 16; memcpy(&host[i], &u, 4); }
    free(h);
}

// Scratch buffers reused across calls (attention's row statistics, the encoder's token lists).
static void *scratch_buf[8];
static size_t scratch_cap[8];
void *cuda_scratch_try(int slot, size_t bytes) {
    if (slot < 0 || slot >= 8) fatal("cuda_scratch: slot %d", slot);
    if (bytes > scratch_cap[slot]) {
        cuda_scratch_release(slot);
        size_t n = bytes + bytes / 4;
        if (cudaMalloc(&scratch_buf[slot], n) != cudaSuccess) {
            cudaGetLastError();  // out of memory is the caller's to handle; it must not stick
            scratch_buf[slot] = NULL;
            return NULL;
        }
        scratch_cap[slot] = n;
    }
    return scratch_buf[slot];
}
void *cuda_scratch(int slot, size_t bytes) {
    void *p = cuda_scratch_try(slot, bytes);
    if (!p) CUDA_CHECK(cudaErrorMemoryAllocation, "scratch alloc %zu bytes (slot %d)", bytes + bytes / 4, slot);
    return p;
}
void cuda_scratch_release(int slot) {
    if (!scratch_buf[slot]) return;
    CUDA_CHECK(cudaFree(scratch_buf[slot]), "scratch free (slot %d)", slot);
    scratch_buf[slot] = NULL;
    scratch_cap[slot] = 0;
}

// ---- the tables: memory here, the ops from each file ----
// Field by field (C++17 has no designated initialisers); fields ops.h may gain at its end are
// zero here, which every caller treats as "not provided".
template <class X> static Backend make_table(const char *name) {
    Backend b;
    memset(&b, 0, sizeof b);
    b.name = name;
    b.alloc = cu_alloc;
    b.free = cu_free;
    b.upload = cu_upload;
    b.download = cu_download;
    b.zero = cu_zero;
    b.set_threads = cu_set_threads;
    b.act_bytes = sizeof(X);
    b.upload_act = cu_upload_act<X>;
    b.download_act = cu_download_act<X>;
    cu_ops_pointwise<X>(&b);
    cu_ops_layernorm<X>(&b);
    cu_ops_matmul<X>(&b);
    cu_ops_attention<X>(&b);
    cu_ops_classifier<X>(&b);
    cu_ops_decode<X>(&b);
    return b;
}

extern "C" const Backend backend_cuda = make_table<bf16>("cuda");
extern "C" const Backend backend_cuda_fp32 = make_table<float>("cuda-fp32");
