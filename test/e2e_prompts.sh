#!/usr/bin/env bash
# `tracellm prompts`: the root conditions of real graphs, the prompts file that generate and the
# baseline both answer. Each line must carry exactly its graph's service, edge count, depth and
# root response time; -n draws deterministically per seed; bad input fails without output.
. test/lib.sh
G=$TMP/g.jsonl
cat > "$G" <<'J'
{"trace_id":"T_1","service":"S_000000001","edges":[["0","http","USER","MS_00001",0,10],["0.1","mc","MS_00001","MS_00002",1,2],["0.2","rpc","MS_00001","MS_00003",3,5],["0.2.1","db","MS_00003","MS_00004",4,1]]}
{"trace_id":"T_2","service":"S_000000002","edges":[["0","http","USER","MS_00009",0,7]]}
J
check prompts_all "$TRACELLM" prompts --graphs "$G" --out "$TMP/p.jsonl"
check prompts_values grep -qx '{"service":"S_000000001","num_edges":4,"depth":3,"latency":10}' "$TMP/p.jsonl"
check prompts_values_2 grep -qx '{"service":"S_000000002","num_edges":1,"depth":1,"latency":7}' "$TMP/p.jsonl"
check prompts_one_per_graph test "$(wc -l < "$TMP/p.jsonl")" -eq 2
check prompts_draw "$TRACELLM" prompts --graphs "$G" -n 50 --seed 3 --out "$TMP/a.jsonl"
check prompts_draw_again "$TRACELLM" prompts --graphs "$G" -n 50 --seed 3 --out "$TMP/b.jsonl"
check prompts_draw_count test "$(wc -l < "$TMP/a.jsonl")" -eq 50
check prompts_deterministic cmp -s "$TMP/a.jsonl" "$TMP/b.jsonl"
check prompts_both_drawn test "$(sort -u "$TMP/a.jsonl" | wc -l)" -eq 2
# a graph with a missing parent is not a valid source of conditions: named, nothing written
echo '{"trace_id":"T_3","service":"S_3","edges":[["0","http","USER","MS_1",0,5],["0.1.1","mc","MS_1","MS_2",1,1]]}' > "$TMP/bad.jsonl"
expect_fail prompts_invalid_graph "bad.jsonl:1: invalid call graph \(missing_parent at edge 0.1.1\)" "$TRACELLM" prompts --graphs "$TMP/bad.jsonl" --out "$TMP/x.jsonl"
check prompts_no_output test ! -e "$TMP/x.jsonl"
echo 'not json' > "$TMP/junk.jsonl"
expect_fail prompts_junk "junk.jsonl:1" "$TRACELLM" prompts --graphs "$TMP/junk.jsonl" --out "$TMP/y.jsonl"
# generate and the baseline read the file: the baseline answers each prompt with a request line
"$TRACELLM" baseline fit --graphs "$G" --out "$TMP/base.model" >/dev/null 2>&1
check prompts_baseline_reads "$TRACELLM" baseline sample --model "$TMP/base.model" --prompts "$TMP/p.jsonl" --out "$TMP/bs.jsonl"
check prompts_baseline_request grep -q '"service":"S_000000001".*"request":{"num_edges":4,"depth":3,"latency":10}' "$TMP/bs.jsonl"
done_tests
