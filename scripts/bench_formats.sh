#!/usr/bin/env bash
# Speed of the text formats, per core: `tracellm render --bench` renders every graph of a corpus
# in each format into memory and parses the text back (one thread, best of N runs, no JSON or
# disk in the timed part), then times the layer-answer parser + layer_check alone (generation's
# hot path). Corpora: the paper's 1,089 real graphs replicated (../shared/data) and a synthetic
# corpus from `tracellm synth` + `prepare`. Goal: >= 100 MB/s everywhere. A benchmark, not a test.
set -euo pipefail
TRACELLM=${TRACELLM:-./tracellm}
SHARED=${TRACELLM_SHARED_DATA:-../shared/data}
REPEAT=${REPEAT:-3}
COPIES=${COPIES:-50}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench_formats.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1 /proc/loadavg)"
if [ -f "$SHARED/tracellm/tabular_dataset.txt" ]; then
  "$TRACELLM" render --parse "$SHARED/tracellm/tabular_dataset.txt" --out "$TMP/real.jsonl" 2>/dev/null
  for i in $(seq "$COPIES"); do cat "$TMP/real.jsonl"; done > "$TMP/real_x.jsonl"
  echo "== real graphs (tabular_dataset.txt x $COPIES)"
  "$TRACELLM" render --bench "$REPEAT" --in "$TMP/real_x.jsonl"
else
  echo "== real graphs: skipped ($SHARED is absent)"
fi
if "$TRACELLM" synth --help >/dev/null 2>&1 && "$TRACELLM" prepare --help >/dev/null 2>&1; then
  "$TRACELLM" synth --graphs 40000 --seed 1 --quiet --out "$TMP/s.csv.gz" >/dev/null
  "$TRACELLM" prepare --input "$TMP/s.csv.gz" --out "$TMP/prep" --quiet >/dev/null 2>&1
  echo "== synthetic graphs (synth 40,000 traces -> prepare train split)"
  "$TRACELLM" render --bench "$REPEAT" --in "$TMP/prep/train.jsonl"
fi
