#!/usr/bin/env bash
# Quality on REAL traces (issue 10): the whole pipeline on the paper's released graphs
# (../shared/data/tracellm/tabular_dataset.txt, 1,089 cleaned Alibaba v2022 call graphs), our small
# CPU model against the probabilistic baseline on the same held-out prompts.
#
#   parse the tabular text into graphs -> deterministic 90/10 split (by a hash of each graph's line)
#   -> BPE on the training graphs' recursive text -> shards -> pretrain a small GPT on the recursive
#   format -> generate one graph per held-out prompt (constrained decoding, names from training)
#   -> fit + sample the baseline for the same prompts -> `tracellm eval` for both.
#
# Asserts (exit 1 with the table when one fails): the model beats the baseline on the KL of the
# top-100 calls and on every normalized EMD eval reports, its validity is >= 99%, and at most 10% of
# its graphs are copies of a training graph (memorization; the paper: TraceLLM 3-5%): a model that
# wins by copying training graphs is not a result.
#
# Prompts are the validation graphs' root conditions, each asked QUALITY_REPEAT = 10 times (the
# paper's protocol: prompts from the validation set), so a generator that meets every request has
# the real graph-size and depth distributions exactly; the other metrics are where models differ.
# Ten, not three: one 61-call graph holds 11% of the validation calls, and with three draws of it
# the bar measured the draw more than the generator (docs/PERF.md).
#
# Why the canonical attribute order (`--canonical-order`, docs/SFT.md): the released text shuffles
# the attributes of every edge and condition; a 1 M-parameter model trained for minutes spends its
# capacity on the orders. Inference prompts are canonical, so training on that order is the same
# task with less to learn.
#
# Why short training sequences at random positions (`train --ctx 1536 --seq-len 512 --pos-offsets
# --pos-init sinusoid`, docs/MODEL.md): the context must hold the longest layer, but trained on
# 1,536-token rows for minutes this model never leaves the bigram stage (its next destination was
# measured to be the same whatever the caller and the type); 512-token rows learn the conditioning,
# and random starts train every position row, so the 60-call layer still generates.
#
# Sampling: temperature 1.0 (lower collapses the callee distribution; QUALITY_NUM_TEMP sets the
# numeric fields' own, `generate --number-temperature`), each graph the most likely of
# QUALITY_BEST_OF = 4 samples under the model (`generate --best-of`), edge attributes in the
# canonical order the model was trained on (`--canonical-order`). Destinations are among the training names (--names) and, unless
# QUALITY_CALLEES=0, among the callees the training graphs show for each layer's caller (`generate
# --callees`, beyond the paper: a table that narrows the model's choices; the model still picks),
# held to the bounds the same graphs show unless QUALITY_BOUNDS=0 (`--callee-bounds`: a type seen
# for the caller and callee, a root entry seen carrying a graph that large, a response time at most
# the longest seen; docs/GENERATE.md). docs/PERF.md "Quality (real data)" has the measurements, with
# and without them.
#
# Knobs (environment): TRACELLM (program), QUALITY_DATA (the tabular file), QUALITY_DIR (outputs,
# default runs/quality, git-ignored), QUALITY_THREADS (0 = all cores), QUALITY_STEPS, QUALITY_LR,
# QUALITY_SEQ, QUALITY_REPEAT, QUALITY_SEED, QUALITY_TEMP, QUALITY_NUM_TEMP, QUALITY_CALLEES,
# QUALITY_BOUNDS, QUALITY_EMBD, QUALITY_VOCAB, QUALITY_BEST_OF (generate --best-of, default 4), QUALITY_SHUFFLE
# (1: train --shuffle; default 0). docs/PERF.md "Quality (real data)" has what they measured.
# Wall time: ~11.5 minutes on 2 cores (docs/PERF.md has the measured times).
set -euo pipefail
cd "$(dirname "$0")/.."
TRACELLM=${TRACELLM:-./tracellm}
case $TRACELLM in /*) ;; */*) TRACELLM=$PWD/$TRACELLM ;; esac
DATA=${QUALITY_DATA:-../shared/data/tracellm/tabular_dataset.txt}
OUT=${QUALITY_DIR:-runs/quality}
THREADS=${QUALITY_THREADS:-0}
STEPS=${QUALITY_STEPS:-1600}
LR=${QUALITY_LR:-2e-3}
REPEAT=${QUALITY_REPEAT:-10}
SEED=${QUALITY_SEED:-1}
TEMP=${QUALITY_TEMP:-1.0}
NUM_TEMP=${QUALITY_NUM_TEMP:-1.0}
EMBD=${QUALITY_EMBD:-128}
VOCAB=${QUALITY_VOCAB:-1024}
CALLEES=${QUALITY_CALLEES:-1}   # 0: destinations among every training name (--names) only
BOUNDS=${QUALITY_BOUNDS:-1}     # 0: the callees without the bounds the training graphs show (--callee-bounds off)
BEST_OF=${QUALITY_BEST_OF:-4}   # generate --best-of: keep the most likely of K samples per graph
SHUFFLE=${QUALITY_SHUFFLE:-0}   # 1: train --shuffle (a fresh cut and order of the rows every epoch)
CTX=1536   # the longest layer of the validation split (60 calls, ~1,200 tokens) must fit in one context
SEQ=${QUALITY_SEQ:-512}   # training sequences: short, at random starts in the context (see the header)
BATCH=$(( 3 * CTX / SEQ ))   # 4,608 tokens a step whatever SEQ
if [ ! -f "$DATA" ]; then
  echo "quality_real: skipped: $DATA not found (the real samples live in ../shared/data)"
  exit 0
fi
t0=$(date +%s)
mkdir -p "$OUT"
step() { echo "== [$(( $(date +%s) - t0 )) s] $*"; }

step "parse $DATA -> graphs; split 90/10 by a hash of each graph"
"$TRACELLM" render --parse "$DATA" --out "$OUT/all.jsonl"
# djb2 of the line mod 2^31-1 (exact in awk's doubles): the split depends on each graph's content
# only, not on the file's order or on a random state
LC_ALL=C awk -v tr="$OUT/train.jsonl" -v va="$OUT/val.jsonl" '
  BEGIN { for (i = 1; i < 256; i++) ord[sprintf("%c", i)] = i; printf "" > tr; printf "" > va }
  { h = 5381; n = length($0)
    for (i = 1; i <= n; i++) h = (h * 33 + ord[substr($0, i, 1)]) % 2147483647
    print > (h % 10 == 0 ? va : tr) }' "$OUT/all.jsonl"
echo "split: $(wc -l < "$OUT/train.jsonl") train / $(wc -l < "$OUT/val.jsonl") val graphs"

step "tokenizer and shards (recursive format, canonical attribute order, latency always in the root condition)"
# --latency-keep-prob 1: every prompt here asks for a latency, so every training root shows one
# (the release keeps it with 0.5; the root edge finishes exactly at it, which the model must learn
# to copy). --split-threshold 0: recursive generation answers whole layers, never <split>.
for split in train val; do
  "$TRACELLM" render --in "$OUT/$split.jsonl" --format recursive --canonical-order --latency-keep-prob 1 \
    --split-threshold 0 --seed "$SEED" --out "$OUT/$split.recursive.txt"
done
"$TRACELLM" tokenizer train --in "$OUT/train.recursive.txt" --vocab-size "$VOCAB" --out "$OUT/tok.bin" --quiet
rm -rf "$OUT/shards"
for split in train val; do
  "$TRACELLM" shards --text "$OUT/$split.recursive.txt" --format recursive --tokenizer "$OUT/tok.bin" \
    --out "$OUT/shards" --name "$split" --seq-len "$CTX" --seed "$SEED" --threads "$THREADS" --quiet
done

shuffle=()
[ "$SHUFFLE" = 1 ] && shuffle=(--shuffle)
step "pretrain 4 layers x $EMBD channels (context $CTX), $STEPS steps of $BATCH x $SEQ tokens at random positions"
rm -rf "$OUT/model"
"$TRACELLM" train --data "$OUT"/shards/train_*.bin --val-data "$OUT"/shards/val_*.bin --tokenizer "$OUT/tok.bin" \
  --layers 4 --heads 4 --embd "$EMBD" --ctx "$CTX" --seq-len "$SEQ" --batch "$BATCH" --pos-offsets --pos-init sinusoid \
  --steps "$STEPS" --lr "$LR" --warmup 30 ${shuffle[@]+"${shuffle[@]}"} \
  --eval-every "$STEPS" --print-every 100 --threads "$THREADS" --seed "$SEED" --corpus "$OUT/train.jsonl" --out "$OUT/model"

step "prompts: the root condition of every validation graph, $REPEAT times"
"$TRACELLM" prompts --graphs "$OUT/val.jsonl" --out "$OUT/prompts1.jsonl"
for _ in $(seq "$REPEAT"); do cat "$OUT/prompts1.jsonl"; done > "$OUT/prompts.jsonl"

callees=()
[ "$CALLEES" = 1 ] && callees=(--callees "$OUT/train.jsonl" --callee-bounds "$([ "$BOUNDS" = 1 ] && echo on || echo off)")
step "generate (recursive, constrained, names from the training graphs${callees[0]+, observed callees}, temperature $TEMP, numbers $NUM_TEMP)"
"$TRACELLM" generate --model "$OUT/model" --tokenizer "$OUT/tok.bin" --format recursive --prompts "$OUT/prompts.jsonl" \
  --names "$OUT/train.jsonl" ${callees[@]+"${callees[@]}"} --canonical-order --temperature "$TEMP" --number-temperature "$NUM_TEMP" --best-of "$BEST_OF" --seed "$SEED" --threads "$THREADS" --out "$OUT/llm.jsonl" --summary "$OUT/generate_summary.json" \
  > "$OUT/generate.txt"

step "probabilistic baseline: fit on the training graphs, the same prompts"
"$TRACELLM" baseline fit --graphs "$OUT/train.jsonl" --out "$OUT/baseline.model"
"$TRACELLM" baseline sample --model "$OUT/baseline.model" --prompts "$OUT/prompts.jsonl" --seed "$SEED" --out "$OUT/baseline.jsonl"

step "eval both against the validation graphs"
for who in llm baseline; do
  "$TRACELLM" eval --real "$OUT/val.jsonl" --synthetic "$OUT/$who.jsonl" --train "$OUT/train.jsonl" \
    --out "$OUT/report_$who" > "$OUT/eval_$who.txt"
done

# one number of metrics.json: a top-level key, or KEY.SUB inside a one-line object
metric() {
  local file=$1 key=${2%%.*} sub=${2#*.}
  if [ "$sub" = "$2" ]; then sed -n "s/^ *\"$key\": *\([-0-9.e+]*\).*/\1/p" "$file"
  else sed -n "s/^ *\"$key\": *{.*\"$sub\": *\([-0-9.e+]*\).*/\1/p" "$file"; fi
}
L=$OUT/report_llm/metrics.json B=$OUT/report_baseline/metrics.json
fail=0
echo
printf '%-34s %10s %10s  %-22s %s\n' metric tracellm baseline required verdict
row() {   # row NAME KEY RULE: "lower" (beat the baseline), ">=X" (a floor), "<=X" (a ceiling), "info" (printed)
  local name=$1 key=$2 rule=$3 l b ok
  l=$(metric "$L" "$key"); b=$(metric "$B" "$key")
  if [ -z "$l" ] || [ -z "$b" ]; then echo "quality_real: metric $key missing from $L or $B" >&2; fail=1; return; fi
  case $rule in
    lower) ok=$(awk -v l="$l" -v b="$b" 'BEGIN { print (l < b) ? "ok" : "FAIL" }'); req="lower than baseline" ;;
    '>='*) ok=$(awk -v l="$l" -v m="${rule#>=}" 'BEGIN { print (l >= m) ? "ok" : "FAIL" }'); req="$rule" ;;
    '<='*) ok=$(awk -v l="$l" -v m="${rule#<=}" 'BEGIN { print (l <= m) ? "ok" : "FAIL" }'); req="$rule" ;;
    *) ok=""; req="(reported)" ;;
  esac
  [ "$ok" = FAIL ] && fail=1
  printf '%-34s %10.4f %10.4f  %-22s %s\n' "$name" "$l" "$b" "$req" "$ok"
}
row "validity" validity ">=0.99"
row "KL top-100 calls (nats)" kl_top100 lower
# every normalized EMD eval writes (in-degree, out-degree, response time, graph size, depth today)
emds=$(sed -n 's/^ *"emd_normalized": *{\(.*\)}.*/\1/p' "$L" | tr ',' '\n' | sed -n 's/^ *"\([a-z_]*\)".*/\1/p')
[ -n "$emds" ] || { echo "quality_real: no emd_normalized in $L" >&2; fail=1; }
for e in $emds; do
  row "normalized EMD $e" "emd_normalized.$e" lower
done
row "heavy hitters top-10" heavy_hitters.10 info
row "heavy hitters top-100" heavy_hitters.100 info
row "accuracy (valid + edges + depth)" accuracy info
# winning by copying training graphs is no result: the paper's TraceLLM copies 3-5%, baselines 16-24%
row "memorization (exact)" memorization_exact "<=0.10"
row "memorization (structure)" memorization_structure info
echo
echo "quality_real: $(wc -l < "$OUT/val.jsonl") validation graphs x $REPEAT prompts each, in $(( $(date +%s) - t0 )) s; reports: $OUT/report_{llm,baseline}/report.html"
if [ $fail -ne 0 ]; then
  echo "quality_real: FAILED: the model does not meet the bar above (see $OUT/eval_llm.txt, $OUT/generate.txt)" >&2
  exit 1
fi
echo "quality_real: passed"
