// Data parallelism across processes: one process per GPU (or per CPU socket), each a "rank" of
// a "world". Every rank holds the whole model, reads its own rows of each global batch
// (train/loader.h: loader_next_rank), and the ranks sum their gradients before the update, so a
// run with W ranks of --batch B takes exactly the steps of one process with --batch W*B.
//
// Transports (how ranks find each other and move bytes):
//   mpi             launched by mpirun / srun in a build with MPI (TRACELLM_MPI): MPI collectives
//   tcp://HOST:PORT rank 0 listens on PORT; the others connect, learn each other's addresses and
//                   form a ring of TCP connections (ring reduce-scatter + all-gather, train/dist_tcp.c)
//   file:///PATH    like tcp, but rank 0 writes its address into PATH (a shared file system)
//   (none)          one process; every collective is a no-op and training is bit-identical to a
//                   build without this file
// On a CUDA model the gradient buffers live on the GPU: NCCL moves them when the build has it
// (train/dist_nccl.c), else they are staged through host memory.
//
// ZeRO-1 (--zero 1): the flat parameter buffer (n floats, layout of model/gpt.h) is cut into W
// contiguous slices of n/W (+1 for the first n%W ranks; any n). Gradients are reduce-scattered,
// each rank keeps the AdamW moments of its slice only (2n/W floats instead of 2n), updates its
// slice of the parameters, and the slices are all-gathered. Each rank saves its moments in
// RUN/optim.zero1.rR.bin; a resume needs the same world size and says so otherwise.
//
// Every collective gives up after --dist-timeout seconds without progress (a rank that died or
// hangs) and stops the process with an error naming the peer, instead of waiting forever.
#pragma once
#include "model/checkpoint.h"
#include "model/gpt.h"
#include "util/args.h"
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    const char *url;   // --dist
    int world, rank;   // --world-size, --rank (0: from the environment)
    int zero;          // --zero 0|1
    double timeout;    // --dist-timeout seconds (0: default 300)
    const char *overlap;  // --overlap on|off (NULL: on)
} DistOpts;

// The option-table rows of `tracellm train` (one line in its table).
#define DIST_OPTIONS(d)                                                                                          \
    {"--dist", OPT_STR, &(d).url, "URL", "data parallel: mpi | tcp://HOST:PORT | file:///PATH (default: mpi when launched by mpirun/srun, else one process)", false}, \
    {"--world-size", OPT_INT, &(d).world, "N", "ranks of a tcp/file run (default: $WORLD_SIZE, $SLURM_NTASKS, $OMPI_COMM_WORLD_SIZE)", false}, \
    {"--rank", OPT_INT, &(d).rank, "R", "this process's rank 0..N-1 (default: $RANK, $SLURM_PROCID, $OMPI_COMM_WORLD_RANK)", false}, \
    {"--zero", OPT_INT, &(d).zero, "0|1", "1 = ZeRO-1: each rank keeps and updates only its slice of the optimizer state", false}, \
    {"--dist-timeout", OPT_DOUBLE, &(d).timeout, "S", "seconds a collective waits for a peer before the run stops with an error (default 300)", false}, \
    {"--overlap", OPT_STR, &(d).overlap, "on|off", "reduce each layer's gradients during the backward pass (MPI, NCCL; default on) or all after it", false}

typedef struct Transport Transport;

typedef struct {
    int rank, world, zero;
    double timeout;
    const char *kind;       // "local", "tcp", "mpi"
    Transport *t;           // NULL when world == 1 and no --dist was given
    void *nccl;             // NCCL communicator state (train/dist_nccl.c) once a CUDA model is seen
    // ZeRO-1 bookkeeping over the flat buffer of n floats: rank r owns [off[r], off[r] + count[r])
    size_t n, *count, *off;
    const Backend *be;      // where m, v live
    float *m, *v;           // backend memory: this rank's slice of the AdamW moments
    float *stage;           // host staging buffer for a GPU model without NCCL
    // the overlapped reduction (--overlap on): buckets started by the last backward of a step
    bool overlap;           // --overlap
    bool reducing;          // this step's buckets were started; dist_reduce_grads waits for them
    bool told;              // the line saying how gradients are reduced was printed
    GPT *model;             // the model whose backward is running (the hook's context)
    size_t started;         // floats of gradient started this step (n_params when complete)
    size_t *pcount, *poff;  // one bucket part cut by ZeRO-1 slices (W entries each)
} Dist;

// Reads options and environment, joins the world (dies with a clear message when a peer does not
// come within the timeout). On ranks > 0 it filters stderr to error and warning lines, prefixed
// with the rank, so only rank 0 prints progress.
Dist *dist_init(const DistOpts *o);
void dist_free(Dist *d);

// ---- collectives on host values (every rank must call them in the same order) ----
double dist_sum(Dist *d, double x);           // sum over ranks
void dist_sum_array(Dist *d, double *x, int n);
int dist_max_int(Dist *d, int x);
void dist_barrier(Dist *d);

// ---- the training step ----
// Rank 0's parameters to every rank (a fresh init or a checkpoint read by each rank must agree).
void dist_broadcast_params(Dist *d, GPT *m);
// gpt_backward, and on the `last` micro-step of a step (the gradients are then final), with the
// overlap: as soon as the backward pass has finished a layer's gradients (model/gpt.h:
// GptGradsReady), that bucket's reduction starts (MPI: MPI_Iallreduce per tensor slice, under
// ZeRO-1 MPI_Ireduce_scatter; NCCL: ncclAllReduce, under ZeRO-1 one ncclReduce per owning rank,
// on a second stream), while the earlier layers are computed. Buckets: lnf, then layers
// L-1..0 (one slice of each of the 12 stacked tensors), then wte+wpe; the same on every rank, so
// the sum order never depends on timing. The TCP ring and a GPU model without NCCL have no
// non-blocking collectives: they reduce after the backward pass, as with --overlap off.
void dist_backward(Dist *d, GPT *m, bool last);
// Sums the gradients of all ranks (all-reduce; under ZeRO-1 a reduce-scatter: only this rank's
// slice is summed), or waits for the buckets dist_backward started, and returns the global
// gradient norm.
double dist_reduce_grads(Dist *d, GPT *m);
// AdamW on every parameter (gpt_update), or under ZeRO-1 on this rank's slice, then all-gather.
void dist_update(Dist *d, GPT *m, float lr, float beta1, float beta2, float eps, float weight_decay, int t,
                 float grad_scale);

// ---- ZeRO-1 checkpoints: RUN/optim.zero1.rR.bin, one per rank ----
void dist_zero_save(Dist *d, const char *run_dir, const GPT *m, const TrainState *st);
// Without --zero 1: dies with a clear message when the run was saved with ZeRO-1 slices.
void dist_resume_check(Dist *d, const char *run_dir);
// Loads this rank's slice; dies with a clear message on another world size or a missing slice.
void dist_zero_load(Dist *d, const char *run_dir, GPT *m, TrainState *st);

// ---- transports (train/dist_tcp.c, train/dist_mpi.c): collectives on host memory ----
// Each transport embeds this table first in its own state.
struct Transport {
    // Sum of `n` elements of `elem` bytes (4: float, 8: double) over ranks, result on every rank.
    void (*allreduce)(Transport *t, void *buf, size_t n, size_t elem);
    // Sums slice r of buf (off[r], count[r] floats) into rank r only; other slices are left undefined.
    void (*reduce_scatter)(Transport *t, float *buf, const size_t *count, const size_t *off);
    // Every rank's slice r (from rank r) to every rank.
    void (*all_gather)(Transport *t, float *buf, const size_t *count, const size_t *off);
    void (*broadcast)(Transport *t, void *buf, size_t bytes);  // from rank 0
    void (*free)(Transport *t);
    // Non-blocking gradient collectives, for the overlap with the backward pass (NULL when the
    // transport has none: the TCP ring reduces after the backward pass). Every rank starts the
    // same ones in the same order; `buf` must not be touched until `wait_all` returns.
    // iallreduce: sum of n floats at buf. ireduce_scatter: like reduce_scatter on the range
    // [off[0], off[W-1] + count[W-1]) of buf, whose per-rank parts are adjacent (some may be
    // empty). progress: lets started collectives advance (MPI moves data only inside its calls).
    // wait_all: completes every started one.
    void (*iallreduce)(Transport *t, float *buf, size_t n);
    void (*ireduce_scatter)(Transport *t, float *buf, const size_t *count, const size_t *off);
    void (*progress)(Transport *t);
    void (*wait_all)(Transport *t);
};
Transport *tcp_join(const char *url, int rank, int world, double timeout);
#ifdef TRACELLM_MPI
bool mpi_launched(void);  // the environment of mpirun / srun with PMI
Transport *mpi_join(int *rank, int *world, double timeout);
#endif
#if defined(TRACELLM_CUDA) && defined(TRACELLM_NCCL)
// NCCL on device buffers; the unique id travels over the host transport.
void *nccl_join(Transport *t, int rank, int world, double timeout);
void nccl_allreduce(void *nc, float *dbuf, size_t n);
void nccl_reduce_scatter(void *nc, float *dbuf, const size_t *count, const size_t *off, int world);
void nccl_all_gather(void *nc, float *dbuf, const size_t *count, const size_t *off, int world);
// the overlapped gradient reduction: a bucket's collectives on the NCCL stream after the compute
// stream reached them (begin, any number of allreduce / reduce_scatter parts, end); wait before the update
void nccl_bucket_begin(void *nc);
void nccl_bucket_allreduce(void *nc, float *dbuf, size_t n);
void nccl_bucket_reduce_scatter(void *nc, float *dbuf, const size_t *count, const size_t *off, int world);
void nccl_bucket_end(void *nc);
void nccl_wait_buckets(void *nc);
void nccl_free(void *nc);
#endif

// The watchdog every transport arms around a blocking call: after `timeout` seconds in one call
// it prints "rank R: <what> waited more than S s ..." and exits 1 (MPI and NCCL calls cannot be
// interrupted; the TCP ring polls with its own deadline as well).
void dist_watch_begin(const char *what);
void dist_watch_end(void);
void dist_watch_start(int rank, double timeout);
