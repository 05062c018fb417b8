/* Connections, the statement helper and migrations. Entity statements live
 * in store_entities.c and store_events.c. */
#include "store.h"
#include "store_durable.h"
#include "store_internal.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* Server notices (e.g. "already exists, skipping") are not errors; keep
 * them out of stderr, where they would break the one-line log format. */
static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* After a failed reconnect, calls fail at once for this long rather than
 * each waiting for its own connect. */
#define RECONNECT_BACKOFF_US 250000

/* Connection settings applied unless the URL sets them: without them a
 * database host that drops packets makes a connect, or a query on a
 * connection whose peer vanished, wait for the kernel's TCP timeouts
 * (minutes) while callers hang instead of getting UNAVAILABLE. The URL is
 * expanded after them, so its own values win. */
static const char *const conn_keys[] = {"connect_timeout", "keepalives", "keepalives_idle",
                                        "keepalives_interval", "keepalives_count",
                                        "tcp_user_timeout", "dbname", NULL};
static const char *const conn_defaults[] = {"5", "1", "10", "5", "3", "30000"};

eb_db *eb_db_open(const char *url)
{
    eb_db *db = eb_calloc(1, sizeof *db);
    const char *values[sizeof conn_keys / sizeof conn_keys[0]];

    for (size_t i = 0; i + 2 < sizeof conn_keys / sizeof conn_keys[0]; i++)
        values[i] = conn_defaults[i];
    values[sizeof conn_keys / sizeof conn_keys[0] - 2] = url;
    values[sizeof conn_keys / sizeof conn_keys[0] - 1] = NULL;
    db->url = eb_strdup(url);
    db->conn = PQconnectdbParams(conn_keys, values, 1);
    PQsetNoticeProcessor(db->conn, ignore_notice, NULL);
    if (PQstatus(db->conn) != CONNECTION_OK) {
        /* The message may name the host but never the password. */
        eb_log_warn("msg=\"database connection failed\" error=\"%s\"",
                    eb_db_first_line(PQerrorMessage(db->conn)));
        db->broken = true;
    }
    return db;
}

eb_status eb_db_connect(const char *url, eb_db **out)
{
    eb_db *db = eb_db_open(url);

    if (db->broken) {
        eb_db_close(db);
        return EB_EUNAVAIL;
    }
    *out = db;
    return EB_OK;
}

eb_status eb_db_ensure(eb_db *db)
{
    int64_t now;

    if (PQstatus(db->conn) == CONNECTION_OK && !db->broken)
        return EB_OK;
    now = eb_now_mono_us();
    if (db->down && now < db->retry_us)
        return EB_EUNAVAIL;
    PQreset(db->conn);
    if (PQstatus(db->conn) != CONNECTION_OK) {
        if (!db->down)
            eb_log_warn("msg=\"database reconnect failed; retrying\" error=\"%s\"",
                        eb_db_first_line(PQerrorMessage(db->conn)));
        db->down = true;
        db->retry_us = eb_now_mono_us() + RECONNECT_BACKOFF_US;
        return EB_EUNAVAIL;
    }
    db->broken = false;
    db->down = false;
    if (db->listening && eb_store_listen(db) != EB_OK)
        return EB_EUNAVAIL;
    if (db->listening_subs && eb_store_listen_subs(db) != EB_OK)
        return EB_EUNAVAIL;
    eb_log_info("msg=\"database reconnected\"");
    return EB_OK;
}

void eb_db_close(eb_db *db)
{
    if (!db)
        return;
    PQfinish(db->conn);
    free(db->url);
    free(db);
}

int eb_db_socket(eb_db *db)
{
    return PQsocket(db->conn);
}

const char *eb_db_first_line(const char *msg)
{
    static __thread char line[256];
    size_t n = strcspn(msg, "\n");
    if (n >= sizeof line)
        n = sizeof line - 1;
    memcpy(line, msg, n);
    line[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (line[i] == '"')
            line[i] = '\'';
    return line;
}

eb_status eb_db_result_status(eb_db *db, PGresult *res, const char *what)
{
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    const char *state;

    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return EB_OK;
    if (PQstatus(db->conn) != CONNECTION_OK) {
        db->broken = true;
        eb_log_warn("msg=\"database connection lost\" op=%s", what);
        return EB_EUNAVAIL;
    }
    state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    /* Errors without a SQLSTATE come from libpq itself, not the server:
     * after an immediate shutdown the first statement on a dead socket
     * fails with "server closed the connection unexpectedly" while
     * PQstatus() still reports CONNECTION_OK. The connection is gone. */
    if (!state) {
        db->broken = true;
        eb_log_warn("msg=\"database connection lost\" op=%s error=\"%s\"", what,
                    eb_db_first_line(PQerrorMessage(db->conn)));
        return EB_EUNAVAIL;
    }
    if (strcmp(state, "23505") == 0)
        return EB_EEXIST;
    if (state && strcmp(state, "23503") == 0)
        return EB_ENOTFOUND;
    /* Class 08 (connection), 57P (shutdown) and 53 (resources) are worth a
     * retry elsewhere; tell the client UNAVAILABLE. */
    if (state && (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0 ||
                  strncmp(state, "53", 2) == 0)) {
        db->broken = true;
        eb_log_warn("msg=\"database unavailable\" op=%s sqlstate=%s", what, state);
        return EB_EUNAVAIL;
    }
    eb_log_error("msg=\"database error\" op=%s sqlstate=%s error=\"%s\"", what,
                 state ? state : "none", eb_db_first_line(PQerrorMessage(db->conn)));
    return EB_EINTERNAL;
}

eb_status eb_db_exec(eb_db *db, const char *what, const char *sql, int nparams,
                     const char *const *values, const int *lengths, const int *formats,
                     int binary_result, PGresult **out)
{
    PGresult *res;
    eb_status st;

    if (db->broken)
        return EB_EUNAVAIL;
    res = PQexecParams(db->conn, sql, nparams, NULL, values, lengths, formats, binary_result);
    st = eb_db_result_status(db, res, what);
    if (st != EB_OK || !out) {
        PQclear(res);
        return st;
    }
    *out = res;
    return EB_OK;
}

eb_status eb_db_simple(eb_db *db, const char *what, const char *sql)
{
    PGresult *res;
    eb_status st;

    if (db->broken)
        return EB_EUNAVAIL;
    /* PQexec, unlike PQexecParams, accepts several statements (migrations). */
    res = PQexec(db->conn, sql);
    st = eb_db_result_status(db, res, what);
    PQclear(res);
    return st;
}

eb_status eb_db_tx_fail(eb_db *db, eb_status st)
{
    if (st != EB_EUNAVAIL)
        eb_db_simple(db, "rollback", "ROLLBACK");
    return st;
}

void eb_db_fmt_i64(char *buf, size_t size, int64_t v)
{
    snprintf(buf, size, "%lld", (long long)v);
}

char *eb_db_id_array(const int64_t *ids, size_t n)
{
    size_t cap = 3 + n * 21, len = 0;
    char *s = eb_malloc(cap);

    s[len++] = '{';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s%lld", i ? "," : "", (long long)ids[i]);
    snprintf(s + len, cap - len, "}");
    return s;
}

void eb_db_tenant_from_row(PGresult *res, int row, struct eb_tenant_rec *t)
{
    t->id = eb_db_int(res, row, 0);
    eb_strlcpy(t->name, PQgetvalue(res, row, 1), sizeof t->name);
    eb_strlcpy(t->display_name, PQgetvalue(res, row, 2), sizeof t->display_name);
    t->disabled = PQgetvalue(res, row, 3)[0] == 't';
    t->created_us = eb_db_int(res, row, 4);
}

void eb_db_bus_from_row(PGresult *res, int row, struct eb_bus_rec *b)
{
    b->id = eb_db_int(res, row, 0);
    b->tenant_id = eb_db_int(res, row, 1);
    eb_strlcpy(b->tenant, PQgetvalue(res, row, 2), sizeof b->tenant);
    eb_strlcpy(b->name, PQgetvalue(res, row, 3), sizeof b->name);
    b->retention_hours = (int)eb_db_int(res, row, 4);
    b->dedup_window_seconds = (int)eb_db_int(res, row, 5);
    b->created_us = eb_db_int(res, row, 6);
}

int64_t eb_db_int(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* --- Migrations --------------------------------------------------------- */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long len;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = eb_malloc((size_t)len + 1);
        if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
            free(buf);
            buf = NULL;
        } else {
            buf[len] = '\0';
        }
    }
    fclose(f);
    return buf;
}

/* Arbitrary constant identifying cebus's migration lock. */
#define MIGRATION_LOCK_KEY "7391020250001"

eb_status eb_store_migrate(eb_db *db, const char *dir, int *applied)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0;
    eb_status st = EB_OK;
    bool locked = false;

    *applied = 0;
    if (!d) {
        eb_log_error("msg=\"cannot open migrations directory\" dir=%s", dir);
        return EB_EINTERNAL;
    }
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len > 4 && strcmp(de->d_name + len - 4, ".sql") == 0 && de->d_name[0] >= '0' &&
            de->d_name[0] <= '9') {
            names = eb_realloc(names, (n + 1) * sizeof *names);
            names[n++] = eb_strdup(de->d_name);
        }
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, cmp_names);

    st = eb_db_simple(db, "migrate_lock", "SELECT pg_advisory_lock(" MIGRATION_LOCK_KEY ")");
    if (st)
        goto out;
    locked = true;
    st = eb_db_simple(db, "migrate_table",
                      "CREATE TABLE IF NOT EXISTS schema_migrations ("
                      " version integer PRIMARY KEY, name text NOT NULL,"
                      " applied_at timestamptz NOT NULL DEFAULT now())");
    if (st)
        goto out;
    for (size_t i = 0; i < n; i++) {
        char version[16];
        const char *params[2];
        PGresult *res = NULL;
        char path[4096];
        char *sql;
        bool done;

        snprintf(version, sizeof version, "%d", atoi(names[i]));
        params[0] = version;
        params[1] = names[i];
        st = eb_db_exec(db, "migrate_check", "SELECT 1 FROM schema_migrations WHERE version = $1",
                        1, params, NULL, NULL, 0, &res);
        if (st)
            goto out;
        done = PQntuples(res) > 0;
        PQclear(res);
        if (done)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        sql = read_file(path);
        if (!sql) {
            eb_log_error("msg=\"cannot read migration\" file=%s", names[i]);
            st = EB_EINTERNAL;
            goto out;
        }
        st = eb_db_simple(db, "migrate_begin", "BEGIN");
        if (!st)
            st = eb_db_simple(db, names[i], sql);
        if (!st)
            st = eb_db_exec(db, "migrate_record",
                            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2,
                            params, NULL, NULL, 0, NULL);
        if (!st)
            st = eb_db_simple(db, "migrate_commit", "COMMIT");
        free(sql);
        if (st) {
            eb_db_simple(db, "migrate_rollback", "ROLLBACK");
            eb_log_error("msg=\"migration failed\" file=%s", names[i]);
            goto out;
        }
        eb_log_info("msg=\"migration applied\" file=%s", names[i]);
        (*applied)++;
    }
out:
    if (locked)
        eb_db_simple(db, "migrate_unlock", "SELECT pg_advisory_unlock(" MIGRATION_LOCK_KEY ")");
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return st;
}

/* --- Notifications ------------------------------------------------------ */

eb_status eb_store_listen(eb_db *db)
{
    eb_status st = eb_db_simple(db, "listen", "LISTEN cebus_events; LISTEN cebus_rules");
    if (st == EB_OK)
        db->listening = true;
    return st;
}

eb_status eb_store_listen_subs(eb_db *db)
{
    eb_status st = eb_db_simple(db, "listen_subs", "LISTEN cebus_subs");
    if (st == EB_OK)
        db->listening_subs = true;
    return st;
}

eb_status eb_store_drain_notifications(eb_db *db,
                                       void (*fn)(void *arg, enum eb_notify_channel ch,
                                                  int64_t id),
                                       void *arg)
{
    PGnotify *note;

    if (!PQconsumeInput(db->conn)) {
        db->broken = true;
        return EB_EUNAVAIL;
    }
    while ((note = PQnotifies(db->conn)) != NULL) {
        enum eb_notify_channel ch = EB_NOTIFY_EVENTS;

        if (strcmp(note->relname, "cebus_rules") == 0)
            ch = EB_NOTIFY_RULES;
        else if (strcmp(note->relname, "cebus_subs") == 0)
            ch = EB_NOTIFY_SUBS;
        fn(arg, ch, strtoll(note->extra, NULL, 10));
        PQfreemem(note);
    }
    return EB_OK;
}
