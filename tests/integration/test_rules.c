/* Rule management and live rule changes (issue 3): UpdateRule with each
 * update_mask path and its errors, who may update whose rules, and streams
 * opened through a rule's subscription on one replica following an update,
 * a disable, an enable and a delete made through the other, without losing
 * or repeating an event. Waits poll up to a deadline; nothing asserts how
 * long a change took. */
#include "harness.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* How long a change may take to reach a stream on the other replica before
 * a test gives up: the contract is about a second; sanitizer builds on a
 * busy machine get slack. */
#define PROPAGATION_LIMIT_MS 5000
/* Events published per run, at most (a bound, not a target). */
#define MAX_RUN 2000

/* A ("acme") owns bus "orders"; B ("globex") is another tenant. */
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

/* The index of the second replica, started on first use. */
static int replica(struct h_env *env)
{
    if (env->nservers < 2)
        h_env_add_server_ok(env, NULL);
    return 1;
}

/* ---- Helpers -------------------------------------------------------------- */

/* Creates a rule with subscription targets subs (NULL-terminated, may be
 * NULL). Returns the call's status. */
static int create_rule(cebus_client *c, const char *bus, const char *name, const char *pattern,
                       const char *const *subs, bool disabled, cebus_error *err)
{
    Cebus__V1__CreateRuleRequest req = CEBUS__V1__CREATE_RULE_REQUEST__INIT;
    Cebus__V1__Target targets[4], *ptrs[4];
    Cebus__V1__SubscriptionTarget st[4];
    Cebus__V1__Rule *rule = NULL;
    size_t n = 0;
    int rc;

    for (; subs && subs[n]; n++) {
        cebus__v1__target__init(&targets[n]);
        cebus__v1__subscription_target__init(&st[n]);
        st[n].name = (char *)subs[n];
        targets[n].kind_case = CEBUS__V1__TARGET__KIND_SUBSCRIPTION;
        targets[n].subscription = &st[n];
        ptrs[n] = &targets[n];
    }
    req.bus = (char *)bus;
    req.name = (char *)name;
    req.pattern = (char *)pattern;
    req.n_targets = n;
    req.targets = ptrs;
    req.disabled = disabled;
    rc = cebus_create_rule(c, &req, &rule, err);
    if (rc == 0)
        cebus__v1__rule__free_unpacked(rule, NULL);
    return rc;
}

static void create_rule_ok(cebus_client *c, const char *bus, const char *name,
                           const char *pattern, const char *const *subs)
{
    cebus_error err;

    h_assert_status("CreateRule", create_rule(c, bus, name, pattern, subs, false, &err), &err, 0,
                    NULL);
}

/* Sends UpdateRule with mask (NULL-terminated) and the values in *rule.
 * Returns the call's status; on OK sets *out when out is not NULL. */
static int update_rule(cebus_client *c, const char *bus, const char *name,
                       Cebus__V1__Rule *rule, const char *const *mask, Cebus__V1__Rule **out,
                       cebus_error *err)
{
    Cebus__V1__UpdateRuleRequest req = CEBUS__V1__UPDATE_RULE_REQUEST__INIT;
    Cebus__V1__Rule *resp = NULL;
    size_t n = 0;
    int rc;

    while (mask && mask[n])
        n++;
    req.bus = (char *)bus;
    req.name = (char *)name;
    req.rule = rule;
    req.n_update_mask = n;
    req.update_mask = (char **)mask;
    rc = cebus_update_rule(c, &req, &resp, err);
    if (rc == 0) {
        if (out)
            *out = resp;
        else
            cebus__v1__rule__free_unpacked(resp, NULL);
    }
    return rc;
}

/* A Rule message with subscription targets subs (NULL-terminated). */
struct rule_buf {
    Cebus__V1__Rule rule;
    Cebus__V1__Target targets[6], *ptrs[6];
    Cebus__V1__SubscriptionTarget subs[6];
};

static void rule_buf_init(struct rule_buf *b, const char *pattern, const char *const *subs)
{
    cebus__v1__rule__init(&b->rule);
    b->rule.pattern = (char *)(pattern ? pattern : "");
    for (size_t i = 0; subs && subs[i]; i++) {
        cebus__v1__target__init(&b->targets[i]);
        cebus__v1__subscription_target__init(&b->subs[i]);
        b->subs[i].name = (char *)subs[i];
        b->targets[i].kind_case = CEBUS__V1__TARGET__KIND_SUBSCRIPTION;
        b->targets[i].subscription = &b->subs[i];
        b->ptrs[i] = &b->targets[i];
        b->rule.n_targets = i + 1;
    }
    b->rule.targets = b->ptrs;
}

static void set_pattern_ok(cebus_client *c, const char *bus, const char *name,
                           const char *pattern)
{
    struct rule_buf b;
    cebus_error err;

    rule_buf_init(&b, pattern, NULL);
    h_assert_status("UpdateRule pattern",
                    update_rule(c, bus, name, &b.rule, ARGS("pattern"), NULL, &err), &err, 0,
                    NULL);
}

static void set_enabled_ok(cebus_client *c, const char *bus, const char *name, bool enabled)
{
    struct rule_buf b;
    cebus_error err;

    rule_buf_init(&b, NULL, NULL);
    b.rule.enabled = enabled;
    h_assert_status("UpdateRule enabled",
                    update_rule(c, bus, name, &b.rule, ARGS("enabled"), NULL, &err), &err, 0,
                    NULL);
}

/* Opens a stream on a rule's subscription from the latest event. */
static cebus_stream *subscribe_sub_ok(cebus_client *c, const char *bus, const char *sub)
{
    Cebus__V1__SubscribeRequest req;
    cebus_stream *s = NULL;
    cebus_error err;
    int rc;

    h_subscribe_request(&req, bus, NULL, sub, CEBUS__V1__START_POSITION__START_POSITION_LATEST, 0);
    rc = cebus_subscribe(c, &req, &s, &err);
    if (rc != 0)
        fail_msg("Subscribe %s %s: %s: %s", bus, sub, cebus_status_name(rc), err.message);
    return s;
}

/* Waits for s to end with code (deliveries before the end are dropped)
 * and, when substr is not NULL, a message containing it. */
static void expect_stream_end(cebus_stream *s, int code, const char *substr)
{
    int64_t start = h_now_ms();

    for (;;) {
        Cebus__V1__SubscribeResponse *m = NULL;
        cebus_error err;
        int r = cebus_stream_next(s, 100, &m, &err);

        if (r == 1) {
            cebus__v1__subscribe_response__free_unpacked(m, NULL);
        } else if (r < 0) {
            h_assert_status("stream end", err.code, &err, code, substr);
            return;
        }
        if (h_now_ms() - start > PROPAGATION_LIMIT_MS)
            fail_msg("stream still open after %d ms", PROPAGATION_LIMIT_MS);
    }
}

/* ---- Numbered runs ---------------------------------------------------------
 *
 * A run publishes events "n-<i>" whose type cycles through run_types, one
 * at a time, on the owner's replica, while a stream on the other replica
 * reads. Afterwards every published event must have been delivered exactly
 * when the pattern in force at its place in the run matches it. */

static const char *const run_types[] = {"t.a", "t.b", "t.both", "t.none"};
#define OLD_PATTERN "{\"type\":[\"t.a\",\"t.both\"]}"
#define NEW_PATTERN "{\"type\":[\"t.b\",\"t.both\"]}"

static bool old_matches(int i)
{
    return i % 4 == 0 || i % 4 == 2;
}

static bool new_matches(int i)
{
    return i % 4 == 1 || i % 4 == 2;
}

/* Event ids must differ between runs: a bus answers a repeated (source,
 * id) as a duplicate and does not store it again. */
static int run_counter;

struct run {
    int id;                   /* distinguishes this run's event ids */
    cebus_client *pub;
    cebus_stream *s;
    const char *bus;
    int n;                    /* events published */
    uint64_t seq[MAX_RUN];    /* their sequences */
    bool delivered[MAX_RUN];
    int ndelivered;
    uint64_t last_seq;        /* of the last delivery */
};

/* Records one delivery: a run event (at most once, in sequence order) or
 * the end marker. Returns whether it was the marker. */
static bool run_record(struct run *r, Cebus__V1__SubscribeResponse *m)
{
    int i;
    char end_id[32];
    bool end;

    snprintf(end_id, sizeof end_id, "end-%d", r->id);
    end = strcmp(m->event->id, end_id) == 0;

    if (m->sequence <= r->last_seq)
        fail_msg("sequence %llu delivered after %llu", (unsigned long long)m->sequence,
                 (unsigned long long)r->last_seq);
    r->last_seq = m->sequence;
    if (!end) {
        int run_id;
        if (sscanf(m->event->id, "n%d-%d", &run_id, &i) != 2 || run_id != r->id || i < 0 ||
            i >= r->n)
            fail_msg("unexpected event %s", m->event->id);
        if (r->delivered[i])
            fail_msg("event %s delivered twice", m->event->id);
        r->delivered[i] = true;
        r->ndelivered++;
    }
    cebus__v1__subscribe_response__free_unpacked(m, NULL);
    return end;
}

/* Publishes the next event of the run and takes what the stream has. */
static void run_step(struct run *r)
{
    Cebus__V1__SubscribeResponse *m;
    char id[32];

    if (r->n >= MAX_RUN)
        fail_msg("the change did not reach the stream within %d events", MAX_RUN);
    snprintf(id, sizeof id, "n%d-%d", r->id, r->n);
    r->seq[r->n] = h_put_one_ok(r->pub, r->bus, id, run_types[r->n % 4], NULL);
    r->n++;
    while ((m = h_next(r->s, 0)) != NULL)
        run_record(r, m);
}

/* Starts a run on bus, published by pub and read from s. */
static struct run *run_new(cebus_client *pub, const char *bus, cebus_stream *s)
{
    struct run *r = calloc(1, sizeof *r);

    assert_non_null(r);
    r->id = ++run_counter;
    r->pub = pub;
    r->bus = bus;
    r->s = s;
    return r;
}

/* Publishes the end marker (type t.both) and reads up to it. */
static void run_finish(struct run *r)
{
    char id[32];

    snprintf(id, sizeof id, "end-%d", r->id);
    h_put_one_ok(r->pub, r->bus, id, "t.both", NULL);
    while (!run_record(r, h_expect_next(r->s)))
        ;
}

/* Whether some event of the run from index `from` on was delivered. */
static bool run_delivered_since(const struct run *r, int from)
{
    for (int i = from; i < r->n; i++)
        if (r->delivered[i])
            return true;
    return false;
}

/* Opens a stream on subscription sub and makes sure it is live: the
 * server may take the Subscribe after cebus_subscribe() returns, so
 * warm-up events of type t.both (which every pattern here matches) are
 * put until one arrives, and the stream is then read up to the last. */
static cebus_stream *live_stream_ok(cebus_client *sub_client, cebus_client *pub, const char *bus,
                                    const char *sub)
{
    cebus_stream *s = subscribe_sub_ok(sub_client, bus, sub);
    Cebus__V1__SubscribeResponse *m = NULL;
    int64_t deadline = h_now_ms() + H_EVENT_TIMEOUT_MS;
    uint64_t last = 0, seen = 0;
    char id[64];

    for (int k = 0; !m; k++) {
        if (h_now_ms() > deadline)
            fail_msg("stream on %s not live within %d ms", sub, H_EVENT_TIMEOUT_MS);
        snprintf(id, sizeof id, "warm-up-%s-%d", sub, k);
        last = h_put_one_ok(pub, bus, id, "t.both", NULL);
        m = h_next(s, 200);
    }
    for (;;) {
        assert_true(strncmp(m->event->id, "warm-up-", 8) == 0);
        seen = m->sequence;
        cebus__v1__subscribe_response__free_unpacked(m, NULL);
        if (seen >= last)
            break;
        m = h_expect_next(s);
    }
    return s;
}

/* ---- UpdateRule --------------------------------------------------------- */

static void test_update_rule_each_mask_path(void **state)
{
    struct h_env *env = *state;
    cebus_client *adm = cebus_client_new(env->srv[0].addr, A.admin_key);
    Cebus__V1__GetRuleRequest get = CEBUS__V1__GET_RULE_REQUEST__INIT;
    Cebus__V1__Rule *r = NULL, *g = NULL;
    struct rule_buf b;
    cebus_error err;
    int64_t created;

    create_rule_ok(adm, "orders", "upd", "{\"type\":[\"x\"]}", ARGS("upd-1"));
    get.bus = "orders";
    get.name = "upd";
    h_assert_status("GetRule", cebus_get_rule(adm, &get, &g, &err), &err, 0, NULL);
    created = g->create_time->seconds * 1000000 + g->create_time->nanos / 1000;
    cebus__v1__rule__free_unpacked(g, NULL);
    usleep(2000); /* update_time must move past create_time */

    /* pattern only: the rest stays. */
    rule_buf_init(&b, "{\"type\":[\"y\"]}", NULL);
    b.rule.description = "ignored: not in the mask";
    h_assert_status("pattern", update_rule(adm, "orders", "upd", &b.rule, ARGS("pattern"), &r,
                                           &err),
                    &err, 0, NULL);
    assert_string_equal(r->pattern, "{\"type\":[\"y\"]}");
    assert_string_equal(r->description, "");
    assert_true(r->enabled);
    assert_int_equal(r->n_targets, 1);
    assert_string_equal(r->targets[0]->subscription->name, "upd-1");
    assert_true(r->update_time->seconds * 1000000 + r->update_time->nanos / 1000 > created);
    cebus__v1__rule__free_unpacked(r, NULL);

    /* description and enabled together. */
    rule_buf_init(&b, NULL, NULL);
    b.rule.description = "new words";
    b.rule.enabled = false;
    h_assert_status("description+enabled",
                    update_rule(adm, "orders", "upd", &b.rule, ARGS("description", "enabled"),
                                &r, &err),
                    &err, 0, NULL);
    assert_string_equal(r->description, "new words");
    assert_false(r->enabled);
    assert_string_equal(r->pattern, "{\"type\":[\"y\"]}");
    cebus__v1__rule__free_unpacked(r, NULL);

    /* targets: replaced as a whole. */
    rule_buf_init(&b, NULL, ARGS("upd-2", "upd-3"));
    h_assert_status("targets", update_rule(adm, "orders", "upd", &b.rule, ARGS("targets"), &r,
                                           &err),
                    &err, 0, NULL);
    assert_int_equal(r->n_targets, 2);
    assert_string_equal(r->targets[0]->subscription->name, "upd-2");
    assert_string_equal(r->targets[1]->subscription->name, "upd-3");
    cebus__v1__rule__free_unpacked(r, NULL);

    /* What the update returned is what is stored. */
    h_assert_status("GetRule", cebus_get_rule(adm, &get, &g, &err), &err, 0, NULL);
    assert_string_equal(g->description, "new words");
    assert_false(g->enabled);
    assert_int_equal(g->n_targets, 2);
    cebus__v1__rule__free_unpacked(g, NULL);

    /* The old subscription name is free again; the new ones are taken. */
    create_rule_ok(adm, "orders", "upd-other", "{}", ARGS("upd-1"));
    rule_buf_init(&b, NULL, ARGS("upd-1"));
    h_assert_status("taken subscription",
                    update_rule(adm, "orders", "upd", &b.rule, ARGS("targets"), NULL, &err), &err,
                    GRPC_STATUS_ALREADY_EXISTS, "targets");

    /* The failed update changed nothing. */
    h_assert_status("GetRule", cebus_get_rule(adm, &get, &g, &err), &err, 0, NULL);
    assert_int_equal(g->n_targets, 2);
    cebus__v1__rule__free_unpacked(g, NULL);

    /* No targets at all is a rule that feeds nothing, as with CreateRule. */
    rule_buf_init(&b, NULL, NULL);
    h_assert_status("no targets", update_rule(adm, "orders", "upd", &b.rule, ARGS("targets"), &r,
                                              &err),
                    &err, 0, NULL);
    assert_int_equal(r->n_targets, 0);
    cebus__v1__rule__free_unpacked(r, NULL);
    cebus_client_free(adm);
}

static void test_update_rule_errors_name_the_field(void **state)
{
    struct h_env *env = *state;
    cebus_client *adm = cebus_client_new(env->srv[0].addr, A.admin_key);
    Cebus__V1__Target http = CEBUS__V1__TARGET__INIT, *http_ptr = &http;
    Cebus__V1__HttpTarget h = CEBUS__V1__HTTP_TARGET__INIT;
    Cebus__V1__Target unset = CEBUS__V1__TARGET__INIT, *unset_ptr = &unset;
    struct rule_buf b;
    char longdesc[600];
    cebus_error err;

    create_rule_ok(adm, "orders", "errs", "{}", ARGS("errs-1"));
    rule_buf_init(&b, "{}", NULL);

    h_assert_status("empty mask", update_rule(adm, "orders", "errs", &b.rule, NULL, NULL, &err),
                    &err, GRPC_STATUS_INVALID_ARGUMENT, "update_mask: required");
    h_assert_status("unknown path",
                    update_rule(adm, "orders", "errs", &b.rule, ARGS("pattern", "colour"), NULL,
                                &err),
                    &err, GRPC_STATUS_INVALID_ARGUMENT, "update_mask[1]: unknown field \"colour\"");
    h_assert_status("name is not updatable",
                    update_rule(adm, "orders", "errs", &b.rule, ARGS("name"), NULL, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "\"name\"");
    h_assert_status("unprintable path",
                    update_rule(adm, "orders", "errs", &b.rule, ARGS("\x01\xff"), NULL, &err),
                    &err, GRPC_STATUS_INVALID_ARGUMENT, "update_mask[0]: unknown field;");
    h_assert_status("no rule", update_rule(adm, "orders", "errs", NULL, ARGS("pattern"), NULL,
                                           &err),
                    &err, GRPC_STATUS_INVALID_ARGUMENT, "rule: required");

    b.rule.pattern = "";
    h_assert_status("empty pattern",
                    update_rule(adm, "orders", "errs", &b.rule, ARGS("pattern"), NULL, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "pattern: required");
    b.rule.pattern = "{\"data\":{\"amount\":[{\"numeric\":[\">\"]}]}}";
    h_assert_status("bad pattern",
                    update_rule(adm, "orders", "errs", &b.rule, ARGS("pattern"), NULL, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "pattern: data.amount");
    b.rule.pattern = "{\"type\":";
    h_assert_status("not JSON",
                    update_rule(adm, "orders", "errs", &b.rule, ARGS("pattern"), NULL, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "pattern");

    memset(longdesc, 'd', sizeof longdesc - 1);
    longdesc[sizeof longdesc - 1] = '\0';
    b.rule.description = longdesc;
    h_assert_status("description",
                    update_rule(adm, "orders", "errs", &b.rule, ARGS("description"), NULL, &err),
                    &err, GRPC_STATUS_INVALID_ARGUMENT, "description: longer than");

    rule_buf_init(&b, NULL, ARGS("bad name!"));
    h_assert_status("target name",
                    update_rule(adm, "orders", "errs", &b.rule, ARGS("targets"), NULL, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "targets[0].subscription.name");
    rule_buf_init(&b, NULL, ARGS("dup", "dup"));
    h_assert_status("duplicate targets",
                    update_rule(adm, "orders", "errs", &b.rule, ARGS("targets"), NULL, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "targets[1].subscription.name: duplicate");
    rule_buf_init(&b, NULL, ARGS("t1", "t2", "t3", "t4", "t5", "t6"));
    h_assert_status("too many targets",
                    update_rule(adm, "orders", "errs", &b.rule, ARGS("targets"), NULL, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "targets: at most");
    rule_buf_init(&b, NULL, NULL);
    h.url = "https://example.com/hook";
    http.kind_case = CEBUS__V1__TARGET__KIND_HTTP;
    http.http = &h;
    b.rule.n_targets = 1;
    b.rule.targets = &http_ptr;
    h_assert_status("http target",
                    update_rule(adm, "orders", "errs", &b.rule, ARGS("targets"), NULL, &err), &err,
                    GRPC_STATUS_UNIMPLEMENTED, "targets[0]");
    b.rule.targets = &unset_ptr;
    h_assert_status("target kind unset",
                    update_rule(adm, "orders", "errs", &b.rule, ARGS("targets"), NULL, &err), &err,
                    GRPC_STATUS_INVALID_ARGUMENT, "targets[0]: kind not set");

    rule_buf_init(&b, "{}", NULL);
    h_assert_status("missing rule",
                    update_rule(adm, "orders", "nope", &b.rule, ARGS("pattern"), NULL, &err), &err,
                    GRPC_STATUS_NOT_FOUND, "name: no rule \"nope\" on bus \"orders\"");
    h_assert_status("bad rule name",
                    update_rule(adm, "orders", "no pe", &b.rule, ARGS("pattern"), NULL, &err),
                    &err, GRPC_STATUS_INVALID_ARGUMENT, "name");
    h_assert_status("missing bus",
                    update_rule(adm, "nobus", "errs", &b.rule, ARGS("pattern"), NULL, &err), &err,
                    GRPC_STATUS_NOT_FOUND, "bus");
    cebus_client_free(adm);
}

/* Roles, tenants and grants: as CreateRule and DeleteRule. */
static void test_update_rule_access(void **state)
{
    struct h_env *env = *state;
    cebus_client *a_adm = cebus_client_new(env->srv[0].addr, A.admin_key);
    cebus_client *a_pub = cebus_client_new(env->srv[0].addr, A.publisher_key);
    cebus_client *a_sub = cebus_client_new(env->srv[0].addr, A.subscriber_key);
    cebus_client *b_adm = cebus_client_new(env->srv[0].addr, B.admin_key);
    struct rule_buf b;
    cebus_error err, missing;
    int64_t deadline;
    int rc;

    create_rule_ok(a_adm, "orders", "acl", "{}", NULL);
    rule_buf_init(&b, "{\"type\":[\"acl\"]}", NULL);
    h_assert_status("publisher",
                    update_rule(a_pub, "orders", "acl", &b.rule, ARGS("pattern"), NULL, &err),
                    &err, GRPC_STATUS_PERMISSION_DENIED, NULL);
    h_assert_status("subscriber",
                    update_rule(a_sub, "orders", "acl", &b.rule, ARGS("pattern"), NULL, &err),
                    &err, GRPC_STATUS_PERMISSION_DENIED, NULL);

    /* Another tenant's bus answers exactly as a bus that does not exist. */
    h_assert_status("other tenant",
                    update_rule(b_adm, "acme/orders", "acl", &b.rule, ARGS("pattern"), NULL,
                                &err),
                    &err, GRPC_STATUS_NOT_FOUND, "acme/orders");
    h_assert_status("missing bus",
                    update_rule(b_adm, "acme/nosuch", "acl", &b.rule, ARGS("pattern"), NULL,
                                &missing),
                    &missing, GRPC_STATUS_NOT_FOUND, "acme/nosuch");
    {
        char *p = strstr(err.message, "acme/orders");
        char *q = strstr(missing.message, "acme/nosuch");
        assert_int_equal(p - err.message, q - missing.message);
        assert_string_equal(p + strlen("acme/orders"), q + strlen("acme/nosuch"));
    }
    /* Its own bus of the same name is another bus. */
    h_assert_status("own bus", update_rule(b_adm, "orders", "acl", &b.rule, ARGS("pattern"), NULL,
                                           &err),
                    &err, GRPC_STATUS_NOT_FOUND, "no rule \"acl\"");

    /* A MANAGE_RULES grantee may; grants reach new calls through a cache
     * of about a second, so poll. */
    h_assert_status("CreateGrant",
                    h_grant(a_adm, true, "orders", "globex",
                            CEBUS__V1__PERMISSION__PERMISSION_MANAGE_RULES, &err),
                    &err, 0, NULL);
    deadline = h_now_ms() + PROPAGATION_LIMIT_MS;
    while ((rc = update_rule(b_adm, "acme/orders", "acl", &b.rule, ARGS("pattern"), NULL,
                             &err)) != 0 &&
           h_now_ms() < deadline)
        usleep(50000);
    h_assert_status("grantee", rc, &err, 0, NULL);
    cebus_client_free(a_adm);
    cebus_client_free(a_pub);
    cebus_client_free(a_sub);
    cebus_client_free(b_adm);
}

/* ---- Live changes across replicas ------------------------------------------ */

/* The pattern changes through replica 0 while events flow; the stream on
 * replica 1 stays open, and there is one point in the run before which
 * every event was judged by the old pattern and from which on by the new
 * one: nothing lost, nothing twice. */
static void test_pattern_update_reaches_stream_on_other_replica(void **state)
{
    struct h_env *env = *state;
    int rep = replica(env);
    cebus_client *adm = cebus_client_new(env->srv[0].addr, A.admin_key);
    cebus_client *sub = cebus_client_new(env->srv[rep].addr, A.subscriber_key);
    struct run *r;
    int changed_at, cut = -1, extra = 0;
    int64_t deadline;

    create_rule_ok(adm, "orders", "live", OLD_PATTERN, ARGS("live-sub"));
    r = run_new(adm, "orders", live_stream_ok(sub, adm, "orders", "live-sub"));

    for (int i = 0; i < 20; i++)
        run_step(r);
    set_pattern_ok(adm, "orders", "live", NEW_PATTERN);
    changed_at = r->n;
    /* Publish until an event only the new pattern matches arrives, then a
     * little more so that events after the switch are checked too. */
    deadline = h_now_ms() + PROPAGATION_LIMIT_MS;
    for (;;) {
        bool switched = false;
        run_step(r);
        for (int i = 0; i < r->n && !switched; i++)
            switched = r->delivered[i] && new_matches(i) && !old_matches(i);
        if (switched && ++extra > 20)
            break;
        if (h_now_ms() > deadline)
            fail_msg("no event of the new pattern within %d ms", PROPAGATION_LIMIT_MS);
    }
    run_finish(r);

    for (int c = 0; c <= r->n && cut < 0; c++) {
        bool ok = true;
        for (int i = 0; i < r->n && ok; i++)
            ok = r->delivered[i] == (i < c ? old_matches(i) : new_matches(i));
        if (ok)
            cut = c;
    }
    if (cut < 0) {
        for (int i = 0; i < r->n; i++)
            print_message("event %d %s delivered=%d\n", i, run_types[i % 4], r->delivered[i]);
        fail_msg("no single switch point explains the deliveries");
    }
    print_message("%d events, switch after event %d (update returned after %d)\n", r->n, cut,
                  changed_at);

    cebus_stream_close(r->s);
    free(r);
    cebus_client_free(adm);
    cebus_client_free(sub);
}

/* Disabling stops the stream without ending it; enabling resumes it with
 * the events published from then on, never those published while the rule
 * was disabled. Also: a stream opened while the rule is disabled. */
static void test_disable_and_enable_reach_stream_on_other_replica(void **state)
{
    struct h_env *env = *state;
    int rep = replica(env);
    cebus_client *adm = cebus_client_new(env->srv[0].addr, A.admin_key);
    cebus_client *sub = cebus_client_new(env->srv[rep].addr, A.subscriber_key);
    struct run *r;
    cebus_stream *late;
    Cebus__V1__SubscribeResponse *m;
    int off_from = -1, on_from = -1, disabled_at, enabled_at;
    int64_t until;

    /* {} : every event of the run matches while the rule is enabled. */
    create_rule_ok(adm, "orders", "toggle", "{}", ARGS("toggle-sub"));
    r = run_new(adm, "orders", live_stream_ok(sub, adm, "orders", "toggle-sub"));
    for (int i = 0; i < 10; i++)
        run_step(r);
    set_enabled_ok(adm, "orders", "toggle", false);
    disabled_at = r->n;
    /* Publish for longer than the change may take to arrive. */
    until = h_now_ms() + PROPAGATION_LIMIT_MS;
    while (h_now_ms() < until) {
        run_step(r);
        usleep(20000);
    }
    /* A stream opened now, on the disabled rule, gets nothing yet. */
    late = subscribe_sub_ok(sub, "orders", "toggle-sub");
    assert_null(h_next(late, 300));

    set_enabled_ok(adm, "orders", "toggle", true);
    enabled_at = r->n;
    until = h_now_ms() + PROPAGATION_LIMIT_MS;
    do {
        run_step(r);
        if (h_now_ms() > until)
            fail_msg("nothing delivered within %d ms of enabling", PROPAGATION_LIMIT_MS);
    } while (!run_delivered_since(r, enabled_at));
    for (int i = 0; i < 10; i++)
        run_step(r);
    run_finish(r);

    /* Delivered, then not, then delivered again: two switch points. */
    for (int i = 0; i < r->n; i++) {
        if (off_from < 0 && !r->delivered[i])
            off_from = i;
        if (off_from >= 0 && on_from < 0 && r->delivered[i])
            on_from = i;
        if (on_from >= 0 && !r->delivered[i])
            fail_msg("event %d not delivered after the rule was enabled again", i);
    }
    assert_true(off_from >= 0 && on_from > off_from);
    print_message("%d events: disabled at %d (effective %d), enabled at %d (effective %d)\n",
                  r->n, disabled_at, off_from, enabled_at, on_from);

    /* The late stream resumed too, with the events after the enable only. */
    m = h_expect_next(late);
    assert_true(m->sequence > r->seq[enabled_at - 1]);
    cebus__v1__subscribe_response__free_unpacked(m, NULL);

    cebus_stream_close(late);
    cebus_stream_close(r->s);
    free(r);
    cebus_client_free(adm);
    cebus_client_free(sub);
}

/* Deleting the rule, or removing the subscription from its targets, ends
 * the streams on it with NOT_FOUND; the rule's other subscriptions go on. */
static void test_delete_and_target_removal_end_streams(void **state)
{
    struct h_env *env = *state;
    int rep = replica(env);
    cebus_client *adm = cebus_client_new(env->srv[0].addr, A.admin_key);
    cebus_client *sub = cebus_client_new(env->srv[rep].addr, A.subscriber_key);
    Cebus__V1__DeleteRuleRequest del = CEBUS__V1__DELETE_RULE_REQUEST__INIT;
    Cebus__V1__SubscribeRequest req;
    Cebus__V1__SubscribeResponse *m;
    cebus_stream *s1, *s2, *s3;
    struct rule_buf b;
    cebus_error err;
    uint64_t seq;

    create_rule_ok(adm, "orders", "twosubs", "{}", ARGS("keep-sub", "drop-sub"));
    create_rule_ok(adm, "orders", "doomed", "{}", ARGS("doomed-sub"));
    s1 = live_stream_ok(sub, adm, "orders", "keep-sub");
    s2 = live_stream_ok(sub, adm, "orders", "drop-sub");
    s3 = live_stream_ok(sub, adm, "orders", "doomed-sub");

    rule_buf_init(&b, NULL, ARGS("keep-sub"));
    h_assert_status("drop a target",
                    update_rule(adm, "orders", "twosubs", &b.rule, ARGS("targets"), NULL, &err),
                    &err, 0, NULL);
    expect_stream_end(s2, GRPC_STATUS_NOT_FOUND, "subscription");

    del.bus = "orders";
    del.name = "doomed";
    h_assert_status("DeleteRule", cebus_delete_rule(adm, &del, &err), &err, 0, NULL);
    expect_stream_end(s3, GRPC_STATUS_NOT_FOUND, "subscription: its rule was deleted");

    /* The remaining subscription still delivers, once each. */
    seq = h_put_one_ok(adm, "orders", "after", "t.none", NULL);
    for (;;) {
        m = h_expect_next(s1);
        if (m->sequence == seq)
            break;
        assert_true(m->sequence < seq);
        cebus__v1__subscribe_response__free_unpacked(m, NULL);
    }
    assert_string_equal(m->event->id, "after");
    cebus__v1__subscribe_response__free_unpacked(m, NULL);

    /* A new rule reusing the dropped name is a new subscription. */
    h_subscribe_request(&req, "orders", NULL, "doomed-sub",
                        CEBUS__V1__START_POSITION__START_POSITION_LATEST, 0);
    h_assert_status("Subscribe deleted", h_subscribe_status(sub, &req, &err), &err,
                    GRPC_STATUS_NOT_FOUND, "subscription");

    cebus_stream_close(s1);
    cebus_stream_close(s2);
    cebus_stream_close(s3);
    cebus_client_free(adm);
    cebus_client_free(sub);
}

/* ---- CLI ------------------------------------------------------------------- */

static json_t *one_json_line(const char *out)
{
    json_error_t jerr;
    json_t *j = json_loads(out, JSON_DISABLE_EOF_CHECK, &jerr);

    if (!j)
        fail_msg("not JSON: %s (%s)", out, jerr.text);
    return j;
}

/* Runs the CLI against replica 0 and fails the test unless it exits with
 * want. */
static void cli(struct h_env *env, const char *key, const char *const *args, int want,
                struct h_cli_result *r)
{
    h_cli_run(env->srv[0].addr, key, NULL, 30000, args, r);
    if (r->exit_code != want)
        fail_msg("cebus %s %s: exit %d, want %d\n--- stdout:\n%s--- stderr:\n%s", args[0],
                 args[1] ? args[1] : "", r->exit_code, want, r->out, r->err);
}

static void test_cli_rule_update_enable_disable(void **state)
{
    struct h_env *env = *state;
    struct h_cli_result r;
    json_t *j, *t;

    cli(env, A.admin_key,
        ARGS("rule", "create", "--bus", "orders", "cli-rule", "--pattern", "{\"type\":[\"a\"]}",
             "--subscription", "cli-sub"),
        0, &r);
    h_cli_result_free(&r);

    cli(env, A.admin_key,
        ARGS("rule", "update", "--bus", "orders", "cli-rule", "--pattern", "{\"type\":[\"b\"]}",
             "--description", "from the cli"),
        0, &r);
    j = one_json_line(r.out);
    assert_string_equal(json_string_value(json_object_get(j, "pattern")), "{\"type\":[\"b\"]}");
    assert_string_equal(json_string_value(json_object_get(j, "description")), "from the cli");
    t = json_array_get(json_object_get(j, "targets"), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(t, "subscription"), "name")),
        "cli-sub");
    json_decref(j);
    h_cli_result_free(&r);

    cli(env, A.admin_key,
        ARGS("rule", "update", "--bus", "orders", "cli-rule", "--subscription", "cli-sub-2"), 0,
        &r);
    j = one_json_line(r.out);
    t = json_array_get(json_object_get(j, "targets"), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(t, "subscription"), "name")),
        "cli-sub-2");
    json_decref(j);
    h_cli_result_free(&r);

    cli(env, A.admin_key, ARGS("rule", "disable", "--bus", "orders", "cli-rule"), 0, &r);
    j = one_json_line(r.out);
    assert_true(json_is_false(json_object_get(j, "enabled")) ||
                json_object_get(j, "enabled") == NULL);
    json_decref(j);
    h_cli_result_free(&r);
    cli(env, A.admin_key, ARGS("rule", "enable", "--bus", "orders", "cli-rule"), 0, &r);
    j = one_json_line(r.out);
    assert_true(json_is_true(json_object_get(j, "enabled")));
    json_decref(j);
    h_cli_result_free(&r);

    cli(env, A.admin_key,
        ARGS("rule", "update", "--bus", "orders", "cli-rule", "--no-subscriptions"), 0, &r);
    j = one_json_line(r.out);
    assert_int_equal(json_array_size(json_object_get(j, "targets")), 0);
    json_decref(j);
    h_cli_result_free(&r);

    /* Errors: usage (2) and the server's status by name (1). */
    cli(env, A.admin_key, ARGS("rule", "update", "--bus", "orders", "cli-rule"), 2, &r);
    assert_non_null(strstr(r.err, "nothing to change"));
    h_cli_result_free(&r);
    cli(env, A.admin_key, ARGS("rule", "update", "cli-rule", "--pattern", "{}"), 2, &r);
    assert_non_null(strstr(r.err, "--bus"));
    h_cli_result_free(&r);
    cli(env, A.admin_key,
        ARGS("rule", "update", "--bus", "orders", "cli-rule", "--pattern", "{\"a\":1}"), 1, &r);
    assert_non_null(strstr(r.err, "INVALID_ARGUMENT"));
    assert_non_null(strstr(r.err, "pattern: a"));
    h_cli_result_free(&r);
    cli(env, A.admin_key, ARGS("rule", "enable", "--bus", "orders", "no-such-rule"), 1, &r);
    assert_non_null(strstr(r.err, "NOT_FOUND"));
    h_cli_result_free(&r);
    cli(env, A.subscriber_key, ARGS("rule", "disable", "--bus", "orders", "cli-rule"), 1, &r);
    assert_non_null(strstr(r.err, "PERMISSION_DENIED"));
    h_cli_result_free(&r);

    {
        const char *const *helps[] = {ARGS("rule", "update", "--help"),
                                      ARGS("rule", "enable", "--help"),
                                      ARGS("rule", "disable", "--help")};
        for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++) {
            cli(env, NULL, helps[i], 0, &r);
            assert_non_null(strstr(r.out, "usage: cebus rule"));
            h_cli_result_free(&r);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_update_rule_each_mask_path),
        cmocka_unit_test(test_update_rule_errors_name_the_field),
        cmocka_unit_test(test_update_rule_access),
        cmocka_unit_test(test_pattern_update_reaches_stream_on_other_replica),
        cmocka_unit_test(test_disable_and_enable_reach_stream_on_other_replica),
        cmocka_unit_test(test_delete_and_target_removal_end_streams),
        cmocka_unit_test(test_cli_rule_update_enable_disable),
    };

    return cmocka_run_group_tests(tests, group_setup, h_env_teardown);
}
