/* CLI handlers for grants (`cebus grant create|list|revoke`) and event
 * sources (`cebus source add|list|remove`). Each makes one call and prints
 * the JSON form of what came back, one object per line.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "cebus/v1/admin.pb-c.h"

/* Makes one unary Admin call and prints the response's repeated field
 * `items` one element per line, the whole response when items is NULL, or
 * nothing when print is false. */
static int call(cebus_client *c, const char *method, const ProtobufCMessage *req,
                const ProtobufCMessageDescriptor *resp_desc, bool print, const char *items)
{
    ProtobufCMessage *resp = NULL;
    cebus_error err;

    if (cebus_call_unary(c, method, req, resp_desc, 0, &resp, &err) != 0)
        return cli_rpc_error(&err);
    if (print && items) {
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(resp_desc, items);
        size_t n = *(size_t *)(void *)((char *)resp + f->quantifier_offset);
        ProtobufCMessage **item = *(ProtobufCMessage ***)(void *)((char *)resp + f->offset);
        for (size_t i = 0; i < n; i++)
            cli_print_message(stdout, item[i]);
    } else if (print) {
        cli_print_message(stdout, resp);
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return CLI_EXIT_OK;
}

/* Maps the CLI's permission names to the API's enum; 0 if unknown. */
static Cebus__V1__Permission parse_permission(const char *s)
{
    if (strcmp(s, "publish") == 0)
        return CEBUS__V1__PERMISSION__PERMISSION_PUBLISH;
    if (strcmp(s, "subscribe") == 0)
        return CEBUS__V1__PERMISSION__PERMISSION_SUBSCRIBE;
    if (strcmp(s, "manage-rules") == 0)
        return CEBUS__V1__PERMISSION__PERMISSION_MANAGE_RULES;
    return CEBUS__V1__PERMISSION__PERMISSION_UNSPECIFIED;
}

/* Reads --bus, --tenant and --permission of grant create and revoke.
 * Returns 0, or the usage error's exit code. */
static int grant_args(const struct cli_args *a, const char **bus, const char **tenant,
                      Cebus__V1__Permission *perm)
{
    const char *p = cli_get(a, "--permission");

    *bus = cli_get(a, "--bus");
    *tenant = cli_get(a, "--tenant");
    if (!*bus || !**bus)
        return cli_usage_error(a, "--bus is required");
    if (!*tenant || !**tenant)
        return cli_usage_error(a, "--tenant (the grantee) is required");
    if (!p)
        return cli_usage_error(a, "--permission is required");
    *perm = parse_permission(p);
    if (*perm == CEBUS__V1__PERMISSION__PERMISSION_UNSPECIFIED)
        return cli_usage_error(a, "--permission must be publish, subscribe or manage-rules");
    return 0;
}

int cli_cmd_grant_create(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__CreateGrantRequest req = CEBUS__V1__CREATE_GRANT_REQUEST__INIT;
    const char *bus, *tenant;
    int rc = grant_args(a, &bus, &tenant, &req.permission);

    if (rc)
        return rc;
    req.bus = (char *)bus;
    req.grantee_tenant = (char *)tenant;
    return call(c, "/cebus.v1.Admin/CreateGrant", &req.base, &cebus__v1__grant__descriptor, true,
                NULL);
}

int cli_cmd_grant_list(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__ListGrantsRequest req = CEBUS__V1__LIST_GRANTS_REQUEST__INIT;
    const char *bus = cli_get(a, "--bus");

    if (!bus || !*bus)
        return cli_usage_error(a, "--bus is required");
    req.bus = (char *)bus;
    return cli_list_all(c, "/cebus.v1.Admin/ListGrants", &req.base,
                        &cebus__v1__list_grants_response__descriptor, "grants");
}

int cli_cmd_grant_revoke(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__RevokeGrantRequest req = CEBUS__V1__REVOKE_GRANT_REQUEST__INIT;
    const char *bus, *tenant;
    int rc = grant_args(a, &bus, &tenant, &req.permission);

    if (rc)
        return rc;
    req.bus = (char *)bus;
    req.grantee_tenant = (char *)tenant;
    return call(c, "/cebus.v1.Admin/RevokeGrant", &req.base,
                &cebus__v1__revoke_grant_response__descriptor, false, NULL);
}

int cli_cmd_source_add(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__CreateEventSourceRequest req = CEBUS__V1__CREATE_EVENT_SOURCE_REQUEST__INIT;

    if (cli_get(a, "--tenant"))
        req.tenant = (char *)cli_get(a, "--tenant");
    req.prefix = (char *)a->pos[0];
    return call(c, "/cebus.v1.Admin/CreateEventSource", &req.base,
                &cebus__v1__event_source__descriptor, true, NULL);
}

int cli_cmd_source_list(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__ListEventSourcesRequest req = CEBUS__V1__LIST_EVENT_SOURCES_REQUEST__INIT;

    if (cli_get(a, "--tenant"))
        req.tenant = (char *)cli_get(a, "--tenant");
    return call(c, "/cebus.v1.Admin/ListEventSources", &req.base,
                &cebus__v1__list_event_sources_response__descriptor, true, "sources");
}

int cli_cmd_source_remove(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__DeleteEventSourceRequest req = CEBUS__V1__DELETE_EVENT_SOURCE_REQUEST__INIT;

    if (cli_get(a, "--tenant"))
        req.tenant = (char *)cli_get(a, "--tenant");
    req.prefix = (char *)a->pos[0];
    return call(c, "/cebus.v1.Admin/DeleteEventSource", &req.base,
                &cebus__v1__delete_event_source_response__descriptor, false, NULL);
}
