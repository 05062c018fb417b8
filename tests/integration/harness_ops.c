/* Calls by kind, for the tests of who may do what: roles, grants and
 * tenancy ask the same calls of different keys. */
#include "harness.h"

#include <stdio.h>
#include <string.h>

const char *const h_op_names[H_NOPS] = {"PutEvents", "Subscribe", "TestEventPattern",
                                        "CreateRule", "GetRule",  "ListRules",
                                        "DeleteRule"};

int h_try_op(cebus_client *c, enum h_op op, const char *bus, const struct h_op_args *a,
             cebus_error *err)
{
    switch (op) {
    case H_OP_PUT: {
        h_event *ev = h_event_new(a->event_id, a->source, "t", NULL);
        Cebus__V1__PutEventsResponse *resp = NULL;
        int rc = h_put(c, bus, &ev, 1, &resp, err);
        if (rc == 0) {
            if (resp->failed_count)
                fail_msg("PutEvents entry failed: %s", resp->results[0]->message);
            cebus__v1__put_events_response__free_unpacked(resp, NULL);
        }
        h_event_free(ev);
        return rc;
    }
    case H_OP_SUBSCRIBE: {
        Cebus__V1__SubscribeRequest req;
        h_subscribe_request(&req, bus, "{}", NULL,
                            CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
        return h_subscribe_status(c, &req, err);
    }
    case H_OP_TEST_PATTERN: {
        Cebus__V1__TestEventPatternRequest req = CEBUS__V1__TEST_EVENT_PATTERN_REQUEST__INIT;
        Cebus__V1__TestEventPatternResponse *resp = NULL;
        int rc;
        req.bus = (char *)bus;
        req.pattern = "{}";
        rc = cebus_test_event_pattern(c, &req, &resp, err);
        if (rc == 0)
            cebus__v1__test_event_pattern_response__free_unpacked(resp, NULL);
        return rc;
    }
    case H_OP_CREATE_RULE: {
        Cebus__V1__CreateRuleRequest req = CEBUS__V1__CREATE_RULE_REQUEST__INIT;
        Cebus__V1__Rule *rule = NULL;
        int rc;
        req.bus = (char *)bus;
        req.name = (char *)a->create_rule;
        req.pattern = "{}";
        rc = cebus_create_rule(c, &req, &rule, err);
        if (rc == 0)
            cebus__v1__rule__free_unpacked(rule, NULL);
        return rc;
    }
    case H_OP_GET_RULE: {
        Cebus__V1__GetRuleRequest req = CEBUS__V1__GET_RULE_REQUEST__INIT;
        Cebus__V1__Rule *rule = NULL;
        int rc;
        req.bus = (char *)bus;
        req.name = (char *)a->get_rule;
        rc = cebus_get_rule(c, &req, &rule, err);
        if (rc == 0)
            cebus__v1__rule__free_unpacked(rule, NULL);
        return rc;
    }
    case H_OP_LIST_RULES: {
        Cebus__V1__ListRulesRequest req = CEBUS__V1__LIST_RULES_REQUEST__INIT;
        Cebus__V1__ListRulesResponse *resp = NULL;
        int rc;
        req.bus = (char *)bus;
        rc = cebus_list_rules(c, &req, &resp, err);
        if (rc == 0)
            cebus__v1__list_rules_response__free_unpacked(resp, NULL);
        return rc;
    }
    case H_OP_DELETE_RULE: {
        Cebus__V1__DeleteRuleRequest req = CEBUS__V1__DELETE_RULE_REQUEST__INIT;
        req.bus = (char *)bus;
        req.name = (char *)a->delete_rule;
        return cebus_delete_rule(c, &req, err);
    }
    case H_NOPS:
        break;
    }
    return -1;
}

int h_grant(cebus_client *c, bool create, const char *bus, const char *grantee,
            Cebus__V1__Permission perm, cebus_error *err)
{
    int rc;

    if (create) {
        Cebus__V1__CreateGrantRequest req = CEBUS__V1__CREATE_GRANT_REQUEST__INIT;
        Cebus__V1__Grant *g = NULL;
        req.bus = (char *)bus;
        req.grantee_tenant = (char *)grantee;
        req.permission = perm;
        rc = cebus_create_grant(c, &req, &g, err);
        if (rc == 0)
            cebus__v1__grant__free_unpacked(g, NULL);
    } else {
        Cebus__V1__RevokeGrantRequest req = CEBUS__V1__REVOKE_GRANT_REQUEST__INIT;
        req.bus = (char *)bus;
        req.grantee_tenant = (char *)grantee;
        req.permission = perm;
        rc = cebus_revoke_grant(c, &req, err);
    }
    return rc;
}

void h_normalize(const char *msg, const char *ref, char *out, size_t size)
{
    size_t n = 0, rlen = strlen(ref);

    while (*msg && n + 6 < size) {
        if (strncmp(msg, ref, rlen) == 0) {
            n += (size_t)snprintf(out + n, size - n, "<bus>");
            msg += rlen;
        } else {
            out[n++] = *msg++;
        }
    }
    out[n] = '\0';
}
