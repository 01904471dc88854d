#!/usr/bin/env bash
# Tokenizer and shards benchmark (numbers for docs/PERF.md, "Tokenizer and shards"):
#   1. compression on the real samples (../shared/data/tracellm): bytes/token and tokens/graph of our
#      BPE at vocab 1024/4096/8192, against bytes (vocab 256) and whitespace words with digits split;
#      once in-sample (trained on the files measured) and once held out (trained on the first half of
#      the graphs, measured on the second half);
#   2. trainer time for a 4096 vocabulary on 100 MB on 2 threads: the real samples replicated (what
#      the issue asks), and 100 MB of synthetic graphs rendered (many more distinct identifiers);
#   3. encoding MB/s on 1 and 2 threads, and `tracellm shards` end to end on the same 100 MB.
# usage: TRACELLM=./tracellm bash scripts/bench_tokenizer.sh      (about a minute on 2 cores)
set -eu
T=${TRACELLM:-./tracellm}
SHARED=${TRACELLM_SHARED_DATA:-../shared/data}
D=$SHARED/tracellm
[ -f "$D/recursive_dataset.txt" ] || { echo "bench_tokenizer: needs $D (../shared/data)"; exit 1; }
W=$(mktemp -d "${TMPDIR:-/tmp}/bench-tok.XXXXXX")
trap 'rm -rf "$W"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"

# stats_row LABEL TOKENIZER FILE PREFIX: one table row from `tokenizer stats`
stats_row() {
  "$T" tokenizer stats --tokenizer "$2" --in "$3" --doc-start "$4" | awk -v label="$1" -v f="$3" '
    /^tokenizer/ { vocab = $4; sub(",", "", vocab) }
    $1 == f { printf "  %-28s vocab %-5s %8.2f bytes/token %8.1f tokens/graph  (bytes: %7.1f /graph, words+digits: %6.1f /graph) %5.2fx fewer than bytes\n",
                     label, vocab, $5, $6, $7, $8, $5 }'
}

echo
echo "== 1. compression (in-sample: one tokenizer trained on all three files, measured on each;"
echo "      instruction: per sample = one layer; vocab = ids the corpus could fill at --min-count 2)"
for v in 1024 4096 8192; do
  "$T" tokenizer train --in "$D/recursive_dataset.txt" "$D/tabular_dataset.txt" "$D/recursive_instruction_dataset.txt" \
    --vocab-size $v --out "$W/tok$v.bin" --quiet >/dev/null 2>&1
  stats_row "recursive, asked $v" "$W/tok$v.bin" "$D/recursive_dataset.txt" "[GENERATE GRAPH]"
  stats_row "tabular, asked $v" "$W/tok$v.bin" "$D/tabular_dataset.txt" "[GENERATE GRAPH]"
  stats_row "instruction, asked $v" "$W/tok$v.bin" "$D/recursive_instruction_dataset.txt" "### Question:"
done

echo
echo "== 1b. compression held out (trained on the first half of the graphs, measured on the second half)"
half() {  # half FILE A|B OUT: graphs (cut at [GENERATE GRAPH]) of the first or second half
  awk -v want="$2" 'BEGIN { n = 0 } /^\[GENERATE GRAPH\]/ { n++ } { g[n] = g[n] $0 "\n" }
    END { for (i = 1; i <= n; i++) if ((want == "A") == (i <= n / 2)) printf "%s", g[i] }' "$1" > "$3"
}
for f in recursive tabular; do half "$D/${f}_dataset.txt" A "$W/$f.A"; half "$D/${f}_dataset.txt" B "$W/$f.B"; done
for v in 1024 4096 8192; do
  "$T" tokenizer train --in "$W/recursive.A" "$W/tabular.A" --vocab-size $v --out "$W/half$v.bin" --quiet >/dev/null 2>&1
  stats_row "recursive held out, $v" "$W/half$v.bin" "$W/recursive.B" "[GENERATE GRAPH]"
  stats_row "tabular held out, $v" "$W/half$v.bin" "$W/tabular.B" "[GENERATE GRAPH]"
done

echo
echo "== 2. trainer: 4096 vocabulary on 100 MB, 2 threads"
cat "$D/recursive_dataset.txt" "$D/tabular_dataset.txt" > "$W/base.txt"
while [ "$(stat -c %s "$W/base.txt")" -lt 100000000 ]; do cat "$W/base.txt" "$W/base.txt" > "$W/b2" && mv "$W/b2" "$W/base.txt"; done
head -c 100000000 "$W/base.txt" > "$W/real100.txt"; rm "$W/base.txt"
echo "  real samples replicated:  $("$T" tokenizer train --in "$W/real100.txt" --vocab-size 4096 --out "$W/r.bin" --threads 2 --quiet 2>&1 | grep -o 'vocab [0-9]*\|trained on.*' | tr '\n' ' ')"
if "$T" synth --graphs 40000 --seed 5 --services 1000 --microservices 6000 --out "$W/syn.csv.gz" >/dev/null 2>&1 &&
   "$T" prepare --input "$W/syn.csv.gz" --out "$W/prep" --quiet 2>/dev/null &&
   "$T" render --in "$W/prep/train.jsonl" --format recursive --out "$W/syn_rec.txt" >/dev/null 2>&1 &&
   "$T" render --in "$W/prep/train.jsonl" --format tabular --out "$W/syn_tab.txt" >/dev/null 2>&1; then
  cat "$W/syn_rec.txt" "$W/syn_tab.txt" "$W/syn_rec.txt" | head -c 100000000 > "$W/syn100.txt"
  echo "  synthetic graphs rendered: $("$T" tokenizer train --in "$W/syn100.txt" --vocab-size 4096 --out "$W/s.bin" --threads 2 --quiet 2>&1 | grep -o 'vocab [0-9]*\|trained on.*' | tr '\n' ' ')"
  echo "  (synthetic, 8192):         $("$T" tokenizer train --in "$W/syn100.txt" --vocab-size 8192 --out "$W/s8.bin" --threads 2 --quiet 2>&1 | grep -o 'vocab [0-9]*\|trained on.*' | tr '\n' ' ')"
else
  echo "  synthetic corpus: skipped (synth/prepare/render unavailable)"
fi

echo
echo "== 3. encoding (real samples replicated, 100 MB, tokenizer vocab 4096)"
for th in 1 2; do
  echo "  $th thread(s): $("$T" tokenizer encode --tokenizer "$W/r.bin" --in "$W/real100.txt" --out "$W/ids.bin" --threads $th 2>&1 | grep -o '[0-9.]* bytes/token.*')"
done
if [ -f "$W/syn100.txt" ]; then
  for th in 1 2; do
    echo "  synthetic, $th thread(s): $("$T" tokenizer encode --tokenizer "$W/s.bin" --in "$W/syn100.txt" --out "$W/ids.bin" --threads $th 2>&1 | grep -o '[0-9.]* bytes/token.*')"
  done
fi
echo "  shards --text (100 MB, 2 threads, seq-len 1024):"
"$T" shards --text "$W/real100.txt" --tokenizer "$W/r.bin" --out "$W/shards" --threads 2 | sed 's/^/    /'
if [ -f "$W/prep/train.jsonl" ]; then
  echo "  shards --graphs --format recursive ($(wc -l < "$W/prep/train.jsonl") synthetic graphs, 2 threads):"
  "$T" shards --graphs "$W/prep/train.jsonl" --format recursive --tokenizer "$W/s.bin" --out "$W/shards" --threads 2 | sed 's/^/    /'
fi
