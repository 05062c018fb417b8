/* The SaaS flows of issue 4, end to end through the client library: the
 * platform's official apps, ISVs and enterprises exchange events across
 * tenants through grants, with source prefixes keeping an ISV from
 * speaking as the platform. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Grants are cached for up to a second. */
#define SETTLE_LIMIT_MS 4000

static int grant(cebus_client *c, const char *bus, const char *grantee,
                 Cebus__V1__Permission perm)
{
    Cebus__V1__CreateGrantRequest req = CEBUS__V1__CREATE_GRANT_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    cebus_error err;
    int rc;

    req.bus = (char *)bus;
    req.grantee_tenant = (char *)grantee;
    req.permission = perm;
    rc = cebus_call_unary(c, "/cebus.v1.Admin/CreateGrant", &req.base,
                          &cebus__v1__grant__descriptor, 0, &resp, &err);
    h_assert_status("CreateGrant", rc, &err, 0, NULL);
    protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

static void add_source(cebus_client *c, const char *tenant, const char *prefix)
{
    Cebus__V1__CreateEventSourceRequest req = CEBUS__V1__CREATE_EVENT_SOURCE_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    cebus_error err;

    req.tenant = (char *)tenant;
    req.prefix = (char *)prefix;
    h_assert_status("CreateEventSource",
                    cebus_call_unary(c, "/cebus.v1.Admin/CreateEventSource", &req.base,
                                     &cebus__v1__event_source__descriptor, 0, &resp, &err),
                    &err, 0, NULL);
    protobuf_c_message_free_unpacked(resp, NULL);
}

/* Puts one event and returns the entry's status code; *seq gets its
 * sequence when it was stored. */
static int put(cebus_client *c, const char *bus, const char *id, const char *source,
               const char *type, const char *data, uint64_t *seq)
{
    h_event *ev = h_event_new(id, source, type, data);
    Cebus__V1__PutEventsResponse *resp = NULL;
    cebus_error err;
    int code;

    h_assert_status("PutEvents", h_put(c, bus, &ev, 1, &resp, &err), &err, 0, NULL);
    code = resp->results[0]->code;
    if (seq)
        *seq = resp->results[0]->sequence;
    cebus__v1__put_events_response__free_unpacked(resp, NULL);
    h_event_free(ev);
    return code;
}

/* Creates a rule on bus routing pattern to subscription; retries while the
 * grant it needs may still be cached as absent. */
static void create_rule_ok(cebus_client *c, const char *bus, const char *name, const char *pattern,
                           const char *subscription)
{
    Cebus__V1__CreateRuleRequest req = CEBUS__V1__CREATE_RULE_REQUEST__INIT;
    Cebus__V1__Target target = CEBUS__V1__TARGET__INIT;
    Cebus__V1__SubscriptionTarget sub = CEBUS__V1__SUBSCRIPTION_TARGET__INIT;
    Cebus__V1__Target *targets[1] = {&target};
    Cebus__V1__Rule *rule = NULL;
    int64_t start = h_now_ms();
    cebus_error err;
    int rc;

    sub.name = (char *)subscription;
    target.kind_case = CEBUS__V1__TARGET__KIND_SUBSCRIPTION;
    target.subscription = &sub;
    req.bus = (char *)bus;
    req.name = (char *)name;
    req.pattern = (char *)pattern;
    req.n_targets = 1;
    req.targets = targets;
    while ((rc = cebus_create_rule(c, &req, &rule, &err)) == GRPC_STATUS_NOT_FOUND &&
           h_now_ms() - start < SETTLE_LIMIT_MS)
        usleep(100 * 1000);
    h_assert_status("CreateRule", rc, &err, 0, NULL);
    cebus__v1__rule__free_unpacked(rule, NULL);
}

/* Opens a stream with an inline pattern from the earliest event,
 * retrying while a fresh grant may still be cached as absent. */
static cebus_stream *open_stream(cebus_client *c, const char *bus, const char *pattern)
{
    Cebus__V1__SubscribeRequest req;
    int64_t start = h_now_ms();
    cebus_error err;
    int rc;

    h_subscribe_request(&req, bus, pattern, NULL,
                        CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
    while ((rc = h_subscribe_status(c, &req, &err)) == GRPC_STATUS_NOT_FOUND &&
           h_now_ms() - start < SETTLE_LIMIT_MS)
        usleep(100 * 1000);
    h_assert_status("Subscribe", rc, &err, 0, NULL);
    return h_subscribe_ok(c, bus, pattern, CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
}

/* Opens a stream on a subscription from the earliest event. */
static cebus_stream *open_subscription(cebus_client *c, const char *bus, const char *subscription)
{
    Cebus__V1__SubscribeRequest req;
    cebus_stream *s = NULL;
    cebus_error err;

    h_subscribe_request(&req, bus, NULL, subscription,
                        CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
    h_assert_status("Subscribe", cebus_subscribe(c, &req, &s, &err), &err, 0, NULL);
    return s;
}

/* Official app to ISV app: the platform publishes "new customer" on its
 * bus; an ISV granted SUBSCRIBE (and MANAGE_RULES, for its own rule there)
 * receives it through its rule's subscription; a second ISV without a
 * grant gets NOT_FOUND and nothing. The ISV cannot publish as the
 * platform. */
static void test_official_app_to_isv_app(void **state)
{
    struct h_env *env = *state;
    struct h_tenant isv1, isv2;
    char platform_pub[160];
    cebus_client *official, *isv1_adm, *isv1_sub, *isv1_pub, *isv2_sub;
    Cebus__V1__SubscribeRequest req;
    Cebus__V1__SubscribeResponse *m;
    cebus_stream *s;
    cebus_error err;
    uint64_t seq;

    h_tenant_create_ok(env->admin, "isv-one", "apps", &isv1);
    h_tenant_create_ok(env->admin, "isv-two", "apps", &isv2);
    h_assert_status("CreateBus", h_bus_create(env->admin, "platform", "customers", &err), &err, 0,
                    NULL);
    h_assert_status("platform publisher key",
                    h_key_create(env->admin, "platform", CEBUS__V1__ROLE__ROLE_PUBLISHER,
                                 platform_pub, sizeof platform_pub, &err),
                    &err, 0, NULL);
    add_source(env->admin, "platform", "/platform/");
    add_source(env->admin, "isv-one", "/isv-one/");
    official = cebus_client_new(env->srv[0].addr, platform_pub);
    isv1_adm = cebus_client_new(env->srv[0].addr, isv1.admin_key);
    isv1_sub = cebus_client_new(env->srv[0].addr, isv1.subscriber_key);
    isv1_pub = cebus_client_new(env->srv[0].addr, isv1.publisher_key);
    isv2_sub = cebus_client_new(env->srv[0].addr, isv2.subscriber_key);

    grant(env->admin, "platform/customers", "isv-one",
          CEBUS__V1__PERMISSION__PERMISSION_SUBSCRIBE);
    grant(env->admin, "platform/customers", "isv-one",
          CEBUS__V1__PERMISSION__PERMISSION_MANAGE_RULES);
    create_rule_ok(isv1_adm, "platform/customers", "isv-one-new-customers",
                   "{\"type\":[\"customer.created\"]}", "isv-one-customers");

    assert_int_equal(put(official, "customers", "cust-1", "/platform/crm", "customer.updated",
                         NULL, NULL),
                     0);
    assert_int_equal(put(official, "customers", "cust-2", "/platform/crm", "customer.created",
                         "{\"name\":\"Initech\"}", &seq),
                     0);

    s = open_subscription(isv1_sub, "platform/customers", "isv-one-customers");
    m = h_expect_next(s);
    assert_int_equal(m->sequence, seq);
    assert_string_equal(m->event->id, "cust-2");
    assert_string_equal(m->event->source, "/platform/crm");
    assert_string_equal(h_event_attr_string(m->event, "cebustenant"), "platform");
    cebus__v1__subscribe_response__free_unpacked(m, NULL);
    cebus_stream_close(s);

    /* No grant: the platform's bus does not exist for isv-two. */
    h_subscribe_request(&req, "platform/customers", NULL, "isv-one-customers",
                        CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
    h_assert_status("isv-two Subscribe", h_subscribe_status(isv2_sub, &req, &err), &err,
                    GRPC_STATUS_NOT_FOUND, "no bus \"platform/customers\"");
    h_subscribe_request(&req, "platform/customers", "{}", NULL,
                        CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
    h_assert_status("isv-two Subscribe", h_subscribe_status(isv2_sub, &req, &err), &err,
                    GRPC_STATUS_NOT_FOUND, "no bus \"platform/customers\"");

    /* The ISV cannot pass its events off as the platform's. */
    assert_int_equal(put(isv1_pub, "apps", "fake-1", "/platform/crm", "customer.created", NULL,
                         NULL),
                     GRPC_STATUS_PERMISSION_DENIED);
    assert_int_equal(put(isv1_pub, "apps", "real-1", "/isv-one/app", "thing.done", NULL, NULL), 0);

    cebus_client_free(official);
    cebus_client_free(isv1_adm);
    cebus_client_free(isv1_sub);
    cebus_client_free(isv1_pub);
    cebus_client_free(isv2_sub);
}

/* ISV app to ISV app: a CRM ISV publishes "deal closed" on the finance
 * ISV's bus, which it was granted PUBLISH on; the finance ISV's own rule
 * routes it to its subscription. */
static void test_isv_app_to_isv_app(void **state)
{
    struct h_env *env = *state;
    struct h_tenant crm, fin;
    cebus_client *crm_pub, *fin_adm, *fin_sub;
    Cebus__V1__SubscribeResponse *m;
    cebus_stream *s;
    int64_t start = h_now_ms();
    uint64_t seq = 0;
    int code;

    h_tenant_create_ok(env->admin, "crm-isv", "crm", &crm);
    h_tenant_create_ok(env->admin, "fin-isv", "ledger", &fin);
    crm_pub = cebus_client_new(env->srv[0].addr, crm.publisher_key);
    fin_adm = cebus_client_new(env->srv[0].addr, fin.admin_key);
    fin_sub = cebus_client_new(env->srv[0].addr, fin.subscriber_key);
    add_source(env->admin, "crm-isv", "/crm-isv/");

    create_rule_ok(fin_adm, "ledger", "closed-deals", "{\"type\":[\"deal.closed\"]}",
                   "invoicing");
    grant(fin_adm, "ledger", "crm-isv", CEBUS__V1__PERMISSION__PERMISSION_PUBLISH);

    for (int i = 0;; i++) {
        h_event *ev = h_event_new("deal-42", "/crm-isv/deals", "deal.closed",
                                  "{\"deal\":42,\"amount\":1000}");
        Cebus__V1__PutEventsResponse *resp = NULL;
        cebus_error err;
        int rc = h_put(crm_pub, "fin-isv/ledger", &ev, 1, &resp, &err);

        h_event_free(ev);
        if (rc == 0) {
            code = resp->results[0]->code;
            seq = resp->results[0]->sequence;
            cebus__v1__put_events_response__free_unpacked(resp, NULL);
            assert_int_equal(code, 0);
            break;
        }
        if (rc != GRPC_STATUS_NOT_FOUND || h_now_ms() - start > SETTLE_LIMIT_MS)
            h_assert_status("crm PutEvents fin-isv/ledger", rc, &err, 0, NULL);
        usleep(100 * 1000);
    }
    put(fin_adm, "ledger", "other", "/fin-isv/books", "books.closed", NULL, NULL);

    s = open_subscription(fin_sub, "ledger", "invoicing");
    m = h_expect_next(s);
    assert_int_equal(m->sequence, seq);
    assert_string_equal(m->event->id, "deal-42");
    assert_string_equal(m->event->type, "deal.closed");
    assert_string_equal(h_event_attr_string(m->event, "cebustenant"), "crm-isv");
    cebus__v1__subscribe_response__free_unpacked(m, NULL);
    cebus_stream_close(s);

    /* PUBLISH is not SUBSCRIBE: the CRM ISV reads nothing of the ledger. */
    {
        Cebus__V1__SubscribeRequest req;
        cebus_client *crm_sub = cebus_client_new(env->srv[0].addr, crm.subscriber_key);
        cebus_error err;
        h_subscribe_request(&req, "fin-isv/ledger", "{}", NULL,
                            CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
        h_assert_status("crm Subscribe", h_subscribe_status(crm_sub, &req, &err), &err,
                        GRPC_STATUS_NOT_FOUND, NULL);
        cebus_client_free(crm_sub);
    }
    cebus_client_free(crm_pub);
    cebus_client_free(fin_adm);
    cebus_client_free(fin_sub);
}

/* Official app to enterprise app: an enterprise granted SUBSCRIBE on the
 * platform's bus syncs its events, history first and then live, with an
 * inline pattern. */
static void test_official_app_to_enterprise_app(void **state)
{
    struct h_env *env = *state;
    struct h_tenant ent;
    cebus_client *ent_sub;
    Cebus__V1__SubscribeResponse *m;
    cebus_stream *s;
    cebus_error err;
    uint64_t seqs[4];
    char id[32];

    h_tenant_create_ok(env->admin, "enterprise", "local", &ent);
    h_assert_status("CreateBus", h_bus_create(env->admin, "platform", "directory", &err), &err, 0,
                    NULL);
    ent_sub = cebus_client_new(env->srv[0].addr, ent.subscriber_key);
    for (int i = 0; i < 2; i++) {
        snprintf(id, sizeof id, "user-%d", i);
        assert_int_equal(put(env->admin, "platform/directory", id, "/platform/directory",
                             "user.created", NULL, &seqs[i]),
                         0);
    }
    grant(env->admin, "platform/directory", "enterprise",
          CEBUS__V1__PERMISSION__PERMISSION_SUBSCRIBE);

    s = open_stream(ent_sub, "platform/directory", "{\"type\":[\"user.created\"]}");
    for (int i = 2; i < 4; i++) {
        snprintf(id, sizeof id, "user-%d", i);
        assert_int_equal(put(env->admin, "platform/directory", id, "/platform/directory",
                             "user.created", NULL, &seqs[i]),
                         0);
    }
    for (int i = 0; i < 4; i++) {
        snprintf(id, sizeof id, "user-%d", i);
        m = h_expect_next(s);
        assert_int_equal(m->sequence, seqs[i]);
        assert_string_equal(m->event->id, id);
        cebus__v1__subscribe_response__free_unpacked(m, NULL);
    }
    cebus_stream_close(s);
    cebus_client_free(ent_sub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_official_app_to_isv_app),
        cmocka_unit_test(test_isv_app_to_isv_app),
        cmocka_unit_test(test_official_app_to_enterprise_app),
    };

    return cmocka_run_group_tests(tests, h_env_setup, h_env_teardown);
}
