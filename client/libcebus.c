/* libcebus: channels, unary calls and the Subscribe stream over the gRPC C
 * core. See cebus.h for the contract of each function.
 *
 * Every call gets its own pluck completion queue, so concurrent calls on one
 * client never see each other's events and no thread has to pump a shared
 * queue.
 */
#include "cebus.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

/* Responses are bounded by the server (events of 256 KiB, pages of at most
 * 1000 rules); 64 MiB only guards against a runaway peer while leaving
 * room above gRPC's 4 MiB default for large rule pages. */
#define CEBUS_MAX_RECEIVE_BYTES (64 * 1024 * 1024)
/* Longest time cebus_subscribe() waits for its request to go out. */
#define SUBSCRIBE_SEND_WAIT_MS 1000
/* How long cebus_subscribe() waits for the server to register the stream
 * (its response headers), at most. */
#define SUBSCRIBE_LIVE_WAIT_MS 10000

struct cebus_client {
    grpc_channel *channel;
    char *auth_value; /* "Bearer <key>", or NULL to send no metadata */
    int timeout_ms;   /* deadline of the typed calls */
    bool auth_invalid; /* the key cannot be sent as a header value */
};

struct cebus_stream {
    grpc_completion_queue *cq;
    grpc_call *call;
    grpc_byte_buffer *send_buf;
    grpc_metadata auth_md;
    char *auth_value; /* a copy: the stream may outlive its client */
    grpc_metadata_array initial_md;
    grpc_metadata_array trailing_md;
    grpc_byte_buffer *recv_buf;
    grpc_status_code status;
    grpc_slice details;
    bool send_pending;
    bool recv_pending;
    bool status_pending;
    bool md_pending; /* the RECV_INITIAL_METADATA batch of cebus_subscribe() */
    bool initial_md_requested;
    bool ended;      /* final status known; further next() calls repeat it */
    cebus_error end; /* the final status, once ended */
    /* Distinct addresses serve as the tags of the three kinds of batch. */
    char tag_send, tag_recv, tag_status, tag_md;
};

/* Out of memory is not recoverable (STYLE.md): abort. */
static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        abort();
    return p;
}

static void set_error(cebus_error *err, int code, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return;
    err->code = code;
    err->retry_after_ms = 0;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

static void clear_error(cebus_error *err)
{
    if (!err)
        return;
    err->code = GRPC_STATUS_OK;
    err->message[0] = '\0';
    err->retry_after_ms = 0;
}

/* Fills err from a received status; the details slice stays the caller's. */
static void set_status_error(cebus_error *err, grpc_status_code status, grpc_slice details)
{
    size_t len = GRPC_SLICE_LENGTH(details);

    if (!err)
        return;
    if (len == 0) {
        set_error(err, status, "%s", cebus_status_name(status));
        return;
    }
    if (len >= sizeof(err->message))
        len = sizeof(err->message) - 1;
    err->code = status;
    err->retry_after_ms = 0;
    memcpy(err->message, GRPC_SLICE_START_PTR(details), len);
    err->message[len] = '\0';
}

/* Sets err->retry_after_ms from trailing metadata "retry-after-ms", which
 * the server sends with RESOURCE_EXHAUSTED when it knows the wait. */
static void set_retry_after(cebus_error *err, const grpc_metadata_array *md)
{
    static const char key[] = "retry-after-ms";

    if (!err)
        return;
    for (size_t i = 0; i < md->count; i++) {
        const grpc_metadata *m = &md->metadata[i];
        char value[24];
        size_t len = GRPC_SLICE_LENGTH(m->value);
        char *end;
        long long v;

        if (GRPC_SLICE_LENGTH(m->key) != sizeof key - 1 ||
            memcmp(GRPC_SLICE_START_PTR(m->key), key, sizeof key - 1) != 0 ||
            len == 0 || len >= sizeof value)
            continue;
        memcpy(value, GRPC_SLICE_START_PTR(m->value), len);
        value[len] = '\0';
        v = strtoll(value, &end, 10);
        if (*end == '\0' && v > 0)
            err->retry_after_ms = (int64_t)v;
    }
}

#define INVALID_KEY_MESSAGE "API key is not valid as gRPC metadata (printable ASCII only)"

/* Reports a batch that gRPC refused to start. That is a bug or a bad
 * argument, never a network condition, and no tag will arrive for it. */
static int start_batch_error(cebus_error *err, grpc_call_error e)
{
    if (e == GRPC_CALL_ERROR_INVALID_METADATA) {
        set_error(err, GRPC_STATUS_INVALID_ARGUMENT, INVALID_KEY_MESSAGE);
        return GRPC_STATUS_INVALID_ARGUMENT;
    }
    set_error(err, GRPC_STATUS_INTERNAL, "grpc_call_start_batch failed (%d)", (int)e);
    return GRPC_STATUS_INTERNAL;
}

/* gRPC would refuse such a key at start_batch, after logging it in full to
 * stderr; a key must not end up in logs, so it is checked here first. */
static bool valid_header_value(const char *s)
{
    for (; *s; s++)
        if (*s < 0x20 || *s > 0x7e)
            return false;
    return true;
}

static gpr_timespec deadline_after_ms(int timeout_ms)
{
    if (timeout_ms < 0)
        return gpr_inf_future(GPR_CLOCK_MONOTONIC);
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                        gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}

/* Serializes msg into a new byte buffer; destroy it after its batch. */
static grpc_byte_buffer *pack_message(const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    grpc_slice slice = grpc_slice_malloc(len);
    grpc_byte_buffer *bb;

    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
    bb = grpc_raw_byte_buffer_create(&slice, 1);
    /* The buffer took its own reference. */
    grpc_slice_unref(slice);
    return bb;
}

/* Returns the message in bb unpacked as desc, or NULL when it does not
 * parse (or fails to decompress). bb stays the caller's. */
static ProtobufCMessage *unpack_message(grpc_byte_buffer *bb,
                                        const ProtobufCMessageDescriptor *desc)
{
    grpc_byte_buffer_reader reader;
    ProtobufCMessage *msg;
    grpc_slice all;

    if (!grpc_byte_buffer_reader_init(&reader, bb))
        return NULL;
    all = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    msg = protobuf_c_message_unpack(desc, NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
    grpc_slice_unref(all);
    return msg;
}

/* Shuts cq down and waits until it is, then destroys it. All tags must have
 * been plucked already, so the wait is immediate. */
static void destroy_cq(grpc_completion_queue *cq)
{
    grpc_event ev;

    grpc_completion_queue_shutdown(cq);
    do {
        ev = grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    } while (ev.type != GRPC_QUEUE_SHUTDOWN);
    grpc_completion_queue_destroy(cq);
}

/* Waits for tag on cq; the caller knows the batch will complete (the call
 * has a deadline, or was cancelled). Returns the batch's success flag. */
static bool pluck_forever(grpc_completion_queue *cq, void *tag)
{
    grpc_event ev = grpc_completion_queue_pluck(cq, tag, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);

    return ev.type == GRPC_OP_COMPLETE && ev.success;
}

/* Creates a call for method on cq. The method slice is copied: callers may
 * pass a method name that does not outlive the call. */
static grpc_call *create_call(cebus_client *c, grpc_completion_queue *cq, const char *method,
                              gpr_timespec deadline)
{
    grpc_slice method_slice = grpc_slice_from_copied_string(method);
    grpc_call *call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                               method_slice, NULL, deadline, NULL);

    grpc_slice_unref(method_slice);
    return call;
}

/* Fills md with the authorization header value (NULL: none) and returns
 * the number of entries. The slices point into value, which must live until
 * the batch that sends them completes; nothing is copied or freed. */
static size_t auth_metadata(const char *value, grpc_metadata *md)
{
    if (!value)
        return 0;
    memset(md, 0, sizeof(*md));
    md->key = grpc_slice_from_static_string("authorization");
    md->value = grpc_slice_from_static_string(value);
    return 1;
}

void cebus_library_init(void)
{
    grpc_init();
}

void cebus_library_shutdown(void)
{
    /* grpc_shutdown may finish its clean-up on another thread after
     * returning; the blocking variant waits, so that a process exiting right
     * after this call reports no leaks under valgrind or LeakSanitizer. */
    grpc_shutdown_blocking();
}

const char *cebus_status_name(int code)
{
    static const char *const names[] = {
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    };

    if (code < 0 || (size_t)code >= sizeof(names) / sizeof(names[0]))
        return "UNKNOWN";
    return names[code];
}

/* Returns a new client on a channel to addr with creds (borrowed).
 * server_name, when not NULL, is the name checked in the server's
 * certificate. */
static cebus_client *client_create(const char *addr, const char *api_key,
                                   grpc_channel_credentials *creds, const char *server_name)
{
    cebus_client *c = xcalloc(1, sizeof(*c));
    grpc_arg args[2];
    grpc_channel_args channel_args = {.num_args = 1, .args = args};

    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = CEBUS_MAX_RECEIVE_BYTES;
    if (server_name) {
        args[1].type = GRPC_ARG_STRING;
        args[1].key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
        args[1].value.string = (char *)server_name;
        channel_args.num_args = 2;
    }
    c->channel = grpc_channel_create(addr, creds, &channel_args);
    if (api_key && *api_key) {
        size_t len = strlen("Bearer ") + strlen(api_key) + 1;
        c->auth_value = xcalloc(1, len);
        snprintf(c->auth_value, len, "Bearer %s", api_key);
        c->auth_invalid = !valid_header_value(api_key);
    }
    c->timeout_ms = CEBUS_DEFAULT_TIMEOUT_MS;
    return c;
}

cebus_client *cebus_client_new(const char *addr, const char *api_key)
{
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    cebus_client *c = client_create(addr, api_key, creds, NULL);

    grpc_channel_credentials_release(creds);
    return c;
}

/* Reads the file at path (option name what) into a new NUL-terminated
 * string, which must hold a PEM block whose label ends with label. Returns
 * NULL and fills err on failure: without the check, gRPC reports a file of
 * the wrong kind only as a failed connection. */
static char *read_tls_file(const char *what, const char *path, const char *label,
                           cebus_error *err)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t len = 0, got;

    if (!f) {
        set_error(err, GRPC_STATUS_INVALID_ARGUMENT, "%s: cannot read '%.256s': %s", what, path,
                  strerror(errno));
        return NULL;
    }
    buf = xcalloc(1, CEBUS_TLS_MAX_FILE_BYTES + 2);
    while ((got = fread(buf + len, 1, CEBUS_TLS_MAX_FILE_BYTES + 1 - len, f)) > 0)
        len += got;
    if (ferror(f) || len > CEBUS_TLS_MAX_FILE_BYTES) {
        if (len > CEBUS_TLS_MAX_FILE_BYTES)
            set_error(err, GRPC_STATUS_INVALID_ARGUMENT, "%s: '%.256s' is larger than %d bytes",
                      what, path, CEBUS_TLS_MAX_FILE_BYTES);
        else
            set_error(err, GRPC_STATUS_INVALID_ARGUMENT, "%s: cannot read '%.256s': %s", what,
                      path, strerror(errno));
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    buf[len] = '\0';
    if (!strstr(buf, label)) {
        set_error(err, GRPC_STATUS_INVALID_ARGUMENT, "%s: no PEM %s in '%.256s'", what,
                  strcmp(label, "CERTIFICATE-----") == 0 ? "certificate" : "private key", path);
        free(buf);
        return NULL;
    }
    return buf;
}

cebus_client *cebus_client_new_tls(const char *addr, const char *api_key,
                                   const cebus_tls_options *tls, cebus_error *err)
{
    static const cebus_tls_options none = {0};
    grpc_ssl_pem_key_cert_pair pair = {0};
    grpc_channel_credentials *creds;
    char *ca = NULL, *cert = NULL, *key = NULL;
    cebus_client *c = NULL;

    clear_error(err);
    if (!tls)
        tls = &none;
    if (!tls->cert_file != !tls->key_file) {
        set_error(err, GRPC_STATUS_INVALID_ARGUMENT, "%s: must be set together with %s",
                  tls->cert_file ? "key_file" : "cert_file",
                  tls->cert_file ? "cert_file" : "key_file");
        goto out;
    }
    if (tls->ca_file && !(ca = read_tls_file("ca_file", tls->ca_file, "CERTIFICATE-----", err)))
        goto out;
    if (tls->cert_file) {
        if (!(cert = read_tls_file("cert_file", tls->cert_file, "CERTIFICATE-----", err)) ||
            !(key = read_tls_file("key_file", tls->key_file, "PRIVATE KEY-----", err)))
            goto out;
        pair.cert_chain = cert;
        pair.private_key = key;
    }
    /* The PEM strings are copied by gRPC. */
    creds = grpc_ssl_credentials_create_ex(ca, cert ? &pair : NULL, NULL, NULL);
    c = client_create(addr, api_key, creds, tls->server_name);
    grpc_channel_credentials_release(creds);
out:
    free(ca);
    free(cert);
    if (key) {
        /* Leave no copy of the private key in freed memory. */
        volatile char *p = key;
        while (*p)
            *p++ = '\0';
    }
    free(key);
    return c;
}

void cebus_client_set_timeout(cebus_client *c, int timeout_ms)
{
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : CEBUS_DEFAULT_TIMEOUT_MS;
}

void cebus_client_free(cebus_client *c)
{
    if (!c)
        return;
    grpc_channel_destroy(c->channel);
    free(c->auth_value);
    free(c);
}

int cebus_call_unary(cebus_client *c, const char *method, const ProtobufCMessage *req,
                     const ProtobufCMessageDescriptor *resp_desc, int timeout_ms,
                     ProtobufCMessage **resp, cebus_error *err)
{
    grpc_completion_queue *cq;
    grpc_call *call;
    grpc_byte_buffer *send_buf = NULL, *recv_buf = NULL;
    grpc_metadata md;
    grpc_metadata_array initial_md, trailing_md;
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_op ops[6];
    grpc_call_error e;
    ProtobufCMessage *msg;
    int tag = 0;
    int rc;

    clear_error(err);
    if (c->auth_invalid) {
        set_error(err, GRPC_STATUS_INVALID_ARGUMENT, INVALID_KEY_MESSAGE);
        return GRPC_STATUS_INVALID_ARGUMENT;
    }
    cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_metadata_array_init(&initial_md);
    grpc_metadata_array_init(&trailing_md);
    call = create_call(c, cq, method, deadline_after_ms(timeout_ms > 0 ? timeout_ms : c->timeout_ms));
    send_buf = pack_message(req);

    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = auth_metadata(c->auth_value, &md);
    ops[0].data.send_initial_metadata.metadata = &md;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send_buf;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv_buf;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
    ops[5].data.recv_status_on_client.status = &status;
    ops[5].data.recv_status_on_client.status_details = &details;

    e = grpc_call_start_batch(call, ops, 6, &tag, NULL);
    if (e != GRPC_CALL_OK) {
        rc = start_batch_error(err, e);
        goto out;
    }
    /* The call's deadline bounds the batch, so this wait ends. */
    pluck_forever(cq, &tag);
    if (status != GRPC_STATUS_OK) {
        set_status_error(err, status, details);
        set_retry_after(err, &trailing_md);
        rc = status;
        goto out;
    }
    if (!recv_buf) {
        set_error(err, GRPC_STATUS_INTERNAL, "missing response message");
        rc = GRPC_STATUS_INTERNAL;
        goto out;
    }
    msg = unpack_message(recv_buf, resp_desc);
    if (!msg) {
        set_error(err, GRPC_STATUS_INTERNAL, "malformed response");
        rc = GRPC_STATUS_INTERNAL;
        goto out;
    }
    *resp = msg;
    rc = GRPC_STATUS_OK;
out:
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&initial_md);
    grpc_metadata_array_destroy(&trailing_md);
    if (send_buf)
        grpc_byte_buffer_destroy(send_buf);
    if (recv_buf)
        grpc_byte_buffer_destroy(recv_buf);
    grpc_call_unref(call);
    destroy_cq(cq);
    return rc;
}

/* The typed wrappers: one cast each way, with the method path in one place. */
#define CEBUS_TYPED_CALL(c, path, req, desc, resp, err)                                       \
    cebus_call_unary((c), (path), (const ProtobufCMessage *)(req), (desc), (c)->timeout_ms, \
                     (ProtobufCMessage **)(resp), (err))

int cebus_put_events(cebus_client *c, const Cebus__V1__PutEventsRequest *req,
                     Cebus__V1__PutEventsResponse **resp, cebus_error *err)
{
    return CEBUS_TYPED_CALL(c, "/cebus.v1.EventBus/PutEvents", req,
                            &cebus__v1__put_events_response__descriptor, resp, err);
}

int cebus_create_rule(cebus_client *c, const Cebus__V1__CreateRuleRequest *req,
                      Cebus__V1__Rule **resp, cebus_error *err)
{
    return CEBUS_TYPED_CALL(c, "/cebus.v1.EventBus/CreateRule", req,
                            &cebus__v1__rule__descriptor, resp, err);
}

int cebus_get_rule(cebus_client *c, const Cebus__V1__GetRuleRequest *req, Cebus__V1__Rule **resp,
                   cebus_error *err)
{
    return CEBUS_TYPED_CALL(c, "/cebus.v1.EventBus/GetRule", req, &cebus__v1__rule__descriptor,
                            resp, err);
}

int cebus_list_rules(cebus_client *c, const Cebus__V1__ListRulesRequest *req,
                     Cebus__V1__ListRulesResponse **resp, cebus_error *err)
{
    return CEBUS_TYPED_CALL(c, "/cebus.v1.EventBus/ListRules", req,
                            &cebus__v1__list_rules_response__descriptor, resp, err);
}

int cebus_update_rule(cebus_client *c, const Cebus__V1__UpdateRuleRequest *req,
                      Cebus__V1__Rule **resp, cebus_error *err)
{
    return CEBUS_TYPED_CALL(c, "/cebus.v1.EventBus/UpdateRule", req, &cebus__v1__rule__descriptor,
                            resp, err);
}

int cebus_delete_rule(cebus_client *c, const Cebus__V1__DeleteRuleRequest *req, cebus_error *err)
{
    Cebus__V1__DeleteRuleResponse *resp = NULL;
    int rc = CEBUS_TYPED_CALL(c, "/cebus.v1.EventBus/DeleteRule", req,
                              &cebus__v1__delete_rule_response__descriptor, &resp, err);

    if (rc == GRPC_STATUS_OK)
        cebus__v1__delete_rule_response__free_unpacked(resp, NULL);
    return rc;
}

int cebus_ack(cebus_client *c, const Cebus__V1__AckRequest *req, Cebus__V1__AckResponse **resp,
              cebus_error *err)
{
    Cebus__V1__AckResponse *r = NULL;
    int rc = CEBUS_TYPED_CALL(c, "/cebus.v1.EventBus/Ack", req,
                              &cebus__v1__ack_response__descriptor, &r, err);

    if (rc == GRPC_STATUS_OK && resp)
        *resp = r;
    else if (rc == GRPC_STATUS_OK)
        cebus__v1__ack_response__free_unpacked(r, NULL);
    return rc;
}

int cebus_nack(cebus_client *c, const Cebus__V1__NackRequest *req,
               Cebus__V1__NackResponse **resp, cebus_error *err)
{
    Cebus__V1__NackResponse *r = NULL;
    int rc = CEBUS_TYPED_CALL(c, "/cebus.v1.EventBus/Nack", req,
                              &cebus__v1__nack_response__descriptor, &r, err);

    if (rc == GRPC_STATUS_OK && resp)
        *resp = r;
    else if (rc == GRPC_STATUS_OK)
        cebus__v1__nack_response__free_unpacked(r, NULL);
    return rc;
}

int cebus_create_tenant(cebus_client *c, const Cebus__V1__CreateTenantRequest *req,
                        Cebus__V1__Tenant **resp, cebus_error *err)
{
    return CEBUS_TYPED_CALL(c, "/cebus.v1.Admin/CreateTenant", req,
                            &cebus__v1__tenant__descriptor, resp, err);
}

int cebus_create_api_key(cebus_client *c, const Cebus__V1__CreateApiKeyRequest *req,
                         Cebus__V1__CreateApiKeyResponse **resp, cebus_error *err)
{
    return CEBUS_TYPED_CALL(c, "/cebus.v1.Admin/CreateApiKey", req,
                            &cebus__v1__create_api_key_response__descriptor, resp, err);
}

int cebus_create_bus(cebus_client *c, const Cebus__V1__CreateBusRequest *req,
                     Cebus__V1__Bus **resp, cebus_error *err)
{
    return CEBUS_TYPED_CALL(c, "/cebus.v1.Admin/CreateBus", req, &cebus__v1__bus__descriptor,
                            resp, err);
}

int cebus_list_buses(cebus_client *c, const Cebus__V1__ListBusesRequest *req,
                     Cebus__V1__ListBusesResponse **resp, cebus_error *err)
{
    return CEBUS_TYPED_CALL(c, "/cebus.v1.Admin/ListBuses", req,
                            &cebus__v1__list_buses_response__descriptor, resp, err);
}

int cebus_get_tenant(cebus_client *c, const Cebus__V1__GetTenantRequest *req,
                     Cebus__V1__Tenant **resp, cebus_error *err)
{
    return CEBUS_TYPED_CALL(c, "/cebus.v1.Admin/GetTenant", req, &cebus__v1__tenant__descriptor,
                            resp, err);
}

int cebus_list_tenants(cebus_client *c, const Cebus__V1__ListTenantsRequest *req,
                       Cebus__V1__ListTenantsResponse **resp, cebus_error *err)
{
    return CEBUS_TYPED_CALL(c, "/cebus.v1.Admin/ListTenants", req,
                            &cebus__v1__list_tenants_response__descriptor, resp, err);
}

int cebus_update_tenant(cebus_client *c, const Cebus__V1__UpdateTenantRequest *req,
                        Cebus__V1__Tenant **resp, cebus_error *err)
{
    return CEBUS_TYPED_CALL(c, "/cebus.v1.Admin/UpdateTenant", req, &cebus__v1__tenant__descriptor,
                            resp, err);
}

int cebus_list_api_keys(cebus_client *c, const Cebus__V1__ListApiKeysRequest *req,
                        Cebus__V1__ListApiKeysResponse **resp, cebus_error *err)
{
    return CEBUS_TYPED_CALL(c, "/cebus.v1.Admin/ListApiKeys", req,
                            &cebus__v1__list_api_keys_response__descriptor, resp, err);
}

int cebus_get_bus(cebus_client *c, const Cebus__V1__GetBusRequest *req, Cebus__V1__Bus **resp,
                  cebus_error *err)
{
    return CEBUS_TYPED_CALL(c, "/cebus.v1.Admin/GetBus", req, &cebus__v1__bus__descriptor, resp,
                            err);
}

int cebus_update_bus(cebus_client *c, const Cebus__V1__UpdateBusRequest *req, Cebus__V1__Bus **resp,
                     cebus_error *err)
{
    return CEBUS_TYPED_CALL(c, "/cebus.v1.Admin/UpdateBus", req, &cebus__v1__bus__descriptor, resp,
                            err);
}

int cebus_create_grant(cebus_client *c, const Cebus__V1__CreateGrantRequest *req,
                       Cebus__V1__Grant **resp, cebus_error *err)
{
    return CEBUS_TYPED_CALL(c, "/cebus.v1.Admin/CreateGrant", req, &cebus__v1__grant__descriptor,
                            resp, err);
}

int cebus_list_grants(cebus_client *c, const Cebus__V1__ListGrantsRequest *req,
                      Cebus__V1__ListGrantsResponse **resp, cebus_error *err)
{
    return CEBUS_TYPED_CALL(c, "/cebus.v1.Admin/ListGrants", req,
                            &cebus__v1__list_grants_response__descriptor, resp, err);
}

int cebus_create_event_source(cebus_client *c, const Cebus__V1__CreateEventSourceRequest *req,
                              Cebus__V1__EventSource **resp, cebus_error *err)
{
    return CEBUS_TYPED_CALL(c, "/cebus.v1.Admin/CreateEventSource", req,
                            &cebus__v1__event_source__descriptor, resp, err);
}

int cebus_list_event_sources(cebus_client *c, const Cebus__V1__ListEventSourcesRequest *req,
                             Cebus__V1__ListEventSourcesResponse **resp, cebus_error *err)
{
    return CEBUS_TYPED_CALL(c, "/cebus.v1.Admin/ListEventSources", req,
                            &cebus__v1__list_event_sources_response__descriptor, resp, err);
}

int cebus_set_quota(cebus_client *c, const Cebus__V1__SetQuotaRequest *req,
                    Cebus__V1__Quota **resp, cebus_error *err)
{
    return CEBUS_TYPED_CALL(c, "/cebus.v1.Admin/SetQuota", req, &cebus__v1__quota__descriptor,
                            resp, err);
}

int cebus_get_quota(cebus_client *c, const Cebus__V1__GetQuotaRequest *req,
                    Cebus__V1__Quota **resp, cebus_error *err)
{
    return CEBUS_TYPED_CALL(c, "/cebus.v1.Admin/GetQuota", req, &cebus__v1__quota__descriptor,
                            resp, err);
}

int cebus_seek(cebus_client *c, const Cebus__V1__SeekRequest *req,
               Cebus__V1__SeekResponse **resp, cebus_error *err)
{
    return CEBUS_TYPED_CALL(c, "/cebus.v1.EventBus/Seek", req,
                            &cebus__v1__seek_response__descriptor, resp, err);
}

int cebus_list_dead_letters(cebus_client *c, const Cebus__V1__ListDeadLettersRequest *req,
                            Cebus__V1__ListDeadLettersResponse **resp, cebus_error *err)
{
    return CEBUS_TYPED_CALL(c, "/cebus.v1.Admin/ListDeadLetters", req,
                            &cebus__v1__list_dead_letters_response__descriptor, resp, err);
}

int cebus_redrive_dead_letters(cebus_client *c, const Cebus__V1__RedriveDeadLettersRequest *req,
                               Cebus__V1__RedriveDeadLettersResponse **resp, cebus_error *err)
{
    return CEBUS_TYPED_CALL(c, "/cebus.v1.Admin/RedriveDeadLetters", req,
                            &cebus__v1__redrive_dead_letters_response__descriptor, resp, err);
}

int cebus_purge_dead_letters(cebus_client *c, const Cebus__V1__PurgeDeadLettersRequest *req,
                             Cebus__V1__PurgeDeadLettersResponse **resp, cebus_error *err)
{
    return CEBUS_TYPED_CALL(c, "/cebus.v1.Admin/PurgeDeadLetters", req,
                            &cebus__v1__purge_dead_letters_response__descriptor, resp, err);
}

int cebus_delete_tenant(cebus_client *c, const Cebus__V1__DeleteTenantRequest *req,
                        cebus_error *err)
{
    Cebus__V1__DeleteTenantResponse *resp = NULL;
    int rc = CEBUS_TYPED_CALL(c, "/cebus.v1.Admin/DeleteTenant", req,
                              &cebus__v1__delete_tenant_response__descriptor, &resp, err);

    if (rc == GRPC_STATUS_OK)
        cebus__v1__delete_tenant_response__free_unpacked(resp, NULL);
    return rc;
}

int cebus_revoke_api_key(cebus_client *c, const Cebus__V1__RevokeApiKeyRequest *req,
                         cebus_error *err)
{
    Cebus__V1__RevokeApiKeyResponse *resp = NULL;
    int rc = CEBUS_TYPED_CALL(c, "/cebus.v1.Admin/RevokeApiKey", req,
                              &cebus__v1__revoke_api_key_response__descriptor, &resp, err);

    if (rc == GRPC_STATUS_OK)
        cebus__v1__revoke_api_key_response__free_unpacked(resp, NULL);
    return rc;
}

int cebus_delete_bus(cebus_client *c, const Cebus__V1__DeleteBusRequest *req, cebus_error *err)
{
    Cebus__V1__DeleteBusResponse *resp = NULL;
    int rc = CEBUS_TYPED_CALL(c, "/cebus.v1.Admin/DeleteBus", req,
                              &cebus__v1__delete_bus_response__descriptor, &resp, err);

    if (rc == GRPC_STATUS_OK)
        cebus__v1__delete_bus_response__free_unpacked(resp, NULL);
    return rc;
}

int cebus_revoke_grant(cebus_client *c, const Cebus__V1__RevokeGrantRequest *req, cebus_error *err)
{
    Cebus__V1__RevokeGrantResponse *resp = NULL;
    int rc = CEBUS_TYPED_CALL(c, "/cebus.v1.Admin/RevokeGrant", req,
                              &cebus__v1__revoke_grant_response__descriptor, &resp, err);

    if (rc == GRPC_STATUS_OK)
        cebus__v1__revoke_grant_response__free_unpacked(resp, NULL);
    return rc;
}

int cebus_delete_event_source(cebus_client *c, const Cebus__V1__DeleteEventSourceRequest *req,
                              cebus_error *err)
{
    Cebus__V1__DeleteEventSourceResponse *resp = NULL;
    int rc = CEBUS_TYPED_CALL(c, "/cebus.v1.Admin/DeleteEventSource", req,
                              &cebus__v1__delete_event_source_response__descriptor, &resp, err);

    if (rc == GRPC_STATUS_OK)
        cebus__v1__delete_event_source_response__free_unpacked(resp, NULL);
    return rc;
}

int cebus_test_event_pattern(cebus_client *c, const Cebus__V1__TestEventPatternRequest *req,
                             Cebus__V1__TestEventPatternResponse **resp, cebus_error *err)
{
    return CEBUS_TYPED_CALL(c, "/cebus.v1.EventBus/TestEventPattern", req,
                            &cebus__v1__test_event_pattern_response__descriptor, resp, err);
}

int cebus_health_check(cebus_client *c, int timeout_ms, int *serving, cebus_error *err)
{
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    Grpc__Health__V1__HealthCheckResponse *resp = NULL;
    int rc;

    rc = cebus_call_unary(c, "/grpc.health.v1.Health/Check", &req.base,
                          &grpc__health__v1__health_check_response__descriptor, timeout_ms,
                          (ProtobufCMessage **)&resp, err);
    if (rc != GRPC_STATUS_OK)
        return rc;
    *serving = resp->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    grpc__health__v1__health_check_response__free_unpacked(resp, NULL);
    return GRPC_STATUS_OK;
}

/* ---- Subscribe stream ---------------------------------------------------- */

/* Starts the batch that receives the final status. Armed as soon as the
 * call starts, so that a failure is known however the stream is used. */
static grpc_call_error start_status_batch(cebus_stream *s)
{
    grpc_op op;
    grpc_call_error e;

    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    op.data.recv_status_on_client.trailing_metadata = &s->trailing_md;
    op.data.recv_status_on_client.status = &s->status;
    op.data.recv_status_on_client.status_details = &s->details;
    e = grpc_call_start_batch(s->call, &op, 1, &s->tag_status, NULL);
    s->status_pending = e == GRPC_CALL_OK;
    return e;
}

/* Starts one RECV_MESSAGE batch (with RECV_INITIAL_METADATA the first
 * time: the server may hold its metadata back until the first message, so
 * waiting for it separately could block). */
static grpc_call_error start_recv_batch(cebus_stream *s)
{
    grpc_op ops[2];
    size_t n = 0;
    grpc_call_error e;

    memset(ops, 0, sizeof(ops));
    if (!s->initial_md_requested) {
        ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[n].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
        n++;
    }
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n].data.recv_message.recv_message = &s->recv_buf;
    n++;
    e = grpc_call_start_batch(s->call, ops, n, &s->tag_recv, NULL);
    if (e == GRPC_CALL_OK) {
        s->recv_pending = true;
        s->initial_md_requested = true;
    }
    return e;
}

/* Waits for the final status (which comes promptly once the message stream
 * has ended or the call was cancelled) and records it as the end. */
static void finish_stream(cebus_stream *s)
{
    if (s->status_pending) {
        pluck_forever(s->cq, &s->tag_status);
        s->status_pending = false;
        if (s->status == GRPC_STATUS_OK)
            clear_error(&s->end);
        else {
            set_status_error(&s->end, s->status, s->details);
            set_retry_after(&s->end, &s->trailing_md);
        }
    }
    s->ended = true;
}

/* Marks the stream ended with a local error and cancels the call. */
static void fail_stream(cebus_stream *s, int code, const char *message)
{
    grpc_call_cancel(s->call, NULL);
    if (s->status_pending) {
        pluck_forever(s->cq, &s->tag_status);
        s->status_pending = false;
    }
    set_error(&s->end, code, "%s", message);
    s->ended = true;
}

static void stream_free(cebus_stream *s)
{
    if (s->call) {
        /* Cancelling completes every outstanding batch promptly; each tag
         * must be collected before the queue can be shut down. */
        if (s->send_pending || s->recv_pending || s->status_pending || s->md_pending)
            grpc_call_cancel(s->call, NULL);
        if (s->send_pending)
            pluck_forever(s->cq, &s->tag_send);
        if (s->md_pending)
            pluck_forever(s->cq, &s->tag_md);
        if (s->recv_pending)
            pluck_forever(s->cq, &s->tag_recv);
        if (s->status_pending)
            pluck_forever(s->cq, &s->tag_status);
        grpc_call_unref(s->call);
    }
    if (s->send_buf)
        grpc_byte_buffer_destroy(s->send_buf);
    if (s->recv_buf)
        grpc_byte_buffer_destroy(s->recv_buf);
    grpc_metadata_array_destroy(&s->initial_md);
    grpc_metadata_array_destroy(&s->trailing_md);
    grpc_slice_unref(s->details);
    destroy_cq(s->cq);
    free(s->auth_value);
    free(s);
}

int cebus_subscribe(cebus_client *c, const Cebus__V1__SubscribeRequest *req, cebus_stream **out,
                    cebus_error *err)
{
    cebus_stream *s;
    grpc_op ops[3];
    grpc_call_error e;
    grpc_event ev;
    int rc;

    clear_error(err);
    if (c->auth_invalid) {
        set_error(err, GRPC_STATUS_INVALID_ARGUMENT, INVALID_KEY_MESSAGE);
        return GRPC_STATUS_INVALID_ARGUMENT;
    }
    s = xcalloc(1, sizeof(*s));
    s->cq = grpc_completion_queue_create_for_pluck(NULL);
    s->details = grpc_empty_slice();
    grpc_metadata_array_init(&s->initial_md);
    grpc_metadata_array_init(&s->trailing_md);
    /* A stream has no deadline: it lives until the caller closes it. */
    s->call = create_call(c, s->cq, "/cebus.v1.EventBus/Subscribe",
                          gpr_inf_future(GPR_CLOCK_MONOTONIC));

    e = start_status_batch(s);
    if (e != GRPC_CALL_OK) {
        rc = start_batch_error(err, e);
        goto out;
    }
    s->send_buf = pack_message(&req->base);
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (c->auth_value) {
        s->auth_value = strdup(c->auth_value);
        if (!s->auth_value)
            abort();
    }
    ops[0].data.send_initial_metadata.count = auth_metadata(s->auth_value, &s->auth_md);
    ops[0].data.send_initial_metadata.metadata = &s->auth_md;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = s->send_buf;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    e = grpc_call_start_batch(s->call, ops, 3, &s->tag_send, NULL);
    if (e != GRPC_CALL_OK) {
        rc = start_batch_error(err, e);
        goto out;
    }
    s->send_pending = true;

    /* Waiting for the request to be sent turns "nothing listens there" into
     * an error of this call rather than of the first read. The wait is
     * short because a caller cannot interrupt it (a CLI's Ctrl-C); past it,
     * the stream is handed over as is and cebus_stream_next() reports
     * whatever happens. */
    ev = grpc_completion_queue_pluck(
        s->cq, &s->tag_send,
        deadline_after_ms(c->timeout_ms < SUBSCRIBE_SEND_WAIT_MS ? c->timeout_ms
                                                                 : SUBSCRIBE_SEND_WAIT_MS),
        NULL);
    if (ev.type == GRPC_OP_COMPLETE) {
        s->send_pending = false;
        grpc_byte_buffer_destroy(s->send_buf);
        s->send_buf = NULL;
        if (!ev.success) {
            finish_stream(s);
            if (s->end.code == GRPC_STATUS_OK)
                set_error(&s->end, GRPC_STATUS_UNKNOWN, "stream failed to start");
            rc = s->end.code;
            if (err)
                *err = s->end;
            goto out;
        }
    }

    /* cebusd sends its response headers once the stream is registered,
     * start position resolved, and a refused stream's status comes with
     * them: waiting for them means "start at latest" starts before this
     * call returns, and a refusal is this call's error. A server that holds
     * headers back only costs the wait; the stream is handed over as is. */
    if (!s->send_pending) {
        grpc_op op;
        int wait = c->timeout_ms < SUBSCRIBE_LIVE_WAIT_MS ? c->timeout_ms : SUBSCRIBE_LIVE_WAIT_MS;

        memset(&op, 0, sizeof(op));
        op.op = GRPC_OP_RECV_INITIAL_METADATA;
        op.data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
        e = grpc_call_start_batch(s->call, &op, 1, &s->tag_md, NULL);
        if (e == GRPC_CALL_OK) {
            s->md_pending = true;
            s->initial_md_requested = true;
            ev = grpc_completion_queue_pluck(s->cq, &s->tag_md, deadline_after_ms(wait), NULL);
            if (ev.type == GRPC_OP_COMPLETE) {
                s->md_pending = false;
                ev = grpc_completion_queue_pluck(s->cq, &s->tag_status,
                                                 gpr_inf_past(GPR_CLOCK_MONOTONIC), NULL);
                if (ev.type == GRPC_OP_COMPLETE) {
                    s->status_pending = false;
                    if (s->status != GRPC_STATUS_OK) {
                        set_status_error(&s->end, s->status, s->details);
                        rc = s->end.code;
                        if (err)
                            *err = s->end;
                        goto out;
                    }
                    clear_error(&s->end);
                    s->ended = true;
                }
            }
        }
    }
    *out = s;
    s = NULL;
    rc = GRPC_STATUS_OK;
out:
    if (s)
        stream_free(s);
    return rc;
}

int cebus_stream_next(cebus_stream *s, int timeout_ms, Cebus__V1__SubscribeResponse **msg,
                      cebus_error *err)
{
    grpc_call_error e;
    grpc_event ev;
    ProtobufCMessage *m;

    if (s->ended)
        goto ended;
    /* A RECV_MESSAGE left pending by an earlier timeout is still the one
     * to wait for: gRPC allows one at a time per call. */
    if (!s->recv_pending) {
        e = start_recv_batch(s);
        if (e != GRPC_CALL_OK) {
            cebus_error tmp;
            start_batch_error(&tmp, e);
            fail_stream(s, tmp.code, tmp.message);
            goto ended;
        }
    }
    ev = grpc_completion_queue_pluck(s->cq, &s->tag_recv, deadline_after_ms(timeout_ms), NULL);
    if (ev.type == GRPC_QUEUE_TIMEOUT)
        return 0;
    s->recv_pending = false;
    if (!s->recv_buf) {
        /* No message: the server ended the stream or the call failed. */
        finish_stream(s);
        goto ended;
    }
    m = unpack_message(s->recv_buf, &cebus__v1__subscribe_response__descriptor);
    grpc_byte_buffer_destroy(s->recv_buf);
    s->recv_buf = NULL;
    if (!m) {
        fail_stream(s, GRPC_STATUS_INTERNAL, "malformed response");
        goto ended;
    }
    *msg = (Cebus__V1__SubscribeResponse *)m;
    clear_error(err);
    return 1;
ended:
    if (err)
        *err = s->end;
    return -1;
}

void cebus_stream_close(cebus_stream *s)
{
    if (!s)
        return;
    stream_free(s);
}
