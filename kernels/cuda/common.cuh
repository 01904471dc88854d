// What every kernels/cuda/*.cu file shares: the C headers of the project, error checking that
// names the op and its shapes, the one stream every op runs on, and small reduction helpers.
//
// Precision (kernels/ops.h, docs/GPU_NOTES.md): every op is a template over the compute type X,
// and backend.cu builds two tables from them: "cuda" with X = bf16 (mixed precision: bf16
// activations and weight copies, fp32 master weights, gradients, moments and statistics, fp32
// arithmetic inside every kernel) and "cuda-fp32" with X = float (the layout of the CPU backend).
// GEMMs go through cuBLASLt: bf16 in the bf16 table; TF32 by default in the fp32 table, where
// TRACELLM_CUDA_MATMUL=fp32 makes them strict fp32 and =bf16 rounds both operands to bf16.
#pragma once
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {
#include "kernels/ops.h"
#include "kernels/cuda/backend_cuda.h"
#include "util/util.h"
}

// Every CUDA runtime call: the op, what it did, the shapes, and CUDA's own words.
#define CUDA_CHECK(call, ...)                                                                        \
    do {                                                                                             \
        cudaError_t e_ = (call);                                                                     \
        if (e_ != cudaSuccess) cuda_die(e_, #call, __VA_ARGS__);                                     \
    } while (0)

// After every launch: launch errors at once; with TRACELLM_CUDA_SYNC=1 also the kernel's own
// faults, attributed to this op (normally they surface at the next synchronising call).
#define LAUNCH_CHECK(...) cuda_after_launch(__FILE__, __LINE__, __VA_ARGS__)

void cuda_die(cudaError_t e, const char *what, const char *fmt, ...) __attribute__((format(printf, 3, 4), noreturn));
void cuda_after_launch(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
// Lazily initialises the device (first op or alloc); dies with a clear message without a GPU.
void cuda_init(void);
// Which of `choices` (NULL-terminated) the environment variable `var` names: 0 (the first, the
// default) when it is unset or empty; any other value dies naming the choices. For the switches
// that let a card time one kernel against another (TRACELLM_CUDA_MATMUL, _ATTENTION, ...).
int cuda_env_choice(const char *var, const char *const *choices);
// Scratch device memory owned by the backend, grown on demand; slots are independent buffers:
// 0 column-sum partials, 1 attention row statistics, 2 encoder token groups, 3 sumsq partials,
// 4 and 5 bf16 GEMM operands, 6 attention's stored dS (TRACELLM_CUDA_ATTENTION_DQ=stored).
// cuda_scratch dies naming the size when the memory is not there; cuda_scratch_try returns NULL
// (for a caller with another way to go); cuda_scratch_release gives a slot's memory back.
void *cuda_scratch(int slot, size_t bytes);
void *cuda_scratch_try(int slot, size_t bytes);
void cuda_scratch_release(int slot);
// The matmul precision chosen at init (CUDA_MATMUL_*).
int cuda_matmul_mode(void);
// Tensor-core attention (kernels/cuda/attention_tc.cu), chosen by attention.cu unless the matmul
// mode is strict fp32: head sizes 16, 32, 64, 128; Dsum (B,NH,T) is scratch for the backward.
int cu_attention_tc_supported(int hs);
template <class X> void cu_attention_tc_forward(X *out, float *lse, const X *qkv, int B, int T, int C, int NH);
template <class X>
void cu_attention_tc_backward(X *dqkv, float *Dsum, const X *dout, const X *qkv, const X *out, const float *lse, int B,
                              int T, int C, int NH);

// ---- the compute type ----
typedef __nv_bfloat16 bf16;

// The bf16 table's attention on mma.sync (kernels/cuda/attention_mma.cu): head sizes 16, 32, 64,
// 128, unless TRACELLM_CUDA_ATTENTION=wmma picks attention_tc.cu's kernels. Dsum (B,NH,T) scratch.
int cu_attention_mma_supported(int hs);
void cu_attention_mma_forward(bf16 *out, float *lse, const bf16 *qkv, int B, int T, int C, int NH);
void cu_attention_mma_backward(bf16 *dqkv, float *Dsum, const bf16 *dout, const bf16 *qkv, const bf16 *out,
                               const float *lse, int B, int T, int C, int NH);

// Each .cu file puts its ops for compute type X into a table (instantiated for float and bf16).
template <class X> void cu_ops_pointwise(Backend *b);
template <class X> void cu_ops_layernorm(Backend *b);
template <class X> void cu_ops_matmul(Backend *b);
template <class X> void cu_ops_attention(Backend *b);
template <class X> void cu_ops_classifier(Backend *b);
template <class X> void cu_ops_decode(Backend *b);
#define CU_OPS_INSTANTIATE(fill) template void fill<float>(Backend *); template void fill<bf16>(Backend *);

// Loads widen to fp32, stores round to nearest even: all arithmetic is fp32 whatever X is.
__device__ __forceinline__ float ldx(float v) { return v; }
__device__ __forceinline__ float ldx(bf16 v) { return __bfloat162float(v); }
template <class X> __device__ __forceinline__ X stx(float v);
template <> __device__ __forceinline__ float stx<float>(float v) { return v; }
template <> __device__ __forceinline__ bf16 stx<bf16>(float v) { return __float2bfloat16_rn(v); }

// 16 bytes of X (4 floats or 8 bf16) widened to fp32 registers, and back. p must be 16-byte
// aligned. bf16 pairs travel as the bits of one 32-bit word: element 2k is the low half.
// unpack_vec widens 16 bytes already loaded (to load early and widen when needed: 4 registers a
// vector held, not 8).
template <class X> struct Vec { static constexpr int N = 16 / sizeof(X); };
template <class X> __device__ __forceinline__ void unpack_vec(float (&f)[Vec<X>::N], float4 v) {
    float w[4] = {v.x, v.y, v.z, v.w};
    if constexpr (sizeof(X) == 4) {
#pragma unroll
        for (int k = 0; k < 4; k++) f[k] = w[k];
    } else {
#pragma unroll
        for (int k = 0; k < 4; k++) {
            unsigned u = __float_as_uint(w[k]);
            f[2 * k] = __uint_as_float(u << 16);
            f[2 * k + 1] = __uint_as_float(u & 0xffff0000u);
        }
    }
}
template <class X> __device__ __forceinline__ void load_vec(float (&f)[Vec<X>::N], const X *p) {
    unpack_vec<X>(f, *(const float4 *)p);
}
template <class X> __device__ __forceinline__ void store_vec(X *p, const float (&f)[Vec<X>::N]) {
    float w[4];
    if constexpr (sizeof(X) == 4) {
#pragma unroll
        for (int k = 0; k < 4; k++) w[k] = f[k];
    } else {
#pragma unroll
        for (int k = 0; k < 4; k++) {
            unsigned lo = __bfloat16_as_ushort(__float2bfloat16_rn(f[2 * k]));
            unsigned hi = __bfloat16_as_ushort(__float2bfloat16_rn(f[2 * k + 1]));
            w[k] = __uint_as_float(lo | hi << 16);
        }
    }
    *(float4 *)p = make_float4(w[0], w[1], w[2], w[3]);
}
// N bytes global -> shared without a trip through registers (cp.async, sm_80+): the copy runs
// while the warp goes on computing; `valid` false writes zeros and reads nothing. 16 bytes go
// around L1 (.cg, tiles read once a block); 4 or 8 only through it (.ca, the one form for those
// sizes). A group of copies is closed by cp_async_commit; cp_async_wait<N> waits until at most N
// groups are still in flight (the thread's own copies: a __syncthreads after it makes everyone's
// visible).
template <int N> __device__ __forceinline__ void cp_async(void *dst, const void *src, bool valid) {
    static_assert(N == 4 || N == 8 || N == 16, "cp.async copies 4, 8 or 16 bytes");
#ifdef TRACELLM_CUDA_EMU
    emu_cp_async(dst, src, N, valid);
#else
    unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    if constexpr (N == 16)
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 16 : 0) : "memory");
    else
        asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(d), "l"(src), "n"(N), "r"(valid ? N : 0)
                     : "memory");
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#ifdef TRACELLM_CUDA_EMU
    emu_cp_async_commit();
#else
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
template <int N> __device__ __forceinline__ void cp_async_wait() {
#ifdef TRACELLM_CUDA_EMU
    emu_cp_async_wait(N);
#else
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}
static inline bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

// Dynamic shared memory past the default 48 KiB must be asked for, once per kernel: the kernel is
// the template argument, so each one keeps its own record of what it was granted. False, with the
// card's per-block limit in *limit (when not NULL), when the card cannot give `bytes`.
template <auto Kernel> static bool smem_opt_in(size_t bytes, int *limit, const char *what) {
    static size_t granted = 48 << 10;  // the default limit of dynamic shared memory
    if (bytes <= granted) return true;
    int dev = 0, most = 0;
    CUDA_CHECK(cudaGetDevice(&dev), "%s", what);
    CUDA_CHECK(cudaDeviceGetAttribute(&most, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), "%s", what);
    if (limit) *limit = most;
    if (bytes > (size_t)most) return false;
    CUDA_CHECK(cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes),
               "%s: %zu bytes of shared memory", what, bytes);
    granted = bytes;
    return true;
}
// The same for a kernel that cannot run with less: dies naming the op and the card's limit.
template <auto Kernel> static void smem_require(size_t bytes, const char *what) {
    int limit = 0;
    if (!smem_opt_in<Kernel>(bytes, &limit, what))
        fatal("cuda %s: needs %zu bytes of shared memory a block, the GPU allows %d", what, bytes, limit);
}

// dbias (OC,) += column sums of dout (N,OC), deterministic (kernels/cuda/layernorm.cu).
template <class X> void cuda_colsum_add(float *dbias, const X *dout, int N, int OC);
// GELU (tanh approximation) over n elements (kernels/cuda/pointwise.cu): out = gelu(inp);
// dinp = gelu'(inp) * dout, overwritten (dinp may be dout).
template <class X> void cuda_gelu_forward(X *out, const X *inp, size_t n);
template <class X> void cuda_gelu_backward(X *dinp, const X *inp, const X *dout, size_t n);

static inline unsigned cdiv(size_t a, size_t b) { return (unsigned)((a + b - 1) / b); }

// Warp sums and maxima in a fixed butterfly order: the same bits every run.
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
#define LOG2E 1.4426950408889634f  // e^x = 2^(x LOG2E): the softmax kernels work in base 2
// 2^x on the special-function unit alone (ex2.approx.ftz: a result below 2^-126 is 0, where a
// softmax weight that small is nothing beside the row's largest, which is 1). exp2f wraps the same
// instruction in a range fix-up of three more (a compare, a select, a multiply), expf in more
// still, and the softmax kernels (attention, classifier) take one per score. -inf gives 0.
__device__ __forceinline__ float exp2_ftz(float x) {
#ifdef TRACELLM_CUDA_EMU
    float y = exp2f(x);
    return y < 0x1p-126f ? 0.0f : y;
#else
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
#endif
}

// Block-wide sum / max for blockDim.x a multiple of 32 (<= 1024); every thread gets the result.
// `sh` holds 32 floats. Fixed tree, deterministic.
__device__ __forceinline__ float block_sum(float v, float *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : 0.0f;
    return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : -INFINITY;
    return warp_max(v);
}
