#include "appender.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "util.h"

/* Expired dedup entries are removed this often, this many per statement. */
#define DEDUP_EXPIRE_EVERY_US (30 * 1000000LL)
#define DEDUP_EXPIRE_BATCH 10000

struct eb_appender {
    char *url;
    size_t max_rows;
    eb_commit_fn on_commit;
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct eb_append_req *head, *tail;
    bool stopping;
    pthread_t thread;
};

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Stores one group of requests and completes them. */
static void commit_group(eb_appender *ap, eb_db *db, struct eb_append_req *group)
{
    size_t total = 0, k = 0;
    struct eb_append_row *rows;
    int64_t *buses;
    size_t nbuses = 0;
    eb_status st;

    for (struct eb_append_req *r = group; r; r = r->next)
        total += r->nrows;
    rows = eb_malloc((total ? total : 1) * sizeof *rows);
    for (struct eb_append_req *r = group; r; r = r->next) {
        memcpy(rows + k, r->rows, r->nrows * sizeof *rows);
        k += r->nrows;
    }

    st = db ? eb_db_ensure(db) : EB_EUNAVAIL;
    if (st == EB_OK && total > 0) {
        int64_t t0 = eb_now_mono_us();
        st = eb_store_events_append(db, rows, total);
        eb_metrics_observe_us(EB_H_APPEND_COMMIT, eb_now_mono_us() - t0);
    }
    if (total > 0)
        eb_metrics_add(st == EB_OK ? EB_M_APPEND_COMMITS : EB_M_APPEND_FAILURES, 1);

    buses = eb_malloc((total ? total : 1) * sizeof *buses);
    k = 0;
    for (struct eb_append_req *r = group, *next; r; r = next) {
        next = r->next;
        for (size_t i = 0; i < r->nrows; i++, k++) {
            r->rows[i].seq = st == EB_OK ? rows[k].seq : 0;
            r->rows[i].duplicate = st == EB_OK && rows[k].duplicate;
            r->rows[i].status = st == EB_OK ? rows[k].status : st;
            if (st == EB_OK && rows[k].status == EB_OK && !rows[k].duplicate)
                buses[nbuses++] = rows[k].bus_id;
            else if (st == EB_OK && rows[k].duplicate)
                eb_metrics_add(EB_M_EVENTS_DUPLICATE, 1);
        }
        r->done(r, st);
    }
    eb_metrics_add(EB_M_EVENTS_APPENDED, nbuses);
    if (st == EB_OK && ap->on_commit && nbuses) {
        qsort(buses, nbuses, sizeof *buses, cmp_i64);
        for (size_t i = 0; i < nbuses; i++)
            if (i == 0 || buses[i] != buses[i - 1])
                ap->on_commit(ap->arg, buses[i]);
    }
    free(buses);
    free(rows);
}

/* Removes expired dedup entries in bounded batches between commits. Any
 * replica may do it; concurrent deletes of the same rows are harmless. */
static void expire_dedup(eb_db *db)
{
    int64_t removed = 0;

    for (int round = 0; round < 10; round++) {
        if (eb_db_ensure(db) != EB_OK ||
            eb_store_dedup_expire(db, DEDUP_EXPIRE_BATCH, &removed) != EB_OK ||
            removed < DEDUP_EXPIRE_BATCH)
            break;
    }
}

static void *appender_main(void *arg)
{
    eb_appender *ap = arg;
    eb_db *db = NULL;
    int64_t last_expire = eb_now_mono_us();

    for (;;) {
        struct eb_append_req *group, *last;
        struct timespec until;
        size_t rows;

        if (eb_now_mono_us() - last_expire > DEDUP_EXPIRE_EVERY_US) {
            last_expire = eb_now_mono_us();
            if (db || eb_db_connect(ap->url, &db) == EB_OK)
                expire_dedup(db);
        }
        pthread_mutex_lock(&ap->mu);
        if (!ap->head && !ap->stopping) {
            /* Timed, so that expiry also runs on an idle server. */
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 5;
            pthread_cond_timedwait(&ap->cv, &ap->mu, &until);
        }
        if (!ap->head) {
            bool stop = ap->stopping;
            pthread_mutex_unlock(&ap->mu);
            if (stop)
                break;
            continue;
        }
        /* Take every waiting request, up to max_rows (a single request is
         * always taken whole). */
        group = last = ap->head;
        rows = group->nrows;
        while (last->next && rows + last->next->nrows <= ap->max_rows) {
            last = last->next;
            rows += last->nrows;
        }
        ap->head = last->next;
        if (!ap->head)
            ap->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&ap->mu);

        if (!db && eb_db_connect(ap->url, &db) != EB_OK)
            db = NULL;
        commit_group(ap, db, group);
    }
    eb_db_close(db);
    return NULL;
}

eb_appender *eb_appender_new(const char *url, size_t max_rows, eb_commit_fn on_commit,
                             void *arg)
{
    eb_appender *ap = eb_calloc(1, sizeof *ap);

    ap->url = eb_strdup(url);
    ap->max_rows = max_rows;
    ap->on_commit = on_commit;
    ap->arg = arg;
    pthread_mutex_init(&ap->mu, NULL);
    pthread_cond_init(&ap->cv, NULL);
    pthread_create(&ap->thread, NULL, appender_main, ap);
    return ap;
}

eb_status eb_appender_submit(eb_appender *ap, struct eb_append_req *req)
{
    pthread_mutex_lock(&ap->mu);
    if (ap->stopping) {
        pthread_mutex_unlock(&ap->mu);
        return EB_EUNAVAIL;
    }
    req->next = NULL;
    if (ap->tail)
        ap->tail->next = req;
    else
        ap->head = req;
    ap->tail = req;
    pthread_cond_signal(&ap->cv);
    pthread_mutex_unlock(&ap->mu);
    return EB_OK;
}

void eb_appender_free(eb_appender *ap)
{
    if (!ap)
        return;
    pthread_mutex_lock(&ap->mu);
    ap->stopping = true;
    pthread_cond_broadcast(&ap->cv);
    pthread_mutex_unlock(&ap->mu);
    pthread_join(ap->thread, NULL);
    free(ap->url);
    pthread_cond_destroy(&ap->cv);
    pthread_mutex_destroy(&ap->mu);
    free(ap);
}
