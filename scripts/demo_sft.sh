# `make demo` stage: instruction tuning (docs/SFT.md). Sourced by scripts/demo.sh after pretraining;
# it uses TRACELLM, DEMO_DIR, stage and has_command from there, and the outputs of earlier stages:
#   $DEMO_DIR/prepared/{train,val}.jsonl and stats.json, the tokenizer $DEMO_DIR/tok.bin, the
#   pretrained run $DEMO_DIR/pretrain.
# It renders instruction samples from a share of the training graphs, trains the pretrained model
# on their answers (loss mask), and prints the instruction-following score of the held-out layers
# (train/sft_score.h) before and after. Sized for ~3 CPU minutes on 2 cores; knobs:
#   DEMO_SFT_FRACTION (share of training graphs made into samples), DEMO_SFT_STEPS, DEMO_SFT_BATCH,
#   DEMO_SFT_LR, DEMO_SFT_EVAL (held-out layers scored), DEMO_SFT_THREADS.
sft_stage() {
  local pre=$DEMO_DIR/pretrain tok=$DEMO_DIR/tok.bin prep=$DEMO_DIR/prepared out=$DEMO_DIR/sft
  local stats=$prep/stats.json
  [ -f "$stats" ] || stats=$DEMO_DIR/stats.json
  if ! has_command sft; then stage "sft: not built yet (tracellm sft --help failed); skipping"; return 0; fi
  if [ ! -f "$pre/model.bin" ] || [ ! -f "$tok" ]; then
    stage "sft: no pretrained run ($pre/model.bin) or tokenizer ($tok); skipping"
    return 0
  fi
  local frac=${DEMO_SFT_FRACTION:-0.05} steps=${DEMO_SFT_STEPS:-150} batch=${DEMO_SFT_BATCH:-4}
  local lr=${DEMO_SFT_LR:-1e-3} n_eval=${DEMO_SFT_EVAL:-40} threads=${DEMO_SFT_THREADS:-${DEMO_THREADS:-0}}
  stage "sft: instruction tuning $pre -> $out ($steps steps on the answers of $frac of the training graphs)"
  local stats_opt=()
  [ -f "$stats" ] && stats_opt=(--stats "$stats")
  "$TRACELLM" sft data --graphs "$prep/train.jsonl" "${stats_opt[@]}" --fraction "$frac" --out "$DEMO_DIR/sft.txt"
  # the samples are cut at the pretrained model's context (max_seq_len: int32 at byte 28 of model.bin)
  local ctx
  ctx=$(od -An -t d4 -j 28 -N 4 "$pre/model.bin" | tr -d ' ')
  rm -rf "$DEMO_DIR/sft_shards" "$out"
  "$TRACELLM" shards --text "$DEMO_DIR/sft.txt" --format instruction --tokenizer "$tok" --out "$DEMO_DIR/sft_shards" \
    --name sft --seq-len "$ctx" --quiet
  local score=("$TRACELLM" sft score --graphs "$prep/val.jsonl" --tokenizer "$tok" -n "$n_eval" --threads "$threads")
  "${score[@]}" --model "$pre" --json "$DEMO_DIR/sft_before.json" | tee "$DEMO_DIR/sft_before.txt"
  "$TRACELLM" train --sft --init "$pre" --data "$DEMO_DIR"/sft_shards/sft_*.bin --out "$out" --tokenizer "$tok" \
    --steps "$steps" --batch "$batch" --lr "$lr" --threads "$threads" --print-every 25
  "${score[@]}" --model "$out" --json "$DEMO_DIR/sft_after.json" | tee "$DEMO_DIR/sft_after.txt"
  echo "instruction following on $n_eval held-out layers (parsed + requested counts + layer_check):"
  echo "  before SFT: $(sed 's/^sft score [^:]*: //' "$DEMO_DIR/sft_before.txt")"
  echo "  after SFT:  $(sed 's/^sft score [^:]*: //' "$DEMO_DIR/sft_after.txt")"
}
sft_stage
