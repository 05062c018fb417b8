/* Admin basics: CreateTenant, CreateApiKey, CreateBus, ListBuses. */
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
    if (n > (size_t)limit) {
        n = (size_t)limit;
        eb_rpc_page_token_encode(buses[n - 1].name, token, sizeof token);
    }
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
