#!/usr/bin/env bash
# The paper's evaluation pipelines end to end, on tiny models trained for a few steps (what is
# checked is the plumbing and the counts, not quality):
#   1. `tracellm eval grid`: the feasible cells and nothing else, every sample scored as `tracellm eval`
#      scores it, the samples are exactly what `tracellm generate` writes for the same requests
#      (greedy: one generation per distinct prompt), well-formed reports, clear errors;
#   2. GReaT: tabular shards -> train -> generate --format tabular -> eval, and the grid on it;
#   3. scripts/reproduce_paper.sh: options, --dry-run (no download), resumable stages, a download
#      that cannot happen fails clearly, and the whole pipeline on a one-file synthetic corpus.
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
REPO=$(cd "$(dirname "$0")/.." && pwd)
case $TRACELLM in /*) ;; *) TRACELLM=$PWD/$TRACELLM ;; esac
for cmd in synth prepare render tokenizer shards train generate eval baseline prompts; do
  if ! $TRACELLM $cmd --help >/dev/null 2>&1; then skip e2e_grid "tracellm $cmd is not built"; done_tests; fi
done
if [ ! -x "$PY" ]; then skip e2e_grid "needs /usr/bin/python3 to read the outputs"; done_tests; fi
check grid_help bash -c "$TRACELLM eval grid --help | grep -q -- '--temperatures'"
check eval_help_names_grid bash -c "$TRACELLM eval --help | grep -q 'eval grid'"

# ---- tiny models: recursive (pretraining format) and tabular (GReaT), both recording their corpus ----
cd "$TMP"
$TRACELLM synth --graphs 400 --seed 3 --out syn.csv.gz --quiet >/dev/null
$TRACELLM prepare --input syn.csv.gz --out prep --quiet >/dev/null
$TRACELLM render --in prep/train.jsonl --format recursive --split-threshold 0 --out train.rec.txt >/dev/null 2>&1
$TRACELLM render --in prep/train.jsonl --format tabular --out train.tab.txt >/dev/null 2>&1
$TRACELLM tokenizer train --in train.rec.txt train.tab.txt --out tok.bin --vocab-size 512 --quiet >/dev/null
for fmt in recursive tabular; do
  check great_shards_$fmt $TRACELLM shards --graphs prep/train.jsonl --format $fmt --tokenizer tok.bin --out sh_$fmt --seq-len 256 --quiet
done
TRAIN=(--layers 2 --heads 2 --embd 64 --seq-len 256 --batch 4 --steps 25 --lr 3e-3 --warmup 3 --print-every 0 --threads 1 --corpus prep/train.jsonl)
check grid_setup_train $TRACELLM train --data sh_recursive/train_000000.bin --out run "${TRAIN[@]}"
check great_train $TRACELLM train --data sh_tabular/train_000000.bin --out great "${TRAIN[@]}"

# ---- 1. the grid: cells num_edges <= 6 (16 of the 136), 3 samples, greedy and T=0.8 ----
GR=($TRACELLM eval grid --model run --tokenizer tok.bin --format recursive --max-tokens 200 --threads 1 --constrained on)
check grid_run "${GR[@]}" --samples 3 --max-edges 6 --temperatures 0,0.8 --out g1
cat > cells.py <<'EOF'
import json, sys
def feasible(max_edges):  # PAPER.md §6: depth <= num_edges, depth 1 only with one edge
    return {(e, d) for e in range(1, max_edges + 1) for d in range(1, 7) if d <= e and (d > 1 or e == 1)}
EOF
cat > grid_check.py <<'EOF'
import json, sys
from cells import feasible
out, max_edges, samples, labels = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(",")
j = json.load(open(f"{out}/grid.json"))
cells = feasible(max_edges)
assert j["cells"] == len(cells) and j["samples_per_cell"] == samples and j["max_edges"] == max_edges, j
assert [r["label"] for r in j["runs"]] == labels, [r["label"] for r in j["runs"]]
for r in j["runs"]:
    grid = {(e, d): (n, ok) for e, d, n, ok in r["grid"]}
    assert set(grid) == cells, sorted(set(grid) ^ cells)
    assert all(n == samples for n, _ in grid.values()), grid
    assert r["samples"] == samples * len(cells) and r["accurate"] == sum(ok for _, ok in grid.values()), r
    assert abs(r["accuracy"] - r["accurate"] / r["samples"]) < 1e-6, r
    assert (r["accuracy_edges_gt15"] is None) == (max_edges <= 15) and (r["accuracy_edges_le15"] is not None), r
    assert r["valid"] <= r["assembled"] <= r["samples"] and r["accurate"] <= r["valid"], r
    assert (r["generated"] <= r["samples"]) if r["label"] == "greedy" else r["generated"] == r["samples"], r
    lines = [json.loads(l) for l in open(f"{out}/samples_{r['label']}.jsonl")]
    assert len(lines) == r["samples"], (len(lines), r["samples"])
    asked = {}
    for g in lines:
        q = g["request"]
        asked[(q["num_edges"], q["depth"])] = asked.get((q["num_edges"], q["depth"]), 0) + 1
        assert g["check"]["assembled"] == bool(g["edges"]), g
    assert asked == {c: samples for c in cells}, asked
    assert sorted(int(g["trace_id"][2:]) for g in lines) == list(range(r["samples"]))
md, html = open(f"{out}/grid.md").read(), open(f"{out}/grid.html").read()
assert "## Accuracy by depth" in md and all(f"Cells, {l}" in md for l in labels), md[:400]
assert html.count("<svg") == len(labels) and "<table>" in html, html.count("<svg")
print("grid ok:", [(r["label"], r["samples"], r["generated"], r["accurate"]) for r in j["runs"]])
EOF
check grid_report "$PY" grid_check.py g1 6 3 greedy,t0.8
check grid_md_greedy_note grep -q "Greedy decoding depends on the prompt only" g1/grid.md
check grid_no_external_assets bash -c "! grep -qE '(src|href)=\"(http|//)' g1/grid.html"
if command -v rsvg-convert >/dev/null; then  # every heatmap is well-formed SVG
  "$PY" -c "
import re, sys
for i, s in enumerate(re.findall(r'<svg.*?</svg>', open('g1/grid.html').read(), re.S)): open(f'heat{i}.svg', 'w').write(s)"
  check grid_svg_renders bash -c 'for f in heat*.svg; do rsvg-convert "$f" -o "${f%.svg}.png" || exit 1; done'
else
  skip grid_svg_renders "rsvg-convert absent (apt-get install librsvg2-bin)"
fi

# every sample is scored as `tracellm eval` scores the same file
for l in greedy t0.8; do
  check grid_eval_agrees_$l bash -c "$TRACELLM eval --real prep/val.jsonl --synthetic g1/samples_$l.jsonl --out ev_$l >/dev/null && $PY -c \"
import json
m = json.load(open('ev_$l/metrics.json')); r = next(r for r in json.load(open('g1/grid.json'))['runs'] if r['label'] == '$l')
assert abs(m['accuracy'] - r['accuracy']) < 1e-6 and m['requests'] == r['samples'], (m['accuracy'], r['accuracy'])
assert sorted(map(tuple, m['grid'])) == sorted(map(tuple, r['grid'])), (m['grid'], r['grid'])
assert abs(m['num_edges_match'] - r['num_edges_match']) < 1e-6 and abs(m['depth_match'] - r['depth_match']) < 1e-6
\""
done

# the samples are what `tracellm generate` writes for the same requests, in the same order, with the same seed
"$PY" -c "
import json
for l in open('g1/samples_t0.8.jsonl'):
    q = json.loads(l)['request']
    print(json.dumps({'service': q['service'], 'num_edges': q['num_edges'], 'depth': q['depth']}))" > grid_prompts.jsonl
GEN=($TRACELLM generate --model run --tokenizer tok.bin --format recursive --prompts grid_prompts.jsonl --retries 0 --max-tokens 200 --threads 1 --seed 1)
check grid_generate_t08 "${GEN[@]}" --temperature 0.8 --out gen08.jsonl
check grid_same_as_generate_t08 cmp gen08.jsonl g1/samples_t0.8.jsonl
check grid_generate_greedy "${GEN[@]}" --temperature 0 --out gen0.jsonl
check grid_same_as_generate_greedy "$PY" -c "
import json
a = sorted(open('g1/samples_greedy.jsonl'), key=lambda l: int(json.loads(l)['trace_id'][2:]))
assert a == list(open('gen0.jsonl')), 'greedy grid samples differ from generate --temperature 0'"

# the paper's 136 cells; one service: greedy asks each cell once and counts it twice
SVC=$("$PY" -c "import json; print(json.loads(open('run/conditions.jsonl').readline())['service'])")
check grid_full_136 "${GR[@]}" --samples 2 --temperatures 0 --service "$SVC" --max-tokens 40 --out g136
check grid_full_136_report "$PY" grid_check.py g136 30 2 greedy
check grid_greedy_once_per_prompt "$PY" -c "
import json
r = json.load(open('g136/grid.json'))['runs'][0]
assert r['generated'] == 136 and r['samples'] == 272 and r['distinct_graphs_per_cell'] <= 1, r"

# errors: a clear message, exit != 0, no report written
expect_fail grid_bad_temperature "temperatures 0,x" "${GR[@]}" --temperatures 0,x --out gbad
expect_fail grid_twice_temperature "given twice" "${GR[@]}" --temperatures 0.5,0.5 --out gbad
expect_fail grid_bad_samples "samples 0" "${GR[@]}" --samples 0 --out gbad
expect_fail grid_bad_format "expected instruct, recursive or tabular" "${GR[@]}" --format yaml --out gbad
expect_fail grid_bad_latency "expected none or drawn" "${GR[@]}" --latency some --out gbad
mkdir -p bare && cp run/model.bin bare/
expect_fail grid_needs_conditions "conditions.jsonl" $TRACELLM eval grid --model bare --tokenizer tok.bin --out gbad
expect_fail grid_drawn_latency_needs_conditions "latency drawn" $TRACELLM eval grid --model bare --tokenizer tok.bin --service S_1 --latency drawn --out gbad
expect_fail grid_missing_model "nothere" $TRACELLM eval grid --model nothere --tokenizer tok.bin --service S_1 --out gbad
check grid_no_partial_output bash -c "! ls gbad/grid.* gbad/samples_* 2>/dev/null | grep -q ."

# ---- 2. GReaT: the tabular model through generate and eval, and the grid ----
check great_generate $TRACELLM generate --model great --tokenizer tok.bin --format tabular -n 12 --from-graphs prep/val.jsonl \
  --seed 5 --threads 1 --max-tokens 250 --out great.jsonl --summary great_summary.json
check great_generate_counts "$PY" -c "
import json
s = json.load(open('great_summary.json'))
assert s['format'] == 'tabular' and not s['constrained'], s
assert s['requested'] == s['written'] == 12 and s['assembled'] + s['not_assembled'] == 12, s
assert sum(s['layer_failures'].values()) == s['not_assembled'], s   # every graph that did not parse is counted once
lines = [json.loads(l) for l in open('great.jsonl')]
assert len(lines) == 12 and all('request' in g and 'check' in g for g in lines)
assert sum(g['check']['assembled'] for g in lines) == s['assembled']"
check great_eval $TRACELLM eval --real prep/val.jsonl --synthetic great.jsonl --train prep/train.jsonl --out great_report
check great_eval_report "$PY" -c "
import json
m = json.load(open('great_report/metrics.json'))
assert m['n_synthetic'] == 12 and m['requests'] == 12 and 0 <= m['accuracy'] <= m['validity'] + 1e-9, m"
check great_grid $TRACELLM eval grid --model great --tokenizer tok.bin --format tabular --samples 2 --max-edges 4 \
  --temperatures 0,1 --max-tokens 250 --threads 1 --out great_grid
check great_grid_report "$PY" grid_check.py great_grid 4 2 greedy,t1

# ---- 3. scripts/reproduce_paper.sh ----
RP=(bash "$REPO/scripts/reproduce_paper.sh" --tracellm "$TRACELLM")
check repro_help bash -c "${RP[*]} --help | grep -q 'stages: download prepare tokenizer shards pretrain sft great baseline generate eval grid summary'"
expect_fail repro_unknown_option "unknown option '--frobnicate'" "${RP[@]}" --frobnicate
expect_fail repro_bad_from "--from nope: unknown stage" "${RP[@]}" --dry-run --from nope
expect_fail repro_bad_device "--device tpu: expected cpu or cuda" "${RP[@]}" --dry-run --device tpu
expect_fail repro_bad_files "--files 0" "${RP[@]}" --dry-run --files 0
expect_fail repro_from_after_to "comes after" "${RP[@]}" --dry-run --from grid --to shards
expect_fail repro_missing_value "--work needs a value" "${RP[@]}" --work
"${RP[@]}" --dry-run --work dry --device cuda > dry.txt 2>&1
check repro_dry_run_ok test $? -eq 0
check repro_dry_run_prints_everything "$PY" -c "
t = open('dry.txt').read()
for s in ['https://aliopentrace.oss-cn-beijing.aliyuncs.com/v2022MicroservicesTraces/CallGraph/CallGraph_0.tar.gz',
          'CallGraph_19.tar.gz', 'prepare --input', 'tokenizer train', '--format tabular', 'train --sft --init',
          '--model d12', 'eval grid --model', 'baseline sample', 'eval --real', '--device cuda', 'dry run: nothing was run']:
    assert s in t, s
assert 'CallGraph_20.tar.gz' not in t
assert t.count('==== ') == 12, t.count('==== ')"
check repro_dry_run_writes_nothing test ! -e dry
check repro_dry_run_files bash -c "${RP[*]} --dry-run --work dry --files 2 --to download | grep -c 'CallGraph_[0-9]*.tar.gz' | grep -qx 2"
# a completed stage is skipped; --from redoes it and what follows
mkdir -p done/.done done/raw && : > done/raw/CallGraph_0.tar.gz && : > done/.done/download
check repro_skips_done bash -c "${RP[*]} --dry-run --work done --files 1 --to prepare | grep -q 'download: done before'"
check repro_from_redoes bash -c "${RP[*]} --dry-run --work done --files 1 --from download --to prepare | grep -q 'would remove done/.done/download'"
check repro_done_needs_outputs bash -c "rm done/raw/CallGraph_0.tar.gz; ${RP[*]} --dry-run --work done --files 1 --to download | grep -q 'curl\|wget'"
# no network here (or a closed port): the download stage fails clearly and marks nothing done
expect_fail repro_download_fails "cannot download http://127.0.0.1:9/CallGraph/CallGraph_0.tar.gz" \
  "${RP[@]}" --work nonet --files 1 --base-url http://127.0.0.1:9 --to download
check repro_download_not_marked test ! -e nonet/.done/download

# the whole pipeline, for real, on one synthetic CallGraph file (--input instead of the download)
mkdir -p mini_in
$TRACELLM synth --graphs 300 --seed 11 --services 4 --microservices 40 --out mini_in/CallGraph_0.csv --quiet >/dev/null
(cd mini_in && tar czf CallGraph_0.tar.gz CallGraph_0.csv && rm CallGraph_0.csv)
MINI=("${RP[@]}" --work mini --input mini_in --files 1 --model d2 --layers 2 --heads 2 --embd 64 --seq-len 256 --batch 4
      --grad-accum 1 --lr 3e-3 --gen 12 --grid-samples 1 --temperatures 0 --threads 1)
check repro_mini_pipeline "${MINI[@]}"
check repro_mini_outputs "$PY" -c "
import json, os
for s in 'download prepare tokenizer shards pretrain sft great baseline generate eval grid summary'.split():
    assert os.path.exists(f'mini/.done/{s}'), s
for g in ('tracellm', 'great', 'baseline'):
    m = json.load(open(f'mini/eval/{g}/metrics.json')); assert m['n_synthetic'] == 12, (g, m['n_synthetic'])
for m in ('sft', 'pretrain', 'great'):
    j = json.load(open(f'mini/grid/{m}/grid.json')); assert j['cells'] == 136 and j['runs'][0]['samples'] == 136, m
assert json.load(open('mini/grid/baseline/metrics.json'))['requests'] == 136
t = open('mini/summary.md').read(); assert 'kl_top100' in t and 'baseline:' in t, t"
check repro_mini_resumes bash -c "${MINI[*]} | grep -c 'done before' | grep -qx 12"
check repro_mini_from_eval bash -c "${MINI[*]} --from eval > again.txt && grep '^==== ' again.txt | tr '\n' ' ' | grep -qx '==== eval ==== grid ==== summary '"
done_tests
