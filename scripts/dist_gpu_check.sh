#!/usr/bin/env bash
# The NCCL path of data-parallel training on a GPU machine with one GPU (a stage of
# scripts/gpu_check.sh): `train --device cuda` as a world of ONE rank over tcp:// (and over MPI when
# mpirun exists), plain and ZeRO-1, must log the same losses as the same run without --dist (a
# 1-rank NCCL all-reduce is a copy, a 1-rank ZeRO-1 slice is the whole buffer). Proves that the
# NCCL communicator comes up, that reduce / reduce-scatter / all-gather run on device buffers, and
# that the ZeRO-1 slice files are written. Multi-GPU scaling needs a machine with several GPUs.
#
#   scripts/dist_gpu_check.sh [BIN]      (default build-gpu/tracellm)
set -u
cd "$(dirname "$0")/.."
BIN=${1:-build-gpu/tracellm}
PY=/usr/bin/python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
"$PY" - "$TMP/a.bin" <<'PYEOF'
import random, struct, sys, zlib
n, r, toks, docs = 200000, random.Random(1), [], []
while len(toks) < n:
    docs.append(len(toks)); t = r.randrange(61)
    for i in range(r.randrange(8, 40)): toks.append(t); t = (5 * t + 3) % 61
    toks.append(63)
toks = toks[:n]
tb = struct.pack(f"<{n}H", *toks); db = struct.pack(f"<{len(docs)}Q", *docs)
open(sys.argv[1], "wb").write(b"TLLMSHRD" + struct.pack("<IIQQIIQ", 1, 64, n, len(docs), 0, zlib.crc32(tb + db), 77) + bytes(16) + tb + db)
PYEOF
ARGS=(--device cuda --layers 4 --heads 4 --embd 256 --seq-len 128 --batch 8 --steps 20 --warmup 2 --lr 1e-3 --print-every 0 --data "$TMP/a.bin")
fail=0
same() {  # same NAME RUN: losses of RUN equal the plain run's within 1e-5
  if "$PY" - "$TMP/plain/log.jsonl" "$2/log.jsonl" <<'PYEOF'
import json, sys
a, b = ([json.loads(l)["loss"] for l in open(p)] for p in sys.argv[1:3])
assert len(a) == len(b) == 20, (len(a), len(b))
d = max(abs(x - y) for x, y in zip(a, b)); print(f"max |loss difference| {d:.3g}"); assert d <= 1e-5
PYEOF
  then echo "PASS $1"; else echo "FAIL $1"; fail=1; fi
}
run() {  # run NAME COMMAND...
  local name=$1; shift
  if "$@" >"$TMP/$name.log" 2>&1; then echo "PASS $name run"; grep -h "NCCL\|data parallel" "$TMP/$name.log"; else echo "FAIL $name run"; tail -5 "$TMP/$name.log"; fail=1; fi
}
run plain "$BIN" train "${ARGS[@]}" --out "$TMP/plain"
P=$((20000 + RANDOM % 20000))
run tcp "$BIN" train "${ARGS[@]}" --out "$TMP/tcp" --dist tcp://127.0.0.1:$P --world-size 1 --rank 0
same tcp_nccl "$TMP/tcp"
run tcpz "$BIN" train "${ARGS[@]}" --out "$TMP/tcpz" --dist tcp://127.0.0.1:$((P + 1)) --world-size 1 --rank 0 --zero 1
same tcp_nccl_zero1 "$TMP/tcpz"
if [ -f "$TMP/tcpz/optim.zero1.r0.bin" ]; then echo "PASS zero1_slice_written"; else echo "FAIL zero1_slice_written"; fail=1; fi
if grep -q "NCCL" "$TMP/tcp.log"; then echo "PASS nccl_used"; else echo "FAIL nccl_used (no NCCL line: built without nccl.h?)"; fail=1; fi
if command -v mpirun >/dev/null; then
  run mpi mpirun -np 1 "$BIN" train "${ARGS[@]}" --out "$TMP/mpi"
  same mpi_nccl "$TMP/mpi"
fi
exit $fail
