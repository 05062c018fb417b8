/* libcebus's typed Admin calls over a real server, ListGrants paging, and
 * what GetBus shows a grantee. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A ("ownr") owns the bus "feed"; grantees get grants on it. */
static struct h_tenant A, B;

static int group_setup(void **state)
{
    struct h_env *env;

    if (h_env_setup(state) != 0)
        return -1;
    env = *state;
    h_tenant_create_ok(env->admin, "ownr", "feed", &A);
    h_tenant_create_ok(env->admin, "grnt", "own", &B);
    return 0;
}

static void grant_ok(cebus_client *c, const char *bus, const char *grantee,
                     Cebus__V1__Permission perm)
{
    Cebus__V1__CreateGrantRequest req = CEBUS__V1__CREATE_GRANT_REQUEST__INIT;
    Cebus__V1__Grant *g = NULL;
    cebus_error err;

    req.bus = (char *)bus;
    req.grantee_tenant = (char *)grantee;
    req.permission = perm;
    h_assert_status("CreateGrant", cebus_create_grant(c, &req, &g, &err), &err, 0, NULL);
    assert_string_equal(g->grantee_tenant, grantee);
    assert_int_equal(g->permission, perm);
    cebus__v1__grant__free_unpacked(g, NULL);
}

/* Five grants listed two at a time come in three pages, in (grantee,
 * permission) order, also when one grantee's grants span two pages; a
 * garbled token or one of another List call is INVALID_ARGUMENT. */
static void test_list_grants_pages(void **state)
{
    struct h_env *env = *state;
    cebus_client *a = cebus_client_new(env->srv[0].addr, A.admin_key);
    Cebus__V1__ListGrantsRequest req = CEBUS__V1__LIST_GRANTS_REQUEST__INIT;
    Cebus__V1__ListBusesRequest breq = CEBUS__V1__LIST_BUSES_REQUEST__INIT;
    Cebus__V1__ListBusesResponse *buses = NULL;
    Cebus__V1__ListGrantsResponse *resp = NULL;
    const char *want[] = {"g1/1", "g1/2", "g1/3", "g2/2", "grnt/1"};
    char token[256] = "", got[16];
    struct h_tenant t;
    cebus_error err;
    size_t seen = 0;
    int pages = 0;

    h_tenant_create_ok(env->admin, "g1", "b1", &t);
    h_tenant_create_ok(env->admin, "g2", "b2", &t);
    grant_ok(a, "feed", "g1", CEBUS__V1__PERMISSION__PERMISSION_MANAGE_RULES);
    grant_ok(a, "feed", "grnt", CEBUS__V1__PERMISSION__PERMISSION_PUBLISH);
    grant_ok(a, "feed", "g1", CEBUS__V1__PERMISSION__PERMISSION_PUBLISH);
    grant_ok(a, "feed", "g2", CEBUS__V1__PERMISSION__PERMISSION_SUBSCRIBE);
    grant_ok(a, "feed", "g1", CEBUS__V1__PERMISSION__PERMISSION_SUBSCRIBE);

    req.bus = "feed";
    req.page_size = 2;
    do {
        req.page_token = token;
        h_assert_status("ListGrants", cebus_list_grants(a, &req, &resp, &err), &err, 0, NULL);
        assert_true(resp->n_grants <= 2);
        for (size_t i = 0; i < resp->n_grants; i++) {
            assert_true(seen < 5);
            assert_string_equal(resp->grants[i]->bus, "ownr/feed");
            snprintf(got, sizeof got, "%s/%d", resp->grants[i]->grantee_tenant,
                     (int)resp->grants[i]->permission);
            assert_string_equal(got, want[seen++]);
        }
        snprintf(token, sizeof token, "%s", resp->next_page_token);
        cebus__v1__list_grants_response__free_unpacked(resp, NULL);
        pages++;
    } while (token[0] && pages < 10);
    assert_int_equal(seen, 5);
    assert_int_equal(pages, 3);

    /* page_size 0 means 100: one page. */
    req.page_size = 0;
    req.page_token = "";
    h_assert_status("ListGrants all", cebus_list_grants(a, &req, &resp, &err), &err, 0, NULL);
    assert_int_equal(resp->n_grants, 5);
    assert_string_equal(resp->next_page_token, "");
    cebus__v1__list_grants_response__free_unpacked(resp, NULL);

    req.page_token = "zz";
    h_assert_status("ListGrants garbled token", cebus_list_grants(a, &req, &resp, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "page_token");
    breq.page_size = 1;
    h_bus_create(a, NULL, "feed2", &err);
    h_assert_status("ListBuses", cebus_list_buses(a, &breq, &buses, &err), &err, 0, NULL);
    assert_true(buses->next_page_token[0]);
    req.page_token = buses->next_page_token;
    h_assert_status("ListGrants with a ListBuses token", cebus_list_grants(a, &req, &resp, &err),
                    &err, GRPC_STATUS_INVALID_ARGUMENT, "page_token");
    cebus__v1__list_buses_response__free_unpacked(buses, NULL);
    cebus_client_free(a);
}

/* A grantee's keys, of any role, read the granted bus: name and the
 * settings it needs, not its create_time; the owner sees everything; the
 * bus stays out of the grantee's ListBuses. */
static void test_get_bus_for_grantee(void **state)
{
    struct h_env *env = *state;
    cebus_client *a = cebus_client_new(env->srv[0].addr, A.admin_key);
    const char *keys[] = {B.admin_key, B.publisher_key, B.subscriber_key};
    Cebus__V1__GetBusRequest req = CEBUS__V1__GET_BUS_REQUEST__INIT;
    Cebus__V1__ListBusesRequest lreq = CEBUS__V1__LIST_BUSES_REQUEST__INIT;
    Cebus__V1__ListBusesResponse *list = NULL;
    Cebus__V1__Bus *bus = NULL;
    cebus_error err;

    /* "grnt" holds PUBLISH on ownr/feed (test_list_grants_pages). */
    req.bus = "ownr/feed";
    for (size_t i = 0; i < 3; i++) {
        cebus_client *c = cebus_client_new(env->srv[0].addr, keys[i]);
        h_assert_status("grantee GetBus", cebus_get_bus(c, &req, &bus, &err), &err, 0, NULL);
        assert_string_equal(bus->tenant, "ownr");
        assert_string_equal(bus->name, "feed");
        assert_int_equal(bus->retention_hours, 168);
        assert_int_equal(bus->dedup_window_seconds, 300);
        assert_null(bus->create_time);
        cebus__v1__bus__free_unpacked(bus, NULL);
        h_assert_status("grantee ListBuses", cebus_list_buses(c, &lreq, &list, &err), &err, 0,
                        NULL);
        assert_int_equal(list->n_buses, 1);
        assert_string_equal(list->buses[0]->name, "own");
        cebus__v1__list_buses_response__free_unpacked(list, NULL);
        cebus_client_free(c);
    }
    req.bus = "feed";
    h_assert_status("owner GetBus", cebus_get_bus(a, &req, &bus, &err), &err, 0, NULL);
    assert_non_null(bus->create_time);
    cebus__v1__bus__free_unpacked(bus, NULL);
    /* Without a grant, the other bus of the owner is NOT_FOUND. */
    {
        cebus_client *c = cebus_client_new(env->srv[0].addr, B.admin_key);
        req.bus = "ownr/feed2";
        h_assert_status("grantee GetBus other", cebus_get_bus(c, &req, &bus, &err), &err,
                        GRPC_STATUS_NOT_FOUND, "no bus \"ownr/feed2\"");
        cebus_client_free(c);
    }
    cebus_client_free(a);
}

/* Every typed Admin call reaches its RPC: a round of tenant, key, bus,
 * grant and event source management. */
static void test_typed_admin_calls(void **state)
{
    struct h_env *env = *state;
    cebus_client *p = env->admin;
    cebus_client *a = cebus_client_new(env->srv[0].addr, A.admin_key);
    Cebus__V1__GetTenantRequest gt = CEBUS__V1__GET_TENANT_REQUEST__INIT;
    Cebus__V1__ListTenantsRequest lt = CEBUS__V1__LIST_TENANTS_REQUEST__INIT;
    Cebus__V1__UpdateTenantRequest ut = CEBUS__V1__UPDATE_TENANT_REQUEST__INIT;
    Cebus__V1__DeleteTenantRequest dt = CEBUS__V1__DELETE_TENANT_REQUEST__INIT;
    Cebus__V1__ListApiKeysRequest lk = CEBUS__V1__LIST_API_KEYS_REQUEST__INIT;
    Cebus__V1__RevokeApiKeyRequest rk = CEBUS__V1__REVOKE_API_KEY_REQUEST__INIT;
    Cebus__V1__UpdateBusRequest ub = CEBUS__V1__UPDATE_BUS_REQUEST__INIT;
    Cebus__V1__DeleteBusRequest db = CEBUS__V1__DELETE_BUS_REQUEST__INIT;
    Cebus__V1__RevokeGrantRequest rg = CEBUS__V1__REVOKE_GRANT_REQUEST__INIT;
    Cebus__V1__CreateEventSourceRequest cs = CEBUS__V1__CREATE_EVENT_SOURCE_REQUEST__INIT;
    Cebus__V1__ListEventSourcesRequest ls = CEBUS__V1__LIST_EVENT_SOURCES_REQUEST__INIT;
    Cebus__V1__DeleteEventSourceRequest ds = CEBUS__V1__DELETE_EVENT_SOURCE_REQUEST__INIT;
    Cebus__V1__TestEventPatternRequest tp = CEBUS__V1__TEST_EVENT_PATTERN_REQUEST__INIT;
    Cebus__V1__Tenant tenant = CEBUS__V1__TENANT__INIT, *t = NULL;
    Cebus__V1__Bus bus = CEBUS__V1__BUS__INIT, *b = NULL;
    Cebus__V1__ListTenantsResponse *tl = NULL;
    Cebus__V1__ListApiKeysResponse *kl = NULL;
    Cebus__V1__EventSource *src = NULL;
    Cebus__V1__ListEventSourcesResponse *sl = NULL;
    Cebus__V1__TestEventPatternResponse *tr = NULL;
    char *tmask = "display_name", *bmask = "retention_hours", id[16], secret[160];
    h_event *ev = h_event_new("e1", "/x", "t.typed", NULL);
    struct h_tenant doomed;
    cebus_error err;

    gt.name = "ownr";
    h_assert_status("GetTenant", cebus_get_tenant(p, &gt, &t, &err), &err, 0, NULL);
    assert_string_equal(t->name, "ownr");
    cebus__v1__tenant__free_unpacked(t, NULL);
    h_assert_status("ListTenants", cebus_list_tenants(p, &lt, &tl, &err), &err, 0, NULL);
    assert_true(tl->n_tenants >= 3);
    cebus__v1__list_tenants_response__free_unpacked(tl, NULL);
    tenant.name = "ownr";
    tenant.display_name = "Owner Inc";
    ut.tenant = &tenant;
    ut.n_update_mask = 1;
    ut.update_mask = &tmask;
    h_assert_status("UpdateTenant", cebus_update_tenant(a, &ut, &t, &err), &err, 0, NULL);
    assert_string_equal(t->display_name, "Owner Inc");
    cebus__v1__tenant__free_unpacked(t, NULL);

    h_assert_status("CreateApiKey",
                    h_key_create(a, NULL, CEBUS__V1__ROLE__ROLE_PUBLISHER, secret, sizeof secret,
                                 &err),
                    &err, 0, NULL);
    snprintf(id, sizeof id, "%.11s", secret);
    rk.id = id;
    h_assert_status("RevokeApiKey", cebus_revoke_api_key(a, &rk, &err), &err, 0, NULL);
    h_assert_status("ListApiKeys", cebus_list_api_keys(a, &lk, &kl, &err), &err, 0, NULL);
    assert_int_equal(kl->n_keys, 4);
    for (size_t i = 0; i < kl->n_keys; i++)
        assert_int_equal(kl->keys[i]->revoked, strcmp(kl->keys[i]->id, id) == 0);
    cebus__v1__list_api_keys_response__free_unpacked(kl, NULL);

    bus.name = "feed2";
    bus.retention_hours = 24;
    ub.bus = &bus;
    ub.n_update_mask = 1;
    ub.update_mask = &bmask;
    h_assert_status("UpdateBus", cebus_update_bus(a, &ub, &b, &err), &err, 0, NULL);
    assert_int_equal(b->retention_hours, 24);
    cebus__v1__bus__free_unpacked(b, NULL);
    db.bus = "feed2";
    h_assert_status("DeleteBus", cebus_delete_bus(a, &db, &err), &err, 0, NULL);
    h_assert_status("DeleteBus again", cebus_delete_bus(a, &db, &err), &err,
                    GRPC_STATUS_NOT_FOUND, "bus");

    rg.bus = "feed";
    rg.grantee_tenant = "g2";
    rg.permission = CEBUS__V1__PERMISSION__PERMISSION_SUBSCRIBE;
    h_assert_status("RevokeGrant", cebus_revoke_grant(a, &rg, &err), &err, 0, NULL);
    h_assert_status("RevokeGrant again", cebus_revoke_grant(a, &rg, &err), &err,
                    GRPC_STATUS_NOT_FOUND, "grant");

    cs.prefix = "/ownr";
    h_assert_status("CreateEventSource", cebus_create_event_source(a, &cs, &src, &err), &err, 0,
                    NULL);
    assert_string_equal(src->tenant, "ownr");
    cebus__v1__event_source__free_unpacked(src, NULL);
    h_assert_status("ListEventSources", cebus_list_event_sources(a, &ls, &sl, &err), &err, 0,
                    NULL);
    assert_int_equal(sl->n_sources, 1);
    assert_string_equal(sl->sources[0]->prefix, "/ownr");
    cebus__v1__list_event_sources_response__free_unpacked(sl, NULL);
    ds.prefix = "/ownr";
    h_assert_status("DeleteEventSource", cebus_delete_event_source(a, &ds, &err), &err, 0, NULL);

    tp.pattern = "{\"type\":[\"t.typed\"]}";
    tp.event = ev;
    h_assert_status("TestEventPattern", cebus_test_event_pattern(a, &tp, &tr, &err), &err, 0,
                    NULL);
    assert_true(tr->matched);
    cebus__v1__test_event_pattern_response__free_unpacked(tr, NULL);
    h_event_free(ev);

    h_tenant_create_ok(p, "doomed", "x", &doomed);
    dt.name = "doomed";
    h_assert_status("DeleteTenant", cebus_delete_tenant(p, &dt, &err), &err, 0, NULL);
    h_assert_status("DeleteTenant again", cebus_delete_tenant(p, &dt, &err), &err,
                    GRPC_STATUS_NOT_FOUND, "tenant");
    cebus_client_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_grants_pages),
        cmocka_unit_test(test_get_bus_for_grantee),
        cmocka_unit_test(test_typed_admin_calls),
    };

    return cmocka_run_group_tests(tests, group_setup, h_env_teardown);
}
