#!/usr/bin/env bash
# Data-parallel training (train/dist.h) end to end on a tiny model: 2 ranks with --batch 4 take the
# same 20 steps as 1 process with --batch 8 (losses within 1e-5), over MPI (mpirun -np 2) and over
# the TCP ring (two background processes), with and without ZeRO-1; the file:// rendezvous; ZeRO-1
# resume and its world-size check; under MPI the gradient reduction overlapped with the backward
# pass (the default) against --overlap off, bit for bit; a killed or hung rank makes the other
# stop with a clear error.
source test/lib.sh
PY=/usr/bin/python3
if [ ! -x "$PY" ]; then skip e2e_dist "needs /usr/bin/python3 to write test shards"; done_tests; fi
# OpenMPI refuses root unless told (CI containers run as root); oversubscribe: 2 ranks on any machine
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

# mkshard PATH N_TOKENS SEED: a learnable token stream (vocab 64, fingerprint 77), shard format of
# tokenizer/shard.h (the same generator as e2e_train.sh)
mkshard() {
  "$PY" - "$@" <<'EOF'
import random, struct, sys, zlib
path, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(seed)
toks, docs = [], []
while len(toks) < n:
    docs.append(len(toks))
    t = r.randrange(61)
    for i in range(r.randrange(8, 40)):
        toks.append(t)
        t = (5 * t + 3) % 61
    toks.append(63)
toks = toks[:n]
tb = struct.pack(f"<{n}H", *toks); db = struct.pack(f"<{len(docs)}Q", *docs)
hdr = b"TLLMSHRD" + struct.pack("<IIQQIIQ", 1, 64, n, len(docs), 0, zlib.crc32(tb + db), 77) + bytes(16)
open(path, "wb").write(hdr + tb + db)
EOF
}
mkshard "$TMP/a.bin" 6000 1
mkshard "$TMP/b.bin" 3000 2
mkshard "$TMP/val.bin" 2000 4

# one step = 2 micro-batches: the global batch of 16 rows is 4 rows x 2 ranks x 2, or 8 x 2 in one process
BASE=(--layers 2 --heads 2 --embd 32 --seq-len 32 --threads 1 --print-every 0 --steps 20 --lr 3e-3 --warmup 2
      --grad-accum 2 --data "$TMP/a.bin" "$TMP/b.bin" --val-data "$TMP/val.bin" --eval-every 10 --save-every 7)
train() { "$TRACELLM" train "${BASE[@]}" "$@"; }
# same_losses REF RUN: 20 rows, losses and val losses within 1e-5, same steps
same_losses() {
  "$PY" - "$1/log.jsonl" "$2/log.jsonl" <<'EOF'
import json, sys
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
assert len(a) == 20 and [r["step"] for r in a] == [r["step"] for r in b], (len(a), len(b))
for x, y in zip(a, b):
    for k in ("loss", "val_loss", "grad_norm"):
        if k in x or k in y:
            assert abs(x[k] - y[k]) <= 1e-5, (x["step"], k, x[k], y[k])
assert a[-1]["loss"] < a[0]["loss"] - 0.5, "it learns"
EOF
}
port() { echo $((20000 + RANDOM % 20000)); }
# tcp2 OUT [options]: two ranks of a tcp:// world as background processes; fails unless both succeed
tcp2() {
  local out=$1 p; shift; p=$(port)
  "$TRACELLM" train "${BASE[@]}" --batch 4 --out "$out" --dist tcp://127.0.0.1:$p --world-size 2 --rank 1 --dist-timeout 30 "$@" 2>"$out.r1.err" &
  local p1=$!
  "$TRACELLM" train "${BASE[@]}" --batch 4 --out "$out" --dist tcp://127.0.0.1:$p --world-size 2 --rank 0 --dist-timeout 30 "$@"
  local rc0=$?; wait $p1; local rc1=$?
  cat "$out.r1.err" >&2
  [ $rc0 -eq 0 ] && [ $rc1 -eq 0 ]
}

check ref_1proc train --batch 8 --out "$TMP/ref"

# ---- TCP ring (no MPI needed) ----
check tcp_run tcp2 "$TMP/tcp"
check tcp_matches_1proc same_losses "$TMP/ref" "$TMP/tcp"
check tcp_rank0_writes_model test -f "$TMP/tcp/model.bin" -a -f "$TMP/tcp/optim.bin"
check tcp_zero1_run tcp2 "$TMP/tcpz" --zero 1
check tcp_zero1_matches_1proc same_losses "$TMP/ref" "$TMP/tcpz"
check tcp_zero1_slices test -f "$TMP/tcpz/optim.zero1.r0.bin" -a -f "$TMP/tcpz/optim.zero1.r1.bin" -a ! -e "$TMP/tcpz/optim.bin"
# ZeRO-1 and plain data parallelism apply the same update: the same weights to the bit
check zero1_same_weights cmp "$TMP/tcp/model.bin" "$TMP/tcpz/model.bin"
# --shuffle: every rank draws the same permutation and keeps its rows of each global batch
check ref_1proc_shuffle train --batch 8 --shuffle --out "$TMP/refsh"
check tcp_shuffle_run tcp2 "$TMP/tcpsh" --shuffle
check tcp_shuffle_matches_1proc same_losses "$TMP/refsh" "$TMP/tcpsh"
check shuffle_other_rows bash -c "! cmp -s '$TMP/refsh/model.bin' '$TMP/ref/model.bin'"

# ZeRO-1 resume on the same world size continues bit-identically; another world size is refused
check zero1_first_half tcp2 "$TMP/half" --zero 1 --stop-after 10
check zero1_resume tcp2 "$TMP/half" --zero 1 --resume
check zero1_resume_same_weights cmp "$TMP/tcpz/model.bin" "$TMP/half/model.bin"
check zero1_resume_same_slices cmp "$TMP/tcpz/optim.zero1.r1.bin" "$TMP/half/optim.zero1.r1.bin"
expect_fail zero1_resume_one_process "trained with --zero 1" train --batch 8 --out "$TMP/half" --resume --steps 30
expect_fail bad_url "expected mpi, tcp://HOST:PORT or file:///PATH" train --batch 4 --out "$TMP/x" --dist udp://h:1
expect_fail bad_rank "expected 0..1" train --batch 4 --out "$TMP/x" --dist tcp://127.0.0.1:1 --world-size 2 --rank 2
expect_fail no_peer "only 1 of 2 ranks joined" train --batch 4 --out "$TMP/x" --dist tcp://127.0.0.1:$(port) --world-size 2 --rank 0 --dist-timeout 1

# 3 ranks: a ring whose neighbours differ, and ZeRO-1 slices of unequal size (28,544 parameters
# = 9,515 + 9,515 + 9,514); 3 x --batch 4 against one process with --batch 12
tcp3() {
  local out=$1 p; shift; p=$(port)
  local pids=() r rc=0
  for r in 2 1; do
    "$TRACELLM" train "${BASE[@]}" --batch 4 --out "$out" --dist tcp://127.0.0.1:$p --world-size 3 --rank $r --dist-timeout 30 "$@" 2>/dev/null &
    pids+=($!)
  done
  "$TRACELLM" train "${BASE[@]}" --batch 4 --out "$out" --dist tcp://127.0.0.1:$p --world-size 3 --rank 0 --dist-timeout 30 "$@" || rc=1
  for r in "${pids[@]}"; do wait "$r" || rc=1; done
  return $rc
}
check ref12_1proc train --batch 12 --out "$TMP/ref12"
check tcp3_zero1_run tcp3 "$TMP/tcp3z" --zero 1
check tcp3_zero1_matches_1proc same_losses "$TMP/ref12" "$TMP/tcp3z"
check tcp3_zero1_slices test -f "$TMP/tcp3z/optim.zero1.r2.bin"
# a ZeRO-1 run resumes only on its own world size
expect_fail zero1_resume_other_world "saved by a run of 3 ranks, this one has 1; ZeRO-1 optimizer slices only resume on the same world size" \
  train --batch 12 --out "$TMP/tcp3z" --resume --steps 30 --zero 1 --dist tcp://127.0.0.1:$(port) --world-size 1

# ---- file:// rendezvous ----
fileworld() {
  "$TRACELLM" train "${BASE[@]}" --batch 4 --out "$TMP/file" --dist "file://$TMP/rendezvous" --world-size 2 --rank 1 --dist-timeout 30 &
  local p1=$!
  "$TRACELLM" train "${BASE[@]}" --batch 4 --out "$TMP/file" --dist "file://$TMP/rendezvous" --world-size 2 --rank 0 --dist-timeout 30
  local rc0=$?; wait $p1; [ $rc0 -eq 0 ] && [ $? -eq 0 ]
}
check file_run fileworld
check file_matches_1proc same_losses "$TMP/ref" "$TMP/file"

# ---- a rank that dies or hangs: the other stops with an error within the timeout ----
# rank1_fault SIGNAL OUT: starts a long 2-rank run, sends SIGNAL to rank 1 after 3 logged steps,
# and returns rank 0's exit status (0 when it still ran after 15 s); prints rank 0's stderr
rank1_fault() {
  local sig=$1 out=$2 p; p=$(port)
  "$TRACELLM" train "${BASE[@]}" --batch 4 --steps 20000 --out "$out" --dist tcp://127.0.0.1:$p --world-size 2 --rank 1 --dist-timeout 3 2>/dev/null &
  local p1=$!
  "$TRACELLM" train "${BASE[@]}" --batch 4 --steps 20000 --out "$out" --dist tcp://127.0.0.1:$p --world-size 2 --rank 0 --dist-timeout 3 2>"$out.err" &
  local p0=$!
  for _ in $(seq 600); do [ -f "$out/log.jsonl" ] && [ "$(wc -l <"$out/log.jsonl")" -ge 3 ] && break; sleep 0.05; done
  kill -"$sig" $p1
  local t=0
  while kill -0 $p0 2>/dev/null && [ $t -lt 150 ]; do sleep 0.1; t=$((t + 1)); done
  kill -9 $p1 2>/dev/null; wait $p1 2>/dev/null
  if kill -0 $p0 2>/dev/null; then kill -9 $p0; echo "rank 0 still running 15 s after rank 1 got SIG$sig"; return 0; fi
  wait $p0; local rc=$?
  cat "$out.err"
  return $rc
}
expect_fail killed_rank_stops_others "rank 0: .*rank 1 (closed the connection|.*lost).*died" rank1_fault KILL "$TMP/kill"
expect_fail hung_rank_times_out "rank 0: .*no data moved for 3 s.*rank 1 died or hangs" rank1_fault STOP "$TMP/hang"

# SIGINT to one rank: every rank saves and stops at the same step (exit 130), and the run resumes
interrupt_one() {
  local p; p=$(port)
  "$TRACELLM" train "${BASE[@]}" --batch 4 --steps 20000 --out "$TMP/int" --dist tcp://127.0.0.1:$p --world-size 2 --rank 1 --zero 1 --dist-timeout 10 2>/dev/null &
  local p1=$!
  "$TRACELLM" train "${BASE[@]}" --batch 4 --steps 20000 --out "$TMP/int" --dist tcp://127.0.0.1:$p --world-size 2 --rank 0 --zero 1 --dist-timeout 10 2>/dev/null &
  local p0=$!
  # the signal must come after the handler is installed (before it, a background job ignores SIGINT)
  for _ in $(seq 600); do [ -f "$TMP/int/log.jsonl" ] && [ "$(wc -l <"$TMP/int/log.jsonl")" -ge 3 ] && break; sleep 0.05; done
  if [ "$(wc -l <"$TMP/int/log.jsonl" 2>/dev/null || echo 0)" -lt 3 ]; then echo "no training steps after 30 s"; kill -9 $p0 $p1; return 1; fi
  kill -INT $p1
  local t=0
  while { kill -0 $p0 || kill -0 $p1; } 2>/dev/null && [ $t -lt 300 ]; do sleep 0.1; t=$((t + 1)); done
  if { kill -0 $p0 || kill -0 $p1; } 2>/dev/null; then echo "still running 30 s after SIGINT"; kill -9 $p0 $p1 2>/dev/null; return 1; fi
  wait $p0; local rc0=$?; wait $p1; local rc1=$?
  echo "exit codes $rc0 $rc1"
  [ $rc0 -eq 130 ] && [ $rc1 -eq 130 ]
}
check interrupt_one_rank_stops_all interrupt_one
check interrupt_saved_same_step "$PY" -c "
import struct, sys
d = sys.argv[1]
model = struct.unpack_from('<Q', open(d + '/model.bin', 'rb').read(), 48)[0]
for r in (0, 1):
    slice_step = struct.unpack_from('<Q', open(d + f'/optim.zero1.r{r}.bin', 'rb').read(), 48)[0]
    assert slice_step == model, (r, slice_step, model)
assert sum(1 for _ in open(d + '/log.jsonl')) == model
" "$TMP/int"

# ---- MPI ----
if ! command -v mpirun >/dev/null; then
  skip mpi "mpirun not installed (apt-get install openmpi-bin libopenmpi-dev); the tcp:// tests above cover the same logic"
  done_tests
fi
if "$TRACELLM" train "${BASE[@]}" --out "$TMP/probe" --dist mpi --steps 0 2>&1 | grep -q "built without MPI"; then
  skip mpi "this binary was built without MPI (no mpicc at build time); the tcp:// tests above cover the same logic"
  done_tests
fi
# mpi NP OUT [options]: an mpirun world of NP ranks, rank 0's stderr kept in OUT.err
mpi() { local np=$1 out=$2; shift 2; mpirun -np "$np" "$TRACELLM" train "${BASE[@]}" --out "$out" "$@" 2>"$out.err"; local rc=$?; cat "$out.err"; return $rc; }
# identical_losses A B: the same losses, validation losses and gradient norms to the last digit
identical_losses() {
  "$PY" - "$1/log.jsonl" "$2/log.jsonl" <<'EOF'
import json, sys
a, b = ([{k: r.get(k) for k in ("step", "loss", "val_loss", "grad_norm")} for r in map(json.loads, open(p))] for p in sys.argv[1:3])
assert len(a) == 20 and a == b, [(x, y) for x, y in zip(a, b) if x != y][:3]
EOF
}
# the default under MPI: each layer's gradients are reduced during the backward pass (train/dist.h)
check mpi_run mpi 2 "$TMP/mpi" --batch 4
check mpi_overlap_is_default grep -q "gradients reduced during the backward pass, 4 buckets" "$TMP/mpi.err"
check mpi_matches_1proc same_losses "$TMP/ref" "$TMP/mpi"
check mpi_zero1_run mpi 2 "$TMP/mpiz" --batch 4 --zero 1
check mpi_zero1_matches_1proc same_losses "$TMP/ref" "$TMP/mpiz"
check mpi_zero1_slices test -f "$TMP/mpiz/optim.zero1.r1.bin"
check mpi_tcp_same_weights cmp "$TMP/mpi/model.bin" "$TMP/tcp/model.bin"
# --overlap off: one collective after the backward pass. With 2 ranks every sum is a + b in
# either case, so the overlapped buckets give the same losses and weights to the bit
check mpi_overlap_off_run mpi 2 "$TMP/mpioff" --batch 4 --overlap off
check mpi_overlap_off_said grep -q "gradients reduced after the backward pass (--overlap off)" "$TMP/mpioff.err"
check mpi_overlap_on_off_identical_losses identical_losses "$TMP/mpi" "$TMP/mpioff"
check mpi_overlap_on_off_same_weights cmp "$TMP/mpi/model.bin" "$TMP/mpioff/model.bin"
check mpi_zero1_overlap_off_run mpi 2 "$TMP/mpizoff" --batch 4 --zero 1 --overlap off
check mpi_zero1_overlap_on_off_identical_losses identical_losses "$TMP/mpiz" "$TMP/mpizoff"
check mpi_zero1_overlap_on_off_same_weights cmp "$TMP/mpiz/model.bin" "$TMP/mpizoff/model.bin"
# 3 ranks, ZeRO-1 slices of unequal size: buckets cut by slice boundaries go to two owners
check mpi3_zero1_run mpi 3 "$TMP/mpi3z" --batch 4 --zero 1
check mpi3_zero1_matches_1proc same_losses "$TMP/ref12" "$TMP/mpi3z"
check mpi3_zero1_matches_tcp same_losses "$TMP/tcp3z" "$TMP/mpi3z"
# ranks that disagree on --overlap would start different collectives: refused at the start
expect_fail mpi_overlap_mismatch "--overlap off, but 1 of 2 ranks have --overlap on" \
  mpirun -np 2 bash -c 'exec "$0" "$@" $([ "$OMPI_COMM_WORLD_RANK" = 1 ] && echo --overlap off)' "$TRACELLM" train "${BASE[@]}" --batch 4 --out "$TMP/mism"
expect_fail bad_overlap "--overlap maybe: expected on or off" train --batch 8 --out "$TMP/x" --overlap maybe
# a killed rank: mpirun stops the job and exits non-zero naming the rank (mpi_kill returns its status)
mpi_kill() {
  cat >"$TMP/wrap.sh" <<'EOF'
#!/bin/bash
echo $$ > "$(dirname "$0")/pid.$OMPI_COMM_WORLD_RANK"
exec "$@"
EOF
  chmod +x "$TMP/wrap.sh"
  mpirun -np 2 "$TMP/wrap.sh" "$TRACELLM" train "${BASE[@]}" --batch 4 --steps 20000 --out "$TMP/mpikill" --dist-timeout 5 >"$TMP/mpikill.out" 2>&1 &
  local pm=$!
  for _ in $(seq 600); do [ -f "$TMP/mpikill/log.jsonl" ] && [ "$(wc -l <"$TMP/mpikill/log.jsonl")" -ge 3 ] && break; sleep 0.05; done
  kill -9 "$(cat "$TMP/pid.1")"
  local t=0
  while kill -0 $pm 2>/dev/null && [ $t -lt 200 ]; do sleep 0.1; t=$((t + 1)); done
  if kill -0 $pm 2>/dev/null; then kill -9 $pm; echo "mpirun still running 20 s after rank 1 was killed"; return 0; fi
  wait $pm; local rc=$?
  cat "$TMP/mpikill.out"
  return $rc
}
expect_fail mpi_killed_rank_stops_job "rank 1 .*(signal 9|Killed)" mpi_kill
done_tests
