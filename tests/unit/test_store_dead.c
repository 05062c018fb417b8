/* Unit tests for seek, dead letters and the maintenance sweep of durable
 * subscriptions against a real PostgreSQL
 * (migrations/0010_dead_letters_seek.sql, server/store_dead.c): seeks to
 * each kind of position, below the retention, clearing the outstanding rows
 * and changing the epoch; pages of dead letters with their events;
 * redrive and purge by sequences and reason, and the claim taking redriven
 * ones back; the sweep dead-lettering rows
 * nobody claims and removing dead letters of expired events. Time moves
 * through the now_us parameters (p_now), never by waiting.
 *
 * Outstanding rows are written with SQL, as claims would leave them, so
 * that each rule is tested on its own.
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

#include "db_fixture.h"
#include "store.h"
#include "store_durable.h"
#include "util.h"

#define SEC_US 1000000LL
#define HOUR_US (3600 * SEC_US)

/* --- Helpers ------------------------------------------------------------- */

/* A bus of its own for each test, with a retention of hours. */
static struct eb_bus_rec new_bus(struct ut_db *f, const char *name, int hours)
{
    struct eb_tenant_rec t;
    struct eb_bus_rec b;

    if (eb_store_tenant_get(f->db, "dead", &t) != EB_OK)
        assert_int_equal(eb_store_tenant_insert(f->db, "dead", "", &t), EB_OK);
    assert_int_equal(eb_store_bus_insert(f->db, t.id, name, hours, 300, &b), EB_OK);
    return b;
}

/* A rule with one subscription target `name` on the bus, its limits set
 * (0: default), and its subscription row (made here when the rule insert
 * does not make it). Returns the subscription's id. */
static int64_t new_sub(struct ut_db *f, int64_t bus_id, const char *name, int max_attempts,
                       int max_age_s)
{
    struct eb_target_rec t = {EB_TARGET_SUBSCRIPTION, (char *)name, {0}};
    struct eb_rule_rec r;
    const char *conflict = NULL;
    char rule[80];

    memset(&r, 0, sizeof r);
    snprintf(rule, sizeof rule, "r-%s", name);
    eb_strlcpy(r.name, rule, sizeof r.name);
    r.pattern = (char *)"{}";
    r.description = (char *)"";
    r.enabled = true;
    r.targets = &t;
    r.ntargets = 1;
    assert_int_equal(eb_store_rule_insert(f->db, bus_id, &r, &conflict), EB_OK);
    if (max_attempts)
        ut_sql_okf(f->raw, "UPDATE targets SET max_attempts = %d WHERE bus_id = %lld"
                           " AND subscription = '%s'",
                   max_attempts, (long long)bus_id, name);
    if (max_age_s)
        ut_sql_okf(f->raw, "UPDATE targets SET max_age_s = %d WHERE bus_id = %lld"
                           " AND subscription = '%s'",
                   max_age_s, (long long)bus_id, name);
    ut_sql_okf(f->raw,
               "INSERT INTO subscriptions (bus_id, name, frontier, epoch)"
               " SELECT id, '%s', next_seq - 1, 42 FROM buses WHERE id = %lld"
               " ON CONFLICT (bus_id, name) DO NOTHING",
               name, (long long)bus_id);
    ut_sql_okf(f->raw,
               "INSERT INTO sub_acked (sub_id) SELECT id FROM subscriptions WHERE bus_id = %lld"
               " AND name = '%s' ON CONFLICT DO NOTHING",
               (long long)bus_id, name);
    return ut_sql_intf(f->raw, "SELECT id FROM subscriptions WHERE bus_id = %lld AND name = '%s'",
                       (long long)bus_id, name);
}

/* Appends n events (bodies "body-<i>") received at received_us; returns
 * the first sequence. */
static int64_t append_at(struct ut_db *f, int64_t bus_id, int64_t received_us, int n)
{
    static int serial;
    struct eb_append_row rows[16];
    char ids[16][32];

    assert_true(n > 0 && n <= 16);
    for (int i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "d%d", ++serial);
        rows[i] = ut_row(bus_id, received_us, ids[i], "body-of-event");
    }
    assert_int_equal(eb_store_events_append(f->db, rows, (size_t)n), EB_OK);
    for (int i = 1; i < n; i++)
        assert_int_equal(rows[i].seq, rows[0].seq + i);
    return rows[0].seq;
}

/* An outstanding row as a claim leaves it: attempt deliveries made, due at
 * due_us, received at received_us; counted in claimed. */
static void pending(struct ut_db *f, int64_t sub, int64_t seq, int attempt, int64_t due_us,
                    int64_t received_us, const char *pkey, bool blocked, const char *error)
{
    char key[128], err[128];

    snprintf(key, sizeof key, pkey ? "hashtextextended('%s', 0)" : "NULL", pkey);
    snprintf(err, sizeof err, error ? "'%s'" : "NULL", error);
    ut_sql_okf(f->raw,
               "INSERT INTO sub_pending (sub_id, seq, pkey, attempt, owner, due_at, blocked,"
               " received_at, last_error) VALUES (%lld, %lld, %s, %d, %s,"
               " to_timestamp(%lld / 1000000.0), %s, to_timestamp(%lld / 1000000.0), %s)",
               (long long)sub, (long long)seq, key, attempt, attempt ? "7" : "NULL",
               (long long)due_us, blocked ? "true" : "false", (long long)received_us, err);
    ut_sql_okf(f->raw, "UPDATE subscriptions SET claimed = claimed + 1 WHERE id = %lld",
               (long long)sub);
}

/* A dead letter of event seq of the bus (reason 1 or 2), with the event's
 * expiry, or an hour ago when the event does not exist. */
static void dead(struct ut_db *f, int64_t sub, int64_t bus_id, int64_t seq, int reason)
{
    ut_sql_okf(f->raw,
               "INSERT INTO dead_letters (sub_id, seq, bus_id, reason, last_error, attempts,"
               " expires_at, created_at) VALUES (%lld, %lld, %lld, %d, 'boom %lld', 5,"
               " COALESCE((SELECT expires_at FROM events WHERE bus_id = %lld AND seq = %lld),"
               " now() - interval '1 hour'), now())",
               (long long)sub, (long long)seq, (long long)bus_id, reason, (long long)seq,
               (long long)bus_id, (long long)seq);
}

static int64_t count_dead(struct ut_db *f, int64_t sub)
{
    return ut_sql_intf(f->raw, "SELECT count(*) FROM dead_letters WHERE sub_id = %lld",
                       (long long)sub);
}

static int64_t count_pending(struct ut_db *f, int64_t sub)
{
    return ut_sql_intf(f->raw, "SELECT count(*) FROM sub_pending WHERE sub_id = %lld",
                       (long long)sub);
}

static int64_t frontier(struct ut_db *f, int64_t sub)
{
    return ut_sql_intf(f->raw, "SELECT frontier FROM subscriptions WHERE id = %lld",
                       (long long)sub);
}

/* The next notification on c, waiting up to 10 s for it to arrive; NULL
 * when none did. Free with PQfreemem(). */
static PGnotify *wait_notify(PGconn *c)
{
    for (int i = 0; i < 100; i++) {
        struct pollfd p = {PQsocket(c), POLLIN, 0};
        PGnotify *n;

        assert_int_equal(PQconsumeInput(c), 1);
        if ((n = PQnotifies(c)) != NULL)
            return n;
        poll(&p, 1, 100);
    }
    return NULL;
}

/* --- Seek ---------------------------------------------------------------- */

/* Each target resolves to the sequence a Subscribe from that position
 * would start at, and the frontier lands just before it. */
static void test_seek_each_way(void **state)
{
    struct ut_db *f = *state;
    struct eb_bus_rec bus = new_bus(f, "seekbus", 168);
    int64_t sub = new_sub(f, bus.id, "s-seek", 0, 0);
    int64_t now = eb_now_wall_us();
    int64_t first = append_at(f, bus.id, now - 3 * HOUR_US, 3);
    int64_t later = append_at(f, bus.id, now - HOUR_US, 2);
    int64_t next = 0, oldest = 0;

    assert_int_equal(later, first + 3);
    assert_int_equal(eb_store_sub_seek(f->db, sub, EB_SEEK_EARLIEST, 0, 0, 0, &next, &oldest),
                     EB_OK);
    assert_int_equal(next, first);
    assert_int_equal(oldest, first);
    assert_int_equal(frontier(f, sub), first - 1);

    assert_int_equal(eb_store_sub_seek(f->db, sub, EB_SEEK_LATEST, 0, 0, 0, &next, &oldest),
                     EB_OK);
    assert_int_equal(next, later + 2);
    assert_int_equal(frontier(f, sub), later + 1);

    assert_int_equal(
        eb_store_sub_seek(f->db, sub, EB_SEEK_SEQUENCE, first + 1, 0, 0, &next, &oldest), EB_OK);
    assert_int_equal(next, first + 1);
    assert_int_equal(frontier(f, sub), first);

    /* A time between the two batches starts at the second; one before
     * everything at the oldest; one after everything at the head. */
    assert_int_equal(eb_store_sub_seek(f->db, sub, EB_SEEK_TIME, 0, now - 2 * HOUR_US, 0, &next,
                                       &oldest),
                     EB_OK);
    assert_int_equal(next, later);
    assert_int_equal(eb_store_sub_seek(f->db, sub, EB_SEEK_TIME, 0, now - 300 * HOUR_US, 0,
                                       &next, &oldest),
                     EB_OK);
    assert_int_equal(next, first);
    assert_int_equal(eb_store_sub_seek(f->db, sub, EB_SEEK_TIME, 0, now + HOUR_US, 0, &next,
                                       &oldest),
                     EB_OK);
    assert_int_equal(next, later + 2);

    /* A subscription that does not exist. */
    assert_int_equal(eb_store_sub_seek(f->db, sub + 1000, EB_SEEK_LATEST, 0, 0, 0, &next,
                                       &oldest),
                     EB_ENOTFOUND);
}

/* Below the oldest retained sequence is EB_ERANGE naming it, and changes
 * nothing; the oldest itself is fine. Time moves through now_us. */
static void test_seek_below_retention(void **state)
{
    struct ut_db *f = *state;
    struct eb_bus_rec bus = new_bus(f, "seekret", 1);
    int64_t sub = new_sub(f, bus.id, "s-ret", 0, 0);
    int64_t now = eb_now_wall_us();
    int64_t first = append_at(f, bus.id, now - HOUR_US / 2, 2); /* expire in 30 min */
    int64_t second = append_at(f, bus.id, now, 2);              /* in an hour */
    int64_t later = now + 45 * 60 * SEC_US;
    int64_t next = -1, oldest = 0, epoch;

    pending(f, sub, second, 1, now + HOUR_US, now, NULL, false, NULL);
    epoch = ut_sql_intf(f->raw, "SELECT epoch FROM subscriptions WHERE id = %lld", (long long)sub);
    assert_int_equal(eb_store_sub_seek(f->db, sub, EB_SEEK_SEQUENCE, first + 1, 0, later, &next,
                                       &oldest),
                     EB_ERANGE);
    assert_int_equal(oldest, second);
    assert_int_equal(next, -1);
    assert_int_equal(count_pending(f, sub), 1);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT epoch FROM subscriptions WHERE id = %lld",
                                 (long long)sub),
                     epoch);

    assert_int_equal(eb_store_sub_seek(f->db, sub, EB_SEEK_SEQUENCE, second, 0, later, &next,
                                       &oldest),
                     EB_OK);
    assert_int_equal(next, second);
    /* EARLIEST and an old time start at the oldest retained, not before. */
    assert_int_equal(eb_store_sub_seek(f->db, sub, EB_SEEK_EARLIEST, 0, 0, later, &next, &oldest),
                     EB_OK);
    assert_int_equal(next, second);
    assert_int_equal(eb_store_sub_seek(f->db, sub, EB_SEEK_TIME, 0, now - HOUR_US, later, &next,
                                       &oldest),
                     EB_OK);
    assert_int_equal(next, second);
    /* Without the time moved, the first events are still there. */
    assert_int_equal(eb_store_sub_seek(f->db, sub, EB_SEEK_EARLIEST, 0, 0, 0, &next, &oldest),
                     EB_OK);
    assert_int_equal(next, first);
}

/* A seek deletes the outstanding rows and freed keys, counts nothing
 * outstanding, draws a new epoch, keeps the dead letters, and notifies
 * "cebus_subs" with the subscription id. */
static void test_seek_clears_rows(void **state)
{
    struct ut_db *f = *state;
    struct eb_bus_rec bus = new_bus(f, "seekclr", 168);
    int64_t sub = new_sub(f, bus.id, "s-clr", 0, 0);
    int64_t now = eb_now_wall_us();
    int64_t first = append_at(f, bus.id, now, 4);
    int64_t next = 0, oldest = 0, epoch;
    PGconn *listener = PQconnectdb(f->url);
    PGnotify *note;
    char id[24];

    assert_int_equal(PQstatus(listener), CONNECTION_OK);
    ut_sql_ok(listener, "LISTEN cebus_subs");
    for (int i = 0; i < 3; i++)
        pending(f, sub, first + i, 1, now + HOUR_US, now, "k", i > 0, NULL);
    dead(f, sub, bus.id, first + 3, EB_DEAD_MAX_ATTEMPTS);
    ut_sql_okf(f->raw, "INSERT INTO sub_freed VALUES (%lld, 99)", (long long)sub);
    ut_sql_okf(f->raw, "UPDATE sub_acked SET acked = 11 WHERE sub_id = %lld", (long long)sub);
    epoch = ut_sql_intf(f->raw, "SELECT epoch FROM subscriptions WHERE id = %lld", (long long)sub);

    assert_int_equal(eb_store_sub_seek(f->db, sub, EB_SEEK_EARLIEST, 0, 0, 0, &next, &oldest),
                     EB_OK);
    assert_int_equal(next, first);
    assert_int_equal(count_pending(f, sub), 0);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(*) FROM sub_freed WHERE sub_id = %lld",
                                 (long long)sub),
                     0);
    assert_int_equal(ut_sql_intf(f->raw,
                                 "SELECT s.claimed - a.acked FROM subscriptions s JOIN sub_acked a"
                                 " ON a.sub_id = s.id WHERE s.id = %lld",
                                 (long long)sub),
                     0);
    assert_true(ut_sql_intf(f->raw, "SELECT epoch FROM subscriptions WHERE id = %lld",
                            (long long)sub) != epoch);
    assert_int_equal(count_dead(f, sub), 1);

    note = wait_notify(listener);
    assert_non_null(note);
    assert_string_equal(note->relname, "cebus_subs");
    snprintf(id, sizeof id, "%lld", (long long)sub);
    assert_string_equal(note->extra, id);
    PQfreemem(note);
    PQfinish(listener);
}

/* --- Dead letters ----------------------------------------------------------- */

/* Pages by sequence, with the event's body while it is retained and
 * without it once expired; another subscription's dead letters never show. */
static void test_dead_list_pages(void **state)
{
    struct ut_db *f = *state;
    struct eb_bus_rec bus = new_bus(f, "deadlist", 168);
    int64_t sub = new_sub(f, bus.id, "s-list", 0, 0);
    int64_t other = new_sub(f, bus.id, "s-other", 0, 0);
    int64_t first = append_at(f, bus.id, eb_now_wall_us(), 5);
    struct eb_dead_rec *recs = NULL;
    size_t n = 0;

    for (int i = 0; i < 5; i++)
        dead(f, sub, bus.id, first + i, i % 2 ? EB_DEAD_MAX_AGE : EB_DEAD_MAX_ATTEMPTS);
    dead(f, sub, bus.id, first + 100, EB_DEAD_MAX_ATTEMPTS); /* no such event: expired */
    dead(f, other, bus.id, first, EB_DEAD_MAX_ATTEMPTS);

    assert_int_equal(eb_store_dead_list(f->db, sub, 0, 2, &recs, &n), EB_OK);
    assert_int_equal(n, 2);
    assert_int_equal(recs[0].seq, first);
    assert_int_equal(recs[0].reason, EB_DEAD_MAX_ATTEMPTS);
    assert_int_equal(recs[1].reason, EB_DEAD_MAX_AGE);
    assert_int_equal(recs[0].attempts, 5);
    assert_non_null(recs[0].last_error);
    assert_true(strncmp(recs[0].last_error, "boom ", 5) == 0);
    assert_true(recs[0].created_us > 0);
    assert_int_equal(recs[0].body_len, strlen("body-of-event"));
    assert_memory_equal(recs[0].body, "body-of-event", recs[0].body_len);
    eb_dead_recs_free(recs, n);

    assert_int_equal(eb_store_dead_list(f->db, sub, first + 1, 10, &recs, &n), EB_OK);
    assert_int_equal(n, 4);
    assert_int_equal(recs[0].seq, first + 2);
    assert_int_equal(recs[3].seq, first + 100);
    assert_null(recs[3].body);
    assert_int_equal(recs[3].body_len, 0);
    eb_dead_recs_free(recs, n);

    assert_int_equal(eb_store_dead_list(f->db, sub, first + 100, 10, &recs, &n), EB_OK);
    assert_int_equal(n, 0);
    eb_dead_recs_free(recs, n);
    eb_dead_recs_free(NULL, 0);
}

/* Redrive marks the selected dead letters (by sequences, by reason, or
 * all), counts only those it marked, and skips those of expired events. */
static void test_dead_redrive(void **state)
{
    struct ut_db *f = *state;
    struct eb_bus_rec bus = new_bus(f, "redrive", 168);
    int64_t sub = new_sub(f, bus.id, "s-redrive", 0, 0);
    int64_t first = append_at(f, bus.id, eb_now_wall_us(), 6);
    int64_t seqs[2] = {first + 1, first + 4};
    struct eb_dead_filter by_seq = {seqs, 2, 0}, by_reason = {NULL, 0, EB_DEAD_MAX_AGE},
                          all = {NULL, 0, 0};
    int64_t count = -1;

    for (int i = 0; i < 6; i++)
        dead(f, sub, bus.id, first + i, i < 3 ? EB_DEAD_MAX_ATTEMPTS : EB_DEAD_MAX_AGE);
    dead(f, sub, bus.id, first + 100, EB_DEAD_MAX_AGE); /* expired event */

    assert_int_equal(eb_store_dead_redrive(f->db, sub, &by_seq, &count), EB_OK);
    assert_int_equal(count, 2);
    assert_int_equal(ut_sql_intf(f->raw,
                                 "SELECT count(*) FROM dead_letters WHERE sub_id = %lld AND redrive"
                                 " AND seq IN (%lld, %lld)",
                                 (long long)sub, (long long)seqs[0], (long long)seqs[1]),
                     2);
    /* first + 4 is marked already: two more of reason max_age. */
    assert_int_equal(eb_store_dead_redrive(f->db, sub, &by_reason, &count), EB_OK);
    assert_int_equal(count, 2);
    assert_int_equal(eb_store_dead_redrive(f->db, sub, &all, &count), EB_OK);
    assert_int_equal(count, 2); /* first, first + 2 */
    assert_int_equal(eb_store_dead_redrive(f->db, sub, &all, &count), EB_OK);
    assert_int_equal(count, 0);
    assert_int_equal(ut_sql_intf(f->raw,
                                 "SELECT count(*) FROM dead_letters WHERE sub_id = %lld AND"
                                 " redrive",
                                 (long long)sub),
                     6);
    assert_false(ut_sql_intf(f->raw,
                             "SELECT redrive::int FROM dead_letters WHERE sub_id = %lld AND seq ="
                             " %lld",
                             (long long)sub, (long long)(first + 100)));
}

/* The next claim takes redriven dead letters back as outstanding rows
 * with attempt 0 (then delivers them as attempt 1), and leaves the others;
 * an ack id from before a seek no longer applies. */
static void test_redrive_then_claim(void **state)
{
    struct ut_db *f = *state;
    struct eb_bus_rec bus = new_bus(f, "redclaim", 168);
    int64_t sub = new_sub(f, bus.id, "s-redclaim", 0, 0);
    int64_t first = append_at(f, bus.id, eb_now_wall_us(), 3);
    int64_t seqs[1] = {first + 1};
    struct eb_dead_filter one = {seqs, 1, 0};
    struct eb_sub_claim_in in;
    struct eb_sub_claim_out out;
    struct eb_ack_item ack;
    int64_t count = 0, next = 0, oldest = 0, front;

    for (int i = 0; i < 3; i++)
        dead(f, sub, bus.id, first + i, EB_DEAD_MAX_ATTEMPTS);
    assert_int_equal(eb_store_dead_redrive(f->db, sub, &one, &count), EB_OK);
    assert_int_equal(count, 1);

    front = frontier(f, sub);
    memset(&in, 0, sizeof in);
    in.sub_id = sub;
    in.rule_version = ut_sql_intf(f->raw, "SELECT version FROM rules WHERE name = 'r-s-redclaim'");
    in.from_seq = in.to_seq = front;
    in.owner = 5;
    in.room = 0;
    memset(&out, 0, sizeof out);
    assert_int_equal(eb_store_sub_claim(f->db, &in, &out), EB_OK);
    free(out.leases);
    assert_int_equal(count_dead(f, sub), 2);
    assert_int_equal(ut_sql_intf(f->raw,
                                 "SELECT attempt FROM sub_pending WHERE sub_id = %lld AND seq ="
                                 " %lld",
                                 (long long)sub, (long long)(first + 1)),
                     0);

    in.room = 10;
    memset(&out, 0, sizeof out);
    assert_int_equal(eb_store_sub_claim(f->db, &in, &out), EB_OK);
    assert_int_equal(out.nleases, 1);
    assert_int_equal(out.leases[0].seq, first + 1);
    assert_int_equal(out.leases[0].attempt, 1);
    free(out.leases);

    /* A seek cancels the lease: its ack id (old epoch) changes nothing. */
    memset(&ack, 0, sizeof ack);
    ack.sub_id = sub;
    ack.epoch = out.epoch;
    ack.seq = first + 1;
    ack.attempt = 1;
    assert_int_equal(eb_store_sub_seek(f->db, sub, EB_SEEK_LATEST, 0, 0, 0, &next, &oldest),
                     EB_OK);
    assert_int_equal(eb_store_sub_ack(f->db, &ack, 1, NULL, 0), EB_OK);
    assert_false(ack.applied);
    assert_int_equal(count_pending(f, sub), 0);
    assert_int_equal(count_dead(f, sub), 2); /* dead letters stay */
}

/* Purge deletes the selected dead letters and nothing else. */
static void test_dead_purge(void **state)
{
    struct ut_db *f = *state;
    struct eb_bus_rec bus = new_bus(f, "purge", 168);
    int64_t sub = new_sub(f, bus.id, "s-purge", 0, 0);
    int64_t other = new_sub(f, bus.id, "s-keep", 0, 0);
    int64_t first = append_at(f, bus.id, eb_now_wall_us(), 6);
    int64_t seqs[3] = {first, first + 3, first + 77};
    struct eb_dead_filter by_seq = {seqs, 3, 0}, by_reason = {NULL, 0, EB_DEAD_MAX_ATTEMPTS},
                          both = {seqs + 1, 1, EB_DEAD_MAX_ATTEMPTS}, all = {NULL, 0, 0};
    int64_t count = -1;

    for (int i = 0; i < 6; i++) {
        dead(f, sub, bus.id, first + i, i % 2 ? EB_DEAD_MAX_AGE : EB_DEAD_MAX_ATTEMPTS);
        dead(f, other, bus.id, first + i, EB_DEAD_MAX_ATTEMPTS);
    }
    /* first + 3 has reason max_age: both filters must hold. */
    assert_int_equal(eb_store_dead_purge(f->db, sub, &both, &count), EB_OK);
    assert_int_equal(count, 0);
    assert_int_equal(eb_store_dead_purge(f->db, sub, &by_seq, &count), EB_OK);
    assert_int_equal(count, 2);
    assert_int_equal(eb_store_dead_purge(f->db, sub, &by_reason, &count), EB_OK);
    assert_int_equal(count, 2); /* first + 2, first + 4 */
    assert_int_equal(count_dead(f, sub), 2);
    assert_int_equal(eb_store_dead_purge(f->db, sub, &all, &count), EB_OK);
    assert_int_equal(count, 2);
    assert_int_equal(count_dead(f, sub), 0);
    assert_int_equal(count_dead(f, other), 6);
}

/* --- Sweep ------------------------------------------------------------------- */

/* Without any claim, the sweep dead-letters the due rows past max_attempts
 * or max_age, with the row's own last error or "ack deadline passed";
 * rows not due, blocked, or within their limits stay. The keys of the rows
 * removed are freed, claimed counts the removal, and a row whose event
 * expired is dropped rather than dead-lettered. */
static void test_sweep_dead_letters(void **state)
{
    struct ut_db *f = *state;
    struct eb_bus_rec bus = new_bus(f, "sweep", 168);
    int64_t sub = new_sub(f, bus.id, "s-sweep", 3, 600);
    int64_t now = eb_now_wall_us();
    int64_t first = append_at(f, bus.id, now, 7);
    int64_t dead_n = -1, expired = -1, claimed;

    /* 0: leased 3 times, lease ended: max_attempts, "ack deadline passed". */
    pending(f, sub, first, 3, now - SEC_US, now, "k1", false, NULL);
    /* 1: nacked on its third delivery: max_attempts, the Nack's error. */
    pending(f, sub, first + 1, 3, now - SEC_US, now, NULL, false, "bad payload");
    /* 2: received 11 minutes ago, due: max_age. */
    pending(f, sub, first + 2, 1, now - SEC_US, now - 660 * SEC_US, NULL, false, NULL);
    /* 3: past max_attempts but its lease runs: stays until it ends. */
    pending(f, sub, first + 3, 3, now + 30 * SEC_US, now, NULL, false, NULL);
    /* 4: blocked behind key k1: stays. */
    pending(f, sub, first + 4, 0, now - SEC_US, now - 660 * SEC_US, "k1", true, NULL);
    /* 5: due, within its limits: stays (a claim redelivers it). */
    pending(f, sub, first + 5, 2, now - SEC_US, now, NULL, false, NULL);
    /* An event that no longer exists: dropped, not dead-lettered. */
    pending(f, sub, first + 50, 3, now - SEC_US, now, NULL, false, NULL);
    claimed = ut_sql_intf(f->raw, "SELECT claimed FROM subscriptions WHERE id = %lld",
                          (long long)sub);

    assert_int_equal(eb_store_sub_sweep(f->db, now, &dead_n, &expired), EB_OK);
    assert_int_equal(dead_n, 3);
    assert_int_equal(count_pending(f, sub), 3);
    assert_int_equal(count_dead(f, sub), 3);
    assert_int_equal(ut_sql_intf(f->raw,
                                 "SELECT count(*) FROM dead_letters WHERE sub_id = %lld AND seq ="
                                 " %lld"
                                 " AND reason = 1 AND attempts = 3"
                                 " AND last_error = 'ack deadline passed' AND NOT redrive",
                                 (long long)sub, (long long)first),
                     1);
    assert_int_equal(ut_sql_intf(f->raw,
                                 "SELECT count(*) FROM dead_letters WHERE sub_id = %lld AND seq ="
                                 " %lld"
                                 " AND reason = 1 AND last_error = 'bad payload'",
                                 (long long)sub, (long long)(first + 1)),
                     1);
    assert_int_equal(ut_sql_intf(f->raw,
                                 "SELECT count(*) FROM dead_letters WHERE sub_id = %lld AND seq ="
                                 " %lld"
                                 " AND reason = 2 AND attempts = 1",
                                 (long long)sub, (long long)(first + 2)),
                     1);
    /* The dead letter carries the event's expiry, for its own removal. */
    assert_int_equal(ut_sql_intf(f->raw,
                                 "SELECT count(*) FROM dead_letters d JOIN events e ON"
                                 " e.bus_id = d.bus_id AND e.seq = d.seq"
                                 " AND e.expires_at = d.expires_at WHERE d.sub_id = %lld",
                                 (long long)sub),
                     3);
    assert_int_equal(ut_sql_intf(f->raw,
                                 "SELECT count(*) FROM sub_freed WHERE sub_id = %lld"
                                 " AND pkey = hashtextextended('k1', 0)",
                                 (long long)sub),
                     1);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT claimed FROM subscriptions WHERE id = %lld",
                                 (long long)sub),
                     claimed - 4);

    /* Nothing more to do at the same time; the running lease ends later. */
    assert_int_equal(eb_store_sub_sweep(f->db, now, &dead_n, &expired), EB_OK);
    assert_int_equal(dead_n, 0);
    assert_int_equal(eb_store_sub_sweep(f->db, now + 31 * SEC_US, &dead_n, &expired), EB_OK);
    assert_int_equal(dead_n, 1);
    assert_int_equal(count_dead(f, sub), 4);
}

/* Dead letters go with their events: the sweep deletes those whose event
 * has expired, across subscriptions, and leaves the others. */
static void test_sweep_expired_dead_letters(void **state)
{
    struct ut_db *f = *state;
    struct eb_bus_rec shortb = new_bus(f, "sweepexp", 1);
    struct eb_bus_rec longb = new_bus(f, "sweepkeep", 168);
    int64_t s1 = new_sub(f, shortb.id, "s-exp", 0, 0);
    int64_t s2 = new_sub(f, longb.id, "s-keep2", 0, 0);
    int64_t now = eb_now_wall_us();
    int64_t a = append_at(f, shortb.id, now, 2);
    int64_t b = append_at(f, longb.id, now, 2);
    int64_t dead_n = -1, expired = -1;
    struct eb_dead_rec *recs = NULL;
    size_t n = 0;

    dead(f, s1, shortb.id, a, EB_DEAD_MAX_ATTEMPTS);
    dead(f, s1, shortb.id, a + 1, EB_DEAD_MAX_ATTEMPTS);
    dead(f, s2, longb.id, b, EB_DEAD_MAX_ATTEMPTS);

    assert_int_equal(eb_store_sub_sweep(f->db, now, &dead_n, &expired), EB_OK);
    assert_int_equal(expired, 0);
    assert_int_equal(eb_store_sub_sweep(f->db, now + 2 * HOUR_US, &dead_n, &expired), EB_OK);
    assert_int_equal(expired, 2);
    assert_int_equal(count_dead(f, s1), 0);
    assert_int_equal(count_dead(f, s2), 1);
    assert_int_equal(eb_store_dead_list(f->db, s2, 0, 10, &recs, &n), EB_OK);
    assert_int_equal(n, 1);
    assert_non_null(recs[0].body);
    eb_dead_recs_free(recs, n);
}

/* One session sweeps at a time: while another holds the maintenance lock
 * a sweep does nothing. */
static void test_sweep_lock(void **state)
{
    struct ut_db *f = *state;
    struct eb_bus_rec bus = new_bus(f, "sweeplock", 168);
    int64_t sub = new_sub(f, bus.id, "s-lock", 1, 0);
    int64_t now = eb_now_wall_us();
    int64_t seq = append_at(f, bus.id, now, 1);
    int64_t dead_n = -1, expired = -1;
    PGconn *other = PQconnectdb(f->url);

    assert_int_equal(PQstatus(other), CONNECTION_OK);
    pending(f, sub, seq, 1, now - SEC_US, now, NULL, false, NULL);
    ut_sql_ok(other, "SELECT pg_advisory_lock(1667588725, 3)");
    assert_int_equal(eb_store_sub_sweep(f->db, now, &dead_n, &expired), EB_OK);
    assert_int_equal(dead_n, 0);
    assert_int_equal(count_pending(f, sub), 1);
    /* Unlocked explicitly: after PQfinish() the backend may hold it a
     * moment longer. */
    ut_sql_ok(other, "SELECT pg_advisory_unlock(1667588725, 3)");
    PQfinish(other);
    assert_int_equal(eb_store_sub_sweep(f->db, now, &dead_n, &expired), EB_OK);
    assert_true(dead_n >= 1);
    assert_int_equal(count_pending(f, sub), 0);
    assert_int_equal(count_dead(f, sub), 1);
}

static int setup_db(void **state)
{
    return ut_db_setup(state, "store_dead");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seek_each_way),
        cmocka_unit_test(test_seek_below_retention),
        cmocka_unit_test(test_seek_clears_rows),
        cmocka_unit_test(test_dead_list_pages),
        cmocka_unit_test(test_dead_redrive),
        cmocka_unit_test(test_redrive_then_claim),
        cmocka_unit_test(test_dead_purge),
        cmocka_unit_test(test_sweep_dead_letters),
        cmocka_unit_test(test_sweep_expired_dead_letters),
        cmocka_unit_test(test_sweep_lock),
    };

    return cmocka_run_group_tests(tests, setup_db, ut_db_teardown);
}
