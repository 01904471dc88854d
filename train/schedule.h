// Learning-rate schedules: linear warmup, then cosine (or linear, or constant) decay to
// lr * min_frac at the last step. A pure function of the step, so a resumed run follows the
// same curve as an uninterrupted one.
#pragma once

typedef enum { SCHED_COSINE, SCHED_LINEAR, SCHED_CONSTANT } Schedule;

// "cosine" | "linear" | "constant"; returns -1 for anything else.
int schedule_parse(const char *name);
// lr at 0-based step of total_steps.
double schedule_lr(Schedule s, double lr, double min_frac, long warmup, long step, long total_steps);
