/* libcebus: the C client library for cebus, over the gRPC C core.
 *
 * Messages are the protobuf-c types generated from proto/ (cebus.v1 and
 * io.cloudevents.v1). The library owns one channel per client; calls on one
 * client may be made from several threads at once.
 *
 * Status codes are gRPC status codes (GRPC_STATUS_OK = 0). Every function
 * that can fail fills a cebus_error with the code and the server's message.
 */
#ifndef CEBUS_H
#define CEBUS_H

#include <stddef.h>
#include <stdint.h>

#include "cebus/v1/admin.pb-c.h"
#include "cebus/v1/eventbus.pb-c.h"
#include "cloudevents.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cebus_client cebus_client;
typedef struct cebus_stream cebus_stream;

typedef struct cebus_error {
    int code;           /* gRPC status code; 0 when OK */
    char message[512];  /* the server's (or the library's) explanation */
    /* How long the server asks the client to wait before retrying, from
     * trailing metadata "retry-after-ms" (quotas: RESOURCE_EXHAUSTED);
     * 0 when it gave no hint. */
    int64_t retry_after_ms;
} cebus_error;

/* Default deadline of unary calls, in milliseconds. */
#define CEBUS_DEFAULT_TIMEOUT_MS 30000

/* Initializes the gRPC library. Call once before any other function; pair
 * with cebus_library_shutdown(). */
void cebus_library_init(void);
void cebus_library_shutdown(void);

/* Returns a new client for addr ("host:port") that sends api_key (may be
 * NULL for the health check) as "authorization: Bearer <key>" on every call.
 * The strings are copied. Free with cebus_client_free(). */
cebus_client *cebus_client_new(const char *addr, const char *api_key);
void cebus_client_free(cebus_client *c);

/* TLS settings of a client; NULL members are unset. */
typedef struct cebus_tls_options {
    const char *ca_file;     /* PEM CA certificates that verify the server; NULL: the
                                system's roots */
    const char *cert_file;   /* PEM client certificate chain, for servers that require
                                one (mTLS); set together with key_file */
    const char *key_file;    /* its PEM private key, unencrypted */
    const char *server_name; /* name the server's certificate must carry, when it is not
                                addr's host (e.g. "cebus.example.com" for addr
                                "10.0.0.5:50051"); NULL: addr's host */
} cebus_tls_options;

/* Largest file cebus_client_new_tls() reads, in bytes. */
#define CEBUS_TLS_MAX_FILE_BYTES (1024 * 1024)

/* Like cebus_client_new(), over TLS. tls is borrowed; its files are read
 * here, so later changes to them apply to new clients only. Returns NULL
 * and fills err (INVALID_ARGUMENT, naming the option) when a file cannot
 * be read, is larger than CEBUS_TLS_MAX_FILE_BYTES or holds no PEM
 * certificate (ca_file, cert_file) or private key (key_file), or when only one of
 * cert_file and key_file is set. A failed handshake (a server the CA does
 * not vouch for, a client certificate the server refuses) is not known
 * here: calls then fail with UNAVAILABLE. */
cebus_client *cebus_client_new_tls(const char *addr, const char *api_key,
                                   const cebus_tls_options *tls, cebus_error *err);

/* Makes one unary call. method is the full path, e.g.
 * "/cebus.v1.EventBus/PutEvents". On success returns 0 and sets *resp to a
 * new message of type resp_desc (free with protobuf_c_message_free_unpacked).
 * On failure returns the gRPC status code, fills err and leaves *resp alone.
 * timeout_ms <= 0 means the client's timeout (cebus_client_set_timeout(),
 * by default CEBUS_DEFAULT_TIMEOUT_MS).
 * THREAD SAFETY: safe to call concurrently on one client. */
int cebus_call_unary(cebus_client *c, const char *method, const ProtobufCMessage *req,
                     const ProtobufCMessageDescriptor *resp_desc, int timeout_ms,
                     ProtobufCMessage **resp, cebus_error *err);

/* Typed conveniences over cebus_call_unary; same contract. */
int cebus_put_events(cebus_client *c, const Cebus__V1__PutEventsRequest *req,
                     Cebus__V1__PutEventsResponse **resp, cebus_error *err);
int cebus_create_rule(cebus_client *c, const Cebus__V1__CreateRuleRequest *req,
                      Cebus__V1__Rule **resp, cebus_error *err);
int cebus_get_rule(cebus_client *c, const Cebus__V1__GetRuleRequest *req,
                   Cebus__V1__Rule **resp, cebus_error *err);
int cebus_list_rules(cebus_client *c, const Cebus__V1__ListRulesRequest *req,
                     Cebus__V1__ListRulesResponse **resp, cebus_error *err);
int cebus_delete_rule(cebus_client *c, const Cebus__V1__DeleteRuleRequest *req,
                      cebus_error *err);
/* Replaces the fields of a rule that req->update_mask names ("pattern",
 * "targets", "description", "enabled") with those of req->rule; *resp is
 * the rule as it now is. */
int cebus_update_rule(cebus_client *c, const Cebus__V1__UpdateRuleRequest *req,
                      Cebus__V1__Rule **resp, cebus_error *err);
int cebus_create_tenant(cebus_client *c, const Cebus__V1__CreateTenantRequest *req,
                        Cebus__V1__Tenant **resp, cebus_error *err);
int cebus_create_api_key(cebus_client *c, const Cebus__V1__CreateApiKeyRequest *req,
                         Cebus__V1__CreateApiKeyResponse **resp, cebus_error *err);
int cebus_create_bus(cebus_client *c, const Cebus__V1__CreateBusRequest *req,
                     Cebus__V1__Bus **resp, cebus_error *err);
int cebus_list_buses(cebus_client *c, const Cebus__V1__ListBusesRequest *req,
                     Cebus__V1__ListBusesResponse **resp, cebus_error *err);
/* Returns 0 and sets *serving to 1 when the server reports SERVING. */
int cebus_health_check(cebus_client *c, int timeout_ms, int *serving, cebus_error *err);

/* Opens a Subscribe stream. Waits (up to the client's timeout, at most
 * 10 s) until the server has registered the stream: with a "latest" start,
 * every event published after this returns is delivered. On success
 * returns 0 and sets *out; close it with cebus_stream_close(). On failure,
 * a refused stream included, returns the status code and fills err (a
 * stream refused after that wait reports its status on the first
 * cebus_stream_next()). */
int cebus_subscribe(cebus_client *c, const Cebus__V1__SubscribeRequest *req,
                    cebus_stream **out, cebus_error *err);

/* Waits up to timeout_ms (< 0: forever) for the next delivery.
 * Returns 1 and sets *msg (free with cebus__v1__subscribe_response__free_unpacked)
 * when one arrived; 0 on timeout; -1 when the stream has ended, with err
 * holding the final status (code 0 for a clean end).
 * THREAD SAFETY: one thread at a time per stream. */
int cebus_stream_next(cebus_stream *s, int timeout_ms, Cebus__V1__SubscribeResponse **msg,
                      cebus_error *err);

/* Cancels the stream if still open and frees it. NULL is allowed. */
void cebus_stream_close(cebus_stream *s);

/* Additions beyond the first version of this header. */

/* Returns the static name of a gRPC status code ("INVALID_ARGUMENT"), or
 * "UNKNOWN" for codes outside the gRPC range. */
const char *cebus_status_name(int code);

/* Sets the deadline of c's typed calls (cebus_put_events() and the like).
 * cebus_subscribe() waits for its request to be sent for this long or one
 * second, whichever is shorter. timeout_ms <= 0 restores
 * CEBUS_DEFAULT_TIMEOUT_MS.
 * THREAD SAFETY: call before sharing c between threads. */
void cebus_client_set_timeout(cebus_client *c, int timeout_ms);

/* Durable subscriptions (a Subscribe on a subscription without a start
 * position): each delivery carries ack_id, attempt (1 for the first
 * delivery) and ack_deadline, after which it is delivered again unless
 * acked. cebus_ack() confirms a batch of deliveries (at most 1000 ids);
 * cebus_nack() hands them back for redelivery after redelivery_delay_ms.
 * Same contract as the other typed calls; resp may be NULL when the caller
 * does not need it, else it is set on success (free with its
 * *__free_unpacked()) and its not_applied lists the indexes of ids that
 * changed nothing (already acked, delivered again since, dead-lettered,
 * cancelled by a Seek, or not of this subscription). An id that is not an
 * ack id fails the whole call with INVALID_ARGUMENT. */
int cebus_ack(cebus_client *c, const Cebus__V1__AckRequest *req, Cebus__V1__AckResponse **resp,
              cebus_error *err);
int cebus_nack(cebus_client *c, const Cebus__V1__NackRequest *req,
               Cebus__V1__NackResponse **resp, cebus_error *err);

/* The rest of cebus.v1.Admin, and TestEventPattern: typed calls with the
 * contract of cebus_call_unary() and the client's timeout. On success *resp
 * is a new message (free with its *__free_unpacked()); calls whose answer
 * is empty take no resp. */
int cebus_get_tenant(cebus_client *c, const Cebus__V1__GetTenantRequest *req,
                     Cebus__V1__Tenant **resp, cebus_error *err);
int cebus_list_tenants(cebus_client *c, const Cebus__V1__ListTenantsRequest *req,
                       Cebus__V1__ListTenantsResponse **resp, cebus_error *err);
int cebus_update_tenant(cebus_client *c, const Cebus__V1__UpdateTenantRequest *req,
                        Cebus__V1__Tenant **resp, cebus_error *err);
int cebus_delete_tenant(cebus_client *c, const Cebus__V1__DeleteTenantRequest *req,
                        cebus_error *err);
int cebus_list_api_keys(cebus_client *c, const Cebus__V1__ListApiKeysRequest *req,
                        Cebus__V1__ListApiKeysResponse **resp, cebus_error *err);
int cebus_revoke_api_key(cebus_client *c, const Cebus__V1__RevokeApiKeyRequest *req,
                         cebus_error *err);
int cebus_get_bus(cebus_client *c, const Cebus__V1__GetBusRequest *req, Cebus__V1__Bus **resp,
                  cebus_error *err);
int cebus_update_bus(cebus_client *c, const Cebus__V1__UpdateBusRequest *req,
                     Cebus__V1__Bus **resp, cebus_error *err);
int cebus_delete_bus(cebus_client *c, const Cebus__V1__DeleteBusRequest *req, cebus_error *err);
int cebus_create_grant(cebus_client *c, const Cebus__V1__CreateGrantRequest *req,
                       Cebus__V1__Grant **resp, cebus_error *err);
int cebus_list_grants(cebus_client *c, const Cebus__V1__ListGrantsRequest *req,
                      Cebus__V1__ListGrantsResponse **resp, cebus_error *err);
int cebus_revoke_grant(cebus_client *c, const Cebus__V1__RevokeGrantRequest *req,
                       cebus_error *err);
int cebus_create_event_source(cebus_client *c, const Cebus__V1__CreateEventSourceRequest *req,
                              Cebus__V1__EventSource **resp, cebus_error *err);
int cebus_list_event_sources(cebus_client *c, const Cebus__V1__ListEventSourcesRequest *req,
                             Cebus__V1__ListEventSourcesResponse **resp, cebus_error *err);
int cebus_delete_event_source(cebus_client *c, const Cebus__V1__DeleteEventSourceRequest *req,
                              cebus_error *err);
int cebus_test_event_pattern(cebus_client *c, const Cebus__V1__TestEventPatternRequest *req,
                             Cebus__V1__TestEventPatternResponse **resp, cebus_error *err);
/* Quotas. Past a rate quota, PutEvents fails with RESOURCE_EXHAUSTED and
 * err->retry_after_ms says how long to wait. */
int cebus_set_quota(cebus_client *c, const Cebus__V1__SetQuotaRequest *req,
                    Cebus__V1__Quota **resp, cebus_error *err);
int cebus_get_quota(cebus_client *c, const Cebus__V1__GetQuotaRequest *req,
                    Cebus__V1__Quota **resp, cebus_error *err);
/* Durable subscriptions: moving one (Seek; outstanding deliveries are
 * cancelled), and its dead letters (list, redrive, purge; see
 * docs/dead-letters.md). */
int cebus_seek(cebus_client *c, const Cebus__V1__SeekRequest *req,
               Cebus__V1__SeekResponse **resp, cebus_error *err);
int cebus_list_dead_letters(cebus_client *c, const Cebus__V1__ListDeadLettersRequest *req,
                            Cebus__V1__ListDeadLettersResponse **resp, cebus_error *err);
int cebus_redrive_dead_letters(cebus_client *c, const Cebus__V1__RedriveDeadLettersRequest *req,
                               Cebus__V1__RedriveDeadLettersResponse **resp, cebus_error *err);
int cebus_purge_dead_letters(cebus_client *c, const Cebus__V1__PurgeDeadLettersRequest *req,
                             Cebus__V1__PurgeDeadLettersResponse **resp, cebus_error *err);

#ifdef __cplusplus
}
#endif
#endif
