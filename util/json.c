// Recursive-descent JSON parser. Nodes come from a bump allocator in one malloc'ed block so a
// parsed document is freed at once; strings are unescaped into the same block.
#include "util/json.h"
#include "util/util.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *s, *end, *start;
    char *pool; size_t used, cap;   // bump allocator
    char *err; size_t errlen;
    int depth;
} P;

typedef struct Block { struct Block *next; } Block;

static void *alloc(P *p, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (p->used + n > p->cap) {
        // chain a new block; the first 16 bytes of each block link to the previous one
        size_t cap = p->cap * 2 > n + 16 ? p->cap * 2 : n + 16;
        char *b = xmalloc(cap);
        ((Block *)b)->next = (Block *)p->pool;
        p->pool = b; p->cap = cap; p->used = 16;
    }
    void *r = p->pool + p->used;
    p->used += n;
    return r;
}

static bool fail(P *p, const char *what) {
    if (p->err && !p->err[0]) snprintf(p->err, p->errlen, "offset %ld: expected %s", (long)(p->s - p->start), what);
    return false;
}
static void ws(P *p) { while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')) p->s++; }

static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool parse_string(P *p, const char **out) {
    if (p->s >= p->end || *p->s != '"') return fail(p, "'\"'");
    p->s++;
    const char *q = p->s;
    while (q < p->end && *q != '"') { if (*q == '\\') q++; q++; }
    if (q >= p->end) return fail(p, "closing '\"'");
    char *d = alloc(p, (size_t)(q - p->s) + 1), *o = d;
    while (p->s < q) {
        unsigned char c = (unsigned char)*p->s++;
        if (c < 0x20) { p->s--; return fail(p, "no control character in string"); }
        if (c != '\\') { *o++ = (char)c; continue; }
        c = (unsigned char)*p->s++;
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            if (q - p->s < 4) return fail(p, "4 hex digits");
            int v = 0;
            for (int i = 0; i < 4; i++) { int h = hex(p->s[i]); if (h < 0) return fail(p, "hex digit"); v = v * 16 + h; }
            p->s += 4;
            // UTF-8 encode the code unit (surrogate pairs are kept as two 3-byte sequences)
            if (v < 0x80) *o++ = (char)v;
            else if (v < 0x800) { *o++ = (char)(0xC0 | v >> 6); *o++ = (char)(0x80 | (v & 63)); }
            else { *o++ = (char)(0xE0 | v >> 12); *o++ = (char)(0x80 | (v >> 6 & 63)); *o++ = (char)(0x80 | (v & 63)); }
            break;
        }
        default: p->s--; return fail(p, "a valid escape");
        }
    }
    *o = 0;
    p->s = q + 1;
    *out = d;
    return true;
}

static bool parse_value(P *p, Json *v);

static bool parse_number(P *p, Json *v) {
    const char *b = p->s;
    if (p->s < p->end && *p->s == '-') p->s++;
    if (p->s >= p->end || !(*p->s >= '0' && *p->s <= '9')) return fail(p, "a value");
    while (p->s < p->end && ((*p->s >= '0' && *p->s <= '9') || *p->s == '.' || *p->s == 'e' || *p->s == 'E' ||
                             *p->s == '+' || *p->s == '-'))
        p->s++;
    char *t = alloc(p, (size_t)(p->s - b) + 1);
    memcpy(t, b, p->s - b);
    t[p->s - b] = 0;
    char *end;
    v->num = strtod(t, &end);
    if (*end) { p->s = b; return fail(p, "a number"); }
    v->type = JSON_NUMBER;
    v->str = t;
    return true;
}

static bool lit(P *p, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(p->end - p->s) < n || memcmp(p->s, w, n)) return false;
    p->s += n;
    return true;
}

static bool parse_value(P *p, Json *v) {
    ws(p);
    if (p->s >= p->end) return fail(p, "a value");
    if (++p->depth > 256) return fail(p, "nesting depth <= 256");
    bool ok = true;
    char c = *p->s;
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        v->type = c == '{' ? JSON_OBJECT : JSON_ARRAY;
        p->s++;
        ws(p);
        Json **tail = &v->child;
        if (p->s < p->end && *p->s == close) p->s++;
        else for (;;) {
            Json *ch = alloc(p, sizeof *ch);
            memset(ch, 0, sizeof *ch);
            if (v->type == JSON_OBJECT) {
                ws(p);
                if (!parse_string(p, &ch->key)) return false;
                ws(p);
                if (p->s >= p->end || *p->s != ':') return fail(p, "':'");
                p->s++;
            }
            if (!parse_value(p, ch)) return false;
            *tail = ch; tail = &ch->next; v->n++;
            ws(p);
            if (p->s < p->end && *p->s == ',') { p->s++; continue; }
            if (p->s < p->end && *p->s == close) { p->s++; break; }
            return fail(p, close == '}' ? "',' or '}'" : "',' or ']'");
        }
    } else if (c == '"') {
        v->type = JSON_STRING;
        ok = parse_string(p, &v->str);
    } else if (lit(p, "true")) { v->type = JSON_BOOL; v->b = true; }
    else if (lit(p, "false")) { v->type = JSON_BOOL; v->b = false; }
    else if (lit(p, "null")) { v->type = JSON_NULL; }
    else ok = parse_number(p, v);
    p->depth--;
    return ok;
}

Json *json_parse(const char *text, size_t len, char *err, size_t errlen) {
    P p = {.s = text, .end = text + len, .start = text, .err = err, .errlen = errlen};
    if (err && errlen) err[0] = 0;
    p.cap = 4096 + len * 2;
    p.pool = xmalloc(p.cap);
    ((Block *)p.pool)->next = NULL;
    p.used = 16;
    // the root node is the first allocation of the first block... but blocks chain newest-first,
    // so remember the root and find the oldest block at free time through the chain.
    Json *root = alloc(&p, sizeof *root);
    memset(root, 0, sizeof *root);
    bool ok = parse_value(&p, root);
    if (ok) { ws(&p); if (p.s != p.end) ok = fail(&p, "end of input"); }
    // stash the newest block pointer in the root so json_free can walk the chain
    root->key = p.pool;
    if (!ok) { json_free(root); return NULL; }
    return root;
}

void json_free(Json *root) {
    if (!root) return;
    Block *b = (Block *)root->key;
    while (b) { Block *n = b->next; free(b); b = n; }
}

Json *json_get(const Json *obj, const char *key) {
    if (!obj || obj->type != JSON_OBJECT) return NULL;
    for (Json *c = obj->child; c; c = c->next)
        if (!strcmp(c->key, key)) return c;
    return NULL;
}
Json *json_at(const Json *arr, int i) {
    if (!arr || arr->type != JSON_ARRAY || i < 0) return NULL;
    Json *c = arr->child;
    while (c && i--) c = c->next;
    return c;
}
bool json_int(const Json *v, int64_t *out) {
    if (!v || v->type != JSON_NUMBER) return false;
    char *end;
    errno = 0;
    long long x = strtoll(v->str, &end, 10);
    if (*end || errno) {
        // allow "12.0" style integral doubles
        if (v->num != (double)(long long)v->num) return false;
        x = (long long)v->num;
    }
    *out = x;
    return true;
}

size_t json_escape(char *dst, size_t cap, const char *s) {
    size_t n = 0;
#define PUT(c) do { if (n + 1 < cap) dst[n] = (c); n++; } while (0)
    PUT('"');
    for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
        unsigned char c = *q;
        if (c == '"' || c == '\\') { PUT('\\'); PUT(c); }
        else if (c == '\n') { PUT('\\'); PUT('n'); }
        else if (c == '\t') { PUT('\\'); PUT('t'); }
        else if (c == '\r') { PUT('\\'); PUT('r'); }
        else if (c < 0x20) {
            char h[8];
            snprintf(h, sizeof h, "\\u%04x", c);
            for (int i = 0; h[i]; i++) PUT(h[i]);
        } else PUT(c);
    }
    PUT('"');
#undef PUT
    if (cap) dst[n < cap ? n : cap - 1] = 0;
    return n;
}

void json_write_string(FILE *f, const char *s) {
    char buf[512];
    size_t n = json_escape(buf, sizeof buf, s);
    if (n < sizeof buf) { fwrite(buf, 1, n, f); return; }
    char *big = xmalloc(n + 1);
    json_escape(big, n + 1, s);
    fwrite(big, 1, n, f);
    free(big);
}
