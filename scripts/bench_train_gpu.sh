#!/usr/bin/env bash
# Training throughput of `tracellm train --device cuda` against a PyTorch reference of the same model
# (scripts/reference/gpt_ref_gpu.py: same architecture, batch and sequence length; SDPA flash
# attention, bf16 autocast, fused AdamW, torch.compile when it works) in one run on one GPU, and
# MFU (model FLOPs utilisation) of each.
#
#   scripts/bench_train_gpu.sh [--model d12] [--batch 16] [--seq-len 1024] [--vocab 50257] [--steps 10] [--tf32]
#                              [--torch-only]
#
# FLOPs per token: 6 * parameters + 12 * layers * channels * seq_len (llm.c's / PaLM's convention,
# the attention counted without the causal half). MFU is against the card's dense bf16 peak from
# its datasheet (H100 SXM / H200 989 TFLOP/s, H100 PCIe 756, H100 NVL 835, A100 312); the measured
# GEMM ceiling (scripts/gpu_ceiling.cu) is reported beside it by scripts/gpu_check.sh.
# --tf32 adds --device cuda-fp32 (fp32 storage, TF32 GEMMs) and PyTorch in TF32 eager, like for like.
# The comparison runs both at --batch; then tracellm alone doubles the batch (2x, 4x, 8x) while it fits,
# and reports the largest batch's tokens/s and MFU (bf16 halves the activations' memory).
# --torch-only runs the PyTorch reference alone (scripts/gpu_check.sh: at tracellm's largest batch).
# Every result is also printed as a "RESULT key=value" line for scripts/gpu_check.sh.
set -uo pipefail
TRACELLM=${TRACELLM:-./tracellm}
PY=${PY:-python3}
MODEL=d12 B=16 T=1024 V=50257 STEPS=10 WARM=3 MODES=bf16 OURS=1
REF_TIMEOUT=${REF_TIMEOUT:-170}   # torch.compile of d12 takes about a minute; eager is the fallback
while [ $# -gt 0 ]; do
  case $1 in
    --model) MODEL=$2; shift 2;; --batch) B=$2; shift 2;; --seq-len) T=$2; shift 2;;
    --vocab) V=$2; shift 2;; --steps) STEPS=$2; shift 2;; --tf32) MODES="bf16 tf32"; shift;;
    --torch-only) OURS=; shift;;
    -h|--help) sed -n "2,18p" "$0"; exit 0;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
case $MODEL in d[0-9]*) D=${MODEL#d};; *) echo "--model must be dN" >&2; exit 2;; esac
[ -z "$OURS" ] || [ -x "$TRACELLM" ] || { echo "no $TRACELLM: build first (make)" >&2; exit 1; }
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
C=$((64 * D))

GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
case "$GPU" in
  *H200*) PEAK=989e12;; *H100*PCIe*) PEAK=756e12;; *H100*NVL*) PEAK=835e12;; *H100*) PEAK=989e12;;
  *A100*) PEAK=312e12;; *) PEAK=0;;
esac
FLOPS_PER_TOKEN=$("$PY" -c "
L, C, T, V = $D, $C, $T, $V
Vp = (V + 63) // 64 * 64
n = Vp * C + T * C + L * (4 * C + 3 * C * C + 3 * C + C * C + C + 4 * C * C + 4 * C + 4 * C * C + C) + 2 * C
print(6 * n + 12 * L * C * T)")
echo "== $GPU: $MODEL ($D layers, $C channels), vocab $V, batch $B x $T tokens, $STEPS timed steps after $WARM"
echo "RESULT gpu=$GPU"
mfu() { "$PY" -c "p = float('$PEAK'); print(f'{100 * $1 * $FLOPS_PER_TOKEN / p:.1f}%' if p > 0 else 'n/a (unknown card)')"; }

# random tokens in one shard, enough for every step
"$PY" - "$TMP/bench.bin" "$V" $(( (STEPS + WARM + 2) * B * T + 1 )) <<'PYEOF'
import random, struct, sys, zlib
path, V, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(0)
tb = struct.pack(f"<{n}H", *[r.randrange(V) for _ in range(n)]); db = struct.pack("<Q", 0)
hdr = b"TLLMSHRD" + struct.pack("<IIQQIIQ", 1, V, n, 1, 0, zlib.crc32(tb + db), 1) + bytes(16)
open(path, "wb").write(hdr + tb + db)
PYEOF

# tokens/s of a run: the median of its steps after the warm-up ones
median_tps() {
  "$PY" -c "
import json, sys
r = [json.loads(l)['tokens_per_s'] for l in open(sys.argv[1])][$WARM:]
print(sorted(r)[len(r) // 2])" "$1"
}

# ---- tracellm: bf16 mixed precision (--device cuda, the default), then with --tf32 fp32 storage with
# TF32 GEMMs (--device cuda-fp32) ----
ours=
[ -n "$OURS" ] || MODES=
for mode in $MODES; do
  t0=$(date +%s)
  rm -rf "$TMP/run"
  dev=cuda; [ $mode = tf32 ] && dev=cuda-fp32
  if timeout 150 "$TRACELLM" train --device $dev --data "$TMP/bench.bin" --out "$TMP/run" \
       --model "$MODEL" --batch "$B" --seq-len "$T" --steps $((STEPS + WARM)) --warmup 0 --print-every 0 \
       --save-every 0 --eval-every 0 >"$TMP/train.log" 2>&1; then
    tok=$(median_tps "$TMP/run/log.jsonl")
    echo "tracellm train --device $dev ($mode): ${tok} tokens/s (median), MFU $(mfu "$tok"), $(( $(date +%s) - t0 ))s in all"
    echo "RESULT tracellm_${mode}_tokens_per_s=$tok"
    echo "RESULT tracellm_${mode}_mfu=$(mfu "$tok")"
    [ $mode = bf16 ] && ours=$tok
    # the attention kernels auto timed and kept (kernels/cuda/attention_mma.cu prints each choice)
    if [ $mode = bf16 ]; then
      att=$(sed -nE 's/^cuda attention (forward|backward), .*: ([a-z0-9-]+)$/\1 \2/p' "$TMP/train.log" | paste -sd, -)
      grep '^cuda attention' "$TMP/train.log"
      echo "RESULT tracellm_bf16_attention=${att:-defaults (not timed)}"
    fi
  else
    echo "tracellm train --device $dev ($mode) FAILED:"; tail -5 "$TMP/train.log" | sed 's/^/    /'
    echo "RESULT tracellm_${mode}_tokens_per_s=FAILED"
  fi
done

# ---- the largest batch that fits: bf16, doubling from --batch until a run fails (out of memory) ----
if [ -n "$ours" ]; then
  best=$B best_tok=$ours
  for b2 in $((2 * B)) $((4 * B)) $((8 * B)); do
    rm -rf "$TMP/probe"
    if timeout 120 "$TRACELLM" train --device cuda --data "$TMP/bench.bin" --out "$TMP/probe" --model "$MODEL" \
         --batch "$b2" --seq-len "$T" --steps $((WARM + 4)) --warmup 0 --print-every 0 --save-every 0 --eval-every 0 \
         >"$TMP/probe.log" 2>&1; then
      best=$b2 best_tok=$(median_tps "$TMP/probe/log.jsonl")
      echo "tracellm train --device cuda, batch $b2: $best_tok tokens/s, MFU $(mfu "$best_tok")"
    else
      echo "tracellm train --device cuda, batch $b2: does not run ($(tail -1 "$TMP/probe.log" | cut -c1-160))"
      break
    fi
  done
  echo "RESULT tracellm_bf16_largest_batch=$best"
  echo "RESULT tracellm_bf16_largest_batch_tokens_per_s=$best_tok"
  echo "RESULT tracellm_bf16_largest_batch_mfu=$(mfu "$best_tok")"
fi

# ---- PyTorch ----
REF=(scripts/reference/gpt_ref_gpu.py --layers "$D" --heads "$D" --embd "$C" --vocab "$V" --batch "$B"
     --seq-len "$T" --steps "$STEPS" --warmup "$WARM")
tps() { sed -nE 's/.* ([0-9.]+) tokens\/s.*/\1/p' <<<"$1" | tail -1; }
theirs=
if ref=$(timeout "$REF_TIMEOUT" "$PY" "${REF[@]}" --precision bf16 --compile 2>"$TMP/compile.err"); then
  theirs=$(tps "$ref"); echo "$ref"; echo "RESULT torch_kind=bf16+compile"
else
  echo "torch.compile reference failed or timed out ($REF_TIMEOUT s): $(tail -1 "$TMP/compile.err")"
  if ref=$(timeout 90 "$PY" "${REF[@]}" --precision bf16 2>"$TMP/eager.err"); then
    theirs=$(tps "$ref"); echo "$ref"; echo "RESULT torch_kind=bf16-eager"
  else
    echo "PyTorch eager reference failed too: $(tail -1 "$TMP/eager.err")"
  fi
fi
if [ -n "$theirs" ]; then
  echo "RESULT torch_tokens_per_s=$theirs"
  echo "RESULT torch_mfu=$(mfu "$theirs")"
  [ -n "$ours" ] && echo "RESULT ratio=$("$PY" -c "print(f'{float($ours) / float($theirs):.3f}x')")" || true
else
  echo "RESULT torch_tokens_per_s=FAILED"
fi
# with --tf32, the precision of --device cuda-fp32 (fp32 storage, TF32 GEMMs), for a like-for-like line
if [[ " $MODES " == *" tf32 "* ]]; then
  if ref=$(timeout 60 "$PY" "${REF[@]}" --precision tf32 2>"$TMP/tf32.err"); then
    echo "$ref"; echo "RESULT torch_tf32_eager_tokens_per_s=$(tps "$ref")"
  else
    echo "PyTorch tf32 eager reference failed: $(tail -1 "$TMP/tf32.err")"
  fi
fi
{ [ -z "$OURS" ] || [ -n "$ours" ]; } && [ -n "$theirs" ]
