#!/usr/bin/env bash
# The training corpus recorded in the run directory: `train --corpus train.jsonl` writes
# RUN/conditions.jsonl (one root condition per training graph), an SFT run inherits it, and
# `generate` draws every condition a request leaves out from it: no --service at all, or a
# --service whose size/depth/latency come from that service's own graphs, or one field fixed.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../scripts/lib_corpus.sh"
case $TRACELLM in /*) ;; *) TRACELLM=$PWD/$TRACELLM ;; esac
cd "$TMP"
synth_corpus 300 5 512 recursive 256
T=($TRACELLM train --data sh/train_000000.bin --layers 2 --heads 2 --embd 64 --seq-len 256 --batch 4 --lr 3e-3 --warmup 3 --print-every 0 --threads 1)
check cond_train_records "${T[@]}" --steps 20 --corpus prep/train.jsonl --out run
check cond_one_per_graph test "$(wc -l < run/conditions.jsonl)" -eq "$(wc -l < prep/train.jsonl)"
$TRACELLM prompts --graphs prep/train.jsonl --out want.jsonl >/dev/null
check cond_same_as_prompts cmp -s run/conditions.jsonl want.jsonl
check cond_run_without_corpus "${T[@]}" --steps 2 --out run_plain
check cond_absent_without_corpus test ! -e run_plain/conditions.jsonl

G=($TRACELLM generate --model run --tokenizer tok.bin --format recursive --seed 2 --max-tokens 200 --threads 1 --names prep/train.jsonl)
# every written request must be a training graph's condition (with the fixed fields replaced)
in_corpus() {  # FILE [FIELD=VALUE]: each request's (service,num_edges,depth,latency) is a recorded one
  awk -v fix="${2:-}" 'NR == FNR { seen[$0] = 1; next }
    { match($0, /"request":\{[^}]*\}/); r = substr($0, RSTART, RLENGTH)
      s = r; sub(/.*"service":"/, "", s); sub(/".*/, "", s)
      e = r; sub(/.*"num_edges":/, "", e); sub(/[,}].*/, "", e)
      d = r; sub(/.*"depth":/, "", d); sub(/[,}].*/, "", d)
      l = r; sub(/.*"latency":/, "", l); sub(/[,}].*/, "", l)
      key = sprintf("{\"service\":\"%s\",\"num_edges\":%s,\"depth\":%s,\"latency\":%s}", s, e, d, l)
      n++
      if (fix != "") { split(fix, kv, "="); if ((kv[1] == "num_edges" ? e : s) != kv[2]) bad++ }
      else if (!(key in seen)) { bad++; print "not in the corpus: " key > "/dev/stderr" } }
    END { if (n == 0) { print "no graphs written" > "/dev/stderr"; exit 1 } exit bad > 0 }' run/conditions.jsonl "$1"
}
check cond_generate_unconditioned "${G[@]}" -n 6 --out g1.jsonl
check cond_drawn_from_corpus in_corpus g1.jsonl
S=$(head -1 prep/train.jsonl | sed 's/.*"service":"\([^"]*\)".*/\1/')
check cond_generate_service "${G[@]}" -n 4 --service "$S" --out g2.jsonl
check cond_service_kept in_corpus g2.jsonl "service=$S"
check cond_service_fields_from_its_graphs in_corpus g2.jsonl
check cond_generate_fixed_edges "${G[@]}" -n 4 --num-edges 3 --out g3.jsonl
check cond_fixed_field_kept in_corpus g3.jsonl "num_edges=3"
expect_fail cond_unknown_service "no training graph of service S_nope" "${G[@]}" -n 2 --service S_nope --out g4.jsonl
expect_fail cond_no_record "train with --corpus" $TRACELLM generate --model run_plain --tokenizer tok.bin -n 2 --out g5.jsonl
# SFT inherits the pretraining run's record
$TRACELLM render --in prep/train.jsonl --format instruction --instruction-fraction 1 --out ins.txt >/dev/null 2>&1
$TRACELLM shards --text ins.txt --format instruction --tokenizer tok.bin --out shi --name sft --seq-len 256 --quiet >/dev/null 2>&1
check cond_sft_run $TRACELLM train --sft --init run --data shi/sft_000000.bin --out sft --steps 2 --batch 2 --print-every 0 --threads 1
check cond_sft_inherits cmp -s run/conditions.jsonl sft/conditions.jsonl
done_tests
