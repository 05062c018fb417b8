/* Internal to flatten.c and flatten_wire.c: an event as the flattener reads
 * it, whether it comes from a decoded CloudEvent or straight from its stored
 * protobuf bytes. Every pointer is borrowed from that source.
 */
#ifndef EB_FLATTEN_INTERNAL_H
#define EB_FLATTEN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flatten.h"

enum eb_wattr_kind {
    EB_WATTR_NONE, /* unset: ce_to_json() leaves it out */
    EB_WATTR_BOOL,
    EB_WATTR_INT,
    EB_WATTR_TEXT,  /* ce_string, ce_uri, ce_uri_ref: s[0..len), s NULL for none */
    EB_WATTR_BYTES, /* s[0..len) */
    EB_WATTR_TIME,
};

/* One attribute of the map; entries without key or value are not listed. */
struct eb_wattr {
    const char *key; /* key[0..keylen), as the C string protobuf-c makes */
    size_t keylen;
    enum eb_wattr_kind kind;
    bool b;
    int32_t i;
    const char *s;
    size_t len;
    int64_t secs;
    int32_t nanos;
};

enum eb_wdata { EB_WDATA_NONE, EB_WDATA_TEXT, EB_WDATA_BINARY, EB_WDATA_PROTO };

struct eb_wevent {
    const char *fixed[4]; /* specversion, id, source, type; NULL shows as "" */
    size_t fixedlen[4];
    const struct eb_wattr *attrs;
    size_t nattrs;
    enum eb_wdata data;
    const char *d; /* TEXT: the text up to its first NUL; BINARY; PROTO: the Any's value */
    size_t dlen;
};

/* Flattens w along t into f, replacing f's content (see eb_flatten_event). */
void eb_flatten_wevent(eb_flat *f, const eb_ftrie *t, const struct eb_wevent *w);

/* Grows f's attribute array to hold at least n; returns it. */
struct eb_wattr *eb_flat_attrs(eb_flat *f, size_t n);

#endif
