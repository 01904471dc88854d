// The emulator's WMMA (nvcuda::wmma): the TF32 16x16x8 shapes kernels/cuda/attention_tc.cu uses.
// On a GPU a fragment is spread over the 32 lanes of a warp in an unspecified layout; here every
// thread (fiber) holds the WHOLE tile and computes the whole product, so code that only loads,
// stores, fills, multiplies and applies the same function to every element (as the kernels do)
// behaves as on the GPU; code that assumed a lane layout would not run the same and is not
// emulated. __float_to_tf32 rounds to 10 mantissa bits, nearest, ties away from zero (cvt.rna).
#pragma once
#include "../cuda_emu.h"

namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
namespace precision { struct tf32 {}; }
enum layout_t { mem_row_major, mem_col_major };

static inline float __float_to_tf32(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;  // not Inf/NaN
    memcpy(&f, &u, 4);
    return f;
}

// rows x cols of the operand this fragment holds, row-major in x[]
template <class Use, int M, int N, int K> struct frag_shape;
template <int M, int N, int K> struct frag_shape<matrix_a, M, N, K> { enum { R = M, C = K }; };
template <int M, int N, int K> struct frag_shape<matrix_b, M, N, K> { enum { R = K, C = N }; };
template <int M, int N, int K> struct frag_shape<accumulator, M, N, K> { enum { R = M, C = N }; };

template <class Use, int M, int N, int K, class T, class Layout = void> struct fragment {
    enum { rows = frag_shape<Use, M, N, K>::R, cols = frag_shape<Use, M, N, K>::C, num_elements = rows * cols };
    float x[num_elements];
};

template <class Use, int M, int N, int K, class T, class L>
inline void fill_fragment(fragment<Use, M, N, K, T, L> &f, float v) {
    for (int e = 0; e < f.num_elements; e++) f.x[e] = v;
}

// operands: element (r, c) is p[r * ldm + c] (row_major) or p[c * ldm + r] (col_major)
template <class Use, int M, int N, int K, class T>
inline void load_matrix_sync(fragment<Use, M, N, K, T, row_major> &f, const float *p, unsigned ldm) {
    for (int r = 0; r < f.rows; r++)
        for (int c = 0; c < f.cols; c++) f.x[r * f.cols + c] = p[(size_t)r * ldm + c];
}
template <class Use, int M, int N, int K, class T>
inline void load_matrix_sync(fragment<Use, M, N, K, T, col_major> &f, const float *p, unsigned ldm) {
    for (int r = 0; r < f.rows; r++)
        for (int c = 0; c < f.cols; c++) f.x[r * f.cols + c] = p[(size_t)c * ldm + r];
}
template <int M, int N, int K>
inline void store_matrix_sync(float *p, const fragment<accumulator, M, N, K, float> &f, unsigned ldm, layout_t l) {
    for (int r = 0; r < f.rows; r++)
        for (int c = 0; c < f.cols; c++)
            p[l == mem_row_major ? (size_t)r * ldm + c : (size_t)c * ldm + r] = f.x[r * f.cols + c];
}

// d = a @ b + c in fp32 (the products of TF32 operands are exact in fp32)
template <int M, int N, int K, class LA, class LB>
inline void mma_sync(fragment<accumulator, M, N, K, float> &d, const fragment<matrix_a, M, N, K, precision::tf32, LA> &a,
                     const fragment<matrix_b, M, N, K, precision::tf32, LB> &b,
                     const fragment<accumulator, M, N, K, float> &c) {
    float out[M * N];
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            float s = c.x[m * N + n];
            for (int k = 0; k < K; k++) s += a.x[m * K + k] * b.x[k * N + n];
            out[m * N + n] = s;
        }
    memcpy(d.x, out, sizeof out);
}
}  // namespace wmma
}  // namespace nvcuda
