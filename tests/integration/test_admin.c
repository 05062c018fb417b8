/* The Admin CRUD of issue 4: tenants (get, list, update, delete), API keys
 * (list, revoke) and buses (get, update, delete), with their role checks,
 * NOT_FOUND answers that leak nothing, revocation and disabling reaching
 * new calls and open streams within about a second, deletions removing
 * every row (checked through libpq), and the CLI commands. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <unistd.h>

/* Tenant A ("acme") and tenant B ("globex") both have a bus "orders". */
static struct h_tenant A, B;

/* Revocation and disabling reach new calls once the key cache (1 s) has
 * expired; streams at the delivery thread's next check (1 s). The limits
 * leave room for sanitizer builds on a busy machine. */
#define NEW_CALL_LIMIT_MS 1500
#define STREAM_END_LIMIT_MS 4000

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

/* ---- Helpers -------------------------------------------------------------- */

static int call(cebus_client *c, const char *method, const ProtobufCMessage *req,
                const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp, cebus_error *err)
{
    ProtobufCMessage *r = NULL;
    int rc = cebus_call_unary(c, method, req, desc, 0, &r, err);

    if (rc == 0 && resp)
        *resp = r;
    else if (rc == 0)
        protobuf_c_message_free_unpacked(r, NULL);
    return rc;
}

static int get_tenant(cebus_client *c, const char *name, Cebus__V1__Tenant **out, cebus_error *err)
{
    Cebus__V1__GetTenantRequest req = CEBUS__V1__GET_TENANT_REQUEST__INIT;

    req.name = (char *)name;
    return call(c, "/cebus.v1.Admin/GetTenant", &req.base, &cebus__v1__tenant__descriptor,
                (ProtobufCMessage **)out, err);
}

static int list_tenants(cebus_client *c, uint32_t page_size, const char *token,
                        Cebus__V1__ListTenantsResponse **out, cebus_error *err)
{
    Cebus__V1__ListTenantsRequest req = CEBUS__V1__LIST_TENANTS_REQUEST__INIT;

    req.page_size = page_size;
    req.page_token = (char *)token;
    return call(c, "/cebus.v1.Admin/ListTenants", &req.base,
                &cebus__v1__list_tenants_response__descriptor, (ProtobufCMessage **)out, err);
}

/* UpdateTenant of the given fields: display_name unless NULL, disabled
 * unless negative. */
static int update_tenant(cebus_client *c, const char *name, const char *display_name,
                         int disabled, Cebus__V1__Tenant **out, cebus_error *err)
{
    Cebus__V1__UpdateTenantRequest req = CEBUS__V1__UPDATE_TENANT_REQUEST__INIT;
    Cebus__V1__Tenant t = CEBUS__V1__TENANT__INIT;
    char *mask[2];

    t.name = (char *)name;
    if (display_name) {
        t.display_name = (char *)display_name;
        mask[req.n_update_mask++] = "display_name";
    }
    if (disabled >= 0) {
        t.disabled = disabled != 0;
        mask[req.n_update_mask++] = "disabled";
    }
    req.tenant = &t;
    req.update_mask = mask;
    return call(c, "/cebus.v1.Admin/UpdateTenant", &req.base, &cebus__v1__tenant__descriptor,
                (ProtobufCMessage **)out, err);
}

static int delete_tenant(cebus_client *c, const char *name, cebus_error *err)
{
    Cebus__V1__DeleteTenantRequest req = CEBUS__V1__DELETE_TENANT_REQUEST__INIT;

    req.name = (char *)name;
    return call(c, "/cebus.v1.Admin/DeleteTenant", &req.base,
                &cebus__v1__delete_tenant_response__descriptor, NULL, err);
}

static int list_keys(cebus_client *c, const char *tenant, uint32_t page_size, const char *token,
                     Cebus__V1__ListApiKeysResponse **out, cebus_error *err)
{
    Cebus__V1__ListApiKeysRequest req = CEBUS__V1__LIST_API_KEYS_REQUEST__INIT;

    req.tenant = (char *)tenant;
    req.page_size = page_size;
    req.page_token = (char *)token;
    return call(c, "/cebus.v1.Admin/ListApiKeys", &req.base,
                &cebus__v1__list_api_keys_response__descriptor, (ProtobufCMessage **)out, err);
}

static int revoke_key(cebus_client *c, const char *id, cebus_error *err)
{
    Cebus__V1__RevokeApiKeyRequest req = CEBUS__V1__REVOKE_API_KEY_REQUEST__INIT;

    req.id = (char *)id;
    return call(c, "/cebus.v1.Admin/RevokeApiKey", &req.base,
                &cebus__v1__revoke_api_key_response__descriptor, NULL, err);
}

static int get_bus(cebus_client *c, const char *ref, Cebus__V1__Bus **out, cebus_error *err)
{
    Cebus__V1__GetBusRequest req = CEBUS__V1__GET_BUS_REQUEST__INIT;

    req.bus = (char *)ref;
    return call(c, "/cebus.v1.Admin/GetBus", &req.base, &cebus__v1__bus__descriptor,
                (ProtobufCMessage **)out, err);
}

/* UpdateBus of tenant/name; a negative value leaves the field out of the
 * mask. */
static int update_bus(cebus_client *c, const char *tenant, const char *name, long retention,
                      long dedup, Cebus__V1__Bus **out, cebus_error *err)
{
    Cebus__V1__UpdateBusRequest req = CEBUS__V1__UPDATE_BUS_REQUEST__INIT;
    Cebus__V1__Bus b = CEBUS__V1__BUS__INIT;
    char *mask[2];

    b.tenant = (char *)tenant;
    b.name = (char *)name;
    if (retention >= 0) {
        b.retention_hours = (uint32_t)retention;
        mask[req.n_update_mask++] = "retention_hours";
    }
    if (dedup >= 0) {
        b.dedup_window_seconds = (uint32_t)dedup;
        mask[req.n_update_mask++] = "dedup_window_seconds";
    }
    req.bus = &b;
    req.update_mask = mask;
    return call(c, "/cebus.v1.Admin/UpdateBus", &req.base, &cebus__v1__bus__descriptor,
                (ProtobufCMessage **)out, err);
}

static int delete_bus(cebus_client *c, const char *ref, cebus_error *err)
{
    Cebus__V1__DeleteBusRequest req = CEBUS__V1__DELETE_BUS_REQUEST__INIT;

    req.bus = (char *)ref;
    return call(c, "/cebus.v1.Admin/DeleteBus", &req.base,
                &cebus__v1__delete_bus_response__descriptor, NULL, err);
}

/* Creates rule r1 on bus with one subscription target "sub1". */
static void create_rule_ok(cebus_client *c, const char *bus)
{
    Cebus__V1__CreateRuleRequest req = CEBUS__V1__CREATE_RULE_REQUEST__INIT;
    Cebus__V1__Target target = CEBUS__V1__TARGET__INIT;
    Cebus__V1__SubscriptionTarget sub = CEBUS__V1__SUBSCRIPTION_TARGET__INIT;
    Cebus__V1__Target *targets[1] = {&target};
    Cebus__V1__Rule *rule = NULL;
    cebus_error err;

    sub.name = "sub1";
    target.kind_case = CEBUS__V1__TARGET__KIND_SUBSCRIPTION;
    target.subscription = &sub;
    req.bus = (char *)bus;
    req.name = "r1";
    req.pattern = "{}";
    req.n_targets = 1;
    req.targets = targets;
    h_assert_status("CreateRule", cebus_create_rule(c, &req, &rule, &err), &err, 0, NULL);
    cebus__v1__rule__free_unpacked(rule, NULL);
}

/* The non-secret id of a key: its first 11 characters. */
static void key_id(const char *secret, char *id)
{
    size_t n = strnlen(secret, 11);

    memcpy(id, secret, n);
    id[n] = '\0';
}

/* Replaces every occurrence of what in msg by "<x>". */
static void normalize(const char *msg, const char *what, char *out, size_t size)
{
    size_t n = 0, wlen = strlen(what);

    while (*msg && n + 4 < size) {
        if (strncmp(msg, what, wlen) == 0) {
            n += (size_t)snprintf(out + n, size - n, "<x>");
            msg += wlen;
        } else {
            out[n++] = *msg++;
        }
    }
    out[n] = '\0';
}

/* Fails unless two NOT_FOUND messages are the same once the names they
 * were asked about are masked. */
static void assert_same_not_found(const cebus_error *real, const char *real_name,
                                  const cebus_error *ghost, const char *ghost_name)
{
    char n1[600], n2[600];

    normalize(real->message, real_name, n1, sizeof n1);
    normalize(ghost->message, ghost_name, n2, sizeof n2);
    assert_string_equal(n1, n2);
}

/* Calls PutEvents with key every 50 ms until it answers code; returns how
 * long that took, failing the test past limit_ms. */
static int64_t wait_put_status(const char *addr, const char *key, const char *bus, int code,
                               int limit_ms)
{
    cebus_client *c = cebus_client_new(addr, key);
    int64_t start = h_now_ms(), elapsed;

    for (;;) {
        h_event *ev = h_event_new("probe", "/it", "probe", NULL);
        Cebus__V1__PutEventsResponse *resp = NULL;
        cebus_error err;
        int rc = h_put(c, bus, &ev, 1, &resp, &err);

        if (rc == 0)
            cebus__v1__put_events_response__free_unpacked(resp, NULL);
        h_event_free(ev);
        elapsed = h_now_ms() - start;
        if (rc == code)
            break;
        if (elapsed > limit_ms)
            fail_msg("PutEvents still %s after %lld ms, expected %s", cebus_status_name(rc),
                     (long long)elapsed, cebus_status_name(code));
        usleep(50 * 1000);
    }
    cebus_client_free(c);
    return elapsed;
}

/* Waits for the stream to end (events may still arrive first); fails
 * unless it ends with code within limit_ms. */
static void expect_stream_end(cebus_stream *s, int code, int limit_ms)
{
    int64_t start = h_now_ms();

    for (;;) {
        Cebus__V1__SubscribeResponse *m = NULL;
        cebus_error err;
        int r = cebus_stream_next(s, 100, &m, &err);

        if (r == 1) {
            cebus__v1__subscribe_response__free_unpacked(m, NULL);
        } else if (r < 0) {
            h_assert_status("stream end", err.code, &err, code, NULL);
            return;
        }
        if (h_now_ms() - start > limit_ms)
            fail_msg("stream still open after %d ms", limit_ms);
    }
}

/* A libpq connection to the env's database; fails the test on error. */
static PGconn *sql_connect(struct h_env *env)
{
    PGconn *c = PQconnectdb(env->db.conninfo);

    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect: %s", PQerrorMessage(c));
    return c;
}

/* The integer in the first cell of sql's result, with one text parameter. */
static long long sql_int(PGconn *c, const char *sql, const char *param)
{
    const char *params[1] = {param};
    PGresult *res = PQexecParams(c, sql, param ? 1 : 0, NULL, params, NULL, NULL, 0);
    long long v;

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        fail_msg("SQL failed: %s: %s", sql, PQerrorMessage(c));
    v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

/* ---- Tenants ---------------------------------------------------------------- */

/* GetTenant, ListTenants (paged) and UpdateTenant, each for the roles that
 * may and the roles that may not. */
static void test_tenants_get_list_update(void **state)
{
    struct h_env *env = *state;
    cebus_client *a_adm = cebus_client_new(env->srv[0].addr, A.admin_key);
    cebus_client *b_adm = cebus_client_new(env->srv[0].addr, B.admin_key);
    Cebus__V1__ListTenantsResponse *page = NULL;
    Cebus__V1__Tenant *t = NULL;
    cebus_error err, ghost;
    char token[256] = "", seen[1024] = "";
    int pages = 0;

    h_assert_status("platform GetTenant acme", get_tenant(env->admin, "acme", &t, &err), &err, 0,
                    NULL);
    assert_string_equal(t->name, "acme");
    assert_false(t->disabled);
    assert_non_null(t->create_time);
    cebus__v1__tenant__free_unpacked(t, NULL);
    h_assert_status("A admin GetTenant own", get_tenant(a_adm, "", &t, &err), &err, 0, NULL);
    assert_string_equal(t->name, "acme");
    cebus__v1__tenant__free_unpacked(t, NULL);

    /* Paging with one tenant a page visits each tenant once, in name order. */
    for (;;) {
        h_assert_status("ListTenants", list_tenants(env->admin, 1, token, &page, &err), &err, 0,
                        NULL);
        assert_true(page->n_tenants <= 1);
        for (size_t i = 0; i < page->n_tenants; i++) {
            strcat(seen, page->tenants[i]->name);
            strcat(seen, " ");
        }
        snprintf(token, sizeof token, "%s", page->next_page_token);
        cebus__v1__list_tenants_response__free_unpacked(page, NULL);
        assert_true(++pages < 50);
        if (!token[0])
            break;
    }
    assert_non_null(strstr(seen, "acme globex "));
    assert_non_null(strstr(seen, "platform "));
    h_assert_status("ListTenants bad token", list_tenants(env->admin, 1, "zz", &page, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "page_token");

    h_assert_status("A admin renames acme", update_tenant(a_adm, "acme", "Acme Inc.", -1, &t, &err),
                    &err, 0, NULL);
    assert_string_equal(t->display_name, "Acme Inc.");
    cebus__v1__tenant__free_unpacked(t, NULL);
    h_assert_status("GetTenant after rename", get_tenant(env->admin, "acme", &t, &err), &err, 0,
                    NULL);
    assert_string_equal(t->display_name, "Acme Inc.");
    cebus__v1__tenant__free_unpacked(t, NULL);
    h_assert_status("A admin disables acme", update_tenant(a_adm, "acme", NULL, 1, NULL, &err),
                    &err, GRPC_STATUS_PERMISSION_DENIED, NULL);
    h_assert_status("disable platform", update_tenant(env->admin, "platform", NULL, 1, NULL, &err),
                    &err, GRPC_STATUS_FAILED_PRECONDITION, NULL);
    h_assert_status("empty mask", update_tenant(env->admin, "acme", NULL, -1, NULL, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "update_mask");
    {
        Cebus__V1__UpdateTenantRequest req = CEBUS__V1__UPDATE_TENANT_REQUEST__INIT;
        Cebus__V1__Tenant tt = CEBUS__V1__TENANT__INIT;
        char *mask[1] = {"name"};
        tt.name = "acme";
        req.tenant = &tt;
        req.update_mask = mask;
        req.n_update_mask = 1;
        h_assert_status("mask name",
                        call(env->admin, "/cebus.v1.Admin/UpdateTenant", &req.base,
                             &cebus__v1__tenant__descriptor, NULL, &err),
                        &err, GRPC_STATUS_INVALID_ARGUMENT, "update_mask");
    }

    /* B's admin learns nothing about acme: the answers are a missing
     * tenant's. */
    h_assert_status("B GetTenant acme", get_tenant(b_adm, "acme", NULL, &err), &err,
                    GRPC_STATUS_NOT_FOUND, NULL);
    h_assert_status("B GetTenant ghost", get_tenant(b_adm, "ghost", NULL, &ghost), &ghost,
                    GRPC_STATUS_NOT_FOUND, NULL);
    assert_same_not_found(&err, "acme", &ghost, "ghost");
    h_assert_status("B UpdateTenant acme", update_tenant(b_adm, "acme", "pwned", -1, NULL, &err),
                    &err, GRPC_STATUS_NOT_FOUND, NULL);
    h_assert_status("B UpdateTenant ghost", update_tenant(b_adm, "ghost", "x", -1, NULL, &ghost),
                    &ghost, GRPC_STATUS_NOT_FOUND, NULL);
    assert_same_not_found(&err, "acme", &ghost, "ghost");
    h_assert_status("platform GetTenant ghost", get_tenant(env->admin, "ghost", NULL, &err), &err,
                    GRPC_STATUS_NOT_FOUND, NULL);

    cebus_client_free(a_adm);
    cebus_client_free(b_adm);
}

/* ---- The role matrix ---------------------------------------------------------- */

enum op {
    OP_GET_TENANT,
    OP_LIST_TENANTS,
    OP_UPDATE_TENANT,
    OP_DELETE_TENANT,
    OP_LIST_KEYS,
    OP_REVOKE_KEY,
    OP_GET_BUS,
    OP_UPDATE_BUS,
    OP_DELETE_BUS,
    OP_COUNT
};
static const char *const op_names[] = {"GetTenant",   "ListTenants",  "UpdateTenant",
                                       "DeleteTenant", "ListApiKeys", "RevokeApiKey",
                                       "GetBus",      "UpdateBus",    "DeleteBus"};

/* Runs op on the tenant `tenant` (its bus "orders", or for RevokeApiKey
 * the key id `key`). */
static int try_op(cebus_client *c, enum op op, const char *tenant, const char *key,
                  cebus_error *err)
{
    char ref[160];

    snprintf(ref, sizeof ref, "%s/orders", tenant);
    switch (op) {
    case OP_GET_TENANT:
        return get_tenant(c, tenant, NULL, err);
    case OP_LIST_TENANTS: {
        Cebus__V1__ListTenantsResponse *r = NULL;
        int rc = list_tenants(c, 0, "", &r, err);
        if (rc == 0)
            cebus__v1__list_tenants_response__free_unpacked(r, NULL);
        return rc;
    }
    case OP_UPDATE_TENANT:
        return update_tenant(c, tenant, "integration test tenant", -1, NULL, err);
    case OP_DELETE_TENANT:
        return delete_tenant(c, tenant, err);
    case OP_LIST_KEYS: {
        Cebus__V1__ListApiKeysResponse *r = NULL;
        int rc = list_keys(c, tenant, 0, "", &r, err);
        if (rc == 0)
            cebus__v1__list_api_keys_response__free_unpacked(r, NULL);
        return rc;
    }
    case OP_REVOKE_KEY:
        return revoke_key(c, key, err);
    case OP_GET_BUS:
        return get_bus(c, ref, NULL, err);
    case OP_UPDATE_BUS:
        return update_bus(c, tenant, "orders", 168, -1, NULL, err);
    case OP_DELETE_BUS:
        return delete_bus(c, ref, err);
    case OP_COUNT:
        break;
    }
    return -1;
}

/* Every new RPC on tenant A's resources, with the platform admin, A's
 * admin and each of B's keys: the expected status, and for each NOT_FOUND
 * the very message a missing tenant, bus or key gets. Calls that would
 * succeed and destroy A's resources are skipped (SKIP); the happy paths
 * have their own tests. */
static void test_role_matrix(void **state)
{
    struct h_env *env = *state;
    enum { OK = 0, NF = GRPC_STATUS_NOT_FOUND, PD = GRPC_STATUS_PERMISSION_DENIED, SKIP = -1 };
    static const int expect[OP_COUNT][5] = {
        /*                  platform A admin B admin B pub B sub */
        [OP_GET_TENANT] = {OK, OK, NF, PD, PD},
        [OP_LIST_TENANTS] = {OK, PD, PD, PD, PD},
        [OP_UPDATE_TENANT] = {OK, OK, NF, PD, PD},
        [OP_DELETE_TENANT] = {SKIP, PD, PD, PD, PD},
        [OP_LIST_KEYS] = {OK, OK, NF, PD, PD},
        [OP_REVOKE_KEY] = {SKIP, SKIP, NF, PD, PD},
        [OP_GET_BUS] = {OK, OK, NF, NF, NF},
        [OP_UPDATE_BUS] = {OK, OK, NF, PD, PD},
        [OP_DELETE_BUS] = {SKIP, SKIP, NF, PD, PD},
    };
    const char *who[5] = {"platform admin", "A tenant admin", "B tenant admin", "B publisher",
                          "B subscriber"};
    cebus_client *c[5];
    char a_pub_id[16];

    c[0] = env->admin;
    c[1] = cebus_client_new(env->srv[0].addr, A.admin_key);
    c[2] = cebus_client_new(env->srv[0].addr, B.admin_key);
    c[3] = cebus_client_new(env->srv[0].addr, B.publisher_key);
    c[4] = cebus_client_new(env->srv[0].addr, B.subscriber_key);
    key_id(A.publisher_key, a_pub_id);

    for (int op = 0; op < OP_COUNT; op++) {
        for (int k = 0; k < 5; k++) {
            cebus_error err, ghost;
            char what[128];
            int rc;

            if (expect[op][k] == SKIP)
                continue;
            snprintf(what, sizeof what, "%s by %s", op_names[op], who[k]);
            rc = try_op(c[k], (enum op)op, "acme", a_pub_id, &err);
            h_assert_status(what, rc, &err, expect[op][k], NULL);
            if (expect[op][k] != NF)
                continue;
            rc = try_op(c[k], (enum op)op, "ghost", "cb_ghost000", &ghost);
            h_assert_status(what, rc, &ghost, GRPC_STATUS_NOT_FOUND, NULL);
            if (op == OP_REVOKE_KEY)
                assert_same_not_found(&err, a_pub_id, &ghost, "cb_ghost000");
            else
                assert_same_not_found(&err, "acme", &ghost, "ghost");
        }
    }
    /* A's key still works: B's attempt revoked nothing. */
    wait_put_status(env->srv[0].addr, A.publisher_key, "orders", 0, 100);
    for (int k = 1; k < 5; k++)
        cebus_client_free(c[k]);
}

/* ---- API keys --------------------------------------------------------------- */

/* ListApiKeys shows every key of the tenant by id, never a secret, pages;
 * RevokeApiKey takes effect on new calls within the cache's second; the
 * last platform admin key cannot be revoked. */
static void test_api_keys_list_and_revoke(void **state)
{
    struct h_env *env = *state;
    cebus_client *a_adm = cebus_client_new(env->srv[0].addr, A.admin_key);
    cebus_client *a_pub = cebus_client_new(env->srv[0].addr, A.publisher_key);
    Cebus__V1__ListApiKeysResponse *page = NULL;
    char secret[160], id[16], token[256] = "", admin2[160], admin2_id[16], env_id[32] = "";
    cebus_error err;
    size_t total = 0, platform_admins = 0;
    bool found = false;
    int64_t took;

    assert_int_equal(h_key_create(a_adm, NULL, CEBUS__V1__ROLE__ROLE_PUBLISHER, secret,
                                  sizeof secret, &err),
                     0);
    key_id(secret, id);

    for (int pages = 0;; pages++) {
        uint8_t buf[8192];
        size_t len;

        assert_true(pages < 20);
        h_assert_status("A ListApiKeys", list_keys(a_adm, "", 1, token, &page, &err), &err, 0,
                        NULL);
        /* No part of any secret beyond the id is ever on the wire. */
        len = cebus__v1__list_api_keys_response__get_packed_size(page);
        assert_true(len < sizeof buf);
        cebus__v1__list_api_keys_response__pack(page, buf);
        assert_null(memmem(buf, len, secret + 12, 16));
        assert_null(memmem(buf, len, A.admin_key + 12, 16));
        for (size_t i = 0; i < page->n_keys; i++) {
            assert_string_equal(page->keys[i]->tenant, "acme");
            assert_true(strlen(page->keys[i]->id) <= 11);
            if (strcmp(page->keys[i]->id, id) == 0) {
                found = true;
                assert_int_equal(page->keys[i]->role, CEBUS__V1__ROLE__ROLE_PUBLISHER);
                assert_false(page->keys[i]->revoked);
                assert_non_null(page->keys[i]->create_time);
            }
        }
        total += page->n_keys;
        snprintf(token, sizeof token, "%s", page->next_page_token);
        cebus__v1__list_api_keys_response__free_unpacked(page, NULL);
        if (!token[0])
            break;
    }
    assert_true(found);
    assert_true(total >= 4); /* admin, publisher, subscriber, the new one */

    /* Publishers may not list or revoke. */
    h_assert_status("publisher ListApiKeys", list_keys(a_pub, "", 0, "", &page, &err), &err,
                    GRPC_STATUS_PERMISSION_DENIED, NULL);
    h_assert_status("publisher RevokeApiKey", revoke_key(a_pub, id, &err), &err,
                    GRPC_STATUS_PERMISSION_DENIED, NULL);
    h_assert_status("RevokeApiKey empty id", revoke_key(a_adm, "", &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "id");

    /* Revocation: the key works; right after the revoke, the server that
     * did it refuses its very next call (it clears its caches); other
     * servers follow within their cache's second (revocation_reaches_replica). */
    wait_put_status(env->srv[0].addr, secret, "orders", 0, 100);
    h_assert_status("A admin revokes", revoke_key(a_adm, id, &err), &err, 0, NULL);
    took = wait_put_status(env->srv[0].addr, secret, "orders", GRPC_STATUS_UNAUTHENTICATED, 0);
    print_message("revoked key refused after %lld ms\n", (long long)took);
    h_assert_status("revoke again", revoke_key(a_adm, id, &err), &err, 0, NULL);
    h_assert_status("ListApiKeys after revoke", list_keys(a_adm, "", 0, "", &page, &err), &err, 0,
                    NULL);
    for (size_t i = 0; i < page->n_keys; i++)
        if (strcmp(page->keys[i]->id, id) == 0)
            assert_true(page->keys[i]->revoked);
    cebus__v1__list_api_keys_response__free_unpacked(page, NULL);

    /* The platform admin key of the environment is the only one: it cannot
     * be revoked, until there is another. */
    h_assert_status("platform ListApiKeys", list_keys(env->admin, "", 0, "", &page, &err), &err,
                    0, NULL);
    for (size_t i = 0; i < page->n_keys; i++) {
        assert_string_equal(page->keys[i]->tenant, "platform");
        if (page->keys[i]->role == CEBUS__V1__ROLE__ROLE_PLATFORM_ADMIN &&
            !page->keys[i]->revoked) {
            platform_admins++;
            snprintf(env_id, sizeof env_id, "%s", page->keys[i]->id);
        }
    }
    cebus__v1__list_api_keys_response__free_unpacked(page, NULL);
    assert_int_equal(platform_admins, 1);
    h_assert_status("revoke the last platform admin key", revoke_key(env->admin, env_id, &err),
                    &err, GRPC_STATUS_FAILED_PRECONDITION, NULL);
    assert_int_equal(h_key_create(env->admin, NULL, CEBUS__V1__ROLE__ROLE_PLATFORM_ADMIN, admin2,
                                  sizeof admin2, &err),
                     0);
    key_id(admin2, admin2_id);
    h_assert_status("revoke a second platform admin key", revoke_key(env->admin, admin2_id, &err),
                    &err, 0, NULL);
    h_assert_status("revoke the last again", revoke_key(env->admin, env_id, &err), &err,
                    GRPC_STATUS_FAILED_PRECONDITION, NULL);
    /* A tenant admin cannot reach the platform's keys at all; the platform
     * tenant's own tenant admin sees them but may not revoke them. */
    h_assert_status("A admin revokes a platform key", revoke_key(a_adm, env_id, &err), &err,
                    GRPC_STATUS_NOT_FOUND, NULL);
    {
        char p_adm_key[160];
        cebus_client *p_adm;
        assert_int_equal(h_key_create(env->admin, NULL, CEBUS__V1__ROLE__ROLE_TENANT_ADMIN,
                                      p_adm_key, sizeof p_adm_key, &err),
                         0);
        p_adm = cebus_client_new(env->srv[0].addr, p_adm_key);
        h_assert_status("platform tenant admin revokes a platform admin key",
                        revoke_key(p_adm, env_id, &err), &err, GRPC_STATUS_PERMISSION_DENIED,
                        NULL);
        cebus_client_free(p_adm);
    }

    cebus_client_free(a_adm);
    cebus_client_free(a_pub);
}

/* An open stream of a revoked key ends with UNAUTHENTICATED within about a
 * second; another key's stream on the same bus goes on. */
static void test_revocation_ends_open_stream(void **state)
{
    struct h_env *env = *state;
    cebus_client *a_adm = cebus_client_new(env->srv[0].addr, A.admin_key);
    cebus_client *a_pub = cebus_client_new(env->srv[0].addr, A.publisher_key);
    cebus_client *a_sub = cebus_client_new(env->srv[0].addr, A.subscriber_key);
    cebus_client *doomed;
    cebus_stream *s, *keep;
    char secret[160], id[16];
    cebus_error err;
    int64_t start;

    assert_int_equal(h_key_create(a_adm, NULL, CEBUS__V1__ROLE__ROLE_SUBSCRIBER, secret,
                                  sizeof secret, &err),
                     0);
    key_id(secret, id);
    doomed = cebus_client_new(env->srv[0].addr, secret);
    s = h_subscribe_ok(doomed, "orders", "{}", CEBUS__V1__START_POSITION__START_POSITION_LATEST, 0);
    keep = h_subscribe_ok(a_sub, "orders", "{}", CEBUS__V1__START_POSITION__START_POSITION_LATEST,
                          0);
    h_stream_sync_ok(a_pub, "orders", s);
    h_stream_sync_ok(a_pub, "orders", keep);

    start = h_now_ms();
    h_assert_status("revoke", revoke_key(a_adm, id, &err), &err, 0, NULL);
    expect_stream_end(s, GRPC_STATUS_UNAUTHENTICATED, STREAM_END_LIMIT_MS);
    print_message("revoked key's stream ended after %lld ms\n", (long long)(h_now_ms() - start));
    h_stream_sync_ok(a_pub, "orders", keep);

    cebus_stream_close(s);
    cebus_stream_close(keep);
    cebus_client_free(doomed);
    cebus_client_free(a_adm);
    cebus_client_free(a_pub);
    cebus_client_free(a_sub);
}

/* Creates a key of role for A that expires at the whole second at_s;
 * copies its secret into out. */
static void expiring_key(cebus_client *a_adm, Cebus__V1__Role role, int64_t at_s, char *out,
                         size_t size)
{
    Cebus__V1__CreateApiKeyRequest req = CEBUS__V1__CREATE_API_KEY_REQUEST__INIT;
    Cebus__V1__CreateApiKeyResponse *resp = NULL;
    Google__Protobuf__Timestamp at = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    cebus_error err;

    at.seconds = at_s;
    req.role = role;
    req.description = "expires soon";
    req.expire_time = &at;
    h_assert_status("CreateApiKey", cebus_create_api_key(a_adm, &req, &resp, &err), &err, 0,
                    NULL);
    assert_non_null(resp->key->expire_time);
    assert_int_equal(resp->key->expire_time->seconds, at_s);
    snprintf(out, size, "%s", resp->secret);
    cebus__v1__create_api_key_response__free_unpacked(resp, NULL);
}

/* Keys created with an expiry work until then; after it, new calls are
 * UNAUTHENTICATED and an open stream ends the same way, like a revoked
 * key's, while the tenant's other keys go on. */
static void test_expiring_key(void **state)
{
    struct h_env *env = *state;
    cebus_client *a_adm = cebus_client_new(env->srv[0].addr, A.admin_key);
    cebus_client *a_pub = cebus_client_new(env->srv[0].addr, A.publisher_key);
    cebus_client *pub, *sub;
    char pub_key[160], sub_key[160];
    int64_t at_s = (int64_t)time(NULL) + 4;
    cebus_stream *s;

    expiring_key(a_adm, CEBUS__V1__ROLE__ROLE_PUBLISHER, at_s, pub_key, sizeof pub_key);
    expiring_key(a_adm, CEBUS__V1__ROLE__ROLE_SUBSCRIBER, at_s, sub_key, sizeof sub_key);
    pub = cebus_client_new(env->srv[0].addr, pub_key);
    sub = cebus_client_new(env->srv[0].addr, sub_key);
    s = h_subscribe_ok(sub, "orders", "{}", CEBUS__V1__START_POSITION__START_POSITION_LATEST, 0);
    h_stream_sync_ok(a_pub, "orders", s);
    h_put_one_ok(pub, "orders", "before-expiry", "t", NULL);

    while ((int64_t)time(NULL) < at_s)
        usleep(100 * 1000);
    wait_put_status(env->srv[0].addr, pub_key, "orders", GRPC_STATUS_UNAUTHENTICATED,
                    NEW_CALL_LIMIT_MS);
    expect_stream_end(s, GRPC_STATUS_UNAUTHENTICATED, STREAM_END_LIMIT_MS);
    h_put_one_ok(a_pub, "orders", "after-expiry", "t", NULL);

    cebus_stream_close(s);
    cebus_client_free(pub);
    cebus_client_free(sub);
    cebus_client_free(a_adm);
    cebus_client_free(a_pub);
}

/* Disabling a tenant stops its keys on new calls within about a second and
 * ends its open streams with UNAUTHENTICATED; enabling it again restores
 * the keys. */
static void test_tenant_disable(void **state)
{
    struct h_env *env = *state;
    struct h_tenant T;
    cebus_client *t_pub, *t_sub;
    cebus_stream *s;
    cebus_error err;
    Cebus__V1__Tenant *t = NULL;
    int64_t took;

    h_tenant_create_ok(env->admin, "initech", "tps", &T);
    t_pub = cebus_client_new(env->srv[0].addr, T.publisher_key);
    t_sub = cebus_client_new(env->srv[0].addr, T.subscriber_key);
    s = h_subscribe_ok(t_sub, "tps", "{}", CEBUS__V1__START_POSITION__START_POSITION_LATEST, 0);
    h_stream_sync_ok(t_pub, "tps", s);

    h_assert_status("disable", update_tenant(env->admin, "initech", NULL, 1, &t, &err), &err, 0,
                    NULL);
    assert_true(t->disabled);
    cebus__v1__tenant__free_unpacked(t, NULL);
    took = wait_put_status(env->srv[0].addr, T.publisher_key, "tps", GRPC_STATUS_UNAUTHENTICATED,
                           NEW_CALL_LIMIT_MS);
    print_message("disabled tenant's key refused after %lld ms\n", (long long)took);
    expect_stream_end(s, GRPC_STATUS_UNAUTHENTICATED, STREAM_END_LIMIT_MS);
    cebus_stream_close(s);

    h_assert_status("enable", update_tenant(env->admin, "initech", NULL, 0, NULL, &err), &err, 0,
                    NULL);
    wait_put_status(env->srv[0].addr, T.publisher_key, "tps", 0, NEW_CALL_LIMIT_MS);
    cebus_client_free(t_pub);
    cebus_client_free(t_sub);
}

/* ---- Buses ---------------------------------------------------------------- */

/* GetBus and UpdateBus with CreateBus's bounds; DeleteBus removes the bus,
 * its rules, events and dedup rows, and ends its open streams with
 * NOT_FOUND. */
static void test_buses_get_update_delete(void **state)
{
    struct h_env *env = *state;
    cebus_client *a_adm = cebus_client_new(env->srv[0].addr, A.admin_key);
    cebus_client *a_pub = cebus_client_new(env->srv[0].addr, A.publisher_key);
    cebus_client *a_sub = cebus_client_new(env->srv[0].addr, A.subscriber_key);
    Cebus__V1__Bus *b = NULL;
    cebus_stream *s;
    cebus_error err;
    PGconn *pg = sql_connect(env);
    char bus_id[32];
    int64_t start;

    h_assert_status("CreateBus tmp", h_bus_create(a_adm, NULL, "tmp", &err), &err, 0, NULL);
    h_assert_status("GetBus", get_bus(a_sub, "tmp", &b, &err), &err, 0, NULL);
    assert_string_equal(b->tenant, "acme");
    assert_string_equal(b->name, "tmp");
    assert_int_equal(b->retention_hours, 168);
    assert_int_equal(b->dedup_window_seconds, 300);
    cebus__v1__bus__free_unpacked(b, NULL);

    h_assert_status("UpdateBus", update_bus(a_adm, "", "tmp", 48, 60, &b, &err), &err, 0, NULL);
    assert_int_equal(b->retention_hours, 48);
    assert_int_equal(b->dedup_window_seconds, 60);
    cebus__v1__bus__free_unpacked(b, NULL);
    h_assert_status("UpdateBus retention only", update_bus(env->admin, "acme", "tmp", 72, -1, &b,
                                                           &err),
                    &err, 0, NULL);
    assert_int_equal(b->retention_hours, 72);
    assert_int_equal(b->dedup_window_seconds, 60);
    cebus__v1__bus__free_unpacked(b, NULL);
    h_assert_status("GetBus sees the update", get_bus(env->admin, "acme/tmp", &b, &err), &err, 0,
                    NULL);
    assert_int_equal(b->retention_hours, 72);
    cebus__v1__bus__free_unpacked(b, NULL);
    h_assert_status("retention too long", update_bus(a_adm, "", "tmp", 87601, -1, NULL, &err),
                    &err, GRPC_STATUS_INVALID_ARGUMENT, "retention_hours");
    h_assert_status("dedup too long", update_bus(a_adm, "", "tmp", -1, 86401, NULL, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "dedup_window_seconds");
    h_assert_status("empty mask", update_bus(a_adm, "", "tmp", -1, -1, NULL, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "update_mask");
    h_assert_status("UpdateBus ghost", update_bus(a_adm, "", "ghost", 1, -1, NULL, &err), &err,
                    GRPC_STATUS_NOT_FOUND, NULL);

    /* A rule with a subscription, events (with dedup rows) and a stream. */
    create_rule_ok(a_adm, "tmp");
    assert_true(sql_int(pg, "SELECT count(*) FROM targets WHERE subscription = $1", "sub1") > 0);
    s = h_subscribe_ok(a_sub, "tmp", "{}", CEBUS__V1__START_POSITION__START_POSITION_LATEST, 0);
    h_stream_sync_ok(a_pub, "tmp", s);
    snprintf(bus_id, sizeof bus_id, "%lld",
             sql_int(pg,
                     "SELECT b.id FROM buses b JOIN tenants t ON t.id = b.tenant_id"
                     " WHERE t.name = 'acme' AND b.name = $1",
                     "tmp"));
    assert_true(sql_int(pg, "SELECT count(*) FROM events WHERE bus_id = $1::bigint", bus_id) > 0);
    assert_true(sql_int(pg, "SELECT count(*) FROM event_dedup WHERE bus_id = $1::bigint", bus_id) >
                0);

    start = h_now_ms();
    h_assert_status("DeleteBus", delete_bus(a_adm, "tmp", &err), &err, 0, NULL);
    expect_stream_end(s, GRPC_STATUS_NOT_FOUND, STREAM_END_LIMIT_MS);
    print_message("deleted bus's stream ended after %lld ms\n", (long long)(h_now_ms() - start));
    cebus_stream_close(s);

    h_assert_status("GetBus after delete", get_bus(a_adm, "tmp", NULL, &err), &err,
                    GRPC_STATUS_NOT_FOUND, NULL);
    h_assert_status("DeleteBus again", delete_bus(a_adm, "tmp", &err), &err,
                    GRPC_STATUS_NOT_FOUND, NULL);
    assert_int_equal(sql_int(pg, "SELECT count(*) FROM buses WHERE id = $1::bigint", bus_id), 0);
    assert_int_equal(sql_int(pg, "SELECT count(*) FROM rules WHERE bus_id = $1::bigint", bus_id),
                     0);
    assert_int_equal(sql_int(pg, "SELECT count(*) FROM targets WHERE bus_id = $1::bigint", bus_id),
                     0);
    assert_int_equal(sql_int(pg, "SELECT count(*) FROM events WHERE bus_id = $1::bigint", bus_id),
                     0);
    assert_int_equal(
        sql_int(pg, "SELECT count(*) FROM event_dedup WHERE bus_id = $1::bigint", bus_id), 0);
    /* A bus of the same name can be created again, empty. */
    h_assert_status("CreateBus tmp again", h_bus_create(a_adm, NULL, "tmp", &err), &err, 0, NULL);
    h_assert_status("DeleteBus tmp again", delete_bus(env->admin, "acme/tmp", &err), &err, 0,
                    NULL);

    PQfinish(pg);
    cebus_client_free(a_adm);
    cebus_client_free(a_pub);
    cebus_client_free(a_sub);
}

/* DeleteTenant: only the platform admin, never "platform"; it removes the
 * tenant's keys, buses, rules, targets, events and dedup rows (checked by
 * SQL), and its open streams end with UNAUTHENTICATED. */
static void test_delete_tenant(void **state)
{
    struct h_env *env = *state;
    struct h_tenant T;
    cebus_client *t_adm, *t_pub, *t_sub, *b_adm;
    cebus_stream *s;
    cebus_error err, ghost;
    PGconn *pg = sql_connect(env);
    char tid[32];

    h_tenant_create_ok(env->admin, "doomed", "ledger", &T);
    t_adm = cebus_client_new(env->srv[0].addr, T.admin_key);
    t_pub = cebus_client_new(env->srv[0].addr, T.publisher_key);
    t_sub = cebus_client_new(env->srv[0].addr, T.subscriber_key);
    b_adm = cebus_client_new(env->srv[0].addr, B.admin_key);
    h_assert_status("second bus", h_bus_create(t_adm, NULL, "audit", &err), &err, 0, NULL);
    create_rule_ok(t_adm, "ledger");
    h_put_one_ok(t_pub, "audit", "a1", "t", NULL);
    s = h_subscribe_ok(t_sub, "ledger", "{}", CEBUS__V1__START_POSITION__START_POSITION_LATEST, 0);
    h_stream_sync_ok(t_pub, "ledger", s);
    snprintf(tid, sizeof tid, "%lld",
             sql_int(pg, "SELECT id FROM tenants WHERE name = $1", "doomed"));

    h_assert_status("tenant admin deletes itself", delete_tenant(t_adm, "doomed", &err), &err,
                    GRPC_STATUS_PERMISSION_DENIED, NULL);
    h_assert_status("B admin deletes doomed", delete_tenant(b_adm, "doomed", &err), &err,
                    GRPC_STATUS_PERMISSION_DENIED, NULL);
    h_assert_status("delete platform", delete_tenant(env->admin, "platform", &err), &err,
                    GRPC_STATUS_FAILED_PRECONDITION, NULL);
    h_assert_status("delete ghost", delete_tenant(env->admin, "ghost", &ghost), &ghost,
                    GRPC_STATUS_NOT_FOUND, NULL);

    h_assert_status("DeleteTenant", delete_tenant(env->admin, "doomed", &err), &err, 0, NULL);
    expect_stream_end(s, GRPC_STATUS_UNAUTHENTICATED, STREAM_END_LIMIT_MS);
    cebus_stream_close(s);

    /* Through the API: gone, and its keys with it. */
    h_assert_status("GetTenant doomed", get_tenant(env->admin, "doomed", NULL, &err), &err,
                    GRPC_STATUS_NOT_FOUND, NULL);
    assert_same_not_found(&err, "doomed", &ghost, "ghost");
    h_assert_status("DeleteTenant again", delete_tenant(env->admin, "doomed", &err), &err,
                    GRPC_STATUS_NOT_FOUND, NULL);
    h_assert_status("GetBus doomed/ledger", get_bus(env->admin, "doomed/ledger", NULL, &err), &err,
                    GRPC_STATUS_NOT_FOUND, NULL);
    wait_put_status(env->srv[0].addr, T.publisher_key, "ledger", GRPC_STATUS_UNAUTHENTICATED,
                    NEW_CALL_LIMIT_MS);

    /* By SQL: no row of it remains anywhere. */
    assert_int_equal(sql_int(pg, "SELECT count(*) FROM tenants WHERE id = $1::bigint", tid), 0);
    assert_int_equal(sql_int(pg, "SELECT count(*) FROM api_keys WHERE tenant_id = $1::bigint", tid),
                     0);
    assert_int_equal(sql_int(pg, "SELECT count(*) FROM buses WHERE tenant_id = $1::bigint", tid),
                     0);
    assert_int_equal(sql_int(pg, "SELECT count(*) FROM rules r WHERE NOT EXISTS"
                                 " (SELECT 1 FROM buses b WHERE b.id = r.bus_id)", NULL),
                     0);
    assert_int_equal(sql_int(pg, "SELECT count(*) FROM targets g WHERE NOT EXISTS"
                                 " (SELECT 1 FROM buses b WHERE b.id = g.bus_id)", NULL),
                     0);
    assert_int_equal(sql_int(pg, "SELECT count(*) FROM events e WHERE NOT EXISTS"
                                 " (SELECT 1 FROM buses b WHERE b.id = e.bus_id)", NULL),
                     0);
    assert_int_equal(sql_int(pg, "SELECT count(*) FROM event_dedup d WHERE NOT EXISTS"
                                 " (SELECT 1 FROM buses b WHERE b.id = d.bus_id)", NULL),
                     0);
    /* The other tenants are untouched. */
    wait_put_status(env->srv[0].addr, A.publisher_key, "orders", 0, 100);
    wait_put_status(env->srv[0].addr, B.publisher_key, "orders", 0, 100);

    PQfinish(pg);
    cebus_client_free(t_adm);
    cebus_client_free(t_pub);
    cebus_client_free(t_sub);
    cebus_client_free(b_adm);
}

/* Undecodable request bytes and oversize or malformed names are
 * INVALID_ARGUMENT for every new method, before anything is looked up. */
static void test_malformed_requests(void **state)
{
    struct h_env *env = *state;
    static const char *const methods[] = {
        "GetTenant", "ListTenants", "UpdateTenant", "DeleteTenant", "ListApiKeys",
        "RevokeApiKey", "GetBus", "UpdateBus", "DeleteBus",
    };
    static const unsigned char garbage[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f};
    char long_name[300];
    cebus_error err;

    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        char path[64];
        snprintf(path, sizeof path, "/cebus.v1.Admin/%s", methods[i]);
        h_assert_status(path,
                        h_call_raw(env->srv[0].addr, H_ADMIN_KEY, path, garbage, sizeof garbage,
                                   10000, NULL, &err),
                        &err, GRPC_STATUS_INVALID_ARGUMENT, "request");
    }
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    h_assert_status("RevokeApiKey long id", revoke_key(env->admin, long_name, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "id");
    h_assert_status("RevokeApiKey bad id", revoke_key(env->admin, "cb_x;drop", &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "id");
    h_assert_status("GetTenant long name", get_tenant(env->admin, long_name, NULL, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, NULL);
    h_assert_status("DeleteTenant bad name", delete_tenant(env->admin, "../etc", &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "name");
    h_assert_status("UpdateBus long tenant",
                    update_bus(env->admin, long_name, "orders", 1, -1, NULL, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, NULL);
    h_assert_status("GetBus empty", get_bus(env->admin, "", NULL, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "bus");
    h_assert_status("ListApiKeys bad token",
                    list_keys(env->admin, "", 0, "not-a-token", NULL, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "page_token");
}

/* A revocation made through one server reaches a replica: its new calls
 * within the cache's second, its open stream at its next check. */
static void test_revocation_reaches_replica(void **state)
{
    struct h_env *env = *state;
    int r = h_env_add_server_ok(env, NULL);
    cebus_client *a_adm = cebus_client_new(env->srv[0].addr, A.admin_key);
    cebus_client *a_pub = cebus_client_new(env->srv[r].addr, A.publisher_key);
    cebus_client *doomed;
    cebus_stream *s;
    char secret[160], id[16];
    cebus_error err;
    int64_t start;

    assert_int_equal(h_key_create(a_adm, NULL, CEBUS__V1__ROLE__ROLE_TENANT_ADMIN, secret,
                                  sizeof secret, &err),
                     0);
    key_id(secret, id);
    doomed = cebus_client_new(env->srv[r].addr, secret);
    s = h_subscribe_ok(doomed, "orders", "{}", CEBUS__V1__START_POSITION__START_POSITION_LATEST, 0);
    h_stream_sync_ok(a_pub, "orders", s);
    wait_put_status(env->srv[r].addr, secret, "orders", 0, 100);

    start = h_now_ms();
    h_assert_status("revoke on server 0", revoke_key(a_adm, id, &err), &err, 0, NULL);
    wait_put_status(env->srv[r].addr, secret, "orders", GRPC_STATUS_UNAUTHENTICATED,
                    NEW_CALL_LIMIT_MS);
    expect_stream_end(s, GRPC_STATUS_UNAUTHENTICATED, STREAM_END_LIMIT_MS);
    print_message("replica: revoked key's stream ended after %lld ms\n",
                  (long long)(h_now_ms() - start));

    cebus_stream_close(s);
    cebus_client_free(doomed);
    cebus_client_free(a_adm);
    cebus_client_free(a_pub);
}

/* ---- CLI ---------------------------------------------------------------- */

static void cli_ok(struct h_env *env, const char *key, const char *const *args, const char *expect,
                   struct h_cli_result *r)
{
    h_cli_run(env->srv[0].addr, key, NULL, 30000, args, r);
    if (r->exit_code != 0)
        fail_msg("cebus %s %s: exit %d: %s", args[0], args[1] ? args[1] : "", r->exit_code,
                 r->err);
    if (expect && !strstr(r->out, expect))
        fail_msg("cebus %s %s: no \"%s\" in: %s", args[0], args[1] ? args[1] : "", expect, r->out);
}

/* Each new command works against the server, prints JSON, and has --help. */
static void test_cli_admin_commands(void **state)
{
    struct h_env *env = *state;
    static const char *const cmds[][2] = {
        {"tenant", "get"}, {"tenant", "list"}, {"tenant", "update"}, {"tenant", "delete"},
        {"key", "list"},   {"key", "revoke"},  {"bus", "get"},       {"bus", "update"},
        {"bus", "delete"},
    };
    struct h_cli_result r;
    char secret[160], id[16];
    cebus_error err;

    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        const char *args[] = {cmds[i][0], cmds[i][1], "--help", NULL};
        h_cli_run(env->srv[0].addr, NULL, NULL, 30000, args, &r);
        assert_int_equal(r.exit_code, 0);
        assert_non_null(strstr(r.out, "usage: cebus"));
        h_cli_result_free(&r);
    }

    {
        const char *args[] = {"tenant", "get", "acme", NULL};
        cli_ok(env, H_ADMIN_KEY, args, "\"name\":\"acme\"", &r);
        h_cli_result_free(&r);
    }
    {
        const char *args[] = {"tenant", "list", NULL};
        cli_ok(env, H_ADMIN_KEY, args, "\"name\":\"globex\"", &r);
        h_cli_result_free(&r);
    }
    {
        const char *args[] = {"tenant", "update", "globex", "--display-name", "Globex Corp", NULL};
        cli_ok(env, H_ADMIN_KEY, args, "Globex Corp", &r);
        h_cli_result_free(&r);
    }
    {
        const char *args[] = {"tenant", "update", "globex", NULL};
        h_cli_run(env->srv[0].addr, H_ADMIN_KEY, NULL, 30000, args, &r);
        assert_int_equal(r.exit_code, 2);
        h_cli_result_free(&r);
    }
    {
        const char *args[] = {"tenant", "create", "cli-tenant", NULL};
        cli_ok(env, H_ADMIN_KEY, args, NULL, &r);
        h_cli_result_free(&r);
    }
    {
        const char *args[] = {"tenant", "delete", "cli-tenant", NULL};
        cli_ok(env, H_ADMIN_KEY, args, NULL, &r);
        h_cli_result_free(&r);
        h_cli_run(env->srv[0].addr, H_ADMIN_KEY, NULL, 30000, args, &r);
        assert_int_equal(r.exit_code, 1);
        assert_non_null(strstr(r.err, "NOT_FOUND"));
        h_cli_result_free(&r);
    }

    assert_int_equal(h_key_create(env->admin, "globex", CEBUS__V1__ROLE__ROLE_SUBSCRIBER, secret,
                                  sizeof secret, &err),
                     0);
    key_id(secret, id);
    {
        const char *args[] = {"key", "list", "--tenant", "globex", NULL};
        cli_ok(env, H_ADMIN_KEY, args, id, &r);
        assert_null(strstr(r.out, secret + 12));
        h_cli_result_free(&r);
    }
    {
        const char *args[] = {"key", "revoke", id, NULL};
        cli_ok(env, B.admin_key, args, NULL, &r);
        h_cli_result_free(&r);
    }

    {
        const char *args[] = {"bus", "create", "cli-bus", NULL};
        cli_ok(env, B.admin_key, args, NULL, &r);
        h_cli_result_free(&r);
    }
    {
        const char *args[] = {"bus", "get", "globex/cli-bus", NULL};
        cli_ok(env, H_ADMIN_KEY, args, "\"name\":\"cli-bus\"", &r);
        h_cli_result_free(&r);
    }
    {
        const char *args[] = {"bus", "update", "cli-bus", "--tenant", "globex", "--retention-hours",
                              "24", NULL};
        cli_ok(env, H_ADMIN_KEY, args, "\"retention_hours\":24", &r);
        h_cli_result_free(&r);
    }
    {
        const char *args[] = {"bus", "delete", "cli-bus", NULL};
        cli_ok(env, B.admin_key, args, NULL, &r);
        h_cli_result_free(&r);
    }
    {
        const char *args[] = {"bus", "get", "cli-bus", NULL};
        h_cli_run(env->srv[0].addr, B.admin_key, NULL, 30000, args, &r);
        assert_int_equal(r.exit_code, 1);
        assert_non_null(strstr(r.err, "NOT_FOUND"));
        h_cli_result_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tenants_get_list_update),
        cmocka_unit_test(test_role_matrix),
        cmocka_unit_test(test_api_keys_list_and_revoke),
        cmocka_unit_test(test_revocation_ends_open_stream),
        cmocka_unit_test(test_expiring_key),
        cmocka_unit_test(test_tenant_disable),
        cmocka_unit_test(test_buses_get_update_delete),
        cmocka_unit_test(test_delete_tenant),
        cmocka_unit_test(test_cli_admin_commands),
        cmocka_unit_test(test_malformed_requests),
        cmocka_unit_test(test_revocation_reaches_replica),
    };

    return cmocka_run_group_tests(tests, group_setup, h_env_teardown);
}
