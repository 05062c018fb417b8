/* Per-tenant quotas (issue 4): SetQuota and GetQuota and who may call
 * them; PutEvents past events_per_second or bytes_per_second refused whole
 * with RESOURCE_EXHAUSTED, the quota named and a retry hint in the message
 * and in trailing metadata, and recovery after waiting it; a noisy tenant
 * leaving another unaffected; rules_per_bus and subscriptions checked at
 * CreateRule; concurrent_streams at Subscribe, on one server and across
 * two; the CLI. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define CLI_TIMEOUT_MS 30000
/* Quota caches and heartbeats run once a second; allow for busy machines. */
#define SETTLE_LIMIT_MS 10000

/* A ("acme") is the noisy tenant; B ("globex") its neighbour. */
static struct h_tenant A, B;
static cebus_client *a_admin, *a_pub, *a_sub, *b_pub;

static int group_setup(void **state)
{
    struct h_env *env;

    if (h_env_setup(state) != 0)
        return -1;
    env = *state;
    h_tenant_create_ok(env->admin, "acme", "orders", &A);
    h_tenant_create_ok(env->admin, "globex", "orders", &B);
    a_admin = cebus_client_new(env->srv[0].addr, A.admin_key);
    a_pub = cebus_client_new(env->srv[0].addr, A.publisher_key);
    a_sub = cebus_client_new(env->srv[0].addr, A.subscriber_key);
    b_pub = cebus_client_new(env->srv[0].addr, B.publisher_key);
    return 0;
}

static int group_teardown(void **state)
{
    cebus_client_free(a_admin);
    cebus_client_free(a_pub);
    cebus_client_free(a_sub);
    cebus_client_free(b_pub);
    return h_env_teardown(state);
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* ---- Helpers -------------------------------------------------------------- */

struct limits {
    uint32_t events_per_second, bytes_per_second, burst_seconds, rules_per_bus,
        concurrent_streams, subscriptions;
};

static int set_quota(cebus_client *c, const char *tenant, const struct limits *l,
                     Cebus__V1__Quota **out, cebus_error *err)
{
    Cebus__V1__SetQuotaRequest req = CEBUS__V1__SET_QUOTA_REQUEST__INIT;
    Cebus__V1__Quota q = CEBUS__V1__QUOTA__INIT;
    ProtobufCMessage *resp = NULL;
    int rc;

    q.tenant = (char *)tenant;
    if (l) {
        q.events_per_second = l->events_per_second;
        q.bytes_per_second = l->bytes_per_second;
        q.burst_seconds = l->burst_seconds;
        q.rules_per_bus = l->rules_per_bus;
        q.concurrent_streams = l->concurrent_streams;
        q.subscriptions = l->subscriptions;
    }
    req.quota = &q;
    rc = cebus_call_unary(c, "/cebus.v1.Admin/SetQuota", &req.base,
                          &cebus__v1__quota__descriptor, 0, &resp, err);
    if (rc == 0 && out)
        *out = (Cebus__V1__Quota *)resp;
    else if (rc == 0)
        protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

static void set_quota_ok(cebus_client *c, const char *tenant, const struct limits *l)
{
    cebus_error err;
    int rc = set_quota(c, tenant, l, NULL, &err);
    h_assert_status("SetQuota", rc, &err, GRPC_STATUS_OK, NULL);
}

static int get_quota(cebus_client *c, const char *tenant, Cebus__V1__Quota **out,
                     cebus_error *err)
{
    Cebus__V1__GetQuotaRequest req = CEBUS__V1__GET_QUOTA_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int rc;

    req.tenant = (char *)tenant;
    rc = cebus_call_unary(c, "/cebus.v1.Admin/GetQuota", &req.base,
                          &cebus__v1__quota__descriptor, 0, &resp, err);
    if (rc == 0 && out)
        *out = (Cebus__V1__Quota *)resp;
    else if (rc == 0)
        protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

/* Puts n small events on bus; returns the call's status. */
static int put_n(cebus_client *c, const char *bus, size_t n, const char *idp, cebus_error *err)
{
    static int seq;
    h_event *evs[64];
    Cebus__V1__PutEventsResponse *resp = NULL;
    int rc;

    assert_true(n <= 64);
    for (size_t i = 0; i < n; i++) {
        char id[64];
        snprintf(id, sizeof id, "%s-%d", idp, ++seq);
        evs[i] = h_event_new(id, "/it", "it.quota", "{\"n\":1}");
    }
    rc = h_put(c, bus, evs, n, &resp, err);
    if (rc == 0) {
        assert_int_equal(resp->failed_count, 0);
        cebus__v1__put_events_response__free_unpacked(resp, NULL);
    }
    for (size_t i = 0; i < n; i++)
        h_event_free(evs[i]);
    return rc;
}

static int create_rule(cebus_client *c, const char *bus, const char *name,
                       const char *const *subs, size_t nsubs, cebus_error *err)
{
    Cebus__V1__CreateRuleRequest req = CEBUS__V1__CREATE_RULE_REQUEST__INIT;
    Cebus__V1__Target targets[5], *tp[5];
    Cebus__V1__SubscriptionTarget st[5];
    Cebus__V1__Rule *rule = NULL;
    int rc;

    for (size_t i = 0; i < nsubs; i++) {
        cebus__v1__target__init(&targets[i]);
        cebus__v1__subscription_target__init(&st[i]);
        st[i].name = (char *)subs[i];
        targets[i].kind_case = CEBUS__V1__TARGET__KIND_SUBSCRIPTION;
        targets[i].subscription = &st[i];
        tp[i] = &targets[i];
    }
    req.bus = (char *)bus;
    req.name = (char *)name;
    req.pattern = "{}";
    req.targets = tp;
    req.n_targets = nsubs;
    rc = cebus_create_rule(c, &req, &rule, err);
    if (rc == 0)
        cebus__v1__rule__free_unpacked(rule, NULL);
    return rc;
}

/* Opens a stream of c on bus and proves it live by putting markers with
 * pub until one arrives. Returns 0 with *out set, or the status the
 * server ended it with (err filled), *out NULL. */
static int open_stream(cebus_client *c, cebus_client *pub, const char *bus, cebus_stream **out,
                       cebus_error *err)
{
    Cebus__V1__SubscribeRequest req;
    Cebus__V1__SubscribeResponse *msg = NULL;
    cebus_stream *s = NULL;
    int64_t deadline = h_now_ms() + SETTLE_LIMIT_MS;
    int rc;

    *out = NULL;
    h_subscribe_request(&req, bus, "{\"type\":[\"it.qsync\"]}", NULL,
                        CEBUS__V1__START_POSITION__START_POSITION_LATEST, 0);
    rc = cebus_subscribe(c, &req, &s, err);
    if (rc != 0)
        return rc;
    while (h_now_ms() < deadline) {
        static int n;
        char id[64];
        h_event *ev;
        cebus_error perr;
        Cebus__V1__PutEventsResponse *resp = NULL;

        snprintf(id, sizeof id, "qsync-%d", ++n);
        ev = h_event_new(id, "/it", "it.qsync", NULL);
        if (h_put(pub, bus, &ev, 1, &resp, &perr) == 0)
            cebus__v1__put_events_response__free_unpacked(resp, NULL);
        h_event_free(ev);
        rc = cebus_stream_next(s, 300, &msg, err);
        if (rc == 1) {
            cebus__v1__subscribe_response__free_unpacked(msg, NULL);
            *out = s;
            return 0;
        }
        if (rc < 0) {
            cebus_stream_close(s);
            return err->code;
        }
    }
    cebus_stream_close(s);
    fail_msg("stream on %s neither delivered nor ended", bus);
    return -1;
}

/* ---- Tests ----------------------------------------------------------------- */

/* Who may call SetQuota and GetQuota, validation, and effective values. */
static void test_quota_rpcs(void **state)
{
    struct h_env *env = *state;
    const struct limits some = {.events_per_second = 50, .rules_per_bus = 7};
    const struct limits too_big = {.burst_seconds = 3601};
    Cebus__V1__Quota *q = NULL;
    cebus_error err;
    int rc;

    /* The defaults, filled in. */
    rc = get_quota(env->admin, "acme", &q, &err);
    h_assert_status("GetQuota", rc, &err, GRPC_STATUS_OK, NULL);
    assert_string_equal(q->tenant, "acme");
    assert_int_equal(q->events_per_second, 100000);
    assert_int_equal(q->bytes_per_second, 104857600);
    assert_int_equal(q->burst_seconds, 10);
    assert_int_equal(q->rules_per_bus, 10000);
    assert_int_equal(q->subscriptions, 10000);
    assert_int_equal(q->concurrent_streams, 10000);
    cebus__v1__quota__free_unpacked(q, NULL);

    /* Only the platform admin sets. */
    rc = set_quota(a_admin, "acme", &some, NULL, &err);
    h_assert_status("SetQuota as tenant admin", rc, &err, GRPC_STATUS_PERMISSION_DENIED,
                    "set quotas");
    rc = set_quota(env->admin, "nope", &some, NULL, &err);
    h_assert_status("SetQuota unknown", rc, &err, GRPC_STATUS_NOT_FOUND, "quota.tenant");
    rc = set_quota(env->admin, "", &some, NULL, &err);
    h_assert_status("SetQuota no tenant", rc, &err, GRPC_STATUS_INVALID_ARGUMENT,
                    "quota.tenant: required");
    rc = set_quota(env->admin, "acme", &too_big, NULL, &err);
    h_assert_status("SetQuota too big", rc, &err, GRPC_STATUS_INVALID_ARGUMENT,
                    "quota.burst_seconds: at most 3600");
    {
        Cebus__V1__SetQuotaRequest req = CEBUS__V1__SET_QUOTA_REQUEST__INIT;
        ProtobufCMessage *resp = NULL;
        rc = cebus_call_unary(env->admin, "/cebus.v1.Admin/SetQuota", &req.base,
                              &cebus__v1__quota__descriptor, 0, &resp, &err);
        h_assert_status("SetQuota without quota", rc, &err, GRPC_STATUS_INVALID_ARGUMENT,
                        "quota: required");
    }

    rc = set_quota(env->admin, "acme", &some, &q, &err);
    h_assert_status("SetQuota", rc, &err, GRPC_STATUS_OK, NULL);
    assert_int_equal(q->events_per_second, 50);
    assert_int_equal(q->rules_per_bus, 7);
    assert_int_equal(q->bytes_per_second, 104857600); /* 0: the default */
    cebus__v1__quota__free_unpacked(q, NULL);

    /* A tenant admin reads its own tenant, by name or by default. */
    rc = get_quota(a_admin, "", &q, &err);
    h_assert_status("GetQuota own", rc, &err, GRPC_STATUS_OK, NULL);
    assert_string_equal(q->tenant, "acme");
    assert_int_equal(q->events_per_second, 50);
    cebus__v1__quota__free_unpacked(q, NULL);
    rc = get_quota(a_admin, "acme", NULL, &err);
    h_assert_status("GetQuota own by name", rc, &err, GRPC_STATUS_OK, NULL);
    /* Another tenant is NOT_FOUND, exactly like a missing one. */
    rc = get_quota(a_admin, "globex", NULL, &err);
    h_assert_status("GetQuota other", rc, &err, GRPC_STATUS_NOT_FOUND, "no tenant \"globex\"");
    rc = get_quota(a_admin, "missing", NULL, &err);
    h_assert_status("GetQuota missing", rc, &err, GRPC_STATUS_NOT_FOUND, "no tenant \"missing\"");
    rc = get_quota(a_pub, "", NULL, &err);
    h_assert_status("GetQuota as publisher", rc, &err, GRPC_STATUS_PERMISSION_DENIED,
                    "read quotas");

    /* All zero: back to the defaults. */
    set_quota_ok(env->admin, "acme", NULL);
    rc = get_quota(env->admin, "acme", &q, &err);
    h_assert_status("GetQuota", rc, &err, GRPC_STATUS_OK, NULL);
    assert_int_equal(q->events_per_second, 100000);
    assert_int_equal(q->rules_per_bus, 10000);
    cebus__v1__quota__free_unpacked(q, NULL);
}

/* Past events_per_second: the batch is refused whole, with the quota and
 * the wait named; B publishes on untouched; after the wait A may publish
 * again. */
static void test_events_per_second(void **state)
{
    struct h_env *env = *state;
    const struct limits tight = {.events_per_second = 10, .burst_seconds = 1};
    char want[128];
    cebus_error err;
    int rc;

    set_quota_ok(env->admin, "acme", &tight);
    /* The burst: 10 events at once. */
    rc = put_n(a_pub, "orders", 10, "a-burst", &err);
    h_assert_status("PutEvents within the burst", rc, &err, GRPC_STATUS_OK, NULL);
    rc = put_n(a_pub, "orders", 5, "a-over", &err);
    h_assert_status("PutEvents over the quota", rc, &err, GRPC_STATUS_RESOURCE_EXHAUSTED,
                    "events_per_second quota of 10 exceeded");
    assert_true(err.retry_after_ms > 0);
    assert_true(err.retry_after_ms <= 1000);
    snprintf(want, sizeof want, "retry after %lld ms", (long long)err.retry_after_ms);
    assert_non_null(strstr(err.message, want));

    /* The neighbour is unaffected while A is over its quota. */
    for (int i = 0; i < 20; i++) {
        rc = put_n(b_pub, "orders", 10, "b", &err);
        h_assert_status("B's PutEvents", rc, &err, GRPC_STATUS_OK, NULL);
    }

    /* Recovery: after the hint, the same batch fits. */
    rc = put_n(a_pub, "orders", 5, "a-over", &err);
    if (rc == GRPC_STATUS_RESOURCE_EXHAUSTED) {
        assert_true(err.retry_after_ms > 0);
        sleep_ms(err.retry_after_ms);
        rc = put_n(a_pub, "orders", 5, "a-recovered", &err);
    }
    h_assert_status("PutEvents after the hint", rc, &err, GRPC_STATUS_OK, NULL);
    set_quota_ok(env->admin, "acme", NULL);
}

/* Past bytes_per_second, the same; the message names that quota. */
static void test_bytes_per_second(void **state)
{
    struct h_env *env = *state;
    const struct limits tight = {.bytes_per_second = 3000, .burst_seconds = 1};
    Cebus__V1__PutEventsResponse *resp = NULL;
    h_event *ev = h_event_new("big-1", "/it", "it.quota", NULL);
    cebus_error err;
    int rc;

    h_event_set_binary(ev, 2000, 'x');
    set_quota_ok(env->admin, "acme", &tight);
    rc = h_put(a_pub, "orders", &ev, 1, &resp, &err);
    h_assert_status("PutEvents within bytes", rc, &err, GRPC_STATUS_OK, NULL);
    cebus__v1__put_events_response__free_unpacked(resp, NULL);
    free(ev->id);
    ev->id = strdup("big-2");
    rc = h_put(a_pub, "orders", &ev, 1, &resp, &err);
    h_assert_status("PutEvents over bytes", rc, &err, GRPC_STATUS_RESOURCE_EXHAUSTED,
                    "bytes_per_second quota of 3000 exceeded; retry after");
    assert_true(err.retry_after_ms > 0);
    sleep_ms(err.retry_after_ms);
    rc = h_put(a_pub, "orders", &ev, 1, &resp, &err);
    h_assert_status("PutEvents after the hint", rc, &err, GRPC_STATUS_OK, NULL);
    cebus__v1__put_events_response__free_unpacked(resp, NULL);
    h_event_free(ev);
    set_quota_ok(env->admin, "acme", NULL);
}

/* rules_per_bus and subscriptions are checked when a rule is created, and
 * subscriptions when an update replaces its targets. */
static void test_rules_and_subscriptions(void **state)
{
    struct h_env *env = *state;
    const struct limits tight = {.rules_per_bus = 2, .subscriptions = 3};
    Cebus__V1__DeleteRuleRequest del = CEBUS__V1__DELETE_RULE_REQUEST__INIT;
    cebus_error err;
    int rc;

    set_quota_ok(env->admin, "acme", &tight);
    rc = create_rule(a_admin, "orders", "r1", (const char *const[]){"s1"}, 1, &err);
    h_assert_status("rule 1", rc, &err, GRPC_STATUS_OK, NULL);
    rc = create_rule(a_admin, "orders", "r2", (const char *const[]){"s2"}, 1, &err);
    h_assert_status("rule 2", rc, &err, GRPC_STATUS_OK, NULL);
    rc = create_rule(a_admin, "orders", "r3", NULL, 0, &err);
    h_assert_status("rule 3", rc, &err, GRPC_STATUS_RESOURCE_EXHAUSTED,
                    "rules_per_bus quota of 2 reached on bus \"orders\"");

    /* Subscriptions count across the tenant's buses. */
    assert_int_equal(h_bus_create(a_admin, NULL, "billing", &err), 0);
    rc = create_rule(a_admin, "billing", "r4", (const char *const[]){"s3", "s4"}, 2, &err);
    h_assert_status("two more subscriptions", rc, &err, GRPC_STATUS_RESOURCE_EXHAUSTED,
                    "subscriptions quota of 3 reached");
    rc = create_rule(a_admin, "billing", "r4", (const char *const[]){"s3"}, 1, &err);
    h_assert_status("one more subscription", rc, &err, GRPC_STATUS_OK, NULL);
    rc = create_rule(a_admin, "billing", "r5", NULL, 0, &err);
    h_assert_status("a rule without subscription", rc, &err, GRPC_STATUS_OK, NULL);

    /* UpdateRule may not add subscriptions past the quota either. */
    {
        Cebus__V1__UpdateRuleRequest upd = CEBUS__V1__UPDATE_RULE_REQUEST__INIT;
        Cebus__V1__Rule rule = CEBUS__V1__RULE__INIT;
        Cebus__V1__Target target = CEBUS__V1__TARGET__INIT, *tp = &target;
        Cebus__V1__SubscriptionTarget st = CEBUS__V1__SUBSCRIPTION_TARGET__INIT;
        Cebus__V1__Rule *got = NULL;
        char *mask[] = {"targets"};

        st.name = "s5";
        target.kind_case = CEBUS__V1__TARGET__KIND_SUBSCRIPTION;
        target.subscription = &st;
        rule.targets = &tp;
        rule.n_targets = 1;
        upd.bus = "billing";
        upd.name = "r5";
        upd.rule = &rule;
        upd.update_mask = mask;
        upd.n_update_mask = 1;
        rc = cebus_update_rule(a_admin, &upd, &got, &err);
        h_assert_status("UpdateRule adding a subscription", rc, &err,
                        GRPC_STATUS_RESOURCE_EXHAUSTED, "subscriptions quota of 3 reached");
        /* Swapping r4's own subscription fits. */
        upd.name = "r4";
        rc = cebus_update_rule(a_admin, &upd, &got, &err);
        h_assert_status("UpdateRule swapping a subscription", rc, &err, GRPC_STATUS_OK, NULL);
        cebus__v1__rule__free_unpacked(got, NULL);
    }

    /* B's buses are B's own business. */
    {
        cebus_client *b_admin = cebus_client_new(env->srv[0].addr, B.admin_key);
        for (int i = 0; i < 3; i++) {
            char name[16];
            snprintf(name, sizeof name, "b%d", i);
            rc = create_rule(b_admin, "orders", name, (const char *const[]){name}, 1, &err);
            h_assert_status("B's rules", rc, &err, GRPC_STATUS_OK, NULL);
        }
        cebus_client_free(b_admin);
    }

    /* Deleting a rule frees its place. */
    del.bus = "orders";
    del.name = "r1";
    rc = cebus_delete_rule(a_admin, &del, &err);
    h_assert_status("delete r1", rc, &err, GRPC_STATUS_OK, NULL);
    rc = create_rule(a_admin, "orders", "r3", NULL, 0, &err);
    h_assert_status("rule 3 after a delete", rc, &err, GRPC_STATUS_OK, NULL);
    set_quota_ok(env->admin, "acme", NULL);
}

/* concurrent_streams: the stream past the quota is refused; closing one
 * lets the next in. */
static void test_concurrent_streams(void **state)
{
    struct h_env *env = *state;
    const struct limits tight = {.concurrent_streams = 2};
    cebus_stream *s1 = NULL, *s2 = NULL, *s3 = NULL;
    int64_t deadline;
    cebus_error err;
    int rc;

    set_quota_ok(env->admin, "acme", &tight);
    rc = open_stream(a_sub, a_pub, "orders", &s1, &err);
    h_assert_status("stream 1", rc, &err, GRPC_STATUS_OK, NULL);
    rc = open_stream(a_sub, a_pub, "orders", &s2, &err);
    h_assert_status("stream 2", rc, &err, GRPC_STATUS_OK, NULL);
    rc = open_stream(a_admin, a_pub, "orders", &s3, &err);
    h_assert_status("stream 3", rc, &err, GRPC_STATUS_RESOURCE_EXHAUSTED,
                    "concurrent_streams quota of 2 reached");
    /* Not B. */
    {
        cebus_client *b_sub = cebus_client_new(env->srv[0].addr, B.subscriber_key);
        rc = open_stream(b_sub, b_pub, "orders", &s3, &err);
        h_assert_status("B's stream", rc, &err, GRPC_STATUS_OK, NULL);
        cebus_stream_close(s3);
        cebus_client_free(b_sub);
    }

    cebus_stream_close(s1);
    deadline = h_now_ms() + SETTLE_LIMIT_MS;
    do {
        rc = open_stream(a_sub, a_pub, "orders", &s3, &err);
        if (rc == GRPC_STATUS_RESOURCE_EXHAUSTED)
            sleep_ms(50);
    } while (rc == GRPC_STATUS_RESOURCE_EXHAUSTED && h_now_ms() < deadline);
    h_assert_status("stream after a close", rc, &err, GRPC_STATUS_OK, NULL);
    cebus_stream_close(s2);
    cebus_stream_close(s3);
    set_quota_ok(env->admin, "acme", NULL);
}

/* With a second server: streams open there count here within about a
 * second, and each server takes half of the rates. */
static void test_across_replicas(void **state)
{
    struct h_env *env = *state;
    const struct limits streams = {.concurrent_streams = 2};
    const struct limits rate = {.events_per_second = 2, .burst_seconds = 5};
    cebus_client *sub1, *pub1;
    cebus_stream *s0 = NULL, *s1 = NULL, *s2 = NULL;
    int64_t deadline;
    cebus_error err;
    int idx, rc;

    idx = h_env_add_server_ok(env, NULL);
    sub1 = cebus_client_new(env->srv[idx].addr, A.subscriber_key);
    pub1 = cebus_client_new(env->srv[idx].addr, A.publisher_key);

    set_quota_ok(env->admin, "acme", &streams);
    rc = open_stream(a_sub, a_pub, "orders", &s0, &err);
    h_assert_status("stream on server 0", rc, &err, GRPC_STATUS_OK, NULL);
    /* Server 1 learns the quota within its cache's second. */
    deadline = h_now_ms() + SETTLE_LIMIT_MS;
    do {
        rc = open_stream(sub1, pub1, "orders", &s1, &err);
        if (rc == 0)
            break;
        sleep_ms(100);
    } while (h_now_ms() < deadline);
    h_assert_status("stream on server 1", rc, &err, GRPC_STATUS_OK, NULL);
    /* The third, on server 0, is refused once server 1's stream shows in
     * its heartbeat. */
    deadline = h_now_ms() + SETTLE_LIMIT_MS;
    do {
        rc = open_stream(a_sub, a_pub, "orders", &s2, &err);
        if (rc == 0) {
            cebus_stream_close(s2);
            s2 = NULL;
            sleep_ms(100);
        }
    } while (rc == 0 && h_now_ms() < deadline);
    h_assert_status("third stream across servers", rc, &err, GRPC_STATUS_RESOURCE_EXHAUSTED,
                    "concurrent_streams quota of 2 reached");
    cebus_stream_close(s0);
    cebus_stream_close(s1);

    /* Two live servers (server 0 has just seen server 1's streams): each
     * takes half of 2 events a second, 1, with 5 s of burst, 5 events. A
     * batch of 10 from the full bucket leaves a debt of 5, so the next
     * event waits 6 s at 1 a second; alone, the server would have held 10
     * tokens at 2 a second and asked for half a second. */
    set_quota_ok(env->admin, "acme", &rate);
    rc = put_n(a_pub, "orders", 10, "split", &err);
    h_assert_status("PutEvents from a full bucket", rc, &err, GRPC_STATUS_OK, NULL);
    rc = put_n(a_pub, "orders", 1, "split", &err);
    h_assert_status("PutEvents past the server's share", rc, &err,
                    GRPC_STATUS_RESOURCE_EXHAUSTED, "events_per_second quota of 2 exceeded");
    assert_true(err.retry_after_ms > 3000);
    set_quota_ok(env->admin, "acme", NULL);
    cebus_client_free(sub1);
    cebus_client_free(pub1);
}

/* `cebus quota get|set`, and a quota refusal as the CLI reports it. */
static void test_cli(void **state)
{
    struct h_env *env = *state;
    const char *addr = env->srv[0].addr;
    struct h_cli_result r;

    h_cli_run(addr, H_ADMIN_KEY, NULL, CLI_TIMEOUT_MS,
              ARGS("quota", "set", "acme", "--events-per-second", "3", "--burst-seconds", "1",
                   "--concurrent-streams", "4"),
              &r);
    if (r.exit_code != 0)
        fail_msg("quota set: exit %d: %s", r.exit_code, r.err);
    assert_non_null(strstr(r.out, "\"tenant\":\"acme\""));
    assert_non_null(strstr(r.out, "\"events_per_second\":3"));
    assert_non_null(strstr(r.out, "\"concurrent_streams\":4"));
    assert_non_null(strstr(r.out, "\"rules_per_bus\":10000"));
    h_cli_result_free(&r);

    h_cli_run(addr, A.admin_key, NULL, CLI_TIMEOUT_MS, ARGS("quota", "get"), &r);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "\"events_per_second\":3"));
    h_cli_result_free(&r);

    h_cli_run(addr, A.admin_key, NULL, CLI_TIMEOUT_MS, ARGS("quota", "get", "globex"), &r);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "NOT_FOUND"));
    h_cli_result_free(&r);

    h_cli_run(addr, A.admin_key, NULL, CLI_TIMEOUT_MS,
              ARGS("quota", "set", "acme", "--events-per-second", "9"), &r);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "PERMISSION_DENIED"));
    h_cli_result_free(&r);

    h_cli_run(addr, H_ADMIN_KEY, NULL, CLI_TIMEOUT_MS,
              ARGS("quota", "set", "acme", "--burst-seconds", "many"), &r);
    assert_int_equal(r.exit_code, 2);
    h_cli_result_free(&r);

    h_cli_run(addr, H_ADMIN_KEY, NULL, CLI_TIMEOUT_MS, ARGS("quota", "set", "--help"), &r);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "usage: cebus quota set TENANT"));
    h_cli_result_free(&r);

    /* 3 events a second with 1 s of burst: a batch of 3 passes, the next
     * is refused with the quota named. */
    h_cli_run(addr, A.publisher_key,
              "{\"specversion\":\"1.0\",\"id\":\"c1\",\"source\":\"/cli\",\"type\":\"t\"}\n"
              "{\"specversion\":\"1.0\",\"id\":\"c2\",\"source\":\"/cli\",\"type\":\"t\"}\n"
              "{\"specversion\":\"1.0\",\"id\":\"c3\",\"source\":\"/cli\",\"type\":\"t\"}\n",
              CLI_TIMEOUT_MS, ARGS("put", "--bus", "orders", "--jsonl"), &r);
    assert_int_equal(r.exit_code, 0);
    h_cli_result_free(&r);
    h_cli_run(addr, A.publisher_key, NULL, CLI_TIMEOUT_MS,
              ARGS("put", "--bus", "orders", "--type", "t", "--source", "/cli", "--data", "{}"),
              &r);
    assert_int_equal(r.exit_code, 1);
    assert_non_null(strstr(r.err, "RESOURCE_EXHAUSTED: events_per_second quota of 3 exceeded"));
    h_cli_result_free(&r);

    h_cli_run(addr, H_ADMIN_KEY, NULL, CLI_TIMEOUT_MS, ARGS("quota", "set", "acme"), &r);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "\"events_per_second\":100000"));
    h_cli_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quota_rpcs),
        cmocka_unit_test(test_events_per_second),
        cmocka_unit_test(test_bytes_per_second),
        cmocka_unit_test(test_rules_and_subscriptions),
        cmocka_unit_test(test_concurrent_streams),
        cmocka_unit_test(test_cli),
        /* Last: it adds a server to the environment. */
        cmocka_unit_test(test_across_replicas),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
