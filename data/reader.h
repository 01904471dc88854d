// Input streams for `tracellm prepare`: lines of CSV out of plain files, gzip files and tar archives
// (the released CallGraph_N.tar.gz), read in one pass with bounded memory. The format is sniffed from
// the bytes, not the name: gzip by its magic, tar by a valid ustar header block; a tar yields one
// stream per regular member whose name ends in .csv. zlib inflates; the tar format is parsed here.
//
// Errors are returned, never fatal, so a fuzzer can drive this code: a truncated or corrupt gzip/tar
// gives -1 and reader_error() names the file and the byte offset.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Reader Reader;

// Opens a file, or (path == NULL) a memory buffer named `name` (the buffer must outlive the reader).
Reader *reader_open(const char *path, char *err, size_t errlen);
Reader *reader_open_mem(const void *data, size_t n, const char *name);
void reader_close(Reader *r);

// Moves to the next stream (the file itself, or the next .csv member of a tar): 1 and *name
// ("file" or "file:member"), 0 when there is none left, -1 on error.
int reader_next_stream(Reader *r, const char **name);
// Next line of the current stream, without its "\n" or "\r\n": 1, 0 at the end of the stream,
// -1 on error. A line longer than max_line is skipped whole and returned empty with *too_long set.
int reader_next_line(Reader *r, const char **line, size_t *len, size_t max_line, bool *too_long);

int64_t reader_lineno(const Reader *r);       // 1-based line number of the last line returned
uint64_t reader_raw_offset(const Reader *r);  // input-file bytes consumed so far (for progress)
const char *reader_error(const Reader *r);

// Expands files and directories (recursively, sorted by name; inside a directory only names
// ending in .csv, .gz, .tgz or .tar are taken) into a list of files. Returns the count, or -1 with
// err set when a path does not exist. The caller frees each string and the array.
int reader_expand(const char *const *paths, int n, char ***files, char *err, size_t errlen);
