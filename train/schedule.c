#include "train/schedule.h"
#include <math.h>
#include <string.h>

int schedule_parse(const char *name) {
    if (!strcmp(name, "cosine")) return SCHED_COSINE;
    if (!strcmp(name, "linear")) return SCHED_LINEAR;
    if (!strcmp(name, "constant")) return SCHED_CONSTANT;
    return -1;
}

double schedule_lr(Schedule s, double lr, double min_frac, long warmup, long step, long total_steps) {
    if (step < warmup) return lr * (double)(step + 1) / (double)warmup;
    if (s == SCHED_CONSTANT || total_steps <= warmup) return lr;
    double frac = (double)(step - warmup) / (double)(total_steps - warmup);  // 0 .. <1
    if (frac > 1.0) frac = 1.0;
    double min_lr = lr * min_frac;
    double k = s == SCHED_COSINE ? 0.5 * (1.0 + cos(M_PI * frac)) : 1.0 - frac;
    return min_lr + (lr - min_lr) * k;
}
