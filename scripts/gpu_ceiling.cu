// The two ceilings of this GPU, measured (docs/GPU_NOTES.md, METHOD: "two numbers first"):
// dense GEMM throughput through cuBLASLt (bf16 operands with fp32 accumulation, and TF32, the
// mode tracellm's CUDA backend runs its GEMMs in today) and device-memory bandwidth (a large
// device-to-device copy, counting bytes read + bytes written). Random data, never zeros; warm-up
// first; CUDA events; the median of the repeats.
//
//   nvcc -O3 -std=c++17 -arch=sm_90 scripts/gpu_ceiling.cu -lcublasLt -o gpu_ceiling && ./gpu_ceiling [M N K]
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <algorithm>
#include <vector>

#define CK(x)                                                                                      \
    do {                                                                                           \
        cudaError_t e_ = (x);                                                                      \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "gpu_ceiling: %s: %s\n", #x, cudaGetErrorString(e_));                  \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)
#define LK(x)                                                                                      \
    do {                                                                                           \
        cublasStatus_t s_ = (x);                                                                   \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                         \
            fprintf(stderr, "gpu_ceiling: %s: cuBLAS status %d\n", #x, (int)s_);                   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

__global__ void fill_bf16(__nv_bfloat16 *p, size_t n, unsigned seed) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned h = (unsigned)i * 2654435761u ^ seed;
    h ^= h >> 15; h *= 2246822519u; h ^= h >> 13;
    p[i] = __float2bfloat16((h & 0xffff) / 65536.0f - 0.5f);
}
__global__ void fill_f32(float *p, size_t n, unsigned seed) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned h = (unsigned)i * 2654435761u ^ seed;
    h ^= h >> 15; h *= 2246822519u; h ^= h >> 13;
    p[i] = (h & 0xffff) / 65536.0f - 0.5f;
}

static float median(std::vector<float> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// D (M,N) = A (M,K) B (K,N), column-major, in the given types; returns the median ms of `reps`.
static float time_gemm(cublasLtHandle_t lt, cudaDataType_t ab, cudaDataType_t cd, cublasComputeType_t ct, int M, int N,
                       int K, void *A, void *B, void *D, void *ws, size_t wss, int reps) {
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, ld;
    LK(cublasLtMatmulDescCreate(&desc, ct, CUDA_R_32F));
    cublasOperation_t t = CUBLAS_OP_T, n = CUBLAS_OP_N;  // A read transposed, as tracellm's forward does
    LK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof t));
    LK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &n, sizeof n));
    LK(cublasLtMatrixLayoutCreate(&la, ab, K, M, K));
    LK(cublasLtMatrixLayoutCreate(&lb, ab, K, N, K));
    LK(cublasLtMatrixLayoutCreate(&ld, cd, M, N, M));
    cublasLtMatmulPreference_t pref;
    LK(cublasLtMatmulPreferenceCreate(&pref));
    LK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wss, sizeof wss));
    cublasLtMatmulHeuristicResult_t h;
    int found = 0;
    LK(cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, ld, ld, pref, 1, &h, &found));
    if (!found) { fprintf(stderr, "gpu_ceiling: no cuBLASLt algorithm\n"); exit(1); }
    float alpha = 1.0f, beta = 0.0f;
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    std::vector<float> ms;
    for (int r = 0; r < reps + 3; r++) {
        CK(cudaEventRecord(e0));
        LK(cublasLtMatmul(lt, desc, &alpha, A, la, B, lb, &beta, D, ld, D, ld, &h.algo, ws, wss, 0));
        CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1));
        float t_ms;
        CK(cudaEventElapsedTime(&t_ms, e0, e1));
        if (r >= 3) ms.push_back(t_ms);
    }
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(ld);
    cublasLtMatmulDescDestroy(desc);
    return median(ms);
}

int main(int argc, char **argv) {
    int M = argc > 3 ? atoi(argv[1]) : 8192, N = argc > 3 ? atoi(argv[2]) : 8192, K = argc > 3 ? atoi(argv[3]) : 8192;
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s, %d SMs, %.1f GiB, L2 %d MiB\n", prop.name, prop.multiProcessorCount,
           prop.totalGlobalMem / 1073741824.0, prop.l2CacheSize >> 20);
    cublasLtHandle_t lt;
    LK(cublasLtCreate(&lt));
    size_t wss = 32u << 20;
    void *ws;
    CK(cudaMalloc(&ws, wss));
    double flop = 2.0 * M * N * K;

    // bf16 operands, fp32 accumulate, bf16 out
    size_t na = (size_t)M * K, nb = (size_t)K * N, nd = (size_t)M * N;
    __nv_bfloat16 *A, *B, *D;
    CK(cudaMalloc(&A, na * 2)); CK(cudaMalloc(&B, nb * 2)); CK(cudaMalloc(&D, nd * 2));
    fill_bf16<<<(na + 255) / 256, 256>>>(A, na, 1);
    fill_bf16<<<(nb + 255) / 256, 256>>>(B, nb, 2);
    CK(cudaGetLastError());
    float ms = time_gemm(lt, CUDA_R_16BF, CUDA_R_16BF, CUBLAS_COMPUTE_32F, M, N, K, A, B, D, ws, wss, 20);
    printf("gemm bf16 %dx%dx%d: %.3f ms, %.1f TFLOP/s\n", M, N, K, ms, flop / ms / 1e9);
    CK(cudaFree(A)); CK(cudaFree(B)); CK(cudaFree(D));

    // fp32 storage, TF32 tensor cores (what the CUDA backend's GEMMs do today)
    float *Af, *Bf, *Df;
    CK(cudaMalloc(&Af, na * 4)); CK(cudaMalloc(&Bf, nb * 4)); CK(cudaMalloc(&Df, nd * 4));
    fill_f32<<<(na + 255) / 256, 256>>>(Af, na, 3);
    fill_f32<<<(nb + 255) / 256, 256>>>(Bf, nb, 4);
    CK(cudaGetLastError());
    ms = time_gemm(lt, CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32, M, N, K, Af, Bf, Df, ws, wss, 10);
    printf("gemm tf32 %dx%dx%d: %.3f ms, %.1f TFLOP/s\n", M, N, K, ms, flop / ms / 1e9);
    CK(cudaFree(Af)); CK(cudaFree(Bf)); CK(cudaFree(Df));

    // bandwidth: 2 GiB device-to-device copy, bytes read + written
    size_t bytes = (size_t)2 << 30;
    float *src, *dst;
    CK(cudaMalloc(&src, bytes)); CK(cudaMalloc(&dst, bytes));
    fill_f32<<<(bytes / 4 + 255) / 256, 256>>>(src, bytes / 4, 5);
    CK(cudaGetLastError());
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
    std::vector<float> v;
    for (int r = 0; r < 13; r++) {
        CK(cudaEventRecord(e0));
        CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, 0));
        CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1));
        float t_ms;
        CK(cudaEventElapsedTime(&t_ms, e0, e1));
        if (r >= 3) v.push_back(t_ms);
    }
    ms = median(v);
    printf("copy d2d %.0f MiB: %.3f ms, %.0f GB/s (read + write)\n", bytes / 1048576.0, ms, 2.0 * bytes / ms / 1e6);
    CK(cudaFree(src)); CK(cudaFree(dst));
    return 0;
}
