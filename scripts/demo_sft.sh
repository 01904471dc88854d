# `make demo` stage: instruction tuning (docs/SFT.md). Sourced by scripts/demo.sh after pretraining;
# it uses TRACELLM, DEMO_DIR, stage and has_command from there, and the outputs of earlier stages:
#   $DEMO_DIR/prepared/{train,val}.jsonl and stats.json, the tokenizer $DEMO_DIR/tok.bin, the
#   pretrained run $DEMO_DIR/pretrain.
# It renders instruction samples from a share of the training graphs, trains the pretrained model
# on their answers (loss mask), and prints the instruction-following score of the held-out layers
# (train/sft_score.h) before and after, with free greedy decoding and with --constrained (grammar and
# counts enforced: what is left is the model's choice of names and times). Knobs:
#   DEMO_SFT_FRACTION (share of training graphs made into samples), DEMO_SFT_STEPS, DEMO_SFT_BATCH,
#   DEMO_SFT_LR, DEMO_SFT_EVAL (held-out layers scored), DEMO_SFT_THREADS, DEMO_SFT_CANONICAL.
# DEMO_SFT_CANONICAL=1 (default) writes the samples in the fixed attribute order (`--canonical-order`,
# docs/SFT.md): the order `sft score` and generation ask in. The paper's shuffled orders cost a model of
# this size its whole budget (measured in docs/PERF.md: 0 of 40 layers before and after 150 steps);
# set 0 for the paper's data. It pays most when pretraining used the same order (DEMO_CANONICAL in
# scripts/demo.sh).
sft_stage() {
  local pre=$DEMO_DIR/pretrain tok=$DEMO_DIR/tok.bin prep=$DEMO_DIR/prepared out=$DEMO_DIR/sft
  local stats=$prep/stats.json
  [ -f "$stats" ] || stats=$DEMO_DIR/stats.json
  if ! has_command sft; then stage "sft: not built yet (tracellm sft --help failed); skipping"; return 0; fi
  if [ ! -f "$pre/model.bin" ] || [ ! -f "$tok" ]; then
    stage "sft: no pretrained run ($pre/model.bin) or tokenizer ($tok); skipping"
    return 0
  fi
  local frac=${DEMO_SFT_FRACTION:-0.05} steps=${DEMO_SFT_STEPS:-600} batch=${DEMO_SFT_BATCH:-4}
  local lr=${DEMO_SFT_LR:-1e-3} n_eval=${DEMO_SFT_EVAL:-100} threads=${DEMO_SFT_THREADS:-${DEMO_THREADS:-0}}
  local order=()
  [ "${DEMO_SFT_CANONICAL:-1}" = 1 ] && order=(--canonical-order)
  stage "sft: instruction tuning $pre -> $out ($steps steps on the answers of $frac of the training graphs)"
  local stats_opt=()
  [ -f "$stats" ] && stats_opt=(--stats "$stats")
  "$TRACELLM" sft data --graphs "$prep/train.jsonl" "${stats_opt[@]}" --fraction "$frac" "${order[@]}" --out "$DEMO_DIR/sft.txt"
  # the samples are cut at the pretrained model's context (max_seq_len: int32 at byte 28 of model.bin)
  local ctx
  ctx=$(od -An -t d4 -j 28 -N 4 "$pre/model.bin" | tr -d ' ')
  rm -rf "$DEMO_DIR/sft_shards" "$out"
  "$TRACELLM" shards --text "$DEMO_DIR/sft.txt" --format instruction --tokenizer "$tok" --out "$DEMO_DIR/sft_shards" \
    --name sft --seq-len "$ctx" --quiet
  local score=("$TRACELLM" sft score --graphs "$prep/val.jsonl" --tokenizer "$tok" -n "$n_eval" --threads "$threads")
  "${score[@]}" --model "$pre" --json "$DEMO_DIR/sft_before.json" | tee "$DEMO_DIR/sft_before.txt"
  "${score[@]}" --model "$pre" --constrained --json "$DEMO_DIR/sft_before_constrained.json" | tee "$DEMO_DIR/sft_before_constrained.txt"
  "$TRACELLM" train --sft --init "$pre" --data "$DEMO_DIR"/sft_shards/sft_*.bin --out "$out" --tokenizer "$tok" \
    --steps "$steps" --batch "$batch" --lr "$lr" --threads "$threads" --print-every 25
  "${score[@]}" --model "$out" --json "$DEMO_DIR/sft_after.json" | tee "$DEMO_DIR/sft_after.txt"
  "${score[@]}" --model "$out" --constrained --json "$DEMO_DIR/sft_after_constrained.json" | tee "$DEMO_DIR/sft_after_constrained.txt"
  local w
  echo "instruction following on $n_eval held-out layers (parsed + requested counts + layer_check):"
  for w in before after; do
    printf '  %-6s SFT, free:        %s\n' "$w" "$(sed 's/^sft score [^:]*: //' "$DEMO_DIR/sft_$w.txt")"
    printf '  %-6s SFT, constrained: %s\n' "$w" "$(sed 's/^sft score [^:]*: //' "$DEMO_DIR/sft_${w}_constrained.txt")"
  done
}
sft_stage
