// Alibaba call-graph CSV rows: which table a file holds (from its header, by column NAME, never by
// position), and one row split into the fields the cleaning rules need. Zero-copy: a CsvRow points
// into the caller's line buffer. The files carry no quoting, so a comma always separates fields; a
// row with another field count than its header is malformed (extra commas, shifted columns).
//
//   v2022 CallGraph:    timestamp,traceid,service,rpc_id,rpctype,um,uminstanceid,interface,dm,dminstanceid,rt
//   v2021 MSCallGraph: [,]traceid,timestamp,rpcid,um,rpctype,dm,interface,rt   (index column optional)
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { TRACE_V2022 = 1, TRACE_V2021 = 2 } TraceVersion;

// The columns the rules read. SERVICE is absent in v2021 (its service id is derived, see prepare.c).
typedef enum { COL_TIMESTAMP, COL_TRACEID, COL_SERVICE, COL_RPCID, COL_RPCTYPE, COL_UM, COL_DM, COL_INTERFACE, COL_RT, NCOLS } CsvCol;

typedef struct {
    int version;       // TraceVersion
    int ncols;         // fields in every row
    int col[NCOLS];    // field index of each column, -1 when absent
} CsvSchema;

// Recognises a header line. On failure returns false with "unknown header: <the header>" (or why)
// in err.
bool csv_schema_parse(const char *line, size_t len, CsvSchema *s, char *err, size_t errlen);

// Why a line is not a row. The keys of prepare_report.json's "malformed" object.
typedef enum {
    MAL_FIELD_COUNT,     // extra commas or missing fields (shifted columns show up here)
    MAL_LINE_TOO_LONG,   // longer than CSV_MAX_LINE bytes (never a real row; a broken file)
    MAL_NON_UTF8,        // bytes that are not UTF-8
    MAL_BAD_TIMESTAMP,   // timestamp not an integer (shifted columns)
    MAL_BAD_RPC_ID,      // rpc_id not dotted digits "0.1.2", or longer than CSV_MAX_RPC_ID
    MAL_BAD_RT,          // rt present but not a decimal number (missing rt is a separate reason)
    MAL_EMPTY_TRACEID,   // no trace to put the row in
    MAL_NREASONS
} CsvMalformed;
const char *csv_malformed_name(int reason);

#define CSV_MAX_LINE 4096     // real rows are ~150 (v2022) and ~300 (v2021) bytes
#define CSV_MAX_RPC_ID 200    // ~60 levels; the depth rule (15) drops far shorter ids anyway

// What happens to a row, in the order the rules are applied (first match wins).
typedef enum { ROW_OK, ROW_MALFORMED, ROW_FILTERED_TYPE, ROW_UNKNOWN_NAME, ROW_MISSING_RT } CsvRowStatus;

typedef struct { const char *p; int n; } Slice;

typedef struct {
    Slice traceid, service, rpc_id, um, dm, interface;  // service is empty for v2021
    int type;          // RpcType (valid when status >= ROW_UNKNOWN_NAME or ROW_OK)
    int64_t ts;        // ms
    int64_t rt_ms;     // int(float(rt)): truncated toward zero; v2021: its absolute value
    int malformed;     // CsvMalformed when the status is ROW_MALFORMED
} CsvRow;

// Parses one data line (no trailing newline) under schema s.
CsvRowStatus csv_parse_row(const CsvSchema *s, const char *line, size_t len, CsvRow *row);

// Helpers shared with the tests and the fuzz target.
bool csv_is_utf8(const char *p, size_t n);
bool csv_name_missing(const char *p, size_t n);   // UNKNOWN, UNAVAILABLE, "", "(?)", NaN...
// Released ids are zero-padded: "MS_123" -> "MS_00123", "S_42" -> "S_000000042" (names that are
// not PREFIX+digits are copied unchanged). Writes at most cap bytes, returns the length.
int csv_pad_id(const char *p, int n, char *out, int cap);
