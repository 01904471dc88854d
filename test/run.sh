#!/usr/bin/env bash
# Runs every test binary ($BUILD/test/test_*) and every end-to-end script (test/e2e_*.sh), adds up
# their PASS/FAIL/SKIP lines and ends with "N passed, N failed, N skipped".
# A binary or script that crashes or exits non-zero without printing FAIL counts as one failure.
# `bash test/run.sh NAME...` runs only the tests whose name contains one of the words.
set -u
BUILD=${BUILD:-build}
export TRACELLM=${TRACELLM:-./tracellm}
export TRACELLM=$(cd "$(dirname "$TRACELLM")" && pwd)/$(basename "$TRACELLM")
pass=0; fail=0; skip=0; failed_names=()
want() { [ $# -eq 0 ] && return 0; for w in "${FILTER[@]}"; do [[ "$1" == *"$w"* ]] && return 0; done; return 1; }
FILTER=("$@")
tests=()
# TEST_GLOB / E2E_GLOB select another family (make test-cuda: cuda_test_* and e2e_cuda_*.sh)
for t in "$BUILD"/test/${TEST_GLOB:-test_*}; do [ -x "$t" ] && tests+=("$t"); done
for t in test/${E2E_GLOB:-e2e_*.sh}; do [ -f "$t" ] && [[ "$t" != test/e2e_cuda_* || -n "${E2E_GLOB:-}" ]] && tests+=("$t"); done
for t in "${tests[@]}"; do
  name=$(basename "$t")
  if [ ${#FILTER[@]} -gt 0 ] && ! want "$name"; then continue; fi
  start=$(date +%s%N)
  if [[ "$t" == *.sh ]]; then out=$(timeout 900 bash "$t" 2>&1); rc=$?
  else out=$(timeout 900 "$t" 2>&1); rc=$?; fi
  ms=$(( ($(date +%s%N) - start) / 1000000 )); secs="$((ms / 1000)).$((ms % 1000 / 100))"
  p=$(grep -c '^PASS ' <<<"$out"); f=$(grep -c '^FAIL ' <<<"$out"); s=$(grep -c '^SKIP ' <<<"$out")
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; out="$out"$'\n'"FAIL $name (exit code $rc)"; fi
  if [ "$f" -gt 0 ]; then
    echo "== $name: $p passed, $f failed (${secs}s)"; echo "$out" | sed 's/^/   /'
    failed_names+=("$name")
  else
    echo "== $name: $p passed, $s skipped (${secs}s)"
    grep '^SKIP ' <<<"$out" | sed 's/^/   /'
  fi
  pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
done
[ ${#failed_names[@]} -gt 0 ] && echo "failed: ${failed_names[*]}"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
