/* Unit tests for server/store_quota.c against a real PostgreSQL: stored
 * quotas (unset, set, reset, missing tenant, deleted with the tenant), the
 * live-server heartbeat (live count, the other servers' streams, servers
 * that fell silent), and rule inserts and updates within rules_per_bus and
 * subscriptions, also from concurrent connections.
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
#include <pthread.h>
#include <unistd.h>

#include "db_fixture.h"
#include "log.h"
#include "store.h"
#include "store_quota.h"
#include "util.h"

static void test_quota_get_set(void **state)
{
    struct ut_db *f = *state;
    int64_t t = ut_tenant(f, "q-one");
    const struct eb_quota_limits some = {50, 0, 3, 0, 7, 9};
    const struct eb_quota_limits none = {0, 0, 0, 0, 0, 0};
    struct eb_quota_limits got;

    memset(&got, 0xff, sizeof got);
    assert_int_equal(eb_store_quota_get(f->db, t, &got), EB_OK);
    assert_memory_equal(&got, &none, sizeof got);
    assert_int_equal(eb_store_quota_set(f->db, t, &some), EB_OK);
    assert_int_equal(eb_store_quota_get(f->db, t, &got), EB_OK);
    assert_memory_equal(&got, &some, sizeof got);
    /* Unset fields are NULL in the table: the server's default. */
    assert_int_equal(ut_sql_int(f->raw, "SELECT count(*) FROM quotas WHERE bytes_per_second IS NULL"
                                   " AND rules_per_bus IS NULL AND events_per_second = 50"),
                     1);
    assert_int_equal(eb_store_quota_set(f->db, t, &none), EB_OK);
    assert_int_equal(eb_store_quota_get(f->db, t, &got), EB_OK);
    assert_memory_equal(&got, &none, sizeof got);

    assert_int_equal(eb_store_quota_set(f->db, 987654321, &some), EB_ENOTFOUND);
    assert_int_equal(eb_store_quota_set(f->db, t, &some), EB_OK);
    assert_int_equal(eb_store_tenant_delete(f->db, t), EB_OK);
    assert_int_equal(ut_sql_int(f->raw, "SELECT count(*) FROM quotas"), 0);
}

static void test_heartbeat(void **state)
{
    struct ut_db *f = *state;
    const int64_t t1[] = {11}, s1[] = {2};
    const int64_t t2[] = {11, 12}, s2[] = {3, 1};
    int64_t *rt = NULL, *rs = NULL;
    size_t rn = 99;
    int live = 0;

    assert_int_equal(eb_store_heartbeat(f->db, "srv-a", t1, s1, 1, &live, &rt, &rs, &rn), EB_OK);
    assert_int_equal(live, 1);
    assert_int_equal(rn, 0);
    free(rt);
    free(rs);

    assert_int_equal(eb_store_heartbeat(f->db, "srv-b", t2, s2, 2, &live, &rt, &rs, &rn), EB_OK);
    assert_int_equal(live, 2);
    assert_int_equal(rn, 1); /* srv-a's streams only */
    assert_int_equal(rt[0], 11);
    assert_int_equal(rs[0], 2);
    free(rt);
    free(rs);

    /* srv-a's next heartbeat: no streams of its own any more. */
    assert_int_equal(eb_store_heartbeat(f->db, "srv-a", NULL, NULL, 0, &live, &rt, &rs, &rn),
                     EB_OK);
    assert_int_equal(live, 2);
    assert_int_equal(rn, 2);
    for (size_t i = 0; i < rn; i++)
        assert_int_equal(rs[i], rt[i] == 11 ? 3 : 1);
    free(rt);
    free(rs);
    assert_int_equal(ut_sql_int(f->raw, "SELECT count(*) FROM server_streams WHERE server_id = 'srv-a'"),
                     0);

    /* srv-b falls silent: not live, its streams ignored; after a minute
     * its rows are gone. */
    ut_sql_ok(f->raw, "UPDATE server_heartbeats SET heartbeat_at = now() - interval '10 seconds'"
                   " WHERE server_id = 'srv-b'");
    assert_int_equal(eb_store_heartbeat(f->db, "srv-a", NULL, NULL, 0, &live, &rt, &rs, &rn),
                     EB_OK);
    assert_int_equal(live, 1);
    assert_int_equal(rn, 0);
    free(rt);
    free(rs);
    ut_sql_ok(f->raw, "UPDATE server_heartbeats SET heartbeat_at = now() - interval '2 minutes'"
                   " WHERE server_id = 'srv-b'");
    assert_int_equal(eb_store_heartbeat(f->db, "srv-a", NULL, NULL, 0, &live, &rt, &rs, &rn),
                     EB_OK);
    free(rt);
    free(rs);
    assert_int_equal(ut_sql_int(f->raw, "SELECT count(*) FROM server_streams"), 0);
    assert_int_equal(ut_sql_int(f->raw, "SELECT count(*) FROM server_heartbeats"), 1);

    assert_int_equal(eb_store_heartbeat_remove(f->db, "srv-a"), EB_OK);
    assert_int_equal(ut_sql_int(f->raw, "SELECT count(*) FROM server_heartbeats"), 0);
}

/* Inserts rule name on bus_id with nsubs subscriptions named name-0...
 * within lim; returns the store's status. */
static eb_status insert_rule(eb_db *db, int64_t bus_id, const char *name, size_t nsubs,
                             struct eb_rule_limits *lim)
{
    struct eb_rule_rec r;
    struct eb_target_rec targets[5] = {{0}};
    char subs[5][80];
    const char *conflict = NULL;

    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "%s", name);
    r.pattern = "{}";
    r.description = "";
    r.enabled = true;
    for (size_t i = 0; i < nsubs; i++) {
        snprintf(subs[i], sizeof subs[i], "%s-%zu", name, i);
        targets[i].kind = EB_TARGET_SUBSCRIPTION;
        targets[i].value = subs[i];
    }
    r.targets = targets;
    r.ntargets = nsubs;
    return eb_store_rule_insert_limited(db, bus_id, &r, lim, &conflict);
}

static void test_rule_limits(void **state)
{
    struct ut_db *f = *state;
    int64_t t = ut_tenant(f, "q-rules"), other = ut_tenant(f, "q-other");
    struct eb_bus_rec b1 = ut_bus(f, t, "one"), b2 = ut_bus(f, t, "two");
    struct eb_bus_rec ob = ut_bus(f, other, "one");
    struct eb_rule_limits lim = {.tenant_id = t, .max_rules = 2, .max_subscriptions = 2};
    struct eb_rule_limits olim = {.tenant_id = other, .max_rules = 2, .max_subscriptions = 2};

    assert_int_equal(insert_rule(f->db, b1.id, "r1", 1, &lim), EB_OK);
    assert_int_equal(insert_rule(f->db, b1.id, "r2", 2, &lim), EB_EEXHAUSTED);
    assert_string_equal(lim.exceeded, "subscriptions");
    assert_int_equal(insert_rule(f->db, b1.id, "r2", 0, &lim), EB_OK);
    assert_int_equal(insert_rule(f->db, b1.id, "r3", 0, &lim), EB_EEXHAUSTED);
    assert_string_equal(lim.exceeded, "rules_per_bus");
    /* Rules are per bus, subscriptions per tenant. */
    assert_int_equal(insert_rule(f->db, b2.id, "r4", 1, &lim), EB_OK);
    assert_int_equal(insert_rule(f->db, b2.id, "r5", 1, &lim), EB_EEXHAUSTED);
    assert_string_equal(lim.exceeded, "subscriptions");
    /* Another tenant's counts are its own. */
    assert_int_equal(insert_rule(f->db, ob.id, "r1", 2, &olim), EB_OK);
    /* A refused insert left nothing behind and the connection usable. */
    assert_int_equal(ut_sql_int(f->raw, "SELECT count(*) FROM rules"), 4);
    assert_int_equal(insert_rule(f->db, b2.id, "r5", 0, NULL), EB_OK);
}

/* Replaces rule name's targets with nsubs subscriptions named prefix-0...
 * within lim. */
static eb_status update_targets(eb_db *db, int64_t bus_id, const char *name, const char *prefix,
                                size_t nsubs, struct eb_rule_limits *lim)
{
    struct eb_rule_change c = {.enabled = -1, .set_targets = true, .limits = lim};
    struct eb_target_rec targets[5] = {{0}};
    struct eb_rule_rec out = {0};
    char subs[5][80];
    const char *conflict = NULL;
    eb_status st;

    for (size_t i = 0; i < nsubs; i++) {
        snprintf(subs[i], sizeof subs[i], "%s-%zu", prefix, i);
        targets[i].kind = EB_TARGET_SUBSCRIPTION;
        targets[i].value = subs[i];
    }
    c.targets = targets;
    c.ntargets = nsubs;
    st = eb_store_rule_update(db, bus_id, name, &c, &out, &conflict);
    eb_rule_rec_clear(&out);
    return st;
}

/* An update may keep or swap a rule's own subscriptions, not add past the
 * quota; rules_per_bus does not apply to updates. */
static void test_rule_update_limits(void **state)
{
    struct ut_db *f = *state;
    int64_t t = ut_tenant(f, "q-update");
    struct eb_bus_rec b = ut_bus(f, t, "upd");
    struct eb_rule_limits lim = {.tenant_id = t, .max_rules = 2, .max_subscriptions = 3};

    assert_int_equal(insert_rule(f->db, b.id, "u1", 1, &lim), EB_OK);
    assert_int_equal(insert_rule(f->db, b.id, "u2", 2, &lim), EB_OK);
    /* At both limits now; u1 may still swap its one subscription. */
    assert_int_equal(update_targets(f->db, b.id, "u1", "swap", 1, &lim), EB_OK);
    assert_int_equal(update_targets(f->db, b.id, "u1", "grow", 2, &lim), EB_EEXHAUSTED);
    assert_string_equal(lim.exceeded, "subscriptions");
    /* The refused update changed nothing. */
    assert_int_equal(ut_sql_int(f->raw, "SELECT count(*) FROM targets WHERE subscription = 'swap-0'"),
                     1);
    assert_int_equal(update_targets(f->db, b.id, "u2", "none", 0, &lim), EB_OK);
    assert_int_equal(update_targets(f->db, b.id, "u1", "grow", 3, &lim), EB_OK);
    assert_int_equal(update_targets(f->db, b.id, "nope", "x", 1, &lim), EB_ENOTFOUND);
}

struct racer {
    const char *url;
    int64_t bus_id, tenant_id;
    int index;
    eb_status st;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    struct eb_rule_limits lim = {.tenant_id = r->tenant_id, .max_rules = 3,
                                 .max_subscriptions = 100};
    char name[32];
    eb_db *db = NULL;

    snprintf(name, sizeof name, "race-%d", r->index);
    r->st = eb_db_connect(r->url, &db);
    if (r->st == EB_OK)
        r->st = insert_rule(db, r->bus_id, name, 1, &lim);
    eb_db_close(db);
    return NULL;
}

/* Concurrent creates cannot both take the last place. */
static void test_rule_limits_concurrent(void **state)
{
    struct ut_db *f = *state;
    int64_t t = ut_tenant(f, "q-race");
    struct eb_bus_rec b = ut_bus(f, t, "race");
    struct racer r[8];
    pthread_t th[8];
    int ok = 0, exhausted = 0;

    for (int i = 0; i < 8; i++) {
        r[i] = (struct racer){.url = f->url, .bus_id = b.id, .tenant_id = t, .index = i};
        pthread_create(&th[i], NULL, race, &r[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        ok += r[i].st == EB_OK;
        exhausted += r[i].st == EB_EEXHAUSTED;
    }
    assert_int_equal(ok, 3);
    assert_int_equal(exhausted, 5);
}

static int setup_db(void **state)
{
    return ut_db_setup(state, "store_quota");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quota_get_set),
        cmocka_unit_test(test_heartbeat),
        cmocka_unit_test(test_rule_limits),
        cmocka_unit_test(test_rule_limits_concurrent),
        cmocka_unit_test(test_rule_update_limits),
    };

    return cmocka_run_group_tests(tests, setup_db, ut_db_teardown);
}
