/* cebus-bench: shared helpers (clock, latency samples, option parsing, the
 * benchmark CloudEvent) and the entry point of each subcommand.
 *
 * Every subcommand prints one human-readable line and one machine-readable
 * line of space-separated key=value pairs that starts with "bench=";
 * scripts/bench.sh collects the latter.
 */
#ifndef CEBUS_BENCH_H
#define CEBUS_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cebus.h"

#include "cloudevents.pb-c.h"

/* ---- Subcommands: each returns the process exit status. ---------------- */

int bench_cmd_pg_insert(int argc, char **argv);
int bench_cmd_ingest(int argc, char **argv);
int bench_cmd_latency(int argc, char **argv);
int bench_cmd_match(int argc, char **argv);
int bench_cmd_durable(int argc, char **argv);

/* ---- Clock ------------------------------------------------------------- */

/* Returns CLOCK_MONOTONIC in nanoseconds. */
int64_t bench_now_ns(void);

/* Sleeps until CLOCK_MONOTONIC reaches t_ns (returns at once if it has). */
void bench_sleep_until_ns(int64_t t_ns);

/* ---- Latency samples ------------------------------------------------------ */

/* A growable array of samples (nanoseconds). At most `limit` samples are
 * kept, so that a long run cannot exhaust memory; `dropped` counts the rest.
 * Zero-initialize, then set limit (0 means BENCH_SAMPLES_DEFAULT_LIMIT). */
struct bench_samples {
    int64_t *v;
    size_t n, cap, limit;
    uint64_t dropped;
};

#define BENCH_SAMPLES_DEFAULT_LIMIT (8u * 1024u * 1024u)

void bench_samples_add(struct bench_samples *s, int64_t ns);
/* Appends src's samples to dst (up to dst's limit). src is unchanged. */
void bench_samples_merge(struct bench_samples *dst, const struct bench_samples *src);
/* Sorts s; call before bench_samples_pct() and bench_samples_max(). */
void bench_samples_sort(struct bench_samples *s);
/* Returns the p-th percentile (0 < p <= 100, nearest rank) of sorted s in
 * nanoseconds, or 0 when s is empty. */
int64_t bench_samples_pct(const struct bench_samples *s, double p);
int64_t bench_samples_max(const struct bench_samples *s);
/* Frees the array; s may be reused after zero-initializing it. */
void bench_samples_free(struct bench_samples *s);

/* ---- Options ----------------------------------------------------------------- */

enum bench_opt_kind { BENCH_OPT_STR, BENCH_OPT_INT, BENCH_OPT_DOUBLE, BENCH_OPT_FLAG };

/* One option: "--name VALUE" (or "--name=VALUE"), or "--name" for a flag.
 * dst is a const char ** (STR), long * (INT, within [min, max]),
 * double * (DOUBLE, within [min, max]) or bool * (FLAG). */
struct bench_opt {
    const char *name;
    enum bench_opt_kind kind;
    void *dst;
    double min, max;
};

/* Parses argv[0..argc) against opts (terminated by a NULL name). Returns 0,
 * or prints why to stderr, followed by usage, and returns 2. "--help"
 * prints usage and returns 1. */
int bench_parse_opts(int argc, char **argv, const struct bench_opt *opts, const char *usage);

/* ---- The benchmark event ----------------------------------------------------- */

typedef Io__Cloudevents__V1__CloudEvent__AttributesEntry BenchAttrEntry;
typedef Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue BenchAttrValue;

#define BENCH_MAX_ATTRS 3

/* A CloudEvent whose protobuf encoding is about `bytes` long: JSON text_data
 * ({"pad":"xxx..."}) padded so that the packed message has the requested
 * size, with a datacontenttype attribute and optionally two bench
 * attributes (run nonce and send timestamp) used by the latency test. Every
 * string lives in the struct, so filling a request allocates nothing. */
struct bench_event {
    Io__Cloudevents__V1__CloudEvent ev;
    BenchAttrEntry entries[BENCH_MAX_ATTRS];
    BenchAttrValue values[BENCH_MAX_ATTRS];
    BenchAttrEntry *attrs[BENCH_MAX_ATTRS];
    char id[64];
    char source[48];
    char sendns[24];
    char run[24];
    char *data; /* owned */
};

/* Attribute names the latency test reads back. */
#define BENCH_ATTR_SENDNS "benchsendns"
#define BENCH_ATTR_RUN "benchrun"

/* Initializes e for publisher `thread` of run `run` (at most 16 characters,
 * from bench_run_id(); it prefixes every id). With `stamped`, the event
 * also carries BENCH_ATTR_RUN = run and BENCH_ATTR_SENDNS (set with
 * bench_event_stamp()). Free with bench_event_free(). */
void bench_event_init(struct bench_event *e, unsigned thread, size_t bytes, bool stamped,
                      const char *run);
/* Gives e a fresh id ("<run>-<thread>-<n>"). */
void bench_event_set_id(struct bench_event *e, unsigned thread, uint64_t n);
/* Sets BENCH_ATTR_SENDNS to t_ns. REQUIRES: e initialized with stamped. */
void bench_event_stamp(struct bench_event *e, int64_t t_ns);
/* Returns the packed size of e. */
size_t bench_event_size(const struct bench_event *e);
void bench_event_free(struct bench_event *e);

/* Returns the string value of attribute name in ev, or NULL. Borrowed. */
const char *bench_event_attr(const Io__Cloudevents__V1__CloudEvent *ev, const char *name);

/* Writes a run identifier unique to this process and moment (16 hex
 * digits) into buf, of at least 17 bytes. */
void bench_run_id(char *buf, size_t size);

/* ---- Durable subscriptions (durable.c) ------------------------------------ */

/* Ack ids per Ack call: the server's limit. */
#define BENCH_ACK_BATCH 1000

/* A thread that acks the ids handed to it on its own client: whatever has
 * accumulated while the previous call was outstanding goes in the next
 * call, so the consumer never waits for an ack. */
struct bench_acker {
    cebus_client *client;
    const char *bus, *sub;
    pthread_t thread;
    pthread_mutex_t mu; /* guards ids, n, cap, stop, first_error */
    pthread_cond_t cv;
    char **ids;
    size_t n, cap;
    bool stop;
    cebus_error first_error;
    atomic_ullong acked, not_applied, errors, calls;
    atomic_llong last_ok_ns; /* when the last call answered OK */
};

/* Starts a's thread with a client of its own. bus and sub are borrowed. */
void bench_acker_start(struct bench_acker *a, const char *addr, const char *key,
                       const char *bus, const char *sub);
/* Queues a copy of ack_id. Any thread. */
void bench_acker_push(struct bench_acker *a, const char *ack_id);
/* Acks what is queued, stops the thread and frees what a holds. */
void bench_acker_stop(struct bench_acker *a);

/* Creates rule `name` with pattern {} and a subscription target `name` on
 * the bus: a subscription that starts at the bus's head. Returns 0, or the
 * status code after printing why. */
int bench_create_subscription(const char *addr, const char *key, const char *bus,
                              const char *name);

/* Formats ns as microseconds with one decimal into buf; returns buf. */
const char *bench_fmt_us(char *buf, size_t size, int64_t ns);

#endif
