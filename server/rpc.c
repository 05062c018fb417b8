#include "rpc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/timestamp.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "log.h"
#include "util.h"

struct method {
    const char *path;
    bool streaming;
    bool public;  /* no authentication (health) */
    eb_rpc_fn fn;
};

static void rpc_health_check(struct eb_rpc *rpc);

static const struct method methods[] = {
    {"/cebus.v1.EventBus/PutEvents", false, false, eb_rpc_put_events},
    {"/cebus.v1.EventBus/CreateRule", false, false, eb_rpc_create_rule},
    {"/cebus.v1.EventBus/GetRule", false, false, eb_rpc_get_rule},
    {"/cebus.v1.EventBus/ListRules", false, false, eb_rpc_list_rules},
    {"/cebus.v1.EventBus/UpdateRule", false, false, eb_rpc_update_rule},
    {"/cebus.v1.EventBus/DeleteRule", false, false, eb_rpc_delete_rule},
    {"/cebus.v1.EventBus/TestEventPattern", false, false, eb_rpc_test_event_pattern},
    {"/cebus.v1.EventBus/Subscribe", true, false, eb_rpc_subscribe},
    {"/cebus.v1.EventBus/Ack", false, false, eb_rpc_ack},
    {"/cebus.v1.EventBus/Nack", false, false, eb_rpc_nack},
    {"/cebus.v1.Admin/CreateTenant", false, false, eb_rpc_create_tenant},
    {"/cebus.v1.Admin/CreateApiKey", false, false, eb_rpc_create_api_key},
    {"/cebus.v1.Admin/CreateBus", false, false, eb_rpc_create_bus},
    {"/cebus.v1.Admin/ListBuses", false, false, eb_rpc_list_buses},
    {"/cebus.v1.Admin/GetTenant", false, false, eb_rpc_get_tenant},
    {"/cebus.v1.Admin/ListTenants", false, false, eb_rpc_list_tenants},
    {"/cebus.v1.Admin/UpdateTenant", false, false, eb_rpc_update_tenant},
    {"/cebus.v1.Admin/DeleteTenant", false, false, eb_rpc_delete_tenant},
    {"/cebus.v1.Admin/ListApiKeys", false, false, eb_rpc_list_api_keys},
    {"/cebus.v1.Admin/RevokeApiKey", false, false, eb_rpc_revoke_api_key},
    {"/cebus.v1.Admin/GetBus", false, false, eb_rpc_get_bus},
    {"/cebus.v1.Admin/UpdateBus", false, false, eb_rpc_update_bus},
    {"/cebus.v1.Admin/DeleteBus", false, false, eb_rpc_delete_bus},
    {"/cebus.v1.Admin/CreateGrant", false, false, eb_rpc_create_grant},
    {"/cebus.v1.Admin/ListGrants", false, false, eb_rpc_list_grants},
    {"/cebus.v1.Admin/RevokeGrant", false, false, eb_rpc_revoke_grant},
    {"/cebus.v1.Admin/CreateEventSource", false, false, eb_rpc_create_event_source},
    {"/cebus.v1.Admin/ListEventSources", false, false, eb_rpc_list_event_sources},
    {"/cebus.v1.Admin/DeleteEventSource", false, false, eb_rpc_delete_event_source},
    {"/cebus.v1.Admin/SetQuota", false, false, eb_rpc_set_quota},
    {"/cebus.v1.Admin/GetQuota", false, false, eb_rpc_get_quota},
    {"/cebus.v1.EventBus/Seek", false, false, eb_rpc_seek},
    {"/cebus.v1.Admin/ListDeadLetters", false, false, eb_rpc_list_dead_letters},
    {"/cebus.v1.Admin/RedriveDeadLetters", false, false, eb_rpc_redrive_dead_letters},
    {"/cebus.v1.Admin/PurgeDeadLetters", false, false, eb_rpc_purge_dead_letters},
    {"/grpc.health.v1.Health/Check", false, true, rpc_health_check},
};

#define NMETHODS (sizeof methods / sizeof methods[0])

struct registration {
    const struct method *m;
    struct eb_app *app;
};

static struct registration registrations[NMETHODS];

/* Runs on an executor thread: authenticates, then runs the method. */
static void run_job(eb_db *db, void *arg)
{
    struct eb_rpc *rpc = arg;
    const struct method *m = rpc->method;
    char authz[512];
    eb_status st;

    rpc->db = db;
    rpc->req = eb_call_request(rpc->call, &rpc->req_len);
    if (!m->public) {
        int n = eb_call_metadata(rpc->call, "authorization", authz, sizeof authz);
        st = eb_auth_authenticate(rpc->app->auth, db, n < 0 ? NULL : authz, &rpc->who, rpc->err,
                                  sizeof rpc->err);
        if (st == EB_EUNAVAIL) {
            eb_rpc_fail(rpc, st, "database unavailable; retry");
            return;
        }
        if (st) {
            eb_rpc_fail(rpc, st, "%s", st == EB_EUNAUTH ? rpc->err : "internal error");
            return;
        }
    }
    m->fn(rpc);
}

static void on_call(eb_call *call, void *ctx)
{
    struct registration *reg = ctx;
    struct eb_rpc *rpc;
    eb_status st;

    /* The health check answers from the worker: it must work when the
     * executor is saturated or the database is down. */
    if (reg->m->fn == rpc_health_check) {
        Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
        resp.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
        eb_call_reply(call, &resp.base);
        return;
    }
    rpc = eb_calloc(1, sizeof *rpc);
    rpc->call = call;
    rpc->app = reg->app;
    rpc->method = reg->m;
    st = eb_exec_submit(reg->app->exec, run_job, rpc);
    if (st) {
        free(rpc);
        eb_call_fail(call, st,
                     st == EB_EEXHAUSTED ? "server busy: too many queued requests; retry"
                                         : "server shutting down; retry elsewhere");
    }
}

static void rpc_health_check(struct eb_rpc *rpc)
{
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    resp.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    eb_rpc_reply(rpc, &resp.base);
}

void eb_rpc_register_all(eb_server *srv, struct eb_app *app)
{
    for (size_t i = 0; i < NMETHODS; i++) {
        registrations[i].m = &methods[i];
        registrations[i].app = app;
        eb_server_add_method(srv, methods[i].path, methods[i].streaming, on_call,
                             &registrations[i]);
    }
}

void eb_rpc_reply(struct eb_rpc *rpc, const ProtobufCMessage *msg)
{
    eb_call_reply(rpc->call, msg);
    free(rpc);
}

void eb_rpc_fail(struct eb_rpc *rpc, eb_status st, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    eb_call_fail(rpc->call, st, "%s", buf);
    free(rpc);
}

void eb_rpc_fail_retry(struct eb_rpc *rpc, eb_status st, int64_t retry_after_ms,
                       const char *message)
{
    eb_call_fail_retry(rpc->call, st, retry_after_ms, message);
    free(rpc);
}

void eb_rpc_fail_store(struct eb_rpc *rpc, eb_status st, const char *what)
{
    switch (st) {
    case EB_EUNAVAIL:
        eb_rpc_fail(rpc, st, "database unavailable; retry");
        break;
    case EB_ENOTFOUND:
        eb_rpc_fail(rpc, st, "%s: not found", what);
        break;
    case EB_EEXIST:
        eb_rpc_fail(rpc, st, "%s: already exists", what);
        break;
    default:
        eb_rpc_fail(rpc, EB_EINTERNAL, "internal error");
        break;
    }
}

void eb_rpc_fail_pattern(struct eb_rpc *rpc, const char *compile_error)
{
    /* Whole-document errors already name the pattern itself. */
    if (strncmp(compile_error, "pattern: ", 9) == 0)
        compile_error += 9;
    eb_rpc_fail(rpc, EB_EINVAL, "pattern: %s", compile_error);
}

void eb_rpc_free(struct eb_rpc *rpc)
{
    free(rpc);
}

void eb_rpc_timestamp(struct Google__Protobuf__Timestamp *ts, int64_t us)
{
    google__protobuf__timestamp__init(ts);
    ts->seconds = us / 1000000;
    ts->nanos = (int32_t)(us % 1000000) * 1000;
}

/* Tokens are the hex of the last key: opaque enough, and a garbled token
 * is detected rather than silently restarting the listing. A key is a name,
 * or for parts 2 two names joined by '/' (as in a bus reference). */
static bool page_token_decode(const char *token, int parts, char *after, size_t size)
{
    size_t n = strlen(token);
    char *slash;

    if (n % 2 || n / 2 >= size || n / 2 > (size_t)parts * (EB_NAME_MAX + 1))
        return false;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(token + 2 * i, "%2x", &v) != 1)
            return false;
        after[i] = (char)v;
    }
    after[n / 2] = '\0';
    if (n == 0)
        return true;
    slash = strchr(after, '/');
    if ((parts == 2) != (slash != NULL))
        return false;
    if (!slash)
        return eb_name_valid(after);
    *slash = '\0';
    bool ok = eb_name_valid(after) && eb_name_valid(slash + 1);
    *slash = '/';
    return ok;
}

static bool page_start(struct eb_rpc *rpc, const char *method, const char *token, int parts,
                       uint32_t page_size, char *after, size_t aftersize, int *limit)
{
    if (!page_token_decode(token, parts, after, aftersize)) {
        eb_rpc_fail(rpc, EB_EINVAL, "page_token: not a token from a previous %s", method);
        return false;
    }
    *limit = page_size == 0          ? EB_PAGE_DEFAULT
             : page_size > EB_PAGE_MAX ? EB_PAGE_MAX
                                       : (int)page_size;
    return true;
}

bool eb_rpc_page_start(struct eb_rpc *rpc, const char *method, const char *token,
                       uint32_t page_size, char *after, size_t aftersize, int *limit)
{
    return page_start(rpc, method, token, 1, page_size, after, aftersize, limit);
}

bool eb_rpc_page_start_pair(struct eb_rpc *rpc, const char *method, const char *token,
                            uint32_t page_size, char *after, size_t aftersize, int *limit)
{
    return page_start(rpc, method, token, 2, page_size, after, aftersize, limit);
}

size_t eb_rpc_page_end(const void *recs, size_t recsize, size_t keyoff, size_t fetched,
                       int limit, char *token, size_t tokensize)
{
    size_t n = 0;
    const char *key;

    token[0] = '\0';
    if (fetched <= (size_t)limit)
        return fetched;
    key = (const char *)recs + (size_t)(limit - 1) * recsize + keyoff;
    for (const char *p = key; *p && n + 3 <= tokensize; p++)
        n += (size_t)snprintf(token + n, tokensize - n, "%02x", (unsigned char)*p);
    token[n] = '\0';
    return (size_t)limit;
}
