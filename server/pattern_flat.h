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

/* Whether the anchor index decides p exactly (docs/decisions/0009): no
 * $or, every leaf field's conditions are exact values, equals-ignore-case,
 * prefix, suffix, numeric or a wildcard without '*'. Then p matches an event
 * if and only if every leaf field is hit in the index, provided the fields
 * of each nested object with several fields come from one object: the event
 * has no array at any of those objects' paths, or on the way to them. Those
 * trie nodes are returned in *guards (a new array, free() it; *nguards of
 * them); *nleaves is the number of leaf fields, which the caller compares
 * with the number of anchor groups. field_nodes is from eb_pattern_paths(). */
bool eb_pattern_exact(const eb_pattern *p, const uint32_t *field_nodes, uint32_t **guards,
                      size_t *nguards, unsigned *nleaves);

/* For a pattern p that eb_pattern_exact() accepts: checks only its leaf
 * fields whose bits are set in leaves (leaf i is the i-th leaf field in the
 * pattern's order, which is also its anchor group) against f. Returns 1 when
 * they all match, 0 when one does not, -1 when an array on the way to one
 * of them means the whole pattern must be evaluated. */
int eb_pattern_check_leaves(const eb_pattern *p, const uint32_t *field_nodes, const eb_flat *f,
                            uint32_t leaves);

#endif
