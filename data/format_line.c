// The two line grammars every format shares: condition lines ("key:value/key:value", any order)
// and edge lines ("(attr,attr,...)", any order), rendered and parsed; plus the text buffer they
// are rendered into. Parsing dispatches on the first bytes of each attribute and copies values
// into fixed buffers: no allocation, no strtol, no regular expressions.
#include "data/format.h"
#include "util/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- text buffer ----
void tb_reserve(TextBuf *b, size_t extra) {
    if (b->n + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + extra + 1) cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}
void tb_free(TextBuf *b) { free(b->p); memset(b, 0, sizeof *b); }
void tb_put(TextBuf *b, const char *s, size_t n) {
    tb_reserve(b, n);
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
void tb_puts(TextBuf *b, const char *s) { tb_put(b, s, strlen(s)); }
void tb_putc(TextBuf *b, char c) {
    tb_reserve(b, 1);
    b->p[b->n++] = c;
    b->p[b->n] = 0;
}
void tb_int(TextBuf *b, int64_t v) {
    char tmp[24];
    int i = 24;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do { tmp[--i] = (char)('0' + u % 10); u /= 10; } while (u);
    if (v < 0) tmp[--i] = '-';
    tb_put(b, tmp + i, (size_t)(24 - i));
}

// Small Fisher-Yates over ints (rng_shuffle is generic and slower per swap).
static void shuffle_ints(Rng *r, int *v, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(r, (uint64_t)i + 1), t = v[i];
        v[i] = v[j]; v[j] = t;
    }
}

// Parses an optionally negative decimal integer s[0..n) exactly (at most 18 digits).
static bool parse_int(const char *s, size_t n, int64_t *out) {
    size_t i = 0;
    bool neg = n > 0 && s[0] == '-';
    if (neg) i++;
    if (i == n || n - i > 18) return false;
    int64_t v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = neg ? -v : v;
    return true;
}

// ---- conditions ----
static const char *COND_NAMES[CF_NFIELDS] = {"id", "start_node", "caller", "num_edges", "num_current_edges", "num_subgraphs",
                                             "remaining_depth", "start_edge_id", "start_communication_at", "latency", "depth"};
static const unsigned char COND_LEN[CF_NFIELDS] = {2, 10, 6, 9, 17, 13, 15, 13, 22, 7, 5};
static bool cond_is_str(int f) { return f == CF_ID || f == CF_START_NODE || f == CF_CALLER || f == CF_START_EDGE_ID; }
static char *cond_str(Condition *c, int f) {
    return f == CF_ID ? c->id : f == CF_START_NODE ? c->start_node : f == CF_CALLER ? c->caller : c->start_edge_id;
}
static const char *cond_cstr(const Condition *c, int f) { return cond_str((Condition *)c, f); }
static size_t cond_str_cap(int f) { return f == CF_START_EDGE_ID ? FMT_ID_MAX : FMT_NAME_MAX; }

const char *cond_field_name(int f) { return f >= 0 && f < CF_NFIELDS ? COND_NAMES[f] : "?"; }
void cond_clear(Condition *c) {
    c->present = 0;
    c->id[0] = c->start_node[0] = c->caller[0] = c->start_edge_id[0] = 0;
    for (int f = 0; f < CF_NFIELDS; f++) c->v[f] = -1;
}
void cond_set_str(Condition *c, int f, const char *s) {
    size_t n = strlen(s), cap = cond_str_cap(f);
    if (n >= cap) n = cap - 1;   // callers check lengths first (layers_build); never overflow
    memcpy(cond_str(c, f), s, n);
    cond_str(c, f)[n] = 0;
    c->present |= CF_BIT(f);
}
void cond_set_num(Condition *c, int f, int64_t v) {
    c->v[f] = v;
    c->present |= CF_BIT(f);
}

void cond_render(TextBuf *out, const Condition *c, uint32_t fields, Rng *rng) {
    int order[CF_NFIELDS], n = 0;
    for (int f = 0; f < CF_NFIELDS; f++)
        if ((fields & c->present) >> f & 1u) order[n++] = f;
    if (rng) shuffle_ints(rng, order, n);
    tb_reserve(out, 512);
    for (int i = 0; i < n; i++) {
        int f = order[i];
        if (i) tb_putc(out, '/');
        tb_put(out, COND_NAMES[f], COND_LEN[f]);
        tb_putc(out, ':');
        if (cond_is_str(f)) tb_puts(out, cond_cstr(c, f));
        else tb_int(out, c->v[f]);
    }
}

static int cond_key(const char *k, size_t n) {
    for (int f = 0; f < CF_NFIELDS; f++)
        if (COND_LEN[f] == n && !memcmp(COND_NAMES[f], k, n)) return f;
    return -1;
}

bool cond_parse(const char *s, size_t n, Condition *c, char *err, size_t errlen) {
    cond_clear(c);
    size_t i = 0;
    if (n == 0) { snprintf(err, errlen, "empty condition line"); return false; }
    while (i <= n) {
        const char *seg = s + i;
        const char *end = memchr(seg, '/', n - i);
        size_t len = end ? (size_t)(end - seg) : n - i;
        const char *colon = memchr(seg, ':', len);
        if (!colon) { snprintf(err, errlen, "'%.*s' is not key:value", (int)(len < 60 ? len : 60), seg); return false; }
        size_t klen = (size_t)(colon - seg), vlen = len - klen - 1;
        const char *val = colon + 1;
        int f = cond_key(seg, klen);
        if (f < 0) { snprintf(err, errlen, "unknown field '%.*s'", (int)(klen < 60 ? klen : 60), seg); return false; }
        if (cond_has(c, f)) { snprintf(err, errlen, "field '%s' given twice", COND_NAMES[f]); return false; }
        if (vlen == 0) { snprintf(err, errlen, "field '%s': empty value", COND_NAMES[f]); return false; }
        if (cond_is_str(f)) {
            if (vlen >= cond_str_cap(f)) { snprintf(err, errlen, "field '%s': value longer than %zu bytes", COND_NAMES[f], cond_str_cap(f) - 1); return false; }
            for (size_t i = 0; i < vlen; i++)
                if ((unsigned char)val[i] < 0x20 || val[i] == 0x7f) {
                    snprintf(err, errlen, "field '%s': control character 0x%02x in the value", COND_NAMES[f], (unsigned char)val[i]);
                    return false;
                }
            if (memchr(val, ':', vlen)) { snprintf(err, errlen, "field '%s': value '%.*s' contains ':'", COND_NAMES[f], (int)(vlen < 60 ? vlen : 60), val); return false; }
            memcpy(cond_str(c, f), val, vlen);
            cond_str(c, f)[vlen] = 0;
        } else if (!parse_int(val, vlen, &c->v[f])) {
            snprintf(err, errlen, "field '%s': expected an integer, got '%.*s'", COND_NAMES[f], (int)(vlen < 40 ? vlen : 40), val);
            return false;
        }
        c->present |= CF_BIT(f);
        if (!end) break;
        i += len + 1;
    }
    return true;
}

bool cond_agree(const Condition *a, const Condition *b, uint32_t fields, int *diff) {
    uint32_t both = fields & a->present & b->present;
    for (int f = 0; f < CF_NFIELDS; f++) {
        if (!(both >> f & 1u)) continue;
        bool same = cond_is_str(f) ? !strcmp(cond_cstr(a, f), cond_cstr(b, f)) : a->v[f] == b->v[f];
        if (!same) { if (diff) *diff = f; return false; }
    }
    return true;
}

// ---- edges ----
static const char *EDGE_ATTR[6] = {"edge_id", "type", "source", "destination", "communication starts at", "communication finishes at"};

void edge_missing_names(int want, int present, char *out, size_t outlen) {
    size_t k = 0;
    out[0] = 0;
    for (int i = 0; i < 6; i++)
        if ((want >> i & 1) && !(present >> i & 1)) {
            int w = snprintf(out + k, outlen - k, "%s%s", k ? ", " : "", EDGE_ATTR[i]);
            if (w < 0 || (size_t)w >= outlen - k) break;
            k += (size_t)w;
        }
}

void edge_render(TextBuf *out, const FEdge *e, int fields, Rng *rng) {
    edge_render_parts(out, e->id, e->type, e->src, e->dst, e->start, e->finish, fields, rng);
}
void edge_render_parts(TextBuf *out, const char *id, int type, const char *src, const char *dst, int64_t start,
                       int64_t finish, int fields, Rng *rng) {
    int order[6], n = 0;
    for (int i = 0; i < 6; i++)
        if (fields >> i & 1) order[n++] = i;
    if (rng) shuffle_ints(rng, order, n);
    tb_reserve(out, 400);
    tb_putc(out, '(');
    for (int i = 0; i < n; i++) {
        if (i) tb_putc(out, ',');
        switch (order[i]) {
        case 0: tb_put(out, "edge_id is ", 11); tb_puts(out, id); break;
        case 1: tb_put(out, "type is ", 8); tb_puts(out, rpc_type_name(type)); break;
        case 2: tb_put(out, "source is ", 10); tb_puts(out, src); break;
        case 3: tb_put(out, "destination is ", 15); tb_puts(out, dst); break;
        case 4: tb_put(out, "communication starts at ", 24); tb_int(out, start); tb_put(out, " milliseconds", 13); break;
        case 5: tb_put(out, "communication finishes at ", 26); tb_int(out, finish); tb_put(out, " milliseconds", 13); break;
        }
    }
    tb_putc(out, ')');
}

#define HAS_PREFIX(p, n, lit) ((n) >= sizeof(lit) - 1 && !memcmp((p), lit, sizeof(lit) - 1))

// One attribute a[0..n) (complete). Returns false with err.
static bool edge_attr(const char *a, size_t n, FEdge *e, int allowed, char *err, size_t errlen) {
    int bit;
    const char *v;
    size_t vn;
    if (HAS_PREFIX(a, n, "edge_id is ")) { bit = EF_ID; v = a + 11; vn = n - 11; }
    else if (HAS_PREFIX(a, n, "type is ")) { bit = EF_TYPE; v = a + 8; vn = n - 8; }
    else if (HAS_PREFIX(a, n, "destination is ")) { bit = EF_DST; v = a + 15; vn = n - 15; }
    else if (HAS_PREFIX(a, n, "source is ")) { bit = EF_SRC; v = a + 10; vn = n - 10; }
    else if (HAS_PREFIX(a, n, "communication starts at ")) { bit = EF_START; v = a + 24; vn = n - 24; }
    else if (HAS_PREFIX(a, n, "communication finishes at ")) { bit = EF_FINISH; v = a + 26; vn = n - 26; }
    else { snprintf(err, errlen, "unknown attribute '%.*s'", (int)(n < 60 ? n : 60), a); return false; }
    int idx = __builtin_ctz((unsigned)bit);
    if (!(allowed & bit)) { snprintf(err, errlen, "attribute '%s' is not allowed here", EDGE_ATTR[idx]); return false; }
    if (e->present & bit) { snprintf(err, errlen, "attribute '%s' given twice", EDGE_ATTR[idx]); return false; }
    if (vn == 0) { snprintf(err, errlen, "attribute '%s': empty value", EDGE_ATTR[idx]); return false; }
    switch (bit) {
    case EF_ID: case EF_DST: case EF_SRC: {
        // names travel through condition lines too ("start_node:MS_1/..."): keep them parseable
        for (size_t i = 0; i < vn; i++) {
            unsigned char ch = (unsigned char)v[i];
            if (ch < 0x20 || ch == 0x7f || ch == '/' || ch == ':' || (bit == EF_ID && (ch == '>' || (ch == '.' && !(allowed & EF_SRC))))) {
                snprintf(err, errlen, "attribute '%s': character 0x%02x not allowed in '%.*s'", EDGE_ATTR[idx], ch, (int)(vn < 40 ? vn : 40), v);
                return false;
            }
        }
        char *dst = bit == EF_ID ? e->id : bit == EF_DST ? e->dst : e->src;
        size_t cap = bit == EF_ID ? FMT_ID_MAX : FMT_NAME_MAX;
        if (vn >= cap) { snprintf(err, errlen, "attribute '%s': value longer than %zu bytes", EDGE_ATTR[idx], cap - 1); return false; }
        memcpy(dst, v, vn);
        dst[vn] = 0;
        break;
    }
    case EF_TYPE:
        e->type = rpc_type_parse(v, vn);
        if (e->type < 0) { snprintf(err, errlen, "attribute 'type': unknown type '%.*s'", (int)(vn < 30 ? vn : 30), v); return false; }
        break;
    default: {
        int64_t x;
        if (vn < 14 || memcmp(v + vn - 13, " milliseconds", 13) || !parse_int(v, vn - 13, &x)) {
            snprintf(err, errlen, "attribute '%s': expected 'N milliseconds', got '%.*s'", EDGE_ATTR[idx], (int)(vn < 40 ? vn : 40), v);
            return false;
        }
        if (bit == EF_START) e->start = x; else e->finish = x;
    }
    }
    e->present |= (uint8_t)bit;
    return true;
}

int edge_parse(const char *s, size_t n, FEdge *e, int allowed, char *err, size_t errlen) {
    e->present = 0;
    e->id[0] = e->src[0] = e->dst[0] = 0;
    e->type = -1;
    e->start = e->finish = 0;
    if (n == 0 || s[0] != '(') { snprintf(err, errlen, "an edge line starts with '('"); return 0; }
    size_t i = 1;
    for (;;) {
        // an attribute runs to the next ',' or ')'; names never contain either
        size_t j = i;
        while (j < n && s[j] != ',' && s[j] != ')') j++;
        if (j == n) return -1;   // cut off: the fragment s[i..n) is not counted
        if (!edge_attr(s + i, j - i, e, allowed, err, errlen)) return 0;
        if (s[j] == ')') {
            if (j + 1 != n) { snprintf(err, errlen, "text after ')': '%.*s'", (int)(n - j - 1 < 40 ? n - j - 1 : 40), s + j + 1); return 0; }
            break;
        }
        i = j + 1;
    }
    if ((e->present & allowed) != allowed) {
        char miss[160];
        edge_missing_names(allowed, e->present, miss, sizeof miss);
        snprintf(err, errlen, "missing %s", miss);
        return 0;
    }
    return 1;
}

bool text_safe_name(const char *s) {
    if (!*s) return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch == 0x7f || ch == '/' || ch == ':' || ch == ',' || ch == ')' || ch == '>') return false;
    }
    return true;
}

// ---- cursors and detection ----
void cursor_init(TextCursor *c, const char *text, size_t n, const char *name) {
    c->p = text; c->n = n; c->pos = 0; c->line = 0; c->name = name ? name : "<text>";
}

bool cursor_line(TextCursor *c, const char **s, size_t *len) {
    if (c->pos >= c->n) return false;
    const char *p = c->p + c->pos;
    const char *nl = memchr(p, '\n', c->n - c->pos);
    size_t n = nl ? (size_t)(nl - p) : c->n - c->pos;
    c->pos += n + (nl ? 1 : 0);
    if (n && p[n - 1] == '\r') n--;
    *s = p;
    *len = n;
    c->line++;
    return true;
}
bool cursor_skip_blank(TextCursor *c) {
    for (;;) {
        if (c->pos >= c->n) return false;
        const char *p = c->p + c->pos;
        const char *nl = memchr(p, '\n', c->n - c->pos);
        size_t n = nl ? (size_t)(nl - p) : c->n - c->pos;
        size_t k = 0;
        while (k < n && (p[k] == ' ' || p[k] == '\r' || p[k] == '\t')) k++;
        if (k < n) return true;
        c->pos += n + (nl ? 1 : 0);
        c->line++;
    }
}

static const char *FORMAT_NAMES[] = {"unknown", "tabular", "recursive", "instruction"};
const char *text_format_name(TextFormat f) { return f >= 0 && f <= TEXT_INSTRUCT ? FORMAT_NAMES[f] : "?"; }
TextFormat text_detect(const char *t, size_t n) {
    size_t i = 0;
    while (i < n && (t[i] == '\n' || t[i] == '\r' || t[i] == ' ')) i++;
    if (HAS_PREFIX(t + i, n - i, "### Question:")) return TEXT_INSTRUCT;
    if (!HAS_PREFIX(t + i, n - i, "[GENERATE GRAPH]")) return TEXT_UNKNOWN;
    const char *nl = memchr(t + i, '\n', n - i);
    if (!nl) return TEXT_UNKNOWN;
    size_t j = (size_t)(nl - t) + 1;
    if (HAS_PREFIX(t + j, n - j, "<edges>")) return TEXT_TABULAR;
    if (HAS_PREFIX(t + j, n - j, "<layer>")) return TEXT_RECURSIVE;
    return TEXT_UNKNOWN;
}
