/* durable: delivered-and-acked events/s through a durable subscription.
 *
 * Creates a rule with a subscription target (pattern {}) on the bus, so the
 * subscription starts at the bus's head, then publishes --events events in
 * batches of 100 (the backlog). Then --consumers threads, each with its own
 * client, open durable streams on the subscription (at most --in-flight
 * unacked deliveries each) and hand every ack id to an acker thread of
 * their own, which acks whatever has accumulated in one call while the
 * previous call is outstanding. The clock runs from the first Subscribe to
 * the last Ack answered OK once every published sequence was delivered;
 * redeliveries are counted, not measured as throughput.
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
    "usage: cebus-bench durable --addr HOST:PORT --key KEY --bus BUS [--events 100000]\n"   \
    "                           [--consumers 1] [--in-flight 1000] [--bytes 1024]\n"       \
    "Delivered-and-acked events/s through one durable subscription.\n"

#define MAX_CONSUMERS 64
#define PUT_BATCH 100
/* How long a run may take before it is reported as failed. */
#define RUN_TIMEOUT_NS (300 * 1000000000LL)

/* ---- The acker ----------------------------------------------------------- */

static void *acker_main(void *arg)
{
    struct bench_acker *a = arg;
    char **batch = NULL;
    size_t n;

    for (;;) {
        Cebus__V1__AckRequest req = CEBUS__V1__ACK_REQUEST__INIT;
        Cebus__V1__AckResponse *resp = NULL;
        cebus_error err;

        pthread_mutex_lock(&a->mu);
        while (a->n == 0 && !a->stop)
            pthread_cond_wait(&a->cv, &a->mu);
        if (a->n == 0 && a->stop) {
            pthread_mutex_unlock(&a->mu);
            break;
        }
        /* At most BENCH_ACK_BATCH ids per call: the server's limit. */
        n = a->n < BENCH_ACK_BATCH ? a->n : BENCH_ACK_BATCH;
        batch = malloc(n * sizeof *batch);
        if (!batch)
            abort();
        memcpy(batch, a->ids, n * sizeof *batch);
        memmove(a->ids, a->ids + n, (a->n - n) * sizeof *a->ids);
        a->n -= n;
        pthread_mutex_unlock(&a->mu);

        req.bus = (char *)a->bus;
        req.subscription = (char *)a->sub;
        req.ack_ids = batch;
        req.n_ack_ids = n;
        if (cebus_ack(a->client, &req, &resp, &err) == 0) {
            atomic_fetch_add(&a->acked, n - resp->n_not_applied);
            atomic_fetch_add(&a->not_applied, resp->n_not_applied);
            atomic_fetch_add(&a->calls, 1);
            atomic_store(&a->last_ok_ns, bench_now_ns());
            cebus__v1__ack_response__free_unpacked(resp, NULL);
        } else {
            pthread_mutex_lock(&a->mu);
            if (atomic_fetch_add(&a->errors, 1) == 0)
                a->first_error = err;
            pthread_mutex_unlock(&a->mu);
        }
        for (size_t i = 0; i < n; i++)
            free(batch[i]);
        free(batch);
    }
    return NULL;
}

void bench_acker_start(struct bench_acker *a, const char *addr, const char *key,
                       const char *bus, const char *sub)
{
    memset(a, 0, sizeof *a);
    a->client = cebus_client_new(addr, key);
    a->bus = bus;
    a->sub = sub;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    if (pthread_create(&a->thread, NULL, acker_main, a) != 0)
        abort();
}

void bench_acker_push(struct bench_acker *a, const char *ack_id)
{
    char *id = strdup(ack_id);

    if (!id)
        abort();
    pthread_mutex_lock(&a->mu);
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 1024;
        a->ids = realloc(a->ids, a->cap * sizeof *a->ids);
        if (!a->ids)
            abort();
    }
    a->ids[a->n++] = id;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

void bench_acker_stop(struct bench_acker *a)
{
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    for (size_t i = 0; i < a->n; i++)
        free(a->ids[i]);
    free(a->ids);
    cebus_client_free(a->client);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
}

int bench_create_subscription(const char *addr, const char *key, const char *bus,
                              const char *name)
{
    Cebus__V1__SubscriptionTarget st = CEBUS__V1__SUBSCRIPTION_TARGET__INIT;
    Cebus__V1__Target t = CEBUS__V1__TARGET__INIT;
    Cebus__V1__Target *targets[1] = {&t};
    Cebus__V1__CreateRuleRequest req = CEBUS__V1__CREATE_RULE_REQUEST__INIT;
    Cebus__V1__Rule *rule = NULL;
    cebus_client *c = cebus_client_new(addr, key);
    cebus_error err;
    int rc;

    st.name = (char *)name;
    t.kind_case = CEBUS__V1__TARGET__KIND_SUBSCRIPTION;
    t.subscription = &st;
    req.bus = (char *)bus;
    req.name = (char *)name;
    req.pattern = "{}";
    req.targets = targets;
    req.n_targets = 1;
    rc = cebus_create_rule(c, &req, &rule, &err);
    if (rc == 0)
        cebus__v1__rule__free_unpacked(rule, NULL);
    else
        fprintf(stderr, "cebus-bench: create rule %s: %s: %s\n", name,
                cebus_status_name(err.code), err.message);
    cebus_client_free(c);
    return rc;
}

/* ---- The throughput run --------------------------------------------------- */

struct durable_run {
    const char *addr, *key, *bus;
    char sub[40];
    long in_flight;
    int64_t first_seq;        /* of the backlog */
    uint64_t events;
    atomic_uchar *seen;       /* per backlog sequence: delivered at least once */
    atomic_ullong distinct;   /* backlog sequences delivered */
    atomic_ullong deliveries; /* all deliveries, redeliveries included */
    atomic_ullong foreign;    /* sequences outside the backlog */
    atomic_bool stop;
    atomic_int ended;         /* streams that ended before the run did */
    pthread_mutex_t mu;
    cebus_error stream_error;
};

struct consumer {
    pthread_t thread;
    struct durable_run *r;
    struct bench_acker acker;
};

static void *consumer_main(void *arg)
{
    struct consumer *c = arg;
    struct durable_run *r = c->r;
    Cebus__V1__SubscribeRequest req = CEBUS__V1__SUBSCRIBE_REQUEST__INIT;
    cebus_client *client = cebus_client_new(r->addr, r->key);
    cebus_stream *s = NULL;
    cebus_error err;

    req.bus = (char *)r->bus;
    req.subscription = r->sub;
    req.max_in_flight = (uint32_t)r->in_flight;
    if (cebus_subscribe(client, &req, &s, &err) != 0)
        goto ended;
    while (!atomic_load(&r->stop)) {
        Cebus__V1__SubscribeResponse *msg = NULL;
        int rc = cebus_stream_next(s, 50, &msg, &err);

        if (rc < 0)
            goto ended;
        if (rc == 0)
            continue;
        atomic_fetch_add(&r->deliveries, 1);
        if (msg->sequence >= (uint64_t)r->first_seq &&
            msg->sequence < (uint64_t)r->first_seq + r->events) {
            if (atomic_exchange(&r->seen[msg->sequence - (uint64_t)r->first_seq], 1) == 0)
                atomic_fetch_add(&r->distinct, 1);
        } else {
            atomic_fetch_add(&r->foreign, 1);
        }
        if (msg->ack_id && msg->ack_id[0])
            bench_acker_push(&c->acker, msg->ack_id);
        cebus__v1__subscribe_response__free_unpacked(msg, NULL);
    }
    cebus_stream_close(s);
    cebus_client_free(client);
    return NULL;
ended:
    pthread_mutex_lock(&r->mu);
    if (atomic_fetch_add(&r->ended, 1) == 0)
        r->stream_error = err;
    pthread_mutex_unlock(&r->mu);
    cebus_stream_close(s);
    cebus_client_free(client);
    return NULL;
}

/* Publishes the backlog in batches of PUT_BATCH; sets r->first_seq. */
static int publish_backlog(struct durable_run *r, long bytes)
{
    cebus_client *c = cebus_client_new(r->addr, r->key);
    struct bench_event *evs = calloc(PUT_BATCH, sizeof *evs);
    Io__Cloudevents__V1__CloudEvent *ptrs[PUT_BATCH];
    char run[24];
    uint64_t done = 0, n = 0;
    int rc = 0;

    if (!evs)
        abort();
    bench_run_id(run, sizeof run);
    for (int i = 0; i < PUT_BATCH; i++) {
        bench_event_init(&evs[i], (unsigned)i, (size_t)bytes, false, run);
        ptrs[i] = &evs[i].ev;
    }
    r->first_seq = 0;
    while (done < r->events) {
        Cebus__V1__PutEventsRequest req = CEBUS__V1__PUT_EVENTS_REQUEST__INIT;
        Cebus__V1__PutEventsResponse *resp = NULL;
        size_t k = r->events - done < PUT_BATCH ? (size_t)(r->events - done) : PUT_BATCH;
        cebus_error err;

        for (size_t i = 0; i < k; i++)
            bench_event_set_id(&evs[i], (unsigned)i, ++n);
        req.bus = (char *)r->bus;
        req.events = ptrs;
        req.n_events = k;
        if (cebus_put_events(c, &req, &resp, &err) != 0) {
            fprintf(stderr, "cebus-bench durable: publish: %s: %s\n",
                    cebus_status_name(err.code), err.message);
            rc = 1;
            break;
        }
        if (resp->failed_count) {
            fprintf(stderr, "cebus-bench durable: publish: an entry was refused: %s\n",
                    resp->results[0]->message ? resp->results[0]->message : "");
            cebus__v1__put_events_response__free_unpacked(resp, NULL);
            rc = 1;
            break;
        }
        /* One publisher: the backlog's sequences are consecutive. */
        if (done == 0)
            r->first_seq = (int64_t)resp->results[0]->sequence;
        cebus__v1__put_events_response__free_unpacked(resp, NULL);
        done += k;
    }
    for (int i = 0; i < PUT_BATCH; i++)
        bench_event_free(&evs[i]);
    free(evs);
    cebus_client_free(c);
    return rc;
}

int bench_cmd_durable(int argc, char **argv)
{
    const char *addr = NULL, *key = NULL, *bus = NULL;
    long events = 100000, consumers = 1, in_flight = 1000, bytes = 1024;
    const struct bench_opt opts[] = {
        {"addr", BENCH_OPT_STR, &addr, 0, 0},
        {"key", BENCH_OPT_STR, &key, 0, 0},
        {"bus", BENCH_OPT_STR, &bus, 0, 0},
        {"events", BENCH_OPT_INT, &events, 1, 10000000},
        {"consumers", BENCH_OPT_INT, &consumers, 1, MAX_CONSUMERS},
        {"in-flight", BENCH_OPT_INT, &in_flight, 1, 1000},
        {"bytes", BENCH_OPT_INT, &bytes, 64, 1 << 20},
        {NULL, BENCH_OPT_FLAG, NULL, 0, 0},
    };
    static struct durable_run r; /* shared by threads */
    struct consumer *cs = NULL;
    uint64_t acked = 0, not_applied = 0, errors = 0, calls = 0;
    int64_t t0, t1 = 0, deadline;
    char run[24];
    int rc;

    rc = bench_parse_opts(argc, argv, opts, USAGE);
    if (rc)
        return rc == 1 ? 0 : rc;
    if (!addr || !key || !bus) {
        fprintf(stderr, "cebus-bench durable: --addr, --key and --bus are required\n%s", USAGE);
        return 2;
    }
    memset(&r, 0, sizeof r);
    r.addr = addr;
    r.key = key;
    r.bus = bus;
    r.in_flight = in_flight;
    r.events = (uint64_t)events;
    pthread_mutex_init(&r.mu, NULL);
    bench_run_id(run, sizeof run);
    snprintf(r.sub, sizeof r.sub, "d%s", run);
    cebus_library_init();

    rc = 1;
    if (bench_create_subscription(addr, key, bus, r.sub) != 0)
        goto out;
    if (publish_backlog(&r, bytes) != 0)
        goto out;
    r.seen = calloc((size_t)events, sizeof *r.seen);
    cs = calloc((size_t)consumers, sizeof *cs);
    if (!r.seen || !cs)
        abort();

    t0 = bench_now_ns();
    deadline = t0 + RUN_TIMEOUT_NS;
    for (long i = 0; i < consumers; i++) {
        cs[i].r = &r;
        bench_acker_start(&cs[i].acker, addr, key, bus, r.sub);
        if (pthread_create(&cs[i].thread, NULL, consumer_main, &cs[i]) != 0)
            abort();
    }
    /* Every backlog event delivered, and every id handed over acked. */
    for (;;) {
        uint64_t pushed_all = 0, settled = 0;

        if (atomic_load(&r.ended) || bench_now_ns() > deadline)
            break;
        if (atomic_load(&r.distinct) == r.events) {
            for (long i = 0; i < consumers; i++) {
                pthread_mutex_lock(&cs[i].acker.mu);
                pushed_all += cs[i].acker.n;
                pthread_mutex_unlock(&cs[i].acker.mu);
                settled += atomic_load(&cs[i].acker.acked) +
                           atomic_load(&cs[i].acker.not_applied);
            }
            if (pushed_all == 0 && settled >= atomic_load(&r.deliveries))
                break;
        }
        usleep(1000);
    }
    atomic_store(&r.stop, true);
    for (long i = 0; i < consumers; i++) {
        pthread_join(cs[i].thread, NULL);
        bench_acker_stop(&cs[i].acker);
        acked += atomic_load(&cs[i].acker.acked);
        not_applied += atomic_load(&cs[i].acker.not_applied);
        errors += atomic_load(&cs[i].acker.errors);
        calls += atomic_load(&cs[i].acker.calls);
        if (atomic_load(&cs[i].acker.last_ok_ns) > t1)
            t1 = atomic_load(&cs[i].acker.last_ok_ns);
        if (atomic_load(&cs[i].acker.errors))
            fprintf(stderr, "cebus-bench durable: consumer %ld: ack: %s: %s\n", i,
                    cebus_status_name(cs[i].acker.first_error.code),
                    cs[i].acker.first_error.message);
    }
    if (atomic_load(&r.ended) || atomic_load(&r.distinct) != r.events || t1 <= t0) {
        fprintf(stderr,
                "cebus-bench durable: %" PRIu64 " of %" PRIu64 " events delivered%s%s%s\n",
                (uint64_t)atomic_load(&r.distinct), r.events,
                atomic_load(&r.ended) ? "; a stream ended: " : "",
                atomic_load(&r.ended) ? cebus_status_name(r.stream_error.code) : "",
                atomic_load(&r.ended) ? r.stream_error.message : "");
        goto out;
    }
    {
        double secs = (double)(t1 - t0) / 1e9;
        uint64_t deliveries = atomic_load(&r.deliveries);

        printf("durable: %" PRIu64 " events delivered and acked by %ld consumer%s in %.2f s: "
               "%.0f events/s (%" PRIu64 " deliveries, %" PRIu64 " acks in %" PRIu64
               " calls, %" PRIu64 " not applied, %" PRIu64 " ack errors)\n",
               r.events, consumers, consumers == 1 ? "" : "s", secs, (double)r.events / secs,
               deliveries, acked, calls, not_applied, errors);
        printf("bench=durable consumers=%ld in_flight=%ld events=%" PRIu64
               " seconds=%.3f events_per_s=%.0f deliveries=%" PRIu64 " redeliveries=%" PRIu64
               " acks=%" PRIu64 " ack_calls=%" PRIu64 " not_applied=%" PRIu64
               " ack_errors=%" PRIu64 "\n",
               consumers, in_flight, r.events, secs, (double)r.events / secs, deliveries,
               deliveries - r.events, acked, calls, not_applied, errors);
        fflush(stdout);
        rc = errors ? 1 : 0;
    }
out:
    free(cs);
    free(r.seen);
    pthread_mutex_destroy(&r.mu);
    cebus_library_shutdown();
    return rc;
}
