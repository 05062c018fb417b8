/* Unit tests for the event log of server/store_events.c against a real
 * PostgreSQL: multi-bus appends, reads forward and newest first, binary
 * bodies, large batches, head and before_time, notifications, idempotent
 * appends (per publishing tenant, awkward keys, the window, concurrency),
 * and the ordering property under concurrent appenders.
 *
 * The process creates its own database on the cluster named by
 * CEBUS_TEST_DATABASE_URL and drops it at the end (tests/unit/db_fixture.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include "db_fixture.h"
#include "log.h"
#include "store.h"
#include "util.h"

/* --- Events ----------------------------------------------------------------- */

static void read_all(eb_db *db, int64_t bus_id, int64_t after, int limit,
                     struct eb_event_rec **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    assert_int_equal(eb_store_events_read(db, bus_id, after, limit, out, n), EB_OK);
}

static int64_t count_events(struct ut_db *f, int64_t bus_id)
{
    char sql[128];

    snprintf(sql, sizeof sql, "SELECT count(*) FROM events WHERE bus_id = %lld",
             (long long)bus_id);
    return ut_sql_int(f->raw, sql);
}

static void free_events(struct eb_event_rec *ev, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ev[i].body);
    free(ev);
}

static void test_events_append_read(void **state)
{
    struct ut_db *f = *state;
    int64_t tid = ut_tenant(f, "events-tenant");
    struct eb_bus_rec a = ut_bus(f, tid, "a"), b = ut_bus(f, tid, "b");
    int64_t t0 = eb_now_wall_us(), head = -1;
    int64_t missing = b.id + 1000000;
    struct eb_append_row rows[7];
    struct eb_event_rec *ev;
    size_t n;

    assert_int_equal(eb_store_events_head(f->db, a.id, &head), EB_OK);
    assert_int_equal(head, 0);
    read_all(f->db, a.id, 0, 100, &ev, &n);
    assert_int_equal(n, 0);
    free_events(ev, n);

    /* b's rows come first in the batch although b has the larger id. */
    rows[0] = ut_row(b.id, t0 + 1, "e0", "b-first");
    rows[1] = ut_row(a.id, t0 + 2, "e1", "a-first");
    rows[2] = ut_row(missing, t0 + 3, "e2", "lost");
    rows[3] = ut_row(a.id, t0 + 4, "e3", "a-second");
    rows[4] = ut_row(b.id, t0 + 5, "e4", "b-second");
    rows[5] = ut_row(a.id, t0 + 6, "e5", "a-third");
    rows[6] = ut_row(missing, t0 + 7, "e6", "lost too");
    assert_int_equal(eb_store_events_append(f->db, rows, 7), EB_OK);
    assert_int_equal(rows[0].status, EB_OK);
    assert_int_equal(rows[0].seq, 1);
    assert_int_equal(rows[1].status, EB_OK);
    assert_int_equal(rows[1].seq, 1);
    assert_int_equal(rows[2].status, EB_ENOTFOUND);
    assert_int_equal(rows[2].seq, 0);
    assert_int_equal(rows[3].status, EB_OK);
    assert_int_equal(rows[3].seq, 2);
    assert_int_equal(rows[4].status, EB_OK);
    assert_int_equal(rows[4].seq, 2);
    assert_int_equal(rows[5].status, EB_OK);
    assert_int_equal(rows[5].seq, 3);
    assert_int_equal(rows[6].status, EB_ENOTFOUND);
    assert_int_equal(rows[6].seq, 0);

    assert_int_equal(eb_store_events_head(f->db, a.id, &head), EB_OK);
    assert_int_equal(head, 3);
    assert_int_equal(eb_store_events_head(f->db, b.id, &head), EB_OK);
    assert_int_equal(head, 2);
    assert_int_equal(eb_store_events_head(f->db, missing, &head), EB_ENOTFOUND);
    assert_int_equal(count_events(f, a.id) + count_events(f, b.id) + count_events(f, missing), 5);

    read_all(f->db, a.id, 0, 100, &ev, &n);
    assert_int_equal(n, 3);
    assert_int_equal(ev[0].seq, 1);
    assert_int_equal(ev[0].received_us, t0 + 2);
    assert_int_equal(ev[0].body_len, strlen("a-first"));
    assert_memory_equal(ev[0].body, "a-first", ev[0].body_len);
    assert_int_equal(ev[1].seq, 2);
    assert_memory_equal(ev[1].body, "a-second", ev[1].body_len);
    assert_int_equal(ev[2].seq, 3);
    assert_int_equal(ev[2].received_us, t0 + 6);
    assert_memory_equal(ev[2].body, "a-third", ev[2].body_len);
    free_events(ev, n);

    /* After a sequence, with a limit. */
    read_all(f->db, a.id, 1, 1, &ev, &n);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].seq, 2);
    free_events(ev, n);
    read_all(f->db, a.id, 3, 10, &ev, &n);
    assert_int_equal(n, 0);
    free_events(ev, n);
    read_all(f->db, b.id, 0, 10, &ev, &n);
    assert_int_equal(n, 2);
    assert_memory_equal(ev[0].body, "b-first", ev[0].body_len);
    assert_memory_equal(ev[1].body, "b-second", ev[1].body_len);
    free_events(ev, n);
    read_all(f->db, missing, 0, 10, &ev, &n);
    assert_int_equal(n, 0);
    free_events(ev, n);

    /* The next append continues the sequence. */
    rows[0] = ut_row(a.id, t0 + 10, "e7", "a-fourth");
    assert_int_equal(eb_store_events_append(f->db, rows, 1), EB_OK);
    assert_int_equal(rows[0].seq, 4);

    /* Only missing buses: nothing stored, the call itself succeeds. */
    rows[0] = ut_row(missing, t0, "x", "x");
    assert_int_equal(eb_store_events_append(f->db, rows, 1), EB_OK);
    assert_int_equal(rows[0].status, EB_ENOTFOUND);
    assert_int_equal(eb_store_events_append(f->db, rows, 0), EB_OK);
    assert_int_equal(count_events(f, a.id) + count_events(f, b.id) + count_events(f, missing), 6);
}

static void test_events_binary_bodies(void **state)
{
    struct ut_db *f = *state;
    int64_t tid = ut_tenant(f, "binary-tenant");
    struct eb_bus_rec bus = ut_bus(f, tid, "bin");
    static const uint8_t body[] = {0x0a, 0x00, 0xff, 0x00, 0x80, 0x5c, 0x27};
    struct eb_append_row rows[2];
    struct eb_event_rec *ev;
    size_t n;

    rows[0] = ut_row(bus.id, eb_now_wall_us(), "b0", "");
    rows[0].body = body;
    rows[0].body_len = sizeof body;
    rows[1] = ut_row(bus.id, eb_now_wall_us(), "b1", "");
    rows[1].body = (const uint8_t *)"";
    rows[1].body_len = 0;
    assert_int_equal(eb_store_events_append(f->db, rows, 2), EB_OK);
    read_all(f->db, bus.id, 0, 10, &ev, &n);
    assert_int_equal(n, 2);
    assert_int_equal(ev[0].body_len, sizeof body);
    assert_memory_equal(ev[0].body, body, sizeof body);
    assert_int_equal(ev[1].body_len, 0);
    free_events(ev, n);
}

/* More rows than one INSERT statement carries, over two buses. */
static void test_events_large_batch(void **state)
{
    struct ut_db *f = *state;
    int64_t tid = ut_tenant(f, "large-tenant");
    struct eb_bus_rec a = ut_bus(f, tid, "a"), b = ut_bus(f, tid, "b");
    enum { N = 2500 };
    struct eb_append_row *rows = eb_calloc(N, sizeof *rows);
    char (*bodies)[16] = eb_calloc(N, sizeof *bodies);
    int64_t t0 = eb_now_wall_us(), next_a = 1, next_b = 1, head;
    struct eb_event_rec *ev;
    size_t n;

    for (int i = 0; i < N; i++) {
        snprintf(bodies[i], sizeof bodies[i], "row-%d", i);
        rows[i] = ut_row(i % 3 ? a.id : b.id, t0 + i, bodies[i], bodies[i]);
    }
    assert_int_equal(eb_store_events_append(f->db, rows, N), EB_OK);
    for (int i = 0; i < N; i++) {
        assert_int_equal(rows[i].status, EB_OK);
        assert_int_equal(rows[i].seq, i % 3 ? next_a++ : next_b++);
    }
    assert_int_equal(eb_store_events_head(f->db, a.id, &head), EB_OK);
    assert_int_equal(head, next_a - 1);
    read_all(f->db, a.id, 0, N, &ev, &n);
    assert_int_equal(n, (size_t)(next_a - 1));
    for (size_t k = 0, i = 0; k < n; k++) {
        while (i % 3 == 0)
            i++;
        assert_int_equal(ev[k].seq, (int64_t)k + 1);
        assert_int_equal(ev[k].body_len, strlen(bodies[i]));
        assert_memory_equal(ev[k].body, bodies[i], ev[k].body_len);
        i++;
    }
    free_events(ev, n);
    free(bodies);
    free(rows);
}

static void test_events_before_time(void **state)
{
    struct ut_db *f = *state;
    int64_t tid = ut_tenant(f, "time-tenant");
    struct eb_bus_rec bus = ut_bus(f, tid, "t"), empty = ut_bus(f, tid, "empty");
    int64_t base = eb_now_wall_us() - 3600LL * 1000000, seq = -1;
    struct eb_append_row rows[4];

    /* received times 0 s, 10 s, 10 s, 20 s after base. */
    rows[0] = ut_row(bus.id, base, "t0", "0");
    rows[1] = ut_row(bus.id, base + 10000000, "t1", "1");
    rows[2] = ut_row(bus.id, base + 10000000, "t2", "2");
    rows[3] = ut_row(bus.id, base + 20000000, "t3", "3");
    assert_int_equal(eb_store_events_append(f->db, rows, 4), EB_OK);

    assert_int_equal(eb_store_events_before_time(f->db, bus.id, base - 1000000, &seq), EB_OK);
    assert_int_equal(seq, 0);
    assert_int_equal(eb_store_events_before_time(f->db, bus.id, base, &seq), EB_OK);
    assert_int_equal(seq, 0);
    assert_int_equal(eb_store_events_before_time(f->db, bus.id, base + 1, &seq), EB_OK);
    assert_int_equal(seq, 1);
    assert_int_equal(eb_store_events_before_time(f->db, bus.id, base + 10000000, &seq), EB_OK);
    assert_int_equal(seq, 1);
    assert_int_equal(eb_store_events_before_time(f->db, bus.id, base + 10000001, &seq), EB_OK);
    assert_int_equal(seq, 3);
    /* Past the last event: the head. */
    assert_int_equal(eb_store_events_before_time(f->db, bus.id, base + 30000000, &seq), EB_OK);
    assert_int_equal(seq, 4);
    assert_int_equal(eb_store_events_before_time(f->db, empty.id, base, &seq), EB_OK);
    assert_int_equal(seq, 0);
    /* The epoch and times before it: everything is after them. */
    seq = -1;
    assert_int_equal(eb_store_events_before_time(f->db, bus.id, 0, &seq), EB_OK);
    assert_int_equal(seq, 0);
    seq = -1;
    assert_int_equal(eb_store_events_before_time(f->db, bus.id, -1, &seq), EB_OK);
    assert_int_equal(seq, 0);
    seq = -1;
    assert_int_equal(eb_store_events_before_time(f->db, bus.id, -1500000, &seq), EB_OK);
    assert_int_equal(seq, 0);
    assert_int_equal(eb_store_events_before_time(f->db, empty.id + 1000000, base, &seq),
                     EB_ENOTFOUND);
}

/* Reads back, newest first, within (after, before), at most limit events,
 * stopping after the event that reaches max_bytes. */
static void read_back(eb_db *db, int64_t bus_id, int64_t after, int64_t before, int limit,
                      size_t max_bytes, struct eb_event_rec **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    assert_int_equal(
        eb_store_events_read_back(db, bus_id, after, before, limit, max_bytes, out, n), EB_OK);
}

static void test_events_read_back(void **state)
{
    struct ut_db *f = *state;
    int64_t tid = ut_tenant(f, "back-tenant");
    struct eb_bus_rec bus = ut_bus(f, tid, "back"), other = ut_bus(f, tid, "other");
    int64_t t0 = eb_now_wall_us();
    char bodies[6][101];
    struct eb_append_row rows[8];
    struct eb_event_rec *ev;
    size_t n;

    /* Six 100-byte events on bus (sequences 1..6), two on other between. */
    for (int i = 0; i < 6; i++) {
        static const char *const ids[6] = {"r0", "r1", "r2", "r3", "r4", "r5"};
        memset(bodies[i], 'a' + i, 100);
        bodies[i][100] = '\0';
        rows[i] = ut_row(bus.id, t0 + i, ids[i], bodies[i]);
    }
    rows[6] = ut_row(other.id, t0, "o0", "other-0");
    rows[7] = ut_row(other.id, t0, "o1", "other-1");
    assert_int_equal(eb_store_events_append(f->db, rows, 8), EB_OK);

    read_back(f->db, bus.id, 0, 7, 100, 1 << 20, &ev, &n);
    assert_int_equal(n, 6);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ev[i].seq, 6 - (int64_t)i);
        assert_int_equal(ev[i].received_us, t0 + 5 - (int64_t)i);
        assert_int_equal(ev[i].body_len, 100);
        assert_memory_equal(ev[i].body, bodies[5 - i], 100);
    }
    free_events(ev, n);

    /* The limit keeps the newest. */
    read_back(f->db, bus.id, 0, 7, 2, 1 << 20, &ev, &n);
    assert_int_equal(n, 2);
    assert_int_equal(ev[0].seq, 6);
    assert_int_equal(ev[1].seq, 5);
    free_events(ev, n);
    /* Both bounds are exclusive. */
    read_back(f->db, bus.id, 2, 5, 100, 1 << 20, &ev, &n);
    assert_int_equal(n, 2);
    assert_int_equal(ev[0].seq, 4);
    assert_int_equal(ev[1].seq, 3);
    free_events(ev, n);
    read_back(f->db, bus.id, 3, 4, 100, 1 << 20, &ev, &n);
    assert_int_equal(n, 0);
    free_events(ev, n);

    /* The byte budget: the event that reaches it is the last one read, and
     * a page holds at least one event. */
    read_back(f->db, bus.id, 0, 7, 100, 250, &ev, &n);
    assert_int_equal(n, 3);
    assert_int_equal(ev[2].seq, 4);
    free_events(ev, n);
    read_back(f->db, bus.id, 0, 7, 100, 200, &ev, &n);
    assert_int_equal(n, 2);
    free_events(ev, n);
    read_back(f->db, bus.id, 0, 7, 100, 1, &ev, &n);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].seq, 6);
    free_events(ev, n);

    /* Another bus's events never show. */
    read_back(f->db, other.id, 0, 100, 100, 1 << 20, &ev, &n);
    assert_int_equal(n, 2);
    assert_memory_equal(ev[0].body, "other-1", ev[0].body_len);
    free_events(ev, n);
}

struct note_count {
    int64_t bus_id;
    int hits, others;
};

static void on_note(void *arg, enum eb_notify_channel ch, int64_t bus_id)
{
    struct note_count *c = arg;

    if (ch == EB_NOTIFY_EVENTS && bus_id == c->bus_id)
        c->hits++;
    else
        c->others++;
}

static void test_notifications(void **state)
{
    struct ut_db *f = *state;
    int64_t tid = ut_tenant(f, "notify-tenant");
    struct eb_bus_rec bus = ut_bus(f, tid, "n");
    struct note_count c = {.bus_id = bus.id};
    struct eb_append_row row = ut_row(bus.id, eb_now_wall_us(), "n0", "n");
    eb_db *listener;
    int64_t deadline;

    assert_int_equal(eb_db_connect(f->url, &listener), EB_OK);
    assert_int_equal(eb_store_listen(listener), EB_OK);
    assert_int_equal(eb_store_events_append(f->db, &row, 1), EB_OK);
    deadline = eb_now_mono_us() + 5 * 1000000;
    while (c.hits == 0 && eb_now_mono_us() < deadline) {
        struct pollfd pfd = {.fd = eb_db_socket(listener), .events = POLLIN};
        poll(&pfd, 1, 100);
        assert_int_equal(eb_store_drain_notifications(listener, on_note, &c), EB_OK);
    }
    assert_int_equal(c.hits, 1);
    eb_db_close(listener);
}

/* --- Idempotent appends ------------------------------------------------------ */

static struct eb_bus_rec new_bus_window(struct ut_db *f, int64_t tenant_id, const char *name,
                                        int window)
{
    struct eb_bus_rec b;

    assert_int_equal(eb_store_bus_insert(f->db, tenant_id, name, 168, window, &b), EB_OK);
    return b;
}

static void test_events_dedup(void **state)
{
    struct ut_db *f = *state;
    int64_t tid = ut_tenant(f, "dedup-tenant"), t0 = eb_now_wall_us(), head;
    struct eb_bus_rec a = new_bus_window(f, tid, "a", 300), b = new_bus_window(f, tid, "b", 300);
    struct eb_append_row rows[6];
    struct eb_event_rec *ev;
    size_t n;

    rows[0] = ut_row(a.id, t0, "id-1", "one");
    rows[1] = ut_row(a.id, t0, "id-2", "two");
    assert_int_equal(eb_store_events_append(f->db, rows, 2), EB_OK);
    assert_false(rows[0].duplicate);
    assert_false(rows[1].duplicate);
    assert_int_equal(rows[0].seq, 1);
    assert_int_equal(rows[1].seq, 2);

    /* A retry in a later call: the original sequence, nothing stored; a
     * repeat inside one call: the answer of its first copy; fresh rows
     * still get consecutive sequences in row order. The same id under
     * another source, or on another bus, is another event. */
    rows[0] = ut_row(a.id, t0, "id-3", "three");
    rows[1] = ut_row(a.id, t0, "id-2", "two again");
    rows[2] = ut_row(a.id, t0, "id-3", "three again");
    rows[3] = ut_row(a.id, t0, "id-4", "four");
    rows[4] = ut_row(a.id, t0, "id-1", "one again");
    rows[4].source = "/other";
    rows[5] = ut_row(b.id, t0, "id-1", "one on b");
    assert_int_equal(eb_store_events_append(f->db, rows, 6), EB_OK);
    for (int i = 0; i < 6; i++)
        assert_int_equal(rows[i].status, EB_OK);
    assert_false(rows[0].duplicate);
    assert_int_equal(rows[0].seq, 3);
    assert_true(rows[1].duplicate);
    assert_int_equal(rows[1].seq, 2);
    assert_true(rows[2].duplicate);
    assert_int_equal(rows[2].seq, 3);
    assert_false(rows[3].duplicate);
    assert_int_equal(rows[3].seq, 4);
    assert_false(rows[4].duplicate);
    assert_int_equal(rows[4].seq, 5);
    assert_false(rows[5].duplicate);
    assert_int_equal(rows[5].seq, 1);

    assert_int_equal(eb_store_events_head(f->db, a.id, &head), EB_OK);
    assert_int_equal(head, 5);
    read_all(f->db, a.id, 0, 100, &ev, &n);
    assert_int_equal(n, 5);
    assert_memory_equal(ev[1].body, "two", ev[1].body_len);
    assert_memory_equal(ev[2].body, "three", ev[2].body_len);
    assert_memory_equal(ev[3].body, "four", ev[3].body_len);
    free_events(ev, n);

    /* A call of duplicates only stores nothing and moves no counter. */
    rows[0] = ut_row(a.id, t0, "id-1", "x");
    rows[1] = ut_row(a.id, t0, "id-4", "x");
    assert_int_equal(eb_store_events_append(f->db, rows, 2), EB_OK);
    assert_true(rows[0].duplicate);
    assert_int_equal(rows[0].seq, 1);
    assert_true(rows[1].duplicate);
    assert_int_equal(rows[1].seq, 4);
    assert_int_equal(eb_store_events_head(f->db, a.id, &head), EB_OK);
    assert_int_equal(head, 5);
    assert_int_equal(count_events(f, a.id), 5);

    /* Per publishing tenant: another tenant's event with the same source
     * and id is its own event (it must not learn the first one's sequence),
     * in a later call and within one call; its retry is its duplicate. */
    rows[0] = ut_row(a.id, t0, "id-1", "grantee one");
    rows[0].tenant_id = tid + 1000;
    rows[1] = ut_row(a.id, t0, "id-4", "owner four again");
    rows[2] = ut_row(a.id, t0, "id-4", "grantee four");
    rows[2].tenant_id = tid + 1000;
    assert_int_equal(eb_store_events_append(f->db, rows, 3), EB_OK);
    assert_false(rows[0].duplicate);
    assert_int_equal(rows[0].seq, 6);
    assert_true(rows[1].duplicate);
    assert_int_equal(rows[1].seq, 4);
    assert_false(rows[2].duplicate);
    assert_int_equal(rows[2].seq, 7);
    rows[0] = ut_row(a.id, t0, "id-1", "grantee one again");
    rows[0].tenant_id = tid + 1000;
    assert_int_equal(eb_store_events_append(f->db, rows, 1), EB_OK);
    assert_true(rows[0].duplicate);
    assert_int_equal(rows[0].seq, 6);
}

/* Sources and ids travel in array literals: quotes, backslashes, commas,
 * braces, spaces, the word NULL and the empty string stay themselves. */
static void test_events_dedup_awkward_keys(void **state)
{
    static const char *const keys[] = {
        "", "NULL", "null", "a\"b", "a\\b", "a,b", "{a}", " lead", "trail ", "\\\"", "é\xe2\x82\xac",
    };
    enum { K = sizeof keys / sizeof keys[0] };
    struct ut_db *f = *state;
    int64_t tid = ut_tenant(f, "awkward-tenant"), t0 = eb_now_wall_us();
    struct eb_bus_rec bus = new_bus_window(f, tid, "awk", 300);
    struct eb_append_row rows[2 * K];

    for (int i = 0; i < K; i++) {
        rows[i] = ut_row(bus.id, t0, keys[i], "x");
        rows[i].source = keys[(i + 1) % K];
    }
    assert_int_equal(eb_store_events_append(f->db, rows, K), EB_OK);
    for (int i = 0; i < K; i++) {
        assert_false(rows[i].duplicate);
        assert_int_equal(rows[i].seq, i + 1);
    }
    /* The same keys again, and each with its id and source swapped. */
    for (int i = 0; i < K; i++) {
        rows[i] = ut_row(bus.id, t0, keys[i], "x");
        rows[i].source = keys[(i + 1) % K];
        rows[K + i] = ut_row(bus.id, t0, keys[(i + 1) % K], "x");
        rows[K + i].source = keys[i];
    }
    assert_int_equal(eb_store_events_append(f->db, rows, 2 * K), EB_OK);
    for (int i = 0; i < K; i++) {
        if (!rows[i].duplicate || rows[i].seq != i + 1)
            print_error("key %d \"%s\": duplicate %d seq %lld\n", i, keys[i], rows[i].duplicate,
                        (long long)rows[i].seq);
        assert_true(rows[i].duplicate);
        assert_int_equal(rows[i].seq, i + 1);
        assert_false(rows[K + i].duplicate);
        assert_int_equal(rows[K + i].seq, K + i + 1);
    }
}

static void test_events_dedup_window(void **state)
{
    struct ut_db *f = *state;
    int64_t tid = ut_tenant(f, "window-tenant"), t0 = eb_now_wall_us(), removed = -1;
    struct eb_bus_rec off = new_bus_window(f, tid, "off", 0), on = new_bus_window(f, tid, "on", 60);
    struct eb_append_row rows[2];
    char sql[256];

    /* Window 0: no deduplication at all. */
    rows[0] = ut_row(off.id, t0, "same", "1");
    rows[1] = ut_row(off.id, t0, "same", "2");
    assert_int_equal(eb_store_events_append(f->db, rows, 2), EB_OK);
    assert_false(rows[0].duplicate);
    assert_false(rows[1].duplicate);
    assert_int_equal(rows[1].seq, 2);
    assert_int_equal(eb_store_events_append(f->db, rows, 1), EB_OK);
    assert_false(rows[0].duplicate);
    assert_int_equal(rows[0].seq, 3);

    /* Past the window a (source, id) is new again and remembered anew. */
    rows[0] = ut_row(on.id, t0, "k", "1");
    assert_int_equal(eb_store_events_append(f->db, rows, 1), EB_OK);
    assert_int_equal(rows[0].seq, 1);
    snprintf(sql, sizeof sql,
             "UPDATE event_dedup SET expires_at = now() - interval '1 second' WHERE bus_id = %lld",
             (long long)on.id);
    ut_sql_ok(f->raw, sql);
    assert_int_equal(eb_store_events_append(f->db, rows, 1), EB_OK);
    assert_false(rows[0].duplicate);
    assert_int_equal(rows[0].seq, 2);
    assert_int_equal(eb_store_events_append(f->db, rows, 1), EB_OK);
    assert_true(rows[0].duplicate);
    assert_int_equal(rows[0].seq, 2);

    /* Expired entries are removed in batches of at most limit. */
    rows[0] = ut_row(on.id, t0, "k2", "2");
    rows[1] = ut_row(on.id, t0, "k3", "3");
    assert_int_equal(eb_store_events_append(f->db, rows, 2), EB_OK);
    ut_sql_ok(f->raw, sql);
    assert_int_equal(eb_store_dedup_expire(f->db, 2, &removed), EB_OK);
    assert_int_equal(removed, 2);
    assert_int_equal(eb_store_dedup_expire(f->db, 2, &removed), EB_OK);
    assert_true(removed >= 1); /* k3, plus any other test's expired rows */
    while (removed > 0)
        assert_int_equal(eb_store_dedup_expire(f->db, 100, &removed), EB_OK);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM event_dedup WHERE bus_id = %lld",
             (long long)on.id);
    assert_int_equal(ut_sql_int(f->raw, sql), 0);
}

/* Appenders racing with the same (source, id) pairs: each pair is stored
 * once, and every appender is told the same sequence for it. */
#define RACERS 8
#define RACE_IDS 20

struct racer {
    const char *url;
    int64_t bus_id;
    int64_t seqs[RACE_IDS];
    int fresh, failures;
};

static void *race_worker(void *arg)
{
    struct racer *w = arg;
    eb_db *db = eb_db_open(w->url);

    for (int b = 0; b < RACE_IDS; b += 5) {
        struct eb_append_row rows[5];
        char ids[5][16];
        for (int i = 0; i < 5; i++) {
            snprintf(ids[i], sizeof ids[i], "race-%d", b + i);
            rows[i] = ut_row(w->bus_id, eb_now_wall_us(), ids[i], ids[i]);
        }
        if (eb_store_events_append(db, rows, 5) != EB_OK) {
            w->failures++;
            continue;
        }
        for (int i = 0; i < 5; i++) {
            if (rows[i].status != EB_OK)
                w->failures++;
            if (!rows[i].duplicate)
                w->fresh++;
            w->seqs[b + i] = rows[i].seq;
        }
    }
    eb_db_close(db);
    return NULL;
}

static void test_events_dedup_concurrent(void **state)
{
    struct ut_db *f = *state;
    int64_t tid = ut_tenant(f, "race-tenant"), head;
    struct eb_bus_rec bus = new_bus_window(f, tid, "race", 300);
    static struct racer w[RACERS];
    pthread_t th[RACERS];
    int fresh = 0;

    for (int i = 0; i < RACERS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].url = f->url;
        w[i].bus_id = bus.id;
        assert_int_equal(pthread_create(&th[i], NULL, race_worker, &w[i]), 0);
    }
    for (int i = 0; i < RACERS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < RACERS; i++) {
        assert_int_equal(w[i].failures, 0);
        fresh += w[i].fresh;
        for (int k = 0; k < RACE_IDS; k++)
            assert_int_equal(w[i].seqs[k], w[0].seqs[k]);
    }
    assert_int_equal(fresh, RACE_IDS);
    assert_int_equal(eb_store_events_head(f->db, bus.id, &head), EB_OK);
    assert_int_equal(head, RACE_IDS);
    assert_int_equal(count_events(f, bus.id), RACE_IDS);
}

/* --- The ordering property --------------------------------------------------- */

#define APPENDERS 8
#define BATCHES 20
#define BATCH 5
#define TOTAL (APPENDERS * BATCHES * BATCH)

struct appender {
    const char *url;
    int64_t bus_id;
    int index;
    int64_t seqs[BATCHES * BATCH];
    int failures;     /* statuses other than EB_OK */
    int not_in_order; /* a batch not consecutive, or below an earlier one */
};

static void *append_worker(void *arg)
{
    struct appender *w = arg;
    eb_db *db = eb_db_open(w->url);
    int64_t last = 0;

    for (int b = 0; b < BATCHES; b++) {
        struct eb_append_row rows[BATCH];
        char bodies[BATCH][32];
        for (int i = 0; i < BATCH; i++) {
            snprintf(bodies[i], sizeof bodies[i], "%d:%d", w->index, b * BATCH + i);
            rows[i] = ut_row(w->bus_id, eb_now_wall_us(), bodies[i], bodies[i]);
        }
        if (eb_store_events_append(db, rows, BATCH) != EB_OK) {
            w->failures++;
            continue;
        }
        for (int i = 0; i < BATCH; i++) {
            if (rows[i].status != EB_OK)
                w->failures++;
            if (rows[i].seq != rows[0].seq + i || rows[i].seq <= last)
                w->not_in_order++;
            w->seqs[b * BATCH + i] = rows[i].seq;
        }
        last = rows[BATCH - 1].seq;
    }
    eb_db_close(db);
    return NULL;
}

struct reader {
    const char *url;
    int64_t bus_id;
    int64_t last;
    int gaps; /* a read that skipped a sequence: a later commit seen first */
    int errors;
};

/* Follows the log while the appenders run: every read must continue
 * exactly where the previous one stopped. */
static void *read_worker(void *arg)
{
    struct reader *r = arg;
    eb_db *db = eb_db_open(r->url);
    int64_t deadline = eb_now_mono_us() + 60LL * 1000000;

    while (r->last < TOTAL && eb_now_mono_us() < deadline) {
        struct eb_event_rec *ev = NULL;
        size_t n = 0;
        if (eb_store_events_read(db, r->bus_id, r->last, 1000, &ev, &n) != EB_OK) {
            r->errors++;
            break;
        }
        for (size_t i = 0; i < n; i++) {
            if (ev[i].seq != r->last + 1)
                r->gaps++;
            r->last = ev[i].seq;
            free(ev[i].body);
        }
        free(ev);
    }
    eb_db_close(db);
    return NULL;
}

static void test_concurrent_appenders_ordering(void **state)
{
    struct ut_db *f = *state;
    int64_t tid = ut_tenant(f, "order-tenant");
    struct eb_bus_rec bus = ut_bus(f, tid, "ordered");
    static struct appender w[APPENDERS];
    struct reader rd = {.url = f->url, .bus_id = bus.id};
    pthread_t th[APPENDERS], rth;
    static unsigned char seen[TOTAL + 1];
    struct eb_event_rec *ev;
    int64_t head;
    size_t n;

    assert_int_equal(pthread_create(&rth, NULL, read_worker, &rd), 0);
    for (int i = 0; i < APPENDERS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].url = f->url;
        w[i].bus_id = bus.id;
        w[i].index = i;
        assert_int_equal(pthread_create(&th[i], NULL, append_worker, &w[i]), 0);
    }
    for (int i = 0; i < APPENDERS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(pthread_join(rth, NULL), 0);

    memset(seen, 0, sizeof seen);
    for (int i = 0; i < APPENDERS; i++) {
        assert_int_equal(w[i].failures, 0);
        assert_int_equal(w[i].not_in_order, 0);
        for (int k = 0; k < BATCHES * BATCH; k++) {
            assert_in_range(w[i].seqs[k], 1, TOTAL);
            assert_int_equal(seen[w[i].seqs[k]], 0); /* no sequence handed out twice */
            seen[w[i].seqs[k]] = 1;
        }
    }
    assert_int_equal(rd.errors, 0);
    assert_int_equal(rd.gaps, 0);
    assert_int_equal(rd.last, TOTAL);

    assert_int_equal(eb_store_events_head(f->db, bus.id, &head), EB_OK);
    assert_int_equal(head, TOTAL);
    read_all(f->db, bus.id, 0, TOTAL + 10, &ev, &n);
    assert_int_equal(n, TOTAL);
    for (size_t k = 0; k < n; k++) {
        int wi = -1, idx = -1;
        assert_int_equal(ev[k].seq, (int64_t)k + 1);
        /* The stored body is the row that was given this sequence. */
        assert_true(ev[k].body_len < 32);
        {
            char body[32];
            memcpy(body, ev[k].body, ev[k].body_len);
            body[ev[k].body_len] = '\0';
            assert_int_equal(sscanf(body, "%d:%d", &wi, &idx), 2);
        }
        assert_in_range(wi, 0, APPENDERS - 1);
        assert_in_range(idx, 0, BATCHES * BATCH - 1);
        assert_int_equal(w[wi].seqs[idx], ev[k].seq);
    }
    free_events(ev, n);
}

static int setup_db(void **state)
{
    return ut_db_setup(state, "store_events");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events_append_read),
        cmocka_unit_test(test_events_binary_bodies),
        cmocka_unit_test(test_events_large_batch),
        cmocka_unit_test(test_events_before_time),
        cmocka_unit_test(test_events_read_back),
        cmocka_unit_test(test_notifications),
        cmocka_unit_test(test_events_dedup),
        cmocka_unit_test(test_events_dedup_awkward_keys),
        cmocka_unit_test(test_events_dedup_window),
        cmocka_unit_test(test_events_dedup_concurrent),
        cmocka_unit_test(test_concurrent_appenders_ordering),
    };

    return cmocka_run_group_tests(tests, setup_db, ut_db_teardown);
}
