/* The flattened event: the parts of a CloudEvent that some pattern looks at,
 * read once per event without building a JSON document.
 *
 * A path trie (eb_ftrie) holds every field path the patterns of a matcher
 * use ("type", "data", "data.customer", "data.customer.tier", ...).
 * eb_flatten_event() reads the attributes straight from the decoded
 * CloudEvent and scans the data bytes once with an allocation-free JSON
 * scanner that descends only into object members named in the trie and
 * validates the rest without keeping it. The result (eb_flat) is a small tree
 * of the kept values in reusable per-thread arrays. It is exactly the part of
 * the CloudEvents JSON view of common/cejson.h (ce_to_json) that lies on the
 * trie's paths: the same members, values, duplicate-key resolution (the last
 * one wins), and the same rules for data that is not JSON or does not parse
 * as JSON (then "data" is a string, or "data_base64" holds the bytes; see
 * ce_to_json). See docs/decisions/0012-flattened-matching.md.
 *
 * Pure: no I/O, no globals.
 */
#ifndef EB_FLATTEN_H
#define EB_FLATTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloudevents.pb-c.h"

/* ---- Path trie ------------------------------------------------------------ */

typedef struct eb_ftrie eb_ftrie;

#define EB_FTRIE_ROOT 0u          /* the event object itself */
#define EB_FTRIE_NONE UINT32_MAX  /* no such node */

/* Returns a new trie holding only the root; free with eb_ftrie_free(). */
eb_ftrie *eb_ftrie_new(void);

/* Returns the child of parent named name[0..len), adding it when absent.
 * name is borrowed and must outlive t (patterns' names live as long as the
 * patterns). Node ids are dense: 0 .. eb_ftrie_size() - 1. */
uint32_t eb_ftrie_add(eb_ftrie *t, uint32_t parent, const char *name, size_t len);

/* Returns the child of parent named name[0..len), or EB_FTRIE_NONE. */
uint32_t eb_ftrie_find(const eb_ftrie *t, uint32_t parent, const char *name, size_t len);

/* Returns the number of nodes, root included. */
size_t eb_ftrie_size(const eb_ftrie *t);

/* Returns node's name (not NUL-terminated) and writes its length. */
const char *eb_ftrie_name(const eb_ftrie *t, uint32_t node, size_t *len);

/* Returns node's parent; EB_FTRIE_NONE for the root. */
uint32_t eb_ftrie_parent(const eb_ftrie *t, uint32_t node);

/* Returns node's children: *n ids, borrowed until the next eb_ftrie_add(). */
const uint32_t *eb_ftrie_children(const eb_ftrie *t, uint32_t node, size_t *n);

/* Frees t. NULL is allowed. */
void eb_ftrie_free(eb_ftrie *t);

/* ---- Flattened event ------------------------------------------------------ */

struct eb_wattr;

enum eb_fkind {
    EB_FV_STRING,
    EB_FV_NUMBER,
    EB_FV_TRUE,
    EB_FV_FALSE,
    EB_FV_NULL,
    EB_FV_OBJECT, /* kids: its members on the trie, one per name */
    EB_FV_ARRAY,  /* kids: all its elements, in order */
};

/* One kept value. */
struct eb_fval {
    enum eb_fkind kind;
    uint32_t node;     /* the trie node of the member it is (or is inside) */
    size_t first, n;   /* OBJECT, ARRAY: kids[first .. first + n) */
    const char *s;     /* STRING: s[0..len), valid until the next flatten */
    size_t len;
    double num;        /* NUMBER */
};

/* Per-thread working memory and result of eb_flatten_event(). vals[0] is
 * the event object; kids holds indices into vals. Reused across events: it
 * only grows, so a steady stream of events allocates nothing. */
typedef struct eb_flat {
    const eb_ftrie *trie;
    struct eb_fval *vals;
    size_t nvals, capvals;
    uint32_t *kids;
    size_t nkids, capkids;
    /* Scanner state, private to flatten.c. */
    uint32_t *stack;
    size_t nstack, capstack;
    char *str;
    size_t nstr, capstr;
    uint32_t *stamp, *slot;
    size_t capnodes;
    uint32_t serial;
    char numbuf[64];
    struct eb_wattr *attrs; /* the event's attributes, read once */
    size_t capattrs;
    char *ctbuf;
    size_t capct;
} eb_flat;

/* Returns new, empty working memory; free with eb_flat_free(). */
eb_flat *eb_flat_new(void);

/* Frees f. NULL is allowed. */
void eb_flat_free(eb_flat *f);

/* Flattens ev (borrowed) along t (borrowed; both must stay unchanged while
 * the result is used) into f, replacing f's previous content. Never fails:
 * data that is not valid JSON is kept as ce_to_json() keeps it. */
void eb_flatten_event(eb_flat *f, const eb_ftrie *t, const Io__Cloudevents__V1__CloudEvent *ev);

/* Flattens the stored form of an event (the CloudEvent protobuf bytes
 * body[0..len), see docs/decisions/0003) along t into f, without decoding
 * it into a message: the same result as eb_flatten_event() on the message
 * io__cloudevents__v1__cloud_event__unpack() would return. Returns
 * EB_FLAT_OK; EB_FLAT_UNUSUAL, with f unspecified, when the bytes use wire
 * features this reader leaves to protobuf-c (a field or oneof member given
 * twice, groups, or anything malformed): then unpack and use
 * eb_flatten_event(). body is borrowed, like ev there. */
enum eb_flat_status { EB_FLAT_OK, EB_FLAT_UNUSUAL };
enum eb_flat_status eb_flatten_stored(eb_flat *f, const eb_ftrie *t, const uint8_t *body,
                                      size_t len);

/* Like eb_flatten_stored(), but as if the event had no data: "data" and
 * "data_base64" are absent and the data bytes are not read, let alone
 * scanned. For a first look at the attributes alone (eb_matcher decides
 * with it whether the data can matter). The status is the one
 * eb_flatten_stored() returns for the same bytes. */
enum eb_flat_status eb_flatten_stored_attrs(eb_flat *f, const eb_ftrie *t, const uint8_t *body,
                                            size_t len);

/* Scans the JSON text json[0..len) along t as if it were the whole event
 * (its top-level value is vals[0], under EB_FTRIE_ROOT). Returns false, with
 * f left empty, when the text is not a document json_loadb(...,
 * JSON_DECODE_ANY) accepts. For tests and tools. */
bool eb_flatten_json(eb_flat *f, const eb_ftrie *t, const char *json, size_t len);

#endif
