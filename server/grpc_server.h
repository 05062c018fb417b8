/* The gRPC layer: completion queues, worker threads, and the per-call state
 * machine for unary calls and server streams, over the gRPC C core.
 *
 * A handler receives each call on a worker thread together with one
 * reference, the handler's, which it must give back exactly once: with
 * eb_call_reply() or eb_call_fail() for unary calls, with eb_call_finish()
 * for streams. It may do so from any thread (typically a database thread
 * after a commit). Handlers must not block: work that waits on the database
 * is handed to another thread.
 */
#ifndef EB_GRPC_SERVER_H
#define EB_GRPC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

#include "status.h"
#include "tls.h"

typedef struct eb_server eb_server;
typedef struct eb_call eb_call;

/* Called on a worker thread for each new call; see the file comment. */
typedef void (*eb_handler_fn)(eb_call *call, void *ctx);

struct eb_server_opts {
    const char *listen;        /* "host:port"; port 0 picks a free one */
    int workers;               /* completion queues and threads, >= 1 */
    size_t max_request_bytes;  /* larger requests get RESOURCE_EXHAUSTED */
    eb_tls *tls;               /* borrowed, must outlive the server; NULL: plaintext */
};

/* Stream callbacks, invoked without any cebus lock held. */
struct eb_stream_ops {
    /* A write started with eb_call_write() completed (ok: it was sent). */
    void (*on_write_done)(void *arg, bool ok);
    /* The call is over: the client went away (cancelled, deadline,
     * disconnected), or the server's final status went out. Called exactly
     * once; a write completion may still follow it, nothing else. */
    void (*on_close)(void *arg);
};

/* Returns a new server (not yet listening). Free with eb_server_free(). */
eb_server *eb_server_new(const struct eb_server_opts *opts);

/* Registers a method by its full path ("/cebus.v1.EventBus/PutEvents").
 * REQUIRES: before eb_server_start(). Unregistered methods are answered
 * UNIMPLEMENTED. ctx is passed to the handler. */
void eb_server_add_method(eb_server *s, const char *path, bool server_streaming,
                          eb_handler_fn handler, void *ctx);

/* Binds, starts the workers and begins accepting calls. Returns EB_OK, or
 * EB_EINVAL when the address cannot be bound. */
eb_status eb_server_start(eb_server *s);

/* Returns the bound port (after a successful start). */
int eb_server_port(const eb_server *s);

/* Stops accepting new calls and lets in-flight calls finish for up to
 * grace_ms, then cancels what remains. Streams must be finished by their
 * owners before; see main.c for the order. */
void eb_server_shutdown(eb_server *s, int grace_ms);

/* Waits until every call has released its last reference, then stops the
 * workers. REQUIRES: eb_server_shutdown() was called, and no other thread
 * still holds a call. */
void eb_server_free(eb_server *s);

/* --- Calls ------------------------------------------------------------- */

/* The request message bytes; borrowed, valid for the life of the call. */
const uint8_t *eb_call_request(const eb_call *c, size_t *len);

/* Copies the value of request metadata key (lowercase) into buf and returns
 * its length, or -1 when absent or longer than bufsize - 1. */
int eb_call_metadata(const eb_call *c, const char *key, char *buf, size_t bufsize);

/* Remote peer address (for logs); borrowed. */
const char *eb_call_method(const eb_call *c);

/* Sends msg (serialized here; borrowed) with status OK. Consumes the
 * handler's reference. */
void eb_call_reply(eb_call *c, const ProtobufCMessage *msg);

/* Sends an error status with a message (printf-style). Consumes the
 * handler's reference. */
void eb_call_fail(eb_call *c, eb_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like eb_call_fail() with a fixed message, and with trailing metadata
 * "retry-after-ms" set to retry_after_ms (> 0) so that clients can wait
 * that long before retrying. Consumes the handler's reference. */
void eb_call_fail_retry(eb_call *c, eb_status st, int64_t retry_after_ms, const char *message);

/* Streams: attaches callbacks (see struct eb_stream_ops) and sends the
 * response headers. Returns false when the client is already gone (no
 * callback will come; finish the call). REQUIRES: a server-streaming call,
 * once, before the first write. */
bool eb_call_stream_start(eb_call *c, const struct eb_stream_ops *ops, void *arg);

/* Starts writing one message; takes ownership of bytes (malloc'd), even on
 * failure. Returns false, without writing and without calling back, when a
 * write is still outstanding or the call is over. buffer_hint lets gRPC coalesce this
 * write with the next one. */
bool eb_call_write(eb_call *c, uint8_t *bytes, size_t len, bool buffer_hint);

/* Like eb_call_write(), for a message already in a (possibly shared,
 * reference-counted) slice: takes ownership of one reference to msg, even
 * on failure. Fan-out writes one encoded event to many streams this way. */
bool eb_call_write_slice(eb_call *c, grpc_slice msg, bool buffer_hint);

/* Ends a stream with a status. Consumes the handler's reference. Safe after
 * on_close (nothing is sent then). */
void eb_call_finish(eb_call *c, eb_status st, const char *message);

/* Reference counting for threads that keep a call beyond the handler's
 * reference. */
void eb_call_ref(eb_call *c);
void eb_call_unref(eb_call *c);

#endif
