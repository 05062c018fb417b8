#include "quota.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "log.h"
#include "store_quota.h"
#include "util.h"

#define HEARTBEAT_MS 1000
#define STATE_BUCKETS 256
/* The limits cache holds at most this many tenants (then it is refilled). */
#define LIMITS_MAX_TENANTS 100000

/* --- Limits ---------------------------------------------------------------- */

const char *eb_quota_limits_invalid(const struct eb_quota_limits *q, int64_t *max)
{
    const struct {
        const char *name;
        int64_t v, max;
    } f[] = {
        {"events_per_second", q->events_per_second, EB_QUOTA_MAX_EVENTS_PER_SECOND},
        {"bytes_per_second", q->bytes_per_second, EB_QUOTA_MAX_BYTES_PER_SECOND},
        {"burst_seconds", q->burst_seconds, EB_QUOTA_MAX_BURST_SECONDS},
        {"rules_per_bus", q->rules_per_bus, EB_QUOTA_MAX_RULES_PER_BUS},
        {"concurrent_streams", q->concurrent_streams, EB_QUOTA_MAX_CONCURRENT_STREAMS},
        {"subscriptions", q->subscriptions, EB_QUOTA_MAX_SUBSCRIPTIONS},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v < 0 || f[i].v > f[i].max) {
            *max = f[i].max;
            return f[i].name;
        }
    return NULL;
}

void eb_quota_limits_fill(struct eb_quota_limits *q, const struct eb_quota_limits *d)
{
    if (q->events_per_second <= 0)
        q->events_per_second = d->events_per_second;
    if (q->bytes_per_second <= 0)
        q->bytes_per_second = d->bytes_per_second;
    if (q->burst_seconds <= 0)
        q->burst_seconds = d->burst_seconds;
    if (q->rules_per_bus <= 0)
        q->rules_per_bus = d->rules_per_bus;
    if (q->subscriptions <= 0)
        q->subscriptions = d->subscriptions;
    if (q->concurrent_streams <= 0)
        q->concurrent_streams = d->concurrent_streams;
}

/* --- Token bucket ------------------------------------------------------------ */

void eb_bucket_refill(struct eb_bucket *b, double rate, double capacity, int64_t now_us)
{
    if (!b->started) {
        b->started = true;
        b->tokens = capacity;
        b->last_us = now_us;
        return;
    }
    if (now_us > b->last_us) {
        b->tokens += rate * (double)(now_us - b->last_us) / 1e6;
        b->last_us = now_us;
    }
    if (b->tokens > capacity)
        b->tokens = capacity;
}

int64_t eb_bucket_wait_ms(const struct eb_bucket *b, double rate, double capacity, double cost)
{
    double need = cost < capacity ? cost : capacity;
    double ms;

    if (b->tokens >= need)
        return 0;
    if (rate <= 0)
        return INT64_MAX / 2;
    ms = ceil((need - b->tokens) * 1000.0 / rate);
    return ms < 1 ? 1 : (int64_t)ms;
}

void eb_bucket_take(struct eb_bucket *b, double cost)
{
    b->tokens -= cost;
}

/* --- Per-tenant state ---------------------------------------------------------- */

/* What this server tracks of one tenant. */
struct tenant_state {
    int64_t tenant_id;
    struct eb_bucket events, bytes;
    int64_t local_streams;  /* open here */
    int64_t remote_streams; /* open on the other live servers, as of the last heartbeat */
    int64_t last_use_us;
    int64_t burst_seconds;  /* of the last charge: an idle bucket is full after it */
    struct tenant_state *next;
};

struct eb_quota {
    struct eb_quota_limits defaults;
    eb_cache *limits; /* tenant id -> effective struct eb_quota_limits */

    pthread_mutex_t mu; /* the fields below */
    struct tenant_state *states[STATE_BUCKETS];
    int servers;

    char server_id[40];
    char *url;
    eb_db *db; /* the heartbeat thread's */
    pthread_t thread;
    bool started, stopping;
    pthread_cond_t cv;
};

static struct tenant_state *state_locked(eb_quota *q, int64_t tenant_id)
{
    size_t h = (size_t)((uint64_t)tenant_id % STATE_BUCKETS);
    struct tenant_state *s;

    for (s = q->states[h]; s; s = s->next)
        if (s->tenant_id == tenant_id)
            return s;
    s = eb_calloc(1, sizeof *s);
    s->tenant_id = tenant_id;
    s->last_use_us = eb_now_mono_us();
    s->next = q->states[h];
    q->states[h] = s;
    return s;
}

eb_quota *eb_quota_new(const struct eb_quota_limits *defaults, int64_t ttl_us)
{
    eb_quota *q = eb_calloc(1, sizeof *q);
    pthread_condattr_t ca;
    unsigned char id[8];

    q->defaults = *defaults;
    q->limits = eb_cache_new(sizeof(struct eb_quota_limits), ttl_us, LIMITS_MAX_TENANTS);
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cv, &ca);
    pthread_condattr_destroy(&ca);
    q->servers = 1;
    eb_random_bytes(id, sizeof id);
    for (size_t i = 0; i < sizeof id; i++)
        snprintf(q->server_id + 2 * i, 3, "%02x", id[i]);
    return q;
}

void eb_quota_free(eb_quota *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < STATE_BUCKETS; i++) {
        struct tenant_state *s = q->states[i], *next;
        for (; s; s = next) {
            next = s->next;
            free(s);
        }
    }
    eb_cache_free(q->limits);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    eb_db_close(q->db);
    free(q->url);
    free(q);
}

void eb_quota_invalidate(eb_quota *q)
{
    eb_cache_clear(q->limits);
}

void eb_quota_fill_defaults(const eb_quota *q, struct eb_quota_limits *lim)
{
    eb_quota_limits_fill(lim, &q->defaults);
}

int eb_quota_servers(eb_quota *q)
{
    int n;

    pthread_mutex_lock(&q->mu);
    n = q->servers;
    pthread_mutex_unlock(&q->mu);
    return n;
}

eb_status eb_quota_get(eb_quota *q, eb_db *db, int64_t tenant_id, struct eb_quota_limits *out)
{
    struct eb_quota_limits lim;
    eb_status st;

    if (eb_cache_get(q->limits, &tenant_id, sizeof tenant_id, &lim)) {
        *out = lim;
        return EB_OK;
    }
    st = eb_store_quota_get(db, tenant_id, &lim);
    if (st)
        return st == EB_EUNAVAIL ? EB_EUNAVAIL : EB_EINTERNAL;
    eb_quota_limits_fill(&lim, &q->defaults);
    eb_cache_put(q->limits, &tenant_id, sizeof tenant_id, &lim);
    *out = lim;
    return EB_OK;
}

static eb_status limits_or_fail(eb_quota *q, eb_db *db, int64_t tenant_id,
                                struct eb_quota_limits *lim, char *err, size_t errlen)
{
    eb_status st = eb_quota_get(q, db, tenant_id, lim);
    if (st)
        snprintf(err, errlen, "%s",
                 st == EB_EUNAVAIL ? "database unavailable; retry" : "internal error");
    return st;
}

eb_status eb_quota_charge_put(eb_quota *q, eb_db *db, int64_t tenant_id, int64_t events,
                              int64_t bytes, int64_t *retry_ms, char *err, size_t errlen)
{
    struct eb_quota_limits lim;
    struct tenant_state *s;
    double rate_e, rate_b, cap_e, cap_b;
    int64_t now = eb_now_mono_us(), wait_e, wait_b;
    eb_status st;

    st = limits_or_fail(q, db, tenant_id, &lim, err, errlen);
    if (st)
        return st;
    pthread_mutex_lock(&q->mu);
    /* This server's share of the tenant's rates. */
    rate_e = (double)lim.events_per_second / q->servers;
    rate_b = (double)lim.bytes_per_second / q->servers;
    cap_e = rate_e * (double)lim.burst_seconds;
    cap_b = rate_b * (double)lim.burst_seconds;
    s = state_locked(q, tenant_id);
    s->last_use_us = now;
    s->burst_seconds = lim.burst_seconds;
    eb_bucket_refill(&s->events, rate_e, cap_e, now);
    eb_bucket_refill(&s->bytes, rate_b, cap_b, now);
    wait_e = eb_bucket_wait_ms(&s->events, rate_e, cap_e, (double)events);
    wait_b = eb_bucket_wait_ms(&s->bytes, rate_b, cap_b, (double)bytes);
    if (wait_e == 0 && wait_b == 0) {
        eb_bucket_take(&s->events, (double)events);
        eb_bucket_take(&s->bytes, (double)bytes);
    }
    pthread_mutex_unlock(&q->mu);
    if (wait_e == 0 && wait_b == 0)
        return EB_OK;
    if (wait_e >= wait_b) {
        *retry_ms = wait_e;
        snprintf(err, errlen, "events_per_second quota of %" PRId64 " exceeded; retry after %" PRId64
                              " ms",
                 lim.events_per_second, wait_e);
    } else {
        *retry_ms = wait_b;
        snprintf(err, errlen, "bytes_per_second quota of %" PRId64 " exceeded; retry after %" PRId64
                              " ms",
                 lim.bytes_per_second, wait_b);
    }
    return EB_EEXHAUSTED;
}

eb_status eb_quota_stream_acquire(eb_quota *q, eb_db *db, int64_t tenant_id, char *err,
                                  size_t errlen)
{
    struct eb_quota_limits lim;
    struct tenant_state *s;
    eb_status st;

    st = limits_or_fail(q, db, tenant_id, &lim, err, errlen);
    if (st)
        return st;
    pthread_mutex_lock(&q->mu);
    s = state_locked(q, tenant_id);
    s->last_use_us = eb_now_mono_us();
    if (s->local_streams + s->remote_streams >= lim.concurrent_streams) {
        st = EB_EEXHAUSTED;
    } else {
        s->local_streams++;
    }
    pthread_mutex_unlock(&q->mu);
    if (st)
        snprintf(err, errlen,
                 "concurrent_streams quota of %" PRId64 " reached; close a stream and retry",
                 lim.concurrent_streams);
    return st;
}

void eb_quota_stream_release(eb_quota *q, int64_t tenant_id)
{
    pthread_mutex_lock(&q->mu);
    struct tenant_state *s = state_locked(q, tenant_id);
    if (s->local_streams > 0)
        s->local_streams--;
    s->last_use_us = eb_now_mono_us();
    pthread_mutex_unlock(&q->mu);
}

/* --- Heartbeat ----------------------------------------------------------------- */

/* Drops the state of tenants idle long enough that their buckets are full
 * again (a fresh state starts full) and that have no streams anywhere.
 * REQUIRES: q->mu. */
static void prune_locked(eb_quota *q, int64_t now)
{
    for (size_t i = 0; i < STATE_BUCKETS; i++) {
        struct tenant_state **pp = &q->states[i];
        while (*pp) {
            struct tenant_state *s = *pp;
            int64_t idle_after_us = (s->burst_seconds + 1) * 1000000;
            if (s->local_streams == 0 && s->remote_streams == 0 &&
                now - s->last_use_us > idle_after_us) {
                *pp = s->next;
                free(s);
            } else {
                pp = &s->next;
            }
        }
    }
}

/* One heartbeat on q->db; keeps the previous figures when it fails. */
static void heartbeat(eb_quota *q)
{
    int64_t *tenants = NULL, *streams = NULL, *rt = NULL, *rs = NULL;
    size_t n = 0, cap = 0, rn = 0;
    int live = 1;
    eb_status st;

    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < STATE_BUCKETS; i++)
        for (struct tenant_state *s = q->states[i]; s; s = s->next) {
            if (s->local_streams <= 0)
                continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                tenants = eb_realloc(tenants, cap * sizeof *tenants);
                streams = eb_realloc(streams, cap * sizeof *streams);
            }
            tenants[n] = s->tenant_id;
            streams[n++] = s->local_streams;
        }
    pthread_mutex_unlock(&q->mu);

    st = eb_db_ensure(q->db);
    if (!st)
        st = eb_store_heartbeat(q->db, q->server_id, tenants, streams, n, &live, &rt, &rs, &rn);
    if (!st) {
        pthread_mutex_lock(&q->mu);
        q->servers = live;
        for (size_t i = 0; i < STATE_BUCKETS; i++)
            for (struct tenant_state *s = q->states[i]; s; s = s->next)
                s->remote_streams = 0;
        for (size_t i = 0; i < rn; i++)
            state_locked(q, rt[i])->remote_streams = rs[i];
        prune_locked(q, eb_now_mono_us());
        pthread_mutex_unlock(&q->mu);
    }
    free(tenants);
    free(streams);
    free(rt);
    free(rs);
}

static void *heartbeat_main(void *arg)
{
    eb_quota *q = arg;
    struct timespec until;

    pthread_mutex_lock(&q->mu);
    while (!q->stopping) {
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += HEARTBEAT_MS / 1000;
        pthread_cond_timedwait(&q->cv, &q->mu, &until);
        if (q->stopping)
            break;
        pthread_mutex_unlock(&q->mu);
        heartbeat(q);
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

void eb_quota_start(eb_quota *q, const char *database_url)
{
    q->url = eb_strdup(database_url);
    q->db = eb_db_open(q->url);
    heartbeat(q);
    eb_log_info("msg=\"quota heartbeat started\" server=%s live_servers=%d", q->server_id,
                eb_quota_servers(q));
    q->started = true;
    pthread_create(&q->thread, NULL, heartbeat_main, q);
}

void eb_quota_stop(eb_quota *q)
{
    if (!q || !q->started)
        return;
    pthread_mutex_lock(&q->mu);
    q->stopping = true;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
    q->started = false;
    if (eb_db_ensure(q->db) == EB_OK)
        eb_store_heartbeat_remove(q->db, q->server_id);
}
