/* The ack committer (docs/decisions/0014, a fifth thread kind beside those
 * of 0004): one thread with its own connection takes every Ack waiting at
 * that moment and applies them in one synchronously committed transaction,
 * as the appender does for PutEvents (0002), so one fsync serves many
 * calls. Nothing is reported acked before COMMIT returned. */
#ifndef EB_ACKER_H
#define EB_ACKER_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "store_durable.h"

typedef struct eb_acker eb_acker;

/* One caller's ack ids, decoded. The acker fills items[i].applied and
 * items[i].owner, then calls done(req, st) once, on the acker thread: st
 * is EB_OK when the transaction committed, else the reason nothing was
 * applied. The request and its items belong to the caller throughout. */
struct eb_ack_req {
    struct eb_ack_item *items;
    size_t n;
    void (*done)(struct eb_ack_req *req, eb_status st);
    struct eb_ack_req *next; /* the acker's */
};

/* What the acker asks of the streams of this replica: the sorted owners of
 * its leases (a new array; free()), and, after a commit, the items applied
 * (eb_dispatch_owners() and eb_dispatch_settled()). */
struct eb_acker_hooks {
    size_t (*owners)(void *arg, int64_t **out);
    void (*settled)(void *arg, const struct eb_ack_item *items, size_t n);
    void *arg;
};

/* Starts the acker thread. max_items bounds one transaction (a single
 * request is always taken whole). hooks is copied. */
eb_acker *eb_acker_new(const char *url, size_t max_items, const struct eb_acker_hooks *hooks);

/* Queues req. Returns EB_OK, or EB_EUNAVAIL after shutdown started (done is
 * then never called). THREAD SAFETY: any thread. */
eb_status eb_acker_submit(eb_acker *ak, struct eb_ack_req *req);

/* Commits what is queued, stops the thread and frees ak. NULL is allowed. */
void eb_acker_free(eb_acker *ak);

#endif
