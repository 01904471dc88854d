// `tracellm train`: pretraining (and masked-loss training) of the GPT on token shards.
//
// One optimizer step = grad_accum micro-batches of (B,T): zero the gradients, forward + loss +
// backward each micro-batch with the loss scaled by 1/(unmasked tokens of the whole step), clip
// to the global norm, AdamW with the scheduled lr. Everything that decides the next step (weights,
// moments, step, data position, RNG) is in RUN/model.bin + RUN/optim.bin, so `--resume`
// continues bit-identically. A non-finite loss stops the run before it can touch a checkpoint;
// SIGINT/SIGTERM finish the current step, save, and exit.
#include "kernels/ops.h"
#include "model/checkpoint.h"
#include "data/prompts.h"
#include "model/gpt.h"
#include "tokenizer/bpe.h"
#include "train/loader.h"
#include "train/dist.h"  // data parallelism (issue 9)
#include "train/sft_score.h"
#include "train/schedule.h"
#include "util/args.h"
#include "util/rng.h"
#include "util/progress.h"
#include "util/util.h"
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    StrList data, val_data;
    const char *tokenizer, *model, *out, *schedule, *device;
    const char *init, *sft_eval;          // SFT: pretrained run to start from; val graphs to score
    const char *pos_init;                 // random | sinusoid (gpt_init_positions_sinusoid)
    const char *corpus;                   // training graphs whose root conditions the run records
    bool sft, loss_on_all;
    bool pos_offsets;                     // each step's rows start at a random position of the context
    bool shuffle;                         // rows cut at a fresh offset and drawn in a fresh order every epoch
    int sft_eval_every, sft_eval_n, sft_eval_tokens;
    int layers, heads, embd;
    int ctx;                              // a fresh model's context when longer than seq_len (0: seq_len)
    int batch, seq_len, grad_accum, warmup, eval_every, eval_batches, save_every, stop_after, threads, print_every;
    int64_t steps;
    double epochs, lr, min_lr_frac, weight_decay, beta1, beta2, clip;
    int64_t seed;
    bool resume;
} TrainOpts;

// ---- signals: finish the step, save, exit ----
static volatile sig_atomic_t stop_signal;
static void on_stop_signal(int sig) {
    stop_signal = sig;
    install_cleanup_signals();  // a second signal kills at once (temporaries still removed)
}

// ---- run directory ----
typedef struct { char model[4096], optim[4096], log[4096]; } RunPaths;

static void run_paths(RunPaths *p, const char *dir) {
    snprintf(p->model, sizeof p->model, "%s/model.bin", dir);
    snprintf(p->optim, sizeof p->optim, "%s/optim.bin", dir);
    snprintf(p->log, sizeof p->log, "%s/log.jsonl", dir);
}

// Keeps the log rows of steps <= step (a resumed run rewrites what came after its checkpoint).
static void truncate_log(const char *path, uint64_t step) {
    if (file_size(path) < 0) return;
    size_t len;
    char *buf = read_file(path, &len);
    OutFile *o = out_open(path);
    for (char *line = buf; *line;) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) + 1 : strlen(line);
        unsigned long long s;
        if (sscanf(line, "{\"step\":%llu", &s) == 1 && s <= step) xfwrite(line, 1, n, o->f, path);
        line += n;
    }
    out_close(o);
    free(buf);
}

// data parallelism (train/dist.h): the world this process belongs to (a world of one by default)
static Dist *dist;

// ---- evaluation ----
static double eval_loss(GPT *m, Loader *val, int n_batches, int32_t *inp, int32_t *tgt, float *w) {
    m->pos_offset = 0;   // validation: positions from 0, as generation uses them
    loader_rewind(val);
    if ((uint64_t)n_batches > val->windows_per_epoch) n_batches = (int)val->windows_per_epoch;
    double sum = 0;
    long count = 0;
    for (int i = 0; i < n_batches; i++) {
        loader_next_rank(val, dist->rank, dist->world, inp, tgt, w);  // dist: this rank's rows
        gpt_forward(m, inp, val->B / dist->world, val->T);
        int n = 0;
        sum += gpt_loss(m, tgt, val->has_mask ? w : NULL, 0.0f, &n);
        count += n;
    }
    double tot[2] = {sum, (double)count};  // dist: over all ranks
    dist_sum_array(dist, tot, 2);
    return tot[1] ? tot[0] / tot[1] : NAN;
}

// The fixed header of a checkpoint (its context length) without loading the weights; the full
// load later checks everything else (crc, sizes).
static bool peek_header(const char *path, CkptHeader *h, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(err, errlen, "%s: %s", path, strerror(errno)); return false; }
    bool ok = fread(h, sizeof *h, 1, f) == 1 && !memcmp(h->magic, CKPT_MAGIC, 8);
    fclose(f);
    if (!ok) snprintf(err, errlen, "%s: not a tracellm checkpoint (bad or short header)", path);
    else if (h->max_seq_len < 2) { snprintf(err, errlen, "%s: context length %d in the header", path, h->max_seq_len); ok = false; }
    return ok;
}

int cmd_train(int argc, char **argv) {
    TrainOpts o = {.schedule = "cosine", .pos_init = "random", .device = "cpu", .batch = 8, .grad_accum = 1, .sft_eval_n = 50, .sft_eval_tokens = 512,
                   .warmup = 400, .eval_every = 250, .eval_batches = 20, .save_every = 1000, .print_every = 10,
                   .lr = 3e-4, .min_lr_frac = 0.1, .weight_decay = 0.1, .beta1 = 0.9, .beta2 = 0.95, .clip = 1.0,
                   .seed = 1337};
    DistOpts dopt = {0};  // data parallelism (train/dist.h)
    Opt opts[] = {
        {"--data", OPT_STRS, &o.data, "SHARD...", "training shards (tracellm shards)", true},
        {"--val-data", OPT_STRS, &o.val_data, "SHARD...", "validation shards for the eval loss", false},
        {"--corpus", OPT_STR, &o.corpus, "JSONL", "training graphs: their root conditions go to RUN/conditions.jsonl, where generate draws the conditions a user leaves out", false},
        {"--tokenizer", OPT_STR, &o.tokenizer, "PATH", "tokenizer file: checked against the shards' fingerprint", false},
        {"--out", OPT_STR, &o.out, "RUN", "run directory: model.bin, optim.bin, log.jsonl", true},
        {"--model", OPT_STR, &o.model, "dN", "preset d2|d4|d6|d8|d12: N layers, N heads, 64*N channels", false},
        {"--layers", OPT_INT, &o.layers, "N", "override the preset's layer count", false},
        {"--heads", OPT_INT, &o.heads, "N", "override the preset's head count", false},
        {"--embd", OPT_INT, &o.embd, "N", "override the preset's channels", false},
        {"--batch", OPT_INT, &o.batch, "B", "sequences per micro-batch", false},
        {"--seq-len", OPT_INT, &o.seq_len, "T", "tokens per sequence (the model's context length)", false},
        {"--ctx", OPT_INT, &o.ctx, "N", "a new model's context when longer than --seq-len: train short sequences first, then --resume "
                                         "with a longer --seq-len up to N (default: --seq-len)", false},
        {"--grad-accum", OPT_INT, &o.grad_accum, "K", "micro-batches per optimizer step", false},
        {"--steps", OPT_I64, &o.steps, "N", "optimizer steps in total (or --epochs)", false},
        {"--epochs", OPT_DOUBLE, &o.epochs, "E", "passes over the training data (sets --steps)", false},
        {"--lr", OPT_DOUBLE, &o.lr, "F", "peak learning rate", false},
        {"--min-lr-frac", OPT_DOUBLE, &o.min_lr_frac, "F", "final lr as a fraction of --lr", false},
        {"--warmup", OPT_INT, &o.warmup, "N", "linear warmup steps (capped at a tenth of --steps)", false},
        {"--schedule", OPT_STR, &o.schedule, "NAME", "cosine | linear | constant after warmup", false},
        {"--weight-decay", OPT_DOUBLE, &o.weight_decay, "F", "AdamW decoupled weight decay (matrices only)", false},
        {"--beta1", OPT_DOUBLE, &o.beta1, "F", "AdamW beta1", false},
        {"--beta2", OPT_DOUBLE, &o.beta2, "F", "AdamW beta2", false},
        {"--clip", OPT_DOUBLE, &o.clip, "F", "global gradient-norm clipping (0 = off)", false},
        {"--eval-every", OPT_INT, &o.eval_every, "N", "validation loss every N steps (0 = only at the end)", false},
        {"--eval-batches", OPT_INT, &o.eval_batches, "N", "batches of validation data per evaluation", false},
        {"--save-every", OPT_INT, &o.save_every, "N", "checkpoint every N steps (0 = only at the end)", false},
        {"--resume", OPT_FLAG, &o.resume, NULL, "continue the run in --out from its checkpoint (its model shape wins)", false},
        {"--stop-after", OPT_INT, &o.stop_after, "K", "end this invocation after K steps with a checkpoint", false},
        {"--seed", OPT_I64, &o.seed, "S", "initialisation seed (and --shuffle's order)", false},
        {"--pos-offsets", OPT_FLAG, &o.pos_offsets, NULL, "each step's sequences take positions from a random start in the context "
                                                          "(with --ctx: short sequences train every position; beyond GPT-2)", false},
        {"--shuffle", OPT_FLAG, &o.shuffle, NULL, "every epoch, cut the shards into rows at a fresh offset and draw them in a fresh "
                                                  "order (seeded by --seed; default: the same contiguous windows every epoch)", false},
        {"--pos-init", OPT_STR, &o.pos_init, "random|sinusoid", "position embeddings at step 0: random (GPT-2) or sinusoids (beyond GPT-2: "
                                                               "short runs on long contexts learn positions faster; still trained)", false},
        {"--threads", OPT_INT, &o.threads, "N", "CPU threads (0 = all)", false},
        {"--device", OPT_STR, &o.device, "NAME", "backend: cpu; with nvcc also cuda (bf16 mixed precision) and cuda-fp32", false},
        {"--print-every", OPT_INT, &o.print_every, "N", "progress line every N steps", false},
        DIST_OPTIONS(dopt),
        {"--sft", OPT_FLAG, &o.sft, NULL, "instruction tuning: start from --init, train on the loss mask, SFT defaults "
                                           "(lr 3e-4 cosine, 4 epochs, seq-len of the model)", false},
        {"--init", OPT_STR, &o.init, "RUN", "--sft: the pretrained run whose RUN/model.bin is the starting point (fresh optimizer)", false},
        {"--loss-on-all", OPT_FLAG, &o.loss_on_all, NULL, "ignore the shards' loss mask: train on prompt tokens too (the released code)", false},
        {"--sft-eval", OPT_STR, &o.sft_eval, "GRAPHS", "val graphs JSONL: score greedy instruction following (needs --tokenizer)", false},
        {"--sft-eval-every", OPT_INT, &o.sft_eval_every, "N", "score every N steps (0 = only at the end)", false},
        {"--sft-eval-n", OPT_INT, &o.sft_eval_n, "N", "layers in the held-out instruction set", false},
        {"--sft-eval-tokens", OPT_INT, &o.sft_eval_tokens, "N", "generated tokens per layer answer at most", false},
    };
    args_parse(argc, argv, "tracellm train --data SHARD... --out RUN [options]",
               "Trains the GPT on token shards. RUN/log.jsonl gets one JSON object per step; RUN/model.bin and\n"
               "RUN/optim.bin are the checkpoint (--resume continues bit-identically).",
               opts, sizeof opts / sizeof opts[0], NULL);
    dist = dist_init(&dopt);  // dist: join the world (--batch is per rank)

    // ---- options ----
    // SFT: the paper's schedule by default (lr 3e-4 cosine, 4 epochs); the shape comes from --init
    if (o.sft && !o.init && !o.resume) fatal("--sft needs --init PRETRAINED_RUN (or --resume of an SFT run)");
    if (o.init && !o.sft) fatal("--init applies to --sft (instruction tuning from a pretrained run)");
    if (o.init && (o.model || o.layers || o.heads || o.embd))
        fatal("--init %s: the model shape comes from its checkpoint; drop --model/--layers/--heads/--embd", o.init);
    if (o.sft && o.steps == 0 && o.epochs == 0) o.epochs = 4;
    if (!o.model) o.model = "d4";
    if (o.sft_eval && !o.tokenizer) fatal("--sft-eval needs --tokenizer (prompts are encoded and answers decoded with it)");
    if (o.sft_eval_every < 0 || o.sft_eval_n < 1 || o.sft_eval_tokens < 1) fatal("--sft-eval-every must be >= 0, --sft-eval-n and --sft-eval-tokens >= 1");
    if (o.seq_len == 0 && !o.sft) o.seq_len = 256;  // --sft: the checkpoint's context, known below
    if (o.batch < 1 || (o.seq_len && o.seq_len < 2) || o.grad_accum < 1) fatal("--batch, --grad-accum must be >= 1 and --seq-len >= 2");
    // the SFT starting point is read first: its context is the default --seq-len
    GPT m;
    char err[8192];
    RunPaths rp;
    run_paths(&rp, o.out);
    if (o.sft && !o.seq_len) {
        CkptHeader h;
        char path[4200];
        snprintf(path, sizeof path, "%s/model.bin", o.resume ? o.out : o.init);
        if (!peek_header(path, &h, err, sizeof err)) fatal("%s", err);
        o.seq_len = h.max_seq_len;
    }
    if (o.ctx && (o.ctx < o.seq_len || o.resume || o.init))
        fatal("--ctx %d: a new model's context, at least --seq-len %d (a resumed or --init run keeps its checkpoint's)", o.ctx, o.seq_len);
    if ((int64_t)o.batch * o.seq_len > (1 << 24)) fatal("--batch * --seq-len is too large (%lld tokens)", (long long)o.batch * o.seq_len);
    if (o.steps < 0 || o.epochs < 0 || o.warmup < 0 || o.eval_every < 0 || o.save_every < 0 || o.stop_after < 0 || o.print_every < 0 || o.eval_batches < 1)
        fatal("step counts must not be negative");
    if (!(o.lr > 0) || o.min_lr_frac < 0 || o.min_lr_frac > 1 || o.weight_decay < 0 || o.clip < 0 ||
        !(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1))
        fatal("bad optimizer setting: need --lr > 0, 0 <= --min-lr-frac <= 1, --weight-decay >= 0, --clip >= 0, betas in [0,1)");
    int sched = schedule_parse(o.schedule);
    if (sched < 0) fatal("--schedule %s: expected cosine, linear or constant", o.schedule);
    if (strcmp(o.pos_init, "random") && strcmp(o.pos_init, "sinusoid")) fatal("--pos-init %s: expected random or sinusoid", o.pos_init);
    const Backend *be = backend_get(o.device);
    if (!be) fatal("--device %s: not built into this binary (available: cpu%s)", o.device,
#ifdef TRACELLM_CUDA
                   ", cuda, cuda-fp32"
#else
                   ""
#endif
        );
    be->set_threads(o.threads);

    // ---- data ----
    Loader train, val = {0};
    loader_open(&train, o.data.v, o.data.n, o.batch * dist->world, o.seq_len, o.shuffle, (uint64_t)o.seed);  // dist: the global batch
    bool have_val = o.val_data.n > 0;
    if (have_val) {
        loader_open(&val, o.val_data.v, o.val_data.n, o.batch * dist->world, o.seq_len, false, 0);
        if (val.fingerprint != train.fingerprint || val.vocab_size != train.vocab_size)
            fatal("%s was made by another tokenizer than %s (fingerprint %016" PRIx64 " vs %016" PRIx64 ")",
                  o.val_data.v[0], o.data.v[0], val.fingerprint, train.fingerprint);
    }
    Bpe tok = {0};
    if (o.tokenizer) {
        bpe_load(&tok, o.tokenizer);
        if (tok.fingerprint != train.fingerprint || (uint32_t)tok.vocab_size != train.vocab_size)
            fatal("tokenizer mismatch: %s has fingerprint %016" PRIx64 " (vocab %d) but %s was made by %016" PRIx64
                  " (vocab %u)", o.tokenizer, tok.fingerprint, tok.vocab_size, o.data.v[0], train.fingerprint, train.vocab_size);
    }
    // the held-out instruction set: prompts rendered once, scored with greedy decoding
    SftEvalSet *sft_set = NULL;
    if (o.sft_eval) sft_set = sft_evalset_load(o.sft_eval, o.sft_eval_n, &tok);
    if (o.sft && !train.has_mask && !o.loss_on_all)
        fatal("--sft: %s carries no loss mask (make instruction shards with `tracellm shards --format instruction`, "
              "or pass --loss-on-all to train on every token)", o.data.v[0]);
    if (o.epochs > 0) o.steps = (int64_t)ceil(o.epochs * train.windows_per_epoch / o.grad_accum);
    if (o.steps < 1) fatal("give --steps N or --epochs E (how long to train)");
    if (o.warmup > o.steps / 10 && o.warmup > 0) {
        fprintf(stderr, "train: --warmup %d capped at a tenth of the %" PRId64 " steps: %d\n", o.warmup, o.steps, (int)(o.steps / 10));
        o.warmup = (int)(o.steps / 10);
    }

    // ---- model: a fresh one, or the run's checkpoint ----
    // the shape of a fresh model is checked before anything is created on disk
    GPTConfig cfg = {0};
    if (!o.resume && !o.init) {
        if (!gpt_preset(o.model, &cfg)) fatal("--model %s: expected one of d2 d4 d6 d8 d12", o.model);
        if (o.layers) cfg.n_layer = o.layers;
        if (o.heads) cfg.n_head = o.heads;
        if (o.embd) cfg.n_embd = o.embd;
        cfg.max_seq_len = o.ctx ? o.ctx : o.seq_len;
        cfg.vocab_size = (int)train.vocab_size;
        cfg.padded_vocab_size = gpt_padded_vocab(cfg.vocab_size);
        const char *bad = gpt_config_check(&cfg);
        if (bad) fatal("model %s with --layers/--heads/--embd: %s", o.model, bad);
    }
    if (mkdir_p(o.out, 0777)) fatal("cannot create run directory %s: %s", o.out, strerror(errno));
    // The corpus the model learned from, as root conditions (service, size, depth, latency):
    // `tracellm generate` draws what a request leaves out from here. An SFT run inherits its
    // pretraining run's file unless --corpus names another.
    if (dist->rank == 0 && !o.resume) {
        char cpath[4200], ipath[4200];
        snprintf(cpath, sizeof cpath, "%s/conditions.jsonl", o.out);
        if (o.init) snprintf(ipath, sizeof ipath, "%s/conditions.jsonl", o.init);
        if (o.corpus) prompts_write(o.corpus, cpath, 0, 0, false);
        else if (o.init && file_size(ipath) >= 0) {
            size_t len;
            char *text = read_file(ipath, &len);
            OutFile *cf = out_open(cpath);
            xfwrite(text, 1, len, cf->f, cpath);
            out_close(cf);
            free(text);
        }
    }
    TrainState st = {0};
    Rng rng;
    if (o.resume) {
        if (file_size(rp.model) < 0) fatal("--resume: %s has no checkpoint (%s is missing)", o.out, rp.model);
        CkptHeader h;
        if (!checkpoint_load_model(rp.model, &m, be, &h, err, sizeof err)) fatal("%s", err);
        if (h.tokenizer_fingerprint != train.fingerprint)
            fatal("tokenizer mismatch: %s was trained on tokens of tokenizer %016" PRIx64 ", but %s was made by %016" PRIx64
                  "; use shards made with the run's tokenizer", rp.model, h.tokenizer_fingerprint, o.data.v[0], train.fingerprint);
        if ((uint32_t)m.cfg.vocab_size != train.vocab_size)
            fatal("%s has a vocabulary of %d, the shards %u", rp.model, m.cfg.vocab_size, train.vocab_size);
        if (o.seq_len > m.cfg.max_seq_len) fatal("--seq-len %d exceeds the checkpoint's context %d", o.seq_len, m.cfg.max_seq_len);
        if (dist->zero) {
            dist_zero_load(dist, o.out, &m, &st);  // dist: this rank's ZeRO-1 optimizer slice
        } else {
            dist_resume_check(dist, o.out);  // dist: a ZeRO-1 run needs --zero 1
            if (file_size(rp.optim) < 0) fatal("--resume: %s is missing (a model file alone cannot resume bit-identically)", rp.optim);
            if (!checkpoint_load_optim(rp.optim, &m, &st, err, sizeof err)) fatal("%s", err);
        }
        if (st.step != h.step)
            fatal("%s is at step %" PRIu64 " but %s at step %" PRIu64 " (interrupted while saving?)", rp.model, h.step, rp.optim, st.step);
        if ((st.shard == LOADER_SHUFFLED) != train.shuffled)
            fatal("%s was trained %s --shuffle: resume it %s --shuffle (and the same --seed)", o.out, train.shuffled ? "without" : "with",
                  train.shuffled ? "without" : "with");
        if (train.shuffled ? st.offset > train.n_rows : st.shard >= (uint64_t)train.n_shards)
            fatal("%s: data position (%s %" PRIu64 ") does not fit the %s given", rp.optim, train.shuffled ? "row" : "shard",
                  train.shuffled ? st.offset : st.shard, train.shuffled ? "shards' rows" : "shards");
        train.shard = st.shard; train.offset = st.offset; train.epoch = st.epoch;
        memcpy(rng.s, st.rng, sizeof rng.s);
        if (dist->rank == 0) truncate_log(rp.log, st.step);
        fprintf(stderr, "train: resuming %s at step %" PRIu64 " of %" PRId64 "\n", o.out, st.step, o.steps);
    } else {
        if (file_size(rp.model) >= 0)
            fatal("%s already holds a checkpoint (%s): pass --resume to continue it, or choose another --out", o.out, rp.model);
        if (o.init) {
            // SFT: the pretrained weights, a fresh optimizer (moments are created by the first
            // update) and step 0; the pretraining run is only read
            char path[4200];
            snprintf(path, sizeof path, "%s/model.bin", o.init);
            if (file_size(path) < 0) fatal("--init %s: no pretrained checkpoint (%s is missing)", o.init, path);
            CkptHeader h;
            if (!checkpoint_load_model(path, &m, be, &h, err, sizeof err)) fatal("%s", err);
            if (h.tokenizer_fingerprint != train.fingerprint || (uint32_t)m.cfg.vocab_size != train.vocab_size)
                fatal("tokenizer mismatch: --init %s was pretrained on tokens of tokenizer %016" PRIx64 " (vocab %d), but %s was "
                      "made by %016" PRIx64 " (vocab %u); make the instruction shards with the pretraining tokenizer",
                      path, h.tokenizer_fingerprint, m.cfg.vocab_size, o.data.v[0], train.fingerprint, train.vocab_size);
            if (o.seq_len > m.cfg.max_seq_len) fatal("--seq-len %d exceeds the context %d of --init %s", o.seq_len, m.cfg.max_seq_len, path);
            fprintf(stderr, "train: SFT from %s (pretrained %" PRIu64 " steps)\n", path, h.step);
        } else {
            gpt_create(&m, &cfg, be);
            gpt_init_random(&m, (uint64_t)o.seed);
            if (!strcmp(o.pos_init, "sinusoid")) gpt_init_positions_sinusoid(&m);
        }
        rng_seed(&rng, (uint64_t)o.seed);
        if (dist->rank == 0) unlink(rp.log);
    }
    dist_broadcast_params(dist, &m);  // dist: every rank starts from rank 0's weights
    if ((int64_t)st.step >= o.steps) {
        fprintf(stderr, "train: %s is already at step %" PRIu64 " of %" PRId64 "; nothing to do\n", o.out, st.step, o.steps);
        gpt_free(&m);
        dist_free(dist);
        return 0;
    }
    gpt_plan(&m, o.batch, o.seq_len, true);
    FILE *log = fopen(dist->rank == 0 ? rp.log : "/dev/null", "a");  // dist: rank 0 logs
    if (!log) fatal("cannot open %s: %s", rp.log, strerror(errno));
    fprintf(stderr, "train: %d layers, %d heads, %d channels, vocab %d (padded %d), %.2fM parameters, %.0f MB of "
                    "activations and gradients; %" PRIu64 " tokens in %d shards, %" PRIu64 " batches of %dx%d per epoch; %" PRId64 " steps\n",
            m.cfg.n_layer, m.cfg.n_head, m.cfg.n_embd, m.cfg.vocab_size, m.cfg.padded_vocab_size, m.n_params / 1e6,
            // activations and their gradients; fp32 master, gradients and moments; the compute copy
            (1.0 * m.act_mem_bytes + m.dact_mem_bytes + m.n_params * (16.0 + (m.params_x != m.params ? be->act_bytes : 0))) / 1e6,
            train.usable_tokens, train.n_shards,
            train.windows_per_epoch, o.batch * dist->world, o.seq_len, o.steps);  // dist: global batches

    // ---- the loop ----
    size_t BT = (size_t)o.batch * o.seq_len, K = o.grad_accum;
    int32_t *inp = xmalloc(K * BT * sizeof *inp), *tgt = xmalloc(K * BT * sizeof *tgt);
    float *w = xmalloc(K * BT * sizeof *w);
    struct sigaction sa = {0};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    uint64_t last_saved = o.resume ? st.step : UINT64_MAX;  // UINT64_MAX: nothing saved yet
    int64_t start = (int64_t)st.step, stop_at = o.stop_after ? start + o.stop_after : o.steps;
    if (stop_at > o.steps) stop_at = o.steps;
    double t_start = now_seconds(), t_print = t_start;
    int64_t tokens_since_print = 0;
    int rc = 0;
    for (int64_t step = start; step < stop_at; step++) {
        double t0 = now_seconds();
        // fetch the whole step's data first: the loss scale needs its unmasked-token count
        long n_counted = 0;
        for (size_t k = 0; k < K; k++) {
            loader_next_rank(&train, dist->rank, dist->world, inp + k * BT, tgt + k * BT, w + k * BT);
            if (o.loss_on_all)
                for (size_t i = 0; i < BT; i++) w[k * BT + i] = 1.0f;
            for (size_t i = 0; i < BT; i++) n_counted += w[k * BT + i] != 0.0f;
        }
        n_counted = (long)dist_sum(dist, (double)n_counted);  // dist: the step's count over all ranks
        float dscale = n_counted ? 1.0f / (float)n_counted : 0.0f;
        gpt_zero_grad(&m);
        // --pos-offsets: one start per step, from the run's RNG (saved, so --resume stays exact)
        m.pos_offset = o.pos_offsets ? (int)rng_below(&rng, (uint64_t)(m.cfg.max_seq_len - o.seq_len + 1)) : 0;
        double loss_sum = 0;
        for (size_t k = 0; k < K; k++) {
            gpt_forward(&m, inp + k * BT, o.batch, o.seq_len);
            loss_sum += gpt_loss(&m, tgt + k * BT, train.has_mask && !o.loss_on_all ? w + k * BT : NULL, dscale, NULL);
            // dist: on the last micro-step each layer's gradients start their reduction as soon as
            // the backward pass has finished them (gpt_backward alone in a single process)
            if (dscale != 0.0f) dist_backward(dist, &m, k + 1 == K);
        }
        // dist: the gradients summed over ranks (waits for the buckets started above), and the losses
        double norm = dist_reduce_grads(dist, &m);
        loss_sum = dist_sum(dist, loss_sum);
        double loss = n_counted ? loss_sum / n_counted : 0.0;
        if (!isfinite(loss) || !isfinite(norm)) {
            char last[4200];
            if (last_saved == UINT64_MAX) snprintf(last, sizeof last, "no checkpoint was saved in this run");
            else snprintf(last, sizeof last, "the last good checkpoint is %s (step %" PRIu64 ")", rp.model, last_saved);
            fprintf(stderr, "tracellm: step %" PRId64 ": the %s is %s; stopping without saving: %s. "
                            "Lower --lr or raise --warmup, then --resume.\n",
                    step + 1, isfinite(loss) ? "gradient norm" : "loss", isfinite(loss) ? (isnan(norm) ? "NaN" : "Inf") : (isnan(loss) ? "NaN" : "Inf"), last);
            rc = 1;
            break;
        }
        float grad_scale = o.clip > 0 && norm > o.clip ? (float)(o.clip / (norm + 1e-6)) : 1.0f;
        double lr = schedule_lr((Schedule)sched, o.lr, o.min_lr_frac, o.warmup, step, o.steps);
        dist_update(dist, &m, (float)lr, (float)o.beta1, (float)o.beta2, 1e-8f, (float)o.weight_decay, (int)(step + 1), grad_scale);
        st.step = (uint64_t)step + 1;
        st.tokens_seen += K * BT * dist->world;
        double dt = now_seconds() - t0;
        tokens_since_print += (int64_t)(K * BT * dist->world);

        // eval, log, progress
        bool last_step = (int64_t)st.step == o.steps;
        fprintf(log, "{\"step\":%" PRIu64 ",\"loss\":%.8g,\"lr\":%.8g,\"grad_norm\":%.8g,\"tokens_per_s\":%.0f", st.step,
                loss, lr, norm, K * BT * dist->world / dt);
        if (have_val && ((o.eval_every && st.step % o.eval_every == 0) || last_step)) {
            double vl = eval_loss(&m, &val, o.eval_batches, inp, tgt, w);
            fprintf(log, ",\"val_loss\":%.8g", vl);
            fprintf(stderr, "train: step %" PRIu64 ": val loss %.4f\n", st.step, vl);
        }
        // the instruction score needs no other rank (same weights everywhere): rank 0 alone scores and logs
        if (sft_set && dist->rank == 0 && ((o.sft_eval_every && st.step % o.sft_eval_every == 0) || last_step)) {
            SftScore sc;
            sft_score_model(&m, &tok, sft_set, o.sft_eval_tokens, &sc, NULL, false);
            fprintf(log, ",\"sft_score\":%.6g,\"sft_parsed\":%.6g,\"sft_counts\":%.6g,\"sft_valid\":%.6g,\"sft_layers\":%d",
                    sft_share(&sc, sc.ok), sft_share(&sc, sc.parsed), sft_share(&sc, sc.counts), sft_share(&sc, sc.valid), sc.n);
            char line[512];
            sft_score_line(&sc, line, sizeof line);
            fprintf(stderr, "train: step %" PRIu64 ": instruction following %s\n", st.step, line);
        }
        fprintf(log, "}\n");
        if (fflush(log) || ferror(log)) fatal("cannot write %s: %s", rp.log, strerror(errno));
        if (o.print_every && (st.step % o.print_every == 0 || step == start || (int64_t)st.step == stop_at)) {
            double t = now_seconds(), el = t - t_start;
            char eta[32];
            fmt_duration(eta, sizeof eta, el / (double)(st.step - start) * (double)(o.steps - (int64_t)st.step));
            fprintf(stderr, "train: step %" PRIu64 "/%" PRId64 " | loss %.4f | lr %.2e | norm %.3f | %.0f tok/s | ETA %s\n",
                    st.step, o.steps, loss, lr, norm, tokens_since_print / (t - t_print), eta);
            t_print = t;
            tokens_since_print = 0;
        }

        // read the flag once: a signal that lands after this read is seen at the next step, never lost
        // or half-seen (saved without stopping); dist: a signal to any rank stops all at the same step
        int stop_now = dist_max_int(dist, stop_signal);
        bool save = last_step || (int64_t)st.step == stop_at || stop_now || (o.save_every && st.step % o.save_every == 0);
        if (save) {
            st.shard = train.shard; st.offset = train.offset; st.epoch = train.epoch;
            memcpy(st.rng, rng.s, sizeof st.rng);
            // optimizer first: a crash between the two renames leaves mismatched steps, which
            // --resume reports instead of silently mixing states
            // dist: each rank saves its ZeRO-1 slice (or rank 0 the whole optimizer), then rank 0 the model
            if (dist->zero) dist_zero_save(dist, o.out, &m, &st);
            else if (dist->rank == 0) checkpoint_save_optim(rp.optim, &m, &st);
            dist_barrier(dist);
            if (dist->rank == 0) checkpoint_save_model(rp.model, &m, train.fingerprint, st.step);
            last_saved = st.step;
        }
        if (stop_now) {
            fprintf(stderr, "train: %s at step %" PRIu64 ": saved %s; continue with --resume\n",
                    stop_now == SIGINT ? "interrupted" : "terminated", st.step, rp.model);
            rc = 128 + stop_now;
            break;
        }
    }
    if (rc == 0)
        fprintf(stderr, "train: %s at step %" PRIu64 " of %" PRId64 " (%s)\n",
                (int64_t)st.step == o.steps ? "done" : "stopped", st.step, o.steps, rp.model);
    if (fclose(log)) fatal("cannot write %s: %s", rp.log, strerror(errno));
    free(inp); free(tgt); free(w);
    if (sft_set) sft_evalset_free(sft_set);
    free(o.data.v);
    free(o.val_data.v);
    if (o.tokenizer) bpe_free(&tok);
    loader_free(&train);
    if (have_val) loader_free(&val);
    gpt_free(&m);
    dist_free(dist);
    return rc;
}
