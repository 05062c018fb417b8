/* cebusd: argv, signals and wiring. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>

#include "acker.h"
#include "addr.h"
#include "appender.h"
#include "auth.h"
#include "config.h"
#include "dispatch.h"
#include "embedded_pg.h"
#include "exec.h"
#include "grpc_server.h"
#include "log.h"
#include "metrics.h"
#include "quota.h"
#include "retention.h"
#include "rpc.h"
#include "store.h"
#include "tls.h"
#include "util.h"

/* Rows per group-commit transaction. */
#define APPEND_MAX_ROWS 10000
/* Ack ids applied in one transaction, at most (a request is never split). */
#define ACK_MAX_ITEMS 10000
/* Executor queue bound: past it, calls get RESOURCE_EXHAUSTED. */
#define EXEC_MAX_QUEUED 100000
/* How long cached keys and buses live: revocations apply within it. */
#define AUTH_CACHE_TTL_US 1000000

/* The appender's commit callback: wakes the dispatcher for the bus. An
 * adapter rather than a cast, since calling through a pointer of another
 * function type is undefined. */
static void on_commit(void *dispatch, int64_t bus_id)
{
    eb_dispatch_wake(dispatch, bus_id);
}

static enum eb_log_level level_of(const char *s)
{
    if (strcmp(s, "debug") == 0)
        return EB_LOG_DEBUG;
    if (strcmp(s, "warn") == 0)
        return EB_LOG_WARN;
    if (strcmp(s, "error") == 0)
        return EB_LOG_ERROR;
    return EB_LOG_INFO;
}

/* Installs the configured admin key, or generates one when the database has
 * no platform admin key at all (first start). */
static eb_status bootstrap_admin(eb_db *db, const struct eb_config *cfg)
{
    struct eb_key_rec rec;
    struct eb_tenant_rec platform;
    uint8_t hash[32];
    char prefix[EB_KEY_PREFIX_LEN + 1];
    char key[EB_KEY_LEN + 1];
    int64_t count = 0;
    eb_status st;

    st = eb_store_tenant_get(db, EB_PLATFORM_TENANT, &platform);
    if (st)
        return st;
    if (cfg->admin_key) {
        eb_auth_hash(cfg->admin_key, hash);
        st = eb_store_key_lookup(db, hash, &rec);
        if (st == EB_OK)
            return EB_OK;
        if (st != EB_ENOTFOUND)
            return st;
        /* The prefix identifies the key in lists; derive it from the hash so
         * that no part of a secret chosen outside cebus is shown. */
        snprintf(prefix, sizeof prefix, "env_%02x%02x%02x%01x", hash[0], hash[1], hash[2],
                 hash[3] >> 4);
        st = eb_store_key_insert(db, platform.id, prefix, hash, EB_ROLE_PLATFORM_ADMIN,
                                 "from CEBUS_ADMIN_KEY", 0, NULL);
        if (st == EB_EEXIST)
            return EB_OK; /* another replica installed it at the same moment */
        if (st == EB_OK)
            eb_log_info("msg=\"platform admin key installed from configuration\" key=%s", prefix);
        return st;
    }
    st = eb_store_admin_key_count(db, &count);
    if (st || count > 0)
        return st;
    eb_auth_generate(key, prefix, hash);
    st = eb_store_key_insert(db, platform.id, prefix, hash, EB_ROLE_PLATFORM_ADMIN,
                             "bootstrap", 0, NULL);
    if (st)
        return st;
    /* Printed once, on stdout rather than in the logs. */
    printf("cebusd: platform admin key (shown once, store it now): %s\n", key);
    fflush(stdout);
    return EB_OK;
}

/* The ack committer's view of this replica's durable streams. */
static size_t dispatch_owners(void *dispatch, int64_t **out)
{
    return eb_dispatch_owners(dispatch, out);
}

static void dispatch_settled(void *dispatch, const struct eb_ack_item *items, size_t n)
{
    eb_dispatch_settled(dispatch, items, n);
}

/* A stream ended: its place in its tenant's concurrent_streams quota is
 * free again. */
static void on_stream_ended(void *arg, int64_t tenant_id)
{
    eb_quota_stream_release(arg, tenant_id);
}

int main(int argc, char **argv)
{
    struct eb_config cfg;
    struct eb_app app = {0};
    struct eb_server_opts sopts;
    struct eb_dispatch_opts dopts;
    eb_server *srv = NULL;
    eb_metrics_server *metrics = NULL;
    eb_tls *tls = NULL;
    eb_retention *retention = NULL;
    eb_db *db = NULL;
    bool embedded = false;
    char embedded_url[4096];
    const char *url;
    sigset_t sigs;
    int sig = 0, rc = 1, applied = 0;
    eb_status st;

    st = eb_config_load(&cfg, argc - 1, argv + 1, stdout, stderr);
    if (st == EB_ECANCELLED)
        return 0;
    if (st)
        return 2;
    eb_log_set_level(level_of(cfg.log_level));
    if (cfg.tls_cert_file && strcmp(cfg.command, "serve") == 0) {
        /* Checked before anything starts, like the other settings. */
        struct eb_tls_opts topts = {.cert_file = cfg.tls_cert_file,
                                    .key_file = cfg.tls_key_file,
                                    .client_ca_file = cfg.tls_client_ca_file};
        if (eb_tls_new(&topts, stderr, &tls) != EB_OK) {
            eb_config_free(&cfg);
            return 2;
        }
    } else if (!cfg.tls_cert_file && !cebus_addr_is_local(cfg.listen) &&
               strcmp(cfg.command, "serve") == 0) {
        eb_log_warn("msg=\"serving plaintext on a non-loopback address (allow-plaintext)\" "
                    "listen=%s",
                    cfg.listen);
    }

    /* Blocked before any thread exists, gRPC's included, so that only
     * sigwait() below sees them. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    url = cfg.database_url;
    if (!url) {
        if (eb_embedded_pg_start(cfg.data_dir, cfg.embedded_pg_port, embedded_url,
                                 sizeof embedded_url) != EB_OK)
            goto out;
        embedded = true;
        url = embedded_url;
    }
    if (eb_db_connect(url, &db) != EB_OK) {
        eb_log_error("msg=\"cannot connect to the database; check CEBUS_DATABASE_URL\"");
        goto out;
    }
    if (eb_store_migrate(db, cfg.migrations_dir, &applied) != EB_OK)
        goto out;
    eb_log_info("msg=\"schema ready\" migrations_applied=%d", applied);
    if (strcmp(cfg.command, "migrate") == 0) {
        rc = 0;
        goto out;
    }
    if (bootstrap_admin(db, &cfg) != EB_OK) {
        eb_log_error("msg=\"cannot install the platform admin key\"");
        goto out;
    }
    eb_db_close(db);
    db = NULL;

    if (strcmp(cfg.metrics_listen, "off") != 0) {
        int mport = 0;
        const char *colon = strrchr(cfg.metrics_listen, ':');
        if (eb_metrics_server_start(cfg.metrics_listen, &metrics, &mport) != EB_OK)
            goto out;
        eb_log_info("msg=\"metrics endpoint listening\" metrics_listen=%.*s:%d",
                    (int)(colon - cfg.metrics_listen), cfg.metrics_listen, mport);
        /* Before the "listening" line, which tells supervisors the server
         * is up. */
        printf("cebusd: metrics on %.*s:%d\n", (int)(colon - cfg.metrics_listen),
               cfg.metrics_listen, mport);
        fflush(stdout);
    }

    grpc_init();
    app.cfg = &cfg;
    app.auth = eb_auth_new(AUTH_CACHE_TTL_US);
    app.exec = eb_exec_new(url, (int)cfg.db_pool, EXEC_MAX_QUEUED);
    {
        struct eb_quota_limits defaults = {
            .events_per_second = cfg.quota_events_per_second,
            .bytes_per_second = cfg.quota_bytes_per_second,
            .burst_seconds = cfg.quota_burst_seconds,
            .rules_per_bus = cfg.quota_rules_per_bus,
            .subscriptions = cfg.quota_subscriptions,
            .concurrent_streams = cfg.quota_concurrent_streams,
        };
        app.quota = eb_quota_new(&defaults, AUTH_CACHE_TTL_US);
    }
    eb_quota_start(app.quota, url);
    memset(&dopts, 0, sizeof dopts);
    dopts.database_url = url;
    dopts.catchup_ms = (int)cfg.catchup_ms;
    dopts.max_streams = (int)cfg.max_streams;
    dopts.stream_ended = on_stream_ended;
    dopts.stream_ended_arg = app.quota;
    app.dispatch = eb_dispatch_new(&dopts);
    app.appender = eb_appender_new(url, APPEND_MAX_ROWS,
                                   on_commit, app.dispatch);
    {
        struct eb_acker_hooks hooks = {.owners = dispatch_owners,
                                       .settled = dispatch_settled,
                                       .arg = app.dispatch};
        app.acker = eb_acker_new(url, ACK_MAX_ITEMS, &hooks);
    }
    retention = eb_retention_new(url);

    sopts.listen = cfg.listen;
    sopts.workers = (int)cfg.workers;
    sopts.max_request_bytes = (size_t)cfg.max_request_bytes;
    sopts.tls = tls;
    srv = eb_server_new(&sopts);
    eb_rpc_register_all(srv, &app);
    if (eb_server_start(srv) != EB_OK) {
        eb_log_error("msg=\"cannot listen; is another server on that address?\" listen=%s",
                     cfg.listen);
        /* Nothing was accepted; tear down what exists. */
        eb_retention_free(retention);
        eb_acker_free(app.acker);
        eb_appender_free(app.appender);
        eb_dispatch_stop(app.dispatch);
        eb_dispatch_free(app.dispatch);
        eb_exec_free(app.exec);
        eb_quota_stop(app.quota);
        eb_quota_free(app.quota);
        eb_auth_free(app.auth);
        grpc_shutdown();
        goto out;
    }
    {
        /* The bound port, so that "--listen 127.0.0.1:0" is usable. */
        const char *colon = strrchr(cfg.listen, ':');
        int hostlen = colon ? (int)(colon - cfg.listen) : (int)strlen(cfg.listen);
        eb_log_info("msg=\"cebusd listening\" listen=%.*s:%d tls=%s", hostlen, cfg.listen,
                    eb_server_port(srv),
                    !tls                     ? "off"
                    : cfg.tls_client_ca_file ? "mtls"
                                             : "on");
        printf("cebusd: listening on %.*s:%d\n", hostlen, cfg.listen, eb_server_port(srv));
        fflush(stdout);
    }

    sigwait(&sigs, &sig);
    eb_log_info("msg=\"draining\" signal=%d", sig);

    /* Streams first (they never end on their own), then in-flight unary
     * calls get the grace period, then the components their replies come
     * from, then the server once every call is gone. */
    eb_dispatch_stop(app.dispatch);
    eb_server_shutdown(srv, (int)cfg.shutdown_grace_ms);
    eb_exec_free(app.exec);
    eb_acker_free(app.acker);
    eb_appender_free(app.appender);
    eb_retention_free(retention);
    eb_server_free(srv);
    eb_dispatch_free(app.dispatch);
    /* After every stream and call: nothing counts against quotas any more,
     * and the other servers take over this one's share of the rates. */
    eb_quota_stop(app.quota);
    eb_quota_free(app.quota);
    eb_auth_free(app.auth);
    grpc_shutdown();
    eb_log_info("msg=\"stopped\"");
    rc = 0;
out:
    eb_metrics_server_free(metrics);
    eb_db_close(db);
    if (embedded)
        eb_embedded_pg_stop(cfg.data_dir);
    /* After grpc_shutdown(): gRPC calls into tls until its server is gone. */
    eb_tls_free(tls);
    eb_config_free(&cfg);
    return rc;
}
