#!/usr/bin/env bash
# Throughput of the evaluation path: `baseline fit`, `baseline sample` (unconditioned and from
# prompts) and `eval` on the built-in synthetic corpus. Prints one table; numbers go to docs/PERF.md.
# usage: scripts/bench_eval.sh [GRAPHS=60000] [SAMPLES=50000]   (TRACELLM=path/to/tracellm)
set -eu
TRACELLM=${TRACELLM:-./tracellm}
N=${1:-60000}
S=${2:-50000}
T=$(mktemp -d "${TMPDIR:-/tmp}/tracellm-bench-eval.XXXXXX")
trap 'rm -rf "$T"' EXIT
secs() { local t0=$(date +%s.%N); "$@" >/dev/null 2>&1; awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.3f", b - a}'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.0f", a / b}'; }

"$TRACELLM" synth --graphs "$N" --seed 9 --out "$T/c.csv.gz" >/dev/null
"$TRACELLM" prepare --input "$T/c.csv.gz" --out "$T/p" --quiet
ntrain=$(wc -l <"$T/p/train.jsonl"); nval=$(wc -l <"$T/p/val.jsonl")
mb=$(awk -v b="$(stat -c %s "$T/p/train.jsonl")" 'BEGIN{printf "%.1f", b / 1e6}')
t_fit=$(secs "$TRACELLM" baseline fit --graphs "$T/p/train.jsonl" --out "$T/base.model")
t_sample=$(secs "$TRACELLM" baseline sample --model "$T/base.model" -n "$S" --seed 1 --out "$T/gen.jsonl")
edges=$(grep -o '\],\[' "$T/gen.jsonl" | wc -l); edges=$((edges + S))
# prompts: each validation graph's own service, size, depth and root latency
/usr/bin/python3 - "$T/p/val.jsonl" >"$T/prompts.jsonl" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    g = json.loads(line); e = g["edges"]
    root = [x for x in e if x[0] == "0"][0]
    print(json.dumps({"service": g["service"], "num_edges": len(e), "depth": max(x[0].count(".") + 1 for x in e), "latency": root[4] + root[5]}))
EOF
t_prompts=$(secs "$TRACELLM" baseline sample --model "$T/base.model" --prompts "$T/prompts.jsonl" --seed 1 --out "$T/cond.jsonl")
t_eval=$(secs "$TRACELLM" eval --real "$T/p/val.jsonl" --synthetic "$T/gen.jsonl" --train "$T/p/train.jsonl" --out "$T/rep")

printf '%-44s %10s %s\n' "step" "seconds" "rate"
printf '%-44s %10.2f %s\n' "baseline fit ($ntrain graphs, $mb MB)" "$t_fit" "$(div "$ntrain" "$t_fit") graphs/s"
printf '%-44s %10.2f %s\n' "baseline sample -n $S ($edges edges)" "$t_sample" "$(div "$S" "$t_sample") graphs/s, $(div "$edges" "$t_sample") edges/s"
printf '%-44s %10.2f %s\n' "baseline sample --prompts ($nval prompts)" "$t_prompts" "$(div "$nval" "$t_prompts") prompts/s"
printf '%-44s %10.2f %s\n' "eval ($nval real, $S synthetic, --train)" "$t_eval" "$(div "$((nval + S))" "$t_eval") graphs/s"
