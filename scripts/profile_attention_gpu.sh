#!/usr/bin/env bash
# Hardware counters of the bf16 attention kernels at d12 step shapes (B=16, T=1024, C=768, 12
# heads), read by Nsight Compute (ncu): where the time of the largest op of a step goes. The
# kernels are timed as a whole by scripts/bench_ops_gpu.c; this says why they take that long:
# how busy the SMs and the tensor pipes are, how many warps are resident, and what the warps wait
# on (the WarpStateStats section names the leading stall reasons).
#
#   scripts/profile_attention_gpu.sh [BENCH_OPS_BINARY]     (default build-gpu/bench_ops_gpu)
#
# Four ncu runs of `bench_ops_gpu cuda ... attention`, each profiling one call of every attention
# kernel after the warm-up calls: the default variants named (mma: 16 query rows a warp, dQ
# recomputed), the same for every stall reason's cycles, the alternatives (mma32, dQ from the
# stored dS), and the backward with 32-row tiles. Clocks are left as they are (--clock-control
# none). The full reports go to $OUT/gpu_check/ncu_*.txt (or a temporary folder); one line per
# kernel is printed last, "RESULT ncu_<run>_<kernel>=..." and "RESULT ncu_stalls_<kernel>=..."
# lines for scripts/gpu_check.sh.
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
# Every stall reason's share, not only the one the rules name: the cycles a warp spends stalled on
# each reason between two of its instructions (they add up to "Warp Cycles Per Issued
# Instruction"), with how often a scheduler issues at all and how many warps it can pick from. A
# run of its own, so a metric this ncu does not know costs only this table (and fails no stage).
STALLS="barrier branch_resolving dispatch_stall drain imc_miss lg_throttle long_scoreboard math_pipe_throttle
  membar mio_throttle misc no_instructions not_selected selected short_scoreboard sleeping tex_throttle wait"
METRICS=smsp__average_warps_active_per_issue_active.ratio,smsp__issue_active.avg.per_cycle_active,smsp__warps_eligible.avg.per_cycle_active
for r in $STALLS; do METRICS+=,smsp__average_warps_issue_stalled_${r}_per_issue_active.ratio; done
stalls() {  # NAME ENV...
  local name=$1; shift
  env "$@" ncu --clock-control none -k 'regex:attention_(forward|backward)_' --launch-skip 10 --launch-count 3 \
    --metrics "$METRICS" "$BENCH" cuda 400 3000 16 attention >"$DIR/ncu_$name.txt" 2>&1
}
rc=0
profile default TRACELLM_CUDA_ATTENTION=mma TRACELLM_CUDA_ATTENTION_DQ=recompute || rc=1
stalls stalls TRACELLM_CUDA_ATTENTION=mma TRACELLM_CUDA_ATTENTION_DQ=recompute ||
  echo "stall metrics: ncu failed (a metric this version lacks?): $(grep -m1 -i error "$DIR/ncu_stalls.txt")"
profile alt TRACELLM_CUDA_ATTENTION=mma32 TRACELLM_CUDA_ATTENTION_DQ=stored || rc=1
profile r32 TRACELLM_CUDA_ATTENTION=mma TRACELLM_CUDA_ATTENTION_DQ=recompute32 || rc=1

# a report's kernel header line ("[void] attention_forward_mma_kernel<64, 64, 1, 2>(...) (192, 16,
# 1)x(128, 1, 1), Context 1, ...") as a short name: forward_mma_kernel<64_64_1_2>
KERNEL_NAME='function kernel_name(   k) {
  k = $1 == "void" ? $2 : $1; sub(/[<(].*/, "", k); sub(/^attention_/, "", k)
  if (match($0, /<[^>]*>/)) k = k substr($0, RSTART, RLENGTH)
  gsub(/[ ,]+/, "_", k); return k }'
# one line a kernel: duration, SM throughput, tensor-pipe use where the section gives it,
# achieved occupancy, registers, cycles between a warp's instructions
for run in default alt r32; do
  awk -v run=$run "$KERNEL_NAME"'
    function flush() { if (k != "") printf "RESULT ncu_%s_%s=%s, SM %s%%, occupancy %s%% (%s regs), %s cycles/issue\n", run, k, dur, sm, occ, regs, cpi }
    /Context [0-9]+, Stream/ { flush(); k = kernel_name(); dur = sm = occ = regs = cpi = "?" }
    $1 == "Duration" { dur = $(NF) " " $(NF - 1) }
    /Compute \(SM\) Throughput/ { sm = $(NF) }
    /Achieved Occupancy/ { occ = $(NF) }
    /Registers Per Thread/ { regs = $(NF) }
    /Warp Cycles Per Issued Instruction/ { cpi = $(NF) }
    END { flush() }' "$DIR/ncu_$run.txt"
done
# the default variants' leading stall reasons: cycles a warp waits on each between two of its
# instructions, the largest five, of the total; a scheduler's issue rate and eligible warps
awk "$KERNEL_NAME"'
  function flush(   n, i, j, r, t, list) {
    if (k == "") return
    n = 0; for (r in st) if (st[r] > 0) key[++n] = r
    for (i = 2; i <= n; i++) for (j = i; j > 1 && st[key[j]] > st[key[j - 1]]; j--) { t = key[j]; key[j] = key[j - 1]; key[j - 1] = t }
    list = ""; for (i = 1; i <= n && i <= 5; i++) list = list (i > 1 ? ", " : "") key[i] " " st[key[i]]
    printf "RESULT ncu_stalls_%s=%s (of %s cycles/issue; issuing %s of cycles, %s warps eligible)\n", k, list, tot, iss, elig
    delete st; delete key
  }
  /Context [0-9]+, Stream/ { flush(); k = kernel_name(); tot = iss = elig = "?" }
  $1 ~ /^smsp__average_warps_issue_stalled_/ { r = $1; sub(/^smsp__average_warps_issue_stalled_/, "", r)
                                              sub(/_per_issue_active\.ratio$/, "", r); v = $NF; gsub(/,/, "", v); st[r] = v + 0 }
  $1 == "smsp__average_warps_active_per_issue_active.ratio" { tot = $NF }
  $1 == "smsp__issue_active.avg.per_cycle_active" { iss = $NF }
  $1 == "smsp__warps_eligible.avg.per_cycle_active" { elig = $NF }
  END { flush() }' "$DIR/ncu_stalls.txt"
# the rules' words on what the warps wait for (the default variants)
grep -h -E 'stall' "$DIR"/ncu_default.txt | sed 's/^ *//' | head -6 | cut -c1-240
echo "reports: $DIR/ncu_default.txt, $DIR/ncu_stalls.txt, $DIR/ncu_alt.txt, $DIR/ncu_r32.txt"
exit $rc
