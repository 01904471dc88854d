// See csv.h. This is the innermost loop of `tracellm prepare` (13 M rows per real file), so the
// row parser never allocates and never copies: it finds the commas once and reads numbers in place.
#include "data/csv.h"
#include "data/graph.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *MAL_NAMES[MAL_NREASONS] = {"field_count", "line_too_long", "non_utf8", "bad_timestamp",
                                              "bad_rpc_id", "bad_rt", "empty_traceid"};
const char *csv_malformed_name(int r) { return r >= 0 && r < MAL_NREASONS ? MAL_NAMES[r] : "?"; }

static bool slice_is(const char *p, size_t n, const char *lit) { return strlen(lit) == n && !memcmp(p, lit, n); }

// ---- header ----
// Column names of both tables; the rest of the known names are read and ignored.
static const struct { const char *name; int col; } KNOWN[] = {
    {"timestamp", COL_TIMESTAMP}, {"traceid", COL_TRACEID}, {"service", COL_SERVICE},
    {"rpc_id", COL_RPCID},        {"rpcid", COL_RPCID},     {"rpctype", COL_RPCTYPE},
    {"um", COL_UM},               {"dm", COL_DM},           {"interface", COL_INTERFACE},
    {"rt", COL_RT},               {"uminstanceid", -1},     {"dminstanceid", -1},
    {"", -1},                     {"Unnamed: 0", -1},  // v2021's unnamed index column (pandas names it so)
};
#define N_KNOWN ((int)(sizeof KNOWN / sizeof KNOWN[0]))

bool csv_schema_parse(const char *line, size_t len, CsvSchema *s, char *err, size_t errlen) {
    if (len >= 3 && !memcmp(line, "\xEF\xBB\xBF", 3)) { line += 3; len -= 3; }  // a UTF-8 BOM
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' ')) len--;
    memset(s, 0, sizeof *s);
    for (int c = 0; c < NCOLS; c++) s->col[c] = -1;
    bool rpc_id_named = false;  // v2022 says rpc_id, v2021 says rpcid
    const char *p = line, *end = line + len;
    int k = 0;
    for (;; k++) {
        const char *q = memchr(p, ',', (size_t)(end - p));
        if (!q) q = end;
        int j = 0;
        while (j < N_KNOWN && !slice_is(p, (size_t)(q - p), KNOWN[j].name)) j++;
        if (j == N_KNOWN) {
            snprintf(err, errlen, "unknown header (column %d '%.*s' is not an Alibaba CallGraph/MSCallGraph column): %.*s",
                     k + 1, (int)(q - p) > 64 ? 64 : (int)(q - p), p, (int)(len > 400 ? 400 : len), line);
            return false;
        }
        int c = KNOWN[j].col;
        if (c >= 0) {
            if (s->col[c] >= 0) {
                snprintf(err, errlen, "unknown header (column '%s' appears twice): %.*s", KNOWN[j].name,
                         (int)(len > 400 ? 400 : len), line);
                return false;
            }
            s->col[c] = k;
            if (c == COL_RPCID) rpc_id_named = !strcmp(KNOWN[j].name, "rpc_id");
        }
        if (q == end) break;
        p = q + 1;
    }
    s->ncols = k + 1;
    bool core = s->col[COL_TIMESTAMP] >= 0 && s->col[COL_TRACEID] >= 0 && s->col[COL_RPCID] >= 0 &&
                s->col[COL_RPCTYPE] >= 0 && s->col[COL_UM] >= 0 && s->col[COL_DM] >= 0 && s->col[COL_RT] >= 0;
    if (core && s->col[COL_SERVICE] >= 0 && rpc_id_named) s->version = TRACE_V2022;
    else if (core && s->col[COL_SERVICE] < 0 && !rpc_id_named && s->col[COL_INTERFACE] >= 0) s->version = TRACE_V2021;
    else {
        snprintf(err, errlen,
                 "unknown header (want v2022 timestamp,traceid,service,rpc_id,rpctype,um,dm,rt or v2021 "
                 "traceid,timestamp,rpcid,um,rpctype,dm,interface,rt in any order): %.*s",
                 (int)(len > 400 ? 400 : len), line);
        return false;
    }
    return true;
}

// ---- values ----
bool csv_is_utf8(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s, *e = p + n;
    while (p < e) {
        // fast path: 8 ASCII bytes at a time
        if (e - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            if (!(w & 0x8080808080808080ULL)) { p += 8; continue; }
        }
        unsigned c = *p;
        if (c < 0x80) { p++; continue; }
        int len;
        unsigned min;
        if ((c & 0xE0) == 0xC0) { len = 2; min = 0x80; c &= 0x1F; }
        else if ((c & 0xF0) == 0xE0) { len = 3; min = 0x800; c &= 0x0F; }
        else if ((c & 0xF8) == 0xF0) { len = 4; min = 0x10000; c &= 0x07; }
        else return false;
        if (e - p < len) return false;
        for (int i = 1; i < len; i++) {
            if ((p[i] & 0xC0) != 0x80) return false;
            c = (c << 6) | (p[i] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return false;  // overlong, surrogate
        p += len;
    }
    return true;
}

bool csv_name_missing(const char *p, size_t n) {
    return n == 0 || slice_is(p, n, "UNKNOWN") || slice_is(p, n, "UNAVAILABLE") || slice_is(p, n, "(?)") ||
           slice_is(p, n, "NaN") || slice_is(p, n, "nan") || slice_is(p, n, "None");
}
static bool rt_missing(const char *p, size_t n) {
    return n == 0 || slice_is(p, n, "None") || slice_is(p, n, "NaN") || slice_is(p, n, "nan") ||
           slice_is(p, n, "null") || slice_is(p, n, "NULL");
}

static bool parse_int(const char *p, int n, int64_t *out) {
    int i = 0;
    bool neg = false;
    if (i < n && (p[i] == '-' || p[i] == '+')) neg = p[i++] == '-';
    if (i == n || n - i > 18) return false;
    int64_t v = 0;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = neg ? -v : v;
    return true;
}

// Python's int(float(text)) for text matching [+-]?(D+(.D*)?|.D+)([eE][+-]?D+)?, |value| < 1e15.
// With at most 15 significant digits and no exponent the integer digits are the answer (the double
// nearest such a number never rounds across an integer); otherwise strtod, correctly rounded like
// Python's float(), then truncation toward zero like int().
static bool parse_rt(const char *p, int n, int64_t *out) {
    int i = 0;
    bool neg = false;
    if (i < n && (p[i] == '-' || p[i] == '+')) neg = p[i++] == '-';
    while (i + 1 < n && p[i] == '0' && p[i + 1] >= '0' && p[i + 1] <= '9') i++;  // leading zeros do not count
    int int_start = i;
    while (i < n && p[i] >= '0' && p[i] <= '9') i++;
    int int_digits = i - int_start, frac_digits = 0;
    if (i < n && p[i] == '.') {
        i++;
        int f0 = i;
        while (i < n && p[i] >= '0' && p[i] <= '9') i++;
        frac_digits = i - f0;
    }
    if (int_digits + frac_digits == 0) return false;
    bool exponent = i < n && (p[i] == 'e' || p[i] == 'E');
    if (exponent) {
        int j = i + 1;
        if (j < n && (p[j] == '-' || p[j] == '+')) j++;
        int e0 = j;
        while (j < n && p[j] >= '0' && p[j] <= '9') j++;
        if (j == e0) return false;
        i = j;
    }
    if (i != n) return false;
    if (exponent || int_digits + frac_digits > 15) {
        char buf[CSV_MAX_LINE + 1];
        if (n > CSV_MAX_LINE) return false;
        memcpy(buf, p, (size_t)n);
        buf[n] = 0;
        double v = strtod(buf, NULL);
        if (!(fabs(v) < 1e15)) return false;
        *out = (int64_t)v;
        return true;
    }
    int64_t v = 0;
    for (int k = int_start; k < int_start + int_digits; k++) v = v * 10 + (p[k] - '0');
    *out = neg ? -v : v;
    return true;
}

static bool rpc_id_ok(const char *p, int n) {
    if (n == 0 || n > CSV_MAX_RPC_ID) return false;
    bool digit = false;  // the current component has a digit
    for (int i = 0; i < n; i++) {
        if (p[i] >= '0' && p[i] <= '9') digit = true;
        else if (p[i] == '.' && digit) digit = false;
        else return false;
    }
    return digit;
}

int csv_pad_id(const char *p, int n, char *out, int cap) {
    int pre = 0, width = 0;
    if (n > 3 && !memcmp(p, "MS_", 3)) { pre = 3; width = 5; }
    else if (n > 2 && !memcmp(p, "S_", 2)) { pre = 2; width = 9; }
    bool digits = pre > 0;
    for (int i = pre; digits && i < n; i++) digits = p[i] >= '0' && p[i] <= '9';
    int pad = digits && n - pre < width ? width - (n - pre) : 0;
    if (n + pad > cap) { pad = 0; n = cap; }  // names are bounded by the line length; never here in practice
    memcpy(out, p, (size_t)pre);
    memset(out + pre, '0', (size_t)pad);
    memcpy(out + pre + pad, p + pre, (size_t)(n - pre));
    return n + pad;
}

// ---- rows ----
CsvRowStatus csv_parse_row(const CsvSchema *s, const char *line, size_t len, CsvRow *row) {
    Slice f[32];
    int nf = 0;
    const char *p = line, *end = line + len;
    for (;;) {
        const char *q = memchr(p, ',', (size_t)(end - p));
        if (!q) q = end;
        if (nf == 32) { row->malformed = MAL_FIELD_COUNT; return ROW_MALFORMED; }
        f[nf].p = p; f[nf].n = (int)(q - p); nf++;
        if (q == end) break;
        p = q + 1;
    }
    if (!csv_is_utf8(line, len)) { row->malformed = MAL_NON_UTF8; return ROW_MALFORMED; }
    if (nf != s->ncols) { row->malformed = MAL_FIELD_COUNT; return ROW_MALFORMED; }
    const int *c = s->col;
    row->traceid = f[c[COL_TRACEID]];
    row->rpc_id = f[c[COL_RPCID]];
    row->um = f[c[COL_UM]];
    row->dm = f[c[COL_DM]];
    row->service = c[COL_SERVICE] >= 0 ? f[c[COL_SERVICE]] : (Slice){"", 0};
    row->interface = c[COL_INTERFACE] >= 0 ? f[c[COL_INTERFACE]] : (Slice){"", 0};
    Slice ts = f[c[COL_TIMESTAMP]], ty = f[c[COL_RPCTYPE]], rt = f[c[COL_RT]];
    if (!parse_int(ts.p, ts.n, &row->ts)) { row->malformed = MAL_BAD_TIMESTAMP; return ROW_MALFORMED; }
    if (!rpc_id_ok(row->rpc_id.p, row->rpc_id.n)) { row->malformed = MAL_BAD_RPC_ID; return ROW_MALFORMED; }
    bool no_rt = rt_missing(rt.p, (size_t)rt.n);
    if (!no_rt && !parse_rt(rt.p, rt.n, &row->rt_ms)) { row->malformed = MAL_BAD_RT; return ROW_MALFORMED; }
    if (row->traceid.n == 0) { row->malformed = MAL_EMPTY_TRACEID; return ROW_MALFORMED; }
    row->type = rpc_type_parse(ty.p, (size_t)ty.n);
    if (row->type < 0) return ROW_FILTERED_TYPE;
    // v2021 logs the entry call (rpcid 0) with an empty caller: that caller is the user.
    if (s->version == TRACE_V2021 && row->rpc_id.n == 1 && row->rpc_id.p[0] == '0' &&
        csv_name_missing(row->um.p, (size_t)row->um.n))
        row->um = (Slice){"USER", 4};
    if (csv_name_missing(row->um.p, (size_t)row->um.n) || csv_name_missing(row->dm.p, (size_t)row->dm.n))
        return ROW_UNKNOWN_NAME;
    if (no_rt) return ROW_MISSING_RT;
    // v2021 rt is signed: the callee side of a call logs it negative; its size is the response time.
    if (s->version == TRACE_V2021 && row->rt_ms < 0) row->rt_ms = -row->rt_ms;
    return ROW_OK;
}
