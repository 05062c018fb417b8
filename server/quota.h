/* Per-tenant quotas: the effective limits of a tenant (its own values over
 * the server's defaults, cached), token buckets for the PutEvents rates,
 * and the count of open Subscribe streams across servers.
 *
 * Rate quotas are shared among the live servers: each enforces rate / N,
 * N learned from a heartbeat row that every server refreshes once a second;
 * the same heartbeat publishes this server's open streams per tenant and
 * reads the others'. See docs/decisions/0013-quotas.md.
 */
#ifndef EB_QUOTA_H
#define EB_QUOTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "store.h"

/* A tenant's limits. In a stored quota, 0 means "the server's default". */
struct eb_quota_limits {
    int64_t events_per_second;
    int64_t bytes_per_second;
    int64_t burst_seconds;
    int64_t rules_per_bus;
    int64_t subscriptions;
    int64_t concurrent_streams;
};

/* Largest accepted value of each limit (README.md, Quotas). */
#define EB_QUOTA_MAX_EVENTS_PER_SECOND 10000000
#define EB_QUOTA_MAX_BYTES_PER_SECOND 4000000000
#define EB_QUOTA_MAX_BURST_SECONDS 3600
#define EB_QUOTA_MAX_RULES_PER_BUS 100000
#define EB_QUOTA_MAX_SUBSCRIPTIONS 1000000
#define EB_QUOTA_MAX_CONCURRENT_STREAMS 1000000

/* Returns the name of the first field of q above its maximum and sets *max
 * to that maximum, or returns NULL when every field is within bounds. */
const char *eb_quota_limits_invalid(const struct eb_quota_limits *q, int64_t *max);

/* Sets every 0 field of q to the field of defaults. */
void eb_quota_limits_fill(struct eb_quota_limits *q, const struct eb_quota_limits *defaults);

/* --- Token bucket (pure: the caller passes the clock) ------------------- */

/* tokens refill at rate per second up to capacity. A bucket starts full. */
struct eb_bucket {
    double tokens;
    int64_t last_us; /* when tokens was last brought up to date */
    bool started;
};

/* Brings b up to date at now_us for rate and capacity (a lowered capacity
 * clips the tokens at once). */
void eb_bucket_refill(struct eb_bucket *b, double rate, double capacity, int64_t now_us);

/* Returns 0 when b (refilled) can pay cost now, else the milliseconds
 * until it can (at least 1). A cost above capacity is payable when the
 * bucket is full, which leaves it in debt: large batches pass at the
 * long-run rate instead of never. Does not take the tokens. */
int64_t eb_bucket_wait_ms(const struct eb_bucket *b, double rate, double capacity, double cost);

/* Takes cost from b (may go below zero; see eb_bucket_wait_ms). */
void eb_bucket_take(struct eb_bucket *b, double cost);

/* --- The server's quota state -------------------------------------------- */

typedef struct eb_quota eb_quota;

/* Returns a new quota state with the server's defaults (copied); a
 * tenant's limits are cached for ttl_us. Free with eb_quota_free(). */
eb_quota *eb_quota_new(const struct eb_quota_limits *defaults, int64_t ttl_us);

/* Opens a connection to database_url, registers this server, and starts
 * the heartbeat thread (once a second: refresh the server's row, publish
 * its open streams per tenant, read the number of live servers and the
 * other servers' streams). The first heartbeat is made before returning;
 * a database that cannot be reached then is retried by the thread.
 * REQUIRES: once, before eb_quota_stop(). */
void eb_quota_start(eb_quota *q, const char *database_url);

/* Stops the thread and removes this server's row, so the others take over
 * its share of the rates at once. Safe without eb_quota_start(). */
void eb_quota_stop(eb_quota *q);

/* Frees q. REQUIRES: eb_quota_stop(). NULL is allowed. */
void eb_quota_free(eb_quota *q);

/* Forgets every cached limit, so that a SetQuota through this server
 * applies to its next call; other servers see it when their cache expires.
 * THREAD SAFETY: any thread. */
void eb_quota_invalidate(eb_quota *q);

/* Sets every 0 field of lim to this server's default. */
void eb_quota_fill_defaults(const eb_quota *q, struct eb_quota_limits *lim);

/* Sets *out to tenant_id's effective limits (defaults filled in), cached.
 * Returns EB_EUNAVAIL or EB_EINTERNAL when the database cannot be asked.
 * THREAD SAFETY: any thread; db is the caller's connection. */
eb_status eb_quota_get(eb_quota *q, eb_db *db, int64_t tenant_id, struct eb_quota_limits *out);

/* Charges a PutEvents of events events and bytes bytes to tenant_id. On
 * EB_OK the tokens are taken. EB_EEXHAUSTED when either bucket cannot pay:
 * nothing is taken, err names the quota ("events_per_second quota of 100
 * exceeded; retry after 250 ms") and *retry_ms is the wait. Other statuses:
 * the limits could not be read (err says so).
 * THREAD SAFETY: any thread; db is the caller's connection. */
eb_status eb_quota_charge_put(eb_quota *q, eb_db *db, int64_t tenant_id, int64_t events,
                              int64_t bytes, int64_t *retry_ms, char *err, size_t errlen);

/* Counts one more open stream for tenant_id when its streams on every
 * server (the others' as of their last heartbeat) stay within its
 * concurrent_streams quota; else EB_EEXHAUSTED with err naming the quota.
 * Pair each EB_OK with eb_quota_stream_release().
 * THREAD SAFETY: any thread; db is the caller's connection. */
eb_status eb_quota_stream_acquire(eb_quota *q, eb_db *db, int64_t tenant_id, char *err,
                                  size_t errlen);

/* Counts one stream of tenant_id fewer. THREAD SAFETY: any thread. */
void eb_quota_stream_release(eb_quota *q, int64_t tenant_id);

/* The number of live servers the rates are currently divided by (>= 1). */
int eb_quota_servers(eb_quota *q);

#endif
