/* TestEventPattern: a pattern against one event (match, or why not), or a
 * dry run against the newest events of a bus's retained history (how many
 * match, with samples). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cebus/v1/eventbus.pb-c.h"
#include "cejson.h"
#include "cloudevents.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "log.h"
#include "pattern.h"
#include "rpc.h"
#include "util.h"

/* Dry-run bounds (documented in docs/patterns.md). */
#define DRY_LAST_DEFAULT 1000        /* events examined without since */
#define DRY_LAST_MAX 10000           /* and at most, with or without since */
#define DRY_SAMPLES_DEFAULT 10
#define DRY_SAMPLES_MAX 100
#define DRY_SAMPLE_BYTES (8u << 20)  /* stored size of all samples together */
/* Events are read in pages of at most this many, stopping a page early
 * once its bodies reach DRY_PAGE_BYTES: bodies may be 256 KiB or more, and
 * a dry run should hold a few MiB at once, not the whole window. */
#define DRY_PAGE 500
#define DRY_PAGE_BYTES (2u << 20)

typedef Io__Cloudevents__V1__CloudEvent CloudEvent;
typedef Cebus__V1__TestEventPatternRequest Request;
typedef Cebus__V1__TestEventPatternResponse Response;
typedef Cebus__V1__TestEventPatternSample Sample;

/* The state of one dry run. */
struct dry_run {
    int64_t bus_id;
    int64_t after, before; /* examine after < seq < before */
    uint32_t last;         /* at most this many events */
    uint32_t max_samples;
    uint64_t examined, matched;
    int64_t oldest, newest;
    Sample *samples;       /* max_samples of them; events owned */
    Sample **sample_ptrs;
    size_t nsamples;
    size_t sample_bytes;
    bool samples_full;
};

static void dry_run_free(struct dry_run *d)
{
    for (size_t i = 0; i < d->nsamples; i++)
        io__cloudevents__v1__cloud_event__free_unpacked(d->samples[i].event, NULL);
    free(d->samples);
    free(d->sample_ptrs);
}

/* Validates the dry-run fields of req. Returns EB_OK and sets d->last,
 * d->max_samples and *since_us (-1 without since), or EB_EINVAL with a
 * message in rpc->err and nothing written. */
static eb_status dry_run_args(struct eb_rpc *rpc, const Request *req, struct dry_run *d,
                              int64_t *since_us)
{
    const Google__Protobuf__Timestamp *since = req->since;

    if (req->last > DRY_LAST_MAX) {
        snprintf(rpc->err, sizeof rpc->err, "last: at most %d events, got %u", DRY_LAST_MAX,
                 req->last);
        return EB_EINVAL;
    }
    if (req->max_samples > DRY_SAMPLES_MAX) {
        snprintf(rpc->err, sizeof rpc->err, "max_samples: at most %d, got %u", DRY_SAMPLES_MAX,
                 req->max_samples);
        return EB_EINVAL;
    }
    if (since && (since->seconds < 0 || since->nanos < 0 || since->nanos > 999999999)) {
        snprintf(rpc->err, sizeof rpc->err, "since: must be a valid time after 1970");
        return EB_EINVAL;
    }
    if (since && since->seconds > 253402300799) { /* 9999-12-31 */
        snprintf(rpc->err, sizeof rpc->err, "since: out of range");
        return EB_EINVAL;
    }
    d->last = req->last ? req->last : since ? DRY_LAST_MAX : DRY_LAST_DEFAULT;
    d->max_samples = req->max_samples ? req->max_samples : DRY_SAMPLES_DEFAULT;
    *since_us = since ? since->seconds * 1000000 + since->nanos / 1000 : -1;
    return EB_OK;
}

/* Matches one stored event (rec, decoded as ev) and counts it. When it
 * keeps ev as a sample, it takes ownership of ev and sets *kept. */
static void dry_run_offer(struct dry_run *d, const struct eb_event_rec *rec, CloudEvent *ev,
                          const eb_pattern *pat, bool *kept)
{
    json_t *view = ce_to_json(ev);
    bool match = eb_pattern_match(pat, view);

    json_decref(view);
    *kept = false;
    if (!match)
        return;
    d->matched++;
    if (d->samples_full || d->nsamples == d->max_samples)
        return;
    if (d->sample_bytes + rec->body_len > DRY_SAMPLE_BYTES) {
        /* Keep the samples the newest ones: no smaller, older event may
         * take the place of one that did not fit. */
        d->samples_full = true;
        return;
    }
    cebus__v1__test_event_pattern_sample__init(&d->samples[d->nsamples]);
    d->samples[d->nsamples].sequence = (uint64_t)rec->seq;
    d->samples[d->nsamples].event = ev;
    d->sample_ptrs[d->nsamples] = &d->samples[d->nsamples];
    d->nsamples++;
    d->sample_bytes += rec->body_len;
    *kept = true;
}

/* Reads the window page by page, newest first, and matches every event.
 * Returns EB_OK or the store's status. */
static eb_status dry_run_scan(eb_db *db, struct dry_run *d, const eb_pattern *pat)
{
    while (d->examined < d->last && d->before - 1 > d->after) {
        uint64_t want = d->last - d->examined;
        struct eb_event_rec *recs = NULL;
        size_t n = 0;
        eb_status st;

        st = eb_store_events_read_back(db, d->bus_id, d->after, d->before,
                                       want < DRY_PAGE ? (int)want : DRY_PAGE, DRY_PAGE_BYTES,
                                       &recs, &n);
        if (st)
            return st;
        for (size_t i = 0; i < n; i++) {
            CloudEvent *ev = io__cloudevents__v1__cloud_event__unpack(NULL, recs[i].body_len,
                                                                     recs[i].body);
            bool kept = false;

            if (d->newest == 0)
                d->newest = recs[i].seq;
            d->oldest = recs[i].seq;
            d->examined++;
            if (!ev)
                eb_log_error("msg=\"undecodable stored event\" bus_id=%lld seq=%lld",
                             (long long)d->bus_id, (long long)recs[i].seq);
            else
                dry_run_offer(d, &recs[i], ev, pat, &kept);
            if (ev && !kept)
                io__cloudevents__v1__cloud_event__free_unpacked(ev, NULL);
            free(recs[i].body);
        }
        if (n > 0)
            d->before = recs[n - 1].seq;
        free(recs);
        if (n == 0)
            break;
    }
    return EB_OK;
}

/* The bus form of the call: req->bus is set and req->event is not. */
static void test_on_bus(struct eb_rpc *rpc, const Request *req)
{
    Response resp = CEBUS__V1__TEST_EVENT_PATTERN_RESPONSE__INIT;
    struct dry_run d;
    struct eb_bus_rec bus;
    eb_pattern *pat = NULL;
    int64_t since_us = -1, head = 0;
    char err[512];
    eb_status st;

    memset(&d, 0, sizeof d);
    /* The roles that may Subscribe: a dry run shows the bus's events. */
    st = eb_auth_require(&rpc->who, EB_ADMINS | EB_ROLES(EB_ROLE_SUBSCRIBER),
                         "test patterns against a bus", rpc->err, sizeof rpc->err);
    if (st == EB_OK)
        st = dry_run_args(rpc, req, &d, &since_us);
    if (st == EB_OK)
        st = eb_auth_resolve_bus_granted(rpc->app->auth, rpc->db, &rpc->who, req->bus,
                                         EB_PERMS(EB_PERMISSION_SUBSCRIBE), &bus, NULL,
                                         rpc->err, sizeof rpc->err);
    if (st) {
        eb_rpc_fail(rpc, st, "%s", rpc->err);
        goto out;
    }
    if (eb_pattern_compile(req->pattern, strlen(req->pattern), &pat, err, sizeof err)) {
        eb_rpc_fail_pattern(rpc, err);
        goto out;
    }
    d.bus_id = bus.id;
    /* The window ends at the committed head when the call starts: events
     * appended meanwhile are not examined. */
    st = eb_store_events_head(rpc->db, bus.id, &head);
    if (st == EB_OK && since_us >= 0)
        st = eb_store_events_before_time(rpc->db, bus.id, since_us, &d.after);
    if (st) {
        eb_rpc_fail_store(rpc, st, "bus");
        goto out;
    }
    d.before = head + 1;
    d.samples = eb_calloc(d.max_samples, sizeof *d.samples);
    d.sample_ptrs = eb_calloc(d.max_samples, sizeof *d.sample_ptrs);
    st = dry_run_scan(rpc->db, &d, pat);
    if (st) {
        eb_rpc_fail_store(rpc, st, "bus");
        goto out;
    }
    resp.matched = d.matched > 0;
    resp.examined = d.examined;
    resp.matched_count = d.matched;
    resp.n_samples = d.nsamples;
    resp.samples = d.sample_ptrs;
    resp.oldest_sequence = (uint64_t)d.oldest;
    resp.newest_sequence = (uint64_t)d.newest;
    eb_log_debug("msg=\"pattern dry run\" tenant=%s bus=%s examined=%llu matched=%llu",
                 rpc->who.tenant, bus.name, (unsigned long long)d.examined,
                 (unsigned long long)d.matched);
    eb_rpc_reply(rpc, &resp.base);
out:
    dry_run_free(&d);
    eb_pattern_free(pat);
}

/* The event form of the call: req->event is set and req->bus is not. */
static void test_on_event(struct eb_rpc *rpc, const Request *req)
{
    Response resp = CEBUS__V1__TEST_EVENT_PATTERN_RESPONSE__INIT;
    eb_pattern *pat = NULL;
    json_t *view;
    char reason[512] = "";
    char err[512];

    if (req->last || req->since || req->max_samples) {
        eb_rpc_fail(rpc, EB_EINVAL, "last, since, max_samples: only with bus, not with event");
        return;
    }
    if (eb_pattern_compile(req->pattern, strlen(req->pattern), &pat, err, sizeof err)) {
        eb_rpc_fail_pattern(rpc, err);
        return;
    }
    view = ce_to_json(req->event);
    resp.matched = eb_pattern_explain(pat, view, reason, sizeof reason);
    resp.reason = resp.matched ? "" : reason;
    eb_rpc_reply(rpc, &resp.base);
    json_decref(view);
    eb_pattern_free(pat);
}

void eb_rpc_test_event_pattern(struct eb_rpc *rpc)
{
    Request *req = cebus__v1__test_event_pattern_request__unpack(NULL, rpc->req_len, rpc->req);

    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid TestEventPatternRequest message");
        return;
    }
    if (req->event && req->bus[0])
        eb_rpc_fail(rpc, EB_EINVAL, "event, bus: give one, not both");
    else if (!req->event && !req->bus[0])
        eb_rpc_fail(rpc, EB_EINVAL, "event: required unless bus is given");
    else if (req->event)
        test_on_event(rpc, req);
    else
        test_on_bus(rpc, req);
    cebus__v1__test_event_pattern_request__free_unpacked(req, NULL);
}
