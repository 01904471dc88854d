// Data parallelism: joining the world, the gradient reduction, ZeRO-1. See train/dist.h.
#include "train/dist.h"
#include "util/util.h"
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

// ---- watchdog: a blocking MPI or NCCL call that never returns becomes an error ----
static _Atomic double watch_since;      // 0 when no call is in flight
static const char *_Atomic watch_what;
static int watch_rank;
static double watch_timeout;

static void *watchdog(void *arg) {
    for (;;) {
        usleep(200 * 1000);
        double since = watch_since;
        if (since > 0 && now_seconds() - since > watch_timeout) {
            fprintf(stderr, "tracellm: error: rank %d: %s waited more than %.0f s (--dist-timeout) for the other ranks; "
                            "one of them died or hangs\n", watch_rank, watch_what, watch_timeout);
            fflush(stderr);
            _exit(1);
        }
    }
    return NULL;
}
void dist_watch_start(int rank, double timeout) {
    watch_rank = rank;
    watch_timeout = timeout;
    pthread_t th;
    if (pthread_create(&th, NULL, watchdog, NULL)) fatal("cannot start the collective watchdog thread");
    pthread_detach(th);
}
void dist_watch_begin(const char *what) { watch_what = what; watch_since = now_seconds(); }
void dist_watch_end(void) { watch_since = 0; }

// ---- ranks > 0: only errors and warnings reach stderr, prefixed with the rank ----
typedef struct { FILE *real; int rank; char line[4096]; size_t n; } Quiet;

static void quiet_flush_line(Quiet *q) {
    if (q->n && !strncmp(q->line, "tracellm:", 9)) {
        fprintf(q->real, "[rank %d] %.*s", q->rank, (int)q->n, q->line);
        fflush(q->real);
    }
    q->n = 0;
}
static ssize_t quiet_write(void *cookie, const char *buf, size_t size) {
    Quiet *q = cookie;
    for (size_t i = 0; i < size; i++) {
        if (q->n < sizeof q->line) q->line[q->n++] = buf[i];
        if (buf[i] == '\n') quiet_flush_line(q);
    }
    return (ssize_t)size;
}
static void quiet_stderr(int rank) {
    static Quiet q;
    q.rank = rank;
    int fd = dup(2);
    q.real = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!q.real) return;
    FILE *f = fopencookie(&q, "w", (cookie_io_functions_t){.write = quiet_write});
    if (!f) return;
    setvbuf(f, NULL, _IONBF, 0);
    stderr = f;
}

// ---- joining ----

static int env_int(const char *const *names, int fallback) {
    for (int i = 0; names[i]; i++) {
        const char *s = getenv(names[i]);
        char *end;
        if (s && *s) {
            long v = strtol(s, &end, 10);
            if (!*end && v >= 0 && v < (1 << 20)) return (int)v;
        }
    }
    return fallback;
}

Dist *dist_init(const DistOpts *o) {
    Dist *d = xcalloc(1, sizeof *d);
    d->timeout = o->timeout > 0 ? o->timeout : 300;
    d->zero = o->zero;
    if (o->zero != 0 && o->zero != 1) fatal("--zero %d: expected 0 (off) or 1 (shard the optimizer state)", o->zero);
    if (o->timeout < 0) fatal("--dist-timeout must be positive");
    if (o->overlap && strcmp(o->overlap, "on") && strcmp(o->overlap, "off")) fatal("--overlap %s: expected on or off", o->overlap);
    d->overlap = !o->overlap || !strcmp(o->overlap, "on");
    const char *url = o->url;
#ifdef TRACELLM_MPI
    if (!url && mpi_launched()) url = "mpi";
#endif
    d->rank = 0; d->world = 1; d->kind = "local";
    static const char *const wn[] = {"WORLD_SIZE", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", NULL};
    static const char *const rn[] = {"RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK", NULL};
    // N copies of a one-process run would each train alone and overwrite one another's files
    if (!url && env_int(wn, 1) > 1)
        fatal("started as one of %d processes (WORLD_SIZE / SLURM_NTASKS / mpirun) but %s; give --dist tcp://HOST:PORT or "
              "file:///PATH", env_int(wn, 1),
#ifdef TRACELLM_MPI
              "MPI was not detected (srun: add --mpi=pmix)"
#else
              "this binary was built without MPI (no mpicc at build time)"
#endif
        );
    if (!url) {
        if (o->world > 1) fatal("--world-size %d needs --dist tcp://HOST:PORT or file:///PATH (or a launch by mpirun)", o->world);
        if (d->zero) fprintf(stderr, "train: --zero 1 has no effect in a single process (no --dist): the optimizer state stays whole\n");
        d->zero = 0;
        return d;
    }
    if (!strcmp(url, "mpi")) {
#ifdef TRACELLM_MPI
        d->t = mpi_join(&d->rank, &d->world, d->timeout);
        d->kind = "mpi";
        dist_watch_start(d->rank, d->timeout);
#else
        fatal("--dist mpi: this binary was built without MPI (install libopenmpi-dev and rebuild), use --dist tcp://HOST:PORT");
#endif
    } else if (!strncmp(url, "tcp://", 6) || !strncmp(url, "file://", 7)) {
        d->world = o->world ? o->world : env_int(wn, 0);
        d->rank = o->rank ? o->rank : env_int(rn, 0);
        if (d->world < 1) fatal("--dist %s: give --world-size N (or set WORLD_SIZE)", url);
        if (d->rank < 0 || d->rank >= d->world) fatal("--rank %d: expected 0..%d for --world-size %d", d->rank, d->world - 1, d->world);
        d->t = tcp_join(url, d->rank, d->world, d->timeout);
        d->kind = "tcp";  // the ring has its own deadlines; the watchdog starts with NCCL
    } else {
        fatal("--dist %s: expected mpi, tcp://HOST:PORT or file:///PATH", url);
    }
    // the collectives of --zero 0 and --zero 1 differ: every rank must agree, or they deadlock
    int zeros = (int)dist_sum(d, d->zero);
    if (zeros != 0 && zeros != d->world) fatal("rank %d: --zero %d, but %d of %d ranks have --zero 1: give every rank the same options", d->rank, d->zero, zeros, d->world);
    // so do those of --overlap on (one collective per bucket) and off (one for the whole buffer)
    int overlaps = (int)dist_sum(d, d->overlap);
    if (overlaps != 0 && overlaps != d->world)
        fatal("rank %d: --overlap %s, but %d of %d ranks have --overlap on: give every rank the same options", d->rank,
              d->overlap ? "on" : "off", overlaps, d->world);
    if (d->rank > 0) quiet_stderr(d->rank);
    fprintf(stderr, "train: data parallel over %d rank%s (%s)%s\n", d->world, d->world == 1 ? "" : "s", d->kind, d->zero ? ", ZeRO-1 optimizer slices" : "");
    return d;
}

void dist_free(Dist *d) {
    if (!d) return;
    if (d->t) d->t->free(d->t);
#if defined(TRACELLM_CUDA) && defined(TRACELLM_NCCL)
    if (d->nccl) nccl_free(d->nccl);
#endif
    if (d->m) { d->be->free(d->m); d->be->free(d->v); }
    free(d->count); free(d->off); free(d->stage); free(d->pcount); free(d->poff);
    free(d);
}

// ---- host collectives ----

void dist_sum_array(Dist *d, double *x, int n) {
    if (!d->t) return;
    dist_watch_begin("all-reduce of step values");
    d->t->allreduce(d->t, x, (size_t)n, sizeof(double));
    dist_watch_end();
}
double dist_sum(Dist *d, double x) {
    dist_sum_array(d, &x, 1);
    return x;
}
// Exact for small non-negative ints: every rank writes its value into its own cell of a sum.
int dist_max_int(Dist *d, int x) {
    if (!d->t) return x;
    double *all = xcalloc(d->world, sizeof *all);
    all[d->rank] = x > 0 ? x : 0;
    dist_sum_array(d, all, d->world);
    int m = 0;
    for (int r = 0; r < d->world; r++) if (all[r] > m) m = (int)all[r];
    free(all);
    return m;
}
void dist_barrier(Dist *d) { (void)dist_sum(d, 0.0); }

// ---- the gradient and the update ----

static bool on_host(const GPT *m) { return m->be == &backend_cpu; }

static void zero_plan(Dist *d, size_t n) {
    if (d->count && d->n == n) return;
    int W = d->world;
    d->n = n;
    d->count = xrealloc(d->count, W * sizeof *d->count);
    d->off = xrealloc(d->off, W * sizeof *d->off);
    d->pcount = xrealloc(d->pcount, W * sizeof *d->pcount);
    d->poff = xrealloc(d->poff, W * sizeof *d->poff);
    for (int r = 0; r < W; r++) {
        d->count[r] = n / W + ((size_t)r < n % W);
        d->off[r] = r ? d->off[r - 1] + d->count[r - 1] : 0;
    }
}

#if defined(TRACELLM_CUDA) && defined(TRACELLM_NCCL)
static void *nccl_for(Dist *d, const GPT *m) {
    if (on_host(m) || !d->t) return NULL;
    if (!d->nccl) {
        if (strcmp(d->kind, "mpi")) dist_watch_start(d->rank, d->timeout);
        d->nccl = nccl_join(d->t, d->rank, d->world, d->timeout);
    }
    return d->nccl;
}
#endif

// A buffer of the model (backend memory) as host floats: itself on the CPU backend, else a copy.
static float *host_view(Dist *d, const GPT *m, float *buf, size_t n, bool download) {
    if (on_host(m)) return buf;
    if (!d->stage) d->stage = xmalloc(m->n_params * sizeof(float));
    if (download) m->be->download(d->stage, buf, n * sizeof(float));
    return d->stage;
}
static void host_done(const GPT *m, float *buf, const float *host, size_t off, size_t n) {
    if (!on_host(m)) m->be->upload(buf + off, host + off, n * sizeof(float));
}

void dist_broadcast_params(Dist *d, GPT *m) {
    if (!d->t) return;
    float *h = host_view(d, m, m->params, m->n_params, true);
    dist_watch_begin("broadcast of the parameters");
    d->t->broadcast(d->t, h, m->n_params * sizeof(float));
    dist_watch_end();
    host_done(m, m->params, h, 0, m->n_params);
    gpt_params_changed(m);
}

// ---- the overlapped reduction: buckets started during the backward pass ----

// Non-blocking collectives take int counts on MPI: bucket ranges go in pieces of at most 2^30.
#define PIECE ((size_t)1 << 30)

// The model's gradient-ready hook (model/gpt.h): starts the reduction of one bucket.
static void grads_ready(void *ctx, const GradRange *r, int n) {
    Dist *d = ctx;
    GPT *m = d->model;
    int W = d->world;
    dist_watch_begin(d->zero ? "start of a gradient bucket's reduce" : "start of a gradient bucket's all-reduce");
#if defined(TRACELLM_CUDA) && defined(TRACELLM_NCCL)
    void *nc = on_host(m) ? NULL : d->nccl;
    if (nc) nccl_bucket_begin(nc);
#else
    void *nc = NULL;
#endif
    for (int i = 0; i < n; i++)
        for (size_t a = r[i].off, end = r[i].off + r[i].n; a < end; a += PIECE) {
            size_t b = end - a < PIECE ? end : a + PIECE;
            if (d->zero) {
                // the piece cut by the ZeRO-1 slices: adjacent parts in rank order, most of them empty
                for (int k = 0; k < W; k++) {
                    size_t lo = d->off[k], hi = d->off[k] + d->count[k];
                    lo = lo < a ? a : lo > b ? b : lo;
                    hi = hi < a ? a : hi > b ? b : hi;
                    d->poff[k] = lo;
                    d->pcount[k] = hi - lo;
                }
#if defined(TRACELLM_CUDA) && defined(TRACELLM_NCCL)
                if (nc) nccl_bucket_reduce_scatter(nc, m->grads, d->pcount, d->poff, W);
                else
#endif
                    d->t->ireduce_scatter(d->t, m->grads, d->pcount, d->poff);
            } else {
#if defined(TRACELLM_CUDA) && defined(TRACELLM_NCCL)
                if (nc) nccl_bucket_allreduce(nc, m->grads + a, b - a);
                else
#endif
                    d->t->iallreduce(d->t, m->grads + a, b - a);
            }
            d->started += b - a;
        }
#if defined(TRACELLM_CUDA) && defined(TRACELLM_NCCL)
    if (nc) nccl_bucket_end(nc);
#endif
    // MPI moves data only inside its calls: let the started buckets advance between layers
    if (!nc) d->t->progress(d->t);
    dist_watch_end();
}

// Whether this model's gradients can be reduced during the backward pass: with MPI's non-blocking
// collectives on host memory, or NCCL on device memory. Every rank answers the same (same
// options, same transport).
static bool can_overlap(Dist *d, GPT *m) {
    if (!d->t || !d->overlap) return false;
#if defined(TRACELLM_CUDA) && defined(TRACELLM_NCCL)
    if (nccl_for(d, m)) return true;
#endif
    return on_host(m) && d->t->iallreduce;
}

void dist_backward(Dist *d, GPT *m, bool last) {
    bool overlap = last && can_overlap(d, m);
    if (last && d->t && !d->told) {
        d->told = true;
        int buckets = m->cfg.n_layer + 2;
        if (overlap)
            fprintf(stderr, "train: gradients reduced during the backward pass, %d buckets (lnf, %d layers, wte+wpe)\n", buckets, m->cfg.n_layer);
        else
            fprintf(stderr, "train: gradients reduced after the backward pass (%s)\n",
                    !d->overlap ? "--overlap off" : on_host(m) ? "the tcp ring has no non-blocking collectives" : "no NCCL in this build");
    }
    if (overlap) {
        zero_plan(d, m->n_params);
        d->model = m;
        d->started = 0;
        m->grads_ready = grads_ready;
        m->grads_ready_ctx = d;
    }
    gpt_backward(m);
    m->grads_ready = NULL;
    m->grads_ready_ctx = NULL;
    if (overlap) {
        // every parameter is in one bucket: a gap would leave that gradient unsummed on this rank
        if (d->started != m->n_params)
            fatal("internal: rank %d: the backward pass reported %zu of %zu gradients final", d->rank, d->started, m->n_params);
        d->reducing = true;
    }
}

double dist_reduce_grads(Dist *d, GPT *m) {
    if (!d->t) return gpt_grad_norm(m);
    size_t n = m->n_params;
    zero_plan(d, n);
    size_t lo = d->off[d->rank], cnt = d->count[d->rank];
#if defined(TRACELLM_CUDA) && defined(TRACELLM_NCCL)
    void *nc = nccl_for(d, m);
#endif
    if (d->reducing) {
        d->reducing = false;
        dist_watch_begin(d->zero ? "reduce of the gradient buckets" : "all-reduce of the gradient buckets");
#if defined(TRACELLM_CUDA) && defined(TRACELLM_NCCL)
        if (nc) nccl_wait_buckets(nc);
        else
#endif
            d->t->wait_all(d->t);
        dist_watch_end();
    } else
#if defined(TRACELLM_CUDA) && defined(TRACELLM_NCCL)
    if (nc) {
        dist_watch_begin("NCCL gradient reduction");
        if (d->zero) nccl_reduce_scatter(nc, m->grads, d->count, d->off, d->world);
        else nccl_allreduce(nc, m->grads, n);
        dist_watch_end();
    } else
#endif
    {
        float *g = host_view(d, m, m->grads, n, true);
        dist_watch_begin(d->zero ? "reduce-scatter of the gradients" : "all-reduce of the gradients");
        if (d->zero) d->t->reduce_scatter(d->t, g, d->count, d->off);
        else d->t->allreduce(d->t, g, n, sizeof(float));
        dist_watch_end();
        if (d->zero) host_done(m, m->grads, g, lo, cnt);
        else host_done(m, m->grads, g, 0, n);
    }
    if (!d->zero) return gpt_grad_norm(m);
    // under ZeRO-1 each rank holds the sum of its slice only: the norm is a sum of slice norms
    double ss = m->be->sumsq(m->grads + lo, cnt);
    return sqrt(dist_sum(d, ss));
}

void dist_update(Dist *d, GPT *m, float lr, float beta1, float beta2, float eps, float weight_decay, int t,
                 float grad_scale) {
    if (!d->t || !d->zero) {
        gpt_update(m, lr, beta1, beta2, eps, weight_decay, t, grad_scale);
        return;
    }
    zero_plan(d, m->n_params);
    size_t lo = d->off[d->rank], hi = lo + d->count[d->rank];
    const Backend *be = m->be;
    if (!d->m) {
        d->be = be;
        d->m = be->alloc((hi - lo + 1) * sizeof(float));
        d->v = be->alloc((hi - lo + 1) * sizeof(float));
    }
    // the slice cuts across tensors: AdamW on each tensor's part of it, with the tensor's decay;
    // the compute copy is rounded after the all-gather, from the whole master
    size_t off = 0;
    for (int i = 0; i < N_PARAM_TENSORS; i++) {
        size_t a = off > lo ? off : lo, b = off + m->param_sizes[i] < hi ? off + m->param_sizes[i] : hi;
        if (a < b)
            be->adamw(m->params + a, m->grads + a, d->m + (a - lo), d->v + (a - lo), b - a, lr, beta1, beta2, eps,
                      gpt_param_decays(i) ? weight_decay : 0.0f, t, grad_scale, NULL, 0);
        off += m->param_sizes[i];
    }
#if defined(TRACELLM_CUDA) && defined(TRACELLM_NCCL)
    void *nc = nccl_for(d, m);
    if (nc) {
        dist_watch_begin("NCCL all-gather of the parameters");
        nccl_all_gather(nc, m->params, d->count, d->off, d->world);
        dist_watch_end();
        gpt_params_changed(m);  // every rank rounds the same master: the same compute copy
        return;
    }
#endif
    float *p = host_view(d, m, m->params, m->n_params, true);
    dist_watch_begin("all-gather of the parameters");
    d->t->all_gather(d->t, p, d->count, d->off);
    dist_watch_end();
    host_done(m, m->params, p, 0, m->n_params);
    gpt_params_changed(m);
}

// ---- ZeRO-1 checkpoints ----
// optim.zero1.rR.bin: ZeroHeader (128 bytes) | float32 m[count] | float32 v[count], CRC32 over
// the header (crc zeroed) and the payload, written atomically like model/checkpoint.c's files.
#define ZERO_MAGIC "TLLMZER1"
typedef struct {
    char magic[8];
    uint32_t version, header_size;
    uint32_t world, rank;
    uint64_t n_params, lo, count;
    TrainState state;  // 72 bytes
    uint32_t crc32, reserved0;
} ZeroHeader;
_Static_assert(sizeof(ZeroHeader) == 128, "ZeRO-1 slice header is 128 bytes on disk");

static void zero_path(char *buf, size_t n, const char *dir, int rank) { snprintf(buf, n, "%s/optim.zero1.r%d.bin", dir, rank); }

void dist_zero_save(Dist *d, const char *run_dir, const GPT *m, const TrainState *st) {
    if (!d->m) fatal("internal: saving ZeRO-1 moments before the first update");
    size_t cnt = d->count[d->rank];
    ZeroHeader h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, ZERO_MAGIC, 8);
    h.version = 1; h.header_size = sizeof h;
    h.world = (uint32_t)d->world; h.rank = (uint32_t)d->rank;
    h.n_params = m->n_params; h.lo = d->off[d->rank]; h.count = cnt;
    h.state = *st;
    float *mv = xmalloc((2 * cnt + 1) * sizeof *mv);
    m->be->download(mv, d->m, cnt * sizeof *mv);
    m->be->download(mv + cnt, d->v, cnt * sizeof *mv);
    uLong crc = crc32(0, Z_NULL, 0);
    crc = crc32(crc, (const Bytef *)&h, sizeof h);
    crc = crc32_z(crc, (const Bytef *)mv, 2 * cnt * sizeof *mv);
    h.crc32 = (uint32_t)crc;
    char path[4200];
    zero_path(path, sizeof path, run_dir, d->rank);
    OutFile *o = out_open(path);
    xfwrite(&h, sizeof h, 1, o->f, path);
    xfwrite(mv, sizeof *mv, 2 * cnt, o->f, path);
    out_close(o);
    free(mv);
}

void dist_resume_check(Dist *d, const char *run_dir) {
    char full[4200], slice[4200];
    snprintf(full, sizeof full, "%s/optim.bin", run_dir);
    zero_path(slice, sizeof slice, run_dir, 0);
    if (file_size(full) < 0 && file_size(slice) >= 0)
        fatal("--resume: %s was trained with --zero 1 (optimizer slices %s...); resume it with --zero 1 on the same world size", run_dir, slice);
}

void dist_zero_load(Dist *d, const char *run_dir, GPT *m, TrainState *st) {
    zero_plan(d, m->n_params);
    char path[4200], other[4200];
    zero_path(path, sizeof path, run_dir, d->rank);
    zero_path(other, sizeof other, run_dir, d->world);
    if (file_size(path) < 0) {
        char full[4200];
        snprintf(full, sizeof full, "%s/optim.bin", run_dir);
        if (file_size(full) >= 0) fatal("--resume --zero 1: %s was trained without --zero 1 (it has %s, no optimizer slices); resume it without --zero 1", run_dir, full);
        fatal("--resume: %s is missing: the run was saved by fewer than %d ranks; resume it with the world size it was saved with", path, d->world);
    }
    size_t len;
    char *buf = read_file(path, &len);
    ZeroHeader h;
    if (len < sizeof h || memcmp(buf, ZERO_MAGIC, 8)) fatal("%s: not a tracellm ZeRO-1 optimizer slice (bad magic or truncated)", path);
    memcpy(&h, buf, sizeof h);
    if (h.world != (uint32_t)d->world)
        fatal("--resume: %s was saved by a run of %u ranks, this one has %d; ZeRO-1 optimizer slices only resume on the same world size", path, h.world, d->world);
    if (h.rank != (uint32_t)d->rank || h.n_params != m->n_params || h.lo != d->off[d->rank] || h.count != d->count[d->rank])
        fatal("%s: slice [%" PRIu64 ", +%" PRIu64 ") of %" PRIu64 " parameters does not match rank %d's slice of this model", path, h.lo, h.count, h.n_params, d->rank);
    if (len != sizeof h + 2 * h.count * sizeof(float)) fatal("%s: %zu bytes, expected %zu (truncated or corrupt)", path, len, sizeof h + 2 * (size_t)h.count * sizeof(float));
    uint32_t stored = h.crc32;
    h.crc32 = 0;
    uLong crc = crc32(0, Z_NULL, 0);
    crc = crc32(crc, (const Bytef *)&h, sizeof h);
    crc = crc32_z(crc, (const Bytef *)buf + sizeof h, len - sizeof h);
    if ((uint32_t)crc != stored) fatal("%s: CRC32 mismatch (corrupt optimizer slice)", path);
    if (d->rank == 0 && file_size(other) >= 0)
        fatal("--resume: %s exists: the run was saved by more than %d ranks; resume it with the world size it was saved with", other, d->world);
    size_t cnt = h.count;
    if (!d->m) {
        d->be = m->be;
        d->m = m->be->alloc((cnt + 1) * sizeof(float));
        d->v = m->be->alloc((cnt + 1) * sizeof(float));
    }
    m->be->upload(d->m, buf + sizeof h, cnt * sizeof(float));
    m->be->upload(d->v, buf + sizeof h + cnt * sizeof(float), cnt * sizeof(float));
    *st = h.state;
    free(buf);
}
