/* Compiled patterns (pattern.h) over flattened events (flatten.h).
 *
 * Pure: no I/O, no globals.
 */
#ifndef EB_PATTERN_FLAT_H
#define EB_PATTERN_FLAT_H

#include <stdbool.h>
#include <stdint.h>

#include "flatten.h"
#include "pattern.h"

/* Adds to t every field path p looks at: each field, nested or inside an
 * $or, by its names from the event root. p must outlive t (t borrows its
 * names). Returns a new array (free() it) that gives the trie node of each
 * of p's fields, for eb_pattern_match_flat(). */
uint32_t *eb_pattern_paths(const eb_pattern *p, eb_ftrie *t);

/* Returns whether the flattened event f matches p, exactly as
 * eb_pattern_match() answers for the CloudEvents JSON view of the same
 * event. field_nodes is what eb_pattern_paths() returned for p and the trie
 * f was flattened along. Allocates nothing. */
bool eb_pattern_match_flat(const eb_pattern *p, const uint32_t *field_nodes, const eb_flat *f);

struct field;
struct cond;

/* How the anchor index can decide p without evaluating it in full
 * (docs/decisions/0012), for p without $or and with at most 32 leaf fields.
 * Leaves are numbered in the pattern's order; leaves[i] is leaf i (borrowed
 * from p). An anchor group hit decides its leaf exactly when the leaf's
 * conditions are exact values, equals-ignore-case, prefix, suffix, numeric
 * a wildcard, anything-but or cidr (the index checks those on the value that
 * hits their anchor: struct eb_anchor.verify); the other leaves (set in *check) must be tested
 * one by one with eb_pattern_test_leaf(). All this holds provided the fields
 * of each nested object with several fields come from one object: the event
 * has no array at any of those objects' paths or on the way to them. Those
 * trie nodes are returned in *guards (a new array, free() it; *nguards of
 * them). leaf_of_group[g] is the leaf of anchor group g, for the *ngroups
 * groups that eb_pattern_anchors() reports. field_nodes is from
 * eb_pattern_paths(). Returns false when p does not qualify (nothing
 * written). */
struct eb_pattern_plan {
    uint32_t *guards;
    size_t nguards;
    uint32_t check;
    uint8_t leaf_of_group[32];
    unsigned ngroups;
    const struct field *leaves[32];
    unsigned nleaves;
};
bool eb_pattern_exact(const eb_pattern *p, const uint32_t *field_nodes,
                      struct eb_pattern_plan *plan);

/* Tests one leaf field of a pattern (from eb_pattern_plan.leaves) on its own
 * against f, as the pattern's evaluation would at that place. path[0..depth)
 * are the trie nodes from the event root down: the object fields above the
 * leaf, then the leaf's own node (depth >= 1). Returns 1 when it matches, 0
 * when not, -1 when an array stands at one of the object fields on the way:
 * then the leaf cannot be decided alone and the whole pattern must be
 * evaluated. Allocates nothing. */
int eb_pattern_test_leaf(const struct field *leaf, const uint32_t *path, size_t depth,
                         const eb_flat *f);

/* Returns a hash of condition c, equal for conditions that
 * eb_pattern_cond_same() finds the same. */
uint64_t eb_pattern_cond_hash(const struct cond *c);

/* Returns whether conditions a and b (of any patterns) hold for exactly the
 * same values. */
bool eb_pattern_cond_same(const struct cond *a, const struct cond *b);

/* Returns a hash of the conditions of the leaf field leaf, equal for leaves
 * that eb_pattern_leaf_same() finds the same. */
uint64_t eb_pattern_leaf_hash(const struct field *leaf);

/* Returns whether the leaf fields a and b (of any patterns) have the same
 * conditions, so that a value satisfies one exactly when it satisfies the
 * other. Their names are not compared. */
bool eb_pattern_leaf_same(const struct field *a, const struct field *b);

/* Returns a hash of p's compiled tree, equal for patterns that
 * eb_pattern_same() finds the same. */
uint64_t eb_pattern_hash(const eb_pattern *p);

/* Returns whether p and q are the same pattern up to how they were written:
 * the same fields, in the same order, with the same conditions. Such
 * patterns match exactly the same events and give the same field paths. */
bool eb_pattern_same(const eb_pattern *p, const eb_pattern *q);

#endif
