// tracellm: one program, one subcommand per job. Each folder owns its commands; this file only
// dispatches. `tracellm CMD --help` documents every command.
#include "util/util.h"
#include <stdio.h>
#include <string.h>

// Each command is int cmd_NAME(int argc, char **argv) with argv[0] = "NAME", defined in its folder.
typedef int (*CmdFn)(int argc, char **argv);
typedef struct { const char *name; CmdFn fn; const char *summary; } Command;

#define COMMANDS(X)                                                                                          \
    X(synth, "write the built-in demo corpus: synthetic call graphs in the exact Alibaba v2022 CSV format") \
    X(prepare, "Alibaba call-graph traces (csv, csv.gz, tar.gz) -> clean call graphs, train/val split, report") \
    X(graphcheck, "validate a graphs JSONL file (structure rules of PAPER.md §1) and print counts") \
    X(stats, "per-service latency max/p90/mean and rare communications of a graphs JSONL -> stats.json") \
    X(render, "graphs JSONL -> the paper's tabular / recursive / instruction text, or --parse text -> graphs") \
    X(prompts, "root conditions (service, num_edges, depth, latency) of real graphs -> a prompts file") \
    X(tokenizer, "byte-level BPE for trace text: train, encode, decode, stats") \
    X(shards, "graphs or text -> shuffled, encoded token shards for training (loss mask for instruction data)") \
    X(train, "train the GPT on token shards (AdamW, warmup+cosine, checkpoints, bit-identical --resume)") \
    X(sft, "instruction tuning helpers: `sft score` (instruction following of a run), `sft data` (templates)") \
    X(generate, "call graphs from a trained model: batched KV-cache engine, recursive layers, checks, retries") \
    X(baseline, "the Alibaba authors' probabilistic call-graph model: fit on graphs, sample graphs") \
    X(eval, "compare synthetic graphs with real ones: validity, KL, heavy hitters, EMDs -> report")

#define DECLARE(name, summary) int cmd_##name(int argc, char **argv);
COMMANDS(DECLARE)
#define ENTRY(name, summary) {#name, cmd_##name, summary},
static const Command commands[] = {COMMANDS(ENTRY)};
#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

static void usage(FILE *f) {
    fprintf(f, "tracellm: synthetic microservice call graphs with a GPT trained from scratch\n\n"
               "usage: tracellm COMMAND [options]   (tracellm COMMAND --help for its options)\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    install_cleanup_signals();
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "tracellm: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
