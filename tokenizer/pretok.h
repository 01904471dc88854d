// Pre-tokenization made for trace text: cuts text into pieces ("pre-tokens") that BPE merges
// never cross. The rules decide what the vocabulary can learn:
//   - every digit is its own piece, so numbers are spelled digit by digit and generalise
//     (Llama-2 does the same; a latency of 1706 ms is 4 tokens, never one memorised token);
//   - an identifier (letters/underscore followed by a run of [A-Za-z0-9_] that contains a digit:
//     MS_12345, S_000034483, T_123) is one piece, so a frequent one becomes one token;
//   - words without digits (USER, edge_id, milliseconds) join with the words that follow them
//     across single spaces into one phrase, so the formats' fixed phrases ("communication starts
//     at", "type is http") can merge into single tokens; a word takes its leading space;
//   - markup (<edges>, </layer>, [GENERATE GRAPH], "<subgraph of edge_id ") is one piece, and any
//     other punctuation is a piece of its own (a run of the same character: "###");
//   - a single space followed by a digit or an identifier ends the piece before it ("at " + "0"),
//     so digits and identifiers never carry a space and each has exactly one spelling;
//   - no piece is longer than PRETOK_MAX bytes (a longer run is cut there).
// The pieces partition the input exactly, so decode(encode(x)) == x for any bytes.
#pragma once
#include <stddef.h>

#define PRETOK_MAX 128
// Recorded in tokenizer files: a file trained with other rules is refused.
#define PRETOK_VERSION 1u

// Length (1..PRETOK_MAX) of the piece that starts at s[0]; n > 0 bytes are available.
size_t pretok_next(const unsigned char *s, size_t n);

// A position >= pos where a piece boundary is guaranteed whatever came before (just after a
// newline that is followed by a non-space), or n. Text cut there and pre-tokenized in parts gives
// the same pieces as the whole, which lets threads split one big text deterministically.
size_t pretok_safe_split(const unsigned char *s, size_t n, size_t pos);
