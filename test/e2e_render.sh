#!/usr/bin/env bash
# `tracellm render` and `tracellm stats` as a user runs them: the paper's released texts read back
# into graphs, every format rendered and parsed back to the same graphs through the CLI, the same
# seed giving the same bytes, stats.json feeding the instruction builder, and bad input failing
# with the file and line named and no output left behind.
source "$(dirname "$0")/lib.sh"

check render_help bash -c "$TRACELLM render --help | grep -q -- '--split-threshold'"
check stats_help bash -c "$TRACELLM stats --help | grep -q -- '--merge-chunk'"
expect_fail render_needs_out "--out" $TRACELLM render --in x.jsonl --format tabular
expect_fail render_bad_format "tabular, recursive or instruction" $TRACELLM render --in /dev/null --format csv --out "$TMP/x.txt"
expect_fail render_bad_prob "probabilities" $TRACELLM render --in /dev/null --format tabular --keep-prob 2 --out "$TMP/x.txt"

# a small corpus of our own (no shared data needed): graphs written by hand, one with a wide layer
python3 - "$TMP/g.jsonl" <<'EOF' || exit 1
import json, random, sys
random.seed(5)
out = open(sys.argv[1], "w")
for k in range(300):
    edges = [["0", "http", "USER", "MS_%05d" % random.randrange(50), 0, random.randrange(100, 1000)]]
    kids = {"0": 0}
    for i in range(random.randrange(0, 40 if k % 7 else 70)):
        p = random.choice(edges) if k % 3 else edges[0]
        if p[0].count(".") >= 5: continue
        kids[p[0]] = kids.get(p[0], 0) + 1
        rid = "%s.%d" % (p[0], kids[p[0]])
        start = p[4] + random.randrange(0, p[5] + 1)
        rt = random.randrange(0, p[4] + p[5] - start + 1)
        edges.append([rid, random.choice(["rpc", "mc", "db", "http", "mq"]), p[3], "MS_%05d" % random.randrange(300), start, rt])
    def key(e): return [int(x) for x in e[0].split(".")]
    edges.sort(key=key)
    out.write(json.dumps({"trace_id": "T_%d" % k, "service": "S_%09d" % (k % 4), "edges": edges}) + "\n")
EOF
check stats_runs $TRACELLM stats --graphs "$TMP/g.jsonl" --out "$TMP/stats.json"
check stats_json_services python3 -c "import json,sys; s=json.load(open('$TMP/stats.json')); assert len(s['services'])==4 and all(v['graphs']==75 and v['latency_p90']<=v['latency_max'] for v in s['services'])"
for f in tabular recursive instruction; do
  check render_$f $TRACELLM render --in "$TMP/g.jsonl" --format $f --instruction-fraction 1 --stats "$TMP/stats.json" --seed 3 --out "$TMP/$f.txt"
  check parse_$f $TRACELLM render --parse "$TMP/$f.txt" --out "$TMP/$f.jsonl"
  check roundtrip_$f python3 -c "
import json
a=[json.loads(l) for l in open('$TMP/g.jsonl')]; b=[json.loads(l) for l in open('$TMP/$f.jsonl')]
assert len(a)==len(b), (len(a), len(b))
for x, y in zip(a, b): assert x['service']==y['service'] and x['edges']==y['edges'], x['trace_id']"
done
$TRACELLM render --in "$TMP/g.jsonl" --format recursive --seed 3 --out "$TMP/again.txt" 2>/dev/null
check render_same_seed_same_bytes cmp "$TMP/recursive.txt" "$TMP/again.txt"
check render_has_splits grep -q '^<split>$' "$TMP/recursive.txt"
check render_instruction_specials grep -q 'Include an edge from ' "$TMP/instruction.txt"
check render_instruction_jsonl bash -c "$TRACELLM render --in '$TMP/g.jsonl' --format instruction --instruction-fraction 1 --stats '$TMP/stats.json' --jsonl --seed 3 --out '$TMP/i.jsonl' 2>/dev/null &&
  [ \$(wc -l < '$TMP/i.jsonl') -eq \$(grep -c '^### Question: ' '$TMP/instruction.txt') ]"

# malformed text: the file and line are named, nothing is written
sed '5s/type is [a-z]*/type is tcp/' "$TMP/tabular.txt" > "$TMP/bad.txt"
expect_fail parse_names_line "bad.txt:5: edge: attribute 'type': unknown type 'tcp'" $TRACELLM render --parse "$TMP/bad.txt" --out "$TMP/bad.jsonl"
check parse_no_partial_output bash -c "! ls '$TMP'/bad.jsonl* 2>/dev/null | grep -q ."
head -n -1 "$TMP/recursive.txt" > "$TMP/cut.txt"
expect_fail parse_cut_text "cut.txt:[0-9]+: the layer of line [0-9]+ ends without </layer>" $TRACELLM render --parse "$TMP/cut.txt" --out "$TMP/cut.jsonl"
expect_fail parse_unknown_text "not a tabular, recursive or instruction text" $TRACELLM render --parse "$TMP/g.jsonl" --out "$TMP/x.jsonl"

if have_shared; then
  S=$SHARED/tracellm
  check paper_tabular_parses $TRACELLM render --parse "$S/tabular_dataset.txt" --out "$TMP/tab.jsonl"
  check paper_tabular_count bash -c "[ \$(wc -l < '$TMP/tab.jsonl') -eq 1089 ]"
  check paper_recursive_parses $TRACELLM render --parse "$S/recursive_dataset.txt" --out "$TMP/rec.jsonl"
  check paper_recursive_is_tabular_prefix bash -c "head -489 '$TMP/tab.jsonl' | cmp - '$TMP/rec.jsonl'"
  check paper_instruction_parses $TRACELLM render --parse "$S/recursive_instruction_dataset.txt" --out "$TMP/ins.jsonl"
  check paper_rerender_recursive bash -c "$TRACELLM render --in '$TMP/tab.jsonl' --format recursive --out '$TMP/r2.txt' 2>/dev/null &&
    $TRACELLM render --parse '$TMP/r2.txt' --out '$TMP/r2.jsonl' 2>/dev/null && cmp '$TMP/r2.jsonl' '$TMP/tab.jsonl'"
else
  skip paper_texts "../shared/data is absent"
fi
done_tests
