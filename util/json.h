// Minimal JSON: a strict parser into a tree (for graph lines, prompt files, stats, run metadata)
// and string escaping for writers. Numbers are kept as double and as their text, so 64-bit
// integers survive a round trip.
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } JsonType;

typedef struct Json Json;
struct Json {
    JsonType type;
    int n;            // array/object: number of children
    const char *key;  // member name when inside an object
    const char *str;  // string value (unescaped) or the number's text
    double num;
    bool b;
    Json *child;      // first child (arrays/objects)
    Json *next;       // next sibling
};

// Parses text[0..len). Returns NULL on error and writes "offset N: expected ..." into err.
// All nodes and strings live in one block freed by json_free.
Json *json_parse(const char *text, size_t len, char *err, size_t errlen);
void json_free(Json *root);

Json *json_get(const Json *obj, const char *key);     // member or NULL
Json *json_at(const Json *arr, int i);                // element or NULL
// Integer value of a number node (exact for |x| < 2^63); false when not an integer number.
bool json_int(const Json *v, int64_t *out);

// Writes s as a JSON string literal (with quotes) to f.
void json_write_string(FILE *f, const char *s);
// Same into a buffer; returns bytes needed (excluding NUL), like snprintf.
size_t json_escape(char *dst, size_t cap, const char *s);
