/* Publishers and a resuming reader under faults. See harness_load.h. */
#include "harness_load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Deadline of one PutEvents: a call into a dead server or database fails
 * long before; this only bounds a hang, which the test then reports. */
#define LOAD_CALL_TIMEOUT_MS 20000
/* Pause between retries of a failed call, so that an outage is not a busy
 * loop on the two cores. */
#define LOAD_RETRY_PAUSE_US (20 * 1000)
#define LOAD_MAX_BATCH 100

static void record_bad(struct h_load_publisher *p, int code, const char *fmt, const char *detail)
{
    pthread_mutex_lock(&p->load->mu);
    if (!p->bad_code) {
        p->bad_code = code ? code : -1;
        snprintf(p->bad_msg, sizeof p->bad_msg, fmt, detail);
    }
    pthread_mutex_unlock(&p->load->mu);
}

static bool stopping(struct h_load *l)
{
    bool stop;

    pthread_mutex_lock(&l->mu);
    stop = l->stop;
    pthread_mutex_unlock(&l->mu);
    return stop;
}

/* No cmocka calls: this runs on its own thread. */
static void *publisher_main(void *arg)
{
    struct h_load_publisher *p = arg;
    struct h_load *l = p->load;
    cebus_client *c = cebus_client_new(p->addr, l->key);
    h_event *evs[LOAD_MAX_BATCH];
    int n = 0, first = 0, attempts = 0;

    cebus_client_set_timeout(c, LOAD_CALL_TIMEOUT_MS);
    while (!stopping(l)) {
        Cebus__V1__PutEventsResponse *resp = NULL;
        cebus_error err;
        int rc;

        if (n == 0) {
            n = 1 + (int)(rand_r(&p->seed) % (unsigned)l->max_batch);
            pthread_mutex_lock(&l->mu);
            first = p->sent;
            p->sent += n;
            pthread_mutex_unlock(&l->mu);
            for (int i = 0; i < n; i++) {
                char id[48], data[64];
                snprintf(id, sizeof id, "p%d-%d", p->number, first + i);
                snprintf(data, sizeof data, "{\"publisher\":%d,\"index\":%d}", p->number,
                         first + i);
                evs[i] = h_event_new(id, "/it/faults", "faults.test", data);
            }
        }
        attempts++;
        rc = h_put(c, l->bus, evs, (size_t)n, &resp, &err);
        if (rc != 0) {
            if (!(rc > 0 && rc < 32 && (l->allowed_codes & (1u << rc)))) {
                char what[700];
                snprintf(what, sizeof what, "%s: %s", cebus_status_name(rc), err.message);
                record_bad(p, rc, "PutEvents failed with %.500s", what);
            }
            pthread_mutex_lock(&l->mu);
            p->failed_calls++;
            pthread_mutex_unlock(&l->mu);
            usleep(LOAD_RETRY_PAUSE_US);
            continue; /* the same events again: dedup covers a stored one */
        }
        if (resp->n_results != (size_t)n) {
            record_bad(p, GRPC_STATUS_INTERNAL, "%s", "PutEvents answered a wrong result count");
        } else {
            pthread_mutex_lock(&l->mu);
            for (int i = 0; i < n; i++) {
                if (resp->results[i]->code != 0 || resp->results[i]->sequence == 0) {
                    if (!p->bad_code) {
                        p->bad_code = resp->results[i]->code ? resp->results[i]->code : -1;
                        snprintf(p->bad_msg, sizeof p->bad_msg,
                                 "PutEvents OK but entry %d failed: %s: %s", i,
                                 cebus_status_name(resp->results[i]->code),
                                 resp->results[i]->message);
                    }
                    continue;
                }
                /* A duplicate means an earlier attempt stored the event
                 * although its call failed; on a first attempt it means
                 * dedup matched an event that was never sent. */
                if (resp->results[i]->duplicate && attempts == 1 && !p->bad_code) {
                    p->bad_code = -1;
                    snprintf(p->bad_msg, sizeof p->bad_msg,
                             "p%d-%d answered as a duplicate on its first attempt", p->number,
                             first + i);
                }
                if (resp->results[i]->duplicate)
                    p->stored_by_failed_call++;
                if (p->nacks == p->cap) {
                    p->cap = p->cap ? p->cap * 2 : 1024;
                    p->acks = realloc(p->acks, p->cap * sizeof *p->acks);
                    if (!p->acks)
                        abort();
                }
                p->acks[p->nacks++] =
                    (struct h_load_ack){resp->results[i]->sequence, p->number, first + i};
            }
            p->ok_calls++;
            pthread_mutex_unlock(&l->mu);
        }
        cebus__v1__put_events_response__free_unpacked(resp, NULL);
        for (int i = 0; i < n; i++)
            h_event_free(evs[i]);
        n = 0;
        attempts = 0;
    }
    for (int i = 0; i < n; i++)
        h_event_free(evs[i]);
    cebus_client_free(c);
    return NULL;
}

/* Loads not yet freed, for h_load_teardown after a failed test. Test
 * thread only. */
#define MAX_LOADS 4
static struct h_load *live_loads[MAX_LOADS];

struct h_load *h_load_start(const char *const *addrs, int naddrs, const char *key,
                            const char *bus, int npubs, int max_batch, unsigned seed,
                            unsigned allowed_codes)
{
    struct h_load *l = calloc(1, sizeof *l);
    int slot = 0;

    assert_non_null(l);
    assert_true(npubs > 0 && npubs <= H_LOAD_MAX_PUBLISHERS);
    assert_true(max_batch > 0 && max_batch <= LOAD_MAX_BATCH);
    while (slot < MAX_LOADS && live_loads[slot])
        slot++;
    assert_true(slot < MAX_LOADS);
    live_loads[slot] = l;
    l->key = key;
    l->bus = bus;
    l->max_batch = max_batch;
    l->allowed_codes = allowed_codes;
    pthread_mutex_init(&l->mu, NULL);
    for (int i = 0; i < npubs; i++) {
        struct h_load_publisher *p = &l->pubs[i];
        p->load = l;
        p->number = i;
        p->addr = addrs[i % naddrs];
        p->seed = seed + (unsigned)i * 7919u;
        if (pthread_create(&p->thread, NULL, publisher_main, p) != 0)
            fail_msg("cannot start publisher %d", i);
        l->npubs++;
    }
    return l;
}

int h_load_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < MAX_LOADS; i++)
        h_load_free(live_loads[i]);
    return 0;
}

void h_load_totals(struct h_load *l, long *acked_events, long *ok_calls, long *failed_calls)
{
    long acked = 0, ok = 0, failed = 0;

    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < l->npubs; i++) {
        acked += (long)l->pubs[i].nacks;
        ok += l->pubs[i].ok_calls;
        failed += l->pubs[i].failed_calls;
    }
    pthread_mutex_unlock(&l->mu);
    if (acked_events)
        *acked_events = acked;
    if (ok_calls)
        *ok_calls = ok;
    if (failed_calls)
        *failed_calls = failed;
}

long h_load_ok_calls(struct h_load *l, int i)
{
    long ok;

    pthread_mutex_lock(&l->mu);
    ok = l->pubs[i].ok_calls;
    pthread_mutex_unlock(&l->mu);
    return ok;
}

void h_load_stop(struct h_load *l)
{
    if (l->joined)
        return;
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; i < l->npubs; i++)
        pthread_join(l->pubs[i].thread, NULL);
    l->joined = true;
}

void h_load_free(struct h_load *l)
{
    if (!l)
        return;
    h_load_stop(l);
    for (int i = 0; i < MAX_LOADS; i++)
        if (live_loads[i] == l)
            live_loads[i] = NULL;
    for (int i = 0; i < l->npubs; i++)
        free(l->pubs[i].acks);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

/* ---- The reader ------------------------------------------------------------------ */

void h_reader_init(struct h_reader *r, const char *addr, const char *key, const char *bus)
{
    memset(r, 0, sizeof *r);
    snprintf(r->bus, sizeof r->bus, "%s", bus);
    snprintf(r->key, sizeof r->key, "%s", key);
    r->client = cebus_client_new(addr, r->key);
}

int h_reader_open(struct h_reader *r, cebus_error *err)
{
    Cebus__V1__SubscribeRequest req;
    int rc;

    assert_null(r->stream);
    if (r->last == 0)
        h_subscribe_request(&req, r->bus, "{}", NULL,
                            CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
    else
        h_subscribe_request(&req, r->bus, "{}", NULL,
                            CEBUS__V1__START_POSITION__START_POSITION_SEQUENCE, r->last + 1);
    rc = cebus_subscribe(r->client, &req, &r->stream, err);
    if (rc != 0)
        r->stream = NULL;
    else
        r->opens++;
    return rc;
}

void h_reader_switch(struct h_reader *r, const char *addr)
{
    cebus_stream_close(r->stream);
    r->stream = NULL;
    cebus_client_free(r->client);
    r->client = cebus_client_new(addr, r->key);
}

/* Records one delivery. */
static void take(struct h_reader *r, const Cebus__V1__SubscribeResponse *m)
{
    struct h_delivery d = {m->sequence, -1, -1};

    if (m->event && m->event->id && sscanf(m->event->id, "p%d-%d", &d.publisher, &d.index) != 2)
        d.publisher = d.index = -1;
    if (r->ngot > 0 && d.seq <= r->last && !r->violation[0])
        snprintf(r->violation, sizeof r->violation,
                 "delivery %zu has sequence %llu after %llu (stream %d): not strictly increasing",
                 r->ngot, (unsigned long long)d.seq, (unsigned long long)r->last, r->opens);
    if (r->ngot == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 4096;
        r->got = realloc(r->got, r->cap * sizeof *r->got);
        assert_non_null(r->got);
    }
    r->got[r->ngot++] = d;
    if (d.seq > r->last)
        r->last = d.seq;
}

void h_reader_run_until(struct h_reader *r, bool (*done)(void *arg), void *arg,
                        int64_t deadline_ms, const char *what)
{
    while (!done(arg)) {
        Cebus__V1__SubscribeResponse *m = NULL;
        cebus_error err;
        int got;

        if (h_now_ms() > deadline_ms)
            fail_msg("%s: not reached in time (reader at sequence %llu after %zu deliveries, "
                     "%d streams opened)",
                     what, (unsigned long long)r->last, r->ngot, r->opens);
        if (!r->stream) {
            /* The server or its database may be away: retry. */
            if (h_reader_open(r, &err) != 0)
                usleep(50 * 1000); /* retry pacing, bounded by the deadline */
            continue;
        }
        got = cebus_stream_next(r->stream, 50, &m, &err);
        if (got > 0) {
            take(r, m);
            cebus__v1__subscribe_response__free_unpacked(m, NULL);
        } else if (got < 0) {
            r->ends++;
            r->last_end_code = err.code;
            cebus_stream_close(r->stream);
            r->stream = NULL;
        }
    }
}

void h_reader_free(struct h_reader *r)
{
    cebus_stream_close(r->stream);
    cebus_client_free(r->client);
    free(r->got);
    memset(r, 0, sizeof *r);
}

/* ---- The check ---------------------------------------------------------------------- */

static int cmp_ack(const void *a, const void *b)
{
    const struct h_load_ack *x = a, *y = b;

    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

struct caught_up {
    struct h_reader *r;
    uint64_t want;
};

static bool reader_caught_up(void *arg)
{
    struct caught_up *c = arg;

    return c->r->last >= c->want || c->r->violation[0];
}

void h_load_check(struct h_load *l, struct h_reader *r, int64_t deadline_ms, const char *what)
{
    struct h_load_ack *all;
    size_t total = 0, k = 0, j = 0, maybe = 0;
    unsigned char *seen[H_LOAD_MAX_PUBLISHERS] = {NULL};
    struct caught_up c = {r, 0};
    long failed = 0, stored_by_failed = 0;

    for (int i = 0; i < l->npubs; i++) {
        if (l->pubs[i].bad_code)
            fail_msg("%s: publisher %d: %s", what, i, l->pubs[i].bad_msg);
        total += l->pubs[i].nacks;
        failed += l->pubs[i].failed_calls;
        stored_by_failed += l->pubs[i].stored_by_failed_call;
    }
    all = calloc(total ? total : 1, sizeof *all);
    assert_non_null(all);
    for (int i = 0; i < l->npubs; i++)
        for (size_t a = 0; a < l->pubs[i].nacks; a++)
            all[k++] = l->pubs[i].acks[a];
    qsort(all, total, sizeof *all, cmp_ack);
    for (size_t i = 1; i < total; i++)
        if (all[i].seq == all[i - 1].seq)
            fail_msg("%s: sequence %llu acknowledged for p%d-%d and p%d-%d", what,
                     (unsigned long long)all[i].seq, all[i - 1].publisher, all[i - 1].index,
                     all[i].publisher, all[i].index);
    c.want = total ? all[total - 1].seq : 0;
    h_reader_run_until(r, reader_caught_up, &c, deadline_ms, "reading every acknowledged event");
    if (r->violation[0])
        fail_msg("%s: %s", what, r->violation);

    /* Nothing twice, nothing never sent. */
    for (int i = 0; i < l->npubs; i++) {
        seen[i] = calloc((size_t)l->pubs[i].sent + 1, 1);
        assert_non_null(seen[i]);
    }
    for (size_t i = 0; i < r->ngot; i++) {
        const struct h_delivery *d = &r->got[i];
        if (d->publisher < 0 || d->publisher >= l->npubs || d->index < 0 ||
            d->index >= l->pubs[d->publisher].sent)
            fail_msg("%s: sequence %llu delivers an event that was never sent (p%d-%d)", what,
                     (unsigned long long)d->seq, d->publisher, d->index);
        if (seen[d->publisher][d->index])
            fail_msg("%s: event p%d-%d delivered twice (again at sequence %llu)", what,
                     d->publisher, d->index, (unsigned long long)d->seq);
        seen[d->publisher][d->index] = 1;
    }
    /* Every acknowledged sequence, with its event. Both lists are sorted. */
    for (size_t i = 0; i < total; i++) {
        while (j < r->ngot && r->got[j].seq < all[i].seq) {
            j++;
            maybe++; /* delivered but not acknowledged: a call whose outcome was unknown */
        }
        if (j == r->ngot || r->got[j].seq != all[i].seq)
            fail_msg("%s: acknowledged sequence %llu (event p%d-%d) was never delivered", what,
                     (unsigned long long)all[i].seq, all[i].publisher, all[i].index);
        if (r->got[j].publisher != all[i].publisher || r->got[j].index != all[i].index)
            fail_msg("%s: sequence %llu delivered event p%d-%d, acknowledged for p%d-%d", what,
                     (unsigned long long)all[i].seq, r->got[j].publisher, r->got[j].index,
                     all[i].publisher, all[i].index);
        j++;
    }
    print_message("%s: %zu events acknowledged, %zu delivered (%zu of unknown outcome), "
                  "%ld failed calls retried, %ld events stored by a call that failed, "
                  "%d streams opened\n",
                  what, total, r->ngot, maybe + (r->ngot - j), failed, stored_by_failed,
                  r->opens);
    for (int i = 0; i < l->npubs; i++)
        free(seen[i]);
    free(all);
}
