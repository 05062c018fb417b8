/* The Admin service: tenants (create, get, list, update, delete), API keys
 * (create, list, revoke) and buses (create, get, list, update, delete). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cebus/v1/admin.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "log.h"
#include "rpc.h"
#include "util.h"

/* Limits, documented in README.md. */
#define MAX_DISPLAY_NAME 256
#define MAX_KEY_DESCRIPTION 256
#define DEFAULT_RETENTION_HOURS 168
#define MAX_RETENTION_HOURS 87600
#define DEFAULT_DEDUP_SECONDS 300
#define MAX_DEDUP_SECONDS 86400

/* Any grant lets its holder GetBus the granted bus. */
#define GRANTEE_READ_PERMS                                                                     \
    (EB_PERMS(EB_PERMISSION_PUBLISH) | EB_PERMS(EB_PERMISSION_SUBSCRIBE) |                     \
     EB_PERMS(EB_PERMISSION_MANAGE_RULES))

static const char *name_rule = "1 to 64 of [A-Za-z0-9._-], starting with a letter or digit";

/* Resolves the tenant a request names ("" = the caller's). Another tenant
 * is reachable by the platform admin only; for anyone else it does not
 * exist. Fails the call and returns false on error. */
static bool target_tenant(struct eb_rpc *rpc, const char *name, struct eb_tenant_rec *t)
{
    eb_status st;

    if (!name[0] || strcmp(name, rpc->who.tenant) == 0) {
        memset(t, 0, sizeof *t);
        t->id = rpc->who.tenant_id;
        eb_strlcpy(t->name, rpc->who.tenant, sizeof t->name);
        return true;
    }
    if (!eb_name_valid(name)) {
        eb_rpc_fail(rpc, EB_EINVAL, "tenant: %s", name_rule);
        return false;
    }
    if (rpc->who.role != EB_ROLE_PLATFORM_ADMIN) {
        eb_rpc_fail(rpc, EB_ENOTFOUND, "tenant: no tenant \"%s\"", name);
        return false;
    }
    st = eb_store_tenant_get(rpc->db, name, t);
    if (st == EB_ENOTFOUND) {
        eb_rpc_fail(rpc, st, "tenant: no tenant \"%s\"", name);
        return false;
    }
    if (st) {
        eb_rpc_fail_store(rpc, st, "tenant");
        return false;
    }
    return true;
}

void eb_rpc_create_tenant(struct eb_rpc *rpc)
{
    Cebus__V1__CreateTenantRequest *req;
    Cebus__V1__Tenant resp = CEBUS__V1__TENANT__INIT;
    Google__Protobuf__Timestamp created;
    struct eb_tenant_rec t;
    eb_status st;

    st = eb_auth_require(&rpc->who, EB_ROLES(EB_ROLE_PLATFORM_ADMIN), "create tenants",
                         rpc->err, sizeof rpc->err);
    if (st) {
        eb_rpc_fail(rpc, st, "%s", rpc->err);
        return;
    }
    req = cebus__v1__create_tenant_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid CreateTenantRequest message");
        return;
    }
    if (!eb_name_valid(req->name)) {
        eb_rpc_fail(rpc, EB_EINVAL, "name: %s", name_rule);
        goto out;
    }
    if (strlen(req->display_name) > MAX_DISPLAY_NAME ||
        !eb_utf8_valid(req->display_name, strlen(req->display_name))) {
        eb_rpc_fail(rpc, EB_EINVAL, "display_name: at most %d bytes of UTF-8", MAX_DISPLAY_NAME);
        goto out;
    }
    st = eb_store_tenant_insert(rpc->db, req->name, req->display_name, &t);
    if (st == EB_EEXIST) {
        eb_rpc_fail(rpc, st, "name: tenant \"%s\" already exists", req->name);
        goto out;
    }
    if (st) {
        eb_rpc_fail_store(rpc, st, "tenant");
        goto out;
    }
    eb_log_info("msg=\"tenant created\" tenant=%s by=%s", t.name, rpc->who.key_prefix);
    resp.name = t.name;
    resp.display_name = t.display_name;
    resp.disabled = t.disabled;
    eb_rpc_timestamp(&created, t.created_us);
    resp.create_time = &created;
    eb_rpc_reply(rpc, &resp.base);
out:
    cebus__v1__create_tenant_request__free_unpacked(req, NULL);
}

void eb_rpc_create_api_key(struct eb_rpc *rpc)
{
    Cebus__V1__CreateApiKeyRequest *req;
    Cebus__V1__CreateApiKeyResponse resp = CEBUS__V1__CREATE_API_KEY_RESPONSE__INIT;
    Cebus__V1__ApiKey key = CEBUS__V1__API_KEY__INIT;
    Google__Protobuf__Timestamp created;
    struct eb_tenant_rec t;
    char secret[EB_KEY_LEN + 1], prefix[EB_KEY_PREFIX_LEN + 1];
    uint8_t hash[32];
    int64_t expires_us = 0, created_us = 0;
    eb_status st;

    st = eb_auth_require(&rpc->who, EB_ADMINS, "create API keys", rpc->err, sizeof rpc->err);
    if (st) {
        eb_rpc_fail(rpc, st, "%s", rpc->err);
        return;
    }
    req = cebus__v1__create_api_key_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid CreateApiKeyRequest message");
        return;
    }
    if (!target_tenant(rpc, req->tenant, &t))
        goto out;
    if (req->role < CEBUS__V1__ROLE__ROLE_PLATFORM_ADMIN ||
        req->role > CEBUS__V1__ROLE__ROLE_SUBSCRIBER) {
        eb_rpc_fail(rpc, EB_EINVAL,
                    "role: required; one of ROLE_PLATFORM_ADMIN, ROLE_TENANT_ADMIN, "
                    "ROLE_PUBLISHER, ROLE_SUBSCRIBER");
        goto out;
    }
    if (req->role == CEBUS__V1__ROLE__ROLE_PLATFORM_ADMIN) {
        if (rpc->who.role != EB_ROLE_PLATFORM_ADMIN) {
            eb_rpc_fail(rpc, EB_EPERM, "role: only a platform admin may create platform admin keys");
            goto out;
        }
        if (strcmp(t.name, EB_PLATFORM_TENANT) != 0) {
            eb_rpc_fail(rpc, EB_EINVAL, "role: platform admin keys belong to tenant \"%s\"",
                        EB_PLATFORM_TENANT);
            goto out;
        }
    }
    if (strlen(req->description) > MAX_KEY_DESCRIPTION ||
        !eb_utf8_valid(req->description, strlen(req->description))) {
        eb_rpc_fail(rpc, EB_EINVAL, "description: at most %d bytes of UTF-8",
                    MAX_KEY_DESCRIPTION);
        goto out;
    }
    if (req->expire_time) {
        expires_us = req->expire_time->seconds * 1000000 + req->expire_time->nanos / 1000;
        if (req->expire_time->seconds <= 0 || req->expire_time->seconds > 253402300799 ||
            req->expire_time->nanos < 0 || req->expire_time->nanos > 999999999 ||
            expires_us <= eb_now_wall_us()) {
            eb_rpc_fail(rpc, EB_EINVAL, "expire_time: must be in the future");
            goto out;
        }
    }
    eb_auth_generate(secret, prefix, hash);
    st = eb_store_key_insert(rpc->db, t.id, prefix, hash, (int)req->role, req->description,
                             expires_us, &created_us);
    if (st) {
        eb_rpc_fail_store(rpc, st == EB_ENOTFOUND ? EB_ENOTFOUND : st, "tenant");
        goto out;
    }
    eb_log_info("msg=\"api key created\" tenant=%s key=%s role=%d by=%s", t.name, prefix,
                (int)req->role, rpc->who.key_prefix);
    key.id = prefix;
    key.tenant = t.name;
    key.role = req->role;
    key.description = req->description;
    eb_rpc_timestamp(&created, created_us);
    key.create_time = &created;
    key.expire_time = req->expire_time;
    resp.key = &key;
    resp.secret = secret;
    eb_rpc_reply(rpc, &resp.base);
out:
    cebus__v1__create_api_key_request__free_unpacked(req, NULL);
}

static void bus_msg(Cebus__V1__Bus *m, Google__Protobuf__Timestamp *ts,
                    const struct eb_bus_rec *b)
{
    cebus__v1__bus__init(m);
    m->tenant = (char *)b->tenant;
    m->name = (char *)b->name;
    m->retention_hours = (uint32_t)b->retention_hours;
    m->dedup_window_seconds = (uint32_t)b->dedup_window_seconds;
    eb_rpc_timestamp(ts, b->created_us);
    m->create_time = ts;
}

void eb_rpc_create_bus(struct eb_rpc *rpc)
{
    Cebus__V1__CreateBusRequest *req;
    Cebus__V1__Bus resp;
    Google__Protobuf__Timestamp created;
    struct eb_tenant_rec t;
    struct eb_bus_rec b;
    eb_status st;

    st = eb_auth_require(&rpc->who, EB_ADMINS, "create buses", rpc->err, sizeof rpc->err);
    if (st) {
        eb_rpc_fail(rpc, st, "%s", rpc->err);
        return;
    }
    req = cebus__v1__create_bus_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid CreateBusRequest message");
        return;
    }
    if (!target_tenant(rpc, req->tenant, &t))
        goto out;
    if (!eb_name_valid(req->name)) {
        eb_rpc_fail(rpc, EB_EINVAL, "name: %s", name_rule);
        goto out;
    }
    if (req->retention_hours > MAX_RETENTION_HOURS) {
        eb_rpc_fail(rpc, EB_EINVAL, "retention_hours: at most %d", MAX_RETENTION_HOURS);
        goto out;
    }
    if (req->dedup_window_seconds > MAX_DEDUP_SECONDS) {
        eb_rpc_fail(rpc, EB_EINVAL, "dedup_window_seconds: at most %d", MAX_DEDUP_SECONDS);
        goto out;
    }
    st = eb_store_bus_insert(rpc->db, t.id, req->name,
                             req->retention_hours ? (int)req->retention_hours
                                                  : DEFAULT_RETENTION_HOURS,
                             req->dedup_window_seconds ? (int)req->dedup_window_seconds
                                                       : DEFAULT_DEDUP_SECONDS,
                             &b);
    if (st == EB_EEXIST) {
        eb_rpc_fail(rpc, st, "name: bus \"%s\" already exists", req->name);
        goto out;
    }
    if (st) {
        eb_rpc_fail_store(rpc, st, "tenant");
        goto out;
    }
    eb_log_info("msg=\"bus created\" tenant=%s bus=%s by=%s", b.tenant, b.name,
                rpc->who.key_prefix);
    bus_msg(&resp, &created, &b);
    eb_rpc_reply(rpc, &resp.base);
out:
    cebus__v1__create_bus_request__free_unpacked(req, NULL);
}

void eb_rpc_list_buses(struct eb_rpc *rpc)
{
    Cebus__V1__ListBusesRequest *req;
    Cebus__V1__ListBusesResponse resp = CEBUS__V1__LIST_BUSES_RESPONSE__INIT;
    struct eb_bus_rec *buses = NULL;
    Cebus__V1__Bus *msgs = NULL;
    Google__Protobuf__Timestamp *times = NULL;
    struct eb_tenant_rec t;
    char after[EB_NAME_MAX + 1], token[2 * EB_NAME_MAX + 1] = "";
    size_t n = 0;
    int limit;
    eb_status st;

    req = cebus__v1__list_buses_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid ListBusesRequest message");
        return;
    }
    if (!target_tenant(rpc, req->tenant, &t))
        goto out;
    if (!eb_rpc_page_start(rpc, "ListBuses", req->page_token, req->page_size, after, sizeof after,
                           &limit))
        goto out;
    st = eb_store_bus_list(rpc->db, t.id, after, limit + 1, &buses, &n);
    if (st) {
        eb_rpc_fail_store(rpc, st, "buses");
        goto out;
    }
    n = eb_rpc_page_end(buses, sizeof *buses, offsetof(struct eb_bus_rec, name), n,
                        limit, token, sizeof token);
    msgs = eb_calloc(n, sizeof *msgs);
    times = eb_calloc(n, sizeof *times);
    resp.buses = eb_calloc(n, sizeof *resp.buses);
    for (size_t i = 0; i < n; i++) {
        bus_msg(&msgs[i], &times[i], &buses[i]);
        resp.buses[i] = &msgs[i];
    }
    resp.n_buses = n;
    resp.next_page_token = token;
    eb_rpc_reply(rpc, &resp.base);
out:
    free(buses);
    free(msgs);
    free(times);
    free(resp.buses);
    cebus__v1__list_buses_request__free_unpacked(req, NULL);
}

/* --- Tenants: get, list, update, delete ---------------------------------- */

static void tenant_msg(Cebus__V1__Tenant *m, Google__Protobuf__Timestamp *ts,
                       const struct eb_tenant_rec *t)
{
    cebus__v1__tenant__init(m);
    m->name = (char *)t->name;
    m->display_name = (char *)t->display_name;
    m->disabled = t->disabled;
    eb_rpc_timestamp(ts, t->created_us);
    m->create_time = ts;
}

/* Loads the whole row of the tenant a request names ("" = the caller's),
 * reachable as target_tenant() says. Fails the call and returns false on
 * error; a tenant deleted meanwhile is the same NOT_FOUND as any other. */
static bool load_tenant(struct eb_rpc *rpc, const char *name, struct eb_tenant_rec *t)
{
    eb_status st;

    if (!target_tenant(rpc, name, t))
        return false;
    st = eb_store_tenant_get(rpc->db, t->name, t);
    if (st == EB_ENOTFOUND) {
        eb_rpc_fail(rpc, st, "tenant: no tenant \"%s\"", name[0] ? name : rpc->who.tenant);
        return false;
    }
    if (st) {
        eb_rpc_fail_store(rpc, st, "tenant");
        return false;
    }
    return true;
}

void eb_rpc_get_tenant(struct eb_rpc *rpc)
{
    Cebus__V1__GetTenantRequest *req;
    Cebus__V1__Tenant resp;
    Google__Protobuf__Timestamp created;
    struct eb_tenant_rec t;
    eb_status st;

    st = eb_auth_require(&rpc->who, EB_ADMINS, "read tenants", rpc->err, sizeof rpc->err);
    if (st) {
        eb_rpc_fail(rpc, st, "%s", rpc->err);
        return;
    }
    req = cebus__v1__get_tenant_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid GetTenantRequest message");
        return;
    }
    if (!load_tenant(rpc, req->name, &t))
        goto out;
    tenant_msg(&resp, &created, &t);
    eb_rpc_reply(rpc, &resp.base);
out:
    cebus__v1__get_tenant_request__free_unpacked(req, NULL);
}

void eb_rpc_list_tenants(struct eb_rpc *rpc)
{
    Cebus__V1__ListTenantsRequest *req;
    Cebus__V1__ListTenantsResponse resp = CEBUS__V1__LIST_TENANTS_RESPONSE__INIT;
    struct eb_tenant_rec *tenants = NULL;
    Cebus__V1__Tenant *msgs = NULL;
    Google__Protobuf__Timestamp *times = NULL;
    char after[EB_NAME_MAX + 1], token[2 * EB_NAME_MAX + 1] = "";
    size_t n = 0;
    int limit;
    eb_status st;

    st = eb_auth_require(&rpc->who, EB_ROLES(EB_ROLE_PLATFORM_ADMIN), "list tenants", rpc->err,
                         sizeof rpc->err);
    if (st) {
        eb_rpc_fail(rpc, st, "%s", rpc->err);
        return;
    }
    req = cebus__v1__list_tenants_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid ListTenantsRequest message");
        return;
    }
    if (!eb_rpc_page_start(rpc, "ListTenants", req->page_token, req->page_size, after,
                           sizeof after, &limit))
        goto out;
    st = eb_store_tenant_list(rpc->db, after, limit + 1, &tenants, &n);
    if (st) {
        eb_rpc_fail_store(rpc, st, "tenants");
        goto out;
    }
    n = eb_rpc_page_end(tenants, sizeof *tenants, offsetof(struct eb_tenant_rec, name), n,
                        limit, token, sizeof token);
    msgs = eb_calloc(n, sizeof *msgs);
    times = eb_calloc(n, sizeof *times);
    resp.tenants = eb_calloc(n, sizeof *resp.tenants);
    for (size_t i = 0; i < n; i++) {
        tenant_msg(&msgs[i], &times[i], &tenants[i]);
        resp.tenants[i] = &msgs[i];
    }
    resp.n_tenants = n;
    resp.next_page_token = token;
    eb_rpc_reply(rpc, &resp.base);
out:
    free(tenants);
    free(msgs);
    free(times);
    free(resp.tenants);
    cebus__v1__list_tenants_request__free_unpacked(req, NULL);
}

void eb_rpc_update_tenant(struct eb_rpc *rpc)
{
    Cebus__V1__UpdateTenantRequest *req;
    Cebus__V1__Tenant resp;
    Google__Protobuf__Timestamp created;
    struct eb_tenant_rec t;
    const char *display_name = NULL;
    int disabled = -1;
    eb_status st;

    st = eb_auth_require(&rpc->who, EB_ADMINS, "update tenants", rpc->err, sizeof rpc->err);
    if (st) {
        eb_rpc_fail(rpc, st, "%s", rpc->err);
        return;
    }
    req = cebus__v1__update_tenant_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid UpdateTenantRequest message");
        return;
    }
    if (!req->tenant) {
        eb_rpc_fail(rpc, EB_EINVAL, "tenant: required");
        goto out;
    }
    if (!target_tenant(rpc, req->tenant->name, &t))
        goto out;
    if (req->n_update_mask == 0) {
        eb_rpc_fail(rpc, EB_EINVAL, "update_mask: required; \"display_name\", \"disabled\"");
        goto out;
    }
    for (size_t i = 0; i < req->n_update_mask; i++) {
        const char *f = req->update_mask[i];
        if (strcmp(f, "display_name") == 0) {
            display_name = req->tenant->display_name;
        } else if (strcmp(f, "disabled") == 0) {
            disabled = req->tenant->disabled ? 1 : 0;
        } else {
            eb_rpc_fail(rpc, EB_EINVAL,
                        "update_mask: unknown field; fields are \"display_name\", \"disabled\"");
            goto out;
        }
    }
    if (display_name && (strlen(display_name) > MAX_DISPLAY_NAME ||
                         !eb_utf8_valid(display_name, strlen(display_name)))) {
        eb_rpc_fail(rpc, EB_EINVAL, "display_name: at most %d bytes of UTF-8", MAX_DISPLAY_NAME);
        goto out;
    }
    /* A tenant admin could lock its own tenant out, or, re-enabling it,
     * undo the platform's decision: the flag is the platform's alone. */
    if (disabled >= 0 && rpc->who.role != EB_ROLE_PLATFORM_ADMIN) {
        eb_rpc_fail(rpc, EB_EPERM, "the tenant admin role may not disable or enable tenants");
        goto out;
    }
    if (disabled == 1 && strcmp(t.name, EB_PLATFORM_TENANT) == 0) {
        eb_rpc_fail(rpc, EB_EPRECOND,
                    "disabled: the \"%s\" tenant holds the platform admin keys and cannot be "
                    "disabled",
                    EB_PLATFORM_TENANT);
        goto out;
    }
    st = eb_store_tenant_update(rpc->db, t.id, display_name, disabled, &t);
    if (st == EB_ENOTFOUND) {
        eb_rpc_fail(rpc, st, "tenant: no tenant \"%s\"", req->tenant->name);
        goto out;
    }
    if (st) {
        eb_rpc_fail_store(rpc, st, "tenant");
        goto out;
    }
    eb_auth_invalidate(rpc->app->auth);
    eb_log_info("msg=\"tenant updated\" tenant=%s disabled=%d by=%s", t.name, (int)t.disabled,
                rpc->who.key_prefix);
    tenant_msg(&resp, &created, &t);
    eb_rpc_reply(rpc, &resp.base);
out:
    cebus__v1__update_tenant_request__free_unpacked(req, NULL);
}

void eb_rpc_delete_tenant(struct eb_rpc *rpc)
{
    Cebus__V1__DeleteTenantRequest *req;
    Cebus__V1__DeleteTenantResponse resp = CEBUS__V1__DELETE_TENANT_RESPONSE__INIT;
    struct eb_tenant_rec t;
    eb_status st;

    st = eb_auth_require(&rpc->who, EB_ROLES(EB_ROLE_PLATFORM_ADMIN), "delete tenants",
                         rpc->err, sizeof rpc->err);
    if (st) {
        eb_rpc_fail(rpc, st, "%s", rpc->err);
        return;
    }
    req = cebus__v1__delete_tenant_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid DeleteTenantRequest message");
        return;
    }
    if (!eb_name_valid(req->name)) {
        eb_rpc_fail(rpc, EB_EINVAL, "name: %s", name_rule);
        goto out;
    }
    if (strcmp(req->name, EB_PLATFORM_TENANT) == 0) {
        eb_rpc_fail(rpc, EB_EPRECOND,
                    "name: the \"%s\" tenant holds the platform admin keys and cannot be deleted",
                    EB_PLATFORM_TENANT);
        goto out;
    }
    st = eb_store_tenant_get(rpc->db, req->name, &t);
    if (st == EB_OK)
        st = eb_store_tenant_delete(rpc->db, t.id);
    if (st == EB_ENOTFOUND) {
        eb_rpc_fail(rpc, st, "tenant: no tenant \"%s\"", req->name);
        goto out;
    }
    if (st) {
        eb_rpc_fail_store(rpc, st, "tenant");
        goto out;
    }
    eb_auth_invalidate(rpc->app->auth);
    eb_log_info("msg=\"tenant deleted\" tenant=%s by=%s", t.name, rpc->who.key_prefix);
    eb_rpc_reply(rpc, &resp.base);
out:
    cebus__v1__delete_tenant_request__free_unpacked(req, NULL);
}

/* --- API keys: list, revoke ---------------------------------------------- */

void eb_rpc_list_api_keys(struct eb_rpc *rpc)
{
    Cebus__V1__ListApiKeysRequest *req;
    Cebus__V1__ListApiKeysResponse resp = CEBUS__V1__LIST_API_KEYS_RESPONSE__INIT;
    struct eb_key_info *keys = NULL;
    Cebus__V1__ApiKey *msgs = NULL;
    Google__Protobuf__Timestamp *times = NULL;
    struct eb_tenant_rec t;
    char after[EB_NAME_MAX + 1], token[2 * EB_NAME_MAX + 1] = "";
    size_t n = 0;
    int limit;
    eb_status st;

    st = eb_auth_require(&rpc->who, EB_ADMINS, "list API keys", rpc->err, sizeof rpc->err);
    if (st) {
        eb_rpc_fail(rpc, st, "%s", rpc->err);
        return;
    }
    req = cebus__v1__list_api_keys_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid ListApiKeysRequest message");
        return;
    }
    if (!target_tenant(rpc, req->tenant, &t))
        goto out;
    if (!eb_rpc_page_start(rpc, "ListApiKeys", req->page_token, req->page_size, after,
                           sizeof after, &limit))
        goto out;
    st = eb_store_key_list(rpc->db, t.id, after, limit + 1, &keys, &n);
    if (st) {
        eb_rpc_fail_store(rpc, st, "keys");
        goto out;
    }
    n = eb_rpc_page_end(keys, sizeof *keys, offsetof(struct eb_key_info, prefix), n,
                        limit, token, sizeof token);
    msgs = eb_calloc(n, sizeof *msgs);
    /* Two timestamps per key: created, and expiry when it has one. */
    times = eb_calloc(2 * n, sizeof *times);
    resp.keys = eb_calloc(n, sizeof *resp.keys);
    for (size_t i = 0; i < n; i++) {
        Cebus__V1__ApiKey *m = &msgs[i];
        cebus__v1__api_key__init(m);
        m->id = keys[i].prefix;
        m->tenant = keys[i].tenant;
        m->role = (Cebus__V1__Role)keys[i].role;
        m->description = keys[i].description;
        eb_rpc_timestamp(&times[2 * i], keys[i].created_us);
        m->create_time = &times[2 * i];
        if (keys[i].expires_us) {
            eb_rpc_timestamp(&times[2 * i + 1], keys[i].expires_us);
            m->expire_time = &times[2 * i + 1];
        }
        m->revoked = keys[i].revoked;
        resp.keys[i] = m;
    }
    resp.n_keys = n;
    resp.next_page_token = token;
    eb_rpc_reply(rpc, &resp.base);
out:
    free(keys);
    free(msgs);
    free(times);
    free(resp.keys);
    cebus__v1__list_api_keys_request__free_unpacked(req, NULL);
}

void eb_rpc_revoke_api_key(struct eb_rpc *rpc)
{
    Cebus__V1__RevokeApiKeyRequest *req;
    Cebus__V1__RevokeApiKeyResponse resp = CEBUS__V1__REVOKE_API_KEY_RESPONSE__INIT;
    struct eb_key_info k;
    eb_status st;

    st = eb_auth_require(&rpc->who, EB_ADMINS, "revoke API keys", rpc->err, sizeof rpc->err);
    if (st) {
        eb_rpc_fail(rpc, st, "%s", rpc->err);
        return;
    }
    req = cebus__v1__revoke_api_key_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid RevokeApiKeyRequest message");
        return;
    }
    /* Ids are key prefixes: short, of name characters. */
    if (!req->id[0] || strlen(req->id) > EB_KEY_PREFIX_LEN || !eb_name_valid(req->id)) {
        eb_rpc_fail(rpc, EB_EINVAL, "id: required; the key's prefix as ListApiKeys shows it");
        goto out;
    }
    /* A tenant admin reaches its own tenant's keys only; any other key,
     * existing or not, is the same NOT_FOUND. */
    st = eb_store_key_revoke(rpc->db,
                             rpc->who.role == EB_ROLE_PLATFORM_ADMIN ? 0 : rpc->who.tenant_id,
                             req->id, rpc->who.role == EB_ROLE_PLATFORM_ADMIN, &k);
    if (st == EB_ENOTFOUND) {
        eb_rpc_fail(rpc, st, "id: no API key \"%s\"", req->id);
        goto out;
    }
    if (st == EB_EPERM) {
        /* Only in the platform tenant, where a tenant admin sees the key
         * anyway: as with creating them, platform admin keys are the
         * platform admin's to revoke. */
        eb_rpc_fail(rpc, st, "the tenant admin role may not revoke platform admin keys");
        goto out;
    }
    if (st == EB_EPRECOND) {
        eb_rpc_fail(rpc, st,
                    "id: the last platform admin key cannot be revoked; create another first");
        goto out;
    }
    if (st) {
        eb_rpc_fail_store(rpc, st, "key");
        goto out;
    }
    eb_auth_invalidate(rpc->app->auth);
    eb_log_info("msg=\"api key revoked\" tenant=%s key=%s by=%s", k.tenant, k.prefix,
                rpc->who.key_prefix);
    eb_rpc_reply(rpc, &resp.base);
out:
    cebus__v1__revoke_api_key_request__free_unpacked(req, NULL);
}

/* --- Buses: get, update, delete ------------------------------------------ */

/* Loads the bus a request names ("name" or "tenant/name") fresh from the
 * database: the resolver's cache may hold a bus changed or deleted within
 * its TTL. Another tenant's bus and a missing one are the same NOT_FOUND,
 * unless the caller's tenant holds one of perms on it (then *via_grant, when
 * not NULL, is set). Fails the call and returns false on error. */
static bool load_bus(struct eb_rpc *rpc, const char *ref, unsigned perms, struct eb_bus_rec *b,
                     bool *via_grant)
{
    eb_status st;

    st = eb_auth_resolve_bus_granted(rpc->app->auth, rpc->db, &rpc->who, ref, perms, b,
                                     via_grant, rpc->err, sizeof rpc->err);
    if (st) {
        eb_rpc_fail(rpc, st, "%s", rpc->err);
        return false;
    }
    st = eb_store_bus_get(rpc->db, b->tenant, b->name, b);
    if (st == EB_ENOTFOUND) {
        eb_rpc_fail(rpc, st, "bus: no bus \"%s\"", ref);
        return false;
    }
    if (st) {
        eb_rpc_fail_store(rpc, st, "bus");
        return false;
    }
    return true;
}

void eb_rpc_get_bus(struct eb_rpc *rpc)
{
    Cebus__V1__GetBusRequest *req;
    Cebus__V1__Bus resp;
    Google__Protobuf__Timestamp created;
    struct eb_bus_rec b;
    bool via_grant = false;

    /* Like ListBuses: any role may read its own tenant's buses. */
    req = cebus__v1__get_bus_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid GetBusRequest message");
        return;
    }
    /* A grantee, whatever its grant, may read the bus it was granted: the
     * grant already told it the bus exists, and it needs the retention
     * (how far back it can replay) and the dedup window (how long a retried
     * publish is recognized). It sees nothing else of the owner: no
     * create_time (docs/security.md). */
    if (!load_bus(rpc, req->bus, GRANTEE_READ_PERMS, &b, &via_grant))
        goto out;
    bus_msg(&resp, &created, &b);
    if (via_grant)
        resp.create_time = NULL;
    eb_rpc_reply(rpc, &resp.base);
out:
    cebus__v1__get_bus_request__free_unpacked(req, NULL);
}

void eb_rpc_update_bus(struct eb_rpc *rpc)
{
    Cebus__V1__UpdateBusRequest *req;
    Cebus__V1__Bus resp;
    Google__Protobuf__Timestamp created;
    struct eb_bus_rec b;
    char ref[2 * EB_NAME_MAX + 2];
    int retention = -1, dedup = -1;
    eb_status st;

    st = eb_auth_require(&rpc->who, EB_ADMINS, "update buses", rpc->err, sizeof rpc->err);
    if (st) {
        eb_rpc_fail(rpc, st, "%s", rpc->err);
        return;
    }
    req = cebus__v1__update_bus_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid UpdateBusRequest message");
        return;
    }
    if (!req->bus || !req->bus->name[0]) {
        eb_rpc_fail(rpc, EB_EINVAL, "bus.name: required");
        goto out;
    }
    if (strlen(req->bus->tenant) > EB_NAME_MAX || strlen(req->bus->name) > EB_NAME_MAX) {
        eb_rpc_fail(rpc, EB_EINVAL, "bus: %s", name_rule);
        goto out;
    }
    snprintf(ref, sizeof ref, "%s%s%s", req->bus->tenant, req->bus->tenant[0] ? "/" : "",
             req->bus->name);
    if (!load_bus(rpc, ref, 0, &b, NULL))
        goto out;
    if (req->n_update_mask == 0) {
        eb_rpc_fail(rpc, EB_EINVAL,
                    "update_mask: required; \"retention_hours\", \"dedup_window_seconds\"");
        goto out;
    }
    for (size_t i = 0; i < req->n_update_mask; i++) {
        const char *f = req->update_mask[i];
        if (strcmp(f, "retention_hours") == 0) {
            retention = (int)(req->bus->retention_hours > MAX_RETENTION_HOURS
                                  ? MAX_RETENTION_HOURS + 1
                                  : req->bus->retention_hours);
        } else if (strcmp(f, "dedup_window_seconds") == 0) {
            dedup = (int)(req->bus->dedup_window_seconds > MAX_DEDUP_SECONDS
                              ? MAX_DEDUP_SECONDS + 1
                              : req->bus->dedup_window_seconds);
        } else {
            eb_rpc_fail(rpc, EB_EINVAL,
                        "update_mask: unknown field; fields are \"retention_hours\", "
                        "\"dedup_window_seconds\"");
            goto out;
        }
    }
    /* The bounds and defaults of CreateBus: 0 means the default. */
    if (retention > MAX_RETENTION_HOURS) {
        eb_rpc_fail(rpc, EB_EINVAL, "retention_hours: at most %d", MAX_RETENTION_HOURS);
        goto out;
    }
    if (dedup > MAX_DEDUP_SECONDS) {
        eb_rpc_fail(rpc, EB_EINVAL, "dedup_window_seconds: at most %d", MAX_DEDUP_SECONDS);
        goto out;
    }
    if (retention == 0)
        retention = DEFAULT_RETENTION_HOURS;
    if (dedup == 0)
        dedup = DEFAULT_DEDUP_SECONDS;
    st = eb_store_bus_update(rpc->db, b.id, retention, dedup, &b);
    if (st == EB_ENOTFOUND) {
        eb_rpc_fail(rpc, st, "bus: no bus \"%s\"", ref);
        goto out;
    }
    if (st) {
        eb_rpc_fail_store(rpc, st, "bus");
        goto out;
    }
    eb_auth_invalidate(rpc->app->auth);
    eb_log_info("msg=\"bus updated\" tenant=%s bus=%s retention_hours=%d dedup_window_seconds=%d"
                " by=%s",
                b.tenant, b.name, b.retention_hours, b.dedup_window_seconds, rpc->who.key_prefix);
    bus_msg(&resp, &created, &b);
    eb_rpc_reply(rpc, &resp.base);
out:
    cebus__v1__update_bus_request__free_unpacked(req, NULL);
}

void eb_rpc_delete_bus(struct eb_rpc *rpc)
{
    Cebus__V1__DeleteBusRequest *req;
    Cebus__V1__DeleteBusResponse resp = CEBUS__V1__DELETE_BUS_RESPONSE__INIT;
    struct eb_bus_rec b;
    eb_status st;

    st = eb_auth_require(&rpc->who, EB_ADMINS, "delete buses", rpc->err, sizeof rpc->err);
    if (st) {
        eb_rpc_fail(rpc, st, "%s", rpc->err);
        return;
    }
    req = cebus__v1__delete_bus_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid DeleteBusRequest message");
        return;
    }
    if (!load_bus(rpc, req->bus, 0, &b, NULL))
        goto out;
    st = eb_store_bus_delete(rpc->db, b.id);
    if (st == EB_ENOTFOUND) {
        eb_rpc_fail(rpc, st, "bus: no bus \"%s\"", req->bus);
        goto out;
    }
    if (st) {
        eb_rpc_fail_store(rpc, st, "bus");
        goto out;
    }
    /* Open streams on it end with NOT_FOUND at the delivery thread's next
     * check, on this replica and the others. */
    eb_auth_invalidate(rpc->app->auth);
    eb_log_info("msg=\"bus deleted\" tenant=%s bus=%s by=%s", b.tenant, b.name,
                rpc->who.key_prefix);
    eb_rpc_reply(rpc, &resp.base);
out:
    cebus__v1__delete_bus_request__free_unpacked(req, NULL);
}

bool eb_rpc_target_tenant(struct eb_rpc *rpc, const char *name, struct eb_tenant_rec *t)
{
    return target_tenant(rpc, name, t);
}
