/* The Admin service's grants (another tenant's PUBLISH, SUBSCRIBE or
 * MANAGE_RULES on a bus) and event sources (the source prefixes a tenant
 * may publish under). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cebus/v1/admin.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "log.h"
#include "rpc.h"
#include "util.h"

static const char *permission_names[] = {"", "publish", "subscribe", "manage-rules"};

/* Checks the role and resolves the bus of a grant request: only the bus
 * owner's tenant admins and platform admins manage its grants; a grantee
 * sees the bus as missing here. Fails the call and returns false on
 * error. */
static bool grant_bus(struct eb_rpc *rpc, const char *what, const char *ref,
                      struct eb_bus_rec *bus)
{
    eb_status st = eb_auth_require(&rpc->who, EB_ADMINS, what, rpc->err, sizeof rpc->err);

    if (!st)
        st = eb_auth_resolve_bus(rpc->app->auth, rpc->db, &rpc->who, ref, bus, rpc->err,
                                 sizeof rpc->err);
    if (st) {
        eb_rpc_fail(rpc, st, "%s", rpc->err);
        return false;
    }
    return true;
}

/* Validates the grantee and permission of a grant request and loads the
 * grantee. Fails the call and returns false on error. */
static bool grant_args(struct eb_rpc *rpc, const struct eb_bus_rec *bus, const char *grantee,
                       Cebus__V1__Permission perm, struct eb_tenant_rec *t)
{
    eb_status st;

    if (perm < CEBUS__V1__PERMISSION__PERMISSION_PUBLISH ||
        perm > CEBUS__V1__PERMISSION__PERMISSION_MANAGE_RULES) {
        eb_rpc_fail(rpc, EB_EINVAL,
                    "permission: required; one of PERMISSION_PUBLISH, PERMISSION_SUBSCRIBE, "
                    "PERMISSION_MANAGE_RULES");
        return false;
    }
    if (!eb_name_valid(grantee)) {
        eb_rpc_fail(rpc, EB_EINVAL,
                    "grantee_tenant: required; 1 to 64 of [A-Za-z0-9._-], starting with a letter "
                    "or digit");
        return false;
    }
    if (strcmp(grantee, bus->tenant) == 0) {
        eb_rpc_fail(rpc, EB_EINVAL, "grantee_tenant: the bus's own tenant needs no grant");
        return false;
    }
    st = eb_store_tenant_get(rpc->db, grantee, t);
    if (st == EB_ENOTFOUND) {
        eb_rpc_fail(rpc, st, "grantee_tenant: no tenant \"%s\"", grantee);
        return false;
    }
    if (st) {
        eb_rpc_fail_store(rpc, st, "grantee_tenant");
        return false;
    }
    return true;
}

static void grant_msg(Cebus__V1__Grant *m, Google__Protobuf__Timestamp *ts, char *busref,
                      const char *grantee, int permission, int64_t created_us)
{
    cebus__v1__grant__init(m);
    m->bus = busref;
    m->grantee_tenant = (char *)grantee;
    m->permission = (Cebus__V1__Permission)permission;
    eb_rpc_timestamp(ts, created_us);
    m->create_time = ts;
}

void eb_rpc_create_grant(struct eb_rpc *rpc)
{
    Cebus__V1__CreateGrantRequest *req;
    Cebus__V1__Grant resp;
    Google__Protobuf__Timestamp created;
    struct eb_bus_rec bus;
    struct eb_tenant_rec t;
    char busref[2 * EB_NAME_MAX + 2];
    int64_t created_us = 0;
    eb_status st;

    req = cebus__v1__create_grant_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid CreateGrantRequest message");
        return;
    }
    if (!grant_bus(rpc, "create grants", req->bus, &bus))
        goto out;
    if (!grant_args(rpc, &bus, req->grantee_tenant, req->permission, &t))
        goto out;
    st = eb_store_grant_insert(rpc->db, bus.id, t.id, (int)req->permission, &created_us);
    if (st == EB_EEXIST) {
        eb_rpc_fail(rpc, st, "grant: tenant \"%s\" already holds %s on bus \"%s\"", t.name,
                    permission_names[req->permission], req->bus);
        goto out;
    }
    if (st == EB_ENOTFOUND) {
        eb_rpc_fail(rpc, st, "bus: no bus \"%s\"", req->bus);
        goto out;
    }
    if (st) {
        eb_rpc_fail_store(rpc, st, "grant");
        goto out;
    }
    eb_auth_invalidate(rpc->app->auth);
    eb_log_info("msg=\"grant created\" tenant=%s bus=%s grantee=%s permission=%s by=%s",
                bus.tenant, bus.name, t.name, permission_names[req->permission],
                rpc->who.key_prefix);
    snprintf(busref, sizeof busref, "%s/%s", bus.tenant, bus.name);
    grant_msg(&resp, &created, busref, t.name, (int)req->permission, created_us);
    eb_rpc_reply(rpc, &resp.base);
out:
    cebus__v1__create_grant_request__free_unpacked(req, NULL);
}

void eb_rpc_list_grants(struct eb_rpc *rpc)
{
    Cebus__V1__ListGrantsRequest *req;
    Cebus__V1__ListGrantsResponse resp = CEBUS__V1__LIST_GRANTS_RESPONSE__INIT;
    struct eb_grant_rec *grants = NULL;
    Cebus__V1__Grant *msgs = NULL;
    Google__Protobuf__Timestamp *times = NULL;
    struct eb_bus_rec bus;
    /* Pages end at a (grantee, permission) key, "grantee/permission". */
    char busref[2 * EB_NAME_MAX + 2], after[EB_NAME_MAX + 3], token[2 * (EB_NAME_MAX + 2) + 1];
    char *slash;
    int limit, after_perm = 0;
    size_t n = 0;
    eb_status st;

    req = cebus__v1__list_grants_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid ListGrantsRequest message");
        return;
    }
    if (!grant_bus(rpc, "list grants", req->bus, &bus))
        goto out;
    if (!eb_rpc_page_start_pair(rpc, "ListGrants", req->page_token, req->page_size, after,
                                sizeof after, &limit))
        goto out;
    slash = strchr(after, '/');
    if (slash) {
        *slash = '\0';
        after_perm = slash[1] - '0';
        if (slash[2] || after_perm < CEBUS__V1__PERMISSION__PERMISSION_PUBLISH ||
            after_perm > CEBUS__V1__PERMISSION__PERMISSION_MANAGE_RULES) {
            eb_rpc_fail(rpc, EB_EINVAL, "page_token: not a token from a previous ListGrants");
            goto out;
        }
    }
    st = eb_store_grant_list(rpc->db, bus.id, after, after_perm, limit + 1, &grants, &n);
    if (st) {
        eb_rpc_fail_store(rpc, st, "grants");
        goto out;
    }
    n = eb_rpc_page_end(grants, sizeof *grants, offsetof(struct eb_grant_rec, page_key), n,
                        limit, token, sizeof token);
    snprintf(busref, sizeof busref, "%s/%s", bus.tenant, bus.name);
    msgs = eb_calloc(n + 1, sizeof *msgs);
    times = eb_calloc(n + 1, sizeof *times);
    resp.grants = eb_calloc(n + 1, sizeof *resp.grants);
    for (size_t i = 0; i < n; i++) {
        grant_msg(&msgs[i], &times[i], busref, grants[i].grantee, grants[i].permission,
                  grants[i].created_us);
        resp.grants[i] = &msgs[i];
    }
    resp.n_grants = n;
    resp.next_page_token = token;
    eb_rpc_reply(rpc, &resp.base);
out:
    free(grants);
    free(msgs);
    free(times);
    free(resp.grants);
    cebus__v1__list_grants_request__free_unpacked(req, NULL);
}

void eb_rpc_revoke_grant(struct eb_rpc *rpc)
{
    Cebus__V1__RevokeGrantRequest *req;
    Cebus__V1__RevokeGrantResponse resp = CEBUS__V1__REVOKE_GRANT_RESPONSE__INIT;
    struct eb_bus_rec bus;
    struct eb_tenant_rec t;
    eb_status st;

    req = cebus__v1__revoke_grant_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid RevokeGrantRequest message");
        return;
    }
    if (!grant_bus(rpc, "revoke grants", req->bus, &bus))
        goto out;
    if (!grant_args(rpc, &bus, req->grantee_tenant, req->permission, &t))
        goto out;
    st = eb_store_grant_delete(rpc->db, bus.id, t.id, (int)req->permission);
    if (st == EB_ENOTFOUND) {
        eb_rpc_fail(rpc, st, "grant: tenant \"%s\" holds no %s grant on bus \"%s\"", t.name,
                    permission_names[req->permission], req->bus);
        goto out;
    }
    if (st) {
        eb_rpc_fail_store(rpc, st, "grant");
        goto out;
    }
    /* Calls stop using it within the auth cache's TTL; open streams end at
     * the delivery thread's next check, on every replica. */
    eb_auth_invalidate(rpc->app->auth);
    eb_log_info("msg=\"grant revoked\" tenant=%s bus=%s grantee=%s permission=%s by=%s",
                bus.tenant, bus.name, t.name, permission_names[req->permission],
                rpc->who.key_prefix);
    eb_rpc_reply(rpc, &resp.base);
out:
    cebus__v1__revoke_grant_request__free_unpacked(req, NULL);
}

/* --- Event sources ------------------------------------------------------- */

/* Checks the role and resolves the tenant of a source request ("" = the
 * caller's; another tenant for the platform admin only). Fails the call
 * and returns false on error. */
static bool source_tenant(struct eb_rpc *rpc, const char *what, const char *name,
                          struct eb_tenant_rec *t)
{
    eb_status st = eb_auth_require(&rpc->who, EB_ADMINS, what, rpc->err, sizeof rpc->err);

    if (st) {
        eb_rpc_fail(rpc, st, "%s", rpc->err);
        return false;
    }
    return eb_rpc_target_tenant(rpc, name, t);
}

static bool prefix_valid(struct eb_rpc *rpc, const char *prefix)
{
    size_t len = strlen(prefix);

    if (len == 0 || len > EB_SOURCE_PREFIX_MAX || !eb_utf8_valid(prefix, len)) {
        eb_rpc_fail(rpc, EB_EINVAL, "prefix: required; 1 to %d bytes of UTF-8",
                    EB_SOURCE_PREFIX_MAX);
        return false;
    }
    return true;
}

void eb_rpc_create_event_source(struct eb_rpc *rpc)
{
    Cebus__V1__CreateEventSourceRequest *req;
    Cebus__V1__EventSource resp = CEBUS__V1__EVENT_SOURCE__INIT;
    struct eb_tenant_rec t;
    eb_status st;

    req = cebus__v1__create_event_source_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid CreateEventSourceRequest message");
        return;
    }
    if (!source_tenant(rpc, "register event sources", req->tenant, &t))
        goto out;
    if (!prefix_valid(rpc, req->prefix))
        goto out;
    /* The deployment-wide cap bounds the owner list each server keeps;
     * concurrent registrations may pass it by their number. */
    {
        int64_t total = 0;
        st = eb_store_source_count(rpc->db, &total);
        if (st == EB_OK && total >= EB_SOURCES_TOTAL_MAX) {
            eb_rpc_fail(rpc, EB_EEXHAUSTED,
                        "prefix: the server holds %d source prefixes in all, the most allowed",
                        EB_SOURCES_TOTAL_MAX);
            goto out;
        }
    }
    if (st == EB_OK)
        st = eb_store_source_insert(rpc->db, t.id, req->prefix, EB_SOURCES_MAX);
    if (st == EB_EEXIST) {
        eb_rpc_fail(rpc, st, "prefix: already registered for tenant \"%s\"", t.name);
        goto out;
    }
    if (st == EB_EPERM) {
        /* Exclusive ownership cannot hide that some tenant holds an
         * overlapping prefix; it never says which. */
        eb_rpc_fail(rpc, st,
                    "prefix: overlaps a source prefix registered to another tenant; a prefix "
                    "belongs to one tenant");
        goto out;
    }
    if (st == EB_EEXHAUSTED) {
        eb_rpc_fail(rpc, st, "prefix: tenant \"%s\" has %d source prefixes, the most allowed",
                    t.name, EB_SOURCES_MAX);
        goto out;
    }
    if (st) {
        eb_rpc_fail_store(rpc, st, "tenant");
        goto out;
    }
    eb_auth_invalidate(rpc->app->auth);
    eb_log_info("msg=\"event source added\" tenant=%s by=%s", t.name, rpc->who.key_prefix);
    resp.tenant = t.name;
    resp.prefix = req->prefix;
    eb_rpc_reply(rpc, &resp.base);
out:
    cebus__v1__create_event_source_request__free_unpacked(req, NULL);
}

void eb_rpc_list_event_sources(struct eb_rpc *rpc)
{
    Cebus__V1__ListEventSourcesRequest *req;
    Cebus__V1__ListEventSourcesResponse resp = CEBUS__V1__LIST_EVENT_SOURCES_RESPONSE__INIT;
    struct eb_source_rec *sources = NULL;
    Cebus__V1__EventSource *msgs = NULL;
    struct eb_tenant_rec t;
    size_t n = 0;
    eb_status st;

    req = cebus__v1__list_event_sources_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid ListEventSourcesRequest message");
        return;
    }
    if (!source_tenant(rpc, "list event sources", req->tenant, &t))
        goto out;
    st = eb_store_source_list(rpc->db, t.id, EB_SOURCES_MAX, &sources, &n);
    if (st) {
        eb_rpc_fail_store(rpc, st, "sources");
        goto out;
    }
    msgs = eb_calloc(n + 1, sizeof *msgs);
    resp.sources = eb_calloc(n + 1, sizeof *resp.sources);
    for (size_t i = 0; i < n; i++) {
        cebus__v1__event_source__init(&msgs[i]);
        msgs[i].tenant = t.name;
        msgs[i].prefix = sources[i].prefix;
        resp.sources[i] = &msgs[i];
    }
    resp.n_sources = n;
    eb_rpc_reply(rpc, &resp.base);
out:
    free(sources);
    free(msgs);
    free(resp.sources);
    cebus__v1__list_event_sources_request__free_unpacked(req, NULL);
}

void eb_rpc_delete_event_source(struct eb_rpc *rpc)
{
    Cebus__V1__DeleteEventSourceRequest *req;
    Cebus__V1__DeleteEventSourceResponse resp = CEBUS__V1__DELETE_EVENT_SOURCE_RESPONSE__INIT;
    struct eb_tenant_rec t;
    eb_status st;

    req = cebus__v1__delete_event_source_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid DeleteEventSourceRequest message");
        return;
    }
    if (!source_tenant(rpc, "remove event sources", req->tenant, &t))
        goto out;
    if (!prefix_valid(rpc, req->prefix))
        goto out;
    st = eb_store_source_delete(rpc->db, t.id, req->prefix);
    if (st == EB_ENOTFOUND) {
        eb_rpc_fail(rpc, st, "prefix: not registered for tenant \"%s\"", t.name);
        goto out;
    }
    if (st) {
        eb_rpc_fail_store(rpc, st, "tenant");
        goto out;
    }
    eb_auth_invalidate(rpc->app->auth);
    eb_log_info("msg=\"event source removed\" tenant=%s by=%s", t.name, rpc->who.key_prefix);
    eb_rpc_reply(rpc, &resp.base);
out:
    cebus__v1__delete_event_source_request__free_unpacked(req, NULL);
}
