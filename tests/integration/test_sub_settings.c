/* Settings of subscription targets (docs/decisions/0014): CreateRule and
 * UpdateRule store the ack deadline, maximum attempts, maximum age and
 * maximum outstanding events of each subscription target; GetRule and
 * ListRules return them; values out of range, and a maximum age beyond
 * the bus's retention, are INVALID_ARGUMENT naming the field; the CLI
 * passes them on. */
#include "harness.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* "acme" owns bus "orders" (the default retention, 168 hours). */
static struct h_tenant A;

static int group_setup(void **state)
{
    struct h_env *env;

    if (h_env_setup(state) != 0)
        return -1;
    env = *state;
    h_tenant_create_ok(env->admin, "acme", "orders", &A);
    return 0;
}

/* Two subscription targets "<name>-a" (with settings s) and "<name>-b"
 * (defaults). */
struct targets {
    Cebus__V1__Target t[2], *ptrs[2];
    Cebus__V1__SubscriptionTarget subs[2];
    char names[2][64];
};

static void targets_init(struct targets *b, const char *name,
                         const Cebus__V1__SubscriptionTarget *s)
{
    for (int i = 0; i < 2; i++) {
        cebus__v1__target__init(&b->t[i]);
        cebus__v1__subscription_target__init(&b->subs[i]);
        snprintf(b->names[i], sizeof b->names[i], "%s-%c", name, 'a' + i);
        b->subs[i].name = b->names[i];
        b->t[i].kind_case = CEBUS__V1__TARGET__KIND_SUBSCRIPTION;
        b->t[i].subscription = &b->subs[i];
        b->ptrs[i] = &b->t[i];
    }
    b->subs[0].ack_deadline_seconds = s->ack_deadline_seconds;
    b->subs[0].max_attempts = s->max_attempts;
    b->subs[0].max_age_seconds = s->max_age_seconds;
    b->subs[0].max_outstanding = s->max_outstanding;
}

static int create(cebus_client *c, const char *name, const Cebus__V1__SubscriptionTarget *s,
                  Cebus__V1__Rule **out, cebus_error *err)
{
    Cebus__V1__CreateRuleRequest req = CEBUS__V1__CREATE_RULE_REQUEST__INIT;
    struct targets b;

    targets_init(&b, name, s);
    req.bus = "orders";
    req.name = (char *)name;
    req.pattern = "{}";
    req.n_targets = 2;
    req.targets = b.ptrs;
    return cebus_create_rule(c, &req, out, err);
}

static void assert_settings(const Cebus__V1__Rule *r, uint32_t deadline, uint32_t attempts,
                            uint32_t age, uint32_t outstanding)
{
    const Cebus__V1__SubscriptionTarget *s;

    assert_int_equal(r->n_targets, 2);
    s = r->targets[0]->subscription;
    assert_int_equal(s->ack_deadline_seconds, deadline);
    assert_int_equal(s->max_attempts, attempts);
    assert_int_equal(s->max_age_seconds, age);
    assert_int_equal(s->max_outstanding, outstanding);
    s = r->targets[1]->subscription;
    assert_int_equal(s->ack_deadline_seconds, 0);
    assert_int_equal(s->max_attempts, 0);
    assert_int_equal(s->max_age_seconds, 0);
    assert_int_equal(s->max_outstanding, 0);
}

static void test_settings_round_trip(void **state)
{
    struct h_env *env = *state;
    cebus_client *c = cebus_client_new(env->srv[0].addr, A.admin_key);
    Cebus__V1__SubscriptionTarget s = CEBUS__V1__SUBSCRIPTION_TARGET__INIT;
    Cebus__V1__GetRuleRequest get = CEBUS__V1__GET_RULE_REQUEST__INIT;
    Cebus__V1__ListRulesRequest list = CEBUS__V1__LIST_RULES_REQUEST__INIT;
    Cebus__V1__UpdateRuleRequest upd = CEBUS__V1__UPDATE_RULE_REQUEST__INIT;
    Cebus__V1__Rule rule = CEBUS__V1__RULE__INIT, *r = NULL;
    Cebus__V1__ListRulesResponse *lr = NULL;
    char *mask[1] = {"targets"};
    struct targets b;
    cebus_error err;
    bool seen = false;

    s.ack_deadline_seconds = 45;
    s.max_attempts = 7;
    s.max_age_seconds = 168 * 3600; /* exactly the retention */
    s.max_outstanding = 100000;
    h_assert_status("CreateRule", create(c, "rt", &s, &r, &err), &err, 0, NULL);
    assert_settings(r, 45, 7, 168 * 3600, 100000);
    cebus__v1__rule__free_unpacked(r, NULL);

    get.bus = "orders";
    get.name = "rt";
    h_assert_status("GetRule", cebus_get_rule(c, &get, &r, &err), &err, 0, NULL);
    assert_settings(r, 45, 7, 168 * 3600, 100000);
    cebus__v1__rule__free_unpacked(r, NULL);

    list.bus = "orders";
    h_assert_status("ListRules", cebus_list_rules(c, &list, &lr, &err), &err, 0, NULL);
    for (size_t i = 0; i < lr->n_rules; i++)
        if (strcmp(lr->rules[i]->name, "rt") == 0) {
            assert_settings(lr->rules[i], 45, 7, 168 * 3600, 100000);
            seen = true;
        }
    assert_true(seen);
    cebus__v1__list_rules_response__free_unpacked(lr, NULL);

    /* Replacing the targets replaces their settings. */
    s.ack_deadline_seconds = 1;
    s.max_attempts = 1;
    s.max_age_seconds = 1;
    s.max_outstanding = 1;
    targets_init(&b, "rt", &s);
    rule.n_targets = 2;
    rule.targets = b.ptrs;
    upd.bus = "orders";
    upd.name = "rt";
    upd.rule = &rule;
    upd.n_update_mask = 1;
    upd.update_mask = mask;
    h_assert_status("UpdateRule", cebus_update_rule(c, &upd, &r, &err), &err, 0, NULL);
    assert_settings(r, 1, 1, 1, 1);
    cebus__v1__rule__free_unpacked(r, NULL);
    h_assert_status("GetRule", cebus_get_rule(c, &get, &r, &err), &err, 0, NULL);
    assert_settings(r, 1, 1, 1, 1);
    cebus__v1__rule__free_unpacked(r, NULL);
    cebus_client_free(c);
}

static void test_settings_out_of_range(void **state)
{
    struct h_env *env = *state;
    cebus_client *c = cebus_client_new(env->srv[0].addr, A.admin_key);
    static const struct {
        uint32_t deadline, attempts, age, outstanding;
        const char *field;
    } bad[] = {
        {601, 0, 0, 0, "targets[0].subscription.ack_deadline_seconds"},
        {0, 101, 0, 0, "targets[0].subscription.max_attempts"},
        {0, 0, 168 * 3600 + 1, 0, "targets[0].subscription.max_age_seconds"},
        {0, 0, 0, 100001, "targets[0].subscription.max_outstanding"},
        {UINT32_MAX, 0, 0, 0, "targets[0].subscription.ack_deadline_seconds"},
        {0, 0, 0, UINT32_MAX, "targets[0].subscription.max_outstanding"},
    };
    Cebus__V1__UpdateRuleRequest upd = CEBUS__V1__UPDATE_RULE_REQUEST__INIT;
    Cebus__V1__Rule rule = CEBUS__V1__RULE__INIT, *r = NULL;
    char *mask[1] = {"targets"};
    struct targets b;
    cebus_error err;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        Cebus__V1__SubscriptionTarget s = CEBUS__V1__SUBSCRIPTION_TARGET__INIT;

        s.ack_deadline_seconds = bad[i].deadline;
        s.max_attempts = bad[i].attempts;
        s.max_age_seconds = bad[i].age;
        s.max_outstanding = bad[i].outstanding;
        h_assert_status("CreateRule", create(c, "oor", &s, &r, &err), &err,
                        GRPC_STATUS_INVALID_ARGUMENT, bad[i].field);
    }

    /* UpdateRule names the target's index. */
    {
        Cebus__V1__SubscriptionTarget s = CEBUS__V1__SUBSCRIPTION_TARGET__INIT;

        h_assert_status("CreateRule", create(c, "oor-upd", &s, &r, &err), &err, 0, NULL);
        cebus__v1__rule__free_unpacked(r, NULL);
        targets_init(&b, "oor-upd", &s);
        b.subs[1].max_attempts = 1000;
        rule.n_targets = 2;
        rule.targets = b.ptrs;
        upd.bus = "orders";
        upd.name = "oor-upd";
        upd.rule = &rule;
        upd.n_update_mask = 1;
        upd.update_mask = mask;
        h_assert_status("UpdateRule", cebus_update_rule(c, &upd, &r, &err), &err,
                        GRPC_STATUS_INVALID_ARGUMENT, "targets[1].subscription.max_attempts");
    }
    cebus_client_free(c);
}

static void test_cli_settings(void **state)
{
    struct h_env *env = *state;
    struct h_cli_result r;
    json_error_t jerr;
    json_t *j, *s;

    h_cli_run(env->srv[0].addr, A.admin_key, NULL, 30000,
              ARGS("rule", "create", "--bus", "orders", "cli-set", "--pattern", "{}",
                   "--subscription", "cli-set-a", "--ack-deadline-seconds", "12",
                   "--max-attempts", "3", "--max-age-seconds", "600", "--max-outstanding", "9"),
              &r);
    if (r.exit_code != 0)
        fail_msg("cebus rule create: exit %d\n%s%s", r.exit_code, r.out, r.err);
    j = json_loads(r.out, JSON_DISABLE_EOF_CHECK, &jerr);
    assert_non_null(j);
    s = json_object_get(json_array_get(json_object_get(j, "targets"), 0), "subscription");
    assert_int_equal(json_integer_value(json_object_get(s, "ack_deadline_seconds")), 12);
    assert_int_equal(json_integer_value(json_object_get(s, "max_attempts")), 3);
    assert_int_equal(json_integer_value(json_object_get(s, "max_age_seconds")), 600);
    assert_int_equal(json_integer_value(json_object_get(s, "max_outstanding")), 9);
    json_decref(j);
    h_cli_result_free(&r);

    /* Settings without a subscription are a usage error; out of range is
     * the server's INVALID_ARGUMENT. */
    h_cli_run(env->srv[0].addr, A.admin_key, NULL, 30000,
              ARGS("rule", "create", "--bus", "orders", "cli-set2", "--pattern", "{}",
                   "--max-attempts", "3"),
              &r);
    assert_int_equal(r.exit_code, 2);
    h_cli_result_free(&r);
    h_cli_run(env->srv[0].addr, A.admin_key, NULL, 30000,
              ARGS("rule", "update", "--bus", "orders", "cli-set", "--subscription", "cli-set-a",
                   "--max-attempts", "101"),
              &r);
    assert_int_not_equal(r.exit_code, 0);
    assert_non_null(strstr(r.err, "targets[0].subscription.max_attempts"));
    h_cli_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settings_round_trip),
        cmocka_unit_test(test_settings_out_of_range),
        cmocka_unit_test(test_cli_settings),
    };

    return cmocka_run_group_tests(tests, group_setup, h_env_teardown);
}
