// Linear layers through cuBLASLt: out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias, and its
// backward (dinp written with beta = 0, dweight accumulated with beta = 1; dbias by a
// deterministic column sum, or with TRACELLM_CUDA_BIAS_GRAD=epilogue in the bf16 table by the
// dweight GEMM's BGRADB epilogue, which sums dout's columns from the tiles the product loads
// anyway, into a scratch vector then added). And the MLP's GELU fused into the GEMMs around it (kernels/ops.h):
// in the bf16 table the forward's GELU and the backward's GELU gradient are cuBLASLt epilogues
// (GELU_AUX_BIAS writes pre and gelu(pre) in one pass; DGELU multiplies the product by gelu'(pre)
// as it is stored), which saves a read and a write of an (N,4C) tensor each way. Where the epilogue cannot run (the fp32 table, a shape or
// pointer cuBLASLt refuses, TRACELLM_CUDA_GELU=separate) the GELU is a pass of its own.
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
#include <stdlib.h>
#include <string.h>

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

// A GEMM's descriptors and the algorithm cuBLASLt's heuristic chose, kept per shape: building
// them and asking the heuristic takes longer than a small GEMM, and a training step repeats a dozen
// shapes ~100 times. The cached algorithm is the one the heuristic returns for the same key, so
// results keep their bits. Only the bias pointer changes between calls (set on each call).
// epi is the cublasLtEpilogue_t; the aux matrix (GELU's input) is (m,n) with ld m like D.
struct PlanKey {  // 4-byte members only: no padding, so memcmp compares exactly the fields
    int m, n, k, ta, tb, ab_type, x_type, d_type, compute, epi;
    uint32_t al_a, al_b, al_d, al_aux;
};
struct Plan {
    PlanKey key;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatmulAlgo_t algo;
    bool ok;                  // false: cuBLASLt has no algorithm for this epilogue (the caller falls back)
    unsigned long long used;  // last use, for eviction
};
enum { MAX_PLANS = 64 };
static Plan plans[MAX_PLANS];
static int n_plans;
static unsigned long long plan_clock;

static void plan_free(Plan *p) {
    cublasLtMatrixLayoutDestroy(p->la);
    cublasLtMatrixLayoutDestroy(p->lb);
    cublasLtMatrixLayoutDestroy(p->ld);
    cublasLtMatmulDescDestroy(p->desc);
}

// The plan for `key`, made on first use. A GELU or BGRADB epilogue plan cuBLASLt cannot run comes back with
// ok false (remembered, so the heuristic is asked once); any other failure is fatal. `aux` is only
// read when the plan is made: the heuristic takes the aux matrix's alignment from its address.
static const Plan *plan_for(const PlanKey &key, const void *aux, const char *op, int N, int C, int OC) {
    for (int i = 0; i < n_plans; i++)
        if (!memcmp(&plans[i].key, &key, sizeof key)) { plans[i].used = ++plan_clock; return &plans[i]; }
    Plan *p;
    if (n_plans < MAX_PLANS) p = &plans[n_plans++];
    else {  // full: replace the least recently used
        p = &plans[0];
        for (int i = 1; i < MAX_PLANS; i++) if (plans[i].used < p->used) p = &plans[i];
        plan_free(p);
    }
    memset(p, 0, sizeof *p);
    p->key = key;
    int m = key.m, n = key.n, k = key.k;
    cudaDataType_t ab = (cudaDataType_t)key.ab_type, bt = (cudaDataType_t)key.x_type, dt = (cudaDataType_t)key.d_type;
    LT_CHECK(cublasLtMatmulDescCreate(&p->desc, (cublasComputeType_t)key.compute, CUDA_R_32F), "%s N=%d C=%d OC=%d", op, N,
             C, OC);
    cublasOperation_t ta = key.ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb = key.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    LT_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), "%s", op);
    LT_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), "%s", op);
    cublasLtEpilogue_t epi = (cublasLtEpilogue_t)key.epi;
    bool bgrad = epi == CUBLASLT_EPILOGUE_BGRADB;
    bool gelu = epi != CUBLASLT_EPILOGUE_DEFAULT && epi != CUBLASLT_EPILOGUE_BIAS && !bgrad;
    if (epi != CUBLASLT_EPILOGUE_DEFAULT)
        LT_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi), "%s", op);
    if (epi == CUBLASLT_EPILOGUE_BIAS || epi == CUBLASLT_EPILOGUE_GELU_AUX_BIAS)
        LT_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt), "%s", op);
    if (bgrad) {  // the bias gradient in fp32, whatever the inputs
        cudaDataType_t f32 = CUDA_R_32F;
        LT_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &f32, sizeof f32), "%s", op);
    }
    if (gelu) {
        int64_t aux_ld = m;
        LT_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof aux_ld), "%s", op);
        LT_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof aux), "%s", op);
    }
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->la, ab, key.ta ? k : m, key.ta ? m : k, key.ta ? k : m), "%s", op);
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->lb, ab, key.tb ? n : k, key.tb ? k : n, key.tb ? n : k), "%s", op);
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->ld, dt, m, n, m), "%s", op);
    cublasLtMatmulPreference_t pref;
    LT_CHECK(cublasLtMatmulPreferenceCreate(&pref), "%s", op);
    size_t ws = WORKSPACE;
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws), "%s", op);
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &key.al_a, sizeof key.al_a), "%s", op);
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &key.al_b, sizeof key.al_b), "%s", op);
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &key.al_d, sizeof key.al_d), "%s", op);
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &key.al_d, sizeof key.al_d), "%s", op);
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt, p->desc, p->la, p->lb, p->ld, p->ld, pref, 1, &heur, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    p->ok = st == CUBLAS_STATUS_SUCCESS && found >= 1;
    if (!p->ok && !gelu && !bgrad) {
        if (st != CUBLAS_STATUS_SUCCESS) lt_die(st, "cublasLtMatmulAlgoGetHeuristic", "%s N=%d C=%d OC=%d", op, N, C, OC);
        fatal("cuda: %s N=%d C=%d OC=%d: cuBLASLt has no algorithm for this GEMM (m=%d n=%d k=%d)", op, N, C, OC, m, n, k);
    }
    if (p->ok) p->algo = heur.algo;
    p->used = ++plan_clock;
    return p;
}

// What a GEMM's epilogue does besides the optional bias: nothing; GELU (aux (m,n) gets the GEMM's
// result + bias, D its GELU); GELU's gradient (D = gelu'(aux) * the product; beta must be 0); or
// B's sums over k (BGRADB: bgrad (n,) fp32, written; no bias).
enum Epi { EPI_NONE, EPI_GELU, EPI_DGELU, EPI_BGRADB };

// TRACELLM_CUDA_GELU=separate (or cuda_set_gelu_epilogue(0)): the GELU as a pass of its own even
// where the epilogue could run it, to time one against the other or to rule the epilogue out.
static int gelu_epilogue = -1;
void cuda_set_gelu_epilogue(int on) { gelu_epilogue = on != 0; }
static bool gelu_epilogue_allowed(void) {
    static const char *const ways[] = {"epilogue", "separate", NULL};
    if (gelu_epilogue < 0) gelu_epilogue = cuda_env_choice("TRACELLM_CUDA_GELU", ways) == 0;
    return gelu_epilogue;
}
// TRACELLM_CUDA_BIAS_GRAD=colsum|epilogue (or cuda_set_bias_grad_epilogue): the bias gradient by
// the column-sum kernel (the default until a card has timed the two) or the BGRADB epilogue.
static int bias_grad_epilogue = -1;
void cuda_set_bias_grad_epilogue(int on) { bias_grad_epilogue = on != 0; }
static bool bias_grad_epilogue_allowed(void) {
    static const char *const ways[] = {"colsum", "epilogue", NULL};
    if (bias_grad_epilogue < 0) bias_grad_epilogue = cuda_env_choice("TRACELLM_CUDA_BIAS_GRAD", ways) == 1;
    return bias_grad_epilogue;
}

// D (m,n) col-major, ld m  =  alpha op(A) op(B) + beta D  [+ bias (m,) broadcast over columns],
// then `epi` with the aux matrix (m,n), ld m. A is (m,k) after op: stored (k,m) when transA (ld k),
// else (m,k) (ld m); likewise B (k,n). A, B, bias in the compute type X; D in X, or in fp32 when
// d_fp32 (the weight gradients). Returns false, having done nothing, when a GELU or BGRADB
// epilogue cannot run here: the caller then does the GELU or the sum itself.
template <class X>
static bool gemm(void *D, bool d_fp32, const X *A, const X *B, const X *bias, int m, int n, int k, bool transA,
                 bool transB, float beta, const char *op, int N, int C, int OC, Epi epi = EPI_NONE,
                 const X *aux = nullptr, float *bgrad = nullptr) {
    lt_init();
    constexpr bool native_bf16 = sizeof(X) == 2;
    // GELU epilogues: bf16 table only (aux is then bf16 like D), aux ld a multiple of 8 (cuBLASLt's
    // rule), 16-byte aligned vectors. BGRADB: bf16 table only, an aligned vector, no bias.
    if (epi == EPI_BGRADB ? (!native_bf16 || bias || !aligned16(bgrad) || !bias_grad_epilogue_allowed())
                          : epi != EPI_NONE && (!native_bf16 || d_fp32 || m % 8 || !aligned16(aux) ||
                                                (bias && !aligned16(bias)) || !gelu_epilogue_allowed()))
        return false;
    int mode = native_bf16 ? CUDA_MATMUL_BF16 : cuda_matmul_mode();
    bool bf = mode == CUDA_MATMUL_BF16, convert = bf && !native_bf16;
    size_t na = (size_t)m * k, nb = (size_t)k * n;
    const void *a = convert ? as_bf16(4, (const float *)A, na, op) : (const void *)A;
    const void *b = convert ? as_bf16(5, (const float *)B, nb, op) : (const void *)B;
    cudaDataType_t ab_type = bf ? CUDA_R_16BF : CUDA_R_32F;
    cudaDataType_t x_type = native_bf16 ? CUDA_R_16BF : CUDA_R_32F, d_type = d_fp32 ? CUDA_R_32F : x_type;
    cublasComputeType_t ct = mode == CUDA_MATMUL_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;

    // cuBLASLt's bias epilogue wants an aligned vector; a 4-byte aligned slice gets its own pass
    const X *late_bias = bias && (uintptr_t)bias % 16 ? bias : NULL;
    bool epi_bias = bias && !late_bias;
    cublasLtEpilogue_t e = epi == EPI_GELU  ? (epi_bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX)
                           : epi == EPI_DGELU ? CUBLASLT_EPILOGUE_DGELU
                           : epi == EPI_BGRADB ? CUBLASLT_EPILOGUE_BGRADB
                           : epi_bias       ? CUBLASLT_EPILOGUE_BIAS
                                            : CUBLASLT_EPILOGUE_DEFAULT;
    const Plan *pl = plan_for(PlanKey{m, n, k, transA, transB, (int)ab_type, (int)x_type, (int)d_type, (int)ct, (int)e,
                                      alignment(a), alignment(b), alignment(D), aux ? alignment(aux) : 0u},
                              aux, op, N, C, OC);
    if (!pl->ok) return false;
    if (epi_bias)
        LT_CHECK(cublasLtMatmulDescSetAttribute(pl->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias), "%s", op);
    if (epi == EPI_BGRADB)
        LT_CHECK(cublasLtMatmulDescSetAttribute(pl->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bgrad, sizeof bgrad), "%s", op);
    else if (epi != EPI_NONE)
        LT_CHECK(cublasLtMatmulDescSetAttribute(pl->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof aux),
                 "%s", op);
    float alpha = 1.0f;
    LT_CHECK(cublasLtMatmul(lt, pl->desc, &alpha, a, pl->la, b, pl->lb, &beta, D, pl->ld, D, pl->ld, &pl->algo, workspace,
                            WORKSPACE, 0),
             "%s N=%d C=%d OC=%d", op, N, C, OC);
    LAUNCH_CHECK("%s N=%d C=%d OC=%d", op, N, C, OC);
    if (late_bias) {
        size_t total = (size_t)m * n;
        add_bias_kernel<X><<<cdiv(total, 256), 256>>>((X *)D, late_bias, m, total);
        LAUNCH_CHECK("%s (bias) N=%d C=%d OC=%d", op, N, C, OC);
    }
    return true;
}

// out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias
template <class X>
static void matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC) {
    if (N <= 0 || OC <= 0) return;
    // out^T (OC,N) = W (OC,C) [col-major (C,OC), transposed] . inp^T (C,N)
    gemm<X>(out, false, (const X *)weight, (const X *)inp, (const X *)bias, OC, N, C, true, false, 0.0f,
            "matmul_forward", N, C, OC);
}

// dweight (OC,C) += dout^T inp, fp32; dbias (OC,) += column sums of dout, or NULL
template <class X>
static void weight_grads(float *dweight, float *dbias, const float *dout, const float *inp, int N, int C, int OC) {
    // dweight^T (C,OC) += inp^T (C,N) . dout (N,OC) [col-major (OC,N), transposed]; with BGRADB
    // the same GEMM writes dout's column sums (B's sums over k) to a scratch vector, added after
    float *sums = dbias && sizeof(X) == 2 && bias_grad_epilogue_allowed()
                      ? (float *)cuda_scratch(7, (size_t)OC * sizeof(float)) : nullptr;
    if (sums && gemm<X>(dweight, true, (const X *)inp, (const X *)dout, nullptr, C, OC, N, false, true, 1.0f,
                        "matmul_backward (dweight, dbias)", N, C, OC, EPI_BGRADB, nullptr, sums)) {
        add_bias_kernel<float><<<cdiv(OC, 256), 256>>>(dbias, sums, OC, (size_t)OC);
        LAUNCH_CHECK("matmul_backward (dbias) N=%d OC=%d", N, OC);
        return;
    }
    gemm<X>(dweight, true, (const X *)inp, (const X *)dout, nullptr, C, OC, N, false, true, 1.0f,
            "matmul_backward (dweight)", N, C, OC);
    if (dbias) cuda_colsum_add<X>(dbias, (const X *)dout, N, OC);
}

template <class X>
static void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                            const float *weight, int N, int C, int OC) {
    if (N <= 0) return;
    // dinp^T (C,N) = W^T (C,OC) [col-major (C,OC)] . dout^T (OC,N), written (beta 0)
    gemm<X>(dinp, false, (const X *)weight, (const X *)dout, nullptr, C, N, OC, false, false, 0.0f,
            "matmul_backward (dinp)", N, C, OC);
    weight_grads<X>(dweight, dbias, dout, inp, N, C, OC);
}

// pre (N,OC) = inp @ weight^T + bias, out (N,OC) = gelu(pre)
template <class X>
static void matmul_gelu_forward(float *pre, float *out, const float *inp, const float *weight, const float *bias, int N,
                                int C, int OC) {
    if (N <= 0 || OC <= 0) return;
    if (gemm<X>(out, false, (const X *)weight, (const X *)inp, (const X *)bias, OC, N, C, true, false, 0.0f,
                "matmul_gelu_forward", N, C, OC, EPI_GELU, (const X *)pre))
        return;
    matmul_forward<X>(pre, inp, weight, bias, N, C, OC);
    cuda_gelu_forward<X>((X *)out, (const X *)pre, (size_t)N * OC);
}

// dpre (N,C) = gelu'(pre) * (dout @ weight), written; dweight, dbias accumulate
template <class X>
static void matmul_backward_gelu(float *dpre, float *dweight, float *dbias, const float *dout, const float *inp,
                                 const float *weight, const float *pre, int N, int C, int OC) {
    if (N <= 0) return;
    // dpre^T (C,N) = gelu'(pre^T) * (W^T (C,OC) . dout^T (OC,N))
    if (!gemm<X>(dpre, false, (const X *)weight, (const X *)dout, nullptr, C, N, OC, false, false, 0.0f,
                 "matmul_backward_gelu (dpre)", N, C, OC, EPI_DGELU, (const X *)pre)) {
        matmul_backward<X>(dpre, dweight, dbias, dout, inp, weight, N, C, OC);
        cuda_gelu_backward<X>((X *)dpre, (const X *)pre, (const X *)dpre, (size_t)N * C);
        return;
    }
    weight_grads<X>(dweight, dbias, dout, inp, N, C, OC);
}

template <class X> void cu_ops_matmul(Backend *b) {
    b->matmul_forward = matmul_forward<X>;
    b->matmul_backward = matmul_backward<X>;
    b->matmul_gelu_forward = matmul_gelu_forward<X>;
    b->matmul_backward_gelu = matmul_backward_gelu<X>;
}
CU_OPS_INSTANTIATE(cu_ops_matmul)
