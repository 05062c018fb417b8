/* Unit tests for server/config.c: defaults, environment overrides, flags
 * over the environment, both flag spellings, every kind of invalid input
 * with a message naming the setting, --help and --version, and the
 * migrate command.
 *
 * Output and errors are captured with open_memstream(); each test starts
 * from an environment without any CEBUS_ setting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "addr.h"
#include "config.h"

static const char *const setting_envs[] = {
    "CEBUS_LISTEN",           "CEBUS_DATABASE_URL",    "CEBUS_ADMIN_KEY",
    "CEBUS_DATA_DIR",         "CEBUS_MIGRATIONS_DIR",  "CEBUS_LOG_LEVEL",
    "CEBUS_EMBEDDED_PG_PORT", "CEBUS_WORKERS",         "CEBUS_DB_POOL",
    "CEBUS_MAX_EVENT_BYTES",  "CEBUS_MAX_REQUEST_BYTES", "CEBUS_MAX_BATCH",
    "CEBUS_MAX_STREAMS",      "CEBUS_MAX_IN_FLIGHT",   "CEBUS_CATCHUP_MS",
    "CEBUS_SHUTDOWN_GRACE_MS", "CEBUS_REQUIRE_SOURCES", "CEBUS_METRICS_LISTEN",
    "CEBUS_TLS_CERT_FILE",    "CEBUS_TLS_KEY_FILE",    "CEBUS_TLS_CLIENT_CA_FILE",
    "CEBUS_ALLOW_PLAINTEXT",
    "CEBUS_QUOTA_EVENTS_PER_SECOND", "CEBUS_QUOTA_BYTES_PER_SECOND",
    "CEBUS_QUOTA_BURST_SECONDS", "CEBUS_QUOTA_RULES_PER_BUS", "CEBUS_QUOTA_SUBSCRIPTIONS",
    "CEBUS_QUOTA_CONCURRENT_STREAMS",
};
#define NENVS (sizeof setting_envs / sizeof setting_envs[0])

#define ADMIN_KEY_32 "0123456789abcdef0123456789abcdef"

/* One eb_config_load() call with its captured streams. */
struct run {
    struct eb_config cfg;
    eb_status st;
    char *out, *err;
    size_t outlen, errlen;
};

static int clear_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < NENVS; i++)
        unsetenv(setting_envs[i]);
    return 0;
}

/* Loads the configuration from the NULL-terminated argument list. */
static void load_args(struct run *r, const char *const *args)
{
    char *argv[32];
    int argc = 0;
    FILE *out, *err;

    while (args[argc]) {
        assert_true(argc < 31);
        argv[argc] = (char *)args[argc];
        argc++;
    }
    argv[argc] = NULL;
    memset(r, 0, sizeof *r);
    out = open_memstream(&r->out, &r->outlen);
    err = open_memstream(&r->err, &r->errlen);
    assert_non_null(out);
    assert_non_null(err);
    r->st = eb_config_load(&r->cfg, argc, argv, out, err);
    fclose(out);
    fclose(err);
}

#define LOAD(r, ...) load_args((r), (const char *const[]){__VA_ARGS__, NULL})

static void run_free(struct run *r)
{
    if (r->st == EB_OK)
        eb_config_free(&r->cfg);
    free(r->out);
    free(r->err);
}

/* Asserts that loading failed with EB_EINVAL and that the message names
 * `setting` (and, when given, `also`). */
static void expect_invalid(struct run *r, const char *setting, const char *also)
{
    if (r->st != EB_EINVAL || !strstr(r->err, setting) || (also && !strstr(r->err, also)))
        print_error("status %d, err \"%s\"; wanted EB_EINVAL naming \"%s\"%s%s\n", (int)r->st,
                    r->err, setting, also ? " and " : "", also ? also : "");
    assert_int_equal(r->st, EB_EINVAL);
    assert_non_null(strstr(r->err, setting));
    if (also)
        assert_non_null(strstr(r->err, also));
}

/* Runs argv (NULL-terminated) and expects EB_EINVAL naming setting. */
static void invalid_args(const char *const *args, const char *setting, const char *also)
{
    struct run r;

    load_args(&r, args);
    expect_invalid(&r, setting, also);
    run_free(&r);
}

#define INVALID(setting, also, ...) \
    invalid_args((const char *const[]){__VA_ARGS__, NULL}, (setting), (also))

static void test_defaults(void **state)
{
    struct run r;

    (void)state;
    load_args(&r, (const char *const[]){NULL});
    assert_int_equal(r.st, EB_OK);
    assert_string_equal(r.err, "");
    assert_string_equal(r.out, "");
    assert_string_equal(r.cfg.command, "serve");
    assert_string_equal(r.cfg.listen, "127.0.0.1:50051");
    assert_string_equal(r.cfg.metrics_listen, "127.0.0.1:9464");
    assert_null(r.cfg.database_url);
    assert_null(r.cfg.admin_key);
    assert_string_equal(r.cfg.data_dir, "var");
    assert_non_null(r.cfg.migrations_dir);
    assert_true(r.cfg.migrations_dir[0] != '\0');
    assert_string_equal(r.cfg.log_level, "info");
    assert_int_equal(r.cfg.embedded_pg_port, 54329);
    assert_int_equal(r.cfg.workers, 2);
    assert_int_equal(r.cfg.db_pool, 8);
    assert_int_equal(r.cfg.max_event_bytes, 262144);
    assert_int_equal(r.cfg.max_request_bytes, 4194304);
    assert_int_equal(r.cfg.max_batch, 500);
    assert_int_equal(r.cfg.max_streams, 10000);
    assert_int_equal(r.cfg.max_in_flight, 1000);
    assert_int_equal(r.cfg.catchup_ms, 1000);
    assert_int_equal(r.cfg.shutdown_grace_ms, 5000);
    run_free(&r);
}

static void test_env_overrides(void **state)
{
    struct run r;

    (void)state;
    setenv("CEBUS_LISTEN", "0.0.0.0:6000", 1);
    setenv("CEBUS_DATABASE_URL", "host=/tmp dbname=x", 1);
    setenv("CEBUS_ADMIN_KEY", ADMIN_KEY_32, 1);
    setenv("CEBUS_DATA_DIR", "/srv/cebus", 1);
    setenv("CEBUS_MIGRATIONS_DIR", "/usr/share/cebus/migrations", 1);
    setenv("CEBUS_LOG_LEVEL", "debug", 1);
    setenv("CEBUS_EMBEDDED_PG_PORT", "6543", 1);
    setenv("CEBUS_WORKERS", "4", 1);
    setenv("CEBUS_DB_POOL", "16", 1);
    setenv("CEBUS_MAX_EVENT_BYTES", "1024", 1);
    setenv("CEBUS_MAX_REQUEST_BYTES", "4096", 1);
    setenv("CEBUS_MAX_BATCH", "10000", 1);
    setenv("CEBUS_MAX_STREAMS", "1", 1);
    setenv("CEBUS_MAX_IN_FLIGHT", "100000", 1);
    setenv("CEBUS_CATCHUP_MS", "10", 1);
    setenv("CEBUS_SHUTDOWN_GRACE_MS", "0", 1);
    setenv("CEBUS_TLS_CERT_FILE", "/etc/cebus/tls.crt", 1);
    setenv("CEBUS_TLS_KEY_FILE", "/etc/cebus/tls.key", 1);
    setenv("CEBUS_TLS_CLIENT_CA_FILE", "/etc/cebus/ca.crt", 1);
    setenv("CEBUS_ALLOW_PLAINTEXT", "true", 1);
    load_args(&r, (const char *const[]){NULL});
    assert_int_equal(r.st, EB_OK);
    assert_string_equal(r.cfg.listen, "0.0.0.0:6000");
    assert_string_equal(r.cfg.database_url, "host=/tmp dbname=x");
    assert_string_equal(r.cfg.admin_key, ADMIN_KEY_32);
    assert_string_equal(r.cfg.data_dir, "/srv/cebus");
    assert_string_equal(r.cfg.migrations_dir, "/usr/share/cebus/migrations");
    assert_string_equal(r.cfg.log_level, "debug");
    assert_int_equal(r.cfg.embedded_pg_port, 6543);
    assert_int_equal(r.cfg.workers, 4);
    assert_int_equal(r.cfg.db_pool, 16);
    assert_int_equal(r.cfg.max_event_bytes, 1024);
    assert_int_equal(r.cfg.max_request_bytes, 4096);
    assert_int_equal(r.cfg.max_batch, 10000);
    assert_int_equal(r.cfg.max_streams, 1);
    assert_int_equal(r.cfg.max_in_flight, 100000);
    assert_int_equal(r.cfg.catchup_ms, 10);
    assert_int_equal(r.cfg.shutdown_grace_ms, 0);
    assert_string_equal(r.cfg.tls_cert_file, "/etc/cebus/tls.crt");
    assert_string_equal(r.cfg.tls_key_file, "/etc/cebus/tls.key");
    assert_string_equal(r.cfg.tls_client_ca_file, "/etc/cebus/ca.crt");
    assert_true(r.cfg.allow_plaintext);
    run_free(&r);
}

static void test_empty_env_means_unset(void **state)
{
    struct run r;

    (void)state;
    setenv("CEBUS_LISTEN", "", 1);
    setenv("CEBUS_WORKERS", "", 1);
    load_args(&r, (const char *const[]){NULL});
    assert_int_equal(r.st, EB_OK);
    assert_string_equal(r.cfg.listen, "127.0.0.1:50051");
    assert_int_equal(r.cfg.workers, 2);
    run_free(&r);
}

static void test_flags_override_env(void **state)
{
    struct run r;

    (void)state;
    setenv("CEBUS_LISTEN", "0.0.0.0:6000", 1);
    setenv("CEBUS_WORKERS", "4", 1);
    setenv("CEBUS_LOG_LEVEL", "error", 1);
    LOAD(&r, "--listen", "127.0.0.1:7000", "--workers=8");
    assert_int_equal(r.st, EB_OK);
    assert_string_equal(r.cfg.listen, "127.0.0.1:7000");
    assert_int_equal(r.cfg.workers, 8);
    assert_string_equal(r.cfg.log_level, "error"); /* not on the command line */
    run_free(&r);
}

static void test_both_flag_spellings(void **state)
{
    struct run r;

    (void)state;
    LOAD(&r, "--db-pool=3", "--catchup-ms", "250", "--log-level=warn", "--data-dir", "/d",
         "--database-url=host=/x dbname=y");
    assert_int_equal(r.st, EB_OK);
    assert_int_equal(r.cfg.db_pool, 3);
    assert_int_equal(r.cfg.catchup_ms, 250);
    assert_string_equal(r.cfg.log_level, "warn");
    assert_string_equal(r.cfg.data_dir, "/d");
    /* Only the first '=' separates: the value keeps its own. */
    assert_string_equal(r.cfg.database_url, "host=/x dbname=y");
    run_free(&r);

    /* The last occurrence wins, and a value may begin with "--" when given
     * as a separate argument. */
    LOAD(&r, "--workers=3", "--workers", "5", "--data-dir", "--weird");
    assert_int_equal(r.st, EB_OK);
    assert_int_equal(r.cfg.workers, 5);
    assert_string_equal(r.cfg.data_dir, "--weird");
    run_free(&r);
}

static void test_bounds_accepted(void **state)
{
    struct run r;

    (void)state;
    LOAD(&r, "--embedded-pg-port=1", "--workers=64", "--db-pool=256", "--max-batch=1",
         "--max-event-bytes=4194304", "--max-request-bytes=67108864",
         "--shutdown-grace-ms=600000", "--catchup-ms=60000");
    assert_int_equal(r.st, EB_OK);
    assert_int_equal(r.cfg.embedded_pg_port, 1);
    assert_int_equal(r.cfg.workers, 64);
    assert_int_equal(r.cfg.db_pool, 256);
    assert_int_equal(r.cfg.max_batch, 1);
    assert_int_equal(r.cfg.max_event_bytes, 4194304);
    assert_int_equal(r.cfg.max_request_bytes, 67108864);
    assert_int_equal(r.cfg.shutdown_grace_ms, 600000);
    assert_int_equal(r.cfg.catchup_ms, 60000);
    run_free(&r);

    /* max-event-bytes equal to max-request-bytes is allowed. */
    LOAD(&r, "--max-event-bytes=4096", "--max-request-bytes=4096");
    assert_int_equal(r.st, EB_OK);
    run_free(&r);
}

static void test_unknown_flag(void **state)
{
    (void)state;
    INVALID("--bogus", "unknown", "--bogus");
    INVALID("--bogus", "unknown", "--bogus=1");
    INVALID("--listenx", "unknown", "--listenx", "a");
    INVALID("--lis", "unknown", "--lis=a"); /* no prefix matching */
    INVALID("-x", NULL, "-x");
    INVALID("stray", NULL, "--workers=2", "stray");
    /* The command only comes first. */
    INVALID("migrate", NULL, "--workers=2", "migrate");
    INVALID("frobnicate", NULL, "frobnicate");
}

static void test_missing_value(void **state)
{
    (void)state;
    INVALID("workers", "value", "--workers");
    INVALID("listen", "value", "--db-pool=2", "--listen");
}

static void test_numbers_out_of_range(void **state)
{
    (void)state;
    INVALID("workers", "64", "--workers=0");
    INVALID("workers", "64", "--workers=65");
    INVALID("workers", "\"-1\"", "--workers", "-1");
    INVALID("db-pool", "257", "--db-pool=257");
    INVALID("embedded-pg-port", "65535", "--embedded-pg-port=65536");
    INVALID("embedded-pg-port", NULL, "--embedded-pg-port=0");
    INVALID("max-event-bytes", NULL, "--max-event-bytes=1023");
    INVALID("max-event-bytes", NULL, "--max-event-bytes=4194305");
    INVALID("max-request-bytes", NULL, "--max-request-bytes=4095");
    INVALID("max-request-bytes", NULL, "--max-request-bytes=67108865");
    INVALID("max-batch", NULL, "--max-batch=10001");
    INVALID("max-streams", NULL, "--max-streams=0");
    INVALID("max-in-flight", NULL, "--max-in-flight=100001");
    INVALID("catchup-ms", NULL, "--catchup-ms=9");
    INVALID("shutdown-grace-ms", NULL, "--shutdown-grace-ms=-1");
    INVALID("shutdown-grace-ms", NULL, "--shutdown-grace-ms=600001");
    /* Not numbers at all, or with trailing garbage, or overflowing long. */
    INVALID("workers", NULL, "--workers=two");
    INVALID("workers", NULL, "--workers=2x");
    INVALID("workers", NULL, "--workers=0x10");
    INVALID("workers", NULL, "--workers=2.0");
    INVALID("workers", NULL, "--workers=");
    INVALID("max-streams", NULL, "--max-streams=99999999999999999999999");
}

static void test_env_invalid_names_variable(void **state)
{
    struct run r;

    (void)state;
    setenv("CEBUS_WORKERS", "1000", 1);
    load_args(&r, (const char *const[]){NULL});
    expect_invalid(&r, "CEBUS_WORKERS", NULL);
    run_free(&r);
    clear_env(NULL);

    setenv("CEBUS_DB_POOL", "lots", 1);
    load_args(&r, (const char *const[]){NULL});
    expect_invalid(&r, "CEBUS_DB_POOL", NULL);
    run_free(&r);
    clear_env(NULL);

    /* A valid flag does not rescue an invalid environment value: the
     * environment is checked first and the operator should hear of it. */
    setenv("CEBUS_CATCHUP_MS", "1", 1);
    LOAD(&r, "--catchup-ms=100");
    expect_invalid(&r, "CEBUS_CATCHUP_MS", NULL);
    run_free(&r);
}

/* CEBUS_REQUIRE_SOURCES / --require-sources: false by default; true,
 * false, 1, 0 accepted; anything else names the setting. */
static void test_require_sources(void **state)
{
    struct run r;

    (void)state;
    LOAD(&r, "serve");
    assert_int_equal(r.st, EB_OK);
    assert_false(r.cfg.require_sources);
    run_free(&r);
    setenv("CEBUS_REQUIRE_SOURCES", "true", 1);
    LOAD(&r, "serve");
    assert_int_equal(r.st, EB_OK);
    assert_true(r.cfg.require_sources);
    run_free(&r);
    LOAD(&r, "--require-sources=0");
    assert_int_equal(r.st, EB_OK);
    assert_false(r.cfg.require_sources);
    run_free(&r);
    setenv("CEBUS_REQUIRE_SOURCES", "yes", 1);
    LOAD(&r, "serve");
    expect_invalid(&r, "CEBUS_REQUIRE_SOURCES", "true or false");
    run_free(&r);
    clear_env(NULL);
    INVALID("require-sources", NULL, "--require-sources=TRUE");
}

static void test_empty_strings(void **state)
{
    (void)state;
    INVALID("listen", "empty", "--listen=");
    INVALID("listen", "empty", "--listen", "");
    INVALID("database-url", "empty", "--database-url=");
    INVALID("admin-key", "empty", "--admin-key=");
    INVALID("data-dir", "empty", "--data-dir", "");
    INVALID("migrations-dir", "empty", "--migrations-dir=");
    INVALID("log-level", "empty", "--log-level=");
}

static void test_bad_log_level(void **state)
{
    struct run r;

    (void)state;
    INVALID("log-level", NULL, "--log-level=verbose");
    INVALID("log-level", NULL, "--log-level=INFO");
    setenv("CEBUS_LOG_LEVEL", "trace", 1);
    load_args(&r, (const char *const[]){NULL});
    expect_invalid(&r, "log-level", NULL);
    run_free(&r);
}

static void test_short_admin_key(void **state)
{
    struct run r;

    (void)state;
    INVALID("admin-key", "32", "--admin-key=0123456789abcdef0123456789abcde");
    setenv("CEBUS_ADMIN_KEY", "short", 1);
    load_args(&r, (const char *const[]){NULL});
    expect_invalid(&r, "admin-key", NULL);
    run_free(&r);
    LOAD(&r, "--admin-key", ADMIN_KEY_32);
    assert_int_equal(r.st, EB_OK);
    assert_string_equal(r.cfg.admin_key, ADMIN_KEY_32);
    run_free(&r);
}

static void test_event_larger_than_request(void **state)
{
    (void)state;
    INVALID("max-event-bytes", "max-request-bytes", "--max-event-bytes=8192",
            "--max-request-bytes=4096");
    /* The default request size (4 MiB) is below the largest event size. */
    INVALID("max-event-bytes", "max-request-bytes", "--max-request-bytes=100000");
}

/* The quota defaults (README.md, Quotas) and their bounds, which are
 * SetQuota's maxima. */
static void test_quota_defaults(void **state)
{
    struct run r;

    (void)state;
    LOAD(&r, "serve");
    assert_int_equal(r.st, EB_OK);
    assert_int_equal(r.cfg.quota_events_per_second, 100000);
    assert_int_equal(r.cfg.quota_bytes_per_second, 104857600);
    assert_int_equal(r.cfg.quota_burst_seconds, 10);
    assert_int_equal(r.cfg.quota_rules_per_bus, 10000);
    assert_int_equal(r.cfg.quota_subscriptions, 10000);
    assert_int_equal(r.cfg.quota_concurrent_streams, 10000);
    run_free(&r);
    setenv("CEBUS_QUOTA_BURST_SECONDS", "3600", 1);
    LOAD(&r, "--quota-bytes-per-second", "4000000000", "--quota-rules-per-bus=1");
    assert_int_equal(r.st, EB_OK);
    assert_int_equal(r.cfg.quota_burst_seconds, 3600);
    assert_int_equal(r.cfg.quota_bytes_per_second, 4000000000L);
    assert_int_equal(r.cfg.quota_rules_per_bus, 1);
    run_free(&r);
    setenv("CEBUS_QUOTA_BURST_SECONDS", "3601", 1);
    LOAD(&r, "serve");
    expect_invalid(&r, "CEBUS_QUOTA_BURST_SECONDS", "1 to 3600");
    run_free(&r);
    clear_env(NULL);
    INVALID("quota-concurrent-streams", "1 to 1000000", "--quota-concurrent-streams=0");
    INVALID("quota-events-per-second", NULL, "--quota-events-per-second", "10000001");
}

static void test_help_lists_every_variable(void **state)
{
    const char *spellings[] = {"--help", "-h"};

    (void)state;
    for (size_t k = 0; k < 2; k++) {
        struct run r;

        LOAD(&r, "--workers=3", spellings[k]);
        assert_int_equal(r.st, EB_ECANCELLED);
        assert_non_null(strstr(r.out, "usage"));
        assert_non_null(strstr(r.out, "migrate"));
        for (size_t i = 0; i < NENVS; i++) {
            if (!strstr(r.out, setting_envs[i]))
                print_error("--help does not mention %s\n", setting_envs[i]);
            assert_non_null(strstr(r.out, setting_envs[i]));
        }
        assert_string_equal(r.err, "");
        run_free(&r);
    }
}

static void test_help_lists_every_flag(void **state)
{
    static const char *const flags[] = {
        "--listen",           "--database-url",      "--admin-key",  "--data-dir",
        "--migrations-dir",   "--log-level",         "--embedded-pg-port", "--workers",
        "--db-pool",          "--max-event-bytes",   "--max-request-bytes", "--max-batch",
        "--max-streams",      "--max-in-flight",     "--catchup-ms", "--shutdown-grace-ms",
        "--metrics-listen",   "--tls-cert-file",     "--tls-key-file", "--tls-client-ca-file",
        "--allow-plaintext",  "--version",
    };
    struct run r;

    (void)state;
    LOAD(&r, "--help");
    assert_int_equal(r.st, EB_ECANCELLED);
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        assert_non_null(strstr(r.out, flags[i]));
    run_free(&r);
}

static void test_version(void **state)
{
    struct run r;

    (void)state;
    setenv("CEBUS_WORKERS", "7", 1);
    LOAD(&r, "--version");
    assert_int_equal(r.st, EB_ECANCELLED);
    assert_true(strncmp(r.out, "cebusd ", 7) == 0);
    assert_true(strlen(r.out) > 8);
    assert_string_equal(r.err, "");
    run_free(&r);
}

static void test_migrate_command(void **state)
{
    struct run r;

    (void)state;
    LOAD(&r, "migrate");
    assert_int_equal(r.st, EB_OK);
    assert_string_equal(r.cfg.command, "migrate");
    run_free(&r);

    LOAD(&r, "migrate", "--database-url", "dbname=x", "--migrations-dir=/m");
    assert_int_equal(r.st, EB_OK);
    assert_string_equal(r.cfg.command, "migrate");
    assert_string_equal(r.cfg.database_url, "dbname=x");
    assert_string_equal(r.cfg.migrations_dir, "/m");
    run_free(&r);

    LOAD(&r, "serve", "--workers=1");
    assert_int_equal(r.st, EB_OK);
    assert_string_equal(r.cfg.command, "serve");
    assert_int_equal(r.cfg.workers, 1);
    run_free(&r);
}

static void test_free_is_idempotent(void **state)
{
    struct run r;

    (void)state;
    LOAD(&r, "--admin-key", ADMIN_KEY_32, "--database-url=dbname=x");
    assert_int_equal(r.st, EB_OK);
    eb_config_free(&r.cfg);
    assert_null(r.cfg.listen);
    assert_null(r.cfg.admin_key);
    eb_config_free(&r.cfg); /* second free must be harmless */
    r.st = EB_ECANCELLED;   /* already freed */
    run_free(&r);
}

/* TLS files come in pairs; a client CA needs the pair. (The files
 * themselves are read and checked by server/tls.c at start.) */
static void test_tls_settings_go_together(void **state)
{
    struct run r;

    (void)state;
    INVALID("tls-key-file", "tls-cert-file", "--tls-cert-file", "/c.pem");
    INVALID("tls-cert-file", "tls-key-file", "--tls-key-file", "/k.pem");
    INVALID("tls-client-ca-file", "tls-cert-file", "--tls-client-ca-file", "/ca.pem");
    INVALID("tls-cert-file", NULL, "--tls-key-file", "/k.pem", "--tls-client-ca-file",
            "/ca.pem");
    setenv("CEBUS_TLS_CERT_FILE", "/c.pem", 1);
    INVALID("tls-key-file", NULL, "--workers", "1");
    LOAD(&r, "--tls-key-file", "/k.pem", "--listen", "0.0.0.0:443");
    assert_int_equal(r.st, EB_OK);
    assert_string_equal(r.cfg.tls_cert_file, "/c.pem");
    assert_string_equal(r.cfg.tls_key_file, "/k.pem");
    assert_null(r.cfg.tls_client_ca_file);
    assert_false(r.cfg.allow_plaintext);
    run_free(&r);
}

/* Plaintext is for loopback: anything else needs TLS or allow-plaintext,
 * and the message says both ways out. */
static void test_plaintext_only_on_loopback(void **state)
{
    static const char *const refused[] = {"0.0.0.0:50051", ":50051", "[::]:50051",
                                          "10.1.2.3:50051", "cebus.example.com:50051",
                                          "[::ffff:127.0.0.1]:1", "128.0.0.1:1", "[::1:1",
                                          "dns:///cebus.example.com:443"};
    static const char *const local[] = {"127.0.0.1:50051", "127.8.9.10:1", "[::1]:50051",
                                        "localhost:50051", "LOCALHOST:1", "unix:/tmp/cebus.sock",
                                        "dns:///localhost:50051", "ipv6:[::1]:1"};
    struct run r;

    (void)state;
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        assert_false(cebus_addr_is_local(refused[i]));
        INVALID("listen", "allow-plaintext", "--listen", refused[i]);
        INVALID("listen", "tls-cert-file", "--listen", refused[i]);
        LOAD(&r, "--listen", refused[i], "--allow-plaintext", "true");
        assert_int_equal(r.st, EB_OK);
        assert_true(r.cfg.allow_plaintext);
        run_free(&r);
        /* migrate listens nowhere. */
        LOAD(&r, "migrate", "--listen", refused[i]);
        assert_int_equal(r.st, EB_OK);
        run_free(&r);
    }
    for (size_t i = 0; i < sizeof local / sizeof local[0]; i++) {
        assert_true(cebus_addr_is_local(local[i]));
        LOAD(&r, "--listen", local[i]);
        assert_int_equal(r.st, EB_OK);
        run_free(&r);
    }
    setenv("CEBUS_LISTEN", "0.0.0.0:6000", 1);
    setenv("CEBUS_ALLOW_PLAINTEXT", "1", 1);
    LOAD(&r, "--workers", "1");
    assert_int_equal(r.st, EB_OK);
    run_free(&r);
    INVALID("listen", NULL, "--allow-plaintext=false");
    INVALID("allow-plaintext", "true or false", "--allow-plaintext=yes");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, clear_env),
        cmocka_unit_test_setup(test_env_overrides, clear_env),
        cmocka_unit_test_setup(test_empty_env_means_unset, clear_env),
        cmocka_unit_test_setup(test_flags_override_env, clear_env),
        cmocka_unit_test_setup(test_both_flag_spellings, clear_env),
        cmocka_unit_test_setup(test_bounds_accepted, clear_env),
        cmocka_unit_test_setup(test_unknown_flag, clear_env),
        cmocka_unit_test_setup(test_missing_value, clear_env),
        cmocka_unit_test_setup(test_numbers_out_of_range, clear_env),
        cmocka_unit_test_setup(test_env_invalid_names_variable, clear_env),
        cmocka_unit_test_setup(test_empty_strings, clear_env),
        cmocka_unit_test_setup(test_bad_log_level, clear_env),
        cmocka_unit_test_setup(test_short_admin_key, clear_env),
        cmocka_unit_test_setup(test_event_larger_than_request, clear_env),
        cmocka_unit_test_setup(test_help_lists_every_variable, clear_env),
        cmocka_unit_test_setup(test_help_lists_every_flag, clear_env),
        cmocka_unit_test_setup(test_version, clear_env),
        cmocka_unit_test_setup(test_migrate_command, clear_env),
        cmocka_unit_test_setup(test_free_is_idempotent, clear_env),
        cmocka_unit_test_setup(test_require_sources, clear_env),
        cmocka_unit_test_setup(test_tls_settings_go_together, clear_env),
        cmocka_unit_test_setup(test_plaintext_only_on_loopback, clear_env),
        cmocka_unit_test_setup(test_quota_defaults, clear_env),
    };

    return cmocka_run_group_tests(tests, NULL, clear_env);
}
