// The sampler: greedy is argmax, top-k/top-p restrict the support, the mask is obeyed, the
// empirical distribution follows softmax(logits / T), a separate number temperature applies inside
// numeric fields only, and stop strings are found across pieces.
#include "infer/sampler.h"
#include "test/test.h"
#include <math.h>

static void test_greedy_and_mask(void) {
    Sampler s;
    sampler_init(&s, 8);
    float logits[8] = {0.1f, 3.0f, -1.0f, 3.0f, 2.5f, 0.0f, 0.0f, 1.0f};
    SamplerConfig g = {.temperature = 0, .top_k = 0, .top_p = 1};
    Rng r;
    rng_seed(&r, 1);
    CHECK(sampler_pick(&s, logits, 8, NULL, &g, &r) == 1);  // tie 1 vs 3: lowest id
    uint8_t mask[8] = {1, 0, 1, 0, 1, 0, 0, 0};
    CHECK(sampler_pick(&s, logits, 8, mask, &g, &r) == 4);
    SamplerConfig t = {.temperature = 1.0f, .top_k = 0, .top_p = 1};
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
        SamplerConfig c = {.temperature = 0.8f, .top_k = variant == 1 ? 3 : 0, .top_p = variant == 2 ? 0.7f : 1.0f};
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

static double entropy(const double *p, int n) {
    double h = 0;
    for (int i = 0; i < n; i++) if (p[i] > 0) h -= p[i] * log(p[i]);
    return h;
}

// --number-temperature: with the same logits, the tokens of a numeric field follow
// softmax(logits / number_temperature) and every other token softmax(logits / temperature).
static void test_number_temperature(void) {
    enum { V = 6, N = 200000 };
    Sampler s;
    sampler_init(&s, V);
    float logits[V] = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, -3.0f};
    SamplerConfig c = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .number_temperature_set = true, .number_temperature = 0.3f};
    CHECK(sampler_temperature(&c, false) == 1.0f && sampler_temperature(&c, true) == 0.3f);
    Rng r;
    rng_seed(&r, 11);
    double got[2][V] = {{0}}, want[2][V], h_got[2], h_want[2];
    for (int in = 0; in < 2; in++) {
        double T = in ? 0.3 : 1.0, z = 0;
        for (int v = 0; v < V; v++) z += want[in][v] = exp(logits[v] / T);
        for (int v = 0; v < V; v++) want[in][v] /= z;
        for (int i = 0; i < N; i++) got[in][sampler_pick_field(&s, logits, V, NULL, &c, in, &r)] += 1.0 / N;
        for (int v = 0; v < V; v++)
            CHECKF(fabs(got[in][v] - want[in][v]) < 0.006, "in_number %d token %d: got %.4f want %.4f", in, v, got[in][v], want[in][v]);
        h_got[in] = entropy(got[in], V);
        h_want[in] = entropy(want[in], V);
    }
    // T 1.0: 1.25 nats; T 0.3: 0.21 nats: the two steps draw from visibly different distributions
    CHECKF(fabs(h_got[0] - h_want[0]) < 0.01 && fabs(h_got[1] - h_want[1]) < 0.01, "entropy %.3f / %.3f, want %.3f / %.3f",
           h_got[0], h_got[1], h_want[0], h_want[1]);
    CHECKF(h_got[1] < h_got[0] - 0.5, "entropy inside numbers %.3f, outside %.3f", h_got[1], h_got[0]);

    // number temperature 0: greedy inside numbers, still sampled outside
    SamplerConfig g = c;
    g.number_temperature = 0;
    int outside_other = 0;
    for (int i = 0; i < 1000; i++) {
        CHECK(sampler_pick_field(&s, logits, V, NULL, &g, true, &r) == 4);
        outside_other += sampler_pick_field(&s, logits, V, NULL, &g, false, &r) != 4;
    }
    CHECKF(outside_other > 300, "outside numbers: %d of 1000 draws not the argmax", outside_other);

    // unset, or set to the same temperature: the very same tokens as sampler_pick, inside numbers
    // too (generate --number-temperature T --temperature T writes what --temperature T alone does)
    SamplerConfig unset = {.temperature = 0.8f, .top_k = 3, .top_p = 0.9f}, same = unset;
    same.number_temperature_set = true;
    same.number_temperature = 0.8f;
    enum { K = 2000 };
    static int a[K], b[K], d[K];
    Rng ra, rb, rd;
    rng_seed(&ra, 5); rng_seed(&rb, 5); rng_seed(&rd, 5);
    for (int i = 0; i < K; i++) {
        a[i] = sampler_pick(&s, logits, V, NULL, &unset, &ra);
        b[i] = sampler_pick_field(&s, logits, V, NULL, &unset, i % 2, &rb);
        d[i] = sampler_pick_field(&s, logits, V, NULL, &same, i % 2, &rd);
    }
    CHECK(!memcmp(a, b, sizeof a) && !memcmp(a, d, sizeof a));
    sampler_free(&s);
}

static void test_seed_determinism(void) {
    Sampler s;
    sampler_init(&s, 100);
    float logits[100];
    for (int i = 0; i < 100; i++) logits[i] = (float)((i * 37) % 11) * 0.3f;
    SamplerConfig c = {.temperature = 0.8f, .top_k = 50, .top_p = 0.95f};
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
    RUN(test_number_temperature);
    RUN(test_seed_determinism);
    RUN(test_stops);
    TEST_END();
}
