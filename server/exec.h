/* A pool of threads, each with its own database connection, that runs the
 * blocking part of RPCs so that gRPC worker threads never wait on the
 * database. */
#ifndef EB_EXEC_H
#define EB_EXEC_H

#include <stddef.h>

#include "status.h"
#include "store.h"

typedef struct eb_exec eb_exec;

/* A job runs on a pool thread with that thread's connection, which may be
 * broken (statements then return EB_EUNAVAIL). */
typedef void (*eb_job_fn)(eb_db *db, void *arg);

/* Starts nthreads threads connecting to url. Connections are made lazily
 * and re-made after failures, so a database that is down at start does not
 * stop the pool. */
eb_exec *eb_exec_new(const char *url, int nthreads, size_t max_queued);

/* Queues fn(db, arg). Returns EB_OK, or EB_EEXHAUSTED when max_queued jobs
 * are waiting (fn is then never called) or EB_EUNAVAIL after shutdown.
 * THREAD SAFETY: any thread. */
eb_status eb_exec_submit(eb_exec *x, eb_job_fn fn, void *arg);

/* Runs the queued jobs, stops the threads and frees x. NULL is allowed. */
void eb_exec_free(eb_exec *x);

#endif
