// Trace-aware pre-tokenization; the rules and why are in pretok.h. Everything here looks only
// forward from the start of a piece, so the pieces depend on nothing but the bytes.
#include "tokenizer/pretok.h"
#include <stdbool.h>

static inline bool is_digit(unsigned c) { return c - '0' < 10; }
static inline bool is_alpha(unsigned c) { return (c | 32) - 'a' < 26 || c == '_'; }
static inline bool is_alnum(unsigned c) { return is_alpha(c) || is_digit(c); }
static inline bool is_space(unsigned c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }
static inline bool is_punct(unsigned c) { return c > 32 && c < 127 && !is_alnum(c); }

// End of the [A-Za-z0-9_'] run starting at i (an apostrophe only between letters: "requirement's");
// *digit tells whether the run holds a digit (then it is an identifier, not a word).
static size_t scan_run(const unsigned char *s, size_t i, size_t n, bool *digit) {
    *digit = false;
    while (i < n) {
        if (is_digit(s[i])) *digit = true;
        else if (s[i] == '\'' && i + 1 < n && is_alpha(s[i + 1]) && i > 0 && is_alpha(s[i - 1])) {}
        else if (!is_alpha(s[i])) break;
        i++;
    }
    return i;
}

static bool ident_at(const unsigned char *s, size_t i, size_t n) {
    if (i >= n || !is_alpha(s[i])) return false;
    bool digit;
    scan_run(s, i, n, &digit);
    return digit;
}

// Words joined by single spaces, starting at the word at i: "communication starts at".
// Stops before a space that leads to an identifier or a non-word. Never passes lim.
static size_t scan_phrase(const unsigned char *s, size_t i, size_t n, size_t lim) {
    bool digit;
    size_t e = scan_run(s, i, n, &digit);
    if (e > lim) return lim;
    if (digit) return e;  // an identifier stands alone
    while (e + 1 < n && s[e] == ' ' && is_alpha(s[e + 1])) {
        size_t e2 = scan_run(s, e + 1, n, &digit);
        if (digit || e2 > lim) break;
        e = e2;
    }
    return e;
}

// A piece that ends at e absorbs one following space when a digit or an identifier comes next.
static size_t trailing_space(const unsigned char *s, size_t e, size_t n, size_t lim) {
    if (e < lim && e + 1 < n && s[e] == ' ' && (is_digit(s[e + 1]) || ident_at(s, e + 1, n))) return e + 1;
    return e;
}

// Can a single space before s[i] join the piece that starts at i?
static bool takes_space(const unsigned char *s, size_t i, size_t n) {
    if (i >= n) return false;
    if (is_alpha(s[i])) return !ident_at(s, i, n);
    return is_punct(s[i]);
}

size_t pretok_next(const unsigned char *s, size_t n) {
    size_t lim = n < PRETOK_MAX ? n : PRETOK_MAX;
    unsigned c = s[0];
    if (is_digit(c)) return 1;
    size_t i = 0;
    if (c == ' ' && takes_space(s, 1, n) && lim > 1) i = 1;  // leading space joins the word/punctuation
    c = s[i];
    if (is_alpha(c)) return trailing_space(s, scan_phrase(s, i, n, lim), n, lim);
    if ((c == '<' || c == '[') && i + 1 < n) {
        // markup: "<edges>", "</layer>", "[GENERATE GRAPH]", "<subgraph of edge_id "
        size_t k = i + 1;
        if (k < n && s[k] == '/') k++;
        if (k < lim && is_alpha(s[k]) && !ident_at(s, k, n)) {
            size_t e = scan_phrase(s, k, n, lim);
            unsigned close = c == '<' ? '>' : ']';
            if (e < lim && s[e] == close) e++;
            return trailing_space(s, e, n, lim);
        }
    }
    if (is_punct(c)) {
        size_t e = i + 1;
        while (e < lim && s[e] == c) e++;
        return trailing_space(s, e, n, lim);
    }
    if (is_space(c)) {
        size_t e = 1;
        while (e < lim && is_space(s[e])) e++;
        // leave a last single space to the word that follows: "\n\n" + " ###"
        if (e > 1 && e < n && s[e - 1] == ' ' && takes_space(s, e, n)) e--;
        return e;
    }
    if (c >= 0x80) {  // UTF-8 and other high bytes: one run, BPE merges what is frequent
        size_t e = i + 1;
        while (e < lim && s[e] >= 0x80) e++;
        return e;
    }
    return i + 1;  // control characters, and a lone space before something else
}

size_t pretok_safe_split(const unsigned char *s, size_t n, size_t pos) {
    for (size_t k = pos < 1 ? 1 : pos; k < n; k++)
        if (s[k - 1] == '\n' && !is_space(s[k])) return k;
    return n;
}
