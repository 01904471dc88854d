# synth_corpus GRAPHS SEED VOCAB FORMAT SEQLEN, in the current folder: GRAPHS synthetic call graphs
# (synth --seed SEED) prepared into prep/ (train/val/test .jsonl), a tokenizer of VOCAB tokens
# trained on their recursive rendering (tok.bin), and shards of FORMAT (recursive, instruction, ...)
# at SEQLEN tokens in sh/: the small corpus the generation tests and benchmarks train on. Sourced by
# test/e2e_*.sh and scripts/bench_generate*.sh; $TRACELLM is the program. Stops at the first failure.
synth_corpus() {
  local n=$1 seed=$2 vocab=$3 fmt=$4 seq=$5
  $TRACELLM synth --graphs "$n" --seed "$seed" --out syn.csv.gz --quiet >/dev/null &&
    $TRACELLM prepare --input syn.csv.gz --out prep --quiet >/dev/null &&
    $TRACELLM render --in prep/train.jsonl --format recursive --split-threshold 0 --out train.txt >/dev/null 2>&1 &&
    $TRACELLM tokenizer train --in train.txt --out tok.bin --vocab-size "$vocab" --quiet >/dev/null &&
    $TRACELLM shards --graphs prep/train.jsonl --format "$fmt" --tokenizer tok.bin --out sh --seq-len "$seq" --quiet >/dev/null
}
