#!/usr/bin/env bash
# `tracellm eval` and `tracellm baseline` as a user runs them: fit the probabilistic baseline on
# prepared graphs, sample (unconditioned and from prompts), evaluate against the held-out graphs,
# check the report and the numbers against an independent Python implementation
# (scripts/reference/eval_ref.py), and check the errors on bad input.
source "$(dirname "$0")/lib.sh"
T=$TMP
PY=/usr/bin/python3

# ---- a corpus of graphs: the built-in demo corpus through prepare ----
if ! "$TRACELLM" synth --help >/dev/null 2>&1 || ! "$TRACELLM" prepare --help >/dev/null 2>&1; then
  skip e2e_eval "tracellm synth/prepare are not built in this tree"
  done_tests
fi
"$TRACELLM" synth --graphs 3000 --seed 21 --out "$T/c.csv.gz" >/dev/null 2>&1 &&
  "$TRACELLM" prepare --input "$T/c.csv.gz" --out "$T/p" --quiet >/dev/null 2>&1
check corpus_prepared test -s "$T/p/train.jsonl" -a -s "$T/p/val.jsonl"

check baseline_fit "$TRACELLM" baseline fit --graphs "$T/p/train.jsonl" --out "$T/base.model"
check baseline_sample "$TRACELLM" baseline sample --model "$T/base.model" -n 1500 --seed 4 --out "$T/gen.jsonl"
check sampled_count test "$(wc -l <"$T/gen.jsonl")" -eq 1500
check sampled_all_valid "$TRACELLM" graphcheck --in "$T/gen.jsonl"
"$TRACELLM" baseline sample --model "$T/base.model" -n 1500 --seed 4 --out "$T/gen_again.jsonl" >/dev/null
"$TRACELLM" baseline sample --model "$T/base.model" -n 1500 --seed 5 --out "$T/gen_other.jsonl" >/dev/null
check same_seed_same_graphs cmp -s "$T/gen.jsonl" "$T/gen_again.jsonl"
check other_seed_other_graphs bash -c "! cmp -s '$T/gen.jsonl' '$T/gen_other.jsonl'"

out=$("$TRACELLM" eval --real "$T/p/val.jsonl" --synthetic "$T/gen.jsonl" --train "$T/p/train.jsonl" --out "$T/rep" 2>&1)
check eval_runs test $? -eq 0
check eval_prints_table grep -q "KL top-100 calls" <<<"$out"
check report_files test -s "$T/rep/report.md" -a -s "$T/rep/report.html" -a -s "$T/rep/metrics.json"
# the HTML is self-contained: 6 inline SVG plots, tables, no external reference
check html_has_plots test "$(grep -c '<svg' "$T/rep/report.html")" -eq 6
check html_has_tables grep -q '<table>' "$T/rep/report.html"
check html_no_external_assets bash -c "! grep -qE '(src|href)=\"(http|//)' '$T/rep/report.html'"
if command -v rsvg-convert >/dev/null; then  # every plot is well-formed SVG
  $PY - "$T/rep/report.html" "$T" <<'EOF'
import re, sys
for i, s in enumerate(re.findall(r"<svg.*?</svg>", open(sys.argv[1]).read(), re.S)):
    open(f"{sys.argv[2]}/plot{i}.svg", "w").write(s)
EOF
  ok=1; for f in "$T"/plot*.svg; do rsvg-convert "$f" -o "${f%.svg}.png" 2>/dev/null || ok=0; done
  check svg_plots_render test $ok -eq 1
else
  skip svg_plots_render "rsvg-convert absent (apt-get install librsvg2-bin)"
fi

# a browser shows the tables and the plots (Debian's chromium, headless)
CHROME=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -n "$CHROME" ]; then
  timeout 120 "$CHROME" --headless --no-sandbox --disable-gpu --dump-dom "file://$T/rep/report.html" >"$T/dom.html" 2>/dev/null
  check browser_shows_tables test "$(grep -o '<table>' "$T/dom.html" | wc -l)" -ge 4
  check browser_shows_plots test "$(grep -o '<svg' "$T/dom.html" | wc -l)" -eq 6
  timeout 120 "$CHROME" --headless --no-sandbox --disable-gpu --window-size=1200,4000 --screenshot="$T/report.png" \
    "file://$T/rep/report.html" >/dev/null 2>&1
  check browser_screenshot test "$(stat -c %s "$T/report.png" 2>/dev/null || echo 0)" -gt 50000
else
  skip browser_render "chromium is absent (apt-get install chromium)"
fi

# ---- the numbers agree with an independent implementation ----
if $PY -c 'import numpy' 2>/dev/null; then
  $PY scripts/reference/eval_ref.py "$T/p/val.jsonl" "$T/gen.jsonl" "$T/p/train.jsonl" >"$T/ref.json"
  check metrics_match_reference $PY - "$T/rep/metrics.json" "$T/ref.json" <<'EOF'
import json, sys
ours, ref = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
bad = []
def cmp(name, a, b):
    if abs(a - b) > 1e-5 * max(1.0, abs(b)):
        bad.append(f"{name}: ours {a} reference {b}")
cmp("kl_top100", ours["kl_top100"], ref["kl_top100"])
for k in ref["heavy_hitters"]: cmp("hh" + k, ours["heavy_hitters"][k], ref["heavy_hitters"][k])
for k in ref["emd"]:
    cmp("emd " + k, ours["emd"][k], ref["emd"][k])
    cmp("emd_normalized " + k, ours["emd_normalized"][k], ref["emd_normalized"][k])
cmp("memorization_exact", ours["memorization_exact"], ref["memorization_exact"])
cmp("memorization_structure", ours["memorization_structure"], ref["memorization_structure"])
print("\n".join(bad)); sys.exit(1 if bad else 0)
EOF
else
  skip metrics_match_reference "/usr/bin/python3 with numpy is absent"
fi

# identical sets: KL 0 and every EMD 0
"$TRACELLM" eval --real "$T/p/val.jsonl" --synthetic "$T/p/val.jsonl" --out "$T/self" >/dev/null
check self_kl_zero grep -q '"kl_top100": 0.000000' "$T/self/metrics.json"
check self_emd_zero grep -q '"emd": {"in_degree": 0.000000, "out_degree": 0.000000, "response_time": 0.000000, "graph_size": 0.000000, "depth": 0.000000}' "$T/self/metrics.json"

# ---- conditioned sampling: JSON prompts and paper condition lines ----
cat >"$T/prompts.txt" <<'EOF'
{"num_edges": 3, "depth": 2, "latency": 40}
{"num_edges": 6, "depth": 3}
[GENERATE GRAPH]id:S_000000001/latency:25/num_edges:4/depth:2
### Question: start_node:USER/num_edges:5/start_edge_id:0/num_subgraphs:1/latency:30/remaining_depth:2
{"num_edges": 2, "depth": 2, "high_latency": true, "include_edge": "MS_1,MS_2,rpc"}
EOF
check sample_prompts "$TRACELLM" baseline sample --model "$T/base.model" --prompts "$T/prompts.txt" --seed 2 --out "$T/cond.jsonl"
check prompts_carry_request grep -q '"request":{"num_edges":5,"depth":3,"latency":30}' "$T/cond.jsonl"
check paper_line_service grep -q '"service":"S_000000001"' "$T/cond.jsonl"
"$TRACELLM" eval --real "$T/p/val.jsonl" --synthetic "$T/cond.jsonl" --out "$T/rcond" >/dev/null
check instructions_carried grep -q '"request":{"num_edges":2,"depth":2,"high_latency":true,"include_edge":\["MS_1","MS_2","rpc"\]}' "$T/cond.jsonl"
check eval_scores_requests grep -q '"requests": 5' "$T/rcond/metrics.json"
check eval_scores_include_edge grep -q '"include_edge_asked": 1' "$T/rcond/metrics.json"
check requests_met grep -q '"accuracy": 1.000000' "$T/rcond/metrics.json"

# high latency against the training statistics (`tracellm stats`), as generation defines it
if "$TRACELLM" stats --help >/dev/null 2>&1; then
  "$TRACELLM" stats --graphs "$T/p/train.jsonl" --out "$T/stats.json" >/dev/null 2>&1
  for i in $(seq 40); do echo '{"high_latency": true}'; done >"$T/hl.txt"
  "$TRACELLM" baseline sample --model "$T/base.model" --prompts "$T/hl.txt" --seed 3 --out "$T/hl.jsonl" >/dev/null
  "$TRACELLM" eval --real "$T/p/val.jsonl" --synthetic "$T/hl.jsonl" --stats "$T/stats.json" --out "$T/rhl" >/dev/null
  check high_latency_scored_with_stats $PY -c "import json,sys; m=json.load(open(sys.argv[1])); sys.exit(0 if m['high_latency_scored'] >= 20 and 0 < m['high_latency_met'] < 1 else 1)" "$T/rhl/metrics.json"
  expect_fail bad_stats_file "nostats.json" "$TRACELLM" eval --real "$T/p/val.jsonl" --synthetic "$T/hl.jsonl" --stats "$T/nostats.json" --out "$T/rhl2"
else
  skip high_latency_scored_with_stats "tracellm stats is not built in this tree"
fi

# the paper's accuracy grid protocol (136 cells of num_edges 1..30 x depth 1..6), 2 prompts a cell
for e in $(seq 30); do for d in $(seq 6); do
  if [ "$d" -le "$e" ] && { [ "$d" -gt 1 ] || [ "$e" -eq 1 ]; }; then echo "{\"num_edges\":$e,\"depth\":$d}"; echo "{\"num_edges\":$e,\"depth\":$d}"; fi
done; done >"$T/grid.txt"
check grid_has_136_cells test "$(wc -l <"$T/grid.txt")" -eq 272
"$TRACELLM" baseline sample --model "$T/base.model" --prompts "$T/grid.txt" --seed 1 --out "$T/grid.jsonl" >/dev/null 2>&1
"$TRACELLM" eval --real "$T/p/val.jsonl" --synthetic "$T/grid.jsonl" --out "$T/rgrid" >/dev/null
check grid_heatmap grep -q "Accuracy by requested num_edges and depth" "$T/rgrid/report.html"
check grid_in_metrics $PY -c "import json,sys; g=json.load(open(sys.argv[1]))['grid']; sys.exit(0 if len(g) == 136 and sum(c[2] for c in g) == 272 else 1)" "$T/rgrid/metrics.json"

# ---- the authors' published distributions ----
if have_shared; then
  check fit_erms "$TRACELLM" baseline fit --graphs "$T/p/train.jsonl" --erms "$SHARED/erms" --out "$T/erms.model"
  "$TRACELLM" baseline sample --model "$T/erms.model" -n 500 --seed 1 --out "$T/erms.jsonl" >/dev/null
  check erms_samples_valid "$TRACELLM" graphcheck --in "$T/erms.jsonl"
else
  skip fit_erms "../shared/data is absent"
fi

# ---- bad input: clear errors, non-zero exit, no half-written output ----
head -c 2000 "$T/base.model" >"$T/trunc.model"
expect_fail truncated_model "trunc.model.*(truncated|payload)" "$TRACELLM" baseline sample --model "$T/trunc.model" -n 5 --out "$T/x.jsonl"
cp "$T/base.model" "$T/flip.model"; printf '\x00\x00\x00\x00' | dd of="$T/flip.model" bs=1 seek=3000 conv=notrunc 2>/dev/null
expect_fail corrupt_model "CRC32" "$TRACELLM" baseline sample --model "$T/flip.model" -n 5 --out "$T/x.jsonl"
check no_output_on_failure test ! -e "$T/x.jsonl"
head -3 "$T/gen.jsonl" >"$T/bad.jsonl"; echo '{"service":"S","edges":[["0","tcp","USER","MS",0,1]]}' >>"$T/bad.jsonl"
expect_fail bad_graph_line "bad.jsonl:4: not a call graph" "$TRACELLM" eval --real "$T/p/val.jsonl" --synthetic "$T/bad.jsonl" --out "$T/rbad"
check no_report_on_failure test ! -e "$T/rbad"
echo '{"service":"S","edges":[["0","http","USER","MS",0,1]],"request":{"depth":"two"}}' >"$T/badreq.jsonl"
expect_fail bad_request "badreq.jsonl:1: bad request" "$TRACELLM" eval --real "$T/p/val.jsonl" --synthetic "$T/badreq.jsonl" --out "$T/rbad"
printf '{"num_edges": 3}\n{"num_edges": "x"}\n' >"$T/badprompt.txt"
printf '{"include_edge": "A,B,tcp"}\n' >"$T/badprompt2.txt"
expect_fail bad_prompt_edge "badprompt2.txt:1: bad prompt.*include_edge" "$TRACELLM" baseline sample --model "$T/base.model" --prompts "$T/badprompt2.txt" --out "$T/x.jsonl"
expect_fail bad_prompt "badprompt.txt:2: bad prompt" "$TRACELLM" baseline sample --model "$T/base.model" --prompts "$T/badprompt.txt" --out "$T/x.jsonl"
expect_fail n_and_prompts "exactly one of" "$TRACELLM" baseline sample --model "$T/base.model" -n 3 --prompts "$T/prompts.txt" --out "$T/x.jsonl"
: >"$T/empty.jsonl"
expect_fail fit_no_graphs "no valid graph" "$TRACELLM" baseline fit --graphs "$T/empty.jsonl" --out "$T/empty.model"
check no_model_on_failure test ! -e "$T/empty.model"
expect_fail eval_missing_option "missing required option" "$TRACELLM" eval --real "$T/p/val.jsonl" --out "$T/r"
expect_fail erms_missing_dir "nonexistent/depthDistribution.csv" "$TRACELLM" baseline fit --graphs "$T/p/train.jsonl" --erms "$T/nonexistent" --out "$T/e.model"

# ---- real data: the v2022 sample through prepare, then fit/sample/eval ----
if have_shared; then
  "$TRACELLM" prepare --input "$SHARED/alibaba/2022-shuffled-sample-traces-small.csv.gz" --out "$T/real" --val-fraction 0.3 --quiet >/dev/null 2>&1
  check real_prepared test -s "$T/real/train.jsonl" -a -s "$T/real/val.jsonl"
  "$TRACELLM" baseline fit --graphs "$T/real/train.jsonl" --out "$T/real.model" >/dev/null &&
    "$TRACELLM" baseline sample --model "$T/real.model" -n 500 --seed 1 --out "$T/real_gen.jsonl" >/dev/null
  check real_samples_valid "$TRACELLM" graphcheck --in "$T/real_gen.jsonl"
  check real_eval "$TRACELLM" eval --real "$T/real/val.jsonl" --synthetic "$T/real_gen.jsonl" --train "$T/real/train.jsonl" --out "$T/real_rep"
else
  skip real_eval "../shared/data is absent"
fi
done_tests
