// Every op of the CPU backend against a double-precision reference written here, independently:
// forward values, and backward checked by central finite differences of the double forward
// (objective sum(out * R) for a fixed random R, so dout = R). Tiny shapes, odd sizes on purpose.
#include "kernels/cpu/cpu.h"
#include "kernels/ops.h"
#include "test/test.h"
#include "util/rng.h"
#include "util/util.h"
#include <math.h>

static const Backend *be = &backend_cpu;
static Rng rng;

static float *rand_f(size_t n, double scale) {
    float *p = xmalloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = (float)(scale * (2 * rng_uniform(&rng) - 1));
    return p;
}
static double *to_d(const float *p, size_t n) {
    double *d = xmalloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = p[i];
    return d;
}

// The objective of the current op: sum(out * R) of its double forward.
static double (*objective)(void);
#define FD_EPS 1e-6

// Compares analytic gradient g (float, from the backend) with central differences of the
// objective wrt every element of x (double, read by the objective). Relative to the gradient's
// largest magnitude: float backward vs double finite differences agree to ~1e-6 of it.
static void check_grad_every(const char *what, double *x, size_t n, const float *g, size_t every) {
    double worst = 0, scale = 1e-12;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(g[i]));
    for (size_t i = 0; i < n; i += every) {
        double x0 = x[i];
        x[i] = x0 + FD_EPS;
        double fp = objective();
        x[i] = x0 - FD_EPS;
        double fm = objective();
        x[i] = x0;
        double num = (fp - fm) / (2 * FD_EPS);
        worst = fmax(worst, fabs(num - g[i]));
    }
    CHECKF(worst <= 1e-4 * scale + 1e-6, "%s: max |analytic - numeric| = %.3g (largest gradient %.3g)", what, worst, scale);
}
static void check_grad(const char *what, double *x, size_t n, const float *g) { check_grad_every(what, x, n, g, 1); }
static void check_close(const char *what, const float *got, const double *want, size_t n, double tol) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(got[i] - want[i]));
    CHECKF(worst <= tol, "%s: max |float - double reference| = %.3g", what, worst);
}
static double dot_r(const double *out, const double *R, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += out[i] * R[i];
    return s;
}

// ---------------------------------------------------------------------------------------------
// matmul: out (N,OC) = inp (N,C) @ w (OC,C)^T + b
static int mN, mC, mOC;
static double *m_inp, *m_w, *m_b, *m_R;
static int m_gelu_in;  // the layer reads gelu(inp) instead of inp (the MLP's second linear layer)
static double gelu_d(double x) { return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); }
static void ref_matmul(double *out) {
    for (int n = 0; n < mN; n++)
        for (int o = 0; o < mOC; o++) {
            double s = m_b[o];
            for (int c = 0; c < mC; c++) s += (m_gelu_in ? gelu_d(m_inp[n * mC + c]) : m_inp[n * mC + c]) * m_w[o * mC + c];
            out[n * mOC + o] = s;
        }
}
static double obj_matmul(void) {
    double *out = xmalloc((size_t)mN * mOC * sizeof *out);
    ref_matmul(out);
    double s = dot_r(out, m_R, (size_t)mN * mOC);
    free(out);
    return s;
}
static void test_matmul(void) {
    mN = 7; mC = 13; mOC = 67;  // crosses a 64-wide panel and the 6-row tile edge
    float *inp = rand_f(mN * mC, 1), *w = rand_f(mOC * mC, 1), *b = rand_f(mOC, 1), *R = rand_f(mN * mOC, 1);
    m_inp = to_d(inp, mN * mC); m_w = to_d(w, mOC * mC); m_b = to_d(b, mOC); m_R = to_d(R, mN * mOC);
    float *out = xcalloc(mN * mOC, 4);
    double *ref = xmalloc(mN * mOC * sizeof *ref);
    be->matmul_forward(out, inp, w, b, mN, mC, mOC);
    ref_matmul(ref);
    check_close("matmul forward", out, ref, mN * mOC, 1e-5);
    // dinp starts as garbage (the op writes it); dw, db start at zero (they accumulate)
    float *dinp = rand_f(mN * mC, 1e3), *dw = xcalloc(mOC * mC, 4), *db = xcalloc(mOC, 4);
    be->matmul_backward(dinp, dw, db, R, inp, w, mN, mC, mOC);
    objective = obj_matmul;
    check_grad("matmul dinp", m_inp, mN * mC, dinp);
    check_grad("matmul dweight", m_w, mOC * mC, dw);
    check_grad("matmul dbias", m_b, mOC, db);
    free(inp); free(w); free(b); free(R); free(m_inp); free(m_w); free(m_b); free(m_R);
    free(out); free(ref); free(dinp); free(dw); free(db);
}

// The MLP's fused pair (kernels/ops.h). Forward: pre = inp @ w^T + b and gelu(pre) (tanh form).
// Backward of the layer after the GELU, objective sum(R * (gelu(h) @ w^T + b)): dpre = d/dh by
// finite differences, written over whatever dpre held; dweight, dbias as for a plain layer.
static void test_matmul_gelu(void) {
    mN = 7; mC = 13; mOC = 67;
    size_t nx = (size_t)mN * mC, no = (size_t)mN * mOC;
    float *inp = rand_f(nx, 1), *w = rand_f(mOC * mC, 1), *b = rand_f(mOC, 1), *R = rand_f(no, 1);
    m_inp = to_d(inp, nx); m_w = to_d(w, mOC * mC); m_b = to_d(b, mOC); m_R = to_d(R, no);
    float *pre = xcalloc(no, 4), *out = xcalloc(no, 4);
    double *ref = xmalloc(no * sizeof *ref);
    be->matmul_gelu_forward(pre, out, inp, w, b, mN, mC, mOC);
    ref_matmul(ref);
    check_close("matmul_gelu_forward pre", pre, ref, no, 1e-5);
    for (size_t i = 0; i < no; i++) ref[i] = gelu_d(ref[i]);
    check_close("matmul_gelu_forward out", out, ref, no, 1e-5);
    // h spans GELU's bend (-3..3); the layer's input is gelu(h), in float as the forward stores it
    float *h = rand_f(nx, 3), *hg = xmalloc(nx * 4), *dh = rand_f(nx, 1e3);
    for (size_t i = 0; i < nx; i++) hg[i] = (float)gelu_d(h[i]);
    free(m_inp);
    m_inp = to_d(h, nx);
    m_gelu_in = 1;
    float *dw = xcalloc(mOC * mC, 4), *db = xcalloc(mOC, 4);
    be->matmul_backward_gelu(dh, dw, db, R, hg, w, h, mN, mC, mOC);
    objective = obj_matmul;
    check_grad("matmul_backward_gelu dpre", m_inp, nx, dh);
    check_grad("matmul_backward_gelu dweight", m_w, mOC * mC, dw);
    check_grad("matmul_backward_gelu dbias", m_b, mOC, db);
    m_gelu_in = 0;
    free(inp); free(w); free(b); free(R); free(m_inp); free(m_w); free(m_b); free(m_R);
    free(pre); free(out); free(ref); free(h); free(hg); free(dh); free(dw); free(db);
}

// The GEMM alone on shapes that cross every blocking edge (K > 512, M % 6, N % 64), with
// transposed operands and accumulation.
static void test_gemm_shapes(void) {
    int shapes[][3] = {{1, 1, 1}, {5, 63, 7}, {13, 130, 600}, {100, 64, 1030}, {97, 200, 33}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *A = rand_f((size_t)M * K, 1), *B = rand_f((size_t)K * N, 1), *C0 = rand_f((size_t)M * N, 1);
        float *C = xmalloc((size_t)M * N * 4), *C2 = xmalloc((size_t)M * N * 4), *C3 = xmalloc((size_t)M * N * 4);
        memcpy(C, C0, (size_t)M * N * 4);
        memcpy(C3, C0, (size_t)M * N * 4);
        cpu_gemm(C, N, A, K, 1, B, N, 1, M, N, K, 1);   // C0 + A @ B: B packed
        cpu_gemm(C2, N, A, 1, M, B, 1, K, M, N, K, 0);  // A^T-stored (K,M), B^T-stored (N,K): both packed
        cpu_gemm(C3, N, A, 1, M, B, N, 1, M, N, K, 1);  // C0 + A^T-stored @ B: B read in place (weight gradients)
        double worst = 0, worst2 = 0, worst3 = 0;
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                double r = 0, r2 = 0, r3 = 0;
                for (int k = 0; k < K; k++) {
                    r += (double)A[(size_t)m * K + k] * B[(size_t)k * N + n];
                    r2 += (double)A[(size_t)k * M + m] * B[(size_t)n * K + k];
                    r3 += (double)A[(size_t)k * M + m] * B[(size_t)k * N + n];
                }
                worst = fmax(worst, fabs(C[(size_t)m * N + n] - (C0[(size_t)m * N + n] + r)));
                worst2 = fmax(worst2, fabs(C2[(size_t)m * N + n] - r2));
                worst3 = fmax(worst3, fabs(C3[(size_t)m * N + n] - (C0[(size_t)m * N + n] + r3)));
            }
        CHECKF(worst <= 1e-4 && worst2 <= 1e-4 && worst3 <= 1e-4, "gemm %dx%dx%d: error %.3g / transposed %.3g / in place %.3g",
               M, N, K, worst, worst2, worst3);
        free(A); free(B); free(C0); free(C); free(C2); free(C3);
    }
}

// ---------------------------------------------------------------------------------------------
// layernorm
static int lN, lC;
static double *l_inp, *l_w, *l_b, *l_R;
static void ref_layernorm(double *out) {
    for (int n = 0; n < lN; n++) {
        const double *x = l_inp + n * lC;
        double m = 0, v = 0;
        for (int i = 0; i < lC; i++) m += x[i];
        m /= lC;
        for (int i = 0; i < lC; i++) v += (x[i] - m) * (x[i] - m);
        v /= lC;
        for (int i = 0; i < lC; i++) out[n * lC + i] = (x[i] - m) / sqrt(v + 1e-5) * l_w[i] + l_b[i];
    }
}
static double obj_layernorm(void) {
    double *out = xmalloc((size_t)lN * lC * sizeof *out);
    ref_layernorm(out);
    double s = dot_r(out, l_R, (size_t)lN * lC);
    free(out);
    return s;
}
static void test_layernorm(void) {
    lN = 5; lC = 37;
    float *inp = rand_f(lN * lC, 2), *w = rand_f(lC, 1), *b = rand_f(lC, 1), *R = rand_f(lN * lC, 1);
    l_inp = to_d(inp, lN * lC); l_w = to_d(w, lC); l_b = to_d(b, lC); l_R = to_d(R, lN * lC);
    float *out = xcalloc(lN * lC, 4), *mean = xcalloc(lN, 4), *rstd = xcalloc(lN, 4);
    double *ref = xmalloc(lN * lC * sizeof *ref);
    be->layernorm_forward(out, mean, rstd, inp, w, b, lN, lC);
    ref_layernorm(ref);
    check_close("layernorm forward", out, ref, lN * lC, 1e-5);
    float *dinp = xcalloc(lN * lC, 4), *dw = xcalloc(lC, 4), *db = xcalloc(lC, 4);
    be->layernorm_backward(dinp, dw, db, R, inp, w, mean, rstd, lN, lC);
    objective = obj_layernorm;
    check_grad("layernorm dinp", l_inp, lN * lC, dinp);
    check_grad("layernorm dw", l_w, lC, dw);
    check_grad("layernorm db", l_b, lC, db);
    free(inp); free(w); free(b); free(R); free(l_inp); free(l_w); free(l_b); free(l_R);
    free(out); free(mean); free(rstd); free(ref); free(dinp); free(dw); free(db);
}

// ---------------------------------------------------------------------------------------------
// attention: qkv (B,T,3C) -> out (B,T,C), causal, NH heads
static int aB, aT, aC, aNH;
static double *a_qkv, *a_R;
static void ref_attention(double *out) {
    int hs = aC / aNH, C3 = 3 * aC;
    double *p = xmalloc(aT * sizeof *p);
    for (int b = 0; b < aB; b++)
        for (int h = 0; h < aNH; h++)
            for (int t = 0; t < aT; t++) {
                const double *q = a_qkv + (b * aT + t) * C3 + h * hs;
                double mx = -INFINITY, sum = 0;
                for (int u = 0; u <= t; u++) {
                    const double *k = a_qkv + (b * aT + u) * C3 + aC + h * hs;
                    double s = 0;
                    for (int i = 0; i < hs; i++) s += q[i] * k[i];
                    p[u] = s / sqrt((double)hs);
                    mx = fmax(mx, p[u]);
                }
                for (int u = 0; u <= t; u++) sum += (p[u] = exp(p[u] - mx));
                for (int i = 0; i < hs; i++) {
                    double o = 0;
                    for (int u = 0; u <= t; u++) o += p[u] / sum * a_qkv[(b * aT + u) * C3 + 2 * aC + h * hs + i];
                    out[(b * aT + t) * aC + h * hs + i] = o;
                }
            }
    free(p);
}
static double obj_attention(void) {
    double *out = xmalloc((size_t)aB * aT * aC * sizeof *out);
    ref_attention(out);
    double s = dot_r(out, a_R, (size_t)aB * aT * aC);
    free(out);
    return s;
}
static void attention_case(int B, int T, int C, int NH, size_t every) {
    aB = B; aT = T; aC = C; aNH = NH;
    size_t nq = (size_t)aB * aT * 3 * aC, no = (size_t)aB * aT * aC;
    float *qkv = rand_f(nq, 1.5), *R = rand_f(no, 1);
    a_qkv = to_d(qkv, nq); a_R = to_d(R, no);
    float *out = xcalloc(no, 4), *att = xcalloc(be->attention_state_size(aB, aT, aNH), 4);
    double *ref = xmalloc(no * sizeof *ref);
    be->attention_forward(out, att, qkv, aB, aT, aC, aNH);
    ref_attention(ref);
    check_close("attention forward", out, ref, no, 1e-5);
    float *dqkv = rand_f(nq, 1e3);  // garbage: the op writes every element
    be->attention_backward(dqkv, R, qkv, out, att, aB, aT, aC, aNH);
    objective = obj_attention;
    check_grad_every("attention dqkv", a_qkv, nq, dqkv, every);
    free(qkv); free(R); free(a_qkv); free(a_R); free(out); free(att); free(ref); free(dqkv);
}
static void test_attention(void) { attention_case(2, 7, 12, 3, 1); }
// T = 150: three blocks of query rows (64, 64, 22), so the causal block skipping is exercised;
// finite differences on every 7th input keep it quick
static void test_attention_row_blocks(void) { attention_case(1, 150, 8, 2, 7); }

// ---------------------------------------------------------------------------------------------
// residual (and residual + layernorm), encoder: small enough for one test each
static void test_residual(void) {
    size_t gN = 101;
    float *inp = rand_f(gN, 4), *out = xcalloc(gN, 4);
    // residual: out = a + b
    float *a = rand_f(gN, 1);
    be->residual_forward(out, a, inp, gN);
    for (size_t i = 0; i < gN; i++) CHECK(out[i] == a[i] + inp[i]);
    // the residual add fused with the LayerNorm after it: the bits of the two ops in sequence
    int N = 6, C = (int)(gN / 6);
    float *w = rand_f(C, 1), *bias = rand_f(C, 1), *res = xcalloc(gN, 4), *ln = xcalloc(gN, 4), *ln2 = xcalloc(gN, 4);
    float *mean = xcalloc(N, 4), *rstd = xcalloc(N, 4), *mean2 = xcalloc(N, 4), *rstd2 = xcalloc(N, 4);
    be->residual_layernorm_forward(res, ln, mean, rstd, a, inp, w, bias, N, C);
    be->layernorm_forward(ln2, mean2, rstd2, out, w, bias, N, C);
    CHECK(!memcmp(res, out, (size_t)N * C * 4) && !memcmp(ln, ln2, (size_t)N * C * 4));
    CHECK(!memcmp(mean, mean2, N * 4) && !memcmp(rstd, rstd2, N * 4));
    free(w); free(bias); free(res); free(ln); free(ln2); free(mean); free(rstd); free(mean2); free(rstd2);
    free(inp); free(out); free(a);
}

static void test_encoder(void) {
    int B = 2, T = 5, C = 9, V = 7;
    int32_t inp[10] = {1, 3, 3, 0, 6, 3, 1, 1, 2, 3};  // repeats: gradients must add up
    float *wte = rand_f(V * C, 1), *wpe = rand_f(T * C, 1), *R = rand_f(B * T * C, 1), *out = xcalloc(B * T * C, 4);
    float *dwte = xcalloc(V * C, 4), *dwpe = xcalloc(T * C, 4);
    be->encoder_forward(out, inp, wte, wpe, B, T, C);
    be->encoder_backward(dwte, dwpe, R, inp, NULL, B, T, C);
    for (int bt = 0; bt < B * T; bt++)
        for (int i = 0; i < C; i++) CHECK(out[bt * C + i] == wte[inp[bt] * C + i] + wpe[(bt % T) * C + i]);
    for (int v = 0; v < V; v++)
        for (int i = 0; i < C; i++) {
            double want = 0;
            for (int bt = 0; bt < B * T; bt++) want += inp[bt] == v ? R[bt * C + i] : 0;
            CHECKF(fabs(dwte[v * C + i] - want) < 1e-6, "dwte[%d][%d] = %g, want %g", v, i, dwte[v * C + i], want);
        }
    for (int t = 0; t < T; t++)
        for (int i = 0; i < C; i++) {
            double want = R[t * C + i] + R[(T + t) * C + i];
            CHECK(fabs(dwpe[t * C + i] - want) < 1e-6);
        }
    free(wte); free(wpe); free(R); free(out); free(dwte); free(dwpe);
}

// ---------------------------------------------------------------------------------------------
// classifier: mean-style loss sum_i w_i * CE_i * dscale; padded columns never matter
static int cN, cV, cVp;
static double *c_logits, *c_w;
static int32_t *c_tgt;
static double c_scale;
static double obj_classifier(void) {
    double s = 0;
    for (int n = 0; n < cN; n++) {
        const double *l = c_logits + n * cVp;
        double mx = -INFINITY, sum = 0;
        for (int i = 0; i < cV; i++) mx = fmax(mx, l[i]);
        for (int i = 0; i < cV; i++) sum += exp(l[i] - mx);
        s += c_w[n] * (log(sum) + mx - l[c_tgt[n]]) * c_scale;
    }
    return s;
}
static void test_classifier(void) {
    cN = 6; cV = 11; cVp = 16;
    float *logits = rand_f(cN * cVp, 3);
    int32_t tgt[6] = {0, 10, 5, 5, 2, 7};
    float w[6] = {1, 1, 0, 1, 0, 1};
    c_logits = to_d(logits, cN * cVp); c_w = to_d(w, cN); c_tgt = tgt; c_scale = 1.0 / 4;
    float *losses = xcalloc(cN, 4), *eval_logits = xmalloc(cN * cVp * 4);
    memcpy(eval_logits, logits, cN * cVp * 4);
    be->classifier(eval_logits, losses, tgt, w, 0.0f, cN, cV, cVp);
    CHECK(memcmp(eval_logits, logits, cN * cVp * 4) == 0);  // no gradient: logits untouched
    double total = 0;
    for (int n = 0; n < cN; n++) total += losses[n];
    CHECKF(fabs(total / 4 - obj_classifier()) < 1e-5, "loss %g, want %g", total / 4, obj_classifier());
    CHECK(losses[2] == 0.0f && losses[4] == 0.0f);
    be->classifier(logits, losses, tgt, w, 0.25f, cN, cV, cVp);  // logits become dlogits
    objective = obj_classifier;
    check_grad("classifier dlogits", c_logits, cN * cVp, logits);
    for (int n = 0; n < cN; n++)
        for (int i = 0; i < cVp; i++)
            if (w[n] == 0.0f || i >= cV) CHECK(logits[n * cVp + i] == 0.0f);  // exactly zero
    free(logits); free(c_logits); free(c_w); free(losses); free(eval_logits);
}

// AdamW against torch.optim.AdamW's formula in double, over three steps; sumsq in double.
static void test_adamw_sumsq(void) {
    size_t n = 20000;  // several sumsq chunks
    float *p = rand_f(n, 1), *g = rand_f(n, 1), *m = xcalloc(n, 4), *v = xcalloc(n, 4);
    double *pd = to_d(p, n), *md = xcalloc(n, 8), *vd = xcalloc(n, 8), ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)g[i] * g[i];
    CHECKF(fabs(be->sumsq(g, n) - ss) <= 1e-9 * ss, "sumsq %.12g want %.12g", be->sumsq(g, n), ss);
    double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1, gs = 0.5;
    float *px = xcalloc(n + 5, 4);  // a compute copy, p at its offset 5 (fp32 here: a copy)
    for (int t = 1; t <= 3; t++) {
        be->adamw(p, g, m, v, n, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd, t, (float)gs,
                  t == 3 ? px : NULL, 5);
        for (size_t i = 0; i < n; i++) {
            double gi = g[i] * gs;
            pd[i] *= 1 - lr * wd;
            md[i] = b1 * md[i] + (1 - b1) * gi;
            vd[i] = b2 * vd[i] + (1 - b2) * gi * gi;
            pd[i] -= lr / (1 - pow(b1, t)) * md[i] / (sqrt(vd[i]) / sqrt(1 - pow(b2, t)) + eps);
        }
    }
    check_close("adamw params after 3 steps", p, pd, n, 1e-6);
    CHECK(memcmp(px + 5, p, n * 4) == 0 && px[0] == 0.0f && px[4] == 0.0f);  // only its n elements written
    free(px);
    free(p); free(g); free(m); free(v); free(pd); free(md); free(vd);
}

int main(void) {
    rng_seed(&rng, 42);
    RUN(test_gemm_shapes);
    RUN(test_matmul);
    RUN(test_matmul_gelu);
    RUN(test_layernorm);
    RUN(test_attention);
    RUN(test_attention_row_blocks);
    RUN(test_residual);
    RUN(test_encoder);
    RUN(test_classifier);
    RUN(test_adamw_sumsq);
    TEST_END();
}
