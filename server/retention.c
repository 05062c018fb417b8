#include "retention.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "store.h"
#include "store_durable.h"
#include "util.h"

/* Retry delay after a failed run (database down, lock timeout). */
#define RETRY_MS 5000

struct eb_retention {
    char *url;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping; /* guarded by mu */
    pthread_t thread;
};

/* Dead-letters what durable subscriptions nobody claims hold past their
 * limits, and drops dead letters whose event expired. Returns false when
 * it failed. */
static bool sweep_subscriptions(eb_db *db)
{
    int64_t dead = 0, expired = 0;
    eb_status st = eb_store_sub_sweep(db, 0, &dead, &expired);

    if (st) {
        eb_log_warn("msg=\"subscription sweep failed; retrying\" status=\"%s\"",
                    eb_status_text(st));
        return false;
    }
    if (dead || expired)
        eb_log_info("msg=\"subscription sweep\" dead_lettered=%lld expired=%lld",
                    (long long)dead, (long long)expired);
    return true;
}

/* One run. Returns false when it failed and should be retried soon. */
static bool run_once(eb_db **db, const char *url)
{
    struct eb_maintain_result r;
    int64_t t0;
    eb_status st;

    if (!*db && eb_db_connect(url, db) != EB_OK) {
        *db = NULL;
        return false;
    }
    if (eb_db_ensure(*db) != EB_OK)
        return false;
    t0 = eb_now_mono_us();
    st = eb_store_partitions_maintain(*db, 0, &r);
    if (st) {
        eb_log_warn("msg=\"partition maintenance failed; retrying\" status=\"%s\"",
                    eb_status_text(st));
        return false;
    }
    if (r.created || r.dropped)
        eb_log_info("msg=\"partition maintenance\" created=%d dropped=%d duration_ms=%lld",
                    r.created, r.dropped, (long long)((eb_now_mono_us() - t0) / 1000));
    else
        eb_log_debug("msg=\"partition maintenance\" skipped=%d", r.skipped ? 1 : 0);
    return sweep_subscriptions(*db);
}

static void *retention_main(void *arg)
{
    eb_retention *r = arg;
    eb_db *db = NULL;

    for (;;) {
        bool ok = run_once(&db, r->url);
        struct timespec until;
        int ms = ok ? EB_RETENTION_EVERY_MS : RETRY_MS;
        bool stop;

        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += ms / 1000;
        pthread_mutex_lock(&r->mu);
        /* Spurious wake-ups only make a run come early, which is harmless. */
        if (!r->stopping)
            pthread_cond_timedwait(&r->cv, &r->mu, &until);
        stop = r->stopping;
        pthread_mutex_unlock(&r->mu);
        if (stop)
            break;
    }
    eb_db_close(db);
    return NULL;
}

eb_retention *eb_retention_new(const char *url)
{
    eb_retention *r = eb_calloc(1, sizeof *r);

    r->url = eb_strdup(url);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    pthread_create(&r->thread, NULL, retention_main, r);
    return r;
}

void eb_retention_free(eb_retention *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    free(r->url);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
