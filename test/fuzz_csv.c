// libFuzzer target (make fuzz): the CSV header and row parser on arbitrary bytes.
// The first line is tried as a header (a v2022 schema is used when it is not one); every other line
// goes through csv_parse_row. Checked: no crash or out-of-bounds read, a kept row's fields lie inside
// its line, its rpc_id is dotted digits, its names are not "missing", and the id padding stays in bounds.
#include "data/csv.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *H22 = "timestamp,traceid,service,rpc_id,rpctype,um,uminstanceid,interface,dm,dminstanceid,rt";

static void inside(Slice s, const char *line, size_t len) {
    if (s.n < 0 || (s.n > 0 && (s.p < line || s.p + s.n > line + len)))
        if (strcmp(s.p, "USER") != 0 || s.n != 4) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);  // rows are parsed in place, without a terminating NUL
    memcpy(buf, data, size);
    CsvSchema s;
    char err[1024];
    const char *p = buf, *end = buf + size;
    const char *nl = memchr(p, '\n', size);
    size_t hl = nl ? (size_t)(nl - p) : size;
    if (!csv_schema_parse(p, hl, &s, err, sizeof err)) {
        if (!strstr(err, "unknown header")) abort();
        csv_schema_parse(H22, strlen(H22), &s, err, sizeof err);
    }
    p = nl ? nl + 1 : end;
    while (p < end) {
        nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        CsvRow r;
        memset(&r, 0, sizeof r);
        CsvRowStatus st = csv_parse_row(&s, p, n, &r);
        if (st == ROW_MALFORMED && (r.malformed < 0 || r.malformed >= MAL_NREASONS)) abort();
        if (st == ROW_OK) {
            inside(r.traceid, p, n); inside(r.rpc_id, p, n); inside(r.um, p, n); inside(r.dm, p, n);
            inside(r.service, p, n); inside(r.interface, p, n);
            if (r.traceid.n == 0 || r.rpc_id.n == 0 || r.rpc_id.n > CSV_MAX_RPC_ID) abort();
            for (int i = 0; i < r.rpc_id.n; i++)
                if (!(r.rpc_id.p[i] == '.' || (r.rpc_id.p[i] >= '0' && r.rpc_id.p[i] <= '9'))) abort();
            if (csv_name_missing(r.um.p, (size_t)r.um.n) || csv_name_missing(r.dm.p, (size_t)r.dm.n)) abort();
            if (r.rt_ms <= -1000000000000000LL || r.rt_ms >= 1000000000000000LL) abort();
            if (!csv_is_utf8(p, n)) abort();
            char out[64];
            int k = csv_pad_id(r.dm.p, r.dm.n, out, sizeof out);
            if (k < 0 || k > (int)sizeof out) abort();
        }
        p = nl ? nl + 1 : end;
    }
    free(buf);
    return 0;
}
