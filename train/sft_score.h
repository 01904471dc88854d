// Instruction-following score: how well a model answers single-layer instruction prompts
// (PAPER.md §3, recursive + instruction format). A held-out set is built from validation graphs:
// one layer per graph (drawn by a fixed seed), its prompt rendered with every requirement field
// and every condition sentence shown, in canonical order, so the same set is asked of every model.
// Each prompt is answered greedily through the inference engine (infer/engine.h) and the answer
// is judged on three things, each a share of the set:
//   parsed  the answer is a well-formed layer (data/format.h answer_parse)
//   counts  it has num_current_edges edges, num_subgraphs subgraph blocks, and its edges plus its
//           subgraphs' num_edges add up to num_edges
//   valid   layer_check passes (the release's error codes plus the paper's extra rules)
// and the score is the share of layers that pass all three. With `distinct` the prompts also carry
// the worked-example instruction of docs/SFT.md, "Call at most K distinct microservices in this
// layer" (K = the true layer's count), judged separately.
#pragma once
#include "data/format.h"
#include "model/gpt.h"
#include "tokenizer/bpe.h"
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    Condition req;          // the requirement shown in the prompt: what the answer must satisfy
    int distinct_max;       // the worked-example bound (0 = not asked)
    int32_t *prompt;        // [EOT] + tokens of "### Question: ... ### Answer: \n"
    int prompt_len;
    int64_t line;           // line of the graph in the JSONL file
    int layer;              // DFS index of the layer in its graph
} SftItem;

typedef struct SftEvalSet { SftItem *v; int n; } SftEvalSet;

typedef struct {
    int n, parsed, counts, valid, ok;      // ok = parsed && counts && valid
    int distinct_asked, distinct_ok;       // worked example: prompts with the bound, answers within it
    int distinct_exact;                    // ... answers with exactly K distinct destinations (a model that
                                           // keeps the bound by calling one microservice over and over is not following)
    int distinct_tight, distinct_tight_ok; // ... of those, the ones whose bound is below num_current_edges
                                           // (a layer with all-different destinations would break it)
    int too_long;                          // prompts that did not fit the model's context (count as failures)
    int64_t edge_lines, edge_lines_ok;     // partial credit: lines of the answers that open an edge "(",
                                           // and those that are a complete, well-formed edge
    int first_code[32];                    // layers by their first layer_check code
} SftScore;

typedef struct { bool parsed, counts, valid, distinct_ok; int code, distinct, edge_lines, edge_lines_ok; } SftVerdict;

// Reads graphs JSONL (each sorted and validated; an invalid one is an error naming the line) and
// builds up to n items. distinct: add the worked-example instruction to every layer with edges.
// Dies with a clear message on bad input or when the file yields no layer.
SftEvalSet *sft_evalset_load_opts(const char *graphs_jsonl, int n, const Bpe *tok, bool distinct, uint64_t seed);
SftEvalSet *sft_evalset_load(const char *graphs_jsonl, int n, const Bpe *tok);  // no distinct, seed 1
void sft_evalset_free(SftEvalSet *s);

// Judges one answer text (what the model generated after the prompt) against a requirement.
// scratch is reused between calls (answer_init'ed by the caller).
void sft_judge(const Condition *req, int distinct_max, const char *text, size_t n, LayerAnswer *scratch, SftVerdict *v);
void sft_score_add(SftScore *s, const SftItem *it, const SftVerdict *v);

// Greedy answers of m to every item (at most max_tokens generated tokens each), judged. answers
// (may be NULL) gets one JSON line per item: its graph line, layer, verdict and answer text;
// progress: a progress line on stderr.
void sft_score_model(GPT *m, const Bpe *tok, const SftEvalSet *set, int max_tokens, SftScore *out, FILE *answers, bool progress);
// The same with constrained decoding (infer/constrain.h) when `constrained`: structure and counts
// are then enforced, and what remains is the model's (destinations, which edges get subgraphs).
void sft_score_model_ex(GPT *m, const Bpe *tok, const SftEvalSet *set, int max_tokens, bool constrained, SftScore *out,
                        FILE *answers, bool progress);

static inline double sft_share(const SftScore *s, int k) { return s->n ? (double)k / s->n : 0.0; }
// "score 0.640 (32/50) | parsed 0.900 | counts 0.700 | valid 0.660 [| distinct 0.5 (..)]"
void sft_score_line(const SftScore *s, char *out, size_t n);
