// See reader.h. Three layers, each pulling from the one below:
//   raw bytes (a file descriptor or a memory buffer)
//   -> decoded bytes (zlib inflate when the raw bytes start with the gzip magic)
//   -> a window buffer that the tar parser and the line splitter both read through.
// A tar member is a byte range of the decoded stream: `left` bytes of it remain, and the line
// splitter never looks past them (the next tar header may already sit in the window).
#include "data/reader.h"
#include "util/util.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define RAW_CHUNK (1 << 20)
#define WIN_CAP (1 << 20)   // >= 2 * max line, and big enough that a refill is rare

struct Reader {
    char name[1024];            // the input file as given
    char stream_name[2048];     // "file" or "file:member"
    char err[2048];
    // raw
    int fd;                     // -1 for memory input
    const unsigned char *mem; size_t mem_n, mem_pos;
    uint64_t raw_off;           // raw bytes consumed from the file
    bool raw_eof;
    // gzip
    bool gz, gz_end;            // gz_end: the current gzip member ended
    z_stream zs;
    unsigned char *zin;
    uint64_t dec_off;           // decoded bytes produced (the tar offset)
    bool dec_eof;
    // window over decoded bytes: [beg, end) unread
    char *win; size_t beg, end;
    // streams
    int state;                  // 0 not started, 1 plain csv stream open, 2 tar, 3 done
    bool tar;
    uint64_t left;              // bytes of the current stream still unread (UINT64_MAX: to EOF)
    uint64_t pad;               // tar padding after the current member
    bool skipping;              // inside an over-long line
    int64_t lineno;
};

static int fail(Reader *r, const char *fmt, const char *detail, uint64_t off) {
    char msg[512];
    snprintf(msg, sizeof msg, fmt, detail);
    snprintf(r->err, sizeof r->err, "%s: %s at byte offset %llu", r->name, msg, (unsigned long long)off);
    return -1;
}

// ---- raw ----
static long raw_read(Reader *r, unsigned char *dst, size_t n) {
    if (r->raw_eof) return 0;
    long got;
    if (r->fd < 0) {
        size_t k = r->mem_n - r->mem_pos < n ? r->mem_n - r->mem_pos : n;
        memcpy(dst, r->mem + r->mem_pos, k);
        r->mem_pos += k;
        got = (long)k;
    } else {
        do got = read(r->fd, dst, n); while (got < 0 && errno == EINTR);
        if (got < 0) return fail(r, "read failed: %s", strerror(errno), r->raw_off);
    }
    if (got == 0) r->raw_eof = true;
    r->raw_off += (uint64_t)got;
    return got;
}

// ---- decoded ----
// Reads up to n decoded bytes into dst: > 0 bytes, 0 at the end of the input, -1 on error.
static long dec_read(Reader *r, char *dst, size_t n) {
    if (r->dec_eof || n == 0) return 0;
    if (!r->gz) {
        long k = raw_read(r, (unsigned char *)dst, n);
        if (k == 0) r->dec_eof = true;
        if (k > 0) r->dec_off += (uint64_t)k;
        return k;
    }
    r->zs.next_out = (unsigned char *)dst;
    r->zs.avail_out = (unsigned)(n > (1u << 30) ? (1u << 30) : n);
    while (r->zs.avail_out == (unsigned)(n > (1u << 30) ? (1u << 30) : n)) {
        if (r->zs.avail_in == 0) {
            long k = raw_read(r, r->zin, RAW_CHUNK);
            if (k < 0) return -1;
            r->zs.next_in = r->zin;
            r->zs.avail_in = (unsigned)k;
            if (k == 0) {
                if (r->gz_end) { r->dec_eof = true; return 0; }
                return fail(r, "truncated gzip stream%s (the file ends inside compressed data)", "", r->raw_off);
            }
        }
        if (r->gz_end) {
            // another gzip member follows (concatenated gzip, as pigz and bgzip write)
            if (inflateReset(&r->zs) != Z_OK) return fail(r, "zlib reset failed%s", "", r->raw_off);
            r->gz_end = false;
        }
        int z = inflate(&r->zs, Z_NO_FLUSH);
        uint64_t at = r->raw_off - r->zs.avail_in;
        if (z == Z_STREAM_END) r->gz_end = true;
        else if (z == Z_DATA_ERROR || z == Z_NEED_DICT) return fail(r, "corrupt gzip data (%s)", r->zs.msg ? r->zs.msg : "bad data", at);
        else if (z == Z_MEM_ERROR) return fail(r, "zlib out of memory%s", "", at);
        else if (z != Z_OK && z != Z_BUF_ERROR) return fail(r, "zlib error%s", "", at);
    }
    size_t got = (size_t)((char *)r->zs.next_out - dst);
    r->dec_off += got;
    return (long)got;
}

// ---- window ----
// Makes at least `want` unread bytes available (fewer only at the end of the input).
static int win_fill(Reader *r, size_t want) {
    if (r->end - r->beg >= want) return 0;
    if (r->beg > 0) {
        memmove(r->win, r->win + r->beg, r->end - r->beg);
        r->end -= r->beg;
        r->beg = 0;
    }
    while (r->end < want) {
        long k = dec_read(r, r->win + r->end, WIN_CAP - r->end);
        if (k < 0) return -1;
        if (k == 0) break;
        r->end += (size_t)k;
    }
    return 0;
}
// Decoded offset of the first unread byte of the window.
static uint64_t win_off(const Reader *r) { return r->dec_off - (r->end - r->beg); }

static int win_skip(Reader *r, uint64_t n, const char *what) {
    while (n > 0) {
        if (r->beg == r->end && win_fill(r, 1) < 0) return -1;
        if (r->beg == r->end) return fail(r, "truncated tar archive (the data ends inside %s)", what, r->raw_off);
        size_t k = r->end - r->beg < n ? r->end - r->beg : (size_t)n;
        r->beg += k;
        n -= k;
    }
    return 0;
}

// ---- open / close ----
static Reader *reader_new(const char *name) {
    Reader *r = xcalloc(1, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    r->fd = -1;
    r->win = xmalloc(WIN_CAP);
    return r;
}
static void setup_gzip(Reader *r) {
    // Sniff the gzip magic from the first raw bytes; they go to zlib or become decoded bytes.
    unsigned char head[2];
    long k = raw_read(r, head, 2);
    if (k <= 0) { r->dec_eof = k == 0; return; }
    if (k == 2 && head[0] == 0x1f && head[1] == 0x8b) {
        r->gz = true;
        r->zin = xmalloc(RAW_CHUNK);
        memcpy(r->zin, head, 2);
        r->zs.next_in = r->zin;
        r->zs.avail_in = 2;
        if (inflateInit2(&r->zs, 15 + 16) != Z_OK) fatal("zlib init failed");
    } else {
        memcpy(r->win, head, (size_t)k);
        r->end = (size_t)k;
        r->dec_off = (uint64_t)k;
    }
}
Reader *reader_open(const char *path, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) { snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno)); return NULL; }
    Reader *r = reader_new(path);
    r->fd = fd;
    setup_gzip(r);
    return r;
}
Reader *reader_open_mem(const void *data, size_t n, const char *name) {
    Reader *r = reader_new(name);
    r->mem = data;
    r->mem_n = n;
    setup_gzip(r);
    return r;
}
void reader_close(Reader *r) {
    if (!r) return;
    if (r->fd >= 0) close(r->fd);
    if (r->gz) inflateEnd(&r->zs);
    free(r->zin);
    free(r->win);
    free(r);
}
int64_t reader_lineno(const Reader *r) { return r->lineno; }
uint64_t reader_raw_offset(const Reader *r) { return r->raw_off; }
const char *reader_error(const Reader *r) { return r->err; }

// ---- tar ----
static uint64_t octal(const unsigned char *p, int n, bool *ok) {
    if (p[0] & 0x80) {  // GNU base-256 for sizes >= 8 GiB
        uint64_t v = p[0] & 0x7f;
        for (int i = 1; i < n; i++) {
            if (v >> 55) { *ok = false; return 0; }
            v = (v << 8) | p[i];
        }
        return v;
    }
    int i = 0;
    while (i < n && p[i] == ' ') i++;
    uint64_t v = 0;
    int digits = 0;
    for (; i < n && p[i] >= '0' && p[i] <= '7'; i++, digits++) v = v * 8 + (uint64_t)(p[i] - '0');
    for (; i < n; i++) if (p[i] != ' ' && p[i] != 0) *ok = false;
    if (digits == 0 || digits > 21) *ok = false;
    return v;
}
static bool tar_checksum_ok(const unsigned char *h) {
    bool ok = true;
    uint64_t want = octal(h + 148, 8, &ok);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += (i >= 148 && i < 156) ? ' ' : h[i];
    return ok && want == sum;
}
static bool block_is_zero(const unsigned char *h) {
    for (int i = 0; i < 512; i++) if (h[i]) return false;
    return true;
}
// A ustar magic makes it a tar even when the checksum is bad: then the error says "corrupt tar header".
static bool looks_like_tar(const unsigned char *h) { return !memcmp(h + 257, "ustar", 5) || block_is_zero(h); }

// Reads tar headers until the next .csv member: 1 (r->left = its size), 0 at the end, -1 error.
static int tar_next_member(Reader *r) {
    char longname[1024] = "";
    for (;;) {
        if (win_skip(r, r->left + r->pad, "a member") < 0) return -1;
        r->left = r->pad = 0;
        uint64_t hoff = win_off(r);
        if (win_fill(r, 512) < 0) return -1;
        size_t avail = r->end - r->beg;
        if (avail == 0) return 0;  // the end-of-archive blocks are optional for us
        if (avail < 512) return fail(r, "truncated tar archive (%s)", "a partial header block", r->raw_off);
        const unsigned char *h = (const unsigned char *)r->win + r->beg;
        if (block_is_zero(h)) return 0;  // end-of-archive marker
        char where[64];
        snprintf(where, sizeof where, "tar offset %llu", (unsigned long long)hoff);
        if (!tar_checksum_ok(h)) return fail(r, "corrupt tar header (bad checksum, %s)", where, r->raw_off);
        bool ok = true;
        uint64_t size = octal(h + 124, 12, &ok);
        if (!ok) return fail(r, "corrupt tar header (bad size field, %s)", where, r->raw_off);
        char type = (char)h[156];
        char name[512];
        if (longname[0]) snprintf(name, sizeof name, "%s", longname);
        else if (!memcmp(h + 257, "ustar", 5) && h[345])
            snprintf(name, sizeof name, "%.155s/%.100s", (const char *)h + 345, (const char *)h);
        else snprintf(name, sizeof name, "%.100s", (const char *)h);
        r->beg += 512;
        r->left = size;
        r->pad = (512 - size % 512) % 512;
        if (type == 'L' || type == 'x') {
            // GNU long name, or a pax header whose "path=" record names the next member
            char buf[1024];
            size_t k = size < sizeof buf - 1 ? (size_t)size : sizeof buf - 1;
            if (win_fill(r, k) < 0) return -1;
            if (r->end - r->beg < k) return fail(r, "truncated tar archive (%s)", "a long-name record", r->raw_off);
            memcpy(buf, r->win + r->beg, k);
            buf[k] = 0;
            longname[0] = 0;
            if (type == 'L') snprintf(longname, sizeof longname, "%s", buf);
            else {
                for (char *p = buf; p < buf + k;) {  // records: "LEN key=value\n"
                    char *sp = memchr(p, ' ', (size_t)(buf + k - p)), *nl = sp ? memchr(sp, '\n', (size_t)(buf + k - sp)) : NULL;
                    if (!sp || !nl) break;
                    if (!strncmp(sp + 1, "path=", 5)) snprintf(longname, sizeof longname, "%.*s", (int)(nl - sp - 6), sp + 6);
                    p = nl + 1;
                }
            }
            continue;
        }
        longname[0] = 0;
        const char *base = strrchr(name, '/');
        base = base ? base + 1 : name;
        if ((type == '0' || type == 0 || type == '7') && has_suffix(name, ".csv") && strncmp(base, "._", 2)) {
            snprintf(r->stream_name, sizeof r->stream_name, "%s:%s", r->name, name);
            return 1;
        }
        // directories, links, other files: skip their data
    }
}

// ---- streams and lines ----
int reader_next_stream(Reader *r, const char **name) {
    r->lineno = 0;
    r->skipping = false;
    if (r->state == 0) {
        if (win_fill(r, 512) < 0) return -1;
        r->tar = r->end - r->beg >= 512 && looks_like_tar((const unsigned char *)r->win + r->beg);
        if (!r->tar) {
            r->state = 1;
            r->left = UINT64_MAX;
            snprintf(r->stream_name, sizeof r->stream_name, "%s", r->name);
            *name = r->stream_name;
            return 1;
        }
        r->state = 2;
    } else if (r->state == 1) {
        r->state = 3;
        return 0;
    }
    if (r->state == 3) return 0;
    int k = tar_next_member(r);
    if (k == 0) {
        // Read on to the end: the gzip trailer's CRC and size check the whole file.
        for (;;) {
            r->beg = r->end = 0;
            long got = dec_read(r, r->win, WIN_CAP);
            if (got < 0) return -1;
            if (got == 0) break;
        }
        r->state = 3;
    }
    if (k <= 0) return k;
    *name = r->stream_name;
    return 1;
}

int reader_next_line(Reader *r, const char **line, size_t *len, size_t max_line, bool *too_long) {
    if (r->state == 3 || r->state == 0) return 0;
    if (max_line > WIN_CAP / 2) max_line = WIN_CAP / 2;
    size_t scanned = 0;
    for (;;) {
        size_t avail = r->end - r->beg;
        if (r->left < avail) avail = (size_t)r->left;
        char *s = r->win + r->beg;
        char *nl = scanned < avail ? memchr(s + scanned, '\n', avail - scanned) : NULL;
        if (nl || (avail > 0 && avail == r->left) || (avail > 0 && r->dec_eof && avail == r->end - r->beg)) {
            // a whole line: up to the newline, or the last bytes of the stream without one
            size_t n = nl ? (size_t)(nl - s) : avail, used = nl ? n + 1 : n;
            r->beg += used;
            if (r->left != UINT64_MAX) r->left -= used;
            r->lineno++;
            if (r->skipping) {
                r->skipping = false;
                *line = s; *len = 0; *too_long = true;
                return 1;
            }
            if (n && s[n - 1] == '\r') n--;
            *too_long = n > max_line;
            *line = s; *len = *too_long ? 0 : n;
            return 1;
        }
        if (avail == 0 && (r->left == 0 || (r->dec_eof && r->beg == r->end))) {
            if (r->left != 0 && r->left != UINT64_MAX)
                return fail(r, "truncated tar archive (the data ends inside member %s)", r->stream_name, r->raw_off);
            if (r->skipping) { r->skipping = false; r->lineno++; *line = s; *len = 0; *too_long = true; return 1; }
            return 0;
        }
        if (avail > max_line + 1) {  // + 1: a line of exactly max_line bytes may still have its "\r"
            // no newline within the limit: drop what we have and keep dropping up to the newline
            r->skipping = true;
            r->beg += avail;
            if (r->left != UINT64_MAX) r->left -= avail;
            scanned = 0;
        } else {
            scanned = avail;
        }
        size_t had = r->end - r->beg;
        if (win_fill(r, had + 1) < 0) return -1;
        if (r->end - r->beg == had && !r->dec_eof) return fail(r, "read made no progress%s", "", r->raw_off);
    }
}

// ---- inputs ----
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
static bool wanted_name(const char *n) {
    return n[0] != '.' && (has_suffix(n, ".csv") || has_suffix(n, ".gz") || has_suffix(n, ".tgz") || has_suffix(n, ".tar"));
}
static void push(char ***v, int *n, size_t *cap, char *s) {
    grow((void **)v, cap, (size_t)*n + 1, sizeof **v);
    (*v)[(*n)++] = s;
}
static int expand_dir(const char *dir, char ***v, int *n, size_t *cap, int depth, char *err, size_t errlen) {
    DIR *d = opendir(dir);
    if (!d) { snprintf(err, errlen, "cannot read directory %s: %s", dir, strerror(errno)); return -1; }
    char **names = NULL;
    int nn = 0;
    size_t ncap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        push(&names, &nn, &ncap, xstrdup(e->d_name));
    }
    closedir(d);
    qsort(names, (size_t)nn, sizeof *names, cmp_str);
    int rc = 0;
    for (int i = 0; i < nn; i++) {
        char *p = path_join(dir, names[i]);
        if (path_is_dir(p)) {
            if (depth < 16 && rc == 0) rc = expand_dir(p, v, n, cap, depth + 1, err, errlen);
            free(p);
        } else if (wanted_name(names[i])) push(v, n, cap, p);
        else free(p);
        free(names[i]);
    }
    free(names);
    return rc;
}
int reader_expand(const char *const *paths, int n, char ***files, char *err, size_t errlen) {
    char **v = NULL;
    int k = 0;
    size_t cap = 0;
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (stat(paths[i], &st) != 0) {
            snprintf(err, errlen, "cannot open %s: %s", paths[i], strerror(errno));
            for (int j = 0; j < k; j++) free(v[j]);
            free(v);
            return -1;
        }
        if (S_ISDIR(st.st_mode)) {
            if (expand_dir(paths[i], &v, &k, &cap, 0, err, errlen) < 0) {
                for (int j = 0; j < k; j++) free(v[j]);
                free(v);
                return -1;
            }
        } else push(&v, &k, &cap, xstrdup(paths[i]));
    }
    *files = v;
    return k;
}
