/* Quotas: SetQuota, GetQuota, and the quota side of rule creation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cebus/v1/admin.pb-c.h"
#include "quota.h"
#include "rpc.h"
#include "store_quota.h"
#include "util.h"

/* Fills msg (whose tenant string is borrowed from tenant) from lim. */
static void quota_msg(Cebus__V1__Quota *msg, const char *tenant,
                      const struct eb_quota_limits *lim)
{
    cebus__v1__quota__init(msg);
    msg->tenant = (char *)tenant;
    msg->events_per_second = (uint32_t)lim->events_per_second;
    msg->bytes_per_second = (uint32_t)lim->bytes_per_second;
    msg->burst_seconds = (uint32_t)lim->burst_seconds;
    msg->rules_per_bus = (uint32_t)lim->rules_per_bus;
    msg->subscriptions = (uint32_t)lim->subscriptions;
    msg->concurrent_streams = (uint32_t)lim->concurrent_streams;
}

/* Answers tenant t's effective quota, read from the database (not the
 * cache, so that a change made on another server shows at once). */
static void reply_effective(struct eb_rpc *rpc, const struct eb_tenant_rec *t)
{
    struct eb_quota_limits lim;
    Cebus__V1__Quota msg;
    eb_status st;

    st = eb_store_quota_get(rpc->db, t->id, &lim);
    if (st) {
        eb_rpc_fail_store(rpc, st, "quota");
        return;
    }
    eb_quota_fill_defaults(rpc->app->quota, &lim);
    quota_msg(&msg, t->name, &lim);
    eb_rpc_reply(rpc, &msg.base);
}

void eb_rpc_set_quota(struct eb_rpc *rpc)
{
    Cebus__V1__SetQuotaRequest *req;
    const Cebus__V1__Quota *in;
    struct eb_quota_limits lim;
    struct eb_tenant_rec t;
    const char *bad;
    int64_t max = 0;
    eb_status st;

    st = eb_auth_require(&rpc->who, EB_ROLES(EB_ROLE_PLATFORM_ADMIN), "set quotas", rpc->err,
                         sizeof rpc->err);
    if (st) {
        eb_rpc_fail(rpc, st, "%s", rpc->err);
        return;
    }
    req = cebus__v1__set_quota_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid SetQuotaRequest message");
        return;
    }
    in = req->quota;
    if (!in) {
        eb_rpc_fail(rpc, EB_EINVAL, "quota: required");
        goto out;
    }
    if (!in->tenant[0]) {
        eb_rpc_fail(rpc, EB_EINVAL, "quota.tenant: required");
        goto out;
    }
    if (!eb_name_valid(in->tenant)) {
        eb_rpc_fail(rpc, EB_EINVAL,
                    "quota.tenant: 1 to 64 of [A-Za-z0-9._-], starting with a letter or digit");
        goto out;
    }
    lim.events_per_second = in->events_per_second;
    lim.bytes_per_second = in->bytes_per_second;
    lim.burst_seconds = in->burst_seconds;
    lim.rules_per_bus = in->rules_per_bus;
    lim.subscriptions = in->subscriptions;
    lim.concurrent_streams = in->concurrent_streams;
    bad = eb_quota_limits_invalid(&lim, &max);
    if (bad) {
        eb_rpc_fail(rpc, EB_EINVAL, "quota.%s: at most %lld (0 means the server's default)", bad,
                    (long long)max);
        goto out;
    }
    st = eb_store_tenant_get(rpc->db, in->tenant, &t);
    if (st == EB_OK)
        st = eb_store_quota_set(rpc->db, t.id, &lim);
    if (st == EB_ENOTFOUND) {
        eb_rpc_fail(rpc, st, "quota.tenant: no tenant \"%s\"", in->tenant);
        goto out;
    }
    if (st) {
        eb_rpc_fail_store(rpc, st, "quota");
        goto out;
    }
    /* This server applies it to its next call; the others within their
     * cache's lifetime. */
    eb_quota_invalidate(rpc->app->quota);
    reply_effective(rpc, &t);
out:
    cebus__v1__set_quota_request__free_unpacked(req, NULL);
}

void eb_rpc_get_quota(struct eb_rpc *rpc)
{
    Cebus__V1__GetQuotaRequest *req;
    struct eb_tenant_rec t;
    eb_status st;

    st = eb_auth_require(&rpc->who, EB_ADMINS, "read quotas", rpc->err, sizeof rpc->err);
    if (st) {
        eb_rpc_fail(rpc, st, "%s", rpc->err);
        return;
    }
    req = cebus__v1__get_quota_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid GetQuotaRequest message");
        return;
    }
    /* Another tenant is NOT_FOUND for a tenant admin, like a missing one. */
    if (eb_rpc_target_tenant(rpc, req->tenant, &t))
        reply_effective(rpc, &t);
    cebus__v1__get_quota_request__free_unpacked(req, NULL);
}

bool eb_rpc_rule_limits(struct eb_rpc *rpc, const struct eb_bus_rec *bus,
                        struct eb_rule_limits *lim)
{
    struct eb_quota_limits q;
    eb_status st;

    st = eb_quota_get(rpc->app->quota, rpc->db, bus->tenant_id, &q);
    if (st) {
        eb_rpc_fail_store(rpc, st, "quota");
        return false;
    }
    memset(lim, 0, sizeof *lim);
    lim->tenant_id = bus->tenant_id;
    lim->max_rules = q.rules_per_bus;
    lim->max_subscriptions = q.subscriptions;
    return true;
}

void eb_rpc_fail_rule_limits(struct eb_rpc *rpc, const struct eb_rule_limits *lim,
                             const char *bus_ref)
{
    /* The figures are the bus owner's quota; a grantee creating rules on
     * the bus learns the limit, not how many subscriptions the owner has. */
    if (lim->exceeded && strcmp(lim->exceeded, "subscriptions") == 0)
        eb_rpc_fail(rpc, EB_EEXHAUSTED,
                    "subscriptions quota of %lld reached for the owner of bus \"%s\"",
                    (long long)lim->max_subscriptions, bus_ref);
    else
        eb_rpc_fail(rpc, EB_EEXHAUSTED, "rules_per_bus quota of %lld reached on bus \"%s\"",
                    (long long)lim->max_rules, bus_ref);
}
