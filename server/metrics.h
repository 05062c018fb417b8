/* Process-wide metrics in the Prometheus text format.
 *
 * One registry per process, like the kernel's counters: fixed arrays of
 * relaxed atomics, so that recording costs one atomic add and never
 * allocates or locks. Series carry no tenant, bus or key labels: whoever
 * scrapes the metrics port must not learn other tenants' names, and label
 * sets stay bounded whatever clients send.
 *
 * THREAD SAFETY: every function here may be called from any thread.
 */
#ifndef EB_METRICS_H
#define EB_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* Monotonic counters. */
enum eb_counter {
    EB_M_EVENTS_APPENDED,     /* events committed to a bus log */
    EB_M_EVENTS_DUPLICATE,    /* publishes answered as duplicates */
    EB_M_EVENTS_REJECTED,     /* entries answered with an error */
    EB_M_APPEND_COMMITS,      /* group-commit transactions committed */
    EB_M_APPEND_FAILURES,     /* group-commit transactions that failed */
    EB_M_LOG_READS,           /* reads of a bus log by the dispatcher */
    EB_M_LOG_EVENTS_READ,     /* events those reads returned */
    EB_M_STREAM_MESSAGES,     /* messages written to Subscribe streams */
    EB_M_STREAMS_OPENED,      /* Subscribe streams accepted */
    EB_M_SUB_DELIVERIES,      /* deliveries of durable subscriptions (leases sent) */
    EB_M_SUB_ACKS,            /* acks that removed an outstanding delivery */
    EB_M_SUB_NACKS,           /* nacks that released an outstanding delivery */
    EB_M_NCOUNTERS
};

/* Values that go up and down. */
enum eb_gauge {
    EB_G_STREAMS_OPEN,  /* Subscribe streams currently open */
    EB_G_EXEC_QUEUED,   /* RPCs waiting for a database connection */
    EB_G_SUB_IN_FLIGHT, /* deliveries durable streams of this server hold unacked */
    EB_G_NGAUGES
};

/* Latency histograms (seconds). */
enum eb_histogram {
    EB_H_APPEND_COMMIT, /* one group commit: BEGIN to COMMIT acknowledged */
    EB_H_NHISTOGRAMS
};

/* Largest number of RPC methods with their own series; further methods
 * share the "other" series. */
#define EB_METRICS_MAX_METHODS 64

/* Adds n to counter c. */
void eb_metrics_add(enum eb_counter c, uint64_t n);

/* Adds delta (may be negative) to gauge g. */
void eb_metrics_gauge_add(enum eb_gauge g, int64_t delta);

/* Records one observation of us microseconds in histogram h. */
void eb_metrics_observe_us(enum eb_histogram h, int64_t us);

/* Registers an RPC method by its full path ("/cebus.v1.EventBus/PutEvents")
 * and returns its id for eb_metrics_rpc_done(). The path is copied.
 * Registering the same path twice returns the same id. */
int eb_metrics_rpc_register(const char *path);

/* Records the end of a call of method id with gRPC status code (0..16) after
 * us microseconds; us < 0 records the count only (streams, whose length is
 * the client's choice rather than a latency). */
void eb_metrics_rpc_done(int id, int code, int64_t us);

/* Returns the current metrics in the Prometheus text exposition format
 * (version 0.0.4) as a new string, and its length in *len. Free with
 * free(). */
char *eb_metrics_render(size_t *len);

/* ---- The HTTP endpoint ------------------------------------------------ */

typedef struct eb_metrics_server eb_metrics_server;

/* Listens on addr ("host:port", port 0 picks a free one) and serves
 * GET /metrics from one thread. Requests are capped at 8 KiB and 2 s; one
 * request per connection. On success returns EB_OK, sets *out (free with
 * eb_metrics_server_free()) and *port to the bound port; EB_EINVAL for an
 * address that does not parse, EB_EUNAVAIL when it cannot be bound (both
 * logged). */
eb_status eb_metrics_server_start(const char *addr, eb_metrics_server **out, int *port);

/* Stops the thread, closes the socket and frees ms. NULL is allowed. */
void eb_metrics_server_free(eb_metrics_server *ms);

#endif
