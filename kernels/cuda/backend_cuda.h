// The CUDA backend's few entry points beyond the Backend table (kernels/ops.h): probing for a GPU
// without dying (tests skip with the reason), and the GEMM precision. C header, included by the
// .cu files and by test/cuda_test_*.c. Only exists in builds with TRACELLM_CUDA.
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

extern const struct Backend backend_cuda, backend_cuda_fp32;  // bf16 compute type, fp32

// 1 when a CUDA device can be used; else 0 and `why` (n bytes) gets the CUDA error, e.g.
// "cudaGetDeviceCount: CUDA driver version is insufficient for CUDA runtime version".
int cuda_device_check(char *why, size_t n);

// GEMM precision of the cuda-fp32 table (the bf16 table's GEMMs are bf16 always). Default TF32
// (tensor cores, ~1e-3 relative); strict fp32 matches the CPU backend to ~1e-6 (and also selects
// the exact CUDA-core attention, in both tables); bf16 rounds operands to bf16 (~1e-2 relative).
// The environment variable TRACELLM_CUDA_MATMUL=tf32|fp32|bf16 sets it at first use.
enum { CUDA_MATMUL_TF32 = 0, CUDA_MATMUL_FP32 = 1, CUDA_MATMUL_BF16 = 2 };
void cuda_set_matmul_mode(int mode);

// The tensor-core attention of the bf16 table: mma.sync kernels (attention_mma.cu) with 16 or 32
// query rows a warp in the forward (32: head sizes up to 64), or the WMMA ones of attention_tc.cu,
// widened to TF32. Auto (the default) times the two mma forwards on the card at the first call of
// each size class and keeps the faster: they give the same bits. TRACELLM_CUDA_ATTENTION=
// auto|mma|wmma|mma32 sets it at first use; the benchmarks time each.
enum { CUDA_ATTENTION_AUTO = 0, CUDA_ATTENTION_MMA = 1, CUDA_ATTENTION_WMMA = 2, CUDA_ATTENTION_MMA32 = 3 };
void cuda_set_attention_kernel(int kernel);
// The mma.sync backward: dQ recomputed from Q, K, V, dO per tile pair (streaming tiles of 64 rows,
// or of 32: fewer registers, more blocks an SM), or read from the dS the dk/dv kernel stores in a
// (B,NH,T,T) bf16 scratch buffer; auto (the default) times them as above (the stored way only
// where its memory can be had). TRACELLM_CUDA_ATTENTION_DQ=auto|recompute|stored|recompute32 sets
// it at first use.
enum { CUDA_ATTENTION_DQ_AUTO = 0, CUDA_ATTENTION_DQ_RECOMPUTE = 1, CUDA_ATTENTION_DQ_STORED = 2,
       CUDA_ATTENTION_DQ_RECOMPUTE32 = 3 };
void cuda_set_attention_dq(int way);
// Tile buffers in the mma kernels' cp.async rings at head size 64: 2 (one tile in flight while
// one is used) or 3 (two), or 0: auto times both with the variants above (the same bits).
// TRACELLM_CUDA_ATTENTION_STAGES=auto|2|3 sets it at first use.
void cuda_set_attention_stages(int stages);
// Auto times sizes of at least `tile_pairs` causal 64 x 64 tile pairs (B NH n(n+1)/2, n = T/64
// rounded up; default 1024; smaller ones run the defaults, mma and recompute) and forgets what it
// timed. cuda_attention_tuned says whether the size class of (B,T,C,NH) has an entry and what was
// chosen for it: CUDA_ATTENTION_MMA or _MMA32, CUDA_ATTENTION_DQ_RECOMPUTE, _RECOMPUTE32 or _STORED
// (0 untimed), and the rings they run with (2 or 3; any pointer may be NULL).
void cuda_set_attention_tune_min(long tile_pairs);
int cuda_attention_tuned(int B, int T, int C, int NH, int *forward, int *dq, int *fwd_stages, int *bwd_stages);

// The MLP's GELU in the bf16 table (matmul_gelu_forward, matmul_backward_gelu): cuBLASLt GEMM
// epilogues (1, the default; shapes and pointers cuBLASLt refuses still take the separate pass) or
// always a pass of its own (0). TRACELLM_CUDA_GELU=epilogue|separate sets it at first use.
void cuda_set_gelu_epilogue(int on);
// The bias gradients of the linear layers in the bf16 table: a column-sum kernel (0, the default)
// or the dweight GEMM's BGRADB epilogue (1; where cuBLASLt refuses it, the kernel). The two add in
// different orders (not the same bits). TRACELLM_CUDA_BIAS_GRAD=colsum|epilogue sets it at first use.
void cuda_set_bias_grad_epilogue(int on);

// The LayerNorm backward: fused (0, the default: one kernel, the row and the column sums in
// registers where C fits them, C <= 32 x 4 x (16 / element size), else in shared memory), the
// fused kernel with its column sums in shared memory always (1), or a row kernel and a column
// kernel (2). TRACELLM_CUDA_LAYERNORM=fused|shared|split sets it at first use. Fused and shared
// give the same bits.
enum { CUDA_LAYERNORM_FUSED = 0, CUDA_LAYERNORM_SHARED = 1, CUDA_LAYERNORM_SPLIT = 2 };
void cuda_set_layernorm_backward(int way);

// The classifier (softmax + cross-entropy + dlogits): each row copied into shared memory as it is
// first read, so the dlogits pass reads it there (0, the default, where two blocks' rows fit the
// card's shared memory a block), or read from global memory twice (1). The same bits either way.
// TRACELLM_CUDA_CLASSIFIER=shared|reread sets it at first use.
enum { CUDA_CLASSIFIER_SHARED = 0, CUDA_CLASSIFIER_REREAD = 1 };
void cuda_set_classifier(int way);

// Waits for every queued op (for timing); dies with the CUDA error if one failed.
void cuda_synchronize(void);

#ifdef __cplusplus
}
#endif
