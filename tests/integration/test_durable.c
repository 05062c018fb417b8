/* Durable subscriptions (docs/decisions/0014) against the real server:
 * acks, redelivery after the ack deadline and after a Nack, the per-stream
 * limit of deliveries in flight, ack ids that do not apply, several streams
 * and several replicas sharing one subscription, partition keys, and every
 * matching sequence delivered and acked exactly once under concurrent
 * publishers. Nothing here is timed: waits are for conditions, with
 * generous deadlines. */
#include "harness.h"
#include "harness_load.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Cebus__V1__SubscribeResponse delivery;

/* ---- Helpers ------------------------------------------------------------- */

struct sub_opts {
    const char *pattern;       /* NULL: {} */
    uint32_t ack_deadline_s;   /* 0: default */
    uint32_t max_attempts;
};

/* Creates rule `rule` on bus with one subscription target `sub`. */
static void rule_ok(cebus_client *admin, const char *bus, const char *rule, const char *sub,
                    const struct sub_opts *o)
{
    Cebus__V1__CreateRuleRequest req = CEBUS__V1__CREATE_RULE_REQUEST__INIT;
    Cebus__V1__Target target = CEBUS__V1__TARGET__INIT;
    Cebus__V1__SubscriptionTarget st = CEBUS__V1__SUBSCRIPTION_TARGET__INIT;
    Cebus__V1__Target *targets[1] = {&target};
    Cebus__V1__Rule *r = NULL;
    cebus_error err;
    int rc;

    st.name = (char *)sub;
    st.ack_deadline_seconds = o ? o->ack_deadline_s : 0;
    st.max_attempts = o ? o->max_attempts : 0;
    target.kind_case = CEBUS__V1__TARGET__KIND_SUBSCRIPTION;
    target.subscription = &st;
    req.bus = (char *)bus;
    req.name = (char *)rule;
    req.pattern = (char *)(o && o->pattern ? o->pattern : "{}");
    req.n_targets = 1;
    req.targets = targets;
    rc = cebus_create_rule(admin, &req, &r, &err);
    h_assert_status("CreateRule", rc, &err, 0, NULL);
    cebus__v1__rule__free_unpacked(r, NULL);
}

/* Opens the durable stream of sub (no start position) with at most n in
 * flight (0: the default). */
static cebus_stream *durable_ok(cebus_client *c, const char *bus, const char *sub, uint32_t n)
{
    Cebus__V1__SubscribeRequest req;
    cebus_stream *s = NULL;
    cebus_error err;
    int rc;

    h_subscribe_request(&req, bus, NULL, sub, CEBUS__V1__START_POSITION__START_POSITION_UNSPECIFIED,
                        0);
    req.max_in_flight = n;
    rc = cebus_subscribe(c, &req, &s, &err);
    h_assert_status("Subscribe (durable)", rc, &err, 0, NULL);
    return s;
}

/* Acks ids[0..n); returns the call's status, and on OK the not_applied
 * indexes as a bit mask (ids 0..63) in *not_applied. */
static int ack(cebus_client *c, const char *bus, const char *sub, char **ids, size_t n,
               uint64_t *not_applied, cebus_error *err)
{
    Cebus__V1__AckRequest req = CEBUS__V1__ACK_REQUEST__INIT;
    Cebus__V1__AckResponse *resp = NULL;
    int rc;

    req.bus = (char *)bus;
    req.subscription = (char *)sub;
    req.n_ack_ids = n;
    req.ack_ids = ids;
    rc = cebus_ack(c, &req, &resp, err);
    if (rc == 0) {
        *not_applied = 0;
        for (size_t i = 0; i < resp->n_not_applied; i++)
            if (resp->not_applied[i] < 64)
                *not_applied |= 1ull << resp->not_applied[i];
        cebus__v1__ack_response__free_unpacked(resp, NULL);
    }
    return rc;
}

/* Acks one id and fails the test unless it applied. */
static void ack_one_ok(cebus_client *c, const char *bus, const char *sub, const char *id)
{
    char *ids[1] = {(char *)id};
    uint64_t na = 0;
    cebus_error err;
    int rc = ack(c, bus, sub, ids, 1, &na, &err);

    h_assert_status("Ack", rc, &err, 0, NULL);
    assert_int_equal(na, 0);
}

static int nack(cebus_client *c, const char *bus, const char *sub, const char *id,
                uint32_t delay_ms, const char *error, uint64_t *not_applied, cebus_error *err)
{
    Cebus__V1__NackRequest req = CEBUS__V1__NACK_REQUEST__INIT;
    Cebus__V1__NackResponse *resp = NULL;
    char *ids[1] = {(char *)id};
    int rc;

    req.bus = (char *)bus;
    req.subscription = (char *)sub;
    req.n_ack_ids = 1;
    req.ack_ids = ids;
    req.redelivery_delay_ms = delay_ms;
    req.error = (char *)(error ? error : "");
    rc = cebus_nack(c, &req, &resp, err);
    if (rc == 0) {
        *not_applied = resp->n_not_applied;
        cebus__v1__nack_response__free_unpacked(resp, NULL);
    }
    return rc;
}

/* An ack id as the server makes them (0014): base64url, no padding, of
 * version 1, epoch, sequence and attempt, big-endian. */
static void forge_ack_id(int64_t epoch, int64_t seq, int32_t attempt, char out[29])
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[21];
    size_t k = 0;

    raw[0] = 1;
    for (int i = 0; i < 8; i++)
        raw[1 + i] = (unsigned char)((uint64_t)epoch >> (56 - 8 * i));
    for (int i = 0; i < 8; i++)
        raw[9 + i] = (unsigned char)((uint64_t)seq >> (56 - 8 * i));
    for (int i = 0; i < 4; i++)
        raw[17 + i] = (unsigned char)((uint32_t)attempt >> (24 - 8 * i));
    for (size_t i = 0; i < 21; i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
        out[k++] = b64[v >> 18 & 63];
        out[k++] = b64[v >> 12 & 63];
        out[k++] = b64[v >> 6 & 63];
        out[k++] = b64[v & 63];
    }
    out[k] = '\0';
}

/* Fails the test unless m is a durable delivery of sequence seq (0: any)
 * with attempt attempt (0: any). */
static void assert_delivery(const delivery *m, uint64_t seq, uint32_t attempt)
{
    assert_non_null(m);
    if (seq)
        assert_int_equal(m->sequence, seq);
    if (attempt)
        assert_int_equal(m->attempt, attempt);
    assert_non_null(m->ack_id);
    assert_int_equal(strlen(m->ack_id), 28);
    assert_non_null(m->ack_deadline);
    assert_true(m->ack_deadline->seconds > 0);
}

static void put_n(cebus_client *pub, const char *bus, const char *prefix, int n, uint64_t *seqs)
{
    for (int i = 0; i < n; i++) {
        char id[64];
        snprintf(id, sizeof id, "%s-%d", prefix, i);
        seqs[i] = h_put_one_ok(pub, bus, id, "it.durable", NULL);
    }
}

/* ---- Tests ------------------------------------------------------------------ */

/* Acked events are never delivered again: a reconnecting consumer gets only
 * what it did not ack (released at once when its stream closed, as attempt
 * 2), then new events. A stream with an explicit start stays a peek: no ack
 * ids, and no effect on the subscription. */
static void test_acked_not_redelivered_after_reconnect(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    cebus_client *admin, *pub, *sub;
    cebus_stream *s;
    uint64_t seqs[4];
    delivery *m[3];
    Cebus__V1__SubscribeRequest req;

    h_tenant_create_ok(env->admin, "du-reconnect", "orders", &t);
    admin = cebus_client_new(env->srv[0].addr, t.admin_key);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    rule_ok(admin, "orders", "r", "work", NULL);

    put_n(pub, "orders", "a", 3, seqs);
    s = durable_ok(sub, "orders", "work", 0);
    for (int i = 0; i < 3; i++) {
        m[i] = h_expect_next(s);
        assert_delivery(m[i], seqs[i], 1);
    }
    ack_one_ok(sub, "orders", "work", m[0]->ack_id);
    ack_one_ok(sub, "orders", "work", m[1]->ack_id);
    cebus_stream_close(s);

    s = durable_ok(sub, "orders", "work", 0);
    {
        delivery *again = h_expect_next(s);
        assert_delivery(again, seqs[2], 2);
        ack_one_ok(sub, "orders", "work", again->ack_id);
        cebus__v1__subscribe_response__free_unpacked(again, NULL);
    }
    seqs[3] = h_put_one_ok(pub, "orders", "a-3", "it.durable", NULL);
    {
        delivery *next = h_expect_next(s);
        assert_delivery(next, seqs[3], 1);
        ack_one_ok(sub, "orders", "work", next->ack_id);
        cebus__v1__subscribe_response__free_unpacked(next, NULL);
    }
    cebus_stream_close(s);

    /* A peek from the earliest event: every match, without ack ids. */
    h_subscribe_request(&req, "orders", NULL, "work",
                        CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
    {
        cebus_error err;
        cebus_stream *peek = NULL;
        assert_int_equal(cebus_subscribe(sub, &req, &peek, &err), 0);
        for (int i = 0; i < 4; i++) {
            delivery *p = h_expect_next(peek);
            assert_int_equal(p->sequence, seqs[i]);
            assert_true(p->ack_id == NULL || p->ack_id[0] == '\0');
            assert_int_equal(p->attempt, 0);
            cebus__v1__subscribe_response__free_unpacked(p, NULL);
        }
        cebus_stream_close(peek);
    }
    /* The old ids no longer apply: they were acked. */
    {
        char *ids[2] = {m[0]->ack_id, m[2]->ack_id};
        uint64_t na = 0;
        cebus_error err;
        int rc = ack(sub, "orders", "work", ids, 2, &na, &err);
        h_assert_status("Ack of acked ids", rc, &err, 0, NULL);
        assert_int_equal(na, 3);
    }
    for (int i = 0; i < 3; i++)
        cebus__v1__subscribe_response__free_unpacked(m[i], NULL);
    cebus_client_free(admin);
    cebus_client_free(pub);
    cebus_client_free(sub);
}

/* An unacked delivery comes back once its 1 s ack deadline has passed,
 * with attempt 2; the first delivery's id no longer applies, the second's
 * does. */
static void test_unacked_comes_back_after_deadline(void **state)
{
    struct h_env *env = *state;
    struct sub_opts o = {.ack_deadline_s = 1};
    struct h_tenant t;
    cebus_client *admin, *pub, *sub;
    cebus_stream *s;
    delivery *first, *second;
    uint64_t seq;

    h_tenant_create_ok(env->admin, "du-deadline", "orders", &t);
    admin = cebus_client_new(env->srv[0].addr, t.admin_key);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    rule_ok(admin, "orders", "r", "slow", &o);

    s = durable_ok(sub, "orders", "slow", 0);
    seq = h_put_one_ok(pub, "orders", "d-1", "it.durable", NULL);
    first = h_expect_next(s);
    assert_delivery(first, seq, 1);
    second = h_expect_next(s); /* waits out the deadline */
    assert_delivery(second, seq, 2);
    assert_string_not_equal(first->ack_id, second->ack_id);
    {
        char *ids[2] = {first->ack_id, second->ack_id};
        uint64_t na = 0;
        cebus_error err;
        int rc = ack(sub, "orders", "slow", ids, 2, &na, &err);
        h_assert_status("Ack", rc, &err, 0, NULL);
        assert_int_equal(na, 1); /* only the first: delivered again since */
    }
    /* Acked: nothing more comes, and a new event is the next delivery. */
    seq = h_put_one_ok(pub, "orders", "d-2", "it.durable", NULL);
    {
        delivery *m = h_expect_next(s);
        assert_delivery(m, seq, 1);
        ack_one_ok(sub, "orders", "slow", m->ack_id);
        cebus__v1__subscribe_response__free_unpacked(m, NULL);
    }
    cebus__v1__subscribe_response__free_unpacked(first, NULL);
    cebus__v1__subscribe_response__free_unpacked(second, NULL);
    cebus_stream_close(s);
    cebus_client_free(admin);
    cebus_client_free(pub);
    cebus_client_free(sub);
}

/* A Nack with delay 0 redelivers at once, as the next attempt; its id is
 * then spent; with a delay, after it. Out-of-range delays and errors are
 * INVALID_ARGUMENT naming the field. */
static void test_nack_redelivers(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    cebus_client *admin, *pub, *sub;
    cebus_stream *s;
    delivery *m, *again;
    uint64_t seq, na = 0;
    cebus_error err;
    char big[1100];
    int rc;

    h_tenant_create_ok(env->admin, "du-nack", "orders", &t);
    admin = cebus_client_new(env->srv[0].addr, t.admin_key);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    rule_ok(admin, "orders", "r", "n", NULL);

    s = durable_ok(sub, "orders", "n", 0);
    seq = h_put_one_ok(pub, "orders", "n-1", "it.durable", NULL);
    m = h_expect_next(s);
    assert_delivery(m, seq, 1);

    rc = nack(sub, "orders", "n", m->ack_id, 3600001, NULL, &na, &err);
    h_assert_status("Nack with a long delay", rc, &err, GRPC_STATUS_INVALID_ARGUMENT,
                    "redelivery_delay_ms");
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    rc = nack(sub, "orders", "n", m->ack_id, 0, big, &na, &err);
    h_assert_status("Nack with a long error", rc, &err, GRPC_STATUS_INVALID_ARGUMENT, "error");

    rc = nack(sub, "orders", "n", m->ack_id, 0, "handler failed", &na, &err);
    h_assert_status("Nack", rc, &err, 0, NULL);
    assert_int_equal(na, 0);
    again = h_expect_next(s);
    assert_delivery(again, seq, 2);
    rc = nack(sub, "orders", "n", m->ack_id, 0, NULL, &na, &err);
    h_assert_status("Nack of a spent id", rc, &err, 0, NULL);
    assert_int_equal(na, 1);
    ack_one_ok(sub, "orders", "n", again->ack_id);

    /* With a delay, the delivery comes back once the delay is over (the
     * server's timer, not a new event, brings it). */
    seq = h_put_one_ok(pub, "orders", "n-2", "it.durable", NULL);
    {
        delivery *d1 = h_expect_next(s), *d2;
        assert_delivery(d1, seq, 1);
        rc = nack(sub, "orders", "n", d1->ack_id, 800, NULL, &na, &err);
        h_assert_status("Nack with a delay", rc, &err, 0, NULL);
        assert_int_equal(na, 0);
        d2 = h_expect_next(s);
        assert_delivery(d2, seq, 2);
        ack_one_ok(sub, "orders", "n", d2->ack_id);
        cebus__v1__subscribe_response__free_unpacked(d1, NULL);
        cebus__v1__subscribe_response__free_unpacked(d2, NULL);
    }

    cebus__v1__subscribe_response__free_unpacked(m, NULL);
    cebus__v1__subscribe_response__free_unpacked(again, NULL);
    cebus_stream_close(s);
    cebus_client_free(admin);
    cebus_client_free(pub);
    cebus_client_free(sub);
}

/* A stream holds at most max_in_flight unacked deliveries: the server stops
 * there and goes on as acks free places. */
static void test_max_in_flight_respected(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    cebus_client *admin, *pub, *sub;
    cebus_stream *s;
    delivery *held[3];
    uint64_t seqs[10];
    int got = 0;

    h_tenant_create_ok(env->admin, "du-window", "orders", &t);
    admin = cebus_client_new(env->srv[0].addr, t.admin_key);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    rule_ok(admin, "orders", "r", "w", NULL);

    put_n(pub, "orders", "w", 10, seqs);
    s = durable_ok(sub, "orders", "w", 3);
    for (int i = 0; i < 3; i++) {
        held[i] = h_expect_next(s);
        assert_delivery(held[i], seqs[i], 1);
    }
    got = 3;
    /* Three unacked: nothing more comes while they are held. */
    assert_null(h_next(s, 1000));
    ack_one_ok(sub, "orders", "w", held[0]->ack_id);
    {
        delivery *m = h_expect_next(s);
        assert_delivery(m, seqs[3], 1);
        got++;
        assert_null(h_next(s, 500));
        ack_one_ok(sub, "orders", "w", m->ack_id);
        cebus__v1__subscribe_response__free_unpacked(m, NULL);
    }
    ack_one_ok(sub, "orders", "w", held[1]->ack_id);
    ack_one_ok(sub, "orders", "w", held[2]->ack_id);
    while (got < 10) {
        delivery *m = h_expect_next(s);
        assert_delivery(m, seqs[got], 1);
        got++;
        ack_one_ok(sub, "orders", "w", m->ack_id);
        cebus__v1__subscribe_response__free_unpacked(m, NULL);
    }
    for (int i = 0; i < 3; i++)
        cebus__v1__subscribe_response__free_unpacked(held[i], NULL);
    cebus_stream_close(s);
    cebus_client_free(admin);
    cebus_client_free(pub);
    cebus_client_free(sub);
}

/* Ids that are not ack ids fail the whole request and apply nothing; well
 * formed ids of another epoch (another subscription, another tenant's, a
 * forged one) are not applied, with the same answer whatever their origin;
 * another tenant's subscription is NOT_FOUND exactly as an unknown one. */
static void test_ids_that_do_not_apply(void **state)
{
    struct h_env *env = *state;
    struct h_tenant a, b;
    cebus_client *admin_a, *pub_a, *sub_a, *admin_b, *pub_b, *sub_b;
    cebus_stream *sa, *sb;
    delivery *ma, *mb;
    char forged[29], other_seq[29], longid[80];
    char *ids[3];
    uint64_t na = 0;
    cebus_error err, err2;
    int rc;

    h_tenant_create_ok(env->admin, "du-ids-a", "orders", &a);
    h_tenant_create_ok(env->admin, "du-ids-b", "orders", &b);
    admin_a = cebus_client_new(env->srv[0].addr, a.admin_key);
    pub_a = cebus_client_new(env->srv[0].addr, a.publisher_key);
    sub_a = cebus_client_new(env->srv[0].addr, a.subscriber_key);
    admin_b = cebus_client_new(env->srv[0].addr, b.admin_key);
    pub_b = cebus_client_new(env->srv[0].addr, b.publisher_key);
    sub_b = cebus_client_new(env->srv[0].addr, b.subscriber_key);
    rule_ok(admin_a, "orders", "r", "s", NULL);
    rule_ok(admin_b, "orders", "r", "s", NULL);

    sa = durable_ok(sub_a, "orders", "s", 0);
    sb = durable_ok(sub_b, "orders", "s", 0);
    h_put_one_ok(pub_a, "orders", "i-1", "it.durable", NULL);
    h_put_one_ok(pub_b, "orders", "i-1", "it.durable", NULL);
    ma = h_expect_next(sa);
    mb = h_expect_next(sb);
    assert_delivery(ma, 0, 1);
    assert_delivery(mb, 0, 1);

    /* Garbage anywhere in the batch: INVALID_ARGUMENT naming it, and the
     * good id beside it is not applied (it applies afterwards). */
    ids[0] = ma->ack_id;
    ids[1] = "1";
    rc = ack(sub_a, "orders", "s", ids, 2, &na, &err);
    h_assert_status("Ack with garbage", rc, &err, GRPC_STATUS_INVALID_ARGUMENT,
                    "ack_ids[1]: not an ack id");
    memset(longid, 'A', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    ids[1] = longid;
    rc = ack(sub_a, "orders", "s", ids, 2, &na, &err);
    h_assert_status("Ack with a long id", rc, &err, GRPC_STATUS_INVALID_ARGUMENT, "ack_ids[1]");
    ids[1] = "AQAAAAAAAAAAAAAAAAAAAAAAAAA="; /* padding is not base64url */
    rc = ack(sub_a, "orders", "s", ids, 2, &na, &err);
    h_assert_status("Ack with padding", rc, &err, GRPC_STATUS_INVALID_ARGUMENT, "ack_ids[1]");

    /* B's id, a forged epoch (as before a seek) and a sequence nobody was
     * given: each not applied, beside A's own id which is. */
    forge_ack_id(12345, (int64_t)ma->sequence, 1, forged);
    forge_ack_id(12345, 999999, 1, other_seq);
    ids[0] = mb->ack_id;
    ids[1] = forged;
    ids[2] = other_seq;
    rc = ack(sub_a, "orders", "s", ids, 3, &na, &err);
    h_assert_status("Ack of foreign ids", rc, &err, 0, NULL);
    assert_int_equal(na, 7);
    ids[0] = ma->ack_id;
    rc = ack(sub_a, "orders", "s", ids, 1, &na, &err);
    h_assert_status("Ack of A's id", rc, &err, 0, NULL);
    assert_int_equal(na, 0);
    /* B's delivery was not touched by A's attempt: B acks it. */
    ack_one_ok(sub_b, "orders", "s", mb->ack_id);

    /* A's subscription as B reaches it: the same NOT_FOUND as a bus B does
     * not have. */
    ids[0] = ma->ack_id;
    rc = ack(sub_b, "du-ids-a/orders", "s", ids, 1, &na, &err);
    assert_int_equal(rc, GRPC_STATUS_NOT_FOUND);
    rc = ack(sub_b, "du-ids-zz/orders", "s", ids, 1, &na, &err2);
    assert_int_equal(rc, GRPC_STATUS_NOT_FOUND);
    {
        char n1[600], n2[600];
        h_normalize(err.message, "du-ids-a/orders", n1, sizeof n1);
        h_normalize(err2.message, "du-ids-zz/orders", n2, sizeof n2);
        assert_string_equal(n1, n2);
    }
    /* An unknown subscription on one's own bus is NOT_FOUND naming it. */
    rc = ack(sub_a, "orders", "nope", ids, 1, &na, &err);
    h_assert_status("Ack on an unknown subscription", rc, &err, GRPC_STATUS_NOT_FOUND, "nope");
    /* Counts: none, and more than 1000. */
    rc = ack(sub_a, "orders", "s", ids, 0, &na, &err);
    h_assert_status("Ack of nothing", rc, &err, GRPC_STATUS_INVALID_ARGUMENT, "ack_ids");
    {
        char **many = calloc(1001, sizeof *many);
        assert_non_null(many);
        for (int i = 0; i < 1001; i++)
            many[i] = ma->ack_id;
        rc = ack(sub_a, "orders", "s", many, 1001, &na, &err);
        h_assert_status("Ack of 1001 ids", rc, &err, GRPC_STATUS_INVALID_ARGUMENT, "ack_ids");
        free(many);
    }
    /* A publisher key may not ack. */
    {
        cebus_client *p = cebus_client_new(env->srv[0].addr, a.publisher_key);
        rc = ack(p, "orders", "s", ids, 1, &na, &err);
        h_assert_status("Ack by a publisher", rc, &err, GRPC_STATUS_PERMISSION_DENIED, NULL);
        cebus_client_free(p);
    }

    cebus__v1__subscribe_response__free_unpacked(ma, NULL);
    cebus__v1__subscribe_response__free_unpacked(mb, NULL);
    cebus_stream_close(sa);
    cebus_stream_close(sb);
    cebus_client_free(admin_a);
    cebus_client_free(pub_a);
    cebus_client_free(sub_a);
    cebus_client_free(admin_b);
    cebus_client_free(pub_b);
    cebus_client_free(sub_b);
}

/* Runs sql with params[0..n) on the test's database; fails the test unless
 * it succeeds. */
static void sql_ok(struct h_env *env, const char *sql, int n, const char *const *params)
{
    PGconn *c = PQconnectdb(env->db.conninfo);
    PGresult *res;
    ExecStatusType st;

    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect: %s", PQerrorMessage(c));
    res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("SQL failed: %s: %s", sql, PQerrorMessage(c));
    PQclear(res);
    PQfinish(c);
}

/* Events that expire after the subscription's frontier before it examined
 * them (0014, "Retention"): the open stream ends OUT_OF_RANGE naming the
 * first lost sequence and the oldest retained one, and new streams are
 * refused the same way, since skipping them would hide their loss. Expiry
 * is made by hand, as in test_retention.c. */
static void test_events_expired_before_delivery(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    cebus_client *admin, *pub, *sub;
    cebus_stream *s;
    delivery *first, *m = NULL;
    Cebus__V1__SubscribeRequest req;
    uint64_t seqs[4];
    char want[128], lost[32];
    const char *params[1] = {lost};
    cebus_error err;
    int rc;

    h_tenant_create_ok(env->admin, "du-expired", "orders", &t);
    admin = cebus_client_new(env->srv[0].addr, t.admin_key);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    rule_ok(admin, "orders", "r", "late", NULL);

    /* One delivery in flight: the stream (N = 1) reads nothing more. */
    s = durable_ok(sub, "orders", "late", 1);
    put_n(pub, "orders", "x", 3, seqs);
    first = h_expect_next(s);
    assert_delivery(first, seqs[0], 1);
    snprintf(lost, sizeof lost, "%llu", (unsigned long long)seqs[2]);
    sql_ok(env,
           "UPDATE events SET expires_at = now() - interval '1 second' WHERE seq <= $1::bigint"
           " AND bus_id = (SELECT b.id FROM buses b JOIN tenants t ON t.id = b.tenant_id"
           " WHERE t.name = 'du-expired' AND b.name = 'orders')",
           1, params);
    seqs[3] = h_put_one_ok(pub, "orders", "x-3", "it.durable", NULL);
    /* The ack makes room; the next read finds seqs[1] and [2] gone. */
    ack_one_ok(sub, "orders", "late", first->ack_id);
    snprintf(want, sizeof want,
             "events from %llu expired before delivery; the oldest retained sequence is %llu",
             (unsigned long long)seqs[1], (unsigned long long)seqs[3]);
    do {
        if (m)
            cebus__v1__subscribe_response__free_unpacked(m, NULL);
        m = NULL;
        rc = cebus_stream_next(s, H_EVENT_TIMEOUT_MS, &m, &err);
        if (rc == 1 && m->sequence > seqs[0])
            fail_msg("delivered sequence %llu past the lost ones",
                     (unsigned long long)m->sequence);
    } while (rc == 1);
    assert_int_equal(rc, -1);
    h_assert_status("the stream's end", err.code, &err, GRPC_STATUS_OUT_OF_RANGE, want);
    assert_null(strstr(err.message, "du-expired"));
    cebus_stream_close(s);

    h_subscribe_request(&req, "orders", NULL, "late",
                        CEBUS__V1__START_POSITION__START_POSITION_UNSPECIFIED, 0);
    rc = h_subscribe_status(sub, &req, &err);
    h_assert_status("a new durable stream", rc, &err, GRPC_STATUS_OUT_OF_RANGE, want);

    cebus__v1__subscribe_response__free_unpacked(first, NULL);
    cebus_client_free(admin);
    cebus_client_free(pub);
    cebus_client_free(sub);
}

/* A Seek back with a stream open: the ids delivered before it no longer
 * apply, and the stream gets the events again from the new position, as
 * first deliveries with new ids (replay). */
static void test_seek_back_replays_to_open_stream(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    cebus_client *admin, *pub, *sub;
    cebus_stream *s;
    Cebus__V1__SeekRequest sreq = CEBUS__V1__SEEK_REQUEST__INIT;
    Cebus__V1__SeekResponse *sresp = NULL;
    delivery *old[3];
    uint64_t seqs[3], na = 0;
    cebus_error err;
    char *ids[3];
    int rc;

    h_tenant_create_ok(env->admin, "du-seek", "orders", &t);
    admin = cebus_client_new(env->srv[0].addr, t.admin_key);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    rule_ok(admin, "orders", "r", "replay", NULL);

    s = durable_ok(sub, "orders", "replay", 0);
    put_n(pub, "orders", "sk", 3, seqs);
    for (int i = 0; i < 3; i++) {
        old[i] = h_expect_next(s);
        assert_delivery(old[i], seqs[i], 1);
        ids[i] = old[i]->ack_id;
    }
    ack_one_ok(sub, "orders", "replay", old[0]->ack_id);

    sreq.bus = "orders";
    sreq.subscription = "replay";
    sreq.position = CEBUS__V1__START_POSITION__START_POSITION_SEQUENCE;
    sreq.sequence = seqs[0];
    rc = cebus_seek(sub, &sreq, &sresp, &err);
    h_assert_status("Seek", rc, &err, 0, NULL);
    assert_int_equal(sresp->next_sequence, seqs[0]);
    cebus__v1__seek_response__free_unpacked(sresp, NULL);

    /* Every event again from the position, the acked one included. */
    for (int i = 0; i < 3; i++) {
        delivery *m = h_expect_next(s);
        assert_delivery(m, seqs[i], 1);
        assert_string_not_equal(m->ack_id, old[i]->ack_id);
        ack_one_ok(sub, "orders", "replay", m->ack_id);
        cebus__v1__subscribe_response__free_unpacked(m, NULL);
    }
    rc = ack(sub, "orders", "replay", ids, 3, &na, &err);
    h_assert_status("Ack of ids from before the seek", rc, &err, 0, NULL);
    assert_int_equal(na, 7);
    assert_null(h_next(s, 300));

    for (int i = 0; i < 3; i++)
        cebus__v1__subscribe_response__free_unpacked(old[i], NULL);
    cebus_stream_close(s);
    cebus_client_free(admin);
    cebus_client_free(pub);
    cebus_client_free(sub);
}

/* An event nacked max_attempts times becomes a dead letter with the last
 * Nack's error, and is delivered no more; redriven, it comes back. */
static void test_nacked_to_dead_letter_and_redriven(void **state)
{
    struct h_env *env = *state;
    struct sub_opts o = {.max_attempts = 2};
    struct h_tenant t;
    cebus_client *admin, *pub, *sub;
    cebus_stream *s;
    Cebus__V1__ListDeadLettersRequest lreq = CEBUS__V1__LIST_DEAD_LETTERS_REQUEST__INIT;
    Cebus__V1__ListDeadLettersResponse *lresp = NULL;
    Cebus__V1__RedriveDeadLettersRequest rreq = CEBUS__V1__REDRIVE_DEAD_LETTERS_REQUEST__INIT;
    Cebus__V1__RedriveDeadLettersResponse *rresp = NULL;
    uint64_t seq, next, na = 0;
    cebus_error err;
    int rc;

    h_tenant_create_ok(env->admin, "du-dead", "orders", &t);
    admin = cebus_client_new(env->srv[0].addr, t.admin_key);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    rule_ok(admin, "orders", "r", "poison", &o);

    s = durable_ok(sub, "orders", "poison", 0);
    seq = h_put_one_ok(pub, "orders", "p-1", "it.durable", NULL);
    for (uint32_t attempt = 1; attempt <= 2; attempt++) {
        delivery *m = h_expect_next(s);
        assert_delivery(m, seq, attempt);
        rc = nack(sub, "orders", "poison", m->ack_id, 0, "cannot parse", &na, &err);
        h_assert_status("Nack", rc, &err, 0, NULL);
        assert_int_equal(na, 0);
        cebus__v1__subscribe_response__free_unpacked(m, NULL);
    }
    /* Not a third time: the next delivery is the next event. */
    next = h_put_one_ok(pub, "orders", "p-2", "it.durable", NULL);
    {
        delivery *m = h_expect_next(s);
        assert_delivery(m, next, 1);
        ack_one_ok(sub, "orders", "poison", m->ack_id);
        cebus__v1__subscribe_response__free_unpacked(m, NULL);
    }
    lreq.bus = rreq.bus = "orders";
    lreq.subscription = rreq.subscription = "poison";
    rc = cebus_list_dead_letters(admin, &lreq, &lresp, &err);
    h_assert_status("ListDeadLetters", rc, &err, 0, NULL);
    assert_int_equal(lresp->n_dead_letters, 1);
    assert_int_equal(lresp->dead_letters[0]->sequence, seq);
    assert_string_equal(lresp->dead_letters[0]->last_error, "cannot parse");
    assert_int_equal(lresp->dead_letters[0]->attempts, 2);
    cebus__v1__list_dead_letters_response__free_unpacked(lresp, NULL);

    rc = cebus_redrive_dead_letters(admin, &rreq, &rresp, &err);
    h_assert_status("RedriveDeadLetters", rc, &err, 0, NULL);
    assert_int_equal(rresp->count, 1);
    cebus__v1__redrive_dead_letters_response__free_unpacked(rresp, NULL);
    {
        delivery *m = h_expect_next(s);
        assert_delivery(m, seq, 0);
        ack_one_ok(sub, "orders", "poison", m->ack_id);
        cebus__v1__subscribe_response__free_unpacked(m, NULL);
    }
    cebus_stream_close(s);
    cebus_client_free(admin);
    cebus_client_free(pub);
    cebus_client_free(sub);
}

/* A durable stream follows its rule (0010): after UpdateRule changes the
 * pattern, events are judged by the new one; the subscription keeps its
 * state across the update (same target name). */
static void test_rule_change_reaches_durable_stream(void **state)
{
    struct h_env *env = *state;
    struct sub_opts o = {.pattern = "{\"type\":[\"a\"]}"};
    struct h_tenant t;
    cebus_client *admin, *pub, *sub;
    cebus_stream *s;
    Cebus__V1__UpdateRuleRequest ureq = CEBUS__V1__UPDATE_RULE_REQUEST__INIT;
    Cebus__V1__Rule rule = CEBUS__V1__RULE__INIT;
    Cebus__V1__Rule *resp = NULL;
    char *mask[1] = {"pattern"};
    uint64_t a1, b1, b2;
    cebus_error err;
    int rc;

    h_tenant_create_ok(env->admin, "du-follow", "orders", &t);
    admin = cebus_client_new(env->srv[0].addr, t.admin_key);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    rule_ok(admin, "orders", "r", "follow", &o);

    s = durable_ok(sub, "orders", "follow", 0);
    h_put_one_ok(pub, "orders", "b-0", "b", NULL);
    a1 = h_put_one_ok(pub, "orders", "a-1", "a", NULL);
    {
        delivery *m = h_expect_next(s);
        assert_delivery(m, a1, 1);
        ack_one_ok(sub, "orders", "follow", m->ack_id);
        cebus__v1__subscribe_response__free_unpacked(m, NULL);
    }
    rule.pattern = "{\"type\":[\"b\"]}";
    ureq.bus = "orders";
    ureq.name = "r";
    ureq.rule = &rule;
    ureq.n_update_mask = 1;
    ureq.update_mask = mask;
    rc = cebus_update_rule(admin, &ureq, &resp, &err);
    h_assert_status("UpdateRule", rc, &err, 0, NULL);
    cebus__v1__rule__free_unpacked(resp, NULL);

    b1 = h_put_one_ok(pub, "orders", "b-1", "b", NULL);
    h_put_one_ok(pub, "orders", "a-2", "a", NULL);
    b2 = h_put_one_ok(pub, "orders", "b-2", "b", NULL);
    {
        delivery *m = h_expect_next(s);
        assert_delivery(m, b1, 1);
        ack_one_ok(sub, "orders", "follow", m->ack_id);
        cebus__v1__subscribe_response__free_unpacked(m, NULL);
        m = h_expect_next(s);
        assert_delivery(m, b2, 1);
        ack_one_ok(sub, "orders", "follow", m->ack_id);
        cebus__v1__subscribe_response__free_unpacked(m, NULL);
    }
    assert_null(h_next(s, 300));
    cebus_stream_close(s);
    cebus_client_free(admin);
    cebus_client_free(pub);
    cebus_client_free(sub);
}

/* ---- Sharing ------------------------------------------------------------------ */

/* Consumers on streams[0..n) that ack what they get, until every sequence
 * of want[0..nwant) has been acked. Fails the test when one sequence is
 * delivered while another consumer still holds it, when something else is
 * delivered, or when the deadline passes. Sets per_stream[i] to the
 * deliveries stream i got. */
static void consume_all(cebus_client *const *clients, cebus_stream *const *streams, int n,
                        const char *bus, const char *sub, const uint64_t *want, size_t nwant,
                        int *per_stream)
{
    bool *acked = calloc(nwant, sizeof *acked);
    size_t done = 0;
    int64_t deadline = h_now_ms() + 60000;

    assert_non_null(acked);
    for (int i = 0; i < n; i++)
        per_stream[i] = 0;
    while (done < nwant) {
        bool any = false;
        if (h_now_ms() > deadline)
            fail_msg("%zu of %zu events acked within 60 s", done, nwant);
        for (int i = 0; i < n; i++) {
            delivery *m = h_next(streams[i], 20);
            size_t k;
            if (!m)
                continue;
            any = true;
            for (k = 0; k < nwant && want[k] != m->sequence; k++)
                ;
            if (k == nwant)
                fail_msg("sequence %llu delivered, not one of the events",
                         (unsigned long long)m->sequence);
            /* Deadlines are 30 s and every delivery is acked at once, so a
             * second delivery can only be a double lease. */
            if (acked[k])
                fail_msg("sequence %llu delivered again after its ack",
                         (unsigned long long)m->sequence);
            assert_int_equal(m->attempt, 1);
            ack_one_ok(clients[i], bus, sub, m->ack_id);
            acked[k] = true;
            done++;
            per_stream[i]++;
            cebus__v1__subscribe_response__free_unpacked(m, NULL);
        }
        (void)any;
    }
    free(acked);
}

/* Two streams on one subscription share its events: each event goes to one
 * of them, and both get some. */
static void test_two_streams_share(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    cebus_client *admin, *pub, *c[2];
    cebus_stream *s[2];
    uint64_t seqs[40];
    int per[2];

    h_tenant_create_ok(env->admin, "du-share", "orders", &t);
    admin = cebus_client_new(env->srv[0].addr, t.admin_key);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    rule_ok(admin, "orders", "r", "shared", NULL);
    for (int i = 0; i < 2; i++) {
        c[i] = cebus_client_new(env->srv[0].addr, t.subscriber_key);
        s[i] = durable_ok(c[i], "orders", "shared", 4);
    }
    put_n(pub, "orders", "sh", 40, seqs);
    consume_all(c, s, 2, "orders", "shared", seqs, 40, per);
    assert_true(per[0] > 0);
    assert_true(per[1] > 0);
    for (int i = 0; i < 2; i++) {
        assert_null(h_next(s[i], 200)); /* nothing twice */
        cebus_stream_close(s[i]);
        cebus_client_free(c[i]);
    }
    cebus_client_free(admin);
    cebus_client_free(pub);
}

/* Consumers on two, then three replicas of one database share one
 * subscription: every event delivered and acked, none to two consumers. */
static void test_replicas_share(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    cebus_client *admin, *pub, *c[3];
    cebus_stream *s[3];
    uint64_t seqs[60];
    int per[3];

    while (env->nservers < 3)
        h_env_add_server_ok(env, NULL);
    h_tenant_create_ok(env->admin, "du-replicas", "orders", &t);
    admin = cebus_client_new(env->srv[0].addr, t.admin_key);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    rule_ok(admin, "orders", "r", "fleet", NULL);
    for (int nrep = 2; nrep <= 3; nrep++) {
        char prefix[16];
        for (int i = 0; i < nrep; i++) {
            c[i] = cebus_client_new(env->srv[i].addr, t.subscriber_key);
            s[i] = durable_ok(c[i], "orders", "fleet", 3);
        }
        snprintf(prefix, sizeof prefix, "rep%d", nrep);
        put_n(pub, "orders", prefix, 60, seqs);
        consume_all(c, s, nrep, "orders", "fleet", seqs, 60, per);
        for (int i = 0; i < nrep; i++) {
            assert_null(h_next(s[i], 200));
            cebus_stream_close(s[i]);
            cebus_client_free(c[i]);
        }
    }
    cebus_client_free(admin);
    cebus_client_free(pub);
}

/* Events with the same partitionkey are in flight one at a time and
 * delivered in sequence order; other keys are not held up. */
static void test_partition_key_one_in_flight_in_order(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    cebus_client *admin, *pub, *sub;
    cebus_stream *s;
    uint64_t seqs[8];
    uint64_t last[2] = {0, 0};
    int got = 0;

    h_tenant_create_ok(env->admin, "du-pkey", "orders", &t);
    admin = cebus_client_new(env->srv[0].addr, t.admin_key);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    rule_ok(admin, "orders", "r", "keyed", NULL);

    for (int i = 0; i < 8; i++) {
        h_event *ev;
        Cebus__V1__PutEventsResponse *resp = NULL;
        cebus_error err;
        char id[32];
        snprintf(id, sizeof id, "k-%d", i);
        ev = h_event_new(id, "/it", "it.keyed", NULL);
        h_event_add_attr(ev, "partitionkey", i % 2 ? "odd" : "even");
        assert_int_equal(h_put(pub, "orders", &ev, 1, &resp, &err), 0);
        assert_int_equal(resp->results[0]->code, 0);
        seqs[i] = resp->results[0]->sequence;
        cebus__v1__put_events_response__free_unpacked(resp, NULL);
        h_event_free(ev);
    }
    s = durable_ok(sub, "orders", "keyed", 10);
    while (got < 8) {
        delivery *m[2];
        int k;
        /* One per key in flight: exactly two arrive, one of each key. */
        m[0] = h_expect_next(s);
        m[1] = h_expect_next(s);
        assert_null(h_next(s, 500));
        for (int i = 0; i < 2; i++) {
            size_t idx;
            for (idx = 0; idx < 8 && seqs[idx] != m[i]->sequence; idx++)
                ;
            assert_true(idx < 8);
            k = (int)(idx % 2);
            assert_true(m[i]->sequence > last[k]); /* in order per key */
            last[k] = m[i]->sequence;
        }
        assert_string_not_equal(h_event_attr_string(m[0]->event, "partitionkey"),
                                h_event_attr_string(m[1]->event, "partitionkey"));
        for (int i = 0; i < 2; i++) {
            ack_one_ok(sub, "orders", "keyed", m[i]->ack_id);
            cebus__v1__subscribe_response__free_unpacked(m[i], NULL);
        }
        got += 2;
    }
    assert_int_equal(last[0], seqs[6]);
    assert_int_equal(last[1], seqs[7]);
    cebus_stream_close(s);
    cebus_client_free(admin);
    cebus_client_free(pub);
    cebus_client_free(sub);
}

/* 16 publishers with random batch sizes while one consumer (one delivery
 * in flight) acks each event: the set of sequences delivered and acked is
 * exactly the set of matching sequences published, each once, in order. A
 * frontier that passed a late commit would show as a missing sequence. */
static void test_concurrent_publishers_exactly_once(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    cebus_client *admin, *sub;
    cebus_stream *s;
    struct h_load *load;
    const char *addrs[1];
    uint64_t *want = NULL, *got = NULL, prev = 0;
    size_t nwant = 0, ngot = 0, cap = 0;
    long target = h_under_valgrind() ? 150 : 1500, acked = 0;
    int64_t deadline;

    h_tenant_create_ok(env->admin, "du-exactly", "orders", &t);
    admin = cebus_client_new(env->srv[0].addr, t.admin_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    /* Every publisher's events match; nothing else is on the bus. */
    rule_ok(admin, "orders", "r", "all",
            &(struct sub_opts){.pattern = "{\"type\":[\"faults.test\"]}"});
    s = durable_ok(sub, "orders", "all", 1);

    addrs[0] = env->srv[0].addr;
    load = h_load_start(addrs, 1, t.publisher_key, "orders", 16, 20, 7, 0);
    deadline = h_now_ms() + 120000;
    while (h_load_totals(load, &acked, NULL, NULL), acked < target) {
        delivery *m = h_next(s, 20);
        if (h_now_ms() > deadline)
            fail_msg("publishers acknowledged %ld of %ld events in 120 s", acked, target);
        if (!m)
            continue;
        if (ngot == cap) {
            cap = cap ? cap * 2 : 1024;
            got = realloc(got, cap * sizeof *got);
            assert_non_null(got);
        }
        assert_true(m->sequence > prev);
        prev = m->sequence;
        got[ngot++] = m->sequence;
        ack_one_ok(sub, "orders", "all", m->ack_id);
        cebus__v1__subscribe_response__free_unpacked(m, NULL);
    }
    h_load_stop(load);
    for (int i = 0; i < load->npubs; i++)
        for (size_t k = 0; k < load->pubs[i].nacks; k++) {
            want = realloc(want, (nwant + 1) * sizeof *want);
            assert_non_null(want);
            want[nwant++] = load->pubs[i].acks[k].seq;
        }
    /* Sorted ascending: the sequences of the bus are all the load's. */
    for (size_t i = 1; i < nwant; i++)
        for (size_t j = i; j > 0 && want[j - 1] > want[j]; j--) {
            uint64_t x = want[j];
            want[j] = want[j - 1];
            want[j - 1] = x;
        }
    deadline = h_now_ms() + 120000;
    while (ngot < nwant) {
        delivery *m = h_next(s, 200);
        if (h_now_ms() > deadline)
            fail_msg("%zu of %zu events delivered within 120 s", ngot, nwant);
        if (!m)
            continue;
        if (ngot == cap) {
            cap = cap ? cap * 2 : 1024;
            got = realloc(got, cap * sizeof *got);
            assert_non_null(got);
        }
        assert_true(m->sequence > prev);
        prev = m->sequence;
        got[ngot++] = m->sequence;
        ack_one_ok(sub, "orders", "all", m->ack_id);
        cebus__v1__subscribe_response__free_unpacked(m, NULL);
    }
    assert_null(h_next(s, 300));
    for (size_t i = 0; i < nwant; i++)
        if (got[i] != want[i])
            fail_msg("delivery %zu is sequence %llu, expected %llu", i,
                     (unsigned long long)got[i], (unsigned long long)want[i]);
    free(want);
    free(got);
    h_load_free(load);
    cebus_stream_close(s);
    cebus_client_free(admin);
    cebus_client_free(sub);
}

/* An ack made through another replica than the stream's frees the
 * stream's place: the replica holding the lease learns of it (the ack's
 * notification, or its periodic recount) and delivers the next event. */
static void test_ack_through_another_replica(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    cebus_client *admin, *pub, *sub0, *sub1;
    cebus_stream *s;
    uint64_t seqs[3];

    while (env->nservers < 2)
        h_env_add_server_ok(env, NULL);
    h_tenant_create_ok(env->admin, "du-elsewhere", "orders", &t);
    admin = cebus_client_new(env->srv[0].addr, t.admin_key);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub0 = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    sub1 = cebus_client_new(env->srv[1].addr, t.subscriber_key);
    rule_ok(admin, "orders", "r", "far", NULL);

    s = durable_ok(sub0, "orders", "far", 1);
    put_n(pub, "orders", "f", 3, seqs);
    for (int i = 0; i < 3; i++) {
        delivery *m = h_expect_next(s);
        assert_delivery(m, seqs[i], 1);
        ack_one_ok(sub1, "orders", "far", m->ack_id);
        cebus__v1__subscribe_response__free_unpacked(m, NULL);
    }
    cebus_stream_close(s);
    cebus_client_free(admin);
    cebus_client_free(pub);
    cebus_client_free(sub0);
    cebus_client_free(sub1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acked_not_redelivered_after_reconnect),
        cmocka_unit_test(test_unacked_comes_back_after_deadline),
        cmocka_unit_test(test_nack_redelivers),
        cmocka_unit_test(test_max_in_flight_respected),
        cmocka_unit_test(test_ids_that_do_not_apply),
        cmocka_unit_test(test_events_expired_before_delivery),
        cmocka_unit_test(test_seek_back_replays_to_open_stream),
        cmocka_unit_test(test_rule_change_reaches_durable_stream),
        cmocka_unit_test(test_nacked_to_dead_letter_and_redriven),
        cmocka_unit_test(test_two_streams_share),
        cmocka_unit_test(test_partition_key_one_in_flight_in_order),
        cmocka_unit_test_teardown(test_concurrent_publishers_exactly_once, h_load_teardown),
        cmocka_unit_test(test_replicas_share),
        cmocka_unit_test(test_ack_through_another_replica),
    };

    return cmocka_run_group_tests(tests, h_env_setup, h_env_teardown);
}
