#!/usr/bin/env bash
# Speed of `tracellm synth`: writes a ~2 M-row corpus (165,000 traces at the default mix) to
# .csv.gz (gzip level 1) and to plain .csv, and prints rows/s for each. A benchmark, not a test.
set -euo pipefail
TRACELLM=${TRACELLM:-./tracellm}
GRAPHS=${GRAPHS:-165000}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench_synth.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for out in corpus.csv.gz corpus.csv; do
  t0=$(date +%s.%N)
  line=$("$TRACELLM" synth --graphs "$GRAPHS" --seed 1 --quiet --out "$TMP/$out" | head -1)
  t1=$(date +%s.%N)
  rows=$(sed -n 's/.* traces, \([0-9]*\) rows.*/\1/p' <<<"$line")
  awk -v o="$out" -v r="$rows" -v t0="$t0" -v t1="$t1" -v b="$(stat -c %s "$TMP/$out")" \
    'BEGIN { t = t1 - t0; printf "%-14s %9d rows  %6.2f s  %5.2f M rows/s  %6.1f MB on disk\n", o, r, t, r / t / 1e6, b / 1e6 }'
done
