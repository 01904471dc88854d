// The MPI transport (builds with TRACELLM_MPI, i.e. when the Makefile found mpicc): ranks from
// mpirun / srun, collectives from the MPI library, which picks the algorithm and the network
// (shared memory on one node, InfiniBand or TCP between nodes). MPI calls cannot time out, so
// dist.c's watchdog thread ends a rank stuck in one; mpirun then stops the others.
#include "train/dist.h"
#include "util/util.h"
#ifdef TRACELLM_MPI
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    Transport ops;
    int rank, world;
    int *counts, *displs;  // int arrays for the v-collectives
    MPI_Request *req;      // started non-blocking gradient collectives, completed by mpi_wait_all
    int n_req, cap_req;
    // per started MPI_Ireduce_scatter: its counts (MPI reads them until completion) and where its
    // in-place result (at the start of its range) must move once complete
    struct RsPending { int *counts; float *from, *to; size_t n; } *rs;
    int n_rs, cap_rs;
} Mpi;

// The launchers' environment: OpenMPI's mpirun, PMI / PMIx (Slurm's srun --mpi=pmix, MPICH).
bool mpi_launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

static void check(int rc, const char *what) {
    if (rc != MPI_SUCCESS) {
        char msg[MPI_MAX_ERROR_STRING];
        int len = 0;
        MPI_Error_string(rc, msg, &len);
        fatal("%s: %.*s", what, len, msg);
    }
}

// MPI counts are ints: large buffers go in pieces of at most 2^30 elements.
#define PIECE ((size_t)1 << 30)

static void mpi_allreduce(Transport *tr, void *buf, size_t n, size_t elem) {
    MPI_Datatype ty = elem == 8 ? MPI_DOUBLE : MPI_FLOAT;
    for (size_t i = 0; i < n; i += PIECE) {
        size_t k = n - i < PIECE ? n - i : PIECE;
        check(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + i * elem, (int)k, ty, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
    }
}

static bool fits_int(const size_t *count, const size_t *off, int W) {
    return off[W - 1] + count[W - 1] <= (size_t)INT_MAX;
}

static void mpi_reduce_scatter(Transport *tr, float *buf, const size_t *count, const size_t *off) {
    Mpi *t = (Mpi *)tr;
    if (!fits_int(count, off, t->world)) {  // over 2^31 parameters: the plain all-reduce is correct too
        mpi_allreduce(tr, buf, off[t->world - 1] + count[t->world - 1], sizeof(float));
        return;
    }
    for (int r = 0; r < t->world; r++) t->counts[r] = (int)count[r];
    // in place: input is the whole buffer, the result lands at its start; move it to the slice
    check(MPI_Reduce_scatter(MPI_IN_PLACE, buf, t->counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Reduce_scatter");
    if (off[t->rank]) memmove(buf + off[t->rank], buf, count[t->rank] * sizeof(float));
}

static void mpi_all_gather(Transport *tr, float *buf, const size_t *count, const size_t *off) {
    Mpi *t = (Mpi *)tr;
    if (!fits_int(count, off, t->world)) {  // huge models: one broadcast per slice
        for (int r = 0; r < t->world; r++)
            for (size_t i = 0; i < count[r]; i += PIECE) {
                size_t k = count[r] - i < PIECE ? count[r] - i : PIECE;
                check(MPI_Bcast(buf + off[r] + i, (int)k, MPI_FLOAT, r, MPI_COMM_WORLD), "MPI_Bcast");
            }
        return;
    }
    for (int r = 0; r < t->world; r++) { t->counts[r] = (int)count[r]; t->displs[r] = (int)off[r]; }
    check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, t->counts, t->displs, MPI_FLOAT, MPI_COMM_WORLD), "MPI_Allgatherv");
}

static void mpi_broadcast(Transport *tr, void *buf, size_t bytes) {
    for (size_t i = 0; i < bytes; i += PIECE) {
        size_t k = bytes - i < PIECE ? bytes - i : PIECE;
        check(MPI_Bcast((char *)buf + i, (int)k, MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast");
    }
}

// ---- non-blocking: the gradient buckets of the overlapped backward pass (train/dist.c) ----
// dist.c cuts ranges into pieces below 2^31 elements, so counts fit an int here.
static MPI_Request *new_request(Mpi *t) {
    if (t->n_req == t->cap_req) {
        t->cap_req = t->cap_req ? 2 * t->cap_req : 64;
        t->req = xrealloc(t->req, t->cap_req * sizeof *t->req);
    }
    return &t->req[t->n_req++];
}

static void mpi_iallreduce(Transport *tr, float *buf, size_t n) {
    Mpi *t = (Mpi *)tr;
    check(MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, new_request(t)), "MPI_Iallreduce");
}

// One in-place MPI_Ireduce_scatter per range: the result lands at the range's start and moves to
// this rank's part in mpi_wait_all. (One MPI_Ireduce per part to its owner needs no move, but
// OpenMPI 4.1's non-blocking reduce took 2-4x as long: measured in docs/DISTRIBUTED.md.)
static void mpi_ireduce_scatter(Transport *tr, float *buf, const size_t *count, const size_t *off) {
    Mpi *t = (Mpi *)tr;
    if (t->n_rs == t->cap_rs) {
        t->cap_rs = t->cap_rs ? 2 * t->cap_rs : 64;
        t->rs = xrealloc(t->rs, t->cap_rs * sizeof *t->rs);
    }
    struct RsPending *p = &t->rs[t->n_rs++];
    p->counts = xmalloc(t->world * sizeof *p->counts);
    for (int r = 0; r < t->world; r++) p->counts[r] = (int)count[r];
    p->from = buf + off[0];
    p->to = buf + off[t->rank];
    p->n = count[t->rank];
    check(MPI_Ireduce_scatter(MPI_IN_PLACE, p->from, p->counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, new_request(t)),
          "MPI_Ireduce_scatter");
}

static void mpi_progress(Transport *tr) {
    Mpi *t = (Mpi *)tr;
    int done = 0;
    if (t->n_req) check(MPI_Testall(t->n_req, t->req, &done, MPI_STATUSES_IGNORE), "MPI_Testall");
    if (done) t->n_req = 0;
}

static void mpi_wait_all(Transport *tr) {
    Mpi *t = (Mpi *)tr;
    if (t->n_req) check(MPI_Waitall(t->n_req, t->req, MPI_STATUSES_IGNORE), "MPI_Waitall");
    t->n_req = 0;
    for (int i = 0; i < t->n_rs; i++) {
        struct RsPending *p = &t->rs[i];
        if (p->n && p->to != p->from) memmove(p->to, p->from, p->n * sizeof(float));
        free(p->counts);
    }
    t->n_rs = 0;
}

static void mpi_free(Transport *tr) {
    Mpi *t = (Mpi *)tr;
    MPI_Finalize();
    for (int i = 0; i < t->n_rs; i++) free(t->rs[i].counts);
    free(t->counts); free(t->displs); free(t->req); free(t->rs);
    free(t);
}

Transport *mpi_join(int *rank, int *world, double timeout) {
    Mpi *t = xcalloc(1, sizeof *t);
    t->ops = (Transport){mpi_allreduce, mpi_reduce_scatter, mpi_all_gather, mpi_broadcast, mpi_free,
                         mpi_iallreduce, mpi_ireduce_scatter, mpi_progress, mpi_wait_all};
    check(MPI_Init(NULL, NULL), "MPI_Init");
    // errors come back as codes, reported by check() with the rank's context
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &t->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &t->world);
    t->counts = xcalloc(t->world, sizeof *t->counts);
    t->displs = xcalloc(t->world, sizeof *t->displs);
    *rank = t->rank;
    *world = t->world;
    return &t->ops;
}
#endif
