/* Faults cebus must survive, with the real cebusd: a server killed with
 * SIGKILL under load and restarted, and a consumer moving between replicas
 * while publishers spread over three of them. In every case the consumer
 * resumes from the last sequence it saw plus one and must receive every
 * event whose PutEvents succeeded, in order, none twice. PostgreSQL
 * restarts are in test_faults_pg.c. */
#include "harness_load.h"

#include <stdio.h>
#include <string.h>

/* Bounds each phase of a test: publishing enough, recovering, draining. */
#define PHASE_DEADLINE_MS 60000

#define ALLOW(code) (1u << (code))

struct progress {
    struct h_load *load;
    struct h_reader *reader;
    long acked;     /* at least this many events acknowledged */
    size_t got;     /* and at least this many delivered */
    long ok_after[H_LOAD_MAX_PUBLISHERS]; /* and each publisher past this many OK calls */
};

static bool progressed(void *arg)
{
    struct progress *p = arg;
    long acked;

    h_load_totals(p->load, &acked, NULL, NULL);
    if (acked < p->acked || p->reader->ngot < p->got)
        return false;
    for (int i = 0; i < p->load->npubs; i++)
        if (h_load_ok_calls(p->load, i) <= p->ok_after[i])
            return false;
    return true;
}

/* Sets p to wait for more events acknowledged and delivered than now, and a
 * new successful call from every publisher. */
static void expect_more(struct progress *p, long more_acked, size_t more_got)
{
    h_load_totals(p->load, &p->acked, NULL, NULL);
    p->acked += more_acked;
    p->got = p->reader->ngot + more_got;
    for (int i = 0; i < p->load->npubs; i++)
        p->ok_after[i] = h_load_ok_calls(p->load, i);
}

/* kill -9 of the server while 8 publishers are mid-batch and a consumer is
 * mid-stream; the server restarts on the same address. Calls in flight may
 * fail (the publishers retry them with the same ids); none may have
 * reported success for an event that is not delivered. */
static void test_kill_9_under_load_loses_no_acknowledged_event(void **state)
{
    struct h_env *env = *state;
    bool vg = h_under_valgrind();
    const char *addrs[] = {env->srv[0].addr};
    struct h_load *load;
    struct h_reader reader;
    struct progress p = {.reader = &reader};
    struct h_tenant t;
    cebus_error err;

    h_tenant_create_ok(env->admin, "crash", "orders", &t);
    h_reader_init(&reader, env->srv[0].addr, t.subscriber_key, t.bus);
    h_assert_status("Subscribe", h_reader_open(&reader, &err), &err, 0, NULL);
    /* A killed server's in-flight calls end with UNAVAILABLE (connection
     * lost); calls made while it is down fail the same way. */
    p.load = load = h_load_start(addrs, 1, t.publisher_key, t.bus, 8, vg ? 20 : 50, 90210u,
                 ALLOW(GRPC_STATUS_UNAVAILABLE));

    for (int round = 0; round < 2; round++) {
        int opens = reader.opens;

        expect_more(&p, vg ? 100 : 800, vg ? 50 : 300);
        h_reader_run_until(&reader, progressed, &p, h_now_ms() + PHASE_DEADLINE_MS,
                           "load before the kill");
        assert_int_equal(h_server_kill(&env->srv[0]), 0);
        assert_int_equal(h_server_restart(&env->srv[0], env->db.conninfo, NULL), 0);
        /* Every publisher succeeds again, and the consumer resumes. */
        expect_more(&p, 1, 1);
        h_reader_run_until(&reader, progressed, &p, h_now_ms() + PHASE_DEADLINE_MS,
                           "recovery after the kill");
        assert_true(reader.opens > opens);
    }
    h_load_stop(load);
    h_load_check(load, &reader, h_now_ms() + PHASE_DEADLINE_MS, "kill -9");
    h_reader_free(&reader);
    h_load_free(load);
}

/* Publishers spread over three replicas of one database; one consumer reads
 * from replica A, disconnects, resumes on B, then on C. It sees every
 * acknowledged sequence exactly once and in order. */
static void test_consumer_moving_across_three_replicas_misses_nothing(void **state)
{
    struct h_env *env = *state;
    bool vg = h_under_valgrind();
    struct h_load *load;
    struct h_reader reader;
    struct progress p = {.reader = &reader};
    struct h_tenant t;
    const char *addrs[3];
    cebus_error err;

    while (env->nservers < 3)
        h_env_add_server_ok(env, NULL);
    for (int i = 0; i < 3; i++)
        addrs[i] = env->srv[i].addr;
    h_tenant_create_ok(env->admin, "replicas", "orders", &t);
    h_reader_init(&reader, addrs[0], t.subscriber_key, t.bus);
    h_assert_status("Subscribe", h_reader_open(&reader, &err), &err, 0, NULL);
    /* Every replica is up throughout: no call may fail. */
    p.load = load = h_load_start(addrs, 3, t.publisher_key, t.bus, vg ? 3 : 6, vg ? 20 : 50,
                                 4711u, 0);

    for (int hop = 1; hop <= 3; hop++) {
        expect_more(&p, vg ? 60 : 500, vg ? 30 : 300);
        h_reader_run_until(&reader, progressed, &p, h_now_ms() + PHASE_DEADLINE_MS,
                           "reading from one replica");
        if (hop < 3) {
            h_reader_switch(&reader, addrs[hop]);
            h_assert_status("Subscribe on the next replica", h_reader_open(&reader, &err), &err,
                            0, NULL);
        }
    }
    h_load_stop(load);
    h_load_check(load, &reader, h_now_ms() + PHASE_DEADLINE_MS, "three replicas");
    assert_int_equal(reader.opens, 3);
    assert_int_equal(reader.ends, 0);
    h_reader_free(&reader);
    h_load_free(load);
}

/* kill -9 of one of three replicas while publishers go through all of
 * them and the consumer reads from another: the consumer's stream never
 * ends, the killed replica's publishers retry until it is back, and the
 * consumer still sees every acknowledged sequence once, in order. */
static void test_replica_killed_mid_load_costs_other_replicas_nothing(void **state)
{
    struct h_env *env = *state;
    bool vg = h_under_valgrind();
    struct h_load *load;
    struct h_reader reader;
    struct progress p = {.reader = &reader};
    struct h_tenant t;
    const char *addrs[3];
    cebus_error err;

    while (env->nservers < 3)
        h_env_add_server_ok(env, NULL);
    for (int i = 0; i < 3; i++)
        addrs[i] = env->srv[i].addr;
    h_tenant_create_ok(env->admin, "replica-crash", "orders", &t);
    h_reader_init(&reader, addrs[1], t.subscriber_key, t.bus);
    h_assert_status("Subscribe", h_reader_open(&reader, &err), &err, 0, NULL);
    p.load = load = h_load_start(addrs, 3, t.publisher_key, t.bus, vg ? 3 : 6, vg ? 20 : 50,
                                 1999u, ALLOW(GRPC_STATUS_UNAVAILABLE));

    expect_more(&p, vg ? 60 : 500, vg ? 30 : 300);
    h_reader_run_until(&reader, progressed, &p, h_now_ms() + PHASE_DEADLINE_MS,
                       "load before the kill");
    assert_int_equal(h_server_kill(&env->srv[2]), 0);
    assert_int_equal(h_server_restart(&env->srv[2], env->db.conninfo, NULL), 0);
    expect_more(&p, 1, 1);
    h_reader_run_until(&reader, progressed, &p, h_now_ms() + PHASE_DEADLINE_MS,
                       "recovery after the kill");
    h_load_stop(load);
    h_load_check(load, &reader, h_now_ms() + PHASE_DEADLINE_MS, "replica killed");
    assert_int_equal(reader.opens, 1);
    assert_int_equal(reader.ends, 0);
    h_reader_free(&reader);
    h_load_free(load);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_kill_9_under_load_loses_no_acknowledged_event,
                                  h_load_teardown),
        cmocka_unit_test_teardown(test_consumer_moving_across_three_replicas_misses_nothing,
                                  h_load_teardown),
        cmocka_unit_test_teardown(test_replica_killed_mid_load_costs_other_replicas_nothing,
                                  h_load_teardown),
    };

    return cmocka_run_group_tests(tests, h_env_setup, h_env_teardown);
}
