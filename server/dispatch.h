/* Delivery to Subscribe streams: one thread reads each active bus's log
 * once per wake-up, matches every event once per stream pattern, and feeds
 * per-stream bounded queues written one message at a time.
 *
 * Wake-ups come from local commits (eb_dispatch_wake), from PostgreSQL
 * NOTIFY (other replicas), and from a catch-up timer that covers lost
 * notifications. A stream whose queue is full stops being fed; its events
 * wait in the log, so memory per stream is bounded by its queue.
 *
 * Once a second, in one query, the thread also asks the database which open
 * streams' keys no longer authenticate and which of their buses are gone,
 * and ends those streams (UNAUTHENTICATED, NOT_FOUND): revocation reaches
 * open streams on every replica without a cost per event.
 *
 * A stream opened through a rule's subscription target follows the rule:
 * when a "cebus_rules" notification names its bus, and once a second in
 * any case, the thread asks which followed rules changed and, between two
 * events, gives their streams the new pattern, stops or resumes them as the
 * rule is disabled or enabled, or ends them (NOT_FOUND) when the rule is
 * deleted or no longer targets the subscription.
 *
 * A durable stream (a subscription opened without a start position,
 * docs/decisions/0014) takes no part in its bus's read: its subscription,
 * one reader per subscription on this replica whatever its streams, reads
 * the bus from the subscription's shared frontier, matches each event once,
 * claims leases in the database for its streams with room (round robin) and
 * delivers them with ack ids. Each durable stream holds at most N leases
 * (its max_in_flight); acks, nacks, deadlines and recounts (on "cebus_subs"
 * notifications and every second) free its places.
 */
#ifndef EB_DISPATCH_H
#define EB_DISPATCH_H

#include <stdint.h>

#include "grpc_server.h"
#include "pattern.h"
#include "status.h"

typedef struct eb_dispatch eb_dispatch;

struct eb_dispatch_opts {
    const char *database_url;
    int catchup_ms;
    int max_streams;
    /* Called once for each stream that eb_dispatch_add() took, when it
     * ends, with its tenant_id (quotas count open streams); may be NULL.
     * Runs with the dispatcher's lock held: it must not call back into the
     * dispatcher. */
    void (*stream_ended)(void *arg, int64_t tenant_id);
    void *stream_ended_arg;
};

/* Starts the delivery thread. Free with eb_dispatch_stop() then
 * eb_dispatch_free(). */
eb_dispatch *eb_dispatch_new(const struct eb_dispatch_opts *opts);

/* The rule a stream was opened through, as the Subscribe call read it. */
struct eb_dispatch_rule {
    int64_t id;
    int64_t version;
    const char *subscription; /* the target's name; copied */
    bool enabled;
    /* Durable streams: the subscription's id and its frontier as the call
     * read it (sub_id 0: not durable). */
    int64_t sub_id;
    int64_t frontier;
};

/* Adds a stream on bus_id that delivers matching events with sequence >
 * after_seq. key_id is the API key that opened it: about once a second the
 * delivery thread ends streams whose key no longer authenticates (revoked,
 * expired, tenant disabled or deleted) with UNAUTHENTICATED, and those whose
 * bus was deleted with NOT_FOUND. grantee_id is the caller's tenant when
 * the bus is another tenant's, reached through a SUBSCRIBE grant (else 0):
 * the same check ends the stream with PERMISSION_DENIED once that grant is
 * revoked. tenant_id is the caller's tenant, handed to the stream_ended
 * option when the stream ends. rule is the rule the stream was opened through (NULL for an
 * inline pattern, which never changes): pattern is then compiled from
 * rule->version of the rule, and the stream follows later versions. With
 * rule->sub_id set the stream is durable and after_seq is not used. Takes
 * the handler's call reference and
 * ownership of pattern on success; on failure (EB_EEXHAUSTED: too many
 * streams; EB_EUNAVAIL: stopping) takes neither. */
eb_status eb_dispatch_add(eb_dispatch *d, eb_call *call, int64_t key_id, int64_t grantee_id,
                          int64_t tenant_id, int64_t bus_id,
                          int64_t after_seq, eb_pattern *pattern, int max_in_flight,
                          const struct eb_dispatch_rule *rule);

struct eb_ack_item;

/* Sets *out to a new sorted array (free()) of the lease owners of this
 * replica's durable streams and returns its length: acks of their leases
 * need no notification. THREAD SAFETY: any thread. */
size_t eb_dispatch_owners(eb_dispatch *d, int64_t **out);

/* After acks or nacks were committed: removes the applied items[0..n) from
 * the lease sets of the local streams that held them (by owner, seq and
 * attempt), so that those streams get new deliveries, and has their
 * subscriptions served. THREAD SAFETY: any thread. */
void eb_dispatch_settled(eb_dispatch *d, const struct eb_ack_item *items, size_t n);

/* Tells the delivery thread that bus_id has new events. Any thread. */
void eb_dispatch_wake(eb_dispatch *d, int64_t bus_id);

/* Ends every stream with UNAVAILABLE ("reconnect") and stops the thread. */
void eb_dispatch_stop(eb_dispatch *d);

/* Frees d. REQUIRES: eb_dispatch_stop() and every call released (the gRPC
 * server freed), so no callback can still arrive. NULL is allowed. */
void eb_dispatch_free(eb_dispatch *d);

#endif
