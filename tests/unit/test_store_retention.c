/* Unit tests for retention against a real PostgreSQL
 * (migrations/0007_retention.sql, server/store_retention.c): partitions by
 * expiry created ahead, dropped whole once expired with time moved forward
 * through p_now, the default partition kept empty (rows found there moved
 * out), per-bus retention, the oldest retained sequence, reads that never
 * return an expired event, the maintenance lock, and the migration of an
 * existing event log.
 *
 * The process creates its own database on the cluster named by
 * CEBUS_TEST_DATABASE_URL and drops it at the end. Migrations come from
 * CEBUS_TEST_SOURCE_DIR/migrations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <libpq-fe.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db_fixture.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define HOUR_US (3600LL * 1000000)
#define DAY_US (24 * HOUR_US)

/* --- Helpers ------------------------------------------------------------- */

static struct eb_bus_rec new_bus(struct ut_db *f, const char *tenant, const char *name,
                                 int retention_hours)
{
    struct eb_tenant_rec t;
    struct eb_bus_rec b;

    if (eb_store_tenant_get(f->db, tenant, &t) != EB_OK)
        assert_int_equal(eb_store_tenant_insert(f->db, tenant, "", &t), EB_OK);
    assert_int_equal(eb_store_bus_insert(f->db, t.id, name, retention_hours, 300, &b), EB_OK);
    return b;
}

/* Appends n events to bus_id, received at received_us; returns the first
 * sequence. */
static int64_t append_at(struct ut_db *f, int64_t bus_id, int64_t received_us, int n)
{
    struct eb_append_row rows[16];
    char ids[16][32];

    assert_true(n > 0 && n <= 16);
    for (int i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "r%lld-%d", (long long)eb_now_wall_us(), i);
        memset(&rows[i], 0, sizeof rows[i]);
        rows[i].bus_id = bus_id;
        rows[i].received_us = received_us;
        rows[i].source = "/ret";
        rows[i].event_id = ids[i];
        rows[i].type = "t";
        rows[i].body = (const uint8_t *)"body";
        rows[i].body_len = 4;
    }
    assert_int_equal(eb_store_events_append(f->db, rows, (size_t)n), EB_OK);
    for (int i = 0; i < n; i++) {
        assert_int_equal(rows[i].status, EB_OK);
        assert_false(rows[i].duplicate);
        if (i > 0)
            assert_int_equal(rows[i].seq, rows[i - 1].seq + 1);
    }
    return rows[0].seq;
}

/* The sequences events_read returns for bus_id after after_seq. */
static size_t read_seqs(struct ut_db *f, int64_t bus_id, int64_t after_seq, int64_t *seqs,
                        size_t max)
{
    struct eb_event_rec *ev = NULL;
    size_t n = 0;

    assert_int_equal(eb_store_events_read(f->db, bus_id, after_seq, 100, &ev, &n), EB_OK);
    assert_true(n <= max);
    for (size_t i = 0; i < n; i++) {
        seqs[i] = ev[i].seq;
        free(ev[i].body);
    }
    free(ev);
    return n;
}

static int64_t partition_count(struct ut_db *f)
{
    return ut_sql_intf(f->raw,
                       "SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass"
                       " AND inhrelid::regclass::text ~ '^events_e[0-9]{8}$'");
}

/* Whether the day partition holding expiry time at_us exists. */
static bool partition_exists(struct ut_db *f, int64_t at_us)
{
    return ut_sql_intf(f->raw,
                       "SELECT (to_regclass('events_e' || to_char(to_timestamp(%lld / 1000000.0)"
                       " AT TIME ZONE 'UTC', 'YYYYMMDD')) IS NOT NULL)::int",
                       (long long)at_us) == 1;
}

static int64_t recorded_oldest(struct ut_db *f, int64_t bus_id)
{
    return ut_sql_intf(f->raw, "SELECT COALESCE((SELECT oldest_seq FROM event_retention"
                               " WHERE bus_id = %lld), 1)",
                       (long long)bus_id);
}

static struct eb_maintain_result maintain_ok(struct ut_db *f, int64_t now_us)
{
    struct eb_maintain_result r = {.created = -1, .dropped = -1};

    assert_int_equal(eb_store_partitions_maintain(f->db, now_us, &r), EB_OK);
    assert_false(r.skipped);
    assert_true(r.created >= 0 && r.dropped >= 0);
    return r;
}

/* --- Tests ---------------------------------------------------------------- */

/* Partitions exist ahead of the expiries of every retention in use, appends
 * land in them, and the default partition stays empty. */
static void test_partitions_ahead(void **state)
{
    struct ut_db *f = *state;
    struct eb_bus_rec week = new_bus(f, "ahead", "week", 168);
    struct eb_bus_rec hour = new_bus(f, "ahead", "hour", 1);
    int64_t now = eb_now_wall_us();
    struct eb_maintain_result r;

    /* Creating a bus made its retention's partitions at once. */
    assert_true(partition_exists(f, now + HOUR_US));
    assert_true(partition_exists(f, now + 168 * HOUR_US));
    r = maintain_ok(f, 0);
    assert_int_equal(r.dropped, 0);
    for (int64_t d = 0; d <= 2; d++) {
        assert_true(partition_exists(f, now + HOUR_US + d * DAY_US));
        assert_true(partition_exists(f, now + 168 * HOUR_US + d * DAY_US));
    }
    /* Not every day up to the longest retention: only those in use. */
    assert_false(partition_exists(f, now + 4 * DAY_US));
    /* Idempotent. */
    r = maintain_ok(f, 0);
    assert_int_equal(r.created, 0);

    append_at(f, week.id, now, 3);
    append_at(f, hour.id, now, 2);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(*) FROM events_default"), 0);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(*) FROM events WHERE bus_id = %lld"
                                         " AND expires_at = received_at + interval '168 hours'",
                                 (long long)week.id),
                     3);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(*) FROM events WHERE bus_id = %lld"
                                         " AND expires_at = received_at + interval '1 hour'",
                                 (long long)hour.id),
                     2);

    /* A week later, by the function's clock, the week's partitions for
     * then exist too. */
    r = maintain_ok(f, now + 7 * DAY_US);
    assert_true(r.created >= 1);
    assert_true(partition_exists(f, now + 14 * DAY_US));
}

/* A partition goes whole once every event in it expired; each bus keeps
 * its events for its own retention, and the oldest retained sequence
 * follows. */
static void test_drop_whole_partitions(void **state)
{
    struct ut_db *f = *state;
    struct eb_bus_rec shortb = new_bus(f, "drop", "short", 1);
    struct eb_bus_rec longb = new_bus(f, "drop", "long", 72);
    int64_t now = eb_now_wall_us(), seqs[16], first_long, oldest = 0, head = 0;
    struct eb_maintain_result r;

    append_at(f, shortb.id, now, 4);
    first_long = append_at(f, longb.id, now, 3);
    assert_int_equal(recorded_oldest(f, shortb.id), 1);

    /* Just past the short bus's expiry: its partition is not over. */
    r = maintain_ok(f, now + HOUR_US + 1000000);
    assert_int_equal(r.dropped, 0);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(*) FROM events WHERE bus_id = %lld",
                                 (long long)shortb.id),
                     4);
    /* But its events are expired at that time, and recorded so. */
    assert_int_equal(recorded_oldest(f, shortb.id), 5);
    assert_int_equal(recorded_oldest(f, longb.id), first_long);

    /* A day and two hours later the short bus's partition is over. */
    r = maintain_ok(f, now + DAY_US + 2 * HOUR_US);
    assert_true(r.dropped >= 1);
    assert_false(partition_exists(f, now + HOUR_US));
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(*) FROM events WHERE bus_id = %lld",
                                 (long long)shortb.id),
                     0);
    /* The long bus's events are untouched. */
    assert_int_equal(read_seqs(f, longb.id, 0, seqs, 16), 3);
    assert_int_equal(seqs[0], first_long);
    assert_true(partition_exists(f, now + 72 * HOUR_US));
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(*) FROM events_default"), 0);

    /* Nothing left on the short bus: its oldest retained sequence is its
     * next one, and the head is unchanged. */
    assert_int_equal(recorded_oldest(f, shortb.id), 5);
    assert_int_equal(eb_store_events_oldest(f->db, shortb.id, &oldest), EB_OK);
    assert_int_equal(oldest, 5);
    assert_int_equal(eb_store_events_head(f->db, shortb.id, &head), EB_OK);
    assert_int_equal(head, 4);
    assert_int_equal(eb_store_events_oldest(f->db, longb.id, &oldest), EB_OK);
    assert_int_equal(oldest, first_long);

    /* Four days on, the long bus's partition goes too. */
    r = maintain_ok(f, now + 4 * DAY_US + 2 * HOUR_US);
    assert_true(r.dropped >= 1);
    assert_int_equal(read_seqs(f, longb.id, 0, seqs, 16), 0);
    assert_int_equal(recorded_oldest(f, longb.id), first_long + 3);
    assert_true(partition_count(f) >= 1);
    assert_int_equal(eb_store_events_oldest(f->db, longb.id + 1000000, &oldest), EB_ENOTFOUND);
}

/* Reads never return an event past its expiry, though its partition is
 * still there. */
static void test_expired_events_invisible(void **state)
{
    struct ut_db *f = *state;
    struct eb_bus_rec b = new_bus(f, "invisible", "b", 1);
    int64_t now = eb_now_wall_us(), seqs[16], oldest = 0, after = -1;
    struct eb_event_rec *ev = NULL;
    size_t n = 9;

    /* Received two hours ago with a one-hour retention: expired. */
    assert_int_equal(append_at(f, b.id, now - 2 * HOUR_US, 3), 1);
    assert_int_equal(append_at(f, b.id, now, 2), 4);
    assert_true(ut_sql_intf(f->raw, "SELECT count(*) FROM events WHERE bus_id = %lld",
                            (long long)b.id) >= 2);

    assert_int_equal(read_seqs(f, b.id, 0, seqs, 16), 2);
    assert_int_equal(seqs[0], 4);
    assert_int_equal(seqs[1], 5);
    assert_int_equal(eb_store_events_oldest(f->db, b.id, &oldest), EB_OK);
    assert_int_equal(oldest, 4);
    /* A start time older than the retention starts at the oldest retained. */
    assert_int_equal(eb_store_events_before_time(f->db, b.id, now - 3 * HOUR_US, &after),
                     EB_OK);
    assert_int_equal(after, 3);
    assert_int_equal(eb_store_events_read_back(f->db, b.id, 0, 100, 100, 1 << 20, &ev, &n),
                     EB_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ev[0].seq, 5);
    assert_int_equal(ev[1].seq, 4);
    for (size_t i = 0; i < n; i++)
        free(ev[i].body);
    free(ev);

    /* Maintenance records it, and removes what the default partition may
     * have taken (an expiry in a past day has no partition). */
    maintain_ok(f, 0);
    assert_int_equal(recorded_oldest(f, b.id), 4);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(*) FROM events_default"), 0);
}

/* Reads ask for the next page by sequence range (dense sequences), and go
 * past a whole page of expired events to the retained ones after it. */
static void test_read_past_a_page_of_expired(void **state)
{
    struct ut_db *f = *state;
    struct eb_bus_rec b = new_bus(f, "expired-page", "b", 1);
    int64_t now = eb_now_wall_us(), seqs[100];

    for (int i = 0; i < 15; i++) /* received two hours ago, one-hour retention */
        assert_int_equal(append_at(f, b.id, now - 2 * HOUR_US, 10), 1 + 10 * i);
    assert_int_equal(append_at(f, b.id, now, 3), 151);
    assert_int_equal(read_seqs(f, b.id, 0, seqs, 100), 3);
    assert_int_equal(seqs[0], 151);
    assert_int_equal(seqs[2], 153);
    assert_int_equal(read_seqs(f, b.id, 120, seqs, 100), 3);
    assert_int_equal(seqs[0], 151);
    assert_int_equal(read_seqs(f, b.id, 152, seqs, 100), 1);
    assert_int_equal(seqs[0], 153);
    assert_int_equal(read_seqs(f, b.id, 153, seqs, 100), 0);

    /* A full page of live events is exactly the next 100 sequences. */
    for (int i = 0; i < 15; i++)
        assert_int_equal(append_at(f, b.id, now, 10), 154 + 10 * i);
    assert_int_equal(read_seqs(f, b.id, 160, seqs, 100), 100);
    assert_int_equal(seqs[0], 161);
    assert_int_equal(seqs[99], 260);

    /* The backdated events expired an hour ago: from 23:00 to 01:00 UTC
     * their day has no partition (partitions are made ahead, from now plus
     * the retention), so they wait in the default partition. Maintenance
     * takes them out of it, as it would in service. */
    maintain_ok(f, 0);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(*) FROM events_default"), 0);
}

/* A changed retention gets its partitions at once (before the bus row
 * changes); rows that reached the default partition are moved into the
 * partition created for them. */
static void test_retention_change_and_default(void **state)
{
    struct ut_db *f = *state;
    struct eb_bus_rec b = new_bus(f, "change", "b", 24), upd;
    int64_t now = eb_now_wall_us();
    int64_t far = now + 900 * DAY_US, seqs[16];

    assert_false(partition_exists(f, now + 500 * DAY_US));
    assert_int_equal(eb_store_bus_update(f->db, b.id, 500 * 24, -1, &upd), EB_OK);
    assert_true(partition_exists(f, now + 500 * DAY_US));
    append_at(f, b.id, now, 2);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(*) FROM events_default"), 0);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(*) FROM events WHERE bus_id = %lld AND"
                                         " expires_at = received_at + interval '12000 hours'",
                                 (long long)b.id),
                     2);

    /* A row the default partition holds (as after a fault): the partition
     * made for its day takes it over. */
    {
        char sql[512];
        snprintf(sql, sizeof sql,
                 "INSERT INTO events (bus_id, seq, received_at, expires_at, source,"
                 " event_id, type, body) VALUES (%lld, 3, now(), to_timestamp(%lld /"
                 " 1000000.0), '/ret', 'strayed', 't', 'x')",
                 (long long)b.id, (long long)far);
        ut_sql_ok(f->raw, sql);
        /* As an append would: the counter and the last expiry. */
        snprintf(sql, sizeof sql,
                 "UPDATE buses SET next_seq = 4, last_expires_at = to_timestamp(%lld /"
                 " 1000000.0) WHERE id = %lld",
                 (long long)far, (long long)b.id);
        ut_sql_ok(f->raw, sql);
    }
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(*) FROM events_default"), 1);
    assert_int_equal(eb_store_bus_update(f->db, b.id, 900 * 24, -1, &upd), EB_OK);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(*) FROM events_default"), 0);
    assert_true(partition_exists(f, far));
    assert_int_equal(read_seqs(f, b.id, 0, seqs, 16), 3);
    assert_int_equal(seqs[2], 3);
}

/* A bus's expiries never decrease along its sequences, even when its
 * retention is lowered or receive times go back, and a tail read with the
 * expiry of its cursor's event as floor returns the same events while
 * leaving out any below the floor. */
static void test_expiries_never_decrease(void **state)
{
    struct ut_db *f = *state;
    struct eb_bus_rec b = new_bus(f, "monotone", "b", 72), upd;
    int64_t now = eb_now_wall_us(), first, second, third, e1, e2, e3;
    struct eb_event_rec *ev = NULL;
    size_t n = 0;

    first = append_at(f, b.id, now, 2);
    assert_int_equal(eb_store_bus_update(f->db, b.id, 1, -1, &upd), EB_OK);
    second = append_at(f, b.id, now + 1000, 2);
    /* Received "earlier" than the last (another replica's clock). */
    third = append_at(f, b.id, now - 1000000, 1);
    e1 = ut_sql_intf(f->raw, "SELECT (extract(epoch FROM expires_at) * 1000000)::bigint FROM events"
                             " WHERE bus_id = %lld AND seq = %lld", (long long)b.id,
                     (long long)first + 1);
    e2 = ut_sql_intf(f->raw, "SELECT (extract(epoch FROM expires_at) * 1000000)::bigint FROM events"
                             " WHERE bus_id = %lld AND seq = %lld", (long long)b.id,
                     (long long)second);
    e3 = ut_sql_intf(f->raw, "SELECT (extract(epoch FROM expires_at) * 1000000)::bigint FROM events"
                             " WHERE bus_id = %lld AND seq = %lld", (long long)b.id,
                     (long long)third);
    /* Lowered to an hour, the new events still expire with the old ones. */
    assert_true(e1 >= now + 72 * HOUR_US - 1000000);
    assert_int_equal(e2, e1);
    assert_int_equal(e3, e1);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(*) FROM (SELECT expires_at < lag(expires_at)"
                                         " OVER (ORDER BY seq) AS down FROM events WHERE bus_id ="
                                         " %lld)"
                                         " x WHERE down",
                                 (long long)b.id),
                     0);

    /* The floor keeps the events at and above it. */
    assert_int_equal(eb_store_events_tail(f->db, b.id, first, e1, 100, &ev, &n), EB_OK);
    assert_int_equal(n, 4);
    assert_int_equal(ev[0].seq, first + 1);
    assert_int_equal(ev[0].expires_us, e1);
    for (size_t i = 0; i < n; i++)
        free(ev[i].body);
    free(ev);
    /* Within a second below it, events stay (the floor only narrows the
     * partitions read; rounding must never hide an event)... */
    assert_int_equal(eb_store_events_tail(f->db, b.id, first, e1 + 500000, 100, &ev, &n),
                     EB_OK);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++)
        free(ev[i].body);
    free(ev);
    /* ...and further below, they are left out. */
    assert_int_equal(eb_store_events_tail(f->db, b.id, 0, e1 + 2000000, 100, &ev, &n), EB_OK);
    assert_int_equal(n, 0);
    free(ev);
}

/* When the partitions for a new retention cannot be made at once (a long
 * reader holds the event log), the bus change still succeeds within the
 * lock timeout; its appends wait in the default partition until the next
 * maintenance run moves them into the partition it creates. */
static void test_retention_partitions_left_to_maintenance(void **state)
{
    struct ut_db *f = *state;
    struct eb_bus_rec b = new_bus(f, "busy", "b", 24), upd;
    int64_t now = eb_now_wall_us(), t0, seqs[16];
    struct eb_maintain_result r;

    PGconn *reader = PQconnectdb(f->url);
    assert_int_equal(PQstatus(reader), CONNECTION_OK);
    ut_sql_ok(reader, "BEGIN");
    ut_sql_ok(reader, "LOCK TABLE events IN ACCESS SHARE MODE");
    t0 = eb_now_mono_us();
    assert_int_equal(eb_store_bus_update(f->db, b.id, 333 * 24, -1, &upd), EB_OK);
    assert_true(eb_now_mono_us() - t0 < 5000000);
    assert_int_equal(upd.retention_hours, 333 * 24);
    assert_false(partition_exists(f, now + 333 * DAY_US));
    ut_sql_ok(reader, "COMMIT");
    PQfinish(reader);

    append_at(f, b.id, now, 2);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(*) FROM events_default"), 2);
    assert_int_equal(read_seqs(f, b.id, 0, seqs, 16), 2);
    r = maintain_ok(f, 0);
    assert_true(r.created >= 1);
    assert_true(partition_exists(f, now + 333 * DAY_US));
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(*) FROM events_default"), 0);
    assert_int_equal(read_seqs(f, b.id, 0, seqs, 16), 2);
    assert_int_equal(seqs[1], 2);
}

/* One session at a time: the others skip the run. */
static void test_maintenance_lock(void **state)
{
    struct ut_db *f = *state;
    struct eb_maintain_result r = {0};

    ut_sql_ok(f->raw, "BEGIN");
    ut_sql_ok(f->raw, "SELECT pg_advisory_xact_lock(1667588725, 3)");
    assert_int_equal(eb_store_partitions_maintain(f->db, 0, &r), EB_OK);
    assert_true(r.skipped);
    assert_int_equal(r.created, 0);
    assert_int_equal(r.dropped, 0);
    ut_sql_ok(f->raw, "COMMIT");
    r = maintain_ok(f, 0);
    assert_false(r.skipped);
}

/* Links the migrations before 0007 into dir. */
static void link_old_migrations(const char *from, const char *dir)
{
    DIR *d = opendir(from);
    struct dirent *de;

    assert_non_null(d);
    assert_int_equal(mkdir(dir, 0700), 0);
    while ((de = readdir(d)) != NULL) {
        char src[2048], dst[2048];
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".sql") != 0 ||
            strncmp(de->d_name, "0007", 4) >= 0)
            continue;
        snprintf(src, sizeof src, "%s/%s", from, de->d_name);
        snprintf(dst, sizeof dst, "%s/%s", dir, de->d_name);
        assert_int_equal(symlink(src, dst), 0);
    }
    closedir(d);
}

static void unlink_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    if (!d)
        return;
    while ((de = readdir(d)) != NULL) {
        char p[2048];
        if (de->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* The migration to expiry partitions keeps the unexpired events with their
 * sequences and drops the expired ones. */
static void test_migration_keeps_events(void **state)
{
    struct ut_db *f = *state;
    char name[80], url[1200], sql[1024], dir[256];
    PGconn *raw;
    eb_db *db = NULL;
    int applied = 0;

    snprintf(name, sizeof name, "%s_mig", f->dbname);
    snprintf(url, sizeof url, "%s dbname=%s", f->base, name);
    snprintf(dir, sizeof dir, "/tmp/cebus-ret-mig-%ld", (long)getpid());
    unlink_dir(dir);
    link_old_migrations(f->migrations, dir);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    ut_sql_ok(f->admin, sql);
    raw = PQconnectdb(url);
    assert_int_equal(PQstatus(raw), CONNECTION_OK);
    assert_int_equal(eb_db_connect(url, &db), EB_OK);
    assert_int_equal(eb_store_migrate(db, dir, &applied), EB_OK);
    assert_true(applied >= 4);

    /* The old log: bus 1 keeps a week; seq 1 expired, 2 and 3 not. */
    ut_sql_ok(raw, "INSERT INTO buses (tenant_id, name, retention_hours, next_seq)"
                " VALUES (1, 'old', 168, 4)");
    ut_sql_ok(raw, "INSERT INTO events (bus_id, seq, received_at, source, event_id, type, body)"
                " SELECT b.id, s, now() - make_interval(hours => h), '/old', 'e' || s, 't', 'b'"
                " FROM buses b, (VALUES (1, 200), (2, 100), (3, 1)) v(s, h)");
    assert_int_equal(eb_store_migrate(db, f->migrations, &applied), EB_OK);
    assert_true(applied >= 1);

    assert_int_equal(ut_sql_intf(raw, "SELECT count(*) FROM events"), 2);
    assert_int_equal(ut_sql_intf(raw, "SELECT min(seq) FROM events"), 2);
    assert_int_equal(ut_sql_intf(raw, "SELECT count(*) FROM events"
                                      " WHERE expires_at = received_at + interval '168 hours'"),
                     2);
    assert_int_equal(ut_sql_intf(raw, "SELECT count(*) FROM buses WHERE name = 'old'"
                                      " AND last_expires_at = (SELECT max(expires_at) FROM"
                                      " events)"),
                     1);
    assert_int_equal(ut_sql_intf(raw, "SELECT count(*) FROM events_default"), 0);
    assert_int_equal(ut_sql_intf(raw, "SELECT oldest_seq FROM event_retention"), 2);
    assert_int_equal(ut_sql_intf(raw, "SELECT count(*) FROM pg_class WHERE relname = 'events_v1'"),
                     0);
    /* Appends go on from the old counter, into the new table. */
    {
        struct eb_append_row row = {.bus_id = 0};
        row.bus_id = ut_sql_intf(raw, "SELECT id FROM buses WHERE name = 'old'");
        row.received_us = eb_now_wall_us();
        row.source = "/old";
        row.event_id = "new";
        row.type = "t";
        row.body = (const uint8_t *)"b";
        row.body_len = 1;
        assert_int_equal(eb_store_events_append(db, &row, 1), EB_OK);
        assert_int_equal(row.status, EB_OK);
        assert_int_equal(row.seq, 4);
    }

    eb_db_close(db);
    PQfinish(raw);
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    ut_sql_ok(f->admin, sql);
    unlink_dir(dir);
}

static int setup_db(void **state)
{
    return ut_db_setup(state, "store_retention");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partitions_ahead),
        cmocka_unit_test(test_drop_whole_partitions),
        cmocka_unit_test(test_expired_events_invisible),
        cmocka_unit_test(test_read_past_a_page_of_expired),
        cmocka_unit_test(test_retention_change_and_default),
        cmocka_unit_test(test_expiries_never_decrease),
        cmocka_unit_test(test_retention_partitions_left_to_maintenance),
        cmocka_unit_test(test_maintenance_lock),
        cmocka_unit_test(test_migration_keeps_events),
    };

    return cmocka_run_group_tests(tests, setup_db, ut_db_teardown);
}
