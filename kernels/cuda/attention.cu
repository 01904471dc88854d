// Causal self-attention, flash-style in its memory behaviour: no (T,T) matrix is ever stored.
// The forward keeps only the log-sum-exp of each query row (the backend's attention state,
// (B,NH,T) floats); the backward recomputes the probabilities from it.
//
// Three implementations behind one entry point: in the bf16 table, the mma.sync kernels of
// attention_mma.cu (head sizes 16-128); with TF32 or bf16 GEMMs (the default) and head
// sizes 16-128, the tensor-core kernels of attention_tc.cu; in strict fp32 mode (and for head size
// 8) the CUDA-core kernels below, which match the CPU backend to 1e-5: one thread owns one query
// row (forward, dq) or one key row (dk, dv); the block's 64 threads share K,V (or Q,dO) tiles of
// 32 rows in shared memory, read as broadcasts; fp32 FMAs, online softmax rescaled once per tile. Every thread writes only its own rows of out / dqkv, so the results are
// deterministic without atomics. Head sizes 8, 16, 32, 64, 128 are compiled in.
//
// qkv (B,T,3C): position (b,t) holds q | k | v, head h at offset h*hs in each; out (B,T,C). These
// are in the compute type X (read widened to fp32, shared-memory tiles in fp32); the state is fp32.
#include "kernels/cuda/common.cuh"
#include <math.h>

#define BQ 64  // rows owned per block (threads)
#define BK 32  // rows per shared-memory tile

static size_t attention_state_size(int B, int T, int NH) { return (size_t)B * NH * T; }

// Dot product of a register row with a shared-memory row (16-byte broadcast loads).
template <int HS>
__device__ __forceinline__ float dot_sh(const float (&r)[HS], const float *sh) {
    const float4 *s4 = (const float4 *)sh;
    float acc = 0.0f;
#pragma unroll
    for (int d = 0; d < HS / 4; d++) {
        float4 s = s4[d];
        acc += r[4 * d] * s.x + r[4 * d + 1] * s.y + r[4 * d + 2] * s.z + r[4 * d + 3] * s.w;
    }
    return acc;
}

// Loads rows [r0, r0+BK) (clamped to T) of one head of a (B,T,3C) tensor section into sh (BK,HS).
template <int HS, class X>
__device__ __forceinline__ void load_tile(float *sh, const X *base, int r0, int T, int C3) {
    for (int e = threadIdx.x; e < BK * HS; e += BQ) {
        int r = e / HS, d = e % HS;
        sh[e] = r0 + r < T ? ldx(base[(size_t)(r0 + r) * C3 + d]) : 0.0f;
    }
}

// grid (T/BQ, NH, B). lse (B,NH,T).
template <int HS, class X>
__global__ void __launch_bounds__(BQ) attention_forward_kernel(X *out, float *lse, const X *qkv, int T, int C, int NH,
                                                               float scale) {
    __shared__ __align__(16) float Ks[BK * HS];
    __shared__ __align__(16) float Vs[BK * HS];
    __shared__ float S[BQ][BK + 1];
    int b = blockIdx.z, h = blockIdx.y, i = blockIdx.x * BQ + threadIdx.x, C3 = 3 * C;
    const X *base = qkv + (size_t)b * T * C3 + h * HS;
    float q[HS], o[HS];
    if (i < T) {
#pragma unroll
        for (int d = 0; d < HS; d++) q[d] = ldx(base[(size_t)i * C3 + d]);
    }
#pragma unroll
    for (int d = 0; d < HS; d++) o[d] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    int last = min(T - 1, (int)(blockIdx.x * BQ + BQ - 1));  // the block's largest query row
    for (int k0 = 0; k0 <= last; k0 += BK) {
        __syncthreads();
        load_tile<HS, X>(Ks, base + C, k0, T, C3);
        load_tile<HS, X>(Vs, base + 2 * C, k0, T, C3);
        __syncthreads();
        if (i >= T || k0 > i) continue;
        int n = min(BK, i - k0 + 1);  // keys of this tile at or before i
        float mt = -INFINITY;
        for (int j = 0; j < n; j++) {
            float s = dot_sh<HS>(q, Ks + j * HS) * scale;
            S[threadIdx.x][j] = s;
            mt = fmaxf(mt, s);
        }
        float mn = fmaxf(m, mt), c = expf(m - mn);
        l *= c;
#pragma unroll
        for (int d = 0; d < HS; d++) o[d] *= c;
        for (int j = 0; j < n; j++) {
            float p = expf(S[threadIdx.x][j] - mn);
            l += p;
            const float4 *v4 = (const float4 *)(Vs + j * HS);
#pragma unroll
            for (int d = 0; d < HS / 4; d++) {
                float4 v = v4[d];
                o[4 * d] += p * v.x; o[4 * d + 1] += p * v.y; o[4 * d + 2] += p * v.z; o[4 * d + 3] += p * v.w;
            }
        }
        m = mn;
    }
    if (i >= T) return;
    float inv = 1.0f / l;
    X *y = out + ((size_t)b * T + i) * C + h * HS;
#pragma unroll
    for (int d = 0; d < HS; d++) y[d] = stx<X>(o[d] * inv);
    lse[((size_t)b * NH + h) * T + i] = m + logf(l);
}

// dq, and Dsum_i = sum_j P_ij (dout_i . v_j) (= dout_i . out_i) for the dk kernel. Two passes over
// the keys: the first for Dsum, the second accumulates dq = scale sum_j P_ij (dP_ij - Dsum_i) k_j.
template <int HS, class X>
__global__ void __launch_bounds__(BQ) attention_backward_dq_kernel(X *dqkv, float *Dsum, const X *dout, const X *qkv,
                                                                   const float *lse, int T, int C, int NH, float scale) {
    __shared__ __align__(16) float Ks[BK * HS];
    __shared__ __align__(16) float Vs[BK * HS];
    int b = blockIdx.z, h = blockIdx.y, i = blockIdx.x * BQ + threadIdx.x, C3 = 3 * C;
    const X *base = qkv + (size_t)b * T * C3 + h * HS;
    float q[HS], g[HS], acc[HS];
    float li = 0.0f;
    if (i < T) {
        const X *dy = dout + ((size_t)b * T + i) * C + h * HS;
#pragma unroll
        for (int d = 0; d < HS; d++) { q[d] = ldx(base[(size_t)i * C3 + d]); g[d] = ldx(dy[d]); }
        li = lse[((size_t)b * NH + h) * T + i];
    }
#pragma unroll
    for (int d = 0; d < HS; d++) acc[d] = 0.0f;
    int last = min(T - 1, (int)(blockIdx.x * BQ + BQ - 1));
    float D = 0.0f;
    for (int pass = 0; pass < 2; pass++) {
        for (int k0 = 0; k0 <= last; k0 += BK) {
            __syncthreads();
            load_tile<HS, X>(Ks, base + C, k0, T, C3);
            load_tile<HS, X>(Vs, base + 2 * C, k0, T, C3);
            __syncthreads();
            if (i >= T || k0 > i) continue;
            int n = min(BK, i - k0 + 1);
            for (int j = 0; j < n; j++) {
                float p = expf(dot_sh<HS>(q, Ks + j * HS) * scale - li);
                float dp = dot_sh<HS>(g, Vs + j * HS);
                if (pass == 0) { D += p * dp; continue; }
                float ds = p * (dp - D) * scale;
                const float4 *k4 = (const float4 *)(Ks + j * HS);
#pragma unroll
                for (int d = 0; d < HS / 4; d++) {
                    float4 k = k4[d];
                    acc[4 * d] += ds * k.x; acc[4 * d + 1] += ds * k.y; acc[4 * d + 2] += ds * k.z; acc[4 * d + 3] += ds * k.w;
                }
            }
        }
    }
    if (i >= T) return;
    Dsum[((size_t)b * NH + h) * T + i] = D;
    X *dq = dqkv + ((size_t)b * T + i) * C3 + h * HS;
#pragma unroll
    for (int d = 0; d < HS; d++) dq[d] = stx<X>(acc[d]);
}

// One key row j per thread, the query rows i >= j in tiles. WANT_DK: dk_j += scale sum_i dS_ij q_i
// (needs v_j for dP); else dv_j += sum_i P_ij dout_i. Two kernels keep the registers per thread
// at 2-3 rows of HS instead of 4.
template <int HS, bool WANT_DK, class X>
__global__ void __launch_bounds__(BQ) attention_backward_dkdv_kernel(X *dqkv, const float *Dsum, const X *dout,
                                                                     const X *qkv, const float *lse, int T, int C,
                                                                     int NH, float scale) {
    __shared__ __align__(16) float Qs[BK * HS];
    __shared__ __align__(16) float Gs[BK * HS];
    __shared__ float Ls[BK], Ds[BK];
    int b = blockIdx.z, h = blockIdx.y, j = blockIdx.x * BQ + threadIdx.x, C3 = 3 * C;
    const X *base = qkv + (size_t)b * T * C3 + h * HS;
    const X *gbase = dout + (size_t)b * T * C + h * HS;
    const float *lrow = lse + ((size_t)b * NH + h) * T, *drow = Dsum + ((size_t)b * NH + h) * T;
    float k[HS], v[HS], acc[HS];  // v only for dk
    if (j < T) {
#pragma unroll
        for (int d = 0; d < HS; d++) k[d] = ldx(base[(size_t)j * C3 + C + d]);
        if (WANT_DK) {
#pragma unroll
            for (int d = 0; d < HS; d++) v[d] = ldx(base[(size_t)j * C3 + 2 * C + d]);
        }
    }
#pragma unroll
    for (int d = 0; d < HS; d++) acc[d] = 0.0f;
    int first = blockIdx.x * BQ;  // the block's smallest key row: queries before it see none of its keys
    for (int i0 = first / BK * BK; i0 < T; i0 += BK) {
        __syncthreads();
        load_tile<HS, X>(Qs, base, i0, T, C3);
        for (int e = threadIdx.x; e < BK * HS; e += BQ) {
            int r = e / HS, d = e % HS;
            Gs[e] = i0 + r < T ? ldx(gbase[(size_t)(i0 + r) * C + d]) : 0.0f;
        }
        for (int r = threadIdx.x; r < BK; r += BQ) {
            Ls[r] = i0 + r < T ? lrow[i0 + r] : 0.0f;
            Ds[r] = i0 + r < T ? drow[i0 + r] : 0.0f;
        }
        __syncthreads();
        if (j >= T) continue;
        int r0 = j > i0 ? j - i0 : 0, r1 = min(BK, T - i0);  // query rows i >= j of this tile
        for (int r = r0; r < r1; r++) {
            float p = expf(dot_sh<HS>(k, Qs + r * HS) * scale - Ls[r]);
            const float4 *src;
            float w;
            if (WANT_DK) {
                float dp = dot_sh<HS>(v, Gs + r * HS);
                w = p * (dp - Ds[r]) * scale;
                src = (const float4 *)(Qs + r * HS);
            } else {
                w = p;
                src = (const float4 *)(Gs + r * HS);
            }
#pragma unroll
            for (int d = 0; d < HS / 4; d++) {
                float4 x = src[d];
                acc[4 * d] += w * x.x; acc[4 * d + 1] += w * x.y; acc[4 * d + 2] += w * x.z; acc[4 * d + 3] += w * x.w;
            }
        }
    }
    if (j >= T) return;
    X *dst = dqkv + ((size_t)b * T + j) * C3 + (WANT_DK ? C : 2 * C) + h * HS;
#pragma unroll
    for (int d = 0; d < HS; d++) dst[d] = stx<X>(acc[d]);
}

#define HEAD_SIZES(X) X(8) X(16) X(32) X(64) X(128)
#define SUPPORTED "8, 16, 32, 64 or 128"

template <class X> static void attention_forward(float *out_, float *state, const float *qkv_, int B, int T, int C, int NH) {
    cuda_init();
    if (B <= 0 || T <= 0) return;
    X *out = (X *)out_;
    const X *qkv = (const X *)qkv_;
    int hs = C / NH;
    if constexpr (sizeof(X) == 2) {
        if (cuda_matmul_mode() != CUDA_MATMUL_FP32 && cu_attention_mma_supported(hs)) {
            cu_attention_mma_forward(out, state, qkv, B, T, C, NH);
            return;
        }
    }
    if (cuda_matmul_mode() != CUDA_MATMUL_FP32 && cu_attention_tc_supported(hs)) {
        cu_attention_tc_forward<X>(out, state, qkv, B, T, C, NH);
        return;
    }
    float scale = 1.0f / sqrtf((float)hs);
    dim3 grid(cdiv(T, BQ), NH, B);
    switch (hs) {
#define FWD(H) case H: attention_forward_kernel<H, X><<<grid, BQ>>>(out, state, qkv, T, C, NH, scale); break;
        HEAD_SIZES(FWD)
#undef FWD
    default: fatal("cuda attention_forward: head size %d (C=%d, NH=%d) is not compiled in (" SUPPORTED ")", hs, C, NH);
    }
    LAUNCH_CHECK("attention_forward B=%d T=%d C=%d NH=%d", B, T, C, NH);
}

template <class X>
static void attention_backward(float *dqkv_, const float *dout_, const float *qkv_, const float *out_, const float *state,
                               int B, int T, int C, int NH) {
    cuda_init();
    if (B <= 0 || T <= 0) return;
    X *dqkv = (X *)dqkv_;
    const X *dout = (const X *)dout_, *qkv = (const X *)qkv_, *out = (const X *)out_;
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    float *Dsum = (float *)cuda_scratch(1, (size_t)B * NH * T * sizeof(float));
    if constexpr (sizeof(X) == 2) {
        if (cuda_matmul_mode() != CUDA_MATMUL_FP32 && cu_attention_mma_supported(hs)) {
            cu_attention_mma_backward(dqkv, Dsum, dout, qkv, out, state, B, T, C, NH);
            return;
        }
    }
    if (cuda_matmul_mode() != CUDA_MATMUL_FP32 && cu_attention_tc_supported(hs)) {
        cu_attention_tc_backward<X>(dqkv, Dsum, dout, qkv, out, state, B, T, C, NH);
        return;
    }
    dim3 grid(cdiv(T, BQ), NH, B);
    switch (hs) {
#define BWD(H)                                                                                                    \
    case H:                                                                                                       \
        attention_backward_dq_kernel<H, X><<<grid, BQ>>>(dqkv, Dsum, dout, qkv, state, T, C, NH, scale);          \
        LAUNCH_CHECK("attention_backward (dq) B=%d T=%d C=%d NH=%d", B, T, C, NH);                                \
        attention_backward_dkdv_kernel<H, true, X><<<grid, BQ>>>(dqkv, Dsum, dout, qkv, state, T, C, NH, scale);  \
        LAUNCH_CHECK("attention_backward (dk) B=%d T=%d C=%d NH=%d", B, T, C, NH);                                \
        attention_backward_dkdv_kernel<H, false, X><<<grid, BQ>>>(dqkv, Dsum, dout, qkv, state, T, C, NH, scale); \
        break;
        HEAD_SIZES(BWD)
#undef BWD
    default: fatal("cuda attention_backward: head size %d (C=%d, NH=%d) is not compiled in (" SUPPORTED ")", hs, C, NH);
    }
    LAUNCH_CHECK("attention_backward (dv) B=%d T=%d C=%d NH=%d", B, T, C, NH);
}

template <class X> void cu_ops_attention(Backend *b) {
    b->attention_state_size = attention_state_size;
    b->attention_forward = attention_forward<X>;
    b->attention_backward = attention_backward<X>;
}
CU_OPS_INSTANTIATE(cu_ops_attention)
