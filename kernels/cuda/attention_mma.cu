// Causal self-attention of the bf16 table on the tensor cores through mma.sync (m16n8k16: bf16
// operands, fp32 accumulate), flash-attention-2 style. Where attention_tc.cu (WMMA, TF32) must go
// through shared memory for the softmax, because a WMMA fragment's layout is unspecified, mma.sync's
// layout is documented: a thread holds rows g = lane/4 and g + 8, columns 2t and 2t + 1 (t = lane%4)
// of each 16 x 8 accumulator tile, which is also, two tiles side by side, the layout of a 16 x 16
// A operand. So the scores S stay in registers: the softmax is done where they land (a row's
// values live in the 4 threads of a quad, reduced with two shuffles), and P (or dS) is repacked to
// bf16 as the A operand of the next product without touching shared memory.
//
// Work split as in attention_tc.cu: a block of 4 warps owns 64 rows (queries in the forward and dq
// kernels, keys in the dk/dv kernel), 16 per warp (the forward with mma32: 128 rows, 32 a warp),
// held as A fragments in registers; the other operand streams through shared memory in tiles of
// KT rows, stored as they are in memory (rows of HS channels). B fragments come out of the tiles
// by ldmatrix: plain where the product runs over the tile's channels, .trans where it runs over
// the tile's rows (the hardware transposes 8 x 8 blocks on the way to the registers, so no
// transposed copy is ever written):
//   forward   S = Q K^T (K, plain), O += P V (V, trans)
//   dq        S = Q K^T, dP = dO V^T (V, plain), dS = P (dP - D), dQ += dS K (K, trans)
//   dk, dv    S^T = K Q^T (Q, plain), dP^T = V dO^T (dO, plain), dV += P^T dO (dO, trans),
//             dK += dS^T Q (Q, trans)
// The tiles stream through a ring of 2 (or 3) buffers, one barrier a tile: while a tile is used,
// the next ones stream into the others by cp.async, so the loads overlap the products.
// D_i = dO_i . O_i comes from a small kernel first. Row padding of 8 bf16 (16 bytes) puts the 8
// rows of each 8 x 8 block ldmatrix reads in different banks. Every thread writes only its own
// rows: deterministic without atomics. The exponentials are base 2 (scale folded with log2 e);
// the state stays the natural log-sum-exp, as in the other kernels.
//
// qkv (B,T,3C), out, dout (B,T,C): bf16; lse, D (B,NH,T): fp32. Head sizes 16, 32, 64, 128.
#include "kernels/cuda/common.cuh"
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <type_traits>

#define MM_THREADS 128  // 4 warps
#define MM_ROWS 64      // rows a block owns, 16 per warp

// ---- the warp-level product and the fragments ----

// d (16 x 8, fp32) += a (16 x 16, bf16) . b (16 x 8, bf16), every lane holding its part.
__device__ __forceinline__ void mma16816(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
#ifdef TRACELLM_CUDA_EMU
    emu_mma_m16n8k16_bf16(d, a, b);
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

__device__ __forceinline__ unsigned ld32(const bf16 *p) { return *(const unsigned *)p; }
// two floats as bf16 (round to nearest), the first in the low half
__device__ __forceinline__ unsigned pack2(float lo, float hi) {
    return (unsigned)__bfloat16_as_ushort(__float2bfloat16_rn(lo)) |
           (unsigned)__bfloat16_as_ushort(__float2bfloat16_rn(hi)) << 16;
}
// Four 8 x 8 bf16 blocks from shared memory in one warp instruction: lanes 8j .. 8j + 7 give the
// row addresses of block j (16-byte aligned). Register j of lane (g, t) gets block j's row g,
// columns 2t and 2t + 1, or with TRANS its column g, rows 2t and 2t + 1: exactly an mma B
// fragment's pairs, so one instruction makes the B fragments of two neighbouring n8 blocks.
template <bool TRANS> __device__ __forceinline__ void ldsm_x4(unsigned (&r)[4], const bf16 *row) {
#ifdef TRACELLM_CUDA_EMU
    emu_ldmatrix_x4(r, row, TRANS);
#else
    unsigned a = (unsigned)__cvta_generic_to_shared(row);
    if constexpr (TRANS)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a) : "memory");
    else
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a) : "memory");
#endif
}
// B (16 x 8, k x n) of a product over a tile's channels, for the n8 blocks at tile rows n .. n + 7
// (b0) and n + 8 .. n + 15 (b1), channels k .. k + 15 (p points at row n, channel k; ld elements
// a row): blocks rows 0-7 at k, at k + 8, then rows 8-15 at k, at k + 8.
__device__ __forceinline__ void frag_b2(unsigned (&b0)[2], unsigned (&b1)[2], const bf16 *p, int ld, int lane) {
    unsigned r[4];
    ldsm_x4<false>(r, p + ((lane & 7) + 8 * (lane >> 4)) * ld + 8 * ((lane >> 3) & 1));
    b0[0] = r[0]; b0[1] = r[1]; b1[0] = r[2]; b1[1] = r[3];
}
// B (16 x 8, k x n) of a product over a tile's rows: rows k .. k + 15 at channels n .. n + 7 (b0)
// and n + 8 .. n + 15 (b1), transposed by ldmatrix (p points at row k, channel n): blocks rows
// 0-7, 8-15 at channel n, then at n + 8.
__device__ __forceinline__ void frag_b2_trans(unsigned (&b0)[2], unsigned (&b1)[2], const bf16 *p, int ld, int lane) {
    unsigned r[4];
    ldsm_x4<true>(r, p + (lane & 15) * ld + 8 * (lane >> 4));
    b0[0] = r[0]; b0[1] = r[1]; b1[0] = r[2]; b1[1] = r[3];
}
// A fragments of the warp's 16 rows x HS channels straight from global memory (row stride
// `stride`); rows at or past T are zeros.
template <int HS>
__device__ __forceinline__ void rows_a(unsigned (&a)[HS / 16][4], const bf16 *src, size_t stride, int r0, int T, int g,
                                       int t) {
#pragma unroll
    for (int kk = 0; kk < HS / 16; kk++) {
        int c = 16 * kk + 2 * t;
        bool lo = r0 + g < T, hi = r0 + g + 8 < T;
        a[kk][0] = lo ? ld32(src + (size_t)(r0 + g) * stride + c) : 0u;
        a[kk][1] = hi ? ld32(src + (size_t)(r0 + g + 8) * stride + c) : 0u;
        a[kk][2] = lo ? ld32(src + (size_t)(r0 + g) * stride + c + 8) : 0u;
        a[kk][3] = hi ? ld32(src + (size_t)(r0 + g + 8) * stride + c + 8) : 0u;
    }
}
// An accumulator row pair (16 x 16 as two 16 x 8 tiles n, n+1) repacked as one A fragment.
__device__ __forceinline__ void acc_to_a(unsigned (&a)[4], const float (&x)[4], const float (&y)[4]) {
    a[0] = pack2(x[0], x[1]);
    a[1] = pack2(x[2], x[3]);
    a[2] = pack2(y[0], y[1]);
    a[3] = pack2(y[2], y[3]);
}

// dq (a warp's 16 rows x HS) += da (its 16 x 16 block of dS, an A fragment) . the 16 key rows of
// a tile at kt (ld elements a row), transposed by ldmatrix: the dq kernels' one product.
template <int HS>
__device__ __forceinline__ void add_ds_k(float (&dq)[HS / 8][4], const unsigned (&da)[4], const bf16 *kt, int ld,
                                         int lane) {
#pragma unroll
    for (int n = 0; n < HS / 8; n += 2) {
        unsigned b0[2], b1[2];
        frag_b2_trans(b0, b1, kt + 8 * n, ld, lane);
        mma16816(dq[n], da, b0);
        mma16816(dq[n + 1], da, b1);
    }
}
// A warp's 16 x HS accumulator as bf16 rows: rows r0 + g and r0 + g + 8 (those before T) at
// dst + row * stride, this lane's columns 2t, 2t + 1 of every 8.
template <int HS>
__device__ __forceinline__ void store_rows(bf16 *dst, size_t stride, const float (&acc)[HS / 8][4], int r0, int T, int g,
                                           int t) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int i = r0 + g + 8 * r;
        if (i >= T) continue;
        bf16 *d = dst + (size_t)i * stride;
#pragma unroll
        for (int n = 0; n < HS / 8; n++) {
            d[8 * n + 2 * t] = stx<bf16>(acc[n][2 * r]);
            d[8 * n + 2 * t + 1] = stx<bf16>(acc[n][2 * r + 1]);
        }
    }
}

// The buffer of tile i (>= 0) in a ring of ST: unsigned, so ST = 2 is a bit test
template <int ST> __device__ __forceinline__ int ring(int i) { return (int)((unsigned)i % ST); }
// A ring of ST tile buffers (ST = 2: a double buffer) that every tile loop streams its n tiles
// through, with one __syncthreads a tile. load(j) queues tile j's copies into buffer ring<ST>(j).
// ring_start queues tiles 0 .. ST - 2, a group each (a tile past the end: an empty group, complete
// at once). ring_step(i), at the top of tile i's step, waits for tile i's group (the ST - 2 newer
// ones stay in flight), and its barrier both makes every thread's copies visible and says every
// warp is done with tile i - 1: so tile i + ST - 1 is queued into that buffer right after it, and
// streams in while tile i is used. (A barrier at the end of each step, to free the buffer before
// the next step refilled it, would be a second wait for the block's slowest warp a tile.)
template <int ST, class Load> __device__ __forceinline__ void ring_start(int n, Load &&load) {
#pragma unroll
    for (int j = 0; j < ST - 1; j++) {
        if (j < n) load(j);
        cp_async_commit();
    }
}
template <int ST, class Load> __device__ __forceinline__ void ring_step(int i, int n, Load &&load) {
    cp_async_wait<ST - 2>();
    __syncthreads();
    if (i + ST - 1 < n) load(i + ST - 1);
    cp_async_commit();
}

// Rows [r0, r0 + N) x HS of a row-major global tensor (row stride `stride`) into shared memory
// (dst[r][c], ld elements a row); rows past T are zeros. 16 bytes at a time by cp.async when `vec`
// (every row start 16-byte aligned, checked at launch; ld keeps shared rows 16-byte aligned): the
// caller commits and waits. Thread x copies channels 8 (x % CH) .. + 7 of rows x / CH, + STEP,
// + 2 STEP, ..: its source pointer steps by a fixed stride and its shared offsets are constants,
// so a copy is an add, a compare and the cp.async (a loop over element indices spent some 50
// integer instructions a copy on divisions and 64-bit products, more than the tile's softmax).
// Else two bf16 at a time through registers (every row start is 4-byte aligned: C is even),
// done when the function returns.
template <int HS, int N>
__device__ __forceinline__ void load_tile(bf16 *dst, int ld, const bf16 *src, size_t stride, int r0, int T, bool vec) {
    if (vec) {
        constexpr int CH = HS / 8, STEP = MM_THREADS / CH;
        int r = threadIdx.x / CH, c = 8 * (threadIdx.x % CH);
        const bf16 *s = src + (size_t)(r0 + r) * stride + c;
        bf16 *d = dst + r * ld + c;
#pragma unroll
        for (int i = 0; i < (N + STEP - 1) / STEP; i++) {
            bool in = r0 + r + STEP * i < T;
            if (N % STEP == 0 || r + STEP * i < N) cp_async<16>(d + STEP * i * ld, in ? s : src, in);  // out: reads nothing
            s += STEP * stride;
        }
        return;
    }
    for (int e = threadIdx.x; e < N * (HS / 2); e += MM_THREADS) {
        int r = e / (HS / 2), c = 2 * (e % (HS / 2));
        *(unsigned *)(dst + r * ld + c) = r0 + r < T ? ld32(src + (size_t)(r0 + r) * stride + c) : 0u;
    }
}

// the max (or sum) of a row over the 4 threads of its quad
__device__ __forceinline__ float quad_max(float v) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quad_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// Block order. A forward or dq block's work grows with its first row (causal: row i sees keys
// 0..i), a dk/dv block's shrinks with its first key. Blocks start about in the order of their
// linear index, x fastest, so the grid is (B NH heads, row blocks) with the row blocks read
// heaviest first: every head's longest block starts before any shorter one, across the whole
// grid, and the short ones fill the gaps at the end instead of a long one running alone after the
// rest are done. (Run 8's grid, (row blocks, NH, B), went longest first within each head only: the
// last heads' longest blocks started near the end.)
__device__ __forceinline__ int head_b(int NH) { return blockIdx.x / NH; }
__device__ __forceinline__ int head_h(int NH) { return blockIdx.x % NH; }
__device__ __forceinline__ int heavy_first_rows() { return (gridDim.y - 1 - blockIdx.y) * MM_ROWS; }
static dim3 heads_grid(int B, int NH, int row_blocks) { return dim3((unsigned)(B * NH), (unsigned)row_blocks); }
// Whether a tile of keys up to `last_key` is wholly visible to a warp's 16 rows from `w0` on
// (every key <= every row, every row < T): then no score of the tile needs the causal mask. The
// same for every lane, so the branch on it does not diverge; most tiles of a long sequence are.
__device__ __forceinline__ bool below_diagonal(int last_key, int w0, int T) { return last_key <= w0 && w0 + 15 < T; }

// The forward and dq kernels stream K and V tile pairs through a ring of ST buffers (Ks: ST pairs
// of KT x HS tiles, K then V; ST = 2, or 3 at head size 64 where auto or
// TRACELLM_CUDA_ATTENTION_STAGES=3 picks it: two pairs in flight while one is used), the key
// tiles up to the block's last row. As the ring's load, kv(j) queues pair j (keys j KT ..) into
// its buffer; kv.step(i) is ring_step for tile i, and returns its K (V follows KT rows later).
// Only when loads land changes with ST: the same bits.
template <int HS, int KT, int ST> struct KvRing {
    bf16 *Ks;
    const bf16 *base;  // the head's q of row 0: k at + C, v at + 2 C, rows C3 apart
    size_t C3;
    int C, T, tiles;
    bool vec;
    __device__ __forceinline__ void operator()(int j) const {
        bf16 *K = Ks + ring<ST>(j) * 2 * KT * (HS + 8);
        load_tile<HS, KT>(K, HS + 8, base + C, C3, j * KT, T, vec);
        load_tile<HS, KT>(K + KT * (HS + 8), HS + 8, base + 2 * C, C3, j * KT, T, vec);
    }
    __device__ __forceinline__ const bf16 *step(int i) const {
        ring_step<ST>(i, tiles, *this);
        return Ks + ring<ST>(i) * 2 * KT * (HS + 8);
    }
};

// ---- forward ----
// grid (B NH, T/(64 WG)): a warp owns WG groups of 16 query rows (WG = 1 or 2), so every B
// fragment it loads from a K or V tile feeds WG products: WG = 2 halves the shared-memory reads
// per product at twice the accumulators (TRACELLM_CUDA_ATTENTION=mma32 selects it for head sizes
// up to 64; gpu_check.sh times both). Shared: K and V tiles (KT x HS each), ST pairs: the next
// ones stream in while the current one is used.
template <int HS, int KT, int ST> constexpr size_t fwd_smem() { return sizeof(bf16) * 2 * ST * KT * (HS + 8); }

// With 16 rows a warp at head size 64 the kernel is held to 128 registers, so 4 blocks (16 warps)
// share an SM: it needs about that many (132 left alone, for 3 blocks), and pays 4 bytes of spill
// a tile for the fourth block.
template <int HS, int WG> constexpr int fwd_min_blocks() { return WG == 1 && HS == 64 ? 4 : 0; }
template <int HS, int KT, int WG, int ST>
__global__ void __launch_bounds__(MM_THREADS, fwd_min_blocks<HS, WG>())
    attention_forward_mma_kernel(bf16 *out, float *lse, const bf16 *qkv, int T, int C, int NH, float scale2, bool vec) {
    extern __shared__ __align__(16) float smem_f[];
    constexpr int LDK = HS + 8;
    bf16 *Ks = (bf16 *)smem_f;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    int b = head_b(NH), h = head_h(NH), q0 = heavy_first_rows() * WG, w0 = q0 + 16 * WG * warp;
    size_t C3 = 3 * (size_t)C;
    const bf16 *base = qkv + (size_t)b * T * C3 + h * HS;

    // per group u: rows w0 + 16 u + g and + 8 (this lane's), Q as A fragments, O, running max and sum
    unsigned qf[WG][HS / 16][4];
    float o[WG][HS / 8][4], m[WG][2], l[WG][2];
#pragma unroll
    for (int u = 0; u < WG; u++) {
        rows_a<HS>(qf[u], base, C3, w0 + 16 * u, T, g, t);
        m[u][0] = m[u][1] = -INFINITY;
        l[u][0] = l[u][1] = 0.0f;
#pragma unroll
        for (int n = 0; n < HS / 8; n++) o[u][n][0] = o[u][n][1] = o[u][n][2] = o[u][n][3] = 0.0f;
    }
    const KvRing<HS, KT, ST> kv{Ks, base, C3, C, T, min(T - 1, q0 + MM_ROWS * WG - 1) / KT + 1, vec};
    ring_start<ST>(kv.tiles, kv);
    for (int i = 0; i < kv.tiles; i++) {
        const bf16 *Kc = kv.step(i), *Vc = Kc + KT * LDK;
        int k0 = i * KT;
        // S = Q K^T (16 x KT per group), each K fragment pair used by every group
        float s[WG][KT / 8][4];
#pragma unroll
        for (int u = 0; u < WG; u++)
#pragma unroll
            for (int n = 0; n < KT / 8; n++) s[u][n][0] = s[u][n][1] = s[u][n][2] = s[u][n][3] = 0.0f;
#pragma unroll
        for (int n = 0; n < KT / 8; n += 2)
#pragma unroll
            for (int kk = 0; kk < HS / 16; kk++) {
                unsigned b0[2], b1[2];
                frag_b2(b0, b1, Kc + n * 8 * LDK + 16 * kk, LDK, lane);
#pragma unroll
                for (int u = 0; u < WG; u++) {
                    mma16816(s[u][n], qf[u][kk], b0);
                    mma16816(s[u][n + 1], qf[u][kk], b1);
                }
            }
        // the online softmax, per group: mask, new max, rescale O and the sum. The scores stay
        // unscaled: scale2 > 0 keeps their order, so the max is taken before scaling, and the
        // scaling rides in the exponent's FMA (2^(s scale2 - max), as flash attention does)
#pragma unroll
        for (int u = 0; u < WG; u++) {
            int wu = w0 + 16 * u, row[2] = {wu + g, wu + g + 8};
            float mx[2] = {-INFINITY, -INFINITY};
            if (below_diagonal(k0 + KT - 1, wu, T)) {  // no key of the tile is masked for these rows
#pragma unroll
                for (int n = 0; n < KT / 8; n++)
#pragma unroll
                    for (int e = 0; e < 4; e++) mx[e >> 1] = fmaxf(mx[e >> 1], s[u][n][e]);
            } else {
#pragma unroll
                for (int n = 0; n < KT / 8; n++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        int i = row[e >> 1], j = k0 + 8 * n + 2 * t + (e & 1);
                        float v = (j <= i && i < T) ? s[u][n][e] : -INFINITY;
                        s[u][n][e] = v;
                        mx[e >> 1] = fmaxf(mx[e >> 1], v);
                    }
            }
            float alpha[2], ls[2] = {0.0f, 0.0f}, mb[2];
#pragma unroll
            for (int r = 0; r < 2; r++) {
                float mn = fmaxf(m[u][r], quad_max(mx[r]) * scale2);
                alpha[r] = mn == -INFINITY ? 1.0f : exp2_ftz(m[u][r] - mn);
                m[u][r] = mn;
                mb[r] = mn == -INFINITY ? 0.0f : mn;  // a row with no key yet (past T): exp2(-inf - 0) = 0, no NaN
            }
#pragma unroll
            for (int n = 0; n < KT / 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    float p = exp2_ftz(fmaf(s[u][n][e], scale2, -mb[e >> 1]));  // masked: 2^-inf = 0
                    s[u][n][e] = p;
                    ls[e >> 1] += p;
                }
#pragma unroll
            for (int r = 0; r < 2; r++) l[u][r] = l[u][r] * alpha[r] + quad_sum(ls[r]);
#pragma unroll
            for (int n = 0; n < HS / 8; n++) {
                o[u][n][0] *= alpha[0]; o[u][n][1] *= alpha[0];
                o[u][n][2] *= alpha[1]; o[u][n][3] *= alpha[1];
            }
        }
        // O += P V: P repacked in registers, V transposed by ldmatrix, each V fragment pair used by every group
#pragma unroll
        for (int kk = 0; kk < KT / 16; kk++) {
            unsigned pa[WG][4];
#pragma unroll
            for (int u = 0; u < WG; u++) acc_to_a(pa[u], s[u][2 * kk], s[u][2 * kk + 1]);
#pragma unroll
            for (int n = 0; n < HS / 8; n += 2) {
                unsigned b0[2], b1[2];
                frag_b2_trans(b0, b1, Vc + 16 * kk * LDK + 8 * n, LDK, lane);
#pragma unroll
                for (int u = 0; u < WG; u++) {
                    mma16816(o[u][n], pa[u], b0);
                    mma16816(o[u][n + 1], pa[u], b1);
                }
            }
        }
    }
    // O / l, and the log-sum-exp, for the rows before T
#pragma unroll
    for (int u = 0; u < WG; u++) {
#pragma unroll
        for (int r = 0; r < 2; r++) {
            int i = w0 + 16 * u + g + 8 * r;
            if (i >= T) continue;
            float inv = 1.0f / l[u][r];
#pragma unroll
            for (int n = 0; n < HS / 8; n++) o[u][n][2 * r] *= inv, o[u][n][2 * r + 1] *= inv;
            if (t == 0) lse[((size_t)b * NH + h) * T + i] = (m[u][r] + log2f(l[u][r])) / LOG2E;
        }
        store_rows<HS>(out + (size_t)b * T * C + h * HS, C, o[u], w0 + 16 * u, T, g, t);
    }
}

// ---- backward: D_i = dO_i . O_i, one thread per (b, h, i) ----
// With vec (rows 16-byte aligned, the head size a multiple of 8) 8 channels a load, added in the
// same order as one at a time: the same bits, an eighth of the load instructions.
__global__ void attention_dsum_kernel(float *Dsum, const bf16 *dout, const bf16 *out, int B, int T, int C, int NH,
                                      bool vec) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)B * NH * T) return;
    int i = (int)(e % T), h = (int)(e / T % NH), b = (int)(e / ((size_t)T * NH)), hs = C / NH;
    const bf16 *g = dout + ((size_t)b * T + i) * C + h * hs, *o = out + ((size_t)b * T + i) * C + h * hs;
    float d = 0.0f;
    if (vec) {
        for (int c = 0; c < hs; c += 8) {
            float x[8], y[8];
            load_vec<bf16>(x, g + c);
            load_vec<bf16>(y, o + c);
#pragma unroll
            for (int k = 0; k < 8; k++) d += x[k] * y[k];
        }
    } else {
        for (int c = 0; c < hs; c++) d += ldx(g[c]) * ldx(o[c]);
    }
    Dsum[e] = d;
}

// ---- backward: dq ----
// grid (B NH, T/64). Shared: K and V tiles, ST pairs as in the forward.
template <int HS, int KT, int ST> constexpr size_t dq_smem() { return sizeof(bf16) * 2 * ST * KT * (HS + 8); }

template <int HS, int KT, int ST>
__global__ void __launch_bounds__(MM_THREADS) attention_backward_dq_mma_kernel(bf16 *dqkv, const bf16 *dout,
                                                                               const bf16 *qkv, const float *lse,
                                                                               const float *Dsum, int T, int C, int NH,
                                                                               float scale, bool vec) {
    extern __shared__ __align__(16) float smem_f[];
    constexpr int LDK = HS + 8;
    bf16 *Ks = (bf16 *)smem_f;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    int b = head_b(NH), h = head_h(NH), q0 = heavy_first_rows(), w0 = q0 + 16 * warp;
    int row[2] = {w0 + g, w0 + g + 8};
    size_t C3 = 3 * (size_t)C;
    const bf16 *base = qkv + (size_t)b * T * C3 + h * HS, *gbase = dout + (size_t)b * T * C + h * HS;
    const float *lrow = lse + ((size_t)b * NH + h) * T, *drow = Dsum + ((size_t)b * NH + h) * T;
    float scale2 = scale * LOG2E, L2[2], D[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        L2[r] = row[r] < T ? lrow[row[r]] * LOG2E : 0.0f;
        D[r] = row[r] < T ? drow[row[r]] : 0.0f;
    }
    unsigned qf[HS / 16][4], gf[HS / 16][4];
    rows_a<HS>(qf, base, C3, w0, T, g, t);
    rows_a<HS>(gf, gbase, C, w0, T, g, t);
    float dq[HS / 8][4];
#pragma unroll
    for (int n = 0; n < HS / 8; n++) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.0f;
    const KvRing<HS, KT, ST> kv{Ks, base, C3, C, T, min(T - 1, q0 + MM_ROWS - 1) / KT + 1, vec};
    ring_start<ST>(kv.tiles, kv);
    for (int i = 0; i < kv.tiles; i++) {
        const bf16 *Kc = kv.step(i), *Vc = Kc + KT * LDK;
        int k0 = i * KT;
        float s[KT / 8][4], dp[KT / 8][4];
#pragma unroll
        for (int n = 0; n < KT / 8; n++) {
            s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
            dp[n][0] = dp[n][1] = dp[n][2] = dp[n][3] = 0.0f;
        }
#pragma unroll
        for (int n = 0; n < KT / 8; n += 2)
#pragma unroll
            for (int kk = 0; kk < HS / 16; kk++) {
                unsigned bk0[2], bk1[2], bv0[2], bv1[2];
                frag_b2(bk0, bk1, Kc + n * 8 * LDK + 16 * kk, LDK, lane);
                frag_b2(bv0, bv1, Vc + n * 8 * LDK + 16 * kk, LDK, lane);
                mma16816(s[n], qf[kk], bk0);   // S = Q K^T
                mma16816(s[n + 1], qf[kk], bk1);
                mma16816(dp[n], gf[kk], bv0);  // dP = dO V^T
                mma16816(dp[n + 1], gf[kk], bv1);
            }
        // dS = P (dP - D) scale, P = 2^(S scale2 - lse2); with `mask`, a score the row may not see
        // (a later key, a row past T) gets the exponent -inf, so P = 0. Most tiles need no mask:
        // two copies of the loop and a branch the whole warp takes spare them the test per score
        auto ds = [&](auto mask) {
#pragma unroll
            for (int n = 0; n < KT / 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int r = e >> 1, i = row[r], j = k0 + 8 * n + 2 * t + (e & 1);
                    float x = fmaf(s[n][e], scale2, -L2[r]);
                    if constexpr (decltype(mask)::value) x = j <= i && i < T ? x : -INFINITY;
                    s[n][e] = exp2_ftz(x) * (dp[n][e] - D[r]) * scale;
                }
        };
        if (below_diagonal(k0 + KT - 1, w0, T)) ds(std::false_type{});
        else ds(std::true_type{});
        // dQ += dS K: dS repacked in registers, K transposed by ldmatrix
#pragma unroll
        for (int kk = 0; kk < KT / 16; kk++) {
            unsigned da[4];
            acc_to_a(da, s[2 * kk], s[2 * kk + 1]);
            add_ds_k<HS>(dq, da, Kc + 16 * kk * LDK, LDK, lane);
        }
    }
    store_rows<HS>(dqkv + (size_t)b * T * C3 + h * HS, C3, dq, w0, T, g, t);
}

// ---- backward: dk and dv ----
// grid (B NH, T/64): the block owns keys [64 y, 64 y + 64) and streams the query tiles from its
// first key on. Shared, ST times (the next query tiles stream in while this one is used): the
// tile's lse and D (QT floats each), then its Q and dO rows.
template <int HS, int QT> __host__ __device__ constexpr int dkdv_buf() { return 2 * QT + QT * (HS + 8); }  // floats
template <int HS, int QT, int ST> constexpr size_t dkdv_smem() { return sizeof(float) * ST * dkdv_buf<HS, QT>(); }

// Queries [i0, i0 + QT) into one buffer: Q and dO by load_tile, and lse and D (zeros past T) by
// cp.async too, 4 bytes a thread. (Read into registers and stored, as until session 13, they
// made the first two warps wait out a global load's latency at every tile, right after the
// barrier, and the block's other warps at the next one.) The lse stays natural here; the
// tile loop scales it by log2 e, the same product as before.
template <int HS, int QT>
__device__ __forceinline__ void dkdv_load(float *buf, const bf16 *base, const bf16 *gbase, const float *lrow,
                                          const float *drow, size_t C3, int C, int i0, int T, bool vec) {
    constexpr int LDR = HS + 8;
    bf16 *Qs = (bf16 *)(buf + 2 * QT), *Gs = Qs + QT * LDR;
    load_tile<HS, QT>(Qs, LDR, base, C3, i0, T, vec);
    load_tile<HS, QT>(Gs, LDR, gbase, C, i0, T, vec);
    static_assert(2 * QT <= MM_THREADS, "one lse or D a thread");
    if (int e = threadIdx.x; e < 2 * QT) {  // buf[e]: lse of query i0 + e, then D from e = QT on
        int i = i0 + (e < QT ? e : e - QT);
        const float *src = e < QT ? lrow : drow;
        cp_async<4>(buf + e, i < T ? src + i : src, i < T);
    }
}

// With STORE_DS it also writes the block's dS^T tiles (bf16, as packed for the dK product) into
// dsT (B,NH,Tp,Tp), row = key, column = query, Tp = T rounded up to 64, for the dq kernel that
// reads them instead of recomputing S and dP (attention_backward_dq_ds_kernel).
// With 32-row query tiles (head sizes up to 64) the kernel is held to 168 registers, so 3 blocks
// share an SM (252 at 64-row tiles: 2): a few bytes spill, and 12 warps instead of 8 hide latency.
// Elsewhere no minimum (0) at head sizes 16 and 32: a minimum of 1 block lets ptxas take up to 255
// registers, and it does (head size 32: 202 against 142 without, 2 blocks an SM against 3). Head
// sizes 64 and 128 keep 1: 64 needs about 252 either way and issues 11 fewer instructions a tile
// at ring 3 with it, 128 spills less with it (storing dS: 8 bytes against 24).
template <int HS, int QT> constexpr int dkdv_min_blocks() { return QT == 32 && HS <= 64 ? 3 : HS >= 64 ? 1 : 0; }
template <int HS, int QT, bool STORE_DS, int ST>
__global__ void __launch_bounds__(MM_THREADS, dkdv_min_blocks<HS, QT>())
    attention_backward_dkdv_mma_kernel(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse, const float *Dsum,
                                       int T, int C, int NH, float scale, bool vec, bf16 *dsT, int Tp) {
    extern __shared__ __align__(16) float smem_f[];
    constexpr int LDR = HS + 8, BUF = dkdv_buf<HS, QT>();
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    int b = head_b(NH), h = head_h(NH), kb0 = blockIdx.y * MM_ROWS, w0 = kb0 + 16 * warp;
    int key[2] = {w0 + g, w0 + g + 8};
    size_t C3 = 3 * (size_t)C;
    const bf16 *base = qkv + (size_t)b * T * C3 + h * HS, *gbase = dout + (size_t)b * T * C + h * HS;
    const float *lrow = lse + ((size_t)b * NH + h) * T, *drow = Dsum + ((size_t)b * NH + h) * T;
    float scale2 = scale * LOG2E;
    unsigned kf[HS / 16][4], vf[HS / 16][4];
    rows_a<HS>(kf, base + C, C3, w0, T, g, t);
    rows_a<HS>(vf, base + 2 * C, C3, w0, T, g, t);
    float dk[HS / 8][4], dv[HS / 8][4];
#pragma unroll
    for (int n = 0; n < HS / 8; n++) {
        dk[n][0] = dk[n][1] = dk[n][2] = dk[n][3] = 0.0f;
        dv[n][0] = dv[n][1] = dv[n][2] = dv[n][3] = 0.0f;
    }
    int first = kb0 / QT * QT;  // queries before the block's first key see none of its keys
    int tiles = (T - first + QT - 1) / QT;
    auto qg = [&](int j) {
        dkdv_load<HS, QT>(smem_f + ring<ST>(j) * BUF, base, gbase, lrow, drow, C3, C, first + j * QT, T, vec);
    };
    ring_start<ST>(tiles, qg);
    for (int it = 0; it < tiles; it++) {
        ring_step<ST>(it, tiles, qg);
        int i0 = first + it * QT;
        const float *Ls = smem_f + ring<ST>(it) * BUF, *Ds = Ls + QT;
        const bf16 *Qs = (const bf16 *)(Ds + QT), *Gs = Qs + QT * LDR;
        float st[QT / 8][4], dpt[QT / 8][4];
#pragma unroll
        for (int n = 0; n < QT / 8; n++) {
            st[n][0] = st[n][1] = st[n][2] = st[n][3] = 0.0f;
            dpt[n][0] = dpt[n][1] = dpt[n][2] = dpt[n][3] = 0.0f;
        }
#pragma unroll
        for (int n = 0; n < QT / 8; n += 2)
#pragma unroll
            for (int kk = 0; kk < HS / 16; kk++) {
                unsigned bq0[2], bq1[2], bg0[2], bg1[2];
                frag_b2(bq0, bq1, Qs + n * 8 * LDR + 16 * kk, LDR, lane);
                frag_b2(bg0, bg1, Gs + n * 8 * LDR + 16 * kk, LDR, lane);
                mma16816(st[n], kf[kk], bq0);   // S^T = K Q^T
                mma16816(st[n + 1], kf[kk], bq1);
                mma16816(dpt[n], vf[kk], bg0);  // dP^T = V dO^T
                mma16816(dpt[n + 1], vf[kk], bg1);
            }
        // P^T and dS^T as in the dq kernel; no mask where every query of the tile sees every key
        // of the warp (the same for all its lanes)
        auto pds = [&](auto mask) {
#pragma unroll
            for (int n = 0; n < QT / 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int j = key[e >> 1], q = 8 * n + 2 * t + (e & 1), i = i0 + q;
                    float x = fmaf(st[n][e], scale2, -(Ls[q] * LOG2E));
                    if constexpr (decltype(mask)::value) x = i >= j && i < T && j < T ? x : -INFINITY;
                    float p = exp2_ftz(x);
                    st[n][e] = p;                                 // P^T
                    dpt[n][e] = p * (dpt[n][e] - Ds[q]) * scale;  // dS^T
                }
        };
        if (w0 + 15 <= i0 && i0 + QT - 1 < T) pds(std::false_type{});
        else pds(std::true_type{});
        // dV += P^T dO, dK += dS^T Q: dO and Q transposed by ldmatrix
#pragma unroll
        for (int kk = 0; kk < QT / 16; kk++) {
            unsigned pa[4], da[4];
            acc_to_a(pa, st[2 * kk], st[2 * kk + 1]);
            acc_to_a(da, dpt[2 * kk], dpt[2 * kk + 1]);
            if constexpr (STORE_DS) {
                // da: (key g, queries 2t, 2t+1), (key g+8, ..), (key g, 2t+8, 2t+9), (key g+8, ..) of
                // this 16 x 16 block; Tp keeps every column of a computed tile inside its row
                bf16 *d0 = dsT + ((size_t)(b * NH + h) * Tp + key[0]) * Tp + i0 + 16 * kk + 2 * t;
                *(unsigned *)d0 = da[0];
                *(unsigned *)(d0 + 8 * (size_t)Tp) = da[1];
                *(unsigned *)(d0 + 8) = da[2];
                *(unsigned *)(d0 + 8 * (size_t)Tp + 8) = da[3];
            }
#pragma unroll
            for (int n = 0; n < HS / 8; n += 2) {
                unsigned bg0[2], bg1[2], bq0[2], bq1[2];
                frag_b2_trans(bg0, bg1, Gs + 16 * kk * LDR + 8 * n, LDR, lane);
                frag_b2_trans(bq0, bq1, Qs + 16 * kk * LDR + 8 * n, LDR, lane);
                mma16816(dv[n], pa, bg0);
                mma16816(dv[n + 1], pa, bg1);
                mma16816(dk[n], da, bq0);
                mma16816(dk[n + 1], da, bq1);
            }
        }
    }
    bf16 *rows = dqkv + (size_t)b * T * C3 + h * HS;
    store_rows<HS>(rows + C, C3, dk, w0, T, g, t);
    store_rows<HS>(rows + 2 * C, C3, dv, w0, T, g, t);
}

// ---- backward: dq from the stored dS (TRACELLM_CUDA_ATTENTION_DQ=stored) ----
// dQ = dS K with dS read back from what the dk/dv kernel (STORE_DS) wrote, instead of recomputing
// S = Q K^T and dP = dO V^T: one product a tile pair instead of three, for a write and a read of
// dS (B,NH,T,T causal half, bf16). grid (B NH, T/64) like the other dq kernel; shared: the K tile
// and the dS^T tile (keys x the block's 64 queries), ST of each pair. A fragments of dS come out
// of the dS^T tile by ldmatrix.trans.
template <int HS, int KT, int ST> constexpr size_t dq_ds_smem() {
    return sizeof(bf16) * ST * KT * (HS + 8 + MM_ROWS + 8);
}

template <int HS, int KT, int ST>
__global__ void __launch_bounds__(MM_THREADS) attention_backward_dq_ds_kernel(bf16 *dqkv, const bf16 *qkv,
                                                                              const bf16 *dsT, int T, int Tp, int C,
                                                                              int NH, bool vec) {
    extern __shared__ __align__(16) float smem_f[];
    constexpr int LDK = HS + 8, LDS = MM_ROWS + 8, PAIR = KT * (LDK + LDS);
    bf16 *buf = (bf16 *)smem_f;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    int b = head_b(NH), h = head_h(NH), q0 = heavy_first_rows(), w0 = q0 + 16 * warp;
    size_t C3 = 3 * (size_t)C;
    const bf16 *kbase = qkv + (size_t)b * T * C3 + C + h * HS;
    const bf16 *sbase = dsT + (size_t)(b * NH + h) * Tp * Tp + q0;  // row j: key j's dS^T at the block's queries
    float dq[HS / 8][4];
#pragma unroll
    for (int n = 0; n < HS / 8; n++) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.0f;
    int tiles = min(T - 1, q0 + MM_ROWS - 1) / KT + 1;  // key tiles up to the block's last row
    // queues the K tile and the dS^T tile of keys j KT .. into their buffer of the ring
    auto load_pair = [&](int j) {
        bf16 *pair = buf + ring<ST>(j) * PAIR;
        load_tile<HS, KT>(pair, LDK, kbase, C3, j * KT, T, vec);
        load_tile<MM_ROWS, KT>(pair + KT * LDK, LDS, sbase, Tp, j * KT, T, true);
    };
    ring_start<ST>(tiles, load_pair);
    for (int i = 0; i < tiles; i++) {
        ring_step<ST>(i, tiles, load_pair);
        const bf16 *Kc = buf + ring<ST>(i) * PAIR, *Sc = Kc + KT * LDK;
#pragma unroll
        for (int kk = 0; kk < KT / 16; kk++) {
            // A = dS (the warp's 16 queries x keys 16 kk ..): blocks (queries 0-7, keys 0-7),
            // (8-15, 0-7), (0-7, 8-15), (8-15, 8-15), each the transpose of a dS^T block
            unsigned da[4];
            ldsm_x4<true>(da, Sc + (16 * kk + 8 * (lane >> 4) + (lane & 7)) * LDS + 16 * warp + 8 * ((lane >> 3) & 1));
            add_ds_k<HS>(dq, da, Kc + 16 * kk * LDK, LDK, lane);
        }
    }
    store_rows<HS>(dqkv + (size_t)b * T * C3 + h * HS, C3, dq, w0, T, g, t);
}

// ---- launches ----
// Which kernels the bf16 table's attention runs (TRACELLM_CUDA_ATTENTION=auto|mma|wmma|mma32,
// TRACELLM_CUDA_ATTENTION_DQ=auto|recompute|stored|recompute32 and TRACELLM_CUDA_ATTENTION_STAGES=
// auto|2|3, or cuda_set_attention_kernel / _dq / _stages): the forward with 16 or 32 query rows a
// warp, the backward's dQ recomputed (64- or 32-row tiles) or from the stored dS, each with rings
// of 2 or 3 tile buffers; or attention_tc.cu's WMMA kernels. The mma choices give the same bits:
// every output element is the same products summed in the same order (the forward's rows see the
// same key tiles, the accumulators of dQ, dK and dV take their 16-row chunks in the same order,
// the stored dS is the bf16 A fragment the dq kernel would have rounded, and a ring only moves
// when loads land), so a choice is a matter of speed only (cuda_test_ops checks the bits). With
// auto (the default) they are timed on the card at the first call of each size class and the
// fastest kept: which wins depends on the card and the shape.
static int attention_kernel = -1;  // CUDA_ATTENTION_*
static int attention_dq = -1;      // CUDA_ATTENTION_DQ_*
static int attention_ring = -1;    // 0 auto, 2 or 3 tile buffers a ring
// TRACELLM_CUDA_ATTENTION_STAGES=auto|2|3 (or cuda_set_attention_stages, 0 for auto): how many
// tiles the mma kernels' rings hold at head size 64. 2: one tile in flight while one is used; 3:
// two in flight, for half as many shared-memory bytes again a block (at d12 the forward still
// fits 4 blocks an H100 SM, an A100's only 2). The same bits either way, so auto times both
// beside the other variants; other head sizes always run 2.
void cuda_set_attention_stages(int stages) {
    if (stages != 0 && stages != 2 && stages != 3)
        fatal("cuda_set_attention_stages: %d stages (0: auto, 2 or 3)", stages);
    attention_ring = stages;
}
static int attention_stages(void) {
    static const char *const ways[] = {"auto", "2", "3", NULL};
    if (attention_ring < 0) {
        int w = cuda_env_choice("TRACELLM_CUDA_ATTENTION_STAGES", ways);
        attention_ring = w ? w + 1 : 0;
    }
    return attention_ring;
}
void cuda_set_attention_kernel(int k) {
    if (k != CUDA_ATTENTION_AUTO && k != CUDA_ATTENTION_MMA && k != CUDA_ATTENTION_WMMA && k != CUDA_ATTENTION_MMA32)
        fatal("cuda_set_attention_kernel: unknown kernel %d", k);
    attention_kernel = k;
}
void cuda_set_attention_dq(int way) {
    if (way != CUDA_ATTENTION_DQ_AUTO && way != CUDA_ATTENTION_DQ_RECOMPUTE && way != CUDA_ATTENTION_DQ_STORED &&
        way != CUDA_ATTENTION_DQ_RECOMPUTE32)
        fatal("cuda_set_attention_dq: unknown way %d", way);
    attention_dq = way;
}
static int attention_dq_way(void) {
    static const char *const ways[] = {"auto", "recompute", "stored", "recompute32", NULL};  // in the order of CUDA_ATTENTION_DQ_*
    if (attention_dq < 0) attention_dq = cuda_env_choice("TRACELLM_CUDA_ATTENTION_DQ", ways);
    return attention_dq;
}
int cu_attention_mma_supported(int hs) {
    static const char *const kernels[] = {"auto", "mma", "wmma", "mma32", NULL};  // in the order of CUDA_ATTENTION_*
    if (attention_kernel < 0) attention_kernel = cuda_env_choice("TRACELLM_CUDA_ATTENTION", kernels);
    return attention_kernel != CUDA_ATTENTION_WMMA && (hs == 16 || hs == 32 || hs == 64 || hs == 128);
}

// ---- auto: what was timed, per size class ----
// A class is (C, NH, log2 of the causal tile pairs B NH n(n+1)/2, n = T/64 rounded up): a training
// run has one, generation a few, so the timing (about ten extra calls) is paid a handful of times.
// Below tune_min tile pairs the launch costs more than either kernel and the default runs untimed.
typedef struct {
    int C, NH, size_class;
    int forward;            // CUDA_ATTENTION_MMA or _MMA32, 0 until timed
    int dq;                 // CUDA_ATTENTION_DQ_RECOMPUTE, _RECOMPUTE32 or _STORED, 0 until timed
    int fwd_ring, bwd_ring; // the rings they run with, 2 or 3
} Tuned;
static Tuned tuned[32];
static int ntuned;
static long tune_min = 1024;
void cuda_set_attention_tune_min(long tile_pairs) {
    tune_min = tile_pairs;
    ntuned = 0;
}
static Tuned *tuned_class(int B, int T, int C, int NH, bool add) {
    long n = (long)cdiv(T, MM_ROWS), pairs = (long)B * NH * n * (n + 1) / 2;
    if (pairs < tune_min || pairs < 1) return NULL;
    int size_class = 0;
    while (pairs >> (size_class + 1)) size_class++;
    for (int i = 0; i < ntuned; i++)
        if (tuned[i].C == C && tuned[i].NH == NH && tuned[i].size_class == size_class) return &tuned[i];
    if (!add || ntuned == (int)(sizeof tuned / sizeof *tuned)) return NULL;  // full: the defaults
    tuned[ntuned] = Tuned{C, NH, size_class, 0, 0, 2, 2};
    return &tuned[ntuned++];
}
int cuda_attention_tuned(int B, int T, int C, int NH, int *forward, int *dq, int *fwd_stages, int *bwd_stages) {
    Tuned *e = tuned_class(B, T, C, NH, false);
    if (forward) *forward = e ? e->forward : 0;
    if (dq) *dq = e ? e->dq : 0;
    if (fwd_stages) *fwd_stages = e ? e->fwd_ring : 0;
    if (bwd_stages) *bwd_stages = e ? e->bwd_ring : 0;
    return e != NULL;
}
// The ring asked for at head size HS: 2 or 3, or 0 for auto (head size 64 only: the others run 2).
// Untimed, auto runs 2; timing, it tries the ring asked for, or both.
template <int HS> static int ring_asked() { return HS == 64 ? attention_stages() : 2; }
template <int HS> static int ring_default() { return ring_asked<HS>() ? ring_asked<HS>() : 2; }
template <int HS> static bool ring_candidate(int st) { return !ring_asked<HS>() || st == ring_asked<HS>(); }
// a variant's name in auto's report: "-st3" for a ring of 3
static const char *variant_name(char (&buf)[32], const char *kernel, int st) {
    snprintf(buf, sizeof buf, "%s%s", kernel, st == 3 ? "-st3" : "");
    return buf;
}
// one more entry of auto's report, after a comma when it is not the first
template <size_t L> __attribute__((format(printf, 2, 3))) static void report_add(char (&list)[L], const char *fmt, ...) {
    size_t n = strlen(list);
    if (n && n + 2 < L) {
        strcpy(list + n, ", ");
        n += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(list + n, L - n, fmt, ap);
    va_end(ap);
}
// Milliseconds a call of `run` takes on the card: one call first (module load, shared-memory
// opt-in, scratch), then the mean of three.
template <class F> static float time_calls(F &&run, const char *what) {
    run();
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0), "timing %s", what);
    CUDA_CHECK(cudaEventCreate(&e1), "timing %s", what);
    CUDA_CHECK(cudaEventRecord(e0, 0), "timing %s", what);
    for (int i = 0; i < 3; i++) run();
    CUDA_CHECK(cudaEventRecord(e1, 0), "timing %s", what);
    CUDA_CHECK(cudaEventSynchronize(e1), "timing %s", what);
    float ms = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1), "timing %s", what);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return ms / 3;
}

// 16-byte tile loads need every row start 16-byte aligned
static bool rows_aligned16(const bf16 *p, int C) { return aligned16(p) && C % 8 == 0; }

// tiles of 64 streamed rows, 32 for head size 128 (registers)
template <int HS> struct Tile { static constexpr int N = HS == 128 ? 32 : 64; };

// Calls run(std::integral_constant<int, ST>) for a ring of `ring` buffers: 3 only at head size
// 64 (every dN model's: the one shape the third buffer is compiled for), else 2.
template <int HS, class F> static void with_stages(int ring, F &&run) {
    if constexpr (HS == 64)
        if (ring == 3) return run(std::integral_constant<int, 3>{});
    run(std::integral_constant<int, 2>{});
}

template <int HS, int WG>
static void forward_launch(int ring, bf16 *out, float *lse, const bf16 *qkv, int B, int T, int C, int NH) {
    with_stages<HS>(ring, [&](auto stages) {
        constexpr int ST = decltype(stages)::value;
        constexpr int KT = Tile<HS>::N;
        dim3 grid = heads_grid(B, NH, cdiv(T, MM_ROWS * WG));
        size_t smem = fwd_smem<HS, KT, ST>();
        smem_require<attention_forward_mma_kernel<HS, KT, WG, ST>>(smem, "attention_forward (mma)");
        float scale2 = LOG2E / sqrtf((float)HS);
        attention_forward_mma_kernel<HS, KT, WG, ST><<<grid, MM_THREADS, smem>>>(out, lse, qkv, T, C, NH, scale2,
                                                                                  rows_aligned16(qkv, C));
        LAUNCH_CHECK("attention_forward (mma, %d rows a warp, %d stages) B=%d T=%d C=%d NH=%d", 16 * WG, ST, B, T, C,
                     NH);
    });
}
// 32 rows a warp (mma32) where the registers allow: head sizes up to 64
template <int HS> static void forward_hs(bf16 *out, float *lse, const bf16 *qkv, int B, int T, int C, int NH) {
    int k = attention_kernel, ring = ring_default<HS>();
    if constexpr (HS <= 64) {
        Tuned *e = k == CUDA_ATTENTION_AUTO ? tuned_class(B, T, C, NH, true) : NULL;
        if (e && !e->forward) {
            char list[192] = "", name[32];
            float best = INFINITY;
            for (int st = 2; st <= 3; st++) {
                if (!ring_candidate<HS>(st)) continue;
                for (int wg = 1; wg <= 2; wg++) {
                    float t = wg == 1 ? time_calls([&] { forward_launch<HS, 1>(st, out, lse, qkv, B, T, C, NH); },
                                                   "attention_forward (mma)")
                                      : time_calls([&] { forward_launch<HS, 2>(st, out, lse, qkv, B, T, C, NH); },
                                                   "attention_forward (mma32)");
                    report_add(list, "%s %.3f ms", variant_name(name, wg == 2 ? "mma32" : "mma", st), t);
                    if (t < best) {
                        best = t;
                        e->forward = wg == 2 ? CUDA_ATTENTION_MMA32 : CUDA_ATTENTION_MMA;
                        e->fwd_ring = st;
                    }
                }
            }
            fprintf(stderr, "cuda attention forward, B=%d T=%d C=%d NH=%d timed: %s: %s\n", B, T, C, NH, list,
                    variant_name(name, e->forward == CUDA_ATTENTION_MMA32 ? "mma32" : "mma", e->fwd_ring));
        }
        if (e) {
            k = e->forward;
            ring = e->fwd_ring;
        }
        if (k == CUDA_ATTENTION_MMA32) return forward_launch<HS, 2>(ring, out, lse, qkv, B, T, C, NH);
    }
    forward_launch<HS, 1>(ring, out, lse, qkv, B, T, C, NH);
}

// dq kernel, then the dk/dv kernel, each recomputing S and dP, streaming tiles of KT rows
template <int HS, int KT = Tile<HS>::N>
static void backward_recompute(int ring, bf16 *dqkv, const float *Dsum, const bf16 *dout, const bf16 *qkv,
                               const float *lse, int B, int T, int C, int NH) {
    with_stages<HS>(ring, [&](auto stages) {
        constexpr int ST = decltype(stages)::value;
        dim3 grid = heads_grid(B, NH, cdiv(T, MM_ROWS));
        float scale = 1.0f / sqrtf((float)HS);
        bool vec = rows_aligned16(qkv, C) && rows_aligned16(dout, C);
        smem_require<attention_backward_dq_mma_kernel<HS, KT, ST>>(dq_smem<HS, KT, ST>(), "attention_backward dq (mma)");
        attention_backward_dq_mma_kernel<HS, KT, ST><<<grid, MM_THREADS, dq_smem<HS, KT, ST>()>>>(
            dqkv, dout, qkv, lse, Dsum, T, C, NH, scale, vec);
        LAUNCH_CHECK("attention_backward (dq, mma, %d stages) B=%d T=%d C=%d NH=%d", ST, B, T, C, NH);
        smem_require<attention_backward_dkdv_mma_kernel<HS, KT, false, ST>>(dkdv_smem<HS, KT, ST>(),
                                                                            "attention_backward dk/dv (mma)");
        attention_backward_dkdv_mma_kernel<HS, KT, false, ST><<<grid, MM_THREADS, dkdv_smem<HS, KT, ST>()>>>(
            dqkv, dout, qkv, lse, Dsum, T, C, NH, scale, vec, nullptr, 0);
        LAUNCH_CHECK("attention_backward (dk/dv, mma, %d stages) B=%d T=%d C=%d NH=%d", ST, B, T, C, NH);
    });
}
// dS^T scratch for the stored way: B x NH x Tp x Tp bf16, Tp = T rounded up to 64
static size_t ds_bytes(int B, int T, int NH, int *Tp) {
    *Tp = (int)cdiv(T, MM_ROWS) * MM_ROWS;
    return (size_t)B * NH * *Tp * *Tp * sizeof(bf16);
}
// the dk/dv kernel first, storing dS^T into dsT; then dq from it
template <int HS>
static void backward_stored(int ring, bf16 *dqkv, const float *Dsum, const bf16 *dout, const bf16 *qkv, const float *lse,
                            int B, int T, int C, int NH, bf16 *dsT) {
    with_stages<HS>(ring, [&](auto stages) {
        constexpr int ST = decltype(stages)::value;
        constexpr int KT = Tile<HS>::N;
        dim3 grid = heads_grid(B, NH, cdiv(T, MM_ROWS));
        float scale = 1.0f / sqrtf((float)HS);
        bool vec = rows_aligned16(qkv, C) && rows_aligned16(dout, C);
        int Tp;
        ds_bytes(B, T, NH, &Tp);
        smem_require<attention_backward_dkdv_mma_kernel<HS, KT, true, ST>>(dkdv_smem<HS, KT, ST>(),
                                                                           "attention_backward dk/dv (mma)");
        attention_backward_dkdv_mma_kernel<HS, KT, true, ST><<<grid, MM_THREADS, dkdv_smem<HS, KT, ST>()>>>(
            dqkv, dout, qkv, lse, Dsum, T, C, NH, scale, vec, dsT, Tp);
        LAUNCH_CHECK("attention_backward (dk/dv storing dS, mma, %d stages) B=%d T=%d C=%d NH=%d", ST, B, T, C, NH);
        smem_require<attention_backward_dq_ds_kernel<HS, KT, ST>>(dq_ds_smem<HS, KT, ST>(),
                                                                  "attention_backward dq (stored dS)");
        attention_backward_dq_ds_kernel<HS, KT, ST><<<grid, MM_THREADS, dq_ds_smem<HS, KT, ST>()>>>(
            dqkv, qkv, dsT, T, Tp, C, NH, rows_aligned16(qkv, C));
        LAUNCH_CHECK("attention_backward (dq from stored dS, mma, %d stages) B=%d T=%d C=%d NH=%d", ST, B, T, C, NH);
    });
}

template <int HS>
static void backward_hs(bf16 *dqkv, const float *Dsum, const bf16 *dout, const bf16 *qkv, const float *lse, int B, int T,
                        int C, int NH) {
    int way = attention_dq_way(), ring = ring_default<HS>(), Tp;
    size_t bytes = ds_bytes(B, T, NH, &Tp);
    // one of the three ways with a ring of st (the stored one with its scratch)
    auto run = [&](int w, int st, bf16 *dsT) {
        if (w == CUDA_ATTENTION_DQ_STORED) return backward_stored<HS>(st, dqkv, Dsum, dout, qkv, lse, B, T, C, NH, dsT);
        if constexpr (Tile<HS>::N != 32)  // 32-row tiles (head size 128 has them already)
            if (w == CUDA_ATTENTION_DQ_RECOMPUTE32)
                return backward_recompute<HS, 32>(st, dqkv, Dsum, dout, qkv, lse, B, T, C, NH);
        backward_recompute<HS>(st, dqkv, Dsum, dout, qkv, lse, B, T, C, NH);
    };
    if (way == CUDA_ATTENTION_DQ_STORED)  // asked for by name: no memory for it is an error
        return run(way, ring, (bf16 *)cuda_scratch(6, bytes));
    if (way == CUDA_ATTENTION_DQ_RECOMPUTE32) return run(way, ring, nullptr);
    static const char *const names[] = {"auto", "recompute", "stored", "recompute32"};  // CUDA_ATTENTION_DQ_*
    Tuned *e = way == CUDA_ATTENTION_DQ_AUTO ? tuned_class(B, T, C, NH, true) : NULL;
    if (e && !e->dq) {
        bf16 *dsT = (bf16 *)cuda_scratch_try(6, bytes);
        static const int ways[] = {CUDA_ATTENTION_DQ_RECOMPUTE, CUDA_ATTENTION_DQ_RECOMPUTE32, CUDA_ATTENTION_DQ_STORED};
        char list[320] = "", name[32];
        float best = INFINITY;
        for (int st = 2; st <= 3; st++) {
            if (!ring_candidate<HS>(st)) continue;
            for (int w : ways) {
                if ((w == CUDA_ATTENTION_DQ_RECOMPUTE32 && Tile<HS>::N == 32) || (w == CUDA_ATTENTION_DQ_STORED && !dsT))
                    continue;
                float t = time_calls([&] { run(w, st, dsT); }, "attention_backward");
                report_add(list, "%s %.3f ms", variant_name(name, names[w], st), t);
                if (t < best) {
                    best = t;
                    e->dq = w;
                    e->bwd_ring = st;
                }
            }
        }
        if (!dsT) report_add(list, "stored: no memory for its %zu bytes", bytes);
        if (e->dq != CUDA_ATTENTION_DQ_STORED) cuda_scratch_release(6);
        fprintf(stderr, "cuda attention backward, B=%d T=%d C=%d NH=%d timed: %s: %s\n", B, T, C, NH, list,
                variant_name(name, names[e->dq], e->bwd_ring));
    }
    int chosen = e ? e->dq : way;
    if (e) ring = e->bwd_ring;
    if (chosen == CUDA_ATTENTION_DQ_STORED) {
        // timed before; the memory may have gone to another size class since, and then it is asked again
        bf16 *dsT = (bf16 *)cuda_scratch_try(6, bytes);
        if (dsT) return run(chosen, ring, dsT);
        chosen = CUDA_ATTENTION_DQ_RECOMPUTE;
    }
    run(chosen, ring, nullptr);
}

void cu_attention_mma_forward(bf16 *out, float *lse, const bf16 *qkv, int B, int T, int C, int NH) {
    switch (C / NH) {
    case 16: forward_hs<16>(out, lse, qkv, B, T, C, NH); break;
    case 32: forward_hs<32>(out, lse, qkv, B, T, C, NH); break;
    case 64: forward_hs<64>(out, lse, qkv, B, T, C, NH); break;
    case 128: forward_hs<128>(out, lse, qkv, B, T, C, NH); break;
    default: fatal("cuda attention_forward (mma): head size %d is not compiled in", C / NH);
    }
}

void cu_attention_mma_backward(bf16 *dqkv, float *Dsum, const bf16 *dout, const bf16 *qkv, const bf16 *out,
                               const float *lse, int B, int T, int C, int NH) {
    size_t rows = (size_t)B * NH * T;
    bool vec = rows_aligned16(dout, C) && rows_aligned16(out, C) && C / NH % 8 == 0;
    attention_dsum_kernel<<<cdiv(rows, 256), 256>>>(Dsum, dout, out, B, T, C, NH, vec);
    LAUNCH_CHECK("attention_backward (D, mma) B=%d T=%d C=%d NH=%d", B, T, C, NH);
    switch (C / NH) {
    case 16: backward_hs<16>(dqkv, Dsum, dout, qkv, lse, B, T, C, NH); break;
    case 32: backward_hs<32>(dqkv, Dsum, dout, qkv, lse, B, T, C, NH); break;
    case 64: backward_hs<64>(dqkv, Dsum, dout, qkv, lse, B, T, C, NH); break;
    case 128: backward_hs<128>(dqkv, Dsum, dout, qkv, lse, B, T, C, NH); break;
    default: fatal("cuda attention_backward (mma): head size %d is not compiled in", C / NH);
    }
}
