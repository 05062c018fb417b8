#include "db_fixture.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

void ut_sql_ok(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(res);

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        print_error("SQL failed: %s: %s\n", sql, PQerrorMessage(c));
    assert_true(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
    PQclear(res);
}

int64_t ut_sql_int(PGconn *c, const char *sql)
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

/* Writes the SQL of fmt and ap into sql[size]; fails the test when it
 * does not fit. */
static void sql_format(char *sql, size_t size, const char *fmt, va_list ap)
{
    int n = vsnprintf(sql, size, fmt, ap);

    assert_true(n >= 0 && (size_t)n < size);
}

void ut_sql_okf(PGconn *c, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;

    va_start(ap, fmt);
    sql_format(sql, sizeof sql, fmt, ap);
    va_end(ap);
    ut_sql_ok(c, sql);
}

int64_t ut_sql_intf(PGconn *c, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;

    va_start(ap, fmt);
    sql_format(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return ut_sql_int(c, sql);
}

int ut_migration_count(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    if (!d)
        return -1;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len > 4 && strcmp(de->d_name + len - 4, ".sql") == 0 && de->d_name[0] >= '0' &&
            de->d_name[0] <= '9')
            n++;
    }
    closedir(d);
    return n;
}

int ut_db_setup(void **state, const char *name)
{
    const char *base = getenv("CEBUS_TEST_DATABASE_URL");
    const char *src = getenv("CEBUS_TEST_SOURCE_DIR");
    struct ut_db *f;
    char sql[256];
    int applied = -1;

    if (!base || !src) {
        fprintf(stderr, "%s: CEBUS_TEST_DATABASE_URL and CEBUS_TEST_SOURCE_DIR must be set (run"
                        " through ctest)\n", name);
        return -1;
    }
    eb_log_set_level(EB_LOG_WARN);
    f = eb_calloc(1, sizeof *f);
    *state = f; /* so that teardown cleans up after a failed setup */
    snprintf(f->dbname, sizeof f->dbname, "cebus_unit_%.24s_%ld_%lld", name, (long)getpid(),
             (long long)(eb_now_wall_us() % 1000000000));
    snprintf(f->base, sizeof f->base, "%s", base);
    snprintf(f->url, sizeof f->url, "%s dbname=%s", base, f->dbname);
    snprintf(f->migrations, sizeof f->migrations, "%s/migrations", src);

    f->admin = PQconnectdb(base);
    if (PQstatus(f->admin) != CONNECTION_OK) {
        fprintf(stderr, "%s: cannot connect: %s\n", name, PQerrorMessage(f->admin));
        return -1;
    }
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", f->dbname);
    ut_sql_ok(f->admin, sql);
    f->raw = PQconnectdb(f->url);
    if (PQstatus(f->raw) != CONNECTION_OK) {
        fprintf(stderr, "%s: cannot connect: %s\n", name, PQerrorMessage(f->raw));
        return -1;
    }
    if (eb_db_connect(f->url, &f->db) != EB_OK)
        return -1;
    if (eb_store_migrate(f->db, f->migrations, &applied) != EB_OK ||
        applied != ut_migration_count(f->migrations)) {
        fprintf(stderr, "%s: the first migration run applied %d files\n", name, applied);
        return -1;
    }
    return 0;
}

int ut_db_teardown(void **state)
{
    struct ut_db *f = *state;
    char sql[256];

    if (!f)
        return 0;
    eb_db_close(f->db);
    PQfinish(f->raw);
    if (PQstatus(f->admin) == CONNECTION_OK) {
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", f->dbname);
        ut_sql_ok(f->admin, sql);
    }
    PQfinish(f->admin);
    free(f);
    *state = NULL;
    return 0;
}

int64_t ut_tenant(struct ut_db *f, const char *name)
{
    struct eb_tenant_rec t;

    assert_int_equal(eb_store_tenant_insert(f->db, name, "", &t), EB_OK);
    return t.id;
}

struct eb_bus_rec ut_bus(struct ut_db *f, int64_t tenant_id, const char *name)
{
    struct eb_bus_rec b;

    assert_int_equal(eb_store_bus_insert(f->db, tenant_id, name, 168, 300, &b), EB_OK);
    return b;
}

struct eb_append_row ut_row(int64_t bus_id, int64_t received_us, const char *id,
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
