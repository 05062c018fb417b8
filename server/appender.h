/* Group commit of PutEvents: one thread with its own connection takes every
 * append waiting at that moment and stores them in one transaction, so one
 * fsync serves many calls. Nothing is reported stored before COMMIT
 * returned. */
#ifndef EB_APPENDER_H
#define EB_APPENDER_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "store.h"

typedef struct eb_appender eb_appender;

/* One caller's rows. The appender fills rows[i].seq and rows[i].status,
 * then calls done(req, st) once, on the appender thread: st is EB_OK when
 * the transaction committed (each row then has its own status), else the
 * reason nothing was stored. The request and its rows belong to the caller
 * throughout. */
struct eb_append_req {
    struct eb_append_row *rows;
    size_t nrows;
    void (*done)(struct eb_append_req *req, eb_status st);
    struct eb_append_req *next; /* the appender's */
};

/* Called after each commit with each bus that received events, so that
 * local subscribers wake without waiting for the notification. */
typedef void (*eb_commit_fn)(void *arg, int64_t bus_id);

/* Starts the appender thread. max_rows bounds one transaction. */
eb_appender *eb_appender_new(const char *url, size_t max_rows, eb_commit_fn on_commit,
                             void *arg);

/* Queues req. Returns EB_OK, or EB_EUNAVAIL after shutdown started (done is
 * then never called). THREAD SAFETY: any thread. */
eb_status eb_appender_submit(eb_appender *ap, struct eb_append_req *req);

/* Commits what is queued, stops the thread and frees ap. NULL is allowed. */
void eb_appender_free(eb_appender *ap);

#endif
