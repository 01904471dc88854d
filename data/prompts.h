// Root conditions of real graphs, one JSON object a line:
//   {"service":"S_000000001","num_edges":7,"depth":3,"latency":8}
// the prompts file that `generate --prompts` and `baseline sample --prompts` read, and what a
// training run records (RUN/conditions.jsonl, `train --corpus`) so that `generate` can draw the
// conditions a user leaves out from the training corpus.
#pragma once
#include <stdbool.h>
#include <stdint.h>

// n = 0: one line per graph in file order; else n lines drawn with replacement (seeded). Every graph
// must be valid (an invalid one stops with an error naming file and line). Returns the lines written.
int64_t prompts_write(const char *graphs_jsonl, const char *out, int64_t n, uint64_t seed, bool verbose);
