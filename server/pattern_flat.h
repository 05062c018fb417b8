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

/* How the anchor index can decide p without evaluating it in full
 * (docs/decisions/0012), for p without $or and with at most 32 leaf fields.
 * Leaves are numbered in the pattern's order. An anchor group hit decides its
 * leaf exactly when the leaf's conditions are exact values,
 * equals-ignore-case, prefix, suffix, numeric or a wildcard without '*';
 * the other leaves (set in *check) must be checked one by one with
 * eb_pattern_check_leaves(). All this holds provided the fields of each
 * nested object with several fields come from one object: the event has no
 * array at any of those objects' paths or on the way to them. Those trie
 * nodes are returned in *guards (a new array, free() it; *nguards of them).
 * leaf_of_group[g] is the leaf of anchor group g, for the *ngroups groups
 * that eb_pattern_anchors() reports. field_nodes is from eb_pattern_paths().
 * Returns false when p does not qualify (nothing written). */
struct eb_pattern_plan {
    uint32_t *guards;
    size_t nguards;
    uint32_t check;
    uint8_t leaf_of_group[32];
    unsigned ngroups;
};
bool eb_pattern_exact(const eb_pattern *p, const uint32_t *field_nodes,
                      struct eb_pattern_plan *plan);

/* For a pattern p that eb_pattern_exact() accepts: checks only its leaf
 * fields whose bits are set in leaves (leaf i is the i-th leaf field in the
 * pattern's order, which is also its anchor group) against f. Returns 1 when
 * they all match, 0 when one does not, -1 when an array on the way to one
 * of them means the whole pattern must be evaluated. */
int eb_pattern_check_leaves(const eb_pattern *p, const uint32_t *field_nodes, const eb_flat *f,
                            uint32_t leaves);

#endif
