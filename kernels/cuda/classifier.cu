// Fused softmax + cross-entropy + loss mask (kernels/ops.h `classifier`): one block per row of
// logits; max, sum of exps and the loss in block reductions with a fixed tree; when a gradient is
// asked for, the row is overwritten with dlogits = weight * dscale * (softmax - onehot) in the
// same kernel, so no probability tensor ever exists. Logits in the compute type X, the arithmetic,
// losses and weights in fp32.
#include "kernels/cuda/common.cuh"
#include <math.h>

#define CL_THREADS 512

template <class X>
__global__ void __launch_bounds__(CL_THREADS) classifier_kernel(X *logits, float *losses, const int32_t *targets,
                                                                const float *weight, float dscale, int V, int Vp) {
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
    float mx = -INFINITY;
    for (int i = threadIdx.x; i < V; i += CL_THREADS) mx = fmaxf(mx, ldx(l[i]));
    mx = block_max(mx, sh);
    float s = 0.0f;
    for (int i = threadIdx.x; i < V; i += CL_THREADS) s += expf(ldx(l[i]) - mx);
    float sum = block_sum(s, sh);  // its barriers also order every read of the row before the writes
    if (threadIdx.x == 0) losses[n] = w * (logf(sum) + mx - ly);
    if (dscale == 0.0f) return;
    float inv = 1.0f / sum, g = w * dscale;
    for (int i = threadIdx.x; i < Vp; i += CL_THREADS) {
        float d = i < V ? g * (expf(ldx(l[i]) - mx) * inv) : 0.0f;
        if (i == y) d -= g;  // the one-hot part
        l[i] = stx<X>(d);
    }
}

template <class X>
static void classifier(float *logits, float *losses, const int32_t *targets, const float *weight, float dscale, int N,
                       int V, int Vp) {
    cuda_init();
    if (N <= 0) return;
    classifier_kernel<X><<<N, CL_THREADS>>>((X *)logits, losses, targets, weight, dscale, V, Vp);
    LAUNCH_CHECK("classifier N=%d V=%d Vp=%d%s", N, V, Vp, dscale != 0.0f ? " (with dlogits)" : "");
}

template <class X> void cu_ops_classifier(Backend *b) { b->classifier = classifier<X>; }
CU_OPS_INSTANTIATE(cu_ops_classifier)
