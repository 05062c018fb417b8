/* PutEvents and Subscribe against a real cebusd: order and sequences,
 * pattern filtering, the four start positions, subscription targets,
 * server-stamped attributes and per-entry results. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ALL "{}"

typedef Cebus__V1__SubscribeResponse delivery;

static void free_delivery(delivery *m)
{
    cebus__v1__subscribe_response__free_unpacked(m, NULL);
}

/* Receives the next delivery and checks its sequence and event id. */
static void expect_event(cebus_stream *s, uint64_t seq, const char *id)
{
    delivery *m = h_expect_next(s);

    assert_non_null(m->event);
    if (m->sequence != seq || strcmp(m->event->id, id) != 0)
        fail_msg("expected event %s at sequence %llu, got %s at %llu", id, (unsigned long long)seq,
                 m->event->id, (unsigned long long)m->sequence);
    free_delivery(m);
}

/* Events put in one batch and one by one come back from the start of the
 * bus in order, each with the sequence PutEvents answered, payload intact. */
static void test_put_then_subscribe_delivers_in_order_with_sequences(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    h_event *evs[5];
    Cebus__V1__PutEventsResponse *resp = NULL;
    uint64_t seqs[8];
    cebus_client *pub, *sub;
    cebus_stream *s;
    cebus_error err;
    char id[16], data[64];

    h_tenant_create_ok(env->admin, "ps-order", "orders", &t);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);

    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "e%d", i);
        snprintf(data, sizeof data, "{\"n\":%d}", i);
        evs[i] = h_event_new(id, "/it/order", "order.created", data);
    }
    assert_int_equal(h_put(pub, "orders", evs, 5, &resp, &err), 0);
    assert_int_equal(resp->n_results, 5);
    assert_int_equal(resp->failed_count, 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(resp->results[i]->code, 0);
        seqs[i] = resp->results[i]->sequence;
        if (i > 0)
            assert_true(seqs[i] > seqs[i - 1]);
        h_event_free(evs[i]);
    }
    cebus__v1__put_events_response__free_unpacked(resp, NULL);
    for (int i = 5; i < 8; i++) {
        snprintf(id, sizeof id, "e%d", i);
        snprintf(data, sizeof data, "{\"n\":%d}", i);
        seqs[i] = h_put_one_ok(pub, "orders", id, "order.created", data);
        assert_true(seqs[i] > seqs[i - 1]);
    }

    s = h_subscribe_ok(sub, "orders", ALL, CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
    for (int i = 0; i < 8; i++) {
        delivery *m = h_expect_next(s);
        snprintf(id, sizeof id, "e%d", i);
        snprintf(data, sizeof data, "{\"n\":%d}", i);
        assert_non_null(m->event);
        assert_int_equal(m->sequence, seqs[i]);
        assert_string_equal(m->event->id, id);
        assert_string_equal(m->event->source, i < 5 ? "/it/order" : "/it");
        assert_string_equal(m->event->type, "order.created");
        assert_string_equal(m->event->spec_version, "1.0");
        assert_int_equal(m->event->data_case, IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_TEXT_DATA);
        assert_string_equal(m->event->text_data, data);
        free_delivery(m);
    }
    /* Live events follow the backlog on the same stream. */
    seqs[0] = h_put_one_ok(pub, "orders", "live", "order.created", NULL);
    expect_event(s, seqs[0], "live");

    cebus_stream_close(s);
    cebus_client_free(pub);
    cebus_client_free(sub);
}

/* Only matching events arrive. Non-matching events are put between
 * matching ones, so a wrong match would show up before the last match:
 * no waiting for something not to happen. */
static void test_pattern_delivers_matching_events_only(void **state)
{
    static const char *pattern =
        "{\"type\":[\"order.created\"],"
        "\"source\":[{\"prefix\":\"/shop/\"}],"
        "\"data\":{\"amount\":[{\"numeric\":[\">\",100]}],\"customer\":{\"tier\":[\"gold\"]}}}";
    struct h_env *env = *state;
    struct h_tenant t;
    cebus_client *pub, *sub;
    cebus_stream *s;
    struct {
        const char *id, *source, *type, *data;
        bool match;
    } cases[] = {
        {"m1", "/shop/eu", "order.created", "{\"amount\":150,\"customer\":{\"tier\":\"gold\"}}",
         true},
        {"n1", "/shop/eu", "order.cancelled", "{\"amount\":150,\"customer\":{\"tier\":\"gold\"}}",
         false},
        {"n2", "/shop/eu", "order.created", "{\"amount\":50,\"customer\":{\"tier\":\"gold\"}}",
         false},
        {"n3", "/crm/eu", "order.created", "{\"amount\":150,\"customer\":{\"tier\":\"gold\"}}",
         false},
        {"n4", "/shop/eu", "order.created", "{\"amount\":150,\"customer\":{\"tier\":\"silver\"}}",
         false},
        {"n5", "/shop/eu", "order.created", "{\"amount\":150}", false},
        {"n6", "/shop/eu", "order.created", NULL, false},
        {"m2", "/shop/us", "order.created", "{\"amount\":100.5,\"customer\":{\"tier\":\"gold\"}}",
         true},
    };
    uint64_t seqs[sizeof cases / sizeof cases[0]];
    size_t ncases = sizeof cases / sizeof cases[0];

    h_tenant_create_ok(env->admin, "ps-pattern", "orders", &t);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    s = h_subscribe_ok(sub, "orders", pattern, CEBUS__V1__START_POSITION__START_POSITION_EARLIEST,
                       0);
    for (size_t i = 0; i < ncases; i++) {
        h_event *ev = h_event_new(cases[i].id, cases[i].source, cases[i].type, cases[i].data);
        Cebus__V1__PutEventsResponse *resp = NULL;
        cebus_error err;
        assert_int_equal(h_put(pub, "orders", &ev, 1, &resp, &err), 0);
        assert_int_equal(resp->results[0]->code, 0);
        seqs[i] = resp->results[0]->sequence;
        cebus__v1__put_events_response__free_unpacked(resp, NULL);
        h_event_free(ev);
    }
    for (size_t i = 0; i < ncases; i++)
        if (cases[i].match)
            expect_event(s, seqs[i], cases[i].id);

    cebus_stream_close(s);
    cebus_client_free(pub);
    cebus_client_free(sub);
}

/* Several streams on one bus share the bus's matcher: each gets exactly
 * the events its own pattern matches, also after a stream joins and after
 * one leaves (each rebuilds the matcher). Non-matching events sit between
 * matching ones, so a wrong delivery shows up before the expected one. */
static void test_streams_share_one_matcher(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    cebus_client *pub, *sub;
    cebus_stream *sa, *sb, *sall, *sc;
    uint64_t a1, b1, c1, a2, b2, c2, a3, c3;

    h_tenant_create_ok(env->admin, "ps-matcher", "orders", &t);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    sa = h_subscribe_ok(sub, "orders", "{\"type\":[\"t.a\"]}",
                        CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
    sb = h_subscribe_ok(sub, "orders", "{\"type\":[{\"prefix\":\"t.b\"}]}",
                        CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
    sall = h_subscribe_ok(sub, "orders", ALL, CEBUS__V1__START_POSITION__START_POSITION_EARLIEST,
                          0);
    a1 = h_put_one_ok(pub, "orders", "a1", "t.a", NULL);
    b1 = h_put_one_ok(pub, "orders", "b1", "t.bx", NULL);
    c1 = h_put_one_ok(pub, "orders", "c1", "t.c", NULL);
    expect_event(sa, a1, "a1");
    expect_event(sb, b1, "b1");
    expect_event(sall, a1, "a1");
    expect_event(sall, b1, "b1");
    expect_event(sall, c1, "c1");

    /* A stream joins a bus whose matcher is built. */
    sc = h_subscribe_ok(sub, "orders", "{\"type\":[{\"equals-ignore-case\":\"T.C\"}]}",
                        CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
    a2 = h_put_one_ok(pub, "orders", "a2", "t.a", NULL);
    b2 = h_put_one_ok(pub, "orders", "b2", "t.b", NULL);
    c2 = h_put_one_ok(pub, "orders", "c2", "t.c", NULL);
    expect_event(sc, c1, "c1");
    expect_event(sc, c2, "c2");
    expect_event(sa, a2, "a2");
    expect_event(sb, b2, "b2");
    expect_event(sall, a2, "a2");
    expect_event(sall, b2, "b2");
    expect_event(sall, c2, "c2");

    /* A stream leaves. */
    cebus_stream_close(sa);
    a3 = h_put_one_ok(pub, "orders", "a3", "t.a", NULL);
    c3 = h_put_one_ok(pub, "orders", "c3", "t.c", NULL);
    expect_event(sc, c3, "c3");
    expect_event(sall, a3, "a3");
    expect_event(sall, c3, "c3");

    cebus_stream_close(sb);
    cebus_stream_close(sc);
    cebus_stream_close(sall);
    cebus_client_free(pub);
    cebus_client_free(sub);
}

/* START_POSITION_EARLIEST replays the whole log; SEQUENCE starts at the
 * given sequence, inclusive. */
static void test_start_earliest_and_sequence(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    cebus_client *pub, *sub;
    cebus_stream *s;
    uint64_t seqs[4];
    char id[16];

    h_tenant_create_ok(env->admin, "ps-start-seq", "orders", &t);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    for (int i = 0; i < 4; i++) {
        snprintf(id, sizeof id, "e%d", i);
        seqs[i] = h_put_one_ok(pub, "orders", id, "t", NULL);
    }

    s = h_subscribe_ok(sub, "orders", ALL, CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
    for (int i = 0; i < 4; i++) {
        snprintf(id, sizeof id, "e%d", i);
        expect_event(s, seqs[i], id);
    }
    cebus_stream_close(s);

    s = h_subscribe_ok(sub, "orders", ALL, CEBUS__V1__START_POSITION__START_POSITION_SEQUENCE,
                       seqs[2]);
    expect_event(s, seqs[2], "e2");
    expect_event(s, seqs[3], "e3");
    cebus_stream_close(s);

    /* A sequence past the head waits for it. */
    s = h_subscribe_ok(sub, "orders", ALL, CEBUS__V1__START_POSITION__START_POSITION_SEQUENCE,
                       seqs[3] + 2);
    seqs[0] = h_put_one_ok(pub, "orders", "skipped", "t", NULL);
    seqs[1] = h_put_one_ok(pub, "orders", "wanted", "t", NULL);
    assert_int_equal(seqs[1], seqs[3] + 2);
    expect_event(s, seqs[1], "wanted");
    cebus_stream_close(s);

    cebus_client_free(pub);
    cebus_client_free(sub);
}

/* START_POSITION_LATEST (and UNSPECIFIED, its synonym) delivers only events
 * appended after the stream started. */
static void test_start_latest_skips_the_backlog(void **state)
{
    static const Cebus__V1__StartPosition starts[] = {
        CEBUS__V1__START_POSITION__START_POSITION_LATEST,
        CEBUS__V1__START_POSITION__START_POSITION_UNSPECIFIED,
    };
    struct h_env *env = *state;
    struct h_tenant t;
    cebus_client *pub, *sub;

    h_tenant_create_ok(env->admin, "ps-latest", "orders", &t);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    h_put_one_ok(pub, "orders", "old-1", "t", NULL);
    h_put_one_ok(pub, "orders", "old-2", "t", NULL);

    for (size_t k = 0; k < 2; k++) {
        cebus_stream *s = h_subscribe_ok(sub, "orders", ALL, starts[k], 0);
        char id[32];
        uint64_t seq;
        /* The sync fails the test if anything but its markers (an old
         * event) arrives first. */
        h_stream_sync_ok(pub, "orders", s);
        /* Ids differ per round: a repeated (source, id) is deduplicated. */
        snprintf(id, sizeof id, "new-%zu", k);
        seq = h_put_one_ok(pub, "orders", id, "t", NULL);
        expect_event(s, seq, id);
        cebus_stream_close(s);
    }
    cebus_client_free(pub);
    cebus_client_free(sub);
}

/* START_POSITION_TIME starts at the first event received at or after the
 * time; a time in the future behaves like LATEST; a missing time is
 * INVALID_ARGUMENT. */
static void test_start_time(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    cebus_client *pub, *sub;
    Cebus__V1__SubscribeRequest req;
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    const Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue *v;
    cebus_stream *s = NULL;
    cebus_error err;
    delivery *m;
    uint64_t seqs[4];

    h_tenant_create_ok(env->admin, "ps-start-time", "orders", &t);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    seqs[0] = h_put_one_ok(pub, "orders", "e0", "t", NULL);
    seqs[1] = h_put_one_ok(pub, "orders", "e1", "t", NULL);
    seqs[2] = h_put_one_ok(pub, "orders", "e2", "t", NULL);
    seqs[3] = h_put_one_ok(pub, "orders", "e3", "t", NULL);

    /* The receive time of e2, as the server stamped it. */
    s = h_subscribe_ok(sub, "orders", ALL, CEBUS__V1__START_POSITION__START_POSITION_SEQUENCE,
                       seqs[2]);
    m = h_expect_next(s);
    assert_int_equal(m->sequence, seqs[2]);
    v = h_event_attr(m->event, "cebusrecvtime");
    assert_non_null(v);
    assert_int_equal(
        v->attr_case,
        IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_TIMESTAMP);
    ts.seconds = v->ce_timestamp->seconds;
    ts.nanos = v->ce_timestamp->nanos;
    free_delivery(m);
    cebus_stream_close(s);

    h_subscribe_request(&req, "orders", ALL, NULL, CEBUS__V1__START_POSITION__START_POSITION_TIME,
                        0);
    req.start_time = &ts;
    assert_int_equal(cebus_subscribe(sub, &req, &s, &err), 0);
    /* e1 was received in an earlier call, so strictly before e2. */
    expect_event(s, seqs[2], "e2");
    expect_event(s, seqs[3], "e3");
    cebus_stream_close(s);

    /* Before everything: the whole log. */
    ts.seconds = 1;
    ts.nanos = 0;
    assert_int_equal(cebus_subscribe(sub, &req, &s, &err), 0);
    expect_event(s, seqs[0], "e0");
    cebus_stream_close(s);

    /* In the future: only new events. */
    ts.seconds = (int64_t)time(NULL) + 3600;
    assert_int_equal(cebus_subscribe(sub, &req, &s, &err), 0);
    h_stream_sync_ok(pub, "orders", s);
    seqs[0] = h_put_one_ok(pub, "orders", "future", "t", NULL);
    expect_event(s, seqs[0], "future");
    cebus_stream_close(s);

    /* Without a time. */
    req.start_time = NULL;
    assert_int_equal(h_subscribe_status(sub, &req, &err), GRPC_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "start_time"));

    cebus_client_free(pub);
    cebus_client_free(sub);
}

/* A stream on a rule's subscription target uses the rule's pattern. */
static void test_subscribe_to_rule_subscription_by_name(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    Cebus__V1__CreateRuleRequest rreq = CEBUS__V1__CREATE_RULE_REQUEST__INIT;
    Cebus__V1__Target target = CEBUS__V1__TARGET__INIT;
    Cebus__V1__SubscriptionTarget sub_target = CEBUS__V1__SUBSCRIPTION_TARGET__INIT;
    Cebus__V1__Target *targets[1] = {&target};
    Cebus__V1__SubscribeRequest req;
    Cebus__V1__Rule *rule = NULL;
    cebus_client *admin, *pub, *sub;
    cebus_stream *s = NULL;
    cebus_error err;
    uint64_t seq;

    h_tenant_create_ok(env->admin, "ps-subscription", "orders", &t);
    admin = cebus_client_new(env->srv[0].addr, t.admin_key);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);

    sub_target.name = "billing";
    target.kind_case = CEBUS__V1__TARGET__KIND_SUBSCRIPTION;
    target.subscription = &sub_target;
    rreq.bus = "orders";
    rreq.name = "paid-orders";
    rreq.pattern = "{\"type\":[\"order.paid\"]}";
    rreq.n_targets = 1;
    rreq.targets = targets;
    assert_int_equal(cebus_create_rule(admin, &rreq, &rule, &err), 0);
    assert_string_equal(rule->name, "paid-orders");
    assert_int_equal(rule->n_targets, 1);
    assert_string_equal(rule->targets[0]->subscription->name, "billing");
    cebus__v1__rule__free_unpacked(rule, NULL);

    h_put_one_ok(pub, "orders", "o1", "order.created", NULL);
    seq = h_put_one_ok(pub, "orders", "o2", "order.paid", NULL);
    h_put_one_ok(pub, "orders", "o3", "order.shipped", NULL);

    h_subscribe_request(&req, "orders", NULL, "billing",
                        CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
    assert_int_equal(cebus_subscribe(sub, &req, &s, &err), 0);
    expect_event(s, seq, "o2");
    h_put_one_ok(pub, "orders", "o4", "order.created", NULL);
    seq = h_put_one_ok(pub, "orders", "o5", "order.paid", NULL);
    expect_event(s, seq, "o5");
    cebus_stream_close(s);

    /* An unknown subscription name is NOT_FOUND, naming it. */
    h_subscribe_request(&req, "orders", NULL, "no-such-sub",
                        CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
    assert_int_equal(h_subscribe_status(sub, &req, &err), GRPC_STATUS_NOT_FOUND);
    assert_non_null(strstr(err.message, "no-such-sub"));

    cebus_client_free(admin);
    cebus_client_free(pub);
    cebus_client_free(sub);
}

/* The server stamps cebustenant (the publishing tenant) and cebusrecvtime
 * (its receive time); values a publisher supplies for them, or for any
 * other cebus* attribute, are dropped. Other extensions pass through. */
static void test_server_stamps_tenant_and_receive_time(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    cebus_client *pub, *sub;
    Cebus__V1__PutEventsResponse *resp = NULL;
    const Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue *v;
    h_event *ev;
    cebus_stream *s;
    cebus_error err;
    delivery *m;
    time_t before, after;

    h_tenant_create_ok(env->admin, "ps-stamps", "orders", &t);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);

    ev = h_event_new("forged", "/it", "order.created", "{}");
    h_event_add_attr(ev, "cebustenant", "platform");
    h_event_add_attr(ev, "cebusrecvtime", "1999-01-01T00:00:00Z");
    h_event_add_attr(ev, "cebusother", "x");
    h_event_add_attr(ev, "subject", "order-7");
    before = time(NULL);
    assert_int_equal(h_put(pub, "orders", &ev, 1, &resp, &err), 0);
    after = time(NULL);
    assert_int_equal(resp->results[0]->code, 0);
    cebus__v1__put_events_response__free_unpacked(resp, NULL);
    h_event_free(ev);

    s = h_subscribe_ok(sub, "orders", ALL, CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
    m = h_expect_next(s);
    assert_string_equal(m->event->id, "forged");
    assert_int_equal(h_event_attr_count(m->event, "cebustenant"), 1);
    assert_int_equal(h_event_attr_count(m->event, "cebusrecvtime"), 1);
    assert_int_equal(h_event_attr_count(m->event, "cebusother"), 0);
    assert_non_null(h_event_attr_string(m->event, "cebustenant"));
    assert_string_equal(h_event_attr_string(m->event, "cebustenant"), "ps-stamps");
    v = h_event_attr(m->event, "cebusrecvtime");
    assert_non_null(v);
    assert_int_equal(
        v->attr_case,
        IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_TIMESTAMP);
    assert_non_null(v->ce_timestamp);
    /* Same machine, same clock; a second of slack for rounding. */
    assert_in_range(v->ce_timestamp->seconds, before - 1, after + 1);
    assert_string_equal(h_event_attr_string(m->event, "subject"), "order-7");
    free_delivery(m);

    cebus_stream_close(s);
    cebus_client_free(pub);
    cebus_client_free(sub);
}

/* One PutEvents with valid and invalid entries: valid ones get increasing
 * sequences, invalid ones INVALID_ARGUMENT naming events[i].field, and
 * failed_count counts them. Only the valid ones are stored. */
static void test_put_events_answers_per_entry(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    cebus_client *pub, *sub;
    Cebus__V1__PutEventsResponse *resp = NULL;
    h_event *evs[7];
    cebus_stream *s;
    cebus_error err;
    struct {
        bool ok;
        const char *field;
    } want[7] = {
        {true, NULL},
        {false, "events[1].id"},
        {true, NULL},
        {false, "events[3].spec_version"},
        {false, "events[4].type"},
        {false, "events[5].source"},
        {true, NULL},
    };
    uint64_t last = 0;

    h_tenant_create_ok(env->admin, "ps-entries", "orders", &t);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    evs[0] = h_event_new("ok-0", "/it", "t", NULL);
    evs[1] = h_event_new(NULL, "/it", "t", NULL);
    evs[2] = h_event_new("ok-2", "/it", "t", NULL);
    evs[3] = h_event_new("bad-3", "/it", "t", NULL);
    h_event_set_spec_version(evs[3], "0.3");
    evs[4] = h_event_new("bad-4", "/it", NULL, NULL);
    evs[5] = h_event_new("bad-5", NULL, "t", NULL);
    evs[6] = h_event_new("ok-6", "/it", "t", NULL);

    assert_int_equal(h_put(pub, "orders", evs, 7, &resp, &err), 0);
    assert_int_equal(resp->n_results, 7);
    assert_int_equal(resp->failed_count, 4);
    for (int i = 0; i < 7; i++) {
        const Cebus__V1__PutEventsResultEntry *r = resp->results[i];
        if (want[i].ok) {
            assert_int_equal(r->code, 0);
            assert_true(r->sequence > last);
            last = r->sequence;
        } else {
            assert_int_equal(r->code, GRPC_STATUS_INVALID_ARGUMENT);
            assert_int_equal(r->sequence, 0);
            if (!strstr(r->message, want[i].field))
                fail_msg("entry %d: message \"%s\" does not name %s", i, r->message, want[i].field);
        }
        h_event_free(evs[i]);
    }
    cebus__v1__put_events_response__free_unpacked(resp, NULL);

    s = h_subscribe_ok(sub, "orders", ALL, CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
    {
        delivery *m = h_expect_next(s);
        assert_string_equal(m->event->id, "ok-0");
        free_delivery(m);
        m = h_expect_next(s);
        assert_string_equal(m->event->id, "ok-2");
        free_delivery(m);
        m = h_expect_next(s);
        assert_string_equal(m->event->id, "ok-6");
        assert_int_equal(m->sequence, last);
        free_delivery(m);
    }
    cebus_stream_close(s);
    cebus_client_free(pub);
    cebus_client_free(sub);
}

/* cebus_subscribe returns once the server has registered the stream: an
 * event published right after a "latest" subscribe is delivered, every
 * time; and a stream the server refuses is the subscribe call's error. */
static void test_subscribe_returns_when_live(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    cebus_client *pub, *sub;
    Cebus__V1__SubscribeRequest req;
    cebus_stream *st = NULL;
    cebus_error err;

    h_tenant_create_ok(env->admin, "ps-live", "orders", &t);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    for (int i = 0; i < 20; i++) {
        char id[16];
        Cebus__V1__SubscribeResponse *m;
        uint64_t seq;

        snprintf(id, sizeof id, "live-%d", i);
        st = h_subscribe_ok(sub, "orders", "{}", CEBUS__V1__START_POSITION__START_POSITION_LATEST,
                            0);
        seq = h_put_one_ok(pub, "orders", id, "t", NULL);
        m = h_expect_next(st);
        assert_int_equal(m->sequence, seq);
        cebus__v1__subscribe_response__free_unpacked(m, NULL);
        cebus_stream_close(st);
    }

    h_subscribe_request(&req, "orders", "{\"data\": 5}", NULL,
                        CEBUS__V1__START_POSITION__START_POSITION_LATEST, 0);
    h_assert_status("Subscribe with a bad pattern", cebus_subscribe(sub, &req, &st, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "pattern: ");
    h_subscribe_request(&req, "no-such-bus", "{}", NULL,
                        CEBUS__V1__START_POSITION__START_POSITION_LATEST, 0);
    h_assert_status("Subscribe to a missing bus", cebus_subscribe(sub, &req, &st, &err), &err,
                    GRPC_STATUS_NOT_FOUND, "bus: ");
    cebus_client_free(pub);
    cebus_client_free(sub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_then_subscribe_delivers_in_order_with_sequences),
        cmocka_unit_test(test_pattern_delivers_matching_events_only),
        cmocka_unit_test(test_streams_share_one_matcher),
        cmocka_unit_test(test_start_earliest_and_sequence),
        cmocka_unit_test(test_start_latest_skips_the_backlog),
        cmocka_unit_test(test_start_time),
        cmocka_unit_test(test_subscribe_to_rule_subscription_by_name),
        cmocka_unit_test(test_server_stamps_tenant_and_receive_time),
        cmocka_unit_test(test_put_events_answers_per_entry),
        cmocka_unit_test(test_subscribe_returns_when_live),
    };

    return cmocka_run_group_tests(tests, h_env_setup, h_env_teardown);
}
