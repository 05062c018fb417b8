/* The RPC layer shared by the rpc_*.c files: the application context,
 * per-call state, and registration of every method.
 *
 * Each method's function runs on an executor thread (never a gRPC worker)
 * with a database connection and, unless the method is public, an
 * authenticated principal. It must end the call (eb_rpc_reply,
 * eb_rpc_fail) or hand it to another component that will.
 */
#ifndef EB_RPC_H
#define EB_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acker.h"
#include "appender.h"
#include "auth.h"
#include "config.h"
#include "dispatch.h"
#include "exec.h"
#include "grpc_server.h"
#include "quota.h"
#include "store.h"

struct eb_app {
    const struct eb_config *cfg;
    eb_exec *exec;
    eb_auth *auth;
    eb_appender *appender;
    eb_acker *acker;
    eb_dispatch *dispatch;
    eb_quota *quota;
};

struct eb_rpc {
    eb_call *call;
    struct eb_app *app;
    eb_db *db;
    struct eb_principal who;
    const uint8_t *req; /* borrowed from the call */
    size_t req_len;
    char err[512];
    const struct method *method; /* rpc.c's */
};

typedef void (*eb_rpc_fn)(struct eb_rpc *rpc);

/* Registers every implemented method of cebus.v1.EventBus, cebus.v1.Admin
 * and grpc.health.v1.Health on srv. */
void eb_rpc_register_all(eb_server *srv, struct eb_app *app);

/* Ends the call with msg and frees rpc. */
void eb_rpc_reply(struct eb_rpc *rpc, const ProtobufCMessage *msg);

/* Ends the call with an error and frees rpc. */
void eb_rpc_fail(struct eb_rpc *rpc, eb_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Ends the call with status st and message (a quota's), with trailing
 * metadata "retry-after-ms" = retry_after_ms, and frees rpc. */
void eb_rpc_fail_retry(struct eb_rpc *rpc, eb_status st, int64_t retry_after_ms,
                       const char *message);

/* Ends the call with the store status st, using a message suited to
 * clients (never the database's text), and frees rpc. */
void eb_rpc_fail_store(struct eb_rpc *rpc, eb_status st, const char *what);

/* Ends the call with INVALID_ARGUMENT for a pattern compile error: the
 * message starts with "pattern: " and then the path inside the pattern.
 * Frees rpc. */
void eb_rpc_fail_pattern(struct eb_rpc *rpc, const char *compile_error);

/* Frees rpc without ending the call (after handing the call off). */
void eb_rpc_free(struct eb_rpc *rpc);

/* Method functions, by file. */
void eb_rpc_put_events(struct eb_rpc *rpc);
void eb_rpc_create_rule(struct eb_rpc *rpc);
void eb_rpc_get_rule(struct eb_rpc *rpc);
void eb_rpc_list_rules(struct eb_rpc *rpc);
void eb_rpc_update_rule(struct eb_rpc *rpc);
void eb_rpc_delete_rule(struct eb_rpc *rpc);
void eb_rpc_test_event_pattern(struct eb_rpc *rpc);
void eb_rpc_subscribe(struct eb_rpc *rpc);
void eb_rpc_ack(struct eb_rpc *rpc);
void eb_rpc_nack(struct eb_rpc *rpc);
void eb_rpc_create_tenant(struct eb_rpc *rpc);
void eb_rpc_create_api_key(struct eb_rpc *rpc);
void eb_rpc_create_bus(struct eb_rpc *rpc);
void eb_rpc_list_buses(struct eb_rpc *rpc);
void eb_rpc_get_tenant(struct eb_rpc *rpc);
void eb_rpc_list_tenants(struct eb_rpc *rpc);
void eb_rpc_update_tenant(struct eb_rpc *rpc);
void eb_rpc_delete_tenant(struct eb_rpc *rpc);
void eb_rpc_list_api_keys(struct eb_rpc *rpc);
void eb_rpc_revoke_api_key(struct eb_rpc *rpc);
void eb_rpc_get_bus(struct eb_rpc *rpc);
void eb_rpc_update_bus(struct eb_rpc *rpc);
void eb_rpc_delete_bus(struct eb_rpc *rpc);
void eb_rpc_create_grant(struct eb_rpc *rpc);
void eb_rpc_list_grants(struct eb_rpc *rpc);
void eb_rpc_revoke_grant(struct eb_rpc *rpc);
void eb_rpc_create_event_source(struct eb_rpc *rpc);
void eb_rpc_list_event_sources(struct eb_rpc *rpc);
void eb_rpc_delete_event_source(struct eb_rpc *rpc);
void eb_rpc_set_quota(struct eb_rpc *rpc);
void eb_rpc_get_quota(struct eb_rpc *rpc);
void eb_rpc_seek(struct eb_rpc *rpc);
void eb_rpc_list_dead_letters(struct eb_rpc *rpc);
void eb_rpc_redrive_dead_letters(struct eb_rpc *rpc);
void eb_rpc_purge_dead_letters(struct eb_rpc *rpc);

/* Sets *lim to the rule limits of bus's owner (for
 * eb_store_rule_insert_limited()). Fails the call (freeing rpc) and
 * returns false when its quota cannot be read. */
bool eb_rpc_rule_limits(struct eb_rpc *rpc, const struct eb_bus_rec *bus,
                        struct eb_rule_limits *lim);

/* Ends the call with RESOURCE_EXHAUSTED for a rule change that lim
 * refused (after EB_EEXHAUSTED from the store), naming the quota. Frees
 * rpc. */
void eb_rpc_fail_rule_limits(struct eb_rpc *rpc, const struct eb_rule_limits *lim,
                             const char *bus_ref);

/* Resolves the tenant an Admin request names ("" = the caller's); another
 * tenant is reachable by the platform admin only and is NOT_FOUND for
 * anyone else. Fails the call (freeing rpc) and returns false on error. */
bool eb_rpc_target_tenant(struct eb_rpc *rpc, const char *name, struct eb_tenant_rec *t);

/* Protobuf timestamp helpers. */
struct Google__Protobuf__Timestamp;
void eb_rpc_timestamp(struct Google__Protobuf__Timestamp *ts, int64_t us);

/* Pages of List RPCs: default and largest page sizes (larger requests are
 * clamped). */
#define EB_PAGE_DEFAULT 100
#define EB_PAGE_MAX 1000

/* Starts a page of a List RPC: decodes token (the key of the last row of
 * the previous page, opaque to clients) into after and sets *limit from
 * page_size; the caller fetches limit + 1 rows after it. Keys are names;
 * for eb_rpc_page_start_pair() two names joined by '/'. On a garbled token
 * fails the call (naming method), frees rpc and returns false. */
bool eb_rpc_page_start(struct eb_rpc *rpc, const char *method, const char *token,
                       uint32_t page_size, char *after, size_t aftersize, int *limit);
bool eb_rpc_page_start_pair(struct eb_rpc *rpc, const char *method, const char *token,
                            uint32_t page_size, char *after, size_t aftersize, int *limit);

/* Ends a page of a List RPC whose rows were fetched with limit + 1: returns
 * how many of the fetched rows to answer (at most limit) and writes the
 * next page's token to token: "" when nothing remains, else made from the
 * key of the last row answered. recs is the array of fetched records, each
 * recsize bytes with its key the NUL-terminated string at byte keyoff
 * (offsetof(struct eb_bus_rec, name)). token must hold 2 * key length + 1
 * bytes. */
size_t eb_rpc_page_end(const void *recs, size_t recsize, size_t keyoff, size_t fetched,
                       int limit, char *token, size_t tokensize);

#endif
