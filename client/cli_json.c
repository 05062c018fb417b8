/* The CLI's JSON output of protobuf-c messages, driven by their
 * descriptors so that a new field in the API shows up without a change
 * here.
 *
 * Field names are the .proto names (snake_case) and every field is printed,
 * defaults included: a script should not have to know proto3's rule that a
 * false "enabled" is left out.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "cejson.h"
#include "google/protobuf/timestamp.pb-c.h"

static json_t *must(json_t *j)
{
    if (!j)
        abort();
    return j;
}

static json_t *string_json(const char *s)
{
    /* protobuf-c does not check UTF-8; jansson does. Show the field rather
     * than lose the whole object over one bad string. */
    json_t *j = json_string(s ? s : "");
    return j ? j : must(json_string("\xef\xbf\xbd"));
}

static json_t *timestamp_json(const Google__Protobuf__Timestamp *ts)
{
    char buf[48];

    if (ce_format_rfc3339(ts->seconds, ts->nanos, buf, sizeof(buf)) != 0)
        return must(json_null());
    return must(json_string(buf));
}

/* Returns the JSON form of the single value of field f stored at p. */
static json_t *value_json(const ProtobufCFieldDescriptor *f, const void *p)
{
    const ProtobufCEnumValue *ev;
    const ProtobufCBinaryData *bd;
    char *b64;
    json_t *j;

    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return must(json_integer(*(const int32_t *)p));
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return must(json_integer(*(const uint32_t *)p));
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return must(json_integer(*(const int64_t *)p));
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        /* Sequences stay far below 2^63; jansson integers are signed. */
        return must(json_integer((json_int_t) * (const uint64_t *)p));
    case PROTOBUF_C_TYPE_FLOAT:
        return must(json_real(*(const float *)p));
    case PROTOBUF_C_TYPE_DOUBLE:
        return must(json_real(*(const double *)p));
    case PROTOBUF_C_TYPE_BOOL:
        return must(json_boolean(*(const protobuf_c_boolean *)p));
    case PROTOBUF_C_TYPE_ENUM:
        ev = protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int *)p);
        return ev ? must(json_string(ev->name)) : must(json_integer(*(const int *)p));
    case PROTOBUF_C_TYPE_STRING:
        return string_json(*(char *const *)p);
    case PROTOBUF_C_TYPE_BYTES:
        bd = p;
        b64 = ce_base64_encode(bd->data, bd->len);
        j = must(json_string(b64));
        free(b64);
        return j;
    case PROTOBUF_C_TYPE_MESSAGE:
        if (!*(ProtobufCMessage *const *)p)
            return must(json_null());
        return cli_message_to_json(*(ProtobufCMessage *const *)p);
    }
    return must(json_null());
}

/* Size of one element of a repeated field of type t. */
static size_t element_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return sizeof(uint64_t);
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    default:
        return sizeof(uint32_t);
    }
}

json_t *cli_message_to_json(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    json_t *obj;

    if (d == &google__protobuf__timestamp__descriptor)
        return timestamp_json((const Google__Protobuf__Timestamp *)m);
    if (d == &io__cloudevents__v1__cloud_event__descriptor)
        return ce_to_json((const Io__Cloudevents__V1__CloudEvent *)m);
    obj = must(json_object());
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const void *member = base + f->offset;
        json_t *v;

        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(const uint32_t *)(base + f->quantifier_offset) != f->id)
                continue;
        }
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            const char *elems = *(const char *const *)member;

            v = must(json_array());
            for (size_t k = 0; k < n; k++)
                json_array_append_new(v, value_json(f, elems + k * element_size(f->type)));
        } else {
            v = value_json(f, member);
        }
        json_object_set_new(obj, f->name, v);
    }
    return obj;
}
