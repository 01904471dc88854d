// NCCL for a CUDA model (builds with TRACELLM_CUDA and TRACELLM_NCCL, i.e. when the Makefile
// found nvcc and nccl.h): gradients and parameters move GPU to GPU (NVLink, PCIe, InfiniBand with
// GPUDirect) without a trip through host memory. Rank 0 makes the NCCL unique id and the host
// transport (MPI or TCP) broadcasts it. Every call runs on the legacy default stream, where the
// CUDA backend queues its kernels, and waits for completion so dist.c's watchdog sees a hang.
// Slices of unequal size (ZeRO-1 with any parameter count) use one grouped ncclReduce /
// ncclBroadcast per rank, since ncclReduceScatter / ncclAllGather need equal counts.
#include "train/dist.h"
#include "util/util.h"
#if defined(TRACELLM_CUDA) && defined(TRACELLM_NCCL)
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdlib.h>

typedef struct { ncclComm_t comm; int rank; } Nccl;

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
    int dev = 0;
    cudaGetDevice(&dev);
    dist_watch_begin("ncclCommInitRank");
    nccheck(ncclCommInitRank(&n->comm, world, id, rank), "ncclCommInitRank");
    dist_watch_end();
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

void nccl_free(void *nc) {
    Nccl *n = nc;
    ncclCommDestroy(n->comm);
    free(n);
}
#endif
