// The one GEMM under every CPU matmul: C (M,N) (+)= A (M,K) @ B (K,N), fp32.
//
// Shape of the computation (the classic BLIS/GotoBLAS split):
// - B is read in column panels of NR=64, packed into Bp[panel][k][64], zero-padded past N, so the
//   micro-kernel streams it with full-width loads and never checks an edge. Except for weight
//   gradients, where B is a whole activation read by few rows: there it is read in place.
// - The micro-kernel owns a 6x64 tile of C in 24 vector registers (AVX-512: 16 floats each; the
//   GNU vector extension below compiles to AVX2/SSE on other machines) and, per k, broadcasts six
//   A values and does 24 FMAs against 4 vectors of the B panel: 24 FMAs per 4 loads.
// - K is cut in KC blocks so a panel block (KC x 64 floats = 128 KB) stays in L2 while every
//   row tile of a task reuses it. Tasks are (row chunk, panel) pairs, spread over OpenMP threads.
//   A transposed A (weight gradients) is packed per row chunk instead (gemm_strided_a).
// Each C element is owned by one task and summed in increasing k: the result does not depend on
// the number of threads.
#include "kernels/cpu/cpu.h"
#include "util/util.h"
#include <stdlib.h>
#include <string.h>

// -std=c11 turns off FMA contraction (ISO C rounds a*b+c twice); the micro-kernel wants the
// fused multiply-add: twice the flops per instruction and one rounding instead of two.
#if defined(__clang__)
#pragma clang fp contract(fast)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=fast")
#endif

#define MR 6
#define NR 64
#define KC 512
#define MC 96  // rows per task: 16 micro-tiles

typedef float v16 __attribute__((vector_size(64)));

// macros, not functions: passing a 64-byte vector by value changes the ABI on non-AVX-512 builds
#define VLOAD(v, p) memcpy(&(v), (p), sizeof(v16))
#define VSTORE(p, v) memcpy((p), &(v), sizeof(v16))

// Ct (MR,NR) tile with row stride ldt (+)= A rows a[r] (kc values, stride acs) @ Bp (kc,NR) with row stride ldb.
static void micro_6x64(float *Ct, int ldt, const float *const a[MR], long acs, const float *Bp, long ldb, int kc,
                       int load_c) {
    v16 c[MR][4];
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            if (load_c) VLOAD(c[r][j], Ct + (size_t)r * ldt + 16 * j);
            else c[r][j] = (v16){0};
        }
    // unrolled by 2: halves the loop and pointer overhead around the 24 FMAs (+15-50% measured)
#pragma GCC unroll 2
    for (int k = 0; k < kc; k++) {
        const float *b = Bp + (size_t)k * ldb;
        v16 b0, b1, b2, b3;
        VLOAD(b0, b); VLOAD(b1, b + 16); VLOAD(b2, b + 32); VLOAD(b3, b + 48);
#pragma GCC unroll 6
        for (int r = 0; r < MR; r++) {
            float x = a[r][k * acs];  // scalar * vector broadcasts
            c[r][0] += x * b0; c[r][1] += x * b1; c[r][2] += x * b2; c[r][3] += x * b3;
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) VSTORE(Ct + (size_t)r * ldt + 16 * j, c[r][j]);
}

// C tile (mr <= 6 rows, nw <= 64 columns) at ct: the micro-kernel, through a full-size buffer at the edges.
static void tile(float *ct, int ldc, int mr, int nw, const float *const a[MR], long acs, const float *bp, long ldb,
                 int kc, int load_c) {
    if (mr == MR && nw == NR) {
        micro_6x64(ct, ldc, a, acs, bp, ldb, kc, load_c);
        return;
    }
    float edge[MR * NR];
    if (load_c) {
        memset(edge, 0, sizeof edge);
        for (int r = 0; r < mr; r++) memcpy(edge + r * NR, ct + (size_t)r * ldc, nw * sizeof *ct);
    }
    micro_6x64(edge, NR, a, acs, bp, ldb, kc, load_c);
    for (int r = 0; r < mr; r++) memcpy(ct + (size_t)r * ldc, edge + r * NR, nw * sizeof *ct);
}

// Where panel p of B is: packed (ld NR) or in place (ld = B's row stride).
typedef struct { const float *base; long ld; } Panel;
static inline const float *panel_at(const Panel *pn, int k0) { return pn->base + (size_t)k0 * pn->ld; }

// A read with a stride along k (a transposed operand: the weight gradient dout^T @ inp): every k
// of a row tile is another cache line, and with a wide stride another page. So a chunk of rows
// is packed once per K block into [tile][k][6] order, then every panel of B runs over it: the
// packed chunk (48 rows x 512 k = 96 KB) and one panel block (128 KB) stay in L2 together.
#define MC_STRIDED 48

// The packed row chunk, one per thread, kept between calls (a fresh 96 KB allocation per chunk
// would be page faults and page clearing, every call).
static float *strided_scratch(void) {
    static _Thread_local float *buf;
    if (!buf) buf = xmalloc((size_t)MC_STRIDED * KC * sizeof *buf);
    return buf;
}
static void gemm_strided_a(float *C, int ldc, const float *A, long ars, long acs, const Panel *panels, int M, int N,
                           int K, int accumulate) {
    int n_panels = (N + NR - 1) / NR, n_chunks = (M + MC_STRIDED - 1) / MC_STRIDED;
    OMP(parallel for schedule(static))
    for (int mc = 0; mc < n_chunks; mc++) {
        float *ap = strided_scratch();
        int m_begin = mc * MC_STRIDED, m_end = m_begin + MC_STRIDED < M ? m_begin + MC_STRIDED : M;
        int rows = m_end - m_begin, full = rows / MR;
        for (int k0 = 0; k0 < K; k0 += KC) {
            int kc = K - k0 < KC ? K - k0 : KC;
            // k outer: for each k the chunk's rows are one short run of A (contiguous when ars is 1,
            // as for a transposed operand), copied six at a time into the tiles
            for (int k = 0; k < kc; k++) {
                const float *src = A + (size_t)(k0 + k) * acs + (size_t)m_begin * ars;
                float *dst = ap + (size_t)k * MR;
                for (int j = 0; j < full; j++, dst += (size_t)MR * kc)
                    if (ars == 1) memcpy(dst, src + j * MR, MR * sizeof *dst);
                    else for (int r = 0; r < MR; r++) dst[r] = src[(size_t)(j * MR + r) * ars];
                if (full * MR < rows)  // the last tile: rows past the end repeat the last row
                    for (int r = 0; r < MR; r++) dst[r] = src[(size_t)(full * MR + r < rows ? full * MR + r : rows - 1) * ars];
            }
            for (int p = 0; p < n_panels; p++) {
                int n0 = p * NR, nw = N - n0 < NR ? N - n0 : NR;
                const float *bp = panel_at(&panels[p], k0);
                for (int m0 = m_begin; m0 < m_end; m0 += MR) {
                    int mr = m_end - m0 < MR ? m_end - m0 : MR;
                    const float *a[MR];
                    for (int r = 0; r < MR; r++) a[r] = ap + (size_t)(m0 - m_begin) * kc + r;
                    tile(C + (size_t)m0 * ldc + n0, ldc, mr, nw, a, MR, bp, panels[p].ld, kc, accumulate || k0 > 0);
                }
            }
        }
    }
}

// The packed panels of B and the panel table are reused between calls, one set per thread:
// attention calls the GEMM from inside its own parallel loop (where the GEMM's regions run on the
// calling thread alone, OpenMP not nesting by default).
static _Thread_local float *pack_buf;
static _Thread_local size_t pack_cap;
static _Thread_local Panel *panel_buf;
static _Thread_local int panel_cap;

void cpu_gemm(float *C, int ldc, const float *A, long ars, long acs, const float *B, long brs, long bcs, int M, int N,
              int K, int accumulate) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!accumulate)
            for (int m = 0; m < M; m++) memset(C + (size_t)m * ldc, 0, (size_t)N * sizeof *C);
        return;
    }
    int n_panels = (N + NR - 1) / NR;
    // Packing pays when B is small and reused by many rows (the forward's weight, dinp's weight).
    // The weight gradient's B is a whole activation (K = B*T rows) against few rows of A: there a
    // row-major B is read in place, except a ragged last panel.
    int in_place = bcs == 1 && acs != 1;
    int first_packed = in_place ? (N % NR ? n_panels - 1 : n_panels) : 0;
    size_t need = (size_t)(n_panels - first_packed) * K * NR;
    if (need > pack_cap) {
        free(pack_buf);
        pack_buf = aligned_alloc(64, need * sizeof(float));
        if (!pack_buf) fatal("out of memory packing a %dx%d matrix", K, N);
        pack_cap = need;
    }
    if (n_panels > panel_cap) {
        panel_buf = xrealloc(panel_buf, n_panels * sizeof *panel_buf);
        panel_cap = n_panels;
    }
    // locals, not the thread-local globals: the worker threads below must see this thread's buffers
    Panel *panels = panel_buf;
    float *packed = pack_buf;
    for (int p = 0; p < n_panels; p++)
        panels[p] = p < first_packed ? (Panel){B + (size_t)p * NR, brs}
                                     : (Panel){packed + (size_t)(p - first_packed) * K * NR, NR};
    OMP(parallel for schedule(static))
    for (int p = first_packed; p < n_panels; p++) {
        int n0 = p * NR, nw = N - n0 < NR ? N - n0 : NR;
        float *dst = packed + (size_t)(p - first_packed) * K * NR;
        if (nw < NR) memset(dst, 0, (size_t)K * NR * sizeof *dst);
        if (bcs == 1)
            for (int k = 0; k < K; k++) memcpy(dst + (size_t)k * NR, B + k * brs + n0, nw * sizeof *dst);
        else  // B transposed in memory: read each column contiguously
            for (int j = 0; j < nw; j++)
                for (int k = 0; k < K; k++) dst[(size_t)k * NR + j] = B[k * brs + (n0 + j) * bcs];
    }
    if (acs != 1) {
        gemm_strided_a(C, ldc, A, ars, acs, panels, M, N, K, accumulate);
        return;
    }
    int n_chunks = (M + MC - 1) / MC;
    OMP(parallel for collapse(2) schedule(static))
    for (int mc = 0; mc < n_chunks; mc++)
        for (int p = 0; p < n_panels; p++) {
            int n0 = p * NR, nw = N - n0 < NR ? N - n0 : NR;
            int m_end = (mc + 1) * MC < M ? (mc + 1) * MC : M;
            for (int k0 = 0; k0 < K; k0 += KC) {
                int kc = K - k0 < KC ? K - k0 : KC;
                const float *bp = panel_at(&panels[p], k0);
                int load_c = accumulate || k0 > 0;
                for (int m0 = mc * MC; m0 < m_end; m0 += MR) {
                    int mr = m_end - m0 < MR ? m_end - m0 : MR;
                    const float *a[MR];
                    // rows past the end repeat the last row; their results are discarded
                    for (int r = 0; r < MR; r++) a[r] = A + (size_t)(m0 + (r < mr ? r : mr - 1)) * ars + (size_t)k0 * acs;
                    tile(C + (size_t)m0 * ldc + n0, ldc, mr, nw, a, acs, bp, panels[p].ld, kc, load_c);
                }
            }
        }
}
