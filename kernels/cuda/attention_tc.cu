// Causal self-attention on the tensor cores (TF32 in, fp32 accumulate), flash-style: no (T,T)
// matrix in memory, only the log-sum-exp per query row is kept (the same state, (B,NH,T), as the
// CUDA-core kernels of attention.cu, which remain the strict-fp32 path and the head-size-8 path).
//
// Work split: a block of 4 warps owns 64 rows (queries in the forward and dq kernels, keys in the
// dk/dv kernel); each warp owns 16 of them. The other operand streams through shared memory in
// tiles of 32 rows, loaded once per block and shared by the 4 warps. Every product is a warp-level
// WMMA (16x16x8 TF32) between shared-memory tiles and fragments held in registers:
//   forward   S = Q K^T (16 x 32), online softmax on S, O += P V (16 x HS)
//   dq        D_i = dO_i . O_i, then dP = dO V^T, dS = P (dP - D), dQ += dS K
//   dk, dv    S^T = K Q^T, dP^T = V dO^T, dV += P^T dO, dK += dS^T Q
// The softmax bookkeeping is done by the lanes: lane l owns row l/2 of its warp's 16 and half of
// the tile's columns (or half of the head's channels for O). Every reduction has a fixed order and
// every thread writes only its own rows, so results are deterministic without atomics.
//
// Why TF32 and not bf16 fragments: the tiles are widened to fp32 in shared memory whatever the
// compute type X of q, k, v, dO (fp32 or bf16: bf16 values are exact in TF32), which keeps one
// kernel for both tables, and P and dS, made in fp32 here, lose less in TF32 than in bf16. Why WMMA and not wgmma: one code path for sm_80 and sm_90; the tensor cores were
// not the bottleneck at 70x above the floor (docs/GPU_NOTES.md has the per-op table).
//
// qkv (B,T,3C): position (b,t) holds q | k | v, head h at offset h*hs in each; out, dout (B,T,C).
#include "kernels/cuda/common.cuh"
#include <math.h>
#include <mma.h>

using namespace nvcuda;

#define TC_ROWS 64                // rows a block owns: 4 warps x 16
#define TC_TILE 32                // rows of the streamed operand per shared-memory tile
#define TC_THREADS 128
#define TC_LDS (TC_TILE + 4)      // row stride of the per-warp score tiles (+4 floats against bank conflicts)

typedef wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> FragA;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> FragBRow;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major> FragBCol;
typedef wmma::fragment<wmma::accumulator, 16, 16, 8, float> FragC;

int cu_attention_tc_supported(int hs) { return hs == 16 || hs == 32 || hs == 64 || hs == 128; }

template <class F> __device__ __forceinline__ void to_tf32(F &f) {
#pragma unroll
    for (int t = 0; t < f.num_elements; t++) f.x[t] = wmma::__float_to_tf32(f.x[t]);
}

// The warp's 16 rows x HS of A (row stride lda, in shared memory) as HS/8 TF32 fragments.
template <int HS> __device__ __forceinline__ void load_a(FragA (&a)[HS / 8], const float *A, int lda) {
#pragma unroll
    for (int k = 0; k < HS / 8; k++) { wmma::load_matrix_sync(a[k], A + 8 * k, lda); to_tf32(a[k]); }
}

// C (16 x 32) = A (16 x HS, fragments) @ R^T, R being 32 rows x HS in shared memory (ldr):
// a product with the rows of K, Q, V or dO is a product with wmma's col_major B. Stored to C (ldc).
template <int HS>
__device__ __forceinline__ void mma_rows_t(float *C, int ldc, const FragA (&a)[HS / 8], const float *R, int ldr) {
#pragma unroll
    for (int n0 = 0; n0 < TC_TILE; n0 += 16) {
        FragC acc;
        wmma::fill_fragment(acc, 0.0f);
#pragma unroll
        for (int k = 0; k < HS / 8; k++) {
            FragBCol b;
            wmma::load_matrix_sync(b, R + (size_t)n0 * ldr + 8 * k, ldr);
            to_tf32(b);
            wmma::mma_sync(acc, a[k], b, acc);
        }
        wmma::store_matrix_sync(C + n0, acc, ldc, wmma::mem_row_major);
    }
}

// acc (16 x HS, HS/16 fragments) += P (16 x 32, shared, ldp) @ R (32 rows x HS, shared, ldr).
template <int HS>
__device__ __forceinline__ void mma_acc(FragC (&acc)[HS / 16], const float *P, int ldp, const float *R, int ldr) {
#pragma unroll
    for (int k = 0; k < TC_TILE / 8; k++) {
        FragA a;
        wmma::load_matrix_sync(a, P + 8 * k, ldp);
        to_tf32(a);
#pragma unroll
        for (int n = 0; n < HS / 16; n++) {
            FragBRow b;
            wmma::load_matrix_sync(b, R + (size_t)(8 * k) * ldr + 16 * n, ldr);
            to_tf32(b);
            wmma::mma_sync(acc[n], a, b, acc[n]);
        }
    }
}

// rows [r0, r0 + n) of one head's HS channels of a row-major tensor of X (row stride `stride`
// elements) into fp32 shared memory with row stride ld; rows past T are zeros. Threads `tid` of
// `nthreads`. VEC: 16-byte loads (every row start 16-byte aligned, which the launch checks); else
// one element at a time. A template parameter, not a flag: both paths in one kernel cost ~80
// registers per thread.
template <int HS, bool VEC, class X>
__device__ __forceinline__ void load_rows(float *dst, int ld, const X *src, size_t stride, int r0, int n, int T,
                                          int tid, int nthreads) {
    if (VEC) {
        constexpr int V = Vec<X>::N;
        for (int e = tid; e < n * (HS / V); e += nthreads) {
            int r = e / (HS / V), d = V * (e % (HS / V));
            float f[V];
            if (r0 + r < T) load_vec<X>(f, src + (size_t)(r0 + r) * stride + d);
            else {
#pragma unroll
                for (int k = 0; k < V; k++) f[k] = 0.0f;
            }
#pragma unroll
            for (int k = 0; k < V; k += 4) *(float4 *)(dst + r * ld + d + k) = make_float4(f[k], f[k + 1], f[k + 2], f[k + 3]);
        }
    } else {
        for (int e = tid; e < n * HS; e += nthreads) {
            int r = e / HS, d = e % HS;
            dst[r * ld + d] = r0 + r < T ? ldx(src[(size_t)(r0 + r) * stride + d]) : 0.0f;
        }
    }
}

// ---- forward ----
// grid (T/64, NH, B), 128 threads. Shared: K, V tiles (32 x LD each); per warp a score tile
// (16 x TC_LDS) and a P.V tile (16 x LD), the latter also stages the warp's Q rows.
template <int HS> constexpr size_t fwd_smem() { return sizeof(float) * (2 * TC_TILE * (HS + 4) + 4 * 16 * (TC_LDS + HS + 4)); }

template <int HS, bool VEC, class X>
__global__ void __launch_bounds__(TC_THREADS) attention_forward_tc_kernel(X *out, float *lse, const X *qkv, int T, int C,
                                                                          int NH, float scale) {
    extern __shared__ __align__(128) float smem[];
    constexpr int LD = HS + 4;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, r = lane >> 1, half = lane & 1;
    float *Ks = smem, *Vs = Ks + TC_TILE * LD;
    float *Ss = Vs + TC_TILE * LD + warp * 16 * (TC_LDS + LD), *Os = Ss + 16 * TC_LDS;
    int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * TC_ROWS, wq0 = q0 + 16 * warp, i = wq0 + r;
    size_t C3 = 3 * (size_t)C;
    const X *base = qkv + (size_t)b * T * C3 + h * HS;

    load_rows<HS, VEC>(Os, LD, base, C3, wq0, 16, T, lane, 32);
    __syncwarp();
    FragA qf[HS / 8];
    load_a<HS>(qf, Os, LD);

    float o[HS / 2];  // this lane's half of its row of O, unnormalised
#pragma unroll
    for (int d = 0; d < HS / 2; d++) o[d] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    int last = min(T - 1, q0 + TC_ROWS - 1);
    for (int k0 = 0; k0 <= last; k0 += TC_TILE) {
        __syncthreads();  // every warp is done with the previous tile (and with Os as Q staging)
        load_rows<HS, VEC>(Ks, LD, base + C, C3, k0, TC_TILE, T, threadIdx.x, TC_THREADS);
        load_rows<HS, VEC>(Vs, LD, base + 2 * C, C3, k0, TC_TILE, T, threadIdx.x, TC_THREADS);
        __syncthreads();
        mma_rows_t<HS>(Ss, TC_LDS, qf, Ks, LD);
        __syncwarp();
        // online softmax over this lane's 16 columns; the partner lane (lane ^ 1) has the others
        float s[16], mt = -INFINITY;
#pragma unroll
        for (int c = 0; c < 16; c++) {
            int j = k0 + 16 * half + c;
            s[c] = (j <= i && i < T) ? Ss[r * TC_LDS + 16 * half + c] * scale : -INFINITY;
            mt = fmaxf(mt, s[c]);
        }
        mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 1));
        float mn = fmaxf(m, mt);
        float alpha = mn == -INFINITY ? 1.0f : expf(m - mn), ls = 0.0f;
#pragma unroll
        for (int c = 0; c < 16; c++) {
            float p = s[c] == -INFINITY ? 0.0f : expf(s[c] - mn);
            Ss[r * TC_LDS + 16 * half + c] = p;
            ls += p;
        }
        ls += __shfl_xor_sync(0xffffffffu, ls, 1);
        l = l * alpha + ls;
        m = mn;
#pragma unroll
        for (int d = 0; d < HS / 2; d++) o[d] *= alpha;
        __syncwarp();
        FragC pv[HS / 16];
#pragma unroll
        for (int n = 0; n < HS / 16; n++) wmma::fill_fragment(pv[n], 0.0f);
        mma_acc<HS>(pv, Ss, TC_LDS, Vs, LD);
#pragma unroll
        for (int n = 0; n < HS / 16; n++) wmma::store_matrix_sync(Os + 16 * n, pv[n], LD, wmma::mem_row_major);
        __syncwarp();
#pragma unroll
        for (int d = 0; d < HS / 2; d++) o[d] += Os[r * LD + (HS / 2) * half + d];
    }
    if (i >= T) return;
    float inv = 1.0f / l;
    X *y = out + ((size_t)b * T + i) * C + h * HS + (HS / 2) * half;
#pragma unroll
    for (int d = 0; d < HS / 2; d++) y[d] = stx<X>(o[d] * inv);
    if (half == 0) lse[((size_t)b * NH + h) * T + i] = m + logf(l);
}

// ---- backward: dq (and D, which the dk/dv kernel needs) ----
// grid (T/64, NH, B). D_i = dO_i . O_i first (each lane half a row, then its partner's half), then
// one pass over the key tiles: S = Q K^T, dP = dO V^T, dS = P (dP - D) scale, dQ += dS K.
// Shared: K, V tiles; per warp S and dP tiles (16 x TC_LDS each) and a 16 x LD staging area (Q,
// dO, then dQ on the way out).
template <int HS> constexpr size_t dq_smem() { return sizeof(float) * (2 * TC_TILE * (HS + 4) + 4 * 16 * (2 * TC_LDS + HS + 4)); }

template <int HS, bool VEC, class X>
__global__ void __launch_bounds__(TC_THREADS) attention_backward_dq_tc_kernel(X *dqkv, float *Dsum, const X *dout,
                                                                              const X *qkv, const X *out,
                                                                              const float *lse, int T, int C, int NH,
                                                                              float scale) {
    extern __shared__ __align__(128) float smem[];
    constexpr int LD = HS + 4;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, r = lane >> 1, half = lane & 1;
    float *Ks = smem, *Vs = Ks + TC_TILE * LD;
    float *Ss = Vs + TC_TILE * LD + warp * 16 * (2 * TC_LDS + LD), *Ps = Ss + 16 * TC_LDS, *Xs = Ps + 16 * TC_LDS;
    int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * TC_ROWS, wq0 = q0 + 16 * warp, i = wq0 + r;
    size_t C3 = 3 * (size_t)C;
    const X *base = qkv + (size_t)b * T * C3 + h * HS, *gbase = dout + (size_t)b * T * C + h * HS;

    FragA qf[HS / 8], gf[HS / 8];
    load_rows<HS, VEC>(Xs, LD, base, C3, wq0, 16, T, lane, 32);
    __syncwarp();
    load_a<HS>(qf, Xs, LD);
    __syncwarp();
    load_rows<HS, VEC>(Xs, LD, gbase, C, wq0, 16, T, lane, 32);
    __syncwarp();
    load_a<HS>(gf, Xs, LD);
    float li = 0.0f, D = 0.0f;
    if (i < T) {
        li = lse[((size_t)b * NH + h) * T + i];
        const X *o = out + ((size_t)b * T + i) * C + h * HS + (HS / 2) * half;
#pragma unroll
        for (int d = 0; d < HS / 2; d++) D += Xs[r * LD + (HS / 2) * half + d] * ldx(o[d]);
    }
    D += __shfl_xor_sync(0xffffffffu, D, 1);

    FragC acc[HS / 16];
#pragma unroll
    for (int n = 0; n < HS / 16; n++) wmma::fill_fragment(acc[n], 0.0f);
    int last = min(T - 1, q0 + TC_ROWS - 1);
    for (int k0 = 0; k0 <= last; k0 += TC_TILE) {
        __syncthreads();
        load_rows<HS, VEC>(Ks, LD, base + C, C3, k0, TC_TILE, T, threadIdx.x, TC_THREADS);
        load_rows<HS, VEC>(Vs, LD, base + 2 * C, C3, k0, TC_TILE, T, threadIdx.x, TC_THREADS);
        __syncthreads();
        mma_rows_t<HS>(Ss, TC_LDS, qf, Ks, LD);  // S = Q K^T
        mma_rows_t<HS>(Ps, TC_LDS, gf, Vs, LD);  // dP = dO V^T
        __syncwarp();
#pragma unroll
        for (int c = 0; c < 16; c++) {
            int j = k0 + 16 * half + c, at = r * TC_LDS + 16 * half + c;
            float p = (j <= i && i < T) ? expf(Ss[at] * scale - li) : 0.0f;
            Ss[at] = p * (Ps[at] - D) * scale;  // dS
        }
        __syncwarp();
        mma_acc<HS>(acc, Ss, TC_LDS, Ks, LD);  // dQ += dS K
    }
    __syncwarp();
#pragma unroll
    for (int n = 0; n < HS / 16; n++) wmma::store_matrix_sync(Xs + 16 * n, acc[n], LD, wmma::mem_row_major);
    __syncwarp();
    if (i >= T) return;
    if (half == 0) Dsum[((size_t)b * NH + h) * T + i] = D;
    X *dq = dqkv + ((size_t)b * T + i) * C3 + h * HS + (HS / 2) * half;
#pragma unroll
    for (int d = 0; d < HS / 2; d++) dq[d] = stx<X>(Xs[r * LD + (HS / 2) * half + d]);
}

// ---- backward: dk and dv ----
// grid (T/64, NH, B): the block owns keys [64 x, 64 x + 64) and streams the query rows i >= its
// first key. Shared: Q, dO tiles (32 x LD each), their lse and D; per warp P^T and dS^T tiles
// (16 x TC_LDS each), also the staging area for K, V and the results (needs 16 x LD).
template <int HS> __host__ __device__ constexpr int dkdv_warp_floats() { return 2 * 16 * TC_LDS > 16 * (HS + 4) ? 2 * 16 * TC_LDS : 16 * (HS + 4); }
template <int HS> constexpr size_t dkdv_smem() { return sizeof(float) * (2 * TC_TILE * (HS + 4) + 2 * TC_TILE + 4 * dkdv_warp_floats<HS>()); }

template <int HS, bool VEC, class X>
__global__ void __launch_bounds__(TC_THREADS) attention_backward_dkdv_tc_kernel(X *dqkv, const float *Dsum, const X *dout,
                                                                                const X *qkv, const float *lse, int T,
                                                                                int C, int NH, float scale) {
    extern __shared__ __align__(128) float smem[];
    constexpr int LD = HS + 4;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, r = lane >> 1, half = lane & 1;
    float *Qs = smem, *Gs = Qs + TC_TILE * LD, *Ls = Gs + TC_TILE * LD, *Dl = Ls + TC_TILE;
    float *Ws = Dl + TC_TILE + warp * dkdv_warp_floats<HS>(), *Pt = Ws, *St = Ws + 16 * TC_LDS;
    int b = blockIdx.z, h = blockIdx.y, k0b = blockIdx.x * TC_ROWS, wk0 = k0b + 16 * warp, j = wk0 + r;
    size_t C3 = 3 * (size_t)C;
    const X *base = qkv + (size_t)b * T * C3 + h * HS, *gbase = dout + (size_t)b * T * C + h * HS;
    const float *lrow = lse + ((size_t)b * NH + h) * T, *drow = Dsum + ((size_t)b * NH + h) * T;

    FragA kf[HS / 8], vf[HS / 8];
    load_rows<HS, VEC>(Ws, LD, base + C, C3, wk0, 16, T, lane, 32);
    __syncwarp();
    load_a<HS>(kf, Ws, LD);
    __syncwarp();
    load_rows<HS, VEC>(Ws, LD, base + 2 * C, C3, wk0, 16, T, lane, 32);
    __syncwarp();
    load_a<HS>(vf, Ws, LD);
    FragC dk[HS / 16], dv[HS / 16];
#pragma unroll
    for (int n = 0; n < HS / 16; n++) { wmma::fill_fragment(dk[n], 0.0f); wmma::fill_fragment(dv[n], 0.0f); }

    for (int i0 = k0b / TC_TILE * TC_TILE; i0 < T; i0 += TC_TILE) {
        __syncthreads();
        load_rows<HS, VEC>(Qs, LD, base, C3, i0, TC_TILE, T, threadIdx.x, TC_THREADS);
        load_rows<HS, VEC>(Gs, LD, gbase, C, i0, TC_TILE, T, threadIdx.x, TC_THREADS);
        for (int e = threadIdx.x; e < TC_TILE; e += TC_THREADS) {
            Ls[e] = i0 + e < T ? lrow[i0 + e] : 0.0f;
            Dl[e] = i0 + e < T ? drow[i0 + e] : 0.0f;
        }
        __syncthreads();
        mma_rows_t<HS>(St, TC_LDS, kf, Qs, LD);  // S^T = K Q^T
        mma_rows_t<HS>(Pt, TC_LDS, vf, Gs, LD);  // dP^T = V dO^T
        __syncwarp();
#pragma unroll
        for (int c = 0; c < 16; c++) {
            int q = 16 * half + c, i = i0 + q, at = r * TC_LDS + q;
            float p = (i >= j && i < T && j < T) ? expf(St[at] * scale - Ls[q]) : 0.0f;
            St[at] = p * (Pt[at] - Dl[q]) * scale;  // dS^T
            Pt[at] = p;                             // P^T
        }
        __syncwarp();
        mma_acc<HS>(dv, Pt, TC_LDS, Gs, LD);  // dV += P^T dO
        mma_acc<HS>(dk, St, TC_LDS, Qs, LD);  // dK += dS^T Q
    }
    // results out through the warp's staging area: dK, then dV
    for (int which = 0; which < 2; which++) {
        __syncwarp();
#pragma unroll
        for (int n = 0; n < HS / 16; n++)
            wmma::store_matrix_sync(Ws + 16 * n, which == 0 ? dk[n] : dv[n], LD, wmma::mem_row_major);
        __syncwarp();
        if (j < T) {
            X *dst = dqkv + ((size_t)b * T + j) * C3 + (1 + which) * C + h * HS + (HS / 2) * half;
#pragma unroll
            for (int d = 0; d < HS / 2; d++) dst[d] = stx<X>(Ws[r * LD + (HS / 2) * half + d]);
        }
    }
}

// ---- launches ----
// 16-byte loads need every row start of every tensor read 16-byte aligned
template <class X> static bool rows_aligned16(const X *p, int C) { return aligned16(p) && C * sizeof(X) % 16 == 0; }

template <int HS, bool VEC, class X>
static void forward_launch(X *out, float *lse, const X *qkv, int B, int T, int C, int NH, float scale) {
    dim3 grid(cdiv(T, TC_ROWS), NH, B);
    smem_require<attention_forward_tc_kernel<HS, VEC, X>>(fwd_smem<HS>(), "attention_forward (tensor cores)");
    attention_forward_tc_kernel<HS, VEC, X><<<grid, TC_THREADS, fwd_smem<HS>()>>>(out, lse, qkv, T, C, NH, scale);
}
template <int HS, class X>
static void forward_hs(X *out, float *lse, const X *qkv, int B, int T, int C, int NH, float scale) {
    if (rows_aligned16(qkv, C)) forward_launch<HS, true>(out, lse, qkv, B, T, C, NH, scale);
    else forward_launch<HS, false>(out, lse, qkv, B, T, C, NH, scale);
}

template <int HS, bool VEC, class X>
static void backward_launch(X *dqkv, float *Dsum, const X *dout, const X *qkv, const X *out, const float *lse, int B,
                            int T, int C, int NH, float scale) {
    dim3 grid(cdiv(T, TC_ROWS), NH, B);
    smem_require<attention_backward_dq_tc_kernel<HS, VEC, X>>(dq_smem<HS>(), "attention_backward dq (tensor cores)");
    attention_backward_dq_tc_kernel<HS, VEC, X><<<grid, TC_THREADS, dq_smem<HS>()>>>(dqkv, Dsum, dout, qkv, out, lse, T,
                                                                                      C, NH, scale);
    LAUNCH_CHECK("attention_backward (dq, tensor cores) B=%d T=%d C=%d NH=%d", B, T, C, NH);
    smem_require<attention_backward_dkdv_tc_kernel<HS, VEC, X>>(dkdv_smem<HS>(), "attention_backward dk/dv (tensor cores)");
    attention_backward_dkdv_tc_kernel<HS, VEC, X><<<grid, TC_THREADS, dkdv_smem<HS>()>>>(dqkv, Dsum, dout, qkv, lse, T,
                                                                                          C, NH, scale);
}
template <int HS, class X>
static void backward_hs(X *dqkv, float *Dsum, const X *dout, const X *qkv, const X *out, const float *lse, int B, int T,
                        int C, int NH, float scale) {
    if (rows_aligned16(qkv, C) && rows_aligned16(dout, C))
        backward_launch<HS, true>(dqkv, Dsum, dout, qkv, out, lse, B, T, C, NH, scale);
    else
        backward_launch<HS, false>(dqkv, Dsum, dout, qkv, out, lse, B, T, C, NH, scale);
}

template <class X> void cu_attention_tc_forward(X *out, float *lse, const X *qkv, int B, int T, int C, int NH) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    switch (hs) {
    case 16: forward_hs<16>(out, lse, qkv, B, T, C, NH, scale); break;
    case 32: forward_hs<32>(out, lse, qkv, B, T, C, NH, scale); break;
    case 64: forward_hs<64>(out, lse, qkv, B, T, C, NH, scale); break;
    case 128: forward_hs<128>(out, lse, qkv, B, T, C, NH, scale); break;
    default: fatal("cuda attention_forward (tensor cores): head size %d is not compiled in", hs);
    }
    LAUNCH_CHECK("attention_forward (tensor cores) B=%d T=%d C=%d NH=%d", B, T, C, NH);
}

template <class X>
void cu_attention_tc_backward(X *dqkv, float *Dsum, const X *dout, const X *qkv, const X *out, const float *lse, int B,
                              int T, int C, int NH) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    switch (hs) {
    case 16: backward_hs<16>(dqkv, Dsum, dout, qkv, out, lse, B, T, C, NH, scale); break;
    case 32: backward_hs<32>(dqkv, Dsum, dout, qkv, out, lse, B, T, C, NH, scale); break;
    case 64: backward_hs<64>(dqkv, Dsum, dout, qkv, out, lse, B, T, C, NH, scale); break;
    case 128: backward_hs<128>(dqkv, Dsum, dout, qkv, out, lse, B, T, C, NH, scale); break;
    default: fatal("cuda attention_backward (tensor cores): head size %d is not compiled in", hs);
    }
    LAUNCH_CHECK("attention_backward (dk/dv, tensor cores) B=%d T=%d C=%d NH=%d", B, T, C, NH);
}

template void cu_attention_tc_forward<float>(float *, float *, const float *, int, int, int, int);
template void cu_attention_tc_forward<bf16>(bf16 *, float *, const bf16 *, int, int, int, int);
template void cu_attention_tc_backward<float>(float *, float *, const float *, const float *, const float *,
                                              const float *, int, int, int, int);
template void cu_attention_tc_backward<bf16>(bf16 *, float *, const bf16 *, const bf16 *, const bf16 *, const float *,
                                             int, int, int, int);
