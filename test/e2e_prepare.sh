#!/usr/bin/env bash
# `tracellm prepare` end to end, as a user runs it: against the independent pandas reference
# (scripts/reference/prepare_ref.py) on the real samples and on synthetic corpora (same graphs, same
# split, same count for every drop reason), on the input forms (csv, csv.gz, tar.gz, directories, a
# trace spanning two files), on broken inputs (an error naming the file, non-zero exit, no outputs),
# and for the split's independence from input order, thread count and bucket count.
source test/lib.sh
PY=/usr/bin/python3
REF=scripts/reference/prepare_ref.py
H22=timestamp,traceid,service,rpc_id,rpctype,um,uminstanceid,interface,dm,dminstanceid,rt

have_ref() { $PY -c 'import pandas' 2>/dev/null; }
# agree NAME INPUT...: both implementations on the same inputs must agree exactly
agree() {
  local n=$1; shift
  if ! have_ref; then skip "$n" "no pandas for /usr/bin/python3"; return; fi
  rm -rf "$TMP/c" "$TMP/r"
  local out
  if out=$("$TRACELLM" prepare --quiet --input "$@" --out "$TMP/c" 2>&1 && $PY $REF --input "$@" --out "$TMP/r" 2>&1 >/dev/null &&
           $PY $REF --compare "$TMP/c" "$TMP/r" 2>&1); then echo "PASS $n"
  else echo "FAIL $n"; echo "$out" | tail -20 | sed 's/^/    /'; _failed=1; fi
}
# same_output NAME DIR1 DIR2: train.jsonl and val.jsonl byte-identical
same_output() { check "$1" bash -c 'cmp "$1/train.jsonl" "$2/train.jsonl" && cmp "$1/val.jsonl" "$2/val.jsonl"' _ "$2" "$3"; }
# no_outputs DIR: nothing that looks complete, no temporary folder
no_outputs() { [ ! -e "$1/train.jsonl" ] && [ ! -e "$1/val.jsonl" ] && [ ! -e "$1/prepare_report.json" ] && [ -z "$(ls -A "$1" 2>/dev/null)" ]; }

# ---- real samples ----
if have_shared; then
  agree prepare_ref_v2022_sample "$SHARED/alibaba/2022-shuffled-sample-traces-small.csv.gz"
  agree prepare_ref_v2021_sample "$SHARED/alibaba/2021-shuffled-sample-traces-small.csv.gz"
  agree prepare_ref_v2021_first999 "$SHARED/alibaba/v2021-MSCallGraph_0-first999rows.csv"
  # released-data id forms: S_%09d, MS_%05d; every kept graph passes graphcheck
  "$TRACELLM" prepare --quiet --input "$SHARED/alibaba/2022-shuffled-sample-traces-small.csv.gz" --out "$TMP/real" >/dev/null 2>&1
  check prepare_real_ids_padded bash -c 'grep -q "\"service\":\"S_[0-9]\{9\}\"" "$1/train.jsonl" &&
    ! grep -qE "\"MS_[0-9]{1,4}\"" "$1/train.jsonl" && cat "$1/train.jsonl" "$1/val.jsonl" > "$1/all.jsonl" &&
    "$2" graphcheck --in "$1/all.jsonl"' _ "$TMP/real" "$TRACELLM"
else
  skip prepare_ref_real_samples "../shared/data is absent"
fi

# ---- hand-made fixtures: every quirk the issue lists ----
mkdir -p "$TMP/fx"
{
  echo "$H22"
  echo "100,T_1,S_7,0,http,USER,USER,i,MS_1,MS_1_POD_0,10.9"
  echo "101,T_1,S_7,0.1,rpc,MS_1,p,i,MS_2,q,4.0"
  echo "102,T_1,S_7,0.1,rpc,UNKNOWN,UNAVAILABLE,i,MS_2,q,3.0"
  echo "102,T_1,S_7,0.1,rpc,MS_1,p,i,MS_2,q,3.0"
  echo "103,T_1,S_7,0.10,mc,MS_1,p,i,MS_3,q,1.5"
  echo "200,T_2,S_7,0,http,USER,USER,i,MS_1,q,5"
  echo "201,T_2,S_7,0.1,rpc,MS_9,p,i,MS_2,q,1"
  echo "300,T_3,S_8,0,http,USER,USER,i,MS_1,q,5"
  echo "301,T_3,S_8,0.1,rpc,MS_1,p,i,MS_2,q,9"
  echo "400,T_4,S_8,0.1,rpc,MS_1,p,i,MS_2,q,1"
  echo "500,T_5,S_8,0,http,USER,USER,i,MS_1,q,5"
  echo "501,T_5,S_8,0.1.1,rpc,MS_1,p,i,MS_2,q,1"
  echo "1,T_9,S_1,0,http,USER,USER,i,x,MS_1,MS_1_POD_0,3.0"
  echo "1,T_9,S_1,0,http,USER,USER,i,MS_1,MS_1_POD_0,None"
  echo "T_9,1,S_1,0,http,USER,USER,i,MS_1,MS_1_POD_0,3.0"
  echo "1,T_9,S_1,0,http,USER,USER,i,MS_1,MS_1_POD_0,fast"
  echo "1,T_9,S_1,0.a,http,USER,USER,i,MS_1,MS_1_POD_0,3.0"
  printf '1,T_9,S_1,0,http,USER,USER,i\xff\xfe,MS_1,MS_1_POD_0,3.0\n'
  printf '1,T_9,S_1,0,http,USER,USER,%05000d,MS_1,MS_1_POD_0,3.0\n' 0
  echo "1,T_9,S_1,0,UNKNOWN,USER,USER,i,MS_1,MS_1_POD_0,3.0"
  printf '600,T_6,S_8,0,db,USER,USER,i,MS_1,q,5\r\n'
} > "$TMP/fx/quirks.csv"
"$TRACELLM" prepare --input "$TMP/fx/quirks.csv" --out "$TMP/q" > "$TMP/q.txt" 2>&1
check prepare_quirks_counts $PY - "$TMP/q/prepare_report.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
want_rows = {"read": 21, "malformed": 6, "filtered_type": 1, "unknown_name": 1, "missing_rt": 1, "duplicate_rpc_id": 1}
want_mal = {"field_count": 1, "bad_timestamp": 1, "bad_rt": 1, "bad_rpc_id": 1, "non_utf8": 1, "line_too_long": 1, "empty_traceid": 0}
want_graphs = {"built": 6, "src_dst_mismatch": 1, "child_outlives_parent": 1, "no_root": 1, "missing_parent": 1, "kept": 2}
bad = [(k, r["rows"][k], v) for k, v in want_rows.items() if r["rows"][k] != v]
bad += [(k, r["malformed"][k], v) for k, v in want_mal.items() if r["malformed"][k] != v]
bad += [(k, r["graphs"][k], v) for k, v in want_graphs.items() if r["graphs"][k] != v]
ex = r["malformed_examples"]
if len(ex) != 6 or not ex[0].endswith("quirks.csv:14: field_count") or not ex[5].endswith("quirks.csv:20: line_too_long"):
    bad.append(("examples", ex, "file:line of each"))
print(bad)
sys.exit(1 if bad else 0)
EOF
check prepare_quirks_summary grep -q "first malformed:.*quirks.csv:14: field_count" "$TMP/q.txt"
# T_1: first row per rpc_id (4.0 at t=101, not the later 3.0), rt truncated, 0.10 kept apart from 0.1
check prepare_quirks_graph grep -qF '{"trace_id":"T_1","service":"S_000000007","edges":[["0","http","USER","MS_00001",0,10],["0.1","rpc","MS_00001","MS_00002",1,4],["0.10","mc","MS_00001","MS_00003",3,1]]}' "$TMP/q/train.jsonl" "$TMP/q/val.jsonl"
agree prepare_ref_quirks "$TMP/fx/quirks.csv"

# v2021 with the index column: root caller is the user, |rt|, derived service id
{
  echo ",traceid,timestamp,rpcid,um,rpctype,dm,interface,rt"
  echo "0,tA,1000,0,,http,aaa,/api,-20"
  echo "1,tA,1002,0.1,aaa,rpc,bbb,/x,5"
  echo "2,tA,1003,0.1,(?),rpc,bbb,/x,-4"
  echo "3,tA,1004,0.1.1,bbb,mc,ccc,,1"
  echo "4,tA,1005,0.2,aaa,userDefined,ddd,,1"
  echo "5,tB,7,0,,http,aaa,/api,-3"
  echo "6,tB,8,0.1,,rpc,bbb,/x,1"
} > "$TMP/fx/v21.csv"
"$TRACELLM" prepare --quiet --input "$TMP/fx/v21.csv" --out "$TMP/v21" >/dev/null 2>&1
check prepare_v2021_graph grep -qE '^\{"trace_id":"tA","service":"S_[0-9]{9}","edges":\[\["0","http","USER","aaa",0,20\],\["0.1","rpc","aaa","bbb",2,5\],\["0.1.1","mc","bbb","ccc",4,1\]\]\}$' "$TMP/v21/train.jsonl" "$TMP/v21/val.jsonl"
agree prepare_ref_v2021_fixture "$TMP/fx/v21.csv"

# ---- input forms: one trace over two files (csv + csv.gz), a directory, a tar.gz of csv files ----
mkdir -p "$TMP/two/sub" "$TMP/tar/CallGraph"
{ echo "$H22"; grep -E '^(10[0-4]|20[01]),' "$TMP/fx/quirks.csv"; } > "$TMP/two/a.csv"
{ echo "traceid,timestamp,service,rpc_id,rpctype,um,dm,rt"; echo "T_1,104,S_7,0.1.1,db,MS_2,MS_4,1"; } | gzip > "$TMP/two/sub/b.csv.gz"
"$TRACELLM" prepare --quiet --input "$TMP/two" --out "$TMP/twoout" >/dev/null 2>&1
check prepare_trace_spans_files grep -qF '["0.1.1","db","MS_00002","MS_00004",4,1]' "$TMP/twoout/train.jsonl" "$TMP/twoout/val.jsonl"
agree prepare_ref_directory "$TMP/two"
cp "$TMP/two/a.csv" "$TMP/tar/CallGraph/CallGraph_0.csv"
gzip -dc "$TMP/two/sub/b.csv.gz" > "$TMP/tar/CallGraph/CallGraph_1.csv"
echo "not a csv" > "$TMP/tar/CallGraph/README"
tar -C "$TMP/tar" -czf "$TMP/CallGraph_0.tar.gz" CallGraph
"$TRACELLM" prepare --quiet --input "$TMP/CallGraph_0.tar.gz" --out "$TMP/tarout" >/dev/null 2>&1
same_output prepare_tar_gz_same_as_files "$TMP/twoout" "$TMP/tarout"
agree prepare_ref_tar_gz "$TMP/CallGraph_0.tar.gz"

# ---- broken inputs: a clear error, non-zero exit, nothing left in the output folder ----
gzip -c "$TMP/fx/quirks.csv" > "$TMP/full.csv.gz"
head -c $(( $(stat -c %s "$TMP/full.csv.gz") - 20 )) "$TMP/full.csv.gz" > "$TMP/cut.csv.gz"
expect_fail prepare_truncated_gzip "cut.csv.gz: truncated gzip stream.*offset [0-9]+" "$TRACELLM" prepare --input "$TMP/cut.csv.gz" --out "$TMP/bad1"
check prepare_truncated_gzip_no_outputs no_outputs "$TMP/bad1"
tar -C "$TMP/tar" -cf "$TMP/plain.tar" CallGraph
head -c 1100 "$TMP/plain.tar" > "$TMP/cut.tar"
expect_fail prepare_truncated_tar "cut.tar: truncated tar archive.*offset" "$TRACELLM" prepare --input "$TMP/cut.tar" --out "$TMP/bad2"
check prepare_truncated_tar_no_outputs no_outputs "$TMP/bad2"
cp "$TMP/plain.tar" "$TMP/corrupt.tar"; printf 'Z' | dd of="$TMP/corrupt.tar" bs=1 seek=5 conv=notrunc 2>/dev/null
expect_fail prepare_corrupt_tar "corrupt.tar: corrupt tar header.*tar offset 0" "$TRACELLM" prepare --input "$TMP/corrupt.tar" --out "$TMP/bad3"
printf 'time,trace,who\n1,2,3\n' > "$TMP/unknown.csv"
expect_fail prepare_unknown_header "unknown.csv:1: unknown header.*time,trace,who" "$TRACELLM" prepare --input "$TMP/unknown.csv" --out "$TMP/bad4"
check prepare_unknown_header_no_outputs no_outputs "$TMP/bad4"
# a good file first, then a bad one: the good file's rows must not leave a partial output
expect_fail prepare_bad_second_file "cut.csv.gz" "$TRACELLM" prepare --input "$TMP/fx/quirks.csv" "$TMP/cut.csv.gz" --out "$TMP/bad5"
check prepare_bad_second_file_no_outputs no_outputs "$TMP/bad5"
expect_fail prepare_missing_input "cannot open .*nope.csv" "$TRACELLM" prepare --input "$TMP/nope.csv" --out "$TMP/bad6"

# ---- synthetic corpus: agreement, and the split independent of order, threads and buckets ----
if "$TRACELLM" synth --help >/dev/null 2>&1; then
  "$TRACELLM" synth --graphs 3000 --seed 5 --out "$TMP/s.csv.gz" >/dev/null 2>&1
  agree prepare_ref_synth "$TMP/s.csv.gz"
  # the same rows, damaged at random (fixed seed): both implementations must still agree on every count
  gzip -dc "$TMP/s.csv.gz" | head -6000 | $PY -c '
import random, sys
random.seed(11)
out = sys.stdout.buffer
lines = sys.stdin.buffer.read().split(b"\n")
out.write(lines[0] + b"\n")
junk = [b",", b"None", b"", b"\xff", b"\xc3\xa9", b"0..1", b"1e3", b"-2.5", b"UNKNOWN", b"(?)", b"x" * 5000, b"\r", b"nan", b"0.10"]
for line in lines[1:]:
    if line and random.random() < 0.3:
        f = line.split(b",")
        k = random.randrange(len(f))
        r = random.random()
        if r < 0.5: f[k] = random.choice(junk)
        elif r < 0.7: f.insert(k, random.choice(junk))
        elif r < 0.85: del f[k]
        else: f[k], f[-1 - k] = f[-1 - k], f[k]
        line = b",".join(f)
    out.write(line + b"\n")' > "$TMP/mutated.csv"
  agree prepare_ref_mutated_rows "$TMP/mutated.csv"
  "$TRACELLM" prepare --quiet --input "$TMP/s.csv.gz" --out "$TMP/s1" >/dev/null 2>&1
  # shuffle the rows and cut them into three files given in reverse order
  gzip -dc "$TMP/s.csv.gz" | tail -n +2 | shuf --random-source=<(yes) > "$TMP/rows"
  split -n l/3 -d "$TMP/rows" "$TMP/part"
  for p in "$TMP"/part0?; do { head -1 <(gzip -dc "$TMP/s.csv.gz"); cat "$p"; } > "$p.csv"; done
  "$TRACELLM" prepare --quiet --input "$TMP/part02.csv" "$TMP/part01.csv" "$TMP/part00.csv" --out "$TMP/s2" --threads 2 --buckets 64 >/dev/null 2>&1
  same_output prepare_split_independent_of_order "$TMP/s1" "$TMP/s2"
  "$TRACELLM" prepare --quiet --input "$TMP/s.csv.gz" --out "$TMP/s3" --threads 1 --buckets 1 >/dev/null 2>&1
  same_output prepare_output_independent_of_threads_buckets "$TMP/s1" "$TMP/s3"
  "$TRACELLM" prepare --quiet --input "$TMP/s.csv.gz" --out "$TMP/s4" --seed 99 >/dev/null 2>&1
  check prepare_seed_changes_split bash -c '! cmp -s "$1/val.jsonl" "$2/val.jsonl"' _ "$TMP/s1" "$TMP/s4"
  check prepare_val_fraction $PY -c "
import json,sys; r=json.load(open('$TMP/s1/prepare_report.json'))['graphs']
f=r['val']/r['kept']; print(f); sys.exit(0 if 0.07<f<0.13 and r['kept']>1000 else 1)"
else
  skip prepare_synth "tracellm synth is not built"
fi
done_tests
