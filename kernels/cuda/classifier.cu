// Fused softmax + cross-entropy + loss mask (kernels/ops.h `classifier`): one block per row of
// logits; one read of the row gives each thread its max and sum of exps (online softmax), block
// reductions with a fixed tree combine them into the loss; when a gradient is asked for, the row
// is overwritten with dlogits = weight * dscale * (softmax - onehot) in the same kernel, so no
// probability tensor ever exists. Logits in the compute type X, the arithmetic,
// losses and weights in fp32.
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
template <class X, bool VEC>
__global__ void __launch_bounds__(CL_THREADS) classifier_kernel(X *logits, float *losses, const int32_t *targets,
                                                                const float *weight, float dscale, int V, int Vp) {
    constexpr int VN = VEC ? Vec<X>::N : 1;
    __shared__ float sh[32];
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
    MaxSum ms;
    for (int i = threadIdx.x * VN; i < V; i += CL_THREADS * VN) {
        float x[VN];
        if constexpr (VEC) load_vec<X>(x, l + i);
        else x[0] = ldx(l[i]);
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
        if constexpr (VEC) load_vec<X>(x, l + i);
        else x[0] = ldx(l[i]);
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

template <class X>
static void classifier(float *logits, float *losses, const int32_t *targets, const float *weight, float dscale, int N,
                       int V, int Vp) {
    cuda_init();
    if (N <= 0) return;
    if (Vp % Vec<X>::N == 0 && aligned16(logits))
        classifier_kernel<X, true><<<N, CL_THREADS>>>((X *)logits, losses, targets, weight, dscale, V, Vp);
    else
        classifier_kernel<X, false><<<N, CL_THREADS>>>((X *)logits, losses, targets, weight, dscale, V, Vp);
    LAUNCH_CHECK("classifier N=%d V=%d Vp=%d%s", N, V, Vp, dscale != 0.0f ? " (with dlogits)" : "");
}

template <class X> void cu_ops_classifier(Backend *b) { b->classifier = classifier<X>; }
CU_OPS_INSTANTIATE(cu_ops_classifier)
