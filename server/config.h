/* cebusd configuration: flags with CEBUS_* environment equivalents,
 * validated once at start into one read-only struct. */
#ifndef EB_CONFIG_H
#define EB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "status.h"

struct eb_config {
    char *listen;            /* CEBUS_LISTEN, --listen */
    char *metrics_listen;    /* CEBUS_METRICS_LISTEN; "off": no metrics endpoint */
    char *database_url;      /* CEBUS_DATABASE_URL; NULL: embedded PostgreSQL */
    char *admin_key;         /* CEBUS_ADMIN_KEY; NULL: generated on first start */
    char *data_dir;          /* CEBUS_DATA_DIR: embedded PostgreSQL lives here */
    char *migrations_dir;    /* CEBUS_MIGRATIONS_DIR */
    char *log_level;         /* CEBUS_LOG_LEVEL: debug, info, warn, error */
    long embedded_pg_port;   /* CEBUS_EMBEDDED_PG_PORT */
    long workers;            /* CEBUS_WORKERS: gRPC completion-queue threads */
    long db_pool;            /* CEBUS_DB_POOL: database connections for RPCs */
    long max_event_bytes;    /* CEBUS_MAX_EVENT_BYTES */
    long max_request_bytes;  /* CEBUS_MAX_REQUEST_BYTES */
    long max_batch;          /* CEBUS_MAX_BATCH: entries per PutEvents */
    long max_streams;        /* CEBUS_MAX_STREAMS: open Subscribe streams */
    long max_in_flight;      /* CEBUS_MAX_IN_FLIGHT: queued deliveries per stream */
    long catchup_ms;         /* CEBUS_CATCHUP_MS: log poll when no notification */
    long shutdown_grace_ms;  /* CEBUS_SHUTDOWN_GRACE_MS */
    bool require_sources;    /* CEBUS_REQUIRE_SOURCES: source prefixes are mandatory */
    char *tls_cert_file;     /* CEBUS_TLS_CERT_FILE; NULL: plaintext */
    char *tls_key_file;      /* CEBUS_TLS_KEY_FILE; set exactly when tls_cert_file is */
    char *tls_client_ca_file; /* CEBUS_TLS_CLIENT_CA_FILE; set: client certificates required */
    bool allow_plaintext;    /* CEBUS_ALLOW_PLAINTEXT: plaintext on a non-loopback address */
    /* CEBUS_QUOTA_*: each tenant's quota where it has not set its own. */
    long quota_events_per_second;
    long quota_bytes_per_second;
    long quota_burst_seconds;
    long quota_rules_per_bus;
    long quota_subscriptions;
    long quota_concurrent_streams;
    const char *command;     /* "serve" or "migrate" */
};

/* Parses argv (after the program name) and the environment into cfg; flags
 * win over the environment. Returns EB_OK; EB_EINVAL after printing to err
 * which setting is wrong and why; EB_ECANCELLED when --help or --version
 * was printed to out. Free with eb_config_free(). */
eb_status eb_config_load(struct eb_config *cfg, int argc, char **argv, FILE *out, FILE *err);

/* Frees the strings of cfg. */
void eb_config_free(struct eb_config *cfg);

#endif
