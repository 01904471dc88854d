#!/usr/bin/env bash
# Without MPI: N processes on this machine join through tcp://127.0.0.1:PORT (on several machines,
# start rank 0 first where the others can reach it and give each process --rank and the same
# --world-size, or use --dist file:///shared/path/rendezvous on a shared file system).
#
#   scripts/launch/tcp_local.sh N RUN_DIR SHARD... [-- extra train options]
#
# The TCP ring moves the gradients over plain sockets (no RDMA, no overlap with compute): fine
# for CPU training and a few GPUs; use the MPI / NCCL build for real GPU clusters. Ctrl-C stops
# every rank (each rank that sees the signal makes all of them save and stop at the same step).
set -eu
N=$1 RUN=$2; shift 2
SHARDS=(); while [ $# -gt 0 ] && [ "$1" != "--" ]; do SHARDS+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
BIN=${TRACELLM:-./tracellm}
PORT=${PORT:-29500}
THREADS=${THREADS:-1}
pids=()
for ((r = N - 1; r >= 0; r--)); do
  "$BIN" train --data "${SHARDS[@]}" --out "$RUN" --threads "$THREADS" \
    --dist "tcp://127.0.0.1:$PORT" --world-size "$N" --rank "$r" "$@" &
  pids+=($!)
done
trap 'kill -INT "${pids[@]}" 2>/dev/null' INT TERM
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
exit $rc
