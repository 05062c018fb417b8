/* Unit tests for server/store_admin.c against a real PostgreSQL: tenant
 * listing, update and deletion (with every row a tenant owns), key listing
 * and revocation (tenant scoping, the last platform admin key), bus update
 * and deletion, and the open streams' check.
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
#include <unistd.h>

#include "db_fixture.h"
#include "log.h"
#include "store.h"
#include "util.h"

/* --- Helpers ------------------------------------------------------------- */

/* The integer in the first cell of a query's result; sql is a format
 * taking one id. */
static int64_t sql_count(struct ut_db *f, const char *fmt, int64_t id)
{
    char sql[512];

    snprintf(sql, sizeof sql, fmt, (long long)id);
    return ut_sql_int(f->raw, sql);
}

/* Inserts a key with prefix (also the seed of its fake hash); returns its
 * id. */
static int64_t new_key(struct ut_db *f, int64_t tenant_id, const char *prefix, int role,
                       int64_t expires_us)
{
    struct eb_key_rec rec;
    uint8_t hash[32];

    memset(hash, 0, sizeof hash);
    memcpy(hash, prefix, strlen(prefix) < 32 ? strlen(prefix) : 32);
    assert_int_equal(
        eb_store_key_insert(f->db, tenant_id, prefix, hash, role, "d", expires_us, NULL), EB_OK);
    assert_int_equal(eb_store_key_lookup(f->db, hash, &rec), EB_OK);
    return rec.id;
}

/* Appends n events (with dedup entries) to a bus. */
static void add_events(struct ut_db *f, int64_t bus_id, int n)
{
    struct eb_append_row rows[8];
    char ids[8][16];

    assert_true(n <= 8);
    memset(rows, 0, sizeof rows);
    for (int i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "e%d", i);
        rows[i].bus_id = bus_id;
        rows[i].received_us = eb_now_wall_us();
        rows[i].source = "/test";
        rows[i].event_id = ids[i];
        rows[i].type = "t";
        rows[i].body = (const uint8_t *)"x";
        rows[i].body_len = 1;
    }
    assert_int_equal(eb_store_events_append(f->db, rows, (size_t)n), EB_OK);
}

static bool contains(const int64_t *ids, size_t n, int64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

/* --- Tenants -------------------------------------------------------------- */

static void test_tenant_list_paging(void **state)
{
    struct ut_db *f = *state;
    struct eb_tenant_rec *page;
    char after[EB_NAME_MAX + 1] = "";
    size_t n, total = 0;
    bool saw_platform = false;

    ut_tenant(f, "list-a");
    ut_tenant(f, "list-b");
    ut_tenant(f, "list-c");
    for (int pages = 0;; pages++) {
        assert_true(pages < 20);
        assert_int_equal(eb_store_tenant_list(f->db, after, 2, &page, &n), EB_OK);
        for (size_t i = 0; i < n; i++) {
            assert_true(strcmp(page[i].name, after) > 0);
            saw_platform |= strcmp(page[i].name, "platform") == 0;
        }
        total += n;
        if (n > 0)
            snprintf(after, sizeof after, "%s", page[n - 1].name);
        free(page);
        if (n < 2)
            break;
    }
    assert_true(saw_platform);
    assert_true(total >= 4);
}

static void test_tenant_update(void **state)
{
    struct ut_db *f = *state;
    int64_t id = ut_tenant(f, "upd");
    struct eb_tenant_rec t;

    assert_int_equal(eb_store_tenant_update(f->db, id, "Updated", -1, &t), EB_OK);
    assert_string_equal(t.display_name, "Updated");
    assert_false(t.disabled);
    assert_int_equal(eb_store_tenant_update(f->db, id, NULL, 1, &t), EB_OK);
    assert_string_equal(t.display_name, "Updated");
    assert_true(t.disabled);
    assert_int_equal(eb_store_tenant_update(f->db, id, NULL, 0, &t), EB_OK);
    assert_false(t.disabled);
    assert_int_equal(eb_store_tenant_update(f->db, 999999, "x", -1, &t), EB_ENOTFOUND);
}

/* Deletion removes the tenant's keys, buses, rules, targets, events and
 * dedup entries, and nothing of another tenant. */
static void test_tenant_delete(void **state)
{
    struct ut_db *f = *state;
    int64_t gone = ut_tenant(f, "del-me"), kept = ut_tenant(f, "del-keep");
    struct eb_bus_rec b1 = ut_bus(f, gone, "b1"), b2 = ut_bus(f, gone, "b2");
    struct eb_bus_rec k1 = ut_bus(f, kept, "b1");
    struct eb_target_rec target = {EB_TARGET_SUBSCRIPTION, "s1"};
    struct eb_rule_rec rule = {0};
    const char *conflict;

    new_key(f, gone, "cb_delme001", 2, 0);
    new_key(f, kept, "cb_delkeep1", 2, 0);
    snprintf(rule.name, sizeof rule.name, "r1");
    rule.pattern = "{}";
    rule.enabled = true;
    rule.ntargets = 1;
    rule.targets = &target;
    assert_int_equal(eb_store_rule_insert(f->db, b1.id, &rule, &conflict), EB_OK);
    add_events(f, b1.id, 3);
    add_events(f, b2.id, 2);
    add_events(f, k1.id, 2);

    assert_int_equal(eb_store_tenant_delete(f->db, gone), EB_OK);
    assert_int_equal(sql_count(f, "SELECT count(*) FROM tenants WHERE id = %lld", gone), 0);
    assert_int_equal(sql_count(f, "SELECT count(*) FROM api_keys WHERE tenant_id = %lld", gone),
                     0);
    assert_int_equal(sql_count(f, "SELECT count(*) FROM buses WHERE tenant_id = %lld", gone), 0);
    assert_int_equal(sql_count(f, "SELECT count(*) FROM rules WHERE bus_id = %lld", b1.id), 0);
    assert_int_equal(sql_count(f, "SELECT count(*) FROM targets WHERE bus_id = %lld", b1.id), 0);
    for (int i = 0; i < 2; i++) {
        int64_t bid = i ? b2.id : b1.id;
        assert_int_equal(sql_count(f, "SELECT count(*) FROM events WHERE bus_id = %lld", bid), 0);
        assert_int_equal(
            sql_count(f, "SELECT count(*) FROM event_dedup WHERE bus_id = %lld", bid), 0);
    }
    assert_int_equal(sql_count(f, "SELECT count(*) FROM events WHERE bus_id = %lld", k1.id), 2);
    assert_int_equal(sql_count(f, "SELECT count(*) FROM event_dedup WHERE bus_id = %lld", k1.id),
                     2);
    assert_int_equal(sql_count(f, "SELECT count(*) FROM api_keys WHERE tenant_id = %lld", kept),
                     1);
    assert_int_equal(eb_store_tenant_delete(f->db, gone), EB_ENOTFOUND);
    /* A tenant without buses is deleted too (an empty id array). */
    assert_int_equal(eb_store_tenant_delete(f->db, ut_tenant(f, "del-empty")), EB_OK);
}

/* --- Keys ------------------------------------------------------------------ */

static void test_key_list_and_revoke(void **state)
{
    struct ut_db *f = *state;
    int64_t t1 = ut_tenant(f, "keys-1"), t2 = ut_tenant(f, "keys-2");
    struct eb_key_info *keys, k;
    size_t n;

    new_key(f, t1, "cb_keysaaa1", 3, 0);
    new_key(f, t1, "cb_keysaaa2", 4, eb_now_wall_us() + 3600LL * 1000000);
    new_key(f, t1, "cb_keysaaa3", 2, 0);
    new_key(f, t2, "cb_keysbbb1", 2, 0);

    assert_int_equal(eb_store_key_list(f->db, t1, "", 2, &keys, &n), EB_OK);
    assert_int_equal(n, 2);
    assert_string_equal(keys[0].prefix, "cb_keysaaa1");
    assert_string_equal(keys[0].tenant, "keys-1");
    assert_int_equal(keys[0].role, 3);
    assert_int_equal(keys[0].expires_us, 0);
    assert_true(keys[1].expires_us > 0);
    free(keys);
    assert_int_equal(eb_store_key_list(f->db, t1, "cb_keysaaa2", 2, &keys, &n), EB_OK);
    assert_int_equal(n, 1);
    assert_string_equal(keys[0].prefix, "cb_keysaaa3");
    free(keys);

    /* Scoped to another tenant, the key does not exist. */
    assert_int_equal(eb_store_key_revoke(f->db, t2, "cb_keysaaa1", true, &k), EB_ENOTFOUND);
    assert_int_equal(eb_store_key_revoke(f->db, t1, "cb_nothere1", true, &k), EB_ENOTFOUND);
    assert_int_equal(eb_store_key_revoke(f->db, t1, "cb_keysaaa1", false, &k), EB_OK);
    assert_true(k.revoked);
    assert_int_equal(eb_store_key_revoke(f->db, 0, "cb_keysaaa1", true, &k), EB_OK);
    assert_int_equal(eb_store_key_list(f->db, t1, "", 1, &keys, &n), EB_OK);
    assert_true(keys[0].revoked);
    free(keys);
}

/* The last usable platform admin key cannot be revoked; an expired one
 * does not count. */
static void test_last_admin_key(void **state)
{
    struct ut_db *f = *state;
    struct eb_tenant_rec platform;
    struct eb_key_info k;

    assert_int_equal(eb_store_tenant_get(f->db, "platform", &platform), EB_OK);
    ut_sql_ok(f->raw, "UPDATE api_keys SET revoked_at = now() WHERE role = 1");
    new_key(f, platform.id, "cb_admin001", 1, 0);
    new_key(f, platform.id, "cb_admin002", 1, 0);
    new_key(f, platform.id, "cb_admin003", 1, eb_now_wall_us() + 1000000);
    ut_sql_ok(f->raw, "UPDATE api_keys SET expires_at = now() - interval '1 hour'"
                   " WHERE prefix = 'cb_admin003'");
    /* Only a platform admin may revoke platform admin keys. */
    assert_int_equal(eb_store_key_revoke(f->db, platform.id, "cb_admin001", false, &k), EB_EPERM);
    assert_int_equal(eb_store_key_revoke(f->db, 0, "cb_admin001", true, &k), EB_OK);
    assert_int_equal(eb_store_key_revoke(f->db, 0, "cb_admin002", true, &k), EB_EPRECOND);
    assert_int_equal(sql_count(f, "SELECT count(*) FROM api_keys WHERE tenant_id = %lld AND"
                                  " revoked_at IS NULL AND prefix = 'cb_admin002'",
                               platform.id),
                     1);
    /* The connection is usable after the rolled-back transaction. */
    assert_int_equal(eb_store_tenant_get(f->db, "platform", &platform), EB_OK);
}

/* --- Buses ----------------------------------------------------------------- */

static void test_bus_update_delete(void **state)
{
    struct ut_db *f = *state;
    int64_t t = ut_tenant(f, "bus-ud");
    struct eb_bus_rec b = ut_bus(f, t, "b"), other = ut_bus(f, t, "other"), u;

    assert_int_equal(eb_store_bus_update(f->db, b.id, 24, -1, &u), EB_OK);
    assert_int_equal(u.retention_hours, 24);
    assert_int_equal(u.dedup_window_seconds, 300);
    assert_string_equal(u.tenant, "bus-ud");
    assert_int_equal(eb_store_bus_update(f->db, b.id, -1, 10, &u), EB_OK);
    assert_int_equal(u.retention_hours, 24);
    assert_int_equal(u.dedup_window_seconds, 10);
    assert_int_equal(eb_store_bus_update(f->db, 999999, 1, 1, &u), EB_ENOTFOUND);

    add_events(f, b.id, 3);
    add_events(f, other.id, 1);
    assert_int_equal(eb_store_bus_delete(f->db, b.id), EB_OK);
    assert_int_equal(sql_count(f, "SELECT count(*) FROM buses WHERE id = %lld", b.id), 0);
    assert_int_equal(sql_count(f, "SELECT count(*) FROM events WHERE bus_id = %lld", b.id), 0);
    assert_int_equal(sql_count(f, "SELECT count(*) FROM event_dedup WHERE bus_id = %lld", b.id),
                     0);
    assert_int_equal(sql_count(f, "SELECT count(*) FROM events WHERE bus_id = %lld", other.id), 1);
    assert_int_equal(eb_store_bus_delete(f->db, b.id), EB_ENOTFOUND);
}

/* --- Streams check ---------------------------------------------------------- */

static void test_streams_check(void **state)
{
    struct ut_db *f = *state;
    int64_t t = ut_tenant(f, "chk"), off = ut_tenant(f, "chk-off");
    int64_t ok_key = new_key(f, t, "cb_chkok001", 4, 0);
    int64_t revoked = new_key(f, t, "cb_chkrev01", 4, 0);
    int64_t expired = new_key(f, t, "cb_chkexp01", 4, eb_now_wall_us() + 1000000);
    int64_t disabled = new_key(f, off, "cb_chkoff01", 4, 0);
    struct eb_bus_rec live = ut_bus(f, t, "live"), dead = ut_bus(f, t, "dead");
    int64_t keys[] = {ok_key, revoked, expired, disabled, 987654, ok_key};
    int64_t buses[] = {live.id, dead.id, live.id};
    int64_t *bad, *gone;
    size_t nbad, ngone;
    struct eb_tenant_rec tr;
    struct eb_key_info k;

    assert_int_equal(eb_store_key_revoke(f->db, t, "cb_chkrev01", true, &k), EB_OK);
    ut_sql_ok(f->raw, "UPDATE api_keys SET expires_at = now() - interval '1 second'"
                   " WHERE prefix = 'cb_chkexp01'");
    assert_int_equal(eb_store_tenant_update(f->db, off, NULL, 1, &tr), EB_OK);
    assert_int_equal(eb_store_bus_delete(f->db, dead.id), EB_OK);

    assert_int_equal(eb_store_streams_check(f->db, keys, 6, buses, 3, &bad, &nbad, &gone, &ngone),
                     EB_OK);
    assert_int_equal(nbad, 4);
    assert_true(contains(bad, nbad, revoked));
    assert_true(contains(bad, nbad, expired));
    assert_true(contains(bad, nbad, disabled));
    assert_true(contains(bad, nbad, 987654));
    assert_false(contains(bad, nbad, ok_key));
    assert_int_equal(ngone, 1);
    assert_int_equal(gone[0], dead.id);
    free(bad);
    free(gone);

    assert_int_equal(eb_store_streams_check(f->db, NULL, 0, NULL, 0, &bad, &nbad, &gone, &ngone),
                     EB_OK);
    assert_int_equal(nbad, 0);
    assert_int_equal(ngone, 0);
    free(bad);
    free(gone);
}

static int setup_db(void **state)
{
    return ut_db_setup(state, "store_admin");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tenant_list_paging),
        cmocka_unit_test(test_tenant_update),
        cmocka_unit_test(test_tenant_delete),
        cmocka_unit_test(test_key_list_and_revoke),
        cmocka_unit_test(test_last_admin_key),
        cmocka_unit_test(test_bus_update_delete),
        cmocka_unit_test(test_streams_check),
    };

    return cmocka_run_group_tests(tests, setup_db, ut_db_teardown);
}
