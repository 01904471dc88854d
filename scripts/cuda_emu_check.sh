#!/usr/bin/env bash
# Runs the CUDA backend's kernels on the CPU through a small emulation of CUDA and cuBLASLt
# (test/cuda_emu/), and runs test/cuda_test_ops.c (under AddressSanitizer + UBSan),
# test/cuda_test_model.c, test/e2e_cuda_generate.sh and, with --e2e, test/e2e_cuda_train.sh
# against it. For machines without
# a GPU: it finds wrong indexing, out-of-bounds accesses, 16-byte loads and stores at addresses a
# GPU would fault on, launches with more shared memory than their kernel asked the driver for,
# warp operations not every lane reaches, cp.async tiles read before their wait, missing
# barriers between phases (warps drift apart by many warp operations between two __syncthreads,
# so a tile refilled while another warp still reads it shows), wrong cuBLASLt layouts and wrong
# math before a GPU session
# spends its budget on them. It cannot find races inside a phase, register limits or anything
# about speed: `make test-cuda` on a GPU remains the test.
# About 6.5 minutes on 2 cores (11.5-15.5 with --e2e). The emulator's interleaving of threads and
# warps is a fixed sequence, so runs repeat exactly; CUDA_EMU_SEED=N draws another one.
#
#   scripts/cuda_emu_check.sh [--e2e]        (build folder: build-cudaemu, or $EMU_BUILD)
set -uo pipefail
cd "$(dirname "$0")/.."
E=${EMU_BUILD:-build-cudaemu}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# the fast build keeps UBSan's alignment check alone (about +25% time): the model tests and the
# end-to-end runs reach the parameter and activation offsets the op tests do not
ALIGN="-fsanitize=alignment -fno-sanitize-recover=alignment"
E2E=0
[ "${1:-}" = "--e2e" ] && E2E=1
die() { echo "cuda_emu_check: $*" >&2; exit 1; }

# 1. the C library without the CUDA backend (nvcc off)
make -s BUILD="$E" BIN="$E/tracellm" NVCC= MPICC= -j2 "$E/libtracellm.a" "$E/tracellm.o" || die "C build failed"
mkdir -p "$E/emu"

# 2. each kernels/cuda/*.cu as C++ for the host: launches k<<<cfg>>>(args) become
#    emu_launch(emu_cfg(cfg), k, args); dynamic shared memory becomes the emulator's buffer.
cat >"$E/emu/translate.py" <<'PYEOF'
import re, sys
src = open(sys.argv[1]).read()
src = re.sub(r"extern __shared__ (?:__align__\(\d+\) )?float (\w+)\[\];", r"float *\1 = (float *)emu_dynamic_smem;", src)
src = re.sub(r"([A-Za-z_]\w*(?:<[^<>;()]*>)?)<<<(.*?)>>>\(", r"emu_launch(emu_cfg(\2), \1, ", src)
open(sys.argv[2], "w").write('#line 1 "%s"\n' % sys.argv[1] + src)
PYEOF
for f in kernels/cuda/*.cu; do
  python3 "$E/emu/translate.py" "$f" "$E/emu/$(basename "$f" .cu).cpp" || die "cannot translate $f"
done
# Two builds: ASan + UBSan for the op tests (slow: ASan and fiber stacks do not mix fast), plain
# -O2 for the whole-model test and the end-to-end run.
build_objs() {  # FOLDER FLAGS...
  local d=$1 f; shift
  mkdir -p "$d"
  for f in "$E"/emu/*.cpp; do
    g++ -std=c++17 "$@" -I. -Itest/cuda_emu/include -include test/cuda_emu/cuda_emu.h -Wall -Werror \
        -Wno-unknown-pragmas -Wno-unused-function -c "$f" -o "$d/$(basename "$f" .cpp).o" || die "compile $f"
  done
  g++ -std=c++17 "$@" -Wall -Werror -c test/cuda_emu/cuda_emu.cpp -o "$d/cuda_emu.o" || die "compile cuda_emu.cpp"
  # the backend registry with "cuda" in it
  cc -std=c11 "$@" -I. -D_GNU_SOURCE -DTRACELLM_CUDA -fopenmp -c kernels/cpu/backend.c -o "$d/backend_registry.o" ||
    die "compile backend.c"
}
build_objs "$E/san" -O1 -g $SAN
build_objs "$E/fast" -O2 -g $ALIGN
LIBS=(-lz -lm -lpthread -fopenmp -lstdc++)
CFL=(-std=c11 -I. -D_GNU_SOURCE -DTRACELLM_CUDA -fopenmp -Wall -Wextra -Werror -Wno-unused-parameter)
cc "${CFL[@]}" -O1 -g $SAN test/cuda_test_ops.c "$E"/san/*.o "$E/libtracellm.a" -o "$E/cuda_test_ops" "${LIBS[@]}" $SAN ||
  die "link cuda_test_ops"
cc "${CFL[@]}" -O2 -g test/cuda_test_model.c "$E"/fast/*.o "$E/libtracellm.a" -o "$E/cuda_test_model" "${LIBS[@]}" $ALIGN ||
  die "link cuda_test_model"
cc -std=c11 "$E/tracellm.o" "$E"/fast/*.o "$E/libtracellm.a" -o "$E/tracellm" "${LIBS[@]}" $ALIGN || die "link tracellm"
# the emulator's own strictness, in the sanitized build the op tests use (test/cuda_emu/selftest.cpp)
g++ -std=c++17 -O1 -g $SAN -I. -Itest/cuda_emu/include -include test/cuda_emu/cuda_emu.h -Wall -Werror \
    test/cuda_emu/selftest.cpp "$E/san/cuda_emu.o" -o "$E/emu_selftest" $SAN || die "build the emulator's self-test"

export ASAN_OPTIONS=detect_leaks=0 OMP_NUM_THREADS=2 TRACELLM_CUDA_TEST_SMALL=1
rc=0
echo "== the emulator refuses what a GPU refuses"
"$E/emu_selftest" 2>/dev/null || rc=1
# what a GPU faults or hangs on must stop the emulation: MODE, the message expected, what it is
must_die() {
  if ("$E/emu_selftest" "$1"; exit $?) >"$E/emu_selftest.log" 2>&1 || ! grep -q "$2" "$E/emu_selftest.log"; then
    echo "FAIL emulator: $3 was not stopped"; rc=1
  else
    echo "PASS emulator: $3 is stopped"
  fi
}
must_die misaligned "misaligned address" "a misaligned 16-byte load"
must_die divergent "lanes wait at a warp operation" "a shuffle one lane of the warp does not reach"
must_die async "not a size of 4, 8 or 16 at addresses aligned to it" "a misaligned 16-byte cp.async"
echo "== cuda_test_ops (emulated, ASan + UBSan)"
"$E/cuda_test_ops" 2>&1 | grep -v "WARNING: ASan\|False positive\|sanitizers/issues/189"
[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
echo "== cuda_test_model (emulated)"
"$E/cuda_test_model" || rc=1
echo "== e2e_cuda_generate.sh (emulated)"
TRACELLM="$E/tracellm" bash test/e2e_cuda_generate.sh || rc=1
if [ $E2E -eq 1 ]; then
  echo "== e2e_cuda_train.sh (emulated)"
  TRACELLM="$E/tracellm" bash test/e2e_cuda_train.sh || rc=1
fi
[ $rc -eq 0 ] && echo "cuda_emu_check: all passed" || echo "cuda_emu_check: FAILED"
exit $rc
