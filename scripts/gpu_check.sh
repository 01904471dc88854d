#!/usr/bin/env bash
# Everything a GPU machine has to prove about the CUDA backend, in one command that finishes in
# under 8 minutes on one H100 (a global deadline caps every stage's timeout):
#   1. device   what the card is (nvidia-smi)
#   2. build    make -j16 with the CUDA backend for this card's architecture; warnings counted, not
#               errors (CI makes them errors: a newer nvcc's new warning must not cost a GPU run)
#   3. tests    make test-cuda: every op vs the CPU backend, the whole model vs the PyTorch fixture
#               and the CPU, 20 training steps, determinism, `train --device cuda` resume
#   4. ceiling  scripts/gpu_ceiling.cu: measured bf16 / TF32 GEMM TFLOP/s and copy bandwidth
#   4b. ops     scripts/bench_ops_gpu.c: every op at the shapes of a d12 step vs its floor, and
#               the attention variants one by one
#   5. bench    scripts/bench_train_gpu.sh: tokens/s and MFU of d12, T=1024 vs PyTorch
#   6. dist     NCCL over a 1-rank world (tcp, ZeRO-1, mpirun) against the plain run
#   7. memcheck / racecheck   compute-sanitizer over the op tests (out-of-bounds, shared-memory races)
#   8. ncu      scripts/profile_attention_gpu.sh: the attention kernels' hardware counters (Nsight
#               Compute), every stall reason's cycles in a row of their own
#   8b. bench-lb PyTorch at tracellm's largest batch, against bench+'s number for it
#   9. gen      scripts/bench_generate_gpu.sh: `generate --device cuda` tokens/s and graphs/s vs the
#               CPU (last: it gets the time the checks leave)
# A failing stage is reported in the table and the next stage still runs. Logs go to $OUT (or a
# temporary folder, printed); the summary table is printed last.
#
#   scripts/gpu_check.sh            (from the repository root or anywhere)
set -u
cd "$(dirname "$0")/.."
DEADLINE=$(( $(date +%s) + ${GPU_CHECK_SECONDS:-470} ))
LOGDIR=${OUT:-$(mktemp -d)}/gpu_check
mkdir -p "$LOGDIR"
BUILD=${BUILD:-build-gpu}
BIN=$BUILD/tracellm
if [ -d /usr/local/cuda/bin ]; then export PATH=/usr/local/cuda/bin:$PATH; fi
if [ -d /usr/local/cuda/lib64 ]; then export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}; fi

# NCCL: the toolkit's, else the one PyTorch's nvidia-nccl wheel carries (for the dist stage)
if [ -z "${NCCL_HOME:-}" ] && [ ! -f /usr/local/cuda/include/nccl.h ] && [ ! -f /usr/include/nccl.h ]; then
  NCCL_HOME=$(python3 -c 'import nvidia.nccl as m; print(list(m.__path__)[0])' 2>/dev/null) && export NCCL_HOME
fi

ROWS=()
# run_stage NAME CAP_SECONDS COMMAND...: runs it with its output in $LOGDIR/NAME.log, under
# min(CAP, time left before the deadline); sets RC and DUR.
run_stage() {
  local name=$1 cap=$2; shift 2
  local left=$(( DEADLINE - $(date +%s) )) t0
  [ "$cap" -gt "$left" ] && cap=$left
  if [ "$cap" -le 5 ]; then RC=124; DUR=0; echo "== $name: skipped, no time left" | tee "$LOGDIR/$name.log"; return; fi
  echo "== $name (limit ${cap}s): $*"
  t0=$(date +%s)
  timeout --kill-after=10 "$cap" "$@" >"$LOGDIR/$name.log" 2>&1
  RC=$?
  DUR=$(( $(date +%s) - t0 ))
  tail -n 4 "$LOGDIR/$name.log" | sed 's/^/   /'
}
status() { case $1 in 0) echo ok;; 124|137) echo TIMEOUT;; *) echo "FAIL($1)";; esac; }
row() { ROWS+=("$(printf '%-9s %-9s %5ss  %s' "$1" "$2" "$3" "$4")"); }
result() { sed -n "s/^RESULT $1=//p" "$LOGDIR/${2:-bench}.log" 2>/dev/null | tail -1; }  # KEY [STAGE]

# 1. device
run_stage device 20 nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader
CARD=$(head -1 "$LOGDIR/device.log")
CAP=$(awk -F', ' '{print $4}' <<<"$CARD" | tr -d '.')
row device "$(status $RC)" "$DUR" "$CARD"
case "$CAP" in [0-9][0-9]|[0-9][0-9][0-9]) ARCH="-gencode arch=compute_$CAP,code=sm_$CAP";; *) ARCH=;; esac

# 2. build (only this card's architecture: half the nvcc time); -Xptxas -v puts the kernels'
#    resource report (registers, spills, shared memory) in the build log for free
if [ -n "$ARCH" ]; then
  run_stage build 240 make -j16 BUILD="$BUILD" BIN="$BIN" GPU_ARCH="$ARCH" NVCCFLAGS="-lineinfo -Xptxas -v"
else
  run_stage build 240 make -j16 BUILD="$BUILD" BIN="$BIN" NVCCFLAGS="-lineinfo -Xptxas -v"
fi
BUILD_RC=$RC
grep -E "Compiling entry|registers|spill" "$LOGDIR/build.log" >"$LOGDIR/ptxas.txt" 2>/dev/null
row build "$(status $RC)" "$DUR" "$(grep -c 'nvcc .*\.cu' "$LOGDIR/build.log") .cu files${ARCH:+, sm_$CAP}; $(grep -c 'bytes spill stores' "$LOGDIR/ptxas.txt" 2>/dev/null) kernels reported, $(grep -E '[1-9][0-9]* bytes spill stores' "$LOGDIR/ptxas.txt" 2>/dev/null | grep -vc ' 0 bytes spill stores') spill, $(grep -ciw 'warning' "$LOGDIR/build.log") warning lines"

# 3. tests
if [ $BUILD_RC -eq 0 ]; then
  # TRACELLM_CUDA_SYNC=1: a kernel fault is reported by the op that caused it
  run_stage tests 240 env TRACELLM_CUDA_SYNC=1 make test-cuda BUILD="$BUILD" BIN="$BIN" ${ARCH:+GPU_ARCH="$ARCH"} NVCCFLAGS="-lineinfo -Xptxas -v"
  row tests "$(status $RC)" "$DUR" "$(grep -E '^[0-9]+ passed' "$LOGDIR/tests.log" | tail -1)"
else
  row tests skipped 0 "build failed"
fi

# 4. ceilings
run_stage ceiling 90 bash -c "nvcc -O3 -std=c++17 ${ARCH:--arch=native} scripts/gpu_ceiling.cu -lcublasLt -o '$LOGDIR/gpu_ceiling' && '$LOGDIR/gpu_ceiling'"
row ceiling "$(status $RC)" "$DUR" "$(grep -oE 'gemm bf16 [^:]*: [0-9.]+ ms, [0-9.]+ TFLOP/s' "$LOGDIR/ceiling.log" | sed 's/.*, //') bf16, $(grep -oE 'gemm tf32 .*TFLOP/s' "$LOGDIR/ceiling.log" | sed 's/.*, //') tf32, $(grep -oE '[0-9]+ GB/s' "$LOGDIR/ceiling.log") copy"

# 4b. where a d12 step's time goes, op by op, against the floors of the ceilings just measured
if [ $BUILD_RC -eq 0 ]; then
  TF=$(grep -oE 'gemm bf16 [^:]*: [0-9.]+ ms, [0-9.]+' "$LOGDIR/ceiling.log" | sed 's/.*, //'); GBS=$(grep -oE '[0-9]+ GB/s' "$LOGDIR/ceiling.log" | grep -oE '[0-9]+')
  # the bf16 run is what training runs (auto: the attention kernels timed and the faster kept; its
  # choice goes to stderr, unprefixed); then the attention alone with each variant named, and the
  # other switches' alternatives
  OPS="'$BUILD/bench_ops_gpu'"; A="${TF:-400} ${GBS:-3000}"
  run_stage ops 150 bash -c "set -o pipefail; make -s BUILD='$BUILD' BIN='$BIN' ${ARCH:+GPU_ARCH='$ARCH'} '$BUILD/bench_ops_gpu' && $OPS cuda $A | sed 's/^/bf16 /' && TRACELLM_CUDA_ATTENTION=mma TRACELLM_CUDA_ATTENTION_DQ=recompute $OPS cuda $A 16 attention | grep '^attention' | sed 's/^/mma /' && TRACELLM_CUDA_ATTENTION=mma TRACELLM_CUDA_ATTENTION_DQ=recompute TRACELLM_CUDA_ATTENTION_STAGES=3 $OPS cuda $A 16 attention | grep '^attention' | sed 's/^/st3 /' && TRACELLM_CUDA_ATTENTION=wmma $OPS cuda $A 16 attention | grep '^attention' | sed 's/^/wmma /' && TRACELLM_CUDA_ATTENTION=mma TRACELLM_CUDA_ATTENTION_DQ=recompute32 $OPS cuda $A 16 attention | grep '^attention bwd' | sed 's/^/r32 /' && TRACELLM_CUDA_LAYERNORM=shared $OPS cuda $A 16 layernorm | grep '^layernorm bwd' | sed 's/^/lnsh /' && TRACELLM_CUDA_LAYERNORM=split TRACELLM_CUDA_GELU=separate TRACELLM_CUDA_ATTENTION=mma32 TRACELLM_CUDA_ATTENTION_DQ=stored $OPS cuda $A | grep -E '^(layernorm bwd|matmul\\+gelu|attention)' | sed 's/^/alt /' && TRACELLM_CUDA_BIAS_GRAD=epilogue $OPS cuda $A 16 matmul | grep -E '^matmul.* bwd' | sed 's/^/bgrad /' && TRACELLM_CUDA_CLASSIFIER=reread $OPS cuda $A 16 classifier | grep '^classifier' | sed 's/^/clre /'"
  row ops "$(status $RC)" "$DUR" "sum of ops $(sed -n 's/^bf16 RESULT ops_step_ms=//p' "$LOGDIR/ops.log") ms/step (cuda, bf16); top: $(sed -n 's/^bf16 //p' "$LOGDIR/ops.log" | awk '$NF ~ /%$/ {print $(NF), $0}' | sort -rn | head -3 | awk '{print $2, $3, $4, $NF}' | paste -sd, -)"
  # the bf16 table's attention: auto's choice, mma.sync 16 rows a warp + dQ recomputed (rings of 2
  # tile buffers, then 3), WMMA, and mma32 (forward) / dS stored, 32-row tiles (backward), ms per call
  att() { awk -v p="$1" '$1 == p && $2 == "attention" && $3 == "'"$2"'" {print $5}' "$LOGDIR/ops.log"; }
  auto=$(sed -nE 's/^cuda attention (forward|backward), .*: ([a-z0-9-]+)$/\2/p' "$LOGDIR/ops.log" | head -2 | paste -sd/ -)
  # the MLP's GELU as cuBLASLt epilogues (default) vs passes of their own, ms per call
  mg() { awk -v p="$1" -v l="$2" '$1 == p && $2 == "matmul+gelu" && $3 == l {print $6}' "$LOGDIR/ops.log"; }
  # the linear layers' backward with the bias gradient by the column-sum kernel (default) or the
  # dweight GEMM's BGRADB epilogue: qkv / attproj / fc / fcproj ms per call
  mb() { for l in qkv attproj fc fcproj; do awk -v p="$1" -v l=$l '$1 == p && $2 ~ /^matmul/ && $3 == l && $4 == "bwd" {print $6}' "$LOGDIR/ops.log"; done | paste -sd/ -; }
  # the classifier's row through shared memory (default) or read twice from global memory
  cl() { awk -v p="$1" '$1 == p && $2 == "classifier" {print $4}' "$LOGDIR/ops.log"; }
  row ops+ info - "bf16 attention fwd / bwd ms per call: auto (${auto:-?}) $(att bf16 fwd) / $(att bf16 bwd), mma $(att mma fwd) / $(att mma bwd), the same with 3-stage rings $(att st3 fwd) / $(att st3 bwd), mma32 fwd $(att alt fwd), bwd with dS stored $(att alt bwd), with 32-row tiles $(att r32 bwd), wmma $(att wmma fwd) / $(att wmma bwd); layernorm bwd fused $(awk '$1 == "bf16" && $2 == "layernorm" && $3 == "bwd" {print $5}' "$LOGDIR/ops.log") / shared-memory sums $(awk '$1 == "lnsh" && $2 == "layernorm" {print $5}' "$LOGDIR/ops.log") / split $(awk '$1 == "alt" && $2 == "layernorm" {print $5}' "$LOGDIR/ops.log") ms; gelu epilogue / separate fc fwd $(mg bf16 fc) / $(mg alt fc), fcproj bwd $(mg bf16 fcproj) / $(mg alt fcproj) ms; matmul bwd qkv/attproj/fc/fcproj, dbias by colsum $(mb bf16) / by BGRADB $(mb bgrad) ms; classifier row in shared memory / read twice $(cl bf16) / $(cl clre) ms"
fi

# 5. training throughput (GPU_CHECK_SKIP_BENCH=1 leaves it out when only the checks are wanted)
if [ -n "${GPU_CHECK_SKIP_BENCH:-}" ]; then
  row bench skipped 0 "GPU_CHECK_SKIP_BENCH set"
elif [ $BUILD_RC -eq 0 ]; then
  run_stage bench 300 env TRACELLM="$BIN" bash scripts/bench_train_gpu.sh
  row bench "$(status $RC)" "$DUR" "d12 T=1024 B=16: tracellm bf16 $(result tracellm_bf16_tokens_per_s) tok/s (MFU $(result tracellm_bf16_mfu); attention $(result tracellm_bf16_attention)) vs torch $(result torch_kind) $(result torch_tokens_per_s) tok/s (MFU $(result torch_mfu)): $(result ratio)"
  row bench+ info - "largest batch $(result tracellm_bf16_largest_batch): $(result tracellm_bf16_largest_batch_tokens_per_s) tok/s (MFU $(result tracellm_bf16_largest_batch_mfu))"
else
  row bench skipped 0 "build failed"
fi

# 6. data parallelism on one GPU: NCCL with a 1-rank world (tcp, ZeRO-1, mpirun) against the plain run
if [ $BUILD_RC -eq 0 ]; then
  run_stage dist 120 bash scripts/dist_gpu_check.sh "$BIN"
  row dist "$(status $RC)" "$DUR" "1-rank NCCL: tcp, ZeRO-1, mpirun vs plain"
else
  row dist skipped 0 "build failed"
fi

# 7. compute-sanitizer over the op tests, with whatever time is left
if [ $BUILD_RC -eq 0 ] && command -v compute-sanitizer >/dev/null; then
  for tool in memcheck racecheck; do
    run_stage "$tool" 120 env TRACELLM_TEST_SEED=1 compute-sanitizer --tool "$tool" --error-exitcode 3 "$BUILD/test/cuda_test_ops"
    row "$tool" "$(status $RC)" "$DUR" "$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$LOGDIR/$tool.log" | tail -1) $(grep -c '^PASS' "$LOGDIR/$tool.log") ops PASS"
  done
else
  row sanitizer skipped 0 "compute-sanitizer not found or build failed"
fi

# 8. why the attention kernels take what they take: Nsight Compute's counters, with what is left
if [ $BUILD_RC -eq 0 ] && command -v ncu >/dev/null; then
  run_stage ncu 90 bash scripts/profile_attention_gpu.sh "$BUILD/bench_ops_gpu"
  row ncu "$(status $RC)" "$DUR" "$(sed -n 's/^RESULT ncu_//p' "$LOGDIR/ncu.log" | grep -v '^stalls_' | sed 's/_kernel<[^=]*=/=/' | paste -sd';' - | cut -c1-1000)"
  st=$(sed -n 's/^RESULT ncu_stalls_//p' "$LOGDIR/ncu.log" | sed 's/_kernel<[^=]*=/=/' | paste -sd';' - | cut -c1-1000)
  row stalls info - "${st:-none read: see ncu.log and ncu_stalls.txt}"
else
  row ncu skipped 0 "ncu not found or build failed"
fi

# 8b. the issue's comparison at "the largest batch that fits": PyTorch at tracellm's largest batch
#     (the bench compares both at B=16 and probes the larger batches for tracellm alone), with
#     what is left after the checks and the counters (a benchmark: GPU_CHECK_SKIP_BENCH leaves it out)
LB=$(result tracellm_bf16_largest_batch)
if [ -z "${GPU_CHECK_SKIP_BENCH:-}" ] && [ $BUILD_RC -eq 0 ] && [ -n "$LB" ] && [ "$LB" != 16 ]; then
  run_stage benchlb 150 bash scripts/bench_train_gpu.sh --batch "$LB" --torch-only
  ours=$(result tracellm_bf16_largest_batch_tokens_per_s)
  theirs=$(result torch_tokens_per_s benchlb)
  ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.3fx", a / b; else printf "n/a" }')
  row bench-lb "$(status $RC)" "$DUR" "d12 T=1024 B=$LB: tracellm bf16 $ours tok/s (MFU $(result tracellm_bf16_largest_batch_mfu)) vs torch $(result torch_kind benchlb) ${theirs:-?} tok/s (MFU $(result torch_mfu benchlb)): $ratio"
fi

# 9. generation throughput, with what is left (a benchmark: GPU_CHECK_SKIP_BENCH leaves it out too)
if [ -n "${GPU_CHECK_SKIP_BENCH:-}" ]; then
  row gen skipped 0 "GPU_CHECK_SKIP_BENCH set"
elif [ $BUILD_RC -eq 0 ]; then
  run_stage gen 90 env TRACELLM="$BIN" bash scripts/bench_generate_gpu.sh
  gen() { sed -n "s/^RESULT $1=//p" "$LOGDIR/gen.log" 2>/dev/null | tail -1; }
  row gen "$(status $RC)" "$DUR" "generate d6 (384 ch): cuda $(gen gen_cuda_tokens_per_s) tok/s, $(gen gen_cuda_graphs_per_s) graphs/s (valid $(gen gen_cuda_valid)) vs cpu $(gen gen_cpu_tokens_per_s) tok/s: $(gen gen_ratio)"
else
  row gen skipped 0 "build failed"
fi

echo
echo "logs: $LOGDIR"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')"
echo "=================== gpu_check summary ($(date -u +%Y-%m-%dT%H:%MZ)) ==================="
printf '%-9s %-9s %6s  %s\n' stage status time result
for r in "${ROWS[@]}"; do echo "$r"; done
