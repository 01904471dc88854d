// A progress line for long work: done/total, rate and ETA, redrawn at most twice a second on a
// terminal and every 10 s otherwise (so logs stay short).
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *label;   // "prepare"
    const char *unit;    // "rows"
    double total;        // 0 when unknown (then no ETA is shown)
    double t0, last;
    int tty, printed;
} Progress;

// "42s", "3m07s", "2h05m"; "?" for negative or absurd values. For ETAs printed by other loops.
void fmt_duration(char *buf, size_t n, double seconds);

void progress_start(Progress *p, const char *label, const char *unit, double total);
// `done` units so far; `bytes` processed so far (0 to omit MB/s); `frac` of total work done
// when total is in other units than `done` (pass < 0 to derive it from done/total).
void progress_update(Progress *p, double done, double bytes, double frac);
void progress_end(Progress *p, double done, double bytes);
