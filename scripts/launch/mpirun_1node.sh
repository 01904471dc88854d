#!/usr/bin/env bash
# One node, N GPUs (or N CPU sockets): one rank per GPU, launched by OpenMPI's mpirun. Each rank
# picks its GPU from its local rank (OpenMPI sets OMPI_COMM_WORLD_LOCAL_RANK) through
# CUDA_VISIBLE_DEVICES, so every process sees "its" GPU as device 0.
#
#   scripts/launch/mpirun_1node.sh N RUN_DIR SHARD... [-- extra train options]
#   e.g. scripts/launch/mpirun_1node.sh 8 runs/d12 data/shards/train_*.bin -- --model d12 --steps 20000
#
# --batch is per rank: the global batch is batch x N x grad-accum sequences. Add --zero 1 to cut
# the AdamW state per GPU by N. CPU instead of GPU: drop --device cuda and bind one rank per socket
# (mpirun --map-by socket --bind-to socket ... --threads <cores per socket>).
set -eu
N=$1 RUN=$2; shift 2
SHARDS=(); while [ $# -gt 0 ] && [ "$1" != "--" ]; do SHARDS+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
BIN=${TRACELLM:-./tracellm}
exec mpirun -np "$N" --bind-to none \
  bash -c 'export CUDA_VISIBLE_DEVICES=${OMPI_COMM_WORLD_LOCAL_RANK:-0}; exec "$@"' rank \
  "$BIN" train --device cuda --data "${SHARDS[@]}" --out "$RUN" --batch 16 --seq-len 1024 "$@"
