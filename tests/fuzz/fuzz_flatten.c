/* libFuzzer driver for the flattened matching path (flatten.c,
 * pattern_flat.c): every line of the input but the last is a pattern (up to
 * 64; lines that do not compile are skipped), the last line is the data of a
 * CloudEvent. The first byte of that line picks how the data is carried
 * (text or binary, JSON content type or none or text/plain). The matcher on
 * the flattened event (eb_matcher_match_event) must return exactly the ids of
 * the patterns that eb_pattern_match() accepts on ce_to_json() of the same
 * event, from the decoded event and from its stored protobuf bytes. The same
 * bytes are also matched as a whole JSON view (eb_matcher_match_view), which
 * must refuse exactly what json_loadb() refuses and otherwise agree with
 * eb_pattern_match() on jansson's parse. Any difference, crash, leak or
 * sanitizer report is a bug. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cejson.h"
#include "pattern.h"

#define MAX_PATTERNS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *dup_text(const char *s)
{
    char *p = strdup(s);

    if (p == NULL)
        abort();
    return p;
}

/* Returns a new event carrying body[0..len) as mode says. */
static Io__Cloudevents__V1__CloudEvent *make_event(unsigned mode, const char *body, size_t len)
{
    Io__Cloudevents__V1__CloudEvent *ev = calloc(1, sizeof *ev);
    static const char *const cts[] = { NULL, "application/json", "text/plain",
                                       "application/x+json;v=1" };
    const char *ct = cts[mode >> 1 & 3];

    if (ev == NULL)
        abort();
    io__cloudevents__v1__cloud_event__init(ev);
    ev->id = dup_text("1");
    ev->source = dup_text("/s");
    ev->spec_version = dup_text("1.0");
    ev->type = dup_text("t");
    if (ct != NULL) {
        Io__Cloudevents__V1__CloudEvent__AttributesEntry *e = calloc(1, sizeof *e);
        Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue *v = calloc(1, sizeof *v);

        if (e == NULL || v == NULL)
            abort();
        io__cloudevents__v1__cloud_event__attributes_entry__init(e);
        io__cloudevents__v1__cloud_event__cloud_event_attribute_value__init(v);
        e->key = dup_text("datacontenttype");
        v->attr_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_STRING;
        v->ce_string = dup_text(ct);
        e->value = v;
        ev->attributes = malloc(sizeof *ev->attributes);
        if (ev->attributes == NULL)
            abort();
        ev->attributes[0] = e;
        ev->n_attributes = 1;
    }
    if (mode & 1) {
        ev->data_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_BINARY_DATA;
        ev->binary_data.data = malloc(len ? len : 1);
        if (ev->binary_data.data == NULL)
            abort();
        memcpy(ev->binary_data.data, body, len);
        ev->binary_data.len = len;
    } else {
        ev->data_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_TEXT_DATA;
        ev->text_data = malloc(len + 1);
        if (ev->text_data == NULL)
            abort();
        memcpy(ev->text_data, body, len);
        ev->text_data[len] = '\0';
    }
    return ev;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data, *end = text + size, *last;
    eb_pattern *pats[MAX_PATTERNS];
    size_t npat = 0, n;
    eb_matcher *m;
    eb_matcher_scratch *sc;
    Io__Cloudevents__V1__CloudEvent *ev;
    json_t *view;
    const uint32_t *ids;
    bool got[MAX_PATTERNS] = { false };
    unsigned mode = 0;

    last = text;
    for (const char *p = text; p < end; p++)
        if (*p == '\n')
            last = p + 1;
    for (const char *line = text; line < last && npat < MAX_PATTERNS;) {
        const char *nl = memchr(line, '\n', (size_t)(last - line));
        char err[256];

        if (eb_pattern_compile(line, (size_t)(nl - line), &pats[npat], err, sizeof err) == EB_OK)
            npat++;
        line = nl + 1;
    }
    if (last < end) {
        mode = (unsigned char)*last;
        last++;
    }
    ev = make_event(mode, last, (size_t)(end - last));
    view = ce_to_json(ev);
    m = eb_matcher_new();
    for (size_t i = 0; i < npat; i++)
        eb_matcher_add(m, pats[i], (uint32_t)i);
    eb_matcher_build(m);
    sc = eb_matcher_scratch_new(m);
    /* Decoded, stored bytes, and the decoded event again (reused buffers). */
    for (int round = 0; round < 3; round++) {
        memset(got, 0, sizeof got);
        if (round == 1) {
            size_t blen = io__cloudevents__v1__cloud_event__get_packed_size(ev);
            uint8_t *body = malloc(blen ? blen : 1);

            if (body == NULL)
                abort();
            io__cloudevents__v1__cloud_event__pack(ev, body);
            if (!eb_matcher_match_stored(m, body, blen, sc, &ids, &n))
                __builtin_trap(); /* bytes protobuf-c packed must decode */
            free(body);
        } else {
            n = eb_matcher_match_event(m, ev, sc, &ids);
        }
        for (size_t k = 0; k < n; k++) {
            if (ids[k] >= npat || got[ids[k]])
                __builtin_trap(); /* an unknown id, or one reported twice */
            got[ids[k]] = true;
        }
        for (size_t i = 0; i < npat; i++)
            if (eb_pattern_match(pats[i], view) != got[i])
                __builtin_trap(); /* the flattened path disagrees with jansson's */
    }
    json_decref(view);
    /* The data line as a whole event view. */
    view = json_loadb(last, (size_t)(end - last), JSON_DECODE_ANY, NULL);
    if (eb_matcher_match_view(m, last, (size_t)(end - last), sc, &ids, &n) != (view != NULL))
        __builtin_trap(); /* the scanner and jansson disagree on validity */
    if (view != NULL) {
        memset(got, 0, sizeof got);
        for (size_t k = 0; k < n; k++) {
            if (ids[k] >= npat || got[ids[k]])
                __builtin_trap();
            got[ids[k]] = true;
        }
        for (size_t i = 0; i < npat; i++)
            if (eb_pattern_match(pats[i], view) != got[i])
                __builtin_trap();
        json_decref(view);
    }
    io__cloudevents__v1__cloud_event__free_unpacked(ev, NULL);
    eb_matcher_scratch_free(sc);
    eb_matcher_free(m);
    for (size_t i = 0; i < npat; i++)
        eb_pattern_free(pats[i]);
    return 0;
}
