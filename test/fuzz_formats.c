// libFuzzer target (make fuzz): every text-format parser on arbitrary bytes — the layer-answer
// parser (what a model generates), condition lines, and whole tabular / recursive / instruction
// texts. Checked: no crash or out-of-bounds read; an OK answer has every edge complete and
// consumed <= size; layer_check never crashes; and a recursive graph that parses and is valid
// renders to text that parses back to the same graph.
#include "data/format.h"
#include "data/layers.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size ? size : 1);   // no terminating NUL: parsers must respect lengths
    memcpy(buf, data, size);
    char err[600];

    static LayerAnswer a;
    AnsStatus st = answer_parse(buf, size, &a, 1);
    if (a.consumed > size) abort();
    if (st == ANS_OK)
        for (int i = 0; i < a.n_edges; i++)
            if ((a.edges[i].present & EF_LAYER) != EF_LAYER) abort();
    if (st != ANS_OK && !a.msg[0]) abort();
    Condition c;
    const char *nl = memchr(buf, '\n', size);
    if (cond_parse(buf, nl ? (size_t)(nl - buf) : size, &c, err, sizeof err)) layer_check(&c, &a, NULL, err, sizeof err);

    TextCursor cur;
    CallGraph g, h;
    graph_init(&g); graph_init(&h);
    cursor_init(&cur, buf, size, "fuzz");
    for (int k = 0; k < 64 && tabular_next(&cur, &g, &c, err, sizeof err) == 1; k++) {}
    cursor_init(&cur, buf, size, "fuzz");
    static TextBuf t;
    for (int k = 0; k < 64 && recursive_next(&cur, &g, NULL, NULL, err, sizeof err) == 1; k++) {
        if (graph_validate(&g, 0, NULL) != GRAPH_OK) continue;
        RecursiveOpts o = {1, 1, 15, false};
        tb_clear(&t);
        if (!recursive_render(&t, &g, &o, NULL, err, sizeof err)) continue;   // e.g. a name longer than the limit
        TextCursor c2;
        cursor_init(&c2, t.p, t.n, "rerender");
        if (recursive_next(&c2, &h, NULL, NULL, err, sizeof err) != 1 || !graph_equal(&g, &h)) abort();
    }
    cursor_init(&cur, buf, size, "fuzz");
    static InstructSample s;
    static int init;
    if (!init) { instruct_sample_init(&s); init = 1; }
    for (int k = 0; k < 64 && instruct_next(&cur, &s, err, sizeof err) == 1; k++)
        if (s.prompt < buf || s.answer + s.answer_len > buf + size) abort();
    graph_free(&g); graph_free(&h);
    free(buf);
    return 0;
}
