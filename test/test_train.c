// The pieces of the training loop on their own: the lr schedule, the data loader over shards,
// and the checkpoint files (round trip, and every kind of damage refused with a message).
#include "model/checkpoint.h"
#include "model/gpt.h"
#include "test/test.h"
#include "tokenizer/shard.h"
#include "train/loader.h"
#include "train/schedule.h"
#include "util/util.h"
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/tracellm-test-train.XXXXXX";
static char *tmp_file(const char *name) {
    static char buf[4][512];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, sizeof buf[0], "%s/%s", tmpdir, name);
    return b;
}

static void test_schedule(void) {
    double lr = 1e-3;
    // warmup: linear from lr/warmup to lr
    CHECK(fabs(schedule_lr(SCHED_COSINE, lr, 0.1, 10, 0, 100) - 1e-4) < 1e-12);
    CHECK(fabs(schedule_lr(SCHED_COSINE, lr, 0.1, 10, 9, 100) - 1e-3) < 1e-12);
    // cosine: peak right after warmup, the midpoint halfway, min at the end
    CHECK(fabs(schedule_lr(SCHED_COSINE, lr, 0.1, 10, 10, 100) - 1e-3) < 1e-12);
    CHECK(fabs(schedule_lr(SCHED_COSINE, lr, 0.1, 10, 55, 100) - 0.55e-3) < 1e-12);
    double last = schedule_lr(SCHED_COSINE, lr, 0.1, 10, 99, 100);
    CHECKF(last > 1e-4 && last < 1.01e-4, "last lr %g", last);
    for (long s = 11; s < 100; s++)
        CHECK(schedule_lr(SCHED_COSINE, lr, 0.1, 10, s, 100) < schedule_lr(SCHED_COSINE, lr, 0.1, 10, s - 1, 100));
    CHECK(fabs(schedule_lr(SCHED_LINEAR, lr, 0.0, 0, 50, 100) - 0.5e-3) < 1e-12);
    CHECK(schedule_lr(SCHED_CONSTANT, lr, 0.1, 0, 77, 100) == lr);
    CHECK(schedule_parse("cosine") == SCHED_COSINE && schedule_parse("cos") == -1);
}

// tokens base, base+1, ... (mod vocab) so every batch says where it came from
static void write_shard_from(const char *path, uint64_t n, uint64_t fp, bool mask, uint64_t base) {
    uint16_t *t = xmalloc(n * 2);
    uint8_t *m = mask ? xmalloc(n) : NULL;
    for (uint64_t i = 0; i < n; i++) {
        t[i] = (uint16_t)((base + i) % 1000);
        if (m) m[i] = i % 3 != 0;
    }
    uint64_t doc = 0;
    shard_write(path, 1000, fp, t, m, n, &doc, 1);
    free(t);
    free(m);
}
static void write_shard(const char *path, uint64_t n, uint64_t fp, bool mask) { write_shard_from(path, n, fp, mask, 0); }

static void test_loader(void) {
    // B*T = 8: shard a holds 2 windows (17 tokens needed for 2, has 20), b is too small, c holds 1
    write_shard(tmp_file("a.bin"), 20, 5, false);
    write_shard(tmp_file("b.bin"), 8, 5, false);
    write_shard(tmp_file("c.bin"), 12, 5, true);
    const char *paths[] = {tmp_file("a.bin"), tmp_file("b.bin"), tmp_file("c.bin")};
    Loader l;
    loader_open(&l, paths, 3, 2, 4, false, 0);
    CHECK(l.windows_per_epoch == 3 && l.has_mask && l.fingerprint == 5 && l.vocab_size == 1000);
    int32_t in[8], tg[8];
    float w[8];
    CHECK(!loader_next(&l, in, tg, w));
    CHECK(in[0] == 0 && tg[0] == 1 && in[7] == 7 && tg[7] == 8 && w[3] == 1.0f);
    CHECK(!loader_next(&l, in, tg, w));
    CHECK(in[0] == 8 && tg[7] == 16);
    CHECK(!loader_next(&l, in, tg, w));  // b skipped: c, with its mask on the targets
    CHECK(l.shard == 2 && in[0] == 0);
    for (int i = 0; i < 8; i++) CHECKF(w[i] == (float)((i + 1) % 3 != 0), "weight %d = %g", i, w[i]);
    CHECK(loader_next(&l, in, tg, w));  // wrapped: epoch 1 starts with a again
    CHECK(l.epoch == 1 && l.shard == 0 && in[0] == 0);
    // the position is the whole state: restoring it continues exactly
    uint64_t s = l.shard, o = l.offset, e = l.epoch;
    int32_t in2[8];
    loader_next(&l, in, tg, w);
    Loader l2;
    loader_open(&l2, paths, 3, 2, 4, false, 0);
    l2.shard = s; l2.offset = o; l2.epoch = e;
    loader_next(&l2, in2, tg, w);
    CHECK(!memcmp(in, in2, sizeof in));
    loader_free(&l);
    loader_free(&l2);
}

// The shuffled order (loader_open(..., true, seed)): each epoch draws distinct whole rows of T+1 consecutive
// tokens, all of one shard cut at one offset, a different cut and order every epoch; the mask
// follows its row; the position restores exactly; ranks split each batch's rows.
static void test_loader_shuffled(void) {
    enum { T = 8, B = 3 };
    write_shard_from(tmp_file("sa.bin"), 203, 5, false, 0);    // (203 - 8) / 8 = 24 rows
    write_shard_from(tmp_file("sb.bin"), 15, 5, false, 300);   // under 2T: no row
    write_shard_from(tmp_file("sc.bin"), 100, 5, true, 500);   // 11 rows, masked
    const char *paths[] = {tmp_file("sa.bin"), tmp_file("sb.bin"), tmp_file("sc.bin")};
    Loader l;
    loader_open(&l, paths, 3, B, T, true, 9);
    CHECKF(l.n_rows == 35 && l.windows_per_epoch == 11, "%llu rows, %llu batches", (unsigned long long)l.n_rows,
           (unsigned long long)l.windows_per_epoch);
    int32_t in[B * T], tg[B * T], first[3][33];
    float w[B * T];
    for (int e = 0; e < 3; e++) {
        int cut[2] = {-1, -1}, n = 0;
        bool seen[1000] = {false};
        for (int k = 0; k < 11; k++) {
            bool wrapped = loader_next(&l, in, tg, w);
            CHECK(wrapped == (e > 0 && k == 0) && l.epoch == (uint64_t)e);
            for (int b = 0; b < B; b++) {
                int32_t s = in[b * T];
                bool c = s >= 500;
                int pos = c ? s - 500 : s;
                CHECKF(s < 203 || (c && pos + T < 100), "row starts at token %d", s);
                if (cut[c] < 0) cut[c] = pos % T;
                CHECKF(pos % T == cut[c], "epoch %d: a row of shard %c starts at %d, the epoch's cut is %d", e, c ? 'c' : 'a', pos, cut[c]);
                CHECKF(!seen[s], "epoch %d drew the row at %d twice", e, s);
                seen[s] = true;
                first[e][n++] = s;
                for (int t = 0; t < T; t++) {
                    CHECK(in[b * T + t] == s + t && tg[b * T + t] == s + t + 1);
                    CHECK(w[b * T + t] == (c ? (float)((pos + t + 1) % 3 != 0) : 1.0f));
                }
            }
        }
    }
    CHECK(memcmp(first[0], first[1], sizeof first[0]) && memcmp(first[1], first[2], sizeof first[0]));
    // the position is the whole state (with the seed); another seed, another order
    uint64_t s = l.shard, o = l.offset, e = l.epoch;
    CHECK(s == LOADER_SHUFFLED);
    loader_next(&l, in, tg, w);
    Loader l2, l3;
    loader_open(&l2, paths, 3, B, T, true, 9);
    l2.shard = s; l2.offset = o; l2.epoch = e;
    int32_t in2[B * T];
    loader_next(&l2, in2, tg, w);
    CHECK(!memcmp(in, in2, sizeof in));
    loader_open(&l3, paths, 3, B, T, true, 10);
    bool differs = false;
    for (int k = 0; k < 11; k++) { loader_next(&l3, in2, tg, w); differs |= in2[0] != first[0][k * B]; }
    CHECK(differs);
    // three ranks: rank r gets row r of the same global batch
    loader_rewind(&l2);
    loader_next(&l2, in, tg, w);
    loader_free(&l3);
    loader_open(&l3, paths, 3, B, T, true, 9);
    for (int r = 0; r < 3; r++) {
        Loader lr = l3;   // same position for every rank, as in training
        loader_next_rank(&lr, r, 3, in2, tg, w);
        CHECK(!memcmp(in2, in + r * T, T * sizeof *in2));
    }
    loader_free(&l);
    loader_free(&l2);
    loader_free(&l3);
    // shards smaller than a batch (24 < B*T+1 = 25 tokens: no sequential window) give rows, and a
    // batch takes them from several shards
    write_shard_from(tmp_file("s1.bin"), 24, 5, false, 0);
    write_shard_from(tmp_file("s2.bin"), 24, 5, false, 100);
    write_shard_from(tmp_file("s3.bin"), 24, 5, false, 200);
    const char *small[] = {tmp_file("s1.bin"), tmp_file("s2.bin"), tmp_file("s3.bin")};
    loader_open(&l, small, 3, B, T, true, 4);
    CHECK(l.n_rows == 6 && l.windows_per_epoch == 2);
    bool shard_seen[3] = {false};
    for (int k = 0; k < 2; k++) {
        loader_next(&l, in, tg, w);
        for (int b = 0; b < B; b++) shard_seen[in[b * T] / 100] = true;
    }
    CHECK(shard_seen[0] && shard_seen[1] && shard_seen[2]);
    loader_free(&l);
}

static void small_model(GPT *m) {
    GPTConfig c = {.n_layer = 2, .n_head = 2, .n_embd = 16, .max_seq_len = 8, .vocab_size = 50, .padded_vocab_size = 64};
    gpt_create(m, &c, &backend_cpu);
    gpt_init_random(m, 7);
}

static void flip_byte(const char *path, long off) {
    size_t len;
    char *b = read_file(path, &len);
    b[off] ^= 0x01;
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, len, f);
    fclose(f);
    free(b);
}

static void test_checkpoint_roundtrip_and_damage(void) {
    GPT m, r;
    small_model(&m);
    const char *mp = tmp_file("model.bin"), *op = tmp_file("optim.bin");
    checkpoint_save_model(mp, &m, 0xfeedULL, 42);
    char err[8192];
    CkptHeader h;
    REQUIRE(checkpoint_load_model(mp, &r, &backend_cpu, &h, err, sizeof err));
    CHECK(h.step == 42 && h.tokenizer_fingerprint == 0xfeed && r.n_params == m.n_params);
    CHECK(!memcmp(&r.cfg, &m.cfg, sizeof r.cfg));
    CHECK(!memcmp(r.params, m.params, m.n_params * sizeof(float)));
    // optimizer state round trip
    gpt_plan(&m, 1, 8, true);
    gpt_update(&m, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1, 1.0f);  // creates m, v
    for (size_t i = 0; i < m.n_params; i++) { m.m[i] = (float)i; m.v[i] = (float)(2 * i); }
    TrainState st = {.step = 42, .rng = {1, 2, 3, 4}, .shard = 1, .offset = 99, .epoch = 3, .tokens_seen = 1234}, st2;
    checkpoint_save_optim(op, &m, &st);
    REQUIRE(checkpoint_load_optim(op, &r, &st2, err, sizeof err));
    CHECK(!memcmp(&st, &st2, sizeof st));
    CHECK(!memcmp(r.m, m.m, m.n_params * 4) && !memcmp(r.v, m.v, m.n_params * 4));
    gpt_free(&r);

    // any flipped bit, header or payload, is refused
    long offsets[] = {20, 48, 56, 128, 128 + 4 * (long)m.n_params - 1};
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        checkpoint_save_model(mp, &m, 0xfeedULL, 42);
        flip_byte(mp, offsets[i]);
        CHECKF(!checkpoint_load_model(mp, &r, &backend_cpu, NULL, err, sizeof err), "flip at %ld accepted", offsets[i]);
        CHECKF(strstr(err, mp) != NULL, "error does not name the file: %s", err);
    }
    checkpoint_save_model(mp, &m, 0xfeedULL, 42);
    CHECK(truncate(mp, 128 + 4 * (long)m.n_params - 4) == 0);
    CHECK(!checkpoint_load_model(mp, &r, &backend_cpu, NULL, err, sizeof err) && strstr(err, "truncated"));
    CHECK(truncate(mp, 50) == 0);
    CHECK(!checkpoint_load_model(mp, &r, &backend_cpu, NULL, err, sizeof err) && strstr(err, "too short"));
    // a model file is not an optimizer file, and vice versa
    checkpoint_save_model(mp, &m, 0xfeedULL, 42);
    CHECK(!checkpoint_load_optim(mp, &m, &st2, err, sizeof err) && strstr(err, "bad magic"));
    CHECK(!checkpoint_load_model(op, &r, &backend_cpu, NULL, err, sizeof err) && strstr(err, "bad magic"));
    // moments of another model size
    GPT other;
    GPTConfig c = m.cfg;
    c.n_layer = 1;
    gpt_create(&other, &c, &backend_cpu);
    CHECK(!checkpoint_load_optim(op, &other, &st2, err, sizeof err) && strstr(err, "parameters"));
    CHECK(!checkpoint_load_model(tmp_file("absent.bin"), &r, &backend_cpu, NULL, err, sizeof err) && strstr(err, "cannot open"));
    gpt_free(&other);
    gpt_free(&m);
}

int main(void) {
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    RUN(test_schedule);
    RUN(test_loader);
    RUN(test_loader_shuffled);
    RUN(test_checkpoint_roundtrip_and_damage);
    const char *names[] = {"a.bin", "b.bin", "c.bin", "model.bin", "optim.bin"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) unlink(tmp_file(names[i]));
    rmdir(tmpdir);
    TEST_END();
}
