#!/usr/bin/env bash
# `tracellm tokenizer` and `tracellm shards` as a user runs them: train, exact encode/decode round
# trips (binary and text ids), stats, clear errors on wrong or corrupt files, and shards checked by
# an independent Python reader: header + CRC, end-of-text after every document, no piece longer
# than --seq-len, nothing lost when a document is split, the loss mask exactly on the answers,
# seeded shuffling, and graphs rendered in every format.
source test/lib.sh
T=$TRACELLM
PY=/usr/bin/python3
if [ ! -x "$PY" ]; then skip e2e_tokenizer "needs /usr/bin/python3 (independent shard reader)"; done_tests; fi

# A small trace-like corpus of our own, so the core checks never need ../shared/data.
"$PY" - "$TMP/corpus.txt" "$TMP/instr.txt" <<'PYEOF' || { echo "FAIL e2e_tokenizer_corpus"; exit 1; }
import random, sys
r = random.Random(5)
with open(sys.argv[1], "w") as f:
    for g in range(400):
        n = r.randrange(1, 40)
        f.write(f"[GENERATE GRAPH]id:S_{r.randrange(60):09d}/latency:{r.randrange(3000)}/num_edges:{n}\n<edges>\n")
        for e in range(n):
            s = r.randrange(100)
            f.write(f"(source is MS_{r.randrange(80):05d},edge_id is 0.{e+1},communication starts at {s} milliseconds,"
                    f"type is {r.choice(['http','rpc','mc','db'])},destination is MS_{r.randrange(80):05d},"
                    f"communication finishes at {s + r.randrange(50)} milliseconds)\n")
        f.write("</edges>\n")
with open(sys.argv[2], "w") as f:
    for k in range(120):
        f.write("### Question: You are a trace generator that creates traces based on given requirements.\n"
                f"Requirements:\nnum_edges:{r.randrange(1, 50)}/id:S_{r.randrange(60):09d}\n\n ### Answer: \n<layer>\n<edges>\n")
        for e in range(r.randrange(1, 30)):
            f.write(f"(edge_id is {e},type is mc,destination is MS_{r.randrange(80):05d})\n")
        f.write("</edges>\nfinish generation</layer>\n")
PYEOF

check train $T tokenizer train --in "$TMP/corpus.txt" "$TMP/instr.txt" --vocab-size 600 --out "$TMP/tok.bin" --quiet
check encode $T tokenizer encode --tokenizer "$TMP/tok.bin" --in "$TMP/corpus.txt" --out "$TMP/ids.bin" --quiet
check decode $T tokenizer decode --tokenizer "$TMP/tok.bin" --in "$TMP/ids.bin" --out "$TMP/back.txt"
check round_trip cmp "$TMP/corpus.txt" "$TMP/back.txt"
check fewer_tokens_than_bytes test $(( $(stat -c %s "$TMP/ids.bin") / 2 * 3 )) -lt "$(stat -c %s "$TMP/corpus.txt")"
check encode_text_ids $T tokenizer encode --tokenizer "$TMP/tok.bin" --in "$TMP/instr.txt" --out "$TMP/ids.txt" --text-ids --threads 1 --quiet
check decode_text_ids $T tokenizer decode --tokenizer "$TMP/tok.bin" --in "$TMP/ids.txt" --text-ids --out "$TMP/back2.txt"
check round_trip_text_ids cmp "$TMP/instr.txt" "$TMP/back2.txt"
# random bytes, including NULs and the spelling of the special tokens
head -c 200000 /dev/urandom > "$TMP/rand.bin"; printf '<|endoftext|>\0<|boundary|>' >> "$TMP/rand.bin"
$T tokenizer encode --tokenizer "$TMP/tok.bin" --in "$TMP/rand.bin" --out "$TMP/rand.ids" --quiet
$T tokenizer decode --tokenizer "$TMP/tok.bin" --in "$TMP/rand.ids" --out "$TMP/rand.back"
check round_trip_random_bytes cmp "$TMP/rand.bin" "$TMP/rand.back"
check no_special_from_text "$PY" -c "
import struct, sys
d = open('$TMP/rand.ids', 'rb').read(); ids = struct.unpack('<%dH' % (len(d) // 2), d)
sys.exit(0 if max(ids) < 598 else 1)"
# deterministic: the same text gives the same file, whatever the thread count
$T tokenizer train --in "$TMP/corpus.txt" "$TMP/instr.txt" --vocab-size 600 --out "$TMP/tok2.bin" --quiet --threads 1
check train_deterministic cmp "$TMP/tok.bin" "$TMP/tok2.bin"
out=$($T tokenizer stats --tokenizer "$TMP/tok.bin" --in "$TMP/corpus.txt")
check stats_prints_ratio grep -q "bytes/tok" <<<"$out"
check stats_counts_graphs grep -qE " 400 " <<<"$out"

# errors name the file and the problem, exit non-zero, write nothing
expect_fail not_a_tokenizer "corpus.txt: not a tracellm tokenizer" $T tokenizer encode --tokenizer "$TMP/corpus.txt" --in "$TMP/corpus.txt" --out "$TMP/x.ids"
cp "$TMP/tok.bin" "$TMP/bad.bin"; printf '\x7f' | dd of="$TMP/bad.bin" bs=1 seek=100 conv=notrunc 2>/dev/null
expect_fail corrupt_tokenizer "bad.bin: CRC32 mismatch" $T tokenizer stats --tokenizer "$TMP/bad.bin" --in "$TMP/corpus.txt"
head -c 30 "$TMP/tok.bin" > "$TMP/short.bin"
expect_fail truncated_tokenizer "short.bin: too short" $T tokenizer decode --tokenizer "$TMP/short.bin" --in "$TMP/ids.bin" --out "$TMP/x.txt"
expect_fail missing_input "nope.txt" $T tokenizer encode --tokenizer "$TMP/tok.bin" --in "$TMP/nope.txt" --out "$TMP/x.ids"
printf '5\n70000\n' > "$TMP/badids.txt"
expect_fail id_out_of_range "badids.txt: token 1 has id 70000" $T tokenizer decode --tokenizer "$TMP/tok.bin" --in "$TMP/badids.txt" --text-ids --out "$TMP/x.txt"
printf 'abc' > "$TMP/odd.bin"
expect_fail odd_id_file "odd.bin: 3 bytes is not a whole number" $T tokenizer decode --tokenizer "$TMP/tok.bin" --in "$TMP/odd.bin" --out "$TMP/x.txt"
check no_partial_output test ! -e "$TMP/x.txt" -a ! -e "$TMP/x.ids"
expect_fail vocab_too_big "65536" $T tokenizer train --in "$TMP/corpus.txt" --vocab-size 70000 --out "$TMP/x.bin"

# ---- shards ----
# shardcheck DIR NAME SEQ_LEN TOKENIZER plain|mask: an independent reader of tokenizer/shard.h's format.
# Rebuilds every document from its pieces and writes DIR/docs.ids (and DIR/answers.ids: the tokens
# under mask 1) as decimal ids, one document per line, for `tokenizer decode --text-ids`.
shardcheck() {
  "$PY" - "$@" <<'PYEOF'
import glob, json, struct, sys, zlib
d, name, seq, tok, kind = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
t = open(tok, "rb").read()
vocab, nmerge, nspec = struct.unpack("<III", t[16:28]); fp = struct.unpack("<Q", t[32:40])[0]
eot, bnd = 256 + nmerge, 257 + nmerge
meta = json.load(open(f"{d}/{name}.json"))
docs, masks = [], []
files = sorted(glob.glob(f"{d}/{name}_*.bin"))
assert len(files) == meta["shards"], (files, meta)
total = 0
for f in files:
    b = open(f, "rb").read()
    magic, ver, vs, nt, nd, flags, crc, sfp = struct.unpack("<8sIIQQIIQ", b[:48])
    assert magic == b"TLLMSHRD" and vs == vocab and sfp == fp, f
    o = 64; toks = struct.unpack(f"<{nt}H", b[o:o + 2 * nt]); o += 2 * nt
    mask = b[o:o + nt] if flags & 1 else None; o += nt if flags & 1 else 0
    starts = struct.unpack(f"<{nd}Q", b[o:o + 8 * nd]); o += 8 * nd
    assert o == len(b) and zlib.crc32(b[64:]) == crc, f
    assert (mask is not None) == (kind == "mask")
    assert starts[0] == 0 and all(a < c for a, c in zip(starts, starts[1:]))
    total += nt
    for i, s in enumerate(starts):
        e = starts[i + 1] if i + 1 < nd else nt
        assert e - s <= seq, ("piece longer than seq_len", e - s)
        piece, pm = list(toks[s:e]), (list(mask[s:e]) if mask else None)
        if piece[0] == bnd:   # continuation of the previous document
            assert docs and docs[-1][-1] != eot and (pm is None or pm[0] == 0)
            docs[-1] += piece[1:]; masks[-1] += (pm[1:] if pm else [])
        else:
            assert not docs or docs[-1][-1] == eot
            docs.append(piece); masks.append(pm or [])
        assert bnd not in piece[1:] and eot not in piece[:-1]
assert total == meta["tokens"] and len(docs) == meta["documents"], (total, len(docs), meta)
assert all(x[-1] == eot for x in docs)
with open(f"{d}/docs.ids", "w") as f:
    for x in docs: f.write(" ".join(map(str, x)) + "\n")
if kind == "mask":
    with open(f"{d}/answers.ids", "w") as f:
        for x, m in zip(docs, masks):
            assert len(m) == len(x) and m[-1] == 1
            on = [i for i, v in enumerate(m) if v]
            assert on == list(range(on[0], len(x))), "mask is not one answer span at the end"
            f.write(" ".join(map(str, x[on[0]:])) + "\n")
PYEOF
}
# decode_docs IDS TOKENIZER OUT: the documents of IDS as text, sorted (the shuffle changes the order)
decode_docs() { $T tokenizer decode --tokenizer "$2" --in "$1" --text-ids --out "$3.raw" &&
  "$PY" -c "
d = open('$3.raw').read().split('<|endoftext|>')
assert d[-1] == ''
open('$3', 'w').write(''.join(sorted(d[:-1])))"; }
# the source documents, sorted, as the reference
"$PY" -c "
t = open('$TMP/corpus.txt').read().split('[GENERATE GRAPH]')[1:]
open('$TMP/corpus.sorted', 'w').write(''.join(sorted('[GENERATE GRAPH]' + x for x in t)))
t = open('$TMP/instr.txt').read().split('### Question:')[1:]
open('$TMP/answers.sorted', 'w').write(''.join(sorted(x.split(' ### Answer: \n', 1)[1] for x in t)))
open('$TMP/instr.sorted', 'w').write(''.join(sorted('### Question:' + x for x in t)))"

check shards_text $T shards --text "$TMP/corpus.txt" --tokenizer "$TMP/tok.bin" --out "$TMP/s1" --seq-len 64 --shard-tokens 5000 --quiet
check shards_text_format shardcheck "$TMP/s1" train 64 "$TMP/tok.bin" plain
check shards_several_files test -e "$TMP/s1/train_000003.bin"
decode_docs "$TMP/s1/docs.ids" "$TMP/tok.bin" "$TMP/s1.sorted"
check split_not_truncated cmp "$TMP/corpus.sorted" "$TMP/s1.sorted"
check split_counted "$PY" -c "
import json; m = json.load(open('$TMP/s1/train.json'))
assert m['split_documents'] > 100 and m['pieces'] > m['documents'] and m['documents'] == 400, m"

check shards_instruction $T shards --text "$TMP/instr.txt" --format instruction --tokenizer "$TMP/tok.bin" --out "$TMP/s2" --seq-len 100 --quiet
check shards_instruction_format shardcheck "$TMP/s2" train 100 "$TMP/tok.bin" mask
decode_docs "$TMP/s2/answers.ids" "$TMP/tok.bin" "$TMP/s2.sorted"
check mask_is_exactly_the_answers cmp "$TMP/answers.sorted" "$TMP/s2.sorted"
decode_docs "$TMP/s2/docs.ids" "$TMP/tok.bin" "$TMP/s2d.sorted"
check instruction_documents_whole cmp "$TMP/instr.sorted" "$TMP/s2d.sorted"
check loss_on_all $T shards --text "$TMP/instr.txt" --format instruction --loss-on-all --tokenizer "$TMP/tok.bin" --out "$TMP/s3" --quiet
check loss_on_all_mask "$PY" -c "
import json; m = json.load(open('$TMP/s3/train.json')); assert m['mask'] and m['trained_tokens'] == m['tokens'], m"

# --doc-sep: documents separated by a line of their own (dropped), empty documents counted
"$PY" -c "
t = open('$TMP/corpus.txt').read().split('[GENERATE GRAPH]')[1:]
open('$TMP/sep.txt', 'w').write('%%\n'.join('[GENERATE GRAPH]' + x for x in t[:50]) + '%%\n%%\n')"
check shards_doc_sep $T shards --text "$TMP/sep.txt" --doc-sep %% --tokenizer "$TMP/tok.bin" --out "$TMP/s10" --quiet
check shards_doc_sep_format shardcheck "$TMP/s10" train 1024 "$TMP/tok.bin" plain
decode_docs "$TMP/s10/docs.ids" "$TMP/tok.bin" "$TMP/s10.sorted"
check doc_sep_documents "$PY" -c "
t = open('$TMP/corpus.txt').read().split('[GENERATE GRAPH]')[1:51]
assert open('$TMP/s10.sorted').read() == ''.join(sorted('[GENERATE GRAPH]' + x for x in t))"
# --out is created like `mkdir -p` (two missing levels here); a regular file in the way is named
check shards_out_nested $T shards --text "$TMP/sep.txt" --doc-sep %% --tokenizer "$TMP/tok.bin" --out "$TMP/new1/new2/s11" --quiet
check shards_out_nested_format shardcheck "$TMP/new1/new2/s11" train 1024 "$TMP/tok.bin" plain
expect_fail shards_out_under_file "cannot create directory .*/corpus.txt/s12: Not a directory" \
  $T shards --text "$TMP/sep.txt" --doc-sep %% --tokenizer "$TMP/tok.bin" --out "$TMP/corpus.txt/s12" --quiet
# a single output file's missing folders are made too (out_open)
check tokenizer_out_nested $T tokenizer train --in "$TMP/corpus.txt" --vocab-size 300 --out "$TMP/new3/new4/tok.bin" --quiet
check tokenizer_out_nested_file test -s "$TMP/new3/new4/tok.bin"
expect_fail vocab_too_small "vocab size 100: must be between 258" $T tokenizer train --in "$TMP/corpus.txt" --vocab-size 100 --out "$TMP/x.bin"

# seeded shuffle: same seed, same bytes (any thread count); another seed, another order
$T shards --text "$TMP/corpus.txt" --tokenizer "$TMP/tok.bin" --out "$TMP/s4" --seed 9 --threads 1 --quiet
$T shards --text "$TMP/corpus.txt" --tokenizer "$TMP/tok.bin" --out "$TMP/s5" --seed 9 --quiet
$T shards --text "$TMP/corpus.txt" --tokenizer "$TMP/tok.bin" --out "$TMP/s6" --seed 10 --quiet
check shuffle_deterministic cmp "$TMP/s4/train_000000.bin" "$TMP/s5/train_000000.bin"
check shuffle_seeded bash -c "! cmp -s '$TMP/s4/train_000000.bin' '$TMP/s6/train_000000.bin'"
# a rerun with fewer shards leaves no stale shard behind
$T shards --text "$TMP/corpus.txt" --tokenizer "$TMP/tok.bin" --out "$TMP/s1" --seq-len 64 --quiet
check stale_shards_removed test ! -e "$TMP/s1/train_000001.bin"

printf '### Question: a\nno answer marker here\n' > "$TMP/bad_instr.txt"
expect_fail instruction_needs_marker "bad_instr.txt:1: document 1 has no '### Answer:' marker" \
  $T shards --text "$TMP/bad_instr.txt" --format instruction --tokenizer "$TMP/tok.bin" --out "$TMP/s7"
check nothing_written_on_error test ! -e "$TMP/s7/train_000000.bin"
expect_fail shards_wrong_tokenizer "corpus.txt: not a tracellm tokenizer" $T shards --text "$TMP/corpus.txt" --tokenizer "$TMP/corpus.txt" --out "$TMP/s8"
expect_fail shards_one_source "exactly one of --graphs or --text" $T shards --tokenizer "$TMP/tok.bin" --out "$TMP/s8"

# graphs rendered by data/format.h (the synthetic corpus through prepare)
if $T synth --graphs 300 --seed 2 --out "$TMP/syn.csv.gz" >/dev/null 2>&1 && $T prepare --input "$TMP/syn.csv.gz" --out "$TMP/prep" --quiet; then
  ng=$(wc -l < "$TMP/prep/train.jsonl")
  for f in recursive tabular; do
    check shards_graphs_$f $T shards --graphs "$TMP/prep/train.jsonl" --format $f --tokenizer "$TMP/tok.bin" --out "$TMP/g-$f" --seq-len 256 --quiet
    check shards_graphs_${f}_format shardcheck "$TMP/g-$f" train 256 "$TMP/tok.bin" plain
    check shards_graphs_${f}_one_doc_per_graph "$PY" -c "
import json; m = json.load(open('$TMP/g-$f/train.json')); assert m['documents'] == $ng, m"
  done
  $T shards --graphs "$TMP/prep/train.jsonl" --format recursive --tokenizer "$TMP/tok.bin" --out "$TMP/g-batch" --seq-len 256 --graph-batch 7 --threads 1 --quiet
  check graphs_batch_and_threads_invariant cmp "$TMP/g-recursive/train_000000.bin" "$TMP/g-batch/train_000000.bin"
  decode_docs "$TMP/g-recursive/docs.ids" "$TMP/tok.bin" "$TMP/g.sorted"
  check graphs_recursive_text "$PY" -c "
d = open('$TMP/g.sorted').read(); assert d.count('[GENERATE GRAPH]') == $ng and '<layer>' in d"
  check shards_graphs_instruction $T shards --graphs "$TMP/prep/train.jsonl" --format instruction --instruction-fraction 1 --tokenizer "$TMP/tok.bin" --out "$TMP/g-instr" --seq-len 512 --quiet
  check shards_graphs_instruction_format shardcheck "$TMP/g-instr" train 512 "$TMP/tok.bin" mask
  decode_docs "$TMP/g-instr/answers.ids" "$TMP/tok.bin" "$TMP/gi.sorted"
  check graphs_instruction_answers "$PY" -c "
d = open('$TMP/gi.sorted').read(); assert '### Question' not in d and d.count('<layer>') + d.count('<split>') > $ng"
  $T shards --graphs "$TMP/prep/train.jsonl" --format instruction --tokenizer "$TMP/tok.bin" --out "$TMP/g-i5" --quiet
  check instruction_fraction_default "$PY" -c "
import json; a = json.load(open('$TMP/g-instr/train.json')); b = json.load(open('$TMP/g-i5/train.json'))
assert 0 < b['documents'] < a['documents'] / 5, (a['documents'], b['documents'])"
  head -c 100 "$TMP/prep/train.jsonl" > "$TMP/broken.jsonl"
  expect_fail graphs_bad_line "broken.jsonl:1" $T shards --graphs "$TMP/broken.jsonl" --format tabular --tokenizer "$TMP/tok.bin" --out "$TMP/s9"
else
  skip shards_graphs "tracellm synth/prepare did not run"
fi

# the real samples (when ../shared/data is there)
if have_shared; then
  D=$SHARED/tracellm
  check real_train $T tokenizer train --in "$D/recursive_dataset.txt" "$D/tabular_dataset.txt" --vocab-size 2048 --out "$TMP/real.bin" --quiet
  for f in recursive_dataset tabular_dataset recursive_instruction_dataset; do
    $T tokenizer encode --tokenizer "$TMP/real.bin" --in "$D/$f.txt" --out "$TMP/r.ids" --quiet
    $T tokenizer decode --tokenizer "$TMP/real.bin" --in "$TMP/r.ids" --out "$TMP/r.txt"
    check real_round_trip_$f cmp "$D/$f.txt" "$TMP/r.txt"
  done
  check real_instruction_shards $T shards --text "$D/recursive_instruction_dataset.txt" --format instruction --tokenizer "$TMP/real.bin" --out "$TMP/r2" --seq-len 512 --quiet
  check real_instruction_shards_format shardcheck "$TMP/r2" train 512 "$TMP/real.bin" mask
else
  skip real_data "../shared/data is absent"
fi
done_tests
