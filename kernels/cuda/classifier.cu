// Fused softmax + cross-entropy + loss mask (kernels/ops.h `classifier`): one block per row of
// logits; one read of the row gives each thread its max and sum of exps (online softmax), block
// reductions with a fixed tree combine them into the loss; when a gradient is asked for, the row
// is overwritten with dlogits = weight * dscale * (softmax - onehot) in the same kernel, so no
// probability tensor ever exists. Logits in the compute type X, the arithmetic,
// losses and weights in fp32.
//
// The row is read twice: once for the max and the sum, once for dlogits. At d12's shapes (B*T =
// 16,384 rows of 50,257 bf16, 100 KB each) the second read comes from DRAM again: the rows a GPU
// has in flight between the two reads (4 blocks on each of 132 SMs: 53 MB) outrun its L2 (50 MB),
// and run 8 took 1.733 ms, what two reads and a write take at the copy rate. So by default the
// first read also copies the row into shared memory (cp.async, each thread the vectors it reads
// itself: no barrier needed), and both passes read it there: one read and a write, where two
// blocks' rows fit an SM. TRACELLM_CUDA_CLASSIFIER=reread keeps the two reads. The same loops
// run either way: the same bits.
#include "kernels/cuda/common.cuh"
#include <math.h>

#define CL_THREADS 512

// A thread's running max and its sum of exps relative to that max (online softmax): one read of
// the row gives both. Values come a 16-byte vector at a time: the vector's max first, so the sum
// is rescaled once a vector, not once a new maximum, and no branch depends on the data; e^x as
// 2^(x log2 e) with the product in the exponent's FMA (expf costs several instructions more).
// Values past the row's end come as -inf and add 0.
struct MaxSum {
    float m = -INFINITY, s = 0.0f;
    template <int N> __device__ __forceinline__ void add(const float (&x)[N]) {
        float mx = m;
#pragma unroll
        for (int k = 0; k < N; k++) mx = fmaxf(mx, x[k]);
        if (mx == -INFINITY) return;  // nothing yet: -inf - -inf would be NaN
        float ml = mx * LOG2E;
        s *= exp2_ftz(fmaf(m, LOG2E, -ml));  // m = -inf at first: s = 0 * 0
#pragma unroll
        for (int k = 0; k < N; k++) s += exp2_ftz(fmaf(x[k], LOG2E, -ml));
        m = mx;
    }
};

// VEC: 16-byte loads and stores (Vp a multiple of Vec<X>::N and the rows 16-byte aligned).
// SHARED (VEC only): the row goes through Vp * sizeof(X) bytes of dynamic shared memory.
template <class X, bool VEC, bool SHARED>
__global__ void __launch_bounds__(CL_THREADS) classifier_kernel(X *logits, float *losses, const int32_t *targets,
                                                                const float *weight, float dscale, int V, int Vp) {
    static_assert(VEC || !SHARED, "the row is copied 16 bytes at a time");
    constexpr int VN = VEC ? Vec<X>::N : 1;
    __shared__ float sh[32];
    extern __shared__ __align__(16) float cl_row[];
    int n = blockIdx.x;
    X *l = logits + (size_t)n * Vp;
    float w = weight ? weight[n] : 1.0f;
    if (w == 0.0f) {  // masked: exactly no loss and no gradient
        if (threadIdx.x == 0) losses[n] = 0.0f;
        if (dscale != 0.0f)
            for (int i = threadIdx.x; i < Vp; i += CL_THREADS) l[i] = stx<X>(0.0f);
        return;
    }
    int y = targets[n];
    float ly = ldx(l[y]);  // read before any thread overwrites the row
    const X *src = l;      // where both passes read the row
    if constexpr (SHARED) {
        X *row = (X *)cl_row;
        for (int i = threadIdx.x * VN; i < Vp; i += CL_THREADS * VN) cp_async<16>(row + i, l + i, true);
        cp_async_commit();
        cp_async_wait<0>();  // every copy in flight at once; a thread reads only its own
        src = row;
    }
    MaxSum ms;
    for (int i = threadIdx.x * VN; i < V; i += CL_THREADS * VN) {
        float x[VN];
        if constexpr (VEC) load_vec<X>(x, src + i);
        else x[0] = ldx(src[i]);
        if (i + VN > V)  // the row's last vector
#pragma unroll
            for (int k = 1; k < VN; k++)
                if (i + k >= V) x[k] = -INFINITY;
        ms.add(x);
    }
    float mx = block_max(ms.m, sh), mxl = mx * LOG2E;
    float sum = block_sum(ms.m == -INFINITY ? 0.0f : ms.s * exp2_ftz(fmaf(ms.m, LOG2E, -mxl)), sh);  // its barriers
    if (threadIdx.x == 0) losses[n] = w * (logf(sum) + mx - ly);  // also order every read before the writes
    if (dscale == 0.0f) return;
    float g = w * dscale / sum;
    for (int i = threadIdx.x * VN; i < Vp; i += CL_THREADS * VN) {
        float x[VN];
        if constexpr (VEC) load_vec<X>(x, src + i);
        else x[0] = ldx(src[i]);
#pragma unroll
        for (int k = 0; k < VN; k++) x[k] = g * exp2_ftz(fmaf(x[k], LOG2E, -mxl));
        if (i + VN > V)  // the padded columns get 0
#pragma unroll
            for (int k = 0; k < VN; k++)
                if (i + k >= V) x[k] = 0.0f;
        if ((unsigned)(y - i) < (unsigned)VN)  // the one-hot part
#pragma unroll
            for (int k = 0; k < VN; k++)
                if (i + k == y) x[k] -= w * dscale;
        if constexpr (VEC) store_vec<X>(l + i, x);
        else l[i] = stx<X>(x[0]);
    }
}

// TRACELLM_CUDA_CLASSIFIER / cuda_set_classifier (backend_cuda.h)
static int classifier_way = -1;
void cuda_set_classifier(int way) {
    if (way != CUDA_CLASSIFIER_SHARED && way != CUDA_CLASSIFIER_REREAD) fatal("cuda_set_classifier: unknown way %d", way);
    classifier_way = way;
}
// Whether a row of `bytes` goes through shared memory: asked for, and two blocks' rows fit the
// card's limit a block (227 KB on an H100: rows up to 56k bf16; 163 KB on an A100: 40k), so one
// block's copy streams in while the other computes.
template <class X> static bool row_in_shared(size_t bytes) {
    static const char *const ways[] = {"shared", "reread", NULL};  // CUDA_CLASSIFIER_*
    static int limit = -1;
    if (classifier_way < 0) classifier_way = cuda_env_choice("TRACELLM_CUDA_CLASSIFIER", ways);
    if (classifier_way != CUDA_CLASSIFIER_SHARED) return false;
    if (limit < 0) {
        int dev = 0;
        CUDA_CHECK(cudaGetDevice(&dev), "classifier");
        CUDA_CHECK(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), "classifier");
    }
    return 2 * bytes <= (size_t)limit &&
           smem_opt_in<classifier_kernel<X, true, true>>(bytes, nullptr, "classifier (row in shared memory)");
}

template <class X>
static void classifier(float *logits, float *losses, const int32_t *targets, const float *weight, float dscale, int N,
                       int V, int Vp) {
    cuda_init();
    if (N <= 0) return;
    size_t row = (size_t)Vp * sizeof(X);
    if (Vp % Vec<X>::N || !aligned16(logits))
        classifier_kernel<X, false, false><<<N, CL_THREADS>>>((X *)logits, losses, targets, weight, dscale, V, Vp);
    else if (row_in_shared<X>(row))
        classifier_kernel<X, true, true><<<N, CL_THREADS, row>>>((X *)logits, losses, targets, weight, dscale, V, Vp);
    else
        classifier_kernel<X, true, false><<<N, CL_THREADS>>>((X *)logits, losses, targets, weight, dscale, V, Vp);
    LAUNCH_CHECK("classifier N=%d V=%d Vp=%d%s", N, V, Vp, dscale != 0.0f ? " (with dlogits)" : "");
}

template <class X> void cu_ops_classifier(Backend *b) { b->classifier = classifier<X>; }
CU_OPS_INSTANTIATE(cu_ops_classifier)
