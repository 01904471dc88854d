#!/usr/bin/env bash
# Counts the machine instructions (SASS, sm_90) that one tile of each tensor-core attention kernel
# executes per warp: the work a GPU-less session can still measure. A copy of
# kernels/cuda/attention_mma.cu is compiled with the 16-byte load path and the no-mask test forced
# true (what a full tile below the diagonal runs, most tiles of a long sequence), and the body of
# each kernel's tile loop is counted by opcode. Static counts, not timings: they say how many
# instructions a warp must issue per HMMA (mma.sync), not how long it waits.
#
#   scripts/attention_sass_count.sh [attention_mma.cu]     (default: this tree's)
#   git show REV:kernels/cuda/attention_mma.cu > /tmp/old.cu && scripts/attention_sass_count.sh /tmp/old.cu
#
# Needs nvcc, cuobjdump and nvdisasm (the CUDA toolkit; on a machine with only nvcc, PyPI's
# nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm wheels carry the two: put their bin/ on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-kernels/cuda/attention_mma.cu}
for t in nvcc cuobjdump nvdisasm python3; do
  command -v "$t" >/dev/null || { echo "attention_sass_count: $t not found" >&2; exit 1; }
done
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/kernels/cuda"
cp kernels/cuda/common.cuh "$W/kernels/cuda/"
# force the 16-byte loads and every no-mask test; each pattern must be found, or the count would
# silently include the paths a full tile skips
python3 - "$SRC" "$W/kernels/cuda/attention_mma.cu" <<'PY'
import re, sys
s = open(sys.argv[1]).read()
rules = [  # (what, its forms: the first found is replaced)
    ("load_tile's 16-byte path", [(r"\n    if \(vec\) \{", "\n    if (true) {")]),
    ("below_diagonal", [(r"return last_key <= w0 && w0 \+ 15 < T;", "return true;")]),
    ("the dk/dv kernel's no-mask test", [(r"if \(w0 \+ 15 <= i0 && i0 \+ QT - 1 < T\)", "if (true)"),
                                         # sessions 6-8 kept the test in a variable
                                         (r"bool full = w0 \+ 15 <= i0 && i0 \+ QT - 1 < T;", "bool full = true;")]),
]
for what, forms in rules:
    for pat, rep in forms:
        s, n = re.subn(pat, rep, s)
        if n: break
    else:
        sys.exit("attention_sass_count: cannot find %s in %s" % (what, sys.argv[1]))
open(sys.argv[2], "w").write(s)
PY
nvcc -O3 -std=c++17 -gencode arch=compute_90,code=sm_90 -diag-suppress 128 -I"$W" -I. \
  -c "$W/kernels/cuda/attention_mma.cu" -o "$W/a.o"
(cd "$W" && cuobjdump -xelf sm_90 a.o >/dev/null && nvdisasm -c ./*.cubin >a.dis)
python3 - "$W/a.dis" <<'PY'
import collections, re, sys
# (what, the mangled name up to the ring argument); since session 11 a kernel's last template
# argument is its ring of tile buffers: ring 2 is counted (the rows marked "ring 3" count 3), and
# an older source, without the argument, matches with its argument list closed there
kernels = [("forward, mma (16 rows a warp)", "attention_forward_mma_kernelILi64ELi64ELi1E", 2),
           ("forward, mma32 (32 rows a warp)", "attention_forward_mma_kernelILi64ELi64ELi2E", 2),
           ("forward, mma, ring 3", "attention_forward_mma_kernelILi64ELi64ELi1E", 3),
           ("dq, recompute", "attention_backward_dq_mma_kernelILi64ELi64E", 2),
           ("dq, recompute32", "attention_backward_dq_mma_kernelILi64ELi32E", 2),
           ("dk/dv, recompute", "attention_backward_dkdv_mma_kernelILi64ELi64ELb0E", 2),
           ("dk/dv, recompute, ring 3", "attention_backward_dkdv_mma_kernelILi64ELi64ELb0E", 3),
           ("dk/dv, recompute32", "attention_backward_dkdv_mma_kernelILi64ELi32ELb0E", 2),
           ("dk/dv, storing dS (stored)", "attention_backward_dkdv_mma_kernelILi64ELi64ELb1E", 2),
           ("dq from the stored dS", "attention_backward_dq_ds_kernelILi64ELi64E", 2)]
funcs, cur = {}, None
for line in open(sys.argv[1]):
    m = re.match(r"\s*\.text\.(\S+):", line)
    if m:
        cur = m.group(1); funcs[cur] = ([], {}, []); continue
    if cur is None: continue
    ins, labels, pend = funcs[cur]
    m = re.match(r"\s*(\.L_x_\d+):", line)
    if m: pend.append(m.group(1)); continue
    m = re.match(r"\s*/\*([0-9a-f]{4,})\*/\s+(?:@!?U?P\w+\s+)?([A-Z0-9_]+)\S*\s*(.*?);", line)
    if m:
        a = int(m.group(1), 16); ins.append((a, m.group(2), m.group(3)))
        for p in pend: labels[p] = a
        pend.clear()
print("%-32s %6s %5s %8s  %s" % ("head size 64, one full tile", "instr", "HMMA", "per HMMA", "most frequent"))
for what, key, st in kernels:
    name = next((f for f in funcs if key + "Li%dEEv" % st in f), None)
    if not name and st == 2: name = next((f for f in funcs if key + "Ev" in f), None)
    if not name: print("%-32s (not in this source)" % what); continue
    ins, labels, _ = funcs[name]
    best = None  # the tile loop: the widest backward branch around HMMA instructions
    for a, op, arg in ins:
        t = re.search(r"(\.L_x_\d+)", arg) if op == "BRA" else None
        if t and labels.get(t.group(1), 1 << 60) < a:
            lo = labels[t.group(1)]
            if any(op2 == "HMMA" for a2, op2, _ in ins if lo <= a2 <= a) and (best is None or a - lo > best[1] - best[0]):
                best = (lo, a)
    c = collections.Counter(op for a, op, _ in ins if best[0] <= a <= best[1])
    n, h = sum(c.values()), c["HMMA"]
    print("%-32s %6d %5d %8.1f  %s" % (what, n, h, n / h, ", ".join("%s %d" % kv for kv in c.most_common(6) if kv[0] != "HMMA")))
PY
