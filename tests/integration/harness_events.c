/* Integration fixtures: tenants, events, publishing and streams. See
 * harness.h. */
#include "harness.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Io__Cloudevents__V1__CloudEvent__AttributesEntry attr_entry;
typedef Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue attr_value;

static char *xstrdup(const char *s)
{
    char *p = strdup(s ? s : "");

    if (!p)
        abort();
    return p;
}

/* ---- Tenants ------------------------------------------------------------------ */

int h_key_create(cebus_client *c, const char *tenant, Cebus__V1__Role role, char *out,
                 size_t outlen, cebus_error *err)
{
    Cebus__V1__CreateApiKeyRequest req = CEBUS__V1__CREATE_API_KEY_REQUEST__INIT;
    Cebus__V1__CreateApiKeyResponse *resp = NULL;
    int rc;

    req.tenant = (char *)(tenant ? tenant : "");
    req.role = role;
    req.description = "integration test";
    rc = cebus_create_api_key(c, &req, &resp, err);
    if (rc != 0)
        return rc;
    snprintf(out, outlen, "%s", resp->secret);
    cebus__v1__create_api_key_response__free_unpacked(resp, NULL);
    return 0;
}

int h_bus_create(cebus_client *c, const char *tenant, const char *name, cebus_error *err)
{
    Cebus__V1__CreateBusRequest req = CEBUS__V1__CREATE_BUS_REQUEST__INIT;
    Cebus__V1__Bus *bus = NULL;
    int rc;

    req.tenant = (char *)(tenant ? tenant : "");
    req.name = (char *)name;
    rc = cebus_create_bus(c, &req, &bus, err);
    if (rc == 0)
        cebus__v1__bus__free_unpacked(bus, NULL);
    return rc;
}

void h_tenant_create_ok(cebus_client *platform_admin, const char *name, const char *bus,
                        struct h_tenant *t)
{
    Cebus__V1__CreateTenantRequest treq = CEBUS__V1__CREATE_TENANT_REQUEST__INIT;
    Cebus__V1__Tenant *tenant = NULL;
    cebus_error err;
    int rc;

    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    snprintf(t->bus, sizeof t->bus, "%s", bus);
    treq.name = t->name;
    treq.display_name = "integration test tenant";
    rc = cebus_create_tenant(platform_admin, &treq, &tenant, &err);
    if (rc != 0)
        fail_msg("CreateTenant %s: %s: %s", name, cebus_status_name(rc), err.message);
    cebus__v1__tenant__free_unpacked(tenant, NULL);

    rc = h_bus_create(platform_admin, t->name, t->bus, &err);
    if (rc != 0)
        fail_msg("CreateBus %s/%s: %s: %s", name, bus, cebus_status_name(rc), err.message);

    struct {
        Cebus__V1__Role role;
        char *out;
    } keys[] = {
        {CEBUS__V1__ROLE__ROLE_TENANT_ADMIN, t->admin_key},
        {CEBUS__V1__ROLE__ROLE_PUBLISHER, t->publisher_key},
        {CEBUS__V1__ROLE__ROLE_SUBSCRIBER, t->subscriber_key},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        rc = h_key_create(platform_admin, t->name, keys[i].role, keys[i].out, sizeof t->admin_key,
                          &err);
        if (rc != 0)
            fail_msg("CreateApiKey %s role %d: %s: %s", name, (int)keys[i].role,
                     cebus_status_name(rc), err.message);
    }
}

/* ---- Events -------------------------------------------------------------------- */

h_event *h_event_new(const char *id, const char *source, const char *type, const char *json_data)
{
    h_event *ev = calloc(1, sizeof *ev);

    if (!ev)
        abort();
    io__cloudevents__v1__cloud_event__init(ev);
    ev->id = xstrdup(id);
    ev->source = xstrdup(source);
    ev->spec_version = xstrdup("1.0");
    ev->type = xstrdup(type);
    if (json_data) {
        ev->data_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_TEXT_DATA;
        ev->text_data = xstrdup(json_data);
    }
    return ev;
}

void h_event_free(h_event *ev)
{
    if (ev)
        io__cloudevents__v1__cloud_event__free_unpacked(ev, NULL);
}

void h_event_set_spec_version(h_event *ev, const char *v)
{
    free(ev->spec_version);
    ev->spec_version = xstrdup(v);
}

void h_event_add_attr(h_event *ev, const char *name, const char *value)
{
    attr_entry *e = calloc(1, sizeof *e);
    attr_value *v = calloc(1, sizeof *v);

    if (!e || !v)
        abort();
    io__cloudevents__v1__cloud_event__attributes_entry__init(e);
    io__cloudevents__v1__cloud_event__cloud_event_attribute_value__init(v);
    v->attr_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_STRING;
    v->ce_string = xstrdup(value);
    e->key = xstrdup(name);
    e->value = v;
    ev->attributes = realloc(ev->attributes, (ev->n_attributes + 1) * sizeof *ev->attributes);
    if (!ev->attributes)
        abort();
    ev->attributes[ev->n_attributes++] = e;
}

void h_event_set_binary(h_event *ev, size_t len, int fill)
{
    if (ev->data_case == IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_TEXT_DATA)
        free(ev->text_data);
    else if (ev->data_case == IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_BINARY_DATA)
        free(ev->binary_data.data);
    ev->data_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_BINARY_DATA;
    ev->binary_data.data = malloc(len ? len : 1);
    if (!ev->binary_data.data)
        abort();
    memset(ev->binary_data.data, fill, len);
    ev->binary_data.len = len;
}

const attr_value *h_event_attr(const h_event *ev, const char *name)
{
    for (size_t i = 0; i < ev->n_attributes; i++)
        if (ev->attributes[i]->key && strcmp(ev->attributes[i]->key, name) == 0)
            return ev->attributes[i]->value;
    return NULL;
}

size_t h_event_attr_count(const h_event *ev, const char *name)
{
    size_t n = 0;

    for (size_t i = 0; i < ev->n_attributes; i++)
        if (ev->attributes[i]->key && strcmp(ev->attributes[i]->key, name) == 0)
            n++;
    return n;
}

const char *h_event_attr_string(const h_event *ev, const char *name)
{
    const attr_value *v = h_event_attr(ev, name);

    if (!v)
        return NULL;
    switch (v->attr_case) {
    case IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_STRING:
        return v->ce_string;
    case IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_URI:
        return v->ce_uri;
    case IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_URI_REF:
        return v->ce_uri_ref;
    default:
        return NULL;
    }
}

/* ---- Publishing ------------------------------------------------------------------ */

int h_put(cebus_client *c, const char *bus, h_event **events, size_t n,
          Cebus__V1__PutEventsResponse **resp, cebus_error *err)
{
    Cebus__V1__PutEventsRequest req = CEBUS__V1__PUT_EVENTS_REQUEST__INIT;

    req.bus = (char *)bus;
    req.events = events;
    req.n_events = n;
    return cebus_put_events(c, &req, resp, err);
}

uint64_t h_put_one_ok(cebus_client *c, const char *bus, const char *id, const char *type,
                      const char *json_data)
{
    h_event *ev = h_event_new(id, "/it", type, json_data);
    Cebus__V1__PutEventsResponse *resp = NULL;
    cebus_error err;
    uint64_t seq;
    int rc;

    rc = h_put(c, bus, &ev, 1, &resp, &err);
    h_event_free(ev);
    if (rc != 0)
        fail_msg("PutEvents on %s: %s: %s", bus, cebus_status_name(rc), err.message);
    assert_int_equal(resp->n_results, 1);
    if (resp->results[0]->code != 0)
        fail_msg("PutEvents entry: %s: %s", cebus_status_name(resp->results[0]->code),
                 resp->results[0]->message);
    seq = resp->results[0]->sequence;
    assert_true(seq > 0);
    cebus__v1__put_events_response__free_unpacked(resp, NULL);
    return seq;
}

/* ---- Streams ---------------------------------------------------------------------- */

void h_subscribe_request(Cebus__V1__SubscribeRequest *req, const char *bus, const char *pattern,
                         const char *subscription, Cebus__V1__StartPosition start,
                         uint64_t start_sequence)
{
    cebus__v1__subscribe_request__init(req);
    req->bus = (char *)bus;
    if (pattern)
        req->pattern = (char *)pattern;
    else if (subscription)
        req->subscription = (char *)subscription;
    req->start = start;
    req->start_sequence = start_sequence;
}

cebus_stream *h_subscribe_ok(cebus_client *c, const char *bus, const char *pattern,
                             Cebus__V1__StartPosition start, uint64_t start_sequence)
{
    Cebus__V1__SubscribeRequest req;
    cebus_stream *s = NULL;
    cebus_error err;
    int rc;

    h_subscribe_request(&req, bus, pattern, NULL, start, start_sequence);
    rc = cebus_subscribe(c, &req, &s, &err);
    if (rc != 0)
        fail_msg("Subscribe %s: %s: %s", bus, cebus_status_name(rc), err.message);
    return s;
}

int h_subscribe_status(cebus_client *c, const Cebus__V1__SubscribeRequest *req, cebus_error *err)
{
    Cebus__V1__SubscribeResponse *m = NULL;
    cebus_stream *s = NULL;
    int rc, r;

    rc = cebus_subscribe(c, req, &s, err);
    if (rc != 0)
        return rc;
    r = cebus_stream_next(s, H_EVENT_TIMEOUT_MS, &m, err);
    if (r > 0)
        cebus__v1__subscribe_response__free_unpacked(m, NULL);
    rc = r < 0 ? err->code : 0;
    if (r < 0 && rc == 0)
        rc = -1; /* a clean end at once is not an open stream either */
    cebus_stream_close(s);
    return rc;
}

Cebus__V1__SubscribeResponse *h_next(cebus_stream *s, int timeout_ms)
{
    Cebus__V1__SubscribeResponse *m = NULL;
    cebus_error err;
    int r = cebus_stream_next(s, timeout_ms, &m, &err);

    if (r < 0)
        fail_msg("stream ended: %s: %s", cebus_status_name(err.code), err.message);
    return r > 0 ? m : NULL;
}

Cebus__V1__SubscribeResponse *h_expect_next(cebus_stream *s)
{
    Cebus__V1__SubscribeResponse *m = h_next(s, H_EVENT_TIMEOUT_MS);

    if (!m)
        fail_msg("no delivery within %d ms", H_EVENT_TIMEOUT_MS);
    return m;
}

uint64_t h_stream_sync_ok(cebus_client *publisher, const char *bus, cebus_stream *s)
{
    int64_t deadline = h_now_ms() + H_EVENT_TIMEOUT_MS;
    uint64_t last = 0;
    bool seen = false;
    int round = 0;

    /* Markers put before the stream took its position are never delivered;
     * the first one after it is. Each round waits a little longer. */
    while (!seen) {
        char id[64];
        int64_t wait_until;

        if (h_now_ms() > deadline)
            fail_msg("stream on %s did not become live within %d ms", bus, H_EVENT_TIMEOUT_MS);
        snprintf(id, sizeof id, "sync-%d-%lld", ++round, (long long)h_now_ms());
        last = h_put_one_ok(publisher, bus, id, "it.sync", NULL);
        wait_until = h_now_ms() + 100 * round;
        while (!seen && h_now_ms() < wait_until) {
            Cebus__V1__SubscribeResponse *m = h_next(s, (int)(wait_until - h_now_ms()) + 1);
            if (!m)
                break;
            if (!m->event || strcmp(m->event->type, "it.sync") != 0)
                fail_msg("unexpected event %s (type %s, sequence %llu) before the sync marker",
                         m->event ? m->event->id : "?", m->event ? m->event->type : "?",
                         (unsigned long long)m->sequence);
            seen = true;
            if (m->sequence == last) {
                cebus__v1__subscribe_response__free_unpacked(m, NULL);
                return last;
            }
            cebus__v1__subscribe_response__free_unpacked(m, NULL);
        }
    }
    /* Drain the markers of later rounds up to the last one put. */
    for (;;) {
        Cebus__V1__SubscribeResponse *m = h_expect_next(s);
        uint64_t seq = m->sequence;
        if (!m->event || strcmp(m->event->type, "it.sync") != 0)
            fail_msg("unexpected event of type %s while draining sync markers",
                     m->event ? m->event->type : "?");
        cebus__v1__subscribe_response__free_unpacked(m, NULL);
        if (seq >= last)
            return last;
    }
}
