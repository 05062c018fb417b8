/* Rule management (issue 3): UpdateRule with each update_mask path and its
 * errors, who may update whose rules, and the CLI's rule update, enable and
 * disable. Waits poll up to a deadline; nothing asserts how long a change
 * took. */
#include "harness.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* How long a change may take to reach a server before a test gives up:
 * the contract is about a second; sanitizer builds on a busy machine get
 * slack. */
#define PROPAGATION_LIMIT_MS 5000

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
    Cebus__V1__CreateGrantRequest greq = CEBUS__V1__CREATE_GRANT_REQUEST__INIT;
    ProtobufCMessage *gresp = NULL;
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
    greq.bus = "orders";
    greq.grantee_tenant = "globex";
    greq.permission = CEBUS__V1__PERMISSION__PERMISSION_MANAGE_RULES;
    h_assert_status("CreateGrant",
                    cebus_call_unary(a_adm, "/cebus.v1.Admin/CreateGrant", &greq.base,
                                     &cebus__v1__grant__descriptor, 0, &gresp, &err),
                    &err, 0, NULL);
    protobuf_c_message_free_unpacked(gresp, NULL);
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
        cmocka_unit_test(test_cli_rule_update_enable_disable),
    };

    return cmocka_run_group_tests(tests, group_setup, h_env_teardown);
}
