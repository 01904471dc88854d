// NCCL for a CUDA model (builds with TRACELLM_CUDA and TRACELLM_NCCL, i.e. when the Makefile
// found nvcc and nccl.h): gradients and parameters move GPU to GPU (NVLink, PCIe, InfiniBand with
// GPUDirect) without a trip through host memory. Rank 0 makes the NCCL unique id and the host
// transport (MPI or TCP) broadcasts it. Every call runs on the legacy default stream, where the
// CUDA backend queues its kernels, and waits for completion so dist.c's watchdog sees a hang.
// With the overlap (the default), the gradient buckets instead run on a second stream while the
// backward pass goes on (nccl_bucket_*), and the update waits for that stream.
// Slices of unequal size (ZeRO-1 with any parameter count) use one grouped ncclReduce /
// ncclBroadcast per rank, since ncclReduceScatter / ncclAllGather need equal counts.
#include "train/dist.h"
#include "util/util.h"
#if defined(TRACELLM_CUDA) && defined(TRACELLM_NCCL)
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdlib.h>

typedef struct {
    ncclComm_t comm;
    int rank;
    // overlap with the backward pass: buckets run on their own stream, each after an event
    // recorded on the compute stream (the legacy default stream) when its gradients were queued
    cudaStream_t stream;
    cudaEvent_t ready;
} Nccl;

static void nccheck(ncclResult_t rc, const char *what) {
    if (rc != ncclSuccess) fatal("%s: %s", what, ncclGetErrorString(rc));
}
static void wait_done(const char *what) {
    cudaError_t e = cudaStreamSynchronize(0);
    if (e != cudaSuccess) fatal("%s: %s", what, cudaGetErrorString(e));
}

void *nccl_join(Transport *t, int rank, int world, double timeout) {
    Nccl *n = xcalloc(1, sizeof *n);
    n->rank = rank;
    ncclUniqueId id;
    if (rank == 0) nccheck(ncclGetUniqueId(&id), "ncclGetUniqueId");
    dist_watch_begin("broadcast of the NCCL id");
    t->broadcast(t, &id, sizeof id);
    dist_watch_end();
    int dev = 0, count = 0;
    cudaGetDevice(&dev);
    cudaGetDeviceCount(&count);
    dist_watch_begin("ncclCommInitRank");
    ncclResult_t rc = ncclCommInitRank(&n->comm, world, id, rank);
    dist_watch_end();
    // the usual cause of "invalid usage" here: two ranks of one node on the same GPU
    if (rc == ncclInvalidUsage)
        fatal("ncclCommInitRank (rank %d of %d, GPU %d of the %d this process sees): %s; NCCL needs its own GPU "
              "for every rank: launch one rank per GPU, each with CUDA_VISIBLE_DEVICES set to its local rank "
              "(scripts/launch/) or with its local rank in OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID or LOCAL_RANK",
              rank, world, dev, count, ncclGetErrorString(rc));
    nccheck(rc, "ncclCommInitRank");
    fprintf(stderr, "train: NCCL %d.%d communicator on GPU %d, %d ranks\n", NCCL_MAJOR, NCCL_MINOR, dev, world);
    return n;
}

void nccl_allreduce(void *nc, float *dbuf, size_t count) {
    Nccl *n = nc;
    nccheck(ncclAllReduce(dbuf, dbuf, count, ncclFloat, ncclSum, n->comm, 0), "ncclAllReduce");
    wait_done("ncclAllReduce");
}

void nccl_reduce_scatter(void *nc, float *dbuf, const size_t *count, const size_t *off, int world) {
    Nccl *n = nc;
    nccheck(ncclGroupStart(), "ncclGroupStart");
    for (int r = 0; r < world; r++)
        nccheck(ncclReduce(dbuf + off[r], dbuf + off[r], count[r], ncclFloat, ncclSum, r, n->comm, 0), "ncclReduce");
    nccheck(ncclGroupEnd(), "ncclGroupEnd");
    wait_done("ncclReduce");
}

void nccl_all_gather(void *nc, float *dbuf, const size_t *count, const size_t *off, int world) {
    Nccl *n = nc;
    nccheck(ncclGroupStart(), "ncclGroupStart");
    for (int r = 0; r < world; r++)
        nccheck(ncclBroadcast(dbuf + off[r], dbuf + off[r], count[r], ncclFloat, r, n->comm, 0), "ncclBroadcast");
    nccheck(ncclGroupEnd(), "ncclGroupEnd");
    wait_done("ncclBroadcast");
}

// ---- overlap: one bucket = the ranges the backward pass just finished ----
static void cucheck(cudaError_t e, const char *what) {
    if (e != cudaSuccess) fatal("%s: %s", what, cudaGetErrorString(e));
}

void nccl_bucket_begin(void *nc) {
    Nccl *n = nc;
    if (!n->stream) {
        // non-blocking: no implicit synchronisation with the legacy stream, so the reduction of
        // layer l runs while the compute stream goes on with layer l-1
        cucheck(cudaStreamCreateWithFlags(&n->stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags (NCCL stream)");
        cucheck(cudaEventCreateWithFlags(&n->ready, cudaEventDisableTiming), "cudaEventCreate (NCCL bucket)");
    }
    // one event serves every bucket: cudaStreamWaitEvent waits for the record made just before it
    cucheck(cudaEventRecord(n->ready, 0), "cudaEventRecord (gradients of a bucket)");
    cucheck(cudaStreamWaitEvent(n->stream, n->ready, 0), "cudaStreamWaitEvent (NCCL stream)");
    nccheck(ncclGroupStart(), "ncclGroupStart");
}

void nccl_bucket_allreduce(void *nc, float *dbuf, size_t count) {
    Nccl *n = nc;
    nccheck(ncclAllReduce(dbuf, dbuf, count, ncclFloat, ncclSum, n->comm, n->stream), "ncclAllReduce (bucket)");
}

// ZeRO-1: each non-empty part to its owner, in place (the sum lands in the owner's slice).
void nccl_bucket_reduce_scatter(void *nc, float *dbuf, const size_t *count, const size_t *off, int world) {
    Nccl *n = nc;
    for (int r = 0; r < world; r++)
        if (count[r])
            nccheck(ncclReduce(dbuf + off[r], dbuf + off[r], count[r], ncclFloat, ncclSum, r, n->comm, n->stream),
                    "ncclReduce (bucket)");
}

void nccl_bucket_end(void *nc) { nccheck(ncclGroupEnd(), "ncclGroupEnd (bucket)"); }

// Before the update: every bucket done. The host waits (so dist.c's watchdog sees a hang), which
// also orders everything queued later on the compute stream after the reductions.
void nccl_wait_buckets(void *nc) {
    Nccl *n = nc;
    if (n->stream) cucheck(cudaStreamSynchronize(n->stream), "NCCL gradient buckets");
}

void nccl_free(void *nc) {
    Nccl *n = nc;
    if (n->stream) { cudaStreamSynchronize(n->stream); cudaEventDestroy(n->ready); cudaStreamDestroy(n->stream); }
    ncclCommDestroy(n->comm);
    free(n);
}
#endif
