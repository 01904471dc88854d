#!/usr/bin/env bash
# Benchmark of `tracellm prepare` against the pandas reference (scripts/reference/prepare_ref.py):
# generates a ~2 M-row v2022 corpus with `tracellm synth`, runs both on it, checks they agree (same
# graphs, same split, same count for every drop reason), and prints rows/s, peak RSS and the ratios.
# A benchmark, not a test: it takes about two minutes on 2 cores, most of it in the reference.
#
#   scripts/bench_prepare.sh                     # ~2 M rows (GRAPHS=165000)
#   GRAPHS=20000 scripts/bench_prepare.sh        # a quick look
#   TRACELLM=build-x/tracellm MEM=256M THREADS=2 scripts/bench_prepare.sh
set -euo pipefail
TRACELLM=${TRACELLM:-./tracellm}
GRAPHS=${GRAPHS:-165000}
SEED=${SEED:-7}
MEM=${MEM:-4G}
THREADS=${THREADS:-$(nproc)}
PY=/usr/bin/python3
REF=$(dirname "$0")/reference/prepare_ref.py
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-prepare.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

[ -x "$TRACELLM" ] || { echo "bench_prepare: $TRACELLM not found (run make first, or set TRACELLM)" >&2; exit 1; }
$PY -c 'import pandas' 2>/dev/null || { echo "bench_prepare: /usr/bin/python3 lacks pandas (apt-get install python3-pandas)" >&2; exit 1; }
"$TRACELLM" synth --help >/dev/null 2>&1 || { echo "bench_prepare: this build has no 'tracellm synth'" >&2; exit 1; }

echo "== corpus: tracellm synth --graphs $GRAPHS --seed $SEED"
"$TRACELLM" synth --graphs "$GRAPHS" --seed "$SEED" --out "$WORK/corpus.csv.gz" | head -1
ROWS=$(( $(gzip -dc "$WORK/corpus.csv.gz" | wc -l) - 1 ))
MB=$(( $(gzip -dc "$WORK/corpus.csv.gz" | wc -c) / 1000000 ))
echo "   $ROWS rows, $MB MB of CSV, $(( $(stat -c %s "$WORK/corpus.csv.gz") / 1000000 )) MB gzip"

# run NAME CMD...: wall seconds and peak RSS (MB) from GNU time
run() {
  local name=$1; shift
  /usr/bin/time -v "$@" > "$WORK/$name.out" 2> "$WORK/$name.time" || { cat "$WORK/$name.out" "$WORK/$name.time" >&2; exit 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,t,":"); s=0; for(i=1;i<=n;i++) s=s*60+t[i]; print s}' "$WORK/$name.time")
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$WORK/$name.time")
  echo "$wall $rss"
}
echo "== tracellm prepare (--threads $THREADS --mem-limit $MEM)"
read -r C_S C_RSS < <(run c "$TRACELLM" prepare --quiet --threads "$THREADS" --mem-limit "$MEM" --input "$WORK/corpus.csv.gz" --out "$WORK/c")
echo "== tracellm prepare (--threads 1)"
read -r C1_S C1_RSS < <(run c1 "$TRACELLM" prepare --quiet --threads 1 --mem-limit "$MEM" --input "$WORK/corpus.csv.gz" --out "$WORK/c1")
echo "== prepare_ref.py (pandas $($PY -c 'import pandas; print(pandas.__version__)'))"
read -r R_S R_RSS < <(run r $PY "$REF" --input "$WORK/corpus.csv.gz" --out "$WORK/r")
echo "== agreement"
$PY "$REF" --compare "$WORK/c" "$WORK/r"
cmp -s "$WORK/c/train.jsonl" "$WORK/c1/train.jsonl" && cmp -s "$WORK/c/val.jsonl" "$WORK/c1/val.jsonl" &&
  echo "threads $THREADS and 1: byte-identical outputs" || { echo "threads $THREADS and 1 differ" >&2; exit 1; }

awk -v rows="$ROWS" -v cs="$C_S" -v c1="$C1_S" -v rs="$R_S" -v crss="$C_RSS" -v c1rss="$C1_RSS" -v rrss="$R_RSS" -v t="$THREADS" 'BEGIN {
  printf "\n%-34s %10s %14s %12s\n", "implementation", "seconds", "rows/s", "peak RSS MB"
  printf "%-34s %10.2f %14.0f %12d\n", "tracellm prepare (" t " threads)", cs, rows / cs, crss
  printf "%-34s %10.2f %14.0f %12d\n", "tracellm prepare (1 thread)", c1, rows / c1, c1rss
  printf "%-34s %10.2f %14.0f %12d\n", "prepare_ref.py (pandas)", rs, rows / rs, rrss
  printf "speed-up: %.1fx (%d threads), %.1fx (1 thread); memory: %.1fx less\n", rs / cs, t, rs / c1, rrss / crss
  printf "a 13 M-row CallGraph file at this rate: ~%.0f s\n", 13e6 / (rows / cs)
}'
