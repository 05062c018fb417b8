/* The benchmark CloudEvent: a fixed-size event whose fields live in one
 * struct, so that building a request in the timed loop allocates nothing. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define ATTR_CASE(x) IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_##x

static void set_string_attr(struct bench_event *e, size_t i, const char *key, char *value)
{
    io__cloudevents__v1__cloud_event__attributes_entry__init(&e->entries[i]);
    io__cloudevents__v1__cloud_event__cloud_event_attribute_value__init(&e->values[i]);
    e->values[i].attr_case = ATTR_CASE(CE_STRING);
    e->values[i].ce_string = value;
    e->entries[i].key = (char *)key;
    e->entries[i].value = &e->values[i];
    e->attrs[i] = &e->entries[i];
}

/* Writes {"pad":"xxx..."} with pad characters into e->data (reallocated). */
static void set_padding(struct bench_event *e, size_t pad)
{
    static const char head[] = "{\"pad\":\"", tail[] = "\"}";
    size_t len = sizeof head - 1 + pad + sizeof tail - 1;
    char *d = realloc(e->data, len + 1);

    if (!d)
        abort(); /* out of memory: see STYLE.md */
    memcpy(d, head, sizeof head - 1);
    memset(d + sizeof head - 1, 'x', pad);
    memcpy(d + sizeof head - 1 + pad, tail, sizeof tail);
    e->data = d;
    e->ev.text_data = d;
}

void bench_event_init(struct bench_event *e, unsigned thread, size_t bytes, bool stamped,
                      const char *run)
{
    size_t n = 0, pad = 0;

    memset(e, 0, sizeof *e);
    io__cloudevents__v1__cloud_event__init(&e->ev);
    snprintf(e->source, sizeof e->source, "/cebus-bench/publisher/%u", thread);
    snprintf(e->run, sizeof e->run, "%.16s", run ? run : "");
    bench_event_set_id(e, thread, 0);
    e->ev.source = e->source;
    e->ev.spec_version = "1.0";
    e->ev.type = "io.cebus.bench.event";
    set_string_attr(e, n++, "datacontenttype", "application/json");
    if (stamped) {
        set_string_attr(e, n++, BENCH_ATTR_RUN, e->run);
        /* Widest value, so that the size computed below holds for any stamp. */
        snprintf(e->sendns, sizeof e->sendns, "%019" PRId64, (int64_t)0);
        set_string_attr(e, n++, BENCH_ATTR_SENDNS, e->sendns);
    }
    e->ev.attributes = e->attrs;
    e->ev.n_attributes = n;
    e->ev.data_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_TEXT_DATA;
    /* Grow the padding until the encoding reaches the requested size; the
     * length prefix of text_data may grow by a byte on the way, so a few
     * rounds settle it (bounded: the size only grows). */
    set_padding(e, 0);
    for (int round = 0; round < 4; round++) {
        size_t size = bench_event_size(e);
        if (size >= bytes)
            break;
        pad += bytes - size;
        set_padding(e, pad);
    }
}

void bench_event_set_id(struct bench_event *e, unsigned thread, uint64_t n)
{
    /* Unique per run: cebusd drops a (source, id) it has seen within the
     * bus's dedup window, so ids repeated by an earlier run would not be
     * stored (nor delivered). Fixed width, so that the encoded size does not
     * drift as n grows. */
    snprintf(e->id, sizeof e->id, "%.16s-%04u-%016" PRIx64, e->run, thread, n);
    e->ev.id = e->id;
}

void bench_event_stamp(struct bench_event *e, int64_t t_ns)
{
    snprintf(e->sendns, sizeof e->sendns, "%019" PRId64, t_ns);
}

size_t bench_event_size(const struct bench_event *e)
{
    return protobuf_c_message_get_packed_size(&e->ev.base);
}

void bench_event_free(struct bench_event *e)
{
    free(e->data);
    e->data = NULL;
}

const char *bench_event_attr(const Io__Cloudevents__V1__CloudEvent *ev, const char *name)
{
    for (size_t i = 0; i < ev->n_attributes; i++) {
        const BenchAttrEntry *a = ev->attributes[i];
        if (a->key && strcmp(a->key, name) == 0 && a->value &&
            a->value->attr_case == ATTR_CASE(CE_STRING))
            return a->value->ce_string;
    }
    return NULL;
}
