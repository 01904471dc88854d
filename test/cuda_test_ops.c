// Every op of the CUDA backend against the CPU backend (the reference) on random inputs drawn
// fresh each run (the seed is printed, TRACELLM_TEST_SEED replays one), never zeros. Forward
// outputs are poisoned with NaN on the device before each run, so an unwritten element fails;
// backward ops start from random gradients on both sides, which checks that they ACCUMULATE.
//
// Tolerances, as max |gpu - cpu| <= tol * max(|cpu|) per tensor (dtype: all tensors are fp32):
//   elementwise / row ops in fp32 ............................. 1e-5 (different summation order)
//   matmul, TRACELLM_CUDA_MATMUL=fp32 ......................... 1e-5
//   matmul, tf32 (the default) ................................ 5e-3 (10-bit mantissa operands)
//   matmul, bf16 operands ..................................... 3e-2 (8-bit mantissa operands)
//   attention, fp32 mode (CUDA cores, online softmax) ......... 1e-5
//   attention, tf32 mode (tensor cores, TF32 Q K V P dO) ...... 5e-3
// and exact equality where the CUDA kernel adds in the CPU's order (encoder backward).
// Without a usable GPU every case SKIPs with the CUDA error.
#include "kernels/cuda/backend_cuda.h"
#include "kernels/ops.h"
#include "test/test.h"
#include "util/rng.h"
#include "util/util.h"
#include <math.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

static const Backend *cpu = &backend_cpu, *gpu;
static int have_gpu;
static char why[256];
static Rng rng;

#define GPU_OR_SKIP() do { if (!have_gpu) SKIP("no usable GPU: %s", why); } while (0)

static float *rand_h(size_t n, double scale) {
    float *p = xmalloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = (float)(scale * (2 * rng_uniform(&rng) - 1));
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
    CHECKF(bad == 0, "%s: %zu of %zu elements differ from the CPU (first at %zu: %.9g vs %.9g)", what, bad, n, first,
           got[first], want[first]);
}

// ---------------------------------------------------------------------------------------------

static void test_encoder(void) {
    GPU_OR_SKIP();
    int B = 3, T = 37, C = 40, V = 11;  // few tokens: rows of dwte collide often
    size_t BT = (size_t)B * T;
    int32_t *inp = xmalloc(BT * 4);
    for (size_t i = 0; i < BT; i++) inp[i] = (int32_t)rng_below(&rng, V);
    float *wte = rand_h((size_t)V * C, 1), *wpe = rand_h((size_t)T * C, 1), *out = xmalloc(BT * C * 4);
    cpu->encoder_forward(out, inp, wte, wpe, B, T, C);
    int32_t *d_inp = dev(inp, BT * 4);
    float *d_wte = dev(wte, (size_t)V * C * 4), *d_wpe = dev(wpe, (size_t)T * C * 4), *d_out = gpu->alloc(BT * C * 4);
    poison(d_out, BT * C * 4);
    gpu->encoder_forward(d_out, d_inp, d_wte, d_wpe, B, T, C);
    float *g = down(d_out, BT * C);
    same_bits("encoder_forward", g, out, BT * C);
    free(g);
    // backward: random starting gradients, accumulated into
    float *dout = rand_h(BT * C, 1), *dwte = rand_h((size_t)V * C, 1), *dwpe = rand_h((size_t)T * C, 1);
    float *d_dout = dev(dout, BT * C * 4), *d_dwte = dev(dwte, (size_t)V * C * 4), *d_dwpe = dev(dwpe, (size_t)T * C * 4);
    cpu->encoder_backward(dwte, dwpe, dout, inp, B, T, C);
    gpu->encoder_backward(d_dwte, d_dwpe, d_dout, d_inp, B, T, C);
    float *g1 = down(d_dwte, (size_t)V * C), *g2 = down(d_dwpe, (size_t)T * C);
    same_bits("encoder_backward dwte (same order of additions as the CPU)", g1, dwte, (size_t)V * C);
    same_bits("encoder_backward dwpe", g2, dwpe, (size_t)T * C);
    free(g1); free(g2);
    void *dv[] = {d_inp, d_wte, d_wpe, d_out, d_dout, d_dwte, d_dwpe};
    for (size_t i = 0; i < 7; i++) gpu->free(dv[i]);
    free(inp); free(wte); free(wpe); free(out); free(dout); free(dwte); free(dwpe);
}

static void test_layernorm(void) {
    GPU_OR_SKIP();
    int N = 300, C = 77;
    size_t NC = (size_t)N * C;
    float *x = rand_h(NC, 2), *w = rand_h(C, 1), *b = rand_h(C, 1);
    for (size_t i = 0; i < NC; i++) x[i] += (float)(i % C) * 0.01f;  // nonzero row means
    float *out = xmalloc(NC * 4), *mean = xmalloc(N * 4), *rstd = xmalloc(N * 4);
    cpu->layernorm_forward(out, mean, rstd, x, w, b, N, C);
    float *d_x = dev(x, NC * 4), *d_w = dev(w, C * 4), *d_b = dev(b, C * 4);
    float *d_out = gpu->alloc(NC * 4), *d_mean = gpu->alloc(N * 4), *d_rstd = gpu->alloc(N * 4);
    poison(d_out, NC * 4); poison(d_mean, N * 4); poison(d_rstd, N * 4);
    gpu->layernorm_forward(d_out, d_mean, d_rstd, d_x, d_w, d_b, N, C);
    float *g = down(d_out, NC), *gm = down(d_mean, N), *gr = down(d_rstd, N);
    close_to("layernorm_forward out", g, out, NC, 1e-5);
    close_to("layernorm_forward mean", gm, mean, N, 1e-5);
    close_to("layernorm_forward rstd", gr, rstd, N, 1e-5);
    float *dout = rand_h(NC, 1), *dinp = rand_h(NC, 1), *dw = rand_h(C, 1), *db = rand_h(C, 1);
    float *d_dout = dev(dout, NC * 4), *d_dinp = dev(dinp, NC * 4), *d_dw = dev(dw, C * 4), *d_db = dev(db, C * 4);
    cpu->layernorm_backward(dinp, dw, db, dout, x, w, mean, rstd, N, C);
    gpu->layernorm_backward(d_dinp, d_dw, d_db, d_dout, d_x, d_w, d_mean, d_rstd, N, C);
    float *g1 = down(d_dinp, NC), *g2 = down(d_dw, C), *g3 = down(d_db, C);
    close_to("layernorm_backward dinp", g1, dinp, NC, 1e-5);
    close_to("layernorm_backward dw", g2, dw, C, 1e-5);
    close_to("layernorm_backward db", g3, db, C, 1e-5);
    free(g); free(gm); free(gr); free(g1); free(g2); free(g3);
    void *dv[] = {d_x, d_w, d_b, d_out, d_mean, d_rstd, d_dout, d_dinp, d_dw, d_db};
    for (size_t i = 0; i < 10; i++) gpu->free(dv[i]);
    free(x); free(w); free(b); free(out); free(mean); free(rstd); free(dout); free(dinp); free(dw); free(db);
}

// One matmul forward + backward in the given GEMM mode; `shift` offsets every device pointer by
// one float (4-byte alignment only, as a layer's slice of the stacked weights can be).
static void matmul_case(int mode, const char *mname, double tol, int N, int C, int OC, int with_bias, int shift) {
    cuda_set_matmul_mode(mode);
    size_t nx = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
    float *x = rand_h(nx, 1), *w = rand_h(nw, 1), *bias = with_bias ? rand_h(OC, 1) : NULL, *out = xmalloc(no * 4);
    cpu->matmul_forward(out, x, w, bias, N, C, OC);
    size_t s = shift;
    float *m_x = gpu->alloc((nx + 1) * 4), *m_w = gpu->alloc((nw + 1) * 4), *m_b = gpu->alloc((OC + 1) * 4);
    float *m_o = gpu->alloc((no + 1) * 4);
    float *d_x = m_x + s, *d_w = m_w + s, *d_b = with_bias ? m_b + s : NULL, *d_o = m_o + s;
    gpu->upload(d_x, x, nx * 4); gpu->upload(d_w, w, nw * 4);
    if (with_bias) gpu->upload(d_b, bias, OC * 4);
    poison(d_o, no * 4);
    gpu->matmul_forward(d_o, d_x, d_w, d_b, N, C, OC);
    char what[160];
    float *g = down(d_o, no);
    snprintf(what, sizeof what, "matmul_forward %s N=%d C=%d OC=%d bias=%d shift=%d", mname, N, C, OC, with_bias, shift);
    close_to(what, g, out, no, tol);
    free(g);
    // backward, accumulating into random gradients
    float *dout = rand_h(no, 1), *dinp = rand_h(nx, 1), *dw = rand_h(nw, 1), *dbias = rand_h(OC, 1);
    float *m_do = gpu->alloc((no + 1) * 4), *m_di = gpu->alloc((nx + 1) * 4), *m_dw = gpu->alloc((nw + 1) * 4);
    float *m_db = gpu->alloc((OC + 1) * 4);
    float *d_do = m_do + s, *d_di = m_di + s, *d_dw = m_dw + s, *d_db = m_db + s;
    gpu->upload(d_do, dout, no * 4); gpu->upload(d_di, dinp, nx * 4);
    gpu->upload(d_dw, dw, nw * 4); gpu->upload(d_db, dbias, OC * 4);
    cpu->matmul_backward(dinp, dw, with_bias ? dbias : NULL, dout, x, w, N, C, OC);
    gpu->matmul_backward(d_di, d_dw, with_bias ? d_db : NULL, d_do, d_x, d_w, N, C, OC);
    float *g1 = down(d_di, nx), *g2 = down(d_dw, nw), *g3 = down(d_db, OC);
    snprintf(what, sizeof what, "matmul_backward dinp %s N=%d C=%d OC=%d shift=%d", mname, N, C, OC, shift);
    close_to(what, g1, dinp, nx, tol);
    snprintf(what, sizeof what, "matmul_backward dweight %s N=%d C=%d OC=%d shift=%d", mname, N, C, OC, shift);
    close_to(what, g2, dw, nw, tol);
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
    static const struct { int mode; const char *name; double tol; } modes[] = {
        {CUDA_MATMUL_FP32, "fp32", 1e-5}, {CUDA_MATMUL_TF32, "tf32", 5e-3}, {CUDA_MATMUL_BF16, "bf16", 3e-2}};
    for (int m = 0; m < 3; m++) {
        matmul_case(modes[m].mode, modes[m].name, modes[m].tol, 67, 48, 80, 1, 0);
        matmul_case(modes[m].mode, modes[m].name, modes[m].tol, 64, 64, 320, 0, 0);  // the tied classifier: no bias
        matmul_case(modes[m].mode, modes[m].name, modes[m].tol, 37, 33, 19, 1, 1);   // odd sizes, 4-byte aligned
        matmul_case(modes[m].mode, modes[m].name, modes[m].tol, 512, 256, 768, 1, 0);
    }
}

static void attention_case(const char *mode, double tol, int B, int T, int C, int NH) {
    size_t nqkv = (size_t)B * T * 3 * C, no = (size_t)B * T * C;
    float *qkv = rand_h(nqkv, 2), *out = xmalloc(no * 4);
    float *att = xmalloc(cpu->attention_state_size(B, T, NH) * 4);
    cpu->attention_forward(out, att, qkv, B, T, C, NH);
    float *d_qkv = dev(qkv, nqkv * 4), *d_out = gpu->alloc(no * 4);
    float *d_state = gpu->alloc(gpu->attention_state_size(B, T, NH) * 4);
    poison(d_out, no * 4);
    poison(d_state, gpu->attention_state_size(B, T, NH) * 4);
    gpu->attention_forward(d_out, d_state, d_qkv, B, T, C, NH);
    char what[128];
    float *g = down(d_out, no);
    snprintf(what, sizeof what, "attention_forward %s B=%d T=%d C=%d NH=%d", mode, B, T, C, NH);
    close_to(what, g, out, no, tol);
    float *dout = rand_h(no, 1), *dqkv = rand_h(nqkv, 1);
    float *d_dout = dev(dout, no * 4), *d_dqkv = dev(dqkv, nqkv * 4);
    cpu->attention_backward(dqkv, dout, qkv, out, att, B, T, C, NH);
    gpu->attention_backward(d_dqkv, d_dout, d_qkv, d_out, d_state, B, T, C, NH);
    float *g1 = down(d_dqkv, nqkv);
    snprintf(what, sizeof what, "attention_backward dqkv %s B=%d T=%d C=%d NH=%d", mode, B, T, C, NH);
    close_to(what, g1, dqkv, nqkv, tol);
    free(g); free(g1);
    gpu->free(d_qkv); gpu->free(d_out); gpu->free(d_state); gpu->free(d_dout); gpu->free(d_dqkv);
    free(qkv); free(out); free(att); free(dout); free(dqkv);
}

static void test_attention(void) {
    GPU_OR_SKIP();
    // strict fp32: the CUDA-core kernels; tf32 (the default): the tensor-core kernels, except hs 8
    static const struct { int mode; const char *name; double tol; } modes[] = {
        {CUDA_MATMUL_FP32, "fp32", 1e-5}, {CUDA_MATMUL_TF32, "tf32", 5e-3}};
    for (int m = 0; m < 2; m++) {
        cuda_set_matmul_mode(modes[m].mode);
        attention_case(modes[m].name, modes[m].tol, 2, 70, 48, 3);    // hs 16, T crosses the 32- and 64-row tiles
        attention_case(modes[m].name, modes[m].tol, 1, 130, 128, 2);  // hs 64 (GPT-2's)
        attention_case(modes[m].name, modes[m].tol, 3, 5, 32, 4);     // hs 8, shorter than a tile
        attention_case(modes[m].name, modes[m].tol, 1, 67, 256, 2);   // hs 128
        attention_case(modes[m].name, modes[m].tol, 1, 40, 64, 2);    // hs 32
    }
    cuda_set_matmul_mode(CUDA_MATMUL_TF32);
}

static void test_gelu_residual(void) {
    GPU_OR_SKIP();
    size_t sizes[] = {1003, 4096};  // scalar tail path and the float4 path
    for (int k = 0; k < 2; k++) {
        size_t n = sizes[k];
        float *x = rand_h(n, 4), *y = rand_h(n, 1), *out = xmalloc(n * 4);
        float *d_x = dev(x, n * 4), *d_y = dev(y, n * 4), *d_out = gpu->alloc(n * 4);
        cpu->gelu_forward(out, x, n);
        poison(d_out, n * 4);
        gpu->gelu_forward(d_out, d_x, n);
        float *g = down(d_out, n);
        close_to("gelu_forward", g, out, n, 1e-5);
        free(g);
        float *dout = rand_h(n, 1), *dinp = rand_h(n, 1);
        float *d_dout = dev(dout, n * 4), *d_dinp = dev(dinp, n * 4);
        cpu->gelu_backward(dinp, x, dout, n);
        gpu->gelu_backward(d_dinp, d_x, d_dout, n);
        g = down(d_dinp, n);
        close_to("gelu_backward", g, dinp, n, 1e-5);
        free(g);
        cpu->residual_forward(out, x, y, n);
        poison(d_out, n * 4);
        gpu->residual_forward(d_out, d_x, d_y, n);
        g = down(d_out, n);
        same_bits("residual_forward", g, out, n);
        free(g);
        // residual_backward accumulates into both: da = x, db = y start random
        cpu->residual_backward(x, y, dout, n);
        gpu->residual_backward(d_x, d_y, d_dout, n);
        float *ga = down(d_x, n), *gb = down(d_y, n);
        same_bits("residual_backward da", ga, x, n);
        same_bits("residual_backward db", gb, y, n);
        free(ga); free(gb);
        gpu->free(d_x); gpu->free(d_y); gpu->free(d_out); gpu->free(d_dout); gpu->free(d_dinp);
        free(x); free(y); free(out); free(dout); free(dinp);
    }
}

static void test_classifier(void) {
    GPU_OR_SKIP();
    int N = 53, V = 300, Vp = 320;
    size_t nl = (size_t)N * Vp;
    float *logits = rand_h(nl, 5), *weight = xmalloc(N * 4);
    int32_t *tg = xmalloc(N * 4);
    for (int i = 0; i < N; i++) { tg[i] = (int32_t)rng_below(&rng, V); weight[i] = rng_uniform(&rng) < 0.3 ? 0.0f : 1.0f; }
    int32_t *d_tg = dev(tg, N * 4);
    float *d_w = dev(weight, N * 4), *d_losses = gpu->alloc(N * 4);
    for (int masked = 0; masked < 2; masked++)
        for (int grad = 0; grad < 2; grad++) {
            float dscale = grad ? 1.0f / 37 : 0.0f;
            float *l = copy_h(logits, nl), *losses = xmalloc(N * 4);
            float *d_l = dev(logits, nl * 4);
            poison(d_losses, N * 4);
            cpu->classifier(l, losses, tg, masked ? weight : NULL, dscale, N, V, Vp);
            gpu->classifier(d_l, d_losses, d_tg, masked ? d_w : NULL, dscale, N, V, Vp);
            float *gl = down(d_l, nl), *gloss = down(d_losses, N);
            char what[96];
            snprintf(what, sizeof what, "classifier losses (mask=%d, grad=%d)", masked, grad);
            close_to(what, gloss, losses, N, 1e-5);
            snprintf(what, sizeof what, "classifier dlogits (mask=%d)", masked);
            if (grad) close_to(what, gl, l, nl, 1e-5);
            else same_bits("classifier without gradient leaves the logits untouched", gl, logits, nl);
            if (masked)
                for (int i = 0; i < N; i++)
                    if (weight[i] == 0.0f) CHECKF(gloss[i] == 0.0f, "masked row %d has loss %g", i, gloss[i]);
            free(l); free(losses); free(gl); free(gloss);
            gpu->free(d_l);
        }
    gpu->free(d_tg); gpu->free(d_w); gpu->free(d_losses);
    free(logits); free(weight); free(tg);
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
    for (int t = 1; t <= 3; t++) {
        cpu->adamw(p, g, m, v, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, t, 0.7f);
        gpu->adamw(d_p, d_g, d_m, d_v, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, t, 0.7f);
    }
    float *gp = down(d_p, n), *gm = down(d_m, n), *gv = down(d_v, n);
    close_to("adamw p", gp, p, n, 1e-6);
    close_to("adamw m", gm, m, n, 1e-6);
    close_to("adamw v", gv, v, n, 1e-6);
    free(gp); free(gm); free(gv);
    gpu->free(d_g); gpu->free(d_p); gpu->free(d_m); gpu->free(d_v);
    free(g); free(p); free(m); free(v);
}

static void test_attention_decode(void) {
    GPU_OR_SKIP();
    int S = 3, maxT = 40, C = 48, NH = 3, N = 6;
    size_t ncache = (size_t)S * maxT * C;
    float *kc = rand_h(ncache, 1), *vc = rand_h(ncache, 1), *qkv = rand_h((size_t)N * 3 * C, 2);
    // rows: a decode step, a prefix reader, two rows of one sequence (chunked prefill), the last position
    int32_t slot[6] = {0, 1, 2, 2, 1, 0}, pos[6] = {7, 12, 3, 4, 39, 20}, pslot[6] = {0, 2, 2, 2, 0, 0};
    int32_t plen[6] = {0, 3, 0, 0, 10, 5};
    float *out = xmalloc((size_t)N * C * 4);
    float *d_kc = dev(kc, ncache * 4), *d_vc = dev(vc, ncache * 4), *d_qkv = dev(qkv, (size_t)N * 3 * C * 4);
    float *d_out = gpu->alloc((size_t)N * C * 4);
    int32_t *d_slot = dev(slot, 24), *d_pos = dev(pos, 24), *d_pslot = dev(pslot, 24), *d_plen = dev(plen, 24);
    poison(d_out, (size_t)N * C * 4);
    cpu->attention_decode(out, kc, vc, qkv, slot, pos, pslot, plen, N, C, NH, maxT);
    gpu->attention_decode(d_out, d_kc, d_vc, d_qkv, d_slot, d_pos, d_pslot, d_plen, N, C, NH, maxT);
    float *g = down(d_out, (size_t)N * C), *gk = down(d_kc, ncache), *gv = down(d_vc, ncache);
    close_to("attention_decode out", g, out, (size_t)N * C, 1e-5);
    same_bits("attention_decode k cache", gk, kc, ncache);
    same_bits("attention_decode v cache", gv, vc, ncache);
    free(g); free(gk); free(gv);
    void *dv[] = {d_kc, d_vc, d_qkv, d_out, d_slot, d_pos, d_pslot, d_plen};
    for (size_t i = 0; i < 8; i++) gpu->free(dv[i]);
    free(kc); free(vc); free(qkv); free(out);
}

int main(void) {
    gpu = backend_get("cuda");
    if (!gpu) { printf("FAIL cuda backend not registered: backend_get(\"cuda\") is NULL in a CUDA build\n"); return 1; }
    have_gpu = cuda_device_check(why, sizeof why);
    const char *s = getenv("TRACELLM_TEST_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL) * 1000003u ^ (uint64_t)getpid();
    printf("    seed %llu (TRACELLM_TEST_SEED=%llu replays it)\n", (unsigned long long)seed, (unsigned long long)seed);
    rng_seed(&rng, seed);
    RUN(test_encoder);
    RUN(test_layernorm);
    RUN(test_matmul);
    RUN(test_attention);
    RUN(test_gelu_residual);
    RUN(test_classifier);
    RUN(test_optimizer);
    RUN(test_attention_decode);
    TEST_END();
}
