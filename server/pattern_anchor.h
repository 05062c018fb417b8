/* Internal to pattern.c and matcher.c: the anchors of a compiled pattern,
 * which the multi-pattern matcher (eb_matcher, pattern.h) indexes.
 *
 * An anchor set of a pattern is a set of (field path, condition) pairs such
 * that every event the pattern matches has, at one of those paths, a value
 * satisfying that pair's condition. The matcher only evaluates a pattern in
 * full when one of its anchors is hit, so an anchor set must never miss a
 * match; it may over-approximate (the full match removes false hits).
 * See docs/decisions/0007-matcher-index.md.
 */
#ifndef EB_PATTERN_ANCHOR_H
#define EB_PATTERN_ANCHOR_H

#include <stdbool.h>
#include <stddef.h>

#include "pattern.h"

enum eb_anchor_kind {
    EB_ANCHOR_STRING,    /* exact string s[0..len) */
    EB_ANCHOR_NUMBER,    /* exact number num, by value */
    EB_ANCHOR_TRUE,
    EB_ANCHOR_FALSE,
    EB_ANCHOR_NULL,
    EB_ANCHOR_CI,        /* equals s, ASCII case folded */
    EB_ANCHOR_PREFIX,    /* starts with s */
    EB_ANCHOR_PREFIX_CI, /* starts with s, ASCII case folded */
    EB_ANCHOR_SUFFIX,    /* ends with s */
    EB_ANCHOR_SUFFIX_CI, /* ends with s, ASCII case folded */
    EB_ANCHOR_RANGE,     /* a number between lo and hi (bounds may be infinite) */
    EB_ANCHOR_EXISTS,    /* any leaf value ("exists": true) */
};
#define EB_ANCHOR_KINDS 12

struct cond;

struct eb_anchor_seg {
    const char *s; /* not NUL-terminated in general */
    size_t len;
};

/* A pattern's anchors come in groups: each group is an anchor set (the
 * pattern needs one anchor of it hit), and the pattern needs every one of
 * its groups hit. */
#define EB_ANCHOR_MAX_GROUPS 32

/* One anchor. Every pointer is borrowed from the pattern (valid while it
 * lives), except path, which is valid only during the callback. */
struct eb_anchor {
    const struct eb_anchor_seg *path; /* field names from the event root */
    size_t depth;                     /* number of names in path, >= 1 */
    enum eb_anchor_kind kind;
    const char *s;
    size_t len;
    double num; /* EB_ANCHOR_NUMBER */
    double lo, hi; /* EB_ANCHOR_RANGE */
    bool lo_open, hi_open; /* EB_ANCHOR_RANGE: > and < instead of >= and <= */
    /* When not NULL, a hit is not enough: the value that hits must also
     * satisfy this condition, with eb_pattern_cond_match(): a wildcard with
     * '*' (anchored by its prefix, its suffix or, for "*x*", any value),
     * an anything-but or a cidr (anchored by any value). */
    const struct cond *verify;
    unsigned group; /* 0 .. groups - 1 */
};

typedef void eb_anchor_fn(const struct eb_anchor *a, void *arg);

/* Calls fn once per anchor of p, in groups: one group per required field
 * that can be indexed (at most EB_ANCHOR_MAX_GROUPS), an $or being one group
 * made of the cheapest anchor set of each alternative (by a static
 * estimate). Returns the number of groups; 0, without calling fn, when p
 * has none: it matches an event with none of its fields present (e.g. "{}" or
 * only "exists": false), or it relies only on operators that are not
 * indexed (anything-but, cidr, "exists": false, wildcards without a literal head or
 * tail). */
unsigned eb_pattern_anchors(const eb_pattern *p, eb_anchor_fn *fn, void *arg);

#endif
