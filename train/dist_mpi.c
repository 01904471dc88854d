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

static void mpi_free(Transport *tr) {
    Mpi *t = (Mpi *)tr;
    MPI_Finalize();
    free(t->counts); free(t->displs);
    free(t);
}

Transport *mpi_join(int *rank, int *world, double timeout) {
    Mpi *t = xcalloc(1, sizeof *t);
    t->ops = (Transport){mpi_allreduce, mpi_reduce_scatter, mpi_all_gather, mpi_broadcast, mpi_free};
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
