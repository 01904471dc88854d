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
// tests' convention), so numbers compare across world sizes. Where the transport has non-blocking
// collectives (MPI), also the same N floats as the overlapped backward pass moves them: K pieces
// (argument 5, default 50, the 12 per layer + 2 of a 4-layer model) started one after the other,
// then waited for, as all-reduces and as ZeRO-1 reduce-scatters (no compute in between:
// the pure cost of the bucketed collectives against the single one).
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
    int reps = 10, K = argc > 5 ? atoi(argv[5]) : 50;
    if (K < 1) K = 1;
    double best_ar = 1e30, best_z = 1e30, best_bar = 1e30, best_bz = 1e30;
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
        if (!d->t || !d->t->iallreduce) continue;
        // bucketed, non-blocking: K pieces started in order, then one wait
        dist_barrier(d);
        double t4 = now_seconds();
        for (int k = 0; k < K; k++) {
            size_t a = n * k / K, b = n * (k + 1) / K;
            d->t->iallreduce(d->t, buf + a, b - a);
            d->t->progress(d->t);
        }
        d->t->wait_all(d->t);
        double t5 = now_seconds();
        dist_barrier(d);
        double t6 = now_seconds();
        size_t *pc = xmalloc(d->world * sizeof *pc), *po = xmalloc(d->world * sizeof *po);
        for (int k = 0; k < K; k++) {
            size_t a = n * k / K, b = n * (k + 1) / K;
            for (int r = 0; r < d->world; r++) {  // the piece cut by the ZeRO-1 slices
                size_t lo = off[r] < a ? a : off[r] > b ? b : off[r], hi = off[r] + count[r];
                hi = hi < a ? a : hi > b ? b : hi;
                po[r] = lo; pc[r] = hi - lo;
            }
            d->t->ireduce_scatter(d->t, buf, pc, po);
            d->t->progress(d->t);
        }
        d->t->wait_all(d->t);
        double t7 = now_seconds();
        free(pc); free(po);
        if (it > 0) {
            if (t5 - t4 < best_bar) best_bar = t5 - t4;
            if (t7 - t6 < best_bz) best_bz = t7 - t6;
        }
    }
    if (d->rank == 0) {
        double bytes = n * 4.0, factor = 2.0 * (d->world - 1) / d->world;
        printf("%s, %d ranks, %zu floats (%.1f MB): all-reduce %.2f ms (bus %.2f GB/s); reduce-scatter+all-gather %.2f ms (bus %.2f GB/s)\n",
               d->kind, d->world, n, bytes / 1e6, best_ar * 1e3, factor * bytes / best_ar / 1e9, best_z * 1e3,
               factor * bytes / best_z / 1e9);
        if (best_bar < 1e30)
            printf("%s, %d ranks, the same in %d non-blocking pieces: all-reduces %.2f ms (bus %.2f GB/s); ZeRO-1 reduce-scatters %.2f ms\n",
                   d->kind, d->world, K, best_bar * 1e3, factor * bytes / best_bar / 1e9, best_bz * 1e3);
    }
    free(buf); free(count); free(off);
    dist_free(d);
    return 0;
}
