/* Unit tests for server/auth.c: key generation and hashing, name
 * validation, role checks, and - against a real PostgreSQL - authentication
 * (missing, malformed, unknown, valid, revoked, expired keys and disabled
 * tenants) and bus resolution across tenants.
 *
 * The process creates its own database on the cluster named by
 * CEBUS_TEST_DATABASE_URL, migrates it from CEBUS_TEST_SOURCE_DIR, and
 * drops it at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "db_fixture.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define TTL_SHORT_US (50 * 1000) /* caches of the tests that change rows */
#define TTL_LONG_US (60LL * 1000000)
#define INVALID_KEY_MSG "authorization: invalid API key"

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Returns the id of tenant name, creating it when needed. */
static int64_t tenant_id(struct ut_db *f, const char *name)
{
    struct eb_tenant_rec t;

    if (eb_store_tenant_get(f->db, name, &t) == EB_OK)
        return t.id;
    assert_int_equal(eb_store_tenant_insert(f->db, name, "", &t), EB_OK);
    return t.id;
}

/* Creates a key for tenant with role, expiring at expires_us (0: never);
 * writes the "Bearer ..." header into header and returns the prefix in
 * prefix. */
static void make_key(struct ut_db *f, const char *tenant, int role, int64_t expires_us,
                     char header[EB_KEY_LEN + 8], char prefix[EB_KEY_PREFIX_LEN + 1])
{
    char key[EB_KEY_LEN + 1];
    uint8_t hash[32];

    eb_auth_generate(key, prefix, hash);
    assert_int_equal(eb_store_key_insert(f->db, tenant_id(f, tenant), prefix, hash, role,
                                         "test key", expires_us, NULL),
                     EB_OK);
    snprintf(header, EB_KEY_LEN + 8, "Bearer %s", key);
}

static void expect_unauth(eb_auth *a, eb_db *db, const char *header, const char *msg)
{
    struct eb_principal p;
    char err[256] = "";

    memset(&p, 0, sizeof p);
    assert_int_equal(eb_auth_authenticate(a, db, header, &p, err, sizeof err), EB_EUNAUTH);
    if (msg && strcmp(err, msg) != 0)
        print_error("header \"%s\": err \"%s\", want \"%s\"\n", header ? header : "(null)", err,
                    msg);
    if (msg)
        assert_string_equal(err, msg);
    else
        assert_true(err[0] != '\0');
}

/* --- Keys and hashes ---------------------------------------------------------- */

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

static void test_hash_vectors(void **state)
{
    uint8_t h[32];
    char x[65];

    (void)state;
    eb_auth_hash("abc", h);
    hex(h, 32, x);
    assert_string_equal(x, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    eb_auth_hash("", h);
    hex(h, 32, x);
    assert_string_equal(x, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    eb_auth_hash("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", h);
    hex(h, 32, x);
    assert_string_equal(x, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static int b64url_index(char c)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *p = c ? strchr(alphabet, c) : NULL;
    return p ? (int)(p - alphabet) : -1;
}

static void test_generate_format(void **state)
{
    (void)state;
    for (int n = 0; n < 500; n++) {
        char key[EB_KEY_LEN + 1], prefix[EB_KEY_PREFIX_LEN + 1];
        uint8_t hash[32], want[32];

        memset(key, 0x7f, sizeof key);
        memset(prefix, 0x7f, sizeof prefix);
        eb_auth_generate(key, prefix, hash);
        assert_int_equal(strlen(key), EB_KEY_LEN);
        assert_int_equal(EB_KEY_LEN, 3 + 8 + 1 + 43);
        assert_memory_equal(key, "cb_", 3);
        for (int i = 3; i < 11; i++)
            assert_non_null(strchr("abcdefghijklmnopqrstuvwxyz0123456789", key[i]));
        assert_int_equal(key[11], '_');
        for (int i = 12; i < EB_KEY_LEN; i++)
            assert_true(b64url_index(key[i]) >= 0);
        /* 256 bits in 43 characters: the last carries 4 bits, so its two
         * low bits are zero in canonical base64url. */
        assert_int_equal(b64url_index(key[EB_KEY_LEN - 1]) & 3, 0);

        assert_int_equal(strlen(prefix), EB_KEY_PREFIX_LEN);
        assert_memory_equal(prefix, key, EB_KEY_PREFIX_LEN);

        eb_auth_hash(key, want);
        assert_memory_equal(hash, want, 32);
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void test_generate_unique(void **state)
{
    enum { N = 5000 };
    char (*keys)[EB_KEY_LEN + 1] = eb_calloc(N, sizeof *keys);
    char (*prefixes)[EB_KEY_PREFIX_LEN + 1] = eb_calloc(N, sizeof *prefixes);
    size_t first_pos[256] = {0};

    (void)state;
    for (int i = 0; i < N; i++) {
        uint8_t hash[32];
        eb_auth_generate(keys[i], prefixes[i], hash);
        first_pos[(unsigned char)keys[i][12]]++;
    }
    qsort(keys, N, sizeof *keys, cmp_str);
    qsort(prefixes, N, sizeof *prefixes, cmp_str);
    for (int i = 1; i < N; i++) {
        assert_string_not_equal(keys[i - 1], keys[i]);
        assert_string_not_equal(prefixes[i - 1], prefixes[i]);
    }
    /* The secret's first character takes all 64 values (~78 each). */
    for (int c = 0; c < 256; c++)
        if (b64url_index((char)c) >= 0)
            assert_true(first_pos[c] > 20);
    free(keys);
    free(prefixes);
}

/* --- Names and roles ------------------------------------------------------------ */

static void test_name_valid(void **state)
{
    static const struct {
        const char *name;
        bool want;
    } cases[] = {
        {"a", true},
        {"Z", true},
        {"0", true},
        {"orders", true},
        {"Orders.v2_final-1", true},
        {"9lives", true},
        {"a.", true},
        {"a-", true},
        {"a..b", true},
        {"", false},
        {".a", false},
        {"_a", false},
        {"-a", false},
        {".", false},
        {"a/b", false},
        {"a b", false},
        {" a", false},
        {"a\t", false},
        {"a\n", false},
        {"a:b", false},
        {"a*", false},
        {"a@b", false},
        {"a+b", false},
        {"a%b", false},
        {"\xc3\xa9t\xc3\xa9", false},
        {"a\xc3\xa9", false},
        {"a\x7f", false},
    };
    char name[EB_NAME_MAX + 2];

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (eb_name_valid(cases[i].name) != cases[i].want)
            print_error("name \"%s\": want %d\n", cases[i].name, cases[i].want);
        assert_int_equal(eb_name_valid(cases[i].name), cases[i].want);
    }
    memset(name, 'n', sizeof name);
    name[EB_NAME_MAX] = '\0';
    assert_true(eb_name_valid(name)); /* exactly 64 */
    name[EB_NAME_MAX] = 'n';
    name[EB_NAME_MAX + 1] = '\0';
    assert_false(eb_name_valid(name)); /* 65 */
}

static struct eb_principal principal(const char *tenant, int64_t tid, enum eb_role role)
{
    struct eb_principal p;

    memset(&p, 0, sizeof p);
    p.tenant_id = tid;
    eb_strlcpy(p.tenant, tenant, sizeof p.tenant);
    p.role = role;
    eb_strlcpy(p.key_prefix, "cb_testtest", sizeof p.key_prefix);
    return p;
}

static void test_require(void **state)
{
    static const enum eb_role roles[] = {EB_ROLE_PLATFORM_ADMIN, EB_ROLE_TENANT_ADMIN,
                                         EB_ROLE_PUBLISHER, EB_ROLE_SUBSCRIBER};
    char err[128];

    (void)state;
    for (size_t i = 0; i < 4; i++) {
        struct eb_principal p = principal("t", 1, roles[i]);
        err[0] = '\0';
        assert_int_equal(eb_auth_require(&p, EB_ANY_ROLE, "x", err, sizeof err), EB_OK);
        assert_int_equal(eb_auth_require(&p, EB_ROLES(roles[i]), "x", err, sizeof err), EB_OK);
        assert_int_equal(eb_auth_require(&p, EB_ADMINS, "x", err, sizeof err),
                         roles[i] <= EB_ROLE_TENANT_ADMIN ? EB_OK : EB_EPERM);
        assert_int_equal(eb_auth_require(&p, 0, "x", err, sizeof err), EB_EPERM);
    }
    {
        struct eb_principal p = principal("t", 1, EB_ROLE_PUBLISHER);
        assert_int_equal(eb_auth_require(&p, EB_ADMINS, "create buses", err, sizeof err),
                         EB_EPERM);
        assert_string_equal(err, "the publisher role may not create buses");
        p.role = EB_ROLE_SUBSCRIBER;
        assert_int_equal(eb_auth_require(&p, EB_ROLES(EB_ROLE_PUBLISHER), "publish", err,
                                         sizeof err),
                         EB_EPERM);
        assert_string_equal(err, "the subscriber role may not publish");
        p.role = EB_ROLE_TENANT_ADMIN;
        assert_int_equal(eb_auth_require(&p, EB_ROLES(EB_ROLE_PLATFORM_ADMIN), "create tenants",
                                         err, sizeof err),
                         EB_EPERM);
        assert_string_equal(err, "the tenant admin role may not create tenants");
    }
    {
        /* A principal without a role (zeroed) or with an unknown one is
         * refused, never allowed. */
        struct eb_principal p;
        memset(&p, 0, sizeof p);
        assert_int_equal(eb_auth_require(&p, EB_ANY_ROLE, "x", err, sizeof err), EB_EPERM);
        p.role = (enum eb_role)7;
        assert_int_equal(eb_auth_require(&p, EB_ANY_ROLE, "x", err, sizeof err), EB_EPERM);
        assert_non_null(strstr(err, "unknown"));
    }
    {
        /* A small buffer truncates, never overflows. */
        struct eb_principal p = principal("t", 1, EB_ROLE_SUBSCRIBER);
        char small[8];
        assert_int_equal(eb_auth_require(&p, EB_ADMINS, "do anything at all", small,
                                         sizeof small),
                         EB_EPERM);
        assert_int_equal(strlen(small), sizeof small - 1);
    }
}

/* --- Authentication ----------------------------------------------------------- */

static void test_authenticate_malformed(void **state)
{
    struct ut_db *f = *state;
    eb_auth *a = eb_auth_new(TTL_LONG_US);
    char header[EB_KEY_LEN + 8], prefix[EB_KEY_PREFIX_LEN + 1], err[256];
    char longhdr[400];

    make_key(f, "acme", EB_ROLE_PUBLISHER, 0, header, prefix);

    err[0] = '\0';
    expect_unauth(a, f->db, NULL, NULL);
    {
        struct eb_principal p;
        assert_int_equal(eb_auth_authenticate(a, f->db, NULL, &p, err, sizeof err), EB_EUNAUTH);
        assert_non_null(strstr(err, "missing"));
        assert_non_null(strstr(err, "Bearer"));
    }
    expect_unauth(a, f->db, "", "authorization: expected \"Bearer <api key>\"");
    expect_unauth(a, f->db, header + 7, "authorization: expected \"Bearer <api key>\"");
    expect_unauth(a, f->db, "Basic dXNlcjpwYXNz", "authorization: expected \"Bearer <api key>\"");
    expect_unauth(a, f->db, "Bearer", "authorization: expected \"Bearer <api key>\"");
    expect_unauth(a, f->db, "Bearer ", INVALID_KEY_MSG);
    expect_unauth(a, f->db, "Bearer cb_short", INVALID_KEY_MSG);
    expect_unauth(a, f->db, "Bearer 123456789012345", INVALID_KEY_MSG); /* 15 */
    memset(longhdr, 'k', sizeof longhdr);
    memcpy(longhdr, "Bearer ", 7);
    longhdr[sizeof longhdr - 1] = '\0';
    expect_unauth(a, f->db, longhdr, INVALID_KEY_MSG);
    /* Well-formed but unknown, and a known key with one character changed. */
    expect_unauth(a, f->db, "Bearer cb_abcdefgh_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                  INVALID_KEY_MSG);
    {
        char saved = header[20];
        header[20] = saved == 'A' ? 'B' : 'A';
        expect_unauth(a, f->db, header, INVALID_KEY_MSG);
        header[20] = saved;
    }
    /* Trailing garbage makes another key. */
    {
        char trailing[EB_KEY_LEN + 16];
        snprintf(trailing, sizeof trailing, "%s ", header);
        expect_unauth(a, f->db, trailing, INVALID_KEY_MSG);
    }
    eb_auth_free(a);
    eb_auth_free(NULL);
}

static void test_authenticate_valid(void **state)
{
    struct ut_db *f = *state;
    eb_auth *a = eb_auth_new(TTL_LONG_US);
    char header[EB_KEY_LEN + 8], prefix[EB_KEY_PREFIX_LEN + 1], err[256];
    char variant[EB_KEY_LEN + 16];
    struct eb_principal p;
    int64_t tid = tenant_id(f, "acme");

    static const enum eb_role roles[] = {EB_ROLE_TENANT_ADMIN, EB_ROLE_PUBLISHER,
                                         EB_ROLE_SUBSCRIBER};
    for (size_t i = 0; i < 3; i++) {
        make_key(f, "acme", roles[i], 0, header, prefix);
        memset(&p, 0x33, sizeof p);
        assert_int_equal(eb_auth_authenticate(a, f->db, header, &p, err, sizeof err), EB_OK);
        assert_int_equal(p.tenant_id, tid);
        assert_string_equal(p.tenant, "acme");
        assert_int_equal(p.role, roles[i]);
        assert_string_equal(p.key_prefix, prefix);
        /* Again, now from the cache. */
        memset(&p, 0x33, sizeof p);
        assert_int_equal(eb_auth_authenticate(a, f->db, header, &p, err, sizeof err), EB_OK);
        assert_int_equal(p.role, roles[i]);
        assert_string_equal(p.key_prefix, prefix);
    }

    /* The scheme is case-insensitive and extra spaces before the key are
     * tolerated. */
    snprintf(variant, sizeof variant, "bearer %s", header + 7);
    assert_int_equal(eb_auth_authenticate(a, f->db, variant, &p, err, sizeof err), EB_OK);
    snprintf(variant, sizeof variant, "BEARER   %s", header + 7);
    assert_int_equal(eb_auth_authenticate(a, f->db, variant, &p, err, sizeof err), EB_OK);

    /* A platform admin key. */
    make_key(f, EB_PLATFORM_TENANT, EB_ROLE_PLATFORM_ADMIN, 0, header, prefix);
    assert_int_equal(eb_auth_authenticate(a, f->db, header, &p, err, sizeof err), EB_OK);
    assert_string_equal(p.tenant, EB_PLATFORM_TENANT);
    assert_int_equal(p.role, EB_ROLE_PLATFORM_ADMIN);

    /* A key expiring in an hour is valid. */
    make_key(f, "acme", EB_ROLE_PUBLISHER, eb_now_wall_us() + 3600LL * 1000000, header, prefix);
    assert_int_equal(eb_auth_authenticate(a, f->db, header, &p, err, sizeof err), EB_OK);
    eb_auth_free(a);
}

static void test_authenticate_revoked(void **state)
{
    struct ut_db *f = *state;
    eb_auth *a = eb_auth_new(TTL_SHORT_US);
    char header[EB_KEY_LEN + 8], prefix[EB_KEY_PREFIX_LEN + 1], err[256], sql[128];
    struct eb_principal p;

    make_key(f, "acme", EB_ROLE_PUBLISHER, 0, header, prefix);
    assert_int_equal(eb_auth_authenticate(a, f->db, header, &p, err, sizeof err), EB_OK);
    snprintf(sql, sizeof sql, "UPDATE api_keys SET revoked_at = now() WHERE prefix = '%s'",
             prefix);
    ut_sql_ok(f->raw, sql);
    sleep_ms(2 * TTL_SHORT_US / 1000);
    expect_unauth(a, f->db, header, INVALID_KEY_MSG);
    /* And with a fresh authenticator, straight from the database. */
    eb_auth_free(a);
    a = eb_auth_new(TTL_LONG_US);
    expect_unauth(a, f->db, header, INVALID_KEY_MSG);
    eb_auth_free(a);
}

static void test_authenticate_expired(void **state)
{
    struct ut_db *f = *state;
    eb_auth *a = eb_auth_new(TTL_LONG_US);
    char header[EB_KEY_LEN + 8], prefix[EB_KEY_PREFIX_LEN + 1], err[256];
    struct eb_principal p;

    make_key(f, "acme", EB_ROLE_PUBLISHER, eb_now_wall_us() - 1000000, header, prefix);
    expect_unauth(a, f->db, header, INVALID_KEY_MSG);

    /* Expiry takes effect at its time even while the key is cached. */
    make_key(f, "acme", EB_ROLE_PUBLISHER, eb_now_wall_us() + 300 * 1000, header, prefix);
    assert_int_equal(eb_auth_authenticate(a, f->db, header, &p, err, sizeof err), EB_OK);
    sleep_ms(400);
    expect_unauth(a, f->db, header, INVALID_KEY_MSG);
    eb_auth_free(a);
}

static void test_authenticate_disabled_tenant(void **state)
{
    struct ut_db *f = *state;
    eb_auth *a = eb_auth_new(TTL_SHORT_US);
    char header[EB_KEY_LEN + 8], prefix[EB_KEY_PREFIX_LEN + 1], err[256];
    struct eb_principal p;

    make_key(f, "soon-disabled", EB_ROLE_TENANT_ADMIN, 0, header, prefix);
    assert_int_equal(eb_auth_authenticate(a, f->db, header, &p, err, sizeof err), EB_OK);
    ut_sql_ok(f->raw, "UPDATE tenants SET disabled = true WHERE name = 'soon-disabled'");
    sleep_ms(2 * TTL_SHORT_US / 1000);
    expect_unauth(a, f->db, header, INVALID_KEY_MSG);
    /* Enabled again: valid again after the TTL. */
    ut_sql_ok(f->raw, "UPDATE tenants SET disabled = false WHERE name = 'soon-disabled'");
    sleep_ms(2 * TTL_SHORT_US / 1000);
    assert_int_equal(eb_auth_authenticate(a, f->db, header, &p, err, sizeof err), EB_OK);
    eb_auth_free(a);
}

/* An unknown key is remembered as unknown only for the TTL. */
static void test_authenticate_unknown_then_created(void **state)
{
    struct ut_db *f = *state;
    eb_auth *a = eb_auth_new(TTL_SHORT_US);
    char key[EB_KEY_LEN + 1], prefix[EB_KEY_PREFIX_LEN + 1], header[EB_KEY_LEN + 8], err[256];
    uint8_t hash[32];
    struct eb_principal p;

    eb_auth_generate(key, prefix, hash);
    snprintf(header, sizeof header, "Bearer %s", key);
    expect_unauth(a, f->db, header, INVALID_KEY_MSG);
    assert_int_equal(eb_store_key_insert(f->db, tenant_id(f, "acme"), prefix, hash,
                                         EB_ROLE_SUBSCRIBER, "", 0, NULL),
                     EB_OK);
    sleep_ms(2 * TTL_SHORT_US / 1000);
    assert_int_equal(eb_auth_authenticate(a, f->db, header, &p, err, sizeof err), EB_OK);
    assert_int_equal(p.role, EB_ROLE_SUBSCRIBER);
    eb_auth_free(a);
}

static void test_authenticate_db_down(void **state)
{
    struct ut_db *f = *state;
    eb_auth *a = eb_auth_new(TTL_LONG_US);
    eb_db *down = eb_db_open("host=/nonexistent/cebus port=1 dbname=x connect_timeout=2");
    char header[EB_KEY_LEN + 8], prefix[EB_KEY_PREFIX_LEN + 1], other[EB_KEY_LEN + 8];
    char err[256];
    struct eb_principal p;

    make_key(f, "acme", EB_ROLE_PUBLISHER, 0, header, prefix);
    make_key(f, "acme", EB_ROLE_PUBLISHER, 0, other, prefix);
    assert_int_equal(eb_auth_authenticate(a, f->db, header, &p, err, sizeof err), EB_OK);
    /* Cached: still fine without a database. */
    assert_int_equal(eb_auth_authenticate(a, down, header, &p, err, sizeof err), EB_OK);
    /* Not cached: unavailable, not unauthenticated; and not cached as bad. */
    assert_int_equal(eb_auth_authenticate(a, down, other, &p, err, sizeof err), EB_EUNAVAIL);
    assert_int_equal(eb_auth_authenticate(a, f->db, other, &p, err, sizeof err), EB_OK);
    eb_db_close(down);
    eb_auth_free(a);
}

/* --- Bus resolution ----------------------------------------------------------- */

struct buses {
    struct eb_bus_rec own, other;
    int64_t acme, globex;
};

static struct buses make_buses(struct ut_db *f)
{
    struct buses b;
    struct eb_bus_rec tmp;

    b.acme = tenant_id(f, "acme");
    b.globex = tenant_id(f, "globex");
    if (eb_store_bus_get(f->db, "acme", "orders", &b.own) != EB_OK)
        assert_int_equal(eb_store_bus_insert(f->db, b.acme, "orders", 168, 300, &b.own), EB_OK);
    if (eb_store_bus_get(f->db, "globex", "secret", &b.other) != EB_OK)
        assert_int_equal(eb_store_bus_insert(f->db, b.globex, "secret", 168, 300, &b.other),
                         EB_OK);
    if (eb_store_bus_get(f->db, "globex", "orders", &tmp) != EB_OK)
        assert_int_equal(eb_store_bus_insert(f->db, b.globex, "orders", 168, 300, &tmp), EB_OK);
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

static void expect_not_found(eb_auth *a, eb_db *db, const struct eb_principal *p,
                             const char *ref)
{
    struct eb_bus_rec bus;
    char err[256], want[256];

    assert_int_equal(eb_auth_resolve_bus(a, db, p, ref, &bus, err, sizeof err), EB_ENOTFOUND);
    snprintf(want, sizeof want, "bus: no bus \"%s\"", ref);
    assert_string_equal(err, want);
}

static void test_resolve_own_bus(void **state)
{
    struct ut_db *f = *state;
    struct buses b = make_buses(f);
    eb_auth *a = eb_auth_new(TTL_LONG_US);
    static const enum eb_role roles[] = {EB_ROLE_TENANT_ADMIN, EB_ROLE_PUBLISHER,
                                         EB_ROLE_SUBSCRIBER};
    struct eb_bus_rec bus;
    char err[256];

    for (size_t i = 0; i < 3; i++) {
        struct eb_principal p = principal("acme", b.acme, roles[i]);
        for (int round = 0; round < 2; round++) { /* database, then cache */
            memset(&bus, 0, sizeof bus);
            assert_int_equal(eb_auth_resolve_bus(a, f->db, &p, "orders", &bus, err, sizeof err),
                             EB_OK);
            assert_bus_equal(&bus, &b.own);
            memset(&bus, 0, sizeof bus);
            assert_int_equal(eb_auth_resolve_bus(a, f->db, &p, "acme/orders", &bus, err,
                                                 sizeof err),
                             EB_OK);
            assert_int_equal(bus.id, b.own.id);
            assert_string_equal(bus.tenant, "acme");
        }
        expect_not_found(a, f->db, &p, "missing");
        expect_not_found(a, f->db, &p, "acme/missing");
    }
    eb_auth_free(a);
}

static void test_resolve_other_tenant(void **state)
{
    struct ut_db *f = *state;
    struct buses b = make_buses(f);
    eb_auth *a = eb_auth_new(TTL_LONG_US);
    struct eb_principal p = principal("acme", b.acme, EB_ROLE_TENANT_ADMIN);
    struct eb_bus_rec bus;
    char err_exists[256], err_missing[256];

    /* Warm the cache with globex's bus through the platform admin first:
     * the cache must not leak it to acme. */
    {
        struct eb_principal admin = principal(EB_PLATFORM_TENANT, 1, EB_ROLE_PLATFORM_ADMIN);
        assert_int_equal(eb_auth_resolve_bus(a, f->db, &admin, "globex/secret", &bus, err_exists,
                                             sizeof err_exists),
                         EB_OK);
    }
    expect_not_found(a, f->db, &p, "globex/secret");
    expect_not_found(a, f->db, &p, "globex/nothing-here");
    expect_not_found(a, f->db, &p, "nobody/secret");
    /* "secret" alone is acme's (missing) bus, not globex's. */
    expect_not_found(a, f->db, &p, "secret");

    /* An existing and a missing bus of another tenant: same status, and
     * messages that differ only by the reference echoed back. */
    assert_int_equal(eb_auth_resolve_bus(a, f->db, &p, "globex/orders", &bus, err_exists,
                                         sizeof err_exists),
                     EB_ENOTFOUND);
    assert_int_equal(eb_auth_resolve_bus(a, f->db, &p, "globex/orderz", &bus, err_missing,
                                         sizeof err_missing),
                     EB_ENOTFOUND);
    assert_int_equal(strlen(err_exists), strlen(err_missing));
    err_exists[strlen(err_exists) - 2] = err_missing[strlen(err_missing) - 2];
    assert_string_equal(err_exists, err_missing);

    /* Every role of another tenant is refused alike. */
    p.role = EB_ROLE_PUBLISHER;
    expect_not_found(a, f->db, &p, "globex/secret");
    p.role = EB_ROLE_SUBSCRIBER;
    expect_not_found(a, f->db, &p, "globex/secret");
    eb_auth_free(a);
}

static void test_resolve_platform_admin(void **state)
{
    struct ut_db *f = *state;
    struct buses b = make_buses(f);
    eb_auth *a = eb_auth_new(TTL_LONG_US);
    struct eb_principal admin = principal(EB_PLATFORM_TENANT, 1, EB_ROLE_PLATFORM_ADMIN);
    struct eb_bus_rec bus;
    char err[256];

    assert_int_equal(eb_auth_resolve_bus(a, f->db, &admin, "globex/secret", &bus, err,
                                         sizeof err),
                     EB_OK);
    assert_bus_equal(&bus, &b.other);
    assert_int_equal(eb_auth_resolve_bus(a, f->db, &admin, "acme/orders", &bus, err, sizeof err),
                     EB_OK);
    assert_int_equal(bus.id, b.own.id);
    /* Without a tenant the reference is the admin's own tenant's. */
    expect_not_found(a, f->db, &admin, "secret");
    expect_not_found(a, f->db, &admin, "globex/missing");
    /* A platform tenant key that is not a platform admin has no reach. */
    admin.role = EB_ROLE_TENANT_ADMIN;
    expect_not_found(a, f->db, &admin, "globex/secret");
    eb_auth_free(a);
}

static void test_resolve_malformed(void **state)
{
    struct ut_db *f = *state;
    struct buses b = make_buses(f);
    eb_auth *a = eb_auth_new(TTL_LONG_US);
    struct eb_principal p = principal("acme", b.acme, EB_ROLE_TENANT_ADMIN);
    char long_name[EB_NAME_MAX + 2], ref[2 * EB_NAME_MAX + 8];
    const char *refs[16];
    size_t n = 0;

    memset(long_name, 'x', EB_NAME_MAX + 1);
    long_name[EB_NAME_MAX + 1] = '\0';
    refs[n++] = "/orders";
    refs[n++] = "acme/";
    refs[n++] = "/";
    refs[n++] = "acme/orders/x";
    refs[n++] = "acme//orders";
    refs[n++] = "bad name";
    refs[n++] = "-orders";
    refs[n++] = ".orders";
    refs[n++] = "orders\n";
    refs[n++] = "acme/or ders";
    refs[n++] = "ac me/orders";
    refs[n++] = long_name;
    for (size_t i = 0; i < n; i++) {
        struct eb_bus_rec bus;
        char err[256] = "";
        eb_status st = eb_auth_resolve_bus(a, f->db, &p, refs[i], &bus, err, sizeof err);
        if (st != EB_EINVAL || strncmp(err, "bus: ", 5) != 0)
            print_error("ref \"%s\": status %d err \"%s\"\n", refs[i], (int)st, err);
        assert_int_equal(st, EB_EINVAL);
        assert_true(strncmp(err, "bus: ", 5) == 0);
    }
    /* Too long on either side of the slash. */
    snprintf(ref, sizeof ref, "%s/orders", long_name);
    {
        struct eb_bus_rec bus;
        char err[256];
        assert_int_equal(eb_auth_resolve_bus(a, f->db, &p, ref, &bus, err, sizeof err),
                         EB_EINVAL);
        snprintf(ref, sizeof ref, "acme/%s", long_name);
        assert_int_equal(eb_auth_resolve_bus(a, f->db, &p, ref, &bus, err, sizeof err),
                         EB_EINVAL);
        assert_int_equal(eb_auth_resolve_bus(a, f->db, &p, "", &bus, err, sizeof err),
                         EB_EINVAL);
        assert_string_equal(err, "bus: required");
    }
    eb_auth_free(a);
}

/* A deleted bus stops resolving once the cache entry is gone; a database
 * that cannot be asked is UNAVAILABLE, not NOT_FOUND. */
static void test_resolve_cache_and_db_down(void **state)
{
    struct ut_db *f = *state;
    struct buses b = make_buses(f);
    eb_auth *a = eb_auth_new(TTL_SHORT_US);
    struct eb_principal p = principal("acme", b.acme, EB_ROLE_PUBLISHER);
    eb_db *down = eb_db_open("host=/nonexistent/cebus port=1 dbname=x connect_timeout=2");
    struct eb_bus_rec bus, tmp;
    char err[256];

    assert_int_equal(eb_store_bus_insert(f->db, b.acme, "short-lived", 1, 0, &tmp), EB_OK);
    assert_int_equal(eb_auth_resolve_bus(a, f->db, &p, "short-lived", &bus, err, sizeof err),
                     EB_OK);
    /* Cached: resolves without a database. */
    assert_int_equal(eb_auth_resolve_bus(a, down, &p, "short-lived", &bus, err, sizeof err),
                     EB_OK);
    ut_sql_ok(f->raw, "DELETE FROM buses WHERE name = 'short-lived'");
    sleep_ms(2 * TTL_SHORT_US / 1000);
    expect_not_found(a, f->db, &p, "short-lived");

    assert_int_equal(eb_auth_resolve_bus(a, down, &p, "orders", &bus, err, sizeof err),
                     EB_EUNAVAIL);
    assert_non_null(strstr(err, "bus"));
    eb_db_close(down);
    eb_auth_free(a);
}

static int setup_db(void **state)
{
    int rc = ut_db_setup(state, "auth");

    /* Refused keys are logged as warnings; the tests cause many. */
    eb_log_set_level(EB_LOG_ERROR);
    return rc;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_vectors),
        cmocka_unit_test(test_generate_format),
        cmocka_unit_test(test_generate_unique),
        cmocka_unit_test(test_name_valid),
        cmocka_unit_test(test_require),
        cmocka_unit_test(test_authenticate_malformed),
        cmocka_unit_test(test_authenticate_valid),
        cmocka_unit_test(test_authenticate_revoked),
        cmocka_unit_test(test_authenticate_expired),
        cmocka_unit_test(test_authenticate_disabled_tenant),
        cmocka_unit_test(test_authenticate_unknown_then_created),
        cmocka_unit_test(test_authenticate_db_down),
        cmocka_unit_test(test_resolve_own_bus),
        cmocka_unit_test(test_resolve_other_tenant),
        cmocka_unit_test(test_resolve_platform_admin),
        cmocka_unit_test(test_resolve_malformed),
        cmocka_unit_test(test_resolve_cache_and_db_down),
    };

    return cmocka_run_group_tests(tests, setup_db, ut_db_teardown);
}
