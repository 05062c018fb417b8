/* CLI handlers for quotas (`cebus quota get|set`). Each makes one call and
 * prints the tenant's effective quota as JSON.
 */
#include "cli.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cebus/v1/admin.pb-c.h"

/* Prints the quota of a finished call, or reports its error. */
static int quota_print(int rc, Cebus__V1__Quota *resp, const cebus_error *err)
{
    if (rc != 0)
        return cli_rpc_error(err);
    cli_print_message(stdout, &resp->base);
    cebus__v1__quota__free_unpacked(resp, NULL);
    return CLI_EXIT_OK;
}

int cli_cmd_quota_get(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__GetQuotaRequest req = CEBUS__V1__GET_QUOTA_REQUEST__INIT;
    Cebus__V1__Quota *resp = NULL;
    cebus_error err;
    int rc;

    req.tenant = a->npos > 0 ? (char *)a->pos[0] : "";
    rc = cebus_get_quota(c, &req, &resp, &err);
    return quota_print(rc, resp, &err);
}

int cli_cmd_quota_set(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__SetQuotaRequest req = CEBUS__V1__SET_QUOTA_REQUEST__INIT;
    Cebus__V1__Quota quota = CEBUS__V1__QUOTA__INIT;
    Cebus__V1__Quota *resp = NULL;
    cebus_error err;
    int rc;
    const struct {
        const char *flag;
        uint32_t *field;
    } flags[] = {
        {"--events-per-second", &quota.events_per_second},
        {"--bytes-per-second", &quota.bytes_per_second},
        {"--burst-seconds", &quota.burst_seconds},
        {"--rules-per-bus", &quota.rules_per_bus},
        {"--subscriptions", &quota.subscriptions},
        {"--concurrent-streams", &quota.concurrent_streams},
    };

    quota.tenant = (char *)a->pos[0];
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        const char *v = cli_get(a, flags[i].flag);
        uint64_t n;
        if (!v)
            continue;
        if (cli_parse_uint(v, UINT32_MAX, &n) != 0)
            return cli_usage_error(a, "%s must be a number from 0 to %u", flags[i].flag,
                                   UINT32_MAX);
        *flags[i].field = (uint32_t)n;
    }
    req.quota = &quota;
    rc = cebus_set_quota(c, &req, &resp, &err);
    return quota_print(rc, resp, &err);
}
