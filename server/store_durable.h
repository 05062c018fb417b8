/* Durable subscriptions in the store (docs/decisions/0014): frontier,
 * leases, acks, dead letters and seeks, each one round trip to a PL/pgSQL
 * function of migrations/0009_durable.sql and later.
 *
 * Every function taking now_us runs "as of" that time (microseconds since
 * the epoch); 0 means the database's clock, which is what the server always
 * passes. Tests pass other values to move time without waiting.
 * Return values as in store.h.
 */
#ifndef EB_STORE_DURABLE_H
#define EB_STORE_DURABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define EB_SUB_ACK_DEADLINE_DEFAULT 30
#define EB_SUB_ACK_DEADLINE_MAX 600
#define EB_SUB_MAX_ATTEMPTS_DEFAULT 5
#define EB_SUB_MAX_ATTEMPTS_MAX 100
#define EB_SUB_MAX_OUTSTANDING_DEFAULT 10000
#define EB_SUB_MAX_OUTSTANDING_MAX 100000
/* Ack ids per Ack or Nack request, and bytes per Nack error. */
#define EB_ACK_IDS_MAX 1000
#define EB_NACK_ERROR_MAX 1024
#define EB_NACK_DELAY_MAX_MS 3600000

/* Dead-letter reasons, as stored. */
enum eb_dead_reason { EB_DEAD_MAX_ATTEMPTS = 1, EB_DEAD_MAX_AGE = 2 };

/* Fills in the defaults of s (0 fields). */
void eb_sub_settings_resolve(struct eb_sub_settings *s);

/* A subscription as a Subscribe call or an RPC finds it by name. */
struct eb_sub_rec {
    int64_t id;
    int64_t bus_id;
    int64_t frontier;
    int64_t epoch;
    int64_t outstanding;           /* claimed - acked, read without a lock */
    struct eb_sub_settings settings; /* resolved */
};

/* The subscription `name` of a bus; EB_ENOTFOUND when no target has it. */
eb_status eb_store_sub_get(eb_db *db, int64_t bus_id, const char *name, struct eb_sub_rec *out);

/* --- Claims (cebus_sub_claim) ----------------------------------------- */

struct eb_sub_claim_in {
    int64_t sub_id;
    int64_t rule_version;  /* the version the caller's pattern was built from */
    /* The caller read the bus's events in (from_seq, to_seq] and matched
     * them: seqs[0..n) are the matches, ascending, with each one's
     * partitionkey (NULL: none) and receive time. from_seq == to_seq: the
     * caller has no new events and only takes due rows. */
    int64_t from_seq, to_seq;
    const int64_t *seqs;
    const char *const *pkeys;
    const int64_t *received_us;
    size_t n;
    int64_t owner;         /* the stream that takes the leases */
    int room;              /* at most this many leases; 0: only move the frontier
                              past events that did not match, and dead-letter */
    int64_t now_us;
};

enum eb_claim_result {
    EB_CLAIM_DONE = 0,        /* leases granted (maybe none); frontier moved */
    EB_CLAIM_RULE_CHANGED = 1,/* the rule's version is not rule_version: nothing done */
    EB_CLAIM_MOVED = 2,       /* frontier != from_seq (another replica claimed, or a
                                 seek): due rows were leased, new events were not;
                                 re-read from out->frontier */
};

struct eb_sub_lease {
    int64_t seq;
    int32_t attempt;   /* 1 for the first delivery */
    int64_t due_us;    /* the lease's end: the ack deadline */
};

struct eb_sub_claim_out {
    enum eb_claim_result result;
    struct eb_sub_lease *leases; /* new array (free()), ascending seq; redeliveries too */
    size_t nleases;
    int64_t frontier;      /* after the claim */
    int64_t epoch;         /* for the ack ids of these leases */
    /* The earliest due_at of a row when it is within a second and the
     * claim left room unused; else 0 (the caller serves the subscription
     * again within a second, or when its stream gets room). */
    int64_t next_due_us;
    int dead;              /* rows moved to dead letters by this claim */
};

/* One claim, in one transaction committed asynchronously (a crash may undo
 * it; at-least-once allows that): under the subscription's row lock, first
 * unblocks freed partition keys, dead-letters rows past max_attempts or
 * max_age, leases due rows (expired leases, nacked rows past their delay,
 * released rows, redriven dead letters) up to room, then, when the frontier
 * is still from_seq, gives each match a row (leased to owner, or blocked
 * behind a row of the same partition key) until room or max_outstanding
 * runs out, cutting the range before the first match without a row, and
 * moves the frontier to the end of the range. Rows whose event expired are
 * deleted. One statement (cebus_sub_claim), one round trip. EB_ENOTFOUND
 * when the subscription is gone; on EB_OK free out->leases. */
eb_status eb_store_sub_claim(eb_db *db, const struct eb_sub_claim_in *in,
                             struct eb_sub_claim_out *out);

/* --- Acks and nacks ---------------------------------------------------- */

/* One decoded ack id, with the subscription it was sent for. */
struct eb_ack_item {
    int64_t sub_id;
    int64_t epoch;
    int64_t seq;
    int32_t attempt;
    bool applied;      /* out */
    int64_t owner;     /* out: the stream that held the lease (0: none) */
};

/* Acks items[0..n) (any subscriptions) in one synchronously committed
 * transaction: removes each row whose (seq, attempt) and subscription epoch
 * match, whether or not its lease has expired, counting it in sub_acked and
 * freeing its partition key. Before COMMIT, notifies "cebus_subs" with the
 * subscription id of each subscription that had an applied ack whose owner
 * is not one of local_owners[0..nlocal) (streams of this replica). */
eb_status eb_store_sub_ack(eb_db *db, struct eb_ack_item *items, size_t n,
                           const int64_t *local_owners, size_t nlocal);

/* Nacks items[0..n): each matching row is released (no owner) and due
 * again delay_ms after now, with error (may be NULL) as its last error.
 * Committed asynchronously; sets applied and owner. */
eb_status eb_store_sub_nack(eb_db *db, struct eb_ack_item *items, size_t n, int delay_ms,
                            const char *error, int64_t now_us);

/* Releases every row leased to owner (a stream that closed): due now, for
 * any consumer. Committed asynchronously. */
eb_status eb_store_sub_release(eb_db *db, int64_t owner, int64_t now_us);

/* A lease as the database holds it, for recounting streams' sets. */
struct eb_sub_held {
    int64_t owner;
    int64_t seq;
    int32_t attempt;
    int64_t due_us;
};

/* The rows leased to owners[0..n) whose lease has not ended, by owner then
 * seq. *out is a new array (free()). */
eb_status eb_store_sub_held(eb_db *db, const int64_t *owners, size_t n, int64_t now_us,
                            struct eb_sub_held **out, size_t *nout);

/* Reads the events of a bus with these sequences (redeliveries), leaving
 * out expired ones, in ascending order. *out as eb_store_events_read(). */
eb_status eb_store_events_read_seqs(eb_db *db, int64_t bus_id, const int64_t *seqs, size_t n,
                                    struct eb_event_rec **out, size_t *nout);

/* LISTENs on "cebus_subs" too (acks for other replicas' leases, seeks). */
eb_status eb_store_listen_subs(eb_db *db);

/* --- Seek ------------------------------------------------------------- */

enum eb_seek_to { EB_SEEK_LATEST = 1, EB_SEEK_EARLIEST = 2, EB_SEEK_SEQUENCE = 3,
                  EB_SEEK_TIME = 4 };

/* Moves the subscription (synchronous commit): deletes its outstanding
 * rows, sets the frontier to just before the target (a sequence; the first
 * event received at or after time_us; the oldest retained; the head), a
 * new epoch, and notifies "cebus_subs". EB_ERANGE with *oldest set when
 * the target sequence is below the oldest retained one. Sets *next_seq to
 * the first sequence examined next. */
eb_status eb_store_sub_seek(eb_db *db, int64_t sub_id, enum eb_seek_to to, int64_t seq,
                            int64_t time_us, int64_t now_us, int64_t *next_seq,
                            int64_t *oldest);

/* --- Dead letters ------------------------------------------------------ */

struct eb_dead_rec {
    int64_t seq;
    int reason;          /* enum eb_dead_reason */
    char *last_error;    /* owned; NULL: none */
    int32_t attempts;
    int64_t created_us;
    uint8_t *body;       /* owned; NULL when the event has expired */
    size_t body_len;
};

/* Frees what v[0..n) own, then v. */
void eb_dead_recs_free(struct eb_dead_rec *v, size_t n);

/* Bodies of one page of dead letters, at most (plus the one that crosses it). */
#define EB_DEAD_PAGE_BYTES (1024 * 1024)

/* Up to limit dead letters of a subscription with seq > after_seq, by seq,
 * with their events. Stops early, after at least one, once the bodies read
 * reach EB_DEAD_PAGE_BYTES, so that a page of large events stays small.
 * *out is a new array (eb_dead_recs_free()). */
eb_status eb_store_dead_list(eb_db *db, int64_t sub_id, int64_t after_seq, int limit,
                             struct eb_dead_rec **out, size_t *n);

/* Selects dead letters of a subscription: seqs[0..nseqs) when nseqs > 0,
 * reason when > 0; otherwise all. */
struct eb_dead_filter {
    const int64_t *seqs;
    size_t nseqs;
    int reason;
};

/* Marks the selected dead letters for redrive (synchronous commit): the
 * next claims move them back to sub_pending. Sets *count. */
eb_status eb_store_dead_redrive(eb_db *db, int64_t sub_id, const struct eb_dead_filter *f,
                                int64_t *count);
/* Deletes the selected dead letters. Sets *count. */
eb_status eb_store_dead_purge(eb_db *db, int64_t sub_id, const struct eb_dead_filter *f,
                              int64_t *count);

/* Maintenance, once a minute: dead-letters due rows past max_attempts or
 * max_age for every subscription (those nobody claims too), and deletes
 * dead letters whose event has expired. Sets *dead and *expired. */
eb_status eb_store_sub_sweep(eb_db *db, int64_t now_us, int64_t *dead, int64_t *expired);

#endif
