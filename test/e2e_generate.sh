#!/usr/bin/env bash
# `tracellm generate` end to end: synth -> prepare -> tokenizer -> shards -> a tiny model trained
# for a few steps -> generate. With --constrained on every written graph must be valid and match
# its request (the constraint's guarantee, however little the model learned); the output must not
# depend on the batch size, on prefix reuse or on the KV cache (--naive); the CSV must read back
# through `prepare` into the same graphs; bad input must fail with a clear message, no output left.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../scripts/lib_corpus.sh"
PY=/usr/bin/python3
case $TRACELLM in /*) ;; *) TRACELLM=$PWD/$TRACELLM ;; esac
for cmd in synth prepare render tokenizer shards train generate graphcheck; do
  if ! $TRACELLM $cmd --help >/dev/null 2>&1; then skip e2e_generate "tracellm $cmd is not built"; done_tests; fi
done
if [ ! -x "$PY" ]; then skip e2e_generate "needs /usr/bin/python3 to read the outputs"; done_tests; fi

check generate_help bash -c "$TRACELLM generate --help | grep -q -- '--constrained'"

# ---- a tiny model on the synthetic corpus (recursive format) ----
cd "$TMP"
synth_corpus 400 3 512 recursive 256
# one thread: tiny tensors, and on a loaded machine OpenMP barriers would dominate
check generate_setup_train $TRACELLM train --data sh/train_000000.bin --out run --layers 2 --heads 2 --embd 64 \
  --seq-len 256 --batch 4 --steps 25 --lr 3e-3 --warmup 3 --print-every 0 --threads 1
G=($TRACELLM generate --model run --tokenizer tok.bin --format recursive --seed 5 --max-tokens 200 --threads 1)

# ---- constrained: every assembled graph is valid and matches its request; every request has a line ----
check generate_constrained "${G[@]}" -n 12 --from-graphs prep/val.jsonl --batch 8 --out g8.jsonl --csv g8.csv --summary s8.json
cat > valid.py <<'EOF'
import json, re
s = json.load(open("s8.json"))
lines = [json.loads(l) for l in open("g8.jsonl")]
assert s["requested"] == 12 and s["written"] == len(lines) == 12, s
gs = [g for g in lines if g["check"]["assembled"]]
assert len(gs) == s["assembled"] >= 8, f"only {len(gs)} of 12 graphs assembled: {s}"
for g in lines:  # a request that could not be answered is a line without edges, marked so
    assert g["check"]["assembled"] == bool(g["edges"]) and (g["edges"] or not g["check"]["valid"]), g
for g in gs:
    r, c, e = g["request"], g["check"], g["edges"]
    depth = max(x[0].count(".") + 1 for x in e)
    assert c["valid"] and c["match"], g
    assert len(e) == r["num_edges"] and depth == r["depth"], g
    ids = {x[0] for x in e}
    assert "0" in ids and all(x[0].rsplit(".", 1)[0] in ids for x in e if "." in x[0]), g
    for x in e:  # free destinations (no --names): an identifier of at most 64 characters, no keyword
        assert re.fullmatch(r"[A-Za-z0-9_]{1,64}", x[3]) and not any(k in x[3] for k in ("latency", "num_", "edge_id", "subgraph")), x
    for x in e:  # a child's source is its parent's destination, and it finishes within it
        if "." in x[0]:
            p = next(y for y in e if y[0] == x[0].rsplit(".", 1)[0])
            assert x[2] == p[3] and x[4] + x[5] <= p[4] + p[5], (x, p)
EOF
check generate_constrained_valid "$PY" valid.py
grep -v '"edges":\[\]' g8.jsonl > g8_assembled.jsonl
check generate_graphcheck $TRACELLM graphcheck --in g8_assembled.jsonl

# ---- --names: every destination is a microservice of the training graphs ----
check generate_names "${G[@]}" -n 12 --from-graphs prep/val.jsonl --batch 8 --names prep/train.jsonl --out gnm.jsonl --summary snm.json
cat > names.py <<'EOF'
import json
train = {n for l in open("prep/train.jsonl") for e in json.loads(l)["edges"] for n in (e[2], e[3]) if n != "USER"}
gs = [g for g in map(json.loads, open("gnm.jsonl")) if g["check"]["assembled"]]
assert len(gs) >= 8, f"only {len(gs)} of 12 graphs assembled"
dsts = [x[3] for g in gs for x in g["edges"]]
bad = [d for d in dsts if d not in train]
assert not bad, f"{len(bad)} of {len(dsts)} destinations are not training names: {bad[:5]}"
assert all(g["check"]["valid"] and g["check"]["match"] for g in gs), [g["check"] for g in gs]
free = [x[3] for l in open("g8.jsonl") for x in json.loads(l)["edges"] if x[3] not in train]
print(f"names: {len(dsts)} destinations, all training names; without --names {len(free)} were not")
EOF
check generate_names_in_train "$PY" names.py
expect_fail generate_names_stats "microservices" "${G[@]}" -n 2 --service S_1 --names prep/stats.json --out x.jsonl
expect_fail generate_names_missing "nothere.jsonl" "${G[@]}" -n 2 --service S_1 --names nothere.jsonl --out x.jsonl

# ---- --callees: each layer calls only what the training graphs show its caller calling (a root:
# its service's entry microservices); with --canonical-order (edges in the training order) too ----
check generate_callees "${G[@]}" -n 12 --from-graphs prep/val.jsonl --batch 8 --names prep/train.jsonl \
  --callees prep/train.jsonl --canonical-order --out gcl.jsonl
cat > callees.py <<'EOF'
import json, sys
# (key, callee) -> [most edges below such a call, longest response time, types] (--callee-bounds)
calls, entries = {}, {}
def parent(rpc): return rpc.rsplit(".", 1)[0] if "." in rpc else ""
def subtree_sizes(edges):
    below = {e[0]: 0 for e in edges}
    for e in edges:
        p = e[0].split(".")
        for k in range(1, len(p)): below[".".join(p[:k])] += 1
    return below
def note(table, key, e, n):
    b = table.setdefault(key, {}).setdefault(e[3], [0, 0, set()])
    b[0] = max(b[0], n); b[1] = max(b[1], e[5]); b[2].add(e[1])
for l in open("prep/train.jsonl"):
    g = json.loads(l); below = subtree_sizes(g["edges"])
    for e in g["edges"]:
        note(calls, e[2], e, below[e[0]])
        if "." not in e[0]: note(entries, g["service"], e, below[e[0]])
names = {n for s in calls.values() for n in s} | set(calls) - {"USER"}
gs = [g for g in map(json.loads, open(sys.argv[1])) if g["check"]["assembled"]]
assert len(gs) >= 8, f"only {len(gs)} of 12 graphs assembled"
n = fallback = only = narrowed = 0
bad = {"callee": 0, "size": 0, "type": 0, "rt": 0}
for g in gs:
    below = subtree_sizes(g["edges"])
    kids = {}
    for e in g["edges"]: kids[parent(e[0])] = kids.get(parent(e[0]), 0) + 1
    for e in g["edges"]:
        n += 1
        allowed = entries.get(g["service"]) if "." not in e[0] else None
        if allowed is None: allowed = calls.get(e[2])   # the caller's observed callees
        if allowed is None: fallback += 1; bad["callee"] += e[3] not in names; continue
        if e[3] not in allowed: bad["callee"] += 1; continue
        most, rt, types = allowed[e[3]]
        bad["type"] += e[1] not in types
        bad["rt"] += "." in e[0] and e[5] > rt   # the root edge's time is the request's latency
        # a layer of one edge carries its whole subtree: only callees seen carrying that many
        if kids[parent(e[0])] == 1:
            need = min(below[e[0]], max(b[0] for b in allowed.values()))
            fit = {d for d, b in allowed.items() if b[0] >= need}
            only += 1; narrowed += len(fit) < len(allowed)
            bad["size"] += e[3] not in fit
assert not any(bad.values()), f"of {n} calls, outside the observed bounds: {bad}"
assert narrowed > 0, "no choice was narrowed by size: the check tests nothing"
assert all(g["check"]["valid"] and g["check"]["match"] for g in gs), [g["check"] for g in gs]
print(f"callees: {n} calls, all among their caller's observed callees ({fallback} by the names fallback), "
      f"by a type seen and within the longest response time seen; {only} only children, each a callee "
      f"seen carrying its subtree ({narrowed} choices narrowed by size)")
EOF
check generate_callees_observed "$PY" callees.py gcl.jsonl
# without the bounds the same model breaks them (callees too small for their subtree, types or
# response times never seen for the pair)
check generate_callee_bounds_off "${G[@]}" -n 12 --from-graphs prep/val.jsonl --batch 8 --names prep/train.jsonl \
  --callees prep/train.jsonl --callee-bounds off --canonical-order --out gcl_off.jsonl
expect_fail generate_callee_bounds_matter "outside the observed bounds" "$PY" callees.py gcl_off.jsonl
expect_fail generate_callee_bounds_bad "expected on or off" "${G[@]}" -n 2 --service S_1 --callee-bounds maybe --out x.jsonl

# ---- the same graphs whatever the batch size, prefix reuse, and without the KV cache ----
check generate_batch3 "${G[@]}" -n 12 --from-graphs prep/val.jsonl --batch 3 --out g3.jsonl
check generate_batch_independent cmp g3.jsonl g8.jsonl
# graph i depends only on (seed, i): the first 4 of the naive loop are the first 4 of the engine
check generate_naive "${G[@]}" -n 4 --from-graphs prep/val.jsonl --naive --out gn.jsonl
check generate_naive_identical cmp gn.jsonl <(grep -E '"trace_id":"T_[0-3]"' g8.jsonl)
check generate_two_threads "${G[@]}" -n 3 --from-graphs prep/val.jsonl --threads 2 --out gt2.jsonl
check generate_thread_independent cmp gt2.jsonl <(grep -E '"trace_id":"T_[0-2]"' g8.jsonl)
check generate_no_prefix_cache "${G[@]}" -n 12 --from-graphs prep/val.jsonl --batch 5 --prefix-cache 0 --out gp.jsonl
check generate_prefix_cache_identical cmp gp.jsonl g8.jsonl

# ---- --number-temperature: numeric fields at their own temperature (constrained only) ----
# equal to --temperature (0.8, the default) it is the very same run; greedy numbers change the graphs
check generate_number_temp_same "${G[@]}" -n 12 --from-graphs prep/val.jsonl --batch 8 --temperature 0.8 --number-temperature 0.8 --out gnt.jsonl
check generate_number_temp_same_identical cmp gnt.jsonl g8.jsonl
check generate_number_temp_greedy "${G[@]}" -n 12 --from-graphs prep/val.jsonl --batch 8 --number-temperature 0 --out gn0.jsonl
check generate_number_temp_changes bash -c "! cmp -s gn0.jsonl g8.jsonl"
check generate_number_temp_valid "$PY" -c "
import json
gs = [g for g in map(json.loads, open('gn0.jsonl')) if g['check']['assembled']]
assert len(gs) >= 8 and all(g['check']['valid'] and g['check']['match'] for g in gs), [g['check'] for g in gs]"
check generate_number_temp_unconstrained_note bash -c "${G[*]} -n 1 --from-graphs prep/val.jsonl --constrained off --number-temperature 0.3 --out x.jsonl 2>&1 | grep -q 'number-temperature is ignored'"
expect_fail generate_number_temp_negative "number-temperature -1: must be a number >= 0" "${G[@]}" -n 2 --service S_1 --number-temperature -1 --out x.jsonl

# ---- --best-of K: sample i of a graph is the same whatever K, so best-of 8 chooses among a superset
# of best-of 4's samples (its kept graph is at least as likely), and sample 0 is the plain run's ----
check generate_best_of_1 "${G[@]}" -n 12 --from-graphs prep/val.jsonl --batch 8 --best-of 1 --out gb1.jsonl
check generate_best_of_1_identical cmp gb1.jsonl g8.jsonl
check generate_best_of_4 "${G[@]}" -n 12 --from-graphs prep/val.jsonl --batch 8 --best-of 4 --out gb4.jsonl --summary sb4.json
check generate_best_of_4_batch3 "${G[@]}" -n 12 --from-graphs prep/val.jsonl --batch 3 --best-of 4 --out gb4b3.jsonl
check generate_best_of_batch_independent cmp gb4.jsonl gb4b3.jsonl
check generate_best_of_8 "${G[@]}" -n 12 --from-graphs prep/val.jsonl --batch 8 --best-of 8 --out gb8.jsonl
cat > bestof.py <<'EOF'
import json
load = lambda f: [json.loads(l) for l in open(f)]
plain, b4, b8, s = load("g8.jsonl"), load("gb4.jsonl"), load("gb8.jsonl"), json.load(open("sb4.json"))
assert len(plain) == len(b4) == len(b8) == 12 and s["best_of"] == 4 and s["requested"] == s["written"] == 12, s
strip = lambda g: {**g, "check": {k: v for k, v in g["check"].items() if k not in ("samples", "kept", "logprob")}}
rank = lambda g: (g["check"]["match"], g["check"]["valid"], g["check"]["assembled"], g["check"]["logprob"])
moved = 0
for p, a, b in zip(plain, b4, b8):
    assert a["check"]["samples"] == 4 and 0 <= a["check"]["kept"] < 4 and b["check"]["samples"] == 8, (a["check"], b["check"])
    if a["check"]["kept"] == 0: assert strip(a) == p, (a, p)        # sample 0 is the plain run's graph
    else: moved += 1; assert strip(a) != p
    assert rank(b) >= rank(a), (a["check"], b["check"])               # a superset of samples
    if b["check"]["kept"] < 4: assert b == {**a, "check": {**a["check"], "samples": 8}}, (a, b)
    if a["check"]["assembled"]: assert a["check"]["logprob"] < 0, a["check"]
assert moved > 0, "best-of 4 kept sample 0 for every graph: the ranking did nothing"
print(f"best-of: {moved} of 12 graphs replaced by a more likely sample")
EOF
check generate_best_of_ranks "$PY" bestof.py
expect_fail generate_best_of_zero "best-of 0: expected 1..1024" "${G[@]}" -n 2 --service S_1 --best-of 0 --out x.jsonl

# ---- the CSV is Alibaba v2022 CallGraph: prepare reads it back into the same graphs ----
check generate_csv_header bash -c "head -1 g8.csv | grep -qx 'timestamp,traceid,service,rpc_id,rpctype,um,uminstanceid,interface,dm,dminstanceid,rt'"
check generate_csv_prepare $TRACELLM prepare --input g8.csv --out back --val-fraction 0 --keep-duplicates --quiet
check generate_csv_roundtrip "$PY" -c "
import json, re
# prepare zero-pads short MS_ ids (MS_%05d, PAPER.md §1), which a tiny model may write unpadded
pad = lambda n: 'MS_' + m.group(1).zfill(5) if (m := re.fullmatch(r'MS_(\\d+)', n)) else n
key = lambda d: (d['service'], tuple((e[0], e[1], pad(e[2]), pad(e[3]), e[4], e[5]) for e in d['edges']))
a = sorted(key(d) for d in map(json.loads, open('g8.jsonl')) if d['edges'])
b = sorted(key(json.loads(l)) for l in open('back/train.jsonl'))
assert a == b, (len(a), len(b))"

# ---- prompts files: JSONL root conditions and the paper's '### Question:' lines ----
printf '%s\n' '{"service":"S_000000001","num_edges":3,"depth":2,"latency":40}' \
  '### Question: [GENERATE GRAPH]id:S_000000002/num_edges:2/remaining_depth:1/latency:9' \
  '' 'id:S_000000003/num_edges:1/remaining_depth:0' > prompts.txt
check generate_prompts "${G[@]}" --prompts prompts.txt --out gp3.jsonl --retries 4
check generate_prompts_requests "$PY" -c "
import json
gs = [json.loads(l) for l in open('gp3.jsonl')]
want = {'S_000000001': (3, 2), 'S_000000002': (2, 2), 'S_000000003': (1, 1)}
assert gs, 'no graph'
for g in gs:
    r = g['request']
    assert (r['num_edges'], r['depth']) == want[g['service']], r
    assert g['check']['match'] and len(g['edges']) == r['num_edges'], g"

# ---- unconstrained and tabular paths run and account for every request ----
check generate_unconstrained "${G[@]}" -n 6 --from-graphs prep/val.jsonl --constrained off --out gu.jsonl --summary su.json
check generate_tabular "${G[@]}" -n 4 --service S_000000001 --num-edges 2 --format tabular --constrained off --out gt.jsonl --summary st.json
check generate_summaries "$PY" -c "
import json
for f in ('su.json', 'st.json'):
    s = json.load(open(f))
    assert s['assembled'] + s['not_assembled'] == s['requested'], s
    assert s['written'] == s['requested'] and s['tokens_generated'] > 0, s"

# ---- split layers (instruction format): a 17-edge, depth-2 request, whose second layer has 16
# current edges, over the release's 15. With a context of 2048 auto asks it whole; --split-threshold
# 15 asks it as <split> parts, which the constraint holds to a partition of the layer (so even an
# untrained model's graphs come out valid); with --ctx 700 it does not fit whole, and auto splits.
check generate_split_setup $TRACELLM train --data sh/train_000000.bin --out run2k --layers 1 --heads 2 --embd 32 \
  --seq-len 2048 --batch 1 --steps 2 --lr 1e-3 --warmup 1 --print-every 0 --threads 1
GS=($TRACELLM generate --model run2k --tokenizer tok.bin --format instruct --seed 3 --threads 1 -n 2 \
  --service S_000000001 --num-edges 17 --depth 2 --latency 9 --names prep/train.jsonl)
check generate_split_auto "${GS[@]}" --out sp_a.jsonl --summary sp_a.json
check generate_split_15 "${GS[@]}" --split-threshold 15 --out sp_15.jsonl --summary sp_15.json
check generate_split_small_ctx "${GS[@]}" --ctx 700 --out sp_c.jsonl --summary sp_c.json
check generate_split_counts "$PY" -c "
import json
s = {f: json.load(open('sp_%s.json' % f)) for f in ('a', '15', 'c')}
assert [s[f]['split_layers'] for f in ('a', '15', 'c')] == [0, 2, 2], s
for f in ('a', '15'):   # whole or in constrained parts, every graph valid and as requested
    assert s[f]['valid'] == s[f]['match'] == 2, s[f]
    for g in map(json.loads, open('sp_%s.jsonl' % f)):
        assert len(g['edges']) == 17 and max(e[0].count('.') + 1 for e in g['edges']) == 2, g"
expect_fail generate_bad_split "expected auto or a number" "${GS[@]}" --split-threshold sometimes --out x.jsonl

# ---- errors ----
expect_fail generate_needs_conditions "--service S" "${G[@]}" -n 2 --out x.jsonl
expect_fail generate_bad_format "expected instruct, recursive or tabular" "${G[@]}" -n 2 --service S_1 --format yaml --out x.jsonl
expect_fail generate_bad_constrained "expected on or off" "${G[@]}" -n 2 --service S_1 --constrained maybe --out x.jsonl
expect_fail generate_missing_model "nothere" $TRACELLM generate --model nothere --tokenizer tok.bin -n 1 --service S_1 --out x.jsonl
$TRACELLM tokenizer train --in train.txt --out tok2.bin --vocab-size 400 --quiet >/dev/null
expect_fail generate_tokenizer_mismatch "tokenizer mismatch" $TRACELLM generate --model run --tokenizer tok2.bin -n 1 --service S_1 --out x.jsonl
printf '%s\n' '{"service":"S_1","num_edges":2}' '{"service":"S_1","depth":"deep"}' > bad.txt
expect_fail generate_bad_prompt_line "bad.txt:2: .*depth" "${G[@]}" --prompts bad.txt --out x.jsonl
printf '%s\n' 'id:S_1/num_edges:two' > bad2.txt
expect_fail generate_bad_condition_line "bad2.txt:1: .*num_edges" "${G[@]}" --prompts bad2.txt --out x.jsonl
check generate_no_partial_output bash -c "! ls x.jsonl* 2>/dev/null | grep -q ."
done_tests
