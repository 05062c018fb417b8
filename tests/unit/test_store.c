/* Unit tests for server/store*.c against a real PostgreSQL: migrations,
 * tenants, keys, buses, rules with targets (updates and what following
 * streams ask), and connections that fail or break.
 *
 * The process creates its own database on the cluster named by
 * CEBUS_TEST_DATABASE_URL and drops it at the end (tests/unit/db_fixture.h).
 * The event log's tests are in test_store_events.c.
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
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include "db_fixture.h"
#include "log.h"
#include "store.h"
#include "util.h"

/* --- Helpers ------------------------------------------------------------- */

/* Compares two bus records field by field (the name buffers' bytes past
 * the NUL are not part of the value). */
static void assert_bus_equal(const struct eb_bus_rec *x, const struct eb_bus_rec *y)
{
    assert_int_equal(x->id, y->id);
    assert_int_equal(x->tenant_id, y->tenant_id);
    assert_string_equal(x->tenant, y->tenant);
    assert_string_equal(x->name, y->name);
    assert_int_equal(x->retention_hours, y->retention_hours);
    assert_int_equal(x->dedup_window_seconds, y->dedup_window_seconds);
    assert_int_equal(x->created_us, y->created_us);
}

static void fake_hash(uint8_t hash[32], unsigned seed)
{
    for (int i = 0; i < 32; i++)
        hash[i] = (uint8_t)(seed * 31u + (unsigned)i * 7u);
    hash[5] = 0; /* a NUL inside: the hash is bytes, not a string */
}

static void assert_recent(int64_t us)
{
    int64_t now = eb_now_wall_us();
    assert_true(us > now - 120LL * 1000000);
    assert_true(us < now + 120LL * 1000000);
}

/* --- Migrations ---------------------------------------------------------- */

static void test_migrate_twice(void **state)
{
    struct ut_db *f = *state;
    int applied = -1;

    assert_int_equal(eb_store_migrate(f->db, f->migrations, &applied), EB_OK);
    assert_int_equal(applied, 0);
    assert_int_equal(ut_sql_int(f->raw, "SELECT count(*) FROM schema_migrations"),
                     ut_migration_count(f->migrations));
    /* The advisory lock was released: another session can take it. */
    assert_int_equal(ut_sql_int(f->raw, "SELECT pg_try_advisory_lock(7391020250001)::int"), 1);
    ut_sql_ok(f->raw, "SELECT pg_advisory_unlock(7391020250001)");

    /* A missing directory is an error, not a silent no-op. */
    applied = -1;
    assert_int_equal(eb_store_migrate(f->db, "/nonexistent/cebus/migrations", &applied),
                     EB_EINTERNAL);
    assert_int_equal(applied, 0);
}

/* Replicas starting together: two connections migrating one fresh
 * database at once apply every file exactly once between them. */
struct migrator {
    const char *url, *dir;
    eb_status st;
    int applied;
};

static void *migrate_worker(void *arg)
{
    struct migrator *m = arg;
    eb_db *db = eb_db_open(m->url);

    m->st = eb_store_migrate(db, m->dir, &m->applied);
    eb_db_close(db);
    return NULL;
}

static void test_migrate_concurrent(void **state)
{
    struct ut_db *f = *state;
    const char *base = getenv("CEBUS_TEST_DATABASE_URL");
    char name[80], url[1200], sql[160];
    struct migrator m[3];
    pthread_t th[3];
    int total = 0;

    snprintf(name, sizeof name, "%s_m", f->dbname);
    snprintf(url, sizeof url, "%s dbname=%s", base, name);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    ut_sql_ok(f->admin, sql);
    for (int i = 0; i < 3; i++) {
        m[i] = (struct migrator){.url = url, .dir = f->migrations, .st = EB_EINTERNAL};
        assert_int_equal(pthread_create(&th[i], NULL, migrate_worker, &m[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(m[i].st, EB_OK);
        total += m[i].applied;
    }
    snprintf(sql, sizeof sql, "DROP DATABASE %s WITH (FORCE)", name);
    ut_sql_ok(f->admin, sql);
    assert_int_equal(total, ut_migration_count(f->migrations));
}

/* --- Tenants and keys ---------------------------------------------------- */

static void test_tenants(void **state)
{
    struct ut_db *f = *state;
    struct eb_tenant_rec t, g;

    assert_int_equal(eb_store_tenant_get(f->db, "platform", &g), EB_OK);
    assert_string_equal(g.name, "platform");
    assert_false(g.disabled);

    assert_int_equal(eb_store_tenant_insert(f->db, "acme", "Acme Corp.", &t), EB_OK);
    assert_true(t.id > 0);
    assert_string_equal(t.name, "acme");
    assert_string_equal(t.display_name, "Acme Corp.");
    assert_false(t.disabled);
    assert_recent(t.created_us);

    memset(&g, 0, sizeof g);
    assert_int_equal(eb_store_tenant_get(f->db, "acme", &g), EB_OK);
    assert_int_equal(g.id, t.id);
    assert_string_equal(g.name, "acme");
    assert_string_equal(g.display_name, "Acme Corp.");
    assert_int_equal(g.created_us, t.created_us);

    assert_int_equal(eb_store_tenant_insert(f->db, "acme", "Again", &g), EB_EEXIST);
    assert_int_equal(eb_store_tenant_get(f->db, "nobody", &g), EB_ENOTFOUND);
    assert_int_equal(eb_store_tenant_get(f->db, "ACME", &g), EB_ENOTFOUND);

    ut_sql_ok(f->raw, "UPDATE tenants SET disabled = true WHERE name = 'acme'");
    assert_int_equal(eb_store_tenant_get(f->db, "acme", &g), EB_OK);
    assert_true(g.disabled);

    /* The connection is still fine after the unique violation. */
    assert_int_equal(eb_store_tenant_insert(f->db, "acme2", "", &t), EB_OK);
}

static void test_keys(void **state)
{
    struct ut_db *f = *state;
    int64_t tid = ut_tenant(f, "keys-tenant"), created = 0, count = -1;
    int64_t expires = eb_now_wall_us() + 3600LL * 1000000 + 123457;
    uint8_t h1[32], h2[32], h3[32], h4[32];
    struct eb_key_rec k;

    fake_hash(h1, 1);
    fake_hash(h2, 2);
    fake_hash(h3, 3);
    fake_hash(h4, 4);
    assert_int_equal(eb_store_admin_key_count(f->db, &count), EB_OK);
    assert_int_equal(count, 0);

    assert_int_equal(eb_store_key_insert(f->db, tid, "cb_aaaaaaaa", h1, 3, "publisher key", 0,
                                         &created),
                     EB_OK);
    assert_recent(created);
    memset(&k, 0x55, sizeof k);
    assert_int_equal(eb_store_key_lookup(f->db, h1, &k), EB_OK);
    assert_true(k.id > 0);
    assert_int_equal(k.tenant_id, tid);
    assert_string_equal(k.tenant, "keys-tenant");
    assert_string_equal(k.prefix, "cb_aaaaaaaa");
    assert_int_equal(k.role, 3);
    assert_false(k.tenant_disabled);
    assert_false(k.revoked);
    assert_int_equal(k.expires_us, 0);

    /* An expiry round-trips to the microsecond. */
    assert_int_equal(eb_store_key_insert(f->db, tid, "cb_bbbbbbbb", h2, 4, "", expires, NULL),
                     EB_OK);
    assert_int_equal(eb_store_key_lookup(f->db, h2, &k), EB_OK);
    assert_int_equal(k.role, 4);
    assert_int_equal(k.expires_us, expires);

    /* Hash and prefix are each unique. */
    assert_int_equal(eb_store_key_insert(f->db, tid, "cb_cccccccc", h1, 3, "", 0, NULL),
                     EB_EEXIST);
    assert_int_equal(eb_store_key_insert(f->db, tid, "cb_aaaaaaaa", h3, 3, "", 0, NULL),
                     EB_EEXIST);
    /* A missing tenant is a foreign key violation: not found. */
    assert_int_equal(eb_store_key_insert(f->db, 987654321, "cb_dddddddd", h3, 3, "", 0, NULL),
                     EB_ENOTFOUND);
    assert_int_equal(eb_store_key_lookup(f->db, h3, &k), EB_ENOTFOUND);
    /* A hash that differs only after its NUL byte is another key. */
    memcpy(h4, h1, 32);
    h4[31] ^= 1;
    assert_int_equal(eb_store_key_lookup(f->db, h4, &k), EB_ENOTFOUND);

    /* Revocation and a disabled tenant show in the lookup. */
    ut_sql_ok(f->raw, "UPDATE api_keys SET revoked_at = now() WHERE prefix = 'cb_aaaaaaaa'");
    assert_int_equal(eb_store_key_lookup(f->db, h1, &k), EB_OK);
    assert_true(k.revoked);
    ut_sql_ok(f->raw, "UPDATE tenants SET disabled = true WHERE name = 'keys-tenant'");
    assert_int_equal(eb_store_key_lookup(f->db, h2, &k), EB_OK);
    assert_true(k.tenant_disabled);

    /* Platform admin keys that are not revoked are counted. */
    assert_int_equal(eb_store_key_insert(f->db, tid, "cb_adminkey", h3, 1, "", 0, NULL), EB_OK);
    assert_int_equal(eb_store_admin_key_count(f->db, &count), EB_OK);
    assert_int_equal(count, 1);
    ut_sql_ok(f->raw, "UPDATE api_keys SET revoked_at = now() WHERE prefix = 'cb_adminkey'");
    assert_int_equal(eb_store_admin_key_count(f->db, &count), EB_OK);
    assert_int_equal(count, 0);
}

/* --- Buses ---------------------------------------------------------------- */

static void test_buses(void **state)
{
    struct ut_db *f = *state;
    int64_t t1 = ut_tenant(f, "bus-tenant-1"), t2 = ut_tenant(f, "bus-tenant-2");
    struct eb_bus_rec b, g;

    assert_int_equal(eb_store_bus_insert(f->db, t1, "orders", 24, 60, &b), EB_OK);
    assert_true(b.id > 0);
    assert_int_equal(b.tenant_id, t1);
    assert_string_equal(b.tenant, "bus-tenant-1");
    assert_string_equal(b.name, "orders");
    assert_int_equal(b.retention_hours, 24);
    assert_int_equal(b.dedup_window_seconds, 60);
    assert_recent(b.created_us);

    memset(&g, 0, sizeof g);
    assert_int_equal(eb_store_bus_get(f->db, "bus-tenant-1", "orders", &g), EB_OK);
    assert_bus_equal(&g, &b);

    assert_int_equal(eb_store_bus_insert(f->db, t1, "orders", 24, 60, &g), EB_EEXIST);
    /* The same name under another tenant is another bus. */
    assert_int_equal(eb_store_bus_insert(f->db, t2, "orders", 1, 0, &g), EB_OK);
    assert_true(g.id != b.id);
    assert_string_equal(g.tenant, "bus-tenant-2");
    assert_int_equal(eb_store_bus_get(f->db, "bus-tenant-2", "orders", &g), EB_OK);
    assert_int_equal(g.tenant_id, t2);

    assert_int_equal(eb_store_bus_get(f->db, "bus-tenant-1", "nope", &g), EB_ENOTFOUND);
    assert_int_equal(eb_store_bus_get(f->db, "nobody", "orders", &g), EB_ENOTFOUND);
    assert_int_equal(eb_store_bus_insert(f->db, 987654321, "x", 1, 0, &g), EB_ENOTFOUND);
}

static void test_bus_list_paging(void **state)
{
    struct ut_db *f = *state;
    int64_t tid = ut_tenant(f, "paging-tenant"), other = ut_tenant(f, "paging-other");
    static const char *const names[] = {"e-bus", "a-bus", "d-bus", "b-bus", "c-bus"};
    static const char *const sorted[] = {"a-bus", "b-bus", "c-bus", "d-bus", "e-bus"};
    char after[EB_NAME_MAX + 1] = "";
    size_t seen = 0;

    for (size_t i = 0; i < 5; i++)
        ut_bus(f, tid, names[i]);
    ut_bus(f, other, "a-other"); /* never listed for tid */

    for (int page = 0; page < 4; page++) {
        struct eb_bus_rec *out = NULL;
        size_t n = 99;
        assert_int_equal(eb_store_bus_list(f->db, tid, after, 2, &out, &n), EB_OK);
        assert_int_equal(n, page < 2 ? 2 : page == 2 ? 1 : 0);
        for (size_t i = 0; i < n; i++) {
            assert_string_equal(out[i].name, sorted[seen]);
            assert_int_equal(out[i].tenant_id, tid);
            assert_string_equal(out[i].tenant, "paging-tenant");
            seen++;
        }
        if (n)
            eb_strlcpy(after, out[n - 1].name, sizeof after);
        free(out);
    }
    assert_int_equal(seen, 5);

    /* A tenant without buses lists nothing. */
    {
        int64_t empty = ut_tenant(f, "paging-empty");
        struct eb_bus_rec *out = NULL;
        size_t n = 99;
        assert_int_equal(eb_store_bus_list(f->db, empty, "", 100, &out, &n), EB_OK);
        assert_int_equal(n, 0);
        free(out);
    }
}

/* --- Rules ---------------------------------------------------------------- */

static void rule_init(struct eb_rule_rec *r, const char *name, const char *pattern,
                      struct eb_target_rec *targets, size_t ntargets)
{
    memset(r, 0, sizeof *r);
    eb_strlcpy(r->name, name, sizeof r->name);
    r->pattern = (char *)pattern;
    r->description = (char *)"a rule";
    r->enabled = true;
    r->targets = targets;
    r->ntargets = ntargets;
}

static void test_rules(void **state)
{
    struct ut_db *f = *state;
    int64_t tid = ut_tenant(f, "rules-tenant");
    struct eb_bus_rec bus = ut_bus(f, tid, "rules-bus"), bus2 = ut_bus(f, tid, "rules-bus-2");
    struct eb_target_rec t1[] = {
        {EB_TARGET_SUBSCRIPTION, (char *)"sub-1"},
        {EB_TARGET_HTTP, (char *)"https://example.com/hook"},
        {EB_TARGET_BUS, (char *)"other/bus"},
        {EB_TARGET_SUBSCRIPTION, (char *)"sub-2"},
    };
    struct eb_target_rec t2[] = {{EB_TARGET_SUBSCRIPTION, (char *)"sub-1"}};
    struct eb_target_rec t3[] = {{EB_TARGET_SUBSCRIPTION, (char *)"sub-3"}};
    struct eb_rule_rec r, g;
    const char *conflict = NULL;

    rule_init(&r, "r1", "{\"type\":[\"a\"]}", t1, 4);
    assert_int_equal(eb_store_rule_insert(f->db, bus.id, &r, &conflict), EB_OK);
    assert_true(r.id > 0);
    assert_recent(r.created_us);
    assert_recent(r.updated_us);

    memset(&g, 0, sizeof g);
    assert_int_equal(eb_store_rule_get(f->db, bus.id, "r1", &g), EB_OK);
    assert_int_equal(g.id, r.id);
    assert_string_equal(g.name, "r1");
    assert_string_equal(g.pattern, "{\"type\":[\"a\"]}");
    assert_string_equal(g.description, "a rule");
    assert_true(g.enabled);
    assert_int_equal(g.created_us, r.created_us);
    assert_int_equal(g.ntargets, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(g.targets[i].kind, t1[i].kind);
        assert_string_equal(g.targets[i].value, t1[i].value);
    }
    eb_rule_rec_clear(&g);
    assert_int_equal(g.ntargets, 0);
    assert_null(g.targets);
    eb_rule_rec_clear(&g); /* cleared twice is harmless */
    eb_rule_rec_clear(NULL);

    /* Same rule name: conflict on "name". */
    rule_init(&r, "r1", "{}", t3, 1);
    conflict = NULL;
    assert_int_equal(eb_store_rule_insert(f->db, bus.id, &r, &conflict), EB_EEXIST);
    assert_non_null(conflict);
    assert_string_equal(conflict, "name");

    /* A subscription name already owned by r1: conflict on "subscription",
     * and nothing of r2 remains. */
    rule_init(&r, "r2", "{}", t2, 1);
    conflict = NULL;
    assert_int_equal(eb_store_rule_insert(f->db, bus.id, &r, &conflict), EB_EEXIST);
    assert_non_null(conflict);
    assert_string_equal(conflict, "subscription");
    assert_int_equal(eb_store_rule_get(f->db, bus.id, "r2", &g), EB_ENOTFOUND);

    /* Two subscription targets of the same name in one rule collide too. */
    {
        struct eb_target_rec dup[] = {{EB_TARGET_SUBSCRIPTION, (char *)"twice"},
                                      {EB_TARGET_SUBSCRIPTION, (char *)"twice"}};
        rule_init(&r, "r-dup", "{}", dup, 2);
        assert_int_equal(eb_store_rule_insert(f->db, bus.id, &r, &conflict), EB_EEXIST);
        assert_string_equal(conflict, "subscription");
        assert_int_equal(eb_store_rule_get(f->db, bus.id, "r-dup", &g), EB_ENOTFOUND);
    }

    /* The same subscription name on another bus is fine; the store is
     * usable after the rolled-back transactions. */
    rule_init(&r, "r1", "{}", t2, 1);
    assert_int_equal(eb_store_rule_insert(f->db, bus2.id, &r, &conflict), EB_OK);

    /* A rule without targets, disabled, without a description. */
    rule_init(&r, "r0", "{\"source\":[\"x\"]}", NULL, 0);
    r.enabled = false;
    r.description = NULL;
    assert_int_equal(eb_store_rule_insert(f->db, bus.id, &r, &conflict), EB_OK);
    assert_int_equal(eb_store_rule_get(f->db, bus.id, "r0", &g), EB_OK);
    assert_false(g.enabled);
    assert_string_equal(g.description, "");
    assert_int_equal(g.ntargets, 0);
    eb_rule_rec_clear(&g);

    /* By subscription: the owning rule, with all its targets. */
    assert_int_equal(eb_store_rule_by_subscription(f->db, bus.id, "sub-2", &g), EB_OK);
    assert_string_equal(g.name, "r1");
    assert_int_equal(g.ntargets, 4);
    eb_rule_rec_clear(&g);
    assert_int_equal(eb_store_rule_by_subscription(f->db, bus2.id, "sub-1", &g), EB_OK);
    assert_string_equal(g.name, "r1");
    assert_int_equal(g.ntargets, 1);
    eb_rule_rec_clear(&g);
    assert_int_equal(eb_store_rule_by_subscription(f->db, bus.id, "nope", &g), EB_ENOTFOUND);
    assert_int_equal(eb_store_rule_by_subscription(f->db, bus.id, "https://example.com/hook", &g),
                     EB_ENOTFOUND);

    /* Delete: gone, its subscription name is free again, a second delete
     * and a delete on the wrong bus find nothing. */
    assert_int_equal(eb_store_rule_delete(f->db, bus2.id, "r0"), EB_ENOTFOUND);
    assert_int_equal(eb_store_rule_delete(f->db, bus.id, "r1"), EB_OK);
    assert_int_equal(eb_store_rule_get(f->db, bus.id, "r1", &g), EB_ENOTFOUND);
    assert_int_equal(eb_store_rule_delete(f->db, bus.id, "r1"), EB_ENOTFOUND);
    assert_int_equal(eb_store_rule_by_subscription(f->db, bus.id, "sub-1", &g), EB_ENOTFOUND);
    assert_int_equal(ut_sql_int(f->raw, "SELECT count(*) FROM targets WHERE subscription = 'sub-2'"),
                     0);
    rule_init(&r, "r2", "{}", t2, 1);
    assert_int_equal(eb_store_rule_insert(f->db, bus.id, &r, &conflict), EB_OK);
    assert_int_equal(eb_store_rule_get(f->db, bus.id, "r2", &g), EB_OK);
    assert_int_equal(g.ntargets, 1);
    assert_string_equal(g.targets[0].value, "sub-1");
    eb_rule_rec_clear(&g);

    /* A rule on a missing bus. */
    rule_init(&r, "r9", "{}", NULL, 0);
    assert_int_equal(eb_store_rule_insert(f->db, 987654321, &r, &conflict), EB_ENOTFOUND);
    assert_int_equal(eb_store_rule_get(f->db, 987654321, "r9", &g), EB_ENOTFOUND);
}

static void test_rule_list_paging(void **state)
{
    struct ut_db *f = *state;
    int64_t tid = ut_tenant(f, "rule-paging");
    struct eb_bus_rec bus = ut_bus(f, tid, "b"), other = ut_bus(f, tid, "c");
    const char *conflict;
    char after[EB_NAME_MAX + 1] = "";
    size_t seen = 0;

    /* Seven rules inserted out of order, rule i with i subscription targets
     * (at most 3). */
    static const int order[] = {4, 0, 6, 2, 5, 1, 3};
    for (size_t k = 0; k < 7; k++) {
        int i = order[k];
        struct eb_target_rec t[3] = {{0}};
        char subs[3][32], name[16];
        struct eb_rule_rec r;
        for (int j = 0; j < 3; j++) {
            snprintf(subs[j], sizeof subs[j], "s%d-%d", i, j);
            t[j].kind = EB_TARGET_SUBSCRIPTION;
            t[j].value = subs[j];
        }
        snprintf(name, sizeof name, "rule-%d", i);
        rule_init(&r, name, "{}", t, (size_t)(i < 3 ? i : 3));
        assert_int_equal(eb_store_rule_insert(f->db, bus.id, &r, &conflict), EB_OK);
    }
    {
        struct eb_rule_rec r;
        rule_init(&r, "rule-0x", "{}", NULL, 0);
        assert_int_equal(eb_store_rule_insert(f->db, other.id, &r, &conflict), EB_OK);
    }

    for (int page = 0; page < 4; page++) {
        struct eb_rule_rec *out = NULL;
        size_t n = 99;
        assert_int_equal(eb_store_rule_list(f->db, bus.id, after, 3, &out, &n), EB_OK);
        assert_int_equal(n, page < 2 ? 3 : page == 2 ? 1 : 0);
        for (size_t i = 0; i < n; i++) {
            char want[16];
            int idx = (int)seen;
            snprintf(want, sizeof want, "rule-%d", idx);
            assert_string_equal(out[i].name, want);
            assert_int_equal(out[i].ntargets, (size_t)(idx < 3 ? idx : 3));
            for (size_t j = 0; j < out[i].ntargets; j++) {
                char sub[32];
                snprintf(sub, sizeof sub, "s%d-%zu", idx, j);
                assert_string_equal(out[i].targets[j].value, sub);
            }
            seen++;
        }
        if (n)
            eb_strlcpy(after, out[n - 1].name, sizeof after);
        for (size_t i = 0; i < n; i++)
            eb_rule_rec_clear(&out[i]);
        free(out);
    }
    assert_int_equal(seen, 7);
}

struct rules_note {
    int64_t bus_id;
    int hits;
};

static void on_rules_note(void *arg, enum eb_notify_channel ch, int64_t bus_id)
{
    struct rules_note *n = arg;

    if (ch == EB_NOTIFY_RULES && bus_id == n->bus_id)
        n->hits++;
}

/* Waits up to 5 s for a "cebus_rules" notification naming bus_id on
 * listener; returns whether one came. */
static bool rules_notified(eb_db *listener, int64_t bus_id)
{
    struct rules_note n = {.bus_id = bus_id};
    int64_t deadline = eb_now_mono_us() + 5 * 1000000;

    while (n.hits == 0 && eb_now_mono_us() < deadline) {
        struct pollfd pfd = {.fd = eb_db_socket(listener), .events = POLLIN};
        poll(&pfd, 1, 100);
        assert_int_equal(eb_store_drain_notifications(listener, on_rules_note, &n), EB_OK);
    }
    return n.hits > 0;
}

/* Asks which of one follow changed; returns the number of states (0 or 1)
 * and fills *out (free its pattern) when 1. */
static size_t follow_one(eb_db *db, int64_t rule_id, const char *sub, int64_t version,
                         struct eb_rule_state *out)
{
    struct eb_rule_follow f = {.rule_id = rule_id, .subscription = sub, .version = version};
    struct eb_rule_state *st = NULL;
    size_t n = 0;

    assert_int_equal(eb_store_rules_changed(db, &f, 1, &st, &n), EB_OK);
    assert_true(n <= 1);
    if (n == 1) {
        assert_int_equal(st[0].index, 0);
        *out = st[0];
    }
    free(st);
    return n;
}

/* UpdateRule's statement: field by field, a new version and a notification
 * per change, the targets replaced atomically; and what open streams ask
 * about the rules they follow. */
static void test_rule_update_and_follow(void **state)
{
    struct ut_db *f = *state;
    int64_t tid = ut_tenant(f, "follow-tenant");
    struct eb_bus_rec bus = ut_bus(f, tid, "follow-bus");
    struct eb_target_rec t1[] = {{EB_TARGET_SUBSCRIPTION, (char *)"fsub-1"}};
    struct eb_target_rec t2[] = {{EB_TARGET_SUBSCRIPTION, (char *)"fsub-2"},
                                 {EB_TARGET_SUBSCRIPTION, (char *)"fsub-3"}};
    struct eb_target_rec taken[] = {{EB_TARGET_SUBSCRIPTION, (char *)"fsub-other"}};
    struct eb_rule_change c = {.enabled = -1};
    struct eb_rule_rec r, other, g;
    struct eb_rule_state st;
    const char *conflict;
    eb_db *listener;

    assert_int_equal(eb_db_connect(f->url, &listener), EB_OK);
    assert_int_equal(eb_store_listen(listener), EB_OK);
    rule_init(&r, "fr", "{\"type\":[\"a\"]}", t1, 1);
    assert_int_equal(eb_store_rule_insert(f->db, bus.id, &r, &conflict), EB_OK);
    assert_int_equal(r.version, 1);
    rule_init(&other, "fr-other", "{}", taken, 1);
    assert_int_equal(eb_store_rule_insert(f->db, bus.id, &other, &conflict), EB_OK);
    assert_int_equal(follow_one(f->db, r.id, "fsub-1", 1, &st), 0);

    /* The pattern only. */
    c.pattern = "{\"type\":[\"b\"]}";
    assert_int_equal(eb_store_rule_update(f->db, bus.id, "fr", &c, &g, &conflict), EB_OK);
    assert_int_equal(g.version, 2);
    assert_string_equal(g.pattern, "{\"type\":[\"b\"]}");
    assert_string_equal(g.description, "a rule");
    assert_true(g.enabled);
    assert_int_equal(g.ntargets, 1);
    assert_true(g.updated_us >= g.created_us);
    eb_rule_rec_clear(&g);
    assert_true(rules_notified(listener, bus.id));
    assert_int_equal(follow_one(f->db, r.id, "fsub-1", 1, &st), 1);
    assert_false(st.gone);
    assert_int_equal(st.version, 2);
    assert_true(st.enabled);
    assert_string_equal(st.pattern, "{\"type\":[\"b\"]}");
    free(st.pattern);
    assert_int_equal(follow_one(f->db, r.id, "fsub-1", 2, &st), 0);

    /* Disabled, with a description. */
    c.pattern = NULL;
    c.description = "quiet";
    c.enabled = 0;
    assert_int_equal(eb_store_rule_update(f->db, bus.id, "fr", &c, &g, &conflict), EB_OK);
    assert_false(g.enabled);
    assert_string_equal(g.description, "quiet");
    assert_string_equal(g.pattern, "{\"type\":[\"b\"]}");
    eb_rule_rec_clear(&g);
    assert_int_equal(follow_one(f->db, r.id, "fsub-1", 2, &st), 1);
    assert_false(st.enabled);
    free(st.pattern);

    /* Targets: a name another rule holds fails and changes nothing. */
    c = (struct eb_rule_change){.enabled = -1, .set_targets = true, .targets = taken,
                                .ntargets = 1};
    assert_int_equal(eb_store_rule_update(f->db, bus.id, "fr", &c, &g, &conflict), EB_EEXIST);
    assert_string_equal(conflict, "subscription");
    assert_int_equal(eb_store_rule_get(f->db, bus.id, "fr", &g), EB_OK);
    assert_int_equal(g.version, 3);
    assert_int_equal(g.ntargets, 1);
    eb_rule_rec_clear(&g);

    /* Replaced: a stream on the old subscription learns it is gone. */
    c.targets = t2;
    c.ntargets = 2;
    assert_int_equal(eb_store_rule_update(f->db, bus.id, "fr", &c, &g, &conflict), EB_OK);
    assert_int_equal(g.ntargets, 2);
    assert_string_equal(g.targets[1].value, "fsub-3");
    eb_rule_rec_clear(&g);
    assert_int_equal(follow_one(f->db, r.id, "fsub-1", 3, &st), 1);
    assert_true(st.gone);
    assert_null(st.pattern);
    assert_int_equal(follow_one(f->db, r.id, "fsub-3", 4, &st), 0);

    assert_int_equal(eb_store_rule_update(f->db, bus.id, "nope", &c, &g, &conflict),
                     EB_ENOTFOUND);

    /* Deleted: notified, and gone for its streams. */
    assert_int_equal(eb_store_rule_delete(f->db, bus.id, "fr"), EB_OK);
    assert_true(rules_notified(listener, bus.id));
    assert_int_equal(follow_one(f->db, r.id, "fsub-2", 4, &st), 1);
    assert_true(st.gone);
    {
        /* Several follows at once: only the changed ones come back. */
        struct eb_rule_follow fl[] = {{r.id, "fsub-2", 4}, {other.id, "fsub-other", 1},
                                      {other.id, "fsub-other", 0}};
        struct eb_rule_state *sts = NULL;
        size_t n = 0;
        assert_int_equal(eb_store_rules_changed(f->db, fl, 3, &sts, &n), EB_OK);
        assert_int_equal(n, 2);
        assert_true((sts[0].index == 0 && sts[1].index == 2) ||
                    (sts[0].index == 2 && sts[1].index == 0));
        for (size_t i = 0; i < n; i++)
            free(sts[i].pattern);
        free(sts);
    }
    eb_db_close(listener);
}

/* --- Failing and broken connections ------------------------------------------ */

static void test_bad_url(void **state)
{
    static const char *const urls[] = {
        "host=/nonexistent/cebus port=1 dbname=x connect_timeout=2",
        "this is not a conninfo",
        "postgresql://127.0.0.1:1/x?connect_timeout=2",
    };

    (void)state;
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        eb_db *db = eb_db_open(urls[i]), *out = NULL;
        struct eb_tenant_rec t;
        struct eb_bus_rec b;
        struct eb_append_row row = ut_row(1, 0, "x", "x");
        struct eb_event_rec *ev = NULL;
        uint8_t hash[32] = {0};
        struct eb_key_rec k;
        int64_t head;
        size_t n;
        int applied = -1;

        assert_non_null(db);
        assert_int_equal(eb_db_ensure(db), EB_EUNAVAIL);
        assert_int_equal(eb_store_tenant_get(db, "x", &t), EB_EUNAVAIL);
        assert_int_equal(eb_store_tenant_insert(db, "x", "", &t), EB_EUNAVAIL);
        assert_int_equal(eb_store_key_lookup(db, hash, &k), EB_EUNAVAIL);
        assert_int_equal(eb_store_bus_get(db, "x", "y", &b), EB_EUNAVAIL);
        assert_int_equal(eb_store_events_append(db, &row, 1), EB_EUNAVAIL);
        assert_int_equal(row.seq, 0);
        assert_int_equal(eb_store_events_read(db, 1, 0, 10, &ev, &n), EB_EUNAVAIL);
        assert_int_equal(eb_store_events_head(db, 1, &head), EB_EUNAVAIL);
        assert_int_equal(eb_store_migrate(db, ((struct ut_db *)*state)->migrations, &applied),
                         EB_EUNAVAIL);
        assert_int_equal(applied, 0);
        assert_int_equal(eb_store_listen(db), EB_EUNAVAIL);
        eb_db_close(db);

        assert_int_equal(eb_db_connect(urls[i], &out), EB_EUNAVAIL);
        assert_null(out);
    }
    eb_db_close(NULL);
}

/* A connection the server dropped reports EB_EUNAVAIL, then works again
 * after eb_db_ensure(). */
static void test_broken_connection_recovers(void **state)
{
    struct ut_db *f = *state;
    struct eb_tenant_rec t;
    eb_db *db;

    assert_int_equal(eb_db_connect(f->url, &db), EB_OK);
    assert_int_equal(eb_db_ensure(db), EB_OK);
    assert_int_equal(eb_store_tenant_get(db, "platform", &t), EB_OK);
    ut_sql_ok(f->raw, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                   " WHERE datname = current_database() AND pid <> pg_backend_pid()");
    /* The first statement notices; later ones fail fast until ensure. */
    assert_int_equal(eb_store_tenant_get(db, "platform", &t), EB_EUNAVAIL);
    assert_int_equal(eb_store_tenant_get(db, "platform", &t), EB_EUNAVAIL);
    assert_int_equal(eb_db_ensure(db), EB_OK);
    assert_int_equal(eb_store_tenant_get(db, "platform", &t), EB_OK);
    eb_db_close(db);

    /* The fixture's own store connection was terminated as well. */
    if (eb_store_tenant_get(f->db, "platform", &t) != EB_OK)
        assert_int_equal(eb_db_ensure(f->db), EB_OK);
    assert_int_equal(eb_store_tenant_get(f->db, "platform", &t), EB_OK);
}

static int setup_db(void **state)
{
    return ut_db_setup(state, "store");
}

static int teardown_db(void **state)
{
    struct ut_db *f = *state;
    char sql[256];

    /* test_migrate_concurrent's database, should that test have failed. */
    if (f) {
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s_m WITH (FORCE)", f->dbname);
        ut_sql_ok(f->admin, sql);
    }
    return ut_db_teardown(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate_twice),
        cmocka_unit_test(test_migrate_concurrent),
        cmocka_unit_test(test_tenants),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_buses),
        cmocka_unit_test(test_bus_list_paging),
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_rule_list_paging),
        cmocka_unit_test(test_rule_update_and_follow),
        cmocka_unit_test(test_bad_url),
        cmocka_unit_test(test_broken_connection_recovers),
    };

    return cmocka_run_group_tests(tests, setup_db, teardown_db);
}
