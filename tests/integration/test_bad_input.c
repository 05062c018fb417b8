/* Hostile and malformed input gets a clear gRPC status naming the field,
 * nothing is stored, and the server stays healthy. */
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define KIB 1024

static const char *const unary_methods[] = {
    "/cebus.v1.EventBus/PutEvents",  "/cebus.v1.EventBus/CreateRule",
    "/cebus.v1.EventBus/GetRule",    "/cebus.v1.EventBus/ListRules",
    "/cebus.v1.EventBus/DeleteRule", "/cebus.v1.EventBus/TestEventPattern",
    "/cebus.v1.EventBus/Subscribe",  "/cebus.v1.Admin/CreateTenant",
    "/cebus.v1.Admin/CreateApiKey",  "/cebus.v1.Admin/CreateBus",
    "/cebus.v1.Admin/ListBuses",
    "/cebus.v1.EventBus/Seek",       "/cebus.v1.Admin/ListDeadLetters",
    "/cebus.v1.Admin/RedriveDeadLetters", "/cebus.v1.Admin/PurgeDeadLetters",
};

struct garbage {
    const char *what;
    const char *bytes;
    size_t len;
};

/* Byte strings no protobuf decoder may accept, whatever the message. */
static const struct garbage garbage[] = {
    {"varint tag that never ends", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11},
    {"field 1 length past the end",
     "\x0a\x64"
     "abc",
     5},
    {"field 2 length of 2 GiB",
     "\x12\xff\xff\xff\xff\x07"
     "x",
     7},
    {"wire type 7", "\x0f\x01", 2},
    {"field number 0",
     "\x02\x01"
     "a",
     3},
    {"end-group without start", "\x0c", 1},
};

/* The setup of most tests: a tenant "bad" with bus "orders". */
struct bad_fixture {
    struct h_tenant t;
    cebus_client *admin, *pub, *sub;
};

static struct bad_fixture fx;

static void fixture_once(struct h_env *env)
{
    if (fx.admin)
        return;
    h_tenant_create_ok(env->admin, "bad", "orders", &fx.t);
    fx.admin = cebus_client_new(env->srv[0].addr, fx.t.admin_key);
    fx.pub = cebus_client_new(env->srv[0].addr, fx.t.publisher_key);
    fx.sub = cebus_client_new(env->srv[0].addr, fx.t.subscriber_key);
}

static int group_teardown(void **state)
{
    cebus_client_free(fx.admin);
    cebus_client_free(fx.pub);
    cebus_client_free(fx.sub);
    memset(&fx, 0, sizeof fx);
    return h_env_teardown(state);
}

/* Puts one event and returns the entry's code, copying its message. */
static int put_entry(cebus_client *c, const char *bus, h_event *ev, char *msg, size_t msglen)
{
    Cebus__V1__PutEventsResponse *resp = NULL;
    cebus_error err;
    int code;

    h_assert_status("PutEvents", h_put(c, bus, &ev, 1, &resp, &err), &err, GRPC_STATUS_OK, NULL);
    assert_int_equal(resp->n_results, 1);
    code = resp->results[0]->code;
    snprintf(msg, msglen, "%s", resp->results[0]->message);
    if (code == 0)
        assert_true(resp->results[0]->sequence > 0);
    else
        assert_int_equal(resp->results[0]->sequence, 0);
    assert_int_equal(resp->failed_count, code ? 1 : 0);
    cebus__v1__put_events_response__free_unpacked(resp, NULL);
    return code;
}

/* Bytes that are no protobuf message at all, sent to every method, are
 * INVALID_ARGUMENT naming the request; without a key they are
 * UNAUTHENTICATED first. */
static void test_garbage_bytes_are_invalid_argument(void **state)
{
    struct h_env *env = *state;
    cebus_error err;
    char what[256];

    fixture_once(env);
    for (size_t m = 0; m < sizeof unary_methods / sizeof unary_methods[0]; m++) {
        for (size_t g = 0; g < sizeof garbage / sizeof garbage[0]; g++) {
            int rc = h_call_raw(env->srv[0].addr, H_ADMIN_KEY, unary_methods[m], garbage[g].bytes,
                                garbage[g].len, 10000, NULL, &err);
            snprintf(what, sizeof what, "%s with %s", unary_methods[m], garbage[g].what);
            h_assert_status(what, rc, &err, GRPC_STATUS_INVALID_ARGUMENT, "request");
        }
        {
            int rc = h_call_raw(env->srv[0].addr, NULL, unary_methods[m], garbage[0].bytes,
                                garbage[0].len, 10000, NULL, &err);
            snprintf(what, sizeof what, "%s with garbage and no key", unary_methods[m]);
            h_assert_status(what, rc, &err, GRPC_STATUS_UNAUTHENTICATED, NULL);
        }
    }
    /* A PutEventsRequest whose event is garbage inside a valid frame. */
    {
        static const char nested[] = "\x0a\x06orders\x12\x04\x0a\xff\xff\x7f";
        int rc = h_call_raw(env->srv[0].addr, fx.t.publisher_key, "/cebus.v1.EventBus/PutEvents",
                            nested, sizeof nested - 1, 10000, NULL, &err);
        h_assert_status("PutEvents with a garbled event", rc, &err, GRPC_STATUS_INVALID_ARGUMENT,
                        "request");
    }
    /* An empty message is a valid, empty request: the first missing field
     * is named. */
    {
        int rc = h_call_raw(env->srv[0].addr, fx.t.publisher_key, "/cebus.v1.EventBus/PutEvents",
                            "", 0, 10000, NULL, &err);
        h_assert_status("empty PutEvents", rc, &err, GRPC_STATUS_INVALID_ARGUMENT, "bus");
    }
}

/* Each missing required attribute, and a spec_version other than 1.0, is
 * an entry error naming events[i].field. */
static void test_missing_required_attributes_are_named(void **state)
{
    struct h_env *env = *state;
    struct {
        const char *id, *source, *type, *spec;
        const char *field;
    } cases[] = {
        {NULL, "/it", "t", "1.0", "events[0].id"},
        {"x1", NULL, "t", "1.0", "events[0].source"},
        {"x2", "/it", NULL, "1.0", "events[0].type"},
        {"x3", "/it", "t", NULL, "events[0].spec_version"},
        {"x4", "/it", "t", "0.3", "events[0].spec_version"},
        {"x5", "/it", "t", "1.0.1", "events[0].spec_version"},
    };
    char msg[512];

    fixture_once(env);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        h_event *ev = h_event_new(cases[i].id, cases[i].source, cases[i].type, NULL);
        int code;
        h_event_set_spec_version(ev, cases[i].spec);
        code = put_entry(fx.pub, "orders", ev, msg, sizeof msg);
        h_event_free(ev);
        if (code != GRPC_STATUS_INVALID_ARGUMENT || !strstr(msg, cases[i].field))
            fail_msg("case %zu: expected INVALID_ARGUMENT naming %s, got %s: %s", i, cases[i].field,
                     cebus_status_name(code), msg);
    }
}

/* An event over 256 KiB encoded is an entry error; its neighbours in the
 * batch are stored. An event just under the limit is accepted. */
static void test_oversize_event_is_an_entry_error(void **state)
{
    struct h_env *env = *state;
    Cebus__V1__PutEventsResponse *resp = NULL;
    h_event *evs[3];
    cebus_error err;

    fixture_once(env);
    evs[0] = h_event_new("small-1", "/it", "t", NULL);
    evs[1] = h_event_new("huge", "/it", "t", NULL);
    h_event_set_binary(evs[1], 300 * KIB, 'x');
    evs[2] = h_event_new("near-limit", "/it", "t", NULL);
    h_event_set_binary(evs[2], 250 * KIB, 'y');
    h_assert_status("PutEvents", h_put(fx.pub, "orders", evs, 3, &resp, &err), &err, 0, NULL);
    assert_int_equal(resp->n_results, 3);
    assert_int_equal(resp->failed_count, 1);
    assert_int_equal(resp->results[0]->code, 0);
    assert_int_equal(resp->results[1]->code, GRPC_STATUS_INVALID_ARGUMENT);
    assert_int_equal(resp->results[1]->sequence, 0);
    if (!strstr(resp->results[1]->message, "events[1]") ||
        !strstr(resp->results[1]->message, "262144"))
        fail_msg("oversize entry message \"%s\" names neither events[1] nor the limit",
                 resp->results[1]->message);
    assert_int_equal(resp->results[2]->code, 0);
    assert_true(resp->results[2]->sequence > resp->results[0]->sequence);
    cebus__v1__put_events_response__free_unpacked(resp, NULL);
    for (int i = 0; i < 3; i++)
        h_event_free(evs[i]);
}

/* A request over 4 MiB is refused whole with RESOURCE_EXHAUSTED, and none
 * of its events is stored. */
static void test_oversize_request_is_resource_exhausted(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    Cebus__V1__PutEventsResponse *resp = NULL;
    Cebus__V1__SubscribeResponse *m;
    cebus_client *pub, *sub;
    h_event *evs[18];
    cebus_stream *s;
    cebus_error err;
    char id[16];
    uint64_t seq;

    h_tenant_create_ok(env->admin, "bad-big", "orders", &t);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    /* 18 events of 240 KiB: each under the event limit, 4.2 MiB in all. */
    for (int i = 0; i < 18; i++) {
        snprintf(id, sizeof id, "big-%d", i);
        evs[i] = h_event_new(id, "/it", "t", NULL);
        h_event_set_binary(evs[i], 240 * KIB, 'a' + i);
    }
    h_assert_status("PutEvents of 4.2 MiB", h_put(pub, "orders", evs, 18, &resp, &err), &err,
                    GRPC_STATUS_RESOURCE_EXHAUSTED, NULL);
    for (int i = 0; i < 18; i++)
        h_event_free(evs[i]);

    /* Nothing was stored: the first event of the bus is the one put next. */
    seq = h_put_one_ok(pub, "orders", "after", "t", NULL);
    s = h_subscribe_ok(sub, "orders", "{}", CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
    m = h_expect_next(s);
    assert_string_equal(m->event->id, "after");
    assert_int_equal(m->sequence, seq);
    cebus__v1__subscribe_response__free_unpacked(m, NULL);
    cebus_stream_close(s);
    cebus_client_free(pub);
    cebus_client_free(sub);
}

/* 500 entries are accepted; 501 are INVALID_ARGUMENT for the whole call. */
static void test_more_than_500_entries_is_invalid_argument(void **state)
{
    struct h_env *env = *state;
    Cebus__V1__PutEventsResponse *resp = NULL;
    h_event *evs[501];
    cebus_error err;
    char id[32];

    fixture_once(env);
    for (int i = 0; i < 501; i++) {
        snprintf(id, sizeof id, "many-%d", i);
        evs[i] = h_event_new(id, "/it", "t", NULL);
    }
    h_assert_status("PutEvents of 501", h_put(fx.pub, "orders", evs, 501, &resp, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "500");
    assert_non_null(strstr(err.message, "events"));
    h_assert_status("PutEvents of 500", h_put(fx.pub, "orders", evs, 500, &resp, &err), &err, 0,
                    NULL);
    assert_int_equal(resp->n_results, 500);
    assert_int_equal(resp->failed_count, 0);
    for (int i = 1; i < 500; i++)
        assert_true(resp->results[i]->sequence > resp->results[i - 1]->sequence);
    cebus__v1__put_events_response__free_unpacked(resp, NULL);
    /* And an empty batch. */
    h_assert_status("PutEvents of 0", h_put(fx.pub, "orders", evs, 0, &resp, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "events");
    for (int i = 0; i < 501; i++)
        h_event_free(evs[i]);
}

/* An unknown bus is NOT_FOUND for every call that names one; a malformed
 * bus name is INVALID_ARGUMENT. */
static void test_unknown_bus_is_not_found(void **state)
{
    struct h_env *env = *state;
    Cebus__V1__PutEventsResponse *resp = NULL;
    Cebus__V1__CreateRuleRequest rreq = CEBUS__V1__CREATE_RULE_REQUEST__INIT;
    Cebus__V1__ListRulesRequest lreq = CEBUS__V1__LIST_RULES_REQUEST__INIT;
    Cebus__V1__ListRulesResponse *lresp = NULL;
    Cebus__V1__SubscribeRequest sreq;
    Cebus__V1__Rule *rule = NULL;
    h_event *ev = h_event_new("u1", "/it", "t", NULL);
    cebus_error err;

    fixture_once(env);
    h_assert_status("PutEvents on nope", h_put(fx.pub, "nope", &ev, 1, &resp, &err), &err,
                    GRPC_STATUS_NOT_FOUND, "nope");
    h_assert_status("PutEvents on bad/name/x", h_put(fx.pub, "a b", &ev, 1, &resp, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "bus");
    h_assert_status("PutEvents without bus", h_put(fx.pub, "", &ev, 1, &resp, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "bus");
    h_event_free(ev);

    rreq.bus = "nope";
    rreq.name = "r";
    rreq.pattern = "{}";
    h_assert_status("CreateRule on nope", cebus_create_rule(fx.admin, &rreq, &rule, &err), &err,
                    GRPC_STATUS_NOT_FOUND, "nope");
    lreq.bus = "nope";
    h_assert_status("ListRules on nope", cebus_list_rules(fx.sub, &lreq, &lresp, &err), &err,
                    GRPC_STATUS_NOT_FOUND, "nope");
    h_subscribe_request(&sreq, "nope", "{}", NULL,
                        CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
    h_assert_status("Subscribe on nope", h_subscribe_status(fx.sub, &sreq, &err), &err,
                    GRPC_STATUS_NOT_FOUND, "nope");
}

/* A malformed pattern is INVALID_ARGUMENT naming the path of the offending
 * part, in CreateRule and in Subscribe alike; nothing is created. */
static void test_malformed_pattern_names_the_path(void **state)
{
    struct h_env *env = *state;
    struct {
        const char *pattern, *path;
    } cases[] = {
        {"{\"data\":{\"amount\":[{\"numeric\":[\"<\"]}]}}", "data.amount"},
        {"{\"source\":[{\"bogus-operator\":1}]}", "source"},
        {"{\"data\":{\"customer\":{\"tier\":\"gold\"}}}", "data.customer.tier"},
        {"{\"type\":[]}", "type"},
        {"{\"type\":[\"a\"]", "pattern"},
        {"[1,2]", "pattern"},
    };
    Cebus__V1__CreateRuleRequest rreq = CEBUS__V1__CREATE_RULE_REQUEST__INIT;
    Cebus__V1__GetRuleRequest greq = CEBUS__V1__GET_RULE_REQUEST__INIT;
    Cebus__V1__SubscribeRequest sreq;
    Cebus__V1__Rule *rule = NULL;
    cebus_error err;
    char what[128], *deep;
    size_t n = 0;

    fixture_once(env);
    rreq.bus = "orders";
    rreq.name = "malformed";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rreq.pattern = (char *)cases[i].pattern;
        snprintf(what, sizeof what, "CreateRule with %s", cases[i].pattern);
        h_assert_status(what, cebus_create_rule(fx.admin, &rreq, &rule, &err), &err,
                        GRPC_STATUS_INVALID_ARGUMENT, cases[i].path);
        assert_non_null(strstr(err.message, "pattern"));
        h_subscribe_request(&sreq, "orders", cases[i].pattern, NULL,
                            CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
        snprintf(what, sizeof what, "Subscribe with %s", cases[i].pattern);
        h_assert_status(what, h_subscribe_status(fx.sub, &sreq, &err), &err,
                        GRPC_STATUS_INVALID_ARGUMENT, cases[i].path);
    }

    /* Past the depth cap (16). */
    deep = calloc(1, 1024);
    assert_non_null(deep);
    for (int d = 0; d < 20; d++)
        n += (size_t)sprintf(deep + n, "{\"a\":");
    n += (size_t)sprintf(deep + n, "[1]");
    for (int d = 0; d < 20; d++)
        deep[n++] = '}';
    rreq.pattern = deep;
    h_assert_status("CreateRule 20 deep", cebus_create_rule(fx.admin, &rreq, &rule, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "depth");
    free(deep);

    /* Past the size cap (8 KiB). */
    deep = malloc(10 * KIB);
    assert_non_null(deep);
    n = (size_t)sprintf(deep, "{\"type\":[\"");
    memset(deep + n, 'x', 9 * KIB);
    n += 9 * KIB;
    strcpy(deep + n, "\"]}");
    rreq.pattern = deep;
    h_assert_status("CreateRule of 9 KiB", cebus_create_rule(fx.admin, &rreq, &rule, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "pattern");
    free(deep);

    /* None of these created the rule. */
    greq.bus = "orders";
    greq.name = "malformed";
    h_assert_status("GetRule malformed", cebus_get_rule(fx.admin, &greq, &rule, &err), &err,
                    GRPC_STATUS_NOT_FOUND, "malformed");
}

/* No key, an unknown key, a malformed header: UNAUTHENTICATED, for unary
 * calls and streams. The health check needs no key. */
static void test_missing_or_wrong_key_is_unauthenticated(void **state)
{
    struct h_env *env = *state;
    const char *keys[] = {NULL, "cb_wrongkey_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG", "short"};
    Cebus__V1__ListBusesRequest lreq = CEBUS__V1__LIST_BUSES_REQUEST__INIT;
    Cebus__V1__ListBusesResponse *lresp = NULL;
    Cebus__V1__PutEventsResponse *presp = NULL;
    Cebus__V1__SubscribeRequest sreq;
    cebus_error err;
    int serving = 0;
    size_t resp_len = 0;

    fixture_once(env);
    h_subscribe_request(&sreq, "orders", "{}", NULL,
                        CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        cebus_client *c = cebus_client_new(env->srv[0].addr, keys[i]);
        h_event *ev = h_event_new("auth", "/it", "t", NULL);
        char what[64];

        snprintf(what, sizeof what, "PutEvents with key %zu", i);
        h_assert_status(what, h_put(c, "orders", &ev, 1, &presp, &err), &err,
                        GRPC_STATUS_UNAUTHENTICATED, "authorization");
        snprintf(what, sizeof what, "ListBuses with key %zu", i);
        h_assert_status(what, cebus_list_buses(c, &lreq, &lresp, &err), &err,
                        GRPC_STATUS_UNAUTHENTICATED, "authorization");
        snprintf(what, sizeof what, "Subscribe with key %zu", i);
        h_assert_status(what, h_subscribe_status(c, &sreq, &err), &err, GRPC_STATUS_UNAUTHENTICATED,
                        "authorization");
        assert_int_equal(cebus_health_check(c, 10000, &serving, &err), 0);
        assert_true(serving);
        h_event_free(ev);
        cebus_client_free(c);
    }
    /* An empty bearer token. */
    {
        static const char empty_list[] = "";
        int rc;
        rc = h_call_raw(env->srv[0].addr, "", "/cebus.v1.Admin/ListBuses", empty_list, 0, 10000,
                        &resp_len, &err);
        h_assert_status("ListBuses with an empty bearer", rc, &err, GRPC_STATUS_UNAUTHENTICATED,
                        NULL);
        /* Sanity: the same raw call with a valid key works (and lists the
         * tenant's bus, so the answer is not empty). */
        rc = h_call_raw(env->srv[0].addr, fx.t.admin_key, "/cebus.v1.Admin/ListBuses", empty_list,
                        0, 10000, &resp_len, &err);
        h_assert_status("ListBuses raw with a valid key", rc, &err, GRPC_STATUS_OK, NULL);
        assert_true(resp_len > 0);
    }
}

/* Methods nobody declared are UNIMPLEMENTED (every declared one is
 * implemented); Ack and Nack bodies that are not their message, or carry
 * ids that are not ack ids, are INVALID_ARGUMENT. */
static void test_unimplemented_rpc_is_unimplemented(void **state)
{
    struct h_env *env = *state;
    Cebus__V1__NackRequest req = CEBUS__V1__NACK_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    char *ids[1] = {"\xff\xfe not an id"};
    cebus_error err;
    int rc;

    fixture_once(env);
    req.bus = "orders";
    req.subscription = "s";
    req.n_ack_ids = 1;
    req.ack_ids = ids;
    rc = cebus_call_unary(fx.admin, "/cebus.v1.EventBus/Nack", &req.base,
                          &cebus__v1__nack_response__descriptor, 10000, &resp, &err);
    h_assert_status("Nack", rc, &err, GRPC_STATUS_INVALID_ARGUMENT, NULL);
    rc = h_call_raw(env->srv[0].addr, fx.t.admin_key, "/cebus.v1.EventBus/Ack", "\xff\xff\xff",
                    3, 10000, NULL, &err);
    h_assert_status("Ack raw garbage", rc, &err, GRPC_STATUS_INVALID_ARGUMENT, "request");
    rc = h_call_raw(env->srv[0].addr, fx.t.admin_key, "/cebus.v1.EventBus/NoSuchMethod", "", 0,
                    10000, NULL, &err);
    h_assert_status("NoSuchMethod", rc, &err, GRPC_STATUS_UNIMPLEMENTED, NULL);
    rc = h_call_raw(env->srv[0].addr, NULL, "/no.such.Service/Call", "\xff", 1, 10000, NULL, &err);
    h_assert_status("no.such.Service", rc, &err, GRPC_STATUS_UNIMPLEMENTED, NULL);
}

/* Bytes that are not HTTP/2 at all, straight onto the listening socket. */
static void send_tcp_garbage(const char *addr)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    const char *colon = strrchr(addr, ':');
    static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\xff\xfe PRI * HTTP/2.0\r\n";
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_non_null(colon);
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    for (int i = 0; i < 64; i++)
        if (send(fd, junk, sizeof junk, MSG_NOSIGNAL) < 0)
            break;
    close(fd);
}

/* After all of the above (this test runs last), the server still serves:
 * health, publish and a stream round trip. */
static void test_server_still_healthy_after_bad_input(void **state)
{
    struct h_env *env = *state;
    Cebus__V1__SubscribeResponse *m;
    cebus_stream *s;
    cebus_error err;
    uint64_t seq;
    int serving = 0;

    fixture_once(env);
    send_tcp_garbage(env->srv[0].addr);
    assert_int_equal(cebus_health_check(env->admin, 10000, &serving, &err), 0);
    assert_true(serving);
    seq = h_put_one_ok(fx.pub, "orders", "healthy", "t", "{\"ok\":true}");
    s = h_subscribe_ok(fx.sub, "orders", "{\"data\":{\"ok\":[true]}}",
                       CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
    m = h_expect_next(s);
    assert_int_equal(m->sequence, seq);
    assert_string_equal(m->event->id, "healthy");
    cebus__v1__subscribe_response__free_unpacked(m, NULL);
    cebus_stream_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_garbage_bytes_are_invalid_argument),
        cmocka_unit_test(test_missing_required_attributes_are_named),
        cmocka_unit_test(test_oversize_event_is_an_entry_error),
        cmocka_unit_test(test_oversize_request_is_resource_exhausted),
        cmocka_unit_test(test_more_than_500_entries_is_invalid_argument),
        cmocka_unit_test(test_unknown_bus_is_not_found),
        cmocka_unit_test(test_malformed_pattern_names_the_path),
        cmocka_unit_test(test_missing_or_wrong_key_is_unauthenticated),
        cmocka_unit_test(test_unimplemented_rpc_is_unimplemented),
        cmocka_unit_test(test_server_still_healthy_after_bad_input),
    };

    return cmocka_run_group_tests(tests, h_env_setup, group_teardown);
}
