#include "grpc_server.h"

#include <assert.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include "log.h"
#include "metrics.h"
#include "util.h"

/* Outstanding request_call slots per method and per completion queue. More
 * than one lets a burst of calls land without waiting for a re-post. */
#define SLOTS_PER_METHOD 4
#define GENERIC_SLOTS 2
#define MAX_METHODS 64

/* Every completion-queue tag is a struct eb_tag embedded in its owner. */
struct eb_tag {
    void (*fn)(struct eb_tag *tag, bool ok);
};

#define CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct method_entry {
    char *path;
    bool streaming;
    eb_handler_fn handler;
    void *ctx;
    void *registered; /* grpc_server_register_method() handle */
    int metrics_id;   /* eb_metrics_rpc_register() */
};

struct worker {
    eb_server *srv;
    int index;
    grpc_completion_queue *cq;
    pthread_t thread;
};

/* One outstanding grpc_server_request_(registered_)call. */
struct slot {
    struct eb_tag tag;
    struct worker *w;
    struct method_entry *method; /* NULL for the generic (unimplemented) slot */
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_byte_buffer *payload;
    grpc_call_details details; /* generic slots only */
};

/* Calls to unregistered methods: answered UNIMPLEMENTED in one batch. */
struct unimpl_call {
    struct eb_tag tag;
    grpc_call *call;
    grpc_metadata_array md;
    grpc_call_details details;
    int cancelled;
};

struct eb_server {
    grpc_server *server;
    char *listen;
    int port;
    size_t max_request_bytes;
    eb_tls *tls;
    int nworkers;
    struct worker *workers;
    struct method_entry methods[MAX_METHODS];
    int nmethods;
    grpc_completion_queue *shutdown_cq;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    int live_calls;
    bool shutting_down;
};

struct eb_call {
    pthread_mutex_t mu;
    int refs;
    eb_server *srv;
    struct method_entry *method;
    grpc_call *call;
    grpc_metadata_array md;
    gpr_timespec deadline;
    uint8_t *req;
    size_t req_len;
    int64_t start_us; /* arrival, monotonic */

    bool finished;      /* status sent (or given up) by the server side */
    bool closed;        /* RECV_CLOSE_ON_SERVER completed */
    bool write_pending;
    int close_cancelled;

    struct eb_tag close_tag;
    struct eb_tag status_tag;
    struct eb_tag md_tag;
    struct eb_tag write_tag;
    grpc_byte_buffer *status_buf; /* reply message of unary calls */
    grpc_byte_buffer *write_buf;
    char retry_after[24]; /* value of trailing "retry-after-ms"; lives with the call */

    const struct eb_stream_ops *ops;
    void *ops_arg;
};

static void post_slot(struct slot *sl);

/* --- Call lifetime ------------------------------------------------------ */

void eb_call_ref(eb_call *c)
{
    pthread_mutex_lock(&c->mu);
    assert(c->refs > 0);
    c->refs++;
    pthread_mutex_unlock(&c->mu);
}

void eb_call_unref(eb_call *c)
{
    eb_server *srv;
    int left;

    pthread_mutex_lock(&c->mu);
    left = --c->refs;
    pthread_mutex_unlock(&c->mu);
    if (left > 0)
        return;
    srv = c->srv;
    grpc_call_unref(c->call);
    grpc_metadata_array_destroy(&c->md);
    free(c->req);
    pthread_mutex_destroy(&c->mu);
    free(c);

    pthread_mutex_lock(&srv->mu);
    if (--srv->live_calls == 0)
        pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
}

static void on_close(struct eb_tag *tag, bool ok)
{
    eb_call *c = CONTAINER_OF(tag, eb_call, close_tag);
    bool notify;

    (void)ok;
    pthread_mutex_lock(&c->mu);
    c->closed = true;
    /* Always, even after the server finished: it tells the owner that no
     * callback will follow, so that it may free what ops_arg points to. */
    notify = c->ops && c->ops->on_close;
    pthread_mutex_unlock(&c->mu);
    if (notify)
        c->ops->on_close(c->ops_arg);
    eb_call_unref(c);
}

static void on_status_sent(struct eb_tag *tag, bool ok)
{
    eb_call *c = CONTAINER_OF(tag, eb_call, status_tag);

    (void)ok;
    if (c->status_buf)
        grpc_byte_buffer_destroy(c->status_buf);
    c->status_buf = NULL;
    eb_call_unref(c);
}

static void on_md_sent(struct eb_tag *tag, bool ok)
{
    eb_call *c = CONTAINER_OF(tag, eb_call, md_tag);

    (void)ok;
    eb_call_unref(c);
}

static void on_write_done(struct eb_tag *tag, bool ok)
{
    eb_call *c = CONTAINER_OF(tag, eb_call, write_tag);
    const struct eb_stream_ops *ops;
    void *arg;

    pthread_mutex_lock(&c->mu);
    grpc_byte_buffer_destroy(c->write_buf);
    c->write_buf = NULL;
    c->write_pending = false;
    ops = c->ops;
    arg = c->ops_arg;
    pthread_mutex_unlock(&c->mu);
    if (ops && ops->on_write_done)
        ops->on_write_done(arg, ok);
    eb_call_unref(c);
}

/* Copies the request payload out of the byte buffer. Returns false when it
 * cannot be read (failed decompression). */
static bool read_payload(grpc_byte_buffer *bb, uint8_t **out, size_t *len)
{
    grpc_byte_buffer_reader reader;
    grpc_slice s;

    *out = NULL;
    *len = 0;
    if (!bb)
        return true;
    if (!grpc_byte_buffer_reader_init(&reader, bb))
        return false;
    s = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    *len = GRPC_SLICE_LENGTH(s);
    *out = eb_malloc(*len);
    memcpy(*out, GRPC_SLICE_START_PTR(s), *len);
    grpc_slice_unref(s);
    return true;
}

static grpc_byte_buffer *buffer_from_message(const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *bytes = eb_malloc(len);
    grpc_slice slice;
    grpc_byte_buffer *bb;

    protobuf_c_message_pack(msg, bytes);
    slice = grpc_slice_new(bytes, len, free);
    bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    return bb;
}

/* Sends the final status, with an optional message for unary calls.
 * Consumes the handler's reference. */
static void send_status(eb_call *c, grpc_status_code code, const char *details,
                        const ProtobufCMessage *msg, bool with_initial_md, int64_t retry_after_ms)
{
    grpc_metadata trailer;
    grpc_op ops[3];
    size_t n = 0;
    grpc_slice detail_slice;
    grpc_call_error err;
    bool send, first;

    pthread_mutex_lock(&c->mu);
    first = !c->finished;
    send = !c->finished && !c->closed;
    c->finished = true;
    if (send)
        c->refs++; /* the status batch's reference */
    pthread_mutex_unlock(&c->mu);
    /* A stream's length is its client's choice, not a latency: count it
     * only. */
    if (first)
        eb_metrics_rpc_done(c->method->metrics_id, (int)code,
                            c->method->streaming ? -1 : eb_now_mono_us() - c->start_us);

    if (send) {
        memset(ops, 0, sizeof ops);
        if (with_initial_md) {
            ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
            ops[n].data.send_initial_metadata.count = 0;
            n++;
        }
        if (msg) {
            c->status_buf = buffer_from_message(msg);
            ops[n].op = GRPC_OP_SEND_MESSAGE;
            ops[n].data.send_message.send_message = c->status_buf;
            n++;
        }
        detail_slice = grpc_slice_from_copied_string(details ? details : "");
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.status = code;
        ops[n].data.send_status_from_server.status_details = &detail_slice;
        ops[n].data.send_status_from_server.trailing_metadata_count = 0;
        if (retry_after_ms > 0) {
            /* Static slices: the key is a literal and the value lives in
             * the call, which outlives the batch. */
            snprintf(c->retry_after, sizeof c->retry_after, "%lld", (long long)retry_after_ms);
            memset(&trailer, 0, sizeof trailer);
            trailer.key = grpc_slice_from_static_string("retry-after-ms");
            trailer.value = grpc_slice_from_static_string(c->retry_after);
            ops[n].data.send_status_from_server.trailing_metadata_count = 1;
            ops[n].data.send_status_from_server.trailing_metadata = &trailer;
        }
        n++;
        c->status_tag.fn = on_status_sent;
        err = grpc_call_start_batch(c->call, ops, n, &c->status_tag, NULL);
        grpc_slice_unref(detail_slice);
        if (err != GRPC_CALL_OK) {
            eb_log_error("msg=\"start_batch failed for status\" error=%d", (int)err);
            on_status_sent(&c->status_tag, false);
        }
    }
    eb_call_unref(c); /* the handler's reference */
}

void eb_call_reply(eb_call *c, const ProtobufCMessage *msg)
{
    send_status(c, GRPC_STATUS_OK, NULL, msg, true, 0);
}

void eb_call_fail(eb_call *c, eb_status st, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    send_status(c, eb_status_to_grpc(st), buf, NULL, !c->method->streaming || !c->ops, 0);
}

void eb_call_fail_retry(eb_call *c, eb_status st, int64_t retry_after_ms, const char *message)
{
    send_status(c, eb_status_to_grpc(st), message, NULL, !c->method->streaming || !c->ops,
                retry_after_ms);
}

bool eb_call_stream_start(eb_call *c, const struct eb_stream_ops *ops, void *arg)
{
    grpc_op op;
    grpc_call_error err;

    pthread_mutex_lock(&c->mu);
    assert(!c->ops);
    c->ops = ops;
    c->ops_arg = arg;
    if (c->closed) {
        /* The client left before the stream was set up: on_close has
         * already run and will not run again. */
        pthread_mutex_unlock(&c->mu);
        return false;
    }
    c->refs++;
    pthread_mutex_unlock(&c->mu);

    /* Headers go out at once so that clients see the stream established
     * even when no event is due for a long time. They travel in a batch of
     * their own: combining them with a buffer-hinted write stalls the
     * stream. */
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_INITIAL_METADATA;
    c->md_tag.fn = on_md_sent;
    err = grpc_call_start_batch(c->call, &op, 1, &c->md_tag, NULL);
    if (err != GRPC_CALL_OK)
        on_md_sent(&c->md_tag, false);
    return true;
}

bool eb_call_write(eb_call *c, uint8_t *bytes, size_t len, bool buffer_hint)
{
    return eb_call_write_slice(c, grpc_slice_new(bytes, len, free), buffer_hint);
}

bool eb_call_write_slice(eb_call *c, grpc_slice slice, bool buffer_hint)
{
    grpc_op op;
    grpc_call_error err;

    pthread_mutex_lock(&c->mu);
    if (c->write_pending || c->finished || c->closed) {
        pthread_mutex_unlock(&c->mu);
        grpc_slice_unref(slice);
        return false;
    }
    c->write_pending = true;
    c->refs++;
    /* The byte buffer takes its own reference. */
    c->write_buf = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.flags = buffer_hint ? GRPC_WRITE_BUFFER_HINT : 0;
    op.data.send_message.send_message = c->write_buf;
    c->write_tag.fn = on_write_done;
    err = grpc_call_start_batch(c->call, &op, 1, &c->write_tag, NULL);
    if (err == GRPC_CALL_OK)
        eb_metrics_add(EB_M_STREAM_MESSAGES, 1);
    if (err != GRPC_CALL_OK) {
        /* No completion will come: undo here rather than calling back into
         * the owner, which may hold its own lock around this call. */
        eb_log_error("msg=\"start_batch failed for write\" error=%d", (int)err);
        grpc_byte_buffer_destroy(c->write_buf);
        c->write_buf = NULL;
        c->write_pending = false;
        c->refs--;
        pthread_mutex_unlock(&c->mu);
        return false;
    }
    pthread_mutex_unlock(&c->mu);
    return true;
}

void eb_call_finish(eb_call *c, eb_status st, const char *message)
{
    send_status(c, eb_status_to_grpc(st), message, NULL, false, 0);
}

const uint8_t *eb_call_request(const eb_call *c, size_t *len)
{
    *len = c->req_len;
    return c->req;
}

int eb_call_metadata(const eb_call *c, const char *key, char *buf, size_t bufsize)
{
    size_t klen = strlen(key);

    for (size_t i = 0; i < c->md.count; i++) {
        const grpc_metadata *m = &c->md.metadata[i];
        size_t vlen;
        if (GRPC_SLICE_LENGTH(m->key) != klen ||
            memcmp(GRPC_SLICE_START_PTR(m->key), key, klen) != 0)
            continue;
        vlen = GRPC_SLICE_LENGTH(m->value);
        if (vlen + 1 > bufsize)
            return -1;
        memcpy(buf, GRPC_SLICE_START_PTR(m->value), vlen);
        buf[vlen] = '\0';
        return (int)vlen;
    }
    return -1;
}

const char *eb_call_method(const eb_call *c)
{
    return c->method->path;
}

/* --- Incoming calls ----------------------------------------------------- */

static void start_call(struct slot *sl)
{
    eb_server *srv = sl->w->srv;
    eb_call *c = eb_calloc(1, sizeof *c);
    grpc_op op;
    grpc_call_error err;
    bool readable;

    pthread_mutex_init(&c->mu, NULL);
    c->refs = 2; /* the handler's and the close batch's */
    c->srv = srv;
    c->method = sl->method;
    c->start_us = eb_now_mono_us();
    c->call = sl->call;
    c->md = sl->md;
    c->deadline = sl->deadline;
    readable = read_payload(sl->payload, &c->req, &c->req_len);
    if (sl->payload)
        grpc_byte_buffer_destroy(sl->payload);
    sl->payload = NULL;
    sl->call = NULL;
    grpc_metadata_array_init(&sl->md);

    pthread_mutex_lock(&srv->mu);
    srv->live_calls++;
    pthread_mutex_unlock(&srv->mu);

    /* Armed at once: it is the only way to notice a client that cancels or
     * dies while its stream is idle. */
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->close_cancelled;
    c->close_tag.fn = on_close;
    err = grpc_call_start_batch(c->call, &op, 1, &c->close_tag, NULL);
    if (err != GRPC_CALL_OK)
        on_close(&c->close_tag, false);

    if (!readable) {
        eb_call_fail(c, EB_EINVAL, "request: cannot be decompressed");
        return;
    }
    c->method->handler(c, c->method->ctx);
}

static void on_unimpl_done(struct eb_tag *tag, bool ok)
{
    struct unimpl_call *u = CONTAINER_OF(tag, struct unimpl_call, tag);

    (void)ok;
    grpc_call_unref(u->call);
    grpc_metadata_array_destroy(&u->md);
    grpc_call_details_destroy(&u->details);
    free(u);
}

static void answer_unimplemented(struct slot *sl)
{
    struct unimpl_call *u = eb_calloc(1, sizeof *u);
    grpc_op ops[3];
    grpc_slice details;
    grpc_call_error err;
    char msg[300];
    size_t mlen = GRPC_SLICE_LENGTH(sl->details.method);

    u->call = sl->call;
    u->md = sl->md;
    u->details = sl->details;
    sl->call = NULL;
    grpc_metadata_array_init(&sl->md);
    grpc_call_details_init(&sl->details);

    if (mlen > 200)
        mlen = 200;
    snprintf(msg, sizeof msg, "method %.*s is not implemented by this server", (int)mlen,
             (const char *)GRPC_SLICE_START_PTR(u->details.method));
    details = grpc_slice_from_copied_string(msg);
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[1].data.send_status_from_server.status = GRPC_STATUS_UNIMPLEMENTED;
    ops[1].data.send_status_from_server.status_details = &details;
    ops[2].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[2].data.recv_close_on_server.cancelled = &u->cancelled;
    u->tag.fn = on_unimpl_done;
    err = grpc_call_start_batch(u->call, ops, 3, &u->tag, NULL);
    grpc_slice_unref(details);
    if (err != GRPC_CALL_OK)
        on_unimpl_done(&u->tag, false);
}

static void on_slot(struct eb_tag *tag, bool ok)
{
    struct slot *sl = CONTAINER_OF(tag, struct slot, tag);
    eb_server *srv = sl->w->srv;
    bool stopping;

    if (!ok) {
        /* The server is shutting down: this slot is over. */
        if (sl->payload)
            grpc_byte_buffer_destroy(sl->payload);
        grpc_metadata_array_destroy(&sl->md);
        grpc_call_details_destroy(&sl->details);
        free(sl);
        return;
    }
    if (sl->method)
        start_call(sl);
    else
        answer_unimplemented(sl);

    pthread_mutex_lock(&srv->mu);
    stopping = srv->shutting_down;
    pthread_mutex_unlock(&srv->mu);
    if (stopping) {
        grpc_metadata_array_destroy(&sl->md);
        grpc_call_details_destroy(&sl->details);
        free(sl);
        return;
    }
    post_slot(sl);
}

static void post_slot(struct slot *sl)
{
    eb_server *srv = sl->w->srv;
    grpc_call_error err;

    sl->tag.fn = on_slot;
    if (sl->method) {
        err = grpc_server_request_registered_call(srv->server, sl->method->registered, &sl->call,
                                                  &sl->deadline, &sl->md, &sl->payload,
                                                  sl->w->cq, sl->w->cq, &sl->tag);
    } else {
        err = grpc_server_request_call(srv->server, &sl->call, &sl->details, &sl->md, sl->w->cq,
                                       sl->w->cq, &sl->tag);
    }
    if (err != GRPC_CALL_OK) {
        eb_log_error("msg=\"request_call failed\" error=%d", (int)err);
        grpc_metadata_array_destroy(&sl->md);
        grpc_call_details_destroy(&sl->details);
        free(sl);
    }
}

static struct slot *new_slot(struct worker *w, struct method_entry *m)
{
    struct slot *sl = eb_calloc(1, sizeof *sl);
    sl->w = w;
    sl->method = m;
    grpc_metadata_array_init(&sl->md);
    grpc_call_details_init(&sl->details);
    return sl;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    for (;;) {
        grpc_event ev = grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type == GRPC_OP_COMPLETE) {
            struct eb_tag *tag = ev.tag;
            tag->fn(tag, ev.success != 0);
        }
    }
    return NULL;
}

/* --- Server ------------------------------------------------------------- */

eb_server *eb_server_new(const struct eb_server_opts *opts)
{
    eb_server *s = eb_calloc(1, sizeof *s);

    s->listen = eb_strdup(opts->listen);
    s->nworkers = opts->workers > 0 ? opts->workers : 1;
    s->max_request_bytes = opts->max_request_bytes;
    s->tls = opts->tls;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    return s;
}

void eb_server_add_method(eb_server *s, const char *path, bool server_streaming,
                          eb_handler_fn handler, void *ctx)
{
    struct method_entry *m;

    assert(!s->server);
    assert(s->nmethods < MAX_METHODS);
    m = &s->methods[s->nmethods++];
    m->path = eb_strdup(path);
    m->streaming = server_streaming;
    m->handler = handler;
    m->ctx = ctx;
    m->metrics_id = eb_metrics_rpc_register(path);
}

static grpc_arg int_arg(const char *key, int value)
{
    grpc_arg a;
    a.type = GRPC_ARG_INTEGER;
    a.key = (char *)key;
    a.value.integer = value;
    return a;
}

eb_status eb_server_start(eb_server *s)
{
    grpc_arg args[] = {
        int_arg(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, (int)s->max_request_bytes),
        int_arg(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, -1),
        /* A second server on the same port would otherwise bind silently
         * and steal connections. */
        int_arg(GRPC_ARG_ALLOW_REUSEPORT, 0),
        /* Long-lived streams cross NATs and load balancers that drop idle
         * connections: ping every 30 s and give up on a peer that does not
         * answer in 10 s, so a dead consumer's stream ends. */
        int_arg(GRPC_ARG_KEEPALIVE_TIME_MS, 30000),
        int_arg(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000),
        /* Accept clients' own keepalive pings (every 10 s or more), even on
         * connections with no call, instead of answering them with GOAWAY. */
        int_arg(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1),
        int_arg(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000),
    };
    grpc_channel_args chargs;
    grpc_server_credentials *creds;

    chargs.num_args = sizeof args / sizeof args[0];
    chargs.args = args;

    s->server = grpc_server_create(&chargs, NULL);
    s->workers = eb_calloc((size_t)s->nworkers, sizeof *s->workers);
    for (int i = 0; i < s->nworkers; i++) {
        s->workers[i].srv = s;
        s->workers[i].index = i;
        s->workers[i].cq = grpc_completion_queue_create_for_next(NULL);
        grpc_server_register_completion_queue(s->server, s->workers[i].cq, NULL);
    }
    s->shutdown_cq = grpc_completion_queue_create_for_pluck(NULL);
    for (int i = 0; i < s->nmethods; i++) {
        s->methods[i].registered = grpc_server_register_method(
            s->server, s->methods[i].path, NULL, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    }
    /* With TLS, gRPC asks s->tls for the certificates at each handshake,
     * which is how new files take effect without a restart. */
    creds = s->tls ? eb_tls_server_credentials(s->tls) : grpc_insecure_server_credentials_create();
    s->port = grpc_server_add_http2_port(s->server, s->listen, creds);
    grpc_server_credentials_release(creds);
    if (s->port == 0) {
        eb_log_error("msg=\"cannot listen\" listen=%s", s->listen);
        return EB_EINVAL;
    }
    grpc_server_start(s->server);

    for (int i = 0; i < s->nworkers; i++) {
        struct worker *w = &s->workers[i];
        for (int m = 0; m < s->nmethods; m++)
            for (int k = 0; k < SLOTS_PER_METHOD; k++)
                post_slot(new_slot(w, &s->methods[m]));
        for (int k = 0; k < GENERIC_SLOTS; k++)
            post_slot(new_slot(w, NULL));
        pthread_create(&w->thread, NULL, worker_main, w);
    }
    return EB_OK;
}

int eb_server_port(const eb_server *s)
{
    return s->port;
}

void eb_server_shutdown(eb_server *s, int grace_ms)
{
    grpc_event ev;

    if (!s->server)
        return;
    pthread_mutex_lock(&s->mu);
    s->shutting_down = true;
    pthread_mutex_unlock(&s->mu);
    grpc_server_shutdown_and_notify(s->server, s->shutdown_cq, s);
    ev = grpc_completion_queue_pluck(s->shutdown_cq, s,
                                     gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                                                  gpr_time_from_millis(grace_ms, GPR_TIMESPAN)),
                                     NULL);
    if (ev.type == GRPC_QUEUE_TIMEOUT) {
        /* Calls still running past the grace period are cancelled; live
         * streams never end otherwise. */
        grpc_server_cancel_all_calls(s->server);
        grpc_completion_queue_pluck(s->shutdown_cq, s, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    }
}

void eb_server_free(eb_server *s)
{
    if (!s)
        return;
    if (s->server) {
        /* Every call must be gone before the queues shut down: a batch
         * started on a call whose queue is shut down is a crash. */
        pthread_mutex_lock(&s->mu);
        while (s->live_calls > 0)
            pthread_cond_wait(&s->cv, &s->mu);
        pthread_mutex_unlock(&s->mu);
        for (int i = 0; i < s->nworkers; i++)
            grpc_completion_queue_shutdown(s->workers[i].cq);
        for (int i = 0; i < s->nworkers; i++)
            pthread_join(s->workers[i].thread, NULL);
        grpc_server_destroy(s->server);
        for (int i = 0; i < s->nworkers; i++)
            grpc_completion_queue_destroy(s->workers[i].cq);
        /* The shutdown queue's only event was plucked already. */
        grpc_completion_queue_shutdown(s->shutdown_cq);
        grpc_completion_queue_destroy(s->shutdown_cq);
    }
    for (int i = 0; i < s->nmethods; i++)
        free(s->methods[i].path);
    free(s->workers);
    free(s->listen);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
