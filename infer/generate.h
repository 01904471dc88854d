// The pieces of `tracellm generate` (infer/generate.c) that other commands reuse so that they
// generate exactly as it does: `tracellm eval grid` loads the model and the run's training
// conditions the same way, and writes the same JSONL line for every request.
#pragma once
#include "infer/constrain.h"
#include "infer/harness.h"
#include "kernels/ops.h"
#include "model/gpt.h"
#include "tokenizer/bpe.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

// One root condition of the training corpus, a line of RUN/conditions.jsonl (`train --corpus`).
typedef struct { char service[FMT_NAME_MAX]; int64_t v[3]; } CondRecord;  // v: num_edges, depth, latency

// RUN/conditions.jsonl beside a model given as a run directory or as its model.bin.
void gen_conditions_path(const char *model, char *buf, size_t n);
// Reads a conditions file, only the graphs of only_service when it is not NULL. Returns the
// count (0 when none match), or -1 when the file does not exist. A bad line is fatal with file:line.
int gen_load_conditions(const char *path, const char *only_service, CondRecord **out);
// The names destinations may take (--names): every src and dst but USER of a graphs JSONL, or the
// "microservices" list of a stats.json, encoded under tok (con_names_encode). Fatal when the file
// has none.
void gen_load_names(const char *path, ConNames *s, const Bpe *tok);
// The observed callees (--callees) of a graphs JSONL: entries[service] = the destinations of its
// root calls, calls[src] = the destinations src calls (root calls under their source, USER), with
// the bounds of each (types, edges below, response time) and encoded under tok.
void gen_load_callees(const char *path, ConCallees *entries, ConCallees *calls, const Bpe *tok);
// model.bin of a run directory (or the file itself) on backend be, and the tokenizer it was
// trained with: a fingerprint mismatch is fatal, naming both files.
void gen_load_model(const char *model, const char *tokenizer, const Backend *be, GPT *m, Bpe *tok);
// generate's output line for one result: the graph (trace_id T_<index>) with its "request" and
// "check" objects, or "edges":[] when it could not be assembled, so eval counts the failure.
void gen_write_result(FILE *f, const GraphResult *r);
