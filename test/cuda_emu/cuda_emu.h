// A CPU emulation of the small part of CUDA and cuBLASLt that kernels/cuda uses, so that the
// backend's kernels can be run and checked (with AddressSanitizer) on a machine without a GPU.
// Used only by scripts/cuda_emu_check.sh; never part of the framework.
//
// Model: "device" memory is host memory. A launch runs its blocks one after another; the threads
// of a block are cooperative fibers (ucontext) switched at every __syncthreads and warp operation
// (shuffle, __syncwarp, mma, ldmatrix). __syncthreads waits for the block's live threads, a warp
// operation for its warp's 32 lanes only, so warps drift apart as on the GPU, and a warp operation
// that not all lanes reach (exited, or at __syncthreads) aborts. Between two switches the fibers
// run one at a time, forward or backward as drawn at every switch, so a read missing its barrier
// sees the stale value whichever side runs first. cp.async lands at its wait_group, with garbage in
// between. `__shared__` becomes `static`: one copy per kernel, valid because blocks do not
// overlap. Dynamic shared memory past 48 KiB needs the kernel's cudaFuncSetAttribute, and 16-byte
// vectors are 16-byte aligned types (UBSan then stops a misaligned load, as the GPU faults).
// cuBLASLt's matmul is a naive loop that validates the layouts it is given and rounds operands to
// TF32 / bf16 as the requested compute type would.
// What it cannot find: races inside one stretch between switches, register limits, and anything
// about speed.
#pragma once
#include <algorithm>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <functional>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct emu_uint3 { unsigned x, y, z; };
extern emu_uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;
extern char *emu_dynamic_smem;
// aligned as CUDA's own (vector_types.h): a vector load or store at an address the hardware would
// fault on is then undefined behaviour that UBSan reports (scripts/cuda_emu_check.sh builds both
// its builds with the alignment check), not a silent success
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
static inline float4 make_float4(float a, float b, float c, float d) { return float4{a, b, c, d}; }
using std::max;
using std::min;

#define TRACELLM_CUDA_EMU 1  // kernels replace inline PTX with the emulator's functions below

void __syncthreads();
void __syncwarp(unsigned mask = 0xffffffffu);
float __shfl_xor_sync(unsigned mask, float v, int lane_mask);
double __shfl_xor_sync(unsigned mask, double v, int lane_mask);

// ---- launches: scripts/cuda_emu_check.sh rewrites k<<<cfg>>>(args) as emu_launch(emu_cfg(cfg), k, args) ----
struct EmuCfg { dim3 grid, block; size_t smem; const void *kernel; };
static inline EmuCfg emu_cfg(dim3 g, dim3 b, size_t smem = 0, int stream = 0) { (void)stream; return EmuCfg{g, b, smem, nullptr}; }
void emu_run(const EmuCfg &cfg, const std::function<void()> &body);
template <class K, class... A> void emu_launch(EmuCfg cfg, K kernel, A... args) {
    std::function<void()> body = [&]() { kernel(args...); };
    cfg.kernel = reinterpret_cast<const void *>(kernel);
    emu_run(cfg, body);
}

// ---- runtime API ----
typedef enum {
    cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2, cudaErrorInvalidConfiguration = 9,
} cudaError_t;
typedef enum { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice } cudaMemcpyKind;
typedef enum { cudaDevAttrMaxSharedMemoryPerBlockOptin = 97 } cudaDeviceAttr;
typedef enum { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 } cudaFuncAttribute;
typedef int cudaStream_t;
const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDevice(int *d);
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int dev);
cudaError_t cudaMalloc(void **p, size_t n);
cudaError_t cudaFree(void *p);
cudaError_t cudaMallocHost(void **p, size_t n);  // pinned host memory: plain malloc here
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind k);
cudaError_t cudaMemset(void *p, int v, size_t n);
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind k, cudaStream_t s);
cudaError_t cudaGetLastError(void);
cudaError_t cudaDeviceSynchronize(void);
// events time host work here: every emulated launch has finished when its call returns
typedef struct EmuEvent *cudaEvent_t;
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end);
cudaError_t cudaEventDestroy(cudaEvent_t e);
// A kernel's grant of dynamic shared memory past the default 48 KiB, kept per kernel as the driver
// keeps it: a launch asking for more than its kernel was granted fails (emu_run), as on a GPU.
void emu_grant_smem(const void *kernel, int bytes);
template <class F> cudaError_t cudaFuncSetAttribute(F kernel, cudaFuncAttribute, int bytes) {
    emu_grant_smem(reinterpret_cast<const void *>(kernel), bytes);
    return cudaSuccess;
}

// ---- bf16 ----
struct __nv_bfloat16 { uint16_t bits; };
static inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return __nv_bfloat16{(uint16_t)((u >> 16) | 0x40)};  // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1);  // round to nearest even
    return __nv_bfloat16{(uint16_t)(u >> 16)};
}
static inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
static inline float __bfloat162float(__nv_bfloat16 b) { uint32_t u = (uint32_t)b.bits << 16; float f; memcpy(&f, &u, 4); return f; }
static inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.bits; }
static inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { return __nv_bfloat16{u}; }
static inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
static inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32: d += a . b over the 32 lanes of the warp,
// each lane passing its fragment registers in PTX's documented layout (g = lane/4, t = lane%4):
// a: (g, 2t..2t+1), (g+8, 2t..), (g, 2t+8..), (g+8, 2t+8..) of A (16 x 16), two bf16 a register;
// b: (k 2t..2t+1, n g), (k 2t+8.., n g) of B (16 x 8); d: (g, 2t..2t+1), (g+8, 2t..) of D (16 x 8).
// A warp operation: all 32 lanes of the warp must call it, as on the GPU; other warps go on.
void emu_mma_m16n8k16_bf16(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]);

// ldmatrix.sync.aligned.m8n8.x4{.trans}.shared.b16: lanes 8j..8j+7 give the 16-byte aligned row
// addresses of 8 x 8 block j (j = 0..3); register j of lane (g, t) gets block j's (row g, columns
// 2t, 2t+1), or with trans (column g, rows 2t, 2t+1), low half first. A misaligned row address
// aborts, as it faults on the GPU. A warp operation like the mma.
void emu_ldmatrix_x4(unsigned (&r)[4], const void *row, bool trans);

// cp.async.{cg,ca}.shared.global (4, 8 or 16 bytes, or zeros when !valid; both addresses aligned to
// the size, or it aborts, as a GPU faults), cp.async.commit_group and
// cp.async.wait_group n, per thread. The GPU lands a copy in shared memory at some moment between
// the cp.async and the wait_group that covers its group; here both ends are made visible: the
// destination holds garbage (NaN bytes) from the cp.async on, and the data from the wait on. So a
// tile read before its wait, or a buffer refilled while another thread still reads it, gives
// wrong numbers that the tests see. The source is read at the cp.async.
void emu_cp_async(void *dst, const void *src, int bytes, bool valid);
void emu_cp_async_commit();
void emu_cp_async_wait(int n);

// ---- cuBLASLt ----
typedef enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_INVALID_VALUE = 7, CUBLAS_STATUS_NOT_SUPPORTED = 15 } cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum { CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_TF32 = 77 } cublasComputeType_t;
typedef enum { CUDA_R_32F = 0, CUDA_R_16BF = 14 } cudaDataType_t;
typedef enum {
    CUBLASLT_EPILOGUE_DEFAULT = 1, CUBLASLT_EPILOGUE_BIAS = 4, CUBLASLT_EPILOGUE_GELU_AUX = 32 | 128,
    CUBLASLT_EPILOGUE_GELU_AUX_BIAS = 32 | 128 | 4, CUBLASLT_EPILOGUE_DGELU = 64 | 128, CUBLASLT_EPILOGUE_BGRADB = 512,
} cublasLtEpilogue_t;
typedef enum {
    CUBLASLT_MATMUL_DESC_TRANSA = 3, CUBLASLT_MATMUL_DESC_TRANSB = 4, CUBLASLT_MATMUL_DESC_EPILOGUE = 7,
    CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER = 11,
    CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD = 12, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE = 26,
} cublasLtMatmulDescAttributes_t;
typedef enum {
    CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8,
} cublasLtMatmulPreferenceAttributes_t;
struct EmuLtDesc { cublasComputeType_t compute; cudaDataType_t scale; cublasOperation_t ta, tb; cublasLtEpilogue_t epi; const void *bias; int bias_type; /* -1: unset */ void *aux; int64_t aux_ld; };
struct EmuLtLayout { cudaDataType_t type; uint64_t rows, cols; int64_t ld; };
struct EmuLtPref { size_t ws; uint32_t align[4]; };
typedef EmuLtDesc *cublasLtMatmulDesc_t;
typedef EmuLtLayout *cublasLtMatrixLayout_t;
typedef EmuLtPref *cublasLtMatmulPreference_t;
typedef struct EmuLtHandle *cublasLtHandle_t;
typedef struct { uint64_t data[8]; } cublasLtMatmulAlgo_t;
typedef struct { cublasLtMatmulAlgo_t algo; size_t workspaceSize; cublasStatus_t state; float wavesCount; int reserved[4]; } cublasLtMatmulHeuristicResult_t;
cublasStatus_t cublasLtCreate(cublasLtHandle_t *h);
const char *cublasLtGetStatusString(cublasStatus_t s);
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t c, cudaDataType_t scale);
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a, const void *buf, size_t n);
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d);
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType_t t, uint64_t rows, uint64_t cols, int64_t ld);
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l);
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p);
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t a, const void *buf, size_t n);
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p);
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dl,
                                              cublasLtMatmulPreference_t p, int want, cublasLtMatmulHeuristicResult_t *r, int *found);
cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t la, const void *B, cublasLtMatrixLayout_t lb, const void *beta,
                              const void *C, cublasLtMatrixLayout_t lc, void *D, cublasLtMatrixLayout_t ld,
                              const cublasLtMatmulAlgo_t *algo, void *ws, size_t wss, cudaStream_t s);
