/* latency: publish-to-subscriber latency of durable events.
 *
 * A Subscribe stream (pattern {}, from the latest event) runs on its own
 * thread. Publisher threads put single events on a fixed schedule (slot k
 * at start + k / rate; a slot is sent as soon as a publisher is free, so a
 * slow commit delays later slots instead of silently lowering the rate),
 * each event carrying its send time (CLOCK_MONOTONIC, same process) and a
 * per-run nonce in attributes. The subscriber records receive - send.
 * Before measuring, events are published until the first one arrives, so
 * that the stream is known to be live.
 *
 * With --durable the stream is a durable subscription (a new rule with a
 * subscription target, pattern {}) and every delivery is acked by a
 * bench_acker thread, so the figure includes claiming each event and the
 * acks' load on the same server and database.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "cebus.h"

#define USAGE                                                                              \
    "usage: cebus-bench latency --addr HOST:PORT --key KEY --bus BUS [--rate 1000]\n"      \
    "                           [--seconds 5] [--bytes 1024] [--publishers 8]\n"           \
    "                           [--durable]\n"                                            \
    "Publish-to-subscriber latency (p50/p90/p99/max) at a fixed publish rate.\n"

#define MAX_PUBLISHERS 256
/* How long to wait for the stream to deliver its first event. */
#define LIVE_TIMEOUT_NS (10 * 1000000000LL)
/* How long to wait after the last send for stragglers. */
#define DRAIN_TIMEOUT_NS (5 * 1000000000LL)
/* A send this late against its slot counts as late (publisher saturated). */
#define LATE_NS 1000000

struct latency_run {
    const char *bus;
    long bytes;
    char run[24];
    cebus_client *pub_client;
    /* Subscriber. */
    cebus_stream *stream;
    bool durable;
    char sub[40];
    struct bench_acker acker;       /* durable only */
    atomic_bool stop;
    atomic_bool live;               /* a stamped event of this run arrived */
    atomic_llong measure_from;      /* sends stamped at or after this count */
    atomic_ullong received;         /* measured events received */
    uint64_t foreign;               /* events of other runs or unstamped */
    struct bench_samples e2e;       /* receive - send, ns */
    cebus_error stream_end;         /* written before stream_ended */
    atomic_bool stream_ended;
    /* Publishers. */
    int64_t start_ns;
    double interval_ns;
    uint64_t slots;
    atomic_ullong next_slot;
    atomic_ullong sent, send_errors, late;
    pthread_mutex_t mu; /* guards the fields below */
    struct bench_samples put_lat;
    cebus_error first_error;
};

struct publisher {
    pthread_t thread;
    unsigned index;
    struct latency_run *r;
};

static void *subscriber_main(void *arg)
{
    struct latency_run *r = arg;

    while (!atomic_load(&r->stop)) {
        Cebus__V1__SubscribeResponse *msg = NULL;
        cebus_error err;
        int rc = cebus_stream_next(r->stream, 100, &msg, &err);
        int64_t now = bench_now_ns();

        if (rc < 0) {
            r->stream_end = err;
            atomic_store(&r->stream_ended, true);
            break;
        }
        if (rc == 0)
            continue;
        if (msg->event) {
            const char *run = bench_event_attr(msg->event, BENCH_ATTR_RUN);
            const char *sendns = bench_event_attr(msg->event, BENCH_ATTR_SENDNS);

            if (run && sendns && strcmp(run, r->run) == 0) {
                int64_t sent = strtoll(sendns, NULL, 10);

                atomic_store(&r->live, true);
                if (sent >= atomic_load(&r->measure_from)) {
                    bench_samples_add(&r->e2e, now - sent);
                    atomic_fetch_add(&r->received, 1);
                }
            } else {
                r->foreign++;
            }
        }
        if (r->durable && msg->ack_id && msg->ack_id[0])
            bench_acker_push(&r->acker, msg->ack_id);
        cebus__v1__subscribe_response__free_unpacked(msg, NULL);
    }
    return NULL;
}

/* Puts e once, stamped now. Returns the call's latency, or -1 on failure. */
static int64_t put_one(struct latency_run *r, struct bench_event *e, unsigned index, uint64_t n)
{
    Io__Cloudevents__V1__CloudEvent *one[1] = {&e->ev};
    Cebus__V1__PutEventsRequest req = CEBUS__V1__PUT_EVENTS_REQUEST__INIT;
    Cebus__V1__PutEventsResponse *resp = NULL;
    cebus_error err;
    int64_t t0, t1;
    int rc;

    req.bus = (char *)r->bus;
    req.events = one;
    req.n_events = 1;
    bench_event_set_id(e, index, n);
    t0 = bench_now_ns();
    bench_event_stamp(e, t0);
    rc = cebus_put_events(r->pub_client, &req, &resp, &err);
    t1 = bench_now_ns();
    if (rc == 0 && resp->failed_count != 0) {
        rc = resp->results[0]->code ? resp->results[0]->code : -1;
        err.code = rc;
        snprintf(err.message, sizeof err.message, "rejected: %s",
                 resp->results[0]->message ? resp->results[0]->message : "");
    }
    if (resp)
        cebus__v1__put_events_response__free_unpacked(resp, NULL);
    if (rc != 0) {
        pthread_mutex_lock(&r->mu);
        if (atomic_fetch_add(&r->send_errors, 1) == 0)
            r->first_error = err;
        pthread_mutex_unlock(&r->mu);
        return -1;
    }
    return t1 - t0;
}

static void *publisher_main(void *arg)
{
    struct publisher *p = arg;
    struct latency_run *r = p->r;
    struct bench_event e;
    struct bench_samples lat = {0};
    uint64_t n = 0;

    bench_event_init(&e, p->index, (size_t)r->bytes, true, r->run);
    for (;;) {
        uint64_t k = atomic_fetch_add(&r->next_slot, 1);
        int64_t slot, took;

        if (k >= r->slots)
            break;
        slot = r->start_ns + (int64_t)((double)k * r->interval_ns);
        bench_sleep_until_ns(slot);
        if (bench_now_ns() - slot > LATE_NS)
            atomic_fetch_add(&r->late, 1);
        took = put_one(r, &e, p->index, ++n);
        if (took >= 0) {
            atomic_fetch_add(&r->sent, 1);
            bench_samples_add(&lat, took);
        }
    }
    pthread_mutex_lock(&r->mu);
    bench_samples_merge(&r->put_lat, &lat);
    pthread_mutex_unlock(&r->mu);
    bench_samples_free(&lat);
    bench_event_free(&e);
    return NULL;
}

/* Publishes until the subscriber sees an event of this run. Returns 0, or
 * -1 after LIVE_TIMEOUT_NS. */
static int wait_live(struct latency_run *r)
{
    struct bench_event e;
    int64_t deadline = bench_now_ns() + LIVE_TIMEOUT_NS;
    uint64_t n = 0;
    int rc = -1;

    bench_event_init(&e, 9999, (size_t)r->bytes, true, r->run);
    while (bench_now_ns() < deadline && !atomic_load(&r->stream_ended)) {
        put_one(r, &e, 9999, ++n);
        for (int i = 0; i < 20 && !atomic_load(&r->live); i++)
            usleep(5000);
        if (atomic_load(&r->live)) {
            rc = 0;
            break;
        }
    }
    bench_event_free(&e);
    return rc;
}

int bench_cmd_latency(int argc, char **argv)
{
    const char *addr = NULL, *key = NULL, *bus = NULL;
    long bytes = 1024, publishers = 8;
    double rate = 1000, seconds = 5;
    bool durable = false;
    const struct bench_opt opts[] = {
        {"addr", BENCH_OPT_STR, &addr, 0, 0},
        {"key", BENCH_OPT_STR, &key, 0, 0},
        {"bus", BENCH_OPT_STR, &bus, 0, 0},
        {"rate", BENCH_OPT_DOUBLE, &rate, 1, 1e6},
        {"seconds", BENCH_OPT_DOUBLE, &seconds, 0.1, 3600},
        {"bytes", BENCH_OPT_INT, &bytes, 64, 1 << 20},
        {"publishers", BENCH_OPT_INT, &publishers, 1, MAX_PUBLISHERS},
        {"durable", BENCH_OPT_FLAG, &durable, 0, 0},
        {NULL, BENCH_OPT_FLAG, NULL, 0, 0},
    };
    static struct latency_run r; /* large and shared by threads */
    Cebus__V1__SubscribeRequest sreq = CEBUS__V1__SUBSCRIBE_REQUEST__INIT;
    cebus_client *sub_client = NULL;
    struct publisher *pubs = NULL;
    pthread_t sub_thread;
    cebus_error err;
    int64_t last_send, send_window;
    uint64_t sent, received;
    struct bench_event probe;
    size_t event_bytes;
    char p50[32], p90[32], p99[32], pmax[32];
    int rc;

    rc = bench_parse_opts(argc, argv, opts, USAGE);
    if (rc)
        return rc == 1 ? 0 : rc;
    if (!addr || !key || !bus) {
        fprintf(stderr, "cebus-bench latency: --addr, --key and --bus are required\n%s", USAGE);
        return 2;
    }

    memset(&r, 0, sizeof r);
    r.bus = bus;
    r.bytes = bytes;
    bench_run_id(r.run, sizeof r.run);
    atomic_init(&r.measure_from, INT64_MAX);
    bench_event_init(&probe, 0, (size_t)bytes, true, r.run);
    event_bytes = bench_event_size(&probe);
    bench_event_free(&probe);
    pthread_mutex_init(&r.mu, NULL);
    cebus_library_init();
    r.pub_client = cebus_client_new(addr, key);
    sub_client = cebus_client_new(addr, key);

    sreq.bus = (char *)bus;
    r.durable = durable;
    if (durable) {
        /* A new subscription starts at the bus's head, as LATEST does. */
        snprintf(r.sub, sizeof r.sub, "l%s", r.run);
        if (bench_create_subscription(addr, key, bus, r.sub) != 0) {
            rc = 1;
            goto out;
        }
        bench_acker_start(&r.acker, addr, key, bus, r.sub);
        sreq.subscription = r.sub;
    } else {
        sreq.pattern = "{}";
        sreq.start = CEBUS__V1__START_POSITION__START_POSITION_LATEST;
    }
    if (cebus_subscribe(sub_client, &sreq, &r.stream, &err) != 0) {
        fprintf(stderr, "cebus-bench latency: subscribe: %s: %s\n", cebus_status_name(err.code),
                err.message);
        rc = 1;
        goto out;
    }
    if (pthread_create(&sub_thread, NULL, subscriber_main, &r) != 0)
        abort();
    if (wait_live(&r) != 0) {
        fprintf(stderr, "cebus-bench latency: the stream delivered nothing within %lld s%s%s\n",
                LIVE_TIMEOUT_NS / 1000000000LL, r.send_errors ? "; publish error: " : "",
                r.send_errors ? r.first_error.message : "");
        rc = 1;
        goto stop;
    }

    /* Measure from here: later sends only. */
    r.slots = (uint64_t)(rate * seconds);
    r.interval_ns = 1e9 / rate;
    atomic_store(&r.send_errors, 0);
    r.start_ns = bench_now_ns() + 2000000;
    atomic_store(&r.measure_from, r.start_ns);
    pubs = calloc((size_t)publishers, sizeof *pubs);
    if (!pubs)
        abort();
    for (long i = 0; i < publishers; i++) {
        pubs[i].index = (unsigned)i;
        pubs[i].r = &r;
        if (pthread_create(&pubs[i].thread, NULL, publisher_main, &pubs[i]) != 0)
            abort();
    }
    for (long i = 0; i < publishers; i++)
        pthread_join(pubs[i].thread, NULL);
    last_send = bench_now_ns();
    send_window = last_send - r.start_ns;
    sent = atomic_load(&r.sent);
    /* Bounded wait for the last deliveries. */
    while (atomic_load(&r.received) < sent && bench_now_ns() - last_send < DRAIN_TIMEOUT_NS &&
           !atomic_load(&r.stream_ended))
        usleep(2000);
    rc = 0;
stop:
    atomic_store(&r.stop, true);
    pthread_join(sub_thread, NULL);
    if (rc)
        goto out;

    received = atomic_load(&r.received);
    bench_samples_sort(&r.e2e);
    bench_samples_sort(&r.put_lat);
    printf("latency: %.0f events/s target, %.0f achieved (%" PRIu64 " sent, %" PRIu64
           " late by >1 ms), %" PRIu64 " received: publish-to-subscriber p50 %s us, p90 %s us, "
           "p99 %s us, max %s us; PutEvents call p50 %.1f us p99 %.1f us\n",
           rate, (double)sent * 1e9 / (double)send_window, sent, (uint64_t)atomic_load(&r.late),
           received,
           bench_fmt_us(p50, sizeof p50, bench_samples_pct(&r.e2e, 50)),
           bench_fmt_us(p90, sizeof p90, bench_samples_pct(&r.e2e, 90)),
           bench_fmt_us(p99, sizeof p99, bench_samples_pct(&r.e2e, 99)),
           bench_fmt_us(pmax, sizeof pmax, bench_samples_max(&r.e2e)),
           (double)bench_samples_pct(&r.put_lat, 50) / 1000.0,
           (double)bench_samples_pct(&r.put_lat, 99) / 1000.0);
    if (r.send_errors)
        printf("latency: %" PRIu64 " publish errors; first: %s: %s\n",
               (uint64_t)atomic_load(&r.send_errors), cebus_status_name(r.first_error.code),
               r.first_error.message);
    if (r.stream_ended)
        printf("latency: the stream ended early: %s: %s\n", cebus_status_name(r.stream_end.code),
               r.stream_end.message);
    if (durable)
        printf("latency: %" PRIu64 " acks in %" PRIu64 " calls, %" PRIu64 " ack errors\n",
               (uint64_t)atomic_load(&r.acker.acked), (uint64_t)atomic_load(&r.acker.calls),
               (uint64_t)atomic_load(&r.acker.errors));
    printf("bench=latency durable=%d rate=%.0f achieved_rate=%.0f seconds=%.2f event_bytes=%zu "
           "publishers=%ld sent=%" PRIu64 " received=%" PRIu64 " lost=%" PRIu64 " late=%" PRIu64
           " errors=%" PRIu64 " p50_us=%.1f p90_us=%.1f p99_us=%.1f max_us=%.1f "
           "put_p50_us=%.1f put_p99_us=%.1f\n",
           durable ? 1 : 0, rate, (double)sent * 1e9 / (double)send_window, seconds,
           event_bytes, publishers, sent, received,
           received < sent ? sent - received : 0, (uint64_t)atomic_load(&r.late),
           (uint64_t)atomic_load(&r.send_errors), (double)bench_samples_pct(&r.e2e, 50) / 1000.0,
           (double)bench_samples_pct(&r.e2e, 90) / 1000.0,
           (double)bench_samples_pct(&r.e2e, 99) / 1000.0,
           (double)bench_samples_max(&r.e2e) / 1000.0,
           (double)bench_samples_pct(&r.put_lat, 50) / 1000.0,
           (double)bench_samples_pct(&r.put_lat, 99) / 1000.0);
    fflush(stdout);
    rc = (received == 0 || received < sent || r.send_errors || r.stream_ended ||
          (durable && atomic_load(&r.acker.errors)))
             ? 1
             : 0;
out:
    cebus_stream_close(r.stream);
    if (r.acker.client)
        bench_acker_stop(&r.acker);
    cebus_client_free(sub_client);
    cebus_client_free(r.pub_client);
    free(pubs);
    bench_samples_free(&r.e2e);
    bench_samples_free(&r.put_lat);
    pthread_mutex_destroy(&r.mu);
    cebus_library_shutdown();
    return rc;
}
