/* Reading a stored event (CloudEvent protobuf bytes) straight into the
 * flattener, without protobuf-c's unpack and its allocation per field.
 *
 * Only the plain encoding that a protobuf encoder writes (cebusd stores
 * events it encoded itself, docs/decisions/0003) is read here: each field at
 * most once, at most one member of each oneof, known fields with their
 * declared wire type. Anything else (including malformed bytes) is
 * EB_FLAT_UNUSUAL and left to protobuf-c, whose merge and last-one-wins rules
 * then apply. Within that subset the result is what protobuf-c would decode:
 * strings end at their first NUL byte (protobuf-c gives C strings), absent
 * strings are "", unknown fields are skipped.
 */
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "flatten.h"
#include "flatten_internal.h"

enum { WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2, WIRE_I32 = 5 };

struct rd {
    const uint8_t *p, *end;
};

/* Reads a varint; false when it is malformed or longer than 10 bytes, or
 * its 10th byte carries more than bit 63 (protobuf-c would read bits this
 * reader drops). */
static inline bool rd_varint(struct rd *r, uint64_t *v)
{
    uint64_t x = 0;

    /* Tags and the lengths of short fields: one byte. */
    if (r->p < r->end && *r->p < 0x80) {
        *v = *r->p++;
        return true;
    }
    for (int i = 0; i < 10; i++) {
        uint8_t b;

        if (r->p >= r->end)
            return false;
        b = *r->p++;
        if (i == 9 && b > 1)
            return false;
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

/* Reads a tag; false at the end or when malformed. */
static inline bool rd_tag(struct rd *r, uint32_t *field, int *wire)
{
    uint64_t t;

    if (!rd_varint(r, &t) || t >> 3 == 0 || t >> 3 > 0x1fffffff)
        return false;
    *field = (uint32_t)(t >> 3);
    *wire = (int)(t & 7);
    return true;
}

static inline bool rd_len(struct rd *r, const uint8_t **data, size_t *len)
{
    uint64_t n;

    if (!rd_varint(r, &n) || n > (uint64_t)(r->end - r->p))
        return false;
    *data = r->p;
    *len = (size_t)n;
    r->p += n;
    return true;
}

/* Skips one field of an unknown number; groups are refused. */
static bool rd_skip(struct rd *r, int wire)
{
    uint64_t v;
    const uint8_t *d;
    size_t n;

    switch (wire) {
    case WIRE_VARINT:
        return rd_varint(r, &v);
    case WIRE_I64:
        if (r->end - r->p < 8)
            return false;
        r->p += 8;
        return true;
    case WIRE_I32:
        if (r->end - r->p < 4)
            return false;
        r->p += 4;
        return true;
    case WIRE_LEN:
        return rd_len(r, &d, &n);
    default:
        return false;
    }
}

/* A string field d[0..n) as protobuf-c's C string shows it: up to the
 * first NUL. limit is the end of the stored bytes, which d[0..n) lies in.
 * Most strings of an event are short, so their first 64 bytes are looked at
 * 16 at a time with SSE2 while 16 bytes remain before limit (bytes past n
 * may be read, not used); the rest, such as the data, by memchr. */
static size_t cstr_len(const uint8_t *d, size_t n, const uint8_t *limit)
{
    const uint8_t *z;
    size_t i = 0;

#ifdef __SSE2__
    for (; i < n && i < 64 && limit - (d + i) >= 16; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(d + i));
        unsigned bits = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_setzero_si128()));

        if (bits != 0) {
            size_t at = i + (unsigned)__builtin_ctz(bits);
            return at < n ? at : n;
        }
    }
    if (i >= n)
        return n;
#else
    (void)limit;
#endif
    z = memchr(d + i, 0, n - i);
    return z != NULL ? (size_t)(z - d) : n;
}

/* Reads a google.protobuf.Timestamp message. */
static bool rd_timestamp(const uint8_t *d, size_t n, int64_t *secs, int32_t *nanos)
{
    struct rd r = { d, d + n };
    unsigned seen = 0;

    *secs = 0;
    *nanos = 0;
    while (r.p < r.end) {
        uint32_t field;
        int wire;
        uint64_t v;

        if (!rd_tag(&r, &field, &wire))
            return false;
        if (field == 1 || field == 2) {
            if (wire != WIRE_VARINT || (seen & 1u << field) || !rd_varint(&r, &v))
                return false;
            seen |= 1u << field;
            if (field == 1)
                *secs = (int64_t)v;
            else
                *nanos = (int32_t)(uint32_t)v;
        } else if (!rd_skip(&r, wire)) {
            return false;
        }
    }
    return true;
}

/* Reads a CloudEventAttributeValue message into a; limit: see cstr_len(). */
static bool rd_attr_value(const uint8_t *d, size_t n, const uint8_t *limit, struct eb_wattr *a)
{
    struct rd r = { d, d + n };

    a->kind = EB_WATTR_NONE;
    while (r.p < r.end) {
        uint32_t field;
        int wire;
        uint64_t v;
        const uint8_t *s;
        size_t len;

        if (!rd_tag(&r, &field, &wire))
            return false;
        if (field < 1 || field > 7) {
            if (!rd_skip(&r, wire))
                return false;
            continue;
        }
        if (a->kind != EB_WATTR_NONE)
            return false; /* a second oneof member: protobuf-c's rules */
        switch (field) {
        case 1: /* ce_boolean */
        case 2: /* ce_integer */
            if (wire != WIRE_VARINT || !rd_varint(&r, &v))
                return false;
            if (field == 1) {
                a->kind = EB_WATTR_BOOL;
                a->b = v != 0;
            } else {
                a->kind = EB_WATTR_INT;
                a->i = (int32_t)(uint32_t)v;
            }
            break;
        case 7: /* ce_timestamp */
            if (wire != WIRE_LEN || !rd_len(&r, &s, &len) ||
                !rd_timestamp(s, len, &a->secs, &a->nanos))
                return false;
            a->kind = EB_WATTR_TIME;
            break;
        default: /* 3 ce_string, 4 ce_bytes, 5 ce_uri, 6 ce_uri_ref */
            if (wire != WIRE_LEN || !rd_len(&r, &s, &len))
                return false;
            a->kind = field == 4 ? EB_WATTR_BYTES : EB_WATTR_TEXT;
            a->s = (const char *)s;
            a->len = field == 4 ? len : cstr_len(s, len, limit);
            break;
        }
    }
    return true;
}

/* Reads one entry of the attributes map. *listed is false when the entry
 * has no value (ce_to_json() skips it); limit: see cstr_len(). */
static bool rd_attr_entry(const uint8_t *d, size_t n, const uint8_t *limit, struct eb_wattr *a,
                          bool *listed)
{
    struct rd r = { d, d + n };
    bool have_key = false, have_value = false;

    *a = (struct eb_wattr){ .key = "", .keylen = 0 };
    while (r.p < r.end) {
        uint32_t field;
        int wire;
        const uint8_t *s;
        size_t len;

        if (!rd_tag(&r, &field, &wire))
            return false;
        if (field == 1 || field == 2) {
            if (wire != WIRE_LEN || (field == 1 ? have_key : have_value) ||
                !rd_len(&r, &s, &len))
                return false;
            if (field == 1) {
                have_key = true;
                a->key = (const char *)s;
                a->keylen = cstr_len(s, len, limit);
            } else {
                have_value = true;
                if (!rd_attr_value(s, len, limit, a))
                    return false;
            }
        } else if (!rd_skip(&r, wire)) {
            return false;
        }
    }
    *listed = have_value;
    return true;
}

/* Reads a google.protobuf.Any's value bytes. */
static bool rd_any_value(const uint8_t *d, size_t n, const uint8_t **value, size_t *vlen)
{
    struct rd r = { d, d + n };
    unsigned seen = 0;

    *value = (const uint8_t *)"";
    *vlen = 0;
    while (r.p < r.end) {
        uint32_t field;
        int wire;
        const uint8_t *s;
        size_t len;

        if (!rd_tag(&r, &field, &wire))
            return false;
        if (field == 1 || field == 2) {
            if (wire != WIRE_LEN || (seen & 1u << field) || !rd_len(&r, &s, &len))
                return false;
            seen |= 1u << field;
            if (field == 2) {
                *value = s;
                *vlen = len;
            }
        } else if (!rd_skip(&r, wire)) {
            return false;
        }
    }
    return true;
}

/* eb_flatten_stored(), with the data left out unless with_data. */
static enum eb_flat_status flatten_stored(eb_flat *f, const eb_ftrie *t, const uint8_t *body,
                                          size_t len, bool with_data)
{
    struct rd r = { body, body + len };
    struct eb_wevent w = { .fixed = { "", "", "", "" } };
    size_t nattrs = 0;
    unsigned seen = 0;

    while (r.p < r.end) {
        uint32_t field;
        int wire;
        const uint8_t *s;
        size_t n;

        if (!rd_tag(&r, &field, &wire))
            return EB_FLAT_UNUSUAL;
        if (field < 1 || field > 8) {
            if (!rd_skip(&r, wire))
                return EB_FLAT_UNUSUAL;
            continue;
        }
        if (wire != WIRE_LEN || !rd_len(&r, &s, &n))
            return EB_FLAT_UNUSUAL;
        if (field == 5) {
            struct eb_wattr *attrs =
                nattrs < f->capattrs ? f->attrs : eb_flat_attrs(f, nattrs + 1);
            bool listed;

            if (!rd_attr_entry(s, n, r.end, &attrs[nattrs], &listed))
                return EB_FLAT_UNUSUAL;
            nattrs += listed;
            continue;
        }
        /* Singular fields, and the data oneof (6, 7, 8), at most once. */
        if ((seen & 1u << field) || (field >= 6 && w.data != EB_WDATA_NONE))
            return EB_FLAT_UNUSUAL;
        seen |= 1u << field;
        switch (field) {
        case 1: /* id */
        case 2: /* source */
        case 3: /* spec_version */
        case 4: { /* type */
            static const int slot[] = { 0, 1, 2, 0, 3 }; /* field -> fixed[] */
            int i = slot[field];

            w.fixed[i] = (const char *)s;
            w.fixedlen[i] = cstr_len(s, n, r.end);
            break;
        }
        case 6:
            w.data = EB_WDATA_BINARY;
            w.d = (const char *)s;
            w.dlen = n;
            break;
        case 7: /* cut at its first NUL below, when it is read at all */
            w.data = EB_WDATA_TEXT;
            w.d = (const char *)s;
            w.dlen = n;
            break;
        default: { /* 8: proto_data */
            const uint8_t *v;

            if (!rd_any_value(s, n, &v, &w.dlen))
                return EB_FLAT_UNUSUAL;
            w.data = EB_WDATA_PROTO;
            w.d = (const char *)v;
            break;
        }
        }
    }
    w.attrs = f->attrs;
    w.nattrs = nattrs;
    if (!with_data)
        w.data = EB_WDATA_NONE;
    else if (w.data == EB_WDATA_TEXT)
        w.dlen = cstr_len((const uint8_t *)w.d, w.dlen, body + len);
    eb_flatten_wevent(f, t, &w);
    return EB_FLAT_OK;
}

enum eb_flat_status eb_flatten_stored(eb_flat *f, const eb_ftrie *t, const uint8_t *body,
                                      size_t len)
{
    return flatten_stored(f, t, body, len, true);
}

enum eb_flat_status eb_flatten_stored_attrs(eb_flat *f, const eb_ftrie *t, const uint8_t *body,
                                            size_t len)
{
    return flatten_stored(f, t, body, len, false);
}
