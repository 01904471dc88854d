// The CUDA backend's few entry points beyond the Backend table (kernels/ops.h): probing for a GPU
// without dying (tests skip with the reason), and the GEMM precision. C header, included by the
// .cu files and by test/cuda_test_*.c. Only exists in builds with TRACELLM_CUDA.
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

extern const struct Backend backend_cuda;

// 1 when a CUDA device can be used; else 0 and `why` (n bytes) gets the CUDA error, e.g.
// "cudaGetDeviceCount: CUDA driver version is insufficient for CUDA runtime version".
int cuda_device_check(char *why, size_t n);

// GEMM precision for matmul_forward/backward. Default TF32 (tensor cores, ~1e-3 relative);
// strict fp32 matches the CPU backend to ~1e-6; bf16 rounds operands to bf16 (~1e-2 relative).
// The environment variable TRACELLM_CUDA_MATMUL=tf32|fp32|bf16 sets it at first use.
enum { CUDA_MATMUL_TF32 = 0, CUDA_MATMUL_FP32 = 1, CUDA_MATMUL_BF16 = 2 };
void cuda_set_matmul_mode(int mode);

// Waits for every queued op (for timing); dies with the CUDA error if one failed.
void cuda_synchronize(void);

#ifdef __cplusplus
}
#endif
