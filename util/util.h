// Small things every folder needs: fatal errors, checked allocation, clocks, outputs that are
// written under a temporary name and renamed only when complete.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdbool.h>
#include <sys/types.h>

// Prints "tracellm: <message>" to stderr, removes every registered temporary output, exits 1.
// Library code that parses outside input returns errors instead; fatal is for the command layer
// and for conditions the process cannot continue from (out of memory, disk full).
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void warnf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
// Grows *buf (capacity *cap elements of elem bytes) to hold at least need elements.
void grow(void **buf, size_t *cap, size_t need, size_t elem);

double now_seconds(void);               // monotonic clock
bool has_suffix(const char *s, const char *suffix);
bool path_is_dir(const char *path);
char *path_join(const char *dir, const char *name);  // "dir/name", caller frees
// `mkdir -p`: creates every missing directory of path, each with mode (less the umask). Returns 0
// when path is a directory afterwards (created now or already there), else -1 with errno set:
// ENOTDIR when path or one of its parents exists and is not a directory. "a/b/", "./a", "/abs",
// "a//b" all work. Every command that takes an output directory (--out) creates it with this.
int mkdir_p(const char *path, mode_t mode);
int64_t file_size(const char *path);     // -1 when it cannot be stat'ed
// Parses "4G", "512M", "100k", "123" into bytes; returns -1 on a malformed value.
int64_t parse_size(const char *s);

// ---- outputs that appear whole or not at all ----
// out_open("x.jsonl") opens "x.jsonl.tmp.<pid>" (making missing folders on the way, like mkdir -p)
// and registers it; out_close() checks every write
// (a full disk is an error naming the file), fsyncs and renames onto the final name.
// Anything still registered when fatal() runs, or on SIGINT/SIGTERM, is unlinked.
typedef struct {
    FILE *f;
    char *path;  // final name
    char *tmp;   // name while being written
} OutFile;
OutFile *out_open(const char *path);
void out_close(OutFile *o);            // commit: flush, fsync, rename, free
void out_abort(OutFile *o);            // discard: close, unlink, free
// Registration for outputs written by other means (gzip streams, directories of shards).
char *tmp_path_for(const char *path);  // "<path>.tmp.<pid>", caller frees
void tmp_register(const char *tmp);
void tmp_unregister(const char *tmp);
void tmp_commit(const char *tmp, const char *path);  // fsync file, rename, unregister
void install_cleanup_signals(void);    // SIGINT/SIGTERM remove temporaries, then exit 130/143
// Writes n bytes or dies naming the file (ENOSPC and friends).
void xfwrite(const void *p, size_t size, size_t n, FILE *f, const char *name);
// CRC32 (zlib's) continued over n bytes of any size: crc32_update(0, ...) starts a checksum.
// Every file format with a checksum (shards, checkpoints, tokenizer, baseline model) uses it.
uint32_t crc32_update(uint32_t crc, const void *p, size_t n);
// Whole file into memory (NUL-terminated); *len gets the size. Dies naming the file on error.
char *read_file(const char *path, size_t *len);
