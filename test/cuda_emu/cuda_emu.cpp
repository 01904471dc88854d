// The CPU emulation of CUDA / cuBLASLt declared in cuda_emu.h (scripts/cuda_emu_check.sh).
#include "cuda_emu.h"
#include <time.h>
#include <setjmp.h>
#include <ucontext.h>
#include <algorithm>
#include <map>
#include <vector>

emu_uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;
char *emu_dynamic_smem;

// ---- fibers: the threads of one block ----
namespace {
// AT_BLOCK: at __syncthreads, released when every thread of the block that has not exited is
// there (exited threads count as arrived, as on sm_70 and later). AT_WARP: at a warp operation
// (a shuffle, __syncwarp, mma, ldmatrix), released when all 32 lanes of its warp are there; the
// other warps go on meanwhile, as on the GPU. A warp whose lanes wait at a warp operation while
// others of it have exited or wait at __syncthreads would hang or be undefined on a GPU: abort.
enum { RUNNABLE, AT_BLOCK, AT_WARP, DONE };
// first entry through makecontext/swapcontext, every later switch through _setjmp/_longjmp
// (no signal-mask system call: the emulation spends its time in switches)
struct Fiber { ucontext_t ctx; jmp_buf jb, start; char *stack; int state, fresh, made; unsigned tid; };
const size_t STACK = 256 << 10;
std::vector<Fiber> fibers;
ucontext_t scheduler;
jmp_buf scheduler_jb;
int current;
const std::function<void()> *body;
cudaError_t last_error = cudaSuccess;
// cp.async copies in flight, per thread: data, destination, group (0: not committed yet)
struct AsyncCopy { unsigned char data[16]; void *dst; int bytes, group; };
std::vector<std::vector<AsyncCopy>> copies;
std::vector<int> groups_committed;
// the order the fibers run in between two switches, forward or backward, drawn afresh at every
// switch (a fixed xorshift sequence: runs repeat exactly), so a read missing its barrier sees the
// stale value whichever thread writes first, in some pass of a loop if not in all. CUDA_EMU_SEED
// starts the sequence elsewhere: other interleavings, for hunting a race the default one misses.
uint32_t first_order_state() {
    const char *e = getenv("CUDA_EMU_SEED");
    return e && *e ? (uint32_t)strtoul(e, NULL, 10) * 2654435761u | 1u : 2463534242u;
}
uint32_t order_state = first_order_state();
bool next_order_reversed() {
    order_state ^= order_state << 13;
    order_state ^= order_state >> 17;
    order_state ^= order_state << 5;
    return order_state >> 31;
}
// Whether a warp whose lanes are all at a warp operation sits out the next round, drawn from the
// same sequence at every release: so warps drift apart by many warp operations between two
// __syncthreads, as a GPU's schedulers let them, and a warp that refills a buffer another warp
// is still reading (a missing barrier a whole tile wide) shows. Without it every warp advanced one
// operation a round, and no warp was ever more than one ahead.
bool next_warp_held() { return next_order_reversed(); }
// warp shuffle exchange slots, one per thread
std::vector<float> xf;
std::vector<double> xd;

// A fiber lives across launches: it restarts here (longjmp to `start`) for each new block.
void fiber_main() {
    _setjmp(fibers[current].start);
    (*body)();
    fibers[current].state = DONE;
    _longjmp(scheduler_jb, 1);
}

void barrier(int kind) {
    fibers[current].state = kind;
    if (!_setjmp(fibers[current].jb)) _longjmp(scheduler_jb, 1);
    unsigned t = fibers[current].tid;
    threadIdx.x = t % blockDim.x; threadIdx.y = t / blockDim.x % blockDim.y; threadIdx.z = t / (blockDim.x * blockDim.y);
}
}  // namespace

static void full_mask(unsigned mask, const char *op) {
    if (mask != 0xffffffffu) {
        fprintf(stderr, "cuda_emu: %s with mask %#x: only whole warps are emulated\n", op, mask);
        abort();
    }
}
void __syncthreads() { barrier(AT_BLOCK); }
void __syncwarp(unsigned mask) { full_mask(mask, "__syncwarp"); barrier(AT_WARP); }
// the shuffle through the warp's exchange slots of its type
template <class V> static V shfl_xor(std::vector<V> &slots, unsigned mask, V v, int m) {
    full_mask(mask, "__shfl_xor_sync");
    unsigned t = fibers[current].tid;
    slots[t] = v;
    barrier(AT_WARP);
    V r = slots[(t ^ (unsigned)m) < slots.size() ? t ^ (unsigned)m : t];
    barrier(AT_WARP);
    return r;
}
float __shfl_xor_sync(unsigned mask, float v, int m) { return shfl_xor(xf, mask, v, m); }
double __shfl_xor_sync(unsigned mask, double v, int m) { return shfl_xor(xd, mask, v, m); }

static float bf16_lo(unsigned v) { return __uint_as_float(v << 16); }
static float bf16_hi(unsigned v) { return __uint_as_float(v & 0xffff0000u); }
void emu_mma_m16n8k16_bf16(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    static std::vector<unsigned> xa, xb;  // every thread's fragments
    unsigned tid = fibers[current].tid, n = (unsigned)fibers.size();
    if (xa.size() < 4 * (size_t)n) { xa.resize(4 * (size_t)n); xb.resize(2 * (size_t)n); }
    for (int k = 0; k < 4; k++) xa[4 * tid + k] = a[k];
    for (int k = 0; k < 2; k++) xb[2 * tid + k] = b[k];
    barrier(AT_WARP);
    unsigned w = tid & ~31u, lane = tid & 31, g = lane >> 2, t = lane & 3;
    // A (r, k) and B (k, c) from the lanes that hold them
    auto A = [&](unsigned r, unsigned k) {
        unsigned owner = w + (r % 8) * 4 + (k % 8) / 2, reg = (r >= 8) + 2 * (k >= 8), v = xa[4 * owner + reg];
        return k & 1 ? bf16_hi(v) : bf16_lo(v);
    };
    auto B = [&](unsigned k, unsigned c) {
        unsigned owner = w + c * 4 + (k % 8) / 2, v = xb[2 * owner + (k >= 8)];
        return k & 1 ? bf16_hi(v) : bf16_lo(v);
    };
    float out[4];
    for (int e = 0; e < 4; e++) {
        unsigned r = g + 8 * (e >> 1), c = 2 * t + (e & 1);
        float acc = d[e];
        for (unsigned k = 0; k < 16; k++) acc += A(r, k) * B(k, c);
        out[e] = acc;
    }
    barrier(AT_WARP);
    for (int e = 0; e < 4; e++) d[e] = out[e];
}

void emu_ldmatrix_x4(unsigned (&r)[4], const void *row, bool trans) {
    static std::vector<const unsigned short *> xp;  // every thread's row address
    unsigned tid = fibers[current].tid, n = (unsigned)fibers.size();
    if (xp.size() < n) xp.resize(n);
    unsigned w = tid & ~31u, lane = tid & 31, g = lane >> 2, t = lane & 3;
    if ((uintptr_t)row & 15) {
        fprintf(stderr, "emu: ldmatrix row address %p of thread %u is not 16-byte aligned\n", row, tid);
        abort();
    }
    xp[tid] = (const unsigned short *)row;
    barrier(AT_WARP);
    for (unsigned j = 0; j < 4; j++) {
        const unsigned short *const *rows = &xp[w + 8 * j];
        unsigned lo = trans ? rows[2 * t][g] : rows[g][2 * t], hi = trans ? rows[2 * t + 1][g] : rows[g][2 * t + 1];
        r[j] = lo | hi << 16;
    }
    barrier(AT_WARP);
}

void emu_cp_async(void *dst, const void *src, int bytes, bool valid) {
    unsigned t = fibers[current].tid;
    if ((bytes != 4 && bytes != 8 && bytes != 16) || (uintptr_t)dst % bytes || (valid && (uintptr_t)src % bytes)) {
        fprintf(stderr, "emu: cp.async of %d bytes from %p to %p in thread %u: not a size of 4, 8 or 16 at addresses "
                        "aligned to it\n", bytes, src, dst, t);
        abort();
    }
    AsyncCopy c;
    if (valid) memcpy(c.data, src, bytes);
    else memset(c.data, 0, bytes);
    c.dst = dst;
    c.bytes = bytes;
    c.group = 0;
    copies[t].push_back(c);
    memset(dst, 0xff, bytes);  // in flight: not the old contents, not yet the new
}
void emu_cp_async_commit() {
    unsigned t = fibers[current].tid;
    int g = ++groups_committed[t];
    for (AsyncCopy &c : copies[t])
        if (!c.group) c.group = g;
}
void emu_cp_async_wait(int n) {  // every committed group but the n most recent lands
    unsigned t = fibers[current].tid;
    int upto = groups_committed[t] - n;
    std::vector<AsyncCopy> &q = copies[t];
    size_t keep = 0;
    for (size_t i = 0; i < q.size(); i++) {
        if (q[i].group && q[i].group <= upto) memcpy(q[i].dst, q[i].data, q[i].bytes);
        else q[keep++] = q[i];
    }
    q.resize(keep);
}

static std::map<const void *, size_t> smem_grants;
void emu_grant_smem(const void *kernel, int bytes) { smem_grants[kernel] = bytes > 0 ? (size_t)bytes : 0; }
static size_t smem_granted(const void *kernel) {
    auto it = smem_grants.find(kernel);
    return it == smem_grants.end() ? 48u << 10 : std::max(it->second, (size_t)48u << 10);
}

void emu_run(const EmuCfg &cfg, const std::function<void()> &b) {
    unsigned nt = cfg.block.x * cfg.block.y * cfg.block.z;
    if (nt == 0 || nt > 1024 || cfg.grid.x == 0 || cfg.grid.y == 0 || cfg.grid.z == 0 || cfg.grid.y > 65535 ||
        cfg.grid.z > 65535) {
        last_error = cudaErrorInvalidConfiguration;
        return;
    }
    if (cfg.smem > (227u << 10)) { last_error = cudaErrorInvalidValue; return; }
    if (cfg.smem > (48u << 10) && cfg.smem > smem_granted(cfg.kernel)) {  // no opt-in: the driver refuses it
        fprintf(stderr, "cuda_emu: a launch asks for %zu bytes of dynamic shared memory, its kernel was granted %zu "
                "(cudaFuncSetAttribute)\n", cfg.smem, smem_granted(cfg.kernel));
        last_error = cudaErrorInvalidValue;
        return;
    }
    if (nt % 32) { fprintf(stderr, "cuda_emu: block of %u threads is not whole warps\n", nt); abort(); }
    gridDim = cfg.grid;
    blockDim = cfg.block;
    body = &b;
    std::vector<char> smem(cfg.smem + 16);
    emu_dynamic_smem = smem.data();
    if (fibers.size() < nt) {
        size_t old = fibers.size();
        fibers.resize(nt);
        for (size_t i = old; i < nt; i++) { fibers[i].stack = (char *)malloc(STACK); fibers[i].made = 0; }
    }
    xf.assign(nt, 0.0f);
    xd.assign(nt, 0.0);
    copies.resize(nt);
    groups_committed.resize(nt);
    for (unsigned bz = 0; bz < cfg.grid.z; bz++)
        for (unsigned by = 0; by < cfg.grid.y; by++)
            for (unsigned bx = 0; bx < cfg.grid.x; bx++) {
                blockIdx.x = bx; blockIdx.y = by; blockIdx.z = bz;
                memset(smem.data(), 0xff, smem.size());  // dynamic shared memory starts as garbage (NaN)
                for (unsigned t = 0; t < nt; t++) {
                    Fiber &f = fibers[t];
                    if (!f.made) {
                        getcontext(&f.ctx);
                        f.ctx.uc_stack.ss_sp = f.stack;
                        f.ctx.uc_stack.ss_size = STACK;
                        f.ctx.uc_link = NULL;
                        makecontext(&f.ctx, fiber_main, 0);
                    }
                    f.state = RUNNABLE;
                    f.fresh = 1;
                    f.tid = t;
                    copies[t].clear();
                    groups_committed[t] = 0;
                }
                for (;;) {
                    int live = 0;
                    bool reversed = next_order_reversed();
                    for (unsigned i = 0; i < nt; i++) {
                        unsigned t = reversed ? nt - 1 - i : i;
                        if (fibers[t].state != RUNNABLE) continue;
                        current = (int)t;
                        threadIdx.x = t % blockDim.x; threadIdx.y = t / blockDim.x % blockDim.y;
                        threadIdx.z = t / (blockDim.x * blockDim.y);
                        if (!_setjmp(scheduler_jb)) {
                            Fiber &f = fibers[t];
                            if (!f.fresh) _longjmp(f.jb, 1);
                            f.fresh = 0;
                            if (f.made) _longjmp(f.start, 1);
                            f.made = 1;
                            swapcontext(&scheduler, &f.ctx);
                        }
                    }
                    // warps whose 32 lanes wait at a warp operation go on, each unless drawn to
                    // sit out this round (when none goes on, the held ones do); else, when nothing
                    // else waits, __syncthreads releases the block
                    for (int pass = 0; pass < 2 && !live; pass++)
                        for (unsigned w = 0; w < nt; w += 32) {
                            int at_warp = 0;
                            for (unsigned t = w; t < w + 32; t++) at_warp += fibers[t].state == AT_WARP;
                            if (at_warp == 32) {
                                if (pass == 0 && next_warp_held()) continue;
                                for (unsigned t = w; t < w + 32; t++) fibers[t].state = RUNNABLE;
                                live += 32;
                            } else if (at_warp) {
                                int done = 0;
                                for (unsigned t = w; t < w + 32; t++) done += fibers[t].state == DONE;
                                fprintf(stderr, "cuda_emu: block (%u,%u,%u) warp %u: %d lanes wait at a warp "
                                        "operation (shuffle, mma, ldmatrix, __syncwarp) while %d have exited and %d "
                                        "wait at __syncthreads: a GPU would hang or compute garbage\n",
                                        bx, by, bz, w / 32, at_warp, done, 32 - at_warp - done);
                                abort();
                            }
                        }
                    if (!live)
                        for (unsigned t = 0; t < nt; t++)
                            if (fibers[t].state == AT_BLOCK) { fibers[t].state = RUNNABLE; live++; }
                    if (!live) break;
                }
            }
}

// ---- runtime ----
const char *cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "emulated CUDA error"; }
const char *cudaGetErrorName(cudaError_t e) { return e == cudaSuccess ? "cudaSuccess" : "cudaErrorEmulated"; }
cudaError_t cudaGetDeviceCount(int *n) { *n = 1; return cudaSuccess; }
cudaError_t cudaSetDevice(int) { return cudaSuccess; }
cudaError_t cudaGetDevice(int *d) { *d = 0; return cudaSuccess; }
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr, int) { *v = 227 << 10; return cudaSuccess; }
cudaError_t cudaMalloc(void **p, size_t n) {
    *p = malloc(n ? n : 1);
    if (!*p) return cudaErrorMemoryAllocation;
    memset(*p, 0xa5, n);  // garbage, as fresh device memory is
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) { free(p); return cudaSuccess; }
cudaError_t cudaMallocHost(void **p, size_t n) { *p = malloc(n ? n : 1); return *p ? cudaSuccess : cudaErrorMemoryAllocation; }
cudaError_t cudaFreeHost(void *p) { free(p); return cudaSuccess; }
cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind) { memmove(dst, src, n); return cudaSuccess; }
cudaError_t cudaMemset(void *p, int v, size_t n) { memset(p, v, n); return cudaSuccess; }
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t) { memset(p, v, n); return cudaSuccess; }
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind, cudaStream_t) { memmove(dst, src, n); return cudaSuccess; }
cudaError_t cudaGetLastError(void) { cudaError_t e = last_error; last_error = cudaSuccess; return e; }
cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
struct EmuEvent { double s; };
cudaError_t cudaEventCreate(cudaEvent_t *e) { *e = new EmuEvent{0}; return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    e->s = ts.tv_sec + 1e-9 * ts.tv_nsec;
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) { *ms = (float)(1e3 * (b->s - a->s)); return cudaSuccess; }
cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return cudaSuccess; }

// ---- cuBLASLt ----
struct EmuLtHandle { int dummy; };
cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) { *h = new EmuLtHandle(); return CUBLAS_STATUS_SUCCESS; }
const char *cublasLtGetStatusString(cublasStatus_t s) { return s == CUBLAS_STATUS_SUCCESS ? "success" : "emulated cuBLAS error"; }
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t c, cudaDataType_t scale) {
    *d = new EmuLtDesc{c, scale, CUBLAS_OP_N, CUBLAS_OP_N, CUBLASLT_EPILOGUE_DEFAULT, NULL, -1, NULL, 0};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a, const void *buf, size_t n) {
    switch (a) {
    case CUBLASLT_MATMUL_DESC_TRANSA: if (n != sizeof d->ta) return CUBLAS_STATUS_INVALID_VALUE; memcpy(&d->ta, buf, n); break;
    case CUBLASLT_MATMUL_DESC_TRANSB: if (n != sizeof d->tb) return CUBLAS_STATUS_INVALID_VALUE; memcpy(&d->tb, buf, n); break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE: if (n != sizeof d->epi) return CUBLAS_STATUS_INVALID_VALUE; memcpy(&d->epi, buf, n); break;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: if (n != sizeof d->bias) return CUBLAS_STATUS_INVALID_VALUE; memcpy(&d->bias, buf, n); break;
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: if (n != sizeof(cudaDataType_t)) return CUBLAS_STATUS_INVALID_VALUE; memcpy(&d->bias_type, buf, n); break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER: if (n != sizeof d->aux) return CUBLAS_STATUS_INVALID_VALUE; memcpy(&d->aux, buf, n); break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD: if (n != sizeof d->aux_ld) return CUBLAS_STATUS_INVALID_VALUE; memcpy(&d->aux_ld, buf, n); break;
    default: return CUBLAS_STATUS_INVALID_VALUE;
    }
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) { delete d; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType_t t, uint64_t rows, uint64_t cols, int64_t ld) {
    if (ld < (int64_t)rows) return CUBLAS_STATUS_INVALID_VALUE;  // column-major: ld >= rows
    *l = new EmuLtLayout{t, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) { delete l; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) { *p = new EmuLtPref{0, {256, 256, 256, 256}}; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t a, const void *buf, size_t n) {
    if (a == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) { if (n != sizeof p->ws) return CUBLAS_STATUS_INVALID_VALUE; memcpy(&p->ws, buf, n); return CUBLAS_STATUS_SUCCESS; }
    int i = a - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES;
    if (i < 0 || i > 3 || n != 4) return CUBLAS_STATUS_INVALID_VALUE;
    memcpy(&p->align[i], buf, 4);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) { delete p; return CUBLAS_STATUS_SUCCESS; }

// op(X) dims
static void op_dims(const EmuLtLayout *l, cublasOperation_t t, uint64_t *r, uint64_t *c) {
    *r = t == CUBLAS_OP_T ? l->cols : l->rows;
    *c = t == CUBLAS_OP_T ? l->rows : l->cols;
}
static bool gelu_epilogue(const EmuLtDesc *d) {
    return d->epi == CUBLASLT_EPILOGUE_GELU_AUX || d->epi == CUBLASLT_EPILOGUE_GELU_AUX_BIAS || d->epi == CUBLASLT_EPILOGUE_DGELU;
}
static bool shapes_ok(const EmuLtDesc *d, const EmuLtLayout *a, const EmuLtLayout *b, const EmuLtLayout *c, const EmuLtLayout *dl) {
    uint64_t ar, ac, br, bc;
    op_dims(a, d->ta, &ar, &ac);
    op_dims(b, d->tb, &br, &bc);
    // the GELU epilogues' aux matrix (D's type): ld a multiple of 8, at least D's rows (cuBLASLt's
    // documented rule), and a 16-byte aligned address (what this project promises it)
    if (gelu_epilogue(d) && (!d->aux || d->aux_ld % 8 || d->aux_ld < (int64_t)dl->rows || (uintptr_t)d->aux % 16))
        return false;
    // cuBLASLt's table for compute 32F: A, B of one type; C, D of one type, fp32 or (bf16 inputs only) bf16
    return ac == br && ar == dl->rows && bc == dl->cols && c->rows == dl->rows && c->cols == dl->cols &&
           a->type == b->type && c->type == dl->type &&
           (dl->type == CUDA_R_32F || (dl->type == CUDA_R_16BF && a->type == CUDA_R_16BF));
}
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dl,
                                              cublasLtMatmulPreference_t, int want, cublasLtMatmulHeuristicResult_t *r, int *found) {
    if (want < 1) return CUBLAS_STATUS_INVALID_VALUE;
    if (!shapes_ok(d, a, b, c, dl)) return CUBLAS_STATUS_INVALID_VALUE;
    memset(r, 0, sizeof *r);
    *found = 1;
    return CUBLAS_STATUS_SUCCESS;
}
static float tf32(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    u = (u + 0x1000u) & ~0x1fffu;  // 10 explicit mantissa bits, round to nearest
    memcpy(&x, &u, 4);
    return x;
}
static float load(const void *p, cudaDataType_t t, size_t i) {
    if (t == CUDA_R_16BF) return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    return ((const float *)p)[i];
}
static void store(void *p, cudaDataType_t t, size_t i, float v) {
    if (t == CUDA_R_16BF) ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
    else ((float *)p)[i] = v;
}
// GELU's tanh approximation and its derivative (what the GPT-2 GELU and cuBLASLt's epilogue compute)
static float gelu_tanh(float x) { return 0.5f * x * (1.0f + tanhf(0.7978845608f * (x + 0.044715f * x * x * x))); }
static float gelu_tanh_grad(float x) {
    float th = tanhf(0.7978845608f * (x + 0.044715f * x * x * x));
    return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * 0.7978845608f * (1.0f + 3.0f * 0.044715f * x * x);
}
cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t d, const void *alpha_, const void *A,
                              cublasLtMatrixLayout_t la, const void *B, cublasLtMatrixLayout_t lb, const void *beta_,
                              const void *C, cublasLtMatrixLayout_t lc, void *D, cublasLtMatrixLayout_t ld,
                              const cublasLtMatmulAlgo_t *, void *, size_t, cudaStream_t) {
    if (!shapes_ok(d, la, lb, lc, ld)) return CUBLAS_STATUS_INVALID_VALUE;
    // the bias is of D's type unless set; a bf16 bias needs bf16 inputs
    cudaDataType_t bias_type = d->bias_type == -1 ? ld->type : (cudaDataType_t)d->bias_type;
    if ((d->epi == CUBLASLT_EPILOGUE_BIAS || d->epi == CUBLASLT_EPILOGUE_GELU_AUX_BIAS) &&
        (!d->bias || (bias_type != CUDA_R_32F && !(bias_type == CUDA_R_16BF && la->type == CUDA_R_16BF))))
        return CUBLAS_STATUS_INVALID_VALUE;
    float alpha = *(const float *)alpha_, beta = *(const float *)beta_;
    // where D = gelu'(aux) * (product + beta C) would put C is not documented: callers use beta 0
    if (d->epi == CUBLASLT_EPILOGUE_DGELU && beta != 0.0f) return CUBLAS_STATUS_INVALID_VALUE;
    // BGRADB: the bias buffer gets op(B)'s sums over k, one per column of D (written, not added)
    if (d->epi == CUBLASLT_EPILOGUE_BGRADB && (!d->bias || (bias_type != CUDA_R_32F && bias_type != lb->type)))
        return CUBLAS_STATUS_INVALID_VALUE;
    uint64_t m = ld->rows, n = ld->cols, k;
    uint64_t ar, ac;
    op_dims(la, d->ta, &ar, &ac);
    k = ac;
    bool round_tf32 = d->compute == CUBLAS_COMPUTE_32F_FAST_TF32 && la->type == CUDA_R_32F;
    std::vector<float> out(m * n), pre(gelu_epilogue(d) ? m * n : 0);
    for (uint64_t j = 0; j < n; j++)
        for (uint64_t i = 0; i < m; i++) {
            float acc = 0.0f;
            for (uint64_t p = 0; p < k; p++) {
                size_t ia = d->ta == CUBLAS_OP_T ? p + i * la->ld : i + p * la->ld;
                size_t ib = d->tb == CUBLAS_OP_T ? j + p * lb->ld : p + j * lb->ld;
                float x = load(A, la->type, ia), y = load(B, lb->type, ib);
                if (round_tf32) { x = tf32(x); y = tf32(y); }
                acc += x * y;
            }
            float v = alpha * acc;
            if (beta != 0.0f) v += beta * load(C, lc->type, i + j * lc->ld);
            if (d->epi == CUBLASLT_EPILOGUE_BIAS || d->epi == CUBLASLT_EPILOGUE_GELU_AUX_BIAS) v += load(d->bias, bias_type, i);
            if (d->epi == CUBLASLT_EPILOGUE_GELU_AUX || d->epi == CUBLASLT_EPILOGUE_GELU_AUX_BIAS) {
                pre[i + j * m] = v;  // the aux output: GELU's input, unrounded until stored
                v = gelu_tanh(v);
            }
            if (d->epi == CUBLASLT_EPILOGUE_DGELU) v *= gelu_tanh_grad(load(d->aux, ld->type, i + j * d->aux_ld));
            out[i + j * m] = v;
        }
    if (d->epi == CUBLASLT_EPILOGUE_BGRADB)
        for (uint64_t j = 0; j < n; j++) {
            float s = 0.0f;
            for (uint64_t p = 0; p < k; p++) s += load(B, lb->type, d->tb == CUBLAS_OP_T ? j + p * lb->ld : p + j * lb->ld);
            store((void *)d->bias, bias_type, j, s);
        }
    for (uint64_t j = 0; j < n; j++)
        for (uint64_t i = 0; i < m; i++) {
            store(D, ld->type, i + j * ld->ld, out[i + j * m]);
            if (d->epi == CUBLASLT_EPILOGUE_GELU_AUX || d->epi == CUBLASLT_EPILOGUE_GELU_AUX_BIAS)
                store(d->aux, ld->type, i + j * d->aux_ld, pre[i + j * m]);
        }
    return CUBLAS_STATUS_SUCCESS;
}
