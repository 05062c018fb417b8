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

#endif
