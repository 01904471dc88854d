// libFuzzer target for the eval parsers of outside input: the baseline model file (base_load) and
// the "request" member of generated graph lines (request_parse_json). Any input must give a clean
// error or a model that samples valid graphs, never a crash. Built by `make fuzz`.
#include "eval/baseline.h"
#include "eval/metrics.h"
#include "util/rng.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static char path[64];
static void remove_model(void) { unlink(path); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    GraphRequest q;
    char err[512];
    request_parse_json((const char *)data, size, &q, err, sizeof err);

    // base_load takes a path: the input goes through a per-process file
    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/fuzz-eval-model.%d", (int)getpid());
        atexit(remove_model);
    }
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    // half the inputs get a correct CRC so mutations reach the payload parser behind it
    if (size >= 24 && (data[size - 1] & 1)) {
        uint8_t *copy = malloc(size);
        memcpy(copy, data, size);
        uint32_t crc = (uint32_t)crc32(crc32(0, Z_NULL, 0), copy + 24, (uInt)(size - 24));
        memcpy(copy + 12, &crc, 4);
        fwrite(copy, 1, size, f);
        free(copy);
    } else fwrite(data, 1, size, f);
    fclose(f);
    BaseModel m;
    if (base_load(&m, path, err, sizeof err)) {
        Rng rng;
        rng_seed(&rng, 1);
        CallGraph g;
        graph_init(&g);
        BaseRequest any = {NULL, 0, 0, -1};
        for (int i = 0; i < 4; i++) {
            base_sample(&m, &rng, &any, 4, 200, &g);
            if (graph_validate(&g, 15, NULL) != GRAPH_OK) abort();  // a loaded model samples valid graphs
        }
        graph_free(&g);
        base_free(&m);
    }
    return 0;
}
