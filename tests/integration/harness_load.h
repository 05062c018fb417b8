/* Load under faults: publisher threads that keep publishing while servers
 * or the database fail, and a reader that resumes its stream by sequence.
 *
 * Each publisher puts batches of 1..max_batch events with ids
 * "p<publisher>-<index>" (indexes count up from 0 and are never reused). A
 * failed call is retried with the same events, as a client must when the
 * outcome is unknown (dedup answers the ones that were in fact stored); a
 * batch still failing when the load stops stays unknown. What the server
 * acknowledged is recorded, so that h_load_check() can hold a reader's
 * deliveries against it: every acknowledged sequence delivered once, with
 * the acknowledged event, in order, and nothing delivered that was never
 * sent.
 *
 * The h_load_* and h_reader_* functions that fail the test (h_load_check,
 * h_reader_run_until) may only be called from the test's thread; the
 * publisher threads report through the load's counters.
 */
#ifndef CEBUS_IT_HARNESS_LOAD_H
#define CEBUS_IT_HARNESS_LOAD_H

#include <pthread.h>

#include "harness.h"

#define H_LOAD_MAX_PUBLISHERS 16

struct h_load;

struct h_load_ack {
    uint64_t seq;
    int publisher;
    int index;
};

struct h_load_publisher {
    struct h_load *load;
    pthread_t thread;
    int number;
    const char *addr; /* borrowed */
    unsigned seed;
    /* Under load->mu. */
    struct h_load_ack *acks;
    size_t nacks, cap;
    int sent;          /* ids p<number>-0 .. sent-1 have been put in a call */
    long ok_calls;     /* calls answered OK */
    long failed_calls; /* calls that failed with an allowed code */
    long stored_by_failed_call; /* events a retry found stored (duplicate) */
    int bad_code;      /* first outcome that breaks the contract; 0 if none */
    char bad_msg[600];
};

struct h_load {
    const char *key, *bus; /* borrowed */
    int max_batch;
    unsigned allowed_codes; /* bit (1u << code) for each failure code allowed */
    int npubs;
    struct h_load_publisher pubs[H_LOAD_MAX_PUBLISHERS];
    pthread_mutex_t mu;
    bool stop;    /* under mu */
    bool joined;  /* publishers joined; test thread only */
};

/* Starts npubs publishers on bus with key, publisher i on
 * addrs[i % naddrs] (the strings must outlive the load). A call may fail
 * only with a code in allowed_codes (bits 1u << code); any other failure,
 * and an OK answer with a failed entry, is recorded as a violation.
 * Returns a new load; free it with h_load_free(). A test that uses loads
 * must have h_load_teardown as its cmocka teardown, which stops and frees
 * the loads a failed test left running. */
struct h_load *h_load_start(const char *const *addrs, int naddrs, const char *key,
                            const char *bus, int npubs, int max_batch, unsigned seed,
                            unsigned allowed_codes);

/* cmocka test teardown: stops and frees every load not yet freed. */
int h_load_teardown(void **state);

/* Totals over all publishers so far (any pointer may be NULL). */
void h_load_totals(struct h_load *l, long *acked_events, long *ok_calls, long *failed_calls);

/* Calls of publisher i answered OK so far. */
long h_load_ok_calls(struct h_load *l, int i);

/* Stops the publishers after their current call and joins them. */
void h_load_stop(struct h_load *l);

/* Stops the publishers if running and frees the load. NULL is allowed. */
void h_load_free(struct h_load *l);

/* ---- The reader ------------------------------------------------------------------ */

struct h_delivery {
    uint64_t seq;
    int publisher; /* -1 for an event the load did not put */
    int index;
};

struct h_reader {
    cebus_client *client;
    cebus_stream *stream; /* NULL while not open */
    char bus[65];
    char key[160];
    struct h_delivery *got;
    size_t ngot, cap;
    uint64_t last;        /* sequence of the last delivery; 0 before the first */
    int opens;            /* streams opened */
    int ends;             /* streams that ended under it */
    int last_end_code;    /* status of the last end */
    char violation[300];  /* first out-of-order delivery; "" if none */
};

/* Prepares a reader of bus through addr with key (copied); no stream yet. */
void h_reader_init(struct h_reader *r, const char *addr, const char *key, const char *bus);

/* Opens the stream: at the earliest event before the first delivery, at
 * the last delivered sequence plus one after it (how a client resumes).
 * Returns the status of the attempt (0 when open). */
int h_reader_open(struct h_reader *r, cebus_error *err);

/* Closes the stream (if open) and points the reader at another server. */
void h_reader_switch(struct h_reader *r, const char *addr);

/* Reads and reopens (resuming by sequence, retrying while the server or
 * the database is away) until done(arg) returns true; fails the test with
 * what's name when that does not happen by deadline_ms (h_now_ms() clock). */
void h_reader_run_until(struct h_reader *r, bool (*done)(void *arg), void *arg,
                        int64_t deadline_ms, const char *what);

void h_reader_free(struct h_reader *r);

/* After h_load_stop(): reads until r has seen the highest acknowledged
 * sequence (or deadline_ms passes), then fails the test unless the reader
 * saw strictly increasing sequences, every acknowledged sequence exactly
 * once and with the acknowledged event, and no event that was never sent.
 * Prints a one-line summary. */
void h_load_check(struct h_load *l, struct h_reader *r, int64_t deadline_ms, const char *what);

#endif
