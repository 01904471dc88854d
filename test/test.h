// A tiny test harness: each test binary runs its cases and prints one line per case,
// "PASS name", "FAIL name" or "SKIP name: why"; test/run.sh adds them up.
#pragma once
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_passed, t_failed, t_skipped, t_case_failed, t_case_skipped;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            printf("    %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);         \
            t_case_failed = 1;                                                          \
        }                                                                               \
    } while (0)
// CHECKF(cond, fmt, ...) prints the values that made it fail.
#define CHECKF(cond, ...)                                                               \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            printf("    %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);         \
            printf(__VA_ARGS__);                                                        \
            printf("\n");                                                               \
            t_case_failed = 1;                                                          \
        }                                                                               \
    } while (0)
#define REQUIRE(cond) do { CHECK(cond); if (t_case_failed) return; } while (0)
#define SKIP(...) do { printf("SKIP %s: ", t_name); printf(__VA_ARGS__); printf("\n"); t_case_skipped = 1; return; } while (0)

static const char *t_name;
#define RUN(fn)                                                                         \
    do {                                                                                \
        t_name = #fn; t_case_failed = 0; t_case_skipped = 0;                            \
        fflush(stdout);                                                                 \
        fn();                                                                           \
        if (t_case_skipped && !t_case_failed) t_skipped++;                              \
        else if (t_case_failed) { t_failed++; printf("FAIL %s\n", #fn); }               \
        else { t_passed++; printf("PASS %s\n", #fn); }                                  \
        fflush(stdout);                                                                 \
    } while (0)
#define TEST_END() return t_failed ? 1 : 0

// Where the read-only real-data samples live (../shared/data beside the repository);
// TRACELLM_SHARED_DATA overrides. Returns NULL when absent so tests skip with a message.
static inline const char *shared_data_dir(void) {
    const char *d = getenv("TRACELLM_SHARED_DATA");
    if (!d) d = "../shared/data";
    FILE *f;
    char probe[1024];
    snprintf(probe, sizeof probe, "%s/README.md", d);
    if (!(f = fopen(probe, "r"))) return NULL;
    fclose(f);
    return d;
}
#define SHARED_OR_SKIP(dir)                                                                          \
    const char *dir = shared_data_dir();                                                             \
    if (!dir) SKIP("../shared/data is absent (a fresh clone); set TRACELLM_SHARED_DATA to run it")
