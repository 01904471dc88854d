// LayerNorm over the channel dim (eps 1e-5): one warp per row for the row-wise work; the weight
// and bias gradients are column sums over all rows, done in two deterministic stages (per-chunk
// partial sums, then the chunks added in order) so that no atomics decide the bits. Rows, weights
// and biases are in the compute type X; statistics, dw and db are fp32.
#include "kernels/cuda/common.cuh"

#define LN_WARPS 8         // rows per block in the row-wise kernels
#define COL_ROWS 256       // rows per partial sum in the column reductions

// out (N,C), mean (N,), rstd (N,); fp32 statistics, two passes over the row (mean, then the
// centred variance), as the CPU backend does.
template <class X>
__global__ void layernorm_forward_kernel(X *out, float *mean, float *rstd, const X *inp, const X *w, const X *b, int N,
                                         int C) {
    int row = blockIdx.x * LN_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= N) return;
    const X *x = inp + (size_t)row * C;
    float s = 0.0f;
    for (int i = lane; i < C; i += 32) s += ldx(x[i]);
    float m = warp_sum(s) / C;
    float v = 0.0f;
    for (int i = lane; i < C; i += 32) { float d = ldx(x[i]) - m; v += d * d; }
    float r = 1.0f / sqrtf(warp_sum(v) / C + 1e-5f);
    X *o = out + (size_t)row * C;
    for (int i = lane; i < C; i += 32) o[i] = stx<X>((ldx(x[i]) - m) * r * ldx(w[i]) + ldx(b[i]));
    if (lane == 0) { mean[row] = m; rstd[row] = r; }
}

template <class X>
static void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                              int N, int C) {
    cuda_init();
    if (N <= 0) return;
    layernorm_forward_kernel<X><<<cdiv(N, LN_WARPS), 32 * LN_WARPS>>>((X *)out, mean, rstd, (const X *)inp,
                                                                      (const X *)w, (const X *)b, N, C);
    LAUNCH_CHECK("layernorm_forward N=%d C=%d", N, C);
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

// Stage 2: per column, the chunks in order, added into dw / db.
__global__ void column_finish_kernel(float *dw, float *db, const float *pw, const float *pb, int R, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float tw = 0.0f, tb = 0.0f;
    for (int r = 0; r < R; r++) { tw += pw[(size_t)r * C + c]; if (db) tb += pb[(size_t)r * C + c]; }
    dw[c] += tw;
    if (db) db[c] += tb;
}

template <class X>
static void layernorm_backward(float *dinp_, float *dw, float *db, const float *dout_, const float *inp_,
                               const float *w, const float *mean, const float *rstd, int N, int C) {
    cuda_init();
    if (N <= 0) return;
    X *dinp = (X *)dinp_;
    const X *dout = (const X *)dout_, *inp = (const X *)inp_;
    layernorm_backward_dinp_kernel<X><<<cdiv(N, LN_WARPS), 32 * LN_WARPS>>>(dinp, dout, inp, (const X *)w, mean, rstd, N, C);
    LAUNCH_CHECK("layernorm_backward (dinp) N=%d C=%d", N, C);
    int R = (int)cdiv(N, COL_ROWS);
    float *pw = (float *)cuda_scratch(0, (size_t)2 * R * C * sizeof(float)), *pb = pw + (size_t)R * C;
    dim3 grid(cdiv(C, 32), R), block(32, 8);
    layernorm_backward_dwdb_partial<X><<<grid, block>>>(pw, pb, dout, inp, mean, rstd, N, C);
    LAUNCH_CHECK("layernorm_backward (dw,db partial) N=%d C=%d", N, C);
    column_finish_kernel<<<cdiv(C, 256), 256>>>(dw, db, pw, pb, R, C);
    LAUNCH_CHECK("layernorm_backward (dw,db) N=%d C=%d", N, C);
}

// ---- the column sum the matmul's bias gradient needs: dbias (OC,) += sum over rows of dout ----

template <class X> __global__ void colsum_partial_kernel(float *part, const X *dout, int N, int OC) {
    __shared__ float s[8][33];
    int c = blockIdx.x * 32 + threadIdx.x, r0 = blockIdx.y * COL_ROWS;
    int r1 = r0 + COL_ROWS < N ? r0 + COL_ROWS : N;
    float a = 0.0f;
    if (c < OC)
        for (int r = r0 + threadIdx.y; r < r1; r += 8) a += ldx(dout[(size_t)r * OC + c]);
    s[threadIdx.y][threadIdx.x] = a;
    __syncthreads();
    if (threadIdx.y == 0 && c < OC) {
        float t = 0.0f;
        for (int y = 0; y < 8; y++) t += s[y][threadIdx.x];
        part[(size_t)blockIdx.y * OC + c] = t;
    }
}

template <class X> void cuda_colsum_add(float *dbias, const X *dout, int N, int OC) {
    if (N <= 0 || OC <= 0) return;
    int R = (int)cdiv(N, COL_ROWS);
    float *part = (float *)cuda_scratch(0, (size_t)R * OC * sizeof(float));
    dim3 grid(cdiv(OC, 32), R), block(32, 8);
    colsum_partial_kernel<X><<<grid, block>>>(part, dout, N, OC);
    LAUNCH_CHECK("matmul_backward (dbias partial) N=%d OC=%d", N, OC);
    column_finish_kernel<<<cdiv(OC, 256), 256>>>(dbias, nullptr, part, nullptr, R, OC);
    LAUNCH_CHECK("matmul_backward (dbias) N=%d OC=%d", N, OC);
}
template void cuda_colsum_add<float>(float *, const float *, int, int);
template void cuda_colsum_add<bf16>(float *, const bf16 *, int, int);

template <class X> void cu_ops_layernorm(Backend *b) {
    b->layernorm_forward = layernorm_forward<X>;
    b->layernorm_backward = layernorm_backward<X>;
}
CU_OPS_INSTANTIATE(cu_ops_layernorm)
