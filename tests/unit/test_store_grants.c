/* Unit tests for server/store_grants.c against a real PostgreSQL: grant
 * insert, duplicate, list, permission mask, revoke, the open streams'
 * grant check, cascades on bus and tenant deletion, and event source
 * prefixes (insert, duplicate, cap, list order, delete); and the two
 * server/auth.c consumers of these rows: bus resolution through grants and
 * the cached source-prefix check.
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

#include "auth.h"
#include "db_fixture.h"
#include "log.h"
#include "store.h"
#include "util.h"

static void test_grants(void **state)
{
    struct ut_db *f = *state;
    int64_t owner = ut_tenant(f, "g-owner"), alpha = ut_tenant(f, "g-alpha");
    int64_t beta = ut_tenant(f, "g-beta"), created = 0;
    struct eb_bus_rec bus = ut_bus(f, owner, "orders"), other = ut_bus(f, owner, "other");
    struct eb_grant_rec *list = NULL;
    unsigned mask = 99;
    size_t n = 0;

    assert_int_equal(eb_store_grant_mask(f->db, bus.id, alpha, &mask), EB_OK);
    assert_int_equal(mask, 0);
    assert_int_equal(eb_store_grant_insert(f->db, bus.id, alpha, EB_PERMISSION_SUBSCRIBE,
                                           &created),
                     EB_OK);
    assert_true(created > 0);
    assert_int_equal(eb_store_grant_insert(f->db, bus.id, alpha, EB_PERMISSION_SUBSCRIBE,
                                           &created),
                     EB_EEXIST);
    assert_int_equal(eb_store_grant_insert(f->db, bus.id, alpha, EB_PERMISSION_PUBLISH, &created),
                     EB_OK);
    assert_int_equal(eb_store_grant_insert(f->db, bus.id, beta, EB_PERMISSION_MANAGE_RULES,
                                           &created),
                     EB_OK);
    /* A grantee or bus that does not exist. */
    assert_int_equal(eb_store_grant_insert(f->db, bus.id, 999999, EB_PERMISSION_PUBLISH,
                                           &created),
                     EB_ENOTFOUND);
    assert_int_equal(eb_store_grant_insert(f->db, 999999, alpha, EB_PERMISSION_PUBLISH,
                                           &created),
                     EB_ENOTFOUND);

    assert_int_equal(eb_store_grant_mask(f->db, bus.id, alpha, &mask), EB_OK);
    assert_int_equal(mask, (1u << EB_PERMISSION_PUBLISH) | (1u << EB_PERMISSION_SUBSCRIBE));
    assert_int_equal(eb_store_grant_mask(f->db, other.id, alpha, &mask), EB_OK);
    assert_int_equal(mask, 0);

    assert_int_equal(eb_store_grant_list(f->db, bus.id, "", 0, 100, &list, &n), EB_OK);
    assert_int_equal(n, 3);
    assert_string_equal(list[0].grantee, "g-alpha");
    assert_int_equal(list[0].permission, EB_PERMISSION_PUBLISH);
    assert_int_equal(list[1].permission, EB_PERMISSION_SUBSCRIBE);
    assert_string_equal(list[2].grantee, "g-beta");
    assert_int_equal(list[2].grantee_id, beta);
    free(list);
    assert_int_equal(eb_store_grant_list(f->db, bus.id, "", 0, 1, &list, &n), EB_OK);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].page_key, "g-alpha/1");
    free(list);
    /* Pages continue after (grantee, permission), within one grantee too. */
    assert_int_equal(eb_store_grant_list(f->db, bus.id, "g-alpha", EB_PERMISSION_PUBLISH, 100,
                                         &list, &n),
                     EB_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].grantee, "g-alpha");
    assert_int_equal(list[0].permission, EB_PERMISSION_SUBSCRIBE);
    assert_string_equal(list[1].page_key, "g-beta/3");
    free(list);
    assert_int_equal(eb_store_grant_list(f->db, bus.id, "g-beta", EB_PERMISSION_MANAGE_RULES, 100,
                                         &list, &n),
                     EB_OK);
    assert_int_equal(n, 0);
    free(list);

    assert_int_equal(eb_store_grant_delete(f->db, bus.id, alpha, EB_PERMISSION_PUBLISH), EB_OK);
    assert_int_equal(eb_store_grant_delete(f->db, bus.id, alpha, EB_PERMISSION_PUBLISH),
                     EB_ENOTFOUND);
    assert_int_equal(eb_store_grant_mask(f->db, bus.id, alpha, &mask), EB_OK);
    assert_int_equal(mask, 1u << EB_PERMISSION_SUBSCRIBE);

    /* Deleting the grantee, then the bus, takes their grants along. */
    assert_int_equal(eb_store_tenant_delete(f->db, beta), EB_OK);
    assert_int_equal(eb_store_grant_list(f->db, bus.id, "", 0, 100, &list, &n), EB_OK);
    assert_int_equal(n, 1);
    free(list);
    assert_int_equal(eb_store_bus_delete(f->db, bus.id), EB_OK);
    assert_int_equal(eb_store_grant_list(f->db, bus.id, "", 0, 100, &list, &n), EB_OK);
    assert_int_equal(n, 0);
    free(list);
}

static void test_grants_check(void **state)
{
    struct ut_db *f = *state;
    int64_t owner = ut_tenant(f, "c-owner"), alpha = ut_tenant(f, "c-alpha");
    int64_t beta = ut_tenant(f, "c-beta"), created;
    struct eb_bus_rec b1 = ut_bus(f, owner, "one"), b2 = ut_bus(f, owner, "two");
    int64_t grantees[4] = {alpha, beta, alpha, alpha}, buses[4] = {b1.id, b1.id, b2.id, b1.id};
    bool present[4] = {false, true, true, false};

    assert_int_equal(eb_store_grant_insert(f->db, b1.id, alpha, EB_PERMISSION_SUBSCRIBE,
                                           &created),
                     EB_OK);
    /* PUBLISH does not count for streams. */
    assert_int_equal(eb_store_grant_insert(f->db, b2.id, alpha, EB_PERMISSION_PUBLISH, &created),
                     EB_OK);
    assert_int_equal(eb_store_grants_check(f->db, grantees, buses, 4, EB_PERMISSION_SUBSCRIBE,
                                           present),
                     EB_OK);
    assert_true(present[0]);
    assert_false(present[1]);
    assert_false(present[2]);
    assert_true(present[3]);
    assert_int_equal(eb_store_grants_check(f->db, grantees, buses, 0, EB_PERMISSION_SUBSCRIBE,
                                           present),
                     EB_OK);
}

static void test_sources(void **state)
{
    struct ut_db *f = *state;
    int64_t t = ut_tenant(f, "s-tenant"), u = ut_tenant(f, "s-other");
    struct eb_source_rec *list = NULL;
    size_t n = 0;

    assert_int_equal(eb_store_source_insert(f->db, t, "/b/", 3), EB_OK);
    assert_int_equal(eb_store_source_insert(f->db, t, "/a/", 3), EB_OK);
    assert_int_equal(eb_store_source_insert(f->db, t, "/a/", 3), EB_EEXIST);
    /* A prefix belongs to one tenant: another tenant may not take it, a
     * longer one inside it, or a shorter one that covers it. */
    assert_int_equal(eb_store_source_insert(f->db, u, "/a/", 3), EB_EPERM);
    assert_int_equal(eb_store_source_insert(f->db, u, "/a/x", 3), EB_EPERM);
    assert_int_equal(eb_store_source_insert(f->db, u, "/", 3), EB_EPERM);
    assert_int_equal(eb_store_source_insert(f->db, u, "/ab", 3), EB_OK);
    /* Its owner may narrow its own prefixes. */
    assert_int_equal(eb_store_source_insert(f->db, t, "/a/c/", 3), EB_OK);
    assert_int_equal(eb_store_source_insert(f->db, t, "/d/", 3), EB_EEXHAUSTED);
    assert_int_equal(eb_store_source_insert(f->db, 999999, "/x/", 3), EB_ENOTFOUND);

    assert_int_equal(eb_store_source_list(f->db, t, 100, &list, &n), EB_OK);
    assert_int_equal(n, 3);
    assert_string_equal(list[0].prefix, "/a/");
    assert_string_equal(list[1].prefix, "/a/c/");
    assert_string_equal(list[2].prefix, "/b/");
    free(list);

    assert_int_equal(eb_store_source_delete(f->db, t, "/a/"), EB_OK);
    assert_int_equal(eb_store_source_delete(f->db, t, "/a/"), EB_ENOTFOUND);
    assert_int_equal(eb_store_source_list(f->db, u, 100, &list, &n), EB_OK);
    assert_int_equal(n, 1);
    free(list);
    assert_int_equal(eb_store_tenant_delete(f->db, u), EB_OK);
    assert_int_equal(eb_store_source_list(f->db, u, 100, &list, &n), EB_OK);
    assert_int_equal(n, 0);
    free(list);
}


/* eb_auth_resolve_bus_granted: own buses, the platform admin, grants by
 * permission, and one NOT_FOUND message for "no grant" and "no bus". */
static void test_resolve_through_grants(void **state)
{
    struct ut_db *f = *state;
    int64_t owner = ut_tenant(f, "r-owner"), alpha = ut_tenant(f, "r-alpha"), created;
    struct eb_bus_rec bus = ut_bus(f, owner, "orders"), got;
    struct eb_principal p;
    eb_auth *a = eb_auth_new(1); /* 1 us: every call reads the database */
    char e1[256], e2[256];
    bool via = true;

    memset(&p, 0, sizeof p);
    p.tenant_id = alpha;
    snprintf(p.tenant, sizeof p.tenant, "r-alpha");
    p.role = EB_ROLE_TENANT_ADMIN;
    assert_int_equal(eb_auth_resolve_bus_granted(a, f->db, &p, "r-owner/orders",
                                                 EB_PERMS(EB_PERMISSION_PUBLISH), &got, &via, e1,
                                                 sizeof e1),
                     EB_ENOTFOUND);
    assert_int_equal(eb_auth_resolve_bus_granted(a, f->db, &p, "r-owner/ghost",
                                                 EB_PERMS(EB_PERMISSION_PUBLISH), &got, &via, e2,
                                                 sizeof e2),
                     EB_ENOTFOUND);
    /* The same words; only the reference as given differs. */
    assert_string_equal(e1, "bus: no bus \"r-owner/orders\"");
    assert_string_equal(e2, "bus: no bus \"r-owner/ghost\"");

    assert_int_equal(eb_store_grant_insert(f->db, bus.id, alpha, EB_PERMISSION_SUBSCRIBE,
                                           &created),
                     EB_OK);
    assert_int_equal(eb_auth_resolve_bus_granted(a, f->db, &p, "r-owner/orders",
                                                 EB_PERMS(EB_PERMISSION_PUBLISH), &got, &via, e1,
                                                 sizeof e1),
                     EB_ENOTFOUND);
    assert_int_equal(eb_auth_resolve_bus_granted(a, f->db, &p, "r-owner/orders",
                                                 EB_PERMS(EB_PERMISSION_SUBSCRIBE), &got, &via,
                                                 e1, sizeof e1),
                     EB_OK);
    assert_int_equal(got.id, bus.id);
    assert_true(via);
    /* Without perms, grants do not count (the Admin RPCs on the bus). */
    assert_int_equal(eb_auth_resolve_bus(a, f->db, &p, "r-owner/orders", &got, e1, sizeof e1),
                     EB_ENOTFOUND);

    /* The owner and the platform admin need no grant. */
    p.tenant_id = owner;
    snprintf(p.tenant, sizeof p.tenant, "r-owner");
    assert_int_equal(eb_auth_resolve_bus_granted(a, f->db, &p, "orders", 0, &got, &via, e1,
                                                 sizeof e1),
                     EB_OK);
    assert_false(via);
    p.tenant_id = 1;
    snprintf(p.tenant, sizeof p.tenant, "platform");
    p.role = EB_ROLE_PLATFORM_ADMIN;
    via = true;
    assert_int_equal(eb_auth_resolve_bus_granted(a, f->db, &p, "r-owner/orders", 0, &got, &via,
                                                 e1, sizeof e1),
                     EB_OK);
    assert_false(via);
    eb_auth_free(a);
}

/* The source check: no prefixes (optional or required), matching by
 * prefix, and the cache serving a list until its TTL passes. */
static void test_sources_check(void **state)
{
    struct ut_db *f = *state;
    int64_t t = ut_tenant(f, "sc-tenant");
    eb_auth *a = eb_auth_new(200000); /* 200 ms */
    eb_sources *s = NULL;

    assert_int_equal(eb_auth_sources_get(a, f->db, t, &s), EB_OK);
    assert_true(eb_sources_allow(s, false, "/anything"));
    assert_false(eb_sources_allow(s, true, "/anything"));
    eb_auth_sources_release(a, s);

    assert_int_equal(eb_store_source_insert(f->db, t, "/sc/", 10), EB_OK);
    /* Still the cached, empty list. */
    assert_int_equal(eb_auth_sources_get(a, f->db, t, &s), EB_OK);
    assert_true(eb_sources_allow(s, false, "/other"));
    eb_auth_sources_release(a, s);
    usleep(250000);
    assert_int_equal(eb_auth_sources_get(a, f->db, t, &s), EB_OK);
    assert_true(eb_sources_allow(s, false, "/sc/app"));
    assert_true(eb_sources_allow(s, true, "/sc/"));
    assert_false(eb_sources_allow(s, false, "/other"));
    assert_false(eb_sources_allow(s, false, "/sc"));
    assert_false(eb_sources_allow(s, false, ""));
    /* A snapshot outlives its replacement in the cache. */
    usleep(250000);
    {
        eb_sources *s2 = NULL;
        assert_int_equal(eb_auth_sources_get(a, f->db, t, &s2), EB_OK);
        eb_auth_sources_release(a, s2);
    }
    assert_true(eb_sources_allow(s, false, "/sc/app"));
    eb_auth_sources_release(a, s);
    eb_auth_sources_release(a, NULL);
    eb_auth_free(a);
}

/* Returns whether a tenant other than tenant owns a prefix of source, by
 * scanning the whole owner list: the reference for the search in auth.c. */
static bool brute_owned(int64_t tenant, const char *source, const struct eb_source_owner *v,
                        size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].tenant_id != tenant && strncmp(source, v[i].prefix, strlen(v[i].prefix)) == 0)
            return true;
    return false;
}

/* A tenant without prefixes may publish any source but those under another
 * tenant's prefix; checked on chosen edges and against a brute-force scan
 * over random prefixes and sources. */
static void test_sources_ownership(void **state)
{
    struct ut_db *f = *state;
    int64_t owner = ut_tenant(f, "so-owner"), other = ut_tenant(f, "so-other"),
            free_t = ut_tenant(f, "so-free"), tenants[3];
    eb_auth *a = eb_auth_new(0); /* no caching: every get reads */
    eb_sources *s = NULL;
    struct eb_source_owner *v = NULL;
    size_t n = 0;
    int64_t total = 0;
    uint64_t rng = 42;
    char src[16];
    int checked = 0;

    assert_int_equal(eb_store_source_insert(f->db, owner, "/x/a/", 10), EB_OK);
    assert_int_equal(eb_store_source_insert(f->db, owner, "/x/a/b/", 10), EB_OK);
    assert_int_equal(eb_store_source_insert(f->db, owner, "/x/b", 10), EB_OK);
    assert_int_equal(eb_store_source_insert(f->db, other, "/m", 10), EB_OK);
    assert_int_equal(eb_store_source_insert(f->db, other, "/mz", 10), EB_OK);

    assert_int_equal(eb_auth_sources_get(a, f->db, free_t, &s), EB_OK);
    assert_true(eb_sources_allow(s, false, "/x/"));
    assert_true(eb_sources_allow(s, false, "/x/c"));
    assert_true(eb_sources_allow(s, false, "/x/a"));
    assert_true(eb_sources_allow(s, false, "/l"));
    assert_true(eb_sources_allow(s, false, "/"));
    assert_false(eb_sources_allow(s, false, "/x/a/"));
    assert_false(eb_sources_allow(s, false, "/x/a/1"));
    assert_false(eb_sources_allow(s, false, "/x/a/b/c"));
    assert_false(eb_sources_allow(s, false, "/x/bcd"));
    assert_false(eb_sources_allow(s, false, "/ma"));
    assert_false(eb_sources_allow(s, false, "/mzz"));
    assert_false(eb_sources_allow(s, true, "/l"));
    eb_auth_sources_release(a, s);
    /* The owner itself is held to its own prefixes as before. */
    assert_int_equal(eb_auth_sources_get(a, f->db, owner, &s), EB_OK);
    assert_true(eb_sources_allow(s, false, "/x/a/1"));
    assert_false(eb_sources_allow(s, false, "/l"));
    eb_auth_sources_release(a, s);

    /* Random prefixes over a small alphabet, so that they share starts. */
    tenants[0] = owner;
    tenants[1] = other;
    tenants[2] = ut_tenant(f, "so-third");
    for (int i = 0; i < 200; i++) {
        int len = 1 + (int)((rng = rng * 6364136223846793005ULL + 1) >> 61);
        src[0] = '/';
        src[1] = 'r';
        for (int k = 0; k < len; k++)
            src[2 + k] = "abc"[((rng = rng * 6364136223846793005ULL + 1) >> 40) % 3];
        src[2 + len] = '\0';
        /* Overlaps with another tenant are refused; that is fine here. */
        (void)eb_store_source_insert(f->db, tenants[i % 3], src, 100);
    }
    assert_int_equal(eb_store_source_owners(f->db, 100000, &v, &n, &total), EB_OK);
    assert_int_equal((int64_t)n, total);
    assert_int_equal(eb_auth_sources_get(a, f->db, free_t, &s), EB_OK);
    for (int i = 0; i < 5000; i++) {
        int len = (int)((rng = rng * 6364136223846793005ULL + 1) >> 60) % 10;
        src[0] = '/';
        src[1] = 'r';
        for (int k = 0; k < len; k++)
            src[2 + k] = "abc"[((rng = rng * 6364136223846793005ULL + 1) >> 40) % 3];
        src[2 + len] = '\0';
        if (eb_sources_allow(s, false, src) == brute_owned(free_t, src, v, n))
            fail_msg("source %s: the search and the scan disagree", src);
        checked += !brute_owned(free_t, src, v, n);
    }
    /* Both outcomes were exercised. */
    assert_true(checked > 100 && checked < 4900);
    eb_auth_sources_release(a, s);
    eb_source_owners_free(v, n);
    eb_auth_free(a);
}

static int setup_db(void **state)
{
    return ut_db_setup(state, "store_grants");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grants),
        cmocka_unit_test(test_grants_check),
        cmocka_unit_test(test_sources),
        cmocka_unit_test(test_resolve_through_grants),
        cmocka_unit_test(test_sources_check),
        cmocka_unit_test(test_sources_ownership),
    };

    return cmocka_run_group_tests(tests, setup_db, ut_db_teardown);
}
