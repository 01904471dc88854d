#!/usr/bin/env bash
# `tracellm generate --device cuda` end to end (run by `make test-cuda`; `scripts/cuda_emu_check.sh
# --e2e` runs it on the CUDA emulator): without a GPU, a clear error and no output file; with one,
# a tiny model trained on the CPU generates call graphs through the KV-cache engine on the GPU:
#   - the bf16 table (`cuda`): every request gets its line, every assembled graph is valid (the
#     constraint's guarantee holds whatever the kernels round), and the same seed gives the same
#     answers twice (deterministic kernels);
#   - the fp32 table with strict fp32 GEMMs (TRACELLM_CUDA_MATMUL=fp32: CUDA-core attention, the
#     CPU's arithmetic to ~1e-6) writes the CPU's answers for the same seed (answers_hash equal).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../scripts/lib_corpus.sh"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || true)
case $TRACELLM in /*) ;; *) TRACELLM=$PWD/$TRACELLM ;; esac
if [ -z "$PY" ]; then skip e2e_cuda_generate "needs python3 to read the outputs"; done_tests; fi

# ---- a tiny model on the synthetic corpus, trained on the CPU ----
cd "$TMP"
synth_corpus 300 3 512 recursive 256
check cuda_generate_setup_train $TRACELLM train --data sh/train_000000.bin --out run --layers 2 --heads 2 --embd 64 \
  --seq-len 256 --batch 4 --steps 20 --lr 3e-3 --warmup 3 --print-every 0 --threads 1
G=($TRACELLM generate --model run --tokenizer tok.bin --format recursive --seed 5 --max-tokens 160 --threads 1
   --from-graphs prep/val.jsonl -n 6 --batch 4)

# Probe: without a usable GPU the command fails cleanly, names the CUDA error, writes nothing.
out=$("${G[@]}" --device cuda --out probe.jsonl 2>&1); rc=$?
if [ $rc -ne 0 ]; then
  if grep -q "not built into this binary" <<<"$out"; then skip e2e_cuda_generate "a build without the CUDA backend"; done_tests; fi
  if grep -q "no usable GPU" <<<"$out"; then
    if [ ! -e probe.jsonl ]; then echo "PASS cuda_generate_no_gpu_clear_error"
    else echo "FAIL cuda_generate_no_gpu_clear_error (probe.jsonl was written)"; _failed=1; fi
    skip e2e_cuda_generate "no usable GPU"
    done_tests
  fi
  echo "FAIL cuda_generate_runs (rc=$rc)"; echo "$out" | tail -20 | sed 's/^/    /'; done_tests
fi
echo "PASS cuda_generate_runs"

# ---- the bf16 table: complete, valid, repeatable ----
check cuda_generate_bf16 "${G[@]}" --device cuda --out b1.jsonl --summary b1.json
check cuda_generate_bf16_again "${G[@]}" --device cuda --out b2.jsonl --summary b2.json
check cuda_generate_bf16_complete_valid "$PY" -c "
import json
s = json.load(open('b1.json'))
lines = [json.loads(l) for l in open('b1.jsonl')]
assert s['requested'] == 6 and len(lines) == 6, (s['requested'], len(lines))
assert s['valid'] == s['assembled'], s
print(s['assembled'], 'assembled,', s['valid'], 'valid')"
check cuda_generate_bf16_repeatable "$PY" -c "
import json
a, b = json.load(open('b1.json')), json.load(open('b2.json'))
assert a['answers_hash'] == b['answers_hash'], (a['answers_hash'], b['answers_hash'])
assert open('b1.jsonl').read() == open('b2.jsonl').read()"

# ---- the fp32 table in strict fp32: the CPU's answers ----
check cuda_generate_fp32 env TRACELLM_CUDA_MATMUL=fp32 "${G[@]}" --device cuda-fp32 --out f.jsonl --summary f.json
check cuda_generate_cpu "${G[@]}" --device cpu --out c.jsonl --summary c.json
check cuda_generate_fp32_matches_cpu "$PY" -c "
import json
f, c = json.load(open('f.json')), json.load(open('c.json'))
assert f['answers_hash'] == c['answers_hash'], ('cuda-fp32', f['answers_hash'], 'cpu', c['answers_hash'])"

done_tests
