/* Subscribe: ephemeral streams from an inline pattern or a rule's
 * subscription target, from a chosen start position, and durable streams:
 * a subscription without a start position resumes from the subscription's
 * state, with ack ids (docs/decisions/0014). A stream opened through a
 * rule follows the rule's later changes (see dispatch.h); while the rule is
 * disabled it delivers nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cebus/v1/eventbus.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "log.h"
#include "pattern.h"
#include "rpc.h"
#include "store_durable.h"
#include "util.h"

/* Sets *after to the sequence after which the stream starts. A start
 * sequence below the bus's oldest retained one is EB_ERANGE: the events in
 * between expired, and starting later would hide their loss. */
static eb_status start_position(struct eb_rpc *rpc, const Cebus__V1__SubscribeRequest *req,
                                int64_t bus_id, int64_t *after)
{
    eb_status st = EB_OK;
    int64_t oldest = 1;

    switch (req->start) {
    case CEBUS__V1__START_POSITION__START_POSITION_UNSPECIFIED:
    case CEBUS__V1__START_POSITION__START_POSITION_LATEST:
        st = eb_store_events_head(rpc->db, bus_id, after);
        break;
    case CEBUS__V1__START_POSITION__START_POSITION_EARLIEST:
        st = eb_store_events_oldest(rpc->db, bus_id, &oldest);
        if (st == EB_OK)
            *after = oldest - 1;
        break;
    case CEBUS__V1__START_POSITION__START_POSITION_SEQUENCE:
        if (req->start_sequence == 0 || req->start_sequence > INT64_MAX) {
            snprintf(rpc->err, sizeof rpc->err,
                     "start_sequence: required with START_POSITION_SEQUENCE; sequences start at 1");
            return EB_EINVAL;
        }
        st = eb_store_events_oldest(rpc->db, bus_id, &oldest);
        if (st == EB_OK && (int64_t)req->start_sequence < oldest) {
            snprintf(rpc->err, sizeof rpc->err,
                     "start_sequence: %llu is past the bus's retention; the oldest retained "
                     "sequence is %lld",
                     (unsigned long long)req->start_sequence, (long long)oldest);
            return EB_ERANGE;
        }
        if (st == EB_OK)
            *after = (int64_t)req->start_sequence - 1;
        break;
    case CEBUS__V1__START_POSITION__START_POSITION_TIME:
        if (!req->start_time || req->start_time->seconds < 0 || req->start_time->nanos < 0 ||
            req->start_time->nanos > 999999999) {
            snprintf(rpc->err, sizeof rpc->err,
                     "start_time: required with START_POSITION_TIME, after 1970");
            return EB_EINVAL;
        }
        if (req->start_time->seconds > 253402300799) { /* 9999-12-31 */
            snprintf(rpc->err, sizeof rpc->err, "start_time: out of range");
            return EB_EINVAL;
        }
        st = eb_store_events_before_time(rpc->db, bus_id,
                                         req->start_time->seconds * 1000000 +
                                             req->start_time->nanos / 1000,
                                         after);
        break;
    default:
        snprintf(rpc->err, sizeof rpc->err, "start: unknown start position %d", (int)req->start);
        return EB_EINVAL;
    }
    if (st)
        snprintf(rpc->err, sizeof rpc->err,
                 st == EB_EUNAVAIL ? "database unavailable; retry" : "internal error");
    return st;
}

/* For a durable stream: reads the subscription and checks that the events
 * after its frontier are still retained (0014, "Retention"): otherwise they
 * expired unseen, and the stream is refused with OUT_OF_RANGE until a Seek
 * acknowledges the loss. Fills *sub, or sets rpc->err and returns the
 * status. */
static eb_status durable_start(struct eb_rpc *rpc, const Cebus__V1__SubscribeRequest *req,
                               int64_t bus_id, struct eb_sub_rec *sub)
{
    int64_t oldest = 1;
    eb_status st;

    st = eb_store_sub_get(rpc->db, bus_id, req->subscription, sub);
    if (st == EB_OK)
        st = eb_store_events_oldest(rpc->db, bus_id, &oldest);
    if (st == EB_OK && oldest > sub->frontier + 1) {
        snprintf(rpc->err, sizeof rpc->err,
                 "subscription: events from %lld expired before delivery; the oldest retained "
                 "sequence is %lld; Seek to continue",
                 (long long)sub->frontier + 1, (long long)oldest);
        return EB_ERANGE;
    }
    if (st == EB_ENOTFOUND)
        snprintf(rpc->err, sizeof rpc->err, "subscription: no subscription \"%s\" on bus \"%s\"",
                 req->subscription, req->bus);
    else if (st)
        snprintf(rpc->err, sizeof rpc->err,
                 st == EB_EUNAVAIL ? "database unavailable; retry" : "internal error");
    return st;
}

void eb_rpc_subscribe(struct eb_rpc *rpc)
{
    const struct eb_config *cfg = rpc->app->cfg;
    Cebus__V1__SubscribeRequest *req;
    struct eb_bus_rec bus;
    struct eb_rule_rec rule = {0};
    const char *pattern_text;
    eb_pattern *pat = NULL;
    int64_t after = 0;
    struct eb_sub_rec sub = {0};
    bool via_grant = false, durable;
    int in_flight;
    char err[512];
    eb_status st;

    st = eb_auth_require(&rpc->who, EB_ADMINS | EB_ROLES(EB_ROLE_SUBSCRIBER), "subscribe",
                         rpc->err, sizeof rpc->err);
    if (st) {
        eb_rpc_fail(rpc, st, "%s", rpc->err);
        return;
    }
    req = cebus__v1__subscribe_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid SubscribeRequest message");
        return;
    }
    st = eb_auth_resolve_bus_granted(rpc->app->auth, rpc->db, &rpc->who, req->bus,
                                     EB_PERMS(EB_PERMISSION_SUBSCRIBE), &bus, &via_grant,
                                     rpc->err, sizeof rpc->err);
    if (st) {
        eb_rpc_fail(rpc, st, "%s", rpc->err);
        goto out;
    }
    if (req->pattern[0] && req->subscription[0]) {
        eb_rpc_fail(rpc, EB_EINVAL, "pattern, subscription: give one, not both");
        goto out;
    }
    if (!req->pattern[0] && !req->subscription[0]) {
        eb_rpc_fail(rpc, EB_EINVAL,
                    "pattern: required unless subscription is given ({} matches every event)");
        goto out;
    }
    if (req->max_in_flight > (uint32_t)cfg->max_in_flight) {
        eb_rpc_fail(rpc, EB_EINVAL, "max_in_flight: at most %ld", cfg->max_in_flight);
        goto out;
    }
    in_flight = req->max_in_flight ? (int)req->max_in_flight : (int)cfg->max_in_flight;

    if (req->subscription[0]) {
        if (!eb_name_valid(req->subscription)) {
            eb_rpc_fail(rpc, EB_EINVAL, "subscription: not a valid name");
            goto out;
        }
        st = eb_store_rule_by_subscription(rpc->db, bus.id, req->subscription, &rule);
        if (st == EB_ENOTFOUND) {
            eb_rpc_fail(rpc, st, "subscription: no subscription \"%s\" on bus \"%s\"",
                        req->subscription, req->bus);
            goto out;
        }
        if (st) {
            eb_rpc_fail_store(rpc, st, "subscription");
            goto out;
        }
        pattern_text = rule.pattern;
    } else {
        pattern_text = req->pattern;
    }
    if (eb_pattern_compile(pattern_text, strlen(pattern_text), &pat, err, sizeof err)) {
        eb_rpc_fail_pattern(rpc, err);
        goto out;
    }
    durable = req->subscription[0] &&
              req->start == CEBUS__V1__START_POSITION__START_POSITION_UNSPECIFIED;
    st = durable ? durable_start(rpc, req, bus.id, &sub)
                 : start_position(rpc, req, bus.id, &after);
    if (st) {
        eb_rpc_fail(rpc, st, "%s", rpc->err);
        goto out;
    }
    /* Streams count against the caller's tenant, whoever owns the bus; the
     * dispatcher gives the place back when the stream ends. */
    st = eb_quota_stream_acquire(rpc->app->quota, rpc->db, rpc->who.tenant_id, rpc->err,
                                 sizeof rpc->err);
    if (st) {
        eb_rpc_fail(rpc, st, "%s", rpc->err);
        goto out;
    }
    {
        struct eb_dispatch_rule follow = {.id = rule.id, .version = rule.version,
                                          .subscription = req->subscription,
                                          .enabled = rule.enabled,
                                          .sub_id = durable ? sub.id : 0,
                                          .frontier = sub.frontier};
        st = eb_dispatch_add(rpc->app->dispatch, rpc->call, rpc->who.key_id,
                             via_grant ? rpc->who.tenant_id : 0, rpc->who.tenant_id, bus.id, after,
                             pat, in_flight,
                             req->subscription[0] ? &follow : NULL);
    }
    if (st) {
        eb_quota_stream_release(rpc->app->quota, rpc->who.tenant_id);
        eb_rpc_fail(rpc, st, "%s",
                    st == EB_EEXHAUSTED ? "streams: this server has reached its stream limit; "
                                          "retry elsewhere"
                                        : "server shutting down; retry elsewhere");
        goto out;
    }
    pat = NULL; /* the stream owns it now */
    eb_log_debug("msg=\"stream opened\" tenant=%s bus=%s after=%lld durable=%d", rpc->who.tenant,
                 bus.name, (long long)(durable ? sub.frontier : after), (int)durable);
    eb_rpc_free(rpc);
out:
    eb_pattern_free(pat);
    eb_rule_rec_clear(&rule);
    cebus__v1__subscribe_request__free_unpacked(req, NULL);
}
