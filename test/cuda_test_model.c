// The whole GPT on the CUDA backend against the committed PyTorch fixture
// (test/fixtures/gpt_small.bin, written by scripts/reference/gpt_ref.py) and against the CPU
// backend: logits, loss, every parameter gradient, the masked loss, 20 AdamW steps following the
// CPU loss curve, bit-identical repeat runs, gradient accumulation, and KV-cache decoding.
//
// And d12 (GPT-2 124M's shape) against the CPU backend, with the bounds below widened 10x (fp32)
// and 3x (tf32, bf16) for its longer sums. Three precisions are checked (kernels/cuda/backend_cuda.h):
//   fp32 (table cuda-fp32, TRACELLM_CUDA_MATMUL=fp32): the CPU test's bounds: logits / loss 1e-4
//        absolute, each gradient 1e-4 of its tensor's largest element; 20-step losses within 1e-4.
//   tf32 (table cuda-fp32, its default): logits 1e-2 of the largest logit, loss 2e-3, gradients
//        3e-2 of the tensor's largest, 20-step losses within 1e-2 of the CPU.
//   bf16 (table cuda, mixed precision, what `--device cuda` trains with): bf16 activations and
//        weight copies, fp32 master weights and gradients: logits 3e-2 of the largest, loss 1e-2,
//        gradients 1e-1 of the tensor's largest, 20-step losses within 3e-2 of the CPU.
// Without a usable GPU every case SKIPs with the CUDA error.
#include "kernels/cuda/backend_cuda.h"
#include "kernels/ops.h"
#include "model/decode.h"
#include "model/gpt.h"
#include "test/test.h"
#include "util/util.h"
#include <math.h>
#include <stdint.h>

#include "test/fixture.h"

static const Backend *gpu;  // the table of the precision in use (use())
static int have_gpu;
static char why[256];

#define SETUP(f)                                                                                    \
    if (!have_gpu) SKIP("no usable GPU: %s", why);                                                  \
    Fixture f;                                                                                      \
    if (!load_fixture(&f)) SKIP("%s missing or malformed: run scripts/reference/gpt_ref.py fixture", FIXTURE)

typedef struct { const char *table; int mode; const char *name; double logit_rel, loss_abs, grad_rel, curve_abs; } Precision;
static const Precision precisions[] = {
    {"cuda-fp32", CUDA_MATMUL_FP32, "fp32", 1e-5, 1e-4, 1e-4, 1e-4},
    {"cuda-fp32", CUDA_MATMUL_TF32, "tf32", 1e-2, 2e-3, 3e-2, 1e-2},
    {"cuda", CUDA_MATMUL_TF32, "bf16", 3e-2, 1e-2, 1e-1, 3e-2},
};
enum { N_PRECISIONS = sizeof precisions / sizeof precisions[0] };
static const Precision *use(int k) {
    gpu = backend_get(precisions[k].table);
    cuda_set_matmul_mode(precisions[k].mode);
    return &precisions[k];
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d;  // NaN propagates as a failure
    }
    return m;
}
static double max_abs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

// forward + loss + backward of one batch; returns the mean loss
static double step_grads(GPT *m, const Fixture *f, const float *mask) {
    gpt_zero_grad(m);
    gpt_forward(m, f->inputs, f->B, f->T);
    int n_counted = 0, BT = f->B * f->T;
    for (int i = 0; i < BT; i++) n_counted += !mask || mask[i] != 0.0f;
    double sum = gpt_loss(m, f->targets, mask, 1.0f / n_counted, NULL);
    gpt_backward(m);
    return sum / n_counted;
}

static void check_grads(const GPT *m, const float *want, const Precision *p) {
    float *g = xmalloc(m->n_params * sizeof *g);
    gpt_get_grads(m, g);
    size_t off = 0;
    double worst_rel = 0;
    for (int i = 0; i < N_PARAM_TENSORS; i++) {
        size_t n = m->param_sizes[i];
        double d = max_abs_diff(g + off, want + off, n), scale = max_abs(want + off, n);
        CHECKF(d <= p->grad_rel * scale, "%s: gradient of %s differs from PyTorch by %.3g (largest %.3g)", p->name,
               gpt_param_names[i], d, scale);
        if (!(d / scale <= worst_rel)) worst_rel = d / scale;
        off += n;
    }
    printf("    %s: worst gradient error %.2e of the tensor's largest\n", p->name, worst_rel);
    free(g);
}

static GPT gpu_model(const Fixture *f) {
    GPT m;
    gpt_create(&m, &f->cfg, gpu);
    gpt_set_params(&m, f->params);
    gpt_plan(&m, f->B, f->T, true);
    return m;
}

static void test_forward_backward_match_pytorch(void) {
    SETUP(f);
    for (int k = 0; k < N_PRECISIONS; k++) {
        const Precision *p = use(k);
        GPT m = gpu_model(&f);
        gpt_forward(&m, f.inputs, f.B, f.T);
        size_t nl = (size_t)f.B * f.T * f.cfg.padded_vocab_size;
        float *logits = xmalloc(nl * 4);
        gpu->download_act(logits, m.acts.logits, nl);
        double dl = max_abs_diff(logits, f.logits, nl), scale = max_abs(f.logits, nl);
        double bound = p->mode == CUDA_MATMUL_FP32 ? 1e-4 : p->logit_rel * scale;
        CHECKF(dl <= bound, "%s: logits differ from PyTorch by %.3g (allowed %.3g)", p->name, dl, bound);
        printf("    %s: max |logits - PyTorch| %.2e (largest logit %.3g)\n", p->name, dl, scale);
        double loss = step_grads(&m, &f, NULL);
        CHECKF(fabs(loss - f.loss) <= p->loss_abs, "%s: loss %.7f, PyTorch %.7f", p->name, loss, f.loss);
        check_grads(&m, f.grads, p);
        // masked loss: masked positions contribute nothing
        double mloss = step_grads(&m, &f, f.mask);
        CHECKF(fabs(mloss - f.mloss) <= p->loss_abs, "%s: masked loss %.7f, PyTorch %.7f", p->name, mloss, f.mloss);
        check_grads(&m, f.mgrads, p);
        for (int i = 0; i < f.B * f.T; i++)
            if (f.mask[i] == 0.0f) CHECKF(m.losses_host[i] == 0.0f, "masked token %d has loss %g", i, m.losses_host[i]);
        free(logits);
        gpt_free(&m);
    }
    cuda_set_matmul_mode(CUDA_MATMUL_TF32);
    free_fixture(&f);
}

// n AdamW steps on the fixture batch (clip 1.0 as train does); losses[s] gets each step's loss.
static void run_steps(GPT *m, const Fixture *f, int n, double *losses) {
    for (int s = 0; s < n; s++) {
        losses[s] = step_grads(m, f, NULL);
        double norm = gpt_grad_norm(m);
        float scale = norm > 1.0 ? (float)(1.0 / (norm + 1e-6)) : 1.0f;
        gpt_update(m, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, s + 1, scale);
    }
}

static void test_training_follows_cpu(void) {
    SETUP(f);
    enum { STEPS = 20 };
    double cpu_losses[STEPS], gpu_losses[STEPS];
    GPT c;
    gpt_create(&c, &f.cfg, &backend_cpu);
    gpt_set_params(&c, f.params);
    gpt_plan(&c, f.B, f.T, true);
    run_steps(&c, &f, STEPS, cpu_losses);
    gpt_free(&c);
    for (int k = 0; k < N_PRECISIONS; k++) {
        const Precision *p = use(k);
        GPT m = gpu_model(&f);
        run_steps(&m, &f, STEPS, gpu_losses);
        double worst = 0;
        for (int s = 0; s < STEPS; s++) worst = fmax(worst, fabs(gpu_losses[s] - cpu_losses[s]));
        CHECKF(worst <= p->curve_abs, "%s: loss curve differs from the CPU's by %.3g", p->name, worst);
        for (int s = 0; s < f.n_steps && s < STEPS; s++)
            CHECKF(fabs(gpu_losses[s] - f.step_losses[s]) <= p->curve_abs, "%s: step %d loss %.7f, PyTorch %.7f",
                   p->name, s, gpu_losses[s], f.step_losses[s]);
        CHECKF(gpu_losses[STEPS - 1] < gpu_losses[0] - 0.1, "%s: no learning: %.4f -> %.4f", p->name, gpu_losses[0],
               gpu_losses[STEPS - 1]);
        printf("    %s: step 0 loss %.5f (cpu %.5f), step %d %.5f (cpu %.5f), worst gap %.2e\n", p->name, gpu_losses[0],
               cpu_losses[0], STEPS - 1, gpu_losses[STEPS - 1], cpu_losses[STEPS - 1], worst);
        gpt_free(&m);
    }
    cuda_set_matmul_mode(CUDA_MATMUL_TF32);
    free_fixture(&f);
}

// The same run twice gives the same bits (what a bit-identical --resume rests on), in every
// precision; in bf16 also when the second run restarts from the first one's master weights
// (a resumed run rebuilds the bf16 copy from them: round_params must give the same copy).
static void test_deterministic(void) {
    SETUP(f);
    for (int k = 0; k < N_PRECISIONS; k++) {
        const Precision *p = use(k);
        double l1[5], l2[5];
        float *p1 = xmalloc(f.n * 4), *p2 = xmalloc(f.n * 4);
        GPT a = gpu_model(&f);
        run_steps(&a, &f, 5, l1);
        gpt_get_params(&a, p1);
        GPT b = gpu_model(&f);
        run_steps(&b, &f, 5, l2);
        gpt_get_params(&b, p2);
        CHECKF(memcmp(l1, l2, sizeof l1) == 0, "%s: the losses of two identical runs differ", p->name);
        size_t bad = 0;
        for (size_t i = 0; i < f.n; i++) bad += memcmp(&p1[i], &p2[i], 4) != 0;
        CHECKF(bad == 0, "%s: %zu of %zu parameters differ between two identical runs", p->name, bad, f.n);
        // "resume": a fresh model from a's master weights computes what a computes
        GPT r;
        gpt_create(&r, &f.cfg, gpu);
        gpt_set_params(&r, p1);
        gpt_plan(&r, f.B, f.T, true);
        double la = step_grads(&a, &f, NULL), lr = step_grads(&r, &f, NULL);
        CHECKF(memcmp(&la, &lr, sizeof la) == 0, "%s: a model reloaded from the master weights computes loss %.9g, the original %.9g",
               p->name, lr, la);
        gpt_free(&r);
        gpt_free(&a);
        gpt_free(&b);
        free(p1); free(p2);
    }
    cuda_set_matmul_mode(CUDA_MATMUL_TF32);
    free_fixture(&f);
}

// Two micro-batches of B/2 with dscale = 1/(all tokens) give the whole batch's gradient.
static void test_gradient_accumulation(void) {
    SETUP(f);
    use(0);  // strict fp32: the whole-batch bounds
    GPT m = gpu_model(&f);
    int half = f.B / 2, BT = f.B * f.T, hBT = half * f.T;
    gpt_zero_grad(&m);
    double sum = 0;
    for (int k = 0; k < 2; k++) {
        gpt_forward(&m, f.inputs + k * hBT, half, f.T);
        sum += gpt_loss(&m, f.targets + k * hBT, NULL, 1.0f / BT, NULL);
        gpt_backward(&m);
    }
    CHECKF(fabs(sum / BT - f.loss) <= 1e-4, "accumulated loss %.7f, PyTorch %.7f", sum / BT, f.loss);
    check_grads(&m, f.grads, &precisions[0]);
    gpt_free(&m);
    cuda_set_matmul_mode(CUDA_MATMUL_TF32);
    free_fixture(&f);
}

// KV-cache decoding on the GPU (attention_decode) gives the full forward's logits at every position.
// In bf16 the two paths round differently (other GEMM shapes): 3e-2 of the largest logit.
static void test_decode_matches_forward(void) {
    SETUP(f);
    for (int k = 0; k < N_PRECISIONS; k += 2) {  // strict fp32 and bf16
        const Precision *p = use(k);
        GPT m;
        gpt_create(&m, &f.cfg, gpu);
        gpt_set_params(&m, f.params);
        int T = f.T, Vp = f.cfg.padded_vocab_size;
        gpt_forward(&m, f.inputs, 1, T);
        float *full = xmalloc((size_t)T * Vp * 4);
        gpu->download_act(full, m.acts.logits, (size_t)T * Vp);
        Decoder d;
        decoder_init(&d, &m, 2, T, 16);  // chunks of 16 rows: prefill spans several calls
        DecodeRow *rows = xmalloc((size_t)T * sizeof *rows);
        int half = T / 2;
        for (int t = 0; t < half; t++) rows[t] = (DecodeRow){.token = f.inputs[t], .slot = 1, .pos = t, .logits = true};
        int nl = 0;
        const float *lg = decoder_forward(&d, rows, half, &nl);
        REQUIRE(nl == half);
        double worst = max_abs_diff(lg, full, (size_t)half * Vp);
        for (int t = half; t < T; t++) {  // then one token at a time
            DecodeRow r = {.token = f.inputs[t], .slot = 1, .pos = t, .logits = true};
            lg = decoder_forward(&d, &r, 1, &nl);
            worst = fmax(worst, max_abs_diff(lg, full + (size_t)t * Vp, Vp));
        }
        double bound = gpu->act_bytes == 4 ? 1e-4 : p->logit_rel * max_abs(full, (size_t)T * Vp);
        CHECKF(worst <= bound, "%s: decoded logits differ from the full forward by %.3g (allowed %.3g)", p->name, worst, bound);
        printf("    %s: max |decode - forward| logits: %.2e\n", p->name, worst);
        decoder_free(&d);
        free(rows); free(full);
        gpt_free(&m);
    }
    cuda_set_matmul_mode(CUDA_MATMUL_TF32);
    free_fixture(&f);
}

// GPT-2 124M's shape (d12: 12 layers, 12 heads, 768 channels, head size 64 like the benchmark),
// random weights, GPT-2's vocabulary: logits, loss and every gradient against the CPU backend.
// One sequence of 64 tokens keeps the CPU side to a few seconds on a GPU machine's cores.
static void test_d12_matches_cpu(void) {
    if (!have_gpu) SKIP("no usable GPU: %s", why);
    if (getenv("TRACELLM_CUDA_TEST_SMALL")) SKIP("TRACELLM_CUDA_TEST_SMALL is set (the CPU emulation is too slow for d12)");
    GPTConfig cfg = {.max_seq_len = 64, .vocab_size = 50257, .padded_vocab_size = gpt_padded_vocab(50257)};
    REQUIRE(gpt_preset("d12", &cfg));
    int B = 1, T = 64, BT = B * T;
    int32_t inp[64], tgt[64];
    for (int i = 0; i < BT; i++) { inp[i] = (i * 7919 + 13) % cfg.vocab_size; tgt[i] = (i * 104729 + 5) % cfg.vocab_size; }
    GPT c, g;
    gpt_create(&c, &cfg, &backend_cpu);
    gpt_init_random(&c, 42);
    float *params = xmalloc(c.n_params * 4);
    gpt_get_params(&c, params);
    gpt_plan(&c, B, T, true);
    gpt_zero_grad(&c);
    gpt_forward(&c, inp, B, T);
    double cl = gpt_loss(&c, tgt, NULL, 1.0f / BT, NULL) / BT;
    gpt_backward(&c);
    size_t nl = (size_t)BT * cfg.padded_vocab_size;
    float *cgrad = xmalloc(c.n_params * 4), *glog = xmalloc(nl * 4);
    gpt_get_grads(&c, cgrad);
    for (int k = 0; k < N_PRECISIONS; k++) {
        const Precision *p = use(k);
        double widen = p->mode == CUDA_MATMUL_FP32 && gpu->act_bytes == 4 ? 10 : 3;  // d12's longer sums
        gpt_create(&g, &cfg, gpu);
        gpt_set_params(&g, params);
        gpt_plan(&g, B, T, true);
        gpt_forward(&g, inp, B, T);
        gpu->download_act(glog, g.acts.logits, nl);
        // the CPU's logits were overwritten by its dlogits: recompute them forward-only
        GPT f;
        gpt_create(&f, &cfg, &backend_cpu);
        gpt_set_params(&f, params);
        gpt_forward(&f, inp, B, T);
        double dl = max_abs_diff(glog, f.acts.logits, nl), scale = max_abs(f.acts.logits, nl);
        gpt_free(&f);
        CHECKF(dl <= p->logit_rel * widen * scale, "%s d12: logits differ from the CPU by %.3g (largest %.3g)", p->name, dl, scale);
        gpt_zero_grad(&g);
        double gl = gpt_loss(&g, tgt, NULL, 1.0f / BT, NULL) / BT;
        gpt_backward(&g);
        CHECKF(fabs(gl - cl) <= p->loss_abs * widen, "%s d12: loss %.7f, cpu %.7f", p->name, gl, cl);
        float *gg = xmalloc(g.n_params * 4);
        gpt_get_grads(&g, gg);
        size_t off = 0;
        double worst = 0;
        for (int i = 0; i < N_PARAM_TENSORS; i++) {
            size_t n = g.param_sizes[i];
            double d = max_abs_diff(gg + off, cgrad + off, n), s = max_abs(cgrad + off, n);
            CHECKF(d <= p->grad_rel * widen * s, "%s d12: gradient of %s differs from the CPU by %.3g (largest %.3g)",
                   p->name, gpt_param_names[i], d, s);
            if (s > 0 && !(d / s <= worst)) worst = d / s;
            off += n;
        }
        printf("    %s d12: max |logits - cpu| %.2e (largest %.3g), loss %.6f (cpu %.6f), worst gradient %.2e of its largest\n",
               p->name, dl, scale, gl, cl, worst);
        free(gg);
        gpt_free(&g);
    }
    cuda_set_matmul_mode(CUDA_MATMUL_TF32);
    free(params); free(cgrad); free(glog);
    gpt_free(&c);
}

int main(void) {
    for (int k = 0; k < N_PRECISIONS; k++)
        if (!backend_get(precisions[k].table)) { printf("FAIL backend_get(\"%s\") is NULL in a CUDA build\n", precisions[k].table); return 1; }
    use(0);
    have_gpu = cuda_device_check(why, sizeof why);
    RUN(test_forward_backward_match_pytorch);
    RUN(test_training_follows_cpu);
    RUN(test_deterministic);
    RUN(test_gradient_accumulation);
    RUN(test_decode_matches_forward);
    RUN(test_d12_matches_cpu);
    TEST_END();
}
