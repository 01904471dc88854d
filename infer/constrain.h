// Constrained decoding for one layer answer: a character-level automaton over the layer grammar
// and the request's numbers, turned into a token mask (a token is allowed when every byte of it
// is). The model then cannot write an answer that breaks what the automaton covers:
//
//   structure   "<layer>\n<edges>\n", edge lines "(attr,attr,...)\n" with the five attributes
//               (edge_id, type, destination, starts, finishes) each once in any order,
//               "</edges>\n", then subgraph blocks (and, instruction format, scratchpad lines),
//               "</layer>\n" (or the stop "finish generation") only when the layer is complete
//   edges       exactly num_current_edges (the root layer: 1); edge ids in sequence from
//               start_edge_id; types among http/rpc/mc/db/mq; the first edge starts at
//               start_communication_at; every start >= start_communication_at; start <= finish
//               <= latency; with a callee set's bounds (constrain_set_bounds), a type and a
//               destination only in a pair the set shows, and finish - start <= the callee's
//               longest observed response time
//   subgraphs   only when remaining_depth > 0, exactly num_subgraphs of them, each for an edge of
//               this layer without one yet; the ten condition fields in canonical order (see
//               constrain.c: every order is equally likely in training, and a fixed one makes
//               every range exact): id and caller copied from the layer, start_node = that
//               edge's destination, num_edges summing exactly to num_edges - num_current_edges
//               with room left for one block of remaining_depth - 1, num_current_edges,
//               num_subgraphs and remaining_depth consistent with the block's num_edges (a block
//               of more than 15 current edges may be a split: its num_subgraphs counts chunks),
//               latency <= the edge's finish and the layer latency, start_communication_at <= latency
//
//   names       a destination is [A-Za-z0-9_]+, at most CON_NAME_MAX characters (or the longest
//               name of the condition, when longer), containing none of the format's keywords
//               (CON_KEYWORDS in constrain.c: no real name does, and a name that runs into
//               "latency" or "num_remaining_edges" is the model losing the line); with a name set
//               (constrain_set_names) it is exactly one of the set's names
//
// Not covered (the model's own job, reported by layer_check): which edges get subgraphs, split layers (<split> requests run unconstrained) and the tabular format.
// Fields absent from the condition are not constrained. Tokens never span a line (the
// pre-tokenizer cuts at newlines), which keeps a try cheap: a token is tried on a copy of the small
// line cursor only; the layer's committed edges and blocks change only at a newline.
#pragma once
#include "data/format.h"
#include "tokenizer/bpe.h"
#include <stdbool.h>
#include <stdint.h>

#define CON_MAX_EDGES 128    // layers with more current edges run unconstrained
#define CON_NAME_MAX 64      // a free destination name's length at most

// The microservice names a destination may take: sorted and unique, so the names sharing a typed
// prefix are one range [lo, hi) of v, narrowed by binary search per character (an implicit trie:
// no node arrays, O(log n) a character). Read-only once finished: one set serves every request.
// A callee set of --callees also carries, per name, bounds seen in the training graphs.
typedef struct {
    char **v; int n, cap; int max_len;
    int64_t *below;              // callee sets: the most edges seen under a call to v[j] (-1 unknown); else NULL
    int64_t *rt;                 // callee sets: the longest response time seen of such a call (-1 unknown); else NULL
    uint8_t *types;              // callee sets: the communication types seen of such a call (bit per RpcType); else NULL
    // con_names_encode: each name's tokens as the tokenizer writes it after "destination is " (the
    // only way the model saw it); enc[j] = NULL when the name does not start and end on token
    // boundaries there. A view shares them.
    const uint32_t **enc; int *enc_n;
    uint32_t *enc_pool;          // the set that owns the tokens (NULL in a view)
} ConNames;
void con_names_init(ConNames *s);
// Adds a name; false (not added) when it is empty, longer than FMT_NAME_MAX - 1 or has a character
// outside [A-Za-z0-9_] (the automaton could not write it).
bool con_names_add(ConNames *s, const char *name);
void con_names_finish(ConNames *s);   // sorts and drops duplicates
// Records each name's tokens under tok (call after finishing; again for another tokenizer). With
// them, constrain_mask lets a destination be written only in those tokens: the mask then keeps the
// model's own choice among whole names instead of steering the mass of prefix tokens it meant for
// other names (after "MS_", the digits of whichever allowed name the prefix happens to fit).
void con_names_encode(ConNames *s, const Bpe *tok);
void con_names_free(ConNames *s);
bool con_names_has(const ConNames *s, const char *name);

// Observed callees (`generate --callees`, beyond the paper): per key, the names a destination may
// take. The table narrows the names a layer may call to what the training graphs show; the model
// still chooses among them. Built with con_callees_add, one call each, then finished. Each set
// keeps, per name, the communication types seen of such a call, the most edges seen below it and
// its longest response time: the bounds `generate --callee-bounds` holds generation to
// (con_callees_fit; constrain_set_bounds for the types and response times).
typedef struct {
    char **keys;                 // sorted, unique once finished
    ConNames *sets;              // sets[i]: the names observed for keys[i], with their bounds
    int n, cap;
    char **pk, **pv; int64_t *pb, *pr; int *pt; int np, pcap;  // calls until finished
} ConCallees;
void con_callees_init(ConCallees *c);
// Records that key calls name with communication type `type` (an RpcType), `below` edges under that
// call and response time rt (any of them -1: unknown); false (not recorded) when name could not be
// a destination.
bool con_callees_add(ConCallees *c, const char *key, const char *name, int type, int64_t below, int64_t rt);
void con_callees_finish(ConCallees *c);
void con_callees_free(ConCallees *c);
// The set of key, or NULL when key never called anything.
const ConNames *con_callees_find(const ConCallees *c, const char *key);
void con_callees_encode(ConCallees *c, const Bpe *tok);   // con_names_encode on every set
// The names of key's set that can carry a subtree of `need` edges: those seen with at least
// min(need, the most any of them was seen with) edges below them, or with an unknown count. So the
// set is never empty, and a request larger than anything seen goes to the names that came closest.
// Returns the whole set when every name qualifies, else `view` filled with its qualifying names and
// their bounds (strings shared with the table; free with con_names_view_free, reusable), NULL when
// key is unknown.
const ConNames *con_callees_fit(const ConCallees *c, const char *key, int64_t need, ConNames *view);
void con_names_view_free(ConNames *view);

typedef struct {
    int phase;                   // see constrain.c
    const char *lit; int lit_pos;// a forced literal being typed
    int next_phase;              // after the literal
    uint32_t key_mask; int key_len;   // candidate keys still matching what was typed
    int attr;                    // attribute / condition field whose value is being typed
    uint32_t done;               // attributes / fields finished in this line
    int64_t num; int ndig;       // number typed so far
    int64_t lo, hi, lo2, hi2;    // its allowed ranges (the second may be empty)
    const char *forced; int forced_pos;  // a forced value (or NULL)
    int name_len;                // a free name's length
    char name[FMT_NAME_MAX];     // a destination typed so far (no names set: for the keyword check)
    int nm_lo, nm_hi;            // names set: the names that start with what was typed
    int dst_ix;                  // names set: this edge's destination once typed (-1 before)
    int e_type;                  // this edge's type once typed (-1 before)
    int64_t e_start, e_finish;   // this edge's times (-1 unknown)
    int type_len; uint32_t type_mask;
    char sub_id[24]; int sub_len;// subgraph edge id typed so far
    int sub_edge;                // its edge index once known
    int64_t f[CF_NFIELDS];       // this block's numeric fields (-1 unknown)
    int line_len; unsigned char last;
    char fbuf[FMT_NAME_MAX + 64]; int fpos;  // a forced scratchpad value being typed (in the cursor: tries copy it)
    uint32_t pad_layer, pad_block;           // scratchpad lines written in this layer / since the last block
} ConCursor;

typedef struct { char id[24]; char dst[FMT_NAME_MAX]; int64_t start, finish; bool used; } ConEdge;

typedef struct {
    bool active;                 // false: no constraint (mask NULL)
    bool scratchpad;             // free lines allowed after </edges> (instruction format)
    bool root;                   // the root layer: its one edge finishes exactly at the latency (data/layers.c
                                 // defines the root latency so), and its blocks' latency is that edge's rt
    // the request
    int64_t n_cur, ne, rd, nsub, start_comm, latency, first_id;  // -1 = not given
    char id[FMT_NAME_MAX], caller[FMT_NAME_MAX];   // what blocks copy (id may be empty: free)
    const ConNames *names;       // destinations must be one of these (NULL: any name, see above)
    bool canonical;              // edge attributes in the canonical order only (constrain_set_canonical)
    bool bounds;                 // hold calls to the names set's types and rt bounds (constrain_set_bounds)
    int name_max;                // without names: a destination's length at most
    // committed content
    int n_edges;
    ConEdge e[CON_MAX_EDGES];
    int n_subs; int64_t sub_edges, sub_cur, last_sub; bool any_deep;   // sub_cur: the blocks' current edges
                                 // (split parts), last_sub: the last block's num_edges
    // the scratchpad's naming of blocks to come: the listed edges in order, and the edge the last
    // "copy start_node from edge K" named for block copy_for
    int list[CON_MAX_EDGES], n_list, copy_edge, copy_for;
    // a <split> answer (constrain_set_split): parts only, each hanging from split_edge
    bool split;
    char split_edge[24], split_caller[FMT_NAME_MAX];
    char dst[FMT_NAME_MAX];      // destination being typed
    ConCursor c;
    bool complete;               // the answer is finished (a terminator was typed)
} Constraint;

// For a layer request with condition `cond` (root: the root layer, one edge).
void constrain_init(Constraint *k, const Condition *cond, bool root, bool scratchpad);
// The request is a <split> (instruction format, a layer of more than 15 current edges asked in
// parts, the release's way): the answer is "<split>\n", scratchpad lines and num_subgraphs part
// blocks, each "<subgraph of edge_id EDGE_ID>" (the layer's own edge) with a condition that keeps
// id, start_node, caller and latency, partitions num_edges and num_current_edges (1..15 current
// edges a part), runs start_edge_id on, starts the first part at start_communication_at, and
// keeps remaining_depth in one part; then "</split>\n". False (and k inactive) when the condition
// does not say enough, or is a nested split (more than 15 current edges a part). Call after
// constrain_init, before feeding.
bool constrain_set_split(Constraint *k, const Condition *cond, const char *edge_id);
// Destinations must then be names of s (finished, non-empty, outliving k). Call before feeding.
void constrain_set_names(Constraint *k, const ConNames *s);
// Edge attributes then only in the canonical order (edge_id, type, destination, starts, finishes),
// the order `--canonical-order` training text always has: a model trained on it has never seen
// another, and an order it drifts into is text it cannot continue well. Call before feeding.
void constrain_set_canonical(Constraint *k, bool on);
// With a callee set (names carrying bounds): an edge's type and destination only as a pair the set
// shows (whichever is typed first narrows the other), and a call of a non-root layer whose
// destination and start are typed before its finish (the canonical order) finishes at most start +
// the longest response time the set shows for that callee. Call before feeding.
void constrain_set_bounds(Constraint *k, bool on);
// Feeds generated bytes; false (state unspecified) when they break the automaton.
bool constrain_feed(Constraint *k, const unsigned char *s, size_t n);
// Would these bytes be accepted next? (does not change k)
bool constrain_try(const Constraint *k, const unsigned char *s, size_t n);
// Is the next byte part of a numeric field's value: an edge's id, start or finish, or a block's
// num_edges, num_current_edges, num_subgraphs, remaining_depth, start_edge_id,
// start_communication_at or latency (from its first digit up to and including the byte that ends
// it, so the number's length is also chosen there)? Names, copied fields (id, caller, start_node),
// the edge id of "<subgraph of edge_id K>" and scratchpad lines are not. False when inactive.
// `generate --number-temperature` samples these tokens at their own temperature.
bool constrain_in_number(const Constraint *k);
// mask (V,): 1 for every token of tok whose bytes constrain_try accepts; specials never.
// Returns the number of allowed tokens.
int constrain_mask(const Constraint *k, const Bpe *tok, uint8_t *mask);
