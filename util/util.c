// See util.h. The temporary-output registry is a small fixed table: a process has a handful of
// outputs open at once, and the signal handler must not allocate.
#include "util/util.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define MAX_TMP 64
static char tmp_table[MAX_TMP][4096];
static volatile sig_atomic_t tmp_used[MAX_TMP];

static void remove_temporaries(void) {
    for (int i = 0; i < MAX_TMP; i++)
        if (tmp_used[i]) { unlink(tmp_table[i]); tmp_used[i] = 0; }
}

void fatal(const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "tracellm: error: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    remove_temporaries();
    exit(1);
}

void warnf(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "tracellm: warning: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) fatal("out of memory (asked for %zu bytes)", n);
    return p;
}
void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) fatal("out of memory (asked for %zu x %zu bytes)", n, size);
    return p;
}
void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) fatal("out of memory (asked for %zu bytes)", n);
    return q;
}
char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }
char *xstrndup(const char *s, size_t n) {
    char *d = xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}
void grow(void **buf, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    *buf = xrealloc(*buf, c * elem);
    *cap = c;
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
bool has_suffix(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}
bool path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}
// One level of mkdir_p. Any failure of mkdir(2) is checked with stat, not only EEXIST: an
// existing directory the user cannot write to may answer EACCES or EROFS (NFS, read-only mounts),
// and another process (a second rank with the same --out) may create it between the two calls.
static int mkdir_one(const char *path, mode_t mode) {
    if (mkdir(path, mode) == 0) return 0;
    int err = errno;
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return 0;
        errno = ENOTDIR;
        return -1;
    }
    errno = err;
    return -1;
}
int mkdir_p(const char *path, mode_t mode) {
    size_t n = strlen(path);
    if (n == 0) { errno = ENOENT; return -1; }
    // a copy to cut at each '/' in turn: path has no length limit, so no fixed buffer
    char *p = xstrndup(path, n);
    int rc = 0;
    // i = 1: a leading '/' is the root, which exists. A prefix that ends in '/' ("a//b", "a/b/")
    // was created one step earlier, so it is skipped; the whole path is the last prefix.
    for (size_t i = 1; i <= n && rc == 0; i++) {
        if ((i < n && p[i] != '/') || p[i - 1] == '/') continue;
        char c = p[i];
        p[i] = 0;
        rc = mkdir_one(p, mode);
        p[i] = c;
    }
    int err = errno;  // free may not touch errno, but older C libraries did not promise it
    free(p);
    errno = err;
    return rc;
}
char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}
int64_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}
int64_t parse_size(const char *s) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0) return -1;
    double mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1024.0; end++; break;
    case 'm': case 'M': mul = 1024.0 * 1024; end++; break;
    case 'g': case 'G': mul = 1024.0 * 1024 * 1024; end++; break;
    case 't': case 'T': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
    }
    if (*end == 'B' || *end == 'b') end++;
    if (*end) return -1;
    return (int64_t)(v * mul);
}

// ---- temporary outputs ----
char *tmp_path_for(const char *path) {
    size_t n = strlen(path) + 32;
    char *t = xmalloc(n);
    snprintf(t, n, "%s.tmp.%d", path, (int)getpid());
    return t;
}
void tmp_register(const char *tmp) {
    if (strlen(tmp) >= sizeof tmp_table[0]) fatal("path too long: %s", tmp);
    for (int i = 0; i < MAX_TMP; i++)
        if (!tmp_used[i]) {
            strcpy(tmp_table[i], tmp);
            tmp_used[i] = 1;
            return;
        }
    fatal("too many temporary outputs open at once (max %d)", MAX_TMP);
}
void tmp_unregister(const char *tmp) {
    for (int i = 0; i < MAX_TMP; i++)
        if (tmp_used[i] && strcmp(tmp_table[i], tmp) == 0) { tmp_used[i] = 0; return; }
}
void tmp_commit(const char *tmp, const char *path) {
    int fd = open(tmp, O_RDONLY);
    if (fd >= 0) { fsync(fd); close(fd); }
    if (rename(tmp, path) != 0) fatal("cannot rename %s to %s: %s", tmp, path, strerror(errno));
    tmp_unregister(tmp);
}
static void on_signal(int sig) {
    remove_temporaries();
    signal(sig, SIG_DFL);
    raise(sig);
}
void install_cleanup_signals(void) {
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
}

OutFile *out_open(const char *path) {
    // like the commands' --out folders: the folders the file goes into are made if missing
    const char *slash = strrchr(path, '/');
    if (slash && slash != path) {
        char *dir = xstrndup(path, (size_t)(slash - path));
        if (mkdir_p(dir, 0777)) fatal("cannot create directory %s for %s: %s", dir, path, strerror(errno));
        free(dir);
    }
    OutFile *o = xcalloc(1, sizeof *o);
    o->path = xstrdup(path);
    o->tmp = tmp_path_for(path);
    tmp_register(o->tmp);
    o->f = fopen(o->tmp, "wb");
    if (!o->f) fatal("cannot create %s: %s", o->tmp, strerror(errno));
    return o;
}
void out_close(OutFile *o) {
    if (fflush(o->f) != 0 || ferror(o->f)) fatal("write failed on %s: %s", o->path, strerror(errno));
    if (fsync(fileno(o->f)) != 0 && errno != EINVAL) fatal("fsync failed on %s: %s", o->path, strerror(errno));
    if (fclose(o->f) != 0) fatal("close failed on %s: %s", o->path, strerror(errno));
    tmp_commit(o->tmp, o->path);
    free(o->path); free(o->tmp); free(o);
}
void out_abort(OutFile *o) {
    fclose(o->f);
    unlink(o->tmp);
    tmp_unregister(o->tmp);
    free(o->path); free(o->tmp); free(o);
}
void xfwrite(const void *p, size_t size, size_t n, FILE *f, const char *name) {
    if (n && fwrite(p, size, n, f) != n) fatal("write failed on %s: %s", name, strerror(errno));
}
char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) fatal("cannot open %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) { cap *= 2; buf = xrealloc(buf, cap); }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    if (ferror(f)) fatal("read failed on %s: %s", path, strerror(errno));
    fclose(f);
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

uint32_t crc32_update(uint32_t crc, const void *p, size_t n) {
    const unsigned char *b = p;
    do {  // zlib's crc32 takes a uInt length; crc32(x, NULL, 0) would reset, so n == 0 returns crc
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        if (k) crc = (uint32_t)crc32(crc, b, k);
        b += k; n -= k;
    } while (n);
    return crc;
}
