// All-reduce bandwidth of the data-parallel transports (train/dist.h), the cost a training step
// pays once per optimizer step for its gradients. Not a test: prints numbers.
//
//   make BUILD=build NVCC=    # (a CPU build: the bench links the library's host code only)
//   cc -std=c11 -O2 -I. -D_GNU_SOURCE -DTRACELLM_MPI $(mpicc --showme:compile) scripts/bench_dist.c build/libtracellm.a -o build/bench_dist -lz -lm -lpthread -fopenmp $(mpicc --showme:link)
//   mpirun -np 2 build/bench_dist 3200000                     # MPI
//   build/bench_dist 3200000 tcp://127.0.0.1:29500 2 1 & build/bench_dist 3200000 tcp://127.0.0.1:29500 2 0
//
// Reports the time of one all-reduce of N floats (and of the ZeRO-1 reduce-scatter + all-gather
// pair) and the "bus bandwidth" 2(W-1)/W * bytes / time, the rate each link sustains (the NCCL
// tests' convention), so numbers compare across world sizes.
#include "train/dist.h"
#include "util/util.h"
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    size_t n = argc > 1 ? (size_t)atoll(argv[1]) : 3200000;
    DistOpts o = {.url = argc > 2 ? argv[2] : NULL, .world = argc > 3 ? atoi(argv[3]) : 0, .rank = argc > 4 ? atoi(argv[4]) : 0, .timeout = 60};
    Dist *d = dist_init(&o);
    float *buf = xmalloc(n * sizeof *buf);
    for (size_t i = 0; i < n; i++) buf[i] = (float)(i % 97) * 0.01f;
    size_t *count = xmalloc(d->world * sizeof *count), *off = xmalloc(d->world * sizeof *off);
    for (int r = 0; r < d->world; r++) {
        count[r] = n / d->world + ((size_t)r < n % d->world);
        off[r] = r ? off[r - 1] + count[r - 1] : 0;
    }
    int reps = 10;
    double best_ar = 1e30, best_z = 1e30;
    for (int it = 0; it < reps + 1; it++) {
        dist_barrier(d);
        double t0 = now_seconds();
        if (d->t) d->t->allreduce(d->t, buf, n, sizeof(float));
        double t1 = now_seconds();
        dist_barrier(d);
        double t2 = now_seconds();
        if (d->t) { d->t->reduce_scatter(d->t, buf, count, off); d->t->all_gather(d->t, buf, count, off); }
        double t3 = now_seconds();
        if (it > 0) {  // the first round warms up connections and buffers
            if (t1 - t0 < best_ar) best_ar = t1 - t0;
            if (t3 - t2 < best_z) best_z = t3 - t2;
        }
    }
    if (d->rank == 0) {
        double bytes = n * 4.0, factor = 2.0 * (d->world - 1) / d->world;
        printf("%s, %d ranks, %zu floats (%.1f MB): all-reduce %.2f ms (bus %.2f GB/s); reduce-scatter+all-gather %.2f ms (bus %.2f GB/s)\n",
               d->kind, d->world, n, bytes / 1e6, best_ar * 1e3, factor * bytes / best_ar / 1e9, best_z * 1e3,
               factor * bytes / best_z / 1e9);
    }
    free(buf); free(count); free(off);
    dist_free(d);
    return 0;
}
