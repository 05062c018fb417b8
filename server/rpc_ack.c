/* Ack and Nack: confirm or refuse deliveries of a durable subscription
 * (docs/decisions/0014). Both are authorized exactly as Subscribe on that
 * subscription. An id that is not an ack id fails the whole request; an id
 * of another subscription, of another tenant's, from before a seek, or of a
 * delivery made again since, changes nothing and is listed in not_applied,
 * the same answer whatever it came from.
 *
 * Acks go to the ack committer (acker.h) and are answered after its
 * COMMIT; Nacks are committed asynchronously here (a lost Nack only means
 * the lease ends at its deadline).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ackid.h"
#include "cebus/v1/eventbus.pb-c.h"
#include "metrics.h"
#include "rpc.h"
#include "store_durable.h"
#include "util.h"

/* The state of one Ack call between validation and commit. */
struct ack_call {
    struct eb_ack_req areq; /* first: the acker hands it back */
    struct eb_rpc *rpc;
};

/* Checks the ids' count and decodes them (before anything is looked up),
 * then authorizes the caller on the bus and subscription as Subscribe
 * does. On success sets *items (a new array of nids; free()).
 * Otherwise fails the call (freeing rpc) and returns false. */
static bool resolve(struct eb_rpc *rpc, const char *what, const char *busref,
                    const char *subscription, char **ids, size_t nids,
                    struct eb_ack_item **items)
{
    struct eb_bus_rec bus;
    struct eb_sub_rec sub;
    struct eb_ack_item *v;
    bool via_grant = false;
    eb_status st;

    st = eb_auth_require(&rpc->who, EB_ADMINS | EB_ROLES(EB_ROLE_SUBSCRIBER), what, rpc->err,
                         sizeof rpc->err);
    if (st) {
        eb_rpc_fail(rpc, st, "%s", rpc->err);
        return false;
    }
    if (nids == 0) {
        eb_rpc_fail(rpc, EB_EINVAL, "ack_ids: at least one ack id is required");
        return false;
    }
    if (nids > EB_ACK_IDS_MAX) {
        eb_rpc_fail(rpc, EB_EINVAL, "ack_ids: at most %d per request, got %zu", EB_ACK_IDS_MAX,
                    nids);
        return false;
    }
    /* Decoded before anything is looked up: an id that is not an ack id
     * gets the same answer on every bus and subscription. */
    v = eb_calloc(nids, sizeof *v);
    for (size_t i = 0; i < nids; i++) {
        struct eb_ackid a;
        size_t len = strnlen(ids[i], EB_ACKID_MAX + 1);
        if (len > EB_ACKID_MAX || !eb_ackid_decode(ids[i], len, &a)) {
            free(v);
            eb_rpc_fail(rpc, EB_EINVAL, "ack_ids[%zu]: not an ack id", i);
            return false;
        }
        v[i].epoch = a.epoch;
        v[i].seq = a.seq;
        v[i].attempt = a.attempt;
    }
    st = eb_auth_resolve_bus_granted(rpc->app->auth, rpc->db, &rpc->who, busref,
                                     EB_PERMS(EB_PERMISSION_SUBSCRIBE), &bus, &via_grant,
                                     rpc->err, sizeof rpc->err);
    if (st) {
        eb_rpc_fail(rpc, st, "%s", rpc->err);
        goto fail;
    }
    if (!subscription[0]) {
        eb_rpc_fail(rpc, EB_EINVAL, "subscription: required");
        goto fail;
    }
    if (!eb_name_valid(subscription)) {
        eb_rpc_fail(rpc, EB_EINVAL, "subscription: not a valid name");
        goto fail;
    }
    st = eb_store_sub_get(rpc->db, bus.id, subscription, &sub);
    if (st == EB_ENOTFOUND) {
        eb_rpc_fail(rpc, st, "subscription: no subscription \"%s\" on bus \"%s\"", subscription,
                    busref);
        goto fail;
    }
    if (st) {
        eb_rpc_fail_store(rpc, st, "subscription");
        goto fail;
    }
    for (size_t i = 0; i < nids; i++)
        v[i].sub_id = sub.id;
    *items = v;
    return true;
fail:
    free(v);
    return false;
}

/* Answers not_applied: the indexes of items[0..n) that changed nothing.
 * Frees rpc. */
static void reply_not_applied(struct eb_rpc *rpc, const struct eb_ack_item *items, size_t n,
                              bool nack)
{
    uint32_t *idx = eb_calloc(n ? n : 1, sizeof *idx);
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        if (!items[i].applied)
            idx[k++] = (uint32_t)i;
    if (nack) {
        Cebus__V1__NackResponse resp = CEBUS__V1__NACK_RESPONSE__INIT;
        resp.n_not_applied = k;
        resp.not_applied = idx;
        eb_rpc_reply(rpc, &resp.base);
    } else {
        Cebus__V1__AckResponse resp = CEBUS__V1__ACK_RESPONSE__INIT;
        resp.n_not_applied = k;
        resp.not_applied = idx;
        eb_rpc_reply(rpc, &resp.base);
    }
    free(idx);
}

/* The acker's completion, on its thread: the answer goes after COMMIT. */
static void ack_done(struct eb_ack_req *req, eb_status st)
{
    struct ack_call *a = (struct ack_call *)req;

    if (st)
        eb_rpc_fail(a->rpc, st == EB_EUNAVAIL ? EB_EUNAVAIL : EB_EINTERNAL, "%s",
                    st == EB_EUNAVAIL ? "database unavailable; nothing was acked; retry"
                                      : "internal error; nothing was acked");
    else
        reply_not_applied(a->rpc, req->items, req->n, false);
    free(req->items);
    free(a);
}

void eb_rpc_ack(struct eb_rpc *rpc)
{
    Cebus__V1__AckRequest *req;
    struct eb_ack_item *items = NULL;
    struct ack_call *a;
    size_t n;
    eb_status st;

    req = cebus__v1__ack_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid AckRequest message");
        return;
    }
    n = req->n_ack_ids;
    if (!resolve(rpc, "ack", req->bus, req->subscription, req->ack_ids, n, &items)) {
        cebus__v1__ack_request__free_unpacked(req, NULL);
        return;
    }
    cebus__v1__ack_request__free_unpacked(req, NULL);
    a = eb_calloc(1, sizeof *a);
    a->rpc = rpc;
    a->areq.items = items;
    a->areq.n = n;
    a->areq.done = ack_done;
    st = eb_acker_submit(rpc->app->acker, &a->areq);
    if (st) {
        free(items);
        free(a);
        eb_rpc_fail(rpc, EB_EUNAVAIL, "server shutting down; retry elsewhere");
    }
}

void eb_rpc_nack(struct eb_rpc *rpc)
{
    Cebus__V1__NackRequest *req;
    struct eb_ack_item *items = NULL;
    size_t n;
    eb_status st;

    req = cebus__v1__nack_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid NackRequest message");
        return;
    }
    if (req->redelivery_delay_ms > EB_NACK_DELAY_MAX_MS) {
        eb_rpc_fail(rpc, EB_EINVAL, "redelivery_delay_ms: at most %d (one hour)",
                    EB_NACK_DELAY_MAX_MS);
        goto out;
    }
    if (strlen(req->error) > EB_NACK_ERROR_MAX) {
        eb_rpc_fail(rpc, EB_EINVAL, "error: at most %d bytes", EB_NACK_ERROR_MAX);
        goto out;
    }
    n = req->n_ack_ids;
    if (!resolve(rpc, "nack", req->bus, req->subscription, req->ack_ids, n, &items))
        goto out;
    st = eb_store_sub_nack(rpc->db, items, n, (int)req->redelivery_delay_ms,
                           req->error[0] ? req->error : NULL, 0);
    if (st) {
        eb_rpc_fail(rpc, st == EB_EUNAVAIL ? EB_EUNAVAIL : EB_EINTERNAL, "%s",
                    st == EB_EUNAVAIL ? "database unavailable; nothing was nacked; retry"
                                      : "internal error; nothing was nacked");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (items[i].applied)
            eb_metrics_add(EB_M_SUB_NACKS, 1);
    /* The streams that held these leases have room again, and the rows
     * are due again (at once for a delay of 0). */
    eb_dispatch_settled(rpc->app->dispatch, items, n);
    reply_not_applied(rpc, items, n, true);
out:
    free(items);
    cebus__v1__nack_request__free_unpacked(req, NULL);
}
