// libFuzzer target (make fuzz): the input reader (plain / gzip / tar) on arbitrary bytes, three ways:
// the bytes as given (a tar, a csv, or broken gzip), the bytes gzip-compressed (reaches the tar and
// line code through inflate), and that gzip stream cut short (must be an error, never a crash or a
// silent success). Checked: no crash, no out-of-bounds access, lines within the length limit, and an
// error message naming the input and an offset.
#include "data/reader.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

// Returns 1 when everything was read, -1 on a reported error.
static int drain(const void *data, size_t n) {
    Reader *r = reader_open_mem(data, n, "fuzz");
    const char *name, *line;
    size_t len;
    bool too_long;
    int k, streams = 0;
    while ((k = reader_next_stream(r, &name)) == 1) {
        if (strncmp(name, "fuzz", 4) != 0 || ++streams > 100000) abort();
        int64_t last = 0;
        while ((k = reader_next_line(r, &line, &len, 256, &too_long)) == 1) {
            if (len > 256 || (too_long && len != 0)) abort();
            if (len && (line[0] == 0x7f && line[len - 1] == 0x7f)) last++;  // touch both ends of the line
            if (reader_lineno(r) <= 0) abort();
        }
        (void)last;
        if (k < 0) break;
    }
    if (k < 0 && (!strstr(reader_error(r), "fuzz: ") || !strstr(reader_error(r), "offset"))) abort();
    reader_close(r);
    return k < 0 ? -1 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    drain(data, size);
    uLongf cap = compressBound(size) + 64;
    unsigned char *gz = malloc(cap);
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    z.next_in = (unsigned char *)data; z.avail_in = (unsigned)size;
    z.next_out = gz; z.avail_out = (unsigned)cap;
    deflate(&z, Z_FINISH);
    size_t n = cap - z.avail_out;
    deflateEnd(&z);
    // A valid gzip of bytes that are a complete tar or csv reads to the end or fails only on tar
    // structure; a truncated copy must fail.
    drain(gz, n);
    size_t cut = size ? 2 + data[0] % (n - 2) : n - 1;
    if (cut < n && drain(gz, cut) != -1) abort();
    free(gz);
    return 0;
}
