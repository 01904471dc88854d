// Every op of both CUDA tables against the CPU backend (the reference) on random inputs drawn
// fresh each run (the seed is printed, TRACELLM_TEST_SEED replays one), never zeros. Forward
// outputs, and the activation gradients backward ops write (kernels/ops.h), are poisoned with NaN
// on the device before each run, so an unwritten element fails; parameter gradients and the
// residual stream's (layernorm_backward's dinp) start from random values on both sides, which
// checks that they ACCUMULATE.
//
// Tolerances, as max |gpu - cpu| <= tol * max(|cpu|) per tensor.
// cuda-fp32 (every tensor fp32):
//   elementwise / row ops ..................................... 1e-5 (different summation order)
//   matmul, TRACELLM_CUDA_MATMUL=fp32 ......................... 1e-5
//   matmul, tf32 (the default) ................................ 5e-3 (10-bit mantissa operands)
//   matmul, bf16 operands ..................................... 3e-2 (8-bit mantissa operands)
//   attention, fp32 mode (CUDA cores, online softmax) ......... 1e-5
//   attention, tf32 mode (tensor cores, TF32 Q K V P dO) ...... 5e-3
// (the bf16 table's attention runs all its tensor-core kernels: mma.sync, mma.sync with 32 forward
// rows a warp, mma.sync with dQ from the stored dS, with 32-row tiles, then WMMA; the mma.sync ones, and auto's timed
// choice among them, must also agree with each other bit for bit)
// cuda (bf16 compute type): the inputs are rounded to bf16 first, so both sides see the same
// numbers and only the op's own rounding differs:
//   any op's bf16 output (8-bit mantissa, round to nearest) ... 1e-2
//   fp32 outputs (statistics, losses, parameter gradients) .... as in fp32 (fp32 arithmetic inside)
// and exact equality where the CUDA kernel adds in the CPU's order (encoder backward) or only
// moves values (residual and KV-cache stores in fp32).
// Without a usable GPU every case SKIPs with the CUDA error.
#include "kernels/cuda/backend_cuda.h"
#include "kernels/ops.h"
#include "model/gpt.h"
#include "test/test.h"
#include "util/rng.h"
#include "util/util.h"
#include <math.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

static const Backend *cpu = &backend_cpu, *gpu;  // gpu: the table under test
static int have_gpu, bf;                          // bf: its compute type is bf16
static char why[256];
static Rng rng;

#define GPU_OR_SKIP() do { if (!have_gpu) SKIP("no usable GPU: %s", why); } while (0)

static float *rand_h(size_t n, double scale) {
    float *p = xmalloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = (float)(scale * (2 * rng_uniform(&rng) - 1));
    return p;
}
// to the nearest bf16 (even on ties), in place
static void round_bf16(float *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &p[i], 4);
        u = (u + 0x7fffu + ((u >> 16) & 1)) & 0xffff0000u;
        memcpy(&p[i], &u, 4);
    }
}
// random values of the compute type: what a compute-type tensor of the table can hold
static float *rand_x(size_t n, double scale) {
    float *p = rand_h(n, scale);
    if (bf) round_bf16(p, n);
    return p;
}
static float *copy_h(const float *src, size_t n) {
    float *p = xmalloc((n ? n : 1) * sizeof *p);
    memcpy(p, src, n * sizeof *p);
    return p;
}
// device copy of a host array
static void *dev(const void *host, size_t bytes) {
    void *d = gpu->alloc(bytes);
    gpu->upload(d, host, bytes);
    return d;
}
// fills a device buffer with NaN (all bits set)
static void poison(void *d, size_t bytes) {
    unsigned char *h = xmalloc(bytes ? bytes : 1);
    memset(h, 0xff, bytes);
    gpu->upload(d, h, bytes);
    free(h);
}
static float *down(const void *d, size_t n) {
    float *h = xmalloc((n ? n : 1) * sizeof *h);
    gpu->download(h, d, n * sizeof *h);
    return h;
}
// the same for compute-type tensors: n elements of act_bytes each
static float *xdev(const float *host, size_t n) {
    float *d = gpu->alloc(n * gpu->act_bytes);
    gpu->upload_act(d, host, n);
    return d;
}
static float *xalloc(size_t n) { return gpu->alloc(n * gpu->act_bytes); }
static void xpoison(void *d, size_t n) { poison(d, n * gpu->act_bytes); }
static float *xdown(const float *d, size_t n) {
    float *h = xmalloc((n ? n : 1) * sizeof *h);
    gpu->download_act(h, d, n);
    return h;
}
// the tolerance of an op's compute-type output: `fp32` for the fp32 table, else bf16's
static double xtol(double fp32) { return bf ? 1e-2 : fp32; }

// max |got - want| <= tol * max|want| (+ a floor for all-tiny tensors); NaN fails.
static void close_to(const char *what, const float *got, const float *want, size_t n, double tol) {
    double worst = 0, scale = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= worst)) { worst = d; at = i; }
    }
    double bound = tol * scale + 1e-30;
    CHECKF(worst <= bound, "%s: max |gpu - cpu| = %.3g at %zu (gpu %.9g, cpu %.9g), allowed %.3g (%.0e of max %.3g)",
           what, worst, at, got[at], want[at], bound, tol, scale);
}
static void same_bits(const char *what, const float *got, const float *want, size_t n) {
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], 4)) { if (!bad) first = i; bad++; }
    CHECKF(bad == 0, "%s: %zu of %zu elements differ from the reference (first at %zu: %.9g vs %.9g)", what, bad, n, first,
           got[first], want[first]);
}

// ---------------------------------------------------------------------------------------------

// C 40: 16-byte loads in the forward; C 36: one element a thread in the bf16 table
static void test_encoder_at(int C) {
    int B = 3, T = 37, V = 11;  // few tokens: rows of dwte collide often
    size_t BT = (size_t)B * T;
    int32_t *inp = xmalloc(BT * 4);
    // about half the positions are token 0, as a separator is in trace text: one long chain of adds
    for (size_t i = 0; i < BT; i++) inp[i] = rng_uniform(&rng) < 0.5 ? 0 : (int32_t)rng_below(&rng, V);
    float *wte = rand_x((size_t)V * C, 1), *wpe = rand_x((size_t)T * C, 1), *out = xmalloc(BT * C * 4);
    cpu->encoder_forward(out, inp, wte, wpe, B, T, C);
    int32_t *d_inp = dev(inp, BT * 4);
    float *d_wte = xdev(wte, (size_t)V * C), *d_wpe = xdev(wpe, (size_t)T * C), *d_out = xalloc(BT * C);
    xpoison(d_out, BT * C);
    gpu->encoder_forward(d_out, d_inp, d_wte, d_wpe, B, T, C);
    float *g = xdown(d_out, BT * C);
    if (bf) close_to("encoder_forward", g, out, BT * C, xtol(0));
    else same_bits("encoder_forward", g, out, BT * C);
    free(g);
    // backward: random starting gradients (fp32 parameter gradients), accumulated into
    float *dout = rand_x(BT * C, 1), *dwte = rand_h((size_t)V * C, 1), *dwpe = rand_h((size_t)T * C, 1);
    float *d_dout = xdev(dout, BT * C);
    float *d_dwte[2] = {dev(dwte, (size_t)V * C * 4), dev(dwte, (size_t)V * C * 4)};
    float *d_dwpe[2] = {dev(dwpe, (size_t)T * C * 4), dev(dwpe, (size_t)T * C * 4)};
    cpu->encoder_backward(dwte, dwpe, dout, inp, NULL, B, T, C);
    // with the ids' host copy (as the model passes it), then without (read back from the device)
    for (int way = 0; way < 2; way++) {
        gpu->encoder_backward(d_dwte[way], d_dwpe[way], d_dout, d_inp, way == 0 ? inp : NULL, B, T, C);
        float *g1 = down(d_dwte[way], (size_t)V * C), *g2 = down(d_dwpe[way], (size_t)T * C);
        same_bits(way == 0 ? "encoder_backward dwte (same order of additions as the CPU), host ids"
                           : "encoder_backward dwte (same order of additions as the CPU), ids read back",
                  g1, dwte, (size_t)V * C);
        same_bits("encoder_backward dwpe", g2, dwpe, (size_t)T * C);
        free(g1); free(g2);
    }
    void *dv[] = {d_inp, d_wte, d_wpe, d_out, d_dout, d_dwte[0], d_dwpe[0], d_dwte[1], d_dwpe[1]};
    for (size_t i = 0; i < sizeof dv / sizeof *dv; i++) gpu->free(dv[i]);
    free(inp); free(wte); free(wpe); free(out); free(dout); free(dwte); free(dwpe);
}
static void test_encoder(void) {
    GPU_OR_SKIP();
    test_encoder_at(40);
    test_encoder_at(36);
}

// C 77: the split backward kernels (rows not 16-byte aligned); C 96, 520 and 1024: the fused one,
// its sums in registers (bf16: one, three with the last partial, four vectors a lane; fp32: one,
// else too wide) and in shared memory
static void test_layernorm_at(int C) {
    int N = 300;
    size_t NC = (size_t)N * C;
    float *x = rand_h(NC, 2), *w = rand_x(C, 1), *b = rand_x(C, 1);
    for (size_t i = 0; i < NC; i++) x[i] += (float)(i % C) * 0.01f;  // nonzero row means
    if (bf) round_bf16(x, NC);
    float *out = xmalloc(NC * 4), *mean = xmalloc(N * 4), *rstd = xmalloc(N * 4);
    cpu->layernorm_forward(out, mean, rstd, x, w, b, N, C);
    float *d_x = xdev(x, NC), *d_w = xdev(w, C), *d_b = xdev(b, C);
    float *d_out = xalloc(NC), *d_mean = gpu->alloc(N * 4), *d_rstd = gpu->alloc(N * 4);
    xpoison(d_out, NC); poison(d_mean, N * 4); poison(d_rstd, N * 4);
    gpu->layernorm_forward(d_out, d_mean, d_rstd, d_x, d_w, d_b, N, C);
    float *g = xdown(d_out, NC), *gm = down(d_mean, N), *gr = down(d_rstd, N);
    close_to("layernorm_forward out", g, out, NC, xtol(1e-5));
    close_to("layernorm_forward mean", gm, mean, N, 1e-5);
    close_to("layernorm_forward rstd", gr, rstd, N, 1e-5);
    float *dout = rand_x(NC, 1), *dinp = rand_x(NC, 1), *dw = rand_h(C, 1), *db = rand_h(C, 1);
    float *d_dout = xdev(dout, NC), *d_dinp = xdev(dinp, NC), *d_dw = dev(dw, C * 4), *d_db = dev(db, C * 4);
    // the default way, then the fused kernel with its sums in shared memory: the same bits
    float *first[3] = {NULL, NULL, NULL};
    for (int way = CUDA_LAYERNORM_FUSED; way <= CUDA_LAYERNORM_SHARED; way++) {
        gpu->upload_act(d_dinp, dinp, NC);
        gpu->upload(d_dw, dw, C * 4);
        gpu->upload(d_db, db, C * 4);
        cuda_set_layernorm_backward(way);
        gpu->layernorm_backward(d_dinp, d_dw, d_db, d_dout, d_x, d_w, d_mean, d_rstd, N, C);
        float *got[3] = {xdown(d_dinp, NC), down(d_dw, C), down(d_db, C)};
        if (way == CUDA_LAYERNORM_FUSED) memcpy(first, got, sizeof got);
        else {
            same_bits("layernorm_backward dinp, shared-memory sums", got[0], first[0], NC);
            same_bits("layernorm_backward dw, shared-memory sums", got[1], first[1], C);
            same_bits("layernorm_backward db, shared-memory sums", got[2], first[2], C);
            for (int i = 0; i < 3; i++) free(got[i]);
        }
    }
    cuda_set_layernorm_backward(CUDA_LAYERNORM_FUSED);
    cpu->layernorm_backward(dinp, dw, db, dout, x, w, mean, rstd, N, C);
    close_to("layernorm_backward dinp", first[0], dinp, NC, xtol(1e-5));
    close_to("layernorm_backward dw", first[1], dw, C, 1e-5);
    close_to("layernorm_backward db", first[2], db, C, 1e-5);
    free(g); free(gm); free(gr);
    for (int i = 0; i < 3; i++) free(first[i]);
    // the residual add fused in: res = x + dout, then its LayerNorm; vs the CPU's fused op, and the
    // same bits as this backend's residual_forward + layernorm_forward
    float *res = xmalloc(NC * 4);
    cpu->residual_layernorm_forward(res, out, mean, rstd, x, dout, w, b, N, C);
    float *d_res = xalloc(NC), *d_res2 = xalloc(NC), *d_out2 = xalloc(NC);
    float *d_mean2 = gpu->alloc(N * 4), *d_rstd2 = gpu->alloc(N * 4);
    xpoison(d_res, NC); xpoison(d_out, NC); poison(d_mean, N * 4); poison(d_rstd, N * 4);
    gpu->residual_layernorm_forward(d_res, d_out, d_mean, d_rstd, d_x, d_dout, d_w, d_b, N, C);
    gpu->residual_forward(d_res2, d_x, d_dout, NC);
    gpu->layernorm_forward(d_out2, d_mean2, d_rstd2, d_res2, d_w, d_b, N, C);
    float *gres = xdown(d_res, NC), *gout = xdown(d_out, NC), *gres2 = xdown(d_res2, NC), *gout2 = xdown(d_out2, NC);
    float *gmean = down(d_mean, N), *gmean2 = down(d_mean2, N);
    close_to("residual_layernorm_forward res", gres, res, NC, xtol(1e-5));
    close_to("residual_layernorm_forward out", gout, out, NC, xtol(1e-5));
    same_bits("residual_layernorm_forward res == residual_forward", gres, gres2, NC);
    same_bits("residual_layernorm_forward out == layernorm_forward of it", gout, gout2, NC);
    same_bits("residual_layernorm_forward mean", gmean, gmean2, N);
    free(res); free(gres); free(gout); free(gres2); free(gout2); free(gmean); free(gmean2);
    void *dv2[] = {d_res, d_res2, d_out2, d_mean2, d_rstd2};
    for (size_t i = 0; i < 5; i++) gpu->free(dv2[i]);
    void *dv[] = {d_x, d_w, d_b, d_out, d_mean, d_rstd, d_dout, d_dinp, d_dw, d_db};
    for (size_t i = 0; i < 10; i++) gpu->free(dv[i]);
    free(x); free(w); free(b); free(out); free(mean); free(rstd); free(dout); free(dinp); free(dw); free(db);
}
static void test_layernorm(void) {
    GPU_OR_SKIP();
    test_layernorm_at(77);
    test_layernorm_at(96);
    test_layernorm_at(520);
    test_layernorm_at(1024);  // fused, past the default 48 KiB of shared memory
}

// One matmul forward + backward in the given GEMM mode; `shift` offsets every device pointer by
// one element (2- or 4-byte alignment only, as a layer's slice of the stacked weights can be).
static void matmul_case(int mode, const char *mname, double tol, int N, int C, int OC, int with_bias, int shift) {
    cuda_set_matmul_mode(mode);
    size_t nx = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
    float *x = rand_x(nx, 1), *w = rand_x(nw, 1), *bias = with_bias ? rand_x(OC, 1) : NULL, *out = xmalloc(no * 4);
    cpu->matmul_forward(out, x, w, bias, N, C, OC);
    size_t s = shift;
    float *m_x = xalloc(nx + 1), *m_w = xalloc(nw + 1), *m_b = xalloc(OC + 1), *m_o = xalloc(no + 1);
    float *d_x = act_at(gpu, m_x, s), *d_w = act_at(gpu, m_w, s), *d_b = with_bias ? act_at(gpu, m_b, s) : NULL;
    float *d_o = act_at(gpu, m_o, s);
    gpu->upload_act(d_x, x, nx); gpu->upload_act(d_w, w, nw);
    if (with_bias) gpu->upload_act(d_b, bias, OC);
    xpoison(d_o, no);
    gpu->matmul_forward(d_o, d_x, d_w, d_b, N, C, OC);
    char what[160];
    float *g = xdown(d_o, no);
    snprintf(what, sizeof what, "matmul_forward %s N=%d C=%d OC=%d bias=%d shift=%d", mname, N, C, OC, with_bias, shift);
    close_to(what, g, out, no, tol);
    free(g);
    // backward: dinp written over NaN (and over random values on the CPU), dweight and dbias
    // accumulating into random gradients
    float *dout = rand_x(no, 1), *dinp = rand_x(nx, 1), *dw = rand_h(nw, 1), *dbias = rand_h(OC, 1);
    float *m_do = xalloc(no + 1), *m_di = xalloc(nx + 1), *m_dw = gpu->alloc((nw + 1) * 4);
    float *m_db = gpu->alloc((OC + 1) * 4);
    float *d_do = act_at(gpu, m_do, s), *d_di = act_at(gpu, m_di, s), *d_dw = m_dw + s, *d_db = m_db + s;
    gpu->upload_act(d_do, dout, no);
    xpoison(d_di, nx);
    gpu->upload(d_dw, dw, nw * 4); gpu->upload(d_db, dbias, OC * 4);
    cpu->matmul_backward(dinp, dw, with_bias ? dbias : NULL, dout, x, w, N, C, OC);
    gpu->matmul_backward(d_di, d_dw, with_bias ? d_db : NULL, d_do, d_x, d_w, N, C, OC);
    float *g1 = xdown(d_di, nx), *g2 = down(d_dw, nw), *g3 = down(d_db, OC);
    snprintf(what, sizeof what, "matmul_backward dinp %s N=%d C=%d OC=%d shift=%d", mname, N, C, OC, shift);
    close_to(what, g1, dinp, nx, tol);
    snprintf(what, sizeof what, "matmul_backward dweight %s N=%d C=%d OC=%d shift=%d", mname, N, C, OC, shift);
    close_to(what, g2, dw, nw, bf ? 1e-5 : tol);  // bf16 operands are exact in fp32 products: only the order differs
    snprintf(what, sizeof what, "matmul_backward dbias %s N=%d OC=%d (bias=%d)", mname, N, OC, with_bias);
    close_to(what, g3, dbias, OC, 1e-5);  // fp32 column sums whatever the GEMM mode (untouched without bias)
    free(g1); free(g2); free(g3);
    void *dv[] = {m_x, m_w, m_b, m_o, m_do, m_di, m_dw, m_db};
    for (size_t i = 0; i < 8; i++) gpu->free(dv[i]);
    free(x); free(w); free(bias); free(out); free(dout); free(dinp); free(dw); free(dbias);
    cuda_set_matmul_mode(CUDA_MATMUL_TF32);
}

static void test_matmul(void) {
    GPU_OR_SKIP();
    // the fp32 table in its three GEMM modes; the bf16 table's GEMMs are bf16 whatever the mode
    static const struct { int mode; const char *name; double tol; } modes[] = {
        {CUDA_MATMUL_FP32, "fp32", 1e-5}, {CUDA_MATMUL_TF32, "tf32", 5e-3}, {CUDA_MATMUL_BF16, "bf16", 3e-2}},
        bf16_table = {CUDA_MATMUL_TF32, "bf16 table", 1e-2};
    for (int m = 0; m < (bf ? 1 : 3); m++) {
        int mode = bf ? bf16_table.mode : modes[m].mode;
        const char *name = bf ? bf16_table.name : modes[m].name;
        double tol = bf ? bf16_table.tol : modes[m].tol;
        matmul_case(mode, name, tol, 67, 48, 80, 1, 0);
        matmul_case(mode, name, tol, 64, 64, 320, 0, 0);  // the tied classifier: no bias
        matmul_case(mode, name, tol, 37, 33, 19, 1, 1);   // odd sizes, element-aligned only
        matmul_case(mode, name, tol, 512, 256, 768, 1, 0);
    }
    if (bf) {  // the bias gradient by the dweight GEMM's BGRADB epilogue (the column sums where cuBLASLt refuses it)
        cuda_set_bias_grad_epilogue(1);
        matmul_case(bf16_table.mode, "bf16 table, BGRADB", bf16_table.tol, 67, 48, 80, 1, 0);
        matmul_case(bf16_table.mode, "bf16 table, BGRADB", bf16_table.tol, 37, 33, 19, 1, 1);
        matmul_case(bf16_table.mode, "bf16 table, BGRADB", bf16_table.tol, 512, 256, 768, 1, 0);
        cuda_set_bias_grad_epilogue(0);
    }
}

static void attention_case(const char *mode, double tol, int B, int T, int C, int NH) {
    size_t nqkv = (size_t)B * T * 3 * C, no = (size_t)B * T * C;
    float *qkv = rand_x(nqkv, 2), *out = xmalloc(no * 4);
    float *att = xmalloc(cpu->attention_state_size(B, T, NH) * 4);
    cpu->attention_forward(out, att, qkv, B, T, C, NH);
    float *d_qkv = xdev(qkv, nqkv), *d_out = xalloc(no);
    float *d_state = gpu->alloc(gpu->attention_state_size(B, T, NH) * 4);
    xpoison(d_out, no);
    poison(d_state, gpu->attention_state_size(B, T, NH) * 4);
    gpu->attention_forward(d_out, d_state, d_qkv, B, T, C, NH);
    char what[128];
    float *g = xdown(d_out, no);
    snprintf(what, sizeof what, "attention_forward %s B=%d T=%d C=%d NH=%d", mode, B, T, C, NH);
    close_to(what, g, out, no, tol);
    // the backward takes the GPU's own (rounded) output, as in training; the CPU its exact one
    float *dout = rand_x(no, 1), *dqkv = rand_x(nqkv, 1);  // dqkv: written over (random here, NaN there)
    float *d_dout = xdev(dout, no), *d_dqkv = xalloc(nqkv);
    xpoison(d_dqkv, nqkv);
    cpu->attention_backward(dqkv, dout, qkv, out, att, B, T, C, NH);
    gpu->attention_backward(d_dqkv, d_dout, d_qkv, d_out, d_state, B, T, C, NH);
    float *g1 = xdown(d_dqkv, nqkv);
    snprintf(what, sizeof what, "attention_backward dqkv %s B=%d T=%d C=%d NH=%d", mode, B, T, C, NH);
    close_to(what, g1, dqkv, nqkv, tol);
    free(g); free(g1);
    gpu->free(d_qkv); gpu->free(d_out); gpu->free(d_state); gpu->free(d_dout); gpu->free(d_dqkv);
    free(qkv); free(out); free(att); free(dout); free(dqkv);
}

static void test_attention(void) {
    GPU_OR_SKIP();
    // strict fp32: the CUDA-core kernels; tf32 (the default): the tensor-core kernels, except hs 8
    // (in the bf16 table both, with bf16 inputs and outputs)
    static const struct { int mode; const char *name; double tol; } modes[] = {
        {CUDA_MATMUL_FP32, "fp32", 1e-5}, {CUDA_MATMUL_TF32, "tf32", 5e-3}};
    // the bf16 table's tensor-core attention: the mma.sync kernels, with 32 forward rows a warp,
    // the mma.sync backward with dQ from the stored dS, and with 32-row tiles, then the WMMA ones
    static const struct { int kernel, dq; const char *name; } kernels[] = {
        {CUDA_ATTENTION_MMA, CUDA_ATTENTION_DQ_RECOMPUTE, "mma"},
        {CUDA_ATTENTION_MMA32, CUDA_ATTENTION_DQ_RECOMPUTE, "mma32"},
        {CUDA_ATTENTION_MMA, CUDA_ATTENTION_DQ_STORED, "mma dS-stored"},
        {CUDA_ATTENTION_MMA, CUDA_ATTENTION_DQ_RECOMPUTE32, "mma 32-row tiles"},
        {CUDA_ATTENTION_WMMA, CUDA_ATTENTION_DQ_RECOMPUTE, "wmma"}};
    for (int k = 0; k < (bf ? 5 : 1); k++) {
        cuda_set_attention_kernel(kernels[k].kernel);
        cuda_set_attention_dq(kernels[k].dq);
        for (int m = 0; m < 2; m++) {
            cuda_set_matmul_mode(modes[m].mode);
            double tol = xtol(modes[m].tol);
            char name[32];
            snprintf(name, sizeof name, "%s%s%s", modes[m].name, bf ? " " : "", bf ? kernels[k].name : "");
            attention_case(name, tol, 2, 70, 48, 3);    // hs 16, T crosses the 32- and 64-row tiles
            attention_case(name, tol, 1, 130, 128, 2);  // hs 64 (GPT-2's)
            attention_case(name, tol, 3, 5, 32, 4);     // hs 8, shorter than a tile
            attention_case(name, tol, 1, 67, 256, 2);   // hs 128
            attention_case(name, tol, 1, 40, 64, 2);    // hs 32
            attention_case(name, tol, 2, 200, 128, 2);  // hs 64, several key tiles before the diagonal
        }
    }
    cuda_set_attention_kernel(CUDA_ATTENTION_AUTO);
    cuda_set_attention_dq(CUDA_ATTENTION_DQ_AUTO);
    cuda_set_matmul_mode(CUDA_MATMUL_TF32);
}

// The mma.sync variants, and auto's timed choice among them, must give the same bits: a choice
// made by timing must not change a run (resume and repeat stay bit-identical whatever was faster).
// out, lse and dqkv of each, with rings of 2 and of 3 tile buffers, against the plain mma /
// recompute pair's with 2.
static void attention_variants_case(int B, int T, int C, int NH) {
    static const struct { int kernel, dq, stages; const char *name; } ways[] = {
        {CUDA_ATTENTION_MMA, CUDA_ATTENTION_DQ_RECOMPUTE, 2, "mma, recompute"},
        {CUDA_ATTENTION_MMA32, CUDA_ATTENTION_DQ_RECOMPUTE, 2, "mma32, recompute"},
        {CUDA_ATTENTION_MMA, CUDA_ATTENTION_DQ_STORED, 2, "mma, stored dS"},
        {CUDA_ATTENTION_MMA32, CUDA_ATTENTION_DQ_STORED, 2, "mma32, stored dS"},
        {CUDA_ATTENTION_MMA, CUDA_ATTENTION_DQ_RECOMPUTE32, 2, "mma, recompute with 32-row tiles"},
        {CUDA_ATTENTION_AUTO, CUDA_ATTENTION_DQ_AUTO, 2, "auto (timed)"},
        {CUDA_ATTENTION_MMA, CUDA_ATTENTION_DQ_RECOMPUTE, 3, "mma, recompute"},
        {CUDA_ATTENTION_MMA32, CUDA_ATTENTION_DQ_RECOMPUTE, 3, "mma32, recompute"},
        {CUDA_ATTENTION_MMA, CUDA_ATTENTION_DQ_STORED, 3, "mma, stored dS"},
        {CUDA_ATTENTION_MMA32, CUDA_ATTENTION_DQ_STORED, 3, "mma32, stored dS"},
        {CUDA_ATTENTION_MMA, CUDA_ATTENTION_DQ_RECOMPUTE32, 3, "mma, recompute with 32-row tiles"},
        {CUDA_ATTENTION_AUTO, CUDA_ATTENTION_DQ_AUTO, 0, "auto (timed, rings too)"}};
    enum { NWAYS = sizeof ways / sizeof *ways };
    size_t nqkv = (size_t)B * T * 3 * C, no = (size_t)B * T * C, ns = gpu->attention_state_size(B, T, NH);
    float *qkv = rand_x(nqkv, 2), *dout = rand_x(no, 1);
    float *d_qkv = xdev(qkv, nqkv), *d_dout = xdev(dout, no), *d_out = xalloc(no), *d_dqkv = xalloc(nqkv);
    float *d_state = gpu->alloc(ns * 4);
    float *ref[3] = {NULL, NULL, NULL};
    for (int w = 0; w < NWAYS; w++) {
        cuda_set_attention_stages(ways[w].stages);
        cuda_set_attention_kernel(ways[w].kernel);
        cuda_set_attention_dq(ways[w].dq);
        if (ways[w].kernel == CUDA_ATTENTION_AUTO) cuda_set_attention_tune_min(0);  // time even this small size
        xpoison(d_out, no);
        poison(d_state, ns * 4);
        xpoison(d_dqkv, nqkv);
        gpu->attention_forward(d_out, d_state, d_qkv, B, T, C, NH);
        gpu->attention_backward(d_dqkv, d_dout, d_qkv, d_out, d_state, B, T, C, NH);
        float *got[3] = {xdown(d_out, no), down(d_state, ns), xdown(d_dqkv, nqkv)};
        if (w == 0) {
            for (int i = 0; i < 3; i++) ref[i] = got[i];
            continue;
        }
        static const char *const what[3] = {"out", "lse", "dqkv"};
        for (int i = 0; i < 3; i++) {
            char name[128];
            snprintf(name, sizeof name, "attention %s, ring %d, B=%d T=%d C=%d NH=%d: %s as mma, recompute's",
                     ways[w].name, ways[w].stages, B, T, C, NH, what[i]);
            same_bits(name, got[i], ref[i], i == 0 ? no : i == 1 ? ns : nqkv);
            free(got[i]);
        }
    }
    // auto timed this size and kept a choice for each pass (the forward only where mma32 exists),
    // with a ring of 3 only at head size 64, where it is compiled
    int fwd = -1, dq = -1, fst = -1, bst = -1, hs = C / NH;
    CHECKF(cuda_attention_tuned(B, T, C, NH, &fwd, &dq, &fst, &bst), "auto kept no entry for B=%d T=%d C=%d NH=%d", B,
           T, C, NH);
    CHECKF(hs > 64 ? fwd == 0 : fwd == CUDA_ATTENTION_MMA || fwd == CUDA_ATTENTION_MMA32,
           "auto's forward choice %d for head size %d", fwd, hs);
    CHECKF(dq == CUDA_ATTENTION_DQ_RECOMPUTE || dq == CUDA_ATTENTION_DQ_STORED || dq == CUDA_ATTENTION_DQ_RECOMPUTE32,
           "auto's backward choice %d", dq);
    CHECKF(hs == 64 ? (fst == 2 || fst == 3) && (bst == 2 || bst == 3) : fst == 2 && bst == 2,
           "auto's rings %d / %d for head size %d", fst, bst, hs);
    cuda_set_attention_tune_min(1024);
    cuda_set_attention_stages(0);
    for (int i = 0; i < 3; i++) free(ref[i]);
    gpu->free(d_qkv); gpu->free(d_dout); gpu->free(d_out); gpu->free(d_dqkv); gpu->free(d_state);
    free(qkv); free(dout);
}

static void test_attention_variants(void) {
    GPU_OR_SKIP();
    if (!bf) SKIP("the mma.sync kernels are the bf16 table's");
    attention_variants_case(2, 70, 48, 3);    // hs 16
    attention_variants_case(1, 40, 64, 2);    // hs 32
    attention_variants_case(2, 200, 128, 2);  // hs 64, several key tiles before the diagonal
    attention_variants_case(1, 40, 128, 2);   // hs 64, one tile: a ring's later buffers stay empty
    attention_variants_case(1, 67, 256, 2);   // hs 128 (no mma32: the forward is not timed)
    cuda_set_attention_kernel(CUDA_ATTENTION_AUTO);
    cuda_set_attention_dq(CUDA_ATTENTION_DQ_AUTO);
}

// The MLP's fused pair (kernels/ops.h): pre and gelu(pre) against the CPU's, and the backward
// through the GELU: dpre is poisoned first, so an element the op leaves unwritten fails (it is
// written, not added), while dweight and dbias start random (they accumulate).
static void matmul_gelu_case(const char *path, double tol, int N, int C, int OC, int with_bias, int shift) {
    size_t nx = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC, s = shift;
    float *x = rand_x(nx, 1), *w = rand_x(nw, 1), *bias = with_bias ? rand_x(OC, 1) : NULL;
    float *pre = xmalloc(no * 4), *out = xmalloc(no * 4);
    cpu->matmul_gelu_forward(pre, out, x, w, bias, N, C, OC);
    float *m[9];
    size_t sz[9] = {nx, nw, OC, no, no, no, nx, nx, nx};  // x w b pre out | dout dpre inp prein
    for (int i = 0; i < 9; i++) m[i] = xalloc(sz[i] + 1);
    float *d_x = act_at(gpu, m[0], s), *d_w = act_at(gpu, m[1], s), *d_b = with_bias ? act_at(gpu, m[2], s) : NULL;
    float *d_pre = act_at(gpu, m[3], s), *d_out = act_at(gpu, m[4], s);
    gpu->upload_act(d_x, x, nx); gpu->upload_act(d_w, w, nw);
    if (with_bias) gpu->upload_act(d_b, bias, OC);
    xpoison(d_pre, no); xpoison(d_out, no);
    gpu->matmul_gelu_forward(d_pre, d_out, d_x, d_w, d_b, N, C, OC);
    char what[160];
    float *g = xdown(d_pre, no), *g1 = xdown(d_out, no);
    snprintf(what, sizeof what, "matmul_gelu_forward pre %s N=%d C=%d OC=%d bias=%d shift=%d", path, N, C, OC, with_bias, shift);
    close_to(what, g, pre, no, tol);
    snprintf(what, sizeof what, "matmul_gelu_forward out %s N=%d C=%d OC=%d bias=%d shift=%d", path, N, C, OC, with_bias, shift);
    close_to(what, g1, out, no, tol);
    free(g); free(g1);
    // backward of a linear layer (OC -> C here: w is (OC,C)) whose input came through a GELU
    float *dout = rand_x(no, 1), *inp = rand_x(nx, 1), *prein = rand_x(nx, 2), *dpre = xmalloc(nx * 4);
    float *dw = rand_h(nw, 1), *db = rand_h(OC, 1);
    float *m_dw = gpu->alloc((nw + 1) * 4), *m_db = gpu->alloc((OC + 1) * 4);
    float *d_do = act_at(gpu, m[5], s), *d_dpre = act_at(gpu, m[6], s), *d_inp = act_at(gpu, m[7], s);
    float *d_prein = act_at(gpu, m[8], s), *d_dw = m_dw + s, *d_db = m_db + s;
    gpu->upload_act(d_do, dout, no); gpu->upload_act(d_inp, inp, nx); gpu->upload_act(d_prein, prein, nx);
    gpu->upload(d_dw, dw, nw * 4); gpu->upload(d_db, db, OC * 4);
    xpoison(d_dpre, nx);
    cpu->matmul_backward_gelu(dpre, dw, with_bias ? db : NULL, dout, inp, w, prein, N, C, OC);
    gpu->matmul_backward_gelu(d_dpre, d_dw, with_bias ? d_db : NULL, d_do, d_inp, d_w, d_prein, N, C, OC);
    float *h1 = xdown(d_dpre, nx), *h2 = down(d_dw, nw), *h3 = down(d_db, OC);
    snprintf(what, sizeof what, "matmul_backward_gelu dpre %s N=%d C=%d OC=%d shift=%d", path, N, C, OC, shift);
    close_to(what, h1, dpre, nx, tol);
    snprintf(what, sizeof what, "matmul_backward_gelu dweight %s N=%d C=%d OC=%d shift=%d", path, N, C, OC, shift);
    close_to(what, h2, dw, nw, bf ? 1e-5 : tol);
    snprintf(what, sizeof what, "matmul_backward_gelu dbias %s N=%d OC=%d (bias=%d)", path, N, OC, with_bias);
    close_to(what, h3, db, OC, 1e-5);
    free(h1); free(h2); free(h3);
    for (int i = 0; i < 9; i++) gpu->free(m[i]);
    gpu->free(m_dw); gpu->free(m_db);
    free(x); free(w); free(bias); free(pre); free(out); free(dout); free(inp); free(prein); free(dpre); free(dw); free(db);
}

static void test_matmul_gelu(void) {
    GPU_OR_SKIP();
    // strict fp32 GEMMs in the fp32 table; the bf16 table's GELU as cuBLASLt epilogues (the
    // default), then as passes of their own. Shapes: the MLP's (OC = 4C, aligned: the epilogue
    // runs), odd and element-aligned ones (it cannot: the separate pass takes over), no bias.
    cuda_set_matmul_mode(CUDA_MATMUL_FP32);
    for (int e = bf ? 1 : 0; e >= 0; e--) {
        cuda_set_gelu_epilogue(e);
        const char *path = !bf ? "fp32" : e ? "bf16 epilogue" : "bf16 separate";
        double tol = xtol(1e-5);
        matmul_gelu_case(path, tol, 67, 48, 192, 1, 0);
        matmul_gelu_case(path, tol, 256, 128, 512, 0, 0);
        matmul_gelu_case(path, tol, 37, 33, 20, 1, 1);
    }
    cuda_set_gelu_epilogue(1);
    cuda_set_matmul_mode(CUDA_MATMUL_TF32);
}

static void test_residual(void) {
    GPU_OR_SKIP();
    size_t sizes[] = {1003, 4096};  // scalar tail path and the 16-byte path
    for (int k = 0; k < 2; k++) {
        size_t n = sizes[k];
        float *x = rand_x(n, 4), *y = rand_x(n, 1), *out = xmalloc(n * 4);
        float *d_x = xdev(x, n), *d_y = xdev(y, n), *d_out = xalloc(n);
        cpu->residual_forward(out, x, y, n);
        xpoison(d_out, n);
        gpu->residual_forward(d_out, d_x, d_y, n);
        float *g = xdown(d_out, n);
        if (bf) close_to("residual_forward", g, out, n, xtol(0));
        else same_bits("residual_forward", g, out, n);
        free(g);
        gpu->free(d_x); gpu->free(d_y); gpu->free(d_out);
        free(x); free(y); free(out);
    }
}

// Vp 320: the 16-byte path, with padded columns inside the last vector (the row through shared
// memory, then read twice from global memory: the same bits); Vp 301: the scalar path; Vp 5008:
// more vectors than the block has threads
static void classifier_case(int V, int Vp) {
    int N = 53;
    size_t nl = (size_t)N * Vp;
    float *logits = rand_x(nl, 5), *weight = xmalloc(N * 4);
    int32_t *tg = xmalloc(N * 4);
    for (int i = 0; i < N; i++) { tg[i] = (int32_t)rng_below(&rng, V); weight[i] = rng_uniform(&rng) < 0.3 ? 0.0f : 1.0f; }
    int32_t *d_tg = dev(tg, N * 4);
    float *d_w = dev(weight, N * 4), *d_losses = gpu->alloc(N * 4);
    for (int masked = 0; masked < 2; masked++)
        for (int grad = 0; grad < 2; grad++) {
            float dscale = grad ? 1.0f / 37 : 0.0f;
            float *l = copy_h(logits, nl), *losses = xmalloc(N * 4);
            cpu->classifier(l, losses, tg, masked ? weight : NULL, dscale, N, V, Vp);
            float *first[2] = {NULL, NULL};
            for (int way = CUDA_CLASSIFIER_SHARED; way <= CUDA_CLASSIFIER_REREAD; way++) {
                float *d_l = xdev(logits, nl);
                poison(d_losses, N * 4);
                cuda_set_classifier(way);
                gpu->classifier(d_l, d_losses, d_tg, masked ? d_w : NULL, dscale, N, V, Vp);
                float *gl = xdown(d_l, nl), *gloss = down(d_losses, N);
                gpu->free(d_l);
                if (way == CUDA_CLASSIFIER_REREAD) {
                    same_bits("classifier losses, the row read twice", gloss, first[1], N);
                    same_bits("classifier dlogits, the row read twice", gl, first[0], nl);
                    free(gl); free(gloss);
                    continue;
                }
                first[0] = gl, first[1] = gloss;
                char what[96];
                snprintf(what, sizeof what, "classifier losses (Vp=%d, mask=%d, grad=%d)", Vp, masked, grad);
                close_to(what, gloss, losses, N, 1e-5);
                snprintf(what, sizeof what, "classifier dlogits (Vp=%d, mask=%d)", Vp, masked);
                if (grad) close_to(what, gl, l, nl, xtol(1e-5));
                else same_bits("classifier without gradient leaves the logits untouched", gl, logits, nl);
                if (masked)
                    for (int i = 0; i < N; i++)
                        if (weight[i] == 0.0f) CHECKF(gloss[i] == 0.0f, "masked row %d has loss %g", i, gloss[i]);
            }
            cuda_set_classifier(CUDA_CLASSIFIER_SHARED);
            free(l); free(losses); free(first[0]); free(first[1]);
        }
    gpu->free(d_tg); gpu->free(d_w); gpu->free(d_losses);
    free(logits); free(weight); free(tg);
}
static void test_classifier(void) {
    GPU_OR_SKIP();
    classifier_case(300, 320);
    classifier_case(301, 301);
    classifier_case(5000, 5008);
}

static void test_optimizer(void) {
    GPU_OR_SKIP();
    size_t n = 100003;  // several sumsq chunks and a ragged end
    float *g = rand_h(n, 1);
    float *d_g = dev(g, n * 4);
    double want = cpu->sumsq(g, n), got = gpu->sumsq(d_g, n), again = gpu->sumsq(d_g, n);
    CHECKF(fabs(got - want) <= 1e-12 * want, "sumsq: gpu %.17g cpu %.17g", got, want);
    CHECKF(memcmp(&got, &again, sizeof got) == 0, "sumsq is not deterministic: %.17g then %.17g", got, again);
    float *p = rand_h(n, 1), *m = rand_h(n, 0.1), *v = rand_h(n, 0.1);
    for (size_t i = 0; i < n; i++) v[i] = fabsf(v[i]);
    float *d_p = dev(p, n * 4), *d_m = dev(m, n * 4), *d_v = dev(v, n * 4);
    // the same update with the compute copy written in the same pass (at the parameter vector's
    // offset 8), and again one float into its buffers (not 16-byte aligned: one weight a thread)
    size_t at = 8;
    float *d_p2 = dev(p, n * 4), *d_m2 = dev(m, n * 4), *d_v2 = dev(v, n * 4), *d_x = xalloc(at + n);
    float *d_q = gpu->alloc((n + 1) * 4), *d_mq = gpu->alloc((n + 1) * 4), *d_vq = gpu->alloc((n + 1) * 4);
    float *d_gq = gpu->alloc((n + 1) * 4), *d_xq = xalloc(at + n + 1);
    gpu->upload(d_q + 1, p, n * 4); gpu->upload(d_mq + 1, m, n * 4); gpu->upload(d_vq + 1, v, n * 4);
    gpu->upload(d_gq + 1, g, n * 4);
    for (int t = 1; t <= 3; t++) {
        cpu->adamw(p, g, m, v, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, t, 0.7f, NULL, 0);
        gpu->adamw(d_p, d_g, d_m, d_v, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, t, 0.7f, NULL, 0);
        gpu->adamw(d_p2, d_g, d_m2, d_v2, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, t, 0.7f, d_x, at);
        gpu->adamw(d_q + 1, d_gq + 1, d_mq + 1, d_vq + 1, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, t, 0.7f, d_xq, at + 1);
    }
    float *gp = down(d_p, n), *gm = down(d_m, n), *gv = down(d_v, n);
    close_to("adamw p", gp, p, n, 1e-6);
    close_to("adamw m", gm, m, n, 1e-6);
    close_to("adamw v", gv, v, n, 1e-6);
    float *gp2 = down(d_p2, n), *gm2 = down(d_m2, n), *gv2 = down(d_v2, n), *gq = down(d_q + 1, n);
    same_bits("adamw p with the compute copy written", gp2, gp, n);
    same_bits("adamw m with the compute copy written", gm2, gm, n);
    same_bits("adamw v with the compute copy written", gv2, gv, n);
    same_bits("adamw p from unaligned buffers", gq, gp, n);
    // the copies it wrote are round_params' of the whole master vector, element for element
    for (size_t k = 0; k < 2; k++) {
        float *d_all = gpu->alloc((at + k + n) * 4), *d_ref = xalloc(at + k + n);  // zero-filled
        gpu->upload(d_all + at + k, gp, n * 4);
        gpu->round_params(d_ref, d_all, at + k + n);
        float *x = xdown(k ? d_xq : d_x, at + k + n), *ref = xdown(d_ref, at + k + n);
        same_bits(k ? "adamw's compute copy is round_params' (unaligned)" : "adamw's compute copy is round_params'",
                  x + at + k, ref + at + k, n);
        free(x); free(ref);
        gpu->free(d_all); gpu->free(d_ref);
    }
    free(gp); free(gm); free(gv); free(gp2); free(gm2); free(gv2); free(gq);
    void *dv[] = {d_g, d_p, d_m, d_v, d_p2, d_m2, d_v2, d_x, d_q, d_mq, d_vq, d_gq, d_xq};
    for (size_t i = 0; i < sizeof dv / sizeof *dv; i++) gpu->free(dv[i]);
    free(g); free(p); free(m); free(v);
}

static void test_attention_decode(void) {
    GPU_OR_SKIP();
    int S = 3, maxT = 40, C = 48, NH = 3, N = 6;
    size_t ncache = (size_t)S * maxT * C;
    float *kc = rand_x(ncache, 1), *vc = rand_x(ncache, 1), *qkv = rand_x((size_t)N * 3 * C, 2);
    // rows: a decode step, a prefix reader, two rows of one sequence (chunked prefill), the last position
    int32_t slot[6] = {0, 1, 2, 2, 1, 0}, pos[6] = {7, 12, 3, 4, 39, 20}, pslot[6] = {0, 2, 2, 2, 0, 0};
    int32_t plen[6] = {0, 3, 0, 0, 10, 5};
    float *out = xmalloc((size_t)N * C * 4);
    float *d_kc = xdev(kc, ncache), *d_vc = xdev(vc, ncache), *d_qkv = xdev(qkv, (size_t)N * 3 * C);
    float *d_out = xalloc((size_t)N * C);
    int32_t *d_slot = dev(slot, 24), *d_pos = dev(pos, 24), *d_pslot = dev(pslot, 24), *d_plen = dev(plen, 24);
    xpoison(d_out, (size_t)N * C);
    cpu->attention_decode(out, kc, vc, qkv, slot, pos, pslot, plen, N, C, NH, maxT);
    gpu->attention_decode(d_out, d_kc, d_vc, d_qkv, d_slot, d_pos, d_pslot, d_plen, N, C, NH, maxT);
    float *g = xdown(d_out, (size_t)N * C), *gk = xdown(d_kc, ncache), *gv = xdown(d_vc, ncache);
    close_to("attention_decode out", g, out, (size_t)N * C, xtol(1e-5));
    same_bits("attention_decode k cache", gk, kc, ncache);
    same_bits("attention_decode v cache", gv, vc, ncache);
    free(g); free(gk); free(gv);
    void *dv[] = {d_kc, d_vc, d_qkv, d_out, d_slot, d_pos, d_pslot, d_plen};
    for (size_t i = 0; i < 8; i++) gpu->free(dv[i]);
    free(kc); free(vc); free(qkv); free(out);
}

// round_params (the compute copy of the master weights): fp32 copies; bf16 rounds stochastically
// to one of the two neighbours, deterministically, and without bias on average.
static void test_round_params(void) {
    GPU_OR_SKIP();
    size_t n = 100003;
    float *p = rand_h(n, 3);
    float *d_p = dev(p, n * 4), *d_x = xalloc(n), *d_y = xalloc(n);
    gpu->round_params(d_x, d_p, n);
    gpu->round_params(d_y, d_p, n);
    float *x = xdown(d_x, n), *y = xdown(d_y, n);
    same_bits("round_params twice from the same master", y, x, n);
    // the master one float into a buffer, so not 16-byte aligned: the one-a-thread kernel, whose
    // bits must be the four-a-thread kernel's
    float *d_q = gpu->alloc((n + 1) * 4);
    gpu->upload(d_q + 1, p, n * 4);
    gpu->round_params(d_y, d_q + 1, n);
    float *z = xdown(d_y, n);
    same_bits("round_params from an unaligned master (one a thread)", z, x, n);
    free(z);
    gpu->free(d_q);
    if (!bf) same_bits("round_params (fp32: a copy)", x, p, n);
    else {
        size_t bad = 0, up = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, &p[i], 4);
            uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u, got;
            memcpy(&got, &x[i], 4);
            if (got != lo && got != hi) bad++;
            up += got == hi && lo != u;
        }
        CHECKF(bad == 0, "round_params: %zu of %zu values are neither bf16 neighbour of their fp32 value", bad, n);
        CHECKF(up > n / 4 && up < 3 * n / 4, "round_params: %zu of %zu values rounded away from zero (stochastic: ~half)", up, n);
        // unbiased: n copies of one value between two bf16 neighbours average to it
        float v = 1.0f + 0.3f / 128, *same = xmalloc(n * 4);  // 30% of the way from 1 to 1 + 2^-7
        for (size_t i = 0; i < n; i++) same[i] = v;
        gpu->upload(d_p, same, n * 4);
        gpu->round_params(d_x, d_p, n);
        float *r = xdown(d_x, n);
        double mean = 0;
        for (size_t i = 0; i < n; i++) mean += r[i];
        mean /= n;
        CHECKF(fabs(mean - v) < 0.02 / 128, "round_params: mean of %zu roundings of %.9g is %.9g (biased)", n, v, mean);
        free(same); free(r);
    }
    free(p); free(x); free(y);
    gpu->free(d_p); gpu->free(d_x); gpu->free(d_y);
}

int main(void) {
    have_gpu = cuda_device_check(why, sizeof why);
    const char *s = getenv("TRACELLM_TEST_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL) * 1000003u ^ (uint64_t)getpid();
    printf("    seed %llu (TRACELLM_TEST_SEED=%llu replays it)\n", (unsigned long long)seed, (unsigned long long)seed);
    rng_seed(&rng, seed);
    static const char *const tables[] = {"cuda-fp32", "cuda"};
    for (int t = 0; t < 2; t++) {
        gpu = backend_get(tables[t]);
        if (!gpu) { printf("FAIL backend_get(\"%s\") is NULL in a CUDA build\n", tables[t]); return 1; }
        bf = gpu->act_bytes == 2;
        printf("    table %s (compute type %s)\n", gpu->name, bf ? "bf16" : "fp32");
        RUN(test_encoder);
        RUN(test_layernorm);
        RUN(test_matmul);
        RUN(test_attention);
        RUN(test_attention_variants);
        RUN(test_matmul_gelu);
        RUN(test_residual);
        RUN(test_classifier);
        RUN(test_optimizer);
        RUN(test_attention_decode);
        RUN(test_round_params);
    }
    TEST_END();
}
