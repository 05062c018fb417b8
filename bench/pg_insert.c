/* pg-insert: the raw durable insert ceiling, through libpq alone.
 *
 * A scratch schema gets a table shaped like cebus's events table (same
 * columns, same range partitioning with a default partition, same two
 * indexes: keep in step with migrations/0001_init.sql), and N clients each loop over one prepared multi-row INSERT of
 * `batch` rows per statement, committed on its own (autocommit, so one
 * transaction and one WAL flush per statement under the server's durable
 * defaults). Bodies are sent as binary bytea parameters, timestamps as
 * text, as cebusd does. The schema is dropped at the end.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "bench.h"

#define USAGE                                                                              \
    "usage: cebus-bench pg-insert --url CONNINFO [--clients 8] [--batch 100] [--seconds 5]\n" \
    "                             [--bytes 1024] [--warmup 1]\n"                              \
    "Raw durable INSERT rate of ~bytes rows into a scratch copy of the events table.\n"

#define NCOLS 7
/* libpq allows 65535 parameters per statement. */
#define MAX_BATCH 5000
#define MAX_CLIENTS 256

struct pg_worker {
    pthread_t thread;
    int index;
    const char *url;
    const char *schema;
    long batch;
    long bytes;
    pthread_barrier_t *ready, *go;
    const int64_t *measure_from, *measure_until;
    /* Results. */
    uint64_t rows, statements, errors;
    struct bench_samples lat;
    char error[256];
};

static void fmt_now_timestamptz(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;

    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%06d+00", (int)(ts.tv_nsec / 1000));
}

/* Returns "INSERT INTO schema.events (...) VALUES ($1,...,$7),...", new. */
static char *insert_sql(const char *schema, long batch)
{
    size_t cap = 256 + (size_t)batch * 64, len;
    char *sql = malloc(cap);

    if (!sql)
        abort();
    len = (size_t)snprintf(sql, cap,
                           "INSERT INTO %s.events (bus_id, seq, received_at, source, event_id,"
                           " type, body) VALUES ",
                           schema);
    for (long i = 0; i < batch; i++) {
        long p = i * NCOLS;
        len += (size_t)snprintf(sql + len, cap - len,
                                "%s($%ld,$%ld,$%ld,$%ld,$%ld,$%ld,$%ld::bytea)", i ? "," : "",
                                p + 1, p + 2, p + 3, p + 4, p + 5, p + 6, p + 7);
    }
    return sql;
}

static void *pg_worker_main(void *arg)
{
    struct pg_worker *w = arg;
    size_t np = (size_t)w->batch * NCOLS;
    const char **values = calloc(np, sizeof *values);
    int *lengths = calloc(np, sizeof *lengths);
    int *formats = calloc(np, sizeof *formats);
    char (*seqs)[24] = calloc((size_t)w->batch, sizeof *seqs);
    char (*ids)[40] = calloc((size_t)w->batch, sizeof *ids);
    unsigned char *body = malloc((size_t)w->bytes);
    char bus[24], source[64], when[64];
    char *sql = insert_sql(w->schema, w->batch);
    PGconn *conn = PQconnectdb(w->url);
    PGresult *res = NULL;
    uint64_t seq = 1;
    bool ok = false;

    if (!values || !lengths || !formats || !seqs || !ids || !body)
        abort();
    if (PQstatus(conn) != CONNECTION_OK) {
        snprintf(w->error, sizeof w->error, "connect: %s", PQerrorMessage(conn));
        goto ready;
    }
    res = PQprepare(conn, "bench_insert", sql, (int)np, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        snprintf(w->error, sizeof w->error, "prepare: %s", PQerrorMessage(conn));
        goto ready;
    }
    ok = true;
ready:
    PQclear(res);
    /* Every thread reaches both barriers, ready or not, so none waits forever. */
    pthread_barrier_wait(w->ready);
    pthread_barrier_wait(w->go);
    if (!ok)
        goto out;

    /* A body of pseudo-random bytes (incompressible, as protobuf bodies
     * mostly are once they carry real payloads); the same for every row. */
    for (long i = 0; i < w->bytes; i++)
        body[i] = (unsigned char)((i * 2654435761u + (unsigned)w->index * 40503u) >> 13);
    snprintf(bus, sizeof bus, "%d", w->index + 1);
    snprintf(source, sizeof source, "/cebus-bench/pg-insert/%d", w->index);
    for (long r = 0; r < w->batch; r++) {
        size_t p = (size_t)r * NCOLS;
        values[p + 0] = bus;
        values[p + 1] = seqs[r];
        values[p + 2] = when;
        values[p + 3] = source;
        values[p + 4] = ids[r];
        values[p + 5] = "io.cebus.bench.event";
        values[p + 6] = (const char *)body;
        lengths[p + 6] = (int)w->bytes;
        formats[p + 6] = 1;
    }

    for (;;) {
        int64_t t0 = bench_now_ns(), t1;

        if (t0 >= *w->measure_until)
            break;
        fmt_now_timestamptz(when, sizeof when);
        for (long r = 0; r < w->batch; r++, seq++) {
            snprintf(seqs[r], sizeof seqs[r], "%" PRIu64, seq);
            snprintf(ids[r], sizeof ids[r], "%04d-%016" PRIx64, w->index, seq);
        }
        res = PQexecPrepared(conn, "bench_insert", (int)np, values, lengths, formats, 0);
        t1 = bench_now_ns();
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            w->errors++;
            if (!w->error[0])
                snprintf(w->error, sizeof w->error, "insert: %s", PQerrorMessage(conn));
            PQclear(res);
            if (PQstatus(conn) != CONNECTION_OK)
                break;
            continue;
        }
        PQclear(res);
        if (t1 >= *w->measure_from && t1 <= *w->measure_until) {
            w->rows += (uint64_t)w->batch;
            w->statements++;
            bench_samples_add(&w->lat, t1 - t0);
        }
    }
out:
    PQfinish(conn);
    free(sql);
    free(body);
    free(ids);
    free(seqs);
    free(formats);
    free(lengths);
    free(values);
    return NULL;
}

/* Drops the server's notices ("schema does not exist, skipping"). */
static void quiet_notices(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Runs sql on a fresh connection; returns 0 or prints the error. */
static int run_admin_sql(const char *url, const char *sql)
{
    PGconn *conn = PQconnectdb(url);
    PGresult *res;
    int rc = 0;

    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "cebus-bench pg-insert: cannot connect: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return -1;
    }
    PQsetNoticeProcessor(conn, quiet_notices, NULL);
    res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fprintf(stderr, "cebus-bench pg-insert: %s", PQerrorMessage(conn));
        rc = -1;
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
}

/* Reads one setting (e.g. "fsync") into buf; "?" when unavailable. */
static void show_setting(const char *url, const char *name, char *buf, size_t size)
{
    PGconn *conn = PQconnectdb(url);
    const char *params[1] = {name};
    PGresult *res = NULL;

    snprintf(buf, size, "?");
    if (PQstatus(conn) == CONNECTION_OK) {
        res = PQexecParams(conn, "SELECT current_setting($1)", 1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
            snprintf(buf, size, "%s", PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    PQfinish(conn);
}

int bench_cmd_pg_insert(int argc, char **argv)
{
    const char *url = NULL;
    long clients = 8, batch = 100, bytes = 1024;
    double seconds = 5, warmup = 1;
    const struct bench_opt opts[] = {
        {"url", BENCH_OPT_STR, &url, 0, 0},
        {"clients", BENCH_OPT_INT, &clients, 1, MAX_CLIENTS},
        {"batch", BENCH_OPT_INT, &batch, 1, MAX_BATCH},
        {"seconds", BENCH_OPT_DOUBLE, &seconds, 0.1, 3600},
        {"bytes", BENCH_OPT_INT, &bytes, 1, 1 << 20},
        {"warmup", BENCH_OPT_DOUBLE, &warmup, 0, 600},
        {NULL, BENCH_OPT_FLAG, NULL, 0, 0},
    };
    char schema[64], sql[1024], fsync_on[16], sync_commit[16], version[64];
    char p50[32], p99[32];
    struct pg_worker *w = NULL;
    struct bench_samples all = {0};
    pthread_barrier_t ready, go;
    int64_t measure_from = 0, measure_until = 0;
    uint64_t rows = 0, statements = 0, errors = 0;
    const char *first_error = NULL;
    double rate;
    int rc;

    rc = bench_parse_opts(argc, argv, opts, USAGE);
    if (rc)
        return rc == 1 ? 0 : rc;
    if (!url) {
        fprintf(stderr, "cebus-bench pg-insert: --url is required\n%s", USAGE);
        return 2;
    }
    if ((double)bytes * (double)batch > 256.0 * 1024 * 1024) {
        fprintf(stderr, "cebus-bench pg-insert: batch * bytes over 256 MiB\n");
        return 2;
    }

    snprintf(schema, sizeof schema, "cebus_bench_%ld", (long)getpid());
    snprintf(sql, sizeof sql,
             "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s;"
             " CREATE TABLE %s.events (bus_id bigint NOT NULL, seq bigint NOT NULL,"
             " received_at timestamptz NOT NULL, source text NOT NULL, event_id text NOT NULL,"
             " type text NOT NULL, body bytea NOT NULL) PARTITION BY RANGE (received_at);"
             " CREATE TABLE %s.events_default PARTITION OF %s.events DEFAULT;"
             " CREATE INDEX ON %s.events (bus_id, seq);"
             " CREATE INDEX ON %s.events USING brin (received_at);",
             schema, schema, schema, schema, schema, schema, schema);
    if (run_admin_sql(url, sql))
        return 1;
    show_setting(url, "fsync", fsync_on, sizeof fsync_on);
    show_setting(url, "synchronous_commit", sync_commit, sizeof sync_commit);
    show_setting(url, "server_version_num", version, sizeof version);

    w = calloc((size_t)clients, sizeof *w);
    if (!w)
        abort();
    pthread_barrier_init(&ready, NULL, (unsigned)clients + 1);
    pthread_barrier_init(&go, NULL, (unsigned)clients + 1);
    for (long i = 0; i < clients; i++) {
        w[i].index = (int)i;
        w[i].url = url;
        w[i].schema = schema;
        w[i].batch = batch;
        w[i].bytes = bytes;
        w[i].ready = &ready;
        w[i].go = &go;
        w[i].measure_from = &measure_from;
        w[i].measure_until = &measure_until;
        if (pthread_create(&w[i].thread, NULL, pg_worker_main, &w[i]) != 0)
            abort();
    }
    /* Workers connect and prepare; the clock starts once all are ready. */
    pthread_barrier_wait(&ready);
    measure_from = bench_now_ns() + (int64_t)(warmup * 1e9);
    measure_until = measure_from + (int64_t)(seconds * 1e9);
    pthread_barrier_wait(&go);
    for (long i = 0; i < clients; i++) {
        pthread_join(w[i].thread, NULL);
        rows += w[i].rows;
        statements += w[i].statements;
        errors += w[i].errors;
        if (w[i].error[0] && !first_error)
            first_error = w[i].error;
        bench_samples_merge(&all, &w[i].lat);
        bench_samples_free(&w[i].lat);
    }
    pthread_barrier_destroy(&ready);
    pthread_barrier_destroy(&go);
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", schema);
    run_admin_sql(url, sql);

    bench_samples_sort(&all);
    rate = (double)rows / seconds;
    printf("pg-insert: %ld clients, %ld rows/statement, %ld-byte bodies: %.0f rows/s, "
           "%.0f statements/s, statement p50 %s us p99 %s us, errors %" PRIu64 "%s%s\n",
           clients, batch, bytes, rate, (double)statements / seconds,
           bench_fmt_us(p50, sizeof p50, bench_samples_pct(&all, 50)),
           bench_fmt_us(p99, sizeof p99, bench_samples_pct(&all, 99)), errors,
           first_error ? "; first error: " : "", first_error ? first_error : "");
    printf("bench=pg-insert clients=%ld batch=%ld bytes=%ld seconds=%.2f rows=%" PRIu64
           " rows_per_s=%.0f stmt_p50_us=%.1f stmt_p99_us=%.1f errors=%" PRIu64
           " fsync=%s synchronous_commit=%s server_version_num=%s\n",
           clients, batch, bytes, seconds, rows, rate,
           (double)bench_samples_pct(&all, 50) / 1000.0,
           (double)bench_samples_pct(&all, 99) / 1000.0, errors, fsync_on, sync_commit,
           version);
    fflush(stdout);
    bench_samples_free(&all);
    rc = (errors || first_error || rows == 0) ? 1 : 0;
    free(w);
    return rc;
}
