/* Seek and dead letters through the real cebusd: EventBus.Seek (each
 * position, validation naming the field, OUT_OF_RANGE naming the oldest
 * retained sequence, who may call it), the Admin dead-letter RPCs (pages,
 * filters, validation, who may call them: a MANAGE_RULES grantee yes, a
 * SUBSCRIBE grantee no), and the CLI commands over both.
 *
 * Dead letters are made the way the server makes them: outstanding rows
 * past their limits (written in the database, as deliveries would leave
 * them) moved by the subscription sweep, run here through SQL rather than
 * waiting for the server's once-a-minute run; one test waits for a
 * server's own run. */
#include "harness.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define CLI_TIMEOUT_MS 30000
#define SUB "work"

/* ---- Database ------------------------------------------------------------ */

static PGconn *sql_connect(struct h_env *env)
{
    PGconn *c = PQconnectdb(env->db.conninfo);

    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect: %s", PQerrorMessage(c));
    return c;
}

/* Runs a query and returns the integer in its first cell (0 when NULL). */
static int64_t sql_int(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int64_t sql_int(PGconn *c, const char *fmt, ...)
{
    char sql[2048];
    PGresult *res;
    ExecStatusType st;
    int64_t v = 0;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    res = PQexec(c, sql);
    st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("SQL failed: %s: %s", sql, PQerrorMessage(c));
    if (st == PGRES_TUPLES_OK && PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
        v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

/* The id of subscription `sub` of tenant's bus. */
static int64_t sub_id(PGconn *c, const char *tenant, const char *bus, const char *sub)
{
    int64_t id = sql_int(c,
                         "SELECT s.id FROM subscriptions s JOIN buses b ON b.id = s.bus_id"
                         " JOIN tenants t ON t.id = b.tenant_id"
                         " WHERE t.name = '%s' AND b.name = '%s' AND s.name = '%s'",
                         tenant, bus, sub);
    if (id == 0)
        fail_msg("no subscription %s on %s/%s", sub, tenant, bus);
    return id;
}

/* Makes dead letters of sequences seqs[0..n) of subscription sub: rows
 * delivered max_attempts times whose lease ended (reason max_attempts),
 * or, with old, received long ago under a max_age of a minute (reason
 * max_age); then sweeps until a run was not skipped (the server's own
 * maintenance run may hold the lock for a moment). */
static void make_dead(PGconn *c, int64_t sub, const uint64_t *seqs, size_t n, bool old)
{
    int64_t deadline = h_now_ms() + H_EVENT_TIMEOUT_MS;

    if (old)
        sql_int(c, "UPDATE targets t SET max_age_s = 60 FROM subscriptions s"
                   " WHERE s.id = %lld AND t.bus_id = s.bus_id AND t.subscription = s.name",
                (long long)sub);
    for (size_t i = 0; i < n; i++) {
        sql_int(c,
                "INSERT INTO sub_pending (sub_id, seq, attempt, owner, due_at, received_at,"
                " last_error) VALUES (%lld, %llu, %d, 1, now() - interval '1 second',"
                " now() - interval '%d seconds', %s)",
                (long long)sub, (unsigned long long)seqs[i], old ? 1 : 5, old ? 3600 : 0,
                old ? "NULL" : "'consumer said no'");
        sql_int(c, "UPDATE subscriptions SET claimed = claimed + 1 WHERE id = %lld",
                (long long)sub);
    }
    while (sql_int(c, "SELECT skipped::int FROM cebus_sub_sweep(now())")) {
        if (h_now_ms() > deadline)
            fail_msg("the maintenance lock stayed taken");
    }
    if (sql_int(c, "SELECT count(*) FROM sub_pending WHERE sub_id = %lld", (long long)sub))
        fail_msg("the sweep left outstanding rows");
}

/* ---- Fixtures --------------------------------------------------------------- */

/* A tenant with bus "orders", a rule there with subscription target SUB,
 * and n events published (their sequences in seqs, when not NULL). */
static void tenant_with_sub(struct h_env *env, const char *name, struct h_tenant *t, int n,
                            uint64_t *seqs)
{
    Cebus__V1__CreateRuleRequest req = CEBUS__V1__CREATE_RULE_REQUEST__INIT;
    Cebus__V1__SubscriptionTarget sub = CEBUS__V1__SUBSCRIPTION_TARGET__INIT;
    Cebus__V1__Target target = CEBUS__V1__TARGET__INIT;
    Cebus__V1__Target *targets[1] = {&target};
    Cebus__V1__Rule *rule = NULL;
    cebus_client *admin, *pub;
    cebus_error err;
    char id[32];

    h_tenant_create_ok(env->admin, name, "orders", t);
    admin = cebus_client_new(env->srv[0].addr, t->admin_key);
    pub = cebus_client_new(env->srv[0].addr, t->publisher_key);
    sub.name = SUB;
    target.kind_case = CEBUS__V1__TARGET__KIND_SUBSCRIPTION;
    target.subscription = &sub;
    req.bus = "orders";
    req.name = "all";
    req.pattern = "{}";
    req.n_targets = 1;
    req.targets = targets;
    h_assert_status("CreateRule", cebus_create_rule(admin, &req, &rule, &err), &err, 0, NULL);
    cebus__v1__rule__free_unpacked(rule, NULL);
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "%s-%d", name, i);
        uint64_t s = h_put_one_ok(pub, "orders", id, "order.created", "{\"n\":1}");
        if (seqs)
            seqs[i] = s;
    }
    cebus_client_free(admin);
    cebus_client_free(pub);
}

/* ---- Calls ------------------------------------------------------------------- */

static int seek(cebus_client *c, const char *bus, const char *sub, Cebus__V1__StartPosition pos,
                uint64_t seq, const Google__Protobuf__Timestamp *time, uint64_t *next,
                cebus_error *err)
{
    Cebus__V1__SeekRequest req = CEBUS__V1__SEEK_REQUEST__INIT;
    Cebus__V1__SeekResponse *resp = NULL;
    int rc;

    req.bus = (char *)bus;
    req.subscription = (char *)sub;
    req.position = pos;
    req.sequence = seq;
    req.time = (Google__Protobuf__Timestamp *)time;
    rc = cebus_seek(c, &req, &resp, err);
    if (rc == 0) {
        if (next)
            *next = resp->next_sequence;
        cebus__v1__seek_response__free_unpacked(resp, NULL);
    }
    return rc;
}

static int list_page(cebus_client *c, const char *bus, const char *sub, uint32_t size,
                     const char *token, Cebus__V1__ListDeadLettersResponse **resp,
                     cebus_error *err)
{
    Cebus__V1__ListDeadLettersRequest req = CEBUS__V1__LIST_DEAD_LETTERS_REQUEST__INIT;

    req.bus = (char *)bus;
    req.subscription = (char *)sub;
    req.page_size = size;
    req.page_token = (char *)token;
    *resp = NULL;
    return cebus_list_dead_letters(c, &req, resp, err);
}

/* Redrives (purge false) or purges the dead letters selected by seqs and
 * reason; sets *count on success. */
static int change(cebus_client *c, bool purge, const char *bus, const char *sub,
                  uint64_t *seqs, size_t n, const char *reason, uint64_t *count,
                  cebus_error *err)
{
    int rc;

    if (purge) {
        Cebus__V1__PurgeDeadLettersRequest req = CEBUS__V1__PURGE_DEAD_LETTERS_REQUEST__INIT;
        Cebus__V1__PurgeDeadLettersResponse *resp = NULL;
        req.bus = (char *)bus;
        req.subscription = (char *)sub;
        req.sequences = seqs;
        req.n_sequences = n;
        req.reason = (char *)reason;
        rc = cebus_purge_dead_letters(c, &req, &resp, err);
        if (rc == 0) {
            *count = resp->count;
            cebus__v1__purge_dead_letters_response__free_unpacked(resp, NULL);
        }
    } else {
        Cebus__V1__RedriveDeadLettersRequest req = CEBUS__V1__REDRIVE_DEAD_LETTERS_REQUEST__INIT;
        Cebus__V1__RedriveDeadLettersResponse *resp = NULL;
        req.bus = (char *)bus;
        req.subscription = (char *)sub;
        req.sequences = seqs;
        req.n_sequences = n;
        req.reason = (char *)reason;
        rc = cebus_redrive_dead_letters(c, &req, &resp, err);
        if (rc == 0) {
            *count = resp->count;
            cebus__v1__redrive_dead_letters_response__free_unpacked(resp, NULL);
        }
    }
    return rc;
}

/* ---- Seek ---------------------------------------------------------------------- */

/* Each position lands where Subscribe's would, the frontier just before
 * it; outstanding rows go and the epoch changes. */
static void test_seek_positions(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    uint64_t seqs[4], next = 0;
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    PGconn *pg = sql_connect(env);
    cebus_client *c;
    cebus_error err;
    int64_t sub, epoch;

    tenant_with_sub(env, "seeker", &t, 4, seqs);
    c = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    sub = sub_id(pg, "seeker", "orders", SUB);

    h_assert_status("Seek earliest",
                    seek(c, "orders", SUB, CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0,
                         NULL, &next, &err),
                    &err, 0, NULL);
    assert_int_equal(next, seqs[0]);
    assert_int_equal(sql_int(pg, "SELECT frontier FROM subscriptions WHERE id = %lld",
                             (long long)sub),
                     seqs[0] - 1);

    sql_int(pg,
            "INSERT INTO sub_pending (sub_id, seq, attempt, owner, due_at, received_at)"
            " VALUES (%lld, %llu, 1, 9, now() + interval '1 minute', now())",
            (long long)sub, (unsigned long long)seqs[1]);
    epoch = sql_int(pg, "SELECT epoch FROM subscriptions WHERE id = %lld", (long long)sub);
    h_assert_status("Seek sequence",
                    seek(c, "orders", SUB, CEBUS__V1__START_POSITION__START_POSITION_SEQUENCE,
                         seqs[2], NULL, &next, &err),
                    &err, 0, NULL);
    assert_int_equal(next, seqs[2]);
    assert_int_equal(sql_int(pg, "SELECT count(*) FROM sub_pending WHERE sub_id = %lld",
                             (long long)sub),
                     0);
    assert_true(sql_int(pg, "SELECT epoch FROM subscriptions WHERE id = %lld",
                        (long long)sub) != epoch);

    h_assert_status("Seek latest",
                    seek(c, "orders", SUB, CEBUS__V1__START_POSITION__START_POSITION_LATEST, 0,
                         NULL, &next, &err),
                    &err, 0, NULL);
    assert_int_equal(next, seqs[3] + 1);

    ts.seconds = 1; /* long before every event: the oldest retained */
    h_assert_status("Seek time",
                    seek(c, "orders", SUB, CEBUS__V1__START_POSITION__START_POSITION_TIME, 0,
                         &ts, &next, &err),
                    &err, 0, NULL);
    assert_int_equal(next, seqs[0]);
    cebus_client_free(c);
    PQfinish(pg);
}

/* Bad requests are INVALID_ARGUMENT naming the field; an unknown
 * subscription NOT_FOUND; a sequence whose events expired OUT_OF_RANGE
 * naming the oldest retained one; the tenant's name in none of them. */
static void test_seek_refusals(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    uint64_t seqs[3];
    Google__Protobuf__Timestamp bad = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    PGconn *pg = sql_connect(env);
    cebus_client *c;
    cebus_error err;
    char oldest[64];

    tenant_with_sub(env, "seekbad", &t, 3, seqs);
    c = cebus_client_new(env->srv[0].addr, t.admin_key);
    h_assert_status("no position",
                    seek(c, "orders", SUB, CEBUS__V1__START_POSITION__START_POSITION_UNSPECIFIED,
                         0, NULL, NULL, &err),
                    &err, GRPC_STATUS_INVALID_ARGUMENT, "position: required");
    h_assert_status("no subscription",
                    seek(c, "orders", "", CEBUS__V1__START_POSITION__START_POSITION_LATEST, 0,
                         NULL, NULL, &err),
                    &err, GRPC_STATUS_INVALID_ARGUMENT, "subscription: required");
    h_assert_status("bad name",
                    seek(c, "orders", "no/such", CEBUS__V1__START_POSITION__START_POSITION_LATEST,
                         0, NULL, NULL, &err),
                    &err, GRPC_STATUS_INVALID_ARGUMENT, "subscription:");
    h_assert_status("no sequence",
                    seek(c, "orders", SUB, CEBUS__V1__START_POSITION__START_POSITION_SEQUENCE, 0,
                         NULL, NULL, &err),
                    &err, GRPC_STATUS_INVALID_ARGUMENT, "sequence: required");
    h_assert_status("no time",
                    seek(c, "orders", SUB, CEBUS__V1__START_POSITION__START_POSITION_TIME, 0,
                         NULL, NULL, &err),
                    &err, GRPC_STATUS_INVALID_ARGUMENT, "time: required");
    bad.seconds = -5;
    h_assert_status("time before 1970",
                    seek(c, "orders", SUB, CEBUS__V1__START_POSITION__START_POSITION_TIME, 0,
                         &bad, NULL, &err),
                    &err, GRPC_STATUS_INVALID_ARGUMENT, "time:");
    h_assert_status("unknown position",
                    seek(c, "orders", SUB, (Cebus__V1__StartPosition)77, 0, NULL, NULL, &err),
                    &err, GRPC_STATUS_INVALID_ARGUMENT, "position:");
    h_assert_status("unknown subscription",
                    seek(c, "orders", "nosuch", CEBUS__V1__START_POSITION__START_POSITION_LATEST,
                         0, NULL, NULL, &err),
                    &err, GRPC_STATUS_NOT_FOUND, "subscription: no subscription \"nosuch\"");
    {
        cebus_error raw;
        const char garbage[] = "\xff\xff\xff\xff";
        int rc = h_call_raw(env->srv[0].addr, t.admin_key, "/cebus.v1.EventBus/Seek", garbage,
                            sizeof garbage - 1, 10000, NULL, &raw);
        h_assert_status("garbage", rc, &raw, GRPC_STATUS_INVALID_ARGUMENT, "request:");
    }

    /* The first two events expire (as retention would make them). */
    sql_int(pg,
            "DELETE FROM events e USING buses b, tenants t WHERE e.bus_id = b.id"
            " AND b.tenant_id = t.id AND t.name = 'seekbad' AND e.seq <= %llu",
            (unsigned long long)seqs[1]);
    snprintf(oldest, sizeof oldest, "oldest retained sequence is %llu",
             (unsigned long long)seqs[2]);
    h_assert_status("below retention",
                    seek(c, "orders", SUB, CEBUS__V1__START_POSITION__START_POSITION_SEQUENCE,
                         seqs[0], NULL, NULL, &err),
                    &err, GRPC_STATUS_OUT_OF_RANGE, oldest);
    assert_null(strstr(err.message, "seekbad"));
    assert_non_null(strstr(err.message, "sequence:"));
    h_assert_status("at retention",
                    seek(c, "orders", SUB, CEBUS__V1__START_POSITION__START_POSITION_SEQUENCE,
                         seqs[2], NULL, NULL, &err),
                    &err, 0, NULL);
    cebus_client_free(c);
    PQfinish(pg);
}

/* Seek takes Subscribe's role: the tenant's subscriber and admins, a
 * SUBSCRIBE grantee; not a publisher, not a MANAGE_RULES grantee, not a
 * stranger (who cannot tell the bus exists). */
static void test_seek_who(void **state)
{
    struct h_env *env = *state;
    struct h_tenant owner, other;
    cebus_client *c;
    cebus_error err, ghost;
    const char *ref = "seekown/orders";

    tenant_with_sub(env, "seekown", &owner, 1, NULL);
    h_tenant_create_ok(env->admin, "seekother", "mine", &other);

    c = cebus_client_new(env->srv[0].addr, owner.publisher_key);
    h_assert_status("publisher",
                    seek(c, "orders", SUB, CEBUS__V1__START_POSITION__START_POSITION_LATEST, 0,
                         NULL, NULL, &err),
                    &err, GRPC_STATUS_PERMISSION_DENIED, NULL);
    cebus_client_free(c);
    h_assert_status("platform admin",
                    seek(env->admin, ref, SUB, CEBUS__V1__START_POSITION__START_POSITION_LATEST,
                         0, NULL, NULL, &err),
                    &err, 0, NULL);

    c = cebus_client_new(env->srv[0].addr, other.subscriber_key);
    h_assert_status("stranger",
                    seek(c, ref, SUB, CEBUS__V1__START_POSITION__START_POSITION_LATEST, 0, NULL,
                         NULL, &err),
                    &err, GRPC_STATUS_NOT_FOUND, NULL);
    h_assert_status("stranger, no such bus",
                    seek(c, "seekown/nobus", SUB,
                         CEBUS__V1__START_POSITION__START_POSITION_LATEST, 0, NULL, NULL, &ghost),
                    &ghost, GRPC_STATUS_NOT_FOUND, NULL);
    {
        char a[512], b[512];
        h_normalize(err.message, ref, a, sizeof a);
        h_normalize(ghost.message, "seekown/nobus", b, sizeof b);
        assert_string_equal(a, b);
    }
    {
        cebus_client *oa = cebus_client_new(env->srv[0].addr, owner.admin_key);
        h_assert_status("grant manage-rules",
                        h_grant(oa, true, "orders", "seekother",
                                CEBUS__V1__PERMISSION__PERMISSION_MANAGE_RULES, &err),
                        &err, 0, NULL);
        cebus_client *oadm = cebus_client_new(env->srv[0].addr, other.admin_key);
        h_assert_status("manage-rules grantee",
                        seek(oadm, ref, SUB, CEBUS__V1__START_POSITION__START_POSITION_LATEST, 0,
                             NULL, NULL, &err),
                        &err, GRPC_STATUS_NOT_FOUND, NULL);
        h_assert_status("grant subscribe",
                        h_grant(oa, true, "orders", "seekother",
                                CEBUS__V1__PERMISSION__PERMISSION_SUBSCRIBE, &err),
                        &err, 0, NULL);
        h_assert_status("subscribe grantee",
                        seek(c, ref, SUB, CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0,
                             NULL, NULL, &err),
                        &err, 0, NULL);
        cebus_client_free(oadm);
        cebus_client_free(oa);
    }
    cebus_client_free(c);
}

/* ---- Dead letters ------------------------------------------------------------- */

/* Pages with their events, tokens, filters and counts; bad input named. */
static void test_dead_letters(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    uint64_t seqs[5], count = 0, two[2];
    Cebus__V1__ListDeadLettersResponse *page = NULL;
    PGconn *pg = sql_connect(env);
    cebus_client *c;
    cebus_error err;
    char token[128];
    int64_t sub;

    tenant_with_sub(env, "dlqer", &t, 5, seqs);
    sub = sub_id(pg, "dlqer", "orders", SUB);
    make_dead(pg, sub, seqs, 3, false);     /* max_attempts */
    make_dead(pg, sub, seqs + 3, 2, true);  /* max_age */
    c = cebus_client_new(env->srv[0].addr, t.admin_key);

    h_assert_status("list", list_page(c, "orders", SUB, 2, "", &page, &err), &err, 0, NULL);
    assert_int_equal(page->n_dead_letters, 2);
    assert_int_equal(page->dead_letters[0]->sequence, seqs[0]);
    assert_int_equal(page->dead_letters[1]->sequence, seqs[1]);
    assert_string_equal(page->dead_letters[0]->reason, "max_attempts");
    assert_string_equal(page->dead_letters[0]->last_error, "consumer said no");
    assert_int_equal(page->dead_letters[0]->attempts, 5);
    assert_string_equal(page->dead_letters[0]->bus, "orders");
    assert_string_equal(page->dead_letters[0]->subscription, SUB);
    assert_non_null(page->dead_letters[0]->create_time);
    assert_non_null(page->dead_letters[0]->event);
    assert_string_equal(page->dead_letters[0]->event->id, "dlqer-0");
    assert_string_equal(page->dead_letters[0]->event->type, "order.created");
    assert_true(page->next_page_token[0] != '\0');
    snprintf(token, sizeof token, "%s", page->next_page_token);
    cebus__v1__list_dead_letters_response__free_unpacked(page, NULL);

    h_assert_status("page 2", list_page(c, "orders", SUB, 0, token, &page, &err), &err, 0, NULL);
    assert_int_equal(page->n_dead_letters, 3);
    assert_int_equal(page->dead_letters[0]->sequence, seqs[2]);
    assert_string_equal(page->dead_letters[1]->reason, "max_age");
    assert_string_equal(page->dead_letters[1]->last_error, "ack deadline passed");
    assert_string_equal(page->next_page_token, "");
    cebus__v1__list_dead_letters_response__free_unpacked(page, NULL);

    h_assert_status("bad token", list_page(c, "orders", SUB, 0, "zz", &page, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "page_token:");
    h_assert_status("no subscription", list_page(c, "orders", "nosuch", 0, "", &page, &err),
                    &err, GRPC_STATUS_NOT_FOUND, "subscription:");

    /* Redrive by sequence, then by reason: counts are what was marked. */
    two[0] = seqs[0];
    two[1] = seqs[4];
    h_assert_status("redrive seqs", change(c, false, "orders", SUB, two, 2, "", &count, &err),
                    &err, 0, NULL);
    assert_int_equal(count, 2);
    h_assert_status("redrive reason",
                    change(c, false, "orders", SUB, NULL, 0, "max_age", &count, &err), &err, 0,
                    NULL);
    assert_int_equal(count, 1); /* seqs[3]; seqs[4] was marked already */
    assert_int_equal(sql_int(pg, "SELECT count(*) FROM dead_letters WHERE sub_id = %lld"
                                 " AND redrive",
                             (long long)sub),
                     3);
    h_assert_status("bad reason", change(c, false, "orders", SUB, NULL, 0, "old", &count, &err),
                    &err, GRPC_STATUS_INVALID_ARGUMENT, "reason:");
    two[0] = 0;
    h_assert_status("bad sequence", change(c, true, "orders", SUB, two, 1, "", &count, &err),
                    &err, GRPC_STATUS_INVALID_ARGUMENT, "sequences[0]");
    {
        uint64_t *many = calloc(1001, sizeof *many);
        for (int i = 0; i < 1001; i++)
            many[i] = (uint64_t)i + 1;
        h_assert_status("too many", change(c, true, "orders", SUB, many, 1001, "", &count, &err),
                        &err, GRPC_STATUS_INVALID_ARGUMENT, "sequences: at most 1000");
        free(many);
    }

    /* Purge by reason and sequence (both must hold), then the rest. */
    two[0] = seqs[1];
    h_assert_status("purge none",
                    change(c, true, "orders", SUB, two, 1, "max_age", &count, &err), &err, 0,
                    NULL);
    assert_int_equal(count, 0);
    h_assert_status("purge max_attempts",
                    change(c, true, "orders", SUB, NULL, 0, "max_attempts", &count, &err), &err,
                    0, NULL);
    assert_int_equal(count, 3);
    h_assert_status("purge all", change(c, true, "orders", SUB, NULL, 0, "", &count, &err), &err,
                    0, NULL);
    assert_int_equal(count, 2);
    h_assert_status("list empty", list_page(c, "orders", SUB, 0, "", &page, &err), &err, 0,
                    NULL);
    assert_int_equal(page->n_dead_letters, 0);
    cebus__v1__list_dead_letters_response__free_unpacked(page, NULL);
    cebus_client_free(c);
    PQfinish(pg);
}

/* Dead letters are managed like rules: the owner's admins, a MANAGE_RULES
 * grantee's admin and the platform admin; not subscribers or publishers,
 * not a SUBSCRIBE grantee (to whom they do not exist). */
static void test_dead_letters_who(void **state)
{
    struct h_env *env = *state;
    struct h_tenant owner, other;
    uint64_t seqs[1];
    PGconn *pg = sql_connect(env);
    Cebus__V1__ListDeadLettersResponse *page = NULL;
    cebus_client *oa, *os, *xa, *xs;
    cebus_error err;
    const char *ref = "dlqown/orders";

    tenant_with_sub(env, "dlqown", &owner, 1, seqs);
    make_dead(pg, sub_id(pg, "dlqown", "orders", SUB), seqs, 1, false);
    h_tenant_create_ok(env->admin, "dlqother", "mine", &other);
    oa = cebus_client_new(env->srv[0].addr, owner.admin_key);
    os = cebus_client_new(env->srv[0].addr, owner.subscriber_key);
    xa = cebus_client_new(env->srv[0].addr, other.admin_key);
    xs = cebus_client_new(env->srv[0].addr, other.subscriber_key);

    h_assert_status("owner subscriber", list_page(os, "orders", SUB, 0, "", &page, &err), &err,
                    GRPC_STATUS_PERMISSION_DENIED, NULL);
    h_assert_status("platform admin", list_page(env->admin, ref, SUB, 0, "", &page, &err), &err,
                    0, NULL);
    assert_int_equal(page->n_dead_letters, 1);
    cebus__v1__list_dead_letters_response__free_unpacked(page, NULL);

    h_assert_status("grant subscribe",
                    h_grant(oa, true, "orders", "dlqother",
                            CEBUS__V1__PERMISSION__PERMISSION_SUBSCRIBE, &err),
                    &err, 0, NULL);
    h_assert_status("subscribe grantee", list_page(xa, ref, SUB, 0, "", &page, &err), &err,
                    GRPC_STATUS_NOT_FOUND, "bus:");
    h_assert_status("grant manage-rules",
                    h_grant(oa, true, "orders", "dlqother",
                            CEBUS__V1__PERMISSION__PERMISSION_MANAGE_RULES, &err),
                    &err, 0, NULL);
    h_assert_status("manage-rules grantee", list_page(xa, ref, SUB, 0, "", &page, &err), &err, 0,
                    NULL);
    assert_int_equal(page->n_dead_letters, 1);
    assert_int_equal(page->dead_letters[0]->sequence, seqs[0]);
    assert_string_equal(page->dead_letters[0]->bus, ref);
    cebus__v1__list_dead_letters_response__free_unpacked(page, NULL);
    h_assert_status("grantee's subscriber", list_page(xs, ref, SUB, 0, "", &page, &err), &err,
                    GRPC_STATUS_PERMISSION_DENIED, NULL);
    {
        uint64_t count = 0;
        h_assert_status("grantee purges", change(xa, true, ref, SUB, NULL, 0, "", &count, &err),
                        &err, 0, NULL);
        assert_int_equal(count, 1);
    }
    cebus_client_free(oa);
    cebus_client_free(os);
    cebus_client_free(xa);
    cebus_client_free(xs);
    PQfinish(pg);
}

/* The servers sweep by themselves: a server's maintenance run (at its
 * start, then once a minute) makes dead letters of rows nobody claims.
 * Waited for, with a deadline past one minute in case another server's
 * run held the lock at that moment. */
static void test_server_sweeps(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    uint64_t seqs[1];
    PGconn *pg = sql_connect(env);
    cebus_client *c;
    cebus_error err;
    int64_t sub, deadline;
    size_t found = 0;

    tenant_with_sub(env, "dlqsweep", &t, 1, seqs);
    sub = sub_id(pg, "dlqsweep", "orders", SUB);
    sql_int(pg,
            "INSERT INTO sub_pending (sub_id, seq, attempt, owner, due_at, received_at)"
            " VALUES (%lld, %llu, 5, 1, now() - interval '1 second', now())",
            (long long)sub, (unsigned long long)seqs[0]);
    sql_int(pg, "UPDATE subscriptions SET claimed = claimed + 1 WHERE id = %lld",
            (long long)sub);
    c = cebus_client_new(env->srv[h_env_add_server_ok(env, NULL)].addr, t.admin_key);
    deadline = h_now_ms() + 150000;
    while (found == 0 && h_now_ms() < deadline) {
        Cebus__V1__ListDeadLettersResponse *page = NULL;
        h_assert_status("list", list_page(c, "orders", SUB, 0, "", &page, &err), &err, 0, NULL);
        found = page->n_dead_letters;
        if (found) {
            assert_int_equal(page->dead_letters[0]->sequence, seqs[0]);
            assert_string_equal(page->dead_letters[0]->last_error, "ack deadline passed");
        }
        cebus__v1__list_dead_letters_response__free_unpacked(page, NULL);
        if (!found)
            usleep(100 * 1000);
    }
    assert_int_equal(found, 1);
    cebus_client_free(c);
    PQfinish(pg);
}

/* ---- CLI ------------------------------------------------------------------------- */

static void cli(const char *addr, const char *key, const char *const *args, int want,
                struct h_cli_result *r)
{
    h_cli_run(addr, key, NULL, CLI_TIMEOUT_MS, args, r);
    if (r->exit_code != want)
        fail_msg("cebus %s %s: exit %d, want %d\n--- stdout:\n%s--- stderr:\n%s", args[0],
                 args[1], r->exit_code, want, r->out, r->err);
}

static void test_cli(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    uint64_t seqs[3];
    PGconn *pg = sql_connect(env);
    struct h_cli_result r;
    const char *addr = env->srv[0].addr;
    char want[64], seq[24];

    tenant_with_sub(env, "dlqcli", &t, 3, seqs);
    make_dead(pg, sub_id(pg, "dlqcli", "orders", SUB), seqs, 3, false);

    cli(addr, t.subscriber_key,
        ARGS("subscription", "seek", "--bus", "orders", "--subscription", SUB, "--earliest"), 0,
        &r);
    snprintf(want, sizeof want, "{\"next_sequence\":%llu}", (unsigned long long)seqs[0]);
    assert_non_null(strstr(r.out, want));
    h_cli_result_free(&r);
    cli(addr, t.subscriber_key,
        ARGS("subscription", "seek", "--bus", "orders", "--subscription", SUB, "--time",
             "2020-01-01T00:00:00Z"),
        0, &r);
    assert_non_null(strstr(r.out, want));
    h_cli_result_free(&r);
    cli(addr, t.subscriber_key,
        ARGS("subscription", "seek", "--bus", "orders", "--subscription", SUB, "--earliest",
             "--latest"),
        2, &r);
    h_cli_result_free(&r);
    cli(addr, t.subscriber_key,
        ARGS("subscription", "seek", "--bus", "orders", "--subscription", "nosuch", "--latest"),
        1, &r);
    assert_non_null(strstr(r.err, "NOT_FOUND"));
    h_cli_result_free(&r);

    cli(addr, t.admin_key, ARGS("dlq", "list", "--bus", "orders", "--subscription", SUB), 0, &r);
    {
        int lines = 0;
        for (const char *p = r.out; (p = strchr(p, '\n')) != NULL; p++)
            lines++;
        assert_int_equal(lines, 3);
    }
    assert_non_null(strstr(r.out, "\"reason\":\"max_attempts\""));
    assert_non_null(strstr(r.out, "dlqcli-2"));
    h_cli_result_free(&r);

    snprintf(seq, sizeof seq, "%llu", (unsigned long long)seqs[1]);
    cli(addr, t.admin_key,
        ARGS("dlq", "redrive", "--bus", "orders", "--subscription", SUB, "--sequence", seq), 0,
        &r);
    assert_non_null(strstr(r.out, "{\"count\":1}"));
    h_cli_result_free(&r);
    cli(addr, t.admin_key,
        ARGS("dlq", "redrive", "--bus", "orders", "--subscription", SUB, "--reason", "old"), 2,
        &r);
    h_cli_result_free(&r);
    cli(addr, t.admin_key, ARGS("dlq", "purge", "--bus", "orders", "--subscription", SUB), 2,
        &r);
    assert_non_null(strstr(r.err, "--all"));
    h_cli_result_free(&r);
    cli(addr, t.admin_key,
        ARGS("dlq", "purge", "--bus", "orders", "--subscription", SUB, "--all"), 0, &r);
    assert_non_null(strstr(r.out, "{\"count\":3}"));
    h_cli_result_free(&r);
    cli(addr, t.subscriber_key, ARGS("dlq", "list", "--bus", "orders", "--subscription", SUB), 1,
        &r);
    assert_non_null(strstr(r.err, "PERMISSION_DENIED"));
    h_cli_result_free(&r);
    PQfinish(pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seek_positions),
        cmocka_unit_test(test_seek_refusals),
        cmocka_unit_test(test_seek_who),
        cmocka_unit_test(test_dead_letters),
        cmocka_unit_test(test_dead_letters_who),
        cmocka_unit_test(test_server_sweeps),
        cmocka_unit_test(test_cli),
    };

    return cmocka_run_group_tests(tests, h_env_setup, h_env_teardown);
}
