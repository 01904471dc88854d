// Command-line options for the subcommands: one table per command gives parsing, defaults,
// validation and the --help text, so every command behaves the same way.
#pragma once
#include <stdbool.h>
#include <stdint.h>

typedef enum { OPT_FLAG, OPT_INT, OPT_I64, OPT_DOUBLE, OPT_STR, OPT_STRS, OPT_SIZE } OptType;

typedef struct {
    const char *name;     // "--val-fraction"
    OptType type;
    void *dst;            // bool* / int* / int64_t* / double* / const char** / StrList* / int64_t* (SIZE)
    const char *meta;     // "F", "N", "PATH" shown in help
    const char *help;     // one line; the default is printed from *dst
    bool required;
} Opt;

typedef struct { const char **v; int n, cap; } StrList;  // for options given several times / many values

// Parses argv[1..]; on --help prints usage and exits 0; on a bad option prints the error and
// usage hint and exits 2. `positional` (may be NULL) collects non-option arguments.
void args_parse(int argc, char **argv, const char *usage, const char *summary,
                Opt *opts, int n_opts, StrList *positional);
void args_usage(const char *usage, const char *summary, Opt *opts, int n_opts);
