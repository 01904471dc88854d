#!/usr/bin/env bash
# `tracellm synth` as a user runs it: help, bad options, byte-identical output per seed, no
# half-written file on failure, and synth -> prepare recovering exactly the graphs synth says a
# correct cleaning must recover (its --truth file), quirks included.
source "$(dirname "$0")/lib.sh"

check synth_help bash -c "$TRACELLM synth --help | grep -q -- '--graphs'"
expect_fail synth_needs_out "--out" $TRACELLM synth --graphs 10
expect_fail synth_rejects_zero_graphs "graphs" $TRACELLM synth --graphs 0 --out "$TMP/x.csv.gz"
expect_fail synth_rejects_bad_mix "single|tail" $TRACELLM synth --graphs 10 --tail 0.9 --out "$TMP/x.csv.gz"
expect_fail synth_rejects_bad_rate "rates" $TRACELLM synth --graphs 10 --dup-rate 1.5 --out "$TMP/x.csv.gz"
expect_fail synth_unwritable_out "cannot" $TRACELLM synth --graphs 10 --quiet --out "$TMP/no/such/dir/x.csv.gz"
check synth_no_partial_output bash -c "! ls '$TMP'/x.csv.gz* 2>/dev/null | grep -q ."

# same seed -> same bytes; other seed -> other bytes; .csv is the .csv.gz content
$TRACELLM synth --graphs 1500 --seed 7 --quiet --out "$TMP/a.csv.gz" >/dev/null
$TRACELLM synth --graphs 1500 --seed 7 --quiet --out "$TMP/b.csv.gz" >/dev/null
$TRACELLM synth --graphs 1500 --seed 8 --quiet --out "$TMP/c.csv.gz" >/dev/null
$TRACELLM synth --graphs 1500 --seed 7 --quiet --out "$TMP/a.csv" >/dev/null
check synth_same_seed_same_bytes cmp "$TMP/a.csv.gz" "$TMP/b.csv.gz"
check synth_other_seed_differs bash -c "[ -s '$TMP/a.csv.gz' ] && [ -s '$TMP/c.csv.gz' ] && ! cmp -s '$TMP/a.csv.gz' '$TMP/c.csv.gz'"
check synth_plain_equals_gzip bash -c "zcat '$TMP/a.csv.gz' | cmp - '$TMP/a.csv'"
check synth_header bash -c "zcat '$TMP/a.csv.gz' | head -1 | grep -qx 'timestamp,traceid,service,rpc_id,rpctype,um,uminstanceid,interface,dm,dminstanceid,rt'"

# synth -> prepare: the graphs prepare keeps are exactly the ones synth's --truth predicts
if ! $TRACELLM prepare --help >/dev/null 2>&1; then
  skip synth_prepare_roundtrip "tracellm prepare is not built"
elif ! command -v python3 >/dev/null; then
  skip synth_prepare_roundtrip "python3 is absent"
else
  $TRACELLM synth --graphs 4000 --seed 3 --quiet --out "$TMP/r.csv.gz" --truth "$TMP/truth.jsonl" --clean-out "$TMP/clean.jsonl" >/dev/null
  check synth_prepare_runs $TRACELLM prepare --input "$TMP/r.csv.gz" --out "$TMP/prep" --quiet
  check synth_prepare_roundtrip python3 - "$TMP/truth.jsonl" "$TMP/prep/train.jsonl" "$TMP/prep/val.jsonl" "$TMP/clean.jsonl" <<'EOF'
import json, sys
def load(*paths):
    out = []
    for p in paths:
        for line in open(p):
            g = json.loads(line)
            out.append((g["service"], tuple(tuple(e) for e in g["edges"])))
    return out
truth, prep, clean = set(load(sys.argv[1])), load(sys.argv[2], sys.argv[3]), set(load(sys.argv[4]))
print(f"truth {len(truth)} unique graphs, prepare kept {len(prep)}, intended {len(clean)} unique")
assert len(prep) == len(set(prep)), "prepare kept duplicate graphs"
missing, extra = truth - set(prep), set(prep) - truth
for g in list(missing)[:2]: print("missed:", g)
for g in list(extra)[:2]: print("unexpected:", g)
assert not missing and not extra, f"{len(missing)} graphs missed, {len(extra)} unexpected"
# the quirks cost only a few graphs: most intended graphs come back untouched
assert len(truth & clean) >= 0.9 * len(clean), f"only {len(truth & clean)} of {len(clean)} intended graphs recovered intact"
EOF
fi

# the same against the independent pandas reference (scripts/reference/prepare_ref.py), heavy quirks
REF=scripts/reference/prepare_ref.py
if [ ! -f "$REF" ] || ! /usr/bin/python3 -c 'import pandas' 2>/dev/null; then
  skip synth_reference_roundtrip "needs $REF and Debian's python3-pandas"
else
  $TRACELLM synth --graphs 1500 --seed 11 --quiet --dup-rate 0.05 --unknown-rate 0.02 --malformed-rate 0.01 \
    --root01-rate 0.05 --out "$TMP/h.csv.gz" --truth "$TMP/h.truth.jsonl" >/dev/null
  check synth_reference_runs /usr/bin/python3 "$REF" --input "$TMP/h.csv.gz" --out "$TMP/href"
  check synth_reference_roundtrip /usr/bin/python3 - "$TMP/h.truth.jsonl" "$TMP/href/train.jsonl" "$TMP/href/val.jsonl" <<'EOF'
import json, sys
key = lambda g: (g["service"], tuple(tuple(e) for e in g["edges"]))
truth = {key(json.loads(l)) for l in open(sys.argv[1])}
ref = {key(json.loads(l)) for p in sys.argv[2:] for l in open(p)}
print(f"truth {len(truth)}, reference kept {len(ref)}")
assert truth == ref, f"{len(truth - ref)} missed, {len(ref - truth)} unexpected"
EOF
fi
done_tests
