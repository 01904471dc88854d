// The memory-bound ops: token + position embedding (and its deterministic backward), GELU,
// residual add, AdamW, the squared gradient norm and the rounding of the master weights to the
// compute type. One thread per element, or per 16 bytes (4 floats, 8 bf16) when the sizes and
// pointers allow 16-byte accesses. X is the compute type (common.cuh).
#include "kernels/cuda/common.cuh"
#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---- encoder ----

// out (B,T,C) = wte[inp[b,t]] + wpe[t]; VEC: 16 bytes a thread (C a multiple of the vector, every
// pointer 16-byte aligned), else one element
template <class X, bool VEC>
__global__ void encoder_forward_kernel(X *out, const int32_t *inp, const X *wte, const X *wpe, int BT, int T, int C) {
    constexpr int V = VEC ? Vec<X>::N : 1;
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (i >= (size_t)BT * C) return;
    int bt = (int)(i / C), c = (int)(i % C);
    const X *e = wte + (size_t)inp[bt] * C + c, *p = wpe + (size_t)(bt % T) * C + c;
    if constexpr (VEC) {
        float x[V], y[V];
        load_vec<X>(x, e); load_vec<X>(y, p);
#pragma unroll
        for (int k = 0; k < V; k++) x[k] += y[k];
        store_vec<X>(out + i, x);
    } else {
        out[i] = stx<X>(ldx(*e) + ldx(*p));
    }
}

template <class X>
static void encoder_forward(float *out, const int32_t *inp, const float *wte, const float *wpe, int B, int T, int C) {
    cuda_init();
    size_t n = (size_t)B * T * C;
    if (!n) return;
    constexpr size_t V = Vec<X>::N;
    if (C % V == 0 && aligned16(out) && aligned16(wte) && aligned16(wpe))
        encoder_forward_kernel<X, true><<<cdiv(n / V, 256), 256>>>((X *)out, inp, (const X *)wte, (const X *)wpe, B * T, T, C);
    else
        encoder_forward_kernel<X, false><<<cdiv(n, 256), 256>>>((X *)out, inp, (const X *)wte, (const X *)wpe, B * T, T, C);
    LAUNCH_CHECK("encoder_forward B=%d T=%d C=%d", B, T, C);
}

// dwpe (T,C) += sum over b of dout (B,T,C), b in order (the CPU backend's order: same bits).
template <class X> __global__ void encoder_backward_wpe_kernel(float *dwpe, const X *dout, int B, int T, int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)T * C) return;
    float acc = dwpe[i];
    for (int b = 0; b < B; b++) acc += ldx(dout[(size_t)b * T * C + i]);
    dwpe[i] = acc;
}

// Tokens repeat, so rows of dwte collide. The host groups positions by token (a stable counting
// sort of the B*T ids): block x owns one distinct token and adds its positions' rows in
// position order. No atomics, and the same order of additions as the CPU backend. A frequent
// token makes a long chain: in the demo's shards one token (':') is 14% of a batch, some 2,400
// positions of 16,384: one dependent load at a time, ~0.5 us each, is about a millisecond. So the
// rows are loaded ENC_BATCH at a time and then added in order: the loads overlap, the same bits.
#define ENC_BATCH 32
template <class X>
__global__ void encoder_backward_wte_kernel(float *dwte, const X *dout, const int32_t *tok, const int32_t *start,
                                            const int32_t *order, int C) {
    int u = blockIdx.x, c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float *row = dwte + (size_t)tok[u] * C;
    float acc = row[c];
    int k = start[u], end = start[u + 1];
    for (; k + ENC_BATCH <= end; k += ENC_BATCH) {
        float x[ENC_BATCH];
#pragma unroll
        for (int j = 0; j < ENC_BATCH; j++) x[j] = ldx(dout[(size_t)order[k + j] * C + c]);
#pragma unroll
        for (int j = 0; j < ENC_BATCH; j++) acc += x[j];
    }
    for (; k < end; k++) acc += ldx(dout[(size_t)order[k] * C + c]);
    row[c] = acc;
}

// The token groups go up from pinned host memory by cudaMemcpyAsync, queued behind the backward's
// kernels instead of waiting for them (a copy from pageable memory would); `groups_sent` marks
// when the last upload has left the buffer, so the next call can refill it.
static int32_t *groups_host;
static size_t groups_cap;  // int32s
static cudaEvent_t groups_sent;

template <class X>
static void encoder_backward(float *dwte, float *dwpe, const float *dout_, const int32_t *inp, const int32_t *inp_host,
                             int B, int T, int C) {
    cuda_init();
    int BT = B * T;
    if (!BT || !C) return;
    const X *dout = (const X *)dout_;
    encoder_backward_wpe_kernel<X><<<cdiv((size_t)T * C, 256), 256>>>(dwpe, dout, B, T, C);
    LAUNCH_CHECK("encoder_backward (wpe) B=%d T=%d C=%d", B, T, C);
    // group positions by token on the host: ids (BT) are small next to the activations. The model
    // passes its host copy; without one they are read back, which waits for the queued kernels.
    int32_t *down = NULL;
    const int32_t *ids = inp_host;
    if (!ids) {
        ids = down = (int32_t *)xmalloc((size_t)BT * 4);
        CUDA_CHECK(cudaMemcpy(down, inp, (size_t)BT * 4, cudaMemcpyDeviceToHost), "encoder_backward: download ids B=%d T=%d", B, T);
    }
    int32_t mx = 0;
    for (int i = 0; i < BT; i++) {
        if (ids[i] < 0) fatal("cuda encoder_backward: token id %d at position %d is negative", ids[i], i);
        if (ids[i] > mx) mx = ids[i];
    }
    int32_t *count = (int32_t *)xcalloc((size_t)mx + 2, 4);
    for (int i = 0; i < BT; i++) count[ids[i] + 1]++;
    int nu = 0;  // distinct tokens
    for (int32_t v = 0; v <= mx; v++) if (count[v + 1]) nu++;
    // pinned buffer: tok[nu] | start[nu+1] | order[BT], once the last upload from it is done
    size_t n = (size_t)2 * nu + 1 + BT, bytes = n * 4;
    if (groups_sent) CUDA_CHECK(cudaEventSynchronize(groups_sent), "encoder_backward: the last token groups' upload");
    else CUDA_CHECK(cudaEventCreate(&groups_sent), "encoder_backward: event");
    if (n > groups_cap) {
        if (groups_host) CUDA_CHECK(cudaFreeHost(groups_host), "encoder_backward: free pinned token groups");
        groups_cap = n + n / 4;
        CUDA_CHECK(cudaMallocHost((void **)&groups_host, groups_cap * 4), "encoder_backward: %zu bytes of pinned host memory",
                   groups_cap * 4);
    }
    int32_t *tok = groups_host, *start = tok + nu, *order = start + nu + 1;
    int u = 0, at = 0;
    int32_t *slot_of = (int32_t *)xmalloc(((size_t)mx + 1) * 4);
    for (int32_t v = 0; v <= mx; v++)
        if (count[v + 1]) { tok[u] = v; start[u] = at; slot_of[v] = at; at += count[v + 1]; u++; }
    start[nu] = at;
    for (int i = 0; i < BT; i++) order[slot_of[ids[i]]++] = i;
    free(down); free(count); free(slot_of);
    int32_t *d = (int32_t *)cuda_scratch(2, bytes);
    CUDA_CHECK(cudaMemcpyAsync(d, groups_host, bytes, cudaMemcpyHostToDevice, 0), "encoder_backward: upload token groups B=%d T=%d", B, T);
    CUDA_CHECK(cudaEventRecord(groups_sent, 0), "encoder_backward: event");
    dim3 grid(nu, cdiv(C, 128));
    encoder_backward_wte_kernel<X><<<grid, 128>>>(dwte, dout, d, d + nu, d + 2 * nu + 1, C);
    LAUNCH_CHECK("encoder_backward (wte) B=%d T=%d C=%d distinct tokens=%d", B, T, C, nu);
}

// ---- GELU (tanh approximation) ----

#define GELU_SCALE 0.7978845608028654f  // sqrt(2/pi)

__device__ __forceinline__ float gelu1(float x) {
    return 0.5f * x * (1.0f + tanhf(GELU_SCALE * (x + 0.044715f * x * x * x)));
}
__device__ __forceinline__ float gelu_grad1(float x) {
    float th = tanhf(GELU_SCALE * (x + 0.044715f * x * x * x));
    return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
}

// One thread per element, or per 16 bytes with VEC (every pointer 16-byte aligned, n a multiple).
template <class X, bool VEC> __global__ void gelu_forward_kernel(X *out, const X *inp, size_t n) {
    constexpr int V = VEC ? Vec<X>::N : 1;
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (i >= n) return;
    if (VEC) {
        float x[Vec<X>::N];
        load_vec<X>(x, inp + i);
#pragma unroll
        for (int k = 0; k < Vec<X>::N; k++) x[k] = gelu1(x[k]);
        store_vec<X>(out + i, x);
    } else {
        out[i] = stx<X>(gelu1(ldx(inp[i])));
    }
}
// dinp = gelu'(inp) * dout, overwritten (dinp may be dout: each thread reads its elements first)
template <class X, bool VEC> __global__ void gelu_backward_kernel(X *dinp, const X *inp, const X *dout, size_t n) {
    constexpr int V = VEC ? Vec<X>::N : 1;
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (i >= n) return;
    if (VEC) {
        float x[Vec<X>::N], d[Vec<X>::N];
        load_vec<X>(x, inp + i); load_vec<X>(d, dout + i);
#pragma unroll
        for (int k = 0; k < Vec<X>::N; k++) d[k] *= gelu_grad1(x[k]);
        store_vec<X>(dinp + i, d);
    } else {
        dinp[i] = stx<X>(gelu_grad1(ldx(inp[i])) * ldx(dout[i]));
    }
}

// The GELU passes of matmul.cu's fused MLP ops where cuBLASLt's epilogues cannot run them
// (kernels/cuda/common.cuh).
template <class X> void cuda_gelu_forward(X *out, const X *inp, size_t n) {
    cuda_init();
    if (!n) return;
    constexpr size_t V = Vec<X>::N;
    if (n % V == 0 && aligned16(out) && aligned16(inp))
        gelu_forward_kernel<X, true><<<cdiv(n / V, 256), 256>>>(out, inp, n);
    else
        gelu_forward_kernel<X, false><<<cdiv(n, 256), 256>>>(out, inp, n);
    LAUNCH_CHECK("gelu_forward n=%zu", n);
}
template <class X> void cuda_gelu_backward(X *dinp, const X *inp, const X *dout, size_t n) {
    cuda_init();
    if (!n) return;
    constexpr size_t V = Vec<X>::N;
    if (n % V == 0 && aligned16(dinp) && aligned16(inp) && aligned16(dout))
        gelu_backward_kernel<X, true><<<cdiv(n / V, 256), 256>>>(dinp, inp, dout, n);
    else
        gelu_backward_kernel<X, false><<<cdiv(n, 256), 256>>>(dinp, inp, dout, n);
    LAUNCH_CHECK("gelu_backward n=%zu", n);
}
template void cuda_gelu_forward<float>(float *, const float *, size_t);
template void cuda_gelu_forward<bf16>(bf16 *, const bf16 *, size_t);
template void cuda_gelu_backward<float>(float *, const float *, const float *, size_t);
template void cuda_gelu_backward<bf16>(bf16 *, const bf16 *, const bf16 *, size_t);

// ---- residual ----

template <class X, bool VEC> __global__ void residual_forward_kernel(X *out, const X *a, const X *b, size_t n) {
    constexpr int V = VEC ? Vec<X>::N : 1;
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (i >= n) return;
    if (VEC) {
        float x[Vec<X>::N], y[Vec<X>::N];
        load_vec<X>(x, a + i); load_vec<X>(y, b + i);
#pragma unroll
        for (int k = 0; k < Vec<X>::N; k++) x[k] += y[k];
        store_vec<X>(out + i, x);
    } else {
        out[i] = stx<X>(ldx(a[i]) + ldx(b[i]));
    }
}
template <class X> static void residual_forward(float *out, const float *a, const float *b, size_t n) {
    cuda_init();
    if (!n) return;
    constexpr size_t V = Vec<X>::N;
    if (n % V == 0 && aligned16(out) && aligned16(a) && aligned16(b))
        residual_forward_kernel<X, true><<<cdiv(n / V, 256), 256>>>((X *)out, (const X *)a, (const X *)b, n);
    else
        residual_forward_kernel<X, false><<<cdiv(n, 256), 256>>>((X *)out, (const X *)a, (const X *)b, n);
    LAUNCH_CHECK("residual_forward n=%zu", n);
}

// ---- optimizer ----

// Fixed chunks, each summed in double by one block in a fixed tree; the host adds the chunks in
// order. The grid depends on n only, so the result has the same bits every run.
#define SUMSQ_CHUNK 16384
#define SUMSQ_THREADS 256
__global__ void sumsq_kernel(double *part, const float *g, size_t n) {
    __shared__ double sh[SUMSQ_THREADS / 32];
    size_t i0 = (size_t)blockIdx.x * SUMSQ_CHUNK, i1 = i0 + SUMSQ_CHUNK < n ? i0 + SUMSQ_CHUNK : n;
    double s = 0.0;
    for (size_t i = i0 + threadIdx.x; i < i1; i += SUMSQ_THREADS) s += (double)g[i] * g[i];
    s = warp_sum_d(s);
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int w = 0; w < SUMSQ_THREADS / 32; w++) t += sh[w];
        part[blockIdx.x] = t;
    }
}

static double sumsq(const float *g, size_t n) {
    cuda_init();
    if (!n) return 0.0;
    size_t nb = (n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
    double *part = (double *)cuda_scratch(3, nb * sizeof(double));
    sumsq_kernel<<<(unsigned)nb, SUMSQ_THREADS>>>(part, g, n);
    LAUNCH_CHECK("sumsq n=%zu", n);
    double *h = (double *)xmalloc(nb * sizeof *h);
    CUDA_CHECK(cudaMemcpy(h, part, nb * sizeof *h, cudaMemcpyDeviceToHost), "sumsq n=%zu (download partial sums)", n);
    double total = 0.0;
    for (size_t i = 0; i < nb; i++) total += h[i];
    free(h);
    return total;
}

// ---- the compute copy of the master weights (kernels/ops.h round_params) ----

// A 32-bit mix of (index, fp32 bits): the rounding's random bits, a pure function of the weight.
__device__ __forceinline__ unsigned round_hash(size_t i, unsigned bits) {
    unsigned h = (unsigned)i * 0x9E3779B1u ^ (unsigned)(i >> 32) * 0x85EBCA77u ^ bits;
    h ^= h >> 16; h *= 0x85EBCA6Bu; h ^= h >> 13; h *= 0xC2B2AE35u; h ^= h >> 16;
    return h;
}
// Stochastic rounding to bf16: add 16 random bits below the kept mantissa, then truncate, so a
// value rounds away from zero with probability (dropped bits) / 2^16 and is unbiased on average.
// Inf and NaN keep their class; a carry into the infinity exponent keeps the truncated value.
__device__ __forceinline__ unsigned short round_param(size_t i, float f) {
    unsigned u = __float_as_uint(f);
    if ((u & 0x7f800000u) == 0x7f800000u) return __bfloat16_as_ushort(__float2bfloat16_rn(f));
    unsigned r = u + (round_hash(i, u) & 0xffffu);
    if ((r & 0x7f800000u) == 0x7f800000u) r = u;
    return (unsigned short)(r >> 16);
}
// Weight i of the compute copy from its master value f: rounded for bf16, copied for fp32.
template <class X> __device__ __forceinline__ void put_param(X *dst, size_t i, float f) {
    if constexpr (sizeof(X) == 4) dst[i] = f;
    else dst[i] = __ushort_as_bfloat16(round_param(i, f));
}
// Weights i .. i+3 at once: an 8-byte store for bf16 (dst + i 8-byte aligned), 16 for fp32.
template <class X> __device__ __forceinline__ void put_params4(X *dst, size_t i, float4 f) {
    if constexpr (sizeof(X) == 4) {
        *(float4 *)(dst + i) = f;
    } else {
        uint2 o;
        o.x = round_param(i, f.x) | (unsigned)round_param(i + 1, f.y) << 16;
        o.y = round_param(i + 2, f.z) | (unsigned)round_param(i + 3, f.w) << 16;
        *(uint2 *)(dst + i) = o;
    }
}
// With VEC four weights a thread, a 16-byte load and an 8-byte store (src 16-byte and dst 8-byte
// aligned): one 4-byte load a thread keeps too few bytes in flight to fill the memory pipe (the
// scalar kernel ran at 1.7x the copy floor in run 7); the last n % 4 go one by one.
template <bool VEC> __global__ void round_params_kernel(bf16 *dst, const float *src, size_t n) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * (VEC ? 4 : 1);
    if (VEC && i + 4 <= n) put_params4(dst, i, *(const float4 *)(src + i));
    else for (size_t e = min(i + (VEC ? 4 : 1), n); i < e; i++) put_param(dst, i, src[i]);
}

// ---- AdamW (kernels/ops.h adamw), with the compute copy refreshed in the same pass ----

struct AdamW { float beta1, beta2, eps, decay, step, bc2_sqrt, grad_scale; };
// torch.optim.AdamW's arithmetic for one weight, as kernels/cpu/adamw.c; returns the new weight.
__device__ __forceinline__ float adamw_one(float p, float g, float &m, float &v, const AdamW &a) {
    float gi = g * a.grad_scale;
    float pi = p * a.decay;
    m = m * a.beta1 + gi * (1.0f - a.beta1);
    v = v * a.beta2 + gi * gi * (1.0f - a.beta2);
    return pi - a.step * (m / (sqrtf(v) / a.bc2_sqrt + a.eps));
}
// VEC: four weights a thread, 16-byte loads and stores (p, g, m, v 16-byte aligned, px + at 8 for
// bf16); the last n % 4 one by one. px (may be null): the compute copy, weight at + i of it from
// the new p[i], the same bits as round_params over the whole buffer afterwards (the hash takes
// the global index), without reading the master back.
template <class X, bool VEC>
__global__ void adamw_kernel(float *p, const float *g, float *m, float *v, size_t n, AdamW a, X *px, size_t at) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * (VEC ? 4 : 1);
    if (VEC && i + 4 <= n) {
        float4 pp = *(const float4 *)(p + i), gg = *(const float4 *)(g + i);
        float4 mm = *(const float4 *)(m + i), vv = *(const float4 *)(v + i);
        pp.x = adamw_one(pp.x, gg.x, mm.x, vv.x, a);
        pp.y = adamw_one(pp.y, gg.y, mm.y, vv.y, a);
        pp.z = adamw_one(pp.z, gg.z, mm.z, vv.z, a);
        pp.w = adamw_one(pp.w, gg.w, mm.w, vv.w, a);
        *(float4 *)(p + i) = pp;
        *(float4 *)(m + i) = mm;
        *(float4 *)(v + i) = vv;
        if (px) put_params4(px, at + i, pp);
    } else {
        for (size_t e = min(i + (VEC ? 4 : 1), n); i < e; i++) {
            p[i] = adamw_one(p[i], g[i], m[i], v[i], a);
            if (px) put_param(px, at + i, p[i]);
        }
    }
}

template <class X>
static void adamw(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2, float eps,
                  float wd, int t, float grad_scale, float *px_, size_t at) {
    cuda_init();
    if (!n) return;
    double bc1 = 1.0 - pow(beta1, t), bc2 = 1.0 - pow(beta2, t);
    AdamW a = {beta1, beta2, eps, 1.0f - lr * wd, (float)(lr / bc1), (float)sqrt(bc2), grad_scale};
    X *px = (X *)px_;
    if (aligned16(p) && aligned16(g) && aligned16(m) && aligned16(v) &&
        (!px || (uintptr_t)(px + at) % (4 * sizeof(X)) == 0))
        adamw_kernel<X, true><<<cdiv(cdiv(n, 4), 256), 256>>>(p, g, m, v, n, a, px, at);
    else
        adamw_kernel<X, false><<<cdiv(n, 256), 256>>>(p, g, m, v, n, a, px, at);
    LAUNCH_CHECK("adamw n=%zu t=%d", n, t);
}

template <class X> static void round_params(float *dst, const float *src, size_t n) {
    if ((const void *)dst == (const void *)src || !n) return;
    cuda_init();
    if constexpr (sizeof(X) == 4) {
        CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, 0), "round_params n=%zu", n);
    } else {
        if (aligned16(src) && (uintptr_t)dst % 8 == 0)
            round_params_kernel<true><<<cdiv(cdiv(n, 4), 256), 256>>>((bf16 *)dst, src, n);
        else
            round_params_kernel<false><<<cdiv(n, 256), 256>>>((bf16 *)dst, src, n);
        LAUNCH_CHECK("round_params n=%zu", n);
    }
}

template <class X> void cu_ops_pointwise(Backend *b) {
    b->encoder_forward = encoder_forward<X>;
    b->encoder_backward = encoder_backward<X>;
    b->residual_forward = residual_forward<X>;
    b->sumsq = sumsq;
    b->adamw = adamw<X>;
    b->round_params = round_params<X>;
}
CU_OPS_INSTANTIATE(cu_ops_pointwise)
