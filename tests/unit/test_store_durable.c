/* Unit tests for durable subscriptions in the store against a real
 * PostgreSQL (migrations/0009_durable.sql, server/store_durable.c): claims
 * that lease matches and move the frontier, the frontier's compare-and-set
 * between two connections, rule version checks, partition key blocking,
 * dead letters after max_attempts and max_age (time moved through p_now),
 * stale acks, nacks with a delay, releases, max_outstanding and room
 * cutting the range, the subscription row following its target, reads by
 * sequence, redriven dead letters, rows of expired events, and the
 * notifications acks send to other replicas.
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

#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>

#include "db_fixture.h"
#include "store.h"
#include "store_durable.h"
#include "util.h"

#define SEC_US 1000000LL
#define MAX_MATCHES 32

/* --- Helpers ------------------------------------------------------------- */

/* A subscription "s" of rule "r" on a new bus `name` of a new tenant of
 * the same name, with settings set. */
struct sub {
    int64_t bus_id;
    int64_t id;
    int64_t version;
    int64_t epoch;
};

static struct sub new_sub(struct ut_db *f, const char *name, struct eb_sub_settings set)
{
    struct eb_bus_rec b = ut_bus(f, ut_tenant(f, name), name);
    struct eb_target_rec t = {.kind = EB_TARGET_SUBSCRIPTION, .value = "s", .sub = set};
    struct eb_rule_rec r = {.pattern = "{}", .description = "", .enabled = true,
                            .ntargets = 1, .targets = &t};
    const char *conflict;
    struct eb_sub_rec rec;
    struct sub s;

    eb_strlcpy(r.name, "r", sizeof r.name);
    assert_int_equal(eb_store_rule_insert(f->db, b.id, &r, &conflict), EB_OK);
    assert_int_equal(eb_store_sub_get(f->db, b.id, "s", &rec), EB_OK);
    s.bus_id = b.id;
    s.id = rec.id;
    s.version = r.version;
    s.epoch = rec.epoch;
    return s;
}

/* Appends n events to the bus; returns the first sequence. */
static int64_t append(struct ut_db *f, int64_t bus_id, int n)
{
    struct eb_append_row rows[16];
    char ids[16][48];
    static int counter;

    assert_true(n > 0 && n <= 16);
    for (int i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "d%d", ++counter);
        rows[i] = ut_row(bus_id, eb_now_wall_us(), ids[i], ids[i]);
    }
    assert_int_equal(eb_store_events_append(f->db, rows, (size_t)n), EB_OK);
    return rows[0].seq;
}

/* A claim of (from, to] with matches seqs[0..n) (keys may be NULL), all
 * received at received_us, as of now_us; asserts it ran. */
static struct eb_sub_claim_out claim_at(eb_db *db, const struct sub *s, int64_t from, int64_t to,
                                        const int64_t *seqs, const char *const *pkeys, size_t n,
                                        int64_t owner, int room, int64_t received_us,
                                        int64_t now_us)
{
    int64_t received[MAX_MATCHES];
    struct eb_sub_claim_in in = {.sub_id = s->id, .rule_version = s->version,
                                 .from_seq = from, .to_seq = to, .seqs = seqs, .pkeys = pkeys,
                                 .received_us = received, .n = n, .owner = owner,
                                 .room = room, .now_us = now_us};
    struct eb_sub_claim_out out;

    assert_true(n <= MAX_MATCHES);
    for (size_t i = 0; i < n; i++)
        received[i] = received_us;
    assert_int_equal(eb_store_sub_claim(db, &in, &out), EB_OK);
    return out;
}

static struct eb_ack_item item(const struct sub *s, int64_t epoch, int64_t seq, int32_t attempt)
{
    struct eb_ack_item it = {.sub_id = s->id, .epoch = epoch, .seq = seq, .attempt = attempt};
    return it;
}

static int64_t pending(struct ut_db *f, const struct sub *s)
{
    return ut_sql_intf(f->raw, "SELECT count(*) FROM sub_pending WHERE sub_id = %lld",
                       (long long)s->id);
}

/* --- Tests ------------------------------------------------------------- */

static void test_claim_leases_matches_and_moves_frontier(void **state)
{
    struct ut_db *f = *state;
    struct eb_sub_settings set = {0};
    struct sub s = new_sub(f, "claim", set);
    int64_t now = eb_now_wall_us(), first, seqs[2];
    struct eb_sub_claim_out out;
    struct eb_sub_rec rec;
    struct eb_sub_held *held;
    size_t nheld;
    int64_t owners[1] = {77};

    /* A new subscription starts at the bus's head. */
    assert_int_equal(eb_store_sub_get(f->db, s.bus_id, "s", &rec), EB_OK);
    assert_int_equal(rec.frontier, 0);
    assert_int_equal(rec.outstanding, 0);
    assert_int_equal(rec.settings.ack_deadline_s, EB_SUB_ACK_DEADLINE_DEFAULT);
    assert_int_equal(rec.settings.max_attempts, EB_SUB_MAX_ATTEMPTS_DEFAULT);
    assert_int_equal(rec.settings.max_outstanding, EB_SUB_MAX_OUTSTANDING_DEFAULT);

    first = append(f, s.bus_id, 5);
    assert_int_equal(first, 1);
    seqs[0] = 2;
    seqs[1] = 4;
    out = claim_at(f->db, &s, 0, 5, seqs, NULL, 2, 77, 10, now, now);
    assert_int_equal(out.result, EB_CLAIM_DONE);
    assert_int_equal(out.nleases, 2);
    assert_int_equal(out.leases[0].seq, 2);
    assert_int_equal(out.leases[1].seq, 4);
    assert_int_equal(out.leases[0].attempt, 1);
    assert_int_equal(out.leases[0].due_us, now + 30 * SEC_US);
    assert_int_equal(out.frontier, 5);
    assert_int_equal(out.epoch, s.epoch);
    /* The leases end in 30 s: more than a second away, no timer. */
    assert_int_equal(out.next_due_us, 0);
    free(out.leases);
    /* Within a second of their end, with room left, the claim names it. */
    out = claim_at(f->db, &s, 5, 5, NULL, NULL, 0, 78, 10, now, now + 29 * SEC_US + SEC_US / 2);
    assert_int_equal(out.nleases, 0);
    assert_int_equal(out.next_due_us, now + 30 * SEC_US);
    free(out.leases);

    assert_int_equal(eb_store_sub_get(f->db, s.bus_id, "s", &rec), EB_OK);
    assert_int_equal(rec.frontier, 5);
    assert_int_equal(rec.outstanding, 2);
    assert_int_equal(eb_store_sub_held(f->db, owners, 1, now, &held, &nheld), EB_OK);
    assert_int_equal(nheld, 2);
    assert_int_equal(held[0].seq, 2);
    assert_int_equal(held[1].seq, 4);
    assert_int_equal(held[1].owner, 77);
    assert_int_equal(held[1].attempt, 1);
    free(held);
    /* Leases that ended are not held any more. */
    assert_int_equal(eb_store_sub_held(f->db, owners, 1, now + 31 * SEC_US, &held, &nheld), EB_OK);
    assert_int_equal(nheld, 0);
    free(held);

    /* Nothing new and nothing due: no lease, frontier unchanged. */
    out = claim_at(f->db, &s, 5, 5, NULL, NULL, 0, 78, 10, now, now + SEC_US);
    assert_int_equal(out.result, EB_CLAIM_DONE);
    assert_int_equal(out.nleases, 0);
    assert_int_equal(out.frontier, 5);
    free(out.leases);
}

static void test_claim_compare_and_set(void **state)
{
    struct ut_db *f = *state;
    struct eb_sub_settings set = {0};
    struct sub s = new_sub(f, "cas", set);
    int64_t now = eb_now_wall_us(), seqs[3] = {1, 2, 3};
    struct eb_sub_claim_out a, b;
    eb_db *other;

    assert_int_equal(eb_db_connect(f->url, &other), EB_OK);
    append(f, s.bus_id, 3);
    a = claim_at(f->db, &s, 0, 3, seqs, NULL, 2, 1, 10, now, now);
    assert_int_equal(a.result, EB_CLAIM_DONE);
    assert_int_equal(a.nleases, 2);
    assert_int_equal(a.frontier, 3);

    /* The other replica read the same range: it lost the race and leases
     * nothing new. */
    b = claim_at(other, &s, 0, 3, seqs, NULL, 3, 2, 10, now, now);
    assert_int_equal(b.result, EB_CLAIM_MOVED);
    assert_int_equal(b.nleases, 0);
    assert_int_equal(b.frontier, 3);
    assert_int_equal(pending(f, &s), 2);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(*) FROM sub_pending WHERE owner = 2"), 0);
    free(a.leases);
    free(b.leases);
    eb_db_close(other);
}

static void test_claim_rule_changed(void **state)
{
    struct ut_db *f = *state;
    struct eb_sub_settings set = {0};
    struct sub s = new_sub(f, "version", set);
    struct sub stale = s;
    int64_t now = eb_now_wall_us(), seqs[1] = {1};
    struct eb_sub_claim_out out;

    append(f, s.bus_id, 1);
    stale.version = s.version + 1;
    out = claim_at(f->db, &stale, 0, 1, seqs, NULL, 1, 1, 10, now, now);
    assert_int_equal(out.result, EB_CLAIM_RULE_CHANGED);
    assert_int_equal(out.nleases, 0);
    assert_int_equal(out.frontier, 0);
    assert_int_equal(pending(f, &s), 0);
    free(out.leases);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT frontier FROM subscriptions WHERE id = %lld",
                                 (long long)s.id),
                     0);
}

static void test_partition_key_blocking(void **state)
{
    struct ut_db *f = *state;
    struct eb_sub_settings set = {0};
    struct sub s = new_sub(f, "keys", set);
    int64_t now = eb_now_wall_us(), seqs[4] = {1, 2, 3, 4};
    const char *keys[4] = {"a", "a", "b", "a"};
    struct eb_sub_claim_out out;
    struct eb_ack_item it;

    append(f, s.bus_id, 4);
    out = claim_at(f->db, &s, 0, 4, seqs, keys, 4, 1, 10, now, now);
    /* One in flight per key: 1 (a) and 3 (b); 2 and 4 wait behind 1. */
    assert_int_equal(out.nleases, 2);
    assert_int_equal(out.leases[0].seq, 1);
    assert_int_equal(out.leases[1].seq, 3);
    assert_int_equal(out.frontier, 4);
    free(out.leases);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(*) FROM sub_pending WHERE blocked"), 2);

    /* Nothing of key a comes while 1 is out, even once its lease ended:
     * 1 itself is redelivered. */
    out = claim_at(f->db, &s, 4, 4, NULL, NULL, 0, 2, 10, now, now + 31 * SEC_US);
    assert_int_equal(out.nleases, 2);
    assert_int_equal(out.leases[0].seq, 1);
    assert_int_equal(out.leases[0].attempt, 2);
    assert_int_equal(out.leases[1].seq, 3);
    free(out.leases);

    /* Acking 1 frees key a: the next claim delivers 2, not 4. */
    it = item(&s, s.epoch, 1, 2);
    assert_int_equal(eb_store_sub_ack(f->db, &it, 1, NULL, 0), EB_OK);
    assert_true(it.applied);
    out = claim_at(f->db, &s, 4, 4, NULL, NULL, 0, 2, 10, now, now + 32 * SEC_US);
    assert_int_equal(out.nleases, 1);
    assert_int_equal(out.leases[0].seq, 2);
    assert_int_equal(out.leases[0].attempt, 1);
    free(out.leases);
    it = item(&s, s.epoch, 2, 1);
    assert_int_equal(eb_store_sub_ack(f->db, &it, 1, NULL, 0), EB_OK);
    assert_true(it.applied);
    out = claim_at(f->db, &s, 4, 4, NULL, NULL, 0, 2, 10, now, now + 33 * SEC_US);
    assert_int_equal(out.nleases, 1);
    assert_int_equal(out.leases[0].seq, 4);
    free(out.leases);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(*) FROM sub_freed"), 0);
}

static void test_max_attempts_dead_letter(void **state)
{
    struct ut_db *f = *state;
    struct eb_sub_settings set = {.ack_deadline_s = 10, .max_attempts = 2};
    struct sub s = new_sub(f, "attempts", set);
    int64_t now = eb_now_wall_us(), seqs[1] = {1};
    struct eb_sub_claim_out out;
    struct eb_sub_rec rec;

    append(f, s.bus_id, 1);
    out = claim_at(f->db, &s, 0, 1, seqs, NULL, 1, 1, 10, now, now);
    assert_int_equal(out.nleases, 1);
    free(out.leases);
    /* Before the deadline: not due. */
    out = claim_at(f->db, &s, 1, 1, NULL, NULL, 0, 1, 10, now, now + 9 * SEC_US);
    assert_int_equal(out.nleases, 0);
    free(out.leases);
    out = claim_at(f->db, &s, 1, 1, NULL, NULL, 0, 1, 10, now, now + 11 * SEC_US);
    assert_int_equal(out.nleases, 1);
    assert_int_equal(out.leases[0].attempt, 2);
    free(out.leases);
    /* The second lease ends too: two attempts made, a dead letter. */
    out = claim_at(f->db, &s, 1, 1, NULL, NULL, 0, 1, 10, now, now + 22 * SEC_US);
    assert_int_equal(out.nleases, 0);
    assert_int_equal(out.dead, 1);
    assert_int_equal(out.next_due_us, 0);
    free(out.leases);
    assert_int_equal(pending(f, &s), 0);
    assert_int_equal(ut_sql_intf(f->raw,
                                 "SELECT count(*) FROM dead_letters WHERE sub_id = %lld AND seq = 1"
                                 " AND reason = 1 AND attempts = 2"
                                 " AND last_error = 'ack deadline passed'",
                                 (long long)s.id),
                     1);
    assert_int_equal(eb_store_sub_get(f->db, s.bus_id, "s", &rec), EB_OK);
    assert_int_equal(rec.outstanding, 0);
}

static void test_max_age_dead_letter(void **state)
{
    struct ut_db *f = *state;
    struct eb_sub_settings set = {.ack_deadline_s = 10, .max_age_s = 60};
    struct sub s = new_sub(f, "age", set);
    int64_t now = eb_now_wall_us(), seqs[2] = {1, 2};
    struct eb_sub_claim_out out;
    struct eb_ack_item it;

    append(f, s.bus_id, 2);
    out = claim_at(f->db, &s, 0, 1, seqs, NULL, 1, 1, 10, now, now);
    assert_int_equal(out.nleases, 1);
    free(out.leases);
    it = item(&s, s.epoch, 1, 1);
    assert_int_equal(eb_store_sub_nack(f->db, &it, 1, 0, "boom", now + SEC_US), EB_OK);
    assert_true(it.applied);
    /* Due again, but older than max_age by now; and match 2, received as
     * long ago, goes straight to the dead letters. */
    out = claim_at(f->db, &s, 1, 2, &seqs[1], NULL, 1, 1, 10, now, now + 61 * SEC_US);
    assert_int_equal(out.nleases, 0);
    assert_int_equal(out.dead, 2);
    assert_int_equal(out.frontier, 2);
    free(out.leases);
    assert_int_equal(pending(f, &s), 0);
    assert_int_equal(ut_sql_intf(f->raw,
                                 "SELECT count(*) FROM dead_letters WHERE sub_id = %lld AND reason"
                                 " = 2"
                                 " AND ((seq = 1 AND last_error = 'boom' AND attempts = 1)"
                                 " OR (seq = 2 AND attempts = 0))",
                                 (long long)s.id),
                     2);
}

static void test_stale_acks(void **state)
{
    struct ut_db *f = *state;
    struct eb_sub_settings set = {.ack_deadline_s = 10};
    struct sub s = new_sub(f, "stale", set);
    int64_t now = eb_now_wall_us(), seqs[2] = {1, 2}, local[1] = {5};
    struct eb_sub_claim_out out;
    struct eb_ack_item items[4];

    append(f, s.bus_id, 2);
    out = claim_at(f->db, &s, 0, 2, seqs, NULL, 2, 5, 10, now, now);
    assert_int_equal(out.nleases, 2);
    free(out.leases);
    /* Seq 1's lease ends and it goes to another stream: attempt 2. */
    out = claim_at(f->db, &s, 2, 2, NULL, NULL, 0, 6, 1, now, now + 11 * SEC_US);
    assert_int_equal(out.nleases, 1);
    assert_int_equal(out.leases[0].seq, 1);
    assert_int_equal(out.leases[0].attempt, 2);
    free(out.leases);

    items[0] = item(&s, s.epoch, 1, 1);      /* attempt moved on */
    items[1] = item(&s, s.epoch + 1, 2, 1);  /* another epoch */
    items[2] = item(&s, s.epoch, 2, 1);      /* expired lease, not re-leased: applies */
    items[3] = item(&s, s.epoch, 9, 1);      /* no such row */
    assert_int_equal(eb_store_sub_ack(f->db, items, 4, local, 1), EB_OK);
    assert_false(items[0].applied);
    assert_false(items[1].applied);
    assert_true(items[2].applied);
    assert_int_equal(items[2].owner, 5);
    assert_false(items[3].applied);
    assert_int_equal(pending(f, &s), 1);
    /* Acking again changes nothing. */
    items[2].applied = true;
    assert_int_equal(eb_store_sub_ack(f->db, &items[2], 1, NULL, 0), EB_OK);
    assert_false(items[2].applied);
    items[0] = item(&s, s.epoch, 1, 2);
    assert_int_equal(eb_store_sub_ack(f->db, items, 1, NULL, 0), EB_OK);
    assert_true(items[0].applied);
    assert_int_equal(items[0].owner, 6);
    assert_int_equal(pending(f, &s), 0);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT acked FROM sub_acked WHERE sub_id = %lld",
                                 (long long)s.id),
                     2);
}

static void test_nack_delay(void **state)
{
    struct ut_db *f = *state;
    struct eb_sub_settings set = {0};
    struct sub s = new_sub(f, "nack", set);
    int64_t now = eb_now_wall_us(), seqs[1] = {1};
    struct eb_sub_claim_out out;
    struct eb_ack_item it;

    append(f, s.bus_id, 1);
    out = claim_at(f->db, &s, 0, 1, seqs, NULL, 1, 1, 10, now, now);
    free(out.leases);
    it = item(&s, s.epoch, 1, 2); /* wrong attempt */
    assert_int_equal(eb_store_sub_nack(f->db, &it, 1, 5000, NULL, now), EB_OK);
    assert_false(it.applied);
    it = item(&s, s.epoch, 1, 1);
    assert_int_equal(eb_store_sub_nack(f->db, &it, 1, 5000, "later", now), EB_OK);
    assert_true(it.applied);
    assert_int_equal(it.owner, 1);
    out = claim_at(f->db, &s, 1, 1, NULL, NULL, 0, 2, 10, now, now + 4 * SEC_US);
    assert_int_equal(out.nleases, 0);
    assert_int_equal(out.next_due_us, now + 5 * SEC_US);
    free(out.leases);
    out = claim_at(f->db, &s, 1, 1, NULL, NULL, 0, 2, 10, now, now + 6 * SEC_US);
    assert_int_equal(out.nleases, 1);
    assert_int_equal(out.leases[0].attempt, 2);
    free(out.leases);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(*) FROM sub_pending WHERE sub_id = %lld"
                                         " AND last_error = 'later' AND owner = 2",
                                 (long long)s.id),
                     1);
}

static void test_release(void **state)
{
    struct ut_db *f = *state;
    struct eb_sub_settings set = {0};
    struct sub s = new_sub(f, "release", set);
    int64_t now = eb_now_wall_us(), seqs[2] = {1, 2};
    struct eb_sub_claim_out out;

    append(f, s.bus_id, 2);
    out = claim_at(f->db, &s, 0, 2, seqs, NULL, 2, 1, 10, now, now);
    assert_int_equal(out.nleases, 2);
    free(out.leases);
    out = claim_at(f->db, &s, 2, 2, NULL, NULL, 0, 2, 10, now, now + SEC_US);
    assert_int_equal(out.nleases, 0);
    free(out.leases);
    assert_int_equal(eb_store_sub_release(f->db, 1, now + SEC_US), EB_OK);
    out = claim_at(f->db, &s, 2, 2, NULL, NULL, 0, 2, 10, now, now + SEC_US);
    assert_int_equal(out.nleases, 2);
    assert_int_equal(out.leases[0].attempt, 2);
    assert_int_equal(out.leases[1].attempt, 2);
    free(out.leases);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(*) FROM sub_pending WHERE owner = 1"), 0);
}

static void test_outstanding_and_room_cut_the_range(void **state)
{
    struct ut_db *f = *state;
    struct eb_sub_settings set = {.max_outstanding = 3};
    struct sub s = new_sub(f, "cut", set);
    int64_t now = eb_now_wall_us(), seqs[6] = {1, 2, 3, 4, 5, 6};
    const char *keys[6] = {NULL, NULL, "k", "k", NULL, NULL};
    struct eb_sub_claim_out out;
    struct eb_ack_item it;

    append(f, s.bus_id, 6);
    /* Room 1: 1 is leased, the range ends before 2. */
    out = claim_at(f->db, &s, 0, 6, seqs, keys, 6, 1, 1, now, now);
    assert_int_equal(out.nleases, 1);
    assert_int_equal(out.frontier, 1);
    free(out.leases);
    /* Room 2: 2 and 3 are leased, and max_outstanding (3) ends the range
     * before 4. */
    out = claim_at(f->db, &s, 1, 6, &seqs[1], &keys[1], 5, 1, 2, now, now);
    assert_int_equal(out.nleases, 2);
    assert_int_equal(out.leases[0].seq, 2);
    assert_int_equal(out.leases[1].seq, 3);
    assert_int_equal(out.frontier, 3);
    free(out.leases);
    it = item(&s, s.epoch, 1, 1);
    assert_int_equal(eb_store_sub_ack(f->db, &it, 1, NULL, 0), EB_OK);
    out = claim_at(f->db, &s, 3, 6, &seqs[3], &keys[3], 3, 1, 10, now, now);
    /* A blocked row takes no room but counts as outstanding: 4 waits
     * behind 3 in the place the ack of 1 made, and 5 would exceed
     * max_outstanding. */
    assert_int_equal(out.nleases, 0);
    assert_int_equal(out.frontier, 4);
    free(out.leases);
    assert_int_equal(pending(f, &s), 3);
}

static void test_subscription_lifecycle(void **state)
{
    struct ut_db *f = *state;
    struct eb_sub_settings set = {.ack_deadline_s = 7, .max_attempts = 3, .max_age_s = 100,
                                  .max_outstanding = 50};
    struct sub s = new_sub(f, "life", set);
    struct eb_target_rec t[2] = {
        {.kind = EB_TARGET_SUBSCRIPTION, .value = "s", .sub = {.max_attempts = 9}},
        {.kind = EB_TARGET_SUBSCRIPTION, .value = "s2"}};
    struct eb_rule_change c = {.enabled = -1, .set_targets = true, .targets = t, .ntargets = 2};
    struct eb_rule_rec r;
    struct eb_sub_rec rec;
    const char *conflict;

    assert_int_equal(eb_store_rule_get(f->db, s.bus_id, "r", &r), EB_OK);
    assert_int_equal(r.ntargets, 1);
    assert_int_equal(r.targets[0].sub.ack_deadline_s, 7);
    assert_int_equal(r.targets[0].sub.max_attempts, 3);
    assert_int_equal(r.targets[0].sub.max_age_s, 100);
    assert_int_equal(r.targets[0].sub.max_outstanding, 50);
    eb_rule_rec_clear(&r);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(*) FROM sub_acked WHERE sub_id = %lld",
                                 (long long)s.id),
                     1);

    /* Replacing the targets but keeping the name keeps the state. */
    assert_int_equal(eb_store_rule_update(f->db, s.bus_id, "r", &c, &r, &conflict), EB_OK);
    assert_int_equal(r.targets[0].sub.max_attempts, 9);
    assert_int_equal(r.targets[0].sub.ack_deadline_s, 0);
    eb_rule_rec_clear(&r);
    assert_int_equal(eb_store_sub_get(f->db, s.bus_id, "s", &rec), EB_OK);
    assert_int_equal(rec.id, s.id);
    assert_int_equal(rec.epoch, s.epoch);
    assert_int_equal(rec.settings.max_attempts, 9);
    assert_int_equal(rec.settings.ack_deadline_s, EB_SUB_ACK_DEADLINE_DEFAULT);
    assert_int_equal(eb_store_sub_get(f->db, s.bus_id, "s2", &rec), EB_OK);

    /* A name no target has any more loses its state. */
    c.targets = &t[1];
    c.ntargets = 1;
    assert_int_equal(eb_store_rule_update(f->db, s.bus_id, "r", &c, &r, &conflict), EB_OK);
    eb_rule_rec_clear(&r);
    assert_int_equal(eb_store_sub_get(f->db, s.bus_id, "s", &rec), EB_ENOTFOUND);
    assert_int_equal(eb_store_sub_get(f->db, s.bus_id, "s2", &rec), EB_OK);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(*) FROM sub_acked WHERE sub_id = %lld",
                                 (long long)s.id),
                     0);

    /* Deleting the rule deletes its subscriptions; other buses keep theirs. */
    assert_int_equal(eb_store_rule_delete(f->db, s.bus_id, "r"), EB_OK);
    assert_int_equal(eb_store_sub_get(f->db, s.bus_id, "s2", &rec), EB_ENOTFOUND);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(*) FROM subscriptions WHERE bus_id = %lld",
                                 (long long)s.bus_id),
                     0);
    assert_true(ut_sql_intf(f->raw, "SELECT count(*) FROM subscriptions") > 0);
}

static void test_new_subscription_starts_at_head(void **state)
{
    struct ut_db *f = *state;
    struct eb_sub_settings set = {0};
    struct sub s = new_sub(f, "head", set);
    struct eb_target_rec t = {.kind = EB_TARGET_SUBSCRIPTION, .value = "late"};
    struct eb_rule_rec r = {.pattern = "{}", .description = "", .enabled = true,
                            .ntargets = 1, .targets = &t};
    const char *conflict;
    struct eb_sub_rec rec;

    append(f, s.bus_id, 3);
    eb_strlcpy(r.name, "r2", sizeof r.name);
    assert_int_equal(eb_store_rule_insert(f->db, s.bus_id, &r, &conflict), EB_OK);
    assert_int_equal(eb_store_sub_get(f->db, s.bus_id, "late", &rec), EB_OK);
    assert_int_equal(rec.frontier, 3);
    assert_int_not_equal(rec.epoch, s.epoch);
}

static void test_read_seqs(void **state)
{
    struct ut_db *f = *state;
    struct eb_sub_settings set = {0};
    struct sub s = new_sub(f, "reads", set);
    int64_t first = append(f, s.bus_id, 4), seqs[3] = {first + 3, first + 1, first + 40};
    struct eb_event_rec *recs;
    size_t n;

    assert_int_equal(eb_store_events_read_seqs(f->db, s.bus_id, seqs, 3, &recs, &n), EB_OK);
    assert_int_equal(n, 2);
    assert_int_equal(recs[0].seq, first + 1);
    assert_int_equal(recs[1].seq, first + 3);
    assert_true(recs[0].body_len > 0);
    assert_true(recs[0].received_us > 0);
    assert_memory_equal(recs[0].body, "d", 1);
    for (size_t i = 0; i < n; i++)
        free(recs[i].body);
    free(recs);
}

static void test_dead_letter_frees_key_and_redrive(void **state)
{
    struct ut_db *f = *state;
    struct eb_sub_settings set = {.ack_deadline_s = 10, .max_attempts = 1};
    struct sub s = new_sub(f, "redrive", set);
    int64_t now = eb_now_wall_us(), seqs[2] = {1, 2};
    const char *keys[2] = {"k", "k"};
    struct eb_sub_claim_out out;
    struct eb_ack_item it;

    append(f, s.bus_id, 2);
    out = claim_at(f->db, &s, 0, 2, seqs, keys, 2, 1, 10, now, now);
    assert_int_equal(out.nleases, 1);
    free(out.leases);
    /* 1 used its only attempt: a dead letter, and 2 goes out in its place
     * in the same claim. */
    out = claim_at(f->db, &s, 2, 2, NULL, NULL, 0, 2, 10, now, now + 11 * SEC_US);
    assert_int_equal(out.dead, 1);
    assert_int_equal(out.nleases, 1);
    assert_int_equal(out.leases[0].seq, 2);
    assert_int_equal(out.leases[0].attempt, 1);
    free(out.leases);

    /* Redriven, 1 comes back behind 2, the row of its key. */
    ut_sql_ok(f->raw, "UPDATE dead_letters SET redrive = true");
    out = claim_at(f->db, &s, 2, 2, NULL, NULL, 0, 2, 10, now, now + 12 * SEC_US);
    assert_int_equal(out.nleases, 0);
    free(out.leases);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(*) FROM dead_letters WHERE sub_id = %lld",
                                 (long long)s.id),
                     0);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(*) FROM sub_pending WHERE sub_id = %lld"
                                         " AND seq = 1 AND blocked AND attempt = 0",
                                 (long long)s.id),
                     1);
    it = item(&s, s.epoch, 2, 1);
    assert_int_equal(eb_store_sub_ack(f->db, &it, 1, NULL, 0), EB_OK);
    assert_true(it.applied);
    out = claim_at(f->db, &s, 2, 2, NULL, NULL, 0, 2, 10, now, now + 13 * SEC_US);
    assert_int_equal(out.nleases, 1);
    assert_int_equal(out.leases[0].seq, 1);
    assert_int_equal(out.leases[0].attempt, 1);
    free(out.leases);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT claimed FROM subscriptions WHERE id = %lld",
                                 (long long)s.id) -
                         ut_sql_intf(f->raw, "SELECT acked FROM sub_acked WHERE sub_id = %lld",
                                     (long long)s.id),
                     1);
}

static void test_expired_event_row_deleted(void **state)
{
    struct ut_db *f = *state;
    struct eb_bus_rec b;
    struct eb_target_rec t = {.kind = EB_TARGET_SUBSCRIPTION, .value = "s",
                              .sub = {.ack_deadline_s = 10}};
    struct eb_rule_rec r = {.pattern = "{}", .description = "", .enabled = true,
                            .ntargets = 1, .targets = &t};
    const char *conflict;
    struct eb_sub_rec rec;
    struct sub s;
    int64_t now = eb_now_wall_us(), seqs[1] = {1};
    struct eb_sub_claim_out out;

    /* A bus that keeps events one hour. */
    assert_int_equal(eb_store_bus_insert(f->db, ut_tenant(f, "expiry"), "expiry", 1, 300, &b),
                     EB_OK);
    eb_strlcpy(r.name, "r", sizeof r.name);
    assert_int_equal(eb_store_rule_insert(f->db, b.id, &r, &conflict), EB_OK);
    assert_int_equal(eb_store_sub_get(f->db, b.id, "s", &rec), EB_OK);
    s.bus_id = b.id;
    s.id = rec.id;
    s.version = r.version;
    s.epoch = rec.epoch;
    append(f, b.id, 1);
    out = claim_at(f->db, &s, 0, 1, seqs, NULL, 1, 1, 10, now, now);
    assert_int_equal(out.nleases, 1);
    free(out.leases);
    /* Two hours on, the event has expired: its row goes, with no dead
     * letter (there is nothing left to redrive). */
    out = claim_at(f->db, &s, 1, 1, NULL, NULL, 0, 1, 10, now, now + 7200 * SEC_US);
    assert_int_equal(out.nleases, 0);
    assert_int_equal(out.dead, 0);
    free(out.leases);
    assert_int_equal(pending(f, &s), 0);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(*) FROM dead_letters WHERE sub_id = %lld",
                                 (long long)s.id),
                     0);
    assert_int_equal(eb_store_sub_get(f->db, b.id, "s", &rec), EB_OK);
    assert_int_equal(rec.outstanding, 0);
}

/* Collects EB_NOTIFY_SUBS ids. */
struct notes {
    int64_t ids[16];
    int n;
};

static void on_note(void *arg, enum eb_notify_channel ch, int64_t id)
{
    struct notes *n = arg;

    if (ch == EB_NOTIFY_SUBS && n->n < 16)
        n->ids[n->n++] = id;
}

/* Waits (up to a generous deadline) until a notification with id arrives
 * on db; the ids that came before it are in *n. */
static void wait_note(eb_db *db, int64_t id, struct notes *n)
{
    for (int tries = 0; tries < 300; tries++) {
        struct pollfd p = {.fd = eb_db_socket(db), .events = POLLIN};

        assert_int_equal(eb_store_drain_notifications(db, on_note, n), EB_OK);
        for (int i = 0; i < n->n; i++)
            if (n->ids[i] == id)
                return;
        poll(&p, 1, 100);
    }
    fail_msg("notification %lld did not arrive", (long long)id);
}

static void test_ack_notifies_other_replicas(void **state)
{
    struct ut_db *f = *state;
    struct eb_sub_settings set = {0};
    struct sub s = new_sub(f, "notify", set);
    int64_t now = eb_now_wall_us(), seqs[2] = {1, 2}, local[1] = {41};
    struct eb_sub_claim_out out;
    struct eb_ack_item it;
    struct notes n = {.n = 0};
    eb_db *listener;

    assert_int_equal(eb_db_connect(f->url, &listener), EB_OK);
    assert_int_equal(eb_store_listen_subs(listener), EB_OK);
    append(f, s.bus_id, 2);
    out = claim_at(f->db, &s, 0, 1, seqs, NULL, 1, 41, 1, now, now);
    free(out.leases);
    out = claim_at(f->db, &s, 1, 2, &seqs[1], NULL, 1, 42, 1, now, now);
    free(out.leases);

    /* Owner 41 is local: no notification; a marker shows none came. */
    it = item(&s, s.epoch, 1, 1);
    assert_int_equal(eb_store_sub_ack(f->db, &it, 1, local, 1), EB_OK);
    assert_true(it.applied);
    ut_sql_ok(f->raw, "SELECT pg_notify('cebus_subs', '-1')");
    wait_note(listener, -1, &n);
    assert_int_equal(n.n, 1);

    /* Owner 42 is another replica's stream: it is told to recount. */
    n.n = 0;
    it = item(&s, s.epoch, 2, 1);
    assert_int_equal(eb_store_sub_ack(f->db, &it, 1, local, 1), EB_OK);
    assert_true(it.applied);
    assert_int_equal(it.owner, 42);
    wait_note(listener, s.id, &n);
    eb_db_close(listener);
}

/* One racer of test_concurrent_claims: claims (0, 10] on its own
 * connection. */
struct racer {
    const char *url;
    const struct sub *s;
    int64_t owner;
    int64_t now;
    eb_status st;
    struct eb_sub_claim_out out;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    int64_t seqs[10], received[10];
    struct eb_sub_claim_in in = {.sub_id = r->s->id, .rule_version = r->s->version,
                                 .from_seq = 0, .to_seq = 10, .seqs = seqs,
                                 .received_us = received, .n = 10, .owner = r->owner,
                                 .room = 100, .now_us = r->now};
    eb_db *db;

    for (int i = 0; i < 10; i++) {
        seqs[i] = i + 1;
        received[i] = r->now;
    }
    r->st = eb_db_connect(r->url, &db);
    if (r->st == EB_OK) {
        r->st = eb_store_sub_claim(db, &in, &r->out);
        eb_db_close(db);
    }
    return NULL;
}

static void test_concurrent_claims(void **state)
{
    struct ut_db *f = *state;
    struct eb_sub_settings set = {0};
    struct sub s = new_sub(f, "race", set);
    struct racer r[2];
    pthread_t th[2];

    append(f, s.bus_id, 10);
    for (int i = 0; i < 2; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].url = f->url;
        r[i].s = &s;
        r[i].owner = 100 + i;
        r[i].now = eb_now_wall_us();
        assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(r[0].st, EB_OK);
    assert_int_equal(r[1].st, EB_OK);
    /* Serialized by the row lock: one leases all ten, the other finds the
     * frontier moved and leases nothing. */
    assert_int_equal(r[0].out.nleases + r[1].out.nleases, 10);
    assert_true((r[0].out.result == EB_CLAIM_DONE) != (r[1].out.result == EB_CLAIM_DONE));
    assert_true(r[0].out.result == EB_CLAIM_MOVED || r[1].out.result == EB_CLAIM_MOVED);
    assert_int_equal(r[0].out.frontier, 10);
    assert_int_equal(r[1].out.frontier, 10);
    assert_int_equal(pending(f, &s), 10);
    assert_int_equal(ut_sql_intf(f->raw, "SELECT count(DISTINCT owner) FROM sub_pending"
                                         " WHERE sub_id = %lld",
                                 (long long)s.id),
                     1);
    free(r[0].out.leases);
    free(r[1].out.leases);
}

static int setup_db(void **state)
{
    return ut_db_setup(state, "store_durable");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claim_leases_matches_and_moves_frontier),
        cmocka_unit_test(test_claim_compare_and_set),
        cmocka_unit_test(test_concurrent_claims),
        cmocka_unit_test(test_claim_rule_changed),
        cmocka_unit_test(test_partition_key_blocking),
        cmocka_unit_test(test_max_attempts_dead_letter),
        cmocka_unit_test(test_max_age_dead_letter),
        cmocka_unit_test(test_stale_acks),
        cmocka_unit_test(test_nack_delay),
        cmocka_unit_test(test_release),
        cmocka_unit_test(test_outstanding_and_room_cut_the_range),
        cmocka_unit_test(test_subscription_lifecycle),
        cmocka_unit_test(test_new_subscription_starts_at_head),
        cmocka_unit_test(test_read_seqs),
        cmocka_unit_test(test_dead_letter_frees_key_and_redrive),
        cmocka_unit_test(test_expired_event_row_deleted),
        cmocka_unit_test(test_ack_notifies_other_replicas),
    };

    return cmocka_run_group_tests(tests, setup_db, ut_db_teardown);
}
