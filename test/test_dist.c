// The overlapped gradient reduction (train/dist.h: dist_backward) without a second process:
// the model's gradient-ready hook reports every parameter exactly once, and only when nothing
// later in the backward pass writes it; dist_backward cuts the buckets by ZeRO-1 slices
// correctly. A fake transport stands in for W ranks that all hold the same gradients: it checks
// that a started range is not written again before wait_all, then multiplies it by W (the sum of
// W equal gradients), so the result must equal W times a plain backward pass, to the bit.
#include "test/test.h"
#include "model/gpt.h"
#include "train/dist.h"
#include "util/rng.h"
#include "util/util.h"
#include <string.h>

enum { L = 3, NH = 2, C = 16, MAXT = 8, V = 60, B = 2, T = 8 };

static void make_model(GPT *m) {
    GPTConfig cfg = {.n_layer = L, .n_head = NH, .n_embd = C, .max_seq_len = MAXT, .vocab_size = V,
                     .padded_vocab_size = gpt_padded_vocab(V)};
    gpt_create(m, &cfg, &backend_cpu);
    gpt_init_random(m, 42);
    gpt_plan(m, B, T, true);
}
static void make_tokens(int32_t *inp, int32_t *tgt, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < B * T; i++) { inp[i] = (int32_t)rng_below(&r, V); tgt[i] = (int32_t)rng_below(&r, V); }
}
static void fwd_bwd_loss(GPT *m, const int32_t *inp, const int32_t *tgt) {
    gpt_forward(m, inp, B, T);
    gpt_loss(m, tgt, NULL, 1.0f / (B * T), NULL);
}

// ---- the hook alone ----
typedef struct {
    GPT *m;
    int *covered;       // per parameter: how many times reported
    float *at_report;   // the gradient when it was reported
    int calls, first_n, last_n;
    size_t last_off;
    bool order_ok;
    int next_layer;     // the layer the next 12-range call must be
} HookLog;

static void record(void *ctx, const GradRange *r, int n) {
    HookLog *h = ctx;
    if (h->calls == 0) h->first_n = n;
    h->last_n = n;
    h->last_off = r[0].off;
    if (n == 12) {  // a layer: its slice of ln1w, the first stacked tensor
        size_t ln1w = h->m->param_sizes[P_WTE] + h->m->param_sizes[P_WPE];
        if (r[0].off != ln1w + (size_t)h->next_layer * C) h->order_ok = false;
        h->next_layer--;
    }
    h->calls++;
    for (int i = 0; i < n; i++)
        for (size_t j = r[i].off; j < r[i].off + r[i].n; j++) {
            h->covered[j]++;
            h->at_report[j] = h->m->grads[j];
        }
}

static void test_hook_reports_every_gradient_once_when_final(void) {
    GPT m;
    int32_t inp[B * T], tgt[B * T];
    make_model(&m);
    make_tokens(inp, tgt, 7);
    HookLog h = {.m = &m, .order_ok = true, .next_layer = L - 1};
    h.covered = xcalloc(m.n_params, sizeof *h.covered);
    h.at_report = xcalloc(m.n_params, sizeof *h.at_report);
    gpt_zero_grad(&m);
    fwd_bwd_loss(&m, inp, tgt);
    m.grads_ready = record;
    m.grads_ready_ctx = &h;
    gpt_backward(&m);
    CHECKF(h.calls == L + 2, "%d calls", h.calls);
    CHECK(h.first_n == 1 && h.last_n == 1 && h.last_off == 0);  // lnf first, wte+wpe last
    CHECK(h.order_ok && h.next_layer == -1);                   // layers L-1 .. 0
    size_t twice = 0, never = 0, changed = 0;
    for (size_t j = 0; j < m.n_params; j++) {
        twice += h.covered[j] > 1;
        never += h.covered[j] == 0;
        changed += memcmp(&h.at_report[j], &m.grads[j], sizeof(float)) != 0;
    }
    CHECKF(twice == 0 && never == 0, "%zu parameters reported twice, %zu never", twice, never);
    CHECKF(changed == 0, "%zu gradients changed after they were reported final", changed);
    free(h.covered); free(h.at_report);
    gpt_free(&m);
}

// ---- dist_backward with a fake world of W identical ranks ----
typedef struct { float *buf; size_t n; float *copy; bool mine; } Started;
typedef struct {
    Transport ops;
    int world, rank;
    const Dist *d;              // its ZeRO-1 slices (count, off)
    Started s[256];
    int n;
    int *covered;
    float *base;
    bool parts_ok, untouched;
    int progress_calls;
} Fake;

static void fake_start(Fake *f, float *buf, size_t n, bool mine) {
    if (f->n == 256) { f->parts_ok = false; return; }
    Started *s = &f->s[f->n++];
    s->buf = buf; s->n = n; s->mine = mine;
    s->copy = xmalloc(n * sizeof(float));
    memcpy(s->copy, buf, n * sizeof(float));
    for (size_t j = 0; j < n; j++) f->covered[buf - f->base + j]++;
}
static void fake_iallreduce(Transport *t, float *buf, size_t n) { fake_start((Fake *)t, buf, n, true); }
static void fake_ireduce_scatter(Transport *t, float *buf, const size_t *count, const size_t *off) {
    Fake *f = (Fake *)t;
    for (int r = 0; r < f->world; r++) {
        // adjacent parts in rank order, each inside its rank's slice
        if (r && off[r] != off[r - 1] + count[r - 1]) f->parts_ok = false;
        if (count[r] && (off[r] < f->d->off[r] || off[r] + count[r] > f->d->off[r] + f->d->count[r])) f->parts_ok = false;
        if (count[r]) fake_start(f, buf + off[r], count[r], r == f->rank);
    }
}
static void fake_progress(Transport *t) { ((Fake *)t)->progress_calls++; }
static void fake_wait_all(Transport *t) {
    Fake *f = (Fake *)t;
    for (int i = 0; i < f->n; i++) {
        Started *s = &f->s[i];
        if (memcmp(s->copy, s->buf, s->n * sizeof(float))) f->untouched = false;
        if (s->mine)
            for (size_t j = 0; j < s->n; j++) s->buf[j] *= (float)f->world;
        free(s->copy);
    }
    f->n = 0;
}
static void fake_allreduce(Transport *t, void *buf, size_t n, size_t elem) {
    // the norm's sum of slice norms: only this rank's value is known here; the test reads grads
    (void)t; (void)buf; (void)n; (void)elem;
}
static void fake_free(Transport *t) { (void)t; }

static void run_world(int world, int zero) {
    GPT ref, m;
    int32_t inp[B * T], tgt[B * T], inp2[B * T], tgt2[B * T];
    make_model(&ref);
    make_model(&m);
    make_tokens(inp, tgt, 11);
    make_tokens(inp2, tgt2, 12);  // the second micro-step's data
    // reference: two accumulated plain backward passes, times W
    gpt_zero_grad(&ref);
    fwd_bwd_loss(&ref, inp, tgt); gpt_backward(&ref);
    fwd_bwd_loss(&ref, inp2, tgt2); gpt_backward(&ref);

    Fake f = {.ops = {fake_allreduce, NULL, NULL, NULL, fake_free, fake_iallreduce, fake_ireduce_scatter, fake_progress,
                      fake_wait_all},
              .world = world, .rank = world - 1, .parts_ok = true, .untouched = true};
    Dist *d = xcalloc(1, sizeof *d);
    d->world = world; d->rank = world - 1; d->zero = zero; d->overlap = true; d->kind = "fake"; d->t = &f.ops;
    d->timeout = 300;
    f.d = d;
    f.covered = xcalloc(m.n_params, sizeof *f.covered);
    gpt_zero_grad(&m);
    f.base = m.grads;
    // the first micro-step starts nothing (its gradients are not final), the last starts all
    fwd_bwd_loss(&m, inp, tgt); dist_backward(d, &m, false);
    CHECKF(f.n == 0, "%d collectives started by a micro-step that is not the last", f.n);
    fwd_bwd_loss(&m, inp2, tgt2); dist_backward(d, &m, true);
    CHECK(d->reducing && m.grads_ready == NULL);
    CHECKF(f.progress_calls == L + 2, "%d progress calls", f.progress_calls);
    dist_reduce_grads(d, &m);
    CHECK(f.parts_ok);
    CHECK(f.untouched);  // nothing wrote a started range before wait_all
    size_t lo = zero ? d->off[d->rank] : 0, hi = zero ? lo + d->count[d->rank] : m.n_params;
    size_t bad_cover = 0, bad_value = 0;
    for (size_t j = 0; j < m.n_params; j++) {
        bad_cover += f.covered[j] != 1;
        if (j >= lo && j < hi) {
            float want = ref.grads[j] * (float)world;
            bad_value += memcmp(&want, &m.grads[j], sizeof want) != 0;
        }
    }
    CHECKF(bad_cover == 0, "%zu gradients started %s once", bad_cover, "not exactly");
    CHECKF(bad_value == 0, "%zu gradients of this rank differ from %d x a plain backward pass", bad_value, world);
    if (zero) CHECKF(lo > 0 && hi == m.n_params, "last rank's slice [%zu, %zu)", lo, hi);
    free(f.covered);
    dist_free(d);
    gpt_free(&m);
    gpt_free(&ref);
}
static void test_overlap_allreduce_world2(void) { run_world(2, 0); }
// 3 ranks, ZeRO-1: slices of unequal size cut buckets (and tensors) at arbitrary points
static void test_overlap_zero1_world3(void) { run_world(3, 1); }

int main(void) {
    RUN(test_hook_reports_every_gradient_once_when_final);
    RUN(test_overlap_allreduce_world2);
    RUN(test_overlap_zero1_world3);
    TEST_END();
}
