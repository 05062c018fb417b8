#include "acker.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "util.h"

struct eb_acker {
    char *url;
    size_t max_items;
    struct eb_acker_hooks hooks;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct eb_ack_req *head, *tail;
    bool stopping;
    pthread_t thread;
};

/* Applies one group of requests and completes them. */
static void commit_group(eb_acker *ak, eb_db *db, struct eb_ack_req *group)
{
    size_t total = 0, k = 0, nowners = 0;
    struct eb_ack_item *items;
    int64_t *owners = NULL;
    eb_status st;

    for (struct eb_ack_req *r = group; r; r = r->next)
        total += r->n;
    items = eb_malloc((total ? total : 1) * sizeof *items);
    for (struct eb_ack_req *r = group; r; r = r->next) {
        memcpy(items + k, r->items, r->n * sizeof *items);
        k += r->n;
    }
    /* Acks of leases that streams of this replica hold need no
     * notification: the settled hook below updates those streams. */
    if (ak->hooks.owners)
        nowners = ak->hooks.owners(ak->hooks.arg, &owners);
    st = db ? eb_db_ensure(db) : EB_EUNAVAIL;
    if (st == EB_OK && total > 0)
        st = eb_store_sub_ack(db, items, total, owners, nowners);
    /* The streams' sets first, so that a consumer that gets its answer
     * finds its places free. */
    if (st == EB_OK && ak->hooks.settled)
        ak->hooks.settled(ak->hooks.arg, items, total);
    k = 0;
    for (struct eb_ack_req *r = group, *next; r; r = next) {
        next = r->next;
        for (size_t i = 0; i < r->n; i++, k++) {
            r->items[i].applied = st == EB_OK && items[k].applied;
            r->items[i].owner = st == EB_OK ? items[k].owner : 0;
            if (r->items[i].applied)
                eb_metrics_add(EB_M_SUB_ACKS, 1);
        }
        r->done(r, st);
    }
    free(owners);
    free(items);
}

static void *acker_main(void *arg)
{
    eb_acker *ak = arg;
    eb_db *db = NULL;

    for (;;) {
        struct eb_ack_req *group, *last;
        size_t n;

        pthread_mutex_lock(&ak->mu);
        while (!ak->head && !ak->stopping)
            pthread_cond_wait(&ak->cv, &ak->mu);
        if (!ak->head) {
            pthread_mutex_unlock(&ak->mu);
            break; /* stopping, nothing left */
        }
        group = last = ak->head;
        n = group->n;
        while (last->next && n + last->next->n <= ak->max_items) {
            last = last->next;
            n += last->n;
        }
        ak->head = last->next;
        if (!ak->head)
            ak->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&ak->mu);

        if (!db && eb_db_connect(ak->url, &db) != EB_OK)
            db = NULL;
        commit_group(ak, db, group);
    }
    eb_db_close(db);
    return NULL;
}

eb_acker *eb_acker_new(const char *url, size_t max_items, const struct eb_acker_hooks *hooks)
{
    eb_acker *ak = eb_calloc(1, sizeof *ak);

    ak->url = eb_strdup(url);
    ak->max_items = max_items;
    ak->hooks = *hooks;
    pthread_mutex_init(&ak->mu, NULL);
    pthread_cond_init(&ak->cv, NULL);
    pthread_create(&ak->thread, NULL, acker_main, ak);
    return ak;
}

eb_status eb_acker_submit(eb_acker *ak, struct eb_ack_req *req)
{
    pthread_mutex_lock(&ak->mu);
    if (ak->stopping) {
        pthread_mutex_unlock(&ak->mu);
        return EB_EUNAVAIL;
    }
    req->next = NULL;
    if (ak->tail)
        ak->tail->next = req;
    else
        ak->head = req;
    ak->tail = req;
    pthread_cond_signal(&ak->cv);
    pthread_mutex_unlock(&ak->mu);
    return EB_OK;
}

void eb_acker_free(eb_acker *ak)
{
    if (!ak)
        return;
    pthread_mutex_lock(&ak->mu);
    ak->stopping = true;
    pthread_cond_broadcast(&ak->cv);
    pthread_mutex_unlock(&ak->mu);
    pthread_join(ak->thread, NULL);
    free(ak->url);
    pthread_cond_destroy(&ak->cv);
    pthread_mutex_destroy(&ak->mu);
    free(ak);
}
