#!/usr/bin/env bash
# Training throughput of `tracellm train` against the PyTorch reference (scripts/reference/gpt_ref.py:
# the same architecture, configuration, batch, sequence length and thread count) measured in one
# run on random tokens, then the matmul throughput against the machine's measured FMA peak.
#
#   scripts/bench_train_cpu.sh [--model d4] [--batch 8] [--seq-len 256] [--vocab 4096] [--threads 2] [--steps 10]
#
# Both sides report the median step time after 2 warm-up steps. Needs /usr/bin/python3 with torch;
# PyTorch's matmuls use whatever libblas.so.3 is selected (install libopenblas0-pthread for a fair one).
set -euo pipefail
TRACELLM=${TRACELLM:-./tracellm}
PY=${PY:-/usr/bin/python3}
MODEL=d4 B=8 T=256 V=4096 THREADS=2 STEPS=10
while [ $# -gt 0 ]; do
  case $1 in
    --model) MODEL=$2; shift 2;; --batch) B=$2; shift 2;; --seq-len) T=$2; shift 2;;
    --vocab) V=$2; shift 2;; --threads) THREADS=$2; shift 2;; --steps) STEPS=$2; shift 2;;
    -h|--help) sed -n '2,9p' "$0"; exit 0;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
case $MODEL in d[0-9]*) D=${MODEL#d};; *) echo "--model must be dN" >&2; exit 2;; esac
[ -x "$TRACELLM" ] || { echo "no $TRACELLM: build first (make)" >&2; exit 1; }
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== $MODEL ($D layers, $D heads, $((64 * D)) channels), vocab $V, batch $B x $T tokens, $THREADS threads, $STEPS timed steps"

# random tokens in one shard, enough for every step
"$PY" - "$TMP/bench.bin" "$V" $(( (STEPS + 3) * B * T + 1 )) <<'PYEOF'
import random, struct, sys, zlib
path, V, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(0)
tb = struct.pack(f"<{n}H", *[r.randrange(V) for _ in range(n)]); db = struct.pack("<Q", 0)
hdr = b"TLLMSHRD" + struct.pack("<IIQQIIQ", 1, V, n, 1, 0, zlib.crc32(tb + db), 1) + bytes(16)
open(path, "wb").write(hdr + tb + db)
PYEOF

"$TRACELLM" train --data "$TMP/bench.bin" --out "$TMP/run" --model "$MODEL" --batch "$B" --seq-len "$T" \
  --threads "$THREADS" --steps $((STEPS + 2)) --warmup 0 --print-every 0 --save-every 0 --eval-every 0 2>/dev/null
ours=$("$PY" -c "
import json, sys
r = [json.loads(l)['tokens_per_s'] for l in open(sys.argv[1])][2:]
print(sorted(r)[len(r) // 2])" "$TMP/run/log.jsonl")
echo "tracellm train: ${ours} tokens/s (median)"

ref=$("$PY" scripts/reference/gpt_ref.py bench --layers "$D" --heads "$D" --embd $((64 * D)) --vocab "$V" \
  --batch "$B" --seq-len "$T" --threads "$THREADS" --steps "$STEPS" --warmup 2)
echo "$ref"
theirs=$(sed -E 's/.* ([0-9.]+) tokens\/s.*/\1/' <<<"$ref")
"$PY" -c "print(f'ratio tracellm / pytorch: {float($ours) / float($theirs):.2f}x')"

echo "== matmul (kernels/cpu) vs the measured peak"
# built from the CPU backend's sources alone, so a library with the CUDA backend in it needs no CUDA here
cc -std=c11 -O2 -march=native -fopenmp -I. -D_GNU_SOURCE scripts/bench_matmul.c kernels/cpu/*.c util/util.c -lz -lm -lpthread \
  -o "$TMP/bench_matmul"
"$TMP/bench_matmul" "$THREADS"
