#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "util.h"

#ifndef CEBUS_VERSION
#define CEBUS_VERSION "dev"
#endif
#ifndef CEBUS_MIGRATIONS_DIR
#define CEBUS_MIGRATIONS_DIR "migrations"
#endif

enum kind { STR, NUM, BOOL };

/* One row per setting: the flag, its environment variable, its default and
 * its bounds. --help is printed from this table, so it cannot drift. */
struct setting {
    const char *flag;
    const char *env;
    enum kind kind;
    size_t offset;
    const char *def;
    long min, max;
    const char *help;
};

#define OFF(f) offsetof(struct eb_config, f)

static const struct setting settings[] = {
    {"listen", "CEBUS_LISTEN", STR, OFF(listen), "127.0.0.1:50051", 0, 0,
     "gRPC listen address, host:port"},
    {"metrics-listen", "CEBUS_METRICS_LISTEN", STR, OFF(metrics_listen), "127.0.0.1:9464", 0, 0,
     "Prometheus metrics address, host:port (GET /metrics); \"off\" disables it"},
    {"database-url", "CEBUS_DATABASE_URL", STR, OFF(database_url), NULL, 0, 0,
     "PostgreSQL connection string; unset: embedded PostgreSQL under the data directory"},
    {"admin-key", "CEBUS_ADMIN_KEY", STR, OFF(admin_key), NULL, 0, 0,
     "platform admin key to install; unset: one is generated on first start and printed once"},
    {"data-dir", "CEBUS_DATA_DIR", STR, OFF(data_dir), "var", 0, 0,
     "directory of the embedded PostgreSQL"},
    {"migrations-dir", "CEBUS_MIGRATIONS_DIR", STR, OFF(migrations_dir), CEBUS_MIGRATIONS_DIR, 0,
     0, "directory of the numbered .sql migrations"},
    {"log-level", "CEBUS_LOG_LEVEL", STR, OFF(log_level), "info", 0, 0,
     "debug, info, warn or error"},
    {"embedded-pg-port", "CEBUS_EMBEDDED_PG_PORT", NUM, OFF(embedded_pg_port), "54329", 1, 65535,
     "port of the embedded PostgreSQL (Unix socket only)"},
    {"workers", "CEBUS_WORKERS", NUM, OFF(workers), "2", 1, 64, "gRPC worker threads"},
    {"db-pool", "CEBUS_DB_POOL", NUM, OFF(db_pool), "8", 1, 256,
     "database connections serving RPCs"},
    {"max-event-bytes", "CEBUS_MAX_EVENT_BYTES", NUM, OFF(max_event_bytes), "262144", 1024,
     4194304, "largest accepted event, encoded"},
    {"max-request-bytes", "CEBUS_MAX_REQUEST_BYTES", NUM, OFF(max_request_bytes), "4194304",
     4096, 67108864, "largest accepted request message"},
    {"max-batch", "CEBUS_MAX_BATCH", NUM, OFF(max_batch), "500", 1, 10000,
     "events per PutEvents request"},
    {"max-streams", "CEBUS_MAX_STREAMS", NUM, OFF(max_streams), "10000", 1, 1000000,
     "open Subscribe streams per server"},
    {"max-in-flight", "CEBUS_MAX_IN_FLIGHT", NUM, OFF(max_in_flight), "1000", 1, 100000,
     "deliveries queued per stream"},
    {"catchup-ms", "CEBUS_CATCHUP_MS", NUM, OFF(catchup_ms), "1000", 10, 60000,
     "how often streams re-read the log when no notification arrives"},
    {"shutdown-grace-ms", "CEBUS_SHUTDOWN_GRACE_MS", NUM, OFF(shutdown_grace_ms), "5000", 0,
     600000, "how long in-flight calls may finish on SIGTERM"},
    {"require-sources", "CEBUS_REQUIRE_SOURCES", BOOL, OFF(require_sources), "false", 0, 0,
     "true: a tenant may publish only under its registered source prefixes, also when it has "
     "none; false: a tenant without registered prefixes may publish any source"},
    {"tls-cert-file", "CEBUS_TLS_CERT_FILE", STR, OFF(tls_cert_file), NULL, 0, 0,
     "PEM server certificate chain; set with tls-key-file to serve TLS (reloaded when the "
     "files change)"},
    {"tls-key-file", "CEBUS_TLS_KEY_FILE", STR, OFF(tls_key_file), NULL, 0, 0,
     "PEM private key of tls-cert-file (unencrypted)"},
    {"tls-client-ca-file", "CEBUS_TLS_CLIENT_CA_FILE", STR, OFF(tls_client_ca_file), NULL, 0, 0,
     "PEM CA certificates; set: every client must present a certificate they signed (mTLS)"},
    {"allow-plaintext", "CEBUS_ALLOW_PLAINTEXT", BOOL, OFF(allow_plaintext), "false", 0, 0,
     "true: serve plaintext without TLS on a non-loopback listen address"},
    /* The bounds are those of SetQuota (server/quota.h). */
    {"quota-events-per-second", "CEBUS_QUOTA_EVENTS_PER_SECOND", NUM,
     OFF(quota_events_per_second), "100000", 1, 10000000,
     "default quota: PutEvents events per second per tenant, across servers"},
    {"quota-bytes-per-second", "CEBUS_QUOTA_BYTES_PER_SECOND", NUM, OFF(quota_bytes_per_second),
     "104857600", 1, 4000000000, "default quota: PutEvents request bytes per second per tenant"},
    {"quota-burst-seconds", "CEBUS_QUOTA_BURST_SECONDS", NUM, OFF(quota_burst_seconds), "10", 1,
     3600, "default quota: seconds of the rates a tenant may spend at once"},
    {"quota-rules-per-bus", "CEBUS_QUOTA_RULES_PER_BUS", NUM, OFF(quota_rules_per_bus), "10000", 1,
     100000, "default quota: rules per bus"},
    {"quota-subscriptions", "CEBUS_QUOTA_SUBSCRIPTIONS", NUM, OFF(quota_subscriptions), "10000", 1,
     1000000, "default quota: subscription targets per tenant"},
    {"quota-concurrent-streams", "CEBUS_QUOTA_CONCURRENT_STREAMS", NUM,
     OFF(quota_concurrent_streams), "10000", 1, 1000000,
     "default quota: open Subscribe streams per tenant, across servers"},
};

#define NSETTINGS (sizeof settings / sizeof settings[0])

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cebusd [serve|migrate] [--flag value]...\n\n"
            "  serve     run the server (default); applies pending migrations first\n"
            "  migrate   apply pending migrations and exit\n\n"
            "Every flag has an environment equivalent; flags win.\n\n");
    /* Columns as wide as the longest flag and variable, so they line up. */
    int fw = 0, ew = 0;
    for (size_t i = 0; i < NSETTINGS; i++) {
        if ((int)strlen(settings[i].flag) > fw)
            fw = (int)strlen(settings[i].flag);
        if ((int)strlen(settings[i].env) > ew)
            ew = (int)strlen(settings[i].env);
    }
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        fprintf(out, "  --%-*s %-*s %s", fw, s->flag, ew, s->env, s->help);
        if (s->def)
            fprintf(out, " (default %s)", s->def);
        fputc('\n', out);
    }
    fprintf(out, "  --%-*s %-*s %s\n", fw, "help", ew, "", "print this help");
    fprintf(out, "  --%-*s %-*s %s\n", fw, "version", ew, "", "print the version");
}

static eb_status assign(struct eb_config *cfg, const struct setting *s, const char *value,
                        const char *origin, FILE *err)
{
    char *p = (char *)cfg + s->offset;

    if (s->kind == STR) {
        char **dst = (char **)(void *)p;
        if (value[0] == '\0') {
            fprintf(err, "cebusd: %s %s: must not be empty\n", origin, s->flag);
            return EB_EINVAL;
        }
        free(*dst);
        *dst = eb_strdup(value);
    } else if (s->kind == BOOL) {
        bool *dst = (bool *)(void *)p;
        if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0) {
            *dst = true;
        } else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0) {
            *dst = false;
        } else {
            fprintf(err, "cebusd: %s %s: expected true or false, got \"%.64s\"\n", origin,
                    s->flag, value);
            return EB_EINVAL;
        }
    } else {
        char *end;
        long v;
        errno = 0;
        v = strtol(value, &end, 10);
        /* strtol also takes leading blanks and a '+'; a setting does not. */
        if (errno || end == value || *end || !(value[0] == '-' || isdigit((unsigned char)value[0])) ||
            v < s->min || v > s->max) {
            fprintf(err, "cebusd: %s %s: expected an integer from %ld to %ld, got \"%.64s\"\n",
                    origin, s->flag, s->min, s->max, value);
            return EB_EINVAL;
        }
        *(long *)(void *)p = v;
    }
    return EB_OK;
}

eb_status eb_config_load(struct eb_config *cfg, int argc, char **argv, FILE *out, FILE *err)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->command = "serve";

    for (size_t i = 0; i < NSETTINGS; i++)
        if (settings[i].def && assign(cfg, &settings[i], settings[i].def, "default", err))
            goto fail;
    for (size_t i = 0; i < NSETTINGS; i++) {
        const char *v = getenv(settings[i].env);
        if (v && *v && assign(cfg, &settings[i], v, settings[i].env, err))
            goto fail;
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const struct setting *s = NULL;
        const char *value = NULL;
        size_t nlen;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(out);
            eb_config_free(cfg);
            return EB_ECANCELLED;
        }
        if (strcmp(a, "--version") == 0) {
            fprintf(out, "cebusd %s\n", CEBUS_VERSION);
            eb_config_free(cfg);
            return EB_ECANCELLED;
        }
        if (strncmp(a, "--", 2) != 0) {
            if (i == 0 && (strcmp(a, "serve") == 0 || strcmp(a, "migrate") == 0)) {
                cfg->command = strcmp(a, "serve") == 0 ? "serve" : "migrate";
                continue;
            }
            fprintf(err, "cebusd: unexpected argument \"%.64s\" (see --help)\n", a);
            goto fail;
        }
        a += 2;
        nlen = strcspn(a, "=");
        for (size_t k = 0; k < NSETTINGS; k++)
            if (strlen(settings[k].flag) == nlen && strncmp(settings[k].flag, a, nlen) == 0)
                s = &settings[k];
        if (!s) {
            fprintf(err, "cebusd: unknown flag --%.*s (see --help)\n", (int)nlen, a);
            goto fail;
        }
        if (a[nlen] == '=') {
            value = a + nlen + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            fprintf(err, "cebusd: flag --%s needs a value\n", s->flag);
            goto fail;
        }
        if (assign(cfg, s, value, "flag", err))
            goto fail;
    }
    if (strcmp(cfg->log_level, "debug") != 0 && strcmp(cfg->log_level, "info") != 0 &&
        strcmp(cfg->log_level, "warn") != 0 && strcmp(cfg->log_level, "error") != 0) {
        fprintf(err, "cebusd: log-level: expected debug, info, warn or error\n");
        goto fail;
    }
    if (cfg->admin_key && strlen(cfg->admin_key) < 32) {
        fprintf(err, "cebusd: admin-key: must be at least 32 characters\n");
        goto fail;
    }
    if (cfg->max_event_bytes > cfg->max_request_bytes) {
        fprintf(err, "cebusd: max-event-bytes: must not exceed max-request-bytes\n");
        goto fail;
    }
    if (cfg->tls_cert_file && !cfg->tls_key_file) {
        fprintf(err, "cebusd: tls-key-file: must be set when tls-cert-file is\n");
        goto fail;
    }
    if (cfg->tls_key_file && !cfg->tls_cert_file) {
        fprintf(err, "cebusd: tls-cert-file: must be set when tls-key-file is\n");
        goto fail;
    }
    if (cfg->tls_client_ca_file && !cfg->tls_cert_file) {
        fprintf(err, "cebusd: tls-client-ca-file: needs tls-cert-file and tls-key-file "
                     "(client certificates are checked during the TLS handshake)\n");
        goto fail;
    }
    /* Only serving listens; migrate runs anywhere. */
    if (strcmp(cfg->command, "serve") == 0 && !cfg->tls_cert_file && !cfg->allow_plaintext &&
        !cebus_addr_is_local(cfg->listen)) {
        fprintf(err,
                "cebusd: listen: \"%.128s\" is not a loopback address; set tls-cert-file and "
                "tls-key-file to serve TLS, or allow-plaintext=true to serve plaintext on it\n",
                cfg->listen);
        goto fail;
    }
    return EB_OK;
fail:
    eb_config_free(cfg);
    return EB_EINVAL;
}

void eb_config_free(struct eb_config *cfg)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (settings[i].kind == STR) {
            char **p = (char **)(void *)((char *)cfg + settings[i].offset);
            free(*p);
            *p = NULL;
        }
}
