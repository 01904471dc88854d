// What every kernels/cuda/*.cu file shares: the C headers of the project, error checking that
// names the op and its shapes, the one stream every op runs on, and small reduction helpers.
//
// Precision (see docs/GPU_NOTES.md): this backend stores every tensor in fp32, exactly the layout
// of the CPU backend, so upload/download are plain copies and checkpoints are interchangeable.
// The GEMMs run through cuBLASLt in TF32 by default (tensor cores); TRACELLM_CUDA_MATMUL=fp32
// makes them strict fp32, =bf16 rounds both operands to bf16 (fp32 accumulate and output).
#pragma once
#include <cuda_runtime.h>
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
// Scratch device memory owned by the backend, grown on demand; slots are independent buffers:
// 0 column-sum partials, 1 attention row statistics, 2 encoder token groups, 3 sumsq partials,
// 4 and 5 bf16 GEMM operands.
void *cuda_scratch(int slot, size_t bytes);
// The matmul precision chosen at init (CUDA_MATMUL_*).
int cuda_matmul_mode(void);
// Tensor-core attention (kernels/cuda/attention_tc.cu), chosen by attention.cu unless the matmul
// mode is strict fp32: head sizes 16, 32, 64, 128; Dsum (B,NH,T) is scratch for the backward.
int cu_attention_tc_supported(int hs);
void cu_attention_tc_forward(float *out, float *lse, const float *qkv, int B, int T, int C, int NH);
void cu_attention_tc_backward(float *dqkv, float *Dsum, const float *dout, const float *qkv, const float *out,
                              const float *lse, int B, int T, int C, int NH);
// dbias (OC,) += column sums of dout (N,OC), deterministic (kernels/cuda/layernorm.cu).
void cuda_colsum_add(float *dbias, const float *dout, int N, int OC);

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
