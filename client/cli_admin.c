/* CLI handlers for health, tenants, API keys, buses and rules. Each one
 * builds a request from its arguments, makes one call (or one per page) and
 * prints the JSON form of what came back.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include <grpc/status.h>

/* Field `name` of message m, found through its descriptor. */
static void *field_ptr(ProtobufCMessage *m, const char *name, size_t **count)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    if (!f)
        abort(); /* a name below that the .proto does not have */
    if (count)
        *count = (size_t *)(void *)((char *)m + f->quantifier_offset);
    return (char *)m + f->offset;
}

/* Calls a paged List method (req carries "page_token"; the response a
 * repeated `items` field and "next_page_token") until the server says
 * there are no more pages, printing every item as one JSON line. A server
 * that repeats a token would otherwise make this loop forever. */
int cli_list_all(cebus_client *c, const char *method, ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *resp_desc, const char *items)
{
    char **page_token = field_ptr(req, "page_token", NULL);
    ProtobufCMessage *resp = NULL;
    char *token = NULL;
    cebus_error err;
    int rc = CLI_EXIT_OK;

    for (;;) {
        size_t *n;
        ProtobufCMessage **item;
        const char *next;

        *page_token = token ? token : (char *)"";
        if (cebus_call_unary(c, method, req, resp_desc, 0, &resp, &err) != 0) {
            resp = NULL;
            rc = cli_rpc_error(&err);
            goto out;
        }
        item = *(ProtobufCMessage ***)field_ptr(resp, items, &n);
        for (size_t i = 0; i < *n; i++)
            cli_print_message(stdout, item[i]);
        next = *(char **)field_ptr(resp, "next_page_token", NULL);
        if (!next || !*next)
            break;
        if (token && strcmp(token, next) == 0) {
            rc = cli_fail(GRPC_STATUS_INTERNAL, "server repeated page token");
            goto out;
        }
        free(token);
        token = strdup(next);
        if (!token)
            abort();
        protobuf_c_message_free_unpacked(resp, NULL);
        resp = NULL;
    }
out:
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    free(token);
    return rc;
}

int cli_cmd_health(cebus_client *c, const struct cli_args *a)
{
    cebus_error err;
    int serving = 0;

    if (cebus_health_check(c, a->timeout_ms, &serving, &err) != 0)
        return cli_rpc_error(&err);
    if (!serving)
        return cli_fail(GRPC_STATUS_UNAVAILABLE, "server is not serving");
    printf("SERVING\n");
    return CLI_EXIT_OK;
}

int cli_cmd_tenant_create(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__CreateTenantRequest req = CEBUS__V1__CREATE_TENANT_REQUEST__INIT;
    Cebus__V1__Tenant *tenant = NULL;
    const char *display = cli_get(a, "--display-name");
    cebus_error err;

    req.name = (char *)a->pos[0];
    if (display)
        req.display_name = (char *)display;
    if (cebus_create_tenant(c, &req, &tenant, &err) != 0)
        return cli_rpc_error(&err);
    cli_print_message(stdout, &tenant->base);
    cebus__v1__tenant__free_unpacked(tenant, NULL);
    return CLI_EXIT_OK;
}

/* Maps the CLI's role names to the API's enum; 0 (unspecified) if unknown. */
static Cebus__V1__Role parse_role(const char *s)
{
    static const struct {
        const char *name;
        Cebus__V1__Role role;
    } roles[] = {
        {"platform-admin", CEBUS__V1__ROLE__ROLE_PLATFORM_ADMIN},
        {"tenant-admin", CEBUS__V1__ROLE__ROLE_TENANT_ADMIN},
        {"publisher", CEBUS__V1__ROLE__ROLE_PUBLISHER},
        {"subscriber", CEBUS__V1__ROLE__ROLE_SUBSCRIBER},
    };

    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
        if (strcmp(s, roles[i].name) == 0)
            return roles[i].role;
    return CEBUS__V1__ROLE__ROLE_UNSPECIFIED;
}

int cli_cmd_key_create(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__CreateApiKeyRequest req = CEBUS__V1__CREATE_API_KEY_REQUEST__INIT;
    Cebus__V1__CreateApiKeyResponse *resp = NULL;
    const char *role = cli_get(a, "--role");
    cebus_error err;

    if (!role)
        return cli_usage_error(a, "--role is required");
    req.role = parse_role(role);
    if (req.role == CEBUS__V1__ROLE__ROLE_UNSPECIFIED)
        return cli_usage_error(
            a, "--role must be platform-admin, tenant-admin, publisher or subscriber");
    if (cli_get(a, "--tenant"))
        req.tenant = (char *)cli_get(a, "--tenant");
    if (cli_get(a, "--description"))
        req.description = (char *)cli_get(a, "--description");
    if (cebus_create_api_key(c, &req, &resp, &err) != 0)
        return cli_rpc_error(&err);
    /* The secret alone on stdout, so that KEY=$(cebus key create ...) holds
     * exactly the key; the rest goes where a person will still see it. */
    printf("%s\n", resp->secret);
    fflush(stdout);
    if (resp->key)
        cli_print_message(stderr, &resp->key->base);
    cebus__v1__create_api_key_response__free_unpacked(resp, NULL);
    return CLI_EXIT_OK;
}

int cli_cmd_bus_create(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__CreateBusRequest req = CEBUS__V1__CREATE_BUS_REQUEST__INIT;
    Cebus__V1__Bus *bus = NULL;
    const char *retention = cli_get(a, "--retention-hours");
    const char *dedup = cli_get(a, "--dedup-window-seconds");
    uint64_t v;
    cebus_error err;

    req.name = (char *)a->pos[0];
    if (cli_get(a, "--tenant"))
        req.tenant = (char *)cli_get(a, "--tenant");
    if (retention) {
        if (cli_parse_uint(retention, UINT32_MAX, &v) != 0)
            return cli_usage_error(a, "--retention-hours must be a number");
        req.retention_hours = (uint32_t)v;
    }
    if (dedup) {
        if (cli_parse_uint(dedup, UINT32_MAX, &v) != 0)
            return cli_usage_error(a, "--dedup-window-seconds must be a number");
        req.dedup_window_seconds = (uint32_t)v;
    }
    if (cebus_create_bus(c, &req, &bus, &err) != 0)
        return cli_rpc_error(&err);
    cli_print_message(stdout, &bus->base);
    cebus__v1__bus__free_unpacked(bus, NULL);
    return CLI_EXIT_OK;
}

int cli_cmd_bus_list(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__ListBusesRequest req = CEBUS__V1__LIST_BUSES_REQUEST__INIT;

    if (cli_get(a, "--tenant"))
        req.tenant = (char *)cli_get(a, "--tenant");
    return cli_list_all(c, "/cebus.v1.Admin/ListBuses", &req.base,
                        &cebus__v1__list_buses_response__descriptor, "buses");
}

static const char *require_bus(const struct cli_args *a)
{
    const char *bus = cli_get(a, "--bus");

    return bus && *bus ? bus : NULL;
}

/* Reads the subscription settings options into *out (a template for each
 * --subscription target). Returns 0, or a usage error's exit code. */
static int sub_settings_from_args(const struct cli_args *a, int nsubs,
                                  Cebus__V1__SubscriptionTarget *out)
{
    static const char *const names[4] = {"--ack-deadline-seconds", "--max-attempts",
                                         "--max-age-seconds", "--max-outstanding"};
    uint32_t *fields[4] = {&out->ack_deadline_seconds, &out->max_attempts,
                           &out->max_age_seconds, &out->max_outstanding};

    for (int i = 0; i < 4; i++) {
        const char *v = cli_get(a, names[i]);
        uint64_t n;

        if (!v)
            continue;
        if (nsubs == 0)
            return cli_usage_error(a, "subscription settings need --subscription");
        if (cli_parse_uint(v, UINT32_MAX, &n) != 0)
            return cli_usage_error(a, "subscription settings must be numbers");
        *fields[i] = (uint32_t)n;
    }
    return 0;
}

int cli_cmd_rule_create(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__CreateRuleRequest req = CEBUS__V1__CREATE_RULE_REQUEST__INIT;
    Cebus__V1__Rule *rule = NULL;
    int nsubs = cli_count(a, "--subscription");
    Cebus__V1__Target *targets = NULL, **target_ptrs = NULL;
    Cebus__V1__SubscriptionTarget *subs = NULL;
    Cebus__V1__SubscriptionTarget settings = CEBUS__V1__SUBSCRIPTION_TARGET__INIT;
    char *pattern = NULL;
    cebus_error err;
    int rc = CLI_EXIT_OK;

    if (!require_bus(a))
        return cli_usage_error(a, "--bus is required");
    if (!cli_get(a, "--pattern"))
        return cli_usage_error(a, "--pattern is required");
    rc = sub_settings_from_args(a, nsubs, &settings);
    if (rc != 0)
        return rc;
    pattern = cli_value_or_file("--pattern", cli_get(a, "--pattern"));
    if (!pattern)
        return CLI_EXIT_ERROR;
    req.bus = (char *)require_bus(a);
    req.name = (char *)a->pos[0];
    req.pattern = pattern;
    if (cli_get(a, "--description"))
        req.description = (char *)cli_get(a, "--description");
    req.disabled = cli_get(a, "--disabled") != NULL;

    /* The request borrows argv's strings; only the arrays are ours. */
    targets = calloc((size_t)nsubs + 1, sizeof(*targets));
    target_ptrs = calloc((size_t)nsubs + 1, sizeof(*target_ptrs));
    subs = calloc((size_t)nsubs + 1, sizeof(*subs));
    if (!targets || !target_ptrs || !subs)
        abort();
    for (int i = 0; i < nsubs; i++) {
        Cebus__V1__Target t = CEBUS__V1__TARGET__INIT;

        subs[i] = settings;
        subs[i].name = (char *)cli_nth(a, "--subscription", i);
        targets[i] = t;
        targets[i].kind_case = CEBUS__V1__TARGET__KIND_SUBSCRIPTION;
        targets[i].subscription = &subs[i];
        target_ptrs[i] = &targets[i];
    }
    req.n_targets = (size_t)nsubs;
    req.targets = target_ptrs;
    if (cebus_create_rule(c, &req, &rule, &err) != 0) {
        rc = cli_rpc_error(&err);
        goto out;
    }
    cli_print_message(stdout, &rule->base);
out:
    cebus__v1__rule__free_unpacked(rule, NULL);
    free(subs);
    free(target_ptrs);
    free(targets);
    free(pattern);
    return rc;
}

int cli_cmd_rule_get(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__GetRuleRequest req = CEBUS__V1__GET_RULE_REQUEST__INIT;
    Cebus__V1__Rule *rule = NULL;
    cebus_error err;

    if (!require_bus(a))
        return cli_usage_error(a, "--bus is required");
    req.bus = (char *)require_bus(a);
    req.name = (char *)a->pos[0];
    if (cebus_get_rule(c, &req, &rule, &err) != 0)
        return cli_rpc_error(&err);
    cli_print_message(stdout, &rule->base);
    cebus__v1__rule__free_unpacked(rule, NULL);
    return CLI_EXIT_OK;
}

int cli_cmd_rule_list(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__ListRulesRequest req = CEBUS__V1__LIST_RULES_REQUEST__INIT;

    if (!require_bus(a))
        return cli_usage_error(a, "--bus is required");
    req.bus = (char *)require_bus(a);
    return cli_list_all(c, "/cebus.v1.EventBus/ListRules", &req.base,
                        &cebus__v1__list_rules_response__descriptor, "rules");
}

/* Sends an UpdateRule with the given mask (the request borrows argv's
 * strings and the caller's arrays) and prints the rule. */
static int rule_update_call(cebus_client *c, Cebus__V1__UpdateRuleRequest *req)
{
    Cebus__V1__Rule *rule = NULL;
    cebus_error err;

    if (cebus_update_rule(c, req, &rule, &err) != 0)
        return cli_rpc_error(&err);
    cli_print_message(stdout, &rule->base);
    cebus__v1__rule__free_unpacked(rule, NULL);
    return CLI_EXIT_OK;
}

int cli_cmd_rule_update(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__UpdateRuleRequest req = CEBUS__V1__UPDATE_RULE_REQUEST__INIT;
    Cebus__V1__Rule rule = CEBUS__V1__RULE__INIT;
    int nsubs = cli_count(a, "--subscription");
    Cebus__V1__Target *targets = NULL, **target_ptrs = NULL;
    Cebus__V1__SubscriptionTarget *subs = NULL;
    Cebus__V1__SubscriptionTarget settings = CEBUS__V1__SUBSCRIPTION_TARGET__INIT;
    char *mask[3], *pattern = NULL;
    size_t nmask = 0;
    int rc;

    if (!require_bus(a))
        return cli_usage_error(a, "--bus is required");
    if (nsubs > 0 && cli_get(a, "--no-subscriptions"))
        return cli_usage_error(a, "--subscription and --no-subscriptions exclude each other");
    rc = sub_settings_from_args(a, nsubs, &settings);
    if (rc != 0)
        return rc;
    if (cli_get(a, "--pattern")) {
        pattern = cli_value_or_file("--pattern", cli_get(a, "--pattern"));
        if (!pattern)
            return CLI_EXIT_ERROR;
        rule.pattern = pattern;
        mask[nmask++] = "pattern";
    }
    if (cli_get(a, "--description")) {
        rule.description = (char *)cli_get(a, "--description");
        mask[nmask++] = "description";
    }
    if (nsubs > 0 || cli_get(a, "--no-subscriptions")) {
        targets = calloc((size_t)nsubs + 1, sizeof(*targets));
        target_ptrs = calloc((size_t)nsubs + 1, sizeof(*target_ptrs));
        subs = calloc((size_t)nsubs + 1, sizeof(*subs));
        if (!targets || !target_ptrs || !subs)
            abort();
        for (int i = 0; i < nsubs; i++) {
            Cebus__V1__Target t = CEBUS__V1__TARGET__INIT;

            subs[i] = settings;
            subs[i].name = (char *)cli_nth(a, "--subscription", i);
            targets[i] = t;
            targets[i].kind_case = CEBUS__V1__TARGET__KIND_SUBSCRIPTION;
            targets[i].subscription = &subs[i];
            target_ptrs[i] = &targets[i];
        }
        rule.n_targets = (size_t)nsubs;
        rule.targets = target_ptrs;
        mask[nmask++] = "targets";
    }
    if (nmask == 0) {
        free(pattern);
        return cli_usage_error(a, "nothing to change: give --pattern, --description, "
                                  "--subscription or --no-subscriptions");
    }
    req.bus = (char *)require_bus(a);
    req.name = (char *)a->pos[0];
    req.rule = &rule;
    req.n_update_mask = nmask;
    req.update_mask = mask;
    rc = rule_update_call(c, &req);
    free(subs);
    free(target_ptrs);
    free(targets);
    free(pattern);
    return rc;
}

/* Sets the enabled flag of a rule. */
static int rule_set_enabled(cebus_client *c, const struct cli_args *a, bool enabled)
{
    Cebus__V1__UpdateRuleRequest req = CEBUS__V1__UPDATE_RULE_REQUEST__INIT;
    Cebus__V1__Rule rule = CEBUS__V1__RULE__INIT;
    char *mask[1] = {"enabled"};

    if (!require_bus(a))
        return cli_usage_error(a, "--bus is required");
    rule.enabled = enabled;
    req.bus = (char *)require_bus(a);
    req.name = (char *)a->pos[0];
    req.rule = &rule;
    req.n_update_mask = 1;
    req.update_mask = mask;
    return rule_update_call(c, &req);
}

int cli_cmd_rule_enable(cebus_client *c, const struct cli_args *a)
{
    return rule_set_enabled(c, a, true);
}

int cli_cmd_rule_disable(cebus_client *c, const struct cli_args *a)
{
    return rule_set_enabled(c, a, false);
}

int cli_cmd_rule_delete(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__DeleteRuleRequest req = CEBUS__V1__DELETE_RULE_REQUEST__INIT;
    cebus_error err;

    if (!require_bus(a))
        return cli_usage_error(a, "--bus is required");
    req.bus = (char *)require_bus(a);
    req.name = (char *)a->pos[0];
    if (cebus_delete_rule(c, &req, &err) != 0)
        return cli_rpc_error(&err);
    return CLI_EXIT_OK;
}

int cli_call_print(cebus_client *c, const char *method, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, bool print)
{
    ProtobufCMessage *resp = NULL;
    cebus_error err;

    if (cebus_call_unary(c, method, req, resp_desc, 0, &resp, &err) != 0)
        return cli_rpc_error(&err);
    if (print)
        cli_print_message(stdout, resp);
    protobuf_c_message_free_unpacked(resp, NULL);
    return CLI_EXIT_OK;
}

int cli_cmd_tenant_get(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__GetTenantRequest req = CEBUS__V1__GET_TENANT_REQUEST__INIT;

    req.name = a->npos > 0 ? (char *)a->pos[0] : "";
    return cli_call_print(c, "/cebus.v1.Admin/GetTenant", &req.base, &cebus__v1__tenant__descriptor,
                      true);
}

int cli_cmd_tenant_list(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__ListTenantsRequest req = CEBUS__V1__LIST_TENANTS_REQUEST__INIT;

    (void)a;
    return cli_list_all(c, "/cebus.v1.Admin/ListTenants", &req.base,
                        &cebus__v1__list_tenants_response__descriptor, "tenants");
}

int cli_cmd_tenant_update(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__UpdateTenantRequest req = CEBUS__V1__UPDATE_TENANT_REQUEST__INIT;
    Cebus__V1__Tenant tenant = CEBUS__V1__TENANT__INIT;
    char *mask[2];
    size_t n = 0;

    if (cli_get(a, "--disabled") && cli_get(a, "--enabled"))
        return cli_usage_error(a, "give --disabled or --enabled, not both");
    tenant.name = (char *)a->pos[0];
    if (cli_get(a, "--display-name")) {
        tenant.display_name = (char *)cli_get(a, "--display-name");
        mask[n++] = "display_name";
    }
    if (cli_get(a, "--disabled") || cli_get(a, "--enabled")) {
        tenant.disabled = cli_get(a, "--disabled") != NULL;
        mask[n++] = "disabled";
    }
    if (n == 0)
        return cli_usage_error(a,
                               "nothing to update: give --display-name, --disabled or --enabled");
    req.tenant = &tenant;
    req.update_mask = mask;
    req.n_update_mask = n;
    return cli_call_print(c, "/cebus.v1.Admin/UpdateTenant", &req.base,
                      &cebus__v1__tenant__descriptor, true);
}

int cli_cmd_tenant_delete(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__DeleteTenantRequest req = CEBUS__V1__DELETE_TENANT_REQUEST__INIT;

    req.name = (char *)a->pos[0];
    return cli_call_print(c, "/cebus.v1.Admin/DeleteTenant", &req.base,
                      &cebus__v1__delete_tenant_response__descriptor, false);
}

int cli_cmd_key_list(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__ListApiKeysRequest req = CEBUS__V1__LIST_API_KEYS_REQUEST__INIT;

    if (cli_get(a, "--tenant"))
        req.tenant = (char *)cli_get(a, "--tenant");
    return cli_list_all(c, "/cebus.v1.Admin/ListApiKeys", &req.base,
                        &cebus__v1__list_api_keys_response__descriptor, "keys");
}

int cli_cmd_key_revoke(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__RevokeApiKeyRequest req = CEBUS__V1__REVOKE_API_KEY_REQUEST__INIT;

    req.id = (char *)a->pos[0];
    return cli_call_print(c, "/cebus.v1.Admin/RevokeApiKey", &req.base,
                      &cebus__v1__revoke_api_key_response__descriptor, false);
}

/* The bus reference of NAME [--tenant T]: "T/NAME", or NAME as given
 * ("name" or "tenant/name"). */
static const char *bus_ref(const struct cli_args *a, char *buf, size_t size)
{
    const char *tenant = cli_get(a, "--tenant");

    if (!tenant || !*tenant)
        return a->pos[0];
    snprintf(buf, size, "%s/%s", tenant, a->pos[0]);
    return buf;
}

int cli_cmd_bus_get(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__GetBusRequest req = CEBUS__V1__GET_BUS_REQUEST__INIT;
    char ref[512];

    req.bus = (char *)bus_ref(a, ref, sizeof ref);
    return cli_call_print(c, "/cebus.v1.Admin/GetBus", &req.base, &cebus__v1__bus__descriptor, true);
}

int cli_cmd_bus_update(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__UpdateBusRequest req = CEBUS__V1__UPDATE_BUS_REQUEST__INIT;
    Cebus__V1__Bus bus = CEBUS__V1__BUS__INIT;
    const char *retention = cli_get(a, "--retention-hours");
    const char *dedup = cli_get(a, "--dedup-window-seconds");
    const char *slash = strchr(a->pos[0], '/');
    char tenant[512];
    char *mask[2];
    size_t n = 0;
    uint64_t v;

    /* The request names the bus by its fields, not by a reference. */
    if (slash) {
        snprintf(tenant, sizeof tenant, "%.*s", (int)(slash - a->pos[0]), a->pos[0]);
        bus.tenant = tenant;
        bus.name = (char *)slash + 1;
    } else {
        bus.tenant = cli_get(a, "--tenant") ? (char *)cli_get(a, "--tenant") : "";
        bus.name = (char *)a->pos[0];
    }
    if (retention) {
        if (cli_parse_uint(retention, UINT32_MAX, &v) != 0)
            return cli_usage_error(a, "--retention-hours must be a number");
        bus.retention_hours = (uint32_t)v;
        mask[n++] = "retention_hours";
    }
    if (dedup) {
        if (cli_parse_uint(dedup, UINT32_MAX, &v) != 0)
            return cli_usage_error(a, "--dedup-window-seconds must be a number");
        bus.dedup_window_seconds = (uint32_t)v;
        mask[n++] = "dedup_window_seconds";
    }
    if (n == 0)
        return cli_usage_error(
            a, "nothing to update: give --retention-hours or --dedup-window-seconds");
    req.bus = &bus;
    req.update_mask = mask;
    req.n_update_mask = n;
    return cli_call_print(c, "/cebus.v1.Admin/UpdateBus", &req.base, &cebus__v1__bus__descriptor,
                      true);
}

int cli_cmd_bus_delete(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__DeleteBusRequest req = CEBUS__V1__DELETE_BUS_REQUEST__INIT;
    char ref[512];

    req.bus = (char *)bus_ref(a, ref, sizeof ref);
    return cli_call_print(c, "/cebus.v1.Admin/DeleteBus", &req.base,
                      &cebus__v1__delete_bus_response__descriptor, false);
}
