// Linear layers through cuBLASLt: out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias, and its
// backward (dinp, dweight accumulated with beta = 1; dbias by a deterministic column sum).
//
// cuBLASLt is column-major: a row-major (R,K) matrix is a column-major (K,R) one, so every
// product below is written for the transposed problem, e.g. out^T (OC,N) = W (OC,C) . inp^T (C,N)
// with W read "transposed" from its column-major (C,OC) view. The bias is the GEMM's epilogue.
// Precision: in the bf16 table (X = bf16) every GEMM reads bf16 and accumulates in fp32; out and
// dinp are written in bf16, dweight in fp32 (the fp32 gradients of kernels/ops.h). In the fp32
// table (cuda_matmul_mode): TF32 tensor cores by default, strict fp32, or bf16 operands (converted
// into scratch buffers first) with fp32 accumulation and output.
#include "kernels/cuda/common.cuh"
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <stdarg.h>
#include <stdio.h>

static cublasLtHandle_t lt;
static void *workspace;
static const size_t WORKSPACE = 32u << 20;

#define LT_CHECK(call, ...)                                                                           \
    do {                                                                                              \
        cublasStatus_t s_ = (call);                                                                   \
        if (s_ != CUBLAS_STATUS_SUCCESS) lt_die(s_, #call, __VA_ARGS__);                              \
    } while (0)

__attribute__((format(printf, 3, 4), noreturn)) static void lt_die(cublasStatus_t s, const char *what,
                                                                   const char *fmt, ...) {
    char ctx[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    fatal("cuda: %s: %s failed: cuBLAS status %d (%s)", ctx, what, (int)s, cublasLtGetStatusString(s));
}

static void lt_init(void) {
    if (lt) return;
    cuda_init();
    LT_CHECK(cublasLtCreate(&lt), "matmul init");
    CUDA_CHECK(cudaMalloc(&workspace, WORKSPACE), "matmul init: workspace of %zu bytes", WORKSPACE);
}

// Largest power of two (<= 256) dividing the address: what the pointer guarantees to cuBLASLt.
static uint32_t alignment(const void *p) {
    uint32_t a = 256;
    while (a > 1 && ((uintptr_t)p % a)) a >>= 1;
    return a;
}

__global__ void to_bf16_kernel(__nv_bfloat16 *out, const float *in, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = __float2bfloat16_rn(in[i]);
}
static const void *as_bf16(int slot, const float *x, size_t n, const char *op) {
    __nv_bfloat16 *b = (__nv_bfloat16 *)cuda_scratch(slot, n * sizeof *b);
    to_bf16_kernel<<<cdiv(n, 256), 256>>>(b, x, n);
    LAUNCH_CHECK("%s: bf16 conversion of %zu elements", op, n);
    return b;
}

// D (m,n) col-major += bias (m,) on every column: the bias when it cannot be the epilogue.
template <class X> __global__ void add_bias_kernel(X *D, const X *bias, int m, size_t total) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < total) D[i] = stx<X>(ldx(D[i]) + ldx(bias[i % m]));
}

// D (m,n) col-major, ld m  =  alpha op(A) op(B) + beta D  [+ bias (m,) broadcast over columns]
// A is (m,k) after op: stored (k,m) when transA (ld k), else (m,k) (ld m); likewise B (k,n).
// A, B, bias in the compute type X; D in X, or in fp32 when d_fp32 (the weight gradients).
template <class X>
static void gemm(void *D, bool d_fp32, const X *A, const X *B, const X *bias, int m, int n, int k, bool transA,
                 bool transB, float beta, const char *op, int N, int C, int OC) {
    lt_init();
    constexpr bool native_bf16 = sizeof(X) == 2;
    int mode = native_bf16 ? CUDA_MATMUL_BF16 : cuda_matmul_mode();
    bool bf = mode == CUDA_MATMUL_BF16, convert = bf && !native_bf16;
    size_t na = (size_t)m * k, nb = (size_t)k * n;
    const void *a = convert ? as_bf16(4, (const float *)A, na, op) : (const void *)A;
    const void *b = convert ? as_bf16(5, (const float *)B, nb, op) : (const void *)B;
    cudaDataType_t ab_type = bf ? CUDA_R_16BF : CUDA_R_32F;
    cudaDataType_t x_type = native_bf16 ? CUDA_R_16BF : CUDA_R_32F, d_type = d_fp32 ? CUDA_R_32F : x_type;
    cublasComputeType_t ct = mode == CUDA_MATMUL_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;

    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatmulPreference_t pref;
    LT_CHECK(cublasLtMatmulDescCreate(&desc, ct, CUDA_R_32F), "%s N=%d C=%d OC=%d", op, N, C, OC);
    cublasOperation_t ta = transA ? CUBLAS_OP_T : CUBLAS_OP_N, tb = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
    LT_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), "%s", op);
    LT_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), "%s", op);
    // cuBLASLt's bias epilogue wants an aligned vector; a 4-byte aligned slice gets its own pass
    const X *late_bias = bias && (uintptr_t)bias % 16 ? bias : NULL;
    if (bias && !late_bias) {
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        cudaDataType_t bt = x_type;
        LT_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi), "%s", op);
        LT_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias), "%s", op);
        LT_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt), "%s", op);
    }
    LT_CHECK(cublasLtMatrixLayoutCreate(&la, ab_type, transA ? k : m, transA ? m : k, transA ? k : m), "%s", op);
    LT_CHECK(cublasLtMatrixLayoutCreate(&lb, ab_type, transB ? n : k, transB ? k : n, transB ? n : k), "%s", op);
    LT_CHECK(cublasLtMatrixLayoutCreate(&ld, d_type, m, n, m), "%s", op);
    LT_CHECK(cublasLtMatmulPreferenceCreate(&pref), "%s", op);
    size_t ws = WORKSPACE;
    uint32_t al_a = alignment(a), al_b = alignment(b), al_d = alignment(D);
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws), "%s", op);
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a), "%s", op);
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b), "%s", op);
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d, sizeof al_d), "%s", op);
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof al_d), "%s", op);
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    LT_CHECK(cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, ld, ld, pref, 1, &heur, &found), "%s N=%d C=%d OC=%d", op, N, C, OC);
    if (found < 1) fatal("cuda: %s N=%d C=%d OC=%d: cuBLASLt has no algorithm for this GEMM (m=%d n=%d k=%d)", op, N, C, OC, m, n, k);
    float alpha = 1.0f;
    LT_CHECK(cublasLtMatmul(lt, desc, &alpha, a, la, b, lb, &beta, D, ld, D, ld, &heur.algo, workspace, WORKSPACE, 0),
             "%s N=%d C=%d OC=%d", op, N, C, OC);
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(ld);
    cublasLtMatmulDescDestroy(desc);
    LAUNCH_CHECK("%s N=%d C=%d OC=%d", op, N, C, OC);
    if (late_bias) {
        size_t total = (size_t)m * n;
        add_bias_kernel<X><<<cdiv(total, 256), 256>>>((X *)D, late_bias, m, total);
        LAUNCH_CHECK("%s (bias) N=%d C=%d OC=%d", op, N, C, OC);
    }
}

// out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias
template <class X>
static void matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC) {
    if (N <= 0 || OC <= 0) return;
    // out^T (OC,N) = W (OC,C) [col-major (C,OC), transposed] . inp^T (C,N)
    gemm<X>(out, false, (const X *)weight, (const X *)inp, (const X *)bias, OC, N, C, true, false, 0.0f,
            "matmul_forward", N, C, OC);
}

template <class X>
static void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                            const float *weight, int N, int C, int OC) {
    if (N <= 0) return;
    // dinp^T (C,N) += W^T (C,OC) [col-major (C,OC)] . dout^T (OC,N)
    gemm<X>(dinp, false, (const X *)weight, (const X *)dout, nullptr, C, N, OC, false, false, 1.0f,
            "matmul_backward (dinp)", N, C, OC);
    // dweight^T (C,OC) += inp^T (C,N) . dout (N,OC) [col-major (OC,N), transposed]; fp32 gradient
    gemm<X>(dweight, true, (const X *)inp, (const X *)dout, nullptr, C, OC, N, false, true, 1.0f,
            "matmul_backward (dweight)", N, C, OC);
    if (dbias) cuda_colsum_add<X>(dbias, (const X *)dout, N, OC);
}

template <class X> void cu_ops_matmul(Backend *b) {
    b->matmul_forward = matmul_forward<X>;
    b->matmul_backward = matmul_backward<X>;
}
CU_OPS_INSTANTIATE(cu_ops_matmul)
