/* Durable streams (docs/decisions/0014): each subscription with streams on
 * this replica reads its bus from the subscription's shared frontier,
 * matches each event once with its rule's pattern, and claims leases in the
 * database (eb_store_sub_claim()) for one of its streams with room at a
 * time, round robin; the claim decides, under the subscription's row lock,
 * what this replica may deliver, so streams on several replicas never hold
 * one event at once. Everything here runs on the delivery thread, except
 * eb_dispatch_owners() and eb_dispatch_settled(), which any thread calls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ackid.h"
#include "cloudevents.pb-c.h"
#include "dispatch_internal.h"
#include "log.h"
#include "metrics.h"
#include "store_durable.h"
#include "util.h"

/* Claims one subscription makes in a row before the others get a turn. */
#define MAX_ROUNDS 16
/* A subscription whose next deadline has come is served again no sooner
 * than this after its last claim: a row an ack holds is skipped by claims
 * (SKIP LOCKED) and would otherwise be retried in a loop. */
#define MIN_WAKE_US 10000
/* Longest partitionkey the claim keys on; longer values are cut (two keys
 * equal in their first this many bytes are then serialized together,
 * which never reorders anything). */
#define PARTITION_KEY_MAX 1024

static struct dsub *find_dsub_locked(eb_dispatch *d, int64_t bus_id, int64_t sub_id)
{
    struct bus *b = eb_dispatch_find_bus_locked(d, bus_id);

    for (struct dsub *ds = b ? b->dsubs : NULL; ds; ds = ds->next)
        if (ds->id == sub_id)
            return ds;
    return NULL;
}

void eb_durable_join_locked(struct stream *s, int64_t sub_id, int64_t frontier)
{
    struct bus *b = s->bus;
    struct dsub *ds;

    for (ds = b->dsubs; ds; ds = ds->next)
        if (ds->id == sub_id)
            break;
    if (!ds) {
        ds = eb_calloc(1, sizeof *ds);
        ds->id = sub_id;
        ds->bus = b;
        ds->frontier = frontier;
        ds->next = b->dsubs;
        b->dsubs = ds;
    }
    do {
        eb_random_bytes(&s->owner, sizeof s->owner);
        s->owner &= INT64_MAX;
    } while (s->owner == 0);
    s->dsub = ds;
    s->dnext = ds->streams;
    ds->streams = s;
    ds->matcher_stale = true; /* it may follow a newer version of the rule */
    ds->dirty = true;
}

static void dsub_free(struct dsub *ds)
{
    eb_matcher_scratch_free(ds->scratch);
    eb_matcher_free(ds->matcher);
    free(ds);
}

void eb_durable_leave_locked(eb_dispatch *d, struct stream *s)
{
    struct dsub *ds = s->dsub;
    struct stream **pp;

    for (pp = &ds->streams; *pp; pp = &(*pp)->dnext)
        if (*pp == s) {
            *pp = s->dnext;
            break;
        }
    s->dsub = NULL;
    eb_metrics_gauge_add(EB_G_SUB_IN_FLIGHT, -(int64_t)s->nleases);
    s->nleases = 0;
    d->releases = eb_realloc(d->releases, (d->nreleases + 1) * sizeof *d->releases);
    d->releases[d->nreleases++] = s->owner;
    eb_dispatch_signal(d); /* released at once: another consumer takes them */
    ds->matcher_stale = true; /* its matcher may hold s's pattern */
    if (!ds->streams) {
        struct dsub **dp;
        for (dp = &ds->bus->dsubs; *dp; dp = &(*dp)->next)
            if (*dp == ds) {
                *dp = ds->next;
                break;
            }
        dsub_free(ds);
    }
}

void eb_durable_stream_free(struct stream *s)
{
    free(s->leases);
}

/* Makes room in s's set for one more lease, up to its N: the set grows
 * with use, so that an idle stream costs little. REQUIRES: d->mu;
 * s->nleases < s->qcap. */
static void reserve_lease_locked(struct stream *s)
{
    size_t cap;

    if (s->nleases < s->leases_cap)
        return;
    cap = s->leases_cap ? s->leases_cap * 2 : 16;
    if (cap > s->qcap)
        cap = s->qcap;
    s->leases = eb_realloc(s->leases, cap * sizeof *s->leases);
    s->leases_cap = cap;
}

void eb_durable_bus_dirty_locked(struct bus *b)
{
    for (struct dsub *ds = b->dsubs; ds; ds = ds->next)
        ds->dirty = true;
}

void eb_durable_notified_locked(eb_dispatch *d, int64_t sub_id)
{
    for (struct bus *b = d->buses; b; b = b->next)
        for (struct dsub *ds = b->dsubs; ds; ds = ds->next)
            if (ds->id == sub_id) {
                ds->recount = true;
                ds->dirty = true;
            }
}

/* The stream of ds that follows the newest version of the rule. */
static struct stream *newest_locked(const struct dsub *ds)
{
    struct stream *best = ds->streams;

    for (struct stream *s = ds->streams; s; s = s->dnext)
        if (s->rule_version > best->rule_version)
            best = s;
    return best;
}

void eb_durable_rules_changed_locked(struct bus *b)
{
    for (struct dsub *ds = b->dsubs; ds; ds = ds->next) {
        struct stream *s = newest_locked(ds);
        if (s && s->rule_version != ds->rule_version) {
            ds->matcher_stale = true;
            ds->dirty = true;
        }
    }
}

/* Rebuilds ds's matcher from its newest stream's pattern when stale. A
 * disabled rule matches nothing, so the frontier moves without rows.
 * REQUIRES: d->mu. */
static void matcher_refresh_locked(struct dsub *ds)
{
    struct stream *s;

    if (ds->matcher && !ds->matcher_stale)
        return;
    eb_matcher_scratch_free(ds->scratch);
    eb_matcher_free(ds->matcher);
    s = newest_locked(ds);
    ds->matcher = eb_matcher_new();
    if (!s->rule_disabled)
        eb_matcher_add(ds->matcher, s->pattern, 0);
    eb_matcher_build(ds->matcher);
    ds->scratch = eb_matcher_scratch_new(ds->matcher);
    ds->rule_version = s->rule_version;
    ds->matcher_stale = false;
}

bool eb_durable_due_locked(const struct bus *b)
{
    for (const struct dsub *ds = b->dsubs; ds; ds = ds->next)
        if (ds->dirty)
            return true;
    return false;
}

int eb_durable_timeout_locked(eb_dispatch *d, int cap)
{
    int64_t now = eb_now_wall_us();

    for (struct bus *b = d->buses; b; b = b->next)
        for (struct dsub *ds = b->dsubs; ds; ds = ds->next) {
            if (!ds->wake_us)
                continue;
            if (ds->wake_us <= now) {
                ds->wake_us = 0;
                ds->dirty = true;
                cap = 0;
            } else if ((ds->wake_us - now) / 1000 + 1 < cap) {
                cap = (int)((ds->wake_us - now) / 1000 + 1);
            }
        }
    return cap < 0 ? 0 : cap;
}

/* Drops the leases of s whose deadline passed (the database leases them
 * again, to whichever stream claims first) and returns the earliest
 * deadline left (0: none). REQUIRES: d->mu. */
static int64_t prune_locked(struct stream *s, int64_t now)
{
    int64_t earliest = 0;

    for (size_t i = 0; i < s->nleases;) {
        if (s->leases[i].due_us <= now) {
            s->leases[i] = s->leases[--s->nleases];
            eb_metrics_gauge_add(EB_G_SUB_IN_FLIGHT, -1);
            continue;
        }
        if (!earliest || s->leases[i].due_us < earliest)
            earliest = s->leases[i].due_us;
        i++;
    }
    return earliest;
}

/* How many more deliveries s may take: its N less the leases it holds,
 * bounded by its queue's places and bytes. REQUIRES: d->mu. */
static int room_locked(struct stream *s)
{
    size_t lease_room = s->qcap - s->nleases, queue_room = s->qcap - s->qlen;

    if (s->closed)
        return 0;
    if (s->qlen > 0 && s->qbytes >= STREAM_MAX_QUEUED_BYTES) {
        s->stalled = true; /* its next completed write serves ds again */
        return 0;
    }
    return (int)(lease_room < queue_room ? lease_room : queue_room);
}

/* Picks the next stream of ds with room, round robin, and sets *room.
 * Returns NULL when none has any; ds->wake_us is then the earliest
 * deadline among their leases. REQUIRES: d->mu. */
static struct stream *pick_locked(struct dsub *ds, int *room)
{
    int64_t now = eb_now_wall_us(), earliest = 0;
    size_t n = 0;
    struct stream *s;

    for (s = ds->streams; s; s = s->dnext)
        n++;
    if (n == 0)
        return NULL;
    s = ds->streams;
    for (size_t i = ds->turn++ % n; i > 0; i--)
        s = s->dnext;
    for (size_t k = 0; k < n; k++, s = s->dnext ? s->dnext : ds->streams) {
        int64_t e = prune_locked(s, now);
        if (e && (!earliest || e < earliest))
            earliest = e;
        *room = room_locked(s);
        if (*room > 0)
            return s;
    }
    ds->wake_us = earliest;
    return NULL;
}

static size_t put_varint(uint8_t *buf, uint64_t v)
{
    size_t n = 0;

    for (; v >= 0x80; v >>= 7)
        buf[n++] = (uint8_t)(v | 0x80);
    buf[n++] = (uint8_t)v;
    return n;
}

/* Encodes a SubscribeResponse {sequence = 1, event = 2, ack_id = 3,
 * attempt = 4, ack_deadline = 5} around the stored event bytes. Returns a
 * slice with one reference. */
static grpc_slice encode_lease(const struct eb_event_rec *ev, const struct lease *l,
                               int64_t epoch)
{
    struct eb_ackid a = {.epoch = epoch, .seq = l->seq, .attempt = l->attempt};
    char id[EB_ACKID_LEN + 1];
    uint8_t ts[24];
    size_t tn = 0, n = 0;
    uint8_t *buf = eb_malloc(64 + EB_ACKID_LEN + sizeof ts + ev->body_len);
    grpc_slice slice;

    eb_ackid_encode(&a, id);
    ts[tn++] = 0x08; /* Timestamp.seconds */
    tn += put_varint(ts + tn, (uint64_t)(l->due_us / 1000000));
    ts[tn++] = 0x10; /* Timestamp.nanos */
    tn += put_varint(ts + tn, (uint64_t)(l->due_us % 1000000 * 1000));

    buf[n++] = 0x08;
    n += put_varint(buf + n, (uint64_t)ev->seq);
    buf[n++] = 0x12;
    n += put_varint(buf + n, ev->body_len);
    memcpy(buf + n, ev->body, ev->body_len);
    n += ev->body_len;
    buf[n++] = 0x1a;
    n += put_varint(buf + n, EB_ACKID_LEN);
    memcpy(buf + n, id, EB_ACKID_LEN);
    n += EB_ACKID_LEN;
    buf[n++] = 0x20;
    n += put_varint(buf + n, (uint64_t)l->attempt);
    buf[n++] = 0x2a;
    n += put_varint(buf + n, tn);
    memcpy(buf + n, ts, tn);
    n += tn;
    slice = grpc_slice_from_copied_buffer((const char *)buf, n);
    free(buf);
    return slice;
}

/* The event's partitionkey extension (a string), or NULL: a new string. */
static char *partition_key(const uint8_t *body, size_t len)
{
    Io__Cloudevents__V1__CloudEvent *ev;
    char *key = NULL;

    /* Most events have none: skip decoding them. */
    if (!memmem(body, len, "partitionkey", 12))
        return NULL;
    ev = io__cloudevents__v1__cloud_event__unpack(NULL, len, body);
    if (!ev)
        return NULL;
    for (size_t i = 0; i < ev->n_attributes && !key; i++) {
        const Io__Cloudevents__V1__CloudEvent__AttributesEntry *a = ev->attributes[i];
        if (a->key && strcmp(a->key, "partitionkey") == 0 && a->value &&
            a->value->attr_case ==
                IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_STRING &&
            a->value->ce_string)
            key = eb_strndup(a->value->ce_string,
                             strnlen(a->value->ce_string, PARTITION_KEY_MAX));
    }
    io__cloudevents__v1__cloud_event__free_unpacked(ev, NULL);
    return key;
}

static int cmp_event_seq(const void *key, const void *elem)
{
    int64_t k = *(const int64_t *)key, s = ((const struct eb_event_rec *)elem)->seq;
    return k < s ? -1 : k > s;
}

/* The stream of ds whose leases owner names, or NULL when it is gone (its
 * release, queued when it ended, runs after this claim and gives the
 * leases back). REQUIRES: d->mu. */
static struct stream *owner_locked(struct dsub *ds, int64_t owner)
{
    struct stream *s;

    for (s = ds ? ds->streams : NULL; s && s->owner != owner; s = s->dnext)
        ;
    return s && !s->closed ? s : NULL;
}

/* Queues the delivery of lease l with event ev on s, recording the lease
 * in its set. REQUIRES: d->mu. */
static void deliver_locked(struct stream *s, const struct lease *l,
                           const struct eb_event_rec *ev, int64_t epoch)
{
    size_t i;

    if (s->qlen == s->qcap)
        return; /* not delivered: the lease ends unused */
    for (i = 0; i < s->nleases && s->leases[i].seq != l->seq; i++)
        ;
    if (i == s->nleases) {
        if (s->nleases == s->qcap)
            return;
        reserve_lease_locked(s);
        s->nleases++;
        eb_metrics_gauge_add(EB_G_SUB_IN_FLIGHT, 1);
    }
    s->leases[i] = *l;
    s->q[(s->qhead + s->qlen) % s->qcap].msg = encode_lease(ev, l, epoch);
    s->qbytes += GRPC_SLICE_LENGTH(s->q[(s->qhead + s->qlen) % s->qcap].msg);
    s->qlen++;
    eb_metrics_add(EB_M_SUB_DELIVERIES, 1);
    eb_dispatch_pump_locked(s);
}

/* Ends the streams of subscription sub_id with OUT_OF_RANGE: the events
 * after its frontier expired unseen (0014, "Retention"). Called without
 * d->mu. */
static void end_expired(eb_dispatch *d, int64_t bus_id, int64_t sub_id, int64_t lost,
                        int64_t oldest)
{
    char msg[256];
    struct dsub *ds;
    size_t n = 0;

    snprintf(msg, sizeof msg,
             "subscription: events from %lld expired before delivery; the oldest retained "
             "sequence is %lld; Seek to continue",
             (long long)lost, (long long)oldest);
    pthread_mutex_lock(&d->mu);
    /* Each end unlinks a stream, and the last one frees ds. */
    while ((ds = find_dsub_locked(d, bus_id, sub_id)) != NULL) {
        eb_dispatch_end_locked(d, ds->streams, EB_ERANGE, msg);
        n++;
    }
    pthread_mutex_unlock(&d->mu);
    eb_log_info("msg=\"durable streams ended: events expired before delivery\" bus_id=%lld "
                "sub_id=%lld streams=%zu",
                (long long)bus_id, (long long)sub_id, n);
}

/* The subscription was moved by a Seek (its epoch changed): deliveries
 * queued and not yet sent carry ids that no longer apply, and the leases
 * they stood for are gone. Drops both. REQUIRES: d->mu. */
static void seeked_locked(struct dsub *ds)
{
    for (struct stream *s = ds->streams; s; s = s->dnext) {
        while (s->qlen) {
            s->qbytes -= GRPC_SLICE_LENGTH(s->q[s->qhead].msg);
            grpc_slice_unref(s->q[s->qhead].msg);
            s->qhead = (s->qhead + 1) % s->qcap;
            s->qlen--;
        }
        eb_metrics_gauge_add(EB_G_SUB_IN_FLIGHT, -(int64_t)s->nleases);
        s->nleases = 0;
    }
}

/* The read after frontier from began at first > from + 1. When the
 * subscription's frontier is still from (not moved by another replica or a
 * seek since this replica last claimed), the events in between expired
 * unseen: its streams end. Otherwise sets *more to read from the new
 * frontier. Returns EB_EUNAVAIL when the database is unreachable. Called
 * without d->mu. */
static eb_status check_expired(eb_dispatch *d, eb_db *db, int64_t bus_id, int64_t sub_id,
                               int64_t from, int64_t first, bool *more)
{
    struct eb_sub_rec rec;
    struct dsub *ds;
    char name[EB_NAME_MAX + 1] = "";
    eb_status st;

    pthread_mutex_lock(&d->mu);
    ds = find_dsub_locked(d, bus_id, sub_id);
    if (ds)
        snprintf(name, sizeof name, "%s", newest_locked(ds)->subscription);
    pthread_mutex_unlock(&d->mu);
    if (!ds)
        return EB_OK;
    st = eb_store_sub_get(db, bus_id, name, &rec);
    if (st == EB_OK && rec.id == sub_id && rec.frontier != from) {
        pthread_mutex_lock(&d->mu);
        if ((ds = find_dsub_locked(d, bus_id, sub_id)) != NULL && ds->frontier == from) {
            ds->frontier = rec.frontier;
            ds->floor_us = 0;
        }
        pthread_mutex_unlock(&d->mu);
        *more = true;
        return EB_OK;
    }
    if (st == EB_OK && rec.id == sub_id)
        end_expired(d, bus_id, sub_id, from + 1, first);
    /* Gone or replaced: check_rules() ends its streams. */
    return st == EB_EUNAVAIL ? EB_EUNAVAIL : EB_OK;
}

static void free_events(struct eb_event_rec *evs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(evs[i].body);
    free(evs);
}

/* The state of one claim between the read and the deliveries. */
struct round {
    struct eb_event_rec *evs;
    size_t n;
    int64_t *seqs;
    char **pkeys;
    int64_t *received;
    size_t nmatch;
    struct eb_sub_claim_out out;
};

static void round_clear(struct round *r)
{
    free_events(r->evs, r->n);
    for (size_t i = 0; i < r->nmatch; i++)
        free(r->pkeys[i]);
    free(r->pkeys);
    free(r->seqs);
    free(r->received);
    free(r->out.leases);
    memset(r, 0, sizeof *r);
}

/* Matches r's events with ds's pattern. Returns false when ds is gone.
 * Called without d->mu. */
static bool match_events(eb_dispatch *d, int64_t bus_id, int64_t sub_id, struct round *r,
                         int64_t *version)
{
    struct dsub *ds;

    r->seqs = eb_calloc(r->n ? r->n : 1, sizeof *r->seqs);
    r->pkeys = eb_calloc(r->n ? r->n : 1, sizeof *r->pkeys);
    r->received = eb_calloc(r->n ? r->n : 1, sizeof *r->received);
    pthread_mutex_lock(&d->mu);
    ds = find_dsub_locked(d, bus_id, sub_id);
    if (ds) {
        matcher_refresh_locked(ds);
        *version = ds->rule_version;
        for (size_t i = 0; i < r->n; i++) {
            const uint32_t *ids;
            size_t nids = 0;
            if (!eb_matcher_match_stored(ds->matcher, r->evs[i].body, r->evs[i].body_len,
                                         ds->scratch, &ids, &nids)) {
                eb_log_error("msg=\"undecodable stored event\" bus_id=%lld seq=%lld",
                             (long long)bus_id, (long long)r->evs[i].seq);
                continue;
            }
            if (nids == 0)
                continue;
            r->seqs[r->nmatch] = r->evs[i].seq;
            r->received[r->nmatch++] = r->evs[i].received_us;
        }
    }
    pthread_mutex_unlock(&d->mu);
    if (!ds)
        return false;
    /* Outside the lock: this decodes the matches that name a key. */
    for (size_t i = 0, k = 0; i < r->n && k < r->nmatch; i++)
        if (r->evs[i].seq == r->seqs[k])
            r->pkeys[k++] = partition_key(r->evs[i].body, r->evs[i].body_len);
    return true;
}

/* Delivers the leases of r's claim to owner's stream, in the claim's
 * (sequence) order: bodies from r's read, the others (redeliveries) read by
 * sequence first. Returns EB_EUNAVAIL when the database is unreachable.
 * Called without d->mu. */
static eb_status deliver_round(eb_dispatch *d, eb_db *db, int64_t bus_id, int64_t sub_id,
                               int64_t owner, struct round *r)
{
    int64_t *missing = eb_calloc(r->out.nleases + 1, sizeof *missing);
    struct eb_event_rec *more = NULL;
    size_t nmissing = 0, nmore = 0;
    struct stream *s;
    eb_status st = EB_OK;

    for (size_t i = 0; i < r->out.nleases; i++)
        if (!bsearch(&r->out.leases[i].seq, r->evs, r->n, sizeof *r->evs, cmp_event_seq))
            missing[nmissing++] = r->out.leases[i].seq;
    if (nmissing > 0)
        st = eb_store_events_read_seqs(db, bus_id, missing, nmissing, &more, &nmore);
    pthread_mutex_lock(&d->mu);
    s = st == EB_OK ? owner_locked(find_dsub_locked(d, bus_id, sub_id), owner) : NULL;
    for (size_t i = 0; s && i < r->out.nleases; i++) {
        const struct eb_sub_lease *sl = &r->out.leases[i];
        struct lease l = {.seq = sl->seq, .attempt = sl->attempt, .due_us = sl->due_us};
        const struct eb_event_rec *ev = bsearch(&sl->seq, r->evs, r->n, sizeof *r->evs,
                                                cmp_event_seq);
        /* An expired event is not read back: its row goes with the next
         * claims (0014), and the lease ends unused. */
        if (!ev)
            ev = bsearch(&sl->seq, more, nmore, sizeof *more, cmp_event_seq);
        if (ev)
            deliver_locked(s, &l, ev, r->out.epoch);
    }
    pthread_mutex_unlock(&d->mu);
    free_events(more, nmore);
    free(missing);
    return st == EB_EUNAVAIL ? EB_EUNAVAIL : EB_OK;
}

/* One claim of subscription sub_id for its next stream with room. Sets
 * *more when another claim may find more to do at once. Returns
 * EB_EUNAVAIL when the database is unreachable. Called without d->mu. */
static eb_status claim_once(eb_dispatch *d, eb_db *db, int64_t bus_id, int64_t sub_id,
                            bool *more)
{
    struct eb_sub_claim_in in = {.sub_id = sub_id};
    struct round r = {0};
    struct dsub *ds;
    struct stream *s;
    int64_t floor_us = 0;
    int room = 0;
    eb_status st;

    *more = false;
    pthread_mutex_lock(&d->mu);
    ds = find_dsub_locked(d, bus_id, sub_id);
    s = ds ? pick_locked(ds, &room) : NULL;
    if (ds)
        ds->dirty = false;
    if (s) {
        in.owner = s->owner;
        in.from_seq = ds->frontier;
        floor_us = ds->floor_us;
    }
    pthread_mutex_unlock(&d->mu);
    if (!s)
        return EB_OK;

    st = eb_store_events_tail(db, bus_id, in.from_seq, floor_us, READ_PAGE, &r.evs, &r.n);
    if (st)
        goto retry;
    eb_metrics_add(EB_M_LOG_READS, 1);
    eb_metrics_add(EB_M_LOG_EVENTS_READ, r.n);
    if (r.n > 0 && r.evs[0].seq > in.from_seq + 1) {
        st = check_expired(d, db, bus_id, sub_id, in.from_seq, r.evs[0].seq, more);
        round_clear(&r);
        return st;
    }
    if (!match_events(d, bus_id, sub_id, &r, &in.rule_version)) {
        round_clear(&r);
        return EB_OK;
    }
    in.to_seq = r.n ? r.evs[r.n - 1].seq : in.from_seq;
    in.seqs = r.seqs;
    in.pkeys = (const char *const *)r.pkeys;
    in.received_us = r.received;
    in.n = r.nmatch;
    in.room = room;
    st = eb_store_sub_claim(db, &in, &r.out);
    if (st)
        goto retry;
    if (r.out.result == EB_CLAIM_RULE_CHANGED) {
        /* check_rules() gives the streams the new pattern, which marks the
         * subscription to be served again. */
        struct bus *b;
        pthread_mutex_lock(&d->mu);
        if ((b = eb_dispatch_find_bus_locked(d, bus_id)) != NULL)
            b->rules_dirty = true;
        pthread_mutex_unlock(&d->mu);
        round_clear(&r);
        return EB_OK;
    }
    pthread_mutex_lock(&d->mu);
    ds = find_dsub_locked(d, bus_id, sub_id);
    if (ds) {
        const struct eb_event_rec *at = bsearch(&r.out.frontier, r.evs, r.n, sizeof *r.evs,
                                                cmp_event_seq);
        if (r.out.frontier != ds->frontier)
            ds->floor_us = at ? at->expires_us : 0;
        ds->frontier = r.out.frontier;
        if (ds->epoch && ds->epoch != r.out.epoch)
            seeked_locked(ds);
        ds->epoch = r.out.epoch;
        if (r.out.next_due_us) {
            int64_t soonest = eb_now_wall_us() + MIN_WAKE_US;
            ds->wake_us = r.out.next_due_us > soonest ? r.out.next_due_us : soonest;
        } else {
            ds->wake_us = 0;
        }
    }
    pthread_mutex_unlock(&d->mu);
    st = deliver_round(d, db, bus_id, sub_id, in.owner, &r);
    /* Again at once when another replica moved the frontier, when this
     * claim made progress and the log has more, or when the stream filled
     * up (another may have room). A claim that moved nothing (the
     * subscription is at max_outstanding) waits for an ack or a deadline,
     * or it would spin. */
    *more = r.out.result == EB_CLAIM_MOVED ||
            (r.out.frontier > in.from_seq && (r.n == READ_PAGE || r.out.frontier < in.to_seq)) ||
            (r.out.nleases > 0 && r.out.nleases == (size_t)room);
    round_clear(&r);
    return st;

retry:
    round_clear(&r);
    pthread_mutex_lock(&d->mu);
    if ((ds = find_dsub_locked(d, bus_id, sub_id)) != NULL)
        ds->wake_us = eb_now_wall_us() + (int64_t)RETRY_MS * 1000;
    pthread_mutex_unlock(&d->mu);
    return st == EB_EUNAVAIL ? EB_EUNAVAIL : EB_OK;
}

eb_status eb_durable_serve_bus(eb_dispatch *d, eb_db *db, int64_t bus_id, bool all)
{
    int64_t *ids = NULL;
    size_t n = 0;
    struct bus *b;
    eb_status st = EB_OK;

    pthread_mutex_lock(&d->mu);
    b = eb_dispatch_find_bus_locked(d, bus_id);
    for (struct dsub *ds = b ? b->dsubs : NULL; ds; ds = ds->next)
        if (ds->dirty || all) {
            ids = eb_realloc(ids, (n + 1) * sizeof *ids);
            ids[n++] = ds->id;
        }
    pthread_mutex_unlock(&d->mu);
    for (size_t i = 0; i < n && st == EB_OK; i++) {
        bool more = true;
        int round;
        for (round = 0; round < MAX_ROUNDS && more && st == EB_OK; round++)
            st = claim_once(d, db, bus_id, ids[i], &more);
        if (more && st == EB_OK) { /* the others' turn; back at the next loop */
            struct dsub *ds;
            pthread_mutex_lock(&d->mu);
            if ((ds = find_dsub_locked(d, bus_id, ids[i])) != NULL)
                ds->dirty = true;
            pthread_mutex_unlock(&d->mu);
        }
    }
    free(ids);
    return st;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The first held row of owner in held[0..n) (sorted by owner), or n. */
static size_t held_lower(const struct eb_sub_held *held, size_t n, int64_t owner)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (held[mid].owner < owner)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Replaces the lease sets of the streams whose owner is in owners[0..n)
 * (sorted) with what the database holds for them. REQUIRES: d->mu. */
static void apply_recount_locked(eb_dispatch *d, const int64_t *owners, size_t n,
                                 const struct eb_sub_held *held, size_t nheld)
{
    for (struct bus *b = d->buses; b; b = b->next)
        for (struct dsub *ds = b->dsubs; ds; ds = ds->next)
            for (struct stream *s = ds->streams; s; s = s->dnext) {
                size_t k, before = s->nleases;
                if (!bsearch(&s->owner, owners, n, sizeof *owners, cmp_i64))
                    continue;
                s->nleases = 0;
                for (k = held_lower(held, nheld, s->owner);
                     k < nheld && held[k].owner == s->owner && s->nleases < s->qcap; k++) {
                    reserve_lease_locked(s);
                    s->leases[s->nleases++] = (struct lease){
                        .seq = held[k].seq, .attempt = held[k].attempt,
                        .due_us = held[k].due_us};
                }
                eb_metrics_gauge_add(EB_G_SUB_IN_FLIGHT, (int64_t)s->nleases - (int64_t)before);
                if (s->nleases < before)
                    ds->dirty = true;
            }
}

void eb_durable_reconnected_locked(eb_dispatch *d)
{
    for (struct bus *b = d->buses; b; b = b->next)
        for (struct dsub *ds = b->dsubs; ds; ds = ds->next) {
            ds->dirty = true;
            ds->recount = true;
        }
}

eb_status eb_durable_housekeeping(eb_dispatch *d, eb_db *db, bool periodic)
{
    int64_t *releases, *owners = NULL;
    size_t nreleases, nowners = 0, nheld = 0;
    struct eb_sub_held *held = NULL;
    eb_status st = EB_OK;

    pthread_mutex_lock(&d->mu);
    releases = d->releases;
    nreleases = d->nreleases;
    d->releases = NULL;
    d->nreleases = 0;
    for (struct bus *b = d->buses; b; b = b->next)
        for (struct dsub *ds = b->dsubs; ds; ds = ds->next) {
            for (struct stream *s = ds->streams; s; s = s->dnext) {
                if (!ds->recount && !(periodic && s->nleases == s->qcap))
                    continue;
                owners = eb_realloc(owners, (nowners + 1) * sizeof *owners);
                owners[nowners++] = s->owner;
            }
            ds->recount = false;
        }
    pthread_mutex_unlock(&d->mu);

    /* A release that fails leaves the rows to their deadlines. */
    for (size_t i = 0; i < nreleases && st != EB_EUNAVAIL; i++)
        st = eb_store_sub_release(db, releases[i], 0);
    if (nowners > 0 && st != EB_EUNAVAIL) {
        qsort(owners, nowners, sizeof *owners, cmp_i64);
        st = eb_store_sub_held(db, owners, nowners, 0, &held, &nheld);
        if (st == EB_OK) {
            pthread_mutex_lock(&d->mu);
            apply_recount_locked(d, owners, nowners, held, nheld);
            pthread_mutex_unlock(&d->mu);
        }
    }
    free(held);
    free(owners);
    free(releases);
    return st == EB_EUNAVAIL ? EB_EUNAVAIL : EB_OK;
}

size_t eb_dispatch_owners(eb_dispatch *d, int64_t **out)
{
    int64_t *owners = NULL;
    size_t n = 0;

    pthread_mutex_lock(&d->mu);
    for (struct bus *b = d->buses; b; b = b->next)
        for (struct dsub *ds = b->dsubs; ds; ds = ds->next)
            for (struct stream *s = ds->streams; s; s = s->dnext) {
                owners = eb_realloc(owners, (n + 1) * sizeof *owners);
                owners[n++] = s->owner;
            }
    pthread_mutex_unlock(&d->mu);
    if (n > 1)
        qsort(owners, n, sizeof *owners, cmp_i64);
    *out = owners;
    return n;
}

struct settled {
    int64_t owner, seq;
    int32_t attempt;
};

static int cmp_settled(const void *a, const void *b)
{
    const struct settled *x = a, *y = b;
    return x->owner < y->owner ? -1 : x->owner > y->owner;
}

void eb_dispatch_settled(eb_dispatch *d, const struct eb_ack_item *items, size_t n)
{
    struct settled *v = eb_calloc(n ? n : 1, sizeof *v);
    size_t nv = 0;
    bool wake = false;

    for (size_t i = 0; i < n; i++)
        if (items[i].applied && items[i].owner)
            v[nv++] = (struct settled){items[i].owner, items[i].seq, items[i].attempt};
    if (nv == 0) {
        free(v);
        return;
    }
    qsort(v, nv, sizeof *v, cmp_settled);
    pthread_mutex_lock(&d->mu);
    for (struct bus *b = d->buses; b; b = b->next)
        for (struct dsub *ds = b->dsubs; ds; ds = ds->next)
            for (struct stream *s = ds->streams; s; s = s->dnext) {
                struct settled key = {.owner = s->owner};
                struct settled *hit = bsearch(&key, v, nv, sizeof *v, cmp_settled);
                if (!hit)
                    continue;
                while (hit > v && hit[-1].owner == s->owner)
                    hit--;
                for (; hit < v + nv && hit->owner == s->owner; hit++)
                    for (size_t k = 0; k < s->nleases; k++)
                        if (s->leases[k].seq == hit->seq &&
                            s->leases[k].attempt == hit->attempt) {
                            s->leases[k] = s->leases[--s->nleases];
                            eb_metrics_gauge_add(EB_G_SUB_IN_FLIGHT, -1);
                            break;
                        }
                ds->dirty = true;
                wake = true;
            }
    pthread_mutex_unlock(&d->mu);
    if (wake)
        eb_dispatch_signal(d);
    free(v);
}
