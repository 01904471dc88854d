#!/usr/bin/env bash
# Runs the CUDA backend's kernels on the CPU, under AddressSanitizer + UBSan, through a small
# emulation of CUDA and cuBLASLt (test/cuda_emu/), and runs test/cuda_test_ops.c,
# test/cuda_test_model.c (and with --e2e test/e2e_cuda_train.sh) against it. For machines without
# a GPU: it finds wrong indexing, out-of-bounds accesses, missing barriers between phases, wrong
# cuBLASLt layouts and wrong math before a GPU session spends its budget on them. It cannot find
# races inside a phase or say anything about speed: `make test-cuda` on a GPU remains the test.
#
#   scripts/cuda_emu_check.sh [--e2e]        (build folder: build-cudaemu, or $EMU_BUILD)
set -euo pipefail
cd "$(dirname "$0")/.."
E=${EMU_BUILD:-build-cudaemu}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
E2E=0
[ "${1:-}" = "--e2e" ] && E2E=1

# 1. the C library without the CUDA backend (nvcc off)
make -s BUILD="$E" BIN="$E/tracellm" NVCC= -j2 "$E/libtracellm.a" "$E/tracellm.o"
mkdir -p "$E/emu"

# 2. each kernels/cuda/*.cu as C++ for the host: launches k<<<cfg>>>(args) become
#    emu_launch(emu_cfg(cfg), k, args); dynamic shared memory becomes the emulator's buffer
objs=()
for f in kernels/cuda/*.cu; do
  n=$(basename "$f" .cu)
  python3 - "$f" "$E/emu/$n.cpp" <<'EOF'
import re, sys
src = open(sys.argv[1]).read()
src = re.sub(r"extern __shared__ float (\w+)\[\];", r"float *\1 = (float *)emu_dynamic_smem;", src)
src = re.sub(r"([A-Za-z_]\w*(?:<[^<>;()]*>)?)<<<(.*?)>>>\(", r"emu_launch(emu_cfg(\2), \1, ", src)
open(sys.argv[2], "w").write('#line 1 "%s"\n' % sys.argv[1] + src)
EOF
  g++ -std=c++17 -O1 -g $SAN -I. -Itest/cuda_emu/include -include test/cuda_emu/cuda_emu.h -Wall -Werror \
      -Wno-unknown-pragmas -Wno-unused-function -c "$E/emu/$n.cpp" -o "$E/emu/$n.o"
  objs+=("$E/emu/$n.o")
done
g++ -std=c++17 -O1 -g $SAN -Wall -Werror -c test/cuda_emu/cuda_emu.cpp -o "$E/emu/cuda_emu.o"
objs+=("$E/emu/cuda_emu.o")
# the backend registry with "cuda" in it
cc -std=c11 -O1 -g $SAN -I. -D_GNU_SOURCE -DTRACELLM_CUDA -fopenmp -c kernels/cpu/backend.c -o "$E/emu/backend_registry.o"
objs+=("$E/emu/backend_registry.o")

LIBS=(-lz -lm -lpthread -fopenmp -lstdc++ $SAN)
for t in cuda_test_ops cuda_test_model; do
  cc -std=c11 -O1 -g $SAN -I. -D_GNU_SOURCE -DTRACELLM_CUDA -fopenmp -Wall -Wextra -Werror -Wno-unused-parameter \
     "test/$t.c" "${objs[@]}" "$E/libtracellm.a" -o "$E/$t" "${LIBS[@]}"
done
cc -std=c11 "$E/tracellm.o" "${objs[@]}" "$E/libtracellm.a" -o "$E/tracellm" "${LIBS[@]}"

export ASAN_OPTIONS=detect_leaks=0 OMP_NUM_THREADS=2
rc=0
echo "== cuda_test_ops (emulated)"; "$E/cuda_test_ops" || rc=1
echo "== cuda_test_model (emulated)"; "$E/cuda_test_model" || rc=1
if [ $E2E -eq 1 ]; then
  echo "== e2e_cuda_train.sh (emulated)"; TRACELLM="$E/tracellm" bash test/e2e_cuda_train.sh || rc=1
fi
exit $rc
