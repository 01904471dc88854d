// Internals shared by the CPU backend's files (not part of the op set): the GEMM every matmul and
// attention runs on; exp / tanh / max / exp-sum without libm, scalar and 16 lanes wide; and OMP()
// so OpenMP pragmas vanish cleanly in builds without -fopenmp (the sanitizer build), where a bare
// `#pragma omp` would trip -Wunknown-pragmas under -Werror.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

#ifdef _OPENMP
#define OMP_PRAGMA(x) _Pragma(#x)
#define OMP(x) OMP_PRAGMA(omp x)
#else
#define OMP(x)
#endif

// C (M,N) = (accumulate ? C : 0) + A (M,K) @ B (K,N).
// A is read as A[m*ars + k*acs], so a transposed A costs nothing (pass ars=1, acs=lda);
// B likewise as B[k*brs + n*bcs] (a torch.nn.Linear weight (N,K) is B with brs=1, bcs=K);
// C is row-major with row stride ldc.
// Deterministic: each C element is summed by one thread in increasing k, whatever the thread count.
void cpu_gemm(float *C, int ldc, const float *A, long ars, long acs, const float *B, long brs, long bcs, int M, int N,
              int K, int accumulate);

// GELU (tanh approximation) over n elements, for the fused MLP ops of matmul.c (pointwise.c):
// out = gelu(inp); dinp = gelu'(inp) * dout, overwritten (dinp may be dout).
void cpu_gelu_forward(float *out, const float *inp, size_t n);
void cpu_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);

// ---- e^x and tanh without libm, in scalar and 16-lane form ----
// libm's expf/tanhf are scalar calls (glibc's vector versions need -ffast-math), and they made
// the softmax, the classifier and GELU cost more than the matmuls. Here: x = n*ln2 + r,
// |r| <= ln2/2, e^r by its Taylor polynomial to r^7 (relative error ~2e-7), 2^n built in the
// exponent bits. Only x <= 0 is ever needed (softmax subtracts the max; tanh is computed from
// e^{-2|u|}), so inputs are clamped below at -87 where float's exponent range ends.
// The vector form is a macro over GNU vector types (gcc and clang; AVX-512 with -march=native,
// split into narrower registers elsewhere): a function taking a 64-byte vector would change the
// ABI on builds without AVX-512. Scalar and vector forms do the same operations in the same order.
typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));
#define V16_LOAD(v, p) memcpy(&(v), (p), sizeof(v16f))
#define V16_STORE(p, v) memcpy((p), &(v), sizeof(v16f))
#define EXP_POLY(r) (1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040))))))))

static inline float cpu_expf(float x) {  // x <= 0
    if (x != x) return x;  // NaN stays NaN (and never reaches the int conversion)
    x = x < -87.0f ? -87.0f : x;
    int32_t n = (int32_t)(x * 1.44269504088896341f + 128.5f) - 128;  // round(x / ln2), x >= -87
    float r = x - (float)n * 0.693145751953125f - (float)n * 1.428606765330187e-06f;  // ln2 in two parts
    union { int32_t i; float f; } scale = {.i = (n + 127) << 23};
    return EXP_POLY(r) * scale.f;
}
// y = e^x, lane-wise, for x <= 0
#define V16_EXP(y, x)                                                                          \
    do {                                                                                       \
        v16f x_ = (x);                                                                         \
        v16i lo_ = x_ < -87.0f;                                                                \
        x_ = (v16f)((lo_ & (v16i)((v16f){0} - 87.0f)) | (~lo_ & (v16i)x_));                    \
        v16i n_ = __builtin_convertvector(x_ * 1.44269504088896341f + 128.5f, v16i) - 128;     \
        v16f nf_ = __builtin_convertvector(n_, v16f);                                          \
        v16f r_ = x_ - nf_ * 0.693145751953125f - nf_ * 1.428606765330187e-06f;                \
        (y) = EXP_POLY(r_) * (v16f)((n_ + 127) << 23);                                         \
    } while (0)

// tanh(u) = sign(u) (1 - e) / (1 + e) with e = e^{-2|u|}. Absolute error ~1e-7.
static inline float cpu_tanhf(float u) {
    float e = cpu_expf(-2.0f * __builtin_fabsf(u));
    return __builtin_copysignf((1.0f - e) / (1.0f + e), u);
}
#define V16_TANH(y, u)                                                                         \
    do {                                                                                       \
        v16i bits_ = (v16i)(u);                                                                \
        v16i sign_ = bits_ & (int32_t)0x80000000;                                              \
        v16f e_;                                                                               \
        V16_EXP(e_, -2.0f * (v16f)(bits_ & 0x7fffffff));                                       \
        (y) = (v16f)((v16i)((1.0f - e_) / (1.0f + e_)) | sign_);                               \
    } while (0)

// a[i] = e^(a[i] - mx) for i < n, returns the sum (lanes summed in a fixed order: deterministic).
// The softmax of attention (training and KV-cache decoding alike) and of the classifier.
static inline float cpu_exp_sum(float *a, int n, float mx) {
    v16f acc = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        v16f x, e;
        V16_LOAD(x, a + i);
        V16_EXP(e, x - mx);
        V16_STORE(a + i, e);
        acc += e;
    }
    float sum = 0.0f;
    for (int j = 0; j < 16; j++) sum += acc[j];
    for (; i < n; i++) sum += (a[i] = cpu_expf(a[i] - mx));
    return sum;
}

// max of a[0..n), 16 lanes at a time (a ternary in a scalar loop does not vectorise under -std=c11)
static inline float cpu_max(const float *a, int n) {
    float mx = -INFINITY;
    int i = 0;
    if (n >= 16) {
        v16f m;
        V16_LOAD(m, a);
        for (i = 16; i + 16 <= n; i += 16) {
            v16f x;
            V16_LOAD(x, a + i);
            v16i gt = x > m;
            m = (v16f)((gt & (v16i)x) | (~gt & (v16i)m));
        }
        for (int j = 0; j < 16; j++) mx = m[j] > mx ? m[j] : mx;
    }
    for (; i < n; i++) mx = a[i] > mx ? a[i] : mx;
    return mx;
}
