#include "metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#ifndef CEBUS_VERSION
#define CEBUS_VERSION "dev"
#endif

#define NCODES 17 /* gRPC status codes 0..16 */

/* Upper bounds of the latency buckets, in microseconds; +Inf is implied. */
static const int64_t bucket_us[] = {250,    500,    1000,    2500,    5000,    10000,  25000,
                                    50000, 100000, 250000, 500000, 1000000, 2500000, 10000000};
#define NBUCKETS (sizeof bucket_us / sizeof bucket_us[0])

struct histogram {
    _Atomic uint64_t buckets[NBUCKETS + 1]; /* not cumulative; the last is +Inf */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_us;
};

struct method_series {
    char *path;
    _Atomic uint64_t calls[NCODES];
    struct histogram latency;
};

static const struct {
    const char *name, *help;
} counter_info[EB_M_NCOUNTERS] = {
    [EB_M_EVENTS_APPENDED] = {"cebus_events_appended_total", "Events committed to a bus log."},
    [EB_M_EVENTS_DUPLICATE] = {"cebus_events_duplicate_total",
                               "Publishes answered as duplicates of an accepted event."},
    [EB_M_EVENTS_REJECTED] = {"cebus_events_rejected_total",
                              "PutEvents entries answered with an error."},
    [EB_M_APPEND_COMMITS] = {"cebus_append_commits_total", "Group-commit transactions committed."},
    [EB_M_APPEND_FAILURES] = {"cebus_append_failures_total",
                              "Group-commit transactions that failed (events not stored)."},
    [EB_M_LOG_READS] = {"cebus_log_reads_total", "Reads of a bus log by the dispatcher."},
    [EB_M_LOG_EVENTS_READ] = {"cebus_log_events_read_total",
                              "Events returned by the dispatcher's log reads."},
    [EB_M_STREAM_MESSAGES] = {"cebus_stream_messages_total",
                              "Messages written to Subscribe streams."},
    [EB_M_STREAMS_OPENED] = {"cebus_streams_opened_total", "Subscribe streams accepted."},
    [EB_M_SUB_DELIVERIES] = {"cebus_subscription_deliveries_total",
                             "Deliveries of durable subscriptions, redeliveries included."},
    [EB_M_SUB_ACKS] = {"cebus_subscription_acks_total",
                       "Acks that removed an outstanding delivery of a durable subscription."},
    [EB_M_SUB_NACKS] = {"cebus_subscription_nacks_total",
                        "Nacks that released an outstanding delivery for redelivery."},
};

static const struct {
    const char *name, *help;
} gauge_info[EB_G_NGAUGES] = {
    [EB_G_STREAMS_OPEN] = {"cebus_streams_open", "Subscribe streams currently open."},
    [EB_G_EXEC_QUEUED] = {"cebus_rpc_queued", "RPCs waiting for a database connection."},
    [EB_G_SUB_IN_FLIGHT] = {"cebus_subscription_in_flight",
                            "Deliveries of durable subscriptions that this server's streams "
                            "hold, not yet acked, nacked or past their deadline."},
};

static const struct {
    const char *name, *help;
} histogram_info[EB_H_NHISTOGRAMS] = {
    [EB_H_APPEND_COMMIT] = {"cebus_append_commit_seconds",
                            "Duration of one group commit, BEGIN to acknowledged COMMIT."},
};

static const char *const code_names[NCODES] = {
    "OK",           "CANCELLED",         "UNKNOWN",          "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED", "NOT_FOUND",    "ALREADY_EXISTS",   "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL",         "UNAVAILABLE",      "DATA_LOSS",
    "UNAUTHENTICATED"};

static _Atomic uint64_t counters[EB_M_NCOUNTERS];
static _Atomic int64_t gauges[EB_G_NGAUGES];
static struct histogram histograms[EB_H_NHISTOGRAMS];

/* Methods are registered at start and never removed; nmethods only grows,
 * and a slot is published (release) after its path is written. */
static struct method_series methods[EB_METRICS_MAX_METHODS + 1]; /* last: "other" */
static _Atomic int nmethods;
static pthread_mutex_t register_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int64_t start_wall_us = -1;

void eb_metrics_add(enum eb_counter c, uint64_t n)
{
    atomic_fetch_add_explicit(&counters[c], n, memory_order_relaxed);
}

void eb_metrics_gauge_add(enum eb_gauge g, int64_t delta)
{
    atomic_fetch_add_explicit(&gauges[g], delta, memory_order_relaxed);
}

static void observe(struct histogram *h, int64_t us)
{
    size_t i = 0;

    if (us < 0)
        us = 0;
    while (i < NBUCKETS && us > bucket_us[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, (uint64_t)us, memory_order_relaxed);
}

void eb_metrics_observe_us(enum eb_histogram h, int64_t us)
{
    observe(&histograms[h], us);
}

int eb_metrics_rpc_register(const char *path)
{
    int n, id = EB_METRICS_MAX_METHODS;
    int64_t unset = -1;

    /* The first registration happens at start: a good enough start time. */
    atomic_compare_exchange_strong(&start_wall_us, &unset, eb_now_wall_us());
    pthread_mutex_lock(&register_mu);
    n = atomic_load_explicit(&nmethods, memory_order_relaxed);
    for (int i = 0; i < n; i++)
        if (strcmp(methods[i].path, path) == 0) {
            id = i;
            goto out;
        }
    if (n < EB_METRICS_MAX_METHODS) {
        methods[n].path = eb_strdup(path);
        atomic_store_explicit(&nmethods, n + 1, memory_order_release);
        id = n;
    }
out:
    pthread_mutex_unlock(&register_mu);
    return id;
}

void eb_metrics_rpc_done(int id, int code, int64_t us)
{
    struct method_series *m;

    if (id < 0 || id > EB_METRICS_MAX_METHODS)
        id = EB_METRICS_MAX_METHODS;
    if (code < 0 || code >= NCODES)
        code = 2; /* UNKNOWN */
    m = &methods[id];
    atomic_fetch_add_explicit(&m->calls[code], 1, memory_order_relaxed);
    if (us >= 0)
        observe(&m->latency, us);
}

/* ---- Rendering ----------------------------------------------------------- */

struct buf {
    char *p;
    size_t len, cap;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len)
            break;
        b->cap = b->cap * 2 + (size_t)(n > 0 ? n : 0);
        b->p = eb_realloc(b->p, b->cap);
    }
    b->len += (size_t)n;
}

static void header(struct buf *b, const char *name, const char *help, const char *type)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Writes h's series; labels is "" or `method="..."` (no trailing comma). */
static void render_histogram(struct buf *b, const char *name, const char *labels,
                             const struct histogram *h)
{
    uint64_t cum = 0;
    const char *sep = labels[0] ? "," : "";

    for (size_t i = 0; i <= NBUCKETS; i++) {
        cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (i < NBUCKETS)
            put(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
                (double)bucket_us[i] / 1e6, (unsigned long long)cum);
        else
            put(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                (unsigned long long)cum);
    }
    put(b, "%s_sum%s%s%s %.6f\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
        (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6);
    /* The count is the +Inf bucket, so that the two always agree. */
    put(b, "%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
        (unsigned long long)cum);
}

char *eb_metrics_render(size_t *len)
{
    struct buf b = {eb_malloc(16384), 0, 16384};
    int n = atomic_load_explicit(&nmethods, memory_order_acquire);
    int64_t start = atomic_load_explicit(&start_wall_us, memory_order_relaxed);
    char labels[320];

    header(&b, "cebus_build_info", "The running cebusd version.", "gauge");
    put(&b, "cebus_build_info{version=\"%s\"} 1\n", CEBUS_VERSION);
    if (start >= 0) {
        header(&b, "process_start_time_seconds", "Start time of the process, Unix seconds.",
               "gauge");
        put(&b, "process_start_time_seconds %.3f\n", (double)start / 1e6);
    }
    for (int c = 0; c < EB_M_NCOUNTERS; c++) {
        header(&b, counter_info[c].name, counter_info[c].help, "counter");
        put(&b, "%s %llu\n", counter_info[c].name,
            (unsigned long long)atomic_load_explicit(&counters[c], memory_order_relaxed));
    }
    for (int g = 0; g < EB_G_NGAUGES; g++) {
        header(&b, gauge_info[g].name, gauge_info[g].help, "gauge");
        put(&b, "%s %lld\n", gauge_info[g].name,
            (long long)atomic_load_explicit(&gauges[g], memory_order_relaxed));
    }
    for (int h = 0; h < EB_H_NHISTOGRAMS; h++) {
        header(&b, histogram_info[h].name, histogram_info[h].help, "histogram");
        render_histogram(&b, histogram_info[h].name, "", &histograms[h]);
    }

    header(&b, "cebus_rpc_total", "Finished RPCs by method and gRPC status code.", "counter");
    for (int i = 0; i <= EB_METRICS_MAX_METHODS; i++) {
        const char *path = i < n ? methods[i].path : i == EB_METRICS_MAX_METHODS ? "other" : NULL;
        if (!path)
            continue;
        for (int code = 0; code < NCODES; code++) {
            uint64_t v = atomic_load_explicit(&methods[i].calls[code], memory_order_relaxed);
            /* Absent series read as zero; printing only the seen codes
             * keeps a scrape short. OK is always printed. */
            if (v || code == 0)
                put(&b, "cebus_rpc_total{method=\"%s\",code=\"%s\"} %llu\n", path,
                    code_names[code], (unsigned long long)v);
        }
    }
    header(&b, "cebus_rpc_duration_seconds",
           "Duration of unary RPCs from arrival to the status being sent.", "histogram");
    for (int i = 0; i < n; i++) {
        if (atomic_load_explicit(&methods[i].latency.count, memory_order_relaxed) == 0)
            continue;
        snprintf(labels, sizeof labels, "method=\"%s\"", methods[i].path);
        render_histogram(&b, "cebus_rpc_duration_seconds", labels, &methods[i].latency);
    }
    *len = b.len;
    return b.p;
}
