#include "dispatch.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cloudevents.pb-c.h"
#include "dispatch_internal.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "store_durable.h"
#include "util.h"

static void stream_ops_write_done(void *arg, bool ok);
static void stream_ops_close(void *arg);

static const struct eb_stream_ops stream_ops = {
    .on_write_done = stream_ops_write_done,
    .on_close = stream_ops_close,
};

void eb_dispatch_signal(eb_dispatch *d)
{
    uint64_t one = 1;
    ssize_t n = write(d->wakefd, &one, sizeof one);
    (void)n; /* a full counter already means "wake up" */
}

struct bus *eb_dispatch_find_bus_locked(eb_dispatch *d, int64_t id)
{
    for (struct bus *b = d->buses; b; b = b->next)
        if (b->id == id)
            return b;
    return NULL;
}

/* Whether s may take another delivery. REQUIRES: d->mu. */
static bool has_room(const struct stream *s)
{
    return s->qlen < s->qcap && (s->qlen == 0 || s->qbytes < STREAM_MAX_QUEUED_BYTES);
}

static void stream_free(struct stream *s)
{
    while (s->qlen) {
        grpc_slice_unref(s->q[s->qhead].msg);
        s->qhead = (s->qhead + 1) % s->qcap;
        s->qlen--;
    }
    free(s->q);
    eb_durable_stream_free(s);
    eb_pattern_free(s->pattern);
    free(s->subscription);
    free(s);
}

static void bus_free(struct bus *b)
{
    eb_matcher_scratch_free(b->scratch);
    eb_matcher_free(b->matcher);
    free(b->slots);
    free(b->hit);
    free(b);
}

/* Unlinks s from its bus, dropping the bus when it was the last stream.
 * REQUIRES: d->mu. */
static void unlink_locked(eb_dispatch *d, struct stream *s)
{
    struct bus *b = s->bus;
    struct stream **pp;

    if (!b)
        return;
    if (s->dsub)
        eb_durable_leave_locked(d, s);
    for (pp = &b->streams; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    s->bus = NULL;
    d->nstreams--;
    eb_metrics_gauge_add(EB_G_STREAMS_OPEN, -1);
    if (d->stream_ended)
        d->stream_ended(d->stream_ended_arg, s->tenant_id);
    b->matcher_stale = true;
    if (!b->streams) {
        struct bus **bp;
        for (bp = &d->buses; *bp; bp = &(*bp)->next)
            if (*bp == b) {
                *bp = b->next;
                break;
            }
        bus_free(b);
    }
}

/* Frees s once nothing can call back into it: it has ended, its last
 * write completed, and the call's on_close came. REQUIRES: d->mu. */
static void maybe_free_locked(struct stream *s)
{
    if (s->closed && s->released && !s->writing)
        stream_free(s);
}

/* Ends s: unlinks it and gives back the handler's call reference with a
 * final status. REQUIRES: d->mu. */
void eb_dispatch_end_locked(eb_dispatch *d, struct stream *s, eb_status st, const char *msg)
{
    eb_call *call = s->call;

    if (s->closed)
        return;
    s->closed = true;
    unlink_locked(d, s);
    s->call = NULL;
    eb_call_finish(call, st, msg);
    maybe_free_locked(s);
}

/* Starts the next write when none is outstanding. REQUIRES: d->mu. */
void eb_dispatch_pump_locked(struct stream *s)
{
    struct outmsg m;

    if (s->writing || s->closed || s->qlen == 0)
        return;
    m = s->q[s->qhead];
    s->qhead = (s->qhead + 1) % s->qcap;
    s->qlen--;
    s->qbytes -= GRPC_SLICE_LENGTH(m.msg);
    s->writing = true;
    /* The buffer hint lets gRPC coalesce a burst; the burst's last write
     * goes without it so that it is flushed at once. */
    if (!eb_call_write_slice(s->call, m.msg, s->qlen > 0))
        s->writing = false;
}

static void stream_ops_write_done(void *arg, bool ok)
{
    struct stream *s = arg;
    eb_dispatch *d = s->d;
    bool resume;

    pthread_mutex_lock(&d->mu);
    s->writing = false;
    if (s->closed) {
        maybe_free_locked(s);
        pthread_mutex_unlock(&d->mu);
        return;
    }
    if (!ok) {
        eb_dispatch_end_locked(d, s, EB_EUNAVAIL, "stream write failed");
        pthread_mutex_unlock(&d->mu);
        return;
    }
    eb_dispatch_pump_locked(s);
    /* A stream that filled its queue was left behind by the reader; now
     * that there is room, have its bus read again. */
    resume = s->stalled && has_room(s);
    if (resume)
        s->stalled = false;
    if (resume && s->dsub) {
        s->dsub->dirty = true;
        eb_dispatch_signal(d);
    } else if (resume && s->bus) {
        s->bus->dirty = true;
        eb_dispatch_signal(d);
    }
    pthread_mutex_unlock(&d->mu);
}

static void stream_ops_close(void *arg)
{
    struct stream *s = arg;
    eb_dispatch *d = s->d;

    pthread_mutex_lock(&d->mu);
    s->released = true;
    if (!s->closed)
        eb_dispatch_end_locked(d, s, EB_ECANCELLED, "client went away"); /* frees s when it can */
    else
        maybe_free_locked(s);
    pthread_mutex_unlock(&d->mu);
}

eb_status eb_dispatch_add(eb_dispatch *d, eb_call *call, int64_t key_id, int64_t grantee_id,
                          int64_t tenant_id, int64_t bus_id,
                          int64_t after_seq, eb_pattern *pattern, int max_in_flight,
                          const struct eb_dispatch_rule *rule)
{
    struct stream *s;
    struct bus *b;

    pthread_mutex_lock(&d->mu);
    if (d->stopping) {
        pthread_mutex_unlock(&d->mu);
        return EB_EUNAVAIL;
    }
    if (d->nstreams >= d->max_streams) {
        pthread_mutex_unlock(&d->mu);
        return EB_EEXHAUSTED;
    }
    b = eb_dispatch_find_bus_locked(d, bus_id);
    if (!b) {
        b = eb_calloc(1, sizeof *b);
        b->id = bus_id;
        b->next = d->buses;
        d->buses = b;
    }
    s = eb_calloc(1, sizeof *s);
    s->d = d;
    s->bus = b;
    s->call = call;
    s->key_id = key_id;
    s->grantee_id = grantee_id;
    s->tenant_id = tenant_id;
    s->pattern = pattern;
    if (rule) {
        s->rule_id = rule->id;
        s->rule_version = rule->version;
        s->subscription = eb_strdup(rule->subscription);
        s->rule_disabled = !rule->enabled;
        /* The rule may have changed since the call read it, and that
         * change's notification may have come before the stream existed:
         * check at once rather than at the next periodic check. */
        b->rules_dirty = true;
    }
    s->cursor = after_seq;
    s->qcap = (size_t)(max_in_flight > 0 ? max_in_flight : 1);
    s->q = eb_calloc(s->qcap, sizeof *s->q);
    s->next = b->streams;
    b->streams = s;
    b->dirty = true;
    b->matcher_stale = true;
    if (rule && rule->sub_id)
        eb_durable_join_locked(s, rule->sub_id, rule->frontier);
    d->nstreams++;
    eb_metrics_add(EB_M_STREAMS_OPENED, 1);
    eb_metrics_gauge_add(EB_G_STREAMS_OPEN, 1);
    /* Under d->mu so that a close arriving at once finds the stream. */
    if (!eb_call_stream_start(call, &stream_ops, s)) {
        s->released = true; /* on_close already ran, before ops were set */
        eb_dispatch_end_locked(d, s, EB_ECANCELLED, "client went away");
    }
    pthread_mutex_unlock(&d->mu);
    eb_dispatch_signal(d);
    return EB_OK;
}

void eb_dispatch_wake(eb_dispatch *d, int64_t bus_id)
{
    struct bus *b;

    pthread_mutex_lock(&d->mu);
    b = eb_dispatch_find_bus_locked(d, bus_id);
    if (b) {
        b->dirty = true;
        eb_durable_bus_dirty_locked(b);
    }
    pthread_mutex_unlock(&d->mu);
    if (b)
        eb_dispatch_signal(d);
}

static void on_notify(void *arg, enum eb_notify_channel ch, int64_t bus_id)
{
    eb_dispatch *d = arg;
    struct bus *b;

    if (ch == EB_NOTIFY_SUBS) { /* bus_id is a subscription's id */
        eb_durable_notified_locked(d, bus_id);
        return;
    }
    b = eb_dispatch_find_bus_locked(d, bus_id);
    if (!b)
        return;
    if (ch == EB_NOTIFY_RULES) {
        b->rules_dirty = true;
    } else {
        b->dirty = true;
        eb_durable_bus_dirty_locked(b);
    }
}

/* Encodes a SubscribeResponse {sequence = 1, event = 2} around the stored
 * event bytes without decoding and re-encoding the event. Returns a slice
 * with one reference. */
static grpc_slice encode_delivery(int64_t seq, const uint8_t *body, size_t len)
{
    uint8_t *buf = eb_malloc(1 + 10 + 1 + 10 + len);
    size_t n = 0;
    uint64_t v;

    buf[n++] = 0x08; /* field 1, varint */
    for (v = (uint64_t)seq; v >= 0x80; v >>= 7)
        buf[n++] = (uint8_t)(v | 0x80);
    buf[n++] = (uint8_t)v;
    buf[n++] = 0x12; /* field 2, length-delimited */
    for (v = len; v >= 0x80; v >>= 7)
        buf[n++] = (uint8_t)(v | 0x80);
    buf[n++] = (uint8_t)v;
    memcpy(buf + n, body, len);
    return grpc_slice_new(buf, n + len, free);
}

/* Rebuilds b's matcher over its current streams, when one joined, left or
 * changed its pattern since the last build: O(streams), once per change,
 * on the next event or right after a rule change. A stream whose rule is
 * disabled keeps its slot but has no pattern in the matcher, so it
 * examines events (its cursor moves on) and matches none.
 * REQUIRES: d->mu. */
static void matcher_refresh_locked(struct bus *b)
{
    size_t n = 0;

    if (b->matcher && !b->matcher_stale)
        return;
    eb_matcher_scratch_free(b->scratch);
    eb_matcher_free(b->matcher);
    for (struct stream *s = b->streams; s; s = s->next)
        n++;
    free(b->slots);
    free(b->hit);
    b->slots = eb_calloc(n ? n : 1, sizeof *b->slots);
    b->hit = eb_calloc(n ? n : 1, 1);
    b->nslots = n;
    b->matcher = eb_matcher_new();
    n = 0;
    for (struct stream *s = b->streams; s; s = s->next) {
        b->slots[n] = s;
        if (!s->rule_disabled && !s->dsub)
            eb_matcher_add(b->matcher, s->pattern, (uint32_t)n);
        n++;
    }
    eb_matcher_build(b->matcher);
    b->scratch = eb_matcher_scratch_new(b->matcher);
    b->matcher_stale = false;
}

/* Offers one event to every stream of b that has not seen it and has room.
 * The bus's matcher says once which streams' patterns match (asked lazily,
 * on the first stream that takes the event). REQUIRES: d->mu. */
static void offer_locked(struct bus *b, const struct eb_event_rec *ev)
{
    grpc_slice msg;
    bool encoded = false, matched = false, decodable = true;
    const uint32_t *ids = NULL;
    size_t nids = 0;

    matcher_refresh_locked(b);
    for (size_t i = 0; i < b->nslots; i++) {
        struct stream *s = b->slots[i];

        if (!s->reading || s->cursor >= ev->seq)
            continue;
        if (!has_room(s)) {
            s->reading = false;
            s->stalled = true;
            continue;
        }
        s->cursor = ev->seq;
        s->floor_us = ev->expires_us;
        if (!matched) {
            /* Read straight from the stored bytes (flatten.h): only the
             * fields the patterns use, usually without decoding. */
            matched = true;
            decodable = eb_matcher_match_stored(b->matcher, ev->body, ev->body_len, b->scratch,
                                                &ids, &nids);
            if (!decodable) {
                nids = 0;
                eb_log_error("msg=\"undecodable stored event\" bus_id=%lld seq=%lld",
                             (long long)b->id, (long long)ev->seq);
            }
            for (size_t k = 0; k < nids; k++)
                b->hit[ids[k]] = 1;
        }
        if (!decodable)
            continue;
        if (!b->hit[i])
            continue;
        /* Encoded once, on the first match; every stream shares it. */
        if (!encoded) {
            msg = encode_delivery(ev->seq, ev->body, ev->body_len);
            encoded = true;
        }
        s->q[(s->qhead + s->qlen) % s->qcap].msg = grpc_slice_ref(msg);
        s->qlen++;
        s->qbytes += GRPC_SLICE_LENGTH(msg);
    }
    for (size_t k = 0; k < nids; k++)
        b->hit[ids[k]] = 0;
    if (encoded)
        grpc_slice_unref(msg);
}

/* Ends with OUT_OF_RANGE the reading streams of bus_id whose next event
 * (cursor + 1) is missing from the page evs[0..n) while a later one is in
 * it. A bus's sequences are dense and become visible in order (0001), so
 * the missing event expired: the stream lost it to the bus's retention.
 * Called without d->mu. */
static void end_out_of_range(eb_dispatch *d, int64_t bus_id, const struct eb_event_rec *evs,
                             size_t n)
{
    struct stream **doomed = NULL;
    size_t ndoomed = 0, cap = 0;
    struct bus *b;

    pthread_mutex_lock(&d->mu);
    b = eb_dispatch_find_bus_locked(d, bus_id);
    for (struct stream *s = b ? b->streams : NULL; s; s = s->next) {
        size_t lo = 0, hi = n;
        if (!s->reading || s->closed || s->cursor >= evs[n - 1].seq)
            continue;
        while (lo < hi) { /* the first event after the cursor */
            size_t mid = lo + (hi - lo) / 2;
            if (evs[mid].seq > s->cursor)
                hi = mid;
            else
                lo = mid + 1;
        }
        if (evs[lo].seq == s->cursor + 1)
            continue;
        if (ndoomed == cap) {
            cap = cap ? cap * 2 : 4;
            doomed = eb_realloc(doomed, cap * sizeof *doomed);
        }
        doomed[ndoomed++] = s;
        s->cursor = evs[lo].seq; /* for the message below */
    }
    /* Collected first: ending a stream unlinks it, and may free its bus. */
    for (size_t i = 0; i < ndoomed; i++) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "position: the events after this stream's last sequence expired (the bus's "
                 "retention); the oldest retained sequence after it is %lld",
                 (long long)doomed[i]->cursor);
        eb_dispatch_end_locked(d, doomed[i], EB_ERANGE, msg);
    }
    pthread_mutex_unlock(&d->mu);
    if (ndoomed)
        eb_log_info("msg=\"streams ended: position past retention\" bus_id=%lld streams=%zu",
                    (long long)bus_id, ndoomed);
    free(doomed);
}

/* Reads bus b's log from the lowest cursor of its streams that have room,
 * and offers each event to them. Returns EB_EUNAVAIL when the database is
 * unreachable. Called without d->mu. */
static eb_status serve_bus(eb_dispatch *d, eb_db *db, int64_t bus_id)
{
    for (;;) {
        struct eb_event_rec *evs = NULL;
        size_t n = 0;
        int64_t from = INT64_MAX, floor_us = INT64_MAX;
        struct bus *b;
        eb_status st;
        bool more;

        pthread_mutex_lock(&d->mu);
        b = eb_dispatch_find_bus_locked(d, bus_id);
        if (b) {
            b->dirty = false;
            for (struct stream *s = b->streams; s; s = s->next) {
                s->reading = !s->dsub && has_room(s);
                if (!s->reading && !s->dsub)
                    s->stalled = true;
                if (s->reading && s->cursor < from)
                    from = s->cursor;
                if (s->reading && s->floor_us < floor_us)
                    floor_us = s->floor_us;
            }
        }
        pthread_mutex_unlock(&d->mu);
        if (!b || from == INT64_MAX)
            return EB_OK;

        /* Expiries never decrease along a bus's sequences, so the lowest
         * floor bounds every event after the lowest cursor: the read skips
         * the partitions of earlier expiries. */
        st = eb_store_events_tail(db, bus_id, from, floor_us, READ_PAGE, &evs, &n);
        if (st) {
            pthread_mutex_lock(&d->mu);
            if ((b = eb_dispatch_find_bus_locked(d, bus_id)) != NULL)
                b->dirty = true;
            pthread_mutex_unlock(&d->mu);
            return st == EB_EUNAVAIL ? EB_EUNAVAIL : EB_OK;
        }
        eb_metrics_add(EB_M_LOG_READS, 1);
        eb_metrics_add(EB_M_LOG_EVENTS_READ, n);
        if (n > 0)
            end_out_of_range(d, bus_id, evs, n);

        for (size_t i = 0; i < n; i++) {
            pthread_mutex_lock(&d->mu);
            b = eb_dispatch_find_bus_locked(d, bus_id);
            if (b) {
                offer_locked(b, &evs[i]);
                for (struct stream *s = b->streams; s; s = s->next)
                    eb_dispatch_pump_locked(s);
            }
            pthread_mutex_unlock(&d->mu);
        }
        more = n == READ_PAGE;
        for (size_t i = 0; i < n; i++)
            free(evs[i].body);
        free(evs);
        if (!more)
            return EB_OK;
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static eb_status check_grant_streams(eb_dispatch *d, eb_db *db);

/* Ends the streams whose key can no longer authenticate (UNAUTHENTICATED)
 * and those whose bus is gone (NOT_FOUND), then those opened through a
 * grant that was revoked (check_grant_streams). One query for all streams,
 * made once per CHECK_MS and never per event, so that revocation reaches
 * open streams without costing the delivery path anything. Returns
 * EB_EUNAVAIL when the database is unreachable. Called without d->mu. */
static eb_status check_streams(eb_dispatch *d, eb_db *db)
{
    int64_t *keys = NULL, *buses = NULL, *bad = NULL, *gone = NULL;
    size_t nkeys = 0, nbuses = 0, nbad = 0, ngone = 0, nuniq = 0;
    struct stream **doomed = NULL;
    size_t ndoomed = 0, nbus_ended = 0;
    eb_status st;

    pthread_mutex_lock(&d->mu);
    if (d->nstreams > 0) {
        keys = eb_calloc((size_t)d->nstreams, sizeof *keys);
        for (struct bus *b = d->buses; b; b = b->next) {
            buses = eb_realloc(buses, (nbuses + 1) * sizeof *buses);
            buses[nbuses++] = b->id;
            for (struct stream *s = b->streams; s && nkeys < (size_t)d->nstreams; s = s->next)
                keys[nkeys++] = s->key_id;
        }
    }
    pthread_mutex_unlock(&d->mu);
    if (nbuses == 0) {
        free(keys);
        return EB_OK;
    }
    qsort(keys, nkeys, sizeof *keys, cmp_i64);
    for (size_t i = 0; i < nkeys; i++)
        if (nuniq == 0 || keys[nuniq - 1] != keys[i])
            keys[nuniq++] = keys[i];
    st = eb_store_streams_check(db, keys, nuniq, buses, nbuses, &bad, &nbad, &gone, &ngone);
    free(keys);
    free(buses);
    if (st)
        return st == EB_EUNAVAIL ? EB_EUNAVAIL : EB_OK;
    qsort(bad, nbad, sizeof *bad, cmp_i64);

    pthread_mutex_lock(&d->mu);
    if (nbad > 0) {
        /* Collected first: ending a stream unlinks it, and may free its bus. */
        doomed = eb_calloc((size_t)d->nstreams + 1, sizeof *doomed);
        for (struct bus *b = d->buses; b; b = b->next)
            for (struct stream *s = b->streams; s; s = s->next)
                if (bsearch(&s->key_id, bad, nbad, sizeof *bad, cmp_i64))
                    doomed[ndoomed++] = s;
        for (size_t i = 0; i < ndoomed; i++)
            eb_dispatch_end_locked(d, doomed[i], EB_EUNAUTH, "authorization: invalid API key");
    }
    /* After the keys: a deleted tenant's streams lost their key and their
     * bus at once, and for them the key is what matters. */
    for (size_t i = 0; i < ngone; i++) {
        struct bus *b;
        /* The last stream's end frees the bus. */
        while ((b = eb_dispatch_find_bus_locked(d, gone[i])) != NULL) {
            eb_dispatch_end_locked(d, b->streams, EB_ENOTFOUND, "bus: the bus was deleted");
            nbus_ended++;
        }
    }
    pthread_mutex_unlock(&d->mu);
    if (ndoomed || nbus_ended)
        eb_log_info("msg=\"streams ended by the periodic check\" key_invalid=%zu bus_gone=%zu",
                    ndoomed, nbus_ended);
    free(doomed);
    free(bad);
    free(gone);
    return check_grant_streams(d, db);
}

/* Ends with PERMISSION_DENIED the streams opened on another tenant's bus
 * through a SUBSCRIBE grant that is gone. A second query, made only while
 * such streams are open. Called without d->mu. */
static eb_status check_grant_streams(eb_dispatch *d, eb_db *db)
{
    int64_t *grantees = NULL, *buses = NULL;
    bool *present = NULL;
    struct stream **doomed = NULL;
    size_t n = 0, ndoomed = 0;
    eb_status st;

    pthread_mutex_lock(&d->mu);
    for (struct bus *b = d->buses; b; b = b->next)
        for (struct stream *s = b->streams; s; s = s->next)
            if (s->grantee_id) {
                grantees = eb_realloc(grantees, (n + 1) * sizeof *grantees);
                buses = eb_realloc(buses, (n + 1) * sizeof *buses);
                grantees[n] = s->grantee_id;
                buses[n++] = b->id;
            }
    pthread_mutex_unlock(&d->mu);
    if (n == 0)
        return EB_OK;
    present = eb_calloc(n, sizeof *present);
    st = eb_store_grants_check(db, grantees, buses, n, EB_PERMISSION_SUBSCRIBE, present);
    if (st == EB_OK) {
        pthread_mutex_lock(&d->mu);
        /* Collected first: ending a stream unlinks it. Streams opened
         * meanwhile are not in the answer and wait for the next check. */
        doomed = eb_calloc((size_t)d->nstreams + 1, sizeof *doomed);
        for (struct bus *b = d->buses; b; b = b->next)
            for (struct stream *s = b->streams; s; s = s->next) {
                if (!s->grantee_id || s->closed)
                    continue;
                for (size_t i = 0; i < n; i++)
                    if (!present[i] && grantees[i] == s->grantee_id && buses[i] == b->id) {
                        doomed[ndoomed++] = s;
                        break;
                    }
            }
        for (size_t i = 0; i < ndoomed; i++)
            eb_dispatch_end_locked(d, doomed[i], EB_EPERM,
                                   "bus: the grant this stream was opened through was revoked");
        pthread_mutex_unlock(&d->mu);
        if (ndoomed)
            eb_log_info("msg=\"streams ended by the periodic check\" grant_revoked=%zu",
                        ndoomed);
    }
    free(doomed);
    free(present);
    free(grantees);
    free(buses);
    return st == EB_EUNAVAIL ? EB_EUNAVAIL : EB_OK;
}

/* A (rule, version, subscription) that open streams follow, how many of
 * them, and what check_rules learned about it. */
struct follow {
    int64_t rule_id;
    int64_t version;
    char *subscription;
    size_t nstreams;
    const struct eb_rule_state *state; /* NULL: unchanged */
    eb_pattern **pats;                 /* the new pattern, one copy per stream */
    size_t npats, used;
    bool bad;                          /* the new pattern does not compile here */
};

static int cmp_follow(const void *a, const void *b)
{
    const struct follow *x = a, *y = b;

    if (x->rule_id != y->rule_id)
        return x->rule_id < y->rule_id ? -1 : 1;
    if (x->version != y->version)
        return x->version < y->version ? -1 : 1;
    return strcmp(x->subscription, y->subscription);
}

/* Moves the streams opened through a rule onto the rule's current state:
 * the streams of every bus when all is true (the periodic check), else
 * those of buses a "cebus_rules" notification named. One query for all of
 * them; new patterns are compiled outside d->mu, then swapped in and the
 * buses' matchers rebuilt under it, between two events, so that each event
 * is judged by the old pattern or by the new one. Streams whose rule is
 * gone, or no longer targets their subscription, end with NOT_FOUND.
 * Returns EB_EUNAVAIL when the database is unreachable. Called without
 * d->mu, on the delivery thread. */
static eb_status check_rules(eb_dispatch *d, eb_db *db, bool all)
{
    struct follow *fs = NULL;
    struct eb_rule_follow *keys = NULL;
    struct eb_rule_state *states = NULL;
    struct stream **doomed = NULL;
    bool *doomed_bad = NULL;
    size_t n = 0, nuniq = 0, nstates = 0, ndoomed = 0, nchanged = 0;
    eb_status st = EB_OK;

    pthread_mutex_lock(&d->mu);
    for (struct bus *b = d->buses; b; b = b->next) {
        if (!all && !b->rules_dirty)
            continue;
        b->rules_dirty = false;
        for (struct stream *s = b->streams; s; s = s->next) {
            if (!s->rule_id)
                continue;
            if (!fs)
                fs = eb_calloc((size_t)d->nstreams, sizeof *fs);
            fs[n].rule_id = s->rule_id;
            fs[n].version = s->rule_version;
            fs[n].subscription = eb_strdup(s->subscription);
            fs[n].nstreams = 1;
            n++;
        }
    }
    pthread_mutex_unlock(&d->mu);
    if (n == 0)
        return EB_OK;

    qsort(fs, n, sizeof *fs, cmp_follow);
    for (size_t i = 0; i < n; i++) {
        if (nuniq > 0 && cmp_follow(&fs[nuniq - 1], &fs[i]) == 0) {
            fs[nuniq - 1].nstreams++;
            free(fs[i].subscription);
            continue;
        }
        fs[nuniq++] = fs[i];
    }
    keys = eb_calloc(nuniq, sizeof *keys);
    for (size_t i = 0; i < nuniq; i++) {
        keys[i].rule_id = fs[i].rule_id;
        keys[i].subscription = fs[i].subscription;
        keys[i].version = fs[i].version;
    }
    st = eb_store_rules_changed(db, keys, nuniq, &states, &nstates);
    if (st)
        goto out;
    if (nstates == 0)
        goto out;

    /* Compiled here, without the lock: a pattern of 8 KiB takes a while,
     * and delivery to every stream waits for the lock. */
    for (size_t i = 0; i < nstates; i++) {
        struct follow *f = &fs[states[i].index];
        char err[256];

        f->state = &states[i];
        if (states[i].gone)
            continue;
        f->pats = eb_calloc(f->nstreams, sizeof *f->pats);
        for (; f->npats < f->nstreams; f->npats++) {
            if (eb_pattern_compile(states[i].pattern, strlen(states[i].pattern),
                                   &f->pats[f->npats], err, sizeof err) != EB_OK) {
                /* Only when replicas of different versions disagree on
                 * what compiles: the stream cannot follow its rule. */
                eb_log_error("msg=\"a rule's new pattern does not compile\" rule_id=%lld",
                             (long long)f->rule_id);
                f->bad = true;
                break;
            }
        }
    }

    pthread_mutex_lock(&d->mu);
    doomed = eb_calloc((size_t)d->nstreams + 1, sizeof *doomed);
    doomed_bad = eb_calloc((size_t)d->nstreams + 1, sizeof *doomed_bad);
    for (struct bus *b = d->buses; b; b = b->next) {
        for (struct stream *s = b->streams; s; s = s->next) {
            struct follow key = {.rule_id = s->rule_id, .version = s->rule_version,
                                 .subscription = s->subscription};
            struct follow *f;

            if (!s->rule_id || s->closed)
                continue;
            f = bsearch(&key, fs, nuniq, sizeof *fs, cmp_follow);
            if (!f || !f->state)
                continue;
            if (f->state->gone || f->bad || f->used == f->npats) {
                /* A stream opened since the collection, at the same old
                 * version, has no copy of the new pattern: check again. */
                if (f->state->gone || f->bad) {
                    doomed_bad[ndoomed] = f->bad;
                    doomed[ndoomed++] = s;
                } else {
                    b->rules_dirty = true;
                }
                continue;
            }
            eb_pattern_free(s->pattern);
            s->pattern = f->pats[f->used++];
            s->rule_version = f->state->version;
            s->rule_disabled = !f->state->enabled;
            b->matcher_stale = true;
            nchanged++;
        }
    }
    /* Collected first: ending a stream unlinks it, and may free its bus. */
    for (size_t i = 0; i < ndoomed; i++)
        eb_dispatch_end_locked(d, doomed[i], doomed_bad[i] ? EB_EPRECOND : EB_ENOTFOUND,
                               doomed_bad[i]
                                   ? "subscription: the rule's new pattern cannot be used by "
                                     "this server; reconnect to another"
                                   : "subscription: its rule was deleted or no longer targets "
                                     "this subscription");
    /* Rebuilt now rather than on the next event: the swap takes effect
     * between two events either way. */
    for (struct bus *b = d->buses; b; b = b->next) {
        if (b->matcher_stale)
            matcher_refresh_locked(b);
        eb_durable_rules_changed_locked(b);
    }
    pthread_mutex_unlock(&d->mu);
    if (nchanged || ndoomed)
        eb_log_info("msg=\"rule streams updated\" changed=%zu ended=%zu", nchanged, ndoomed);
out:
    for (size_t i = 0; i < nuniq; i++) {
        for (size_t k = fs[i].used; k < fs[i].npats; k++)
            eb_pattern_free(fs[i].pats[k]);
        free(fs[i].pats);
        free(fs[i].subscription);
    }
    for (size_t i = 0; i < nstates; i++)
        free(states[i].pattern);
    free(states);
    free(keys);
    free(fs);
    free(doomed);
    free(doomed_bad);
    return st == EB_EUNAVAIL ? EB_EUNAVAIL : EB_OK;
}

static void *dispatch_main(void *arg)
{
    eb_dispatch *d = arg;
    eb_db *db = NULL;
    int64_t last_catchup = eb_now_mono_us(), last_check = last_catchup;
    bool periodic = false;

    for (;;) {
        struct pollfd fds[2];
        int nfds = 1, timeout = d->catchup_ms;
        int64_t *ids = NULL;
        size_t nids = 0;
        bool stopping, all;

        if (!db) {
            if (eb_db_connect(d->url, &db) != EB_OK || eb_store_listen(db) != EB_OK ||
                eb_store_listen_subs(db) != EB_OK) {
                eb_db_close(db);
                db = NULL;
                timeout = RETRY_MS;
            } else {
                /* Notifications sent while there was no LISTEN are lost:
                 * read every active bus now rather than at the next
                 * catch-up, and recount every durable stream's leases. */
                pthread_mutex_lock(&d->mu);
                for (struct bus *b = d->buses; b; b = b->next)
                    b->dirty = true;
                eb_durable_reconnected_locked(d);
                pthread_mutex_unlock(&d->mu);
            }
        }
        /* Notifications that libpq read along with serve_bus()'s results
         * wait inside libpq, and the socket will not wake poll() for them:
         * take them now, and do not sleep when a bus is due. */
        if (db) {
            bool due = false;
            pthread_mutex_lock(&d->mu);
            if (eb_store_drain_notifications(db, on_notify, d) != EB_OK) {
                eb_db_close(db);
                db = NULL;
            }
            for (struct bus *b = d->buses; b && !due; b = b->next)
                due = b->dirty || b->rules_dirty || eb_durable_due_locked(b);
            timeout = eb_durable_timeout_locked(d, timeout);
            pthread_mutex_unlock(&d->mu);
            if (due)
                timeout = 0;
        }
        {
            int64_t until_check = CHECK_MS - (eb_now_mono_us() - last_check) / 1000;
            if (until_check < timeout)
                timeout = until_check > 0 ? (int)until_check : 0;
        }
        fds[0].fd = d->wakefd;
        fds[0].events = POLLIN;
        if (db) {
            fds[1].fd = eb_db_socket(db);
            fds[1].events = POLLIN;
            nfds = 2;
        }
        if (poll(fds, (nfds_t)nfds, timeout) < 0 && errno != EINTR)
            eb_log_error("msg=\"poll failed\" errno=%d", errno);
        if (fds[0].revents & POLLIN) {
            uint64_t v;
            ssize_t r = read(d->wakefd, &v, sizeof v);
            (void)r;
        }

        all = eb_now_mono_us() - last_catchup >= (int64_t)d->catchup_ms * 1000;
        if (all)
            last_catchup = eb_now_mono_us();

        pthread_mutex_lock(&d->mu);
        stopping = d->stopping;
        if (db && nfds == 2 && (fds[1].revents & POLLIN) &&
            eb_store_drain_notifications(db, on_notify, d) != EB_OK) {
            eb_db_close(db);
            db = NULL;
        }
        (void)eb_durable_timeout_locked(d, 0); /* marks the subscriptions due */
        for (struct bus *b = d->buses; b; b = b->next) {
            if (b->dirty || all || eb_durable_due_locked(b)) {
                ids = eb_realloc(ids, (nids + 1) * sizeof *ids);
                ids[nids++] = b->id;
            }
        }
        pthread_mutex_unlock(&d->mu);
        if (stopping) {
            free(ids);
            /* The streams' leases go back at once rather than at their
             * deadlines: consumers on other replicas take them over. */
            if (db)
                eb_durable_housekeeping(d, db, false);
            break;
        }
        for (size_t i = 0; db && i < nids; i++) {
            if (serve_bus(d, db, ids[i]) == EB_EUNAVAIL ||
                eb_durable_serve_bus(d, db, ids[i], all) == EB_EUNAVAIL) {
                eb_db_close(db);
                db = NULL;
            }
        }
        free(ids);
        if (db && eb_now_mono_us() - last_check >= (int64_t)CHECK_MS * 1000) {
            last_check = eb_now_mono_us();
            periodic = true;
            if (check_streams(d, db) == EB_EUNAVAIL || check_rules(d, db, true) == EB_EUNAVAIL) {
                eb_db_close(db);
                db = NULL;
            }
        }
        if (db && eb_durable_housekeeping(d, db, periodic) == EB_EUNAVAIL) {
            eb_db_close(db);
            db = NULL;
        }
        periodic = periodic && !db;
        if (db && check_rules(d, db, false) == EB_EUNAVAIL) {
            eb_db_close(db);
            db = NULL;
        }
    }
    eb_db_close(db);
    return NULL;
}

eb_dispatch *eb_dispatch_new(const struct eb_dispatch_opts *opts)
{
    eb_dispatch *d = eb_calloc(1, sizeof *d);

    d->url = eb_strdup(opts->database_url);
    d->catchup_ms = opts->catchup_ms;
    d->max_streams = opts->max_streams;
    d->stream_ended = opts->stream_ended;
    d->stream_ended_arg = opts->stream_ended_arg;
    d->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (d->wakefd < 0) {
        eb_log_error("msg=\"eventfd failed\" errno=%d", errno);
        abort();
    }
    pthread_mutex_init(&d->mu, NULL);
    pthread_create(&d->thread, NULL, dispatch_main, d);
    return d;
}

void eb_dispatch_stop(eb_dispatch *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    if (d->stopping) {
        pthread_mutex_unlock(&d->mu);
        return;
    }
    d->stopping = true;
    while (d->buses && d->buses->streams)
        eb_dispatch_end_locked(d, d->buses->streams, EB_EUNAVAIL,
                               "server shutting down; reconnect to resume from the last sequence");
    pthread_mutex_unlock(&d->mu);
    eb_dispatch_signal(d);
    pthread_join(d->thread, NULL);
}

void eb_dispatch_free(eb_dispatch *d)
{
    if (!d)
        return;
    close(d->wakefd);
    free(d->releases); /* left when the database was down at the end */
    pthread_mutex_destroy(&d->mu);
    free(d->url);
    free(d);
}
