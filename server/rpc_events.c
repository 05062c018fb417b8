/* PutEvents. TestEventPattern is in rpc_pattern.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cebus/v1/eventbus.pb-c.h"
#include "cloudevents.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "log.h"
#include "metrics.h"
#include "rpc.h"
#include "util.h"

/* Length caps of the required attributes and of extension names. */
#define MAX_ATTR_BYTES 1024
#define MAX_ATTR_NAME 64
#define MAX_ATTRIBUTES 64

typedef Io__Cloudevents__V1__CloudEvent CloudEvent;
typedef Io__Cloudevents__V1__CloudEvent__AttributesEntry AttrEntry;
typedef Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue AttrValue;

/* The state of one PutEvents call between validation and commit. */
struct put {
    struct eb_append_req areq; /* first: the appender hands it back */
    struct eb_rpc *rpc;
    Cebus__V1__PutEventsRequest *req;
    Cebus__V1__PutEventsResultEntry *entries;
    Cebus__V1__PutEventsResultEntry **entry_ptrs;
    size_t nentries;
    struct eb_append_row *rows;
    size_t *row_entry; /* rows[i] answers entries[row_entry[i]] */
    char **messages;   /* per entry, owned */
};

static void put_free(struct put *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->areq.nrows; i++)
        free((void *)p->rows[i].body);
    for (size_t i = 0; i < p->nentries; i++)
        free(p->messages[i]);
    free(p->messages);
    free(p->rows);
    free(p->row_entry);
    free(p->entries);
    free(p->entry_ptrs);
    if (p->req)
        cebus__v1__put_events_request__free_unpacked(p->req, NULL);
    free(p);
}

static void entry_error(struct put *p, size_t i, eb_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void entry_error(struct put *p, size_t i, eb_status st, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(p->messages[i]);
    p->messages[i] = eb_strdup(buf);
    p->entries[i].code = (int32_t)eb_status_to_grpc(st);
    p->entries[i].message = p->messages[i];
    eb_metrics_add(EB_M_EVENTS_REJECTED, 1);
}

static bool is_reserved(const char *name)
{
    static const char *reserved[] = {"id", "source", "specversion", "type", "data",
                                     "data_base64"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strcmp(name, reserved[i]) == 0)
            return true;
    return false;
}

static bool attr_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > MAX_ATTR_NAME)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9')))
            return false;
    return true;
}

/* Checks one required string attribute. */
static bool check_required(struct put *p, size_t i, const char *field, const char *v)
{
    size_t len = v ? strlen(v) : 0;

    if (len == 0) {
        entry_error(p, i, EB_EINVAL, "events[%zu].%s: required", i, field);
        return false;
    }
    if (len > MAX_ATTR_BYTES) {
        entry_error(p, i, EB_EINVAL, "events[%zu].%s: longer than %d bytes", i, field,
                    MAX_ATTR_BYTES);
        return false;
    }
    if (!eb_utf8_valid(v, len)) {
        entry_error(p, i, EB_EINVAL, "events[%zu].%s: not valid UTF-8", i, field);
        return false;
    }
    return true;
}

/* Validates event i; on failure records the entry's error. */
static bool validate(struct put *p, size_t i, const CloudEvent *ev)
{
    if (!check_required(p, i, "id", ev->id) || !check_required(p, i, "source", ev->source) ||
        !check_required(p, i, "type", ev->type))
        return false;
    if (!ev->spec_version || !ev->spec_version[0]) {
        entry_error(p, i, EB_EINVAL, "events[%zu].spec_version: required (\"1.0\")", i);
        return false;
    }
    if (strcmp(ev->spec_version, "1.0") != 0) {
        entry_error(p, i, EB_EINVAL, "events[%zu].spec_version: must be \"1.0\"", i);
        return false;
    }
    if (ev->n_attributes > MAX_ATTRIBUTES) {
        entry_error(p, i, EB_EINVAL, "events[%zu].attributes: more than %d", i, MAX_ATTRIBUTES);
        return false;
    }
    for (size_t a = 0; a < ev->n_attributes; a++) {
        const AttrEntry *e = ev->attributes[a];
        const char *name = e->key ? e->key : "";
        const AttrValue *v = e->value;

        if (!attr_name_valid(name)) {
            entry_error(p, i, EB_EINVAL,
                        "events[%zu].attributes: names are 1 to %d of [a-z0-9], got \"%.64s\"", i,
                        MAX_ATTR_NAME, name);
            return false;
        }
        if (is_reserved(name)) {
            entry_error(p, i, EB_EINVAL, "events[%zu].attributes[\"%s\"]: reserved name", i, name);
            return false;
        }
        if (!v || v->attr_case == IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR__NOT_SET) {
            entry_error(p, i, EB_EINVAL, "events[%zu].attributes[\"%s\"]: value not set", i, name);
            return false;
        }
        if (v->attr_case == IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_STRING ||
            v->attr_case == IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_URI ||
            v->attr_case == IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_URI_REF) {
            const char *sv = v->ce_string; /* the oneof shares storage */
            if (v->attr_case != IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_STRING)
                sv = v->attr_case == IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_URI
                         ? v->ce_uri
                         : v->ce_uri_ref;
            if (!eb_utf8_valid(sv ? sv : "", sv ? strlen(sv) : 0)) {
                entry_error(p, i, EB_EINVAL, "events[%zu].attributes[\"%s\"]: not valid UTF-8", i,
                            name);
                return false;
            }
        }
    }
    if (ev->data_case == IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_TEXT_DATA &&
        !eb_utf8_valid(ev->text_data, strlen(ev->text_data))) {
        entry_error(p, i, EB_EINVAL, "events[%zu].text_data: not valid UTF-8", i);
        return false;
    }
    return true;
}

/* Returns the stored form of ev: publisher-supplied "cebus*" attributes
 * dropped, the publishing tenant and the receive time stamped. The event
 * itself is not modified. */
static uint8_t *stamp_and_pack(const CloudEvent *ev, const char *tenant, int64_t now_us,
                               size_t *len)
{
    CloudEvent copy = *ev;
    AttrEntry tenant_entry = IO__CLOUDEVENTS__V1__CLOUD_EVENT__ATTRIBUTES_ENTRY__INIT;
    AttrEntry time_entry = IO__CLOUDEVENTS__V1__CLOUD_EVENT__ATTRIBUTES_ENTRY__INIT;
    AttrValue tenant_value = IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__INIT;
    AttrValue time_value = IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__INIT;
    Google__Protobuf__Timestamp ts;
    AttrEntry **attrs = eb_malloc((ev->n_attributes + 2) * sizeof *attrs);
    size_t n = 0;
    uint8_t *buf;

    for (size_t a = 0; a < ev->n_attributes; a++)
        if (strncmp(ev->attributes[a]->key, "cebus", 5) != 0)
            attrs[n++] = ev->attributes[a];
    tenant_value.attr_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_STRING;
    tenant_value.ce_string = (char *)tenant;
    tenant_entry.key = "cebustenant";
    tenant_entry.value = &tenant_value;
    eb_rpc_timestamp(&ts, now_us);
    time_value.attr_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_TIMESTAMP;
    time_value.ce_timestamp = &ts;
    time_entry.key = "cebusrecvtime";
    time_entry.value = &time_value;
    attrs[n++] = &tenant_entry;
    attrs[n++] = &time_entry;
    copy.attributes = attrs;
    copy.n_attributes = n;

    *len = protobuf_c_message_get_packed_size(&copy.base);
    buf = eb_malloc(*len);
    protobuf_c_message_pack(&copy.base, buf);
    free(attrs);
    return buf;
}

static void reply_put(struct put *p)
{
    Cebus__V1__PutEventsResponse resp = CEBUS__V1__PUT_EVENTS_RESPONSE__INIT;

    resp.n_results = p->nentries;
    resp.results = p->entry_ptrs;
    for (size_t i = 0; i < p->nentries; i++)
        if (p->entries[i].code != 0)
            resp.failed_count++;
    eb_rpc_reply(p->rpc, &resp.base);
    p->rpc = NULL;
}

/* Appender callback: runs after COMMIT (or its failure). */
static void put_done(struct eb_append_req *areq, eb_status st)
{
    struct put *p = (struct put *)areq;

    if (st != EB_OK) {
        eb_rpc_fail(p->rpc, st == EB_EUNAVAIL ? EB_EUNAVAIL : EB_EINTERNAL,
                    "events were not stored: %s; retry",
                    st == EB_EUNAVAIL ? "database unavailable" : "internal error");
        p->rpc = NULL;
        put_free(p);
        return;
    }
    for (size_t r = 0; r < areq->nrows; r++) {
        size_t i = p->row_entry[r];
        if (areq->rows[r].status == EB_OK) {
            p->entries[i].sequence = (uint64_t)areq->rows[r].seq;
            p->entries[i].duplicate = areq->rows[r].duplicate;
        }
        else
            entry_error(p, i, EB_ENOTFOUND, "bus: no longer exists");
    }
    reply_put(p);
    put_free(p);
}

void eb_rpc_put_events(struct eb_rpc *rpc)
{
    const struct eb_config *cfg = rpc->app->cfg;
    struct put *p;
    struct eb_bus_rec bus;
    eb_sources *sources = NULL;
    int64_t now = eb_now_wall_us();
    eb_status st;

    st = eb_auth_require(&rpc->who,
                         EB_ADMINS | EB_ROLES(EB_ROLE_PUBLISHER), "publish events", rpc->err,
                         sizeof rpc->err);
    if (st) {
        eb_rpc_fail(rpc, st, "%s", rpc->err);
        return;
    }
    p = eb_calloc(1, sizeof *p);
    p->req = cebus__v1__put_events_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!p->req) {
        put_free(p);
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid PutEventsRequest message");
        return;
    }
    st = eb_auth_resolve_bus_granted(rpc->app->auth, rpc->db, &rpc->who, p->req->bus,
                                     EB_PERMS(EB_PERMISSION_PUBLISH), &bus, NULL, rpc->err,
                                     sizeof rpc->err);
    if (st) {
        put_free(p);
        eb_rpc_fail(rpc, st, "%s", rpc->err);
        return;
    }
    if (p->req->n_events == 0) {
        put_free(p);
        eb_rpc_fail(rpc, EB_EINVAL, "events: at least one event is required");
        return;
    }
    if (p->req->n_events > (size_t)cfg->max_batch) {
        size_t got = p->req->n_events;
        put_free(p);
        eb_rpc_fail(rpc, EB_EINVAL, "events: at most %ld entries per request, got %zu",
                    cfg->max_batch, got);
        return;
    }
    /* The publishing tenant's rate quotas, charged before the batch is
     * looked at further: a batch that does not fit is refused whole, and
     * a tenant over its rates costs the server little. */
    {
        int64_t retry_ms = 0;
        st = eb_quota_charge_put(rpc->app->quota, rpc->db, rpc->who.tenant_id,
                                 (int64_t)p->req->n_events, (int64_t)rpc->req_len, &retry_ms,
                                 rpc->err, sizeof rpc->err);
        if (st) {
            put_free(p);
            if (st == EB_EEXHAUSTED)
                eb_rpc_fail_retry(rpc, st, retry_ms, rpc->err);
            else
                eb_rpc_fail(rpc, st, "%s", rpc->err);
            return;
        }
    }
    /* The publishing tenant's prefixes, also on a bus it was granted:
     * sources are about who speaks, not where. */
    st = eb_auth_sources_get(rpc->app->auth, rpc->db, rpc->who.tenant_id, &sources);
    if (st) {
        put_free(p);
        eb_rpc_fail(rpc, st == EB_EUNAVAIL ? EB_EUNAVAIL : EB_EINTERNAL, "%s",
                    st == EB_EUNAVAIL ? "database unavailable; retry" : "internal error");
        return;
    }

    p->rpc = rpc;
    p->nentries = p->req->n_events;
    p->entries = eb_calloc(p->nentries, sizeof *p->entries);
    p->entry_ptrs = eb_calloc(p->nentries, sizeof *p->entry_ptrs);
    p->messages = eb_calloc(p->nentries, sizeof *p->messages);
    p->rows = eb_calloc(p->nentries, sizeof *p->rows);
    p->row_entry = eb_calloc(p->nentries, sizeof *p->row_entry);
    for (size_t i = 0; i < p->nentries; i++) {
        const CloudEvent *ev = p->req->events[i];
        struct eb_append_row *row;
        size_t len;
        uint8_t *body;

        cebus__v1__put_events_result_entry__init(&p->entries[i]);
        p->entry_ptrs[i] = &p->entries[i];
        if (!validate(p, i, ev))
            continue;
        if (!eb_sources_allow(sources, cfg->require_sources, ev->source)) {
            if (eb_sources_count(sources) == 0 && !cfg->require_sources)
                entry_error(p, i, EB_EPERM,
                            "events[%zu].source: under a source prefix another tenant owns",
                            i);
            else
                entry_error(p, i, EB_EPERM,
                            "events[%zu].source: not under a source prefix registered for "
                            "tenant \"%s\"",
                            i, rpc->who.tenant);
            continue;
        }
        body = stamp_and_pack(ev, rpc->who.tenant, now, &len);
        if (len > (size_t)cfg->max_event_bytes) {
            free(body);
            entry_error(p, i, EB_EINVAL, "events[%zu]: %zu bytes encoded, limit %ld", i, len,
                        cfg->max_event_bytes);
            continue;
        }
        row = &p->rows[p->areq.nrows];
        row->bus_id = bus.id;
        row->tenant_id = rpc->who.tenant_id;
        row->received_us = now;
        row->source = ev->source;
        row->event_id = ev->id;
        row->type = ev->type;
        row->body = body;
        row->body_len = len;
        p->row_entry[p->areq.nrows++] = i;
    }
    eb_auth_sources_release(rpc->app->auth, sources);
    if (p->areq.nrows == 0) {
        reply_put(p);
        put_free(p);
        return;
    }
    p->areq.rows = p->rows;
    p->areq.done = put_done;
    st = eb_appender_submit(rpc->app->appender, &p->areq);
    if (st) {
        p->rpc = NULL;
        put_free(p);
        eb_rpc_fail(rpc, EB_EUNAVAIL, "server shutting down; retry elsewhere");
    }
}
