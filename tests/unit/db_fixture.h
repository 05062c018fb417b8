/* The throwaway database of the unit tests that talk to PostgreSQL.
 *
 * Each test binary creates its own database on the cluster named by
 * CEBUS_TEST_DATABASE_URL, applies every migration from
 * CEBUS_TEST_SOURCE_DIR/migrations, and drops it at the end, so that runs
 * never see each other's rows. The helpers fail the current test (cmocka
 * assertions) when the database does not do as asked.
 */
#ifndef CEBUS_UT_DB_FIXTURE_H
#define CEBUS_UT_DB_FIXTURE_H

/* cmocka needs these before its header. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "store.h"

struct ut_db {
    PGconn *admin;         /* the cluster's "postgres" database */
    PGconn *raw;           /* the test database, for direct SQL */
    eb_db *db;             /* the test database, through the store */
    char dbname[64];
    char url[1024];        /* conninfo of the test database */
    char base[1024];       /* CEBUS_TEST_DATABASE_URL */
    char migrations[1024]; /* the migrations directory */
};

/* A cmocka group setup: creates the database "cebus_unit_<name>_...",
 * checks that every migration file applies, and sets *state to a new
 * struct ut_db. Returns 0, or -1 after printing why. */
int ut_db_setup(void **state, const char *name);

/* The matching group teardown: closes the connections, drops the database
 * and frees the state. NULL state is allowed. */
int ut_db_teardown(void **state);

/* Runs SQL on a libpq connection; fails the test when it fails. */
void ut_sql_ok(PGconn *c, const char *sql);

/* Returns the integer in the only cell of a query's result. */
int64_t ut_sql_int(PGconn *c, const char *sql);

/* ut_sql_ok() and ut_sql_int() with the SQL written by a printf format
 * (at most 2 KiB of it). */
void ut_sql_okf(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int64_t ut_sql_intf(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Returns how many numbered .sql migrations dir holds, or -1. */
int ut_migration_count(const char *dir);

/* An append row of bus_id with source "/test", type "test.event", the given
 * id and text body (borrowed), and out-fields preset to values an append
 * must overwrite. */
struct eb_append_row ut_row(int64_t bus_id, int64_t received_us, const char *id,
                            const char *body);

/* Creates a tenant; returns its id. */
int64_t ut_tenant(struct ut_db *f, const char *name);

/* Creates a bus of tenant_id (168 h retention, 300 s dedup window). */
struct eb_bus_rec ut_bus(struct ut_db *f, int64_t tenant_id, const char *name);

#endif
