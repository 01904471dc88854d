#!/usr/bin/env bash
# `tracellm train` end to end on a tiny model and tiny shards: learning, bit-identical resume,
# interruption by signal, NaN stop, and the errors a user can run into (tokenizer mismatch,
# corrupt/truncated checkpoints, an existing run).
source test/lib.sh
PY=/usr/bin/python3
if [ ! -x "$PY" ]; then skip e2e_train "needs /usr/bin/python3 to write test shards"; done_tests; fi

# mkshard PATH FINGERPRINT N_TOKENS SEED [mask]: a learnable token stream (vocab 64) in the shard
# format of tokenizer/shard.h: documents are runs of t -> (5t+3) % 61 with a random start.
mkshard() {
  "$PY" - "$@" <<'EOF'
import random, struct, sys, zlib
path, fp, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
with_mask = len(sys.argv) > 5
r = random.Random(seed)
toks, mask, docs = [], [], []
while len(toks) < n:
    docs.append(len(toks))
    t = r.randrange(61)
    L = r.randrange(8, 40)
    for i in range(L):
        toks.append(t); mask.append(1 if i >= 4 else 0)
        t = (5 * t + 3) % 61
    toks.append(63); mask.append(1)  # end of text
toks, mask = toks[:n], mask[:n]
tb = struct.pack(f"<{n}H", *toks); mb = bytes(mask) if with_mask else b""; db = struct.pack(f"<{len(docs)}Q", *docs)
crc = zlib.crc32(tb + mb + db)
hdr = b"TLLMSHRD" + struct.pack("<IIQQIIQ", 1, 64, n, len(docs), 1 if with_mask else 0, crc, fp) + bytes(16)
open(path, "wb").write(hdr + tb + mb + db)
EOF
}
mkshard "$TMP/a.bin" 77 6000 1
mkshard "$TMP/b.bin" 77 3000 2
mkshard "$TMP/m.bin" 77 5000 3 mask
mkshard "$TMP/val.bin" 77 2000 4
mkshard "$TMP/other.bin" 99 5000 5
mkshard "$TMP/tiny.bin" 77 50 6

TINY=(--layers 2 --heads 2 --embd 32 --batch 4 --seq-len 32 --threads 1 --print-every 0)
train() { "$TRACELLM" train "${TINY[@]}" "$@"; }
# the log without the timing field: what must be identical between runs
logcore() { sed -E 's/,"tokens_per_s":[0-9.e+-]+//' "$1"; }
ckpt_step() { "$PY" -c "import struct,sys; print(struct.unpack_from('<Q', open(sys.argv[1],'rb').read(), 48)[0])" "$1"; }

check help "$TRACELLM" train --help

# ---- it learns ----
check learns_run train --data "$TMP/a.bin" "$TMP/b.bin" --val-data "$TMP/val.bin" --out "$TMP/learn" --steps 40 \
  --lr 3e-3 --warmup 4 --eval-every 20
check learns_loss_drops "$PY" -c "
import json, sys
rows = [json.loads(l) for l in open('$TMP/learn/log.jsonl')]
assert [r['step'] for r in rows] == list(range(1, 41)), 'one row per step'
first, last = rows[0]['loss'], rows[-1]['loss']
assert last < first - 1.0, f'loss {first} -> {last}'
vals = [r['val_loss'] for r in rows if 'val_loss' in r]
assert len(vals) == 2 and vals[-1] < 3.0, vals
for r in rows: assert r['lr'] > 0 and r['grad_norm'] > 0 and r['tokens_per_s'] > 0
"
check learns_checkpoint_step test "$(ckpt_step "$TMP/learn/model.bin")" = 40

# ---- bit-identical resume: --steps N  ==  --steps N --stop-after N/2, then --resume ----
COMMON=(--data "$TMP/m.bin" "$TMP/a.bin" --val-data "$TMP/val.bin" --steps 12 --grad-accum 2 --eval-every 3 --save-every 5 --lr 2e-3 --warmup 2)
check resume_full train "${COMMON[@]}" --out "$TMP/full"
check resume_first_half train "${COMMON[@]}" --out "$TMP/half" --stop-after 6
check resume_stopped_at_6 test "$(ckpt_step "$TMP/half/model.bin")" = 6
check resume_second_half train "${COMMON[@]}" --out "$TMP/half" --resume
check resume_same_weights cmp "$TMP/full/model.bin" "$TMP/half/model.bin"
check resume_same_optimizer cmp "$TMP/full/optim.bin" "$TMP/half/optim.bin"
check resume_same_log cmp <(logcore "$TMP/full/log.jsonl") <(logcore "$TMP/half/log.jsonl")
# every reduction has a fixed order, so the thread count does not change a single bit either
check threads_run train "${COMMON[@]}" --out "$TMP/full2" --threads 2
check threads_same_weights cmp "$TMP/full/model.bin" "$TMP/full2/model.bin"
check resume_done_is_noop train "${COMMON[@]}" --out "$TMP/half" --resume

# ---- --shuffle: a fresh cut and order of the rows every epoch; resume stays bit-identical ----
# (24 batches of the 85 an epoch holds here; test_train's test_loader_shuffled crosses epochs)
check shuffle_full train "${COMMON[@]}" --shuffle --out "$TMP/sh_full"
check shuffle_half train "${COMMON[@]}" --shuffle --stop-after 5 --out "$TMP/sh_half"
check shuffle_resume train "${COMMON[@]}" --shuffle --out "$TMP/sh_half" --resume
check shuffle_same_weights cmp "$TMP/sh_full/model.bin" "$TMP/sh_half/model.bin"
check shuffle_same_log cmp <(logcore "$TMP/sh_full/log.jsonl") <(logcore "$TMP/sh_half/log.jsonl")
check shuffle_other_data bash -c "! cmp -s '$TMP/sh_full/model.bin' '$TMP/full/model.bin'"
expect_fail shuffle_resume_without "was trained with --shuffle: resume it with --shuffle" train "${COMMON[@]}" --out "$TMP/sh_half" --resume
expect_fail shuffle_resume_with "was trained without --shuffle: resume it without --shuffle" train "${COMMON[@]}" --shuffle --out "$TMP/half" --resume

# ---- short sequences first (--ctx), then --resume at the full context ----
# header: magic 8, version 4, header_size 4, then n_layer n_head n_embd max_seq_len (int32)
ckpt_ctx() { "$PY" -c "import struct,sys; print(struct.unpack_from('<i', open(sys.argv[1],'rb').read(), 28)[0])" "$1"; }
check ctx_short_phase train "${COMMON[@]}" --seq-len 16 --ctx 32 --batch 8 --stop-after 6 --out "$TMP/ctx"
check ctx_model_context test "$(ckpt_ctx "$TMP/ctx/model.bin")" = 32
check ctx_long_phase train "${COMMON[@]}" --seq-len 32 --batch 4 --out "$TMP/ctx" --resume
check ctx_long_phase_done test "$(ckpt_step "$TMP/ctx/model.bin")" = 12
check ctx_same_context test "$(ckpt_ctx "$TMP/ctx/model.bin")" = 32
expect_fail ctx_too_short "--ctx 8: a new model's context, at least --seq-len 32" train "${COMMON[@]}" --ctx 8 --out "$TMP/ctx2"
expect_fail ctx_on_resume "a resumed or --init run keeps its checkpoint's" train "${COMMON[@]}" --ctx 64 --out "$TMP/ctx" --resume
expect_fail ctx_beyond "--seq-len 64 exceeds the checkpoint's context 32" train "${COMMON[@]}" --seq-len 64 --steps 20 --out "$TMP/ctx" --resume
# --pos-offsets: each step's rows start at a random position (from the run's saved RNG), so a short
# --seq-len trains every position row of --ctx, and resuming stays bit-identical
PO=("${COMMON[@]}" --seq-len 16 --ctx 32 --batch 8 --pos-offsets)
check pos_offsets_full train "${PO[@]}" --out "$TMP/po_full"
check pos_offsets_half train "${PO[@]}" --stop-after 6 --out "$TMP/po_half"
check pos_offsets_resume train "${COMMON[@]}" --seq-len 16 --batch 8 --pos-offsets --out "$TMP/po_half" --resume
check pos_offsets_same_weights cmp "$TMP/po_full/model.bin" "$TMP/po_half/model.bin"
check pos_offsets_no_offsets train "${COMMON[@]}" --seq-len 16 --ctx 32 --batch 8 --out "$TMP/po_none"
check pos_offsets_rows_trained "$PY" -c "
import struct
def wpe(path):
    b = open(path, 'rb').read()
    L, NH, C, T, V, Vp = struct.unpack_from('<6i', b, 16)
    return C, T, struct.unpack_from(f'<{T * C}f', b, 128 + 4 * Vp * C)
C, T, a = wpe('$TMP/po_full/model.bin')
_, _, b = wpe('$TMP/po_none/model.bin')
# positions 16..31: only decayed without offsets, trained with them
diff = sum(abs(x - y) for x, y in zip(a[16 * C:], b[16 * C:])) / (16 * C)
assert T == 32 and diff > 1e-3, diff
"

# ---- --pos-init sinusoid: position rows start as sin/cos pairs of amplitude 0.02 * sqrt 2 ----
check pos_init_run train "${COMMON[@]}" --steps 1 --lr 1e-9 --warmup 0 --pos-init sinusoid --out "$TMP/pos"
check pos_init_rows "$PY" -c "
import math, struct
b = open('$TMP/pos/model.bin', 'rb').read()
L, NH, C, T, V, Vp = struct.unpack_from('<6i', b, 16)
w = struct.unpack_from(f'<{T * C}f', b, 128 + 4 * Vp * C)   # wpe follows wte
a = 0.02 * math.sqrt(2)
for p in (0, 1, 7, T - 1):
    for i in range(0, C, 2):
        f = 10000 ** (-i / C)
        assert abs(w[p * C + i] - a * math.sin(p * f)) < 1e-5 and abs(w[p * C + i + 1] - a * math.cos(p * f)) < 1e-5, (p, i)
"
expect_fail pos_init_bad "--pos-init fourier: expected random or sinusoid" train "${COMMON[@]}" --pos-init fourier --out "$TMP/pos2"

# gradient accumulation: 2 micro-batches of 4 read the same tokens as one batch of 8, so the same
# loss and (up to summation order) the same update
check accum_batch8 train --data "$TMP/a.bin" --steps 3 --warmup 0 --batch 8 --out "$TMP/b8"
check accum_batch4x2 train --data "$TMP/a.bin" --steps 3 --warmup 0 --batch 4 --grad-accum 2 --out "$TMP/b4x2"
check accum_same_losses "$PY" -c "
import json, sys
a = [json.loads(l) for l in open('$TMP/b8/log.jsonl')]
b = [json.loads(l) for l in open('$TMP/b4x2/log.jsonl')]
for x, y in zip(a, b):
    assert abs(x['loss'] - y['loss']) < 1e-5 and abs(x['grad_norm'] - y['grad_norm']) < 1e-4 * x['grad_norm'], (x, y)
assert len(a) == len(b) == 3
"

# ---- errors ----
expect_fail existing_run "already holds a checkpoint" train "${COMMON[@]}" --out "$TMP/full"
expect_fail resume_nothing "has no checkpoint" train "${COMMON[@]}" --out "$TMP/nothing" --resume
expect_fail tokenizer_mismatch_resume "tokenizer mismatch" train --data "$TMP/other.bin" --steps 20 --out "$TMP/full" --resume
expect_fail tokenizer_mismatch_val "another tokenizer" train --data "$TMP/a.bin" --val-data "$TMP/other.bin" --steps 2 --out "$TMP/x1"
expect_fail tokenizer_mismatch_shards "another tokenizer" train --data "$TMP/a.bin" "$TMP/other.bin" --steps 2 --out "$TMP/x2"
expect_fail shard_too_small "fewer than batch\*seq_len\+1" train --data "$TMP/tiny.bin" --steps 2 --out "$TMP/x3"
expect_fail no_steps "--steps N or --epochs" train --data "$TMP/a.bin" --out "$TMP/x4"
expect_fail bad_model "expected one of d2" train --data "$TMP/a.bin" --steps 2 --model d5 --out "$TMP/x5"

cp -r "$TMP/full" "$TMP/corrupt"
"$PY" -c "
import sys; p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[1000] ^= 0x10; open(p, 'wb').write(b)" "$TMP/corrupt/model.bin"
expect_fail corrupt_model "model.bin: CRC32 mismatch" train "${COMMON[@]}" --steps 20 --out "$TMP/corrupt" --resume
cp "$TMP/full/model.bin" "$TMP/corrupt/model.bin"
truncate -s -8 "$TMP/corrupt/optim.bin"
expect_fail truncated_optim "optim.bin: .*truncated" train "${COMMON[@]}" --steps 20 --out "$TMP/corrupt" --resume
head -c 100 "$TMP/full/model.bin" > "$TMP/corrupt/model.bin"
expect_fail truncated_model "model.bin: 100 bytes, too short" train "${COMMON[@]}" --steps 20 --out "$TMP/corrupt" --resume
echo "not a checkpoint at all, just some text that is long enough to have a header........................................" > "$TMP/corrupt/model.bin"
expect_fail garbage_model "not a tracellm model checkpoint" train "${COMMON[@]}" --steps 20 --out "$TMP/corrupt" --resume
rm "$TMP/corrupt/optim.bin"; cp "$TMP/full/model.bin" "$TMP/corrupt/model.bin"
expect_fail missing_optim "optim.bin is missing" train "${COMMON[@]}" --steps 20 --out "$TMP/corrupt" --resume

# ---- a diverging run stops at the first non-finite loss and keeps the last good checkpoint ----
cp -r "$TMP/full" "$TMP/nan"
cp "$TMP/nan/model.bin" "$TMP/nan_before.bin"
expect_fail nan_stops "step 1[34]: the (loss|gradient norm) is (NaN|Inf); stopping without saving: the last good checkpoint is .*model.bin \(step 12\)" \
  train "${COMMON[@]}" --steps 30 --lr 1e30 --schedule constant --save-every 100 --out "$TMP/nan" --resume
check nan_checkpoint_kept cmp "$TMP/nan/model.bin" "$TMP/nan_before.bin"

# ---- the real pipeline: tokenizer -> shards -> train --tokenizer; another tokenizer is refused ----
"$PY" -c "
import random, sys
for name, seed, width in (('t1.txt', 1, 20), ('t2.txt', 2, 90)):
    r = random.Random(seed)
    with open(sys.argv[1] + '/' + name, 'w') as f:
        for d in range(300):
            f.write('%%\n')
            for i in range(r.randrange(3, 9)):
                f.write(f'rpc 0.{i} http MS_{r.randrange(width):05d} -> MS_{r.randrange(width):05d} rt {r.randrange(100)}\n')
" "$TMP"
if "$TRACELLM" tokenizer train --in "$TMP/t1.txt" --out "$TMP/tok1.bin" --vocab-size 300 --quiet 2>/dev/null &&
   "$TRACELLM" tokenizer train --in "$TMP/t2.txt" --out "$TMP/tok2.bin" --vocab-size 300 --quiet 2>/dev/null &&
   "$TRACELLM" shards --text "$TMP/t1.txt" --doc-sep '%%' --tokenizer "$TMP/tok1.bin" --out "$TMP/sh" --seq-len 64 --quiet 2>/dev/null; then
  check pipeline_train train --data "$TMP/sh/train_000000.bin" --tokenizer "$TMP/tok1.bin" --out "$TMP/pipe" --steps 5
  expect_fail pipeline_other_tokenizer "tokenizer mismatch: .*tok2.bin" \
    train --data "$TMP/sh/train_000000.bin" --tokenizer "$TMP/tok2.bin" --out "$TMP/pipe2" --steps 5
else
  skip pipeline "tracellm tokenizer / shards failed (owned by the tokenizer issue)"
fi

# ---- SIGINT: finish the step, save, exit 130; the run resumes from there ----
"$TRACELLM" train "${TINY[@]}" --data "$TMP/a.bin" --steps 100000 --warmup 0 --save-every 0 --out "$TMP/sig" > "$TMP/sig.out" 2>&1 &
pid=$!
for _ in $(seq 100); do [ "$(wc -l < "$TMP/sig/log.jsonl" 2>/dev/null || echo 0)" -ge 3 ] && break; sleep 0.1; done
kill -INT $pid; wait $pid; rc=$?
check sigint_exit_130 test $rc = 130
check sigint_message grep -q "interrupted at step .*continue with --resume" "$TMP/sig.out"
n=$(wc -l < "$TMP/sig/log.jsonl")
check sigint_saved_last_step test "$(ckpt_step "$TMP/sig/model.bin")" = "$n"
check sigint_resumes train --data "$TMP/a.bin" --steps $((n + 2)) --warmup 0 --out "$TMP/sig" --resume
check sigint_no_temporaries test -z "$(ls "$TMP/sig" | grep tmp)"
# SIGTERM (a scheduler ending the job) behaves the same, with exit 143
"$TRACELLM" train "${TINY[@]}" --data "$TMP/a.bin" --steps 100000 --warmup 0 --save-every 0 --out "$TMP/term" > "$TMP/term.out" 2>&1 &
pid=$!
for _ in $(seq 100); do [ "$(wc -l < "$TMP/term/log.jsonl" 2>/dev/null || echo 0)" -ge 2 ] && break; sleep 0.1; done
kill -TERM $pid; wait $pid; rc=$?
check sigterm_exit_143 test $rc = 143
check sigterm_saved test "$(ckpt_step "$TMP/term/model.bin")" = "$(wc -l < "$TMP/term/log.jsonl")"

# --epochs E sets the step count from the data: a.bin (6000 tokens) holds 46 batches of 4x32
check epochs_run train --data "$TMP/a.bin" --epochs 1 --out "$TMP/epoch"
check epochs_steps test "$(wc -l < "$TMP/epoch/log.jsonl")" = 46
done_tests
