#include "util/progress.h"
#include "util/util.h"
#include <stdio.h>
#include <unistd.h>

void progress_start(Progress *p, const char *label, const char *unit, double total) {
    p->label = label; p->unit = unit; p->total = total;
    p->t0 = p->last = now_seconds();
    p->tty = isatty(2);
    p->printed = 0;
}

void fmt_duration(char *buf, size_t n, double s) {
    if (s < 0 || s > 1e7) { snprintf(buf, n, "?"); return; }
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%dh%02dm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, n, "%dm%02ds", t / 60, t % 60);
    else snprintf(buf, n, "%ds", t);
}

static void draw(Progress *p, double done, double bytes, double frac, int final) {
    double el = now_seconds() - p->t0;
    if (el <= 0) el = 1e-9;
    if (frac < 0 && p->total > 0) frac = done / p->total;
    char eta[32] = "", ela[32];
    fmt_duration(ela, sizeof ela, el);
    if (!final && frac > 0 && frac <= 1) {
        char t[24];
        fmt_duration(t, sizeof t, el / frac - el);
        snprintf(eta, sizeof eta, " ETA %s", t);
    }
    char pct[16] = "";
    if (frac >= 0 && frac <= 1) snprintf(pct, sizeof pct, " %5.1f%%", 100 * frac);
    char mbs[32] = "";
    if (bytes > 0) snprintf(mbs, sizeof mbs, " %.1f MB/s", bytes / el / 1e6);
    fprintf(stderr, "%s%s:%s %.0f %s, %.0f %s/s%s, %s%s%s", p->tty ? "\r" : "", p->label, pct, done,
            p->unit, done / el, p->unit, mbs, ela, eta, p->tty ? "\033[K" : "\n");
    if (final && p->tty) fputc('\n', stderr);
    fflush(stderr);
    p->printed = 1;
}

void progress_update(Progress *p, double done, double bytes, double frac) {
    double t = now_seconds();
    if (t - p->last < (p->tty ? 0.5 : 10.0)) return;
    p->last = t;
    draw(p, done, bytes, frac, 0);
}

void progress_end(Progress *p, double done, double bytes) {
    if (p->printed) draw(p, done, bytes, 1.0, 1);
}
