// The emulator refuses what a GPU refuses (scripts/cuda_emu_check.sh runs this first): a launch
// asking for more than 48 KiB of dynamic shared memory without its kernel's opt-in fails, one
// with it runs; a cp.async's data is not in shared memory before the wait_group that covers it;
// warps run different numbers of shuffles between two __syncthreads, as they may on a GPU; a
// read of shared memory missing its barrier sees the stale value in some pass of a loop; warps
// drift apart by several warp operations between two __syncthreads.
// Each of these must die instead (the script checks the message): `selftest misaligned`, a
// 16-byte vector load at an 8-byte aligned address (a GPU faults; UBSan must stop it);
// `selftest divergent`, a shuffle that one lane of the warp does not reach; `selftest async`, a
// 16-byte cp.async from an address 4 bytes past a 16-byte boundary.
#include <math.h>
#include <stdio.h>
#include <string.h>

static void kernel(float *out) {
    extern char *emu_dynamic_smem;
    if (threadIdx.x == 0) out[blockIdx.x] = (float)(emu_dynamic_smem != nullptr);
}
// out: what a thread sees of its 16-byte cp.async before the commit, between the commit and a
// wait that leaves the group pending, and after the wait that covers it (first float of each)
static void async_kernel(float *out, const float *src) {
    float *sh = (float *)emu_dynamic_smem + 4 * threadIdx.x;
    sh[0] = -1.0f;
    emu_cp_async(sh, src + 4 * threadIdx.x, 16, true);
    out[3 * threadIdx.x] = sh[0];
    emu_cp_async_commit();
    emu_cp_async_wait(1);
    out[3 * threadIdx.x + 1] = sh[0];
    emu_cp_async_wait(0);
    out[3 * threadIdx.x + 2] = sh[0];
}
// Warp w runs w + 1 warp sums (5 shuffles each) from 1 in every lane, so out[w] = 32^(w + 1),
// and reads a shared flag that thread 0 sets only after the second __syncthreads: on a GPU no
// warp has passed it while warp 3 still shuffles, so every warp reads 0. (An emulator that made
// each shuffle a block-wide barrier let warp 0 through its __syncthreads early: warp 3 read 1.)
static void uneven_kernel(float *out) {
    static float flag;
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    if (threadIdx.x == 0) flag = 0.0f;
    float v = 1.0f;
    __syncthreads();
    for (int r = 0; r <= w; r++)
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) out[w] = v + 1000.0f * flag;
    __syncthreads();
    if (threadIdx.x == 0) flag = 1.0f;
}
// Thread 0 writes pass p into shared memory and thread 63 reads it with no barrier between: a race
// that must show (seen[p] = p - 1, the stale value) in some of the 16 passes.
static void racy_kernel(float *seen) {
    static float cell;
    if (threadIdx.x == 0) cell = -1.0f;
    __syncthreads();
    for (int p = 0; p < 16; p++) {
        if (threadIdx.x == 0) cell = (float)p;
        if (threadIdx.x == 63) seen[p] = cell;
        __syncthreads();
    }
}
// Two warps each run 512 shuffles, lane 0 counting them in `done`; before each, warp 1 records how
// far warp 0 is ahead. On a GPU nothing holds them together between the __syncthreads, so a warp
// may run many operations ahead: a buffer refilled by the warp ahead while the other still reads
// it (a barrier missing from a tile loop) only shows if the emulator lets them drift that far.
static void drift_kernel(float *lead) {
    static int done[2];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    if (lane == 0) done[w] = 0;
    __syncthreads();
    float v = 1.0f;
    for (int r = 0; r < 512; r++) {
        if (w == 1 && lane == 0) lead[r] = (float)(done[0] - done[1]);
        v += __shfl_xor_sync(0xffffffffu, v, 1);
        if (lane == 0) done[w]++;
    }
    __syncthreads();
}
static void divergent_kernel(float *out) {
    if ((threadIdx.x & 31) == 5) return;  // lane 5 exits; the rest shuffle
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}
static float load_x(const float *p) { return ((const float4 *)p)->x; }
static void async_misaligned_kernel(float *out, const float *src) {
    if (threadIdx.x) return;
    emu_cp_async((float *)emu_dynamic_smem, src + 1, 16, true);
    emu_cp_async_commit();
    emu_cp_async_wait(0);
    out[0] = ((float *)emu_dynamic_smem)[0];
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "misaligned")) {
        alignas(16) float buf[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        volatile float x = load_x(buf + 2);  // 8 bytes past a 16-byte boundary
        printf("selftest: a misaligned float4 load went through (%g)\n", (double)x);
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "divergent")) {
        float out[32];
        emu_launch(emu_cfg(dim3(1), dim3(32)), divergent_kernel, out);
        printf("selftest: a shuffle went through with a lane exited\n");
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "async")) {
        alignas(16) float src[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[1];
        emu_launch(emu_cfg(dim3(1), dim3(32), 64), async_misaligned_kernel, out, (const float *)src);
        printf("selftest: a misaligned cp.async went through (%g)\n", (double)out[0]);
        return 0;
    }
    float out[4] = {0};
    int fails = 0;
    emu_launch(emu_cfg(dim3(1), dim3(32), 64 << 10), kernel, out);
    if (cudaGetLastError() == cudaSuccess) { printf("FAIL: 64 KiB of shared memory without opt-in launched\n"); fails++; }
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 << 10);
    emu_launch(emu_cfg(dim3(1), dim3(32), 64 << 10), kernel, out);
    if (cudaGetLastError() != cudaSuccess || out[0] != 1.0f) { printf("FAIL: 64 KiB after the opt-in did not run\n"); fails++; }
    emu_launch(emu_cfg(dim3(1), dim3(32), 96 << 10), kernel, out);
    if (cudaGetLastError() == cudaSuccess) { printf("FAIL: 96 KiB launched with 64 KiB granted\n"); fails++; }
    if (!fails) printf("PASS emulator: dynamic shared memory past 48 KiB needs the kernel's opt-in\n");
    float src[4 * 32], seen[3 * 32];
    for (int i = 0; i < 4 * 32; i++) src[i] = (float)(i + 1);
    emu_launch(emu_cfg(dim3(1), dim3(32), 4 * 32 * sizeof(float)), async_kernel, seen, (const float *)src);
    int late = 0;
    for (int t = 0; t < 32; t++)  // in flight: neither the old -1 nor the data; landed: the data
        late += seen[3 * t] == seen[3 * t] || seen[3 * t + 1] == seen[3 * t + 1] || seen[3 * t + 2] != src[4 * t];
    if (late) { printf("FAIL: %d threads saw a cp.async's data before its wait, or not after\n", late); fails++; }
    else printf("PASS emulator: a cp.async lands at the wait_group that covers it\n");
    emu_launch(emu_cfg(dim3(1), dim3(128)), uneven_kernel, out);
    float want = 1.0f;
    int wrong = 0;
    for (int w = 0; w < 4; w++) wrong += out[w] != (want *= 32.0f);
    if (wrong) { printf("FAIL: warps with different numbers of shuffles got %g %g %g %g\n", out[0], out[1], out[2], out[3]); fails++; }
    else printf("PASS emulator: warps run different numbers of shuffles between two __syncthreads\n");
    float read[16];
    emu_launch(emu_cfg(dim3(1), dim3(64)), racy_kernel, read);
    int stale = 0;
    for (int p = 0; p < 16; p++) stale += read[p] == (float)(p - 1);
    if (!stale) { printf("FAIL: a read missing its barrier saw the write in all 16 passes\n"); fails++; }
    else printf("PASS emulator: a read missing its barrier saw the stale value in %d of 16 passes\n", stale);
    float lead[512];
    emu_launch(emu_cfg(dim3(1), dim3(64)), drift_kernel, lead);
    float most = 0.0f;
    for (int r = 0; r < 512; r++) most = fabsf(lead[r]) > most ? fabsf(lead[r]) : most;
    if (most < 4.0f) { printf("FAIL: warps stayed within %g warp operations of each other\n", (double)most); fails++; }
    else printf("PASS emulator: a warp ran %g warp operations ahead of another\n", (double)most);
    return fails != 0;
}
