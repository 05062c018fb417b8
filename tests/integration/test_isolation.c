/* Tenants are isolated: another tenant's bus answers exactly like a bus
 * that does not exist, roles limit what a key may do, and streams never
 * carry another tenant's events. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tenant A ("acme") and tenant B ("globex") both have a bus "orders". */
static struct h_tenant A, B;

static int group_setup(void **state)
{
    struct h_env *env;

    if (h_env_setup(state) != 0)
        return -1;
    env = *state;
    h_tenant_create_ok(env->admin, "acme", "orders", &A);
    h_tenant_create_ok(env->admin, "globex", "orders", &B);
    return 0;
}

/* The calls a key may try on a bus reference; each returns its status. */
static int try_op(cebus_client *c, enum h_op op, const char *bus, cebus_error *err)
{
    const struct h_op_args a = {"intruder", "/it/intruder", "secret-rule", "intruder-rule",
                                "secret-rule"};
    return h_try_op(c, op, bus, &a, err);
}

/* B's keys, each on the calls its role allows, get NOT_FOUND for
 * "acme/orders" with the very message they get for "acme/ghost" (which
 * does not exist), so B learns nothing; A's bus and rule are untouched. */
static void test_other_tenants_bus_is_not_found_like_a_missing_one(void **state)
{
    struct h_env *env = *state;
    struct {
        const char *role;
        const char *key;
        enum h_op ops[6];
        size_t nops;
    } keys[] = {
        {"tenant admin",
         B.admin_key,
         {H_OP_PUT, H_OP_SUBSCRIBE, H_OP_CREATE_RULE, H_OP_GET_RULE, H_OP_LIST_RULES,
          H_OP_DELETE_RULE},
         6},
        {"publisher", B.publisher_key, {H_OP_PUT}, 1},
        {"subscriber", B.subscriber_key, {H_OP_SUBSCRIBE, H_OP_GET_RULE, H_OP_LIST_RULES}, 3},
    };
    Cebus__V1__CreateRuleRequest rreq = CEBUS__V1__CREATE_RULE_REQUEST__INIT;
    Cebus__V1__GetRuleRequest greq = CEBUS__V1__GET_RULE_REQUEST__INIT;
    Cebus__V1__Rule *rule = NULL;
    Cebus__V1__SubscribeResponse *m;
    cebus_client *a_admin = cebus_client_new(env->srv[0].addr, A.admin_key);
    cebus_client *a_sub = cebus_client_new(env->srv[0].addr, A.subscriber_key);
    cebus_stream *s;
    cebus_error err;
    uint64_t seq;

    /* A owns a rule that B will try to read and delete. */
    rreq.bus = "orders";
    rreq.name = "secret-rule";
    rreq.pattern = "{\"type\":[\"secret\"]}";
    h_assert_status("A CreateRule", cebus_create_rule(a_admin, &rreq, &rule, &err), &err, 0, NULL);
    cebus__v1__rule__free_unpacked(rule, NULL);

    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        cebus_client *c = cebus_client_new(env->srv[0].addr, keys[k].key);
        for (size_t i = 0; i < keys[k].nops; i++) {
            enum h_op op = keys[k].ops[i];
            cebus_error e1, e2;
            char n1[600], n2[600];
            int rc1 = try_op(c, op, "acme/orders", &e1);
            int rc2 = try_op(c, op, "acme/ghost", &e2);

            if (rc1 != GRPC_STATUS_NOT_FOUND || rc2 != GRPC_STATUS_NOT_FOUND)
                fail_msg("B %s %s: acme/orders gave %s (%s), acme/ghost gave %s (%s); want "
                         "NOT_FOUND for both",
                         keys[k].role, h_op_names[op], cebus_status_name(rc1), e1.message,
                         cebus_status_name(rc2), e2.message);
            h_normalize(e1.message, "acme/orders", n1, sizeof n1);
            h_normalize(e2.message, "acme/ghost", n2, sizeof n2);
            if (strcmp(n1, n2) != 0)
                fail_msg("B %s %s: the answer tells an existing bus from a missing one: "
                         "\"%s\" vs \"%s\"",
                         keys[k].role, h_op_names[op], e1.message, e2.message);
        }
        cebus_client_free(c);
    }

    /* A's rule is intact and A's bus received nothing from B. */
    greq.bus = "orders";
    greq.name = "secret-rule";
    h_assert_status("A GetRule", cebus_get_rule(a_admin, &greq, &rule, &err), &err, 0, NULL);
    assert_string_equal(rule->pattern, "{\"type\":[\"secret\"]}");
    cebus__v1__rule__free_unpacked(rule, NULL);
    greq.name = "intruder-rule";
    h_assert_status("A GetRule intruder-rule", cebus_get_rule(a_admin, &greq, &rule, &err), &err,
                    GRPC_STATUS_NOT_FOUND, NULL);
    seq = h_put_one_ok(a_admin, "orders", "a-first", "t", NULL);
    s = h_subscribe_ok(a_sub, "orders", "{}", CEBUS__V1__START_POSITION__START_POSITION_EARLIEST,
                       0);
    m = h_expect_next(s);
    assert_string_equal(m->event->id, "a-first");
    assert_int_equal(m->sequence, seq);
    cebus__v1__subscribe_response__free_unpacked(m, NULL);
    cebus_stream_close(s);

    /* The platform admin does reach acme/orders (the reference form works). */
    assert_int_equal(try_op(env->admin, H_OP_LIST_RULES, "acme/orders", &err), 0);

    cebus_client_free(a_admin);
    cebus_client_free(a_sub);
}

/* B cannot list, create buses in, or mint keys for tenant A; the answer is
 * the one for a tenant that does not exist. B's own listing shows only B's
 * buses. */
static void test_other_tenant_cannot_be_administered(void **state)
{
    struct h_env *env = *state;
    Cebus__V1__ListBusesRequest lreq = CEBUS__V1__LIST_BUSES_REQUEST__INIT;
    Cebus__V1__ListBusesResponse *lresp = NULL;
    cebus_client *b_admin = cebus_client_new(env->srv[0].addr, B.admin_key);
    cebus_error e1, e2, err;
    char key[160], n1[600], n2[600];
    int rc1, rc2;

    lreq.tenant = "acme";
    rc1 = cebus_list_buses(b_admin, &lreq, &lresp, &e1);
    lreq.tenant = "no-such-tenant";
    rc2 = cebus_list_buses(b_admin, &lreq, &lresp, &e2);
    h_assert_status("B ListBuses acme", rc1, &e1, GRPC_STATUS_NOT_FOUND, NULL);
    h_assert_status("B ListBuses no-such-tenant", rc2, &e2, GRPC_STATUS_NOT_FOUND, NULL);
    h_normalize(e1.message, "acme", n1, sizeof n1);
    h_normalize(e2.message, "no-such-tenant", n2, sizeof n2);
    assert_string_equal(n1, n2);

    h_assert_status("B CreateBus in acme", h_bus_create(b_admin, "acme", "stolen", &err), &err,
                    GRPC_STATUS_NOT_FOUND, NULL);
    h_assert_status(
        "B CreateApiKey for acme",
        h_key_create(b_admin, "acme", CEBUS__V1__ROLE__ROLE_TENANT_ADMIN, key, sizeof key, &err),
        &err, GRPC_STATUS_NOT_FOUND, NULL);

    lreq.tenant = "";
    h_assert_status("B ListBuses", cebus_list_buses(b_admin, &lreq, &lresp, &err), &err, 0, NULL);
    assert_int_equal(lresp->n_buses, 1);
    assert_string_equal(lresp->buses[0]->tenant, "globex");
    assert_string_equal(lresp->buses[0]->name, "orders");
    cebus__v1__list_buses_response__free_unpacked(lresp, NULL);

    /* The platform admin sees acme's buses. */
    lreq.tenant = "acme";
    h_assert_status("platform ListBuses acme", cebus_list_buses(env->admin, &lreq, &lresp, &err),
                    &err, 0, NULL);
    assert_int_equal(lresp->n_buses, 1);
    assert_string_equal(lresp->buses[0]->tenant, "acme");
    cebus__v1__list_buses_response__free_unpacked(lresp, NULL);
    cebus_client_free(b_admin);
}

/* Roles: publishers publish, subscribers read and stream, tenant admins
 * manage their tenant; everything else is PERMISSION_DENIED. */
static void test_roles_are_enforced(void **state)
{
    struct h_env *env = *state;
    cebus_client *pub = cebus_client_new(env->srv[0].addr, A.publisher_key);
    cebus_client *sub = cebus_client_new(env->srv[0].addr, A.subscriber_key);
    cebus_client *adm = cebus_client_new(env->srv[0].addr, A.admin_key);
    Cebus__V1__CreateTenantRequest treq = CEBUS__V1__CREATE_TENANT_REQUEST__INIT;
    Cebus__V1__Tenant *tenant = NULL;
    cebus_error err;
    char key[160];

    h_assert_status("publisher CreateRule", try_op(pub, H_OP_CREATE_RULE, "orders", &err), &err,
                    GRPC_STATUS_PERMISSION_DENIED, NULL);
    h_assert_status("publisher DeleteRule", try_op(pub, H_OP_DELETE_RULE, "orders", &err), &err,
                    GRPC_STATUS_PERMISSION_DENIED, NULL);
    h_assert_status("publisher Subscribe", try_op(pub, H_OP_SUBSCRIBE, "orders", &err), &err,
                    GRPC_STATUS_PERMISSION_DENIED, NULL);
    h_assert_status("publisher CreateBus", h_bus_create(pub, NULL, "pub-bus", &err), &err,
                    GRPC_STATUS_PERMISSION_DENIED, NULL);
    h_assert_status("subscriber PutEvents", try_op(sub, H_OP_PUT, "orders", &err), &err,
                    GRPC_STATUS_PERMISSION_DENIED, NULL);
    h_assert_status("subscriber CreateRule", try_op(sub, H_OP_CREATE_RULE, "orders", &err), &err,
                    GRPC_STATUS_PERMISSION_DENIED, NULL);
    h_assert_status("subscriber CreateApiKey",
                    h_key_create(sub, NULL, CEBUS__V1__ROLE__ROLE_PUBLISHER, key, sizeof key, &err),
                    &err, GRPC_STATUS_PERMISSION_DENIED, NULL);
    treq.name = "upstart";
    h_assert_status("tenant admin CreateTenant", cebus_create_tenant(adm, &treq, &tenant, &err),
                    &err, GRPC_STATUS_PERMISSION_DENIED, NULL);
    h_assert_status(
        "tenant admin creates a platform admin key",
        h_key_create(adm, NULL, CEBUS__V1__ROLE__ROLE_PLATFORM_ADMIN, key, sizeof key, &err), &err,
        GRPC_STATUS_PERMISSION_DENIED, NULL);

    /* What the roles may do. */
    h_assert_status("subscriber ListRules", try_op(sub, H_OP_LIST_RULES, "orders", &err), &err, 0,
                    NULL);
    h_assert_status("subscriber Subscribe", try_op(sub, H_OP_SUBSCRIBE, "orders", &err), &err, 0,
                    NULL);
    h_assert_status("publisher PutEvents", try_op(pub, H_OP_PUT, "orders", &err), &err, 0, NULL);
    h_assert_status("tenant admin CreateApiKey",
                    h_key_create(adm, NULL, CEBUS__V1__ROLE__ROLE_PUBLISHER, key, sizeof key, &err),
                    &err, 0, NULL);

    cebus_client_free(pub);
    cebus_client_free(sub);
    cebus_client_free(adm);
}

/* B's stream on its own "orders" never carries A's events on A's
 * "orders", however many; it sees its own, stamped with its tenant. */
static void test_streams_never_cross_tenants(void **state)
{
    struct h_env *env = *state;
    cebus_client *a_pub = cebus_client_new(env->srv[0].addr, A.publisher_key);
    cebus_client *b_pub = cebus_client_new(env->srv[0].addr, B.publisher_key);
    cebus_client *b_sub = cebus_client_new(env->srv[0].addr, B.subscriber_key);
    Cebus__V1__SubscribeResponse *m;
    cebus_stream *s;
    char id[32];
    uint64_t seq;

    s = h_subscribe_ok(b_sub, "orders", "{}", CEBUS__V1__START_POSITION__START_POSITION_EARLIEST,
                       0);
    for (int i = 0; i < 20; i++) {
        snprintf(id, sizeof id, "a-%d", i);
        h_put_one_ok(a_pub, "orders", id, "order.created", "{\"tenant\":\"acme\"}");
    }
    seq = h_put_one_ok(b_pub, "orders", "b-sentinel", "order.created", NULL);
    /* B's bus may hold B's earlier events (none here), never A's. */
    for (;;) {
        m = h_expect_next(s);
        assert_string_equal(h_event_attr_string(m->event, "cebustenant"), "globex");
        if (strncmp(m->event->id, "a-", 2) == 0)
            fail_msg("B received A's event %s", m->event->id);
        if (m->sequence == seq) {
            assert_string_equal(m->event->id, "b-sentinel");
            cebus__v1__subscribe_response__free_unpacked(m, NULL);
            break;
        }
        cebus__v1__subscribe_response__free_unpacked(m, NULL);
    }
    cebus_stream_close(s);
    cebus_client_free(a_pub);
    cebus_client_free(b_pub);
    cebus_client_free(b_sub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_other_tenants_bus_is_not_found_like_a_missing_one),
        cmocka_unit_test(test_other_tenant_cannot_be_administered),
        cmocka_unit_test(test_roles_are_enforced),
        cmocka_unit_test(test_streams_never_cross_tenants),
    };

    return cmocka_run_group_tests(tests, group_setup, h_env_teardown);
}
