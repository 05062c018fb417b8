/* Retention through the real cebusd: expired events are never delivered,
 * a start position past the bus's retention is OUT_OF_RANGE with the
 * oldest retained sequence named, EARLIEST and TIME starts begin at the
 * oldest retained event, and an open stream whose next events expire
 * before it reads them ends OUT_OF_RANGE.
 *
 * Expiry is made by hand in the database (moving an event's expires_at
 * into the past, as time would); the partition drops themselves are
 * covered by tests/unit/test_store_retention.c. */
#include "harness.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALL "{}"

typedef Cebus__V1__SubscribeResponse delivery;

static PGconn *sql_connect(struct h_env *env)
{
    PGconn *c = PQconnectdb(env->db.conninfo);

    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect: %s", PQerrorMessage(c));
    return c;
}

/* Runs sql with params[0..n) and fails the test unless it succeeds. */
static void sql_ok(PGconn *c, const char *sql, int n, const char *const *params)
{
    PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("SQL failed: %s: %s", sql, PQerrorMessage(c));
    PQclear(res);
}

/* The id of tenant's bus, as text. */
static void bus_id(PGconn *c, const char *tenant, const char *bus, char *out, size_t size)
{
    const char *params[2] = {tenant, bus};
    PGresult *res = PQexecParams(c,
                                 "SELECT b.id FROM buses b JOIN tenants t ON t.id = b.tenant_id"
                                 " WHERE t.name = $1 AND b.name = $2",
                                 2, NULL, params, NULL, NULL, 0);

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        fail_msg("bus id: %s", PQerrorMessage(c));
    snprintf(out, size, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

/* Receives the next delivery and checks its sequence. */
static void expect_seq(cebus_stream *s, uint64_t seq)
{
    delivery *m = h_expect_next(s);

    if (m->sequence != seq)
        fail_msg("expected sequence %llu, got %llu", (unsigned long long)seq,
                 (unsigned long long)m->sequence);
    cebus__v1__subscribe_response__free_unpacked(m, NULL);
}

/* Events 1..3 of 5 expire: no stream sees them, and positions among them
 * are refused with the oldest retained sequence named. */
static void test_expired_events_are_not_delivered(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    Cebus__V1__SubscribeRequest req;
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    cebus_client *pub, *sub;
    cebus_stream *s;
    cebus_error err;
    PGconn *pg = sql_connect(env);
    char bid[32], id[16];
    uint64_t seqs[5];
    const char *params[1] = {bid};

    h_tenant_create_ok(env->admin, "ret-gone", "orders", &t);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "e%d", i);
        seqs[i] = h_put_one_ok(pub, "orders", id, "t", NULL);
    }
    assert_int_equal(seqs[0], 1);
    assert_int_equal(seqs[4], 5);
    bus_id(pg, "ret-gone", "orders", bid, sizeof bid);
    sql_ok(pg, "UPDATE events SET expires_at = now() - interval '1 second'"
               " WHERE bus_id = $1 AND seq <= 3", 1, params);

    /* Before any maintenance run: expired events are already invisible. */
    s = h_subscribe_ok(sub, "orders", ALL, CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
    expect_seq(s, 4);
    expect_seq(s, 5);
    cebus_stream_close(s);

    h_subscribe_request(&req, "orders", ALL, NULL,
                        CEBUS__V1__START_POSITION__START_POSITION_SEQUENCE, 2);
    assert_int_equal(h_subscribe_status(sub, &req, &err), GRPC_STATUS_OUT_OF_RANGE);
    assert_non_null(strstr(err.message, "start_sequence"));
    assert_non_null(strstr(err.message, "oldest retained sequence is 4"));
    assert_null(strstr(err.message, "ret-gone"));

    /* After a run (which removes them), the same answers. */
    sql_ok(pg, "SELECT cebus_maintain_partitions(now())", 0, NULL);
    assert_int_equal(h_subscribe_status(sub, &req, &err), GRPC_STATUS_OUT_OF_RANGE);
    assert_non_null(strstr(err.message, "oldest retained sequence is 4"));
    req.start_sequence = 3;
    assert_int_equal(h_subscribe_status(sub, &req, &err), GRPC_STATUS_OUT_OF_RANGE);

    s = h_subscribe_ok(sub, "orders", ALL, CEBUS__V1__START_POSITION__START_POSITION_SEQUENCE, 4);
    expect_seq(s, 4);
    cebus_stream_close(s);

    /* A time before the retention starts at the oldest retained event. */
    h_subscribe_request(&req, "orders", ALL, NULL, CEBUS__V1__START_POSITION__START_POSITION_TIME,
                        0);
    ts.seconds = 1;
    req.start_time = &ts;
    assert_int_equal(cebus_subscribe(sub, &req, &s, &err), 0);
    expect_seq(s, 4);
    cebus_stream_close(s);

    PQfinish(pg);
    cebus_client_free(pub);
    cebus_client_free(sub);
}

/* An open, caught-up stream: the next two events commit together, the
 * first already expired with everything before it (as if the stream had
 * been too slow for the retention). The stream ends OUT_OF_RANGE naming
 * the sequence it can resume from, instead of skipping the lost event. */
static void test_open_stream_past_retention_ends(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    cebus_client *pub, *sub;
    cebus_stream *s, *fresh;
    cebus_error err;
    delivery *m = NULL;
    PGconn *pg = sql_connect(env);
    char bid[32], want[96];
    const char *params[1] = {bid};
    uint64_t marker;
    int rc;

    h_tenant_create_ok(env->admin, "ret-slow", "orders", &t);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    bus_id(pg, "ret-slow", "orders", bid, sizeof bid);
    s = h_subscribe_ok(sub, "orders", ALL, CEBUS__V1__START_POSITION__START_POSITION_LATEST, 0);
    marker = h_stream_sync_ok(pub, "orders", s);

    /* Two events appended as cebusd would; the first, and every event
     * before it, expire before the commit makes either visible. */
    sql_ok(pg, "BEGIN", 0, NULL);
    sql_ok(pg, "SELECT cebus_append($1, ARRAY[r, r], ARRAY['/it', '/it'],"
               " ARRAY['lost', 'kept'], ARRAY['t', 't'], ARRAY[e.body, e.body])"
               " FROM (SELECT (extract(epoch FROM now()) * 1000000)::bigint AS r) x,"
               " events e WHERE e.bus_id = $1 AND e.seq = (SELECT max(seq) FROM events"
               " WHERE bus_id = $1)",
           1, params);
    sql_ok(pg, "UPDATE events SET expires_at = now() - interval '1 second' WHERE bus_id = $1"
               " AND seq < (SELECT max(seq) FROM events WHERE bus_id = $1)",
           1, params);
    sql_ok(pg, "COMMIT", 0, NULL);

    do {
        if (m)
            cebus__v1__subscribe_response__free_unpacked(m, NULL);
        m = NULL;
        rc = cebus_stream_next(s, H_EVENT_TIMEOUT_MS, &m, &err);
        if (rc == 1 && m->sequence > marker)
            fail_msg("delivered sequence %llu past the lost one",
                     (unsigned long long)m->sequence);
    } while (rc == 1);
    assert_int_equal(rc, -1);
    assert_int_equal(err.code, GRPC_STATUS_OUT_OF_RANGE);
    snprintf(want, sizeof want, "oldest retained sequence after it is %llu",
             (unsigned long long)marker + 2);
    if (!strstr(err.message, want))
        fail_msg("message \"%s\" lacks \"%s\"", err.message, want);
    cebus_stream_close(s);

    /* A new stream from the lost position is refused the same way, and
     * one from the kept event gets it. */
    {
        Cebus__V1__SubscribeRequest req;
        h_subscribe_request(&req, "orders", ALL, NULL,
                            CEBUS__V1__START_POSITION__START_POSITION_SEQUENCE, marker + 1);
        assert_int_equal(h_subscribe_status(sub, &req, &err), GRPC_STATUS_OUT_OF_RANGE);
    }
    fresh = h_subscribe_ok(sub, "orders", ALL,
                           CEBUS__V1__START_POSITION__START_POSITION_SEQUENCE, marker + 2);
    expect_seq(fresh, marker + 2);
    cebus_stream_close(fresh);

    PQfinish(pg);
    cebus_client_free(pub);
    cebus_client_free(sub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expired_events_are_not_delivered),
        cmocka_unit_test(test_open_stream_past_retention_ends),
    };

    return cmocka_run_group_tests(tests, h_env_setup, h_env_teardown);
}
