// `tracellm tokenizer train|encode|decode|stats`: the BPE of bpe.h from the command line.
// Id files are raw little-endian uint16 (the shard token type) unless --text-ids asks for one
// decimal id per line, which is easy to read and to produce from other tools.
#include "tokenizer/bpe.h"
#include "tokenizer/pretok.h"
#include "util/args.h"
#include "util/progress.h"
#include "util/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static void set_threads(int threads) {
#ifdef _OPENMP
    if (threads > 0) omp_set_num_threads(threads);
#else
    (void)threads;
#endif
}

// Encodes one text on all threads: ~1 MB chunks cut at pretok_safe_split, so the tokens are the
// same as a single-threaded encode (tested), then concatenated in order.
static void encode_parallel(const Bpe *b, const unsigned char *s, size_t n, TokBuf *out, bool progress) {
    size_t *cut = NULL, nc = 0, cc = 0, pos = 0;
    do {
        if (nc + 1 >= cc) grow((void **)&cut, &cc, nc + 2, sizeof *cut);
        cut[nc++] = pos;
        pos = pos + (1u << 20) < n ? pretok_safe_split(s, n, pos + (1u << 20)) : n;
    } while (pos < n);
    cut[nc] = n;
    TokBuf *parts = xcalloc(nc, sizeof *parts);
    Progress pr; progress_start(&pr, "encode", "MB", n / 1e6);
    double done = 0;
    #pragma omp parallel
    {
        BpeCache *c = bpe_cache_new();
        #pragma omp for schedule(dynamic, 1)
        for (size_t i = 0; i < nc; i++) {
            bpe_encode(b, c, s + cut[i], cut[i + 1] - cut[i], &parts[i]);
            #pragma omp critical(encode_progress)
            { done += cut[i + 1] - cut[i]; if (progress) progress_update(&pr, done / 1e6, done, -1); }
        }
        bpe_cache_free(c);
    }
    if (progress && n > (8u << 20)) progress_end(&pr, done / 1e6, done);
    for (size_t i = 0; i < nc; i++) {
        if (out->n + parts[i].n > out->cap) grow((void **)&out->v, &out->cap, out->n + parts[i].n, sizeof *out->v);
        if (parts[i].n) memcpy(out->v + out->n, parts[i].v, parts[i].n * sizeof *out->v);
        out->n += parts[i].n;
        free(parts[i].v);
    }
    free(parts); free(cut);
}

static int cmd_train(int argc, char **argv) {
    StrList in = {0}, extra = {0};
    const char *out = NULL;
    int vocab = 4096, threads = 0;
    int64_t min_count = 2;
    bool quiet = false;
    Opt opts[] = {
        {"--in", OPT_STRS, &in, "TEXT...", "training text files (trace text in any of the formats)", true},
        {"--out", OPT_STR, &out, "FILE", "tokenizer file to write", true},
        {"--vocab-size", OPT_INT, &vocab, "N", "total ids: 256 bytes + merges + special tokens (<= 65536)", false},
        {"--min-count", OPT_I64, &min_count, "N", "stop merging when the best pair occurs fewer times", false},
        {"--special", OPT_STRS, &extra, "NAME...", "extra special tokens after " BPE_EOT " and " BPE_BOUNDARY, false},
        {"--threads", OPT_INT, &threads, "N", "threads for counting (0 = all cores)", false},
        {"--quiet", OPT_FLAG, &quiet, NULL, "no progress line", false},
    };
    args_parse(argc, argv, "tracellm tokenizer train --in TEXT... --out tok.bin [--vocab-size 4096]",
               "Trains a byte-level BPE on trace text with trace-aware pre-tokenization (docs/TOKENIZER.md).\n"
               "Special tokens " BPE_EOT " (ends every document) and " BPE_BOUNDARY " (starts the rest of a sample\n"
               "that was split) are always added; encoding text never produces them.",
               opts, sizeof opts / sizeof *opts, NULL);
    if (min_count < 1) fatal("--min-count must be >= 1");
    set_threads(threads);
    const char **specials = xmalloc((2 + extra.n) * sizeof *specials);
    specials[0] = BPE_EOT; specials[1] = BPE_BOUNDARY;
    for (int i = 0; i < extra.n; i++) {
        if (!extra.v[i][0] || strlen(extra.v[i]) > 256) fatal("--special '%s': must be 1..256 bytes", extra.v[i]);
        for (int j = 0; j < 2 + i; j++)
            if (!strcmp(specials[j], extra.v[i])) fatal("--special '%s' is given twice", extra.v[i]);
        specials[2 + i] = extra.v[i];
    }
    BpeText *texts = xmalloc(in.n * sizeof *texts);
    double bytes = 0;
    for (int i = 0; i < in.n; i++) {
        size_t n;
        texts[i].p = (const unsigned char *)read_file(in.v[i], &n);
        texts[i].n = n;
        bytes += n;
    }
    double t0 = now_seconds();
    Bpe b;
    bpe_train(&b, texts, in.n, vocab, specials, 2 + extra.n, min_count, !quiet);
    double dt = now_seconds() - t0;
    bpe_save(&b, out);
    printf("tokenizer %s: vocab %d (%d merges, %d special), fingerprint %016llx, trained on %.1f MB in %.2f s\n", out,
           b.vocab_size, b.n_merges, b.n_special, (unsigned long long)b.fingerprint, bytes / 1e6, dt);
    bpe_free(&b);
    for (int i = 0; i < in.n; i++) free((void *)texts[i].p);
    free(texts); free(specials); free(in.v); free(extra.v);
    return 0;
}

static int cmd_encode(int argc, char **argv) {
    const char *tok = NULL, *in = NULL, *out = NULL;
    bool text_ids = false, quiet = false;
    int threads = 0;
    Opt opts[] = {
        {"--tokenizer", OPT_STR, &tok, "FILE", "tokenizer file", true},
        {"--in", OPT_STR, &in, "TEXT", "text to encode", true},
        {"--out", OPT_STR, &out, "IDS", "token ids to write (uint16 little-endian)", true},
        {"--text-ids", OPT_FLAG, &text_ids, NULL, "write one decimal id per line instead", false},
        {"--threads", OPT_INT, &threads, "N", "threads (0 = all cores)", false},
        {"--quiet", OPT_FLAG, &quiet, NULL, "no summary line", false},
    };
    args_parse(argc, argv, "tracellm tokenizer encode --tokenizer tok.bin --in TEXT --out IDS",
               "Encodes a text file into token ids. The whole file is one piece of text: special tokens are\n"
               "never produced (the text \"" BPE_EOT "\" is encoded as ordinary bytes).",
               opts, sizeof opts / sizeof *opts, NULL);
    set_threads(threads);
    Bpe b;
    bpe_load(&b, tok);
    size_t n;
    char *text = read_file(in, &n);
    TokBuf ids = {0};
    double t0 = now_seconds();
    encode_parallel(&b, (const unsigned char *)text, n, &ids, !quiet);
    double dt = now_seconds() - t0;
    OutFile *o = out_open(out);
    if (text_ids) {
        for (size_t i = 0; i < ids.n; i++) fprintf(o->f, "%u\n", ids.v[i]);
    } else {
        uint16_t *u = xmalloc((ids.n + 1) * sizeof *u);
        for (size_t i = 0; i < ids.n; i++) u[i] = (uint16_t)ids.v[i];  // vocab <= 65536: exact
        xfwrite(u, sizeof *u, ids.n, o->f, out);
        free(u);
    }
    out_close(o);
    if (!quiet)
        fprintf(stderr, "encoded %s: %zu bytes -> %zu tokens (%.2f bytes/token) in %.3f s (%.1f MB/s)\n", in, n, ids.n,
                ids.n ? (double)n / ids.n : 0.0, dt, n / 1e6 / (dt > 0 ? dt : 1e-9));
    free(ids.v); free(text);
    bpe_free(&b);
    return 0;
}

static int cmd_decode(int argc, char **argv) {
    const char *tok = NULL, *in = NULL, *out = NULL;
    bool text_ids = false;
    Opt opts[] = {
        {"--tokenizer", OPT_STR, &tok, "FILE", "tokenizer file", true},
        {"--in", OPT_STR, &in, "IDS", "token ids (uint16 little-endian)", true},
        {"--out", OPT_STR, &out, "TEXT", "text to write", true},
        {"--text-ids", OPT_FLAG, &text_ids, NULL, "the ids are decimal, one per line (or separated by spaces)", false},
    };
    args_parse(argc, argv, "tracellm tokenizer decode --tokenizer tok.bin --in IDS --out TEXT",
               "Decodes token ids back to text; a special token is written as its name.", opts, sizeof opts / sizeof *opts, NULL);
    Bpe b;
    bpe_load(&b, tok);
    size_t n;
    char *data = read_file(in, &n);
    TokBuf ids = {0};
    if (text_ids) {
        char *p = data, *end;
        int64_t line = 1;
        for (;;) {
            while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') { if (*p == '\n') line++; p++; }
            if (!*p) break;
            unsigned long long v = strtoull(p, &end, 10);
            if (end == p || (*end && *end != ' ' && *end != '\n' && *end != '\t' && *end != '\r') || v > UINT32_MAX)
                fatal("%s:%lld: expected a decimal token id", in, (long long)line);
            tokbuf_push(&ids, (uint32_t)v);
            p = end;
        }
    } else {
        if (n % 2) fatal("%s: %zu bytes is not a whole number of uint16 ids (use --text-ids for decimal ids)", in, n);
        for (size_t i = 0; i < n / 2; i++) tokbuf_push(&ids, (uint32_t)((unsigned char)data[2 * i] | (unsigned char)data[2 * i + 1] << 8));
    }
    ByteBuf text = {0};
    size_t bad;
    if (!bpe_decode(&b, ids.v, ids.n, &text, &bad))
        fatal("%s: token %zu has id %u, but tokenizer %s has %d ids", in, bad, ids.v[bad], tok, b.vocab_size);
    OutFile *o = out_open(out);
    if (text.n) xfwrite(text.v, 1, text.n, o->f, out);
    out_close(o);
    free(text.v); free(ids.v); free(data);
    bpe_free(&b);
    return 0;
}

// Counts for the baseline "whitespace words with digits split": every digit is a token and every
// maximal run of other non-space bytes is a token; whitespace is free (it rides on the words).
static int64_t count_words_digits(const unsigned char *s, size_t n) {
    int64_t c = 0;
    bool in_word = false;
    for (size_t i = 0; i < n; i++) {
        unsigned ch = s[i];
        if (ch - '0' < 10) { c++; in_word = false; }
        else if (ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r') in_word = false;
        else if (!in_word) { c++; in_word = true; }
    }
    return c;
}

static int64_t count_docs(const char *s, size_t n, const char *prefix) {
    size_t pl = strlen(prefix);
    int64_t c = 0;
    for (size_t i = 0; i < n; i++)
        if ((i == 0 || s[i - 1] == '\n') && n - i >= pl && !memcmp(s + i, prefix, pl)) c++;
    return c;
}

static int cmd_stats(int argc, char **argv) {
    const char *tok = NULL, *doc_start = "[GENERATE GRAPH]";
    StrList in = {0};
    int threads = 0;
    Opt opts[] = {
        {"--tokenizer", OPT_STR, &tok, "FILE", "tokenizer file", true},
        {"--in", OPT_STRS, &in, "TEXT...", "text files to measure", true},
        {"--doc-start", OPT_STR, &doc_start, "PREFIX", "a line starting with PREFIX starts a graph (use '### Question:' for instruction data)", false},
        {"--threads", OPT_INT, &threads, "N", "threads (0 = all cores)", false},
    };
    args_parse(argc, argv, "tracellm tokenizer stats --tokenizer tok.bin --in TEXT...",
               "Prints bytes/token and tokens per graph for our BPE, for bytes (vocab 256) and for whitespace\n"
               "words with digits split, plus the encoding speed.",
               opts, sizeof opts / sizeof *opts, NULL);
    set_threads(threads);
    Bpe b;
    bpe_load(&b, tok);
    printf("tokenizer %s: vocab %d, fingerprint %016llx\n", tok, b.vocab_size, (unsigned long long)b.fingerprint);
    printf("%-40s %12s %10s %8s %10s %10s %10s %12s %8s\n", "file", "bytes", "graphs", "tokens", "bytes/tok", "tok/graph",
           "byte/graph", "words+digits", "MB/s");
    for (int f = 0; f < in.n; f++) {
        size_t n;
        char *text = read_file(in.v[f], &n);
        TokBuf ids = {0};
        double t0 = now_seconds();
        encode_parallel(&b, (const unsigned char *)text, n, &ids, false);
        double dt = now_seconds() - t0;
        int64_t docs = count_docs(text, n, doc_start), words = count_words_digits((const unsigned char *)text, n);
        // per-graph columns need graphs: without a --doc-start line they are "-"
        double d = (double)docs;
        char per[3][32];
        double v[3] = {ids.n / d, n / d, words / d};
        for (int k = 0; k < 3; k++)
            if (docs) snprintf(per[k], sizeof per[k], "%.1f", v[k]); else snprintf(per[k], sizeof per[k], "-");
        printf("%-40s %12zu %10lld %8zu %10.2f %10s %10s %12s %8.1f\n", in.v[f], n, (long long)docs, ids.n,
               ids.n ? (double)n / ids.n : 0.0, per[0], per[1], per[2], n / 1e6 / (dt > 0 ? dt : 1e-9));
        printf("  ratios: %.2fx fewer tokens than bytes, %.2fx fewer than words+digits\n", ids.n ? (double)n / ids.n : 0.0,
               ids.n ? (double)words / ids.n : 0.0);
        free(ids.v); free(text);
    }
    bpe_free(&b); free(in.v);
    return 0;
}

int cmd_tokenizer(int argc, char **argv) {
    static const char *usage =
        "usage: tracellm tokenizer SUBCOMMAND [options]   (tracellm tokenizer SUBCOMMAND --help)\n\n"
        "  train    learn a byte-level BPE from trace text\n"
        "  encode   text -> token ids\n"
        "  decode   token ids -> text\n"
        "  stats    bytes/token and tokens/graph of a tokenizer on text files\n";
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(argv[1], "encode")) return cmd_encode(argc - 1, argv + 1);
    if (!strcmp(argv[1], "decode")) return cmd_decode(argc - 1, argv + 1);
    if (!strcmp(argv[1], "stats")) return cmd_stats(argc - 1, argv + 1);
    fprintf(stderr, "tracellm tokenizer: unknown subcommand '%s'\n\n%s", argv[1], usage);
    return 2;
}
