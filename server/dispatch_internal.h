/* Internal to dispatch.c and dispatch_durable.c: the dispatcher's streams,
 * buses and durable subscriptions, and the helpers both files use. Every
 * field is guarded by eb_dispatch.mu unless its comment says otherwise.
 */
#ifndef EB_DISPATCH_INTERNAL_H
#define EB_DISPATCH_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/slice.h>

#include "dispatch.h"
#include "store.h"

/* Events read from the log per query. */
#define READ_PAGE 256
/* Reconnect delay when the database is down. */
#define RETRY_MS 500
/* How often open streams' keys and buses are checked against the database:
 * a revoked key, a disabled or deleted tenant, or a deleted bus ends its
 * streams within about this long, on every replica. Durable streams' leases
 * are recounted as often. */
#define CHECK_MS 1000
/* Bytes queued per stream, whatever its window: with 256 KiB events a
 * window of 1,000 could otherwise pin 256 MiB for one slow consumer. A
 * stream always gets at least one message. */
#define STREAM_MAX_QUEUED_BYTES (4u << 20)

/* A queued delivery: one reference to a slice that every stream receiving
 * the same event shares. */
struct outmsg {
    grpc_slice msg;
};

struct bus;
struct dsub;

/* A delivery leased to a durable stream and not yet acked, nacked or past
 * its deadline (as far as this replica knows). */
struct lease {
    int64_t seq;
    int32_t attempt;
    int64_t due_us; /* the ack deadline, on the database's clock */
};

struct stream {
    struct eb_dispatch *d;
    struct bus *bus;
    struct stream *next;   /* in bus->streams */
    eb_call *call;
    int64_t key_id;        /* the API key that opened it */
    int64_t grantee_id;    /* opened through a grant: the grantee tenant; else 0 */
    int64_t tenant_id;     /* the caller's tenant, for stream_ended */
    eb_pattern *pattern;
    /* Opened through a rule's subscription target (rule_id != 0): the rule
     * version its pattern and rule_disabled come from (check_rules). */
    int64_t rule_id;
    int64_t rule_version;
    char *subscription;
    bool rule_disabled;    /* the rule is disabled: matches nothing */
    int64_t cursor;        /* last sequence examined */
    int64_t floor_us;      /* the expiry of the event at cursor; 0: unknown */
    struct outmsg *q;      /* ring of qcap */
    size_t qhead, qlen, qcap;
    size_t qbytes;         /* bytes queued */
    bool stalled;          /* filled up since the last read; re-read on room */
    bool writing;          /* a write is outstanding */
    bool closed;           /* over: client gone or server ended it */
    bool released;         /* on_close came: no callback will follow */
    /* Takes part in the current read of its bus. A stream that had no room
     * when the read began, or ran out of room during it, must not accept
     * later events of that read: it would skip the ones it missed. It is
     * re-read from its cursor next time. */
    bool reading;
    /* Durable streams (dsub != NULL) take no part in the bus's read: their
     * subscription reads for them (dispatch_durable.c). */
    struct dsub *dsub;
    struct stream *dnext;  /* in dsub->streams */
    int64_t owner;         /* random; the leases' owner in the database */
    struct lease *leases;  /* the leases it holds, at most qcap (its N) */
    size_t nleases, leases_cap; /* the set grows with use, up to qcap */
};

/* A durable subscription with streams on this replica: one reader of its
 * bus whose cursor is the subscription's shared frontier. */
struct dsub {
    int64_t id;            /* subscriptions.id */
    struct bus *bus;
    struct dsub *next;     /* in bus->dsubs */
    struct stream *streams;
    unsigned turn;         /* round robin among the streams with room */
    int64_t frontier;      /* as the last claim left it */
    int64_t epoch;         /* as the last claim gave it; 0: no claim yet */
    int64_t floor_us;      /* the expiry of the event at frontier; 0: unknown */
    int64_t wake_us;       /* serve again at this time (database clock); 0: none */
    bool dirty;            /* serve at the next turn of the loop */
    bool recount;          /* re-read its streams' leases from the database */
    /* One matcher over the pattern of its newest stream (all of them
     * follow the same rule) and the version it was built from. */
    eb_matcher *matcher;
    eb_matcher_scratch *scratch;
    int64_t rule_version;
    bool matcher_stale;
};

struct bus {
    int64_t id;
    bool dirty;
    struct stream *streams;
    struct dsub *dsubs;
    struct bus *next;
    /* One matcher over the streams' patterns: stream slots[i] has id i. It
     * is rebuilt on the next event after a stream joins or leaves
     * (matcher_stale), so slots never holds an unlinked stream when used. */
    eb_matcher *matcher;
    eb_matcher_scratch *scratch;
    struct stream **slots;
    unsigned char *hit; /* per slot: matches the event being offered */
    size_t nslots;
    bool matcher_stale;
    bool rules_dirty; /* a rule of the bus changed: check its rule streams */
};

struct eb_dispatch {
    char *url;
    int catchup_ms;
    int max_streams;
    void (*stream_ended)(void *arg, int64_t tenant_id);
    void *stream_ended_arg;
    int wakefd;
    pthread_t thread;

    pthread_mutex_t mu; /* everything below; taken before any call's lock */
    bool stopping;
    int nstreams;
    struct bus *buses;
    /* Owners of durable streams that ended: their leases are released by
     * the delivery thread, after any claim it made for them. */
    int64_t *releases;
    size_t nreleases;
};

/* --- dispatch.c --------------------------------------------------------- */

/* Wakes the delivery thread. Any thread, with or without d->mu. */
void eb_dispatch_signal(eb_dispatch *d);

/* Ends s with a final status (see dispatch.c). REQUIRES: d->mu. */
void eb_dispatch_end_locked(eb_dispatch *d, struct stream *s, eb_status st, const char *msg);

/* Starts the next write of s when none is outstanding. REQUIRES: d->mu. */
void eb_dispatch_pump_locked(struct stream *s);

/* Returns the bus of that id, or NULL. REQUIRES: d->mu. */
struct bus *eb_dispatch_find_bus_locked(eb_dispatch *d, int64_t id);

/* --- dispatch_durable.c -------------------------------------------------- */

/* Joins the new durable stream s to subscription sub_id of its bus (made
 * when it is the first), whose frontier the Subscribe call read.
 * REQUIRES: d->mu; s->bus set. */
void eb_durable_join_locked(struct stream *s, int64_t sub_id, int64_t frontier);

/* Takes the ending durable stream s out of its subscription (freed with its
 * last stream) and queues its leases for release. REQUIRES: d->mu. */
void eb_durable_leave_locked(eb_dispatch *d, struct stream *s);

/* Frees what a durable stream owns beyond a plain stream's. */
void eb_durable_stream_free(struct stream *s);

/* Marks the subscriptions of b to be served (new events), or one
 * subscription for a "cebus_subs" notification (recount). REQUIRES: d->mu. */
void eb_durable_bus_dirty_locked(struct bus *b);
void eb_durable_notified_locked(eb_dispatch *d, int64_t sub_id);

/* After check_rules() swapped the patterns of b's streams: rebuilds the
 * matchers of its subscriptions from the new patterns. REQUIRES: d->mu. */
void eb_durable_rules_changed_locked(struct bus *b);

/* Serves every subscription of bus bus_id that is due (all: every one):
 * claims for its streams with room and delivers what the claim leased.
 * Returns EB_EUNAVAIL when the database is unreachable. Called without
 * d->mu, on the delivery thread. */
eb_status eb_durable_serve_bus(eb_dispatch *d, eb_db *db, int64_t bus_id, bool all);

/* After the delivery thread's connection was made again: every
 * subscription is served and recounted (notifications were lost).
 * REQUIRES: d->mu. */
void eb_durable_reconnected_locked(eb_dispatch *d);

/* Releases the leases of streams that ended, and recounts the leases of the
 * streams of subscriptions marked for it (a notification, a reconnection)
 * and, when periodic (once per CHECK_MS), of every stream whose set is
 * full: the safety net for lost notifications, where a stale set would
 * stop a stream; a stream with room still gets deliveries, and a lease
 * leaves its set at its deadline anyway. Returns EB_EUNAVAIL when the
 * database is unreachable. Called without d->mu, on the delivery thread. */
eb_status eb_durable_housekeeping(eb_dispatch *d, eb_db *db, bool periodic);

/* Milliseconds until the earliest subscription timer, at most cap, at least
 * 0; marks the subscriptions whose time has come dirty. REQUIRES: d->mu. */
int eb_durable_timeout_locked(eb_dispatch *d, int cap);

/* Whether some subscription is marked to be served. REQUIRES: d->mu. */
bool eb_durable_due_locked(const struct bus *b);

#endif
