#!/usr/bin/env bash
# scripts/reproduce_paper.sh: the TraceLLM paper's experiment (PAPER.md §5, §6) at full scale, stage by
# stage, with tracellm. Run `scripts/reproduce_paper.sh --help` for the options; --dry-run prints every
# command without running anything.
#
# Stages (each writes WORK/.done/STAGE when it completes; a completed stage whose outputs are all
# present is skipped on the next run, so an interrupted run continues where it stopped; --from STAGE
# redoes STAGE and everything after it, --to STAGE stops after it):
#
#   stage      what                                                       estimate (one H100, d12, T=2048)   disk
#   download   CallGraph_0..19.tar.gz, the first hour of Alibaba v2022    network bound (~4 GiB)             ~4 GiB
#   prepare    raw rows -> clean graphs, 90/10 split, stats.json           ~260 M rows, 5-15 min on 16 cores  ~2 GiB
#   tokenizer  BPE (4096 ids) on recursive + tabular + instruction text    a few minutes                      ~1 GiB
#              of a 200,000-graph sample
#   shards     recursive and tabular token shards, train and val           a few minutes                      ~6 GiB
#   pretrain   d12 on the recursive format, 1 epoch (~1.1 B tokens)        4.5-8 h                             ~1.5 GiB
#   sft        instruction tuning on 5% of the graphs, 4 epochs            2-4 h                              ~1.5 GiB
#   great      GReaT: the same model size on the tabular format, 1 epoch   3-6 h                              ~1.5 GiB
#   baseline   the probabilistic baseline (Luo et al.) fitted on train      < 1 min                            small
#   generate   50,000 graphs from validation prompts: TraceLLM, GReaT,     not measured at this scale         ~1 GiB
#              baseline
#   eval       distribution metrics of the three against validation       minutes                            small
#   grid       the accuracy grid (136 cells x 50, greedy + 3 temperatures) not measured at this scale         ~1 GiB
#              for SFT, pretrain (recursive), GReaT and the baseline
#   summary    WORK/summary.md: our numbers next to the paper's           seconds
#
# Where the estimates come from: ~1.1 B training tokens (PAPER.md §1, §5); d12 trains at 68 K tokens/s
# at T=1024 on one H100 (docs/GPU_NOTES.md), less at T=2048 where attention grows; the CPU runs at
# ~1-7 K tokens/s (docs/PERF.md), so --device cpu is for the dry run and small --files counts only.
#
# Model size: the paper fine-tuned Llama-2 7B with LoRA (PAPER.md §5); tracellm trains a GPT from
# scratch, by default d12 (12 layers, 12 heads, 768 channels: ~90 M parameters with 4096 ids), the
# largest preset, for TraceLLM and GReaT alike ("the same model size trained on the tabular format").
# --model / --layers / --heads / --embd change both. The optimizer follows the paper: AdamW, lr 3e-4,
# cosine, 400 warm-up steps, weight decay 0.1, clip 1.0, ~262 K tokens a step (paper: 64 x 4096;
# here --batch 8 x --grad-accum 16 x T 2048), one epoch; SFT 4 epochs on the answers (train --sft).
# Generation follows the paper: temperature 0.8, top-k 50, one try per layer, no constraints.
set -eEuo pipefail

STAGES=(download prepare tokenizer shards pretrain sft great baseline generate eval grid summary)
BASE_URL_DEFAULT=https://aliopentrace.oss-cn-beijing.aliyuncs.com/v2022MicroservicesTraces

usage() {
  cat <<EOF
usage: scripts/reproduce_paper.sh [--work DIR] [--device cpu|cuda] [--from STAGE] [--to STAGE] [--dry-run] [options]

Reproduces the TraceLLM paper's pipeline at full scale: download the first hour of Alibaba's v2022
CallGraph traces (files 0..19), prepare, tokenizer, shards, pretrain, SFT, GReaT (tabular) training,
generate, distribution evals against the probabilistic baseline, the accuracy grid, and a summary.
Each stage is skipped when it completed before (WORK/.done/STAGE and its outputs exist).

stages: ${STAGES[*]}

options:
  --work DIR          where everything goes (default ./paper)
  --device NAME       cpu | cuda (training, generation, grid) (default cpu; the real run needs cuda)
  --from STAGE        redo STAGE and every later stage (their completion marks are removed)
  --to STAGE          stop after STAGE
  --dry-run           print the commands of every stage that would run; run nothing, download nothing
  --files N           CallGraph files 0..N-1 (default 20: the paper's first hour; 1 file = 3 minutes)
  --input DIR         use CallGraph_*.tar.gz files already in DIR instead of downloading
  --base-url URL      download base (default $BASE_URL_DEFAULT)
  --model dN          model preset for pretrain, SFT and GReaT (default d12)
  --layers N --heads N --embd N   override the preset (all three models)
  --seq-len T         context length (default 2048: a 30-edge graph in the tabular format fits)
  --batch B           sequences per micro-batch (default 8)
  --grad-accum K      micro-batches per step (default 16; B x K x T = 262,144 tokens as the paper's 64 x 4096)
  --lr F              peak learning rate of pretrain and GReaT (default 3e-4, the paper's)
  --gen N             graphs generated from validation prompts per generator (default 50000)
  --grid-samples N    samples per grid cell (default 50)
  --temperatures L    grid decodings (default 0,0.5,0.8,1.0; 0 = greedy)
  --threads N         CPU threads (default 0 = all)
  --tracellm PATH     the program (default ./tracellm, or \$TRACELLM)
  --help              this text

Expected time and disk per stage: the table at the top of this script (and docs/EVAL.md).
EOF
}

die() { echo "reproduce_paper: $*" >&2; exit 1; }
stage_index() { local i; for i in "${!STAGES[@]}"; do [ "${STAGES[$i]}" = "$1" ] && { echo "$i"; return 0; }; done; return 1; }

WORK=paper DEVICE=cpu FROM= TO= DRY=0 FILES=20 INPUT= BASE_URL=$BASE_URL_DEFAULT MODEL=d12 LAYERS= HEADS= EMBD=
SEQ=2048 BATCH=8 ACCUM=16 LR=3e-4 GEN=50000 GRID_SAMPLES=50 TEMPS=0,0.5,0.8,1.0 THREADS=0
TRACELLM=${TRACELLM:-./tracellm}
need() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (--help)"; }
while [ $# -gt 0 ]; do
  case $1 in
    --work) need "$@"; WORK=$2; shift 2 ;;
    --device) need "$@"; DEVICE=$2; shift 2 ;;
    --from) need "$@"; FROM=$2; shift 2 ;;
    --to) need "$@"; TO=$2; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    --files) need "$@"; FILES=$2; shift 2 ;;
    --input) need "$@"; INPUT=$2; shift 2 ;;
    --base-url) need "$@"; BASE_URL=${2%/}; shift 2 ;;
    --model) need "$@"; MODEL=$2; shift 2 ;;
    --layers) need "$@"; LAYERS=$2; shift 2 ;;
    --heads) need "$@"; HEADS=$2; shift 2 ;;
    --embd) need "$@"; EMBD=$2; shift 2 ;;
    --seq-len) need "$@"; SEQ=$2; shift 2 ;;
    --batch) need "$@"; BATCH=$2; shift 2 ;;
    --grad-accum) need "$@"; ACCUM=$2; shift 2 ;;
    --lr) need "$@"; LR=$2; shift 2 ;;
    --gen) need "$@"; GEN=$2; shift 2 ;;
    --grid-samples) need "$@"; GRID_SAMPLES=$2; shift 2 ;;
    --temperatures) need "$@"; TEMPS=$2; shift 2 ;;
    --threads) need "$@"; THREADS=$2; shift 2 ;;
    --tracellm) need "$@"; TRACELLM=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "reproduce_paper: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
case $DEVICE in cpu|cuda) ;; *) die "--device $DEVICE: expected cpu or cuda" ;; esac
is_int() { [[ $1 =~ ^[0-9]+$ ]]; }
for v in FILES SEQ BATCH ACCUM GEN GRID_SAMPLES THREADS; do is_int "${!v}" || die "--$(tr 'A-Z_' 'a-z-' <<<"$v") ${!v}: expected a whole number"; done
for v in LAYERS HEADS EMBD; do [ -z "${!v}" ] || is_int "${!v}" || die "--$(tr 'A-Z' 'a-z' <<<"$v") ${!v}: expected a whole number"; done
[ "$FILES" -ge 1 ] && [ "$FILES" -le 6240 ] || die "--files $FILES: expected 1..6240 (13 days of 3-minute files)"
[ "$GRID_SAMPLES" -ge 1 ] && [ "$GEN" -ge 1 ] && [ "$SEQ" -ge 64 ] && [ "$BATCH" -ge 1 ] && [ "$ACCUM" -ge 1 ] || die "--grid-samples, --gen, --batch, --grad-accum must be >= 1 and --seq-len >= 64"
[[ $MODEL =~ ^d[0-9]+$ ]] || die "--model $MODEL: expected a preset dN (d2, d4, d6, d8, d12)"
[[ $TEMPS =~ ^[0-9.]+(,[0-9.]+)*$ ]] || die "--temperatures $TEMPS: expected comma-separated numbers"
FROM_I=0 TO_I=$(( ${#STAGES[@]} - 1 ))
if [ -n "$FROM" ]; then FROM_I=$(stage_index "$FROM") || die "--from $FROM: unknown stage (stages: ${STAGES[*]})"; fi
if [ -n "$TO" ]; then TO_I=$(stage_index "$TO") || die "--to $TO: unknown stage (stages: ${STAGES[*]})"; fi
[ "$FROM_I" -le "$TO_I" ] || die "--from $FROM comes after --to $TO"
if [ "$DRY" = 0 ]; then
  [ -x "$TRACELLM" ] || command -v "$TRACELLM" >/dev/null || die "$TRACELLM: not found (build with make, or give --tracellm PATH)"
fi

W=$WORK P=$WORK/prep RAW=${INPUT:-$WORK/raw} DONE=$WORK/.done
ARCH=(--model "$MODEL")
[ -n "$LAYERS" ] && ARCH+=(--layers "$LAYERS")
[ -n "$HEADS" ] && ARCH+=(--heads "$HEADS")
[ -n "$EMBD" ] && ARCH+=(--embd "$EMBD")
DEV=(--device "$DEVICE" --threads "$THREADS")

# run CMD...: prints the command, runs it (unless --dry-run). run_out FILE CMD...: stdout to FILE, atomically.
show() { printf '  $'; printf ' %q' "$@"; }
run() { show "$@"; echo; [ "$DRY" = 1 ] || "$@"; }
run_out() { local f=$1; shift; show "$@"; printf ' > %q\n' "$f"; [ "$DRY" = 1 ] || { "$@" > "$f.tmp" && mv "$f.tmp" "$f"; }; }

# ---- stage bookkeeping: a stage is done when its mark and every output exist ----
stage_done() {
  local s=$1; shift
  [ -f "$DONE/$s" ] || return 1
  local f; for f in "$@"; do [ -e "$f" ] || return 1; done
}
begin() {  # begin STAGE OUTPUT...: returns 1 (skip) when done, else announces the stage
  local s=$1; shift
  if stage_done "$s" "$@"; then echo "==== $s: done before ($DONE/$s), skipped"; return 1; fi
  echo "==== $s"; return 0
}
finish() { [ "$DRY" = 1 ] || { mkdir -p "$DONE"; date -u +%FT%TZ > "$DONE/$1"; }; }

# --from: the marks of that stage and every later one go
if [ -n "$FROM" ]; then
  for ((i = FROM_I; i < ${#STAGES[@]}; i++)); do
    if [ "$DRY" = 1 ]; then [ -f "$DONE/${STAGES[$i]}" ] && echo "(would remove $DONE/${STAGES[$i]})"; else rm -f "$DONE/${STAGES[$i]}"; fi
  done
fi
[ "$DRY" = 1 ] || mkdir -p "$W"
echo "reproduce_paper: work $W, device $DEVICE, model $MODEL${LAYERS:+ layers $LAYERS}${HEADS:+ heads $HEADS}${EMBD:+ embd $EMBD}, T=$SEQ, batch $BATCH x $ACCUM, stages ${STAGES[$FROM_I]}..${STAGES[$TO_I]}$([ "$DRY" = 1 ] && echo ', dry run')"
t_all=$(date +%s)

raw_files() { local i; for ((i = 0; i < FILES; i++)); do echo "$RAW/CallGraph_$i.tar.gz"; done; }

st_download() {
  mapfile -t files < <(raw_files)
  begin download "${files[@]}" || return 0
  if [ -n "$INPUT" ]; then
    local f; for f in "${files[@]}"; do [ "$DRY" = 1 ] || [ -s "$f" ] || die "$f: missing (--input $INPUT must hold CallGraph_0..$((FILES - 1)).tar.gz)"; done
    echo "  using the $FILES files of $INPUT"
    finish download; return 0
  fi
  local fetch
  if command -v curl >/dev/null; then fetch=curl; elif command -v wget >/dev/null; then fetch=wget; else
    [ "$DRY" = 1 ] || die "neither curl nor wget is installed: download ${BASE_URL}/CallGraph/CallGraph_{0..$((FILES - 1))}.tar.gz yourself and pass --input DIR"
    fetch=curl
  fi
  [ "$DRY" = 1 ] || mkdir -p "$RAW"
  local i f url
  for ((i = 0; i < FILES; i++)); do
    f=$RAW/CallGraph_$i.tar.gz url=$BASE_URL/CallGraph/CallGraph_$i.tar.gz
    if [ "$DRY" = 0 ] && [ -s "$f" ]; then continue; fi
    # into .part (resumed by -C - / -c when run again), renamed once whole and readable by gzip
    if [ "$fetch" = curl ]; then
      run curl --fail --location --retry 3 --connect-timeout 30 -C - -o "$f.part" "$url" || \
        die "cannot download $url (curl exit $?). Without internet access, fetch the files elsewhere ($BASE_URL/CallGraph/CallGraph_{0..$((FILES - 1))}.tar.gz) and pass --input DIR"
    else
      run wget -c --tries=3 --timeout=30 -O "$f.part" "$url" || \
        die "cannot download $url (wget exit $?). Without internet access, fetch the files elsewhere and pass --input DIR"
    fi
    if [ "$DRY" = 0 ]; then
      gzip -t "$f.part" 2>/dev/null || die "$f.part: downloaded but not a whole gzip file; run again to resume it"
      mv "$f.part" "$f"
    fi
  done
  finish download
}

st_prepare() {
  begin prepare "$P/train.jsonl" "$P/val.jsonl" "$P/stats.json" || return 0
  mapfile -t files < <(raw_files)
  local threads=$THREADS
  [ "$threads" != 0 ] || threads=$(nproc 2>/dev/null || echo 2)
  run "$TRACELLM" prepare --input "${files[@]}" --out "$P" --threads "$threads" --mem-limit 16G
  finish prepare
}

st_tokenizer() {
  begin tokenizer "$W/tok.bin" || return 0
  # a 200,000-graph sample of train in all three formats the models read and write
  run_out "$W/tok_sample.jsonl" head -n 200000 "$P/train.jsonl"
  run "$TRACELLM" render --in "$W/tok_sample.jsonl" --format recursive --out "$W/tok_recursive.txt"
  run "$TRACELLM" render --in "$W/tok_sample.jsonl" --format tabular --out "$W/tok_tabular.txt"
  run "$TRACELLM" render --in "$W/tok_sample.jsonl" --format instruction --stats "$P/stats.json" --instruction-fraction 0.2 --out "$W/tok_instruction.txt"
  run "$TRACELLM" tokenizer train --in "$W/tok_recursive.txt" "$W/tok_tabular.txt" "$W/tok_instruction.txt" --vocab-size 4096 --out "$W/tok.bin"
  finish tokenizer
}

st_shards() {
  begin shards "$W/shards/recursive/train.json" "$W/shards/recursive/val.json" "$W/shards/tabular/train.json" "$W/shards/tabular/val.json" || return 0
  local fmt split
  [ "$DRY" = 1 ] || mkdir -p "$W/shards"
  for fmt in recursive tabular; do
    [ "$DRY" = 1 ] || rm -rf "$W/shards/$fmt"
    for split in train val; do
      run "$TRACELLM" shards --graphs "$P/$split.jsonl" --format "$fmt" --tokenizer "$W/tok.bin" --out "$W/shards/$fmt" --name "$split" --seq-len "$SEQ"
    done
  done
  finish shards
}

# train_run STAGE RUN ARGS...: a run whose optimizer file exists continues (--resume), else starts
train_run() {
  local s=$1 run=$2; shift 2
  local resume=()
  if [ "$DRY" = 0 ] && [ -f "$run/optim.bin" ] && [ -f "$run/model.bin" ]; then resume=(--resume); echo "  ($run has a checkpoint: resuming it)"; fi
  run "$TRACELLM" train "$@" --out "$run" "${resume[@]}" "${DEV[@]}"
}

# from_scratch NAME FORMAT: one epoch of a fresh model on the FORMAT shards (pretrain: recursive;
# GReaT: tabular), the same size and schedule for both, as the paper compares them
from_scratch() {
  local name=$1 fmt=$2
  begin "$name" "$W/$name/model.bin" || return 0
  train_run "$name" "$W/$name" --data "$W"/shards/"$fmt"/train_*.bin --val-data "$W"/shards/"$fmt"/val_*.bin \
    --tokenizer "$W/tok.bin" --corpus "$P/train.jsonl" "${ARCH[@]}" --seq-len "$SEQ" --batch "$BATCH" --grad-accum "$ACCUM" \
    --epochs 1 --lr "$LR" --warmup 400 --weight-decay 0.1 --clip 1.0 --schedule cosine --eval-every 500 --save-every 500
  finish "$name"
}

st_pretrain() { from_scratch pretrain recursive; }

st_sft() {
  begin sft "$W/sft/model.bin" || return 0
  run "$TRACELLM" sft data --graphs "$P/train.jsonl" --stats "$P/stats.json" --fraction 0.05 --out "$W/sft.txt"
  [ "$DRY" = 1 ] || rm -rf "$W/shards/sft"
  run "$TRACELLM" shards --text "$W/sft.txt" --format instruction --tokenizer "$W/tok.bin" --out "$W/shards/sft" --name sft --seq-len "$SEQ"
  # --sft: lr 3e-4 cosine, 4 epochs (the paper), the pretrained run's shape and context
  train_run sft "$W/sft" --sft --init "$W/pretrain" --data "$W"/shards/sft/sft_*.bin --tokenizer "$W/tok.bin" \
    --batch "$BATCH" --grad-accum "$ACCUM" --save-every 500
  finish sft
}

st_great() { from_scratch great tabular; }

st_baseline() {
  begin baseline "$W/baseline.model" || return 0
  run "$TRACELLM" baseline fit --graphs "$P/train.jsonl" --out "$W/baseline.model"
  finish baseline
}

# the paper's sampling: temperature 0.8, top-k 50, one try per layer, no constraints
GEN_OPTS=(--temperature 0.8 --top-k 50 --retries 0 --constrained off --seed 1)
st_generate() {
  begin generate "$W/gen/tracellm.jsonl" "$W/gen/great.jsonl" "$W/gen/baseline.jsonl" || return 0
  [ "$DRY" = 1 ] || mkdir -p "$W/gen"
  run "$TRACELLM" prompts --graphs "$P/val.jsonl" -n "$GEN" --seed 1 --out "$W/gen/prompts.jsonl"
  run "$TRACELLM" generate --model "$W/sft" --tokenizer "$W/tok.bin" --format instruct --prompts "$W/gen/prompts.jsonl" \
    "${GEN_OPTS[@]}" "${DEV[@]}" --out "$W/gen/tracellm.jsonl" --csv "$W/gen/tracellm.csv" --summary "$W/gen/tracellm_summary.json"
  run "$TRACELLM" generate --model "$W/great" --tokenizer "$W/tok.bin" --format tabular --prompts "$W/gen/prompts.jsonl" \
    "${GEN_OPTS[@]}" "${DEV[@]}" --out "$W/gen/great.jsonl" --summary "$W/gen/great_summary.json"
  run "$TRACELLM" baseline sample --model "$W/baseline.model" --prompts "$W/gen/prompts.jsonl" --seed 1 --out "$W/gen/baseline.jsonl"
  finish generate
}

st_eval() {
  begin eval "$W/eval/tracellm/metrics.json" "$W/eval/great/metrics.json" "$W/eval/baseline/metrics.json" || return 0
  local g
  [ "$DRY" = 1 ] || mkdir -p "$W/eval"
  for g in tracellm great baseline; do
    run "$TRACELLM" eval --real "$P/val.jsonl" --synthetic "$W/gen/$g.jsonl" --train "$P/train.jsonl" --stats "$P/stats.json" --out "$W/eval/$g"
  done
  finish eval
}

st_grid() {
  begin grid "$W/grid/sft/grid.json" "$W/grid/pretrain/grid.json" "$W/grid/great/grid.json" "$W/grid/baseline/metrics.json" || return 0
  local G=(--tokenizer "$W/tok.bin" --samples "$GRID_SAMPLES" --temperatures "$TEMPS" "${DEV[@]}")
  [ "$DRY" = 1 ] || mkdir -p "$W/grid"
  run "$TRACELLM" eval grid --model "$W/sft" --format instruct "${G[@]}" --out "$W/grid/sft"
  run "$TRACELLM" eval grid --model "$W/pretrain" --format recursive "${G[@]}" --out "$W/grid/pretrain"
  run "$TRACELLM" eval grid --model "$W/great" --format tabular "${G[@]}" --out "$W/grid/great"
  # the baseline answers the same cells through a prompts file: GRID_SAMPLES lines per feasible cell
  local e d s
  if [ "$DRY" = 1 ]; then
    echo "  (grid prompts: $GRID_SAMPLES lines {\"num_edges\":e,\"depth\":d} per cell, 136 cells) > $W/grid/baseline_prompts.jsonl"
  else
    for ((e = 1; e <= 30; e++)); do for ((d = 1; d <= 6; d++)); do
      [ "$d" -le "$e" ] && { [ "$d" -gt 1 ] || [ "$e" -eq 1 ]; } || continue
      for ((s = 0; s < GRID_SAMPLES; s++)); do echo "{\"num_edges\":$e,\"depth\":$d}"; done
    done; done > "$W/grid/baseline_prompts.jsonl"
  fi
  run "$TRACELLM" baseline sample --model "$W/baseline.model" --prompts "$W/grid/baseline_prompts.jsonl" --seed 1 --out "$W/grid/baseline.jsonl"
  run "$TRACELLM" eval --real "$P/val.jsonl" --synthetic "$W/grid/baseline.jsonl" --out "$W/grid/baseline"
  finish grid
}

# a number from our JSON files, which put one key a line ("  \"kl_top100\": 0.123,")
jnum() { sed -n "s/^ *\"$2\": \([-0-9.e+]*\),\{0,1\}$/\1/p" "$1" | head -1; }
# a fraction as a percentage ("" stays "")
pctf() { [ -z "$1" ] || awk -v x="$1" 'BEGIN { printf "%.1f%%", 100 * x }'; }
st_summary() {
  begin summary "$W/summary.md" || return 0
  if [ "$DRY" = 1 ]; then echo "  (collects $W/eval/*/metrics.json and $W/grid/*/grid.json into $W/summary.md)"; return 0; fi
  {
    echo "# TraceLLM reproduction: our numbers next to the paper's (PAPER.md §6)"
    echo
    echo "Work folder $W, model $MODEL, T=$SEQ, device $DEVICE, $FILES CallGraph files."
    echo
    echo "| metric | ours: TraceLLM (SFT) | ours: GReaT | ours: probabilistic | paper: TraceLLM | paper: GReaT | paper: probabilistic |"
    echo "|---|---|---|---|---|---|---|"
    local k
    for k in validity kl_top100 memorization_exact accuracy; do
      local v=() g
      for g in tracellm great baseline; do
        if [ "$k" = kl_top100 ]; then v+=("$(jnum "$W/eval/$g/metrics.json" "$k")"); else v+=("$(pctf "$(jnum "$W/eval/$g/metrics.json" "$k")")"); fi
      done
      printf '| %s | %s | %s | %s |' "$k" "${v[0]}" "${v[1]}" "${v[2]}"
      case $k in
        kl_top100) echo " 0.16 | 0.11 | 3.84 |" ;;
        memorization_exact) echo " 3-5% | - | 16-24% |" ;;
        *) echo " - | - | - |" ;;
      esac
    done
    for k in '"10"' '"50"' '"500"'; do
      local v=()
      for g in tracellm great baseline; do v+=("$(pctf "$(grep -o "\"heavy_hitters\": {[^}]*" "$W/eval/$g/metrics.json" | grep -o "$k: [0-9.]*" | cut -d' ' -f2)")"); done
      echo "| heavy hitters K=${k//\"/} | ${v[0]} | ${v[1]} | ${v[2]} | $([ "$k" = '"500"' ] && echo '65%' || echo '> 90%') | - | $([ "$k" = '"10"' ] && echo 59% || { [ "$k" = '"500"' ] && echo 23% || echo -; }) |"
    done
    echo
    echo "Accuracy grid (overall accuracy per decoding; paper: TraceLLM > 75% at every depth, tabular < 25% for edges > 15):"
    echo
    local m
    for m in sft pretrain great; do
      echo "- $m: $(sed -n 's/.*"label": "\([^"]*\)".*"accuracy": \([0-9.]*\),.*/\1 \2/p' "$W/grid/$m/grid.json" |
        while read -r label acc; do printf '%s %s; ' "$label" "$(pctf "$acc")"; done)"
    done
    echo "- baseline: $(pctf "$(jnum "$W/grid/baseline/metrics.json" accuracy)")"
    echo
    echo "Reports: eval/*/report.html, grid/*/grid.html."
  } > "$W/summary.md.tmp" && mv "$W/summary.md.tmp" "$W/summary.md"
  cat "$W/summary.md"
  finish summary
}

CUR=
trap 'echo "reproduce_paper: stage ${CUR:-setup} failed (exit $?); completed stages are skipped when you run again" >&2' ERR
for ((i = FROM_I; i <= TO_I; i++)); do
  t0=$(date +%s) CUR=${STAGES[$i]}
  "st_${STAGES[$i]}"
  [ "$DRY" = 1 ] || echo "  (${STAGES[$i]}: $(( $(date +%s) - t0 )) s)"
done
echo "reproduce_paper: done$([ "$DRY" = 1 ] && echo ' (dry run: nothing was run)') in $(( $(date +%s) - t_all )) s"
