#!/usr/bin/env bash
# Hardware counters of the bf16 attention kernels at d12 step shapes (B=16, T=1024, C=768, 12
# heads), read by Nsight Compute (ncu): where the time of the largest op of a step goes. The
# kernels are timed as a whole by scripts/bench_ops_gpu.c; this says why they take that long:
# how busy the SMs and the tensor pipes are, how many warps are resident, and what the warps wait
# on (the WarpStateStats section names the leading stall reasons).
#
#   scripts/profile_attention_gpu.sh [BENCH_OPS_BINARY]     (default build-gpu/bench_ops_gpu)
#
# Three ncu runs of `bench_ops_gpu cuda ... attention`, each profiling one call of every attention
# kernel after the warm-up calls: the default variants named (mma: 16 query rows a warp, dQ
# recomputed), the alternatives (mma32, dQ from the stored dS), and the backward with 32-row tiles. Clocks are left as they are
# (--clock-control none). The full reports go to $OUT/gpu_check/ncu_*.txt (or a temporary
# folder); one line per kernel is printed last, and "RESULT ncu_<kernel>=..." lines for
# scripts/gpu_check.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
case ${1:-} in -h|--help) sed -n '2,16p' "$0"; exit 0;; esac
BENCH=${1:-build-gpu/bench_ops_gpu}
[ -x "$BENCH" ] || { echo "profile_attention_gpu: no $BENCH (make BUILD=build-gpu build-gpu/bench_ops_gpu)" >&2; exit 1; }
command -v ncu >/dev/null || { echo "profile_attention_gpu: ncu (Nsight Compute) is not on the PATH" >&2; exit 1; }
DIR=${OUT:+$OUT/gpu_check}
DIR=${DIR:-$(mktemp -d)}
mkdir -p "$DIR"

# bench_ops_gpu with only=attention: the forward 11 times (2 warm-ups, 9 timed), then the backward
# 11 times (two kernels a call). Skipping 10 matching launches lands on the last forward, then
# the first backward's two kernels.
profile() {  # NAME ENV...
  local name=$1; shift
  env "$@" ncu --clock-control none -k 'regex:attention_(forward|backward)_' --launch-skip 10 --launch-count 3 \
    --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
    --section ComputeWorkloadAnalysis "$BENCH" cuda 400 3000 16 attention >"$DIR/ncu_$name.txt" 2>&1
}
rc=0
profile default TRACELLM_CUDA_ATTENTION=mma TRACELLM_CUDA_ATTENTION_DQ=recompute || rc=1
profile alt TRACELLM_CUDA_ATTENTION=mma32 TRACELLM_CUDA_ATTENTION_DQ=stored || rc=1
profile r32 TRACELLM_CUDA_ATTENTION=mma TRACELLM_CUDA_ATTENTION_DQ=recompute32 || rc=1

# one line a kernel: duration, SM throughput, tensor-pipe use where the section gives it,
# achieved occupancy, registers, cycles between a warp's instructions
for run in default alt r32; do
  awk -v run=$run '
    function flush() { if (k != "") printf "RESULT ncu_%s_%s=%s, SM %s%%, occupancy %s%% (%s regs), %s cycles/issue\n", run, k, dur, sm, occ, regs, cpi }
    /Context [0-9]+, Stream/ { flush(); k = $1 == "void" ? $2 : $1; sub(/[<(].*/, "", k); sub(/^attention_/, "", k)
                               if (match($0, /<[^>]*>/)) k = k substr($0, RSTART, RLENGTH)
                               gsub(/[ ,]+/, "_", k); dur = sm = occ = regs = cpi = "?" }
    $1 == "Duration" { dur = $(NF) " " $(NF - 1) }
    /Compute \(SM\) Throughput/ { sm = $(NF) }
    /Achieved Occupancy/ { occ = $(NF) }
    /Registers Per Thread/ { regs = $(NF) }
    /Warp Cycles Per Issued Instruction/ { cpi = $(NF) }
    END { flush() }' "$DIR/ncu_$run.txt"
done
# the rules' words on what the warps wait for (the default variants)
grep -h -E 'stall' "$DIR"/ncu_default.txt | sed 's/^ *//' | head -6 | cut -c1-240
echo "reports: $DIR/ncu_default.txt, $DIR/ncu_alt.txt, $DIR/ncu_r32.txt"
exit $rc
