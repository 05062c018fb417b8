/* PostgreSQL restarted under a running cebusd and publish load: calls
 * during the outage fail with UNAVAILABLE (never OK, never another code),
 * the server reconnects by itself (appender, dispatcher, RPC pool),
 * publishing succeeds again within a bounded wait, and the consumer's
 * stream, open across the outage or reopened from its last sequence plus
 * one, misses nothing. The database is a cluster of this test's own, so
 * that stopping it disturbs no other test. */
#include "harness_load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Bounds each phase: load before the stop, the outage, the recovery. */
#define PHASE_DEADLINE_MS 60000

struct pg_env {
    struct h_env *env; /* first: h_env's tests take it as their state */
    struct h_cluster cluster;
    /* Made by the first test, before any outage: right after one, calls
     * may still fail with UNAVAILABLE for a moment (a pooled connection
     * backs off after a failed reconnect), and creating a tenant is not
     * a call to repeat blindly. */
    bool ready;
    int replica;
    struct h_tenant outage, quiet;
};

static int setup(void **state)
{
    struct pg_env *pe = calloc(1, sizeof *pe);
    void *env_state = NULL;

    if (!pe)
        abort();
    if (h_cluster_start(&pe->cluster) != 0)
        goto fail;
    /* h_env_setup creates its database on the cluster of this variable. */
    setenv("CEBUS_TEST_DATABASE_URL", pe->cluster.url, 1);
    if (h_env_setup(&env_state) != 0)
        goto fail;
    pe->env = env_state;
    *state = pe;
    return 0;
fail:
    h_cluster_destroy(&pe->cluster);
    free(pe);
    return -1;
}

static int teardown(void **state)
{
    struct pg_env *pe = *state;
    void *env_state = pe->env;
    int rc = 0;

    /* The database must be up for the servers to drain and the drop. */
    if (!pe->cluster.running && h_cluster_resume(&pe->cluster) != 0)
        rc = -1;
    if (h_env_teardown(&env_state) != 0)
        rc = -1;
    h_cluster_destroy(&pe->cluster);
    free(pe);
    return rc;
}

struct progress {
    struct h_load *load;
    struct h_reader *reader;
    long acked;
    size_t got;
    long failed;
    long ok_after[H_LOAD_MAX_PUBLISHERS];
};

/* More events acknowledged and delivered than asked, more failed calls
 * than asked, and a new successful call from every publisher. */
static bool progressed(void *arg)
{
    struct progress *p = arg;
    long acked, failed;

    h_load_totals(p->load, &acked, NULL, &failed);
    if (acked < p->acked || p->reader->ngot < p->got || failed < p->failed)
        return false;
    for (int i = 0; i < p->load->npubs; i++)
        if (h_load_ok_calls(p->load, i) <= p->ok_after[i])
            return false;
    return true;
}

static void expect_more(struct progress *p, long more_acked, size_t more_got)
{
    h_load_totals(p->load, &p->acked, NULL, &p->failed);
    p->acked += more_acked;
    p->got = p->reader->ngot + more_got;
    for (int i = 0; i < p->load->npubs; i++)
        p->ok_after[i] = h_load_ok_calls(p->load, i);
}

/* During the outage: every publisher's calls fail (with UNAVAILABLE, or the
 * load records a violation), none succeeds. */
static bool outage_seen(void *arg)
{
    struct progress *p = arg;
    long failed;

    h_load_totals(p->load, NULL, NULL, &failed);
    return failed >= p->failed;
}

/* Other RPCs than PutEvents go through the executor pool: while the
 * database is down they fail with UNAVAILABLE, and after it is back each
 * succeeds within a bounded wait. */
static int list_buses(cebus_client *c, cebus_error *err)
{
    Cebus__V1__ListBusesRequest req = CEBUS__V1__LIST_BUSES_REQUEST__INIT;
    Cebus__V1__ListBusesResponse *resp = NULL;
    int rc = cebus_list_buses(c, &req, &resp, err);

    if (rc == 0)
        cebus__v1__list_buses_response__free_unpacked(resp, NULL);
    return rc;
}

/* A replica whose periodic log catch-up is slowed to a minute: its streams
 * see new events only through NOTIFY, so its dispatcher must LISTEN again
 * after reconnecting. */
static const char *const slow_catchup_env[] = {"CEBUS_CATCHUP_MS=60000", NULL};

/* Starts the replica and creates the tests' tenants, once. */
static void ready_ok(struct pg_env *pe)
{
    if (pe->ready)
        return;
    pe->replica = h_env_add_server_ok(pe->env, slow_catchup_env);
    h_tenant_create_ok(pe->env->admin, "outage", "orders", &pe->outage);
    h_tenant_create_ok(pe->env->admin, "quiet", "orders", &pe->quiet);
    pe->ready = true;
}

static bool stream_open(void *arg)
{
    return ((struct h_reader *)arg)->stream != NULL;
}

static bool reader_got(void *arg)
{
    struct progress *p = arg;

    return p->reader->ngot >= p->got;
}

/* Publishers on server 0; one stream stays open on the replica across the
 * outages, another (on server 0) is closed before each outage and
 * reopened from its last sequence plus one while the database is down or
 * after it is back. */
static void test_postgresql_restart_under_load_loses_nothing(void **state)
{
    struct pg_env *pe = *state;
    struct h_env *env = pe->env;
    bool vg = h_under_valgrind();
    const char *addrs[] = {env->srv[0].addr};
    static const char *const modes[] = {"fast", "immediate"};
    struct h_load *load;
    struct h_reader reader, reopened;
    struct progress p = {.reader = &reader}, q = {.reader = &reopened};
    const struct h_tenant *t = &pe->outage;
    cebus_client *tenant_admin;
    cebus_error err;

    ready_ok(pe);
    tenant_admin = cebus_client_new(env->srv[0].addr, t->admin_key);
    h_reader_init(&reader, env->srv[pe->replica].addr, t->subscriber_key, t->bus);
    h_reader_init(&reopened, env->srv[0].addr, t->subscriber_key, t->bus);
    h_reader_run_until(&reader, stream_open, &reader, h_now_ms() + PHASE_DEADLINE_MS,
                       "opening the stream");
    p.load = load = h_load_start(addrs, 1, t->publisher_key, t->bus, 4, vg ? 20 : 50, 5150u,
                                 1u << GRPC_STATUS_UNAVAILABLE);

    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        int64_t deadline;
        int rc;

        expect_more(&p, vg ? 100 : 500, vg ? 50 : 300);
        h_reader_run_until(&reader, progressed, &p, h_now_ms() + PHASE_DEADLINE_MS,
                           "load before the outage");
        q.got = reopened.ngot + 1;
        h_reader_run_until(&reopened, reader_got, &q, h_now_ms() + PHASE_DEADLINE_MS,
                           "second stream before the outage");
        h_reader_switch(&reopened, env->srv[0].addr);
        assert_int_equal(h_cluster_stop(&pe->cluster, modes[m]), 0);

        /* Calls fail while it is down: wait for a few failures per
         * publisher, and check a call of the pool too. */
        h_load_totals(load, NULL, NULL, &p.failed);
        p.failed += 4 * load->npubs;
        h_reader_run_until(&reader, outage_seen, &p, h_now_ms() + PHASE_DEADLINE_MS,
                           "publish calls failing during the outage");
        rc = list_buses(tenant_admin, &err);
        h_assert_status("ListBuses while the database is down", rc, &err,
                        GRPC_STATUS_UNAVAILABLE, NULL);
        /* A stream may open on a cached key and wait for the database, or
         * be refused with UNAVAILABLE; nothing else. */
        rc = h_reader_open(&reopened, &err);
        if (rc != 0)
            h_assert_status("Subscribe while the database is down", rc, &err,
                            GRPC_STATUS_UNAVAILABLE, NULL);

        assert_int_equal(h_cluster_resume(&pe->cluster), 0);
        /* Publishing resumes on its own, and the stream catches up. */
        expect_more(&p, 1, 1);
        h_reader_run_until(&reader, progressed, &p, h_now_ms() + PHASE_DEADLINE_MS,
                           "publishing again after the restart");
        deadline = h_now_ms() + PHASE_DEADLINE_MS;
        while ((rc = list_buses(tenant_admin, &err)) != 0) {
            if (rc != GRPC_STATUS_UNAVAILABLE || h_now_ms() > deadline)
                h_assert_status("ListBuses after the restart", rc, &err, 0, NULL);
            usleep(50 * 1000); /* retry pacing, bounded by the deadline */
        }
        print_message("%s stop: open stream ended %d times (last status %s)\n", modes[m],
                      reader.ends, cebus_status_name(reader.last_end_code));
    }
    h_load_stop(load);
    h_load_check(load, &reader, h_now_ms() + PHASE_DEADLINE_MS, "stream open across restarts");
    h_load_check(load, &reopened, h_now_ms() + PHASE_DEADLINE_MS, "stream reopened");
    h_reader_free(&reader);
    h_reader_free(&reopened);
    h_load_free(load);
    cebus_client_free(tenant_admin);
}

/* Puts one event on srv through c, retrying while the database is still
 * coming back. Returns its sequence; fails the test on any other outcome
 * or after PHASE_DEADLINE_MS. */
static uint64_t put_one_retrying(cebus_client *c, const char *bus, const char *id)
{
    int64_t deadline = h_now_ms() + PHASE_DEADLINE_MS;
    h_event *ev = h_event_new(id, "/it/faults", "faults.single", NULL);
    Cebus__V1__PutEventsResponse *resp = NULL;
    cebus_error err;
    uint64_t seq;
    int rc;

    while ((rc = h_put(c, bus, &ev, 1, &resp, &err)) != 0) {
        if (rc != GRPC_STATUS_UNAVAILABLE || h_now_ms() > deadline)
            h_assert_status("PutEvents after the restart", rc, &err, 0, NULL);
        usleep(20 * 1000); /* retry pacing, bounded by the deadline */
    }
    h_event_free(ev);
    assert_int_equal(resp->n_results, 1);
    assert_int_equal(resp->results[0]->code, 0);
    seq = resp->results[0]->sequence;
    cebus__v1__put_events_response__free_unpacked(resp, NULL);
    return seq;
}

/* The first event committed after a restart, on another server, reaches a
 * replica's stream promptly even when nothing else is published: the
 * replica may have missed its notification while it was reconnecting, so
 * reconnecting must read the log. (The replica's timer catch-up is a
 * minute, beyond H_EVENT_TIMEOUT_MS; and the stream must stay open, since
 * a reopened stream would read the log anyway.) */
static void test_first_event_after_restart_reaches_replica_stream(void **state)
{
    struct pg_env *pe = *state;
    struct h_env *env = pe->env;
    const struct h_tenant *t = &pe->quiet;
    struct h_reader reader;
    struct progress p = {.reader = &reader};
    cebus_client *pub;

    ready_ok(pe);
    pub = cebus_client_new(env->srv[0].addr, t->publisher_key);
    h_reader_init(&reader, env->srv[pe->replica].addr, t->subscriber_key, t->bus);
    /* From the earliest event: the stream is live once it has delivered. */
    put_one_retrying(pub, t->bus, "before-restarts");
    p.got = 1;
    h_reader_run_until(&reader, reader_got, &p, h_now_ms() + PHASE_DEADLINE_MS,
                       "the stream's first event");
    for (int round = 0; round < 3; round++) {
        char id[32];
        uint64_t seq;

        assert_int_equal(h_cluster_stop(&pe->cluster, round % 2 ? "immediate" : "fast"), 0);
        assert_int_equal(h_cluster_resume(&pe->cluster), 0);
        snprintf(id, sizeof id, "after-restart-%d", round);
        seq = put_one_retrying(pub, t->bus, id);
        p.got = reader.ngot + 1;
        h_reader_run_until(&reader, reader_got, &p, h_now_ms() + H_EVENT_TIMEOUT_MS,
                           "the first event after the restart on the replica's stream");
        assert_int_equal(reader.last, seq);
        if (reader.ends)
            fail_msg("the replica ended the stream (%s) across the restart",
                     cebus_status_name(reader.last_end_code));
    }
    h_reader_free(&reader);
    cebus_client_free(pub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_postgresql_restart_under_load_loses_nothing,
                                  h_load_teardown),
        cmocka_unit_test(test_first_event_after_restart_reaches_replica_stream),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
