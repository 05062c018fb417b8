/* Unit tests for server/store*.c against a real PostgreSQL: migrations,
 * tenants, keys, buses, rules with targets, the event log (multi-bus
 * appends, reads forward and newest first, head, before_time,
 * notifications), the ordering property under concurrent appenders, and
 * connections that fail or break.
 *
 * The process creates its own database on the cluster named by
 * CEBUS_TEST_DATABASE_URL and drops it at the end, so that runs never see
 * each other's rows. Migrations come from CEBUS_TEST_SOURCE_DIR/migrations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include "log.h"
#include "store.h"
#include "util.h"

struct fixture {
    PGconn *admin;     /* the cluster's "postgres" database */
    PGconn *raw;       /* the test database, for direct SQL */
    eb_db *db;         /* the test database, through the store */
    char dbname[64];
    char url[1024];    /* conninfo of the test database */
    char migrations[1024];
};

/* --- Helpers ------------------------------------------------------------- */

/* Runs SQL on a libpq connection and fails the test when it fails. */
static void sql_ok(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(res);

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        print_error("SQL failed: %s: %s\n", sql, PQerrorMessage(c));
    assert_true(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
    PQclear(res);
}

/* Returns the integer in the first cell of a query's result. */
static int64_t sql_int(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    int64_t v;

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        print_error("SQL failed: %s: %s\n", sql, PQerrorMessage(c));
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(res), 1);
    v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

static int count_migration_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len > 4 && strcmp(de->d_name + len - 4, ".sql") == 0 && de->d_name[0] >= '0' &&
            de->d_name[0] <= '9')
            n++;
    }
    closedir(d);
    return n;
}

static int setup_db(void **state)
{
    const char *base = getenv("CEBUS_TEST_DATABASE_URL");
    const char *src = getenv("CEBUS_TEST_SOURCE_DIR");
    struct fixture *f;
    char sql[256];
    int applied = -1;

    if (!base || !src) {
        fprintf(stderr, "test_store: CEBUS_TEST_DATABASE_URL and CEBUS_TEST_SOURCE_DIR must be set"
                        " (run through ctest)\n");
        return -1;
    }
    eb_log_set_level(EB_LOG_WARN);
    f = eb_calloc(1, sizeof *f);
    snprintf(f->dbname, sizeof f->dbname, "cebus_unit_store_%ld_%lld", (long)getpid(),
             (long long)(eb_now_wall_us() % 1000000000));
    snprintf(f->url, sizeof f->url, "%s dbname=%s", base, f->dbname);
    snprintf(f->migrations, sizeof f->migrations, "%s/migrations", src);

    f->admin = PQconnectdb(base);
    if (PQstatus(f->admin) != CONNECTION_OK) {
        fprintf(stderr, "test_store: cannot connect: %s\n", PQerrorMessage(f->admin));
        return -1;
    }
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", f->dbname);
    sql_ok(f->admin, sql);
    f->raw = PQconnectdb(f->url);
    if (PQstatus(f->raw) != CONNECTION_OK) {
        fprintf(stderr, "test_store: cannot connect: %s\n", PQerrorMessage(f->raw));
        return -1;
    }
    if (eb_db_connect(f->url, &f->db) != EB_OK)
        return -1;
    if (eb_store_migrate(f->db, f->migrations, &applied) != EB_OK ||
        applied != count_migration_files(f->migrations)) {
        fprintf(stderr, "test_store: first migration applied %d files\n", applied);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown_db(void **state)
{
    struct fixture *f = *state;
    char sql[256];

    if (!f)
        return 0;
    eb_db_close(f->db);
    PQfinish(f->raw);
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", f->dbname);
    sql_ok(f->admin, sql);
    /* test_migrate_concurrent's database, should that test have failed. */
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s_m WITH (FORCE)", f->dbname);
    sql_ok(f->admin, sql);
    PQfinish(f->admin);
    free(f);
    return 0;
}

static int64_t new_tenant(struct fixture *f, const char *name)
{
    struct eb_tenant_rec t;

    assert_int_equal(eb_store_tenant_insert(f->db, name, "", &t), EB_OK);
    return t.id;
}

static struct eb_bus_rec new_bus(struct fixture *f, int64_t tenant_id, const char *name)
{
    struct eb_bus_rec b;

    assert_int_equal(eb_store_bus_insert(f->db, tenant_id, name, 168, 300, &b), EB_OK);
    return b;
}

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
    struct fixture *f = *state;
    int applied = -1;

    assert_int_equal(eb_store_migrate(f->db, f->migrations, &applied), EB_OK);
    assert_int_equal(applied, 0);
    assert_int_equal(sql_int(f->raw, "SELECT count(*) FROM schema_migrations"),
                     count_migration_files(f->migrations));
    /* The advisory lock was released: another session can take it. */
    assert_int_equal(sql_int(f->raw, "SELECT pg_try_advisory_lock(7391020250001)::int"), 1);
    sql_ok(f->raw, "SELECT pg_advisory_unlock(7391020250001)");

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
    struct fixture *f = *state;
    const char *base = getenv("CEBUS_TEST_DATABASE_URL");
    char name[80], url[1200], sql[160];
    struct migrator m[3];
    pthread_t th[3];
    int total = 0;

    snprintf(name, sizeof name, "%s_m", f->dbname);
    snprintf(url, sizeof url, "%s dbname=%s", base, name);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    sql_ok(f->admin, sql);
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
    sql_ok(f->admin, sql);
    assert_int_equal(total, count_migration_files(f->migrations));
}

/* --- Tenants and keys ---------------------------------------------------- */

static void test_tenants(void **state)
{
    struct fixture *f = *state;
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

    sql_ok(f->raw, "UPDATE tenants SET disabled = true WHERE name = 'acme'");
    assert_int_equal(eb_store_tenant_get(f->db, "acme", &g), EB_OK);
    assert_true(g.disabled);

    /* The connection is still fine after the unique violation. */
    assert_int_equal(eb_store_tenant_insert(f->db, "acme2", "", &t), EB_OK);
}

static void test_keys(void **state)
{
    struct fixture *f = *state;
    int64_t tid = new_tenant(f, "keys-tenant"), created = 0, count = -1;
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
    sql_ok(f->raw, "UPDATE api_keys SET revoked_at = now() WHERE prefix = 'cb_aaaaaaaa'");
    assert_int_equal(eb_store_key_lookup(f->db, h1, &k), EB_OK);
    assert_true(k.revoked);
    sql_ok(f->raw, "UPDATE tenants SET disabled = true WHERE name = 'keys-tenant'");
    assert_int_equal(eb_store_key_lookup(f->db, h2, &k), EB_OK);
    assert_true(k.tenant_disabled);

    /* Platform admin keys that are not revoked are counted. */
    assert_int_equal(eb_store_key_insert(f->db, tid, "cb_adminkey", h3, 1, "", 0, NULL), EB_OK);
    assert_int_equal(eb_store_admin_key_count(f->db, &count), EB_OK);
    assert_int_equal(count, 1);
    sql_ok(f->raw, "UPDATE api_keys SET revoked_at = now() WHERE prefix = 'cb_adminkey'");
    assert_int_equal(eb_store_admin_key_count(f->db, &count), EB_OK);
    assert_int_equal(count, 0);
}

/* --- Buses ---------------------------------------------------------------- */

static void test_buses(void **state)
{
    struct fixture *f = *state;
    int64_t t1 = new_tenant(f, "bus-tenant-1"), t2 = new_tenant(f, "bus-tenant-2");
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
    struct fixture *f = *state;
    int64_t tid = new_tenant(f, "paging-tenant"), other = new_tenant(f, "paging-other");
    static const char *const names[] = {"e-bus", "a-bus", "d-bus", "b-bus", "c-bus"};
    static const char *const sorted[] = {"a-bus", "b-bus", "c-bus", "d-bus", "e-bus"};
    char after[EB_NAME_MAX + 1] = "";
    size_t seen = 0;

    for (size_t i = 0; i < 5; i++)
        new_bus(f, tid, names[i]);
    new_bus(f, other, "a-other"); /* never listed for tid */

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
        int64_t empty = new_tenant(f, "paging-empty");
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
    struct fixture *f = *state;
    int64_t tid = new_tenant(f, "rules-tenant");
    struct eb_bus_rec bus = new_bus(f, tid, "rules-bus"), bus2 = new_bus(f, tid, "rules-bus-2");
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
    assert_int_equal(sql_int(f->raw, "SELECT count(*) FROM targets WHERE subscription = 'sub-2'"),
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
    struct fixture *f = *state;
    int64_t tid = new_tenant(f, "rule-paging");
    struct eb_bus_rec bus = new_bus(f, tid, "b"), other = new_bus(f, tid, "c");
    const char *conflict;
    char after[EB_NAME_MAX + 1] = "";
    size_t seen = 0;

    /* Seven rules inserted out of order, rule i with i subscription targets
     * (at most 3). */
    static const int order[] = {4, 0, 6, 2, 5, 1, 3};
    for (size_t k = 0; k < 7; k++) {
        int i = order[k];
        struct eb_target_rec t[3];
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

/* --- Events ----------------------------------------------------------------- */

static struct eb_append_row row_of(int64_t bus_id, int64_t received_us, const char *id,
                                   const char *body)
{
    struct eb_append_row r;

    memset(&r, 0, sizeof r);
    r.bus_id = bus_id;
    r.received_us = received_us;
    r.source = "/test";
    r.event_id = id;
    r.type = "test.event";
    r.body = (const uint8_t *)body;
    r.body_len = strlen(body);
    r.seq = -7;
    r.status = EB_EINTERNAL;
    return r;
}

static void read_all(eb_db *db, int64_t bus_id, int64_t after, int limit,
                     struct eb_event_rec **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    assert_int_equal(eb_store_events_read(db, bus_id, after, limit, out, n), EB_OK);
}

static int64_t count_events(struct fixture *f, int64_t bus_id)
{
    char sql[128];

    snprintf(sql, sizeof sql, "SELECT count(*) FROM events WHERE bus_id = %lld",
             (long long)bus_id);
    return sql_int(f->raw, sql);
}

static void free_events(struct eb_event_rec *ev, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ev[i].body);
    free(ev);
}

static void test_events_append_read(void **state)
{
    struct fixture *f = *state;
    int64_t tid = new_tenant(f, "events-tenant");
    struct eb_bus_rec a = new_bus(f, tid, "a"), b = new_bus(f, tid, "b");
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
    rows[0] = row_of(b.id, t0 + 1, "e0", "b-first");
    rows[1] = row_of(a.id, t0 + 2, "e1", "a-first");
    rows[2] = row_of(missing, t0 + 3, "e2", "lost");
    rows[3] = row_of(a.id, t0 + 4, "e3", "a-second");
    rows[4] = row_of(b.id, t0 + 5, "e4", "b-second");
    rows[5] = row_of(a.id, t0 + 6, "e5", "a-third");
    rows[6] = row_of(missing, t0 + 7, "e6", "lost too");
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
    rows[0] = row_of(a.id, t0 + 10, "e7", "a-fourth");
    assert_int_equal(eb_store_events_append(f->db, rows, 1), EB_OK);
    assert_int_equal(rows[0].seq, 4);

    /* Only missing buses: nothing stored, the call itself succeeds. */
    rows[0] = row_of(missing, t0, "x", "x");
    assert_int_equal(eb_store_events_append(f->db, rows, 1), EB_OK);
    assert_int_equal(rows[0].status, EB_ENOTFOUND);
    assert_int_equal(eb_store_events_append(f->db, rows, 0), EB_OK);
    assert_int_equal(count_events(f, a.id) + count_events(f, b.id) + count_events(f, missing), 6);
}

static void test_events_binary_bodies(void **state)
{
    struct fixture *f = *state;
    int64_t tid = new_tenant(f, "binary-tenant");
    struct eb_bus_rec bus = new_bus(f, tid, "bin");
    static const uint8_t body[] = {0x0a, 0x00, 0xff, 0x00, 0x80, 0x5c, 0x27};
    struct eb_append_row rows[2];
    struct eb_event_rec *ev;
    size_t n;

    rows[0] = row_of(bus.id, eb_now_wall_us(), "b0", "");
    rows[0].body = body;
    rows[0].body_len = sizeof body;
    rows[1] = row_of(bus.id, eb_now_wall_us(), "b1", "");
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
    struct fixture *f = *state;
    int64_t tid = new_tenant(f, "large-tenant");
    struct eb_bus_rec a = new_bus(f, tid, "a"), b = new_bus(f, tid, "b");
    enum { N = 2500 };
    struct eb_append_row *rows = eb_calloc(N, sizeof *rows);
    char (*bodies)[16] = eb_calloc(N, sizeof *bodies);
    int64_t t0 = eb_now_wall_us(), next_a = 1, next_b = 1, head;
    struct eb_event_rec *ev;
    size_t n;

    for (int i = 0; i < N; i++) {
        snprintf(bodies[i], sizeof bodies[i], "row-%d", i);
        rows[i] = row_of(i % 3 ? a.id : b.id, t0 + i, bodies[i], bodies[i]);
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
    struct fixture *f = *state;
    int64_t tid = new_tenant(f, "time-tenant");
    struct eb_bus_rec bus = new_bus(f, tid, "t"), empty = new_bus(f, tid, "empty");
    int64_t base = eb_now_wall_us() - 3600LL * 1000000, seq = -1;
    struct eb_append_row rows[4];

    /* received times 0 s, 10 s, 10 s, 20 s after base. */
    rows[0] = row_of(bus.id, base, "t0", "0");
    rows[1] = row_of(bus.id, base + 10000000, "t1", "1");
    rows[2] = row_of(bus.id, base + 10000000, "t2", "2");
    rows[3] = row_of(bus.id, base + 20000000, "t3", "3");
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
    struct fixture *f = *state;
    int64_t tid = new_tenant(f, "back-tenant");
    struct eb_bus_rec bus = new_bus(f, tid, "back"), other = new_bus(f, tid, "other");
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
        rows[i] = row_of(bus.id, t0 + i, ids[i], bodies[i]);
    }
    rows[6] = row_of(other.id, t0, "o0", "other-0");
    rows[7] = row_of(other.id, t0, "o1", "other-1");
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
    struct fixture *f = *state;
    int64_t tid = new_tenant(f, "follow-tenant");
    struct eb_bus_rec bus = new_bus(f, tid, "follow-bus");
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
    struct fixture *f = *state;
    int64_t tid = new_tenant(f, "notify-tenant");
    struct eb_bus_rec bus = new_bus(f, tid, "n");
    struct note_count c = {.bus_id = bus.id};
    struct eb_append_row row = row_of(bus.id, eb_now_wall_us(), "n0", "n");
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

static struct eb_bus_rec new_bus_window(struct fixture *f, int64_t tenant_id, const char *name,
                                        int window)
{
    struct eb_bus_rec b;

    assert_int_equal(eb_store_bus_insert(f->db, tenant_id, name, 168, window, &b), EB_OK);
    return b;
}

static void test_events_dedup(void **state)
{
    struct fixture *f = *state;
    int64_t tid = new_tenant(f, "dedup-tenant"), t0 = eb_now_wall_us(), head;
    struct eb_bus_rec a = new_bus_window(f, tid, "a", 300), b = new_bus_window(f, tid, "b", 300);
    struct eb_append_row rows[6];
    struct eb_event_rec *ev;
    size_t n;

    rows[0] = row_of(a.id, t0, "id-1", "one");
    rows[1] = row_of(a.id, t0, "id-2", "two");
    assert_int_equal(eb_store_events_append(f->db, rows, 2), EB_OK);
    assert_false(rows[0].duplicate);
    assert_false(rows[1].duplicate);
    assert_int_equal(rows[0].seq, 1);
    assert_int_equal(rows[1].seq, 2);

    /* A retry in a later call: the original sequence, nothing stored; a
     * repeat inside one call: the answer of its first copy; fresh rows
     * still get consecutive sequences in row order. The same id under
     * another source, or on another bus, is another event. */
    rows[0] = row_of(a.id, t0, "id-3", "three");
    rows[1] = row_of(a.id, t0, "id-2", "two again");
    rows[2] = row_of(a.id, t0, "id-3", "three again");
    rows[3] = row_of(a.id, t0, "id-4", "four");
    rows[4] = row_of(a.id, t0, "id-1", "one again");
    rows[4].source = "/other";
    rows[5] = row_of(b.id, t0, "id-1", "one on b");
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
    rows[0] = row_of(a.id, t0, "id-1", "x");
    rows[1] = row_of(a.id, t0, "id-4", "x");
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
    rows[0] = row_of(a.id, t0, "id-1", "grantee one");
    rows[0].tenant_id = tid + 1000;
    rows[1] = row_of(a.id, t0, "id-4", "owner four again");
    rows[2] = row_of(a.id, t0, "id-4", "grantee four");
    rows[2].tenant_id = tid + 1000;
    assert_int_equal(eb_store_events_append(f->db, rows, 3), EB_OK);
    assert_false(rows[0].duplicate);
    assert_int_equal(rows[0].seq, 6);
    assert_true(rows[1].duplicate);
    assert_int_equal(rows[1].seq, 4);
    assert_false(rows[2].duplicate);
    assert_int_equal(rows[2].seq, 7);
    rows[0] = row_of(a.id, t0, "id-1", "grantee one again");
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
    struct fixture *f = *state;
    int64_t tid = new_tenant(f, "awkward-tenant"), t0 = eb_now_wall_us();
    struct eb_bus_rec bus = new_bus_window(f, tid, "awk", 300);
    struct eb_append_row rows[2 * K];

    for (int i = 0; i < K; i++) {
        rows[i] = row_of(bus.id, t0, keys[i], "x");
        rows[i].source = keys[(i + 1) % K];
    }
    assert_int_equal(eb_store_events_append(f->db, rows, K), EB_OK);
    for (int i = 0; i < K; i++) {
        assert_false(rows[i].duplicate);
        assert_int_equal(rows[i].seq, i + 1);
    }
    /* The same keys again, and each with its id and source swapped. */
    for (int i = 0; i < K; i++) {
        rows[i] = row_of(bus.id, t0, keys[i], "x");
        rows[i].source = keys[(i + 1) % K];
        rows[K + i] = row_of(bus.id, t0, keys[(i + 1) % K], "x");
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
    struct fixture *f = *state;
    int64_t tid = new_tenant(f, "window-tenant"), t0 = eb_now_wall_us(), removed = -1;
    struct eb_bus_rec off = new_bus_window(f, tid, "off", 0), on = new_bus_window(f, tid, "on", 60);
    struct eb_append_row rows[2];
    char sql[256];

    /* Window 0: no deduplication at all. */
    rows[0] = row_of(off.id, t0, "same", "1");
    rows[1] = row_of(off.id, t0, "same", "2");
    assert_int_equal(eb_store_events_append(f->db, rows, 2), EB_OK);
    assert_false(rows[0].duplicate);
    assert_false(rows[1].duplicate);
    assert_int_equal(rows[1].seq, 2);
    assert_int_equal(eb_store_events_append(f->db, rows, 1), EB_OK);
    assert_false(rows[0].duplicate);
    assert_int_equal(rows[0].seq, 3);

    /* Past the window a (source, id) is new again and remembered anew. */
    rows[0] = row_of(on.id, t0, "k", "1");
    assert_int_equal(eb_store_events_append(f->db, rows, 1), EB_OK);
    assert_int_equal(rows[0].seq, 1);
    snprintf(sql, sizeof sql,
             "UPDATE event_dedup SET expires_at = now() - interval '1 second' WHERE bus_id = %lld",
             (long long)on.id);
    sql_ok(f->raw, sql);
    assert_int_equal(eb_store_events_append(f->db, rows, 1), EB_OK);
    assert_false(rows[0].duplicate);
    assert_int_equal(rows[0].seq, 2);
    assert_int_equal(eb_store_events_append(f->db, rows, 1), EB_OK);
    assert_true(rows[0].duplicate);
    assert_int_equal(rows[0].seq, 2);

    /* Expired entries are removed in batches of at most limit. */
    rows[0] = row_of(on.id, t0, "k2", "2");
    rows[1] = row_of(on.id, t0, "k3", "3");
    assert_int_equal(eb_store_events_append(f->db, rows, 2), EB_OK);
    sql_ok(f->raw, sql);
    assert_int_equal(eb_store_dedup_expire(f->db, 2, &removed), EB_OK);
    assert_int_equal(removed, 2);
    assert_int_equal(eb_store_dedup_expire(f->db, 2, &removed), EB_OK);
    assert_true(removed >= 1); /* k3, plus any other test's expired rows */
    while (removed > 0)
        assert_int_equal(eb_store_dedup_expire(f->db, 100, &removed), EB_OK);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM event_dedup WHERE bus_id = %lld",
             (long long)on.id);
    assert_int_equal(sql_int(f->raw, sql), 0);
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
            rows[i] = row_of(w->bus_id, eb_now_wall_us(), ids[i], ids[i]);
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
    struct fixture *f = *state;
    int64_t tid = new_tenant(f, "race-tenant"), head;
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
            rows[i] = row_of(w->bus_id, eb_now_wall_us(), bodies[i], bodies[i]);
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
    struct fixture *f = *state;
    int64_t tid = new_tenant(f, "order-tenant");
    struct eb_bus_rec bus = new_bus(f, tid, "ordered");
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
        struct eb_append_row row = row_of(1, 0, "x", "x");
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
        assert_int_equal(eb_store_migrate(db, ((struct fixture *)*state)->migrations, &applied),
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
    struct fixture *f = *state;
    struct eb_tenant_rec t;
    eb_db *db;

    assert_int_equal(eb_db_connect(f->url, &db), EB_OK);
    assert_int_equal(eb_db_ensure(db), EB_OK);
    assert_int_equal(eb_store_tenant_get(db, "platform", &t), EB_OK);
    sql_ok(f->raw, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
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
        cmocka_unit_test(test_events_append_read),
        cmocka_unit_test(test_events_binary_bodies),
        cmocka_unit_test(test_events_large_batch),
        cmocka_unit_test(test_events_before_time),
        cmocka_unit_test(test_events_read_back),
        cmocka_unit_test(test_notifications),
        cmocka_unit_test(test_rule_update_and_follow),
        cmocka_unit_test(test_events_dedup),
        cmocka_unit_test(test_events_dedup_awkward_keys),
        cmocka_unit_test(test_events_dedup_window),
        cmocka_unit_test(test_events_dedup_concurrent),
        cmocka_unit_test(test_concurrent_appenders_ordering),
        cmocka_unit_test(test_bad_url),
        cmocka_unit_test(test_broken_connection_recovers),
    };

    return cmocka_run_group_tests(tests, setup_db, teardown_db);
}
