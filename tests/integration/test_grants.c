/* Grants and event sources (issue 4): the grant RPCs, what each
 * permission opens on another tenant's bus and what it does not, NOT_FOUND
 * answers that do not reveal whether a bus exists, revocation reaching
 * open streams, and source prefixes enforced per entry, optional or (with
 * CEBUS_REQUIRE_SOURCES=true) mandatory. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Caches live 1 s; revocation must reach streams within about a second. */
#define SETTLE_LIMIT_MS 4000

/* A ("acme") owns the bus "orders"; B ("globex") is the grantee. */
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

/* ---- Helpers -------------------------------------------------------------- */

/* Adds (add) or removes a source prefix of tenant ("": the caller's). */
static int source_call(cebus_client *c, bool add, const char *tenant, const char *prefix,
                       cebus_error *err)
{
    Cebus__V1__CreateEventSourceRequest creq = CEBUS__V1__CREATE_EVENT_SOURCE_REQUEST__INIT;
    Cebus__V1__DeleteEventSourceRequest dreq = CEBUS__V1__DELETE_EVENT_SOURCE_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int rc;

    creq.tenant = dreq.tenant = (char *)tenant;
    creq.prefix = dreq.prefix = (char *)prefix;
    if (add)
        rc = cebus_call_unary(c, "/cebus.v1.Admin/CreateEventSource", &creq.base,
                              &cebus__v1__event_source__descriptor, 0, &resp, err);
    else
        rc = cebus_call_unary(c, "/cebus.v1.Admin/DeleteEventSource", &dreq.base,
                              &cebus__v1__delete_event_source_response__descriptor, 0, &resp,
                              err);
    if (rc == 0)
        protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

/* The source of H_OP_PUT's event: a test whose tenant registered prefixes
 * sets one of them. */
static const char *put_source = "/it/granted";

static int try_op(cebus_client *c, enum h_op op, const char *bus, cebus_error *err)
{
    const struct h_op_args a = {"granted", put_source, "owner-rule", "granted-rule",
                                "granted-rule"};
    return h_try_op(c, op, bus, &a, err);
}

/* Retries op until it answers code (grants and their absence are cached
 * for up to a second); fails the test after SETTLE_LIMIT_MS. */
static void wait_op(cebus_client *c, enum h_op op, const char *bus, int code)
{
    int64_t start = h_now_ms();
    cebus_error err;
    int rc;

    while ((rc = try_op(c, op, bus, &err)) != code) {
        if (h_now_ms() - start > SETTLE_LIMIT_MS)
            fail_msg("%s on %s still %s (%s) after %d ms, expected %s", h_op_names[op], bus,
                     cebus_status_name(rc), err.message, SETTLE_LIMIT_MS,
                     cebus_status_name(code));
        usleep(100 * 1000);
    }
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

/* ---- Grant RPCs ----------------------------------------------------------- */

static void test_grant_rpcs(void **state)
{
    struct h_env *env = *state;
    cebus_client *a_adm = cebus_client_new(env->srv[0].addr, A.admin_key);
    cebus_client *a_pub = cebus_client_new(env->srv[0].addr, A.publisher_key);
    cebus_client *b_adm = cebus_client_new(env->srv[0].addr, B.admin_key);
    Cebus__V1__CreateGrantRequest req = CEBUS__V1__CREATE_GRANT_REQUEST__INIT;
    Cebus__V1__ListGrantsRequest lreq = CEBUS__V1__LIST_GRANTS_REQUEST__INIT;
    Cebus__V1__Grant *g = NULL;
    Cebus__V1__ListGrantsResponse *list = NULL;
    cebus_error err;
    const Cebus__V1__Permission sub = CEBUS__V1__PERMISSION__PERMISSION_SUBSCRIBE;

    req.bus = "orders";
    req.grantee_tenant = "globex";
    req.permission = CEBUS__V1__PERMISSION__PERMISSION_PUBLISH;
    h_assert_status("CreateGrant",
                    cebus_call_unary(a_adm, "/cebus.v1.Admin/CreateGrant", &req.base,
                                     &cebus__v1__grant__descriptor, 0, (ProtobufCMessage **)&g,
                                     &err),
                    &err, 0, NULL);
    assert_string_equal(g->bus, "acme/orders");
    assert_string_equal(g->grantee_tenant, "globex");
    assert_int_equal(g->permission, CEBUS__V1__PERMISSION__PERMISSION_PUBLISH);
    assert_non_null(g->create_time);
    cebus__v1__grant__free_unpacked(g, NULL);

    h_assert_status("duplicate", h_grant(a_adm, true, "orders", "globex",
                                       CEBUS__V1__PERMISSION__PERMISSION_PUBLISH, &err),
                    &err, GRPC_STATUS_ALREADY_EXISTS, NULL);
    h_assert_status("missing grantee", h_grant(a_adm, true, "orders", "nobody", sub, &err), &err,
                    GRPC_STATUS_NOT_FOUND, "grantee_tenant");
    h_assert_status("unspecified permission",
                    h_grant(a_adm, true, "orders", "globex",
                          CEBUS__V1__PERMISSION__PERMISSION_UNSPECIFIED, &err),
                    &err, GRPC_STATUS_INVALID_ARGUMENT, "permission");
    h_assert_status("grant to itself", h_grant(a_adm, true, "orders", "acme", sub, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "grantee_tenant");
    h_assert_status("publisher", h_grant(a_pub, true, "orders", "globex", sub, &err), &err,
                    GRPC_STATUS_PERMISSION_DENIED, NULL);
    h_assert_status("other tenant's admin",
                    h_grant(b_adm, true, "acme/orders", "globex", sub, &err), &err,
                    GRPC_STATUS_NOT_FOUND, "bus");
    h_assert_status("platform admin",
                    h_grant(env->admin, true, "acme/orders", "globex", sub, &err), &err, 0,
                    NULL);

    lreq.bus = "orders";
    h_assert_status("ListGrants",
                    cebus_call_unary(a_adm, "/cebus.v1.Admin/ListGrants", &lreq.base,
                                     &cebus__v1__list_grants_response__descriptor, 0,
                                     (ProtobufCMessage **)&list, &err),
                    &err, 0, NULL);
    assert_int_equal(list->n_grants, 2);
    assert_int_equal(list->grants[0]->permission, CEBUS__V1__PERMISSION__PERMISSION_PUBLISH);
    assert_int_equal(list->grants[1]->permission, sub);
    cebus__v1__list_grants_response__free_unpacked(list, NULL);
    /* The grantee does not see the owner's grant list. */
    lreq.bus = "acme/orders";
    h_assert_status("grantee ListGrants",
                    cebus_call_unary(b_adm, "/cebus.v1.Admin/ListGrants", &lreq.base,
                                     &cebus__v1__list_grants_response__descriptor, 0,
                                     (ProtobufCMessage **)&list, &err),
                    &err, GRPC_STATUS_NOT_FOUND, NULL);

    h_assert_status("revoke", h_grant(a_adm, false, "orders", "globex", sub, &err), &err, 0, NULL);
    h_assert_status("revoke again", h_grant(a_adm, false, "orders", "globex", sub, &err), &err,
                    GRPC_STATUS_NOT_FOUND, NULL);
    h_assert_status("revoke", h_grant(a_adm, false, "orders", "globex",
                                     CEBUS__V1__PERMISSION__PERMISSION_PUBLISH, &err),
                    &err, 0, NULL);
    cebus_client_free(a_adm);
    cebus_client_free(a_pub);
    cebus_client_free(b_adm);
}

/* Each permission, granted alone to B, opens exactly its calls on
 * "acme/orders" for B's tenant admin key; every other call is NOT_FOUND
 * with the message a missing bus gets. Revoking closes them again. */
static void test_grant_matrix(void **state)
{
    struct h_env *env = *state;
    static const struct {
        Cebus__V1__Permission perm;
        enum h_op probe; /* a call the grant opens */
        bool opens[H_NOPS];
    } rows[] = {
        {CEBUS__V1__PERMISSION__PERMISSION_PUBLISH, H_OP_PUT, {[H_OP_PUT] = true}},
        {CEBUS__V1__PERMISSION__PERMISSION_SUBSCRIBE,
         H_OP_LIST_RULES,
         {[H_OP_SUBSCRIBE] = true, [H_OP_TEST_PATTERN] = true, [H_OP_GET_RULE] = true,
          [H_OP_LIST_RULES] = true}},
        {CEBUS__V1__PERMISSION__PERMISSION_MANAGE_RULES,
         H_OP_LIST_RULES,
         {[H_OP_CREATE_RULE] = true, [H_OP_GET_RULE] = true, [H_OP_LIST_RULES] = true,
          [H_OP_DELETE_RULE] = true}},
    };
    cebus_client *a_adm = cebus_client_new(env->srv[0].addr, A.admin_key);
    cebus_client *b_adm = cebus_client_new(env->srv[0].addr, B.admin_key);
    cebus_client *b_sub = cebus_client_new(env->srv[0].addr, B.subscriber_key);
    Cebus__V1__CreateRuleRequest rreq = CEBUS__V1__CREATE_RULE_REQUEST__INIT;
    Cebus__V1__Rule *rule = NULL;
    cebus_error err;

    rreq.bus = "orders";
    rreq.name = "owner-rule";
    rreq.pattern = "{}";
    h_assert_status("A CreateRule", cebus_create_rule(a_adm, &rreq, &rule, &err), &err, 0, NULL);
    cebus__v1__rule__free_unpacked(rule, NULL);
    /* Subscribe answers at once when there is an event to deliver. */
    h_put_one_ok(a_adm, "orders", "matrix-0", "t", NULL);

    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        h_assert_status("CreateGrant",
                        h_grant(a_adm, true, "orders", "globex", rows[r].perm, &err), &err, 0,
                        NULL);
        wait_op(b_adm, rows[r].probe, "acme/orders", 0);
        for (enum h_op op = 0; op < H_NOPS; op++) {
            cebus_error e1, e2;
            char n1[600], n2[600];
            int rc1 = try_op(b_adm, op, "acme/orders", &e1);

            if (rows[r].opens[op]) {
                if (rc1 != 0)
                    fail_msg("permission %d: %s gave %s (%s); want OK", (int)rows[r].perm,
                             h_op_names[op], cebus_status_name(rc1), e1.message);
                continue;
            }
            if (try_op(b_adm, op, "acme/ghost", &e2) != GRPC_STATUS_NOT_FOUND ||
                rc1 != GRPC_STATUS_NOT_FOUND)
                fail_msg("permission %d: %s gave %s (%s); want NOT_FOUND", (int)rows[r].perm,
                         h_op_names[op], cebus_status_name(rc1), e1.message);
            h_normalize(e1.message, "acme/orders", n1, sizeof n1);
            h_normalize(e2.message, "acme/ghost", n2, sizeof n2);
            if (strcmp(n1, n2) != 0)
                fail_msg("%s tells an existing bus from a missing one: \"%s\" vs \"%s\"",
                         h_op_names[op], e1.message, e2.message);
        }
        h_assert_status("RevokeGrant",
                        h_grant(a_adm, false, "orders", "globex", rows[r].perm, &err), &err, 0,
                        NULL);
        wait_op(b_adm, rows[r].probe, "acme/orders", GRPC_STATUS_NOT_FOUND);
    }

    /* A grant does not lift the role checks: a subscriber key may not
     * publish through a PUBLISH grant. */
    h_assert_status("CreateGrant", h_grant(a_adm, true, "orders", "globex",
                                         CEBUS__V1__PERMISSION__PERMISSION_PUBLISH, &err),
                    &err, 0, NULL);
    wait_op(b_adm, H_OP_PUT, "acme/orders", 0);
    h_assert_status("subscriber PutEvents", try_op(b_sub, H_OP_PUT, "acme/orders", &err), &err,
                    GRPC_STATUS_PERMISSION_DENIED, NULL);
    h_assert_status("RevokeGrant", h_grant(a_adm, false, "orders", "globex",
                                          CEBUS__V1__PERMISSION__PERMISSION_PUBLISH, &err),
                    &err, 0, NULL);
    cebus_client_free(a_adm);
    cebus_client_free(b_adm);
    cebus_client_free(b_sub);
}

/* A stream opened through a SUBSCRIBE grant ends with PERMISSION_DENIED
 * about a second after the grant is revoked; the owner's stream goes on. */
static void test_revoking_a_grant_ends_streams(void **state)
{
    struct h_env *env = *state;
    cebus_client *a_adm = cebus_client_new(env->srv[0].addr, A.admin_key);
    cebus_client *a_sub = cebus_client_new(env->srv[0].addr, A.subscriber_key);
    cebus_client *b_sub = cebus_client_new(env->srv[0].addr, B.subscriber_key);
    cebus_stream *bs, *as;
    Cebus__V1__SubscribeResponse *m;
    cebus_error err;
    uint64_t seq;
    int64_t start;

    h_assert_status("CreateGrant", h_grant(a_adm, true, "orders", "globex",
                                         CEBUS__V1__PERMISSION__PERMISSION_SUBSCRIBE, &err),
                    &err, 0, NULL);
    wait_op(b_sub, H_OP_LIST_RULES, "acme/orders", 0);
    bs = h_subscribe_ok(b_sub, "acme/orders", "{\"type\":[\"rev\"]}",
                        CEBUS__V1__START_POSITION__START_POSITION_LATEST, 0);
    as = h_subscribe_ok(a_sub, "orders", "{\"type\":[\"rev\"]}",
                        CEBUS__V1__START_POSITION__START_POSITION_LATEST, 0);
    seq = h_put_one_ok(a_adm, "orders", "rev-1", "rev", NULL);
    m = h_expect_next(bs);
    assert_int_equal(m->sequence, seq);
    assert_string_equal(h_event_attr_string(m->event, "cebustenant"), "acme");
    cebus__v1__subscribe_response__free_unpacked(m, NULL);

    start = h_now_ms();
    h_assert_status("RevokeGrant", h_grant(a_adm, false, "orders", "globex",
                                          CEBUS__V1__PERMISSION__PERMISSION_SUBSCRIBE, &err),
                    &err, 0, NULL);
    expect_stream_end(bs, GRPC_STATUS_PERMISSION_DENIED, SETTLE_LIMIT_MS);
    print_message("grant revoked: stream ended after %lld ms\n",
                  (long long)(h_now_ms() - start));
    cebus_stream_close(bs);

    seq = h_put_one_ok(a_adm, "orders", "rev-2", "rev", NULL);
    m = h_expect_next(as);
    if (m->sequence != seq) {
        assert_string_equal(m->event->id, "rev-1");
        cebus__v1__subscribe_response__free_unpacked(m, NULL);
        m = h_expect_next(as);
    }
    assert_int_equal(m->sequence, seq);
    cebus__v1__subscribe_response__free_unpacked(m, NULL);
    cebus_stream_close(as);
    cebus_client_free(a_adm);
    cebus_client_free(a_sub);
    cebus_client_free(b_sub);
}

/* ---- Event sources -------------------------------------------------------- */

static void test_event_source_rpcs(void **state)
{
    struct h_env *env = *state;
    cebus_client *a_adm = cebus_client_new(env->srv[0].addr, A.admin_key);
    cebus_client *a_pub = cebus_client_new(env->srv[0].addr, A.publisher_key);
    cebus_client *b_adm = cebus_client_new(env->srv[0].addr, B.admin_key);
    Cebus__V1__ListEventSourcesRequest lreq = CEBUS__V1__LIST_EVENT_SOURCES_REQUEST__INIT;
    Cebus__V1__ListEventSourcesResponse *list = NULL;
    char big[1100];
    cebus_error err;

    h_assert_status("add", source_call(a_adm, true, "", "/acme/billing", &err), &err, 0, NULL);
    h_assert_status("add", source_call(a_adm, true, "acme", "/acme/crm", &err), &err, 0, NULL);
    h_assert_status("duplicate", source_call(a_adm, true, "", "/acme/crm", &err), &err,
                    GRPC_STATUS_ALREADY_EXISTS, "prefix");
    h_assert_status("empty", source_call(a_adm, true, "", "", &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "prefix");
    memset(big, 'x', 1025);
    big[1025] = '\0';
    h_assert_status("1025 bytes", source_call(a_adm, true, "", big, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "prefix");
    h_assert_status("not UTF-8", source_call(a_adm, true, "", "/acme/\xff", &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "prefix");
    h_assert_status("publisher", source_call(a_pub, true, "", "/acme/pub", &err), &err,
                    GRPC_STATUS_PERMISSION_DENIED, NULL);
    h_assert_status("other tenant", source_call(b_adm, true, "acme", "/acme/evil", &err), &err,
                    GRPC_STATUS_NOT_FOUND, NULL);
    h_assert_status("platform admin", source_call(env->admin, true, "acme", "/acme/ops", &err),
                    &err, 0, NULL);

    lreq.tenant = "";
    h_assert_status("list",
                    cebus_call_unary(a_adm, "/cebus.v1.Admin/ListEventSources", &lreq.base,
                                     &cebus__v1__list_event_sources_response__descriptor, 0,
                                     (ProtobufCMessage **)&list, &err),
                    &err, 0, NULL);
    assert_int_equal(list->n_sources, 3);
    assert_string_equal(list->sources[0]->prefix, "/acme/billing");
    assert_string_equal(list->sources[0]->tenant, "acme");
    cebus__v1__list_event_sources_response__free_unpacked(list, NULL);

    h_assert_status("remove", source_call(a_adm, false, "", "/acme/ops", &err), &err, 0, NULL);
    h_assert_status("remove again", source_call(a_adm, false, "", "/acme/ops", &err), &err,
                    GRPC_STATUS_NOT_FOUND, NULL);
    h_assert_status("remove", source_call(a_adm, false, "", "/acme/billing", &err), &err, 0,
                    NULL);
    h_assert_status("remove", source_call(a_adm, false, "", "/acme/crm", &err), &err, 0, NULL);
    cebus_client_free(a_adm);
    cebus_client_free(a_pub);
    cebus_client_free(b_adm);
}

static Cebus__V1__PutEventsResponse *put3(cebus_client *c, const char *bus, const char *s0,
                                          const char *s1, const char *s2);

/* A PUBLISH grantee that sends an event with the (source, id) of one the
 * owner published is not told "duplicate" with the owner's sequence: the
 * dedup window is per publishing tenant, so the grantee learns nothing of
 * the owner's events and its own event is stored. Its own retry is still
 * its duplicate. */
static void test_grantee_dedup_is_its_own(void **state)
{
    struct h_env *env = *state;
    struct h_tenant O, G;
    cebus_client *o_pub, *o_adm, *g_pub;
    Cebus__V1__PutEventsResponse *resp = NULL;
    h_event *ev;
    cebus_error err;
    uint64_t owner_seq;

    h_tenant_create_ok(env->admin, "dd-owner", "ledger", &O);
    h_tenant_create_ok(env->admin, "dd-grantee", "own", &G);
    o_pub = cebus_client_new(env->srv[0].addr, O.publisher_key);
    o_adm = cebus_client_new(env->srv[0].addr, O.admin_key);
    g_pub = cebus_client_new(env->srv[0].addr, G.publisher_key);
    h_assert_status("grant", h_grant(o_adm, true, "ledger", "dd-grantee",
                                          CEBUS__V1__PERMISSION__PERMISSION_PUBLISH, &err),
                    &err, 0, NULL);

    owner_seq = h_put_one_ok(o_pub, "ledger", "secret-id-1", "t", NULL);
    ev = h_event_new("secret-id-1", "/it", "t", NULL);
    for (int attempt = 0; attempt < 2; attempt++) {
        /* The grant may take up to a second to be seen. */
        for (int64_t deadline = h_now_ms() + SETTLE_LIMIT_MS;;) {
            int rc = h_put(g_pub, "dd-owner/ledger", &ev, 1, &resp, &err);
            if (rc == 0)
                break;
            if (h_now_ms() > deadline)
                fail_msg("grantee put: %s", err.message);
            usleep(100 * 1000);
        }
        assert_int_equal(resp->results[0]->code, 0);
        if (attempt == 0) {
            assert_false(resp->results[0]->duplicate);
            assert_true(resp->results[0]->sequence > owner_seq);
            owner_seq = resp->results[0]->sequence; /* the grantee's own */
        } else {
            assert_true(resp->results[0]->duplicate);
            assert_int_equal(resp->results[0]->sequence, owner_seq);
        }
        cebus__v1__put_events_response__free_unpacked(resp, NULL);
    }
    h_event_free(ev);
    cebus_client_free(o_pub);
    cebus_client_free(o_adm);
    cebus_client_free(g_pub);
}

/* A source prefix belongs to one tenant: an ISV cannot register the
 * platform's prefix (nor a longer or shorter one overlapping it) to publish
 * as the platform, and the refusal does not say who holds it. */
static void test_source_prefix_belongs_to_one_tenant(void **state)
{
    struct h_env *env = *state;
    struct h_tenant P, I;
    cebus_client *p_adm, *i_adm;
    cebus_error err;

    h_tenant_create_ok(env->admin, "vendor-official", "events", &P);
    h_tenant_create_ok(env->admin, "isv-sneaky", "events", &I);
    p_adm = cebus_client_new(env->srv[0].addr, P.admin_key);
    i_adm = cebus_client_new(env->srv[0].addr, I.admin_key);

    h_assert_status("vendor registers", source_call(p_adm, true, "", "/official/", &err), &err,
                    0, NULL);
    h_assert_status("isv takes the same", source_call(i_adm, true, "", "/official/", &err), &err,
                    GRPC_STATUS_PERMISSION_DENIED, "another tenant");
    assert_null(strstr(err.message, "vendor-official"));
    h_assert_status("isv takes a longer one",
                    source_call(i_adm, true, "", "/official/crm/", &err), &err,
                    GRPC_STATUS_PERMISSION_DENIED, "prefix: overlaps");
    h_assert_status("isv takes a shorter one", source_call(i_adm, true, "", "/off", &err), &err,
                    GRPC_STATUS_PERMISSION_DENIED, NULL);
    /* Not even through the platform admin: one owner per prefix. */
    h_assert_status("platform admin for the isv",
                    source_call(env->admin, true, "isv-sneaky", "/official/x", &err), &err,
                    GRPC_STATUS_PERMISSION_DENIED, NULL);
    h_assert_status("isv takes its own", source_call(i_adm, true, "", "/isv-sneaky/", &err),
                    &err, 0, NULL);
    h_assert_status("vendor narrows its own",
                    source_call(p_adm, true, "", "/official/billing/", &err), &err, 0, NULL);

    /* A tenant without prefixes may publish any source but an owned one. */
    {
        struct h_tenant F;
        cebus_client *f_pub;
        Cebus__V1__PutEventsResponse *resp;
        int64_t start = h_now_ms();

        h_tenant_create_ok(env->admin, "freelancer", "events", &F);
        f_pub = cebus_client_new(env->srv[0].addr, F.publisher_key);
        for (;;) {
            resp = put3(f_pub, "events", "/official/crm", "/freelance/app", "/officialx");
            if (resp->failed_count == 1)
                break;
            cebus__v1__put_events_response__free_unpacked(resp, NULL);
            if (h_now_ms() - start > SETTLE_LIMIT_MS)
                fail_msg("the owned prefix is not enforced after %d ms", SETTLE_LIMIT_MS);
            usleep(100 * 1000);
        }
        assert_int_equal(resp->results[0]->code, GRPC_STATUS_PERMISSION_DENIED);
        assert_non_null(strstr(resp->results[0]->message, "events[0].source: under a source "
                                                          "prefix another tenant owns"));
        assert_null(strstr(resp->results[0]->message, "vendor-official"));
        assert_int_equal(resp->results[1]->code, 0);
        assert_int_equal(resp->results[2]->code, 0);
        cebus__v1__put_events_response__free_unpacked(resp, NULL);
        cebus_client_free(f_pub);
    }
    /* Once released, a prefix can change hands. */
    h_assert_status("vendor removes", source_call(p_adm, false, "", "/official/", &err), &err, 0,
                    NULL);
    h_assert_status("vendor removes", source_call(p_adm, false, "", "/official/billing/", &err),
                    &err, 0, NULL);
    h_assert_status("isv after release", source_call(i_adm, true, "", "/official/", &err), &err,
                    0, NULL);
    cebus_client_free(p_adm);
    cebus_client_free(i_adm);
}

/* Puts three events with the given sources on bus; returns the response. */
static Cebus__V1__PutEventsResponse *put3(cebus_client *c, const char *bus, const char *s0,
                                          const char *s1, const char *s2)
{
    const char *sources[3] = {s0, s1, s2};
    h_event *evs[3];
    Cebus__V1__PutEventsResponse *resp = NULL;
    cebus_error err;
    static int round;
    char id[32];

    /* Fresh ids: the dedup window must not answer a retry as a duplicate. */
    round++;
    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof id, "e%d-%d", i, round);
        evs[i] = h_event_new(id, sources[i], "t", NULL);
    }
    h_assert_status("PutEvents", h_put(c, bus, evs, 3, &resp, &err), &err, 0, NULL);
    for (int i = 0; i < 3; i++)
        h_event_free(evs[i]);
    return resp;
}

/* Once a tenant registers a prefix, its events outside every prefix are
 * rejected one by one (PERMISSION_DENIED naming events[i].source) while
 * the others in the batch commit; also on a bus it publishes to through a
 * grant. Without prefixes, any source goes. */
static void test_source_spoofing_rejected_per_entry(void **state)
{
    struct h_env *env = *state;
    struct h_tenant T;
    cebus_client *t_adm, *t_pub, *a_adm;
    Cebus__V1__PutEventsResponse *resp;
    cebus_error err;
    int64_t start = h_now_ms();

    h_tenant_create_ok(env->admin, "initech", "apps", &T);
    t_adm = cebus_client_new(env->srv[0].addr, T.admin_key);
    t_pub = cebus_client_new(env->srv[0].addr, T.publisher_key);
    a_adm = cebus_client_new(env->srv[0].addr, A.admin_key);

    /* No prefix registered: anything goes, the platform's source too. */
    resp = put3(t_pub, "apps", "/initech/app", "/platform/crm", "anything");
    assert_int_equal(resp->failed_count, 0);
    cebus__v1__put_events_response__free_unpacked(resp, NULL);

    h_assert_status("add", source_call(t_adm, true, "", "/initech/", &err), &err, 0, NULL);
    for (;;) {
        resp = put3(t_pub, "apps", "/initech/app", "/platform/crm", "/initech/other");
        if (resp->failed_count == 1)
            break;
        cebus__v1__put_events_response__free_unpacked(resp, NULL);
        if (h_now_ms() - start > SETTLE_LIMIT_MS)
            fail_msg("the registered prefix is not enforced after %d ms", SETTLE_LIMIT_MS);
        usleep(100 * 1000);
    }
    assert_int_equal(resp->results[1]->code, GRPC_STATUS_PERMISSION_DENIED);
    assert_non_null(strstr(resp->results[1]->message, "events[1].source"));
    assert_int_equal(resp->results[0]->code, 0);
    assert_int_equal(resp->results[2]->code, 0);
    assert_true(resp->results[0]->sequence > 0);
    assert_int_equal(resp->results[2]->sequence, resp->results[0]->sequence + 1);
    cebus__v1__put_events_response__free_unpacked(resp, NULL);

    /* The publishing tenant's prefixes apply on a granted bus too. */
    h_assert_status("CreateGrant", h_grant(a_adm, true, "orders", "initech",
                                         CEBUS__V1__PERMISSION__PERMISSION_PUBLISH, &err),
                    &err, 0, NULL);
    put_source = "/initech/probe";
    wait_op(t_pub, H_OP_PUT, "acme/orders", GRPC_STATUS_OK);
    put_source = "/it/granted";
    resp = put3(t_pub, "acme/orders", "/acme/spoofed", "/initech/x", "/platform/y");
    assert_int_equal(resp->failed_count, 2);
    assert_int_equal(resp->results[0]->code, GRPC_STATUS_PERMISSION_DENIED);
    assert_non_null(strstr(resp->results[0]->message, "events[0].source"));
    assert_int_equal(resp->results[1]->code, 0);
    assert_int_equal(resp->results[2]->code, GRPC_STATUS_PERMISSION_DENIED);
    cebus__v1__put_events_response__free_unpacked(resp, NULL);

    cebus_client_free(t_adm);
    cebus_client_free(t_pub);
    cebus_client_free(a_adm);
}

/* With CEBUS_REQUIRE_SOURCES=true a tenant without prefixes publishes
 * nothing; registering one opens exactly that prefix. */
static void test_require_sources(void **state)
{
    struct h_env *env = *state;
    static const char *const extra[] = {"CEBUS_REQUIRE_SOURCES=true", NULL};
    struct h_tenant T;
    cebus_client *t_adm, *t_pub;
    Cebus__V1__PutEventsResponse *resp;
    cebus_error err;
    int64_t start = h_now_ms();
    int idx = h_env_add_server_ok(env, extra);

    h_tenant_create_ok(env->admin, "strict", "apps", &T);
    t_adm = cebus_client_new(env->srv[idx].addr, T.admin_key);
    t_pub = cebus_client_new(env->srv[idx].addr, T.publisher_key);

    resp = put3(t_pub, "apps", "/strict/a", "/strict/b", "/other");
    assert_int_equal(resp->failed_count, 3);
    assert_int_equal(resp->results[0]->code, GRPC_STATUS_PERMISSION_DENIED);
    assert_non_null(strstr(resp->results[0]->message, "events[0].source"));
    cebus__v1__put_events_response__free_unpacked(resp, NULL);

    h_assert_status("add", source_call(t_adm, true, "", "/strict/", &err), &err, 0, NULL);
    for (;;) {
        resp = put3(t_pub, "apps", "/strict/a", "/strict/b", "/other");
        if (resp->failed_count == 1)
            break;
        cebus__v1__put_events_response__free_unpacked(resp, NULL);
        if (h_now_ms() - start > SETTLE_LIMIT_MS)
            fail_msg("the registered prefix does not open publishing after %d ms",
                     SETTLE_LIMIT_MS);
        usleep(100 * 1000);
    }
    assert_int_equal(resp->results[2]->code, GRPC_STATUS_PERMISSION_DENIED);
    cebus__v1__put_events_response__free_unpacked(resp, NULL);
    cebus_client_free(t_adm);
    cebus_client_free(t_pub);
}

/* ---- CLI ------------------------------------------------------------------- */

/* Runs the CLI with key and fails unless it exits with want; returns its
 * stdout (free()). */
static char *cli(const char *addr, const char *key, const char *const *args, int want)
{
    struct h_cli_result r;
    char *out;

    h_cli_run(addr, key, NULL, 30000, args, &r);
    if (r.exit_code != want)
        fail_msg("cebus %s %s: exit %d, want %d; stderr: %s", args[0], args[1] ? args[1] : "",
                 r.exit_code, want, r.err);
    out = r.out;
    r.out = NULL;
    h_cli_result_free(&r);
    return out;
}

/* `cebus grant create|list|revoke` and `cebus source add|list|remove`. */
static void test_cli_grants_and_sources(void **state)
{
    struct h_env *env = *state;
    const char *addr = env->srv[0].addr;
    static const char *const create[] = {"grant", "create", "--bus", "orders", "--tenant",
                                         "globex", "--permission", "manage-rules", NULL};
    static const char *const list[] = {"grant", "list", "--bus", "orders", NULL};
    static const char *const revoke[] = {"grant", "revoke", "--bus", "orders", "--tenant",
                                         "globex", "--permission", "manage-rules", NULL};
    static const char *const bad[] = {"grant", "create", "--bus", "orders", "--tenant",
                                      "globex", "--permission", "read", NULL};
    static const char *const help[] = {"grant", "create", "--help", NULL};
    static const char *const add[] = {"source", "add", "/acme/cli/", NULL};
    static const char *const slist[] = {"source", "list", NULL};
    static const char *const padd[] = {"source", "add", "--tenant", "acme", "/acme/ops/", NULL};
    static const char *const remove[] = {"source", "remove", "/acme/cli/", NULL};
    static const char *const premove[] = {"source", "remove", "--tenant", "acme", "/acme/ops/",
                                          NULL};
    char *out;

    out = cli(addr, A.admin_key, create, 0);
    assert_non_null(strstr(out, "\"grantee_tenant\":\"globex\""));
    assert_non_null(strstr(out, "PERMISSION_MANAGE_RULES"));
    free(out);
    out = cli(addr, A.admin_key, list, 0);
    assert_non_null(strstr(out, "\"bus\":\"acme/orders\""));
    free(out);
    free(cli(addr, A.admin_key, create, 1));
    free(cli(addr, A.admin_key, bad, 2));
    out = cli(addr, A.admin_key, help, 0);
    assert_non_null(strstr(out, "usage: cebus grant create"));
    free(out);
    free(cli(addr, A.admin_key, revoke, 0));
    out = cli(addr, A.admin_key, list, 0);
    assert_null(strstr(out, "globex"));
    free(out);

    free(cli(addr, A.admin_key, add, 0));
    free(cli(addr, H_ADMIN_KEY, padd, 0));
    out = cli(addr, A.admin_key, slist, 0);
    assert_non_null(strstr(out, "\"prefix\":\"/acme/cli/\""));
    assert_non_null(strstr(out, "\"prefix\":\"/acme/ops/\""));
    free(out);
    free(cli(addr, A.admin_key, remove, 0));
    free(cli(addr, H_ADMIN_KEY, premove, 0));
    out = cli(addr, A.admin_key, slist, 0);
    assert_string_equal(out, "");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grant_rpcs),
        cmocka_unit_test(test_grant_matrix),
        cmocka_unit_test(test_revoking_a_grant_ends_streams),
        cmocka_unit_test(test_event_source_rpcs),
        cmocka_unit_test(test_source_prefix_belongs_to_one_tenant),
        cmocka_unit_test(test_grantee_dedup_is_its_own),
        cmocka_unit_test(test_source_spoofing_rejected_per_entry),
        cmocka_unit_test(test_require_sources),
        cmocka_unit_test(test_cli_grants_and_sources),
    };

    return cmocka_run_group_tests(tests, group_setup, h_env_teardown);
}
