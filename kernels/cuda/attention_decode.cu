// Attention over a KV cache (kernels/ops.h `attention_decode`): N new rows, each at its own
// (slot, position), store their k,v, then attend causally over their sequence. Two kernels, so
// every store lands before any row reads (rows of one sequence may share a call).
// Attend: one warp per (row, head). Lanes split the keys for the scores (kept in shared memory,
// positions 0..pos), the softmax is normalised like the CPU's (weights scaled by 1/sum first),
// then lanes split the head's channels for the weighted sum of v (coalesced rows). The cache,
// qkv and out are in the compute type X; scores and sums in fp32.
#include "kernels/cuda/common.cuh"
#include <math.h>

// kcache, vcache (S,maxT,C) <- k, v of qkv (N,3C) at (slot[i], pos[i])
template <class X>
__global__ void decode_store_kernel(X *kcache, X *vcache, const X *qkv, const int32_t *slot, const int32_t *pos, int N,
                                    int C, int maxT) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)N * C) return;
    int i = (int)(e / C), c = (int)(e % C);
    size_t cell = ((size_t)slot[i] * maxT + pos[i]) * C + c;
    kcache[cell] = qkv[(size_t)i * 3 * C + C + c];
    vcache[cell] = qkv[(size_t)i * 3 * C + 2 * C + c];
}

// grid (N, NH), 32 threads; dynamic shared memory: maxT scores.
template <class X>
__global__ void decode_attend_kernel(X *out, const X *kcache, const X *vcache, const X *qkv, const int32_t *slot,
                                     const int32_t *pos, const int32_t *pslot, const int32_t *plen, int C, int NH,
                                     int maxT, float scale) {
    extern __shared__ float a[];
    int i = blockIdx.x, h = blockIdx.y, lane = threadIdx.x, hs = C / NH;
    int t = pos[i], pl = plen[i];
    const X *q = qkv + (size_t)i * 3 * C + h * hs;
    // position t2 lives in the prefix slot below plen, in the row's own slot above
    const X *kp = kcache + (size_t)pslot[i] * maxT * C + h * hs, *ks = kcache + (size_t)slot[i] * maxT * C + h * hs;
    const X *vp = vcache + (size_t)pslot[i] * maxT * C + h * hs, *vs = vcache + (size_t)slot[i] * maxT * C + h * hs;
    float mx = -INFINITY;
    for (int t2 = lane; t2 <= t; t2 += 32) {
        const X *k = (t2 < pl ? kp : ks) + (size_t)t2 * C;
        float s = 0.0f;
        for (int d = 0; d < hs; d++) s += ldx(q[d]) * ldx(k[d]);
        s *= scale;
        a[t2] = s;
        mx = fmaxf(mx, s);
    }
    mx = warp_max(mx);
    float sum = 0.0f;
    for (int t2 = lane; t2 <= t; t2 += 32) { float e = expf(a[t2] - mx); a[t2] = e; sum += e; }
    float inv = 1.0f / warp_sum(sum);
    __syncwarp();
    X *o = out + (size_t)i * C + h * hs;
    for (int d = lane; d < hs; d += 32) {
        float acc = 0.0f;
        for (int t2 = 0; t2 <= t; t2++) acc += a[t2] * inv * ldx((t2 < pl ? vp : vs)[(size_t)t2 * C + d]);
        o[d] = stx<X>(acc);
    }
}

template <class X>
static void attention_decode(float *out, float *kcache, float *vcache, const float *qkv, const int32_t *slot,
                             const int32_t *pos, const int32_t *pslot, const int32_t *plen, int N, int C, int NH,
                             int maxT) {
    cuda_init();
    if (N <= 0) return;
    decode_store_kernel<X><<<cdiv((size_t)N * C, 256), 256>>>((X *)kcache, (X *)vcache, (const X *)qkv, slot, pos, N, C,
                                                              maxT);
    LAUNCH_CHECK("attention_decode (store) N=%d C=%d maxT=%d", N, C, maxT);
    size_t smem = (size_t)maxT * sizeof(float);
    int limit = 0;
    if (!smem_opt_in<decode_attend_kernel<X>>(smem, &limit, "attention_decode"))
        fatal("cuda attention_decode: context %d needs %zu bytes of shared memory, the GPU allows %d", maxT, smem, limit);
    dim3 grid(N, NH);
    decode_attend_kernel<X><<<grid, 32, smem>>>((X *)out, (const X *)kcache, (const X *)vcache, (const X *)qkv, slot, pos,
                                                pslot, plen, C, NH, maxT, 1.0f / sqrtf((float)(C / NH)));
    LAUNCH_CHECK("attention_decode (attend) N=%d C=%d NH=%d maxT=%d", N, C, NH, maxT);
}

template <class X> void cu_ops_decode(Backend *b) { b->attention_decode = attention_decode<X>; }
CU_OPS_INSTANTIATE(cu_ops_decode)
