/* Shared by the store*.c files only. */
#ifndef EB_STORE_INTERNAL_H
#define EB_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "status.h"

struct eb_db {
    PGconn *conn;
    char *url;
    bool broken;    /* a statement saw the connection fail */
    bool listening; /* re-LISTEN after a reconnect */
    bool listening_subs; /* the same for "cebus_subs" */
    bool down;      /* the last reconnect failed: logged once per outage */
    int64_t retry_us; /* no reconnect before this monotonic time */
};

/* Runs one parameterized statement. On EB_OK and out != NULL, *out is the
 * result (PQclear it). what names the operation in logs. */
eb_status eb_db_exec(eb_db *db, const char *what, const char *sql, int nparams,
                     const char *const *values, const int *lengths, const int *formats,
                     int binary_result, PGresult **out);

/* Runs a statement without parameters or result. */
eb_status eb_db_simple(eb_db *db, const char *what, const char *sql);

/* Maps a result to a status, logging what is not the client's business. */
eb_status eb_db_result_status(eb_db *db, PGresult *res, const char *what);

/* Integer value of a text-format cell; 0 for NULL. */
int64_t eb_db_int(PGresult *res, int row, int col);

/* A timestamptz column as microseconds since the epoch, in SQL. */
#define EPOCH_US(col) "(extract(epoch FROM " col ") * 1000000)::bigint"

/* The columns tenant_from_row() reads, of table tenants. */
#define TENANT_COLS "id, name, display_name, disabled, " EPOCH_US("created_at")

/* The columns bus_from_row() reads, of buses b joined with tenants t. */
#define BUS_COLS                                                                         \
    "b.id, b.tenant_id, t.name, b.name, b.retention_hours, b.dedup_window_seconds, " \
    EPOCH_US("b.created_at")

struct eb_tenant_rec;
struct eb_bus_rec;

/* Fill a record from a row selected with TENANT_COLS / BUS_COLS. */
void eb_db_tenant_from_row(PGresult *res, int row, struct eb_tenant_rec *t);
void eb_db_bus_from_row(PGresult *res, int row, struct eb_bus_rec *b);

/* Ends a failed transaction: rolls back unless the connection itself is
 * gone (then there is nothing to roll back). Returns st. */
eb_status eb_db_tx_fail(eb_db *db, eb_status st);

/* Formats v in decimal for a text parameter. */
void eb_db_fmt_i64(char *buf, size_t size, int64_t v);

/* Returns a PostgreSQL array literal "{1,2,3}" of ids[0..n) for a
 * bigint[] parameter; free() it. */
char *eb_db_id_array(const int64_t *ids, size_t n);

/* First line of a libpq message, quotes replaced, for a log value.
 * Returns a thread-local buffer. */
const char *eb_db_first_line(const char *msg);

#endif
