/* CLI handlers for health, tenants, API keys, buses and rules. Each one
 * builds a request from its arguments, makes one call (or one per page) and
 * prints the JSON form of what came back.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include <grpc/status.h>

/* Pages are followed until the server says there are no more; a server
 * that keeps answering with the same token would otherwise loop forever. */
static bool same_token(const char *previous, const char *next)
{
    return previous && next && *next && strcmp(previous, next) == 0;
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
    Cebus__V1__ListBusesResponse *resp = NULL;
    char *token = NULL;
    cebus_error err;
    int rc = CLI_EXIT_OK;

    if (cli_get(a, "--tenant"))
        req.tenant = (char *)cli_get(a, "--tenant");
    for (;;) {
        req.page_token = token ? token : (char *)"";
        if (cebus_list_buses(c, &req, &resp, &err) != 0) {
            rc = cli_rpc_error(&err);
            goto out;
        }
        for (size_t i = 0; i < resp->n_buses; i++)
            cli_print_message(stdout, &resp->buses[i]->base);
        if (!resp->next_page_token || !*resp->next_page_token)
            break;
        if (same_token(token, resp->next_page_token)) {
            rc = cli_fail(GRPC_STATUS_INTERNAL, "server repeated page token");
            goto out;
        }
        free(token);
        token = strdup(resp->next_page_token);
        if (!token)
            abort();
        cebus__v1__list_buses_response__free_unpacked(resp, NULL);
        resp = NULL;
    }
out:
    cebus__v1__list_buses_response__free_unpacked(resp, NULL);
    free(token);
    return rc;
}

static const char *require_bus(const struct cli_args *a)
{
    const char *bus = cli_get(a, "--bus");

    return bus && *bus ? bus : NULL;
}

int cli_cmd_rule_create(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__CreateRuleRequest req = CEBUS__V1__CREATE_RULE_REQUEST__INIT;
    Cebus__V1__Rule *rule = NULL;
    int nsubs = cli_count(a, "--subscription");
    Cebus__V1__Target *targets = NULL, **target_ptrs = NULL;
    Cebus__V1__SubscriptionTarget *subs = NULL;
    char *pattern = NULL;
    cebus_error err;
    int rc = CLI_EXIT_OK;

    if (!require_bus(a))
        return cli_usage_error(a, "--bus is required");
    if (!cli_get(a, "--pattern"))
        return cli_usage_error(a, "--pattern is required");
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
        Cebus__V1__SubscriptionTarget s = CEBUS__V1__SUBSCRIPTION_TARGET__INIT;

        subs[i] = s;
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
    Cebus__V1__ListRulesResponse *resp = NULL;
    char *token = NULL;
    cebus_error err;
    int rc = CLI_EXIT_OK;

    if (!require_bus(a))
        return cli_usage_error(a, "--bus is required");
    req.bus = (char *)require_bus(a);
    for (;;) {
        req.page_token = token ? token : (char *)"";
        if (cebus_list_rules(c, &req, &resp, &err) != 0) {
            rc = cli_rpc_error(&err);
            goto out;
        }
        for (size_t i = 0; i < resp->n_rules; i++)
            cli_print_message(stdout, &resp->rules[i]->base);
        if (!resp->next_page_token || !*resp->next_page_token)
            break;
        if (same_token(token, resp->next_page_token)) {
            rc = cli_fail(GRPC_STATUS_INTERNAL, "server repeated page token");
            goto out;
        }
        free(token);
        token = strdup(resp->next_page_token);
        if (!token)
            abort();
        cebus__v1__list_rules_response__free_unpacked(resp, NULL);
        resp = NULL;
    }
out:
    cebus__v1__list_rules_response__free_unpacked(resp, NULL);
    free(token);
    return rc;
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
