// The sampler: greedy is argmax, top-k/top-p restrict the support, the mask is obeyed, the
// empirical distribution follows softmax(logits / T), and stop strings are found across pieces.
#include "infer/sampler.h"
#include "test/test.h"
#include <math.h>

static void test_greedy_and_mask(void) {
    Sampler s;
    sampler_init(&s, 8);
    float logits[8] = {0.1f, 3.0f, -1.0f, 3.0f, 2.5f, 0.0f, 0.0f, 1.0f};
    SamplerConfig g = {0, 0, 1};
    Rng r;
    rng_seed(&r, 1);
    CHECK(sampler_pick(&s, logits, 8, NULL, &g, &r) == 1);  // tie 1 vs 3: lowest id
    uint8_t mask[8] = {1, 0, 1, 0, 1, 0, 0, 0};
    CHECK(sampler_pick(&s, logits, 8, mask, &g, &r) == 4);
    SamplerConfig t = {1.0f, 0, 1};
    for (int i = 0; i < 200; i++) {
        int k = sampler_pick(&s, logits, 8, mask, &t, &r);
        CHECK(k == 0 || k == 2 || k == 4);
    }
    uint8_t none[8] = {0};
    CHECK(sampler_pick(&s, logits, 8, none, &t, &r) == -1);
    sampler_free(&s);
}

static void test_distribution(void) {
    enum { V = 6, N = 200000 };
    Sampler s;
    sampler_init(&s, V);
    float logits[V] = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, -3.0f};
    Rng r;
    rng_seed(&r, 7);
    for (int variant = 0; variant < 3; variant++) {
        SamplerConfig c = {0.8f, variant == 1 ? 3 : 0, variant == 2 ? 0.7f : 1.0f};
        double p[V], sum = 0;
        for (int v = 0; v < V; v++) sum += p[v] = exp(logits[v] / c.temperature);
        for (int v = 0; v < V; v++) p[v] /= sum;
        // expected support: top-3 logits {4,0,1}; top-p 0.7: 4 (~0.66) then 0 -> {4,0}
        int support[V] = {1, 1, 1, 1, 1, 1};
        if (variant == 1) for (int v = 0; v < V; v++) support[v] = v == 4 || v == 0 || v == 1;
        if (variant == 2) for (int v = 0; v < V; v++) support[v] = v == 4 || v == 0;
        double z = 0;
        for (int v = 0; v < V; v++) z += support[v] ? p[v] : 0;
        int hist[V] = {0};
        for (int i = 0; i < N; i++) hist[sampler_pick(&s, logits, V, NULL, &c, &r)]++;
        for (int v = 0; v < V; v++) {
            double want = support[v] ? p[v] / z : 0, got = (double)hist[v] / N;
            CHECKF(fabs(got - want) < 0.006, "variant %d token %d: got %.4f want %.4f", variant, v, got, want);
        }
    }
    sampler_free(&s);
}

static void test_seed_determinism(void) {
    Sampler s;
    sampler_init(&s, 100);
    float logits[100];
    for (int i = 0; i < 100; i++) logits[i] = (float)((i * 37) % 11) * 0.3f;
    SamplerConfig c = {0.8f, 50, 0.95f};
    int a[50], b[50];
    Rng r;
    rng_seed(&r, 99);
    for (int i = 0; i < 50; i++) a[i] = sampler_pick(&s, logits, 100, NULL, &c, &r);
    rng_seed(&r, 99);
    for (int i = 0; i < 50; i++) b[i] = sampler_pick(&s, logits, 100, NULL, &c, &r);
    CHECK(!memcmp(a, b, sizeof a));
    sampler_free(&s);
}

static void test_stops(void) {
    const char *stops[] = {"</layer>", "finish generation", "##"};
    StopSet ss;
    stopset_init(&ss, stops, 3);
    const char *t = "<layer>\n(edge_id is 0)\n</la";
    int which = -1;
    CHECK(stop_find(&ss, t, (long)strlen(t), 4, &which) == -1);
    const char *t2 = "<layer>\n(edge_id is 0)\n</layer>";
    CHECK(stop_find(&ss, t2, (long)strlen(t2), 4, &which) == (long)strlen(t2) - 8 && which == 0);
    const char *t3 = "abc # x ## y";
    CHECK(stop_find(&ss, t3, (long)strlen(t3), (long)strlen(t3), &which) == 8 && which == 2);
}

int main(void) {
    RUN(test_greedy_and_mask);
    RUN(test_distribution);
    RUN(test_seed_determinism);
    RUN(test_stops);
    TEST_END();
}
