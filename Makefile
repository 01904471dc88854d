# tracellm.c build. `make` builds ./tracellm, `make test` runs every test and ends with
# "N passed, N failed", `make asan` runs the same tests under AddressSanitizer + UBSan.
# Sources are discovered per folder, so a new file needs no Makefile edit.

CC       ?= cc
BUILD    ?= build
# the program; parallel work in one tree uses its own BUILD and BIN (make BUILD=build-x BIN=build-x/tracellm)
BIN      ?= tracellm
# -march=native for local builds; `make PORTABLE=1` for a binary that runs on any x86-64.
ifeq ($(PORTABLE),1)
ARCHFLAGS ?=
else
ARCHFLAGS ?= -march=native
endif
OPT      ?= -O2
CFLAGS   ?=
# Warnings are errors where WERROR=1: .ci/run exports it, so any warning of gcc, clang or nvcc fails CI.
# A user's build prints them and goes on: a newer compiler's new warning must not stop `make demo`.
WERROR   ?= 0
ifeq ($(WERROR),1)
WERR     := -Werror
NVWERR   := -Xcompiler -Werror -Werror all-warnings
endif
WARN     := -Wall -Wextra -Wno-unused-parameter $(WERR)
CPPFLAGS += -I. -D_GNU_SOURCE -MMD -MP
OPENMP   := $(shell echo 'int main(void){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo -fopenmp)
ALLCFLAGS = -std=c11 $(OPT) $(ARCHFLAGS) $(WARN) $(OPENMP) $(CFLAGS)
LDLIBS   += -lz -lm -lpthread $(OPENMP)

LIB_DIRS := util data tokenizer kernels/cpu model train infer eval
LIB_SRC  := $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(wildcard test/test_*.c)
TEST_BIN := $(TEST_SRC:test/%.c=$(BUILD)/test/%)
# GPU tests (test/cuda_test_*.c, test/e2e_cuda_*.sh) build only with the CUDA backend and run in `make test-cuda`
CUDA_TEST_SRC := $(wildcard test/cuda_test_*.c)
CUDA_TEST_BIN := $(CUDA_TEST_SRC:test/%.c=$(BUILD)/test/%)

# CUDA: compiled when nvcc exists (later issues add kernels/cuda/*.cu); otherwise skipped with a message.
NVCC     ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CU_SRC   := $(wildcard kernels/cuda/*.cu)
ifneq ($(strip $(NVCC)),)
ifneq ($(strip $(CU_SRC)),)
GPU_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CU_OBJ   := $(CU_SRC:%.cu=$(BUILD)/%.o)
CPPFLAGS += -DTRACELLM_CUDA -I$(CUDA_HOME)/include
# -lineinfo: source lines in ncu / compute-sanitizer reports at no run-time cost
NVCCFLAGS ?= -lineinfo
# rpath: the binary finds libcudart / libcublasLt without LD_LIBRARY_PATH. `override`: an LDLIBS
# given on the command line (a sanitizer build) keeps the CUDA libraries
override LDLIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lcublasLt -lcublas -lstdc++
endif
endif

# ---- data parallelism (issue 9, train/dist*.c): MPI and NCCL when present ----
# MPI is built in when mpicc answers --showme (OpenMPI) or pkg-config knows ompi-c; without it the
# tcp:// and file:// transports still work and the build is otherwise unchanged. `make MPICC=`
# builds without MPI. `override`: an LDLIBS given on the command line (make asan) keeps -lmpi.
MPICC ?= $(shell command -v mpicc 2>/dev/null)
ifneq ($(strip $(MPICC)),)
MPI_CFLAGS := $(shell $(MPICC) --showme:compile 2>/dev/null || pkg-config --cflags ompi-c 2>/dev/null)
MPI_LIBS   := $(shell $(MPICC) --showme:link 2>/dev/null || pkg-config --libs ompi-c 2>/dev/null)
ifneq ($(strip $(MPI_LIBS)),)
CPPFLAGS += -DTRACELLM_MPI $(MPI_CFLAGS)
override LDLIBS += $(MPI_LIBS)
endif
endif
# NCCL: with the CUDA backend, when nccl.h and libnccl.so are in the CUDA toolkit or the system
ifneq ($(strip $(CU_OBJ)),)
# (NCCL_HOME=DIR names another install with include/ and lib/, e.g. the nvidia-nccl pip wheel,
# whose library is only libnccl.so.2: it is linked by its path)
NCCL_H   := $(firstword $(wildcard $(if $(NCCL_HOME),$(NCCL_HOME)/include/nccl.h) $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h))
NCCL_LIB := $(firstword $(wildcard $(if $(NCCL_HOME),$(NCCL_HOME)/lib/libnccl.so $(NCCL_HOME)/lib/libnccl.so.2) $(CUDA_HOME)/lib64/libnccl.so /usr/lib/x86_64-linux-gnu/libnccl.so /usr/lib64/libnccl.so))
ifneq ($(and $(NCCL_H),$(NCCL_LIB)),)
CPPFLAGS += -DTRACELLM_NCCL -I$(dir $(NCCL_H))
override LDLIBS += $(NCCL_LIB) -Wl,-rpath,$(dir $(NCCL_LIB))
endif
endif
# ---- end of data parallelism ----

.PHONY: all test test-cuda asan fuzz demo clean tracellm-asan
all: $(BIN) $(if $(CU_OBJ),$(CUDA_TEST_BIN))

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALLCFLAGS) -c $< -o $@

$(BUILD)/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) -O3 -std=c++17 $(GPU_ARCH) $(NVCCFLAGS) -I. -MMD -MP -Xcompiler -Wall $(NVWERR) -c $< -o $@

$(BUILD)/libtracellm.a: $(LIB_OBJ) $(CU_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(BUILD)/tracellm.o $(BUILD)/libtracellm.a
	@if [ -n "$(CU_SRC)" ] && [ -z "$(NVCC)" ]; then echo "note: nvcc not found, CUDA backend skipped"; fi
	$(CC) $(ALLCFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/test/%: test/%.c $(BUILD)/libtracellm.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALLCFLAGS) $< $(BUILD)/libtracellm.a -o $@ $(LDLIBS)

# Per-op timing at the shapes of a d12 step (scripts/bench_ops_gpu.c; scripts/gpu_check.sh runs it)
$(BUILD)/bench_ops_gpu: scripts/bench_ops_gpu.c $(BUILD)/libtracellm.a
	$(CC) $(CPPFLAGS) $(ALLCFLAGS) $< $(BUILD)/libtracellm.a -o $@ $(LDLIBS)

test: $(BIN) $(TEST_BIN)
	@TRACELLM=$(BIN) BUILD=$(BUILD) bash test/run.sh

# On a GPU machine: every CUDA op against the CPU backend, the whole model, training and resume.
test-cuda: $(BIN) $(CUDA_TEST_BIN)
	@if [ -z "$(CU_OBJ)" ]; then echo "test-cuda: no CUDA backend in this build (nvcc or kernels/cuda/*.cu missing)"; exit 1; fi
	@TRACELLM=$(BIN) BUILD=$(BUILD) TEST_GLOB='cuda_test_*' E2E_GLOB='e2e_cuda_*.sh' bash test/run.sh

# Same tests, instrumented; its own build folder so the normal build stays untouched (C only: the
# CUDA runtime and ASan do not mix, and the GPU code has its own checks in make test-cuda).
asan:
	$(MAKE) BUILD=build-asan OPT=-O1 CC=clang NVCC= \
	  CFLAGS="-g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
	  LDLIBS="-lz -lm -lpthread -fsanitize=address,undefined" OPENMP= tracellm-asan
tracellm-asan: $(BUILD)/tracellm.o $(BUILD)/libtracellm.a $(TEST_BIN)
	$(CC) $(ALLCFLAGS) $(BUILD)/tracellm.o $(BUILD)/libtracellm.a -o $(BUILD)/tracellm $(LDLIBS)
	@TRACELLM=$(BUILD)/tracellm BUILD=$(BUILD) ASAN_OPTIONS=detect_leaks=0 bash test/run.sh

# Short libFuzzer runs over every parser of outside input (clang). The library is built once with
# fuzzer instrumentation in build-fuzz/, then each test/fuzz_*.c links against it.
FUZZ_SRC := $(wildcard test/fuzz_*.c)
FUZZ_SECONDS ?= 20
FUZZ_FLAGS := -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined
fuzz:
	$(MAKE) BUILD=build-fuzz CC=clang NVCC= OPENMP= OPT=-O1 CFLAGS="$(FUZZ_FLAGS) -fsanitize=fuzzer-no-link" build-fuzz/libtracellm.a
	@for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
	  clang -std=c11 -I. -D_GNU_SOURCE $(FUZZ_FLAGS) -fsanitize=fuzzer $$f build-fuzz/libtracellm.a -o build-fuzz/$$n -lz -lm -lpthread || exit 1; \
	  echo "== $$n ($(FUZZ_SECONDS)s)"; mkdir -p build-fuzz/corpus-$$n; \
	  build-fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -max_len=65536 build-fuzz/corpus-$$n > build-fuzz/$$n.log 2>&1 \
	    || { tail -40 build-fuzz/$$n.log; echo "fuzz: $$n failed (build-fuzz/$$n.log)"; exit 1; }; \
	  tail -1 build-fuzz/$$n.log; done

demo: $(BIN)
	TRACELLM=$(abspath $(BIN)) bash scripts/demo.sh

clean:
	rm -rf build build-asan build-fuzz tracellm

# (.cu objects too: they depend on kernels/ops.h, the Backend table's layout)
-include $(LIB_OBJ:.o=.d) $(CU_OBJ:.o=.d) $(BUILD)/tracellm.d
