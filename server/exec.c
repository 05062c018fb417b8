#include "exec.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "log.h"
#include "metrics.h"
#include "util.h"

struct job {
    eb_job_fn fn;
    void *arg;
    struct job *next;
};

struct eb_exec {
    char *url;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head, *tail;
    size_t queued, max_queued;
    bool stopping;
    int nthreads;
    pthread_t *threads;
};

/* A job's connection: opened on first use and re-made when broken. When
 * the database cannot be reached the job still runs, and its statements
 * answer EB_EUNAVAIL, which clients see as UNAVAILABLE. */
static eb_db *connection(eb_exec *x, eb_db **db)
{
    if (!*db)
        *db = eb_db_open(x->url);
    eb_db_ensure(*db);
    return *db;
}

static void *exec_main(void *arg)
{
    eb_exec *x = arg;
    eb_db *db = NULL;

    for (;;) {
        struct job *j;

        pthread_mutex_lock(&x->mu);
        while (!x->head && !x->stopping)
            pthread_cond_wait(&x->cv, &x->mu);
        j = x->head;
        if (!j) {
            pthread_mutex_unlock(&x->mu);
            break;
        }
        x->head = j->next;
        if (!x->head)
            x->tail = NULL;
        x->queued--;
        pthread_mutex_unlock(&x->mu);
        eb_metrics_gauge_add(EB_G_EXEC_QUEUED, -1);

        j->fn(connection(x, &db), j->arg);
        free(j);
    }
    eb_db_close(db);
    return NULL;
}

eb_exec *eb_exec_new(const char *url, int nthreads, size_t max_queued)
{
    eb_exec *x = eb_calloc(1, sizeof *x);

    x->url = eb_strdup(url);
    x->max_queued = max_queued;
    x->nthreads = nthreads;
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->cv, NULL);
    x->threads = eb_calloc((size_t)nthreads, sizeof *x->threads);
    for (int i = 0; i < nthreads; i++)
        pthread_create(&x->threads[i], NULL, exec_main, x);
    return x;
}

eb_status eb_exec_submit(eb_exec *x, eb_job_fn fn, void *arg)
{
    struct job *j;

    pthread_mutex_lock(&x->mu);
    if (x->stopping) {
        pthread_mutex_unlock(&x->mu);
        return EB_EUNAVAIL;
    }
    if (x->queued >= x->max_queued) {
        pthread_mutex_unlock(&x->mu);
        return EB_EEXHAUSTED;
    }
    j = eb_malloc(sizeof *j);
    j->fn = fn;
    j->arg = arg;
    j->next = NULL;
    if (x->tail)
        x->tail->next = j;
    else
        x->head = j;
    x->tail = j;
    x->queued++;
    pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&x->mu);
    eb_metrics_gauge_add(EB_G_EXEC_QUEUED, 1);
    return EB_OK;
}

void eb_exec_free(eb_exec *x)
{
    if (!x)
        return;
    pthread_mutex_lock(&x->mu);
    x->stopping = true;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
    for (int i = 0; i < x->nthreads; i++)
        pthread_join(x->threads[i], NULL);
    free(x->threads);
    free(x->url);
    pthread_cond_destroy(&x->cv);
    pthread_mutex_destroy(&x->mu);
    free(x);
}
