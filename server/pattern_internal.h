/* Internal to the pattern code (pattern.c, pattern_flat.c): the compiled
 * form of a pattern and the matching of one condition against one scalar
 * value, shared by the two event views a pattern can be matched against
 * (a jansson object, see pattern.h, and a flattened event, see flatten.h),
 * so that both have one definition of what a value satisfies.
 */
#ifndef EB_PATTERN_INTERNAL_H
#define EB_PATTERN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "flatten.h"
#include "pattern.h"

/* Arrays nested inside arrays in an event are flattened up to this depth;
 * deeper levels are ignored so that a hostile event cannot make the matcher
 * recurse without bound. */
#define ARRAY_FLATTEN_DEPTH 16

struct text {
    const char *s; /* not NUL-terminated in general */
    size_t len;
};

enum cond_kind {
    COND_STRING,    /* exact string */
    COND_NUMBER,    /* exact number, compared as double */
    COND_BOOL,      /* true or false */
    COND_NULL,      /* JSON null */
    COND_PREFIX,
    COND_SUFFIX,
    COND_EQUALS_CI, /* equals-ignore-case */
    COND_PREFIX_CI, /* prefix: {equals-ignore-case} */
    COND_SUFFIX_CI, /* suffix: {equals-ignore-case} */
    COND_WILDCARD,
    COND_CIDR,
    COND_NUMERIC,
    COND_EXISTS,
    COND_ANYTHING_BUT,
};

enum lower_op { LOWER_NONE, LOWER_GT, LOWER_GE };
enum upper_op { UPPER_NONE, UPPER_LT, UPPER_LE };

struct numeric {
    enum lower_op lop;
    enum upper_op uop;
    double lo;
    double hi;
    bool equals; /* written as "=", for explain() */
};

/* A wildcard "seg0*seg1*...*segN" is kept as its N+1 literal segments
 * (escapes already resolved), any of which may be empty. */
struct wildcard {
    struct text src; /* as written, for explain() */
    struct text *segs;
    size_t nsegs;
};

struct cidr {
    struct text src; /* as written, for explain() */
    int family;      /* AF_INET or AF_INET6 */
    unsigned bits;
    unsigned char addr[16]; /* host bits cleared */
};

struct cond {
    enum cond_kind kind;
    union {
        struct text str;
        double num;
        bool flag; /* COND_BOOL value, COND_EXISTS wanted presence */
        struct numeric range;
        struct wildcard wc;
        struct cidr net;
        struct {
            struct cond *conds; /* anything-but matches when none of these does */
            size_t n;
        } but;
    } u;
};

enum field_kind { FIELD_LEAF, FIELD_OBJECT, FIELD_OR };

struct node;

struct field {
    enum field_kind kind;
    struct text name; /* unused for FIELD_OR */
    struct cond *conds; /* FIELD_LEAF: OR of these */
    size_t nconds;
    struct node *nodes; /* FIELD_OBJECT: one node; FIELD_OR: the alternatives */
    size_t nnodes;
    unsigned index; /* 0 .. eb_pattern_field_count() - 1, in pre-order */
    unsigned leaves; /* leaf fields in this field's subtree, itself included */
};

/* One object level of a pattern: every field must match (AND). Fields keep
 * the pattern's order, so explain() reports failures predictably. */
struct node {
    struct field *fields;
    size_t nfields;
};

/* One scalar event value, whatever view it comes from. */
enum eb_scalar_kind { EB_SCALAR_STRING, EB_SCALAR_NUMBER, EB_SCALAR_TRUE, EB_SCALAR_FALSE,
                      EB_SCALAR_NULL };

struct eb_scalar {
    enum eb_scalar_kind kind;
    const char *s; /* EB_SCALAR_STRING: s[0..len), not NUL-terminated */
    size_t len;
    double num;    /* EB_SCALAR_NUMBER */
};

/* The scalar form of the jansson value v: EB_SCALAR_NULL for null, and
 * also for objects and arrays, which callers handle before. Inline: it runs
 * once per event leaf. */
static inline struct eb_scalar eb_scalar_of_json(const json_t *v)
{
    struct eb_scalar s = {.kind = EB_SCALAR_NULL};

    if (json_is_string(v)) {
        s.kind = EB_SCALAR_STRING;
        s.s = json_string_value(v);
        s.len = json_string_length(v);
    } else if (json_is_number(v)) {
        s.kind = EB_SCALAR_NUMBER;
        s.num = json_number_value(v);
    } else if (json_is_true(v)) {
        s.kind = EB_SCALAR_TRUE;
    } else if (json_is_false(v)) {
        s.kind = EB_SCALAR_FALSE;
    }
    return s;
}

/* The same for a value of a flattened event (flatten.h). */
static inline struct eb_scalar eb_scalar_of_flat(const struct eb_fval *v)
{
    struct eb_scalar s = {.kind = EB_SCALAR_NULL};

    switch (v->kind) {
    case EB_FV_STRING:
        s.kind = EB_SCALAR_STRING;
        s.s = v->s;
        s.len = v->len;
        break;
    case EB_FV_NUMBER:
        s.kind = EB_SCALAR_NUMBER;
        s.num = v->num;
        break;
    case EB_FV_TRUE:
        s.kind = EB_SCALAR_TRUE;
        break;
    case EB_FV_FALSE:
        s.kind = EB_SCALAR_FALSE;
        break;
    default:
        break;
    }
    return s;
}

/* Returns whether the scalar v satisfies c. Every condition but
 * anything-but is false for values of the wrong type; exists is not about
 * one value and is always false here (see the leaf matchers). */
bool eb_pattern_cond_match(const struct cond *c, const struct eb_scalar *v);

/* The compiled tree of p. Borrowed; valid while p lives. */
const struct node *eb_pattern_root(const eb_pattern *p);

/* Whether the leaf field f is an anchor group of its pattern when it is
 * among its first EB_ANCHOR_MAX_GROUPS indexable fields (pattern_anchor.h). */
bool eb_pattern_leaf_indexed(const struct field *f);

/* The number of fields of p (every struct field, $or ones included), so
 * that per-field data can live in an array indexed by field->index. */
unsigned eb_pattern_field_count(const eb_pattern *p);

#endif
