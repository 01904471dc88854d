#!/usr/bin/env bash
# Generation throughput on a GPU: `tracellm generate --device cuda` (the KV-cache engine, bf16) on
# a model trained a few steps on the GPU, against `--device cpu` on the same model and prompts in
# the same run (tokens/s and graphs/s; the CPU does fewer graphs, it is the slow side). How well
# the model learned does not change the speed much; the constrained decoder keeps every graph
# valid whatever it learned.
#
#   scripts/bench_generate_gpu.sh [--layers 6] [--embd 384] [--graphs 256] [--cpu-graphs 16]
#                                 [--batch 256] [--steps 60] [--threads N]
#
# Prints one table and RESULT lines (gpu_check.sh reads them). TRACELLM=path/to/tracellm.
set -euo pipefail
source "$(dirname "$0")/lib_corpus.sh"
TRACELLM=${TRACELLM:-./tracellm}
PY=${PY:-$(command -v python3)}
LAYERS=6 EMBD=384 N=256 CPU_N=16 BATCH=256 STEPS=60 THREADS=$(nproc)
while [ $# -gt 0 ]; do
  case $1 in
    --layers) LAYERS=$2; shift 2;; --embd) EMBD=$2; shift 2;; --graphs) N=$2; shift 2;;
    --cpu-graphs) CPU_N=$2; shift 2;; --batch) BATCH=$2; shift 2;; --steps) STEPS=$2; shift 2;;
    --threads) THREADS=$2; shift 2;;
    -h|--help) sed -n '2,12p' "$0"; exit 0;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
[ -x "$TRACELLM" ] || { echo "no $TRACELLM: build first (make)" >&2; exit 1; }
case $TRACELLM in /*) ;; *) TRACELLM=$PWD/$TRACELLM ;; esac
HEADS=$((EMBD / 64)); [ "$HEADS" -ge 1 ] || HEADS=1
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
cd "$TMP"

GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)
echo "== ${GPU:-no nvidia-smi}; CPU side $THREADS threads; model $LAYERS layers, $EMBD channels, $HEADS heads, trained $STEPS steps on the GPU"
synth_corpus 600 11 1024 recursive 512
$TRACELLM train --device cuda --data sh/train_000000.bin --out run --layers "$LAYERS" --heads "$HEADS" --embd "$EMBD" \
  --seq-len 512 --batch 8 --steps "$STEPS" --lr 1e-3 --warmup 6 --print-every 0 >train.log 2>&1 ||
  { echo "training on the GPU failed:"; tail -5 train.log; exit 1; }

G=($TRACELLM generate --model run --tokenizer tok.bin --format recursive --seed 1 --from-graphs prep/val.jsonl
   --max-tokens 400)
"${G[@]}" --device cuda -n "$N" --batch "$BATCH" --out gpu.jsonl --summary gpu.json >gpu.log 2>&1 ||
  { echo "generate --device cuda failed:"; tail -5 gpu.log; exit 1; }
"${G[@]}" --device cpu --threads "$THREADS" -n "$CPU_N" --batch "$CPU_N" --out cpu.jsonl --summary cpu.json >cpu.log 2>&1 ||
  { echo "generate --device cpu failed:"; tail -5 cpu.log; exit 1; }

"$PY" - <<'EOF'
import json
g, c = json.load(open("gpu.json")), json.load(open("cpu.json"))
print(f"{'':28s} {'graphs':>7s} {'valid':>6s} {'tokens':>8s} {'seconds':>8s} {'tokens/s':>9s} {'graphs/s':>9s}")
for name, s in ((f"cuda (bf16), batch {g['batch']}", g), (f"cpu, batch {c['batch']}", c)):
    print(f"{name:28s} {s['requested']:7d} {s['valid']:6d} {s['tokens_generated']:8d} {s['seconds']:8.2f} "
          f"{s['tokens_per_s']:9.1f} {s['graphs_per_s']:9.3f}")
print(f"cuda: time in model calls {g['forward_s']:.2f} s, masks {g['mask_s']:.2f} s, sampler {g['sample_s']:.2f} s "
      f"({g['model_calls']} calls)")
print(f"RESULT gen_cuda_tokens_per_s={g['tokens_per_s']:.0f}")
print(f"RESULT gen_cuda_graphs_per_s={g['graphs_per_s']:.2f}")
print(f"RESULT gen_cuda_valid={g['valid']}/{g['requested']}")
print(f"RESULT gen_cpu_tokens_per_s={c['tokens_per_s']:.0f}")
print(f"RESULT gen_ratio={g['tokens_per_s'] / c['tokens_per_s']:.1f}x")
EOF
