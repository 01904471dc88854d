// LayerNorm over the channel dim (eps 1e-5): one warp per row for the row-wise work; the weight
// and bias gradients are column sums over all rows, done in two deterministic stages (per-chunk
// partial sums, then the chunks added in order) so that no atomics decide the bits. Rows, weights
// and biases are in the compute type X; statistics, dw and db are fp32.
// The backward pass is one fused kernel (16-byte loads, the row's input gradient and the chunk's
// column sums from one read of dout and inp) where rows are 16-byte aligned: with the row and
// the column sums in registers where C fits them, else with the column sums in shared memory
// (where a warp's fit); else the split kernels (row kernel + column kernel).
// TRACELLM_CUDA_LAYERNORM=fused|shared|split chooses, so a card can time each.
#include "kernels/cuda/common.cuh"
#include <stdlib.h>
#include <string.h>
#include <type_traits>

#define LN_WARPS 8         // rows per block in the row-wise kernels
#define COL_ROWS 256       // rows per partial sum in the column reductions
#define FUSED_ROWS 32      // rows per block (and per partial sum) in the fused backward
#define LN_REG_VPL 4       // the register kernels' most vectors a lane: C <= 1024 in bf16, 512 in fp32
static_assert(FUSED_ROWS % LN_WARPS == 0, "the fused backward's warps take the same number of rows");

// The register kernels take a lane's vectors of the row (VPL) as a template argument: run(VPL) as
// a std::integral_constant for a row of C channels, C <= 32 LN_REG_VPL Vec<X>::N.
template <class X, class F> static void with_vpl(int C, F &&run) {
    switch ((int)cdiv(C / Vec<X>::N, 32)) {
    case 1: return run(std::integral_constant<int, 1>{});
    case 2: return run(std::integral_constant<int, 2>{});
    case 3: return run(std::integral_constant<int, 3>{});
    default: return run(std::integral_constant<int, LN_REG_VPL>{});
    }
}

// out (N,C), mean (N,), rstd (N,); fp32 statistics, two passes over the row (mean, then the
// centred variance), as the CPU backend does; the second and third reads hit L1. VEC: 16-byte
// loads and stores (C a multiple of Vec<X>::N, every pointer 16-byte aligned). RES: the row is
// first made as ra + rb, rounded to X and stored to `inp` (the residual add fused in: its output
// is written once and read back from L1 by the lane that wrote it).
template <class X, bool VEC, bool RES>
__global__ void layernorm_forward_kernel(X *out, float *mean, float *rstd, X *inp, const X *w, const X *b, int N, int C,
                                         const X *ra, const X *rb) {
    constexpr int VN = VEC ? Vec<X>::N : 1;
    int row = blockIdx.x * LN_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= N) return;
    size_t r0 = (size_t)row * C;
    X *x = inp + r0, *o = out + r0;
    float xf[VN], s = 0.0f;
    for (int i = lane * VN; i < C; i += 32 * VN) {
        if constexpr (RES) {
            float yf[VN];
            if constexpr (VEC) { load_vec<X>(xf, ra + r0 + i); load_vec<X>(yf, rb + r0 + i); }
            else { xf[0] = ldx(ra[r0 + i]); yf[0] = ldx(rb[r0 + i]); }
#pragma unroll
            for (int k = 0; k < VN; k++) xf[k] = ldx(stx<X>(xf[k] + yf[k]));  // what residual_forward stores
            if constexpr (VEC) store_vec<X>(x + i, xf);
            else x[i] = stx<X>(xf[0]);
        } else {
            if constexpr (VEC) load_vec<X>(xf, x + i);
            else xf[0] = ldx(x[i]);
        }
#pragma unroll
        for (int k = 0; k < VN; k++) s += xf[k];
    }
    float m = warp_sum(s) / C;
    float v = 0.0f;
    for (int i = lane * VN; i < C; i += 32 * VN) {
        if constexpr (VEC) load_vec<X>(xf, x + i);
        else xf[0] = ldx(x[i]);
#pragma unroll
        for (int k = 0; k < VN; k++) { float d = xf[k] - m; v += d * d; }
    }
    float r = 1.0f / sqrtf(warp_sum(v) / C + 1e-5f);
    for (int i = lane * VN; i < C; i += 32 * VN) {
        float wf[VN], bf[VN];
        if constexpr (VEC) { load_vec<X>(xf, x + i); load_vec<X>(wf, w + i); load_vec<X>(bf, b + i); }
        else { xf[0] = ldx(x[i]); wf[0] = ldx(w[i]); bf[0] = ldx(b[i]); }
#pragma unroll
        for (int k = 0; k < VN; k++) xf[k] = (xf[k] - m) * r * wf[k] + bf[k];
        if constexpr (VEC) store_vec<X>(o + i, xf);
        else o[i] = stx<X>(xf[0]);
    }
    if (lane == 0) { mean[row] = m; rstd[row] = r; }
}

// The same as the kernel above with VEC, for C <= 32 VPL Vec<X>::N (d12 and d24, C 768 and 1024, in
// bf16): a lane's VPL vectors of the row are loaded together into registers, every load of the
// row in flight at once, and the three passes read them there. (The loop above leaves the second
// and third reads to L1, and ptxas, reusing one register pair for each vector, issues the first
// pass's loads one vector after another.) The same sums in the same order: the same bits.
template <class X, bool RES, int VPL>
__global__ void layernorm_forward_reg_kernel(X *out, float *mean, float *rstd, X *inp, const X *w, const X *b, int N,
                                             int C, const X *ra, const X *rb) {
    constexpr int VN = Vec<X>::N;
    int row = blockIdx.x * LN_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31, nv = C / VN;
    if (row >= N) return;
    size_t r0 = (size_t)row * C;
    X *x = inp + r0, *o = out + r0;
    float4 pa[VPL] = {}, pb[VPL] = {};  // (set where v < nv)
#pragma unroll
    for (int j = 0; j < VPL; j++) {
        int v = lane + 32 * j;
        if (v < nv) {
            if constexpr (RES) {
                pa[j] = *(const float4 *)(ra + r0 + v * VN);
                pb[j] = *(const float4 *)(rb + r0 + v * VN);
            } else {
                pa[j] = *(const float4 *)(x + v * VN);
            }
        }
    }
    float xf[VPL][VN], s = 0.0f;
#pragma unroll
    for (int j = 0; j < VPL; j++) {
        int v = lane + 32 * j;
        if (v >= nv) continue;
        unpack_vec<X>(xf[j], pa[j]);
        if constexpr (RES) {
            float yf[VN];
            unpack_vec<X>(yf, pb[j]);
#pragma unroll
            for (int k = 0; k < VN; k++) xf[j][k] = ldx(stx<X>(xf[j][k] + yf[k]));  // what residual_forward stores
            store_vec<X>(x + v * VN, xf[j]);
        }
#pragma unroll
        for (int k = 0; k < VN; k++) s += xf[j][k];
    }
    float m = warp_sum(s) / C;
    float var = 0.0f;
#pragma unroll
    for (int j = 0; j < VPL; j++)
        if (lane + 32 * j < nv)
#pragma unroll
            for (int k = 0; k < VN; k++) { float d = xf[j][k] - m; var += d * d; }
    float r = 1.0f / sqrtf(warp_sum(var) / C + 1e-5f);
#pragma unroll
    for (int j = 0; j < VPL; j++) {
        int v = lane + 32 * j;
        if (v >= nv) continue;
        float wf[VN], bf[VN];
        load_vec<X>(wf, w + v * VN);
        load_vec<X>(bf, b + v * VN);
#pragma unroll
        for (int k = 0; k < VN; k++) xf[j][k] = (xf[j][k] - m) * r * wf[k] + bf[k];
        store_vec<X>(o + v * VN, xf[j]);
    }
    if (lane == 0) { mean[row] = m; rstd[row] = r; }
}

template <class X, bool RES>
static void layernorm_forward_launch(X *out, float *mean, float *rstd, X *inp, const X *w, const X *b, int N, int C,
                                     const X *ra, const X *rb) {
    cuda_init();
    if (N <= 0) return;
    bool vec = C % Vec<X>::N == 0 && aligned16(out) && aligned16(inp) && aligned16(w) && aligned16(b) &&
               (!RES || (aligned16(ra) && aligned16(rb)));
    if (vec && C <= 32 * LN_REG_VPL * Vec<X>::N)
        with_vpl<X>(C, [&](auto vpl) {
            constexpr int VPL = decltype(vpl)::value;
            layernorm_forward_reg_kernel<X, RES, VPL><<<cdiv(N, LN_WARPS), 32 * LN_WARPS>>>(out, mean, rstd, inp, w, b, N,
                                                                                           C, ra, rb);
        });
    else if (vec)
        layernorm_forward_kernel<X, true, RES><<<cdiv(N, LN_WARPS), 32 * LN_WARPS>>>(out, mean, rstd, inp, w, b, N, C, ra, rb);
    else
        layernorm_forward_kernel<X, false, RES><<<cdiv(N, LN_WARPS), 32 * LN_WARPS>>>(out, mean, rstd, inp, w, b, N, C, ra, rb);
    LAUNCH_CHECK("%s N=%d C=%d", RES ? "residual_layernorm_forward" : "layernorm_forward", N, C);
}

template <class X>
static void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                              int N, int C) {
    layernorm_forward_launch<X, false>((X *)out, mean, rstd, (X *)inp, (const X *)w, (const X *)b, N, C, nullptr,
                                       nullptr);
}

template <class X>
static void residual_layernorm_forward(float *res, float *out, float *mean, float *rstd, const float *a, const float *b,
                                       const float *w, const float *bias, int N, int C) {
    layernorm_forward_launch<X, true>((X *)out, mean, rstd, (X *)res, (const X *)w, (const X *)bias, N, C, (const X *)a,
                                      (const X *)b);
}

// dinp (N,C) += the row-coupled gradient; one warp per row.
template <class X>
__global__ void layernorm_backward_dinp_kernel(X *dinp, const X *dout, const X *inp, const X *w, const float *mean,
                                               const float *rstd, int N, int C) {
    int row = blockIdx.x * LN_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= N) return;
    const X *x = inp + (size_t)row * C, *d = dout + (size_t)row * C;
    float m = mean[row], s = rstd[row];
    float dmean = 0.0f, dnorm_mean = 0.0f;
    for (int i = lane; i < C; i += 32) {
        float norm = (ldx(x[i]) - m) * s, dn = ldx(w[i]) * ldx(d[i]);
        dmean += dn;
        dnorm_mean += dn * norm;
    }
    dmean = warp_sum(dmean) / C;
    dnorm_mean = warp_sum(dnorm_mean) / C;
    X *di = dinp + (size_t)row * C;
    for (int i = lane; i < C; i += 32) {
        float norm = (ldx(x[i]) - m) * s, dn = ldx(w[i]) * ldx(d[i]);
        di[i] = stx<X>(ldx(di[i]) + (dn - dmean - norm * dnorm_mean) * s);
    }
}

// Stage 1: block (32,8) covers 32 columns of COL_ROWS rows; partial sums of norm*dout and dout.
template <class X>
__global__ void layernorm_backward_dwdb_partial(float *pw, float *pb, const X *dout, const X *inp, const float *mean,
                                                const float *rstd, int N, int C) {
    __shared__ float sw[8][33], sb[8][33];
    int c = blockIdx.x * 32 + threadIdx.x, r0 = blockIdx.y * COL_ROWS;
    int r1 = r0 + COL_ROWS < N ? r0 + COL_ROWS : N;
    float aw = 0.0f, ab = 0.0f;
    if (c < C)
        for (int r = r0 + threadIdx.y; r < r1; r += 8) {
            float d = ldx(dout[(size_t)r * C + c]);
            aw += (ldx(inp[(size_t)r * C + c]) - mean[r]) * rstd[r] * d;
            ab += d;
        }
    sw[threadIdx.y][threadIdx.x] = aw;
    sb[threadIdx.y][threadIdx.x] = ab;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float tw = 0.0f, tb = 0.0f;
        for (int y = 0; y < 8; y++) { tw += sw[y][threadIdx.x]; tb += sb[y][threadIdx.x]; }
        pw[(size_t)blockIdx.y * C + c] = tw;
        pb[(size_t)blockIdx.y * C + c] = tb;
    }
}

// Stage 2: block (32,32) covers 32 columns; thread row y adds chunks y, y+32, ... and the 32
// sums are added in y order into dw / db (db may be null). Many chunks (the fused kernel makes
// N/32) cost a 32nd of the serial loads each.
__global__ void column_finish_kernel(float *dw, float *db, const float *pw, const float *pb, int R, int C) {
    __shared__ float sw[32][33], sb[32][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    float tw = 0.0f, tb = 0.0f;
    if (c < C)
        for (int r = threadIdx.y; r < R; r += 32) { tw += pw[(size_t)r * C + c]; if (db) tb += pb[(size_t)r * C + c]; }
    sw[threadIdx.y][threadIdx.x] = tw;
    sb[threadIdx.y][threadIdx.x] = tb;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        tw = tb = 0.0f;
        for (int y = 0; y < 32; y++) { tw += sw[y][threadIdx.x]; tb += sb[y][threadIdx.x]; }
        dw[c] += tw;
        if (db) db[c] += tb;
    }
}
static void column_finish(float *dw, float *db, const float *pw, const float *pb, int R, int C, const char *op,
                          int N) {
    column_finish_kernel<<<cdiv(C, 32), dim3(32, 32)>>>(dw, db, pw, pb, R, C);
    LAUNCH_CHECK("%s (column sums) N=%d C=%d", op, N, C);
}

// One 16-byte vector of a row, the fused kernels' arithmetic (both give the same bits through it).
// First pass: its share of the row's sums of w·dout and w·dout·norm, and of its columns' sums of
// norm·dout (cw) and dout (cb), element k at cw[k stride] (shared memory or registers).
template <int VN>
__device__ __forceinline__ void ln_bwd_sums(const float (&xf)[VN], const float (&df)[VN], const float (&wf)[VN], float m,
                                            float s, float &dmean, float &dnorm_mean, float *cw, float *cb, int stride) {
#pragma unroll
    for (int k = 0; k < VN; k++) {
        float norm = (xf[k] - m) * s, dn = wf[k] * df[k];
        dmean += dn;
        dnorm_mean += dn * norm;
        cw[k * stride] += norm * df[k];
        cb[k * stride] += df[k];
    }
}
// Second pass, the row's two means known: the vector's input gradient added into gf.
template <int VN>
__device__ __forceinline__ void ln_bwd_dinp(float (&gf)[VN], const float (&xf)[VN], const float (&df)[VN],
                                            const float (&wf)[VN], float m, float s, float dmean, float dnorm_mean) {
#pragma unroll
    for (int k = 0; k < VN; k++) {
        float norm = (xf[k] - m) * s, dn = wf[k] * df[k];
        gf[k] += (dn - dmean - norm * dnorm_mean) * s;
    }
}

// Fused: block (256) = LN_WARPS warps over FUSED_ROWS rows, warp q taking rows r0+q, r0+q+8, ...
// Each warp adds its rows' norm*dout and dout into its own fp32 columns in shared memory (lane l
// owns vectors l, l+32, ...; stored element-major, [k][vector], so a warp's accesses hit 32
// different banks); at the end the warps' columns are added in warp order into the block's
// partial sums pw/pb (R, C), which column_finish adds up in its fixed order. Fixed order
// everywhere: the same bits every run. Needs C % Vec<X>::N == 0 and 16-byte aligned rows.
template <class X>
__global__ void __launch_bounds__(32 * LN_WARPS)
    layernorm_backward_fused_kernel(X *dinp, float *pw, float *pb, const X *dout, const X *inp, const X *w,
                                    const float *mean, const float *rstd, int N, int C) {
    constexpr int VN = Vec<X>::N;
    extern __shared__ __align__(16) float ln_cols[];  // (LN_WARPS, 2, C): dw then db columns per warp
    int q = threadIdx.x >> 5, lane = threadIdx.x & 31, nv = C / VN;
    float *aw = ln_cols + (size_t)q * 2 * C, *ab = aw + C;
    for (int i = lane; i < 2 * C; i += 32) aw[i] = 0.0f;
    __syncwarp();
    int r0 = blockIdx.x * FUSED_ROWS, r1 = min(r0 + FUSED_ROWS, N);
    for (int r = r0 + q; r < r1; r += LN_WARPS) {
        const X *x = inp + (size_t)r * C, *d = dout + (size_t)r * C;
        float m = mean[r], s = rstd[r], dmean = 0.0f, dnorm_mean = 0.0f;
        for (int v = lane; v < nv; v += 32) {
            float xf[VN], df[VN], wf[VN];
            load_vec<X>(xf, x + v * VN);
            load_vec<X>(df, d + v * VN);
            load_vec<X>(wf, w + v * VN);
            ln_bwd_sums<VN>(xf, df, wf, m, s, dmean, dnorm_mean, aw + v, ab + v, nv);
        }
        dmean = warp_sum(dmean) / C;
        dnorm_mean = warp_sum(dnorm_mean) / C;
        X *di = dinp + (size_t)r * C;
        for (int v = lane; v < nv; v += 32) {  // the row again: an L1 hit
            float xf[VN], df[VN], wf[VN], gf[VN];
            load_vec<X>(xf, x + v * VN);
            load_vec<X>(df, d + v * VN);
            load_vec<X>(wf, w + v * VN);
            load_vec<X>(gf, di + v * VN);
            ln_bwd_dinp<VN>(gf, xf, df, wf, m, s, dmean, dnorm_mean);
            store_vec<X>(di + v * VN, gf);
        }
    }
    __syncthreads();
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        int i = (c % VN) * nv + c / VN;
        float tw = 0.0f, tb = 0.0f;
        for (int p = 0; p < LN_WARPS; p++) { tw += ln_cols[(size_t)p * 2 * C + i]; tb += ln_cols[(size_t)p * 2 * C + C + i]; }
        pw[(size_t)blockIdx.x * C + c] = tw;
        pb[(size_t)blockIdx.x * C + c] = tb;
    }
}

// The fused kernel with the row and the column sums in registers. Lane l owns vectors l, l+32,
// .. (VPL of them: C <= 32 VPL Vec<X>::N), every row of its warp, so its column sums need no
// shared memory until the end. A row's x, dout and dinp are all loaded before any arithmetic
// (kept packed, 4 registers a vector): the kernel above loads dinp only after the row's two warp
// sums and reads x and dout a second time (from L1 if its 48 KiB of columns a block left them
// there). The same rows in the same order, the same per-row arithmetic, and the warps' sums added
// in warp order into zeros as above: the same partial sums, so the same bits as that kernel.
template <class X, int VPL>
__global__ void __launch_bounds__(32 * LN_WARPS, 2)
    layernorm_backward_reg_kernel(X *dinp, float *pw, float *pb, const X *dout, const X *inp, const X *w,
                                  const float *mean, const float *rstd, int N, int C) {
    constexpr int VN = Vec<X>::N;
    extern __shared__ __align__(16) float ln_cols[];  // (2, C): the block's dw then db sums, [k][vector]
    int q = threadIdx.x >> 5, lane = threadIdx.x & 31, nv = C / VN;
    float aw[VPL][VN] = {}, ab[VPL][VN] = {};
    int r0 = blockIdx.x * FUSED_ROWS, r1 = min(r0 + FUSED_ROWS, N);
    // every warp takes FUSED_ROWS / LN_WARPS turns, past the last row too (no loads, no sums; the
    // same for the whole warp, so its shuffles see 32 lanes): a trip count the compiler knows, which
    // ptxas turns into fewer registers than a loop to r1 (at C = 1024, 8 bytes of spill instead of 48)
    for (int turn = 0; turn < FUSED_ROWS / LN_WARPS; turn++) {
        int r = r0 + q + turn * LN_WARPS;
        bool live = r < r1;
        const X *x = inp + (size_t)r * C, *d = dout + (size_t)r * C;
        X *di = dinp + (size_t)r * C;
        float4 xr[VPL] = {}, dr[VPL] = {}, gr[VPL] = {};  // (set where v < nv, as they are read)
#pragma unroll
        for (int j = 0; j < VPL; j++) {
            int v = lane + 32 * j;
            if (live && v < nv) {
                xr[j] = *(const float4 *)(x + v * VN);
                dr[j] = *(const float4 *)(d + v * VN);
                gr[j] = *(const float4 *)(di + v * VN);
            }
        }
        float m = live ? mean[r] : 0.0f, s = live ? rstd[r] : 0.0f, dmean = 0.0f, dnorm_mean = 0.0f;
#pragma unroll
        for (int j = 0; j < VPL; j++) {
            int v = lane + 32 * j;
            if (live && v < nv) {
                float xf[VN], df[VN], wf[VN];
                unpack_vec<X>(xf, xr[j]);
                unpack_vec<X>(df, dr[j]);
                load_vec<X>(wf, w + v * VN);
                ln_bwd_sums<VN>(xf, df, wf, m, s, dmean, dnorm_mean, aw[j], ab[j], 1);
            }
        }
        dmean = warp_sum(dmean) / C;
        dnorm_mean = warp_sum(dnorm_mean) / C;
#pragma unroll
        for (int j = 0; j < VPL; j++) {
            int v = lane + 32 * j;
            if (live && v < nv) {
                float xf[VN], df[VN], wf[VN], gf[VN];
                unpack_vec<X>(xf, xr[j]);
                unpack_vec<X>(df, dr[j]);
                unpack_vec<X>(gf, gr[j]);
                load_vec<X>(wf, w + v * VN);
                ln_bwd_dinp<VN>(gf, xf, df, wf, m, s, dmean, dnorm_mean);
                store_vec<X>(di + v * VN, gf);
            }
        }
    }
    for (int i = threadIdx.x; i < 2 * C; i += blockDim.x) ln_cols[i] = 0.0f;
    __syncthreads();
    for (int p = 0; p < LN_WARPS; p++) {  // warp p adds its sums: the order of the kernel above
        if (q == p) {
#pragma unroll
            for (int j = 0; j < VPL; j++) {
                int v = lane + 32 * j;
                if (v < nv) {
#pragma unroll
                    for (int k = 0; k < VN; k++) {
                        ln_cols[k * nv + v] += aw[j][k];
                        ln_cols[C + k * nv + v] += ab[j][k];
                    }
                }
            }
        }
        __syncthreads();
    }
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        int i = (c % VN) * nv + c / VN;
        pw[(size_t)blockIdx.x * C + c] = ln_cols[i];
        pb[(size_t)blockIdx.x * C + c] = ln_cols[C + i];
    }
}

// TRACELLM_CUDA_LAYERNORM / cuda_set_layernorm_backward (backend_cuda.h)
static int ln_backward_way = -1;
void cuda_set_layernorm_backward(int way) {
    if (way < CUDA_LAYERNORM_FUSED || way > CUDA_LAYERNORM_SPLIT) fatal("cuda_set_layernorm_backward: unknown way %d", way);
    ln_backward_way = way;
}

// Which kernel takes this call: a fused one where rows are 16-byte aligned (registers where C
// fits them, else shared memory, 48 KiB by default, more on request, where the card has it),
// else the split kernels; the fused ones only when not TRACELLM_CUDA_LAYERNORM=split.
enum { LN_BWD_REG, LN_BWD_SHARED, LN_BWD_SPLIT };
template <class X>
static int backward_kernel(const void *dinp, const void *dout, const void *inp, const void *w, int C, size_t smem) {
    static const char *const ways[] = {"fused", "shared", "split", NULL};  // CUDA_LAYERNORM_*
    if (ln_backward_way < 0) ln_backward_way = cuda_env_choice("TRACELLM_CUDA_LAYERNORM", ways);
    if (ln_backward_way == CUDA_LAYERNORM_SPLIT || C % Vec<X>::N || !aligned16(dinp) || !aligned16(dout) ||
        !aligned16(inp) || !aligned16(w))
        return LN_BWD_SPLIT;
    if (ln_backward_way == CUDA_LAYERNORM_FUSED && C <= 32 * LN_REG_VPL * Vec<X>::N) return LN_BWD_REG;
    return smem_opt_in<layernorm_backward_fused_kernel<X>>(smem, nullptr, "layernorm_backward (fused)") ? LN_BWD_SHARED
                                                                                                        : LN_BWD_SPLIT;
}

template <class X>
static void layernorm_backward(float *dinp_, float *dw, float *db, const float *dout_, const float *inp_,
                               const float *w, const float *mean, const float *rstd, int N, int C) {
    cuda_init();
    if (N <= 0) return;
    X *dinp = (X *)dinp_;
    const X *dout = (const X *)dout_, *inp = (const X *)inp_;
    size_t smem = (size_t)LN_WARPS * 2 * C * sizeof(float);
    int way = backward_kernel<X>(dinp, dout, inp, w, C, smem);
    if (way != LN_BWD_SPLIT) {
        int R = (int)cdiv(N, FUSED_ROWS);
        float *pw = (float *)cuda_scratch(0, (size_t)2 * R * C * sizeof(float)), *pb = pw + (size_t)R * C;
        if (way == LN_BWD_SHARED)
            layernorm_backward_fused_kernel<X><<<R, 32 * LN_WARPS, smem>>>(dinp, pw, pb, dout, inp, (const X *)w, mean,
                                                                           rstd, N, C);
        else {
            // (one 16-byte vector a lane: C <= 256 in bf16 .. LN_REG_VPL of them)
            with_vpl<X>(C, [&](auto vpl) {
                constexpr int VPL = decltype(vpl)::value;
                layernorm_backward_reg_kernel<X, VPL><<<R, 32 * LN_WARPS, 2 * C * sizeof(float)>>>(
                    dinp, pw, pb, dout, inp, (const X *)w, mean, rstd, N, C);
            });
        }
        LAUNCH_CHECK("layernorm_backward (fused, %s) N=%d C=%d", way == LN_BWD_SHARED ? "shared" : "registers", N, C);
        column_finish(dw, db, pw, pb, R, C, "layernorm_backward", N);
        return;
    }
    layernorm_backward_dinp_kernel<X><<<cdiv(N, LN_WARPS), 32 * LN_WARPS>>>(dinp, dout, inp, (const X *)w, mean, rstd, N, C);
    LAUNCH_CHECK("layernorm_backward (dinp) N=%d C=%d", N, C);
    int R = (int)cdiv(N, COL_ROWS);
    float *pw = (float *)cuda_scratch(0, (size_t)2 * R * C * sizeof(float)), *pb = pw + (size_t)R * C;
    dim3 grid(cdiv(C, 32), R), block(32, 8);
    layernorm_backward_dwdb_partial<X><<<grid, block>>>(pw, pb, dout, inp, mean, rstd, N, C);
    LAUNCH_CHECK("layernorm_backward (dw,db partial) N=%d C=%d", N, C);
    column_finish(dw, db, pw, pb, R, C, "layernorm_backward", N);
}

// ---- the column sum the matmul's bias gradient needs: dbias (OC,) += sum over rows of dout ----

// Block (32, 8) covers 32 VN columns of COL_ROWS rows: thread (x, y) adds rows y, y + 8, .. of
// its VN columns, then the 8 row lanes are added in order. With VEC a thread's VN columns come
// in one 16-byte load (VN = 8 in bf16), and four rows' loads are issued before they are added:
// a column's additions are the same in the same order as with one column and one row at a time
// (the fallback for unaligned rows has VN = 1), so the same bits, with 64 bytes in flight a
// thread instead of 2, which the memory system needs to stream at full rate.
template <class X, bool VEC> __global__ void colsum_partial_kernel(float *part, const X *dout, int N, int OC) {
    constexpr int VN = VEC ? Vec<X>::N : 1;
    __shared__ float s[8][32 * VN + 1];
    int c = (blockIdx.x * 32 + threadIdx.x) * VN, r0 = blockIdx.y * COL_ROWS;
    int r1 = r0 + COL_ROWS < N ? r0 + COL_ROWS : N;
    float a[VN];
#pragma unroll
    for (int k = 0; k < VN; k++) a[k] = 0.0f;
    auto load = [&](float(&x)[VN], int r) {
        if constexpr (VEC) load_vec<X>(x, dout + (size_t)r * OC + c);
        else x[0] = ldx(dout[(size_t)r * OC + c]);
    };
    if (c < OC) {
        int r = r0 + threadIdx.y;
        for (; r + 24 < r1; r += 32) {
            float x[4][VN];
#pragma unroll
            for (int u = 0; u < 4; u++) load(x[u], r + 8 * u);
#pragma unroll
            for (int u = 0; u < 4; u++)
#pragma unroll
                for (int k = 0; k < VN; k++) a[k] += x[u][k];
        }
        for (; r < r1; r += 8) {
            float x[VN];
            load(x, r);
#pragma unroll
            for (int k = 0; k < VN; k++) a[k] += x[k];
        }
    }
#pragma unroll
    for (int k = 0; k < VN; k++) s[threadIdx.y][threadIdx.x * VN + k] = a[k];
    __syncthreads();
    // thread y x adds up column 32 y + x of the block's 32 VN
    int col = threadIdx.y * 32 + threadIdx.x, cc = blockIdx.x * 32 * VN + col;
    if (col < 32 * VN && cc < OC) {
        float t = 0.0f;
        for (int y = 0; y < 8; y++) t += s[y][col];
        part[(size_t)blockIdx.y * OC + cc] = t;
    }
}

template <class X> void cuda_colsum_add(float *dbias, const X *dout, int N, int OC) {
    if (N <= 0 || OC <= 0) return;
    int R = (int)cdiv(N, COL_ROWS);
    float *part = (float *)cuda_scratch(0, (size_t)R * OC * sizeof(float));
    constexpr int VN = Vec<X>::N;
    if (OC % VN == 0 && aligned16(dout))
        colsum_partial_kernel<X, true><<<dim3(cdiv(OC, 32 * VN), R), dim3(32, 8)>>>(part, dout, N, OC);
    else
        colsum_partial_kernel<X, false><<<dim3(cdiv(OC, 32), R), dim3(32, 8)>>>(part, dout, N, OC);
    LAUNCH_CHECK("matmul_backward (dbias partial) N=%d OC=%d", N, OC);
    column_finish(dbias, nullptr, part, nullptr, R, OC, "matmul_backward (dbias)", N);
}
template void cuda_colsum_add<float>(float *, const float *, int, int);
template void cuda_colsum_add<bf16>(float *, const bf16 *, int, int);

template <class X> void cu_ops_layernorm(Backend *b) {
    b->layernorm_forward = layernorm_forward<X>;
    b->layernorm_backward = layernorm_backward<X>;
    b->residual_layernorm_forward = residual_layernorm_forward<X>;
}
CU_OPS_INSTANTIATE(cu_ops_layernorm)
