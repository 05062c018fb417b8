/* The out-of-order-commit trap: many concurrent publishers on one bus while
 * a subscriber reads from the start. Concurrent transactions commit out of
 * order; a reader that moved past sequence N must never have a smaller one
 * committed behind it. The subscriber must therefore see every acknowledged
 * sequence exactly once, in strictly increasing order. The same holds with
 * publishers and subscriber on different cebusd replicas of one database,
 * where wake-ups travel by LISTEN/NOTIFY. */
#include "harness.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PUBLISHERS 16
#define MAX_BATCH 50
/* Bounds the whole exercise, publishing and draining. */
#define ORDERING_DEADLINE_MS 30000

struct ack {
    uint64_t seq;
    int publisher;
    int index;
};

struct ordering_run;

struct publisher {
    struct ordering_run *run;
    pthread_t thread;
    int number;
    const char *addr;
    const char *key;
    const char *bus;
    int batches;
    unsigned seed;
    /* Results, read by the main thread after the join. */
    struct ack *acks;
    size_t nacks, cap;
    int failed_code;
    char failed_msg[600];
};

struct ordering_run {
    struct publisher pubs[MAX_PUBLISHERS];
    int npubs;
    pthread_mutex_t mu;
    int running; /* publishers not yet finished; under mu */
};

static void record_ack(struct publisher *p, uint64_t seq, int index)
{
    if (p->nacks == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 256;
        p->acks = realloc(p->acks, p->cap * sizeof *p->acks);
        if (!p->acks)
            abort();
    }
    p->acks[p->nacks++] = (struct ack){seq, p->number, index};
}

/* Publishes p->batches batches of 1..MAX_BATCH events. No cmocka calls:
 * this runs on its own thread; failures are recorded for the main thread. */
static void *publish_main(void *arg)
{
    struct publisher *p = arg;
    struct ordering_run *run = p->run;
    cebus_client *c = cebus_client_new(p->addr, p->key);
    h_event *evs[MAX_BATCH];
    int index = 0;

    for (int b = 0; b < p->batches && !p->failed_code; b++) {
        int n = 1 + (int)(rand_r(&p->seed) % MAX_BATCH);
        Cebus__V1__PutEventsResponse *resp = NULL;
        cebus_error err;
        char id[48], data[64];
        int rc;

        for (int i = 0; i < n; i++) {
            snprintf(id, sizeof id, "p%d-%d", p->number, index + i);
            snprintf(data, sizeof data, "{\"publisher\":%d,\"index\":%d}", p->number, index + i);
            evs[i] = h_event_new(id, "/it/ordering", "ordering.test", data);
        }
        rc = h_put(c, p->bus, evs, (size_t)n, &resp, &err);
        if (rc != 0) {
            p->failed_code = rc;
            snprintf(p->failed_msg, sizeof p->failed_msg, "PutEvents: %s", err.message);
        } else if (resp->n_results != (size_t)n) {
            p->failed_code = GRPC_STATUS_INTERNAL;
            snprintf(p->failed_msg, sizeof p->failed_msg, "%zu results for %d events",
                     resp->n_results, n);
        } else {
            for (int i = 0; i < n; i++) {
                if (resp->results[i]->code != 0) {
                    p->failed_code = resp->results[i]->code;
                    snprintf(p->failed_msg, sizeof p->failed_msg, "entry %d: %s", i,
                             resp->results[i]->message);
                    break;
                }
                record_ack(p, resp->results[i]->sequence, index + i);
            }
        }
        if (resp)
            cebus__v1__put_events_response__free_unpacked(resp, NULL);
        for (int i = 0; i < n; i++)
            h_event_free(evs[i]);
        index += n;
    }
    cebus_client_free(c);
    pthread_mutex_lock(&run->mu);
    run->running--;
    pthread_mutex_unlock(&run->mu);
    return NULL;
}

static int cmp_ack(const void *a, const void *b)
{
    const struct ack *x = a, *y = b;

    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

struct received {
    uint64_t seq;
    char id[48];
};

/* Runs npubs publishers (publisher i on pub_addrs[i % naddrs]) with batches
 * each on tenant t's bus, while a stream from the earliest position on
 * sub_addr reads; then checks what the stream saw against what was
 * acknowledged. */
static void run_ordering(const struct h_tenant *t, const char *const *pub_addrs, int naddrs,
                         const char *sub_addr, int npubs, int batches, unsigned seed)
{
    struct ordering_run *run = calloc(1, sizeof *run);
    cebus_client *sub = cebus_client_new(sub_addr, t->subscriber_key);
    struct received *got = NULL;
    size_t ngot = 0, gotcap = 0, total = 0, k = 0;
    struct ack *all;
    int64_t deadline = h_now_ms() + ORDERING_DEADLINE_MS;
    cebus_stream *s;
    uint64_t sentinel;
    bool publishing = true;
    char violation[256] = "";

    assert_non_null(run);
    assert_true(npubs <= MAX_PUBLISHERS);
    pthread_mutex_init(&run->mu, NULL);
    s = h_subscribe_ok(sub, t->bus, "{}", CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);

    run->npubs = npubs;
    run->running = npubs;
    for (int i = 0; i < npubs; i++) {
        struct publisher *p = &run->pubs[i];
        p->run = run;
        p->number = i;
        p->addr = pub_addrs[i % naddrs];
        p->key = t->publisher_key;
        p->bus = t->bus;
        p->batches = batches;
        p->seed = seed + (unsigned)i * 7919u;
        assert_int_equal(pthread_create(&p->thread, NULL, publish_main, p), 0);
    }

    /* Read while the publishers publish, then until every acknowledged
     * event has arrived. */
    for (;;) {
        Cebus__V1__SubscribeResponse *m;

        if (publishing) {
            pthread_mutex_lock(&run->mu);
            publishing = run->running > 0;
            pthread_mutex_unlock(&run->mu);
            if (!publishing) {
                for (int i = 0; i < npubs; i++)
                    pthread_join(run->pubs[i].thread, NULL);
                for (int i = 0; i < npubs; i++) {
                    if (run->pubs[i].failed_code)
                        fail_msg("publisher %d: %s: %s", i,
                                 cebus_status_name(run->pubs[i].failed_code),
                                 run->pubs[i].failed_msg);
                    total += run->pubs[i].nacks;
                }
            }
        }
        if (!publishing && (ngot >= total || violation[0]))
            break;
        if (h_now_ms() > deadline) {
            if (publishing)
                fail_msg("publishers still running after %d ms", ORDERING_DEADLINE_MS);
            /* The comparison below names the first missing sequence. */
            print_error("after %d ms the stream delivered %zu of %zu acknowledged events\n",
                        ORDERING_DEADLINE_MS, ngot, total);
            break;
        }
        m = h_next(s, 100);
        if (!m)
            continue;
        if (ngot == gotcap) {
            gotcap = gotcap ? gotcap * 2 : 1024;
            got = realloc(got, gotcap * sizeof *got);
            assert_non_null(got);
        }
        got[ngot].seq = m->sequence;
        snprintf(got[ngot].id, sizeof got[ngot].id, "%s", m->event ? m->event->id : "");
        /* Reported once the publishers are done, so that no thread is
         * left running on a failed test. */
        if (ngot > 0 && got[ngot].seq <= got[ngot - 1].seq && !violation[0])
            snprintf(violation, sizeof violation,
                     "delivery %zu has sequence %llu after %llu: not strictly increasing", ngot,
                     (unsigned long long)got[ngot].seq, (unsigned long long)got[ngot - 1].seq);
        ngot++;
        cebus__v1__subscribe_response__free_unpacked(m, NULL);
    }

    if (violation[0])
        fail_msg("%s", violation);
    /* Every acknowledged sequence exactly once, each carrying the event
     * that was acknowledged with it. */
    all = calloc(total ? total : 1, sizeof *all);
    assert_non_null(all);
    for (int i = 0; i < npubs; i++)
        for (size_t j = 0; j < run->pubs[i].nacks; j++)
            all[k++] = run->pubs[i].acks[j];
    qsort(all, total, sizeof *all, cmp_ack);
    for (size_t i = 1; i < total; i++)
        if (all[i].seq == all[i - 1].seq)
            fail_msg("sequence %llu acknowledged twice", (unsigned long long)all[i].seq);
    for (size_t i = 0; i < total && i < ngot; i++) {
        char id[48];
        snprintf(id, sizeof id, "p%d-%d", all[i].publisher, all[i].index);
        if (got[i].seq != all[i].seq)
            fail_msg("delivery %zu: sequence %llu, but the %zu-th acknowledged sequence is %llu "
                     "(a gap or an extra event)",
                     i, (unsigned long long)got[i].seq, i, (unsigned long long)all[i].seq);
        if (strcmp(got[i].id, id) != 0)
            fail_msg("sequence %llu carries event %s, acknowledged for %s",
                     (unsigned long long)got[i].seq, got[i].id, id);
    }
    if (ngot != total)
        fail_msg("delivered %zu events, acknowledged %zu; first undelivered sequence %llu", ngot,
                 total, (unsigned long long)all[ngot < total ? ngot : total - 1].seq);
    /* Nothing more is queued behind: the next delivery is a new event. */
    {
        cebus_client *pub = cebus_client_new(pub_addrs[0], t->publisher_key);
        Cebus__V1__SubscribeResponse *m;
        sentinel = h_put_one_ok(pub, t->bus, "sentinel", "ordering.sentinel", NULL);
        m = h_expect_next(s);
        assert_int_equal(m->sequence, sentinel);
        assert_string_equal(m->event->id, "sentinel");
        cebus__v1__subscribe_response__free_unpacked(m, NULL);
        cebus_client_free(pub);
    }
    print_message("ordering: %d publishers, %zu events, all delivered once and in order\n", npubs,
                  total);

    for (int i = 0; i < npubs; i++)
        free(run->pubs[i].acks);
    pthread_mutex_destroy(&run->mu);
    free(run);
    free(all);
    free(got);
    cebus_stream_close(s);
    cebus_client_free(sub);
}

/* 16 concurrent publishers with random batch sizes on one server. */
static void test_concurrent_publishers_never_expose_sequences_out_of_order(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    const char *addrs[] = {env->srv[0].addr};

    h_tenant_create_ok(env->admin, "ordering", "orders", &t);
    run_ordering(&t, addrs, 1, env->srv[0].addr, 16, 12, 20240501u);
}

/* A stream with a small in-flight window over a long backlog: flow control
 * may pause it, but never skip an event. The window fills whenever the
 * server reads the log faster than the stream drains, and room appears
 * while the read is still offering later events. */
static void test_small_in_flight_window_never_skips_events(void **state)
{
    static const uint32_t windows[] = {1, 2, 7};
    struct h_env *env = *state;
    struct h_tenant t;
    Cebus__V1__PutEventsResponse *resp = NULL;
    cebus_client *pub, *sub;
    h_event *evs[500];
    uint64_t first = 0, last = 0;
    cebus_error err;
    char id[32];

    h_tenant_create_ok(env->admin, "windows", "orders", &t);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    for (int i = 0; i < 500; i++) {
        snprintf(id, sizeof id, "w-%d", i);
        evs[i] = h_event_new(id, "/it/windows", "t", "{\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}");
    }
    h_assert_status("PutEvents", h_put(pub, "orders", evs, 500, &resp, &err), &err, 0, NULL);
    assert_int_equal(resp->failed_count, 0);
    first = resp->results[0]->sequence;
    last = resp->results[499]->sequence;
    assert_int_equal(last - first, 499);
    cebus__v1__put_events_response__free_unpacked(resp, NULL);
    for (int i = 0; i < 500; i++)
        h_event_free(evs[i]);

    for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
        Cebus__V1__SubscribeRequest req;
        cebus_stream *s = NULL;
        uint64_t want = first;

        h_subscribe_request(&req, "orders", "{}", NULL,
                            CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
        req.max_in_flight = windows[w];
        h_assert_status("Subscribe", cebus_subscribe(sub, &req, &s, &err), &err, 0, NULL);
        while (want <= last) {
            Cebus__V1__SubscribeResponse *m = h_expect_next(s);
            if (m->sequence != want)
                fail_msg("max_in_flight %u: got sequence %llu, want %llu (events skipped)",
                         windows[w], (unsigned long long)m->sequence,
                         (unsigned long long)want);
            cebus__v1__subscribe_response__free_unpacked(m, NULL);
            want++;
        }
        cebus_stream_close(s);
    }
    cebus_client_free(pub);
    cebus_client_free(sub);
}

/* Large events fill a stream's byte budget (4 MiB) long before its window:
 * the stream must pause and resume on bytes just as on counts, without
 * skipping, and the events arrive whole. */
static void test_byte_budget_never_skips_events(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    Cebus__V1__PutEventsResponse *resp = NULL;
    Cebus__V1__SubscribeRequest req;
    cebus_client *pub, *sub;
    cebus_stream *s = NULL;
    h_event *evs[10];
    uint64_t first = 0, want;
    cebus_error err;
    char id[32];

    h_tenant_create_ok(env->admin, "bytes", "orders", &t);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    /* 4 puts of 10 events of 200 KiB: 8 MiB, twice a stream's budget. */
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 10; i++) {
            snprintf(id, sizeof id, "b-%d-%d", round, i);
            evs[i] = h_event_new(id, "/it/bytes", "t", NULL);
            h_event_set_binary(evs[i], 200 * 1024, round * 10 + i);
        }
        h_assert_status("PutEvents", h_put(pub, "orders", evs, 10, &resp, &err), &err, 0, NULL);
        assert_int_equal(resp->failed_count, 0);
        if (round == 0)
            first = resp->results[0]->sequence;
        cebus__v1__put_events_response__free_unpacked(resp, NULL);
        for (int i = 0; i < 10; i++)
            h_event_free(evs[i]);
    }
    h_subscribe_request(&req, "orders", "{}", NULL,
                        CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
    h_assert_status("Subscribe", cebus_subscribe(sub, &req, &s, &err), &err, 0, NULL);
    for (want = first; want < first + 40; want++) {
        Cebus__V1__SubscribeResponse *m = h_expect_next(s);
        if (m->sequence != want)
            fail_msg("got sequence %llu, want %llu (events skipped)",
                     (unsigned long long)m->sequence, (unsigned long long)want);
        assert_int_equal(m->event->binary_data.len, 200 * 1024);
        cebus__v1__subscribe_response__free_unpacked(m, NULL);
    }
    cebus_stream_close(s);
    cebus_client_free(pub);
    cebus_client_free(sub);
}

/* A replica whose periodic log catch-up is slowed to a minute, so that only
 * NOTIFY from the other replica (or its own commits) can wake its streams. */
static const char *const slow_catchup_env[] = {"CEBUS_CATCHUP_MS=60000", NULL};

static int replica_index(struct h_env *env)
{
    if (env->nservers < 2)
        h_env_add_server_ok(env, slow_catchup_env);
    return 1;
}

/* Publish on one replica, subscribe on the other, both ways: events arrive
 * promptly and in order. */
static void test_publish_on_one_replica_reaches_subscriber_on_another(void **state)
{
    struct h_env *env = *state;
    int r = replica_index(env);
    struct h_tenant t;
    cebus_client *pub0, *sub1, *pub1, *sub0;
    Cebus__V1__SubscribeResponse *m;
    cebus_stream *s;
    uint64_t seqs[20];
    char id[32];

    h_tenant_create_ok(env->admin, "replicas", "orders", &t);
    pub0 = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub1 = cebus_client_new(env->srv[r].addr, t.subscriber_key);
    pub1 = cebus_client_new(env->srv[r].addr, t.publisher_key);
    sub0 = cebus_client_new(env->srv[0].addr, t.subscriber_key);

    /* The first event is read from the log when the stream starts; it also
     * proves the replica's dispatcher is connected and listening. */
    seqs[0] = h_put_one_ok(pub0, "orders", "first", "t", NULL);
    s = h_subscribe_ok(sub1, "orders", "{}", CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
    m = h_expect_next(s);
    assert_int_equal(m->sequence, seqs[0]);
    cebus__v1__subscribe_response__free_unpacked(m, NULL);

    /* Live events from the other replica: only a notification can bring
     * them within the timeout. */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 5; i++) {
            snprintf(id, sizeof id, "r%d-%d", round, i);
            seqs[i] = h_put_one_ok(pub0, "orders", id, "t", NULL);
        }
        for (int i = 0; i < 5; i++) {
            m = h_expect_next(s);
            snprintf(id, sizeof id, "r%d-%d", round, i);
            assert_int_equal(m->sequence, seqs[i]);
            assert_string_equal(m->event->id, id);
            cebus__v1__subscribe_response__free_unpacked(m, NULL);
        }
    }
    cebus_stream_close(s);

    /* The other way round. */
    s = h_subscribe_ok(sub0, "orders", "{}", CEBUS__V1__START_POSITION__START_POSITION_LATEST, 0);
    h_stream_sync_ok(pub1, "orders", s);
    seqs[0] = h_put_one_ok(pub1, "orders", "from-replica", "t", NULL);
    m = h_expect_next(s);
    assert_int_equal(m->sequence, seqs[0]);
    assert_string_equal(m->event->id, "from-replica");
    cebus__v1__subscribe_response__free_unpacked(m, NULL);
    cebus_stream_close(s);

    cebus_client_free(pub0);
    cebus_client_free(sub1);
    cebus_client_free(pub1);
    cebus_client_free(sub0);
}

/* The ordering trap across replicas: publishers on both servers, the
 * subscriber on the slow-catch-up replica. */
static void test_concurrent_publishers_on_two_replicas_stay_in_order(void **state)
{
    struct h_env *env = *state;
    int r = replica_index(env);
    struct h_tenant t;
    const char *addrs[] = {env->srv[0].addr, env->srv[r].addr};

    h_tenant_create_ok(env->admin, "ordering-replicas", "orders", &t);
    run_ordering(&t, addrs, 2, env->srv[r].addr, 8, 8, 777u);
}

/* SIGTERM on a replica with an open stream: the stream ends with
 * UNAVAILABLE telling the client to reconnect, the replica exits 0, and the
 * other replica keeps serving (runs last: it stops the replica). */
static void test_replica_shutdown_ends_streams_and_exits_cleanly(void **state)
{
    struct h_env *env = *state;
    int r = replica_index(env);
    struct h_tenant t;
    Cebus__V1__SubscribeResponse *m = NULL;
    cebus_client *sub1, *pub0;
    cebus_stream *s;
    cebus_error err;
    uint64_t seq;
    int got;

    h_tenant_create_ok(env->admin, "draining", "orders", &t);
    sub1 = cebus_client_new(env->srv[r].addr, t.subscriber_key);
    pub0 = cebus_client_new(env->srv[0].addr, t.publisher_key);
    seq = h_put_one_ok(pub0, "orders", "before", "t", NULL);
    s = h_subscribe_ok(sub1, "orders", "{}", CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
    m = h_expect_next(s);
    assert_int_equal(m->sequence, seq);
    cebus__v1__subscribe_response__free_unpacked(m, NULL);

    /* Read the stream while the replica drains: the client's I/O runs only
     * while a thread waits on it, and the replica's shutdown waits for the
     * client to take its streams' final status. */
    assert_int_equal(kill(env->srv[r].pid, SIGTERM), 0);
    got = cebus_stream_next(s, H_EVENT_TIMEOUT_MS, &m, &err);
    assert_int_equal(got, -1);
    h_assert_status("stream at shutdown", err.code, &err, GRPC_STATUS_UNAVAILABLE, "reconnect");
    cebus_stream_close(s);
    /* An idle client connection would hold the drain until gRPC's backup
     * poller answers the server's GOAWAY ping (about 5 s): close it first. */
    cebus_client_free(sub1);
    assert_int_equal(h_server_stop(&env->srv[r]), 0);

    seq = h_put_one_ok(pub0, "orders", "after", "t", NULL);
    assert_true(seq > 0);
    cebus_client_free(pub0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_publishers_never_expose_sequences_out_of_order),
        cmocka_unit_test(test_small_in_flight_window_never_skips_events),
        cmocka_unit_test(test_byte_budget_never_skips_events),
        cmocka_unit_test(test_publish_on_one_replica_reaches_subscriber_on_another),
        cmocka_unit_test(test_concurrent_publishers_on_two_replicas_stay_in_order),
        cmocka_unit_test(test_replica_shutdown_ends_streams_and_exits_cleanly),
    };

    return cmocka_run_group_tests(tests, h_env_setup, h_env_teardown);
}
